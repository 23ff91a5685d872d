//! The Overview and Failures pages through the router (no socket), on flujo's 300-run sample fixture with the
//! store's clock at the fixture's `generated_now_utc`, so the 24-hour figures are the fixture's ground truth.

mod support;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use chrono::{DateTime, Duration, Utc};
use flowstate_store::Store;
use support::*;

const SAMPLE: &str = "flujo-0.4.35-sample-300";

/// The fixture's ground truth (computed from the values written, not from flujo's answers).
fn truth() -> serde_json::Value {
    fixture_truth(&format!("{SAMPLE}.json"))
}

struct Sample {
    _db: Db,
    store: Store,
    now: DateTime<Utc>,
    truth: serde_json::Value,
}

/// A copy of the sample database (opening migrates it) in a temp dir, the clock at `generated_now_utc`.
async fn sample() -> Sample {
    let truth = truth();
    let now: DateTime<Utc> = truth["generated_now_utc"]
        .as_str()
        .expect("generated_now_utc")
        .parse()
        .expect("an RFC 3339 instant");
    let db = fixture_copy(&format!("{SAMPLE}.db"), now).await;
    Sample {
        store: db.store.clone(),
        _db: db,
        now,
        truth,
    }
}

/// The page without the serialized resources Leptos appends after `</html>` for hydration.
fn markup(html: &str) -> &str {
    html.find("</html>").map_or(html, |end| &html[..end])
}

/// The number in `data-value="…"` of the element with `data-testid="<id>"`.
#[track_caller]
fn value_of(html: &str, id: &str) -> i64 {
    let marker = format!("data-testid=\"{id}\"");
    let at = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no {marker} in the page"));
    let tag_end = at + html[at..].find('>').expect("the tag ends");
    let tag_start = html[..at].rfind('<').expect("the tag starts");
    number_after(&html[tag_start..tag_end], "data-value=\"")
}

#[track_caller]
fn number_after(text: &str, marker: &str) -> i64 {
    let at = text
        .find(marker)
        .unwrap_or_else(|| panic!("no {marker:?} in {text}"))
        + marker.len();
    let digits: String = text[at..].chars().take_while(|c| c.is_ascii_digit()).collect();
    digits
        .parse()
        .unwrap_or_else(|_| panic!("no number after {marker:?}"))
}

/// The text inside the element with `data-testid="<id>"` (up to its first child tag).
#[track_caller]
fn text_of<'a>(html: &'a str, id: &str) -> &'a str {
    let marker = format!("data-testid=\"{id}\"");
    let at = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no {marker} in the page"));
    let start = at + html[at..].find('>').expect("the tag ends") + 1;
    let len = html[start..].find('<').expect("the text ends");
    &html[start..start + len]
}

/// Every value of `attr="…"` in the page, in order.
fn attributes<'a>(html: &'a str, attr: &str) -> Vec<&'a str> {
    let marker = format!(" {attr}=\"");
    html.match_indices(&marker)
        .map(|(at, _)| {
            let start = at + marker.len();
            let len = html[start..].find('"').unwrap();
            &html[start..start + len]
        })
        .collect()
}

/// The figure of one status row of the Overview.
#[track_caller]
fn status_figure(html: &str, status: &str) -> i64 {
    let marker = format!("data-status=\"{status}\"");
    let at = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no status row for {status}"));
    let end = at + html[at..].find("</li>").unwrap();
    number_after(&html[at..end], "data-value=\"")
}

