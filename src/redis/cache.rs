//! The second-level response cache: the same serialized bodies as the
//! first level (moka), shared by every instance, with their fresh and
//! stale-if-error windows; and a short lock so that a miss everywhere makes one
//! vendor call across all instances.
//!
//! A body is stored with its *fresh-until* time on Redis's clock and an
//! expiry at the end of its stale-if-error window, so a read answers "fresh for
//! this long, usable (stale-if-error) for that long" in durations from now,
//! whatever the reader's own clock says. Bodies above a bound stay in the first
//! level only: one huge page must not cost every instance a slow read.
//!
//! The fetch protocol, for a key missing (or stale) in both levels:
//! 1. [`SecondLevel::try_lock`] (`SET NX PX` with a random token): the one
//!    caller that gets it calls the vendor, [`put`](SecondLevel::put)s the body
//!    and [`unlock`](SecondLevel::unlock)s (compare-and-delete: only its holder
//!    can, so a lock that expired and was taken over is not released by the
//!    late first holder);
//! 2. everyone else [`wait_for`](SecondLevel::wait_for)s the body, bounded by
//!    their request deadline. A holder that dies leaves a lock that expires at
//!    the end of its lease: the waiters see it gone and one of them takes over.

use std::sync::LazyLock;
use std::time::Duration;

use bytes::Bytes;

use super::client::{SharedStore, StoreError};
use super::keys::EntryKeys;

/// The first pause between two looks while waiting for another instance's
/// fetch; doubled after every look, up to [`MAX_POLL`].
const FIRST_POLL: Duration = Duration::from_millis(5);
/// The longest pause between two looks.
const MAX_POLL: Duration = Duration::from_millis(100);

/// Reads an entry and, with a second key, whether its lock is held.
/// Returns {found 1|0, body, fresh ms left, usable ms left, locked 1|0}.
static GET: LazyLock<::redis::Script> = LazyLock::new(|| {
    ::redis::Script::new(
        r"
local v = redis.call('HMGET', KEYS[1], 'b', 'f')
local locked = 0
if KEYS[2] then locked = redis.call('EXISTS', KEYS[2]) end
if not v[1] then return {0, '', 0, 0, locked} end
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local fresh = math.max(tonumber(v[2] or 0) - now, 0)
local usable = math.max(redis.call('PTTL', KEYS[1]), 0)
return {1, v[1], fresh, usable, locked}
",
    )
});

/// Stores body `ARGV[1]`, fresh for `ARGV[2]` ms from Redis's now, kept for
/// `ARGV[3]` ms (fresh + stale-if-error).
static PUT: LazyLock<::redis::Script> = LazyLock::new(|| {
    ::redis::Script::new(
        r"
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local fresh_until = string.format('%.0f', now + tonumber(ARGV[2]))
redis.call('HSET', KEYS[1], 'b', ARGV[1], 'f', fresh_until)
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
",
    )
});

/// Deletes the lock only if it still holds the caller's token.
static UNLOCK: LazyLock<::redis::Script> = LazyLock::new(|| {
    ::redis::Script::new(
        r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
",
    )
});

/// A body read from the second level.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedBody {
    /// The serialized response body.
    pub body: Bytes,
    /// How long it stays fresh (a HIT); zero once stale.
    pub fresh_for: Duration,
    /// How long it may still stand in for a failing vendor (STALE); the entry
    /// is gone after that.
    pub usable_for: Duration,
}

impl CachedBody {
    /// Whether it may be served as a hit.
    pub fn is_fresh(&self) -> bool {
        !self.fresh_for.is_zero()
    }
}

/// What [`SecondLevel::put`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Put {
    /// Stored for every instance.
    Stored,
    /// Larger than the bound: left to the first level (Redis not touched).
    TooLarge,
    /// Neither fresh nor usable for any time: nothing to store.
    Expired,
}

/// Proof of holding an entry's lock, to release it. Not `Clone`: one holder.
pub struct LockToken(String);

impl std::fmt::Debug for LockToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LockToken(..)")
    }
}

/// How [`SecondLevel::wait_for`] ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Waited {
    /// The fetching instance stored a fresh body.
    Fresh(CachedBody),
    /// No one holds the lock any more and no fresh body came (the holder
    /// failed or died): try to take the lock and fetch. The stale body, if
    /// any, is there for stale-if-error.
    LockFree(Option<CachedBody>),
    /// `max_wait` passed with the lock still held. The stale body, if any, is
    /// there for stale-if-error.
    TimedOut(Option<CachedBody>),
}

/// The second-level cache over a [`SharedStore`].
#[derive(Debug, Clone)]
pub struct SecondLevel {
    store: SharedStore,
    max_body_bytes: usize,
}

impl SecondLevel {
    /// A cache in `store` keeping bodies up to `max_body_bytes`.
    pub fn new(store: SharedStore, max_body_bytes: usize) -> Self {
        Self {
            store,
            max_body_bytes,
        }
    }

