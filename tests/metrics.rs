//! `GET /metrics` (SPEC §2.4, §7) through the real server: after a known mix of
//! traffic every metric family shows the exact samples that traffic implies; the
//! circuit gauge follows the breaker; `server.metrics_bind` moves the endpoint to
//! its own address.
#![allow(clippy::unwrap_used, missing_docs, clippy::disallowed_methods)]

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chatgate::demo::SCOPED_KEY;
use chatgate_emulator::Vendor;
use common::{fault, status, Harness, Resp};

const LIST: &str = "/api/v1/get-conversations";

/// Adds `lines` to the `[providers.<provider>]` table of the demo TOML.
fn tune(toml: String, provider: &str, lines: &str) -> String {
    let table = format!("[providers.{provider}]\n");
    assert!(toml.contains(&table), "no {table} in the config");
    toml.replace(&table, &format!("{table}{lines}\n"))
}

/// Scrapes `/metrics` on the main address without a client key.
async fn scrape(h: &Harness) -> String {
    let res = h.get_as(None, "/metrics").await;
    exposition(&res)
}

/// Checks a `/metrics` answer and returns its text.
fn exposition(res: &Resp) -> String {
    assert_eq!(res.status.as_u16(), 200);
    assert_eq!(
        res.header("content-type"),
        Some(chatgate::metrics::CONTENT_TYPE)
    );
    let text = String::from_utf8(res.body.to_vec()).unwrap();
    assert!(text.ends_with("# EOF\n"), "OpenMetrics ends with # EOF");
    text
}

/// The value of the sample `series` (name and labels exactly as rendered).
fn sample(text: &str, series: &str) -> f64 {
    let prefix = format!("{series} ");
    let values: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix(&prefix))
        .collect();
    assert_eq!(values.len(), 1, "one sample {series} in:\n{text}");
    values[0]
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("{series}: {e}"))
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// A histogram's buckets for one label set, in order: (`le`, cumulative count).
fn buckets(text: &str, name: &str, label: &str) -> Vec<(String, f64)> {
    let prefix = format!("{name}_bucket{{le=\"");
    let suffix = format!("\",{label}}}");
    text.lines()
        .filter_map(|l| {
            let rest = l.strip_prefix(&prefix)?;
            let (le, value) = rest.split_once(&suffix)?;
            Some((le.to_owned(), value.trim().parse().unwrap()))
        })
        .collect()
}

/// Each bucket of a histogram at least the one before, the last `+Inf` = `count`.
fn assert_histogram(text: &str, name: &str, label: &str, count: f64) {
    let b = buckets(text, name, label);
    assert!(b.len() >= 2, "buckets of {name}{{{label}}} in:\n{text}");
    assert!(b.windows(2).all(|w| w[0].1 <= w[1].1), "cumulative: {b:?}");
    assert_eq!(b.last().unwrap(), &("+Inf".to_owned(), count));
    assert_eq!(sample(text, &format!("{name}_count{{{label}}}")), count);
    assert!(sample(text, &format!("{name}_sum{{{label}}}")) > 0.0);
}

