//! Disk space on SQLite ([`crate::space`]): the file's pages, what a cleanup would free, and giving free pages
//! back in small `incremental_vacuum` steps.

use std::time::Instant;

use sqlx::Row;

use super::{cleanup_filter, SqliteStore};
use crate::space::{CleanupBytes, Reclaimed, SpaceUse, ESTIMATE_RUNS, RECLAIM_STEP_PAGES};
use crate::validate::ValidCleanup;
use crate::Result;

/// The bytes a row's values take as stored: every text's length in bytes (`octet_length` reads a value's size
/// from the record header, never its content or overflow pages) and 8 for each of the four numbers and the
/// record's header. flujo 0.4.35's fifteen columns, which every readable file has.
pub(crate) const ROW_BYTES: &str =
    "(40 + ifnull(octet_length(run_id), 0) + ifnull(octet_length(pipeline_id), 0) \
     + ifnull(octet_length(pipeline_name), 0) + ifnull(octet_length(pipeline_version), 0) \
     + ifnull(octet_length(pipeline_context), 0) + ifnull(octet_length(last_step_output), 0) \
     + ifnull(octet_length(step_history), 0) + ifnull(octet_length(status), 0) \
     + ifnull(octet_length(created_at), 0) + ifnull(octet_length(updated_at), 0) \
     + ifnull(octet_length(error_message), 0))";

impl SqliteStore {
    /// The file's pages now (the last commit, the WAL's included).
    pub(crate) async fn space_use(&self) -> Result<SpaceUse> {
        let map = self.err("reading the file's size");
        let row = sqlx::query(
            "SELECT (SELECT page_count FROM pragma_page_count()), (SELECT freelist_count FROM pragma_freelist_count()), \
             (SELECT page_size FROM pragma_page_size()), (SELECT auto_vacuum FROM pragma_auto_vacuum())",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(&map)?;
        let (pages, free, size, auto): (i64, i64, i64, i64) =
            (row.get(0), row.get(1), row.get(2), row.get(3));
        Ok(SpaceUse {
            bytes: pages * size,
            free_bytes: Some(free * size),
            incremental: Some(auto == 2),
        })
    }

    /// The stored size ([`ROW_BYTES`]) of the runs a cleanup matches: the oldest [`ESTIMATE_RUNS`] measured,
    /// the rest counted at their average. Reads each measured row's record header (not its large values).
    pub(crate) async fn estimate_cleanup_bytes(
        &self,
        policy: &ValidCleanup,
        matched: i64,
    ) -> Result<CleanupBytes> {
        let mut qb = cleanup_filter(
            policy,
            &format!("SELECT count(*), total(n) FROM (SELECT {ROW_BYTES} AS n FROM workflow_state WHERE "),
        );
        qb.push(" LIMIT ").push_bind(ESTIMATE_RUNS).push(")");
        let row = qb
            .build()
            .fetch_one(&self.pool)
            .await
            .map_err(self.err("estimating a cleanup's size"))?;
        let (measured, bytes): (i64, f64) = (row.get(0), row.get(1));
        Ok(crate::space::scale(measured, bytes as i64, matched))
    }

    /// Gives the file's free pages back to the file system, [`RECLAIM_STEP_PAGES`] at a time, each step a short
    /// write transaction on the write connection (saves take turns with it) followed by a passive checkpoint
    /// (with WAL, the file shrinks when the steps are copied into it). Nothing for a file whose `auto_vacuum` is
    /// not `INCREMENTAL`: its free pages stay for new runs.
    pub(crate) async fn reclaim_space(&self) -> Result<Reclaimed> {
        let began = Instant::now();
        let before = self.space_use().await?;
        if before.incremental != Some(true) || before.free_bytes == Some(0) {
            return Ok(Reclaimed {
                before,
                after: before,
                method: if before.incremental == Some(true) {
                    "incremental_vacuum"
                } else {
                    "none"
                },
                steps: 0,
                seconds: began.elapsed().as_secs_f64(),
            });
        }
        let writer = self.writer()?;
        let mut steps = 0u32;
        let mut free = before.free_bytes.unwrap_or(0);
        loop {
            writer
                .exec(Box::new(move |conn| {
                    Box::pin(async move {
                        sqlx::query(&format!("PRAGMA incremental_vacuum({RECLAIM_STEP_PAGES})"))
                            .fetch_all(&mut *conn)
                            .await?;
                        if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                            .fetch_all(&mut *conn)
                            .await
                        {
                            tracing::debug!(error = %e, "checkpoint after a reclaim step");
                        }
                        Ok(0)
                    })
                }))
                .await?
                .map_err(self.err("giving free pages back"))?;
            steps += 1;
            let now = self.space_use().await?.free_bytes.unwrap_or(0);
            // Done, or no progress (another process holds pages), or far more steps than pages: stop.
            if now == 0 || now >= free || steps > 1_000_000 {
                break;
            }
            free = now;
            tokio::task::yield_now().await;
        }
        let after = self.space_use().await?;
        tracing::info!(
            steps,
            returned = before.bytes - after.bytes,
            "free pages given back"
        );
        Ok(Reclaimed {
            before,
            after,
            method: "incremental_vacuum",
            steps,
            seconds: began.elapsed().as_secs_f64(),
        })
    }

    /// Sets `auto_vacuum` to `INCREMENTAL` and rewrites the file with `VACUUM` (the only way SQLite changes it on
    /// an existing file): the write lock is held for the whole rewrite, and the file's free pages are gone after.
    pub(crate) async fn convert_to_incremental(&self) -> Result<Reclaimed> {
        let began = Instant::now();
        let before = self.space_use().await?;
        let writer = self.writer()?;
        writer
            .exec(Box::new(move |conn| {
                Box::pin(async move {
                    sqlx::query("PRAGMA auto_vacuum = INCREMENTAL")
                        .execute(&mut *conn)
                        .await?;
                    sqlx::query("VACUUM").execute(&mut *conn).await?;
                    if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                        .fetch_all(&mut *conn)
                        .await
                    {
                        tracing::debug!(error = %e, "checkpoint after VACUUM");
                    }
                    Ok(0)
                })
            }))
            .await?
            .map_err(self.err("rewriting the file (VACUUM)"))?;
        let after = self.space_use().await?;
        Ok(Reclaimed {
            before,
            after,
            method: "vacuum_full_rewrite",
            steps: 1,
            seconds: began.elapsed().as_secs_f64(),
        })
    }
}
