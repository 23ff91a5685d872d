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
