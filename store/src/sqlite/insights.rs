//! The dashboard's figures on SQLite: stuck runs, percentiles, activity, failure groups and rates, the counters'
//! checks and the audit log. The neutral parts (types, signatures, grouping) are [`crate::insights`]'s.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::{Connection, Row};

use flowstate_model::percentiles::{nearest_rank, REPORTED};

use super::counters::{self, CounterCheck, HOUR_US};
use super::raw::{self, Param};
use super::row::SUMMARY_COLUMNS;
use super::SqliteStore;
use crate::insights::{
    buckets_of, from_histogram, layout_activity, ActivityBucket, AuditEntry, Bucket, FailureCount,
    FailureReport, FailureScope, Grouped, StuckRuns, MAX_FAILURE_SCAN,
};
use crate::time::{self, instant_sql};
use crate::{ListQuery, Percentiles, Result, RunSummary};

impl SqliteStore {
    pub(crate) async fn stuck_runs(&self, idle_since: DateTime<Utc>, limit: u32) -> Result<StuckRuns> {
        let updated = instant_sql("updated_at");
        let filter = format!(
            "status IN ('running', 'paused') AND {updated} < ?1 AND {updated} > {}",
            time::UNKNOWN_INSTANT
        );
        let cutoff = time::instant_micros(&idle_since);
        let map = self.map("counting stuck runs");
        let mut conn = self.pool().acquire().await.map_err(&map)?;
        let mut tx = conn.begin().await.map_err(&map)?;
        let count: i64 = if self.has_counters() {
            // Every live run, minus the ones active since the cutoff (an index range: the runs that are moving)
            // and the ones whose last update cannot be read (never counted as stuck).
            let live: i64 = sqlx::query_scalar(counters::sql::LIVE)
                .fetch_one(&mut *tx)
                .await
                .map_err(&map)?;
            let (active, unknown): (i64, i64) = sqlx::query_as(&counters::sql::live_active_and_unknown())
                .bind(cutoff)
                .fetch_one(&mut *tx)
                .await
                .map_err(&map)?;
            live - active - unknown
        } else {
            sqlx::query_scalar(&format!("SELECT count(*) FROM workflow_state WHERE {filter}"))
                .bind(cutoff)
                .fetch_one(&mut *tx)
                .await
                .map_err(&map)?
        };
        let rows = sqlx::query(&format!(
            "SELECT {} FROM workflow_state WHERE {filter} ORDER BY {updated} ASC, run_id ASC LIMIT ?2",
            *SUMMARY_COLUMNS
        ))
        .bind(cutoff)
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await
        .map_err(self.map("listing stuck runs"))?;
        tx.commit().await.map_err(&map)?;
        Ok(StuckRuns {
            idle_since,
            count,
            runs: rows.iter().map(super::row::decode_summary).collect(),
        })
    }

    /// Execution-time percentiles over all runs, or one pipeline's.
    ///
    /// With the counters, reads the pipeline's (or every pipeline's) execution-time histogram, a few hundred rows
    /// at most, and the longest time from the execution-time index (one step): p50, p95 and p99 are then within
    /// [`Percentiles::relative_error`] (1/32) of the exact values, and exact below 32 ms. Without them (a flujo file
    /// opened read-only), reads the exact values from the index, one ordered step per rank.
    ///
    /// # Errors
    /// Database failures.
    pub(crate) async fn execution_percentiles(&self, pipeline_id: Option<&str>) -> Result<Percentiles> {
        if !self.has_counters() {
            return self.exact_percentiles(pipeline_id).await;
        }
        let map = self.map("reading percentiles");
        let mut conn = self.pool().acquire().await.map_err(&map)?;
        let mut tx = conn.begin().await.map_err(&map)?;
        let key = pipeline_id.map(counters::encode_key);
        let document: Option<String> = sqlx::query_scalar(counters::sql::HISTOGRAM)
            .bind(&key)
            .fetch_one(&mut *tx)
            .await
            .map_err(&map)?;
        let max = self.longest(&mut tx, pipeline_id).await?;
        tx.commit().await.map_err(&map)?;
        Ok(from_histogram(&buckets_of(document)?, max))
    }

