//! The page cache (server/src/web/cache.rs) through the whole router: a page is answered again for at most its
//! max age, with a new CSP nonce each time and its age said; this server's own changes show at once; nothing
//! of one browser's session reaches another; pages with this browser's CSRF token are never kept.

mod support;

use std::time::Duration;

use axum::http::StatusCode;
use axum::Router;
use flowstate_app::model::Settings;
use flowstate_server::web::{default_site_root, router, AppState};
use flowstate_store::{Status, WorkflowState};
use support::*;

/// The router over `db` with the page cache keeping pages for `max_age`.
fn app_caching(db: &Db, max_age: Duration, read_only: bool) -> Router {
    let settings = Settings {
        read_only,
        ..Default::default()
    };
    let state = AppState::new(
        db.store.clone(),
        settings,
        default_site_root(),
        HOST.parse().unwrap(),
    )
    .with_page_cache(max_age);
    router(state)
}

fn run(id: &str, status: Status, minutes_ago: i64) -> WorkflowState {
    let mut run = WorkflowState::new(id, "cache-pipeline");
    run.status = status;
    run.created_at = Some(now() - chrono::Duration::minutes(minutes_ago));
    run.updated_at = run.created_at;
    run
}

async fn three_runs() -> Db {
    new_db(
        "cache.db",
        now(),
        &[
            run("old-done", Status::Completed, 90 * 24 * 60),
            run("old-failed", Status::Failed, 80 * 24 * 60),
            run("new-running", Status::Running, 5),
        ],
    )
    .await
}

/// The run ids of a runs list.
fn listed(html: &str) -> Vec<String> {
    html.split("data-run-id=\"")
        .skip(1)
        .map(|rest| rest[..rest.find('"').unwrap()].to_string())
        .collect()
}

#[track_caller]
fn cache_state(answer: &Answer) -> &str {
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    answer.header("x-flowstate-page-cache")
}

#[tokio::test]
async fn a_kept_page_is_the_same_page_with_a_new_nonce_and_its_age() {
    let db = three_runs().await;
    let app = app_caching(&db, Duration::from_secs(60), false);
    for uri in ["/", "/runs", "/runs?status=failed", "/failures"] {
        let first = visit(app.clone(), uri, None).await;
        assert_eq!(cache_state(&first), "miss", "{uri}");
        let second = visit(app.clone(), uri, None).await;
        assert_eq!(cache_state(&second), "hit", "{uri}");
        let age: u64 = second
            .header("age")
            .parse()
            .expect("an Age header in whole seconds");
        assert!(age < 60, "{uri}: age {age}");

        let (n1, n2) = (check_headers(&first).unwrap(), check_headers(&second).unwrap());
        assert_ne!(n1, n2, "every answer has its own nonce");
        assert!(first.body.contains(&n1) && second.body.contains(&n2), "{uri}");
        assert!(
            !second.body.contains(&n1),
            "{uri}: the first answer's nonce must not be reused"
        );
        check_markup(&second.body, &n2).unwrap_or_else(|e| panic!("{uri}: {e}"));
        assert_eq!(first.body.replace(&n1, &n2), second.body, "{uri}: the same page");
        assert_eq!(first.header("content-type"), second.header("content-type"));
    }
    // Another router (another server) has its own cache.
    let other = app_caching(&db, Duration::from_secs(60), false);
    assert_eq!(cache_state(&visit(other, "/runs", None).await), "miss");
}

#[tokio::test]
async fn other_writers_show_once_the_page_is_older_than_its_max_age() {
    let db = three_runs().await;
    // Long enough that a slow (debug, loaded) first render still leaves the second request inside it.
    let max_age = Duration::from_secs(2);
    let app = app_caching(&db, max_age, false);
    let before = visit(app.clone(), "/runs", None).await;
    assert_eq!(listed(&before.body).len(), 3);

    // Another process (here: the store directly, not through the dashboard) adds a run.
    db.store
        .save_state(&run("late", Status::Failed, 1))
        .await
        .unwrap();
    let soon = visit(app.clone(), "/runs", None).await;
    assert_eq!(cache_state(&soon), "hit");
    assert_eq!(
        listed(&soon.body).len(),
        3,
        "within the max age the kept page answers"
    );

    tokio::time::sleep(max_age + Duration::from_millis(50)).await;
    let later = visit(app.clone(), "/runs", None).await;
    assert_eq!(cache_state(&later), "miss");
    assert_eq!(listed(&later.body).len(), 4, "{:?}", listed(&later.body));
    assert!(listed(&later.body).contains(&"late".to_string()));
}

