//! Upstream resilience (SPEC §7, issue #5) through the real server, with faults
//! injected into the built-in emulator and every vendor call counted there:
//! which failures are retried and how often, `Retry-After` and the per-provider
//! 429 pause (Chatling's next-full-minute window included), the circuit breaker
//! (opening, streak reset by a 4xx, probe success and failure, one probe under
//! concurrency), stale answers while the vendor is shut off, the request deadline
//! across several vendor calls, and hostile vendor bodies.
//!
//! Timing: no test asserts that something finished within a time. Where a test
//! needs two things to overlap it waits for the emulator to have seen the first
//! call instead of relying on a sleep, and gives the overlap seconds where
//! milliseconds would do; sleeps only wait for a window to pass (a slow machine
//! waits longer, which changes nothing); windows a test must stay inside are
//! long or, where the gateway reads `Clock`, on a manual clock. So a loaded
//! machine slows the suite but does not flip it. The breaker's 1 s cooldowns
//! are still the gateway's own real time.
#![allow(clippy::unwrap_used, missing_docs, clippy::disallowed_methods)]

mod common;

use std::future::Future;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::{Duration, Instant};

use chatgate::clock::ManualClock;
use chatgate_emulator::{FaultKind, Vendor};
use chrono::TimeZone;
use common::{chatbase_at, fault_n, status, x_cache, Harness, Resp};
use futures_util::future::{join, join_all};

const LIST: &str = "/api/v1/get-conversations";

/// Adds `lines` to the `[providers.<provider>]` table of the demo TOML.
fn tune(toml: String, provider: &str, lines: &str) -> String {
    let table = format!("[providers.{provider}]\n");
    assert!(toml.contains(&table), "no {table} in the config");
    toml.replace(&table, &format!("{table}{lines}\n"))
}

/// Adds `lines` to the demo TOML's `[server]` table.
fn tune_server(toml: String, lines: &str) -> String {
    assert!(toml.contains("[server]\n"), "no [server] in the config");
    toml.replace("[server]\n", &format!("[server]\n{lines}\n"))
}

/// A distinct list query for `bot`, so the response cache never absorbs it.
fn page(bot: &str, page: u32) -> String {
    format!("{LIST}?chatbotId={bot}&size=2&page={page}")
}

fn retry_after(r: &Resp) -> u64 {
    r.header("retry-after")
        .unwrap_or_else(|| panic!("no Retry-After on a {}", r.status))
        .parse()
        .unwrap()
}

