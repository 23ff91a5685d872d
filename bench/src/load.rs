//! The bulk loader: builds a bench database of N runs fast, and caches it under `target/bench/db/`.
//!
//! The file is made by the store itself first ([`Store::open`]: flujo's table, flowstate's indexes, the
//! counters tables and their triggers, whatever the current schema has), closed, and then filled by rusqlite on
//! one connection: the journal off, `synchronous=OFF`, an exclusive lock, a large page cache, one transaction per
//! chunk of [`CHUNK`] rows through one prepared statement, rows in creation order (so the time-keyed indexes grow
//! at their end). Then the journal is set back to WAL, the store opens the file again, and a second open must
//! find nothing to migrate and count every row. A load that dies midway leaves only a `.building` file, never a
//! cached database.
//!
//! The counters' triggers cost more per row than all the indexes together, so by default ([`DEFAULT_ORDER`],
//! [`LoadOrder::TriggersAfter`]) they are dropped before the load: the store's next open finds them missing,
//! creates them and recounts the counters from the rows, with its own migration, so the result is exactly what
//! the store would have kept. [`LoadOrder::SchemaFirst`] keeps them (every row goes through them), and
//! [`LoadOrder::IndexesAfter`] also drops the indexes and creates them after the load. The `bench-db` binary
//! times each order.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::{DateTime, DurationRound, Utc};
use flowstate_store::{Store, StoreOptions};
use serde::{Deserialize, Serialize};

use crate::generate::{Generator, TEMPLATES};
use crate::{Result, SEED};

/// Part of every cached database's name: bump it when the rows the generator makes change.
pub const LAYOUT_VERSION: u32 = 1;

/// Bytes per run of a bench database (measured: 4,800 at 100k runs, table and indexes; a run of about 2.9 KB
/// takes a whole 4 KB page), for checking the free space before a build.
pub const ESTIMATED_BYTES_PER_RUN: u64 = 5_000;

/// The load order of the cached databases.
pub const DEFAULT_ORDER: LoadOrder = LoadOrder::TriggersAfter;

/// Rows per transaction while loading.
pub const CHUNK: u64 = 50_000;

/// Page cache of the loading connection (KiB): the indexes of ten million runs stay in memory.
const LOAD_CACHE_KIB: i64 = 3 * 1024 * 1024;

/// In which order the loader fills the table and its indexes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LoadOrder {
    /// The store creates table, indexes and triggers; rows are inserted into all of them.
    SchemaFirst,
    /// As [`LoadOrder::SchemaFirst`], but the triggers on `workflow_state` are dropped before loading; reopening
    /// the file through the store then finds them missing, creates them again and recounts the counters from the
    /// rows (the store's own migration, so the counters are exactly the store's). The default: the triggers cost
    /// more per row than the indexes.
    TriggersAfter,
    /// The triggers and the indexes are dropped before loading; the indexes are created again by the loader
    /// (with its large cache), the triggers and counters by the store as in [`LoadOrder::TriggersAfter`].
    IndexesAfter,
}

impl std::str::FromStr for LoadOrder {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "schema-first" => Ok(LoadOrder::SchemaFirst),
            "triggers-after" => Ok(LoadOrder::TriggersAfter),
            "indexes-after" => Ok(LoadOrder::IndexesAfter),
            other => Err(format!(
                "unknown load order {other:?}; use schema-first, triggers-after or indexes-after"
            )),
        }
    }
}

/// How a database was built.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BuildReport {
    /// Rows loaded.
    pub rows: u64,
    /// The load order used.
    pub order: LoadOrder,
    /// The generator's seed.
    pub seed: u64,
    /// The instant the data is as of: creation times lie in the 90 days before it.
    pub as_of: DateTime<Utc>,
    /// Seconds spent creating the empty database through the store.
    pub schema_secs: f64,
    /// Seconds spent inserting rows.
    pub insert_secs: f64,
    /// Seconds spent creating indexes after the load ([`LoadOrder::IndexesAfter`] only).
    pub index_secs: f64,
    /// Seconds the store spent on its first open after the load (creating the triggers and recounting the
    /// counters, for the orders that leave them out).
    #[serde(default)]
    pub finish_secs: f64,
    /// Seconds spent reopening through the store and checking the row count.
    pub verify_secs: f64,
    /// Wall time of the whole build.
    pub total_secs: f64,
    /// Rows per second over the whole build.
    pub rows_per_sec: f64,
    /// Size of the database file.
    pub file_bytes: u64,
    /// Average size of a context, in bytes.
    pub avg_context_bytes: f64,
    /// Fingerprint of the store's schema the file was built with.
    pub schema_fingerprint: String,
}

