//! `[redis]`: where the shared store is and how long one operation may take.
//!
//! The URL may hold a password, so it is a [`SecretString`]: `Debug` prints only
//! `scheme://host:port/db`, and no validation message repeats the URL or any
//! part of it a user could have typed a secret into.

use std::fmt;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

/// Prefix of every key chatgate writes, when `redis.key_prefix` is not set.
pub const DEFAULT_KEY_PREFIX: &str = "chatgate:";

/// Bound on one Redis operation, when `redis.timeout_ms` is not set: a
/// loopback or same-zone round trip is well under a millisecond, so 50 ms means
/// "Redis is in trouble", and a request pays at most that before falling back.
pub const DEFAULT_TIMEOUT_MS: u64 = 50;

/// The largest `redis.timeout_ms`: past it, a request would wait on Redis for
/// longer than a vendor call usually takes, defeating the fallback.
pub const MAX_TIMEOUT_MS: u64 = 10_000;

/// The longest `redis.key_prefix`: it is repeated in every key.
pub const MAX_KEY_PREFIX_LEN: usize = 64;

/// The largest body shared through Redis, when `redis.cache_max_body_bytes`
/// is not set: a 100-conversation page is about 250 KB; a body much larger
/// than a megabyte costs every instance reading it more than a vendor call
/// saves, and one hot key of that size would crowd Redis's network.
pub const DEFAULT_CACHE_MAX_BODY_BYTES: u64 = 1024 * 1024;

/// The largest `redis.cache_max_body_bytes` (Redis's own bound on a value
/// is 512 MB; past a few MiB per body, sharing costs more than it saves).
pub const MAX_CACHE_MAX_BODY_BYTES: u64 = 64 * 1024 * 1024;

/// The `[redis]` values as read from the config, before validation.
#[derive(Debug, Default, Clone, Copy)]
pub struct RawSettings<'a> {
    /// `redis.url`.
    pub url: Option<&'a SecretString>,
    /// `redis.key_prefix`.
    pub key_prefix: Option<&'a str>,
    /// `redis.timeout_ms`.
    pub timeout_ms: Option<u64>,
    /// `redis.cache_max_body_bytes`.
    pub cache_max_body_bytes: Option<u64>,
}

/// Where the shared store is and how chatgate uses it (validated). `Clone`, so
/// the running config can keep its copy while the store owns one.
#[derive(Clone)]
pub struct RedisSettings {
    /// `redis.url`: `redis://[user:password@]host[:port][/db]`, or `rediss://`
    /// for TLS (verified against the same web PKI roots as vendor calls).
    pub url: SecretString,
    /// `redis.key_prefix`: the start of every key, so several deployments (or
    /// other applications) can share one Redis without colliding.
    pub key_prefix: String,
    /// `redis.timeout_ms`: the bound on each operation, connecting included.
    pub timeout: Duration,
    /// `redis.cache_max_body_bytes`: the largest response body shared through
    /// the second cache level; larger ones stay in the instance's own cache.
    /// 0 shares no body (limits and pauses are still shared).
    pub cache_max_body_bytes: usize,
}

