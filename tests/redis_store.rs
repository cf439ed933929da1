//! The shared store (SPEC §9) against a real `redis-server`: the GCRA script
//! gives the in-memory limiter's numbers, two stores share one limit, a pause
//! only extends, one lock holder among many and a dead holder taken over, the
//! second-level cache keeps its windows and its size bound, and a Redis that
//! stops is short-circuited and found again when it comes back.
//!
//! Assertions are about outcomes; time bounds are generous safety limits only.
#![allow(clippy::unwrap_used, missing_docs, clippy::disallowed_methods)]

mod common;

use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chatgate::redis::cache::{Put, SecondLevel, Waited};
use chatgate::redis::gcra::{self, Decision, GcraParams};
use chatgate::redis::keys::{EntryKeys, VendorAccount};
use chatgate::redis::{pause, RedisSettings, SharedStore, StoreError, StoreMetrics};
use common::redis::RedisServer;
use futures_util::future::join_all;
use governor::clock::{Clock, FakeRelativeClock};
use governor::middleware::StateInformationMiddleware;
use governor::{Quota, RateLimiter};

/// A realistic "now" for explicit-time script calls, in µs since the epoch.
const BASE_US: u64 = 1_750_000_000_000_000;

/// A store on `server` with a generous per-operation bound: this machine is
/// shared and slow, and these tests are not about Redis being slow.
fn store(server: &RedisServer) -> SharedStore {
    store_with(&server.url(), Arc::new(chatgate::redis::NoMetrics))
}

fn store_with(url: &str, metrics: Arc<dyn StoreMetrics>) -> SharedStore {
    let settings = RedisSettings::new(url, Some("test:"), Some(2_000)).unwrap();
    SharedStore::new(settings, metrics, chatgate::clock::Clock::system()).unwrap()
}

fn nz(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap()
}

