//! The Pipelines page's reads on PostgreSQL ([`crate::pipelines`]): the views of schema version 4's counters
//! ([`super::counters::PIPELINE_TABLES`], folded counts plus pending deltas) and `flowstate_updated_hourly`, in
//! one snapshot, and one step of `idx_flowstate_pipeline_created` per pipeline for its newest run.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::read::BEGIN_SNAPSHOT;
use super::PgStore;
use crate::pipelines::{TrendRows, WindowRows};
use crate::{Result, StoreError};

/// The statements.
pub(crate) mod sql {
    /// Runs per (pipeline key, status key) last updated in the hours `[$1, $2)` or the days from `$3` on.
    pub const WINDOW_STATUSES: &str = "SELECT pipeline_key::text, status_key::text, sum(runs)::int8 FROM (\
         SELECT pipeline_key, status_key, runs FROM flowstate_updated_hourly WHERE hour >= $1 AND hour < $2 \
         UNION ALL SELECT pipeline_key, status_key, runs FROM flowstate_pipe_status_daily WHERE day >= $3) AS w \
         GROUP BY 1, 2 HAVING sum(runs) <> 0";
    /// Histogram rows `(pipeline key, kind, bucket, runs, sum as text)` of the same hours and days: kind 0 and 1
    /// the hours' execution times and memory (fine buckets), 2 and 3 the days' (coarse).
    pub const WINDOW_HIST: &str = "SELECT pipeline_key::text, kind, bucket, sum(runs)::int8, sum(vsum)::text FROM (\
         SELECT pipeline_key, 0::int8 AS kind, bucket, runs, vsum FROM flowstate_pipe_exec_hourly \
         WHERE hour >= $1 AND hour < $2 \
         UNION ALL SELECT pipeline_key, 2, bucket, runs, vsum FROM flowstate_pipe_exec_daily WHERE day >= $3 \
         UNION ALL SELECT pipeline_key, 1, bucket, runs, vsum FROM flowstate_pipe_mem_hourly \
         WHERE hour >= $1 AND hour < $2 \
         UNION ALL SELECT pipeline_key, 3, bucket, runs, vsum FROM flowstate_pipe_mem_daily WHERE day >= $3) AS w \
         GROUP BY 1, 2, 3 HAVING sum(runs) <> 0";
    /// Runs per (day, status key) of the days `[$1, $2]`, every pipeline (the summed counter of schema version 5).
    pub const TREND_STATUSES_ALL: &str = "SELECT day, status_key::text, sum(runs)::int8 \
         FROM flowstate_all_status_daily WHERE day >= $1 AND day <= $2 GROUP BY 1, 2 HAVING sum(runs) <> 0";
    /// Time histogram rows `(day, coarse bucket, runs)` of the days `[$1, $2]`, every pipeline.
    pub const TREND_HIST_ALL: &str = "SELECT day, bucket, sum(runs)::int8 FROM flowstate_all_exec_daily \
         WHERE day >= $1 AND day <= $2 GROUP BY 1, 2 HAVING sum(runs) <> 0";
    /// Runs per (day, status key) of the days `[$1, $2]`, of pipeline key `$3`.
    pub const TREND_STATUSES_ONE: &str = "SELECT day, status_key::text, sum(runs)::int8 \
         FROM flowstate_pipe_status_daily WHERE day >= $1 AND day <= $2 AND pipeline_key = $3::text \
         GROUP BY 1, 2 HAVING sum(runs) <> 0";
    /// Time histogram rows `(day, coarse bucket, runs)` of the days `[$1, $2]`, of pipeline key `$3`.
    pub const TREND_HIST_ONE: &str = "SELECT day, bucket, sum(runs)::int8 FROM flowstate_pipe_exec_daily \
         WHERE day >= $1 AND day <= $2 AND pipeline_key = $3::text GROUP BY 1, 2 HAVING sum(runs) <> 0";
    /// The newest run (by creation) of each pipeline of `$1`, with its creation instant in microseconds (NULL
    /// when infinite).
    pub const LAST_RUNS: &str = "SELECT p, l.run_id, l.us FROM unnest($1::text[]) AS p LEFT JOIN LATERAL (\
         SELECT run_id, CASE WHEN isfinite(created_at) THEN (extract(epoch FROM created_at) * 1000000)::int8 END AS us \
         FROM workflow_state WHERE pipeline_id = p ORDER BY created_at DESC, run_id COLLATE \"C\" DESC LIMIT 1) AS l \
         ON true";
}

