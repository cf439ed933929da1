//! The configuration as ops write it: one serde struct per table, nothing checked
//! yet beyond types.
//!
//! Every struct rejects unknown keys, so a typo fails loudly instead of silently
//! leaving a default in force. Each table's defaults are written once, in its
//! `Default` impl (serde fills every omitted key from it); each field's doc states
//! its meaning, unit and default. Ranges and cross-references are checked in
//! `validate.rs`, which turns these into the typed `Config`.

use std::collections::BTreeMap;

use chatgate_providers::wire::{lenient_opt_string, lenient_string};
use chatgate_providers::AdapterOptions;
use secrecy::SecretString;
use serde::{Deserialize, Deserializer};

/// The whole file. Every table may be omitted (validation then reports what is
/// missing: at least one bot and one client).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawConfig {
    /// `[server]`.
    pub(super) server: RawServer,
    /// `[cache]`.
    pub(super) cache: RawCache,
    /// `[providers.<name>]`: vendor accounts, by table name.
    pub(super) providers: BTreeMap<String, RawProvider>,
    /// `[bots.<name>]`: the bots callers name in `chatbotId`.
    pub(super) bots: BTreeMap<String, RawBot>,
    /// `[clients.<name>]`: the calling services.
    pub(super) clients: BTreeMap<String, RawClient>,
    /// `[redis]`: the shared store. Default unset: one instance keeps all
    /// state in memory and never touches Redis.
    pub(super) redis: Option<RawRedis>,
}

/// `[redis]`: where the state shared by several instances (client limits,
/// vendor guards, 429 pauses, the second cache level) lives. Checked by `RedisSettings::validate`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawRedis {
    /// `redis://[user:password@]host[:port][/db]` or `rediss://…`. Required
    /// in `[redis]` (from the file or `CHATGATE_REDIS__URL`); a secret, since
    /// it may hold a password.
    #[serde(deserialize_with = "opt_secret")]
    pub(super) url: Option<SecretString>,
    /// The start of every key. Default `chatgate:`.
    pub(super) key_prefix: Option<String>,
    /// Bound on one Redis operation, connecting included, in milliseconds.
    /// Default 50.
    pub(super) timeout_ms: Option<u64>,
    /// The largest response body shared through Redis; 0 shares none.
    /// Default 1 MiB.
    pub(super) cache_max_body_bytes: Option<u64>,
}

/// `[server]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawServer {
    /// Listen address, `IP:port`. Default `127.0.0.1:8080`.
    pub(super) bind: String,
    /// Worker threads; 0 means one per CPU. Default 0.
    pub(super) workers: usize,
    /// Bound on one whole API request, every vendor call included, in
    /// milliseconds; past it the answer is 504. Default 30000.
    pub(super) request_timeout_ms: u64,
    /// Time allowed to receive a request body once its handler starts reading
    /// it, in milliseconds; past it, 408 and the connection closes. Default 10000.
    pub(super) request_body_timeout_ms: u64,
    /// Failed authentications allowed per remote IP, per minute. Default 60.
    pub(super) auth_failures_per_minute: u32,
    /// Failed authentications allowed at once per remote IP (the burst on top
    /// of the per-minute rate), a count. Default 20.
    pub(super) auth_failure_burst: u32,
    /// A separate `IP:port` for `/metrics`; the main address then does not serve
    /// it. Default unset (`/metrics` on `bind`).
    pub(super) metrics_bind: Option<String>,
    /// Vendor calls one API request may make, retries included, a count.
    /// Default 100.
    pub(super) max_vendor_calls_per_request: u32,
    /// Vendor body bytes held at once by the whole process, in bytes; at least
    /// every provider's `max_body_bytes`. Default 64 MiB (67108864).
    pub(super) max_inflight_body_bytes: u64,
}

impl Default for RawServer {
    fn default() -> Self {
        Self {
            bind: "127.0.0.1:8080".to_owned(),
            workers: 0,
            request_timeout_ms: 30_000,
            request_body_timeout_ms: 10_000,
            auth_failures_per_minute: 60,
            auth_failure_burst: 20,
            metrics_bind: None,
            max_vendor_calls_per_request: 100,
            max_inflight_body_bytes: 64 * 1024 * 1024,
        }
    }
}

/// `[cache]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawCache {
    /// Whether responses are cached at all. Default true.
    pub(super) enabled: bool,
    /// Fresh lifetime of an entry, in seconds. Default 60.
    pub(super) ttl_secs: u64,
    /// How long after expiry a stale entry may still answer when the vendor
    /// fails, in seconds. Default 300.
    pub(super) stale_if_error_secs: u64,
    /// Bound on the cache's total weight (serialized bytes plus bookkeeping), in
    /// bytes. Default 64 MiB (67108864).
    pub(super) max_bytes: u64,
}

impl Default for RawCache {
    fn default() -> Self {
        Self {
            enabled: true,
            ttl_secs: 60,
            stale_if_error_secs: 300,
            max_bytes: 64 * 1024 * 1024,
        }
    }
}