#[tokio::test]
async fn the_overview_shows_the_fixture_figures() {
    let s = sample().await;
    let (status, html) = get(&s.store, "/").await;
    assert_eq!(status, StatusCode::OK, "{html}");
    let page = markup(&html);

    assert_eq!(value_of(page, "total"), 300, "every run");
    for (name, n) in s.truth["counts_by_status"].as_object().unwrap() {
        assert_eq!(
            status_figure(page, name),
            n.as_i64().unwrap(),
            "{name} runs as the fixture counts them"
        );
        assert!(
            page.contains(&format!("href=\"/runs?status={name}\"")),
            "{name} links to the filtered list"
        );
    }
    assert_eq!(
        value_of(page, "recent-24h"),
        s.truth["recent_created_24h"]["true_count_by_created_at"]
            .as_i64()
            .unwrap(),
        "created in the last 24 h (22)"
    );
    assert_eq!(value_of(page, "recent-24h"), 22);
    assert_eq!(
        value_of(page, "failed-24h"),
        s.truth["failed_last_24h"]["true_count_by_updated_at"]
            .as_i64()
            .unwrap(),
        "failed in the last 24 h (5)"
    );
    assert_eq!(value_of(page, "failed-24h"), 5);
    assert!(
        page.contains("href=\"/failures?window=24h\""),
        "the failed figure links to the failures of the last 24 h"
    );

    let stuck = s.store.stuck_runs(Duration::hours(1), 10).await.unwrap();
    assert!(stuck.count > 0, "the sample has idle running or paused runs");
    assert_eq!(
        value_of(page, "stuck-count"),
        stuck.count,
        "the store's stuck count"
    );
    assert_eq!(value_of(page, "stuck-total"), stuck.count);
    assert!(page.contains(">1 h</strong>"), "the default threshold is shown");
    for run in stuck.runs.iter().take(10) {
        assert!(
            page.contains(&format!("href=\"/runs/{}\"", run.run_id)),
            "the stuck run {} links to its page",
            run.run_id
        );
    }

    let p = s.store.execution_percentiles(None).await.unwrap();
    for (id, value) in [("p50", p.p50), ("p95", p.p95), ("p99", p.p99)] {
        let text = flowstate_app::format::duration_ms(value.expect("the sample has execution times"));
        assert_eq!(text_of(page, id), text, "{id}");
    }
    let average =
        flowstate_app::format::duration_ms(s.truth["average_execution_time_ms"]["true"].as_f64().unwrap());
    assert_eq!(
        text_of(page, "average-execution"),
        average,
        "the mean execution time"
    );

    let read_at = s.now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    assert!(
        page.contains(&format!("datetime=\"{read_at}\"")),
        "read at {read_at}"
    );
}

#[tokio::test]
async fn the_overview_charts_are_inline_svg_with_words() {
    let s = sample().await;
    let (_, html) = get(&s.store, "/").await;
    let page = markup(&html);
    for id in ["chart-hourly", "chart-daily", "chart-percentiles"] {
        let at = page
            .find(&format!("data-testid=\"{id}\""))
            .unwrap_or_else(|| panic!("no {id}"));
        let figure = &page[at..at + page[at..].find("</figure>").expect("the figure ends")];
        assert!(figure.contains("<svg "), "{id} is an inline SVG");
        assert!(
            figure.contains("role=\"img\""),
            "{id} is an image to assistive technology"
        );
        assert!(figure.contains("aria-label=\""), "{id} has a summary");
        assert!(figure.contains("<details"), "{id} has its data as a table");
        assert!(figure.contains("<table"), "{id} has its data as a table");
    }
    assert_eq!(page.matches("<svg ").count(), 3, "three charts");
    assert!(
        page.contains("class=\"f-completed\""),
        "bars are painted by status class"
    );
    let labels = attributes(page, "aria-label");
    let hourly = labels
        .iter()
        .find(|l| l.starts_with("Runs created per hour"))
        .expect("the hourly chart's summary");
    assert!(hourly.contains("stacked by status"), "{hourly}");
    let daily = labels
        .iter()
        .find(|l| l.starts_with("Runs created per day over the last 30 days"))
        .expect("the daily chart's summary");
    assert!(daily.contains("in total"), "{daily}");
    let pipelines = s.truth["counts_by_pipeline"].as_object().unwrap();
    for name in pipelines.keys() {
        assert!(
            page.contains(&format!("<th scope=\"row\">{name}</th>")),
            "the percentile table lists {name}"
        );
    }
    for status in ["running", "paused", "completed", "failed", "cancelled"] {
        assert!(
            page.contains(&format!("swatch swatch-{status}")),
            "the legend names {status} in words"
        );
    }
}

