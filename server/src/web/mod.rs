//! The dashboard server: the Leptos app (server-rendered, hydrated), its static files, `/healthz` and the
//! theme switch, behind request logging.
//!
//! [`router`] builds the whole axum application from an [`AppState`], so tests drive it without a socket
//! (`tower::ServiceExt::oneshot`); [`serve`] opens the database (or a demo one), checks the bind address is
//! safe and serves until Ctrl-C or SIGTERM.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::extract::{FromRef, Query, Request, State};
use axum::handler::Handler;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use flowstate_app::model::Settings;
use flowstate_app::theme::Theme;
use flowstate_app::{shell, App};
use flowstate_model::url::header_safe_path;
use flowstate_store::{ListQuery, Store, StoreError, StoreOptions};
use leptos::config::LeptosOptions;
use leptos::nonce::Nonce;
use leptos::prelude::{provide_context, use_context};
use leptos_axum::{generate_route_list, render_app_async_with_context, LeptosRoutes};
use serde::Deserialize;
use tower::ServiceExt;
use tower_http::compression::{CompressionLayer, CompressionLevel};
use tower_http::services::ServeDir;
use tower_http::trace::{DefaultMakeSpan, DefaultOnResponse, TraceLayer};

use self::security::{PublicUrl, Security};

pub mod api;
pub mod cache;
pub mod headers;
pub mod security;
pub mod site;

pub use site::Site;

/// The address `serve` binds when none is given: loopback only.
pub const DEFAULT_BIND: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 3000);

/// Runs in the database `--demo` creates.
pub const DEMO_RUNS: usize = 5000;

/// The demo generator's seed: the same demo every time.
pub const DEMO_SEED: u64 = 42;

/// The environment variable naming a folder to serve the site (`pkg/`, CSS, favicon) from instead of the copy
/// inside the binary; see [`default_site`].
pub const SITE_ROOT_ENV: &str = "FLOWSTATE_SITE_ROOT";

/// The environment variable holding the admin token (never a command-line flag: secrets stay out of `ps`).
pub const ADMIN_TOKEN_ENV: &str = "FLOWSTATE_ADMIN_TOKEN";

/// The environment variable of `--public-url` (comma-separated).
pub const PUBLIC_URL_ENV: &str = "FLOWSTATE_PUBLIC_URL";

/// How to serve the dashboard.
#[derive(Clone)]
pub struct ServeConfig {
    /// The database file. Required unless `demo`.
    pub db: Option<PathBuf>,
    /// Where to listen (default [`DEFAULT_BIND`]).
    pub bind: SocketAddr,
    /// Refuse every change; the database is opened read-only.
    pub read_only: bool,
    /// Serve a fresh demo database in a temporary directory instead of `db`.
    pub demo: bool,
    /// Create the SQLite file `db` names when it does not exist (`--create`). Without it, a missing file is an
    /// error, as for the reading commands: a mistyped path never becomes a new, empty database.
    pub create: bool,
    /// A folder to serve the site from; `None` means [`default_site`] (the copy inside the binary).
    pub site_root: Option<PathBuf>,
    /// The admin token, when one is configured (see [`admin_token_from_env`]).
    pub admin_token: Option<String>,
    /// How long a rendered page is answered again ([`cache`]); zero: never.
    pub page_cache: std::time::Duration,
    /// The URLs operators reach the dashboard at besides this machine's names (`--public-url`): requests naming
    /// another host are refused ([`security::origin`]). Required for a bind other machines can reach.
    pub public_urls: Vec<PublicUrl>,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            db: None,
            bind: DEFAULT_BIND,
            read_only: false,
            demo: false,
            create: false,
            site_root: None,
            admin_token: None,
            page_cache: cache::DEFAULT_MAX_AGE,
            public_urls: Vec::new(),
        }
    }
}

impl fmt::Debug for ServeConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServeConfig")
            .field("db", &self.db)
            .field("bind", &self.bind)
            .field("read_only", &self.read_only)
            .field("demo", &self.demo)
            .field("create", &self.create)
            .field("site_root", &self.site_root)
            .field("admin_token", &self.admin_token.as_ref().map(|_| "<redacted>"))
            .field("page_cache", &self.page_cache)
            .field("public_urls", &self.public_urls)
            .finish()
    }
}

