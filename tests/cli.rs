//! The `chatgate` binary as ops and new users run it: `check-config`, `emulate`
//! with `serve` on the repo's `config.toml`, and `demo`'s printed curl commands.
#![allow(clippy::unwrap_used, missing_docs)]

#[path = "common/process.rs"]
mod process;

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use process::{emulator, free_port, http, wait_ready, Proc, BIN};

fn repo_config() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/config.toml"))
}

fn check_config(path: &Path, env: &[(&str, &str)]) -> (bool, String) {
    let out = Command::new(BIN)
        .args(["check-config", "--config"])
        .arg(path)
        .envs(env.iter().copied())
        .env_remove("CHATGATE_CONFIG")
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

#[test]
fn the_repo_config_is_valid() {
    let (ok, text) = check_config(repo_config(), &[]);
    assert!(ok, "{text}");
    assert!(
        text.contains("4 provider(s), 4 bot(s), 2 client(s)"),
        "{text}"
    );
}

#[test]
fn check_config_reports_every_problem_with_its_key_path_and_origin() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        r#"
[providers.chatbase]
api_key = "sk-very-secret-provider-key"
base_url = "ftp://example.com"

[providers.acme]
api_key = "x"

[providers.chatling]
timeout_ms = 0

[bots.support]
provider = "chatbse"
chatbot_id = "abc"

[clients.a]
key = "client-key-aaaaaaaaaaaa"
bots = ["support", "ghost"]

[clients.b]
key = "client-key-aaaaaaaaaaaa"
bots = ["*"]

[clients.c]
key = "short"
bots = ["*"]
"#,
    )
    .unwrap();
    let (ok, text) = check_config(&path, &[]);
    assert!(!ok);
    for needle in [
        "`providers.chatbase.base_url`",
        "`providers.acme`",
        "unknown provider kind `acme`",
        "`providers.chatling.api_key`",
        "`providers.chatling.timeout_ms`",
        "`bots.support.provider`",
        "`chatbse`",
        "`clients.a.bots`",
        "`ghost`",
        "same key as client `a`",
        "`clients.c.key`",
        "bad.toml",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
    assert!(
        !text.contains("sk-very-secret-provider-key"),
        "a secret leaked:\n{text}"
    );
    assert!(
        !text.contains("client-key-aaaaaaaaaaaa"),
        "a secret leaked:\n{text}"
    );
}

#[test]
fn unknown_keys_and_bad_types_fail_loudly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("typo.toml");
    std::fs::write(&path, "[server]\nbnid = \"127.0.0.1:1\"\n").unwrap();
    let (ok, text) = check_config(&path, &[]);
    assert!(!ok && text.contains("bnid"), "{text}");
    std::fs::write(
        &path,
        "[providers.chatbase]\napi_key = \"k\"\ntimeout_ms = -1\n",
    )
    .unwrap();
    let (ok, text) = check_config(&path, &[]);
    assert!(
        !ok && text.contains("providers.chatbase.timeout_ms"),
        "{text}"
    );
    let (ok, text) = check_config(&dir.path().join("missing.toml"), &[]);
    assert!(!ok && text.contains("not found"), "{text}");
}

#[test]
fn a_body_timeout_of_zero_or_not_a_number_is_refused_naming_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("body.toml");
    for value in ["0", "\"ten seconds\"", "-5"] {
        std::fs::write(
            &path,
            format!("[server]\nrequest_body_timeout_ms = {value}\n"),
        )
        .unwrap();
        let (ok, text) = check_config(&path, &[]);
        assert!(!ok, "{value} accepted:\n{text}");
        assert!(
            text.contains("server.request_body_timeout_ms"),
            "{value}: the key is not named:\n{text}"
        );
    }
    let (ok, text) = check_config(
        repo_config(),
        &[("CHATGATE_SERVER__REQUEST_BODY_TIMEOUT_MS", "0")],
    );
    assert!(!ok);
    assert!(
        text.contains("CHATGATE_SERVER__REQUEST_BODY_TIMEOUT_MS"),
        "{text}"
    );
}

#[test]
fn environment_overrides_the_file_and_is_named_in_errors() {
    let (ok, text) = check_config(
        repo_config(),
        &[("CHATGATE_PROVIDERS__CHATLING__MAX_SCAN_PAGES", "0")],
    );
    assert!(!ok);
    assert!(
        text.contains("CHATGATE_PROVIDERS__CHATLING__MAX_SCAN_PAGES"),
        "{text}"
    );
    // A numeric secret from the environment is still a string key.
    let (ok, text) = check_config(
        repo_config(),
        &[("CHATGATE_PROVIDERS__CHATBASE__API_KEY", "1234567")],
    );
    assert!(ok, "{text}");
}

