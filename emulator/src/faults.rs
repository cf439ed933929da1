//! Injected faults: what a test can ask the emulator to do instead of (or around) a
//! normal answer, and how each one is put on the wire.
//!
//! Faults exist to prove the gateway's resilience paths against a real socket: error
//! statuses and `Retry-After` (retries, circuit breaker, pauses), delays and slow bodies
//! (timeouts), broken or oversized bodies (body limits, parse errors), dropped
//! connections (connection-error retries).

use std::io;
use std::time::Duration;

use actix_web::http::{header, StatusCode};
use actix_web::HttpResponse;
use bytes::Bytes;
use futures_util::stream;
use serde::{Deserialize, Serialize};

use super::answer::{error_body, Answer, JSON};
use super::Vendor;

/// A fault to inject into the next matching vendor requests.
///
/// Faults are matched before authentication and parameter checks, in the order they
/// were added; the first match applies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fault {
    /// Only requests to this vendor match; `None` matches every vendor.
    pub vendor: Option<Vendor>,
    /// Only requests whose path (including the vendor prefix, without the query) contains
    /// this substring match; `None` matches every path.
    #[serde(default)]
    pub path_contains: Option<String>,
    /// `None`: applies until cleared. `Some(n)`: applies to the next `n` matching
    /// requests, then is removed (`Some(0)` never applies).
    #[serde(default)]
    pub times: Option<u32>,
    /// What happens to a matching request.
    pub kind: FaultKind,
}

/// What a matching request gets instead of (or around) its normal answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FaultKind {
    /// Answer this status. `body` defaults to the vendor's error body with a message
    /// naming the fault; `retry_after` adds a `Retry-After` header with that value.
    Status {
        /// HTTP status code (100..=999; an invalid code answers 500).
        status: u16,
        /// Raw body to send instead of the vendor's error body.
        #[serde(default)]
        body: Option<String>,
        /// Value of a `Retry-After` header, sent verbatim (seconds or an HTTP date).
        #[serde(default)]
        retry_after: Option<String>,
    },
    /// Wait this long, then answer normally (timeouts, latency).
    Delay {
        /// Milliseconds to wait before answering.
        ms: u64,
    },
    /// 200 with `application/json` and a body that is not JSON.
    Malformed,
    /// 200 with valid JSON of the wrong shape for the vendor (`{"data":"nope"}`,
    /// Chatling `{"status":"success","data":{"items":[]}}`, Chatbase v2
    /// `{"data":"nope","pagination":{}}`).
    WrongShape,
    /// 200 with a valid JSON body of exactly `bytes` bytes (at least the few bytes of an
    /// empty answer), streamed chunked in 64 KiB pieces generated on the fly, so memory
    /// stays flat: `{"padding":"xxx…", …an empty answer of the vendor…}`.
    Huge {
        /// Total body size in bytes.
        bytes: usize,
    },
    /// The normal answer's status and full `Content-Length`, but the connection closes
    /// after the first half of the body. Note: awc 3 hands such a short body back
    /// without an error; a client must compare the length (or fail to parse) to notice.
    Truncated,
    /// The normal answer, sent in [`SLOW_BODY_CHUNK_BYTES`] chunks with this delay
    /// between chunks (the head and first chunk go out at once).
    SlowBody {
        /// Milliseconds between two chunks.
        chunk_delay_ms: u64,
    },
    /// The connection is closed with no response at all, not even a status line: the
    /// body stream fails before its first byte and actix then drops the connection
    /// unflushed. It is a close (FIN), not a TCP RST: actix gives a handler no way to
    /// reset the socket. actix logs one `Response payload stream error` per use.
    Reset,
}

/// Size of the pieces a [`FaultKind::SlowBody`] answer is sent in.
pub const SLOW_BODY_CHUNK_BYTES: usize = 256;

/// Size of the pieces a [`FaultKind::Huge`] body is generated in.
const HUGE_CHUNK_BYTES: usize = 64 * 1024;

