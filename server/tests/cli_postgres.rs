//! The `flowstate` binary on PostgreSQL URLs: what only PostgreSQL has (flujo's PostgreSQL table migrated, the
//! counters' recount and repair on their `*_base` tables, a role that may only read), and the errors of a URL
//! (a server that is down, a password that must never be shown). Every other CLI test runs on PostgreSQL too, from
//! cli.rs, under `FLOWSTATE_TEST_BACKEND=postgres`.
//!
//! The tests that need a server make their own database on `FLOWSTATE_TEST_PG` and print `SKIPPED <why>` without
//! one; the tests of a server that is down need none.

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use sqlx::{Connection, PgConnection};

const BIN: &str = env!("CARGO_BIN_EXE_flowstate");

/// A URL with a password, of a server that is not there (port 1: nothing listens).
const DOWN: &str = "postgres://u:secret@127.0.0.1:1/db";

fn flowstate() -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env_remove("FLOWSTATE_DB")
        .env_remove("FLOWSTATE_LOG")
        .env_remove("PGPASSWORD")
        .env_remove("FLOWSTATE_ADMIN_TOKEN")
        .env_remove("FLOWSTATE_PUBLIC_URL");
    cmd
}

fn run(db: &str, args: &[&str]) -> Output {
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
fn json(db: &str, args: &[&str]) -> Value {
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
fn ok(db: &str, args: &[&str]) -> String {
    let out = run(db, args);
    assert!(out.status.success(), "flowstate {args:?}: {}", text(&out.stderr));
    text(&out.stdout)
}

fn block_on<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(future)
}

/// A fresh database on the test server, or `None` after `SKIPPED`.
fn fresh(test: &str) -> Option<String> {
    block_on(flowstate_testkit::pg::fresh_database_or_skip(test))
}

/// Runs `sql` (several statements) on `url`.
fn sql(url: &str, sql: &str) {
    block_on(async {
        let mut conn = PgConnection::connect(url).await.unwrap();
        sqlx::raw_sql(sql)
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        conn.close().await.unwrap();
    });
}

/// `url` with another user and, optionally, a password.
fn as_user(url: &str, user: &str, password: Option<&str>) -> String {
    let mut u = url::Url::parse(url).unwrap();
    u.set_username(user).unwrap();
    u.set_password(password).unwrap();
    u.to_string()
}

/// Every command on a server that is down: exit 1, one line on stderr that says what failed, nothing on stdout,
/// and the password nowhere; with `--json`, that line is `{"error": ...}`.
#[test]
fn a_server_that_is_down_is_one_line_and_never_shows_the_password() {
    for args in [
        &["stats"][..],
        &["runs"][..],
        &["runs", "--status", "failed"][..],
        &["failed"][..],
        &["show", "run_1"][..],
        &["cleanup", "--days", "3", "--dry-run"][..],
        &["cleanup", "--days", "3", "--yes"][..],
        &["migrate"][..],
        &["migrate", "--check-counters"][..],
        &["demo", "--runs", "5"][..],
    ] {
        let started = Instant::now();
        let out = run(DOWN, args);
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{args:?} gave up after {:?}",
            started.elapsed()
        );
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(out.stdout.is_empty(), "{args:?}: {}", text(&out.stdout));
        assert_eq!(err.lines().count(), 1, "{args:?}: one line: {err}");
        assert!(
            err.starts_with("error: cannot open postgres://u@127.0.0.1:1/db"),
            "{args:?}: {err}"
        );
        assert!(
            err.contains("running") || err.contains("refused") || err.contains("reach"),
            "{args:?} says the server cannot be reached: {err}"
        );
        assert!(!err.contains("secret"), "{args:?} shows the password: {err}");

        let mut with_json = args.to_vec();
        with_json.push("--json");
        let out = run(DOWN, &with_json);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{with_json:?}: {err}");
        assert!(out.stdout.is_empty(), "{with_json:?}");
        assert_eq!(err.lines().count(), 1, "{with_json:?}: {err}");
        let doc: Value =
            serde_json::from_str(&err).unwrap_or_else(|e| panic!("{with_json:?}: not JSON ({e}): {err}"));
        assert!(
            doc["error"]["message"].as_str().unwrap().contains("cannot open"),
            "{err}"
        );
        assert_eq!(doc["error"]["kind"], "runtime", "{err}");
        assert!(!err.contains("secret"), "{with_json:?}: {err}");
    }
    // The same from FLOWSTATE_DB, and with debug logs on.
    let out = flowstate()
        .env("FLOWSTATE_DB", DOWN)
        .env("FLOWSTATE_LOG", "trace")
        .args(["stats"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(!text(&out.stderr).contains("secret"), "{}", text(&out.stderr));
}

/// `serve` on a server that is down refuses to start, at once, with one clear line and no password, also
/// `--read-only`.
#[test]
fn serve_refuses_to_start_on_a_server_that_is_down() {
    for extra in [&[][..], &["--read-only"][..]] {
        let started = Instant::now();
        let mut child = flowstate()
            .args(["serve", "--bind", "127.0.0.1:0", "--db", DOWN])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if started.elapsed() > Duration::from_secs(30) {
                child.kill().unwrap();
                panic!("serve {extra:?} kept running on a server that is down");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let out = child.wait_with_output().unwrap();
        let err = text(&out.stderr);
        assert_eq!(status.code(), Some(1), "{extra:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{extra:?}: {err}");
        assert!(
            err.starts_with("error: cannot open postgres://u@127.0.0.1:1/db"),
            "{err}"
        );
        assert!(!err.contains("secret"), "{err}");
        assert!(!text(&out.stdout).contains("secret"));
    }
}

/// A URL the server answers, with a password (the test server trusts any): the output names the database
/// without it; a database that does not exist is one line saying so, without it too.
#[test]
fn a_password_in_the_url_is_never_printed() {
    let Some(url) = fresh("cli_password") else { return };
    let with_password = as_user(&url, "flowstate", Some("secret"));
    let shown = as_user(&url, "flowstate", None);
    let written = json(&with_password, &["demo", "--runs", "20", "--seed", "3"]);
    assert_eq!(written["db"], shown.as_str(), "{written}");
    let human = ok(&with_password, &["demo", "--runs", "5", "--seed", "4", "--force"]);
    assert!(human.contains(&shown), "{human}");
    let migrated = ok(&with_password, &["migrate", "--check-counters"]);
    assert!(
        migrated.starts_with(&format!("{shown}: already current")),
        "{migrated}"
    );
    let err = text(&run(&with_password, &["demo", "--runs", "5"]).stderr);
    assert!(err.contains("already holds 25 runs"), "{err}");
    for (args, out) in [
        ("stats", run(&with_password, &["stats"])),
        ("runs", run(&with_password, &["runs", "--json"])),
        ("show", run(&with_password, &["show", "nope"])),
    ] {
        assert!(!text(&out.stdout).contains("secret"), "{args}");
        assert!(!text(&out.stderr).contains("secret"), "{args}");
    }

    let missing = {
        let mut u = url::Url::parse(&with_password).unwrap();
        u.set_path("/no_such_database_here");
        u.to_string()
    };
    let out = run(&missing, &["stats"]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("no_such_database_here"), "{err}");
    assert!(!err.contains("secret"), "{err}");
}

/// `flowstate demo` on an empty PostgreSQL database creates flujo's table and writes; on one that holds runs it
/// refuses without --force, as on a file.
#[test]
fn demo_on_an_empty_database_and_refusal_on_a_full_one() {
    let Some(url) = fresh("cli_demo") else { return };
    // Reading commands on a database without flujo's table: an error that says what is missing.
    let out = run(&url, &["stats"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("workflow_state"),
        "{}",
        text(&out.stderr)
    );
    let written = json(&url, &["demo", "--runs", "50", "--seed", "1"]);
    assert_eq!(written["written"], 50);
    assert_eq!(json(&url, &["stats"])["total_workflows"], 50);
    let out = run(&url, &["demo", "--runs", "5", "--seed", "2"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("--force"), "{}", text(&out.stderr));
    assert_eq!(json(&url, &["stats"])["total_workflows"], 50, "nothing was added");
}

/// flujo's own PostgreSQL table (as its `PostgresBackend` creates it, rows and all): reading commands read it as
/// it is; `migrate` says it migrated flujo's PostgreSQL table and what it added, then that nothing is left to do.
#[test]
fn migrate_names_flujos_postgresql_table_then_nothing() {
    let Some(url) = fresh("cli_migrate") else { return };
    sql(
        &url,
        "CREATE TABLE workflow_state (run_id TEXT PRIMARY KEY, pipeline_id TEXT NOT NULL, \
         pipeline_name TEXT NOT NULL, pipeline_version TEXT NOT NULL, current_step_index INTEGER NOT NULL, \
         pipeline_context JSONB, last_step_output JSONB, step_history JSONB, status TEXT NOT NULL, \
         created_at TIMESTAMPTZ NOT NULL, updated_at TIMESTAMPTZ NOT NULL, total_steps INTEGER DEFAULT 0, \
         error_message TEXT, execution_time_ms INTEGER, memory_usage_mb REAL, metadata JSONB, \
         is_background_task BOOLEAN DEFAULT FALSE, parent_run_id TEXT, task_id TEXT, background_error TEXT);
         CREATE INDEX idx_workflow_state_status ON workflow_state (status);
         CREATE INDEX idx_workflow_state_pipeline_id ON workflow_state (pipeline_id);
         CREATE INDEX idx_workflow_state_parent_run_id ON workflow_state (parent_run_id);
         CREATE INDEX idx_workflow_state_created_at ON workflow_state (created_at);
         CREATE INDEX idx_runs_context_gin ON workflow_state USING GIN (pipeline_context);
         INSERT INTO workflow_state (run_id, pipeline_id, pipeline_name, pipeline_version, current_step_index, \
         pipeline_context, status, created_at, updated_at, execution_time_ms) VALUES \
         ('r1', 'p', 'p', '1', 1, '{}', 'completed', now() - interval '2 hours', now() - interval '1 hour', 40), \
         ('r2', 'p', 'p', '1', 0, '{}', 'failed', now() - interval '3 hours', now() - interval '2 hours', 10), \
         ('r3', 'q', 'q', '1', 0, '{}', 'running', now(), now(), NULL);",
    );
    let stats = json(&url, &["stats"]);
    assert_eq!(stats["total_workflows"], 3, "{stats}");
    assert_eq!(stats["status_counts"]["failed"], 1, "{stats}");

    let human = ok(&url, &["migrate"]);
    assert!(
        human.contains("migrated from flujo's PostgreSQL workflow_state table (its PostgresBackend)"),
        "{human}"
    );
    assert!(human.contains("changes in one transaction"), "{human}");
    let second = json(&url, &["migrate"]);
    assert_eq!(second["from"]["kind"], "flowstate", "{second}");
    assert_eq!(second["changes"], serde_json::json!([]), "{second}");
    let human = ok(&url, &["migrate"]);
    assert!(human.contains("already current"), "{human}");
    assert_eq!(json(&url, &["stats"])["total_workflows"], 3, "every run is kept");
}

/// The counters damaged behind flowstate's back, in each place they live on PostgreSQL (a folded count in a
/// `*_base` table; a pending delta in `flowstate_delta`): `migrate --check-counters` names each difference from a
/// recount and repairs it, and the stats agree with the rows again.
#[test]
fn check_counters_finds_and_repairs_damage_in_the_base_tables_and_the_delta_log() {
    let Some(url) = fresh("cli_counters") else { return };
    json(&url, &["demo", "--runs", "300", "--seed", "8"]);
    let clean = json(&url, &["migrate", "--check-counters"]);
    assert_eq!(clean["counters"]["rows"], 300, "{clean}");
    assert_eq!(clean["counters"]["differences"], serde_json::json!([]), "{clean}");
    let before = json(&url, &["stats"]);

    for (place, damage, table) in [
        (
            "a folded count",
            "INSERT INTO flowstate_counts_base (status_key, pipeline_key, slot, runs, timed, time_sum) \
             SELECT '=completed', '=' || min(pipeline_id), 999, 7, 0, 0 FROM workflow_state",
            "flowstate_counts",
        ),
        (
            "an hourly count",
            "INSERT INTO flowstate_created_hourly_base (hour, status_key, slot, runs) \
             SELECT floor(extract(epoch FROM max(created_at)) / 3600)::int8, '=failed', 999, 3 FROM workflow_state",
            "flowstate_created_hourly",
        ),
        (
            "a pending delta",
            "INSERT INTO flowstate_delta (sk, pk, ch, uh, e, b, d) VALUES ('=running', '=ghost', NULL, NULL, NULL, \
             NULL, 5)",
            "flowstate_counts",
        ),
    ] {
        sql(&url, damage);
        assert_ne!(json(&url, &["stats"]), before, "{place}: the stats read the counters");
        let checked = json(&url, &["migrate", "--check-counters"]);
        let differences = checked["counters"]["differences"].as_array().unwrap();
        assert!(!differences.is_empty(), "{place}: {checked}");
        assert!(
            differences.iter().any(|d| d["table"] == table),
            "{place}: names {table}: {checked}"
        );
        assert_eq!(checked["counters"]["rebuilt"], true, "{place}: {checked}");
        assert_eq!(json(&url, &["stats"]), before, "{place}: repaired");
        let again = json(&url, &["migrate", "--check-counters"]);
        assert_eq!(again["counters"]["differences"], serde_json::json!([]), "{place}: {again}");
    }

    sql(
        &url,
        "INSERT INTO flowstate_counts_base (status_key, pipeline_key, slot, runs, timed, time_sum) \
         VALUES ('=cancelled', '=ghost', 999, 2, 0, 0)",
    );
    let human = ok(&url, &["migrate", "--check-counters"]);
    assert!(human.contains("already current"), "{human}");
    assert!(
        human.contains("differed from a recount of 300 rows, and were rebuilt"),
        "{human}"
    );
    assert!(human.contains("flowstate_counts"), "{human}");
    assert_eq!(json(&url, &["stats"]), before);
}

/// A role that may only read (CONNECT, USAGE, SELECT): the reading commands work; the writing ones fail with one
/// line that says the role may not change the database, and change nothing.
#[test]
fn a_role_that_may_only_read_reads_and_is_refused_changes_clearly() {
    let Some(url) = fresh("cli_readonly_role") else {
        return;
    };
    json(&url, &["demo", "--runs", "100", "--seed", "9"]);
    let ro = read_only_role(&url);
    let stats = json(&ro, &["stats"]);
    assert_eq!(stats["total_workflows"], 100);
    let failed = json(&ro, &["runs", "--status", "failed", "--limit", "1"]);
    let id = failed["runs"][0]["run_id"].as_str().unwrap().to_string();
    assert_eq!(json(&ro, &["show", &id])["run_id"], id.as_str());
    json(&ro, &["failed", "--hours", "1440"]);
    let preview = json(&ro, &["cleanup", "--days", "20", "--dry-run"]);
    assert!(preview["matched"].as_i64().unwrap() > 0, "{preview}");

    for args in [
        &["cleanup", "--days", "20", "--yes"][..],
        &["demo", "--runs", "5", "--force"][..],
    ] {
        let out = run(&ro, args);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(
            err.contains("may not") || err.contains("permission denied") || err.contains("read-only"),
            "{args:?} says why: {err}"
        );
    }
    assert_eq!(json(&url, &["stats"]), stats, "nothing changed");

    // Checking the counters only reads: allowed. Repairing them is refused, in words.
    let checked = json(&ro, &["migrate", "--check-counters"]);
    assert_eq!(
        checked["counters"]["differences"],
        serde_json::json!([]),
        "{checked}"
    );
    sql(
        &url,
        "INSERT INTO flowstate_counts_base (status_key, pipeline_key, slot, runs, timed, time_sum) \
         VALUES ('=failed', '=ghost', 999, 4, 0, 0)",
    );
    let out = run(&ro, &["migrate", "--check-counters"]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("permission denied"), "says why: {err}");
    let repaired = json(&url, &["migrate", "--check-counters"]);
    assert_eq!(
        repaired["counters"]["rebuilt"], true,
        "the owner repairs: {repaired}"
    );
    assert_eq!(json(&ro, &["stats"]), stats);
}

/// Creates a login role that may only read `url`'s database (trust authentication: no password), returns `url`
/// as that role.
fn read_only_role(url: &str) -> String {
    let database = url::Url::parse(url)
        .unwrap()
        .path()
        .trim_start_matches('/')
        .to_string();
    let role = format!("ro_{}", database.trim_start_matches("fs_"));
    let role: String = role.chars().take(63).collect();
    sql(
        url,
        &format!(
            "CREATE ROLE \"{role}\" LOGIN; GRANT CONNECT ON DATABASE \"{database}\" TO \"{role}\"; \
             GRANT USAGE ON SCHEMA public TO \"{role}\"; GRANT SELECT ON ALL TABLES IN SCHEMA public TO \"{role}\";"
        ),
    );
    as_user(url, &role, None)
}
