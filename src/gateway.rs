//! The gateway's runtime: a validated [`Config`] plus, per provider, its adapter
//! and what has been learned about the vendor (Chatling's page size). It drives
//! adapter operations through [`Upstream`] and serializes results once.

use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use chatgate_providers::{
    adapter, Adapter, Conversation, ListQuery, Operation, ProviderKind, Step, Target,
};
use serde::Serialize;

use crate::config::{BotConfig, Config, ProviderConfig};
use crate::limits::ProviderGuard;
use crate::server::error::{ApiError, UpstreamFailure};
use crate::upstream::Upstream;

/// One provider at run time.
pub struct ProviderRuntime {
    /// Its settings.
    pub config: Arc<ProviderConfig>,
    /// Its adapter.
    pub adapter: Box<dyn Adapter>,
    /// Holds calls to the vendor's quota across every caller.
    guard: ProviderGuard,
    /// The vendor's own page size, once seen (0 = not yet), so later requests can
    /// jump straight to the right vendor page.
    vendor_page_size: AtomicU32,
}

impl ProviderRuntime {
    fn new(config: Arc<ProviderConfig>) -> Self {
        Self {
            adapter: adapter(config.kind, &config.adapter),
            guard: ProviderGuard::new(config.max_requests_per_second),
            config,
            vendor_page_size: AtomicU32::new(0),
        }
    }

    /// The kind of vendor.
    pub fn kind(&self) -> ProviderKind {
        self.config.kind
    }
}

/// The configuration and the per-provider runtime built from it.
pub struct Gateway {
    /// The configuration.
    pub config: Arc<Config>,
    providers: BTreeMap<String, Arc<ProviderRuntime>>,
}

/// How the vendor calls of one API request went, for the log line.
#[derive(Debug, Default, Clone, Copy)]
pub struct UpstreamStats {
    /// Vendor calls made.
    pub calls: u32,
    /// Time spent in them.
    pub latency: Duration,
}

/// A successful list answer, already serialized.
pub struct Listed {
    /// The response body.
    pub body: Bytes,
    /// Which vendor answered.
    pub provider: ProviderKind,
}

#[derive(Serialize)]
struct ListBody<'a> {
    data: &'a [Conversation],
    page: u32,
    size: u32,
    next_page: Option<u32>,
}

#[derive(Serialize)]
struct OneBody<'a> {
    data: &'a Conversation,
}

impl Gateway {
    /// Builds the runtime for a validated config.
    pub fn new(config: Config) -> Self {
        let providers = config
            .providers
            .iter()
            .map(|(name, pc)| (name.clone(), Arc::new(ProviderRuntime::new(pc.clone()))))
            .collect();
        Self {
            config: Arc::new(config),
            providers,
        }
    }

    /// The runtime of a bot's provider. Validation guarantees it exists.
    pub fn provider_for(&self, bot: &BotConfig) -> Result<&Arc<ProviderRuntime>, ApiError> {
        self.providers.get(&bot.provider).ok_or_else(|| {
            tracing::error!(bot = %bot.name, provider = %bot.provider, "bot names a provider the runtime lacks");
            ApiError::Internal
        })
    }

    /// Lists one page of a bot's conversations.
    pub async fn list(
        &self,
        upstream: &Upstream,
        bot: &BotConfig,
        query: &ListQuery,
        request_id: &str,
        stats: &mut UpstreamStats,
    ) -> Result<Listed, ApiError> {
        let provider = self.provider_for(bot)?;
        let hint = NonZeroU32::new(provider.vendor_page_size.load(Ordering::Relaxed));
        let target = Target {
            bot: &bot.name,
            chatbot_id: &bot.chatbot_id,
        };
        let op = provider.adapter.list(target, query, hint);
        let result = self
            .drive(upstream, provider, op, request_id, stats)
            .await?;
        if let Some(size) = result.vendor_page_size {
            provider
                .vendor_page_size
                .store(size.get(), Ordering::Relaxed);
        }
        let body = ListBody {
            data: &result.page.conversations,
            page: query.page.get(),
            size: query.size.get(),
            next_page: result.page.has_more.then(|| query.page.get() + 1),
        };
        Ok(Listed {
            body: to_bytes(&body)?,
            provider: provider.kind(),
        })
    }

    /// Reads one conversation with all its messages.
    pub async fn get(
        &self,
        upstream: &Upstream,
        bot: &BotConfig,
        conversation_id: &str,
        include_raw: bool,
        request_id: &str,
        stats: &mut UpstreamStats,
    ) -> Result<Listed, ApiError> {
        let provider = self.provider_for(bot)?;
        let target = Target {
            bot: &bot.name,
            chatbot_id: &bot.chatbot_id,
        };
        let op = provider
            .adapter
            .get(target, conversation_id, include_raw)
            .map_err(|e| ApiError::upstream(provider.kind(), e))?;
        let conversation = self
            .drive(upstream, provider, op, request_id, stats)
            .await?;
        Ok(Listed {
            body: to_bytes(&OneBody {
                data: &conversation,
            })?,
            provider: provider.kind(),
        })
    }

    /// Runs an operation to completion, within the request's overall deadline.
    async fn drive<T>(
        &self,
        upstream: &Upstream,
        provider: &ProviderRuntime,
        mut op: Box<dyn Operation<T>>,
        request_id: &str,
        stats: &mut UpstreamStats,
    ) -> Result<T, ApiError> {
        let kind = provider.kind();
        let deadline = self.config.server.request_timeout;
        let started = Instant::now();
        let run = async {
            let mut step = op.start().map_err(|e| ApiError::upstream(kind, e))?;
            loop {
                match step {
                    Step::Done(value) => return Ok(value),
                    Step::Send(request) => {
                        // Wait for the vendor quota, but never past this call's own
                        // timeout or the request's deadline.
                        let budget = deadline
                            .saturating_sub(started.elapsed())
                            .min(provider.config.timeout);
                        if let Err(wait) = provider.guard.acquire(budget).await {
                            tracing::warn!(provider = %provider.config.name, wait_ms = wait.as_millis() as u64, "vendor quota guard full");
                            return Err(ApiError::upstream(kind, UpstreamFailure::Throttled(wait)));
                        }
                        stats.calls += 1;
                        let outcome = upstream
                            .execute(&provider.config, &request, request_id)
                            .await;
                        let response = match outcome {
                            Ok((response, latency)) => {
                                stats.latency += latency;
                                tracing::debug!(
                                    provider = %provider.config.name, path = %request.path,
                                    status = response.status, latency_ms = latency.as_millis() as u64,
                                    "vendor call"
                                );
                                response
                            }
                            Err(e) => {
                                tracing::warn!(provider = %provider.config.name, path = %request.path, error = %e, "vendor call failed");
                                return Err(ApiError::upstream(kind, e));
                            }
                        };
                        step = op.on_response(response).map_err(|e| {
                            tracing::warn!(provider = %provider.config.name, error = %e, "vendor answer rejected");
                            ApiError::upstream(kind, e)
                        })?;
                    }
                }
            }
        };
        match tokio::time::timeout(deadline.saturating_sub(started.elapsed()), run).await {
            Ok(result) => result,
            Err(_) => Err(ApiError::upstream(
                kind,
                UpstreamFailure::Deadline(deadline),
            )),
        }
    }
}

fn to_bytes<T: Serialize>(value: &T) -> Result<Bytes, ApiError> {
    serde_json::to_vec(value).map(Bytes::from).map_err(|e| {
        tracing::error!(error = %e, "could not serialize a response");
        ApiError::Internal
    })
}
