//! Security (issue 4, item 7; see RELIABILITY.md): the headers of every response, every changing endpoint
//! refused without a login, the CSRF token or this site's origin with the database file byte for byte unchanged,
//! the cookies' flags, token comparison, the login rate limit, and no secret in the logs of the real binary.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration as StdDuration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use chrono::{Duration, Utc};
use flowstate_store::{Status, Store, WorkflowState};
use support::*;

/// Idle for 40+ days: 3 completed, 2 failed, 1 cancelled (a default 30-day cleanup deletes these 6), 1 running.
/// Recent: 1 completed, 1 failed.
fn runs(now: chrono::DateTime<Utc>) -> Vec<WorkflowState> {
    [
        ("old-c1", Status::Completed, 40),
        ("old-c2", Status::Completed, 41),
        ("old-c3", Status::Completed, 42),
        ("old-f1", Status::Failed, 43),
        ("old-f2", Status::Failed, 44),
        ("old-x1", Status::Cancelled, 45),
        ("old-r1", Status::Running, 46),
        ("new-c1", Status::Completed, 1),
        ("new-f1", Status::Failed, 2),
    ]
    .into_iter()
    .map(|(id, status, days)| {
        let mut run = WorkflowState::new(id, "p1");
        run.status = status;
        run.error_message = Some(format!("error of {id}"));
        run.created_at = Some(now - Duration::days(days + 1));
        run.updated_at = Some(now - Duration::days(days));
        run
    })
    .collect()
}

async fn fixture() -> Db {
    let db = new_db("security.db", now(), &runs(now())).await;
    checkpoint(&db.path).await;
    db
}

/// Logs in to `app` (token mode) and returns the `flowstate_session=…` cookie.
async fn login(app: &Router) -> String {
    let answer = Post::login(ADMIN_TOKEN).send(app.clone()).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    session_cookie(&answer).expect("a session cookie")
}

fn session_cookie(answer: &Answer) -> Option<String> {
    answer
        .cookies()
        .into_iter()
        .find(|c| c.starts_with("flowstate_session=") && !c.starts_with("flowstate_session=;"))
        .map(|c| c.split(';').next().unwrap().to_string())
}

async fn logged_in(app: &Router, cookies: &str) -> bool {
    let answer = Post::new("/api/access", &[])
        .cookie(Some(cookies))
        .send(app.clone())
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    answer.json()["logged_in"] == true
}

// ---------------------------------------------------------------------------------------------------------------
// Headers

#[tokio::test]
async fn every_response_carries_the_security_headers_and_pages_only_nonced_scripts() {
    let db = fixture().await;
    let app = app(&db.store);
    let other = "f".repeat(64);
    let mut nonces = Vec::new();
    let mut requests: Vec<(&str, Request<Body>)> = [
        "/",
        "/runs",
        "/runs?status=failed&limit=2",
        "/runs/old-c1",
        "/failures?window=30d",
        "/cleanup?preview=1&days=30&status=completed",
        "/login",
        "/runs?limit=0",
        "/runs/no-such-run",
        "/no/such/page",
        "/healthz",
        "/theme?set=dark&back=%2Fruns",
        "/favicon.svg",
        "/pkg/flowstate.css",
    ]
    .into_iter()
    .map(|uri| (uri, browser_get(uri, None)))
    .collect();
    requests.push((
        "a POST refused by the CSRF layer (page)",
        Post::cleanup("6")
            .sent_from("/cleanup")
            .without_field("csrf")
            .request(),
    ));
    requests.push((
        "a POST refused by the CSRF layer (JSON)",
        Post::cleanup("6").field("csrf", &other).request(),
    ));
    requests.push(("a server function", Post::new("/api/overview", &[]).request()));
    requests.push((
        "a server function's error",
        Post::new("/api/overview", &[("stuck", "x")]).request(),
    ));
    for (what, request) in requests {
        let answer = send(app.clone(), request).await;
        assert!(!answer.status.is_server_error(), "{what}: {}", answer.status);
        let nonce = check_headers(&answer).unwrap_or_else(|e| panic!("{what}: {e}"));
        if answer.header("content-type").starts_with("text/html") {
            let scripts = check_markup(&answer.body, &nonce).unwrap_or_else(|e| panic!("{what}: {e}"));
            if answer.status == StatusCode::OK && what.starts_with('/') {
                assert!(
                    scripts >= 1,
                    "{what}: the hydration script is there, with the nonce"
                );
                assert!(
                    answer
                        .body
                        .contains(&format!("<script type=\"module\" nonce=\"{nonce}\">")),
                    "{what}: the hydration script"
                );
            }
        }
        nonces.push(nonce);
    }
    let mut unique = nonces.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), nonces.len(), "a new nonce for every response");
    // The policy itself.
    let answer = visit(app.clone(), "/", None).await;
    let csp = answer.header("content-security-policy");
    assert!(
        csp.contains("script-src 'self' 'nonce-") && csp.contains("'wasm-unsafe-eval'"),
        "{csp}"
    );
    assert!(csp.contains("form-action 'self'"), "{csp}");
    assert!(!csp.contains("unsafe-inline"), "{csp}");
}

