//! The dashboard's figures on PostgreSQL: stuck runs, percentiles, pipelines, activity, failure groups and rates.
//! Each returns what the SQLite backend's [`crate::sqlite`] insights return for the same rows; the neutral parts
//! (percentiles from a histogram, the activity layout, grouping by signature, rates) are [`crate::insights`]'s.
//!
//! With the counters (a migrated database), the figures come from the counter tables: every counter's value is
//! the sum over its slots (`GROUP BY` key, keys whose sum is 0 left out), and only short index ranges of
//! `workflow_state` are read beside them. Reads that combine several statements take one snapshot
//! (`REPEATABLE READ`).

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, Row};

use flowstate_model::percentiles::{nearest_rank, REPORTED};

use super::read::{
    decode_summary, error_excerpt, instant_key, raw_instant, summary_sql, PgInstant, BEGIN_SNAPSHOT,
};
use super::{failures, PgStore};
use crate::counters::{decode_key, encode_key, hour_of, HOUR_US};
use crate::insights::{
    from_histogram, layout_activity, ActivityBucket, Bucket, FailureCount, FailureReport, FailureScope,
    Grouped, StuckRuns, MAX_FAILURE_SCAN,
};
use crate::time;
use crate::{Percentiles, Result, RunSummary, StoreError};

/// `'=' || column`, or `''` for NULL: a counter key computed from a row.
fn key_sql(column: &str) -> String {
    format!("COALESCE('=' || {column}, '')")
}

/// Running or paused runs whose last update is a real instant (not `-infinity`) before `$1`.
const STUCK: &str = "status IN ('running', 'paused') AND updated_at < $1 AND updated_at > '-infinity'";

impl PgStore {
    pub(crate) async fn stuck_runs(&self, idle_since: DateTime<Utc>, limit: u32) -> Result<StuckRuns> {
        let map = self.err("counting stuck runs");
        let cutoff = PgInstant::at(&idle_since);
        // One ordered index range per status, merged: `status IN (...)` with this order would read and sort
        // every live run.
        let per_status = |status: &str| {
            format!(
                "(SELECT {} FROM workflow_state WHERE status = '{status}' AND updated_at < $1 \
                 AND updated_at > '-infinity' ORDER BY updated_at, run_id COLLATE \"C\" LIMIT $2)",
                summary_sql()
            )
        };
        let list = format!(
            "SELECT * FROM ({} UNION ALL {}) AS s ORDER BY updated_at, run_id COLLATE \"C\" LIMIT $2",
            per_status("running"),
            per_status("paused")
        );
        if self.counters {
            // Every live run, minus the ones active since the cutoff and the ones at ±infinity (never stuck). The
            // active ones come from the hourly counters of last updates (whole hours) and an index range of at
            // most half an hour ([`first_hour`], as [`updated_since`] reads them): counting them from the index
            // alone read every live run's entry of the last hour, and, with writers about, the heap pages behind
            // the entries (18 ms at 10M runs, 69–88 ms at 1M with a writer saving 1,000 runs/s). The count and
            // the list are one statement (one snapshot, one round trip: the count on each row, the list's
            // columns NULL when nothing is stuck).
            let (h0, op, part) = first_hour(time::instant_micros(&idle_since));
            let sql = format!(
                "WITH c AS (SELECT (SELECT COALESCE(sum(runs), 0) FROM flowstate_counts \
                 WHERE status_key IN ('=running', '=paused')) \
                 - (SELECT COALESCE(sum(runs), 0) FROM flowstate_updated_hourly WHERE hour {op} $3 \
                 AND status_key IN ('=running', '=paused')) \
                 - $6::int8 * (SELECT count(*) FROM workflow_state WHERE status IN ('running', 'paused') \
                 AND updated_at >= $4 AND updated_at < $5) \
                 - (SELECT count(*) FROM workflow_state WHERE status IN ('running', 'paused') \
                 AND updated_at IN ('-infinity', 'infinity')) AS n) \
                 SELECT s.*, c.n::int8 FROM c LEFT JOIN LATERAL ({list}) AS s ON true"
            );
            let (from, to, sign) = part.unwrap_or((0, 0, 0));
            let rows = sqlx::query(&sql)
                .bind(cutoff)
                .bind(i64::from(limit))
                .bind(h0)
                .bind(PgInstant::from_micros(from))
                .bind(PgInstant::from_micros(to))
                .bind(sign)
                .fetch_all(&self.pool)
                .await
                .map_err(&map)?;
            let count = rows
                .first()
                .map(|r| r.try_get::<i64, _>(super::read::SUMMARY_COLUMN_COUNT))
                .transpose()
                .map_err(&map)?
                .unwrap_or(0);
            return Ok(StuckRuns {
                idle_since,
                count,
                runs: rows
                    .iter()
                    .filter(|r| matches!(r.try_get::<Option<&str>, _>(0), Ok(Some(_))))
                    .map(decode_summary)
                    .collect(),
            });
        }
        let mut tx = self.pool.begin_with(BEGIN_SNAPSHOT).await.map_err(&map)?;
        let count: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM workflow_state WHERE {STUCK}"))
            .bind(cutoff)
            .fetch_one(&mut *tx)
            .await
            .map_err(&map)?;
        let rows = sqlx::query(&list)
            .bind(cutoff)
            .bind(i64::from(limit))
            .fetch_all(&mut *tx)
            .await
            .map_err(self.err("listing stuck runs"))?;
        tx.commit().await.map_err(&map)?;
        Ok(StuckRuns {
            idle_since,
            count,
            runs: rows.iter().map(decode_summary).collect(),
        })
    }

