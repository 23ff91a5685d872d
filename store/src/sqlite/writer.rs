//! The write path of a writable [`Store`](crate::Store): one connection of its own, one thread, and group commit.
//!
//! Every [`Store::save_state`](crate::Store::save_state) and [`Store::save_many`](crate::Store::save_many) is
//! validated and encoded in the caller, then handed to a thread that owns the store's only write connection and
//! runs the statement on its SQLite handle itself (one hand-off instead of sqlx's two: see [`super::raw`]). It takes
//! everything that is waiting, in arrival order, and writes consecutive saves of distinct runs (up to
//! [`MAX_GROUP`]) as **one** multi-row UPSERT in autocommit: one statement, one commit and, with
//! [`Durability::Full`](crate::Durability::Full), one fsync for all of them. A lone save is the same statement with
//! one row, so a single caller pays nothing for the grouping.
//!
//! Each save still returns only once its own row is committed, with its own result:
//! - when a group's statement fails, nothing of it was written (a statement is atomic), and each save of the group
//!   is tried again alone, in order, so one bad row fails only its own caller and the others are written exactly
//!   as if they had come one by one;
//! - a group never holds the same run twice (a second save of a run starts the next group), so a save that keeps
//!   the stored creation time sees the one saved just before it, as it would one by one;
//! - the busy timeout counts from the moment a save was called, not from when its group started: a save that
//!   waited in the queue behind a held lock gets [`StoreError::Busy`] once *its* timeout is spent, and a save
//!   whose timeout is not spent yet is tried again.
//!
//! Other processes (flujo, another `flowstate`) keep writing the file on their own connections; SQLite's lock and
//! the busy timeout order them with this one, as before. The pool's own writes (deletes, cleanups, the audit
//! table) wait for this connection's lock the same way, bounded by the busy timeout.
//!
//! The thread stops when [`Writer::close`] is called (it writes what was already handed to it, then closes its
//! connection, which lets SQLite checkpoint the WAL), or when the last [`Writer`] is dropped with its store.

use std::collections::{HashSet, VecDeque};
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::sqlite::SqliteConnection;
use tokio::sync::{mpsc, oneshot};

use super::errors::{code, is_disk_full, map_err, sqlite_code};
use super::raw::{Owner, Session};
use super::row::{upsert_sql, EncodedRow};
use crate::{Result, StoreError};

/// The most saves written by one statement. Each group size has its own prepared statement on the write
/// connection (a multi-row UPSERT), so this bounds their number; past a few dozen rows a bigger group saves
/// nothing measurable (the commit is already shared by dozens).
pub(crate) const MAX_GROUP: usize = 32;

/// The most jobs taken from the queue at once (then written in groups of at most [`MAX_GROUP`]).
const MAX_TAKEN: usize = 256;

/// What the caller is told when the writer is gone (the store was closed): what the pool says once closed.
fn closed() -> StoreError {
    StoreError::Database(sqlx::Error::PoolClosed)
}

/// What the write thread has done since the store was opened: how well saves share their commits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteStats {
    /// Saves written ([`Store::save_state`](crate::Store::save_state) calls that returned `Ok`).
    pub saves: u64,
    /// Commits that wrote them (a lone save, a group of saves, or one
    /// [`Store::save_many`](crate::Store::save_many)). `saves / save_commits` is the average group.
    pub save_commits: u64,
    /// Groups whose statement failed for one of its rows, so that each save was then tried alone.
    pub groups_split: u64,
}

#[derive(Default)]
struct Counters {
    saves: AtomicU64,
    save_commits: AtomicU64,
    groups_split: AtomicU64,
}

/// A handle on the write thread. Cloned with the store; the thread ends when the last handle is dropped.
#[derive(Clone)]
pub(crate) struct Writer {
    jobs: mpsc::UnboundedSender<Job>,
    counters: Arc<Counters>,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer")
            .field("closed", &self.jobs.is_closed())
            .finish()
    }
}

