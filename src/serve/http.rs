//! The cockpit's HTTP surface: the routes, the guard every request passes (host, token,
//! cross-site checks, a deadline, security headers), the JSON API under `/v1/` and the
//! pages. Handlers gather data through the library (`govern`, `promote`, the catalog) on
//! the blocking pool, a bounded number at a time, and render it with [`super::pages`] or
//! as sorted JSON; every body carries an `ETag` (a digest of its bytes, or of the bundle
//! index and verdict it shows) and `If-None-Match` is answered with 304.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Path as UrlPath, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;
use serde_json::{Value, json};
use subtle::ConstantTimeEq;

use super::catalog::{Cached, Catalog, Run, RunRow, vault_items};
use super::pages;
use crate::govern::{self, Governance};
use crate::util::json as sjson;

/// Largest request body (an approval upload is a few KiB).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Largest bundle member served (each is read whole and hashed before it is sent).
pub const MAX_SERVED_MEMBER: u64 = 64 * 1024 * 1024;

/// Longest a request may take before it is answered 503.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Blocking jobs (bundle reads, gate evaluations, page renders) run at once.
pub const HEAVY_JOBS: usize = 4;

/// Default and largest page size of a list.
pub const DEFAULT_LIMIT: usize = 100;
/// Largest `limit`.
pub const MAX_LIMIT: usize = 1000;

/// The server's shared state.
pub struct App {
    /// The runs.
    pub catalog: Arc<Catalog>,
    /// The bearer token, when one was configured.
    pub token: Option<Vec<u8>>,
    /// The address bound.
    pub local: SocketAddr,
    /// Bound to a loopback address.
    pub loopback: bool,
    /// When the server started.
    pub started: Instant,
    /// The same, RFC 3339.
    pub started_at: String,
    heavy: tokio::sync::Semaphore,
    requests: AtomicU64,
    refused: AtomicU64,
    failed: AtomicU64,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("local", &self.local)
            .finish_non_exhaustive()
    }
}

impl App {
    /// The state for `catalog` served at `local`.
    pub fn new(catalog: Arc<Catalog>, token: Option<Vec<u8>>, local: SocketAddr) -> Self {
        Self {
            catalog,
            token,
            local,
            loopback: local.ip().is_loopback(),
            started: Instant::now(),
            started_at: crate::util::time::now_rfc3339(),
            heavy: tokio::sync::Semaphore::new(HEAVY_JOBS),
            requests: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            failed: AtomicU64::new(0),
        }
    }
}

type Shared = Arc<App>;

fn json_body<T: Serialize>(v: &T) -> Result<Cached, Fail> {
    let body = sjson::to_sorted_pretty(v).map_err(|e| Fail::internal(&e))?;
    Ok(Cached::new(body, "application/json"))
}

/// Every route.
pub fn router(app: Shared) -> Router {
    Router::new()
        .route("/", get(runs_page))
        .route("/runs/{id}", get(run_page))
        .route("/runs/{id}/files/{*path}", get(run_file))
        .route("/review", get(review_page))
        .route("/missions", get(missions_page))
        .route("/missions/{id}", get(mission_page))
        .route("/vault", get(vault_page))
        .route("/omens", get(omens_page))
        .route("/evolution", get(evolution_page))
        .route("/audit", get(audit_page))
        .route("/v1/openapi.json", get(openapi))
        .route("/v1/runs", get(api_runs))
        .route("/v1/runs/{id}", get(api_run))
        .route("/v1/missions", get(api_missions))
        .route("/v1/missions/{id}", get(api_mission))
        .route(
            "/v1/missions/{id}/approvals",
            axum::routing::post(api_upload),
        )
        .route("/v1/review", get(api_review))
        .route("/v1/vault/artifacts", get(api_vault))
        .route("/v1/omens", get(api_omens))
        .route("/v1/evolution", get(api_evolution))
        .route("/v1/system/health", get(api_health))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(from_fn_with_state(Arc::clone(&app), guard))
        .with_state(app)
}

// ---------------------------------------------------------------------------------------
// errors
// ---------------------------------------------------------------------------------------

/// A refused or failed request: its status, a stable code and a sentence.
#[derive(Debug, Clone)]
pub struct Fail {
    status: StatusCode,
    code: &'static str,
    message: String,
    extra: Option<Value>,
}

