//! The response cache (SPEC §5, issue #4) through the real server: MISS then HIT,
//! one entry per normalized query, `no-cache`, request coalescing (successes and
//! failures), stale-if-error, authorization before the cache, keys that keep apart
//! what differs, the cache switched off, and the detail endpoint.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use awc::http::Method;
use chatgate::clock::ManualClock;
use chatgate::demo::{DEMO_KEY, SCOPED_KEY};
use chatgate_emulator::{self as emulator, FaultKind, Vendor};
use common::{chatbase_at, fault, status, tune_provider, with_cache, x_cache, Harness, Resp};
use futures_util::future::join_all;

const LIST: &str = "/api/v1/get-conversations";

/// One vendor call per request and each fault seen as itself: no retries, and a
/// circuit breaker that never opens during a test.
const ONE_CALL_EACH: &str = "max_retries = 0\ncircuit_failure_threshold = 1000";

/// A GET with `Cache-Control: <value>` and the demo key.
async fn get_with_cache_control(h: &Harness, q: &str, value: &str) -> Resp {
    h.request(
        Method::GET,
        q,
        Some(DEMO_KEY),
        &[("Cache-Control", value)],
        None,
    )
    .await
}

#[actix_rt::test]
async fn a_repeat_is_a_hit_with_the_same_bytes_and_no_vendor_call() {
    let h = Harness::start().await;
    let q = format!("{LIST}?chatbotId=support&size=3");
    let first = h.get(&q).await;
    first.ok();
    assert_eq!(x_cache(&first), "MISS");
    assert_eq!(first.header("x-provider"), Some("chatbase"));
    assert_eq!(h.calls(Vendor::Chatbase), 1);

    let second = h.get(&q).await;
    second.ok();
    assert_eq!(x_cache(&second), "HIT");
    assert_eq!(second.body, first.body, "a hit serves the stored bytes");
    assert_eq!(second.header("x-provider"), Some("chatbase"));
    assert!(second
        .header("content-type")
        .unwrap()
        .starts_with("application/json"));
    assert_eq!(h.calls(Vendor::Chatbase), 1, "a hit makes no vendor call");
    h.stop().await;
}

#[actix_rt::test]
async fn a_reload_keeps_the_cached_answers_of_bots_it_leaves_unchanged() {
    let h = Harness::start().await;
    let q = format!("{LIST}?chatbotId=support&size=3");
    let first = h.get(&q).await;
    assert_eq!(x_cache(&first), "MISS");
    let toml = common::unlimited(chatgate::demo::config_toml(
        &h.emu,
        "127.0.0.1:0".parse().unwrap(),
    ));
    h.gateway
        .state
        .apply(chatgate::config::from_toml_str(&toml).unwrap());
    let again = h.get(&q).await;
    assert_eq!(
        x_cache(&again),
        "HIT",
        "the reloaded runtime builds equal keys"
    );
    assert_eq!(again.body, first.body);
    assert_eq!(h.calls(Vendor::Chatbase), 1);
    h.stop().await;
}

