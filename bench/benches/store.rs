//! The store bench: each figure of issue 5's items 1–6 beside its baseline, measured in the same run.
//!
//! ```text
//! cargo bench -p flowstate-bench --bench store                      # 100,000 runs (quick)
//! FLOWSTATE_BENCH_ROWS=1000000 cargo bench -p flowstate-bench --bench store
//! cargo bench -p flowstate-bench --bench store -- --rows 1M,10M     # several sizes in one run
//! cargo bench -p flowstate-bench --bench store -- list failed       # only some groups
//! ```
//!
//! Groups, in order: `save` (save_state on a small database of its own), `load` (the bulk load's figures),
//! `load_state`, `stats`, `list`, `failed`, and last `cleanup` (on a copy of the database, or in place with the
//! deleted rows restored afterwards when the disk has no room for a copy). Figures go to
//! `target/bench/flowstate.json` after each group and to a table at the end.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use flowstate_bench::generate::{Generator, Row, SplitMix, STATUS_MIX};
use flowstate_bench::load::{self, BenchDb};
use flowstate_bench::report::{self, Measurement};
use flowstate_bench::sample::{sample_async, sample_sync, Budget, Samples};
use flowstate_bench::{Config, Result};
use flowstate_store::{CleanupPolicy, Durability, ListQuery, Status, Store, StoreOptions, WorkflowState};
use tokio::runtime::Runtime;

/// Rows of the database the save benches write into (a fresh copy for each measurement).
const SAVE_DB_ROWS: u64 = 10_000;
/// Distinct runs each save caller cycles through: its first saves insert, the rest update.
const RUNS_PER_CALLER: usize = 256;
/// Concurrent callers of the "many callers" figures.
const MANY: usize = 8;
/// Runs the load_state figures read (at random), all read once before measuring.
const WORKING_SET: u64 = 20_000;
/// Page size of the list benches (the store's default).
const PAGE: u32 = ListQuery::DEFAULT_LIMIT;
/// The deep page of the list benches.
const DEEP_PAGE: u64 = 10_000;
/// Columns flujo's list queries return (no JSON).
const FLUJO_LIST_COLUMNS: &str =
    "run_id, pipeline_id, pipeline_name, pipeline_version, current_step_index, status, \
    created_at, updated_at, total_steps, error_message, execution_time_ms, memory_usage_mb";
/// Every column, for point reads.
const ALL_COLUMNS: &str = "run_id, pipeline_id, pipeline_name, pipeline_version, current_step_index, \
    pipeline_context, last_step_output, step_history, status, created_at, updated_at, total_steps, error_message, \
    execution_time_ms, memory_usage_mb";
/// The store's upsert, for the raw baseline: the same statement with the same parameters.
const RAW_UPSERT: &str = r#"INSERT INTO workflow_state (
    run_id, pipeline_id, pipeline_name, pipeline_version, current_step_index, pipeline_context,
    last_step_output, step_history, status, created_at, updated_at, total_steps, error_message,
    execution_time_ms, memory_usage_mb)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9,
    COALESCE(?10, (SELECT created_at FROM workflow_state WHERE run_id = ?1), ?16),
    ?11, ?12, ?13, ?14, ?15)
ON CONFLICT(run_id) DO UPDATE SET
    pipeline_id = excluded.pipeline_id,
    pipeline_name = excluded.pipeline_name,
    pipeline_version = excluded.pipeline_version,
    current_step_index = excluded.current_step_index,
    pipeline_context = excluded.pipeline_context,
    last_step_output = excluded.last_step_output,
    step_history = excluded.step_history,
    status = excluded.status,
    created_at = excluded.created_at,
    updated_at = excluded.updated_at,
    total_steps = excluded.total_steps,
    error_message = excluded.error_message,
    execution_time_ms = excluded.execution_time_ms,
    memory_usage_mb = excluded.memory_usage_mb"#;

fn main() {
    if let Err(e) = run() {
        eprintln!("bench store: {e}");
        std::process::exit(1);
    }
}

/// When the bench started: the origin of the log's times (`RUST_LOG=flowstate_store=debug` shows each cleanup
/// batch) and of the slowest saves' times.
static STARTED: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();

fn run() -> Result<()> {
    STARTED.get_or_init(Instant::now);
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_timer(tracing_subscriber::fmt::time::uptime())
            .with_ansi(false)
            .with_writer(std::io::stderr)
            .init();
    }
    let config = Config::from_env_and_args(std::env::args().skip(1))?;
    if std::env::var("FLOWSTATE_BENCH_PG_ONLY").is_ok_and(|v| v == "1") {
        println!(
            "flowstate store bench: skipped (FLOWSTATE_BENCH_PG_ONLY=1; the pg bench measures PostgreSQL)"
        );
        return Ok(());
    }
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let path = report::report_path();
    let mut all: Vec<Measurement> = Vec::new();
    let mut keep = |group: Vec<Measurement>| -> Result<()> {
        print!("{}", report::table(&group));
        println!();
        report::merge_into(&path, &group)?;
        all.extend(group);
        Ok(())
    };
    println!(
        "flowstate store bench: sizes {:?}, {} s per measurement, groups {}",
        config.rows,
        config.secs,
        if config.only.is_empty() {
            "all".to_string()
        } else {
            config.only.join(", ")
        }
    );

    if config.wants("save") {
        keep(save_group(&rt, &config)?)?;
    }
    for &rows in &config.rows {
        let db = rt.block_on(load::ensure(rows))?;
        let store = rt.block_on(Store::open_with(&db.path, db.store_options()))?;
        let generator = db.generator();
        if config.wants("load") {
            keep(vec![bulk_load_figure(&db)])?;
        }
        if config.wants("load_state") {
            keep(load_state_group(&rt, &config, &db, &store, &generator)?)?;
        }
        if config.wants("stats") {
            keep(stats_group(&rt, &config, &db, &store)?)?;
        }
        if config.wants("list") {
            keep(list_group(&rt, &config, &db, &store)?)?;
        }
        if config.wants("list_sorts") {
            keep(rt.block_on(flowstate_bench::lists::sort_group(
                &store,
                config.secs,
                db.rows,
                "",
            ))?)?;
        }
        if config.wants("failed") || config.wants("failure") {
            keep(failed_group(&rt, &config, &db, &store)?)?;
        }
        if config.wants("triage") {
            keep(rt.block_on(flowstate_bench::triage::triage_group(
                &store,
                config.secs,
                db.rows,
                "",
            ))?)?;
        }
        if config.wants("pipelines") {
            keep(pipelines_group(&rt, &config, &db, &store)?)?;
        }
        rt.block_on(store.close());
        if config.wants("cleanup") {
            keep(cleanup_group(&rt, &config, &db, &generator)?)?;
        }
    }

    println!("== all figures of this run ==");
    print!("{}", report::table(&all));
    println!("\nwritten to {}", path.display());
    Ok(())
}

