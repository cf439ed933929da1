//! Rate limits (SPEC §6), all GCRA via governor:
//! - per client: `requests_per_minute` + `burst`, cache hits included, with the
//!   numbers behind the `RateLimit-*` headers;
//! - per provider: `max_requests_per_second` across every caller, so the gateway
//!   stays inside the vendor's quota; a call waits briefly for a slot;
//! - per remote IP: failed authentications, so keys cannot be brute-forced. Its
//!   keyed state is pruned, so a flood of distinct IPs cannot grow memory without
//!   bound.
//!
//! With `[redis]`, the client and provider limits are decided in the shared
//! store instead ([`crate::redis::gcra`], same numbers), so several instances
//! grant one quota; the in-memory limiters here remain the fallback while Redis
//! fails. Failed authentications stay per instance.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use governor::middleware::{NoOpMiddleware, StateInformationMiddleware};
use governor::state::keyed::DashMapStateStore;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};

use crate::clock::Clock;
use crate::config::{ClientConfig, Rate};
use crate::redis::gcra::{self, GcraParams};
use crate::redis::SharedStore;

type Direct = RateLimiter<NotKeyed, InMemoryState, Clock, StateInformationMiddleware>;
type PlainDirect = RateLimiter<NotKeyed, InMemoryState, Clock, NoOpMiddleware<Instant>>;
type Keyed<K> = RateLimiter<K, DashMapStateStore<K>, Clock, NoOpMiddleware<Instant>>;

/// Turns a configured rate into a governor quota: one cell every
/// `period / count`, `burst` cells at once.
pub fn quota(rate: &Rate) -> Quota {
    let per_cell = (rate.period / rate.count.get()).max(Duration::from_nanos(1));
    Quota::with_period(per_cell)
        .expect("the period is at least 1 ns")
        .allow_burst(rate.burst)
}

/// What a client's limiter said, in the units of the `RateLimit-*` headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateInfo {
    /// `RateLimit-Limit`: the client's burst.
    pub limit: u32,
    /// `w` of `RateLimit-Policy`: how long an empty bucket takes to fill
    /// (the burst times the time one request takes to come back).
    pub window: Duration,
    /// `RateLimit-Remaining`: requests it may make right now.
    pub remaining: u32,
    /// `RateLimit-Reset`: until its bucket is full again.
    pub reset: Duration,
    /// Set when this request was refused: until the next one may pass.
    pub retry_after: Option<Duration>,
}

/// One limiter per configured client; with `[redis]`, the shared bucket first.
pub struct ClientLimits {
    by_name: HashMap<String, (Rate, Arc<Direct>)>,
    /// The shared store: every instance counts a client against one bucket.
    store: Option<SharedStore>,
}

impl ClientLimits {
    /// Limiters for `clients`, refilling by `clock`. With `previous` (a
    /// reload), a client whose rate did not change keeps its bucket, so a
    /// reload is no way around a quota.
    pub fn new(
        clients: &[Arc<ClientConfig>],
        previous: Option<&ClientLimits>,
        clock: &Clock,
    ) -> Self {
        Self {
            by_name: clients
                .iter()
                .map(|c| {
                    let kept = previous
                        .and_then(|p| p.by_name.get(&c.name))
                        .filter(|(rate, _)| *rate == c.rate)
                        .map(|(_, limiter)| limiter.clone());
                    let limiter = kept.unwrap_or_else(|| {
                        Arc::new(
                            RateLimiter::direct_with_clock(quota(&c.rate), clock.clone())
                                .with_middleware(),
                        )
                    });
                    (c.name.clone(), (c.rate, limiter))
                })
                .collect(),
            store: None,
        }
    }

    /// Decides in the shared `store` from now on (`None`: in memory only).
    pub fn with_store(mut self, store: Option<SharedStore>) -> Self {
        self.store = store;
        self
    }

