//! `flowstate copy --from SRC --to DST`: every run of one database into another, SQLite or PostgreSQL, either way.
//!
//! - **Whole rows.** The source is opened read-only and read in run-id order ([`Store::export_runs`], keyset
//!   pages); the destination is opened for writing (created and migrated when needed) and written with
//!   [`Store::save_many`], one transaction per batch, each run's `created_at` and `updated_at` given, so every value
//!   is kept as read. A reader task reads the next batch while the writer writes the current one (a bounded
//!   channel between them).
//! - **In bulk** into a database that holds no runs ([`Store::begin_bulk_load`]): between two SQLite files inside
//!   SQLite ([`Store::attach_bulk_source`], [`Store::bulk_copy_range`]: no run decoded unless the per-run path
//!   would change it), otherwise batch by batch through [`Store::bulk_write`]; every path shares one write loop
//!   ([`drive`]).
//! - **Resumable.** After a batch is committed, at most about once a second, the copy records its progress in the
//!   destination's audit table (action `copy`: the source without its password, the last run id copied, the runs
//!   copied so far). Run again after a crash or a kill, it finds the newest entry for the same source and goes on
//!   after that run id. Saves are upserts by run id, so the batch that was being written when the copy died is
//!   written again, never doubled.
//! - **Safe.** The same database as source and destination is a usage error (nothing is opened). A destination
//!   that already holds runs is refused (a copy replaces runs with the same id) unless it is this source's
//!   unfinished copy, or `--force` is given.
//! - **Verified.** Each batch's last run is read back from the destination and compared with the source's, field
//!   by field; at the end the destination's run count (from its counters: no table scan) must be what it held
//!   before plus the runs copied. A run the destination refuses (a value flowstate does not accept, such as an
//!   unknown status or an over-long error message) is reported by id and reason, and makes the command fail.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use flowstate_store::{
    BackendKind, BulkBatch, BulkNote, BulkSource, CopiedRange, Durability, ListQuery, Location, RangeNote,
    Store, StoreError, StoreOptions, WorkflowState,
};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::output::json_doc;
use super::{CliError, CopyArgs};

/// The audit action of a copy's progress entries.
pub const ACTION: &str = "copy";
/// The audit actor of a copy's progress entries.
const ACTOR: &str = "flowstate copy";
/// The most refused runs listed by id (in the output and in a progress entry); the count is always whole.
const MAX_LISTED_REFUSALS: usize = 20;
/// How often progress is shown and recorded.
const TICK: Duration = Duration::from_secs(1);
/// Runs per transaction when `--batch` is not given.
const DEFAULT_BATCH: u32 = 5_000;
/// Runs per transaction of a raw copy between SQLite files when `--batch` is not given: nothing of a range is held
/// in memory, and fewer, larger commits spend less on the WAL's checkpoints (12,553 runs/s against 8,666 at 5,000:
/// BENCHMARKS.md).
const DEFAULT_RAW_BATCH: u32 = 20_000;
/// Batches read ahead of the writer.
const READ_AHEAD: usize = 2;

/// Where a copy stands, as recorded in the destination's audit table.
#[derive(Debug, Clone, Default)]
struct Progress {
    /// The last run id copied (every run up to it, in byte order, is in the destination).
    last_run_id: Option<String>,
    /// Runs read from the source up to `last_run_id`, over every attempt.
    copied: u64,
    /// Runs the destination refused, over every attempt.
    refused: u64,
    /// The first refused runs: id and reason.
    refused_runs: Vec<(String, String)>,
    /// Runs the destination held before the first attempt.
    dst_before: u64,
    /// The copy goes through the destination's bulk load ([`Store::begin_bulk_load`]).
    bulk: bool,
}

impl Progress {
    fn detail(&self, source: &str, state: &str, total: u64) -> Value {
        json!({
            "source": source,
            "state": state,
            "last_run_id": self.last_run_id,
            "copied": self.copied,
            "refused": self.refused,
            "refused_runs": refusals_json(&self.refused_runs),
            "dst_before": self.dst_before,
            "source_runs": total,
            "bulk": self.bulk,
        })
    }

    fn from_detail(detail: &Value) -> Progress {
        let count = |key: &str| detail[key].as_u64().unwrap_or(0);
        Progress {
            last_run_id: detail["last_run_id"].as_str().map(str::to_string),
            copied: count("copied"),
            refused: count("refused"),
            refused_runs: detail["refused_runs"]
                .as_array()
                .map(|list| {
                    list.iter()
                        .map(|r| {
                            let text = |k: &str| r[k].as_str().unwrap_or("").to_string();
                            (text("run_id"), text("reason"))
                        })
                        .collect()
                })
                .unwrap_or_default(),
            dst_before: count("dst_before"),
            bulk: detail["bulk"].as_bool().unwrap_or(false),
        }
    }
}

