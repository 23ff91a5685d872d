//! The run page's list of steps, the Failures page's title and unknown-parameter notice, and clean filter URLs
//! (issue 15), through the router (no socket). On SQLite, or PostgreSQL with `FLOWSTATE_TEST_BACKEND=postgres`.

mod support;

use axum::http::StatusCode;
use chrono::Duration;
use flowstate_store::{Status, WorkflowState};
use scraper::{Html, Selector};
use serde_json::{json, Value};
use support::*;

/// The page without the serialized resources Leptos appends after `</html>` for hydration.
fn markup(html: &str) -> &str {
    html.find("</html>").map_or(html, |end| &html[..end])
}

fn title(html: &str) -> String {
    let doc = Html::parse_document(markup(html));
    let sel = Selector::parse("title").unwrap();
    doc.select(&sel)
        .next()
        .map(|t| t.text().collect())
        .unwrap_or_default()
}

fn failed_run(id: &str, history: Value) -> WorkflowState {
    let mut run = WorkflowState::new(id, "sql-agent");
    run.status = Status::Failed;
    run.created_at = Some(now() - Duration::hours(2));
    run.updated_at = Some(now() - Duration::hours(1));
    run.step_history = history;
    run.error_message = Some("Step 'execute' failed: OperationalError: no such column: o.totl".into());
    run
}

/// The rows of the steps table: (number, name, outcome, failed-class).
fn step_rows(html: &str) -> Vec<(String, String, String, bool)> {
    let doc = Html::parse_document(markup(html));
    let rows = Selector::parse("[data-testid=steps-table] tbody tr").unwrap();
    let cell = Selector::parse("td, th").unwrap();
    doc.select(&rows)
        .map(|tr| {
            let cells: Vec<String> = tr
                .select(&cell)
                .map(|c| c.text().collect::<String>().trim().to_string())
                .collect();
            (
                cells[0].clone(),
                cells[1].clone(),
                tr.value().attr("data-outcome").unwrap_or("").to_string(),
                tr.value().attr("class").unwrap_or("").contains("step-row-failed"),
            )
        })
        .collect()
}

#[tokio::test]
async fn the_run_page_lists_the_steps_with_the_failing_one_first() {
    let history = json!([
        {"name": "plan", "output": "plan ok", "success": true, "attempts": 1, "latency_s": 1.25,
         "token_counts": 120, "cost_usd": 0.001, "feedback": null, "branch_context": null, "metadata_": null},
        {"name": "generate_sql", "output": {"sql": "SELECT 1"}, "success": true, "attempts": 2, "latency_s": 4.5},
        {"name": "execute", "output": null, "success": false, "attempts": 3, "latency_s": 0.25,
         "feedback": "Step 'execute' failed: OperationalError: no such column: o.totl"}
    ]);
    let db = new_db("steps.db", now(), &[failed_run("r-steps", history)]).await;
    let (status, html) = get(&db.store, "/runs/r-steps").await;
    assert_eq!(status, StatusCode::OK, "{html}");
    let rows = step_rows(&html);
    assert_eq!(
        rows.iter()
            .map(|r| (r.0.as_str(), r.1.as_str(), r.2.as_str(), r.3))
            .collect::<Vec<_>>(),
        vec![
            ("1", "plan", "succeeded", false),
            ("2", "generate_sql", "succeeded", false),
            ("3", "execute", "failed", true),
        ]
    );
    let page = markup(&html);
    let doc = Html::parse_document(page);
    // The failing step comes first, above the table.
    let failing = page
        .find("data-testid=\"failing-step\"")
        .expect("the failing step is called out");
    assert!(failing < page.find("data-testid=\"steps-table\"").unwrap());
    let callout: String = doc
        .select(&Selector::parse("[data-testid=failing-step]").unwrap())
        .next()
        .unwrap()
        .text()
        .collect();
    assert!(
        callout.contains("Failed at step 3: execute after 3 attempts (250 ms)"),
        "{callout}"
    );
    assert!(callout.contains("no such column: o.totl"), "{callout}");
    // Duration, attempts, output size.
    assert!(page.contains("1.2 s") || page.contains("1.3 s"), "1.25 s shown");
    assert!(page.contains(">4.5 s<"));
    assert!(page.contains(">9 B<"), "\"plan ok\" is 9 bytes of JSON");
    let caption: String = doc
        .select(&Selector::parse("[data-testid=steps-table] caption").unwrap())
        .next()
        .unwrap()
        .text()
        .collect();
    assert!(caption.starts_with("3 steps, in the order they ran"), "{caption}");
    // The raw history stays one click away: a <details> after the list.
    let raw = page.find("id=\"history\"").expect("the raw history block");
    assert!(raw > failing);
    assert!(page[..raw].rfind("<details").is_some() || page[raw..].find("<details").is_some());
    // The title names the run.
    assert_eq!(title(&html), "Run r-steps · flowstate");
}

