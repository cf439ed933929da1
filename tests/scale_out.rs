//! Two gateway instances in one process, on one Redis and one emulator: what
//! `[redis]` makes them share (a client's quota, a vendor's 429 pause) and how
//! they keep serving while Redis is gone and share again once it is back.
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

mod common;

use std::time::{Duration, Instant};

use awc::http::StatusCode;
use chatgate::config;
use chatgate::demo::{self, DEMO_KEY};
use chatgate::export::{ExportArgs, ExportError};
use chatgate::server::{self, RunningServer};
use chatgate_emulator::{self as emulator, EmulatorState, Vendor};
use common::redis::RedisServer;
use common::{fault_n, status, tune_provider, unlimited, Harness, Resp, ANY_ADDR};

const LIST: &str = "/api/v1/get-conversations";

/// A client with a burst of 5 and one cell a minute, so refill during a test
/// is negligible.
const TIGHT_KEY: &str = "tight-client-key-0123456789";
const BURST: usize = 5;
/// Another such client, used only once Redis is back.
const LATER_KEY: &str = "later-client-key-0123456789";

fn edit(toml: String, redis_url: &str) -> String {
    let toml = tune_provider(toml, "chatbase", "max_retry_wait_ms = 0");
    format!(
        "{toml}\n[clients.tight]\nkey = \"{TIGHT_KEY}\"\nbots = [\"*\"]\n\
         requests_per_minute = 1\nburst = {BURST}\n\
         [clients.later]\nkey = \"{LATER_KEY}\"\nbots = [\"*\"]\n\
         requests_per_minute = 1\nburst = {BURST}\n\
         [redis]\nurl = \"{redis_url}\"\nkey_prefix = \"scale-out:\"\ntimeout_ms = 1000\n"
    )
}

/// Instance A (a harness with its emulator) and instance B on the same
/// emulator, both on `redis`.
async fn two_instances(redis: &RedisServer) -> (Harness, RunningServer) {
    let url = redis.url();
    let state = EmulatorState::new(emulator::DEFAULT_SEED);
    let a = Harness::start_on(state, |t| edit(t, &url)).await;
    let toml = edit(
        unlimited(demo::config_toml(&a.emu, ANY_ADDR.parse().unwrap())),
        &url,
    );
    let config = config::from_toml_str(&toml).unwrap_or_else(|e| panic!("{e}"));
    let b = server::start(config, false).await.unwrap();
    (a, b)
}

async fn get(base: &str, key: &str, path: &str) -> Resp {
    let client = awc::Client::builder()
        .timeout(Duration::from_secs(30))
        .finish();
    let mut res = client
        .get(format!("{base}{path}"))
        .insert_header(("authorization", format!("Bearer {key}")))
        .send()
        .await
        .unwrap();
    let body = res.body().limit(16 * 1024 * 1024).await.unwrap();
    Resp {
        status: res.status(),
        headers: res.headers().clone(),
        body,
    }
}

fn base_of(server: &RunningServer) -> String {
    format!("http://{}", server.addr)
}

fn page(n: usize) -> String {
    format!("{LIST}?chatbotId=support&size=1&page={}", n % 3 + 1)
}

/// Sends `3 × BURST` requests as `key`, alternating between the instances;
/// returns how many were admitted, checking each refusal.
async fn spend_alternating(a: &str, b: &str, key: &str) -> usize {
    let mut admitted = 0;
    for n in 0..3 * BURST {
        let base = if n % 2 == 0 { a } else { b };
        let r = get(base, key, &page(n)).await;
        if r.status == StatusCode::OK {
            admitted += 1;
        } else {
            r.expect_error(429, "rate_limited");
            let wait: u64 = r.header("retry-after").unwrap().parse().unwrap();
            // One cell a minute: the next one is at most a minute away.
            assert!((1..=60).contains(&wait), "Retry-After {wait}");
        }
    }
    admitted
}

async fn metrics_text(base: &str) -> String {
    let r = get(base, DEMO_KEY, "/metrics").await;
    String::from_utf8_lossy(&r.body).into_owned()
}

