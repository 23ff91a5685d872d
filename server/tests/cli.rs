//! The `flowstate` binary, run for real on temporary databases: every test owns its directory, and its database
//! (a file there, or under `FLOWSTATE_TEST_BACKEND=postgres` a PostgreSQL database of its own: [`db_location`]).

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use chrono::{DateTime, Duration, Utc};
use serde_json::Value;
use support::{copy_fixture, db_bytes, db_location, pg_url};

const BIN: &str = env!("CARGO_BIN_EXE_flowstate");

/// The binary with a clean environment for the variables it reads.
fn flowstate() -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env_remove("FLOWSTATE_DB").env_remove("FLOWSTATE_LOG");
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

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs a command that must succeed and print JSON; returns the JSON.
#[track_caller]
fn json(db: &Path, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.push("--json");
    let out = run(db, &all);
    assert!(
        out.status.success(),
        "flowstate {args:?} should succeed, got {:?}\nstderr: {}",
        out.status,
        stderr(&out)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("flowstate {args:?} should print JSON ({e}): {}", stdout(&out)))
}

/// Runs a command that must fail with `code`; returns its stderr.
#[track_caller]
fn fails(db: &Path, args: &[&str], code: i32) -> String {
    let out = run(db, args);
    assert_eq!(
        out.status.code(),
        Some(code),
        "flowstate {args:?} should exit {code}; stdout: {}\nstderr: {}",
        stdout(&out),
        stderr(&out)
    );
    let err = stderr(&out);
    assert!(
        err.contains("error"),
        "flowstate {args:?} should explain the error on stderr: {err}"
    );
    err
}

/// A fresh demo database of `runs` runs in `dir` (or on PostgreSQL).
#[track_caller]
fn demo(dir: &Path, runs: usize, seed: u64) -> PathBuf {
    let db = db_location(dir, "demo.db");
    let written = json(
        &db,
        &["demo", "--runs", &runs.to_string(), "--seed", &seed.to_string()],
    );
    assert_eq!(
        written["written"], runs,
        "demo reports the runs written: {written}"
    );
    db
}

fn stats(db: &Path) -> Value {
    json(db, &["stats"])
}

fn runs_of(page: &Value) -> &Vec<Value> {
    page["runs"].as_array().expect("a runs array")
}

fn ids(page: &Value) -> Vec<String> {
    runs_of(page)
        .iter()
        .map(|r| r["run_id"].as_str().expect("run_id is a string").to_string())
        .collect()
}

#[track_caller]
fn time(value: &Value) -> DateTime<Utc> {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("a timestamp string, got {value}"));
    assert!(text.ends_with('Z'), "timestamps are RFC 3339 in UTC: {text}");
    DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|e| panic!("{text} is not RFC 3339: {e}"))
        .with_timezone(&Utc)
}

/// Every run of a database, newest first (at most 1000).
fn all_runs(db: &Path) -> Value {
    json(db, &["runs", "--limit", "1000"])
}

#[test]
fn demo_then_stats_has_exactly_the_four_keys() {
    let dir = tempfile::tempdir().unwrap();
    let db = demo(dir.path(), 400, 1);
    let wal = std::fs::metadata(dir.path().join("demo.db-wal")).map_or(0, |m| m.len());
    assert_eq!(
        wal, 0,
        "the demo's runs are in the database file, not left in its WAL"
    );
    let s = stats(&db);
    let keys: BTreeSet<&str> = s.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        BTreeSet::from([
            "total_workflows",
            "recent_workflows_24h",
            "status_counts",
            "average_execution_time_ms"
        ]),
        "stats --json has exactly the seed's four keys"
    );
    assert_eq!(s["total_workflows"], 400, "total equals the runs written");
    let counts = s["status_counts"].as_object().unwrap();
    assert_eq!(counts.values().map(|v| v.as_i64().unwrap()).sum::<i64>(), 400);
    for status in ["running", "paused", "completed", "failed", "cancelled"] {
        assert!(
            counts.get(status).is_some_and(|n| n.as_i64().unwrap() > 0),
            "no {status} runs: {s}"
        );
    }
    assert!(s["recent_workflows_24h"].as_i64().unwrap() > 0);
    assert!(s["average_execution_time_ms"].as_f64().unwrap() > 0.0);

    let human = run(&db, &["stats"]);
    assert!(human.status.success());
    let text = stdout(&human);
    assert!(
        text.contains("total runs") && text.contains("400") && text.contains("completed"),
        "{text}"
    );
}

