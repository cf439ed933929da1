//! Every error the API can answer, and its one mapping to HTTP (SPEC §2.6).
//!
//! The body is flat and keeps Chatbase's `message` field, so existing Chatbase
//! clients still read it: `{"message", "code", "request_id", "provider"?,
//! "upstream_status"?}`.

use std::time::Duration;

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use chatgate_providers::{ProviderError, ProviderKind};
use serde::Serialize;

use crate::error::{whole_seconds, GatewayError, UpstreamFailure};
use crate::query::QueryError;
use crate::upstream::TransportError;

/// What went wrong with a request, before it is tied to a request id.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ApiError {
    /// A missing or ill-typed parameter, an unknown source, a bad JSON body.
    #[error("{0}")]
    InvalidRequest(String),
    /// A date that is not strict `YYYY-MM-DD`, not a real date, or start > end.
    #[error("{0}")]
    InvalidDate(String),
    /// No key, or a key no client has.
    #[error("a valid client key is required: send `Authorization: Bearer <key>`")]
    Unauthorized,
    /// A known client asking for a bot outside its scope.
    #[error("this client key may not read bot `{0}`")]
    Forbidden(String),
    /// `chatbotId` names no configured bot.
    #[error("no bot named `{0}` is configured")]
    BotNotFound(String),
    /// No such route.
    #[error("no such endpoint: {0}")]
    NoRoute(String),
    /// The route exists but not with this method.
    #[error("method {method} is not allowed here (allowed: {allow})")]
    MethodNotAllowed {
        /// The method asked.
        method: String,
        /// The methods the route has, for `Allow`.
        allow: &'static str,
    },
    /// A request body over the limit.
    #[error("the request body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    /// The request body did not arrive within `server.request_body_timeout_ms`:
    /// a client trickling its body must not hold a connection open.
    #[error("the request body was not received within {} ms", .0.as_millis())]
    BodyTimeout(Duration),
    /// The HTTP layer refused the request before any route saw it (a malformed
    /// request line, header or length; a head too large or too slow) and wrote
    /// this status with an empty body, which chatgate replaces with this error.
    #[error("{}", http_layer_message(*.0))]
    HttpLayer(StatusCode),
    /// This client's quota is spent (or this IP failed authentication too often).
    #[error("rate limit exceeded; retry in {} s", whole_seconds(*.0))]
    RateLimited(Duration),
    /// The core failed: a vendor call, the merge, a bug.
    #[error(transparent)]
    Gateway(#[from] GatewayError),
}

impl ApiError {
    /// The HTTP status and the stable `code`.
    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        use ProviderError as P;
        match self {
            Self::InvalidRequest(_) => (StatusCode::BAD_REQUEST, "invalid_request"),
            Self::InvalidDate(_) => (StatusCode::BAD_REQUEST, "invalid_date"),
            Self::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            Self::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            Self::BotNotFound(_) => (StatusCode::NOT_FOUND, "bot_not_found"),
            Self::NoRoute(_) => (StatusCode::NOT_FOUND, "not_found"),
            Self::MethodNotAllowed { .. } => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            Self::PayloadTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            Self::BodyTimeout(_) => (StatusCode::REQUEST_TIMEOUT, "request_timeout"),
            Self::HttpLayer(status) => (*status, http_layer_code(*status)),
            Self::RateLimited(_) => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            Self::Gateway(GatewayError::Internal) => {
                (StatusCode::INTERNAL_SERVER_ERROR, "internal_error")
            }
            Self::Gateway(GatewayError::OutOfReach(_)) => {
                (StatusCode::BAD_REQUEST, "invalid_request")
            }
            Self::Gateway(GatewayError::Upstream { failure, .. }) => match failure {
                UpstreamFailure::Vendor(e) => match e {
                    P::Unauthorized { .. } => (StatusCode::BAD_GATEWAY, "upstream_auth_failed"),
                    P::NotFound { .. } => (StatusCode::NOT_FOUND, "not_found"),
                    P::RateLimited { .. } => {
                        (StatusCode::TOO_MANY_REQUESTS, "upstream_rate_limited")
                    }
                    P::NotSupported(_) => (StatusCode::NOT_IMPLEMENTED, "not_supported"),
                    P::Rejected { .. }
                    | P::Upstream { .. }
                    | P::InvalidBody { .. }
                    | P::ScanLimit { .. } => (StatusCode::BAD_GATEWAY, "upstream_error"),
                },
                UpstreamFailure::Transport(TransportError::Timeout(_))
                | UpstreamFailure::Deadline(_) => (StatusCode::GATEWAY_TIMEOUT, "upstream_timeout"),
                UpstreamFailure::Transport(_) | UpstreamFailure::CallBudget(_) => {
                    (StatusCode::BAD_GATEWAY, "upstream_error")
                }
                UpstreamFailure::Throttled(_) | UpstreamFailure::Paused(_) => {
                    (StatusCode::TOO_MANY_REQUESTS, "upstream_rate_limited")
                }
                UpstreamFailure::CircuitOpen(_) => {
                    (StatusCode::SERVICE_UNAVAILABLE, "upstream_unavailable")
                }
            },
        }
    }

    /// The caller-facing sentence. Vendor auth failures are a config fault: the
    /// caller is told so without any detail of the key.
    fn message(&self) -> String {
        match self {
            Self::Gateway(GatewayError::Upstream {
                provider,
                failure: UpstreamFailure::Vendor(ProviderError::Unauthorized { status, .. }),
            }) => format!(
                "{provider} rejected the gateway's provider key (HTTP {status}); \
                 this is a gateway configuration fault, not the caller's"
            ),
            other => other.to_string(),
        }
    }

    fn provider(&self) -> Option<ProviderKind> {
        match self {
            Self::Gateway(e) => e.provider(),
            _ => None,
        }
    }

    fn upstream_status(&self) -> Option<u16> {
        match self {
            Self::Gateway(e) => e.upstream_status(),
            _ => None,
        }
    }

    /// `Retry-After` in whole seconds (≥ 1), for 429s and 503s.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            Self::RateLimited(wait) => Some(whole_seconds(*wait)),
            Self::Gateway(e) => e.retry_after().map(whole_seconds),
            _ => None,
        }
    }

    /// Whether the answer ends the connection (`Connection: close`): after a
    /// request the server could not read whole, the rest of the connection's
    /// bytes cannot be trusted to start a new request.
    pub fn closes_connection(&self) -> bool {
        matches!(self, Self::BodyTimeout(_) | Self::HttpLayer(_))
    }
}