/// `[providers.<name>]`: one vendor account.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawProvider {
    /// Which vendor: a `VendorInfo::kind_name` (`chatbase`, `chatzuri`,
    /// `chatling`). Default: the table name (so `[providers.chatling]` needs no
    /// `kind`).
    pub(super) kind: Option<String>,
    /// The vendor's API root, `http(s)://`, no query. Default: the vendor's
    /// production URL (`VendorInfo::default_base_url` in its module).
    pub(super) base_url: Option<String>,
    /// The vendor secret key. Required (from the file or
    /// `CHATGATE_PROVIDERS__<NAME>__API_KEY`); no default.
    #[serde(deserialize_with = "opt_secret")]
    pub(super) api_key: Option<SecretString>,
    /// Total time for one vendor call (connect, send, whole body), in
    /// milliseconds. Default 10000.
    pub(super) timeout_ms: u64,
    /// Time to establish a connection, in milliseconds. Default 3000.
    pub(super) connect_timeout_ms: u64,
    /// Largest vendor body read, in bytes; a larger answer is a 502. Default
    /// 16 MiB (16777216).
    pub(super) max_body_bytes: u64,
    /// The vendor's request style, for vendors documenting several (Chatzuri:
    /// `current` = GET with `agentId`, `legacy` = POST body with `chatbotId`;
    /// `VendorInfo::dialects` in its module). Default: the vendor's first
    /// (`current`).
    pub(super) dialect: Option<String>,
    /// Bound on vendor pages one request may read when the gateway filters or
    /// assembles pages itself (Chatling), a count. Default 50.
    pub(super) max_scan_pages: u32,
    /// Calls per second to this vendor account, shared by every caller. Default:
    /// the vendor's documented quota where it publishes one (Chatling 300/min →
    /// 5), else 10 (`VendorInfo::default_requests_per_second` in its module).
    pub(super) max_requests_per_second: Option<u32>,
    /// Retries of one vendor call (connect errors, 429, 502, 503, 504), a count.
    /// Default 2.
    pub(super) max_retries: u32,
    /// Longest `Retry-After` (or 429 pause) a request waits out before
    /// retrying, in milliseconds; longer ones are answered with 429 at once.
    /// Default 5000.
    pub(super) max_retry_wait_ms: u64,
    /// Longest a vendor 429 may pause calls to this account, in seconds,
    /// whatever `Retry-After` it sends. Default 300.
    pub(super) max_pause_secs: u64,
    /// Consecutive failed calls that open the circuit, a count. Default 5.
    pub(super) circuit_failure_threshold: u32,
    /// How long an open circuit waits before one probe, in seconds. Default 30.
    pub(super) circuit_cooldown_secs: u64,
}

impl Default for RawProvider {
    fn default() -> Self {
        Self {
            kind: None,
            base_url: None,
            api_key: None,
            timeout_ms: 10_000,
            connect_timeout_ms: 3_000,
            max_body_bytes: 16 * 1024 * 1024,
            dialect: None,
            max_scan_pages: AdapterOptions::DEFAULT_MAX_SCAN_PAGES.get(),
            max_requests_per_second: None,
            max_retries: 2,
            max_retry_wait_ms: 5_000,
            max_pause_secs: 300,
            circuit_failure_threshold: 5,
            circuit_cooldown_secs: 30,
        }
    }
}

/// `[bots.<name>]`: one backend (`provider` + `chatbot_id`), or several as
/// `[[bots.<name>.backends]]` for a bot read from two vendors during a migration.
/// No defaults: one of the two forms is required.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawBot {
    /// A `[providers.*]` table name. Unset by default.
    pub(super) provider: Option<String>,
    /// The vendor's chatbot id (text; a number is read as its digits). Unset by
    /// default.
    #[serde(deserialize_with = "lenient_opt_string")]
    pub(super) chatbot_id: Option<String>,
    /// Several backends, merged newest first, in this order on equal times.
    /// Unset by default.
    pub(super) backends: Option<Vec<RawBackend>>,
}

/// `[[bots.<name>.backends]]`: both keys required.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBackend {
    /// A `[providers.*]` table name.
    pub(super) provider: String,
    /// The vendor's chatbot id (text; a number is read as its digits).
    #[serde(deserialize_with = "lenient_string")]
    pub(super) chatbot_id: String,
}

/// `[clients.<name>]`: a calling service.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawClient {
    /// The client's bearer key, in plain text, at least 16 characters. Either
    /// this or `key_sha256` is required.
    #[serde(deserialize_with = "opt_secret")]
    pub(super) key: Option<SecretString>,
    /// Or the key's SHA-256, 64 hex characters, so the file holds no plaintext
    /// key.
    pub(super) key_sha256: Option<String>,
    /// Bot names this client may read, or `["*"]` for every bot. Required (an
    /// empty list is refused).
    pub(super) bots: Vec<String>,
    /// Sustained request rate, requests per minute. Default 600.
    pub(super) requests_per_minute: u32,
    /// Requests allowed at once on top of the rate, a count. Default 20.
    pub(super) burst: u32,
}

impl Default for RawClient {
    fn default() -> Self {
        Self {
            key: None,
            key_sha256: None,
            bots: Vec::new(),
            requests_per_minute: 600,
            burst: 20,
        }
    }
}

/// Secrets may come from the environment, where figment reads `12345` as a
/// number: accept numbers as their digits rather than fail on a numeric key.
fn opt_secret<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SecretString>, D::Error> {
    Ok(lenient_opt_string(d)?.map(SecretString::from))
}
