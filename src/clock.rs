//! The one place that reads the time.
//!
//! Everything that decides by time — rate limits, the cache's freshness and
//! stale window, failed-login blocks, latencies, `received_at`, the log's
//! durations — asks a [`Clock`] it was handed, never `Instant::now()` or
//! `Utc::now()` itself. The server and `export` build one [`Clock::system`] and
//! pass it down; tests pass a [`ManualClock`] and move time by hand, so a time
//! rule is checked exactly and without sleeping:
//!
//! ```
//! use std::time::Duration;
//! use chatgate::clock::{Clock, ManualClock};
//!
//! let manual = ManualClock::new();
//! let clock = Clock::from(manual.clone());
//! let (t0, day0) = (clock.now(), clock.utc());
//! manual.advance(Duration::from_secs(90));
//! assert_eq!(clock.now() - t0, Duration::from_secs(90));
//! assert_eq!((clock.utc() - day0).num_seconds(), 90);
//! ```
//!
//! A [`Clock`] is also a [`governor`] clock (its instants are
//! [`std::time::Instant`]s), so rate limiters count on it too.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use chrono::{DateTime, TimeZone, Utc};

/// A source of the time: the system's, or a test's [`ManualClock`]. Cheap to
/// clone; clones of a manual clock share its time.
#[derive(Debug, Clone)]
pub struct Clock(Source);

#[derive(Debug, Clone)]
enum Source {
    System(SystemClock),
    Manual(ManualClock),
}

impl Clock {
    /// The system's clock (what the server and `export` run on).
    pub fn system() -> Self {
        Self(Source::System(SystemClock))
    }

    /// The monotonic time, for durations and deadlines.
    pub fn now(&self) -> Instant {
        match &self.0 {
            Source::System(c) => c.now(),
            Source::Manual(c) => c.now(),
        }
    }

    /// The calendar time, for timestamps and calendar windows (Chatling's
    /// per-minute quota).
    pub fn utc(&self) -> DateTime<Utc> {
        match &self.0 {
            Source::System(c) => c.utc(),
            Source::Manual(c) => c.utc(),
        }
    }

    /// [`utc`](Self::utc) as seconds since the Unix epoch, for metrics.
    pub fn unix_secs_f64(&self) -> f64 {
        let t = self.utc();
        t.timestamp() as f64 + f64::from(t.timestamp_subsec_nanos()) / 1e9
    }

    /// [`utc`](Self::utc) as a [`SystemTime`], for HTTP dates.
    pub fn system_time(&self) -> SystemTime {
        SystemTime::from(self.utc())
    }
}

impl From<SystemClock> for Clock {
    fn from(clock: SystemClock) -> Self {
        Self(Source::System(clock))
    }
}

impl From<ManualClock> for Clock {
    fn from(clock: ManualClock) -> Self {
        Self(Source::Manual(clock))
    }
}

/// governor's limiters read their time through this, so a limiter built with
/// `RateLimiter::direct_with_clock(quota, clock)` (or `dashmap_with_clock`)
/// refills on the same clock as everything else.
impl governor::clock::Clock for Clock {
    type Instant = Instant;

    fn now(&self) -> Instant {
        Clock::now(self)
    }
}

/// The system's clock: `Instant::now()` and `Utc::now()`.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