impl Progress {
    /// Counts refused runs and keeps the first ones' ids and reasons.
    fn note_refused(&mut self, refused: Vec<(String, String)>) {
        self.refused += refused.len() as u64;
        for (id, reason) in refused {
            if self.refused_runs.len() < MAX_LISTED_REFUSALS {
                self.refused_runs.push((id, reason));
            }
        }
    }
}

fn refusals_json(list: &[(String, String)]) -> Value {
    list.iter()
        .map(|(id, reason)| json!({ "run_id": id, "reason": reason }))
        .collect()
}

/// Runs the copy and returns what to print on stdout.
///
/// # Errors
/// [`CliError::Usage`] when source and destination are the same database; [`CliError::Runtime`] when either
/// cannot be opened, the destination already holds runs (without `--force`), a batch cannot be read or written,
/// a run was refused, or the verification finds a difference.
pub async fn run(args: CopyArgs, json: bool) -> Result<String, CliError> {
    let from = Location::parse(&args.from);
    let to = Location::parse(&args.to);
    let source = identity(&from)?;
    let destination = identity(&to)?;
    if source == destination {
        return Err(CliError::Usage(format!(
            "--from and --to are the same database ({source}); copy into another file or database"
        )));
    }
    let src = Store::open_with(&args.from, options(true)).await?;
    let result = copy(&src, &args, &source, &destination, json).await;
    src.close().await;
    result
}

/// The destination commits with `synchronous=NORMAL` on SQLite: a power loss may drop the last batches, but
/// never a batch before a progress entry that survived (the WAL keeps commits in order), and a copy run again
/// writes the lost ones.
fn options(read_only: bool) -> StoreOptions {
    StoreOptions {
        read_only,
        max_connections: 2,
        durability: Durability::Normal,
        ..Default::default()
    }
}

/// One database, written the same way whatever the spelling: a SQLite file's canonical path, or a PostgreSQL
/// server, port and database (without the user and the password). Two locations with the same identity are the
/// same database.
fn identity(location: &Location) -> Result<String, CliError> {
    match location {
        Location::Sqlite(path) => Ok(canonical(path).display().to_string()),
        Location::Postgres(url) => {
            let parsed = url::Url::parse(url)
                .map_err(|e| CliError::Usage(format!("{} is not a valid URL: {e}", redact(url))))?;
            let query_value = |name: &str| {
                parsed
                    .query_pairs()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.into_owned())
            };
            let host = query_value("host")
                .or_else(|| parsed.host_str().map(str::to_string))
                .unwrap_or_else(|| "localhost".into())
                .to_ascii_lowercase();
            let port = query_value("port")
                .and_then(|p| p.parse::<u16>().ok())
                .or(parsed.port())
                .unwrap_or(5432);
            let user = query_value("user").unwrap_or_else(|| parsed.username().to_string());
            let database = query_value("dbname")
                .or_else(|| {
                    let path = parsed.path().trim_start_matches('/');
                    (!path.is_empty()).then(|| {
                        percent_encoding::percent_decode_str(path)
                            .decode_utf8_lossy()
                            .into_owned()
                    })
                })
                .unwrap_or(user);
            Ok(format!("postgres://{host}:{port}/{database}"))
        }
    }
}

/// The path as the file system resolves it (symbolic links, `..`), also for a file not created yet.
fn canonical(path: &Path) -> PathBuf {
    if let Ok(real) = path.canonicalize() {
        return real;
    }
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    match (parent.canonicalize(), path.file_name()) {
        (Ok(dir), Some(name)) => dir.join(name),
        _ => path.to_path_buf(),
    }
}

/// A URL without its password.
fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => "the URL".into(),
    }
}

/// A batch read from the source, or why reading stopped.
type Batch = Result<Vec<WorkflowState>, StoreError>;

async fn copy(
    src: &Store,
    args: &CopyArgs,
    source: &str,
    destination: &str,
    json: bool,
) -> Result<String, CliError> {
    let total = src.get_workflow_stats().await?.total_workflows.max(0) as u64;
    let dst = Store::open_with(&args.to, options(false)).await?;
    let result = copy_into(src, &dst, args, total, source, destination, json).await;
    dst.close().await;
    result
}