impl Fail {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            extra: None,
        }
    }

    fn internal(e: &crate::Error) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("{e}"),
        )
    }

    /// A library error about the project's files (a plan that does not load, a state
    /// directory that does not parse): the request was fine, the data is not.
    fn of(e: &crate::Error) -> Self {
        use crate::error::ErrorKind;
        let text = match e.hint() {
            Some(h) => format!("{e} (hint: {h})"),
            None => format!("{e}"),
        };
        match e.kind() {
            ErrorKind::Usage | ErrorKind::Findings => {
                Self::new(StatusCode::CONFLICT, "input-problem", text)
            }
            ErrorKind::Refused => Self::new(StatusCode::FORBIDDEN, "refused", text),
            _ => Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", text),
        }
    }

    /// A library error about the request's own values.
    fn bad(e: &crate::Error) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad-request", format!("{e}"))
    }

    fn into_response(self, api: bool) -> Response {
        let mut body = json!({
            "error": self.code,
            "message": self.message,
            "status": self.status.as_u16(),
        });
        if let Some(x) = self.extra {
            body["detail"] = x;
        }
        let mut r = if api {
            let bytes = sjson::to_sorted_pretty(&body).unwrap_or_default();
            (
                self.status,
                [(header::CONTENT_TYPE, "application/json")],
                bytes,
            )
                .into_response()
        } else {
            (
                self.status,
                [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
                pages::error_page(self.status.as_u16(), self.code, &self.message),
            )
                .into_response()
        };
        if self.status == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"nexusmon\""),
            );
        }
        r
    }
}

type Answer = Result<Cached, Fail>;

fn reply(headers: &HeaderMap, r: Answer, api: bool) -> Response {
    match r {
        Err(f) => f.into_response(api),
        Ok(c) => {
            let hit = headers
                .get(header::IF_NONE_MATCH)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.split(',').any(|t| t.trim() == c.etag || t.trim() == "*"));
            let mut r = if hit {
                StatusCode::NOT_MODIFIED.into_response()
            } else {
                (
                    StatusCode::OK,
                    [(header::CONTENT_TYPE, c.content_type)],
                    Body::from(c.body),
                )
                    .into_response()
            };
            if let Ok(v) = HeaderValue::from_str(&c.etag) {
                r.headers_mut().insert(header::ETAG, v);
            }
            r
        }
    }
}

async fn not_found(req: Request) -> Response {
    let api = req.uri().path().starts_with("/v1/");
    Fail::new(
        StatusCode::NOT_FOUND,
        "not-found",
        format!("nothing at {}", req.uri().path()),
    )
    .into_response(api)
}

/// Run `f` on the blocking pool, at most [`HEAVY_JOBS`] at once.
async fn heavy<T: Send + 'static>(
    app: &Shared,
    f: impl FnOnce() -> Result<T, Fail> + Send + 'static,
) -> Result<T, Fail> {
    let _permit = app.heavy.acquire().await.map_err(|_| {
        Fail::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting-down",
            "the server is shutting down",
        )
    })?;
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        Fail::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("a worker thread failed: {e}"),
        )
    })?
}

// ---------------------------------------------------------------------------------------
// the guard
// ---------------------------------------------------------------------------------------

fn bearer_ok(app: &App, headers: &HeaderMap) -> bool {
    let Some(token) = &app.token else {
        return false;
    };
    let Some(given) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return false;
    };
    // Constant time in the token's bytes (`subtle`); lengths differ only for a wrong token.
    given.len() == token.len() && bool::from(given.as_bytes().ct_eq(token))
}

/// Hosts a loopback server answers to (a DNS-rebinding page names another).
fn host_ok(app: &App, headers: &HeaderMap) -> bool {
    if !app.loopback {
        return true;
    }
    let Some(host) = headers.get(header::HOST).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let port = app.local.port();
    let allowed = [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        format!("[::1]:{port}"),
        app.local.to_string(),
    ];
    allowed.iter().any(|a| a.eq_ignore_ascii_case(host))
}

/// The origin of this server as a browser names it, for the cross-site check.
fn same_origin(headers: &HeaderMap, origin: &str) -> bool {
    headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|h| origin.eq_ignore_ascii_case(&format!("http://{h}")))
}

