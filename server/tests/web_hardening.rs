//! Issue 12, items 4, 5 and part of 6, through the real router (`oneshot`, no socket) and the real binary:
//!
//! - where a login goes back to (`next`): only a path of this site, parsed with the URL parser; every hostile
//!   value goes to `/` (open redirect);
//! - the `Host` check in every mode on a loopback bind, `--public-url` for other names (DNS rebinding);
//! - the login limit per IPv4 address and IPv6 /64, and its ceiling across all clients;
//! - `/healthz` shows the database's path to a logged-in operator only;
//! - no page or error says "changes are allowed" when they are not.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration as StdDuration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use chrono::Duration;
use flowstate_app::model::Settings;
use flowstate_server::web::security::PublicUrl;
use flowstate_server::web::{default_site_root, router, AppState};
use flowstate_store::{Status, Store, WorkflowState};
use support::*;

async fn fixture() -> Db {
    let runs: Vec<WorkflowState> = [
        ("old-c1", Status::Completed, 40),
        ("old-c2", Status::Completed, 41),
        ("old-r1", Status::Running, 45),
        ("new-c1", Status::Completed, 1),
    ]
    .into_iter()
    .map(|(id, status, days)| {
        let mut run = WorkflowState::new(id, "p1");
        run.status = status;
        run.created_at = Some(now() - Duration::days(days + 1));
        run.updated_at = Some(now() - Duration::days(days));
        run
    })
    .collect();
    let db = new_db("hardening.db", now(), &runs).await;
    checkpoint(&db.path).await;
    db
}

/// The router as `flowstate serve` builds it: `bind`, `--read-only` or not, an admin token or not, and
/// `--public-url`s.
fn app_of(store: &Store, bind: &str, read_only: bool, token: bool, public: &[&str]) -> Router {
    let settings = Settings {
        read_only,
        ..Default::default()
    };
    let urls: Vec<PublicUrl> = public.iter().map(|u| u.parse().unwrap()).collect();
    let state = AppState::new(
        store.clone(),
        settings,
        default_site_root(),
        bind.parse().unwrap(),
    )
    .with_public_urls(urls)
    .with_admin_token(token.then_some(ADMIN_TOKEN));
    router(state)
}

/// `request` as if it came over a socket from `ip`.
fn from(ip: &str, mut request: Request<Body>) -> Request<Body> {
    let ip: IpAddr = ip.parse().unwrap();
    request
        .extensions_mut()
        .insert(ConnectInfo(SocketAddr::new(ip, 40000)));
    request
}

fn session_of(answer: &Answer) -> Option<String> {
    answer
        .cookies()
        .into_iter()
        .find(|c| c.starts_with("flowstate_session=") && !c.starts_with("flowstate_session=;"))
        .map(|c| c.split(';').next().unwrap().to_string())
}

/// A GET naming `host`.
fn get_for(host: &str, uri: &str) -> Request<Body> {
    Request::get(uri)
        .header(header::HOST, host)
        .header(header::ACCEPT, "text/html")
        .body(Body::empty())
        .unwrap()
}

// ---------------------------------------------------------------------------------------------------------------
// Where a login goes back to (item 4)

/// `next` values a browser could read as another site, another scheme, or that smuggle a header: each sends the
/// operator to `/` after the login.
const HOSTILE_NEXT: &[&str] = &[
    "/\t/other.host/",
    "\t/other.host/",
    "/\r\nSet-Cookie: x=y",
    "/\n/other.host",
    "/\r/other.host",
    "//other.host/",
    "///other.host/",
    "//other.host/cleanup?x=1",
    "/\\other.host/",
    "\\\\other.host/",
    "/\\/other.host",
    "/%09/other.host/",
    "/%0A/other.host",
    "/%0d%0a/other.host",
    "/%2F/other.host/",
    "/%2f%2fother.host",
    "/%5C/other.host/",
    "/%5c%5cother.host",
    "%2F%2Fother.host",
    "/.//other.host/",
    "/./%2Fother.host",
    "https://other.host/",
    "http://127.0.0.1:3000/cleanup",
    "HTTPS://other.host",
    "javascript:alert(document.cookie)",
    "JavaScript:alert(1)",
    "java\tscript:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "other.host/cleanup",
    " /cleanup",
    "/cleanup\u{0085}",
    "/\u{7f}/other.host",
];

