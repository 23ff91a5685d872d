//! The bulk loader for PostgreSQL: a bench database of N runs on a server, the same rows as the SQLite loader's.
//!
//! `FLOWSTATE_BENCH_PG` (or `--pg URL`) names a server (any database URL of a superuser); each size gets a database
//! of its own, `flowstate_bench_<rows>_l<layout>`, kept on the server for later runs (a table
//! `flowstate_bench_build` inside it records how it was built; a database without it is rebuilt).
//!
//! The build: the store creates the empty database (flujo's table and indexes, flowstate's indexes, counters and
//! triggers, as on any fresh database); the loader drops the triggers and every index but the primary key, then
//! `COPY`s the generator's rows in ([`CHUNK`] rows per `COPY` statement, through sqlx's `copy_in_raw`, text
//! format, over several connections at once: [`LoadOptions`]), creates the indexes again (several sessions at
//! once, one `CREATE INDEX` each, the GIN indexes first), and opens the store again: its
//! migration finds the triggers missing, creates them and recounts the counters from the rows (so the counters are
//! exactly what the store would have kept). Then `VACUUM ANALYZE` (a table that has lived a while is vacuumed;
//! index-only scans need the visibility map), a count of the rows and the store's recount of the counters.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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
        "SET statement_timeout = 0; SET maintenance_work_mem = '1GB'; SET synchronous_commit = off",
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

    let options = LoadOptions::from_env()?;
    println!(
        "bench pg db: {} COPY streams, {} index sessions, maintenance_work_mem {}",
        options.copy_streams, options.index_sessions, options.maintenance_work_mem
    );
    let generator = Arc::new(generator);
    let t = Instant::now();
    copy_parallel(url, &generator, options.copy_streams).await?;
    let copy_secs = t.elapsed().as_secs_f64();

    let t = Instant::now();
    create_indexes(url, indexes, &options).await?;
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

/// How the loader spreads its work over connections: `FLOWSTATE_BENCH_PG_COPY_STREAMS` (default 2),
/// `FLOWSTATE_BENCH_PG_INDEX_SESSIONS` (default 2), `FLOWSTATE_BENCH_PG_MAINTENANCE_MEM` (each index session's
/// `maintenance_work_mem`, default `1GB`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadOptions {
    /// Connections `COPY`ing chunks at once.
    pub copy_streams: usize,
    /// Connections creating indexes at once (one `CREATE INDEX` each).
    pub index_sessions: usize,
    /// `maintenance_work_mem` of each index session, e.g. `4GB`.
    pub maintenance_work_mem: String,
}

impl LoadOptions {
    /// From the environment (see the type).
    ///
    /// # Errors
    /// A count that is not 1 to 64; a memory size that is not digits and a unit (`kB`, `MB`, `GB`).
    pub fn from_env() -> Result<LoadOptions> {
        Self::parse(
            std::env::var("FLOWSTATE_BENCH_PG_COPY_STREAMS").ok().as_deref(),
            std::env::var("FLOWSTATE_BENCH_PG_INDEX_SESSIONS").ok().as_deref(),
            std::env::var("FLOWSTATE_BENCH_PG_MAINTENANCE_MEM")
                .ok()
                .as_deref(),
        )
    }

    /// From the three settings' values (`None` or empty: the default).
    ///
    /// # Errors
    /// As [`LoadOptions::from_env`].
    pub fn parse(streams: Option<&str>, sessions: Option<&str>, memory: Option<&str>) -> Result<LoadOptions> {
        fn count(name: &str, v: Option<&str>) -> Result<usize> {
            match v.map(str::trim).filter(|v| !v.is_empty()) {
                None => Ok(2),
                Some(v) => match v.parse::<usize>() {
                    Ok(n) if (1..=64).contains(&n) => Ok(n),
                    _ => Err(format!("{name} must be a number from 1 to 64, not {v:?}").into()),
                },
            }
        }
        let maintenance_work_mem = match memory.map(str::trim).filter(|v| !v.is_empty()) {
            None => "1GB".to_string(),
            Some(v) => {
                let digits = v.bytes().take_while(u8::is_ascii_digit).count();
                if digits == 0 || digits > 7 || !["kB", "MB", "GB"].contains(&&v[digits..]) {
                    return Err(format!(
                        "FLOWSTATE_BENCH_PG_MAINTENANCE_MEM must be a size like 512MB or 4GB, not {v:?}"
                    )
                    .into());
                }
                v.to_string()
            }
        };
        Ok(LoadOptions {
            copy_streams: count("FLOWSTATE_BENCH_PG_COPY_STREAMS", streams)?,
            index_sessions: count("FLOWSTATE_BENCH_PG_INDEX_SESSIONS", sessions)?,
            maintenance_work_mem,
        })
    }
}

