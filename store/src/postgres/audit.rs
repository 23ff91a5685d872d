//! The audit record of deletions on PostgreSQL (schema version 4): which run ids each change deleted, written by
//! the same statement as the delete that removed them (`flowstate_audit_run`), and read back by keyset.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::{PgPool, Postgres, QueryBuilder};

use super::PgStore;
use crate::Result;

/// How a recorded cleanup batch starts: the plain batch's delete, inside a data-modifying CTE (the policy's
/// filter and `LIMIT ... FOR UPDATE SKIP LOCKED)` follow, then [`recorded_batch`] adds the rest).
pub(super) const RECORDED_HEAD: &str =
    "WITH gone AS (DELETE FROM workflow_state WHERE run_id IN (SELECT run_id FROM workflow_state WHERE ";

/// Ends and runs one batch of a recorded cleanup begun with [`RECORDED_HEAD`]: one statement deletes the rows,
/// writes their ids under `audit_id` and adds their number to the entry's `affected`. Returns the rows deleted
/// and their stored size ([`super::space::ROW_BYTES`], measured as they go).
pub(super) async fn recorded_batch(
    pool: &PgPool,
    mut qb: QueryBuilder<'static, Postgres>,
    audit_id: i64,
) -> sqlx::Result<(u64, i64)> {
    qb.push(format!(" RETURNING run_id, {} AS n", super::space::ROW_BYTES));
    qb.push("), noted AS (INSERT INTO flowstate_audit_run (audit_id, run_id) SELECT ")
        .push_bind(audit_id)
        .push(
            ", run_id FROM gone ON CONFLICT DO NOTHING), counted AS (UPDATE flowstate_audit \
         SET affected = affected + (SELECT count(*) FROM gone) WHERE id = ",
        )
        .push_bind(audit_id)
        .push(") SELECT count(*), coalesce(sum(n), 0)::bigint FROM gone");
    let (done, bytes): (i64, i64) = qb.build_query_as().fetch_one(pool).await?;
    Ok((u64::try_from(done).unwrap_or(0), bytes))
}

impl PgStore {
    /// Replaces audit entry `audit_id`'s detail (a recorded cleanup adds what it freed).
    pub(crate) async fn set_audit_detail(&self, audit_id: i64, detail: &Value) -> Result<()> {
        self.check_writable()?;
        sqlx::query("UPDATE flowstate_audit SET detail = $1::jsonb WHERE id = $2")
            .bind(detail.to_string())
            .bind(audit_id)
            .execute(&self.pool)
            .await
            .map_err(self.err("recording an audit entry"))?;
        Ok(())
    }

    /// Deletes run `run_id` and, in the same statement, records it: an audit entry (`matched` and `affected` 1)
    /// and its id in `flowstate_audit_run`. The entry's id, or `None` when there was no such run.
    pub(crate) async fn delete_recorded(
        &self,
        run_id: &str,
        at: DateTime<Utc>,
        actor: &str,
        action: &str,
        detail: &Value,
    ) -> Result<Option<i64>> {
        self.check_writable()?;
        if super::read::holds_nul(run_id) {
            return Ok(None);
        }
        sqlx::query_scalar(
            "WITH gone AS (DELETE FROM workflow_state WHERE run_id = $1 RETURNING run_id), \
             entry AS (INSERT INTO flowstate_audit (at, actor, action, detail, matched, affected) \
                       SELECT $2, $3, $4, $5::jsonb, 1, count(*) FROM gone HAVING count(*) > 0 RETURNING id), \
             noted AS (INSERT INTO flowstate_audit_run (audit_id, run_id) SELECT entry.id, gone.run_id FROM entry, gone) \
             SELECT id FROM entry",
        )
        .bind(run_id)
        .bind(at)
        .bind(actor)
        .bind(action)
        .bind(detail.to_string())
        .fetch_optional(&self.pool)
        .await
        .map_err(self.err("deleting a run"))
    }

    /// The run ids audit entry `audit_id` deleted, in run-id order, the first `limit` after `after`; none when the
    /// database has no such table (schema 3 or older, opened read-only).
    pub(crate) async fn audit_run_ids(
        &self,
        audit_id: i64,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<String>> {
        let map = self.err("reading the runs an audit entry deleted");
        let exists: bool = sqlx::query_scalar("SELECT to_regclass('flowstate_audit_run') IS NOT NULL")
            .fetch_one(&self.pool)
            .await
            .map_err(&map)?;
        if !exists || after.is_some_and(super::read::holds_nul) {
            return Ok(Vec::new());
        }
        sqlx::query_scalar(
            "SELECT run_id FROM flowstate_audit_run WHERE audit_id = $1 AND ($2::text IS NULL OR run_id > $2) \
             ORDER BY run_id LIMIT $3",
        )
        .bind(audit_id)
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(&map)
    }
}