    /// The store it uses.
    pub fn store(&self) -> &SharedStore {
        &self.store
    }

    /// The entry at `keys`, fresh or stale, if still usable.
    pub async fn get(&self, keys: &EntryKeys) -> Result<Option<CachedBody>, StoreError> {
        Ok(self.look("cache_get", keys, false).await?.0)
    }

    /// Stores `body`, fresh for `fresh` and then usable for `stale` more (the
    /// stale-if-error window), unless it is larger than the bound.
    pub async fn put(
        &self,
        keys: &EntryKeys,
        body: &[u8],
        fresh: Duration,
        stale: Duration,
    ) -> Result<Put, StoreError> {
        if body.len() > self.max_body_bytes {
            return Ok(Put::TooLarge);
        }
        let keep_ms = (fresh + stale).as_millis();
        if keep_ms == 0 {
            return Ok(Put::Expired);
        }
        let fresh_ms = fresh.as_millis();
        let (fresh_ms, keep_ms) = (fresh_ms.to_string(), keep_ms.to_string());
        let _: i64 = self
            .store
            .run("cache_put", |mut conn| {
                let mut call = PUT.key(&keys.body);
                call.arg(body).arg(&fresh_ms).arg(&keep_ms);
                async move { call.invoke_async(&mut conn).await }
            })
            .await?;
        Ok(Put::Stored)
    }

    /// Takes the lock of `keys` for `lease` (past it, the lock expires: the
    /// bound on one fetch, so a dead holder blocks no one for longer). `None`:
    /// someone else holds it.
    pub async fn try_lock(
        &self,
        keys: &EntryKeys,
        lease: Duration,
    ) -> Result<Option<LockToken>, StoreError> {
        let token = uuid::Uuid::new_v4().simple().to_string();
        let lease_ms = lease.as_millis().max(1).to_string();
        let reply: ::redis::Value = self
            .store
            .run("cache_lock", |mut conn| {
                let mut set = ::redis::cmd("SET");
                set.arg(&keys.lock)
                    .arg(&token)
                    .arg("NX")
                    .arg("PX")
                    .arg(&lease_ms);
                async move { set.query_async(&mut conn).await }
            })
            .await?;
        Ok((reply != ::redis::Value::Nil).then_some(LockToken(token)))
    }

    /// Releases the lock of `keys` if `token` still holds it; `false` when it
    /// had expired (and maybe been taken over).
    pub async fn unlock(&self, keys: &EntryKeys, token: LockToken) -> Result<bool, StoreError> {
        let deleted: i64 = self
            .store
            .run("cache_unlock", |mut conn| {
                let mut call = UNLOCK.key(&keys.lock);
                call.arg(&token.0);
                async move { call.invoke_async(&mut conn).await }
            })
            .await?;
        Ok(deleted == 1)
    }

    /// Waits, at most `max_wait`, for another instance's fetch of `keys`:
    /// looks at the entry and its lock, then again after 5 ms, 10 ms, … up to
    /// 100 ms between looks, until a fresh body appears, the lock is gone, or
    /// time is up. A Redis failure ends the wait with the error: fetch
    /// locally.
    pub async fn wait_for(
        &self,
        keys: &EntryKeys,
        max_wait: Duration,
    ) -> Result<Waited, StoreError> {
        let started = tokio::time::Instant::now();
        let mut pause = FIRST_POLL;
        loop {
            let (body, locked) = self.look("cache_wait", keys, true).await?;
            match body {
                Some(body) if body.is_fresh() => return Ok(Waited::Fresh(body)),
                stale if !locked => return Ok(Waited::LockFree(stale)),
                stale => {
                    let left = max_wait.saturating_sub(started.elapsed());
                    if left.is_zero() {
                        return Ok(Waited::TimedOut(stale));
                    }
                    tokio::time::sleep(pause.min(left)).await;
                    pause = (pause * 2).min(MAX_POLL);
                }
            }
        }
    }

    /// The entry and, with `with_lock`, whether its lock is held.
    async fn look(
        &self,
        op: &'static str,
        keys: &EntryKeys,
        with_lock: bool,
    ) -> Result<(Option<CachedBody>, bool), StoreError> {
        let (found, body, fresh_ms, usable_ms, locked): (i64, Vec<u8>, i64, i64, i64) = self
            .store
            .run(op, |mut conn| {
                let mut call = GET.key(&keys.body);
                if with_lock {
                    call.key(&keys.lock);
                }
                async move { call.invoke_async(&mut conn).await }
            })
            .await?;
        let millis = |ms: i64| Duration::from_millis(u64::try_from(ms).unwrap_or(0));
        let body = (found == 1).then(|| CachedBody {
            body: Bytes::from(body),
            fresh_for: millis(fresh_ms),
            usable_for: millis(usable_ms),
        });
        Ok((body, locked == 1))
    }
}
