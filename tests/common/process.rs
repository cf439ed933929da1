//! Helpers for tests that run the `chatgate` binary as a separate process and
//! talk to it with plain blocking HTTP/1.1.
#![allow(
    dead_code,
    clippy::unwrap_used,
    missing_docs,
    clippy::disallowed_methods
)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_chatgate");

/// A free loopback port (free when asked; bind it soon).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child process killed (by its own PID) when the test ends, pass or fail.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Proc {
    /// Sends a signal by this child's PID (e.g. "HUP", "TERM"), with the
    /// shell's builtin `kill`, which every POSIX shell has.
    pub fn signal(&self, name: &str) {
        let status = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("kill -s {name} {}", self.0.id()))
            .status()
            .unwrap();
        assert!(status.success(), "kill -{name} failed");
    }
}

/// Waits until `/readyz` answers 200 on `port`, or panics after `limit`.
pub fn wait_ready(port: u16, limit: Duration) {
    let started = Instant::now();
    while started.elapsed() < limit {
        if let Ok(reply) = try_http(port, "GET", "/readyz", &[], None) {
            if reply.status == 200 {
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("port {port} never became ready");
}

/// Waits until something accepts connections on `port`.
pub fn wait_listening(port: u16, limit: Duration) {
    let started = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(started.elapsed() < limit, "port {port} never opened");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// An HTTP answer.
pub struct Reply {
    pub status: u16,
    pub head: String,
    pub body: String,
}

impl Reply {
    /// A response header's value (case-insensitive name).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// A blocking HTTP/1.1 request (`Connection: close`).
pub fn try_http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(String, String)],
    body: Option<&str>,
) -> std::io::Result<Reply> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    for (k, v) in headers {
        req += &format!("{k}: {v}\r\n");
    }
    let body = body.unwrap_or("");
    req += &format!("Content-Length: {}\r\n\r\n{body}", body.len());
    s.write_all(req.as_bytes())?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    let status = head
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("not an HTTP answer: {out:?}")))?;
    Ok(Reply {
        status,
        head: head.to_owned(),
        body: body.to_owned(),
    })
}

/// Like [`try_http`], panicking on I/O errors; returns (status, body).
pub fn http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(String, String)],
    body: Option<&str>,
) -> (u16, String) {
    let reply = try_http(port, method, path, headers, body).unwrap();
    (reply.status, reply.body)
}

/// `Authorization: Bearer <key>` as a header list.
pub fn bearer(key: &str) -> Vec<(String, String)> {
    vec![("Authorization".to_owned(), format!("Bearer {key}"))]
}

/// A `chatgate emulate` process on a free port, answering once this returns.
pub fn emulator() -> (Proc, u16) {
    let port = free_port();
    let proc = Proc(
        Command::new(BIN)
            .args(["emulate", "--bind", &format!("127.0.0.1:{port}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_listening(port, Duration::from_secs(30));
    (proc, port)
}
