//! Test helpers: start an emulator on an ephemeral port and call it with a real HTTP
//! client (awc), so tests observe exactly what a gateway would.

use std::time::Duration;

use actix_web::http::Method;
use bytes::Bytes;
use serde_json::Value;

use super::{start, EmulatorServer, EmulatorState, Vendor, DEFAULT_SEED};

/// Starts an emulator with the default seed on 127.0.0.1:0, one worker.
pub(crate) async fn spawn() -> EmulatorServer {
    start(
        "127.0.0.1:0".parse().expect("literal address"),
        EmulatorState::new(DEFAULT_SEED),
        1,
    )
    .await
    .expect("the emulator binds an ephemeral loopback port")
}

/// A request to make: a vendor path (below the prefix) or a raw path.
pub(crate) struct Call {
    method: Method,
    path: String,
    headers: Vec<(String, String)>,
    body: Option<String>,
}

impl Call {
    pub(crate) fn get(vendor: Vendor, path: &str) -> Self {
        Self::raw("GET", &format!("{}{path}", vendor.prefix()))
    }

    pub(crate) fn post(vendor: Vendor, path: &str, body: &str) -> Self {
        Self::raw("POST", &format!("{}{path}", vendor.prefix())).body(body)
    }

    pub(crate) fn raw(method: &str, path: &str) -> Self {
        Call {
            method: Method::from_bytes(method.as_bytes()).expect("test methods are valid"),
            path: path.to_owned(),
            headers: Vec::new(),
            body: None,
        }
    }

    pub(crate) fn key(self, key: &str) -> Self {
        self.header("Authorization", &format!("Bearer {key}"))
    }

    pub(crate) fn request_id(self, id: &str) -> Self {
        self.header("X-Request-Id", id)
    }

    pub(crate) fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    pub(crate) fn body(mut self, body: &str) -> Self {
        self.body = Some(body.to_owned());
        self
    }
}

/// What came back; `body_error` is set when the body could not be read to the end.
pub(crate) struct Response {
    pub(crate) status: u16,
    pub(crate) content_type: Option<String>,
    pub(crate) content_length: Option<u64>,
    pub(crate) retry_after: Option<String>,
    pub(crate) header_names: Vec<String>,
    pub(crate) body: Bytes,
    pub(crate) body_error: Option<String>,
}

/// Result of a call that may fail at the connection level (faults that break it).
pub(crate) async fn try_call(server: &EmulatorServer, call: Call) -> Result<Response, String> {
    let client = awc::Client::builder()
        .timeout(Duration::from_secs(10))
        .finish();
    let mut request = client.request(call.method, format!("http://{}{}", server.addr, call.path));
    for (name, value) in &call.headers {
        request = request.insert_header((name.as_str(), value.as_str()));
    }
    let sent = match call.body {
        Some(body) => {
            request
                .content_type("application/json")
                .send_body(body)
                .await
        }
        None => request.send().await,
    };
    let mut response = sent.map_err(|e| e.to_string())?;
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let content_type = header("content-type");
    let content_length = header("content-length").and_then(|v| v.parse().ok());
    let retry_after = header("retry-after");
    let header_names = response
        .headers()
        .keys()
        .map(|k| k.as_str().to_owned())
        .collect();
    let status = response.status().as_u16();
    let (body, body_error) = match response.body().limit(64 * 1024 * 1024).await {
        Ok(body) => (body, None),
        Err(e) => (Bytes::new(), Some(e.to_string())),
    };
    Ok(Response {
        status,
        content_type,
        content_length,
        retry_after,
        header_names,
        body,
        body_error,
    })
}

/// A call that must get a complete response.
pub(crate) async fn call(server: &EmulatorServer, call: Call) -> Response {
    let response = try_call(server, call).await.expect("the emulator answers");
    assert_eq!(response.body_error, None, "the body must arrive whole");
    response
}

/// Status and JSON body (`Null` when the body is not JSON).
pub(crate) async fn call_json(server: &EmulatorServer, c: Call) -> (u16, Value) {
    let response = call(server, c).await;
    let body = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
    (response.status, body)
}

/// Sends `GET path` over a plain TCP socket and returns every byte the server sent until
/// it closed the connection, to observe framing that an HTTP client would hide or
/// forgive (a body shorter than its `Content-Length`, a connection closed before the
/// head). The blocking socket runs on actix's blocking pool.
pub(crate) async fn raw_get(server: &EmulatorServer, path: &str, key: &str) -> Vec<u8> {
    use std::io::{Read, Write};
    let addr = server.addr;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: emulator\r\nAuthorization: Bearer {key}\r\nConnection: close\r\n\r\n"
    );
    actix_web::web::block(move || {
        let mut stream =
            std::net::TcpStream::connect(addr).expect("the emulator accepts connections");
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("a non-zero timeout is valid");
        stream
            .write_all(request.as_bytes())
            .expect("the request is written");
        let mut received = Vec::new();
        // A reset connection may end with an error instead of EOF; a read timeout
        // would too, so the caller also checks the elapsed time where it matters.
        let _ = stream.read_to_end(&mut received);
        received
    })
    .await
    .expect("the blocking pool runs the raw request")
}

/// Splits raw response bytes into the lowercased head and the body.
pub(crate) fn split_head(raw: &[u8]) -> (String, &[u8]) {
    match raw.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(i) => (
            String::from_utf8_lossy(&raw[..i]).to_ascii_lowercase(),
            &raw[i + 4..],
        ),
        None => (String::from_utf8_lossy(raw).to_ascii_lowercase(), &[]),
    }
}
