//! Rate limits (SPEC §6, §2.7, issue #4) through the real server with the demo
//! config's real quotas: `RateLimit-*` headers, a client's burst then 429 with a
//! computed `Retry-After`, clients kept apart, the per-provider guard, and failed
//! authentications limited per remote IP.
//!
//! The limiters run on a manual clock, so every number is exact and none
//! depends on how fast the machine sends the requests; only the guard's spacing
//! test needs real time to pass.
#![allow(clippy::unwrap_used, missing_docs, clippy::disallowed_methods)]

mod common;

use std::time::{Duration, Instant};

use chatgate::clock::ManualClock;
use chatgate::demo::SCOPED_KEY;
use chatgate_emulator::Vendor;
use common::{tune_provider, Harness, Resp};
use futures_util::future::join_all;

const LIST: &str = "/api/v1/get-conversations";

/// A third client, allowed every bot, at 6 requests per minute (one per 10 s).
const SLOW_KEY: &str = "slow-client-key-0123456789";

fn add_slow_client(toml: String) -> String {
    format!(
        "{toml}\n[clients.slow]\nkey = \"{SLOW_KEY}\"\nbots = [\"*\"]\n\
         requests_per_minute = 6\nburst = 2\n"
    )
}

/// A header that must be a whole number.
fn number(r: &Resp, name: &str) -> u64 {
    let value = r
        .header(name)
        .unwrap_or_else(|| panic!("no {name} header (status {})", r.status));
    value
        .parse()
        .unwrap_or_else(|_| panic!("{name}: {value:?} is not a whole number"))
}

/// (`RateLimit-Limit`, `RateLimit-Remaining`, `RateLimit-Reset`).
fn rate_headers(r: &Resp) -> (u64, u64, u64) {
    (
        number(r, "ratelimit-limit"),
        number(r, "ratelimit-remaining"),
        number(r, "ratelimit-reset"),
    )
}

fn no_rate_headers(r: &Resp) {
    for name in [
        "ratelimit-limit",
        "ratelimit-remaining",
        "ratelimit-reset",
        "ratelimit-policy",
        "ratelimit",
    ] {
        assert_eq!(r.header(name), None, "{name} on a {}", r.status);
    }
}

#[actix_rt::test]
async fn every_authenticated_response_carries_ratelimit_headers() {
    let clock = ManualClock::new();
    let h = Harness::start_as_demo_with_clock(&clock, |t| t).await;
    // The demo client: burst 20 at 600/min (one cell per 100 ms).
    let r = h.get(&format!("{LIST}?chatbotId=support&size=1")).await;
    r.ok();
    assert_eq!(rate_headers(&r), (20, 19, 1));

    // `support-only`: burst 5 at 60/min (one cell per second); the clock stands
    // still, so the bucket drains one by one.
    let q = format!("{LIST}?chatbotId=support&size=2");
    let miss = h.get_as(Some(SCOPED_KEY), &q).await;
    miss.ok();
    assert_eq!(miss.header("x-cache"), Some("MISS"));
    let hit = h.get_as(Some(SCOPED_KEY), &q).await;
    hit.ok();
    assert_eq!(hit.header("x-cache"), Some("HIT"), "hits count too");
    let unknown_bot = h
        .get_as(Some(SCOPED_KEY), &format!("{LIST}?chatbotId=nobody"))
        .await;
    unknown_bot.expect_error(404, "bot_not_found");
    let bad_date = h
        .get_as(
            Some(SCOPED_KEY),
            &format!("{LIST}?chatbotId=support&startDate=2024-1-1"),
        )
        .await;
    bad_date.expect_error(400, "invalid_date");
    let forbidden = h
        .get_as(Some(SCOPED_KEY), &format!("{LIST}?chatbotId=sales"))
        .await;
    forbidden.expect_error(403, "forbidden");
    let seen: Vec<_> = [&miss, &hit, &unknown_bot, &bad_date, &forbidden]
        .iter()
        .map(|r| rate_headers(r))
        .collect();
    assert_eq!(
        seen,
        [(5, 4, 1), (5, 3, 2), (5, 2, 3), (5, 1, 4), (5, 0, 5)],
        "(limit, remaining, reset): one less per request, reset growing"
    );
    // Two seconds later two cells are back; this request takes one.
    clock.advance(Duration::from_secs(2));
    let later = h.get_as(Some(SCOPED_KEY), &q).await;
    later.ok();
    assert_eq!(rate_headers(&later), (5, 1, 4));

    // No client is known on a 401, and ops endpoints need no key.
    for key in [None, Some("not-a-key-of-anyone-at-all")] {
        let r = h.get_as(key, &format!("{LIST}?chatbotId=support")).await;
        r.expect_error(401, "unauthorized");
        no_rate_headers(&r);
    }
    let health = h.get_as(None, "/healthz").await;
    health.ok();
    no_rate_headers(&health);
    h.stop().await;
}

