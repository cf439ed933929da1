//! Configuration: figment layers (built-in defaults < TOML file < `CHATGATE_`
//! environment) deserialized into raw structs that reject unknown keys, then
//! validated all at once into a typed, immutable [`Config`].
//!
//! Validation reports *every* problem in one go, each naming its key path and
//! where the value came from (the file or the environment variable), because ops
//! fix configs in a deploy loop where one error per attempt is expensive.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chatgate_providers::wire::lenient_string;
use chatgate_providers::{AdapterOptions, Dialect, ProviderKind};
use figment::providers::{Env, Format, Toml};
use figment::Figment;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer};
use sha2::{Digest, Sha256};

/// The environment variable prefix for overrides; `__` separates key levels.
pub const ENV_PREFIX: &str = "CHATGATE_";

/// Environment variables with the prefix that are not config keys.
const ENV_NOT_KEYS: [&str; 2] = ["config", "log_format"];

/// The smallest client key accepted, so a guessable key cannot slip into
/// production by way of a test config.
const MIN_CLIENT_KEY_LEN: usize = 16;

/// A configuration that failed to load or validate: one line per problem.
#[derive(Debug, thiserror::Error)]
pub struct ConfigError {
    /// Every problem found, each naming its key path and origin.
    pub problems: Vec<String>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "invalid configuration ({} problem(s)):",
            self.problems.len()
        )?;
        for p in &self.problems {
            writeln!(f, "  - {p}")?;
        }
        Ok(())
    }
}

impl ConfigError {
    fn one(problem: String) -> Self {
        Self {
            problems: vec![problem],
        }
    }
}

// ---------------------------------------------------------------------------
// Raw, as written by ops.
// ---------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    server: RawServer,
    #[serde(default)]
    cache: RawCache,
    #[serde(default)]
    providers: BTreeMap<String, RawProvider>,
    #[serde(default)]
    bots: BTreeMap<String, RawBot>,
    #[serde(default)]
    clients: BTreeMap<String, RawClient>,
}

