//! Hostile input over HTTP (issue 4, item 6; see RELIABILITY.md): generated requests to every route of the real
//! router (`oneshot`, no socket), on a database whose file must not change.
//!
//! - [`generated_requests_never_fail_the_server`]: thousands of generated requests (proptest, a fixed seed; a
//!   random one, printed, under `FLOWSTATE_LONG_TESTS=1`): every page with query strings of its own parameters
//!   holding hostile values (huge, unicode, NUL and broken percent-escapes, overflowing numbers, bad dates and
//!   cursors, repeated keys, SQL), every server function (forms, JSON, raw bytes, wrong content types and
//!   methods; with and without the CSRF token, the session, this site's `Origin`), static paths that try to
//!   leave the site, `/healthz`, `/theme` and unknown paths, with hostile cookies and hosts, in the three modes
//!   the dashboard starts in. Every answer: below 500, no panic (not even in a task the renderer spawned), the
//!   security headers, a well-formed body (an HTML page whose error section has the status, or the JSON
//!   `AppError` of that status), every inline script carrying the response's CSP nonce and no inline style or
//!   event handler in the markup; and the database file byte for byte as it was.
//! - [`sql_injection_in_every_filter_matches_nothing_extra`]: each SQL-injection string in each filter of the
//!   runs list (page and server function), the cleanup preview and the failures page lists exactly what the
//!   store returns for the literal value.
//! - [`static_paths_never_leave_the_site`]: traversal attempts, plain and encoded, never serve a file outside
//!   the site root.
//! - [`concurrent_requests_never_share_a_response`], [`not_found_pages_leave_no_task_panicking`],
//!   [`server_function_errors_have_their_own_status`]: regression tests for what the generated requests found
//!   (see RELIABILITY.md).

mod support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration as StdDuration, Instant};

use axum::body::Body;
use axum::http::{header, HeaderValue, Method, Request, StatusCode, Uri};
use axum::Router;
use chrono::Duration;
use flowstate_app::AppError;
use flowstate_server::web::security::login_limit::GLOBAL_ATTEMPTS;
use flowstate_store::{CleanupPolicy, ListQuery, Status, Store, StoreError, WorkflowState};
use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestRng, TestRunner};
use support::*;

// ---------------------------------------------------------------------------------------------------------------
// The database

/// SQL-injection strings: each is tried in every filter, and the generated requests use them as values.
const INJECTIONS: &[&str] = &[
    "' OR 1=1 --",
    "%' OR '1'='1",
    "' OR '1'='1",
    "\" OR \"\"=\"",
    "1; DROP TABLE workflow_state; --",
    "'); DELETE FROM workflow_state; --",
    "') OR ('a'='a",
    "' UNION SELECT run_id, run_id FROM workflow_state --",
    "1' AND randomblob(1000000000) --",
    "x' OR '1'='1",
    "%",
    "_",
    "%%",
    "\\",
    "*",
    "[a-z]*",
    "' --",
    "';",
    "\0' OR 1=1",
];

/// Runs whose text holds injection strings and LIKE metacharacters literally: the literal filters must find
/// exactly them, the injections nothing more.
const PLANTED: &[(&str, Status, &str, Option<&str>)] = &[
    // (run id, status, pipeline, error)
    (
        "inj-1",
        Status::Failed,
        "x' OR '1'='1",
        Some("boom ' OR 1=1 -- boom"),
    ),
    ("100%_done", Status::Completed, "invoice", None),
    ("quote'run", Status::Failed, "triage", Some("%' OR '1'='1 failed")),
    ("under_score", Status::Paused, "sql-agent", Some("a_b%c\\d")),
    (
        "xss-1",
        Status::Failed,
        "<img src=x onerror=alert(1)>",
        Some("</script><script>alert(1)</script>"),
    ),
];

const PIPELINES: [&str; 3] = ["invoice", "triage", "sql-agent"];

/// 40 ordinary runs (every status and pipeline, the last hours to 60 days back), the planted ones, and runs
/// idle for 45 and 60 days (so a cleanup preview has something to count).
fn runs() -> Vec<WorkflowState> {
    let mut out = Vec::new();
    for i in 0..40i64 {
        let status = Status::KNOWN[(i % 5) as usize].clone();
        let mut run = WorkflowState::new(format!("run-{i:03}"), PIPELINES[(i % 3) as usize]);
        if status == Status::Failed {
            run.error_message = Some(format!("TimeoutError: agent call {i} exceeded 30s"));
        }
        run.status = status;
        run.created_at = Some(now() - Duration::hours(i * 37));
        run.updated_at = Some(now() - Duration::hours(i * 37) + Duration::minutes(5));
        run.execution_time_ms = Some(100 * (i + 1));
        out.push(run);
    }
    for (k, (id, status, pipeline, error)) in PLANTED.iter().enumerate() {
        let mut run = WorkflowState::new(*id, *pipeline);
        run.status = status.clone();
        run.error_message = error.map(str::to_string);
        run.execution_time_ms = Some(250);
        run.created_at = Some(now() - Duration::minutes(30 + k as i64));
        run.updated_at = run.created_at;
        out.push(run);
    }
    for (id, days) in [("old-1", 60), ("old-2", 45)] {
        let mut run = WorkflowState::new(id, "invoice");
        run.status = Status::Completed;
        run.created_at = Some(now() - Duration::days(days));
        run.updated_at = run.created_at;
        out.push(run);
    }
    out
}

fn run_ids() -> Vec<String> {
    runs().into_iter().map(|r| r.run_id).collect()
}

/// The database, a site root with the static files and a secret file beside it, the routers in each mode, and
/// the bytes the database file must keep.
struct Ctx {
    db: Db,
    /// The site root's parent (removed when dropped).
    _site: tempfile::TempDir,
    default: Router,
    token: Router,
    read_only: Router,
    /// A live admin session of `token` (for changes) and one only logout cases use (so they end that one).
    session: String,
    logout_session: String,
    bytes: Vec<u8>,
}

/// Written into the file beside the site root: no answer may ever contain it.
const SECRET: &str = "TOP-SECRET-FILE-OUTSIDE-THE-SITE";

