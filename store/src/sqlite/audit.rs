//! The audit record of deletions on SQLite (schema version 4): which run ids each change deleted, written in the
//! same transaction as the delete that removed them (`flowstate_audit_run`), and read back by keyset.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::{QueryBuilder, Row, Sqlite, SqliteConnection};

use super::SqliteStore;
use crate::time;
use crate::{Result, StoreError};

/// The temporary table a recorded cleanup batch collects its run ids in (on the write connection only).
const BATCH_TABLE: &str = "CREATE TEMP TABLE IF NOT EXISTS flowstate_batch (run_id PRIMARY KEY)";

/// Ends the transaction `result` was made in on `conn`: committed when it is `Ok`, rolled back otherwise.
async fn finish<T>(conn: &mut SqliteConnection, result: sqlx::Result<T>) -> sqlx::Result<T> {
    match result {
        Ok(value) => {
            sqlx::query("COMMIT").execute(&mut *conn).await?;
            Ok(value)
        }
        Err(e) => {
            if let Err(undo) = sqlx::query("ROLLBACK").execute(&mut *conn).await {
                tracing::debug!(error = %undo, "rolling back a recorded delete");
            }
            Err(e)
        }
    }
}

/// One batch of a recorded cleanup, in one transaction: `pick` (an `INSERT INTO temp.flowstate_batch ... SELECT
/// run_id ... LIMIT n` of the policy) chooses the runs, they are deleted, their ids written under `audit_id`, and
/// the entry's `affected` grows by the rows deleted. Returns the rows deleted.
pub(super) async fn delete_recorded_batch(
    conn: &mut SqliteConnection,
    pick: QueryBuilder<'static, Sqlite>,
    audit_id: i64,
) -> sqlx::Result<u64> {
    sqlx::query(BATCH_TABLE).execute(&mut *conn).await?;
    sqlx::query("BEGIN IMMEDIATE").execute(&mut *conn).await?;
    let result = batch_body(conn, pick, audit_id).await;
    finish(conn, result).await
}

async fn batch_body(
    conn: &mut SqliteConnection,
    mut pick: QueryBuilder<'static, Sqlite>,
    audit_id: i64,
) -> sqlx::Result<u64> {
    sqlx::query("DELETE FROM temp.flowstate_batch")
        .execute(&mut *conn)
        .await?;
    pick.build().execute(&mut *conn).await?;
    let done =
        sqlx::query("DELETE FROM workflow_state WHERE run_id IN (SELECT run_id FROM temp.flowstate_batch)")
            .execute(&mut *conn)
            .await?
            .rows_affected();
    // A NULL run id (flujo's table allows one) is never matched by IN, so never deleted, so not recorded.
    sqlx::query(
        "INSERT OR IGNORE INTO flowstate_audit_run (audit_id, run_id) \
             SELECT ?1, run_id FROM temp.flowstate_batch WHERE run_id IS NOT NULL",
    )
    .bind(audit_id)
    .execute(&mut *conn)
    .await?;
    sqlx::query("UPDATE flowstate_audit SET affected = affected + ?1 WHERE id = ?2")
        .bind(i64::try_from(done).unwrap_or(i64::MAX))
        .bind(audit_id)
        .execute(&mut *conn)
        .await?;
    Ok(done)
}

impl SqliteStore {
    /// Replaces audit entry `audit_id`'s detail (a recorded cleanup adds what it freed).
    pub(crate) async fn set_audit_detail(&self, audit_id: i64, detail: &Value) -> Result<()> {
        self.writer()?;
        sqlx::query("UPDATE flowstate_audit SET detail = ?1 WHERE id = ?2")
            .bind(detail.to_string())
            .bind(audit_id)
            .execute(&self.pool)
            .await
            .map_err(self.err("recording an audit entry"))?;
        Ok(())
    }

    /// Deletes run `run_id` and, in the same transaction, records it: an audit entry (with `matched` and
    /// `affected` of one) and its id in `flowstate_audit_run`. The entry's id, or `None` when there was no such
    /// run (nothing is recorded then).
    pub(crate) async fn delete_recorded(
        &self,
        run_id: &str,
        at: DateTime<Utc>,
        actor: &str,
        action: &str,
        detail: &Value,
    ) -> Result<Option<i64>> {
        let writer = self.writer()?;
        let (run_id, at, actor, action, detail) = (
            run_id.to_string(),
            time::format_timestamp(&at),
            actor.to_string(),
            action.to_string(),
            detail.to_string(),
        );
        let id = writer
            .exec(Box::new(move |conn| {
                Box::pin(async move {
                    sqlx::query("BEGIN IMMEDIATE").execute(&mut *conn).await?;
                    let result = delete_one(conn, &run_id, &at, &actor, &action, &detail).await;
                    finish(conn, result).await
                })
            }))
            .await?
            .map_err(self.err("deleting a run"))?;
        Ok((id > 0).then(|| i64::try_from(id).unwrap_or(i64::MAX)))
    }

    /// The run ids audit entry `audit_id` deleted, in run-id order (byte order), the first `limit` after `after`.
    /// None for a file without the table (schema 3 or older, opened read-only).
    pub(crate) async fn audit_run_ids(
        &self,
        audit_id: i64,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<String>> {
        let map = self.err("reading the runs an audit entry deleted");
        let exists: Option<i64> = sqlx::query_scalar(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'flowstate_audit_run'",
        )
        .fetch_optional(&self.pool)
        .await
        .map_err(&map)?;
        if exists.is_none() {
            return Ok(Vec::new());
        }
        let rows = sqlx::query(
            "SELECT CAST(run_id AS TEXT) FROM flowstate_audit_run \
             WHERE audit_id = ?1 AND (?2 IS NULL OR run_id > ?2) ORDER BY run_id LIMIT ?3",
        )
        .bind(audit_id)
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(&map)?;
        rows.iter()
            .map(|r| r.try_get::<String, _>(0))
            .collect::<sqlx::Result<Vec<String>>>()
            .map_err(StoreError::Database)
    }
}

/// A recorded single-run delete, inside its transaction: the entry's id, or 0 when there was no such run.
async fn delete_one(
    conn: &mut SqliteConnection,
    run_id: &str,
    at: &str,
    actor: &str,
    action: &str,
    detail: &str,
) -> sqlx::Result<u64> {
    let gone = sqlx::query("DELETE FROM workflow_state WHERE run_id = ?1")
        .bind(run_id)
        .execute(&mut *conn)
        .await?
        .rows_affected();
    if gone == 0 {
        return Ok(0);
    }
    let id = sqlx::query(
        "INSERT INTO flowstate_audit (at, actor, action, detail, matched, affected) VALUES (?1, ?2, ?3, ?4, 1, ?5)",
    )
    .bind(at)
    .bind(actor)
    .bind(action)
    .bind(detail)
    .bind(i64::try_from(gone).unwrap_or(i64::MAX))
    .execute(&mut *conn)
    .await?
    .last_insert_rowid();
    sqlx::query("INSERT OR IGNORE INTO flowstate_audit_run (audit_id, run_id) VALUES (?1, ?2)")
        .bind(id)
        .bind(run_id)
        .execute(&mut *conn)
        .await?;
    Ok(u64::try_from(id).unwrap_or(0))
}
