//! The actix-web server: app state, routes, middleware, start/stop, hot reload.

pub mod auth;
pub mod error;
pub mod openapi;
pub mod request_log;
pub mod routes;
pub mod wire;

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::{middleware, web, App};
use arc_swap::ArcSwap;

use crate::cache::{split_cache_budget, ResponseCache};
use crate::clock::Clock;
use crate::config::{self, Config, ConfigError};
use crate::gateway::Gateway;
use crate::limits::{AuthFailures, ClientLimits};
use crate::merge::ChunkCache;
use crate::metrics::Metrics;
use crate::redis::{RedisSettings, SharedStore};
use crate::upstream::{tls_config, BodyBudget, Upstream};
use secrecy::ExposeSecret;

/// The content type of every API response.
pub const JSON: &str = "application/json; charset=utf-8";

/// How long a stopping server waits for in-flight requests.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// How often idle rate-limit state is pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(30);

/// What a config reload replaces as one unit: a request loads it once and runs
/// to its end on it, whatever reloads happen meanwhile.
pub struct Runtime {
    /// The configuration and per-provider runtime.
    pub gateway: Gateway,
    /// Each client's request rate.
    pub client_limits: ClientLimits,
}

/// State shared by every worker.
pub struct AppState {
    runtime: ArcSwap<Runtime>,
    /// Response bodies (kept across reloads: keys name provider and vendor id,
    /// so a remapped bot never meets its old vendor's body).
    pub cache: ResponseCache,
    /// Backend chunks of dual-read bots (kept across reloads likewise).
    chunks: Arc<ChunkCache>,
    /// Failed authentications per remote IP.
    pub auth_failures: Arc<AuthFailures>,
    /// Prometheus metrics.
    pub metrics: Arc<Metrics>,
    /// Whether `/metrics` is served on the main address.
    pub metrics_on_main: bool,
    /// Where the config was read from, for reloads (`None` for inline configs).
    config_path: Option<PathBuf>,
    /// The time every limiter, cache entry, log line and vendor call reads.
    clock: Clock,
}

impl AppState {
    /// The weight of both caches together (bounded by `cache.max_bytes`).
    pub async fn cache_weight(&self) -> u64 {
        self.cache.weighted_size().await + self.chunks.weighted_size().await
    }

    /// The clock the server runs on.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// The runtime to serve one request with.
    pub fn runtime(&self) -> Arc<Runtime> {
        self.runtime.load_full()
    }

    /// Re-reads the config file and swaps it in when valid; an invalid one is
    /// rejected and the current one keeps serving.
    pub fn reload(&self) -> Result<(), ConfigError> {
        let Some(path) = &self.config_path else {
            return Err(ConfigError {
                problems: vec!["this server was not started from a config file".to_owned()],
            });
        };
        let result = config::load(path).map(|c| self.apply(c));
        self.metrics.config_reload(result.is_ok());
        match &result {
            Ok(()) => tracing::info!(config = %path.display(), "configuration reloaded"),
            Err(e) => tracing::error!(
                config = %path.display(), problems = %e.problems.join("; "),
                "configuration rejected; the previous one keeps serving"
            ),
        }
        result
    }