async fn guard(State(app): State<Shared>, req: Request, next: Next) -> Response {
    app.requests.fetch_add(1, Ordering::Relaxed);
    let api = req.uri().path().starts_with("/v1/");
    let headers = req.headers().clone();
    let refused = |f: Fail| {
        app.refused.fetch_add(1, Ordering::Relaxed);
        secure(f.into_response(api))
    };
    if !host_ok(&app, &headers) {
        return refused(Fail::new(
            StatusCode::MISDIRECTED_REQUEST,
            "wrong-host",
            "this server answers to its loopback address only (Host header)",
        ));
    }
    let reads = matches!(*req.method(), Method::GET | Method::HEAD);
    if (!app.loopback || !reads) && !bearer_ok(&app, &headers) {
        let msg = if app.token.is_none() {
            "this server was started without --token-file: requests that change state are disabled"
        } else if app.loopback {
            "requests that change state need `Authorization: Bearer <token>` (the --token-file), even on loopback"
        } else {
            "this server is bound beyond loopback: every request needs `Authorization: Bearer <token>`"
        };
        let status = if app.token.is_none() {
            StatusCode::FORBIDDEN
        } else {
            StatusCode::UNAUTHORIZED
        };
        return refused(Fail::new(status, "unauthorized", msg));
    }
    if !reads {
        // Cross-site requests: a browser sends its page's Origin; only this server's own is
        // accepted, and only JSON (which a cross-site form cannot send without a preflight,
        // which is never granted).
        if let Some(o) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok())
            && !same_origin(&headers, o)
        {
            return refused(Fail::new(
                StatusCode::FORBIDDEN,
                "cross-site",
                format!("requests from origin `{o}` are refused"),
            ));
        }
        if headers
            .get("sec-fetch-site")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|s| s != "same-origin" && s != "none")
        {
            return refused(Fail::new(
                StatusCode::FORBIDDEN,
                "cross-site",
                "cross-site requests are refused (Sec-Fetch-Site)",
            ));
        }
        let json_body = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
        if !json_body {
            return refused(Fail::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "not-json",
                "the body must be `Content-Type: application/json`",
            ));
        }
    }
    let r = match tokio::time::timeout(REQUEST_TIMEOUT, next.run(req)).await {
        Ok(r) => r,
        Err(_) => Fail::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "timeout",
            format!(
                "the request took longer than {} s",
                REQUEST_TIMEOUT.as_secs()
            ),
        )
        .into_response(api),
    };
    if r.status().is_server_error() {
        app.failed.fetch_add(1, Ordering::Relaxed);
    }
    secure(r)
}

/// Headers every response carries.
fn secure(mut r: Response) -> Response {
    let h = r.headers_mut();
    let set = |h: &mut HeaderMap, k: &'static str, v: &'static str| {
        h.insert(k, HeaderValue::from_static(v));
    };
    set(h, "x-content-type-options", "nosniff");
    set(h, "x-frame-options", "DENY");
    set(h, "referrer-policy", "no-referrer");
    set(h, "cross-origin-resource-policy", "same-origin");
    set(h, "cache-control", "no-cache");
    set(
        h,
        "content-security-policy",
        "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    );
    r
}

// ---------------------------------------------------------------------------------------
// ids, queries
// ---------------------------------------------------------------------------------------

/// A run id in a URL: a bundle directory name (with `~N` for a duplicate), never a path.
fn check_run_id(id: &str) -> Result<(), Fail> {
    let base = id.split_once('~').map_or(id, |(b, n)| {
        if n.is_empty() || !n.bytes().all(|c| c.is_ascii_digit()) {
            "."
        } else {
            b
        }
    });
    crate::bundle::validate_run_id(base).map_err(|_| {
        Fail::new(
            StatusCode::BAD_REQUEST,
            "invalid-id",
            format!("`{}` is not a run id", pages::clip(id)),
        )
    })
}

/// A plan id in a URL.
fn check_plan_id(id: &str) -> Result<(), Fail> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && !id.starts_with(['.', '-'])
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(Fail::new(
            StatusCode::BAD_REQUEST,
            "invalid-id",
            format!("`{}` is not a plan id", pages::clip(id)),
        ))
    }
}

/// A bundle member path in a URL: relative, `/`-separated, no `.`/`..`/empty segment.
fn check_member(path: &str) -> Result<(), Fail> {
    let bad = path.is_empty()
        || path.len() > 1024
        || path.starts_with('/')
        || path.contains(['\\', '\0'])
        || path
            .split('/')
            .any(|s| s.is_empty() || s == "." || s == "..");
    if bad {
        return Err(Fail::new(
            StatusCode::BAD_REQUEST,
            "invalid-path",
            format!("`{}` is not a bundle member path", pages::clip(path)),
        ));
    }
    Ok(())
}

/// `limit` and `after` of a list.
#[derive(Debug, Clone)]
struct Paging {
    limit: usize,
    after: Option<String>,
}

fn paging(q: &HashMap<String, String>) -> Result<Paging, Fail> {
    let limit = match q.get("limit") {
        None => DEFAULT_LIMIT,
        Some(s) => s
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| {
                Fail::new(
                    StatusCode::BAD_REQUEST,
                    "invalid-limit",
                    format!("limit must be 1 to {MAX_LIMIT}"),
                )
            })?,
    };
    let after = q.get("after").cloned();
    if after.as_ref().is_some_and(|a| a.len() > 512) {
        return Err(Fail::new(
            StatusCode::BAD_REQUEST,
            "invalid-cursor",
            "the cursor is too long",
        ));
    }
    Ok(Paging { limit, after })
}

