//! The bulk loader for PostgreSQL: a bench database of N runs on a server, the same rows as the SQLite loader's.
//!
//! `FLOWSTATE_BENCH_PG` (or `--pg URL`) names a server (any database URL of a superuser); each size gets a database
//! of its own, `flowstate_bench_<rows>_l<layout>`, kept on the server for later runs (a table
//! `flowstate_bench_build` inside it records how it was built; a database without it is rebuilt).
//!
//! The build: the store creates the empty database (flujo's table and indexes, flowstate's indexes, counters and
//! triggers, as on any fresh database); the loader drops the triggers and every index but the primary key, then
//! `COPY`s the generator's rows in ([`CHUNK`] rows per `COPY` statement, through sqlx's `copy_in_raw`, text
//! format), creates the indexes again (each with 1 GB of `maintenance_work_mem`), and opens the store again: its
//! migration finds the triggers missing, creates them and recounts the counters from the rows (so the counters are
//! exactly what the store would have kept). Then `VACUUM ANALYZE` (a table that has lived a while is vacuumed;
//! index-only scans need the visibility map), a count of the rows and the store's recount of the counters.

use std::time::Instant;

use chrono::{DateTime, DurationRound, Utc};
use flowstate_store::{Store, StoreOptions};
use serde::{Deserialize, Serialize};
use sqlx::{Connection, PgConnection};

use crate::generate::{Generator, Row};
use crate::load::LAYOUT_VERSION;
use crate::{Result, SEED};

/// Rows per `COPY` statement.
pub const CHUNK: u64 = 100_000;

/// The server URL of the PostgreSQL benches: `FLOWSTATE_BENCH_PG`, when set and not empty.
pub fn server_from_env() -> Option<String> {
    std::env::var("FLOWSTATE_BENCH_PG")
        .ok()
        .filter(|u| !u.trim().is_empty())
}

/// `url` with its database replaced by `name`.
///
/// # Errors
/// An unreadable URL.
pub fn with_database(url: &str, name: &str) -> Result<String> {
    let mut u = url::Url::parse(url)?;
    u.set_path(&format!("/{name}"));
    Ok(u.to_string())
}

/// How a PostgreSQL bench database was built.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PgBuildReport {
    /// Rows loaded.
    pub rows: u64,
    /// The generator's seed.
    pub seed: u64,
    /// The instant the data is as of.
    pub as_of: DateTime<Utc>,
    /// Seconds copying rows in.
    pub copy_secs: f64,
    /// Seconds creating the indexes after the copy.
    pub index_secs: f64,
    /// Seconds the store's migration took (triggers, and the counters recounted from the rows).
    pub finish_secs: f64,
    /// Seconds of `VACUUM ANALYZE`.
    pub vacuum_secs: f64,
    /// Wall time of the whole build.
    pub total_secs: f64,
    /// Rows per second over the whole build.
    pub rows_per_sec: f64,
    /// `pg_database_size` after the build.
    pub database_bytes: u64,
}

impl PgBuildReport {
    /// One line for humans.
    pub fn summary(&self) -> String {
        format!(
            "{} rows in {:.0} s ({:.0} rows/s: COPY {:.0} s, indexes {:.0} s, the store's migration {:.0} s, VACUUM \
             ANALYZE {:.0} s), {:.2} GB ({:.0} bytes/run), as of {}",
            self.rows,
            self.total_secs,
            self.rows_per_sec,
            self.copy_secs,
            self.index_secs,
            self.finish_secs,
            self.vacuum_secs,
            self.database_bytes as f64 / 1e9,
            self.database_bytes as f64 / self.rows.max(1) as f64,
            self.as_of.format("%Y-%m-%d %H:%M UTC")
        )
    }
}

/// A PostgreSQL bench database ready to use.
#[derive(Debug, Clone)]
pub struct PgBenchDb {
    /// Its URL.
    pub url: String,
    /// Rows it holds.
    pub rows: u64,
    /// The instant its data is as of.
    pub as_of: DateTime<Utc>,
    /// How it was built.
    pub build: PgBuildReport,
    /// True when built by this call.
    pub fresh: bool,
}

impl PgBenchDb {
    /// The generator that made its rows.
    pub fn generator(&self) -> Generator {
        Generator::new(self.build.seed, self.rows, self.as_of)
    }