/// `[server]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawServer {
    /// Listen address. Default `127.0.0.1:8080`.
    bind: String,
    /// Worker threads; 0 = one per CPU. Default 0.
    workers: usize,
    /// Bound on one whole API request, all vendor calls included, in ms. Default 30000.
    request_timeout_ms: u64,
    /// Time allowed to receive a request body once its handler starts reading
    /// it, in ms; past it, 408 and the connection closes. Default 10000.
    request_body_timeout_ms: u64,
    /// Failed authentications allowed per remote IP per minute. Default 60.
    auth_failures_per_minute: u32,
    /// Failed authentications allowed in a burst per remote IP. Default 20.
    auth_failure_burst: u32,
    /// A separate address for `/metrics` (then the main address does not serve it).
    metrics_bind: Option<String>,
    /// Vendor calls one API request may make, retries included. Default 100.
    max_vendor_calls_per_request: u32,
    /// Vendor body bytes held at once by the whole process. Default 64 MiB.
    max_inflight_body_bytes: u64,
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
struct RawCache {
    /// Whether responses are cached at all. Default true.
    enabled: bool,
    /// Fresh lifetime of an entry, seconds. Default 60.
    ttl_secs: u64,
    /// How long after expiry a stale entry may still answer when the vendor
    /// fails, seconds. Default 300.
    stale_if_error_secs: u64,
    /// Bound on the cache's total weight (serialized bytes). Default 64 MiB.
    max_bytes: u64,
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
struct RawProvider {
    /// `chatbase | chatzuri | chatling`; defaults to the table name.
    #[serde(default)]
    kind: Option<String>,
    /// Defaults to the vendor's production URL.
    #[serde(default)]
    base_url: Option<String>,
    /// The vendor secret key. Required.
    #[serde(default, deserialize_with = "opt_secret")]
    api_key: Option<SecretString>,
    /// Total time for one vendor call (connect, send, whole body), ms. Default 10000.
    #[serde(default = "default_timeout_ms")]
    timeout_ms: u64,
    /// Time to establish a connection, ms. Default 3000.
    #[serde(default = "default_connect_timeout_ms")]
    connect_timeout_ms: u64,
    /// Largest vendor body read, bytes. Default 16 MiB.
    #[serde(default = "default_max_body_bytes")]
    max_body_bytes: u64,
    /// Chatzuri only: `current` (GET, agentId) or `legacy` (POST body, chatbotId).
    #[serde(default)]
    dialect: Option<String>,
    /// Chatling: bound on vendor pages read per request when the gateway filters
    /// or assembles pages. Default 50.
    #[serde(default = "default_max_scan_pages")]
    max_scan_pages: u32,
    /// Calls per second to this vendor account, shared by every caller. Default:
    /// the vendor's documented quota where there is one (Chatling 300/min → 5),
    /// else 10.
    #[serde(default)]
    max_requests_per_second: Option<u32>,
    /// Retries of one vendor call (connect errors, 429, 502, 503, 504). Default 2.
    #[serde(default = "default_max_retries")]
    max_retries: u32,
    /// Longest `Retry-After` (or 429 pause) a request waits out before retrying,
    /// ms; longer ones are answered with 429 at once. Default 5000.
    #[serde(default = "default_max_retry_wait_ms")]
    max_retry_wait_ms: u64,
    /// Longest a vendor 429 may pause calls to this account, seconds, whatever
    /// `Retry-After` it sends. Default 300.
    #[serde(default = "default_max_pause_secs")]
    max_pause_secs: u64,
    /// Consecutive failed calls that open the circuit. Default 5.
    #[serde(default = "default_circuit_failure_threshold")]
    circuit_failure_threshold: u32,
    /// Seconds an open circuit waits before one probe. Default 30.
    #[serde(default = "default_circuit_cooldown_secs")]
    circuit_cooldown_secs: u64,
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
struct RawBot {
    /// A `[providers.*]` table name.
    #[serde(default)]
    provider: Option<String>,
    /// The vendor's chatbot id (text; a number is read as its digits).
    #[serde(
        default,
        deserialize_with = "chatgate_providers::wire::lenient_opt_string"
    )]
    chatbot_id: Option<String>,
    /// Several backends, merged newest first, in this order on equal times.
    #[serde(default)]
    backends: Option<Vec<RawBackend>>,
}

/// `[[bots.<name>.backends]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBackend {
    /// A `[providers.*]` table name.
    provider: String,
    /// The vendor's chatbot id.
    #[serde(deserialize_with = "lenient_string")]
    chatbot_id: String,
}

/// `[clients.<name>]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClient {
    /// The client's bearer key, in plain text.
    #[serde(default, deserialize_with = "opt_secret")]
    key: Option<SecretString>,
    /// Or the hex SHA-256 of the key, so the file holds no plaintext key.
    #[serde(default)]
    key_sha256: Option<String>,
    /// Bot names this client may read, or `["*"]`.
    #[serde(default)]
    bots: Vec<String>,
    /// Sustained request rate. Default 600.
    #[serde(default = "default_requests_per_minute")]
    requests_per_minute: u32,
    /// Requests allowed at once on top of the rate. Default 20.
    #[serde(default = "default_burst")]
    burst: u32,
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

// ---------------------------------------------------------------------------
// Typed, validated.
// ---------------------------------------------------------------------------

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

/// Where the config file is looked for: `--config`, else `$CHATGATE_CONFIG`, else
/// `./config.toml` (clap resolves the first two).
pub fn resolve_path(cli: Option<PathBuf>) -> PathBuf {
    cli.unwrap_or_else(|| PathBuf::from("config.toml"))
}

