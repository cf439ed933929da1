//! What the app tells its connection about each request, and the connection
//! policy applied to every answer.
//!
//! [`track`] is the app's outermost middleware. It announces each answer to the
//! connection's [`Ledger`] before the request is handled, so the connection can
//! tell the app's answers from the ones the HTTP layer writes alone. It also
//! answers `HEAD` with no body and no `Content-Length`: actix-http leaves a
//! body out when the *last request it decoded* was `HEAD`, which with
//! pipelining need not be the request answered; an answer with no body is
//! framed the same either way, so the connection can follow it.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

use actix_web::body::{self, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::Error;

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

/// Announces the answer and strips answers to `HEAD`.
pub async fn track(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let head_request = req.method() == Method::HEAD;
    if let Some(ledger) = req.conn_data::<Rc<Ledger>>() {
        ledger.announce(Announced { head_request });
    }
    let res = next.call(req).await?;
    Ok(if head_request {
        res.map_body(|_, _| body::None::new()).map_into_right_body()
    } else {
        res.map_into_left_body::<body::None>()
    })
}
