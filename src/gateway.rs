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

use std::cell::Cell;
use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use chatgate_providers::{
    adapter, Adapter, Conversation, ListQuery, Operation, Page, ProviderError, ProviderKind, Step,
    Target, UpstreamRequest,
};
use secrecy::ExposeSecret;
use serde::Serialize;
use tracing::Instrument;

use crate::cache::{BackendId, CacheStatus};
use crate::circuit::CircuitBreaker;
use crate::clock::Clock;
use crate::config::{Backend, BotConfig, Config, ProviderConfig};
use crate::limits::ProviderGuard;
use crate::merge::{self, ChunkCache};
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
    fn new(config: Arc<ProviderConfig>, clock: &Clock) -> Self {
        Self {
            adapter: adapter(config.kind, &config.adapter),
            guard: ProviderGuard::new(config.max_requests_per_second, clock.clone()),
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

    /// Extends the pause to at least `now + wait`, never past `max_pause`.
    fn pause(&self, now: Instant, wait: Duration) {
        let Some(new) = now.checked_add(wait.min(self.config.max_pause)) else {
            return;
        };
        let mut until = self.paused_until.lock().unwrap_or_else(|p| p.into_inner());
        if until.is_none_or(|u| u < new) {
            *until = Some(new);
        }
    }

    /// Cuts a pause left from before a reload down to `max_pause` from `now`, so a
    /// SIGHUP always bounds it by the bound in force.
    fn recap_pause(&self, now: Instant) {
        let mut until = self.paused_until.lock().unwrap_or_else(|p| p.into_inner());
        if let (Some(u), Some(cap)) = (*until, now.checked_add(self.config.max_pause)) {
            *until = Some(u.min(cap));
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
        && a.max_pause == b.max_pause
        && a.circuit_failure_threshold == b.circuit_failure_threshold
        && a.circuit_cooldown == b.circuit_cooldown
}

/// The configuration and the per-provider runtime built from it.
pub struct Gateway {
    /// The configuration.
    pub config: Arc<Config>,
    providers: BTreeMap<String, Arc<ProviderRuntime>>,
    metrics: Arc<Metrics>,
    chunks: Arc<ChunkCache>,
}

/// How the vendor calls of one API request went, for the log line, and how many
/// it may still make. Shared by the concurrent chunk reads of a merged bot,
/// hence the cells.
#[derive(Debug, Default, Clone)]
pub struct UpstreamStats {
    calls: Cell<u32>,
    latency: Cell<Duration>,
    /// The most calls this request may make (`None`: unbounded, for export,
    /// which streams and checkpoints instead of re-walking).
    budget: Option<NonZeroU32>,
}

impl UpstreamStats {
    /// Stats for an API request that may make at most `max_calls` vendor calls
    /// (`server.max_vendor_calls_per_request`): however deep the page and
    /// however the cache is bypassed, one request costs a bounded share of the
    /// vendor's quota.
    pub fn with_budget(max_calls: NonZeroU32) -> Self {
        Self {
            budget: Some(max_calls),
            ..Self::default()
        }
    }

    /// Calls this request may still make (`None`: unbounded).
    pub fn calls_left(&self) -> Option<u32> {
        self.budget
            .map(|b| b.get().saturating_sub(self.calls.get()))
    }

    /// The budget, when there is one.
    pub fn budget(&self) -> Option<NonZeroU32> {
        self.budget
    }
    /// Vendor calls made, retries included.
    pub fn calls(&self) -> u32 {
        self.calls.get()
    }

    /// Time spent in them.
    pub fn latency(&self) -> Duration {
        self.latency.get()
    }

    /// Counts one call, or refuses it when the budget is spent.
    fn call(&self) -> Result<(), UpstreamFailure> {
        if let Some(budget) = self.budget {
            if self.calls.get() >= budget.get() {
                return Err(UpstreamFailure::CallBudget(budget.get()));
            }
        }
        self.calls.set(self.calls.get().saturating_add(1));
        Ok(())
    }

    fn spent(&self, d: Duration) {
        self.latency.set(self.latency.get().saturating_add(d));
    }
}

/// A successful answer, already serialized.
pub struct Listed {
    /// The response body.
    pub body: Bytes,
    /// `X-Provider`: the vendor kind, or a merged bot's kinds in config order.
    pub provider: String,
    /// Whether part of it came from stale cached data (a merged bot whose
    /// backend failed), so the answer says `X-Cache: STALE`.
    pub stale: bool,
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
    /// Builds the runtime for a validated config; the quota guards count on
    /// `clock`. With `previous` (a reload), providers whose settings did not
    /// change keep their live state.
    pub fn new(
        config: Config,
        metrics: Arc<Metrics>,
        chunks: Arc<ChunkCache>,
        previous: Option<&Gateway>,
        clock: &Clock,
    ) -> Self {
        let providers = config
            .providers
            .iter()
            .map(|(name, pc)| {
                let kept = previous
                    .and_then(|g| g.providers.get(name))
                    .filter(|rt| same_account(&rt.config, pc))
                    .cloned();
                if let Some(rt) = &kept {
                    rt.recap_pause(Instant::now());
                }
                let runtime =
                    kept.unwrap_or_else(|| Arc::new(ProviderRuntime::new(pc.clone(), clock)));
                runtime.report_circuit(&metrics);
                (name.clone(), runtime)
            })
            .collect();
        Self {
            config: Arc::new(config),
            providers,
            metrics,
            chunks,
        }
    }

    /// Sets every provider's circuit gauge to its state now (a cooldown passing
    /// changes the state without any call), for a metrics scrape.
    pub fn report_circuits(&self) {
        for runtime in self.providers.values() {
            runtime.report_circuit(&self.metrics);
        }
    }

    /// The chunk cache merged bots read backends through.
    pub fn chunks(&self) -> &ChunkCache {
        &self.chunks
    }

    /// The runtime of a backend's provider. Validation guarantees it exists.
    pub fn runtime(&self, backend: &Backend) -> Result<&Arc<ProviderRuntime>, ApiError> {
        self.providers.get(&backend.provider).ok_or_else(|| {
            tracing::error!(provider = %backend.provider, "a bot names a provider the runtime lacks");
            ApiError::Internal
        })
    }

    /// The cache identity of a backend.
    pub fn backend_id(&self, backend: &Backend) -> Result<BackendId, ApiError> {
        Ok(BackendId::new(
            &self.runtime(backend)?.config,
            &backend.chatbot_id,
        ))
    }

    /// The cache identities of a bot's backends, in config order.
    pub fn backend_ids(&self, bot: &BotConfig) -> Result<Vec<BackendId>, ApiError> {
        bot.backends.iter().map(|b| self.backend_id(b)).collect()
    }

    /// `X-Provider`: the kinds of the bot's backends, comma-separated, in config
    /// order.
    pub fn provider_label(&self, bot: &BotConfig) -> Result<String, ApiError> {
        let kinds = bot
            .backends
            .iter()
            .map(|b| Ok(self.runtime(b)?.kind().as_str()))
            .collect::<Result<Vec<_>, ApiError>>()?;
        Ok(kinds.join(","))
    }

    /// Lists one page of a bot's conversations, serialized.
    #[allow(clippy::too_many_arguments)]
    pub async fn list(
        &self,
        upstream: &Upstream,
        bot: &BotConfig,
        query: &ListQuery,
        request_id: &str,
        bypass: bool,
        stats: &UpstreamStats,
    ) -> Result<Listed, ApiError> {
        let (page, status) = self
            .list_page(upstream, bot, query, request_id, bypass, stats)
            .await?;
        let body = ListBody {
            data: &page.conversations,
            page: query.page.get(),
            size: query.size.get(),
            next_page: page.has_more.then(|| query.page.get() + 1),
        };
        Ok(Listed {
            body: to_bytes(&body)?,
            provider: self.provider_label(bot)?,
            stale: status == CacheStatus::Stale,
        })
    }

    /// Lists one page of a bot's conversations: its one backend's page, or the
    /// merge of several (see [`crate::merge`]).
    pub async fn list_page(
        &self,
        upstream: &Upstream,
        bot: &BotConfig,
        query: &ListQuery,
        request_id: &str,
        bypass: bool,
        stats: &UpstreamStats,
    ) -> Result<(Page, CacheStatus), ApiError> {
        match bot.backends.as_slice() {
            [one] => {
                let page = self
                    .backend_page(upstream, &bot.name, one, query, request_id, stats)
                    .await?;
                Ok((page, CacheStatus::Miss))
            }
            _ => {
                // Each chunk read has its own budget; the page as a whole is bound
                // by the request's deadline too.
                let budget = self.config.server.request_timeout;
                let merged =
                    merge::merged_page(self, upstream, bot, query, request_id, bypass, stats);
                match tokio::time::timeout(budget, merged).await {
                    Ok(result) => result,
                    Err(_) => {
                        let kind = self.runtime(&bot.backends[0])?.kind();
                        Err(ApiError::upstream(kind, UpstreamFailure::Deadline(budget)))
                    }
                }
            }
        }
    }

    /// One page of one backend.
    pub async fn backend_page(
        &self,
        upstream: &Upstream,
        bot_name: &str,
        backend: &Backend,
        query: &ListQuery,
        request_id: &str,
        stats: &UpstreamStats,
    ) -> Result<Page, ApiError> {
        let provider = self.runtime(backend)?;
        let hint = NonZeroU32::new(provider.vendor_page_size.load(Ordering::Relaxed));
        let target = Target {
            bot: bot_name,
            chatbot_id: &backend.chatbot_id,
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
        Ok(result.page)
    }

    /// Reads one conversation with all its messages. A merged bot asks its
    /// backends in config order (those with a detail endpoint) until one has it.
    pub async fn get(
        &self,
        upstream: &Upstream,
        bot: &BotConfig,
        conversation_id: &str,
        include_raw: bool,
        request_id: &str,
        stats: &UpstreamStats,
    ) -> Result<Listed, ApiError> {
        let mut last_error = None;
        for backend in &bot.backends {
            let provider = self.runtime(backend)?;
            let target = Target {
                bot: &bot.name,
                chatbot_id: &backend.chatbot_id,
            };
            let op = match provider.adapter.get(target, conversation_id, include_raw) {
                Ok(op) => op,
                Err(e) => {
                    last_error.get_or_insert(ApiError::upstream(provider.kind(), e));
                    continue;
                }
            };
            match self.drive(upstream, provider, op, request_id, stats).await {
                Ok(conversation) => {
                    return Ok(Listed {
                        body: to_bytes(&OneBody {
                            data: &conversation,
                        })?,
                        provider: provider.kind().as_str().to_owned(),
                        stale: false,
                    })
                }
                Err(e) if bot.backends.len() > 1 && e.status_and_code().1 == "not_found" => {
                    last_error = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(last_error.unwrap_or(ApiError::Internal))
    }

    /// Runs an operation to completion, within the request's overall deadline.
    async fn drive<T>(
        &self,
        upstream: &Upstream,
        provider: &ProviderRuntime,
        mut op: Box<dyn Operation<T>>,
        request_id: &str,
        stats: &UpstreamStats,
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
        stats: &UpstreamStats,
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
            // 4. the call, if the request's budget allows one more
            stats.call().map_err(fail)?;
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
                Ok((response, latency, body_permit)) => {
                    stats.spent(latency);
                    let status = response.status;
                    self.metrics
                        .upstream(name, UpstreamOutcome::Status(status), latency);
                    tracing::debug!(
                        path = %request.path, status, attempt = retries + 1,
                        latency_ms = latency.as_secs_f64() * 1000.0, "vendor call"
                    );
                    // 5. the adapter's verdict decides the breaker and the retry
                    let verdict = op
                        .on_response(response)
                        .map_err(|e| bounded(e, &provider.config));
                    // Parsed and normalized: the body's reservation ends. From
                    // here to the serialized answer there is no await, so at
                    // most one answer per worker thread is being serialized.
                    drop(body_permit);
                    match verdict {
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

/// The one place a vendor's error is made safe to act on, log and answer: its
/// text loses the provider key (and any long fragment of it) and its control
/// characters, and its `Retry-After` is capped at the
/// provider's `max_pause` (a vendor asking for 10^19 seconds gets minutes).
fn bounded(e: ProviderError, provider: &ProviderConfig) -> ProviderError {
    match e.sanitize(provider.api_key.expose_secret()) {
        ProviderError::RateLimited { retry_after } => ProviderError::RateLimited {
            retry_after: retry_after.map(|wait| wait.min(provider.max_pause)),
        },
        other => other,
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