    /// The shared store for a new config: the running one while `[redis]`
    /// names the same connection (its live connection and up/down state go
    /// on), a new one when `[redis]` was added or changed, none when removed.
    /// Requests in flight finish on the store they started with.
    fn store_for(
        &self,
        running: Option<&SharedStore>,
        wanted: Option<&RedisSettings>,
    ) -> Option<SharedStore> {
        if let Some(store) = running.filter(|s| same_connection(s.settings(), wanted)) {
            return Some(store.clone());
        }
        match wanted {
            Some(settings) => {
                match SharedStore::new(settings.clone(), self.metrics.clone(), self.clock.clone()) {
                    Ok(store) => {
                        tracing::info!(redis = %settings.display_url(), "now sharing limits, pauses and cache in Redis");
                        Some(store)
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "cannot use the new [redis]; limits and cache stay in memory");
                        self.metrics.redis_unused();
                        None
                    }
                }
            }
            None => {
                if running.is_some() {
                    tracing::info!(
                        "[redis] removed: limits, pauses and cache are this instance's own again"
                    );
                    self.metrics.redis_unused();
                }
                None
            }
        }
    }

    /// Swaps in a validated config, keeping live state of unchanged providers and
    /// clients.
    pub fn apply(&self, config: Config) {
        let current = self.runtime();
        let old = &current.gateway.config;
        if old.server != config.server || old.cache != config.cache {
            tracing::warn!("[server] and [cache] changes take effect only after a restart");
        }
        let store = self.store_for(current.gateway.store(), config.redis.as_ref());
        let client_limits =
            ClientLimits::new(&config.clients, Some(&current.client_limits), &self.clock)
                .with_store(store.clone());
        let gateway = Gateway::new(
            config,
            self.metrics.clone(),
            self.chunks.clone(),
            Some(&current.gateway),
            &self.clock,
            store,
        );
        self.runtime.store(Arc::new(Runtime {
            gateway,
            client_limits,
        }));
        self.auth_failures.forgive_all();
        self.metrics.config_loaded(self.clock.unix_secs_f64());
    }
}

/// A started gateway.
pub struct RunningServer {
    /// The address it listens on (the real port when bound to port 0).
    pub addr: SocketAddr,
    /// Where `/metrics` is served when `server.metrics_bind` is set.
    pub metrics_addr: Option<SocketAddr>,
    /// The shared state (reload, metrics).
    pub state: web::Data<AppState>,
    handles: Vec<ServerHandle>,
    task: actix_rt::task::JoinHandle<io::Result<()>>,
    background: Vec<actix_rt::task::JoinHandle<()>>,
}

impl RunningServer {
    /// A handle to stop the API server.
    pub fn handle(&self) -> ServerHandle {
        self.handles[0].clone()
    }

    /// Stops gracefully: no new connections, in-flight requests finish.
    pub async fn stop(self) {
        for handle in &self.handles {
            handle.stop(true).await;
        }
        for task in &self.background {
            task.abort();
        }
        let _ = self.task.await;
    }

    /// Waits until the API server stops (on SIGINT/SIGTERM when `signals` was set).
    pub async fn wait(self) -> io::Result<()> {
        let result = self.task.await.map_err(io::Error::other)?;
        for handle in &self.handles[1..] {
            handle.stop(true).await;
        }
        for task in &self.background {
            task.abort();
        }
        result
    }
}

/// Binds the configured address and starts serving on the current actix system,
/// on the system's clock. `signals`: whether SIGINT/SIGTERM stop it gracefully
/// and SIGHUP reloads the config (the CLI), or not (tests that run several
/// servers in one process).
pub async fn start(config: Config, signals: bool) -> io::Result<RunningServer> {
    start_with_clock(config, signals, Clock::system()).await
}