    /// With the counters: the histogram (summed over slots) and the longest time from an execution-time index
    /// (`max()`, one step), in one snapshot. Without: exact nearest ranks from the index.
    pub(crate) async fn execution_percentiles(&self, pipeline_id: Option<&str>) -> Result<Percentiles> {
        if pipeline_id.is_some_and(super::read::holds_nul) {
            return Ok(Percentiles::default());
        }
        if !self.counters {
            return self.exact_percentiles(pipeline_id).await;
        }
        let map = self.err("reading percentiles");
        let mut tx = self.pool.begin_with(BEGIN_SNAPSHOT).await.map_err(&map)?;
        let key = pipeline_id.map(encode_key);
        let mut buckets: Vec<(i64, i64)> = sqlx::query_as(
            "SELECT bucket, sum(runs)::int8 FROM flowstate_exec_hist \
             WHERE $1::text IS NULL OR pipeline_key = $1 GROUP BY bucket HAVING sum(runs) <> 0",
        )
        .bind(&key)
        .fetch_all(&mut *tx)
        .await
        .map_err(&map)?;
        buckets.sort_unstable();
        let max: Option<f64> = match pipeline_id {
            Some(p) => {
                sqlx::query_scalar(
                    "SELECT max(execution_time_ms)::float8 FROM workflow_state WHERE pipeline_id = $1",
                )
                .bind(p)
                .fetch_one(&mut *tx)
                .await
            }
            // The longest of the pipelines' longest (one step of `idx_flowstate_pipeline_timed` per pipeline that
            // has execution times, as the histogram says), not a scan of every run's time. The key's collation
            // ("C") is set back to the column's, or the index (of the column's collation) cannot serve the
            // comparison: each pipeline's times were read whole (5 s at 1M runs instead of 1 ms).
            None => {
                sqlx::query_scalar(
                    "SELECT max((SELECT max(execution_time_ms) FROM workflow_state \
                     WHERE pipeline_id = substr(h.pipeline_key, 2) COLLATE \"default\"))::float8 \
                     FROM (SELECT pipeline_key FROM flowstate_exec_hist WHERE pipeline_key <> '' \
                     GROUP BY pipeline_key HAVING sum(runs) <> 0) AS h",
                )
                .fetch_one(&mut *tx)
                .await
            }
        }
        .map_err(&map)?;
        tx.commit().await.map_err(&map)?;
        Ok(from_histogram(&buckets, max))
    }

