//! The time one request spends waiting on others, so that the rest — the
//! gateway's own cost — can be reported (`chatgate_overhead_seconds`, the way
//! TensorZero reports its latency overhead).
//!
//! Waiting on others is: a vendor call (sending, the vendor's answer, its body
//! arriving), the waits the vendor imposes before one (its rate-limit pause, a
//! quota slot, a retry's backoff), and waiting for the fetch of the same answer
//! that another request of this instance (coalescing) or another instance
//! (the shared cache's lock) is making: those are vendor time too, only paid
//! by someone else's call. Everything else is the gateway's: parsing,
//! authentication and limits (Redis round trips included: they are the price
//! of sharing, paid on every request), cache lookups, normalizing, serializing
//! and logging.
//!
//! Waits may overlap (a dual-read bot calls its backends at once): the time
//! counted is the union of the waiting intervals, never their sum, so the
//! overhead is never made smaller than it is.
//!
//! ```
//! use std::time::Duration;
//! use chatgate::clock::{Clock, ManualClock};
//! use chatgate::waits::Waits;
//!
//! let manual = ManualClock::new();
//! let waits = Waits::new(Clock::from(manual.clone()));
//! let a = waits.begin();
//! manual.advance(Duration::from_millis(10));
//! let b = waits.begin(); // overlaps `a`
//! manual.advance(Duration::from_millis(5));
//! drop(a);
//! drop(b);
//! assert_eq!(waits.total(), Duration::from_millis(15));
//! ```

use std::cell::Cell;
use std::future::Future;
use std::time::{Duration, Instant};

use crate::clock::Clock;

/// One request's waiting time. A request and its vendor calls run on one
/// worker thread, hence `Cell`.
#[derive(Debug)]
pub struct Waits {
    clock: Clock,
    /// Waits in progress.
    open: Cell<u32>,
    /// When the current run of overlapping waits began.
    since: Cell<Option<Instant>>,
    /// Waiting time of the runs already ended.
    ended: Cell<Duration>,
}

impl Waits {
    /// No waiting yet, timed by `clock`.
    pub fn new(clock: Clock) -> Self {
        Self {
            clock,
            open: Cell::new(0),
            since: Cell::new(None),
            ended: Cell::new(Duration::ZERO),
        }
    }

    /// A wait starts now and lasts until the returned guard is dropped
    /// (which also ends it when the waiting future is cancelled).
    pub fn begin(&self) -> Waiting<'_> {
        if self.open.get() == 0 {
            self.since.set(Some(self.clock.now()));
        }
        self.open.set(self.open.get().saturating_add(1));
        Waiting(self)
    }

    /// Runs `wait`, counting its time as waiting.
    pub async fn during<F: Future>(&self, wait: F) -> F::Output {
        let _waiting = self.begin();
        wait.await
    }

    /// The time spent waiting so far, a wait still in progress included.
    pub fn total(&self) -> Duration {
        let open = match self.since.get() {
            Some(since) if self.open.get() > 0 => self.clock.now().saturating_duration_since(since),
            _ => Duration::ZERO,
        };
        self.ended.get().saturating_add(open)
    }

    fn end(&self) {
        let open = self.open.get().saturating_sub(1);
        self.open.set(open);
        if open == 0 {
            if let Some(since) = self.since.take() {
                let run = self.clock.now().saturating_duration_since(since);
                self.ended.set(self.ended.get().saturating_add(run));
            }
        }
    }
}

/// A wait in progress; see [`Waits::begin`].
#[must_use = "the wait ends when this is dropped"]
pub struct Waiting<'a>(&'a Waits);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.end();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn overlapping_waits_count_once_and_gaps_not_at_all() {
        let manual = ManualClock::new();
        let waits = Waits::new(manual.clone().into());
        manual.advance(ms(3));
        let a = waits.begin();
        manual.advance(ms(10));
        let b = waits.begin();
        manual.advance(ms(4));
        drop(a);
        manual.advance(ms(6));
        assert_eq!(waits.total(), ms(20), "a wait in progress counts");
        drop(b);
        manual.advance(ms(100));
        assert_eq!(waits.total(), ms(20), "the gap after it does not");
        let c = waits.begin();
        manual.advance(ms(1));
        drop(c);
        assert_eq!(waits.total(), ms(21));
    }

    #[actix_rt::test]
    async fn a_cancelled_wait_ends_when_dropped() {
        let manual = ManualClock::new();
        let waits = Waits::new(manual.clone().into());
        let clock = manual.clone();
        let waited = waits.during(async move {
            clock.advance(ms(7));
            std::future::pending::<()>().await;
        });
        let cancelled = tokio::time::timeout(ms(1), waited).await;
        assert!(cancelled.is_err());
        manual.advance(ms(50));
        assert_eq!(waits.total(), ms(7));
    }
}
