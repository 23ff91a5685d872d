//! The background-task columns of flujo's PostgreSQL layout (`metadata`, `is_background_task`, `parent_run_id`,
//! `task_id`, `background_error`) on the dashboard, through the router: the run page's "Background task" block
//! and metadata, `?full=` and `/raw/...` of the two large ones, and the runs list's `parent=` and `background=`
//! filters.

mod support;

use axum::http::StatusCode;
use chrono::Duration;
use flowstate_store::{RunExtras, WorkflowState};
use scraper::{Html, Selector};
use serde_json::json;
use support::*;

fn run(id: &str, minutes_ago: i64) -> WorkflowState {
    let mut run = WorkflowState::new(id, "pipe");
    run.created_at = Some(now() - Duration::minutes(minutes_ago));
    run.updated_at = run.created_at;
    run
}

fn task(id: &str, parent: &str, minutes_ago: i64) -> WorkflowState {
    let mut run = run(id, minutes_ago);
    run.extras = RunExtras {
        metadata: Some(json!({"origin": "worker-7", "attempt": 2})),
        is_background_task: true,
        parent_run_id: Some(parent.to_string()),
        task_id: Some(format!("task/{id}")),
        background_error: None,
    };
    run
}

/// `parent` started `child-1` (failed, with a long error and large metadata) and `child-2`; `lone` is a plain
/// run; `tagged` has only metadata.
async fn made_up() -> Db {
    let mut child_1 = task("child-1", "parent", 5);
    child_1.extras.background_error = Some(format!(
        "RuntimeError: the task gave up\n{}THE-ERROR-END",
        "retrying the call. ".repeat(2000)
    ));
    let items: Vec<String> = (0..3000).map(|i| format!("metadata item {i}")).collect();
    child_1.extras.metadata = Some(json!({"items": items, "last": "THE-METADATA-END"}));
    let mut tagged = run("tagged", 30);
    tagged.extras.metadata = Some(json!({"team": "billing"}));
    new_db(
        "background.db",
        now(),
        &[
            run("parent", 60),
            child_1,
            task("child-2", "parent", 10),
            run("lone", 20),
            tagged,
        ],
    )
    .await
}

#[track_caller]
fn ok(answer: (StatusCode, String), uri: &str) -> Html {
    let (status, html) = answer;
    assert_eq!(status, StatusCode::OK, "GET {uri}:\n{html}");
    Html::parse_document(&html)
}

fn select<'a>(doc: &'a Html, css: &str) -> Vec<scraper::ElementRef<'a>> {
    doc.select(&Selector::parse(css).unwrap()).collect()
}

#[track_caller]
fn text(doc: &Html, css: &str) -> String {
    select(doc, css)
        .first()
        .unwrap_or_else(|| panic!("no element {css}"))
        .text()
        .collect()
}