/// How long a truncated body pauses before failing, so its first half is flushed.
const TRUNCATE_PAUSE: Duration = Duration::from_millis(20);

/// Padding for [`FaultKind::Huge`], served from static memory.
static PADDING: [u8; HUGE_CHUNK_BYTES] = [b'x'; HUGE_CHUNK_BYTES];

impl Fault {
    /// Whether this fault applies to a request to `vendor` at `path`.
    pub(crate) fn matches(&self, vendor: Vendor, path: &str) -> bool {
        let vendor_ok = match self.vendor {
            None => true,
            Some(v) => v == vendor,
        };
        let path_ok = match self.path_contains.as_deref() {
            None => true,
            Some(needle) => path.contains(needle),
        };
        vendor_ok && path_ok
    }
}

/// Takes the first fault in `faults` that matches, consuming one of its `times`.
pub(crate) fn take_matching(
    faults: &mut Vec<Fault>,
    vendor: Vendor,
    path: &str,
) -> Option<FaultKind> {
    let i = faults.iter().position(|f| f.matches(vendor, path))?;
    let fault = faults.get_mut(i)?;
    match fault.times {
        None => Some(fault.kind.clone()),
        Some(n) => {
            let kind = fault.kind.clone();
            if n <= 1 {
                faults.remove(i);
            } else {
                fault.times = Some(n - 1);
            }
            Some(kind)
        }
    }
}