/// The admin token from `FLOWSTATE_ADMIN_TOKEN`; unset or blank means none.
pub fn admin_token_from_env() -> Option<String> {
    std::env::var(ADMIN_TOKEN_ENV)
        .ok()
        .filter(|t| !t.trim().is_empty())
}

/// Why `serve` could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// A non-loopback address without `--read-only` or an admin token would let anyone on the network delete runs.
    #[error(
        "refusing to listen on {0}: it is reachable from other machines and changes would need no login; \
         use a loopback address (127.0.0.1), add --read-only, or set {ADMIN_TOKEN_ENV}"
    )]
    UnsafeBind(SocketAddr),
    /// A non-loopback address without `--public-url`: the `Host` check would refuse every other machine.
    #[error(
        "refusing to listen on {0} without --public-url: requests are answered only when they name this machine \
         or a public URL (so a site re-pointed at this server, DNS rebinding, is refused); say how operators reach \
         the dashboard, e.g. --public-url https://flowstate.example.com (repeatable, or comma-separated in \
         {PUBLIC_URL_ENV})"
    )]
    NoPublicUrl(SocketAddr),
    /// Neither `--db` nor `--demo`.
    #[error("no database given: pass --db PATH, set FLOWSTATE_DB, or use --demo")]
    NoDatabase,
    /// The database could not be opened (or the demo written).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A file or socket problem.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The operating system's reason.
        #[source]
        source: std::io::Error,
    },
}

impl ServeError {
    /// True when the operator's arguments are at fault (as opposed to the machine or the database).
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            ServeError::UnsafeBind(_) | ServeError::NoPublicUrl(_) | ServeError::NoDatabase
        ) || matches!(self, ServeError::Store(e) if e.is_user_error())
    }
}

/// Everything a request handler needs. Cheap to clone.
#[derive(Clone, Debug)]
pub struct AppState {
    /// How the hydration script is named (and where Leptos believes the site is).
    pub leptos_options: LeptosOptions,
    /// Where the static files come from: the binary's own copy or a folder.
    pub site: Site,
    /// The database.
    pub store: Store,
    /// How the dashboard was started, as pages see it.
    pub settings: Settings,
    /// The HTTP security: mode, admin token, bound address, public URLs, sessions (see [`security`]).
    pub security: Arc<Security>,
    /// Rendered pages answered again for a short while ([`cache`]).
    pub page_cache: Arc<cache::PageCache>,
}

impl FromRef<AppState> for LeptosOptions {
    fn from_ref(state: &AppState) -> Self {
        state.leptos_options.clone()
    }
}

impl AppState {
    /// A state serving `store` with the static files of `site` (a folder, or [`Site::Embedded`]; see
    /// [`default_site`]). `addr` is also what the guards check: without an admin token, changes are allowed on
    /// loopback only.
    pub fn new(store: Store, settings: Settings, site: impl Into<Site>, addr: SocketAddr) -> Self {
        let site = site.into();
        let security = Arc::new(Security::new(settings.read_only, addr, None, Vec::new()));
        AppState {
            leptos_options: leptos_options(&site, addr),
            site,
            store,
            settings,
            security,
            page_cache: Arc::new(cache::PageCache::default()),
        }
    }

    /// The same state answering rendered pages again for `max_age` ([`cache`]; zero: never).
    pub fn with_page_cache(mut self, max_age: std::time::Duration) -> Self {
        self.page_cache = Arc::new(cache::PageCache::new(max_age));
        self
    }

    /// The same state with an admin token (none when `None` or blank): changes then need a login with it.
    pub fn with_admin_token(mut self, token: Option<&str>) -> Self {
        let public_urls = self.security.public_urls().to_vec();
        self.security = Arc::new(Security::new(
            self.settings.read_only,
            self.security.bind(),
            token,
            public_urls,
        ));
        self.settings.admin_token_configured = self.security.token_required();
        self
    }

