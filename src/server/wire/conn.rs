//! One accepted connection as the HTTP layer sees it: the socket, with every
//! write going through the connection's [`Tap`].

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Instant;

use actix_rt::net::TcpStream;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::tap::{Replaced, Step, Tap};
use super::track::Ledger;
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
    peer: Option<SocketAddr>,
    metrics: Arc<Metrics>,
    /// When the connection was accepted: a refused request is almost always a
    /// connection's first, so this dates it for the duration metric.
    since: Instant,
}

impl Conn {
    /// Wraps an accepted socket.
    pub fn new(io: TcpStream, metrics: Arc<Metrics>) -> Self {
        let peer = io.peer_addr().ok();
        Self {
            io,
            tap: Tap::default(),
            ledger: Rc::default(),
            out: Vec::new(),
            out_at: 0,
            owed: 0,
            peer,
            metrics,
            since: Instant::now(),
        }
    }

    /// The remote address.
    pub fn peer(&self) -> Option<SocketAddr> {
        self.peer
    }

    /// The ledger the app announces its answers in (see [`super::track`]).
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

    fn report(&mut self, replaced: Replaced) {
        let Replaced { failure, status } = replaced;
        self.metrics
            .request("other", status.as_u16(), self.since.elapsed());
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
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
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
        match this.tap.step(buf, || ledger.next_answer()) {
            Step::Pass(n) => {
                let written = ready!(Pin::new(&mut this.io).poll_write(cx, &buf[..n]))?;
                this.tap.passed(&buf[..written]);
                Poll::Ready(Ok(written))
            }
            Step::Take(n) => Poll::Ready(Ok(n)),
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
