//! The gateway's runtime: a validated [`Config`] plus, per provider, its adapter
//! and its live state (quota guard, 429 pause, circuit breaker, learned page
//! size). It drives adapter operations through [`Upstream`] and serializes
//! results once.
//!
//! Every vendor call passes the same phases, in this order:
//! 1. **pause** — after a vendor 429 no call reaches that vendor until its
//!    `Retry-After` (Chatling: the next full minute). A request that can afford it
//!    waits the rest of the window out once; others get 429 at once. With
//!    `[redis]` the pause is shared: a 429 heard by any instance (or by
//!    `chatgate export`) pauses all of them.
//! 2. **quota guard** — `max_requests_per_second` across every caller; with
//!    `[redis]`, across every instance too (one GCRA bucket per vendor
//!    account). A Redis failure falls back to this instance's guard and pause.
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
use std::io::Write as _;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use chatgate_providers::{
    adapter, json, Adapter, Conversation, ListQuery, Operation, Page, PageNumber, PageSize, Paging,
    ProviderError, ProviderKind, Step, Target, UpstreamRequest,
};
use secrecy::ExposeSecret;
use serde::Serialize;
use tracing::Instrument;

use crate::cache::shared::SharedCache;
use crate::cache::{BackendId, BotKey, CacheStatus, Listed, Stored};
use crate::circuit::CircuitBreaker;
use crate::clock::Clock;
use crate::config::{Backend, BotConfig, Config, ProviderConfig};
use crate::error::{GatewayError, UpstreamFailure};
use crate::limits::ProviderGuard;
use crate::merge::{self, Chunk, ChunkCache, ChunkKey, ChunkSource, CHUNK};
use crate::metrics::{Metrics, UpstreamOutcome};
use crate::redis::gcra::{self, GcraParams};
use crate::redis::keys::VendorAccount;
use crate::redis::{pause, SharedStore};
use crate::upstream::{TransportError, Upstream};
use crate::waits::Waits;
use governor::Quota;

pub mod resume;
pub mod retry;

use retry::{Decision, Failed, RetryPolicy};

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
    /// Where cursor-paged streams were left, so later pages start there.
    resume: resume::ResumePoints,
    /// The shared guard and pause of this vendor account, with `[redis]`.
    shared: Option<SharedAccount>,
}

/// A vendor account's state in the shared store: every instance (and `chatgate
/// export`) with the same account draws from one quota guard and honours one
/// 429 pause. The in-memory guard and pause stay as the fallback while Redis
/// fails, and the local pause is still set, so a Redis outage forgets nothing
/// this instance heard.
struct SharedAccount {
    store: SharedStore,
    guard_key: String,
    pause_key: String,
    params: GcraParams,
}

impl ProviderRuntime {
    fn new(config: Arc<ProviderConfig>, clock: &Clock, store: Option<&SharedStore>) -> Self {
        let shared = store.map(|store| {
            let account = VendorAccount {
                kind: config.kind.as_str(),
                base_url: &config.base_url,
                api_key: config.api_key.expose_secret(),
            };
            SharedAccount {
                guard_key: store.keys().vendor_guard(&account),
                pause_key: store.keys().vendor_pause(&account),
                params: GcraParams::from_quota(&Quota::per_second(config.max_requests_per_second)),
                store: store.clone(),
            }
        });
        Self {
            shared,
            adapter: adapter(config.kind, &config.adapter),
            guard: ProviderGuard::new(config.max_requests_per_second, clock.clone()),
            breaker: CircuitBreaker::new(config.circuit_failure_threshold, config.circuit_cooldown),
            paused_until: Mutex::new(None),
            vendor_page_size: AtomicU32::new(0),
            resume: resume::ResumePoints::default(),
            config,
        }
    }

    /// The kind of vendor.
    pub fn kind(&self) -> ProviderKind {
        self.config.kind
    }