/// A client whose rate does not divide a minute: 7 a minute (a cell every
/// 8.571428571 s), a burst of 3, so a full bucket takes 25.7 s to refill.
const ODD_KEY: &str = "odd-client-key-0123456789";

fn add_odd_client(toml: String) -> String {
    format!(
        "{toml}\n[clients.odd]\nkey = \"{ODD_KEY}\"\nbots = [\"*\"]\n\
         requests_per_minute = 7\nburst = 3\n"
    )
}

/// A Structured Fields List of one Item, the string `client`, read back with
/// sfv's parser: its parameters as (key, integer) in order.
fn client_item(r: &Resp, name: &str) -> Vec<(String, i64)> {
    let value = r
        .header(name)
        .unwrap_or_else(|| panic!("no {name} header (status {})", r.status));
    let list: sfv::List = sfv::Parser::new(value)
        .parse()
        .unwrap_or_else(|e| panic!("{name}: {value:?} is not a Structured Fields List: {e}"));
    let [sfv::ListEntry::Item(item)] = list.as_slice() else {
        panic!("{name}: {value:?} is not a List of one Item");
    };
    assert_eq!(
        item.bare_item.as_string().map(|s| s.as_str()),
        Some("client"),
        "{name}: {value:?}"
    );
    item.params
        .iter()
        .map(|(k, v)| {
            let n = v
                .as_integer()
                .unwrap_or_else(|| panic!("{name}: {k} is not an Integer"));
            (k.as_str().to_owned(), i64::from(n))
        })
        .collect()
}

/// `RateLimit-Policy` and `RateLimit` as ((q, w), (r, t)), checking their
/// parameters are exactly these.
fn structured(r: &Resp) -> ((i64, i64), (i64, i64)) {
    let policy = client_item(r, "ratelimit-policy");
    let current = client_item(r, "ratelimit");
    let keys = |params: &[(String, i64)]| params.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>();
    assert_eq!(keys(&policy), ["q", "w"]);
    assert_eq!(keys(&current), ["r", "t"]);
    ((policy[0].1, policy[1].1), (current[0].1, current[1].1))
}

/// The older headers' numbers, as the current draft's (q, r, t).
fn older_as_structured(r: &Resp) -> (i64, i64, i64) {
    let (limit, remaining, reset) = rate_headers(r);
    (limit as i64, remaining as i64, reset as i64)
}

#[actix_rt::test]
async fn structured_ratelimit_fields_parse_and_say_what_the_older_headers_say() {
    let clock = ManualClock::new();
    let h = Harness::start_as_demo_with_clock(&clock, add_odd_client).await;
    let q = format!("{LIST}?chatbotId=support&size=1");

    // `support-only`: burst 5 at 60/min, so an empty bucket fills in 5 s.
    let first = h.get_as(Some(SCOPED_KEY), &q).await;
    first.ok();
    assert_eq!(structured(&first), ((5, 5), (4, 1)));
    // A hit, an error, all the same numbers as the older headers.
    let hit = h.get_as(Some(SCOPED_KEY), &q).await;
    let unknown = h
        .get_as(Some(SCOPED_KEY), &format!("{LIST}?chatbotId=nobody"))
        .await;
    unknown.expect_error(404, "bot_not_found");
    for r in [&first, &hit, &unknown] {
        let ((q, w), (rem, t)) = structured(r);
        assert_eq!((q, rem, t), older_as_structured(r));
        assert_eq!(w, 5);
    }
    assert_eq!(structured(&unknown), ((5, 5), (2, 3)));
    // Spent: r = 0 and t the whole refill; Retry-After the next cell.
    for _ in 0..2 {
        h.get_as(Some(SCOPED_KEY), &q).await.ok();
    }
    let refused = h.get_as(Some(SCOPED_KEY), &q).await;
    refused.expect_error(429, "rate_limited");
    assert_eq!(structured(&refused), ((5, 5), (0, 5)));
    assert_eq!(number(&refused, "retry-after"), 1);

    // 7/min with a burst of 3: w = 3 × 8.571428571 s = 25.7 s, rounded up.
    let odd = h.get_as(Some(ODD_KEY), &q).await;
    odd.ok();
    assert_eq!(structured(&odd), ((3, 26), (2, 9)));
    assert_eq!(older_as_structured(&odd), (3, 2, 9));

    // No key, no client: none of the five headers.
    let anonymous = h.get_as(None, &q).await;
    anonymous.expect_error(401, "unauthorized");
    for name in ["ratelimit-policy", "ratelimit"] {
        assert_eq!(anonymous.header(name), None);
    }
    h.stop().await;
}

