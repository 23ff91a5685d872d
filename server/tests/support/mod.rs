//! What the dashboard's router tests (`web*.rs`) share: a database with the store's clock fixed, the router over
//! it in each mode the dashboard can be started in, and requests sent the way a browser sends them, through
//! `tower::ServiceExt::oneshot` (no socket).
//!
//! **Both backends, tests written once.** `FLOWSTATE_TEST_BACKEND=postgres` (with `FLOWSTATE_TEST_PG`, the test
//! server's URL) makes every helper that makes a test's database ([`new_db`], [`fixture_copy`], [`new_location`],
//! [`db_location`]) make a fresh PostgreSQL database instead of a SQLite file: [`Db::path`] then holds its URL, and
//! [`db_bytes`] / [`checkpoint`] / [`insert_raw`] do the same job on it. SQLite is the default. Tests about SQLite
//! files themselves (flujo's fixture files as files, permissions, the WAL, migrating a file) use
//! [`sqlite_fixture_copy`] or a path of their own and so run on SQLite under either setting.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, HeaderMap, Request, StatusCode};
use axum::Router;
use chrono::{DateTime, TimeZone, Utc};
use flowstate_app::model::Settings;
use flowstate_server::web::{default_site_root, router, AppState};
use flowstate_store::{BackendKind, FixedClock, Location, Store, StoreOptions, WorkflowState};
use tempfile::TempDir;
use tower::ServiceExt;

/// The `Host` every request names: the address the router believes it listens on.
pub const HOST: &str = "127.0.0.1:3000";
/// This dashboard's own origin (what a browser sends as `Origin` from its pages).
pub const ORIGIN: &str = "http://127.0.0.1:3000";
/// A CSRF token as the layer makes them (64 hex digits); the browser holds it in its cookie.
pub const CSRF: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
/// The admin token of [`Mode::token`].
pub const ADMIN_TOKEN: &str = "correct horse battery staple";

/// Set to `1` to run the long versions of the tests that have one (RELIABILITY.md).
pub const LONG_VAR: &str = "FLOWSTATE_LONG_TESTS";

/// True when the long versions were asked for (`FLOWSTATE_LONG_TESTS=1`).
pub fn long_mode() -> bool {
    std::env::var(LONG_VAR).is_ok_and(|v| !v.is_empty() && v != "0")
}

/// `quick` in CI, `long` under `FLOWSTATE_LONG_TESTS=1`.
pub fn scale<T>(quick: T, long: T) -> T {
    if long_mode() {
        long
    } else {
        quick
    }
}

/// Prints one figure line, `[figure] <test> (quick|long): <text>`, straight to stderr (past libtest's capture, so
/// CI's log keeps it), as the store's reliability tests do.
pub fn figure(test: &str, text: impl std::fmt::Display) {
    use std::io::Write;
    let mode = if long_mode() { "long" } else { "quick" };
    let _ = writeln!(std::io::stderr(), "[figure] {test} ({mode}): {text}");
}

/// The store's "now" in the tests with made-up runs: 2026-03-14 12:00 UTC.
pub fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 14, 12, 0, 0).unwrap()
}

/// The repository's flujo fixtures, kept with the store (`store/tests/fixtures`: files written by flujo itself,
/// their ground truth, and `generate.py`, which makes them).
pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../store/tests/fixtures")
}

/// A writable copy of fixture `name` in `dir` (fixtures are inputs: opening migrates, so never the original).
#[track_caller]
pub fn copy_fixture(name: &str, dir: &Path) -> PathBuf {
    let source = fixtures_dir().join(name);
    let path = dir.join(name);
    std::fs::copy(&source, &path).unwrap_or_else(|e| panic!("copying {}: {e}", source.display()));
    let mut perms = std::fs::metadata(&path).unwrap().permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    perms.set_readonly(false);
    std::fs::set_permissions(&path, perms).unwrap();
    path
}

/// A fixture's ground truth (computed by `generate.py` from the values it wrote, not from flujo's answers).
#[track_caller]
pub fn fixture_truth(name: &str) -> serde_json::Value {
    let path = fixtures_dir().join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()))
}

