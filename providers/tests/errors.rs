//! How every adapter classifies a vendor's failure: status codes, `Retry-After`,
//! Chatling's header-less 429, invalid success bodies (never a panic), and which
//! errors the retry layer may repeat.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use bytes::Bytes;
use chatgate_providers::{
    adapter, sanitize, Dialect, ListResult, ProviderError, ProviderKind, UpstreamResponse,
};
use chrono::TimeZone;
use common::*;

/// Every adapter (and both Chatzuri dialects) with the fixture folder of its vendor.
fn adapters() -> Vec<(&'static str, ProviderKind, Dialect)> {
    vec![
        ("chatbase", ProviderKind::Chatbase, Dialect::Current),
        ("chatzuri", ProviderKind::Chatzuri, Dialect::Current),
        ("chatzuri", ProviderKind::Chatzuri, Dialect::Legacy),
        ("chatling", ProviderKind::Chatling, Dialect::Current),
    ]
}

fn list(
    kind: ProviderKind,
    dialect: Dialect,
    response: UpstreamResponse,
) -> Result<ListResult, ProviderError> {
    let a = adapter(kind, &options(dialect, 50));
    let mut op = a.list(target("vendor-bot-1"), &query(1, 10), None);
    one_call(op.as_mut(), response).0
}

fn with_retry_after(mut r: UpstreamResponse, value: &str) -> UpstreamResponse {
    r.retry_after = Some(value.to_owned());
    r
}

