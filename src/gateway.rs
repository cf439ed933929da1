//! The gateway's runtime: a validated [`Config`] plus, per provider, its adapter
//! and its live state (quota guard, 429 pause, circuit breaker, learned page
//! size). It drives adapter operations through [`Upstream`] and serializes
//! results once.
//!
//! Every vendor call passes the same phases, in this order:
//! 1. **pause** — after a vendor 429 no call reaches that vendor until its
//!    `Retry-After` (Chatling: the next full minute). A request that can afford it
//!    waits the rest of the window out once; others get 429 at once.
//! 2. **quota guard** — `max_requests_per_second` across every caller.
//! 3. **circuit breaker** — refused while open (503), one probe when half-open.
//! 4. **the call**, then the adapter's verdict on the answer, which is the
//!    breaker's outcome: 5xx, timeouts, connection errors and invalid bodies are
//!    failures; any other answer, 4xx included, is the vendor working; a 429 is
//!    neither (the pause handles it).
//! 5. **retry** — idempotent reads only, on connection errors, 429, 502, 503, 504,
//!    with exponential backoff and full jitter, within the request's deadline. A
//!    timed-out attempt is not retried: it already spent the caller's budget.

use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use chatgate_providers::{
    adapter, Adapter, Conversation, ListQuery, Operation, ProviderError, ProviderKind, Step,
    Target, UpstreamRequest,
};
use secrecy::ExposeSecret;
use serde::Serialize;
use tracing::Instrument;

use crate::circuit::CircuitBreaker;
use crate::config::{BotConfig, Config, ProviderConfig};
use crate::limits::ProviderGuard;
use crate::metrics::{Metrics, UpstreamOutcome};
use crate::server::error::{ApiError, UpstreamFailure};
use crate::upstream::{TransportError, Upstream};

/// First backoff step; each retry doubles it, up to [`BACKOFF_CAP`].
const BACKOFF_BASE: Duration = Duration::from_millis(100);
/// Largest backoff step.
const BACKOFF_CAP: Duration = Duration::from_secs(2);
/// How long a vendor 429 without `Retry-After` pauses a vendor whose docs name no
/// window (Chatling's adapter supplies its own).
const DEFAULT_PAUSE: Duration = Duration::from_secs(1);

/// One provider at run time.
pub struct ProviderRuntime {
    /// Its settings.
    pub config: Arc<ProviderConfig>,
    /// Its adapter.
    pub adapter: Box<dyn Adapter>,
    /// Holds calls to the vendor's quota across every caller.
    guard: ProviderGuard,
    /// Stops calls to a vendor that keeps failing.
    breaker: CircuitBreaker,
    /// Until when the vendor asked us to stay away (its 429).
    paused_until: Mutex<Option<Instant>>,
    /// The vendor's own page size, once seen (0 = not yet), so later requests can
    /// jump straight to the right vendor page.
    vendor_page_size: AtomicU32,
}

impl ProviderRuntime {
    fn new(config: Arc<ProviderConfig>) -> Self {
        Self {
            adapter: adapter(config.kind, &config.adapter),
            guard: ProviderGuard::new(config.max_requests_per_second),
            breaker: CircuitBreaker::new(config.circuit_failure_threshold, config.circuit_cooldown),
            paused_until: Mutex::new(None),
            vendor_page_size: AtomicU32::new(0),
            config,
        }
    }

    /// The kind of vendor.
    pub fn kind(&self) -> ProviderKind {
        self.config.kind
    }

    /// How much of a 429 pause is left.
    fn pause_left(&self, now: Instant) -> Option<Duration> {
        let until = (*self.paused_until.lock().unwrap_or_else(|p| p.into_inner()))?;
        until.checked_duration_since(now).filter(|d| !d.is_zero())
    }

    /// Extends the pause to at least `now + wait`.
    fn pause(&self, now: Instant, wait: Duration) {
        let mut until = self.paused_until.lock().unwrap_or_else(|p| p.into_inner());
        let new = now + wait;
        if until.is_none_or(|u| u < new) {
            *until = Some(new);
        }
    }

    fn report_circuit(&self, metrics: &Metrics) {
        let state = self.breaker.state(Instant::now());
        metrics.circuit_state(&self.config.name, state.as_gauge());
    }
}

