//! The vendor-429 pause, shared: one instance that hears a vendor's 429 stops
//! every instance (and `chatgate export`) from calling that vendor account until
//! the window ends.
//!
//! The pause is a key whose expiry is the end of the window (the value means
//! nothing), so reading it is one `PTTL` and it vanishes on its own. Setting it
//! only ever extends: two instances hearing two 429s with different
//! `Retry-After`s end with the longer pause, whatever the order.

use std::sync::LazyLock;
use std::time::Duration;

use super::client::{SharedStore, StoreError};

/// Sets the pause to `ARGV[1]` ms unless more is already left; returns what is
/// left after the call, in ms.
static EXTEND: LazyLock<::redis::Script> = LazyLock::new(|| {
    ::redis::Script::new(
        r"
local left = redis.call('PTTL', KEYS[1])
local wanted = tonumber(ARGV[1])
if left < wanted then
  redis.call('SET', KEYS[1], '1', 'PX', ARGV[1])
  return wanted
end
return left
",
    )
});

/// Cuts the pause down to `ARGV[1]` ms if more is left (a reload lowered
/// `max_pause`); returns what is left after the call, in ms (0: no pause).
static CAP: LazyLock<::redis::Script> = LazyLock::new(|| {
    ::redis::Script::new(
        r"
local left = redis.call('PTTL', KEYS[1])
local cap = tonumber(ARGV[1])
if left > cap then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  return cap
end
if left < 0 then return 0 end
return left
",
    )
});

/// Pauses the account at `key` for at least `wait` (never shortening a longer
/// pause) and returns the pause now left. Callers cap `wait` at the
/// provider's `max_pause` first, as in memory. A zero `wait` changes nothing.
pub async fn extend(
    store: &SharedStore,
    key: &str,
    wait: Duration,
) -> Result<Duration, StoreError> {
    if wait.is_zero() {
        return Ok(left(store, key).await?.unwrap_or_default());
    }
    let ms = millis_ceil(wait);
    let left: i64 = store
        .run("pause_set", |mut conn| {
            let mut call = EXTEND.key(key);
            call.arg(ms);
            async move { call.invoke_async(&mut conn).await }
        })
        .await?;
    Ok(Duration::from_millis(u64::try_from(left).unwrap_or(0)))
}

/// How much of the pause at `key` is left, if any.
pub async fn left(store: &SharedStore, key: &str) -> Result<Option<Duration>, StoreError> {
    let ms: i64 = store
        .run("pause_get", |mut conn| async move {
            ::redis::cmd("PTTL").arg(key).query_async(&mut conn).await
        })
        .await?;
    // -2: no key; -1: a key without expiry, which this module never writes.
    Ok(u64::try_from(ms)
        .ok()
        .filter(|&ms| ms > 0)
        .map(Duration::from_millis))
}

/// Cuts the pause at `key` down to `max` if more is left: after a reload that
/// lowered `max_pause`, as the in-memory pause does. Returns the pause left.
pub async fn cap(store: &SharedStore, key: &str, max: Duration) -> Result<Duration, StoreError> {
    let ms = millis_ceil(max);
    let left: i64 = store
        .run("pause_cap", |mut conn| {
            let mut call = CAP.key(key);
            call.arg(ms);
            async move { call.invoke_async(&mut conn).await }
        })
        .await?;
    Ok(Duration::from_millis(u64::try_from(left).unwrap_or(0)))
}

/// The longest pause written (about 35 years), well inside what Redis accepts
/// as an expiry: a vendor asking for 10^19 seconds must not make Redis refuse
/// the write (callers cap pauses at `max_pause` long before this).
const MAX_PAUSE_MS: u64 = 1 << 40;

/// Whole milliseconds, rounded up (a pause is never cut short by rounding),
/// from 1 (`PX 0` is an error) to [`MAX_PAUSE_MS`].
fn millis_ceil(d: Duration) -> u64 {
    u64::try_from(d.as_nanos().div_ceil(1_000_000))
        .unwrap_or(MAX_PAUSE_MS)
        .clamp(1, MAX_PAUSE_MS)
}