impl BuildReport {
    /// One line for humans.
    pub fn summary(&self) -> String {
        format!(
            "{} rows in {:.1} s ({:.0} rows/s; {:?}: inserting {:.1} s{}, the store finishing {:.1} s), {:.2} GB ({:.0} bytes/run), contexts {:.0} bytes on average, as of {}",
            self.rows,
            self.total_secs,
            self.rows_per_sec,
            self.order,
            self.insert_secs,
            if self.order == LoadOrder::IndexesAfter {
                format!(", indexes {:.1} s", self.index_secs)
            } else {
                String::new()
            },
            self.finish_secs,
            self.file_bytes as f64 / 1e9,
            self.file_bytes as f64 / self.rows.max(1) as f64,
            self.avg_context_bytes,
            self.as_of.format("%Y-%m-%d %H:%M UTC"),
        )
    }
}

/// A bench database ready to use.
#[derive(Debug, Clone)]
pub struct BenchDb {
    /// The database file.
    pub path: PathBuf,
    /// Rows it holds.
    pub rows: u64,
    /// The instant its data is as of: open stores on it with a [`flowstate_store::FixedClock`] at this instant
    /// so "the last 24 hours" means the same rows whenever the bench runs.
    pub as_of: DateTime<Utc>,
    /// How it was built.
    pub build: BuildReport,
    /// True when it was built by this call, false when a cached one was reused.
    pub fresh: bool,
}

impl BenchDb {
    /// The generator that made its rows (to find existing run ids, or regenerate rows).
    pub fn generator(&self) -> Generator {
        Generator::new(self.build.seed, self.rows, self.as_of)
    }

    /// Store options with the clock standing at [`BenchDb::as_of`].
    pub fn store_options(&self) -> StoreOptions {
        StoreOptions {
            clock: std::sync::Arc::new(flowstate_store::FixedClock::new(self.as_of)),
            ..Default::default()
        }
    }
}

/// The folder of cached databases: `FLOWSTATE_BENCH_DIR`, or `target/bench/db`.
pub fn cache_dir() -> PathBuf {
    match std::env::var_os("FLOWSTATE_BENCH_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => crate::bench_dir().join("db"),
    }
}

/// The cached database of `rows` runs, built first when it is missing, was built for another schema, or
/// `FLOWSTATE_BENCH_REBUILD=1` is set. Prints what it does (build rate and size, or what it reuses).
///
/// # Errors
/// I/O and SQLite failures while building.
pub async fn ensure(rows: u64) -> Result<BenchDb> {
    let fingerprint = schema_fingerprint().await?;
    let dir = cache_dir();
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(format!("runs-{rows}-L{LAYOUT_VERSION}-{fingerprint}.db"));
    let meta_path = sidecar(&path);
    let rebuild = std::env::var("FLOWSTATE_BENCH_REBUILD").is_ok_and(|v| v == "1");
    if !rebuild && path.exists() {
        if let Some(build) = std::fs::read(&meta_path)
            .ok()
            .and_then(|b| serde_json::from_slice::<BuildReport>(&b).ok())
        {
            if build.rows == rows && !dirty_marker(&path).exists() {
                let age = Utc::now() - build.as_of;
                println!(
                    "bench db: reusing {} (built as of {}, {:.1} h ago: {})",
                    path.display(),
                    build.as_of.format("%Y-%m-%d %H:%M UTC"),
                    age.num_minutes() as f64 / 60.0,
                    build.summary()
                );
                return Ok(BenchDb {
                    path,
                    rows,
                    as_of: build.as_of,
                    build,
                    fresh: false,
                });
            }
        }
    }
    // A database of the same size built for another schema or layout is of no more use, and at 10M runs it
    // takes tens of gigabytes: remove it before building.
    let prefix = format!("runs-{rows}-");
    for entry in std::fs::read_dir(&dir)?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let current = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if name.starts_with(&prefix) && !name.starts_with(&current) {
            println!("bench db: removing {name} (built for another schema or layout)");
            let _ = std::fs::remove_file(entry.path());
        }
    }
    // The same database, left dirty by an interrupted bench (or asked to be rebuilt): it is rebuilt, so it need
    // not hold the disk meanwhile (at 10M runs there is rarely room for two).
    if path.exists() {
        println!("bench db: removing {} (dirty or to be rebuilt)", path.display());
        remove_db(&path);
        let _ = std::fs::remove_file(&meta_path);
    }
    let needed = rows.saturating_mul(ESTIMATED_BYTES_PER_RUN) + (1 << 30);
    if let Some(free) = free_bytes(&dir) {
        if free < needed {
            return Err(format!(
                "a database of {rows} runs needs about {:.1} GB ({ESTIMATED_BYTES_PER_RUN} bytes per run) and {} has \
                 {:.1} GB free; free some space or set FLOWSTATE_BENCH_DIR to a larger disk",
                needed as f64 / 1e9,
                dir.display(),
                free as f64 / 1e9
            )
            .into());
        }
    }
    println!("bench db: building {rows} runs into {}", path.display());
    let as_of = Utc::now()
        .duration_trunc(chrono::Duration::minutes(1))
        .unwrap_or_else(|_| Utc::now());
    let building = with_suffix(&path, ".building");
    let build = build(&building, rows, as_of, DEFAULT_ORDER, SEED).await?;
    remove_db(&path);
    std::fs::rename(&building, &path)?;
    remove_db(&building);
    std::fs::write(&meta_path, serde_json::to_vec_pretty(&build)?)?;
    let _ = std::fs::remove_file(dirty_marker(&path));
    println!("bench db: built {}", build.summary());
    Ok(BenchDb {
        path,
        rows,
        as_of,
        build,
        fresh: true,
    })
}