// This is the one place chatgate reads the time. The providers crate forbids
// these calls outright (`providers/clippy.toml`); this crate gets the same list
// once the gateway's vendor-call phases and the emulator read a Clock too, and
// these allows mark the one place that stays exempt.
#[allow(clippy::disallowed_methods)]
impl SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn utc(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock for tests that stands still until [`advance`](Self::advance)d.
/// Its calendar time starts at [`ManualClock::START_UNIX_SECS`] (or a given time);
/// its monotonic time starts at whatever instant it was created (an `Instant`
/// has no fixed value), and both move together, only by hand. Clones share
/// the time.
#[derive(Debug, Clone)]
pub struct ManualClock {
    inner: Arc<Manual>,
}

#[derive(Debug)]
struct Manual {
    origin: Instant,
    utc_origin: DateTime<Utc>,
    advanced: Mutex<Duration>,
}

impl ManualClock {
    /// The calendar time a [`ManualClock::new`] starts at:
    /// 2025-01-01T00:00:00Z (1 735 689 600 s after the epoch).
    pub const START_UNIX_SECS: i64 = 1_735_689_600;

    /// A clock at [`Self::START_UNIX_SECS`].
    pub fn new() -> Self {
        let start = Utc
            .timestamp_opt(Self::START_UNIX_SECS, 0)
            .single()
            .expect("START_UNIX_SECS is a valid timestamp");
        Self::starting_at(start)
    }

    /// A clock whose calendar time starts at `utc`.
    pub fn starting_at(utc: DateTime<Utc>) -> Self {
        #[allow(clippy::disallowed_methods)] // the origin is never observed as such
        let origin = Instant::now();
        Self {
            inner: Arc::new(Manual {
                origin,
                utc_origin: utc,
                advanced: Mutex::new(Duration::ZERO),
            }),
        }
    }

    /// Moves this clock and all its clones forward by `by`.
    ///
    /// Panics when the time would leave what `Instant` or `DateTime` can
    /// represent (centuries): a test asking for that is broken.
    pub fn advance(&self, by: Duration) {
        let mut advanced = self.lock();
        let next = advanced
            .checked_add(by)
            .filter(|d| self.inner.origin.checked_add(*d).is_some())
            .filter(|d| {
                chrono::Duration::from_std(*d)
                    .ok()
                    .and_then(|d| self.inner.utc_origin.checked_add_signed(d))
                    .is_some()
            })
            .expect("a ManualClock is advanced within what Instant and DateTime represent");
        *advanced = next;
    }

    /// How far the clock has been advanced since it was created.
    pub fn advanced(&self) -> Duration {
        *self.lock()
    }

    fn now(&self) -> Instant {
        // `advance` checked this sum.
        self.inner.origin + self.advanced()
    }

    fn utc(&self) -> DateTime<Utc> {
        let advanced = chrono::Duration::from_std(self.advanced())
            .expect("advance checked that the time fits a chrono::Duration");
        self.inner.utc_origin + advanced
    }

    /// Nothing panics while holding the lock; a poisoned one is still sound.
    fn lock(&self) -> std::sync::MutexGuard<'_, Duration> {
        self.inner
            .advanced
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_stands_still_until_advanced_and_clones_share_it() {
        let manual = ManualClock::new();
        let clock = Clock::from(manual.clone());
        let other = clock.clone();
        let (t0, u0) = (clock.now(), clock.utc());
        assert_eq!(clock.now(), t0);
        assert_eq!(u0.to_rfc3339(), "2025-01-01T00:00:00+00:00");
        assert_eq!(clock.unix_secs_f64(), 1_735_689_600.0);
        manual.advance(Duration::from_millis(1500));
        assert_eq!(other.now() - t0, Duration::from_millis(1500));
        assert_eq!(other.utc().to_rfc3339(), "2025-01-01T00:00:01.500+00:00");
        assert_eq!(other.unix_secs_f64(), 1_735_689_601.5);
        assert_eq!(manual.advanced(), Duration::from_millis(1500));
    }

    #[test]
    fn a_manual_clock_can_start_at_a_given_time() {
        let start = Utc.with_ymd_and_hms(2024, 6, 14, 15, 45, 30).unwrap();
        let clock = Clock::from(ManualClock::starting_at(start));
        assert_eq!(clock.utc(), start);
        assert_eq!(
            httpdate::fmt_http_date(clock.system_time()),
            "Fri, 14 Jun 2024 15:45:30 GMT"
        );
    }

    #[test]
    #[should_panic(expected = "within what Instant and DateTime represent")]
    fn advancing_past_what_time_can_represent_panics_at_the_advance() {
        ManualClock::new().advance(Duration::MAX);
    }

    #[test]
    fn governor_reads_the_same_time() {
        let manual = ManualClock::new();
        let clock = Clock::from(manual.clone());
        let before = governor::clock::Clock::now(&clock);
        manual.advance(Duration::from_secs(2));
        assert_eq!(
            governor::clock::Clock::now(&clock) - before,
            Duration::from_secs(2)
        );
    }

    #[test]
    fn the_system_clock_moves_forward() {
        let clock = Clock::system();
        let t0 = clock.now();
        assert!(clock.now() >= t0);
        assert!(clock.utc().timestamp() > ManualClock::START_UNIX_SECS);
    }

    #[test]
    fn clocks_can_be_shared_between_threads() {
        fn send_sync<T: Send + Sync + Clone>() {}
        send_sync::<Clock>();
        send_sync::<ManualClock>();
    }
}