async fn context() -> Ctx {
    let db = new_db("fuzz.db", now(), &runs()).await;
    let site = tempfile::tempdir().expect("a temp dir");
    let root = site.path().join("site");
    std::fs::create_dir_all(root.join("pkg")).unwrap();
    std::fs::write(root.join("pkg/flowstate.css"), "body { color: black; }\n").unwrap();
    std::fs::write(root.join("pkg/flowstate.js"), "export default function () {}\n").unwrap();
    std::fs::write(
        root.join("favicon.svg"),
        "<svg xmlns=\"http://www.w3.org/2000/svg\"/>\n",
    )
    .unwrap();
    std::fs::write(site.path().join("secret.txt"), SECRET).unwrap();
    std::fs::write(site.path().join("Cargo.toml"), format!("[package] # {SECRET}\n")).unwrap();
    let mode = |token, read_only| Mode {
        token,
        read_only,
        public_bind: false,
    };
    let default = app_at(&db.store, mode(false, false), &root);
    let token = app_at(&db.store, mode(true, false), &root);
    let read_only = app_at(&db.store, mode(false, true), &root);
    let mut sessions = Vec::new();
    for _ in 0..2 {
        let login = Post::login(ADMIN_TOKEN).send(token.clone()).await;
        assert_eq!(login.status, StatusCode::OK, "{}", login.body);
        let cookie = login
            .cookies()
            .into_iter()
            .find(|c| c.starts_with("flowstate_session="))
            .expect("a session cookie");
        sessions.push(cookie.split(';').next().unwrap().to_string());
    }
    checkpoint(&db.path).await;
    let bytes = db_bytes(&db.path);
    Ctx {
        db,
        _site: site,
        default,
        token,
        read_only,
        logout_session: sessions.pop().unwrap(),
        session: sessions.pop().unwrap(),
        bytes,
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Generated requests

/// Values no parameter expects (besides [`INJECTIONS`]).
const NASTY: &[&str] = &[
    "",
    " ",
    "-1",
    "0",
    "-0",
    "1.5",
    "1e309",
    "NaN",
    "inf",
    "-inf",
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775809",
    "18446744073709551616",
    "4294967296",
    "99999999999999999999999999999999",
    "0x10",
    "2026-02-30",
    "2026-13-01T00:00",
    "2026-03-14T25:61",
    "0000-01-01",
    "0001-01-01T00:00:00Z",
    "9999-12-31T23:59:59.999999Z",
    "10000-01-01T00:00:00Z",
    "-0001-01-01T00:00:00Z",
    "+275760-09-13T00:00:00Z",
    "1970-01-01T00:00:00+25:00",
    "2026-03-14T12:00:00.99999999999999999Z",
    "2026-03-14T12:00:00 01:00",
    "T",
    "Z",
    "<script>alert(1)</script>",
    "\"><svg onload=alert(1)>",
    "</script><script>alert(1)</script>",
    "javascript:alert(1)",
    "../../etc/passwd",
    "\0",
    "a\0b",
    "\u{202e}",
    "🦀",
    "é",
    "\u{fffd}",
    "a\r\nSet-Cookie: x=y",
    "\t\n",
    "null",
    "undefined",
    "true",
    "[]",
    "{}",
    "failed",
    "running,paused",
    "pending",
    "FAILED",
    "failed,,,",
    "1h",
    "24h",
    "30d",
    "0m",
    "525601m",
    "99999999999999999999d",
    "1000",
    "1001",
    "50",
    "//evil.example",
    "/\\evil.example",
    "https://evil.example/",
    "/runs",
    "context,output,history,all",
    "0123456789abcdef",
    "eyJjIjoxfQ",
    "AAAA",
    "////",
];

/// Written into a URL as they are (not encoded): broken percent-escapes, separators.
const RAW: &[&str] = &[
    "%",
    "%zz",
    "%C3",
    "%FF%FE",
    "%00",
    "%2",
    "%%41",
    "%C3%28",
    "%ED%A0%80",
    "%F0%9F%A6",
    "a+b",
    "+",
    "&&",
    "==",
    "=",
    ";",
    "%2526",
    "%0D%0A",
    "..%2F..%2F",
    "%u0041",
];

fn text_value() -> BoxedStrategy<String> {
    prop_oneof![
        6 => select(NASTY).prop_map(str::to_string),
        4 => select(INJECTIONS).prop_map(str::to_string),
        4 => ".{0,24}",
        1 => "[a-z0-9_%-]{0,12}",
        1 => any::<i64>().prop_map(|n| n.to_string()),
        1 => any::<u64>().prop_map(|n| format!("{n}0")),
        1 => any::<f64>().prop_map(|f| f.to_string()),
        1 => (100usize..8_000, select(vec!["x", "é", "%", "'", "🦀"])).prop_map(|(n, s)| s.repeat(n)),
        1 => proptest::collection::vec(any::<u8>(), 1..40)
            .prop_map(|b| b.iter().map(|x| format!("{x:02x}")).collect::<String>()),
        2 => select(run_ids()),
    ]
    .boxed()
}

/// How a value is written into a query string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Enc {
    /// Percent-encoded, as a browser's form does.
    Encoded,
    /// As it is (encoded after all when that would not be a URL).
    Raw,
    /// One of [`RAW`] instead of the value.
    Broken,
}

#[derive(Debug, Clone)]
struct Pair {
    key: String,
    value: String,
    enc: Enc,
}

impl Pair {
    fn write(&self) -> String {
        let value = match self.enc {
            Enc::Encoded => encode(&self.value),
            Enc::Raw => self.value.clone(),
            Enc::Broken => self.value.clone(),
        };
        format!("{}={value}", encode(&self.key))
    }
}

fn pairs(keys: &'static [&'static str], max: usize) -> BoxedStrategy<Vec<Pair>> {
    // Parameters nobody reads, for routes that read none.
    let keys: &'static [&'static str] = if keys.is_empty() { &["x", "debug"] } else { keys };
    let key = prop_oneof![
        10 => select(keys).prop_map(str::to_string),
        1 => select(vec!["__err", "__path", "x", "", "status[]", "%00"]).prop_map(str::to_string),
        1 => ".{0,6}",
    ];
    let pair = (
        key,
        prop_oneof![
            8 => text_value().prop_map(|v| (v, Enc::Encoded)),
            2 => text_value().prop_map(|v| (v, Enc::Raw)),
            2 => select(RAW).prop_map(|v| (v.to_string(), Enc::Broken)),
        ],
    )
        .prop_map(|(key, (value, enc))| Pair { key, value, enc });
    proptest::collection::vec(pair, 0..max).boxed()
}

/// The query string of `pairs` (every encoding a URL allows).
fn query_string(pairs: &[Pair]) -> String {
    pairs.iter().map(Pair::write).collect::<Vec<_>>().join("&")
}

/// `path?query` as a URI the router can be given: when the raw text is not a URI, the encoded one.
fn uri(path: &str, pairs: &[Pair]) -> String {
    let raw = if pairs.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{}", query_string(pairs))
    };
    if raw.parse::<Uri>().is_ok() {
        return raw;
    }
    let mut encoded: Vec<String> = pairs
        .iter()
        .map(|p| format!("{}={}", encode(&p.key), encode(&p.value)))
        .collect();
    // A URI is at most 64 KiB (the http crate's limit, and more than any server takes): drop pairs until it fits.
    loop {
        let uri = format!("{path}?{}", encoded.join("&"));
        if uri.parse::<Uri>().is_ok() || encoded.is_empty() {
            return uri;
        }
        encoded.pop();
    }
}

const PAGES: &[(&str, &[&str])] = &[
    ("/", &["stuck"]),
    (
        "/runs",
        &[
            "status",
            "pipeline",
            "created_after",
            "created_before",
            "updated_after",
            "updated_before",
            "prefix",
            "error",
            "limit",
            "cursor",
        ],
    ),
    ("/failures", &["window", "group"]),
    ("/cleanup", &["days", "status", "pipeline", "preview", "done"]),
    ("/login", &["next", "out"]),
    ("/theme", &["set", "back"]),
    ("/healthz", &[]),
];

/// Server functions and their arguments.
const ENDPOINTS: &[(&str, &[&str])] = &[
    ("overview", &["stuck"]),
    ("failures", &["window", "group"]),
    ("runs", &["search"]),
    ("run", &["run_id", "full"]),
    ("settings", &[]),
    ("access", &[]),
    ("cleanup_preview", &["days", "statuses", "pipeline"]),
    ("cleanup_options", &[]),
    (
        "run_cleanup",
        &["days", "statuses", "pipeline", "confirm_count", "csrf"],
    ),
    ("delete_run", &["run_id", "confirm", "csrf", "active_ok"]),
    ("login", &["token", "csrf", "next"]),
    ("logout", &["csrf"]),
];

