//! The HTTP server: one actix app serving every vendor under its prefix plus the control
//! API, and the request pipeline every vendor call goes through.
//!
//! Pipeline, in order (order matters, tests rely on it):
//! 1. route by prefix (`/chatbase/api/v1`, `/chatzuri/api/v1`, `/chatling/v2`,
//!    `/chatbase/api/v2`); other
//!    paths are a bare 404 and are not recorded;
//! 2. take the first matching fault (before auth: a fault simulates the vendor's
//!    infrastructure failing, whatever the request);
//! 3. record the request (faulted ones too, so tests can count every upstream call);
//! 4. Chatling and Chatbase v2 only: their rate limits, when set (Chatling's per
//!    minute without `Retry-After`, Chatbase v2's 10-second sliding window with it);
//! 5. bearer key check (401 in the vendor's error shape);
//! 6. the vendor's own routing and parameter validation.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use actix_web::dev::ServerHandle;
use actix_web::http::{header, StatusCode};
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use bytes::Bytes;

use super::answer::Answer;
use super::state::{EmulatorState, RecordedRequest};
use super::{chatbase, chatbase_v2, chatling, control, faults, Vendor};

/// Seconds a graceful stop waits for in-flight answers (a `SlowBody` fault could
/// otherwise hold a test's shutdown for actix's default 30 s).
const SHUTDOWN_TIMEOUT_SECS: u64 = 2;

/// A running emulator server; dropping it leaves the server running until its actix
/// system stops, [`stop`](Self::stop) ends it gracefully.
pub struct EmulatorServer {
    /// The bound address (the real port when bound to port 0).
    pub addr: SocketAddr,
    /// The state the server answers from; change data, faults or settings through it.
    pub state: Arc<EmulatorState>,
    handle: ServerHandle,
}

impl EmulatorServer {
    /// The base URL a gateway provider of `vendor` should use, e.g.
    /// `http://127.0.0.1:PORT/chatbase/api/v1`.
    pub fn base_url(&self, vendor: Vendor) -> String {
        format!("http://{}{}", self.addr, vendor.prefix())
    }

    /// Stops accepting connections and waits (briefly) for in-flight answers.
    pub async fn stop(self) {
        self.handle.stop(true).await;
    }

    /// The actix handle, for callers that stop the server from elsewhere (a signal
    /// handler in `chatgate emulate`).
    pub fn handle(&self) -> ServerHandle {
        self.handle.clone()
    }
}

/// Binds `bind` (port 0 picks a free port), spawns the server on the current actix
/// system with `workers` worker threads (0: actix's default, one per physical core, for
/// `chatgate emulate` as a benchmark upstream), and returns once it is accepting, so
/// callers can connect immediately. OS signals are not handled here: the process that
/// embeds the emulator decides when to stop it ([`EmulatorServer::stop`]).
pub async fn start(
    bind: SocketAddr,
    state: Arc<EmulatorState>,
    workers: usize,
) -> io::Result<EmulatorServer> {
    let data = web::Data::from(Arc::clone(&state));
    let mut server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .service(control::scope())
            .default_service(web::to(vendor_entry))
    });
    if workers > 0 {
        server = server.workers(workers);
    }
    let server = server
        .disable_signals()
        .shutdown_timeout(SHUTDOWN_TIMEOUT_SECS)
        .bind(bind)?;
    let addr = server
        .addrs()
        .first()
        .copied()
        .ok_or_else(|| io::Error::other("the emulator bound no socket"))?;
    let server = server.run();
    let handle = server.handle();
    actix_rt::spawn(server);
    // The accept loop starts when the spawned server is first polled: yield once so it
    // runs before the caller continues (a caller that then blocks its thread would
    // otherwise find connections accepted by the kernel but never answered).
    actix_rt::task::yield_now().await;
    Ok(EmulatorServer {
        addr,
        state,
        handle,
    })
}

/// The vendor a path belongs to and the path below that vendor's prefix.
fn split_vendor(path: &str) -> Option<(Vendor, &str)> {
    Vendor::ALL.into_iter().find_map(|vendor| {
        let rest = path.strip_prefix(vendor.prefix())?;
        (rest.is_empty() || rest.starts_with('/')).then_some((vendor, rest))
    })
}

/// Whether the request carries `Authorization: Bearer <the vendor's key>`.
fn bearer_matches(req: &HttpRequest, vendor: Vendor) -> bool {
    req.headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .is_some_and(|(scheme, key)| scheme.eq_ignore_ascii_case("bearer") && key == vendor.key())
}

