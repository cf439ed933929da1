//! The second cache level (SPEC §9): with `[redis]`, a response body one
//! instance fetched answers every instance, and a key missing everywhere
//! makes one vendor call across all of them.
//!
//! moka stays the first level. On a first-level miss, `SharedCache::load`
//! runs inside the first level's coalescing (so each instance sends one
//! caller per key here), and:
//! 1. reads the key in Redis: a fresh copy is a HIT, a stale one is kept for
//!    stale-if-error;
//! 2. takes the key's lock (`SET NX PX`, leased for one request's deadline)
//!    and calls the vendor, stores the body, and releases the lock; or, when
//!    another instance holds it, waits for its body (bounded by the request
//!    deadline). A holder that fails or dies frees the lock (at once, or at
//!    the end of its lease) and the next waiter takes over;
//! 3. when the vendor fails in a way a stale answer may cover, the stale
//!    copy from Redis answers (STALE), as a stale first-level entry would.
//!
//! Redis is a help, never a dependency: any Redis failure (or Redis being
//! down) ends the protocol and the vendor is called directly, as without
//! `[redis]`. Bodies larger than `redis.cache_max_body_bytes` stay local.
//!
//! What is shared is exactly the first level's value: the serialized body and
//! its `X-Provider`, under a key derived from [`CacheKey`]'s canonical bytes
//! (never a client key: authorization is checked before the cache).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::{
    BotKey, CacheKey, CacheOp, CacheStatus, Lifetimes, Listed, Loaded, ResponseCache, Stored,
};
use crate::error::GatewayError;
use crate::redis::cache::{CachedBody, LockToken, SecondLevel, Waited};
use crate::redis::keys::EntryKeys;
use crate::redis::SharedStore;
use crate::waits::Waits;

/// How many times a caller takes part in the lock protocol before calling the
/// vendor itself: each round ends because a holder failed or died, so past a
/// few the vendor (or Redis) is unwell and waiting longer helps no one.
const MAX_ROUNDS: usize = 3;

/// Separates `X-Provider` from the body in a shared value: the label is the
/// vendor kinds (`chatbase,chatling`), which never hold a newline.
const LABEL_END: u8 = b'\n';

/// The second level as the response cache uses it.
#[derive(Debug, Clone)]
pub struct SharedCache {
    level: SecondLevel,
    /// The lock's lease and a waiter's patience: one request's deadline
    /// (`server.request_timeout_ms`), the longest a fetch can take.
    lease: Duration,
}

impl SharedCache {
    /// The second level in `store`, sharing bodies up to
    /// `redis.cache_max_body_bytes`; `None` when that is 0 (share limits and
    /// pauses, not bodies).
    pub fn new(store: &SharedStore, request_timeout: Duration) -> Option<Self> {
        let max_body = store.settings().cache_max_body_bytes;
        (max_body > 0).then(|| Self {
            level: SecondLevel::new(store.clone(), max_body),
            lease: request_timeout,
        })
    }

    /// Loads the entry at `keys` after a first-level miss: another
    /// instance's copy, or the vendor's answer through `fetch` (then shared
    /// for `lifetimes`), with at most one vendor call across instances while
    /// the lock protocol holds. `bypass` (`Cache-Control: no-cache`) skips
    /// reading and locking but still shares what it fetched.
    async fn load<F, Fut>(
        &self,
        keys: EntryKeys,
        bypass: bool,
        lifetimes: Lifetimes,
        waits: &Waits,
        fetch: F,
    ) -> Result<Loaded<Listed>, GatewayError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Listed, GatewayError>>,
    {
        if !lifetimes.keeps() {
            return fetch().await.map(Loaded::Fetched);
        }
        let mut stale = None;
        let lock = if bypass {
            None
        } else {
            match self.find_or_lock(&keys, &mut stale, waits).await {
                Found::Copy(loaded) => return Ok(loaded),
                Found::Lock(lock) => lock,
            }
        };
        let result = fetch().await;
        if let Ok(listed) = &result {
            self.share(&keys, listed, lifetimes).await;
        }
        // Released after sharing, so a waiter that sees the lock gone finds
        // the body (or takes over when there is none).
        if let Some(lock) = lock {
            lock.release().await;
        }
        match result {
            Ok(listed) => Ok(Loaded::Fetched(listed)),
            Err(error) if error.may_serve_stale() => match stale.and_then(stale_copy) {
                Some(loaded) => {
                    tracing::warn!(error = %error, "vendor failed; serving another instance's stale answer");
                    Ok(loaded)
                }
                None => Err(error),
            },
            Err(error) => Err(error),
        }
    }

