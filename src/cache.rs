//! The response cache (SPEC §5): already-serialized response bodies in moka,
//! bounded by bytes, with request coalescing and stale-if-error.
//!
//! Two moka caches work together:
//! - `entries` holds bodies for `ttl + stale_if_error`; an entry younger than `ttl`
//!   is fresh (a HIT), an older one may only stand in when the vendor fails (STALE);
//! - `inflight` exists only to coalesce: every request that must reach the vendor for
//!   one key goes through its `try_get_with`, so concurrent misses make one vendor
//!   call, and its result — the body or the error — is handed to every waiter.
//!   The finished value moves to `entries` and is dropped from `inflight`.
//!
//! Only successful answers are stored. The key never holds the client key:
//! authorization is checked before the cache is consulted.

use std::future::Future;
use std::hash::Hash;
use std::ops::Deref;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use chatgate_providers::{ListQuery, ProviderKind};
use moka::future::Cache;

use crate::config::{BotConfig, CacheConfig, ProviderConfig};
use crate::error::GatewayError;

/// Bytes counted per entry on top of its value and key, for moka's own
/// bookkeeping, so `max_bytes` tracks memory rather than payload alone.
const ENTRY_OVERHEAD: usize = 256;

/// `cache.max_bytes` bounds both caches together: a quarter goes to the
/// backend chunks of dual-read bots, the rest to response bodies.
pub fn split_cache_budget(max_bytes: u64) -> (u64, u64) {
    let chunks = max_bytes / 4;
    (max_bytes - chunks, chunks)
}

/// An approximate size in bytes, for the weight bound.
pub trait Weigh {
    /// Roughly how many bytes this holds.
    fn weigh(&self) -> usize;

    /// Whether a freshly fetched value may be stored (values only). A value
    /// built from stale data is handed to its callers but never stored as if it
    /// were fresh: it would outlive the stale window it came from.
    fn storable(&self) -> bool {
        true
    }
}

/// One backend of a bot, as far as cached data is concerned: the provider's
/// name, kind and URL and the vendor's chatbot id, so a remapped bot never gets
/// its old vendor's data.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BackendId {
    provider: String,
    kind: ProviderKind,
    base_url: String,
    chatbot_id: String,
}

impl BackendId {
    /// The identity of `chatbot_id` at `provider`.
    pub fn new(provider: &ProviderConfig, chatbot_id: &str) -> Self {
        Self {
            provider: provider.name.clone(),
            kind: provider.kind,
            base_url: provider.base_url.clone(),
            chatbot_id: chatbot_id.to_owned(),
        }
    }
}

impl Weigh for BackendId {
    fn weigh(&self) -> usize {
        self.provider.len() + self.base_url.len() + self.chatbot_id.len() + 16
    }
}

/// What a cached answer is for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CacheKey {
    /// The bot's name (it is in the body as `chatbot_id`).
    bot: String,
    /// Where its history lives, in config order.
    backends: Vec<BackendId>,
    /// The operation and its normalized parameters.
    op: CacheOp,
}

/// The cached operations.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum CacheOp {
    List(ListQuery),
    Get { id: String, include_raw: bool },
}

impl CacheKey {
    /// The key of a list page.
    pub fn list(bot: &BotConfig, backends: Vec<BackendId>, query: &ListQuery) -> Self {
        Self::new(bot, backends, CacheOp::List(query.clone()))
    }

    /// The key of one conversation.
    pub fn get(bot: &BotConfig, backends: Vec<BackendId>, id: &str, include_raw: bool) -> Self {
        let op = CacheOp::Get {
            id: id.to_owned(),
            include_raw,
        };
        Self::new(bot, backends, op)
    }

    fn new(bot: &BotConfig, backends: Vec<BackendId>, op: CacheOp) -> Self {
        Self {
            bot: bot.name.clone(),
            backends,
            op,
        }
    }
}

impl Weigh for CacheKey {
    fn weigh(&self) -> usize {
        let op = match &self.op {
            CacheOp::List(_) => std::mem::size_of::<ListQuery>(),
            CacheOp::Get { id, .. } => id.len(),
        };
        self.bot.len() + self.backends.iter().map(Weigh::weigh).sum::<usize>() + op
    }
}