    /// Store options with the clock at [`PgBenchDb::as_of`] and `connections` connections.
    pub fn store_options(&self, connections: u32) -> StoreOptions {
        StoreOptions {
            clock: std::sync::Arc::new(flowstate_store::FixedClock::new(self.as_of)),
            max_connections: connections,
            ..Default::default()
        }
    }
}

/// The database name of a size.
pub fn database_name(rows: u64) -> String {
    format!("flowstate_bench_{rows}_l{LAYOUT_VERSION}")
}

/// The bench database of `rows` runs on `server`, built when missing (or `FLOWSTATE_BENCH_REBUILD=1`).
///
/// # Errors
/// Server failures; a count that differs from `rows` after the load; counters that a recount disagrees with.
pub async fn ensure(server: &str, rows: u64) -> Result<PgBenchDb> {
    let name = database_name(rows);
    let url = with_database(server, &name)?;
    let rebuild = std::env::var("FLOWSTATE_BENCH_REBUILD").is_ok_and(|v| v == "1");
    let mut admin = PgConnection::connect(server).await?;
    let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
        .bind(&name)
        .fetch_one(&mut admin)
        .await?;
    if exists && !rebuild {
        let mut conn = PgConnection::connect(&url).await?;
        let report: Option<String> = sqlx::query_scalar(
            "SELECT CASE WHEN to_regclass('flowstate_bench_build') IS NULL THEN NULL ELSE \
             (SELECT report::text FROM flowstate_bench_build LIMIT 1) END",
        )
        .fetch_one(&mut conn)
        .await?;
        conn.close().await.ok();
        if let Some(build) = report.and_then(|r| serde_json::from_str::<PgBuildReport>(&r).ok()) {
            if build.rows == rows {
                println!("bench pg db: reusing {name} ({})", build.summary());
                return Ok(PgBenchDb {
                    url,
                    rows,
                    as_of: build.as_of,
                    build,
                    fresh: false,
                });
            }
        }
    }
    if exists {
        println!("bench pg db: dropping {name} (incomplete, or to be rebuilt)");
        sqlx::raw_sql(&format!("DROP DATABASE \"{name}\" WITH (FORCE)"))
            .execute(&mut admin)
            .await?;
    }
    sqlx::raw_sql(&format!("CREATE DATABASE \"{name}\""))
        .execute(&mut admin)
        .await?;
    admin.close().await.ok();
    let as_of = Utc::now()
        .duration_trunc(chrono::Duration::minutes(1))
        .unwrap_or_else(|_| Utc::now());
    println!("bench pg db: building {rows} runs into {name}");
    let build = build(&url, Generator::new(SEED, rows, as_of), SEED).await?;
    println!("bench pg db: built {}", build.summary());
    Ok(PgBenchDb {
        url,
        rows,
        as_of,
        build,
        fresh: true,
    })
}

