//! The response cache (SPEC §5): already-serialized response bodies in moka,
//! bounded by bytes, with request coalescing and stale-if-error.
//!
//! Two moka caches work together:
//! - `entries` holds bodies; each carries its own deadlines, computed from the
//!   [`Clock`] when it was stored: until `ttl` it is fresh (a HIT), then until
//!   `ttl + stale_if_error` it may only stand in when the vendor fails (STALE),
//!   then it is gone. moka's own expiry (`ttl + stale_if_error` in real time)
//!   only bounds memory;
//! - `inflight` exists only to coalesce: every request that must reach the vendor for
//!   one key goes through its `try_get_with`, so concurrent misses make one vendor
//!   call, and its result — the body or the error — is handed to every waiter.
//!   The finished value moves to `entries` and is dropped from `inflight`.
//!
//! With `[redis]`, a miss in moka looks in a second level shared by every
//! instance before calling the vendor ([`shared`]).
//!
//! Only successful answers are stored. The key never holds the client key:
//! authorization is checked before the cache is consulted.

use std::cell::RefCell;
use std::future::Future;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::ops::Deref;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use chatgate_providers::{ListQuery, ProviderKind};
use moka::future::Cache;

use crate::clock::Clock;
use crate::config::{BotConfig, CacheConfig, ProviderConfig};
use crate::error::GatewayError;
use crate::waits::Waits;

pub mod shared;

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

/// The part of a cache key that names a bot: built once per runtime (see
/// [`Gateway::bot_key`](crate::gateway::Gateway::bot_key)) and shared by every
/// key of the bot, so a lookup copies no names or URLs.
#[derive(Debug, PartialEq, Eq)]
pub struct BotKey {
    /// The bot's name (it is in the body as `chatbot_id`).
    bot: String,
    /// Where its history lives, in config order.
    backends: Vec<BackendId>,
    /// `bot` and `backends` hashed once, fed to the cache's hasher in their
    /// place (equal fields give equal digests; keys are still compared field
    /// by field).
    digest: u64,
}

impl BotKey {
    /// The key part of `bot`, whose backends are `backends`.
    pub fn new(bot: &BotConfig, backends: Vec<BackendId>) -> Arc<Self> {
        let mut digest = DefaultHasher::new();
        (&bot.name, &backends).hash(&mut digest);
        Arc::new(Self {
            bot: bot.name.clone(),
            backends,
            digest: digest.finish(),
        })
    }
}

impl Hash for BotKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.digest);
    }
}

/// What a cached answer is for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CacheKey {
    /// The bot and its backends.
    bot: Arc<BotKey>,
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
    pub fn list(bot: &Arc<BotKey>, query: &ListQuery) -> Self {
        Self {
            bot: bot.clone(),
            op: CacheOp::List(query.clone()),
        }
    }

    /// The key of one conversation.
    pub fn get(bot: &Arc<BotKey>, id: &str, include_raw: bool) -> Self {
        let op = CacheOp::Get {
            id: id.to_owned(),
            include_raw,
        };
        Self {
            bot: bot.clone(),
            op,
        }
    }
}

impl Weigh for CacheKey {
    /// As if each key held its own copy of the bot's part: an entry's weight
    /// does not depend on which other entries share it.
    fn weigh(&self) -> usize {
        let op = match &self.op {
            CacheOp::List(_) => std::mem::size_of::<ListQuery>(),
            CacheOp::Get { id, .. } => id.len(),
        };
        let BotKey { bot, backends, .. } = &*self.bot;
        bot.len() + backends.iter().map(Weigh::weigh).sum::<usize>() + op
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

/// A stored value and its deadlines.
#[derive(Debug)]
pub struct Stored<V> {
    value: V,
    /// Until when it answers as a HIT.
    fresh_until: Instant,
    /// Until when it may stand in for a failing vendor (STALE); after it, the
    /// entry is as good as gone.
    stale_until: Instant,
    /// Where the value came from.
    origin: Origin,
}

/// Where a stored value came from, which decides its `X-Cache`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    /// The vendor, just now.
    Vendor,
    /// Another instance's fresh copy (the second level).
    Shared,
    /// Another instance's copy past its freshness, standing in for a failing
    /// vendor.
    SharedStale,
}

/// What a cache miss's load produced.
#[derive(Debug)]
pub enum Loaded<V> {
    /// The vendor's answer, fresh.
    Fetched(V),
    /// A copy another instance fetched, fresh for `fresh_for` more and usable
    /// (stale-if-error) for `usable_for` more.
    Shared {
        /// The value.
        value: V,
        /// How long it stays a HIT.
        fresh_for: Duration,
        /// How long it may stand in for a failing vendor.
        usable_for: Duration,
    },
    /// Another instance's copy past its freshness, because the vendor failed.
    SharedStale {
        /// The value.
        value: V,
        /// How long it may still stand in.
        usable_for: Duration,
    },
}

/// How long this cache keeps what it stores: fresh for `ttl`, then usable
/// for `stale_if_error` more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifetimes {
    /// `cache.ttl_secs`.
    pub ttl: Duration,
    /// `cache.stale_if_error_secs`.
    pub stale_if_error: Duration,
}

