//! Hostile vendors and configs (issue #9) through the real server against the
//! emulator: every number a vendor sends is bounded before it is used, its text
//! never carries the provider key or forges a log line, its timestamps are
//! RFC 3339 or refused, one request's vendor calls are bounded, and a config
//! that can serve no one is refused.
#![allow(clippy::unwrap_used, missing_docs, clippy::disallowed_methods)]

mod common;
#[path = "common/process.rs"]
mod process;

use std::process::{Command, Stdio};
use std::time::Duration;

use chatgate::config;
use chatgate_emulator::{FaultKind, Vendor, CHATBASE_KEY};
use common::{fault, fault_n, status, tune_provider, Harness, Resp};
use process::{bearer, emulator, free_port, http, try_http, wait_ready, Proc, BIN};

const LIST: &str = "/api/v1/get-conversations";

fn retry_after(r: &Resp) -> u64 {
    r.header("retry-after")
        .unwrap_or_else(|| panic!("no Retry-After on a {}", r.status))
        .parse()
        .unwrap()
}

/// Adds `lines` to the demo TOML's `[server]` table.
fn tune_server(toml: String, lines: &str) -> String {
    toml.replace("[server]\n", &format!("[server]\n{lines}\n"))
}

#[actix_rt::test]
async fn retry_after_beyond_an_instant_is_capped_not_a_crash() {
    let h = Harness::start_with(|t| tune_provider(t, "chatbase", "max_retries = 0")).await;
    for (i, huge) in [
        "10000000000000000000",
        "18446744073709551615",
        "9223372036854775807",
        "99999999999999999999999999",
    ]
    .into_iter()
    .enumerate()
    {
        h.state()
            .add_fault(fault_n(Vendor::Chatbase, Some(1), status(429, Some(huge))));
        let r = h
            .get(&format!("{LIST}?chatbotId=support&page={}", i + 1))
            .await;
        r.expect_error(429, "upstream_rate_limited");
        let wait = retry_after(&r);
        assert!(wait <= 300, "Retry-After {wait} for a vendor's {huge}");
        // The worker is alive: the next request is answered (from the pause).
        let again = h
            .get(&format!("{LIST}?chatbotId=sales&page={}", i + 1))
            .await;
        again.ok();
        // Clear the pause for the next round.
        let toml = tune_provider(
            common::unlimited(chatgate::demo::config_toml(
                &h.emu,
                "127.0.0.1:0".parse().unwrap(),
            )),
            "chatbase",
            &format!("max_retries = 0\nmax_pause_secs = {}", 300 - i),
        );
        h.gateway.state.apply(config::from_toml_str(&toml).unwrap());
    }
    h.stop().await;
}

#[actix_rt::test]
async fn a_year_long_pause_is_capped_by_max_pause_secs_and_a_reload_clears_it() {
    let h = Harness::start_with(|t| {
        tune_provider(t, "chatbase", "max_retries = 0\nmax_pause_secs = 120")
    })
    .await;
    h.state().add_fault(fault_n(
        Vendor::Chatbase,
        Some(1),
        status(429, Some("31536000")),
    ));
    let r = h.get(&format!("{LIST}?chatbotId=support")).await;
    r.expect_error(429, "upstream_rate_limited");
    assert!(retry_after(&r) <= 120, "{}", retry_after(&r));
    // The pause holds every bot on the account, dual-read included, with the
    // capped window.
    let calls = h.calls(Vendor::Chatbase);
    let paused = h.get(&format!("{LIST}?chatbotId=migrating")).await;
    paused.expect_error(429, "upstream_rate_limited");
    assert!(retry_after(&paused) <= 120);
    assert_eq!(h.calls(Vendor::Chatbase), calls, "no call while paused");

    // An HTTP-date in year 9999 is capped the same way.
    let h2 = Harness::start_with(|t| {
        tune_provider(t, "chatbase", "max_retries = 0\nmax_pause_secs = 60")
    })
    .await;
    h2.state().add_fault(fault_n(
        Vendor::Chatbase,
        Some(1),
        status(429, Some("Fri, 31 Dec 9999 23:59:59 GMT")),
    ));
    let r = h2.get(&format!("{LIST}?chatbotId=support")).await;
    r.expect_error(429, "upstream_rate_limited");
    assert!(retry_after(&r) <= 60, "{}", retry_after(&r));
    h2.stop().await;

    // SIGHUP's path (a reload) with a smaller bound re-caps the pause at once.
    let toml = tune_provider(
        common::unlimited(chatgate::demo::config_toml(
            &h.emu,
            "127.0.0.1:0".parse().unwrap(),
        )),
        "chatbase",
        "max_retries = 0\nmax_pause_secs = 1",
    );
    h.gateway.state.apply(config::from_toml_str(&toml).unwrap());
    h.get(&format!("{LIST}?chatbotId=support&page=2"))
        .await
        .ok();
    h.stop().await;
}

