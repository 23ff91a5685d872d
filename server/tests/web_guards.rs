//! The guards of every change, through the router (`oneshot`, no socket): read-only mode, the admin login, the
//! CSRF token and the origin check, the confirmed count, running and paused runs, the audit log. Each refusal
//! is checked to leave the database exactly as it was (runs and audit log).
//!
//! Requests are built the way a browser sends them: `fetch` calls (no `Accept: text/html`, answered with a
//! status and a JSON error) and plain form posts without JavaScript (`Accept: text/html` and a `Referer`,
//! answered with a redirect back to the page, which shows the error).

mod support;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use chrono::Duration;
use flowstate_store::{ListQuery, Status, Store, WorkflowState};
use support::*;

/// 11 runs. Idle for 40 days: 3 completed, 2 failed, 1 cancelled (the 6 a default 30-day cleanup deletes), 1
/// running, 1 paused. Idle for 2 days: 1 completed, 1 failed, 1 running.
const FIXTURE: &[(&str, Status, &str, i64)] = &[
    // (run id, status, pipeline, days since the last update)
    ("old-c1", Status::Completed, "p1", 40),
    ("old-c2", Status::Completed, "p1", 40),
    ("old-c3", Status::Completed, "p2", 41),
    ("old-f1", Status::Failed, "p1", 42),
    ("old-f2", Status::Failed, "p2", 43),
    ("old-x1", Status::Cancelled, "p2", 44),
    ("old-r1", Status::Running, "p1", 45),
    ("old-s1", Status::Paused, "p2", 46),
    ("new-c4", Status::Completed, "p1", 2),
    ("new-f3", Status::Failed, "p2", 2),
    ("new-r2", Status::Running, "p1", 2),
];
const OLD_TERMINAL: &[&str] = &["old-c1", "old-c2", "old-c3", "old-f1", "old-f2", "old-x1"];

async fn fixture() -> Db {
    let runs: Vec<WorkflowState> = FIXTURE
        .iter()
        .map(|(id, status, pipeline, days)| {
            let mut run = WorkflowState::new(*id, *pipeline);
            run.status = status.clone();
            run.created_at = Some(now() - Duration::days(*days + 1));
            run.updated_at = Some(now() - Duration::days(*days));
            run
        })
        .collect();
    new_db("state.db", now(), &runs).await
}

/// What a refusal must leave alone: the run ids and the audit log.
#[derive(Debug, PartialEq)]
struct Snapshot {
    runs: Vec<String>,
    audit: usize,
}