impl Writer {
    /// Starts the write thread on `conn` (a connection with the store's pragmas, used by nothing else).
    pub(crate) fn start(
        conn: SqliteConnection,
        path: PathBuf,
        busy_timeout: Duration,
    ) -> std::io::Result<Writer> {
        let (jobs, queue) = mpsc::unbounded_channel();
        let counters = Arc::new(Counters::default());
        let task = Task {
            path,
            busy_timeout,
            busy_now: busy_timeout,
            sql: (0..=MAX_GROUP).map(upsert_sql).collect(),
            counters: Arc::clone(&counters),
        };
        std::thread::Builder::new()
            .name("flowstate-writer".into())
            .spawn(move || task.run(Owner::new(conn), queue))?;
        Ok(Writer { jobs, counters })
    }

    pub(crate) fn stats(&self) -> WriteStats {
        WriteStats {
            saves: self.counters.saves.load(Ordering::Relaxed),
            save_commits: self.counters.save_commits.load(Ordering::Relaxed),
            groups_split: self.counters.groups_split.load(Ordering::Relaxed),
        }
    }

    /// Writes one run; returns once it is committed.
    pub(crate) async fn save(&self, row: EncodedRow) -> Result<()> {
        let (done, result) = oneshot::channel();
        self.jobs
            .send(Job::Save(Box::new(Save {
                row,
                queued: Instant::now(),
                done,
            })))
            .map_err(|_| closed())?;
        result.await.unwrap_or_else(|_| Err(closed()))
    }

    /// Writes runs in one transaction (all or none); returns once it is committed.
    pub(crate) async fn save_many(&self, rows: Vec<EncodedRow>) -> Result<()> {
        let (done, result) = oneshot::channel();
        self.jobs
            .send(Job::Many(Many {
                rows,
                queued: Instant::now(),
                done,
            }))
            .map_err(|_| closed())?;
        result.await.unwrap_or_else(|_| Err(closed()))
    }

    /// Writes runs and a progress note in one transaction (a bulk load's batch); returns once it is committed.
    pub(crate) async fn bulk(&self, rows: Vec<EncodedRow>, note: Option<BulkNoteRow>) -> Result<()> {
        let (done, result) = oneshot::channel();
        self.jobs
            .send(Job::Bulk(Bulk {
                rows,
                note,
                queued: Instant::now(),
                done,
            }))
            .map_err(|_| closed())?;
        result.await.unwrap_or_else(|_| Err(closed()))
    }

    /// Runs `statement` on the write connection, in turn with the saves (used by cleanups: a delete batch then
    /// waits in the queue like a save instead of in SQLite's busy handler, whose sleeps grow to 100 ms, and the
    /// saves queued behind it are written as soon as it is done). Returns what the statement returned.
    pub(crate) async fn exec(&self, statement: Statement) -> Result<sqlx::Result<u64>> {
        let (done, result) = oneshot::channel();
        self.jobs.send(Job::Exec(statement, done)).map_err(|_| closed())?;
        result.await.map_err(|_| closed())
    }

    /// Stops the thread: what was handed to it before is written, then its connection is closed. Returns once it
    /// is (at once when it already was). Saves handed over afterwards fail as on a closed pool.
    pub(crate) async fn close(&self) {
        let (done, closed) = oneshot::channel();
        if self.jobs.send(Job::Close(done)).is_ok() {
            let _ = closed.await;
        }
    }
}

/// A statement to run on the write connection (see [`Writer::exec`]), returning the rows it changed.
pub(crate) type Statement = Box<
    dyn for<'c> FnOnce(
            &'c mut SqliteConnection,
        ) -> Pin<Box<dyn Future<Output = sqlx::Result<u64>> + Send + 'c>>
        + Send,
>;

enum Job {
    /// Boxed: a save is much larger than the other jobs.
    Save(Box<Save>),
    Many(Many),
    Bulk(Bulk),
    Exec(Statement, oneshot::Sender<sqlx::Result<u64>>),
    Close(oneshot::Sender<()>),
}

/// One [`Store::save_state`](crate::Store::save_state).
struct Save {
    row: EncodedRow,
    queued: Instant,
    done: oneshot::Sender<Result<()>>,
}

/// One [`Store::save_many`](crate::Store::save_many).
struct Many {
    rows: Vec<EncodedRow>,
    queued: Instant,
    done: oneshot::Sender<Result<()>>,
}