/// Loads and validates the file at `path` with environment overrides.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    if !path.is_file() {
        return Err(ConfigError::one(format!(
            "config file {} not found (set --config PATH or CHATGATE_CONFIG)",
            path.display()
        )));
    }
    let figment = Figment::new()
        .merge(Toml::file_exact(path))
        .merge(env_provider());
    from_figment(&figment, path)
}

/// Validates a TOML document with no environment overrides (tests, demo).
pub fn from_toml_str(toml: &str) -> Result<Config, ConfigError> {
    from_figment(
        &Figment::new().merge(Toml::string(toml)),
        Path::new("<inline>"),
    )
}

fn env_provider() -> Env {
    Env::prefixed(ENV_PREFIX)
        .split("__")
        .filter(|k| !ENV_NOT_KEYS.iter().any(|n| k == *n))
}

/// Names where a key's value came from: the file, or the exact env variable.
fn origin(figment: &Figment, key: &str) -> String {
    let Some(meta) = figment.find_metadata(key) else {
        return format!("`{key}`");
    };
    let keys: Vec<&str> = key.split('.').collect();
    match &meta.source {
        Some(figment::Source::File(p)) => format!("`{key}` in {}", p.display()),
        _ if meta.name.contains("environment") => format!(
            "`{key}` (environment variable {ENV_PREFIX}{})",
            keys.join("__").to_ascii_uppercase()
        ),
        _ => format!("`{key}`"),
    }
}