#[actix_rt::test]
async fn equivalent_spellings_of_one_query_share_one_entry() {
    let h = Harness::start().await;
    let first = h
        .get(&format!(
            "{LIST}?chatbotId=sales&filteredSources=WhatsApp,api"
        ))
        .await;
    first.ok();
    assert_eq!(x_cache(&first), "MISS");
    assert_eq!(h.calls(Vendor::Chatzuri), 1);
    let variants = [
        // Another order, case and spacing; the `agentId` alias.
        "agentId=sales&filteredSources=API,%20whatsapp",
        // A duplicate source; the defaults written out.
        "chatbotId=sales&filteredSources=whatsapp,API,WhatsApp&page=1&size=10",
        // Both names of the bot, agreeing.
        "chatbotId=sales&agentId=sales&filteredSources=api,whatsapp",
        // Another parameter order; an unknown parameter (ignored).
        "filteredSources=%20api%20,WHATSAPP&size=10&utm=x&chatbotId=sales",
    ];
    for v in variants {
        let r = h.get(&format!("{LIST}?{v}")).await;
        r.ok();
        assert_eq!(x_cache(&r), "HIT", "{v}");
        assert_eq!(r.body, first.body, "{v}");
    }
    // The POST dialect of the same query reads the same entry.
    let post = h
        .post(
            LIST,
            r#"{"chatbotId":"sales","filteredSources":["whatsapp","Api"],"page":"1","size":10}"#,
        )
        .await;
    post.ok();
    assert_eq!(x_cache(&post), "HIT");
    assert_eq!(post.body, first.body);
    assert_eq!(h.calls(Vendor::Chatzuri), 1, "one vendor call for all");

    // And the other way round: an entry stored by a POST answers a GET.
    let post = h
        .post(LIST, r#"{"agentId":"sales","page":2,"size":"4"}"#)
        .await;
    post.ok();
    assert_eq!(x_cache(&post), "MISS");
    let get = h
        .get(&format!("{LIST}?chatbotId=sales&size=4&page=2"))
        .await;
    get.ok();
    assert_eq!(x_cache(&get), "HIT");
    assert_eq!(get.body, post.body);
    // An empty source filter is no filter.
    let unfiltered = h.get(&format!("{LIST}?chatbotId=sales")).await;
    assert_eq!(x_cache(&unfiltered), "MISS");
    let empty = h
        .get(&format!("{LIST}?chatbotId=sales&filteredSources="))
        .await;
    assert_eq!(x_cache(&empty), "HIT");
    assert_eq!(empty.body, unfiltered.body);
    assert_eq!(h.calls(Vendor::Chatzuri), 3);

    // `include=raw` in the query or in the POST body.
    let raw = h.get(&format!("{LIST}?chatbotId=sales&include=raw")).await;
    assert_eq!(x_cache(&raw), "MISS");
    for (path, body) in [
        (LIST.to_owned(), r#"{"chatbotId":"sales","include":"raw"}"#),
        (format!("{LIST}?include=raw"), r#"{"chatbotId":"sales"}"#),
    ] {
        let r = h.post(&path, body).await;
        r.ok();
        assert_eq!(x_cache(&r), "HIT", "{path} {body}");
        assert_eq!(r.body, raw.body);
    }
    assert_eq!(h.calls(Vendor::Chatzuri), 4);
    h.stop().await;
}

#[actix_rt::test]
async fn no_cache_skips_the_read_but_still_stores() {
    let h = Harness::start().await;
    let q = format!("{LIST}?chatbotId=support&size=2");
    let bypass = get_with_cache_control(&h, &q, "no-cache").await;
    bypass.ok();
    assert_eq!(x_cache(&bypass), "BYPASS");
    assert_eq!(bypass.header("x-provider"), Some("chatbase"));
    assert_eq!(h.calls(Vendor::Chatbase), 1);

    let hit = h.get(&q).await;
    assert_eq!(x_cache(&hit), "HIT", "the bypassing answer was stored");
    assert_eq!(hit.body, bypass.body);
    assert_eq!(h.calls(Vendor::Chatbase), 1);

    // A fresh entry does not stop a no-cache request from reaching the vendor
    // (the directive is found among others, in any case).
    let again = get_with_cache_control(&h, &q, "max-age=0, No-Cache").await;
    again.ok();
    assert_eq!(x_cache(&again), "BYPASS");
    assert_eq!(h.calls(Vendor::Chatbase), 2);
    assert_eq!(x_cache(&h.get(&q).await), "HIT");
    assert_eq!(h.calls(Vendor::Chatbase), 2);
    // Other directives alone do not bypass.
    let other = get_with_cache_control(&h, &q, "max-age=60").await;
    assert_eq!(x_cache(&other), "HIT");
    assert_eq!(h.calls(Vendor::Chatbase), 2);
    h.stop().await;
}

#[actix_rt::test]
async fn fifty_concurrent_identical_misses_make_one_vendor_call() {
    let h = Harness::start().await;
    // The vendor is slow (seconds, where sending the requests takes
    // milliseconds), so every request arrives while the first is in flight.
    h.state()
        .add_fault(fault(Vendor::Chatbase, FaultKind::Delay { ms: 3000 }));
    let q = format!("{LIST}?chatbotId=support&size=5&page=3");
    let responses = join_all((0..50).map(|_| h.get(&q))).await;
    assert_eq!(h.calls(Vendor::Chatbase), 1, "coalesced into one call");
    let body = &responses[0].body;
    for r in &responses {
        r.ok();
        assert_eq!(&r.body, body, "every caller gets the same bytes");
        assert_eq!(x_cache(r), "MISS", "a waiter on the vendor is a miss");
        assert_eq!(r.header("x-provider"), Some("chatbase"));
    }
    h.state().clear_faults();
    let after = h.get(&q).await;
    assert_eq!(x_cache(&after), "HIT");
    assert_eq!(&after.body, body);
    assert_eq!(h.calls(Vendor::Chatbase), 1);
    h.stop().await;
}

/// A raw HTTP "vendor" that answers every request with a Chatbase-style 500 after
/// `delay`, counting the requests it receives.
fn slow_failing_vendor(delay: Duration) -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let seen = seen.clone();
            std::thread::spawn(move || {
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                seen.fetch_add(1, Ordering::SeqCst);
                std::thread::sleep(delay);
                let body = r#"{"message":"Internal Server Error"}"#;
                let _ = write!(
                    stream,
                    "HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\n\
                     Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            });
        }
    });
    (port, count)
}

#[actix_rt::test]
async fn concurrent_misses_while_the_vendor_fails_share_one_call_and_one_error() {
    // The emulator cannot delay an error status (one fault per request), so a raw
    // vendor answers 500 after 3 s: every request arrives while it is in flight.
    let (port, vendor_calls) = slow_failing_vendor(Duration::from_secs(3));
    let h = Harness::start_with(|t| {
        let t = tune_provider(t, "chatbase", ONE_CALL_EACH);
        chatbase_at(t, port)
    })
    .await;
    let q = format!("{LIST}?chatbotId=support");
    let responses = join_all((0..20).map(|_| h.get(&q))).await;
    assert_eq!(
        vendor_calls.load(Ordering::SeqCst),
        1,
        "coalesced into one call"
    );
    let first = responses[0].expect_error(502, "upstream_error");
    assert_eq!(first["provider"], "chatbase");
    assert_eq!(first["upstream_status"], 500);
    for r in &responses {
        let body = r.expect_error(502, "upstream_error");
        assert_eq!(body["message"], first["message"], "the same error for all");
        assert_eq!(body["upstream_status"], 500);
        assert_eq!(r.header("x-cache"), None, "errors carry no X-Cache");
    }
    // The error was not cached: the next request asks the vendor again.
    h.get(&q).await.expect_error(502, "upstream_error");
    assert_eq!(vendor_calls.load(Ordering::SeqCst), 2);
    h.stop().await;
}

#[actix_rt::test]
async fn concurrent_misses_that_time_out_share_one_call_and_cache_nothing() {
    // A 3 s timeout, so every request arrives while the one call is in flight.
    let h = Harness::start_with(|t| {
        tune_provider(
            t,
            "chatbase",
            &format!("{ONE_CALL_EACH}\ntimeout_ms = 3000"),
        )
    })
    .await;
    h.state()
        .add_fault(fault(Vendor::Chatbase, FaultKind::Delay { ms: 60_000 }));
    let q = format!("{LIST}?chatbotId=support&page=2");
    let responses = join_all((0..20).map(|_| h.get(&q))).await;
    assert_eq!(h.calls(Vendor::Chatbase), 1, "coalesced into one call");
    let messages: Vec<_> = responses
        .iter()
        .map(|r| r.expect_error(504, "upstream_timeout")["message"].clone())
        .collect();
    assert!(messages.iter().all(|m| *m == messages[0]), "{messages:?}");
    h.state().clear_faults();
    let next = h.get(&q).await;
    next.ok();
    assert_eq!(x_cache(&next), "MISS", "the failure was not stored");
    assert_eq!(h.calls(Vendor::Chatbase), 2);
    h.stop().await;
}

#[actix_rt::test]
async fn a_failing_vendor_is_covered_by_a_stale_answer_within_the_window() {
    // The cache's lifetimes run on a manual clock: the test moves it past the
    // ttl and the stale window instead of sleeping, so however slow the machine,
    // every check happens exactly where it is meant to.
    let clock = ManualClock::new();
    let h = Harness::start_with_clock(&clock, |t| {
        let t = tune_provider(t, "chatbase", &format!("{ONE_CALL_EACH}\ntimeout_ms = 300"));
        with_cache(t, "ttl_secs = 60\nstale_if_error_secs = 120")
    })
    .await;
    let q = format!("{LIST}?chatbotId=support&size=4");
    let warm = h.get(&q).await;
    warm.ok();
    assert_eq!(x_cache(&warm), "MISS");
    assert_eq!(x_cache(&h.get(&q).await), "HIT", "fresh within the ttl");
    assert_eq!(h.calls(Vendor::Chatbase), 1);

    // A second entry, to see an expired entry refreshed while the vendor is well.
    let other = format!("{LIST}?chatbotId=support&size=5");
    assert_eq!(x_cache(&h.get(&other).await), "MISS");
    assert_eq!(h.calls(Vendor::Chatbase), 2);

    clock.advance(Duration::from_secs(60));
    // At the ttl a healthy vendor is asked again (and the answer stored anew).
    assert_eq!(
        x_cache(&h.get(&other).await),
        "MISS",
        "expired after ttl_secs"
    );
    assert_eq!(h.calls(Vendor::Chatbase), 3);
    assert_eq!(x_cache(&h.get(&other).await), "HIT");
    assert_eq!(h.calls(Vendor::Chatbase), 3);
    // For `q`, each case below faults the vendor first.

    // The vendor answering "no" is not covered: the error passes through.
    h.state()
        .add_fault(fault(Vendor::Chatbase, status(404, None)));
    h.get(&q).await.expect_error(404, "not_found");
    h.state().clear_faults();
    h.state()
        .add_fault(fault(Vendor::Chatbase, status(401, None)));
    h.get(&q).await.expect_error(502, "upstream_auth_failed");
    h.state().clear_faults();

    // A failing or overloaded vendor is covered by the expired entry.
    let failures = [
        ("500", status(500, None)),
        ("503", status(503, None)),
        ("timeout", FaultKind::Delay { ms: 1000 }),
        ("truncated body", FaultKind::Truncated),
        ("dropped connection", FaultKind::Reset),
        ("malformed body", FaultKind::Malformed),
        ("429", status(429, Some("1"))),
    ];
    for (name, kind) in failures {
        h.state().clear_faults();
        h.state().add_fault(fault(Vendor::Chatbase, kind));
        let before = h.calls(Vendor::Chatbase);
        let r = h.get(&q).await;
        assert_eq!(
            r.status.as_u16(),
            200,
            "{name}: {}",
            String::from_utf8_lossy(&r.body)
        );
        assert_eq!(x_cache(&r), "STALE", "{name}");
        assert_eq!(r.body, warm.body, "{name}: the old body");
        assert_eq!(r.header("x-provider"), Some("chatbase"), "{name}");
        assert_eq!(
            h.calls(Vendor::Chatbase),
            before + 1,
            "{name}: the vendor was asked first"
        );
    }
    // To the last moment of the stale window the entry still stands in.
    h.state().clear_faults();
    h.state()
        .add_fault(fault(Vendor::Chatbase, status(500, None)));
    clock.advance(Duration::from_secs(120) - Duration::from_millis(1));
    let r = h.get(&q).await;
    assert_eq!(x_cache(&r), "STALE", "{}", String::from_utf8_lossy(&r.body));

    // At ttl + stale_if_error the entry is gone: the failure is the answer.
    // (The 429 above paused the vendor for 1 s of real time; the gateway may
    // wait that out before this call.)
    clock.advance(Duration::from_millis(1));
    let body = h.get(&q).await.expect_error(502, "upstream_error");
    assert_eq!(body["upstream_status"], 500);
    h.state().clear_faults();
    let fresh = h.get(&q).await;
    fresh.ok();
    assert_eq!(x_cache(&fresh), "MISS");
    h.stop().await;
}

#[actix_rt::test]
async fn authorization_is_checked_before_the_cache() {
    let h = Harness::start().await;
    let q = format!("{LIST}?chatbotId=sales&size=2");
    let warm = h.get(&q).await;
    warm.ok();
    assert_eq!(x_cache(&warm), "MISS");
    let calls = h.calls(Vendor::Chatzuri);

    let denied = h.get_as(Some(SCOPED_KEY), &q).await;
    denied.expect_error(403, "forbidden");
    assert_ne!(denied.body, warm.body);
    assert_eq!(denied.header("x-cache"), None);
    for key in [Some("not-a-key-of-anyone-at-all"), None] {
        let r = h.get_as(key, &q).await;
        r.expect_error(401, "unauthorized");
        assert_eq!(r.header("x-cache"), None);
    }
    // Same for the POST dialect.
    h.request(
        Method::POST,
        LIST,
        Some(SCOPED_KEY),
        &[],
        Some(r#"{"chatbotId":"sales","size":2}"#.into()),
    )
    .await
    .expect_error(403, "forbidden");
    assert_eq!(h.calls(Vendor::Chatzuri), calls);
    // The entry is intact for the client allowed to read it.
    let hit = h.get(&q).await;
    assert_eq!(x_cache(&hit), "HIT");
    assert_eq!(hit.body, warm.body);
    h.stop().await;
}

#[actix_rt::test]
async fn bots_sharing_a_vendor_bot_have_their_own_entries() {
    // `sales-eu` differs from `sales` by its name only (same provider, same
    // vendor bot); `sales-legacy` reads the same vendor bot through another
    // provider table.
    let h = Harness::start_with(|t| {
        format!("{t}\n[bots.sales-eu]\nprovider = \"chatzuri\"\nchatbot_id = \"cz-sales\"\n")
    })
    .await;
    let bots = ["sales", "sales-eu", "sales-legacy"];
    let mut firsts = Vec::new();
    for (n, bot) in bots.iter().enumerate() {
        let r = h.get(&format!("{LIST}?chatbotId={bot}&size=3")).await;
        let body = r.ok();
        assert_eq!(x_cache(&r), "MISS", "{bot}");
        assert_eq!(h.calls(Vendor::Chatzuri), n as u64 + 1, "{bot}");
        // The same vendor data, yet each body names its own bot.
        assert_eq!(common::ids(&body).len(), 3);
        assert!(
            body["data"]
                .as_array()
                .unwrap()
                .iter()
                .all(|c| c["chatbot_id"] == *bot),
            "{bot}: {body}"
        );
        firsts.push((body, r.body));
    }
    assert_eq!(common::ids(&firsts[0].0), common::ids(&firsts[1].0));
    assert_eq!(common::ids(&firsts[0].0), common::ids(&firsts[2].0));
    for (bot, (_, first)) in bots.iter().zip(&firsts) {
        let hit = h.get(&format!("{LIST}?chatbotId={bot}&size=3")).await;
        assert_eq!(x_cache(&hit), "HIT", "{bot}");
        assert_eq!(&hit.body, first, "{bot}");
    }
    assert_eq!(h.calls(Vendor::Chatzuri), 3);
    h.stop().await;
}

#[actix_rt::test]
async fn each_parameter_that_changes_the_answer_has_its_own_entry() {
    let h = Harness::start().await;
    let base = "chatbotId=support&size=3";
    let warm = h.get(&format!("{LIST}?{base}")).await;
    warm.ok();
    let variants = [
        "include=raw",
        "page=2",
        "size=4",
        "startDate=2024-03-01",
        "endDate=2024-08-31",
        "startDate=2024-03-01&endDate=2024-06-30",
        "filteredSources=whatsapp",
        "filteredSources=whatsapp,api",
    ];
    let mut bodies = vec![warm.body.clone()];
    for (i, v) in variants.iter().enumerate() {
        let q = if v.starts_with("size=") {
            format!("{LIST}?chatbotId=support&{v}")
        } else {
            format!("{LIST}?{base}&{v}")
        };
        let r = h.get(&q).await;
        r.ok();
        assert_eq!(x_cache(&r), "MISS", "{v} is its own entry");
        assert_eq!(h.calls(Vendor::Chatbase), 2 + i as u64, "{v}");
        bodies.push(r.body.clone());
        let again = h.get(&q).await;
        assert_eq!(x_cache(&again), "HIT", "{v}");
        assert_eq!(again.body, r.body, "{v}");
    }
    let raw = serde_json::from_slice::<serde_json::Value>(&bodies[1]).unwrap();
    assert!(
        raw["data"][0].get("raw").is_some(),
        "include=raw answered raw"
    );
    let plain = serde_json::from_slice::<serde_json::Value>(&bodies[0]).unwrap();
    assert!(plain["data"][0].get("raw").is_none());
    h.stop().await;
}

#[actix_rt::test]
async fn list_and_detail_entries_do_not_collide() {
    let h = Harness::start().await;
    let list = h.get(&format!("{LIST}?chatbotId=helpdesk&size=1")).await;
    let body = list.ok();
    assert_eq!(x_cache(&list), "MISS");
    let id = body["data"][0]["id"].as_str().unwrap().to_owned();
    let calls = h.calls(Vendor::Chatling);
    let detail_q = format!("/api/v1/conversations/{id}?chatbotId=helpdesk");
    let detail = h.get(&detail_q).await;
    let detail_body = detail.ok();
    assert_eq!(x_cache(&detail), "MISS");
    assert!(
        h.calls(Vendor::Chatling) > calls,
        "the detail asked the vendor"
    );
    assert_eq!(detail_body["data"]["id"], id.as_str());
    assert!(detail_body["data"].is_object(), "a detail body, not a list");
    let raw = h.get(&format!("{detail_q}&include=raw")).await;
    assert_eq!(x_cache(&raw), "MISS", "include=raw is its own detail entry");
    assert!(raw.ok()["data"].get("raw").is_some());
    // Each is then a hit on its own body.
    let calls = h.calls(Vendor::Chatling);
    let list_hit = h.get(&format!("{LIST}?chatbotId=helpdesk&size=1")).await;
    assert_eq!(x_cache(&list_hit), "HIT");
    assert_eq!(list_hit.body, list.body);
    let detail_hit = h.get(&detail_q).await;
    assert_eq!(x_cache(&detail_hit), "HIT");
    assert_eq!(detail_hit.body, detail.body);
    assert_eq!(h.calls(Vendor::Chatling), calls);
    h.stop().await;
}

#[actix_rt::test]
async fn a_disabled_cache_bypasses_every_request() {
    let h = Harness::start_with(|t| with_cache(t, "enabled = false")).await;
    let q = format!("{LIST}?chatbotId=support&size=2");
    for n in 1..=3 {
        let r = h.get(&q).await;
        r.ok();
        assert_eq!(x_cache(&r), "BYPASS");
        assert_eq!(r.header("x-provider"), Some("chatbase"));
        assert_eq!(
            h.calls(Vendor::Chatbase),
            n,
            "every request reaches the vendor"
        );
    }
    let id = h
        .state()
        .conversations(Vendor::Chatling, emulator::CHATLING_BOT)[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let q = format!("/api/v1/conversations/{id}?chatbotId=helpdesk");
    let first = h.get(&q).await;
    let calls = h.calls(Vendor::Chatling);
    let second = h.get(&q).await;
    assert_eq!(x_cache(&first), "BYPASS");
    assert_eq!(x_cache(&second), "BYPASS");
    assert_eq!(h.calls(Vendor::Chatling), 2 * calls);
    h.stop().await;
}

#[actix_rt::test]
async fn only_successful_answers_are_cached() {
    let h = Harness::start_with(|t| tune_provider(t, "chatbase", ONE_CALL_EACH)).await;
    let cases = [
        (status(404, None), 404, "not_found"),
        (status(500, None), 502, "upstream_error"),
        (status(429, Some("1")), 429, "upstream_rate_limited"),
        (FaultKind::WrongShape, 502, "upstream_error"),
    ];
    for (page, (kind, code_status, code)) in cases.into_iter().enumerate() {
        let q = format!("{LIST}?chatbotId=support&size=2&page={}", page + 1);
        h.state().clear_faults();
        h.state().add_fault(fault(Vendor::Chatbase, kind));
        let before = h.calls(Vendor::Chatbase);
        h.get(&q).await.expect_error(code_status, code);
        assert_eq!(h.calls(Vendor::Chatbase), before + 1);
        h.state().clear_faults();
        if code == "upstream_rate_limited" {
            // Let a vendor-ordered pause (SPEC §7) run out before asking again.
            actix_rt::time::sleep(Duration::from_millis(1100)).await;
        }
        let next = h.get(&q).await;
        next.ok();
        assert_eq!(x_cache(&next), "MISS", "{code}: nothing was stored");
        assert_eq!(h.calls(Vendor::Chatbase), before + 2, "{code}");
        assert_eq!(x_cache(&h.get(&q).await), "HIT", "{code}");
    }
    h.stop().await;
}

#[actix_rt::test]
async fn the_detail_endpoint_is_cached() {
    let h = Harness::start().await;
    let id = h
        .state()
        .conversations(Vendor::Chatling, emulator::CHATLING_BOT)[3]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let q = format!("/api/v1/conversations/{id}?chatbotId=helpdesk");
    let first = h.get(&q).await;
    first.ok();
    assert_eq!(x_cache(&first), "MISS");
    assert_eq!(first.header("x-provider"), Some("chatling"));
    let calls = h.calls(Vendor::Chatling);
    assert!(calls >= 2, "conversation and messages: {calls}");
    let second = h.get(&q).await;
    second.ok();
    assert_eq!(x_cache(&second), "HIT");
    assert_eq!(second.body, first.body);
    assert_eq!(second.header("x-provider"), Some("chatling"));
    assert_eq!(h.calls(Vendor::Chatling), calls, "no vendor call on a hit");
    let bypass = get_with_cache_control(&h, &q, "no-cache").await;
    assert_eq!(x_cache(&bypass), "BYPASS");
    assert_eq!(h.calls(Vendor::Chatling), 2 * calls);
    h.stop().await;
}
