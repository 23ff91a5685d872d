//! Disk space on PostgreSQL ([`crate::space`]): `pg_total_relation_size`, what a cleanup would free (the stored
//! size of the matched rows), and `VACUUM`.

use std::time::Instant;

use sqlx::Row;

use super::read::cleanup_filter;
use super::PgStore;
use crate::space::{CleanupBytes, Reclaimed, SpaceUse, ESTIMATE_RUNS};
use crate::validate::ValidCleanup;
use crate::Result;

/// The bytes a row takes as stored: `pg_column_size` of every column (a TOASTed value counts at its stored,
/// compressed size, without being read) and 24 for the row's header.
pub(crate) const ROW_BYTES: &str =
    "(24 + coalesce(pg_column_size(run_id), 0) + coalesce(pg_column_size(pipeline_id), 0) \
     + coalesce(pg_column_size(pipeline_name), 0) + coalesce(pg_column_size(pipeline_version), 0) \
     + coalesce(pg_column_size(current_step_index), 0) + coalesce(pg_column_size(pipeline_context), 0) \
     + coalesce(pg_column_size(last_step_output), 0) + coalesce(pg_column_size(step_history), 0) \
     + coalesce(pg_column_size(status), 0) + coalesce(pg_column_size(created_at), 0) \
     + coalesce(pg_column_size(updated_at), 0) + coalesce(pg_column_size(total_steps), 0) \
     + coalesce(pg_column_size(error_message), 0) + coalesce(pg_column_size(execution_time_ms), 0) \
     + coalesce(pg_column_size(memory_usage_mb), 0) + coalesce(pg_column_size(metadata), 0) \
     + coalesce(pg_column_size(is_background_task), 0) + coalesce(pg_column_size(parent_run_id), 0) \
     + coalesce(pg_column_size(task_id), 0) + coalesce(pg_column_size(background_error), 0))::bigint";

impl PgStore {
    /// `pg_total_relation_size` of `workflow_state` now.
    pub(crate) async fn space_use(&self) -> Result<SpaceUse> {
        let bytes: i64 = sqlx::query_scalar("SELECT pg_total_relation_size('workflow_state')")
            .fetch_one(&self.pool)
            .await
            .map_err(self.err("reading the table's size"))?;
        Ok(SpaceUse {
            bytes,
            free_bytes: None,
            incremental: None,
        })
    }

    /// The stored size ([`ROW_BYTES`]) of the runs a cleanup matches: the oldest [`ESTIMATE_RUNS`] measured,
    /// the rest counted at their average.
    pub(crate) async fn estimate_cleanup_bytes(
        &self,
        policy: &ValidCleanup,
        matched: i64,
    ) -> Result<CleanupBytes> {
        let mut qb = cleanup_filter(
            policy,
            &format!("SELECT count(*), coalesce(sum(n), 0)::bigint FROM (SELECT {ROW_BYTES} AS n FROM workflow_state WHERE "),
        );
        qb.push(" LIMIT ").push_bind(ESTIMATE_RUNS).push(") s");
        let row = qb
            .build()
            .fetch_one(&self.pool)
            .await
            .map_err(self.err("estimating a cleanup's size"))?;
        let (measured, bytes): (i64, i64) = (row.get(0), row.get(1));
        Ok(crate::space::scale(measured, bytes, matched))
    }

    /// `VACUUM workflow_state`: the deleted rows' space becomes reusable, and empty pages at the end of the table
    /// are cut off. It runs beside the writers (it never blocks a save; its brief exclusive lock to truncate is
    /// given up as soon as another session waits). Sizes before and after.
    pub(crate) async fn reclaim_space(&self) -> Result<Reclaimed> {
        self.check_writable()?;
        let began = Instant::now();
        let before = self.space_use().await?;
        sqlx::raw_sql("VACUUM workflow_state")
            .execute(&self.pool)
            .await
            .map_err(self.err("vacuuming workflow_state"))?;
        let after = self.space_use().await?;
        Ok(Reclaimed {
            before,
            after,
            method: "vacuum",
            steps: 1,
            seconds: began.elapsed().as_secs_f64(),
        })
    }
}
