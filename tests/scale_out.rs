//! Two gateway instances in one process, on one Redis and one emulator: what
//! `[redis]` makes them share (a client's quota, a vendor's 429 pause) and how
//! they keep serving while Redis is gone and share again once it is back.
#![allow(clippy::unwrap_used, clippy::disallowed_methods)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use awc::http::StatusCode;
use chatgate::clock::Clock;
use chatgate::config;
use chatgate::demo::{self, DEMO_KEY};
use chatgate::export::{ExportArgs, ExportError};
use chatgate::server::{self, RunningServer};
use chatgate_emulator::FaultKind;
use chatgate_emulator::{self as emulator, EmulatorState, Vendor};
use common::redis::RedisServer;
use common::{
    fault, fault_n, status, tune_provider, unlimited, with_cache, x_cache, Harness, Resp, ANY_ADDR,
};
use futures_util::future::join_all;

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
    two_instances_with(redis, |t| t).await
}

/// [`two_instances`] with `more` applied to both configs (after `unlimited`).
async fn two_instances_with(
    redis: &RedisServer,
    more: impl Fn(String) -> String,
) -> (Harness, RunningServer) {
    let url = redis.url();
    let state = EmulatorState::new(emulator::DEFAULT_SEED);
    let a = Harness::start_on(state, |t| more(edit(t, &url))).await;
    let config = config_of(&a, &url, &more);
    let b = server::start(config, false).await.unwrap();
    (a, b)
}

/// Instance B's config: the demo's against A's emulator, unlimited, on `url`.
fn config_of(a: &Harness, url: &str, more: impl Fn(String) -> String) -> config::Config {
    let toml = more(edit(
        unlimited(demo::config_toml(&a.emu, ANY_ADDR.parse().unwrap())),
        url,
    ));
    config::from_toml_str(&toml).unwrap_or_else(|e| panic!("{e}"))
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
async fn a_reload_adds_changes_and_removes_redis_live() {
    let redis = RedisServer::start();
    let (a, b) = two_instances(&redis).await;
    let b_base = base_of(&b);
    let without = |t: String| t[..t.find("[redis]").unwrap()].to_owned();

    // Removed: B keeps its own quota again (a full burst of its own beside
    // A's) and no longer reports Redis.
    b.state.apply(config_of(&a, &redis.url(), without));
    let mut admitted = 0;
    for n in 0..2 * BURST {
        let base = if n % 2 == 0 { &a.base } else { &b_base };
        admitted += usize::from(get(base, TIGHT_KEY, &page(n)).await.status == StatusCode::OK);
    }
    assert!(
        admitted >= 2 * BURST - 1,
        "two quotas without Redis: {admitted}"
    );
    assert!(!metrics_text(&b_base).await.contains("chatgate_redis_up"));

    // Added back, under another prefix: B now shares with A only once A is
    // told of the same prefix — the prefix is live, not the one B started with.
    let elsewhere =
        |t: String| t.replace("key_prefix = \"scale-out:\"", "key_prefix = \"elsewhere:\"");
    b.state.apply(config_of(&a, &redis.url(), elsewhere));
    a.gateway
        .state
        .apply(config_of(&a, &redis.url(), elsewhere));
    let admitted = spend_alternating(&a.base, &b_base, LATER_KEY).await;
    assert!(
        (BURST - 1..=BURST + 1).contains(&admitted),
        "one burst across both after the reload: {admitted}"
    );
    eventually("chatgate_redis_up 1 on B", async || {
        metrics_text(&b_base)
            .await
            .lines()
            .any(|l| l == "chatgate_redis_up 1")
    })
    .await;
    b.stop().await;
    a.stop().await;
}

#[actix_rt::test]
async fn identical_misses_on_both_instances_make_one_vendor_call() {
    let redis = RedisServer::start();
    let (a, b) = two_instances(&redis).await;
    let b_base = base_of(&b);
    // A slow vendor, so every request arrives while the one call is out.
    a.state()
        .add_fault(fault(Vendor::Chatbase, FaultKind::Delay { ms: 1500 }));
    let before = a.calls(Vendor::Chatbase);
    let path = format!("{LIST}?chatbotId=support&size=7&page=2");
    let answers = join_all((0..50).map(|n| {
        let base = if n % 2 == 0 {
            a.base.clone()
        } else {
            b_base.clone()
        };
        let path = path.clone();
        async move { get(&base, DEMO_KEY, &path).await }
    }))
    .await;
    assert_eq!(
        a.calls(Vendor::Chatbase) - before,
        1,
        "50 identical misses across two instances"
    );
    let first = &answers[0];
    for r in &answers {
        r.ok();
        assert_eq!(r.body, first.body, "every caller gets the same body");
        assert_eq!(r.header("x-provider"), Some("chatbase"));
        assert!(["MISS", "HIT"].contains(&x_cache(r)), "{}", x_cache(r));
    }
    // Later requests on either instance are hits, from its first level.
    a.state().clear_faults();
    for base in [&a.base, &b_base] {
        let r = get(base, DEMO_KEY, &path).await;
        assert_eq!(x_cache(&r), "HIT");
        assert_eq!(r.body, first.body);
    }
    assert_eq!(a.calls(Vendor::Chatbase) - before, 1);
    b.stop().await;
    a.stop().await;
}

#[actix_rt::test]
async fn a_body_one_instance_fetched_is_a_hit_on_the_other() {
    let redis = RedisServer::start();
    let (a, b) = two_instances(&redis).await;
    let path = format!("{LIST}?chatbotId=helpdesk&size=3");
    let fetched = get(&a.base, DEMO_KEY, &path).await;
    fetched.ok();
    assert_eq!(x_cache(&fetched), "MISS");
    let calls = a.calls(Vendor::Chatling);
    let shared = get(&base_of(&b), DEMO_KEY, &path).await;
    assert_eq!(x_cache(&shared), "HIT", "from the second level");
    assert_eq!(shared.body, fetched.body);
    assert_eq!(shared.header("x-provider"), fetched.header("x-provider"));
    assert_eq!(a.calls(Vendor::Chatling), calls, "no vendor call");
    // A client asking for a fresh answer bypasses both levels.
    let fresh = get_no_cache(&base_of(&b), &path).await;
    assert_eq!(x_cache(&fresh), "BYPASS");
    assert!(a.calls(Vendor::Chatling) > calls);
    b.stop().await;
    a.stop().await;
}

#[actix_rt::test]
async fn a_stale_copy_in_redis_stands_in_when_the_vendor_fails() {
    let redis = RedisServer::start();
    let cache = |t: String| with_cache(t, "ttl_secs = 1\nstale_if_error_secs = 600");
    let (a, b) = two_instances_with(&redis, cache).await;
    let path = format!("{LIST}?chatbotId=support&size=4");
    let fetched = get(&a.base, DEMO_KEY, &path).await;
    fetched.ok();
    // Past the second's freshness (on Redis's clock), with the vendor down:
    // B has never seen the key, so only Redis's copy can answer.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    a.state()
        .add_fault(fault(Vendor::Chatbase, status(500, None)));
    let stale = get(&base_of(&b), DEMO_KEY, &path).await;
    assert_eq!(
        stale.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&stale.body)
    );
    assert_eq!(x_cache(&stale), "STALE");
    assert_eq!(stale.body, fetched.body);
    b.stop().await;
    a.stop().await;
}