// ---------------------------------------------------------------------------------------------------------------
// Helpers

/// Throughput of a fixed-duration run: operations, elapsed time, and each operation's latency.
struct Throughput {
    ops: u64,
    elapsed: Duration,
    latencies: Samples,
}

impl Throughput {
    /// Every caller's latencies, over the time since `start`.
    fn from_callers(start: Instant, callers: Vec<Vec<Duration>>) -> Throughput {
        let elapsed = start.elapsed();
        let all: Vec<Duration> = callers.into_iter().flatten().collect();
        Throughput {
            ops: all.len() as u64,
            elapsed,
            latencies: Samples::new(all),
        }
    }

    fn per_sec(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

fn secs(config: &Config) -> Duration {
    Duration::from_secs_f64(config.secs)
}

/// A latency figure: the median of `store` beside the median of `raw`.
fn latency(name: &str, rows: u64, store: &Samples, raw: &Samples, what: &str, goal_ms: f64) -> Measurement {
    Measurement::new(name, rows, store.median_ms(), "ms")
        .higher_is_better(false)
        .baseline(raw.median_ms(), what)
        .goal_at_most(goal_ms)
        .extra("p99_ms", store.p99_ms())
        .extra("max_ms", store.max_ms())
        .extra("samples", store.len() as u64)
        .extra("baseline_p99_ms", raw.p99_ms())
        .extra("baseline_samples", raw.len() as u64)
}

fn open_raw(path: &std::path::Path) -> Result<rusqlite::Connection> {
    let conn = rusqlite::Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    Ok(conn)
}

/// Reads every column of every row of a query into owned values (what a caller of the raw query gets).
fn fetch_all(stmt: &mut rusqlite::Statement<'_>, params: impl rusqlite::Params) -> rusqlite::Result<usize> {
    let columns = stmt.column_count();
    let mut rows = stmt.query(params)?;
    let mut out: Vec<Vec<rusqlite::types::Value>> = Vec::new();
    while let Some(row) = rows.next()? {
        let mut values = Vec::with_capacity(columns);
        for k in 0..columns {
            values.push(row.get::<_, rusqlite::types::Value>(k)?);
        }
        out.push(values);
    }
    Ok(out.len())
}

/// What SQLite's `datetime('now', ...)` would use as "now" at the database's as-of instant: flujo's queries
/// compute their cutoffs with it, so the raw baselines do the same from `as_of`.
fn sqlite_now(as_of: DateTime<Utc>) -> String {
    as_of.format("%Y-%m-%d %H:%M:%S").to_string()
}

// ---------------------------------------------------------------------------------------------------------------
// 1. save_state

fn save_group(rt: &Runtime, config: &Config) -> Result<Vec<Measurement>> {
    let seed_db = rt.block_on(load::ensure(SAVE_DB_ROWS))?;
    // The runs the callers save: other ids than the database's (another seed), realistic contents.
    let generator = Generator::new(
        flowstate_bench::SEED ^ 0x5A7E,
        (MANY * RUNS_PER_CALLER) as u64,
        seed_db.as_of,
    );
    let rows: Vec<Vec<Row<'_>>> = (0..MANY)
        .map(|c| {
            (0..RUNS_PER_CALLER)
                .map(|j| generator.row((c * RUNS_PER_CALLER + j) as u64))
                .collect()
        })
        .collect();
    let states: Arc<Vec<Vec<WorkflowState>>> = Arc::new(
        rows.iter()
            .map(|caller| {
                caller
                    .iter()
                    .map(|r| {
                        let mut s = r.to_state();
                        // As a runner saves: the store stamps the update.
                        s.updated_at = None;
                        s
                    })
                    .collect()
            })
            .collect(),
    );
    let scratch = flowstate_bench::bench_dir().join("tmp");
    std::fs::create_dir_all(&scratch)?;
    let fresh_copy = |label: &str| -> Result<std::path::PathBuf> {
        let path = scratch.join(format!("save-{label}.db"));
        load::remove_db(&path);
        std::fs::copy(&seed_db.path, &path)?;
        Ok(path)
    };

    let mut out = Vec::new();
    for durability in [Durability::Full, Durability::Normal] {
        let sync = match durability {
            Durability::Full => "full",
            Durability::Normal => "normal",
        };
        let mut raw_one_caller = 0.0;
        for callers in [1, MANY] {
            let path = fresh_copy(&format!("store-{sync}-{callers}"))?;
            let store_fig = rt.block_on(store_saves(
                &path,
                durability,
                callers,
                secs(config),
                states.clone(),
            ))?;
            load::remove_db(&path);
            let path = fresh_copy(&format!("raw-{sync}-{callers}"))?;
            let raw_fig = raw_saves(&path, sync, callers, secs(config), &rows)?;
            load::remove_db(&path);
            if callers == 1 {
                raw_one_caller = raw_fig.per_sec();
            }
            let name = format!(
                "save_state.{sync}.{callers}_caller{}",
                if callers > 1 { "s" } else { "" }
            );
            let mut m = Measurement::new(name, SAVE_DB_ROWS, store_fig.per_sec(), "ops/s")
                .higher_is_better(true)
                .baseline(
                    raw_fig.per_sec(),
                    format!(
                        "raw rusqlite, the store's upsert as one prepared statement in autocommit, synchronous={}, \
                         {callers} thread(s) each with its own connection (busy timeout 5 s), JSON pre-serialized",
                        sync.to_uppercase()
                    ),
                )
                .extra("p50_ms", store_fig.latencies.median_ms())
                .extra("p99_ms", store_fig.latencies.p99_ms())
                .extra("max_ms", store_fig.latencies.max_ms())
                .extra("ops", store_fig.ops)
                .extra("baseline_p99_ms", raw_fig.latencies.p99_ms())
                .extra("baseline_ops", raw_fig.ops)
                .note(format!(
                    "{:.1} s each, on a fresh copy of a {} -run database; each caller cycles through {} runs \
                     (~2 KB contexts), so its first saves insert and the rest replace; one transaction per save; \
                     WAL",
                    config.secs,
                    report::number(SAVE_DB_ROWS as f64),
                    RUNS_PER_CALLER
                ));
            m = if callers == 1 && durability == Durability::Full {
                m.goal_ratio_at_least(0.7)
            } else if callers > 1 {
                m.goal_at_least(raw_one_caller, Some("raw's 1-caller figure"))
            } else {
                m
            };
            out.push(m);
        }
    }
    Ok(out)
}

async fn store_saves(
    path: &std::path::Path,
    durability: Durability,
    callers: usize,
    duration: Duration,
    states: Arc<Vec<Vec<WorkflowState>>>,
) -> Result<Throughput> {
    let store = Store::open_with(
        path,
        StoreOptions {
            durability,
            ..Default::default()
        },
    )
    .await?;
    let start = Instant::now();
    let deadline = start + duration;
    let mut tasks = Vec::new();
    for c in 0..callers {
        let store = store.clone();
        let states = states.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut k = 0usize;
            while Instant::now() < deadline {
                let t = Instant::now();
                store.save_state(&states[c][k % RUNS_PER_CALLER]).await?;
                latencies.push(t.elapsed());
                k += 1;
            }
            Ok::<_, flowstate_store::StoreError>(latencies)
        }));
    }
    let mut callers = Vec::with_capacity(tasks.len());
    for t in tasks {
        callers.push(t.await??);
    }
    let measured = Throughput::from_callers(start, callers);
    store.close().await;
    Ok(measured)
}

