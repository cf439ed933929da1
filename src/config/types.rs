//! The validated configuration the server runs on: typed values (`SocketAddr`,
//! `Duration`, `NonZeroU32`, `ProviderKind`), immutable once built, shared as
//! `Arc`s. Only `validate.rs` builds them from a file.
//!
//! Secrets never print: `ProviderConfig` and `ClientConfig` write their `Debug`
//! by hand and show `[redacted]` for the vendor key and the client key's hash.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chatgate_providers::{AdapterOptions, ProviderKind};
use secrecy::SecretString;

/// The validated configuration the server runs on.
#[derive(Debug)]
pub struct Config {
    /// Where the file was read from (for logs).
    pub path: PathBuf,
    /// `[server]`.
    pub server: ServerConfig,
    /// `[cache]`.
    pub cache: CacheConfig,
    /// `[providers.*]` by table name.
    pub providers: BTreeMap<String, Arc<ProviderConfig>>,
    /// `[bots.*]` by bot name.
    pub bots: BTreeMap<String, Arc<BotConfig>>,
    /// `[clients.*]`, in name order.
    pub clients: Vec<Arc<ClientConfig>>,
    /// `[redis]`, if set: the shared store several instances (and `chatgate
    /// export`) draw their limits and pauses from. `None`: Redis is never
    /// touched.
    pub redis: Option<crate::redis::RedisSettings>,
}

/// `[server]`, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    /// Listen address.
    pub bind: SocketAddr,
    /// Worker threads (0 = one per CPU).
    pub workers: usize,
    /// Bound on one whole API request.
    pub request_timeout: Duration,
    /// Time allowed to receive a request body (a client trickling one must not
    /// hold a connection).
    pub request_body_timeout: Duration,
    /// Failed authentications per remote IP.
    pub auth_failures: Rate,
    /// Where `/metrics` is served alone, if not on `bind`.
    pub metrics_bind: Option<SocketAddr>,
    /// Vendor calls one API request may make, so a deep page of a dual-read bot
    /// (or any multi-call request) costs a bounded amount of vendor quota.
    pub max_vendor_calls_per_request: NonZeroU32,
    /// Vendor body bytes the process holds at once (read and being parsed): with
    /// `cache.max_bytes`, what bounds the gateway's memory.
    pub max_inflight_body_bytes: u64,
}

/// A GCRA rate: a sustained count per period, plus a burst.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Cells per `period`.
    pub count: NonZeroU32,
    /// The period `count` is spread over.
    pub period: Duration,
    /// Cells allowed at once.
    pub burst: NonZeroU32,
}

/// `[cache]`, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct CacheConfig {
    /// Whether to cache.
    pub enabled: bool,
    /// Fresh lifetime.
    pub ttl: Duration,
    /// Stale-if-error window after expiry.
    pub stale_if_error: Duration,
    /// Bound on total weight, bytes.
    pub max_bytes: u64,
}

/// One vendor account, validated.
pub struct ProviderConfig {
    /// The table name.
    pub name: String,
    /// Which vendor.
    pub kind: ProviderKind,
    /// Base URL without a trailing slash.
    pub base_url: String,
    /// The vendor key; only the upstream client exposes it, to build the header.
    pub api_key: SecretString,
    /// Total time for one vendor call.
    pub timeout: Duration,
    /// Time to connect.
    pub connect_timeout: Duration,
    /// Largest vendor body read.
    pub max_body_bytes: usize,
    /// Adapter settings.
    pub adapter: AdapterOptions,
    /// Calls per second to the vendor, shared by every caller.
    pub max_requests_per_second: NonZeroU32,
    /// Retries of one vendor call.
    pub max_retries: u32,
    /// Longest wait for a `Retry-After` or pause before retrying.
    pub max_retry_wait: Duration,
    /// Longest pause a vendor 429 may impose: a `Retry-After` of a year (or of
    /// 10^19 seconds) is a vendor fault, not an instruction to stop for a year.
    pub max_pause: Duration,
    /// Consecutive failures that open the circuit.
    pub circuit_failure_threshold: NonZeroU32,
    /// Open → half-open after this.
    pub circuit_cooldown: Duration,
}

impl fmt::Debug for ProviderConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProviderConfig")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("base_url", &self.base_url)
            .field("api_key", &"[redacted]")
            .field("timeout", &self.timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("adapter", &self.adapter)
            .field("max_requests_per_second", &self.max_requests_per_second)
            .field("max_retries", &self.max_retries)
            .field("max_retry_wait", &self.max_retry_wait)
            .field("max_pause", &self.max_pause)
            .field("circuit_failure_threshold", &self.circuit_failure_threshold)
            .field("circuit_cooldown", &self.circuit_cooldown)
            .finish()
    }
}

/// A bot callers name in `chatbotId`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BotConfig {
    /// The name callers use.
    pub name: String,
    /// Where its history lives: one backend, or several (dual-read) in config
    /// order, which breaks ties between equal timestamps. Never empty.
    pub backends: Vec<Backend>,
}

/// One place a bot's history lives.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Backend {
    /// The `[providers.*]` table.
    pub provider: String,
    /// The vendor's id for the bot.
    pub chatbot_id: String,
}

/// Which bots a client may read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BotScope {
    /// `["*"]`.
    All,
    /// An explicit list.
    Only(BTreeSet<String>),
}

impl BotScope {
    /// Whether this scope includes `bot`.
    pub fn allows(&self, bot: &str) -> bool {
        match self {
            Self::All => true,
            Self::Only(set) => set.contains(bot),
        }
    }
}

/// A calling service.
pub struct ClientConfig {
    /// The `[clients.*]` name (logged; the key never is).
    pub name: String,
    /// SHA-256 of the key: what presented keys are compared against, in constant
    /// time, so the plaintext need not stay in memory.
    pub key_sha256: [u8; 32],
    /// The bots it may read.
    pub bots: BotScope,
    /// Its request rate.
    pub rate: Rate,
}

impl fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientConfig")
            .field("name", &self.name)
            .field("key_sha256", &"[redacted]")
            .field("bots", &self.bots)
            .field("rate", &self.rate)
            .finish()
    }
}
