//! Request ids and the one log line per request.
//!
//! Every response carries `X-Request-Id`: the caller's, when it is sane (≤ 128
//! characters of `[A-Za-z0-9._-]`), else a new UUID. Handlers record what they
//! learned (client, bot, provider, vendor calls) in [`LogFields`]; the middleware
//! writes the line after the response is built, whatever path answered.

use std::rc::Rc;
use std::time::Duration;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{Error, HttpMessage, HttpRequest};
use bytes::BytesMut;

use crate::gateway::UpstreamStats;
use crate::limits::RateInfo;

/// The request id header.
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The id of the request being served, stored in its extensions. Shared, not
/// copied, by everything that names the request (the vendor calls' header,
/// error bodies, the log line): a request and its handlers stay on one worker
/// thread.
#[derive(Debug, Clone)]
pub struct RequestId(pub Rc<str>);

/// What a handler learned about a request, for the log line.
#[derive(Debug, Default, Clone)]
pub struct LogFields {
    /// The authenticated client's name (never its key).
    pub client: Option<String>,
    /// The bot asked for.
    pub bot: Option<String>,
    /// The provider that served it.
    pub provider: Option<String>,
    /// Vendor calls made.
    pub upstream: UpstreamStats,
    /// How the cache answered (`X-Cache`).
    pub cache: Option<&'static str>,
    /// Time spent waiting on vendors and on other requests' fetches (see
    /// [`crate::waits`]): the request's time less this is the gateway's own.
    pub waited: Duration,
}

/// The current request's id (set by [`middleware`] before any handler runs).
pub fn request_id(req: &HttpRequest) -> Rc<str> {
    req.extensions()
        .get::<RequestId>()
        .map_or_else(|| Rc::from(""), |r| r.0.clone())
}

/// Records what a handler learned.
pub fn record(req: &HttpRequest, f: impl FnOnce(&mut LogFields)) {
    let mut ext = req.extensions_mut();
    match ext.get_mut::<LogFields>() {
        Some(fields) => f(fields),
        None => {
            let mut fields = LogFields::default();
            f(&mut fields);
            ext.insert(fields);
        }
    }
}

/// The rate-limit headers on every authenticated response, whatever path
/// answered, so a client sees the same numbers on a hit, a miss and an error:
/// draft-ietf-httpapi-ratelimit-headers-11's two Structured Fields, and the
/// older draft's three integers, with the same numbers (README "Rate limits").
///
/// The five values are written into one buffer, each header a view of it:
/// one allocation per answer rather than one per value. They are appended:
/// nothing else writes these headers, and `insert` would also take out and
/// drop a previous value, at a cost measurable on every answer.
fn rate_limit_headers(headers: &mut HeaderMap, rate: &RateInfo) {
    let mut digits = [
        itoa::Buffer::new(),
        itoa::Buffer::new(),
        itoa::Buffer::new(),
    ];
    let [limit, remaining, reset] = &mut digits;
    let (policy, current) = structured_fields(rate);
    let values = [
        (RATELIMIT_LIMIT, limit.format(rate.limit).as_bytes()),
        (
            RATELIMIT_REMAINING,
            remaining.format(rate.remaining).as_bytes(),
        ),
        (
            RATELIMIT_RESET,
            reset.format(whole_seconds_up(rate.reset)).as_bytes(),
        ),
        (RATELIMIT_POLICY, policy.as_bytes()),
        (RATELIMIT, current.as_bytes()),
    ];
    let mut buffer = BytesMut::with_capacity(values.iter().map(|(_, v)| v.len()).sum());
    for (_, value) in &values {
        buffer.extend_from_slice(value);
    }
    let mut all = buffer.freeze();
    for (name, value) in values {
        let view = all.split_to(value.len());
        if let Ok(value) = HeaderValue::from_maybe_shared(view) {
            headers.append(name, value);
        }
    }
}

const RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("ratelimit-limit");
const RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("ratelimit-remaining");
const RATELIMIT_RESET: HeaderName = HeaderName::from_static("ratelimit-reset");
const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

