//! Rate limits (SPEC §6), all GCRA via governor:
//! - per client: `requests_per_minute` + `burst`, cache hits included, with the
//!   numbers behind the `RateLimit-*` headers;
//! - per provider: `max_requests_per_second` across every caller, so the gateway
//!   stays inside the vendor's quota; a call waits briefly for a slot;
//! - per remote IP: failed authentications, so keys cannot be brute-forced. Its
//!   keyed state is pruned, so a flood of distinct IPs cannot grow memory without
//!   bound.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};

use crate::config::{ClientConfig, Rate};

type Direct = RateLimiter<NotKeyed, InMemoryState, DefaultClock, StateInformationMiddleware>;
type PlainDirect = RateLimiter<NotKeyed, InMemoryState, DefaultClock>;
type Keyed<K> = RateLimiter<K, DefaultKeyedStateStore<K>, DefaultClock>;

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
    /// `RateLimit-Remaining`: requests it may make right now.
    pub remaining: u32,
    /// `RateLimit-Reset`: until its bucket is full again.
    pub reset: Duration,
    /// Set when this request was refused: until the next one may pass.
    pub retry_after: Option<Duration>,
}

/// One limiter per configured client.
pub struct ClientLimits {
    by_name: HashMap<String, (Rate, Arc<Direct>)>,
}

impl ClientLimits {
    /// Limiters for `clients`. With `previous` (a reload), a client whose rate
    /// did not change keeps its bucket, so a reload is no way around a quota.
    pub fn new(clients: &[Arc<ClientConfig>], previous: Option<&ClientLimits>) -> Self {
        Self {
            by_name: clients
                .iter()
                .map(|c| {
                    let kept = previous
                        .and_then(|p| p.by_name.get(&c.name))
                        .filter(|(rate, _)| *rate == c.rate)
                        .map(|(_, limiter)| limiter.clone());
                    let limiter = kept.unwrap_or_else(|| {
                        Arc::new(RateLimiter::direct(quota(&c.rate)).with_middleware())
                    });
                    (c.name.clone(), (c.rate, limiter))
                })
                .collect(),
        }
    }

    /// Counts one request of `client` and reports the bucket's state. `None` for
    /// a client without a limiter (none exists after validation).
    pub fn check(&self, client: &str) -> Option<RateInfo> {
        let (_, limiter) = self.by_name.get(client)?;
        let clock = limiter.clock();
        Some(match limiter.check() {
            Ok(snapshot) => {
                let quota = snapshot.quota();
                let burst = quota.burst_size().get();
                let remaining = snapshot.remaining_burst_capacity();
                RateInfo {
                    limit: burst,
                    remaining,
                    reset: quota.replenish_interval() * burst.saturating_sub(remaining),
                    retry_after: None,
                }
            }
            Err(not_until) => {
                let quota = not_until.quota();
                let burst = quota.burst_size().get();
                let wait = not_until.wait_time_from(clock.now());
                RateInfo {
                    limit: burst,
                    remaining: 0,
                    reset: wait + quota.replenish_interval() * (burst - 1),
                    retry_after: Some(wait),
                }
            }
        })
    }
}

/// The guard in front of one vendor account.
pub struct ProviderGuard {
    limiter: PlainDirect,
}

impl ProviderGuard {
    /// A guard allowing `per_second` calls per second (and as many at once).
    pub fn new(per_second: NonZeroU32) -> Self {
        Self {
            limiter: RateLimiter::direct(Quota::per_second(per_second)),
        }
    }