/// One [`Store::bulk_write`](crate::Store::bulk_write): rows and, in the same transaction, a progress note.
struct Bulk {
    rows: Vec<EncodedRow>,
    note: Option<BulkNoteRow>,
    queued: Instant,
    done: oneshot::Sender<Result<()>>,
}

/// A bulk batch's progress note, as the audit table stores it.
pub(crate) struct BulkNoteRow {
    pub(crate) id: i64,
    pub(crate) at: String,
    pub(crate) detail: String,
    pub(crate) matched: Option<i64>,
    pub(crate) affected: i64,
}

/// The statement slot of the bulk note's UPDATE (after the upserts' slots `0..=MAX_GROUP`).
const NOTE_SLOT: usize = MAX_GROUP + 1;
pub(crate) const NOTE_SQL: &str =
    "UPDATE flowstate_audit SET at = ?, detail = ?, matched = ?, affected = ? WHERE id = ?";

struct Task {
    path: PathBuf,
    busy_timeout: Duration,
    /// The busy timeout the connection has now (see [`Task::fit_busy_timeout`]).
    busy_now: Duration,
    /// `sql[n]`: the UPSERT of `n` rows, prepared in statement slot `n`.
    sql: Vec<String>,
    counters: Arc<Counters>,
}

/// What a failed attempt at a group leaves to do.
enum Outcome<T> {
    /// Every caller was answered.
    Answered,
    /// The statement failed for one (or more) of its rows: nothing was written; try each one alone.
    OneByOne(Vec<T>),
}

impl Task {
    /// The thread: holds its connection locked and writes what it is handed, unlocking it only to run a
    /// [`Job::Exec`] through sqlx, until the queue is closed and empty.
    fn run(mut self, mut owner: Owner, mut queue: mpsc::UnboundedReceiver<Job>) {
        let mut closers = Vec::new();
        let mut taken = VecDeque::with_capacity(MAX_TAKEN);
        loop {
            let exec = match owner.lock() {
                Ok(mut session) => self.serve(&mut session, &mut queue, &mut taken, &mut closers),
                Err(e) => {
                    tracing::error!(error = %e, "locking the write connection");
                    Self::refuse(&mut queue, &mut taken, &mut closers)
                }
            };
            let Some((statement, done)) = exec else { break };
            let _ = done.send(futures_executor::block_on(statement(owner.sqlx())));
        }
        // Closing the connection (rather than dropping it) waits until SQLite has closed the file, which
        // checkpoints the WAL when it is the last connection.
        if let Err(e) = owner.close() {
            tracing::warn!(error = %e, "closing the write connection");
        }
        for done in closers {
            let _ = done.send(());
        }
    }

    /// Moves what is waiting into `taken` (waiting for at least one job when it is empty); false once the queue
    /// is closed and nothing is left.
    fn take(queue: &mut mpsc::UnboundedReceiver<Job>, taken: &mut VecDeque<Job>) -> bool {
        if taken.is_empty() {
            match queue.blocking_recv() {
                Some(job) => taken.push_back(job),
                None => return false,
            }
        }
        while taken.len() < MAX_TAKEN {
            match queue.try_recv() {
                Ok(job) => taken.push_back(job),
                Err(_) => break,
            }
        }
        true
    }