    /// The longest execution time, overall or of one pipeline (one step in an execution-time index).
    async fn longest(
        &self,
        conn: &mut sqlx::SqliteConnection,
        pipeline_id: Option<&str>,
    ) -> Result<Option<f64>> {
        let sql = if pipeline_id.is_some() {
            counters::sql::LONGEST_OF
        } else {
            counters::sql::LONGEST
        };
        sqlx::query_scalar(sql)
            .bind(pipeline_id)
            .fetch_one(&mut *conn)
            .await
            .map_err(self.map("reading percentiles"))
    }

    /// Exact nearest-rank percentiles from the execution-time index, one ordered step per rank (the cost grows
    /// with the rank): for stores without counters.
    async fn exact_percentiles(&self, pipeline_id: Option<&str>) -> Result<Percentiles> {
        let filter = if pipeline_id.is_some() {
            "execution_time_ms IS NOT NULL AND pipeline_id = ?1"
        } else {
            "execution_time_ms IS NOT NULL AND ?1 IS NULL"
        };
        let count: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM workflow_state WHERE {filter}"))
            .bind(pipeline_id)
            .fetch_one(self.pool())
            .await
            .map_err(self.map("reading percentiles"))?;
        if count == 0 {
            return Ok(Percentiles::default());
        }
        // 0-based offsets of the nearest ranks (count > 0 here).
        let at_rank = |p: f64| nearest_rank(p, count).unwrap_or(1) - 1;
        let sql = format!(
            "SELECT CAST(execution_time_ms AS REAL) FROM workflow_state WHERE {filter} \
             ORDER BY execution_time_ms LIMIT 1 OFFSET ?2"
        );
        let mut values = Vec::with_capacity(4);
        let [p50, p95, p99] = REPORTED.map(at_rank);
        for rank in [p50, p95, p99, count - 1] {
            let v: Option<f64> = sqlx::query_scalar(&sql)
                .bind(pipeline_id)
                .bind(rank)
                .fetch_optional(self.pool())
                .await
                .map_err(self.map("reading percentiles"))?;
            values.push(v);
        }
        Ok(Percentiles {
            count,
            p50: values[0],
            p95: values[1],
            p99: values[2],
            max: values[3],
            relative_error: 0.0,
        })
    }

    /// Execution-time percentiles of every pipeline, busiest first (as [`Store::execution_percentiles`]; with the
    /// counters, one read of the histogram table and one index step per pipeline).
    ///
    /// # Errors
    /// Database failures.
    pub(crate) async fn execution_percentiles_by_pipeline(&self) -> Result<Vec<(String, Percentiles)>> {
        let mut out = Vec::new();
        if self.has_counters() {
            let map = self.map("reading percentiles");
            let rows: Vec<(String, Option<String>, Option<f64>)> = sqlx::query_as(counters::sql::HISTOGRAMS)
                .fetch_all(self.pool())
                .await
                .map_err(&map)?;
            for (key, document, max) in rows {
                if let Some(pipeline) = counters::decode_key(&key) {
                    let p = from_histogram(&buckets_of(document)?, max);
                    if p.count > 0 {
                        out.push((pipeline, p));
                    }
                }
            }
        } else {
            for pipeline in self.pipelines().await? {
                let p = self.execution_percentiles(Some(&pipeline)).await?;
                if p.count > 0 {
                    out.push((pipeline, p));
                }
            }
        }
        out.sort_by(|a, b| b.1.count.cmp(&a.1.count).then_with(|| a.0.cmp(&b.0)));
        Ok(out)
    }