#[actix_rt::test]
async fn bodies_over_the_bound_stay_in_each_instance() {
    let redis = RedisServer::start();
    let bound = |t: String| {
        t.replace(
            "timeout_ms = 1000\n",
            "timeout_ms = 1000\ncache_max_body_bytes = 100\n",
        )
    };
    let (a, b) = two_instances_with(&redis, bound).await;
    let path = format!("{LIST}?chatbotId=support&size=5");
    get(&a.base, DEMO_KEY, &path).await.ok();
    let calls = a.calls(Vendor::Chatbase);
    let r = get(&base_of(&b), DEMO_KEY, &path).await;
    assert_eq!(x_cache(&r), "MISS", "a body over 100 bytes is not shared");
    assert_eq!(a.calls(Vendor::Chatbase), calls + 1);
    b.stop().await;
    a.stop().await;
}

#[actix_rt::test]
async fn a_vendor_quota_holds_across_instances_and_an_export() {
    const RATE: u64 = 5;
    let redis = RedisServer::start();
    let guard = |t: String| {
        // `unlimited` raised every guard; put Chatbase's back to RATE.
        let table = t.find("[providers.chatbase]\n").unwrap();
        let at = table + t[table..].find("max_requests_per_second = 100000").unwrap();
        let end = at + "max_requests_per_second = 100000".len();
        format!(
            "{}max_requests_per_second = {RATE}\ntimeout_ms = 30000{}",
            &t[..at],
            &t[end..]
        )
    };
    let (a, b) = two_instances_with(&redis, guard).await;
    let b_base = base_of(&b);
    a.state().clear_requests();
    let dir = tempfile::tempdir().unwrap();
    let args = export_args(dir.path());
    let export = chatgate::export::run(config_of(&a, &redis.url(), guard), args);
    // Distinct pages, so every request is a miss and a vendor call.
    let requests = join_all((0..30).map(|n| {
        let base = if n % 2 == 0 {
            a.base.clone()
        } else {
            b_base.clone()
        };
        async move {
            get(
                &base,
                DEMO_KEY,
                &format!("{LIST}?chatbotId=support&size=1&page={}", n + 1),
            )
            .await
        }
    }));
    let (exported, answers) = futures_util::join!(export, requests);
    exported.unwrap();
    for r in &answers {
        r.ok();
    }
    let times: Vec<u64> = a
        .state()
        .requests()
        .iter()
        .filter(|r| r.vendor == Vendor::Chatbase)
        .map(|r| r.received_ms)
        .collect();
    assert!(
        times.len() >= 40,
        "30 requests and the export: {}",
        times.len()
    );
    // What one instance's guard allows alone: the burst (= the rate) at once,
    // then the rate; one call of slack for the time between the guard's
    // decision and the emulator's clock.
    for window_secs in [1, 3] {
        let allowed = RATE + RATE * window_secs + 1;
        let busiest = busiest_window(&times, window_secs * 1000);
        assert!(
            busiest <= allowed,
            "{busiest} calls in a {window_secs} s window; one guard allows {allowed}"
        );
    }
    b.stop().await;
    a.stop().await;
}