/// The `code` of a status the HTTP layer wrote on its own.
fn http_layer_code(status: StatusCode) -> &'static str {
    match status {
        StatusCode::REQUEST_TIMEOUT => "request_timeout",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => "headers_too_large",
        StatusCode::HTTP_VERSION_NOT_SUPPORTED => "http_version_not_supported",
        s if s.is_client_error() => "invalid_request",
        _ => "internal_error",
    }
}

/// The caller-facing sentence for a status the HTTP layer wrote on its own. The
/// layer says only the status, so the sentence names what that status is used for.
fn http_layer_message(status: StatusCode) -> &'static str {
    match status {
        StatusCode::BAD_REQUEST => {
            "the request is not valid HTTP/1.1 (request line, URI, header or length)"
        }
        StatusCode::REQUEST_TIMEOUT => "the request head was not received in time",
        StatusCode::PAYLOAD_TOO_LARGE => "the request body is too large",
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => {
            "the request head is too large or has too many header fields"
        }
        StatusCode::HTTP_VERSION_NOT_SUPPORTED => "this HTTP version is not supported",
        s if s.is_client_error() => "the request was refused by the HTTP layer",
        _ => "internal error",
    }
}

/// An [`ApiError`] tied to the request it answers: what actix turns into a
/// response.
#[derive(Debug, thiserror::Error)]
#[error("{error}")]
pub struct Failure {
    /// What went wrong.
    pub error: ApiError,
    /// The request's id, echoed in the body.
    pub request_id: String,
}

impl From<QueryError> for ApiError {
    fn from(e: QueryError) -> Self {
        match e {
            QueryError::Invalid(m) => Self::InvalidRequest(m),
            QueryError::Date(m) => Self::InvalidDate(m),
        }
    }
}

impl Failure {
    /// `error` as the answer to `req`, with the request's id.
    pub fn of(req: &actix_web::HttpRequest, error: impl Into<ApiError>) -> Self {
        Self {
            error: error.into(),
            request_id: super::request_log::request_id(req),
        }
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    message: &'a str,
    code: &'a str,
    request_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    provider: Option<ProviderKind>,
    #[serde(skip_serializing_if = "Option::is_none")]
    upstream_status: Option<u16>,
}

impl Failure {
    /// The JSON body: also written as-is by the connection layer when it replaces
    /// an answer of the HTTP layer (see [`super::wire`]).
    pub fn body(&self) -> Vec<u8> {
        let (_, code) = self.error.status_and_code();
        let message = self.error.message();
        let body = ErrorBody {
            message: &message,
            code,
            request_id: &self.request_id,
            provider: self.error.provider(),
            upstream_status: self.error.upstream_status(),
        };
        // Serializing a struct of strings and integers cannot fail.
        serde_json::to_vec(&body).unwrap_or_default()
    }
}

impl ResponseError for Failure {
    fn status_code(&self) -> StatusCode {
        self.error.status_and_code().0
    }

    fn error_response(&self) -> HttpResponse {
        let (status, _) = self.error.status_and_code();
        let mut response = HttpResponse::build(status);
        response.content_type(super::JSON);
        if let Some(secs) = self.error.retry_after() {
            response.insert_header((header::RETRY_AFTER, HeaderValue::from(secs)));
        }
        if let ApiError::MethodNotAllowed { allow, .. } = &self.error {
            response.insert_header((header::ALLOW, *allow));
        }
        if self.error.closes_connection() {
            response.force_close();
        }
        response.body(self.body())
    }
}