async fn snapshot(store: &Store) -> Snapshot {
    let page = store
        .list_workflows(&ListQuery {
            limit: Some(1000),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut runs: Vec<String> = page.runs.into_iter().map(|r| r.run_id).collect();
    runs.sort();
    Snapshot {
        runs,
        audit: store.audit_log(1000).await.unwrap().len(),
    }
}

/// The request is refused with `status` and nothing changed.
#[track_caller]
fn assert_refused(answer: &Answer, status: StatusCode, before: &Snapshot, after: &Snapshot, what: &str) {
    assert_eq!(answer.status, status, "{what}: status; body: {}", answer.body);
    assert_eq!(before, after, "{what}: the database must be unchanged");
}

// ---------------------------------------------------------------------------------------------------------------
// The cleanup

#[tokio::test]
async fn a_confirmed_cleanup_deletes_exactly_the_previewed_runs_and_writes_one_audit_entry() {
    let f = fixture().await;
    let before = snapshot(&f.store).await;

    let preview = Post::new(
        "/api/cleanup_preview",
        &[
            ("days", "30"),
            ("statuses", "completed,failed,cancelled"),
            ("pipeline", ""),
        ],
    )
    .send(app(&f.store))
    .await;
    assert_eq!(preview.status, StatusCode::OK, "{}", preview.body);
    let preview = preview.json();
    assert_eq!(preview["matched"], 6, "{preview}");
    assert_eq!(
        preview["by_status"],
        serde_json::json!([["completed", 3], ["failed", 2], ["cancelled", 1]])
    );
    assert_eq!(
        preview["cutoff"]["iso"], "2026-02-12T12:00:00Z",
        "30 days before now"
    );
    assert_eq!(snapshot(&f.store).await, before, "a preview changes nothing");
    // What it would free (issue 15): the store's estimate for the same policy.
    let estimate = f
        .store
        .estimate_cleanup_bytes(&flowstate_store::CleanupPolicy::older_than_days(30), 6)
        .await
        .unwrap();
    assert!(estimate.bytes > 0);
    assert_eq!(
        preview["estimated_bytes"],
        serde_json::json!([estimate.bytes, true]),
        "{preview}"
    );

    let done = Post::cleanup("6").send(app(&f.store)).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    let json = done.json();
    assert_eq!(json["deleted"], 6);
    assert_eq!(json["matched"], 6);
    let audit_id = json["audit_id"].as_i64().unwrap();
    assert!(
        done.location()
            .starts_with("/cleanup?days=30&status=completed&status=failed&status=cancelled&done="),
        "the browser is sent to the result: {:?}",
        done.location()
    );
    assert!(done.location().ends_with(&format!("done={audit_id}")));

    let after = snapshot(&f.store).await;
    let expected: Vec<String> = before
        .runs
        .iter()
        .filter(|id| !OLD_TERMINAL.contains(&id.as_str()))
        .cloned()
        .collect();
    assert_eq!(after.runs, expected, "exactly the previewed runs are gone");
    let log = f.store.audit_log(10).await.unwrap();
    assert_eq!(log.len(), 1, "one audit entry");
    assert_eq!(log[0].id, audit_id);
    assert_eq!(log[0].actor, "local");
    assert_eq!(log[0].action, "cleanup");
    assert_eq!(log[0].matched, Some(6));
    assert_eq!(log[0].affected, 6);
    assert_eq!(log[0].detail["older_than_days"], 30);
    assert_eq!(
        log[0].detail["statuses"],
        serde_json::json!(["completed", "failed", "cancelled"])
    );
    // Which runs it deleted (issue 15), and what it freed.
    let mut recorded = f.store.audit_run_ids(audit_id, None, 100).await.unwrap();
    recorded.sort();
    let mut old: Vec<String> = OLD_TERMINAL.iter().map(|s| s.to_string()).collect();
    old.sort();
    assert_eq!(recorded, old, "the run ids the cleanup deleted are recorded");
    assert!(
        log[0].detail["space"]["bytes_freed"].as_i64().is_some(),
        "{}",
        log[0].detail
    );

    // The page the browser is sent to shows the result and the history.
    let page = visit(app(&f.store), done.location(), None).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.body.contains("data-testid=\"cleanup-done\""),
        "{}",
        page.body
    );
    assert!(page.body.contains("Deleted 6 runs"), "the result is shown");
    assert!(
        page.body.contains("data-testid=\"history-freed\""),
        "the history says what it freed"
    );
    assert!(
        page.body.contains(&format!("data-audit-id=\"{audit_id}\"")),
        "the history lists it"
    );
}

#[tokio::test]
async fn the_cleanup_works_as_plain_form_posts_without_javascript() {
    let f = fixture().await;
    let page_url = "/cleanup?preview=1&days=30&status=completed&status=failed&status=cancelled&pipeline=";
    let page = visit(app(&f.store), page_url, Some(&format!("flowstate_csrf={CSRF}"))).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(
        page.body
            .contains("data-testid=\"preview-count\" data-value=\"6\""),
        "{}",
        page.body
    );
    assert!(
        page.body.contains(&format!("name=\"csrf\" value=\"{CSRF}\"")),
        "the form carries the token"
    );
    assert!(
        page.body.contains("action=\"/api/run_cleanup\""),
        "the confirmation posts to the server function"
    );

    let done = Post::cleanup("6").sent_from(page_url).send(app(&f.store)).await;
    assert_eq!(done.status, StatusCode::FOUND, "{}", done.body);
    assert!(
        done.location().starts_with("/cleanup?days=30&"),
        "{}",
        done.location()
    );
    assert!(done.location().contains("&done="), "{}", done.location());
    assert_eq!(snapshot(&f.store).await.runs.len(), FIXTURE.len() - 6);
    let result = visit(app(&f.store), done.location(), None).await;
    assert!(result.body.contains("Deleted 6 runs"), "{}", result.body);
}

#[tokio::test]
async fn a_changed_count_deletes_nothing_and_shows_the_new_preview() {
    let f = fixture().await;
    let before = snapshot(&f.store).await;

    // The operator saw 5, but 6 match now.
    let answer = Post::cleanup("5").send(app(&f.store)).await;
    assert_refused(
        &answer,
        StatusCode::CONFLICT,
        &before,
        &snapshot(&f.store).await,
        "a stale count",
    );
    let err = answer.json();
    let reason = err["Conflict"]["reason"].as_str().unwrap();
    assert!(
        reason.contains("Nothing was deleted") && reason.contains("6 match"),
        "{reason}"
    );

    for typed in ["", "six", "-1", "6.0"] {
        let answer = Post::cleanup(typed).send(app(&f.store)).await;
        assert_refused(
            &answer,
            StatusCode::BAD_REQUEST,
            &before,
            &snapshot(&f.store).await,
            typed,
        );
    }

    // Without JavaScript: back to the page, which shows the message and the new preview.
    let page_url = "/cleanup?preview=1&days=30&status=completed&status=failed&status=cancelled&pipeline=";
    let answer = Post::cleanup("5").sent_from(page_url).send(app(&f.store)).await;
    assert_eq!(answer.status, StatusCode::FOUND, "{}", answer.body);
    assert!(
        answer.location().contains("__err="),
        "the error travels in the URL: {}",
        answer.location()
    );
    assert_eq!(snapshot(&f.store).await, before);
    let back = answer.location().strip_prefix(ORIGIN).unwrap().to_string();
    let page = visit(app(&f.store), &back, Some(&format!("flowstate_csrf={CSRF}"))).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(
        page.body.contains("data-testid=\"cleanup-error\""),
        "the refusal is shown: {}",
        page.body
    );
    assert!(page.body.contains("Nothing was deleted"), "with its reason");
    assert!(
        page.body
            .contains("data-testid=\"preview-count\" data-value=\"6\""),
        "and the new preview"
    );
}

#[tokio::test]
async fn running_and_paused_runs_are_deleted_only_when_named() {
    let f = fixture().await;
    // The default statuses never include them.
    let answer = Post::cleanup("6").send(app(&f.store)).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let left = snapshot(&f.store).await.runs;
    assert!(
        left.contains(&"old-r1".to_string()) && left.contains(&"old-s1".to_string()),
        "{left:?}"
    );

    // No status at all is refused (it must never fall back to a default).
    let before = snapshot(&f.store).await;
    let answer = Post::cleanup("2").field("statuses", "").send(app(&f.store)).await;
    assert_refused(
        &answer,
        StatusCode::BAD_REQUEST,
        &before,
        &snapshot(&f.store).await,
        "no status",
    );
    let answer = Post::cleanup("2")
        .field("statuses", "running,exploded")
        .send(app(&f.store))
        .await;
    assert_refused(
        &answer,
        StatusCode::BAD_REQUEST,
        &before,
        &snapshot(&f.store).await,
        "an unknown status",
    );

    // Named, they go (the recent running run stays).
    let answer = Post::cleanup("2")
        .field("statuses", "running,paused")
        .send(app(&f.store))
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let left = snapshot(&f.store).await.runs;
    assert_eq!(
        left,
        ["new-c4", "new-f3", "new-r2"],
        "only the recent runs are left"
    );
}

#[tokio::test]
async fn a_pipeline_limits_the_cleanup() {
    let f = fixture().await;
    let answer = Post::cleanup("3")
        .field("pipeline", "p1")
        .send(app(&f.store))
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let left = snapshot(&f.store).await.runs;
    for gone in ["old-c1", "old-c2", "old-f1"] {
        assert!(!left.contains(&gone.to_string()), "{gone} deleted");
    }
    for kept in ["old-c3", "old-f2", "old-x1"] {
        assert!(left.contains(&kept.to_string()), "{kept} of p2 kept");
    }
    assert_eq!(f.store.audit_log(1).await.unwrap()[0].detail["pipeline"], "p1");
}

// ---------------------------------------------------------------------------------------------------------------
// The guards

#[tokio::test]
async fn read_only_mode_refuses_every_change_and_the_page_says_so() {
    let f = fixture().await;
    let mode = Mode::READ_ONLY;
    let before = snapshot(&f.store).await;
    let answer = Post::cleanup("6").send(app_with(&f.store, mode)).await;
    assert_refused(
        &answer,
        StatusCode::FORBIDDEN,
        &before,
        &snapshot(&f.store).await,
        "read-only cleanup",
    );
    assert!(answer.body.contains("--read-only"), "{}", answer.body);
    let answer = Post::delete("old-c1", "old-c1")
        .send(app_with(&f.store, mode))
        .await;
    assert_refused(
        &answer,
        StatusCode::FORBIDDEN,
        &before,
        &snapshot(&f.store).await,
        "read-only delete",
    );

    let page = visit(
        app_with(&f.store, mode),
        "/cleanup?preview=1&days=30&status=completed",
        None,
    )
    .await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("Read-only mode"), "the banner");
    assert!(
        page.body.contains("data-testid=\"cleanup-refusal\""),
        "the page says deleting is refused"
    );
    assert!(
        !page.body.contains("data-testid=\"confirm-form\""),
        "and offers no confirmation"
    );
    assert!(
        page.body.contains("data-testid=\"preview-count\""),
        "previews still work"
    );
}