/// The failure-rate bars were `style="width: …"` attributes, which `style-src 'self'` blocks; they are SVG now.
#[tokio::test]
async fn the_failures_page_has_no_inline_style() {
    let db = fixture().await;
    let answer = visit(app(&db.store), "/failures?window=30d", None).await;
    assert_eq!(answer.status, StatusCode::OK);
    let nonce = check_headers(&answer).unwrap();
    check_markup(&answer.body, &nonce).unwrap();
    assert!(answer.body.contains("class=\"rate-bar\""), "{}", answer.body);
    assert!(
        answer.body.contains("<rect width=\"50.0\" height=\"1\">"),
        "p1: 1 of its 2 runs of the last 30 days failed: {}",
        answer.body
    );
}

// ---------------------------------------------------------------------------------------------------------------
// Every changing endpoint: refused without login, CSRF token or this site's origin; the file unchanged

#[derive(Clone, Copy, Debug)]
enum Endpoint {
    Cleanup,
    Delete,
    Login,
    Logout,
}

impl Endpoint {
    /// The request that succeeds: every guard satisfied, every value right.
    fn valid(self, cookies: &str) -> Post {
        let post = match self {
            Endpoint::Cleanup => Post::cleanup("6"),
            Endpoint::Delete => Post::delete("old-c1", "old-c1"),
            Endpoint::Login => Post::login(ADMIN_TOKEN),
            Endpoint::Logout => Post::logout(),
        };
        post.cookie(Some(cookies))
    }
}

