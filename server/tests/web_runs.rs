//! The Runs list (`/runs`) and the Run page (`/runs/{id}`) through the router, without a socket: each test
//! opens its own database in a temp dir (runs with known values, or a copy of a flujo fixture) and reads the
//! HTML the server renders.

mod support;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use chrono::{DateTime, Duration, Utc};
use flowstate_store::{Status, Store, WorkflowState};
use serde_json::json;
use support::*;

/// (run id, status, pipeline, created minutes before now, updated minutes before now, error)
type Row = (&'static str, Status, &'static str, i64, i64, Option<&'static str>);

/// Thirteen runs, newest first by creation: the order the list must show. `tie-a` and `tie-b` share their
/// creation instant (the run id breaks the tie, descending).
fn rows() -> Vec<Row> {
    vec![
        (
            "f-1",
            Status::Failed,
            "invoice",
            10,
            9,
            Some("TimeoutError: agent call exceeded 30s"),
        ),
        ("p-1", Status::Paused, "triage", 20, 1, None),
        (
            "f-2",
            Status::Failed,
            "invoice",
            30,
            29,
            Some("ConnectionError: Connection reset by peer"),
        ),
        ("r-1", Status::Running, "invoice", 40, 2, None),
        ("tie-b", Status::Completed, "triage", 50, 49, None),
        ("tie-a", Status::Completed, "triage", 50, 48, None),
        (
            "f-3",
            Status::Failed,
            "triage",
            60,
            59,
            Some("connectionerror: CONNECTION RESET by peer (try 2)"),
        ),
        ("c-1", Status::Completed, "invoice", 120, 118, None),
        (
            "x-1",
            Status::Cancelled,
            "invoice",
            180,
            179,
            Some("Cancelled by user"),
        ),
        ("c-2", Status::Completed, "sql-agent", 240, 238, None),
        (
            "f-4",
            Status::Failed,
            "sql-agent",
            600,
            599,
            Some("<script>alert('x')</script> & more"),
        ),
        ("c-3", Status::Completed, "sql-agent", 1500, 1490, None),
        ("big", Status::Completed, "sql-agent", 3000, 2990, None),
    ]
}

fn ids(rows: &[Row], keep: impl Fn(&Row) -> bool) -> Vec<String> {
    rows.iter().filter(|r| keep(r)).map(|r| r.0.to_string()).collect()
}

/// The thirteen runs of [`rows`], with full details on `f-1` and a 100 KB context on `big`.
async fn made_up() -> Db {
    let runs: Vec<WorkflowState> = rows()
        .into_iter()
        .map(|(id, status, pipeline, created, updated, error)| {
            let mut run = WorkflowState::new(id, pipeline);
            run.pipeline_name = format!("{pipeline} (name)");
            run.pipeline_version = "2.1.0".into();
            run.status = status;
            run.created_at = Some(now() - Duration::minutes(created));
            run.updated_at = Some(now() - Duration::minutes(updated));
            run.error_message = error.map(str::to_string);
            run
        })
        .map(|mut run| {
            if run.run_id == "f-1" {
                run.current_step_index = 2;
                run.total_steps = 5;
                run.execution_time_ms = Some(1234);
                run.memory_usage_mb = Some(25.75);
                run.pipeline_context = json!({"customer": "ACME-42", "prompt": "Résumé ✓"});
                run.last_step_output = Some(json!({"answer": "partial-output-7"}));
                run.step_history = json!([{"name": "fetch"}, {"name": "parse"}]);
            }
            if run.run_id == "big" {
                let items: Vec<String> = (0..4000).map(|i| format!("item number {i}")).collect();
                run.pipeline_context = json!({ "items": items, "last_key": "THE-END-MARKER" });
            }
            run
        })
        .collect();
    new_db("runs.db", now(), &runs).await
}

fn sample_truth() -> serde_json::Value {
    fixture_truth("flujo-0.4.35-sample-300.json")
}

/// GETs `uri`, expecting 200, and returns the HTML.
#[track_caller]
fn ok(answer: (StatusCode, String), uri: &str) -> String {
    let (status, html) = answer;
    assert_eq!(status, StatusCode::OK, "GET {uri}:\n{html}");
    html
}

/// The run ids of the list's rows, in order.
fn listed(html: &str) -> Vec<String> {
    html.split("data-run-id=\"")
        .skip(1)
        .map(|rest| rest[..rest.find('"').unwrap()].to_string())
        .collect()
}

/// The address of the pager's link with `rel` (`next`, `prev`), unescaped.
fn pager_link(html: &str, rel: &str) -> Option<String> {
    let at = html.find(&format!("rel=\"{rel}\""))?;
    let tag = &html[html[..at].rfind("<a ")?..];
    let href = &tag[tag.find("href=\"")? + 6..];
    Some(href[..href.find('"')?].replace("&amp;", "&"))
}

async fn list(store: &Store, uri: &str) -> Vec<String> {
    listed(&ok(get(store, uri).await, uri))
}

#[tokio::test]
async fn the_list_is_newest_first_with_every_column() {
    let db = made_up().await;
    let html = ok(get(&db.store, "/runs").await, "/runs");
    assert_eq!(listed(&html), ids(&rows(), |_| true), "every run, newest first");
    assert!(html.contains("<h1>Runs</h1>"));
    assert!(html.contains("<title>Runs · flowstate</title>"));
    // f-1's row: link, pipeline, status badge, step, created and updated in UTC with relative times, error.
    let row = &html[html.find("data-run-id=\"f-1\"").unwrap()..];
    let row = &row[..row.find("</tr>").unwrap()];
    assert!(row.contains("href=\"/runs/f-1\""), "{row}");
    assert!(row.contains(">invoice<"), "{row}");
    assert!(row.contains("status status-failed"), "{row}");
    assert!(row.contains(">failed<"), "status as text too: {row}");
    assert!(row.contains("3 of 5"), "{row}");
    assert!(row.contains("2026-03-14 11:50:00 UTC"), "created: {row}");
    assert!(row.contains("(10 min ago)"), "{row}");
    assert!(row.contains("2026-03-14 11:51:00 UTC"), "updated: {row}");
    assert!(row.contains("1.2 s"), "execution time: {row}");
    assert!(
        row.contains("title=\"TimeoutError: agent call exceeded 30s\""),
        "{row}"
    );
    // Error text is escaped, never markup.
    assert!(!html.contains("<script>alert"), "the error is escaped");
    assert!(html.contains("&lt;script&gt;alert"));
    // No cursor: no previous page.
    assert_eq!(pager_link(&html, "prev"), None);
    assert_eq!(pager_link(&html, "next"), None, "13 runs fit on a page of 50");
}

#[tokio::test]
async fn filters_return_exactly_the_matching_runs() {
    let db = made_up().await;
    let s = &db.store;
    let all = rows();
    let failed = ids(&all, |r| r.1 == Status::Failed);
    assert_eq!(list(s, "/runs?status=failed").await, failed);
    let failed_or_paused = ids(&all, |r| matches!(r.1, Status::Failed | Status::Paused));
    assert_eq!(
        list(s, "/runs?status=failed&status=paused").await,
        failed_or_paused
    );
    assert_eq!(
        list(s, "/runs?status=failed,paused").await,
        failed_or_paused,
        "comma form"
    );
    assert_eq!(list(s, "/runs?status=paused%2Cfailed").await, failed_or_paused);

    assert_eq!(
        list(s, "/runs?pipeline=triage").await,
        ids(&all, |r| r.2 == "triage")
    );
    assert_eq!(
        list(s, "/runs?pipeline=invoice&status=failed").await,
        ["f-1", "f-2"],
        "filters combine"
    );
    assert_eq!(list(s, "/runs?prefix=tie-").await, ["tie-b", "tie-a"]);
    assert_eq!(list(s, "/runs?prefix=f-").await, ["f-1", "f-2", "f-3", "f-4"]);
    assert_eq!(
        list(s, "/runs?error=connection+reset").await,
        ["f-2", "f-3"],
        "error text, case-insensitive"
    );
    assert_eq!(list(s, "/runs?error=%3Cscript%3E").await, ["f-4"]);

    // Time ranges: RFC 3339 or a datetime-local value, read as UTC.
    assert_eq!(
        list(s, "/runs?created_after=2026-03-14T11:00").await,
        ["f-1", "p-1", "f-2", "r-1", "tie-b", "tie-a", "f-3"],
        "created in the last hour (at or after 11:00)"
    );
    assert_eq!(
        list(
            s,
            "/runs?created_after=2026-03-14T10:00:00Z&created_before=2026-03-14T11:00:00%2B00:00"
        )
        .await,
        ["c-1"]
    );
    assert_eq!(
        list(s, "/runs?updated_after=2026-03-14T11:57:00Z").await,
        ["p-1", "r-1"],
        "updated in the last 3 minutes"
    );
    assert_eq!(
        list(
            s,
            "/runs?status=failed&error=reset&updated_after=2026-03-14T10:00:00Z"
        )
        .await,
        ["f-2", "f-3"],
        "the Failures page's link"
    );

    // An untouched form sends every field blank: redirected to the address without them (web_runpage.rs), no
    // filter.
    let blank = "/runs?pipeline=&prefix=&error=&created_after=&created_before=&updated_after=&updated_before=&limit=50";
    let answer = visit(app(s), blank, None).await;
    assert_eq!(
        (answer.status, answer.location()),
        (StatusCode::SEE_OTHER, "/runs?limit=50")
    );
    assert_eq!(list(s, "/runs?limit=50").await, ids(&all, |_| true));

    let none = ok(get(s, "/runs?prefix=nothing-like-this").await, "prefix");
    assert!(listed(&none).is_empty());
    assert!(
        none.contains("No runs match these filters."),
        "the empty state says so"
    );
}

#[tokio::test]
async fn the_form_is_filled_with_the_filters() {
    let db = made_up().await;
    let html = ok(
        get(&db.store, "/runs?status=failed&status=paused&pipeline=triage&error=reset&limit=7&created_after=2026-03-14T09:30").await,
        "filled form",
    );
    assert!(html.contains("<form"), "a form");
    assert!(
        html.contains("method=\"GET\"") || html.contains("method=\"get\""),
        "{html}"
    );
    for status in ["failed", "paused"] {
        assert!(
            html.contains(&format!("name=\"status\" value=\"{status}\" checked")),
            "{status} is checked"
        );
    }
    assert!(
        html.contains("name=\"status\" value=\"running\"/>")
            || html.contains("name=\"status\" value=\"running\">")
    );
    assert!(
        html.contains("<option value=\"triage\" selected"),
        "the pipeline is selected"
    );
    assert!(
        html.contains("<option value=\"sql-agent\""),
        "every pipeline is offered"
    );
    assert!(html.contains("name=\"error\" value=\"reset\""));
    assert!(
        html.contains("name=\"limit\" min=\"1\" max=\"1000\" value=\"7\""),
        "{html}"
    );
    assert!(
        html.contains("value=\"2026-03-14 09:30\""),
        "24-hour UTC, not a datetime-local field"
    );
    assert!(html.contains("data-testid=\"status-filter\">failed, paused<"));
}

#[tokio::test]
async fn keyset_pages_have_no_gaps_or_overlaps_both_ways() {
    let db = made_up().await;
    let s = &db.store;
    let everything = list(s, "/runs?limit=1000").await;
    assert_eq!(everything.len(), 13);

    let mut pages: Vec<Vec<String>> = Vec::new();
    let mut uri = "/runs?limit=3".to_string();
    loop {
        let html = ok(get(s, &uri).await, &uri);
        pages.push(listed(&html));
        if pages.len() > 1 {
            assert!(
                pager_link(&html, "prev").is_some(),
                "page {} links back",
                pages.len()
            );
            assert!(html.contains("« Newest</a>"), "and to the newest page");
        }
        match pager_link(&html, "next") {
            Some(next) => {
                assert!(next.contains("limit=3"), "the page size is kept: {next}");
                uri = next;
            }
            None => break,
        }
        assert!(pages.len() < 10, "paging ends");
    }
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [3, 3, 3, 3, 1]);
    assert_eq!(pages.concat(), everything, "forward: every run once, in order");

    // Back from the last page to the first.
    let mut back: Vec<Vec<String>> = vec![list(s, &uri).await];
    loop {
        let html = ok(get(s, &uri).await, &uri);
        match pager_link(&html, "prev") {
            Some(prev) => {
                uri = prev;
                back.push(list(s, &uri).await);
            }
            None => break,
        }
        assert!(back.len() < 10, "paging back ends");
    }
    back.reverse();
    assert_eq!(back, pages, "backward: the same pages");

    // Filters survive paging.
    let html = ok(get(s, "/runs?status=completed&limit=1").await, "completed");
    assert_eq!(listed(&html), ["tie-b"]);
    let next = pager_link(&html, "next").expect("a second page of completed runs");
    assert!(
        next.starts_with("/runs?status=completed&limit=1&cursor="),
        "{next}"
    );
    let html = ok(get(s, &next).await, &next);
    assert_eq!(
        listed(&html),
        ["tie-a"],
        "ties broken by run id across a page edge"
    );
    let next = pager_link(&html, "next").expect("a third page");
    assert_eq!(list(s, &next).await, ["c-1"]);
}