#[tokio::test]
async fn a_bad_or_missing_csrf_token_is_refused_with_403() {
    let f = fixture().await;
    let before = snapshot(&f.store).await;
    let other = "f".repeat(64);
    let cases = [
        ("no token in the form", Post::cleanup("6").without_field("csrf")),
        ("a wrong token", Post::cleanup("6").field("csrf", &other)),
        ("no cookie", Post::cleanup("6").cookie(None)),
        (
            "a cookie we did not make",
            Post::cleanup("6")
                .cookie(Some("flowstate_csrf=abc"))
                .field("csrf", "abc"),
        ),
        (
            "another cookie",
            Post::cleanup("6").cookie(Some(&format!("flowstate_csrf={other}"))),
        ),
        (
            "delete without a token",
            Post::delete("old-c1", "old-c1").without_field("csrf"),
        ),
        (
            "delete with a wrong token",
            Post::delete("old-c1", "old-c1").field("csrf", &other),
        ),
        (
            "a no-JS form without a token",
            Post::cleanup("6").sent_from("/cleanup").without_field("csrf"),
        ),
        (
            "a login without a token",
            Post::new("/api/login", &[("token", ADMIN_TOKEN)]),
        ),
        ("a POST to a page", Post::new("/cleanup", &[("days", "30")])),
    ];
    for (what, post) in cases {
        let answer = post.send(app(&f.store)).await;
        assert_refused(
            &answer,
            StatusCode::FORBIDDEN,
            &before,
            &snapshot(&f.store).await,
            what,
        );
        if post.html {
            assert!(
                answer.body.contains("<h1>Not allowed"),
                "{what}: a page for the browser: {}",
                answer.body
            );
            assert!(answer.body.contains("CSRF"), "{what}: saying why");
        } else {
            assert!(
                answer.json()["Forbidden"]["reason"].is_string(),
                "{what}: {}",
                answer.body
            );
        }
    }
}