/// [`start`] on a given clock: tests pass a
/// [`ManualClock`](crate::clock::ManualClock) to move the time the limiters,
/// the cache and the log read, instead of sleeping.
pub async fn start_with_clock(
    config: Config,
    signals: bool,
    clock: Clock,
) -> io::Result<RunningServer> {
    let bind = config.server.bind;
    let workers = config.server.workers;
    let metrics_bind = config.server.metrics_bind;
    let metrics = Arc::new(Metrics::new());
    let auth_failures = Arc::new(AuthFailures::new(
        &config.server.auth_failures,
        clock.clone(),
    ));
    let config_path = config.path.is_file().then(|| config.path.clone());
    // Built here, on the main system, so its connection tasks live as long as
    // the server (not a worker's); without `[redis]`, Redis is never touched.
    let store = match &config.redis {
        Some(settings) => {
            let store = SharedStore::new(settings.clone(), metrics.clone(), clock.clone())
                .map_err(io::Error::other)?;
            tracing::info!(redis = %settings.display_url(), "sharing limits, pauses and cache in Redis");
            Some(store)
        }
        None => None,
    };
    let (response_bytes, chunk_bytes) = split_cache_budget(config.cache.max_bytes);
    let chunks = Arc::new(ChunkCache::new(&config.cache, chunk_bytes, clock.clone()));
    let state = web::Data::new(AppState {
        cache: ResponseCache::new(&config.cache, response_bytes, clock.clone()),
        chunks: chunks.clone(),
        auth_failures: auth_failures.clone(),
        metrics: metrics.clone(),
        metrics_on_main: metrics_bind.is_none(),
        config_path,
        runtime: ArcSwap::from_pointee(Runtime {
            client_limits: ClientLimits::new(&config.clients, None, &clock)
                .with_store(store.clone()),
            gateway: Gateway::new(config, metrics.clone(), chunks, None, &clock, store),
        }),
        clock: clock.clone(),
    });
    metrics.config_loaded(clock.unix_secs_f64());

    let tls = tls_config();
    let body_budget = BodyBudget::new(
        state
            .runtime()
            .gateway
            .config
            .server
            .max_inflight_body_bytes,
    );
    let app_state = state.clone();
    let mut server = actix_server::Server::build().shutdown_timeout(SHUTDOWN_GRACE.as_secs());
    if workers > 0 {
        server = server.workers(workers);
    }
    if !signals {
        server = server.disable_signals();
    }
    let listener = wire::bind(bind)?;
    let addr = listener.local_addr()?;
    let app_clock = clock.clone();
    let server = wire::listen(server, listener, metrics.clone(), &clock, move || {
        App::new()
            .app_data(app_state.clone())
            .app_data(web::Data::new(Upstream::new(
                tls.clone(),
                body_budget.clone(),
                app_clock.clone(),
            )))
            .wrap(middleware::from_fn(request_log::middleware))
            .wrap(middleware::from_fn(wire::track))
            .configure(routes::configure)
            .default_service(web::to(routes::no_route))
    })?
    .run();
    let mut handles = vec![server.handle()];
    let task = actix_rt::spawn(server);

    let mut metrics_addr = None;
    if let Some(mbind) = metrics_bind {
        let metrics_state = state.clone();
        let listener = wire::bind(mbind)?;
        metrics_addr = Some(listener.local_addr()?);
        let msrv = actix_server::Server::build()
            .workers(1)
            .shutdown_timeout(SHUTDOWN_GRACE.as_secs())
            .disable_signals();
        let msrv = wire::listen(msrv, listener, metrics.clone(), &clock, move || {
            App::new()
                .app_data(metrics_state.clone())
                .wrap(middleware::from_fn(request_log::middleware))
                .wrap(middleware::from_fn(wire::track))
                .service(routes::metrics_resource())
                .default_service(web::to(routes::no_route))
        })?
        .run();
        handles.push(msrv.handle());
        actix_rt::spawn(msrv);
    }

    let mut background = vec![actix_rt::spawn(async move {
        loop {
            tokio::time::sleep(PRUNE_EVERY).await;
            auth_failures.prune();
        }
    })];
    if signals {
        background.push(spawn_reload_on_sighup(state.clone()));
    }
    // The accept loop starts when the spawned server is first polled: yield once
    // so a caller that goes on to block its thread finds it answering.
    actix_rt::task::yield_now().await;
    Ok(RunningServer {
        addr,
        metrics_addr,
        state,
        handles,
        task,
        background,
    })
}

/// Whether `wanted` names the store `running` already is (the URL compared in
/// full, as it may differ only in its password).
fn same_connection(running: &RedisSettings, wanted: Option<&RedisSettings>) -> bool {
    wanted.is_some_and(|b| {
        running.url.expose_secret() == b.url.expose_secret()
            && running.key_prefix == b.key_prefix
            && running.timeout == b.timeout
            && running.cache_max_body_bytes == b.cache_max_body_bytes
    })
}

/// SIGHUP re-reads the config (SPEC §8).
#[cfg(unix)]
fn spawn_reload_on_sighup(state: web::Data<AppState>) -> actix_rt::task::JoinHandle<()> {
    actix_rt::spawn(async move {
        let mut hup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGHUP; hot reload is off");
                return;
            }
        };
        while hup.recv().await.is_some() {
            let _ = state.reload();
        }
    })
}

#[cfg(not(unix))]
fn spawn_reload_on_sighup(_: web::Data<AppState>) -> actix_rt::task::JoinHandle<()> {
    actix_rt::spawn(async {})
}