#[test]
fn serve_with_the_repo_config_works_against_emulate() {
    let (_emu, emu_port) = emulator();
    let gw_port = free_port();
    let emu = format!("http://127.0.0.1:{emu_port}");
    let mut gw = Proc(
        Command::new(BIN)
            .args(["serve", "--config"])
            .arg(repo_config())
            .env("CHATGATE_SERVER__BIND", format!("127.0.0.1:{gw_port}"))
            .env("CHATGATE_SERVER__WORKERS", "1")
            .env(
                "CHATGATE_PROVIDERS__CHATBASE__BASE_URL",
                format!("{emu}/chatbase/api/v1"),
            )
            .env(
                "CHATGATE_PROVIDERS__CHATZURI__BASE_URL",
                format!("{emu}/chatzuri/api/v1"),
            )
            .env(
                "CHATGATE_PROVIDERS__CHATLING__BASE_URL",
                format!("{emu}/chatling/v2"),
            )
            .env("RUST_LOG", "debug")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    wait_ready(gw_port, Duration::from_secs(30));
    let auth = vec![(
        "Authorization".to_owned(),
        "Bearer analytics-demo-key-0123".to_owned(),
    )];
    for bot in ["support", "sales", "helpdesk"] {
        let (status, body) = http(
            gw_port,
            "GET",
            &format!("/api/v1/get-conversations?chatbotId={bot}&size=3"),
            &auth,
            None,
        );
        assert_eq!(status, 200, "{bot}: {body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["data"].as_array().unwrap().len(), 3);
    }
    let scoped = vec![(
        "Authorization".to_owned(),
        "Bearer billing-service-demo-key".to_owned(),
    )];
    let (status, _) = http(
        gw_port,
        "GET",
        "/api/v1/get-conversations?chatbotId=sales",
        &scoped,
        None,
    );
    assert_eq!(status, 403);
    // Stop it as ops do (SIGTERM flushes the log writer) and read every line it
    // wrote: no key of any kind appears.
    gw.signal("TERM");
    let mut logs = String::new();
    gw.0.stderr
        .take()
        .unwrap()
        .read_to_string(&mut logs)
        .unwrap();
    assert!(logs.contains("request"), "one line per request: {logs}");
    for secret in [
        "emu-chatbase-secret",
        "emu-chatzuri-secret",
        "emu-chatling-secret",
        "analytics-demo-key-0123",
        "billing-service-demo-key",
    ] {
        assert!(!logs.contains(secret), "{secret} leaked into the logs");
    }
}

/// Splits a printed curl command into (method, headers, body, url).
fn parse_curl(line: &str) -> (String, Vec<(String, String)>, Option<String>, String) {
    let mut quoted = Vec::new();
    let mut flags = Vec::new();
    let mut rest = line;
    while let Some(start) = rest.find('\'') {
        let before = rest[..start]
            .split_whitespace()
            .last()
            .unwrap_or("")
            .to_owned();
        let end = start + 1 + rest[start + 1..].find('\'').unwrap();
        flags.push(before);
        quoted.push(rest[start + 1..end].to_owned());
        rest = &rest[end + 1..];
    }
    let mut headers = Vec::new();
    let mut body = None;
    let mut url = String::new();
    for (flag, value) in flags.into_iter().zip(quoted) {
        match flag.as_str() {
            "-H" => {
                let (k, v) = value.split_once(": ").unwrap();
                headers.push((k.to_owned(), v.to_owned()));
            }
            "-d" => body = Some(value),
            _ => url = value,
        }
    }
    let method = if body.is_some() { "POST" } else { "GET" };
    (method.to_owned(), headers, body, url)
}

#[test]
fn demo_prints_curl_commands_that_work_as_printed() {
    let mut demo = Proc(
        Command::new(BIN)
            .args(["demo", "--bind", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let stdout = BufReader::new(demo.0.stdout.take().unwrap());
    let mut curls = Vec::new();
    for line in stdout.lines() {
        let line = line.unwrap();
        if line.starts_with("curl ") {
            curls.push(line);
        } else if line.starts_with("Press Ctrl-C") {
            break;
        }
    }
    assert_eq!(curls.len(), 11, "{curls:#?}");
    let expected = [200, 200, 200, 200, 200, 200, 200, 200, 200, 400, 403];
    for (line, want) in curls.iter().zip(expected) {
        let (method, headers, body, url) = parse_curl(line);
        let rest = url.strip_prefix("http://127.0.0.1:").unwrap();
        let (port, path) = rest.split_once('/').unwrap();
        let (status, text) = http(
            port.parse().unwrap(),
            &method,
            &format!("/{path}"),
            &headers,
            body.as_deref(),
        );
        assert_eq!(status, want, "{line}\n{text}");
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        if want == 200 {
            assert!(v["data"].is_array() || v["data"].is_object(), "{text}");
        } else {
            assert!(v["code"].is_string(), "{text}");
        }
    }
}