#[actix_rt::test]
async fn a_spent_burst_is_429_with_a_retry_after_from_the_clients_rate() {
    let clock = ManualClock::new();
    let h = Harness::start_as_demo_with_clock(&clock, add_slow_client).await;
    let q = format!("{LIST}?chatbotId=support&size=1");
    for n in 0..5 {
        let r = h.get_as(Some(SCOPED_KEY), &q).await;
        r.ok();
        assert_eq!(number(&r, "ratelimit-remaining"), 4 - n);
    }
    let calls = h.calls(Vendor::Chatbase);
    let refused = h.get_as(Some(SCOPED_KEY), &q).await;
    let body = refused.expect_error(429, "rate_limited");
    assert!(body.get("provider").is_none(), "{body}");
    assert!(body.get("upstream_status").is_none(), "{body}");
    // 60/min: the next cell is a second away.
    let fast_wait = number(&refused, "retry-after");
    assert_eq!(fast_wait, 1);
    assert_eq!(number(&refused, "ratelimit-remaining"), 0);
    assert_eq!(number(&refused, "ratelimit-limit"), 5);
    // Until full: the wait for the next cell plus 4 more cells of 1 s.
    assert_eq!(number(&refused, "ratelimit-reset"), 5);
    assert_eq!(
        h.calls(Vendor::Chatbase),
        calls,
        "a refused request costs nothing"
    );

    // A client at 6/min (one cell per 10 s) is told to wait 10 s: the value
    // comes from the client's own rate, not a constant.
    for _ in 0..2 {
        h.get_as(Some(SLOW_KEY), &q).await.ok();
    }
    let refused = h.get_as(Some(SLOW_KEY), &q).await;
    refused.expect_error(429, "rate_limited");
    let slow_wait = number(&refused, "retry-after");
    assert_eq!(slow_wait, 10);
    assert_ne!(slow_wait, fast_wait);
    assert_eq!(number(&refused, "ratelimit-limit"), 2);

    // Other clients are unaffected.
    let other = h.get(&q).await;
    other.ok();
    assert_eq!(number(&other, "ratelimit-remaining"), 19);
    // And the limited client is still limited, until its Retry-After has passed.
    h.get_as(Some(SCOPED_KEY), &q)
        .await
        .expect_error(429, "rate_limited");
    clock.advance(Duration::from_secs(fast_wait));
    let again = h.get_as(Some(SCOPED_KEY), &q).await;
    again.ok();
    assert_eq!(number(&again, "ratelimit-remaining"), 0);
    h.stop().await;
}

