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

/// Which routes can give an answer: what the OpenAPI document lists per
/// operation (see [`ERRORS`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Any route: the HTTP layer's refusals, another method, a bug.
    Any,
    /// Routes that need a client key.
    Authenticated,
    /// Routes that read a bot (`chatbotId`): parameters, scope, the vendors.
    Bot,
    /// Routes that read a request body.
    Body,
}

/// Whether an answer went through the client's quota, and so carries the
/// `RateLimit*` headers (they are the numbers of the client it counted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counted {
    /// Given after the client was authenticated and counted.
    Always,
    /// Given either before or after the client was counted.
    Maybe,
    /// Given before any key was looked at (the HTTP layer, the method, a
    /// blocked IP, a missing key).
    Never,
}

/// One error answer the API gives: its status, `code`, where it can happen and
/// what it says about the rate-limit headers.
#[derive(Debug, Clone, Copy)]
pub struct ErrorDoc {
    /// The HTTP status.
    pub status: u16,
    /// The stable `code` in the body.
    pub code: &'static str,
    /// Which routes give it.
    pub scope: Scope,
    /// Whether it carries the `RateLimit*` headers.
    pub counted: Counted,
    /// Whether it carries `Retry-After`.
    pub retry_after: bool,
    /// When, in one phrase for the document's response descriptions.
    pub when: &'static str,
}

/// Every error answer the API documents, in one table beside the mapping that
/// produces them, so the OpenAPI document (`server::openapi`) lists exactly
/// what [`ApiError::status_and_code`] can answer (a test holds the two
/// together). A code given in two circumstances has a row for each.
pub const ERRORS: &[ErrorDoc] = &[
    ErrorDoc {
        status: 400,
        code: "invalid_request",
        scope: Scope::Any,
        counted: Counted::Never,
        retry_after: false,
        when: "the request is not valid HTTP/1.1 (request line, URI over 64 KiB, header, `Content-Length`); the connection closes",
    },
    ErrorDoc {
        status: 400,
        code: "invalid_request",
        scope: Scope::Bot,
        counted: Counted::Always,
        retry_after: false,
        when: "a parameter is missing, ill-typed, out of range or given twice; an unknown source; a bad JSON body; a bad conversation id; a page past what the backends can be read to",
    },
    ErrorDoc {
        status: 400,
        code: "invalid_date",
        scope: Scope::Bot,
        counted: Counted::Always,
        retry_after: false,
        when: "a date is not strict `YYYY-MM-DD`, not a real date, or `startDate` is after `endDate`",
    },
    ErrorDoc {
        status: 401,
        code: "unauthorized",
        scope: Scope::Authenticated,
        counted: Counted::Never,
        retry_after: false,
        when: "no client key, or one no client has",
    },
    ErrorDoc {
        status: 403,
        code: "forbidden",
        scope: Scope::Bot,
        counted: Counted::Always,
        retry_after: false,
        when: "the key may not read this bot",
    },
    ErrorDoc {
        status: 404,
        code: "bot_not_found",
        scope: Scope::Bot,
        counted: Counted::Always,
        retry_after: false,
        when: "`chatbotId` names no configured bot",
    },
    ErrorDoc {
        status: 404,
        code: "not_found",
        scope: Scope::Bot,
        counted: Counted::Always,
        retry_after: false,
        when: "the vendor says the chatbot or conversation does not exist",
    },
    ErrorDoc {
        status: 405,
        code: "method_not_allowed",
        scope: Scope::Any,
        counted: Counted::Never,
        retry_after: false,
        when: "another method on this path; `Allow` lists the path's methods",
    },
    ErrorDoc {
        status: 408,
        code: "request_timeout",
        scope: Scope::Any,
        counted: Counted::Never,
        retry_after: false,
        when: "the request head did not arrive in time; the connection closes",
    },
    ErrorDoc {
        status: 408,
        code: "request_timeout",
        scope: Scope::Body,
        counted: Counted::Always,
        retry_after: false,
        when: "the request body did not arrive within `server.request_body_timeout_ms`; the connection closes",
    },
    ErrorDoc {
        status: 413,
        code: "payload_too_large",
        scope: Scope::Body,
        counted: Counted::Always,
        retry_after: false,
        when: "the request body is over 64 KiB",
    },
    ErrorDoc {
        status: 429,
        code: "rate_limited",
        scope: Scope::Authenticated,
        counted: Counted::Always,
        retry_after: true,
        when: "this client's quota is spent",
    },
    ErrorDoc {
        status: 429,
        code: "rate_limited",
        scope: Scope::Authenticated,
        counted: Counted::Never,
        retry_after: true,
        when: "this IP presented wrong keys too often",
    },
    ErrorDoc {
        status: 429,
        code: "upstream_rate_limited",
        scope: Scope::Bot,
        counted: Counted::Always,
        retry_after: true,
        when: "the vendor said 429 (or its window is still running), or the gateway's guard of the vendor's quota had no slot in time",
    },
    ErrorDoc {
        status: 431,
        code: "headers_too_large",
        scope: Scope::Any,
        counted: Counted::Never,
        retry_after: false,
        when: "the request head is over 128 KiB or has over 96 header fields; the connection closes",
    },
    ErrorDoc {
        status: 500,
        code: "internal_error",
        scope: Scope::Any,
        counted: Counted::Maybe,
        retry_after: false,
        when: "a bug; the body says nothing more, the log says what",
    },
    ErrorDoc {
        status: 501,
        code: "not_supported",
        scope: Scope::Bot,
        counted: Counted::Always,
        retry_after: false,
        when: "the bot's vendor has no API for this (one conversation on Chatbase or Chatzuri)",
    },
    ErrorDoc {
        status: 502,
        code: "upstream_auth_failed",
        scope: Scope::Bot,
        counted: Counted::Always,
        retry_after: false,
        when: "the vendor rejected the gateway's provider key: a gateway configuration fault",
    },
    ErrorDoc {
        status: 502,
        code: "upstream_error",
        scope: Scope::Bot,
        counted: Counted::Always,
        retry_after: false,
        when: "the vendor failed (5xx or another 4xx, connection, body) or the request needed too many vendor calls",
    },
    ErrorDoc {
        status: 503,
        code: "upstream_unavailable",
        scope: Scope::Bot,
        counted: Counted::Always,
        retry_after: true,
        when: "the circuit breaker of the bot's vendor is open",
    },
    ErrorDoc {
        status: 504,
        code: "upstream_timeout",
        scope: Scope::Bot,
        counted: Counted::Always,
        retry_after: false,
        when: "the vendor did not answer within `timeout_ms`, or the request exceeded `request_timeout_ms`",
    },
];

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
            request_id: super::request_log::request_id(req).to_string(),
        }
    }
}