    /// Steps 1 and 2: a fresh copy, or the lock (or no lock, when Redis
    /// failed or the rounds ran out: then the vendor is called anyway).
    /// Stale copies seen on the way are left in `stale`; the time spent
    /// waiting for another instance's fetch is counted in `waits` (it is
    /// that instance's vendor call, not this one's work).
    async fn find_or_lock(
        &self,
        keys: &EntryKeys,
        stale: &mut Option<CachedBody>,
        waits: &Waits,
    ) -> Found {
        for _ in 0..MAX_ROUNDS {
            match self.level.get(keys).await {
                Ok(Some(body)) if body.is_fresh() => match fresh_copy(body) {
                    Some(loaded) => return Found::Copy(loaded),
                    None => return Found::Lock(None),
                },
                Ok(seen) => keep_latest(stale, seen),
                Err(_) => return Found::Lock(None),
            }
            match self.level.try_lock(keys, self.lease).await {
                Ok(Some(token)) => {
                    return Found::Lock(Some(HeldLock {
                        level: self.level.clone(),
                        keys: keys.clone(),
                        token: Some(token),
                    }))
                }
                Ok(None) => {}
                Err(_) => return Found::Lock(None),
            }
            match waits.during(self.level.wait_for(keys, self.lease)).await {
                Ok(Waited::Fresh(body)) => match fresh_copy(body) {
                    Some(loaded) => return Found::Copy(loaded),
                    None => return Found::Lock(None),
                },
                // The holder failed or died: take over.
                Ok(Waited::LockFree(seen)) => keep_latest(stale, seen),
                // A whole lease without an answer: the holder's fetch is as
                // late as ours would be; the deadline decides.
                Ok(Waited::TimedOut(seen)) => {
                    keep_latest(stale, seen);
                    return Found::Lock(None);
                }
                Err(_) => return Found::Lock(None),
            }
        }
        Found::Lock(None)
    }

    /// Stores `listed` for every instance, for `lifetimes`. A value built
    /// from stale data is not shared (it would pass for fresh), nor one
    /// larger than the bound; a Redis failure only means it is not shared.
    async fn share(&self, keys: &EntryKeys, listed: &Listed, lifetimes: Lifetimes) {
        use super::Weigh;
        if !listed.storable() {
            return;
        }
        let mut value = Vec::with_capacity(listed.provider.len() + 1 + listed.body.len());
        value.extend_from_slice(listed.provider.as_bytes());
        value.push(LABEL_END);
        value.extend_from_slice(&listed.body);
        if let Err(e) = self
            .level
            .put(keys, &value, lifetimes.ttl, lifetimes.stale_if_error)
            .await
        {
            tracing::debug!(error = %e, "could not share a cached answer");
        }
    }
}

impl ResponseCache {
    /// [`get_or_fetch`](super::SwrCache::get_or_fetch) with the second level
    /// `shared` behind the first, when `[redis]` shares bodies.
    pub async fn get_or_fetch_shared<F, Fut>(
        &self,
        key: CacheKey,
        bypass: bool,
        shared: Option<&SharedCache>,
        waits: &Waits,
        fetch: F,
    ) -> Result<(Arc<Stored<Listed>>, CacheStatus), GatewayError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Listed, GatewayError>>,
    {
        let Some(shared) = shared else {
            return self.get_or_fetch(key, bypass, waits, fetch).await;
        };
        let keys = shared.level.store().keys().cache_entry(&key.canonical());
        self.get_or_load(key, bypass, waits, |lifetimes| {
            shared.load(keys, bypass, lifetimes, waits, fetch)
        })
        .await
    }
}

/// What [`SharedCache::find_or_lock`] ended with.
enum Found {
    /// Another instance's fresh copy.
    Copy(Loaded<Listed>),
    /// Call the vendor, holding the lock or (Redis failing) not.
    Lock(Option<HeldLock>),
}