/// Polls `cond` until it holds; after 30 s the test is hung and fails.
async fn wait_until(what: &str, cond: impl Fn() -> bool) {
    let started = Instant::now();
    while !cond() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "timed out waiting until {what}"
        );
        actix_rt::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Runs `first`, and once the emulator has received its vendor call (so it is in
/// flight), `then` alongside it.
async fn while_in_flight<A, B>(
    h: &Harness,
    vendor: Vendor,
    first: impl Future<Output = A>,
    then: impl Future<Output = B>,
) -> (A, B) {
    let before = h.calls(vendor);
    join(first, async {
        wait_until("the first call reached the vendor", || {
            h.calls(vendor) > before
        })
        .await;
        then.await
    })
    .await
}

// ---------------------------------------------------------------------------
// Retries
// ---------------------------------------------------------------------------

#[actix_rt::test]
async fn a_transient_502_503_or_504_is_retried_and_the_caller_gets_200() {
    let h = Harness::start().await;
    for (i, vendor_status) in [502, 503, 504].into_iter().enumerate() {
        let before = h.calls(Vendor::Chatbase);
        h.state().add_fault(fault_n(
            Vendor::Chatbase,
            Some(1),
            status(vendor_status, None),
        ));
        let res = h.get(&page("support", i as u32 + 1)).await;
        let body = res.ok();
        assert_eq!(body["data"].as_array().unwrap().len(), 2, "{vendor_status}");
        assert_eq!(x_cache(&res), "MISS");
        assert_eq!(
            h.calls(Vendor::Chatbase) - before,
            2,
            "one failed call and one retry after a {vendor_status}"
        );
    }
    h.stop().await;
}

#[actix_rt::test]
async fn a_vendor_500_400_401_or_404_is_answered_without_a_retry() {
    let h = Harness::start().await;
    let cases = [
        (500, 502, "upstream_error"),
        (400, 502, "upstream_error"),
        (401, 502, "upstream_auth_failed"),
        (404, 404, "not_found"),
    ];
    for (i, (vendor_status, gateway_status, code)) in cases.into_iter().enumerate() {
        h.state().clear_faults();
        h.state()
            .add_fault(fault_n(Vendor::Chatbase, None, status(vendor_status, None)));
        let before = h.calls(Vendor::Chatbase);
        let body = h
            .get(&page("support", i as u32 + 1))
            .await
            .expect_error(gateway_status, code);
        assert_eq!(body["provider"], "chatbase");
        assert_eq!(body["upstream_status"], vendor_status, "{body}");
        assert_eq!(
            h.calls(Vendor::Chatbase) - before,
            1,
            "a vendor {vendor_status} is not retried"
        );
    }
    h.stop().await;
}

#[actix_rt::test]
async fn retries_stop_after_max_retries() {
    let h = Harness::start_with(|t| {
        let t = tune(t, "chatbase", "max_retries = 2");
        tune(t, "chatzuri", "max_retries = 0")
    })
    .await;
    h.state()
        .add_fault(fault_n(Vendor::Chatbase, None, status(503, None)));
    h.state()
        .add_fault(fault_n(Vendor::Chatzuri, None, status(503, None)));

    let body = h
        .get(&page("support", 1))
        .await
        .expect_error(502, "upstream_error");
    assert_eq!(body["upstream_status"], 503, "{body}");
    assert_eq!(body["provider"], "chatbase");
    assert_eq!(
        h.calls(Vendor::Chatbase),
        3,
        "the first call and exactly max_retries = 2 retries"
    );

    let body = h
        .get(&page("sales", 1))
        .await
        .expect_error(502, "upstream_error");
    assert_eq!(body["upstream_status"], 503, "{body}");
    assert_eq!(h.calls(Vendor::Chatzuri), 1, "max_retries = 0: one call");
    h.stop().await;
}

#[actix_rt::test]
async fn a_connection_dropped_without_an_answer_is_retried() {
    let h = Harness::start().await;
    h.state()
        .add_fault(fault_n(Vendor::Chatbase, Some(1), FaultKind::Reset));
    let res = h.get(&page("support", 1)).await;
    assert_eq!(res.ok()["data"].as_array().unwrap().len(), 2);
    assert_eq!(
        h.calls(Vendor::Chatbase),
        2,
        "the dropped call and its retry"
    );
    h.stop().await;
}

#[actix_rt::test]
async fn a_timed_out_attempt_is_not_retried() {
    let h = Harness::start_with(|t| tune(t, "chatbase", "timeout_ms = 200\nmax_retries = 2")).await;
    // The vendor would answer after a minute, past the test client's own 30 s
    // timeout: an answer at all is the gateway's, after its 200 ms timeout.
    h.state().add_fault(fault_n(
        Vendor::Chatbase,
        None,
        FaultKind::Delay { ms: 60_000 },
    ));
    let body = h
        .get(&page("support", 1))
        .await
        .expect_error(504, "upstream_timeout");
    assert_eq!(body["provider"], "chatbase");
    assert!(
        body["message"].as_str().unwrap().contains("200ms"),
        "the provider's timeout ended it: {body}"
    );
    assert_eq!(h.calls(Vendor::Chatbase), 1, "no retry after a timeout");
    h.stop().await;
}

// ---------------------------------------------------------------------------
// Retry-After and the 429 pause
// ---------------------------------------------------------------------------

#[actix_rt::test]
async fn a_short_retry_after_is_waited_out_then_the_call_is_retried() {
    let h = Harness::start().await;
    h.state()
        .add_fault(fault_n(Vendor::Chatbase, Some(1), status(429, Some("1"))));
    let started = Instant::now();
    let res = h.get(&page("support", 1)).await;
    let elapsed = started.elapsed();
    res.ok();
    assert_eq!(h.calls(Vendor::Chatbase), 2, "the 429 and one retry");
    assert!(
        elapsed >= Duration::from_millis(950),
        "the retry waited for Retry-After: 1, not only a backoff: {elapsed:?}"
    );
    h.stop().await;
}

#[actix_rt::test]
async fn a_retry_after_over_the_cap_is_forwarded_at_once_without_a_retry() {
    let h = Harness::start_with(|t| tune(t, "chatbase", "max_retry_wait_ms = 5000")).await;
    // Only the first call is refused: had the gateway waited the window out, its
    // retry would have succeeded (and the test client given up after 30 s).
    h.state()
        .add_fault(fault_n(Vendor::Chatbase, Some(1), status(429, Some("120"))));
    let res = h.get(&page("support", 1)).await;
    let body = res.expect_error(429, "upstream_rate_limited");
    assert_eq!(body["provider"], "chatbase");
    // The rest of the window as the gateway counts it (its own real time).
    let wait = retry_after(&res);
    assert!((100..=120).contains(&wait), "the vendor's window: {wait}");
    assert_eq!(
        h.calls(Vendor::Chatbase),
        1,
        "no retry within a 120 s window"
    );
    h.stop().await;
}

#[actix_rt::test]
async fn a_vendor_429_pauses_the_provider_for_every_caller() {
    let h = Harness::start_with(|t| tune(t, "chatbase", "max_retry_wait_ms = 0")).await;
    // Only the first call is refused: a later call that reached the vendor
    // would succeed.
    h.state()
        .add_fault(fault_n(Vendor::Chatbase, Some(1), status(429, Some("60"))));
    let first = h.get(&page("support", 1)).await;
    first.expect_error(429, "upstream_rate_limited");
    let wait = retry_after(&first);
    assert!((50..=60).contains(&wait), "the vendor's window: {wait}");
    assert_eq!(h.calls(Vendor::Chatbase), 1);

    // Ten callers asking for ten different pages: none reaches the vendor, and
    // with max_retry_wait_ms = 0 none waits (the window is far longer than the
    // test client's 30 s timeout).
    let queries: Vec<String> = (2..12).map(|p| page("support", p)).collect();
    let answers = join_all(queries.iter().map(|q| h.get(q))).await;
    for res in &answers {
        let body = res.expect_error(429, "upstream_rate_limited");
        assert_eq!(body["provider"], "chatbase");
        let wait = retry_after(res);
        assert!((1..=60).contains(&wait), "the rest of the window: {wait}");
    }
    assert_eq!(
        h.calls(Vendor::Chatbase),
        1,
        "no call reaches a vendor that said slow down"
    );
    h.stop().await;
}

#[actix_rt::test]
async fn a_paused_provider_is_called_again_once_its_window_has_passed() {
    let h = Harness::start_with(|t| tune(t, "chatbase", "max_retry_wait_ms = 0")).await;
    h.state()
        .add_fault(fault_n(Vendor::Chatbase, Some(1), status(429, Some("1"))));
    h.get(&page("support", 1))
        .await
        .expect_error(429, "upstream_rate_limited");
    // At least the window (a slow machine only waits longer).
    actix_rt::time::sleep(Duration::from_millis(1200)).await;
    h.get(&page("support", 2)).await.ok();
    h.get(&page("support", 3)).await.ok();
    assert_eq!(h.calls(Vendor::Chatbase), 3);
    h.stop().await;
}

#[actix_rt::test]
async fn chatling_429_without_retry_after_pauses_until_the_next_full_minute() {
    // The gateway dates the answer by its clock: 15 s into a minute, so the
    // window is the 45 s left of it, whatever the wall clock says.
    let at = chrono::Utc.with_ymd_and_hms(2025, 1, 1, 12, 0, 15).unwrap();
    let clock = ManualClock::starting_at(at);
    let h =
        Harness::start_with_clock(&clock, |t| tune(t, "chatling", "max_retry_wait_ms = 0")).await;
    h.state().add_fault(fault_n(
        Vendor::Chatling,
        Some(1),
        FaultKind::Status {
            status: 429,
            body: Some(r#"{"status":"error","message":"Too many requests"}"#.to_owned()),
            retry_after: None,
        },
    ));
    let res = h.get(&page("helpdesk", 1)).await;
    let body = res.expect_error(429, "upstream_rate_limited");
    assert_eq!(body["provider"], "chatling");
    let wait = retry_after(&res);
    assert!(
        (35..=45).contains(&wait),
        "the 45 s left of the minute (less what the gateway spent since): {wait}"
    );
    assert_eq!(h.calls(Vendor::Chatling), 1);

    // The fault is spent: a call would now succeed, so a 429 proves no call was
    // made. (The pause itself runs on the gateway's real time.)
    let res = h.get(&page("helpdesk", 2)).await;
    res.expect_error(429, "upstream_rate_limited");
    assert!((1..=wait).contains(&retry_after(&res)));
    assert_eq!(
        h.calls(Vendor::Chatling),
        1,
        "no Chatling call until the minute is over"
    );
    h.stop().await;
}

// ---------------------------------------------------------------------------
// Circuit breaker
// ---------------------------------------------------------------------------

/// Chatbase with a small breaker and no retries, so each request is one call.
fn small_breaker(toml: String) -> String {
    tune(
        toml,
        "chatbase",
        "max_retries = 0\ncircuit_failure_threshold = 3\ncircuit_cooldown_secs = 1",
    )
}

/// Makes `n` failing (500) requests, one call each.
async fn fail_n(h: &Harness, n: u32, first_page: u32) {
    h.state()
        .add_fault(fault_n(Vendor::Chatbase, Some(n), status(500, None)));
    for p in first_page..first_page + n {
        h.get(&page("support", p))
            .await
            .expect_error(502, "upstream_error");
    }
}

fn expect_open(res: &Resp) {
    let body = res.expect_error(503, "upstream_unavailable");
    assert_eq!(body["provider"], "chatbase");
    let wait = retry_after(res);
    assert_eq!(wait, 1, "the rest of a 1 s cooldown, in whole seconds ≥ 1");
}

#[actix_rt::test]
async fn consecutive_failures_open_the_circuit_and_an_open_circuit_makes_no_call() {
    let h = Harness::start_with(small_breaker).await;
    fail_n(&h, 2, 1).await;
    // Two failures: still closed.
    h.get(&page("support", 10)).await.ok();
    assert_eq!(h.calls(Vendor::Chatbase), 3);
    fail_n(&h, 3, 20).await;
    assert_eq!(h.calls(Vendor::Chatbase), 6);
    for p in 30..33 {
        expect_open(&h.get(&page("support", p)).await);
    }
    assert_eq!(
        h.calls(Vendor::Chatbase),
        6,
        "an open circuit lets no call through"
    );
    // Other providers are not affected.
    h.get(&page("sales", 1)).await.ok();
    h.stop().await;
}

#[actix_rt::test]
async fn a_vendor_4xx_between_failures_resets_the_streak() {
    let h = Harness::start_with(small_breaker).await;
    for kind in [
        status(500, None),
        status(500, None),
        status(404, None),
        status(500, None),
        status(500, None),
    ] {
        h.state()
            .add_fault(fault_n(Vendor::Chatbase, Some(1), kind));
    }
    for p in 1..=5 {
        let res = h.get(&page("support", p)).await;
        assert!(
            [502, 404].contains(&res.status.as_u16()),
            "page {p}: {}",
            res.status
        );
    }
    assert_eq!(h.calls(Vendor::Chatbase), 5);
    // Streaks of 2, then 2: the circuit is still closed.
    h.get(&page("support", 6)).await.ok();
    assert_eq!(h.calls(Vendor::Chatbase), 6);
    h.stop().await;
}

#[actix_rt::test]
async fn after_the_cooldown_a_successful_probe_closes_the_circuit() {
    let h = Harness::start_with(small_breaker).await;
    fail_n(&h, 3, 1).await;
    expect_open(&h.get(&page("support", 10)).await);
    let opened = h.calls(Vendor::Chatbase);
    actix_rt::time::sleep(Duration::from_millis(1100)).await;
    h.get(&page("support", 11)).await.ok();
    assert_eq!(h.calls(Vendor::Chatbase), opened + 1, "one probe");
    for p in 12..15 {
        h.get(&page("support", p)).await.ok();
    }
    assert_eq!(
        h.calls(Vendor::Chatbase),
        opened + 4,
        "closed again: every request reaches the vendor"
    );
    h.stop().await;
}

#[actix_rt::test]
async fn a_failed_probe_reopens_the_circuit_for_another_cooldown() {
    let h = Harness::start_with(small_breaker).await;
    fail_n(&h, 3, 1).await;
    actix_rt::time::sleep(Duration::from_millis(1100)).await;
    // The probe fails: one call, and the circuit is open again at once.
    fail_n(&h, 1, 10).await;
    assert_eq!(h.calls(Vendor::Chatbase), 4);
    let reopened = Instant::now();
    expect_open(&h.get(&page("support", 11)).await);
    expect_open(&h.get(&page("support", 12)).await);
    assert_eq!(h.calls(Vendor::Chatbase), 4, "no call while open again");
    // After another cooldown a successful probe closes it.
    actix_rt::time::sleep(Duration::from_millis(1100).saturating_sub(reopened.elapsed())).await;
    h.get(&page("support", 13)).await.ok();
    h.get(&page("support", 14)).await.ok();
    assert_eq!(h.calls(Vendor::Chatbase), 6);
    h.stop().await;
}

#[actix_rt::test]
async fn concurrent_requests_while_half_open_make_exactly_one_probe_call() {
    let h = Harness::start_with(small_breaker).await;
    fail_n(&h, 3, 1).await;
    actix_rt::time::sleep(Duration::from_millis(1100)).await;
    // The probe is slow (seconds, where the others need milliseconds), so the
    // others arrive while it is in flight.
    h.state().add_fault(fault_n(
        Vendor::Chatbase,
        Some(1),
        FaultKind::Delay { ms: 3000 },
    ));
    let opened = h.calls(Vendor::Chatbase);
    let probe_query = page("support", 10);
    let queries: Vec<String> = (11..17).map(|p| page("support", p)).collect();
    let (probe, others) = while_in_flight(
        &h,
        Vendor::Chatbase,
        h.get(&probe_query),
        join_all(queries.iter().map(|q| h.get(q))),
    )
    .await;
    probe.ok();
    for res in &others {
        expect_open(res);
    }
    assert_eq!(
        h.calls(Vendor::Chatbase),
        opened + 1,
        "half-open lets exactly one probe through"
    );
    // The probe succeeded: closed.
    h.get(&page("support", 20)).await.ok();
    assert_eq!(h.calls(Vendor::Chatbase), opened + 2);
    h.stop().await;
}

// ---------------------------------------------------------------------------
// Stale answers, the request deadline, hostile bodies
// ---------------------------------------------------------------------------

#[actix_rt::test]
async fn an_open_circuit_or_a_paused_provider_serves_stale_from_cache() {
    let clock = ManualClock::new();
    let h = Harness::start_with_clock(&clock, |t| {
        let t = tune(
            t,
            "chatbase",
            "max_retries = 0\ncircuit_failure_threshold = 2\ncircuit_cooldown_secs = 30",
        );
        let t = tune(t, "chatzuri", "max_retry_wait_ms = 0");
        format!("{t}\n[cache]\nttl_secs = 60\nstale_if_error_secs = 600\n")
    })
    .await;
    let support = page("support", 1);
    let sales = page("sales", 1);
    let warm_support = h.get(&support).await;
    warm_support.ok();
    let warm_sales = h.get(&sales).await;
    warm_sales.ok();
    assert_eq!(x_cache(&warm_support), "MISS");
    assert_eq!(x_cache(&warm_sales), "MISS");
    clock.advance(Duration::from_secs(61));

    // Chatbase: open the circuit, then remove the fault, so that a call would
    // succeed with a fresh MISS.
    h.state()
        .add_fault(fault_n(Vendor::Chatbase, None, status(500, None)));
    for p in 2..4 {
        h.get(&page("support", p))
            .await
            .expect_error(502, "upstream_error");
    }
    h.state().clear_faults();
    h.get(&page("support", 4))
        .await
        .expect_error(503, "upstream_unavailable");
    let calls = h.calls(Vendor::Chatbase);
    let stale = h.get(&support).await;
    stale.ok();
    assert_eq!(x_cache(&stale), "STALE");
    assert_eq!(stale.body, warm_support.body, "the old body, byte for byte");
    assert_eq!(h.calls(Vendor::Chatbase), calls, "no call while open");

    // Chatzuri: a 429 pauses it; the expired entry answers meanwhile.
    h.state()
        .add_fault(fault_n(Vendor::Chatzuri, Some(1), status(429, Some("60"))));
    h.get(&page("sales", 2))
        .await
        .expect_error(429, "upstream_rate_limited");
    assert_eq!(h.calls(Vendor::Chatzuri), 2);
    let stale = h.get(&sales).await;
    stale.ok();
    assert_eq!(x_cache(&stale), "STALE");
    assert_eq!(stale.body, warm_sales.body);
    assert_eq!(h.calls(Vendor::Chatzuri), 2, "no call while paused");
    h.stop().await;
}

#[actix_rt::test]
async fn the_request_deadline_bounds_a_chatling_page_that_needs_several_vendor_calls() {
    let h = Harness::start_with(|t| tune_server(t, "request_timeout_ms = 600")).await;
    // Chatling serves 5 conversations per vendor page: 20 need 4 calls, each
    // well within the provider's own timeout but together past the deadline.
    h.state().add_fault(fault_n(
        Vendor::Chatling,
        None,
        FaultKind::Delay { ms: 400 },
    ));
    let started = Instant::now();
    let body = h
        .get(&format!("{LIST}?chatbotId=helpdesk&size=20"))
        .await
        .expect_error(504, "upstream_timeout");
    assert_eq!(body["provider"], "chatling");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("did not complete within 600ms"),
        "the request's deadline, not a vendor timeout, ended it: {body}"
    );
    // Lower bounds only: a slow machine can only take longer.
    assert!(started.elapsed() >= Duration::from_millis(600));
    // Each call takes at least 400 ms, so a third could not start in 600 ms.
    let calls = h.calls(Vendor::Chatling);
    assert!(
        (1..=2).contains(&calls),
        "the deadline stopped the scan: {calls} calls"
    );
    // The same page without the delay completes.
    h.state().clear_faults();
    h.get(&format!("{LIST}?chatbotId=helpdesk&size=20"))
        .await
        .ok();
    h.stop().await;
}

#[actix_rt::test]
async fn deeply_nested_or_oversized_vendor_bodies_are_502_and_the_server_keeps_serving() {
    let h = Harness::start_with(|t| {
        let mut t = t;
        for p in ["chatbase", "chatzuri", "chatling"] {
            t = tune(t, p, "circuit_failure_threshold = 100");
        }
        tune(t, "chatling", "max_body_bytes = 262144")
    })
    .await;
    let nested = "[".repeat(100_000);
    for (bot, vendor) in [
        ("support", Vendor::Chatbase),
        ("sales", Vendor::Chatzuri),
        ("helpdesk", Vendor::Chatling),
    ] {
        h.state().clear_faults();
        h.state().add_fault(fault_n(
            vendor,
            None,
            FaultKind::Status {
                status: 200,
                body: Some(nested.clone()),
                retry_after: None,
            },
        ));
        let body = h
            .get(&page(bot, 1))
            .await
            .expect_error(502, "upstream_error");
        assert_eq!(body["upstream_status"], 200, "{bot}: {body}");
    }
    h.state().clear_faults();
    h.state().add_fault(fault_n(
        Vendor::Chatling,
        None,
        FaultKind::Huge { bytes: 1 << 20 },
    ));
    let body = h
        .get(&page("helpdesk", 2))
        .await
        .expect_error(502, "upstream_error");
    assert_eq!(body["provider"], "chatling");
    assert!(
        body["message"].as_str().unwrap().contains("262144"),
        "the message names the limit: {body}"
    );

    h.state().clear_faults();
    let health = h.get_as(None, "/healthz").await;
    assert_eq!(health.json()["status"], "ok");
    for bot in ["support", "sales", "helpdesk"] {
        h.get(&page(bot, 3)).await.ok();
    }
    h.stop().await;
}

/// A "vendor" on a raw socket: the n-th connection gets `bodies[n]` as a 200
/// `application/json` answer. Returns its port.
fn raw_vendor(bodies: Vec<Vec<u8>>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for (stream, body) in listener.incoming().zip(bodies) {
            let Ok(mut s) = stream else { continue };
            let mut head = Vec::new();
            let mut buf = [0u8; 4096];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            let mut answer = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            )
            .into_bytes();
            answer.extend_from_slice(&body);
            let _ = s.write_all(&answer);
        }
    });
    port
}

