//! The HTTP bench (issue 5, items 7 and 8): the real `flowstate serve` under 32 concurrent keep-alive clients
//! while a writer saves 1,000 runs/s into the same database; the server's peak memory; a run's size on disk.
//!
//! ```text
//! FLOWSTATE_BENCH_ROWS=1M cargo bench -p flowstate-bench --bench http
//! ```
//!
//! For a small database (`FLOWSTATE_BENCH_HTTP_SMALL` runs, default 10,000; 0 skips it), then each size of
//! `FLOWSTATE_BENCH_ROWS` / `--rows` (default 100,000), it:
//!
//! 1. takes the cached bench database ([`flowstate_bench::load::ensure`], built when missing) and serves a
//!    working copy of it (the writer changes it; the cache stays as loaded); when the disk has no room for a copy
//!    (10M runs take tens of GB) or `FLOWSTATE_BENCH_HTTP_IN_PLACE=1`, the cached file itself, from which the
//!    writer's runs are deleted afterwards (marked dirty meanwhile, so an interrupted run makes the loader rebuild
//!    it);
//! 2. starts `target/release/flowstate serve --db <copy> --bind 127.0.0.1:<free port>`, built first with
//!    `cargo build --release -p flowstate --bin flowstate` (a no-op when current; `FLOWSTATE_BENCH_SERVER` names
//!    a prebuilt binary instead), and waits for `/healthz`; the pages render on the server, so the wasm site is
//!    not needed;
//! 3. after a short warm-up, [`CLIENTS`] clients on keep-alive connections request the Overview `/`, the runs
//!    `/runs`, the failed runs `/runs?status=failed` and the Failures `/failures` in turn, each request as soon as
//!    the previous answer is read (a closed loop), each keeping the cookies the server sets as a browser does (so
//!    from its second request on it sends its CSRF cookie): first one client for up to [`ONE_CLIENT_SECS`] s (each page's
//!    own time, without queueing), then 32 clients for `FLOWSTATE_BENCH_HTTP_SECS` seconds (default 20) alone
//!    (the baseline), then 32 clients as long again while a writer in this process saves [`WRITE_RATE`] runs/s
//!    through `flowstate_store` (default options: synchronous FULL; each new run saved four times: started, two
//!    steps, finished, with the bench's status mix); all with the server's default page cache (1 s);
//! 4. starts the server again with `--page-cache-ms 0` (every request reads and renders its page) and runs one
//!    client, then 32 clients with the writer (`http_uncached_*`, the cached figures as baseline);
//! 5. reports p50/p99 latency and requests/s per page and overall; an answer that is not 2xx is an error, and
//!    so is a save that fails (both must be 0); and the CPU time the server, this process and the rest of the
//!    machine spent in each phase (other processes' load disturbs the figures: the table warns);
//! 6. reports the server's peak resident memory (`VmHWM` of `/proc/<pid>/status`, sampled during and after
//!    the load) and the database's bytes per run (file and `-wal`, as loaded);
//! 7. times each store call the pages make, alone, on the same database after the load (where the time goes);
//! 8. once (`FLOWSTATE_BENCH_ONLY=large-values` runs only this): the page of a run holding a 50 MB context written by another process, viewed by 1
//!    and by 8 clients at once, each on a freshly started server, beside the page of an ordinary run: the time,
//!    the server's peak memory, and `/healthz`'s longest answer meanwhile; then the whole value at `/raw/context`
//!    ([`large_values`]).
//!
//! The figures go into `target/bench/flowstate.json` (`http_<page>_p50_ms`, `http_<page>_p99_ms`,
//! `http_<page>_rps`, `http_rps`, `http_errors`, `http_writer_saves_per_s`, `serve_peak_rss_mib`,
//! `db_bytes_per_run`; `pg.http_*` the same on PostgreSQL when `FLOWSTATE_BENCH_PG` or `--pg URL` names a server:
//! `flowstate serve --db <URL>` of the PostgreSQL bench database, [`flowstate_bench::pg::ensure`];
//! `FLOWSTATE_BENCH_PG_ONLY=1` skips SQLite; latency and rate entries carry the same load without the writer as `baseline_value`) and
//! a table to stdout. Clients, writer and server share the machine's cores, so the latencies include the
//! clients' own scheduling. The server reads the real clock while the loaded runs are as of the database's
//! build: an old cached database has fewer runs in "the last 24 hours" (its age is printed; rebuild with
//! `FLOWSTATE_BENCH_REBUILD=1`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::Utc;
use flowstate_bench::generate::Generator;
use flowstate_bench::load::{self, BenchDb};
use flowstate_bench::report::{self, Measurement};
use flowstate_bench::sample::{cpu_secs, machine_busy_secs, sample_async, Budget, Samples};
use flowstate_bench::{Config, Result};
use flowstate_store::{
    Bucket, FailureScope, ListQuery, ListSort, Status, Store, StoreOptions, WorkflowState,
};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// Concurrent HTTP clients.
const CLIENTS: usize = 32;
/// Saves per second the writer aims at.
const WRITE_RATE: u64 = 1_000;
/// Writer tasks (each owns whole runs, so the saves of one run stay in order).
const WRITERS: u64 = 8;
/// Saves per written run: started, two steps, finished.
const SAVES_PER_RUN: u64 = 4;
/// Longest phase of one client (each page's time without queueing).
const ONE_CLIENT_SECS: u64 = 5;
/// Load before the measured phases, not counted.
const WARM_UP: Duration = Duration::from_secs(2);
/// Issue 5's goal for p99 latency under load.
const P99_GOAL_MS: f64 = 30.0;
/// The seed of the writer's runs (other run ids than the loaded ones).
const WRITER_SEED: u64 = 0x5EED_4772;

/// The pages under load: the key in the figures' names, and the path (`{run}`: the run [`pick_run`] chose).
const PAGES: [(&str, &str); 8] = [
    ("overview", "/"),
    ("runs", "/runs"),
    ("runs_failed", "/runs?status=failed"),
    ("failures", "/failures"),
    // Issue 15's pages: the slowest runs (keyset order on `idx_flowstate_timed`), one pipeline's failures over
    // 7 days with its per-version table, the Pipelines page as it opens (24 h, trend of 7 days), and a failed
    // run's page reached from the failed runs list (previous/next within that list).
    ("runs_slowest", "/runs?sort=slowest"),
    (
        "failures_pl",
        "/failures?window=7d&pipeline=customer-support-triage",
    ),
    ("pipelines", "/pipelines"),
    ("run", "/runs/{run}?list=%2Fruns%3Fstatus%3Dfailed"),
];

/// The pipeline of the `failures_pl` page and its store calls.
const PAGE_PIPELINE: &str = flowstate_bench::triage::PIPELINE;

/// Every page's path with `{run}` filled in.
type Paths = Arc<Vec<(&'static str, String)>>;

fn page_paths(run: &str) -> Paths {
    Arc::new(
        PAGES
            .iter()
            .map(|(key, path)| (*key, path.replace("{run}", run)))
            .collect(),
    )
}

/// The run whose page is loaded: a failed run from the middle of the first page of failed runs (so it has a
/// previous and a next run in that list). Run ids of the bench are URL-safe (checked).
async fn pick_run(db: &Path) -> Result<String> {
    let store = Store::open_with(
        db,
        StoreOptions {
            read_only: true,
            ..Default::default()
        },
    )
    .await?;
    let page = store
        .list_workflows(&ListQuery {
            statuses: vec![Status::Failed],
            ..Default::default()
        })
        .await;
    store.close().await;
    let page = page?;
    let run = page
        .runs
        .get(page.runs.len() / 2)
        .map(|r| r.run_id.clone())
        .ok_or("the bench database has no failed run")?;
    if !run
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(format!("run id {run:?} would need escaping in a URL").into());
    }
    Ok(run)
}

type HttpClient = Client<HttpConnector, Empty<Bytes>>;