    /// Writes the jobs in arrival order until one must run through sqlx (returned, to run once the connection is
    /// unlocked) or the queue is closed and empty (`None`).
    fn serve(
        &mut self,
        session: &mut Session<'_>,
        queue: &mut mpsc::UnboundedReceiver<Job>,
        taken: &mut VecDeque<Job>,
        closers: &mut Vec<oneshot::Sender<()>>,
    ) -> Option<(Statement, oneshot::Sender<sqlx::Result<u64>>)> {
        while Self::take(queue, taken) {
            let mut group: Vec<Save> = Vec::new();
            while let Some(job) = taken.pop_front() {
                match job {
                    Job::Save(save) => {
                        let repeated = group.iter().any(|s| s.row.run_id == save.row.run_id);
                        if group.len() == MAX_GROUP || repeated {
                            self.write_group(session, std::mem::take(&mut group));
                        }
                        group.push(*save);
                    }
                    Job::Many(many) => {
                        if !group.is_empty() {
                            self.write_group(session, std::mem::take(&mut group));
                        }
                        self.write_many(session, many);
                    }
                    Job::Bulk(bulk) => {
                        if !group.is_empty() {
                            self.write_group(session, std::mem::take(&mut group));
                        }
                        self.write_bulk(session, bulk);
                    }
                    Job::Exec(statement, done) => {
                        if !group.is_empty() {
                            self.write_group(session, std::mem::take(&mut group));
                        }
                        self.fit_busy_timeout(session, Instant::now());
                        return Some((statement, done));
                    }
                    Job::Close(done) => {
                        closers.push(done);
                        // Nothing new is accepted; what was handed over before is still written.
                        queue.close();
                    }
                }
            }
            if !group.is_empty() {
                self.write_group(session, group);
            }
        }
        None
    }

    /// Answers every job with an error, the connection being unusable, until the queue is closed and empty (or a
    /// job asks for sqlx, which reports for itself).
    fn refuse(
        queue: &mut mpsc::UnboundedReceiver<Job>,
        taken: &mut VecDeque<Job>,
        closers: &mut Vec<oneshot::Sender<()>>,
    ) -> Option<(Statement, oneshot::Sender<sqlx::Result<u64>>)> {
        while Self::take(queue, taken) {
            while let Some(job) = taken.pop_front() {
                match job {
                    Job::Save(save) => {
                        let _ = save
                            .done
                            .send(Err(StoreError::Database(sqlx::Error::WorkerCrashed)));
                    }
                    Job::Many(many) => {
                        let _ = many
                            .done
                            .send(Err(StoreError::Database(sqlx::Error::WorkerCrashed)));
                    }
                    Job::Bulk(bulk) => {
                        let _ = bulk
                            .done
                            .send(Err(StoreError::Database(sqlx::Error::WorkerCrashed)));
                    }
                    Job::Exec(statement, done) => return Some((statement, done)),
                    Job::Close(done) => {
                        closers.push(done);
                        queue.close();
                    }
                }
            }
        }
        None
    }

    /// Writes saves of distinct runs together, or (when one of them fails) each alone.
    fn write_group(&mut self, session: &mut Session<'_>, saves: Vec<Save>) {
        if let Outcome::OneByOne(saves) = self.write_together(session, saves) {
            for save in saves {
                // A single save is always answered.
                let _ = self.write_together(session, vec![save]);
            }
        }
    }