/// One page of `items` (already in their stable order, keyed by `key`): those after the
/// cursor, at most `limit`, and the cursor of the next page.
fn page_of<T: Clone>(
    items: &[T],
    key: impl Fn(&T) -> String,
    p: &Paging,
) -> (Vec<T>, Option<String>) {
    let start = match &p.after {
        None => 0,
        Some(a) => items
            .iter()
            .position(|x| key(x) == *a)
            .map_or(items.len(), |i| i + 1),
    };
    let rest = &items[start.min(items.len())..];
    let page: Vec<T> = rest.iter().take(p.limit).cloned().collect();
    let next = (rest.len() > p.limit)
        .then(|| page.last().map(&key))
        .flatten();
    (page, next)
}

fn gov(app: &App) -> Result<Governance, Fail> {
    Governance::discover(
        app.catalog.settings.state_dir.as_deref(),
        &app.catalog.settings.root,
    )
    .map_err(|e| Fail::new(StatusCode::SERVICE_UNAVAILABLE, "no-state", format!("{e}")))
}

// ---------------------------------------------------------------------------------------
// runs
// ---------------------------------------------------------------------------------------

async fn runs_page(State(app): State<Shared>, headers: HeaderMap) -> Response {
    let snap = app.catalog.snapshot();
    let html = pages::runs(&snap, &app.catalog.settings);
    reply(&headers, Ok(Cached::html(html)), false)
}

async fn api_runs(
    State(app): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let r = (|| {
        let p = paging(&q)?;
        let snap = app.catalog.snapshot();
        let rows: Vec<RunRow> = snap.runs.iter().map(|r| r.row.clone()).collect();
        let (items, next) = page_of(&rows, |r| r.id.clone(), &p);
        json_body(&json!({
            "api": "nexusmon/v1",
            "scanned_at": snap.scanned_at,
            "total": rows.len(),
            "items": items,
            "next": next,
        }))
    })();
    reply(&headers, r, true)
}

fn find_run(app: &App, id: &str) -> Result<Arc<Run>, Fail> {
    check_run_id(id)?;
    app.catalog.snapshot().get(id).cloned().ok_or_else(|| {
        Fail::new(
            StatusCode::NOT_FOUND,
            "unknown-run",
            format!("no run `{id}` in the cockpit's out roots"),
        )
    })
}

async fn run_page(
    State(app): State<Shared>,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
) -> Response {
    let run = match find_run(&app, &id) {
        Ok(r) => r,
        Err(f) => return f.into_response(false),
    };
    let a = Arc::clone(&app);
    let r = heavy(&app, move || {
        let Some(entry) = a.catalog.view(&run) else {
            return Ok(Cached::html(pages::run_unavailable(&run.row)));
        };
        Ok(entry
            .page
            .get_or_init(|| Cached::html(pages::run(&run.row, &entry.view)))
            .clone())
    })
    .await;
    reply(&headers, r, false)
}

async fn run_file(
    State(app): State<Shared>,
    headers: HeaderMap,
    UrlPath((id, path)): UrlPath<(String, String)>,
) -> Response {
    let r = async {
        check_member(&path)?;
        let run = find_run(&app, &id)?;
        if !run.row.valid {
            return Err(Fail::new(
                StatusCode::CONFLICT,
                "bundle-not-valid",
                format!(
                    "run `{id}` does not verify against its seal; its files are not served as evidence (`nexusmon validate-bundle --bundle {}` lists why)",
                    run.row.bundle
                ),
            ));
        }
        let src = run.src.clone().ok_or_else(|| {
            Fail::new(StatusCode::CONFLICT, "bundle-not-valid", "the bundle could not be read")
        })?;
        // Served from memory: a member too large to hold is refused, not streamed unverified.
        let size = src
            .index
            .as_ref()
            .and_then(|i| i.entries.iter().find(|e| e.path == path))
            .map_or(0, |e| e.size);
        if size > MAX_SERVED_MEMBER {
            return Err(Fail::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "member-too-large",
                format!(
                    "`{}` is {size} bytes; the cockpit serves members up to {MAX_SERVED_MEMBER} bytes (read it from the bundle with `nexusmon validate-bundle` first)",
                    pages::clip(&path)
                ),
            ));
        }
        let p = path.clone();
        heavy(&app, move || {
            // The strict reader: an indexed member only, hashed again as it is read.
            match src.read(&p) {
                Ok(Some(bytes)) => Ok(Cached::new(bytes, "text/plain; charset=utf-8")),
                Ok(None) => Err(Fail::new(
                    StatusCode::NOT_FOUND,
                    "not-a-member",
                    format!("`{}` is not a file of this bundle's index", pages::clip(&p)),
                )),
                Err(e) => Err(Fail::new(
                    StatusCode::CONFLICT,
                    "member-changed",
                    format!("{e}"),
                )),
            }
        })
        .await
    }
    .await;
    reply(&headers, r, false)
}

