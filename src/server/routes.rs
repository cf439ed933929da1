//! The HTTP endpoints (SPEC §2). Each API handler reads as its phases:
//! authenticate → parse → resolve bot → authorize → call the vendor → respond.
//! Errors are tied to the request id once, in [`fail`].

use actix_web::http::header;
use actix_web::{web, HttpMessage, HttpRequest, HttpResponse};
use futures_util::StreamExt;
use serde::Serialize;

use super::auth::authenticate;
use super::error::{ApiError, Failure};
use super::params::{self, ListParams};
use super::request_log::{record, request_id};
use super::{AppState, Runtime, JSON};
use crate::cache::{CacheKey, CacheStatus, Stored};
use crate::config::{BotConfig, ClientConfig};
use crate::gateway::Listed;
use crate::gateway::UpstreamStats;
use crate::upstream::Upstream;

/// Largest request body accepted by `POST /api/v1/get-conversations`.
pub const MAX_REQUEST_BODY: usize = 64 * 1024;

/// Registers every route on an app.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/api/v1/get-conversations")
            .route(web::get().to(list_get))
            .route(web::post().to(list_post))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/api/v1/conversations/{conversation_id}")
            .route(web::get().to(get_conversation))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/api/v1/bots")
            .route(web::get().to(list_bots))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/healthz")
            .route(web::get().to(healthz))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/readyz")
            .route(web::get().to(readyz))
            .default_service(web::to(method_not_allowed)),
    )
    .service(metrics_resource());
}

/// `/metrics`, on the main app or alone on `server.metrics_bind`.
pub fn metrics_resource() -> actix_web::Resource {
    web::resource("/metrics")
        .route(web::get().to(metrics))
        .default_service(web::to(method_not_allowed))
}

fn fail(req: &HttpRequest) -> impl Fn(ApiError) -> Failure + '_ {
    move |error| Failure {
        error,
        request_id: request_id(req),
    }
}

/// `GET /api/v1/get-conversations`.
async fn list_get(
    req: HttpRequest,
    state: web::Data<AppState>,
    upstream: web::Data<Upstream>,
) -> Result<HttpResponse, Failure> {
    let rt = state.runtime();
    let client = auth(&req, &state, &rt).map_err(fail(&req))?;
    let params = params::list_from_query(req.query_string()).map_err(fail(&req))?;
    list(&req, &state, &rt, &upstream, &client, params)
        .await
        .map_err(fail(&req))
}

/// `POST /api/v1/get-conversations` with a JSON body (the older Chatzuri dialect).
async fn list_post(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
    upstream: web::Data<Upstream>,
) -> Result<HttpResponse, Failure> {
    let rt = state.runtime();
    let client = auth(&req, &state, &rt).map_err(fail(&req))?;
    let within = rt.gateway.config.server.request_body_timeout;
    let body = read_body(&req, payload, within).await.map_err(fail(&req))?;
    let params = params::list_from_json(&body, req.query_string()).map_err(fail(&req))?;
    list(&req, &state, &rt, &upstream, &client, params)
        .await
        .map_err(fail(&req))
}

async fn list(
    req: &HttpRequest,
    state: &AppState,
    rt: &Runtime,
    upstream: &Upstream,
    client: &ClientConfig,
    params: ListParams,
) -> Result<HttpResponse, ApiError> {
    let bot = resolve_bot(req, rt, client, &params.bot)?;
    let key = CacheKey::list(bot, rt.gateway.backend_ids(bot)?, &params.query);
    let rid = request_id(req);
    let bypass = skips_cache(req);
    let stats = UpstreamStats::with_budget(rt.gateway.config.server.max_vendor_calls_per_request);
    let fetch = rt
        .gateway
        .list(upstream, bot, &params.query, &rid, bypass, &stats);
    let result = state.cache.get_or_fetch(key, bypass, fetch).await;
    record(req, |f| f.upstream = stats);
    result.map(|answer| success(req, state, answer))
}

/// `GET /api/v1/conversations/{id}?chatbotId=<bot>`.
async fn get_conversation(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
    upstream: web::Data<Upstream>,
) -> Result<HttpResponse, Failure> {
    let rt = state.runtime();
    let client = auth(&req, &state, &rt).map_err(fail(&req))?;
    let params = params::detail_from_query(req.query_string()).map_err(fail(&req))?;
    let conversation_id = path.into_inner();
    check_conversation_id(&conversation_id).map_err(fail(&req))?;
    let bot = resolve_bot(&req, &rt, &client, &params.bot).map_err(fail(&req))?;
    let backends = rt.gateway.backend_ids(bot).map_err(fail(&req))?;
    let key = CacheKey::get(bot, backends, &conversation_id, params.include_raw);
    let rid = request_id(&req);
    let stats = UpstreamStats::with_budget(rt.gateway.config.server.max_vendor_calls_per_request);
    let fetch = rt.gateway.get(
        &upstream,
        bot,
        &conversation_id,
        params.include_raw,
        &rid,
        &stats,
    );
    let result = state
        .cache
        .get_or_fetch(key, skips_cache(&req), fetch)
        .await;
    record(&req, |f| f.upstream = stats);
    result
        .map(|answer| success(&req, &state, answer))
        .map_err(fail(&req))
}