fn from_figment(figment: &Figment, path: &Path) -> Result<Config, ConfigError> {
    let raw: RawConfig = figment.extract().map_err(|e| ConfigError {
        // Figment names keys with their profile (`default.`), which ops never wrote.
        problems: e
            .into_iter()
            .map(|e| e.to_string().replace("key \"default.", "key \""))
            .collect(),
    })?;
    let mut problems = Vec::new();
    let mut p = |key: &str, msg: String| problems.push(format!("{}: {msg}", origin(figment, key)));

    let server = validate_server(&raw.server, &mut p);
    let cache = validate_cache(&raw.cache, &mut p);

    let mut providers = BTreeMap::new();
    for (name, rp) in &raw.providers {
        if let Some(pc) = validate_provider(name, rp, &mut p) {
            providers.insert(name.clone(), Arc::new(pc));
        }
    }

    let mut bots = BTreeMap::new();
    for (name, rb) in &raw.bots {
        let key = format!("bots.{name}");
        if !valid_name(name) {
            p(
                &key,
                "a bot name must be 1-128 characters of letters, digits, `_`, `-` or `.`"
                    .to_owned(),
            );
        }
        let backends: Vec<(String, Backend)> = match (&rb.provider, &rb.chatbot_id, &rb.backends) {
            (Some(provider), Some(chatbot_id), None) => vec![(
                key.clone(),
                Backend {
                    provider: provider.clone(),
                    chatbot_id: chatbot_id.clone(),
                },
            )],
            (None, None, Some(list)) if !list.is_empty() => list
                .iter()
                .enumerate()
                .map(|(i, b)| {
                    (
                        format!("{key}.backends[{i}]"),
                        Backend {
                            provider: b.provider.clone(),
                            chatbot_id: b.chatbot_id.clone(),
                        },
                    )
                })
                .collect(),
            (None, None, Some(_)) => {
                p(&key, "`backends` must list at least one backend".to_owned());
                Vec::new()
            }
            (_, _, Some(_)) => {
                p(
                    &key,
                    "set either `provider` + `chatbot_id` or `backends`, not both".to_owned(),
                );
                Vec::new()
            }
            _ => {
                p(
                    &key,
                    "needs `provider` and `chatbot_id` (or a `backends` list)".to_owned(),
                );
                Vec::new()
            }
        };
        for (i, (at, b)) in backends.iter().enumerate() {
            if !raw.providers.contains_key(&b.provider) {
                p(
                    &format!("{at}.provider"),
                    format!(
                        "names provider `{}`, which is not defined (defined: {})",
                        b.provider,
                        list(raw.providers.keys())
                    ),
                );
            }
            if b.chatbot_id.trim().is_empty() {
                p(&format!("{at}.chatbot_id"), "must not be empty".to_owned());
            }
            if backends[..i].iter().any(|(_, other)| other == b) {
                p(
                    at,
                    "lists the same provider and chatbot_id twice".to_owned(),
                );
            }
        }
        bots.insert(
            name.clone(),
            Arc::new(BotConfig {
                name: name.clone(),
                backends: backends.into_iter().map(|(_, b)| b).collect(),
            }),
        );
    }

    let mut clients = Vec::new();
    let mut seen_keys: BTreeMap<[u8; 32], &str> = BTreeMap::new();
    for (name, rc) in &raw.clients {
        let key = format!("clients.{name}");
        let hash = match (&rc.key, &rc.key_sha256) {
            (Some(k), None) => {
                let k = k.expose_secret();
                if k.len() < MIN_CLIENT_KEY_LEN {
                    p(
                        &format!("{key}.key"),
                        format!("must be at least {MIN_CLIENT_KEY_LEN} characters"),
                    );
                }
                Some(Sha256::digest(k.as_bytes()).into())
            }
            (None, Some(h)) => {
                let decoded = hex::decode(h.trim())
                    .ok()
                    .and_then(|b| <[u8; 32]>::try_from(b).ok());
                if decoded.is_none() {
                    p(
                        &format!("{key}.key_sha256"),
                        "must be 64 hexadecimal characters".to_owned(),
                    );
                }
                decoded
            }
            (Some(_), Some(_)) => {
                p(
                    &key,
                    "set either `key` or `key_sha256`, not both".to_owned(),
                );
                None
            }
            (None, None) => {
                p(&key, "needs `key` or `key_sha256`".to_owned());
                None
            }
        };
        if let Some(h) = hash {
            if let Some(other) = seen_keys.insert(h, name) {
                p(
                    &key,
                    format!("has the same key as client `{other}`; each client needs its own"),
                );
            }
        }
        let scope = if rc.bots.iter().any(|b| b == "*") {
            if rc.bots.len() > 1 {
                p(
                    &format!("{key}.bots"),
                    "`*` already allows every bot; list nothing else".to_owned(),
                );
            }
            BotScope::All
        } else {
            for b in &rc.bots {
                if !raw.bots.contains_key(b) {
                    p(
                        &format!("{key}.bots"),
                        format!(
                            "names bot `{b}`, which is not defined (defined: {})",
                            list(raw.bots.keys())
                        ),
                    );
                }
            }
            if rc.bots.is_empty() {
                p(
                    &format!("{key}.bots"),
                    "must list at least one bot, or `*`".to_owned(),
                );
            }
            BotScope::Only(rc.bots.iter().cloned().collect())
        };
        let rate = rate(
            &key,
            rc.requests_per_minute,
            "requests_per_minute",
            Duration::from_secs(60),
            rc.burst,
            &mut p,
        );
        clients.push(Arc::new(ClientConfig {
            name: name.clone(),
            key_sha256: hash.unwrap_or_default(),
            bots: scope,
            rate: rate.unwrap_or(Rate {
                count: NonZeroU32::MIN,
                period: Duration::from_secs(60),
                burst: NonZeroU32::MIN,
            }),
        }));
    }

    for (name, rp) in &raw.providers {
        if rp.max_body_bytes > raw.server.max_inflight_body_bytes {
            p(
                &format!("providers.{name}.max_body_bytes"),
                format!(
                    "is larger than server.max_inflight_body_bytes ({}): such a body could never be read",
                    raw.server.max_inflight_body_bytes
                ),
            );
        }
    }

    // A config that parses but can serve no one (an emptied file, a bad
    // template) must be refused like any other: swapped in by a reload, it
    // would turn every caller's valid key into a failed login.
    if raw.bots.is_empty() {
        p(
            "bots",
            "at least one bot is required ([bots.<name>] with a provider and chatbot_id)"
                .to_owned(),
        );
    }
    if raw.clients.is_empty() {
        p(
            "clients",
            "at least one client is required ([clients.<name>] with a key and bots)".to_owned(),
        );
    }

    match (server, problems.is_empty()) {
        (Some(server), true) => Ok(Config {
            path: path.to_owned(),
            server,
            cache,
            providers,
            bots,
            clients,
        }),
        _ => Err(ConfigError { problems }),
    }
}

