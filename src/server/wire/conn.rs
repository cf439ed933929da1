//! One accepted connection as the HTTP layer sees it: the socket, with every
//! write going through the connection's [`Tap`], reads ending a while after an
//! answer that closes the connection, and a deadline on every request head
//! after the first.
//!
//! actix-http times only a connection's first head ([`super::HEAD_TIMEOUT`]);
//! once bytes of a later one arrive it stops its keep-alive timer and waits for
//! the rest indefinitely, so a client could hold a connection by trickling a
//! second head. [`Conn`] gives every later head the same time from its first
//! byte, then answers 408 itself: the HTTP layer is idle then (no request in
//! the app, every answer written), so the connection's bytes are its own to
//! write, and reading ends so the layer closes the connection.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};

use actix_rt::net::TcpStream;
use actix_web::http::StatusCode;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

use super::tap::{self, Replaced, Step, Tap};
use super::track::Ledger;
use super::HEAD_TIMEOUT;
use crate::clock::Clock;
use crate::metrics::Metrics;

/// A socket whose answers are all chatgate's.
pub struct Conn {
    io: TcpStream,
    tap: Tap,
    ledger: Rc<Ledger>,
    /// Bytes the tap put in place of input; written before anything else.
    out: Vec<u8>,
    out_at: usize,
    /// Input bytes `out` stands for, reported written once `out` is.
    owed: usize,
    /// How long reads go on after an answer that closes the connection.
    linger: Duration,
    read_until: Option<Pin<Box<Sleep>>>,
    /// When the request head now arriving must be complete (heads after the
    /// first), and [`Conn::written`] when that deadline was set.
    head_by: Option<(Pin<Box<Sleep>>, u64)>,
    /// Answer bytes written so far: progress a head deadline must not outlive.
    written: u64,
    /// Reads are over: a closing answer's linger passed, or the connection
    /// answered a slow head itself.
    ended: bool,
    peer: Option<SocketAddr>,
    metrics: Arc<Metrics>,
    /// Times the duration metric and dates the answers the connection writes
    /// itself (its deadlines are tokio timers, which read no clock of ours).
    clock: Clock,
    /// When the connection was accepted: a refused request is almost always a
    /// connection's first, so this dates it for the duration metric.
    since: Instant,
}

impl Conn {
    /// Wraps an accepted socket.
    pub fn new(io: TcpStream, linger: Duration, metrics: Arc<Metrics>, clock: Clock) -> Self {
        let peer = io.peer_addr().ok();
        Self {
            io,
            tap: Tap::new(clock.clone()),
            ledger: Rc::default(),
            out: Vec::new(),
            out_at: 0,
            owed: 0,
            linger,
            read_until: None,
            head_by: None,
            written: 0,
            ended: false,
            peer,
            metrics,
            since: clock.now(),
            clock,
        }
    }

    /// The remote address.
    pub fn peer(&self) -> Option<SocketAddr> {
        self.peer
    }

