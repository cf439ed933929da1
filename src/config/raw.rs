//! The configuration as ops write it: serde structs that reject unknown keys.

use std::collections::BTreeMap;

use chatgate_providers::wire::lenient_string;
use chatgate_providers::AdapterOptions;
use secrecy::SecretString;
use serde::{Deserialize, Deserializer};

// ---------------------------------------------------------------------------
// Raw, as written by ops.
// ---------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    #[serde(default)]
    pub(super) server: RawServer,
    #[serde(default)]
    pub(super) cache: RawCache,
    #[serde(default)]
    pub(super) providers: BTreeMap<String, RawProvider>,
    #[serde(default)]
    pub(super) bots: BTreeMap<String, RawBot>,
    #[serde(default)]
    pub(super) clients: BTreeMap<String, RawClient>,
}

/// `[server]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawServer {
    /// Listen address. Default `127.0.0.1:8080`.
    pub(super) bind: String,
    /// Worker threads; 0 = one per CPU. Default 0.
    pub(super) workers: usize,
    /// Bound on one whole API request, all vendor calls included, in ms. Default 30000.
    pub(super) request_timeout_ms: u64,
    /// Time allowed to receive a request body once its handler starts reading
    /// it, in ms; past it, 408 and the connection closes. Default 10000.
    pub(super) request_body_timeout_ms: u64,
    /// Failed authentications allowed per remote IP per minute. Default 60.
    pub(super) auth_failures_per_minute: u32,
    /// Failed authentications allowed in a burst per remote IP. Default 20.
    pub(super) auth_failure_burst: u32,
    /// A separate address for `/metrics` (then the main address does not serve it).
    pub(super) metrics_bind: Option<String>,
    /// Vendor calls one API request may make, retries included. Default 100.
    pub(super) max_vendor_calls_per_request: u32,
    /// Vendor body bytes held at once by the whole process. Default 64 MiB.
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
    /// Fresh lifetime of an entry, seconds. Default 60.
    pub(super) ttl_secs: u64,
    /// How long after expiry a stale entry may still answer when the vendor
    /// fails, seconds. Default 300.
    pub(super) stale_if_error_secs: u64,
    /// Bound on the cache's total weight (serialized bytes). Default 64 MiB.
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

/// `[providers.<name>]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawProvider {
    /// `chatbase | chatzuri | chatling`; defaults to the table name.
    #[serde(default)]
    pub(super) kind: Option<String>,
    /// Defaults to the vendor's production URL.
    #[serde(default)]
    pub(super) base_url: Option<String>,
    /// The vendor secret key. Required.
    #[serde(default, deserialize_with = "opt_secret")]
    pub(super) api_key: Option<SecretString>,
    /// Total time for one vendor call (connect, send, whole body), ms. Default 10000.
    #[serde(default = "default_timeout_ms")]
    pub(super) timeout_ms: u64,
    /// Time to establish a connection, ms. Default 3000.
    #[serde(default = "default_connect_timeout_ms")]
    pub(super) connect_timeout_ms: u64,
    /// Largest vendor body read, bytes. Default 16 MiB.
    #[serde(default = "default_max_body_bytes")]
    pub(super) max_body_bytes: u64,
    /// Chatzuri only: `current` (GET, agentId) or `legacy` (POST body, chatbotId).
    #[serde(default)]
    pub(super) dialect: Option<String>,
    /// Chatling: bound on vendor pages read per request when the gateway filters
    /// or assembles pages. Default 50.
    #[serde(default = "default_max_scan_pages")]
    pub(super) max_scan_pages: u32,
    /// Calls per second to this vendor account, shared by every caller. Default:
    /// the vendor's documented quota where there is one (Chatling 300/min → 5),
    /// else 10.
    #[serde(default)]
    pub(super) max_requests_per_second: Option<u32>,
    /// Retries of one vendor call (connect errors, 429, 502, 503, 504). Default 2.
    #[serde(default = "default_max_retries")]
    pub(super) max_retries: u32,
    /// Longest `Retry-After` (or 429 pause) a request waits out before retrying,
    /// ms; longer ones are answered with 429 at once. Default 5000.
    #[serde(default = "default_max_retry_wait_ms")]
    pub(super) max_retry_wait_ms: u64,
    /// Longest a vendor 429 may pause calls to this account, seconds, whatever
    /// `Retry-After` it sends. Default 300.
    #[serde(default = "default_max_pause_secs")]
    pub(super) max_pause_secs: u64,
    /// Consecutive failed calls that open the circuit. Default 5.
    #[serde(default = "default_circuit_failure_threshold")]
    pub(super) circuit_failure_threshold: u32,
    /// Seconds an open circuit waits before one probe. Default 30.
    #[serde(default = "default_circuit_cooldown_secs")]
    pub(super) circuit_cooldown_secs: u64,
}

fn default_max_retries() -> u32 {
    2
}
fn default_max_retry_wait_ms() -> u64 {
    5_000
}
fn default_max_pause_secs() -> u64 {
    300
}
fn default_circuit_failure_threshold() -> u32 {
    5
}
fn default_circuit_cooldown_secs() -> u64 {
    30
}

fn default_timeout_ms() -> u64 {
    10_000
}
fn default_connect_timeout_ms() -> u64 {
    3_000
}
fn default_max_body_bytes() -> u64 {
    16 * 1024 * 1024
}
fn default_max_scan_pages() -> u32 {
    AdapterOptions::DEFAULT_MAX_SCAN_PAGES.get()
}

/// `[bots.<name>]`: one backend (`provider` + `chatbot_id`), or several as
/// `[[bots.<name>.backends]]` for a bot read from two vendors during a migration.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBot {
    /// A `[providers.*]` table name.
    #[serde(default)]
    pub(super) provider: Option<String>,
    /// The vendor's chatbot id (text; a number is read as its digits).
    #[serde(
        default,
        deserialize_with = "chatgate_providers::wire::lenient_opt_string"
    )]
    pub(super) chatbot_id: Option<String>,
    /// Several backends, merged newest first, in this order on equal times.
    #[serde(default)]
    pub(super) backends: Option<Vec<RawBackend>>,
}

/// `[[bots.<name>.backends]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBackend {
    /// A `[providers.*]` table name.
    pub(super) provider: String,
    /// The vendor's chatbot id.
    #[serde(deserialize_with = "lenient_string")]
    pub(super) chatbot_id: String,
}

/// `[clients.<name>]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawClient {
    /// The client's bearer key, in plain text.
    #[serde(default, deserialize_with = "opt_secret")]
    pub(super) key: Option<SecretString>,
    /// Or the hex SHA-256 of the key, so the file holds no plaintext key.
    #[serde(default)]
    pub(super) key_sha256: Option<String>,
    /// Bot names this client may read, or `["*"]`.
    #[serde(default)]
    pub(super) bots: Vec<String>,
    /// Sustained request rate. Default 600.
    #[serde(default = "default_requests_per_minute")]
    pub(super) requests_per_minute: u32,
    /// Requests allowed at once on top of the rate. Default 20.
    #[serde(default = "default_burst")]
    pub(super) burst: u32,
}

fn default_requests_per_minute() -> u32 {
    600
}
fn default_burst() -> u32 {
    20
}

/// Secrets may come from the environment, where figment reads `12345` as a
/// number: accept numbers as their digits rather than fail on a numeric key.
fn opt_secret<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SecretString>, D::Error> {
    Ok(chatgate_providers::wire::lenient_opt_string(d)?.map(SecretString::from))
}
