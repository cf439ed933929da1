//! [`SharedStore`]: the one way chatgate talks to Redis.
//!
//! Every operation goes through [`SharedStore::run`], which
//! - refuses at once, without touching the network, while Redis is down (the
//!   short circuit in [`health`](super::health));
//! - bounds the operation, connecting included, by `redis.timeout_ms`;
//! - records its round trip and errors, and logs one line when Redis goes down
//!   and one when it comes back.
//!
//! The connection is redis-rs's `ConnectionManager`: one multiplexed
//! connection shared by every caller, reconnecting on its own after errors. It
//! is created lazily (no network until first use) and connected by a background
//! task, so a slow handshake (TLS to another zone) is never cut short by the
//! per-operation bound.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use ::redis::RedisResult;
use arc_swap::ArcSwap;
use secrecy::ExposeSecret;

use super::health::{Health, Permit, Transition};
use super::keys::Keys;
use super::settings::RedisSettings;
use crate::clock::Clock;

/// The bound on establishing a connection in the background. Longer than an
/// operation's bound: connecting happens off the request path.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Why an operation did not happen.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Redis is down ("RedisDown"): the operation was skipped without touching
    /// the network, until the next probe.
    #[error("redis is down; skipped until the next probe")]
    Down,
    /// No answer within `redis.timeout_ms`.
    #[error("redis did not answer within {0:?}")]
    Timeout(Duration),
    /// Redis or the connection to it failed.
    #[error("redis failed: {0}")]
    Redis(#[from] ::redis::RedisError),
    /// The URL was refused by the client (validation should have caught it;
    /// the URL is not quoted: it may hold a password).
    #[error("redis.url is not a URL the Redis client accepts")]
    InvalidUrl,
}