#[tokio::test]
async fn the_server_function_checks_the_csrf_token_again() {
    // The header satisfies the layer, but the form's own token is wrong: the function refuses by itself.
    let f = fixture().await;
    let before = snapshot(&f.store).await;
    let mut request = Post::cleanup("6").field("csrf", &"e".repeat(64)).request();
    request
        .headers_mut()
        .insert("x-csrf-token", CSRF.parse().unwrap());
    let answer = send(app(&f.store), request).await;
    assert_refused(
        &answer,
        StatusCode::FORBIDDEN,
        &before,
        &snapshot(&f.store).await,
        "function check",
    );
    assert!(answer.body.contains("CSRF"), "{}", answer.body);

    // And the header alone is enough for the layer (a fetch call that sends no form field is still checked).
    let mut request = Post::cleanup("6").request();
    request
        .headers_mut()
        .insert("x-csrf-token", CSRF.parse().unwrap());
    assert_eq!(send(app(&f.store), request).await.status, StatusCode::OK);
}

#[tokio::test]
async fn a_foreign_or_missing_origin_is_refused_with_403() {
    let f = fixture().await;
    let before = snapshot(&f.store).await;
    let cases = [
        (
            "another origin",
            Post::cleanup("6").origin(Some("http://evil.example")),
        ),
        ("the null origin", Post::cleanup("6").origin(Some("null"))),
        (
            "another port",
            Post::cleanup("6").origin(Some("http://127.0.0.1:4000")),
        ),
        (
            "https for an http server",
            Post::cleanup("6").origin(Some("https://127.0.0.1:3000")),
        ),
        (
            "a foreign referer and no origin",
            Post::cleanup("6")
                .origin(None)
                .referer(Some("http://evil.example/cleanup")),
        ),
        (
            "a look-alike referer",
            Post::cleanup("6")
                .origin(None)
                .referer(Some("http://127.0.0.1:3000.evil.example/")),
        ),
        ("neither origin nor referer", Post::cleanup("6").origin(None)),
        (
            "a delete from another site",
            Post::delete("old-c1", "old-c1").origin(Some("http://evil.example")),
        ),
    ];
    for (what, post) in cases {
        let answer = post.send(app(&f.store)).await;
        assert_refused(
            &answer,
            StatusCode::FORBIDDEN,
            &before,
            &snapshot(&f.store).await,
            what,
        );
    }
    // A same-origin Referer without Origin is accepted (older browsers).
    let answer = Post::cleanup("6")
        .origin(None)
        .referer(Some(&format!("{ORIGIN}/cleanup?days=30")))
        .send(app(&f.store))
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
}

