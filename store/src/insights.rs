//! Read-only figures for the operators' dashboard: stuck runs, execution-time percentiles, activity per hour or
//! day, failures grouped by error signature, failure rates per pipeline, and the audit log of changes.
//!
//! The types and the backend-neutral parts live here (error signatures, percentiles from a histogram, the layout
//! of activity buckets, failure grouping, failure rates); each backend reads the rows in its own module.

use std::collections::{BTreeMap, HashMap};
use std::sync::OnceLock;

use chrono::{DateTime, Duration, DurationRound, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use flowstate_model::percentiles::{nearest_rank, REPORTED};

use crate::counters::{self, PERCENTILE_RELATIVE_ERROR};
use crate::time;
use crate::{Result, RunSummary, Status, StoreError};

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
    pub(crate) fn duration(self) -> Duration {
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

/// Which failures a report covers: every one, or one pipeline's (`pipeline_id`), or one version's
/// (`pipeline_version`, exact), or both.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureScope {
    /// Only runs of this pipeline id.
    pub pipeline: Option<String>,
    /// Only runs of this pipeline version.
    pub version: Option<String>,
}

impl FailureScope {
    /// True when it covers every failure.
    pub fn is_all(&self) -> bool {
        self.pipeline.is_none() && self.version.is_none()
    }
}

/// One version of a pipeline in a window: its runs, finished runs and failures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VersionFailureRate {
    /// The `pipeline_version` (empty for runs without one).
    pub version: String,
    /// Runs last updated in the window.
    pub total: i64,
    /// Of which finished: completed, failed or cancelled.
    pub finished: i64,
    /// Of which failed.
    pub failed: i64,
    /// failed / finished (0 when none finished).
    pub rate: f64,
    /// The newest last update among its runs in the window.
    pub last_seen: Option<DateTime<Utc>>,
}

/// What a backend reads per version: `(version, status key, runs, newest update in microseconds)`.
pub(crate) type VersionCount = (String, String, i64, Option<i64>);

/// Per version, from [`VersionCount`] rows; the newest version (by its newest run) first.
pub(crate) fn version_rates_of(rows: Vec<VersionCount>) -> Vec<VersionFailureRate> {
    let mut per: BTreeMap<String, (FailureCount, Option<i64>)> = BTreeMap::new();
    for (version, status_key, n, newest) in rows {
        let entry = per.entry(version).or_default();
        entry.0.add(counters::decode_key(&status_key).as_deref(), n);
        entry.1 = entry.1.max(newest);
    }
    let mut out: Vec<VersionFailureRate> = per
        .into_iter()
        .map(|(version, (c, newest))| VersionFailureRate {
            version,
            total: c.total,
            finished: c.finished,
            failed: c.failed,
            rate: if c.finished > 0 {
                c.failed as f64 / c.finished as f64
            } else {
                0.0
            },
            last_seen: newest.and_then(time::from_micros),
        })
        .collect();
    out.sort_by(|a, b| {
        b.last_seen
            .cmp(&a.last_seen)
            .then_with(|| a.version.cmp(&b.version))
    });
    out
}

/// What a backend counts for [`rates_of`]: one pipeline's runs last updated in a window.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct FailureCount {
    /// The pipeline id (empty for runs without one).
    pub pipeline_id: String,
    /// Runs of any status.
    pub total: i64,
    /// Completed, failed or cancelled ones.
    pub finished: i64,
    /// Failed ones.
    pub failed: i64,
}

impl FailureCount {
    /// Adds `n` runs of the stored status `status` (`None`: NULL).
    pub(crate) fn add(&mut self, status: Option<&str>, n: i64) {
        self.total += n;
        if status.is_some_and(|s| Status::from_name(s).is_terminal()) {
            self.finished += n;
        }
        if status == Some("failed") {
            self.failed += n;
        }
    }

    /// Per pipeline, from counts keyed by (pipeline key, status key) as the counters keep them; pipelines
    /// without runs left out.
    pub(crate) fn from_keyed(counts: impl IntoIterator<Item = ((String, String), i64)>) -> Vec<FailureCount> {
        let mut per: BTreeMap<String, FailureCount> = BTreeMap::new();
        for ((pipeline_key, status_key), n) in counts {
            let pipeline_id = counters::decode_key(&pipeline_key).unwrap_or_default();
            per.entry(pipeline_id.clone())
                .or_insert_with(|| FailureCount {
                    pipeline_id,
                    ..FailureCount::default()
                })
                .add(counters::decode_key(&status_key).as_deref(), n);
        }
        per.into_values().filter(|c| c.total > 0).collect()
    }
}