/// Paths of this site, with query strings: kept as they are (spaces and non-ASCII percent-encoded).
const GOOD_NEXT: &[(&str, &str)] = &[
    ("/cleanup", "/cleanup"),
    (
        "/cleanup?days=30&status=failed&preview=1",
        "/cleanup?days=30&status=failed&preview=1",
    ),
    (
        "/runs?status=failed&error=%2F%2Fother.host",
        "/runs?status=failed&error=%2F%2Fother.host",
    ),
    ("/runs/old-c1?full=all", "/runs/old-c1?full=all"),
    ("/runs?error=é x", "/runs?error=%C3%A9%20x"),
    ("/", "/"),
];

/// A login (right token) with `next`, from its own client address and router (so the attempt limit never
/// interferes); the answer.
async fn login_with_next(store: &Store, body: String, html: bool) -> Answer {
    let app = app_of(store, HOST, false, true, &[]);
    let mut post = Post::login(ADMIN_TOKEN);
    if html {
        post = post.sent_from("/login");
    }
    let mut request = post.request();
    *request.body_mut() = Body::from(body);
    send(app, from("192.0.2.10", request)).await
}

#[tokio::test]
async fn a_login_goes_back_only_to_a_path_of_this_site() {
    let db = fixture().await;
    let base = format!("token={}&csrf={CSRF}", encode(ADMIN_TOKEN));
    for next in HOSTILE_NEXT {
        for html in [false, true] {
            let answer = login_with_next(&db.store, format!("{base}&next={}", encode(next)), html).await;
            let what = format!("next={next:?} (plain form: {html})");
            assert!(
                session_of(&answer).is_some(),
                "{what}: the login itself works: {}",
                answer.body
            );
            assert_eq!(answer.location(), "/", "{what}");
        }
    }
    // The issue's own request: the tab arrives percent-encoded in the form, the server function decodes it.
    for raw in [
        "/%09/other.host/",
        "%2F%09%2Fother.host%2F",
        "/%5C/other.host",
        "%2F%2Fother.host",
    ] {
        let answer = login_with_next(&db.store, format!("{base}&next={raw}"), false).await;
        assert_eq!(answer.location(), "/", "raw next={raw}");
    }
    for (next, location) in GOOD_NEXT {
        let answer = login_with_next(&db.store, format!("{base}&next={}", encode(next)), false).await;
        assert_eq!(answer.status, StatusCode::OK, "{next}: {}", answer.body);
        assert_eq!(answer.location(), *location, "next={next:?}");
    }
    let answer = login_with_next(&db.store, base.clone(), false).await;
    assert_eq!(answer.location(), "/cleanup", "no next: the cleanup page");

    // The login page puts the same target in its form and its "Continue" link: none of the hostile host.
    let app = app_of(&db.store, HOST, false, true, &[]);
    for next in HOSTILE_NEXT {
        let page = visit(app.clone(), &format!("/login?next={}", encode(next)), None).await;
        assert_eq!(page.status, StatusCode::OK, "{next:?}");
        assert!(
            page.body.contains("name=\"next\" value=\"/\""),
            "{next:?}: the form goes back to /"
        );
        // The only link holding the value is the theme switch's way back to this very page, percent-encoded.
        for attr in ["href=\"", "value=\"", "action=\"", "content=\""] {
            for value in page
                .body
                .split(attr)
                .skip(1)
                .map(|rest| rest.split('"').next().unwrap())
            {
                if value.contains("other.host") || value.contains("alert(") || value.contains("script:") {
                    assert!(
                        value.starts_with("/theme?set=")
                            && !value.contains("//other")
                            && !value.contains('\t'),
                        "{next:?}: {attr}{value}"
                    );
                }
            }
        }
    }
    // The no-JavaScript theme switch follows the same rule.
    for next in HOSTILE_NEXT {
        let answer = visit(
            app.clone(),
            &format!("/theme?set=dark&back={}", encode(next)),
            None,
        )
        .await;
        assert_eq!(answer.status, StatusCode::SEE_OTHER, "{next:?}");
        assert_eq!(answer.location(), "/", "back={next:?}");
    }
    let answer = visit(app, "/theme?set=dark&back=%2Fruns%3Ferror%3D%C3%A9", None).await;
    assert_eq!(answer.location(), "/runs?error=%C3%A9");
}