#[tokio::test]
async fn hostile_and_cut_histories_never_break_the_run_page() {
    let big_step = json!({"name": "big", "success": true, "output": "x".repeat(20_000), "latency_s": 1});
    let mut long = vec![big_step; 8];
    long.push(json!({"name": "never-read", "success": false}));
    // As deep as the store accepts; deeper text written behind its back is below (SQLite).
    let deep: Value = serde_json::from_str(&format!("[{}{}]", "[".repeat(98), "]".repeat(98))).unwrap();
    let cases = [
        ("r-cut", Value::Array(long)),
        (
            "r-evil",
            json!([{"name": "</title><x-evil>", "success": false, "attempts": "many",
                            "latency_s": "slow", "feedback": "<script>evil()</script>"}]),
        ),
        (
            "r-huge-name",
            json!([{"name": "n".repeat(50_000), "success": true}]),
        ),
        ("r-not-a-list", json!({"steps": 3})),
        ("r-deep", deep),
        (
            "r-types",
            json!([1, "two", null, true, [], {"name": 5, "success": "yes"}]),
        ),
    ];
    let runs: Vec<WorkflowState> = cases.iter().map(|(id, h)| failed_run(id, h.clone())).collect();
    let db = new_db("hostile-steps.db", now(), &runs).await;
    let ids: Vec<&str> = cases.iter().map(|(id, _)| *id).collect();
    if !db.is_postgres() {
        // Text no store would write: nesting deeper than any parser's limit, and text that is not JSON.
        use sqlx::{ConnectOptions, Connection};
        let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&db.path)
            .connect()
            .await
            .unwrap();
        for (id, text) in [
            ("r-deep", format!("[{}{}]", "[".repeat(5000), "]".repeat(5000))),
            ("r-not-a-list", "not json [at all".to_string()),
        ] {
            sqlx::query("UPDATE workflow_state SET step_history = ?1 WHERE run_id = ?2")
                .bind(text)
                .bind(id)
                .execute(&mut conn)
                .await
                .unwrap();
        }
        conn.close().await.unwrap();
        let (status, html) = get(&db.store, "/runs/r-not-a-list").await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            markup(&html).contains("not a list of steps"),
            "text that is not JSON"
        );
        let (status, html) = get(&db.store, "/runs/r-deep").await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            markup(&html).contains("could not be read past this point"),
            "too deep: said so"
        );
    }
    for id in ids {
        let (status, html) = get(&db.store, &format!("/runs/{id}")).await;
        assert_eq!(status, StatusCode::OK, "{id}");
        let page = markup(&html);
        assert!(
            !page.contains("<x-evil>") && !page.contains("<script>evil"),
            "{id}: escaped"
        );
        assert!(
            page.contains("data-testid=\"run-steps\""),
            "{id}: a steps section"
        );
    }
    // A history longer than the page reads: the steps read, and a note that the rest is cut.
    let (_, html) = get(&db.store, "/runs/r-cut").await;
    let rows = step_rows(&html);
    assert!(
        !rows.is_empty() && rows.len() < 9,
        "only the steps in the head: {}",
        rows.len()
    );
    assert!(!rows.iter().any(|r| r.1 == "never-read"));
    assert!(markup(&html).contains("the steps after these are cut"));
    let (_, html) = get(&db.store, "/runs/r-evil").await;
    assert_eq!(
        step_rows(&html)[0].1,
        "</title><x-evil>",
        "the name shown as text"
    );
    let (_, html) = get(&db.store, "/runs/r-huge-name").await;
    assert!(step_rows(&html)[0].1.chars().count() <= 200, "a huge name is cut");
    let (_, html) = get(&db.store, "/runs/r-not-a-list").await;
    assert!(markup(&html).contains("not a list of steps"));
    let (_, html) = get(&db.store, "/runs/r-types").await;
    assert_eq!(
        step_rows(&html).len(),
        6,
        "every element is a row, unknown fields shown as unknown"
    );
}

