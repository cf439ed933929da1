//! The HTTP endpoints (SPEC §2). Each API handler reads as its phases:
//! authenticate and limit (the [`Caller`] extractor, before the handler runs) →
//! parse → resolve and authorize the bot → cache, which calls the vendors on a
//! miss ([`CallCtx`]) → respond. Errors are tied to the request id once, in
//! `answer`.

use std::future::Future;

use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::{web, HttpRequest, HttpResponse};
use futures_util::{StreamExt, TryFutureExt};
use serde::Serialize;

use utoipa::ToSchema;

use super::auth::Caller;
use super::error::{ApiError, Failure};
use super::request_log::{record, request_id};
use super::{AppState, JSON};
use crate::cache::{CacheKey, CacheStatus, Listed, Stored};
use crate::config::BotConfig;
use crate::gateway::{CallCtx, UpstreamStats};
use crate::metrics::Format;
use crate::query::doc::BodyQuery;
use crate::query::{self as params, DetailParams, ListParams};
use crate::upstream::Upstream;
use crate::waits::Waits;

/// Largest request body accepted by `POST /api/v1/get-conversations`.
pub const MAX_REQUEST_BODY: usize = 64 * 1024;

/// Registers every route on an app.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/api/v1/get-conversations")
            .route(web::get().to(list_get))
            .route(web::head().to(list_get))
            .route(web::post().to(list_post))
            .default_service(not_allowed("GET, HEAD, POST")),
    )
    .service(
        web::resource("/api/v1/conversations/{conversation_id}")
            .route(web::get().to(get_conversation))
            .route(web::head().to(get_conversation))
            .default_service(not_allowed(GET)),
    )
    .service(
        web::resource("/api/v1/bots")
            .route(web::get().to(list_bots))
            .route(web::head().to(list_bots))
            .default_service(not_allowed(GET)),
    )
    .service(
        web::resource("/healthz")
            .route(web::get().to(healthz))
            .route(web::head().to(healthz))
            .default_service(not_allowed(GET)),
    )
    .service(
        web::resource("/readyz")
            .route(web::get().to(readyz))
            .route(web::head().to(readyz))
            .default_service(not_allowed(GET)),
    )
    .service(metrics_resource())
    .service(
        web::resource("/openapi.json")
            .route(web::get().to(openapi))
            .route(web::head().to(openapi))
            .default_service(not_allowed(GET)),
    );
}

/// The methods of a read-only resource: `HEAD` is `GET` without the body
/// (RFC 9110 §9.3.2).
const GET: &str = "GET, HEAD";

/// `/metrics`, on the main app or alone on `server.metrics_bind`.
pub fn metrics_resource() -> actix_web::Resource {
    web::resource("/metrics")
        .route(web::get().to(metrics))
        .route(web::head().to(metrics))
        .default_service(not_allowed(GET))
}

/// Ties an error to the request it answers: the one place a handler's error
/// becomes a response.
///
/// A combinator rather than an `async fn`: an `async fn` would keep its
/// argument and the future it awaits in separate places, so every handler's
/// future (kilobytes, moved into a box for each request) would hold the
/// handler's phases twice.
fn answer<'a>(
    req: &'a HttpRequest,
    handler: impl Future<Output = Result<HttpResponse, ApiError>> + 'a,
) -> impl Future<Output = Result<HttpResponse, Failure>> + 'a {
    handler.map_err(move |error| Failure::of(req, error))
}

/// `GET /api/v1/get-conversations`.
#[utoipa::path(
    get,
    path = "/api/v1/get-conversations",
    operation_id = "listConversations",
    tag = "conversations",
    summary = "List a bot's conversations",
    description = "One page of a bot's conversations, newest first, in the normalized shape \
        whatever its vendor. The path and parameter names are Chatbase v1's. \
        `Cache-Control: no-cache` skips the cache read (`X-Cache: BYPASS`). \
        `HEAD` answers like `GET` without the body.",
    params(ListParams),
    responses((status = 200, description = "One page of conversations.", body = crate::gateway::ListBody)),
    security(("clientKey" = [])),
)]
pub(crate) async fn list_get(
    req: HttpRequest,
    caller: Caller,
    upstream: web::Data<Upstream>,
) -> Result<HttpResponse, Failure> {
    answer(&req, async {
        let params = params::list_from_query(req.query_string())?;
        list(&req, &caller, &upstream, params).await
    })
    .await
}

