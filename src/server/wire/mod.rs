//! The HTTP layer chatgate listens with: actix-web's own setup (actix-server
//! workers, actix-http's HTTP/1 service, the same timeouts and graceful
//! shutdown as `actix_web::HttpServer`), with each accepted socket wrapped in a
//! [`Conn`] so that every answer on the wire is chatgate's.
//!
//! Why: actix-http answers some requests itself, before any route sees them —
//! 400 (a malformed request line, URI, header or length), 431 (a head over
//! 128 KiB or with over 96 headers), 408 (a first head not received within
//! [`HEAD_TIMEOUT`]) — with an empty body and no request id, and has no hook to
//! change them. `HttpServer` cannot wrap its sockets, so chatgate builds the
//! same server from its parts:
//! - [`track`](mod@track) (the app's outermost middleware) announces each answer the app
//!   produces to the connection;
//! - [`tap`] reads the connection's outgoing bytes as HTTP/1 messages and
//!   replaces an error head nobody announced with the documented JSON error
//!   (status kept, `Content-Type`, a fresh `X-Request-Id`, `Connection: close`);
//! - [`Conn`] applies the tap to the socket, ends reads [`LINGER`] after an
//!   answer that closes the connection, so no body trickled after its answer
//!   holds a connection, and times every request head after the first.

pub mod conn;
pub mod tap;
pub mod track;

use std::fmt;
use std::future::ready;
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use actix_http::h1::H1Service;
use actix_http::{HttpService, KeepAlive, Request, Response};
use actix_rt::net::TcpStream;
use actix_server::ServerBuilder;
use actix_service::{fn_service, map_config, IntoServiceFactory, ServiceFactoryExt as _};
use actix_web::body::MessageBody;
use actix_web::dev::{AppConfig, Extensions, Service, ServiceFactory};

pub use conn::Conn;
pub use track::track;

use crate::clock::Clock;
use crate::metrics::Metrics;

/// Idle time allowed between requests on one connection (actix-web's default).
pub const KEEP_ALIVE: Duration = Duration::from_secs(5);

/// Time allowed for a request head (actix-web's default
/// `client_request_timeout`); past it, 408 `request_timeout`.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(5);

/// How long reading goes on after an answer that closes the connection, so the
/// client receives the answer rather than a reset (actix-web's default
/// `client_disconnect_timeout`).
pub const LINGER: Duration = Duration::from_secs(1);

/// The queue of pending connections, as actix-web's `HttpServer` sets it.
const BACKLOG: i32 = 1024;

/// Binds `addr` the way `HttpServer::bind` does (`SO_REUSEADDR` on Unix, a
/// backlog of 1024), so a restart rebinds at once.
pub fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    #[cfg(not(windows))]
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}

/// Serves the app `factory` builds (once per worker) on `listener`, through
/// [`Conn`]. `metrics` counts the answers the tap replaces; `clock` times and
/// dates them.
pub fn listen<F, I, S, B>(
    builder: ServerBuilder,
    listener: TcpListener,
    metrics: Arc<Metrics>,
    clock: &Clock,
    factory: F,
) -> io::Result<ServerBuilder>
where
    F: Fn() -> I + Send + Clone + 'static,
    I: IntoServiceFactory<S, Request>,
    S: ServiceFactory<Request, Config = AppConfig> + 'static,
    S::Error: Into<actix_web::Error> + 'static,
    S::InitError: fmt::Debug,
    S::Response: Into<Response<B>> + 'static,
    <S::Service as Service<Request>>::Future: 'static,
    S::Service: 'static,
    B: MessageBody + 'static,
{
    let addr = listener.local_addr()?;
    let shutdown = builder.graceful_shutdown_signal();
    let clock = clock.clone();
    builder.listen(format!("chatgate-{addr}"), listener, move || {
        let shutdown = shutdown.clone();
        let metrics = metrics.clone();
        let clock = clock.clone();
        let app = factory()
            .into_factory()
            .map_err(|err| err.into().error_response());
        let http: H1Service<Conn, _, _> = HttpService::build()
            .graceful_shutdown_signal(move || {
                let shutdown = shutdown.clone();
                async move { shutdown.notified().await }
            })
            .keep_alive(KeepAlive::Timeout(KEEP_ALIVE))
            .client_request_timeout(HEAD_TIMEOUT)
            .client_disconnect_timeout(LINGER)
            .h1_allow_half_closed(true)
            .local_addr(addr)
            .on_connect_ext(|conn: &Conn, ext: &mut Extensions| {
                ext.insert(conn.ledger());
            })
            // The app reads neither `ConnectionInfo::host` nor `local_addr`
            // from its config (actix-web keeps the constructor private).
            .h1(map_config(app, |_| AppConfig::default()));
        fn_service(move |io: TcpStream| {
            let conn = Conn::new(io, LINGER, metrics.clone(), clock.clone());
            let peer = conn.peer();
            ready(Ok((conn, peer)))
        })
        .and_then(http)
    })
}
