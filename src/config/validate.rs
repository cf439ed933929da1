//! Raw → typed: every problem collected, each naming its key path and origin.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chatgate_providers::{AdapterOptions, Dialect, ProviderKind};
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};

use super::raw::{RawBot, RawCache, RawConfig, RawProvider, RawServer};
use super::types::{
    Backend, BotConfig, BotScope, CacheConfig, ClientConfig, Config, ProviderConfig, Rate,
    ServerConfig,
};
use super::{ConfigError, ENV_PREFIX};
use crate::redis::settings::RawSettings;
use crate::redis::RedisSettings;

/// The smallest client key accepted, so a guessable key cannot slip into
/// production by way of a test config.
const MIN_CLIENT_KEY_LEN: usize = 16;

/// Turns `raw` into a [`Config`], or reports every problem found, each prefixed
/// by `origin(key)` (the key path and where its value came from).
pub(super) fn validate(
    raw: &RawConfig,
    path: &Path,
    origin: impl Fn(&str) -> String,
) -> Result<Config, ConfigError> {
    let mut problems = Vec::new();
    let mut p = |key: &str, msg: String| problems.push(format!("{}: {msg}", origin(key)));

    let server = validate_server(&raw.server, &mut p);
    let cache = validate_cache(&raw.cache, &mut p);
    let mut redis_ok = true;
    let redis = raw.redis.as_ref().and_then(|r| {
        let raw = RawSettings {
            url: r.url.as_ref(),
            key_prefix: r.key_prefix.as_deref(),
            timeout_ms: r.timeout_ms,
            cache_max_body_bytes: r.cache_max_body_bytes,
        };
        let settings = RedisSettings::validate(raw, &mut p);
        redis_ok = settings.is_some();
        settings
    });

    let mut providers = BTreeMap::new();
    for (name, rp) in &raw.providers {
        if let Some(pc) = validate_provider(name, rp, &mut p) {
            providers.insert(name.clone(), Arc::new(pc));
        }
    }

    let bots = raw
        .bots
        .iter()
        .map(|(name, rb)| {
            let bot = validate_bot(name, rb, &raw.providers, &mut p);
            (name.clone(), Arc::new(bot))
        })
        .collect();

    let clients = validate_clients(raw, &mut p);

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

    match (server, problems.is_empty() && redis_ok) {
        (Some(server), true) => Ok(Config {
            path: path.to_owned(),
            server,
            cache,
            providers,
            bots,
            clients,
            redis,
        }),
        _ => Err(ConfigError { problems }),
    }
}

/// One `[bots.<name>]`: either form, each backend naming a defined provider.
fn validate_bot(
    name: &str,
    rb: &RawBot,
    providers: &BTreeMap<String, RawProvider>,
    p: &mut impl FnMut(&str, String),
) -> BotConfig {
    let key = format!("bots.{name}");
    if !valid_name(name) {
        p(
            &key,
            "a bot name must be 1-128 characters of letters, digits, `_`, `-` or `.`".to_owned(),
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
        if !providers.contains_key(&b.provider) {
            p(
                &format!("{at}.provider"),
                format!(
                    "names provider `{}`, which is not defined (defined: {})",
                    b.provider,
                    list(providers.keys())
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
    BotConfig {
        name: name.to_owned(),
        backends: backends.into_iter().map(|(_, b)| b).collect(),
    }
}

/// Every `[clients.<name>]`: a key (or its hash) no other client has, bots that
/// exist, a non-zero rate.
fn validate_clients(raw: &RawConfig, p: &mut impl FnMut(&str, String)) -> Vec<Arc<ClientConfig>> {
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
            p,
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

    clients
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
        (None, Some(k)) => Some(k.info().default_base_url.to_owned()),
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
    let dialect = match (rp.dialect.as_deref(), kind.map(ProviderKind::info)) {
        (None, info) => info.map_or_else(Dialect::default, |i| i.default_dialect()),
        (Some(name), Some(info)) if !info.dialects.is_empty() => {
            info.dialect(name).unwrap_or_else(|| {
                let names = info.dialects.iter().map(|(n, _)| format!("`{n}`"));
                p(
                    &format!("{key}.dialect"),
                    format!("must be {}", either(names)),
                );
                info.default_dialect()
            })
        }
        (Some(_), _) => {
            let vendors = ProviderKind::ALL
                .iter()
                .map(|k| k.info())
                .filter(|i| !i.dialects.is_empty())
                .map(|i| i.display_name);
            p(
                &format!("{key}.dialect"),
                format!("only {} providers have dialects", either(vendors)),
            );
            Dialect::default()
        }
    };
    let max_rps = match rp.max_requests_per_second {
        Some(n) => NonZeroU32::new(n),
        None => kind.map(|k| k.info().default_requests_per_second),
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

/// `a`, `a or b`, `a, b or c`: the choices a value must be one of.
fn either<I: IntoIterator<Item = S>, S: AsRef<str>>(items: I) -> String {
    let v: Vec<S> = items.into_iter().collect();
    match v.split_last() {
        None => "none".to_owned(),
        Some((last, [])) => last.as_ref().to_owned(),
        Some((last, rest)) => {
            let rest: Vec<&str> = rest.iter().map(AsRef::as_ref).collect();
            format!("{} or {}", rest.join(", "), last.as_ref())
        }
    }
}