    /// Every pipeline id in the table, sorted (for filter menus). With the counters, read from them.
    ///
    /// # Errors
    /// Database failures.
    pub(crate) async fn pipelines(&self) -> Result<Vec<String>> {
        let sql = if self.has_counters() {
            counters::sql::PIPELINES
        } else {
            "SELECT DISTINCT CAST(pipeline_id AS TEXT) FROM workflow_state WHERE pipeline_id IS NOT NULL ORDER BY 1"
        };
        sqlx::query_scalar(sql)
            .fetch_all(self.pool())
            .await
            .map_err(self.map("listing pipelines"))
    }

    pub(crate) async fn activity(
        &self,
        bucket: Bucket,
        first: DateTime<Utc>,
        buckets: u32,
    ) -> Result<Vec<ActivityBucket>> {
        let width = bucket.duration();
        let end = first + width * buckets as i32;
        let created = instant_sql("created_at");
        let width_us = width.num_microseconds().unwrap_or(i64::MAX);
        let first_us = time::instant_micros(&first);
        let end_us = time::instant_micros(&end);
        let rows: Vec<(i64, Option<String>, i64)> = if self.has_counters() {
            // Buckets are whole hours (days are 24 of them, UTC): read the hourly counters.
            let hours: Vec<(i64, String, i64)> = sqlx::query_as(counters::sql::ACTIVITY)
                .bind(first_us.div_euclid(HOUR_US))
                .bind(end_us.div_euclid(HOUR_US))
                .bind(width_us / HOUR_US)
                .fetch_all(self.pool())
                .await
                .map_err(self.map("reading activity"))?;
            hours
                .into_iter()
                .map(|(b, key, n)| (b, counters::decode_key(&key), n))
                .collect()
        } else {
            sqlx::query_as(&format!(
                "SELECT ({created} - ?1) / ?3 AS b, CAST(status AS TEXT), count(*) FROM workflow_state \
                 WHERE {created} >= ?1 AND {created} < ?2 GROUP BY b, status"
            ))
            .bind(first_us)
            .bind(end_us)
            .bind(width_us)
            .fetch_all(self.pool())
            .await
            .map_err(self.map("reading activity"))?
        };
        Ok(layout_activity(first, bucket, buckets, rows))
    }

    /// Failures in the window by signature; with `only_key`, just that group is kept.
    ///
    /// Reads the run id, pipeline, last update and error message of the newest [`MAX_FAILURE_SCAN`] failures of
    /// the window from `idx_flowstate_status_activity` alone, as one JSON document; computes the signature once
    /// per message text; then reads the rows of the sample runs only.
    pub(crate) async fn group_failures(
        &self,
        since: DateTime<Utc>,
        samples: usize,
        only_key: Option<&str>,
        scope: &FailureScope,
    ) -> Result<FailureReport> {
        let since_us = time::instant_micros(&since);
        let map = self.map("grouping failures");
        let mut conn = self.pool().acquire().await.map_err(&map)?;
        let mut tx = conn.begin().await.map_err(&map)?;
        let (rows, total_failed) = if scope.is_all() {
            let total_failed = self.failed_since(&mut tx, since_us).await?;
            let rows = window_rows(
                &mut tx,
                &counters::sql::failed_window(),
                [Param::Int(since_us), Param::Int(MAX_FAILURE_SCAN)],
            )
            .await
            .map_err(&map)?;
            (rows, total_failed)
        } else {
            let rows = self.scoped_failures(&mut tx, since_us, scope).await?;
            let total = if (rows.len() as i64) < MAX_FAILURE_SCAN {
                rows.len() as i64
            } else {
                self.scoped_count(&mut tx, since_us, scope).await?
            };
            (rows, total)
        };
        let grouped = Grouped::new(rows, samples, only_key);
        // The samples' rows, read by run id, in the same snapshot.
        let wanted: Vec<&String> = grouped.sample_ids.iter().flatten().collect();
        let mut found: HashMap<String, RunSummary> = HashMap::with_capacity(wanted.len());
        for chunk in wanted.chunks(500) {
            let mut qb: sqlx::QueryBuilder<sqlx::Sqlite> = sqlx::QueryBuilder::new(format!(
                "SELECT {} FROM workflow_state WHERE run_id IN (",
                *SUMMARY_COLUMNS
            ));
            let mut sep = qb.separated(", ");
            for id in chunk {
                sep.push_bind((*id).clone());
            }
            qb.push(")");
            let sampled = qb.build().fetch_all(&mut *tx).await.map_err(&map)?;
            for row in &sampled {
                let run = super::row::decode_summary(row);
                found.insert(run.run_id.clone(), run);
            }
        }
        tx.commit().await.map_err(&map)?;
        Ok(grouped.finish(since, total_failed, &found))
    }

