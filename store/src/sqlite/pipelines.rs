//! The Pipelines page's reads on SQLite ([`crate::pipelines`]): schema version 4's counters
//! ([`super::counters::PIPELINE_TABLES`]) and `flowstate_updated_hourly`, and one step of
//! `idx_flowstate_pipeline_created` per pipeline for its newest run.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use sqlx::Connection;

use super::raw::Param;
use super::SqliteStore;
use crate::pipelines::{TrendRows, WindowRows};
use crate::{Result, StoreError};

/// The statements, in one place for the plan test. Histogram rows come back as **one JSON array** (a row of the
/// driver costs many times SQLite's work on it).
pub(crate) mod sql {
    /// Runs per (pipeline key, status key) last updated in the hours `[?1, ?2)` or the days from `?3` on.
    pub const WINDOW_STATUSES: &str = "SELECT pipeline_key, status_key, sum(runs) FROM (\
         SELECT pipeline_key, status_key, runs FROM flowstate_updated_hourly WHERE hour >= ?1 AND hour < ?2 \
         UNION ALL SELECT pipeline_key, status_key, runs FROM flowstate_pipe_status_daily WHERE day >= ?3) \
         GROUP BY pipeline_key, status_key";
    /// Histogram rows `(pipeline key, kind, bucket, runs, sum_hi, sum_lo)` of the same hours and days, as stored
    /// (summed per pipeline, kind and bucket by the caller: a `GROUP BY` here sorted every row first); kind 0 and 1
    /// are the hours' execution times and memory (fine buckets), 2 and 3 the days' (coarse). Each part is a range
    /// of its table's primary key. Read on the connection's own handle ([`super::raw::query_map`]): at 10M runs a
    /// window's first day holds tens of thousands of hourly rows.
    pub const WINDOW_HIST: &str = "\
         SELECT pipeline_key, 0 AS kind, bucket, runs, sum_hi, sum_lo FROM flowstate_pipe_exec_hourly \
         WHERE hour >= ?1 AND hour < ?2 \
         UNION ALL SELECT pipeline_key, 2, bucket, runs, sum_hi, sum_lo FROM flowstate_pipe_exec_daily WHERE day >= ?3 \
         UNION ALL SELECT pipeline_key, 1, bucket, runs, sum_hi, sum_lo FROM flowstate_pipe_mem_hourly \
         WHERE hour >= ?1 AND hour < ?2 \
         UNION ALL SELECT pipeline_key, 3, bucket, runs, sum_hi, sum_lo FROM flowstate_pipe_mem_daily WHERE day >= ?3";
    /// Runs per (day, status key) of the days `[?1, ?2]`, every pipeline (the summed rows of schema version 5).
    pub const TREND_STATUSES_ALL: &str =
        "SELECT day, status_key, runs FROM flowstate_all_status_daily WHERE day >= ?1 AND day <= ?2";
    /// Time histogram rows `[day, coarse bucket, runs]` of the days `[?1, ?2]`, every pipeline, as one JSON array.
    pub const TREND_HIST_ALL: &str = "SELECT json_group_array(json_array(day, bucket, runs)) \
         FROM flowstate_all_exec_daily WHERE day >= ?1 AND day <= ?2";
    /// The days `[?1, ?2]`, for the per-pipeline reads: one search of the primary key (day, pipeline) per day.
    macro_rules! days {
        () => {
            "WITH RECURSIVE d(day) AS (SELECT ?1 UNION ALL SELECT day + 1 FROM d WHERE day < ?2) "
        };
    }
    /// Runs per (day, status key) of the days `[?1, ?2]`, of pipeline key `?3`.
    pub const TREND_STATUSES_ONE: &str = concat!(
        days!(),
        "SELECT t.day, t.status_key, t.runs FROM d JOIN flowstate_pipe_status_daily AS t \
         ON t.day = d.day AND t.pipeline_key = ?3"
    );
    /// Time histogram rows `[day, coarse bucket, runs]` of the days `[?1, ?2]`, of pipeline key `?3`, as one JSON
    /// array.
    pub const TREND_HIST_ONE: &str = concat!(
        days!(),
        "SELECT json_group_array(json_array(t.day, t.bucket, t.runs)) FROM d \
         JOIN flowstate_pipe_exec_daily AS t ON t.day = d.day AND t.pipeline_key = ?3"
    );