fn validate_server(raw: &RawServer, p: &mut impl FnMut(&str, String)) -> Option<ServerConfig> {
    let bind = raw.bind.parse::<SocketAddr>();
    if bind.is_err() {
        p(
            "server.bind",
            format!("{:?} is not an IP:port address", raw.bind),
        );
    }
    in_range(
        p,
        "server.request_timeout_ms",
        raw.request_timeout_ms,
        1,
        MAX_MS,
    );
    in_range(
        p,
        "server.max_inflight_body_bytes",
        raw.max_inflight_body_bytes,
        1024,
        16 * MAX_BODY_BYTES,
    );
    in_range(
        p,
        "server.max_vendor_calls_per_request",
        u64::from(raw.max_vendor_calls_per_request),
        1,
        10_000,
    );
    in_range(
        p,
        "server.request_body_timeout_ms",
        raw.request_body_timeout_ms,
        1,
        MAX_MS,
    );
    let auth_failures = rate(
        "server",
        raw.auth_failures_per_minute,
        "auth_failures_per_minute",
        Duration::from_secs(60),
        raw.auth_failure_burst,
        p,
    );
    let metrics_bind = match &raw.metrics_bind {
        None => Some(None),
        Some(addr) => match addr.parse::<SocketAddr>() {
            Ok(a) => Some(Some(a)),
            Err(_) => {
                p(
                    "server.metrics_bind",
                    format!("{addr:?} is not an IP:port address"),
                );
                None
            }
        },
    };
    Some(ServerConfig {
        metrics_bind: metrics_bind?,
        bind: bind.ok()?,
        workers: raw.workers,
        request_timeout: Duration::from_millis(raw.request_timeout_ms),
        request_body_timeout: Duration::from_millis(raw.request_body_timeout_ms),
        auth_failures: auth_failures?,
        max_vendor_calls_per_request: NonZeroU32::new(raw.max_vendor_calls_per_request)?,
        max_inflight_body_bytes: raw.max_inflight_body_bytes,
    })
}

/// A rate from a count per `period` and a burst, both non-zero.
fn rate(
    table: &str,
    count: u32,
    count_field: &str,
    period: Duration,
    burst: u32,
    p: &mut impl FnMut(&str, String),
) -> Option<Rate> {
    let burst_field = if table == "server" {
        "auth_failure_burst"
    } else {
        "burst"
    };
    let c = NonZeroU32::new(count);
    if c.is_none() {
        p(
            &format!("{table}.{count_field}"),
            "must be greater than 0".to_owned(),
        );
    }
    let b = NonZeroU32::new(burst);
    if b.is_none() {
        p(
            &format!("{table}.{burst_field}"),
            "must be greater than 0".to_owned(),
        );
    }
    Some(Rate {
        count: c?,
        period,
        burst: b?,
    })
}

fn validate_cache(raw: &RawCache, p: &mut impl FnMut(&str, String)) -> CacheConfig {
    if raw.enabled {
        if raw.ttl_secs == 0 {
            p(
                "cache.ttl_secs",
                "must be greater than 0 (or set cache.enabled = false)".to_owned(),
            );
        }
        if raw.max_bytes == 0 {
            p(
                "cache.max_bytes",
                "must be greater than 0 (or set cache.enabled = false)".to_owned(),
            );
        }
    }
    in_range(p, "cache.ttl_secs", raw.ttl_secs, 0, MAX_CACHE_SECS);
    in_range(
        p,
        "cache.stale_if_error_secs",
        raw.stale_if_error_secs,
        0,
        MAX_CACHE_SECS,
    );
    CacheConfig {
        enabled: raw.enabled,
        ttl: Duration::from_secs(raw.ttl_secs),
        stale_if_error: Duration::from_secs(raw.stale_if_error_secs),
        max_bytes: raw.max_bytes,
    }
}

