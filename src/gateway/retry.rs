//! When a vendor call is tried again (SPEC §7): a pure function of what failed,
//! how many retries were made, `now` and the request's deadline — no clock read,
//! no randomness inside (the jitter draw is an argument) — so every rule has a
//! deterministic unit test.
//!
//! Idempotent reads only are retried, on connection errors, 429 and the transient
//! statuses 502, 503 and 504, with exponential backoff and full jitter, never
//! past the request's deadline. A timed-out attempt is not retried: it already
//! spent the caller's budget.

use std::time::{Duration, Instant};

/// First backoff step; each retry doubles it, up to [`BACKOFF_CAP`].
pub const BACKOFF_BASE: Duration = Duration::from_millis(100);
/// Largest backoff step.
pub const BACKOFF_CAP: Duration = Duration::from_secs(2);

/// What a failed attempt was, as far as retrying is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failed {
    /// Connecting or sending failed: nothing reached the vendor.
    Connect,
    /// The call timed out, the body was too large or cut off.
    Spent,
    /// The vendor said 429: the provider is now paused.
    RateLimited,
    /// A transient vendor failure (502, 503, 504).
    Transient,
    /// Anything else: retrying would get the same answer.
    Permanent,
}

/// What to do after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Sleep this long, then try again.
    Backoff(Duration),
    /// Go round again: the pause phase decides whether the window can be
    /// waited out.
    AfterPause,
    /// Answer with the failure.
    GiveUp,
}

/// One provider's retry settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries of one vendor call.
    pub max_retries: u32,
    /// Longest 429 window a request waits out.
    pub max_retry_wait: Duration,
}

impl RetryPolicy {
    /// The decision after attempt `retries + 1` failed as `failed` at `now`,
    /// for a request due by `deadline`; `jitter` is a uniform draw in `[0, 1)`.
    pub fn after_failure(
        &self,
        failed: Failed,
        retries: u32,
        now: Instant,
        deadline: Instant,
        jitter: f64,
    ) -> Decision {
        if retries >= self.max_retries {
            return Decision::GiveUp;
        }
        match failed {
            Failed::RateLimited => Decision::AfterPause,
            Failed::Connect | Failed::Transient => {
                let wait = backoff(retries, jitter);
                if before(now, wait, deadline) {
                    Decision::Backoff(wait)
                } else {
                    Decision::GiveUp
                }
            }
            Failed::Spent | Failed::Permanent => Decision::GiveUp,
        }
    }

    /// Whether a request that finds its vendor paused for `left` waits the window
    /// out: once per call, when the window is short enough and ends before the
    /// deadline. Otherwise it is answered 429 at once.
    pub fn waits_out_pause(
        &self,
        left: Duration,
        waited_before: bool,
        now: Instant,
        deadline: Instant,
    ) -> bool {
        !waited_before && left <= self.max_retry_wait && before(now, left, deadline)
    }
}

/// Whether `now + wait` falls before `deadline` (an overflow never does).
fn before(now: Instant, wait: Duration, deadline: Instant) -> bool {
    now.checked_add(wait).is_some_and(|t| t < deadline)
}

/// Exponential backoff with full jitter: `jitter` (in `[0, 1)`) of
/// `min(cap, base·2^retry)`, so clients retrying together spread out instead of
/// hitting the vendor in waves.
pub fn backoff(retry: u32, jitter: f64) -> Duration {
    let ceiling = BACKOFF_BASE
        .saturating_mul(1u32 << retry.min(16))
        .min(BACKOFF_CAP);
    ceiling.mul_f64(jitter.clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, ManualClock};

    const POLICY: RetryPolicy = RetryPolicy {
        max_retries: 2,
        max_retry_wait: Duration::from_secs(5),
    };

    fn at(now: Instant, ms: u64) -> Instant {
        now + Duration::from_millis(ms)
    }

    /// A fixed starting instant from the test clock.
    fn start() -> Instant {
        Clock::from(ManualClock::new()).now()
    }

    #[test]
    fn backoff_doubles_from_the_base_up_to_the_cap_scaled_by_the_draw() {
        assert_eq!(backoff(0, 1.0), Duration::from_millis(100));
        assert_eq!(backoff(1, 1.0), Duration::from_millis(200));
        assert_eq!(backoff(3, 0.5), Duration::from_millis(400));
        assert_eq!(backoff(5, 1.0), BACKOFF_CAP);
        assert_eq!(backoff(40, 1.0), BACKOFF_CAP);
        assert_eq!(backoff(2, 0.0), Duration::ZERO);
        assert_eq!(
            backoff(0, 7.0),
            Duration::from_millis(100),
            "the draw is clamped"
        );
    }

    #[test]
    fn connection_errors_and_transient_statuses_back_off_within_the_deadline() {
        let now = start();
        for failed in [Failed::Connect, Failed::Transient] {
            assert_eq!(
                POLICY.after_failure(failed, 0, now, at(now, 10_000), 0.5),
                Decision::Backoff(Duration::from_millis(50))
            );
            assert_eq!(
                POLICY.after_failure(failed, 1, now, at(now, 10_000), 1.0),
                Decision::Backoff(Duration::from_millis(200))
            );
            // The backoff would end past the deadline: give up now.
            assert_eq!(
                POLICY.after_failure(failed, 1, now, at(now, 150), 1.0),
                Decision::GiveUp
            );
        }
    }

    #[test]
    fn retries_stop_at_max_retries() {
        let now = start();
        for failed in [Failed::Connect, Failed::Transient, Failed::RateLimited] {
            assert_eq!(
                POLICY.after_failure(failed, 2, now, at(now, 60_000), 0.0),
                Decision::GiveUp
            );
        }
    }

    #[test]
    fn a_429_goes_round_to_the_pause_and_spent_or_permanent_failures_never_retry() {
        let now = start();
        let later = at(now, 60_000);
        assert_eq!(
            POLICY.after_failure(Failed::RateLimited, 0, now, later, 0.3),
            Decision::AfterPause
        );
        assert_eq!(
            POLICY.after_failure(Failed::Spent, 0, now, later, 0.3),
            Decision::GiveUp
        );
        assert_eq!(
            POLICY.after_failure(Failed::Permanent, 0, now, later, 0.3),
            Decision::GiveUp
        );
    }

    #[test]
    fn a_pause_is_waited_out_once_when_short_and_before_the_deadline() {
        let now = start();
        let two = Duration::from_secs(2);
        assert!(POLICY.waits_out_pause(two, false, now, at(now, 3_000)));
        assert!(
            !POLICY.waits_out_pause(two, true, now, at(now, 3_000)),
            "once"
        );
        assert!(
            !POLICY.waits_out_pause(two, false, now, at(now, 1_500)),
            "deadline"
        );
        assert!(
            !POLICY.waits_out_pause(Duration::from_secs(6), false, now, at(now, 60_000)),
            "longer than max_retry_wait"
        );
        assert!(
            !POLICY.waits_out_pause(Duration::MAX, false, now, at(now, 60_000)),
            "no overflow"
        );
    }
}
