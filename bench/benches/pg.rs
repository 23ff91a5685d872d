//! The PostgreSQL bench: the store's figures on PostgreSQL, each beside flujo's own PostgreSQL queries or a raw
//! prepared `INSERT ... ON CONFLICT` (sqlx) measured in the same run, on the same server.
//!
//! ```text
//! FLOWSTATE_BENCH_PG=postgres://user@host:port/postgres cargo bench -p flowstate-bench --bench pg -- --rows 1M
//! cargo bench -p flowstate-bench --bench pg -- --pg postgres://... --rows 1M,10M save stats   # some groups
//! ```
//!
//! Without a server it prints `SKIPPED` and succeeds (`cargo make bench` runs it always). Groups: `save` (1, 16
//! and 64 writers on small databases of their own: `Store::save_state` beside flujo's upsert on flujo's plain
//! table), then per size `load` (the bulk load), `load_state`, `stats`, `list`, `failed` (with the failure groups
//! and stuck runs), `cleanup` (with 16 writers saving meanwhile; the deleted rows are put back afterwards). Figures
//! are named `pg.*` in `target/bench/flowstate.json`, beside SQLite's.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use flowstate_bench::generate::{Generator, Row, SplitMix, STATUS_MIX};
use flowstate_bench::pg::{self, PgBenchDb};
use flowstate_bench::report::{self, Measurement};
use flowstate_bench::sample::{cpu_secs, sample_async, Budget, Samples};
use flowstate_bench::{Config, Result};
use flowstate_store::{CleanupPolicy, ListQuery, Status, Store, StoreOptions, WorkflowState};
use sqlx::{Connection, PgConnection, Row as _};
use tokio::runtime::Runtime;

/// Rows of the databases the save benches write into (a fresh copy for each measurement).
const SAVE_DB_ROWS: u64 = 10_000;
/// Writer connections of the save figures.
const WRITERS: [usize; 3] = [1, 16, 64];
/// Saves of one run: `SAVES_PER_RUN - 1` progress saves (running, the step advancing), then its end.
const SAVES_PER_RUN: u64 = 5;
/// Runs the load_state figures read (at random).
const WORKING_SET: u64 = 20_000;
/// Page size of the list benches (the store's default).
const PAGE: u32 = ListQuery::DEFAULT_LIMIT;
/// The deep page of the list benches.
const DEEP_PAGE: u64 = 10_000;
/// Writers saving during the cleanup.
const CLEANUP_WRITERS: usize = 16;
/// The cleanup figure's parts: the writers alone, a part of the cleanup, this many times, then alone once more.
const CLEANUP_ROUNDS: usize = 3;
/// How often the cleanup figure's sampler looks at the writers' lock waits.
const LOCK_POLL: Duration = Duration::from_millis(10);
/// `application_name` of the cleanup figure's writers and of its cleanup.
const WRITERS_APP: &str = "flowstate-bench-writers";
const CLEANUP_APP: &str = "flowstate-bench-cleanup";
/// Columns flujo's list queries return.
const FLUJO_LIST_COLUMNS: &str =
    "run_id, pipeline_id, pipeline_name, pipeline_version, current_step_index, status, \
    created_at, updated_at, total_steps, error_message, execution_time_ms, memory_usage_mb";

/// flujo's save: every column but run_id and created_at replaced on conflict. `$1..$20` in flujo's order.
const FLUJO_UPSERT: &str = "INSERT INTO workflow_state (run_id, pipeline_id, pipeline_name, pipeline_version, \
    current_step_index, pipeline_context, last_step_output, step_history, status, created_at, updated_at, \
    total_steps, error_message, execution_time_ms, memory_usage_mb, metadata, is_background_task, parent_run_id, \
    task_id, background_error) VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7::jsonb, $8::jsonb, $9, $10, $11, $12, $13, \
    $14, $15, $16::jsonb, $17, $18, $19, $20) ON CONFLICT (run_id) DO UPDATE SET pipeline_id = excluded.pipeline_id, \
    pipeline_name = excluded.pipeline_name, pipeline_version = excluded.pipeline_version, \
    current_step_index = excluded.current_step_index, pipeline_context = excluded.pipeline_context, \
    last_step_output = excluded.last_step_output, step_history = excluded.step_history, status = excluded.status, \
    updated_at = excluded.updated_at, total_steps = excluded.total_steps, error_message = excluded.error_message, \
    execution_time_ms = excluded.execution_time_ms, memory_usage_mb = excluded.memory_usage_mb, \
    metadata = excluded.metadata, is_background_task = excluded.is_background_task, \
    parent_run_id = excluded.parent_run_id, task_id = excluded.task_id, background_error = excluded.background_error";

