//! Interrupted migration (issue 4, part 3; RELIABILITY.md): a large file in flujo's oldest, 9-column schema is
//! migrated by the real `flowstate migrate`, which is killed with SIGKILL at random points. After every kill the
//! file is wholly old (exactly the original schema) or wholly new (exactly the schema a completed migration
//! writes), never in between; it holds the same number of rows with the same original nine columns (checksum),
//! and `PRAGMA integrity_check` is `ok`. A migration that then runs to the end keeps every row.
//!
//! Quick (CI): 30,000 rows, 10 kills. Long (`FLOWSTATE_LONG_TESTS=1`): 200,000 rows, 25 kills.

mod support;

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rand::Rng;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sqlx::{ConnectOptions, Connection, Row, SqliteConnection};

const ORIGINAL_COLUMNS: [&str; 9] = [
    "run_id",
    "pipeline_id",
    "pipeline_version",
    "current_step_index",
    "pipeline_context",
    "last_step_output",
    "status",
    "created_at",
    "updated_at",
];

fn long_mode() -> bool {
    std::env::var("FLOWSTATE_LONG_TESTS").is_ok_and(|v| !v.is_empty() && v != "0")
}

fn figure(text: impl std::fmt::Display) {
    let mode = if long_mode() { "long" } else { "quick" };
    eprintln!("[figure] interrupted_migration ({mode}): {text}");
}

/// flujo's first backend's CREATE TABLE, exactly as the repository's oldest-schema fixture records it.
fn oldest_schema() -> String {
    let truth = support::fixture_truth("flujo-oldest-schema.json");
    truth["before"]["schema"][0].as_str().unwrap().to_string()
}

async fn connect(path: &Path) -> SqliteConnection {
    SqliteConnectOptions::new()
        .filename(path)
        .busy_timeout(Duration::from_secs(10))
        .connect()
        .await
        .unwrap()
}