async fn api_run(
    State(app): State<Shared>,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let r = async {
        let p = paging(&q)?;
        let run = find_run(&app, &id)?;
        let a = Arc::clone(&app);
        heavy(&app, move || {
            let entry = a.catalog.view(&run);
            let mut out = json!({
                "api": "nexusmon/v1",
                "run": run.row,
            });
            if let Some(e) = entry {
                let v = &e.view;
                let rows: Vec<&crate::model::results::NormalizedRow> = e.rows_for_review();
                let (items, next) = page_of(&rows, |r| r.scenario_id.clone(), &p);
                out["verdict"] = serde_json::to_value(&v.verdict).unwrap_or_default();
                out["summary"] = serde_json::to_value(&v.summary).unwrap_or_default();
                out["governance"] = serde_json::to_value(v.governance()).unwrap_or_default();
                out["promotability"] = v.packet.as_ref().map_or(Value::Null, |p| {
                    serde_json::to_value(&p.promotability).unwrap_or_default()
                });
                // The mismatch packets of this page's scenarios (the list is paged with them).
                let shown: std::collections::BTreeSet<&str> =
                    items.iter().map(|r| r.scenario_id.as_str()).collect();
                let mismatches: Vec<&crate::model::results::MismatchPacket> = v
                    .mismatches
                    .iter()
                    .filter(|m| shown.contains(m.scenario_id.as_str()))
                    .collect();
                out["mismatches"] = serde_json::to_value(&mismatches).unwrap_or_default();
                out["preflight"] = serde_json::to_value(&v.preflight).unwrap_or_default();
                out["unreadable"] = serde_json::to_value(&v.unreadable).unwrap_or_default();
                out["scenarios"] = json!({
                    "total": rows.len(),
                    "items": items,
                    "next": next,
                });
            }
            if let Some(a) = &run.artifacts {
                out["artifacts"] = serde_json::to_value(a).unwrap_or_default();
            }
            json_body(&out)
        })
        .await
    }
    .await;
    reply(&headers, r, true)
}

// ---------------------------------------------------------------------------------------
// review, missions
// ---------------------------------------------------------------------------------------

fn review_items(app: &App) -> Result<Vec<govern::review::ReviewItem>, Fail> {
    let s = &app.catalog.settings;
    govern::review::queue(
        s.state_dir.as_deref(),
        &s.root,
        &s.root,
        &s.plans,
        &s.packets,
        jiff::Timestamp::now(),
    )
    .map_err(|e| Fail::of(&e))
}

async fn review_page(State(app): State<Shared>, headers: HeaderMap) -> Response {
    let a = Arc::clone(&app);
    let r = heavy(&app, move || {
        let items = review_items(&a)?;
        let snap = a.catalog.snapshot();
        Ok(Cached::html(pages::review(&items, &snap)))
    })
    .await;
    reply(&headers, r, false)
}

async fn api_review(
    State(app): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let a = Arc::clone(&app);
    let r = heavy(&app, move || {
        let p = paging(&q)?;
        let items = review_items(&a)?;
        let (page, next) = page_of(&items, |i| i.id.clone(), &p);
        // A packet's item with the listed bundles of its run (their state).
        let snap = a.catalog.snapshot();
        let page: Vec<Value> = page
            .iter()
            .map(|i| {
                let mut v = serde_json::to_value(i).unwrap_or_default();
                v["bundles"] = json!(
                    i.id.strip_prefix("packet:")
                        .map(|r| snap.bundles_of(r))
                        .unwrap_or_default()
                );
                v
            })
            .collect();
        json_body(&json!({"api": "nexusmon/v1", "total": items.len(), "items": page, "next": next}))
    })
    .await;
    reply(&headers, r, true)
}

fn mission_rows(app: &App) -> Result<Vec<govern::missions::MissionRow>, Fail> {
    let s = &app.catalog.settings;
    let roots: Vec<PathBuf> = s.plans.iter().filter(|p| p.exists()).cloned().collect();
    govern::missions::overview(
        s.state_dir.as_deref(),
        &s.root,
        &roots,
        &s.outs,
        jiff::Timestamp::now(),
    )
    .map_err(|e| Fail::of(&e))
}

