//! The runs list's orders, time / memory / version filters, totals and the run page's previous / next runs
//! (issue 15), through the router on either backend (`FLOWSTATE_TEST_BACKEND=postgres`).

mod support;

use axum::http::StatusCode;
use chrono::Duration;
use flowstate_store::{Status, WorkflowState};
use support::*;

/// (id, pipeline, version, created minutes ago, updated minutes ago, time ms, memory MB)
type Row = (
    &'static str,
    &'static str,
    &'static str,
    i64,
    i64,
    Option<i64>,
    Option<f64>,
);

fn rows() -> Vec<Row> {
    vec![
        ("a", "etl", "1.0", 10, 1, Some(400_000), Some(512.5)),
        ("b", "etl", "2.0", 20, 15, Some(90_000), Some(80.25)),
        ("c", "etl", "2.0", 30, 29, None, Some(150.0)),
        ("d", "ml", "2.0", 40, 2, Some(900_000), None),
        ("e", "ml", "1.0", 50, 49, Some(1_500), Some(12.0)),
        ("f", "ml", "2.0", 60, 59, Some(400_000), Some(150.0)),
    ]
}

async fn made_up() -> Db {
    let runs: Vec<WorkflowState> = rows()
        .into_iter()
        .map(|(id, pipeline, version, created, updated, ms, mb)| {
            let mut run = WorkflowState::new(id, pipeline);
            run.pipeline_version = version.into();
            run.status = Status::Completed;
            run.created_at = Some(now() - Duration::minutes(created));
            run.updated_at = Some(now() - Duration::minutes(updated));
            run.execution_time_ms = ms;
            run.memory_usage_mb = mb;
            run
        })
        .collect();
    new_db("lists.db", now(), &runs).await
}

#[track_caller]
fn ok(answer: (StatusCode, String), uri: &str) -> String {
    let (status, html) = answer;
    assert_eq!(status, StatusCode::OK, "GET {uri}:\n{html}");
    html
}

fn listed(html: &str) -> Vec<String> {
    html.split("data-run-id=\"")
        .skip(1)
        .map(|rest| rest[..rest.find('"').unwrap()].to_string())
        .collect()
}

/// The address of the link with this attribute (`rel="next"`, `data-testid="run-prev"`), unescaped.
fn link(html: &str, attribute: &str) -> Option<String> {
    let at = html.find(attribute)?;
    let tag = &html[html[..at].rfind('<')?..];
    let tag = &tag[..tag.find('>')?];
    let href = &tag[tag.find("href=\"")? + 6..];
    Some(href[..href.find('"')?].replace("&amp;", "&"))
}

fn total(html: &str) -> String {
    let at = html.find("data-testid=\"runs-total\"").expect("a total");
    let rest = &html[at..];
    let strong = &rest[rest.find("<strong>").unwrap() + 8..];
    strong[..strong.find("</strong>").unwrap()].to_string()
}

#[tokio::test]
async fn each_order_and_filter_lists_exactly_its_runs_with_its_total() {
    let db = made_up().await;
    let s = &db.store;
    for (uri, want, total_text) in [
        ("/runs", vec!["a", "b", "c", "d", "e", "f"], "6 runs"),
        ("/runs?sort=slowest", vec!["d", "f", "a", "b", "e"], "5 runs"),
        ("/runs?sort=heaviest", vec!["a", "f", "c", "b", "e"], "5 runs"),
        ("/runs?sort=idle", vec!["f", "e", "c", "b", "d", "a"], "6 runs"),
        ("/runs?min_duration=5m", vec!["a", "d", "f"], "3 runs"),
        (
            "/runs?min_duration=5m&sort=slowest",
            vec!["d", "f", "a"],
            "3 runs",
        ),
        ("/runs?max_duration=90s", vec!["b", "e"], "2 runs"),
        ("/runs?max_duration=1500ms", vec!["e"], "1 run"),
        ("/runs?min_memory=100", vec!["a", "c", "f"], "3 runs"),
        (
            "/runs?min_memory=100&max_memory=150&sort=heaviest",
            vec!["f", "c"],
            "2 runs",
        ),
        ("/runs?version=2.0", vec!["b", "c", "d", "f"], "4 runs"),
        (
            "/runs?version=2.0&pipeline=ml&sort=slowest",
            vec!["d", "f"],
            "2 runs",
        ),
        ("/runs?pipeline=etl", vec!["a", "b", "c"], "3 runs"),
    ] {
        let html = ok(get(s, uri).await, uri);
        assert_eq!(listed(&html), want, "{uri}");
        assert_eq!(total(&html), total_text, "{uri}");
    }
}

#[tokio::test]
async fn the_table_has_memory_and_the_form_keeps_the_new_fields() {
    let db = made_up().await;
    let uri = "/runs?version=2.0&min_duration=90s&max_duration=1h&min_memory=50&max_memory=600&sort=heaviest";
    let html = ok(get(&db.store, uri).await, uri);
    let row = &html[html.find("data-run-id=\"f\"").unwrap()..];
    let row = &row[..row.find("</tr>").unwrap()];
    assert!(row.contains("150.0 MB"), "memory column: {row}");
    assert!(row.contains("6 min 40 s"), "execution column: {row}");
    assert!(html.contains("<th scope=\"col\">Memory</th>"));
    for (name, value) in [
        ("version", "2.0"),
        ("min_duration", "90s"),
        ("max_duration", "1h"),
        ("min_memory", "50"),
        ("max_memory", "600"),
    ] {
        assert!(
            html.contains(&format!("name=\"{name}\" value=\"{value}\"")),
            "{name} kept in the form"
        );
    }
    assert!(
        html.contains("<option value=\"heaviest\" selected"),
        "the order is selected"
    );
    // The order links keep the filters and drop the default order's name.
    let newest = link(&html, "data-sort=\"newest\"").unwrap();
    assert_eq!(
        newest,
        "/runs?version=2.0&min_duration=90s&max_duration=1h&min_memory=50&max_memory=600"
    );
    let slowest = link(&html, "data-sort=\"slowest\"").unwrap();
    assert!(slowest.ends_with("&sort=slowest"), "{slowest}");
    assert_eq!(listed(&ok(get(&db.store, &slowest).await, &slowest)), ["f", "b"]);
}