// ---------------------------------------------------------------------------------------------------------------
// The Host check (item 5)

#[tokio::test]
async fn on_a_loopback_bind_the_host_is_checked_in_every_mode() {
    let db = fixture().await;
    for (mode, read_only, token) in [
        ("no token", false, false),
        ("admin token", false, true),
        ("read-only", true, false),
        ("read-only with a token", true, true),
    ] {
        let app = app_of(&db.store, HOST, read_only, token, &[]);
        for host in [
            "evil.example:3000",
            "127.0.0.1.evil.example",
            "localhost.evil.example:3000",
            "[::1]x",
            "a@127.0.0.1",
        ] {
            for uri in ["/", "/runs/old-c1", "/healthz", "/login", "/pkg/flowstate.css"] {
                let answer = send(app.clone(), get_for(host, uri)).await;
                assert_eq!(
                    answer.status,
                    StatusCode::FORBIDDEN,
                    "{mode}: {host} {uri}: {}",
                    answer.body
                );
                assert!(!answer.body.contains("old-c1"), "{mode}: nothing is read");
            }
            // A server function that only reads, as a rebinding page's script would call it.
            let answer = send(
                app.clone(),
                Post::new("/api/runs", &[("search", "")]).host(host).request(),
            )
            .await;
            assert_eq!(answer.status, StatusCode::FORBIDDEN, "{mode}: {host} /api/runs");
            assert!(answer.json()["Forbidden"]["reason"]
                .as_str()
                .unwrap()
                .contains("this machine"));
        }
        for host in ["127.0.0.1:3000", "localhost:3000", "[::1]:3000", "LOCALHOST"] {
            let answer = send(app.clone(), get_for(host, "/runs/old-c1")).await;
            assert_eq!(answer.status, StatusCode::OK, "{mode}: {host}");
        }
    }

    // A rebinding page cannot burn the login budget: its attempts are refused before they are counted.
    let app = app_of(&db.store, HOST, false, true, &[]);
    for _ in 0..20 {
        let request = Post::login("guess")
            .host("evil.example:3000")
            .origin(Some("http://evil.example:3000"))
            .request();
        let answer = send(app.clone(), from("127.0.0.1", request)).await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{}", answer.body);
    }
    let answer = send(app, from("127.0.0.1", Post::login(ADMIN_TOKEN).request())).await;
    assert_eq!(
        answer.status,
        StatusCode::OK,
        "the operator still logs in: {}",
        answer.body
    );
}