/// Waits (polling, up to a minute) until `done` holds.
async fn eventually(what: &str, mut done: impl AsyncFnMut() -> bool) {
    let started = Instant::now();
    while !done().await {
        assert!(started.elapsed() < Duration::from_secs(60), "never: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---------------------------------------------------------------------------
// GCRA
// ---------------------------------------------------------------------------

/// The in-memory answer, computed exactly as `limits::ClientLimits::check`
/// does, on governor's fake clock.
struct InMemory {
    clock: FakeRelativeClock,
    limiter: RateLimiter<
        governor::state::NotKeyed,
        governor::state::InMemoryState,
        FakeRelativeClock,
        StateInformationMiddleware,
    >,
}

impl InMemory {
    fn new(quota: Quota) -> Self {
        let clock = FakeRelativeClock::default();
        let limiter = RateLimiter::direct_with_clock(quota, clock.clone()).with_middleware();
        Self { clock, limiter }
    }

    fn check(&self) -> Decision {
        match self.limiter.check() {
            Ok(snapshot) => {
                let quota = snapshot.quota();
                let burst = quota.burst_size().get();
                let remaining = snapshot.remaining_burst_capacity();
                Decision {
                    limit: burst,
                    remaining,
                    reset: quota.replenish_interval() * burst.saturating_sub(remaining),
                    retry_after: None,
                }
            }
            Err(not_until) => {
                let quota = not_until.quota();
                let burst = quota.burst_size().get();
                let wait = not_until.wait_time_from(self.clock.now());
                Decision {
                    limit: burst,
                    remaining: 0,
                    reset: wait + quota.replenish_interval() * (burst - 1),
                    retry_after: Some(wait),
                }
            }
        }
    }
}

/// How far to move the clock before the next request, from the previous
/// answer: bursts (no time), partial and exact refills, waiting exactly the
/// announced `Retry-After` and one microsecond less, long idles, and a
/// deterministic pseudo-random mix of the above.
fn next_step(i: usize, seed: &mut u64, interval_us: u64, previous: Option<&Decision>) -> u64 {
    let wait = previous
        .and_then(|d| d.retry_after)
        .map(|w| u64::try_from(w.as_micros()).unwrap());
    match (i, wait) {
        (0..=6, _) => 0,
        (7, Some(w)) => w.saturating_sub(1),
        (8, _) => 1,
        (9..=12, Some(w)) => w,
        _ => {
            *seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            match (*seed >> 33) % 8 {
                0..=2 => 0,
                3 => 1,
                4 => interval_us / 3,
                5 => interval_us,
                6 => wait.unwrap_or(interval_us / 2),
                _ => interval_us * 2 + 7,
            }
        }
    }
}

#[actix_rt::test]
async fn gcra_script_gives_the_in_memory_limiters_numbers_on_the_same_inputs() {
    let server = RedisServer::start();
    let store = store(&server);
    let quotas = [
        // A client at 60/min with burst 3 (the header test in limits.rs).
        Quota::with_period(Duration::from_secs(1))
            .unwrap()
            .allow_burst(nz(3)),
        // A vendor guard at 4 requests per second.
        Quota::per_second(nz(4)),
        // No burst at all.
        Quota::with_period(Duration::from_millis(100)).unwrap(),
        // A fast bucket with a deep burst.
        Quota::with_period(Duration::from_micros(1_500))
            .unwrap()
            .allow_burst(nz(20)),
    ];
    for (q, quota) in quotas.into_iter().enumerate() {
        let memory = InMemory::new(quota);
        let params = GcraParams::from_quota(&quota);
        let interval_us = u64::try_from(params.emission_interval().as_micros()).unwrap();
        let key = store.keys().client_limit(&format!("compare-{q}"));
        let mut seed = q as u64 + 1;
        let mut elapsed_us = 0;
        let mut previous: Option<Decision> = None;
        let (mut admitted, mut refused) = (0, 0);
        for i in 0..120 {
            let step = next_step(i, &mut seed, interval_us, previous.as_ref());
            elapsed_us += step;
            memory.clock.advance(Duration::from_micros(step));
            let expected = memory.check();
            let now = Duration::from_micros(BASE_US + elapsed_us);
            let got = gcra::check_at(&store, &key, params, now).await.unwrap();
            assert_eq!(
                got, expected,
                "quota {q}, request {i} at +{elapsed_us} µs (after +{step} µs)"
            );
            if got.allowed() {
                admitted += 1;
            } else {
                refused += 1;
            }
            previous = Some(got);
        }
        assert!(
            admitted > 10 && refused > 10,
            "quota {q}: {admitted}/{refused}"
        );
    }
}

#[actix_rt::test]
async fn two_stores_on_one_redis_share_one_limit() {
    let server = RedisServer::start();
    let (a, b) = (store(&server), store(&server));
    let burst = 5;
    // One cell a minute: refill cannot blur the count, however slow the machine.
    let params = GcraParams::new(Duration::from_secs(60), nz(burst));
    let key = a.keys().client_limit("shared-client");
    let mut admitted = 0;
    for i in 0..3 * burst {
        let store = if i % 2 == 0 { &a } else { &b };
        let d = gcra::check(store, &key, params).await.unwrap();
        assert_eq!(d.limit, burst);
        if d.allowed() {
            admitted += 1;
        } else {
            let wait = d.retry_after.unwrap();
            assert!(wait > Duration::from_secs(50) && wait <= Duration::from_secs(60));
            assert_eq!(d.remaining, 0);
        }
    }
    assert!(
        (burst..=burst + 1).contains(&admitted),
        "{admitted} admitted of a burst of {burst} across two stores"
    );
}

#[actix_rt::test]
async fn a_guard_wait_sleeps_the_announced_time_and_refuses_what_would_overrun() {
    let server = RedisServer::start();
    let (a, b) = (store(&server), store(&server));
    let account = VendorAccount {
        kind: "chatbase",
        base_url: "http://127.0.0.1:1",
        api_key: "vendor-key",
    };
    let key = a.keys().vendor_guard(&account);
    // 2 per second: the third call needs ~500 ms.
    let params = GcraParams::new(Duration::from_millis(500), nz(2));
    for store in [&a, &b] {
        assert_eq!(
            gcra::acquire(store, &key, params, Duration::ZERO)
                .await
                .unwrap(),
            Ok(())
        );
    }
    let refused = gcra::acquire(&a, &key, params, Duration::from_millis(10))
        .await
        .unwrap();
    let wait = refused.unwrap_err();
    assert!(wait > Duration::from_millis(10) && wait <= Duration::from_millis(500));
    assert_eq!(
        gcra::acquire(&b, &key, params, Duration::from_secs(30))
            .await
            .unwrap(),
        Ok(()),
        "a wait within the bound ends admitted"
    );
}

// ---------------------------------------------------------------------------
// Pause
// ---------------------------------------------------------------------------

#[actix_rt::test]
async fn a_pause_set_by_one_is_seen_by_the_other_and_never_shortened() {
    let server = RedisServer::start();
    let (a, b) = (store(&server), store(&server));
    let account = VendorAccount {
        kind: "chatling",
        base_url: "https://api.chatling.ai/v2",
        api_key: "vendor-key",
    };
    let key = a.keys().vendor_pause(&account);
    let secs = Duration::from_secs;

    assert_eq!(pause::left(&b, &key).await.unwrap(), None);
    assert_eq!(pause::extend(&a, &key, secs(10)).await.unwrap(), secs(10));
    let seen = pause::left(&b, &key).await.unwrap().unwrap();
    assert!(seen > secs(5) && seen <= secs(10), "{seen:?}");

    let after_short = pause::extend(&b, &key, secs(1)).await.unwrap();
    assert!(
        after_short > secs(5),
        "a shorter 429 shortened the pause: {after_short:?}"
    );
    assert!(pause::left(&a, &key).await.unwrap().unwrap() > secs(5));

    assert_eq!(pause::extend(&b, &key, secs(20)).await.unwrap(), secs(20));
    assert!(pause::left(&a, &key).await.unwrap().unwrap() > secs(15));

    let capped = pause::cap(&a, &key, secs(3)).await.unwrap();
    assert_eq!(capped, secs(3));
    assert!(pause::left(&b, &key).await.unwrap().unwrap() <= secs(3));

    let short = a.keys().vendor_pause(&VendorAccount {
        api_key: "another-key",
        ..account
    });
    pause::extend(&a, &short, Duration::from_millis(200))
        .await
        .unwrap();
    eventually("a pause ends on its own", async || {
        pause::left(&b, &short).await.unwrap().is_none()
    })
    .await;
}

// ---------------------------------------------------------------------------
// Lock and second-level cache
// ---------------------------------------------------------------------------

fn entry(store: &SharedStore, name: &str) -> EntryKeys {
    store.keys().cache_entry(name.as_bytes())
}

#[actix_rt::test]
async fn fifty_concurrent_lock_attempts_make_exactly_one_holder() {
    let server = RedisServer::start();
    let caches: Vec<SecondLevel> = (0..5)
        .map(|_| SecondLevel::new(store(&server), 1 << 20))
        .collect();
    let keys = entry(caches[0].store(), "bot=support&page=1");
    let attempts = (0..50).map(|i| caches[i % 5].try_lock(&keys, Duration::from_secs(30)));
    let mut tokens: Vec<_> = join_all(attempts)
        .await
        .into_iter()
        .filter_map(Result::unwrap)
        .collect();
    assert_eq!(tokens.len(), 1, "holders: {tokens:?}");
    let token = tokens.pop().unwrap();
    assert!(caches[3]
        .try_lock(&keys, Duration::from_secs(30))
        .await
        .unwrap()
        .is_none());
    assert!(caches[0].unlock(&keys, token).await.unwrap());
    let again = caches[4]
        .try_lock(&keys, Duration::from_secs(30))
        .await
        .unwrap();
    assert!(again.is_some(), "an unlocked entry can be locked again");
}

#[actix_rt::test]
async fn a_dead_holders_lock_expires_and_a_waiter_takes_over() {
    let server = RedisServer::start();
    let (a, b, c) = (
        SecondLevel::new(store(&server), 1 << 20),
        SecondLevel::new(store(&server), 1 << 20),
        SecondLevel::new(store(&server), 1 << 20),
    );
    let keys = entry(a.store(), "bot=sales&page=2");
    // `a` takes the lock and "dies": it never stores a body nor unlocks.
    let dead = a
        .try_lock(&keys, Duration::from_millis(300))
        .await
        .unwrap()
        .unwrap();
    assert!(b
        .try_lock(&keys, Duration::from_secs(30))
        .await
        .unwrap()
        .is_none());

    let waited = b.wait_for(&keys, Duration::from_secs(60)).await.unwrap();
    assert_eq!(
        waited,
        Waited::LockFree(None),
        "the waiter is released by the expiry"
    );
    let taken = b.try_lock(&keys, Duration::from_secs(30)).await.unwrap();
    assert!(taken.is_some(), "the waiter takes over");

    // The first holder, back from the dead, cannot release the new holder's lock.
    assert!(!a.unlock(&keys, dead).await.unwrap());
    assert!(c
        .try_lock(&keys, Duration::from_secs(30))
        .await
        .unwrap()
        .is_none());
}

#[actix_rt::test]
async fn waiters_get_the_body_the_holder_stores() {
    let server = RedisServer::start();
    let (holder, waiter) = (
        SecondLevel::new(store(&server), 1 << 20),
        SecondLevel::new(store(&server), 1 << 20),
    );
    let keys = entry(holder.store(), "bot=helpdesk&page=1");
    let token = holder
        .try_lock(&keys, Duration::from_secs(30))
        .await
        .unwrap()
        .unwrap();
    let fetch = {
        let (holder, keys) = (holder.clone(), keys.clone());
        async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let put = holder
                .put(
                    &keys,
                    b"{\"data\":[]}",
                    Duration::from_secs(30),
                    Duration::from_secs(60),
                )
                .await
                .unwrap();
            assert_eq!(put, Put::Stored);
            assert!(holder.unlock(&keys, token).await.unwrap());
        }
    };
    let (waited, ()) = futures_util::join!(waiter.wait_for(&keys, Duration::from_secs(60)), fetch);
    match waited.unwrap() {
        Waited::Fresh(body) => assert_eq!(&body.body[..], b"{\"data\":[]}"),
        other => panic!("expected the stored body, got {other:?}"),
    }

    let other = entry(holder.store(), "bot=helpdesk&page=2");
    let _held = holder
        .try_lock(&other, Duration::from_secs(60))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        waiter
            .wait_for(&other, Duration::from_millis(300))
            .await
            .unwrap(),
        Waited::TimedOut(None),
        "a live holder that stores nothing leaves the waiter to its deadline"
    );
}

#[actix_rt::test]
async fn cache_entries_keep_their_windows_and_large_bodies_stay_local() {
    let server = RedisServer::start();
    let (writer, reader) = (
        SecondLevel::new(store(&server), 1024),
        SecondLevel::new(store(&server), 1024),
    );
    let secs = Duration::from_secs;
    let keys = entry(writer.store(), "fresh");
    let body = vec![b'x'; 1024];
    assert_eq!(
        writer.put(&keys, &body, secs(10), secs(20)).await.unwrap(),
        Put::Stored
    );
    let got = reader.get(&keys).await.unwrap().unwrap();
    assert_eq!(&got.body[..], &body[..]);
    assert!(got.is_fresh());
    assert!(
        got.fresh_for > secs(5) && got.fresh_for <= secs(10),
        "{got:?}"
    );
    assert!(
        got.usable_for > secs(25) && got.usable_for <= secs(30),
        "{got:?}"
    );

    let large = entry(writer.store(), "large");
    assert_eq!(
        writer
            .put(&large, &[b'y'; 1025], secs(10), secs(20))
            .await
            .unwrap(),
        Put::TooLarge
    );
    assert_eq!(reader.get(&large).await.unwrap(), None);
    assert_eq!(
        writer
            .put(&large, b"{}", Duration::ZERO, Duration::ZERO)
            .await
            .unwrap(),
        Put::Expired
    );

    // Stale-if-error from the second level: past its freshness, still usable.
    let stale = entry(writer.store(), "stale");
    writer
        .put(&stale, b"old", Duration::from_millis(100), secs(60))
        .await
        .unwrap();
    eventually("the entry goes stale", async || {
        !reader.get(&stale).await.unwrap().unwrap().is_fresh()
    })
    .await;
    let got = reader.get(&stale).await.unwrap().unwrap();
    assert_eq!(&got.body[..], b"old");
    assert!(got.usable_for > secs(30), "{got:?}");
    assert_eq!(
        reader.get(&entry(writer.store(), "never")).await.unwrap(),
        None
    );
}

// ---------------------------------------------------------------------------
// Redis going away and coming back
// ---------------------------------------------------------------------------

/// What the store reported, in order.
#[derive(Default)]
struct Recorder {
    ups: Mutex<Vec<bool>>,
    errors: Mutex<Vec<&'static str>>,
}

impl StoreMetrics for Recorder {
    fn redis_up(&self, up: bool) {
        self.ups.lock().unwrap().push(up);
    }
    fn redis_error(&self, op: &'static str) {
        self.errors.lock().unwrap().push(op);
    }
    fn redis_round_trip(&self, _: &'static str, _: Duration) {}
}

#[actix_rt::test]
async fn a_stopped_redis_is_skipped_without_network_and_found_again_after_a_restart() {
    let mut server = RedisServer::start();
    let recorder = Arc::new(Recorder::default());
    let store = store_with(&server.url(), recorder.clone());
    store.ping().await.unwrap();
    assert!(store.is_up());

    server.stop();
    let failed = store.ping().await.unwrap_err();
    assert!(
        !matches!(failed, StoreError::Down),
        "the first failure is a real attempt: {failed:?}"
    );
    let failed_at = Instant::now();
    assert!(!store.is_up());
    let attempts = recorder.errors.lock().unwrap().len();
    let mut skipped = 0;
    for _ in 0..20 {
        let result = store.ping().await;
        // Until the first backoff (1 s) has passed, nothing is attempted: the
        // answer is "down", and no attempt is recorded.
        if failed_at.elapsed() < Duration::from_millis(900) {
            assert!(matches!(result, Err(StoreError::Down)), "{result:?}");
            skipped += 1;
        }
    }
    if skipped == 20 {
        assert_eq!(recorder.errors.lock().unwrap().len(), attempts);
    }

    server.restart();
    eventually("the store finds Redis again", async || {
        store.ping().await.is_ok()
    })
    .await;
    assert!(store.is_up());
    assert_eq!(
        *recorder.ups.lock().unwrap(),
        [true, false, true],
        "one report per change"
    );
}

#[actix_rt::test]
async fn a_redis_absent_from_the_start_is_reported_down_and_requests_are_not_held() {
    let closed = {
        let server = RedisServer::start();
        server.url()
    };
    let metrics = Arc::new(chatgate::metrics::Metrics::new());
    let store = store_with(&closed, metrics.clone());
    eventually("the background connect reports Redis down", async || {
        !store.is_up()
    })
    .await;
    assert!(store.ping().await.is_err());
    let rendered = metrics.render();
    assert!(
        rendered.lines().any(|l| l == "chatgate_redis_up 0"),
        "{rendered}"
    );
    assert!(
        rendered
            .lines()
            .any(|l| l.starts_with("chatgate_redis_errors_total{op=\"connect\"}")),
        "{rendered}"
    );
}