/// The lock on one key, released when the fetch ends — or, if the request is
/// dropped mid-fetch, in the background, so other instances wait no longer
/// than they must.
struct HeldLock {
    level: SecondLevel,
    keys: EntryKeys,
    token: Option<LockToken>,
}

impl HeldLock {
    async fn release(mut self) {
        if let Some(token) = self.token.take() {
            if let Err(e) = self.level.unlock(&self.keys, token).await {
                tracing::debug!(error = %e, "could not release a cache lock; it expires with its lease");
            }
        }
    }
}

impl Drop for HeldLock {
    fn drop(&mut self) {
        if let Some(token) = self.token.take() {
            let (level, keys) = (self.level.clone(), self.keys.clone());
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move {
                    let _ = level.unlock(&keys, token).await;
                });
            }
        }
    }
}

/// Keeps the copy seen last (it is the newest).
fn keep_latest(stale: &mut Option<CachedBody>, seen: Option<CachedBody>) {
    if seen.is_some() {
        *stale = seen;
    }
}

/// A fresh shared copy as a first-level value; `None` (fetch instead) when it
/// does not decode, which only a foreign writer under our keys could cause.
fn fresh_copy(copy: CachedBody) -> Option<Loaded<Listed>> {
    let (fresh_for, usable_for) = (copy.fresh_for, copy.usable_for);
    decode(copy.body).map(|value| Loaded::Shared {
        value,
        fresh_for,
        usable_for,
    })
}

/// A stale shared copy standing in for a failing vendor.
fn stale_copy(copy: CachedBody) -> Option<Loaded<Listed>> {
    let usable_for = copy.usable_for;
    (!usable_for.is_zero())
        .then_some(())
        .and_then(|()| decode(copy.body))
        .map(|value| Loaded::SharedStale { value, usable_for })
}

/// `X-Provider`, a newline, then the body (a slice of the same bytes).
fn decode(value: Bytes) -> Option<Listed> {
    let end = value.iter().position(|&b| b == LABEL_END)?;
    let provider = std::str::from_utf8(&value[..end]).ok()?.to_owned();
    if provider.is_empty() {
        return None;
    }
    Some(Listed {
        body: value.slice(end + 1..),
        provider,
        stale: false,
    })
}

impl CacheKey {
    /// Bytes that identify this key the same way in every instance and every
    /// release with the same key layout version: each field length-prefixed,
    /// in a fixed order, from canonical values (never `std::hash` or `Debug`,
    /// which promise neither). A change here needs a new
    /// [`LAYOUT_VERSION`](crate::redis::keys::LAYOUT_VERSION).
    pub fn canonical(&self) -> Vec<u8> {
        let mut out = Canonical::default();
        let BotKey { bot, backends, .. } = &*self.bot;
        out.text(bot);
        out.number(backends.len() as u64);
        for backend in backends {
            out.text(&backend.provider);
            out.text(backend.kind.as_str());
            out.text(&backend.base_url);
            out.text(&backend.chatbot_id);
        }
        match &self.op {
            CacheOp::List(query) => {
                out.text("list");
                match &query.sources {
                    None => out.text("all"),
                    Some(sources) => {
                        out.number(sources.len() as u64);
                        for source in sources {
                            out.text(source.as_str());
                        }
                    }
                }
                let day = |d: Option<chrono::NaiveDate>| d.map(|d| d.to_string());
                out.text(day(query.dates.start()).as_deref().unwrap_or("-"));
                out.text(day(query.dates.end()).as_deref().unwrap_or("-"));
                out.number(query.page.get().into());
                out.number(query.size.get().into());
                out.number(query.include_raw.into());
            }
            CacheOp::Get { id, include_raw } => {
                out.text("get");
                out.text(id);
                out.number((*include_raw).into());
            }
        }
        out.0
    }
}

/// Length-prefixed fields, so no two sequences of fields share bytes.
#[derive(Default)]
struct Canonical(Vec<u8>);

impl Canonical {
    fn text(&mut self, s: &str) {
        self.0.extend_from_slice(&(s.len() as u64).to_be_bytes());
        self.0.extend_from_slice(s.as_bytes());
    }