fn listed(doc: &Html) -> Vec<String> {
    select(doc, "[data-run-id]")
        .iter()
        .map(|e| e.value().attr("data-run-id").unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn a_background_task_page_shows_its_parent_task_error_and_metadata() {
    let db = made_up().await;
    let doc = ok(get(&db.store, "/runs/child-2").await, "/runs/child-2");
    assert_eq!(text(&doc, "[data-field=is-background-task]"), "yes");
    let parent = select(&doc, "[data-testid=parent-run]");
    assert_eq!(parent.len(), 1);
    assert_eq!(parent[0].value().attr("href"), Some("/runs/parent"));
    assert_eq!(parent[0].text().collect::<String>(), "parent");
    assert_eq!(text(&doc, "[data-field=task-id]"), "task/child-2");
    assert!(
        select(&doc, "#background_error").is_empty(),
        "no error, no error block"
    );
    let metadata = text(&doc, "#metadata pre");
    assert!(
        metadata.contains("\"origin\": \"worker-7\""),
        "pretty-printed: {metadata}"
    );

    // The parent's page leads to the tasks it started, and that list holds exactly them.
    let doc = ok(get(&db.store, "/runs/parent").await, "/runs/parent");
    assert!(
        select(&doc, "[data-testid=run-background]").is_empty(),
        "a plain run has no block"
    );
    assert!(select(&doc, "#metadata").is_empty());
    let children = select(&doc, "[data-testid=run-children]")[0]
        .value()
        .attr("href")
        .unwrap()
        .to_string();
    assert_eq!(children, "/runs?parent=parent");
    let doc = ok(get(&db.store, &children).await, &children);
    assert_eq!(listed(&doc), ["child-1", "child-2"]);
    assert!(text(&doc, ".filter-summary").contains("Started by run: parent"));

    // Only metadata: the block says it is not a background task, and the metadata is shown.
    let doc = ok(get(&db.store, "/runs/tagged").await, "/runs/tagged");
    assert_eq!(text(&doc, "[data-field=is-background-task]"), "no");
    assert_eq!(text(&doc, "[data-field=parent-run]"), "none");
    assert!(text(&doc, "#metadata pre").contains("billing"));
}

#[tokio::test]
async fn a_long_background_error_and_metadata_are_cut_with_full_and_raw() {
    let db = made_up().await;
    let (_, html) = get(&db.store, "/runs/child-1").await;
    let doc = ok((StatusCode::OK, html.clone()), "/runs/child-1");
    let error = text(&doc, "#background_error pre");
    assert!(error.starts_with("RuntimeError: the task gave up"));
    assert!(!error.contains("THE-ERROR-END"), "cut");
    assert!(!text(&doc, "#metadata pre").contains("THE-METADATA-END"), "cut");
    let href = |testid: &str| {
        select(&doc, &format!("[data-testid={testid}]"))
            .first()
            .unwrap_or_else(|| panic!("no {testid} link:\n{html}"))
            .value()
            .attr("href")
            .unwrap()
            .to_string()
    };
    assert_eq!(
        href("background_error-see-all"),
        "/runs/child-1?full=background_error#background_error"
    );
    assert_eq!(href("metadata-see-all"), "/runs/child-1?full=metadata#metadata");
    assert_eq!(href("background_error-raw"), "/raw/background_error?run=child-1");
    assert_eq!(href("metadata-raw"), "/raw/metadata?run=child-1");

    let uri = "/runs/child-1?full=background_error,metadata";
    let doc = ok(get(&db.store, uri).await, uri);
    assert!(text(&doc, "#background_error pre").ends_with("THE-ERROR-END"));
    assert!(text(&doc, "#metadata pre").contains("THE-METADATA-END"));
    let doc = ok(get(&db.store, "/runs/child-1?full=all").await, "full=all");
    assert!(text(&doc, "#background_error pre").ends_with("THE-ERROR-END"));

    let stored = db.store.load_state("child-1").await.unwrap().unwrap().extras;
    let answer = visit(app(&db.store), "/raw/background_error?run=child-1", None).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.header("content-type"), "text/plain; charset=utf-8");
    assert_eq!(Some(answer.body), stored.background_error);
    let answer = visit(app(&db.store), "/raw/metadata?run=child-1", None).await;
    assert_eq!(answer.status, 200);
    let metadata: serde_json::Value = serde_json::from_str(&answer.body).unwrap();
    assert_eq!(Some(metadata), stored.metadata);
    for (uri, status) in [
        ("/raw/metadata?run=parent", 404),
        ("/raw/background_error?run=child-2", 404),
        ("/raw/background_error?run=nope", 404),
    ] {
        let answer = visit(app(&db.store), uri, None).await;
        assert_eq!(answer.status.as_u16(), status, "{uri}: {}", answer.body);
    }
}

#[tokio::test]
async fn the_list_filters_background_tasks_and_parent_runs() {
    let db = made_up().await;
    for (uri, want) in [
        ("/runs?background=1", vec!["child-1", "child-2"]),
        ("/runs?background=0", vec!["lone", "tagged", "parent"]),
        // `background=` (blank) is redirected to `/runs` (web_runpage.rs): every run.
        ("/runs", vec!["child-1", "child-2", "lone", "tagged", "parent"]),
        ("/runs?parent=parent", vec!["child-1", "child-2"]),
        ("/runs?parent=parent&background=0", vec![]),
        ("/runs?parent=lone", vec![]),
        ("/runs?parent=parent&limit=1", vec!["child-1"]),
    ] {
        let doc = ok(get(&db.store, uri).await, uri);
        assert_eq!(listed(&doc), want, "{uri}");
    }

    // The form is filled in with the filters, and the pager keeps them.
    let doc = ok(
        get(&db.store, "/runs?parent=parent&background=1&limit=1").await,
        "form",
    );
    let selected = select(&doc, "#filter-background option[selected]");
    assert_eq!(selected.len(), 1);
    assert_eq!(selected[0].value().attr("value"), Some("1"));
    assert_eq!(
        select(&doc, "#filter-parent")[0].value().attr("value"),
        Some("parent")
    );
    let next = select(&doc, "a[rel=next]")[0]
        .value()
        .attr("href")
        .unwrap()
        .to_string();
    assert!(
        next.starts_with("/runs?parent=parent&background=1&limit=1&cursor="),
        "{next}"
    );
    let doc = ok(get(&db.store, &next).await, &next);
    assert_eq!(listed(&doc), ["child-2"]);

    for uri in ["/runs?background=maybe", "/runs?background=2"] {
        let (status, html) = get(&db.store, uri).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}");
        assert!(html.contains("The parameter “background” is not valid"), "{html}");
    }
}