#[actix_rt::test]
async fn a_key_straddling_the_message_cut_is_redacted_in_the_answer() {
    let h = Harness::start_with(|t| tune_provider(t, "chatbase", "max_retries = 0")).await;
    for pad in [0, 280, 290, 295, 299, 310] {
        let message = format!("{}{CHATBASE_KEY} is not a valid key", "x".repeat(pad));
        let body = serde_json::json!({ "message": message }).to_string();
        h.state().add_fault(fault_n(
            Vendor::Chatbase,
            Some(1),
            FaultKind::Status {
                status: 400,
                body: Some(body),
                retry_after: None,
            },
        ));
        let r = h
            .get(&format!("{LIST}?chatbotId=support&page={}", pad + 1))
            .await;
        let e = r.expect_error(502, "upstream_error");
        // What the vendor said, after the gateway's own words (which name the
        // provider, itself an 8-character piece of the emulator's key).
        let message = e["message"].as_str().unwrap();
        let text = message.split_once("(HTTP 400): ").unwrap().1;
        if pad + "[redacted]".len() <= 300 {
            assert!(text.contains("[redacted]"), "pad {pad}: {text}");
        }
        for start in 0..=CHATBASE_KEY.len() - 8 {
            let fragment = &CHATBASE_KEY[start..start + 8];
            assert!(!text.contains(fragment), "pad {pad}: {fragment} in {text}");
        }
    }
    h.stop().await;
}

#[actix_rt::test]
async fn timestamps_outside_four_digit_years_are_a_vendor_fault() {
    let h = Harness::start_with(|t| tune_provider(t, "chatbase", "max_retries = 0")).await;
    for (i, when) in ["9999-12-31T23:59:59-23:59", "0000-01-01T00:00:00+23:59"]
        .into_iter()
        .enumerate()
    {
        let body = serde_json::json!({"data": [{
            "id": "c1", "chatbot_id": "cb", "created_at": when, "source": "API",
            "messages": [{"role": "user", "content": "hi"}]
        }]})
        .to_string();
        h.state().add_fault(fault_n(
            Vendor::Chatbase,
            Some(1),
            FaultKind::Status {
                status: 200,
                body: Some(body),
                retry_after: None,
            },
        ));
        let r = h
            .get(&format!("{LIST}?chatbotId=support&page={}", i + 1))
            .await;
        let e = r.expect_error(502, "upstream_error");
        assert!(e["message"].as_str().unwrap().contains("created_at"), "{e}");
    }
    h.stop().await;
}

#[actix_rt::test]
async fn a_deep_dual_read_page_costs_at_most_the_call_budget() {
    let h = Harness::start_with(|t| tune_server(t, "max_vendor_calls_per_request = 6")).await;
    let deep = format!("{LIST}?chatbotId=migrating&page=100000&size=100");

    // Without the cache, no chunk can be reused: refused before any call.
    let before = h.calls(Vendor::Chatbase) + h.calls(Vendor::Chatling);
    let r = h
        .request(
            awc::http::Method::GET,
            &deep,
            Some(chatgate::demo::DEMO_KEY),
            &[("Cache-Control", "no-cache")],
            None,
        )
        .await;
    let e = r.expect_error(502, "upstream_error");
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("max_vendor_calls_per_request"),
        "{e}"
    );
    assert_eq!(
        h.calls(Vendor::Chatbase) + h.calls(Vendor::Chatling),
        before
    );

    // Through the cache, the walk stops at the budget (the emulator's data is
    // larger than six vendor pages): either an answer or the documented error,
    // never more calls.
    let _ = h.get(&deep).await;
    let spent = h.calls(Vendor::Chatbase) + h.calls(Vendor::Chatling) - before;
    assert!(spent <= 6, "{spent} vendor calls for one request");
    h.stop().await;
}