/// Paths that try to leave the site root, or name nothing.
const ODD_PATHS: &[&str] = &[
    "/pkg/../../Cargo.toml",
    "/pkg/../../secret.txt",
    "/pkg/%2e%2e/%2e%2e/secret.txt",
    "/pkg/%2E%2E%2F%2E%2E%2Fsecret.txt",
    "/pkg/..%2f..%2fsecret.txt",
    "/pkg/..%5c..%5csecret.txt",
    "/pkg/%252e%252e/%252e%252e/secret.txt",
    "/pkg/..;/..;/secret.txt",
    "/pkg/....//....//secret.txt",
    "/%2e%2e/secret.txt",
    "/..%2fsecret.txt",
    "/../secret.txt",
    "/./../secret.txt",
    "/pkg/flowstate.css%00.js",
    "/pkg/flowstate.css/..",
    "/pkg/flowstate.css/../../secret.txt",
    "/pkg/",
    "/pkg",
    "/pkg/flowstate.css",
    "/pkg/flowstate.js",
    "/favicon.svg",
    "/favicon.svg/",
    "/.git/config",
    "/etc/passwd",
    "/%2Fetc%2Fpasswd",
    "//etc/passwd",
    "/pkg//..//..//secret.txt",
    "/runs/",
    "/runs//",
    "/runs/%00",
    "/runs/%ZZ",
    "/runs/%C3%28",
    "/runs/..",
    "/runs/%2e%2e",
    "/runs/run-001/extra",
    "/runs/run-001%2F..%2F..",
    "/api",
    "/api/",
    "/api/nope",
    "/api/overview/../run_cleanup",
    "/api/%2e%2e/run_cleanup",
    "/API/overview",
    "/cleanup/",
    "/index.html",
    "/%F0%9F%A6%80",
    "/a/b/c/d/e/f/g",
    "/healthz/",
    "/theme/x",
    "/%72uns",
    "//runs",
    "/RUNS",
    "/runs/%2F",
    "/%2Fruns",
    "/runs;x",
    "/runs%3Fstatus=failed",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RunMode {
    Default,
    Token,
    ReadOnly,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Csrf {
    /// The cookie and the same token in the form.
    Valid,
    /// The cookie, another token in the form.
    Wrong,
    /// The cookie, no token in the form.
    Missing,
    /// No cookie; the form carries the token.
    NoCookie,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OriginKind {
    Own,
    Foreign,
    Null,
    None,
    /// No Origin; a Referer of this site.
    Referer,
    /// No Origin; a Referer of another site.
    ForeignReferer,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SessionKind {
    None,
    Valid,
    Forged,
}

#[derive(Debug, Clone)]
enum ApiBody {
    Form,
    Json,
    Raw(Vec<u8>),
    Empty,
}

#[derive(Debug, Clone)]
enum Case {
    /// A GET (or HEAD) of a page with a generated query string.
    Page {
        path: &'static str,
        pairs: Vec<Pair>,
        head: bool,
    },
    /// The run page of a run id (existing or hostile), with a query.
    Run { id: String, pairs: Vec<Pair> },
    /// A server function call.
    Api {
        endpoint: &'static str,
        method: Method,
        fields: Vec<(String, String)>,
        body: ApiBody,
        content_type: Option<&'static str>,
        query: Vec<Pair>,
        csrf: Csrf,
        origin: OriginKind,
        session: SessionKind,
        html: bool,
    },
    /// A path that names no page, or tries to leave the site.
    Path { path: String, method: Method },
}

#[derive(Debug, Clone)]
struct Generated {
    mode: RunMode,
    case: Case,
    /// A hostile `Cookie` header added to the request.
    cookie: Option<String>,
    /// Another `Host` than this machine's.
    host: Option<String>,
}

fn page_case() -> BoxedStrategy<Case> {
    (select(PAGES), proptest::bool::weighted(0.1))
        .prop_flat_map(|((path, keys), head)| {
            pairs(keys, 7).prop_map(move |pairs| Case::Page { path, pairs, head })
        })
        .boxed()
}

/// The runs list filtered by one text filter, the value encoded: compared with the store's literal answer.
fn text_filter_case() -> BoxedStrategy<Case> {
    (select(vec!["pipeline", "prefix", "error"]), text_value())
        .prop_map(|(key, value)| Case::Page {
            path: "/runs",
            pairs: vec![Pair {
                key: key.to_string(),
                // Short enough for any URI (a longer one would be dropped from it by `uri`).
                value: value.chars().take(2000).collect(),
                enc: Enc::Encoded,
            }],
            head: false,
        })
        .boxed()
}

fn run_page_case() -> BoxedStrategy<Case> {
    (
        prop_oneof![
            2 => select(run_ids()),
            // At most 2,000 characters: the id is the path, and a URI holds 64 KiB.
            3 => text_value().prop_map(|v| v.chars().take(2000).collect()),
        ],
        pairs(&["full"], 3),
    )
        .prop_map(|(id, pairs)| Case::Run { id, pairs })
        .boxed()
}

/// A value for server function argument `arg`, never one that would make a change succeed (a typed count
/// that some policy could match, a confirmation equal to a run id): the database must not change.
fn arg_value(endpoint: &'static str, arg: &'static str) -> BoxedStrategy<String> {
    let ids = run_ids();
    match (endpoint, arg) {
        ("runs", "search") => pairs(PAGES[1].1, 6).prop_map(|p| query_string(&p)).boxed(),
        (_, "run_id") => prop_oneof![2 => select(run_ids()), 3 => text_value()].boxed(),
        (_, "confirm") => text_value()
            .prop_filter("never the id of a run", move |v| {
                !ids.contains(&v.trim().to_string())
            })
            .boxed(),
        (_, "confirm_count") => text_value()
            .prop_filter("never a count a policy can match", |v| {
                !v.trim().parse::<u32>().is_ok_and(|n| (1..=100).contains(&n))
            })
            .boxed(),
        (_, "token") => text_value()
            .prop_filter("never the admin token", |v| v != ADMIN_TOKEN)
            .boxed(),
        (_, "active_ok") => prop_oneof![
            select(vec!["yes", "on", ""]).prop_map(str::to_string),
            text_value()
        ]
        .boxed(),
        _ => text_value(),
    }
}

fn api_case() -> BoxedStrategy<Case> {
    select(ENDPOINTS)
        .prop_flat_map(|(endpoint, args)| {
            let fields = args
                .iter()
                .map(|arg| {
                    proptest::option::weighted(0.85, arg_value(endpoint, arg)).prop_map(move |v| (*arg, v))
                })
                .collect::<Vec<_>>();
            let extra = proptest::option::weighted(0.15, (".{0,8}", text_value()));
            (
                Just(endpoint),
                fields,
                extra,
                prop_oneof![
                    12 => Just(Method::POST),
                    1 => Just(Method::GET),
                    1 => Just(Method::PUT),
                    1 => Just(Method::DELETE),
                    1 => Just(Method::HEAD),
                ],
                prop_oneof![
                    10 => Just(ApiBody::Form),
                    2 => Just(ApiBody::Json),
                    2 => proptest::collection::vec(any::<u8>(), 0..300).prop_map(ApiBody::Raw),
                    1 => Just(ApiBody::Empty),
                ],
                prop_oneof![
                    10 => Just(Some("application/x-www-form-urlencoded")),
                    2 => Just(Some("application/json")),
                    1 => Just(Some("text/plain")),
                    1 => Just(Some("multipart/form-data; boundary=xyz")),
                    1 => Just(Some("application/x-www-form-urlencoded; charset=utf-16")),
                    1 => Just(None),
                ],
                pairs(args, 3),
                (
                    prop_oneof![
                        6 => Just(Csrf::Valid),
                        1 => Just(Csrf::Wrong),
                        1 => Just(Csrf::Missing),
                        1 => Just(Csrf::NoCookie),
                    ],
                    prop_oneof![
                        6 => Just(OriginKind::Own),
                        1 => Just(OriginKind::Foreign),
                        1 => Just(OriginKind::Null),
                        1 => Just(OriginKind::None),
                        1 => Just(OriginKind::Referer),
                        1 => Just(OriginKind::ForeignReferer),
                    ],
                    prop_oneof![
                        3 => Just(SessionKind::Valid),
                        1 => Just(SessionKind::None),
                        1 => Just(SessionKind::Forged),
                    ],
                    any::<bool>(),
                ),
            )
        })
        .prop_map(
            |(endpoint, fields, extra, method, body, content_type, query, (csrf, origin, session, html))| {
                let mut fields: Vec<(String, String)> = fields
                    .into_iter()
                    .filter_map(|(arg, value)| value.map(|v| (arg.to_string(), v)))
                    .collect();
                if let Some((k, v)) = extra {
                    fields.push((k, v));
                }
                Case::Api {
                    endpoint,
                    method,
                    fields,
                    body,
                    content_type,
                    query,
                    csrf,
                    origin,
                    session,
                    html,
                }
            },
        )
        .boxed()
}

fn path_case() -> BoxedStrategy<Case> {
    let path = prop_oneof![
        4 => select(ODD_PATHS).prop_map(str::to_string),
        2 => proptest::collection::vec(
            prop_oneof![
                select(vec!["..", ".", "%2e%2e", "%2F", "pkg", "runs", "api", "%00", "%ff", "~", "%C0%AE"])
                    .prop_map(str::to_string),
                "[a-zA-Z0-9._~-]{1,12}",
            ],
            1..6,
        )
        .prop_map(|segments| format!("/{}", segments.join("/"))),
        1 => (1usize..3000).prop_map(|n| format!("/{}", "a".repeat(n))),
    ];
    (
        path,
        prop_oneof![
            8 => Just(Method::GET),
            1 => Just(Method::HEAD),
            1 => Just(Method::POST),
            1 => Just(Method::OPTIONS),
        ],
    )
        .prop_map(|(path, method)| Case::Path { path, method })
        .boxed()
}

fn generated() -> BoxedStrategy<Generated> {
    let cookie = proptest::option::weighted(
        0.15,
        prop_oneof![
            (
                select(vec![
                    "flowstate_csrf",
                    "flowstate_session",
                    "flowstate_theme",
                    "x"
                ]),
                text_value()
            )
                .prop_map(|(k, v)| format!("{k}={v}")),
            ".{0,40}",
            Just(format!(
                "flowstate_csrf={CSRF}; flowstate_csrf={}",
                "f".repeat(64)
            )),
            Just("flowstate_theme=dark; flowstate_theme=light; ;;; =; flowstate_csrf".to_string()),
        ],
    );
    let host = proptest::option::weighted(
        0.05,
        select(vec![
            "evil.example:3000",
            "localhost:3000",
            "[::1]:3000",
            "127.0.0.1:3000.evil.example",
            "",
            "a b",
            "[::1",
            "127.0.0.1:99999",
        ]),
    );
    (
        prop_oneof![5 => Just(RunMode::Default), 3 => Just(RunMode::Token), 2 => Just(RunMode::ReadOnly)],
        prop_oneof![
            8 => page_case(),
            2 => text_filter_case(),
            3 => run_page_case(),
            9 => api_case(),
            3 => path_case(),
        ],
        cookie,
        host,
    )
        .prop_map(|(mode, case, cookie, host)| Generated {
            mode,
            case,
            cookie,
            host: host.map(str::to_string),
        })
        .boxed()
}

/// Adds `value` as header `name` when it is a valid header value (the http crate refuses the others, as a
/// client's HTTP library would).
fn try_header(request: &mut Request<Body>, name: header::HeaderName, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        request.headers_mut().append(name, v);
    }
}

/// The request a generated case stands for, and the Referer it sent (a redirect may go back there).
fn build(ctx: &Ctx, g: &Generated) -> (Request<Body>, Option<String>) {
    let mut referer = None;
    let mut request = match &g.case {
        Case::Page { path, pairs, head } => {
            let method = if *head { Method::HEAD } else { Method::GET };
            let mut r = Request::builder()
                .method(method)
                .uri(uri(path, pairs))
                .body(Body::empty())
                .unwrap();
            try_header(&mut r, header::ACCEPT, "text/html");
            r
        }
        Case::Run { id, pairs } => {
            let mut r = Request::get(uri(&format!("/runs/{}", encode(id)), pairs))
                .body(Body::empty())
                .unwrap();
            try_header(&mut r, header::ACCEPT, "text/html");
            r
        }
        Case::Path { path, method } => {
            let path = if path.parse::<Uri>().is_ok() {
                path.clone()
            } else {
                format!("/{}", encode(path))
            };
            let mut r = Request::builder()
                .method(method.clone())
                .uri(path)
                .body(Body::empty())
                .unwrap();
            try_header(&mut r, header::ACCEPT, "text/html");
            r
        }
        Case::Api {
            endpoint,
            method,
            fields,
            body,
            content_type,
            query,
            csrf,
            origin,
            session,
            html,
        } => {
            let mut fields = fields.clone();
            match csrf {
                Csrf::Valid | Csrf::NoCookie => {
                    for (k, v) in fields.iter_mut() {
                        if k == "csrf" {
                            *v = CSRF.to_string();
                        }
                    }
                }
                Csrf::Missing => fields.retain(|(k, _)| k != "csrf"),
                Csrf::Wrong => {}
            }
            let body = match body {
                ApiBody::Form => fields
                    .iter()
                    .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
                    .collect::<Vec<_>>()
                    .join("&")
                    .into_bytes(),
                ApiBody::Json => {
                    serde_json::to_vec(&fields.iter().cloned().collect::<BTreeMap<_, _>>()).unwrap()
                }
                ApiBody::Raw(bytes) => bytes.clone(),
                ApiBody::Empty => Vec::new(),
            };
            let mut r = Request::builder()
                .method(method.clone())
                .uri(uri(&format!("/api/{endpoint}"), query))
                .body(Body::from(body))
                .unwrap();
            if let Some(ct) = content_type {
                try_header(&mut r, header::CONTENT_TYPE, ct);
            }
            let mut cookies = Vec::new();
            if *csrf != Csrf::NoCookie {
                cookies.push(format!("flowstate_csrf={CSRF}"));
            }
            match (g.mode, session) {
                (RunMode::Token, SessionKind::Valid) => cookies.push(if *endpoint == "logout" {
                    ctx.logout_session.clone()
                } else {
                    ctx.session.clone()
                }),
                (_, SessionKind::Forged) => cookies.push(format!("flowstate_session={}", "ab".repeat(32))),
                _ => {}
            }
            if !cookies.is_empty() {
                try_header(&mut r, header::COOKIE, &cookies.join("; "));
            }
            let sent_referer = match origin {
                OriginKind::Own => {
                    try_header(&mut r, header::ORIGIN, ORIGIN);
                    Some(format!("{ORIGIN}/cleanup"))
                }
                OriginKind::Foreign => {
                    try_header(&mut r, header::ORIGIN, "http://evil.example");
                    None
                }
                OriginKind::Null => {
                    try_header(&mut r, header::ORIGIN, "null");
                    None
                }
                OriginKind::None => None,
                OriginKind::Referer => Some(format!("{ORIGIN}/runs/run-001?x=1")),
                OriginKind::ForeignReferer => Some("http://evil.example/page".to_string()),
            };
            if let Some(referer_value) = &sent_referer {
                if *origin != OriginKind::Own || *html {
                    try_header(&mut r, header::REFERER, referer_value);
                    referer = Some(referer_value.clone());
                }
            }
            try_header(
                &mut r,
                header::ACCEPT,
                if *html {
                    "text/html,application/xhtml+xml"
                } else {
                    "application/json"
                },
            );
            r
        }
    };
    let host = g.host.clone().unwrap_or_else(|| HOST.to_string());
    try_header(&mut request, header::HOST, &host);
    if let Some(cookie) = &g.cookie {
        try_header(&mut request, header::COOKIE, cookie);
    }
    (request, referer)
}

// ---------------------------------------------------------------------------------------------------------------
// What every answer must be

/// The threads of the generated requests' runtime: every task answering them (those the renderer spawns
/// included) runs on one of them.
const WORKER: &str = "web-fuzz-worker";

/// Panics on [`WORKER`] threads since the hook was installed (the other tests' threads are not counted).
static PANICS: AtomicUsize = AtomicUsize::new(0);

fn count_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if std::thread::current().name() == Some(WORKER) {
                PANICS.fetch_add(1, Ordering::SeqCst);
            }
            default(info);
        }));
    });
}