#[allow(clippy::too_many_arguments)]
async fn copy_into(
    src: &Store,
    dst: &Store,
    args: &CopyArgs,
    total: u64,
    source: &str,
    destination: &str,
    json: bool,
) -> Result<String, CliError> {
    let dst_runs = dst.get_workflow_stats().await?.total_workflows.max(0) as u64;
    let previous = dst
        .audit_log(ListQuery::MAX_LIMIT)
        .await?
        .into_iter()
        .find(|e| e.action == ACTION && e.detail["source"].as_str() == Some(source));
    let previous_state = previous
        .as_ref()
        .and_then(|e| e.detail["state"].as_str().map(str::to_string));
    let mut progress = match previous {
        Some(entry) if entry.detail["state"] == "done" && !args.force => {
            return Err(CliError::Runtime(format!(
                "{destination} already holds a finished copy of {source} ({} runs); pass --force to copy \
                 again (runs with the same id are replaced)",
                entry.detail["copied"]
            )));
        }
        Some(entry) if entry.detail["state"] != "done" => Progress::from_detail(&entry.detail),
        _ if dst_runs > 0 && !args.force => {
            return Err(CliError::Runtime(format!(
                "{destination} already holds {dst_runs} runs; copy into a new or empty database, or pass \
                 --force to copy beside them (runs with the same id are replaced)"
            )));
        }
        _ => Progress {
            dst_before: dst_runs,
            ..Progress::default()
        },
    };
    let skipped = progress.copied;
    if let Some(after) = &progress.last_run_id {
        eprintln!("resuming after {skipped} runs (the last copied: {after})");
    }
    // The bulk path: into a database that held no runs before the copy (new, or this source's unfinished bulk
    // copy, which opening it has just finished as far as it went). Not once the rows are all in (a copy killed
    // while building the indexes: opening it built them), nor beside runs that were there before.
    let resumed_state = previous_state.as_deref();
    progress.bulk = progress.dst_before == 0
        && (dst_runs == 0 || (progress.bulk && matches!(resumed_state, Some("started" | "copying"))));
    let entry = dst
        .record_audit(ACTOR, ACTION, &progress.detail(source, "started", total), None, 0)
        .await?;

    let batch = args.batch.unwrap_or(DEFAULT_BATCH) as usize;
    let lossy_floats = dst.backend() == BackendKind::Postgres;
    let started = Instant::now();
    let timing = if progress.bulk {
        let src_file = match Location::parse(&args.from) {
            Location::Sqlite(path) if !args.no_raw => Some(path),
            _ => None,
        };
        copy_bulk(
            src,
            src_file.as_deref(),
            args.batch,
            dst,
            &mut progress,
            entry,
            batch,
            total,
            source,
            destination,
            lossy_floats,
        )
        .await?
    } else {
        copy_rows(
            src,
            dst,
            &mut progress,
            batch,
            total,
            source,
            destination,
            lossy_floats,
        )
        .await?
    };
    let copied_now = timing.copied_now;
    let (waiting, writing) = (timing.waiting, timing.writing);
    let seconds = started.elapsed().as_secs_f64();
    dst.record_audit(
        ACTOR,
        ACTION,
        &progress.detail(source, "done", total),
        Some(progress.copied as i64),
        copied_now as i64,
    )
    .await?;

    // Verification: the destination's count (its counters: no scan) against what it held plus what was copied.
    let expected = progress.dst_before + progress.copied - progress.refused;
    let present = dst.get_workflow_stats().await?.total_workflows.max(0) as u64;
    let exact = progress.dst_before == 0;
    let verified = if exact {
        present == expected
    } else {
        // Copied beside runs the destination held: a copied run may have replaced one of them.
        present <= expected && present >= progress.dst_before.max(progress.copied - progress.refused)
    };
    let rate = if seconds > 0.0 {
        copied_now as f64 / seconds
    } else {
        0.0
    };
    if !verified {
        return Err(CliError::Runtime(format!(
            "verification failed: {destination} holds {present} runs, expected {} ({} before the copy + {} \
             copied{}); run the copy again to resume, or compare with `flowstate stats`",
            if exact {
                expected.to_string()
            } else {
                format!("{}..={expected}", progress.dst_before)
            },
            progress.dst_before,
            progress.copied - progress.refused,
            if progress.refused > 0 {
                format!(", {} refused", progress.refused)
            } else {
                String::new()
            },
        )));
    }
    if progress.refused > 0 {
        let listed: Vec<String> = progress
            .refused_runs
            .iter()
            .map(|(id, reason)| format!("{id} ({reason})"))
            .collect();
        return Err(CliError::Runtime(format!(
            "{} of {} runs could not be copied: the destination refused them: {}{}; every other run was \
             copied and verified",
            progress.refused,
            progress.copied,
            listed.join("; "),
            if progress.refused as usize > listed.len() {
                "; …"
            } else {
                ""
            },
        )));
    }
    if json {
        return Ok(json_doc(&json!({
            "source": source,
            "destination": destination,
            "copied": copied_now,
            "skipped": skipped,
            "refused": progress.refused,
            "source_runs": total,
            "destination_runs": present,
            "seconds": (seconds * 1000.0).round() / 1000.0,
            "rate": rate.round(),
            "verified": verified,
            "seconds_waiting_for_source": (waiting.as_secs_f64() * 1000.0).round() / 1000.0,
            "seconds_writing": (writing.as_secs_f64() * 1000.0).round() / 1000.0,
            "bulk": progress.bulk,
            "raw": timing.raw,
            "copied_apart": timing.apart,
            "seconds_finishing": (timing.finishing.as_secs_f64() * 1000.0).round() / 1000.0,
            // The steps of the bulk load's end that took a millisecond or more (each index build, the recount).
            "finishing_steps": timing
                .finish_steps
                .iter()
                .filter(|(_, micros)| *micros >= 1000)
                .map(|(step, micros)| json!({ "step": step, "seconds": (*micros as f64 / 1000.0).round() / 1000.0 }))
                .collect::<Vec<_>>(),
        })));
    }
    let resumed = if skipped > 0 {
        format!(" (resumed after {skipped} runs copied before)")
    } else {
        String::new()
    };
    Ok(format!(
        "copied {copied_now} runs from {source} to {destination} in {seconds:.1} s ({} runs/s){resumed}\n\
         verified: {destination} holds {present} runs{}\n",
        thousands(rate.round() as u64),
        if exact {
            ", as expected".to_string()
        } else {
            format!(" ({} before the copy)", progress.dst_before)
        },
    ))
}