fn main() {
    if let Err(e) = run() {
        eprintln!("bench pg: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<()> {
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_ansi(false)
            .with_writer(std::io::stderr)
            .init();
    }
    let config = Config::from_env_and_args(std::env::args().skip(1))?;
    let Some(server) = config.pg.clone() else {
        println!(
            "SKIPPED bench pg: no PostgreSQL server (set FLOWSTATE_BENCH_PG=postgres://... or pass --pg URL; \
             scripts/pg-server.sh start DIR starts one)"
        );
        return Ok(());
    };
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
    let version: String = rt.block_on(async {
        let mut c = PgConnection::connect(&server).await?;
        sqlx::query_scalar::<_, String>("SHOW server_version")
            .fetch_one(&mut c)
            .await
    })?;
    println!(
        "flowstate PostgreSQL bench: PostgreSQL {version}, sizes {:?}, {} s per measurement, groups {}",
        config.rows,
        config.secs,
        if config.only.is_empty() {
            "all".to_string()
        } else {
            config.only.join(", ")
        }
    );

    if config.wants("save") {
        keep(rt.block_on(save_group(&config, &server))?)?;
    }
    for &rows in &config.rows {
        let db = rt.block_on(pg::ensure(&server, rows))?;
        let store = rt.block_on(Store::open_with(&db.url, db.store_options(8)))?;
        let generator = db.generator();
        if config.wants("load") {
            keep(vec![bulk_load_figure(&db)])?;
        }
        if config.wants("load_state") {
            keep(rt.block_on(load_state_group(&config, &db, &store, &generator))?)?;
        }
        if config.wants("stats") {
            keep(rt.block_on(stats_group(&config, &db, &store))?)?;
        }
        if config.wants("list") {
            keep(rt.block_on(list_group(&config, &db, &store))?)?;
        }
        if config.wants("list_sorts") {
            keep(rt.block_on(flowstate_bench::lists::sort_group(
                &store,
                config.secs,
                db.rows,
                "pg.",
            ))?)?;
        }
        if config.wants("failed") || config.wants("failure") || config.wants("stuck") {
            keep(rt.block_on(failed_group(&config, &db, &store))?)?;
        }
        if config.wants("triage") {
            keep(rt.block_on(flowstate_bench::triage::triage_group(
                &store,
                config.secs,
                db.rows,
                "pg.",
            ))?)?;
        }
        if config.wants("pipelines") {
            keep(rt.block_on(pipelines_group(&config, &db, &store))?)?;
        }
        rt.block_on(store.close());
        if config.wants("cleanup") {
            keep(cleanup_group(&rt, &config, &db, &generator)?)?;
        }
    }
    println!("== all PostgreSQL figures of this run ==");
    print!("{}", report::table(&all));
    println!("\nwritten to {}", path.display());
    Ok(())
}

// ---------------------------------------------------------------------------------------------------------------
// Helpers

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

/// Times a raw query (fetching every row) repeatedly within `budget`.
async fn sample_raw(
    budget: Budget,
    conn: &mut PgConnection,
    sql: &str,
    bind: impl Fn(
        sqlx::query::Query<'_, sqlx::Postgres, sqlx::postgres::PgArguments>,
    ) -> sqlx::query::Query<'_, sqlx::Postgres, sqlx::postgres::PgArguments>,
) -> Result<Samples> {
    let conn = tokio::sync::Mutex::new(conn);
    sample_async(budget, || async {
        let mut c = conn.lock().await;
        bind(sqlx::query(sql)).fetch_all(&mut **c).await.map(|r| r.len())
    })
    .await
}

async fn admin(server: &str) -> Result<PgConnection> {
    Ok(PgConnection::connect(server).await?)
}

async fn create_database(server: &str, name: &str, template: Option<&str>) -> Result<String> {
    let mut c = admin(server).await?;
    sqlx::raw_sql(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        .execute(&mut c)
        .await?;
    let with = template.map(|t| format!(" TEMPLATE \"{t}\"")).unwrap_or_default();
    sqlx::raw_sql(&format!("CREATE DATABASE \"{name}\"{with}"))
        .execute(&mut c)
        .await?;
    pg::with_database(server, name)
}

async fn drop_database(server: &str, name: &str) -> Result<()> {
    let mut c = admin(server).await?;
    sqlx::raw_sql(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        .execute(&mut c)
        .await?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------------------------
// 1. Saves: 1, 16, 64 writers

/// One save of a run's life: `(run id, step)`; the last step ends the run (completed, or failed one run in 20).
struct Save {
    base: usize,
    run_id: String,
    step: u64,
    run: u64,
}

impl Save {
    fn of(writer: usize, n: u64, bases: usize) -> Save {
        let run = n / SAVES_PER_RUN;
        Save {
            base: (writer * 31 + run as usize) % bases,
            run_id: format!("bench-w{writer}-r{run}"),
            step: n % SAVES_PER_RUN,
            run,
        }
    }

    fn status(&self) -> Status {
        if self.step + 1 < SAVES_PER_RUN {
            Status::Running
        } else if self.run % 20 == 7 {
            Status::Failed
        } else {
            Status::Completed
        }
    }

    fn execution_time_ms(&self) -> Option<i64> {
        (self.step + 1 == SAVES_PER_RUN).then_some(150 + (self.run as i64 * 7919) % 60_000)
    }
}

/// A base row: its state for the store, its columns for the raw statement.
struct Base {
    state: WorkflowState,
    row: OwnedRow,
}

#[derive(Clone)]
struct OwnedRow {
    pipeline_id: String,
    pipeline_name: String,
    pipeline_version: String,
    total_steps: i32,
    context: String,
    last_output: Option<String>,
    history: Option<String>,
    error: Option<String>,
    memory: Option<f32>,
}

fn bases(generator: &Generator, n: u64) -> Vec<Base> {
    (0..n)
        .map(|k| {
            let r: Row<'_> = generator.row(k);
            Base {
                state: r.to_state(),
                row: OwnedRow {
                    pipeline_id: r.pipeline_id.to_string(),
                    pipeline_name: r.pipeline_name.to_string(),
                    pipeline_version: r.pipeline_version.to_string(),
                    total_steps: r.total_steps as i32,
                    context: r.pipeline_context.clone(),
                    last_output: r.last_step_output.map(str::to_string),
                    history: r.step_history.map(str::to_string),
                    error: r.error_message.map(str::to_string),
                    memory: r.memory_usage_mb.map(|m| m as f32),
                },
            }
        })
        .collect()
}

/// Which writer saves how: the store, or flujo's statement on a connection of its own.
#[derive(Clone, Copy, PartialEq)]
enum Writer {
    Store,
    Raw,
}

/// Saves/s of `writers` concurrent writers for `secs`, with each save's latency.
async fn saves(how: Writer, url: &str, writers: usize, secs: f64, bases: Arc<Vec<Base>>) -> Result<Cell> {
    let store = if how == Writer::Store {
        Some(
            Store::open_with(
                url,
                StoreOptions {
                    max_connections: writers as u32,
                    ..Default::default()
                },
            )
            .await?,
        )
    } else {
        None
    };
    let go = Arc::new(tokio::sync::Barrier::new(writers + 1));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for w in 0..writers {
        let (store, url, go, stop, bases) = (
            store.clone(),
            url.to_string(),
            go.clone(),
            stop.clone(),
            bases.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut conn = match &store {
                None => Some(PgConnection::connect(&url).await?),
                Some(_) => None,
            };
            let mut latencies = Vec::new();
            let mut n = 0u64;
            // One save before the start (connections opened, statements prepared), not timed.
            let mut warm = true;
            loop {
                if !warm && stop.load(Ordering::Relaxed) {
                    break;
                }
                let save = Save::of(w, n, bases.len());
                let base = &bases[save.base];
                let t = Instant::now();
                match (&store, conn.as_mut()) {
                    (Some(store), _) => {
                        let mut s = base.state.clone();
                        s.run_id = save.run_id.clone();
                        s.status = save.status();
                        s.current_step_index = save.step as i64;
                        s.execution_time_ms = save.execution_time_ms();
                        s.created_at = None;
                        s.updated_at = None;
                        if s.status != Status::Failed {
                            s.error_message = None;
                        }
                        store.save_state(&s).await?;
                    }
                    (None, Some(conn)) => {
                        let r = &base.row;
                        let now = Utc::now();
                        let status = save.status();
                        sqlx::query(FLUJO_UPSERT)
                            .bind(&save.run_id)
                            .bind(&r.pipeline_id)
                            .bind(&r.pipeline_name)
                            .bind(&r.pipeline_version)
                            .bind(save.step as i32)
                            .bind(&r.context)
                            .bind(&r.last_output)
                            .bind(&r.history)
                            .bind(status.as_str())
                            .bind(now)
                            .bind(now)
                            .bind(r.total_steps)
                            .bind(if status == Status::Failed {
                                r.error.clone()
                            } else {
                                None
                            })
                            .bind(save.execution_time_ms().map(|v| v as i32))
                            .bind(r.memory)
                            .bind(None::<String>)
                            .bind(false)
                            .bind(None::<String>)
                            .bind(None::<String>)
                            .bind(None::<String>)
                            .execute(&mut *conn)
                            .await?;
                    }
                    _ => unreachable!(),
                }
                n += 1;
                if warm {
                    warm = false;
                    go.wait().await;
                } else {
                    latencies.push(t.elapsed());
                }
            }
            if let Some(conn) = conn {
                conn.close().await.ok();
            }
            Ok::<_, flowstate_bench::Error>(latencies)
        }));
    }
    go.wait().await;
    let started = Instant::now();
    let cpu_before = cpu_secs("self");
    tokio::time::sleep(Duration::from_secs_f64(secs)).await;
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await??);
    }
    let elapsed = started.elapsed().as_secs_f64();
    let client_cpu = cpu_secs("self") - cpu_before;
    let pending = if let Some(store) = store {
        let check = store.verify_counters().await?;
        if !check.is_exact() {
            return Err(format!("counters differ after the saves: {:?}", check.differences).into());
        }
        store.close().await;
        let mut c = PgConnection::connect(url).await?;
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM flowstate_delta")
            .fetch_one(&mut c)
            .await? as u64
    } else {
        0
    };
    let n = all.len() as f64;
    Ok(Cell {
        rate: n / elapsed.max(1e-9),
        latencies: Samples::new(all),
        pending,
        client_cpu_us: client_cpu * 1e6 / n.max(1.0),
    })
}

