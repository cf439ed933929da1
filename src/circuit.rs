//! The circuit breaker in front of one provider (SPEC §7), so that a vendor that
//! keeps failing is left alone for a while instead of being hammered by every
//! caller, and callers get a fast 503 (or STALE) instead of waiting for a timeout.
//!
//! - **Closed**: calls pass. `threshold` *consecutive* failed calls (counted per
//!   attempt) open the circuit; any success in between resets the streak.
//! - **Open**: calls are refused until `cooldown` has passed.
//! - **Half-open**: after the cooldown exactly one caller gets a probe. Its success
//!   closes the circuit, its failure opens it for another full cooldown.
//!
//! A *neutral* outcome (the vendor said 429, which the provider pause handles, or
//! the call was cancelled) is neither a failure nor a success. A permit dropped
//! without an outcome is neutral; a dropped probe frees the probe slot so the next
//! caller probes instead, so the breaker can never be wedged half-open.
//!
//! Time comes in as an argument (sans-IO), read by the caller from its
//! [`Clock`](crate::clock::Clock), so tests move a manual clock instead of
//! sleeping:
//!
//! ```
//! use std::num::NonZeroU32;
//! use std::time::Duration;
//! use chatgate::circuit::{CircuitBreaker, CircuitState};
//! use chatgate::clock::{Clock, ManualClock};
//!
//! let manual = ManualClock::new();
//! let clock = Clock::from(manual.clone());
//! let breaker = CircuitBreaker::new(NonZeroU32::MIN, Duration::from_secs(30));
//! breaker.acquire(clock.now()).unwrap().failure(clock.now());
//! assert_eq!(breaker.state(clock.now()), CircuitState::Open);
//! assert!(breaker.acquire(clock.now()).is_err());
//! manual.advance(Duration::from_secs(30));
//! assert_eq!(breaker.state(clock.now()), CircuitState::HalfOpen);
//! ```

use std::num::NonZeroU32;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// The breaker's state, as reported to operators (`chatgate_circuit_state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CircuitState {
    /// Calls pass.
    Closed,
    /// Calls are refused until the cooldown has passed.
    Open,
    /// The cooldown has passed: one probe call decides whether to close again.
    HalfOpen,
}

impl CircuitState {
    /// The value of the `chatgate_circuit_state` gauge: 0 closed, 1 open,
    /// 2 half-open.
    pub fn as_gauge(self) -> i64 {
        match self {
            Self::Closed => 0,
            Self::Open => 1,
            Self::HalfOpen => 2,
        }
    }
}

/// A call refused because the provider's circuit is open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the provider's circuit is open; retry in {retry_in:?}")]
pub struct CircuitOpen {
    /// How long until a call may be let through: the rest of the cooldown, or
    /// [`CircuitBreaker::PROBE_PENDING_RETRY`] while another caller's probe is
    /// in flight.
    pub retry_in: Duration,
}

/// One provider's circuit breaker. `Send + Sync`; every check is one short,
/// uncontended-in-practice lock.
#[derive(Debug)]
pub struct CircuitBreaker {
    threshold: NonZeroU32,
    cooldown: Duration,
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    phase: Phase,
    /// Bumped each time the circuit opens, so that the outcome of a call let
    /// through before (a straggler) never counts in a later closed period.
    generation: u64,
}

#[derive(Debug, Clone, Copy)]
enum Phase {
    Closed {
        streak: u32,
    },
    Open {
        until: Instant,
    },
    /// The probe is in flight; it was let through at `since`.
    Probing {
        since: Instant,
    },
}

impl CircuitBreaker {
    /// `retry_in` given while another caller's probe is in flight. Its answer is
    /// due within one vendor timeout; one second is the smallest `Retry-After` a
    /// client can be told, and keeps refused callers from spinning.
    pub const PROBE_PENDING_RETRY: Duration = Duration::from_secs(1);

    /// The longest cooldown kept; longer ones are shortened to it, so that
    /// `now + cooldown` can never overflow an `Instant` (which would panic).
    pub const MAX_COOLDOWN: Duration = Duration::from_secs(24 * 60 * 60);

    /// A closed breaker that opens after `threshold` consecutive failures and
    /// lets a probe through `cooldown` (at most [`Self::MAX_COOLDOWN`]) after
    /// opening.
    pub fn new(threshold: NonZeroU32, cooldown: Duration) -> Self {
        Self {
            threshold,
            cooldown: cooldown.min(Self::MAX_COOLDOWN),
            inner: Mutex::new(Inner {
                phase: Phase::Closed { streak: 0 },
                generation: 0,
            }),
        }
    }