    /// The same state answering requests for `urls` too (`--public-url`), besides this machine's own names.
    /// Call it before [`AppState::with_admin_token`] or after: the token is kept (sessions are not).
    pub fn with_public_urls(mut self, urls: Vec<PublicUrl>) -> Self {
        self.security = Arc::new(self.security.with_public_urls(urls));
        self
    }
}

/// Leptos's options for this site: output name `flowstate` (so `/pkg/flowstate.js` and
/// `/pkg/flowstate_bg.wasm`, as `scripts/build-site.sh` writes them), the site root and the address. Leptos
/// reads no file of the site itself (the router serves them), so an embedded site keeps Leptos's default root.
pub fn leptos_options(site: &Site, addr: SocketAddr) -> LeptosOptions {
    let builder = LeptosOptions::builder()
        .output_name("flowstate")
        .site_pkg_dir("pkg")
        .site_addr(addr);
    match site {
        Site::Dir(root) => builder.site_root(root.to_string_lossy().into_owned()).build(),
        Site::Embedded => builder.build(),
    }
}

/// The site `serve` uses when given no folder: `FLOWSTATE_SITE_ROOT` when set; else the copy inside this
/// binary ([`site`]) when the binary was built with the browser bundle; else (a binary built before the site was)
/// [`default_site_root`].
pub fn default_site() -> Site {
    if let Some(dir) = std::env::var_os(SITE_ROOT_ENV).filter(|d| !d.is_empty()) {
        return Site::Dir(PathBuf::from(dir));
    }
    if site::embedded_has_bundle() {
        return Site::Embedded;
    }
    Site::Dir(default_site_root())
}

/// A folder with the built site: `FLOWSTATE_SITE_ROOT` when set, else `<workspace>/target/site` as it was when
/// this binary was compiled (where `scripts/build-site.sh` writes it).
pub fn default_site_root() -> PathBuf {
    if let Some(dir) = std::env::var_os(SITE_ROOT_ENV).filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let compiled = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("target")
        .join("site");
    compiled.canonicalize().unwrap_or(compiled)
}