/// `POST /api/v1/get-conversations` with a JSON body (the older Chatzuri dialect).
#[utoipa::path(
    post,
    path = "/api/v1/get-conversations",
    operation_id = "listConversationsWithBody",
    tag = "conversations",
    summary = "List a bot's conversations, parameters in a JSON body",
    description = "The same request as `GET`, its parameters in a JSON body (the older \
        Chatzuri dialect); `include` may be in the query string instead, not in both (400). \
        A body over 64 KiB is 413.",
    params(BodyQuery),
    request_body(content = ListParams, content_type = "application/json"),
    responses((status = 200, description = "One page of conversations.", body = crate::gateway::ListBody)),
    security(("clientKey" = [])),
)]
pub(crate) async fn list_post(
    req: HttpRequest,
    payload: web::Payload,
    caller: Caller,
    upstream: web::Data<Upstream>,
) -> Result<HttpResponse, Failure> {
    answer(&req, async {
        let within = caller.rt.gateway.config.server.request_body_timeout;
        let body = read_body(&req, payload, within).await?;
        let params = params::list_from_json(&body, req.query_string())?;
        list(&req, &caller, &upstream, params).await
    })
    .await
}

/// The list phases after parsing: resolve and authorize the bot, then the
/// cache, which calls the vendors on a miss, then the answer.
async fn list(
    req: &HttpRequest,
    caller: &Caller,
    upstream: &Upstream,
    params: ListParams,
) -> Result<HttpResponse, ApiError> {
    let gateway = &caller.rt.gateway;
    let bot = resolve_bot(req, caller, &params.bot)?;
    let key = CacheKey::list(gateway.bot_key(bot)?, &params.query);
    let request_id = request_id(req);
    let ctx = call_ctx(req, caller, upstream, &request_id);
    let fetch = || gateway.list(&ctx, bot, &params.query);
    let result = caller
        .state
        .cache
        .get_or_fetch_shared(key, ctx.bypass, gateway.shared_cache(), &ctx.waits, fetch)
        .await;
    record(req, |f| {
        f.waited = ctx.waits.total();
        f.upstream = ctx.stats;
    });
    Ok(success(req, &caller.state, result?))
}

/// `GET /api/v1/conversations/{id}?chatbotId=<bot>`.
#[utoipa::path(
    get,
    path = "/api/v1/conversations/{conversationId}",
    operation_id = "getConversation",
    tag = "conversations",
    summary = "One conversation with every message",
    description = "Vendors with a detail endpoint (Chatling) answer it; for the others \
        (Chatbase v1, Chatzuri) it is 501 `not_supported`, without a vendor call. \
        `HEAD` answers like `GET` without the body.",
    params(
        ("conversationId" = String, Path, description = "The vendor's conversation id: 1-256 \
            characters of letters, digits, `.`, `_`, `:`, `-`, not only dots.",
            min_length = 1, max_length = 256,
            pattern = "^[A-Za-z0-9._:-]*[A-Za-z0-9_:-][A-Za-z0-9._:-]*$", example = "8047955098"),
        DetailParams,
    ),
    responses((status = 200, description = "The conversation.", body = crate::gateway::OneBody)),
    security(("clientKey" = [])),
)]
pub(crate) async fn get_conversation(
    req: HttpRequest,
    path: web::Path<String>,
    caller: Caller,
    upstream: web::Data<Upstream>,
) -> Result<HttpResponse, Failure> {
    answer(&req, async {
        let params = params::detail_from_query(req.query_string())?;
        let conversation_id = path.into_inner();
        check_conversation_id(&conversation_id)?;
        let gateway = &caller.rt.gateway;
        let bot = resolve_bot(&req, &caller, &params.bot)?;
        let key = CacheKey::get(gateway.bot_key(bot)?, &conversation_id, params.include_raw);
        let request_id = request_id(&req);
        let ctx = call_ctx(&req, &caller, &upstream, &request_id);
        let fetch = || gateway.get(&ctx, bot, &conversation_id, params.include_raw);
        let result = caller
            .state
            .cache
            .get_or_fetch_shared(key, ctx.bypass, gateway.shared_cache(), &ctx.waits, fetch)
            .await;
        record(&req, |f| {
            f.waited = ctx.waits.total();
            f.upstream = ctx.stats;
        });
        Ok(success(&req, &caller.state, result?))
    })
    .await
}

/// What the request brings to its vendor calls: this worker's clients, its id,
/// whether it bypasses the cache, its call budget, and where its waits on
/// vendors are counted (on the server's clock).
fn call_ctx<'a>(
    req: &HttpRequest,
    caller: &Caller,
    upstream: &'a Upstream,
    request_id: &'a str,
) -> CallCtx<'a> {
    CallCtx {
        upstream,
        request_id,
        bypass: skips_cache(req),
        stats: UpstreamStats::with_budget(
            caller.rt.gateway.config.server.max_vendor_calls_per_request,
        ),
        waits: Waits::new(caller.state.clock().clone()),
    }
}