/// Whether two provider configs describe the same live vendor account, so a
/// reload may keep its runtime state (quota, breaker, pause, page size).
fn same_account(a: &ProviderConfig, b: &ProviderConfig) -> bool {
    a.kind == b.kind
        && a.base_url == b.base_url
        && a.api_key.expose_secret() == b.api_key.expose_secret()
        && a.timeout == b.timeout
        && a.connect_timeout == b.connect_timeout
        && a.max_body_bytes == b.max_body_bytes
        && a.adapter == b.adapter
        && a.max_requests_per_second == b.max_requests_per_second
        && a.max_retries == b.max_retries
        && a.max_retry_wait == b.max_retry_wait
        && a.circuit_failure_threshold == b.circuit_failure_threshold
        && a.circuit_cooldown == b.circuit_cooldown
}

/// The configuration and the per-provider runtime built from it.
pub struct Gateway {
    /// The configuration.
    pub config: Arc<Config>,
    providers: BTreeMap<String, Arc<ProviderRuntime>>,
    metrics: Arc<Metrics>,
}

/// How the vendor calls of one API request went, for the log line.
#[derive(Debug, Default, Clone, Copy)]
pub struct UpstreamStats {
    /// Vendor calls made, retries included.
    pub calls: u32,
    /// Time spent in them.
    pub latency: Duration,
}