#[test]
fn runs_filter_by_status_and_every_run_has_the_listed_fields() {
    let dir = tempfile::tempdir().unwrap();
    let db = demo(dir.path(), 300, 2);
    let failed = json(&db, &["runs", "--status", "failed", "--limit", "1000"]);
    let expected = stats(&db)["status_counts"]["failed"].as_u64().unwrap() as usize;
    assert_eq!(runs_of(&failed).len(), expected, "every failed run is listed");
    assert!(failed["next_cursor"].is_null());
    for r in runs_of(&failed) {
        assert_eq!(
            r["status"], "failed",
            "--status failed lists only failed runs: {r}"
        );
        let keys: BTreeSet<&str> = r.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            BTreeSet::from([
                "run_id",
                "pipeline_id",
                "pipeline_name",
                "pipeline_version",
                "status",
                "current_step_index",
                "total_steps",
                "created_at",
                "updated_at",
                "error_message",
                "execution_time_ms",
                "memory_usage_mb"
            ])
        );
        assert!(time(&r["updated_at"]) >= time(&r["created_at"]));
        assert!(r["error_message"].is_string());
    }

    let live = json(
        &db,
        &[
            "runs", "--status", "running", "--status", "PAUSED", "--limit", "1000",
        ],
    );
    assert!(!runs_of(&live).is_empty());
    assert!(runs_of(&live)
        .iter()
        .all(|r| r["status"] == "running" || r["status"] == "paused"));
    let commas = json(&db, &["runs", "--status", "running,paused", "--limit", "1000"]);
    assert_eq!(ids(&commas), ids(&live), "--status a,b is --status a --status b");

    let one = &runs_of(&failed)[0];
    let pipeline = one["pipeline_id"].as_str().unwrap();
    let by_pipeline = json(
        &db,
        &[
            "runs",
            "--pipeline",
            pipeline,
            "--status",
            "failed",
            "--limit",
            "1000",
        ],
    );
    assert!(runs_of(&by_pipeline)
        .iter()
        .all(|r| r["pipeline_id"] == pipeline && r["status"] == "failed"));

    let id = one["run_id"].as_str().unwrap();
    let by_prefix = json(&db, &["runs", "--prefix", &id[..12]]);
    assert!(ids(&by_prefix).contains(&id.to_string()));
    assert!(ids(&by_prefix).iter().all(|i| i.starts_with(&id[..12])));

    let rate_limited = json(&db, &["runs", "--search", "ratelimiterror", "--limit", "1000"]);
    assert!(
        !runs_of(&rate_limited).is_empty(),
        "the demo has rate-limit failures"
    );
    assert!(runs_of(&rate_limited)
        .iter()
        .all(|r| r["error_message"].as_str().unwrap().contains("RateLimitError")));

    let human = run(&db, &["runs", "--status", "failed"]);
    assert!(human.status.success());
    let text = stdout(&human);
    assert!(text.starts_with("RUN ID"), "a table with headers: {text}");
    assert!(text.contains(id), "{text}");
}

