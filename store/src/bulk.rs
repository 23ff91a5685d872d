//! Bulk loads: filling a database that holds no runs (a new copy) much faster than saves can, on both backends.
//!
//! A save keeps every index and every counter current row by row (a dozen indexes and four counter updates per
//! run). A bulk load instead:
//!
//! 1. [`Store::begin_bulk_load`](crate::Store::begin_bulk_load) drops the counters' triggers and every index of
//!    `workflow_state` but its primary key (flowstate's and, on PostgreSQL, flujo's too);
//! 2. [`Store::bulk_write`](crate::Store::bulk_write) writes runs into the bare table, a batch per transaction
//!    (SQLite: the store's upsert on the write connection; PostgreSQL: `COPY ... FROM STDIN`), each batch together
//!    with a progress note (an audit entry updated in the same transaction), so a batch and its note are committed
//!    together or not at all;
//! 3. [`Store::finish_bulk_load`](crate::Store::finish_bulk_load) builds the indexes once, creates the triggers
//!    and counts the counters from the rows: the store's own migration, so the result is exactly what saves would
//!    have made.
//!
//! Between 1 and 3 the overview figures (counters) are stale and lists are slow: a bulk load is for a database
//! only its loader uses. A loader killed at any point leaves a database the next writable open finishes by
//! itself (its migration finds the indexes and triggers missing, creates them and recounts), holding exactly
//! the batches committed: the progress note says which.
//!
//! Every run is validated as a save's is ([`crate::validate`]), before anything is written: [`BulkBatch::new`]
//! keeps the runs that pass and names the others with the reason.

use serde_json::Value;

use crate::validate::ValidState;
use crate::WorkflowState;

/// Runs checked for a bulk load: those that pass, ready to write, and those refused with why.
#[derive(Debug)]
pub struct BulkBatch {
    pub(crate) rows: Vec<ValidState>,
    /// Runs that did not pass validation (nothing of them is written): run id and reason, in batch order.
    pub refused: Vec<(String, String)>,
}

impl BulkBatch {
    /// Validates `runs` (as [`crate::Store::save_many`] would, run by run). Pure CPU work: run it wherever it
    /// overlaps best with reading and writing.
    pub fn new(runs: Vec<WorkflowState>) -> BulkBatch {
        let mut rows = Vec::with_capacity(runs.len());
        let mut refused = Vec::new();
        for run in runs {
            let id = run.run_id.clone();
            match ValidState::new_owned(run) {
                Ok(row) => rows.push(row),
                Err(e) => refused.push((id, e.to_string())),
            }
        }
        BulkBatch { rows, refused }
    }

    /// Runs that will be written.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// True when no run passed.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The runs that will be written, in order.
    pub fn runs(&self) -> impl Iterator<Item = &WorkflowState> {
        self.rows.iter().map(|r| &r.state)
    }
}

/// A progress note written in the same transaction as a bulk batch: the audit entry `id` (made by
/// [`crate::Store::record_audit`]) gets this detail and these counts.
#[derive(Debug, Clone)]
pub struct BulkNote {
    /// The audit entry to update.
    pub id: i64,
    /// Its new detail.
    pub detail: Value,
    /// Its new `matched`.
    pub matched: Option<i64>,
    /// Its new `affected`.
    pub affected: i64,
}

/// What one range of a raw copy between SQLite files held ([`crate::Store::bulk_copy_range`]).
#[derive(Debug, Clone, Default)]
pub struct CopiedRange {
    /// Runs read from the source (copied or refused).
    pub read: u64,
    /// Of those, runs copied as they are, inside SQLite; the others were read, validated and written as saves.
    pub plain: u64,
    /// The range's last run id (every run up to it, in byte order, was read); `None` when it was empty.
    pub last_run_id: Option<String>,
    /// Runs a save would refuse (nothing of them is written): run id and reason, in run-id order.
    pub refused: Vec<(String, String)>,
}

/// Builds the progress note of a range of a raw copy once it is known what the range held.
pub type RangeNote = Box<dyn FnOnce(&CopiedRange) -> BulkNote + Send>;

/// A SQLite file attached read-only to a SQLite destination for a raw copy ([`crate::Store::attach_bulk_source`]).
#[derive(Debug, Clone, Copy)]
pub struct BulkSource(pub(crate) crate::sqlite::rawcopy::Source);