#[tokio::test]
async fn the_stuck_threshold_comes_from_the_url() {
    let s = sample().await;
    let (status, html) = get(&s.store, "/?stuck=30d").await;
    assert_eq!(status, StatusCode::OK);
    let page = markup(&html);
    let stuck = s.store.stuck_runs(Duration::days(30), 10).await.unwrap();
    let default = s.store.stuck_runs(Duration::hours(1), 10).await.unwrap();
    assert!(stuck.count < default.count, "a longer threshold finds fewer runs");
    assert_eq!(value_of(page, "stuck-count"), stuck.count);
    assert!(page.contains(">30 d</strong>"), "the threshold is shown");
    assert!(page.contains("value=\"30d\""), "and kept in the form");

    let (status, html) = get(&s.store, "/?stuck=90m").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        value_of(markup(&html), "stuck-count"),
        s.store.stuck_runs(Duration::minutes(90), 10).await.unwrap().count
    );

    for bad in ["soon", "0m", "5"] {
        let (status, html) = get(&s.store, &format!("/?stuck={bad}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "stuck={bad}");
        assert!(
            html.contains("“stuck”"),
            "the 400 page names the parameter: {}",
            markup(&html)
        );
    }
}

/// The `data-count` of every failure group on the page.
fn group_counts(page: &str) -> Vec<i64> {
    attributes(page, "data-count")
        .into_iter()
        .map(|v| v.parse().unwrap())
        .collect()
}

#[tokio::test]
async fn failures_of_the_last_24_hours_are_grouped() {
    let s = sample().await;
    let (status, html) = get(&s.store, "/failures?window=24h").await;
    assert_eq!(status, StatusCode::OK, "{html}");
    let page = markup(&html);
    assert!(page.contains("<h1>Failures</h1>"));
    assert_eq!(value_of(page, "total-failed"), 5);
    let counts = group_counts(page);
    assert!(!counts.is_empty(), "some groups");
    assert_eq!(
        counts.iter().sum::<i64>(),
        5,
        "the groups hold the 5 failures of the last 24 h"
    );
    assert!(
        !page.contains("data-testid=\"truncated\""),
        "300 runs are read whole"
    );
    // The true failures of the window (flujo's own list carries its time-window bug).
    for run_id in s.truth["failed_last_24h"]["true_run_ids"].as_array().unwrap() {
        let run_id = run_id.as_str().unwrap();
        assert!(
            page.contains(&format!("href=\"/runs/{run_id}\"")),
            "{run_id} is a sample of its group"
        );
    }
    assert!(
        page.contains("Step &lt;v&gt; failed: ConnectionError: Connection reset by peer")
            || page.contains("Step <v> failed: ConnectionError: Connection reset by peer"),
        "the signature is shown with its placeholders"
    );
    // The runs list of a group: failed runs of the window whose error contains the signature's constant part.
    let since = (s.now - Duration::hours(24)).to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let since = flowstate_app::format::url_encode(&since);
    assert!(
        page.contains(&format!(
            "href=\"/runs?status=failed&amp;error=failed%3A%20ConnectionError%3A%20Connection%20reset%20by%20peer&amp;updated_after={since}\""
        )),
        "the group links to the runs list by its longest constant fragment"
    );
    let key = attributes(page, "data-group")[0].to_string();
    assert!(
        page.contains(&format!("href=\"/failures?window=24h&amp;group={key}\"")),
        "each group links to its drill-down"
    );
    // Failure rates: every pipeline with runs updated in the window.
    assert!(page.contains("data-testid=\"failure-rates\""));
    let rates = s.store.failure_rates(s.now - Duration::hours(24)).await.unwrap();
    assert_eq!(
        page.matches("<tr data-pipeline=").count(),
        rates.len(),
        "one rate row per pipeline"
    );
    assert_eq!(rates.iter().map(|r| r.failed).sum::<i64>(), 5);

    let (status, default) = get(&s.store, "/failures").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        group_counts(markup(&default)),
        counts,
        "24 h is the default window"
    );
    assert!(
        markup(&default).contains("aria-current=\"page\" class=\"segment segment-current\">Last 24 h<")
            || markup(&default)
                .contains("class=\"segment segment-current\" aria-current=\"page\">Last 24 h<"),
        "the selector marks the current window"
    );
}

#[tokio::test]
async fn every_window_counts_what_the_store_counts() {
    let s = sample().await;
    for (window, span) in [
        ("1h", Duration::hours(1)),
        ("7d", Duration::days(7)),
        ("30d", Duration::days(30)),
    ] {
        let (status, html) = get(&s.store, &format!("/failures?window={window}")).await;
        assert_eq!(status, StatusCode::OK, "{window}");
        let page = markup(&html);
        let expected = s.store.count_failed_since(s.now - span).await.unwrap();
        assert_eq!(value_of(page, "total-failed"), expected, "{window}");
        assert_eq!(
            group_counts(page).iter().sum::<i64>(),
            expected,
            "{window}: the groups add up"
        );
    }
}