#[actix_rt::test]
async fn invalid_utf8_inside_a_vendor_json_string_is_502_and_the_server_keeps_serving() {
    let conversation = |content: &[u8]| {
        let mut body = br#"{"data":[{"id":"c1","created_at":"2024-06-14T15:45:34Z","source":"API","messages":[{"role":"user","content":""#.to_vec();
        body.extend_from_slice(content);
        body.extend_from_slice(br#""}]}]}"#);
        body
    };
    let valid = conversation("caf\u{e9}".as_bytes());
    let invalid = conversation(b"caf\xe9");
    let port = raw_vendor(vec![valid, invalid.clone(), invalid]);
    let h = Harness::start_with(|t| chatbase_at(t, port)).await;

    // The same document with valid UTF-8 is a good answer.
    let ok = h.get(&page("support", 1)).await.ok();
    assert_eq!(ok["data"][0]["messages"][0]["content"], "caf\u{e9}");
    // One invalid byte inside a string makes it a bad one, also kept raw.
    for q in [
        page("support", 2),
        format!("{}&include=raw", page("support", 3)),
    ] {
        let body = h.get(&q).await.expect_error(502, "upstream_error");
        assert_eq!(body["provider"], "chatbase");
        assert_eq!(body["upstream_status"], 200, "{body}");
    }
    let health = h.get_as(None, "/healthz").await;
    assert_eq!(health.json()["status"], "ok");
    h.stop().await;
}
