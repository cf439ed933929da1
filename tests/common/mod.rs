//! Shared harness: the real gateway and the built-in emulator, in-process, on
//! ephemeral loopback ports, talking real HTTP.
#![allow(dead_code, clippy::unwrap_used, missing_docs)]

pub mod redis;

use std::net::SocketAddr;
use std::sync::Arc;

use awc::http::{header, Method, StatusCode};
use bytes::Bytes;
use chatgate::clock::{Clock, ManualClock};
use chatgate::config;
use chatgate::demo::{self, DEMO_KEY};
use chatgate::server::{self, RunningServer};
use chatgate_emulator::{
    self as emulator, EmulatorServer, EmulatorState, Fault, FaultKind, Vendor,
};
use serde_json::Value;

pub const ANY_ADDR: &str = "127.0.0.1:0";

/// An emulator and a gateway configured against it (the demo's config, which has
/// bots `support` (Chatbase), `sales` (Chatzuri), `sales-legacy` (Chatzuri legacy
/// dialect), `helpdesk` (Chatling) and clients `demo` (all bots) and `support-only`).
pub struct Harness {
    pub emu: EmulatorServer,
    pub gateway: RunningServer,
    pub base: String,
    client: awc::Client,
}

/// A response, read whole.
pub struct Resp {
    pub status: StatusCode,
    pub headers: awc::http::header::HeaderMap,
    pub body: Bytes,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts an error response in the documented flat shape and returns it.
    pub fn expect_error(&self, status: u16, code: &str) -> Value {
        assert_eq!(
            self.status.as_u16(),
            status,
            "body: {}",
            String::from_utf8_lossy(&self.body)
        );
        let body = self.json();
        assert_eq!(body["code"], code, "{body}");
        assert!(
            body["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{body}"
        );
        assert_eq!(
            body["request_id"].as_str(),
            self.header("x-request-id"),
            "the body's request id is the header's"
        );
        assert!(
            self.header("content-type")
                .unwrap()
                .starts_with("application/json"),
            "errors are JSON"
        );
        body
    }

    pub fn ok(&self) -> Value {
        assert_eq!(
            self.status,
            StatusCode::OK,
            "body: {}",
            String::from_utf8_lossy(&self.body)
        );
        self.json()
    }
}

impl Harness {
    /// The demo config against a fresh emulator, with client quotas raised so
    /// tests that page through whole data sets are not about rate limits.
    pub async fn start() -> Self {
        Self::start_with(|toml| toml).await
    }

    /// The demo config exactly as `chatgate demo` runs it (real client quotas).
    pub async fn start_as_demo(edit: impl FnOnce(String) -> String) -> Self {
        let state = EmulatorState::new(emulator::DEFAULT_SEED);
        Self::start_raw(state, edit).await
    }

    /// The demo config, edited by `edit`, against a fresh emulator.
    pub async fn start_with(edit: impl FnOnce(String) -> String) -> Self {
        let state = EmulatorState::new(emulator::DEFAULT_SEED);
        Self::start_on(state, edit).await
    }

    /// Like [`start_with`] on a given emulator state.
    pub async fn start_on(state: Arc<EmulatorState>, edit: impl FnOnce(String) -> String) -> Self {
        Self::start_raw(state, |toml| edit(unlimited(toml))).await
    }

    /// Like [`start_with`], the gateway running on `clock`: its rate limits,
    /// cache lifetimes, failed-login blocks and `received_at` move only when
    /// the test advances it. (The vendor-call phases in `gateway.rs` — 429
    /// pause, circuit breaker, deadline — still run on the system's time.)
    pub async fn start_with_clock(
        clock: &ManualClock,
        edit: impl FnOnce(String) -> String,
    ) -> Self {
        let state = EmulatorState::new(emulator::DEFAULT_SEED);
        Self::start_clocked(state, clock.clone().into(), |toml| edit(unlimited(toml))).await
    }

    /// [`start_as_demo`] (real client quotas) on `clock`.
    pub async fn start_as_demo_with_clock(
        clock: &ManualClock,
        edit: impl FnOnce(String) -> String,
    ) -> Self {
        let state = EmulatorState::new(emulator::DEFAULT_SEED);
        Self::start_clocked(state, clock.clone().into(), edit).await
    }

    async fn start_raw(state: Arc<EmulatorState>, edit: impl FnOnce(String) -> String) -> Self {
        Self::start_clocked(state, Clock::system(), edit).await
    }