/// The body of an answer is what its status and content type promise.
fn check_body(answer: &Answer, nonce: &str, referer: Option<&str>) -> Result<(), String> {
    let status = answer.status.as_u16();
    let content_type = answer.header("content-type").to_ascii_lowercase();
    if answer.status.is_redirection() {
        let location = answer.location();
        let local =
            (location.starts_with('/') && !location.starts_with("//") && !location.starts_with("/\\"))
                || location == ORIGIN
                || location.starts_with(&format!("{ORIGIN}/"))
                || location.starts_with(&format!("{ORIGIN}?"));
        let back = referer.is_some_and(|r| location.starts_with(r.split('?').next().unwrap_or(r)));
        if !(local || back) {
            return Err(format!("a redirect to {location:?} (sent Referer {referer:?})"));
        }
        if location.contains(['\r', '\n']) {
            return Err(format!("a Location with a line break: {location:?}"));
        }
        return Ok(());
    }
    if content_type.starts_with("text/html") {
        if !answer.body.starts_with("<!DOCTYPE html>") || !answer.body.contains("</html>") {
            return Err(format!("not a whole HTML document: {}", cut(&answer.body)));
        }
        if status >= 400 && !answer.body.contains(&format!("data-status=\"{status}\"")) {
            return Err(format!(
                "the error page does not show status {status}: {}",
                cut(&answer.body)
            ));
        }
        if !answer.body.contains(flowstate_app::STYLESHEET) {
            return Err("the page does not link the stylesheet".into());
        }
        check_markup(&answer.body, nonce)?;
        return Ok(());
    }
    if content_type.starts_with("application/json") {
        let value: serde_json::Value = serde_json::from_str(&answer.body)
            .map_err(|e| format!("not JSON ({e}): {}", cut(&answer.body)))?;
        if status >= 400 {
            if let Ok(error) = serde_json::from_value::<AppError>(value.clone()) {
                if error.status() != status {
                    return Err(format!("a {status} carrying a {} error: {value}", error.status()));
                }
            } else if value.get("ok") != Some(&serde_json::Value::Bool(false)) {
                return Err(format!("a {status} whose JSON is no AppError: {value}"));
            }
        }
        return Ok(());
    }
    if content_type.starts_with("text/plain") && status >= 400 && !answer.body.is_empty() {
        // axum's own rejections (a query string its extractor cannot read) and /theme's messages.
        return Ok(());
    }
    if (status == 405 || status == 404) && answer.body.is_empty() {
        return Ok(());
    }
    let static_file = ["text/css", "text/javascript", "image/svg+xml"]
        .iter()
        .any(|t| content_type.starts_with(t));
    if status < 400 && static_file {
        return Ok(());
    }
    Err(format!(
        "status {status}, content type {content_type:?}: {}",
        cut(&answer.body)
    ))
}