#[actix_rt::test]
async fn the_provider_guard_refuses_what_it_cannot_fit_in_the_timeout() {
    // The guard's clock stands still: no slot comes back while the requests
    // arrive, however long they take.
    let clock = ManualClock::new();
    let h = Harness::start_as_demo_with_clock(&clock, |t| {
        tune_provider(
            t,
            "chatbase",
            "max_requests_per_second = 2\ntimeout_ms = 400",
        )
    })
    .await;
    // Distinct pages, so the cache cannot coalesce them.
    let queries: Vec<String> = (1..=12)
        .map(|page| format!("{LIST}?chatbotId=support&size=1&page={page}"))
        .collect();
    let responses = join_all(queries.iter().map(|q| h.get(q))).await;
    let calls = h.calls(Vendor::Chatbase);
    let ok = responses
        .iter()
        .filter(|r| r.status.as_u16() == 200)
        .count() as u64;
    assert_eq!(calls, 2, "2 at once, and the next slot is 500 ms away");
    assert_eq!(ok, calls, "each vendor call answered one request");
    for r in responses.iter().filter(|r| r.status.as_u16() != 200) {
        let body = r.expect_error(429, "upstream_rate_limited");
        assert_eq!(body["provider"], "chatbase", "{body}");
        assert!(
            body.get("upstream_status").is_none(),
            "not the vendor's: {body}"
        );
        assert_eq!(number(r, "retry-after"), 1, "500 ms, in whole seconds");
        // The client's own headers are still there.
        assert_eq!(number(r, "ratelimit-limit"), 20);
    }
    h.stop().await;
}

#[actix_rt::test]
async fn the_provider_guard_spaces_calls_to_its_rate() {
    const RATE: u32 = 5;
    const N: u32 = 15;
    let h = Harness::start_as_demo(|t| {
        tune_provider(
            t,
            "chatbase",
            &format!("max_requests_per_second = {RATE}\ntimeout_ms = 10000"),
        )
    })
    .await;
    let started = Instant::now();
    let queries: Vec<String> = (1..=N)
        .map(|page| format!("{LIST}?chatbotId=support&size=1&page={page}"))
        .collect();
    let responses = join_all(queries.iter().map(|q| h.get(q))).await;
    let elapsed = started.elapsed();
    for r in &responses {
        r.ok();
    }
    assert_eq!(h.calls(Vendor::Chatbase), u64::from(N));
    // RATE at once, then one every 1/RATE s: the last passes (N - RATE) / RATE s
    // in. A lower bound only: a slow machine takes longer, never less. (The
    // guard sleeps on the real timer, so this test runs on the system clock.)
    let floor = Duration::from_secs_f64(f64::from(N - RATE) / f64::from(RATE));
    assert!(elapsed >= floor, "{elapsed:?} < {floor:?}");
    h.stop().await;
}

#[actix_rt::test]
async fn failed_authentications_are_limited_per_ip_before_any_key_comparison() {
    let clock = ManualClock::new();
    let h = Harness::start_as_demo_with_clock(&clock, |t| {
        assert!(t.contains("[server]\n"));
        t.replace(
            "[server]\n",
            "[server]\nauth_failures_per_minute = 60\nauth_failure_burst = 3\n",
        )
    })
    .await;
    let q = format!("{LIST}?chatbotId=support&size=1");
    // No Authorization header at all is not a failed attempt at a key.
    for _ in 0..10 {
        h.get_as(None, &q).await.expect_error(401, "unauthorized");
    }
    // The burst of 3 wrong keys is intact.
    for n in 0..3 {
        h.get_as(Some(&format!("wrong-key-number-{n}-0123456789")), &q)
            .await
            .expect_error(401, "unauthorized");
    }
    h.get(&q).await.ok();
    // The failure that goes over the burst is still answered 401 (the key was
    // compared); it is what blocks the IP.
    h.get_as(Some("wrong-key-number-3-0123456789"), &q)
        .await
        .expect_error(401, "unauthorized");
    // From now on this IP is refused before any key is looked at — the right
    // key included.
    let refused = h.get(&q).await;
    refused.expect_error(429, "rate_limited");
    assert_eq!(number(&refused, "retry-after"), 1, "60/min: a second");
    no_rate_headers(&refused);
    h.get_as(None, &q).await.expect_error(429, "rate_limited");
    h.get_as(Some("wrong-key-number-4-0123456789"), &q)
        .await
        .expect_error(429, "rate_limited");
    let calls = h.calls(Vendor::Chatbase);
    assert_eq!(calls, 1, "only the one accepted request reached the vendor");
    // Ops endpoints are not behind the guard.
    h.get_as(None, "/healthz").await.ok();
    // Once the block has run out, the right key works again.
    clock.advance(Duration::from_secs(1));
    h.get(&format!("{LIST}?chatbotId=support&size=2"))
        .await
        .ok();
    h.stop().await;
}
