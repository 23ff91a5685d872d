//! The Pipelines page through the router (no socket): the table per pipeline over a window with its links to
//! the runs behind each number, the trend with its charts, data table and regressions, bad parameters as 400
//! pages naming the parameter, and hostile pipeline names escaped in the table, the charts and the `<title>`.
//! Runs on SQLite, and on PostgreSQL with `FLOWSTATE_TEST_BACKEND=postgres`.

mod support;

use axum::http::StatusCode;
use chrono::{DateTime, Duration, Utc};
use flowstate_store::{Status, WorkflowState};
use support::*;

const HOSTILE: &str = "</title><script>alert(1)</script>\"'&<svg onload=x>";

fn at(t: &str) -> DateTime<Utc> {
    t.parse().unwrap()
}

/// The page without the serialized resources Leptos appends after `</html>`.
fn markup(html: &str) -> &str {
    html.find("</html>").map_or(html, |end| &html[..end])
}

/// 14 days of runs: "steady" fails 1 in 10 both weeks, "breaking" 1 in 10 the week before and 4 in 10 this
/// week (a regression); a hostile name; running runs beside.
fn runs(now: DateTime<Utc>) -> Vec<WorkflowState> {
    let mut out = Vec::new();
    for d in 0..14i64 {
        for k in 0..10i64 {
            for p in ["steady", "breaking", HOSTILE] {
                let mut s = WorkflowState::new(format!("{p}-{d:02}-{k}"), p);
                let fails = if p == "breaking" && d < 7 { 4 } else { 1 };
                s.status = if k < fails {
                    Status::Failed
                } else {
                    Status::Completed
                };
                s.updated_at = Some(now - Duration::days(d) - Duration::minutes(k * 3 + 1));
                s.created_at = s.updated_at.map(|u| u - Duration::minutes(5));
                s.execution_time_ms = Some(200 + 100 * k);
                s.memory_usage_mb = Some(50.0 + k as f64);
                out.push(s);
            }
        }
    }
    for k in 0..5 {
        let mut s = WorkflowState::new(format!("live-{k}"), "steady");
        s.status = Status::Running;
        s.updated_at = Some(now - Duration::minutes(10));
        out.push(s);
    }
    out
}

const NOW: &str = "2026-05-20T12:30:00Z";

#[tokio::test]
async fn the_page_shows_each_pipeline_with_links_to_the_runs_behind_every_number() {
    let now = at(NOW);
    let db = new_db("pipelines.db", now, &runs(now)).await;
    let (status, html) = get(&db.store, "/pipelines").await;
    assert_eq!(status, StatusCode::OK);
    let page = markup(&html);
    assert!(
        page.contains("<title>Pipelines, last 24 h · trend over 7 days · flowstate</title>"),
        "{page}"
    );
    assert!(page.contains("href=\"/pipelines\""), "the nav links the page");
    // The window starts at the hour: 2026-05-19 12:00 UTC.
    let since = "2026-05-19T12%3A00%3A00Z";
    assert!(
        page.contains("2026-05-19 12:00 UTC"),
        "the window's start is named"
    );
    // steady: 20 runs (today's and yesterday's after 12:00, the window's start rounded down to the hour) + 5
    // running; 2 failed of 20 finished: 10 %, not 2/25.
    let row_start = page.find("data-pipeline=\"steady\"").expect("a row for steady");
    let row = &page[row_start..row_start + page[row_start..].find("</tr>").unwrap()];
    assert!(
        row.contains(&format!(
            "href=\"/runs?pipeline=steady&amp;updated_after={since}\">25</a>"
        )),
        "{row}"
    );
    assert!(
        row.contains(&format!("updated_after={since}&amp;status=failed\">2</a>")),
        "{row}"
    );
    assert!(
        row.contains(&format!("updated_after={since}&amp;status=completed\">18</a>")),
        "{row}"
    );
    assert!(
        row.contains(&format!(
            "updated_after={since}&amp;status=running,paused\">5</a>"
        )),
        "{row}"
    );
    assert!(
        row.contains(">10 %</a>"),
        "the failure rate of finished runs: {row}"
    );
    assert!(
        row.contains("&amp;sort=slowest\">"),
        "times link to the slowest runs: {row}"
    );
    assert!(
        row.contains("&amp;sort=heaviest\">"),
        "memory to the heaviest: {row}"
    );
    assert!(row.contains("href=\"/runs/live-"), "the newest run: {row}");
    // breaking fails 4 of 10: first (most failures first).
    let breaking = page.find("data-pipeline=\"breaking\"").unwrap();
    assert!(breaking < row_start, "most failures first");
    // A scroll hint and the cards.
    assert!(page.contains("class=\"scroll-hint\""));
    assert!(page.contains("data-testid=\"pipeline-cards\""));
    // The precision the figures were read with: 24 h reaches back past midnight, so whole days' coarse histograms.
    assert!(
        page.contains("within 12.5 % of the exact value"),
        "the stated precision of a window of whole days"
    );
    assert!(
        page.contains("Each p95 comes from a day's histogram, within 12.5 % of the exact value."),
        "the trend's precision"
    );

    // A window of 3 hours, by `since` too.
    let (status, html) = get(&db.store, "/pipelines?window=3h").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        markup(&html).contains("within 3.1 % of the exact value"),
        "a window within its first day reads the hours' fine histograms"
    );
    assert!(
        markup(&html).contains("<title>Pipelines, last 3 h"),
        "the title names the window"
    );
    assert!(markup(&html).contains("updated_after=2026-05-20T09%3A00%3A00Z"));
    let (status, html) = get(&db.store, "/pipelines?since=2026-05-20T10:15").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        markup(&html).contains("since 2026-05-20 10:15 UTC"),
        "{}",
        markup(&html)
    );
    assert!(markup(&html).contains("updated_after=2026-05-20T10%3A00%3A00Z"));
}