    /// Exact nearest-rank percentiles from the execution-time index, one ordered step per rank (the cost grows
    /// with the rank), in one snapshot: for databases without counters.
    async fn exact_percentiles(&self, pipeline_id: Option<&str>) -> Result<Percentiles> {
        let map = self.err("reading percentiles");
        let filter = if pipeline_id.is_some() {
            "execution_time_ms IS NOT NULL AND pipeline_id = $1"
        } else {
            "execution_time_ms IS NOT NULL AND $1::text IS NULL"
        };
        let mut tx = self.pool.begin_with(BEGIN_SNAPSHOT).await.map_err(&map)?;
        let count: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM workflow_state WHERE {filter}"))
            .bind(pipeline_id)
            .fetch_one(&mut *tx)
            .await
            .map_err(&map)?;
        if count == 0 {
            tx.commit().await.map_err(&map)?;
            return Ok(Percentiles::default());
        }
        let at_rank = |p: f64| nearest_rank(p, count).unwrap_or(1) - 1;
        let sql = format!(
            "SELECT execution_time_ms::float8 FROM workflow_state WHERE {filter} \
             ORDER BY execution_time_ms LIMIT 1 OFFSET $2"
        );
        let mut values = Vec::with_capacity(4);
        let [p50, p95, p99] = REPORTED.map(at_rank);
        for rank in [p50, p95, p99, count - 1] {
            let v: Option<f64> = sqlx::query_scalar(&sql)
                .bind(pipeline_id)
                .bind(rank)
                .fetch_optional(&mut *tx)
                .await
                .map_err(&map)?;
            values.push(v);
        }
        tx.commit().await.map_err(&map)?;
        Ok(Percentiles {
            count,
            p50: values[0],
            p95: values[1],
            p99: values[2],
            max: values[3],
            relative_error: 0.0,
        })
    }