    async fn start_clocked(
        state: Arc<EmulatorState>,
        clock: Clock,
        edit: impl FnOnce(String) -> String,
    ) -> Self {
        let emu = emulator::start(ANY_ADDR.parse().unwrap(), state, 1)
            .await
            .unwrap();
        let toml = edit(demo::config_toml(&emu, ANY_ADDR.parse().unwrap()));
        let config = config::from_toml_str(&toml).unwrap_or_else(|e| panic!("{e}"));
        let gateway = server::start_with_clock(config, false, clock)
            .await
            .unwrap();
        let base = format!("http://{}", gateway.addr);
        Self {
            emu,
            gateway,
            base,
            client: awc::Client::builder()
                .timeout(std::time::Duration::from_secs(30))
                .finish(),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.gateway.addr
    }

    pub fn state(&self) -> &EmulatorState {
        &self.emu.state
    }

    /// GET with the demo key.
    pub async fn get(&self, path_and_query: &str) -> Resp {
        self.request(Method::GET, path_and_query, Some(DEMO_KEY), &[], None)
            .await
    }

    /// GET with a given key (or none).
    pub async fn get_as(&self, key: Option<&str>, path_and_query: &str) -> Resp {
        self.request(Method::GET, path_and_query, key, &[], None)
            .await
    }

    /// POST a body with the demo key.
    pub async fn post(&self, path_and_query: &str, body: impl Into<Bytes>) -> Resp {
        self.request(
            Method::POST,
            path_and_query,
            Some(DEMO_KEY),
            &[],
            Some(body.into()),
        )
        .await
    }

    pub async fn request(
        &self,
        method: Method,
        path_and_query: &str,
        key: Option<&str>,
        headers: &[(&str, &str)],
        body: Option<Bytes>,
    ) -> Resp {
        let mut req = self
            .client
            .request(method, format!("{}{}", self.base, path_and_query));
        if let Some(key) = key {
            req = req.insert_header((header::AUTHORIZATION, format!("Bearer {key}")));
        }
        for (k, v) in headers {
            req = req.insert_header((*k, *v));
        }
        let mut res = match body {
            Some(b) => req
                .insert_header((header::CONTENT_TYPE, "application/json"))
                .send_body(b)
                .await
                .unwrap(),
            None => req.send().await.unwrap(),
        };
        let body = res.body().limit(64 * 1024 * 1024).await.unwrap();
        Resp {
            status: res.status(),
            headers: res.headers().clone(),
            body,
        }
    }

    /// Vendor calls the emulator has received for `vendor`.
    pub fn calls(&self, vendor: Vendor) -> u64 {
        self.state().request_count(vendor)
    }

    pub async fn stop(self) {
        self.gateway.stop().await;
        self.emu.stop().await;
    }
}

/// Raises the demo clients' quotas and the vendor guards far beyond what any
/// test sends, for tests that are not about rate limits.
pub fn unlimited(toml: String) -> String {
    let mut toml = toml
        .replace(
            "requests_per_minute = 600\nburst = 20",
            "requests_per_minute = 1000000\nburst = 100000",
        )
        .replace(
            "requests_per_minute = 60\nburst = 5",
            "requests_per_minute = 1000000\nburst = 100000",
        );
    for provider in [
        "chatbase",
        "chatzuri",
        "chatzuri-legacy",
        "chatling",
        "chatbase-v2",
    ] {
        let table = format!("[providers.{provider}]\n");
        toml = toml.replace(
            &table,
            &format!("{table}max_requests_per_second = 100000\n"),
        );
    }
    toml
}

/// The ids of a list response's conversations, in order.
pub fn ids(body: &Value) -> Vec<String> {
    body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_owned())
        .collect()
}

/// Parses an RFC 3339 `created_at` for ordering checks.
pub fn created_at(c: &Value) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339(c["created_at"].as_str().unwrap())
        .unwrap()
        .with_timezone(&chrono::Utc)
}

/// A fault on every request to `vendor` until cleared.
pub fn fault(vendor: Vendor, kind: FaultKind) -> Fault {
    fault_n(vendor, None, kind)
}

/// A fault on the next `times` requests to `vendor` (`None`: until cleared).
pub fn fault_n(vendor: Vendor, times: Option<u32>, kind: FaultKind) -> Fault {
    Fault {
        vendor: Some(vendor),
        path_contains: None,
        times,
        kind,
    }
}

/// A vendor answer with this status, the vendor's default error body and an
/// optional `Retry-After`.
pub fn status(status: u16, retry_after: Option<&str>) -> FaultKind {
    FaultKind::Status {
        status,
        body: None,
        retry_after: retry_after.map(str::to_owned),
    }
}

/// Adds `lines` to the `[providers.<provider>]` table of the demo TOML.
pub fn tune_provider(toml: String, provider: &str, lines: &str) -> String {
    let table = format!("[providers.{provider}]\n");
    assert!(toml.contains(&table), "no {table} in the config");
    toml.replace(&table, &format!("{table}{lines}\n"))
}

/// Appends a `[cache]` table (the demo config has none).
pub fn with_cache(toml: String, cache: &str) -> String {
    format!("{toml}\n[cache]\n{cache}\n")
}

/// The `X-Cache` header of a response.
pub fn x_cache(r: &Resp) -> &str {
    r.header("x-cache").unwrap_or("")
}

/// Points the demo config's Chatbase provider at a local server of the test's
/// own (a raw "vendor" that misbehaves in ways the emulator cannot).
pub fn chatbase_at(toml: String, port: u16) -> String {
    toml.lines()
        .map(|l| {
            if l.starts_with("base_url") && l.contains("/chatbase/") {
                format!("base_url = \"http://127.0.0.1:{port}/chatbase/api/v1\"")
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}
