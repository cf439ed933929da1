//! Where log lines go: a shared buffer the request threads append to, drained
//! into stderr (or any writer) by one background thread.
//!
//! Why not a channel of lines (tracing-appender's `non_blocking`, used before):
//! every line was its own heap buffer and channel message, and the writer thread
//! woke for almost every one of them — a futex wake, a context switch and a
//! `write(2)` per request, about a quarter of a cache hit's CPU time on a
//! pinned core. Here a line is one `memcpy` into the shared buffer under a
//! short lock; the writer is woken only when the buffer goes from empty to
//! non-empty while it sleeps, then lingers [`LINGER`] so the lines that arrive
//! meanwhile leave in the same `write`, and is not woken at all while lines
//! keep coming (see `drain`). A line therefore reaches stderr at most about
//! [`LINGER`] plus one write after it was logged.
//!
//! Nothing is lost: when the buffer holds [`MAX_PENDING_BYTES`], a logging
//! thread waits for the writer to drain it (a stuck stderr slows requests down
//! rather than dropping lines or growing memory without bound). Lines never
//! interleave: each is appended whole, in one `write` call from the formatter.
//! Dropping the [`SinkGuard`] writes what is pending and stops the thread.

use std::io::{self, Write};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

/// How long the writer waits after being woken before it takes the buffer, so
/// that under load one `write` carries many lines. Short enough that a person
/// tailing the log sees nothing of it.
///
/// Why 10 ms and not less: under load the writer never sleeps on the condvar,
/// so it runs one cycle (wake, lock, take, write, sleep) per `LINGER`, and a
/// cycle's cost is mostly its context switches, whatever it writes. At 1 ms the
/// writer took 5% of a core pinned with the request thread (~50 ms of CPU a
/// second, per-thread `schedstat`, at 11k or 52k cache hits a second alike); at
/// 10 ms it takes about 1%, and the request thread gets the rest.
pub const LINGER: Duration = Duration::from_millis(10);

/// The most bytes held for the writer before logging threads wait for it.
pub const MAX_PENDING_BYTES: usize = 4 * 1024 * 1024;

/// The state shared by the logging threads and the writer thread.
#[derive(Default)]
struct Pending {
    /// Lines not yet taken by the writer.
    bytes: Vec<u8>,
    /// The writer is parked waiting for lines (so an append must wake it).
    writer_asleep: bool,
    /// Logging threads waiting for room.
    waiting_for_room: usize,
    /// The guard was dropped: drain and stop.
    closed: bool,
}

struct Shared {
    pending: Mutex<Pending>,
    /// Signalled when lines arrive for a sleeping writer, and on close.
    lines: Condvar,
    /// Signalled when the writer has taken the buffer.
    room: Condvar,
    /// [`MAX_PENDING_BYTES`], smaller in tests.
    max_pending: usize,
}

impl Shared {
    /// The state, even if a thread panicked while holding it: a log buffer is
    /// still a valid byte vector, and losing logging to a poisoned lock would
    /// hide the very failure that poisoned it.
    fn lock(&self) -> MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The writing end handed to the log formatter: cheap to clone, `Send + Sync`.
#[derive(Clone)]
pub struct LogSink {
    shared: Arc<Shared>,
}

/// Keeps the writer thread running; dropping it flushes every pending line and
/// joins the thread, so a process that returns from `main` loses no line.
#[must_use = "dropping the guard stops the log writer"]
pub struct SinkGuard {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl LogSink {
    /// A sink draining into `out` from a thread named `log-writer`.
    pub fn new(out: impl Write + Send + 'static) -> io::Result<(Self, SinkGuard)> {
        Self::with_limit(out, MAX_PENDING_BYTES)
    }