    /// Counts one request of `client`: in the shared bucket when `[redis]` is
    /// set, so a client's quota is one across instances; in this instance's
    /// bucket without it, or when Redis fails (the request is still decided,
    /// only less strictly, rather than refused or held).
    pub async fn check_shared(&self, client: &str) -> Option<RateInfo> {
        let (rate, limiter) = self.by_name.get(client)?;
        if let Some(store) = &self.store {
            let quota = quota(rate);
            let params = GcraParams::from_quota(&quota);
            match gcra::check(store, &store.keys().client_limit(client), params).await {
                Ok(d) => {
                    return Some(RateInfo {
                        limit: d.limit,
                        remaining: d.remaining,
                        reset: d.reset,
                        retry_after: d.retry_after,
                        window: quota.replenish_interval() * quota.burst_size().get(),
                    })
                }
                Err(e) => {
                    tracing::debug!(error = %e, "shared client limit unavailable; using this instance's");
                }
            }
        }
        Some(Self::count(limiter))
    }

    /// Counts one request of `client` and reports the bucket's state. `None` for
    /// a client without a limiter (none exists after validation).
    pub fn check(&self, client: &str) -> Option<RateInfo> {
        let (_, limiter) = self.by_name.get(client)?;
        Some(Self::count(limiter))
    }

    /// Counts one request on this instance's `limiter`.
    fn count(limiter: &Direct) -> RateInfo {
        match limiter.check() {
            Ok(snapshot) => {
                let quota = snapshot.quota();
                let burst = quota.burst_size().get();
                let remaining = snapshot.remaining_burst_capacity();
                RateInfo {
                    limit: burst,
                    window: quota.replenish_interval() * burst,
                    remaining,
                    reset: quota.replenish_interval() * burst.saturating_sub(remaining),
                    retry_after: None,
                }
            }
            Err(not_until) => {
                let quota = not_until.quota();
                let burst = quota.burst_size().get();
                let wait = not_until.wait_time_from(limiter.clock().now());
                RateInfo {
                    limit: burst,
                    window: quota.replenish_interval() * burst,
                    remaining: 0,
                    reset: wait + quota.replenish_interval() * (burst - 1),
                    retry_after: Some(wait),
                }
            }
        }
    }
}

/// What the provider guard says to a caller; see [`ProviderGuard::try_take`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    /// A slot was taken: make the call.
    Taken,
    /// No slot is free; the next one is this far off, within the caller's wait.
    WaitFor(Duration),
    /// No slot is free within the caller's wait; the next one is this far off.
    Refused(Duration),
}

/// The guard in front of one vendor account.
pub struct ProviderGuard {
    limiter: PlainDirect,
}

impl ProviderGuard {
    /// A guard allowing `per_second` calls per second (and as many at once),
    /// refilling by `clock`.
    pub fn new(per_second: NonZeroU32, clock: Clock) -> Self {
        Self {
            limiter: RateLimiter::direct_with_clock(Quota::per_second(per_second), clock),
        }
    }

    /// Takes a slot if one is free now, for a caller that has waited `waited`
    /// of its `max_wait` already; otherwise says how long until the next one,
    /// and whether that is still worth waiting for. Never waits itself.
    pub fn try_take(&self, waited: Duration, max_wait: Duration) -> Slot {
        match self.limiter.check() {
            Ok(()) => Slot::Taken,
            Err(not_until) => {
                let wait = not_until.wait_time_from(self.limiter.clock().now());
                if waited.saturating_add(wait) > max_wait {
                    Slot::Refused(wait)
                } else {
                    Slot::WaitFor(wait)
                }
            }
        }
    }

    /// Waits for a slot, at most `max_wait`. When the wait would be longer it
    /// fails at once with the time until the next slot, instead of holding the
    /// caller for nothing. The waits are computed on the guard's clock and
    /// slept on tokio's timer.
    pub async fn acquire(&self, max_wait: Duration) -> Result<(), Duration> {
        let clock = self.limiter.clock();
        let started = clock.now();
        let mut slept = Duration::ZERO;
        loop {
            // Time waited so far, by the clock or by the sleeps, whichever says
            // more: a clock that does not follow tokio's timer (a test's, moved
            // by hand) still cannot keep a caller past `max_wait`.
            let waited = clock.now().saturating_duration_since(started).max(slept);
            match self.try_take(waited, max_wait) {
                Slot::Taken => return Ok(()),
                Slot::Refused(wait) => return Err(wait),
                Slot::WaitFor(wait) => {
                    tokio::time::sleep(wait).await;
                    slept = slept.saturating_add(wait);
                }
            }
        }
    }
}

