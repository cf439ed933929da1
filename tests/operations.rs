//! Operating the real binary: hot reload on SIGHUP (under load, and rejected when
//! invalid), graceful shutdown on SIGTERM, and logs that never hold a key.
#![allow(clippy::unwrap_used, missing_docs, clippy::disallowed_methods)]

#[path = "common/process.rs"]
mod process;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use process::{bearer, emulator, free_port, http, try_http, wait_ready, Proc, BIN};

const CLIENT_KEY: &str = "operations-client-key-0123";
const SECRETS: [&str; 4] = [
    "emu-chatbase-secret",
    "emu-chatzuri-secret",
    "emu-chatling-secret",
    CLIENT_KEY,
];

/// A config against the emulator; `support` maps to `support_provider`.
fn config(emu: u16, gw: u16, support_provider: &str, support_bot: &str) -> String {
    let base = format!("http://127.0.0.1:{emu}");
    format!(
        r#"
[server]
bind = "127.0.0.1:{gw}"
workers = 2

[providers.chatbase]
base_url = "{base}/chatbase/api/v1"
api_key = "emu-chatbase-secret"
max_requests_per_second = 10000

[providers.chatling]
base_url = "{base}/chatling/v2"
api_key = "emu-chatling-secret"
max_requests_per_second = 10000

[bots.support]
provider = "{support_provider}"
chatbot_id = "{support_bot}"

[clients.ops]
key = "{CLIENT_KEY}"
bots = ["*"]
requests_per_minute = 1000000
burst = 100000
"#
    )
}

struct Gateway {
    proc: Proc,
    port: u16,
    _dir: tempfile::TempDir,
    path: PathBuf,
    log: PathBuf,
}

