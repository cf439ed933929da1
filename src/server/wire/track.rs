//! What the app tells its connection about each request, and the connection
//! policy applied to every answer.
//!
//! [`track`] is the app's outermost middleware. It announces each answer to the
//! connection's [`Ledger`] before the request is handled, so the connection can
//! tell the app's answers from the ones the HTTP layer writes alone. It also:
//! - ends the connection after an answer given before the request body was
//!   read to its end: otherwise the HTTP layer keeps reading (draining) that
//!   body for as long as the client cares to trickle it;
//! - answers `HEAD` with no body and no `Content-Length`. actix-http leaves a
//!   body out when the *last request it decoded* was `HEAD`, which with
//!   pipelining need not be the request answered; an answer with no body is
//!   framed the same either way, so the connection can follow it.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use actix_web::body::{self, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::http::{ConnectionType, Method};
use actix_web::middleware::Next;
use actix_web::{Error, HttpMessage};
use bytes::Bytes;
use futures_util::Stream;

use super::tap::Announced;

/// The answers the app has started on one connection and the connection has
/// not yet seen the head of, oldest first. One connection is served by one
/// worker thread, hence `RefCell`.
#[derive(Debug, Default)]
pub struct Ledger {
    announced: RefCell<VecDeque<Announced>>,
}

impl Ledger {
    /// The app is producing an answer.
    pub fn announce(&self, answer: Announced) {
        self.announced.borrow_mut().push_back(answer);
    }

    /// The oldest announced answer whose head has not been seen.
    pub fn next_answer(&self) -> Option<Announced> {
        self.announced.borrow_mut().pop_front()
    }

    /// Whether the app is working on no request of this connection.
    pub fn is_empty(&self) -> bool {
        self.announced.borrow().is_empty()
    }
}

/// Announces the answer, watches the request body, closes the connection after
/// an answer that left the body unread, and strips answers to `HEAD`.
pub async fn track(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let head_request = req.method() == Method::HEAD;
    if let Some(ledger) = req.conn_data::<Rc<Ledger>>() {
        ledger.announce(Announced { head_request });
    }
    let body_read = watch_body(&mut req);
    let mut res = next.call(req).await?;
    if body_read.is_some_and(|read| !read.get()) {
        res.response_mut()
            .head_mut()
            .set_connection_type(ConnectionType::Close);
    }
    Ok(if head_request {
        res.map_body(|_, _| body::None::new()).map_into_right_body()
    } else {
        res.map_into_left_body::<body::None>()
    })
}

/// Replaces a request body by one that records reaching its end.
fn watch_body(req: &mut ServiceRequest) -> Option<Rc<Cell<bool>>> {
    match req.take_payload() {
        Payload::None => None,
        inner => {
            let read = Rc::new(Cell::new(false));
            let watched = Watched {
                inner,
                read: read.clone(),
            };
            req.set_payload(Payload::Stream {
                payload: Box::pin(watched),
            });
            Some(read)
        }
    }
}

/// A request body that sets `read` when it ends.
struct Watched {
    inner: Payload,
    read: Rc<Cell<bool>>,
}

impl Stream for Watched {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let next = Pin::new(&mut self.inner).poll_next(cx);
        if let Poll::Ready(None) = next {
            self.read.set(true);
        }
        next
    }
}
