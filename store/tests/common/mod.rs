//! Helpers shared by the store's integration tests: each test owns a temporary directory and database.
#![allow(dead_code)]

pub mod backends;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use flowstate_store::{FixedClock, Store, StoreOptions};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection, Row, SqliteConnection};

/// The repository's flujo fixtures (`store/tests/fixtures`: files written by flujo itself, their ground truth, and
/// `generate.py`, which makes them).
pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// Copies a fixture into `dir` (fixtures are read-only inputs; opening migrates) and returns the copy's path.
#[track_caller]
pub fn copy_fixture(name: &str, dir: &Path) -> PathBuf {
    let src = fixtures_dir().join(name);
    let dst = dir.join(name);
    std::fs::copy(&src, &dst).unwrap_or_else(|e| panic!("copy {}: {e}", src.display()));
    let mut perms = std::fs::metadata(&dst).unwrap().permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    perms.set_readonly(false);
    std::fs::set_permissions(&dst, perms).unwrap();
    dst
}

/// Reads a fixture's ground-truth JSON.
#[track_caller]
pub fn fixture_truth(name: &str) -> serde_json::Value {
    let path = fixtures_dir().join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()))
}

/// A store on `path` whose clock stands at `now`.
pub async fn open_at(path: &Path, now: DateTime<Utc>) -> (Store, FixedClock) {
    let clock = FixedClock::new(now);
    let store = Store::open_with(
        path,
        StoreOptions {
            clock: Arc::new(clock.clone()),
            ..Default::default()
        },
    )
    .await
    .expect("open store");
    (store, clock)
}

/// A plain SQLite connection to the file, as another process (flujo) would have.
pub async fn raw(path: &Path) -> SqliteConnection {
    SqliteConnectOptions::new()
        .filename(path)
        .busy_timeout(std::time::Duration::from_secs(5))
        .connect()
        .await
        .expect("raw connect")
}

/// Every row of workflow_state as `column -> quote(value)` (SQL literal text, so type and value are exact),
/// keyed by run id, for the given columns.
pub async fn raw_rows(path: &Path, columns: &[&str]) -> Vec<Vec<String>> {
    let mut conn = raw(path).await;
    let select = columns
        .iter()
        .map(|c| format!("quote({c})"))
        .collect::<Vec<_>>()
        .join(", ");
    let rows = sqlx::query(&format!("SELECT {select} FROM workflow_state ORDER BY run_id"))
        .fetch_all(&mut conn)
        .await
        .unwrap();
    let out = rows
        .iter()
        .map(|r| (0..columns.len()).map(|i| r.get::<String, _>(i)).collect())
        .collect();
    conn.close().await.unwrap();
    out
}

/// The time `t` given as RFC 3339.
#[track_caller]
pub fn at(t: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(t).unwrap().with_timezone(&Utc)
}