#[tokio::test]
async fn with_an_admin_token_changes_need_a_login() {
    let f = fixture().await;
    let mode = Mode::TOKEN;
    let before = snapshot(&f.store).await;
    let answer = Post::cleanup("6").send(app_with(&f.store, mode)).await;
    assert_refused(
        &answer,
        StatusCode::FORBIDDEN,
        &before,
        &snapshot(&f.store).await,
        "no login",
    );
    assert!(answer.body.contains("log in"), "{}", answer.body);
    let answer = Post::delete("old-c1", "old-c1")
        .send(app_with(&f.store, mode))
        .await;
    assert_refused(
        &answer,
        StatusCode::FORBIDDEN,
        &before,
        &snapshot(&f.store).await,
        "no login (delete)",
    );
    let forged = format!("flowstate_csrf={CSRF}; flowstate_session={}", "a".repeat(64));
    let answer = Post::cleanup("6")
        .cookie(Some(&forged))
        .send(app_with(&f.store, mode))
        .await;
    assert_refused(
        &answer,
        StatusCode::FORBIDDEN,
        &before,
        &snapshot(&f.store).await,
        "a made-up session",
    );

    let page = visit(
        app_with(&f.store, mode),
        "/cleanup?preview=1&days=30&status=failed",
        None,
    )
    .await;
    assert!(
        page.body.contains("href=\"/login?next="),
        "the page offers a login: {}",
        page.body
    );

    // One router for the rest: sessions live in it.
    let app = app_with(&f.store, mode);
    let wrong = Post::login("guess").send(app.clone()).await;
    assert_eq!(wrong.status, StatusCode::FORBIDDEN, "{}", wrong.body);
    assert!(
        wrong
            .cookies()
            .iter()
            .all(|c| !c.starts_with("flowstate_session=")),
        "no session"
    );

    let login = Post::new(
        "/api/login",
        &[("token", ADMIN_TOKEN), ("csrf", CSRF), ("next", "/cleanup")],
    )
    .send(app.clone())
    .await;
    assert_eq!(login.status, StatusCode::OK, "{}", login.body);
    assert_eq!(login.location(), "/cleanup");
    let cookie = login
        .cookies()
        .into_iter()
        .find(|c| c.starts_with("flowstate_session="))
        .expect("a session cookie");
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(attribute), "{attribute} in {cookie}");
    }
    assert!(!cookie.contains("Secure"), "not over plain http: {cookie}");
    let session = cookie.split(';').next().unwrap().to_string();
    let session_id = session.trim_start_matches("flowstate_session=");
    assert_eq!(session_id.len(), 64, "256 random bits");
    let cookies = format!("flowstate_csrf={CSRF}; {session}");

    let done = Post::cleanup("6").cookie(Some(&cookies)).send(app.clone()).await;
    assert_eq!(done.status, StatusCode::OK, "logged in: {}", done.body);
    assert_eq!(f.store.audit_log(1).await.unwrap()[0].actor, "admin");

    let page = visit(app.clone(), "/cleanup", Some(&cookies)).await;
    assert!(
        page.body.contains("Logged in with the admin token"),
        "{}",
        page.body
    );

    let out = Post::logout().cookie(Some(&cookies)).send(app.clone()).await;
    assert_eq!(out.status, StatusCode::OK, "{}", out.body);
    assert!(out
        .cookies()
        .iter()
        .any(|c| c.starts_with("flowstate_session=;") && c.contains("Max-Age=0")));
    let before = snapshot(&f.store).await;
    let answer = Post::delete("old-r1", "old-r1")
        .field("active_ok", "yes")
        .cookie(Some(&cookies))
        .send(app)
        .await;
    assert_refused(
        &answer,
        StatusCode::FORBIDDEN,
        &before,
        &snapshot(&f.store).await,
        "after logout",
    );
}

