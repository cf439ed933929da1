//! Executes adapters' [`UpstreamRequest`]s with awc: the provider's base URL and
//! bearer key, connect and total timeouts, and a bound on the body read.
//!
//! awc clients are not `Send`, so each actix worker owns an [`Upstream`] with one
//! client per provider (each provider has its own connect timeout). This is the
//! only place a provider key is exposed, to build the `Authorization` header.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use awc::error::{PayloadError, SendRequestError};
use awc::http::header;
use awc::http::Method as HttpMethod;
use bytes::Bytes;
use chatgate_providers::{Method, UpstreamRequest, UpstreamResponse};
use chrono::Utc;
use secrecy::ExposeSecret;

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

/// One worker's HTTP clients to the vendors.
pub struct Upstream {
    tls: Arc<rustls::ClientConfig>,
    clients: RefCell<HashMap<(String, Duration), awc::Client>>,
}

impl Upstream {
    /// A client set sharing one TLS configuration.
    pub fn new(tls: Arc<rustls::ClientConfig>) -> Self {
        Self {
            tls,
            clients: RefCell::new(HashMap::new()),
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
    /// timeout. Returns how long it took as well.
    pub async fn execute(
        &self,
        provider: &ProviderConfig,
        request: &UpstreamRequest,
        request_id: &str,
    ) -> Result<(UpstreamResponse, Duration), TransportError> {
        let started = Instant::now();
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
            let body: Bytes = response.body().limit(limit).await.map_err(|e| match e {
                PayloadError::Overflow => TransportError::TooLarge(limit),
                other => TransportError::Body(other.to_string()),
            })?;
            // awc hands back a Content-Length body cut off mid-way as if it were
            // whole; a short body that still parses must not pass as the answer.
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
            Ok(UpstreamResponse {
                status: response.status().as_u16(),
                retry_after,
                body,
                received_at: Utc::now(),
            })
        };
        match tokio::time::timeout(provider.timeout, call).await {
            Ok(result) => result.map(|r| (r, started.elapsed())),
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
