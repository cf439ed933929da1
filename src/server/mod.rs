//! The actix-web server: app state, routes, middleware, start/stop.

pub mod auth;
pub mod error;
pub mod params;
pub mod request_log;
pub mod routes;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::{middleware, web, App, HttpServer};

use crate::cache::ResponseCache;
use crate::config::Config;
use crate::gateway::Gateway;
use crate::limits::{AuthFailures, ClientLimits};
use crate::upstream::{tls_config, Upstream};

/// The content type of every API response.
pub const JSON: &str = "application/json; charset=utf-8";

/// How long a stopping server waits for in-flight requests.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// How often idle rate-limit state is pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(30);

/// State shared by every worker.
pub struct AppState {
    /// The configuration and per-provider runtime.
    pub gateway: Arc<Gateway>,
    /// Response bodies.
    pub cache: ResponseCache,
    /// Each client's request rate.
    pub client_limits: ClientLimits,
    /// Failed authentications per remote IP.
    pub auth_failures: Arc<AuthFailures>,
}

/// A started gateway.
pub struct RunningServer {
    /// The address it listens on (the real port when bound to port 0).
    pub addr: SocketAddr,
    handle: ServerHandle,
    task: actix_rt::task::JoinHandle<io::Result<()>>,
    pruner: actix_rt::task::JoinHandle<()>,
}

impl RunningServer {
    /// A handle to stop the server.
    pub fn handle(&self) -> ServerHandle {
        self.handle.clone()
    }

    /// Stops gracefully: no new connections, in-flight requests finish.
    pub async fn stop(self) {
        self.handle.stop(true).await;
        self.pruner.abort();
        let _ = self.task.await;
    }

    /// Waits until the server stops (on SIGINT/SIGTERM when `signals` was set).
    pub async fn wait(self) -> io::Result<()> {
        let result = self.task.await.map_err(io::Error::other)?;
        self.pruner.abort();
        result
    }
}

/// Binds the configured address and starts serving on the current actix system.
/// `signals`: whether SIGINT/SIGTERM stop it gracefully (the CLI) or not (tests
/// that run several servers in one process).
pub async fn start(config: Config, signals: bool) -> io::Result<RunningServer> {
    let bind = config.server.bind;
    let workers = config.server.workers;
    let auth_failures = Arc::new(AuthFailures::new(&config.server.auth_failures));
    let state = web::Data::new(AppState {
        cache: ResponseCache::new(&config.cache),
        client_limits: ClientLimits::new(&config.clients),
        auth_failures: auth_failures.clone(),
        gateway: Arc::new(Gateway::new(config)),
    });
    let tls = tls_config();
    let mut server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .app_data(web::Data::new(Upstream::new(tls.clone())))
            .wrap(middleware::from_fn(request_log::middleware))
            .configure(routes::configure)
            .default_service(web::to(routes::no_route))
    })
    .shutdown_timeout(SHUTDOWN_GRACE.as_secs());
    if workers > 0 {
        server = server.workers(workers);
    }
    if !signals {
        server = server.disable_signals();
    }
    let server = server.bind(bind)?;
    let addr = server
        .addrs()
        .first()
        .copied()
        .ok_or_else(|| io::Error::other("the server bound no address"))?;
    let server = server.run();
    let handle = server.handle();
    let task = actix_rt::spawn(server);
    let pruner = actix_rt::spawn(async move {
        loop {
            tokio::time::sleep(PRUNE_EVERY).await;
            auth_failures.prune();
        }
    });
    // The accept loop starts when the spawned server is first polled: yield once
    // so a caller that goes on to block its thread finds it answering.
    actix_rt::task::yield_now().await;
    Ok(RunningServer {
        addr,
        handle,
        task,
        pruner,
    })
}