/// The largest Structured Fields Integer (RFC 9651 §3.3.1): 15 digits.
const SF_INTEGER_MAX: u64 = 999_999_999_999_999;

/// `RateLimit-Policy` (`"client";q=<burst>;w=<seconds for an empty bucket to
/// fill>`) and `RateLimit` (`"client";r=<remaining>;t=<seconds until full>`):
/// Structured Fields (RFC 9651) Lists of one Item, the String `"client"` with
/// two Integer parameters, written directly (a serializer built per request
/// cost more than the rest of the headers together). Seconds past the
/// largest Integer are written as it.
pub fn structured_fields(rate: &RateInfo) -> (SfValue, SfValue) {
    let seconds = |d| whole_seconds_up(d).min(SF_INTEGER_MAX);
    let policy = SfValue::client_item((b'q', u64::from(rate.limit)), (b'w', seconds(rate.window)));
    let current = SfValue::client_item(
        (b'r', u64::from(rate.remaining)),
        (b't', seconds(rate.reset)),
    );
    (policy, current)
}

/// One Structured Field value of [`structured_fields`], built on the stack:
/// `"client"`, two parameters of one-letter keys and at most 15 digits each.
pub struct SfValue {
    bytes: [u8; Self::CAPACITY],
    len: usize,
}

impl SfValue {
    /// `"client"` (8) + 2 × `;k=` (3) + 2 × 15 digits.
    const CAPACITY: usize = 8 + 2 * 3 + 2 * 15;

    fn client_item(first: (u8, u64), second: (u8, u64)) -> Self {
        let mut value = Self {
            bytes: [0; Self::CAPACITY],
            len: 0,
        };
        value.push(b"\"client\"");
        for (key, n) in [first, second] {
            value.push(&[b';', key, b'=']);
            let mut digits = itoa::Buffer::new();
            value.push(digits.format(n.min(SF_INTEGER_MAX)).as_bytes());
        }
        value
    }

    /// Appends what fits (everything does: see [`Self::CAPACITY`]).
    fn push(&mut self, bytes: &[u8]) {
        let end = (self.len + bytes.len()).min(Self::CAPACITY);
        let n = end - self.len;
        self.bytes[self.len..end].copy_from_slice(&bytes[..n]);
        self.len = end;
    }

    /// The value's bytes (ASCII).
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// Whole seconds, rounded up: a client told to wait must not be early.
fn whole_seconds_up(d: Duration) -> u64 {
    d.as_secs().saturating_add(u64::from(d.subsec_nanos() > 0))
}

/// The `route` label: a fixed set, so unknown paths cannot grow the metrics.
fn route_name(pattern: Option<&str>) -> &'static str {
    match pattern {
        Some("/api/v1/get-conversations") => "list",
        Some("/api/v1/conversations/{conversation_id}") => "detail",
        Some("/api/v1/bots") => "bots",
        Some("/healthz") => "healthz",
        Some("/readyz") => "readyz",
        Some("/metrics") => "metrics",
        _ => "other",
    }
}

/// `sane` as a regular expression, for the OpenAPI document.
pub const REQUEST_ID_PATTERN: &str = "^[A-Za-z0-9._-]{1,128}$";

/// The schema of a request id (`X-Request-Id`, an error body's `request_id`).
pub(crate) fn request_id_schema() -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::Type::String)
        .pattern(Some(REQUEST_ID_PATTERN))
        .build()
}

