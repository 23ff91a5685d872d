//! (pgread) Lookups, lists, exports, failed runs, cleanup previews, the audit log. Placeholders until helper
//! pgread's file is merged: each says it is not built yet.

use chrono::{DateTime, Utc};

use super::PgStore;
use crate::insights::AuditEntry;
use crate::validate::{ValidCleanup, ValidList};
use crate::{CleanupPreview, Result, RunSummary, RunView, StoreError, TextColumn, WorkflowState};

fn not_built(what: &str) -> StoreError {
    StoreError::Conflict(format!("{what} is not built yet on PostgreSQL"))
}

impl PgStore {
    pub(crate) async fn load_state(&self, _run_id: &str) -> Result<Option<WorkflowState>> {
        Err(not_built("loading a run"))
    }
    pub(crate) async fn load_run_view(&self, _run_id: &str, _max_chars: i64) -> Result<Option<RunView>> {
        Err(not_built("loading a run's page"))
    }
    pub(crate) async fn load_text_column(
        &self,
        _run_id: &str,
        _column: TextColumn,
    ) -> Result<Option<Option<String>>> {
        Err(not_built("loading a run's column"))
    }
    pub(crate) async fn export(&self, _after: Option<&str>, _limit: u32) -> Result<Vec<WorkflowState>> {
        Err(not_built("exporting runs"))
    }
    pub(crate) async fn list(&self, _list: &ValidList<'_>) -> Result<Vec<(i64, RunSummary)>> {
        Err(not_built("listing runs"))
    }
    pub(crate) async fn failed(&self, _since: DateTime<Utc>, _limit: u32) -> Result<Vec<RunSummary>> {
        Err(not_built("listing failed runs"))
    }
    pub(crate) async fn preview_cleanup(&self, _cleanup: &ValidCleanup) -> Result<CleanupPreview> {
        Err(not_built("previewing a cleanup"))
    }
    pub(crate) async fn audit_log(&self, _limit: u32) -> Result<Vec<AuditEntry>> {
        Err(not_built("reading the audit log"))
    }
}