/// Runs `caller(c)` for `c` in `0..callers`, each on a thread of its own, and returns each one's latencies
/// (the first error, or a panic named after `what`, fails the whole).
fn on_threads<F>(callers: usize, what: &str, caller: F) -> Result<Vec<Vec<Duration>>>
where
    F: Fn(usize) -> Result<Vec<Duration>> + Sync,
{
    let caller = &caller;
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..callers).map(|c| scope.spawn(move || caller(c))).collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(format!("a {what} thread panicked").into()))
            })
            .collect()
    })
}

fn raw_saves(
    path: &std::path::Path,
    sync: &str,
    callers: usize,
    duration: Duration,
    rows: &[Vec<Row<'_>>],
) -> Result<Throughput> {
    let start = Instant::now();
    let deadline = start + duration;
    let callers = on_threads(callers, "raw save", |c| {
        let conn = open_raw(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", sync)?;
        let mut stmt = conn.prepare(RAW_UPSERT)?;
        let mut latencies = Vec::new();
        let mut k = 0usize;
        while Instant::now() < deadline {
            let r = &rows[c][k % RUNS_PER_CALLER];
            let t = Instant::now();
            // Stamped at each save, as the store does (and as a runner's saves are): a save moves the run's
            // entries in the indexes on the update time.
            let now = flowstate_store::time::format_timestamp(&Utc::now());
            // ?16: the creation time of a new run (the store's statement takes it apart from updated_at).
            let created: &dyn rusqlite::ToSql = &now;
            stmt.execute(rusqlite::params_from_iter(
                r.columns(&now).into_iter().chain([created]),
            ))?;
            latencies.push(t.elapsed());
            k += 1;
        }
        Ok(latencies)
    })?;
    Ok(Throughput::from_callers(start, callers))
}

// ---------------------------------------------------------------------------------------------------------------
// The bulk load

fn bulk_load_figure(db: &BenchDb) -> Measurement {
    let b = &db.build;
    Measurement::new("bulk_load", db.rows, b.rows_per_sec, "rows/s")
        .higher_is_better(true)
        .extra("file_bytes", b.file_bytes)
        .extra("bytes_per_run", (b.file_bytes as f64 / db.rows.max(1) as f64).round())
        .extra("total_secs", b.total_secs)
        .extra("insert_secs", b.insert_secs)
        .extra("schema_secs", b.schema_secs)
        .extra("finish_secs", b.finish_secs)
        .extra("index_secs", b.index_secs)
        .extra("verify_secs", b.verify_secs)
        .extra("avg_context_bytes", b.avg_context_bytes.round())
        .note(format!(
            "rusqlite, journal off, synchronous off, {} rows per transaction, into the table and indexes the store \
             created ({:?}: the store then recreated its triggers and recounted its counters in {:.1} s); reopened \
             by the store (no migration) and counted. {}",
            report::number(load::CHUNK as f64),
            b.order,
            b.finish_secs,
            if db.fresh {
                "Built in this run.".to_string()
            } else {
                format!("Reused from the cache (built as of {}).", db.as_of.format("%Y-%m-%d %H:%M UTC"))
            }
        ))
}

// ---------------------------------------------------------------------------------------------------------------
// 2. load_state

fn load_state_group(
    rt: &Runtime,
    config: &Config,
    db: &BenchDb,
    store: &Store,
    generator: &Generator,
) -> Result<Vec<Measurement>> {
    // A working set of recently used runs, read once before measuring: point reads of a warm cache, as the
    // issue's raw figure is (at 10M runs the file is far larger than memory, so a cold read is a disk read).
    let ids: Arc<Vec<String>> = {
        let mut rng = SplitMix(0x10AD);
        Arc::new(
            (0..WORKING_SET)
                .map(|_| generator.run_id(rng.below(db.rows)))
                .collect(),
        )
    };
    let t = Instant::now();
    {
        let conn = open_raw(&db.path)?;
        let mut stmt = conn.prepare(&format!(
            "SELECT {ALL_COLUMNS} FROM workflow_state WHERE run_id = ?1"
        ))?;
        for id in ids.iter() {
            fetch_all(&mut stmt, [id])?;
        }
    }
    let warm_secs = t.elapsed().as_secs_f64();
    let mut out = Vec::new();
    for callers in [1, MANY] {
        let s = rt.block_on(store_loads(store, callers, secs(config), ids.clone()))?;
        let r = raw_loads(&db.path, callers, secs(config), &ids)?;
        let name = format!(
            "load_state.{callers}_caller{}",
            if callers > 1 { "s" } else { "" }
        );
        let mut m = Measurement::new(name, db.rows, s.per_sec(), "ops/s")
            .higher_is_better(true)
            .baseline(
                r.per_sec(),
                format!(
                    "raw rusqlite point select of all 15 columns by run_id (prepared), {callers} thread(s) each with its \
                     own connection; JSON columns read as text, not parsed"
                ),
            )
            .extra("p50_ms", s.latencies.median_ms())
            .extra("p99_ms", s.latencies.p99_ms())
            .extra("baseline_p99_ms", r.latencies.p99_ms())
            .extra("working_set", WORKING_SET)
            .extra("warm_up_secs", warm_secs)
            .note(format!(
                "{:.1} s each, random runs of a working set of {} read once before (warm cache); the store returns \
                 a WorkflowState (JSON parsed)",
                config.secs,
                report::number(WORKING_SET as f64)
            ));
        if callers > 1 {
            m = m.goal_at_least(50_000.0, None);
        }
        out.push(m);
    }
    Ok(out)
}

async fn store_loads(
    store: &Store,
    callers: usize,
    duration: Duration,
    ids: Arc<Vec<String>>,
) -> Result<Throughput> {
    // Warm up: the pool's connections open, the pages of a few rows are read.
    for id in ids.iter().take(200) {
        store.load_state(id).await?;
    }
    let start = Instant::now();
    let deadline = start + duration;
    let mut tasks = Vec::new();
    for c in 0..callers {
        let store = store.clone();
        let ids = ids.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut k = c * 7919;
            while Instant::now() < deadline {
                let id = &ids[k % ids.len()];
                let t = Instant::now();
                let run = store.load_state(id).await?;
                latencies.push(t.elapsed());
                if run.is_none() {
                    return Err(format!("run {id} should exist").into());
                }
                k += 1;
            }
            Ok::<_, flowstate_bench::Error>(latencies)
        }));
    }
    let mut callers = Vec::with_capacity(tasks.len());
    for t in tasks {
        callers.push(t.await??);
    }
    Ok(Throughput::from_callers(start, callers))
}

