//! `nexusmon serve`: the cockpit, a local review service over the files nexusmon already
//! keeps (out roots, packets, plans, `.nexusmon/`). Read-mostly: it never runs a plan and
//! never holds an operator's private key; the one state change it accepts is an approval
//! uploaded with its signature (`POST /v1/missions/{id}/approvals`, verified and stored by
//! `govern::cockpit::upload_approval`).
//!
//! - [`catalog`]: the runs of every out root, verified by the strict reader and cached by
//!   index digest plus member metadata (the cache's semantics are in its module doc);
//! - [`http`]: routes, the guard (host, bearer token in constant time, cross-site checks,
//!   body and time limits, security headers), the JSON API and its `ETag`s;
//! - [`pages`]: the server-rendered pages, in the review page's frame;
//! - `openapi.json`: the API's OpenAPI 3.1 document, served at `/v1/openapi.json`.
//!
//! The server: tokio (two workers) with hyper's HTTP/1 connections under a header-read
//! timeout, a bounded read buffer and a bounded number of connections; axum's router.
//! Bound to loopback by default; any other address needs `--token-file`, and then every
//! request needs the token. SIGTERM or SIGINT stops accepting, lets requests in flight
//! finish (up to [`DRAIN`]), stops the scanner and returns.

pub mod catalog;
pub mod http;
pub mod pages;

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::{Error, Result};

/// The OpenAPI document of `/v1/`.
pub const OPENAPI: &str = include_str!("openapi.json");

/// Connections served at once; more wait in the kernel's backlog.
pub const MAX_CONNECTIONS: usize = 512;

/// How long a client may take to send a request's headers.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest request head (request line and headers) read.
pub const MAX_HEAD_BYTES: usize = 16 * 1024;

/// How long requests in flight may take to finish after SIGTERM.
pub const DRAIN: Duration = Duration::from_secs(10);

/// What `serve` was asked for.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// The address to bind.
    pub bind: SocketAddr,
    /// The bearer token's file.
    pub token_file: Option<PathBuf>,
    /// What to serve.
    pub settings: catalog::Settings,
}

/// The server is listening.
#[derive(Debug, Clone)]
pub struct Started {
    /// `http://addr/`.
    pub url: String,
    /// The address bound (the port chosen when 0 was asked for).
    pub local: SocketAddr,
    /// Bound to loopback.
    pub loopback: bool,
    /// A token was configured.
    pub token: bool,
    /// Runs verified by the first scan.
    pub runs: usize,
    /// Roots that do not exist (yet).
    pub warnings: Vec<String>,
}

/// The server stopped.
#[derive(Debug, Clone)]
pub struct Stopped {
    /// The signal that stopped it.
    pub signal: &'static str,
}

/// Read the bearer token of `path`: one line of at least 16 printable characters, in a
/// file no one but its owner can read or write.
pub fn read_token(path: &std::path::Path) -> Result<Vec<u8>> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io_input("read token file", path, e))?;
    let mode = meta.permissions().mode();
    if mode & 0o077 != 0 {
        return Err(Error::input(
            path,
            format!(
                "is open to group or others (mode {:o}); a token file must be private",
                mode & 0o777
            ),
        )
        .with_hint(format!("chmod 600 {}", path.display())));
    }
    let text = crate::util::fsx::read_key_file(path, "a token file")?;
    let t = text.trim_end_matches(['\n', '\r']);
    if t.len() < 16 || t.len() > 4096 || !t.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Error::input(
            path,
            "does not hold a token: one line of 16 to 4096 printable characters without spaces",
        )
        .with_hint("e.g. `head -c 32 /dev/urandom | base64 > FILE; chmod 600 FILE`"));
    }
    Ok(t.as_bytes().to_vec())
}