    /// Waits for a slot, at most `max_wait`. When the wait would be longer it
    /// fails at once with the time until the next slot, instead of holding the
    /// caller for nothing.
    pub async fn acquire(&self, max_wait: Duration) -> Result<(), Duration> {
        let started = Instant::now();
        loop {
            match self.limiter.check() {
                Ok(()) => return Ok(()),
                Err(not_until) => {
                    let wait = not_until.wait_time_from(self.limiter.clock().now());
                    if started.elapsed() + wait > max_wait {
                        return Err(wait);
                    }
                    tokio::time::sleep(wait).await;
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
    /// IPs over their allowance, until when; bounded and self-expiring.
    blocked: moka::sync::Cache<IpAddr, Instant>,
}

impl AuthFailures {
    /// Most IPs tracked as blocked at once; beyond it the oldest are forgotten.
    const MAX_BLOCKED: u64 = 100_000;

    /// A guard allowing `rate` failures per IP.
    pub fn new(rate: &Rate) -> Self {
        Self {
            limiter: arc_swap::ArcSwap::from_pointee(RateLimiter::keyed(quota(rate))),
            quota: quota(rate),
            blocked: moka::sync::Cache::builder()
                .max_capacity(Self::MAX_BLOCKED)
                .time_to_live(rate.period)
                .build(),
        }
    }

    /// How long `ip` must still wait, if it is over its allowance. Checked
    /// before any key comparison.
    pub fn blocked(&self, ip: IpAddr) -> Option<Duration> {
        let until = self.blocked.get(&ip)?;
        until
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
    }

    /// Counts a failed attempt from `ip`.
    pub fn record_failure(&self, ip: IpAddr) {
        let limiter = self.limiter.load();
        if let Err(not_until) = limiter.check_key(&ip) {
            let wait = not_until.wait_time_from(limiter.clock().now());
            if let Some(until) = Instant::now().checked_add(wait) {
                self.blocked.insert(ip, until);
            }
        }
    }

    /// Forgets every failure: after a reload, a key that failed may be valid
    /// (a client added back, a typo fixed), and its callers must not keep paying
    /// for the old config's refusals.
    pub fn forgive_all(&self) {
        self.limiter.store(Arc::new(RateLimiter::keyed(self.quota)));
        self.blocked.invalidate_all();
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

    fn rate(count: u32, secs: u64, burst: u32) -> Rate {
        Rate {
            count: NonZeroU32::new(count).unwrap(),
            period: Duration::from_secs(secs),
            burst: NonZeroU32::new(burst).unwrap(),
        }
    }

    #[test]
    fn client_headers_count_down_then_refuse_with_a_real_wait() {
        let limits = ClientLimits::new(
            &[Arc::new(ClientConfig {
                name: "c".into(),
                key_sha256: [0; 32],
                bots: crate::config::BotScope::All,
                rate: rate(60, 60, 3),
            })],
            None,
        );
        let infos: Vec<RateInfo> = (0..4).map(|_| limits.check("c").unwrap()).collect();
        assert_eq!(
            infos.iter().map(|i| i.remaining).collect::<Vec<_>>(),
            [2, 1, 0, 0]
        );
        assert!(infos.iter().all(|i| i.limit == 3));
        assert!(infos[..3].iter().all(|i| i.retry_after.is_none()));
        let wait = infos[3].retry_after.unwrap();
        assert!(
            wait > Duration::from_millis(900) && wait <= Duration::from_secs(1),
            "{wait:?}"
        );
        assert!(
            infos[2].reset > Duration::from_millis(2900),
            "{:?}",
            infos[2].reset
        );
        assert!(limits.check("nobody").is_none());
    }

    #[test]
    fn failed_auth_blocks_an_ip_after_its_burst_and_pruning_forgets_it() {
        let guard = AuthFailures::new(&rate(600, 60, 2));
        let ip: IpAddr = "10.1.2.3".parse().unwrap();
        guard.record_failure(ip);
        guard.record_failure(ip);
        assert_eq!(guard.blocked(ip), None);
        guard.record_failure(ip);
        assert!(guard.blocked(ip).is_some());
        assert!(guard.blocked("10.1.2.4".parse().unwrap()).is_none());
        assert_eq!(guard.tracked(), 1);
        // Two cells of 100 ms were used; governor keeps a key until its state is a
        // full cell older than "fresh".
        std::thread::sleep(Duration::from_millis(450));
        guard.prune();
        assert_eq!(guard.tracked(), 0, "a refilled bucket is dropped");
    }
}
