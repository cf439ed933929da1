//! Request ids and the one log line per request.
//!
//! Every response carries `X-Request-Id`: the caller's, when it is sane (≤ 128
//! characters of `[A-Za-z0-9._-]`), else a new UUID. Handlers record what they
//! learned (client, bot, provider, vendor calls) in [`LogFields`]; the middleware
//! writes the line after the response is built, whatever path answered.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{Error, HttpMessage, HttpRequest};

use crate::gateway::UpstreamStats;
use crate::limits::RateInfo;

/// The request id header.
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The id of the request being served, stored in its extensions.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

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
}

/// The current request's id (set by [`middleware`] before any handler runs).
pub fn request_id(req: &HttpRequest) -> String {
    req.extensions()
        .get::<RequestId>()
        .map(|r| r.0.clone())
        .unwrap_or_default()
}

/// Records what a handler learned.
pub fn record(req: &HttpRequest, f: impl FnOnce(&mut LogFields)) {
    let mut ext = req.extensions_mut();
    if ext.get::<LogFields>().is_none() {
        ext.insert(LogFields::default());
    }
    if let Some(fields) = ext.get_mut::<LogFields>() {
        f(fields);
    }
}

/// The name of the client quota's policy in `RateLimit-Policy` and `RateLimit`.
const POLICY: &sfv::StringRef = sfv::StringRef::constant("client");

/// The rate-limit headers on every authenticated response, whatever path
/// answered, so a client sees the same numbers on a hit, a miss and an error:
/// draft-ietf-httpapi-ratelimit-headers-11's two Structured Fields, and the
/// older draft's three integers, with the same numbers (README "Rate limits").
fn rate_limit_headers(headers: &mut actix_web::http::header::HeaderMap, rate: &RateInfo) {
    let reset = whole_seconds_up(rate.reset);
    for (name, value) in [
        ("ratelimit-limit", u64::from(rate.limit)),
        ("ratelimit-remaining", u64::from(rate.remaining)),
        ("ratelimit-reset", reset),
    ] {
        headers.insert(HeaderName::from_static(name), HeaderValue::from(value));
    }
    let (policy, current) = structured_fields(rate);
    for (name, value) in [("ratelimit-policy", policy), ("ratelimit", current)] {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(HeaderName::from_static(name), value);
        }
    }
}

/// `RateLimit-Policy` (`"client";q=<burst>;w=<seconds for an empty bucket to
/// fill>`) and `RateLimit` (`"client";r=<remaining>;t=<seconds until full>`),
/// serialized as Structured Fields (RFC 9651) Lists of one Item.
pub fn structured_fields(rate: &RateInfo) -> (String, String) {
    let seconds = |d| sfv::Integer::try_from(whole_seconds_up(d)).unwrap_or(sfv::Integer::MAX);
    let policy = client_item(&[
        (sfv::KeyRef::constant("q"), rate.limit.into()),
        (sfv::KeyRef::constant("w"), seconds(rate.window)),
    ]);
    let current = client_item(&[
        (sfv::KeyRef::constant("r"), rate.remaining.into()),
        (sfv::KeyRef::constant("t"), seconds(rate.reset)),
    ]);
    (policy, current)
}

/// A List of one Item, the [`POLICY`] string with these parameters.
fn client_item(params: &[(&sfv::KeyRef, sfv::Integer)]) -> String {
    let mut list = sfv::ListSerializer::new();
    // Each parameter is written as it is added; the serializer returned
    // at the end has nothing left to say.
    _ = params
        .iter()
        .fold(list.bare_item(POLICY), |item, (key, value)| {
            item.parameter(key, *value)
        });
    // A List with a member always serializes.
    list.finish().unwrap_or_default()
}

/// Whole seconds, rounded up: a client told to wait must not be early.
fn whole_seconds_up(d: std::time::Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
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

/// [`sane`] as a regular expression, for the OpenAPI document.
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
    let id = req
        .headers()
        .get(&X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| sane(v))
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    req.extensions_mut().insert(RequestId(id.clone()));
    let method = req.method().clone();
    let path = req.path().to_owned();
    let mut res = next.call(req).await?;
    if let Ok(v) = HeaderValue::from_str(&id) {
        res.headers_mut().insert(X_REQUEST_ID, v);
    }
    let rate = res.request().extensions().get::<RateInfo>().copied();
    if let Some(rate) = rate {
        rate_limit_headers(res.headers_mut(), &rate);
    }
    let fields = res
        .request()
        .extensions()
        .get::<LogFields>()
        .cloned()
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
    }
    let error = res.response().error().map(|e| e.to_string());
    tracing::info!(
        request_id = %id,
        method = %method,
        path = %path,
        status,
        client = fields.client.as_deref(),
        bot = fields.bot.as_deref(),
        provider = fields.provider.as_deref(),
        cache = fields.cache,
        upstream_calls = fields.upstream.calls(),
        upstream_ms = fields.upstream.latency().as_secs_f64() * 1000.0,
        total_ms = total.as_secs_f64() * 1000.0,
        error = error.as_deref(),
        "request"
    );
    Ok(res)
}