#[test]
fn every_vendor_maps_401_and_403_to_unauthorized_with_the_vendor_message() {
    let expected = [
        ("chatbase", "No API key provided.", "Forbidden"),
        ("chatzuri", "Unauthorized", "Forbidden"),
        ("chatling", "Invalid API key", "Forbidden"),
    ];
    for (dir, kind, dialect) in adapters() {
        let (_, m401, m403) = expected.iter().find(|e| e.0 == dir).unwrap();
        let err = list(
            kind,
            dialect,
            answer(401, fixture(&format!("{dir}/error_401.json"))),
        )
        .unwrap_err();
        assert_eq!(
            err,
            ProviderError::Unauthorized {
                status: 401,
                message: (*m401).to_owned()
            },
            "{kind}"
        );
        let body: Bytes = match dir {
            "chatzuri" => Bytes::from_static(br#"{"message":"Forbidden"}"#),
            _ => fixture(&format!("{dir}/error_403.json")),
        };
        let err = list(kind, dialect, answer(403, body)).unwrap_err();
        assert_eq!(
            err,
            ProviderError::Unauthorized {
                status: 403,
                message: (*m403).to_owned()
            },
            "{kind}"
        );
        assert!(!err.is_retryable());
        assert_eq!(err.upstream_status(), Some(403));
    }
}

#[test]
fn every_vendor_maps_404_to_not_found_with_the_vendor_message() {
    let expected = [
        ("chatbase", "Resource not found"),
        ("chatzuri", "Agent not found"),
        ("chatling", "Conversation not found"),
    ];
    for (dir, kind, dialect) in adapters() {
        let message = expected.iter().find(|e| e.0 == dir).unwrap().1;
        let err = list(
            kind,
            dialect,
            answer(404, fixture(&format!("{dir}/error_404.json"))),
        )
        .unwrap_err();
        assert_eq!(
            err,
            ProviderError::NotFound {
                message: message.to_owned()
            },
            "{kind}"
        );
        assert!(!err.is_retryable());
        assert_eq!(err.upstream_status(), Some(404));
    }
}

#[test]
fn every_vendor_honours_a_429_retry_after_in_seconds() {
    for (dir, kind, dialect) in adapters() {
        let response =
            with_retry_after(answer(429, fixture(&format!("{dir}/error_429.json"))), "7");
        let err = list(kind, dialect, response).unwrap_err();
        assert_eq!(
            err,
            ProviderError::RateLimited {
                retry_after: Some(Duration::from_secs(7))
            },
            "{kind}"
        );
        assert!(err.is_retryable());
        assert_eq!(err.upstream_status(), Some(429));
    }
}

#[test]
fn every_vendor_honours_a_429_retry_after_http_date() {
    for (dir, kind, dialect) in adapters() {
        // now() is 2024-07-01T10:20:45Z.
        let response = with_retry_after(
            answer(429, fixture(&format!("{dir}/error_429.json"))),
            "Mon, 01 Jul 2024 10:21:15 GMT",
        );
        assert_eq!(
            list(kind, dialect, response).unwrap_err(),
            ProviderError::RateLimited {
                retry_after: Some(Duration::from_secs(30))
            },
            "{kind}"
        );
    }
}

#[test]
fn every_vendor_reads_a_retry_after_too_large_for_u64_as_forever_not_as_absent() {
    for (dir, kind, dialect) in adapters() {
        let response = with_retry_after(
            answer(429, fixture(&format!("{dir}/error_429.json"))),
            "99999999999999999999999",
        );
        assert_eq!(
            list(kind, dialect, response).unwrap_err(),
            ProviderError::RateLimited {
                retry_after: Some(Duration::from_secs(u64::MAX))
            },
            "{kind}"
        );
    }
}

#[test]
fn chatbase_and_chatzuri_429_without_retry_after_has_no_wait() {
    for (dir, kind, dialect) in adapters() {
        if kind == ProviderKind::Chatling {
            continue;
        }
        let err = list(
            kind,
            dialect,
            answer(429, fixture(&format!("{dir}/error_429.json"))),
        )
        .unwrap_err();
        assert_eq!(
            err,
            ProviderError::RateLimited { retry_after: None },
            "{kind}"
        );
        assert!(err.is_retryable());
    }
}

#[test]
fn chatling_429_without_retry_after_waits_until_the_next_full_minute() {
    // Chatling's documented body, no header, arriving at hh:mm:45.
    let err = list(
        ProviderKind::Chatling,
        Dialect::Current,
        answer(429, fixture("chatling/error_429.json")),
    )
    .unwrap_err();
    assert_eq!(
        err,
        ProviderError::RateLimited {
            retry_after: Some(Duration::from_secs(15))
        }
    );

    let mut response = answer(
        429,
        &br#"{"status":"error","message":"Too many requests"}"#[..],
    );
    response.received_at = chrono::Utc
        .with_ymd_and_hms(2024, 7, 1, 10, 20, 45)
        .unwrap()
        + chrono::Duration::milliseconds(250);
    assert_eq!(
        list(ProviderKind::Chatling, Dialect::Current, response).unwrap_err(),
        ProviderError::RateLimited {
            retry_after: Some(Duration::from_millis(14_750))
        }
    );

    let mut response = answer(429, fixture("chatling/error_429.json"));
    response.received_at = chrono::Utc.with_ymd_and_hms(2024, 7, 1, 10, 20, 1).unwrap();
    assert_eq!(
        list(ProviderKind::Chatling, Dialect::Current, response).unwrap_err(),
        ProviderError::RateLimited {
            retry_after: Some(Duration::from_secs(59))
        }
    );
}

#[test]
fn chatling_429_with_retry_after_prefers_the_header() {
    let response = with_retry_after(answer(429, fixture("chatling/error_429.json")), "3");
    assert_eq!(
        list(ProviderKind::Chatling, Dialect::Current, response).unwrap_err(),
        ProviderError::RateLimited {
            retry_after: Some(Duration::from_secs(3))
        }
    );
}

#[test]
fn other_4xx_is_rejected_with_the_vendor_message() {
    let expected = [
        ("chatbase", "Invalid request data"),
        ("chatzuri", "Invalid date format. Use YYYY-MM-DD."),
        ("chatling", "Bad request"),
    ];
    for (dir, kind, dialect) in adapters() {
        let message = expected.iter().find(|e| e.0 == dir).unwrap().1;
        let err = list(
            kind,
            dialect,
            answer(400, fixture(&format!("{dir}/error_400.json"))),
        )
        .unwrap_err();
        assert_eq!(
            err,
            ProviderError::Rejected {
                status: 400,
                message: message.to_owned()
            },
            "{kind}"
        );
        assert!(!err.is_retryable());
        assert_eq!(err.upstream_status(), Some(400));
    }
    let err = list(
        ProviderKind::Chatling,
        Dialect::Current,
        answer(422, fixture("chatling/error_422.json")),
    )
    .unwrap_err();
    assert_eq!(
        err,
        ProviderError::Rejected {
            status: 422,
            message: "The page must be an integer.".to_owned()
        }
    );
    let err = list(ProviderKind::Chatbase, Dialect::Current, answer(418, "")).unwrap_err();
    assert_eq!(
        err,
        ProviderError::Rejected {
            status: 418,
            message: "unexpected status".to_owned()
        }
    );
}

#[test]
fn server_errors_are_upstream_with_the_vendor_message() {
    let expected = [
        ("chatbase", "Internal server error"),
        ("chatzuri", "Internal server error"),
        ("chatling", "Server error"),
    ];
    for (dir, kind, dialect) in adapters() {
        let message = expected.iter().find(|e| e.0 == dir).unwrap().1;
        let err = list(
            kind,
            dialect,
            answer(500, fixture(&format!("{dir}/error_500.json"))),
        )
        .unwrap_err();
        assert_eq!(
            err,
            ProviderError::Upstream {
                status: 500,
                message: message.to_owned()
            },
            "{kind}"
        );
        assert!(!err.is_retryable(), "500 is not a transient gateway status");

        // A proxy's HTML page or an empty body: the status line is the message.
        let err = list(
            kind,
            dialect,
            answer(503, "<html><body>Service down</body></html>"),
        )
        .unwrap_err();
        assert_eq!(
            err,
            ProviderError::Upstream {
                status: 503,
                message: "Service Unavailable".to_owned()
            },
            "{kind}"
        );
        assert!(err.is_retryable());
        let err = list(kind, dialect, answer(502, "")).unwrap_err();
        assert_eq!(
            err,
            ProviderError::Upstream {
                status: 502,
                message: "Bad Gateway".to_owned()
            }
        );
        assert!(err.is_retryable());
        let err = list(
            kind,
            dialect,
            answer(504, Bytes::from_static(&[0xff, 0xfe, 0x00])),
        )
        .unwrap_err();
        assert_eq!(
            err,
            ProviderError::Upstream {
                status: 504,
                message: "Gateway Timeout".to_owned()
            }
        );
        assert!(err.is_retryable());
    }
}

#[test]
fn a_redirect_is_an_upstream_failure_not_a_success() {
    for (_, kind, dialect) in adapters() {
        let err = list(kind, dialect, answer(302, "")).unwrap_err();
        assert!(
            matches!(err, ProviderError::Upstream { status: 302, .. }),
            "{kind}: {err:?}"
        );
        assert!(!err.is_retryable());
    }
}

#[test]
fn long_vendor_messages_are_capped_then_shortened_when_sanitized() {
    let long = format!(r#"{{"message":"{}"}}"#, "é".repeat(5_000));
    for (_, kind, dialect) in adapters() {
        let err = list(kind, dialect, answer(500, long.clone())).unwrap_err();
        let ProviderError::Upstream { message, .. } = &err else {
            panic!("{kind}: {err:?}");
        };
        assert_eq!(
            message.chars().count(),
            sanitize::MAX_VENDOR_TEXT_CHARS + 1,
            "{kind}"
        );
        match err.sanitize(KEY) {
            ProviderError::Upstream { message, .. } => {
                assert_eq!(message.chars().count(), 301, "{kind}");
                assert!(message.starts_with("éé") && message.ends_with('…'));
            }
            other => panic!("{kind}: {other:?}"),
        }
    }
}

/// A provider key as a vendor might echo it.
const KEY: &str = "sk-live-0123456789abcdef";

/// The text of an error's message or reason.
fn text(err: &ProviderError) -> &str {
    match err {
        ProviderError::Unauthorized { message, .. }
        | ProviderError::NotFound { message }
        | ProviderError::Rejected { message, .. }
        | ProviderError::Upstream { message, .. } => message,
        ProviderError::InvalidBody { reason, .. } => reason,
        other => panic!("no vendor text in {other:?}"),
    }
}

/// Sanitizes `err` and checks that no piece of [`KEY`] survives, whatever the
/// padding put the key across the final cut, and that the text is bounded.
fn assert_no_key_survives(err: ProviderError, what: &str) {
    assert!(
        text(&err).contains(KEY),
        "{what}: the adapter kept the text whole"
    );
    let clean = err.sanitize(KEY);
    let t = text(&clean);
    assert!(t.chars().count() <= 301, "{what}: {t}");
    for piece in ["sk-", "live", "0123", "cdef"] {
        assert!(!t.contains(piece), "{what}: {piece} in {t}");
    }
}

#[test]
fn error_bodies_echoing_the_key_across_the_cut_leave_no_piece_of_it() {
    for (_, kind, dialect) in adapters() {
        for pad in (270..=300).step_by(3) {
            for status in [401, 404, 422, 500] {
                let body = format!(r#"{{"message":"{}{KEY} rejected"}}"#, "m".repeat(pad));
                let err = list(kind, dialect, answer(status, body)).unwrap_err();
                assert_no_key_survives(err, &format!("{kind} {status} pad {pad}"));
            }
        }
    }
}

#[test]
fn a_chatling_422_detail_carrying_the_key_is_redacted() {
    let body = format!(
        r#"{{"status":"error","message":"The page must be an integer. Header was: Bearer {KEY}"}}"#
    );
    let err = list(ProviderKind::Chatling, Dialect::Current, answer(422, body)).unwrap_err();
    assert_eq!(
        err.clone().sanitize(KEY),
        ProviderError::Rejected {
            status: 422,
            message: "The page must be an integer. Header was: Bearer [redacted]".to_owned()
        }
    );
    for pad in (250..=300).step_by(5) {
        let body = format!(
            r#"{{"status":"error","message":"{}{KEY}","errors":{{"page":["{KEY}"]}}}}"#,
            "d".repeat(pad)
        );
        let err = list(ProviderKind::Chatling, Dialect::Current, answer(422, body)).unwrap_err();
        assert_no_key_survives(err, &format!("422 pad {pad}"));
    }
}

#[test]
fn a_chatling_error_envelope_with_200_carrying_the_key_is_redacted() {
    for pad in (200..=300).step_by(7) {
        let body = format!(
            r#"{{"status":"error","message":"{}\n{KEY}"}}"#,
            "e".repeat(pad)
        );
        let err = list(ProviderKind::Chatling, Dialect::Current, ok(body)).unwrap_err();
        assert_no_key_survives(err, &format!("envelope pad {pad}"));
    }
}

#[test]
fn parse_errors_quoting_the_key_are_redacted() {
    for (dir, kind, dialect) in adapters() {
        for pad in (150..=300).step_by(10) {
            let value = format!("{}{KEY}", "v".repeat(pad));
            // serde_json quotes a value of the wrong type; a bad timestamp is
            // quoted by the adapter.
            let bodies = match dir {
                "chatling" => [
                    format!(
                        r#"{{"status":"success","data":{{"pages":{{"current_page":"{value}","last_page":1,"per_page":5}},"conversations":[]}}}}"#
                    ),
                    format!(
                        r#"{{"status":"success","data":{{"pages":{{"current_page":1,"last_page":1,"per_page":5}},"conversations":[{{"id":"1","created_at":"{value}"}}]}}}}"#
                    ),
                ],
                _ => [
                    format!(
                        r#"{{"data":[{{"id":"c1","created_at":"2024-01-01T00:00:00Z","messages":"{value}"}}]}}"#
                    ),
                    format!(r#"{{"data":[{{"id":"c1","created_at":"{value}"}}]}}"#),
                ],
            };
            for body in bodies {
                let err = list(kind, dialect, ok(body)).unwrap_err();
                invalid_body_reason(&err, 200);
                assert_no_key_survives(err, &format!("{kind} pad {pad}"));
            }
        }
    }
}

#[test]
fn a_vendor_newline_cannot_forge_a_log_line() {
    let body = r#"{"message":"bad\n2024-07-01T10:20:45Z  INFO chatgate: admin login ok\u001b[0m"}"#;
    for (_, kind, dialect) in adapters() {
        let err = list(kind, dialect, answer(500, body)).unwrap_err();
        let clean = err.sanitize(KEY);
        assert_eq!(
            text(&clean),
            "bad\\n2024-07-01T10:20:45Z  INFO chatgate: admin login ok\\u{1b}[0m",
            "{kind}"
        );
    }
}

#[test]
fn invalid_success_bodies_are_invalid_body_never_a_panic() {
    let common_cases: [(&str, Bytes); 4] = [
        ("html", Bytes::from_static(b"<html>maintenance</html>")),
        ("empty", Bytes::new()),
        ("not utf-8", Bytes::from_static(&[0xff, 0xfe, 0xfd])),
        (
            "truncated",
            Bytes::from_static(br#"{"data": [{"id": "c1", "created_at": "2024-"#),
        ),
    ];
    for (dir, kind, dialect) in adapters() {
        for (name, body) in &common_cases {
            let err = list(kind, dialect, ok(body.clone())).unwrap_err();
            invalid_body_reason(&err, 200);
            assert!(!err.is_retryable(), "{kind} {name}");
            assert_eq!(err.upstream_status(), Some(200));
        }
        let vendor_cases: &[&str] = match dir {
            "chatbase" => &[
                "invalid_bad_timestamp.json",
                "invalid_missing_created_at.json",
                "invalid_wrong_shape.json",
                "invalid_message_without_content.json",
                "guide_example.json",
            ],
            "chatzuri" => &[
                "invalid_bad_timestamp.json",
                "invalid_missing_id.json",
                "invalid_wrong_shape.json",
                "response_example.json",
            ],
            _ => &[
                "invalid_bad_timestamp.json",
                "invalid_missing_created_at.json",
                "invalid_missing_pages.json",
                "invalid_message_without_role.json",
                "invalid_bad_message_timestamp.json",
                "invalid_per_page_zero.json",
                "success_without_data.json",
                "error_envelope_with_200.json",
                "retrieve_conversation.json",
            ],
        };
        for name in vendor_cases {
            let err = list(kind, dialect, ok(fixture(&format!("{dir}/{name}")))).unwrap_err();
            let reason = invalid_body_reason(&err, 200);
            assert!(!reason.is_empty(), "{kind} {name}");
        }
    }
}

#[test]
fn invalid_body_reasons_name_the_problem() {
    let err = list(
        ProviderKind::Chatbase,
        Dialect::Current,
        ok(fixture("chatbase/invalid_bad_timestamp.json")),
    )
    .unwrap_err();
    let reason = invalid_body_reason(&err, 200);
    assert!(
        reason.contains("created_at") && reason.contains("2024-01-01 12:00:00"),
        "{reason}"
    );

    let err = list(
        ProviderKind::Chatling,
        Dialect::Current,
        ok(fixture("chatling/error_envelope_with_200.json")),
    )
    .unwrap_err();
    let reason = invalid_body_reason(&err, 200);
    assert!(reason.contains("Something went wrong"), "{reason}");

    let err = list(
        ProviderKind::Chatling,
        Dialect::Current,
        answer(201, fixture("chatling/success_without_data.json")),
    )
    .unwrap_err();
    invalid_body_reason(&err, 201);
}

#[test]
fn retryability_per_error_kind() {
    let cases = [
        (
            ProviderError::Unauthorized {
                status: 401,
                message: String::new(),
            },
            false,
        ),
        (
            ProviderError::NotFound {
                message: String::new(),
            },
            false,
        ),
        (ProviderError::RateLimited { retry_after: None }, true),
        (
            ProviderError::RateLimited {
                retry_after: Some(Duration::from_secs(1)),
            },
            true,
        ),
        (
            ProviderError::Rejected {
                status: 422,
                message: String::new(),
            },
            false,
        ),
        (
            ProviderError::Upstream {
                status: 500,
                message: String::new(),
            },
            false,
        ),
        (
            ProviderError::Upstream {
                status: 501,
                message: String::new(),
            },
            false,
        ),
        (
            ProviderError::Upstream {
                status: 502,
                message: String::new(),
            },
            true,
        ),
        (
            ProviderError::Upstream {
                status: 503,
                message: String::new(),
            },
            true,
        ),
        (
            ProviderError::Upstream {
                status: 504,
                message: String::new(),
            },
            true,
        ),
        (
            ProviderError::Upstream {
                status: 505,
                message: String::new(),
            },
            false,
        ),
        (
            ProviderError::InvalidBody {
                status: 200,
                reason: String::new(),
            },
            false,
        ),
        (ProviderError::ScanLimit { pages: 50 }, false),
        (ProviderError::NotSupported("no"), false),
    ];
    for (err, retryable) in cases {
        assert_eq!(err.is_retryable(), retryable, "{err:?}");
    }
}

#[test]
fn every_vendor_refuses_timestamps_outside_four_digit_years() {
    for value in ["9999-12-31T23:59:59-23:59", "0000-01-01T00:00:00+23:59"] {
        for (dir, kind, dialect) in adapters() {
            let bodies = match dir {
                "chatling" => vec![
                    format!(
                        r#"{{"status":"success","data":{{"pages":{{"current_page":1,"last_page":1,"per_page":5}},"conversations":[{{"id":"1","created_at":"{value}"}}]}}}}"#
                    ),
                    format!(
                        r#"{{"status":"success","data":{{"pages":{{"current_page":1,"last_page":1,"per_page":5}},"conversations":[{{"id":"1","created_at":"2024-01-01T00:00:00Z","messages":[{{"role":"user","text":"hi","created_at":"{value}"}}]}}]}}}}"#
                    ),
                ],
                _ => vec![
                    format!(r#"{{"data":[{{"id":"c1","created_at":"{value}"}}]}}"#),
                    format!(
                        r#"{{"data":[{{"id":"c1","created_at":"2024-01-01T00:00:00Z","updated_at":"{value}"}}]}}"#
                    ),
                ],
            };
            for body in bodies {
                let err = list(kind, dialect, ok(body)).unwrap_err();
                let reason = invalid_body_reason(&err, 200);
                assert!(
                    reason.contains("outside the years 0000 to 9999")
                        && reason.contains(&format!("{value:?}")),
                    "{kind}: {reason}"
                );
                assert_eq!(err.upstream_status(), Some(200));
            }
        }
    }
}