fn raw_loads(
    path: &std::path::Path,
    callers: usize,
    duration: Duration,
    ids: &[String],
) -> Result<Throughput> {
    let sql = format!("SELECT {ALL_COLUMNS} FROM workflow_state WHERE run_id = ?1");
    {
        let conn = open_raw(path)?;
        let mut stmt = conn.prepare(&sql)?;
        for id in ids.iter().take(200) {
            fetch_all(&mut stmt, [id])?;
        }
    }
    let start = Instant::now();
    let deadline = start + duration;
    let callers = on_threads(callers, "raw load", |c| {
        let conn = open_raw(path)?;
        let mut stmt = conn.prepare(&sql)?;
        let mut latencies = Vec::new();
        let mut k = c * 7919;
        while Instant::now() < deadline {
            let id = &ids[k % ids.len()];
            let t = Instant::now();
            let n = fetch_all(&mut stmt, [id])?;
            latencies.push(t.elapsed());
            if n != 1 {
                return Err(format!("run {id} should exist").into());
            }
            k += 1;
        }
        Ok(latencies)
    })?;
    Ok(Throughput::from_callers(start, callers))
}

// ---------------------------------------------------------------------------------------------------------------
// 3. get_workflow_stats

fn stats_group(rt: &Runtime, config: &Config, db: &BenchDb, store: &Store) -> Result<Vec<Measurement>> {
    let budget = Budget::secs(config.secs);
    let stats = rt.block_on(store.get_workflow_stats())?;
    let s = rt.block_on(sample_async(budget, || store.get_workflow_stats()))?;
    let conn = open_raw(&db.path)?;
    let now = sqlite_now(db.as_of);
    let r = sample_sync(budget, || -> rusqlite::Result<f64> {
        // flujo's get_workflow_stats: four separate queries.
        let total: i64 = conn.query_row("SELECT COUNT(*) FROM workflow_state", [], |r| r.get(0))?;
        let mut stmt = conn.prepare_cached("SELECT status, COUNT(*) FROM workflow_state GROUP BY status")?;
        let groups = fetch_all(&mut stmt, [])?;
        let recent: i64 = conn.query_row(
            "SELECT COUNT(*) FROM workflow_state WHERE created_at >= datetime(?1, '-24 hours')",
            [&now],
            |r| r.get(0),
        )?;
        let avg: Option<f64> = conn.query_row(
            "SELECT AVG(execution_time_ms) FROM workflow_state WHERE execution_time_ms IS NOT NULL",
            [],
            |r| r.get(0),
        )?;
        Ok(total as f64 + groups as f64 + recent as f64 + avg.unwrap_or(0.0))
    })?;
    Ok(vec![latency(
        "get_workflow_stats",
        db.rows,
        &s,
        &r,
        "raw rusqlite, flujo's four queries: COUNT(*), GROUP BY status, COUNT(*) of the last 24 h on the created_at \
         text, AVG(execution_time_ms)",
        2.0,
    )
    .extra("total_workflows", stats.total_workflows)
    .extra("recent_workflows_24h", stats.recent_workflows_24h)
    .note("median of repeated calls on a warm cache; total, per status, created in the last 24 h, average time")])
}

// ---------------------------------------------------------------------------------------------------------------
// 4. list_workflows

struct ListCase {
    label: &'static str,
    statuses: Vec<Status>,
    pipeline: Option<&'static str>,
}

impl ListCase {
    fn query(&self) -> ListQuery {
        ListQuery {
            statuses: self.statuses.clone(),
            pipeline_id: self.pipeline.map(str::to_string),
            limit: Some(PAGE),
            ..Default::default()
        }
    }

    /// flujo's WHERE clause and its parameters.
    fn flujo_filter(&self) -> (String, Vec<String>) {
        let mut sql = String::from("WHERE 1=1");
        let mut params = Vec::new();
        if let Some(s) = self.statuses.first() {
            params.push(s.as_str().to_string());
            sql.push_str(&format!(" AND status = ?{}", params.len()));
        }
        if let Some(p) = self.pipeline {
            params.push(p.to_string());
            sql.push_str(&format!(" AND pipeline_id = ?{}", params.len()));
        }
        (sql, params)
    }

    fn describe(&self) -> String {
        match (self.statuses.first(), self.pipeline) {
            (None, None) => "no filter".into(),
            (Some(s), None) => format!("status = {s}"),
            (Some(s), Some(p)) => format!("pipeline = {p}, status = {s}"),
            (None, Some(p)) => format!("pipeline = {p}"),
        }
    }
}