/// The start of a body for a message (of a page: from its `<main>`).
fn cut(text: &str) -> String {
    let text = text.find("<main").map_or(text, |at| &text[at..]);
    let end = (0..=text.len().min(800))
        .rev()
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(0);
    text[..end].to_string()
}

/// The run ids a runs page lists, in order.
fn listed(html: &str) -> Vec<String> {
    html.split("data-run-id=\"")
        .skip(1)
        .map(|rest| rest[..rest.find('"').unwrap()].to_string())
        .collect()
}

/// What the runs list must show for filter `key` with the literal `value`: the store's answer for it (`None`
/// when the store refuses the value, and the page must then be a 400).
async fn literal_listing(store: &Store, key: &str, value: &str) -> Option<Vec<String>> {
    let mut query = ListQuery::default();
    let trimmed = value.trim();
    if !trimmed.is_empty() {
        match key {
            "pipeline" => query.pipeline_id = Some(trimmed.to_string()),
            "error" => query.error_contains = Some(trimmed.to_string()),
            "prefix" => query.run_id_prefix = Some(value.to_string()),
            other => panic!("{other} is no text filter"),
        }
    }
    match store.list_workflows(&query).await {
        Ok(page) => Some(page.runs.into_iter().map(|r| r.run_id).collect()),
        Err(StoreError::InvalidInput { .. }) => None,
        Err(e) => panic!("the store failed on {key}={value:?}: {e}"),
    }
}

/// Counters for the figure line.
#[derive(Default)]
struct Tally {
    requests: usize,
    /// Requests and the time they took, per kind.
    by_kind: BTreeMap<&'static str, (usize, StdDuration)>,
    by_status: BTreeMap<u16, usize>,
    compared: usize,
    slowest: StdDuration,
}

/// Requests sent at once (the machine's cores answer them in parallel); a proptest case is one batch.
const BATCH: usize = 4;

/// Sends a batch of generated requests at once and checks each answer, then that nothing panicked meanwhile
/// and that the database file is as it was.
async fn run_batch(ctx: &Arc<Ctx>, batch: &[Generated], tally: &Arc<Mutex<Tally>>) -> Result<(), String> {
    let panics = PANICS.load(Ordering::SeqCst);
    let mut tasks = tokio::task::JoinSet::new();
    for g in batch {
        let (ctx, g, tally) = (ctx.clone(), g.clone(), tally.clone());
        tasks.spawn(async move { run_one(&ctx, &g, &tally).await });
    }
    let mut failures = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(Ok(())) => {}
            Ok(Err(failure)) => failures.push(failure),
            Err(e) => failures.push(format!("a request's task failed: {e}")),
        }
    }
    if PANICS.load(Ordering::SeqCst) != panics {
        failures.push("a panic while answering this batch (see the output above)".into());
    }
    if db_bytes(&ctx.db.path) != ctx.bytes {
        failures.push("the database file changed".into());
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures.join("\n"))
    }
}

