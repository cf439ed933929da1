//! A real `redis-server` for tests: on a free loopback port, persisting
//! nothing, in its own temporary directory, stopped by its PID when dropped.
//! It can be stopped and started again on the same port, for tests of Redis
//! going away mid-traffic.
//!
//! Without `redis-server` on the PATH the test fails (it never passes
//! silently): `scripts/test` installs it, or `apt-get install -y redis-server`.
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

/// How long a starting server may take to answer PING on a loaded machine.
const START_LIMIT: Duration = Duration::from_secs(30);

/// A running (or stopped) `redis-server` owned by one test.
pub struct RedisServer {
    port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts a server on a free port and waits until it answers PING.
    pub fn start() -> Self {
        // A free port can be taken by someone else before the server binds it:
        // try a few.
        for _ in 0..5 {
            let mut server = Self {
                port: free_port(),
                dir: tempfile::tempdir().unwrap(),
                child: None,
            };
            if server.spawn() {
                return server;
            }
        }
        panic!("redis-server could not start on a free port after 5 tries");
    }

    /// `redis://127.0.0.1:<port>/0`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// The port it listens on (kept across restarts).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Whether it answers PING now.
    pub fn answers(&self) -> bool {
        ping(self.port)
    }

    /// Kills the server (by its PID) and waits until the port refuses
    /// connections.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
            assert!(
                started.elapsed() < START_LIMIT,
                "port {} stays open",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts the server again on the same port, empty.
    pub fn restart(&mut self) {
        self.stop();
        assert!(
            self.spawn(),
            "redis-server did not come back on port {}",
            self.port
        );
    }

    /// Spawns the process and waits for PING; false if it exited (port taken).
    fn spawn(&mut self) -> bool {
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let child = match child {
            Ok(child) => child,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
                "redis-server is not installed (needed by the Redis tests): run scripts/test, \
                 or `apt-get install -y redis-server`"
            ),
            Err(e) => panic!("cannot run redis-server: {e}"),
        };
        let pid = child.id();
        // Owned from here on, so a panic below still kills it.
        let child = self.child.insert(child);
        let started = Instant::now();
        loop {
            // Another test's server may hold a port handed out twice: only
            // *this* process answering counts.
            if answers_as(self.port, pid) {
                return true;
            }
            if let Ok(Some(_)) = child.try_wait() {
                self.child = None;
                return false;
            }
            assert!(
                started.elapsed() < START_LIMIT,
                "redis-server never answered on port {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A free loopback port (free when asked).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Whether the Redis on `port` is the process `pid` (from `INFO server`).
fn answers_as(port: u16, pid: u32) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"INFO server\r\n").is_err() {
        return false;
    }
    // A bulk string: `$<len>\r\n<len bytes>\r\n`.
    let mut reply = Vec::new();
    let mut buf = [0u8; 4096];
    let want = format!("process_id:{pid}\r\n");
    while let Ok(n) = s.read(&mut buf) {
        if n == 0 {
            break;
        }
        reply.extend_from_slice(&buf[..n]);
        if reply.ends_with(b"\r\n\r\n") || reply.len() > 64 * 1024 {
            break;
        }
    }
    String::from_utf8_lossy(&reply).contains(&want)
}

/// Whether something on `port` answers the inline command PING with +PONG.
fn ping(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 7];
    s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
}