    /// Asks to make one vendor call at `now`: a [`Permit`] to report its outcome
    /// on, or [`CircuitOpen`] when the call must not be made. After the cooldown
    /// the first caller gets the probe; the others are refused until it settles.
    pub fn acquire(&self, now: Instant) -> Result<Permit<'_>, CircuitOpen> {
        let mut inner = self.lock();
        let generation = inner.generation;
        match inner.phase {
            Phase::Closed { .. } => Ok(Permit::new(self, Role::Call { generation })),
            Phase::Open { until } if now >= until => {
                inner.phase = Phase::Probing { since: now };
                Ok(Permit::new(self, Role::Probe))
            }
            Phase::Open { until } => Err(CircuitOpen {
                retry_in: until.saturating_duration_since(now),
            }),
            Phase::Probing { .. } => Err(CircuitOpen {
                retry_in: Self::PROBE_PENDING_RETRY,
            }),
        }
    }

    /// The state at `now`. An open circuit whose cooldown has passed reports
    /// [`CircuitState::HalfOpen`] (the next caller will probe), as does one
    /// whose probe is in flight.
    pub fn state(&self, now: Instant) -> CircuitState {
        match self.lock().phase {
            Phase::Closed { .. } => CircuitState::Closed,
            Phase::Open { until } if now < until => CircuitState::Open,
            Phase::Open { .. } | Phase::Probing { .. } => CircuitState::HalfOpen,
        }
    }

    /// The state is always consistent (nothing panics while holding the lock),
    /// so a poisoned lock is still safe to use.
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn settle(&self, role: Role, outcome: Outcome) {
        let mut inner = self.lock();
        match (role, inner.phase) {
            (Role::Call { generation }, Phase::Closed { streak })
                if generation == inner.generation =>
            {
                match outcome {
                    Outcome::Success => inner.phase = Phase::Closed { streak: 0 },
                    Outcome::Failure(now) => {
                        let streak = streak.saturating_add(1);
                        inner.phase = if streak >= self.threshold.get() {
                            self.open(&mut inner, now)
                        } else {
                            Phase::Closed { streak }
                        };
                    }
                    Outcome::Neutral => {}
                }
            }
            // Only the probe decides while half-open, and a straggler from before
            // the circuit opened never counts.
            (Role::Call { .. }, _) => {}
            (Role::Probe, Phase::Probing { since }) => {
                inner.phase = match outcome {
                    Outcome::Success => Phase::Closed { streak: 0 },
                    Outcome::Failure(now) => self.open(&mut inner, now),
                    // The cooldown has passed already: the next caller probes.
                    Outcome::Neutral => Phase::Open { until: since },
                };
            }
            // Unreachable: only the probe's own settlement leaves `Probing`.
            (Role::Probe, _) => {}
        }
    }

    fn open(&self, inner: &mut Inner, now: Instant) -> Phase {
        inner.generation = inner.generation.wrapping_add(1);
        Phase::Open {
            until: now + self.cooldown,
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Role {
    /// A call made while closed, in the closed period `generation`.
    Call { generation: u64 },
    /// The single half-open probe.
    Probe,
}

#[derive(Debug, Clone, Copy)]
enum Outcome {
    Success,
    Failure(Instant),
    Neutral,
}

/// Leave to make one vendor call; report how it went with exactly one of
/// [`success`](Self::success), [`failure`](Self::failure) or
/// [`neutral`](Self::neutral). Dropping it unreported (the caller was cancelled)
/// counts as neutral, so a lost probe never wedges the breaker.
#[must_use = "report the call's outcome; dropping the permit counts as neutral"]
#[derive(Debug)]
pub struct Permit<'a> {
    breaker: &'a CircuitBreaker,
    /// `None` once reported.
    role: Option<Role>,
}

impl<'a> Permit<'a> {
    fn new(breaker: &'a CircuitBreaker, role: Role) -> Self {
        Self {
            breaker,
            role: Some(role),
        }
    }

    /// Whether this is the half-open probe, e.g. to log the recovery attempt.
    pub fn is_probe(&self) -> bool {
        matches!(self.role, Some(Role::Probe))
    }

    /// The vendor answered (including any 4xx other than 429): the streak
    /// resets, and a probe closes the circuit.
    pub fn success(mut self) {
        self.report(Outcome::Success);
    }

    /// The call failed (5xx, timeout, connection error, invalid body) at `now`:
    /// one more in the streak, and a probe re-opens the circuit for a full
    /// cooldown from `now`.
    pub fn failure(mut self, now: Instant) {
        self.report(Outcome::Failure(now));
    }

    /// Neither (the vendor said 429, or the call was abandoned): the streak does
    /// not move, and a probe frees its slot for the next caller.
    pub fn neutral(mut self) {
        self.report(Outcome::Neutral);
    }

    fn report(&mut self, outcome: Outcome) {
        if let Some(role) = self.role.take() {
            self.breaker.settle(role, outcome);
        }
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        self.report(Outcome::Neutral);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, ManualClock};
    use std::sync::Barrier;

    const COOLDOWN: Duration = Duration::from_secs(30);

    fn breaker(threshold: u32) -> CircuitBreaker {
        CircuitBreaker::new(NonZeroU32::new(threshold).unwrap(), COOLDOWN)
    }

    fn fail(b: &CircuitBreaker, now: Instant) {
        b.acquire(now).unwrap().failure(now);
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    /// An instant to start from, on a clock that never moves by itself.
    fn start() -> Instant {
        Clock::from(ManualClock::new()).now()
    }

    /// A breaker opened at the returned instant.
    fn opened(threshold: u32) -> (CircuitBreaker, Instant) {
        let b = breaker(threshold);
        let t0 = start();
        for _ in 0..threshold {
            fail(&b, t0);
        }
        assert_eq!(b.state(t0), CircuitState::Open);
        (b, t0)
    }

    #[test]
    fn open_half_open_and_closed_follow_the_clock_through_a_cooldown() {
        let manual = ManualClock::new();
        let clock = Clock::from(manual.clone());
        let b = breaker(2);
        fail(&b, clock.now());
        fail(&b, clock.now());
        assert_eq!(b.state(clock.now()), CircuitState::Open);
        manual.advance(COOLDOWN - Duration::from_nanos(1));
        assert_eq!(b.state(clock.now()), CircuitState::Open);
        assert_eq!(
            b.acquire(clock.now()).unwrap_err().retry_in,
            Duration::from_nanos(1)
        );
        manual.advance(Duration::from_nanos(1));
        assert_eq!(b.state(clock.now()), CircuitState::HalfOpen);
        // A failed probe opens it for a whole cooldown from its failure.
        let probe = b.acquire(clock.now()).unwrap();
        assert!(probe.is_probe());
        manual.advance(secs(4));
        probe.failure(clock.now());
        assert_eq!(b.state(clock.now()), CircuitState::Open);
        manual.advance(COOLDOWN - secs(1));
        assert_eq!(b.acquire(clock.now()).unwrap_err().retry_in, secs(1));
        manual.advance(secs(1));
        // A successful probe closes it.
        b.acquire(clock.now()).unwrap().success();
        assert_eq!(b.state(clock.now()), CircuitState::Closed);
        manual.advance(secs(3600));
        assert_eq!(b.state(clock.now()), CircuitState::Closed);
    }

    #[test]
    fn opens_exactly_at_the_threshold_and_not_before() {
        let b = breaker(5);
        let now = start();
        for _ in 0..4 {
            fail(&b, now);
            assert_eq!(b.state(now), CircuitState::Closed);
            assert!(b.acquire(now).is_ok());
        }
        fail(&b, now);
        assert_eq!(b.state(now), CircuitState::Open);
        assert!(b.acquire(now).is_err());
    }

    #[test]
    fn a_success_in_between_resets_the_streak() {
        let b = breaker(3);
        let now = start();
        fail(&b, now);
        fail(&b, now);
        b.acquire(now).unwrap().success();
        fail(&b, now);
        fail(&b, now);
        assert_eq!(b.state(now), CircuitState::Closed);
        fail(&b, now);
        assert_eq!(b.state(now), CircuitState::Open);
    }

    #[test]
    fn refuses_while_open_with_a_shrinking_retry_in() {
        let (b, t0) = opened(2);
        assert_eq!(b.acquire(t0).unwrap_err().retry_in, COOLDOWN);
        assert_eq!(b.acquire(t0 + secs(10)).unwrap_err().retry_in, secs(20));
        assert_eq!(
            b.acquire(t0 + COOLDOWN - Duration::from_millis(1))
                .unwrap_err()
                .retry_in,
            Duration::from_millis(1)
        );
        assert!(b.acquire(t0 + COOLDOWN).is_ok());
    }

    #[test]
    fn exactly_one_probe_after_cooldown_under_concurrent_acquirers() {
        let (b, t0) = opened(1);
        let at = t0 + COOLDOWN;
        let threads = 32;
        let barrier = Barrier::new(threads);
        let results: Vec<_> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads)
                .map(|_| {
                    s.spawn(|| {
                        barrier.wait();
                        b.acquire(at)
                    })
                })
                .collect();
            // The permits are kept until all are counted, so none frees the slot.
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let probes: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
        assert_eq!(probes.len(), 1);
        assert!(probes[0].is_probe());
        for refused in results.iter().filter_map(|r| r.as_ref().err()) {
            assert_eq!(refused.retry_in, CircuitBreaker::PROBE_PENDING_RETRY);
        }
    }

    #[test]
    fn probe_success_closes_the_circuit_and_resets_the_streak() {
        let (b, t0) = opened(2);
        let at = t0 + COOLDOWN;
        b.acquire(at).unwrap().success();
        assert_eq!(b.state(at), CircuitState::Closed);
        fail(&b, at);
        assert_eq!(b.state(at), CircuitState::Closed, "the streak starts over");
        fail(&b, at);
        assert_eq!(b.state(at), CircuitState::Open);
    }

    #[test]
    fn probe_failure_reopens_for_a_full_cooldown() {
        let (b, t0) = opened(2);
        let probe_at = t0 + COOLDOWN + secs(5);
        let failed_at = probe_at + secs(3);
        b.acquire(probe_at).unwrap().failure(failed_at);
        assert_eq!(b.state(failed_at), CircuitState::Open);
        assert_eq!(b.acquire(failed_at).unwrap_err().retry_in, COOLDOWN);
        assert!(b.acquire(failed_at + COOLDOWN - secs(1)).is_err());
        assert!(b.acquire(failed_at + COOLDOWN).unwrap().is_probe());
    }

    #[test]
    fn a_dropped_probe_permit_frees_the_slot() {
        let (b, t0) = opened(1);
        let at = t0 + COOLDOWN;
        let probe = b.acquire(at).unwrap();
        assert!(b.acquire(at).is_err());
        drop(probe);
        assert_eq!(b.state(at), CircuitState::HalfOpen);
        let next = b.acquire(at).unwrap();
        assert!(next.is_probe());
        next.neutral();
        assert!(b.acquire(at).unwrap().is_probe(), "neutral frees it too");
    }

    #[test]
    fn neutral_outcomes_do_not_move_the_streak() {
        let b = breaker(2);
        let now = start();
        fail(&b, now);
        b.acquire(now).unwrap().neutral();
        drop(b.acquire(now).unwrap());
        assert_eq!(b.state(now), CircuitState::Closed);
        fail(&b, now);
        assert_eq!(b.state(now), CircuitState::Open, "the streak was still 1");
    }

    #[test]
    fn stragglers_from_before_opening_do_not_count() {
        let b = breaker(1);
        let t0 = start();
        let early_success = b.acquire(t0).unwrap();
        let early_failure = b.acquire(t0).unwrap();
        fail(&b, t0);
        early_success.success();
        assert_eq!(b.state(t0), CircuitState::Open, "only a probe closes it");
        let at = t0 + COOLDOWN;
        b.acquire(at).unwrap().success();
        early_failure.failure(at);
        assert_eq!(b.state(at), CircuitState::Closed, "a stale failure");
    }

    #[test]
    fn an_absurd_cooldown_is_capped_instead_of_overflowing() {
        let b = CircuitBreaker::new(NonZeroU32::MIN, Duration::MAX);
        let now = start();
        fail(&b, now);
        let refused = b.acquire(now).unwrap_err();
        assert_eq!(refused.retry_in, CircuitBreaker::MAX_COOLDOWN);
    }

    #[test]
    fn breaker_and_permit_can_be_shared_and_held_across_awaits() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<CircuitBreaker>();
        send_sync::<Permit<'static>>();
    }

    #[test]
    fn state_transitions_are_reported_for_the_gauge() {
        let (b, t0) = opened(1);
        let gauge = |at| b.state(at).as_gauge();
        assert_eq!(gauge(t0), 1);
        let at = t0 + COOLDOWN;
        assert_eq!(gauge(at), 2, "cooldown over: the next caller probes");
        let probe = b.acquire(at).unwrap();
        assert_eq!(gauge(at), 2, "probe in flight");
        probe.failure(at);
        assert_eq!(gauge(at), 1);
        let at = at + COOLDOWN;
        b.acquire(at).unwrap().success();
        assert_eq!(gauge(at), 0);
    }
}