/// Builds a database of `rows` runs at `path` (which must not exist), as of `as_of`.
///
/// # Errors
/// I/O and SQLite failures; a row count that differs from `rows` after the load.
pub async fn build(
    path: &Path,
    rows: u64,
    as_of: DateTime<Utc>,
    order: LoadOrder,
    seed: u64,
) -> Result<BuildReport> {
    build_with(path, Generator::new(seed, rows, as_of), order, seed).await
}

/// [`build`] with a given generator (tests use one with fewer templates).
///
/// # Errors
/// As [`build`].
pub async fn build_with(
    path: &Path,
    generator: Generator,
    order: LoadOrder,
    seed: u64,
) -> Result<BuildReport> {
    remove_db(path);
    let started = Instant::now();
    let store = Store::open(path).await?;
    store.close().await;
    let schema_secs = started.elapsed().as_secs_f64();

    let rows = generator.rows();
    let as_of = generator.as_of();
    let target = path.to_path_buf();
    let (insert_secs, index_secs, context_bytes) =
        tokio::task::spawn_blocking(move || -> Result<(f64, f64, u64)> {
            let conn = rusqlite::Connection::open(&target)?;
            // Out of WAL first (this needs the only connection), then nothing is journaled or synced: a load that dies
            // leaves a broken file, which is never renamed into the cache.
            conn.pragma_update(None, "journal_mode", "OFF")?;
            conn.pragma_update(None, "synchronous", "OFF")?;
            conn.pragma_update(None, "locking_mode", "EXCLUSIVE")?;
            conn.pragma_update(None, "temp_store", "MEMORY")?;
            conn.pragma_update(None, "cache_size", -LOAD_CACHE_KIB)?;
            if order != LoadOrder::SchemaFirst {
                drop_triggers(&conn)?;
            }
            let indexes = if order == LoadOrder::IndexesAfter {
                drop_indexes(&conn)?
            } else {
                Vec::new()
            };
            let t = Instant::now();
            let context_bytes = insert_rows(&conn, &generator, 0..rows, false, true)?;
            let insert_secs = t.elapsed().as_secs_f64();
            let t = Instant::now();
            for sql in &indexes {
                conn.execute_batch(sql)?;
            }
            let index_secs = t.elapsed().as_secs_f64();
            conn.pragma_update(None, "locking_mode", "NORMAL")?;
            conn.pragma_update(None, "journal_mode", "WAL")?;
            conn.close().map_err(|(_, e)| e)?;
            Ok((insert_secs, index_secs, context_bytes))
        })
        .await??;

    // The store recreates what the load order left out (triggers, counters).
    let t = Instant::now();
    let store = Store::open(path).await?;
    let changed = !store.migration().is_noop();
    store.close().await;
    if changed && order == LoadOrder::SchemaFirst {
        return Err(format!(
            "the store changed the loaded database when opening it: {:?}",
            store.migration().changes
        )
        .into());
    }
    let finish_secs = t.elapsed().as_secs_f64();

    // Now the file must be exactly the store's: nothing to migrate, and the counters count every row.
    let t = Instant::now();
    let store = Store::open(path).await?;
    if !store.migration().is_noop() {
        return Err(format!(
            "the loaded database still needs a migration after the store finished it: {:?}",
            store.migration().changes
        )
        .into());
    }
    let stats = store.get_workflow_stats().await?;
    store.close().await;
    if stats.total_workflows != rows as i64 {
        return Err(format!(
            "loaded {rows} rows but the store counts {}",
            stats.total_workflows
        )
        .into());
    }
    let verify_secs = t.elapsed().as_secs_f64();
    let total_secs = started.elapsed().as_secs_f64();
    Ok(BuildReport {
        rows,
        order,
        seed,
        as_of,
        schema_secs,
        insert_secs,
        index_secs,
        finish_secs,
        verify_secs,
        total_secs,
        rows_per_sec: rows as f64 / total_secs.max(1e-9),
        file_bytes: std::fs::metadata(path)?.len(),
        avg_context_bytes: context_bytes as f64 / rows.max(1) as f64,
        schema_fingerprint: schema_fingerprint().await?,
    })
}