#[tokio::test]
async fn bad_parameters_are_a_400_naming_them() {
    let db = made_up().await;
    for (uri, param) in [
        ("/runs?limit=0", "limit"),
        ("/runs?limit=1001", "limit"),
        ("/runs?limit=many", "limit"),
        ("/runs?status=done", "status"),
        ("/runs?status=failed,done", "status"),
        ("/runs?cursor=not-a-cursor", "cursor"),
        ("/runs?cursor=%00%01", "cursor"),
        ("/runs?created_after=yesterday", "created_after"),
        ("/runs?created_before=2026-02-30T10:00", "created_before"),
        ("/runs?updated_after=14%2F03%2F2026", "updated_after"),
        (
            "/runs?updated_after=2026-03-14T12:00&updated_before=2026-03-14T11:00",
            "updated_before",
        ),
    ] {
        let (status, html) = get(&db.store, uri).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}:\n{html}");
        assert!(html.contains("Bad request"), "{uri}: the page says what happened");
        assert!(
            html.contains(&format!("The parameter “{param}” is not valid")),
            "{uri}: the page names {param}:\n{html}"
        );
        assert!(html.contains("href=\"/runs\""), "{uri}: a way back");
    }
}

#[tokio::test]
async fn the_run_page_shows_every_field_with_the_error_first() {
    let db = made_up().await;
    let html = ok(get(&db.store, "/runs/f-1").await, "/runs/f-1");
    assert!(
        html.contains("<title>Run f-1 · flowstate</title>"),
        "the title names the run"
    );
    let error = html.find("data-testid=\"run-error\"").expect("an error section");
    let status = html.find("data-field=\"status\"").expect("a status field");
    assert!(error < status, "the error comes before the other fields");
    for expected in [
        "TimeoutError: agent call exceeded 30s",
        "status status-failed",
        "step 3 of 5",
        "stored index 2, 5 steps",
        "invoice (name)",
        "<code>invoice</code>",
        "2.1.0",
        "2026-03-14 11:50:00 UTC",
        "(10 min ago)",
        "2026-03-14 11:51:00 UTC",
        "(9 min ago)",
        "1.2 s (1234 ms)",
        "25.8 MB",
        "ACME-42",
        "Résumé ✓",
        "partial-output-7",
        "2 steps",
        "\"name\": \"parse\"",
    ] {
        assert!(
            html.contains(expected),
            "the run page shows {expected:?}:\n{html}"
        );
    }
    for section in ["id=\"context\"", "id=\"output\"", "id=\"history\""] {
        assert!(html.contains(section), "{section}");
    }
    assert!(html.matches("<details").count() >= 3, "collapsible blocks");
    assert!(
        html.contains("href=\"/runs?pipeline=invoice\""),
        "the pipeline's runs"
    );
    assert!(
        html.contains("Delete this run") && html.contains("data-testid=\"delete-run-form\""),
        "the guarded delete form is on the page"
    );

    // A run without error, output or times.
    let html = ok(get(&db.store, "/runs/p-1").await, "/runs/p-1");
    assert!(
        !html.contains("data-testid=\"run-error\""),
        "no error section without an error"
    );
    assert!(
        html.contains("not recorded"),
        "missing execution time and memory say so"
    );
    assert!(
        html.contains("no step has stored an output"),
        "NULL output says so"
    );
}