#[tokio::test]
async fn pages_of_every_order_keep_the_order_and_filters() {
    let db = made_up().await;
    for (first, want) in [
        ("/runs?sort=slowest&limit=2", vec!["d", "f", "a", "b", "e"]),
        ("/runs?sort=heaviest&limit=2", vec!["a", "f", "c", "b", "e"]),
        ("/runs?sort=idle&limit=2&version=2.0", vec!["f", "c", "b", "d"]),
    ] {
        let mut uri = first.to_string();
        let mut seen = Vec::new();
        loop {
            let html = ok(get(&db.store, &uri).await, &uri);
            seen.extend(listed(&html));
            match link(&html, "rel=\"next\"") {
                Some(next) => uri = next,
                None => break,
            }
            assert!(seen.len() < 20);
        }
        assert_eq!(seen, want, "{first}");
        // And back.
        let html = ok(get(&db.store, &uri).await, &uri);
        let prev = link(&html, "rel=\"prev\"").expect("a previous page");
        let html = ok(get(&db.store, &prev).await, &prev);
        let at = want.len() - listed(&ok(get(&db.store, &uri).await, &uri)).len();
        assert_eq!(listed(&html), want[at - 2..at], "{first} back");
    }
}

#[tokio::test]
async fn bad_values_are_a_400_naming_the_parameter() {
    let db = made_up().await;
    for (uri, param) in [
        ("/runs?sort=fastest", "sort"),
        ("/runs?min_duration=5", "min_duration"),
        ("/runs?max_duration=-1m", "max_duration"),
        ("/runs?max_duration=40d", "max_duration"),
        ("/runs?min_memory=lots", "min_memory"),
        ("/runs?max_memory=1e3", "max_memory"),
        ("/runs?min_duration=10m&max_duration=1m", "min_duration"),
        ("/runs?min_memory=10&max_memory=1", "min_memory"),
    ] {
        let (status, html) = get(&db.store, uri).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}:\n{html}");
        assert!(
            html.contains(&format!("The parameter “{param}” is not valid")),
            "{uri}: names {param}:\n{html}"
        );
    }
    // A cursor of one order given to another.
    let html = ok(get(&db.store, "/runs?sort=slowest&limit=1").await, "slowest");
    let next = link(&html, "rel=\"next\"").unwrap();
    let heavier = next.replace("sort=slowest", "sort=heaviest");
    let (status, html) = get(&db.store, &heavier).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{html}");
    assert!(html.contains("The parameter “cursor” is not valid"));
}

#[tokio::test]
async fn the_run_page_steps_through_the_list_it_came_from() {
    let db = made_up().await;
    let s = &db.store;
    let html = ok(get(s, "/runs?sort=slowest&version=2.0").await, "list");
    assert_eq!(listed(&html), ["d", "f", "b"]);
    let row = &html[html.find("data-run-id=\"f\"").unwrap()..];
    let to_f = link(row, "class=\"run-link\"").expect("a link to f");
    assert_eq!(
        to_f, "/runs/f?list=%2Fruns%3Fversion%3D2.0%26sort%3Dslowest",
        "the run link carries the list"
    );
    let page = ok(get(s, &to_f).await, &to_f);
    let prev = link(&page, "data-testid=\"run-prev\"").expect("d before f");
    let next = link(&page, "data-testid=\"run-next\"").expect("b after f");
    assert!(prev.starts_with("/runs/d?list="), "{prev}");
    assert!(next.starts_with("/runs/b?list="), "{next}");
    assert_eq!(
        link(&page, "data-testid=\"breadcrumb-runs\"").unwrap(),
        "/runs?version=2.0&sort=slowest",
        "the breadcrumb keeps the filter"
    );
    // The ends of the list: no previous run before the first, no next after the last.
    let first = ok(get(s, &prev).await, &prev);
    assert_eq!(link(&first, "data-testid=\"run-prev\""), None);
    assert!(first.contains("data-testid=\"run-prev\""), "shown as unavailable");
    let last = ok(get(s, &next).await, &next);
    assert_eq!(link(&last, "data-testid=\"run-next\""), None);
    // A run outside the list (no time in a slowest-first list) says so; a list address elsewhere is refused.
    let outside = "/runs/c?list=%2Fruns%3Fsort%3Dslowest";
    let html = ok(get(s, outside).await, outside);
    assert!(html.contains("not in that list"), "{html}");
    let elsewhere = "/runs/c?list=https%3A%2F%2Fevil.example%2Fruns";
    let html = ok(get(s, elsewhere).await, elsewhere);
    assert!(!html.contains("evil.example\""), "never a link elsewhere");
    assert!(!html.contains("data-testid=\"run-nav\""));
    // The whole list, newest first, links runs by their plain address.
    let html = ok(get(s, "/runs").await, "/runs");
    assert!(html.contains("href=\"/runs/f\""));
}
