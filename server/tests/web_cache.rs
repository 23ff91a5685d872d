//! The page cache (server/src/web/cache.rs) through the whole router: a page is answered again for at most its
//! max age, with a new CSP nonce each time and its age said; this server's own changes show at once; nothing
//! of one browser's session reaches another; a run's page is kept too, each browser getting it with its own
//! CSRF token (and a browser without a CSRF cookie a new token and the cookie holding it).

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

/// A second browser's CSRF token (the first's is [`CSRF`]).
const OTHER_CSRF: &str = "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210";

/// A failed run's page reached from the failed runs list (as the HTTP bench loads it).
const RUN_PAGE: &str = "/runs/old-failed?list=%2Fruns%3Fstatus%3Dfailed";

/// The token of the page's delete form.
#[track_caller]
fn form_token(html: &str) -> &str {
    let at = html
        .find("name=\"csrf\" value=\"")
        .unwrap_or_else(|| panic!("no delete form with a CSRF token:\n{html}"))
        + "name=\"csrf\" value=\"".len();
    &html[at..at + html[at..].find('"').unwrap()]
}

/// The CSRF token the answer's `Set-Cookie` gives the browser, if any.
fn cookie_token(answer: &Answer) -> Option<String> {
    answer.cookies().into_iter().find_map(|c| {
        c.split(';')
            .next()
            .and_then(|pair| pair.strip_prefix("flowstate_csrf="))
            .map(str::to_string)
    })
}

#[tokio::test]
async fn a_run_page_is_kept_and_each_browser_gets_it_with_its_own_token() {
    let db = three_runs().await;
    let app = app_caching(&db, Duration::from_secs(600), false);
    let (mine, theirs) = (
        format!("flowstate_csrf={CSRF}"),
        format!("flowstate_csrf={OTHER_CSRF}"),
    );
    let first = visit(app.clone(), RUN_PAGE, Some(&mine)).await;
    assert_eq!(cache_state(&first), "miss");
    assert_eq!(form_token(&first.body), CSRF, "the delete form carries the token");
    assert!(cookie_token(&first).is_none(), "the browser has its cookie");

    let second = visit(app.clone(), RUN_PAGE, Some(&theirs)).await;
    assert_eq!(
        cache_state(&second),
        "hit",
        "another browser is answered the kept page"
    );
    assert_eq!(form_token(&second.body), OTHER_CSRF, "with its own token");
    assert!(
        !second.body.contains(CSRF),
        "and nothing of the first browser's token (form or hydration data)"
    );
    assert!(cookie_token(&second).is_none());
    let (n1, n2) = (check_headers(&first).unwrap(), check_headers(&second).unwrap());
    assert_ne!(n1, n2);
    check_markup(&second.body, &n2).unwrap();
    assert_eq!(
        first.body.replace(&n1, &n2).replace(CSRF, OTHER_CSRF),
        second.body,
        "the same page, with the second request's nonce and token"
    );
    assert!(
        first.body.matches(CSRF).count() >= 2,
        "the token is in the form and in the hydration data, both put back"
    );

    // The first browser again: the kept page, with its own token again.
    let third = visit(app.clone(), RUN_PAGE, Some(&mine)).await;
    assert_eq!(cache_state(&third), "hit");
    assert_eq!(form_token(&third.body), CSRF);
    assert!(!third.body.contains(OTHER_CSRF));
}