fn main() -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("http bench: cannot start tokio: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("http bench failed: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A count from the environment, or `default`.
fn env_count(name: &str, default: u64) -> Result<u64> {
    match std::env::var(name) {
        Ok(v) if v.trim() == "0" => Ok(0),
        Ok(v) if !v.trim().is_empty() => Ok(flowstate_bench::parse_sizes(&v)?
            .first()
            .copied()
            .unwrap_or(default)),
        _ => Ok(default),
    }
}

async fn run() -> Result<()> {
    let config = Config::from_env_and_args(std::env::args().skip(1))?;
    if !config.wants("http-pages") && !config.wants("http-large-values") {
        println!("http bench: skipped (only {} asked for)", config.only.join(", "));
        return Ok(());
    }
    let small = env_count("FLOWSTATE_BENCH_HTTP_SMALL", 10_000)?;
    let secs = env_count("FLOWSTATE_BENCH_HTTP_SECS", 20)?.max(1);
    let mut sizes: Vec<u64> = config.rows.clone();
    if small > 0 && sizes.iter().all(|&n| n > small) {
        sizes.insert(0, small);
    }
    let server = server_binary()?;
    let work = flowstate_bench::bench_dir().join("http");
    std::fs::create_dir_all(&work)?;
    println!(
        "http bench: {CLIENTS} clients, {secs} s per phase, a writer at {WRITE_RATE} saves/s; databases of {}",
        sizes.iter().map(|n| report::number(*n as f64)).collect::<Vec<_>>().join(", ")
    );

    let mut tables = String::new();
    let mut measured = Vec::new();
    // FLOWSTATE_BENCH_PG_ONLY=1: the PostgreSQL figures only.
    let sqlite = !std::env::var("FLOWSTATE_BENCH_PG_ONLY").is_ok_and(|v| v == "1");
    for rows in sizes.into_iter().filter(|_| sqlite && config.wants("http-pages")) {
        let outcome = bench_size(&server, &work, rows, secs, None).await?;
        report::merge_into(&report::report_path(), &outcome.measurements)?;
        measured.extend(outcome.measurements);
        tables.push_str(&outcome.table);
    }
    // The same on PostgreSQL when a server is named (FLOWSTATE_BENCH_PG or --pg URL).
    if let Some(pg) = config.pg.as_deref().filter(|_| config.wants("http-pages")) {
        for &rows in &config.rows {
            let outcome = bench_size(&server, &work, rows, secs, Some(pg)).await?;
            report::merge_into(&report::report_path(), &outcome.measurements)?;
            measured.extend(outcome.measurements);
            tables.push_str(&outcome.table);
        }
    }
    if config.wants("http-large-values") {
        let (table, measurements) = large_values(&server, &work).await?;
        report::merge_into(&report::report_path(), &measurements)?;
        measured.extend(measurements);
        tables.push_str(&table);
    }
    println!("{tables}");
    println!("{}", report::table(&measured));
    println!("figures written to {}", report::report_path().display());
    Ok(())
}

/// The release `flowstate` binary: `FLOWSTATE_BENCH_SERVER` when set (relative to the workspace root), else built
/// (or found current) by cargo.
fn server_binary() -> Result<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .ok_or("the bench crate has no workspace")?;
    if let Some(path) = std::env::var_os("FLOWSTATE_BENCH_SERVER").filter(|p| !p.is_empty()) {
        // Relative to the workspace root (cargo runs a bench in its package's folder).
        let path = root.join(path);
        if !path.is_file() {
            return Err(format!("FLOWSTATE_BENCH_SERVER={} is not a file", path.display()).into());
        }
        return Ok(path);
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    println!("http bench: cargo build --release -p flowstate --bin flowstate");
    let status = Command::new(cargo)
        .args(["build", "--release", "-p", "flowstate", "--bin", "flowstate"])
        .current_dir(root)
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !status.success() {
        return Err(format!("building the server failed ({status})").into());
    }
    let binary = flowstate_bench::target_dir().join("release").join("flowstate");
    if !binary.is_file() {
        return Err(format!("cargo built no {}", binary.display()).into());
    }
    Ok(binary)
}

/// The figures of one database size.
struct SizeOutcome {
    measurements: Vec<Measurement>,
    table: String,
}

async fn bench_size(
    server: &Path,
    work: &Path,
    rows: u64,
    secs: u64,
    pg: Option<&str>,
) -> Result<SizeOutcome> {
    if let Some(pg_server) = pg {
        return bench_size_pg(server, work, rows, secs, pg_server).await;
    }
    let db = load::ensure(rows).await?;
    let age_h = (Utc::now() - db.as_of).num_minutes() as f64 / 60.0;
    let (db_file, db_wal) = (
        file_size(&db.path),
        file_size(&load::with_suffix(&db.path, "-wal")),
    );
    let templates = writer_templates(secs);
    // A working copy when the disk has room for one (with a margin), unless FLOWSTATE_BENCH_HTTP_IN_PLACE=1; else
    // the cached file itself, marked dirty until the writer's runs are deleted again (so an interrupted run makes
    // the loader rebuild it).
    let in_place = std::env::var("FLOWSTATE_BENCH_HTTP_IN_PLACE").is_ok_and(|v| v == "1")
        || free_bytes(work).is_some_and(|free| free < db_file + db_wal + (2 << 30));
    let served = if in_place {
        println!(
            "  serving the cached database itself (no room for a copy, or FLOWSTATE_BENCH_HTTP_IN_PLACE=1)"
        );
        std::fs::write(
            load::dirty_marker(&db.path),
            b"the HTTP bench writes into this database\n",
        )?;
        db.path.clone()
    } else {
        let copy = work.join(format!("serve-{rows}.db"));
        copy_database(&db.path, &copy)?;
        copy
    };

    let port = free_port()?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let log_path = work.join(format!("serve-{rows}.log"));
    let run = pick_run(&served).await?;
    let paths = page_paths(&run);
    let mut child = Server::start(server, &served, addr, &log_path, None)?;
    let phases = load_phases(&mut child, &served, &templates, addr, &paths, secs).await;
    child.stop().await;
    // The same load with the page cache off (`--page-cache-ms 0`): what each page costs to read and render.
    let uncached = match &phases {
        Ok(_) => {
            let addr = SocketAddr::from(([127, 0, 0, 1], free_port()?));
            let log_path = work.join(format!("serve-{rows}-uncached.log"));
            let mut child = Server::start(server, &served, addr, &log_path, Some(0))?;
            let phases = uncached_phases(&mut child, &served, &templates, addr, &paths, secs).await;
            child.stop().await;
            phases
        }
        Err(_) => Err("not run".into()),
    };
    let breakdown = match &phases {
        Ok(_) => time_store_calls(&served, &run).await,
        Err(_) => Ok(Vec::new()),
    };
    if in_place {
        restore_in_place(&db, &templates).await?;
    } else {
        load::remove_db(&served);
    }
    let (phases, breakdown, uncached) = (phases?, breakdown?, uncached?);
    figures(
        rows,
        secs,
        age_h,
        (db_file, db_wal),
        &phases,
        &uncached,
        &breakdown,
        "",
    )
}

/// The same load on PostgreSQL: `flowstate serve --db <URL>` of the PostgreSQL bench database of `rows` runs
/// ([`flowstate_bench::pg::ensure`]) on `pg_server`; the writer's runs are deleted afterwards. Figures named
/// `pg.http_*`.
async fn bench_size_pg(
    server: &Path,
    work: &Path,
    rows: u64,
    secs: u64,
    pg_server: &str,
) -> Result<SizeOutcome> {
    let db = flowstate_bench::pg::ensure(pg_server, rows).await?;
    let age_h = (Utc::now() - db.as_of).num_minutes() as f64 / 60.0;
    let templates = writer_templates(secs);
    let served = PathBuf::from(&db.url);
    let port = free_port()?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let log_path = work.join(format!("serve-pg-{rows}.log"));
    let run = pick_run(&served).await?;
    let paths = page_paths(&run);
    let mut child = Server::start(server, &served, addr, &log_path, None)?;
    let phases = load_phases(&mut child, &served, &templates, addr, &paths, secs).await;
    child.stop().await;
    let uncached = match &phases {
        Ok(_) => {
            let addr = SocketAddr::from(([127, 0, 0, 1], free_port()?));
            let log_path = work.join(format!("serve-pg-{rows}-uncached.log"));
            let mut child = Server::start(server, &served, addr, &log_path, Some(0))?;
            let phases = uncached_phases(&mut child, &served, &templates, addr, &paths, secs).await;
            child.stop().await;
            phases
        }
        Err(_) => Err("not run".into()),
    };
    let breakdown = match &phases {
        Ok(_) => time_store_calls(&served, &run).await,
        Err(_) => Ok(Vec::new()),
    };
    // The writer's runs go again: the bench database keeps its rows.
    let store = Store::open(&served).await?;
    for run in &templates {
        store.delete_state(&run.run_id).await?;
    }
    let total = store.get_workflow_stats().await?.total_workflows;
    store.close().await;
    if u64::try_from(total).ok() != Some(rows) {
        return Err(format!(
            "{} holds {total} runs after the writer's were deleted, not {rows}",
            db.url
        )
        .into());
    }
    let (phases, breakdown, uncached) = (phases?, breakdown?, uncached?);
    let mut outcome = figures(
        rows,
        secs,
        age_h,
        (db.build.database_bytes, 0),
        &phases,
        &uncached,
        &breakdown,
        "PostgreSQL ",
    )?;
    for m in &mut outcome.measurements {
        m.name = format!("pg.{}", m.name);
    }
    outcome.table = format!(
        "PostgreSQL ({}):\n{}",
        flowstate_bench::pg::database_name(rows),
        outcome.table
    );
    Ok(outcome)
}

/// The measurements and the table of one size. `what` names the backend in the notes ("" for SQLite).
#[allow(clippy::too_many_arguments)]
fn figures(
    rows: u64,
    secs: u64,
    age_h: f64,
    (db_file, db_wal): (u64, u64),
    phases: &Phases,
    uncached: &Uncached,
    breakdown: &Breakdown,
    what: &str,
) -> Result<SizeOutcome> {
    let (alone, read, write, writer) = (&phases.alone, &phases.read, &phases.write, &phases.writer);
    let note = format!(
        "{CLIENTS} keep-alive clients for {secs} s each cycling over / , /runs, /runs?status=failed, /failures, \
         /runs?sort=slowest, /failures?window=7d&pipeline=…, /pipelines and a failed run's page within its list, \
         while a writer saves {WRITE_RATE} runs/s (synchronous FULL, 4 saves per run); baseline = the same load \
         without the writer; release `flowstate serve` on loopback, {what}database; database as of {age_h:.1} h before the run"
    );
    let mut ms = Vec::new();
    for (key, _) in PAGES.iter().copied().chain([("all", "")]) {
        let (a, r, w) = (alone.page(key), read.page(key), write.page(key));
        let prefix = format!("http_{key}");
        let p50 = Measurement::new(format!("{prefix}_p50_ms"), rows, w.p50_ms, "ms")
            .higher_is_better(false)
            .baseline(r.p50_ms, "the same load without the writer");
        let mut p99 = Measurement::new(format!("{prefix}_p99_ms"), rows, w.p99_ms, "ms")
            .higher_is_better(false)
            .baseline(r.p99_ms, "the same load without the writer")
            .goal_at_most(P99_GOAL_MS)
            .extra("p50_ms", w.p50_ms)
            .extra("max_ms", w.max_ms)
            .extra("requests", w.requests)
            .extra("errors", w.errors + r.errors)
            .extra("one_client_p50_ms", a.p50_ms)
            .extra("one_client_p99_ms", a.p99_ms);
        if let Some((_, calls)) = breakdown.iter().find(|(page, _)| *page == key) {
            let calls: serde_json::Map<String, serde_json::Value> = calls
                .iter()
                .map(|(call, ms)| (call.clone(), (*ms).into()))
                .collect();
            p99 = p99.extra("store_calls_median_ms", serde_json::Value::Object(calls));
        }
        if key == "all" {
            p99 = p99.note(note.clone());
        }
        let rps_name = if key == "all" {
            "http_rps".to_string()
        } else {
            format!("{prefix}_rps")
        };
        let mut rps = Measurement::new(rps_name, rows, w.rps, "requests/s")
            .higher_is_better(true)
            .baseline(r.rps, "the same load without the writer");
        if key == "all" {
            rps = rps
                .extra("server_cpu_ms_per_request", write.server_cpu_ms_per_request())
                .extra(
                    "server_cpu_ms_per_request_without_writer",
                    read.server_cpu_ms_per_request(),
                )
                .extra("server_cores", write.server_cores())
                .extra("bench_process_cores", write.bench_cores())
                .extra("other_processes_cores", write.other_cores())
                .extra("other_processes_cores_without_writer", read.other_cores())
                .extra("one_client_rps", a.rps);
        }
        ms.extend([p50, p99, rps]);
    }
    let (u_alone, u_write) = (&uncached.alone, &uncached.write);
    for (key, _) in PAGES.iter().copied().chain([("all", "")]) {
        let (a, u, w) = (u_alone.page(key), u_write.page(key), write.page(key));
        ms.push(
            Measurement::new(format!("http_uncached_{key}_p99_ms"), rows, u.p99_ms, "ms")
                .higher_is_better(false)
                .baseline(w.p99_ms, "the same load with the page cache (the default)")
                .goal_at_most(P99_GOAL_MS)
                .extra("p50_ms", u.p50_ms)
                .extra("max_ms", u.max_ms)
                .extra("rps", u.rps)
                .extra("requests", u.requests)
                .extra("one_client_p50_ms", a.p50_ms)
                .extra("one_client_p99_ms", a.p99_ms)
                .note("`flowstate serve --page-cache-ms 0`: every request reads and renders its page; 32 clients and the writer"),
        );
    }
    ms.push(
        Measurement::new("http_uncached_rps", rows, u_write.page("all").rps, "requests/s")
            .higher_is_better(true)
            .baseline(
                write.page("all").rps,
                "the same load with the page cache (the default)",
            )
            .extra("server_cpu_ms_per_request", u_write.server_cpu_ms_per_request())
            .extra(
                "one_client_server_cpu_ms_per_request",
                u_alone.server_cpu_ms_per_request(),
            )
            .extra("writer_saves_per_s", uncached.writer.rate()),
    );
    ms.push(
        Measurement::new(
            "http_errors",
            rows,
            (alone.errors() + read.errors() + write.errors() + u_alone.errors() + u_write.errors()) as f64,
            "responses",
        )
        .higher_is_better(false)
        .goal_at_most(0.0)
        .note("answers that were not 2xx, and failed requests, in every phase"),
    );
    ms.push(
        Measurement::new("http_writer_saves_per_s", rows, writer.rate(), "saves/s")
            .higher_is_better(true)
            .goal_at_least(WRITE_RATE as f64 * 0.98, Some("the writer's pace"))
            .extra("saves", writer.done)
            .extra("errors", writer.errors)
            .extra("save_p50_ms", writer.latencies().median_ms())
            .extra("save_p99_ms", writer.latencies().p99_ms())
            .extra("slowest_save_ms", writer.latencies().max_ms()),
    );
    let mib = |kib: u64| kib as f64 / 1024.0;
    ms.push(
        Measurement::new("serve_peak_rss_mib", rows, mib(phases.peak_kib), "MiB")
            .higher_is_better(false)
            .extra("peak_before_writer_mib", mib(phases.peak_read_kib))
            .extra("rss_after_load_mib", mib(phases.rss_after_kib))
            .note("VmHWM of `flowstate serve` (release) through warm-up, both load phases and after"),
    );
    ms.push(
        Measurement::new(
            "db_bytes_per_run",
            rows,
            (db_file + db_wal) as f64 / rows as f64,
            "bytes",
        )
        .higher_is_better(false)
        .extra("file_bytes", db_file)
        .extra("wal_bytes", db_wal)
        .note("the bench database as loaded (file + -wal) / runs"),
    );

    let mut table = size_table(rows, secs, age_h, phases, breakdown);
    table.push_str(&uncached_table(uncached, write));
    Ok(SizeOutcome {
        measurements: ms,
        table,
    })
}

/// The table printed for one size.
fn size_table(rows: u64, secs: u64, age_h: f64, phases: &Phases, breakdown: &Breakdown) -> String {
    let (alone, read, write, writer) = (&phases.alone, &phases.read, &phases.write, &phases.writer);
    let mut t = String::new();
    let _ = writeln!(
        t,
        "\n== HTTP at {} runs: {CLIENTS} clients, {secs} s per phase (database as of {age_h:.1} h ago) ==",
        report::number(rows as f64)
    );
    let _ = writeln!(
        t,
        "{:<12} | {:>27} | {:>27} | {:>17} | {:>6}",
        "", "with the writer", "without the writer", "one client", ""
    );
    let _ = writeln!(
        t,
        "{:<12} | {:>8} {:>8} {:>9} | {:>8} {:>8} {:>9} | {:>8} {:>8} | {:>6}",
        "page", "p50 ms", "p99 ms", "req/s", "p50 ms", "p99 ms", "req/s", "p50 ms", "p99 ms", "errors"
    );
    for (key, _) in PAGES.iter().copied().chain([("all", "")]) {
        let (a, r, w) = (alone.page(key), read.page(key), write.page(key));
        let _ = writeln!(
            t,
            "{:<12} | {:>8.2} {:>8.2} {:>9.0} | {:>8.2} {:>8.2} {:>9.0} | {:>8.2} {:>8.2} | {:>6}",
            key,
            w.p50_ms,
            w.p99_ms,
            w.rps,
            r.p50_ms,
            r.p99_ms,
            r.rps,
            a.p50_ms,
            a.p99_ms,
            w.errors + r.errors + a.errors
        );
    }
    let _ = writeln!(
        t,
        "server CPU per request: {:.2} ms with the writer, {:.2} ms without, {:.2} ms with one client",
        write.server_cpu_ms_per_request(),
        read.server_cpu_ms_per_request(),
        alone.server_cpu_ms_per_request(),
    );
    let _ = writeln!(
        t,
        "cores busy ({} on this machine), with the writer / without: server {:.2} / {:.2}, bench process \
         (clients, writer) {:.2} / {:.2}, other processes {:.2} / {:.2}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        write.server_cores(),
        read.server_cores(),
        write.bench_cores(),
        read.bench_cores(),
        write.other_cores(),
        read.other_cores()
    );
    let others = [alone, read, write]
        .iter()
        .map(|p| p.other_cores())
        .fold(0.0, f64::max);
    if others > 0.2 {
        let _ = writeln!(
            t,
            "WARNING: other processes kept {others:.2} cores busy during a phase: the figures are disturbed"
        );
    }
    let _ = writeln!(
        t,
        "writer: {} saves in {:.1} s = {:.0}/s (pace {WRITE_RATE}/s), {} failed{}; save p50 {:.1} ms, p99 {:.1} ms, \
         max {:.1} ms",
        writer.done,
        writer.elapsed.as_secs_f64(),
        writer.rate(),
        writer.errors,
        writer
            .first_error
            .as_ref()
            .map(|e| format!(" (first: {e})"))
            .unwrap_or_default(),
        writer.latencies().median_ms(),
        writer.latencies().p99_ms(),
        writer.latencies().max_ms()
    );
    let _ = writeln!(
        t,
        "serve memory: peak (VmHWM) {:.1} MiB, {:.1} MiB before the writer, {:.1} MiB resident after the load",
        phases.peak_kib as f64 / 1024.0,
        phases.peak_read_kib as f64 / 1024.0,
        phases.rss_after_kib as f64 / 1024.0
    );
    if let Some(e) = [alone, read, write].iter().find_map(|p| p.first_error.as_ref()) {
        let _ = writeln!(t, "first failed request: {e}");
    }
    for (key, _) in PAGES {
        let w = write.page(key);
        if w.p99_ms > P99_GOAL_MS {
            let _ = writeln!(
                t,
                "{key}: p99 {:.1} ms misses the {P99_GOAL_MS} ms goal",
                w.p99_ms
            );
        }
    }
    let _ = writeln!(t, "store calls of each page, alone after the load (median):");
    for (page, calls) in breakdown {
        let total: f64 = calls.iter().map(|(_, ms)| ms).sum();
        let _ = writeln!(t, "  {page:<12} {total:>8.2} ms in all");
        for (call, ms) in calls {
            let _ = writeln!(t, "    {call:<42} {ms:>8.2} ms");
        }
    }
    t
}

// ---------------------------------------------------------------------------------------------------------------
// The database.

fn file_size(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// Copies a closed database (and its `-wal`, if any) to `to`, replacing whatever was there.
fn copy_database(from: &Path, to: &Path) -> Result<()> {
    load::remove_db(to);
    std::fs::copy(from, to)
        .map_err(|e| format!("cannot copy {} to {}: {e}", from.display(), to.display()))?;
    let wal = load::with_suffix(from, "-wal");
    if wal.is_file() {
        std::fs::copy(&wal, load::with_suffix(to, "-wal"))?;
    }
    Ok(())
}

/// Bytes free on the file system holding `dir` (`df`; `None` when it cannot tell).
fn free_bytes(dir: &Path) -> Option<u64> {
    let out = Command::new("df")
        .arg("-B1")
        .arg("--output=avail")
        .arg(dir)
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .nth(1)?
        .trim()
        .parse()
        .ok()
}

/// Deletes the writer's runs from a cached database served in place, checks it holds its rows again and
/// clears its dirty marker (left in place, so the loader rebuilds it, when the count differs).
async fn restore_in_place(db: &BenchDb, templates: &[WorkflowState]) -> Result<()> {
    let store = Store::open(&db.path).await?;
    for run in templates {
        store.delete_state(&run.run_id).await?;
    }
    let total = store.get_workflow_stats().await?.total_workflows;
    store.close().await;
    if u64::try_from(total).ok() != Some(db.rows) {
        return Err(format!(
            "{} holds {total} runs after the writer's were deleted, not {}; it will be rebuilt",
            db.path.display(),
            db.rows
        )
        .into());
    }
    std::fs::remove_file(load::dirty_marker(&db.path))?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------------------------
// The server.

/// A free loopback port (released just before the server binds it).
fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// `flowstate serve` as a child process; killed when dropped.
struct Server {
    child: Child,
    log: PathBuf,
}

impl Server {
    /// `page_cache_ms`: `--page-cache-ms` (`None`: the server's default).
    fn start(
        binary: &Path,
        db: &Path,
        addr: SocketAddr,
        log: &Path,
        page_cache_ms: Option<u64>,
    ) -> Result<Server> {
        let log_file = std::fs::File::create(log)?;
        let mut command = Command::new(binary);
        command
            .arg("serve")
            .arg("--db")
            .arg(db)
            .arg("--bind")
            .arg(addr.to_string());
        if let Some(ms) = page_cache_ms {
            command.arg("--page-cache-ms").arg(ms.to_string());
        }
        let child = command
            .env_remove("FLOWSTATE_ADMIN_TOKEN")
            .env_remove("FLOWSTATE_PAGE_CACHE_MS")
            .env_remove("FLOWSTATE_DB")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
        Ok(Server {
            child,
            log: log.to_path_buf(),
        })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The end of the server's log, for error messages.
    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// Waits until `/healthz` answers 200 (the server has opened the database and listens).
    async fn wait_healthy(&mut self, client: &HttpClient, addr: SocketAddr) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(120);
        let uri = format!("http://{addr}/healthz");
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("the server exited ({status}):\n{}", self.log_tail()).into());
            }
            if let Ok((200, _)) = get(client, &uri).await {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("no healthy server within 120 s:\n{}", self.log_tail()).into());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops the server with SIGTERM (it closes the database, which checkpoints the WAL), or kills it after 10 s.
    async fn stop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = Command::new("kill")
                .args(["-TERM", &self.pid().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `VmHWM` (peak resident set) and `VmRSS` of a process, in KiB.
fn memory_kib(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
    };
    Some((field("VmHWM:")?, field("VmRSS:")?))
}

/// Samples the server's `VmHWM` every 100 ms until stopped (the kernel keeps the peak; sampling shows that the
/// process lived through the load and gives the peak before the writer started).
struct MemorySampler {
    running: Arc<AtomicBool>,
    peak_kib: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl MemorySampler {
    fn start(pid: u32) -> MemorySampler {
        let running = Arc::new(AtomicBool::new(true));
        let peak_kib = Arc::new(AtomicU64::new(0));
        let task = {
            let (running, peak_kib) = (running.clone(), peak_kib.clone());
            tokio::spawn(async move {
                while running.load(Ordering::Relaxed) {
                    if let Some((hwm, _)) = memory_kib(pid) {
                        peak_kib.fetch_max(hwm, Ordering::Relaxed);
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            })
        };
        MemorySampler {
            running,
            peak_kib,
            task,
        }
    }

    fn peak_kib(&self) -> u64 {
        self.peak_kib.load(Ordering::Relaxed)
    }

    async fn stop(self) -> u64 {
        self.running.store(false, Ordering::Relaxed);
        let _ = self.task.await;
        self.peak_kib.load(Ordering::Relaxed)
    }
}

// ---------------------------------------------------------------------------------------------------------------
// The load.

fn http_client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

/// A browser's cookies: those the server's `Set-Cookie` headers gave it, sent back with its next requests (the
/// dashboard sets its CSRF cookie on a browser's first page; a browser that keeps it is answered kept pages
/// carrying its token, while one that never sends it gets a new token and cookie on every page).
#[derive(Debug, Default)]
struct Jar(BTreeMap<String, String>);

impl Jar {
    /// The `Cookie` header to send, if any cookie is kept.
    fn header(&self) -> Option<String> {
        (!self.0.is_empty()).then(|| {
            self.0
                .iter()
                .map(|(name, value)| format!("{name}={value}"))
                .collect::<Vec<_>>()
                .join("; ")
        })
    }

    /// Keeps the cookies an answer sets (a cookie set empty is dropped, as the server clears one).
    fn keep(&mut self, headers: &http::HeaderMap) {
        for value in headers.get_all(http::header::SET_COOKIE) {
            let Some((name, value)) = value
                .to_str()
                .ok()
                .and_then(|v| v.split(';').next())
                .and_then(|pair| pair.split_once('='))
            else {
                continue;
            };
            let (name, value) = (name.trim(), value.trim());
            if value.is_empty() {
                self.0.remove(name);
            } else {
                self.0.insert(name.to_string(), value.to_string());
            }
        }
    }
}

/// One GET without cookies: the status, and the body's length (read to the end).
async fn get(client: &HttpClient, uri: &str) -> std::result::Result<(u16, usize), String> {
    get_as(client, uri, &mut Jar::default()).await
}

/// One GET by a browser holding `jar` (sent, and updated from the answer): the status and the body's length.
async fn get_as(client: &HttpClient, uri: &str, jar: &mut Jar) -> std::result::Result<(u16, usize), String> {
    let uri: http::Uri = uri.parse().map_err(|e| format!("bad uri {uri}: {e}"))?;
    let mut request = http::Request::get(uri);
    if let Some(cookie) = jar.header() {
        request = request.header(http::header::COOKIE, cookie);
    }
    let request = request
        .body(Empty::new())
        .map_err(|e| format!("bad request: {e}"))?;
    let response = client
        .request(request)
        .await
        .map_err(|e| format!("request failed: {e}"))?;
    jar.keep(response.headers());
    let status = response.status().as_u16();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("reading the body failed: {e}"))?
        .to_bytes();
    Ok((status, body.len()))
}

/// The outcome of both phases at one size.
struct Phases {
    /// One client, no writer: each page's own time.
    alone: LoadFigures,
    read: LoadFigures,
    write: LoadFigures,
    writer: WriterFigures,
    peak_read_kib: u64,
    peak_kib: u64,
    rss_after_kib: u64,
}

async fn load_phases(
    server: &mut Server,
    db: &Path,
    templates: &[WorkflowState],
    addr: SocketAddr,
    paths: &Paths,
    secs: u64,
) -> Result<Phases> {
    let client = http_client();
    server.wait_healthy(&client, addr).await?;
    // Every page answers before anything is timed (and its size is worth knowing).
    for (key, path) in paths.iter() {
        let (status, bytes) = get(&client, &format!("http://{addr}{path}")).await?;
        if !(200..300).contains(&status) {
            return Err(format!("{path} answered {status}:\n{}", server.log_tail()).into());
        }
        println!("  {key:<12} {path:<20} {status}, {bytes} bytes");
    }

    let pid = server.pid();
    let sampler = MemorySampler::start(pid);
    let duration = Duration::from_secs(secs);
    load(&client, addr, paths, CLIENTS, WARM_UP, pid).await;
    let alone_secs = secs.min(ONE_CLIENT_SECS);
    println!("  {alone_secs} s of one client");
    let alone = load(&client, addr, paths, 1, Duration::from_secs(alone_secs), pid).await;
    println!("  {secs} s of {CLIENTS} clients without the writer");
    let read = load(&client, addr, paths, CLIENTS, duration, pid).await;
    let peak_read_kib = sampler.peak_kib().max(memory_kib(pid).map_or(0, |m| m.0));

    println!("  {secs} s of {CLIENTS} clients while the writer saves {WRITE_RATE} runs/s");
    let (write, writer) = load_with_writer(&client, addr, paths, pid, db, templates, duration).await?;
    // Half a second after the load: what the server keeps.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let peak = sampler.stop().await;
    let (hwm, rss_after_kib) = memory_kib(pid).unwrap_or((0, 0));
    if let Ok(Some(status)) = server.child.try_wait() {
        return Err(format!(
            "the server exited during the load ({status}):\n{}",
            server.log_tail()
        )
        .into());
    }
    Ok(Phases {
        alone,
        read,
        write,
        writer,
        peak_read_kib,
        peak_kib: peak.max(hwm),
        rss_after_kib,
    })
}

/// [`CLIENTS`] clients for `duration` while the writer saves [`WRITE_RATE`] runs/s into `db` (its own store).
async fn load_with_writer(
    client: &HttpClient,
    addr: SocketAddr,
    paths: &Paths,
    pid: u32,
    db: &Path,
    templates: &[WorkflowState],
    duration: Duration,
) -> Result<(LoadFigures, WriterFigures)> {
    let writer_store = Store::open(db)
        .await
        .map_err(|e| format!("the writer cannot open {}: {e}", db.display()))?;
    let (figures, writer) = tokio::join!(
        load(client, addr, paths, CLIENTS, duration, pid),
        write_runs(&writer_store, templates, duration)
    );
    writer_store.close().await;
    Ok((figures, writer))
}

/// The load on a server with the page cache off: one client (each page's read-and-render time), then 32 clients
/// while the writer saves.
struct Uncached {
    alone: LoadFigures,
    write: LoadFigures,
    writer: WriterFigures,
}

async fn uncached_phases(
    server: &mut Server,
    db: &Path,
    templates: &[WorkflowState],
    addr: SocketAddr,
    paths: &Paths,
    secs: u64,
) -> Result<Uncached> {
    let client = http_client();
    server.wait_healthy(&client, addr).await?;
    let pid = server.pid();
    load(&client, addr, paths, CLIENTS, WARM_UP, pid).await;
    let alone_secs = secs.min(ONE_CLIENT_SECS);
    println!("  page cache off: {alone_secs} s of one client");
    let alone = load(&client, addr, paths, 1, Duration::from_secs(alone_secs), pid).await;
    println!("  page cache off: {secs} s of {CLIENTS} clients while the writer saves {WRITE_RATE} runs/s");
    let duration = Duration::from_secs(secs);
    let (write, writer) = load_with_writer(&client, addr, paths, pid, db, templates, duration).await?;
    if let Ok(Some(status)) = server.child.try_wait() {
        return Err(format!(
            "the server exited during the load ({status}):\n{}",
            server.log_tail()
        )
        .into());
    }
    Ok(Uncached { alone, write, writer })
}

/// The table of the uncached load, beside the cached one.
fn uncached_table(uncached: &Uncached, cached: &LoadFigures) -> String {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "page cache off (--page-cache-ms 0), with the writer; the default (1 s cache) beside it:"
    );
    let _ = writeln!(
        t,
        "{:<12} | {:>8} {:>8} {:>9} | {:>8} {:>8} | {:>8} {:>8} {:>9}",
        "page", "p50 ms", "p99 ms", "req/s", "1 client", "p99 ms", "cached", "p99 ms", "req/s"
    );
    for (key, _) in PAGES.iter().copied().chain([("all", "")]) {
        let (a, u, c) = (
            uncached.alone.page(key),
            uncached.write.page(key),
            cached.page(key),
        );
        let _ = writeln!(
            t,
            "{:<12} | {:>8.2} {:>8.2} {:>9.0} | {:>8.2} {:>8.2} | {:>8.2} {:>8.2} {:>9.0}",
            key, u.p50_ms, u.p99_ms, u.rps, a.p50_ms, a.p99_ms, c.p50_ms, c.p99_ms, c.rps
        );
    }
    let _ = writeln!(
        t,
        "server CPU per request, cache off: {:.2} ms under load, {:.2} ms with one client; cache on: {:.2} ms; \
         writer {:.0} saves/s ({} failed)",
        uncached.write.server_cpu_ms_per_request(),
        uncached.alone.server_cpu_ms_per_request(),
        cached.server_cpu_ms_per_request(),
        uncached.writer.rate(),
        uncached.writer.errors
    );
    t
}

/// Latencies and failures of one phase.
#[derive(Debug, Default)]
struct LoadFigures {
    /// Latencies of the 2xx answers, per page key.
    latencies: BTreeMap<&'static str, Vec<Duration>>,
    /// Answers that were not 2xx, and failed requests, per page key.
    errors: BTreeMap<&'static str, u64>,
    first_error: Option<String>,
    elapsed: Duration,
    /// CPU seconds the server spent during the phase.
    server_cpu_secs: f64,
    /// CPU seconds this process (clients, and the writer if any) spent during the phase.
    bench_cpu_secs: f64,
    /// CPU seconds the whole machine spent busy during the phase.
    machine_cpu_secs: f64,
}

/// One page's (or every page's) figures.
#[derive(Debug, Default, Clone, Copy)]
struct PageFigures {
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    rps: f64,
    requests: u64,
    errors: u64,
}

impl LoadFigures {
    fn errors(&self) -> u64 {
        self.errors.values().sum()
    }

    /// The server's CPU time per answered request, in ms.
    fn server_cpu_ms_per_request(&self) -> f64 {
        let requests: usize = self.latencies.values().map(Vec::len).sum();
        self.server_cpu_secs * 1e3 / requests.max(1) as f64
    }

    /// Cores the server kept busy on average.
    fn server_cores(&self) -> f64 {
        self.server_cpu_secs / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Cores this process kept busy on average.
    fn bench_cores(&self) -> f64 {
        self.bench_cpu_secs / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Cores other processes of the machine kept busy on average (they disturb the figures).
    fn other_cores(&self) -> f64 {
        let others = self.machine_cpu_secs - self.server_cpu_secs - self.bench_cpu_secs;
        others.max(0.0) / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The figures of one page, or of every page together for `all`.
    fn page(&self, key: &str) -> PageFigures {
        let wanted = |k: &&str| key == "all" || *k == key;
        let samples = Samples::new(
            self.latencies
                .iter()
                .filter(|(k, _)| wanted(k))
                .flat_map(|(_, v)| v.iter().copied()),
        );
        PageFigures {
            p50_ms: samples.median_ms(),
            p99_ms: samples.p99_ms(),
            max_ms: samples.max_ms(),
            rps: samples.len() as f64 / self.elapsed.as_secs_f64().max(1e-9),
            requests: samples.len() as u64,
            errors: self
                .errors
                .iter()
                .filter(|(k, _)| wanted(k))
                .map(|(_, n)| n)
                .sum(),
        }
    }
}

/// `clients` clients requesting the pages in turn for `duration`, each request as soon as the previous answer
/// is read (client `i` starts with page `i mod` the number of pages, so the mix is even). Each client keeps the
/// cookies the server sets, as a browser does (its [`Jar`]: the CSRF cookie from its first answer on). Requests
/// under way at the end finish and count. Also measures the CPU time the server (`pid`) and this process spent meanwhile.
async fn load(
    client: &HttpClient,
    addr: SocketAddr,
    paths: &Paths,
    clients: usize,
    duration: Duration,
    pid: u32,
) -> LoadFigures {
    let cpu_before = (cpu_secs("self"), cpu_secs(&pid.to_string()), machine_busy_secs());
    let started = Instant::now();
    let deadline = started + duration;
    let shared = Arc::new(Mutex::new(LoadFigures::default()));
    let mut tasks = Vec::with_capacity(clients);
    for i in 0..clients {
        let (client, shared, paths) = (client.clone(), shared.clone(), paths.clone());
        tasks.push(tokio::spawn(async move {
            let mut timed: Vec<(&'static str, Duration)> = Vec::with_capacity(4096);
            let mut failed: Vec<(&'static str, String)> = Vec::new();
            let mut n = i;
            let mut jar = Jar::default();
            while Instant::now() < deadline {
                let (key, path) = &paths[n % paths.len()];
                let key: &'static str = key;
                n += 1;
                let t = Instant::now();
                match get_as(&client, &format!("http://{addr}{path}"), &mut jar).await {
                    Ok((status, _)) if (200..300).contains(&status) => timed.push((key, t.elapsed())),
                    Ok((status, _)) => failed.push((key, format!("GET {path} answered {status}"))),
                    Err(e) => failed.push((key, format!("GET {path}: {e}"))),
                }
            }
            let mut figures = shared.lock().unwrap_or_else(|p| p.into_inner());
            for (key, d) in timed {
                figures.latencies.entry(key).or_default().push(d);
            }
            for (key, message) in failed {
                *figures.errors.entry(key).or_insert(0) += 1;
                figures.first_error.get_or_insert(message);
            }
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
    let mut figures = std::mem::take(&mut *shared.lock().unwrap_or_else(|p| p.into_inner()));
    figures.elapsed = started.elapsed();
    figures.bench_cpu_secs = cpu_secs("self") - cpu_before.0;
    figures.server_cpu_secs = cpu_secs(&pid.to_string()) - cpu_before.1;
    figures.machine_cpu_secs = machine_busy_secs() - cpu_before.2;
    figures
}

// ---------------------------------------------------------------------------------------------------------------
// The writer.

#[derive(Debug, Default)]
struct WriterFigures {
    done: u64,
    errors: u64,
    first_error: Option<String>,
    /// Time of every save (done or failed).
    saves: Vec<Duration>,
    elapsed: Duration,
}

impl WriterFigures {
    /// The saves' latencies.
    fn latencies(&self) -> Samples {
        Samples::new(self.saves.iter().copied())
    }

    fn rate(&self) -> f64 {
        self.done as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// The finished runs the writer saves (each in [`SAVES_PER_RUN`] versions): rows of the bench's generator (its
/// status mix and contexts) with other run ids, enough for `secs` seconds.
fn writer_templates(secs: u64) -> Vec<WorkflowState> {
    let runs = secs * WRITE_RATE / SAVES_PER_RUN + WRITERS;
    let generator = Generator::new(WRITER_SEED, runs, Utc::now());
    (0..runs).map(|i| generator.row(i).to_state()).collect()
}

/// Save number `save` (0-based) of run `run`: running at steps 0, 1, 2, then its finished state. Creation and
/// update times are left to the store (now), so the last-24-hours figures move under the load.
fn version(template: &WorkflowState, save: u64) -> WorkflowState {
    let mut state = template.clone();
    state.created_at = None;
    state.updated_at = None;
    if save + 1 < SAVES_PER_RUN {
        state.status = Status::Running;
        state.current_step_index = save as i64;
        state.error_message = None;
        state.execution_time_ms = None;
        state.last_step_output = None;
    }
    state
}

/// Saves [`WRITE_RATE`] runs/s for `duration` through `store`, one `save_state` each: save `k` is due `k / rate`
/// seconds after the start; [`WRITERS`] tasks each own every eighth run and save its versions in order; a task
/// that falls behind saves at once until it is on time again. Counts the saves done and the failures.
async fn write_runs(store: &Store, templates: &[WorkflowState], duration: Duration) -> WriterFigures {
    let started = Instant::now();
    let deadline = started + duration;
    let interval = Duration::from_nanos(1_000_000_000 / WRITE_RATE);
    let shared = Arc::new(Mutex::new(WriterFigures::default()));
    let templates = Arc::new(templates.to_vec());
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let (store, templates, shared) = (store.clone(), templates.clone(), shared.clone());
        tasks.push(tokio::spawn(async move {
            let mut mine = WriterFigures::default();
            let mut run = w;
            'runs: while let Some(template) = templates.get(run as usize) {
                for save in 0..SAVES_PER_RUN {
                    let due = started + interval.saturating_mul((run * SAVES_PER_RUN + save) as u32);
                    if due >= deadline {
                        break 'runs;
                    }
                    tokio::time::sleep_until(due.into()).await;
                    let t = Instant::now();
                    match store.save_state(&version(template, save)).await {
                        Ok(()) => mine.done += 1,
                        Err(e) => {
                            mine.errors += 1;
                            mine.first_error.get_or_insert_with(|| e.to_string());
                        }
                    }
                    mine.saves.push(t.elapsed());
                }
                run += WRITERS;
            }
            let mut all = shared.lock().unwrap_or_else(|p| p.into_inner());
            all.done += mine.done;
            all.errors += mine.errors;
            all.saves.extend(mine.saves);
            if all.first_error.is_none() {
                all.first_error = mine.first_error;
            }
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
    let mut figures = std::mem::take(&mut *shared.lock().unwrap_or_else(|p| p.into_inner()));
    figures.elapsed = started.elapsed();
    figures
}

// ---------------------------------------------------------------------------------------------------------------
// Where the time goes.

/// Per page key, each store call it makes and its median time in ms.
type Breakdown = Vec<(&'static str, Vec<(String, f64)>)>;

/// Times each store call the pages make (app/src/server/overview.rs, runs.rs, failures.rs, pipelines.rs), alone, read-only,
/// on the database as the load left it.
async fn time_store_calls(db: &Path, run: &str) -> Result<Breakdown> {
    let store = Store::open_with(
        db,
        StoreOptions {
            read_only: true,
            ..Default::default()
        },
    )
    .await?;
    let budget = Budget {
        min: 5,
        max: 200,
        time: Duration::from_millis(500),
    };
    let day_ago = store.now() - chrono::Duration::hours(24);
    let all = ListQuery::default();
    let failed = ListQuery {
        statuses: vec![Status::Failed],
        ..Default::default()
    };
    let s = &store;
    let ms = |samples: Samples| samples.median_ms();

    let overview = vec![
        (
            "get_workflow_stats".into(),
            ms(sample_async(budget, || s.get_workflow_stats()).await?),
        ),
        (
            "count_failed_since(24 h)".into(),
            ms(sample_async(budget, || s.count_failed_since(day_ago)).await?),
        ),
        (
            "execution_percentiles(all)".into(),
            ms(sample_async(budget, || s.execution_percentiles(None)).await?),
        ),
        (
            "execution_percentiles_by_pipeline".into(),
            ms(sample_async(budget, || s.execution_percentiles_by_pipeline()).await?),
        ),
        (
            "stuck_runs(1 h, 10)".into(),
            ms(sample_async(budget, || s.stuck_runs(chrono::Duration::hours(1), 10)).await?),
        ),
        (
            "activity(hour, 24)".into(),
            ms(sample_async(budget, || s.activity(Bucket::Hour, 24)).await?),
        ),
        (
            "activity(day, 30)".into(),
            ms(sample_async(budget, || s.activity(Bucket::Day, 30)).await?),
        ),
    ];
    let runs = vec![
        (
            "list_workflows(first page)".into(),
            ms(sample_async(budget, || s.list_workflows(&all)).await?),
        ),
        (
            "count_runs(all)".into(),
            ms(sample_async(budget, || s.count_runs(&all)).await?),
        ),
        (
            "pipelines".into(),
            ms(sample_async(budget, || s.pipelines()).await?),
        ),
    ];
    let runs_failed = vec![
        (
            "get_workflow_stats (legacy status check)".into(),
            ms(sample_async(budget, || s.get_workflow_stats()).await?),
        ),
        (
            "list_workflows(status=failed)".into(),
            ms(sample_async(budget, || s.list_workflows(&failed)).await?),
        ),
        (
            "count_runs(status=failed)".into(),
            ms(sample_async(budget, || s.count_runs(&failed)).await?),
        ),
        (
            "pipelines".into(),
            ms(sample_async(budget, || s.pipelines()).await?),
        ),
    ];
    let failures = vec![
        (
            "failure_groups(24 h)".into(),
            ms(sample_async(budget, || s.failure_groups(day_ago)).await?),
        ),
        (
            "failure_rates(24 h)".into(),
            ms(sample_async(budget, || s.failure_rates(day_ago)).await?),
        ),
    ];
    let week_ago = store.now() - chrono::Duration::days(7);
    let scope = FailureScope {
        pipeline: Some(PAGE_PIPELINE.to_string()),
        version: None,
    };
    let slowest = ListQuery {
        sort: ListSort::Slowest,
        ..Default::default()
    };
    let runs_slowest = vec![
        (
            "list_workflows(sort=slowest)".into(),
            ms(sample_async(budget, || s.list_workflows(&slowest)).await?),
        ),
        (
            "count_runs(all)".into(),
            ms(sample_async(budget, || s.count_runs(&slowest)).await?),
        ),
        (
            "pipelines".into(),
            ms(sample_async(budget, || s.pipelines()).await?),
        ),
    ];
    let failures_pl = vec![
        (
            "failure_groups_in(7 d, pipeline)".into(),
            ms(sample_async(budget, || s.failure_groups_in(week_ago, &scope)).await?),
        ),
        (
            "failures_by_version(7 d, pipeline)".into(),
            ms(sample_async(budget, || s.failures_by_version(week_ago, PAGE_PIPELINE)).await?),
        ),
    ];
    let pipelines = vec![
        (
            "pipeline_report(24 h)".into(),
            ms(sample_async(budget, || s.pipeline_report(day_ago)).await?),
        ),
        (
            "pipeline_trend(7 d, all)".into(),
            ms(sample_async(budget, || s.pipeline_trend(7, None)).await?),
        ),
    ];
    let run_page = vec![
        (
            "load_run_view(64 KiB heads)".into(),
            ms(sample_async(budget, || s.load_run_view(run, 64 * 1024)).await?),
        ),
        (
            "list_neighbours(status=failed)".into(),
            ms(sample_async(budget, || s.list_neighbours(&failed, run)).await?),
        ),
    ];
    store.close().await;
    Ok(vec![
        ("overview", overview),
        ("runs", runs),
        ("runs_failed", runs_failed),
        ("failures", failures),
        ("runs_slowest", runs_slowest),
        ("failures_pl", failures_pl),
        ("pipelines", pipelines),
        ("run", run_page),
    ])
}

// ---------------------------------------------------------------------------------------------------------------
// Large values (issue 12, item 3).

/// The context of the large run: 50 MB, as another writer (flujo) may store it; flowstate's own saves stop at
/// 16 MiB.
const LARGE_CONTEXT_BYTES: usize = 50 * 1024 * 1024;
/// Concurrent viewers of the large run.
const LARGE_VIEWERS: usize = 8;

/// One phase of [`large_values`]: `viewers` clients open `uri` at once on a fresh server while `/healthz` is asked
/// every 20 ms. Returns the longest view (ms), the server's peak resident memory (MiB), its memory at the start
/// and at the end (MiB), and the longest `/healthz` (ms).
async fn view_phase(server: &Path, db: &Path, work: &Path, uri: &str, viewers: usize) -> Result<[f64; 5]> {
    let addr = SocketAddr::from(([127, 0, 0, 1], free_port()?));
    let mut child = Server::start(server, db, addr, &work.join("large-values.log"), None)?;
    let client = http_client();
    child.wait_healthy(&client, addr).await?;
    let start_rss = memory_kib(child.pid()).map_or(0, |(_, rss)| rss);
    let sampler = MemorySampler::start(child.pid());
    let polling = Arc::new(AtomicBool::new(true));
    let health = {
        let (client, polling) = (client.clone(), polling.clone());
        let uri = format!("http://{addr}/healthz");
        tokio::spawn(async move {
            let mut longest = 0f64;
            while polling.load(Ordering::Relaxed) {
                let t = Instant::now();
                let _ = get(&client, &uri).await;
                longest = longest.max(t.elapsed().as_secs_f64() * 1e3);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            longest
        })
    };
    let views: Vec<_> = (0..viewers)
        .map(|_| {
            let client = client.clone();
            let uri = format!("http://{addr}{uri}");
            tokio::spawn(async move {
                let t = Instant::now();
                let answer = get(&client, &uri).await;
                (answer, t.elapsed().as_secs_f64() * 1e3)
            })
        })
        .collect();
    let mut longest = 0f64;
    for view in views {
        let (answer, ms) = view.await.map_err(|e| format!("a viewer failed: {e}"))?;
        match answer? {
            (200, _) => longest = longest.max(ms),
            (status, _) => return Err(format!("{uri} answered {status}").into()),
        }
    }
    polling.store(false, Ordering::Relaxed);
    let health_ms = health
        .await
        .map_err(|e| format!("the health poller failed: {e}"))?;
    // Let the allocator give back what the views freed before reading the resident memory.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let end_rss = memory_kib(child.pid()).map_or(0, |(_, rss)| rss);
    let peak = sampler
        .stop()
        .await
        .max(memory_kib(child.pid()).map_or(0, |(hwm, _)| hwm));
    child.stop().await;
    let mib = |kib: u64| kib as f64 / 1024.0;
    Ok([longest, mib(peak), mib(start_rss), mib(end_rss), health_ms])
}

/// The run page of a run with a 50 MB context (issue 12: it used to take 4 s and 1.2 GB for one view, 16 s and
/// 2.5 GB for eight, with `/healthz` waiting 15 s): 1 and [`LARGE_VIEWERS`] viewers, beside the same for an
/// ordinary run of the same database; then the whole value as plain text.
async fn large_values(server: &Path, work: &Path) -> Result<(String, Vec<Measurement>)> {
    let db = work.join("large-values.db");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(load::with_suffix(&db, suffix));
    }
    {
        let store = Store::open(&db).await?;
        let mut small = WorkflowState::new("small", "bench");
        small.pipeline_context = serde_json::json!({ "prompt": "summarise the invoice", "pages": 3 });
        store.save_state(&small).await?;
        store.close().await;
    }
    let context = format!(
        r#"{{"document": "{}", "pages": 5000}}"#,
        "lorem ipsum dolor sit amet ".repeat(LARGE_CONTEXT_BYTES / 27)
    );
    {
        let conn = rusqlite::Connection::open(&db)?;
        conn.execute(
            "INSERT INTO workflow_state (run_id, pipeline_id, pipeline_name, pipeline_version, current_step_index, \
             pipeline_context, status, created_at, updated_at) \
             VALUES ('large', 'bench', 'bench', '1', 0, ?1, 'completed', '2026-01-01T00:00:00', '2026-01-01T00:00:00')",
            [&context],
        )?;
    }
    println!(
        "large values: a run with a {} MB context",
        context.len() / (1024 * 1024)
    );
    let mut rows = Vec::new();
    let mut measurements = Vec::new();
    for viewers in [1, LARGE_VIEWERS] {
        let ordinary = view_phase(server, &db, work, "/runs/small", viewers).await?;
        let large = view_phase(server, &db, work, "/runs/large", viewers).await?;
        let name = |what: &str| format!("large_context_{viewers}_viewers_{what}");
        measurements.push(
            Measurement::new(name("ms"), 1, large[0], "ms")
                .baseline(ordinary[0], "the page of an ordinary run, as many viewers")
                .goal_at_most(1000.0),
        );
        measurements.push(
            Measurement::new(name("peak_rss_mib"), 1, large[1], "MiB")
                .baseline(ordinary[1], "the page of an ordinary run, as many viewers")
                .goal_at_most(512.0),
        );
        measurements.push(
            Measurement::new(name("healthz_ms"), 1, large[4], "ms")
                .baseline(ordinary[4], "the page of an ordinary run, as many viewers")
                .goal_at_most(250.0),
        );
        measurements.push(
            Measurement::new(name("rss_after_mib"), 1, large[3], "MiB")
                .baseline(large[2], "the same server before the views"),
        );
        rows.push((viewers, ordinary, large));
    }
    // The whole value, one click away: as stored, byte for byte.
    let addr = SocketAddr::from(([127, 0, 0, 1], free_port()?));
    let mut child = Server::start(server, &db, addr, &work.join("large-values.log"), None)?;
    let client = http_client();
    child.wait_healthy(&client, addr).await?;
    let t = Instant::now();
    let (status, len) = get(&client, &format!("http://{addr}/raw/context?run=large")).await?;
    let raw_ms = t.elapsed().as_secs_f64() * 1e3;
    let raw_peak = memory_kib(child.pid()).map_or(0, |(hwm, _)| hwm) as f64 / 1024.0;
    child.stop().await;
    if status != 200 || len != context.len() {
        return Err(format!(
            "/raw/context answered {status} with {len} bytes, not {}",
            context.len()
        )
        .into());
    }
    measurements.push(
        Measurement::new("large_context_raw_ms", 1, raw_ms, "ms").note(format!(
            "the whole 50 MB context as plain text; server peak {raw_peak:.0} MiB"
        )),
    );

    let mut table = String::from(
        "\nLarge values: the page of a run with a 50 MB context (fresh server per phase)\n\n\
         | viewers | run | longest view | server peak | memory after | longest /healthz |\n\
         |---:|---|---:|---:|---:|---:|\n",
    );
    for (viewers, ordinary, large) in rows {
        for (what, f) in [("ordinary", ordinary), ("50 MB context", large)] {
            let _ = writeln!(
                table,
                "| {viewers} | {what} | {:.1} ms | {:.0} MiB | {:.0} MiB (from {:.0}) | {:.1} ms |",
                f[0], f[1], f[3], f[2], f[4]
            );
        }
    }
    let _ = writeln!(
        table,
        "\nthe whole context at /raw/context: {raw_ms:.0} ms, server peak {raw_peak:.0} MiB"
    );
    Ok((table, measurements))
}