async fn missions_page(State(app): State<Shared>, headers: HeaderMap) -> Response {
    let a = Arc::clone(&app);
    let r = heavy(&app, move || {
        Ok(Cached::html(pages::missions(&mission_rows(&a)?)))
    })
    .await;
    reply(&headers, r, false)
}

async fn api_missions(
    State(app): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let a = Arc::clone(&app);
    let r = heavy(&app, move || {
        let p = paging(&q)?;
        let rows = mission_rows(&a)?;
        // In plan-file order; the cursor is the plan file.
        let (page, next) = page_of(&rows, |m| m.path.display().to_string(), &p);
        json_body(&json!({"api": "nexusmon/v1", "total": rows.len(), "items": page, "next": next}))
    })
    .await;
    reply(&headers, r, true)
}

/// The loaded plan of mission `id` (looked up among the listed missions, never by path).
fn mission_plan(app: &App, id: &str) -> Result<crate::load::LoadedPlan, Fail> {
    check_plan_id(id)?;
    let rows = mission_rows(app)?;
    let row = rows
        .iter()
        .find(|r| r.plan_id.as_deref() == Some(id))
        .ok_or_else(|| {
            Fail::new(
                StatusCode::NOT_FOUND,
                "unknown-mission",
                format!("no mission `{id}` under the cockpit's plan directories"),
            )
        })?;
    crate::load::load_plan(&row.path).map_err(|e| Fail::of(&e))
}

/// The approval to sign, when the query asks for one (`approver`, `expires_in`, `uses`).
fn to_sign(
    app: &App,
    plan: &crate::load::LoadedPlan,
    q: &HashMap<String, String>,
) -> Result<Option<Value>, Fail> {
    let Some(approver) = q.get("approver").filter(|a| !a.is_empty()) else {
        return Ok(None);
    };
    let validity = q
        .get("expires_in")
        .filter(|s| !s.is_empty())
        .map_or("24h", String::as_str);
    let uses = match q.get("uses").filter(|s| !s.is_empty()) {
        None => None,
        Some(u) => Some(u.parse::<u32>().map_err(|_| {
            Fail::new(
                StatusCode::BAD_REQUEST,
                "invalid-uses",
                "uses must be a positive number",
            )
        })?),
    };
    let t = govern::cockpit::approval_to_sign(
        plan,
        approver,
        validity,
        uses,
        &app.catalog.settings.root,
        jiff::Timestamp::now(),
    )
    .map_err(|e| Fail::bad(&e))?;
    let origin = format!("http://{}", app.local);
    Ok(Some(json!({
        "record": t.record,
        "file_name": t.file_name,
        "sign_command": format!(
            "ssh-keygen -Y sign -f <key> -n {} {}",
            crate::model::approval::SIGNATURE_NAMESPACE,
            t.file_name
        ),
        "upload_command": format!(
            "python3 -c 'import json,sys; print(json.dumps({{\"record\": open(sys.argv[1]).read(), \"signature\": open(sys.argv[1]+\".sig\").read()}}))' {f} | curl -sS -H \"Authorization: Bearer $(cat <token-file>)\" -H 'Content-Type: application/json' --data-binary @- {origin}/v1/missions/{id}/approvals",
            f = t.file_name,
            id = plan.plan.plan_id
        ),
    })))
}

async fn mission_page(
    State(app): State<Shared>,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let a = Arc::clone(&app);
    let r = heavy(&app, move || {
        let plan = mission_plan(&a, &id)?;
        let g = gov(&a)?;
        let d = govern::cockpit::mission_detail(&g, &plan, jiff::Timestamp::now())
            .map_err(|e| Fail::of(&e))?;
        let sign = to_sign(&a, &plan, &q)?;
        Ok(Cached::html(pages::mission(&d, sign.as_ref(), &q)))
    })
    .await;
    reply(&headers, r, false)
}

