//! Hostile values in every column, on every page (issue 12).
//!
//! Workflow data is partly attacker-controlled: run ids, error messages and contexts come from LLM calls, user
//! input and other systems. Each page is parsed the way a browser parses it (html5ever, through `scraper`) and the
//! parsed document is checked: the title's text is the data as text, and no element, attribute or form the data
//! spelled exists. A run id that closed `</title>` used to become a `<meta http-equiv="refresh">` and a `<form>`
//! of the attacker's in every operator's run page.
//!
//! Large values get their own checks: a 3 MB error message or a 5 MB context must leave every list and the run's
//! page quick and small, with the whole value one click away.

mod support;

use chrono::Duration;
use flowstate_store::{RunExtras, Status, WorkflowState};
use scraper::{Html, Selector};
use serde_json::json;
use support::*;

/// Tag names only the data spells: any element named so was created by the data.
const EVIL_TAGS: &[&str] = &[
    "x-evil",
    "x-evil-pipe",
    "x-evil-err",
    "x-evil-ctx",
    "x-evil-name",
    "x-evil-ver",
    "x-evil-meta",
    "x-evil-task",
    "x-evil-bg",
];

/// Run ids, each trying another way out of the markup.
fn hostile_ids() -> Vec<String> {
    vec![
        r#"</title><meta http-equiv="refresh" content="0;url=https://evil.example/"><x-evil>"#.into(),
        r#"</title></head><body><form action="/api/run_cleanup?evil=1" method="post"><input type="hidden" name="days" value="1"><x-evil>"#.into(),
        r#""><script>window.evil=1</script><img src=x onerror="evil()">"#.into(),
        r#"'><svg onload=evil()><x-evil>"#.into(),
        "<!--<x-evil>-->]]><![CDATA[<x-evil>".into(),
        "\u{202E}gnp.exe\u{202C}<x-evil>".into(),
        "run with spaces & ampersands ; and %2F slashes/too?x=1#frag".into(),
        "plain/slash ü?#".into(),
    ]
}