/// A successful answer, already serialized.
pub struct Listed {
    /// The response body.
    pub body: Bytes,
    /// `X-Provider`: the vendor kind, or a merged bot's kinds in config order.
    pub provider: String,
    /// Whether part of it came from stale cached data (a merged bot whose
    /// backend failed), so the answer says `X-Cache: STALE`.
    pub stale: bool,
}

impl Weigh for Listed {
    fn weigh(&self) -> usize {
        self.body.len() + self.provider.len()
    }

    fn storable(&self) -> bool {
        !self.stale
    }
}

/// A stored value and when it was stored.
#[derive(Debug)]
pub struct Stored<V> {
    value: V,
    stored: Instant,
}

impl<V> Deref for Stored<V> {
    type Target = V;
    fn deref(&self) -> &V {
        &self.value
    }
}

/// How a request was answered, for `X-Cache`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum CacheStatus {
    /// Fresh from the cache.
    Hit,
    /// From the vendor, now stored.
    Miss,
    /// The caller asked to skip the cache (`Cache-Control: no-cache`), or it is off.
    Bypass,
    /// From the cache after expiry, because the vendor failed.
    Stale,
}

impl CacheStatus {
    /// The `chatgate_cache_events_total{result}` label.
    pub fn metric_label(self) -> &'static str {
        match self {
            Self::Hit => "hit",
            Self::Miss => "miss",
            Self::Stale => "stale",
            Self::Bypass => "bypass",
        }
    }

    /// The header value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hit => "HIT",
            Self::Miss => "MISS",
            Self::Stale => "STALE",
            Self::Bypass => "BYPASS",
        }
    }
}

/// A cache with request coalescing and stale-if-error, or its absence when
/// `cache.enabled = false`.
pub struct SwrCache<K, V> {
    inner: Option<Inner<K, V>>,
}

struct Inner<K, V> {
    entries: Cache<Arc<K>, Arc<Stored<V>>>,
    inflight: Cache<Arc<K>, Arc<Stored<V>>>,
    ttl: Duration,
}

/// Serialized response bodies.
pub type ResponseCache = SwrCache<CacheKey, Listed>;

impl<K, V> SwrCache<K, V>
where
    K: Hash + Eq + Weigh + Send + Sync + 'static,
    V: Weigh + Send + Sync + 'static,
{
    /// A cache with `config`'s lifetimes, bounded to `max_bytes` of weight.
    pub fn new(config: &CacheConfig, max_bytes: u64) -> Self {
        if !config.enabled {
            return Self { inner: None };
        }
        let entries = Cache::builder()
            .max_capacity(max_bytes)
            .weigher(|k: &Arc<K>, v: &Arc<Stored<V>>| {
                let weight = v.value.weigh() + k.weigh() + ENTRY_OVERHEAD;
                u32::try_from(weight).unwrap_or(u32::MAX)
            })
            .time_to_live(config.ttl + config.stale_if_error)
            .build();
        let inflight = Cache::builder()
            // Values leave at once; this only bounds a pathological pile-up.
            .max_capacity(100_000)
            .time_to_live(Duration::from_secs(5))
            .build();
        Self {
            inner: Some(Inner {
                entries,
                inflight,
                ttl: config.ttl,
            }),
        }
    }

    /// Whether entries are kept at all (`cache.enabled`).
    pub fn is_enabled(&self) -> bool {
        self.inner.is_some()
    }

    /// Answers from the cache when fresh, else runs `fetch` — once for all
    /// concurrent callers of the same key — and stores its result. When `fetch`
    /// fails in a way a stale answer may cover (SPEC §5), a stale entry answers.
    /// `bypass` skips the read but still stores.
    pub async fn get_or_fetch<F>(
        &self,
        key: K,
        bypass: bool,
        fetch: F,
    ) -> Result<(Arc<Stored<V>>, CacheStatus), GatewayError>
    where
        F: Future<Output = Result<V, GatewayError>>,
    {
        let Some(inner) = &self.inner else {
            let value = fetch.await?;
            let status = if value.storable() {
                CacheStatus::Bypass
            } else {
                CacheStatus::Stale
            };
            return Ok((Arc::new(Stored::now(value)), status));
        };
        let key = Arc::new(key);
        let existing = inner.entries.get(&key).await;
        if !bypass {
            if let Some(entry) = &existing {
                if entry.stored.elapsed() < inner.ttl {
                    return Ok((entry.clone(), CacheStatus::Hit));
                }
            }
        }
        let fetched = inner
            .inflight
            .try_get_with(key.clone(), async {
                fetch.await.map(|v| Arc::new(Stored::now(v)))
            })
            .await;
        // Store before leaving `inflight`, so no request finds neither and makes a
        // second vendor call in between.
        if let Ok(value) = &fetched {
            if value.value.storable() {
                inner.entries.insert(key.clone(), value.clone()).await;
            }
        }
        inner.inflight.invalidate(&key).await;
        match fetched {
            Ok(value) => {
                // The one place STALE is decided: a value built partly from
                // stale data (a merged page) says so, like a stale entry does.
                let status = if !value.value.storable() {
                    CacheStatus::Stale
                } else if bypass {
                    CacheStatus::Bypass
                } else {
                    CacheStatus::Miss
                };
                Ok((value, status))
            }
            Err(error) => match existing {
                Some(stale) if error.may_serve_stale() => {
                    tracing::warn!(error = %error, "vendor failed; serving a stale answer");
                    Ok((stale, CacheStatus::Stale))
                }
                _ => Err(GatewayError::clone(&error)),
            },
        }
    }

    /// The total weight stored, after moka has applied pending evictions.
    pub async fn weighted_size(&self) -> u64 {
        match &self.inner {
            Some(inner) => {
                inner.entries.run_pending_tasks().await;
                inner.entries.weighted_size()
            }
            None => 0,
        }
    }
}