/// The whole application: Leptos pages and server functions (with the store in their context), static files,
/// `/healthz`, `/theme`, request logs and the security headers of [`headers`] on every response. Unknown paths
/// get the 404 page.
pub fn router(state: AppState) -> Router {
    let context = {
        let store = state.store.clone();
        let settings = state.settings.clone();
        let security = state.security.handle();
        move || {
            provide_context(store.clone());
            provide_context(settings.clone());
            provide_context(security.clone());
            // The nonce the header layer names in this response's CSP: Leptos writes it on its inline scripts
            // (it replaces the one leptos_axum made, which no header names).
            if let Some(nonce) = use_context::<http::request::Parts>()
                .and_then(|parts| parts.extensions.get::<headers::CspNonce>().cloned())
            {
                provide_context(Nonce::from_value(nonce.0));
            }
        }
    };
    // Once per process: generating the list sets a process-global "suppress resource loads" flag
    // (leptos_server's SuppressResourceLoad), so a page rendering meanwhile (another router in the same process,
    // e.g. parallel tests) would wait for its resources forever (leptos-rs/leptos#4773).
    static ROUTES: std::sync::OnceLock<Vec<leptos_axum::AxumRouteListing>> = std::sync::OnceLock::new();
    let routes = ROUTES.get_or_init(|| generate_route_list(App)).clone();
    let app_shell = {
        let options = state.leptos_options.clone();
        move || shell(options.clone())
    };
    // Static files are served here, not by leptos_axum's `file_and_error_handler`: that one answers a file under
    // a new reactive owner that can inherit the owner current on the thread, and under concurrent requests the
    // file got the response options of another request (its status, e.g. the 400 of a bad query; its headers go
    // along). Only what is not a file reaches Leptos, for the 404 page (RELIABILITY.md, items 6 and 7).
    let not_found = {
        // Rendered whole before the answer starts, like the pages: a streamed 404 page whose body was dropped
        // midway (a HEAD request) left a task resolving it, which then panicked on the disposed owner.
        let render = render_app_async_with_context(context.clone(), app_shell.clone());
        move |req: Request| {
            let render = render.clone();
            async move {
                // The pages' router renders the 404 page (and sets 404) for a path it does not know.
                let mut response = render(req).await;
                if response.status() == StatusCode::OK {
                    *response.status_mut() = StatusCode::NOT_FOUND;
                }
                response
            }
        }
    }
    .with_state(state.clone());
    // A folder is served by ServeDir; the binary's own copy by site::serve_embedded (its compressed copies
    // included). What is no file gets the 404 page.
    let files = match &state.site {
        Site::Dir(root) => Some(
            ServeDir::new(root)
                .append_index_html_on_directories(false)
                .call_fallback_on_method_not_allowed(true)
                .fallback(not_found.clone()),
        ),
        Site::Embedded => None,
    };
    let static_files = move |req: Request| {
        let (files, not_found) = (files.clone(), not_found.clone());
        async move {
            let Some(mut files) = files else {
                return match site::serve_embedded(req.method(), req.uri().path(), req.headers()) {
                    Some(response) => response,
                    None => not_found.oneshot(req).await.into_response(),
                };
            };
            let (parts, body) = req.into_parts();
            let again = Request::from_parts(parts.clone(), axum::body::Body::empty());
            match files.try_call(Request::from_parts(parts, body)).await {
                Ok(response) => response.into_response(),
                // A name the file system refuses (too long, ...) names no file either: the 404 page, not a 500.
                Err(_) => not_found.oneshot(again).await.into_response(),
            }
        }
    };
    Router::new()
        .route("/healthz", get(healthz))
        .route("/theme", get(set_theme))
        .route("/raw/{value}", get(raw_value))
        .leptos_routes_with_context(&state, routes, context, app_shell)
        .fallback(static_files)
        // Pages answered again for up to a second; emptied by every change (needs the nonce and CSRF token of
        // the layers outside it).
        .layer(axum::middleware::from_fn_with_state(
            state.page_cache.clone(),
            cache::page_cache,
        ))
        // A server function's error answers with its own status (400, 403, ...), not server_fn's 500.
        .layer(axum::middleware::from_fn(api::server_fn_status))
        .layer(axum::middleware::from_fn(canonical_redirect))
        // 403 for a request naming another host; CSRF cookie for every page; 403 for a changing request without
        // the token or from another origin.
        .layer(axum::middleware::from_fn_with_state(
            state.security.clone(),
            security::layer,
        ))
        // CSP (with this response's nonce), X-Frame-Options, nosniff, Referrer-Policy: on every response,
        // refusals and static files included.
        .layer(axum::middleware::from_fn(headers::security_headers))
        // gzip or brotli for every answer whose client accepts it (pages, JSON, and a folder's JS, CSS and wasm;
        // the embedded files come compressed already and are left alone). Outside the page cache, which keeps
        // pages uncompressed (it splices each answer's nonce and CSRF token in), and the security headers (which
        // it keeps); it adds `Vary: Accept-Encoding`. The fastest levels (brotli 0, gzip 1): the 147 KB overview
        // becomes 17.5 KB in 0.7 ms; brotli's default level takes tens of milliseconds, level 4 2.4 ms for 13 KB,
        // and a kept page is answered in well under 0.1 ms without compression (measured 2026-12-06, release
        // build, 2 busy cores).
        .layer(
            CompressionLayer::new()
                .quality(CompressionLevel::Fastest)
                .no_deflate()
                .no_zstd(),
        )
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(DefaultMakeSpan::new().level(tracing::Level::INFO))
                .on_response(DefaultOnResponse::new().level(tracing::Level::INFO)),
        )
        .with_state(state)
}