/// Puts a fault on the wire. `normal` computes the answer the request would otherwise
/// get; it is only called by the faults that send it (after the wait, for `Delay`).
pub(crate) async fn respond(
    kind: FaultKind,
    vendor: Vendor,
    normal: impl FnOnce() -> Answer,
) -> HttpResponse {
    match kind {
        FaultKind::Status {
            status,
            body,
            retry_after,
        } => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let body = body.map(Bytes::from).unwrap_or_else(|| {
                error_body(
                    vendor,
                    status,
                    &format!("Injected fault: status {}", status.as_u16()),
                )
            });
            let mut builder = HttpResponse::build(status);
            builder.insert_header((header::CONTENT_TYPE, JSON));
            if let Some(value) = retry_after {
                builder.insert_header((header::RETRY_AFTER, value));
            }
            builder.body(body)
        }
        FaultKind::Delay { ms } => {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            normal().into_response()
        }
        FaultKind::Malformed => {
            Answer::ok(Bytes::from_static(br#"{"data": [ {"id": "#)).into_response()
        }
        FaultKind::WrongShape => Answer::ok(match vendor {
            Vendor::Chatbase | Vendor::Chatzuri => Bytes::from_static(br#"{"data":"nope"}"#),
            Vendor::Chatling => Bytes::from_static(br#"{"status":"success","data":{"items":[]}}"#),
            Vendor::ChatbaseV2 => Bytes::from_static(br#"{"data":"nope","pagination":{}}"#),
        })
        .into_response(),
        FaultKind::Huge { bytes } => huge(vendor, bytes),
        FaultKind::Truncated => truncated(normal()),
        FaultKind::SlowBody { chunk_delay_ms } => slow_body(normal(), chunk_delay_ms),
        FaultKind::Reset => reset(),
    }
}

/// `{"padding":"xxx…"` + the rest of an empty answer for `vendor`, `total` bytes long,
/// produced chunk by chunk.
fn huge(vendor: Vendor, total: usize) -> HttpResponse {
    const HEAD: &[u8] = br#"{"padding":""#;
    let tail: &'static [u8] = match vendor {
        Vendor::Chatbase | Vendor::Chatzuri => br#"","data":[]}"#,
        Vendor::Chatling => br#"","status":"success","data":{"pages":{"current_page":1,"last_page":1,"per_page":5},"conversations":[],"messages":[]}}"#,
        Vendor::ChatbaseV2 => br#"","data":[],"pagination":{"cursor":null,"hasMore":false,"total":0}}"#,
    };
    let padding = total.saturating_sub(HEAD.len() + tail.len());
    // State: (padding bytes still to send, whether HEAD and tail were sent).
    let body = stream::unfold(
        (padding, false, false),
        move |(left, head_sent, tail_sent)| async move {
            if !head_sent {
                return Some((
                    Ok::<_, io::Error>(Bytes::from_static(HEAD)),
                    (left, true, false),
                ));
            }
            if left > 0 {
                let n = left.min(HUGE_CHUNK_BYTES);
                let chunk = Bytes::from_static(PADDING.get(..n).unwrap_or(&PADDING));
                return Some((Ok(chunk), (left - n, true, false)));
            }
            if !tail_sent {
                return Some((Ok(Bytes::from_static(tail)), (0, true, true)));
            }
            None
        },
    );
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, JSON))
        .streaming(body)
}

/// The normal answer's head and `Content-Length`, then about half its body, then an
/// error, which makes actix close the connection mid-body.
///
/// actix writes the head and the body chunks it can get without waiting in one go and
/// drops unflushed bytes when the body fails, so the stream pauses briefly before
/// failing: the head and the first half reach the client, the rest never does.
fn truncated(answer: Answer) -> HttpResponse {
    let len = answer.body.len();
    let cut = (len / 2).max(1).min(len.saturating_sub(1));
    let first = answer.body.slice(..cut);
    let body = stream::unfold(Some(first), |first| async move {
        match first {
            Some(chunk) => Some((Ok(chunk), None)),
            None => {
                tokio::time::sleep(TRUNCATE_PAUSE).await;
                // Ends the stream after the error (actix does not poll again anyway).
                let error = io::Error::new(
                    io::ErrorKind::ConnectionAborted,
                    "emulator fault: truncated body",
                );
                Some((Err(error), None))
            }
        }
    });
    HttpResponse::build(answer.status)
        .insert_header((header::CONTENT_TYPE, JSON))
        .no_chunking(len as u64)
        .streaming(body)
}

/// The normal answer in [`SLOW_BODY_CHUNK_BYTES`] pieces, `delay_ms` apart.
fn slow_body(answer: Answer, delay_ms: u64) -> HttpResponse {
    let len = answer.body.len();
    let delay = Duration::from_millis(delay_ms);
    let body = stream::unfold((answer.body, 0usize), move |(body, sent)| async move {
        if sent >= body.len() {
            return None;
        }
        if sent > 0 {
            tokio::time::sleep(delay).await;
        }
        let end = (sent + SLOW_BODY_CHUNK_BYTES).min(body.len());
        let chunk = body.slice(sent..end);
        Some((Ok::<_, io::Error>(chunk), (body, end)))
    });
    HttpResponse::build(answer.status)
        .insert_header((header::CONTENT_TYPE, JSON))
        .no_chunking(len as u64)
        .streaming(body)
}

/// A response whose body fails before its first byte: actix then closes the connection
/// before flushing even the head, so the client sees the connection end with no answer.
fn reset() -> HttpResponse {
    let body = stream::iter([Err::<Bytes, _>(io::Error::new(
        io::ErrorKind::ConnectionReset,
        "emulator fault: connection reset",
    ))]);
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, JSON))
        .streaming(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fault(vendor: Option<Vendor>, path: Option<&str>, times: Option<u32>) -> Fault {
        Fault {
            vendor,
            path_contains: path.map(str::to_owned),
            times,
            kind: FaultKind::Malformed,
        }
    }

    #[test]
    fn matches_on_vendor_and_path_substring() {
        let f = fault(Some(Vendor::Chatling), Some("/messages"), None);
        assert!(f.matches(
            Vendor::Chatling,
            "/chatling/v2/chatbots/1/conversations/2/messages"
        ));
        assert!(!f.matches(Vendor::Chatling, "/chatling/v2/chatbots/1/conversations"));
        assert!(!f.matches(Vendor::Chatbase, "/chatbase/api/v1/messages"));
        assert!(fault(None, None, None).matches(Vendor::Chatzuri, "/anything"));
    }

    #[test]
    fn take_matching_counts_down_and_removes_at_zero() {
        let mut faults = vec![
            fault(Some(Vendor::Chatbase), None, Some(2)),
            Fault {
                kind: FaultKind::Reset,
                ..fault(None, None, None)
            },
        ];
        let path = "/chatbase/api/v1/get-conversations";
        assert_eq!(
            take_matching(&mut faults, Vendor::Chatbase, path),
            Some(FaultKind::Malformed)
        );
        assert_eq!(faults[0].times, Some(1));
        assert_eq!(
            take_matching(&mut faults, Vendor::Chatbase, path),
            Some(FaultKind::Malformed)
        );
        assert_eq!(faults.len(), 1);
        assert_eq!(
            take_matching(&mut faults, Vendor::Chatbase, path),
            Some(FaultKind::Reset)
        );
        assert_eq!(faults.len(), 1, "an unlimited fault stays");
    }

    #[test]
    fn fault_json_uses_the_documented_tags() {
        let f: Fault = serde_json::from_str(
            r#"{"vendor":"chatling","kind":{"type":"status","status":503,"retry_after":"2"}}"#,
        )
        .expect("documented fault JSON parses");
        assert_eq!(
            f,
            Fault {
                vendor: Some(Vendor::Chatling),
                path_contains: None,
                times: None,
                kind: FaultKind::Status {
                    status: 503,
                    body: None,
                    retry_after: Some("2".into())
                },
            }
        );
        let slow: FaultKind =
            serde_json::from_str(r#"{"type":"slow_body","chunk_delay_ms":5}"#).expect("parses");
        assert_eq!(slow, FaultKind::SlowBody { chunk_delay_ms: 5 });
        let any: Fault = serde_json::from_str(r#"{"vendor":null,"kind":{"type":"wrong_shape"}}"#)
            .expect("parses");
        assert_eq!(any.vendor, None);
    }

    mod http {
        use super::*;
        use crate::testutil::{call, call_json, raw_get, spawn, split_head, try_call, Call};
        use crate::{CHATBASE_KEY, CHATLING_BOT, CHATLING_KEY};
        use serde_json::{json, Value};
        use std::time::Instant;

        fn chatbase_list() -> Call {
            Call::get(Vendor::Chatbase, "/get-conversations?chatbotId=cb-support").key(CHATBASE_KEY)
        }

        fn chatling_list() -> Call {
            Call::get(
                Vendor::Chatling,
                &format!("/chatbots/{CHATLING_BOT}/conversations"),
            )
            .key(CHATLING_KEY)
        }

        fn always(vendor: Option<Vendor>, kind: FaultKind) -> Fault {
            Fault {
                vendor,
                path_contains: None,
                times: None,
                kind,
            }
        }

        #[actix_web::test]
        async fn status_fault_uses_the_vendor_error_shape_and_retry_after() {
            let server = spawn().await;
            server.state.add_fault(Fault {
                vendor: Some(Vendor::Chatling),
                path_contains: None,
                times: Some(2),
                kind: FaultKind::Status {
                    status: 503,
                    body: None,
                    retry_after: Some("7".into()),
                },
            });
            for _ in 0..2 {
                let response = call(&server, chatling_list()).await;
                assert_eq!(response.status, 503);
                assert_eq!(response.retry_after.as_deref(), Some("7"));
                assert_eq!(response.content_type.as_deref(), Some("application/json"));
                assert_eq!(
                    response.body.as_ref(),
                    br#"{"status":"error","message":"Injected fault: status 503"}"#
                );
            }
            let response = call(&server, chatling_list()).await;
            assert_eq!(
                (response.status, response.retry_after),
                (200, None),
                "times: 2 used up"
            );
            assert_eq!(
                server.state.request_count(Vendor::Chatling),
                3,
                "faulted calls count"
            );

            server.state.add_fault(always(
                Some(Vendor::Chatbase),
                FaultKind::Status {
                    status: 429,
                    body: Some(r#"{"message":"slow down"}"#.into()),
                    retry_after: None,
                },
            ));
            let (status, body) = call_json(&server, chatbase_list()).await;
            assert_eq!((status, body), (429, json!({"message": "slow down"})));
            // Faults come before auth: a bad key still gets the fault.
            let (status, _) = call_json(
                &server,
                Call::get(Vendor::Chatbase, "/get-conversations?chatbotId=cb-support").key("bad"),
            )
            .await;
            assert_eq!(status, 429);
            assert!(!server.state.requests().last().is_some_and(|r| r.auth_ok));
            assert_eq!(
                call(&server, chatling_list()).await.status,
                200,
                "other vendor untouched"
            );
            server.stop().await;
        }

        #[actix_web::test]
        async fn delay_fault_waits_then_answers_normally() {
            let server = spawn().await;
            let normal = call(&server, chatbase_list()).await.body;
            server.state.add_fault(Fault {
                times: Some(1),
                ..always(None, FaultKind::Delay { ms: 80 })
            });
            let started = Instant::now();
            let response = call(&server, chatbase_list()).await;
            assert!(
                started.elapsed() >= Duration::from_millis(80),
                "{:?}",
                started.elapsed()
            );
            assert_eq!((response.status, response.body), (200, normal));
            server.stop().await;
        }

        #[actix_web::test]
        async fn malformed_and_wrong_shape_are_200s_a_parser_must_reject() {
            let server = spawn().await;
            server.state.add_fault(Fault {
                times: Some(1),
                ..always(None, FaultKind::Malformed)
            });
            let response = call(&server, chatbase_list()).await;
            assert_eq!(response.status, 200);
            assert_eq!(response.content_type.as_deref(), Some("application/json"));
            assert!(serde_json::from_slice::<Value>(&response.body).is_err());

            server.state.add_fault(Fault {
                times: Some(2),
                ..always(None, FaultKind::WrongShape)
            });
            let (status, body) = call_json(&server, chatbase_list()).await;
            assert_eq!((status, body), (200, json!({"data": "nope"})));
            let (status, body) = call_json(&server, chatling_list()).await;
            assert_eq!(
                (status, body),
                (200, json!({"status": "success", "data": {"items": []}}))
            );
            server.stop().await;
        }

        #[actix_web::test]
        async fn huge_fault_streams_valid_json_of_the_requested_size() {
            let server = spawn().await;
            let size = 3 * 1024 * 1024 + 17;
            server.state.add_fault(Fault {
                times: Some(2),
                ..always(None, FaultKind::Huge { bytes: size })
            });
            let response = call(&server, chatbase_list()).await;
            assert_eq!(response.status, 200);
            assert_eq!(response.content_length, None, "streamed chunked");
            assert_eq!(response.body.len(), size);
            let body: Value = serde_json::from_slice(&response.body).expect("valid JSON");
            assert_eq!(body["data"], json!([]));

            let response = call(&server, chatling_list()).await;
            assert_eq!(response.body.len(), size);
            let body: Value = serde_json::from_slice(&response.body).expect("valid JSON");
            assert_eq!(body["status"], "success");
            assert_eq!(body["data"]["conversations"], json!([]));

            server.state.add_fault(Fault {
                times: Some(1),
                ..always(None, FaultKind::Huge { bytes: 3 })
            });
            let (_, body) = call_json(&server, chatbase_list()).await;
            assert_eq!(
                body,
                json!({"padding": "", "data": []}),
                "never smaller than valid JSON"
            );
            server.stop().await;
        }

        #[actix_web::test]
        async fn truncated_fault_ends_the_body_early() {
            let server = spawn().await;
            let normal = call(&server, chatbase_list()).await.body;
            let full = normal.len();
            server.state.add_fault(Fault {
                times: Some(2),
                ..always(None, FaultKind::Truncated)
            });
            // On the wire: the full Content-Length is announced, half the body arrives,
            // then the connection closes.
            let path = "/chatbase/api/v1/get-conversations?chatbotId=cb-support";
            let raw = raw_get(&server, path, CHATBASE_KEY).await;
            let (head, body) = split_head(&raw);
            assert!(head.starts_with("http/1.1 200"), "{head}");
            assert!(head.contains(&format!("content-length: {full}")), "{head}");
            assert_eq!(body, &normal[..full / 2]);

            // awc 3 does not report a short Content-Length body as an error: a client
            // must compare lengths (or fail to parse the JSON) to notice.
            let response = try_call(&server, chatbase_list())
                .await
                .expect("the head arrives");
            assert_eq!(response.status, 200);
            assert_eq!(response.content_length, Some(full as u64));
            assert!(
                response.body_error.is_some() || response.body.len() < full,
                "the body must not complete"
            );
            assert!(serde_json::from_slice::<Value>(&response.body).is_err());
            assert_eq!(
                call(&server, chatbase_list()).await.status,
                200,
                "the server still serves"
            );
            server.stop().await;
        }

        #[actix_web::test]
        async fn slow_body_sends_the_normal_answer_in_delayed_chunks() {
            let server = spawn().await;
            let normal = call(&server, chatling_list()).await.body;
            let chunks = normal.len().div_ceil(SLOW_BODY_CHUNK_BYTES) as u32;
            assert!(chunks >= 5, "{chunks}");
            server.state.add_fault(Fault {
                times: Some(1),
                ..always(
                    Some(Vendor::Chatling),
                    FaultKind::SlowBody { chunk_delay_ms: 4 },
                )
            });
            let started = Instant::now();
            let response = call(&server, chatling_list()).await;
            assert!(
                started.elapsed() >= Duration::from_millis(4) * (chunks - 1),
                "{:?}",
                started.elapsed()
            );
            assert_eq!(response.status, 200);
            assert_eq!(response.body, normal);
            server.stop().await;
        }

        #[actix_web::test]
        async fn reset_fault_drops_the_connection_without_a_response() {
            let server = spawn().await;
            server.state.add_fault(Fault {
                times: Some(1),
                ..always(Some(Vendor::Chatbase), FaultKind::Reset)
            });
            let path = "/chatbase/api/v1/get-conversations?chatbotId=cb-support";
            let started = Instant::now();
            let raw = raw_get(&server, path, CHATBASE_KEY).await;
            assert_eq!(raw, b"", "not even a status line");
            assert!(
                started.elapsed() < Duration::from_secs(2),
                "closed, not timed out"
            );
            server.state.add_fault(Fault {
                times: Some(1),
                ..always(Some(Vendor::Chatbase), FaultKind::Reset)
            });
            let result = try_call(&server, chatbase_list()).await;
            assert!(result.is_err(), "an HTTP client sees a connection error");
            assert_eq!(server.state.request_count(Vendor::Chatbase), 2);
            assert_eq!(
                call(&server, chatbase_list()).await.status,
                200,
                "the server still serves"
            );
            server.stop().await;
        }

        #[actix_web::test]
        async fn first_matching_fault_wins_and_path_filters_apply() {
            let server = spawn().await;
            server.state.add_fault(Fault {
                vendor: Some(Vendor::Chatling),
                path_contains: Some("/messages".into()),
                times: None,
                kind: FaultKind::Status {
                    status: 500,
                    body: None,
                    retry_after: None,
                },
            });
            server.state.add_fault(always(
                None,
                FaultKind::Status {
                    status: 502,
                    body: None,
                    retry_after: None,
                },
            ));
            let messages = Call::get(
                Vendor::Chatling,
                &format!("/chatbots/{CHATLING_BOT}/conversations/1/messages"),
            )
            .key(CHATLING_KEY);
            assert_eq!(call(&server, messages).await.status, 500);
            assert_eq!(call(&server, chatling_list()).await.status, 502);
            assert_eq!(call(&server, chatbase_list()).await.status, 502);
            server.state.clear_faults();
            assert_eq!(call(&server, chatbase_list()).await.status, 200);
            server.stop().await;
        }
    }
}