#[tokio::test]
async fn a_change_through_the_dashboard_shows_at_once() {
    let db = three_runs().await;
    // A max age far longer than the test: only the change can make the pages new.
    let app = app_caching(&db, Duration::from_secs(600), false);
    for uri in ["/runs", "/"] {
        visit(app.clone(), uri, None).await;
        assert_eq!(cache_state(&visit(app.clone(), uri, None).await), "hit");
    }
    assert!(listed(&visit(app.clone(), "/runs", None).await.body).contains(&"old-done".to_string()));

    let deleted = Post::delete("old-done", "old-done").send(app.clone()).await;
    assert_eq!(deleted.status, StatusCode::OK, "{}", deleted.body);
    assert!(db.store.load_state("old-done").await.unwrap().is_none());

    let after = visit(app.clone(), "/runs", None).await;
    assert_eq!(cache_state(&after), "miss", "the deletion emptied the cache");
    assert_eq!(listed(&after.body), ["new-running", "old-failed"]);

    // A refused change empties it too (harmless), and a read-only server function does not.
    visit(app.clone(), "/runs", None).await;
    let refused = Post::delete("old-failed", "wrong").send(app.clone()).await;
    assert!(refused.status.is_client_error(), "{}", refused.status);
    assert_eq!(cache_state(&visit(app.clone(), "/runs", None).await), "miss");
    assert!(db.store.load_state("old-failed").await.unwrap().is_some());
}

#[tokio::test]
async fn pages_with_this_browsers_csrf_token_are_never_kept() {
    let db = three_runs().await;
    let app = app_caching(&db, Duration::from_secs(600), false);
    let cookie = format!("flowstate_csrf={CSRF}");
    // A run's page carries the delete form, with this browser's token in it.
    for _ in 0..2 {
        let page = visit(app.clone(), "/runs/old-done", Some(&cookie)).await;
        assert_eq!(cache_state(&page), "miss");
        assert!(page.body.contains(CSRF), "the delete form carries the token");
    }
    // The lists carry no token: they are kept, and another browser gets them without anyone's token.
    let first = visit(app.clone(), "/runs", Some(&cookie)).await;
    assert_eq!(cache_state(&first), "miss");
    assert!(!first.body.contains(CSRF));
    let other_browser = "flowstate_csrf=fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210";
    let second = visit(app.clone(), "/runs", Some(other_browser)).await;
    assert_eq!(cache_state(&second), "hit");
    assert!(!second.body.contains(CSRF) && !second.body.contains("fedcba9876543210fedcba"));
}

#[tokio::test]
async fn each_session_and_theme_has_its_own_pages() {
    let db = three_runs().await;
    let app = app_caching(&db, Duration::from_secs(600), false);
    let dark = visit(app.clone(), "/runs", Some("flowstate_theme=dark")).await;
    assert_eq!(cache_state(&dark), "miss");
    let light = visit(app.clone(), "/runs", Some("flowstate_theme=light")).await;
    assert_eq!(cache_state(&light), "miss", "another theme is another page");
    assert_eq!(
        cache_state(&visit(app.clone(), "/runs", Some("flowstate_theme=dark")).await),
        "hit"
    );
    let session = visit(
        app.clone(),
        "/runs",
        Some("flowstate_theme=dark; flowstate_session=abc"),
    )
    .await;
    assert_eq!(cache_state(&session), "miss", "another session is another page");
    // Other paths and queries are other pages; unknown runs (404) are not kept.
    assert_eq!(
        cache_state(&visit(app.clone(), "/runs?status=running", None).await),
        "miss"
    );
    for _ in 0..2 {
        let missing = visit(app.clone(), "/runs/nope", None).await;
        assert_eq!(missing.status, StatusCode::NOT_FOUND);
        assert_eq!(missing.header("x-flowstate-page-cache"), "miss");
    }
    // The cleanup page (its preview is read when shown) is never kept.
    for _ in 0..2 {
        let cleanup = visit(app.clone(), "/cleanup", None).await;
        assert_eq!(cleanup.status, StatusCode::OK);
        assert_eq!(cleanup.header("x-flowstate-page-cache"), "");
    }
}

#[tokio::test]
async fn a_max_age_of_zero_renders_every_page() {
    let db = three_runs().await;
    let app = app_caching(&db, Duration::ZERO, false);
    visit(app.clone(), "/runs", None).await;
    db.store
        .save_state(&run("late", Status::Failed, 1))
        .await
        .unwrap();
    let again = visit(app.clone(), "/runs", None).await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.header("x-flowstate-page-cache"), "");
    assert_eq!(listed(&again.body).len(), 4);
}