#[tokio::test]
async fn the_trend_draws_charts_with_a_data_table_and_names_a_regression() {
    let now = at(NOW);
    let db = new_db("trend.db", now, &runs(now)).await;
    let (status, html) = get(&db.store, "/pipelines?pipeline=breaking&days=7").await;
    assert_eq!(status, StatusCode::OK);
    let page = markup(&html);
    assert!(page.contains("Trend of breaking over 7 days"));
    assert!(
        page.contains("data-testid=\"regression\""),
        "a regression is marked"
    );
    assert!(
        page.contains("Regression: the failure rate of finished runs rose from 10 % to 40 % (+300 %)."),
        "in words, not only colour: {page}"
    );
    assert_eq!(
        page.matches("<svg").count(),
        3,
        "three charts, drawn on the server"
    );
    assert!(page.contains("class=\"chart-svg chart-trend-runs\""));
    assert!(page.contains("data-testid=\"trend-table\""));
    assert!(
        page.contains("<th scope=\"row\">2026-05-20</th>"),
        "the data per day"
    );
    assert!(page.contains("<th scope=\"row\">2026-05-14</th>"));
    // The other periods and all pipelines.
    let (_, html) = get(&db.store, "/pipelines?pipeline=steady&days=30").await;
    let page = markup(&html);
    assert!(page.contains("Trend of steady over 30 days"));
    assert!(
        page.contains("data-testid=\"no-regression\""),
        "steady does not regress"
    );
    assert!(
        page.contains("<th scope=\"row\">2026-04-21</th>"),
        "30 days of rows"
    );
    let (status, html) = get(&db.store, "/pipelines?days=90").await;
    assert_eq!(status, StatusCode::OK);
    assert!(markup(&html).contains("Trend of all pipelines over 90 days"));
    assert!(
        markup(&html).contains("href=\"/pipelines?days=30\""),
        "the period links"
    );
}

#[tokio::test]
async fn bad_parameters_are_400_pages_naming_the_parameter() {
    let now = at(NOW);
    let db = new_db("bad.db", now, &[]).await;
    for (query, param) in [
        ("window=bogus", "window"),
        ("window=0m", "window"),
        ("window=400d", "window"),
        ("since=yesterday", "since"),
        ("window=3h&since=2026-05-20T10:00", "since"),
        ("days=14", "days"),
        ("days=x", "days"),
    ] {
        let (status, html) = get(&db.store, &format!("/pipelines?{query}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}");
        assert!(
            markup(&html).contains(&format!("“{param}”")),
            "{query}: {}",
            markup(&html)
        );
    }
    let long = "p".repeat(5000);
    let (status, html) = get(&db.store, &format!("/pipelines?pipeline={long}")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(markup(&html).contains("“pipeline”"));
    // An empty database: a page, not an error.
    let (status, html) = get(&db.store, "/pipelines").await;
    assert_eq!(status, StatusCode::OK);
    assert!(markup(&html).contains("No run was updated in the last 24 h."));
}

#[tokio::test]
async fn hostile_pipeline_names_are_escaped_in_the_table_the_charts_and_the_title() {
    let now = at(NOW);
    let db = new_db("hostile.db", now, &runs(now)).await;
    let (status, html) = get(&db.store, &format!("/pipelines?pipeline={}", encode(HOSTILE))).await;
    assert_eq!(status, StatusCode::OK);
    let page = markup(&html);
    assert!(
        !page.contains("<script>alert(1)"),
        "no markup from the name anywhere"
    );
    assert!(!page.contains("<svg onload"), "no element from the name");
    let title_start = page.find("<title>").unwrap();
    let title = &page[title_start..title_start + page[title_start..].find("</title>").unwrap()];
    assert!(
        title.contains("trend of &lt;/title&gt;&lt;script&gt;"),
        "escaped in the title: {title}"
    );
    assert!(
        page.contains("&lt;/title&gt;&lt;script&gt;alert(1)&lt;/script&gt;"),
        "shown as text"
    );
    assert!(
        page.contains(
            "aria-label=\"Runs of pipeline &lt;/title&gt;&lt;script&gt;alert(1)&lt;/script&gt;&quot;"
        ),
        "escaped in the chart's label"
    );
    assert!(page.contains("Trend of &lt;/title&gt;"), "escaped in the heading");
}