/// Inserts rows `range` of `generator` on `conn`, [`CHUNK`] per transaction; with `or_ignore`, rows whose run id
/// exists are skipped. Returns the bytes of context written.
///
/// # Errors
/// SQLite failures.
pub fn insert_rows(
    conn: &rusqlite::Connection,
    generator: &Generator,
    range: std::ops::Range<u64>,
    or_ignore: bool,
    progress: bool,
) -> Result<u64> {
    let sql = format!(
        "INSERT {} INTO workflow_state (run_id, pipeline_id, pipeline_name, pipeline_version, current_step_index, \
         pipeline_context, last_step_output, step_history, status, created_at, updated_at, total_steps, \
         error_message, execution_time_ms, memory_usage_mb) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
        if or_ignore { "OR IGNORE" } else { "" }
    );
    let mut stmt = conn.prepare(&sql)?;
    let total = range.end.saturating_sub(range.start);
    let started = Instant::now();
    let mut last_report = Instant::now();
    let mut context_bytes = 0u64;
    let mut i = range.start;
    while i < range.end {
        let end = (i + CHUNK).min(range.end);
        conn.execute_batch("BEGIN")?;
        for k in i..end {
            let r = generator.row(k);
            context_bytes += r.pipeline_context.len() as u64;
            stmt.execute(r.columns(&r.updated_at))?;
        }
        conn.execute_batch("COMMIT")?;
        i = end;
        if progress && last_report.elapsed() > Duration::from_secs(10) {
            last_report = Instant::now();
            let done = i - range.start;
            let secs = started.elapsed().as_secs_f64();
            eprintln!(
                "bench db: {done} of {total} rows ({:.0} %), {:.0} rows/s, {:.0} s",
                100.0 * done as f64 / total.max(1) as f64,
                done as f64 / secs.max(1e-9),
                secs
            );
        }
    }
    Ok(context_bytes)
}

/// Drops every trigger on `workflow_state` (the store creates them again when it next opens the file).
fn drop_triggers(conn: &rusqlite::Connection) -> Result<()> {
    let mut stmt = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'workflow_state'")?;
    let names: Vec<String> = stmt
        .query_map([], |r| r.get(0))?
        .collect::<std::result::Result<_, _>>()?;
    for name in names {
        conn.execute_batch(&format!("DROP TRIGGER \"{}\"", name.replace('"', "\"\"")))?;
    }
    Ok(())
}

/// Drops every index of `workflow_state` but the primary key's, returning the statements that recreate them.
fn drop_indexes(conn: &rusqlite::Connection) -> Result<Vec<String>> {
    let mut stmt = conn.prepare(
        "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'workflow_state' AND sql IS NOT NULL",
    )?;
    let found: Vec<(String, String)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<std::result::Result<_, _>>()?;
    for (name, _) in &found {
        conn.execute_batch(&format!("DROP INDEX \"{}\"", name.replace('"', "\"\"")))?;
    }
    Ok(found.into_iter().map(|(_, sql)| sql).collect())
}