#[test]
fn pages_by_limit_and_cursor_have_no_gaps_or_overlaps() {
    let dir = tempfile::tempdir().unwrap();
    let db = demo(dir.path(), 250, 3);
    let everything = ids(&all_runs(&db));
    assert_eq!(everything.len(), 250);

    let mut paged = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..100 {
        let mut args = vec!["runs", "--limit", "7"];
        if let Some(c) = &cursor {
            args.extend(["--cursor", c.as_str()]);
        }
        let page = json(&db, &args);
        assert!(runs_of(&page).len() <= 7);
        paged.extend(ids(&page));
        cursor = page["next_cursor"].as_str().map(str::to_string);
        if cursor.is_none() {
            break;
        }
    }
    assert_eq!(
        paged, everything,
        "pages of 7 give the same runs, in the same order, as one big page"
    );

    let skipped = json(&db, &["runs", "--limit", "5", "--offset", "10"]);
    assert_eq!(ids(&skipped), everything[10..15].to_vec(), "--offset skips runs");

    fails(&db, &["runs", "--cursor", "not-a-cursor"], 2);
    fails(&db, &["runs", "--limit", "0"], 2);
    fails(&db, &["runs", "--limit", "1001"], 2);
}

#[test]
fn since_and_until_filter_on_created_at() {
    let dir = tempfile::tempdir().unwrap();
    let db = demo(dir.path(), 400, 4);
    let all = all_runs(&db);
    let created: Vec<DateTime<Utc>> = runs_of(&all).iter().map(|r| time(&r["created_at"])).collect();

    // Relative: "24h" means the command's now minus 24 hours.
    let before = Utc::now();
    let recent = json(&db, &["runs", "--since", "24h", "--limit", "1000"]);
    let after = Utc::now();
    let n = runs_of(&recent).len();
    let at_least = created
        .iter()
        .filter(|c| **c >= after - Duration::hours(24))
        .count();
    let at_most = created
        .iter()
        .filter(|c| **c >= before - Duration::hours(24))
        .count();
    assert!(n > 0, "the demo has runs in the last 24 h");
    assert!(
        (at_least..=at_most).contains(&n),
        "{n} runs since 24h, expected {at_least}..={at_most}"
    );
    for r in runs_of(&recent) {
        assert!(time(&r["created_at"]) >= before - Duration::hours(24), "{r}");
    }
    let week = json(&db, &["runs", "--since", "7d", "--limit", "1000"]);
    assert!(runs_of(&week).len() >= n);

    // Absolute: the tenth-newest creation time, in two spellings.
    let tenth = created[9];
    let rfc = tenth.to_rfc3339();
    let since = json(&db, &["runs", "--since", &rfc, "--limit", "1000"]);
    let expected = created.iter().filter(|c| **c >= tenth).count();
    assert_eq!(runs_of(&since).len(), expected, "--since {rfc}");
    let naive = tenth.format("%Y-%m-%d %H:%M:%S%.6f").to_string();
    assert_eq!(
        ids(&json(&db, &["runs", "--since", &naive, "--limit", "1000"])),
        ids(&since)
    );
    let until = json(&db, &["runs", "--until", &rfc, "--limit", "1000"]);
    assert_eq!(
        runs_of(&until).len(),
        400 - expected,
        "--until is exclusive and complements --since"
    );

    fails(&db, &["runs", "--since", "yesterday"], 2);
    fails(&db, &["runs", "--since", "1h", "--until", "2h"], 2);
}

#[test]
fn failed_lists_recent_failures_in_the_runs_shape() {
    let dir = tempfile::tempdir().unwrap();
    let db = demo(dir.path(), 600, 5);
    let before = Utc::now();
    let page = json(&db, &["failed", "--hours", "72"]);
    let keys: BTreeSet<&str> = page.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, BTreeSet::from(["runs", "next_cursor"]));
    assert!(page["next_cursor"].is_null());
    assert!(
        !runs_of(&page).is_empty(),
        "the demo has failures in the last 72 h"
    );
    let mut last = None;
    for r in runs_of(&page) {
        assert_eq!(r["status"], "failed");
        let updated = time(&r["updated_at"]);
        assert!(
            updated >= before - Duration::hours(72) - Duration::seconds(5),
            "{r}"
        );
        if let Some(prev) = last {
            assert!(updated <= prev, "newest update first");
        }
        last = Some(updated);
    }
    let limited = json(&db, &["failed", "--hours", "1440", "--limit", "3"]);
    assert_eq!(runs_of(&limited).len(), 3);
    let defaults = json(&db, &["failed"]);
    assert!(runs_of(&defaults).len() <= 50);
    fails(&db, &["failed", "--hours", "0"], 2);
}