/// What one cell of the save figures measured.
struct Cell {
    /// Saves per second.
    rate: f64,
    latencies: Samples,
    /// Deltas left in the counters' log after the saves (store cells).
    pending: u64,
    /// CPU time of this bench process (the writers' side: the store or sqlx) per save, in µs.
    client_cpu_us: f64,
}

async fn save_group(config: &Config, server: &str) -> Result<Vec<Measurement>> {
    // Two templates of SAVE_DB_ROWS runs: flujo's plain table, and the same migrated by the store.
    let generator = Generator::new(flowstate_bench::SEED, SAVE_DB_ROWS, Utc::now());
    let flujo_url = create_database(server, "flowstate_bench_save_flujo", None).await?;
    let mut c = PgConnection::connect(&flujo_url).await?;
    sqlx::raw_sql(flowstate_testkit::pg::FLUJO_DDL)
        .execute(&mut c)
        .await?;
    pg::copy_rows(&mut c, &generator, 0..SAVE_DB_ROWS, "workflow_state", false).await?;
    sqlx::raw_sql("VACUUM ANALYZE workflow_state")
        .execute(&mut c)
        .await?;
    c.close().await.ok();
    drop_database(server, "flowstate_bench_save_store").await?;
    let store_url = create_database(
        server,
        "flowstate_bench_save_store",
        Some("flowstate_bench_save_flujo"),
    )
    .await?;
    let store = Store::open(&store_url).await?;
    store.close().await;

    let bases = Arc::new(bases(&generator, 256));
    let mut out = Vec::new();
    for writers in WRITERS {
        let rate = |how: Writer, template: &'static str| {
            let bases = bases.clone();
            async move {
                let url = create_database(server, "flowstate_bench_save_cell", Some(template)).await?;
                let r = saves(how, &url, writers, config.secs, bases).await;
                drop_database(server, "flowstate_bench_save_cell").await?;
                r
            }
        };
        let raw_cell = rate(Writer::Raw, "flowstate_bench_save_flujo").await?;
        let migrated_cell = rate(Writer::Raw, "flowstate_bench_save_store").await?;
        let store_cell = rate(Writer::Store, "flowstate_bench_save_store").await?;
        let (raw, migrated, store) = (raw_cell.rate, migrated_cell.rate, store_cell.rate);
        let (raw_lat, store_lat, pending) = (&raw_cell.latencies, &store_cell.latencies, store_cell.pending);
        println!(
            "saves, {writers} writers: raw {raw:.0}/s, raw on the migrated database {migrated:.0}/s, store {store:.0}/s \
             (store/raw {:.2}; the bench's own CPU per save: raw {:.0} µs, store {:.0} µs)",
            store / raw.max(1e-9),
            raw_cell.client_cpu_us,
            store_cell.client_cpu_us
        );
        out.push(
            Measurement::new(format!("pg.save_state.writers_{writers}"), SAVE_DB_ROWS, store, "saves/s")
                .higher_is_better(true)
                .baseline(
                    raw,
                    "flujo's prepared INSERT ... ON CONFLICT (sqlx) on flujo's plain table (its 6 indexes), as many \
                     connections",
                )
                .goal_ratio_at_least(0.7)
                .extra("raw_on_migrated_per_sec", migrated)
                .extra("p50_ms", store_lat.median_ms())
                .extra("p99_ms", store_lat.p99_ms())
                .extra("baseline_p99_ms", raw_lat.p99_ms())
                .extra("deltas_pending_after", pending)
                .extra("client_cpu_us_per_save", store_cell.client_cpu_us)
                .extra("baseline_client_cpu_us_per_save", raw_cell.client_cpu_us)
                .note(format!(
                    "{writers} writer connection(s), autocommit single-run saves: each run saved {SAVES_PER_RUN} \
                     times (inserted running, progress, then completed or failed); database of \
                     {SAVE_DB_ROWS} runs; counters recounted exact after"
                )),
        );
    }
    for name in ["flowstate_bench_save_store", "flowstate_bench_save_flujo"] {
        drop_database(server, name).await?;
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------------------------
// 2. The bulk load

fn bulk_load_figure(db: &PgBenchDb) -> Measurement {
    let b = &db.build;
    Measurement::new("pg.bulk_load", db.rows, b.rows_per_sec, "rows/s")
        .higher_is_better(true)
        .extra("copy_secs", b.copy_secs)
        .extra("index_secs", b.index_secs)
        .extra("migration_secs", b.finish_secs)
        .extra("vacuum_secs", b.vacuum_secs)
        .extra("total_secs", b.total_secs)
        .extra("database_bytes", b.database_bytes)
        .note(format!(
            "COPY, then the indexes, then the store's migration (triggers, counters recounted), VACUUM ANALYZE{}",
            if db.fresh { "" } else { " (built by an earlier run)" }
        ))
}

// ---------------------------------------------------------------------------------------------------------------
// 3. load_state

async fn load_state_group(
    config: &Config,
    db: &PgBenchDb,
    store: &Store,
    generator: &Generator,
) -> Result<Vec<Measurement>> {
    let budget = Budget::secs(config.secs);
    let mut rng = SplitMix(42);
    let ids: Vec<String> = (0..WORKING_SET.min(db.rows))
        .map(|_| generator.run_id(rng.next_u64() % db.rows))
        .collect();
    let mut conn = PgConnection::connect(&db.url).await?;
    // Both read every run of the working set once first.
    for id in &ids {
        sqlx::query("SELECT * FROM workflow_state WHERE run_id = $1")
            .bind(id)
            .fetch_optional(&mut conn)
            .await?;
    }
    let next = std::cell::Cell::new(0usize);
    let pick = || {
        let i = next.get();
        next.set(i + 1);
        &ids[i % ids.len()]
    };
    let s = sample_async(budget, || async {
        let found = store.load_state(pick()).await?;
        found.ok_or_else(|| flowstate_bench::Error::from("a bench run is missing"))
    })
    .await?;
    let conn = tokio::sync::Mutex::new(&mut conn);
    let r = sample_async(budget, || async {
        let mut c = conn.lock().await;
        sqlx::query("SELECT * FROM workflow_state WHERE run_id = $1")
            .bind(pick())
            .fetch_optional(&mut **c)
            .await
    })
    .await?;
    Ok(vec![latency(
        "pg.load_state",
        db.rows,
        &s,
        &r,
        "flujo's load: SELECT * ... WHERE run_id = $1 (sqlx, prepared), the same runs",
        1.0,
    )
    .note(format!(
        "random runs of a working set of {WORKING_SET}, each read once before; every column decoded"
    ))])
}

// ---------------------------------------------------------------------------------------------------------------
// 4. Stats

async fn stats_group(config: &Config, db: &PgBenchDb, store: &Store) -> Result<Vec<Measurement>> {
    let budget = Budget::secs(config.secs);
    let stats = store.get_workflow_stats().await?;
    let s = sample_async(budget, || store.get_workflow_stats()).await?;
    let mut conn = PgConnection::connect(&db.url).await?;
    let since = db.as_of - chrono::Duration::hours(24);
    let conn = tokio::sync::Mutex::new(&mut conn);
    let r = sample_async(budget, || async {
        let mut c = conn.lock().await;
        // flujo's get_workflow_stats: five queries.
        let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM workflow_state")
            .fetch_one(&mut **c)
            .await?;
        let groups = sqlx::query("SELECT status, COUNT(*) FROM workflow_state GROUP BY status")
            .fetch_all(&mut **c)
            .await?
            .len();
        let recent: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM workflow_state WHERE created_at >= $1")
            .bind(since)
            .fetch_one(&mut **c)
            .await?;
        let avg: Option<f64> = sqlx::query_scalar(
            "SELECT AVG(execution_time_ms)::float8 FROM workflow_state WHERE execution_time_ms IS NOT NULL",
        )
        .fetch_one(&mut **c)
        .await?;
        let bg = sqlx::query(
            "SELECT status, COUNT(*) FROM workflow_state WHERE is_background_task = TRUE GROUP BY status",
        )
        .fetch_all(&mut **c)
        .await?
        .len();
        Ok::<_, sqlx::Error>(total as f64 + groups as f64 + recent as f64 + avg.unwrap_or(0.0) + bg as f64)
    })
    .await?;
    Ok(vec![latency(
        "pg.get_workflow_stats",
        db.rows,
        &s,
        &r,
        "flujo's PostgreSQL stats: COUNT(*), GROUP BY status, COUNT(*) of the last 24 h, AVG(execution_time_ms), \
         GROUP BY status of background tasks (sqlx, prepared)",
        3.0,
    )
    .extra("total_workflows", stats.total_workflows)
    .extra("recent_workflows_24h", stats.recent_workflows_24h)
    .note("median of repeated calls on a warm cache; the store reads its counters (a few rows plus pending deltas)")])
}

// ---------------------------------------------------------------------------------------------------------------
// 5. Lists

struct ListCase {
    label: &'static str,
    status: Option<Status>,
    pipeline: Option<&'static str>,
}

impl ListCase {
    fn query(&self) -> ListQuery {
        ListQuery {
            statuses: self.status.iter().cloned().collect(),
            pipeline_id: self.pipeline.map(str::to_string),
            limit: Some(PAGE),
            ..Default::default()
        }
    }

    fn filter(&self) -> String {
        let mut sql = String::from("WHERE TRUE");
        if let Some(s) = &self.status {
            sql.push_str(&format!(" AND status = '{}'", s.as_str()));
        }
        if let Some(p) = self.pipeline {
            sql.push_str(&format!(" AND pipeline_id = '{p}'"));
        }
        sql
    }

    fn describe(&self) -> String {
        match (&self.status, self.pipeline) {
            (None, None) => "no filter".into(),
            (Some(s), None) => format!("status = {s}"),
            (Some(s), Some(p)) => format!("pipeline = {p}, status = {s}"),
            (None, Some(p)) => format!("pipeline = {p}"),
        }
    }
}

async fn list_group(config: &Config, db: &PgBenchDb, store: &Store) -> Result<Vec<Measurement>> {
    let budget = Budget::secs(config.secs);
    let mut conn = PgConnection::connect(&db.url).await?;
    let cases = [
        ListCase {
            label: "unfiltered",
            status: None,
            pipeline: None,
        },
        ListCase {
            label: "status",
            status: Some(Status::Failed),
            pipeline: None,
        },
        ListCase {
            label: "pipeline_status",
            status: Some(Status::Completed),
            pipeline: Some("customer-support-triage"),
        },
    ];
    let mut out = Vec::new();
    for case in &cases {
        let filter = case.filter();
        let matched: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM workflow_state {filter}"))
            .fetch_one(&mut conn)
            .await?;
        let flujo_sql = format!(
            "SELECT {FLUJO_LIST_COLUMNS} FROM workflow_state {filter} ORDER BY created_at DESC LIMIT $1 OFFSET $2"
        );

        let q = case.query();
        let first = store.list_workflows(&q).await?;
        let s = sample_async(budget, || store.list_workflows(&q)).await?;
        let r = sample_raw(budget, &mut conn, &flujo_sql, |q| {
            q.bind(i64::from(PAGE)).bind(0i64)
        })
        .await?;
        out.push(
            latency(
                &format!("pg.list_workflows.first_page.{}", case.label),
                db.rows,
                &s,
                &r,
                &format!(
                    "flujo's list query: {}, ORDER BY created_at DESC LIMIT {PAGE} (sqlx, prepared)",
                    case.describe()
                ),
                3.0,
            )
            .extra("matched_rows", matched)
            .extra("returned", first.runs.len() as u64)
            .note(format!("{}; {PAGE} runs per page", case.describe())),
        );

        let pages = (matched.max(0) as u64).div_ceil(u64::from(PAGE));
        let page = DEEP_PAGE.min(pages);
        if page < 2 {
            continue;
        }
        let offset = (page - 1) * u64::from(PAGE);
        let t = Instant::now();
        let before = store
            .list_workflows(&ListQuery {
                limit: Some(1),
                offset: Some(offset - 1),
                ..case.query()
            })
            .await?;
        let cursor_ms = t.elapsed().as_secs_f64() * 1e3;
        let cursor = before
            .next_cursor
            .ok_or("the row before the deep page should have a next cursor")?;
        let q = ListQuery {
            cursor: Some(cursor),
            ..case.query()
        };
        let deep = store.list_workflows(&q).await?;
        let raw_first: String = sqlx::query(&flujo_sql)
            .bind(1i64)
            .bind(offset as i64)
            .fetch_one(&mut conn)
            .await?
            .try_get(0)?;
        if deep.runs.first().map(|r| r.run_id.as_str()) != Some(raw_first.as_str()) {
            eprintln!(
                "warning: page {page} ({}) starts with {:?} in the store and {raw_first:?} in flujo's query",
                case.label,
                deep.runs.first().map(|r| &r.run_id)
            );
        }
        let s = sample_async(budget, || store.list_workflows(&q)).await?;
        let r = sample_raw(budget, &mut conn, &flujo_sql, |q| {
            q.bind(i64::from(PAGE)).bind(offset as i64)
        })
        .await?;
        out.push(
            latency(
                &format!("pg.list_workflows.page_10000.{}", case.label),
                db.rows,
                &s,
                &r,
                &format!(
                    "flujo's list query: {}, ORDER BY created_at DESC LIMIT {PAGE} OFFSET {}",
                    case.describe(),
                    report::number(offset as f64)
                ),
                3.0,
            )
            .extra("page", page)
            .extra("matched_rows", matched)
            .extra("returned", deep.runs.len() as u64)
            .extra("cursor_by_offset_ms", cursor_ms)
            .note(format!(
                "{}; page {} through its keyset cursor",
                case.describe(),
                report::number(page as f64)
            )),
        );
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------------------------
// 6. Failed runs, failure groups and stuck runs

/// The Pipelines page (issue 15): figures per pipeline over a window, and trends, beside a GROUP BY on the table.
async fn pipelines_group(config: &Config, db: &PgBenchDb, store: &Store) -> Result<Vec<Measurement>> {
    let budget = Budget::secs(config.secs);
    let mut conn = PgConnection::connect(&db.url).await?;
    let mut out = Vec::new();
    for (label, hours) in [("24h", 24i64), ("7d", 24 * 7), ("30d", 24 * 30)] {
        let since = db.as_of - chrono::Duration::hours(hours);
        let report = store.pipeline_report(since).await?;
        let s = sample_async(budget, || store.pipeline_report(since)).await?;
        let r = sample_raw(
            budget,
            &mut conn,
            "SELECT pipeline_id, status, COUNT(*), AVG(execution_time_ms), AVG(memory_usage_mb), MAX(memory_usage_mb) \
             FROM workflow_state WHERE updated_at >= $1 GROUP BY pipeline_id, status",
            |q| q.bind(since),
        )
        .await?;
        let runs: i64 = report.pipelines.iter().map(|p| p.runs).sum();
        out.push(
            latency(
                &format!("pg.pipeline_report.{label}"),
                db.rows,
                &s,
                &r,
                "GROUP BY pipeline_id, status over the window (counts, mean time, mean and max memory; no percentiles)",
                20.0,
            )
            .extra("pipelines", report.pipelines.len() as u64)
            .extra("runs_in_window", runs),
        );
    }
    for days in [7u32, 30, 90] {
        let trend = store.pipeline_trend(days, None).await?;
        let s = sample_async(budget, || store.pipeline_trend(days, None)).await?;
        let since = db.as_of - chrono::Duration::days(2 * i64::from(days));
        let r = sample_raw(
            budget,
            &mut conn,
            "SELECT date_trunc('day', updated_at, 'UTC'), status, COUNT(*) FROM workflow_state \
             WHERE updated_at >= $1 GROUP BY 1, 2",
            |q| q.bind(since),
        )
        .await?;
        out.push(
            latency(
                &format!("pg.pipeline_trend.{days}d"),
                db.rows,
                &s,
                &r,
                "runs per day and status over both periods, GROUP BY the UTC day (no p95)",
                20.0,
            )
            .extra("runs_this_period", trend.current.runs),
        );
    }
    Ok(out)
}

async fn failed_group(config: &Config, db: &PgBenchDb, store: &Store) -> Result<Vec<Measurement>> {
    let budget = Budget::secs(config.secs);
    let mut conn = PgConnection::connect(&db.url).await?;
    let since = db.as_of - chrono::Duration::hours(24);
    let mut out = Vec::new();
    let failed = store.get_failed_workflows(24, PAGE).await?;
    let s = sample_async(budget, || store.get_failed_workflows(24, PAGE)).await?;
    let r = sample_raw(
        budget,
        &mut conn,
        &format!(
            "SELECT {FLUJO_LIST_COLUMNS} FROM workflow_state WHERE status = 'failed' AND updated_at >= $1 \
             ORDER BY updated_at DESC LIMIT {PAGE}"
        ),
        |q| q.bind(since),
    )
    .await?;
    let in_window = store.count_failed_since(since).await?;
    out.push(
        latency(
            "pg.get_failed_workflows.24h",
            db.rows,
            &s,
            &r,
            &format!(
                "flujo's query: status = 'failed' AND updated_at >= now - 24 h ORDER BY updated_at DESC, with LIMIT \
                 {PAGE} added (flujo's has none)"
            ),
            20.0,
        )
        .extra("failed_in_window", in_window)
        .extra("returned", failed.len() as u64),
    );
    let groups = store.failure_groups(since).await?;
    let s = sample_async(budget, || store.failure_groups(since)).await?;
    let r = sample_raw(
        budget,
        &mut conn,
        "SELECT error_message, COUNT(*), MIN(updated_at), MAX(updated_at) FROM workflow_state \
         WHERE status = 'failed' AND updated_at >= $1 GROUP BY error_message ORDER BY COUNT(*) DESC",
        |q| q.bind(since),
    )
    .await?;
    out.push(
        latency(
            "pg.failure_groups.24h",
            db.rows,
            &s,
            &r,
            "flujo-style: failed runs of the last 24 h GROUP BY the exact error_message (flujo has no grouping)",
            20.0,
        )
        .extra("failed_in_window", groups.total_failed)
        .extra("groups", groups.groups.len() as u64)
        .note("every failure of the last 24 h grouped by error signature, with samples"),
    );
    // Stuck runs (the Overview's): running or paused, idle for an hour; the count and the 10 longest idle.
    let idle = chrono::Duration::hours(1);
    let stuck = store.stuck_runs(idle, 10).await?;
    let s = sample_async(budget, || store.stuck_runs(idle, 10)).await?;
    let r = sample_raw(
        budget,
        &mut conn,
        "SELECT count(*) FROM workflow_state WHERE status IN ('running', 'paused') AND updated_at < $1",
        |q| q.bind(db.as_of - idle),
    )
    .await?;
    out.push(
        latency(
            "pg.stuck_runs.1h",
            db.rows,
            &s,
            &r,
            "a plain count of the running and paused runs idle for an hour (flujo has no such query)",
            3.0,
        )
        .extra("stuck", stuck.count)
        .note("running or paused runs idle for an hour: the count and the 10 longest idle"),
    );
    Ok(out)
}

// ---------------------------------------------------------------------------------------------------------------
// 7. Cleanup with writers saving meanwhile

fn cleanup_group(
    rt: &Runtime,
    config: &Config,
    db: &PgBenchDb,
    generator: &Generator,
) -> Result<Vec<Measurement>> {
    // A tenth of the table, at most 200,000 runs by default (FLOWSTATE_BENCH_CLEANUP_ROWS says otherwise).
    let target = match std::env::var("FLOWSTATE_BENCH_CLEANUP_ROWS") {
        Ok(v) if !v.trim().is_empty() => match flowstate_bench::parse_sizes(&v)?[..] {
            [one] if one <= db.rows => one,
            _ => {
                return Err(format!("FLOWSTATE_BENCH_CLEANUP_ROWS must be one size up to {}", db.rows).into())
            }
        },
        _ => (db.rows / 10).clamp(1, 200_000),
    };
    let terminal: u32 = STATUS_MIX
        .iter()
        .filter(|(s, _)| s.is_terminal())
        .map(|(_, w)| w)
        .sum();
    let total: u32 = STATUS_MIX.iter().map(|(_, w)| w).sum();
    let share = f64::from(terminal) / f64::from(total);
    let fraction = (target as f64 / (db.rows as f64 * share)).min(1.0);
    let first_us = generator.created_us(0, 0.0);
    let as_of_us = flowstate_store::time::instant_micros(&db.as_of);
    // The cleanup runs in CLEANUP_ROUNDS parts, each up to a later cutoff, the writers alone between them.
    let cutoff_of = |round: usize| {
        let part = fraction * (round + 1) as f64 / CLEANUP_ROUNDS as f64;
        first_us + ((as_of_us - first_us) as f64 * part) as i64
    };
    let cutoff_us = cutoff_of(CLEANUP_ROUNDS - 1);
    let clock_of = |us: i64| {
        flowstate_store::time::from_micros(us)
            .map(|c| c + chrono::Duration::days(1))
            .ok_or("cutoff out of range")
    };
    let policy = CleanupPolicy::older_than_days(1);
    let alone_secs = config.secs.clamp(1.0, 3.0);
    let writers_url = with_application_name(&db.url, WRITERS_APP)?;
    let cleanup_url = with_application_name(&db.url, CLEANUP_APP)?;

    // An earlier run stopped before putting the rows back: put them back first.
    rt.block_on(restore(db, generator, fraction, cutoff_us))?;
    let result = rt.block_on(async {
        let store = Store::open_with(
            &writers_url,
            StoreOptions {
                max_connections: CLEANUP_WRITERS as u32 + 4,
                ..Default::default()
            },
        )
        .await?;
        let open_cleanup = |round: usize| {
            let url = cleanup_url.clone();
            let at = clock_of(cutoff_of(round));
            async move {
                Ok::<_, flowstate_bench::Error>(
                    Store::open_with(
                        &url,
                        StoreOptions {
                            clock: Arc::new(flowstate_store::FixedClock::new(at?)),
                            max_connections: 2,
                            ..Default::default()
                        },
                    )
                    .await?,
                )
            }
        };
        let last = open_cleanup(CLEANUP_ROUNDS - 1).await?;
        let t = Instant::now();
        let preview = last.preview_cleanup(&policy).await?;
        let preview_ms = t.elapsed().as_secs_f64() * 1e3;
        last.close().await;
        let template = {
            let mut s = generator.row(0).to_state();
            s.created_at = None;
            s.updated_at = None;
            s
        };
        // The writers save new runs back to back for the whole group; each save is filed under the phase it began in.
        let stop = Arc::new(AtomicBool::new(false));
        let writers: Vec<_> = (0..CLEANUP_WRITERS)
            .map(|w| {
                let (store, mut s, stop) = (store.clone(), template.clone(), stop.clone());
                tokio::spawn(async move {
                    let mut saves = Vec::new();
                    let mut k = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        s.run_id = format!("bench-cleanup-{w}-{k}");
                        let t = Instant::now();
                        store.save_state(&s).await?;
                        saves.push((t, t.elapsed()));
                        k += 1;
                    }
                    Ok::<_, flowstate_bench::Error>(saves)
                })
            })
            .collect();
        let sampler = tokio::spawn(sample_lock_waits(db.url.clone(), stop.clone()));
        tokio::time::sleep(Duration::from_millis(500)).await;
        let mut phases: Vec<(bool, Instant, Instant)> = Vec::new();
        let (mut deleted, mut secs) = (0u64, 0.0f64);
        for round in 0..=CLEANUP_ROUNDS {
            let t = Instant::now();
            tokio::time::sleep(Duration::from_secs_f64(alone_secs)).await;
            phases.push((false, t, Instant::now()));
            if round == CLEANUP_ROUNDS {
                break;
            }
            let cleanup = open_cleanup(round).await?;
            let t = Instant::now();
            deleted += cleanup.cleanup_old_workflows(&policy).await?;
            phases.push((true, t, Instant::now()));
            secs += t.elapsed().as_secs_f64();
            cleanup.close().await;
        }
        stop.store(true, Ordering::Relaxed);
        let (mut during, mut alone) = (Vec::new(), Vec::new());
        let mut rounds: Vec<(bool, Vec<Duration>)> = phases.iter().map(|p| (p.0, Vec::new())).collect();
        for w in writers {
            for (at, took) in w.await?? {
                if let Some(i) = phases.iter().position(|p| at >= p.1 && at < p.2) {
                    rounds[i].1.push(took);
                    if phases[i].0 {
                        during.push(took);
                    } else {
                        alone.push(took);
                    }
                }
            }
        }
        let waits = sampler.await??;
        store.close().await;
        Ok::<_, flowstate_bench::Error>((
            preview.matched,
            preview_ms,
            Samples::new(alone),
            Samples::new(during),
            rounds,
            phases,
            waits,
            deleted,
            secs,
        ))
    });

    // Put the database back as it was, whatever happened: the deleted runs again (through the triggers, so the
    // counters follow), the writers' runs gone.
    rt.block_on(restore(db, generator, fraction, cutoff_us))?;
    let (matched, preview_ms, alone, during, rounds, phases, waits, deleted, secs) = result?;
    let p99s = |cleanup: bool| -> Vec<f64> {
        rounds
            .iter()
            .filter(|(c, _)| *c == cleanup)
            .map(|(_, d)| (Samples::new(d.iter().copied()).p99_ms() * 10.0).round() / 10.0)
            .collect()
    };
    let maxes = |cleanup: bool| -> Vec<f64> {
        rounds
            .iter()
            .filter(|(c, _)| *c == cleanup)
            .map(|(_, d)| (Samples::new(d.iter().copied()).max_ms() * 10.0).round() / 10.0)
            .collect()
    };
    // Lock waits of the writers: during a cleanup (blocked by the cleanup's session, or by anyone), and alone.
    let in_cleanup = |at: Instant| phases.iter().any(|p| p.0 && at >= p.1 && at < p.2);
    let by_cleanup: Vec<&LockWait> = waits
        .waits
        .iter()
        .filter(|w| w.blockers.iter().any(|b| b == CLEANUP_APP))
        .collect();
    let longest = |ws: &[&LockWait]| ws.iter().map(|w| w.max_ms).fold(0.0f64, f64::max);
    let (waits_during, waits_alone): (Vec<&LockWait>, Vec<&LockWait>) =
        waits.waits.iter().partition(|w| in_cleanup(w.first_seen));
    let events = |cleanup: bool| -> String {
        let mut counts: std::collections::BTreeMap<&str, u64> = Default::default();
        let mut polls = 0u64;
        for (at, evs) in &waits.events {
            if in_cleanup(*at) == cleanup {
                polls += 1;
                for (e, n) in evs {
                    *counts.entry(e.as_str()).or_default() += *n as u64;
                }
            }
        }
        let mut v: Vec<(&str, u64)> = counts.into_iter().collect();
        v.sort_by_key(|e| std::cmp::Reverse(e.1));
        v.iter()
            .take(6)
            .map(|(e, n)| format!("{e} {:.2}", *n as f64 / polls.max(1) as f64))
            .collect::<Vec<_>>()
            .join(", ")
    };
    Ok(vec![
        Measurement::new("pg.cleanup_old_workflows", db.rows, deleted as f64 / secs.max(1e-9), "rows/s")
            .higher_is_better(true)
            .extra("rows_deleted", deleted)
            .extra("preview_matched", matched)
            .extra("preview_ms", preview_ms)
            .extra("secs", secs)
            .extra("rounds", CLEANUP_ROUNDS as u64)
            .note(format!(
                "deleting the oldest terminal runs ({} rows) in the store's batches, in {CLEANUP_ROUNDS} parts, while \
                 {CLEANUP_WRITERS} writers save; the rows are put back afterwards",
                report::number(deleted as f64)
            )),
        Measurement::new("pg.cleanup_old_workflows.writer_lock_wait", db.rows, longest(&by_cleanup), "ms")
            .higher_is_better(false)
            .baseline(
                longest(&waits_alone),
                format!(
                    "the same writers' longest lock wait (whoever held the lock) in the {} phases without a cleanup",
                    CLEANUP_ROUNDS + 1
                ),
            )
            .goal_at_most(50.0)
            .extra("waits_on_cleanup", by_cleanup.len() as u64)
            .extra(
                "waits_on_cleanup_over_50_ms",
                by_cleanup.iter().filter(|w| w.max_ms > 50.0).count() as u64,
            )
            .extra("waits_during_cleanup_any_holder", waits_during.len() as u64)
            .extra("longest_wait_during_cleanup_any_holder_ms", longest(&waits_during))
            .extra("waits_alone", waits_alone.len() as u64)
            .extra("polls", waits.polls)
            .extra("poll_ms", LOCK_POLL.as_millis() as u64)
            .extra("longest_poll_gap_ms", waits.longest_gap_ms)
            .extra("writer_wait_events_during", events(true))
            .extra("writer_wait_events_alone", events(false))
            .note(format!(
                "the longest heavyweight-lock wait of a writer whose blocker was the cleanup's session \
                 (pg_locks.waitstart and pg_blocking_pids, polled every {} ms: a wait is seen to within a poll; \
                 0 = none seen); wait events: writers waiting per poll, by pg_stat_activity.wait_event",
                LOCK_POLL.as_millis()
            )),
        Measurement::new("pg.cleanup_old_workflows.save_stall", db.rows, during.max_ms(), "ms")
            .higher_is_better(false)
            .baseline(
                alone.max_ms(),
                format!(
                    "the same {CLEANUP_WRITERS} writers' longest save in the {} phases of {alone_secs:.1} s without a \
                     cleanup, interleaved",
                    CLEANUP_ROUNDS + 1
                ),
            )
            .goal_at_most(50.0)
            .extra("p50_ms", during.median_ms())
            .extra("p99_ms", during.p99_ms())
            .extra("p999_ms", during.percentile_ms(99.9))
            .extra("saves_over_50_ms", during.count_over_ms(50.0))
            .extra("saves", during.len() as u64)
            .extra("p99_ms_per_cleanup", p99s(true))
            .extra("max_ms_per_cleanup", maxes(true))
            .extra("baseline_p50_ms", alone.median_ms())
            .extra("baseline_p99_ms", alone.p99_ms())
            .extra("baseline_saves_over_50_ms", alone.count_over_ms(50.0))
            .extra("baseline_saves", alone.len() as u64)
            .extra("baseline_p99_ms_per_phase", p99s(false))
            .extra("baseline_max_ms_per_phase", maxes(false))
            .note(format!(
                "the longest Store::save_state of {CLEANUP_WRITERS} writers saving new runs back to back while a \
                 cleanup ran (latency: CPU and I/O as well as locks)"
            )),
    ])
}

/// `url` with `application_name` set (the lock sampler tells the cleanup's sessions from the writers' by it).
fn with_application_name(url: &str, name: &str) -> Result<String> {
    let mut u = url::Url::parse(url)?;
    let kept: Vec<(String, String)> = u
        .query_pairs()
        .filter(|(k, _)| k != "application_name")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    u.query_pairs_mut()
        .clear()
        .extend_pairs(kept)
        .append_pair("application_name", name);
    Ok(u.to_string())
}

/// One heavyweight-lock wait of a writer, as the sampler saw it.
struct LockWait {
    /// The poll that first saw it.
    first_seen: Instant,
    /// The longest it was seen waiting (`clock_timestamp() - pg_locks.waitstart`), in ms.
    max_ms: f64,
    /// `application_name` of the sessions blocking it.
    blockers: Vec<String>,
}

/// What the lock sampler saw.
struct LockWaits {
    waits: Vec<LockWait>,
    /// Per poll: the writers' wait events (`type:event`) and how many writers were in each.
    events: Vec<(Instant, Vec<(String, i64)>)>,
    polls: u64,
    longest_gap_ms: f64,
}

/// Polls `pg_stat_activity` and `pg_locks` every [`LOCK_POLL`] until `stop`: every lock a writer waits for (by
/// `pg_locks.waitstart`, exact to the microsecond), how long it was seen waiting and who blocked it
/// (`pg_blocking_pids`), and the writers' wait events.
async fn sample_lock_waits(url: String, stop: Arc<AtomicBool>) -> Result<LockWaits> {
    let mut conn = PgConnection::connect(&url).await?;
    let sql = "SELECT a.pid, COALESCE(a.wait_event_type || ':' || a.wait_event, 'CPU'), \
        (EXTRACT(EPOCH FROM l.waitstart) * 1000000)::int8, \
        (EXTRACT(EPOCH FROM clock_timestamp() - l.waitstart) * 1000)::float8, \
        CASE WHEN l.waitstart IS NOT NULL THEN (SELECT array_agg(b.application_name) FROM pg_stat_activity b \
        WHERE b.pid = ANY(pg_blocking_pids(a.pid))) END \
        FROM pg_stat_activity a LEFT JOIN pg_locks l ON l.pid = a.pid AND NOT l.granted \
        WHERE a.application_name = $1 AND a.state = 'active' AND a.pid <> pg_backend_pid()";
    let mut seen: std::collections::HashMap<(i32, i64), LockWait> = Default::default();
    let mut events = Vec::new();
    let (mut polls, mut longest_gap_ms) = (0u64, 0.0f64);
    let mut last = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        let at = Instant::now();
        let rows = sqlx::query(sql).bind(WRITERS_APP).fetch_all(&mut conn).await?;
        let mut evs: std::collections::BTreeMap<String, i64> = Default::default();
        for r in &rows {
            let pid: i32 = r.try_get(0)?;
            *evs.entry(r.try_get::<String, _>(1)?).or_default() += 1;
            if let (Some(start), Some(ms)) =
                (r.try_get::<Option<i64>, _>(2)?, r.try_get::<Option<f64>, _>(3)?)
            {
                let blockers: Vec<String> = r
                    .try_get::<Option<Vec<Option<String>>>, _>(4)?
                    .unwrap_or_default()
                    .into_iter()
                    .map(Option::unwrap_or_default)
                    .collect();
                let w = seen.entry((pid, start)).or_insert(LockWait {
                    first_seen: at,
                    max_ms: 0.0,
                    blockers: Vec::new(),
                });
                w.max_ms = w.max_ms.max(ms);
                for b in blockers {
                    if !w.blockers.contains(&b) {
                        w.blockers.push(b);
                    }
                }
            }
        }
        events.push((at, evs.into_iter().collect()));
        polls += 1;
        longest_gap_ms = longest_gap_ms.max(at.duration_since(last).as_secs_f64() * 1e3);
        last = at;
        tokio::time::sleep(LOCK_POLL.saturating_sub(at.elapsed())).await;
    }
    conn.close().await.ok();
    Ok(LockWaits {
        waits: seen.into_values().collect(),
        events,
        polls,
        longest_gap_ms,
    })
}

/// Puts back the runs a cleanup up to `cutoff_us` deleted (rows of the first `fraction` of the table, terminal,
/// last active before the cutoff; through the triggers, so the counters follow) and deletes the writers' runs,
/// when the table does not hold exactly its rows; then checks it does.
async fn restore(db: &PgBenchDb, generator: &Generator, fraction: f64, cutoff_us: i64) -> Result<()> {
    let mut conn = PgConnection::connect(&db.url).await?;
    sqlx::raw_sql("SET statement_timeout = 0")
        .execute(&mut conn)
        .await?;
    let (ours, all) = count_rows(&mut conn).await?;
    if ours == db.rows as i64 && all == ours {
        return Ok(());
    }
    println!(
        "cleanup: putting back the runs a cleanup deleted ({ours} of {} rows there)",
        db.rows
    );
    sqlx::raw_sql("CREATE TEMP TABLE IF NOT EXISTS bench_restore (LIKE workflow_state INCLUDING DEFAULTS)")
        .execute(&mut conn)
        .await?;
    sqlx::raw_sql("TRUNCATE bench_restore").execute(&mut conn).await?;
    let end = ((fraction * db.rows as f64).ceil() as u64 + 2).min(db.rows);
    let terminal =
        |r: &Row<'_>| Status::known(r.status).is_some_and(|s| s.is_terminal()) && r.updated_us < cutoff_us;
    pg::copy_rows_where(&mut conn, generator, 0..end, "bench_restore", false, terminal).await?;
    sqlx::raw_sql("INSERT INTO workflow_state SELECT * FROM bench_restore ON CONFLICT (run_id) DO NOTHING")
        .execute(&mut conn)
        .await?;
    sqlx::raw_sql("DELETE FROM workflow_state WHERE run_id LIKE 'bench-cleanup-%'")
        .execute(&mut conn)
        .await?;
    sqlx::raw_sql("VACUUM ANALYZE workflow_state")
        .execute(&mut conn)
        .await?;
    let (ours, all) = count_rows(&mut conn).await?;
    if ours != db.rows as i64 || all != ours {
        return Err(format!(
            "put the cleanup's rows back, but the table has {all} rows, not {}",
            db.rows
        )
        .into());
    }
    Ok(())
}

/// The bench's own runs and all runs in the table.
async fn count_rows(conn: &mut PgConnection) -> sqlx::Result<(i64, i64)> {
    sqlx::query_as(
        "SELECT count(*) FILTER (WHERE run_id NOT LIKE 'bench-cleanup-%'), count(*) FROM workflow_state",
    )
    .fetch_one(conn)
    .await
}