    /// The newest [`MAX_FAILURE_SCAN`] failures of the window among the runs `scope` covers. With schema version
    /// 6's partial indexes of the failed runs, one range of the scope's own (`idx_flowstate_failed_pipeline`, or
    /// `idx_flowstate_failed_version` when the scope names a version), read from the index alone; without them (a
    /// file opened read-only before its upgrade), the ranges of `idx_flowstate_status_activity` as for every
    /// failure, the pipeline filtered in the index, the version (not in it) from the row.
    async fn scoped_failures(
        &self,
        conn: &mut sqlx::SqliteConnection,
        since_us: i64,
        scope: &FailureScope,
    ) -> Result<Vec<Failure>> {
        let (pipeline, version) = (scope.pipeline.as_deref(), scope.version.as_deref());
        let sql = if self.has_failure_indexes() {
            counters::sql::failed_window_scoped(pipeline.is_some(), version.is_some())
        } else {
            counters::sql::failed_window_in()
        };
        let params = [
            Param::Int(since_us),
            Param::Int(MAX_FAILURE_SCAN),
            Param::from(pipeline),
            Param::from(version),
        ];
        window_rows(conn, &sql, params)
            .await
            .map_err(self.map("grouping failures"))
    }

    /// How many failures of the window `scope` covers, when [`Self::scoped_failures`] was cut: the same ranges,
    /// counted.
    async fn scoped_count(
        &self,
        conn: &mut sqlx::SqliteConnection,
        since_us: i64,
        scope: &FailureScope,
    ) -> Result<i64> {
        let (pipeline, version) = (scope.pipeline.as_deref(), scope.version.as_deref());
        let sql = if self.has_failure_indexes() {
            counters::sql::failed_count_scoped(pipeline.is_some(), version.is_some())
        } else {
            counters::sql::failed_count_in()
        };
        sqlx::query_scalar(&sql)
            .bind(since_us)
            .bind(MAX_FAILURE_SCAN)
            .bind(pipeline)
            .bind(version)
            .fetch_one(&mut *conn)
            .await
            .map_err(self.map("grouping failures"))
    }

    /// Per version of `pipeline`, runs by status among those last updated at or after `since`, with the newest
    /// update. With the counters (schema version 5): `flowstate_version_hourly`'s range of the pipeline's whole
    /// hours, the first hour's shorter part from `idx_flowstate_status_activity`, and each version's newest update
    /// from its newest hour ([`counters::versions_since`]): the work grows with hours × versions, not with runs.
    /// Without counters (a file opened read-only before its upgrade), the pipeline's runs of the window.
    pub(crate) async fn version_counts(
        &self,
        since: DateTime<Utc>,
        pipeline: &str,
    ) -> Result<Vec<crate::insights::VersionCount>> {
        let u = instant_sql("updated_at");
        let map = self.map("reading failures per version");
        let since_us = time::instant_micros(&since);
        if !self.has_counters() {
            return sqlx::query_as(&format!(
                "SELECT CAST(COALESCE(pipeline_version, '') AS TEXT), {}, count(*), max({u}) FROM workflow_state \
                 WHERE pipeline_id = ?1 AND {u} >= ?2 GROUP BY 1, 2",
                counters::key_sql("status")
            ))
            .bind(pipeline)
            .bind(since_us)
            .fetch_all(self.pool())
            .await
            .map_err(map);
        }
        let mut conn = self.pool().acquire().await.map_err(&map)?;
        let mut tx = conn.begin().await.map_err(&map)?;
        let out = counters::versions_since(&mut tx, pipeline, since_us)
            .await
            .map_err(&map)?;
        tx.commit().await.map_err(&map)?;
        Ok(out)
    }