/// Set to `postgres` to run the CLI and router tests on PostgreSQL (`FLOWSTATE_TEST_PG` names the server).
pub const BACKEND_VAR: &str = "FLOWSTATE_TEST_BACKEND";

/// True when this run's tests make PostgreSQL databases (`FLOWSTATE_TEST_BACKEND=postgres`); SQLite files
/// otherwise (unset, empty or `sqlite`). Any other value is a mistake and panics.
pub fn on_postgres() -> bool {
    match std::env::var(BACKEND_VAR).unwrap_or_default().trim() {
        "" | "sqlite" => false,
        "postgres" | "postgresql" => true,
        other => panic!("{BACKEND_VAR}={other:?}: use `sqlite` (the default) or `postgres`"),
    }
}

/// The backend this run's databases are on.
pub fn backend() -> BackendKind {
    if on_postgres() {
        BackendKind::Postgres
    } else {
        BackendKind::Sqlite
    }
}

/// A new, empty database named after `name` (a hint on PostgreSQL): `dir/name`, a file not yet created, or, under
/// `FLOWSTATE_TEST_BACKEND=postgres`, the URL of a fresh database on the test server. What `--db` and
/// `Store::open` take.
pub async fn new_location(dir: &Path, name: &str) -> PathBuf {
    if !on_postgres() {
        return dir.join(name);
    }
    match flowstate_testkit::pg::fresh_database(name).await {
        Ok(url) => PathBuf::from(url),
        Err(e) => panic!(
            "{BACKEND_VAR}=postgres needs a PostgreSQL test server (FLOWSTATE_TEST_PG; `./x rust-tests` starts \
             one): {e}"
        ),
    }
}

/// [`new_location`] for tests without a runtime (or inside one: it runs on a thread of its own).
pub fn db_location(dir: &Path, name: &str) -> PathBuf {
    let dir = dir.to_path_buf();
    let name = name.to_string();
    block_on_thread(move || async move { new_location(&dir, &name).await })
}

/// Runs the future `make` makes to completion on a new thread with a runtime of its own (callable from sync
/// tests and from async ones alike).
fn block_on_thread<T, F>(make: impl FnOnce() -> F + Send + 'static) -> T
where
    T: Send + 'static,
    F: std::future::Future<Output = T>,
{
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime")
            .block_on(make())
    })
    .join()
    .unwrap_or_else(|e| std::panic::resume_unwind(e))
}

/// The PostgreSQL URL `path` holds, if it holds one.
pub fn pg_url(path: &Path) -> Option<String> {
    match Location::parse(path) {
        Location::Postgres(url) => Some(url),
        Location::Sqlite(_) => None,
    }
}

/// A test database: a file in its own temporary directory, or (`FLOWSTATE_TEST_BACKEND=postgres`) a database of
/// its own on the test server.
pub struct Db {
    /// Removed with the database when dropped (empty on PostgreSQL).
    pub dir: TempDir,
    /// The database file, or the PostgreSQL database's URL.
    pub path: PathBuf,
    /// The store over it, its clock fixed.
    pub store: Store,
}

impl Db {
    /// True when this database is on PostgreSQL.
    pub fn is_postgres(&self) -> bool {
        self.store.backend() == BackendKind::Postgres
    }
}

/// Opens (creating or migrating) the database at `path` with the store's clock fixed at `at`.
pub async fn open_store(path: &Path, at: DateTime<Utc>) -> Store {
    Store::open_with(
        path,
        StoreOptions {
            clock: Arc::new(FixedClock::new(at)),
            ..Default::default()
        },
    )
    .await
    .expect("the test database opens")
}

/// A new database `name` holding `runs`, the clock at `at` (on PostgreSQL under `FLOWSTATE_TEST_BACKEND=postgres`).
pub async fn new_db(name: &str, at: DateTime<Utc>, runs: &[WorkflowState]) -> Db {
    let dir = tempfile::tempdir().expect("a temp dir");
    let path = new_location(dir.path(), name).await;
    let store = open_store(&path, at).await;
    if !runs.is_empty() {
        store.save_many(runs).await.expect("the test runs are saved");
    }
    Db { dir, path, store }
}

