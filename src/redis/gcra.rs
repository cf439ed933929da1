//! GCRA in Redis: one atomic script per decision (`gcra.lua`), on Redis server
//! time, with the numbers of the in-memory limiter.
//!
//! Every instance (and `chatgate export`) asks the same script about the same
//! key, so a client's quota or a vendor's quota guard is one bucket however many
//! processes draw from it. The script reads and writes the bucket in one step:
//! no read-modify-write race between instances. It reads the time from Redis,
//! so instances whose clocks disagree still agree on the bucket.
//!
//! The arithmetic is governor's (`tau = T × (B − 1)`, the theoretical arrival
//! time, the same remaining count and wait), in whole microseconds; the answer
//! maps field for field onto the in-memory `RateInfo`, so `RateLimit-*` and
//! `Retry-After` mean the same with or without Redis.
//!
//! ```no_run
//! # async fn f(store: chatgate::redis::SharedStore) -> Result<(), chatgate::redis::StoreError> {
//! use std::num::NonZeroU32;
//! use std::time::Duration;
//! use chatgate::redis::gcra::{self, GcraParams};
//!
//! let params = GcraParams::new(Duration::from_secs(1), NonZeroU32::new(20).unwrap());
//! let key = store.keys().client_limit("acme");
//! let decision = gcra::check(&store, &key, params).await?;
//! if let Some(wait) = decision.retry_after {
//!     println!("429, Retry-After: {}", wait.as_secs_f64().ceil());
//! }
//! # Ok(()) }
//! ```

use std::num::NonZeroU32;
use std::sync::LazyLock;
use std::time::Duration;

use super::client::{SharedStore, StoreError};

static SCRIPT: LazyLock<::redis::Script> =
    LazyLock::new(|| ::redis::Script::new(include_str!("gcra.lua")));

/// The longest time a full bucket takes to refill, in µs (about 35 years):
/// with Unix time in µs added, every number in the script stays an exact
/// integer in Lua's doubles.
const MAX_REFILL_US: u64 = 1 << 50;

/// A bucket's shape: one cell every `emission_interval`, `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GcraParams {
    emission_us: u64,
    burst: u32,
}

impl GcraParams {
    /// One cell every `emission_interval` (rounded up to a whole microsecond:
    /// never more than configured), `burst` at once (at most what refills in
    /// about 35 years, which is no limit anyone can tell from none).
    pub fn new(emission_interval: Duration, burst: NonZeroU32) -> Self {
        let ns = emission_interval.as_nanos();
        let emission_us = u64::try_from(ns.div_ceil(1_000))
            .unwrap_or(MAX_REFILL_US)
            .clamp(1, MAX_REFILL_US);
        let max_burst = u32::try_from(MAX_REFILL_US / emission_us).unwrap_or(u32::MAX);
        Self {
            emission_us,
            burst: burst.get().min(max_burst.max(1)),
        }
    }

    /// The shape of an in-memory governor quota.
    pub fn from_quota(quota: &governor::Quota) -> Self {
        Self::new(quota.replenish_interval(), quota.burst_size())
    }

    /// The time between two cells, as the script uses it.
    pub fn emission_interval(&self) -> Duration {
        Duration::from_micros(self.emission_us)
    }

    /// Cells at once.
    pub fn burst(&self) -> u32 {
        self.burst
    }
}

/// One decision, in the units of the `RateLimit-*` headers: the fields of the
/// in-memory `limits::RateInfo`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// The burst (`RateLimit-Limit`).
    pub limit: u32,
    /// Cells left now (`RateLimit-Remaining`).
    pub remaining: u32,
    /// Until the bucket is full again (`RateLimit-Reset`).
    pub reset: Duration,
    /// Set when refused: until the next cell conforms (`Retry-After`).
    pub retry_after: Option<Duration>,
}

impl Decision {
    /// Whether the cell was admitted (and counted).
    pub fn allowed(&self) -> bool {
        self.retry_after.is_none()
    }
}

/// Counts one cell against the bucket at `key`, on Redis server time.
pub async fn check(
    store: &SharedStore,
    key: &str,
    params: GcraParams,
) -> Result<Decision, StoreError> {
    decide(store, key, params, None).await
}

/// [`check`] at an explicit `now` (since the Unix epoch) instead of Redis's
/// clock, so tests can replay a sequence against governor's fake clock. Such a
/// bucket gets no expiry (its clock is not Redis's): production uses [`check`].
pub async fn check_at(
    store: &SharedStore,
    key: &str,
    params: GcraParams,
    now: Duration,
) -> Result<Decision, StoreError> {
    decide(store, key, params, Some(now)).await
}

/// Waits for a cell of the bucket at `key`, at most `max_wait`, like the
/// in-memory provider guard: `Ok(Ok(()))` once admitted; `Ok(Err(wait))` at
/// once when the next cell is further away than the time left, instead of
/// holding the caller for nothing.
///
/// Never polls: each refusal says how long until the next cell, the caller
/// sleeps that long and asks once more (another instance may have taken that
/// cell, then it waits again, still within `max_wait`). A Redis failure ends
/// the wait with the error: the caller falls back to its in-memory guard.
pub async fn acquire(
    store: &SharedStore,
    key: &str,
    params: GcraParams,
    max_wait: Duration,
) -> Result<Result<(), Duration>, StoreError> {
    let started = tokio::time::Instant::now();
    loop {
        let Some(wait) = check(store, key, params).await?.retry_after else {
            return Ok(Ok(()));
        };
        if started.elapsed() + wait > max_wait {
            return Ok(Err(wait));
        }
        tokio::time::sleep(wait).await;
    }
}

async fn decide(
    store: &SharedStore,
    key: &str,
    params: GcraParams,
    now: Option<Duration>,
) -> Result<Decision, StoreError> {
    let now = now.map(|n| n.as_micros().to_string()).unwrap_or_default();
    let (allowed, remaining, reset_us, retry_us): (i64, i64, i64, i64) = store
        .run("gcra", |mut conn| {
            let mut call = SCRIPT.key(key);
            call.arg(params.emission_us).arg(params.burst).arg(&now);
            async move { call.invoke_async(&mut conn).await }
        })
        .await?;
    let micros = |us: i64| Duration::from_micros(u64::try_from(us).unwrap_or(0));
    Ok(Decision {
        limit: params.burst,
        remaining: u32::try_from(remaining).unwrap_or(0),
        reset: micros(reset_us),
        retry_after: (allowed == 0).then(|| micros(retry_us)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_round_up_to_whole_microseconds() {
        let three_per_second =
            GcraParams::from_quota(&governor::Quota::per_second(NonZeroU32::new(3).unwrap()));
        assert_eq!(
            three_per_second.emission_interval(),
            Duration::from_micros(333_334)
        );
        assert_eq!(three_per_second.burst(), 3);
        let tiny = GcraParams::new(Duration::from_nanos(1), NonZeroU32::MIN);
        assert_eq!(tiny.emission_interval(), Duration::from_micros(1));
    }

    #[test]
    fn a_burst_beyond_decades_of_refill_is_capped() {
        let p = GcraParams::new(Duration::from_secs(3600), NonZeroU32::MAX);
        assert_eq!(
            p.burst(),
            u32::try_from(MAX_REFILL_US / 3_600_000_000).unwrap()
        );
        let p = GcraParams::new(Duration::MAX, NonZeroU32::MAX);
        assert_eq!(p.emission_interval(), Duration::from_micros(MAX_REFILL_US));
        assert_eq!(p.burst(), 1);
    }
}