/// What a copy's write loop measured.
struct Timing {
    /// Runs read from the source by this attempt.
    copied_now: u64,
    /// The writer waiting for the reader (and, on the bulk path, the validation).
    waiting: Duration,
    /// Writing, with the read-back checks.
    writing: Duration,
    /// Building the indexes and counting the counters after a bulk load.
    finishing: Duration,
    /// The copy went from SQLite file to SQLite file inside SQLite ([`Store::bulk_copy_range`]).
    raw: bool,
    /// Runs of a raw copy that were not copied as they are, but read, validated and written as saves.
    apart: u64,
    /// Each statement of the bulk load's end (index builds, triggers, the counters' recount) and its microseconds.
    finish_steps: Vec<(String, u64)>,
}

/// Where the write loop takes its items from.
trait Feed<T> {
    /// The next item; `None` once there are no more.
    async fn next(&mut self) -> Option<Result<T, StoreError>>;
}

/// The batches a reader task sends.
impl<T> Feed<T> for mpsc::Receiver<Result<T, StoreError>> {
    async fn next(&mut self) -> Option<Result<T, StoreError>> {
        self.recv().await
    }
}

/// No items to wait for: the writer reads for itself (a raw copy), until its write step says it is done.
struct Unfed;

impl Feed<()> for Unfed {
    async fn next(&mut self) -> Option<Result<(), StoreError>> {
        Some(Ok(()))
    }
}

/// The write loop every path shares: takes the next item (`feed`, timed as waiting; `None` ends the copy) and
/// hands it with the progress so far to `write` (timed as writing), which returns the progress once the item is
/// written (`None`: nothing was left to write); about once a [`TICK`], calls `tick` and shows the progress.
async fn drive<T, W, WF, K, KF>(
    progress: &mut Progress,
    total: u64,
    source: &str,
    feed: &mut impl Feed<T>,
    mut write: W,
    mut tick: K,
) -> Result<Timing, CliError>
where
    W: FnMut(T, Progress) -> WF,
    WF: std::future::Future<Output = Result<Option<Progress>, CliError>>,
    K: FnMut(Progress) -> KF,
    KF: std::future::Future<Output = Result<(), CliError>>,
{
    let started = Instant::now();
    let mut last_tick = started;
    let mut copied_now = 0u64;
    let (mut waiting, mut writing) = (Duration::ZERO, Duration::ZERO);
    loop {
        let wait_start = Instant::now();
        let Some(item) = feed.next().await else { break };
        waiting += wait_start.elapsed();
        let write_start = Instant::now();
        let item = item.map_err(|e| CliError::Runtime(format!("reading {source}: {e}")))?;
        let Some(next_progress) = write(item, progress.clone()).await? else {
            break;
        };
        writing += write_start.elapsed();
        copied_now += next_progress.copied - progress.copied;
        *progress = next_progress;
        if last_tick.elapsed() >= TICK {
            last_tick = Instant::now();
            tick(progress.clone()).await?;
            eprintln!(
                "{}",
                progress_line(progress.copied, total, copied_now, started.elapsed())
            );
        }
    }
    Ok(Timing {
        copied_now,
        waiting,
        writing,
        finishing: Duration::ZERO,
        raw: false,
        apart: 0,
        finish_steps: Vec::new(),
    })
}