/// The runs of flujo's fixture `name`, the clock at `at`: a writable copy of the file (opening migrates it, so
/// never the original), or, under `FLOWSTATE_TEST_BACKEND=postgres`, a fresh PostgreSQL database holding every run
/// of that copy, value for value (copied through the store: `export_runs`, `save_many`).
pub async fn fixture_copy(name: &str, at: DateTime<Utc>) -> Db {
    let file = sqlite_fixture_copy(name, at).await;
    if !on_postgres() {
        return file;
    }
    let path = new_location(file.dir.path(), name).await;
    let store = open_store(&path, at).await;
    let mut after: Option<String> = None;
    loop {
        let batch = file
            .store
            .export_runs(after.as_deref(), 500)
            .await
            .expect("the fixture's runs are read");
        let Some(last) = batch.last() else { break };
        after = Some(last.run_id.clone());
        store
            .save_many(&batch)
            .await
            .unwrap_or_else(|e| panic!("copying {name}'s runs to PostgreSQL: {e}"));
    }
    file.store.close().await;
    Db {
        dir: file.dir,
        path,
        store,
    }
}

/// A writable copy of fixture `name` as a SQLite file whatever the backend (for tests about flujo's files
/// themselves: migrating them, legacy values PostgreSQL's table cannot hold), the clock at `at`.
pub async fn sqlite_fixture_copy(name: &str, at: DateTime<Utc>) -> Db {
    let dir = tempfile::tempdir().expect("a temp dir");
    let path = copy_fixture(name, dir.path());
    let store = open_store(&path, at).await;
    Db { dir, path, store }
}

/// A run inserted behind the store's back, as another writer (flujo) may write it: what the store's own checks
/// would refuse (ids beyond its limit, huge values). Times are UTC without a zone (`2026-03-14T10:00:00`).
#[derive(Debug, Clone)]
pub struct RawRow<'a> {
    pub run_id: &'a str,
    pub pipeline_id: &'a str,
    pub status: &'a str,
    /// JSON text.
    pub context: &'a str,
    pub created_at: &'a str,
    pub updated_at: &'a str,
    pub error_message: Option<&'a str>,
    /// flujo's PostgreSQL-only columns (kept on SQLite too): metadata as JSON text.
    pub metadata: Option<&'a str>,
    pub is_background_task: bool,
    pub background_error: Option<&'a str>,
}

impl Default for RawRow<'_> {
    fn default() -> Self {
        RawRow {
            run_id: "raw",
            pipeline_id: "p",
            status: "completed",
            context: "{}",
            created_at: "2026-03-14T10:00:00",
            updated_at: "2026-03-14T10:00:00",
            error_message: None,
            metadata: None,
            is_background_task: false,
            background_error: None,
        }
    }
}