#[test]
fn show_prints_every_column_with_json_values() {
    let dir = tempfile::tempdir().unwrap();
    let db = demo(dir.path(), 200, 6);
    let failed = json(&db, &["runs", "--status", "failed", "--limit", "1"]);
    let id = ids(&failed)[0].clone();
    let shown = json(&db, &["show", &id]);
    let keys: BTreeSet<&str> = shown.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        BTreeSet::from([
            "run_id",
            "pipeline_id",
            "pipeline_name",
            "pipeline_version",
            "current_step_index",
            "pipeline_context",
            "last_step_output",
            "step_history",
            "status",
            "created_at",
            "updated_at",
            "total_steps",
            "error_message",
            "execution_time_ms",
            "memory_usage_mb",
            "metadata",
            "is_background_task",
            "parent_run_id",
            "task_id",
            "background_error",
            "steps",
            "steps_complete",
            "steps_note"
        ]),
        "every column is a key, and the steps as the run page lists them"
    );
    assert_eq!(shown["run_id"], id.as_str());
    assert!(
        shown["pipeline_context"].is_object(),
        "the context is JSON, not a string"
    );
    assert!(
        shown["step_history"].is_array(),
        "the history is JSON, not a string"
    );
    time(&shown["created_at"]);
    time(&shown["updated_at"]);

    let human = run_ok(&db, &["show", &id]);
    let error = shown["error_message"].as_str().unwrap();
    assert!(
        human.starts_with("error_message"),
        "the error comes first: {human}"
    );
    assert!(human.contains(error.lines().next().unwrap()));
    assert!(human.contains("pipeline_context") && human.contains("step_history"));

    let err = fails(&db, &["show", "run_does_not_exist"], 1);
    assert!(
        err.contains("run_does_not_exist"),
        "the message names the id: {err}"
    );
    let out = run(&db, &["show", "run_does_not_exist", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty(), "nothing on stdout for an unknown run");
}

#[track_caller]
fn run_ok(db: &Path, args: &[&str]) -> String {
    let out = run(db, args);
    assert!(
        out.status.success(),
        "flowstate {args:?} failed: {}",
        stderr(&out)
    );
    stdout(&out)
}

#[test]
fn show_cuts_large_json_for_people_but_not_for_scripts() {
    let dir = tempfile::tempdir().unwrap();
    let seed = 7;
    let db = demo(dir.path(), 300, seed);
    // Run ids depend only on the seed and position, so the library tells which demo run has a large context.
    let large = flowstate_store::demo::generate(300, seed, Utc::now())
        .into_iter()
        .find(|r| serde_json::to_string(&r.pipeline_context).unwrap().len() > 50_000)
        .expect("a 300-run demo has a large context");
    let human = run_ok(&db, &["show", &large.run_id]);
    assert!(
        human.len() < 20_000,
        "the human view is size-guarded ({} bytes)",
        human.len()
    );
    assert!(
        human.contains("cut") && human.contains("--json"),
        "says how to see everything: {human}"
    );
    let full = json(&db, &["show", &large.run_id]);
    assert_eq!(
        full["pipeline_context"], large.pipeline_context,
        "--json prints the whole context"
    );
}