async fn eventually(what: &str, mut done: impl AsyncFnMut() -> bool) {
    let started = Instant::now();
    while !done().await {
        assert!(started.elapsed() < Duration::from_secs(60), "never: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[actix_rt::test]
async fn a_clients_burst_is_one_across_two_instances() {
    let redis = RedisServer::start();
    let (a, b) = two_instances(&redis).await;
    let admitted = spend_alternating(&a.base, &base_of(&b), TIGHT_KEY).await;
    assert!(
        (BURST - 1..=BURST + 1).contains(&admitted),
        "admitted {admitted} of a burst of {BURST} across two instances"
    );
    b.stop().await;
    a.stop().await;
}

#[actix_rt::test]
async fn a_vendor_429_heard_by_one_instance_pauses_the_other() {
    let redis = RedisServer::start();
    let (a, b) = two_instances(&redis).await;
    a.state()
        .add_fault(fault_n(Vendor::Chatbase, Some(1), status(429, Some("60"))));
    let first = get(&a.base, DEMO_KEY, &page(0)).await;
    first.expect_error(429, "upstream_rate_limited");
    let calls = a.calls(Vendor::Chatbase);
    // The fault is spent: a call from B would now succeed, so a 429 proves B
    // made none.
    let other = get(&base_of(&b), DEMO_KEY, &page(1)).await;
    let body = other.expect_error(429, "upstream_rate_limited");
    assert_eq!(body["provider"], "chatbase");
    let wait: u64 = other.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait), "the rest of the window: {wait}");
    assert_eq!(a.calls(Vendor::Chatbase), calls, "B made no vendor call");
    b.stop().await;
    a.stop().await;
}

#[actix_rt::test]
async fn requests_are_served_while_redis_is_gone_and_shared_again_after() {
    let mut redis = RedisServer::start();
    let (a, b) = two_instances(&redis).await;
    let b_base = base_of(&b);
    get(&a.base, DEMO_KEY, &page(0)).await.ok();

    redis.stop();
    for n in 0..10 {
        let base = if n % 2 == 0 { &a.base } else { &b_base };
        let r = get(base, DEMO_KEY, &page(n)).await;
        assert!(
            !r.status.is_server_error(),
            "Redis down must not fail a request: {} {}",
            r.status,
            String::from_utf8_lossy(&r.body)
        );
    }
    for base in [&a.base, &b_base] {
        eventually("chatgate_redis_up 0", async || {
            metrics_text(base)
                .await
                .lines()
                .any(|l| l == "chatgate_redis_up 0")
        })
        .await;
    }

    redis.restart();
    // Each instance finds Redis again on its own, with no restart.
    for base in [&a.base, &b_base] {
        eventually("chatgate_redis_up 1", async || {
            get(base, DEMO_KEY, &page(0)).await.ok();
            metrics_text(base)
                .await
                .lines()
                .any(|l| l == "chatgate_redis_up 1")
        })
        .await;
    }
    let admitted = spend_alternating(&a.base, &b_base, LATER_KEY).await;
    assert!(
        (BURST - 1..=BURST + 1).contains(&admitted),
        "shared again: admitted {admitted} of a burst of {BURST}"
    );
    b.stop().await;
    a.stop().await;
}

#[actix_rt::test]
async fn a_reload_changing_redis_keeps_the_store_it_started_with() {
    let redis = RedisServer::start();
    let (a, b) = two_instances(&redis).await;
    // B is told of another prefix: it warns and keeps sharing on the old one.
    let toml = edit(
        unlimited(demo::config_toml(&a.emu, ANY_ADDR.parse().unwrap())),
        &redis.url(),
    )
    .replace("key_prefix = \"scale-out:\"", "key_prefix = \"elsewhere:\"");
    b.state
        .apply(config::from_toml_str(&toml).unwrap_or_else(|e| panic!("{e}")));
    let admitted = spend_alternating(&a.base, &base_of(&b), TIGHT_KEY).await;
    assert!(
        (BURST - 1..=BURST + 1).contains(&admitted),
        "still one burst after the reload: {admitted}"
    );
    b.stop().await;
    a.stop().await;
}

#[actix_rt::test]
async fn export_honours_the_pause_the_instances_share() {
    let redis = RedisServer::start();
    let (a, b) = two_instances(&redis).await;
    a.state()
        .add_fault(fault_n(Vendor::Chatbase, Some(1), status(429, Some("60"))));
    get(&a.base, DEMO_KEY, &page(0))
        .await
        .expect_error(429, "upstream_rate_limited");
    let calls = a.calls(Vendor::Chatbase);
    let dir = tempfile::tempdir().unwrap();
    let toml = edit(
        unlimited(demo::config_toml(&a.emu, ANY_ADDR.parse().unwrap())),
        &redis.url(),
    );
    let config = config::from_toml_str(&toml).unwrap_or_else(|e| panic!("{e}"));
    let args = ExportArgs {
        bot: "support".to_owned(),
        since: None,
        until: None,
        sources: None,
        out: dir.path().join("out.jsonl"),
        resume: false,
        include_raw: false,
        page_size: 10,
    };
    let result = chatgate::export::run(config, args).await;
    assert!(
        matches!(result, Err(ExportError::Upstream { .. })),
        "the export stops on the shared pause: {result:?}"
    );
    assert_eq!(
        a.calls(Vendor::Chatbase),
        calls,
        "export made no vendor call"
    );
    b.stop().await;
    a.stop().await;
}

#[actix_rt::test]
async fn an_instance_without_redis_never_reports_it() {
    let h = Harness::start().await;
    h.get(&page(0)).await.ok();
    let text = metrics_text(&h.base).await;
    assert!(!text.contains("chatgate_redis"), "{text}");
    h.stop().await;
}
