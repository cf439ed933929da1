//! `chatgate export` as ops run it: the binary against the emulator process.
#![allow(clippy::unwrap_used, missing_docs, clippy::disallowed_methods)]

#[path = "common/process.rs"]
mod process;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use process::{bearer, emulator, free_port, http, wait_ready, Proc, BIN};
use serde_json::Value;

const CLIENT_KEY: &str = "export-test-client-key-0123";

struct Setup {
    _emu: Proc,
    emu_port: u16,
    dir: tempfile::TempDir,
    config: PathBuf,
}

fn setup() -> Setup {
    setup_with("")
}

/// Like [`setup`], with `extra` appended to the config.
fn setup_with(extra: &str) -> Setup {
    let (emu, emu_port) = emulator();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("chatgate.toml");
    let base = format!("http://127.0.0.1:{emu_port}");
    // `BASE` in the extra tables stands for the emulator's address.
    let extra = extra.replace("BASE", &base);
    std::fs::write(
        &config,
        format!(
            r#"
[server]
bind = "127.0.0.1:{gw}"
workers = 1

[providers.chatbase]
base_url = "{base}/chatbase/api/v1"
api_key = "emu-chatbase-secret"
max_requests_per_second = 10000
max_retries = 0

[providers.chatling]
base_url = "{base}/chatling/v2"
api_key = "emu-chatling-secret"
max_requests_per_second = 10000
max_retries = 0

[bots.support]
provider = "chatbase"
chatbot_id = "cb-support"

[bots.helpdesk]
provider = "chatling"
chatbot_id = "5551234001"

[[bots.migrating.backends]]
provider = "chatbase"
chatbot_id = "cb-support"

[[bots.migrating.backends]]
provider = "chatling"
chatbot_id = "5551234001"

[clients.test]
key = "{CLIENT_KEY}"
bots = ["*"]
requests_per_minute = 1000000
burst = 100000
{extra}
"#,
            gw = free_port()
        ),
    )
    .unwrap();
    Setup {
        _emu: emu,
        emu_port,
        dir,
        config,
    }
}

impl Setup {
    fn out(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn export_cmd(&self, args: &[&str], out: &Path) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.arg("export")
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .arg("--out")
            .arg(out);
        cmd
    }

    fn export(&self, args: &[&str], out: &Path) -> Output {
        self.export_cmd(args, out).output().unwrap()
    }

    fn fault(&self, json: &str) {
        let headers = [("Content-Type".to_owned(), "application/json".to_owned())];
        let (status, body) = http(
            self.emu_port,
            "POST",
            "/_emulator/faults",
            &headers,
            Some(json),
        );
        assert_eq!(status, 204, "{body}");
    }

    fn clear_faults(&self) {
        let (status, _) = http(self.emu_port, "DELETE", "/_emulator/faults", &[], None);
        assert_eq!(status, 204);
    }