#[actix_rt::test]
async fn after_mixed_traffic_metrics_show_exact_samples_for_every_family() {
    let started = unix_now();
    // The demo's real quotas: support-only may send a burst of 5.
    let h = Harness::start_as_demo(|t| t).await;
    let q = format!("{LIST}?chatbotId=support&size=2");

    let miss = h.get(&q).await;
    miss.ok();
    assert_eq!(miss.header("x-cache"), Some("MISS"));
    let hit = h.get(&q).await;
    hit.ok();
    assert_eq!(hit.header("x-cache"), Some("HIT"));
    h.get(&format!("{LIST}?chatbotId=support&page=0"))
        .await
        .expect_error(400, "invalid_request");
    // A vendor 503, retried twice (the default max_retries), each attempt counted.
    h.state()
        .add_fault(fault(Vendor::Chatbase, status(503, None)));
    h.get(&format!("{LIST}?chatbotId=support&size=3"))
        .await
        .expect_error(502, "upstream_error");
    h.state().clear_faults();
    assert_eq!(h.calls(Vendor::Chatbase), 4);
    // The scoped client spends its burst on /api/v1/bots, then gets a 429.
    let mut allowed = 0;
    loop {
        let res = h.get_as(Some(SCOPED_KEY), "/api/v1/bots").await;
        if res.status.as_u16() == 429 {
            res.expect_error(429, "rate_limited");
            break;
        }
        res.ok();
        allowed += 1;
        assert!(
            allowed <= 20,
            "the scoped client's burst of 5 never ran out"
        );
    }
    assert!(allowed >= 5, "a burst of 5: {allowed}");

    let text = scrape(&h).await;
    let exact = [
        (r#"chatgate_requests_total{route="list",status="200"}"#, 2.0),
        (r#"chatgate_requests_total{route="list",status="400"}"#, 1.0),
        (r#"chatgate_requests_total{route="list",status="502"}"#, 1.0),
        (
            r#"chatgate_requests_total{route="bots",status="200"}"#,
            f64::from(allowed),
        ),
        (r#"chatgate_requests_total{route="bots",status="429"}"#, 1.0),
        (
            r#"chatgate_upstream_requests_total{provider="chatbase",status="200"}"#,
            1.0,
        ),
        (
            r#"chatgate_upstream_requests_total{provider="chatbase",status="503"}"#,
            3.0,
        ),
        (r#"chatgate_cache_events_total{result="hit"}"#, 1.0),
        (r#"chatgate_cache_events_total{result="miss"}"#, 1.0),
        (r#"chatgate_cache_events_total{result="stale"}"#, 0.0),
        (r#"chatgate_cache_events_total{result="bypass"}"#, 0.0),
        (r#"chatgate_rate_limited_total{scope="client"}"#, 1.0),
        (r#"chatgate_rate_limited_total{scope="upstream"}"#, 0.0),
        (r#"chatgate_rate_limited_total{scope="auth_ip"}"#, 0.0),
        (r#"chatgate_circuit_state{provider="chatbase"}"#, 0.0),
        (r#"chatgate_circuit_state{provider="chatling"}"#, 0.0),
        (r#"chatgate_config_reloads_total{result="ok"}"#, 0.0),
    ];
    for (series, value) in exact {
        assert_eq!(sample(&text, series), value, "{series} in:\n{text}");
    }
    assert!(
        !text.contains(r#"provider="chatzuri",status="#),
        "no Chatzuri call was made, so no Chatzuri series:\n{text}"
    );
    assert!(!text.contains(r#"route="metrics""#), "not yet scraped");

    assert_histogram(
        &text,
        "chatgate_request_duration_seconds",
        r#"route="list""#,
        4.0,
    );
    assert_histogram(
        &text,
        "chatgate_request_duration_seconds",
        r#"route="bots""#,
        f64::from(allowed + 1),
    );
    assert_histogram(
        &text,
        "chatgate_upstream_duration_seconds",
        r#"provider="chatbase""#,
        4.0,
    );
    for line in [
        "# TYPE chatgate_request_duration_seconds histogram",
        "# TYPE chatgate_upstream_duration_seconds histogram",
        "# TYPE chatgate_circuit_state gauge",
        "# TYPE chatgate_cache_weighted_bytes gauge",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} in:\n{text}");
    }

    // One entry is cached: its body plus key and bookkeeping.
    let weight = sample(&text, "chatgate_cache_weighted_bytes");
    let body = miss.body.len() as f64;
    assert!(
        weight > body && weight < body + 2048.0,
        "cache weight {weight} for one {body}-byte body"
    );
    let loaded = sample(&text, "chatgate_config_last_reload_timestamp_seconds");
    assert!(
        loaded >= started - 1.0 && loaded <= unix_now() + 1.0,
        "loaded at {loaded}, test started at {started}"
    );

    // A scrape is a request like any other.
    let text = scrape(&h).await;
    assert_eq!(
        sample(
            &text,
            r#"chatgate_requests_total{route="metrics",status="200"}"#
        ),
        1.0
    );
    assert_eq!(
        sample(
            &text,
            r#"chatgate_requests_total{route="list",status="200"}"#
        ),
        2.0,
        "scrapes change no API counts"
    );
    h.stop().await;
}

const CHATBASE_GAUGE: &str = r#"chatgate_circuit_state{provider="chatbase"}"#;

/// A gateway whose Chatbase circuit opens after 2 failed calls (no retries) and
/// half-opens 1 s later.
async fn small_breaker() -> Harness {
    Harness::start_with(|t| {
        tune(
            t,
            "chatbase",
            "max_retries = 0\ncircuit_failure_threshold = 2\ncircuit_cooldown_secs = 1",
        )
    })
    .await
}

/// Two failing Chatbase calls, which open its circuit; the fault is then removed.
async fn open_chatbase_circuit(h: &Harness) {
    h.state()
        .add_fault(fault(Vendor::Chatbase, status(500, None)));
    for p in 1..=2 {
        h.get(&format!("{LIST}?chatbotId=support&page={p}"))
            .await
            .expect_error(502, "upstream_error");
    }
    h.state().clear_faults();
}

#[actix_rt::test]
async fn the_circuit_gauge_reads_open_after_the_breaker_opens_and_closed_after_a_good_probe() {
    let h = small_breaker().await;
    let gauge = CHATBASE_GAUGE;
    assert_eq!(sample(&scrape(&h).await, gauge), 0.0, "closed at start");

    open_chatbase_circuit(&h).await;
    let text = scrape(&h).await;
    assert_eq!(sample(&text, gauge), 1.0, "open after 2 failures");
    assert_eq!(
        sample(&text, r#"chatgate_circuit_state{provider="chatzuri"}"#),
        0.0,
        "per provider"
    );
    h.get(&format!("{LIST}?chatbotId=support&page=3"))
        .await
        .expect_error(503, "upstream_unavailable");
    let text = scrape(&h).await;
    assert_eq!(sample(&text, gauge), 1.0);
    assert_eq!(
        sample(
            &text,
            r#"chatgate_requests_total{route="list",status="503"}"#
        ),
        1.0
    );
    assert_eq!(
        sample(
            &text,
            r#"chatgate_upstream_requests_total{provider="chatbase",status="500"}"#
        ),
        2.0,
        "the refused request made no call"
    );

    actix_rt::time::sleep(Duration::from_millis(1100)).await;
    h.get(&format!("{LIST}?chatbotId=support&page=4"))
        .await
        .ok();
    assert_eq!(
        sample(&scrape(&h).await, gauge),
        0.0,
        "closed by a good probe"
    );
    h.stop().await;
}

#[actix_rt::test]
async fn the_circuit_gauge_reads_half_open_once_the_cooldown_has_passed() {
    let h = small_breaker().await;
    open_chatbase_circuit(&h).await;
    assert_eq!(sample(&scrape(&h).await, CHATBASE_GAUGE), 1.0);
    // No request arrives after the cooldown: the next one would probe, and a
    // scrape must say so rather than repeat the state of the last vendor call.
    actix_rt::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        sample(&scrape(&h).await, CHATBASE_GAUGE),
        2.0,
        "half-open (2) once the cooldown has passed"
    );
    h.stop().await;
}

#[actix_rt::test]
async fn metrics_bind_serves_metrics_on_its_own_address_only() {
    let h = Harness::start_with(|t| {
        assert!(t.contains("[server]\n"));
        t.replace("[server]\n", "[server]\nmetrics_bind = \"127.0.0.1:0\"\n")
    })
    .await;
    let metrics_addr = h.gateway.metrics_addr.expect("a metrics address");
    assert_ne!(metrics_addr, h.addr());

    h.get(&format!("{LIST}?chatbotId=support&size=2"))
        .await
        .ok();
    let body = h
        .get_as(None, "/metrics")
        .await
        .expect_error(404, "not_found");
    assert!(
        body["message"].as_str().unwrap().contains("/metrics"),
        "{body}"
    );

    let client = awc::Client::default();
    let mut res = client
        .get(format!("http://{metrics_addr}/metrics"))
        .send()
        .await
        .unwrap();
    let resp = Resp {
        status: res.status(),
        headers: res.headers().clone(),
        body: res.body().limit(1 << 20).await.unwrap(),
    };
    let text = exposition(&resp);
    assert_eq!(
        sample(
            &text,
            r#"chatgate_requests_total{route="list",status="200"}"#
        ),
        1.0,
        "the same registry as the main server"
    );
    assert_eq!(
        sample(
            &text,
            r#"chatgate_requests_total{route="metrics",status="404"}"#
        ),
        1.0,
        "the main address refused /metrics"
    );

    for (method, path, status, code) in [
        (
            awc::http::Method::POST,
            "/metrics",
            405,
            "method_not_allowed",
        ),
        (awc::http::Method::GET, "/nope", 404, "not_found"),
    ] {
        let mut res = client
            .request(method, format!("http://{metrics_addr}{path}"))
            .send()
            .await
            .unwrap();
        Resp {
            status: res.status(),
            headers: res.headers().clone(),
            body: res.body().await.unwrap(),
        }
        .expect_error(status, code);
    }
    h.stop().await;
}

/// `promtool`, or a failure saying how to install it: a lint that cannot run
/// must not pass silently.
fn promtool() -> std::path::PathBuf {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("promtool"))
            .find(|p| p.is_file())
    });
    found.unwrap_or_else(|| {
        panic!("promtool is not installed: `apt-get install -y prometheus` (or run scripts/test)")
    })
}

#[actix_rt::test]
async fn metrics_are_served_in_the_format_asked_for_and_lint_clean() {
    let h = Harness::start().await;
    // Some traffic, so every family has samples.
    h.get("/api/v1/get-conversations?chatbotId=support")
        .await
        .ok();
    h.get("/api/v1/get-conversations?chatbotId=nope").await;

    let open = h.get("/metrics").await;
    assert!(open
        .header("content-type")
        .unwrap()
        .starts_with("application/openmetrics-text"));
    assert!(String::from_utf8_lossy(&open.body).ends_with("# EOF\n"));

    let text = h
        .request(
            awc::http::Method::GET,
            "/metrics",
            None,
            &[("Accept", "text/plain;version=0.0.4")],
            None,
        )
        .await;
    assert_eq!(
        text.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let body = String::from_utf8(text.body.to_vec()).unwrap();
    assert!(!body.contains("# EOF"), "{body}");
    assert!(
        body.contains("# HELP chatgate_requests_total "),
        "a counter's help names its samples: {body}"
    );
    let mut child = std::process::Command::new(promtool())
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    h.stop().await;
}

#[actix_rt::test]
async fn overhead_is_observed_per_request_and_never_exceeds_the_duration() {
    let h = Harness::start_as_demo(|t| t).await;
    let q = format!("{LIST}?chatbotId=support&size=2");
    // A miss (a vendor call), then two hits (none).
    for expected in ["MISS", "HIT", "HIT"] {
        let res = h.get(&q).await;
        res.ok();
        assert_eq!(res.header("x-cache"), Some(expected));
    }
    let text = scrape(&h).await;
    let label = r#"route="list""#;
    assert_histogram(&text, "chatgate_overhead_seconds", label, 3.0);
    assert_histogram(&text, "chatgate_request_duration_seconds", label, 3.0);
    let sum = |name: &str| sample(&text, &format!("{name}_sum{{{label}}}"));
    let overhead = sum("chatgate_overhead_seconds");
    let total = sum("chatgate_request_duration_seconds");
    assert!(overhead <= total, "overhead {overhead} > total {total}");
    let vendor = sample(
        &text,
        r#"chatgate_upstream_duration_seconds_sum{provider="chatbase"}"#,
    );
    assert!(
        overhead <= total - vendor + 1e-9,
        "the vendor call's {vendor} s is not the gateway's: overhead {overhead}, total {total}"
    );
    // The smallest bucket is below a millisecond, so a hit has somewhere to fall.
    let first = &buckets(&text, "chatgate_overhead_seconds", label)[0];
    assert!(first.0.parse::<f64>().unwrap() < 0.001, "{first:?}");
    h.stop().await;
}