/// Nothing to do on a tick (the bulk paths record their progress with each batch).
async fn no_tick(_: Progress) -> Result<(), CliError> {
    Ok(())
}

/// Waits for the reader task and reports how it ended.
async fn join_reader<T>(task: tokio::task::JoinHandle<T>) -> Result<(), CliError> {
    task.await
        .map(|_| ())
        .map_err(|e| CliError::Runtime(format!("the reader task failed: {e}")))
}

/// The per-run path: each batch saved with [`Store::save_many`] (indexes and counters kept row by row), progress
/// recorded at most once a [`TICK`] (a batch written again after a crash is an upsert: never doubled).
#[allow(clippy::too_many_arguments)]
async fn copy_rows(
    src: &Store,
    dst: &Store,
    progress: &mut Progress,
    batch: usize,
    total: u64,
    source: &str,
    destination: &str,
    lossy_floats: bool,
) -> Result<Timing, CliError> {
    let (tx, mut rx) = mpsc::channel::<Batch>(READ_AHEAD);
    let reader = tokio::spawn(read_batches(src.clone(), progress.last_run_id.clone(), batch, tx));
    let outcome = drive(
        progress,
        total,
        source,
        &mut rx,
        |rows: Vec<WorkflowState>, mut next| async move {
            let Some(last) = rows.last() else {
                return Ok(None);
            };
            let refused = save_batch(dst, &rows)
                .await
                .map_err(|e| CliError::Runtime(format!("writing {destination}: {e}")))?;
            if !refused.iter().any(|(id, _)| *id == last.run_id) {
                check_read_back(dst, last, lossy_floats).await?;
            }
            for (id, reason) in &refused {
                eprintln!("refused run {id}: {reason}");
            }
            next.note_refused(refused);
            next.copied += rows.len() as u64;
            next.last_run_id = Some(last.run_id.clone());
            Ok(Some(next))
        },
        |p: Progress| async move {
            dst.record_audit(ACTOR, ACTION, &p.detail(source, "copying", total), None, 0)
                .await
                .map(|_| ())
                .map_err(CliError::from)
        },
    )
    .await;
    drop(rx);
    let read = join_reader(reader).await;
    let timing = outcome?;
    read?;
    Ok(timing)
}

/// A batch read and validated for the bulk path: the runs that passed and the refused ones, how many were read,
/// and the last run id read.
type CheckedBatch = Result<(BulkBatch, u64, String), StoreError>;

/// The bulk path ([`Store::begin_bulk_load`]): the destination's indexes and counter triggers are dropped, each
/// batch is validated by a task of its own while the previous one is written, and written in one transaction
/// together with the copy's progress (the audit entry `entry`, updated in place: so a resumed copy knows exactly
/// which batches are in); then the indexes are built and the counters counted once.
#[allow(clippy::too_many_arguments)]
async fn copy_bulk(
    src: &Store,
    src_file: Option<&Path>,
    args_batch: Option<u32>,
    dst: &Store,
    progress: &mut Progress,
    entry: i64,
    batch: usize,
    total: u64,
    source: &str,
    destination: &str,
    lossy_floats: bool,
) -> Result<Timing, CliError> {
    dst.begin_bulk_load()
        .await
        .map_err(|e| CliError::Runtime(format!("preparing {destination} for the copy: {e}")))?;
    let raw_source = match src_file {
        Some(path) if dst.backend() == BackendKind::Sqlite => dst
            .attach_bulk_source(path)
            .await
            .map_err(|e| CliError::Runtime(format!("attaching {source} to {destination}: {e}")))?,
        _ => None,
    };
    let mut timing = match raw_source {
        Some(raw) => {
            let batch = args_batch.map_or(DEFAULT_RAW_BATCH as usize, |b| b as usize);
            let copied = copy_raw(src, dst, progress, entry, &raw, batch, total, source, destination).await;
            let detached = dst.detach_bulk_source().await;
            let timing = copied?;
            detached?;
            timing
        }
        None => {
            copy_checked(
                dst,
                src,
                progress,
                entry,
                batch,
                total,
                source,
                destination,
                lossy_floats,
            )
            .await?
        }
    };
    // Every row is in: from here on a resumed copy has nothing to write in bulk.
    let note = BulkNote {
        id: entry,
        detail: progress.detail(source, "finishing", total),
        matched: None,
        affected: timing.copied_now as i64,
    };
    dst.bulk_write(BulkBatch::new(Vec::new()), Some(&note)).await?;
    eprintln!(
        "{}; building the indexes and counting the counters",
        progress_line(
            progress.copied,
            total,
            timing.copied_now,
            timing.writing + timing.waiting
        )
    );
    let finish_start = Instant::now();
    let report = dst
        .finish_bulk_load()
        .await
        .map_err(|e| CliError::Runtime(format!("finishing {destination}: {e}")))?;
    timing.finishing = finish_start.elapsed();
    timing.finish_steps = report.timings;
    Ok(timing)
}