/// `GET /healthz`: `{"ok": true, "schema_version": 1, "read_only": false, "site": "embedded"}` (or `"folder"`),
/// plus `"db"` (the database's path) and the site's folder for a logged-in operator only; 503 with `ok: false` when
/// the database cannot be read (the reason goes to the log, not the probe).
async fn healthz(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let probe = state
        .store
        .list_workflows(&ListQuery {
            limit: Some(1),
            ..Default::default()
        })
        .await;
    let mut body = serde_json::json!({
        "ok": probe.is_ok(),
        "schema_version": state.store.migration().to_version,
        "read_only": state.settings.read_only,
        "site": if matches!(state.site, Site::Embedded) { "embedded" } else { "folder" },
    });
    if state.security.logged_in(&headers) {
        body["db"] = serde_json::json!(state.store.path());
        body["site"] = serde_json::json!(state.site.describe());
    }
    match probe {
        Ok(_) => (StatusCode::OK, Json(body)).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "health check: the database cannot be read");
            body["error"] = "the database cannot be read; see the server log".into();
            (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
        }
    }
}

#[derive(Debug, Deserialize)]
struct RawQuery {
    run: Option<String>,
}

/// `GET /raw/{context|output|history|error}?run=ID`: one large value of a run whole, as stored, as plain text
/// (never parsed, never laid out: a 50 MB context is sent as it is). The run page links here when it shows only
/// the start of a value. Reads of whole values are bounded in number (`flowstate_app::server::limits`).
async fn raw_value(
    State(state): State<AppState>,
    axum::extract::Path(value): axum::extract::Path<String>,
    Query(query): Query<RawQuery>,
) -> Response {
    let run_id = query.run.unwrap_or_default();
    match flowstate_app::server::runs::raw_value(&state.store, &run_id, &value).await {
        Ok(text) => (
            [
                (
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; charset=utf-8"),
                ),
                (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            ],
            text,
        )
            .into_response(),
        Err(error) => {
            let status = StatusCode::from_u16(error.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            if status.is_server_error() {
                tracing::error!(%error, "a run's value could not be read whole");
            }
            (
                status,
                [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
                error.to_string(),
            )
                .into_response()
        }
    }
}

#[derive(Debug, Deserialize)]
struct ThemeQuery {
    set: String,
    back: Option<String>,
}

/// `GET /theme?set=dark&back=/runs`: stores the choice in a cookie and goes back (the no-JavaScript theme
/// toggle). Only local paths are followed back, so this is no open redirect.
async fn set_theme(Query(query): Query<ThemeQuery>) -> Response {
    let Some(theme) = Theme::parse(&query.set) else {
        return (
            StatusCode::BAD_REQUEST,
            "The parameter “set” must be one of system, light, dark.",
        )
            .into_response();
    };
    // The same check as the login's `next` (a path of this site, parsed with the URL parser, percent-encoded).
    let back = query
        .back
        .as_deref()
        .and_then(flowstate_app::server::session::same_site_path)
        .unwrap_or_else(|| "/".into());
    let Ok(location) = HeaderValue::from_str(&back) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    (
        StatusCode::SEE_OTHER,
        [
            (header::LOCATION, location),
            (header::SET_COOKIE, security::cookies::theme(theme)),
        ],
    )
        .into_response()
}

/// A request for a path in another spelling than its canonical one ([`canonical_path`]: `/runs/`, `/./runs`,
/// `/x/../runs`): a permanent redirect to the canonical path, the query kept. axum's routes match only the
/// canonical spelling, so such a path reached the 404 fallback, whose status the pages' own router (which reads
/// the path as a browser would) contradicted by rendering the page it names. Browsers send canonical paths, but
/// for the trailing slash, which people type. 308 keeps the method and body: a POST is sent again, to the
/// canonical path, through every guard (the CSRF layer has already checked this one).
///
/// A filter page's address with blank fields (`/runs?status=failed&pipeline=&error=`, a stray `&=`: what a GET
/// form submits for the fields left empty) is redirected (303) to the same address without them: those pages read
/// a blank field as an absent one, and the address bar, history and shared links stay clean. Only `GET` and
/// `HEAD` of [`CLEAN_QUERY_PAGES`] (the cleanup page's own form round trip, with its error in the URL, is left
/// as it is).
async fn canonical_redirect(req: Request, next: Next) -> Response {
    if let Some(location) = canonical_location(req.uri()) {
        return (StatusCode::PERMANENT_REDIRECT, [(header::LOCATION, location)]).into_response();
    }
    if matches!(*req.method(), Method::GET | Method::HEAD) && CLEAN_QUERY_PAGES.contains(&req.uri().path()) {
        if let Some(query) = req.uri().query().and_then(without_blank_fields) {
            let target = if query.is_empty() {
                req.uri().path().to_string()
            } else {
                format!("{}?{query}", req.uri().path())
            };
            if let (true, Ok(location)) = (
                is_local_path(&target),
                HeaderValue::from_str(&header_safe_path(&target)),
            ) {
                return (StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response();
            }
        }
    }
    next.run(req).await
}

/// The pages whose blank query fields are dropped by a redirect (see [`canonical_redirect`]).
const CLEAN_QUERY_PAGES: [&str; 2] = ["/runs", "/failures"];

/// `query` without its blank fields (an empty name, an empty value or one of only spaces, an empty piece
/// between two `&`), the others kept as they were spelled; `None` when it has none.
fn without_blank_fields(query: &str) -> Option<String> {
    let blank = |piece: &str| {
        let (name, value) = piece.split_once('=').unwrap_or((piece, ""));
        let value_blank = form_urlencoded::parse(format!("v={value}").as_bytes())
            .next()
            .is_none_or(|(_, v)| v.trim().is_empty());
        name.is_empty() || value_blank
    };
    let pieces: Vec<&str> = query.split('&').collect();
    if !pieces.iter().any(|p| blank(p)) {
        return None;
    }
    Some(
        pieces
            .into_iter()
            .filter(|p| !blank(p))
            .collect::<Vec<_>>()
            .join("&"),
    )
}

/// Where a request for `uri` goes instead when its path is not canonical: the canonical path and the query, or
/// `/` when that would name another site (`//host`, `/\host`).
fn canonical_location(uri: &Uri) -> Option<HeaderValue> {
    let canonical = canonical_path(uri.path());
    if canonical == uri.path() {
        return None;
    }
    let target = match uri.query() {
        Some(query) => format!("{canonical}?{query}"),
        None => canonical,
    };
    let target = if is_local_path(&target) {
        target
    } else {
        "/".into()
    };
    HeaderValue::from_str(&header_safe_path(&target)).ok()
}

/// `path` with its dot segments resolved (`.` and `..`, also spelled `%2e`, as browsers read them) and without
/// trailing slashes (except the root's).
fn canonical_path(path: &str) -> String {
    let is_dot = |s: &str| s == "." || s.eq_ignore_ascii_case("%2e");
    let is_dot_dot = |s: &str| matches!(s.to_ascii_lowercase().as_str(), ".." | ".%2e" | "%2e." | "%2e%2e");
    let mut segments: Vec<&str> = Vec::new();
    for segment in path.split('/').skip(1) {
        if is_dot(segment) {
            continue;
        }
        if is_dot_dot(segment) {
            segments.pop();
            continue;
        }
        segments.push(segment);
    }
    while segments.last() == Some(&"") {
        segments.pop();
    }
    format!("/{}", segments.join("/"))
}

/// A path on this site: `/…`, but not `//host` or `/\host` (which browsers treat as another site).
fn is_local_path(path: &str) -> bool {
    path.starts_with('/')
        && !path.starts_with("//")
        && !path.starts_with("/\\")
        && !path.chars().any(|c| c.is_control())
}

/// Refuses a bind address other machines can reach unless changes are impossible (`--read-only`) or need a
/// login (an admin token), and unless the operator said which names it is reached by (`--public-url`): the
/// `Host` check answers only this machine's names and those.
///
/// # Errors
/// [`ServeError::UnsafeBind`], [`ServeError::NoPublicUrl`].
pub fn check_bind(cfg: &ServeConfig) -> Result<(), ServeError> {
    if cfg.bind.ip().is_loopback() {
        Ok(())
    } else if !cfg.read_only && cfg.admin_token.is_none() {
        Err(ServeError::UnsafeBind(cfg.bind))
    } else if cfg.public_urls.is_empty() {
        Err(ServeError::NoPublicUrl(cfg.bind))
    } else {
        Ok(())
    }
}

/// A SQLite file that does not exist is refused (in the words the reading commands use) unless `--create` was
/// given; a PostgreSQL URL is left to the store (a database flowstate can connect to is one the operator made).
fn refuse_a_missing_file(db: &std::path::Path) -> Result<(), ServeError> {
    let flowstate_store::Location::Sqlite(path) = flowstate_store::Location::parse(db) else {
        return Ok(());
    };
    match std::fs::symlink_metadata(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(ServeError::Store(StoreError::CannotOpen {
                path,
                reason: "the file does not exist (serve creates a new database only with --create)".into(),
            }))
        }
        _ => Ok(()),
    }
}

/// Serves the dashboard until Ctrl-C or SIGTERM.
///
/// # Errors
/// [`ServeError::UnsafeBind`] before anything is opened; [`ServeError::NoDatabase`]; the store's errors when the
/// database cannot be opened (read-only mode never creates or migrates it); [`ServeError::Io`] when the address
/// cannot be bound.
pub async fn serve(cfg: ServeConfig) -> Result<(), ServeError> {
    check_bind(&cfg)?;
    let read_only_options = || StoreOptions {
        read_only: true,
        ..Default::default()
    };

    // Kept alive until the server stops; the demo database is deleted with it.
    let mut _demo_dir = None;
    let store = if cfg.demo {
        let dir = tempfile::Builder::new()
            .prefix("flowstate-demo-")
            .tempdir()
            .map_err(|source| ServeError::Io {
                context: "cannot create a temporary directory for the demo database".into(),
                source,
            })?;
        let path = dir.path().join("demo.db");
        let store = Store::open(&path).await?;
        let written = flowstate_store::demo::write_demo(&store, DEMO_RUNS, DEMO_SEED).await?;
        tracing::info!(written, path = %path.display(), "demo database written");
        eprintln!("demo database with {written} runs: {}", path.display());
        _demo_dir = Some(dir);
        if cfg.read_only {
            store.close().await;
            Store::open_with(&path, read_only_options()).await?
        } else {
            store
        }
    } else {
        let db = cfg.db.as_ref().ok_or(ServeError::NoDatabase)?;
        if !cfg.create {
            refuse_a_missing_file(db)?;
        }
        if cfg.read_only {
            Store::open_with(db, read_only_options()).await?
        } else {
            Store::open(db).await?
        }
    };

    let site = cfg.site_root.clone().map_or_else(default_site, Site::Dir);
    if !site.has_bundle() {
        tracing::warn!(
            site = %site.describe(),
            "the built site is missing: pages work without JavaScript and styles; run scripts/build-site.sh"
        );
        eprintln!(
            "warning: no built site in this binary nor at {} (build with `./x build`, or set {SITE_ROOT_ENV})",
            site.describe()
        );
    }

    let listener = tokio::net::TcpListener::bind(cfg.bind)
        .await
        .map_err(|source| ServeError::Io {
            context: format!("cannot listen on {}", cfg.bind),
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| ServeError::Io {
        context: "cannot read the bound address".into(),
        source,
    })?;
    let settings = Settings {
        read_only: cfg.read_only,
        demo: cfg.demo,
        admin_token_configured: cfg.admin_token.is_some(),
    };
    let state = AppState::new(store.clone(), settings, site.clone(), addr)
        .with_public_urls(cfg.public_urls.clone())
        .with_admin_token(cfg.admin_token.as_deref())
        .with_page_cache(cfg.page_cache);
    if !cfg.public_urls.is_empty() {
        let urls: Vec<String> = cfg.public_urls.iter().map(ToString::to_string).collect();
        tracing::info!(public_urls = %urls.join(", "), "answering requests for this machine and the public URLs");
    }
    tracing::info!(%addr, db = %store.path().display(), read_only = cfg.read_only, site = %site.describe(), "serving the dashboard");
    eprintln!(
        "flowstate dashboard on http://{addr}/ (database {})",
        store.path().display()
    );

    // The peer address limits login attempts per client network (web/security/login_limit.rs).
    let served = axum::serve(
        listener,
        router(state).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown_signal())
    .await;
    store.close().await;
    served.map_err(|source| ServeError::Io {
        context: "the server stopped".into(),
        source,
    })
}

/// Resolves on Ctrl-C or (on Unix) SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blank_fields_are_dropped_from_a_query() {
        assert_eq!(without_blank_fields("status=failed&pipeline=x"), None);
        assert_eq!(
            without_blank_fields("status=failed&pipeline=&error=&=").as_deref(),
            Some("status=failed")
        );
        assert_eq!(without_blank_fields("window=&since=").as_deref(), Some(""));
        assert_eq!(
            without_blank_fields("a=1&&b=%20+&c=%2B").as_deref(),
            Some("a=1&c=%2B")
        );
        // A flag without `=` has an empty value: blank.
        assert_eq!(without_blank_fields("full&a=1").as_deref(), Some("a=1"));
        // Kept pairs keep their spelling.
        assert_eq!(
            without_blank_fields("error=a%20b&x=").as_deref(),
            Some("error=a%20b")
        );
    }

    #[test]
    fn only_local_paths_are_followed_back() {
        assert!(is_local_path("/runs?status=failed"));
        assert!(!is_local_path("//evil.example/"));
        assert!(!is_local_path("/\\evil.example/"));
        assert!(!is_local_path("https://evil.example/"));
        assert!(!is_local_path("/a\r\nSet-Cookie: x=y"));
        assert_eq!(header_safe_path("/runs?error=é x"), "/runs?error=%C3%A9%20x");
        assert_eq!(
            header_safe_path("/a\tb\u{7f}%41?x=~"),
            "/a%09b%7F%41?x=~",
            "visible ASCII kept"
        );
    }

    #[test]
    fn canonical_paths() {
        for (path, canonical) in [
            ("/", "/"),
            ("/runs", "/runs"),
            ("/runs/", "/runs"),
            ("/runs///", "/runs"),
            ("/..", "/"),
            ("/./runs", "/runs"),
            ("/x/../runs", "/runs"),
            ("/x/%2E%2e/runs/.", "/runs"),
            ("/pkg/../../Cargo.toml", "/Cargo.toml"),
            ("/runs/a%2Fb", "/runs/a%2Fb"),
            ("//evil.example", "//evil.example"),
        ] {
            assert_eq!(canonical_path(path), canonical, "{path}");
        }
    }

    #[test]
    fn a_public_bind_needs_read_only_or_a_token() {
        let public: SocketAddr = "0.0.0.0:3000".parse().unwrap();
        let mut cfg = ServeConfig {
            bind: public,
            ..Default::default()
        };
        assert!(matches!(check_bind(&cfg), Err(ServeError::UnsafeBind(_))));
        cfg.read_only = true;
        assert!(
            matches!(check_bind(&cfg), Err(ServeError::NoPublicUrl(_))),
            "and the names it is reached by"
        );
        cfg.public_urls = vec!["https://flowstate.example".parse().unwrap()];
        assert!(check_bind(&cfg).is_ok());
        cfg.read_only = false;
        assert!(matches!(check_bind(&cfg), Err(ServeError::UnsafeBind(_))));
        cfg.admin_token = Some("s3cret".into());
        assert!(check_bind(&cfg).is_ok());
        cfg.public_urls.clear();
        assert!(matches!(check_bind(&cfg), Err(ServeError::NoPublicUrl(_))));
        assert!(
            !format!("{cfg:?}").contains("s3cret"),
            "the token must not be printed"
        );
        let loopback = ServeConfig::default();
        assert!(check_bind(&loopback).is_ok());
        let v6: SocketAddr = "[::1]:3000".parse().unwrap();
        assert!(check_bind(&ServeConfig {
            bind: v6,
            ..Default::default()
        })
        .is_ok());
    }
}