impl Gateway {
    /// Everything the gateway wrote to stderr. Logs go to a file, not a pipe: an
    /// undrained pipe fills up and blocks the process writing to it.
    fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap()
    }

    /// Sends SIGTERM and waits for the process to exit.
    fn terminate(&mut self) {
        self.proc.signal("TERM");
        let started = Instant::now();
        while self.proc.0.try_wait().unwrap().is_none() {
            assert!(started.elapsed() < Duration::from_secs(30), "did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn gateway(emu: u16, extra_env: &[(&str, &str)]) -> Gateway {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chatgate.toml");
    let port = free_port();
    std::fs::write(&path, config(emu, port, "chatbase", "cb-support")).unwrap();
    let log = dir.path().join("stderr.log");
    let stderr = std::fs::File::create(&log).unwrap();
    let proc = Proc(
        Command::new(BIN)
            .args(["serve", "--config"])
            .arg(&path)
            .envs(extra_env.iter().copied())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap(),
    );
    wait_ready(port, Duration::from_secs(30));
    Gateway {
        proc,
        port,
        _dir: dir,
        path,
        log,
    }
}

fn write_atomically(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// Polls `cond` until it holds; after 30 s the test is hung and fails.
fn wait_for(what: &str, cond: impl Fn() -> bool) {
    let started = Instant::now();
    while !cond() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn metric(port: u16, sample: &str) -> Option<f64> {
    let (_, text) = http(port, "GET", "/metrics", &[], None);
    text.lines()
        .find_map(|l| l.strip_prefix(sample))
        .and_then(|v| v.trim().parse().ok())
}

#[test]
fn sighup_moves_a_bot_to_another_vendor_without_failing_a_request() {
    let (_emu, emu_port) = emulator();
    let gw = gateway(emu_port, &[]);
    let port = gw.port;
    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(Mutex::new(Vec::<String>::new()));
    let caller = {
        let stop = stop.clone();
        let seen = seen.clone();
        std::thread::spawn(move || {
            let mut page = 1;
            while !stop.load(Ordering::Relaxed) {
                // A new page each time, so every answer comes from a vendor.
                let path =
                    format!("/api/v1/get-conversations?chatbotId=support&size=1&page={page}");
                let reply = try_http(port, "GET", &path, &bearer(CLIENT_KEY), None).unwrap();
                assert_eq!(reply.status, 200, "{}", reply.body);
                let provider = reply.header("x-provider").unwrap().to_owned();
                seen.lock().unwrap().push(provider);
                page = page % 80 + 1;
            }
        })
    };
    let answered_by = |vendor: &str| seen.lock().unwrap().iter().any(|p| p == vendor);
    wait_for("an answer before the reload", || answered_by("chatbase"));
    write_atomically(&gw.path, &config(emu_port, port, "chatling", "5551234001"));
    gw.proc.signal("HUP");
    wait_for("the reload", || {
        metric(port, "chatgate_config_reloads_total{result=\"ok\"}") == Some(1.0)
    });
    wait_for("an answer from the new vendor", || answered_by("chatling"));
    stop.store(true, Ordering::Relaxed);
    caller.join().unwrap();
    let seen = seen.lock().unwrap().clone();
    let switch = seen
        .iter()
        .position(|p| p == "chatling")
        .expect("the bot moved");
    assert!(switch > 0, "answers came from chatbase before the reload");
    assert!(seen[..switch].iter().all(|p| p == "chatbase"));
    assert!(
        seen[switch..].iter().all(|p| p == "chatling"),
        "once moved, always the new vendor: {seen:?}"
    );
    // The cache never hands the new mapping the old vendor's page.
    let reply = try_http(
        port,
        "GET",
        "/api/v1/get-conversations?chatbotId=support&size=1&page=1",
        &bearer(CLIENT_KEY),
        None,
    )
    .unwrap();
    assert_eq!(reply.header("x-provider"), Some("chatling"));
}

#[test]
fn an_invalid_config_on_sighup_is_rejected_and_the_old_one_keeps_serving() {
    let (_emu, emu_port) = emulator();
    let mut gw = gateway(emu_port, &[]);
    let before = metric(gw.port, "chatgate_config_last_reload_timestamp_seconds").unwrap();
    write_atomically(
        &gw.path,
        &config(emu_port, gw.port, "no-such-provider", "x"),
    );
    gw.proc.signal("HUP");
    wait_for("the reload attempt", || {
        metric(
            gw.port,
            "chatgate_config_reloads_total{result=\"rejected\"}",
        ) == Some(1.0)
    });
    assert_eq!(
        metric(gw.port, "chatgate_config_last_reload_timestamp_seconds"),
        Some(before)
    );
    let reply = try_http(
        gw.port,
        "GET",
        "/api/v1/get-conversations?chatbotId=support&size=2",
        &bearer(CLIENT_KEY),
        None,
    )
    .unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("x-provider"), Some("chatbase"));
    gw.terminate();
    let logs = gw.logs();
    assert!(logs.contains("configuration rejected"), "{logs}");
    assert!(
        logs.contains("bots.support.provider"),
        "the log names the problem: {logs}"
    );
}

#[test]
fn sigterm_lets_in_flight_requests_finish_then_exits() {
    let (_emu, emu_port) = emulator();
    let mut gw = gateway(emu_port, &[]);
    // Make the vendor slow, through the emulator's control API.
    let fault = r#"{"vendor":"chatbase","kind":{"type":"delay","ms":1500}}"#;
    let (status, _) = http(
        emu_port,
        "POST",
        "/_emulator/faults",
        &[("Content-Type".into(), "application/json".into())],
        Some(fault),
    );
    assert_eq!(status, 204);
    let port = gw.port;
    let in_flight = std::thread::spawn(move || {
        try_http(
            port,
            "GET",
            "/api/v1/get-conversations?chatbotId=support",
            &bearer(CLIENT_KEY),
            None,
        )
    });
    // SIGTERM once the request is in flight: the vendor has its call (and
    // answers it 1.5 s later).
    wait_for("the vendor call", || {
        let (_, requests) = http(emu_port, "GET", "/_emulator/requests", &[], None);
        let requests: serde_json::Value = serde_json::from_str(&requests).unwrap();
        requests["counts"]["chatbase"].as_u64() >= Some(1)
    });
    gw.proc.signal("TERM");
    let reply = in_flight.join().unwrap().unwrap();
    assert_eq!(
        reply.status, 200,
        "the in-flight request finished: {}",
        reply.body
    );
    let started = Instant::now();
    let status = loop {
        if let Some(status) = gw.proc.0.try_wait().unwrap() {
            break status;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "did not exit");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status:?}");
    assert!(
        try_http(port, "GET", "/healthz", &[], None).is_err(),
        "no longer accepting"
    );
}

#[test]
fn trace_level_json_logs_carry_one_line_per_request_and_never_a_key() {
    let (_emu, emu_port) = emulator();
    let mut gw = gateway(
        emu_port,
        &[("RUST_LOG", "trace"), ("CHATGATE_LOG_FORMAT", "json")],
    );
    let port = gw.port;
    let ok = "/api/v1/get-conversations?chatbotId=support&size=2";
    http(port, "GET", ok, &bearer(CLIENT_KEY), None);
    http(port, "GET", ok, &bearer(CLIENT_KEY), None);
    http(port, "GET", ok, &bearer("a-wrong-key-of-some-length"), None);
    http(
        port,
        "GET",
        "/api/v1/conversations/8047955098?chatbotId=support",
        &bearer(CLIENT_KEY),
        None,
    );
    gw.terminate();
    let logs = gw.logs();
    assert!(logs.lines().count() > 20, "trace logging is on: {logs}");
    for secret in SECRETS {
        assert!(!logs.contains(secret), "{secret} appears in the logs");
    }
    assert!(
        !logs.contains("a-wrong-key-of-some-length"),
        "a presented key appears in the logs"
    );
    let requests: Vec<serde_json::Value> = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["message"] == "request" && v["path"] == "/api/v1/get-conversations")
        .collect();
    assert_eq!(requests.len(), 3, "one line per request");
    let first = &requests[0];
    assert_eq!(first["client"], "ops");
    assert_eq!(first["bot"], "support");
    assert_eq!(first["provider"], "chatbase");
    assert_eq!(first["status"], 200);
    assert_eq!(first["cache"], "MISS");
    assert_eq!(first["upstream_calls"], 1);
    assert!(first["upstream_ms"].as_f64().unwrap() > 0.0);
    assert!(first["total_ms"].as_f64().unwrap() > 0.0);
    assert!(first["request_id"]
        .as_str()
        .is_some_and(|id| !id.is_empty()));
    assert_eq!(requests[1]["cache"], "HIT");
    assert_eq!(requests[1]["upstream_calls"], 0);
    assert_eq!(requests[2]["status"], 401);
    assert!(requests[2].get("client").is_none_or(|c| c.is_null()));
    // The vendor call's log line carries the request id of its request.
    let id = first["request_id"].as_str().unwrap();
    assert!(
        logs.lines()
            .any(|l| l.contains("vendor call") && l.contains(id)),
        "vendor call logged with request id {id}"
    );
}

#[test]
fn the_text_access_line_keeps_its_shape_and_rust_log_still_decides_if_it_is_written() {
    let (_emu, emu_port) = emulator();
    let ok = "/api/v1/get-conversations?chatbotId=support&size=2";
    let mut gw = gateway(emu_port, &[]);
    http(gw.port, "GET", ok, &bearer(CLIENT_KEY), None);
    http(gw.port, "GET", ok, &bearer(CLIENT_KEY), None);
    gw.terminate();
    let logs = gw.logs();
    let lines: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains(" path=/api/v1/get-conversations "))
        .collect();
    assert_eq!(lines.len(), 2, "one line per request: {logs}");
    let shape = regex::Regex::new(concat!(
        r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z  INFO chatgate::server::request_log: ",
        r"request request_id=[0-9a-f-]{36} method=GET path=/api/v1/get-conversations ",
        r#"status=200 client="ops" bot="support" provider="chatbase" "#,
        r#"cache="(MISS|HIT)" upstream_calls=[01] upstream_ms=\d+\.\d{1,3} "#,
        r"total_ms=\d+\.\d{1,3}$",
    ))
    .unwrap();
    for line in &lines {
        assert!(shape.is_match(line), "{line}");
    }
    assert!(
        lines[0].contains(r#" cache="MISS" upstream_calls=1 "#),
        "{}",
        lines[0]
    );
    assert!(
        lines[1].contains(r#" cache="HIT" upstream_calls=0 upstream_ms=0.0 "#),
        "{}",
        lines[1]
    );

    for rust_log in ["warn", "info,chatgate::server::request_log=off"] {
        let mut gw = gateway(emu_port, &[("RUST_LOG", rust_log)]);
        http(gw.port, "GET", ok, &bearer(CLIENT_KEY), None);
        gw.terminate();
        let logs = gw.logs();
        assert!(!logs.contains("request_id="), "RUST_LOG={rust_log}: {logs}");
        assert_eq!(
            logs.contains("chatgate listening"),
            rust_log.starts_with("info"),
            "RUST_LOG={rust_log}: {logs}"
        );
    }
}