    /// Failed runs last updated at or after `since_us`: from the hourly counters and an index range of the first
    /// hour, or (without counters) an index range of the window.
    async fn failed_since(&self, conn: &mut sqlx::SqliteConnection, since_us: i64) -> Result<i64> {
        if self.has_counters() {
            let counts = counters::updated_since(conn, since_us, Some("failed"))
                .await
                .map_err(self.map("counting failures"))?;
            return Ok(counts.values().sum());
        }
        sqlx::query_scalar(&format!(
            "SELECT count(*) FROM workflow_state WHERE status = 'failed' AND {} >= ?1",
            instant_sql("updated_at")
        ))
        .bind(since_us)
        .fetch_one(&mut *conn)
        .await
        .map_err(self.map("counting failures"))
    }

    /// How many runs failed (by their last update) at or after `since`: the overview's "failed in the last
    /// 24 h". Counts what [`Store::failure_groups`] groups, without reading the rows (with the counters, whole
    /// hours come from them and only the first hour of the window from an index).
    ///
    /// # Errors
    /// Database failures.
    pub(crate) async fn count_failed_since(&self, since: DateTime<Utc>) -> Result<i64> {
        let mut conn = self
            .pool()
            .acquire()
            .await
            .map_err(self.map("counting failures"))?;
        self.failed_since(&mut conn, time::instant_micros(&since)).await
    }

    pub(crate) async fn failure_counts(&self, since: DateTime<Utc>) -> Result<Vec<FailureCount>> {
        let updated = instant_sql("updated_at");
        let since_us = time::instant_micros(&since);
        let map = self.map("reading failure rates");
        let mut conn = self.pool().acquire().await.map_err(&map)?;
        let counts = if self.has_counters() {
            let mut tx = conn.begin().await.map_err(&map)?;
            let counts = counters::updated_since(&mut tx, since_us, None)
                .await
                .map_err(&map)?;
            tx.commit().await.map_err(&map)?;
            counts
        } else {
            let rows: Vec<(String, String, i64)> = sqlx::query_as(&format!(
                "SELECT {}, {}, count(*) FROM workflow_state WHERE {updated} >= ?1 GROUP BY 1, 2",
                counters::key_sql("pipeline_id"),
                counters::key_sql("status")
            ))
            .bind(since_us)
            .fetch_all(&mut *conn)
            .await
            .map_err(&map)?;
            rows.into_iter().map(|(p, s, n)| ((p, s), n)).collect()
        };
        Ok(FailureCount::from_keyed(counts))
    }

    /// Recounts every counter from the table and reports each one that differs (none, unless something wrote
    /// the file with the triggers missing). Reads the whole table: a check for operators, not for pages.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] when the file has no counters (opened read-only before being migrated);
    /// database failures.
    pub(crate) async fn verify_counters(&self) -> Result<CounterCheck> {
        let map = self.map("checking the counters");
        let mut conn = self.pool().acquire().await.map_err(&map)?;
        let mut tx = conn.begin().await.map_err(&map)?;
        let check = counters::check(&mut tx).await.map_err(&map)?;
        tx.commit().await.map_err(&map)?;
        Ok(check)
    }