impl RedisSettings {
    /// Validates raw `[redis]` values, reporting every problem through
    /// `problem(key, message)` (the config loader's reporter, which adds where
    /// the value came from). `None` when anything is wrong.
    ///
    /// `url` is required; the others default to [`DEFAULT_KEY_PREFIX`],
    /// [`DEFAULT_TIMEOUT_MS`] and [`DEFAULT_CACHE_MAX_BODY_BYTES`].
    pub fn validate(raw: RawSettings<'_>, problem: &mut impl FnMut(&str, String)) -> Option<Self> {
        let RawSettings {
            url,
            key_prefix,
            timeout_ms,
            cache_max_body_bytes,
        } = raw;
        let mut ok = true;
        let mut bad = |key: &str, message: String| {
            ok = false;
            problem(key, message);
        };
        match url {
            None => bad(
                "redis.url",
                "is required in [redis] (remove the section to run without Redis)".to_owned(),
            ),
            Some(url) => {
                if let Err(message) = parse_url(url.expose_secret()) {
                    bad("redis.url", message);
                }
            }
        }
        let key_prefix = key_prefix.unwrap_or(DEFAULT_KEY_PREFIX);
        if key_prefix.is_empty() || key_prefix.len() > MAX_KEY_PREFIX_LEN {
            bad(
                "redis.key_prefix",
                format!("must be 1 to {MAX_KEY_PREFIX_LEN} characters"),
            );
        } else if !key_prefix.bytes().all(|b| b.is_ascii_graphic()) {
            bad(
                "redis.key_prefix",
                "must be printable ASCII without spaces".to_owned(),
            );
        }
        let timeout_ms = timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS);
        if !(1..=MAX_TIMEOUT_MS).contains(&timeout_ms) {
            bad(
                "redis.timeout_ms",
                format!("must be from 1 to {MAX_TIMEOUT_MS} (got {timeout_ms})"),
            );
        }
        let max_body = cache_max_body_bytes.unwrap_or(DEFAULT_CACHE_MAX_BODY_BYTES);
        if max_body > MAX_CACHE_MAX_BODY_BYTES {
            bad(
                "redis.cache_max_body_bytes",
                format!("must be from 0 to {MAX_CACHE_MAX_BODY_BYTES} (got {max_body})"),
            );
        }
        let url = url?;
        ok.then(|| Self {
            url: url.clone(),
            key_prefix: key_prefix.to_owned(),
            timeout: Duration::from_millis(timeout_ms),
            cache_max_body_bytes: usize::try_from(max_body).unwrap_or(usize::MAX),
        })
    }

    /// [`validate`](Self::validate) for callers without a config loader (tests,
    /// tools): problems come back as `key: message` lines.
    pub fn new(
        url: &str,
        key_prefix: Option<&str>,
        timeout_ms: Option<u64>,
    ) -> Result<Self, Vec<String>> {
        let mut problems = Vec::new();
        let url = SecretString::from(url);
        let raw = RawSettings {
            url: Some(&url),
            key_prefix,
            timeout_ms,
            cache_max_body_bytes: None,
        };
        let settings = Self::validate(raw, &mut |key, message| {
            problems.push(format!("{key}: {message}"));
        });
        settings.ok_or(problems)
    }

    /// `scheme://host:port/db`: the URL without credentials, for logs.
    pub fn display_url(&self) -> String {
        match parse_url(self.url.expose_secret()) {
            Ok(url) => format!(
                "{}://{}:{}/{}",
                url.scheme(),
                host_of(&url),
                url.port().unwrap_or(DEFAULT_PORT),
                database(&url).unwrap_or(0)
            ),
            Err(_) => "[invalid]".to_owned(),
        }
    }
}

impl fmt::Debug for RedisSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisSettings")
            .field("url", &self.display_url())
            .field("key_prefix", &self.key_prefix)
            .field("timeout", &self.timeout)
            .field("cache_max_body_bytes", &self.cache_max_body_bytes)
            .finish()
    }
}

const DEFAULT_PORT: u16 = 6379;