/// The bulk path's rows through the store's API: read, validated (a task of its own) and written with
/// [`Store::bulk_write`], each batch with its progress note.
#[allow(clippy::too_many_arguments)]
async fn copy_checked(
    dst: &Store,
    src: &Store,
    progress: &mut Progress,
    entry: i64,
    batch: usize,
    total: u64,
    source: &str,
    destination: &str,
    lossy_floats: bool,
) -> Result<Timing, CliError> {
    let (tx, mut read_rx) = mpsc::channel::<Batch>(READ_AHEAD);
    let reader = tokio::spawn(read_batches(src.clone(), progress.last_run_id.clone(), batch, tx));
    let (checked_tx, mut rx) = mpsc::channel::<CheckedBatch>(READ_AHEAD);
    let checker = tokio::spawn(async move {
        while let Some(read) = read_rx.recv().await {
            let checked = match read {
                Ok(rows) => {
                    let Some(last) = rows.last().map(|r| r.run_id.clone()) else {
                        break;
                    };
                    let n = rows.len() as u64;
                    // Validation is CPU work (every JSON value written out): off the runtime's threads.
                    tokio::task::spawn_blocking(move || BulkBatch::new(rows))
                        .await
                        .map(|b| (b, n, last))
                        .map_err(|e| StoreError::Conflict(format!("validating a batch failed: {e}")))
                }
                Err(e) => Err(e),
            };
            let failed = checked.is_err();
            if checked_tx.send(checked).await.is_err() || failed {
                return;
            }
        }
    });
    let copied_before = progress.copied;
    let outcome = drive(
        progress,
        total,
        source,
        &mut rx,
        |(checked, n, last_id): (BulkBatch, u64, String), mut next| async move {
            let last = checked.runs().last().cloned();
            for (id, reason) in &checked.refused {
                eprintln!("refused run {id}: {reason}");
            }
            next.note_refused(checked.refused.clone());
            next.copied += n;
            next.last_run_id = Some(last_id);
            let note = BulkNote {
                id: entry,
                detail: next.detail(source, "copying", total),
                matched: None,
                affected: (next.copied - copied_before) as i64,
            };
            dst.bulk_write(checked, Some(&note))
                .await
                .map_err(|e| CliError::Runtime(format!("writing {destination}: {e}")))?;
            if let Some(last) = &last {
                check_read_back(dst, last, lossy_floats).await?;
            }
            Ok(Some(next))
        },
        no_tick,
    )
    .await;
    drop(rx);
    let (read, checked) = (join_reader(reader).await, join_reader(checker).await);
    let timing = outcome?;
    read.and(checked)?;
    Ok(timing)
}

