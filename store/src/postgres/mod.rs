//! The PostgreSQL backend: flujo's `PostgresBackend` table, shared with it. (Being built: see issue 14.)

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::backend::Backend;
use crate::insights::{ActivityBucket, AuditEntry, Bucket, FailureReport, StuckRuns};
use crate::store::StoreOptions;
use crate::validate::{ValidCleanup, ValidList, ValidState};
use crate::{
    CleanupPreview, CounterCheck, MigrationReport, Percentiles, Result, RunSummary, RunView, StoreError,
    TextColumn, WorkflowState, WorkflowStats,
};

/// A store on a PostgreSQL database.
#[derive(Debug, Clone)]
pub(crate) struct PgStore {
    migration: MigrationReport,
}

fn not_yet() -> StoreError {
    StoreError::Conflict("PostgreSQL support is not built yet".into())
}

impl PgStore {
    pub(crate) async fn open(url: &str, _options: &StoreOptions) -> Result<PgStore> {
        Err(StoreError::CannotOpen {
            path: redact(url).into(),
            reason: "PostgreSQL support is not built yet".into(),
        })
    }

    /// The URL without its password, for messages and `/healthz`.
    pub(crate) fn display_url(&self) -> String {
        String::new()
    }
}

/// The URL with its password replaced by `***`.
pub(crate) fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}

impl Backend for PgStore {
    fn migration(&self) -> &MigrationReport {
        &self.migration
    }
    fn has_counters(&self) -> bool {
        false
    }
    async fn close(&self) {}
    async fn save(&self, _rows: Vec<ValidState>, _now: DateTime<Utc>) -> Result<()> {
        Err(not_yet())
    }
    async fn load_state(&self, _run_id: &str) -> Result<Option<WorkflowState>> {
        Err(not_yet())
    }
    async fn load_run_view(&self, _run_id: &str, _max_chars: i64) -> Result<Option<RunView>> {
        Err(not_yet())
    }
    async fn load_text_column(&self, _run_id: &str, _column: TextColumn) -> Result<Option<Option<String>>> {
        Err(not_yet())
    }
    async fn export(&self, _after: Option<&str>, _limit: u32) -> Result<Vec<WorkflowState>> {
        Err(not_yet())
    }
    async fn delete_state(&self, _run_id: &str) -> Result<bool> {
        Err(not_yet())
    }
    async fn list(&self, _list: &ValidList<'_>) -> Result<Vec<(i64, RunSummary)>> {
        Err(not_yet())
    }
    async fn stats(&self, _recent_since: DateTime<Utc>) -> Result<WorkflowStats> {
        Err(not_yet())
    }
    async fn failed(&self, _since: DateTime<Utc>, _limit: u32) -> Result<Vec<RunSummary>> {
        Err(not_yet())
    }
    async fn preview_cleanup(&self, _cleanup: &ValidCleanup) -> Result<CleanupPreview> {
        Err(not_yet())
    }
    async fn cleanup(&self, _cleanup: &ValidCleanup) -> Result<u64> {
        Err(not_yet())
    }
    async fn stuck_runs(&self, _idle_since: DateTime<Utc>, _limit: u32) -> Result<StuckRuns> {
        Err(not_yet())
    }
    async fn execution_percentiles(&self, _pipeline_id: Option<&str>) -> Result<Percentiles> {
        Err(not_yet())
    }
    async fn execution_percentiles_by_pipeline(&self) -> Result<Vec<(String, Percentiles)>> {
        Err(not_yet())
    }
    async fn pipelines(&self) -> Result<Vec<String>> {
        Err(not_yet())
    }
    async fn activity(
        &self,
        _bucket: Bucket,
        _first: DateTime<Utc>,
        _buckets: u32,
    ) -> Result<Vec<ActivityBucket>> {
        Err(not_yet())
    }
    async fn group_failures(
        &self,
        _since: DateTime<Utc>,
        _samples: usize,
        _only_key: Option<&str>,
    ) -> Result<FailureReport> {
        Err(not_yet())
    }
    async fn count_failed_since(&self, _since: DateTime<Utc>) -> Result<i64> {
        Err(not_yet())
    }
    async fn failure_counts(&self, _since: DateTime<Utc>) -> Result<Vec<(String, i64, i64)>> {
        Err(not_yet())
    }
    async fn verify_counters(&self) -> Result<CounterCheck> {
        Err(not_yet())
    }
    async fn rebuild_counters(&self) -> Result<CounterCheck> {
        Err(not_yet())
    }
    async fn record_audit(
        &self,
        _at: DateTime<Utc>,
        _actor: &str,
        _action: &str,
        _detail: &Value,
        _matched: Option<i64>,
        _affected: i64,
    ) -> Result<i64> {
        Err(not_yet())
    }
    async fn audit_log(&self, _limit: u32) -> Result<Vec<AuditEntry>> {
        Err(not_yet())
    }
}