fn validate_provider(
    name: &str,
    rp: &RawProvider,
    p: &mut impl FnMut(&str, String),
) -> Option<ProviderConfig> {
    let key = format!("providers.{name}");
    let kind_name = rp.kind.as_deref().unwrap_or(name);
    let kind = ProviderKind::parse(kind_name);
    if kind.is_none() {
        let at = if rp.kind.is_some() {
            format!("{key}.kind")
        } else {
            key.clone()
        };
        p(
            &at,
            format!(
                "unknown provider kind `{kind_name}` (known: {}); set `kind` when the table name is not a kind",
                list(ProviderKind::ALL.iter().map(|k| k.as_str()))
            ),
        );
    }
    let api_key = rp
        .api_key
        .clone()
        .filter(|k| !k.expose_secret().trim().is_empty());
    if api_key.is_none() {
        p(
            &format!("{key}.api_key"),
            format!(
                "is required (or set {ENV_PREFIX}PROVIDERS__{}__API_KEY)",
                name.to_ascii_uppercase()
            ),
        );
    }
    let base_url = match (&rp.base_url, kind) {
        (Some(url), _) => {
            let url = url.trim_end_matches('/').to_owned();
            if let Err(why) = check_url(&url) {
                p(&format!("{key}.base_url"), why);
            }
            Some(url)
        }
        (None, Some(k)) => Some(default_base_url(k).to_owned()),
        (None, None) => None,
    };
    for (field, v, lo, hi) in [
        ("timeout_ms", rp.timeout_ms, 1, MAX_MS),
        ("connect_timeout_ms", rp.connect_timeout_ms, 1, MAX_MS),
        ("max_body_bytes", rp.max_body_bytes, 1, MAX_BODY_BYTES),
        ("max_retry_wait_ms", rp.max_retry_wait_ms, 0, MAX_MS),
        ("max_pause_secs", rp.max_pause_secs, 1, 86_400),
        ("max_scan_pages", u64::from(rp.max_scan_pages), 1, 10_000),
    ] {
        in_range(p, &format!("{key}.{field}"), v, lo, hi);
    }
    let threshold = NonZeroU32::new(rp.circuit_failure_threshold);
    if threshold.is_none() {
        p(
            &format!("{key}.circuit_failure_threshold"),
            "must be greater than 0".to_owned(),
        );
    }
    if rp.circuit_cooldown_secs == 0 || rp.circuit_cooldown_secs > 86_400 {
        p(
            &format!("{key}.circuit_cooldown_secs"),
            "must be from 1 to 86400".to_owned(),
        );
    }
    if rp.max_retries > 10 {
        p(
            &format!("{key}.max_retries"),
            "must be at most 10".to_owned(),
        );
    }
    let max_scan_pages = NonZeroU32::new(rp.max_scan_pages);
    let dialect = match (rp.dialect.as_deref(), kind) {
        (None, _) => Dialect::Current,
        (Some("current"), Some(ProviderKind::Chatzuri)) => Dialect::Current,
        (Some("legacy"), Some(ProviderKind::Chatzuri)) => Dialect::Legacy,
        (Some(_), Some(ProviderKind::Chatzuri)) => {
            p(
                &format!("{key}.dialect"),
                "must be `current` or `legacy`".to_owned(),
            );
            Dialect::Current
        }
        (Some(_), _) => {
            p(
                &format!("{key}.dialect"),
                "only Chatzuri providers have dialects".to_owned(),
            );
            Dialect::Current
        }
    };
    let max_rps = match rp.max_requests_per_second {
        Some(n) => NonZeroU32::new(n),
        None => kind.map(default_requests_per_second),
    };
    if rp.max_requests_per_second.is_some() && max_rps.is_none() {
        p(
            &format!("{key}.max_requests_per_second"),
            "must be greater than 0".to_owned(),
        );
    }
    Some(ProviderConfig {
        name: name.to_owned(),
        kind: kind?,
        base_url: base_url?,
        api_key: api_key?,
        timeout: Duration::from_millis(rp.timeout_ms),
        connect_timeout: Duration::from_millis(rp.connect_timeout_ms),
        max_body_bytes: usize::try_from(rp.max_body_bytes).unwrap_or(usize::MAX),
        adapter: AdapterOptions {
            dialect,
            max_scan_pages: max_scan_pages?,
        },
        max_requests_per_second: max_rps?,
        max_retries: rp.max_retries,
        max_retry_wait: Duration::from_millis(rp.max_retry_wait_ms),
        max_pause: Duration::from_secs(rp.max_pause_secs),
        circuit_failure_threshold: threshold?,
        circuit_cooldown: Duration::from_secs(rp.circuit_cooldown_secs),
    })
}