/// Inserts `rows` into `db`'s `workflow_state` over a connection of its own (SQL of either backend).
pub async fn insert_raw(db: &Db, rows: &[RawRow<'_>]) {
    use sqlx::Connection;
    if let Some(url) = pg_url(&db.path) {
        let mut conn = sqlx::PgConnection::connect(&url)
            .await
            .expect("a PostgreSQL connection");
        for row in rows {
            sqlx::query(
                "INSERT INTO workflow_state (run_id, pipeline_id, pipeline_name, pipeline_version, \
                 current_step_index, pipeline_context, status, created_at, updated_at, error_message, metadata, \
                 is_background_task, background_error) \
                 VALUES ($1, $2, $2, '1', 0, $3::jsonb, $4, $5::timestamp AT TIME ZONE 'UTC', \
                 $6::timestamp AT TIME ZONE 'UTC', $7, $8::jsonb, $9, $10)",
            )
            .bind(row.run_id)
            .bind(row.pipeline_id)
            .bind(row.context)
            .bind(row.status)
            .bind(row.created_at)
            .bind(row.updated_at)
            .bind(row.error_message)
            .bind(row.metadata)
            .bind(row.is_background_task)
            .bind(row.background_error)
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("inserting {:.20}: {e}", row.run_id));
        }
        conn.close().await.expect("the connection closes");
        return;
    }
    use sqlx::ConnectOptions;
    let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(&db.path)
        .connect()
        .await
        .expect("a SQLite connection");
    for row in rows {
        sqlx::query(
            "INSERT INTO workflow_state (run_id, pipeline_id, pipeline_name, pipeline_version, \
             current_step_index, pipeline_context, status, created_at, updated_at, error_message, metadata, \
             is_background_task, background_error) \
             VALUES (?1, ?2, ?2, '1', 0, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )
        .bind(row.run_id)
        .bind(row.pipeline_id)
        .bind(row.context)
        .bind(row.status)
        .bind(row.created_at)
        .bind(row.updated_at)
        .bind(row.error_message)
        .bind(row.metadata)
        .bind(row.is_background_task)
        .bind(row.background_error)
        .execute(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("inserting {:.20}: {e}", row.run_id));
    }
    conn.close().await.expect("the connection closes");
}

/// How the dashboard was started.
#[derive(Debug, Clone, Copy, Default)]
pub struct Mode {
    /// `--read-only`.
    pub read_only: bool,
    /// With [`ADMIN_TOKEN`] configured.
    pub token: bool,
    /// Listening on `0.0.0.0:3000` instead of [`HOST`].
    pub public_bind: bool,
}

impl Mode {
    /// `FLOWSTATE_ADMIN_TOKEN` set to [`ADMIN_TOKEN`]: changes need a login.
    pub const TOKEN: Mode = Mode {
        read_only: false,
        token: true,
        public_bind: false,
    };
    /// `--read-only`.
    pub const READ_ONLY: Mode = Mode {
        read_only: true,
        token: false,
        public_bind: false,
    };
    /// `--bind 0.0.0.0:3000` without a token.
    pub const PUBLIC: Mode = Mode {
        read_only: false,
        token: false,
        public_bind: true,
    };
}

/// The whole router over `store` as `flowstate serve` builds it, started in `mode`.
pub fn app_with(store: &Store, mode: Mode) -> Router {
    app_at(store, mode, &default_site_root())
}

/// [`app_with`] serving the static files of `site_root`.
pub fn app_at(store: &Store, mode: Mode, site_root: &Path) -> Router {
    let settings = Settings {
        read_only: mode.read_only,
        ..Default::default()
    };
    let bind = if mode.public_bind { "0.0.0.0:3000" } else { HOST };
    let state = AppState::new(store.clone(), settings, site_root, bind.parse().unwrap())
        .with_admin_token(mode.token.then_some(ADMIN_TOKEN));
    router(state)
}

/// The router with the defaults: loopback, no token, changes allowed.
pub fn app(store: &Store) -> Router {
    app_with(store, Mode::default())
}

/// A response, read whole.
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Answer {
    /// The `Location` header, or `""`.
    pub fn location(&self) -> &str {
        self.headers
            .get(header::LOCATION)
            .map(|v| v.to_str().unwrap())
            .unwrap_or("")
    }

    /// Every `Set-Cookie` header.
    pub fn cookies(&self) -> Vec<String> {
        self.headers
            .get_all(header::SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .collect()
    }

    /// The body as JSON (panics with the body when it is not).
    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("JSON expected ({e}): {}", self.body))
    }

    /// A header's value as text, or `""`.
    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
    }
}

/// Sends `request` through `app` and reads the whole answer. The body must be UTF-8 (every answer of the
/// dashboard is text).
pub async fn send(app: Router, request: Request<Body>) -> Answer {
    let response = app.oneshot(request).await.expect("the router answers");
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("a body");
    Answer {
        status,
        headers,
        body: String::from_utf8(bytes.to_vec()).expect("a UTF-8 body"),
    }
}

/// A GET as a browser sends it: `Host`, `Accept: text/html`, and the cookies given.
pub fn browser_get(uri: &str, cookie: Option<&str>) -> Request<Body> {
    let mut request = Request::get(uri)
        .header(header::HOST, HOST)
        .header(header::ACCEPT, "text/html");
    if let Some(c) = cookie {
        request = request.header(header::COOKIE, c);
    }
    request.body(Body::empty()).unwrap()
}