/// Builds the rows of `generator` into the empty database `url` (see the module's documentation).
///
/// # Errors
/// As [`ensure`].
pub async fn build(url: &str, generator: Generator, seed: u64) -> Result<PgBuildReport> {
    let started = Instant::now();
    let rows = generator.rows();
    let as_of = generator.as_of();
    let store = Store::open(url).await?;
    store.close().await;

    let mut conn = PgConnection::connect(url).await?;
    sqlx::raw_sql(
        "SET statement_timeout = 0; SET maintenance_work_mem = '1GB'; SET synchronous_commit = off; \
         SET max_parallel_maintenance_workers = 1",
    )
    .execute(&mut conn)
    .await?;
    let indexes: Vec<(String, String)> = sqlx::query_as(
        "SELECT indexname::text, indexdef FROM pg_indexes WHERE tablename = 'workflow_state' \
         AND schemaname = current_schema() AND indexname <> 'workflow_state_pkey'",
    )
    .fetch_all(&mut conn)
    .await?;
    let triggers: Vec<String> = sqlx::query_scalar(
        "SELECT tgname::text FROM pg_trigger WHERE tgrelid = 'workflow_state'::regclass AND NOT tgisinternal",
    )
    .fetch_all(&mut conn)
    .await?;
    for t in &triggers {
        sqlx::raw_sql(&format!("DROP TRIGGER {t} ON workflow_state"))
            .execute(&mut conn)
            .await?;
    }
    for (name, _) in &indexes {
        sqlx::raw_sql(&format!("DROP INDEX {name}"))
            .execute(&mut conn)
            .await?;
    }

    let t = Instant::now();
    copy_rows(&mut conn, &generator, 0..rows, "workflow_state", true).await?;
    let copy_secs = t.elapsed().as_secs_f64();

    let t = Instant::now();
    for (name, def) in &indexes {
        let i = Instant::now();
        sqlx::raw_sql(def).execute(&mut conn).await?;
        println!("bench pg db: index {name} in {:.0} s", i.elapsed().as_secs_f64());
    }
    let index_secs = t.elapsed().as_secs_f64();

    let t = Instant::now();
    let store = Store::open(url).await?;
    if store.migration().is_noop() {
        return Err("the store found nothing to do after the load (its triggers were dropped)".into());
    }
    store.close().await;
    let finish_secs = t.elapsed().as_secs_f64();

    let t = Instant::now();
    sqlx::raw_sql("VACUUM ANALYZE").execute(&mut conn).await?;
    let vacuum_secs = t.elapsed().as_secs_f64();

    // Exactly the store's database now: nothing to migrate, every row counted, the counters agree with a recount.
    let store = Store::open(url).await?;
    if !store.migration().is_noop() {
        return Err(format!(
            "the loaded database still needs a migration: {:?}",
            store.migration().changes
        )
        .into());
    }
    let counted: i64 = sqlx::query_scalar("SELECT count(*) FROM workflow_state")
        .fetch_one(&mut conn)
        .await?;
    let stats = store.get_workflow_stats().await?;
    let check = store.verify_counters().await?;
    store.close().await;
    if counted != rows as i64 || stats.total_workflows != rows as i64 || !check.is_exact() {
        return Err(format!(
            "loaded {rows} rows: the table has {counted}, the store counts {}, the recount found {} differences",
            stats.total_workflows,
            check.differences.len()
        )
        .into());
    }
    let database_bytes: i64 = sqlx::query_scalar("SELECT pg_database_size(current_database())")
        .fetch_one(&mut conn)
        .await?;
    let total_secs = started.elapsed().as_secs_f64();
    let report = PgBuildReport {
        rows,
        seed,
        as_of,
        copy_secs,
        index_secs,
        finish_secs,
        vacuum_secs,
        total_secs,
        rows_per_sec: rows as f64 / total_secs.max(1e-9),
        database_bytes: database_bytes.max(0) as u64,
    };
    sqlx::raw_sql("CREATE TABLE flowstate_bench_build (report jsonb NOT NULL)")
        .execute(&mut conn)
        .await?;
    sqlx::query("INSERT INTO flowstate_bench_build (report) VALUES ($1::jsonb)")
        .bind(serde_json::to_string(&report)?)
        .execute(&mut conn)
        .await?;
    conn.close().await.ok();
    Ok(report)
}

/// The 15 columns the generator makes, as `COPY` lists them.
pub const COPY_COLUMNS: &str = "run_id, pipeline_id, pipeline_name, pipeline_version, current_step_index, \
    pipeline_context, last_step_output, step_history, status, created_at, updated_at, total_steps, error_message, \
    execution_time_ms, memory_usage_mb";

/// Copies rows `range` of `generator` into `table` ([`CHUNK`] rows per `COPY`), optionally with progress.
///
/// # Errors
/// Server failures.
pub async fn copy_rows(
    conn: &mut PgConnection,
    generator: &Generator,
    range: std::ops::Range<u64>,
    table: &str,
    progress: bool,
) -> Result<u64> {
    copy_rows_where(conn, generator, range, table, progress, |_| true).await
}

