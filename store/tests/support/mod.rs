//! Helpers of the reliability tests (RELIABILITY.md): the quick/long switch, and child processes.
//!
//! A test that needs real OS processes runs **its own test binary again** as the child: the binary re-executes
//! itself with `child_process --exact --ignored` and a role in [`ROLE_VAR`], so the hidden, `#[ignore]`d test
//! `child_process` of that file does the child's work. No example binary has to be built first, so
//! `cargo test --test many_writers` works on its own.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::Duration;

/// Set to `1` to run the long, release versions of the reliability tests.
pub const LONG_VAR: &str = "FLOWSTATE_LONG_TESTS";
/// Tells a re-executed test binary which child to be.
pub const ROLE_VAR: &str = "FLOWSTATE_TEST_CHILD_ROLE";
/// Children print their reports on lines starting with this, so libtest's own lines are told apart.
pub const REPORT: &str = "@@ ";

/// True when the long versions were asked for (`FLOWSTATE_LONG_TESTS=1`).
pub fn long_mode() -> bool {
    std::env::var(LONG_VAR).is_ok_and(|v| !v.is_empty() && v != "0")
}

/// `quick` in CI, `long` under `FLOWSTATE_LONG_TESTS=1`.
pub fn scale<T>(quick: T, long: T) -> T {
    if long_mode() {
        long
    } else {
        quick
    }
}

/// The role this process was started with, when it is a child.
pub fn child_role() -> Option<String> {
    std::env::var(ROLE_VAR).ok().filter(|r| !r.is_empty())
}

/// A child's environment variable (set by [`spawn_child`]).
#[track_caller]
pub fn child_arg(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("child process started without {name}"))
}

/// Starts this test binary again as a child with `role` and `env`, stdout piped.
pub fn spawn_child(role: &str, env: &[(&str, String)]) -> Child {
    let exe = std::env::current_exe().expect("the test binary's path");
    let mut cmd = Command::new(exe);
    cmd.args([
        "child_process",
        "--exact",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
        "-q",
    ])
    .env(ROLE_VAR, role)
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::inherit());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.spawn().expect("starting the child process")
}

/// Reads a child's report lines (the part after [`REPORT`]) on a thread, until the child's stdout closes.
pub fn collect_reports(stdout: ChildStdout) -> std::thread::JoinHandle<Vec<String>> {
    std::thread::spawn(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(|l| l.ok())
            .filter_map(|l| l.strip_prefix(REPORT).map(str::to_string))
            .collect()
    })
}

/// Prints one report line to stdout and flushes it, so it is out before whatever comes next (a SIGKILL).
pub fn report(line: impl std::fmt::Display) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    // A parent that stopped reading (a broken pipe) is not this child's failure.
    let _ = writeln!(out, "{REPORT}{line}").and_then(|()| out.flush());
}

/// Prints a measured figure for RELIABILITY.md. Straight to stderr, past libtest's capture, so CI's log keeps it.
pub fn figure(test: &str, text: impl std::fmt::Display) {
    use std::io::Write;
    let mode = if long_mode() { "long" } else { "quick" };
    let _ = writeln!(std::io::stderr(), "[figure] {test} ({mode}): {text}");
}

/// Says that a case was skipped and why. Straight to stderr, past libtest's capture: a skip is never silent.
pub fn skipped(case: &str, reason: impl std::fmt::Display) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "SKIPPED {case}: {reason}");
}

/// `PRAGMA integrity_check` of a file, through a plain connection.
pub async fn integrity_check(path: &Path) -> String {
    use sqlx::{ConnectOptions, Connection};
    let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(path)
        .busy_timeout(Duration::from_secs(10))
        .connect()
        .await
        .expect("connecting for integrity_check");
    let rows: Vec<String> = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_all(&mut conn)
        .await
        .expect("PRAGMA integrity_check");
    conn.close().await.expect("closing");
    rows.join("; ")
}