    /// The ledger the app announces its answers in (see [`super::track`](mod@super::track)).
    pub fn ledger(&self) -> Rc<Ledger> {
        self.ledger.clone()
    }

    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.out_at < self.out.len() {
            let n = ready!(Pin::new(&mut self.io).poll_write(cx, &self.out[self.out_at..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.out_at += n;
        }
        self.out.clear();
        self.out_at = 0;
        Poll::Ready(Ok(()))
    }

    /// Once a closing answer is decided, reads end after `linger` (as long as
    /// actix-http lingers itself before closing a connection with unread input),
    /// so no request body can hold the connection open after its answer.
    fn after_step(&mut self, cx: &mut Context<'_>) {
        if self.tap.closing() && self.read_until.is_none() {
            self.read_until = Some(Box::pin(tokio::time::sleep(self.linger)));
            // The HTTP layer may be waiting on a read: let it see the deadline.
            cx.waker().wake_by_ref();
        }
    }

    /// Whether the connection waits for a request: none is in the app and every
    /// answer has been written.
    fn between_requests(&self) -> bool {
        self.ledger.is_empty() && self.tap.between_answers()
    }

    /// Gives the head now arriving [`HEAD_TIMEOUT`] from now.
    fn arm_head_deadline(&mut self, cx: &mut Context<'_>) {
        let mut by = Box::pin(tokio::time::sleep(HEAD_TIMEOUT));
        // Registers the timer with this task; it cannot have fired yet.
        let _ = by.as_mut().poll(cx);
        self.head_by = Some((by, self.written));
    }

    /// Answers 408 for a head that did not arrive in time, in place of anything
    /// the HTTP layer might still write, and ends reading.
    fn refuse_slow_head(&mut self) {
        let (bytes, replaced) = tap::replacement(1, StatusCode::REQUEST_TIMEOUT, None, &self.clock);
        self.report(replaced);
        self.tap.finish();
        self.out = bytes;
        self.out_at = 0;
        self.owed = 0;
        self.head_by = None;
        self.ended = true;
    }

    fn report(&mut self, replaced: Replaced) {
        let Replaced { failure, status } = replaced;
        let took = self.clock.now().saturating_duration_since(self.since);
        self.metrics.request("other", status.as_u16(), took);
        tracing::info!(
            request_id = %failure.request_id,
            status = status.as_u16(),
            peer = ?self.peer,
            error = %failure.error,
            "request refused by the HTTP layer"
        );
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.ended {
            return Poll::Ready(Ok(()));
        }
        if let Some(deadline) = this.read_until.as_mut() {
            if deadline.as_mut().poll(cx).is_ready() {
                this.ended = true;
                return Poll::Ready(Ok(()));
            }
        }
        if !this.between_requests() {
            this.head_by = None;
        } else if let Some((by, armed_at)) = this.head_by.as_mut() {
            if by.as_mut().poll(cx).is_ready() {
                if this.written == *armed_at {
                    this.refuse_slow_head();
                    return Poll::Ready(Ok(()));
                }
                // Answers went out since the deadline was set, so the head it
                // timed was complete: a request the app answered at once never
                // lets a read see it in the app. Bytes of a pipelined head may
                // have come with it, so the next head gets a deadline of its own
                // (an idle connection is closed by keep-alive before it fires).
                this.arm_head_deadline(cx);
            }
        }
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.io).poll_read(cx, buf))?;
        if buf.filled().len() > before && this.head_by.is_none() && this.between_requests() {
            this.arm_head_deadline(cx);
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Conn {
    /// Writes what the tap says in place of `buf`. Bytes the tap replaced are
    /// reported written only once their replacement is on the socket, so the
    /// HTTP layer keeps waiting (and re-offers the same bytes) until it is: it
    /// drops the connection as soon as it believes everything was written.
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        if this.owed > 0 {
            return Poll::Ready(Ok(std::mem::take(&mut this.owed)));
        }
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let ledger = &this.ledger;
        let step = this.tap.step(buf, || ledger.next_answer());
        this.after_step(cx);
        match step {
            Step::Pass(n) => {
                let written = ready!(Pin::new(&mut this.io).poll_write(cx, &buf[..n]))?;
                this.tap.passed(&buf[..written]);
                this.written += written as u64;
                Poll::Ready(Ok(written))
            }
            Step::Take(n) => {
                this.written += n as u64;
                Poll::Ready(Ok(n))
            }
            Step::Emit {
                consumed,
                bytes,
                replaced,
            } => {
                if let Some(replaced) = replaced {
                    this.report(replaced);
                }
                this.out = bytes;
                this.owed = consumed;
                this.written += consumed as u64;
                ready!(this.poll_drain(cx))?;
                Poll::Ready(Ok(std::mem::take(&mut this.owed)))
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.io).poll_shutdown(cx)
    }
}