/// Parses a Redis URL, with messages that never quote it: a typo in the
/// password must not end up in a deploy log.
fn parse_url(raw: &str) -> Result<url::Url, String> {
    const SHAPE: &str = "(expected redis://[user:password@]host[:port][/db] or rediss://…)";
    let url = url::Url::parse(raw).map_err(|e| format!("is not a URL: {e} {SHAPE}"))?;
    if !matches!(url.scheme(), "redis" | "rediss") {
        return Err(format!("must start with redis:// or rediss:// {SHAPE}"));
    }
    if url.host().is_none() {
        return Err(format!("names no host {SHAPE}"));
    }
    if database(&url).is_none() {
        return Err(format!(
            "its path must be a database number such as /0 {SHAPE}"
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!("takes no ?query or #fragment {SHAPE}"));
    }
    // The client's own parser has rules of its own (no wildcard address, UTF-8
    // credentials); its messages are fixed strings, but stay generic anyway.
    ::redis::Client::open(url.as_str())
        .map_err(|_| format!("is not a URL the Redis client accepts {SHAPE}"))?;
    Ok(url)
}

/// The database number in the URL's path (`/` or none is 0).
fn database(url: &url::Url) -> Option<u32> {
    match url.path().trim_matches('/') {
        "" => Some(0),
        db => db.parse().ok(),
    }
}

fn host_of(url: &url::Url) -> String {
    match url.host() {
        Some(url::Host::Ipv6(ip)) => format!("[{ip}]"),
        Some(host) => host.to_string(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(url: Option<&str>, prefix: Option<&str>, timeout: Option<u64>) -> Vec<String> {
        let url = url.map(SecretString::from);
        let mut out = Vec::new();
        let raw = RawSettings {
            url: url.as_ref(),
            key_prefix: prefix,
            timeout_ms: timeout,
            cache_max_body_bytes: None,
        };
        let settings = RedisSettings::validate(raw, &mut |k, m| out.push(format!("{k}: {m}")));
        assert_eq!(settings.is_some(), out.is_empty(), "{out:?}");
        out
    }

    #[test]
    fn defaults_fill_prefix_and_timeout() {
        let s = RedisSettings::new("redis://127.0.0.1", None, None).unwrap();
        assert_eq!(s.key_prefix, "chatgate:");
        assert_eq!(s.timeout, Duration::from_millis(50));
        assert_eq!(s.cache_max_body_bytes, 1024 * 1024);
        assert_eq!(s.display_url(), "redis://127.0.0.1:6379/0");
    }

    #[test]
    fn the_shared_body_bound_has_a_range() {
        let url = SecretString::from("redis://h");
        let check = |bytes| {
            let mut out = Vec::new();
            let raw = RawSettings {
                url: Some(&url),
                cache_max_body_bytes: Some(bytes),
                ..RawSettings::default()
            };
            let settings = RedisSettings::validate(raw, &mut |k, m| out.push(format!("{k}: {m}")));
            (settings.map(|s| s.cache_max_body_bytes), out)
        };
        assert_eq!(check(0).0, Some(0), "0 shares no body");
        assert_eq!(check(64 << 20).0, Some(64 << 20));
        let (settings, found) = check((64 << 20) + 1);
        assert!(settings.is_none());
        assert!(
            found[0].starts_with("redis.cache_max_body_bytes: "),
            "{found:?}"
        );
    }

    #[test]
    fn debug_shows_where_but_never_the_credentials() {
        let s = RedisSettings::new(
            "rediss://svc-user:hunter2-s3cret@cache.internal:6380/3",
            Some("prod:"),
            Some(20),
        )
        .unwrap();
        let debug = format!("{s:?}");
        assert!(debug.contains("rediss://cache.internal:6380/3"), "{debug}");
        assert!(!debug.contains("hunter2"), "{debug}");
        assert!(!debug.contains("svc-user"), "{debug}");
        assert!(format!("{s:#?}").contains("prod:"));
    }

    #[test]
    fn problems_name_their_keys_and_never_echo_the_url() {
        let secret = "hunter2-s3cret";
        for url in [
            format!("http://user:{secret}@host"),
            format!("redis://user:{secret}@host/notadb"),
            format!("redis://user:{secret}@host/0?protocol=resp3"),
            format!("redis://user:{secret}@host/0#insecure"),
            format!("redis://user:{secret}@0.0.0.0/0"),
            format!("redis://user:{secret}@host:99999"),
            format!("{secret} not a url"),
            format!("redis://:{secret}@/0"),
        ] {
            let found = problems(Some(&url), None, None);
            assert_eq!(found.len(), 1, "{url}: {found:?}");
            assert!(found[0].starts_with("redis.url: "), "{found:?}");
            assert!(!found[0].contains(secret), "{found:?}");
        }
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let found = problems(None, Some(""), Some(0));
        assert_eq!(found.len(), 3, "{found:?}");
        assert!(found[0].starts_with("redis.url: is required"));
        assert!(found[1].starts_with("redis.key_prefix: "));
        assert!(found[2].starts_with("redis.timeout_ms: "));
        let found = problems(Some("redis://h"), Some("has space"), Some(10_001));
        assert_eq!(found.len(), 2, "{found:?}");
    }

    #[test]
    fn ipv6_hosts_print_in_brackets() {
        let s = RedisSettings::new("redis://[::1]:7000", None, None).unwrap();
        assert_eq!(s.display_url(), "redis://[::1]:7000/0");
    }
}