#[test]
fn cleanup_dry_run_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = demo(dir.path(), 400, 8);
    let before = stats(&db);
    let bytes_before = db_bytes(&db);
    let preview = json(&db, &["cleanup", "--days", "30", "--dry-run"]);
    assert_eq!(stats(&db), before, "a dry run deletes nothing");
    assert_eq!(db_bytes(&db), bytes_before, "a dry run does not even write");
    assert_eq!(preview["deleted"], 0);
    let matched = preview["matched"].as_i64().unwrap();
    assert!(
        matched > 0,
        "a 60-day demo has runs older than 30 days: {preview}"
    );
    let by_status = preview["by_status"].as_object().unwrap();
    assert_eq!(
        by_status.values().map(|v| v.as_i64().unwrap()).sum::<i64>(),
        matched
    );
    assert!(
        by_status
            .keys()
            .all(|s| ["completed", "failed", "cancelled"].contains(&s.as_str())),
        "running and paused runs are kept unless named: {preview}"
    );

    let human = run_ok(&db, &["cleanup", "--days", "30", "--dry-run"]);
    assert!(human.contains("STATUS") && human.contains("dry run"), "{human}");
    assert!(human.contains(&matched.to_string()));
    assert_eq!(stats(&db), before);

    let stuck = json(
        &db,
        &["cleanup", "--days", "1", "--status", "running", "--dry-run"],
    );
    let keys: Vec<&String> = stuck["by_status"].as_object().unwrap().keys().collect();
    assert!(
        keys.iter().all(|k| *k == "running"),
        "only the named status: {stuck}"
    );
}

#[test]
fn cleanup_yes_deletes_exactly_what_the_preview_matched() {
    let dir = tempfile::tempdir().unwrap();
    let db = demo(dir.path(), 400, 9);
    let before = stats(&db)["total_workflows"].as_i64().unwrap();
    let preview = json(
        &db,
        &["cleanup", "--days", "20", "--status", "failed", "--dry-run"],
    );
    let matched = preview["matched"].as_i64().unwrap();
    assert!(matched > 0);
    let done = json(&db, &["cleanup", "--days", "20", "--status", "failed", "--yes"]);
    assert_eq!(done["matched"], matched, "{done}");
    assert_eq!(done["deleted"], matched, "deletes exactly what matched: {done}");
    assert_eq!(stats(&db)["total_workflows"].as_i64().unwrap(), before - matched);
    let again = json(
        &db,
        &["cleanup", "--days", "20", "--status", "failed", "--dry-run"],
    );
    assert_eq!(again["matched"], 0);
    assert!(
        !json(&db, &["runs", "--status", "completed", "--limit", "1000"])["runs"]
            .as_array()
            .unwrap()
            .is_empty(),
        "other statuses are kept"
    );

    let human = run_ok(&db, &["cleanup", "--days", "20", "--yes"]);
    assert!(human.contains("deleted"), "{human}");
}

#[test]
fn cleanup_needs_exactly_one_of_dry_run_and_yes() {
    let dir = tempfile::tempdir().unwrap();
    let db = demo(dir.path(), 50, 10);
    let before = stats(&db);
    fails(&db, &["cleanup", "--days", "1"], 2);
    fails(&db, &["cleanup", "--days", "1", "--dry-run", "--yes"], 2);
    fails(&db, &["cleanup", "--dry-run"], 2);
    fails(&db, &["cleanup", "--days", "0", "--yes"], 2);
    assert_eq!(stats(&db), before);
}

#[test]
fn an_unknown_status_is_a_usage_error_naming_the_valid_ones() {
    let dir = tempfile::tempdir().unwrap();
    let db = demo(dir.path(), 20, 11);
    for args in [
        &["runs", "--status", "done"][..],
        &["cleanup", "--days", "3", "--status", "pending", "--dry-run"][..],
    ] {
        let err = fails(&db, args, 2);
        assert!(
            err.contains("running, paused, completed, failed, cancelled"),
            "names the valid statuses: {err}"
        );
    }
}

#[test]
fn a_file_that_is_not_a_database_is_refused_and_left_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("notes.db");
    let content = "these are my notes, not a database\n".repeat(200);
    std::fs::write(&db, &content).unwrap();
    for args in [
        &["stats"][..],
        &["runs"][..],
        &["show", "run_1"][..],
        &["failed"][..],
        &["cleanup", "--days", "1", "--yes"][..],
        &["migrate"][..],
        &["demo", "--runs", "10", "--force"][..],
    ] {
        let out = run(&db, args);
        assert!(
            !out.status.success(),
            "flowstate {args:?} on a text file must fail"
        );
        assert_eq!(out.status.code(), Some(1), "flowstate {args:?}: {}", stderr(&out));
        assert!(stderr(&out).starts_with("error: "), "{}", stderr(&out));
        assert_eq!(
            std::fs::read_to_string(&db).unwrap(),
            content,
            "flowstate {args:?} changed the file"
        );
    }
}

