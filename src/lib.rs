//! chatgate: one normalized get-conversations API in front of several chatbot vendors.

pub mod emulator;