/// An export of the `support` bot into `dir`, 10 conversations a page.
fn export_args(dir: &std::path::Path) -> ExportArgs {
    ExportArgs {
        bot: "support".to_owned(),
        since: None,
        until: None,
        sources: None,
        out: dir.join("out.jsonl"),
        resume: false,
        include_raw: false,
        page_size: 10,
    }
}

/// The most calls at `times` (ms) inside any window of `window_ms`.
fn busiest_window(times: &[u64], window_ms: u64) -> u64 {
    let mut sorted = times.to_vec();
    sorted.sort_unstable();
    let mut busiest = 0;
    let mut start = 0;
    for end in 0..sorted.len() {
        while sorted[end] - sorted[start] >= window_ms {
            start += 1;
        }
        busiest = busiest.max((end - start + 1) as u64);
    }
    busiest
}

async fn get_no_cache(base: &str, path: &str) -> Resp {
    let client = awc::Client::builder()
        .timeout(Duration::from_secs(30))
        .finish();
    let mut res = client
        .get(format!("{base}{path}"))
        .insert_header(("authorization", format!("Bearer {DEMO_KEY}")))
        .insert_header(("cache-control", "no-cache"))
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
    let args = export_args(dir.path());
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

#[actix_rt::test]
async fn a_lock_left_by_a_dead_holder_delays_the_fetch_but_never_blocks_it() {
    use chatgate::cache::CacheKey;
    use chatgate::redis::cache::SecondLevel;
    use chatgate::redis::{NoMetrics, RedisSettings, SharedStore};
    use chatgate_providers::{ListQuery, PageNumber, PageSize};

    let redis = RedisServer::start();
    let (a, b) = two_instances(&redis).await;
    // The key B will miss, as the gateway computes it.
    let runtime = b.state.runtime();
    let gateway = &runtime.gateway;
    let bot = gateway.config.bots["support"].clone();
    let query = ListQuery {
        page: PageNumber::new(3).unwrap(),
        size: PageSize::new(6).unwrap(),
        ..ListQuery::default()
    };
    let key = CacheKey::list(gateway.bot_key(&bot).unwrap(), &query);
    // A holder that took the lock and died: nobody will release it.
    let settings = RedisSettings::new(&redis.url(), Some("scale-out:"), Some(1_000)).unwrap();
    let store = SharedStore::new(settings, Arc::new(NoMetrics), Clock::system()).unwrap();
    let keys = store.keys().cache_entry(&key.canonical());
    let lease = Duration::from_millis(1500);
    let held = SecondLevel::new(store, 1 << 20)
        .try_lock(&keys, lease)
        .await
        .unwrap();
    assert!(held.is_some(), "the lock was free");
    let calls = a.calls(Vendor::Chatbase);
    let started = Instant::now();
    let r = get(
        &base_of(&b),
        DEMO_KEY,
        &format!("{LIST}?chatbotId=support&size=6&page=3"),
    )
    .await;
    r.ok();
    assert_eq!(x_cache(&r), "MISS", "B took over and fetched");
    assert_eq!(a.calls(Vendor::Chatbase), calls + 1);
    assert!(
        started.elapsed() >= Duration::from_millis(1000),
        "B waited for the holder's lease: {:?}",
        started.elapsed()
    );
    b.stop().await;
    a.stop().await;
}