#[tokio::test]
async fn failures_titles_name_the_window_and_unknown_parameters_are_named() {
    let mut run = failed_run("r1", json!([]));
    run.updated_at = Some(now() - Duration::minutes(30));
    let db = new_db("titles.db", now(), &[run]).await;
    let (_, html) = get(&db.store, "/failures").await;
    assert_eq!(title(&html), "Failures · last 24 h · flowstate");
    let (_, html) = get(&db.store, "/failures?window=3h").await;
    assert_eq!(title(&html), "Failures · last 3 h · flowstate");
    let (_, html) = get(&db.store, "/failures?since=2026-01-02T03:04").await;
    assert_eq!(title(&html), "Failures · since 2026-01-02 03:04 UTC · flowstate");
    assert!(
        !markup(&html).contains("data-testid=\"unknown-params\""),
        "no notice without unknown parameters"
    );

    let (status, html) = get(&db.store, "/failures?windw=3h&x%3Cb%3E=1").await;
    assert_eq!(status, StatusCode::OK, "unknown parameters are not an error");
    let doc = Html::parse_document(markup(&html));
    let notice: String = doc
        .select(&Selector::parse("[data-testid=unknown-params]").unwrap())
        .next()
        .expect("a notice")
        .text()
        .collect();
    assert!(
        notice.contains("“windw”") && notice.contains("“x<b>”"),
        "{notice}"
    );
    assert!(
        notice.contains("window, since, group"),
        "it says what the page reads: {notice}"
    );
    assert!(!markup(&html).contains("x<b>"), "the name is escaped");
}

#[tokio::test]
async fn blank_fields_redirect_to_the_clean_address() {
    let db = new_db("clean.db", now(), &[]).await;
    for (from, to) in [
        (
            "/runs?status=failed&pipeline=&error=&prefix=",
            "/runs?status=failed",
        ),
        ("/runs?status=failed&=", "/runs?status=failed"),
        ("/failures?window=&since=", "/failures"),
        ("/failures?window=3h&since=", "/failures?window=3h"),
        ("/runs?error=a%20b&limit=", "/runs?error=a%20b"),
    ] {
        let answer = visit(app(&db.store), from, None).await;
        assert_eq!(answer.status, StatusCode::SEE_OTHER, "{from}");
        assert_eq!(answer.location(), to, "{from}");
    }
    // A clean address is answered as it is.
    let answer = visit(app(&db.store), "/runs?status=failed", None).await;
    assert_eq!(answer.status, StatusCode::OK);
    let answer = visit(app(&db.store), "/failures?window=3h", None).await;
    assert_eq!(answer.status, StatusCode::OK);
}

fn versioned(id: &str, pipeline: &str, version: &str, status: Status, minutes_ago: i64) -> WorkflowState {
    let mut run = WorkflowState::new(id, pipeline);
    run.pipeline_version = version.into();
    run.status = status.clone();
    run.created_at = Some(now() - Duration::hours(5));
    run.updated_at = Some(now() - Duration::minutes(minutes_ago));
    if status == Status::Failed {
        run.error_message = Some(format!("TimeoutError: agent call exceeded {}s", 10 + minutes_ago));
    }
    run
}