    fn write_together(&mut self, session: &mut Session<'_>, mut saves: Vec<Save>) -> Outcome<Save> {
        loop {
            let oldest = saves.iter().map(|s| s.queued).min().unwrap_or_else(Instant::now);
            self.fit_busy_timeout(session, oldest);
            let rows: Vec<&EncodedRow> = saves.iter().map(|s| &s.row).collect();
            let result = self.upsert(session, &rows);
            drop(rows);
            match result {
                Ok(()) => {
                    self.counters.save_commits.fetch_add(1, Ordering::Relaxed);
                    self.counters
                        .saves
                        .fetch_add(saves.len() as u64, Ordering::Relaxed);
                    for save in saves {
                        let _ = save.done.send(Ok(()));
                    }
                    return Outcome::Answered;
                }
                Err(e) if is_busy(&e) => {
                    // Those whose own timeout is spent get Busy; the others are tried again (the lock may be
                    // free by now), with what is left of theirs.
                    let before = saves.len();
                    let (spent, left): (Vec<Save>, Vec<Save>) =
                        saves.into_iter().partition(|s| self.spent(s.queued));
                    for save in spent {
                        let _ = save.done.send(Err(self.busy("saving a run")));
                    }
                    if left.is_empty() {
                        return Outcome::Answered;
                    }
                    if left.len() == before {
                        // SQLite gave up without waiting (it does for some kinds of busy): do not spin.
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    saves = left;
                }
                Err(e) if saves.len() == 1 => {
                    let error = self.error(e, "saving a run");
                    if let Some(save) = saves.pop() {
                        let _ = save.done.send(Err(error));
                    }
                    return Outcome::Answered;
                }
                Err(e) => {
                    tracing::debug!(error = %e, rows = saves.len(), "a group of saves failed; saving each alone");
                    self.counters.groups_split.fetch_add(1, Ordering::Relaxed);
                    return Outcome::OneByOne(saves);
                }
            }
        }
    }

    /// Writes a [`Store::save_many`](crate::Store::save_many): one statement when its runs fit in one group,
    /// otherwise one `BEGIN IMMEDIATE` transaction of several.
    fn write_many(&mut self, session: &mut Session<'_>, many: Many) {
        let chunks = chunks(&many.rows);
        loop {
            self.fit_busy_timeout(session, many.queued);
            let result = if chunks.len() <= 1 {
                let rows: Vec<&EncodedRow> = many.rows.iter().collect();
                if rows.is_empty() {
                    Ok(())
                } else {
                    self.upsert(session, &rows)
                }
            } else {
                self.transaction(session, &many.rows, &chunks, None)
            };
            match result {
                Ok(()) => {
                    self.counters.save_commits.fetch_add(1, Ordering::Relaxed);
                    let _ = many.done.send(Ok(()));
                    return;
                }
                Err(e) if is_busy(&e) => {
                    if self.spent(many.queued) {
                        let _ = many.done.send(Err(self.busy("saving runs")));
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(e) => {
                    let _ = many.done.send(Err(self.error(e, "saving runs")));
                    return;
                }
            }
        }
    }

    /// Writes a bulk batch and its note in one `BEGIN IMMEDIATE` transaction.
    fn write_bulk(&mut self, session: &mut Session<'_>, bulk: Bulk) {
        let chunks = chunks(&bulk.rows);
        loop {
            self.fit_busy_timeout(session, bulk.queued);
            match self.transaction(session, &bulk.rows, &chunks, bulk.note.as_ref()) {
                Ok(()) => {
                    self.counters.save_commits.fetch_add(1, Ordering::Relaxed);
                    let _ = bulk.done.send(Ok(()));
                    return;
                }
                Err(e) if is_busy(&e) => {
                    if self.spent(bulk.queued) {
                        let _ = bulk.done.send(Err(self.busy("writing a bulk batch")));
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(e) => {
                    let _ = bulk.done.send(Err(self.error(e, "writing a bulk batch")));
                    return;
                }
            }
        }
    }

    /// One statement: the UPSERT of `rows` (distinct runs), in autocommit unless a transaction is open.
    fn upsert(&self, session: &mut Session<'_>, rows: &[&EncodedRow]) -> sqlx::Result<()> {
        let n = rows.len();
        session
            .execute(n, &self.sql[n], rows.iter().flat_map(|row| row.params()))
            .map(|_| ())
    }

    /// The chunks of one save_many (or bulk batch, with its note), in one transaction: all written or (on any
    /// error) none.
    fn transaction(
        &self,
        session: &mut Session<'_>,
        rows: &[EncodedRow],
        chunks: &[std::ops::Range<usize>],
        note: Option<&BulkNoteRow>,
    ) -> sqlx::Result<()> {
        session.batch(c"BEGIN IMMEDIATE")?;
        let written = chunks
            .iter()
            .try_for_each(|chunk| {
                let part: Vec<&EncodedRow> = rows[chunk.clone()].iter().collect();
                self.upsert(session, &part)
            })
            .and_then(|()| match note {
                Some(n) => session
                    .execute(
                        NOTE_SLOT,
                        NOTE_SQL,
                        [
                            n.at.as_str().into(),
                            n.detail.as_str().into(),
                            n.matched.into(),
                            n.affected.into(),
                            n.id.into(),
                        ],
                    )
                    .map(|_| ()),
                None => Ok(()),
            });
        let result = written.and_then(|()| session.batch(c"COMMIT"));
        if result.is_err() && !session.autocommit() {
            // SQLite rolls some failures back by itself; the others are rolled back here.
            if let Err(e) = session.batch(c"ROLLBACK") {
                tracing::warn!(error = %e, "rolling back a failed save_many");
            }
        }
        result
    }

    /// True when a job handed over at `queued` has waited its whole busy timeout. A little slack: SQLite's busy
    /// handler sleeps in steps and may give up a few milliseconds early.
    fn spent(&self, queued: Instant) -> bool {
        queued.elapsed() + Duration::from_millis(20) >= self.busy_timeout
    }

    /// Sets the connection's busy timeout to what is left of the oldest job's, when it waited noticeably in the
    /// queue (behind a held lock or a long transaction), so that no caller waits much longer than its timeout.
    fn fit_busy_timeout(&mut self, session: &mut Session<'_>, oldest: Instant) {
        let waited = oldest.elapsed();
        let want = if waited < Duration::from_millis(50) {
            self.busy_timeout
        } else {
            self.busy_timeout.saturating_sub(waited)
        };
        let close_enough = want.abs_diff(self.busy_now) < Duration::from_millis(20);
        if want == self.busy_now || (close_enough && !want.is_zero()) {
            return;
        }
        let ms = want.as_millis().min(i32::MAX as u128) as i32;
        match session.set_busy_timeout(ms) {
            Ok(()) => self.busy_now = want,
            Err(e) => tracing::warn!(error = %e, "setting the write connection's busy timeout"),
        }
    }

    fn busy(&self, context: &str) -> StoreError {
        StoreError::Busy {
            timeout_ms: self.busy_timeout.as_millis() as u64,
            context: context.to_string(),
        }
    }

    fn error(&self, e: sqlx::Error, context: &str) -> StoreError {
        if is_disk_full(&e) {
            return StoreError::DiskFull {
                path: self.path.clone(),
                context: context.to_string(),
            };
        }
        map_err(e, self.busy_timeout.as_millis() as u64, context)
    }
}

fn is_busy(e: &sqlx::Error) -> bool {
    matches!(sqlite_code(e), Some(code::BUSY) | Some(code::LOCKED))
}

/// Splits rows into consecutive runs of at most [`MAX_GROUP`] rows, none holding the same run twice (the later
/// save of a run must see the earlier one, as it would one statement after the other).
fn chunks(rows: &[EncodedRow]) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut ids: HashSet<&str> = HashSet::new();
    for (i, row) in rows.iter().enumerate() {
        if i - start == MAX_GROUP || ids.contains(row.run_id.as_str()) {
            out.push(start..i);
            start = i;
            ids.clear();
        }
        ids.insert(&row.run_id);
    }
    if start < rows.len() {
        out.push(start..rows.len());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_group_is_one_statement_with_a_row_of_values_per_save() {
        let one = upsert_sql(1);
        assert_eq!(one.matches('?').count(), crate::sqlite::row::PARAMS_PER_ROW);
        assert!(one.contains("VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, COALESCE(?, (SELECT created_at"));
        let three = upsert_sql(3);
        assert_eq!(three.matches('?').count(), 3 * crate::sqlite::row::PARAMS_PER_ROW);
        assert_eq!(three.matches("INSERT").count(), 1);
        assert_eq!(three.matches("ON CONFLICT").count(), 1);
    }

    #[test]
    fn chunks_stop_at_the_group_size_and_at_a_repeated_run() {
        let row = |id: &str| {
            let state = crate::WorkflowState::new(id, "p");
            EncodedRow::new(
                &crate::validate::ValidState::new(&state).unwrap(),
                chrono::Utc::now(),
            )
        };
        let rows: Vec<EncodedRow> = ["a", "b", "a", "c"].iter().map(|id| row(id)).collect();
        assert_eq!(chunks(&rows), vec![0..2, 2..4]);
        let many: Vec<EncodedRow> = (0..MAX_GROUP * 2 + 1).map(|i| row(&format!("r{i}"))).collect();
        assert_eq!(
            chunks(&many),
            vec![
                0..MAX_GROUP,
                MAX_GROUP..2 * MAX_GROUP,
                2 * MAX_GROUP..2 * MAX_GROUP + 1
            ]
        );
        assert!(chunks(&[]).is_empty());
    }
}