async fn run_one(ctx: &Ctx, g: &Generated, tally: &Mutex<Tally>) -> Result<(), String> {
    let app = match g.mode {
        RunMode::Default => ctx.default.clone(),
        RunMode::Token => ctx.token.clone(),
        RunMode::ReadOnly => ctx.read_only.clone(),
    };
    let (request, referer) = build(ctx, g);
    let described = format!("{} {}", request.method(), request.uri());
    let head = request.method() == Method::HEAD;
    let started = Instant::now();
    let answer = tokio::time::timeout(StdDuration::from_secs(30), send(app, request))
        .await
        .map_err(|_| format!("{described}: no answer within 30 s (a hang, or a panic in a task)"))?;
    let took = started.elapsed();
    let failure = |what: String| format!("{described} ({:?} mode): {what}", g.mode);
    if answer.status.is_server_error() {
        return Err(failure(format!("{}: {}", answer.status, cut(&answer.body))));
    }
    let nonce = check_headers(&answer).map_err(&failure)?;
    if !head {
        check_body(&answer, &nonce, referer.as_deref()).map_err(&failure)?;
    }
    for secret in [SECRET, ADMIN_TOKEN] {
        if answer.body.contains(secret) {
            return Err(failure(format!("the answer contains {secret:?}")));
        }
    }
    // A runs list filtered by one text filter shows exactly what the store has for the literal value.
    let mut compared = false;
    if let Case::Page {
        path: "/runs",
        pairs,
        head: false,
    } = &g.case
    {
        if let [pair] = pairs.as_slice() {
            if matches!(pair.key.as_str(), "pipeline" | "prefix" | "error") && pair.enc == Enc::Encoded {
                let expected = literal_listing(&ctx.db.store, &pair.key, &pair.value).await;
                match (&expected, answer.status) {
                    (Some(ids), StatusCode::OK) => {
                        let shown = listed(&answer.body);
                        if &shown != ids {
                            return Err(failure(format!("listed {shown:?}, the store has {ids:?}")));
                        }
                        compared = true;
                    }
                    (None, status)
                        if status != StatusCode::BAD_REQUEST && status != StatusCode::FORBIDDEN =>
                    {
                        return Err(failure(format!(
                            "the store refuses the value, the page answered {status}"
                        )));
                    }
                    _ => {}
                }
            }
        }
    }

    let kind = match &g.case {
        Case::Page { path, .. } => match *path {
            "/healthz" => "healthz",
            "/theme" => "theme",
            _ => "page",
        },
        Case::Run { .. } => "run page",
        Case::Api { .. } => "server fn",
        Case::Path { .. } => "path",
    };
    let mut t = tally.lock().unwrap();
    t.requests += 1;
    let by_kind = t.by_kind.entry(kind).or_default();
    by_kind.0 += 1;
    by_kind.1 += took;
    *t.by_status.entry(answer.status.as_u16()).or_default() += 1;
    t.compared += usize::from(compared);
    t.slowest = t.slowest.max(took);
    Ok(())
}

fn runner() -> (TestRunner, String) {
    let requests: u32 = scale(3_000, 30_000);
    let config = Config {
        cases: requests / BATCH as u32,
        failure_persistence: None,
        max_shrink_iters: 300,
        ..Config::default()
    };
    let seed: [u8; 32] = match std::env::var("FLOWSTATE_FUZZ_SEED") {
        Ok(hex) if hex.len() == 64 => {
            let mut seed = [0u8; 32];
            for (i, byte) in seed.iter_mut().enumerate() {
                *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16)
                    .expect("FLOWSTATE_FUZZ_SEED: 64 hex digits");
            }
            seed
        }
        _ if long_mode() => {
            let mut seed = [0u8; 32];
            rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut seed);
            seed
        }
        _ => *b"flowstate web_fuzz: fixed seed!!",
    };
    let hex: String = seed.iter().map(|b| format!("{b:02x}")).collect();
    (
        TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &seed)),
        hex,
    )
}

#[test]
fn generated_requests_never_fail_the_server() {
    count_panics();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name(WORKER)
        .enable_all()
        .build()
        .unwrap();
    let ctx = Arc::new(rt.block_on(context()));
    let (mut runner, seed) = runner();
    let tally = Arc::new(Mutex::new(Tally::default()));
    let started = Instant::now();
    let batches = proptest::collection::vec(generated(), BATCH);
    let result = runner.run(&batches, |batch| {
        rt.block_on(run_batch(&ctx, &batch, &tally))
            .map_err(TestCaseError::fail)
    });
    let elapsed = started.elapsed();
    let t = std::mem::take(&mut *tally.lock().unwrap());
    let per_kind: Vec<String> = t
        .by_kind
        .iter()
        .map(|(kind, (n, time))| {
            format!(
                "{kind} {n} ({:.0} ms each)",
                time.as_secs_f64() * 1000.0 / *n as f64
            )
        })
        .collect();
    figure(
        "web_fuzz",
        format!(
            "{} generated requests ({BATCH} at a time) in {:.1} s, slowest {} ms, seed {seed}; {}; by status {:?}; \
             {} runs lists compared with the store's literal answer; no 5xx, no panic, the database file unchanged",
            t.requests,
            elapsed.as_secs_f64(),
            t.slowest.as_millis(),
            per_kind.join(", "),
            t.by_status,
            t.compared,
        ),
    );
    if let Err(e) = result {
        panic!("{e}\n(reproduce with FLOWSTATE_FUZZ_SEED={seed})");
    }
    assert!(t.by_status.keys().any(|s| *s == 200), "some requests succeed");
    assert!(
        t.by_status.keys().any(|s| *s == 400),
        "some are refused as bad requests"
    );
    assert!(
        t.by_status.keys().any(|s| *s == 403),
        "some are refused by the guards"
    );
}

// ---------------------------------------------------------------------------------------------------------------
// SQL injection in every filter