#[tokio::test]
async fn public_urls_are_answered_and_no_other_name() {
    let db = fixture().await;
    // Behind a TLS proxy on this machine: bound to loopback, reached as https://flowstate.example.
    let app = app_of(&db.store, HOST, false, true, &["https://flowstate.example"]);
    for host in ["flowstate.example", "FLOWSTATE.example:443", "127.0.0.1:3000"] {
        let answer = send(app.clone(), get_for(host, "/runs/old-c1")).await;
        assert_eq!(answer.status, StatusCode::OK, "{host}: {}", answer.body);
    }
    for host in [
        "flowstate.example:8443",
        "flowstate.example.evil",
        "evil.example",
        "flowstate.example:80",
    ] {
        let answer = send(app.clone(), get_for(host, "/runs/old-c1")).await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{host}");
        assert!(
            answer.body.contains("https://flowstate.example"),
            "the refusal names the public URL: {}",
            answer.body
        );
    }
    // A login through the proxy: https from the public URL (Secure cookie), even without X-Forwarded-Proto.
    let login = Post::login(ADMIN_TOKEN)
        .host("flowstate.example")
        .origin(Some("https://flowstate.example"))
        .send(app.clone())
        .await;
    assert_eq!(login.status, StatusCode::OK, "{}", login.body);
    let cookie = login
        .cookies()
        .into_iter()
        .find(|c| c.starts_with("flowstate_session="))
        .unwrap();
    assert!(cookie.contains("Secure"), "{cookie}");
    let cookies = format!("flowstate_csrf={CSRF}; {}", session_of(&login).unwrap());
    let before = db_bytes(&db.path);
    let downgraded = Post::delete("old-c1", "old-c1")
        .cookie(Some(&cookies))
        .host("flowstate.example")
        .origin(Some("http://flowstate.example"))
        .send(app.clone())
        .await;
    assert_eq!(
        downgraded.status,
        StatusCode::FORBIDDEN,
        "an http page of the https site"
    );
    assert_eq!(db_bytes(&db.path), before);
    let deleted = Post::delete("old-c1", "old-c1")
        .cookie(Some(&cookies))
        .host("flowstate.example")
        .origin(Some("https://flowstate.example"))
        .send(app)
        .await;
    assert_eq!(deleted.status, StatusCode::OK, "{}", deleted.body);

    // Without a token, a public URL reads but never changes: only this machine does, and not through a proxy.
    let app = app_of(&db.store, HOST, false, false, &["https://flowstate.example"]);
    let before = db_bytes(&db.path);
    let proxied = Post::delete("old-c2", "old-c2")
        .host("flowstate.example")
        .origin(Some("https://flowstate.example"))
        .send(app.clone())
        .await;
    assert_eq!(proxied.status, StatusCode::FORBIDDEN, "{}", proxied.body);
    let mut forwarded = Post::delete("old-c2", "old-c2").request();
    forwarded
        .headers_mut()
        .insert("x-forwarded-for", "203.0.113.7".parse().unwrap());
    let forwarded = send(app.clone(), forwarded).await;
    assert_eq!(forwarded.status, StatusCode::FORBIDDEN, "{}", forwarded.body);
    assert!(forwarded.json()["Forbidden"]["reason"]
        .as_str()
        .unwrap()
        .contains("proxy"));
    assert_eq!(db_bytes(&db.path), before);
    let local = Post::delete("old-c2", "old-c2").send(app).await;
    assert_eq!(local.status, StatusCode::OK, "this machine: {}", local.body);

    // A public bind answers its public URL (and this machine's names), nothing else.
    let app = app_of(&db.store, "0.0.0.0:3000", false, true, &["http://10.0.0.5:3000"]);
    for (host, status) in [
        ("10.0.0.5:3000", StatusCode::OK),
        ("localhost:3000", StatusCode::OK),
        ("10.0.0.6:3000", StatusCode::FORBIDDEN),
        ("10.0.0.5", StatusCode::FORBIDDEN),
        ("rebound.example:3000", StatusCode::FORBIDDEN),
    ] {
        assert_eq!(
            send(app.clone(), get_for(host, "/")).await.status,
            status,
            "{host}"
        );
    }
}

// ---------------------------------------------------------------------------------------------------------------
// The login limit (item 5)

#[tokio::test]
async fn login_attempts_are_limited_per_ipv6_64_and_in_all() {
    let db = fixture().await;
    let app = app_of(&db.store, HOST, false, true, &[]);
    let attempt = |ip: &str, token: &str| {
        let app = app.clone();
        let request = from(ip, Post::login(token).request());
        async move { send(app, request).await }
    };
    // One /64: five attempts from five of its addresses, then every address of it is refused, even with the
    // right token; the next /64 has its own budget.
    for i in 1..=5 {
        let answer = attempt(&format!("2001:db8:1:2::{i}"), "guess").await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{}", answer.body);
    }
    let limited = attempt("2001:db8:1:2:ffff:ffff:ffff:ffff", ADMIN_TOKEN).await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS, "{}", limited.body);
    assert!(session_of(&limited).is_none());
    let retry = limited.json()["TooManyRequests"]["retry_after_secs"]
        .as_u64()
        .unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    // Hammering from the locked /64 is not counted anywhere else.
    for _ in 0..100 {
        assert_eq!(
            attempt("2001:db8:1:2::9", "guess").await.status,
            StatusCode::TOO_MANY_REQUESTS
        );
    }
    let next_net = attempt("2001:db8:1:3::1", ADMIN_TOKEN).await;
    assert_eq!(next_net.status, StatusCode::OK, "another /64: {}", next_net.body);
    // An IPv4 address and its IPv4-mapped IPv6 spelling share one budget.
    for ip in [
        "198.51.100.7",
        "::ffff:198.51.100.7",
        "198.51.100.7",
        "::ffff:198.51.100.7",
        "198.51.100.7",
    ] {
        assert_eq!(attempt(ip, "guess").await.status, StatusCode::FORBIDDEN, "{ip}");
    }
    assert_eq!(
        attempt("::ffff:198.51.100.7", ADMIN_TOKEN).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );

    // Spraying from many addresses: 5 + 1 + 5 = 11 attempts counted so far; 19 more reach the ceiling of 30.
    for i in 0..19u8 {
        let answer = attempt(&format!("203.0.113.{i}"), "guess").await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{i}: {}", answer.body);
    }
    let ceiling = attempt("192.0.2.200", ADMIN_TOKEN).await;
    assert_eq!(ceiling.status, StatusCode::TOO_MANY_REQUESTS, "{}", ceiling.body);
    assert!(
        session_of(&ceiling).is_none(),
        "no guess is checked over the ceiling"
    );
    let v6 = attempt("2001:db8:ffff::1", "guess").await;
    assert_eq!(v6.status, StatusCode::TOO_MANY_REQUESTS);
    // Who is logged in stays logged in.
    let cookies = format!("flowstate_csrf={CSRF}; {}", session_of(&next_net).unwrap());
    let access = Post::new("/api/access", &[])
        .cookie(Some(&cookies))
        .send(app.clone())
        .await;
    assert_eq!(access.json()["logged_in"], true);
    figure(
        "web_hardening login limit",
        "5 per /64 (any address of it), IPv4-mapped = IPv4, refused attempts not counted, 30 in all per minute",
    );
}

