//! (pgread) The dashboard's figures. Placeholders until helper pgread's file is merged: each says it is not
//! built yet.

use chrono::{DateTime, Utc};

use super::PgStore;
use crate::insights::{ActivityBucket, Bucket, FailureReport, StuckRuns};
use crate::{Percentiles, Result, StoreError};

fn not_built(what: &str) -> StoreError {
    StoreError::Conflict(format!("{what} is not built yet on PostgreSQL"))
}

impl PgStore {
    pub(crate) async fn stuck_runs(&self, _idle_since: DateTime<Utc>, _limit: u32) -> Result<StuckRuns> {
        Err(not_built("finding stuck runs"))
    }
    pub(crate) async fn execution_percentiles(&self, _pipeline_id: Option<&str>) -> Result<Percentiles> {
        Err(not_built("execution percentiles"))
    }
    pub(crate) async fn execution_percentiles_by_pipeline(&self) -> Result<Vec<(String, Percentiles)>> {
        Err(not_built("execution percentiles"))
    }
    pub(crate) async fn pipelines(&self) -> Result<Vec<String>> {
        Err(not_built("listing pipelines"))
    }
    pub(crate) async fn activity(
        &self,
        _bucket: Bucket,
        _first: DateTime<Utc>,
        _buckets: u32,
    ) -> Result<Vec<ActivityBucket>> {
        Err(not_built("reading activity"))
    }
    pub(crate) async fn group_failures(
        &self,
        _since: DateTime<Utc>,
        _samples: usize,
        _only_key: Option<&str>,
    ) -> Result<FailureReport> {
        Err(not_built("grouping failures"))
    }
    pub(crate) async fn count_failed_since(&self, _since: DateTime<Utc>) -> Result<i64> {
        Err(not_built("counting failures"))
    }
    pub(crate) async fn failure_counts(&self, _since: DateTime<Utc>) -> Result<Vec<(String, i64, i64)>> {
        Err(not_built("failure rates"))
    }
}