#[tokio::test]
async fn sql_injection_in_every_filter_matches_nothing_extra() {
    let ctx = context().await;
    let store = &ctx.db.store;
    let mut literal_hits = 0;
    for injection in INJECTIONS {
        let value = encode(injection);
        // Text filters: exactly the store's answer for the literal text, through the page and the API.
        for key in ["pipeline", "prefix", "error"] {
            let expected = literal_listing(store, key, injection).await;
            let page = visit(ctx.default.clone(), &format!("/runs?{key}={value}"), None).await;
            let api = Post::new("/api/runs", &[("search", &format!("{key}={value}"))])
                .send(ctx.default.clone())
                .await;
            match &expected {
                Some(ids) => {
                    assert_eq!(
                        page.status,
                        StatusCode::OK,
                        "{key}={injection:?}: {}",
                        cut(&page.body)
                    );
                    assert_eq!(&listed(&page.body), ids, "{key}={injection:?}: the page");
                    assert_eq!(api.status, StatusCode::OK, "{key}={injection:?}: {}", api.body);
                    let api_ids: Vec<String> = api.json()["runs"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|r| r["run_id"].as_str().unwrap().to_string())
                        .collect();
                    assert_eq!(&api_ids, ids, "{key}={injection:?}: the server function");
                    assert!(
                        ids.len() < runs().len(),
                        "{key}={injection:?} cannot match everything"
                    );
                    literal_hits += ids.len();
                }
                None => {
                    assert_eq!(page.status, StatusCode::BAD_REQUEST, "{key}={injection:?}");
                    assert_eq!(api.status, StatusCode::BAD_REQUEST, "{key}={injection:?}");
                }
            }
        }
        // Statuses, dates, page sizes and cursors: no such value, a 400 naming the parameter (listing nothing).
        for key in [
            "status",
            "created_after",
            "created_before",
            "updated_after",
            "updated_before",
            "limit",
            "cursor",
        ] {
            if injection.trim().is_empty()
                || (key == "status" && injection.trim_matches(',').trim().is_empty())
            {
                continue;
            }
            let page = visit(ctx.default.clone(), &format!("/runs?{key}={value}"), None).await;
            assert_eq!(
                page.status,
                StatusCode::BAD_REQUEST,
                "{key}={injection:?}: {}",
                cut(&page.body)
            );
            assert!(
                page.body.contains(&format!("The parameter “{key}” is not valid")),
                "{key}={injection:?}: {}",
                cut(&page.body)
            );
            assert!(listed(&page.body).is_empty(), "{key}={injection:?} lists nothing");
        }
        // The cleanup preview of a pipeline: the count the store gives for the literal pipeline (a NUL names no
        // run on either backend: 0). A value the store refuses with its typed error is a 400, as for the lists.
        let literal = match store
            .preview_cleanup(&CleanupPolicy {
                older_than_days: 30,
                statuses: vec![Status::Completed, Status::Failed, Status::Cancelled],
                pipeline_id: Some(injection.trim().to_string()).filter(|p| !p.is_empty()),
            })
            .await
        {
            Ok(literal) => Some(literal),
            Err(flowstate_store::StoreError::InvalidInput { .. }) => None,
            Err(e) => panic!("pipeline={injection:?}: {e}"),
        };
        let preview = Post::new(
            "/api/cleanup_preview",
            &[
                ("days", "30"),
                ("statuses", "completed,failed,cancelled"),
                ("pipeline", injection),
            ],
        )
        .send(ctx.default.clone())
        .await;
        let expected = if literal.is_some() {
            StatusCode::OK
        } else {
            StatusCode::BAD_REQUEST
        };
        assert_eq!(
            preview.status, expected,
            "pipeline={injection:?}: {}",
            preview.body
        );
        if let Some(literal) = &literal {
            assert_eq!(
                preview.json()["matched"],
                literal.matched,
                "pipeline={injection:?}"
            );
        }
        let page = visit(
            ctx.default.clone(),
            &format!("/cleanup?preview=1&days=30&status=completed&pipeline={value}"),
            None,
        )
        .await;
        assert_eq!(page.status, expected, "{}", cut(&page.body));
        // The failures page: an injected group is no group.
        let page = visit(
            ctx.default.clone(),
            &format!("/failures?window=30d&group={value}"),
            None,
        )
        .await;
        assert!(
            matches!(page.status, StatusCode::NOT_FOUND | StatusCode::BAD_REQUEST),
            "group={injection:?}: {}",
            page.status
        );
        // The run page: an injected id is no run.
        let page = visit(ctx.default.clone(), &format!("/runs/{value}"), None).await;
        assert_eq!(page.status, StatusCode::NOT_FOUND, "/runs/{injection:?}");
    }
    assert!(
        literal_hits > 0,
        "the planted runs are found by their literal text"
    );
    // The planted text, literally: found, and only it.
    assert_eq!(list_ids(&ctx, "error=%27%20OR%201%3D1%20--").await, ["inj-1"]);
    assert_eq!(
        list_ids(&ctx, "pipeline=x%27%20OR%20%271%27%3D%271").await,
        ["inj-1"]
    );
    assert_eq!(list_ids(&ctx, "prefix=100%25").await, ["100%_done"]);
    assert_eq!(list_ids(&ctx, "prefix=under_").await, ["under_score"]);
    assert_eq!(list_ids(&ctx, "error=%25%27%20OR").await, ["quote'run"]);
    assert_eq!(list_ids(&ctx, "error=a_b%25c%5Cd").await, ["under_score"]);
    assert!(
        list_ids(&ctx, "error=%25").await.len() == 2,
        "a literal % only where the text has one"
    );
    assert_eq!(db_bytes(&ctx.db.path), ctx.bytes, "nothing was written");
}

async fn list_ids(ctx: &Ctx, query: &str) -> Vec<String> {
    let page = visit(ctx.default.clone(), &format!("/runs?{query}"), None).await;
    assert_eq!(page.status, StatusCode::OK, "{query}: {}", cut(&page.body));
    listed(&page.body)
}

// ---------------------------------------------------------------------------------------------------------------
// Static files

#[tokio::test]
async fn static_paths_never_leave_the_site() {
    let ctx = context().await;
    for path in ODD_PATHS {
        for app in [ctx.default.clone(), ctx.token.clone()] {
            // Followed through the redirects to canonical paths, as a browser would.
            let mut uri = path.to_string();
            let mut hops = 0;
            let answer = loop {
                let answer = visit(app.clone(), &uri, None).await;
                assert!(!answer.status.is_server_error(), "{uri}: {}", answer.status);
                assert!(
                    !answer.body.contains(SECRET),
                    "{uri} served a file outside the site"
                );
                let nonce = check_headers(&answer).unwrap_or_else(|e| panic!("{uri}: {e}"));
                check_body(&answer, &nonce, None).unwrap_or_else(|e| panic!("{uri}: {e}"));
                if answer.status != StatusCode::PERMANENT_REDIRECT {
                    break answer;
                }
                uri = answer.location().to_string();
                hops += 1;
                assert!(hops < 3, "{path}: a redirect loop");
            };
            if path.contains("secret")
                || path.contains("Cargo")
                || path.contains("passwd")
                || path.contains(".git")
            {
                assert!(
                    answer.status.is_client_error(),
                    "{path} (at {uri}): {}",
                    answer.status
                );
            }
        }
    }
    // A name longer than the file system takes was a 500 (ENAMETOOLONG from the file server): it names no file.
    for path in [
        format!("/{}", "a".repeat(300)),
        format!("/pkg/{}.js", "b".repeat(5000)),
    ] {
        let answer = visit(ctx.default.clone(), &path, None).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "a {} byte name", path.len());
        assert!(answer.body.contains("data-status=\"404\""));
    }
    let css = visit(ctx.default.clone(), "/pkg/flowstate.css", None).await;
    assert_eq!(css.status, StatusCode::OK, "the site's own files are served");
    assert!(css.header("content-type").starts_with("text/css"));
    assert_eq!(css.header("x-content-type-options"), "nosniff");
    assert!(css
        .header("content-security-policy")
        .contains("frame-ancestors 'none'"));
    assert_eq!(db_bytes(&ctx.db.path), ctx.bytes);
}

// ---------------------------------------------------------------------------------------------------------------
// What the generated requests found (regression tests)

