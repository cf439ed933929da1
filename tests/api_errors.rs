//! Every error of SPEC §2.6 through the real server: validation, authentication,
//! scopes, and each vendor failure mapped from an emulator fault.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use awc::http::Method;
use chatgate::demo::{DEMO_KEY, SCOPED_KEY};
use chatgate_emulator::{FaultKind, Vendor};
use common::{chatbase_at, fault, status, Harness};

const LIST: &str = "/api/v1/get-conversations";

#[actix_rt::test]
async fn missing_unknown_or_malformed_keys_are_unauthorized() {
    let h = Harness::start().await;
    let q = format!("{LIST}?chatbotId=support");
    h.get_as(None, &q).await.expect_error(401, "unauthorized");
    h.get_as(Some("not-a-key-of-anyone-at-all"), &q)
        .await
        .expect_error(401, "unauthorized");
    for header in [
        format!("Basic {DEMO_KEY}"),
        DEMO_KEY.to_owned(),
        "Bearer".to_owned(),
    ] {
        h.request(Method::GET, &q, None, &[("Authorization", &header)], None)
            .await
            .expect_error(401, "unauthorized");
    }
    // Authentication comes before parameter validation.
    h.get_as(None, &format!("{LIST}?startDate=nope"))
        .await
        .expect_error(401, "unauthorized");
    assert_eq!(h.calls(Vendor::Chatbase), 0);
    h.stop().await;
}

#[actix_rt::test]
async fn bots_are_resolved_by_name_and_scoped_per_key() {
    let h = Harness::start().await;
    let body = h
        .get(&format!("{LIST}?chatbotId=cb-support"))
        .await
        .expect_error(404, "bot_not_found");
    assert!(body["message"].as_str().unwrap().contains("cb-support"));
    h.get_as(Some(SCOPED_KEY), &format!("{LIST}?chatbotId=sales"))
        .await
        .expect_error(403, "forbidden");
    h.get_as(
        Some(SCOPED_KEY),
        "/api/v1/conversations/1?chatbotId=helpdesk",
    )
    .await
    .expect_error(403, "forbidden");
    h.get_as(
        Some(SCOPED_KEY),
        &format!("{LIST}?chatbotId=support&size=1"),
    )
    .await
    .ok();
    assert_eq!(h.calls(Vendor::Chatzuri) + h.calls(Vendor::Chatling), 0);
    h.stop().await;
}

#[actix_rt::test]
async fn every_validation_rule_answers_400_with_its_code() {
    let h = Harness::start().await;
    let cases = [
        ("", "invalid_request"),
        ("chatbotId=", "invalid_request"),
        ("chatbotId=support&agentId=sales", "invalid_request"),
        (
            "chatbotId=support&filteredSources=API,Fax",
            "invalid_request",
        ),
        ("chatbotId=support&startDate=2023-7-10", "invalid_date"),
        ("chatbotId=support&startDate=2023-02-30", "invalid_date"),
        ("chatbotId=support&endDate=2023-07-10T00:00", "invalid_date"),
        (
            "chatbotId=support&startDate=2024-05-02&endDate=2024-05-01",
            "invalid_date",
        ),
        ("chatbotId=support&page=0", "invalid_request"),
        ("chatbotId=support&page=100001", "invalid_request"),
        ("chatbotId=support&page=two", "invalid_request"),
        ("chatbotId=support&size=0", "invalid_request"),
        ("chatbotId=support&size=101", "invalid_request"),
        ("chatbotId=support&size=-5", "invalid_request"),
        ("chatbotId=support&size=10&size=20", "invalid_request"),
        ("chatbotId=support&include=everything", "invalid_request"),
    ];
    for (query, code) in cases {
        let res = h.get(&format!("{LIST}?{query}")).await;
        let body = res.expect_error(400, code);
        assert!(
            body.get("provider").is_none(),
            "no upstream was involved: {query}"
        );
    }
    let unknown = h
        .get(&format!("{LIST}?chatbotId=support&filteredSources=API,Fax"))
        .await
        .json();
    let message = unknown["message"].as_str().unwrap();
    assert!(
        message.contains("Fax") && message.contains("whatsapp"),
        "{message}"
    );
    assert_eq!(
        h.calls(Vendor::Chatbase),
        0,
        "nothing invalid reaches a vendor"
    );
    h.stop().await;
}

