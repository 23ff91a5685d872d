//! The CLI's rough edges of issue 15, run for real on temporary databases (a SQLite file, or under
//! `FLOWSTATE_TEST_BACKEND=postgres` a PostgreSQL database of the test's own): `--json` errors, `serve` and a
//! missing file, 1-based steps and the dashboard's durations, tables that fit the terminal, `flowstate failures`,
//! and the audit record of `cleanup --yes` with the run ids it deleted.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::db_location;
use unicode_width::UnicodeWidthStr;

const BIN: &str = env!("CARGO_BIN_EXE_flowstate");

fn flowstate() -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env_remove("FLOWSTATE_DB")
        .env_remove("FLOWSTATE_LOG")
        .env_remove("COLUMNS");
    cmd
}

fn run(db: &Path, args: &[&str]) -> Output {
    flowstate()
        .arg("--db")
        .arg(db)
        .args(args)
        .output()
        .expect("the flowstate binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[track_caller]
fn json(db: &Path, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.push("--json");
    let out = run(db, &all);
    assert!(
        out.status.success(),
        "flowstate {args:?}: {:?}\n{}",
        out.status,
        text(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {}", text(&out.stdout)))
}

#[track_caller]
fn human(db: &Path, args: &[&str], columns: Option<usize>) -> String {
    let mut cmd = flowstate();
    cmd.arg("--db").arg(db).args(args);
    if let Some(c) = columns {
        cmd.env("COLUMNS", c.to_string());
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "flowstate {args:?}: {}", text(&out.stderr));
    text(&out.stdout)
}

fn demo(dir: &Path, runs: usize, seed: u64) -> PathBuf {
    let db = db_location(dir, "demo.db");
    json(
        &db,
        &["demo", "--runs", &runs.to_string(), "--seed", &seed.to_string()],
    );
    db
}

#[test]
fn json_errors_are_one_object_on_stderr_for_every_command() {
    let dir = tempfile::tempdir().unwrap();
    let db = demo(dir.path(), 50, 3);
    let typo = dir.path().join("typo.db");
    let cases: Vec<(&Path, Vec<&str>, i32, &str)> = vec![
        // The store's errors (a missing file, an unknown run): runtime, exit 1.
        (&typo, vec!["stats"], 1, "runtime"),
        (&typo, vec!["runs", "--status", "failed"], 1, "runtime"),
        (&typo, vec!["failures"], 1, "runtime"),
        (&db, vec!["show", "no-such-run"], 1, "runtime"),
        // clap's argument errors: usage, exit 2, as JSON too.
        (&db, vec!["runs", "--limit", "0"], 2, "usage"),
        (&db, vec!["runs", "--status", "done"], 2, "usage"),
        (&db, vec!["cleanup", "--days", "3"], 2, "usage"),
        (&db, vec!["failures", "--since", "yesterday-ish"], 2, "usage"),
        (&db, vec!["no-such-command"], 2, "usage"),
        // The command's own checks.
        (&db, vec!["runs", "--since", "1h", "--until", "2h"], 2, "usage"),
    ];
    for (at, args, code, kind) in cases {
        let mut all = args.clone();
        all.push("--json");
        let out = run(at, &all);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{all:?}: {err}");
        assert!(out.stdout.is_empty(), "{all:?}: stdout {}", text(&out.stdout));
        assert_eq!(err.lines().count(), 1, "{all:?}: one line: {err}");
        let doc: Value =
            serde_json::from_str(&err).unwrap_or_else(|e| panic!("{all:?}: not JSON ({e}): {err}"));
        assert_eq!(doc["error"]["kind"], kind, "{all:?}: {doc}");
        assert_eq!(doc["error"]["exit_code"], code, "{all:?}: {doc}");
        let message = doc["error"]["message"].as_str().unwrap_or_default();
        assert!(!message.is_empty(), "{all:?}: {doc}");
        assert!(!message.contains('\u{1b}'), "no terminal styling: {doc}");
        assert!(!message.starts_with("error:"), "{doc}");
    }
    // Without --json, the same errors stay one plain line; --help is not an error.
    let out = run(&typo, &["stats"]);
    assert!(text(&out.stderr).starts_with("error: "), "{}", text(&out.stderr));
    let out = run(&db, &["runs", "--help", "--json"]);
    assert!(out.status.success());
    assert!(text(&out.stdout).contains("Usage"), "{}", text(&out.stdout));
    assert!(!typo.exists(), "no command created the mistyped file");
}

#[test]
fn serve_refuses_a_missing_file_unless_asked_to_create_it() {
    let dir = tempfile::tempdir().unwrap();
    let typo = dir.path().join("typo.db");
    let out = flowstate()
        .arg("--db")
        .arg(&typo)
        .args(["serve", "--bind", "127.0.0.1:0"])
        .env_remove("FLOWSTATE_ADMIN_TOKEN")
        .output()
        .unwrap();
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.starts_with("error: cannot open"),
        "the reading commands' words: {err}"
    );
    assert!(
        err.contains("does not exist") && err.contains("--create"),
        "{err}"
    );
    assert!(!typo.exists(), "serve created no file");
    // The same with --json: one JSON object.
    let out = flowstate()
        .arg("--db")
        .arg(&typo)
        .args(["serve", "--bind", "127.0.0.1:0", "--json"])
        .output()
        .unwrap();
    let doc: Value = serde_json::from_slice(&out.stderr).expect("a JSON error");
    assert_eq!(doc["error"]["kind"], "runtime", "{doc}");
    // --read-only with --create makes no sense (nothing may be written): a usage error.
    let out = flowstate()
        .arg("--db")
        .arg(&typo)
        .args(["serve", "--bind", "127.0.0.1:0", "--create", "--read-only"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));

    // With --create, the file is made and served.
    let mut child = flowstate()
        .arg("--db")
        .arg(&typo)
        .args(["serve", "--bind", "127.0.0.1:0", "--create"])
        .env_remove("FLOWSTATE_ADMIN_TOKEN")
        .env("FLOWSTATE_SITE_ROOT", dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let began = Instant::now();
    while !typo.exists() && began.elapsed() < Duration::from_secs(60) {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("serve --create exited: {status}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let exists = typo.exists();
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(exists, "serve --create created the database");
    // The demo stays one command: `serve --demo` needs neither --db nor --create (checked by its own tests).
}

#[test]
fn steps_are_one_based_and_durations_read_as_on_the_dashboard() {
    let dir = tempfile::tempdir().unwrap();
    let db = demo(dir.path(), 300, 4);
    let page = json(&db, &["runs", "--limit", "1000"]);
    let runs = page["runs"].as_array().unwrap();
    let table = human(&db, &["runs", "--limit", "1000"], Some(400));
    let mut checked = 0;
    for r in runs {
        let (i, n) = (
            r["current_step_index"].as_i64().unwrap(),
            r["total_steps"].as_i64().unwrap(),
        );
        let id = r["run_id"].as_str().unwrap();
        let line = table
            .lines()
            .find(|l| l.starts_with(&format!("{id} ")))
            .unwrap_or_else(|| panic!("{id} is listed:\n{table}"));
        let shown = flowstate_app::model::step_number(i, n);
        let cell = if n > 0 {
            format!(" {shown}/{n} ")
        } else {
            format!(" {shown} ")
        };
        assert!(
            line.contains(&cell),
            "{id} (index {i} of {n}) shows {cell:?}: {line}"
        );
        if i == 0 && n > 0 {
            assert!(!line.contains(&format!(" 0/{n} ")), "{line}");
            checked += 1;
        }
    }
    assert!(checked > 0, "the demo has runs at their first step");

    let stats = json(&db, &["stats"]);
    let avg = stats["average_execution_time_ms"].as_f64().unwrap();
    let text = human(&db, &["stats"], None);
    let want = flowstate_app::format::duration_ms(avg);
    assert!(
        text.lines()
            .any(|l| l.starts_with("average execution time") && l.ends_with(&want)),
        "stats says {want} as the dashboard does:\n{text}"
    );
    assert!(avg > 1000.0 && !want.ends_with(" ms"), "{want}");
    assert!(!text.contains(&format!("{avg:.1} ms")), "{text}");
}

#[test]
fn tables_fit_the_terminal_width_and_keep_a_bound_without_one() {
    let dir = tempfile::tempdir().unwrap();
    let db = demo(dir.path(), 300, 5);
    // The other columns of the runs table take about 136 columns here (a UUID run id, two times); the error
    // column gets what they leave, at least 12.
    for columns in [160, 180, 220] {
        let out = human(
            &db,
            &["runs", "--status", "failed", "--limit", "100"],
            Some(columns),
        );
        let table: Vec<&str> = out.lines().take_while(|l| !l.is_empty()).collect();
        assert!(table.len() > 1, "{out}");
        for line in &table {
            assert!(
                line.width() <= columns,
                "{columns} columns: {} wide: {line}",
                line.width()
            );
        }
        let out = human(&db, &["failures", "--since", "60d"], Some(columns));
        for line in out.lines() {
            assert!(line.width() <= columns, "failures at {columns}: {line}");
        }
    }
    // Narrower than the other columns: the error column keeps 12 columns (the terminal wraps, as it would).
    let narrow = human(&db, &["runs", "--status", "failed", "--limit", "100"], Some(60));
    let header = narrow.lines().next().unwrap();
    let error_at = header.find("ERROR").unwrap();
    for line in narrow.lines().skip(1).take_while(|l| !l.is_empty()) {
        assert!(line.width() <= error_at + 12, "{line}");
    }
    // A wide terminal shows more of the error than the fixed bound of a pipe (60 columns).
    let widest = |out: &str| {
        out.lines()
            .skip(1)
            .take_while(|l| !l.is_empty())
            .map(|l| l.width())
            .max()
            .unwrap_or(0)
    };
    let piped = human(&db, &["runs", "--status", "failed", "--limit", "100"], None);
    let wide = human(&db, &["runs", "--status", "failed", "--limit", "100"], Some(400));
    assert!(
        widest(&wide) > widest(&piped),
        "piped {}, wide {}",
        widest(&piped),
        widest(&wide)
    );
}

#[test]
fn failures_groups_the_window_as_the_failures_page_does() {
    let dir = tempfile::tempdir().unwrap();
    let db = demo(dir.path(), 600, 6);
    let since = "2000-01-01T00:00:00Z";
    let all = json(&db, &["failures", "--since", since]);
    let groups = all["groups"].as_array().unwrap();
    assert!(groups.len() > 1, "{all}");
    let failed = json(&db, &["stats"])["status_counts"]["failed"].as_i64().unwrap();
    assert_eq!(all["total_failed"], failed, "every failure since 2000");
    assert_eq!(
        groups.iter().map(|g| g["count"].as_i64().unwrap()).sum::<i64>(),
        failed,
        "the groups cover every failure"
    );
    assert!(
        groups
            .windows(2)
            .all(|w| w[0]["count"].as_i64() >= w[1]["count"].as_i64()),
        "largest first"
    );
    // The store's own groups, as the Failures page reads them.
    let store_groups: Vec<(String, i64)> = {
        let db = db.clone();
        std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(async {
                    let store = flowstate_store::Store::open_with(
                        &db,
                        flowstate_store::StoreOptions {
                            read_only: true,
                            ..Default::default()
                        },
                    )
                    .await
                    .unwrap();
                    let at = chrono::DateTime::parse_from_rfc3339(since).unwrap().to_utc();
                    let report = store.failure_groups(at).await.unwrap();
                    store.close().await;
                    report
                        .groups
                        .into_iter()
                        .map(|g| (g.signature, g.count))
                        .collect()
                })
        })
        .join()
        .unwrap()
    };
    let cli_groups: Vec<(String, i64)> = groups
        .iter()
        .map(|g| {
            (
                g["signature"].as_str().unwrap().to_string(),
                g["count"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(cli_groups, store_groups);
    for g in groups {
        assert!(!g["samples"].as_array().unwrap().is_empty(), "{g}");
        assert!(
            g["first_seen"].as_str().unwrap() <= g["last_seen"].as_str().unwrap(),
            "{g}"
        );
        for s in g["samples"].as_array().unwrap() {
            assert_eq!(s["status"], "failed", "{s}");
        }
    }

    // One pipeline: its part of each group.
    let pipeline = groups[0]["pipelines"]
        .as_object()
        .unwrap()
        .keys()
        .next()
        .unwrap()
        .clone();
    let one = json(&db, &["failures", "--since", since, "--pipeline", &pipeline]);
    let mut expected = 0;
    for g in groups {
        expected += g["pipelines"][&pipeline].as_i64().unwrap_or(0);
    }
    assert_eq!(one["total_failed"], expected, "{one}");
    for g in one["groups"].as_array().unwrap() {
        let names: Vec<&String> = g["pipelines"].as_object().unwrap().keys().collect();
        assert_eq!(names, vec![&pipeline], "{g}");
        for s in g["samples"].as_array().unwrap() {
            assert_eq!(s["pipeline_id"].as_str(), Some(pipeline.as_str()), "{s}");
        }
    }

    // For people: the header, the groups and their sample run ids; --limit bounds the groups.
    let out = human(&db, &["failures", "--since", since, "--limit", "2"], Some(200));
    assert!(
        out.starts_with("failed runs last updated since 2000-01-01 00:00:00 UTC: "),
        "{out}"
    );
    let sample = groups[0]["samples"][0]["run_id"].as_str().unwrap();
    assert!(out.contains(sample), "{out}");
    assert!(out.contains("smaller groups not shown"), "{out}");
    // A window with no failures, and a window in the future.
    let out = human(&db, &["failures", "--since", "1s"], None);
    assert!(
        out.contains("no failures in this window") || out.contains("SIGNATURE"),
        "{out}"
    );
    let bad = run(&db, &["failures", "--since", "2999-01-01"]);
    assert_eq!(bad.status.code(), Some(2), "{}", text(&bad.stderr));
}

#[test]
fn cleanup_yes_is_recorded_with_the_run_ids_it_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let db = demo(dir.path(), 400, 7);
    let before = json(&db, &["runs", "--limit", "1000"]);
    let preview = json(&db, &["cleanup", "--days", "30", "--dry-run"]);
    let matched = preview["matched"].as_i64().unwrap();
    assert!(matched > 10, "{preview}");
    assert!(
        json(&db, &["audit"])["entries"].as_array().unwrap().is_empty(),
        "a dry run records nothing"
    );

    let done = json(&db, &["cleanup", "--days", "30", "--yes"]);
    let deleted = done["deleted"].as_i64().unwrap();
    assert_eq!(deleted, matched, "{done}");
    let audit_id = done["audit_id"].as_i64().expect("the audit entry's id");

    let log = json(&db, &["audit"]);
    let entry = &log["entries"][0];
    assert_eq!(entry["id"], audit_id, "{log}");
    assert_eq!(entry["actor"], "cli");
    assert_eq!(entry["action"], "cleanup");
    assert_eq!(entry["matched"], matched);
    assert_eq!(entry["affected"], deleted);
    assert_eq!(entry["detail"]["older_than_days"], 30, "{entry}");

    // The run ids, a page at a time: exactly the runs that are gone.
    let mut recorded = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let mut args = vec![
            "audit".to_string(),
            audit_id.to_string(),
            "--limit".into(),
            "7".into(),
        ];
        if let Some(a) = &after {
            args.push("--after".into());
            args.push(a.clone());
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let page = json(&db, &args);
        let ids: Vec<String> = page["run_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect();
        assert!(ids.len() <= 7);
        recorded.extend(ids);
        match page["next_after"].as_str() {
            Some(next) => after = Some(next.to_string()),
            None => break,
        }
    }
    let kept: std::collections::BTreeSet<String> = json(&db, &["runs", "--limit", "1000"])["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["run_id"].as_str().unwrap().to_string())
        .collect();
    let gone: std::collections::BTreeSet<String> = before["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["run_id"].as_str().unwrap().to_string())
        .filter(|id| !kept.contains(id))
        .collect();
    assert_eq!(recorded.len() as i64, deleted);
    assert_eq!(
        recorded
            .iter()
            .cloned()
            .collect::<std::collections::BTreeSet<_>>(),
        gone,
        "the recorded ids are the runs deleted"
    );

    // For people: the cleanup names its entry; `audit` lists it; `audit ID` prints the ids and the next page.
    let people = human(&db, &["audit"], Some(200));
    assert!(people.contains("cleanup") && people.contains("cli"), "{people}");
    let one = human(&db, &["audit", &audit_id.to_string(), "--limit", "5"], None);
    assert!(
        one.contains(&format!("deleted   {deleted}")) || one.contains(&deleted.to_string()),
        "{one}"
    );
    assert!(one.contains(&recorded[0]), "{one}");
    assert!(
        one.contains(&format!("next page: flowstate audit {audit_id} --after ")),
        "{one}"
    );
    let again = human(&db, &["cleanup", "--days", "30", "--yes"], None);
    assert!(again.contains("nothing to delete"), "{again}");
    assert_eq!(
        json(&db, &["audit"])["entries"].as_array().unwrap().len(),
        1,
        "nothing matched: no entry"
    );
    let missing = run(&db, &["audit", "999999", "--json"]);
    assert_eq!(missing.status.code(), Some(1));
}

#[test]
fn cleanup_says_what_it_would_free_and_what_it_freed_and_reclaim_gives_space_back() {
    let dir = tempfile::tempdir().unwrap();
    let db = demo(dir.path(), 600, 8);
    let preview = json(&db, &["cleanup", "--days", "20", "--dry-run"]);
    let estimated = preview["estimated_bytes"].as_i64().expect("an estimate");
    assert!(estimated > 0, "{preview}");
    assert_eq!(
        preview["estimate"]["measured_runs"], preview["matched"],
        "{preview}"
    );
    let people = human(&db, &["cleanup", "--days", "20", "--dry-run"], None);
    assert!(people.contains("would free about"), "{people}");
    assert!(people.contains("the stored size of their values"), "{people}");

    let done = json(&db, &["cleanup", "--days", "20", "--yes"]);
    let space = &done["space"];
    let freed = space["bytes_freed"].as_i64().unwrap();
    assert!(freed > 0, "{done}");
    if support::on_postgres() {
        assert_eq!(
            freed, estimated,
            "the same measure, taken as the rows went: {done}"
        );
        assert_eq!(space["bytes_returned"], 0);
    } else {
        // The demo's file was made by flowstate: incremental, so the pages went back to the file system.
        assert_eq!(space["incremental"], true, "{done}");
        assert!(space["bytes_returned"].as_i64().unwrap() > 0, "{done}");
        assert!(
            space["bytes_after"].as_i64() < space["bytes_before"].as_i64(),
            "{done}"
        );
    }
    // The audit entry says it too.
    let entry = &json(&db, &["audit"])["entries"][0];
    assert_eq!(entry["detail"]["space"]["bytes_freed"], freed, "{entry}");
    let out = human(&db, &["cleanup", "--days", "10", "--yes"], None);
    assert!(out.contains("freed "), "{out}");

    let r = json(&db, &["reclaim"]);
    if support::on_postgres() {
        assert_eq!(r["method"], "vacuum", "{r}");
        assert_eq!(r["free_bytes_after"], Value::Null);
    } else {
        assert_eq!(r["method"], "incremental_vacuum", "{r}");
        assert_eq!(r["free_bytes_after"], 0, "{r}");
        let r = json(&db, &["reclaim", "--convert"]);
        assert_eq!(r["method"], "vacuum_full_rewrite", "{r}");
        assert_eq!(r["incremental"], true);
    }
}

#[test]
fn reclaim_explains_a_file_that_is_not_incremental_and_converts_it_once() {
    if support::on_postgres() {
        println!("SKIPPED: auto_vacuum is a SQLite file's mode");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("flujo.db");
    // A file as flujo creates it (auto_vacuum NONE), with flujo 0.4.35's table, then runs written by flowstate.
    std::thread::spawn({
        let db = db.clone();
        move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(async {
                    use sqlx::{ConnectOptions, Connection};
                    let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
                        .filename(&db)
                        .create_if_missing(true)
                        .connect()
                        .await
                        .unwrap();
                    sqlx::raw_sql("CREATE TABLE placeholder (x)")
                        .execute(&mut conn)
                        .await
                        .unwrap();
                    conn.close().await.unwrap();
                })
        }
    })
    .join()
    .unwrap();
    json(&db, &["migrate"]);
    json(&db, &["demo", "--runs", "400", "--seed", "9", "--force"]);
    let done = json(&db, &["cleanup", "--days", "20", "--yes"]);
    assert_eq!(done["space"]["incremental"], false, "{done}");
    assert_eq!(done["space"]["bytes_returned"], 0, "{done}");
    assert!(done["space"]["free_bytes_after"].as_i64().unwrap() > 0, "{done}");
    let people = human(&db, &["cleanup", "--days", "5", "--yes"], None);
    assert!(
        people.contains("free pages for new runs") && people.contains("reclaim --convert"),
        "{people}"
    );
    let r = human(&db, &["reclaim"], None);
    assert!(
        r.contains("auto_vacuum is NONE") && r.contains("--convert"),
        "{r}"
    );
    let converted = json(&db, &["reclaim", "--convert"]);
    assert_eq!(converted["incremental"], true, "{converted}");
    assert!(converted["bytes_returned"].as_i64().unwrap() > 0, "{converted}");
    assert_eq!(converted["free_bytes_after"], 0);
}

/// A failed run with this step history, as the run page tests make them.
fn run_with_steps(id: &str, history: Value) -> flowstate_store::WorkflowState {
    let mut run = flowstate_store::WorkflowState::new(id, "sql-agent");
    run.status = flowstate_store::Status::Failed;
    run.created_at = Some(support::now() - chrono::Duration::hours(2));
    run.updated_at = Some(support::now() - chrono::Duration::hours(1));
    run.step_history = history;
    run.error_message = Some("Step 'execute' failed: OperationalError: no such column: o.totl".into());
    run
}

/// The rows of the run page's steps table: (number, name, outcome).
fn page_step_rows(html: &str) -> Vec<(String, String, String)> {
    use scraper::{Html, Selector};
    let html = html.find("</html>").map_or(html, |end| &html[..end]);
    let doc = Html::parse_document(html);
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
            )
        })
        .collect()
}

/// Lines between `steps:` and the next blank line after the table: the steps section of `show`.
fn steps_section(out: &str) -> Vec<&str> {
    let mut lines = out.lines().skip_while(|l| !l.starts_with("steps: "));
    let mut section = Vec::new();
    let mut blanks = 0;
    for line in lines.by_ref() {
        if line.is_empty() {
            blanks += 1;
            if blanks == 2 {
                break;
            }
        }
        section.push(line);
    }
    section
}

#[tokio::test]
async fn show_lists_the_steps_as_the_run_page_does() {
    let history = serde_json::json!([
        {"name": "plan", "output": "plan ok", "success": true, "attempts": 1, "latency_s": 1.25,
         "token_counts": 120, "cost_usd": 0.001, "feedback": null},
        {"name": "generate_sql", "output": {"sql": "SELECT 1"}, "success": true, "attempts": 2, "latency_s": 4.5},
        {"name": "execute", "output": null, "success": false, "attempts": 3, "latency_s": 0.25,
         "feedback": "Step 'execute' failed: OperationalError: no such column: o.totl\nTraceback (most recent call last):"}
    ]);
    let mut fine = run_with_steps("r-fine", serde_json::json!([{"name": "only", "success": true}]));
    fine.status = flowstate_store::Status::Completed;
    fine.error_message = None;
    let db = support::new_db(
        "show-steps.db",
        support::now(),
        &[
            run_with_steps("r-steps", history),
            fine,
            run_with_steps("r-none", serde_json::json!([])),
        ],
    )
    .await;

    // --json: a `steps` array, the same steps in the same order as the run page's table.
    let doc = json(&db.path, &["show", "r-steps"]);
    let steps = doc["steps"].as_array().expect("a steps array");
    assert_eq!(doc["steps_complete"], true, "{doc}");
    assert_eq!(doc["steps_note"], Value::Null, "{doc}");
    let (status, html) = support::get(&db.store, "/runs/r-steps").await;
    assert_eq!(status, axum::http::StatusCode::OK);
    let page: Vec<(String, String, String)> = page_step_rows(&html);
    let cli: Vec<(String, String, String)> = steps
        .iter()
        .map(|s| {
            (
                s["number"].to_string(),
                s["name"].as_str().unwrap().to_string(),
                s["outcome"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(cli, page, "the CLI lists what the run page lists");
    assert_eq!(
        steps[2],
        serde_json::json!({"number": 3, "name": "execute", "outcome": "failed", "duration_ms": 250.0,
            "attempts": 3, "output_bytes": null,
            "feedback": "Step 'execute' failed: OperationalError: no such column: o.totl"}),
    );
    assert_eq!(steps[0]["output_bytes"], 9, "\"plan ok\" is 9 bytes of JSON");
    assert_eq!(
        doc["step_history"].as_array().unwrap().len(),
        3,
        "the raw value stays"
    );

    // For people: the count, the failing step called out first, then the table with the failed row marked.
    let out = human(&db.path, &["show", "r-steps"], Some(120));
    let section = steps_section(&out);
    assert_eq!(section[0], "steps: 3 steps, in the order they ran", "{out}");
    assert_eq!(section[1], "Failed at step 3: execute after 3 attempts (250 ms)");
    assert_eq!(
        section[2],
        "  Step 'execute' failed: OperationalError: no such column: o.totl"
    );
    let table: Vec<&str> = section[4..].to_vec();
    assert_eq!(
        table,
        vec![
            "   #  STEP          OUTCOME    DURATION  ATTEMPTS  OUTPUT",
            "   1  plan          succeeded     1.2 s         1     9 B",
            "   2  generate_sql  succeeded     4.5 s         2    18 B",
            "!  3  execute       failed       250 ms         3    none",
        ],
        "{out}"
    );
    assert!(
        out.find("steps: ").unwrap() < out.find("step_history (").unwrap(),
        "the list comes before the raw history: {out}"
    );
    // No failed step: no call-out, no mark column; no steps: said so.
    let out = human(&db.path, &["show", "r-fine"], None);
    let section = steps_section(&out);
    assert!(!out.contains("Failed at step"), "{out}");
    assert_eq!(
        section[2], "#  STEP  OUTCOME    DURATION  ATTEMPTS  OUTPUT",
        "{out}"
    );
    let out = human(&db.path, &["show", "r-none"], None);
    assert!(out.contains("steps: 0 steps\n"), "{out}");
}

#[tokio::test]
async fn show_never_prints_a_hostile_step_history_raw() {
    let escape = "\u{1b}]0;pwned\u{7}\u{1b}[2J\u{9b}31m\u{202e}\r";
    let history = serde_json::json!([
        {"name": format!("evil{escape}name"), "success": false, "attempts": i64::MAX, "latency_s": 1e300,
         "output": "o".repeat(300_000), "feedback": format!("{escape}boom {escape}\nsecond line")},
        {"name": "n".repeat(100_000), "success": true, "latency_s": "slow", "attempts": "many"},
        {"name": "請求書🚀\u{7f}\u{85}", "status": "error", "duration_ms": -5},
        "not an object",
    ]);
    let db = support::new_db(
        "show-hostile.db",
        support::now(),
        &[run_with_steps("r-evil", history)],
    )
    .await;
    let unsafe_char = |c: char| {
        (c.is_control() && c != '\n') || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
    };
    for columns in [Some(100), Some(140), None] {
        let out = human(&db.path, &["show", "r-evil"], columns);
        assert!(
            !out.chars().any(unsafe_char),
            "{columns:?}: nothing a terminal would obey: {:?}",
            out.chars().filter(|c| unsafe_char(*c)).collect::<String>()
        );
        let section = steps_section(&out);
        assert!(section[0].starts_with("steps: 4 steps"), "{out}");
        assert!(section[1].starts_with("Failed at step 1: evil"), "{section:?}");
        assert!(section.iter().any(|l| l.contains("boom")), "{section:?}");
        assert!(
            !section.iter().any(|l| l.contains("second line")),
            "the feedback's first line only"
        );
        match columns {
            Some(c) => {
                for line in &section {
                    assert!(line.width() <= c, "{c} columns, {} wide: {line}", line.width());
                }
            }
            None => assert!(
                section.iter().all(|l| l.width() <= 200),
                "a fixed bound without a terminal: {section:?}"
            ),
        }
        assert!(
            out.len() < 40_000,
            "a 300 KB output and a 100 KB name are not printed whole"
        );
    }
    // --json: the same value (cut names), every such character escaped.
    let out = run(&db.path, &["show", "r-evil", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(!stdout.chars().any(unsafe_char), "escaped in the JSON too");
    let doc: Value = serde_json::from_str(&stdout).unwrap();
    let steps = doc["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 4);
    assert_eq!(
        steps[0]["name"],
        format!("evil{escape}name"),
        "the value itself is intact"
    );
    assert_eq!(steps[0]["attempts"], i64::MAX);
    assert_eq!(steps[0]["output_bytes"], 300_002);
    assert_eq!(
        steps[1]["name"].as_str().unwrap().chars().count(),
        200,
        "cut as on the page"
    );
    assert_eq!(steps[1]["duration_ms"], Value::Null);
    assert_eq!(steps[1]["attempts"], Value::Null);
    assert_eq!(steps[2]["outcome"], "failed");
    assert_eq!(steps[2]["duration_ms"], Value::Null, "a negative time is no time");
    assert_eq!(steps[3]["outcome"], "unknown");
}

/// The store's groups of a scope, as the Failures page reads them: (signature, count, first seen, last seen).
fn store_groups_in(
    db: &Path,
    since: &str,
    scope: flowstate_store::FailureScope,
) -> Vec<(String, i64, String, String)> {
    let db = db.to_path_buf();
    let since = chrono::DateTime::parse_from_rfc3339(since).unwrap().to_utc();
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async {
                let store = flowstate_store::Store::open_with(
                    &db,
                    flowstate_store::StoreOptions {
                        read_only: true,
                        ..Default::default()
                    },
                )
                .await
                .unwrap();
                let report = store.failure_groups_in(since, &scope).await.unwrap();
                store.close().await;
                let time = |t: Option<chrono::DateTime<chrono::Utc>>| {
                    t.map(|t| flowstate_model::rfc3339(&t)).unwrap_or_default()
                };
                report
                    .groups
                    .into_iter()
                    .map(|g| (g.signature, g.count, time(g.first_seen), time(g.last_seen)))
                    .collect()
            })
    })
    .join()
    .unwrap()
}

fn cli_groups(doc: &Value) -> Vec<(String, i64, String, String)> {
    doc["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["signature"].as_str().unwrap().to_string(),
                g["count"].as_i64().unwrap(),
                g["first_seen"].as_str().unwrap_or_default().to_string(),
                g["last_seen"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

#[test]
fn failures_of_a_pipeline_or_version_are_the_scopes_own_figures() {
    let dir = tempfile::tempdir().unwrap();
    let db = demo(dir.path(), 600, 6);
    let since = "2000-01-01T00:00:00Z";
    let all = json(&db, &["failures", "--since", since, "--limit", "1000"]);
    // The pipeline with the most failures, and its failed runs as the runs list reads them (every run is newer
    // than 2000, so the list's creation window and the failures' update window hold the same runs).
    let mut per_pipeline: std::collections::BTreeMap<String, i64> = Default::default();
    for g in all["groups"].as_array().unwrap() {
        for (p, n) in g["pipelines"].as_object().unwrap() {
            *per_pipeline.entry(p.clone()).or_default() += n.as_i64().unwrap();
        }
    }
    let pipeline = per_pipeline.iter().max_by_key(|(_, n)| **n).unwrap().0.clone();
    let listed = json(
        &db,
        &[
            "runs",
            "--status",
            "failed",
            "--pipeline",
            &pipeline,
            "--limit",
            "1000",
        ],
    );
    let failed_runs = listed["runs"].as_array().unwrap();
    assert!(failed_runs.len() > 3, "{pipeline}: {}", failed_runs.len());

    let one = json(
        &db,
        &[
            "failures",
            "--since",
            since,
            "--pipeline",
            &pipeline,
            "--limit",
            "1000",
        ],
    );
    assert_eq!(one["pipeline"], pipeline.as_str());
    assert_eq!(one["total_failed"], failed_runs.len(), "{one}");
    let groups = cli_groups(&one);
    assert_eq!(
        groups,
        store_groups_in(
            &db,
            since,
            flowstate_store::FailureScope {
                pipeline: Some(pipeline.clone()),
                version: None
            }
        ),
        "the store's groups of the pipeline, as the Failures page reads them"
    );
    // Every figure is the pipeline's: counts, and first/last seen among its own failed runs.
    let updated: Vec<&str> = failed_runs
        .iter()
        .map(|r| r["updated_at"].as_str().unwrap())
        .collect();
    assert_eq!(
        groups.iter().map(|g| g.2.as_str()).min(),
        updated.iter().copied().min(),
        "the earliest first seen is the pipeline's earliest failure"
    );
    assert_eq!(
        groups.iter().map(|g| g.3.as_str()).max(),
        updated.iter().copied().max()
    );
    for g in one["groups"].as_array().unwrap() {
        let seen = (
            g["first_seen"].as_str().unwrap(),
            g["last_seen"].as_str().unwrap(),
        );
        for s in g["samples"].as_array().unwrap() {
            assert_eq!(s["pipeline_id"], pipeline.as_str(), "{s}");
            let at = s["updated_at"].as_str().unwrap();
            assert!(seen.0 <= at && at <= seen.1, "{seen:?} {at}");
        }
        assert!(updated.contains(&seen.0) && updated.contains(&seen.1), "{seen:?}");
    }
    // The whole groups' first/last seen are not the pipeline's (what filtering the groups afterwards showed).
    let whole = cli_groups(&all);
    let differs = groups.iter().any(|(sig, _, first, last)| {
        whole
            .iter()
            .any(|(s, _, f, l)| s == sig && (f != first || l != last))
    });
    assert!(
        differs,
        "the demo has groups shared by pipelines: a test that tells the two apart"
    );

    // One version of that pipeline, and that version across pipelines.
    let version = failed_runs[0]["pipeline_version"].as_str().unwrap().to_string();
    let of_version = failed_runs
        .iter()
        .filter(|r| r["pipeline_version"] == version.as_str())
        .count();
    let both = json(
        &db,
        &[
            "failures",
            "--since",
            since,
            "--pipeline",
            &pipeline,
            "--version",
            &version,
        ],
    );
    assert_eq!(both["version"], version.as_str());
    assert_eq!(both["total_failed"], of_version, "{both}");
    assert_eq!(
        cli_groups(&both),
        store_groups_in(
            &db,
            since,
            flowstate_store::FailureScope {
                pipeline: Some(pipeline.clone()),
                version: Some(version.clone())
            }
        )
    );
    for g in both["groups"].as_array().unwrap() {
        for s in g["samples"].as_array().unwrap() {
            assert_eq!(s["pipeline_version"], version.as_str(), "{s}");
        }
    }
    let any_pipeline = json(&db, &["failures", "--since", since, "--version", &version]);
    let listed = json(
        &db,
        &[
            "runs",
            "--status",
            "failed",
            "--version",
            &version,
            "--limit",
            "1000",
        ],
    );
    assert_eq!(
        any_pipeline["total_failed"],
        listed["runs"].as_array().unwrap().len()
    );
    assert!(any_pipeline["total_failed"].as_i64() >= both["total_failed"].as_i64());
    // For people: the header names the scope; an unknown version has no failures; too long is a usage error.
    let out = human(
        &db,
        &[
            "failures",
            "--since",
            since,
            "--pipeline",
            &pipeline,
            "--version",
            &version,
        ],
        Some(200),
    );
    assert!(
        out.starts_with(&format!(
            "failed runs last updated since 2000-01-01 00:00:00 UTC, pipeline {pipeline}, version {version}: "
        )),
        "{out}"
    );
    let none = json(
        &db,
        &["failures", "--since", since, "--version", "no-such-version"],
    );
    assert_eq!(none["total_failed"], 0);
    let long = "v".repeat(flowstate_model::limits::MAX_LOOKUP_ID_BYTES + 1);
    let out = run(&db, &["failures", "--version", &long]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
}