/// Runs and failures of one pipeline in a window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PipelineFailureRate {
    /// The pipeline id.
    pub pipeline_id: String,
    /// Runs updated in the window (any status, live ones too).
    pub total: i64,
    /// Of which finished: completed, failed or cancelled (running and paused runs have no outcome yet).
    pub finished: i64,
    /// Of which failed.
    pub failed: i64,
    /// failed / finished (0 when none finished): the share of finished runs that failed.
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
pub(crate) fn memoized_signature(message: &str) -> String {
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
pub(crate) fn buckets_of(document: Option<String>) -> Result<Vec<(i64, i64)>> {
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
pub(crate) fn from_histogram(buckets: &[(i64, i64)], max: Option<f64>) -> Percentiles {
    from_buckets(buckets, max, counters::bucket_value, PERCENTILE_RELATIVE_ERROR)
}

/// [`from_histogram`] of buckets whose reported values are `value(lower)`, each within `relative_error` (the coarse
/// daily histograms of the Pipelines counters: [`counters::coarse_value`], 1/8).
pub(crate) fn from_buckets(
    buckets: &[(i64, i64)],
    max: Option<f64>,
    value: fn(i64) -> f64,
    relative_error: f64,
) -> Percentiles {
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
                let v = value(*lower);
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
        relative_error,
    }
}

/// The start of the first of `buckets` buckets of `bucket` ending with the one `now` is in.
pub(crate) fn first_bucket(now: DateTime<Utc>, bucket: Bucket, buckets: u32) -> Result<DateTime<Utc>> {
    let width = bucket.duration();
    let current = now
        .duration_trunc(width)
        .map_err(|e| StoreError::invalid("bucket", e.to_string()))?;
    Ok(current - width * (buckets as i32 - 1))
}

/// The activity buckets from counted rows `(bucket index, stored status, runs)`: every bucket, oldest first,
/// empty ones included; rows outside the buckets are ignored.
pub(crate) fn layout_activity(
    first: DateTime<Utc>,
    bucket: Bucket,
    buckets: u32,
    rows: Vec<(i64, Option<String>, i64)>,
) -> Vec<ActivityBucket> {
    let width = bucket.duration();
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
    out
}

/// Failure rates from `(pipeline, runs, failed runs)`, highest rate first (pipelines without runs left out).
pub(crate) fn rates_of(rows: Vec<FailureCount>) -> Vec<PipelineFailureRate> {
    let mut out: Vec<PipelineFailureRate> = rows
        .into_iter()
        .filter(|c| c.total > 0)
        .map(|c| PipelineFailureRate {
            pipeline_id: c.pipeline_id,
            total: c.total,
            finished: c.finished,
            failed: c.failed,
            rate: if c.finished > 0 {
                c.failed as f64 / c.finished as f64
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
    out
}

/// Failures grouped by signature, from the rows of a failure window `(run id, pipeline, last update in
/// microseconds, error message excerpt)`: the groups (largest first after [`Grouped::finish`]) and, per group,
/// the run ids of its first `samples` runs (newest first). With `only_key`, only that group is kept.
pub(crate) struct Grouped {
    pub groups: Vec<FailureGroup>,
    pub sample_ids: Vec<Vec<String>>,
    pub scanned: usize,
}

impl Grouped {
    /// `rows` own their text (`String`) or borrow it from the driver's rows (`&str`: no copy of each failure's
    /// run id, pipeline and message, only of the samples' ids and the groups' pipelines and examples).
    pub(crate) fn new<S: AsRef<str>>(
        mut rows: Vec<(S, S, i64, Option<S>)>,
        samples: usize,
        only_key: Option<&str>,
    ) -> Grouped {
        // Newest first (last update, then run id), so each group's first runs are its samples.
        rows.sort_by(|a, b| (b.2, b.0.as_ref()).cmp(&(a.2, a.0.as_ref())));
        let mut groups: Vec<FailureGroup> = Vec::new();
        let mut sample_ids: Vec<Vec<String>> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        // The group of each message text seen (`None`: not the group asked for): the same text is common (the
        // varying parts are what the signature removes), and its signature is computed once.
        let mut by_message: HashMap<&str, Option<usize>> = HashMap::new();
        for (run_id, pipeline_id, updated_us, message) in &rows {
            let (run_id, pipeline_id) = (run_id.as_ref(), pipeline_id.as_ref());
            let text = message.as_ref().map_or("", |m| m.as_ref());
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
            match g.pipelines.get_mut(pipeline_id) {
                Some(n) => *n += 1,
                None => {
                    g.pipelines.insert(pipeline_id.to_string(), 1);
                }
            }
            if let Some(u) = time::from_micros(*updated_us) {
                g.first_seen = Some(g.first_seen.map_or(u, |f| f.min(u)));
                g.last_seen = Some(g.last_seen.map_or(u, |l| l.max(u)));
            }
            if sample_ids[i].len() < samples {
                sample_ids[i].push(run_id.to_string());
            }
        }
        Grouped {
            groups,
            sample_ids,
            scanned: rows.len(),
        }
    }

    /// The report, with the sample runs read (by id, from the same snapshot) in `found`.
    pub(crate) fn finish(
        self,
        since: DateTime<Utc>,
        total_failed: i64,
        found: &HashMap<String, RunSummary>,
    ) -> FailureReport {
        let Grouped {
            mut groups,
            sample_ids,
            scanned,
        } = self;
        for (g, ids) in groups.iter_mut().zip(&sample_ids) {
            g.samples = ids.iter().filter_map(|id| found.get(id).cloned()).collect();
        }
        groups.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.signature.cmp(&b.signature)));
        FailureReport {
            since,
            total_failed,
            truncated: (scanned as i64) < total_failed,
            groups,
        }
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