    fn number(&mut self, n: u64) {
        self.0.extend_from_slice(&n.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::{BackendId, BotKey};
    use crate::config::{BotConfig, ProviderConfig};
    use chatgate_providers::{DateRange, ListQuery, PageNumber, PageSize, ProviderKind, Source};
    use std::collections::BTreeSet;

    fn provider(name: &str, kind: ProviderKind) -> ProviderConfig {
        crate::cache::tests::provider_of(name, kind)
    }

    fn bot(name: &str) -> BotConfig {
        crate::cache::tests::bot_named(name)
    }

    fn backends() -> Vec<BackendId> {
        vec![BackendId::new(&provider("p", ProviderKind::Chatbase), "c")]
    }

    fn query(page: u32) -> ListQuery {
        ListQuery {
            page: PageNumber::new(page).unwrap(),
            size: PageSize::new(10).unwrap(),
            ..ListQuery::default()
        }
    }

    #[test]
    fn equal_keys_have_equal_bytes_and_every_field_counts() {
        let key = CacheKey::list(&BotKey::new(&bot("b"), backends()), &query(1));
        assert_eq!(key.canonical(), key.clone().canonical());
        let mut filtered = query(1);
        filtered.sources = Some(BTreeSet::from([Source::Api]));
        let mut dated = query(1);
        dated.dates = DateRange::new(chrono::NaiveDate::from_ymd_opt(2026, 1, 2), None).unwrap();
        let mut raw = query(1);
        raw.include_raw = true;
        let others = [
            CacheKey::list(&BotKey::new(&bot("b2"), backends()), &query(1)),
            CacheKey::list(&BotKey::new(&bot("b"), backends()), &query(2)),
            CacheKey::list(&BotKey::new(&bot("b"), backends()), &filtered),
            CacheKey::list(&BotKey::new(&bot("b"), backends()), &dated),
            CacheKey::list(&BotKey::new(&bot("b"), backends()), &raw),
            CacheKey::list(
                &BotKey::new(
                    &bot("b"),
                    vec![BackendId::new(&provider("p", ProviderKind::Chatling), "c")],
                ),
                &query(1),
            ),
            CacheKey::list(&BotKey::new(&bot("b"), vec![]), &query(1)),
            CacheKey::get(&BotKey::new(&bot("b"), backends()), "1", false),
            CacheKey::get(&BotKey::new(&bot("b"), backends()), "1", true),
        ];
        for other in &others {
            assert_ne!(key.canonical(), other.canonical(), "{other:?}");
        }
    }

    #[test]
    fn fields_cannot_run_into_each_other() {
        let a = CacheKey::get(&BotKey::new(&bot("ab"), vec![]), "c", false);
        let b = CacheKey::get(&BotKey::new(&bot("a"), vec![]), "bc", false);
        assert_ne!(a.canonical(), b.canonical());
    }

    #[test]
    fn the_canonical_bytes_never_hold_the_vendor_key() {
        let key = CacheKey::list(&BotKey::new(&bot("b"), backends()), &query(1));
        let bytes = key.canonical();
        assert!(!bytes
            .windows(b"vendor-secret-key".len())
            .any(|w| w == b"vendor-secret-key"));
    }

    #[test]
    fn a_shared_value_decodes_to_its_label_and_body() {
        let listed = decode(Bytes::from_static(b"chatbase,chatling\n{\"data\":[]}\n")).unwrap();
        assert_eq!(listed.provider, "chatbase,chatling");
        assert_eq!(&listed.body[..], b"{\"data\":[]}\n");
        assert!(!listed.stale);
        assert!(decode(Bytes::from_static(b"no label end")).is_none());
        assert!(decode(Bytes::from_static(b"\n{}")).is_none());
        assert!(decode(Bytes::from_static(b"\xff\xfe\n{}")).is_none());
    }

    #[test]
    fn a_stale_copy_with_no_time_left_does_not_stand_in() {
        let copy = |usable_ms| CachedBody {
            body: Bytes::from_static(b"chatbase\n{}"),
            fresh_for: Duration::ZERO,
            usable_for: Duration::from_millis(usable_ms),
        };
        assert!(stale_copy(copy(0)).is_none());
        assert!(matches!(
            stale_copy(copy(5)),
            Some(Loaded::SharedStale { usable_for, .. }) if usable_for == Duration::from_millis(5)
        ));
    }
}