/// [`copy_rows`] of the rows `keep` accepts only.
///
/// # Errors
/// Server failures.
pub async fn copy_rows_where(
    conn: &mut PgConnection,
    generator: &Generator,
    range: std::ops::Range<u64>,
    table: &str,
    progress: bool,
    keep: impl Fn(&Row<'_>) -> bool,
) -> Result<u64> {
    let total = range.end.saturating_sub(range.start);
    let started = Instant::now();
    let mut last_report = Instant::now();
    let mut copied = 0u64;
    let mut i = range.start;
    let mut buf: Vec<u8> = Vec::with_capacity(8 << 20);
    while i < range.end {
        let end = (i + CHUNK).min(range.end);
        let mut copy = conn
            .copy_in_raw(&format!("COPY {table} ({COPY_COLUMNS}) FROM STDIN"))
            .await?;
        for k in i..end {
            let r = generator.row(k);
            if !keep(&r) {
                continue;
            }
            copy_line(&r, &mut buf);
            copied += 1;
            if buf.len() > (4 << 20) {
                copy.send(buf.as_slice()).await?;
                buf.clear();
            }
        }
        if !buf.is_empty() {
            copy.send(buf.as_slice()).await?;
            buf.clear();
        }
        copy.finish().await?;
        i = end;
        if progress && last_report.elapsed().as_secs() >= 10 {
            last_report = Instant::now();
            let done = i - range.start;
            let secs = started.elapsed().as_secs_f64();
            eprintln!(
                "bench pg db: {done} of {total} rows ({:.0} %), {:.0} rows/s, {:.0} s",
                100.0 * done as f64 / total.max(1) as f64,
                done as f64 / secs.max(1e-9),
                secs
            );
        }
    }
    Ok(copied)
}

/// Appends one row in `COPY`'s text format.
pub fn copy_line(r: &Row<'_>, out: &mut Vec<u8>) {
    fn text(out: &mut Vec<u8>, v: &str) {
        for b in v.bytes() {
            match b {
                b'\\' => out.extend_from_slice(b"\\\\"),
                b'\t' => out.extend_from_slice(b"\\t"),
                b'\n' => out.extend_from_slice(b"\\n"),
                b'\r' => out.extend_from_slice(b"\\r"),
                _ => out.push(b),
            }
        }
    }
    fn opt(out: &mut Vec<u8>, v: Option<&str>) {
        match v {
            Some(v) => text(out, v),
            None => out.extend_from_slice(b"\\N"),
        }
    }
    fn instant(out: &mut Vec<u8>, us: i64) {
        let at = DateTime::<Utc>::from_timestamp_micros(us).unwrap_or_default();
        out.extend_from_slice(at.format("%Y-%m-%d %H:%M:%S%.6f+00").to_string().as_bytes());
    }
    let tab = |out: &mut Vec<u8>| out.push(b'\t');
    text(out, &r.run_id);
    tab(out);
    text(out, r.pipeline_id);
    tab(out);
    text(out, r.pipeline_name);
    tab(out);
    text(out, r.pipeline_version);
    tab(out);
    out.extend_from_slice(r.current_step_index.to_string().as_bytes());
    tab(out);
    text(out, &r.pipeline_context);
    tab(out);
    opt(out, r.last_step_output);
    tab(out);
    opt(out, r.step_history);
    tab(out);
    text(out, r.status);
    tab(out);
    instant(out, r.created_us);
    tab(out);
    instant(out, r.updated_us);
    tab(out);
    out.extend_from_slice(r.total_steps.to_string().as_bytes());
    tab(out);
    opt(out, r.error_message);
    tab(out);
    opt(out, r.execution_time_ms.map(|v| v.to_string()).as_deref());
    tab(out);
    opt(out, r.memory_usage_mb.map(|v| v.to_string()).as_deref());
    out.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_lines_escape_what_copy_reads_specially() {
        let g = Generator::with_templates(1, 10, Utc::now(), 64);
        let mut r = g.row(3);
        r.pipeline_context = "{\"a\": \"x\\ny\\\\z\t\"}".into();
        r.error_message = None;
        let mut out = Vec::new();
        copy_line(&r, &mut out);
        let line = String::from_utf8(out).unwrap();
        assert!(line.ends_with('\n'));
        let fields: Vec<&str> = line.trim_end_matches('\n').split('\t').collect();
        assert_eq!(fields.len(), 15, "{line}");
        assert_eq!(fields[5], "{\"a\": \"x\\\\ny\\\\\\\\z\\t\"}");
        assert_eq!(fields[12], "\\N");
        assert!(
            fields[9].ends_with("+00") && fields[9].len() == 29,
            "{}",
            fields[9]
        );
    }
}