    /// The newest run (by creation) of each pipeline of the JSON array `?1`: one step of
    /// `idx_flowstate_pipeline_created` each.
    pub fn last_runs() -> String {
        let c = crate::time::instant_sql("created_at");
        format!(
            "SELECT p.value, (SELECT json_array(run_id, {c}) FROM workflow_state WHERE pipeline_id = p.value \
             ORDER BY {c} DESC, run_id DESC LIMIT 1) FROM json_each(?1) AS p"
        )
    }
}

/// The rows of a `json_group_array` (none for NULL).
fn json_rows<T: serde::de::DeserializeOwned>(document: Option<&str>) -> Result<Vec<T>> {
    serde_json::from_str(document.unwrap_or("[]")).map_err(|e| {
        StoreError::Database(sqlx::Error::Decode(
            format!("the pipelines' counters read back as unexpected JSON: {e}").into(),
        ))
    })
}

impl SqliteStore {
    fn pipeline_counters(&self) -> Result<()> {
        if self.has_counters() {
            Ok(())
        } else {
            Err(StoreError::Conflict(
                "the Pipelines figures need the counters of schema version 5: open the database once without \
                 --read-only (or run `flowstate migrate`)"
                    .into(),
            ))
        }
    }

    /// A window's counter rows, in one snapshot.
    pub(crate) async fn pipeline_window(&self, first_hour: i64, first_day: i64) -> Result<WindowRows> {
        self.pipeline_counters()?;
        let map = self.map("reading the pipelines' figures");
        let mut conn = self.pool().acquire().await.map_err(&map)?;
        let mut tx = conn.begin().await.map_err(&map)?;
        let statuses: Vec<(String, String, i64)> = sqlx::query_as(sql::WINDOW_STATUSES)
            .bind(first_hour)
            .bind(first_day.saturating_mul(24))
            .bind(first_day)
            .fetch_all(&mut *tx)
            .await
            .map_err(&map)?;
        // Summed per (pipeline key, kind, bucket) here; a pipeline key is copied once.
        let mut sums: HashMap<(Arc<str>, i64, i64), (i64, i128)> = HashMap::new();
        let mut keys = super::raw::Shared::default();
        {
            let mut locked = tx.lock_handle().await.map_err(&map)?;
            let params = [
                Param::Int(first_hour),
                Param::Int(first_day.saturating_mul(24)),
                Param::Int(first_day),
            ];
            super::raw::query_map(&mut locked, sql::WINDOW_HIST, params, |row| {
                let key = keys.get(&row.text(0).unwrap_or_default());
                let (kind, bucket) = (row.int(1).unwrap_or(0), row.int(2).unwrap_or(0));
                let (runs, hi, lo) = (
                    row.int(3).unwrap_or(0),
                    row.int(4).unwrap_or(0),
                    row.int(5).unwrap_or(0),
                );
                let sum = sums.entry((key, kind, bucket)).or_default();
                sum.0 += runs;
                sum.1 += crate::counters::time_sum(hi, lo);
            })
            .map_err(&map)?;
        }
        tx.commit().await.map_err(&map)?;
        Ok(WindowRows {
            statuses,
            coarse: sums.keys().any(|(_, kind, _)| *kind >= 2),
            hist: sums
                .into_iter()
                .map(|((p, k, b), (n, sum))| (p.to_string(), k % 2, b, n, sum))
                .collect(),
        })
    }