/// The bulk path between two SQLite files ([`Store::attach_bulk_source`]): each range of `batch` runs moved
/// inside SQLite by [`Store::bulk_copy_range`] with its progress note; the runs it cannot move as they are go the
/// per-run way in the same transaction. Each range's last run is read back from both files and compared.
#[allow(clippy::too_many_arguments)]
async fn copy_raw(
    src: &Store,
    dst: &Store,
    progress: &mut Progress,
    entry: i64,
    raw: &BulkSource,
    batch: usize,
    total: u64,
    source: &str,
    destination: &str,
) -> Result<Timing, CliError> {
    let copied_before = progress.copied;
    let apart = std::cell::Cell::new(0u64);
    let apart = &apart;
    let mut timing = drive(
        progress,
        total,
        source,
        &mut Unfed,
        |(), next: Progress| async move {
            let base = next.clone();
            let source_name = source.to_string();
            let note: RangeNote = Box::new(move |range: &CopiedRange| {
                let after = advanced(base, range);
                BulkNote {
                    id: entry,
                    detail: after.detail(&source_name, "copying", total),
                    matched: None,
                    affected: (after.copied - copied_before) as i64,
                }
            });
            let range = dst
                .bulk_copy_range(raw, next.last_run_id.as_deref(), batch as u32, Some(note))
                .await
                .map_err(|e| CliError::Runtime(format!("copying {source} into {destination}: {e}")))?;
            let Some(last) = range.last_run_id.clone() else {
                return Ok(None);
            };
            apart.set(apart.get() + (range.read - range.plain));
            for (id, reason) in &range.refused {
                eprintln!("refused run {id}: {reason}");
            }
            if !range.refused.iter().any(|(id, _)| *id == last) {
                compare_runs(src, dst, &last).await?;
            }
            Ok(Some(advanced(next, &range)))
        },
        no_tick,
    )
    .await?;
    timing.apart = apart.get();
    timing.raw = true;
    Ok(timing)
}

/// The progress once a range of a raw copy is in.
fn advanced(mut progress: Progress, range: &CopiedRange) -> Progress {
    progress.note_refused(range.refused.clone());
    progress.copied += range.read;
    if range.last_run_id.is_some() {
        progress.last_run_id = range.last_run_id.clone();
    }
    progress
}

/// Reads a run back from the source and from the destination and compares them, field by field.
async fn compare_runs(src: &Store, dst: &Store, run_id: &str) -> Result<(), CliError> {
    let Some(expected) = src.load_state(run_id).await? else {
        // Deleted from the source since (flujo's cleanup): nothing to compare.
        return Ok(());
    };
    check_read_back(dst, &expected, false).await
}

/// Reads the source in run-id order, `batch` runs at a time (in pages the store allows), until the end.
async fn read_batches(src: Store, mut after: Option<String>, batch: usize, tx: mpsc::Sender<Batch>) {
    let page = batch.min(ListQuery::MAX_LIMIT as usize);
    loop {
        let mut rows: Vec<WorkflowState> = Vec::with_capacity(batch);
        let mut done = false;
        while rows.len() < batch {
            let want = page.min(batch - rows.len()) as u32;
            match src.export_runs(after.as_deref(), want).await {
                Ok(read) => {
                    done = read.len() < want as usize;
                    if let Some(last) = read.last() {
                        after = Some(last.run_id.clone());
                    }
                    rows.extend(read);
                    if done {
                        break;
                    }
                }
                Err(e) => {
                    let _ = tx.send(Err(e)).await;
                    return;
                }
            }
        }
        if !rows.is_empty() && tx.send(Ok(rows)).await.is_err() {
            return;
        }
        if done {
            return;
        }
    }
}

/// Saves a batch in one transaction. When the destination refuses a run's values, finds the refused runs by
/// halving the batch (each half its own transaction), saves the rest, and returns the refused runs with why.
async fn save_batch(dst: &Store, rows: &[WorkflowState]) -> Result<Vec<(String, String)>, StoreError> {
    let mut refused = Vec::new();
    let mut pending = vec![rows];
    while let Some(part) = pending.pop() {
        match dst.save_many(part).await {
            Ok(()) => {}
            Err(e @ StoreError::InvalidInput { .. }) => {
                if let [run] = part {
                    refused.push((run.run_id.clone(), e.to_string()));
                } else {
                    let (first, second) = part.split_at(part.len() / 2);
                    pending.push(second);
                    pending.push(first);
                }
            }
            Err(e) => return Err(e),
        }
    }
    refused.sort();
    Ok(refused)
}

/// Reads a copied run back from the destination and compares it with the source's, field by field.
async fn check_read_back(dst: &Store, expected: &WorkflowState, lossy_floats: bool) -> Result<(), CliError> {
    let stored = dst.load_state(&expected.run_id).await?;
    let Some(stored) = stored else {
        return Err(CliError::Runtime(format!(
            "verification failed: run {} was saved but is not in the destination",
            expected.run_id
        )));
    };
    let differ = differences(expected, &stored, lossy_floats);
    if differ.is_empty() {
        return Ok(());
    }
    Err(CliError::Runtime(format!(
        "verification failed: run {} reads back from the destination with other values in: {}",
        expected.run_id,
        differ.join(", ")
    )))
}

