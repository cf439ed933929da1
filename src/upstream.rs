//! Executes adapters' [`UpstreamRequest`]s with awc: the provider's base URL and
//! bearer key, connect and total timeouts, and a bound on the body read.
//!
//! awc clients are not `Send`, so each actix worker owns an [`Upstream`] with one
//! client per provider (each provider has its own connect timeout). This is the
//! only place a provider key is exposed, to build the `Authorization` header.
//!
//! Memory: every vendor body is read into one buffer sized from its
//! `Content-Length`, after reserving its size from a process-wide
//! [`BodyBudget`], and the reservation is held until the adapter has parsed and
//! normalized it (the gateway drops it then).
//! However many callers and vendors send large answers at once, the bodies in
//! flight never exceed `server.max_inflight_body_bytes`.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use awc::error::SendRequestError;
use awc::http::header;
use awc::http::Method as HttpMethod;
use bytes::BytesMut;
use chatgate_providers::{Method, UpstreamRequest, UpstreamResponse};
use futures_util::StreamExt;
use secrecy::ExposeSecret;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::clock::Clock;
use crate::config::ProviderConfig;

/// A vendor call that failed before the vendor's answer could be read whole.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TransportError {
    /// The call took longer than the provider's timeout.
    #[error("the vendor did not answer within {0:?}")]
    Timeout(Duration),
    /// Connecting or sending failed.
    #[error("could not reach the vendor: {0}")]
    Connect(String),
    /// The body was larger than the provider's limit.
    #[error("the vendor's answer exceeded the {0}-byte limit")]
    TooLarge(usize),
    /// The body could not be read (connection dropped mid-body).
    #[error("the vendor's answer was cut off: {0}")]
    Body(String),
}

/// First allocation for a body of unknown length.
const UNKNOWN_LENGTH_START: usize = 16 * 1024;

/// The vendor body bytes the whole process may hold at once (every worker, every
/// provider), so memory stays within a documented budget however many large
/// answers arrive together. Counted in KiB so a 1 GiB reservation fits the
/// semaphore's `u32`.
#[derive(Clone)]
pub struct BodyBudget {
    permits: Arc<Semaphore>,
}

impl BodyBudget {
    /// A budget of `max_bytes` (at least one KiB).
    pub fn new(max_bytes: u64) -> Self {
        let kib = usize::try_from(max_bytes.div_ceil(1024))
            .unwrap_or(usize::MAX)
            .clamp(1, Semaphore::MAX_PERMITS);
        Self {
            permits: Arc::new(Semaphore::new(kib)),
        }
    }

    /// Reserves room for a body of `bytes`, waiting while other bodies hold it.
    async fn reserve(&self, bytes: usize) -> Result<BodyPermit, TransportError> {
        let kib = u32::try_from(bytes.div_ceil(1024).max(1)).unwrap_or(u32::MAX);
        self.permits
            .clone()
            .acquire_many_owned(kib)
            .await
            .map(|held| BodyPermit { _held: held })
            .map_err(|_| TransportError::Connect("the body budget is closed".to_owned()))
    }
}

/// A body's share of the [`BodyBudget`]; dropping it frees the room, so the
/// caller holds it until the adapter has parsed and normalized the body.
#[must_use = "the body's memory is accounted for only while this is held"]
#[derive(Debug)]
pub struct BodyPermit {
    _held: OwnedSemaphorePermit,
}

/// One worker's HTTP clients to the vendors.
pub struct Upstream {
    tls: Arc<rustls::ClientConfig>,
    clients: RefCell<HashMap<(String, Duration), awc::Client>>,
    budget: BodyBudget,
    /// Times each call and dates each answer (`received_at`).
    clock: Clock,
}

impl Upstream {
    /// A client set sharing one TLS configuration and the process's body budget,
    /// timing calls on `clock`.
    pub fn new(tls: Arc<rustls::ClientConfig>, budget: BodyBudget, clock: Clock) -> Self {
        Self {
            tls,
            clients: RefCell::new(HashMap::new()),
            budget,
            clock,
        }
    }