fn list_group(rt: &Runtime, config: &Config, db: &BenchDb, store: &Store) -> Result<Vec<Measurement>> {
    let budget = Budget::secs(config.secs);
    let conn = open_raw(&db.path)?;
    let cases = [
        ListCase {
            label: "unfiltered",
            statuses: vec![],
            pipeline: None,
        },
        ListCase {
            label: "status",
            statuses: vec![Status::Failed],
            pipeline: None,
        },
        ListCase {
            label: "pipeline_status",
            statuses: vec![Status::Completed],
            pipeline: Some("customer-support-triage"),
        },
    ];
    let mut out = Vec::new();
    for case in &cases {
        let (filter, params) = case.flujo_filter();
        let matched: i64 = conn.query_row(
            &format!("SELECT COUNT(*) FROM workflow_state {filter}"),
            rusqlite::params_from_iter(params.iter()),
            |r| r.get(0),
        )?;
        let flujo_sql = format!(
            "SELECT {FLUJO_LIST_COLUMNS} FROM workflow_state {filter} ORDER BY created_at DESC LIMIT ?{} OFFSET ?{}",
            params.len() + 1,
            params.len() + 2
        );
        let raw_page = |offset: u64| -> Result<Samples> {
            let mut stmt = conn.prepare(&flujo_sql)?;
            let mut p: Vec<rusqlite::types::Value> = params.iter().map(|s| s.clone().into()).collect();
            p.push(i64::from(PAGE).into());
            p.push((offset as i64).into());
            sample_sync(budget, || {
                fetch_all(&mut stmt, rusqlite::params_from_iter(p.iter()))
            })
        };

        // The first page.
        let q = case.query();
        let first = rt.block_on(store.list_workflows(&q))?;
        let s = rt.block_on(sample_async(budget, || store.list_workflows(&q)))?;
        let r = raw_page(0)?;
        out.push(
            latency(
                &format!("list_workflows.first_page.{}", case.label),
                db.rows,
                &s,
                &r,
                &format!(
                    "raw rusqlite, flujo's list query: {}, ORDER BY created_at DESC LIMIT {PAGE}",
                    case.describe()
                ),
                3.0,
            )
            .extra("matched_rows", matched)
            .extra("returned", first.runs.len() as u64)
            .note(format!("{}; {PAGE} runs per page", case.describe())),
        );

        // Page 10,000 (or the last page, when there are fewer), reached with a keyset cursor.
        let pages = (matched.max(0) as u64).div_ceil(u64::from(PAGE));
        let page = DEEP_PAGE.min(pages);
        if page < 2 {
            continue;
        }
        let offset = (page - 1) * u64::from(PAGE);
        // The cursor of the row just before the page: a real cursor from the store, found once with an offset.
        let t = Instant::now();
        let before = rt.block_on(store.list_workflows(&ListQuery {
            limit: Some(1),
            offset: Some(offset - 1),
            ..case.query()
        }))?;
        let cursor_ms = t.elapsed().as_secs_f64() * 1e3;
        let cursor = before
            .next_cursor
            .ok_or("the row before the deep page should have a next cursor")?;
        let q = ListQuery {
            cursor: Some(cursor),
            ..case.query()
        };
        let deep = rt.block_on(store.list_workflows(&q))?;
        // Both read the same rows (the bench's timestamps are unique and spelled alike, so flujo's text order is
        // the store's instant order).
        let mut check = conn.prepare(&flujo_sql)?;
        let mut p: Vec<rusqlite::types::Value> = params.iter().map(|s| s.clone().into()).collect();
        p.push(1i64.into());
        p.push((offset as i64).into());
        let raw_first: String = check.query_row(rusqlite::params_from_iter(p.iter()), |r| r.get(0))?;
        if deep.runs.first().map(|r| r.run_id.as_str()) != Some(raw_first.as_str()) {
            eprintln!(
                "warning: page {page} ({}) starts with {:?} in the store and {raw_first:?} in flujo's query",
                case.label,
                deep.runs.first().map(|r| &r.run_id)
            );
        }
        let s = rt.block_on(sample_async(budget, || store.list_workflows(&q)))?;
        let r = raw_page(offset)?;
        let mut m = latency(
            &format!("list_workflows.page_10000.{}", case.label),
            db.rows,
            &s,
            &r,
            &format!(
                "raw rusqlite, flujo's list query: {}, ORDER BY created_at DESC LIMIT {PAGE} OFFSET {}",
                case.describe(),
                report::number(offset as f64)
            ),
            3.0,
        )
        .extra("page", page)
        .extra("matched_rows", matched)
        .extra("returned", deep.runs.len() as u64)
        .extra("cursor_by_offset_ms", cursor_ms);
        m = m.note(if page == DEEP_PAGE {
            format!("{}; page 10,000 through its keyset cursor", case.describe())
        } else {
            format!(
                "{}; page {} (the last: fewer than 10,000 pages at this size) through its keyset cursor",
                case.describe(),
                report::number(page as f64)
            )
        });
        out.push(m);
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------------------------
// 5. Failed runs and failure groups of the last 24 hours

fn failed_group(rt: &Runtime, config: &Config, db: &BenchDb, store: &Store) -> Result<Vec<Measurement>> {
    let budget = Budget::secs(config.secs);
    let conn = open_raw(&db.path)?;
    let now = sqlite_now(db.as_of);
    let since = db.as_of - chrono::Duration::hours(24);
    let mut out = Vec::new();

    let failed = rt.block_on(store.get_failed_workflows(24, PAGE))?;
    let s = rt.block_on(sample_async(budget, || store.get_failed_workflows(24, PAGE)))?;
    let mut stmt = conn.prepare(&format!(
        "SELECT {FLUJO_LIST_COLUMNS} FROM workflow_state WHERE status = 'failed' \
         AND updated_at >= datetime(?1, '-24 hours') ORDER BY updated_at DESC LIMIT {PAGE}"
    ))?;
    let r = sample_sync(budget, || fetch_all(&mut stmt, [&now]))?;
    let in_window: i64 = rt.block_on(store.count_failed_since(since))?;
    out.push(
        latency(
            "get_failed_workflows.24h",
            db.rows,
            &s,
            &r,
            &format!(
                "raw rusqlite, flujo's query: status = 'failed' AND updated_at >= datetime('now', '-24 hours') \
                 ORDER BY updated_at DESC, with LIMIT {PAGE} added (flujo's has none)"
            ),
            20.0,
        )
        .extra("failed_in_window", in_window)
        .extra("returned", failed.len() as u64)
        .note(format!("the newest {PAGE} runs that failed in the last 24 h")),
    );

    let groups = rt.block_on(store.failure_groups(since))?;
    let s = rt.block_on(sample_async(budget, || store.failure_groups(since)))?;
    let mut stmt = conn.prepare(
        "SELECT error_message, COUNT(*), MIN(updated_at), MAX(updated_at) FROM workflow_state \
         WHERE status = 'failed' AND updated_at >= datetime(?1, '-24 hours') GROUP BY error_message \
         ORDER BY COUNT(*) DESC",
    )?;
    let r = sample_sync(budget, || fetch_all(&mut stmt, [&now]))?;
    out.push(
        latency(
            "failure_groups.24h",
            db.rows,
            &s,
            &r,
            "raw rusqlite, flujo-style: failed runs of the last 24 h (updated_at text against datetime('now', \
             '-24 hours')) GROUP BY the exact error_message (flujo has no grouping)",
            20.0,
        )
        .extra("failed_in_window", groups.total_failed)
        .extra("groups", groups.groups.len() as u64)
        .extra("truncated", groups.truncated)
        .note("every failure of the last 24 h grouped by error signature, with samples"),
    );
    Ok(out)
}

// ---------------------------------------------------------------------------------------------------------------
// 5b. The Pipelines page (issue 15): figures per pipeline over a window, and trends

/// From this many runs on, the Pipelines figures' baselines are a reference of the machine's speed (the unscoped
/// failure groups of the last 24 hours, as the triage figures') instead of flujo-style `GROUP BY`s over the window:
/// at 10M runs those read a 50 GB file that does not fit in memory at random, tens to hundreds of gigabytes a
/// call, and did not finish in an hour. `FLOWSTATE_BENCH_FULL_BASELINES=1` runs them at any size.
const GROUP_BY_BASELINES_UP_TO: u64 = 5_000_000;

fn pipelines_group(rt: &Runtime, config: &Config, db: &BenchDb, store: &Store) -> Result<Vec<Measurement>> {
    let budget = Budget::secs(config.secs);
    let conn = open_raw(&db.path)?;
    let now = sqlite_now(db.as_of);
    let full = db.rows <= GROUP_BY_BASELINES_UP_TO
        || std::env::var("FLOWSTATE_BENCH_FULL_BASELINES").is_ok_and(|v| v == "1");
    let reference =
        "failure_groups of the last 24 h, same run (a reference of the machine's speed: the GROUP BY \
                     baselines read the whole file at this size; FLOWSTATE_BENCH_FULL_BASELINES=1 runs them)";
    let day = db.as_of - chrono::Duration::hours(24);
    let mut out = Vec::new();
    for (label, hours) in [("24h", 24i64), ("7d", 24 * 7), ("30d", 24 * 30)] {
        let since = db.as_of - chrono::Duration::hours(hours);
        let report = rt.block_on(store.pipeline_report(since))?;
        let s = rt.block_on(sample_async(budget, || store.pipeline_report(since)))?;
        let (r, what) = if full {
            let mut stmt = conn.prepare(&format!(
                "SELECT pipeline_id, status, COUNT(*), AVG(execution_time_ms), AVG(memory_usage_mb), \
                 MAX(memory_usage_mb) FROM workflow_state WHERE updated_at >= datetime(?1, '-{hours} hours') \
                 GROUP BY pipeline_id, status"
            ))?;
            (
                sample_sync(budget, || fetch_all(&mut stmt, [&now]))?,
                "raw rusqlite: GROUP BY pipeline_id, status over the window on the updated_at text (counts, mean \
                 time, mean and max memory; no percentiles)",
            )
        } else {
            (
                rt.block_on(sample_async(budget, || store.failure_groups(day)))?,
                reference,
            )
        };
        let runs: i64 = report.pipelines.iter().map(|p| p.runs).sum();
        out.push(
            latency(&format!("pipeline_report.{label}"), db.rows, &s, &r, what, 20.0)
                .extra("pipelines", report.pipelines.len() as u64)
                .extra("runs_in_window", runs)
                .note("every pipeline's figures over the window (counters of schema 4, one index step per pipeline)"),
        );
    }
    for days in [7u32, 30, 90] {
        let trend = rt.block_on(store.pipeline_trend(days, None))?;
        let s = rt.block_on(sample_async(budget, || store.pipeline_trend(days, None)))?;
        let (r, what) = if full {
            let mut stmt = conn.prepare(&format!(
                "SELECT date(updated_at), status, COUNT(*) FROM workflow_state \
                 WHERE updated_at >= datetime(?1, '-{} days') GROUP BY 1, 2",
                2 * days
            ))?;
            (
                sample_sync(budget, || fetch_all(&mut stmt, [&now]))?,
                "raw rusqlite: runs per day and status over both periods, GROUP BY date(updated_at) (no p95)",
            )
        } else {
            (
                rt.block_on(sample_async(budget, || store.failure_groups(day)))?,
                reference,
            )
        };
        out.push(
            latency(&format!("pipeline_trend.{days}d"), db.rows, &s, &r, what, 20.0)
                .extra("runs_this_period", trend.current.runs)
                .note("all pipelines: per day and per period, runs by status, failure rate, p95"),
        );
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------------------------
// 6. Cleanup of old runs, with a writer saving meanwhile

fn cleanup_group(
    rt: &Runtime,
    config: &Config,
    db: &BenchDb,
    generator: &Generator,
) -> Result<Vec<Measurement>> {
    // 1M of 10M: a tenth of the table, at every size (FLOWSTATE_BENCH_CLEANUP_ROWS for a quicker run).
    let (target, how_many) = match std::env::var("FLOWSTATE_BENCH_CLEANUP_ROWS") {
        Ok(v) if !v.trim().is_empty() => {
            let asked = match flowstate_bench::parse_sizes(&v)?[..] {
                [one] => one,
                _ => 0,
            };
            if asked == 0 || asked > db.rows {
                return Err(format!(
                    "FLOWSTATE_BENCH_CLEANUP_ROWS must be between 1 and {}, got {v}",
                    db.rows
                )
                .into());
            }
            (asked, "as many as FLOWSTATE_BENCH_CLEANUP_ROWS asked")
        }
        _ => ((db.rows / 10).max(1), "a tenth of the table: 1M at 10M"),
    };
    let terminal: u32 = STATUS_MIX
        .iter()
        .filter(|(s, _)| s.is_terminal())
        .map(|(_, w)| w)
        .sum();
    let total: u32 = STATUS_MIX.iter().map(|(_, w)| w).sum();
    let share = f64::from(terminal) / f64::from(total);
    // Rows are spread evenly in time: the terminal runs before this instant are about `target`.
    let fraction = (target as f64 / (db.rows as f64 * share)).min(1.0);
    let first_us = generator.created_us(0, 0.0);
    let as_of_us = flowstate_store::time::instant_micros(&db.as_of);
    let cutoff_us = first_us + ((as_of_us - first_us) as f64 * fraction) as i64;
    let cutoff = flowstate_store::time::from_micros(cutoff_us).ok_or("cutoff out of range")?;
    // The clock stands one day after the cutoff, and the policy deletes terminal runs idle for over a day.
    let clock_at = cutoff + chrono::Duration::days(1);
    let policy = CleanupPolicy::older_than_days(1);

    let size = std::fs::metadata(&db.path)?.len();
    let scratch = flowstate_bench::bench_dir().join("tmp");
    std::fs::create_dir_all(&scratch)?;
    let room = load::free_bytes(&scratch).unwrap_or(0);
    // FLOWSTATE_BENCH_CLEANUP_IN_PLACE=1 takes the in-place path even when a copy would fit (to test it).
    let forced = std::env::var("FLOWSTATE_BENCH_CLEANUP_IN_PLACE").is_ok_and(|v| v == "1");
    let on_copy = !forced && room > size + size / 10 + (1 << 30);
    let path = if on_copy {
        let copy = scratch.join(format!("cleanup-{}.db", db.rows));
        load::remove_db(&copy);
        println!("cleanup: copying the database ({:.2} GB)", size as f64 / 1e9);
        std::fs::copy(&db.path, &copy)?;
        copy
    } else {
        println!(
            "cleanup: {} ({:.1} GB free, the database is {:.1} GB): cleaning the cached database in place, then \
             restoring the deleted rows",
            if forced { "in place as asked" } else { "no room for a copy" },
            room as f64 / 1e9,
            size as f64 / 1e9
        );
        std::fs::write(load::dirty_marker(&db.path), b"cleanup in progress\n")?;
        db.path.clone()
    };

    // Start from a clean disk: whatever an earlier step left unwritten in the page cache (a restore writes with
    // synchronous OFF) would otherwise be written back during the measurement and slow its fsyncs.
    std::fs::File::open(&path)?.sync_all()?;
    println!("cleanup: dirty page cache before the cleanup: {} kB", dirty_kb());
    let saver_state = {
        let mut s = generator.row(0).to_state();
        s.created_at = None;
        s.updated_at = None;
        s
    };
    let baseline_secs = config.secs.min(3.0);
    let result = rt.block_on(async {
        let store = Store::open_with(
            &path,
            StoreOptions {
                clock: Arc::new(flowstate_store::FixedClock::new(clock_at)),
                ..Default::default()
            },
        )
        .await?;
        let t = Instant::now();
        let preview = store.preview_cleanup(&policy).await?;
        let preview_ms = t.elapsed().as_secs_f64() * 1e3;

        // The writer alone first: its normal latencies.
        let stop = Arc::new(AtomicBool::new(false));
        let alone = tokio::spawn(saver(store.clone(), saver_state.clone(), 0, stop.clone()));
        tokio::time::sleep(Duration::from_secs_f64(baseline_secs)).await;
        stop.store(true, Ordering::SeqCst);
        let (alone, next) = alone.await??;
        let alone = Samples::new(alone.into_iter().map(|s| s.1));

        // Then the writer during the cleanup, with SQLite's checkpoints watched.
        let watch = CheckpointWatch::start(&path);
        let stop = Arc::new(AtomicBool::new(false));
        let during = tokio::spawn(saver(store.clone(), saver_state.clone(), next, stop.clone()));
        let t = Instant::now();
        let deleted = store.cleanup_old_workflows(&policy).await?;
        let cleanup_secs = t.elapsed().as_secs_f64();
        stop.store(true, Ordering::SeqCst);
        let (during, _) = during.await??;
        let checkpoints = watch.finish();
        print_slowest_saves(&during, &checkpoints);
        let during = Samples::new(during.into_iter().map(|s| s.1));
        store.close().await;
        Ok::<_, flowstate_bench::Error>((preview.matched, preview_ms, alone, during, deleted, cleanup_secs))
    });

    // Put the database back as it was, whatever happened.
    if on_copy {
        load::remove_db(&path);
    } else {
        restore_after_cleanup(rt, db, generator, cutoff_us)?;
    }
    let (matched, preview_ms, alone, during, deleted, cleanup_secs) = result?;

    let how = if on_copy {
        "on a copy of the database"
    } else {
        "in place (no room for a copy, or FLOWSTATE_BENCH_CLEANUP_IN_PLACE=1), the rows restored afterwards"
    };
    Ok(vec![
        Measurement::new("cleanup_old_workflows", db.rows, deleted as f64 / cleanup_secs.max(1e-9), "rows/s")
            .higher_is_better(true)
            .extra("rows_deleted", deleted)
            .extra("preview_matched", matched)
            .extra("preview_ms", preview_ms)
            .extra("secs", cleanup_secs)
            .note(format!(
                "deleting the oldest terminal runs, {} rows ({how_many}), in the store's \
                 batches, while one writer saves; {how}",
                report::number(deleted as f64)
            )),
        Measurement::new("cleanup_old_workflows.save_stall", db.rows, during.max_ms(), "ms")
            .higher_is_better(false)
            .baseline(
                alone.max_ms(),
                format!("the same writer's longest save in {baseline_secs:.1} s without a cleanup"),
            )
            .goal_at_most(50.0)
            .extra("p50_ms", during.median_ms())
            .extra("p99_ms", during.p99_ms())
            .extra("p999_ms", during.percentile_ms(99.9))
            .extra("saves_over_50_ms", during.count_over_ms(50.0))
            .extra("saves", during.len() as u64)
            .extra("baseline_p99_ms", alone.p99_ms())
            .note(
                "the longest save_state (synchronous FULL, same store) while the cleanup ran: one writer saving new \
                 runs back to back",
            ),
    ])
}

/// Saves new runs back to back until `stop`, returning when each save started and how long it took, and the
/// next run number.
async fn saver(
    store: Store,
    template: WorkflowState,
    first: u64,
    stop: Arc<AtomicBool>,
) -> Result<(Vec<(Instant, Duration)>, u64)> {
    let mut saves = Vec::new();
    let mut k = first;
    let mut state = template;
    while !stop.load(Ordering::SeqCst) {
        state.run_id = format!("bench-cleanup-{k}");
        let t = Instant::now();
        store.save_state(&state).await?;
        saves.push((t, t.elapsed()));
        k += 1;
    }
    Ok((saves, k))
}

/// The kernel's dirty page cache (`Dirty` of /proc/meminfo), in kB; 0 where it cannot be read.
fn dirty_kb() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("Dirty:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// Watches SQLite's checkpoints from outside: a thread reads the WAL index (`-shm`) every millisecond and
/// notes each change of `nBackfill` (the WAL frames copied into the database so far), so a slow save can be
/// matched with the checkpoint it waited for.
struct CheckpointWatch {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Watched>,
}

/// What a [`CheckpointWatch`] saw: each change of `nBackfill` (when, `mxFrame`, `nBackfill`), and the dirty page
/// cache every 10 ms (when, kB).
#[derive(Default)]
struct Watched {
    checkpoints: Vec<(Instant, u32, u32)>,
    dirty: Vec<(Instant, u64)>,
}

impl CheckpointWatch {
    fn start(db: &std::path::Path) -> CheckpointWatch {
        let shm = std::path::PathBuf::from(format!("{}-shm", db.display()));
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            use std::io::{Read, Seek};
            let mut seen = Vec::new();
            let mut last = None;
            let mut buf = [0u8; 100];
            let mut dirty = Vec::new();
            let mut tick = 0u64;
            while !flag.load(Ordering::Relaxed) {
                if tick % 10 == 0 {
                    dirty.push((Instant::now(), dirty_kb()));
                }
                tick += 1;
                let read = std::fs::File::open(&shm).and_then(|mut f| {
                    f.seek(std::io::SeekFrom::Start(0))?;
                    f.read_exact(&mut buf)
                });
                if read.is_ok() {
                    // WalIndexHdr.mxFrame at 16; WalCkptInfo.nBackfill at 96 (native byte order).
                    let max_frame = u32::from_ne_bytes(buf[16..20].try_into().unwrap_or_default());
                    let backfill = u32::from_ne_bytes(buf[96..100].try_into().unwrap_or_default());
                    if last != Some(backfill) {
                        seen.push((Instant::now(), max_frame, backfill));
                        last = Some(backfill);
                    }
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            Watched {
                checkpoints: seen,
                dirty,
            }
        });
        CheckpointWatch { stop, thread }
    }

    fn finish(self) -> Watched {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap_or_default()
    }
}

/// The slowest saves of a cleanup, each with the checkpoint progress seen while it waited.
fn print_slowest_saves(saves: &[(Instant, Duration)], Watched { checkpoints, dirty }: &Watched) {
    let epoch = *STARTED.get_or_init(Instant::now);
    let mut slow: Vec<_> = saves.to_vec();
    slow.sort_by_key(|s| std::cmp::Reverse(s.1));
    let advanced = checkpoints.windows(2).filter(|w| w[1].2 > w[0].2).count();
    println!(
        "cleanup: {} saves, {} checkpoint steps seen, dirty page cache at most {} kB; the slowest saves:",
        saves.len(),
        advanced,
        dirty.iter().map(|d| d.1).max().unwrap_or(0)
    );
    for (start, took) in slow.iter().take(12) {
        let end = *start + *took;
        let during: Vec<String> = checkpoints
            .iter()
            .filter(|c| c.0 >= *start && c.0 <= end + Duration::from_millis(2))
            .map(|c| {
                format!(
                    "+{:.1} ms frames {} backfilled {}",
                    c.0.saturating_duration_since(*start).as_secs_f64() * 1e3,
                    c.1,
                    c.2
                )
            })
            .collect();
        let dirty_then = dirty.iter().rev().find(|d| d.0 <= *start).map_or(0, |d| d.1);
        println!(
            "  at {:>9.3} s: {:>7.1} ms  (dirty {dirty_then} kB) {}",
            start.duration_since(epoch).as_secs_f64(),
            took.as_secs_f64() * 1e3,
            during.join("; ")
        );
    }
}

/// After an in-place cleanup: removes the writer's runs and inserts the deleted rows again (they are
/// regenerated exactly), so the cached database holds the same runs as before.
fn restore_after_cleanup(rt: &Runtime, db: &BenchDb, generator: &Generator, cutoff_us: i64) -> Result<()> {
    let t = Instant::now();
    let conn = open_raw(&db.path)?;
    conn.pragma_update(None, "synchronous", "OFF")?;
    conn.pragma_update(None, "cache_size", -1_048_576i64)?;
    conn.execute(
        "DELETE FROM workflow_state WHERE run_id LIKE 'bench-cleanup-%'",
        [],
    )?;
    // Every deleted row was created before the cutoff.
    let mut end = 0u64;
    while end < db.rows && generator.created_us(end, 0.0) < cutoff_us {
        end += 1;
    }
    load::insert_rows(&conn, generator, 0..end, true, true)?;
    let count: i64 = conn.query_row("SELECT COUNT(*) FROM workflow_state", [], |r| r.get(0))?;
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    drop(conn);
    // The store must find it as before: nothing to migrate, its counters counting every row.
    let counted = rt.block_on(async {
        let store = Store::open(&db.path).await?;
        let noop = store.migration().is_noop();
        let stats = store.get_workflow_stats().await?;
        store.close().await;
        Ok::<_, flowstate_bench::Error>((noop, stats.total_workflows))
    })?;
    if count != db.rows as i64 || counted != (true, db.rows as i64) {
        return Err(format!(
            "restoring the cached database left {count} rows (the store: {counted:?}) instead of {}; it will be \
             rebuilt next time",
            db.rows
        )
        .into());
    }
    std::fs::remove_file(load::dirty_marker(&db.path))?;
    println!(
        "cleanup: restored the cached database in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    Ok(())
}