async fn api_mission(
    State(app): State<Shared>,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let a = Arc::clone(&app);
    let r = heavy(&app, move || {
        let plan = mission_plan(&a, &id)?;
        let g = gov(&a)?;
        let d = govern::cockpit::mission_detail(&g, &plan, jiff::Timestamp::now())
            .map_err(|e| Fail::of(&e))?;
        let mut out = json!({"api": "nexusmon/v1", "mission": d});
        if let Some(s) = to_sign(&a, &plan, &q)? {
            out["to_sign"] = s;
        }
        json_body(&out)
    })
    .await;
    reply(&headers, r, true)
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct UploadBody {
    record: String,
    signature: String,
}

async fn api_upload(
    State(app): State<Shared>,
    UrlPath(id): UrlPath<String>,
    body: Bytes,
) -> Response {
    let shared = Arc::clone(&app);
    let r = heavy(&app, move || {
        let upload: UploadBody = serde_json::from_slice(&body).map_err(|e| {
            Fail::new(
                StatusCode::BAD_REQUEST,
                "bad-request",
                format!("the body is not {{\"record\": string, \"signature\": string}}: {e}"),
            )
        })?;
        let plan = mission_plan(&shared, &id)?;
        let state = gov(&shared)?;
        let done = govern::cockpit::upload_approval(
            &state,
            &plan,
            upload.record.as_bytes(),
            upload.signature.as_bytes(),
            jiff::Timestamp::now(),
        )
        .map_err(|e| Fail::of(&e))?;
        match done {
            govern::cockpit::Upload::Refused(r) => {
                let mut f = Fail::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "approval-refused",
                    format!("the approval does not count: {}: {}", r.reason, r.detail),
                );
                f.extra = Some(json!({"reason": r.reason, "detail": r.detail}));
                Err(f)
            }
            govern::cockpit::Upload::Accepted(x) => Ok(*x),
        }
    })
    .await;
    match r {
        Err(f) => f.into_response(true),
        Ok(x) => {
            let body = json!({
                "api": "nexusmon/v1",
                "accepted": true,
                "record": x.record.display().to_string(),
                "signature": x.signature.display().to_string(),
                "approver": x.approver,
                "key_fingerprint": x.key_fingerprint,
                "expires_at": x.expires_at,
                "uses": x.uses,
                "audit_head": x.audit_head,
                "runnable": x.decision.allows(),
                "decision": x.decision,
            });
            let bytes = sjson::to_sorted_pretty(&body).unwrap_or_default();
            (
                StatusCode::CREATED,
                [(header::CONTENT_TYPE, "application/json")],
                bytes,
            )
                .into_response()
        }
    }
}

// ---------------------------------------------------------------------------------------
// vault, omens, evolution, audit, health
// ---------------------------------------------------------------------------------------

async fn vault_page(State(app): State<Shared>, headers: HeaderMap) -> Response {
    let snap = app.catalog.snapshot();
    let html = pages::vault(&vault_items(&app.catalog.snapshot()), &snap);
    reply(&headers, Ok(Cached::html(html)), false)
}

async fn api_vault(
    State(app): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let r = (|| {
        let p = paging(&q)?;
        let items = vault_items(&app.catalog.snapshot());
        let (page, next) = page_of(&items, |i| i.id.clone(), &p);
        json_body(&json!({
            "api": "nexusmon/v1",
            "total": items.len(),
            "items": page,
            "next": next,
        }))
    })();
    reply(&headers, r, true)
}

fn omens_value(app: &App) -> Result<Value, Fail> {
    let s = &app.catalog.settings;
    let rows = govern::clearing::sorted_omens(s.state_dir.as_deref(), &s.root)
        .map_err(|e| Fail::of(&e))?;
    let snap = app.catalog.snapshot();
    Ok(json!({
        "api": "nexusmon/v1",
        "items": rows.iter().map(|(fp, o)| json!({
            "fingerprint": fp,
            "level": govern::omens::level(o).as_str(),
            "count": govern::omens::effective(o),
            "total": o.count,
            "plan_id": o.plan_id,
            "scenario_id": o.scenario_id,
            "mismatch_kind": o.mismatch_kind,
            "outcome": o.outcome,
            "first_seen": o.first_seen,
            "last_seen": o.last_seen,
            "last_run_id": o.last_run_id,
            "bundles": o.last_run_id.as_deref().map(|r| snap.bundles_of(r)).unwrap_or_default(),
            "clearances": o.clearances,
        })).collect::<Vec<_>>(),
    }))
}

async fn omens_page(State(app): State<Shared>, headers: HeaderMap) -> Response {
    let a = Arc::clone(&app);
    let r = heavy(&app, move || {
        Ok(Cached::html(pages::omens(
            &omens_value(&a)?,
            &a.catalog.snapshot(),
        )))
    })
    .await;
    reply(&headers, r, false)
}

async fn api_omens(
    State(app): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let a = Arc::clone(&app);
    let r = heavy(&app, move || {
        let p = paging(&q)?;
        let mut v = omens_value(&a)?;
        let items = v["items"].as_array().cloned().unwrap_or_default();
        let (page, next) = page_of(
            &items,
            |o| o["fingerprint"].as_str().unwrap_or("").to_string(),
            &p,
        );
        v["total"] = json!(items.len());
        v["items"] = json!(page);
        v["next"] = json!(next);
        json_body(&v)
    })
    .await;
    reply(&headers, r, true)
}