/// Whether a caller's request id may be echoed: see [`REQUEST_ID_PATTERN`].
fn sane(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// Assigns the request id, echoes it, and logs the request.
pub async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    // Both apps this wraps carry the state: its metrics, and the clock the
    // request is timed by.
    let state = req
        .app_data::<actix_web::web::Data<super::AppState>>()
        .cloned();
    let started = state.as_ref().map(|s| s.clock().now());
    let id = assign_id(req.headers().get(&X_REQUEST_ID));
    req.extensions_mut().insert(RequestId(id.clone()));
    let mut res = next.call(req).await?;
    if let Ok(v) = HeaderValue::from_str(&id) {
        res.headers_mut().insert(X_REQUEST_ID, v);
    }
    let rate = res.request().extensions().get::<RateInfo>().copied();
    if let Some(rate) = rate {
        rate_limit_headers(res.headers_mut(), &rate);
    }
    // Taken, not copied: nothing reads them after this line.
    let fields = res
        .request()
        .extensions_mut()
        .remove::<LogFields>()
        .unwrap_or_default();
    let total = state
        .as_ref()
        .zip(started)
        .map(|(s, started)| s.clock().now().saturating_duration_since(started))
        .unwrap_or_default();
    let status = res.status().as_u16();
    let route = route_name(res.request().match_pattern().as_deref());
    if let Some(state) = &state {
        state.metrics.request(route, status, total);
        state
            .metrics
            .overhead(route, total.saturating_sub(fields.waited));
    }
    let error = res.response().error().map(|e| e.to_string());
    let request = res.request();
    log_access(&Access {
        request_id: &id,
        method: request.method().as_str(),
        path: request.path(),
        status,
        client: fields.client.as_deref(),
        bot: fields.bot.as_deref(),
        provider: fields.provider.as_deref(),
        cache: fields.cache,
        upstream_calls: fields.upstream.calls(),
        upstream: fields.upstream.latency(),
        total,
        error: error.as_deref(),
    });
    Ok(res)
}

/// What the access line says about one request: [`log_access`]'s input.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Access<'a> {
    /// The request id (`X-Request-Id`).
    pub request_id: &'a str,
    /// The HTTP method.
    pub method: &'a str,
    /// The path, without the query (which may carry what a client would
    /// rather not see in logs).
    pub path: &'a str,
    /// The response's status.
    pub status: u16,
    /// The authenticated client's name.
    pub client: Option<&'a str>,
    /// The bot asked for.
    pub bot: Option<&'a str>,
    /// The provider that served it.
    pub provider: Option<&'a str>,
    /// How the cache answered (`X-Cache`).
    pub cache: Option<&'a str>,
    /// Vendor calls made.
    pub upstream_calls: u32,
    /// Time spent in vendor calls.
    pub upstream: Duration,
    /// The request's whole time.
    pub total: Duration,
    /// The error answered, if any.
    pub error: Option<&'a str>,
}

/// The target of the access line: this module.
pub(crate) const ACCESS_TARGET: &str = module_path!();

/// The access line's fields, in the order [`log_access`] names them (tracing
/// puts the message first).
pub(crate) const ACCESS_FIELDS: [&str; 13] = [
    "message",
    "request_id",
    "method",
    "path",
    "status",
    "client",
    "bot",
    "provider",
    "cache",
    "upstream_calls",
    "upstream_ms",
    "total_ms",
    "error",
];

/// Logs the one line per request, at INFO with this module as its target, so
/// `RUST_LOG` keeps or drops it like any event (`RUST_LOG=warn`, or
/// `chatgate::server::request_log=off`). Fields that are `None` are left out;
/// names and values print as tracing-subscriber prints them: `%` fields as
/// they are, strings quoted (`Debug`), times as milliseconds.
///
/// [`crate::log_format`] recognizes this event by its target and field names
/// ([`is_access_line`]) and writes it by hand, byte for byte as
/// tracing-subscriber would; its tests format the event of this very function
/// both ways, and check it is recognized. A field changed here changes in
/// [`ACCESS_FIELDS`] too.
pub(crate) fn log_access(a: &Access<'_>) {
    tracing::info!(
        request_id = %a.request_id,
        method = %a.method,
        path = %a.path,
        status = a.status,
        client = a.client,
        bot = a.bot,
        provider = a.provider,
        cache = a.cache,
        upstream_calls = a.upstream_calls,
        upstream_ms = millis(a.upstream),
        total_ms = millis(a.total),
        error = a.error,
        "request"
    );
}

