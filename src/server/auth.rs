//! Client authentication (SPEC §2.1): `Authorization: Bearer <key>`, compared in
//! constant time against every client's key hash, and the [`Caller`] extractor
//! that runs it with the client's quota before any API handler.

use std::sync::Arc;

use futures_util::future::LocalBoxFuture;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{web, FromRequest, HttpMessage, HttpRequest};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::error::{ApiError, Failure};
use super::request_log::record;
use super::{AppState, Runtime};
use crate::config::ClientConfig;
use crate::error::GatewayError;

/// Finds the client whose key the request presents.
///
/// The presented key is hashed and compared with *every* client's hash, without
/// an early exit, so timing reveals neither which client matched nor how much of
/// a key was right.
pub fn authenticate(
    req: &HttpRequest,
    clients: &[Arc<ClientConfig>],
) -> Result<Arc<ClientConfig>, ApiError> {
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer_token)
        .ok_or(ApiError::Unauthorized)?;
    let presented: [u8; 32] = Sha256::digest(token.as_bytes()).into();
    let mut found = None;
    for client in clients {
        if bool::from(client.key_sha256.ct_eq(&presented)) {
            found = Some(client);
        }
    }
    found.cloned().ok_or(ApiError::Unauthorized)
}

/// An authenticated caller within its quota: the first phases of every API
/// request, run as an extractor before the handler, so no handler can skip
/// them. It pins the runtime (config) the whole request runs on.
///
/// An IP over its failed-authentication allowance is refused before any key
/// comparison; only a presented-but-wrong key counts as a failure; the client's
/// quota counts cache hits too.
pub struct Caller {
    /// The shared state (cache, metrics).
    pub state: web::Data<AppState>,
    /// The configuration and runtime this request runs on, whatever reloads
    /// happen meanwhile.
    pub rt: Arc<Runtime>,
    /// Who is asking.
    pub client: Arc<ClientConfig>,
}

impl FromRequest for Caller {
    type Error = Failure;
    /// Boxed: with `[redis]` the quota is decided by a round trip to the
    /// shared store.
    type Future = LocalBoxFuture<'static, Result<Self, Failure>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move { admit(&req).await.map_err(|e| Failure::of(&req, e)) })
    }
}

async fn admit(req: &HttpRequest) -> Result<Caller, ApiError> {
    let state = req
        .app_data::<web::Data<AppState>>()
        .cloned()
        .ok_or_else(|| {
            tracing::error!("the app has no state");
            ApiError::Gateway(GatewayError::Internal)
        })?;
    let rt = state.runtime();
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
    if let Some(rate) = rt.client_limits.check_shared(&client.name).await {
        req.extensions_mut().insert(rate);
        if let Some(wait) = rate.retry_after {
            state.metrics.rate_limited("client");
            return Err(ApiError::RateLimited(wait));
        }
    }
    Ok(Caller { state, rt, client })
}

/// The token of a `Bearer` credential (scheme case-insensitive, RFC 7235).
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::bearer_token;

    #[test]
    fn bearer_scheme_is_case_insensitive_and_token_required() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("bearer  abc "), Some("abc"));
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token("Bearer "), None);
        assert_eq!(bearer_token("Bearer"), None);
    }
}