/// Run the cockpit until SIGTERM or SIGINT. `on_ready` is told once it listens (after the
/// first scan of the out roots).
pub fn serve(
    cfg: &ServeConfig,
    on_ready: &mut dyn FnMut(&Started) -> Result<()>,
) -> Result<Stopped> {
    let loopback = cfg.bind.ip().is_loopback();
    if !loopback && cfg.token_file.is_none() {
        return Err(Error::usage(format!(
            "--bind {} is not a loopback address: pass --token-file FILE (every request then needs its bearer token)",
            cfg.bind
        ))
        .with_hint("bind 127.0.0.1 and reach it through an SSH tunnel, or give a token file"));
    }
    let token = cfg.token_file.as_deref().map(read_token).transpose()?;
    let s = &cfg.settings;
    let mut warnings = Vec::new();
    for (what, dirs) in [
        ("out root", &s.outs),
        ("packets directory", &s.packets),
        ("plans directory", &s.plans),
    ] {
        for d in dirs.iter().filter(|d| !d.is_dir()) {
            warnings.push(format!("{what} {} does not exist (yet)", d.display()));
        }
    }
    let catalog = Arc::new(catalog::Catalog::new(s.clone()));
    catalog.scan();
    let runs = catalog.snapshot().runs.len();
    let listener = std::net::TcpListener::bind(cfg.bind)
        .map_err(|e| Error::io_input("bind", std::path::Path::new(&cfg.bind.to_string()), e))?;
    listener.set_nonblocking(true).map_err(|e| {
        Error::io(
            "configure the listener",
            std::path::Path::new("<socket>"),
            e,
        )
    })?;
    let local = listener.local_addr().map_err(|e| {
        Error::io(
            "read the bound address",
            std::path::Path::new("<socket>"),
            e,
        )
    })?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(16)
        .enable_io()
        .enable_time()
        .build()
        .map_err(|e| Error::runner("cannot start the HTTP runtime").with_source(e))?;
    let app = Arc::new(http::App::new(Arc::clone(&catalog), token, local));
    let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
    let scanner = {
        let catalog = Arc::clone(&catalog);
        let every = s.rescan;
        std::thread::Builder::new()
            .name("nexusmon-scan".into())
            .spawn(move || {
                while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                    stop_rx.recv_timeout(every)
                {
                    catalog.scan();
                }
            })
            .map_err(|e| Error::runner("cannot start the scanner thread").with_source(e))?
    };
    on_ready(&Started {
        url: format!("http://{local}/"),
        local,
        loopback,
        token: app.token.is_some(),
        runs,
        warnings,
    })?;
    let signal = rt.block_on(accept_loop(listener, app));
    let _ = stop_tx.send(());
    let _ = scanner.join();
    signal
}

async fn accept_loop(listener: std::net::TcpListener, app: Arc<http::App>) -> Result<Stopped> {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use tokio::signal::unix::{SignalKind, signal};
    let listener = tokio::net::TcpListener::from_std(listener)
        .map_err(|e| Error::runner("cannot register the listener").with_source(e))?;
    let mut term = signal(SignalKind::terminate())
        .map_err(|e| Error::runner("cannot handle SIGTERM").with_source(e))?;
    let mut int = signal(SignalKind::interrupt())
        .map_err(|e| Error::runner("cannot handle SIGINT").with_source(e))?;
    let router = http::router(app);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let stopped_by = loop {
        let next = async {
            let permit = Arc::clone(&slots).acquire_owned().await;
            (permit, listener.accept().await)
        };
        tokio::select! {
            (permit, accepted) = next => {
                let (Ok(permit), Ok((stream, _))) = (permit, accepted) else {
                    // EMFILE and the like: back off instead of spinning.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let svc = hyper_util::service::TowerToHyperService::new(router.clone());
                let mut b = hyper::server::conn::http1::Builder::new();
                b.timer(TokioTimer::new())
                    .header_read_timeout(HEADER_TIMEOUT)
                    .max_buf_size(MAX_HEAD_BYTES)
                    .keep_alive(true);
                let conn = b.serve_connection(TokioIo::new(stream), svc);
                let watched = graceful.watch(conn);
                tokio::spawn(async move {
                    let _ = watched.await;
                    drop(permit);
                });
            }
            _ = term.recv() => break "SIGTERM",
            _ = int.recv() => break "SIGINT",
        }
    };
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(DRAIN) => {}
    }
    Ok(Stopped { signal: stopped_by })
}