    /// Empties the counters and fills them again from the table, in one write transaction (the whole table is
    /// read while writers wait). Returns what [`Store::verify_counters`] found before.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] on a read-only store; [`StoreError::Busy`]; database failures.
    pub(crate) async fn rebuild_counters(&self) -> Result<CounterCheck> {
        let map = self.map("rebuilding the counters");
        let mut conn = self.pool().acquire().await.map_err(&map)?;
        // The refill's temporary table (one small row per run) goes to a file, not to memory; the connection
        // keeps statement journals in memory again afterwards, whatever happened.
        sqlx::query("PRAGMA temp_store = FILE")
            .execute(&mut *conn)
            .await
            .map_err(&map)?;
        let rebuilt = async {
            let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
            let before = counters::check(&mut tx).await?;
            for sql in counters::refill() {
                sqlx::query(&sql).execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok::<_, sqlx::Error>(before)
        }
        .await;
        let restored = sqlx::query("PRAGMA temp_store = MEMORY")
            .execute(&mut *conn)
            .await;
        let before = rebuilt.map_err(&map)?;
        restored.map_err(&map)?;
        Ok(before)
    }

    /// Records a change in the audit table and returns its id (the dashboard links to the entry it wrote).
    ///
    /// # Errors
    /// [`StoreError::Conflict`] on a read-only store; database failures.
    pub(crate) async fn record_audit(
        &self,
        at: DateTime<Utc>,
        actor: &str,
        action: &str,
        detail: &Value,
        matched: Option<i64>,
        affected: i64,
    ) -> Result<i64> {
        let done = sqlx::query(
            "INSERT INTO flowstate_audit (at, actor, action, detail, matched, affected) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )
        .bind(time::format_timestamp(&at))
        .bind(actor)
        .bind(action)
        .bind(detail.to_string())
        .bind(matched)
        .bind(affected)
        .execute(self.pool())
        .await
        .map_err(self.map("recording an audit entry"))?;
        Ok(done.last_insert_rowid())
    }

    /// The newest `limit` audit entries, newest first.
    ///
    /// # Errors
    /// Database failures.
    pub(crate) async fn audit_log(&self, limit: u32) -> Result<Vec<AuditEntry>> {
        // A flujo file opened read-only (never migrated) has no audit table: nothing was ever done through us.
        let exists: Option<i64> = sqlx::query_scalar(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'flowstate_audit'",
        )
        .fetch_optional(self.pool())
        .await
        .map_err(self.map("reading the audit log"))?;
        if exists.is_none() {
            return Ok(Vec::new());
        }
        let rows = sqlx::query(
            "SELECT id, at, actor, action, detail, matched, affected FROM flowstate_audit ORDER BY id DESC LIMIT ?1",
        )
        .bind(i64::from(limit.min(ListQuery::MAX_LIMIT)))
        .fetch_all(self.pool())
        .await
        .map_err(self.map("reading the audit log"))?;
        Ok(rows
            .iter()
            .map(|r| AuditEntry {
                id: r.get(0),
                at: time::parse_timestamp(&r.get::<String, _>(1)),
                actor: r.get(2),
                action: r.get(3),
                detail: serde_json::from_str(&r.get::<String, _>(4)).unwrap_or(Value::Null),
                matched: r.get(5),
                affected: r.get(6),
            })
            .collect())
    }
}

/// One failure of a window: run id, pipeline, last update (µs), error excerpt (the pipeline and the message
/// shared by every failure with the same text).
type Failure = (Arc<str>, Arc<str>, i64, Option<Arc<str>>);

/// The failures a window statement (run id, pipeline, last update, excerpt) reads, run on the connection's own
/// handle inside its open transaction: thousands of rows (11,000 for a big pipeline's 7 days at 10M runs) cost
/// no hand-over each and no JSON document (2 MB there) built, copied and parsed; a pipeline or message text seen
/// before is not copied again.
async fn window_rows<'p>(
    conn: &mut sqlx::SqliteConnection,
    sql: &str,
    params: impl IntoIterator<Item = Param<'p>>,
) -> sqlx::Result<Vec<Failure>> {
    let mut shared = raw::Shared::default();
    let mut locked = conn.lock_handle().await?;
    raw::query_map(&mut locked, sql, params, |row| {
        let run_id: Arc<str> = Arc::from(row.text(0).as_deref().unwrap_or(""));
        let pipeline = shared.get(row.text(1).as_deref().unwrap_or(""));
        let updated = row.int(2).unwrap_or(crate::time::UNKNOWN_INSTANT);
        let message = row.text(3).map(|m| shared.get(&m));
        (run_id, pipeline, updated, message)
    })
}