/// What is wrong with a request, each on its own.
/// One thing wrong with a request: what, and how to make it so.
type Mutation = (&'static str, Box<dyn Fn(Post) -> Post>);

fn mutations(token_mode: bool, session: &str) -> Vec<Mutation> {
    let other = "e".repeat(64);
    let session = session.to_string();
    let no_csrf_cookie = session.clone();
    let wrong_csrf = other.clone();
    let mut out: Vec<Mutation> = vec![
        (
            "no CSRF token in the form",
            Box::new(|p: Post| p.without_field("csrf")),
        ),
        (
            "a wrong CSRF token",
            Box::new(move |p: Post| p.field("csrf", &wrong_csrf)),
        ),
        ("an empty CSRF token", Box::new(|p: Post| p.field("csrf", ""))),
        (
            "no CSRF cookie",
            Box::new(move |p: Post| p.cookie(Some(&no_csrf_cookie)).referer(None)),
        ),
        (
            "a CSRF cookie the server did not make",
            Box::new(move |p: Post| {
                let c = p.cookie.clone().unwrap_or_default().replace(CSRF, "abc");
                p.cookie(Some(&c)).field("csrf", "abc")
            }),
        ),
        (
            "another site's Origin",
            Box::new(|p: Post| p.origin(Some("http://evil.example"))),
        ),
        ("the null Origin", Box::new(|p: Post| p.origin(Some("null")))),
        (
            "another port's Origin",
            Box::new(|p: Post| p.origin(Some("http://127.0.0.1:4000"))),
        ),
        (
            "https for http",
            Box::new(|p: Post| p.origin(Some("https://127.0.0.1:3000"))),
        ),
        (
            "another site's Referer, no Origin",
            Box::new(|p: Post| p.origin(None).referer(Some("http://evil.example/cleanup"))),
        ),
        (
            "a look-alike Referer, no Origin",
            Box::new(|p: Post| {
                p.origin(None)
                    .referer(Some("http://127.0.0.1:3000.evil.example/"))
            }),
        ),
        (
            "neither Origin nor Referer",
            Box::new(|p: Post| p.origin(None).referer(None)),
        ),
        (
            "a plain form post without a token",
            Box::new(|p: Post| p.sent_from("/cleanup").without_field("csrf")),
        ),
    ];
    if token_mode {
        out.push((
            "no login",
            Box::new(|p: Post| p.cookie(Some(&format!("flowstate_csrf={CSRF}")))),
        ));
        out.push((
            "a made-up session",
            Box::new(|p: Post| {
                p.cookie(Some(&format!(
                    "flowstate_csrf={CSRF}; flowstate_session={}",
                    "a".repeat(64)
                )))
            }),
        ));
        out.push((
            "a session that is not shaped like one",
            Box::new(|p: Post| {
                p.cookie(Some(&format!(
                    "flowstate_csrf={CSRF}; flowstate_session=' OR 1=1 --"
                )))
            }),
        ));
    }
    // With or without a token (issue 12, item 5: the Host is checked on a loopback bind in every mode).
    out.push((
        "another Host (DNS rebinding)",
        Box::new(|p: Post| {
            p.host("evil.example:3000")
                .origin(Some("http://evil.example:3000"))
        }),
    ));
    out
}

#[tokio::test]
async fn every_changing_endpoint_is_refused_without_login_csrf_or_origin_and_the_file_is_unchanged() {
    let db = fixture().await;
    let before = db_bytes(&db.path);
    let mut refused = 0;
    for token_mode in [false, true] {
        let mode = Mode {
            token: token_mode,
            ..Default::default()
        };
        let app = app_with(&db.store, mode);
        let (session, cookies) = if token_mode {
            let session = login(&app).await;
            let cookies = format!("flowstate_csrf={CSRF}; {session}");
            (session, cookies)
        } else {
            (String::new(), format!("flowstate_csrf={CSRF}"))
        };
        let endpoints: &[Endpoint] = if token_mode {
            &[
                Endpoint::Cleanup,
                Endpoint::Delete,
                Endpoint::Login,
                Endpoint::Logout,
            ]
        } else {
            &[Endpoint::Cleanup, Endpoint::Delete]
        };
        for endpoint in endpoints {
            for (what, mutate) in mutations(token_mode, &session) {
                // Logging in and out need no session: the session mutations do not apply to them.
                let session_mutation = matches!(
                    what,
                    "no login" | "a made-up session" | "a session that is not shaped like one"
                );
                if matches!(endpoint, Endpoint::Login | Endpoint::Logout) && session_mutation {
                    continue;
                }
                let post = mutate(endpoint.valid(&cookies));
                let answer = post.send(app.clone()).await;
                let label = format!("{endpoint:?} with {what} (token mode: {token_mode})");
                if post.html {
                    assert_eq!(answer.status, StatusCode::FORBIDDEN, "{label}: {}", answer.body);
                    assert!(
                        answer.body.contains("Nothing was changed"),
                        "{label}: {}",
                        answer.body
                    );
                } else {
                    assert_eq!(answer.status, StatusCode::FORBIDDEN, "{label}: {}", answer.body);
                    assert!(
                        answer.json()["Forbidden"]["reason"].is_string(),
                        "{label}: {}",
                        answer.body
                    );
                }
                assert_eq!(db_bytes(&db.path), before, "{label}: the database file changed");
                assert!(
                    session_cookie(&answer).is_none(),
                    "{label}: no session was started"
                );
                assert!(
                    !answer
                        .cookies()
                        .iter()
                        .any(|c| c.starts_with("flowstate_session=;")),
                    "{label}: no session was ended"
                );
                refused += 1;
            }
        }
        if token_mode {
            assert!(
                logged_in(&app, &cookies).await,
                "the refused logouts ended nothing"
            );
        }
    }

    // Read-only mode and a public address without a token refuse even a request that is right in every other way.
    for (what, mode) in [
        ("read-only", Mode::READ_ONLY),
        ("a public address without a token", Mode::PUBLIC),
    ] {
        let app = app_with(&db.store, mode);
        for endpoint in [Endpoint::Cleanup, Endpoint::Delete] {
            let answer = endpoint
                .valid(&format!("flowstate_csrf={CSRF}"))
                .send(app.clone())
                .await;
            assert_eq!(
                answer.status,
                StatusCode::FORBIDDEN,
                "{endpoint:?} {what}: {}",
                answer.body
            );
            assert_eq!(
                db_bytes(&db.path),
                before,
                "{endpoint:?} {what}: the database file changed"
            );
            refused += 1;
        }
    }
    figure(
        "web_security changes",
        format!("{refused} refused changing requests, the database file byte for byte unchanged after each"),
    );

    // The controls: the same requests, right in every way, do change the file (so the comparison sees changes).
    let app = app_with(&db.store, Mode::TOKEN);
    let session = login(&app).await;
    let cookies = format!("flowstate_csrf={CSRF}; {session}");
    let answer = Endpoint::Delete.valid(&cookies).send(app.clone()).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_ne!(db_bytes(&db.path), before, "a deletion changes the file");
    let answer = Post::cleanup("5").cookie(Some(&cookies)).send(app.clone()).await;
    assert_eq!(answer.status, StatusCode::OK, "the other 5: {}", answer.body);
    let answer = Endpoint::Logout.valid(&cookies).send(app.clone()).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert!(!logged_in(&app, &cookies).await, "logged out");
}

// ---------------------------------------------------------------------------------------------------------------
// Cookies

#[tokio::test]
async fn cookies_are_http_only_strict_site_wide_and_secure_behind_https() {
    let db = fixture().await;
    let app = app_with(&db.store, Mode::TOKEN);
    for https in [false, true] {
        let mut request = browser_get("/cleanup", None);
        let mut login = Post::login(ADMIN_TOKEN).request();
        let logout_request = |session: &str| {
            let mut r = Post::logout()
                .cookie(Some(&format!("flowstate_csrf={CSRF}; {session}")))
                .origin(Some(if https { "https://127.0.0.1:3000" } else { ORIGIN }))
                .request();
            if https {
                r.headers_mut()
                    .insert("x-forwarded-proto", "https".parse().unwrap());
            }
            r
        };
        if https {
            for r in [&mut request, &mut login] {
                r.headers_mut()
                    .insert("x-forwarded-proto", "https".parse().unwrap());
            }
            login
                .headers_mut()
                .insert(header::ORIGIN, "https://127.0.0.1:3000".parse().unwrap());
        }
        let page = send(app.clone(), request).await;
        let login = send(app.clone(), login).await;
        assert_eq!(login.status, StatusCode::OK, "{}", login.body);
        let session = session_cookie(&login).unwrap();
        let logout = send(app.clone(), logout_request(&session)).await;
        assert_eq!(logout.status, StatusCode::OK, "{}", logout.body);
        for (what, answer, name) in [
            ("the CSRF cookie", &page, "flowstate_csrf="),
            ("the session cookie", &login, "flowstate_session="),
            ("the cleared session cookie", &logout, "flowstate_session=;"),
        ] {
            let cookie = answer
                .cookies()
                .into_iter()
                .find(|c| c.starts_with(name))
                .unwrap_or_else(|| panic!("{what}: {:?}", answer.cookies()));
            let attributes: Vec<&str> = cookie.split(';').skip(1).map(str::trim).collect();
            for expected in ["HttpOnly", "SameSite=Strict", "Path=/"] {
                assert!(
                    attributes.contains(&expected),
                    "{what} (https {https}): {expected} in {cookie}"
                );
            }
            assert_eq!(
                attributes.contains(&"Secure"),
                https,
                "{what}: Secure only behind https: {cookie}"
            );
            assert!(
                !attributes.iter().any(|a| a.starts_with("Domain")),
                "{what}: this host only: {cookie}"
            );
        }
        let session_attributes = login
            .cookies()
            .into_iter()
            .find(|c| c.starts_with("flowstate_session="))
            .unwrap();
        assert!(
            session_attributes.contains("Max-Age=28800"),
            "an 8-hour session: {session_attributes}"
        );
        let id = session.trim_start_matches("flowstate_session=");
        assert!(
            id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit()),
            "256 random bits: {id}"
        );
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Token comparison and the login rate limit

/// A login from client address `ip` (each address has its own attempt budget).
fn login_from(ip: [u8; 4], token: &str) -> Request<Body> {
    let mut request = Post::login(token).request();
    request
        .extensions_mut()
        .insert(ConnectInfo(SocketAddr::from((ip, 40000))));
    request
}

#[tokio::test]
async fn wrong_tokens_of_any_length_are_refused_the_same_way() {
    let db = fixture().await;
    let app = app_with(&db.store, Mode::TOKEN);
    let mut equal_length = ADMIN_TOKEN.to_string();
    equal_length.replace_range(0..1, "X");
    let mut last_differs = ADMIN_TOKEN.to_string();
    last_differs.pop();
    last_differs.push('X');
    let wrong = [
        ("equal length, first character differs", equal_length),
        ("equal length, last character differs", last_differs),
        (
            "a prefix of the token",
            ADMIN_TOKEN[..ADMIN_TOKEN.len() - 1].to_string(),
        ),
        ("the token and one more character", format!("{ADMIN_TOKEN}x")),
        ("the token with a space", format!(" {ADMIN_TOKEN}")),
        ("the token in capitals", ADMIN_TOKEN.to_uppercase()),
        ("one character", "c".to_string()),
        ("empty", String::new()),
        ("10 KB", "c".repeat(10_000)),
        ("NUL", format!("{ADMIN_TOKEN}\0")),
    ];
    let mut bodies = Vec::new();
    for (i, (what, token)) in wrong.iter().enumerate() {
        let answer = send(app.clone(), login_from([10, 0, 0, i as u8 + 1], token)).await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{what}: {}", answer.body);
        assert!(session_cookie(&answer).is_none(), "{what}");
        bodies.push(answer.body);
    }
    assert!(
        bodies.windows(2).all(|w| w[0] == w[1]),
        "every wrong token gets the very same answer: {bodies:?}"
    );
    assert!(bodies[0].contains("not the admin token"), "{}", bodies[0]);
    let right = send(app.clone(), login_from([10, 0, 0, 99], ADMIN_TOKEN)).await;
    assert_eq!(right.status, StatusCode::OK, "{}", right.body);

    // The comparison itself goes through `subtle` on SHA-256 digests of both sides (constant time in content
    // and length); this guards the code path, as a test cannot measure timing.
    let security = include_str!("../src/web/security/mod.rs");
    let tokens = include_str!("../src/web/security/tokens.rs");
    let csrf = include_str!("../src/web/security/csrf.rs");
    let token_matches = &security[security.find("pub fn token_matches").unwrap()..];
    let token_matches = &token_matches[..token_matches.find("\n    }\n").unwrap()];
    assert!(
        token_matches.contains("digest(candidate).ct_eq(expected)"),
        "{token_matches}"
    );
    assert!(security.contains("use subtle::ConstantTimeEq;"));
    let secrets_match = &tokens[tokens.find("pub fn secrets_match").unwrap()..];
    let secrets_match = &secrets_match[..secrets_match.find("\n}\n").unwrap()];
    assert!(
        secrets_match.contains("digest(a).ct_eq(&digest(b))"),
        "{secrets_match}"
    );
    assert!(tokens.contains("use subtle::ConstantTimeEq;"));
    let check_csrf = &csrf[csrf.find("pub fn check_csrf").unwrap()..];
    let check_csrf = &check_csrf[..check_csrf.find("\n}\n").unwrap()];
    assert!(
        check_csrf.contains("secrets_match(&cookie, submitted)"),
        "{check_csrf}"
    );
    assert!(
        !check_csrf.contains("=="),
        "no plain comparison of the token: {check_csrf}"
    );
}

#[tokio::test]
async fn login_attempts_are_limited_per_client_address() {
    let db = fixture().await;
    let app = app_with(&db.store, Mode::TOKEN);
    let a = [192, 0, 2, 1];
    for i in 0..5 {
        let answer = send(app.clone(), login_from(a, "guess")).await;
        assert_eq!(
            answer.status,
            StatusCode::FORBIDDEN,
            "attempt {i}: {}",
            answer.body
        );
    }
    let limited = send(app.clone(), login_from(a, ADMIN_TOKEN)).await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS, "{}", limited.body);
    assert!(
        session_cookie(&limited).is_none(),
        "not even the right token gets in"
    );
    let retry = limited.json()["TooManyRequests"]["retry_after_secs"]
        .as_u64()
        .unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    // Another address has its own budget.
    let other = send(app.clone(), login_from([192, 0, 2, 2], ADMIN_TOKEN)).await;
    assert_eq!(other.status, StatusCode::OK, "{}", other.body);
    // Proxy headers do not give an address a new budget: they are the client's to write.
    let mut spoofed = login_from(a, ADMIN_TOKEN);
    spoofed
        .headers_mut()
        .insert("x-forwarded-for", "203.0.113.7".parse().unwrap());
    assert_eq!(send(app, spoofed).await.status, StatusCode::TOO_MANY_REQUESTS);
}

// ---------------------------------------------------------------------------------------------------------------
// No secret in the logs of the real binary

/// One HTTP/1.0 request over a new connection (the server closes it after the answer): the status, the
/// headers (names lowercase) and the body.
fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, Vec<(String, String)>, String) {
    let mut stream = TcpStream::connect(addr).expect("the server accepts connections");
    stream.set_read_timeout(Some(StdDuration::from_secs(60))).unwrap();
    let mut request = format!(
        "{method} {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let raw = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (status, headers, body.to_string())
}

fn cookie_of(headers: &[(String, String)], name: &str) -> Option<String> {
    headers
        .iter()
        .filter(|(k, _)| k == "set-cookie")
        .find(|(_, v)| v.starts_with(&format!("{name}=")) && !v.starts_with(&format!("{name}=;")))
        .map(|(_, v)| v.split(';').next().unwrap().to_string())
}

#[test]
fn no_secret_reaches_the_logs_of_the_real_server() {
    const TOKEN: &str = "s3cret-admin-token-Zq81-never-logged";
    let dir = tempfile::tempdir().unwrap();
    let path = db_location(dir.path(), "logs.db");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = Store::open(&path).await.unwrap();
        store.save_many(&runs(Utc::now())).await.unwrap();
        store.close().await;
    });

    let mut child = Command::new(env!("CARGO_BIN_EXE_flowstate"))
        .args(["serve", "--bind", "127.0.0.1:0", "--db"])
        .arg(&path)
        .env("FLOWSTATE_ADMIN_TOKEN", TOKEN)
        .env("FLOWSTATE_LOG", "trace")
        .env("RUST_LOG", "trace")
        .env("FLOWSTATE_SITE_ROOT", dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the flowstate binary starts");
    let (tx, rx) = mpsc::channel::<String>();
    let stderr = child.stderr.take().unwrap();
    let err_reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line.clone());
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    let mut stdout = child.stdout.take().unwrap();
    let out_reader = std::thread::spawn(move || {
        let mut all = String::new();
        let _ = stdout.read_to_string(&mut all);
        all
    });
    let addr: SocketAddr = loop {
        let line = rx
            .recv_timeout(StdDuration::from_secs(60))
            .expect("the server says where it listens");
        if let Some(rest) = line.split("flowstate dashboard on http://").nth(1) {
            break rest.split('/').next().unwrap().parse().unwrap();
        }
    };

    let origin = format!("http://{addr}");
    let (status, headers, _) = http(addr, "GET", "/cleanup", &[("accept", "text/html")], "");
    assert_eq!(status, 200);
    let csrf = cookie_of(&headers, "flowstate_csrf").expect("a CSRF cookie");
    let csrf_value = csrf.trim_start_matches("flowstate_csrf=").to_string();
    let post = |path: &str, body: &str, cookies: &str, html: bool| {
        let referer = format!("{origin}/login");
        let mut headers = vec![
            ("content-type", "application/x-www-form-urlencoded"),
            ("accept", if html { "text/html" } else { "application/json" }),
            ("origin", origin.as_str()),
            ("cookie", cookies),
        ];
        if html {
            headers.push(("referer", referer.as_str()));
        }
        http(addr, "POST", path, &headers, body)
    };
    let login_body = |token: &str| format!("token={}&csrf={csrf_value}&next=%2Fcleanup", encode(token));

    // A wrong login (fetch and plain form), a right one, a cleanup, a logout; then the rate limit.
    let (status, _, body) = post("/api/login", &login_body("wrong-guess"), &csrf, false);
    assert_eq!(status, 403, "{body}");
    let (status, _, _) = post("/api/login", &login_body(&format!("{TOKEN}x")), &csrf, true);
    assert_eq!(status, 302, "a plain form post goes back to the page");
    let (status, headers, body) = post("/api/login", &login_body(TOKEN), &csrf, false);
    assert_eq!(status, 200, "{body}");
    let session = cookie_of(&headers, "flowstate_session").expect("a session");
    let session_value = session.trim_start_matches("flowstate_session=").to_string();
    let cookies = format!("{csrf}; {session}");
    let (status, _, body) = post(
        "/api/cleanup_preview",
        "days=30&statuses=completed%2Cfailed%2Ccancelled&pipeline=",
        &cookies,
        false,
    );
    assert_eq!(status, 200, "{body}");
    let matched = serde_json::from_str::<serde_json::Value>(&body).unwrap()["matched"]
        .as_i64()
        .unwrap();
    assert_eq!(matched, 6);
    let (status, _, body) = post(
        "/api/run_cleanup",
        &format!(
            "days=30&statuses=completed%2Cfailed%2Ccancelled&pipeline=&confirm_count=6&csrf={csrf_value}"
        ),
        &cookies,
        false,
    );
    assert_eq!(status, 200, "{body}");
    let (status, _, _) = http(
        addr,
        "GET",
        "/cleanup",
        &[("accept", "text/html"), ("cookie", &cookies)],
        "",
    );
    assert_eq!(status, 200);
    let (status, _, body) = post("/api/logout", &format!("csrf={csrf_value}"), &cookies, false);
    assert_eq!(status, 200, "{body}");
    for _ in 0..2 {
        let (status, _, body) = post("/api/login", &login_body("another-guess"), &csrf, false);
        assert_eq!(status, 403, "{body}");
    }
    // Five attempts from this address within a minute: the sixth is refused, even with the right token.
    let (status, headers, body) = post("/api/login", &login_body(TOKEN), &csrf, false);
    assert_eq!(status, 429, "rate-limited over a real socket: {body}");
    assert!(cookie_of(&headers, "flowstate_session").is_none());

    child.kill().unwrap();
    child.wait().unwrap();
    let log = err_reader.join().unwrap() + &out_reader.join().unwrap();
    for (what, secret) in [
        ("the admin token", TOKEN),
        ("the session id", session_value.as_str()),
        ("the CSRF token", csrf_value.as_str()),
    ] {
        assert!(!log.contains(secret), "{what} appears in the log");
        assert!(
            !log.contains(&encode(secret)),
            "{what} (url-encoded) appears in the log"
        );
    }
    for expected in [
        "admin logged in",
        "login refused",
        "cleanup done",
        "TRACE",
        "DEBUG",
    ] {
        assert!(
            log.contains(expected),
            "the log holds {expected:?}: the test saw a verbose log"
        );
    }
    figure(
        "web_security logs",
        format!(
            "the real server at trace level wrote {} log lines ({} KB) for 11 requests; no token, session id or \
             CSRF token in them",
            log.lines().count(),
            log.len() / 1024
        ),
    );
}