/// Whether `meta` is [`log_access`]'s event.
pub(crate) fn is_access_line(meta: &tracing::Metadata<'_>) -> bool {
    meta.target() == ACCESS_TARGET
        && meta.is_event()
        && meta.fields().len() == ACCESS_FIELDS.len()
        && meta
            .fields()
            .iter()
            .zip(ACCESS_FIELDS)
            .all(|(field, name)| field.name() == name)
}

/// Milliseconds to the microsecond, so a log line reads `16.658`, not the
/// `16.658299000000003` a float product of the seconds prints.
fn millis(d: Duration) -> f64 {
    // Exact below 2^53 µs (285 years); a longer request is not a request.
    d.as_micros() as f64 / 1000.0
}

/// The caller's request id when [`sane`], else a new UUID (formatted on the
/// stack, then stored once).
fn assign_id(given: Option<&HeaderValue>) -> Rc<str> {
    match given.and_then(|v| v.to_str().ok()).filter(|v| sane(v)) {
        Some(id) => Rc::from(id),
        None => {
            let mut buf = uuid::Uuid::encode_buffer();
            Rc::from(&*uuid::Uuid::new_v4().hyphenated().encode_lower(&mut buf))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the `sfv` serializer writes for the same List of one Item.
    fn serialized(params: [(&str, u64); 2]) -> String {
        let mut list = sfv::ListSerializer::new();
        let _ = params.iter().fold(
            list.bare_item(sfv::StringRef::constant("client")),
            |item, (key, value)| {
                let key = sfv::KeyRef::from_str(key).unwrap_or_else(|_| unreachable!());
                let value = sfv::Integer::try_from(*value).unwrap_or(sfv::Integer::MAX);
                item.parameter(key, value)
            },
        );
        list.finish().unwrap_or_default()
    }

    #[test]
    fn log_milliseconds_print_to_the_microsecond() {
        assert_eq!(
            millis(Duration::from_nanos(16_658_299_000)).to_string(),
            "16658.299"
        );
        assert_eq!(
            millis(Duration::from_nanos(16_658_299)).to_string(),
            "16.658"
        );
        assert_eq!(millis(Duration::from_micros(7)).to_string(), "0.007");
        assert_eq!(millis(Duration::ZERO).to_string(), "0");
    }

    #[test]
    fn ratelimit_fields_are_byte_identical_to_a_structured_fields_serializer() {
        let secs = Duration::from_secs;
        for (limit, remaining, window, reset) in [
            (1, 0, secs(1), Duration::ZERO),
            (5, 4, secs(5), Duration::from_millis(1)),
            (
                3,
                2,
                Duration::from_nanos(25_714_285_713),
                Duration::from_millis(8_571),
            ),
            (u32::MAX, u32::MAX, secs(u64::MAX), Duration::MAX),
            (
                1_000_000,
                999_999,
                secs(999_999_999_999_999),
                secs(1_000_000_000_000_000),
            ),
        ] {
            let rate = RateInfo {
                limit,
                window,
                remaining,
                reset,
                retry_after: None,
            };
            let (policy, current) = structured_fields(&rate);
            let up = |d| whole_seconds_up(d);
            assert_eq!(
                std::str::from_utf8(policy.as_bytes()),
                Ok(serialized([("q", u64::from(limit)), ("w", up(window))]).as_str())
            );
            assert_eq!(
                std::str::from_utf8(current.as_bytes()),
                Ok(serialized([("r", u64::from(remaining)), ("t", up(reset))]).as_str())
            );
        }
    }

    #[test]
    fn a_sane_request_id_is_kept_and_any_other_replaced_by_a_uuid() {
        let kept = HeaderValue::from_static("abc-123_x.y");
        assert_eq!(&*assign_id(Some(&kept)), "abc-123_x.y");
        for refused in [
            None,
            Some(HeaderValue::from_static("a b")),
            Some(HeaderValue::from_static("")),
        ] {
            let id = assign_id(refused.as_ref());
            assert!(uuid::Uuid::parse_str(&id).is_ok(), "{id}");
            assert_eq!(id.len(), 36);
        }
    }
}
