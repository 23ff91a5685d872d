//! Read-only figures for the operators' dashboard: stuck runs, execution-time percentiles, activity per hour or
//! day, failures grouped by error signature, failure rates per pipeline, and the audit log of changes.
//!
//! These are statements of the same SQLite backend as [`crate::Store`]'s core methods, kept in their own module
//! because they serve the dashboard rather than the workflow runtime.

use std::collections::{BTreeMap, HashMap};
use std::sync::OnceLock;

use chrono::{DateTime, Duration, DurationRound, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::{Connection, Row};

use flowstate_model::percentiles::{nearest_rank, REPORTED};

use crate::counters::{self, CounterCheck, HOUR_US, PERCENTILE_RELATIVE_ERROR};
use crate::row::SUMMARY_COLUMNS;
use crate::time::{self, instant_sql};
use crate::{ListQuery, Result, RunSummary, Status, Store, StoreError};

/// Running or paused runs with no update for longer than a threshold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StuckRuns {
    /// Runs last updated before this instant count as stuck.
    pub idle_since: DateTime<Utc>,
    /// How many runs are stuck.
    pub count: i64,
    /// The longest-idle ones, oldest update first.
    pub runs: Vec<RunSummary>,
}

/// Execution-time percentiles (nearest rank) over the runs that have an execution time.
///
/// `count` and `max` are exact. `p50`, `p95` and `p99` come from the execution-time histogram the counters keep
/// ([`crate::counters`]): each is within `relative_error` (1/32, about 3 %) of the exact nearest-rank value, and
/// exact below 32 ms; none is above `max`. A store without counters (a flujo file opened read-only) reads the exact
/// values from the index, and says so with a `relative_error` of 0.
pub use flowstate_model::Percentiles;

/// Width of an activity bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Bucket {
    /// One hour.
    Hour,
    /// One day (UTC).
    Day,
}

impl Bucket {
    fn duration(self) -> Duration {
        match self {
            Bucket::Hour => Duration::hours(1),
            Bucket::Day => Duration::days(1),
        }
    }
}

/// Runs created in one bucket, per status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActivityBucket {
    /// Start of the bucket (inclusive).
    pub start: DateTime<Utc>,
    /// Runs created in the bucket, per stored status name.
    pub counts: BTreeMap<String, i64>,
}

/// Failures that share an error signature.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailureGroup {
    /// The error message with its varying parts (numbers, ids, quoted values, durations) replaced.
    pub signature: String,
    /// A short stable key for the signature, usable in URLs.
    pub key: String,
    /// One real message of the group.
    pub example: String,
    /// Failed runs in the group.
    pub count: i64,
    /// Failed runs per pipeline id.
    pub pipelines: BTreeMap<String, i64>,
    /// The earliest last update among the group's runs.
    pub first_seen: Option<DateTime<Utc>>,
    /// The latest last update among the group's runs.
    pub last_seen: Option<DateTime<Utc>>,
    /// Some of the group's runs, newest first (up to [`FAILURE_SAMPLES`], or as many as asked for).
    pub samples: Vec<RunSummary>,
}

/// Failed runs of a time window grouped by error signature.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailureReport {
    /// Failures last updated at or after this instant are included.
    pub since: DateTime<Utc>,
    /// Failed runs in the window.
    pub total_failed: i64,
    /// Groups, largest first.
    pub groups: Vec<FailureGroup>,
    /// True when the window held more failures than were read (the groups then cover the newest ones).
    pub truncated: bool,
}

/// Runs and failures of one pipeline in a window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PipelineFailureRate {
    /// The pipeline id.
    pub pipeline_id: String,
    /// Runs updated in the window.
    pub total: i64,
    /// Of which failed.
    pub failed: i64,
    /// failed / total (0 when total is 0).
    pub rate: f64,
}

/// One change made through flowstate (a deletion, a cleanup), as recorded in `flowstate_audit`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Sequence number.
    pub id: i64,
    /// When it happened.
    pub at: Option<DateTime<Utc>>,
    /// Who did it (e.g. `admin`, `local`, `cli`).
    pub actor: String,
    /// What was done (e.g. `cleanup`, `delete_run`).
    pub action: String,
    /// The filter or target, as JSON.
    pub detail: Value,
    /// How many rows the confirmed preview showed, if there was one.
    pub matched: Option<i64>,
    /// How many rows were changed.
    pub affected: i64,
}

/// Sample runs per group in [`Store::failure_groups`].
pub const FAILURE_SAMPLES: usize = 5;

/// The most rows [`Store::failure_groups`] reads from one window.
pub const MAX_FAILURE_SCAN: i64 = 50_000;