fn hostile_runs() -> Vec<WorkflowState> {
    let at = now() - Duration::hours(1);
    let ids = hostile_ids();
    ids.clone()
        .into_iter()
        .enumerate()
        .map(|(i, id)| {
            let mut run = WorkflowState::new(id, r#"pipe"><x-evil-pipe onclick="evil()">"#);
            run.pipeline_name = r#"</title><x-evil-name>"#.into();
            run.pipeline_version = r#"1.0"><x-evil-ver>"#.into();
            run.status = if i % 2 == 0 {
                Status::Failed
            } else {
                Status::Completed
            };
            run.error_message = Some(format!(
                "</pre></section><x-evil-err>TimeoutError {i}</x-evil-err><script>evil()</script>"
            ));
            run.pipeline_context = json!({
                "prompt": "</script><x-evil-ctx><script>evil()</script>",
                "html": "<img src=x onerror=evil()>",
                "comment": "<!-- --><x-evil-ctx>",
            });
            run.last_step_output = Some(json!("</code></pre><x-evil-ctx>"));
            run.step_history = json!([{ "step": "<x-evil-ctx>", "output": "\"></x-evil-ctx>" }]);
            run.created_at = Some(at - Duration::minutes(i as i64));
            run.updated_at = Some(at - Duration::minutes(i as i64));
            run.execution_time_ms = Some(1200 + i as i64);
            // The background-task columns of flujo's PostgreSQL layout: each run a task of the previous (hostile)
            // run, so its page links to it.
            run.extras = RunExtras {
                metadata: Some(json!({
                    "note": "</code></pre><x-evil-meta><script>evil()</script>",
                    "<x-evil-meta>": ["\"><img src=x onerror=evil()>"],
                })),
                is_background_task: i % 2 == 1,
                parent_run_id: (i > 0).then(|| ids[i - 1].clone()),
                task_id: Some(format!(r#"task-{i}"><x-evil-task onclick="evil()">"#)),
                background_error: Some(format!(
                    "</pre></div><x-evil-bg>bg {i}</x-evil-bg><script>evil()</script>"
                )),
            };
            run
        })
        .collect()
}

#[track_caller]
fn selector(css: &str) -> Selector {
    Selector::parse(css).unwrap_or_else(|e| panic!("selector {css}: {e:?}"))
}

/// What the parsed page must not hold: any element the data spelled, a `<meta http-equiv>`, an event handler,
/// a form or link of the attacker's.
fn check_document(page: &str, html: &str) -> Html {
    let doc = Html::parse_document(html);
    for tag in EVIL_TAGS {
        assert!(
            doc.select(&selector(tag)).next().is_none(),
            "{page}: the data created a <{tag}> element"
        );
    }
    assert!(
        doc.select(&selector("meta[http-equiv]")).next().is_none(),
        "{page}: the data created a <meta http-equiv>"
    );
    for element in doc.select(&selector("*")) {
        for (name, value) in element.value().attrs() {
            assert!(
                !name.starts_with("on"),
                "{page}: an event handler attribute {name}={value:?} on <{}>",
                element.value().name()
            );
        }
        if element.value().name() == "form" {
            let action = element.value().attr("action").unwrap_or("");
            assert!(
                !action.contains("evil"),
                "{page}: the data created a form posting to {action}"
            );
        }
        if element.value().name() == "script" {
            assert!(
                element.value().attr("nonce").is_some(),
                "{page}: a script without the nonce"
            );
            let text: String = element.text().collect();
            assert!(
                !text.contains("evil()</script"),
                "{page}: script text broke out: {text:.200}"
            );
        }
        // The pages have no images; their SVG charts are checked by the event-handler rule above.
        assert_ne!(
            element.value().name(),
            "img",
            "{page}: the data created an <img> element"
        );
    }
    let heads = doc.select(&selector("head")).count();
    assert_eq!(heads, 1, "{page}: one <head>");
    let titles = doc.select(&selector("head > title")).count();
    assert_eq!(titles, 1, "{page}: one <title> in the head");
    doc
}

/// The text of the first element `css` selects (the test fails naming `css` when there is none).
#[track_caller]
fn text_of(doc: &Html, css: &str) -> String {
    doc.select(&selector(css))
        .next()
        .unwrap_or_else(|| panic!("no element {css}"))
        .text()
        .collect()
}

fn title_of(doc: &Html) -> String {
    doc.select(&selector("head > title"))
        .next()
        .map(|t| t.text().collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn hostile_values_never_become_markup_on_any_page() {
    let runs = hostile_runs();
    let db = new_db("hostile.db", now(), &runs).await;
    let pipeline = encode(&runs[0].pipeline_id);
    let mut pages = vec![
        "/".to_string(),
        "/runs".into(),
        "/runs?status=failed".into(),
        "/runs?status=completed&limit=2".into(),
        format!("/runs?pipeline={pipeline}"),
        format!("/runs?prefix={}", encode("</title>")),
        format!("/runs?error={}", encode("<x-evil-err>")),
        "/runs?background=1".into(),
        "/runs?background=0".into(),
        format!("/runs?parent={}", encode(&runs[0].run_id)),
        format!("/runs?parent={}&background=1", encode(&runs[2].run_id)),
        "/failures".into(),
        "/failures?window=7d".into(),
        "/cleanup".into(),
        format!("/cleanup?days=1&status=completed&status=failed&pipeline={pipeline}&preview=1"),
        "/login".into(),
    ];
    // Each group of the failures page, drilled into.
    let (status, html) = get(&db.store, "/failures").await;
    assert_eq!(status, 200);
    let doc = check_document("/failures", &html);
    for link in doc.select(&selector("a[href^='/failures?']")) {
        pages.push(link.value().attr("href").unwrap().to_string());
    }

    for page in &pages {
        let answer = visit(app(&db.store), page, None).await;
        assert_eq!(
            answer.status,
            200,
            "{page}: {}",
            &answer.body[..answer.body.len().min(400)]
        );
        let nonce = check_headers(&answer).unwrap_or_else(|e| panic!("{page}: {e}"));
        check_markup(&answer.body, &nonce).unwrap_or_else(|e| panic!("{page}: {e}"));
        let doc = check_document(page, &answer.body);
        assert!(
            title_of(&doc).ends_with(" · flowstate"),
            "{page}: title {:?}",
            title_of(&doc)
        );
    }

    // Every run's own page: the title is the id as text, the heading shows the id, the pipeline, version, error
    // and values are shown as text.
    for run in &runs {
        let page = flowstate_app::format::run_href(&run.run_id);
        let answer = visit(app(&db.store), &page, None).await;
        if answer.status != 200 {
            let doc = Html::parse_document(&answer.body);
            let text: String = doc
                .select(&selector(".error-page"))
                .next()
                .map(|e| e.text().collect())
                .unwrap_or_default();
            panic!("{page}: {} {text}", answer.status);
        }
        let nonce = check_headers(&answer).unwrap();
        check_markup(&answer.body, &nonce).unwrap_or_else(|e| panic!("{page}: {e}"));
        let doc = check_document(&page, &answer.body);
        assert_eq!(
            title_of(&doc),
            format!("Run {} · flowstate", run.run_id),
            "{page}"
        );
        let shown = text_of(&doc, "h1 code.run-id");
        assert_eq!(shown, run.run_id, "{page}: the heading shows the id as text");
        let error = text_of(&doc, ".error-text");
        assert_eq!(
            Some(error.as_str()),
            run.error_message.as_deref(),
            "{page}: the error as text"
        );
        let version = text_of(&doc, "[data-field=pipeline-version]");
        assert_eq!(version, run.pipeline_version);
        let context = text_of(&doc, "#context pre");
        assert!(
            context.contains("</script><x-evil-ctx>"),
            "{page}: the context as text"
        );
        // The background-task block: every value as text, the parent a link to its own page.
        let extras = &run.extras;
        assert_eq!(
            Some(text_of(&doc, "[data-field=task-id]")),
            extras.task_id,
            "{page}: the task id as text"
        );
        assert_eq!(
            Some(text_of(&doc, "#background_error pre")),
            extras.background_error,
            "{page}: the background error as text"
        );
        assert!(
            text_of(&doc, "#metadata pre").contains("</code></pre><x-evil-meta><script>evil()</script>"),
            "{page}: the metadata as text"
        );
        match &extras.parent_run_id {
            Some(parent) => {
                let link = doc
                    .select(&selector("[data-testid=parent-run]"))
                    .next()
                    .unwrap_or_else(|| panic!("{page}: no parent link"));
                assert_eq!(
                    link.value().attr("href"),
                    Some(flowstate_app::format::run_href(parent).as_str())
                );
                assert_eq!(&link.text().collect::<String>(), parent);
            }
            None => assert_eq!(text_of(&doc, "[data-field=parent-run]"), "none"),
        }
        // The only forms are the page's own (the delete form), posting where the page says.
        for form in doc.select(&selector("form")) {
            let action = form.value().attr("action").unwrap_or("");
            assert!(
                matches!(action, "/api/delete_run" | "/api/logout" | "/theme" | ""),
                "{page}: a form posting to {action:?}"
            );
        }
    }
}

/// The ids a path cannot carry (`.`, `..`), and ids longer than flowstate's own save limit (flujo writes them):
/// each gets a link that opens its page, and its page can delete it.
#[tokio::test]
async fn runs_with_dot_ids_and_long_ids_can_be_opened_and_deleted() {
    let db = new_db("odd.db", now(), &[]).await;
    let long = format!("long-{}", "x".repeat(700));
    let ids = [".", "..", long.as_str()];
    let rows: Vec<RawRow> = ids
        .iter()
        .map(|id| RawRow {
            run_id: id,
            ..Default::default()
        })
        .collect();
    insert_raw(&db, &rows).await;
    let (status, html) = get(&db.store, "/runs").await;
    assert_eq!(status, 200);
    let doc = Html::parse_document(&html);
    for id in ids {
        let row = doc
            .select(&selector("tr[data-run-id]"))
            .find(|tr| tr.value().attr("data-run-id") == Some(id))
            .unwrap_or_else(|| panic!("run {id:.20} is listed"));
        let href = row
            .select(&selector("a.run-link"))
            .next()
            .unwrap()
            .value()
            .attr("href")
            .unwrap()
            .to_string();
        assert!(
            !href.ends_with("/.") && !href.ends_with("/.."),
            "{href}: a browser would resolve it away"
        );
        let answer = visit(app(&db.store), &href, None).await;
        assert_eq!(answer.status, 200, "{href}");
        let page = Html::parse_document(&answer.body);
        let shown = text_of(&page, "h1 code.run-id");
        assert_eq!(shown, id, "{href} shows the run");
        assert!(
            page.select(&selector("form[action='/api/delete_run'] input[name=run_id]"))
                .any(|input| input.value().attr("value") == Some(id)),
            "{href}: the delete form names the run"
        );
        let deleted = Post::delete(id, id).send(app(&db.store)).await;
        assert!(
            deleted.status.is_redirection() || deleted.status.is_success(),
            "deleting {id:.20}: {} {}",
            deleted.status,
            deleted.body
        );
        assert!(
            db.store.load_state(id).await.unwrap().is_none(),
            "{id:.20} is deleted"
        );
    }
}

/// One worker's 3 MB error message and 5 MB context: the lists stay small and 200 for everyone, the run's page
/// shows the start of each with its size, and the whole value is one click away, byte for byte.
#[tokio::test]
async fn huge_values_keep_every_page_small_and_the_whole_value_one_click_away() {
    let db = new_db("huge.db", now(), &[]).await;
    let error = format!(
        "ValueError: {}",
        "the model said no. ".repeat(3 * 1024 * 1024 / 19)
    );
    // Keys in the order and spacing PostgreSQL's jsonb keeps them (shorter keys first): the same bytes back on both.
    let context = format!(
        r#"{{"n": 1, "document": "{}"}}"#,
        "lorem ipsum ".repeat(5 * 1024 * 1024 / 12)
    );
    let big = RawRow {
        run_id: "big",
        status: "failed",
        context: &context,
        created_at: "2026-03-14T11:00:00",
        updated_at: "2026-03-14T11:00:00",
        error_message: Some(&error),
        metadata: Some(&context),
        is_background_task: true,
        background_error: Some(&error),
        ..Default::default()
    };
    insert_raw(&db, &[big]).await;
    for page in [
        "/runs",
        "/runs?status=failed",
        "/runs?pipeline=p",
        "/runs?background=1",
        "/failures",
        "/",
    ] {
        let answer = visit(app(&db.store), page, None).await;
        assert_eq!(answer.status, 200, "{page}");
        assert!(
            answer.body.len() < 256 * 1024,
            "{page} is {} bytes",
            answer.body.len()
        );
    }
    let answer = visit(app(&db.store), "/runs/big", None).await;
    assert_eq!(answer.status, 200);
    assert!(
        answer.body.len() < 512 * 1024,
        "the run page is {} bytes",
        answer.body.len()
    );
    let doc = Html::parse_document(&answer.body);
    let raw_links: Vec<String> = doc
        .select(&selector("a[data-testid$='-raw']"))
        .map(|a| a.value().attr("href").unwrap().to_string())
        .collect();
    assert!(
        raw_links.contains(&"/raw/error?run=big".to_string()),
        "{raw_links:?}"
    );
    assert!(
        raw_links.contains(&"/raw/context?run=big".to_string()),
        "{raw_links:?}"
    );
    for value in ["metadata", "background_error"] {
        assert!(
            raw_links.contains(&format!("/raw/{value}?run=big")),
            "{raw_links:?}"
        );
    }
    assert!(
        answer.body.contains("Too large to show in a page"),
        "both values are over the in-page limit"
    );
    let shown = text_of(&doc, ".error-text");
    assert!(
        error.starts_with(&shown) && shown.len() >= 8 * 1024,
        "the error's start is shown"
    );

    // ?full= of a value over the in-page limit still answers a small page (no 50 MB page, no 500).
    let answer = visit(app(&db.store), "/runs/big?full=all", None).await;
    assert_eq!(answer.status, 200);
    assert!(answer.body.len() < 512 * 1024, "{} bytes", answer.body.len());

    for (value, whole) in [
        ("error", &error),
        ("context", &context),
        ("background_error", &error),
        ("metadata", &context),
    ] {
        let answer = visit(app(&db.store), &format!("/raw/{value}?run=big"), None).await;
        assert_eq!(answer.status, 200, "{value}");
        assert_eq!(answer.header("content-type"), "text/plain; charset=utf-8");
        assert_eq!(answer.header("x-content-type-options"), "nosniff");
        assert_eq!(&answer.body, whole, "the whole {value}, byte for byte");
    }
    for (uri, status) in [
        ("/raw/context?run=nope", 404),
        ("/raw/secrets?run=big", 400),
        ("/raw/context", 400),
        ("/raw/output?run=big", 404),
    ] {
        let answer = visit(app(&db.store), uri, None).await;
        assert_eq!(answer.status.as_u16(), status, "{uri}: {}", answer.body);
    }
}

/// A medium value (over the page's cut, under the in-page limit): `?full=` shows it whole, parsed and
/// pretty-printed.
#[tokio::test]
async fn full_shows_a_medium_value_whole() {
    let mut run = WorkflowState::new("medium", "p");
    let items: Vec<String> = (0..6000).map(|i| format!("item number {i}")).collect();
    run.pipeline_context = json!({ "items": items });
    let db = new_db("medium.db", now(), &[run]).await;
    let (status, cut) = get(&db.store, "/runs/medium").await;
    assert_eq!(status, 200);
    assert!(
        cut.contains("data-testid=\"context-see-all\""),
        "the cut value offers Show all"
    );
    assert!(!cut.contains("item number 5999"));
    let (status, whole) = get(&db.store, "/runs/medium?full=context").await;
    assert_eq!(status, 200);
    let doc = Html::parse_document(&whole);
    let shown = text_of(&doc, "#context pre");
    let parsed: serde_json::Value = serde_json::from_str(&shown).expect("the whole value, as JSON");
    assert_eq!(parsed["items"].as_array().unwrap().len(), 6000);
}
