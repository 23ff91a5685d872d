//! `flowstate runs` with the list's orders, time / memory / version filters and totals (issue 15), run for real on
//! a demo database (a file, or under `FLOWSTATE_TEST_BACKEND=postgres` a PostgreSQL database of its own).

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use support::db_location;

const BIN: &str = env!("CARGO_BIN_EXE_flowstate");

fn run(db: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .env_remove("FLOWSTATE_DB")
        .env_remove("FLOWSTATE_LOG")
        .arg("--db")
        .arg(db)
        .args(args)
        .output()
        .expect("the flowstate binary runs")
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
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn demo(dir: &Path) -> PathBuf {
    let db = db_location(dir, "demo.db");
    json(&db, &["demo", "--runs", "400", "--seed", "15"]);
    db
}

fn ids(page: &Value) -> Vec<String> {
    page["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["run_id"].as_str().unwrap().to_string())
        .collect()
}

/// The runs of `all` matching `keep`, in the order `sort` names (ties by run id, as the store breaks them).
fn reference(all: &[Value], sort: &str, keep: impl Fn(&Value) -> bool) -> Vec<String> {
    let mut rows: Vec<&Value> = all
        .iter()
        .filter(|r| keep(r))
        .filter(|r| match sort {
            "slowest" => !r["execution_time_ms"].is_null(),
            "heaviest" => !r["memory_usage_mb"].is_null(),
            _ => true,
        })
        .collect();
    let time = |r: &Value, f: &str| chrono::DateTime::parse_from_rfc3339(r[f].as_str().unwrap()).unwrap();
    rows.sort_by(|a, b| {
        let by_id = b["run_id"].as_str().unwrap().cmp(a["run_id"].as_str().unwrap());
        match sort {
            "slowest" => b["execution_time_ms"]
                .as_i64()
                .cmp(&a["execution_time_ms"].as_i64())
                .then(by_id),
            "heaviest" => b["memory_usage_mb"]
                .as_f64()
                .partial_cmp(&a["memory_usage_mb"].as_f64())
                .unwrap()
                .then(by_id),
            "idle" => time(a, "updated_at")
                .cmp(&time(b, "updated_at"))
                .then(by_id.reverse()),
            _ => time(b, "created_at").cmp(&time(a, "created_at")).then(by_id),
        }
    });
    rows.into_iter()
        .map(|r| r["run_id"].as_str().unwrap().to_string())
        .collect()
}

/// Every page of `args` (13 runs a page), following `next_cursor`; checks each page's total.
fn pages(db: &Path, args: &[&str], total: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut a: Vec<&str> = args.to_vec();
        a.extend(["--limit", "13"]);
        if let Some(c) = &cursor {
            a.extend(["--cursor", c.as_str()]);
        }
        let page = json(db, &a);
        assert_eq!(page["total"]["count"], total, "{args:?}");
        assert_eq!(page["total"]["exact"], true, "{args:?}");
        out.extend(ids(&page));
        cursor = page["next_cursor"].as_str().map(str::to_string);
        if cursor.is_none() {
            return out;
        }
        assert!(out.len() < 1000);
    }
}

#[test]
fn every_order_and_filter_pages_like_the_reference_with_its_total() {
    let dir = tempfile::tempdir().unwrap();
    let db = demo(dir.path());
    let all = json(&db, &["runs", "--limit", "1000"]);
    let all: Vec<Value> = all["runs"].as_array().unwrap().clone();
    assert_eq!(all.len(), 400);
    let mut times: Vec<i64> = all
        .iter()
        .filter_map(|r| r["execution_time_ms"].as_i64())
        .collect();
    times.sort();
    let mut memory: Vec<f64> = all.iter().filter_map(|r| r["memory_usage_mb"].as_f64()).collect();
    memory.sort_by(f64::total_cmp);
    let (slow, heavy) = (times[times.len() / 2], memory[memory.len() / 2]);
    let slow_arg = format!("{slow}ms");
    let heavy_arg = format!("{heavy}");
    let version = all[0]["pipeline_version"].as_str().unwrap().to_string();
    for sort in ["newest", "slowest", "heaviest", "idle"] {
        let want = reference(&all, sort, |_| true);
        assert_eq!(pages(&db, &["runs", "--sort", sort], want.len()), want, "{sort}");
        let want = reference(&all, sort, |r| {
            r["execution_time_ms"].as_i64().is_some_and(|t| t >= slow)
        });
        assert_eq!(
            pages(
                &db,
                &["runs", "--sort", sort, "--min-duration", &slow_arg],
                want.len()
            ),
            want,
            "{sort} --min-duration"
        );
        let want = reference(&all, sort, |r| {
            r["memory_usage_mb"].as_f64().is_some_and(|m| m <= heavy)
                && r["pipeline_version"] == version.as_str()
        });
        assert_eq!(
            pages(
                &db,
                &[
                    "runs",
                    "--sort",
                    sort,
                    "--max-memory",
                    &heavy_arg,
                    "--version",
                    &version
                ],
                want.len()
            ),
            want,
            "{sort} --max-memory --version"
        );
    }
    // The table: memory and the total, and a cursor back.
    let out = run(
        &db,
        &["runs", "--sort", "heaviest", "--limit", "5", "--min-memory", "1"],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(text.contains("MEMORY"), "{text}");
    assert!(text.contains(" MB"), "{text}");
    let counted = reference(&all, "heaviest", |r| {
        r["memory_usage_mb"].as_f64().is_some_and(|m| m >= 1.0)
    })
    .len();
    assert!(
        text.contains(&format!(
            "5 runs shown of {counted} runs, most memory first; next page: --cursor "
        )),
        "{text}"
    );
}

#[test]
fn bad_values_are_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let db = demo(dir.path());
    for args in [
        vec!["runs", "--sort", "fastest"],
        vec!["runs", "--min-duration", "5"],
        vec!["runs", "--max-duration", "40d"],
        vec!["runs", "--min-memory", "-1"],
        vec!["runs", "--max-memory", "lots"],
        vec!["runs", "--min-duration", "10m", "--max-duration", "1m"],
        vec!["runs", "--min-memory", "10", "--max-memory", "1"],
    ] {
        let out = run(&db, &args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // A cursor of one order refused by another.
    let page = json(&db, &["runs", "--sort", "slowest", "--limit", "3"]);
    let cursor = page["next_cursor"].as_str().unwrap();
    let out = run(&db, &["runs", "--sort", "idle", "--cursor", cursor]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cursor"));
}
