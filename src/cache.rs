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
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use chatgate_providers::{ListQuery, ProviderKind};
use moka::future::Cache;

use crate::config::{BotConfig, CacheConfig, ProviderConfig};
use crate::gateway::Listed;
use crate::server::error::ApiError;

/// Bytes counted per entry on top of its body and key, for moka's own
/// bookkeeping, so `max_bytes` tracks memory rather than payload alone.
const ENTRY_OVERHEAD: usize = 256;

/// What a cached answer is for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CacheKey {
    /// The bot's name (it is in the body as `chatbot_id`).
    bot: String,
    /// The provider's table name, kind and URL, so a remapped bot never gets its
    /// old vendor's body.
    provider: String,
    kind: ProviderKind,
    base_url: String,
    /// The vendor's chatbot id.
    chatbot_id: String,
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
    pub fn list(bot: &BotConfig, provider: &ProviderConfig, query: &ListQuery) -> Self {
        Self::new(bot, provider, CacheOp::List(query.clone()))
    }

    /// The key of one conversation.
    pub fn get(bot: &BotConfig, provider: &ProviderConfig, id: &str, include_raw: bool) -> Self {
        Self::new(
            bot,
            provider,
            CacheOp::Get {
                id: id.to_owned(),
                include_raw,
            },
        )
    }

    fn new(bot: &BotConfig, provider: &ProviderConfig, op: CacheOp) -> Self {
        Self {
            bot: bot.name.clone(),
            provider: provider.name.clone(),
            kind: provider.kind,
            base_url: provider.base_url.clone(),
            chatbot_id: bot.chatbot_id.clone(),
            op,
        }
    }

    fn weight(&self) -> usize {
        let op = match &self.op {
            CacheOp::List(_) => std::mem::size_of::<ListQuery>(),
            CacheOp::Get { id, .. } => id.len(),
        };
        self.bot.len() + self.provider.len() + self.base_url.len() + self.chatbot_id.len() + op
    }
}

/// A stored answer.
#[derive(Debug)]
pub struct Cached {
    /// The serialized response body, served as is.
    pub body: Bytes,
    /// Which vendor produced it (`X-Provider`).
    pub provider: ProviderKind,
    stored: Instant,
}

/// How a request was answered, for `X-Cache`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheStatus {
    /// Fresh from the cache.
    Hit,
    /// From the vendor, now stored.
    Miss,
    /// From the cache after expiry, because the vendor failed.
    Stale,
    /// The caller asked to skip the cache (`Cache-Control: no-cache`), or it is off.
    Bypass,
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

/// The cache, or its absence when `cache.enabled = false`.
pub struct ResponseCache {
    inner: Option<Inner>,
}

struct Inner {
    entries: Cache<Arc<CacheKey>, Arc<Cached>>,
    inflight: Cache<Arc<CacheKey>, Arc<Cached>>,
    ttl: Duration,
}

impl ResponseCache {
    /// Builds the cache `config` describes.
    pub fn new(config: &CacheConfig) -> Self {
        if !config.enabled {
            return Self { inner: None };
        }
        let entries = Cache::builder()
            .max_capacity(config.max_bytes)
            .weigher(|k: &Arc<CacheKey>, v: &Arc<Cached>| {
                let weight = v.body.len() + k.weight() + ENTRY_OVERHEAD;
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

    /// Answers from the cache when fresh, else runs `fetch` — once for all
    /// concurrent callers of the same key — and stores its result. When `fetch`
    /// fails in a way a stale answer may cover (SPEC §5), a stale entry answers.
    /// `bypass` skips the read but still stores.
    pub async fn get_or_fetch<F>(
        &self,
        key: CacheKey,
        bypass: bool,
        fetch: F,
    ) -> Result<(Arc<Cached>, CacheStatus), ApiError>
    where
        F: Future<Output = Result<Listed, ApiError>>,
    {
        let Some(inner) = &self.inner else {
            let listed = fetch.await?;
            return Ok((Arc::new(Cached::from(listed)), CacheStatus::Bypass));
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
                fetch.await.map(|l| Arc::new(Cached::from(l)))
            })
            .await;
        inner.inflight.invalidate(&key).await;
        match fetched {
            Ok(value) => {
                inner.entries.insert(key, value.clone()).await;
                let status = if bypass {
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
                _ => Err(ApiError::clone(&error)),
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

impl From<Listed> for Cached {
    fn from(listed: Listed) -> Self {
        Self {
            body: listed.body,
            provider: listed.provider,
            stored: Instant::now(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
            circuit_failure_threshold: std::num::NonZeroU32::MIN,
            circuit_cooldown: Duration::from_secs(1),
        }
    }

    fn bot() -> BotConfig {
        BotConfig {
            name: "b".into(),
            provider: "p".into(),
            chatbot_id: "c".into(),
        }
    }

    #[actix_rt::test]
    async fn total_weight_stays_within_max_bytes_whatever_is_inserted() {
        let max_bytes = 64 * 1024;
        let cache = ResponseCache::new(&CacheConfig {
            enabled: true,
            ttl: Duration::from_secs(60),
            stale_if_error: Duration::from_secs(60),
            max_bytes,
        });
        let body = Bytes::from(vec![b'x'; 3000]);
        for page in 1..=500 {
            let query = ListQuery {
                page: PageNumber::new(page).unwrap(),
                ..ListQuery::default()
            };
            let listed = Listed {
                body: body.clone(),
                provider: ProviderKind::Chatbase,
            };
            let (_, status) = cache
                .get_or_fetch(CacheKey::list(&bot(), &provider(), &query), false, async {
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