#[tokio::test]
async fn large_values_are_cut_with_a_working_see_all() {
    let db = made_up().await;
    let html = ok(get(&db.store, "/runs/big").await, "/runs/big");
    assert!(html.contains("item number 10"), "the beginning is shown");
    assert!(!html.contains("THE-END-MARKER"), "the end is cut");
    assert!(
        html.contains("Showing the first 16."),
        "the cut is explained: {html}"
    );
    let link = html
        .split("data-testid=\"context-see-all\"")
        .next()
        .and_then(|before| before.rfind("href=\"").map(|at| &before[at + 6..]))
        .map(|href| href[..href.find('"').unwrap()].to_string())
        .expect("a see-all link");
    assert_eq!(link, "/runs/big?full=context#context");

    let uri = link.split('#').next().unwrap();
    let whole = ok(get(&db.store, uri).await, uri);
    assert!(whole.contains("THE-END-MARKER"), "the whole value");
    assert!(whole.contains("item number 3999"));
    assert!(!whole.contains("context-see-all"), "nothing is cut any more");

    let (status, html) = get(&db.store, "/runs/big?full=everything").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(html.contains("The parameter “full” is not valid"), "{html}");
}

#[tokio::test]
async fn an_unknown_run_is_a_404_page() {
    let db = made_up().await;
    let (status, html) = get(&db.store, "/runs/no-such-run").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{html}");
    assert!(html.contains("Not found"));
    assert!(html.contains("no-such-run"), "the page names the run");
    assert!(html.contains("aria-label=\"Main\""), "with the navigation");

    // An id with characters that need encoding round-trips through the link.
    let mut odd = WorkflowState::new("odd id/ü?#", "p");
    odd.created_at = Some(now());
    db.store.save_state(&odd).await.unwrap();
    let html = ok(get(&db.store, "/runs?prefix=odd").await, "odd");
    // A run of a filtered list carries the list (its page steps through it).
    assert!(
        html.contains("href=\"/runs/odd%20id%2F%C3%BC%3F%23?list=%2Fruns%3Fprefix%3Dodd\""),
        "{html}"
    );
    let page = ok(get(&db.store, "/runs/odd%20id%2F%C3%BC%3F%23").await, "odd run");
    assert!(
        page.contains("<code class=\"run-id\">odd id/ü?#</code>"),
        "{page}"
    );
}

