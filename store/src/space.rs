//! Disk space: how much a database takes, what a cleanup would free, and giving freed space back (issue 15).
//!
//! **SQLite.** Deleted rows leave free pages inside the file: SQLite reuses them for new rows, but the file only
//! shrinks when its free pages are removed. A file whose `auto_vacuum` is `INCREMENTAL` gives them back in small
//! steps (`PRAGMA incremental_vacuum(N)`, each a short write transaction on the write connection, taking turns
//! with the saves, so no writer waits for more than one step); flowstate creates new files that way. A file made
//! by flujo (or by flowstate before this) has `auto_vacuum` `NONE`, which only a full `VACUUM` can change: it
//! rewrites the whole file while holding the write lock (every writer waits, and flujo's give up after their busy
//! timeout), and needs free disk about the file's size. [`crate::Store::convert_to_incremental`] does that once,
//! when the operator asks (`flowstate reclaim --convert`), never by itself.
//!
//! **PostgreSQL.** A deleted row's space becomes reusable once `VACUUM` (autovacuum, or
//! [`crate::Store::reclaim_space`]) has passed; the table's files shrink only when whole pages at their end are
//! empty (VACUUM takes a brief exclusive lock to cut them off, and gives it up as soon as another session waits).
//! So the honest figure after a cleanup is the size of the rows deleted (measured as they are deleted), and
//! `pg_total_relation_size` before and after.

use serde::Serialize;

/// How many matched runs a cleanup estimate measures; beyond this it scales the measured ones' average.
pub const ESTIMATE_RUNS: i64 = 10_000;

/// The pages a SQLite reclaim step gives back (256 pages: 1 MiB with 4 KiB pages).
pub const RECLAIM_STEP_PAGES: i64 = 256;

/// How much space a database takes now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SpaceUse {
    /// SQLite: the file's size (pages × page size, the WAL not counted). PostgreSQL: `pg_total_relation_size` of
    /// `workflow_state` (the table, its TOAST and its indexes).
    pub bytes: i64,
    /// SQLite: the bytes of free pages inside the file (reused by new runs, or given back by a reclaim).
    /// PostgreSQL: `None` (the free space map is not read).
    pub free_bytes: Option<i64>,
    /// SQLite: the file's `auto_vacuum` is `INCREMENTAL` (free pages can be given back without blocking
    /// writers). PostgreSQL: `None`.
    pub incremental: Option<bool>,
}

/// What a cleanup policy would free, measured on the matched runs (see [`crate::Store::estimate_cleanup_bytes`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CleanupBytes {
    /// The estimate, in bytes.
    pub bytes: i64,
    /// Runs measured (at most [`ESTIMATE_RUNS`], the oldest ones the cleanup would delete first).
    pub measured_runs: i64,
    /// Runs the policy matches.
    pub matched_runs: i64,
}

impl CleanupBytes {
    /// True when every matched run was measured (no scaling).
    pub fn is_exact(&self) -> bool {
        self.measured_runs >= self.matched_runs
    }
}

/// What a reclaim did ([`crate::Store::reclaim_space`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reclaimed {
    /// Before.
    pub before: SpaceUse,
    /// After.
    pub after: SpaceUse,
    /// `incremental_vacuum` (SQLite, in steps), `none` (SQLite with `auto_vacuum` `NONE`: free pages stay for
    /// reuse), `vacuum` (PostgreSQL's `VACUUM`), `vacuum_full_rewrite` ([`crate::Store::convert_to_incremental`]).
    pub method: &'static str,
    /// Steps (SQLite's incremental steps; 1 for a VACUUM).
    pub steps: u32,
    /// How long it took.
    pub seconds: f64,
}

impl Reclaimed {
    /// Bytes the database's size went down by (0 when it did not).
    pub fn bytes_returned(&self) -> i64 {
        (self.before.bytes - self.after.bytes).max(0)
    }
}

/// An estimate from `measured` runs of `bytes` in all, for `matched` runs: exact when every one was measured,
/// otherwise the measured average times `matched`.
pub(crate) fn scale(measured: i64, bytes: i64, matched: i64) -> CleanupBytes {
    let matched = matched.max(measured);
    let bytes = if measured > 0 && matched > measured {
        (bytes as f64 / measured as f64 * matched as f64).round() as i64
    } else {
        bytes
    };
    CleanupBytes {
        bytes,
        measured_runs: measured,
        matched_runs: matched,
    }
}