#[tokio::test]
async fn a_delete_posted_with_the_token_of_a_kept_page_works_and_empties_the_cache() {
    let db = three_runs().await;
    let app = app_caching(&db, Duration::from_secs(600), false);
    let theirs = format!("flowstate_csrf={OTHER_CSRF}");
    visit(app.clone(), RUN_PAGE, Some(&format!("flowstate_csrf={CSRF}"))).await;
    visit(app.clone(), "/runs", None).await;
    let kept = visit(app.clone(), RUN_PAGE, Some(&theirs)).await;
    assert_eq!(cache_state(&kept), "hit");
    let token = form_token(&kept.body).to_string();

    // The second browser deletes the run with the token its kept page gave it: the CSRF check passes.
    let deleted = Post::delete("old-failed", "old-failed")
        .field("csrf", &token)
        .cookie(Some(&theirs))
        .sent_from(RUN_PAGE)
        .send(app.clone())
        .await;
    assert_eq!(deleted.status, StatusCode::FOUND, "{}", deleted.body);
    assert!(!deleted.location().contains("__err="), "{}", deleted.location());
    assert!(db.store.load_state("old-failed").await.unwrap().is_none());

    // The cache was emptied: the run's page says it is gone, the list no longer has it.
    let gone = visit(app.clone(), RUN_PAGE, Some(&theirs)).await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    assert_eq!(gone.header("x-flowstate-page-cache"), "miss");
    let list = visit(app.clone(), "/runs", None).await;
    assert_eq!(cache_state(&list), "miss", "the deletion emptied the cache");
    assert_eq!(listed(&list.body), ["new-running", "old-done"]);

    // The first browser's token in the second browser's form is refused (the tokens stay per browser).
    visit(app.clone(), "/runs/old-done", Some(&theirs)).await;
    let refused = Post::delete("old-done", "old-done")
        .field("csrf", CSRF)
        .cookie(Some(&theirs))
        .send(app.clone())
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    assert!(db.store.load_state("old-done").await.unwrap().is_some());
}

#[tokio::test]
async fn a_browser_without_a_csrf_cookie_gets_a_new_token_and_its_cookie_from_the_cache() {
    let db = three_runs().await;
    let app = app_caching(&db, Duration::from_secs(600), false);
    // The very first request renders the page, for a browser without any cookie.
    let first = visit(app.clone(), RUN_PAGE, None).await;
    assert_eq!(cache_state(&first), "miss");
    let first_token = cookie_token(&first).expect("a new CSRF cookie");
    assert_eq!(
        form_token(&first.body),
        first_token,
        "the page carries the cookie's token"
    );

    // Another new browser: answered from the cache, with a token of its own, the same in its cookie and form.
    let second = visit(app.clone(), RUN_PAGE, None).await;
    assert_eq!(cache_state(&second), "hit");
    let token = cookie_token(&second).expect("a new CSRF cookie on a kept page too");
    assert_eq!(token.len(), 64);
    assert_ne!(token, first_token, "every new browser gets its own token");
    assert_eq!(form_token(&second.body), token);
    assert!(!second.body.contains(&first_token));
    let cookie = second
        .cookies()
        .into_iter()
        .find(|c| c.starts_with("flowstate_csrf="))
        .unwrap();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(attribute), "{attribute} in {cookie}");
    }
    assert_eq!(
        second.cookies().len(),
        1,
        "no other cookie: {:?}",
        second.cookies()
    );

    // With that cookie, the token works.
    let deleted = Post::delete("old-failed", "old-failed")
        .field("csrf", &token)
        .cookie(Some(&format!("flowstate_csrf={token}")))
        .send(app.clone())
        .await;
    assert_eq!(deleted.status, StatusCode::OK, "{}", deleted.body);
    assert!(db.store.load_state("old-failed").await.unwrap().is_none());
}

#[tokio::test]
async fn a_run_page_through_a_proxy_is_another_page() {
    let db = three_runs().await;
    let app = app_caching(&db, Duration::from_secs(600), false);
    let cookie = format!("flowstate_csrf={CSRF}");
    // Straight from this machine, without an admin token: the delete form.
    let direct = visit(app.clone(), RUN_PAGE, Some(&cookie)).await;
    assert_eq!(cache_state(&direct), "miss");
    assert!(direct.body.contains("data-testid=\"delete-run-form\""));
    // Through a proxy, changes are refused: not the kept page with its form, but the refusal.
    let mut request = browser_get(RUN_PAGE, Some(&cookie));
    request
        .headers_mut()
        .insert("x-forwarded-for", "203.0.113.7".parse().unwrap());
    let proxied = send(app.clone(), request).await;
    assert_eq!(cache_state(&proxied), "miss");
    assert!(!proxied.body.contains("data-testid=\"delete-run-form\""));
    assert!(proxied.body.contains("data-testid=\"delete-run-refusal\""));
    // And the direct page is still kept.
    assert_eq!(
        cache_state(&visit(app.clone(), RUN_PAGE, Some(&cookie)).await),
        "hit"
    );
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