// ---------------------------------------------------------------------------------------------------------------
// /healthz and the words of the login (item 6)

#[tokio::test]
async fn healthz_shows_the_database_path_only_to_a_logged_in_operator() {
    let db = fixture().await;
    let path = db.path.to_str().unwrap();
    let healthz = |app: Router, cookie: Option<String>| async move {
        let answer = visit(app, "/healthz", cookie.as_deref()).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
        answer
    };
    for (mode, read_only, token) in [
        ("no token", false, false),
        ("read-only", true, false),
        ("token", false, true),
    ] {
        let app = app_of(&db.store, HOST, read_only, token, &[]);
        let answer = healthz(app, None).await;
        assert!(answer.json().get("db").is_none(), "{mode}: {}", answer.body);
        assert!(!answer.body.contains("hardening.db"), "{mode}");
        assert_eq!(answer.json()["ok"], true);
    }
    let app = app_of(&db.store, HOST, false, true, &[]);
    let forged = format!("flowstate_session={}", "a".repeat(64));
    assert!(healthz(app.clone(), Some(forged))
        .await
        .json()
        .get("db")
        .is_none());
    let login = Post::login(ADMIN_TOKEN).send(app.clone()).await;
    let session = session_of(&login).unwrap();
    let answer = healthz(app, Some(session)).await;
    assert_eq!(answer.json()["db"], path, "{}", answer.body);
}

#[tokio::test]
async fn nothing_says_changes_are_allowed_when_they_are_not() {
    let db = fixture().await;
    for (mode, bind, read_only, allowed) in [
        ("read-only", HOST, true, false),
        ("read-only on a public bind", "0.0.0.0:3000", true, false),
        ("a public bind without a token", "0.0.0.0:3000", false, false),
        ("loopback without a token", HOST, false, true),
    ] {
        let app = app_of(&db.store, bind, read_only, false, &[]);
        let answer = Post::login("anything").send(app.clone()).await;
        assert_eq!(answer.status, StatusCode::CONFLICT, "{mode}: {}", answer.body);
        let reason = answer.json()["Conflict"]["reason"].as_str().unwrap().to_string();
        assert!(reason.contains("nothing to log in to"), "{mode}: {reason}");
        assert_eq!(
            reason.contains("changes are allowed"),
            allowed,
            "{mode}: {reason}"
        );
        if read_only {
            assert!(reason.contains("--read-only"), "{mode}: {reason}");
        }
        let page = visit(app, "/login", None).await;
        assert_eq!(page.status, StatusCode::OK);
        assert_eq!(
            page.body.contains("Changes are allowed"),
            allowed,
            "{mode}: {}",
            page.body
        );
        if read_only {
            assert!(page.body.contains("read-only"), "{mode}: {}", page.body);
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// The real binary: --public-url and FLOWSTATE_PUBLIC_URL

fn flowstate() -> Command {
    Command::new(env!("CARGO_BIN_EXE_flowstate"))
}

#[test]
fn serve_refuses_a_public_bind_without_public_urls_and_bad_urls() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("x.db");
    let run = |args: &[&str], env: &[(&str, &str)]| {
        let mut cmd = flowstate();
        cmd.arg("--db").arg(&db).arg("serve").args(args);
        cmd.env_remove("FLOWSTATE_PUBLIC_URL")
            .env_remove("FLOWSTATE_ADMIN_TOKEN");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, stderr) = run(&["--bind", "0.0.0.0:0", "--read-only"], &[]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("--public-url"), "{stderr}");
    let (code, stderr) = run(
        &["--bind", "0.0.0.0:0"],
        &[("FLOWSTATE_ADMIN_TOKEN", "t0ken-t0ken")],
    );
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("--public-url"), "{stderr}");
    for bad in [
        "ftp://flowstate.example",
        "https://flowstate.example/sub",
        "flowstate.example",
        "https://u:p@h",
    ] {
        let (code, stderr) = run(&["--public-url", bad], &[]);
        assert_eq!(code, Some(2), "{bad}: {stderr}");
        assert!(stderr.contains("public-url"), "{bad}: {stderr}");
    }
    assert!(!db.exists(), "nothing was created");
}

/// One HTTP/1.0 request naming `host`: the status and body.
fn http_get(addr: SocketAddr, host: &str, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(StdDuration::from_secs(60))).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: {host}\r\nAccept: text/html\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let raw = String::from_utf8_lossy(&raw).into_owned();
    let status = raw
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, raw)
}