/// One bot a key may read.
#[derive(Serialize, ToSchema)]
#[schema(as = Bot)]
struct BotEntry<'a> {
    /// The bot's name, what `chatbotId` takes.
    #[schema(pattern = "^[A-Za-z0-9_.-]{1,128}$")]
    name: &'a str,
    /// The vendor kind; for a dual-read bot its backends' kinds, comma-separated,
    /// in config order.
    #[schema(pattern = "^(chatbase|chatzuri|chatling)(,(chatbase|chatzuri|chatling))*$")]
    provider: String,
}

/// The bots answer.
#[derive(Serialize, ToSchema)]
#[schema(as = BotList)]
struct BotList<'a> {
    /// The bots this key may read.
    data: Vec<BotEntry<'a>>,
}

/// `GET /api/v1/bots`: the bots this key may read.
#[utoipa::path(
    get,
    path = "/api/v1/bots",
    operation_id = "listBots",
    tag = "bots",
    summary = "The bots this key may read",
    description = "`HEAD` answers like `GET` without the body.",
    responses((status = 200, description = "The bots.", body = BotList)),
    security(("clientKey" = [])),
)]
pub(crate) async fn list_bots(caller: Caller) -> HttpResponse {
    let gateway = &caller.rt.gateway;
    let data: Vec<BotEntry<'_>> = gateway
        .config
        .bots
        .values()
        .filter(|b| caller.client.bots.allows(&b.name))
        .filter_map(|b| {
            Some(BotEntry {
                name: &b.name,
                provider: gateway.provider_label(b).ok()?,
            })
        })
        .collect();
    json(&BotList { data })
}

/// What `/healthz` says while the process serves.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
enum Health {
    /// Serving.
    Ok,
}

/// What `/readyz` says once the config is loaded and traffic is accepted.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
enum Readiness {
    /// Accepting traffic.
    Ready,
}

/// The `/healthz` answer.
#[derive(Serialize, ToSchema)]
struct HealthBody {
    /// Always `ok`.
    status: Health,
}

/// The `/readyz` answer.
#[derive(Serialize, ToSchema)]
struct ReadyBody {
    /// Always `ready`.
    status: Readiness,
}

/// `GET /healthz`: liveness, no key.
#[utoipa::path(
    get,
    path = "/healthz",
    operation_id = "healthz",
    tag = "operations",
    summary = "Liveness: the process serves",
    description = "No key. `HEAD` answers like `GET` without the body.",
    responses((status = 200, description = "Serving.", body = HealthBody)),
)]
pub(crate) async fn healthz() -> HttpResponse {
    json(&HealthBody { status: Health::Ok })
}

/// `GET /readyz`: readiness, no key.
#[utoipa::path(
    get,
    path = "/readyz",
    operation_id = "readyz",
    tag = "operations",
    summary = "Readiness: the config is loaded and traffic accepted",
    description = "No key. `HEAD` answers like `GET` without the body.",
    responses((status = 200, description = "Ready.", body = ReadyBody)),
)]
pub(crate) async fn readyz() -> HttpResponse {
    json(&ReadyBody {
        status: Readiness::Ready,
    })
}

/// `GET /openapi.json`: this API's OpenAPI document, no key.
#[utoipa::path(
    get,
    path = "/openapi.json",
    operation_id = "openapi",
    tag = "operations",
    summary = "This document",
    description = "The OpenAPI 3.1 document of this API, as committed in the repository's \
        `openapi.json`. No key. `HEAD` answers like `GET` without the body.",
    responses((status = 200, description = "The document.", body = Object)),
)]
pub(crate) async fn openapi() -> HttpResponse {
    HttpResponse::Ok()
        .content_type(JSON)
        .body(super::openapi::served())
}

/// `GET /metrics`: every metric, in the format the scraper asks for (OpenMetrics
/// text by default, the Prometheus text format for `Accept: text/plain`).
#[utoipa::path(
    get,
    path = "/metrics",
    operation_id = "metrics",
    tag = "operations",
    summary = "Prometheus metrics",
    description = "No key. OpenMetrics text by default (and when Prometheus asks for it), the \
        Prometheus text format 0.0.4 for `Accept: text/plain`. With `server.metrics_bind` set \
        it is served only there, and this address answers 404. `HEAD` answers like `GET` \
        without the body.",
    responses(
        (status = 200, description = "Every metric.", content(
            (String = "application/openmetrics-text"),
            (String = "text/plain"),
        )),
        (status = 404, description = "`not_found`: `/metrics` is served on `server.metrics_bind` instead.",
            body = super::error::ErrorBody),
    ),
)]
pub(crate) async fn metrics(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Failure> {
    if !state.metrics_on_main && req.app_data::<web::Data<Upstream>>().is_some() {
        // Served on `server.metrics_bind` instead.
        return Err(Failure::of(&req, ApiError::NoRoute(req.path().to_owned())));
    }
    state.metrics.cache_weight(state.cache_weight().await);
    state.runtime().gateway.report_circuits();
    let accept = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok());
    let format = Format::negotiate(accept);
    Ok(HttpResponse::Ok()
        .content_type(format.content_type())
        .insert_header((header::VARY, "Accept"))
        .body(state.metrics.render_as(format)))
}