/// Failed authentications per remote IP.
pub struct AuthFailures {
    /// Swapped whole by [`AuthFailures::forgive_all`] (governor has no clear).
    limiter: arc_swap::ArcSwap<Keyed<IpAddr>>,
    quota: Quota,
    clock: Clock,
    /// IPs over their allowance, until when (by `clock`). moka's own expiry
    /// (in real time) only bounds memory; whether an IP is still blocked is
    /// decided by `until`.
    blocked: moka::sync::Cache<IpAddr, Instant>,
    /// Whether `blocked` may hold anything: set before an IP is blocked,
    /// cleared when all are forgiven. Every request asks [`Self::blocked`],
    /// and almost always no IP is: this answers that without a lookup.
    any_blocked: AtomicBool,
}

impl AuthFailures {
    /// Most IPs tracked as blocked at once; beyond it the oldest are forgotten.
    const MAX_BLOCKED: u64 = 100_000;

    /// A guard allowing `rate` failures per IP, counted on `clock`.
    pub fn new(rate: &Rate, clock: Clock) -> Self {
        let quota = quota(rate);
        Self {
            limiter: arc_swap::ArcSwap::from_pointee(RateLimiter::dashmap_with_clock(
                quota,
                clock.clone(),
            )),
            quota,
            clock,
            blocked: moka::sync::Cache::builder()
                .max_capacity(Self::MAX_BLOCKED)
                .time_to_live(rate.period)
                .build(),
            any_blocked: AtomicBool::new(false),
        }
    }

    /// How long `ip` must still wait, if it is over its allowance. Checked
    /// before any key comparison.
    pub fn blocked(&self, ip: IpAddr) -> Option<Duration> {
        if !self.any_blocked.load(Ordering::Acquire) {
            return None;
        }
        let until = self.blocked.get(&ip)?;
        until
            .checked_duration_since(self.clock.now())
            .filter(|d| !d.is_zero())
    }

    /// Counts a failed attempt from `ip`.
    pub fn record_failure(&self, ip: IpAddr) {
        let limiter = self.limiter.load();
        if let Err(not_until) = limiter.check_key(&ip) {
            let now = self.clock.now();
            if let Some(until) = now.checked_add(not_until.wait_time_from(now)) {
                self.any_blocked.store(true, Ordering::Release);
                self.blocked.insert(ip, until);
            }
        }
    }

    /// Forgets every failure: after a reload, a key that failed may be valid
    /// (a client added back, a typo fixed), and its callers must not keep paying
    /// for the old config's refusals.
    pub fn forgive_all(&self) {
        self.limiter.store(Arc::new(RateLimiter::dashmap_with_clock(
            self.quota,
            self.clock.clone(),
        )));
        self.blocked.invalidate_all();
        self.any_blocked.store(false, Ordering::Release);
    }

    /// Drops state of IPs whose buckets are full again (they are
    /// indistinguishable from IPs never seen). Run periodically.
    pub fn prune(&self) {
        let limiter = self.limiter.load();
        limiter.retain_recent();
        limiter.shrink_to_fit();
        self.blocked.run_pending_tasks();
    }

