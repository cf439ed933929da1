//! Clients that do not speak HTTP/1.1 as they should, over raw TCP: whatever
//! they send, the answer is the documented JSON error (status, `code`,
//! `message`, `request_id` equal to `X-Request-Id`, `Content-Type`,
//! `Connection: close`) and the connection ends; no body or head trickled a byte
//! at a time holds a connection.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread;
use std::time::Duration;

use chatgate::demo::DEMO_KEY;
use common::Harness;
use serde_json::Value;

/// Generous: the machine is slow and shared. Only a connection that never
/// answers runs into it.
const READ_TIMEOUT: Duration = Duration::from_secs(20);

/// The body timeout the tests configure.
fn short_body_timeout(toml: String) -> String {
    toml.replace("[server]\n", "[server]\nrequest_body_timeout_ms = 300\n")
}

/// One answer read off the wire.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Asserts the documented error shape and headers; returns the body.
    fn expect_error(&self, status: u16, code: &str, what: &str) -> Value {
        let text = String::from_utf8_lossy(&self.body);
        assert_eq!(self.status, status, "{what}: {text}");
        assert_eq!(
            self.header("content-type"),
            Some("application/json; charset=utf-8"),
            "{what}"
        );
        let body: Value = serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {text}"));
        assert_eq!(body["code"], code, "{what}: {body}");
        assert!(
            body["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{what}: {body}"
        );
        let id = self.header("x-request-id").unwrap_or_default();
        assert!(!id.is_empty(), "{what}: no X-Request-Id");
        assert_eq!(body["request_id"].as_str(), Some(id), "{what}");
        body
    }

    fn closes(&self) -> bool {
        self.header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"))
    }
}

/// A raw client connection and what it has read but not yet consumed.
struct Client {
    stream: TcpStream,
    read: Vec<u8>,
}

impl Client {
    fn connect(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
        Self {
            stream,
            read: Vec::new(),
        }
    }

    /// Sends bytes; the server may close before it has read them all (it has
    /// answered by then), so a failed write is not a failure.
    fn send(&mut self, bytes: &[u8]) {
        let _ = self.stream.write_all(bytes);
    }

    /// Reads one whole answer (`head_request`: the answer to a `HEAD`, no body).
    /// A reset after the answer's last byte is how a server may close a
    /// connection it did not read to the end.
    fn answer(&mut self, head_request: bool) -> Answer {
        loop {
            if let Some(answer) = self.take_answer(head_request) {
                return answer;
            }
            let mut chunk = [0u8; 16 * 1024];
            match self.stream.read(&mut chunk) {
                Ok(0) => panic!(
                    "connection closed mid-answer: {:?}",
                    String::from_utf8_lossy(&self.read)
                ),
                Ok(n) => self.read.extend_from_slice(&chunk[..n]),
                Err(e) => panic!(
                    "no answer ({e}) after {:?}",
                    String::from_utf8_lossy(&self.read)
                ),
            }
        }
    }

    fn take_answer(&mut self, head_request: bool) -> Option<Answer> {
        let end = self.read.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut parsed = httparse::Response::new(&mut headers);
        parsed.parse(&self.read[..end]).unwrap();
        let status = parsed.code.unwrap();
        let headers: Vec<(String, String)> = parsed
            .headers
            .iter()
            .map(|h| {
                (
                    h.name.to_owned(),
                    String::from_utf8_lossy(h.value).into_owned(),
                )
            })
            .collect();
        let length: usize = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
            .map_or(0, |(_, v)| v.parse().unwrap());
        let length = if head_request { 0 } else { length };
        if self.read.len() < end + length {
            return None;
        }
        let body = self.read[end..end + length].to_vec();
        self.read.drain(..end + length);
        Some(Answer {
            status,
            headers,
            body,
        })
    }

    /// Whether the server ends the connection (end of stream or a reset)
    /// before [`READ_TIMEOUT`], sending nothing more.
    fn is_closed(&mut self) -> bool {
        let mut byte = [0u8; 1];
        match self.stream.read(&mut byte) {
            Ok(0) => self.read.is_empty(),
            Err(e) => e.kind() == ErrorKind::ConnectionReset,
            Ok(_) => false,
        }
    }
}

/// Sends `request` on a new connection and reads the answer.
fn exchange(addr: SocketAddr, request: &[u8]) -> (Answer, Client) {
    let mut client = Client::connect(addr);
    client.send(request);
    (client.answer(false), client)
}

/// Runs blocking socket work off the test's runtime thread.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    actix_rt::task::spawn_blocking(f).await.unwrap()
}