    /// How much of a 429 pause is left: the longer of this instance's and the
    /// shared one (another instance may have heard the 429). This instance's
    /// alone when Redis fails.
    async fn pause_left(&self, now: Instant) -> Option<Duration> {
        let local = self.local_pause_left(now);
        let Some(shared) = &self.shared else {
            return local;
        };
        match pause::left(&shared.store, &shared.pause_key).await {
            Ok(remote) => local.max(remote.map(|d| d.min(self.config.max_pause))),
            Err(_) => local,
        }
    }

    fn local_pause_left(&self, now: Instant) -> Option<Duration> {
        let until = (*self.paused_until.lock().unwrap_or_else(|p| p.into_inner()))?;
        until.checked_duration_since(now).filter(|d| !d.is_zero())
    }

    /// Extends the pause to at least `now + wait`, never past `max_pause`, here
    /// and in the shared store (a Redis failure is ignored: the local pause
    /// still holds this instance back).
    async fn pause(&self, now: Instant, wait: Duration) {
        let wait = wait.min(self.config.max_pause);
        if let Some(new) = now.checked_add(wait) {
            let mut until = self.paused_until.lock().unwrap_or_else(|p| p.into_inner());
            if until.is_none_or(|u| u < new) {
                *until = Some(new);
            }
        }
        if let Some(shared) = &self.shared {
            if let Err(e) = pause::extend(&shared.store, &shared.pause_key, wait).await {
                tracing::debug!(error = %e, "could not share the vendor pause");
            }
        }
    }

    /// Cuts a pause left from before a reload down to `max_pause` from `now`, so a
    /// SIGHUP always bounds it by the bound in force; the shared pause too, in
    /// the background (a reload must not wait on Redis).
    fn recap_pause(&self, now: Instant) {
        {
            let mut until = self.paused_until.lock().unwrap_or_else(|p| p.into_inner());
            if let (Some(u), Some(cap)) = (*until, now.checked_add(self.config.max_pause)) {
                *until = Some(u.min(cap));
            }
        }
        if let (Some(shared), Ok(rt)) = (&self.shared, tokio::runtime::Handle::try_current()) {
            let (store, key, max) = (
                shared.store.clone(),
                shared.pause_key.clone(),
                self.config.max_pause,
            );
            rt.spawn(async move {
                let _ = pause::cap(&store, &key, max).await;
            });
        }
    }

    /// Phase 2, the quota guard: the shared bucket when there is one, this
    /// instance's when there is none or Redis fails.
    async fn acquire_slot(&self, max_wait: Duration) -> Result<(), Duration> {
        if let Some(shared) = &self.shared {
            match gcra::acquire(&shared.store, &shared.guard_key, shared.params, max_wait).await {
                Ok(result) => return result,
                Err(e) => {
                    tracing::debug!(error = %e, "shared quota guard unavailable; using this instance's")
                }
            }
        }
        self.guard.acquire(max_wait).await
    }

    fn report_circuit(&self, metrics: &Metrics, now: Instant) {
        let state = self.breaker.state(now);
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
    /// Each bot's part of its cache keys, by bot name.
    bot_keys: BTreeMap<String, Arc<BotKey>>,
    metrics: Arc<Metrics>,
    chunks: Arc<ChunkCache>,
    /// What every time rule here (pause, deadline, breaker, retry) reads.
    clock: Clock,
    /// The shared store, with `[redis]`: kept across reloads that keep the
    /// same `[redis]` connection settings.
    store: Option<SharedStore>,
    /// The second cache level in it, when `[redis]` shares bodies.
    shared_cache: Option<SharedCache>,
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

/// What one API request (or one export page) brings to every vendor call it
/// makes: the worker's HTTP clients, the id vendors see in `X-Request-Id`,
/// whether the cache was bypassed, the request's call count and budget, and
/// where its time waiting on vendors is counted.
pub struct CallCtx<'a> {
    /// The worker's clients.
    pub upstream: &'a Upstream,
    /// The request's id, sent to vendors and carried by the `upstream` span.
    pub request_id: &'a str,
    /// `Cache-Control: no-cache`: chunk reads skip the cache (still storing).
    pub bypass: bool,
    /// Calls made, time spent, calls left.
    pub stats: UpstreamStats,
    /// The request's time waiting on vendors (the calls, and the pauses,
    /// quota slots and backoffs before them) and on other requests' fetches.
    pub waits: Waits,
}

/// A dual-read bot's backends as a merge reads them: through the chunk cache,
/// then the vendor-call phases, within one request's budget.
pub struct Chunks<'a> {
    gw: &'a Gateway,
    ctx: &'a CallCtx<'a>,
    bot: &'a BotConfig,
}