#[tokio::test]
async fn the_session_cookie_is_secure_over_https() {
    let f = fixture().await;
    let app = app_with(&f.store, Mode::TOKEN);
    let mut request = Post::login(ADMIN_TOKEN)
        .origin(Some("https://127.0.0.1:3000"))
        .request();
    request
        .headers_mut()
        .insert("x-forwarded-proto", "https".parse().unwrap());
    let login = send(app, request).await;
    assert_eq!(login.status, StatusCode::OK, "{}", login.body);
    let cookie = login
        .cookies()
        .into_iter()
        .find(|c| c.starts_with("flowstate_session="))
        .unwrap();
    assert!(cookie.contains("; Secure"), "{cookie}");
}

#[tokio::test]
async fn login_attempts_are_rate_limited() {
    let f = fixture().await;
    let app = app_with(&f.store, Mode::TOKEN);
    for i in 0..5 {
        let wrong = Post::login("guess").send(app.clone()).await;
        assert_eq!(wrong.status, StatusCode::FORBIDDEN, "attempt {i}: {}", wrong.body);
    }
    // The sixth attempt within a minute is refused, even with the right token.
    let limited = Post::login(ADMIN_TOKEN).send(app.clone()).await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS, "{}", limited.body);
    assert!(
        limited.json()["TooManyRequests"]["retry_after_secs"]
            .as_u64()
            .unwrap()
            >= 1
    );
    assert!(limited
        .cookies()
        .iter()
        .all(|c| !c.starts_with("flowstate_session=")));
}

#[tokio::test]
async fn without_a_token_a_public_bind_refuses_changes() {
    let f = fixture().await;
    let before = snapshot(&f.store).await;
    let answer = Post::cleanup("6").send(app_with(&f.store, Mode::PUBLIC)).await;
    assert_refused(
        &answer,
        StatusCode::FORBIDDEN,
        &before,
        &snapshot(&f.store).await,
        "public bind",
    );
    assert!(answer.body.contains("FLOWSTATE_ADMIN_TOKEN"), "{}", answer.body);
}