/// Writes `rows` rows in the oldest schema, in one transaction, with the quirks old files have: NULL and unknown
/// statuses, NULL step indexes and pipeline ids, every timestamp spelling, unicode.
async fn build_oldest(path: &Path, rows: usize) {
    let mut conn = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Delete)
        .synchronous(SqliteSynchronous::Off)
        .connect()
        .await
        .unwrap();
    sqlx::query(&oldest_schema()).execute(&mut conn).await.unwrap();
    let mut tx = conn.begin().await.unwrap();
    let statuses = [
        Some("running"),
        Some("completed"),
        Some("failed"),
        Some("paused"),
        Some("cancelled"),
        Some("pending"),
        None,
    ];
    for i in 0..rows {
        let run_id = format!("run_{i:07}");
        let pipeline_id = if i % 97 == 0 {
            None
        } else {
            Some(format!("pipeline-{}", i % 13))
        };
        let step: Option<i64> = if i % 89 == 0 { None } else { Some((i % 7) as i64) };
        let context = format!(
            r#"{{"run_id":"{run_id}","initial_prompt":"Résumé n°{i} ✓","scratchpad":{{"attempt":{}}},"hitl_history":[],"command_log":[]}}"#,
            i % 5
        );
        let output = if i % 3 == 0 {
            None
        } else {
            Some(format!(r#""output {i}""#))
        };
        let day = 1 + i % 28;
        let created = match i % 4 {
            0 => format!("2024-03-{day:02}T10:{:02}:{:02}", i % 60, (i / 60) % 60),
            1 => format!(
                "2024-03-{day:02}T10:{:02}:{:02}.{:06}",
                i % 60,
                (i / 60) % 60,
                i % 1_000_000
            ),
            2 => format!("2024-03-{day:02} 10:{:02}:{:02}", i % 60, (i / 60) % 60),
            _ => format!("2024-03-{day:02}T10:{:02}:{:02}+02:00", i % 60, (i / 60) % 60),
        };
        sqlx::query("INSERT INTO workflow_state VALUES (?1, ?2, '1.0.0', ?3, ?4, ?5, ?6, ?7, ?7)")
            .bind(&run_id)
            .bind(&pipeline_id)
            .bind(step)
            .bind(&context)
            .bind(&output)
            .bind(statuses[i % statuses.len()])
            .bind(&created)
            .execute(&mut *tx)
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
    conn.close().await.unwrap();
}

/// What the file is: its schema objects (name and SQL, from sqlite_master), its row count, and a checksum of the
/// nine original columns of every row (as SQL literals, so type and value are exact).
#[derive(Debug, Clone, PartialEq)]
struct State {
    schema: Vec<(String, Option<String>)>,
    rows: i64,
    checksum: u64,
    integrity: String,
}

async fn state_of(path: &Path) -> State {
    // Opening rolls back a hot journal (or recovers a WAL) left by the killed process, as any reader would.
    let mut conn = connect(path).await;
    let schema: Vec<(String, Option<String>)> =
        sqlx::query_as("SELECT name, sql FROM sqlite_master ORDER BY type, name")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    let select = ORIGINAL_COLUMNS
        .iter()
        .map(|c| format!("quote({c})"))
        .collect::<Vec<_>>()
        .join(" || '|' || ");
    let mut hasher = DefaultHasher::new();
    let mut rows = 0i64;
    let all = sqlx::query(&format!("SELECT {select} FROM workflow_state ORDER BY run_id"))
        .fetch_all(&mut conn)
        .await
        .unwrap();
    for row in all {
        row.get::<String, _>(0).hash(&mut hasher);
        rows += 1;
    }
    let integrity: Vec<String> = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    State {
        schema,
        rows,
        checksum: hasher.finish(),
        integrity: integrity.join("; "),
    }
}

fn migrate_command(db: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_flowstate"));
    cmd.arg("--db")
        .arg(db)
        .arg("migrate")
        .env_remove("FLOWSTATE_DB")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    cmd
}

fn copy(from: &Path, to: &Path) {
    for suffix in ["-wal", "-shm", "-journal"] {
        let _ = std::fs::remove_file(sidecar(to, suffix));
    }
    std::fs::copy(from, to).unwrap();
}

fn sidecar(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_migration_killed_at_random_points_leaves_the_file_wholly_old_or_wholly_new() {
    let (rows, kills) = if long_mode() { (200_000, 25) } else { (30_000, 10) };
    let dir = tempfile::tempdir().unwrap();
    let pristine = dir.path().join("pristine.db");
    let built = Instant::now();
    build_oldest(&pristine, rows).await;
    let build_time = built.elapsed();
    let old = state_of(&pristine).await;
    assert_eq!(old.rows as usize, rows);
    assert_eq!(old.integrity, "ok");
    let old_size = std::fs::metadata(&pristine).unwrap().len();

    // One migration to the end, timed: the reference for "wholly new" and for the kill window.
    let reference = dir.path().join("reference.db");
    copy(&pristine, &reference);
    let started = Instant::now();
    let out = migrate_command(&reference).output().unwrap();
    let full = started.elapsed();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let new = state_of(&reference).await;
    assert_ne!(new.schema, old.schema);
    assert_eq!(
        (new.rows, new.checksum),
        (old.rows, old.checksum),
        "the migration kept every row"
    );
    assert_eq!(new.integrity, "ok");
    assert!(new.schema.iter().any(|(n, _)| n == "flowstate_meta"));

    // Kill migrations of the same file at random points: anywhere in the time a whole one takes.
    let work = dir.path().join("work.db");
    copy(&pristine, &work);
    let mut rng = rand::thread_rng();
    let (mut found_old, mut found_new, mut resets, mut finished_first) = (0, 0, 0, 0);
    for kill in 0..kills {
        // Up to a fifth longer than a whole migration, so some kills come after the commit too.
        let delay = Duration::from_micros(rng.gen_range(0..full.as_micros() as u64 * 6 / 5));
        let mut child = migrate_command(&work).spawn().unwrap();
        std::thread::sleep(delay);
        if child.try_wait().unwrap().is_some() {
            finished_first += 1;
        }
        let _ = child.kill(); // SIGKILL; it may have finished already.
        let status = child.wait().unwrap();

        let now = state_of(&work).await;
        assert_eq!(now.integrity, "ok", "kill {kill} after {delay:?}");
        assert_eq!(
            (now.rows, now.checksum),
            (old.rows, old.checksum),
            "kill {kill} after {delay:?}: rows lost or changed"
        );
        eprintln!(
            "kill {kill} after {delay:?}: {}",
            if now.schema == old.schema { "old" } else { "new" }
        );
        if now.schema == old.schema {
            found_old += 1;
        } else if now.schema == new.schema {
            found_new += 1;
            // Start the next kill from an old file again.
            copy(&pristine, &work);
            resets += 1;
        } else {
            panic!(
                "kill {kill} after {delay:?} ({status}): the file is neither old nor new:\n{:#?}",
                now.schema
            );
        }
    }

    // Then a migration that runs to the end keeps every row, and the store reads them all.
    let out = migrate_command(&work).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let end = state_of(&work).await;
    assert_eq!(end.schema, new.schema);
    assert_eq!((end.rows, end.checksum), (old.rows, old.checksum));
    assert_eq!(end.integrity, "ok");
    let store = flowstate_store::Store::open(&work).await.unwrap();
    assert_eq!(
        store.get_workflow_stats().await.unwrap().total_workflows as usize,
        rows
    );
    store.close().await;

    figure(format!(
        "{rows} rows ({:.1} MB, built in {:.1} s); a whole `flowstate migrate` takes {:.2} s; {kills} SIGKILLs: \
         {found_old} left it wholly old, {found_new} wholly new ({finished_first} of those after the process had \
         ended; {resets} resets to the old file), none in between; rows and checksum unchanged every time",
        old_size as f64 / 1e6,
        build_time.as_secs_f64(),
        full.as_secs_f64()
    ));
}