#[test]
fn missing_files_are_not_created_by_reading_commands() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("typo.db");
    fails(&db, &["stats"], 1);
    fails(&db, &["runs"], 1);
    assert!(!db.exists(), "a reading command never creates a database");
    let out = flowstate().arg("stats").output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "no --db and no FLOWSTATE_DB is a usage error"
    );
    assert!(stderr(&out).contains("FLOWSTATE_DB"));
}

#[test]
fn flowstate_db_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let db = demo(dir.path(), 30, 12);
    let out = flowstate()
        .env("FLOWSTATE_DB", &db)
        .env("FLOWSTATE_LOG", "debug")
        .args(["stats", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let s: Value = serde_json::from_slice(&out.stdout).expect("stdout is only JSON, even with debug logs");
    assert_eq!(s["total_workflows"], 30);
}

#[test]
fn demo_never_overwrites_existing_runs() {
    let dir = tempfile::tempdir().unwrap();
    let db = demo(dir.path(), 100, 13);
    let err = fails(&db, &["demo", "--runs", "10"], 1);
    assert!(err.contains("--force"), "{err}");
    assert_eq!(stats(&db)["total_workflows"], 100);
    let err = fails(&db, &["demo", "--runs", "10", "--seed", "13", "--force"], 1);
    assert!(err.contains("seed"), "{err}");
    assert_eq!(
        stats(&db)["total_workflows"],
        100,
        "the same seed again replaces nothing"
    );
    json(&db, &["demo", "--runs", "10", "--seed", "14", "--force"]);
    assert_eq!(stats(&db)["total_workflows"], 110);
    let human = run_ok(&db_location(dir.path(), "other.db"), &["demo", "--runs", "5"]);
    assert!(human.contains("wrote 5 demo runs"), "{human}");
}

#[test]
fn migrate_reports_changes_once_then_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = copy_fixture("flujo-0.4.35-sample-300.db", dir.path());
    let original = std::fs::read(&db).unwrap();

    // flujo 0.4.35's table has every column: reading commands read it as it is, without migrating.
    assert_eq!(stats(&db)["total_workflows"], 300);
    assert_eq!(std::fs::read(&db).unwrap(), original, "reading never migrates");
    // flujo's oldest table lacks columns: reading commands say to migrate first, and change nothing.
    let oldest = copy_fixture("flujo-oldest-schema.db", dir.path());
    let oldest_bytes = std::fs::read(&oldest).unwrap();
    let err = fails(&oldest, &["stats"], 1);
    assert!(
        err.contains("flowstate migrate"),
        "a reading command says to migrate first: {err}"
    );
    assert_eq!(
        std::fs::read(&oldest).unwrap(),
        oldest_bytes,
        "reading never migrates"
    );

    let first = json(&db, &["migrate"]);
    assert_eq!(first["from"]["kind"], "flujo0435", "{first}");
    assert!(
        !first["changes"].as_array().unwrap().is_empty(),
        "the first migrate changes things: {first}"
    );
    let second = json(&db, &["migrate"]);
    assert_eq!(
        second["changes"].as_array().unwrap().len(),
        0,
        "the second changes nothing: {second}"
    );
    assert_eq!(second["from"]["kind"], "flowstate");
    let human = run_ok(&db, &["migrate"]);
    assert!(human.contains("already current"), "{human}");
    assert_eq!(stats(&db)["total_workflows"], 300, "every run is kept");
}

#[test]
fn migrate_describes_its_changes_for_people() {
    let dir = tempfile::tempdir().unwrap();
    let db = copy_fixture("flujo-0.4.35-sample-300.db", dir.path());
    let human = run_ok(&db, &["migrate"]);
    assert!(human.contains("migrated from flujo 0.4.35"), "{human}");
    assert!(human.contains("created index"), "{human}");
}

