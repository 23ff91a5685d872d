//! The counters behind the O(1) overview figures, as both backends keep them: what a counter row means, the
//! execution-time histogram's buckets, and what a check of the counters against a recount reports.
//!
//! Each backend keeps the same four counters in its own way (SQLite: row triggers, [`crate::sqlite`]'s counters
//! module; PostgreSQL: row and statement triggers appending to a log of deltas, [`crate::postgres`]):
//!
//! | counter | key | values |
//! |---|---|---|
//! | runs per status and pipeline | status, pipeline | runs, runs with an execution time, the sum of execution times |
//! | created per hour | creation hour (UTC), status | runs |
//! | updated per hour | hour of last update, pipeline, status | runs |
//! | execution-time histogram | pipeline, execution-time bucket | runs |
//!
//! Keys: a status or pipeline id is stored as `'=' || value`, and NULL as `''`, so NULL never collides with a
//! stored value (not even an empty one).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One hour in microseconds: the width of the hourly counters.
pub(crate) const HOUR_US: i64 = 3_600_000_000;

/// Sub-buckets per power of two in the execution-time histogram: times of 32 ms and more fall into buckets
/// 1/16 of their power of two wide; below 32 ms every millisecond has its own bucket.
pub(crate) const SUB_BUCKETS: i64 = 16;

/// The largest memory figure the pipeline counters keep, in thousandths of a MB (2^40, about 1.1 PB): larger
/// values count as this much (so the sums cannot overflow).
pub const MEM_UNITS_MAX: i64 = 1 << 40;

/// The largest relative error of a percentile read from the histogram: half a bucket, 1/32 of the value.
pub const PERCENTILE_RELATIVE_ERROR: f64 = 1.0 / 32.0;

/// Sub-buckets per power of two of the **daily** histograms of the Pipelines counters (schema version 5): times
/// (and memory figures) of 8 and more fall into buckets 1/4 of their power of two wide, each a union of four
/// [`SUB_BUCKETS`] buckets; below 8 every unit has its own bucket. A quarter of the rows of a day's fine histogram,
/// so a 30- or 90-day read stays small; the hourly histograms keep the fine buckets.
pub(crate) const COARSE_SUB_BUCKETS: i64 = 4;

/// The largest relative error of a percentile read from a coarse histogram: half a coarse bucket, 1/8 of the value.
pub const COARSE_RELATIVE_ERROR: f64 = 1.0 / 8.0;

/// The lower bound of the coarse bucket ([`COARSE_SUB_BUCKETS`]) a value, or the lower bound of its fine bucket,
/// falls in: the value itself below 8 (negative values count as 0), else the value with all but its three highest
/// bits cleared. A fine bucket lies whole in one coarse bucket, so `coarse_of(bucket_of(v)) == coarse_of(v)`.
pub fn coarse_of(v: i64) -> i64 {
    if v < 2 * COARSE_SUB_BUCKETS {
        return v.max(0);
    }
    let k = 63 - i64::from(v.leading_zeros());
    let shift = k - 2;
    (v >> shift) << shift
}

/// The value a percentile falling in the coarse bucket starting at `lower` is reported as: its middle (the value
/// itself below 8).
pub fn coarse_value(lower: i64) -> f64 {
    if lower < 2 * COARSE_SUB_BUCKETS {
        return lower as f64;
    }
    let k = 63 - i64::from(lower.leading_zeros());
    let width = 1i64 << (k - 2);
    lower as f64 + (width / 2) as f64
}

/// The lower bound of the bucket a time falls in (the Rust twin of [`bucket_sql`]).
pub fn bucket_of(ms: i64) -> i64 {
    if ms < 2 * SUB_BUCKETS {
        return ms.max(0);
    }
    let k = 63 - i64::from(ms.leading_zeros());
    let shift = k - 4;
    (ms >> shift) << shift
}

/// The value a percentile falling in the bucket starting at `lower` is reported as: the bucket's middle (the
/// time itself below 32 ms, where buckets are one millisecond wide).
pub fn bucket_value(lower: i64) -> f64 {
    if lower < 2 * SUB_BUCKETS {
        return lower as f64;
    }
    let k = 63 - i64::from(lower.leading_zeros());
    let width = 1i64 << (k - 4);
    lower as f64 + (width / 2) as f64
}

/// The stored text of a status or pipeline key: `None` for NULL.
pub(crate) fn decode_key(key: &str) -> Option<String> {
    key.strip_prefix('=').map(str::to_string)
}