/// A short fingerprint of the schema the store creates (tables, indexes, triggers): part of a cached database's
/// name, so a schema change (a new index, a counters table) builds new databases instead of reusing old ones.
///
/// # Errors
/// I/O and SQLite failures.
pub async fn schema_fingerprint() -> Result<String> {
    let dir = crate::bench_dir().join("tmp");
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(format!("schema-{}.db", std::process::id()));
    remove_db(&path);
    let store = Store::open(&path).await?;
    store.close().await;
    let target = path.clone();
    let text = tokio::task::spawn_blocking(move || -> Result<String> {
        let conn = rusqlite::Connection::open(&target)?;
        let mut stmt = conn.prepare(
            "SELECT type || ' ' || name || ' ' || COALESCE(sql, '') FROM sqlite_master ORDER BY type, name",
        )?;
        let lines: Vec<String> = stmt
            .query_map([], |r| r.get(0))?
            .collect::<std::result::Result<_, _>>()?;
        let version: String = conn
            .query_row(
                "SELECT value FROM flowstate_meta WHERE key = 'schema_version'",
                [],
                |r| r.get(0),
            )
            .unwrap_or_default();
        Ok(format!("{version}\n{}\n{TEMPLATES}", lines.join("\n")))
    })
    .await??;
    remove_db(&path);
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    Ok(format!("{:08x}", h >> 32))
}

/// Free bytes on the file system holding `dir`, from `df` (`None` when it cannot be read).
pub fn free_bytes(dir: &Path) -> Option<u64> {
    let out = std::process::Command::new("df")
        .arg("-Pk")
        .arg(dir)
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    let line = text.lines().nth(1)?;
    let available_kib: u64 = line.split_whitespace().nth(3)?.parse().ok()?;
    Some(available_kib * 1024)
}

/// The file beside a cached database that says how it was built.
fn sidecar(path: &Path) -> PathBuf {
    with_suffix(path, ".json")
}

/// Present while a cached database is being changed in place (and so must not be reused if that stops midway).
pub fn dirty_marker(path: &Path) -> PathBuf {
    with_suffix(path, ".dirty")
}

/// `path` with `suffix` appended to its name.
pub fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Removes a database and its -wal, -shm and -journal files, if present.
pub fn remove_db(path: &Path) {
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let _ = std::fs::remove_file(with_suffix(path, suffix));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[tokio::test]
    async fn every_load_order_builds_the_same_database_the_store_opens_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let as_of = Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap();
        let mut answers = Vec::new();
        for order in [
            LoadOrder::SchemaFirst,
            LoadOrder::TriggersAfter,
            LoadOrder::IndexesAfter,
        ] {
            let path = dir.path().join(format!("{order:?}.db"));
            let g = Generator::with_templates(9, 3_000, as_of, 512);
            let report = build_with(&path, g, order, 9).await.unwrap();
            assert_eq!(report.rows, 3_000);
            assert!(report.file_bytes > 3_000 * 2_000, "about 2 KB of context per run");
            let store = Store::open_with(
                &path,
                StoreOptions {
                    clock: std::sync::Arc::new(flowstate_store::FixedClock::new(as_of)),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
            assert!(store.migration().is_noop(), "the loader keeps the store's schema");
            let g = Generator::with_templates(9, 3_000, as_of, 512);
            let run = store
                .load_state(&g.run_id(1_234))
                .await
                .unwrap()
                .expect("row 1234 exists");
            assert_eq!(
                run,
                g.row(1_234).to_state(),
                "a loaded row reads back as generated"
            );
            let stats = store.get_workflow_stats().await.unwrap();
            let failed = store.get_failed_workflows(24 * 100, 1_000).await.unwrap();
            answers.push((stats, failed.len()));
            store.close().await;
        }
        assert_eq!(answers[0], answers[1], "every order gives the same answers");
        assert_eq!(answers[0], answers[2], "every order gives the same answers");
        let (stats, _) = &answers[0];
        assert_eq!(stats.total_workflows, 3_000);
        assert!(
            stats.recent_workflows_24h > 0,
            "some runs in the last 24 h of as_of"
        );
    }
}