impl PgStore {
    fn pipeline_counters(&self) -> Result<()> {
        if self.pipelines {
            Ok(())
        } else {
            Err(StoreError::Conflict(
                "the Pipelines figures need the counters of PostgreSQL schema version 5: open the database once \
                 without --read-only (or run `flowstate migrate`)"
                    .into(),
            ))
        }
    }

    /// A window's counter rows, in one snapshot.
    pub(crate) async fn pipeline_window(&self, first_hour: i64, first_day: i64) -> Result<WindowRows> {
        self.pipeline_counters()?;
        let map = self.err("reading the pipelines' figures");
        let mut tx = self.pool.begin_with(BEGIN_SNAPSHOT).await.map_err(&map)?;
        let statuses: Vec<(String, String, i64)> = sqlx::query_as(sql::WINDOW_STATUSES)
            .bind(first_hour)
            .bind(first_day.saturating_mul(24))
            .bind(first_day)
            .fetch_all(&mut *tx)
            .await
            .map_err(&map)?;
        let hist: Vec<(String, i64, i64, i64, String)> = sqlx::query_as(sql::WINDOW_HIST)
            .bind(first_hour)
            .bind(first_day.saturating_mul(24))
            .bind(first_day)
            .fetch_all(&mut *tx)
            .await
            .map_err(&map)?;
        tx.commit().await.map_err(&map)?;
        Ok(WindowRows {
            statuses,
            coarse: hist.iter().any(|r| r.1 >= 2),
            hist: hist
                .into_iter()
                .map(|(p, k, b, n, sum)| (p, k % 2, b, n, sum.parse::<i128>().unwrap_or(0)))
                .collect(),
        })
    }

    /// A trend's counter rows of the days `[first_day, last_day]`, in one snapshot: every pipeline's from the
    /// summed counters.
    pub(crate) async fn pipeline_trend(
        &self,
        first_day: i64,
        last_day: i64,
        pipeline_id: Option<&str>,
    ) -> Result<TrendRows> {
        self.pipeline_counters()?;
        let map = self.err("reading the pipelines' trend");
        let key = pipeline_id.map(crate::counters::encode_key);
        let (statuses_sql, hist_sql) = match key {
            None => (sql::TREND_STATUSES_ALL, sql::TREND_HIST_ALL),
            Some(_) => (sql::TREND_STATUSES_ONE, sql::TREND_HIST_ONE),
        };
        let mut tx = self.pool.begin_with(BEGIN_SNAPSHOT).await.map_err(&map)?;
        let mut q = sqlx::query_as(statuses_sql).bind(first_day).bind(last_day);
        if let Some(k) = key.as_deref() {
            q = q.bind(k);
        }
        let statuses = q.fetch_all(&mut *tx).await.map_err(&map)?;
        let mut q = sqlx::query_as(hist_sql).bind(first_day).bind(last_day);
        if let Some(k) = key.as_deref() {
            q = q.bind(k);
        }
        let hist = q.fetch_all(&mut *tx).await.map_err(&map)?;
        tx.commit().await.map_err(&map)?;
        Ok(TrendRows { statuses, hist })
    }

    /// The newest run (by creation) of each pipeline.
    pub(crate) async fn last_runs(
        &self,
        pipelines: &[String],
    ) -> Result<BTreeMap<String, (String, Option<DateTime<Utc>>)>> {
        if pipelines.is_empty() {
            return Ok(BTreeMap::new());
        }
        let rows: Vec<(String, Option<String>, Option<i64>)> = sqlx::query_as(sql::LAST_RUNS)
            .bind(pipelines)
            .fetch_all(&self.pool)
            .await
            .map_err(self.err("reading the pipelines' newest runs"))?;
        Ok(rows
            .into_iter()
            .filter_map(|(p, run_id, us)| Some((p, (run_id?, us.and_then(crate::time::from_micros)))))
            .collect())
    }
}