/// The provider guard's default: the vendor's documented quota where it publishes
/// one (Chatling: 300 calls per minute per key = 5/s), else 10/s (Chatbase v1 and
/// Chatzuri publish no number).
pub fn default_requests_per_second(kind: ProviderKind) -> NonZeroU32 {
    let n = match kind {
        ProviderKind::Chatling => 5,
        ProviderKind::Chatbase | ProviderKind::Chatzuri => 10,
    };
    NonZeroU32::new(n).expect("a non-zero literal")
}

/// The vendors' production base URLs (vendors.md).
pub fn default_base_url(kind: ProviderKind) -> &'static str {
    match kind {
        ProviderKind::Chatbase => "https://www.chatbase.co/api/v1",
        ProviderKind::Chatzuri => "https://www.chatzuri.com/api/v1",
        ProviderKind::Chatling => "https://api.chatling.ai/v2",
    }
}

fn check_url(url: &str) -> Result<(), String> {
    let uri: awc::http::Uri = url.parse().map_err(|_| format!("{url:?} is not a URL"))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        _ => return Err(format!("{url:?} must start with http:// or https://")),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(format!("{url:?} has no host"));
    }
    if uri.query().is_some() || url.contains('#') {
        return Err(format!("{url:?} must not have a query or fragment"));
    }
    Ok(())
}

/// Upper bound of every millisecond duration key (one hour): far above any
/// sensible setting, and low enough that `now + duration` can never overflow.
const MAX_MS: u64 = 3_600_000;

/// Upper bound of the cache's lifetimes (one year), for the same reason.
const MAX_CACHE_SECS: u64 = 365 * 86_400;

/// Upper bound of `max_body_bytes` (1 GiB): a larger vendor body is a fault.
const MAX_BODY_BYTES: u64 = 1 << 30;

/// Reports `key` unless `lo <= value <= hi`, so no configured number can make
/// time or size arithmetic overflow later.
fn in_range(p: &mut impl FnMut(&str, String), key: &str, value: u64, lo: u64, hi: u64) {
    if value < lo || value > hi {
        p(key, format!("must be from {lo} to {hi} (got {value})"));
    }
}

/// Bot names travel in query strings and logs: keep them plain.
fn valid_name(name: &str) -> bool {
    (1..=128).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b))
}

fn list<I: IntoIterator<Item = S>, S: AsRef<str>>(items: I) -> String {
    let v: Vec<String> = items
        .into_iter()
        .map(|s| format!("`{}`", s.as_ref()))
        .collect();
    if v.is_empty() {
        "none".to_owned()
    } else {
        v.join(", ")
    }
}