#[test]
fn migrate_check_counters_recounts_and_rebuilds_a_damaged_counter() {
    let dir = tempfile::tempdir().unwrap();
    let db = demo(dir.path(), 300, 5);
    let clean = json(&db, &["migrate", "--check-counters"]);
    assert_eq!(clean["counters"]["rows"], 300, "{clean}");
    assert_eq!(clean["counters"]["differences"], serde_json::json!([]), "{clean}");
    assert_eq!(clean["counters"]["rebuilt"], false, "{clean}");
    let before = stats(&db);

    // Another program edits a counter behind flowstate's back: on PostgreSQL, 7 more completed runs in the folded
    // counts (a row of a slot of its own in `flowstate_counts_base`, under a pipeline's key).
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        use sqlx::{ConnectOptions, Connection};
        if let Some(url) = pg_url(&db) {
            let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
            sqlx::query(
                "INSERT INTO flowstate_counts_base (status_key, pipeline_key, slot, runs, timed, time_sum) \
                 SELECT '=completed', '=' || min(pipeline_id), 999, 7, 0, 0 FROM workflow_state",
            )
            .execute(&mut conn)
            .await
            .unwrap();
            conn.close().await.unwrap();
            return;
        }
        let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&db)
            .connect()
            .await
            .unwrap();
        sqlx::query("UPDATE flowstate_counts SET runs = runs + 7 WHERE status_key = '=completed'")
            .execute(&mut conn)
            .await
            .unwrap();
        conn.close().await.unwrap();
    });
    assert_ne!(stats(&db), before, "the stats read the counters");
    let human = run_ok(&db, &["migrate", "--check-counters"]);
    assert!(human.contains("already current"), "{human}");
    assert!(
        human.contains("differed from a recount of 300 rows, and were rebuilt"),
        "{human}"
    );
    assert!(human.contains("flowstate_counts"), "names the counter: {human}");
    assert_eq!(stats(&db), before, "rebuilt");
    let again = json(&db, &["migrate", "--check-counters"]);
    assert_eq!(again["counters"]["rebuilt"], false, "{again}");
}

/// The `runs` table aligns its columns by display width: CJK characters and emoji take two terminal columns
/// (including emoji the old hand-written width table missed, like 🚀 and ✅), so every row's columns start where
/// the header's do.
#[test]
fn runs_table_aligns_cjk_and_emoji_pipeline_names_by_display_width() {
    use unicode_width::UnicodeWidthStr;

    let dir = tempfile::tempdir().unwrap();
    let db = db_location(dir.path(), "wide.db");
    let pipelines = ["請求書の抽出", "🚀-deploy", "✅ checks 🪐", "plain-ascii", "注文"];
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let store = flowstate_store::Store::open(&db).await.unwrap();
        for (i, pipeline) in pipelines.iter().enumerate() {
            let mut run = flowstate_store::WorkflowState::new(format!("run-{i}"), *pipeline);
            run.status = flowstate_store::Status::Failed;
            run.error_message = Some(format!("error {i}"));
            store.save_state(&run).await.unwrap();
        }
        store.close().await;
    });
    let text = run_ok(&db, &["runs"]);
    let lines: Vec<&str> = text.lines().take_while(|l| !l.is_empty()).collect();
    assert_eq!(lines.len(), 1 + pipelines.len(), "{text}");
    // The display column where each header's column starts, measured on the header line.
    let header = lines[0];
    let start_of = |line: &str, at: usize| UnicodeWidthStr::width(&line[..at]);
    let status_col = start_of(header, header.find("STATUS").unwrap());
    let step_end = start_of(header, header.find("STEP").unwrap() + "STEP".len());
    let created_col = start_of(header, header.find("CREATED").unwrap());
    assert!(status_col > UnicodeWidthStr::width("請求書の抽出"), "{text}");
    for line in &lines[1..] {
        let pipeline = pipelines
            .iter()
            .find(|p| line.contains(*p))
            .unwrap_or_else(|| panic!("a row names its pipeline: {line}"));
        assert_eq!(
            start_of(line, line.find("failed").unwrap()),
            status_col,
            "STATUS of {pipeline}:\n{text}"
        );
        // Step index 0 of an unknown count reads "1", as the dashboard's "step 1".
        let status_at = line.find("failed").unwrap();
        let step_at = status_at + line[status_at..].find(" 1 ").unwrap() + 1;
        assert_eq!(
            start_of(line, step_at + "1".len()),
            step_end,
            "right-aligned STEP of {pipeline}:\n{text}"
        );
        let created = line.find(" 20").map(|i| i + 1).expect("a creation time");
        assert_eq!(
            start_of(line, created),
            created_col,
            "CREATED of {pipeline}:\n{text}"
        );
    }
}