    /// IPs with tracked state (for tests and metrics).
    pub fn tracked(&self) -> usize {
        self.limiter.load().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    fn rate(count: u32, secs: u64, burst: u32) -> Rate {
        Rate {
            count: NonZeroU32::new(count).unwrap(),
            period: Duration::from_secs(secs),
            burst: NonZeroU32::new(burst).unwrap(),
        }
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    fn client(name: &str, rate: Rate) -> Arc<ClientConfig> {
        Arc::new(ClientConfig {
            name: name.into(),
            key_sha256: [0; 32],
            bots: crate::config::BotScope::All,
            rate,
        })
    }

    fn info(limit: u32, remaining: u32, reset: Duration, retry: Option<Duration>) -> RateInfo {
        RateInfo {
            limit,
            // A cell a second in these tests.
            window: secs(u64::from(limit)),
            remaining,
            reset,
            retry_after: retry,
        }
    }

    /// 60 a minute with a burst of 3: one cell a second.
    fn one_per_second() -> (ClientLimits, ManualClock) {
        let manual = ManualClock::new();
        let limits = ClientLimits::new(
            &[client("c", rate(60, 60, 3))],
            None,
            &manual.clone().into(),
        );
        (limits, manual)
    }

    #[test]
    fn a_client_burst_counts_down_then_refuses_with_the_exact_wait() {
        let (limits, _) = one_per_second();
        let seen: Vec<RateInfo> = (0..4).map(|_| limits.check("c").unwrap()).collect();
        assert_eq!(
            seen,
            [
                info(3, 2, secs(1), None),
                info(3, 1, secs(2), None),
                info(3, 0, secs(3), None),
                // The next cell in 1 s, then 2 more to be full.
                info(3, 0, secs(3), Some(secs(1))),
            ]
        );
        assert!(limits.check("nobody").is_none());
    }

    #[test]
    fn a_refused_client_is_told_the_rest_of_the_wait_and_refills_a_cell_a_second() {
        let (limits, clock) = one_per_second();
        for _ in 0..3 {
            limits.check("c").unwrap();
        }
        clock.advance(ms(400));
        assert_eq!(
            limits.check("c").unwrap(),
            info(3, 0, ms(2600), Some(ms(600))),
            "a refusal costs nothing and the wait shrinks with time"
        );
        clock.advance(ms(600));
        assert_eq!(
            limits.check("c").unwrap(),
            info(3, 0, secs(3), None),
            "one cell refilled, and taken"
        );
        assert_eq!(limits.check("c").unwrap().retry_after, Some(secs(1)));
        // Three seconds after that, the bucket is full again.
        clock.advance(secs(3));
        assert_eq!(limits.check("c").unwrap(), info(3, 2, secs(1), None));
    }

    #[test]
    fn a_reload_keeps_the_bucket_of_a_client_whose_rate_did_not_change() {
        let (limits, clock) = one_per_second();
        for _ in 0..3 {
            limits.check("c").unwrap();
        }
        let clients = [client("c", rate(60, 60, 3)), client("d", rate(60, 60, 3))];
        let reloaded = ClientLimits::new(&clients, Some(&limits), &clock.clone().into());
        assert_eq!(reloaded.check("c").unwrap().retry_after, Some(secs(1)));
        assert_eq!(reloaded.check("d").unwrap().remaining, 2);
        let changed = [client("c", rate(60, 60, 4))];
        let reloaded = ClientLimits::new(&changed, Some(&limits), &clock.into());
        assert_eq!(reloaded.check("c").unwrap(), info(4, 3, secs(1), None));
    }

    #[test]
    fn the_provider_guard_passes_its_rate_at_once_then_computes_each_wait() {
        let manual = ManualClock::new();
        let guard = ProviderGuard::new(NonZeroU32::new(4).unwrap(), manual.clone().into());
        let max_wait = secs(1);
        for _ in 0..4 {
            assert_eq!(guard.try_take(Duration::ZERO, max_wait), Slot::Taken);
        }
        // Four a second: the next slot is 250 ms away.
        assert_eq!(
            guard.try_take(Duration::ZERO, max_wait),
            Slot::WaitFor(ms(250))
        );
        manual.advance(ms(100));
        assert_eq!(guard.try_take(ms(100), max_wait), Slot::WaitFor(ms(150)));
        // A caller that has waited so long that the next slot falls past its
        // `max_wait` is refused with the time until that slot.
        assert_eq!(guard.try_take(ms(900), max_wait), Slot::Refused(ms(150)));
        assert_eq!(guard.try_take(ms(850), max_wait), Slot::WaitFor(ms(150)));
        manual.advance(ms(150));
        assert_eq!(guard.try_take(ms(250), max_wait), Slot::Taken);
        assert_eq!(guard.try_take(ms(250), max_wait), Slot::WaitFor(ms(250)));
    }

    #[actix_rt::test]
    async fn the_provider_guard_refuses_at_once_what_it_cannot_fit_in_max_wait() {
        let manual = ManualClock::new();
        let guard = ProviderGuard::new(NonZeroU32::MIN, manual.clone().into());
        assert_eq!(guard.acquire(Duration::ZERO).await, Ok(()));
        // One a second: the next slot is a second away, past a 999 ms wait.
        assert_eq!(guard.acquire(ms(999)).await, Err(secs(1)));
        manual.advance(ms(600));
        assert_eq!(guard.acquire(ms(399)).await, Err(ms(400)));
        manual.advance(ms(400));
        assert_eq!(guard.acquire(Duration::ZERO).await, Ok(()));
    }

    #[actix_rt::test]
    async fn the_provider_guard_never_waits_past_max_wait_even_on_a_stopped_clock() {
        // tokio's timer is paused (it jumps ahead when idle), and the manual
        // clock does not move at all: the sleeps alone must end the wait.
        tokio::time::pause();
        let guard = ProviderGuard::new(NonZeroU32::new(10).unwrap(), ManualClock::new().into());
        for _ in 0..10 {
            assert_eq!(guard.acquire(Duration::ZERO).await, Ok(()));
        }
        // Three waits of 100 ms fit in 350 ms, a fourth does not: the refusal
        // comes after 300 ms of (paused) timer time — not before, and not a
        // fourth wait later (tokio rounds each sleep up to its next 1 ms tick).
        let early = tokio::time::timeout(ms(299), guard.acquire(ms(350))).await;
        assert!(early.is_err(), "still waiting at 299 ms: {early:?}");
        let refused = tokio::time::timeout(ms(310), guard.acquire(ms(350))).await;
        assert_eq!(refused, Ok(Err(ms(100))));
    }

    #[test]
    fn failed_auth_blocks_an_ip_after_its_burst_until_the_next_cell() {
        // Ten a second, a burst of two: a cell every 100 ms.
        let manual = ManualClock::new();
        let guard = AuthFailures::new(&rate(600, 60, 2), manual.clone().into());
        let ip: IpAddr = "10.1.2.3".parse().unwrap();
        guard.record_failure(ip);
        guard.record_failure(ip);
        assert_eq!(guard.blocked(ip), None, "the burst is allowed");
        guard.record_failure(ip);
        assert_eq!(guard.blocked(ip), Some(ms(100)));
        assert_eq!(guard.blocked("10.1.2.4".parse().unwrap()), None);
        manual.advance(ms(60));
        assert_eq!(guard.blocked(ip), Some(ms(40)));
        manual.advance(ms(40));
        assert_eq!(guard.blocked(ip), None, "the block has expired");
        // The bucket has one cell again: one more failure is allowed, the next
        // one blocks again.
        guard.record_failure(ip);
        assert_eq!(guard.blocked(ip), None);
        guard.record_failure(ip);
        assert_eq!(guard.blocked(ip), Some(ms(100)));
    }

    #[test]
    fn pruning_forgets_an_ip_once_its_bucket_is_full_again() {
        let manual = ManualClock::new();
        let guard = AuthFailures::new(&rate(600, 60, 2), manual.clone().into());
        let ip: IpAddr = "10.1.2.3".parse().unwrap();
        for _ in 0..3 {
            guard.record_failure(ip);
        }
        assert_eq!(guard.tracked(), 1);
        // Two cells of 100 ms were used: the bucket is full 200 ms on, and
        // governor keeps a key until its state is a full cell older than that.
        manual.advance(ms(299));
        guard.prune();
        assert_eq!(guard.tracked(), 1, "not yet indistinguishable from new");
        manual.advance(ms(1));
        guard.prune();
        assert_eq!(guard.tracked(), 0, "a refilled bucket is dropped");
    }

    #[test]
    fn forgiving_clears_blocks_and_buckets() {
        let manual = ManualClock::new();
        let guard = AuthFailures::new(&rate(60, 60, 1), manual.into());
        let ip: IpAddr = "10.1.2.3".parse().unwrap();
        guard.record_failure(ip);
        guard.record_failure(ip);
        assert_eq!(guard.blocked(ip), Some(secs(1)));
        guard.forgive_all();
        assert_eq!(guard.blocked(ip), None);
        guard.record_failure(ip);
        assert_eq!(guard.blocked(ip), None, "a fresh burst");
    }
}