/// A chunk as the chunk cache shares it.
pub struct SharedChunk(Arc<Stored<Chunk>>);

impl std::ops::Deref for SharedChunk {
    type Target = Chunk;

    fn deref(&self) -> &Chunk {
        &self.0
    }
}

impl ChunkSource for Chunks<'_> {
    type Loaded = SharedChunk;

    async fn chunk(
        &self,
        backend: &Backend,
        query: &ListQuery,
        k: u64,
    ) -> Result<(Self::Loaded, CacheStatus), GatewayError> {
        let page = u32::try_from(k + 1)
            .ok()
            .and_then(PageNumber::new)
            .ok_or_else(|| {
                GatewayError::OutOfReach(
                    "the page lies beyond what the backends can be read to".to_owned(),
                )
            })?;
        let chunk_query = ListQuery {
            page,
            size: PageSize::new(CHUNK).expect("CHUNK is a valid page size"),
            ..query.clone()
        };
        let key = ChunkKey::new(
            &self.bot.name,
            self.gw.backend_id(backend)?,
            chunk_query.clone(),
        );
        let fetch = || async {
            self.gw
                .backend_page(self.ctx, &self.bot.name, backend, &chunk_query)
                .await
                .map(Chunk::from)
        };
        let (chunk, status) = self
            .gw
            .chunks
            .get_or_fetch(key, self.ctx.bypass, &self.ctx.waits, fetch)
            .await?;
        Ok((SharedChunk(chunk), status))
    }
}

/// A list answer; its schema (`ConversationPage`) is the OpenAPI document's.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = ConversationPage)]
pub(crate) struct ListBody<'a> {
    /// The page's conversations, newest first (by `created_at`).
    data: &'a [Conversation],
    /// The page asked for.
    #[schema(minimum = 1)]
    page: u32,
    /// The page size asked for.
    #[schema(minimum = 1)]
    size: u32,
    /// `page + 1`, or `null` when this page is known to be the last.
    #[schema(minimum = 2, required = true)]
    next_page: Option<u32>,
}

impl ListBody<'_> {
    /// The answer's bytes: exactly what `serde_json::to_vec` writes for it (its
    /// `Serialize` derive is the contract), written by [`json`] into one buffer
    /// sized beforehand, as this is most of a cache miss's own work.
    fn to_bytes(&self) -> Bytes {
        let mut out = Vec::with_capacity(json::estimated_len(self.data) + 64);
        out.extend_from_slice(b"{\"data\":");
        json::conversations(&mut out, self.data);
        // Writing to a Vec cannot fail.
        let _ = write!(
            out,
            ",\"page\":{},\"size\":{},\"next_page\":",
            self.page, self.size
        );
        match self.next_page {
            Some(n) => {
                let _ = write!(out, "{n}");
            }
            None => out.extend_from_slice(b"null"),
        }
        out.push(b'}');
        Bytes::from(out)
    }
}

/// A one-conversation answer; its schema (`ConversationResponse`) is the
/// OpenAPI document's.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = ConversationResponse)]
pub(crate) struct OneBody<'a> {
    /// The conversation, with every message.
    data: &'a Conversation,
}