#[actix_rt::test]
async fn post_bodies_are_validated_and_bounded() {
    let h = Harness::start().await;
    h.post(LIST, "{not json")
        .await
        .expect_error(400, "invalid_request");
    h.post(LIST, "[]")
        .await
        .expect_error(400, "invalid_request");
    h.post(LIST, r#"{"chatbotId":"support","page":1.5}"#)
        .await
        .expect_error(400, "invalid_request");
    h.post(LIST, r#"{"chatbotId":"support","startDate":"2024-1-01"}"#)
        .await
        .expect_error(400, "invalid_date");
    let big = format!(
        r#"{{"chatbotId":"support","pad":"{}"}}"#,
        "x".repeat(70 * 1024)
    );
    h.post(LIST, big)
        .await
        .expect_error(413, "payload_too_large");
    h.post(LIST, r#"{"chatbotId":"support","size":"2"}"#)
        .await
        .ok();
    h.stop().await;
}

#[actix_rt::test]
async fn unknown_routes_and_methods_answer_json() {
    let h = Harness::start().await;
    h.get("/api/v1/nope").await.expect_error(404, "not_found");
    h.request(Method::DELETE, LIST, Some(DEMO_KEY), &[], None)
        .await
        .expect_error(405, "method_not_allowed");
    for path in ["/healthz", "/readyz", "/metrics"] {
        h.request(Method::POST, path, None, &[], None)
            .await
            .expect_error(405, "method_not_allowed");
    }
    h.stop().await;
}

#[actix_rt::test]
async fn vendor_statuses_map_to_documented_gateway_errors() {
    let h = Harness::start().await;
    let q = format!("{LIST}?chatbotId=support");
    let cases = [
        (500, 502, "upstream_error"),
        (503, 502, "upstream_error"),
        (400, 502, "upstream_error"),
        (401, 502, "upstream_auth_failed"),
        (403, 502, "upstream_auth_failed"),
        (404, 404, "not_found"),
    ];
    for (vendor_status, status, code) in cases {
        h.state().clear_faults();
        h.state()
            .add_fault(fault(Vendor::Chatbase, self::status(vendor_status, None)));
        let body = h.get(&q).await.expect_error(status, code);
        assert_eq!(body["provider"], "chatbase");
        assert_eq!(body["upstream_status"], vendor_status, "{body}");
    }
    h.stop().await;
}

#[actix_rt::test]
async fn a_wrong_provider_key_is_a_config_fault_and_never_echoed() {
    let h =
        Harness::start_with(|t| t.replace("emu-chatling-secret", "wrong-chatling-key-123")).await;
    let res = h.get("/api/v1/get-conversations?chatbotId=helpdesk").await;
    let body = res.expect_error(502, "upstream_auth_failed");
    assert_eq!(body["provider"], "chatling");
    assert_eq!(body["upstream_status"], 401);
    let text = String::from_utf8_lossy(&res.body);
    assert!(!text.contains("wrong-chatling-key-123"), "{text}");
    assert!(h.state().requests().iter().all(|r| !r.auth_ok));
    h.stop().await;
}

#[actix_rt::test]
async fn an_unknown_vendor_chatbot_is_not_found() {
    let h = Harness::start_with(|t| t.replace("\"cz-sales\"", "\"cz-gone\"")).await;
    let body = h
        .get("/api/v1/get-conversations?chatbotId=sales")
        .await
        .expect_error(404, "not_found");
    assert_eq!(body["provider"], "chatzuri");
    h.stop().await;
}

#[actix_rt::test]
async fn vendor_rate_limits_forward_retry_after() {
    let h = Harness::start().await;
    h.state()
        .add_fault(fault(Vendor::Chatbase, status(429, Some("7"))));
    let res = h.get(&format!("{LIST}?chatbotId=support")).await;
    res.expect_error(429, "upstream_rate_limited");
    assert_eq!(res.header("retry-after"), Some("7"));
    // Chatling sends no Retry-After: the wait is what is left of the minute.
    h.state().add_fault(fault(
        Vendor::Chatling,
        FaultKind::Status {
            status: 429,
            body: Some(r#"{"status":"error","message":"Too many requests"}"#.to_owned()),
            retry_after: None,
        },
    ));
    let res = h.get(&format!("{LIST}?chatbotId=helpdesk")).await;
    res.expect_error(429, "upstream_rate_limited");
    let wait: u64 = res.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    h.stop().await;
}

#[actix_rt::test]
async fn broken_vendor_bodies_are_502_never_a_panic() {
    let h = Harness::start_with(|t| {
        t.replace(
            "[providers.chatling]",
            "[providers.chatling]\nmax_body_bytes = 65536\ncircuit_failure_threshold = 100",
        )
    })
    .await;
    let kinds = [
        FaultKind::Malformed,
        FaultKind::WrongShape,
        FaultKind::Truncated,
        FaultKind::Reset,
        FaultKind::Huge { bytes: 1024 * 1024 },
    ];
    for kind in kinds {
        h.state().clear_faults();
        h.state().add_fault(fault(Vendor::Chatling, kind.clone()));
        let body = h
            .get(&format!("{LIST}?chatbotId=helpdesk"))
            .await
            .expect_error(502, "upstream_error");
        assert_eq!(body["provider"], "chatling", "{kind:?}");
    }
    h.state().clear_faults();
    h.get(&format!("{LIST}?chatbotId=helpdesk")).await.ok();
    h.stop().await;
}

#[actix_rt::test]
async fn a_slow_vendor_times_out_with_504() {
    let h = Harness::start_with(|t| {
        t.replace(
            "[providers.chatbase]",
            "[providers.chatbase]\ntimeout_ms = 300",
        )
    })
    .await;
    // The vendor would answer after a minute, past the test client's own 30 s
    // timeout: an answer at all is the gateway's, after its 300 ms timeout.
    h.state()
        .add_fault(fault(Vendor::Chatbase, FaultKind::Delay { ms: 60_000 }));
    let body = h
        .get(&format!("{LIST}?chatbotId=support"))
        .await
        .expect_error(504, "upstream_timeout");
    assert_eq!(body["provider"], "chatbase");
    assert!(
        body["message"].as_str().unwrap().contains("300ms"),
        "the provider's timeout ended it: {body}"
    );
    h.state().clear_faults();
    h.state().add_fault(fault(
        Vendor::Chatbase,
        FaultKind::SlowBody {
            chunk_delay_ms: 200,
        },
    ));
    h.get(&format!("{LIST}?chatbotId=support"))
        .await
        .expect_error(504, "upstream_timeout");
    h.stop().await;
}

#[actix_rt::test]
async fn an_unreachable_vendor_is_502() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let h = Harness::start_with(|t| chatbase_at(t, port)).await;
    let body = h
        .get(&format!("{LIST}?chatbotId=support"))
        .await
        .expect_error(502, "upstream_error");
    assert_eq!(body["provider"], "chatbase");
    assert!(body.get("upstream_status").is_none());
    h.stop().await;
}

#[actix_rt::test]
async fn chatling_scan_bound_fails_loudly_instead_of_returning_a_partial_page() {
    let h = Harness::start_with(|t| {
        t.replace(
            "[providers.chatling]",
            "[providers.chatling]\nmax_scan_pages = 3",
        )
    })
    .await;
    let body = h
        .get(&format!(
            "{LIST}?chatbotId=helpdesk&startDate=2020-01-01&size=50"
        ))
        .await
        .expect_error(502, "upstream_error");
    assert!(
        body["message"].as_str().unwrap().contains("max_scan_pages"),
        "{body}"
    );
    assert_eq!(h.calls(Vendor::Chatling), 3);
    h.stop().await;
}

#[actix_rt::test]
async fn a_body_shorter_than_its_content_length_is_502_even_when_it_parses() {
    // A raw "vendor" that declares 200 bytes, sends a complete-looking JSON
    // document of fewer, and hangs up.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        if let Ok((mut s, _)) = listener.accept() {
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n{\"data\":[]}");
        }
    });
    let h = Harness::start_with(|t| chatbase_at(t, port)).await;
    let body = h
        .get(&format!("{LIST}?chatbotId=support"))
        .await
        .expect_error(502, "upstream_error");
    assert!(
        body["message"].as_str().unwrap().contains("cut off"),
        "{body}"
    );
    h.stop().await;
}