    /// Every pipeline's percentiles, busiest first. With the counters: one read of the histogram table and one
    /// index step per pipeline for its longest time, in one snapshot.
    pub(crate) async fn execution_percentiles_by_pipeline(&self) -> Result<Vec<(String, Percentiles)>> {
        let mut out = Vec::new();
        if self.counters {
            let map = self.err("reading percentiles");
            let mut tx = self.pool.begin_with(BEGIN_SNAPSHOT).await.map_err(&map)?;
            let rows: Vec<(String, i64, i64)> = sqlx::query_as(
                "SELECT pipeline_key, bucket, sum(runs)::int8 FROM flowstate_exec_hist WHERE pipeline_key <> '' \
                 GROUP BY pipeline_key, bucket HAVING sum(runs) <> 0",
            )
            .fetch_all(&mut *tx)
            .await
            .map_err(&map)?;
            let mut histograms: BTreeMap<String, Vec<(i64, i64)>> = BTreeMap::new();
            for (key, bucket, runs) in rows {
                histograms.entry(key).or_default().push((bucket, runs));
            }
            let keys: Vec<String> = histograms.keys().cloned().collect();
            let longest: Vec<(String, Option<f64>)> = sqlx::query_as(
                "SELECT k, (SELECT max(execution_time_ms)::float8 FROM workflow_state \
                 WHERE pipeline_id = substr(k, 2) COLLATE \"default\") FROM unnest($1::text[]) AS k",
            )
            .bind(&keys)
            .fetch_all(&mut *tx)
            .await
            .map_err(&map)?;
            tx.commit().await.map_err(&map)?;
            let longest: HashMap<String, Option<f64>> = longest.into_iter().collect();
            for (key, mut buckets) in histograms {
                if let Some(pipeline) = decode_key(&key) {
                    buckets.sort_unstable();
                    let p = from_histogram(&buckets, longest.get(&key).copied().flatten());
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

    /// Every pipeline id, in byte order. With the counters, from `flowstate_counts`; without, a loose scan of
    /// flujo's `idx_workflow_state_pipeline_id` (one index step per pipeline, not one per run).
    pub(crate) async fn pipelines(&self) -> Result<Vec<String>> {
        let sql = if self.counters {
            "SELECT substr(pipeline_key, 2) FROM flowstate_counts WHERE pipeline_key <> '' \
             GROUP BY pipeline_key HAVING sum(runs) <> 0"
        } else {
            "WITH RECURSIVE p(v) AS (SELECT min(pipeline_id) FROM workflow_state \
             UNION ALL SELECT (SELECT min(pipeline_id) FROM workflow_state WHERE pipeline_id > p.v) \
             FROM p WHERE p.v IS NOT NULL) SELECT v FROM p WHERE v IS NOT NULL"
        };
        let mut out: Vec<String> = sqlx::query_scalar(sql)
            .fetch_all(&self.pool)
            .await
            .map_err(self.err("listing pipelines"))?;
        // Byte order, as SQLite's; whatever the database's collation.
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }

    pub(crate) async fn activity(
        &self,
        bucket: Bucket,
        first: DateTime<Utc>,
        buckets: u32,
    ) -> Result<Vec<ActivityBucket>> {
        let width = bucket.duration();
        let end = first + width * buckets as i32;
        let width_us = width.num_microseconds().unwrap_or(i64::MAX);
        let first_us = time::instant_micros(&first);
        let end_us = time::instant_micros(&end);
        let map = self.err("reading activity");
        let rows: Vec<(i64, Option<String>, i64)> = if self.counters {
            // Buckets are whole hours (days are 24 of them, UTC): read the hourly counters.
            let hours: Vec<(i64, String, i64)> = sqlx::query_as(
                "SELECT (hour - $1) / $3 AS b, status_key, sum(runs)::int8 FROM flowstate_created_hourly \
                 WHERE hour >= $1 AND hour < $2 GROUP BY b, status_key HAVING sum(runs) <> 0",
            )
            .bind(first_us.div_euclid(HOUR_US))
            .bind(end_us.div_euclid(HOUR_US))
            .bind(width_us / HOUR_US)
            .fetch_all(&self.pool)
            .await
            .map_err(&map)?;
            hours
                .into_iter()
                .map(|(b, key, n)| (b, decode_key(&key), n))
                .collect()
        } else {
            // EXTRACT(EPOCH ...) is numeric (exact to the microsecond).
            sqlx::query_as(
                "SELECT div(EXTRACT(EPOCH FROM created_at) * 1000000 - $3, $4)::int8 AS b, status, count(*) \
                 FROM workflow_state WHERE created_at >= $1 AND created_at < $2 GROUP BY b, status",
            )
            .bind(PgInstant::at(&first))
            .bind(PgInstant::at(&end))
            .bind(first_us)
            .bind(width_us)
            .fetch_all(&self.pool)
            .await
            .map_err(&map)?
        };
        Ok(layout_activity(first, bucket, buckets, rows))
    }

    /// Failures in the window by signature; with `only_key`, just that group is kept. One snapshot: the count of
    /// the window's failures, the newest [`MAX_FAILURE_SCAN`] of them (run id, pipeline, last update, the error
    /// message's excerpt: from `flowstate_failure` on a database at schema 3, [`failures`]), then the sample runs'
    /// rows by id.
    pub(crate) async fn group_failures(
        &self,
        since: DateTime<Utc>,
        samples: usize,
        only_key: Option<&str>,
        scope: &FailureScope,
    ) -> Result<FailureReport> {
        let map = self.err("grouping failures");
        let mut tx = self.pool.begin_with(BEGIN_SNAPSHOT).await.map_err(&map)?;
        // From `flowstate_failure` (schema 3: a few adjacent pages, through `COPY`; schema 6: a scope's failures
        // too, one range of its pipeline or version index), else one row of `workflow_state` per failure.
        let copied = if self.failures {
            failures::copy_window(&mut tx, &since, MAX_FAILURE_SCAN, scope)
                .await
                .map_err(&map)?
        } else {
            None
        };
        let window = if copied.is_some() {
            Vec::new()
        } else {
            let sql = if self.failures {
                failures::window(scope)
            } else {
                format!(
                    "SELECT run_id, pipeline_id, updated_at, {} FROM workflow_state \
                     WHERE status = 'failed' AND updated_at >= $1 AND ($3::text IS NULL OR pipeline_id = $3) \
                     AND ($4::text IS NULL OR pipeline_version = $4) \
                     ORDER BY updated_at DESC, run_id COLLATE \"C\" DESC LIMIT $2",
                    error_excerpt()
                )
            };
            let mut query = sqlx::query(&sql)
                .bind(PgInstant::at(&since))
                .bind(MAX_FAILURE_SCAN);
            if self.failures {
                for value in failures::scope_values(scope) {
                    query = query.bind(value);
                }
            } else {
                query = query
                    .bind(scope.pipeline.as_deref())
                    .bind(scope.version.as_deref());
            }
            query.fetch_all(&mut *tx).await.map_err(&map)?
        };
        // Columns of type text (no check of the type per value: a tenth of the decoding).
        fn text(r: &sqlx::postgres::PgRow, i: usize) -> Option<&str> {
            r.try_get_unchecked::<Option<&str>, _>(i).ok().flatten()
        }
        // Text borrowed from the copied bytes or the driver's rows: only what the groups keep is copied. Each
        // row's last update as its raw value (`i64::MAX`: `infinity`) and its key (NULL: unknown).
        let raw: Vec<(&str, &str, Option<i64>, Option<&str>)> = match &copied {
            Some(bytes) => failures::parse_window(bytes)
                .map_err(|e| {
                    StoreError::Database(sqlx::Error::Decode(
                        format!("the failures read back unexpectedly: {e}").into(),
                    ))
                })?
                .into_iter()
                .map(|(id, pipeline, updated, head)| (id, pipeline, Some(updated), head))
                .collect(),
            None => window
                .iter()
                .map(|r| {
                    (
                        text(r, 0).unwrap_or_default(),
                        text(r, 1).unwrap_or_default(),
                        raw_instant(r, 2),
                        text(r, 3),
                    )
                })
                .collect(),
        };
        let infinite = raw.iter().filter(|r| r.2 == Some(i64::MAX)).count() as i64;
        let rows: Vec<(&str, &str, i64, Option<&str>)> = raw
            .into_iter()
            .map(|(id, pipeline, updated, head)| {
                (
                    id,
                    pipeline,
                    updated.map_or(time::UNKNOWN_INSTANT, instant_key),
                    head,
                )
            })
            .collect();
        // The window's failures are every failure of the window unless it was cut at MAX_FAILURE_SCAN: counted
        // from `flowstate_failure` (exact, same snapshot) as the counters count them (instants, not `infinity`),
        // without reading the counters. Otherwise from the counters (or, without them, the index).
        let total_failed = if (self.failures || !scope.is_all()) && (rows.len() as i64) < MAX_FAILURE_SCAN {
            rows.len() as i64 - infinite
        } else if scope.is_all() {
            self.failed_since(&mut tx, &since).await?
        } else if self.failures {
            let sql = failures::count(scope);
            let mut query = sqlx::query_scalar(&sql).bind(PgInstant::at(&since));
            for value in failures::scope_values(scope) {
                query = query.bind(value);
            }
            query.fetch_one(&mut *tx).await.map_err(&map)?
        } else {
            sqlx::query_scalar(
                "SELECT count(*) FROM workflow_state WHERE status = 'failed' AND updated_at >= $1 \
                 AND updated_at <> 'infinity' AND ($2::text IS NULL OR pipeline_id = $2) \
                 AND ($3::text IS NULL OR pipeline_version = $3)",
            )
            .bind(PgInstant::at(&since))
            .bind(scope.pipeline.as_deref())
            .bind(scope.version.as_deref())
            .fetch_one(&mut *tx)
            .await
            .map_err(&map)?
        };
        let grouped = Grouped::new(rows, samples, only_key);
        let wanted: Vec<String> = grouped.sample_ids.iter().flatten().cloned().collect();
        let mut found: HashMap<String, RunSummary> = HashMap::with_capacity(wanted.len());
        for chunk in wanted.chunks(1000) {
            let sampled = sqlx::query(&format!(
                "SELECT {} FROM workflow_state WHERE run_id = ANY($1)",
                summary_sql()
            ))
            .bind(chunk)
            .fetch_all(&mut *tx)
            .await
            .map_err(&map)?;
            for row in &sampled {
                let run = decode_summary(row);
                found.insert(run.run_id.clone(), run);
            }
        }
        tx.commit().await.map_err(&map)?;
        Ok(grouped.finish(since, total_failed, &found))
    }

    /// Failed runs last updated at or after `since`: from the hourly counters and an index range within the
    /// first hour, or (without counters) an index range of the window.
    async fn failed_since(&self, conn: &mut PgConnection, since: &DateTime<Utc>) -> Result<i64> {
        if self.counters {
            let counts = updated_since(conn, since, Some(&["failed"]))
                .await
                .map_err(self.err("counting failures"))?;
            return Ok(counts.values().sum());
        }
        sqlx::query_scalar("SELECT count(*) FROM workflow_state WHERE status = 'failed' AND updated_at >= $1")
            .bind(PgInstant::at(since))
            .fetch_one(&mut *conn)
            .await
            .map_err(self.err("counting failures"))
    }

    /// Per version of `pipeline`: runs by status key among those last updated at or after `since`, with the newest
    /// update in microseconds. With schema version 5's counter: [`versions_since`] (hours × versions, not runs);
    /// without (read-only before the upgrade), the pipeline's runs of the window.
    pub(crate) async fn version_counts(
        &self,
        since: DateTime<Utc>,
        pipeline: &str,
    ) -> Result<Vec<crate::insights::VersionCount>> {
        if self.versions {
            let map = self.err("reading failures per version");
            let mut tx = self.pool.begin_with(BEGIN_SNAPSHOT).await.map_err(&map)?;
            let out = versions_since(&mut tx, pipeline, &since).await.map_err(&map)?;
            tx.commit().await.map_err(&map)?;
            return Ok(out);
        }
        let rows: Vec<(String, String, i64, Option<DateTime<Utc>>)> = sqlx::query_as(&format!(
            "SELECT COALESCE(pipeline_version, ''), {}, count(*), \
             max(updated_at) FILTER (WHERE updated_at <> 'infinity') FROM workflow_state \
             WHERE pipeline_id = $1 AND updated_at >= $2 GROUP BY 1, 2",
            key_sql("status")
        ))
        .bind(pipeline)
        .bind(PgInstant::at(&since))
        .fetch_all(&self.pool)
        .await
        .map_err(self.err("reading failures per version"))?;
        Ok(rows
            .into_iter()
            .map(|(v, s, n, newest)| (v, s, n, newest.map(|t| time::instant_micros(&t))))
            .collect())
    }

    pub(crate) async fn count_failed_since(&self, since: DateTime<Utc>) -> Result<i64> {
        let map = self.err("counting failures");
        let mut tx = self.pool.begin_with(BEGIN_SNAPSHOT).await.map_err(&map)?;
        let n = self.failed_since(&mut tx, &since).await?;
        tx.commit().await.map_err(&map)?;
        Ok(n)
    }

    pub(crate) async fn failure_counts(&self, since: DateTime<Utc>) -> Result<Vec<FailureCount>> {
        let map = self.err("reading failure rates");
        if self.counters {
            let mut tx = self.pool.begin_with(BEGIN_SNAPSHOT).await.map_err(&map)?;
            let counts = updated_since(&mut tx, &since, None).await.map_err(&map)?;
            tx.commit().await.map_err(&map)?;
            return Ok(FailureCount::from_keyed(counts));
        }
        let rows: Vec<(String, String, i64)> = sqlx::query_as(&format!(
            "SELECT {}, {}, count(*) FROM workflow_state WHERE updated_at >= $1 GROUP BY 1, 2",
            key_sql("pipeline_id"),
            key_sql("status")
        ))
        .bind(PgInstant::at(&since))
        .fetch_all(&self.pool)
        .await
        .map_err(&map)?;
        Ok(FailureCount::from_keyed(
            rows.into_iter().map(|(p, s, n)| ((p, s), n)),
        ))
    }
}

/// How a window starting at `since_us` reads its first hour: the hour `h0` it falls in, the comparison that
/// picks the hourly counters (`hour {op} h0`), and the part of that hour an index range counts, `(from, to,
/// sign)` in microseconds (none when the window starts with the hour). The first hour is read whole from the
/// counters when the window starts with it, or when the part of it before the window is the shorter one (then
/// subtracted: sign -1); otherwise the part from `since_us` to the hour's end is added (sign 1).
fn first_hour(since_us: i64) -> (i64, &'static str, Option<(i64, i64, i64)>) {
    let h0 = hour_of(since_us);
    let start = h0 * HOUR_US;
    if since_us == start {
        (h0, ">=", None)
    } else if since_us - start <= HOUR_US / 2 {
        (h0, ">=", Some((start, since_us, -1)))
    } else {
        (h0, ">", Some((since_us, start + HOUR_US, 1)))
    }
}

/// Runs of `pipeline` last updated at or after `since`, per version (decoded; `""` for none) and status key, with
/// each version's newest update (µs): whole hours from `flowstate_version_hourly` (the pipeline's range of its
/// primary key), the hour `since` falls in from `idx_flowstate_status_activity` (the shorter part, as
/// [`updated_since`]), and each version's newest update looked up in its newest hour only (a backward walk of
/// `idx_flowstate_idle` within that hour). Run it inside a snapshot.
pub(crate) async fn versions_since(
    conn: &mut PgConnection,
    pipeline: &str,
    since: &DateTime<Utc>,
) -> sqlx::Result<Vec<crate::insights::VersionCount>> {
    let since_us = time::instant_micros(since);
    let (h0, op, part) = first_hour(since_us);
    let mut counts: BTreeMap<(String, String), i64> = BTreeMap::new();
    let mut newest_hour: BTreeMap<String, i64> = BTreeMap::new();
    let mut newest_edge: BTreeMap<String, i64> = BTreeMap::new();
    let rows: Vec<(String, String, i64, i64)> = sqlx::query_as(&format!(
        "SELECT version_key, status_key, sum(runs)::int8, max(hour) FROM flowstate_version_hourly \
         WHERE pipeline_key = $1 AND hour {op} $2 GROUP BY version_key, status_key HAVING sum(runs) <> 0"
    ))
    .bind(encode_key(pipeline))
    .bind(h0)
    .fetch_all(&mut *conn)
    .await?;
    for (v, st, n, hour) in rows {
        *counts.entry((v.clone(), st)).or_insert(0) += n;
        let e = newest_hour.entry(v).or_insert(hour);
        *e = (*e).max(hour);
    }
    if let Some((from, to, sign)) = part {
        let statuses: Vec<String> = sqlx::query_scalar::<_, String>(
            "SELECT status_key FROM flowstate_counts GROUP BY status_key HAVING sum(runs) <> 0",
        )
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .filter_map(|k| decode_key(k))
        .collect();
        if !statuses.is_empty() {
            let rows: Vec<(String, String, i64, Option<DateTime<Utc>>)> = sqlx::query_as(&format!(
                "SELECT {}, {}, count(*), max(updated_at) FROM workflow_state WHERE status = ANY($1) \
                 AND updated_at >= $2 AND updated_at < $3 AND pipeline_id = $4 GROUP BY 1, 2",
                key_sql("pipeline_version"),
                key_sql("status")
            ))
            .bind(&statuses)
            .bind(PgInstant::from_micros(from))
            .bind(PgInstant::from_micros(to))
            .bind(pipeline)
            .fetch_all(&mut *conn)
            .await?;
            for (v, st, n, newest) in rows {
                *counts.entry((v.clone(), st)).or_insert(0) += sign * n;
                if let (true, Some(at)) = (sign > 0, newest) {
                    let us = time::instant_micros(&at);
                    let e = newest_edge.entry(v).or_insert(us);
                    *e = (*e).max(us);
                }
            }
        }
    }
    counts.retain(|_, n| *n != 0);
    let mut newest: BTreeMap<String, Option<i64>> = BTreeMap::new();
    for (v, _) in counts.keys() {
        if newest.contains_key(v) {
            continue;
        }
        let found = match newest_hour.get(v) {
            Some(&hour) => {
                let found: Option<DateTime<Utc>> = sqlx::query_scalar(
                    "SELECT updated_at FROM workflow_state WHERE updated_at >= $1 AND updated_at < $2 \
                     AND pipeline_id = $3 AND pipeline_version IS NOT DISTINCT FROM $4 \
                     ORDER BY updated_at DESC LIMIT 1",
                )
                .bind(PgInstant::from_micros((hour * HOUR_US).max(since_us)))
                .bind(PgInstant::from_micros((hour + 1) * HOUR_US))
                .bind(pipeline)
                .bind(decode_key(v))
                .fetch_optional(&mut *conn)
                .await?;
                found.map(|t| time::instant_micros(&t))
            }
            None => None,
        };
        newest.insert(v.clone(), found.or_else(|| newest_edge.get(v).copied()));
    }
    Ok(counts
        .into_iter()
        .map(|((v, st), n)| {
            let at = newest.get(&v).copied().flatten();
            (decode_key(&v).unwrap_or_default(), st, n, at)
        })
        .collect())
}

/// Runs last updated at or after `since`, per (pipeline key, status key); with `only_statuses`, only those stored
/// statuses. Whole hours come from `flowstate_updated_hourly` (summed over slots), the hour `since` falls in from
/// an index range of `idx_flowstate_status_activity` (whichever part of that hour is shorter), as on SQLite.
/// Run it inside a snapshot.
pub(crate) async fn updated_since(
    conn: &mut PgConnection,
    since: &DateTime<Utc>,
    only_statuses: Option<&[&str]>,
) -> sqlx::Result<BTreeMap<(String, String), i64>> {
    let (h0, op, part) = first_hour(time::instant_micros(since));
    let mut out: BTreeMap<(String, String), i64> = BTreeMap::new();
    let add = |rows: Vec<(String, String, i64)>, sign: i64, out: &mut BTreeMap<(String, String), i64>| {
        for (pk, sk, n) in rows {
            *out.entry((pk, sk)).or_insert(0) += sign * n;
        }
    };
    let hours_sql = format!(
        "SELECT pipeline_key, status_key, sum(runs)::int8 FROM flowstate_updated_hourly WHERE hour {op} $1 \
         AND ($2::text[] IS NULL OR status_key = ANY($2)) GROUP BY pipeline_key, status_key"
    );
    let rows: Vec<(String, String, i64)> = sqlx::query_as(&hours_sql)
        .bind(h0)
        .bind(only_statuses.map(|s| s.iter().map(|s| encode_key(s)).collect::<Vec<String>>()))
        .fetch_all(&mut *conn)
        .await?;
    add(rows, 1, &mut out);
    if let Some((from, to, sign)) = part {
        // The statuses to look up in the index: the ones asked for, or every status the counters hold (a range
        // of (status, updated_at) per status).
        let statuses: Vec<String> = match only_statuses {
            Some(s) => s.iter().map(|s| s.to_string()).collect(),
            None => sqlx::query_scalar::<_, String>(
                "SELECT status_key FROM flowstate_counts GROUP BY status_key HAVING sum(runs) <> 0",
            )
            .fetch_all(&mut *conn)
            .await?
            .iter()
            .filter_map(|k| decode_key(k))
            .collect(),
        };
        if !statuses.is_empty() {
            let rows: Vec<(String, String, i64)> = sqlx::query_as(&format!(
                "SELECT {}, {}, count(*) FROM workflow_state WHERE status = ANY($1) \
                 AND updated_at >= $2 AND updated_at < $3 GROUP BY 1, 2",
                key_sql("pipeline_id"),
                key_sql("status")
            ))
            .bind(&statuses)
            .bind(PgInstant::from_micros(from))
            .bind(PgInstant::from_micros(to))
            .fetch_all(&mut *conn)
            .await?;
            add(rows, sign, &mut out);
        }
    }
    out.retain(|_, n| *n != 0);
    Ok(out)
}