impl<V> Stored<V> {
    fn now(value: V) -> Self {
        Self {
            value,
            stored: Instant::now(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use chatgate_providers::{AdapterOptions, PageNumber};
    use secrecy::SecretString;

    fn provider() -> ProviderConfig {
        ProviderConfig {
            name: "p".into(),
            kind: ProviderKind::Chatbase,
            base_url: "http://x".into(),
            api_key: SecretString::from("k"),
            timeout: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(1),
            max_body_bytes: 1,
            adapter: AdapterOptions::default(),
            max_requests_per_second: std::num::NonZeroU32::MIN,
            max_retries: 0,
            max_retry_wait: Duration::ZERO,
            max_pause: Duration::from_secs(1),
            circuit_failure_threshold: std::num::NonZeroU32::MIN,
            circuit_cooldown: Duration::from_secs(1),
        }
    }

    fn bot() -> BotConfig {
        BotConfig {
            name: "b".into(),
            backends: vec![crate::config::Backend {
                provider: "p".into(),
                chatbot_id: "c".into(),
            }],
        }
    }

    #[actix_rt::test]
    async fn total_weight_stays_within_max_bytes_whatever_is_inserted() {
        let max_bytes = 64 * 1024;
        let config = CacheConfig {
            enabled: true,
            ttl: Duration::from_secs(60),
            stale_if_error: Duration::from_secs(60),
            max_bytes,
        };
        let cache = ResponseCache::new(&config, max_bytes);
        let body = Bytes::from(vec![b'x'; 3000]);
        for page in 1..=500 {
            let query = ListQuery {
                page: PageNumber::new(page).unwrap(),
                ..ListQuery::default()
            };
            let listed = Listed {
                body: body.clone(),
                provider: "chatbase".to_owned(),
                stale: false,
            };
            let backends = vec![BackendId::new(&provider(), "c")];
            let (_, status) = cache
                .get_or_fetch(CacheKey::list(&bot(), backends, &query), false, async {
                    Ok(listed)
                })
                .await
                .unwrap();
            assert_eq!(status, CacheStatus::Miss);
        }
        let weight = cache.weighted_size().await;
        assert!(weight <= max_bytes, "{weight} > {max_bytes}");
        assert!(
            weight > max_bytes / 2,
            "the cache is used, not emptied: {weight}"
        );
    }
}
