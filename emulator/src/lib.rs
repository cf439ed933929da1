//! Built-in vendor emulators.
//!
//! One actix server speaks the documented wire formats of every vendor (see
//! `vendors.md` and `vendor-docs/`) on a single loopback address, each vendor under
//! its own prefix:
//!
//! | vendor | base URL (give this to the gateway) | endpoints |
//! |---|---|---|
//! | Chatbase | `http://ADDR/chatbase/api/v1` | `GET /get-conversations?chatbotId=…` |
//! | Chatzuri | `http://ADDR/chatzuri/api/v1` | `GET /get-conversations?agentId=…`, legacy `POST /get-conversations` (JSON body, `chatbotId`) |
//! | Chatling | `http://ADDR/chatling/v2` | `GET /chatbots/{bot}/conversations`, `…/{id}`, `…/{id}/messages` |
//! | Chatbase v2 | `http://ADDR/chatbase/api/v2` | `GET /agents/{agent}/conversations/export` (cursor pages, `conversationId`) |
//!
//! It exists so that `chatgate demo`, the integration tests and the benchmarks have a
//! realistic upstream without network access: the data set is generated from a seed
//! (same seed, same bytes), requests are validated like the vendors do (bearer key,
//! strict dates, page/size bounds), every vendor request is recorded so tests can count
//! upstream calls, and faults (error statuses, delays, broken bodies) can be injected
//! from Rust ([`EmulatorState::add_fault`]) or over HTTP (`/_emulator/…`, below).
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use chatgate_emulator::{self as emulator, EmulatorState, Vendor, DEFAULT_SEED};
//! let server = emulator::start(
//!     "127.0.0.1:0".parse().expect("literal address"),
//!     EmulatorState::new(DEFAULT_SEED),
//!     1,
//! )
//! .await?;
//! println!("chatbase at {}", server.base_url(Vendor::Chatbase));
//! server.stop().await;
//! # Ok(())
//! # }
//! ```
//!
//! Control API (JSON, never recorded): `POST /_emulator/faults` (a [`Fault`]),
//! `DELETE /_emulator/faults`, `GET|DELETE /_emulator/requests`,
//! `PUT /_emulator/chatling` (`per_page`, `messages_per_page`, `rate_limit_per_minute`),
//! `PUT /_emulator/chatbase_v2` (`rate_limit_per_10s`).

mod answer;
mod chatbase;
mod chatbase_v2;
mod chatling;
mod control;
mod data;
mod faults;
mod params;
mod server;
mod state;
mod store;

use serde::{Deserialize, Serialize};

pub use faults::{Fault, FaultKind, SLOW_BODY_CHUNK_BYTES};
pub use server::{start, EmulatorServer};
pub use state::{EmulatorState, RecordedRequest};

/// Which vendor a request, fault or data set belongs to; the emulator serves them all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Vendor {
    /// Chatbase API v1 (`GET /get-conversations?chatbotId=…`).
    Chatbase,
    /// Chatzuri (`GET …?agentId=…`, legacy `POST` with a `chatbotId` body).
    Chatzuri,
    /// Chatling API v2 (`/chatbots/{id}/conversations…`, `status`/`data` envelope).
    Chatling,
    /// Chatbase API v2 (`/agents/{id}/conversations/export`, cursor pages, the
    /// `{"error": {"code", …}}` envelope).
    #[serde(rename = "chatbase_v2")]
    ChatbaseV2,
}

impl Vendor {
    /// All vendors, in the order used for counters.
    pub(crate) const ALL: [Vendor; 4] = [
        Vendor::Chatbase,
        Vendor::Chatzuri,
        Vendor::Chatling,
        Vendor::ChatbaseV2,
    ];

    /// The path prefix the vendor's own paths live under on the emulator.
    pub(crate) fn prefix(self) -> &'static str {
        match self {
            Vendor::Chatbase => "/chatbase/api/v1",
            Vendor::Chatzuri => "/chatzuri/api/v1",
            Vendor::Chatling => "/chatling/v2",
            Vendor::ChatbaseV2 => "/chatbase/api/v2",
        }
    }

    /// The bearer key this vendor's endpoints accept.
    pub(crate) fn key(self) -> &'static str {
        match self {
            Vendor::Chatbase => CHATBASE_KEY,
            Vendor::Chatzuri => CHATZURI_KEY,
            Vendor::Chatling => CHATLING_KEY,
            Vendor::ChatbaseV2 => CHATBASE_V2_KEY,
        }
    }

    /// Stable index into per-vendor arrays.
    pub(crate) fn index(self) -> usize {
        match self {
            Vendor::Chatbase => 0,
            Vendor::Chatzuri => 1,
            Vendor::Chatling => 2,
            Vendor::ChatbaseV2 => 3,
        }
    }

    /// The lowercase name used in JSON (`"chatbase"` …).
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Vendor::Chatbase => "chatbase",
            Vendor::Chatzuri => "chatzuri",
            Vendor::Chatling => "chatling",
            Vendor::ChatbaseV2 => "chatbase_v2",
        }
    }
}

/// The only bearer key the emulated Chatbase accepts (demo configs and tests use it).
pub const CHATBASE_KEY: &str = "emu-chatbase-secret";
/// The only bearer key the emulated Chatzuri accepts.
pub const CHATZURI_KEY: &str = "emu-chatzuri-secret";
/// The only bearer key the emulated Chatling accepts.
pub const CHATLING_KEY: &str = "emu-chatling-secret";
/// The only bearer key the emulated Chatbase API v2 accepts.
pub const CHATBASE_V2_KEY: &str = "emu-chatbase-v2-secret";
/// The seeded Chatbase bot: 137 conversations spread over 2024, with deliberate variety
/// (timestamp forms, missing fields, both source-label spellings).
pub const CHATBASE_BOT: &str = "cb-support";
/// A Chatbase bot that exists but has no conversations (empty-list paths).
pub const CHATBASE_EMPTY_BOT: &str = "cb-empty";
/// The seeded Chatzuri agent: 64 conversations.
pub const CHATZURI_BOT: &str = "cz-sales";
/// The seeded Chatling chatbot: 83 conversations, one without messages and some longer
/// than one messages page.
pub const CHATLING_BOT: &str = "5551234001";
/// The seeded Chatbase v2 agent: the same agent as [`CHATBASE_BOT`] read through API
/// v2, as a bot moved from `chatbase` to `chatbase_v2` is (an agent's id is the same in
/// both APIs). Its 137 conversations in the export's shape (Unix-second times, message
/// `parts`, `userId`, `title`, `status`), some with tool calls and results, some taken
/// over by a human, plus 24 from the channels only v2 labels (Email, Zendesk, SDKs …):
/// 161 in all.
pub const CHATBASE_V2_BOT: &str = CHATBASE_BOT;
/// A Chatbase v2 agent that exists but has no conversations.
pub const CHATBASE_V2_EMPTY_BOT: &str = CHATBASE_EMPTY_BOT;
/// The seed `chatgate demo` and `chatgate emulate` use, so their data is reproducible.
pub const DEFAULT_SEED: u64 = 42;

#[cfg(test)]
pub(crate) mod testutil;