async fn vendor_entry(
    req: HttpRequest,
    body: Bytes,
    state: web::Data<EmulatorState>,
) -> HttpResponse {
    let Some((vendor, sub_path)) = split_vendor(req.path()) else {
        return HttpResponse::NotFound()
            .insert_header((header::CONTENT_TYPE, super::answer::JSON))
            .body(r#"{"message":"Not found"}"#);
    };
    let fault = state.take_fault(vendor, req.path());
    let auth_ok = bearer_matches(&req, vendor);
    state.record(RecordedRequest {
        vendor,
        method: req.method().to_string(),
        path: req.path().to_owned(),
        query: req.query_string().to_owned(),
        body: (!body.is_empty()).then(|| String::from_utf8_lossy(&body).into_owned()),
        auth_ok,
        request_id: req
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        received_ms: 0,
    });
    let normal = || {
        if vendor == Vendor::Chatling && state.chatling_over_limit() {
            return Answer::error(vendor, StatusCode::TOO_MANY_REQUESTS, "Too many requests");
        }
        if vendor == Vendor::ChatbaseV2 {
            if let Some(retry_after) = state.chatbase_v2_over_limit() {
                return chatbase_v2::rate_limited(retry_after);
            }
            if !auth_ok {
                return chatbase_v2::unauthorized(
                    req.headers().contains_key(header::AUTHORIZATION),
                );
            }
        }
        if !auth_ok {
            return Answer::error(vendor, StatusCode::UNAUTHORIZED, "Unauthorized");
        }
        match vendor {
            Vendor::Chatbase | Vendor::Chatzuri => chatbase::answer(
                &state,
                vendor,
                req.method(),
                sub_path,
                req.query_string(),
                &body,
            ),
            Vendor::Chatling => {
                chatling::answer(&state, req.method(), sub_path, req.query_string())
            }
            Vendor::ChatbaseV2 => {
                chatbase_v2::answer(&state, req.method(), sub_path, req.query_string())
            }
        }
    };
    match fault {
        None => normal().into_response(),
        Some(kind) => faults::respond(kind, vendor, normal).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{call, spawn, Call};
    use crate::{CHATBASE_KEY, CHATLING_KEY, CHATZURI_KEY, DEFAULT_SEED};

    #[test]
    fn split_vendor_requires_a_whole_prefix_segment() {
        assert_eq!(
            split_vendor("/chatbase/api/v1/get-conversations"),
            Some((Vendor::Chatbase, "/get-conversations"))
        );
        assert_eq!(
            split_vendor("/chatling/v2/chatbots/1/conversations"),
            Some((Vendor::Chatling, "/chatbots/1/conversations"))
        );
        assert_eq!(
            split_vendor("/chatzuri/api/v1"),
            Some((Vendor::Chatzuri, ""))
        );
        assert_eq!(split_vendor("/chatbase/api/v10/get-conversations"), None);
        assert_eq!(split_vendor("/api/v1/get-conversations"), None);
    }

    #[actix_web::test]
    async fn base_urls_point_at_each_vendor_prefix() {
        let server = start(
            "127.0.0.1:0".parse().expect("literal address"),
            EmulatorState::new(DEFAULT_SEED),
            2,
        )
        .await
        .expect("binds an ephemeral port");
        assert_ne!(server.addr.port(), 0);
        let port = server.addr.port();
        assert_eq!(
            server.base_url(Vendor::Chatbase),
            format!("http://127.0.0.1:{port}/chatbase/api/v1")
        );
        assert_eq!(
            server.base_url(Vendor::Chatzuri),
            format!("http://127.0.0.1:{port}/chatzuri/api/v1")
        );
        assert_eq!(
            server.base_url(Vendor::Chatling),
            format!("http://127.0.0.1:{port}/chatling/v2")
        );
        let response = awc::Client::default()
            .get(format!(
                "{}/get-conversations?chatbotId=cb-support",
                server.base_url(Vendor::Chatbase)
            ))
            .insert_header(("Authorization", format!("Bearer {CHATBASE_KEY}")))
            .send()
            .await
            .expect("the server answers as soon as start returns");
        assert_eq!(response.status(), 200);
        let handle = server.handle();
        server.stop().await;
        handle.stop(false).await; // stopping twice is harmless
    }

    #[actix_web::test]
    async fn serves_as_soon_as_start_returns_even_to_a_blocking_caller() {
        use std::io::{Read, Write};
        let server = spawn().await;
        // No await between start and this blocking exchange: the server must already
        // be accepting (it runs on its own threads once started).
        let mut stream = std::net::TcpStream::connect(server.addr).expect("connects");
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(2)))
            .expect("a non-zero timeout is valid");
        stream
            .write_all(b"GET /chatbase/api/v1/get-conversations HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .expect("writes");
        let mut received = Vec::new();
        let _ = stream.read_to_end(&mut received);
        assert!(
            received.starts_with(b"HTTP/1.1 401"),
            "{}",
            String::from_utf8_lossy(&received)
        );
        server.stop().await;
    }

    #[actix_web::test]
    async fn every_vendor_request_is_recorded_without_the_key() {
        let server = spawn().await;
        let calls = [
            Call::get(
                Vendor::Chatbase,
                "/get-conversations?chatbotId=cb-support&page=2",
            )
            .key(CHATBASE_KEY)
            .request_id("req-1"),
            Call::get(Vendor::Chatzuri, "/get-conversations?agentId=cz-sales").key("wrong-key"),
            Call::post(
                Vendor::Chatzuri,
                "/get-conversations",
                r#"{"chatbotId":"cz-sales"}"#,
            )
            .key(CHATZURI_KEY),
            Call::get(Vendor::Chatling, "/chatbots/5551234001/conversations").key(CHATLING_KEY),
            Call::get(Vendor::Chatling, "/nowhere"),
        ];
        for c in calls {
            call(&server, c).await;
        }
        // Not vendor paths: not recorded.
        assert_eq!(
            call(&server, Call::raw("GET", "/elsewhere")).await.status,
            404
        );
        assert_eq!(
            call(&server, Call::raw("GET", "/_emulator/requests"))
                .await
                .status,
            200
        );

        let log = server.state.requests();
        type Summary<'a> = (Vendor, &'a str, &'a str, &'a str, bool, Option<&'a str>);
        let summary: Vec<Summary<'_>> = log
            .iter()
            .map(|r| {
                (
                    r.vendor,
                    r.method.as_str(),
                    r.path.as_str(),
                    r.query.as_str(),
                    r.auth_ok,
                    r.request_id.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                (
                    Vendor::Chatbase,
                    "GET",
                    "/chatbase/api/v1/get-conversations",
                    "chatbotId=cb-support&page=2",
                    true,
                    Some("req-1")
                ),
                (
                    Vendor::Chatzuri,
                    "GET",
                    "/chatzuri/api/v1/get-conversations",
                    "agentId=cz-sales",
                    false,
                    None
                ),
                (
                    Vendor::Chatzuri,
                    "POST",
                    "/chatzuri/api/v1/get-conversations",
                    "",
                    true,
                    None
                ),
                (
                    Vendor::Chatling,
                    "GET",
                    "/chatling/v2/chatbots/5551234001/conversations",
                    "",
                    true,
                    None
                ),
                (
                    Vendor::Chatling,
                    "GET",
                    "/chatling/v2/nowhere",
                    "",
                    false,
                    None
                ),
            ]
        );
        assert_eq!(log[0].body, None);
        assert_eq!(log[2].body.as_deref(), Some(r#"{"chatbotId":"cz-sales"}"#));
        let dump = serde_json::to_string(&log).expect("records serialize");
        for key in [CHATBASE_KEY, CHATZURI_KEY, CHATLING_KEY, "wrong-key"] {
            assert!(!dump.contains(key), "a key leaked into the request log");
        }
        assert_eq!(server.state.request_count(Vendor::Chatbase), 1);
        assert_eq!(server.state.request_count(Vendor::Chatzuri), 2);
        assert_eq!(server.state.request_count(Vendor::Chatling), 2);
        server.stop().await;
    }

    #[actix_web::test]
    async fn bearer_scheme_is_case_insensitive_but_the_key_is_exact() {
        let server = spawn().await;
        let path = "/get-conversations?chatbotId=cb-support";
        let with_header =
            |value: &str| Call::get(Vendor::Chatbase, path).header("Authorization", value);
        assert_eq!(
            call(&server, with_header(&format!("bearer {CHATBASE_KEY}")))
                .await
                .status,
            200
        );
        assert_eq!(call(&server, with_header(CHATBASE_KEY)).await.status, 401);
        assert_eq!(
            call(
                &server,
                with_header(&format!("Bearer {}", CHATBASE_KEY.to_uppercase()))
            )
            .await
            .status,
            401
        );
        assert_eq!(
            call(&server, with_header(&format!("Basic {CHATBASE_KEY}")))
                .await
                .status,
            401
        );
        server.stop().await;
    }
}