/// Where the store's measurements go. The gateway passes its
/// [`Metrics`](crate::metrics::Metrics); tools without metrics pass
/// [`NoMetrics`]. `op` is a fixed name per operation (`gcra`, `cache_get`, …).
pub trait StoreMetrics: Send + Sync {
    /// Redis is now reachable (`true`) or not.
    fn redis_up(&self, up: bool);
    /// An attempted operation failed (not counted: operations skipped while down).
    fn redis_error(&self, op: &'static str);
    /// An attempted operation took `elapsed`, successful or not.
    fn redis_round_trip(&self, op: &'static str, elapsed: Duration);
}

/// Records nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoMetrics;

impl StoreMetrics for NoMetrics {
    fn redis_up(&self, _: bool) {}
    fn redis_error(&self, _: &'static str) {}
    fn redis_round_trip(&self, _: &'static str, _: Duration) {}
}

impl StoreMetrics for crate::metrics::Metrics {
    fn redis_up(&self, up: bool) {
        crate::metrics::Metrics::redis_up(self, up);
    }
    fn redis_error(&self, op: &'static str) {
        crate::metrics::Metrics::redis_error(self, op);
    }
    fn redis_round_trip(&self, op: &'static str, elapsed: Duration) {
        crate::metrics::Metrics::redis_round_trip(self, op, elapsed);
    }
}

/// A handle on the shared Redis store; clones share one connection and one
/// up/down state.
#[derive(Clone)]
pub struct SharedStore {
    inner: Arc<Inner>,
}

struct Inner {
    settings: RedisSettings,
    keys: Keys,
    client: ::redis::Client,
    conn: ArcSwap<Conn>,
    health: Mutex<Health>,
    metrics: Arc<dyn StoreMetrics>,
    /// What the short circuit and the round-trip timing read.
    clock: Clock,
}

/// One connection manager and whether it has ever answered.
struct Conn {
    manager: ConnectionManager,
    connected: AtomicBool,
}

impl std::fmt::Debug for SharedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedStore")
            .field("settings", &self.inner.settings)
            .field("up", &self.is_up())
            .finish()
    }
}

impl SharedStore {
    /// A store for `settings`, connecting in the background. Must be called
    /// inside the tokio runtime that lives as long as the store (the
    /// connection's tasks run there): in the server, the main actix system,
    /// not a worker's factory.
    pub fn new(
        settings: RedisSettings,
        metrics: Arc<dyn StoreMetrics>,
        clock: Clock,
    ) -> Result<Self, StoreError> {
        let client = ::redis::Client::open(settings.url.expose_secret())
            .map_err(|_| StoreError::InvalidUrl)?;
        let conn = Arc::new(connect(&client)?);
        metrics.redis_up(true);
        let store = Self {
            inner: Arc::new(Inner {
                keys: Keys::new(&settings.key_prefix),
                settings,
                client,
                conn: ArcSwap::new(conn.clone()),
                health: Mutex::new(Health::new()),
                metrics,
                clock,
            }),
        };
        store.warm_up(conn);
        Ok(store)
    }

    /// The settings it runs on.
    pub fn settings(&self) -> &RedisSettings {
        &self.inner.settings
    }

    /// Its key layout.
    pub fn keys(&self) -> &Keys {
        &self.inner.keys
    }

    /// Whether operations currently go to Redis (false while short-circuited).
    pub fn is_up(&self) -> bool {
        self.health().is_up()
    }

    /// A round trip, for readiness checks and tests.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.run("ping", |mut conn| async move {
            ::redis::cmd("PING").query_async::<()>(&mut conn).await
        })
        .await
    }

    /// Runs one operation: skipped while Redis is down, bounded by
    /// `redis.timeout_ms`, measured, and fed to the up/down state. Every error
    /// counts as a failure, not only lost connections: a Redis answering with
    /// errors (out of memory, loading, a read-only replica) is of no more use
    /// than an absent one, and the in-memory fallback is always safe.
    ///
    /// `attempt` may run twice: when the connection was refused, the command
    /// was never sent, and the manager has just started reconnecting, so a
    /// second try (within the same bound) lets a Redis that came back answer
    /// the probe that finds it.
    pub(crate) async fn run<T, F, Fut>(&self, op: &'static str, attempt: F) -> Result<T, StoreError>
    where
        F: Fn(ConnectionManager) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        let permit = self.health().permit(self.inner.clock.now());
        if permit == Permit::Skip {
            return Err(StoreError::Down);
        }
        let mut probe = ProbeGuard {
            store: self,
            permit,
            settled: false,
        };
        let conn = self.inner.conn.load_full();
        let timeout = self.inner.settings.timeout;
        let started = self.inner.clock.now();
        let tries = async {
            match attempt(conn.manager.clone()).await {
                Err(e) if e.is_connection_refusal() => attempt(conn.manager.clone()).await,
                other => other,
            }
        };
        let result = match tokio::time::timeout(timeout, tries).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(StoreError::Redis(e)),
            Err(_) => Err(StoreError::Timeout(timeout)),
        };
        let metrics = &self.inner.metrics;
        metrics.redis_round_trip(op, started.elapsed());
        let now = self.inner.clock.now();
        let transition = match &result {
            Ok(_) => {
                conn.connected.store(true, Ordering::Relaxed);
                self.health().succeeded(permit, now)
            }
            Err(e) => {
                metrics.redis_error(op);
                if permit == Permit::Probe
                    && matches!(e, StoreError::Timeout(_))
                    && conn.connected.load(Ordering::Relaxed)
                {
                    self.replace_connection();
                }
                self.health().failed(permit, now)
            }
        };
        probe.settled = true;
        self.report(transition, result.as_ref().err(), op);
        result
    }

    /// A probe timed out on a connection that had been established: the peer
    /// may be gone without a reset (a failover that moved the address, a
    /// partition), which redis-rs cannot see, so the next probe gets a new
    /// connection.
    fn replace_connection(&self) {
        match connect(&self.inner.client) {
            Ok(conn) => {
                let conn = Arc::new(conn);
                self.inner.conn.store(conn.clone());
                self.warm_up(conn);
            }
            Err(e) => tracing::debug!(error = %e, "could not create a new Redis connection"),
        }
    }

    /// Connects `conn` in the background, bounded by [`CONNECT_TIMEOUT`]
    /// rather than by an operation's bound. A failure counts like a failed
    /// operation, so a Redis unreachable at startup is reported (and skipped)
    /// before the first request has to find out.
    fn warm_up(&self, conn: Arc<Conn>) {
        let store = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            let mut manager = conn.manager.clone();
            let cmd = ::redis::cmd("PING");
            let ping = cmd.query_async::<()>(&mut manager);
            let error = match tokio::time::timeout(CONNECT_TIMEOUT, ping).await {
                Ok(Ok(())) => {
                    conn.connected.store(true, Ordering::Relaxed);
                    return;
                }
                Ok(Err(e)) => StoreError::Redis(e),
                Err(_) => StoreError::Timeout(CONNECT_TIMEOUT),
            };
            if let Some(inner) = store.upgrade() {
                let store = SharedStore { inner };
                store.inner.metrics.redis_error("connect");
                let transition = store.health().failed(Permit::Go, store.inner.clock.now());
                store.report(transition, Some(&error), "connect");
            }
        });
    }

    /// Logs and records a change between up and down, once per change.
    fn report(&self, transition: Option<Transition>, error: Option<&StoreError>, op: &str) {
        let redis = self.inner.settings.display_url();
        match transition {
            Some(Transition::Down) => {
                self.inner.metrics.redis_up(false);
                let error = error.map(ToString::to_string).unwrap_or_default();
                tracing::warn!(
                    redis,
                    op,
                    error,
                    "Redis unreachable: limits fall back to memory and the cache to its \
                     first level until it answers again"
                );
            }
            Some(Transition::Up(down_for)) => {
                self.inner.metrics.redis_up(true);
                tracing::info!(
                    redis,
                    down_ms = down_for.as_millis() as u64,
                    "Redis reachable again: shared limits and cache resume"
                );
            }
            None => {}
        }
    }

    fn health(&self) -> std::sync::MutexGuard<'_, Health> {
        self.inner.health.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A probe whose caller went away (a cancelled request) before it ended hands
/// the probe to the next operation.
struct ProbeGuard<'a> {
    store: &'a SharedStore,
    permit: Permit,
    settled: bool,
}

impl Drop for ProbeGuard<'_> {
    fn drop(&mut self) {
        if !self.settled {
            self.store.health().abandoned(self.permit);
        }
    }
}

/// A lazy connection manager (no network until used or warmed up).
///
/// One reconnection attempt per failure: the short circuit paces the attempts,
/// and a manager retrying on its own would keep probes waiting on its backoff.
fn connect(client: &::redis::Client) -> Result<Conn, StoreError> {
    let config = ConnectionManagerConfig::new()
        .set_number_of_retries(1)
        .set_min_delay(Duration::from_millis(100))
        .set_max_delay(Duration::from_secs(1))
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(None);
    Ok(Conn {
        manager: ConnectionManager::new_lazy_with_config(client.clone(), config)?,
        connected: AtomicBool::new(false),
    })
}
