//! The baseline of `scripts/load.sh`: a bare actix-web handler answering every
//! request with the bytes of a file, as cheaply as actix can. The gateway's
//! cache-hit throughput is reported as a ratio of this one's (SPEC §10).
//!
//! `cargo run --release --example bare -- 127.0.0.1:9300 body.json 2`

use std::net::SocketAddr;

use actix_web::{web, App, HttpResponse, HttpServer};
use bytes::Bytes;

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let usage = || std::io::Error::other("usage: bare ADDR BODY_FILE WORKERS");
    let addr: SocketAddr = args
        .next()
        .ok_or_else(usage)?
        .parse()
        .map_err(|_| usage())?;
    let body = Bytes::from(std::fs::read(args.next().ok_or_else(usage)?)?);
    let workers: usize = args
        .next()
        .ok_or_else(usage)?
        .parse()
        .map_err(|_| usage())?;
    HttpServer::new(move || {
        let body = body.clone();
        App::new().default_service(web::to(move || {
            let body = body.clone();
            async move {
                HttpResponse::Ok()
                    .content_type("application/json; charset=utf-8")
                    .body(body)
            }
        }))
    })
    .workers(workers)
    .bind(addr)?
    .run()
    .await
}