#[tokio::test]
async fn without_a_token_only_requests_for_this_machine_are_answered() {
    // DNS rebinding: a page of evil.example, re-pointed at 127.0.0.1, is same-origin with itself and gets a CSRF
    // cookie of its own; only its Host header gives it away.
    let f = fixture().await;
    let before = snapshot(&f.store).await;
    let rebound = Post::cleanup("6");
    let mut request = rebound.request();
    request
        .headers_mut()
        .insert(header::HOST, "evil.example:3000".parse().unwrap());
    request
        .headers_mut()
        .insert(header::ORIGIN, "http://evil.example:3000".parse().unwrap());
    let answer = send(app(&f.store), request).await;
    assert_refused(
        &answer,
        StatusCode::FORBIDDEN,
        &before,
        &snapshot(&f.store).await,
        "a rebound host",
    );
    let mut read = Request::get("/runs/old-c1").body(Body::empty()).unwrap();
    read.headers_mut()
        .insert(header::HOST, "evil.example:3000".parse().unwrap());
    assert_eq!(
        send(app(&f.store), read).await.status,
        StatusCode::FORBIDDEN,
        "reads too"
    );

    // This machine by any of its names is fine.
    let answer = Post::cleanup("6")
        .host("localhost:3000")
        .origin(Some("http://localhost:3000"))
        .send(app(&f.store))
        .await;
    assert_eq!(answer.status, StatusCode::OK, "localhost: {}", answer.body);
    let answer = Post::delete("old-r1", "old-r1")
        .field("active_ok", "yes")
        .host("[::1]:3000")
        .origin(Some("http://[::1]:3000"))
        .send(app(&f.store))
        .await;
    assert_eq!(answer.status, StatusCode::OK, "[::1]: {}", answer.body);

    // With a token too, on a loopback bind: a rebinding page could otherwise read every page and use up the
    // login budget (issue 12, item 5). Public URLs are `--public-url` (web_hardening.rs).
    let mut request = Request::get("/cleanup").body(Body::empty()).unwrap();
    request
        .headers_mut()
        .insert(header::HOST, "flowstate.example".parse().unwrap());
    let answer = send(app_with(&f.store, Mode::TOKEN), request).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN, "{}", answer.body);
}

// ---------------------------------------------------------------------------------------------------------------
// Deleting one run

#[tokio::test]
async fn delete_run_needs_the_typed_id_and_writes_an_audit_entry() {
    let f = fixture().await;
    let before = snapshot(&f.store).await;
    let answer = Post::delete("old-c1", "old-c2").send(app(&f.store)).await;
    assert_refused(
        &answer,
        StatusCode::BAD_REQUEST,
        &before,
        &snapshot(&f.store).await,
        "the wrong id typed",
    );
    let answer = Post::delete("nope", "nope").send(app(&f.store)).await;
    assert_refused(
        &answer,
        StatusCode::NOT_FOUND,
        &before,
        &snapshot(&f.store).await,
        "an unknown run",
    );
    let answer = Post::delete("old-r1", "old-r1").send(app(&f.store)).await;
    assert_refused(
        &answer,
        StatusCode::CONFLICT,
        &before,
        &snapshot(&f.store).await,
        "a running run, unasked",
    );

    let answer = Post::delete("old-c1", " old-c1 ").send(app(&f.store)).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(answer.location(), "/runs");
    let after = snapshot(&f.store).await;
    assert_eq!(after.runs.len(), before.runs.len() - 1);
    assert!(!after.runs.contains(&"old-c1".to_string()));
    let log = f.store.audit_log(10).await.unwrap();
    assert_eq!(log.len(), 1);
    assert_eq!(
        (log[0].actor.as_str(), log[0].action.as_str()),
        ("local", "delete_run")
    );
    assert_eq!(log[0].detail["run_id"], "old-c1");
    assert_eq!(log[0].affected, 1);
    assert_eq!(
        f.store.audit_run_ids(log[0].id, None, 10).await.unwrap(),
        vec!["old-c1".to_string()],
        "the deleted run's id is recorded with its entry"
    );

    let answer = Post::delete("old-r1", "old-r1")
        .field("active_ok", "yes")
        .send(app(&f.store))
        .await;
    assert_eq!(
        answer.status,
        StatusCode::OK,
        "a running run, named: {}",
        answer.body
    );

    // Without JavaScript: a refusal goes back to the run page with the error; success goes to /runs.
    let answer = Post::delete("old-c2", "typo")
        .sent_from("/runs/old-c2")
        .send(app(&f.store))
        .await;
    assert_eq!(answer.status, StatusCode::FOUND);
    assert!(
        answer.location().starts_with(&format!("{ORIGIN}/runs/old-c2?")),
        "{}",
        answer.location()
    );
    assert!(answer.location().contains("__err="));
    let answer = Post::delete("old-c2", "old-c2")
        .sent_from("/runs/old-c2")
        .send(app(&f.store))
        .await;
    assert_eq!(answer.status, StatusCode::FOUND);
    assert_eq!(answer.location(), "/runs");
    assert_eq!(f.store.audit_log(10).await.unwrap().len(), 3);
}