#[actix_rt::test]
async fn a_failing_vendor_cannot_spend_more_than_the_budget() {
    let h = Harness::start_with(|t| {
        tune_provider(
            tune_server(t, "max_vendor_calls_per_request = 2"),
            "chatbase",
            "max_retries = 10\ncircuit_failure_threshold = 100",
        )
    })
    .await;
    h.state()
        .add_fault(fault(Vendor::Chatbase, status(503, None)));
    let r = h.get(&format!("{LIST}?chatbotId=support")).await;
    assert_eq!(
        r.status.as_u16(),
        502,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    assert!(
        h.calls(Vendor::Chatbase) <= 2,
        "{}",
        h.calls(Vendor::Chatbase)
    );
    h.stop().await;
}

#[test]
fn a_config_that_can_serve_no_one_is_refused() {
    let empty = config::from_toml_str("").unwrap_err().to_string();
    assert!(
        empty.contains("`bots`") && empty.contains("`clients`"),
        "{empty}"
    );
    let no_clients = config::from_toml_str(
        r#"
[providers.chatbase]
api_key = "k-0123456789"
[bots.support]
provider = "chatbase"
chatbot_id = "x"
"#,
    )
    .unwrap_err()
    .to_string();
    assert!(no_clients.contains("at least one client"), "{no_clients}");
}

#[test]
fn absurd_durations_in_the_config_are_refused_not_overflowed() {
    let base = r#"
[server]
request_timeout_ms = 9223372036854775807
[cache]
ttl_secs = 9223372036854775807
[providers.chatbase]
api_key = "k-0123456789"
timeout_ms = 9223372036854775807
max_pause_secs = 0
[bots.support]
provider = "chatbase"
chatbot_id = "x"
[clients.c]
key = "0123456789abcdef"
bots = ["*"]
"#;
    let e = config::from_toml_str(base).unwrap_err().to_string();
    for key in [
        "server.request_timeout_ms",
        "cache.ttl_secs",
        "providers.chatbase.timeout_ms",
        "providers.chatbase.max_pause_secs",
    ] {
        assert!(e.contains(key), "{key} not named in: {e}");
    }
}

#[actix_rt::test]
async fn a_reload_forgives_failed_logins_so_valid_keys_work_again() {
    let h = Harness::start_with(|t| {
        tune_server(t, "auth_failures_per_minute = 1\nauth_failure_burst = 2")
    })
    .await;
    for _ in 0..4 {
        let _ = h
            .get_as(
                Some("not-a-valid-key-at-all"),
                &format!("{LIST}?chatbotId=support"),
            )
            .await;
    }
    let blocked = h.get(&format!("{LIST}?chatbotId=support")).await;
    blocked.expect_error(429, "rate_limited");
    let toml = common::unlimited(chatgate::demo::config_toml(
        &h.emu,
        "127.0.0.1:0".parse().unwrap(),
    ));
    h.gateway.state.apply(config::from_toml_str(&toml).unwrap());
    h.get(&format!("{LIST}?chatbotId=support")).await.ok();
    h.stop().await;
}

/// A vendor error carrying a newline, a forged log line and an ESC sequence
/// reaches the text log as one escaped line.
#[test]
fn vendor_text_cannot_forge_a_log_line() {
    let (_emu, emu_port) = emulator();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chatgate.toml");
    let port = free_port();
    std::fs::write(
        &path,
        format!(
            r#"
[server]
bind = "127.0.0.1:{port}"
workers = 1
[providers.chatbase]
base_url = "http://127.0.0.1:{emu_port}/chatbase/api/v1"
api_key = "emu-chatbase-secret"
max_retries = 0
[bots.support]
provider = "chatbase"
chatbot_id = "cb-support"
[clients.ops]
key = "0123456789abcdef0123"
bots = ["*"]
"#
        ),
    )
    .unwrap();
    let log = dir.path().join("stderr.log");
    let _gw = Proc(
        Command::new(BIN)
            .args(["serve", "--config"])
            .arg(&path)
            .env("CHATGATE_LOG_FORMAT", "text")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    wait_ready(port, Duration::from_secs(30));
    let forged = "bad\n2026-01-01T00:00:00.000000Z  INFO chatgate: FORGED admin login\u{1b}[31mred";
    let fault = serde_json::json!({
        "vendor": "chatbase",
        "kind": {"type": "status", "status": 500,
                 "body": serde_json::json!({"message": forged}).to_string()}
    })
    .to_string();
    let headers = [("Content-Type".to_owned(), "application/json".to_owned())];
    let (s, _) = http(
        emu_port,
        "POST",
        "/_emulator/faults",
        &headers,
        Some(&fault),
    );
    assert_eq!(s, 204);
    let reply = try_http(
        port,
        "GET",
        &format!("{LIST}?chatbotId=support"),
        &bearer("0123456789abcdef0123"),
        None,
    )
    .unwrap();
    assert_eq!(reply.status, 502, "{}", reply.body);
    assert!(!reply.body.contains('\u{1b}'), "{}", reply.body);
    // The line is written after the answer: poll for it (30 s: a hung test).
    let mut text = String::new();
    let polling = std::time::Instant::now();
    while polling.elapsed() < Duration::from_secs(30) {
        text = std::fs::read_to_string(&log).unwrap();
        if text.contains("FORGED") {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(text.contains("FORGED"), "the refusal is logged: {text}");
    for line in text.lines() {
        assert!(
            !line.contains("INFO chatgate: FORGED") || !line.starts_with("2026-01-01"),
            "{text}"
        );
        assert!(
            !line.starts_with("2026-01-01T00:00:00.000000Z"),
            "forged line: {text}"
        );
        assert!(!line.contains('\u{1b}'), "raw ESC in the log: {line:?}");
    }
}

/// The gateway's peak resident memory (`VmHWM`), in bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kib * 1024
}

/// A realistic vendor page of about `bytes`: 100 conversations of Markdown
/// answers with quotes, newlines and non-ASCII text.
fn large_chatbase_page(bytes: usize) -> String {
    let text: String = "Here is **an answer** with \"quotes\", a newline\n and ünïcode. "
        .repeat(5)
        .chars()
        .take(300)
        .collect();
    let per_conversation = bytes / 100;
    let messages = (per_conversation / (text.len() + 40)).max(1);
    let data: Vec<_> = (0..100)
        .map(|i| {
            let msgs: Vec<_> = (0..messages)
                .map(|j| {
                    let role = if j % 2 == 0 { "user" } else { "assistant" };
                    serde_json::json!({"role": role, "content": text})
                })
                .collect();
            serde_json::json!({"id": format!("c{i}"), "chatbot_id": "cb",
                "created_at": "2024-01-01T00:00:00Z", "source": "API", "messages": msgs})
        })
        .collect();
    serde_json::json!({ "data": data }).to_string()
}

/// Ten concurrent ~8 MB vendor answers stay within the documented budget:
/// base + `cache.max_bytes` + 8 × `server.max_inflight_body_bytes`. Without the
/// in-flight bound they would all be parsed at once (≈ 10 × 8 × 5 MB).
#[test]
fn concurrent_large_vendor_bodies_stay_within_the_memory_budget() {
    const MIB: u64 = 1024 * 1024;
    let inflight = 16 * MIB;
    let cache = 8 * MIB;
    let (_emu, emu_port) = emulator();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chatgate.toml");
    let port = free_port();
    std::fs::write(
        &path,
        format!(
            r#"
[server]
bind = "127.0.0.1:{port}"
workers = 2
max_inflight_body_bytes = {inflight}
request_timeout_ms = 600000
[cache]
max_bytes = {cache}
[providers.chatbase]
base_url = "http://127.0.0.1:{emu_port}/chatbase/api/v1"
api_key = "emu-chatbase-secret"
max_retries = 0
timeout_ms = 600000
max_body_bytes = {inflight}
max_requests_per_second = 10000
[bots.support]
provider = "chatbase"
chatbot_id = "cb-support"
[clients.ops]
key = "0123456789abcdef0123"
bots = ["*"]
requests_per_minute = 1000000
burst = 100000
"#
        ),
    )
    .unwrap();
    let gw = Proc(
        Command::new(BIN)
            .args(["serve", "--config"])
            .arg(&path)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_ready(port, Duration::from_secs(30));
    let body = large_chatbase_page(8_000_000);
    assert!(body.len() as u64 <= inflight, "{}", body.len());
    let fault = serde_json::json!({
        "vendor": "chatbase",
        "kind": {"type": "status", "status": 200, "body": body}
    })
    .to_string();
    let headers = [("Content-Type".to_owned(), "application/json".to_owned())];
    let (s, text) = http(
        emu_port,
        "POST",
        "/_emulator/faults",
        &headers,
        Some(&fault),
    );
    assert_eq!(s, 204, "{text}");
    let clients: Vec<_> = (0..10)
        .map(|i| {
            std::thread::spawn(move || {
                try_http(
                    port,
                    "GET",
                    &format!("{LIST}?chatbotId=support&size=100&page={}", i + 1),
                    &bearer("0123456789abcdef0123"),
                    None,
                )
                .map(|r| r.status)
            })
        })
        .collect();
    for c in clients {
        assert_eq!(c.join().unwrap().unwrap(), 200);
    }
    let peak = peak_rss(gw.0.id());
    let budget = 64 * MIB + cache + 8 * inflight;
    assert!(
        peak <= budget,
        "peak RSS {} MiB over the documented budget {} MiB",
        peak / MIB,
        budget / MIB
    );
}