fn patterns() -> &'static [(regex::Regex, &'static str)] {
    static P: OnceLock<Vec<(regex::Regex, &'static str)>> = OnceLock::new();
    P.get_or_init(|| {
        let p = |re: &str, with: &'static str| (regex::Regex::new(re).expect("valid pattern"), with);
        vec![
            // Quoted values: 'x', "x", `x`.
            p(r#"'[^']*'|"[^"]*"|`[^`]*`"#, "<v>"),
            // UUIDs and long hex or alphanumeric ids (with at least one digit).
            p(
                r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b",
                "<id>",
            ),
            // Durations: 30s, 1.5 ms, 2h, 250 milliseconds.
            p(
                r"\b\d+(?:\.\d+)?\s?(?:ns|us|µs|ms|s|sec|secs|seconds?|m|min|mins|minutes?|h|hrs?|hours?|d|days?)\b",
                "<dur>",
            ),
            p(r"\b(?:[A-Za-z]+[_-])*[A-Za-z_]*[0-9][A-Za-z0-9_-]{5,}\b", "<id>"),
            p(r"\b0x[0-9a-fA-F]+\b", "<id>"),
            // Any other number.
            p(r"\d+(?:[.,]\d+)*", "<n>"),
        ]
    })
}

/// The signature of an error message: varying parts replaced so that the same failure groups together.
///
/// ```
/// use flowstate_store::insights::error_signature;
/// assert_eq!(
///     error_signature("Step 'classify' failed: RateLimitError: 429 Too Many Requests (retry after 25s)"),
///     error_signature("Step 'extract' failed: RateLimitError: 429 Too Many Requests (retry after 3s)"),
/// );
/// assert_eq!(error_signature("TimeoutError: agent call exceeded 30s"), "TimeoutError: agent call exceeded <dur>");
/// ```
pub fn error_signature(message: &str) -> String {
    signature_of_head(&signature_head(message))
}

/// What of a message its signature depends on: the first 500 characters of its first line.
fn signature_head(message: &str) -> String {
    let first_line = message.lines().next().unwrap_or("").trim();
    first_line.chars().take(500).collect()
}

/// The most signatures [`memoized_signature`] keeps (a few MB); when full it starts again.
const SIGNATURE_MEMO: usize = 20_000;

/// [`error_signature`], remembered by message head: the failures page asks again for the same messages on every
/// refresh, and the six regular expressions cost microseconds per message (thousands per day at 10M runs).
fn memoized_signature(message: &str) -> String {
    static MEMO: OnceLock<std::sync::Mutex<HashMap<String, String>>> = OnceLock::new();
    let head = signature_head(message);
    let memo = MEMO.get_or_init(Default::default);
    if let Some(signature) = memo
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .get(&head)
    {
        return signature.clone();
    }
    let signature = signature_of_head(&head);
    let mut memo = memo.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if memo.len() >= SIGNATURE_MEMO {
        memo.clear();
    }
    memo.insert(head, signature.clone());
    signature
}

fn signature_of_head(head: &str) -> String {
    let mut out = head.to_string();
    for (re, with) in patterns() {
        out = re.replace_all(&out, *with).into_owned();
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A short, stable key for a signature (FNV-1a, hex), for URLs.
pub fn signature_key(signature: &str) -> String {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in signature.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x100000001b3);
    }
    format!("{h:016x}")
}

/// Histogram buckets `(lower bound, runs)` from the JSON array [`counters::sql::HISTOGRAM`] returns, ascending.
fn buckets_of(document: Option<String>) -> Result<Vec<(i64, i64)>> {
    let mut buckets: Vec<(i64, i64)> =
        serde_json::from_str(document.as_deref().unwrap_or("[]")).map_err(|e| {
            StoreError::Database(sqlx::Error::Decode(
                format!("the execution-time histogram read back as unexpected JSON: {e}").into(),
            ))
        })?;
    buckets.sort_unstable();
    Ok(buckets)
}

/// Nearest-rank p50, p95 and p99 from histogram buckets `(lower bound, runs)` in ascending order: each is the
/// value of the bucket holding its rank (see [`counters::bucket_value`]), capped at the exact `max`.
fn from_histogram(buckets: &[(i64, i64)], max: Option<f64>) -> Percentiles {
    let count: i64 = buckets.iter().map(|(_, n)| n).sum();
    if count <= 0 {
        return Percentiles {
            max,
            ..Percentiles::default()
        };
    }
    let at = |p: f64| {
        let rank = nearest_rank(p, count)?;
        let mut seen = 0;
        for (lower, n) in buckets {
            seen += n;
            if seen >= rank {
                let v = counters::bucket_value(*lower);
                return Some(max.map_or(v, |m| v.min(m)));
            }
        }
        max
    };
    let [p50, p95, p99] = REPORTED.map(at);
    Percentiles {
        count,
        p50,
        p95,
        p99,
        max,
        relative_error: PERCENTILE_RELATIVE_ERROR,
    }
}

impl Store {
    /// Running or paused runs whose last update is older than `idle_for`: the count, and the `limit` longest idle.
    ///
    /// # Errors
    /// [`StoreError::InvalidInput`] for a non-positive threshold or a limit above [`ListQuery::MAX_LIMIT`].
    pub async fn stuck_runs(&self, idle_for: Duration, limit: u32) -> Result<StuckRuns> {
        if idle_for <= Duration::zero() {
            return Err(StoreError::invalid("idle_for", "must be positive"));
        }
        if limit > ListQuery::MAX_LIMIT {
            return Err(StoreError::invalid(
                "limit",
                format!("must be at most {}", ListQuery::MAX_LIMIT),
            ));
        }
        let idle_since = self.now() - idle_for;
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
            runs: rows.iter().map(crate::row::decode_summary).collect(),
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
    pub async fn execution_percentiles(&self, pipeline_id: Option<&str>) -> Result<Percentiles> {
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
    pub async fn execution_percentiles_by_pipeline(&self) -> Result<Vec<(String, Percentiles)>> {
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
    pub async fn pipelines(&self) -> Result<Vec<String>> {
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

    /// Runs created per bucket and status, for the `buckets` buckets ending with the current one (oldest first;
    /// buckets with no runs are included with empty counts).
    ///
    /// # Errors
    /// [`StoreError::InvalidInput`] for 0 or more than 1000 buckets.
    pub async fn activity(&self, bucket: Bucket, buckets: u32) -> Result<Vec<ActivityBucket>> {
        if buckets == 0 || buckets > 1000 {
            return Err(StoreError::invalid("buckets", "must be between 1 and 1000"));
        }
        let width = bucket.duration();
        let current = self
            .now()
            .duration_trunc(width)
            .map_err(|e| StoreError::invalid("bucket", e.to_string()))?;
        let first = current - width * (buckets as i32 - 1);
        let end = current + width;
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
        let mut out: Vec<ActivityBucket> = (0..buckets)
            .map(|i| ActivityBucket {
                start: first + width * i as i32,
                counts: BTreeMap::new(),
            })
            .collect();
        for (b, status, n) in rows {
            let status = Status::from_stored(status);
            if let Some(slot) = usize::try_from(b).ok().and_then(|b| out.get_mut(b)) {
                *slot.counts.entry(status.as_str().to_string()).or_insert(0) += n;
            }
        }
        Ok(out)
    }

    /// Failed runs last updated at or after `since`, grouped by [`error_signature`], largest group first, each
    /// with up to [`FAILURE_SAMPLES`] sample runs. Reads at most [`MAX_FAILURE_SCAN`] of the newest failures (and
    /// says so in `truncated`).
    ///
    /// # Errors
    /// Database failures.
    pub async fn failure_groups(&self, since: DateTime<Utc>) -> Result<FailureReport> {
        self.group_failures(since, FAILURE_SAMPLES, None).await
    }

    /// One group of [`Store::failure_groups`], found by its [`FailureGroup::key`], with up to `samples` sample
    /// runs (newest first) instead of [`FAILURE_SAMPLES`]; `None` when no failure of the window has that key.
    ///
    /// # Errors
    /// [`StoreError::InvalidInput`] for more samples than [`ListQuery::MAX_LIMIT`]; database failures.
    pub async fn failure_group(
        &self,
        since: DateTime<Utc>,
        key: &str,
        samples: usize,
    ) -> Result<Option<FailureGroup>> {
        if samples > ListQuery::MAX_LIMIT as usize {
            return Err(StoreError::invalid(
                "samples",
                format!("must be at most {}", ListQuery::MAX_LIMIT),
            ));
        }
        let report = self.group_failures(since, samples, Some(key)).await?;
        Ok(report.groups.into_iter().next())
    }

    /// Failures in the window by signature; with `only_key`, just that group is kept.
    ///
    /// Reads the run id, pipeline, last update and error message of the newest [`MAX_FAILURE_SCAN`] failures of
    /// the window from `idx_flowstate_status_activity` alone, as one JSON document; computes the signature once
    /// per message text; then reads the rows of the sample runs only.
    async fn group_failures(
        &self,
        since: DateTime<Utc>,
        samples: usize,
        only_key: Option<&str>,
    ) -> Result<FailureReport> {
        let since_us = time::instant_micros(&since);
        let map = self.map("grouping failures");
        let mut conn = self.pool().acquire().await.map_err(&map)?;
        let mut tx = conn.begin().await.map_err(&map)?;
        let total_failed = self.failed_since(&mut tx, since_us).await?;
        let document: Option<String> = sqlx::query_scalar(&counters::sql::failed_window_json())
            .bind(since_us)
            .bind(MAX_FAILURE_SCAN)
            .fetch_one(&mut *tx)
            .await
            .map_err(&map)?;
        let mut rows: Vec<(String, String, i64, Option<String>)> =
            serde_json::from_str(document.as_deref().unwrap_or("[]")).map_err(|e| {
                StoreError::Database(sqlx::Error::Decode(
                    format!("the failures read back as unexpected JSON: {e}").into(),
                ))
            })?;
        // Newest first (last update, then run id), so each group's first runs are its samples.
        rows.sort_by(|a, b| (b.2, &b.0).cmp(&(a.2, &a.0)));
        let mut groups: Vec<FailureGroup> = Vec::new();
        let mut sample_ids: Vec<Vec<String>> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        // The group of each message text seen (`None`: not the group asked for): the same text is common (the
        // varying parts are what the signature removes), and its signature is computed once.
        let mut by_message: HashMap<&str, Option<usize>> = HashMap::new();
        for (run_id, pipeline_id, updated_us, message) in &rows {
            let text = message.as_deref().unwrap_or_default();
            let group = match by_message.get(text) {
                Some(group) => *group,
                None => {
                    let signature = if text.trim().is_empty() {
                        "(no error message)".to_string()
                    } else {
                        memoized_signature(text)
                    };
                    let key = signature_key(&signature);
                    let group = if only_key.is_some_and(|k| k != key) {
                        None
                    } else {
                        Some(*index.entry(signature.clone()).or_insert_with(|| {
                            groups.push(FailureGroup {
                                key,
                                signature,
                                example: text.to_string(),
                                count: 0,
                                pipelines: BTreeMap::new(),
                                first_seen: None,
                                last_seen: None,
                                samples: Vec::new(),
                            });
                            sample_ids.push(Vec::new());
                            groups.len() - 1
                        }))
                    };
                    by_message.insert(text, group);
                    group
                }
            };
            let Some(i) = group else { continue };
            let g = &mut groups[i];
            g.count += 1;
            match g.pipelines.get_mut(pipeline_id.as_str()) {
                Some(n) => *n += 1,
                None => {
                    g.pipelines.insert(pipeline_id.clone(), 1);
                }
            }
            if let Some(u) = time::from_micros(*updated_us) {
                g.first_seen = Some(g.first_seen.map_or(u, |f| f.min(u)));
                g.last_seen = Some(g.last_seen.map_or(u, |l| l.max(u)));
            }
            if sample_ids[i].len() < samples {
                sample_ids[i].push(run_id.clone());
            }
        }
        // The samples' rows, read by run id, in the same snapshot.
        let wanted: Vec<&String> = sample_ids.iter().flatten().collect();
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
                let run = crate::row::decode_summary(row);
                found.insert(run.run_id.clone(), run);
            }
        }
        tx.commit().await.map_err(&map)?;
        for (g, ids) in groups.iter_mut().zip(&sample_ids) {
            g.samples = ids.iter().filter_map(|id| found.get(id).cloned()).collect();
        }
        groups.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.signature.cmp(&b.signature)));
        Ok(FailureReport {
            since,
            total_failed,
            truncated: (rows.len() as i64) < total_failed,
            groups,
        })
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
    pub async fn count_failed_since(&self, since: DateTime<Utc>) -> Result<i64> {
        let mut conn = self
            .pool()
            .acquire()
            .await
            .map_err(self.map("counting failures"))?;
        self.failed_since(&mut conn, time::instant_micros(&since)).await
    }

    /// Runs and failures per pipeline among runs last updated at or after `since`, highest failure rate first.
    ///
    /// With the counters, whole hours come from `flowstate_updated_hourly` and the first hour of the window from
    /// `idx_flowstate_status_activity`; without them, an index range of the whole window is counted.
    ///
    /// # Errors
    /// Database failures.
    pub async fn failure_rates(&self, since: DateTime<Utc>) -> Result<Vec<PipelineFailureRate>> {
        let updated = instant_sql("updated_at");
        let since_us = time::instant_micros(&since);
        let rows: Vec<(String, i64, i64)> = if self.has_counters() {
            let map = self.map("reading failure rates");
            let mut conn = self.pool().acquire().await.map_err(&map)?;
            let mut tx = conn.begin().await.map_err(&map)?;
            let counts = counters::updated_since(&mut tx, since_us, None)
                .await
                .map_err(&map)?;
            tx.commit().await.map_err(&map)?;
            let mut per: BTreeMap<String, (i64, i64)> = BTreeMap::new();
            for ((pipeline_key, status_key), n) in counts {
                let entry = per
                    .entry(counters::decode_key(&pipeline_key).unwrap_or_default())
                    .or_insert((0, 0));
                entry.0 += n;
                if status_key == "=failed" {
                    entry.1 += n;
                }
            }
            per.into_iter()
                .filter(|(_, (total, _))| *total > 0)
                .map(|(p, (total, failed))| (p, total, failed))
                .collect()
        } else {
            sqlx::query_as(&format!(
                "SELECT CAST(COALESCE(pipeline_id, '') AS TEXT), count(*), sum(status = 'failed') FROM workflow_state \
                 WHERE {updated} >= ?1 GROUP BY pipeline_id"
            ))
            .bind(since_us)
            .fetch_all(self.pool())
            .await
            .map_err(self.map("reading failure rates"))?
        };
        let mut out: Vec<PipelineFailureRate> = rows
            .into_iter()
            .map(|(pipeline_id, total, failed)| PipelineFailureRate {
                pipeline_id,
                total,
                failed,
                rate: if total > 0 {
                    failed as f64 / total as f64
                } else {
                    0.0
                },
            })
            .collect();
        out.sort_by(|a, b| {
            b.rate
                .partial_cmp(&a.rate)
                .unwrap_or(std::cmp::Ordering::Equal)
                .then_with(|| a.pipeline_id.cmp(&b.pipeline_id))
        });
        Ok(out)
    }

    /// Recounts every counter from the table and reports each one that differs (none, unless something wrote
    /// the file with the triggers missing). Reads the whole table: a check for operators, not for pages.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] when the file has no counters (opened read-only before being migrated);
    /// database failures.
    pub async fn verify_counters(&self) -> Result<CounterCheck> {
        if !self.has_counters() {
            return Err(StoreError::Conflict(
                "the file has no counters (it was opened read-only before being migrated)".into(),
            ));
        }
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
    pub async fn rebuild_counters(&self) -> Result<CounterCheck> {
        if self.is_read_only() {
            return Err(StoreError::Conflict("the store was opened read-only".into()));
        }
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
    pub async fn record_audit(
        &self,
        actor: &str,
        action: &str,
        detail: &Value,
        matched: Option<i64>,
        affected: i64,
    ) -> Result<i64> {
        if self.is_read_only() {
            return Err(StoreError::Conflict("the store was opened read-only".into()));
        }
        let done = sqlx::query(
            "INSERT INTO flowstate_audit (at, actor, action, detail, matched, affected) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )
        .bind(time::format_timestamp(&self.now()))
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
    pub async fn audit_log(&self, limit: u32) -> Result<Vec<AuditEntry>> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_merge_varying_parts_and_keep_the_rest() {
        let a = error_signature("UsageLimitExceededError: Cost limit of $0.50 exceeded");
        let b = error_signature("UsageLimitExceededError: Cost limit of $12.75 exceeded");
        assert_eq!(a, b);
        assert_eq!(a, "UsageLimitExceededError: Cost limit of $<n> exceeded");
        assert_eq!(
            error_signature("run run_8fadc1a606cb0fb39a1de644815ef6d1 lost lease after 1500ms"),
            "run <id> lost lease after <dur>"
        );
        assert_eq!(
            error_signature("ValidationError: field \"total\" expected number, got 'N/A'"),
            "ValidationError: field <v> expected number, got <v>"
        );
        assert_ne!(
            error_signature("TimeoutError: agent call exceeded 30s"),
            error_signature("ConnectionError: agent call exceeded 30s")
        );
        assert_eq!(error_signature("first line 42\nsecond line"), "first line <n>");
        for message in [
            "first line 42\nsecond line",
            "TimeoutError: agent call exceeded 30s",
            "",
            "  x 'y'  ",
        ] {
            assert_eq!(
                memoized_signature(message),
                error_signature(message),
                "{message:?}"
            );
            assert_eq!(
                memoized_signature(message),
                error_signature(message),
                "{message:?}, remembered"
            );
        }
        assert_eq!(signature_key("x"), signature_key("x"));
        assert_ne!(signature_key("x"), signature_key("y"));
    }
}