#[tokio::test]
async fn legacy_and_null_statuses_are_listed_and_shown() {
    // flujo's oldest file as it is: legacy and NULL statuses PostgreSQL's table (status NOT NULL) cannot hold.
    let db = sqlite_fixture_copy("flujo-oldest-schema.db", now()).await;
    assert_eq!(
        list(&db.store, "/runs?status=pending").await,
        ["run_old_bad_status"]
    );
    assert_eq!(
        list(&db.store, "/runs?status=null").await,
        ["run_old_null_step_and_status"]
    );
    let (status, html) = get(&db.store, "/runs?status=paused,pending,null").await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(
        html.contains("name=\"status\" value=\"pending\" checked"),
        "the legacy box stays checked"
    );
    let (status, _) = get(&db.store, "/runs?status=queued").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "a name no run has is a typo");

    let html = ok(get(&db.store, "/runs/run_old_bad_status").await, "pending run");
    assert!(html.contains("status status-other"), "a neutral badge");
    assert!(html.contains(">pending<"));
    assert!(html.contains("A legacy status"));
    let html = ok(
        get(&db.store, "/runs/run_old_null_step_and_status").await,
        "null run",
    );
    assert!(html.contains("No status is stored"));
    let html = ok(get(&db.store, "/runs/run_old_null_context").await, "null context");
    assert!(html.contains("id=\"context\""), "{html}");
}