impl OneBody<'_> {
    /// The answer's bytes, as [`ListBody::to_bytes`] writes them.
    fn to_bytes(&self) -> Bytes {
        let mut out = Vec::with_capacity(json::estimated_len(std::slice::from_ref(self.data)) + 16);
        out.extend_from_slice(b"{\"data\":");
        json::conversation(&mut out, self.data);
        out.push(b'}');
        Bytes::from(out)
    }
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
        store: Option<SharedStore>,
    ) -> Self {
        let providers: BTreeMap<String, Arc<ProviderRuntime>> = config
            .providers
            .iter()
            .map(|(name, pc)| {
                let kept = previous
                    .and_then(|g| g.providers.get(name))
                    .filter(|rt| same_account(&rt.config, pc))
                    .cloned();
                if let Some(rt) = &kept {
                    rt.recap_pause(clock.now());
                }
                let runtime = kept.unwrap_or_else(|| {
                    Arc::new(ProviderRuntime::new(pc.clone(), clock, store.as_ref()))
                });
                runtime.report_circuit(&metrics, clock.now());
                (name.clone(), runtime)
            })
            .collect();
        let shared_cache = store
            .as_ref()
            .and_then(|store| SharedCache::new(store, config.server.request_timeout));
        let bot_keys = config
            .bots
            .values()
            .filter_map(|bot| {
                let backends = bot
                    .backends
                    .iter()
                    .map(|b| {
                        let provider = providers.get(&b.provider)?;
                        Some(BackendId::new(&provider.config, &b.chatbot_id))
                    })
                    .collect::<Option<Vec<_>>>()?;
                Some((bot.name.clone(), BotKey::new(bot, backends)))
            })
            .collect();
        Self {
            config: Arc::new(config),
            providers,
            bot_keys,
            metrics,
            chunks,
            clock: clock.clone(),
            store,
            shared_cache,
        }
    }

    /// The shared store, if `[redis]` is set.
    pub fn store(&self) -> Option<&SharedStore> {
        self.store.as_ref()
    }

    /// The second level of the response cache, if `[redis]` shares bodies.
    pub fn shared_cache(&self) -> Option<&SharedCache> {
        self.shared_cache.as_ref()
    }

    /// Sets every provider's circuit gauge to its state now (a cooldown passing
    /// changes the state without any call), for a metrics scrape.
    pub fn report_circuits(&self) {
        for runtime in self.providers.values() {
            runtime.report_circuit(&self.metrics, self.clock.now());
        }
    }

    /// The chunk cache merged bots read backends through.
    pub fn chunks(&self) -> &ChunkCache {
        &self.chunks
    }

    /// The runtime of a backend's provider. Validation guarantees it exists.
    pub fn runtime(&self, backend: &Backend) -> Result<&Arc<ProviderRuntime>, GatewayError> {
        self.providers.get(&backend.provider).ok_or_else(|| {
            tracing::error!(provider = %backend.provider, "a bot names a provider the runtime lacks");
            GatewayError::Internal
        })
    }

    /// The cache identity of a backend.
    pub fn backend_id(&self, backend: &Backend) -> Result<BackendId, GatewayError> {
        Ok(BackendId::new(
            &self.runtime(backend)?.config,
            &backend.chatbot_id,
        ))
    }

    /// The part of `bot`'s cache keys naming it and its backends, built once
    /// per runtime. Validation guarantees every bot has one.
    pub fn bot_key(&self, bot: &BotConfig) -> Result<&Arc<BotKey>, GatewayError> {
        self.bot_keys.get(&bot.name).ok_or_else(|| {
            tracing::error!(bot = %bot.name, "a bot names a provider the runtime lacks");
            GatewayError::Internal
        })
    }

    /// `X-Provider`: the kinds of the bot's backends, comma-separated, in config
    /// order.
    pub fn provider_label(&self, bot: &BotConfig) -> Result<String, GatewayError> {
        let kinds = bot
            .backends
            .iter()
            .map(|b| Ok(self.runtime(b)?.kind().as_str()))
            .collect::<Result<Vec<_>, GatewayError>>()?;
        Ok(kinds.join(","))
    }

    /// Lists one page of a bot's conversations, serialized.
    pub async fn list(
        &self,
        ctx: &CallCtx<'_>,
        bot: &BotConfig,
        query: &ListQuery,
    ) -> Result<Listed, GatewayError> {
        let (page, status) = self.list_page(ctx, bot, query).await?;
        let body = ListBody {
            data: &page.conversations,
            page: query.page.get(),
            size: query.size.get(),
            next_page: page.has_more.then(|| query.page.get() + 1),
        };
        Ok(Listed {
            body: body.to_bytes(),
            provider: self.provider_label(bot)?,
            stale: status == CacheStatus::Stale,
        })
    }

    /// Lists one page of a bot's conversations: its one backend's page, or the
    /// merge of several (see [`crate::merge`]).
    pub async fn list_page(
        &self,
        ctx: &CallCtx<'_>,
        bot: &BotConfig,
        query: &ListQuery,
    ) -> Result<(Page, CacheStatus), GatewayError> {
        match bot.backends.as_slice() {
            [one] => {
                let page = self.backend_page(ctx, &bot.name, one, query).await?;
                Ok((page, CacheStatus::Miss))
            }
            _ => {
                self.refuse_unreachable(ctx, bot, query)?;
                // Each chunk read has its own budget; the page as a whole is bound
                // by the request's deadline too.
                let budget = self.config.server.request_timeout;
                let source = self.chunk_source(ctx, bot);
                let merged = merge::merged_page(&source, bot, query);
                match tokio::time::timeout(budget, merged).await {
                    Ok(result) => result,
                    Err(_) => {
                        let kind = self.runtime(&bot.backends[0])?.kind();
                        Err(GatewayError::upstream(
                            kind,
                            UpstreamFailure::Deadline(budget),
                        ))
                    }
                }
            }
        }
    }

    /// Refuses at once, before any vendor call, a merged page that the request's
    /// call budget cannot reach: when no chunk can come from the cache (bypassed
    /// or disabled), skipping `window_start` conversations takes at least one
    /// chunk read per [`CHUNK`] of them, so a deep page asked with `no-cache` is
    /// answered cheaply instead of spending the budget first.
    fn refuse_unreachable(
        &self,
        ctx: &CallCtx<'_>,
        bot: &BotConfig,
        query: &ListQuery,
    ) -> Result<(), GatewayError> {
        let cold = ctx.bypass || !self.chunks.is_enabled();
        let (Some(left), Some(budget)) = (ctx.stats.calls_left(), ctx.stats.budget()) else {
            return Ok(());
        };
        let needed = query.window_start().div_ceil(u64::from(CHUNK));
        if cold && needed > u64::from(left) {
            let kind = self.runtime(&bot.backends[0])?.kind();
            return Err(GatewayError::upstream(
                kind,
                UpstreamFailure::CallBudget(budget.get()),
            ));
        }
        Ok(())
    }

    /// What a merge of `bot` reads its backends through: the chunk cache, then
    /// the vendor-call phases, within `ctx`'s budget.
    pub fn chunk_source<'a>(&'a self, ctx: &'a CallCtx<'a>, bot: &'a BotConfig) -> Chunks<'a> {
        Chunks { gw: self, ctx, bot }
    }

    /// One page of one backend.
    pub async fn backend_page(
        &self,
        ctx: &CallCtx<'_>,
        bot_name: &str,
        backend: &Backend,
        query: &ListQuery,
    ) -> Result<Page, GatewayError> {
        let provider = self.runtime(backend)?;
        let hint = NonZeroU32::new(provider.vendor_page_size.load(Ordering::Relaxed));
        let target = Target {
            bot: bot_name,
            chatbot_id: &backend.chatbot_id,
        };
        // A cursor-paged vendor starts where an earlier page of the stream ended.
        let from = match provider.adapter.paging() {
            Paging::Cursor => {
                let now = self.clock.now();
                provider.resume.nearest(&backend.chatbot_id, query, now)
            }
            Paging::CallerSized | Paging::VendorSized => None,
        };
        let op = provider
            .adapter
            .list_from(target, query, hint, from.as_ref());
        let result = self.drive(ctx, provider, op).await?;
        if let Some(size) = result.vendor_page_size {
            provider
                .vendor_page_size
                .store(size.get(), Ordering::Relaxed);
        }
        let now = self.clock.now();
        provider
            .resume
            .remember(&backend.chatbot_id, query, &result.resume, now);
        Ok(result.page)
    }

    /// Reads one conversation with all its messages. A merged bot asks its
    /// backends in config order (those with a detail endpoint) until one has it.
    pub async fn get(
        &self,
        ctx: &CallCtx<'_>,
        bot: &BotConfig,
        conversation_id: &str,
        include_raw: bool,
    ) -> Result<Listed, GatewayError> {
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
                    last_error.get_or_insert(GatewayError::upstream(provider.kind(), e));
                    continue;
                }
            };
            match self.drive(ctx, provider, op).await {
                Ok(conversation) => {
                    return Ok(Listed {
                        body: OneBody {
                            data: &conversation,
                        }
                        .to_bytes(),
                        provider: provider.kind().as_str().to_owned(),
                        stale: false,
                    })
                }
                Err(e) if bot.backends.len() > 1 && e.is_not_found() => {
                    last_error = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(last_error.unwrap_or(GatewayError::Internal))
    }

    /// Runs an operation to completion, within the request's overall deadline.
    async fn drive<T>(
        &self,
        ctx: &CallCtx<'_>,
        provider: &ProviderRuntime,
        mut op: Box<dyn Operation<T>>,
    ) -> Result<T, GatewayError> {
        let kind = provider.kind();
        let budget = self.config.server.request_timeout;
        let now = self.clock.now();
        let deadline = now.checked_add(budget).unwrap_or(now);
        let span = tracing::info_span!(
            "upstream",
            request_id = ctx.request_id,
            provider = %provider.config.name
        );
        let run = async {
            let mut step = op.start().map_err(|e| GatewayError::upstream(kind, e))?;
            loop {
                match step {
                    Step::Done(value) => return Ok(value),
                    Step::Send(request) => {
                        step = self
                            .call(ctx, provider, op.as_mut(), &request, deadline)
                            .await?;
                    }
                }
            }
        };
        match tokio::time::timeout(budget, run.instrument(span)).await {
            Ok(result) => result,
            Err(_) => Err(GatewayError::upstream(
                kind,
                UpstreamFailure::Deadline(budget),
            )),
        }
    }

    /// One step of an operation: the vendor call with its phases and retries,
    /// ending with the adapter's next step or the final error.
    async fn call<T>(
        &self,
        ctx: &CallCtx<'_>,
        provider: &ProviderRuntime,
        op: &mut dyn Operation<T>,
        request: &UpstreamRequest,
        deadline: Instant,
    ) -> Result<Step<T>, GatewayError> {
        let CallCtx {
            upstream,
            request_id,
            stats,
            waits,
            ..
        } = ctx;
        let kind = provider.kind();
        let name = provider.config.name.as_str();
        let fail = |f: UpstreamFailure| GatewayError::upstream(kind, f);
        let policy = RetryPolicy {
            max_retries: provider.config.max_retries,
            max_retry_wait: provider.config.max_retry_wait,
        };
        let mut retries = 0;
        let mut waited_out_pause = false;
        loop {
            // 1. pause
            let now = self.clock.now();
            if let Some(left) = provider.pause_left(now).await {
                if !policy.waits_out_pause(left, waited_out_pause, now, deadline) {
                    self.metrics.rate_limited("upstream");
                    return Err(fail(UpstreamFailure::Paused(left)));
                }
                waited_out_pause = true;
                tracing::info!(
                    wait_ms = left.as_millis() as u64,
                    "waiting out the vendor's rate-limit window"
                );
                waits.during(tokio::time::sleep(left)).await;
            }
            // 2. quota guard, never past this call's timeout or the deadline
            let room = deadline
                .saturating_duration_since(self.clock.now())
                .min(provider.config.timeout);
            if let Err(wait) = waits.during(provider.acquire_slot(room)).await {
                self.metrics.rate_limited("provider");
                tracing::warn!(wait_ms = wait.as_millis() as u64, "vendor quota guard full");
                return Err(fail(UpstreamFailure::Throttled(wait)));
            }
            // 3. circuit breaker
            let permit = match provider.breaker.acquire(self.clock.now()) {
                Ok(permit) => permit,
                Err(open) => {
                    provider.report_circuit(&self.metrics, self.clock.now());
                    return Err(fail(UpstreamFailure::CircuitOpen(open.retry_in)));
                }
            };
            // 4. the call, if the request's budget allows one more
            stats.call().map_err(fail)?;
            let outcome = waits
                .during(upstream.execute(&provider.config, request, request_id))
                .await;
            // 5. whether to go round again, decided by the retry policy
            let retry = |failed: Failed| {
                policy.after_failure(failed, retries, self.clock.now(), deadline, rand::random())
            };
            match outcome {
                Err(e) => {
                    let (label, latency) = match &e {
                        TransportError::Timeout(t) => (UpstreamOutcome::Timeout, *t),
                        _ => (UpstreamOutcome::Error, Duration::ZERO),
                    };
                    self.metrics.upstream(name, label, latency);
                    permit.failure(self.clock.now());
                    provider.report_circuit(&self.metrics, self.clock.now());
                    tracing::warn!(path = %request.path, attempt = retries + 1, error = %e, "vendor call failed");
                    let failed = match e {
                        TransportError::Connect(_) => Failed::Connect,
                        _ => Failed::Spent,
                    };
                    if let Decision::Backoff(wait) = retry(failed) {
                        retries += 1;
                        waits.during(tokio::time::sleep(wait)).await;
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
                    // The adapter's verdict decides the breaker and the retry.
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
                            provider.report_circuit(&self.metrics, self.clock.now());
                            return Ok(next);
                        }
                        Err(e) => {
                            tracing::warn!(path = %request.path, status, error = %e, "vendor answer refused");
                            match &e {
                                ProviderError::RateLimited { retry_after } => {
                                    permit.neutral();
                                    let wait = retry_after.unwrap_or(DEFAULT_PAUSE);
                                    provider.pause(self.clock.now(), wait).await;
                                    // The next pass waits the window out once, if it can.
                                    if retry(Failed::RateLimited) == Decision::AfterPause {
                                        retries += 1;
                                        continue;
                                    }
                                    self.metrics.rate_limited("upstream");
                                }
                                ProviderError::Upstream { .. }
                                | ProviderError::InvalidBody { .. } => {
                                    permit.failure(self.clock.now());
                                    let failed = if e.is_retryable() {
                                        Failed::Transient
                                    } else {
                                        Failed::Permanent
                                    };
                                    if let Decision::Backoff(wait) = retry(failed) {
                                        provider.report_circuit(&self.metrics, self.clock.now());
                                        retries += 1;
                                        waits.during(tokio::time::sleep(wait)).await;
                                        continue;
                                    }
                                }
                                // The vendor answered; it is working.
                                _ => permit.success(),
                            }
                            provider.report_circuit(&self.metrics, self.clock.now());
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

#[cfg(test)]
mod tests {
    use chatgate_providers::{Message, Role, Source};
    use chrono::{TimeZone, Utc};

    use super::*;

    fn conversation(id: &str) -> Conversation {
        let t = Utc.with_ymd_and_hms(2024, 6, 14, 15, 45, 34).unwrap();
        Conversation {
            id: id.to_owned(),
            chatbot_id: "support".to_owned(),
            provider: ProviderKind::Chatling,
            created_at: t,
            updated_at: Some(t),
            customer: None,
            source: Source::Unspecified,
            messages: vec![Message {
                role: Role::Assistant,
                vendor_role: None,
                content: "**Yes** — \"quoted\"\nnext line 😊".into(),
                created_at: Some(t),
                sources: Vec::new(),
            }],
            raw: None,
        }
    }

    #[test]
    fn answers_are_the_bytes_serde_json_writes_for_them() {
        let data = [conversation("1"), conversation("2")];
        for (items, next_page) in [(&data[..], Some(3)), (&data[..0], None)] {
            let body = ListBody {
                data: items,
                page: 2,
                size: 100,
                next_page,
            };
            assert_eq!(body.to_bytes(), serde_json::to_vec(&body).unwrap());
        }
        let one = OneBody { data: &data[0] };
        assert_eq!(one.to_bytes(), serde_json::to_vec(&one).unwrap());
    }
}