#[tokio::test]
async fn failures_of_one_pipeline_show_each_version_and_filter_by_version() {
    let mut runs = Vec::new();
    for i in 0..9 {
        runs.push(versioned(
            &format!("a{i}"),
            "etl",
            "1.9",
            Status::Completed,
            200 + i,
        ));
    }
    runs.push(versioned("af", "etl", "1.9", Status::Failed, 190));
    for i in 0..2 {
        runs.push(versioned(
            &format!("b{i}"),
            "etl",
            "2.0",
            Status::Completed,
            30 + i,
        ));
    }
    for i in 0..3 {
        runs.push(versioned(&format!("bf{i}"), "etl", "2.0", Status::Failed, 20 + i));
    }
    runs.push(versioned("b-live", "etl", "2.0", Status::Running, 5));
    runs.push(versioned("other", "mail", "2.0", Status::Failed, 10));
    let db = new_db("versions.db", now(), &runs).await;

    let (status, html) = get(&db.store, "/failures?window=24h&pipeline=etl").await;
    assert_eq!(status, StatusCode::OK, "{html}");
    let page = markup(&html);
    assert_eq!(title(&html), "Failures · last 24 h · pipeline etl · flowstate");
    assert!(
        page.contains("data-testid=\"total-failed\" data-value=\"4\""),
        "etl's 4 failures only"
    );
    // The version table: newest version first; the rate over finished runs.
    assert!(page.contains("data-testid=\"version-rates\""));
    let v20 = page
        .find("data-version=\"2.0\" data-finished=\"5\" data-failed=\"3\"")
        .expect("2.0: 5 finished, 3 failed");
    let v19 = page
        .find("data-version=\"1.9\" data-finished=\"10\" data-failed=\"1\"")
        .expect("1.9: 10 finished, 1 failed");
    assert!(v20 < v19, "the newest version first");
    assert!(
        page.contains(">60.0 %<") || page.contains(">60 %<"),
        "3 of 5 finished runs"
    );
    assert!(
        page.contains("href=\"/failures?window=24h&amp;pipeline=etl&amp;version=2.0\""),
        "each version links to its own failures"
    );
    assert!(
        !page.contains("data-testid=\"failure-rates\""),
        "the per-pipeline table gives way to the versions"
    );

    let (status, html) = get(&db.store, "/failures?window=24h&pipeline=etl&version=2.0").await;
    assert_eq!(status, StatusCode::OK);
    let page = markup(&html);
    assert_eq!(
        title(&html),
        "Failures · last 24 h · pipeline etl · version 2.0 · flowstate"
    );
    assert!(page.contains("data-testid=\"total-failed\" data-value=\"3\""));
    assert!(
        page.contains("failed runs of pipeline etl, version 2.0 in the last 24 h"),
        "the summary names the filter"
    );
    // Links keep the filter: the window shortcuts, the drill-down, the runs list.
    assert!(page.contains("href=\"/failures?window=7d&amp;pipeline=etl&amp;version=2.0\""));
    let doc = Html::parse_document(page);
    let group = doc
        .select(&Selector::parse("[data-group]").unwrap())
        .next()
        .unwrap()
        .value()
        .attr("data-group")
        .unwrap()
        .to_string();
    assert!(page.contains(&format!(
        "href=\"/failures?window=24h&amp;pipeline=etl&amp;version=2.0&amp;group={group}\""
    )));
    assert!(
        page.contains("&amp;pipeline=etl&amp;version=2.0\""),
        "the runs links carry the version"
    );
    let (status, html) = get(
        &db.store,
        &format!("/failures?window=24h&pipeline=etl&version=2.0&group={group}"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        markup(&html).contains("data-count=\"3\""),
        "the drill-down counts the version's runs"
    );
    // The version of another pipeline only: mail's failure.
    let (_, html) = get(&db.store, "/failures?window=24h&version=2.0").await;
    assert!(markup(&html).contains("data-testid=\"total-failed\" data-value=\"4\""));
    // A pipeline without runs in the window: empty, not an error.
    let (status, html) = get(&db.store, "/failures?pipeline=nope").await;
    assert_eq!(status, StatusCode::OK);
    assert!(markup(&html).contains("No run of this pipeline in the window."));
}

/// The text of the unknown-parameter notice, when the page has one.
fn unknown_notice(html: &str) -> Option<String> {
    let doc = Html::parse_document(markup(html));
    let sel = Selector::parse("[data-testid=unknown-params]").unwrap();
    doc.select(&sel).next().map(|n| n.text().collect())
}

#[tokio::test]
async fn runs_and_pipelines_name_unknown_parameters_and_runs_titles_name_the_filter() {
    let mut run = failed_run("r1", json!([]));
    run.pipeline_id = "etl<b>".into();
    let db = new_db("runs-titles.db", now(), &[run]).await;

    let (_, html) = get(&db.store, "/runs").await;
    assert_eq!(title(&html), "Runs · flowstate");
    assert_eq!(unknown_notice(&html), None, "every parameter known: no notice");
    let (_, html) = get(
        &db.store,
        "/runs?status=failed&pipeline=etl%3Cb%3E&sort=slowest&min_duration=5m&limit=20",
    )
    .await;
    assert_eq!(
        title(&html),
        "Runs · failed · pipeline etl<b> · time ≥ 5m · slowest first · flowstate"
    );
    assert_eq!(unknown_notice(&html), None, "{}", markup(&html).len());
    assert!(
        !markup(&html).contains("<title>Runs · failed · pipeline etl<b>"),
        "the pipeline is escaped in <title>"
    );

    let (status, html) = get(&db.store, "/runs?statsu=failed&sort=slowest").await;
    assert_eq!(status, StatusCode::OK, "an unknown parameter is not an error");
    let notice = unknown_notice(&html).expect("a notice on /runs");
    assert!(
        notice.contains("“statsu”") && notice.contains("status"),
        "{notice}"
    );

    let (status, html) = get(&db.store, "/pipelines?windw=3h").await;
    assert_eq!(status, StatusCode::OK);
    let notice = unknown_notice(&html).expect("a notice on /pipelines");
    assert!(
        notice.contains("“windw”") && notice.contains("window"),
        "{notice}"
    );
    let (_, html) = get(&db.store, "/pipelines?window=3h&days=30").await;
    assert_eq!(unknown_notice(&html), None);
}

#[tokio::test]
async fn the_overviews_stuck_runs_number_steps_as_the_run_page_does() {
    // A paused run whose stored index is already past the last step (flujo leaves the index at N when the last
    // step ends): "step 4 of 4", never "step 5 of 4".
    let mut run = WorkflowState::new("stuck-past-end", "etl");
    run.status = Status::Paused;
    run.current_step_index = 4;
    run.total_steps = 4;
    run.created_at = Some(now() - Duration::hours(30));
    run.updated_at = Some(now() - Duration::hours(26));
    let mut second = WorkflowState::new("stuck-first-step", "etl");
    second.status = Status::Running;
    second.current_step_index = 0;
    second.total_steps = 3;
    second.created_at = Some(now() - Duration::hours(30));
    second.updated_at = Some(now() - Duration::hours(25));
    let db = new_db("stuck-steps.db", now(), &[run, second]).await;
    let (status, html) = get(&db.store, "/").await;
    assert_eq!(status, StatusCode::OK);
    let page = markup(&html);
    assert!(page.contains("step 4 of 4"), "clamped at the total");
    assert!(!page.contains("step 5 of 4"));
    assert!(page.contains("step 1 of 3"), "1-based");
}

#[tokio::test]
async fn the_run_page_title_names_the_list_it_was_opened_from() {
    let db = new_db("title-list.db", now(), &[failed_run("r-list", json!([]))]).await;
    let list = "/runs?status=failed&pipeline=sql-agent&version=2.1&min_duration=5m&sort=slowest";
    let (status, html) = get(&db.store, &format!("/runs/r-list?list={}", encode(list))).await;
    assert_eq!(status, StatusCode::OK, "{html}");
    // The list's own title, after the run's.
    let (_, list_html) = get(&db.store, list).await;
    let list_title = title(&list_html);
    assert_eq!(
        list_title,
        "Runs · failed · pipeline sql-agent · version 2.1 · time ≥ 5m · slowest first · flowstate"
    );
    assert_eq!(title(&html), format!("Run r-list · {list_title}"));
    // The whole list, or no list: the run alone.
    let (_, html) = get(&db.store, &format!("/runs/r-list?list={}", encode("/runs"))).await;
    assert_eq!(title(&html), "Run r-list · flowstate");
    let (_, html) = get(&db.store, "/runs/r-list").await;
    assert_eq!(title(&html), "Run r-list · flowstate");
    // Another page's address is not a list; hostile values are cut and escaped.
    let (_, html) = get(
        &db.store,
        &format!("/runs/r-list?list={}", encode("/failures?pipeline=x")),
    )
    .await;
    assert_eq!(title(&html), "Run r-list · flowstate");
    let evil = format!(
        "/runs?pipeline={}",
        encode(&format!("</title><script>x()</script>{}", "p".repeat(100)))
    );
    let (status, html) = get(&db.store, &format!("/runs/r-list?list={}", encode(&evil))).await;
    assert_eq!(status, StatusCode::OK);
    assert!(!markup(&html).contains("<script>x()"), "escaped");
    let shown = title(&html);
    assert!(
        shown.starts_with("Run r-list · Runs · pipeline </title><script>x()</script>"),
        "{shown}"
    );
    assert!(shown.chars().count() < 100, "the value is cut: {shown}");
}
