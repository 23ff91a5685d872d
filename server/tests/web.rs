//! The dashboard through its router, without a socket: each test opens its own database in a temp dir, fills it
//! with runs whose figures are known, and sends requests with `tower::ServiceExt::oneshot`.

mod support;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use chrono::Duration;
use flowstate_store::{Status, Store, WorkflowState, SCHEMA_VERSION};
use support::*;

/// The fixture: 8 runs. By status: 3 completed, 2 failed, 1 running, 1 paused, 1 cancelled. 4 were created in the
/// last 24 h. Execution times 100, 200, 300, 400 ms: mean 250.
const FIXTURE: &[(&str, Status, i64, Option<i64>)] = &[
    // (run id, status, created hours before now, execution time)
    ("run-c1", Status::Completed, 1, Some(100)),
    ("run-c2", Status::Completed, 5, Some(200)),
    ("run-c3", Status::Completed, 30, Some(300)),
    ("run-f1", Status::Failed, 2, Some(400)),
    ("run-f2", Status::Failed, 48, None),
    ("run-r1", Status::Running, 23, None),
    ("run-p1", Status::Paused, 200, None),
    ("run-x1", Status::Cancelled, 25, None),
];

async fn fixture() -> Db {
    let runs: Vec<WorkflowState> = FIXTURE
        .iter()
        .map(|(id, status, hours, ms)| {
            let mut run = WorkflowState::new(*id, "invoice-extraction");
            run.status = status.clone();
            run.created_at = Some(now() - Duration::hours(*hours));
            run.updated_at = run.created_at;
            run.execution_time_ms = *ms;
            run
        })
        .collect();
    new_db("state.db", now(), &runs).await
}

/// The number in `data-value` of the figure inside the `<li data-status="…">` of `status`.
#[track_caller]
fn status_figure(html: &str, status: &str) -> i64 {
    let marker = format!("data-status=\"{status}\"");
    let at = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no status row for {status:?} in the overview"));
    let rest = &html[at..];
    let end = rest.find("</li>").expect("the row ends");
    figure(&rest[..end], "data-value=\"")
}

#[track_caller]
fn figure(html: &str, marker: &str) -> i64 {
    let at = html
        .find(marker)
        .unwrap_or_else(|| panic!("no {marker:?} in {html}"))
        + marker.len();
    let digits: String = html[at..].chars().take_while(|c| c.is_ascii_digit()).collect();
    digits
        .parse()
        .unwrap_or_else(|_| panic!("no number after {marker:?}"))
}

#[tokio::test]
async fn overview_is_complete_html_with_the_real_counts() {
    let f = fixture().await;
    let Answer {
        status,
        headers,
        body: html,
        ..
    } = visit(app(&f.store), "/", None).await;

    assert_eq!(status, StatusCode::OK, "the overview answers 200; body:\n{html}");
    let content_type = headers[header::CONTENT_TYPE].to_str().unwrap();
    assert!(content_type.starts_with("text/html"), "HTML, got {content_type}");
    assert!(html.starts_with("<!DOCTYPE html>"), "a whole document");
    // Leptos appends the resolved resources (for hydration) as scripts after `</html>`; browsers accept that.
    assert!(
        html.contains("</main>") && html.contains("</body></html>"),
        "the document is complete:\n{html}"
    );
    assert!(html.contains("<h1>Overview</h1>"), "the page has its heading");
    assert!(
        !html.contains("Reading the figures"),
        "no loading fallback: the data is in the HTML"
    );

    assert_eq!(
        figure(&html, "data-testid=\"total\" data-value=\""),
        8,
        "total runs"
    );
    assert_eq!(
        figure(&html, "data-testid=\"recent-24h\" data-value=\""),
        4,
        "runs created in the last 24 h"
    );
    for (name, expected) in [
        ("running", 1),
        ("paused", 1),
        ("completed", 3),
        ("failed", 2),
        ("cancelled", 1),
    ] {
        assert_eq!(status_figure(&html, name), expected, "runs with status {name}");
        assert!(
            html.contains(&format!("href=\"/runs?status={name}\"")),
            "{name} links to the filtered list"
        );
    }
    assert!(
        html.contains("250 ms"),
        "the mean execution time of 100, 200, 300 and 400 ms"
    );
    assert!(
        html.contains("datetime=\"2026-03-14T12:00:00Z\""),
        "the instant the figures were read"
    );
    assert!(
        html.contains("/pkg/flowstate.js"),
        "the hydration script is linked"
    );
    assert!(
        html.contains("href=\"/pkg/flowstate.css\""),
        "the stylesheet is linked"
    );
    assert!(
        html.contains("<title>Overview · flowstate</title>"),
        "the title names the page"
    );
}