/// The key of a stored value.
pub(crate) fn encode_key(value: &str) -> String {
    format!("={value}")
}

/// The sum of execution times from the two halves the counters keep.
pub(crate) fn time_sum(hi: i64, lo: i64) -> i128 {
    (i128::from(hi) << 32) + i128::from(lo)
}

/// Floor division of an instant by an hour.
pub(crate) fn hour_of(us: i64) -> i64 {
    us.div_euclid(HOUR_US)
}

/// One difference between a counter table and a recount of `workflow_state`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CounterDifference {
    /// The counter table.
    pub table: String,
    /// The row's key, as SQL literals (`'=failed', '=invoice'`).
    pub key: String,
    /// The values stored (`runs, ...`), or `None` when the table has no row for the key.
    pub stored: Option<String>,
    /// The values a recount gives, or `None` when no run has the key.
    pub recounted: Option<String>,
}

impl CounterDifference {
    /// Every key of `table` whose stored values (`key -> values`, as text) differ from a recount's, or that only
    /// one of them has.
    pub(crate) fn between<'a>(
        table: &'a str,
        stored: &'a BTreeMap<String, String>,
        recounted: &'a BTreeMap<String, String>,
    ) -> impl Iterator<Item = CounterDifference> + 'a {
        let changed = stored
            .iter()
            .filter(|(key, value)| recounted.get(*key) != Some(*value))
            .map(|(key, value)| (key, Some(value), recounted.get(key)));
        let missing = recounted
            .iter()
            .filter(|(key, _)| !stored.contains_key(*key))
            .map(|(key, value)| (key, None, Some(value)));
        changed
            .chain(missing)
            .map(move |(key, stored, recounted)| CounterDifference {
                table: table.to_string(),
                key: key.clone(),
                stored: stored.cloned(),
                recounted: recounted.cloned(),
            })
    }
}

/// What [`crate::Store::verify_counters`] found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CounterCheck {
    /// Rows of `workflow_state` recounted.
    pub rows: i64,
    /// Counter rows that differ from the recount; empty when every counter is exact.
    pub differences: Vec<CounterDifference>,
}

impl CounterCheck {
    /// True when every counter equals the recount.
    pub fn is_exact(&self) -> bool {
        self.differences.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_within_a_sixteenth_and_values_within_a_thirty_second() {
        for ms in (0..5000).chain([1 << 20, (1 << 20) + 12345, i64::MAX / 3, i64::MAX]) {
            let b = bucket_of(ms);
            assert!(b <= ms, "{ms} in bucket {b}");
            if ms >= 32 {
                let k = 63 - i64::from(ms.leading_zeros());
                let width = 1i64 << (k - 4);
                assert!(ms - b < width, "{ms} in bucket {b} of width {width}");
                let v = bucket_value(b);
                assert!(
                    (v - ms as f64).abs() <= ms as f64 * PERCENTILE_RELATIVE_ERROR,
                    "{ms} reported as {v}"
                );
            } else {
                assert_eq!(b, ms);
                assert_eq!(bucket_value(b), ms as f64);
            }
        }
        assert_eq!(bucket_of(-5), 0);
        assert_eq!(coarse_of(-5), 0);
        assert_eq!(hour_of(-1), -1);
        assert_eq!(hour_of(HOUR_US), 1);
        assert_eq!(time_sum(-1, 4294967291), -5);
    }

    #[test]
    fn coarse_buckets_are_within_a_quarter_and_values_within_an_eighth() {
        for v in (0..5000).chain([
            1 << 20,
            (1 << 20) + 12345,
            (1 << 40) - 1,
            1 << 40,
            i64::MAX / 3,
            i64::MAX,
        ]) {
            let c = coarse_of(v);
            assert!(c <= v, "{v} in coarse bucket {c}");
            assert_eq!(
                coarse_of(bucket_of(v)),
                c,
                "the fine bucket of {v} lies in its coarse bucket"
            );
            if v >= 8 {
                let k = 63 - i64::from(v.leading_zeros());
                let width = 1i64 << (k - 2);
                assert!(v - c < width, "{v} in coarse bucket {c} of width {width}");
                let r = coarse_value(c);
                assert!(
                    (r - v as f64).abs() <= v as f64 * COARSE_RELATIVE_ERROR,
                    "{v} reported as {r}"
                );
            } else {
                assert_eq!((c, coarse_value(c)), (v, v as f64));
            }
        }
    }
}
