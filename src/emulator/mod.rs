//! Built-in vendor emulators.