/// GETs `uri` from `app` as a browser with `cookie`.
pub async fn visit(app: Router, uri: &str, cookie: Option<&str>) -> Answer {
    send(app, browser_get(uri, cookie)).await
}

/// GETs `uri` from the default router over `store`: the status and the HTML.
pub async fn get(store: &Store, uri: &str) -> (StatusCode, String) {
    let answer = visit(app(store), uri, None).await;
    (answer.status, answer.body)
}

/// URL-encodes a value as the pages' own links do.
pub fn encode(value: &str) -> String {
    flowstate_app::format::url_encode(value)
}

/// A POST the way a browser sends it (a url-encoded form, the CSRF cookie, this site's `Origin`), with what each
/// test wants to leave out or change.
#[derive(Debug, Clone)]
pub struct Post {
    pub path: String,
    pub form: Vec<(String, String)>,
    /// The browser's cookies (the CSRF cookie by default).
    pub cookie: Option<String>,
    pub origin: Option<String>,
    pub referer: Option<String>,
    /// A plain form post (no JavaScript): `Accept: text/html`.
    pub html: bool,
    pub host: Option<String>,
}

impl Post {
    /// A `fetch` POST of `form` to `path` from one of this dashboard's pages, carrying the CSRF cookie.
    pub fn new(path: &str, form: &[(&str, &str)]) -> Post {
        Post {
            path: path.into(),
            form: form.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            cookie: Some(format!("flowstate_csrf={CSRF}")),
            origin: Some(ORIGIN.into()),
            referer: None,
            html: false,
            host: Some(HOST.into()),
        }
    }

    /// The cleanup's confirmation: terminal runs idle for more than 30 days, count `count`.
    pub fn cleanup(count: &str) -> Post {
        Post::new(
            "/api/run_cleanup",
            &[
                ("days", "30"),
                ("statuses", "completed,failed,cancelled"),
                ("pipeline", ""),
                ("confirm_count", count),
                ("csrf", CSRF),
            ],
        )
    }

    /// The run page's delete form for `run_id`, `confirm` typed.
    pub fn delete(run_id: &str, confirm: &str) -> Post {
        Post::new(
            "/api/delete_run",
            &[("run_id", run_id), ("confirm", confirm), ("csrf", CSRF)],
        )
    }

    /// A login with `token`.
    pub fn login(token: &str) -> Post {
        Post::new("/api/login", &[("token", token), ("csrf", CSRF)])
    }

    /// A logout.
    pub fn logout() -> Post {
        Post::new("/api/logout", &[("csrf", CSRF)])
    }

    /// As a browser without JavaScript sends it from `page`.
    pub fn sent_from(mut self, page: &str) -> Post {
        self.html = true;
        self.origin = Some(ORIGIN.into());
        self.referer = Some(format!("{ORIGIN}{page}"));
        self
    }

    pub fn field(mut self, name: &str, value: &str) -> Post {
        self.form.retain(|(k, _)| k != name);
        self.form.push((name.into(), value.into()));
        self
    }

    pub fn without_field(mut self, name: &str) -> Post {
        self.form.retain(|(k, _)| k != name);
        self
    }

    pub fn host(mut self, host: &str) -> Post {
        self.host = Some(host.into());
        self
    }

    pub fn cookie(mut self, cookie: Option<&str>) -> Post {
        self.cookie = cookie.map(str::to_string);
        self
    }

    pub fn origin(mut self, origin: Option<&str>) -> Post {
        self.origin = origin.map(str::to_string);
        self
    }

    pub fn referer(mut self, referer: Option<&str>) -> Post {
        self.referer = referer.map(str::to_string);
        self
    }

    /// The form, url-encoded.
    pub fn body(&self) -> String {
        self.form
            .iter()
            .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
            .collect::<Vec<_>>()
            .join("&")
    }