// ---------------------------------------------------------------------------------------------------------------
// Tokens and pages

#[tokio::test]
async fn pages_get_an_http_only_strict_csrf_cookie_that_matches_their_forms() {
    let f = fixture().await;
    let page = visit(app(&f.store), "/cleanup?preview=1&days=30&status=completed", None).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let cookie = page
        .cookies()
        .into_iter()
        .find(|c| c.starts_with("flowstate_csrf="))
        .expect("a CSRF cookie");
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(attribute), "{attribute} in {cookie}");
    }
    let token = cookie
        .split(';')
        .next()
        .unwrap()
        .trim_start_matches("flowstate_csrf=");
    assert_eq!(token.len(), 64);
    assert!(
        page.body.contains(&format!("name=\"csrf\" value=\"{token}\"")),
        "the confirmation form carries the cookie's token"
    );

    // A browser that has the cookie keeps it.
    let again = visit(
        app(&f.store),
        "/cleanup",
        Some(&format!("flowstate_csrf={token}")),
    )
    .await;
    assert!(again.cookies().iter().all(|c| !c.starts_with("flowstate_csrf=")));
    // Two browsers get two tokens.
    let other = visit(app(&f.store), "/cleanup", None).await;
    assert!(!other.cookies().iter().any(|c| c.contains(token)));
}

#[tokio::test]
async fn reads_need_no_token_and_bad_policies_are_400_pages() {
    let f = fixture().await;
    let read = send(
        app(&f.store),
        Request::post("/api/cleanup_options").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(read.status, StatusCode::OK, "{}", read.body);
    assert_eq!(read.json()["pipelines"], serde_json::json!(["p1", "p2"]));

    for (uri, param) in [
        ("/cleanup?preview=1&days=0&status=failed", "days"),
        ("/cleanup?preview=1&days=abc&status=failed", "days"),
        ("/cleanup?preview=1&days=30", "status"),
        ("/cleanup?preview=1&days=30&status=exploded", "status"),
    ] {
        let page = visit(app(&f.store), uri, None).await;
        assert_eq!(page.status, StatusCode::BAD_REQUEST, "{uri}");
        assert!(
            page.body.contains(&format!("“{param}”")),
            "{uri} names {param}: {}",
            page.body
        );
    }

    let page = visit(app(&f.store), "/cleanup", None).await;
    assert_eq!(page.status, StatusCode::OK);
    for status in ["completed", "failed", "cancelled"] {
        assert!(
            page.body.contains(&format!(
                "id=\"status-{status}\" name=\"status\" value=\"{status}\" checked"
            )),
            "{status} checked by default"
        );
    }
    for status in ["running", "paused"] {
        assert!(
            page.body.contains(&format!(
                "id=\"status-{status}\" name=\"status\" value=\"{status}\">"
            )),
            "{status} not checked by default: {}",
            page.body
        );
    }
    assert!(
        page.body.contains("<option value=\"p1\""),
        "the pipelines are offered"
    );
    assert!(
        !page.body.contains("data-testid=\"preview\""),
        "no preview before the form is sent"
    );

    let login = visit(app(&f.store), "/login", None).await;
    assert_eq!(login.status, StatusCode::OK);
    assert!(login.body.contains("nothing to log in to"), "{}", login.body);
}