/// The flat error body of every error answer (SPEC §2.6): `Error` in the
/// OpenAPI document, whose schema is derived from this struct.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = Error)]
pub(crate) struct ErrorBody<'a> {
    /// A human sentence saying what went wrong (Chatbase's field, kept so its
    /// clients still read it).
    message: &'a str,
    /// The stable code of the error, what a program branches on.
    #[schema(schema_with = code_schema)]
    code: &'a str,
    /// The request's id, as in `X-Request-Id`.
    #[schema(schema_with = super::request_log::request_id_schema)]
    request_id: &'a str,
    /// The vendor involved, only when a vendor was.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    provider: Option<ProviderKind>,
    /// The vendor's HTTP status, only when its answer caused the error.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, minimum = 100, maximum = 599)]
    upstream_status: Option<u16>,
}

/// The schema of `code`: every code of [`ERRORS`], once each.
pub(crate) fn code_schema() -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::Type::String)
        .enum_values(Some(codes()))
        .build()
}

/// Every code of [`ERRORS`], once each, in table order.
fn codes() -> Vec<&'static str> {
    let mut codes: Vec<&'static str> = Vec::new();
    for e in ERRORS {
        if !codes.contains(&e.code) {
            codes.push(e.code);
        }
    }
    codes
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

#[cfg(test)]
mod tests {
    use super::*;

    /// One of every kind of error the mapping knows.
    fn every_error() -> Vec<ApiError> {
        use ProviderError as P;
        let second = Duration::from_secs(1);
        let vendor = |e: ProviderError| -> ApiError {
            GatewayError::upstream(ProviderKind::Chatbase, e).into()
        };
        let failure = |f: UpstreamFailure| -> ApiError {
            GatewayError::upstream(ProviderKind::Chatbase, f).into()
        };
        let message = String::new;
        vec![
            ApiError::InvalidRequest(message()),
            ApiError::InvalidDate(message()),
            ApiError::Unauthorized,
            ApiError::Forbidden(message()),
            ApiError::BotNotFound(message()),
            ApiError::NoRoute(message()),
            ApiError::MethodNotAllowed {
                method: message(),
                allow: "GET",
            },
            ApiError::PayloadTooLarge(1),
            ApiError::BodyTimeout(second),
            // What actix-http answers on its own (`server::wire`).
            ApiError::HttpLayer(StatusCode::BAD_REQUEST),
            ApiError::HttpLayer(StatusCode::REQUEST_TIMEOUT),
            ApiError::HttpLayer(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE),
            ApiError::RateLimited(second),
            GatewayError::Internal.into(),
            GatewayError::OutOfReach(message()).into(),
            vendor(P::Unauthorized {
                status: 401,
                message: message(),
            }),
            vendor(P::NotFound { message: message() }),
            vendor(P::RateLimited { retry_after: None }),
            vendor(P::Rejected {
                status: 400,
                message: message(),
            }),
            vendor(P::Upstream {
                status: 500,
                message: message(),
            }),
            vendor(P::InvalidBody {
                status: 200,
                reason: message(),
            }),
            vendor(P::ScanLimit { pages: 1 }),
            vendor(P::NotSupported("")),
            failure(UpstreamFailure::Transport(TransportError::Timeout(second))),
            failure(UpstreamFailure::Transport(TransportError::Connect(
                message(),
            ))),
            failure(UpstreamFailure::Deadline(second)),
            failure(UpstreamFailure::Paused(second)),
            failure(UpstreamFailure::CircuitOpen(second)),
            failure(UpstreamFailure::CallBudget(1)),
            failure(UpstreamFailure::Throttled(second)),
        ]
    }

    #[test]
    fn every_error_the_mapping_gives_is_in_the_documented_table() {
        for error in every_error() {
            let (status, code) = error.status_and_code();
            let rows: Vec<&ErrorDoc> = ERRORS
                .iter()
                .filter(|e| e.status == status.as_u16() && e.code == code)
                .collect();
            assert!(
                !rows.is_empty(),
                "{error:?} → {status} {code} is not in ERRORS"
            );
            assert_eq!(
                rows.iter().any(|e| e.retry_after),
                error.retry_after().is_some(),
                "{error:?}: Retry-After as documented"
            );
        }
    }

    #[test]
    fn every_documented_error_is_one_the_mapping_gives() {
        let given: Vec<(u16, &str)> = every_error()
            .iter()
            .map(|e| {
                let (status, code) = e.status_and_code();
                (status.as_u16(), code)
            })
            .collect();
        for row in ERRORS {
            assert!(
                given.contains(&(row.status, row.code)),
                "{} {} is documented but never answered",
                row.status,
                row.code
            );
        }
    }
}
