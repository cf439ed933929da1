//! chatgate: one normalized get-conversations API in front of several chatbot
//! vendors (Chatbase, Chatzuri, Chatling).
//!
//! The binary's subcommands live in `main.rs`; everything they run is here so
//! integration tests can start the real server in-process (the vendor emulator
//! is the `chatgate-emulator` crate).

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod cache;
pub mod circuit;
pub mod clock;
pub mod config;
pub mod demo;
pub mod error;
pub mod export;
pub mod gateway;
pub mod limits;
pub mod log_format;
pub mod log_sink;
pub mod merge;
pub mod metrics;
pub mod query;
pub mod redis;
pub mod server;
pub mod upstream;
pub mod waits;