/// Copies all rows of `generator` into `workflow_state` of `url` over `streams` connections at once, each taking
/// the next chunk of [`CHUNK`] rows when done with one (each chunk one `COPY`, committed on its own); progress on
/// stderr every 10 s.
///
/// # Errors
/// Server failures (the first one; the other streams are stopped).
pub async fn copy_parallel(url: &str, generator: &Arc<Generator>, streams: usize) -> Result<u64> {
    let rows = generator.rows();
    let chunks = rows.div_ceil(CHUNK);
    let next = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    // Tasks of this thread (sqlx's borrowed connections do not prove `Send` to `tokio::spawn`): the server parses
    // the rows, making them here is a small part of the work.
    let local = tokio::task::LocalSet::new();
    local
        .run_until(async {
            let mut tasks = tokio::task::JoinSet::new();
            for _ in 0..streams.max(1) {
                let (url, generator, next, done) =
                    (url.to_string(), generator.clone(), next.clone(), done.clone());
                tasks.spawn_local(copy_stream(url, generator, next, done, chunks));
            }
            let started = Instant::now();
            let mut tick = tokio::time::interval_at(
                tokio::time::Instant::now() + Duration::from_secs(10),
                Duration::from_secs(10),
            );
            loop {
                tokio::select! {
                    joined = tasks.join_next() => match joined {
                        None => break,
                        Some(Ok(Ok(()))) => {}
                        Some(Ok(Err(e))) => return Err(e),
                        Some(Err(e)) => return Err(format!("a COPY stream failed: {e}").into()),
                    },
                    _ = tick.tick() => {
                        let n = done.load(Ordering::Relaxed);
                        let secs = started.elapsed().as_secs_f64();
                        eprintln!(
                            "bench pg db: {n} of {rows} rows ({:.0} %), {:.0} rows/s, {:.0} s",
                            100.0 * n as f64 / rows.max(1) as f64,
                            n as f64 / secs.max(1e-9),
                            secs
                        );
                    }
                }
            }
            Ok(done.load(Ordering::Relaxed))
        })
        .await
}

/// Runs the `CREATE INDEX` statements `indexes` (name, definition) over [`LoadOptions::index_sessions`]
/// connections at once, each with [`LoadOptions::maintenance_work_mem`]; the GIN indexes (the longest to build)
/// first.
///
/// # Errors
/// Server failures (the first one).
pub async fn create_indexes(
    url: &str,
    mut indexes: Vec<(String, String)>,
    options: &LoadOptions,
) -> Result<()> {
    indexes.sort_by_key(|(_, def)| !def.to_ascii_lowercase().contains("using gin"));
    let queue = Arc::new(Mutex::new(indexes.into_iter().collect::<VecDeque<_>>()));
    let local = tokio::task::LocalSet::new();
    local
        .run_until(async {
            let mut tasks = tokio::task::JoinSet::new();
            for _ in 0..options.index_sessions.max(1) {
                let (url, queue, memory) = (
                    url.to_string(),
                    queue.clone(),
                    options.maintenance_work_mem.clone(),
                );
                tasks.spawn_local(index_session(url, queue, memory));
            }
            while let Some(joined) = tasks.join_next().await {
                match joined {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => return Err(e),
                    Err(e) => return Err(format!("an index session failed: {e}").into()),
                }
            }
            Ok(())
        })
        .await
}