    pub fn request(&self) -> Request<Body> {
        let mut r =
            Request::post(&self.path).header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        if let Some(h) = &self.host {
            r = r.header(header::HOST, h);
        }
        if let Some(c) = &self.cookie {
            r = r.header(header::COOKIE, c);
        }
        if let Some(o) = &self.origin {
            r = r.header(header::ORIGIN, o);
        }
        if let Some(referer) = &self.referer {
            r = r.header(header::REFERER, referer);
        }
        r = r.header(
            header::ACCEPT,
            if self.html {
                "text/html,application/xhtml+xml"
            } else {
                "application/json"
            },
        );
        r.body(Body::from(self.body())).unwrap()
    }

    pub async fn send(&self, app: Router) -> Answer {
        send(app, self.request()).await
    }
}

/// The database file and its write-ahead log, byte for byte: what a refused request must leave as it was.
/// (The `-shm` index is left out: readers write to it.) On PostgreSQL (`path` holds a URL): every row of
/// `workflow_state`, flowstate's audit log and meta table, and the counters' values, as text.
pub fn db_bytes(path: &Path) -> Vec<u8> {
    if let Some(url) = pg_url(path) {
        return block_on_thread(move || pg_contents(url));
    }
    let mut bytes = std::fs::read(path).expect("the database file");
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    if let Ok(log) = std::fs::read(PathBuf::from(wal)) {
        bytes.extend_from_slice(b"\0-wal\0");
        bytes.extend_from_slice(&log);
    }
    bytes
}

/// Moves the write-ahead log into the database file and empties it (over a connection of its own), so that
/// [`db_bytes`] changes from then on only when something is written.
pub async fn checkpoint(path: &Path) {
    use sqlx::{ConnectOptions, Connection};
    if pg_url(path).is_some() {
        // No file to settle: [`db_bytes`] reads the rows.
        return;
    }
    let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(path)
        .connect()
        .await
        .expect("a connection for the checkpoint");
    sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
        .execute(&mut conn)
        .await
        .expect("the checkpoint");
    conn.close().await.expect("the connection closes");
}

/// What [`db_bytes`] reads on PostgreSQL: the rows, in a fixed order (run ids in byte order), as text.
async fn pg_contents(url: String) -> Vec<u8> {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(&url)
        .await
        .expect("a PostgreSQL connection");
    let mut out = Vec::new();
    for query in [
        "SELECT coalesce(string_agg(t::text, E'\\n' ORDER BY t.run_id COLLATE \"C\"), '') FROM workflow_state t",
        "SELECT coalesce(string_agg(t::text, E'\\n' ORDER BY t.id), '') FROM flowstate_audit t",
        "SELECT coalesce(string_agg(t::text, E'\\n' ORDER BY t.key COLLATE \"C\"), '') FROM flowstate_meta t",
        "SELECT coalesce(string_agg(format('%s %s %s %s %s', status_key, pipeline_key, runs, timed, time_sum), \
         E'\\n' ORDER BY status_key, pipeline_key), '') FROM (SELECT status_key, pipeline_key, sum(runs) AS runs, \
         sum(timed) AS timed, sum(time_sum) AS time_sum FROM flowstate_counts GROUP BY 1, 2 \
         HAVING sum(runs) <> 0) c",
    ] {
        let text: String = sqlx::query_scalar(query)
            .fetch_one(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("{query}: {e}"));
        out.extend_from_slice(text.as_bytes());
        out.extend_from_slice(b"\0");
    }
    conn.close().await.expect("the connection closes");
    out
}

// ---------------------------------------------------------------------------------------------------------------
// The security headers and the markup of pages (web_fuzz.rs, web_security.rs)

/// The security headers every response carries; returns the CSP nonce.
pub fn check_headers(answer: &Answer) -> Result<String, String> {
    let csp = answer.header("content-security-policy");
    for part in [
        "default-src 'self'",
        "frame-ancestors 'none'",
        "object-src 'none'",
        "base-uri 'none'",
        "style-src 'self'",
    ] {
        if !csp.contains(part) {
            return Err(format!("the CSP lacks {part:?}: {csp:?}"));
        }
    }
    if csp.contains("unsafe-inline") || csp.contains("'unsafe-eval'") {
        return Err(format!("the CSP allows inline code: {csp}"));
    }
    for (name, value) in [
        ("x-frame-options", "DENY"),
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "same-origin"),
    ] {
        if answer.header(name) != value {
            return Err(format!("{name}: {:?}", answer.header(name)));
        }
    }
    let nonce = csp
        .split("'nonce-")
        .nth(1)
        .and_then(|rest| rest.split('\'').next())
        .ok_or_else(|| format!("no nonce in the CSP: {csp}"))?;
    Ok(nonce.to_string())
}