#[test]
fn runs_filter_background_tasks_and_show_prints_their_columns() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("tasks.db");
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let store = flowstate_store::Store::open(&db).await.unwrap();
        let at = Utc::now() - Duration::hours(1);
        for (i, id) in ["parent", "child-1", "child-2", "other"].iter().enumerate() {
            let mut run = flowstate_store::WorkflowState::new(*id, "p");
            run.created_at = Some(at + Duration::minutes(i as i64));
            if id.starts_with("child") {
                run.extras = flowstate_store::RunExtras {
                    metadata: Some(serde_json::json!({"attempt": i, "by": "worker-7"})),
                    is_background_task: true,
                    parent_run_id: Some("parent".into()),
                    task_id: Some(format!("task-{i}")),
                    background_error: (i == 1).then(|| "TimeoutError: gave up\u{1b}[31m red".to_string()),
                };
            }
            store.save_state(&run).await.unwrap();
        }
        store.close().await;
    });
    assert_eq!(
        ids(&json(&db, &["runs", "--parent", "parent"])),
        ["child-2", "child-1"]
    );
    assert_eq!(ids(&json(&db, &["runs", "--background"])), ["child-2", "child-1"]);
    assert_eq!(ids(&json(&db, &["runs", "--no-background"])), ["other", "parent"]);
    assert!(ids(&json(&db, &["runs", "--parent", "parent", "--no-background"])).is_empty());
    assert!(ids(&json(&db, &["runs", "--parent", "other"])).is_empty());
    let human = run_ok(&db, &["runs", "--parent", "parent"]);
    assert!(human.contains("child-1") && !human.contains("other"), "{human}");
    fails(&db, &["runs", "--background", "--no-background"], 2);
    fails(&db, &["runs", "--parent", ""], 2);

    let shown = json(&db, &["show", "child-1"]);
    assert_eq!(shown["is_background_task"], true);
    assert_eq!(shown["parent_run_id"], "parent");
    assert_eq!(shown["task_id"], "task-1");
    assert_eq!(shown["background_error"], "TimeoutError: gave up\u{1b}[31m red");
    assert_eq!(
        shown["metadata"],
        serde_json::json!({"attempt": 1, "by": "worker-7"})
    );
    let plain = json(&db, &["show", "other"]);
    assert_eq!(plain["is_background_task"], false);
    assert!(plain["metadata"].is_null() && plain["parent_run_id"].is_null());

    let human = run_ok(&db, &["show", "child-1"]);
    for line in [
        "is_background_task  yes",
        "parent_run_id",
        "task_id             task-1",
        "\"by\": \"worker-7\"",
    ] {
        assert!(human.contains(line), "{line:?} in:\n{human}");
    }
    assert!(human.contains("TimeoutError: gave up"), "{human}");
    assert!(
        !human.contains('\u{1b}'),
        "no terminal escape reaches the terminal: {human:?}"
    );
    let plain = run_ok(&db, &["show", "other"]);
    assert!(
        !plain.contains("is_background_task") && !plain.contains("metadata"),
        "{plain}"
    );
}