    /// Every page of the API for `query`, concatenated, through a `serve`.
    fn api_all(&self, query: &str) -> Vec<Value> {
        let port = free_port();
        let _gw = Proc(
            Command::new(BIN)
                .args(["serve", "--config"])
                .arg(&self.config)
                .env("CHATGATE_SERVER__BIND", format!("127.0.0.1:{port}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        wait_ready(port, Duration::from_secs(30));
        let mut all = Vec::new();
        let mut page = 1;
        loop {
            let path = format!("/api/v1/get-conversations?{query}&size=100&page={page}");
            let (status, body) = http(port, "GET", &path, &bearer(CLIENT_KEY), None);
            assert_eq!(status, 200, "{body}");
            let v: Value = serde_json::from_str(&body).unwrap();
            all.extend(v["data"].as_array().unwrap().iter().cloned());
            if v["next_page"].is_null() {
                return all;
            }
            page += 1;
        }
    }
}

fn lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn checkpoint(path: &Path) -> Option<Value> {
    let mut name = path.as_os_str().to_owned();
    name.push(".checkpoint");
    let text = std::fs::read_to_string(PathBuf::from(name)).ok()?;
    serde_json::from_str(&text).ok()
}

fn ok(output: &Output) -> String {
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{text}");
    text
}

#[test]
fn an_export_equals_the_api_pages_concatenated() {
    let s = setup();
    for (bot, args, query) in [
        ("support", vec![], "chatbotId=support"),
        (
            "support",
            vec!["--since", "2024-03-01", "--until", "2024-09-30", "--sources", "whatsapp,API,Chatbase site"],
            "chatbotId=support&startDate=2024-03-01&endDate=2024-09-30&filteredSources=whatsapp,API,Chatbase%20site",
        ),
        ("helpdesk", vec!["--page-size", "7"], "chatbotId=helpdesk"),
        ("migrating", vec!["--page-size", "30"], "chatbotId=migrating"),
    ] {
        let out = s.out(&format!("{bot}-{}.jsonl", args.len()));
        let mut full = vec!["--bot", bot];
        full.extend(args.iter().copied());
        let text = ok(&s.export(&full, &out));
        let exported = lines(&out);
        let api = s.api_all(query);
        assert!(!api.is_empty());
        assert_eq!(exported, api, "{bot} {args:?}");
        assert!(
            text.contains(&format!("exported {} conversation(s)", api.len())),
            "a final summary: {text}"
        );
        let cp = checkpoint(&out).unwrap();
        assert_eq!(cp["complete"], true);
        assert_eq!(cp["totals"]["conversations"], api.len());
    }
}

#[test]
fn an_interrupted_export_resumes_to_the_identical_file() {
    let s = setup();
    let reference = s.out("reference.jsonl");
    ok(&s.export(&["--bot", "support", "--page-size", "10"], &reference));

    s.fault(r#"{"vendor":"chatbase","kind":{"type":"delay","ms":250}}"#);
    let out = s.out("interrupted.jsonl");
    let mut child = Proc(
        s.export_cmd(&["--bot", "support", "--page-size", "10"], &out)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let started = Instant::now();
    while checkpoint(&out)
        .and_then(|c| c["next_page"].as_u64())
        .unwrap_or(0)
        < 4
    {
        assert!(started.elapsed() < Duration::from_secs(30), "no progress");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.0.kill().unwrap();
    child.0.wait().unwrap();
    let partial = lines(&out).len();
    assert!(
        (30..137).contains(&partial),
        "interrupted mid-way: {partial}"
    );
    s.clear_faults();
    ok(&s.export(&["--bot", "support", "--page-size", "10", "--resume"], &out));
    assert_eq!(
        std::fs::read(&out).unwrap(),
        std::fs::read(&reference).unwrap(),
        "no duplicates, no gaps"
    );
}

#[test]
fn a_half_written_page_after_the_checkpoint_is_dropped_on_resume() {
    let s = setup();
    let reference = s.out("reference.jsonl");
    ok(&s.export(&["--bot", "support", "--page-size", "25"], &reference));
    let out = s.out("crashed.jsonl");
    ok(&s.export(&["--bot", "support", "--page-size", "25"], &out));
    // Simulate a crash mid-page: the checkpoint says page 3 is next, and the
    // file holds page 3's first line and half of its second.
    let mut cp = checkpoint(&out).unwrap();
    let text = std::fs::read_to_string(&out).unwrap();
    let keep: usize = text.lines().take(50).map(|l| l.len() + 1).sum();
    let extra = &text[keep..keep + text[keep..].find('\n').unwrap() + 40];
    std::fs::write(&out, format!("{}{extra}", &text[..keep])).unwrap();
    cp["next_page"] = 3.into();
    cp["bytes"] = keep.into();
    cp["complete"] = false.into();
    cp["totals"]["conversations"] = 50.into();
    let mut cp_path = out.as_os_str().to_owned();
    cp_path.push(".checkpoint");
    std::fs::write(PathBuf::from(cp_path), cp.to_string()).unwrap();
    ok(&s.export(&["--bot", "support", "--page-size", "25", "--resume"], &out));
    assert_eq!(
        std::fs::read(&out).unwrap(),
        std::fs::read(&reference).unwrap()
    );
}

#[test]
fn a_vendor_failure_mid_export_stops_with_a_resumable_checkpoint() {
    let s = setup();
    let reference = s.out("reference.jsonl");
    ok(&s.export(&["--bot", "support", "--page-size", "10"], &reference));

    s.fault(r#"{"vendor":"chatbase","kind":{"type":"delay","ms":200}}"#);
    let out = s.out("failing.jsonl");
    let child = s
        .export_cmd(&["--bot", "support", "--page-size", "10"], &out)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while checkpoint(&out)
        .and_then(|c| c["next_page"].as_u64())
        .unwrap_or(0)
        < 3
    {
        assert!(started.elapsed() < Duration::from_secs(30), "no progress");
        std::thread::sleep(Duration::from_millis(20));
    }
    // The vendor starts failing mid-way.
    s.clear_faults();
    s.fault(r#"{"vendor":"chatbase","kind":{"type":"status","status":500}}"#);
    let output = child.wait_with_output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--resume") && stderr.contains("stopped at page"),
        "{stderr}"
    );
    let cp = checkpoint(&out).unwrap();
    assert_eq!(cp["complete"], false);
    let written = lines(&out);
    assert_eq!(
        written.len() as u64,
        cp["totals"]["conversations"].as_u64().unwrap()
    );
    assert_eq!(
        std::fs::metadata(&out).unwrap().len(),
        cp["bytes"].as_u64().unwrap(),
        "nothing beyond the last complete page"
    );
    s.clear_faults();
    ok(&s.export(&["--bot", "support", "--page-size", "10", "--resume"], &out));
    assert_eq!(
        std::fs::read(&out).unwrap(),
        std::fs::read(&reference).unwrap()
    );
}

#[test]
fn export_refuses_to_overwrite_or_to_resume_a_different_export() {
    let s = setup();
    let out = s.out("one.jsonl");
    ok(&s.export(&["--bot", "helpdesk"], &out));
    let again = s.export(&["--bot", "helpdesk"], &out);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
    let other = s.export(&["--bot", "support", "--resume"], &out);
    assert!(!other.status.success());
    assert!(String::from_utf8_lossy(&other.stderr).contains("another export"));
    let done = s.export(&["--bot", "helpdesk", "--resume"], &out);
    assert!(done.status.success());
    assert!(String::from_utf8_lossy(&done.stderr).contains("already complete"));
    for (args, needle) in [
        (vec!["--bot", "nobody"], "no bot named"),
        (vec!["--bot", "support", "--since", "2024-2-01"], "--since"),
        (vec!["--bot", "support", "--sources", "fax"], "fax"),
        (vec!["--bot", "support", "--page-size", "0"], "--page-size"),
    ] {
        let bad = s.export(&args, &s.out("bad.jsonl"));
        assert!(!bad.status.success(), "{args:?}");
        let stderr = String::from_utf8_lossy(&bad.stderr);
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }
}

/// Vendor calls the emulator process has counted, per vendor.
fn vendor_calls(s: &Setup) -> Value {
    let (status, body) = http(s.emu_port, "GET", "/_emulator/requests", &[], None);
    assert_eq!(status, 200);
    serde_json::from_str::<Value>(&body).unwrap()["counts"].clone()
}

#[test]
fn exporting_a_dual_read_bot_reads_each_backend_once_even_without_cache_room() {
    // A cache with no room for a single chunk: an export that re-walked the
    // merge for every page would re-read the backends from their start each time.
    let s = setup_with("[cache]\nmax_bytes = 1024");
    let out = s.out("migrating.jsonl");
    ok(&s.export(&["--bot", "migrating", "--page-size", "5"], &out));
    let exported = lines(&out);
    assert_eq!(exported.len(), 137 + 83);
    let calls = vendor_calls(&s);
    // Chatbase: chunks of 100 → 2 pages (+1 for a possibly empty last one).
    assert!(calls["chatbase"].as_u64().unwrap() <= 3, "{calls}");
    // Chatling: 83 conversations at 5 per vendor page → 17 pages (+1 probe).
    assert!(calls["chatling"].as_u64().unwrap() <= 19, "{calls}");
    // Interrupted and resumed half-way, a dual-read export is still exact.
    let reference = std::fs::read(&out).unwrap();
    let again = s.out("migrating-resumed.jsonl");
    s.fault(r#"{"vendor":"chatling","kind":{"type":"delay","ms":150}}"#);
    let mut child = Proc(
        s.export_cmd(&["--bot", "migrating", "--page-size", "5"], &again)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let started = Instant::now();
    while checkpoint(&again)
        .and_then(|c| c["next_page"].as_u64())
        .unwrap_or(0)
        < 6
    {
        assert!(started.elapsed() < Duration::from_secs(60), "no progress");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.0.kill().unwrap();
    child.0.wait().unwrap();
    let cp = checkpoint(&again).unwrap();
    assert_eq!(cp["positions"].as_array().unwrap().len(), 2, "{cp}");
    s.clear_faults();
    ok(&s.export(
        &["--bot", "migrating", "--page-size", "5", "--resume"],
        &again,
    ));
    assert_eq!(std::fs::read(&again).unwrap(), reference);
}

#[test]
fn a_vendor_asking_to_wait_forever_stops_the_export_cleanly() {
    let s = setup();
    s.fault(
        r#"{"vendor":"chatbase","kind":{"type":"status","status":429,"retry_after":"10000000000000000000"}}"#,
    );
    let out = s.out("paused.jsonl");
    let output = s.export(&["--bot", "support", "--page-size", "10"], &out);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(stderr.contains("--resume"), "{stderr}");
}

#[test]
fn a_chatbase_v2_bot_exports_what_the_api_pages_give() {
    let s = setup_with(
        r#"
[providers.chatbase-v2]
kind = "chatbase_v2"
base_url = "BASE/chatbase/api/v2"
api_key = "emu-chatbase-v2-secret"
max_requests_per_second = 10000
max_retries = 0

[bots.support-v2]
provider = "chatbase-v2"
chatbot_id = "cb-support"
"#,
    );
    let out = s.out("v2.jsonl");
    let text = ok(&s.export(&["--bot", "support-v2", "--page-size", "30"], &out));
    let exported = lines(&out);
    let api = s.api_all("chatbotId=support-v2");
    assert!(api.len() > 100, "{}", api.len());
    assert_eq!(exported, api);
    assert!(
        text.contains(&format!("exported {} conversation(s)", api.len())),
        "{text}"
    );
}