/// server_fn answers every error with 500; arguments it cannot read, and values a server function refuses
/// before setting a status, were 500s. Now each error has its own status (server/src/web/api.rs).
#[tokio::test]
async fn server_function_errors_have_their_own_status() {
    let ctx = context().await;
    let post = |path: &str, body: &str, content_type: &str| {
        Request::post(path)
            .header(header::HOST, HOST)
            .header(header::CONTENT_TYPE, content_type)
            .header(header::ACCEPT, "application/json")
            .body(Body::from(body.to_string()))
            .unwrap()
    };
    let form = "application/x-www-form-urlencoded";
    for (path, body, content_type, status, param) in [
        (
            "/api/cleanup_preview",
            "days=0&statuses=failed&pipeline=",
            form,
            400,
            "days",
        ),
        (
            "/api/cleanup_preview",
            "days=30&statuses=exploded&pipeline=",
            form,
            400,
            "status",
        ),
        ("/api/overview", "stuck=bogus", form, 400, "stuck"),
        ("/api/failures", "window=bogus", form, 400, "window"),
        ("/api/failures", "window=24h&group=nope", form, 400, "group"),
        (
            "/api/failures",
            "window=24h&group=0123456789abcdef",
            form,
            404,
            "",
        ),
        ("/api/run", "run_id=nope", form, 404, ""),
        ("/api/run", "full=all", form, 400, "arguments"),
        ("/api/runs", "", form, 400, "arguments"),
        (
            "/api/runs",
            "{\"search\": \"\"}",
            "application/json",
            400,
            "arguments",
        ),
        ("/api/cleanup_preview", "days=30", form, 400, "arguments"),
    ] {
        let answer = send(ctx.default.clone(), post(path, body, content_type)).await;
        assert_eq!(
            answer.status.as_u16(),
            status,
            "{path} {body:?}: {}",
            cut(&answer.body)
        );
        let error: AppError =
            serde_json::from_str(&answer.body).unwrap_or_else(|e| panic!("{e}: {}", answer.body));
        assert_eq!(error.status(), status, "{path} {body:?}");
        if let AppError::BadRequest { param: p, .. } = &error {
            assert_eq!(p, param, "{path} {body:?}");
        }
    }
    // A body that is not text was a 502 ("the answer could not be read", the browser's wording): it is the
    // request that cannot be read, a 400.
    let request = Request::post("/api/overview")
        .header(header::HOST, HOST)
        .header(header::CONTENT_TYPE, form)
        .body(Body::from(vec![0xff, 0xfe, 0x00, 0x80]))
        .unwrap();
    let answer = send(ctx.default.clone(), request).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.body);
    assert!(matches!(
        serde_json::from_str::<AppError>(&answer.body),
        Ok(AppError::BadRequest { param, .. }) if param == "arguments"
    ));
    assert_eq!(db_bytes(&ctx.db.path), ctx.bytes);
}

/// Requests answered at the same time on several threads: each answer is its own (status, cookies). A static
/// file answered while a page with an error was rendering on the same thread came back with that page's 400
/// (leptos_axum's file handler; static files are now served by the router itself, server/src/web/mod.rs).
#[test]
fn concurrent_requests_never_share_a_response() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let ctx = Arc::new(rt.block_on(context()));
    rt.block_on(async {
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..400 {
            let ctx = ctx.clone();
            tasks.spawn(async move {
                let (what, answer) = match i % 4 {
                    0 => (
                        "a 400 page",
                        visit(ctx.default.clone(), "/runs?limit=0", None).await,
                    ),
                    1 => (
                        "a static file",
                        visit(ctx.token.clone(), "/pkg/flowstate.css", None).await,
                    ),
                    2 => {
                        // Each from its own address (the attempts are limited per address, and 30 a minute
                        // in all).
                        let mut login = Post::login(ADMIN_TOKEN).request();
                        login.extensions_mut().insert(axum::extract::ConnectInfo(
                            std::net::SocketAddr::from(([10, 1, (i / 256) as u8, (i % 256) as u8], 4000)),
                        ));
                        ("a login", send(ctx.token.clone(), login).await)
                    }
                    _ => ("the icon", visit(ctx.token.clone(), "/favicon.svg", None).await),
                };
                let sessions = answer
                    .cookies()
                    .iter()
                    .filter(|c| c.starts_with("flowstate_session="))
                    .count();
                (what, answer.status, sessions)
            });
        }
        let mut wrong = Vec::new();
        let mut logged_in = 0;
        while let Some(done) = tasks.join_next().await {
            let (what, status, sessions) = done.unwrap();
            let expected = match what {
                "a 400 page" => (StatusCode::BAD_REQUEST, 0),
                // The logins beyond the ceiling across all clients are refused, without a session.
                "a login" if status == StatusCode::TOO_MANY_REQUESTS => (StatusCode::TOO_MANY_REQUESTS, 0),
                "a login" => {
                    logged_in += 1;
                    (StatusCode::OK, 1)
                }
                _ => (StatusCode::OK, 0),
            };
            if (status, sessions) != expected {
                wrong.push(format!("{what}: {status}, {sessions} session cookies"));
            }
        }
        assert!(
            wrong.is_empty(),
            "{} of 400 answers were not their own: {wrong:?}",
            wrong.len()
        );
        // The context logged in twice: the rest of the minute's budget, exactly.
        assert_eq!(logged_in, GLOBAL_ATTEMPTS - 2);
    });
}

/// 404 pages rendered at once with other pages, as GETs and as HEADs: no task the renderer spawned panics.
///
/// The 404 page was streamed; a HEAD (whose body axum drops once the first chunk is out) could drop it while a
/// task was still resolving the layout's settings, and that task then panicked on the disposed owner. The race
/// is rare: the long run found it (RELIABILITY.md, with the seed that reproduces it); this test keeps the path
/// covered in CI, and the 404 page is now rendered whole before the answer starts, like the pages.
#[test]
fn not_found_pages_leave_no_task_panicking() {
    count_panics();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name(WORKER)
        .enable_all()
        .build()
        .unwrap();
    let ctx = Arc::new(rt.block_on(context()));
    let before = PANICS.load(Ordering::SeqCst);
    rt.block_on(async {
        let check = |done: Result<(String, StatusCode, String), tokio::task::JoinError>| {
            let (path, status, body) = done.unwrap();
            assert!(!status.is_server_error(), "{path}: {status}: {body}");
        };
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..scale(2_000, 20_000) {
            // 32 in flight: enough to interleave renders; all 20,000 at once would only measure how long the
            // database pool makes the last one wait (beyond its 10 s, a 503 "busy").
            while tasks.len() >= 32 {
                check(tasks.join_next().await.unwrap());
            }
            let ctx = ctx.clone();
            tasks.spawn(async move {
                // Each path both as a GET and as a HEAD.
                let (n, method) = (i / 2, if i % 2 == 0 { Method::GET } else { Method::HEAD });
                let path = match n % 3 {
                    0 => ODD_PATHS[(n / 3) % ODD_PATHS.len()].to_string(),
                    1 => format!("/no/such/page/{n}"),
                    _ => ["/runs?limit=0", "/failures?window=30d", "/", "/cleanup"][(n / 3) % 4].to_string(),
                };
                let request = Request::builder()
                    .method(method)
                    .uri(&path)
                    .header(header::HOST, HOST)
                    .header(header::ACCEPT, "text/html")
                    .body(Body::empty())
                    .unwrap();
                let answer = send(ctx.default.clone(), request).await;
                (path, answer.status, cut(&answer.body))
            });
        }
        while let Some(done) = tasks.join_next().await {
            check(done);
        }
        // Tasks a finished render left behind run on: give them time to fail.
        tokio::time::sleep(StdDuration::from_millis(300)).await;
    });
    assert_eq!(PANICS.load(Ordering::SeqCst), before, "no task panicked");
}