/// Starts the real server with `args` and `env` (the admin token and public URLs removed unless given); the
/// child, where it listens, and the thread draining its stderr.
fn start_server(
    args: &[&str],
    env: &[(&str, &str)],
) -> (std::process::Child, SocketAddr, std::thread::JoinHandle<()>) {
    let mut cmd = flowstate();
    cmd.arg("serve").args(args);
    cmd.env_remove("FLOWSTATE_PUBLIC_URL")
        .env_remove("FLOWSTATE_ADMIN_TOKEN");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel::<String>();
    let stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let addr = loop {
        let line = rx
            .recv_timeout(StdDuration::from_secs(60))
            .expect("the server says where it listens");
        if let Some(rest) = line.split("flowstate dashboard on http://").nth(1) {
            break rest.split('/').next().unwrap().parse().unwrap();
        }
    };
    (child, addr, reader)
}

#[test]
fn the_real_server_answers_its_public_urls_from_the_flag_or_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let db = db_location(dir.path(), "public.db");
    let db = db.to_str().unwrap();
    let site = dir.path().to_str().unwrap();
    let listed = "https://a.example, http://b.example:8080";
    // The flag wins over the environment (clap's rule): c.example, not a.example or b.example.
    let (mut child, addr, reader) = start_server(
        &[
            "--bind",
            "127.0.0.1:0",
            "--public-url",
            "https://c.example",
            "--db",
            db,
            "--create",
        ],
        &[
            ("FLOWSTATE_ADMIN_TOKEN", "real-server-token"),
            ("FLOWSTATE_PUBLIC_URL", listed),
            ("FLOWSTATE_SITE_ROOT", site),
        ],
    );
    let local = addr.to_string();
    for (host, status) in [
        (local.as_str(), 200),
        ("localhost", 200),
        ("c.example", 200),
        ("a.example", 403),
        ("b.example:8080", 403),
        ("evil.example", 403),
    ] {
        let (got, raw) = http_get(addr, host, "/healthz");
        assert_eq!(got, status, "{host}: {raw}");
    }
    child.kill().unwrap();
    child.wait().unwrap();
    reader.join().unwrap();

    // Without the flag, the environment's comma-separated list.
    let (mut child, addr, reader) = start_server(
        &["--bind", "127.0.0.1:0", "--db", db],
        &[("FLOWSTATE_PUBLIC_URL", listed), ("FLOWSTATE_SITE_ROOT", site)],
    );
    for (host, status) in [("a.example", 200), ("b.example:8080", 200), ("c.example", 403)] {
        let (got, raw) = http_get(addr, host, "/healthz");
        assert_eq!(got, status, "{host}: {raw}");
    }
    child.kill().unwrap();
    child.wait().unwrap();
    reader.join().unwrap();
}