#[tokio::test]
async fn an_empty_database_shows_zeros() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(new_location(dir.path(), "empty.db").await)
        .await
        .unwrap();
    let Answer {
        status, body: html, ..
    } = visit(app(&store), "/", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(figure(&html, "data-testid=\"total\" data-value=\""), 0);
    assert_eq!(
        status_figure(&html, "failed"),
        0,
        "known statuses are listed even with no runs"
    );
    assert!(html.contains("no data"), "no mean execution time without runs");
}

#[tokio::test]
async fn healthz_reports_the_database() {
    let f = fixture().await;
    let Answer {
        status,
        headers,
        body,
        ..
    } = visit(app(&f.store), "/healthz", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(headers[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    let json: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(json["ok"], true);
    let version = if f.is_postgres() {
        flowstate_store::postgres::PG_SCHEMA_VERSION
    } else {
        SCHEMA_VERSION
    };
    assert_eq!(json["schema_version"], version);
    assert_eq!(json["read_only"], false);
    // The database's path only for a logged-in operator (web_hardening.rs): never without a session.
    assert!(json.get("db").is_none(), "{body}");
}

#[tokio::test]
async fn an_unknown_path_gets_the_404_page() {
    let f = fixture().await;
    let Answer {
        status, body: html, ..
    } = visit(app(&f.store), "/no/such/page", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        html.starts_with("<!DOCTYPE html>"),
        "a whole page, not a bare text"
    );
    assert!(html.contains("Not found"), "the page says what happened: {html}");
    assert!(html.contains("/no/such/page"), "and which address");
    assert!(
        html.contains("aria-label=\"Main\""),
        "with the navigation, so the operator can go on"
    );
}

#[tokio::test]
async fn a_database_failure_is_a_500_page_without_sql() {
    let f = fixture().await;
    // Break the database behind the store's back.
    if let Some(url) = pg_url(&f.path) {
        let pool = sqlx::PgPool::connect(&url).await.unwrap();
        sqlx::query("DROP TABLE workflow_state CASCADE")
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
    } else {
        let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", f.path.display()))
            .await
            .unwrap();
        sqlx::query("DROP TABLE workflow_state")
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
    }

    let Answer {
        status, body: html, ..
    } = visit(app(&f.store), "/", None).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{html}");
    assert!(html.contains("Server error"), "the page says what happened");
    assert!(
        html.contains("server&#x27;s log") || html.contains("server's log"),
        "and where the details are"
    );
    for leak in [
        "no such table",
        "does not exist",
        "SELECT",
        "workflow_state",
        "sqlx",
    ] {
        assert!(!html.contains(leak), "the page must not show {leak:?}");
    }

    let Answer { status, body, .. } = visit(app(&f.store), "/healthz", None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        !body.contains("no such table") && !body.contains("does not exist"),
        "{body}"
    );
}

#[tokio::test]
async fn the_overview_server_function_has_a_stable_url() {
    let f = fixture().await;
    let request = Request::post("/api/overview")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::empty())
        .unwrap();
    let Answer { status, body, .. } = send(app(&f.store), request).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let json: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(json["total"], 8);
    assert_eq!(json["recent_24h"], 4);
    assert_eq!(json["read_at"], "2026-03-14T12:00:00Z");
}

#[tokio::test]
async fn the_theme_link_sets_a_cookie_and_goes_back() {
    let f = fixture().await;
    let Answer { status, headers, .. } = visit(
        app(&f.store),
        "/theme?set=dark&back=%2Fruns%3Fstatus%3Dfailed",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers[header::LOCATION], "/runs?status=failed");
    let cookie = headers[header::SET_COOKIE].to_str().unwrap();
    assert!(cookie.starts_with("flowstate_theme=dark;"), "{cookie}");

    let Answer { headers, .. } =
        visit(app(&f.store), "/theme?set=light&back=%2F%2Fevil.example%2F", None).await;
    assert_eq!(headers[header::LOCATION], "/", "never back to another site");

    let Answer { status, .. } = visit(app(&f.store), "/theme?set=purple", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let request = Request::get("/")
        .header(header::COOKIE, "flowstate_theme=dark")
        .body(Body::empty())
        .unwrap();
    let Answer { body: html, .. } = send(app(&f.store), request).await;
    assert!(
        html.contains("<html lang=\"en\" data-theme=\"dark\""),
        "the server renders the chosen theme"
    );
    let Answer { body: html, .. } = visit(app(&f.store), "/", None).await;
    assert!(
        !html.contains("data-theme=\""),
        "no cookie: the system setting decides"
    );
}

#[tokio::test]
async fn every_page_of_the_navigation_answers() {
    let f = fixture().await;
    for (path, heading) in [
        ("/runs?status=failed", "Runs"),
        ("/runs/run-f1", "Run "),
        ("/failures", "Failures"),
        ("/cleanup", "Cleanup"),
    ] {
        let Answer {
            status, body: html, ..
        } = visit(app(&f.store), path, None).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert!(html.contains(&format!("<h1>{heading}")), "{path} has its heading");
    }
}
