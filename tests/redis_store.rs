//! The shared store (SPEC §9) against a real `redis-server`: a Redis that
//! stops is short-circuited and found again when it comes back, and one absent
//! from the start is reported down.
//!
//! Assertions are about outcomes; time bounds are generous safety limits only.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chatgate::redis::{RedisSettings, SharedStore, StoreError, StoreMetrics};
use common::redis::RedisServer;

fn store_with(url: &str, metrics: Arc<dyn StoreMetrics>) -> SharedStore {
    let settings = RedisSettings::new(url, Some("test:"), Some(2_000)).unwrap();
    SharedStore::new(settings, metrics).unwrap()
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