fn hostile_requests() -> Vec<(&'static str, Vec<u8>, u16, &'static str)> {
    let many_headers: String = (0..200).map(|i| format!("X-Header-{i}: v\r\n")).collect();
    vec![
        (
            "200 request headers",
            format!("GET /healthz HTTP/1.1\r\nHost: x\r\n{many_headers}\r\n").into_bytes(),
            431,
            "headers_too_large",
        ),
        (
            "a 200 KiB header",
            format!(
                "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
                "a".repeat(200 * 1024)
            )
            .into_bytes(),
            431,
            "headers_too_large",
        ),
        (
            "a 64 KiB query",
            format!(
                "GET /api/v1/get-conversations?chatbotId={} HTTP/1.1\r\nHost: x\r\n\r\n",
                "a".repeat(64 * 1024)
            )
            .into_bytes(),
            400,
            "invalid_request",
        ),
        (
            "Content-Length: 1e20",
            b"POST /api/v1/get-conversations HTTP/1.1\r\nHost: x\r\n\
              Content-Length: 100000000000000000000\r\n\r\n"
                .to_vec(),
            400,
            "invalid_request",
        ),
        (
            "an HTTP/0.9 request line",
            b"GET /healthz\r\n\r\n".to_vec(),
            400,
            "invalid_request",
        ),
        (
            "the HTTP/2 preface",
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec(),
            400,
            "invalid_request",
        ),
        (
            "HTTP/9.9",
            b"GET /healthz HTTP/9.9\r\nHost: x\r\n\r\n".to_vec(),
            400,
            "invalid_request",
        ),
        (
            "a malformed request line",
            b"G E T /healthz HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
            400,
            "invalid_request",
        ),
        (
            "a header without a colon",
            b"GET /healthz HTTP/1.1\r\nHost x\r\n\r\n".to_vec(),
            400,
            "invalid_request",
        ),
    ]
}

#[actix_rt::test]
async fn requests_the_http_layer_refuses_get_the_documented_json_error() {
    let h = Harness::start().await;
    let addr = h.addr();
    blocking(move || {
        for (what, request, status, code) in hostile_requests() {
            let (answer, mut client) = exchange(addr, &request);
            answer.expect_error(status, code, what);
            assert!(answer.closes(), "{what}: Connection: close");
            assert!(client.is_closed(), "{what}: the connection ends");
        }
    })
    .await;
    h.stop().await;
}