/// The fields in which a run read back differs from the run saved. A timestamp the source did not have (NULL or
/// unreadable text) is filled in when saved, and JSON null as the step history is stored as NULL (read as `[]`):
/// neither is a difference. With `lossy_floats` (flujo's PostgreSQL `REAL` column), memory is compared as 32-bit.
fn differences(a: &WorkflowState, b: &WorkflowState, lossy_floats: bool) -> Vec<&'static str> {
    let mut out = Vec::new();
    let mut check = |same: bool, name: &'static str| {
        if !same {
            out.push(name);
        }
    };
    check(a.pipeline_id == b.pipeline_id, "pipeline_id");
    check(a.pipeline_name == b.pipeline_name, "pipeline_name");
    check(a.pipeline_version == b.pipeline_version, "pipeline_version");
    check(a.current_step_index == b.current_step_index, "current_step_index");
    check(a.pipeline_context == b.pipeline_context, "pipeline_context");
    check(a.last_step_output == b.last_step_output, "last_step_output");
    let history_same = a.step_history == b.step_history
        || (a.step_history.is_null() && b.step_history == Value::Array(Vec::new()));
    check(history_same, "step_history");
    check(a.status == b.status, "status");
    check(
        a.created_at.is_none() || a.created_at == b.created_at,
        "created_at",
    );
    check(
        a.updated_at.is_none() || a.updated_at == b.updated_at,
        "updated_at",
    );
    check(a.total_steps == b.total_steps, "total_steps");
    check(a.error_message == b.error_message, "error_message");
    check(a.execution_time_ms == b.execution_time_ms, "execution_time_ms");
    let memory_same = match (a.memory_usage_mb, b.memory_usage_mb) {
        (Some(x), Some(y)) if lossy_floats => x as f32 == y as f32,
        (x, y) => x == y,
    };
    check(memory_same, "memory_usage_mb");
    check(a.extras == b.extras, "metadata/background task columns");
    out
}

/// `copy: 45,000 / 200,000 runs (22%), 21,500 runs/s, ETA 7 s`.
fn progress_line(done: u64, total: u64, copied_now: u64, elapsed: Duration) -> String {
    let rate = copied_now as f64 / elapsed.as_secs_f64().max(1e-3);
    let percent = (done * 100).checked_div(total).map_or(100, |p| p.min(100));
    let left = total.saturating_sub(done);
    let eta = if rate > 0.0 {
        format!("{:.0} s", left as f64 / rate)
    } else {
        "unknown".into()
    };
    format!(
        "copy: {} / {} runs ({percent}%), {} runs/s, ETA {eta}",
        thousands(done),
        thousands(total),
        thousands(rate.round() as u64)
    )
}

/// `1234567` as `1,234,567`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_database_is_recognised_in_any_spelling() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.db");
        std::fs::write(&file, b"").unwrap();
        let dotted = dir.path().join(".").join("a.db");
        assert_eq!(
            identity(&Location::parse(&file)).unwrap(),
            identity(&Location::parse(&dotted)).unwrap()
        );
        let new = dir.path().join("new.db");
        assert_ne!(
            identity(&Location::parse(&file)).unwrap(),
            identity(&Location::parse(&new)).unwrap()
        );
        let pg = |u: &str| identity(&Location::parse(u)).unwrap();
        assert_eq!(
            pg("postgres://alice:secret@DB.example:5432/runs"),
            pg("postgresql://bob@db.example/runs")
        );
        assert_ne!(pg("postgres://a@h/runs"), pg("postgres://a@h/other"));
        assert_ne!(pg("postgres://a@h:5433/runs"), pg("postgres://a@h/runs"));
        assert_eq!(pg("postgres://alice@h"), pg("postgres://h/alice"));
        assert!(!pg("postgres://alice:secret@h/db").contains("secret"));
    }

    #[test]
    fn progress_lines_show_counts_rate_and_eta() {
        let line = progress_line(50_000, 200_000, 40_000, Duration::from_secs(2));
        assert_eq!(line, "copy: 50,000 / 200,000 runs (25%), 20,000 runs/s, ETA 8 s");
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000), "1,000");
    }

    #[test]
    fn a_progress_entry_reads_back() {
        let p = Progress {
            last_run_id: Some("run_9".into()),
            copied: 10,
            refused: 1,
            refused_runs: vec![("run_3".into(), "bad".into())],
            dst_before: 0,
            bulk: true,
        };
        let back = Progress::from_detail(&p.detail("src", "copying", 20));
        assert_eq!(back.last_run_id.as_deref(), Some("run_9"));
        assert_eq!((back.copied, back.refused, back.dst_before), (10, 1, 0));
        assert_eq!(back.refused_runs, p.refused_runs);
        assert!(back.bulk);
    }
}