impl Lifetimes {
    /// Nothing is kept (the cache is off).
    pub const NONE: Self = Self {
        ttl: Duration::ZERO,
        stale_if_error: Duration::ZERO,
    };

    /// Whether anything is kept at all.
    pub fn keeps(&self) -> bool {
        !(self.ttl + self.stale_if_error).is_zero()
    }
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
    clock: Clock,
}

struct Inner<K, V> {
    entries: Cache<Arc<K>, Arc<Stored<V>>>,
    inflight: Cache<Arc<K>, Arc<Stored<V>>>,
    ttl: Duration,
    stale_if_error: Duration,
}

/// Serialized response bodies.
pub type ResponseCache = SwrCache<CacheKey, Listed>;

impl<K, V> SwrCache<K, V>
where
    K: Hash + Eq + Weigh + Send + Sync + 'static,
    V: Weigh + Send + Sync + 'static,
{
    /// A cache with `config`'s lifetimes on `clock`, bounded to `max_bytes` of
    /// weight.
    pub fn new(config: &CacheConfig, max_bytes: u64, clock: Clock) -> Self {
        if !config.enabled {
            return Self { inner: None, clock };
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
                stale_if_error: config.stale_if_error,
            }),
            clock,
        }
    }

    /// Whether entries are kept at all (`cache.enabled`).
    pub fn is_enabled(&self) -> bool {
        self.inner.is_some()
    }

    /// Answers from the cache when fresh, else runs `fetch` — once for all
    /// concurrent callers of the same key — and stores its result. When `fetch`
    /// fails in a way a stale answer may cover (SPEC §5), a stale entry answers.
    /// `bypass` skips the read but still stores. A caller waiting for another
    /// caller's `fetch` counts that time in `waits`.
    ///
    /// `fetch` makes the vendor-call future only on a miss: that future is
    /// tens of kilobytes (every phase, retry and client call inline), and a
    /// hit that carried it would copy it with every future around it.
    pub async fn get_or_fetch<F, Fut>(
        &self,
        key: K,
        bypass: bool,
        waits: &Waits,
        fetch: F,
    ) -> Result<(Arc<Stored<V>>, CacheStatus), GatewayError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, GatewayError>>,
    {
        self.get_or_load(key, bypass, waits, |_| async {
            fetch().await.map(Loaded::Fetched)
        })
        .await
    }

    /// [`get_or_fetch`](Self::get_or_fetch) where a miss runs `load`, which
    /// may find the value somewhere other than the vendor (another instance's
    /// copy in the second level, [`shared`]). `load` is given the lifetimes
    /// this cache stores values for, so a copy it shares lives as long.
    pub async fn get_or_load<L, Fut>(
        &self,
        key: K,
        bypass: bool,
        waits: &Waits,
        load: L,
    ) -> Result<(Arc<Stored<V>>, CacheStatus), GatewayError>
    where
        L: FnOnce(Lifetimes) -> Fut,
        Fut: Future<Output = Result<Loaded<V>, GatewayError>>,
    {
        let Some(inner) = &self.inner else {
            // Nothing is kept, so every answer is a BYPASS (or STALE).
            let loaded = Box::pin(load(Lifetimes::NONE)).await?;
            let stored = Stored::loaded(loaded, self.clock.now(), Lifetimes::NONE);
            let status = stored.status(true);
            return Ok((Arc::new(stored), status));
        };
        let key = Arc::new(key);
        let now = self.clock.now();
        // Past its stale window an entry is gone, whether or not moka has
        // dropped it yet.
        let existing = inner
            .entries
            .get(&key)
            .await
            .filter(|entry| now < entry.stale_until);
        if !bypass {
            if let Some(entry) = &existing {
                if now < entry.fresh_until {
                    return Ok((entry.clone(), CacheStatus::Hit));
                }
            }
        }
        let lifetimes = Lifetimes {
            ttl: inner.ttl,
            stale_if_error: inner.stale_if_error,
        };
        // Until this caller's own `load` starts, it waits for another's.
        let waiting = RefCell::new(Some(waits.begin()));
        // Boxed: only a miss gets here, and the load is the large part of
        // this future (see `get_or_fetch`).
        let fetched = Box::pin(inner.inflight.try_get_with(key.clone(), async {
            drop(waiting.borrow_mut().take());
            let loaded = load(lifetimes).await?;
            Ok::<_, GatewayError>(Arc::new(Stored::loaded(
                loaded,
                self.clock.now(),
                lifetimes,
            )))
        }))
        .await;
        drop(waiting.take());
        // Store before leaving `inflight`, so no request finds neither and makes a
        // second vendor call in between.
        if let Ok(value) = &fetched {
            if value.storable() {
                inner.entries.insert(key.clone(), value.clone()).await;
            }
        }
        inner.inflight.invalidate(&key).await;
        match fetched {
            Ok(value) => {
                let status = value.status(bypass);
                Ok((value, status))
            }
            // The window is checked again: the failed fetch took time.
            Err(error) => match existing {
                Some(stale) if error.may_serve_stale() && self.clock.now() < stale.stale_until => {
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

impl<V: Weigh> Stored<V> {
    /// `value` stored at `now`: fresh for `ttl`, then usable as stale for
    /// `stale_if_error`. A deadline past what an `Instant` can hold ends at
    /// `now` (validation keeps configured lifetimes far below that).
    fn new(value: V, now: Instant, ttl: Duration, stale_if_error: Duration) -> Self {
        let fresh_until = now.checked_add(ttl).unwrap_or(now);
        Self {
            value,
            fresh_until,
            stale_until: fresh_until
                .checked_add(stale_if_error)
                .unwrap_or(fresh_until),
            origin: Origin::Vendor,
        }
    }

    /// What a load produced, at `now`: a vendor's answer lives for this
    /// cache's `lifetimes`; another instance's copy for what is left of its
    /// own (its deadlines were set when it was fetched).
    fn loaded(loaded: Loaded<V>, now: Instant, lifetimes: Lifetimes) -> Self {
        let at = |left: Duration| now.checked_add(left).unwrap_or(now);
        match loaded {
            Loaded::Fetched(value) => {
                Self::new(value, now, lifetimes.ttl, lifetimes.stale_if_error)
            }
            Loaded::Shared {
                value,
                fresh_for,
                usable_for,
            } => Self {
                value,
                fresh_until: at(fresh_for),
                stale_until: at(usable_for.max(fresh_for)),
                origin: Origin::Shared,
            },
            Loaded::SharedStale { value, usable_for } => Self {
                value,
                fresh_until: now,
                stale_until: at(usable_for),
                origin: Origin::SharedStale,
            },
        }
    }

    /// Whether it may be kept in the first level: a value built from stale
    /// data is handed to its callers but never stored as if it were fresh.
    fn storable(&self) -> bool {
        self.origin != Origin::SharedStale && self.value.storable()
    }

    /// The one place STALE is decided: a stale copy from the second level,
    /// or a value built partly from stale data (a merged page), says so, as a
    /// stale entry does; another instance's fresh copy is a HIT.
    fn status(&self, bypass: bool) -> CacheStatus {
        match self.origin {
            Origin::SharedStale => CacheStatus::Stale,
            _ if !self.value.storable() => CacheStatus::Stale,
            Origin::Shared => CacheStatus::Hit,
            Origin::Vendor if bypass => CacheStatus::Bypass,
            Origin::Vendor => CacheStatus::Miss,
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::error::UpstreamFailure;
    use bytes::Bytes;
    use chatgate_providers::{AdapterOptions, PageNumber};
    use secrecy::SecretString;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// A provider named `name` of `kind` (its key: `vendor-secret-key`).
    pub(super) fn provider_of(name: &str, kind: ProviderKind) -> ProviderConfig {
        ProviderConfig {
            name: name.into(),
            kind,
            base_url: "http://x".into(),
            api_key: SecretString::from("vendor-secret-key"),
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

    fn provider() -> ProviderConfig {
        provider_of("p", ProviderKind::Chatbase)
    }

    /// A bot named `name` on provider `p`, vendor bot `c`.
    pub(super) fn bot_named(name: &str) -> BotConfig {
        BotConfig {
            name: name.into(),
            backends: vec![crate::config::Backend {
                provider: "p".into(),
                chatbot_id: "c".into(),
            }],
        }
    }

    fn bot() -> BotConfig {
        bot_named("b")
    }

    #[test]
    fn keys_of_equal_bots_built_apart_are_one_key() {
        let key = |chatbot_id| {
            let bot = BotKey::new(&bot(), vec![BackendId::new(&provider(), chatbot_id)]);
            CacheKey::list(&bot, &ListQuery::default())
        };
        let stored = std::collections::HashSet::from([key("c")]);
        assert!(stored.contains(&key("c")));
        assert!(!stored.contains(&key("d")));
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
        let cache = ResponseCache::new(&config, max_bytes, Clock::from(ManualClock::new()));
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
            let bot_key = BotKey::new(&bot(), vec![BackendId::new(&provider(), "c")]);
            let key = CacheKey::list(&bot_key, &query);
            let waits = Waits::new(ManualClock::new().into());
            let (_, status) = cache
                .get_or_fetch(key, false, &waits, || async { Ok(listed) })
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

    /// A small key and value, so the time rules are tested on their own.
    #[derive(Debug, PartialEq, Eq, Hash)]
    struct Key(u32);

    impl Weigh for Key {
        fn weigh(&self) -> usize {
            4
        }
    }

    #[derive(Debug)]
    struct Val(&'static str);

    impl Weigh for Val {
        fn weigh(&self) -> usize {
            self.0.len()
        }
    }

    /// A cache on a manual clock, fresh for `ttl` s, stale for `stale` s more,
    /// counting its vendor calls.
    struct Timed {
        cache: SwrCache<Key, Val>,
        clock: ManualClock,
        calls: AtomicU32,
    }

    impl Timed {
        fn new(enabled: bool, ttl: u64, stale: u64) -> Self {
            let config = CacheConfig {
                enabled,
                ttl: Duration::from_secs(ttl),
                stale_if_error: Duration::from_secs(stale),
                max_bytes: 1 << 20,
            };
            let clock = ManualClock::new();
            Self {
                cache: SwrCache::new(&config, 1 << 20, clock.clone().into()),
                clock,
                calls: AtomicU32::new(0),
            }
        }

        /// Asks for key 1, where a vendor call (if one is made) answers
        /// `vendor`; `None` when the answer is an error.
        async fn ask(&self, vendor: Result<&'static str, GatewayError>) -> Answer {
            self.fetch(false, vendor).await
        }

        /// [`Self::ask`] with `Cache-Control: no-cache`.
        async fn ask_bypassing(&self, vendor: Result<&'static str, GatewayError>) -> Answer {
            self.fetch(true, vendor).await
        }

        async fn fetch(&self, bypass: bool, vendor: Result<&'static str, GatewayError>) -> Answer {
            let fetch = async {
                self.calls.fetch_add(1, Ordering::SeqCst);
                vendor.map(Val)
            };
            let waits = Waits::new(self.clock.clone().into());
            let (stored, status) = self
                .cache
                .get_or_fetch(Key(1), bypass, &waits, || fetch)
                .await
                .ok()?;
            Some((stored.0, status))
        }

        fn calls(&self) -> u32 {
            self.calls.load(Ordering::SeqCst)
        }

        fn advance_ms(&self, ms: u64) {
            self.clock.advance(Duration::from_millis(ms));
        }
    }

    type Answer = Option<(&'static str, CacheStatus)>;

    /// A failure a stale answer may cover: the vendor failing.
    fn down() -> Result<&'static str, GatewayError> {
        let failure = UpstreamFailure::Deadline(Duration::from_secs(1));
        Err(GatewayError::upstream(ProviderKind::Chatbase, failure))
    }

    #[actix_rt::test]
    async fn an_entry_is_fresh_then_stale_then_gone() {
        use CacheStatus::{Hit, Miss, Stale};
        let t = Timed::new(true, 10, 20);
        assert_eq!(t.ask(Ok("a")).await, Some(("a", Miss)));
        t.advance_ms(9_999);
        assert_eq!(t.ask(Ok("b")).await, Some(("a", Hit)));
        assert_eq!(t.calls(), 1, "a hit makes no call");

        // At the ttl the vendor is asked; failing, the entry stands in.
        t.advance_ms(1);
        assert_eq!(t.ask(down()).await, Some(("a", Stale)));
        assert_eq!(t.calls(), 2, "the vendor was asked first");
        // The vendor saying "no" (here: any error a stale answer may not
        // cover) is the answer.
        assert_eq!(t.ask(Err(GatewayError::Internal)).await, None);
        t.advance_ms(19_999);
        assert_eq!(t.ask(down()).await, Some(("a", Stale)));

        // At ttl + stale_if_error it is gone: the failure is the answer.
        t.advance_ms(1);
        assert_eq!(t.ask(down()).await, None);
        assert_eq!(t.ask(Ok("b")).await, Some(("b", Miss)));
        assert_eq!(t.ask(Ok("c")).await, Some(("b", Hit)));
    }

    #[actix_rt::test]
    async fn an_expired_entry_is_refreshed_when_the_vendor_is_well() {
        use CacheStatus::{Hit, Miss, Stale};
        let t = Timed::new(true, 10, 20);
        t.ask(Ok("a")).await;
        t.advance_ms(10_000);
        assert_eq!(t.ask(Ok("b")).await, Some(("b", Miss)));
        // Fresh for a whole ttl from the refresh, and stale from there.
        t.advance_ms(9_999);
        assert_eq!(t.ask(Ok("c")).await, Some(("b", Hit)));
        t.advance_ms(20_000);
        assert_eq!(t.ask(down()).await, Some(("b", Stale)));
    }

    #[actix_rt::test]
    async fn a_caller_coalesced_onto_another_fetch_counts_it_as_waiting() {
        let t = Timed::new(true, 10, 20);
        let (leader, follower) = (
            Waits::new(t.clock.clone().into()),
            Waits::new(t.clock.clone().into()),
        );
        // The leader's vendor call takes 40 ms, begun before the follower asks.
        let slow = async {
            tokio::task::yield_now().await;
            t.advance_ms(40);
            Ok(Val("a"))
        };
        let never = async { Ok(Val("b")) };
        let (a, b) = futures_util::join!(
            t.cache.get_or_fetch(Key(1), false, &leader, || slow),
            t.cache.get_or_fetch(Key(1), false, &follower, || never),
        );
        assert_eq!(a.unwrap().0 .0, "a");
        assert_eq!(b.unwrap().0 .0, "a", "one fetch for both");
        // The leader's own call is counted where it is made (the gateway's
        // vendor-call phases), not here.
        assert_eq!(leader.total(), Duration::ZERO);
        assert_eq!(follower.total(), Duration::from_millis(40));
    }

    #[actix_rt::test]
    async fn the_stale_window_is_checked_when_the_failure_arrives() {
        let t = Timed::new(true, 10, 20);
        t.ask(Ok("a")).await;
        t.advance_ms(25_000);
        // The vendor takes 10 s to fail: by then the entry's window has closed.
        let slow_failure = async {
            t.advance_ms(10_000);
            down().map(Val)
        };
        let waits = Waits::new(t.clock.clone().into());
        let answer = t
            .cache
            .get_or_fetch(Key(1), false, &waits, || slow_failure)
            .await;
        assert!(answer.is_err());
    }

    #[actix_rt::test]
    async fn a_bypass_skips_the_read_but_stores_and_may_still_serve_stale() {
        use CacheStatus::{Bypass, Hit, Stale};
        let t = Timed::new(true, 10, 20);
        t.ask(Ok("a")).await;
        assert_eq!(t.ask_bypassing(Ok("b")).await, Some(("b", Bypass)));
        assert_eq!(t.ask(Ok("c")).await, Some(("b", Hit)));
        assert_eq!(t.ask_bypassing(down()).await, Some(("b", Stale)));
        assert_eq!(t.calls(), 3);
    }

    #[actix_rt::test]
    async fn a_disabled_cache_always_asks_the_vendor() {
        use CacheStatus::Bypass;
        let t = Timed::new(false, 10, 20);
        assert_eq!(t.ask(Ok("a")).await, Some(("a", Bypass)));
        assert_eq!(t.ask(Ok("b")).await, Some(("b", Bypass)));
        assert_eq!(t.ask(down()).await, None);
        assert_eq!(t.calls(), 3);
    }
}
