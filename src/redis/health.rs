//! Whether Redis is worth trying: a short circuit around the store itself.
//!
//! While Redis is down, every request would otherwise pay a full timeout
//! before falling back. After one failure the store is *down*: operations are
//! refused at once, without touching the network, until a backoff has passed
//! (1 s, doubling on every failed probe up to 30 s); then exactly one operation
//! goes through as a probe. Its success brings the store back up; its failure
//! doubles the backoff.
//!
//! Pure state: time comes in as an argument, transitions come out as values, so
//! the caller decides what to log and record and tests need no clock.

use std::time::{Duration, Instant};

/// The first backoff after Redis fails.
pub const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// The longest backoff between probes.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// What an operation may do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permit {
    /// Redis is up: go ahead.
    Go,
    /// Redis is down and this operation is the one probe: go ahead, and report.
    Probe,
    /// Redis is down: do not touch it.
    Skip,
}

/// A change between up and down, to log once and record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// Redis just failed.
    Down,
    /// A probe succeeded after Redis was down for this long.
    Up(Duration),
}

/// Up, or down with a backoff.
#[derive(Debug)]
pub struct Health {
    down: Option<Down>,
}

#[derive(Debug)]
struct Down {
    since: Instant,
    next_probe: Instant,
    backoff: Duration,
    probing: bool,
}

impl Default for Health {
    fn default() -> Self {
        Self::new()
    }
}

impl Health {
    /// Up: Redis is assumed to work until an operation says otherwise.
    pub fn new() -> Self {
        Self { down: None }
    }

    /// Whether operations go through.
    pub fn is_up(&self) -> bool {
        self.down.is_none()
    }

    /// Asks to start an operation at `now`.
    pub fn permit(&mut self, now: Instant) -> Permit {
        match &mut self.down {
            None => Permit::Go,
            Some(down) if !down.probing && now >= down.next_probe => {
                down.probing = true;
                Permit::Probe
            }
            Some(_) => Permit::Skip,
        }
    }

    /// An operation started with `permit` succeeded at `now`.
    ///
    /// Only the probe brings Redis back: an operation that began before the
    /// failure and finished after it says nothing about Redis now.
    pub fn succeeded(&mut self, permit: Permit, now: Instant) -> Option<Transition> {
        let down = self.down.as_ref()?;
        if permit != Permit::Probe {
            return None;
        }
        let was_down = now.saturating_duration_since(down.since);
        self.down = None;
        Some(Transition::Up(was_down))
    }

    /// An operation started with `permit` failed at `now`.
    ///
    /// Operations already in flight when Redis failed fail too; only the first
    /// failure and failed probes move the state.
    pub fn failed(&mut self, permit: Permit, now: Instant) -> Option<Transition> {
        match (&mut self.down, permit) {
            (None, _) => {
                self.down = Some(Down {
                    since: now,
                    next_probe: now + FIRST_BACKOFF,
                    backoff: FIRST_BACKOFF,
                    probing: false,
                });
                Some(Transition::Down)
            }
            (Some(down), Permit::Probe) => {
                down.backoff = (down.backoff * 2).min(MAX_BACKOFF);
                down.next_probe = now + down.backoff;
                down.probing = false;
                None
            }
            (Some(_), _) => None,
        }
    }

    /// A probe ended without an answer either way (its caller gave up on it):
    /// let the next operation probe instead, so the store cannot stay down for
    /// want of a probe.
    pub fn abandoned(&mut self, permit: Permit) {
        if let (Some(down), Permit::Probe) = (&mut self.down, permit) {
            down.probing = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, ManualClock};

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn one_failure_skips_until_the_backoff_then_lets_one_probe_through() {
        let t0 = Clock::from(ManualClock::new()).now();
        let mut h = Health::new();
        assert_eq!(h.permit(t0), Permit::Go);
        assert_eq!(h.failed(Permit::Go, t0), Some(Transition::Down));
        assert!(!h.is_up());
        assert_eq!(h.permit(t0 + Duration::from_millis(999)), Permit::Skip);
        assert_eq!(h.permit(t0 + secs(1)), Permit::Probe);
        assert_eq!(h.permit(t0 + secs(1)), Permit::Skip, "one probe at a time");
        assert_eq!(
            h.succeeded(Permit::Probe, t0 + secs(2)),
            Some(Transition::Up(secs(2)))
        );
        assert!(h.is_up());
        assert_eq!(h.permit(t0 + secs(2)), Permit::Go);
    }

    #[test]
    fn failed_probes_double_the_backoff_up_to_the_cap() {
        let t0 = Clock::from(ManualClock::new()).now();
        let mut h = Health::new();
        h.failed(Permit::Go, t0);
        let mut now = t0;
        let mut waits = Vec::new();
        for _ in 0..8 {
            let mut wait = Duration::ZERO;
            while h.permit(now + wait) != Permit::Probe {
                wait += Duration::from_millis(500);
            }
            now += wait;
            waits.push(wait.as_secs());
            assert_eq!(h.failed(Permit::Probe, now), None, "no second Down");
        }
        assert_eq!(waits, [1, 2, 4, 8, 16, 30, 30, 30]);
    }

    #[test]
    fn operations_in_flight_across_the_failure_move_nothing() {
        let t0 = Clock::from(ManualClock::new()).now();
        let mut h = Health::new();
        h.failed(Permit::Go, t0);
        assert_eq!(h.failed(Permit::Go, t0), None);
        assert_eq!(h.succeeded(Permit::Go, t0), None);
        assert!(!h.is_up());
        assert_eq!(h.permit(t0 + secs(1)), Permit::Probe, "backoff not doubled");
    }

    #[test]
    fn an_abandoned_probe_lets_the_next_operation_probe() {
        let t0 = Clock::from(ManualClock::new()).now();
        let mut h = Health::new();
        h.failed(Permit::Go, t0);
        assert_eq!(h.permit(t0 + secs(1)), Permit::Probe);
        h.abandoned(Permit::Probe);
        assert_eq!(h.permit(t0 + secs(1)), Permit::Probe);
    }
}