/// A start tag of a page.
pub struct StartTag {
    /// Lowercase.
    pub name: String,
    /// Names lowercase, values as written.
    pub attrs: Vec<(String, String)>,
    /// The byte after its `>`.
    pub end: usize,
}

/// The start tag at byte `at` (a `<`), if one starts there.
pub fn start_tag(html: &str, at: usize) -> Option<StartTag> {
    let bytes = html.as_bytes();
    let mut i = at + 1;
    if !bytes.get(i)?.is_ascii_alphabetic() {
        return None;
    }
    let name_start = i;
    while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'-' || bytes[i] == b':') {
        i += 1;
    }
    let name = html[name_start..i].to_ascii_lowercase();
    let mut attrs = Vec::new();
    loop {
        while i < bytes.len() && (bytes[i].is_ascii_whitespace() || bytes[i] == b'/') {
            i += 1;
        }
        if i >= bytes.len() {
            return Some(StartTag {
                name,
                attrs,
                end: bytes.len(),
            });
        }
        if bytes[i] == b'>' {
            return Some(StartTag {
                name,
                attrs,
                end: i + 1,
            });
        }
        let a = i;
        while i < bytes.len() && !bytes[i].is_ascii_whitespace() && !matches!(bytes[i], b'=' | b'>' | b'/') {
            i += 1;
        }
        let attr = html[a..i].to_ascii_lowercase();
        let mut value = String::new();
        if i < bytes.len() && bytes[i] == b'=' {
            i += 1;
            if i < bytes.len() && (bytes[i] == b'"' || bytes[i] == b'\'') {
                let q = bytes[i];
                let v = i + 1;
                i = v;
                while i < bytes.len() && bytes[i] != q {
                    i += 1;
                }
                value = html[v..i.min(bytes.len())].to_string();
                i += 1;
            } else {
                let v = i;
                while i < bytes.len() && !bytes[i].is_ascii_whitespace() && bytes[i] != b'>' {
                    i += 1;
                }
                value = html[v..i].to_string();
            }
        }
        attrs.push((attr, value));
    }
}

/// The markup of a page, as a browser parses it: every `<script>` carries `nonce`; no `<style>`, no `style`
/// attribute, no `on…` event handler (a value echoed without escaping would show up as one of these).
pub fn check_markup(html: &str, nonce: &str) -> Result<usize, String> {
    let mut scripts = 0;
    let mut i = 0;
    while let Some(offset) = html[i..].find('<') {
        let at = i + offset;
        let Some(StartTag { name, attrs, end }) = start_tag(html, at) else {
            i = at + 1;
            continue;
        };
        let context = || {
            let mut stop = end.min(at + 200);
            while !html.is_char_boundary(stop) {
                stop -= 1;
            }
            html[at..stop].to_string()
        };
        if name == "style" {
            return Err(format!("a <style> element: {}", context()));
        }
        for (attr, _) in &attrs {
            if attr == "style" {
                return Err(format!("an inline style attribute: {}", context()));
            }
            if attr.starts_with("on") {
                return Err(format!("an inline event handler: {}", context()));
            }
        }
        i = end;
        if name == "script" {
            scripts += 1;
            if !attrs.iter().any(|(a, v)| a == "nonce" && v == nonce) {
                return Err(format!(
                    "a script without this response's nonce {nonce}: {}",
                    context()
                ));
            }
            // Its text is script, not markup: on to the first `</script` (as the browser does).
            let close = html[i..]
                .to_ascii_lowercase()
                .find("</script")
                .ok_or_else(|| "an unclosed <script>".to_string())?;
            i += close + 2;
        }
    }
    Ok(scripts)
}