    fn client(&self, provider: &ProviderConfig) -> awc::Client {
        let key = (provider.name.clone(), provider.connect_timeout);
        self.clients
            .borrow_mut()
            .entry(key)
            .or_insert_with(|| {
                let connector = awc::Connector::new()
                    .rustls_0_23(self.tls.clone())
                    .timeout(provider.connect_timeout);
                awc::Client::builder()
                    .connector(connector)
                    .disable_redirects()
                    // The total timeout below covers the whole call, body included.
                    .disable_timeout()
                    .add_default_header((
                        header::USER_AGENT,
                        concat!("chatgate/", env!("CARGO_PKG_VERSION")),
                    ))
                    .finish()
            })
            .clone()
    }

    /// Sends one request and reads the whole answer, within the provider's
    /// timeout (waiting for body budget included). Returns how long it took, and
    /// the body's reservation, to hold until the body is parsed.
    pub async fn execute(
        &self,
        provider: &ProviderConfig,
        request: &UpstreamRequest,
        request_id: &str,
    ) -> Result<(UpstreamResponse, Duration, BodyPermit), TransportError> {
        let started = self.clock.now();
        let url = format!("{}{}", provider.base_url, request.path);
        let method = match request.method {
            Method::Get => HttpMethod::GET,
            Method::Post => HttpMethod::POST,
        };
        let mut req = self
            .client(provider)
            .request(method, url)
            .insert_header((
                header::AUTHORIZATION,
                format!("Bearer {}", provider.api_key.expose_secret()),
            ))
            .insert_header((header::ACCEPT, "application/json"))
            .insert_header(("X-Request-Id", request_id));
        if !request.query.is_empty() {
            req = req
                .query(&request.query)
                .map_err(|e| TransportError::Connect(format!("could not encode the query: {e}")))?;
        }
        let limit = provider.max_body_bytes;
        let call = async {
            let mut response = match &request.json_body {
                Some(body) => {
                    req.insert_header((header::CONTENT_TYPE, "application/json"))
                        .send_body(body.clone())
                        .await
                }
                None => req.send().await,
            }
            .map_err(|e| match e {
                SendRequestError::Timeout => TransportError::Timeout(provider.timeout),
                other => TransportError::Connect(other.to_string()),
            })?;
            let declared = response
                .headers()
                .get(header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            let declared_len = declared.map(|n| usize::try_from(n).unwrap_or(usize::MAX));
            if declared_len.is_some_and(|n| n > limit) {
                return Err(TransportError::TooLarge(limit));
            }
            let permit = self.budget.reserve(declared_len.unwrap_or(limit)).await?;
            let mut body =
                BytesMut::with_capacity(declared_len.unwrap_or(UNKNOWN_LENGTH_START.min(limit)));
            while let Some(chunk) = response.next().await {
                let chunk = chunk.map_err(|e| TransportError::Body(e.to_string()))?;
                if body.len() + chunk.len() > limit {
                    return Err(TransportError::TooLarge(limit));
                }
                body.extend_from_slice(&chunk);
            }
            let body = body.freeze();
            // A Content-Length body cut off mid-way must not pass as the answer,
            // even when the short part still parses.
            if declared.is_some_and(|n| n != body.len() as u64) {
                return Err(TransportError::Body(format!(
                    "{} of {} declared bytes arrived",
                    body.len(),
                    declared.unwrap_or_default()
                )));
            }
            let retry_after = response
                .headers()
                .get(header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            Ok((
                UpstreamResponse {
                    status: response.status().as_u16(),
                    retry_after,
                    body,
                    received_at: self.clock.utc(),
                },
                permit,
            ))
        };
        match tokio::time::timeout(provider.timeout, call).await {
            Ok(result) => {
                let latency = self.clock.now().saturating_duration_since(started);
                result.map(|(r, permit)| (r, latency, permit))
            }
            Err(_) => Err(TransportError::Timeout(provider.timeout)),
        }
    }
}

/// The TLS settings every vendor call uses: ring, the webpki root set, TLS 1.2+.
pub fn tls_config() -> Arc<rustls::ClientConfig> {
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("ring supports the default protocol versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    Arc::new(config)
}