#[actix_rt::test]
async fn the_metrics_listener_answers_the_same_way() {
    let h = Harness::start_with(|t| {
        t.replace("[server]\n", "[server]\nmetrics_bind = \"127.0.0.1:0\"\n")
    })
    .await;
    let addr = h.gateway.metrics_addr.unwrap();
    blocking(move || {
        for (what, request, status, code) in hostile_requests() {
            exchange(addr, &request).0.expect_error(status, code, what);
        }
        let (answer, _) = exchange(addr, b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n");
        answer.expect_error(404, "not_found", "an unknown path");
        let (answer, _) = exchange(
            addr,
            b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
        );
        answer.expect_error(405, "method_not_allowed", "POST /metrics");
        let (answer, _) = exchange(addr, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(answer.status, 200);
    })
    .await;
    h.stop().await;
}

#[actix_rt::test]
async fn answers_before_a_refused_request_on_one_connection_are_untouched() {
    let h = Harness::start().await;
    let addr = h.addr();
    blocking(move || {
        let mut client = Client::connect(addr);
        client.send(
            b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n\
              HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n\
              GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n\
              G E T / HTTP/1.1\r\n\r\n",
        );
        let first = client.answer(false);
        assert_eq!(first.status, 200);
        assert_eq!(first.body, br#"{"status":"ok"}"#);
        let head = client.answer(true);
        assert_eq!(head.status, 200, "HEAD is GET without its body");
        assert!(head.header("x-request-id").is_some());
        assert_eq!(
            head.header("content-length"),
            None,
            "no body, whatever actix thinks"
        );
        let ready = client.answer(false);
        assert_eq!(ready.body, br#"{"status":"ready"}"#);
        let refused = client.answer(false);
        refused.expect_error(400, "invalid_request", "the fourth, pipelined");
        assert_ne!(
            refused.header("x-request-id"),
            first.header("x-request-id"),
            "a fresh id"
        );
        assert!(client.is_closed());
    })
    .await;
    h.stop().await;
}

#[actix_rt::test]
async fn heads_not_finished_in_time_get_408_json_first_or_later_on_a_connection() {
    let h = Harness::start().await;
    let addr = h.addr();
    let first = thread::spawn(move || {
        let mut client = Client::connect(addr);
        client.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n");
        let answer = client.answer(false);
        answer.expect_error(408, "request_timeout", "a first head never finished");
        assert!(answer.closes() && client.is_closed());
    });
    let later = thread::spawn(move || {
        let mut client = Client::connect(addr);
        client.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(client.answer(false).status, 200);
        client.send(b"GET /healthz HTTP/1.1\r\n");
        let answer = client.answer(false);
        answer.expect_error(408, "request_timeout", "a second head never finished");
        assert!(answer.closes() && client.is_closed());
    });
    blocking(move || {
        first.join().unwrap();
        later.join().unwrap();
    })
    .await;
    h.stop().await;
}

#[actix_rt::test]
async fn a_busy_connection_is_never_timed_out_between_its_requests() {
    // Answers the app gives at once (a health check, a cache hit) never let a
    // read see a request in the app: the head deadline must still end with
    // each answer, not fire mid-stream on a connection that is always busy.
    let h = Harness::start().await;
    let addr = h.addr();
    blocking(move || {
        let mut client = Client::connect(addr);
        // Pauses alone outlast the head timeout, however fast the answers.
        let pause = Duration::from_millis(50);
        let rounds = (chatgate::server::wire::HEAD_TIMEOUT + Duration::from_secs(2)).as_millis()
            / pause.as_millis();
        for answered in 0..rounds {
            client.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
            let answer = client.answer(false);
            assert_eq!(
                answer.status,
                200,
                "answer {answered}: {}",
                String::from_utf8_lossy(&answer.body)
            );
            thread::sleep(pause);
        }
    })
    .await;
    h.stop().await;
}

/// Writes `body` a byte at a time, every 100 ms, until it is sent or the server
/// closes; runs beside the reader.
fn trickle(client: &Client, body: &'static [u8]) -> thread::JoinHandle<()> {
    let mut stream = client.stream.try_clone().unwrap();
    thread::spawn(move || {
        for byte in body.chunks(1) {
            if stream.write_all(byte).is_err() {
                return;
            }
            thread::sleep(Duration::from_millis(100));
        }
    })
}

#[actix_rt::test]
async fn a_trickled_body_is_answered_408_json_and_the_connection_closes() {
    let h = Harness::start_with(short_body_timeout).await;
    let addr = h.addr();
    blocking(move || {
        for (what, framing, body) in [
            (
                "Content-Length",
                "Content-Length: 40\r\n",
                &br#"{"chatbotId":"support","size":2}        "#[..],
            ),
            (
                "chunked",
                "Transfer-Encoding: chunked\r\n",
                &b"1\r\n{\r\n1\r\n}\r\n1\r\n \r\n1\r\n \r\n1\r\n \r\n1\r\n \r\n0\r\n\r\n"[..],
            ),
        ] {
            let mut client = Client::connect(addr);
            client.send(
                format!(
                    "POST /api/v1/get-conversations HTTP/1.1\r\nHost: x\r\n\
                     Authorization: Bearer {DEMO_KEY}\r\nContent-Type: application/json\r\n\
                     {framing}\r\n"
                )
                .as_bytes(),
            );
            let writer = trickle(&client, body);
            let answer = client.answer(false);
            let error = answer.expect_error(408, "request_timeout", what);
            assert!(
                error["message"].as_str().unwrap().contains("300 ms"),
                "{error}"
            );
            assert!(answer.closes(), "{what}");
            assert!(client.is_closed(), "{what}: the connection ends");
            writer.join().unwrap();
        }
    })
    .await;
    h.stop().await;
}

#[actix_rt::test]
async fn a_body_left_unread_by_its_answer_cannot_hold_the_connection() {
    let h = Harness::start_with(short_body_timeout).await;
    let addr = h.addr();
    blocking(move || {
        for (what, request, status) in [
            (
                "a chunked body to a POST without a key",
                "POST /api/v1/get-conversations HTTP/1.1\r\nHost: x\r\n\
                 Transfer-Encoding: chunked\r\n\r\n",
                401,
            ),
            (
                "a body to GET /healthz",
                "GET /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
                200,
            ),
        ] {
            let mut client = Client::connect(addr);
            client.send(request.as_bytes());
            let writer = trickle(
                &client,
                b"1\r\na\r\n1\r\na\r\n1\r\na\r\n1\r\na\r\n1\r\na\r\n",
            );
            let answer = client.answer(false);
            assert_eq!(answer.status, status, "{what}");
            assert!(answer.closes(), "{what}: Connection: close");
            assert!(client.is_closed(), "{what}: the connection ends");
            writer.join().unwrap();
        }
    })
    .await;
    h.stop().await;
}

#[actix_rt::test]
async fn a_body_sent_in_time_is_served_and_keeps_the_connection() {
    let h = Harness::start_with(short_body_timeout).await;
    let addr = h.addr();
    blocking(move || {
        let body = r#"{"chatbotId":"support","size":2}"#;
        let request = format!(
            "POST /api/v1/get-conversations HTTP/1.1\r\nHost: x\r\n\
             Authorization: Bearer {DEMO_KEY}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let mut client = Client::connect(addr);
        for _ in 0..2 {
            client.send(request.as_bytes());
            let answer = client.answer(false);
            assert_eq!(
                answer.status,
                200,
                "{}",
                String::from_utf8_lossy(&answer.body)
            );
            assert!(!answer.closes());
        }
    })
    .await;
    h.stop().await;
}