    fn with_limit(
        mut out: impl Write + Send + 'static,
        max_pending: usize,
    ) -> io::Result<(Self, SinkGuard)> {
        let shared = Arc::new(Shared {
            pending: Mutex::new(Pending::default()),
            lines: Condvar::new(),
            room: Condvar::new(),
            max_pending,
        });
        let writer = shared.clone();
        let thread = std::thread::Builder::new()
            .name("log-writer".to_owned())
            .spawn(move || drain(&writer, &mut out))?;
        Ok((
            Self {
                shared: shared.clone(),
            },
            SinkGuard {
                shared,
                thread: Some(thread),
            },
        ))
    }

    /// Appends one whole line (or whatever the formatter wrote in one call).
    fn append(&self, line: &[u8]) {
        let shared = &*self.shared;
        let mut pending = shared.lock();
        // Wait for room, but never refuse a line larger than the whole limit:
        // it goes in alone once the buffer is empty.
        while !pending.closed
            && !pending.bytes.is_empty()
            && pending.bytes.len() + line.len() > shared.max_pending
        {
            pending.waiting_for_room += 1;
            pending = shared
                .room
                .wait(pending)
                .unwrap_or_else(PoisonError::into_inner);
            pending.waiting_for_room -= 1;
        }
        pending.bytes.extend_from_slice(line);
        let wake = std::mem::take(&mut pending.writer_asleep);
        // Woken while the lock is still held, the writer would only block on
        // it again: one more pair of context switches on a shared core.
        drop(pending);
        if wake {
            shared.lines.notify_one();
        }
    }
}

/// The writer thread: sleep until lines arrive, linger, take them all, write
/// them in one call, repeat; on close, write what is left and return.
///
/// While lines keep coming it takes them every [`LINGER`] without waiting to
/// be woken, and goes back to waiting only after a round that found none. On a
/// core shared with the request thread the buffer is nearly always empty right
/// after a write (the request thread could not run meanwhile), so waiting then
/// would cost a wake-up per round: two context switches more than the sleep.
fn drain(shared: &Shared, out: &mut impl Write) {
    let mut taken = Vec::new();
    // The last round took lines.
    let mut streaming = false;
    loop {
        let mut pending = shared.lock();
        while !streaming && pending.bytes.is_empty() && !pending.closed {
            pending.writer_asleep = true;
            pending = shared
                .lines
                .wait(pending)
                .unwrap_or_else(PoisonError::into_inner);
        }
        if pending.closed && pending.bytes.is_empty() {
            return;
        }
        if !pending.closed {
            drop(pending);
            std::thread::sleep(LINGER);
            pending = shared.lock();
        }
        std::mem::swap(&mut pending.bytes, &mut taken);
        let room_wanted = pending.waiting_for_room > 0;
        drop(pending);
        if room_wanted {
            shared.room.notify_all();
        }
        streaming = !taken.is_empty();
        if streaming {
            // A failing stderr cannot be reported anywhere better; the lines
            // are dropped rather than retried forever.
            let _ = out.write_all(&taken).and_then(|()| out.flush());
            taken.clear();
        }
    }
}

impl Drop for SinkGuard {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.lines.notify_one();
        self.shared.room.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Write for &LogSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.append(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogSink {
    type Writer = &'a LogSink;

    fn make_writer(&'a self) -> Self::Writer {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    /// A writer recording what reaches it, how many `write` calls, and the
    /// largest one.
    #[derive(Clone, Default)]
    struct Recorder(Arc<Mutex<(Vec<u8>, usize, usize)>>);

    impl Write for Recorder {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let mut seen = self.0.lock().unwrap();
            seen.0.extend_from_slice(buf);
            seen.1 += 1;
            seen.2 = seen.2.max(buf.len());
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn every_line_arrives_whole_and_in_each_threads_order() {
        let out = Recorder::default();
        let (sink, guard) = LogSink::new(out.clone()).unwrap();
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let sink = sink.clone();
                std::thread::spawn(move || {
                    for i in 0..2_000 {
                        let line = format!("thread {t} line {i} {}\n", "x".repeat(i % 300));
                        (&sink).write_all(line.as_bytes()).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        drop(guard);
        let seen = out.0.lock().unwrap();
        let text = std::str::from_utf8(&seen.0).unwrap();
        let mut next = [0usize; 4];
        for line in text.lines() {
            let mut words = line.split(' ');
            assert_eq!(words.next(), Some("thread"));
            let t: usize = words.next().unwrap().parse().unwrap();
            assert_eq!(words.next(), Some("line"));
            let i: usize = words.next().unwrap().parse().unwrap();
            assert_eq!(words.next(), Some("x".repeat(i % 300).as_str()));
            assert_eq!(i, next[t], "thread {t}'s lines out of order");
            next[t] += 1;
        }
        assert_eq!(next, [2_000; 4]);
        // Batched: far fewer writes than lines.
        assert!(seen.1 < 8_000, "{} writes for 8000 lines", seen.1);
    }

    /// A writer that blocks until told to go on, to fill the buffer.
    struct Gate(mpsc::Receiver<()>, Recorder);

    impl Write for Gate {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let _ = self.0.recv();
            self.1.write(buf)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_full_buffer_makes_loggers_wait_and_loses_nothing() {
        let (open, gate) = mpsc::channel();
        let out = Recorder::default();
        let (sink, guard) = LogSink::with_limit(Gate(gate, out.clone()), 64).unwrap();
        let logger = std::thread::spawn(move || {
            for i in 0..100 {
                (&sink).write_all(format!("{i:031}\n").as_bytes()).unwrap();
            }
        });
        // The logger can get at most two 32-byte lines ahead of each write the
        // gate lets through, so it finishes only as the writer drains.
        for _ in 0..100 {
            let _ = open.send(());
        }
        logger.join().unwrap();
        drop(open);
        drop(guard);
        let seen = out.0.lock().unwrap();
        let expected: String = (0..100).map(|i| format!("{i:031}\n")).collect();
        assert_eq!(std::str::from_utf8(&seen.0).unwrap(), expected);
        assert!(seen.2 <= 64, "{} bytes were pending at once", seen.2);
    }

    /// Polls `out` until it holds `expected` (a missed wake-up would leave a
    /// line pending for ever: the deadline is only there to fail the test).
    fn arrives(out: &Recorder, expected: &[u8]) {
        for _ in 0..1_000 {
            if out.0.lock().unwrap().0 == expected {
                return;
            }
            std::thread::sleep(LINGER);
        }
        panic!("{:?} never arrived", String::from_utf8_lossy(expected));
    }

    #[test]
    fn lines_arrive_while_the_sink_stays_open_streaming_or_after_a_pause() {
        let out = Recorder::default();
        let (sink, guard) = LogSink::new(out.clone()).unwrap();
        (&sink).write_all(b"first\n").unwrap();
        arrives(&out, b"first\n");
        // Rounds that find nothing send the writer back to waiting to be woken.
        std::thread::sleep(LINGER * 5);
        (&sink).write_all(b"after a pause\n").unwrap();
        arrives(&out, b"first\nafter a pause\n");
        // Lines that keep coming are taken without a wake-up.
        let mut expected = b"first\nafter a pause\n".to_vec();
        for i in 0..20 {
            let line = format!("streaming {i}\n");
            (&sink).write_all(line.as_bytes()).unwrap();
            expected.extend_from_slice(line.as_bytes());
            std::thread::sleep(LINGER / 2);
        }
        arrives(&out, &expected);
        drop(guard);
    }

    #[test]
    fn a_line_longer_than_the_limit_is_written_whole() {
        let out = Recorder::default();
        let (sink, guard) = LogSink::with_limit(out.clone(), 8).unwrap();
        let long = format!("{}\n", "y".repeat(100));
        (&sink).write_all(b"short\n").unwrap();
        (&sink).write_all(long.as_bytes()).unwrap();
        drop(guard);
        let seen = out.0.lock().unwrap();
        assert_eq!(seen.0, format!("short\n{long}").into_bytes());
    }
}