#[tokio::test]
async fn the_sample_fixture_lists_the_right_runs() {
    let truth = sample_truth();
    let at = DateTime::parse_from_rfc3339(truth["generated_now_utc"].as_str().unwrap())
        .unwrap()
        .with_timezone(&Utc);
    let db = fixture_copy("flujo-0.4.35-sample-300.db", at).await;
    let s = &db.store;
    assert_eq!(list(s, "/runs?limit=1000").await.len(), 300);
    for (status, n) in truth["counts_by_status"].as_object().unwrap() {
        let n = n.as_u64().unwrap() as usize;
        assert_eq!(
            list(s, &format!("/runs?status={status}&limit=1000")).await.len(),
            n,
            "{status}"
        );
    }
    for (pipeline, by_status) in truth["counts_by_pipeline_and_status"].as_object().unwrap() {
        let failed = by_status["failed"].as_u64().unwrap_or(0) as usize;
        let uri = format!("/runs?pipeline={pipeline}&status=failed&limit=1000");
        assert_eq!(list(s, &uri).await.len(), failed, "{uri}");
    }
    let failed_24h = truth["failed_last_24h"]["true_count_by_updated_at"]
        .as_u64()
        .unwrap() as usize;
    let since = (at - Duration::hours(24)).to_rfc3339();
    let uri = format!(
        "/runs?status=failed&updated_after={}&limit=1000",
        since.replace('+', "%2B")
    );
    assert_eq!(list(s, &uri).await.len(), failed_24h, "{uri}");

    // Pages of 50 walk all 300 runs without gaps or overlaps.
    let everything = list(s, "/runs?limit=1000").await;
    let mut seen = Vec::new();
    let mut uri = "/runs".to_string();
    loop {
        let html = ok(get(s, &uri).await, &uri);
        seen.extend(listed(&html));
        match pager_link(&html, "next") {
            Some(next) => uri = next,
            None => break,
        }
    }
    assert_eq!(seen, everything);

    // Every run with a context beyond 16 KB has it cut on its page, with a see-all link; the others do not.
    let mut cut = 0;
    for id in everything.iter().take(300) {
        let run = s.load_state(id).await.unwrap().expect("a listed run loads");
        let pretty = serde_json::to_string_pretty(&run.pipeline_context).unwrap();
        let html = ok(get(s, &format!("/runs/{id}")).await, id);
        assert_eq!(
            html.contains("data-testid=\"context-see-all\""),
            pretty.len() > 16 * 1024,
            "{id}: a {} byte context",
            pretty.len()
        );
        cut += usize::from(pretty.len() > 16 * 1024);
    }
    assert!(cut >= 5, "the fixture has large contexts ({cut} cut)");
}

#[tokio::test]
async fn the_list_server_function_has_a_stable_url() {
    let db = made_up().await;
    let request = Request::post("/api/runs")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from("search=status%3Dfailed%26limit%3D2"))
        .unwrap();
    let answer = send(app(&db.store), request).await;
    assert_eq!(answer.status, StatusCode::OK);
    let json = answer.json();
    let ids: Vec<&str> = json["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["run_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["f-1", "f-2"]);
    assert!(json["next_cursor"].is_string());

    let request = Request::post("/api/runs")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from("search=limit%3D0"))
        .unwrap();
    assert_eq!(
        send(app(&db.store), request).await.status,
        StatusCode::BAD_REQUEST,
        "a 400 through the API too"
    );
}