/// A successful answer, already serialized.
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
    /// Builds the runtime for a validated config. With `previous` (a reload),
    /// providers whose settings did not change keep their live state.
    pub fn new(config: Config, metrics: Arc<Metrics>, previous: Option<&Gateway>) -> Self {
        let providers = config
            .providers
            .iter()
            .map(|(name, pc)| {
                let kept = previous
                    .and_then(|g| g.providers.get(name))
                    .filter(|rt| same_account(&rt.config, pc))
                    .cloned();
                let runtime = kept.unwrap_or_else(|| Arc::new(ProviderRuntime::new(pc.clone())));
                runtime.report_circuit(&metrics);
                (name.clone(), runtime)
            })
            .collect();
        Self {
            config: Arc::new(config),
            providers,
            metrics,
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
        let budget = self.config.server.request_timeout;
        let deadline = Instant::now() + budget;
        let span = tracing::info_span!("upstream", request_id, provider = %provider.config.name);
        let run = async {
            let mut step = op.start().map_err(|e| ApiError::upstream(kind, e))?;
            loop {
                match step {
                    Step::Done(value) => return Ok(value),
                    Step::Send(request) => {
                        step = self
                            .call(
                                upstream,
                                provider,
                                op.as_mut(),
                                &request,
                                request_id,
                                deadline,
                                stats,
                            )
                            .await?;
                    }
                }
            }
        };
        match tokio::time::timeout(budget, run.instrument(span)).await {
            Ok(result) => result,
            Err(_) => Err(ApiError::upstream(kind, UpstreamFailure::Deadline(budget))),
        }
    }

    /// One step of an operation: the vendor call with its phases and retries,
    /// ending with the adapter's next step or the final error.
    #[allow(clippy::too_many_arguments)]
    async fn call<T>(
        &self,
        upstream: &Upstream,
        provider: &ProviderRuntime,
        op: &mut dyn Operation<T>,
        request: &UpstreamRequest,
        request_id: &str,
        deadline: Instant,
        stats: &mut UpstreamStats,
    ) -> Result<Step<T>, ApiError> {
        let kind = provider.kind();
        let name = provider.config.name.as_str();
        let fail = |f: UpstreamFailure| ApiError::upstream(kind, f);
        let mut retries = 0;
        let mut waited_out_pause = false;
        loop {
            // 1. pause
            if let Some(left) = provider.pause_left(Instant::now()) {
                let affordable =
                    left <= provider.config.max_retry_wait && Instant::now() + left < deadline;
                if waited_out_pause || !affordable {
                    self.metrics.rate_limited("upstream");
                    return Err(fail(UpstreamFailure::Paused(left)));
                }
                waited_out_pause = true;
                tracing::info!(
                    wait_ms = left.as_millis() as u64,
                    "waiting out the vendor's rate-limit window"
                );
                tokio::time::sleep(left).await;
            }
            // 2. quota guard, never past this call's timeout or the deadline
            let room = deadline
                .saturating_duration_since(Instant::now())
                .min(provider.config.timeout);
            if let Err(wait) = provider.guard.acquire(room).await {
                self.metrics.rate_limited("provider");
                tracing::warn!(wait_ms = wait.as_millis() as u64, "vendor quota guard full");
                return Err(fail(UpstreamFailure::Throttled(wait)));
            }
            // 3. circuit breaker
            let permit = match provider.breaker.acquire(Instant::now()) {
                Ok(permit) => permit,
                Err(open) => {
                    provider.report_circuit(&self.metrics);
                    return Err(fail(UpstreamFailure::CircuitOpen(open.retry_in)));
                }
            };
            // 4. the call
            stats.calls += 1;
            let outcome = upstream
                .execute(&provider.config, request, request_id)
                .await;
            let backoff = full_jitter(retries);
            let can_retry = |pause: Duration| {
                retries < provider.config.max_retries && Instant::now() + pause < deadline
            };
            match outcome {
                Err(e) => {
                    let (label, latency) = match &e {
                        TransportError::Timeout(t) => (UpstreamOutcome::Timeout, *t),
                        _ => (UpstreamOutcome::Error, Duration::ZERO),
                    };
                    self.metrics.upstream(name, label, latency);
                    permit.failure(Instant::now());
                    provider.report_circuit(&self.metrics);
                    tracing::warn!(path = %request.path, attempt = retries + 1, error = %e, "vendor call failed");
                    if matches!(e, TransportError::Connect(_)) && can_retry(backoff) {
                        retries += 1;
                        tokio::time::sleep(backoff).await;
                        continue;
                    }
                    return Err(fail(e.into()));
                }
                Ok((response, latency)) => {
                    stats.latency += latency;
                    let status = response.status;
                    self.metrics
                        .upstream(name, UpstreamOutcome::Status(status), latency);
                    tracing::debug!(
                        path = %request.path, status, attempt = retries + 1,
                        latency_ms = latency.as_secs_f64() * 1000.0, "vendor call"
                    );
                    // 5. the adapter's verdict decides the breaker and the retry
                    match op.on_response(response) {
                        Ok(next) => {
                            permit.success();
                            provider.report_circuit(&self.metrics);
                            return Ok(next);
                        }
                        Err(e) => {
                            tracing::warn!(path = %request.path, status, error = %e, "vendor answer refused");
                            match &e {
                                ProviderError::RateLimited { retry_after } => {
                                    permit.neutral();
                                    let wait = retry_after.unwrap_or(DEFAULT_PAUSE);
                                    provider.pause(Instant::now(), wait);
                                    // The next pass waits the window out once, if it can.
                                    if retries < provider.config.max_retries {
                                        retries += 1;
                                        continue;
                                    }
                                    self.metrics.rate_limited("upstream");
                                }
                                ProviderError::Upstream { .. }
                                | ProviderError::InvalidBody { .. } => {
                                    permit.failure(Instant::now());
                                    if e.is_retryable() && can_retry(backoff) {
                                        provider.report_circuit(&self.metrics);
                                        retries += 1;
                                        tokio::time::sleep(backoff).await;
                                        continue;
                                    }
                                }
                                // The vendor answered; it is working.
                                _ => permit.success(),
                            }
                            provider.report_circuit(&self.metrics);
                            return Err(fail(e.into()));
                        }
                    }
                }
            }
        }
    }
}

/// Exponential backoff with full jitter: uniform in `[0, min(cap, base·2^n))`, so
/// clients retrying together spread out instead of hitting the vendor in waves.
fn full_jitter(retry: u32) -> Duration {
    let ceiling = BACKOFF_BASE
        .saturating_mul(1u32 << retry.min(16))
        .min(BACKOFF_CAP);
    ceiling.mul_f64(rand::random::<f64>())
}

fn to_bytes<T: Serialize>(value: &T) -> Result<Bytes, ApiError> {
    serde_json::to_vec(value).map(Bytes::from).map_err(|e| {
        tracing::error!(error = %e, "could not serialize a response");
        ApiError::Internal
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_jittered_below_a_doubling_capped_ceiling() {
        for retry in 0..20 {
            let ceiling = (BACKOFF_BASE * 2u32.pow(retry.min(16))).min(BACKOFF_CAP);
            for _ in 0..50 {
                assert!(full_jitter(retry) < ceiling.max(Duration::from_nanos(1)));
            }
        }
        let spread: std::collections::HashSet<_> = (0..20).map(|_| full_jitter(3)).collect();
        assert!(spread.len() > 10, "jittered, not constant");
    }
}