    /// A trend's counter rows of the days `[first_day, last_day]`, in one snapshot: every pipeline's from the summed
    /// rows, one pipeline's by one search per day.
    pub(crate) async fn pipeline_trend(
        &self,
        first_day: i64,
        last_day: i64,
        pipeline_id: Option<&str>,
    ) -> Result<TrendRows> {
        self.pipeline_counters()?;
        let map = self.map("reading the pipelines' trend");
        let key = pipeline_id.map(crate::counters::encode_key);
        let (statuses_sql, hist_sql) = match key {
            None => (sql::TREND_STATUSES_ALL, sql::TREND_HIST_ALL),
            Some(_) => (sql::TREND_STATUSES_ONE, sql::TREND_HIST_ONE),
        };
        let mut conn = self.pool().acquire().await.map_err(&map)?;
        let mut tx = conn.begin().await.map_err(&map)?;
        let statuses = sqlx::query_as(statuses_sql)
            .bind(first_day)
            .bind(last_day)
            .bind(key.as_deref())
            .fetch_all(&mut *tx)
            .await
            .map_err(&map)?;
        let hist: Option<String> = sqlx::query_scalar(hist_sql)
            .bind(first_day)
            .bind(last_day)
            .bind(key.as_deref())
            .fetch_one(&mut *tx)
            .await
            .map_err(&map)?;
        tx.commit().await.map_err(&map)?;
        Ok(TrendRows {
            statuses,
            hist: json_rows(hist.as_deref())?,
        })
    }

    /// The newest run (by creation) of each pipeline.
    pub(crate) async fn last_runs(
        &self,
        pipelines: &[String],
    ) -> Result<BTreeMap<String, (String, Option<DateTime<Utc>>)>> {
        if pipelines.is_empty() {
            return Ok(BTreeMap::new());
        }
        let list = serde_json::to_string(pipelines).unwrap_or_else(|_| "[]".into());
        let rows: Vec<(String, Option<String>)> = sqlx::query_as(&sql::last_runs())
            .bind(list)
            .fetch_all(self.pool())
            .await
            .map_err(self.map("reading the pipelines' newest runs"))?;
        let mut out = BTreeMap::new();
        for (pipeline, found) in rows {
            let Some(found) = found else { continue };
            let Ok((run_id, us)) = serde_json::from_str::<(String, i64)>(&found) else {
                continue;
            };
            let at = (us != crate::time::UNKNOWN_INSTANT)
                .then(|| crate::time::from_micros(us))
                .flatten();
            out.insert(pipeline, (run_id, at));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod plans {
    use super::sql;

    /// The Pipelines page's counter reads search ranges of the counter tables, never `workflow_state`; the newest
    /// runs are one search of `idx_flowstate_pipeline_created` per pipeline.
    #[tokio::test]
    async fn pipeline_reads_never_scan_the_runs() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::Store::open(dir.path().join("plan.db")).await.unwrap();
        let mut conn = store.sqlite().unwrap().pool().acquire().await.unwrap();
        for statement in [
            sql::WINDOW_STATUSES,
            sql::WINDOW_HIST,
            sql::TREND_STATUSES_ALL,
            sql::TREND_HIST_ALL,
            sql::TREND_STATUSES_ONE,
            sql::TREND_HIST_ONE,
        ] {
            let rows: Vec<(i64, i64, i64, String)> =
                sqlx::query_as(&format!("EXPLAIN QUERY PLAN {statement}"))
                    .fetch_all(&mut *conn)
                    .await
                    .unwrap();
            let lines: Vec<String> = rows.into_iter().map(|r| r.3).collect();
            assert!(
                !lines.iter().any(|l| l.contains("workflow_state")),
                "{statement}: {lines:?}"
            );
            for l in lines.iter().filter(|l| l.contains("flowstate_")) {
                assert!(l.starts_with("SEARCH"), "{statement} scans: {lines:?}");
            }
        }
        let rows: Vec<(i64, i64, i64, String)> =
            sqlx::query_as(&format!("EXPLAIN QUERY PLAN {}", sql::last_runs()))
                .fetch_all(&mut *conn)
                .await
                .unwrap();
        let lines: Vec<String> = rows.into_iter().map(|r| r.3).collect();
        assert!(
            lines
                .iter()
                .filter(|l| l.contains("workflow_state"))
                .all(|l| l.starts_with("SEARCH workflow_state USING INDEX idx_flowstate_pipeline_created")),
            "{lines:?}"
        );
        assert!(!lines.iter().any(|l| l.contains("TEMP B-TREE")), "{lines:?}");
        drop(conn);
        store.close().await;
    }
}