#[actix_rt::test]
async fn a_vendor_echoing_the_provider_key_never_passes_it_on() {
    let h = Harness::start().await;
    let echo = format!(
        r#"{{"message":"invalid key {}"}}"#,
        chatgate_emulator::CHATBASE_KEY
    );
    for code in [401, 500] {
        h.state().clear_faults();
        h.state().add_fault(fault(
            Vendor::Chatbase,
            FaultKind::Status {
                status: code,
                body: Some(echo.clone()),
                retry_after: None,
            },
        ));
        let res = h
            .get(&format!("{LIST}?chatbotId=support&page={code}"))
            .await;
        let text = String::from_utf8_lossy(&res.body).into_owned();
        assert_eq!(res.status.as_u16(), 502, "{text}");
        assert!(!text.contains(chatgate_emulator::CHATBASE_KEY), "{text}");
    }
    let body = h
        .get(&format!("{LIST}?chatbotId=support&page=500"))
        .await
        .json();
    assert!(
        body["message"].as_str().unwrap().contains("[redacted]"),
        "{body}"
    );
    h.stop().await;
}

#[actix_rt::test]
async fn a_405_names_the_allowed_methods_and_head_answers_like_get() {
    let h = Harness::start().await;
    for (method, path, allow) in [
        ("PUT", "/api/v1/get-conversations", "GET, HEAD, POST"),
        ("DELETE", "/api/v1/conversations/abc", "GET, HEAD"),
        ("POST", "/api/v1/bots", "GET, HEAD"),
        ("POST", "/healthz", "GET, HEAD"),
        ("PATCH", "/readyz", "GET, HEAD"),
        ("DELETE", "/metrics", "GET, HEAD"),
    ] {
        let m = awc::http::Method::from_bytes(method.as_bytes()).unwrap();
        let r = h.request(m, path, Some(DEMO_KEY), &[], None).await;
        r.expect_error(405, "method_not_allowed");
        assert_eq!(r.header("allow"), Some(allow), "{method} {path}");
    }
    for path in ["/healthz", "/readyz", "/api/v1/bots", "/metrics"] {
        let r = h
            .request(awc::http::Method::HEAD, path, Some(DEMO_KEY), &[], None)
            .await;
        assert_eq!(r.status.as_u16(), 200, "HEAD {path}");
        assert!(r.body.is_empty(), "HEAD {path} has no body");
    }
    let r = h
        .request(
            awc::http::Method::HEAD,
            "/api/v1/get-conversations?chatbotId=support",
            Some(DEMO_KEY),
            &[],
            None,
        )
        .await;
    assert_eq!(r.status.as_u16(), 200);
    assert_eq!(r.header("x-provider"), Some("chatbase"));
    h.stop().await;
}