/// One stream of [`copy_parallel`]: takes the next chunk until none is left.
async fn copy_stream(
    url: String,
    generator: Arc<Generator>,
    next: Arc<AtomicU64>,
    done: Arc<AtomicU64>,
    chunks: u64,
) -> Result<()> {
    let rows = generator.rows();
    let mut conn = PgConnection::connect(&url).await?;
    sqlx::raw_sql("SET synchronous_commit = off")
        .execute(&mut conn)
        .await?;
    let mut buf: Vec<u8> = Vec::with_capacity(8 << 20);
    loop {
        let chunk = next.fetch_add(1, Ordering::Relaxed);
        if chunk >= chunks {
            break;
        }
        let range = chunk * CHUNK..((chunk + 1) * CHUNK).min(rows);
        let copied = copy_chunk(&mut conn, &generator, range, "workflow_state", &mut buf, |_| true).await?;
        done.fetch_add(copied, Ordering::Relaxed);
    }
    conn.close().await.ok();
    Ok(())
}

/// One session of [`create_indexes`]: creates the next index until none is left.
async fn index_session(
    url: String,
    queue: Arc<Mutex<VecDeque<(String, String)>>>,
    memory: String,
) -> Result<()> {
    let mut conn = PgConnection::connect(&url).await?;
    sqlx::raw_sql("SET statement_timeout = 0")
        .execute(&mut conn)
        .await?;
    sqlx::query("SELECT set_config('maintenance_work_mem', $1, false)")
        .bind(&memory)
        .execute(&mut conn)
        .await?;
    loop {
        let next = queue.lock().map_err(|_| "index queue poisoned")?.pop_front();
        let Some((name, def)) = next else { break };
        let i = Instant::now();
        sqlx::raw_sql(&def).execute(&mut conn).await?;
        println!("bench pg db: index {name} in {:.0} s", i.elapsed().as_secs_f64());
    }
    conn.close().await.ok();
    Ok(())
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
        copied += copy_chunk(conn, generator, i..end, table, &mut buf, &keep).await?;
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

/// One `COPY` of the rows of `range` that `keep` accepts, through `buf` (left empty).
async fn copy_chunk(
    conn: &mut PgConnection,
    generator: &Generator,
    range: std::ops::Range<u64>,
    table: &str,
    buf: &mut Vec<u8>,
    keep: impl Fn(&Row<'_>) -> bool,
) -> Result<u64> {
    let mut copied = 0u64;
    let mut copy = conn
        .copy_in_raw(&format!("COPY {table} ({COPY_COLUMNS}) FROM STDIN"))
        .await?;
    for k in range {
        let r = generator.row(k);
        if !keep(&r) {
            continue;
        }
        copy_line(&r, buf);
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
    Ok(copied)
}

/// Appends one row in `COPY`'s text format.
pub fn copy_line(r: &Row<'_>, out: &mut Vec<u8>) {
    // The escaping and the instants are the store's own bulk load's (store/src/postgres/bulk.rs).
    use flowstate_store::postgres::{copy_instant, copy_opt as opt, copy_text as text};
    fn instant(out: &mut Vec<u8>, us: i64) {
        copy_instant(
            out,
            &DateTime::<Utc>::from_timestamp_micros(us).unwrap_or_default(),
        );
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
    fn load_options_default_and_refuse_bad_values() {
        let d = LoadOptions::parse(None, Some(""), None).unwrap();
        assert_eq!(
            (d.copy_streams, d.index_sessions, d.maintenance_work_mem.as_str()),
            (2, 2, "1GB")
        );
        let o = LoadOptions::parse(Some("3"), Some("1"), Some("4GB")).unwrap();
        assert_eq!(
            (o.copy_streams, o.index_sessions, o.maintenance_work_mem.as_str()),
            (3, 1, "4GB")
        );
        for (a, b, c) in [
            (Some("0"), None, None),
            (Some("65"), None, None),
            (None, Some("x"), None),
            (None, None, Some("4G")),
            (None, None, Some("GB")),
            (None, None, Some("1GB'; DROP")),
        ] {
            assert!(LoadOptions::parse(a, b, c).is_err(), "{a:?} {b:?} {c:?}");
        }
    }

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