/// Unknown paths answer in the same JSON shape as everything else.
pub async fn no_route(req: HttpRequest) -> Result<HttpResponse, Failure> {
    Err(Failure::of(&req, ApiError::NoRoute(req.path().to_owned())))
}

/// A known path asked with another method answers 405 in the same JSON shape,
/// with the `Allow` header RFC 9110 requires.
fn not_allowed(allow: &'static str) -> actix_web::Route {
    web::to(move |req: HttpRequest| async move {
        let method = req.method().to_string();
        Err::<HttpResponse, _>(Failure::of(
            &req,
            ApiError::MethodNotAllowed { method, allow },
        ))
    })
}

/// `Cache-Control: no-cache` asks for a fresh answer (which is still stored).
fn skips_cache(req: &HttpRequest) -> bool {
    req.headers()
        .get_all(header::CACHE_CONTROL)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|d| d.trim().eq_ignore_ascii_case("no-cache"))
}

/// The bot must exist (404) and be in the client's scope (403).
fn resolve_bot<'a>(
    req: &HttpRequest,
    caller: &'a Caller,
    name: &str,
) -> Result<&'a BotConfig, ApiError> {
    let config = &caller.rt.gateway.config;
    let bot = config
        .bots
        .get(name)
        .ok_or_else(|| ApiError::BotNotFound(chatgate_providers::wire::shorten(name, 64)))?;
    if !caller.client.bots.allows(&bot.name) {
        return Err(ApiError::Forbidden(bot.name.clone()));
    }
    let providers: Vec<&str> = bot.backends.iter().map(|b| b.provider.as_str()).collect();
    record(req, |f| {
        f.bot = Some(bot.name.clone());
        f.provider = Some(providers.join(","));
    });
    Ok(bot)
}

/// Conversation ids go into vendor paths: keep them to plain id characters.
fn check_conversation_id(id: &str) -> Result<(), ApiError> {
    let ok = (1..=256).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b))
        && !id.bytes().all(|b| b == b'.');
    if ok {
        Ok(())
    } else {
        Err(ApiError::InvalidRequest(
            "the conversation id must be 1-256 characters of letters, digits, `.`, `_`, `:` or `-`"
                .to_owned(),
        ))
    }
}

/// Reads a request body up to [`MAX_REQUEST_BODY`], refusing early when the
/// declared length is already too large, and giving up when the whole body has
/// not arrived `within` (`server.request_body_timeout_ms`): a client trickling
/// a body a byte at a time must not hold a worker's connection indefinitely.
async fn read_body(
    req: &HttpRequest,
    mut payload: web::Payload,
    within: std::time::Duration,
) -> Result<web::BytesMut, ApiError> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_REQUEST_BODY as u64) {
        return Err(ApiError::PayloadTooLarge(MAX_REQUEST_BODY));
    }
    let read = async {
        let mut body = web::BytesMut::new();
        while let Some(chunk) = payload.next().await {
            let chunk = chunk.map_err(|_| {
                ApiError::InvalidRequest("the request body could not be read".to_owned())
            })?;
            if body.len() + chunk.len() > MAX_REQUEST_BODY {
                return Err(ApiError::PayloadTooLarge(MAX_REQUEST_BODY));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    };
    tokio::time::timeout(within, read)
        .await
        .map_err(|_| ApiError::BodyTimeout(within))?
}

/// `X-Provider`: the vendor kinds that answered.
const X_PROVIDER: HeaderName = HeaderName::from_static("x-provider");
/// `X-Cache`: how the cache answered.
const X_CACHE: HeaderName = HeaderName::from_static("x-cache");

/// The answer of a list or detail request, cache hits included: header names
/// and fixed values are constants, not strings parsed again for every answer,
/// and appended (to a new response: the same as inserting, without looking
/// for a previous value to remove).
fn success(
    req: &HttpRequest,
    state: &AppState,
    (listed, status): (std::sync::Arc<Stored<Listed>>, CacheStatus),
) -> HttpResponse {
    state.metrics.cache(status.metric_label());
    record(req, |f| f.cache = Some(status.as_str()));
    HttpResponse::Ok()
        .append_header((header::CONTENT_TYPE, HeaderValue::from_static(JSON)))
        .append_header((X_PROVIDER, listed.provider.as_str()))
        .append_header((X_CACHE, HeaderValue::from_static(status.as_str())))
        .body(listed.body.clone())
}

fn json<T: Serialize>(value: &T) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(JSON)
        .body(serde_json::to_vec(value).unwrap_or_default())
}