fn evolution_value(app: &App) -> Result<Value, Fail> {
    let s = &app.catalog.settings;
    let (state, next) =
        govern::evolve::status(s.state_dir.as_deref(), &s.root).map_err(|e| Fail::of(&e))?;
    let levels: Vec<Value> = govern::evolution::LEVELS
        .iter()
        .map(|(l, xp)| {
            json!({
                "level": l,
                "xp": xp,
                "unlocks": govern::evolution::unlocks(*l),
                "reached": state.xp >= *xp,
            })
        })
        .collect();
    // Each packet that earned a capability with the listed bundles of its run (their state).
    let snap = app.catalog.snapshot();
    let mut held =
        serde_json::to_value(govern::evolution::held_because(&state)).unwrap_or_default();
    for e in held
        .as_array_mut()
        .into_iter()
        .flatten()
        .filter_map(|h| h.get_mut("earned_by").and_then(Value::as_array_mut))
        .flatten()
    {
        let run = e
            .get("run_id")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        e["bundles"] = json!(snap.bundles_of(&run));
    }
    Ok(json!({
        "api": "nexusmon/v1",
        "state": state,
        "next_level": next.map(|(l, t)| json!({"level": l, "xp": t})),
        "levels": levels,
        "held_because": held,
    }))
}

async fn evolution_page(State(app): State<Shared>, headers: HeaderMap) -> Response {
    let a = Arc::clone(&app);
    let r = heavy(&app, move || {
        Ok(Cached::html(pages::evolution(
            &evolution_value(&a)?,
            &a.catalog.snapshot(),
        )))
    })
    .await;
    reply(&headers, r, false)
}

async fn api_evolution(State(app): State<Shared>, headers: HeaderMap) -> Response {
    let a = Arc::clone(&app);
    let r = heavy(&app, move || json_body(&evolution_value(&a)?)).await;
    reply(&headers, r, true)
}

async fn audit_page(
    State(app): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let a = Arc::clone(&app);
    let r = heavy(&app, move || {
        let p = paging(&q)?;
        let g = gov(&a)?;
        let (report, mut entries) = govern::cockpit::audit_log(&g).map_err(|e| Fail::of(&e))?;
        entries.reverse();
        let (page, next) = page_of(&entries, |e| e.seq.to_string(), &p);
        Ok(Cached::html(pages::audit(
            &report,
            &page,
            next.as_deref(),
            entries.len(),
        )))
    })
    .await;
    reply(&headers, r, false)
}

async fn api_health(State(app): State<Shared>, headers: HeaderMap) -> Response {
    let a = Arc::clone(&app);
    let r = heavy(&app, move || {
        let snap = a.catalog.snapshot();
        let s = &a.catalog.settings;
        let outs: Vec<Value> = s
            .outs
            .iter()
            .map(|o| {
                crate::bundle::out_root_state(o).map_or_else(
                    |e| json!({"path": o.display().to_string(), "error": e.to_string()}),
                    |st| serde_json::to_value(st).unwrap_or_default(),
                )
            })
            .collect();
        let mut states: BTreeMap<String, u64> = BTreeMap::new();
        for r in &snap.runs {
            *states.entry(r.row.state.clone()).or_default() += 1;
        }
        json_body(&json!({
            "api": "nexusmon/v1",
            "status": if snap.gov_error.is_some() { "degraded" } else { "ok" },
            "version": crate::VERSION,
            "host": crate::sandbox::host::host_facts(),
            "out_roots": outs,
            "server": {
                "bind": a.local.to_string(),
                "loopback": a.loopback,
                "token": a.token.is_some(),
                "started_at": a.started_at,
                "uptime_s": a.started.elapsed().as_secs(),
                "requests": a.requests.load(Ordering::Relaxed),
                "refused": a.refused.load(Ordering::Relaxed),
                "server_errors": a.failed.load(Ordering::Relaxed),
                "scans": snap.scans,
                "scanned_at": snap.scanned_at,
                "runs": snap.runs.len(),
                "run_states": states,
                "rescan_ms": u64::try_from(s.rescan.as_millis()).unwrap_or(u64::MAX),
                "reverify_s": s.reverify.as_secs(),
                "state_dir": snap.state_dir.as_ref().map(|d| d.display().to_string()),
                "governance_error": snap.gov_error,
                "max_body_bytes": MAX_BODY_BYTES,
                "request_timeout_s": REQUEST_TIMEOUT.as_secs(),
            },
        }))
    })
    .await;
    reply(&headers, r, true)
}

async fn openapi(headers: HeaderMap) -> Response {
    reply(
        &headers,
        Ok(Cached::new(
            super::OPENAPI.as_bytes().to_vec(),
            "application/json",
        )),
        true,
    )
}