#[tokio::test]
async fn a_group_drill_down_lists_its_runs() {
    let s = sample().await;
    let report = s.store.failure_groups(s.now - Duration::days(30)).await.unwrap();
    let biggest = &report.groups[0];
    assert!(
        biggest.count > 5,
        "the largest 30-day group has more runs than the list shows"
    );
    let (status, html) = get(&s.store, &format!("/failures?window=30d&group={}", biggest.key)).await;
    assert_eq!(status, StatusCode::OK, "{html}");
    let page = markup(&html);
    assert_eq!(group_counts(page), vec![biggest.count], "only that group");
    let table_at = page
        .find("data-testid=\"group-samples\"")
        .expect("a table of its runs");
    let table = &page[table_at..table_at + page[table_at..].find("</table>").unwrap()];
    let links = table.matches("href=\"/runs/").count() as i64;
    assert_eq!(links, biggest.count.min(50), "every run of the group, up to 50");
    assert!(
        page.contains("href=\"/failures?window=30d\""),
        "a way back to every group"
    );
}

#[tokio::test]
async fn bad_parameters_are_400_and_unknown_groups_404() {
    let s = sample().await;
    let (status, html) = get(&s.store, "/failures?window=bogus").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let page = markup(&html);
    assert!(page.contains("“window”"), "the page names the parameter: {page}");
    assert!(page.contains("1m to 365d"), "and says what it accepts");

    let (status, html) = get(&s.store, "/failures?window=24h&group=0123456789abcdef").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        markup(&html).contains("There is no failure group “0123456789abcdef” in the last 24 h"),
        "{}",
        markup(&html)
    );

    let (status, html) = get(&s.store, "/failures?group=not-a-key").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(markup(&html).contains("“group”"));
}

#[tokio::test]
async fn an_empty_database_has_no_failures_and_no_charts_to_fail() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(new_location(dir.path(), "empty.db").await)
        .await
        .unwrap();
    let (status, html) = get(&store, "/failures").await;
    assert_eq!(status, StatusCode::OK);
    assert!(markup(&html).contains("No run failed in the last 24 h."));
    let (status, html) = get(&store, "/").await;
    assert_eq!(status, StatusCode::OK);
    let page = markup(&html);
    assert_eq!(value_of(page, "stuck-count"), 0);
    assert!(page.contains("No run is stuck."));
    assert!(
        page.contains("No run has an execution time yet."),
        "no percentile chart without data"
    );
    assert_eq!(
        page.matches("<svg ").count(),
        2,
        "the activity charts still draw their axes"
    );
}

#[tokio::test]
async fn the_server_functions_have_stable_urls() {
    let s = sample().await;
    let post = |uri: &str, body: &str| {
        Request::post(uri)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(body.to_string()))
            .unwrap()
    };
    let call = |request: Request<Body>| async {
        let answer = send(app(&s.store), request).await;
        (answer.status, answer.body)
    };

    let (status, body) = call(post("/api/failures", "window=7d")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let json: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    let expected = s
        .store
        .count_failed_since(s.now - Duration::days(7))
        .await
        .unwrap();
    assert_eq!(json["total_failed"], expected);
    let summed: i64 = json["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["count"].as_i64().unwrap())
        .sum();
    assert_eq!(summed, expected, "the groups add up");

    let (status, body) = call(post("/api/overview", "stuck=2h")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let json: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(json["total"], 300);
    assert_eq!(json["failed_24h"], 5);
    assert_eq!(json["stuck"]["threshold"], "2h");
    assert_eq!(
        json["stuck"]["count"],
        s.store.stuck_runs(Duration::hours(2), 1).await.unwrap().count
    );
    assert!(json["charts"]["hourly"]["svg"]
        .as_str()
        .unwrap()
        .starts_with("<svg "));

    let (status, body) = call(post("/api/failures", "window=bogus")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.contains("window"), "the error names the parameter: {body}");
}

/// The runs-list link of each group (`error` = the signature's longest constant fragment, `updated_after` = the
/// window's start) lists the group's runs.
#[tokio::test]
async fn each_group_opens_in_the_runs_list() {
    let s = sample().await;
    let (_, html) = get(&s.store, "/failures?window=30d").await;
    let page = markup(&html);
    let links: Vec<String> = attributes(page, "href")
        .into_iter()
        .filter(|h| h.starts_with("/runs?status=failed&amp;error="))
        .map(|h| h.replace("&amp;", "&"))
        .collect();
    let report = s.store.failure_groups(s.now - Duration::days(30)).await.unwrap();
    assert_eq!(links.len(), report.groups.len(), "one link per group");
    for (link, group) in links.iter().zip(&report.groups) {
        let (status, list) = get(&s.store, link).await;
        assert_eq!(status, StatusCode::OK, "{link}");
        for run in &group.samples {
            assert!(
                markup(&list).contains(&run.run_id),
                "{link} lists {} of the group {:?}",
                run.run_id,
                group.signature
            );
        }
    }
}