#[derive(Serialize)]
struct BotEntry<'a> {
    name: &'a str,
    /// The vendor kind; for a dual-read bot its backends' kinds, comma-separated.
    provider: String,
}

/// `GET /api/v1/bots`: the bots this key may read.
async fn list_bots(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, Failure> {
    let rt = state.runtime();
    let client = auth(&req, &state, &rt).map_err(fail(&req))?;
    let config = &rt.gateway.config;
    let data: Vec<BotEntry<'_>> = config
        .bots
        .values()
        .filter(|b| client.bots.allows(&b.name))
        .filter_map(|b| {
            Some(BotEntry {
                name: &b.name,
                provider: rt.gateway.provider_label(b).ok()?,
            })
        })
        .collect();
    Ok(json(&serde_json::json!({ "data": data })))
}

async fn healthz() -> HttpResponse {
    json(&serde_json::json!({ "status": "ok" }))
}

async fn readyz() -> HttpResponse {
    json(&serde_json::json!({ "status": "ready" }))
}

/// `GET /metrics`: Prometheus metrics (OpenMetrics text).
async fn metrics(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, Failure> {
    if !state.metrics_on_main && req.app_data::<web::Data<Upstream>>().is_some() {
        // Served on `server.metrics_bind` instead.
        return Err(fail(&req)(ApiError::NoRoute(req.path().to_owned())));
    }
    state.metrics.cache_weight(state.cache_weight().await);
    state.runtime().gateway.report_circuits();
    Ok(HttpResponse::Ok()
        .content_type(crate::metrics::CONTENT_TYPE)
        .body(state.metrics.render()))
}

/// Unknown paths answer in the same JSON shape as everything else.
pub async fn no_route(req: HttpRequest) -> Result<HttpResponse, Failure> {
    Err(fail(&req)(ApiError::NoRoute(req.path().to_owned())))
}

/// A known path asked with another method answers in the same JSON shape.
pub async fn method_not_allowed(req: HttpRequest) -> Result<HttpResponse, Failure> {
    Err(fail(&req)(ApiError::MethodNotAllowed(
        req.method().to_string(),
    )))
}

/// Authenticates and counts the request against the client's quota (cache hits
/// included). An IP over its failed-authentication allowance is refused before any
/// key comparison; only a presented-but-wrong key counts as a failure.
fn auth(
    req: &HttpRequest,
    state: &AppState,
    rt: &Runtime,
) -> Result<std::sync::Arc<ClientConfig>, ApiError> {
    let ip = req.peer_addr().map(|a| a.ip());
    if let Some(wait) = ip.and_then(|ip| state.auth_failures.blocked(ip)) {
        state.metrics.rate_limited("auth_ip");
        return Err(ApiError::RateLimited(wait));
    }
    let client = match authenticate(req, &rt.gateway.config.clients) {
        Ok(client) => client,
        Err(e) => {
            if let (Some(ip), true) = (ip, req.headers().contains_key(header::AUTHORIZATION)) {
                state.auth_failures.record_failure(ip);
            }
            return Err(e);
        }
    };
    record(req, |f| f.client = Some(client.name.clone()));
    if let Some(rate) = rt.client_limits.check(&client.name) {
        req.extensions_mut().insert(rate);
        if let Some(wait) = rate.retry_after {
            state.metrics.rate_limited("client");
            return Err(ApiError::RateLimited(wait));
        }
    }
    Ok(client)
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
    rt: &'a Runtime,
    client: &ClientConfig,
    name: &str,
) -> Result<&'a BotConfig, ApiError> {
    let config = &rt.gateway.config;
    let bot = config
        .bots
        .get(name)
        .ok_or_else(|| ApiError::BotNotFound(chatgate_providers::wire::shorten(name, 64)))?;
    if !client.bots.allows(&bot.name) {
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

fn success(
    req: &HttpRequest,
    state: &AppState,
    (listed, status): (std::sync::Arc<Stored<Listed>>, CacheStatus),
) -> HttpResponse {
    // A merged page assembled partly from stale backend data says so.
    let status = if listed.stale {
        CacheStatus::Stale
    } else {
        status
    };
    state.metrics.cache(status.metric_label());
    record(req, |f| f.cache = Some(status.as_str()));
    HttpResponse::Ok()
        .content_type(JSON)
        .insert_header(("X-Provider", listed.provider.as_str()))
        .insert_header(("X-Cache", status.as_str()))
        .body(listed.body.clone())
}

fn json<T: Serialize>(value: &T) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(JSON)
        .body(serde_json::to_vec(value).unwrap_or_default())
}
