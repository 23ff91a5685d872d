//! Execution-time percentiles: which ones flowstate reports, and how a rank is chosen (nearest rank).

use serde::{Deserialize, Serialize};

/// The percentiles reported, as fractions: p50, p95, p99.
pub const REPORTED: [f64; 3] = [0.50, 0.95, 0.99];

/// The 1-based nearest rank of percentile `p` (a fraction, e.g. 0.95) among `count` sorted values:
/// `ceil(p × count)`, at least 1 and at most `count`. `None` when there are no values.
pub fn nearest_rank(p: f64, count: i64) -> Option<i64> {
    (count > 0).then(|| ((p * count as f64).ceil() as i64).clamp(1, count))
}

/// Execution-time percentiles (nearest rank, see [`nearest_rank`]) over the runs that have an execution time,
/// in milliseconds; `None` without any execution time.
///
/// `count` and `max` are exact. `p50`, `p95` and `p99` are within `relative_error` of the exact nearest-rank
/// values (the store's histogram gives 1/32; exact values say 0); none is above `max`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    /// Runs with an execution time.
    pub count: i64,
    /// Median, in ms.
    pub p50: Option<f64>,
    /// 95th percentile, in ms.
    pub p95: Option<f64>,
    /// 99th percentile, in ms.
    pub p99: Option<f64>,
    /// Longest, in ms (exact).
    pub max: Option<f64>,
    /// The largest relative difference between `p50`, `p95`, `p99` and the exact nearest-rank values: 1/32 when
    /// read from the store's histogram, 0 when exact.
    #[serde(default)]
    pub relative_error: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_is_the_ceiling_within_bounds() {
        assert_eq!(nearest_rank(0.5, 0), None);
        assert_eq!(nearest_rank(0.5, 1), Some(1));
        assert_eq!(nearest_rank(0.5, 10), Some(5));
        assert_eq!(nearest_rank(0.95, 10), Some(10));
        assert_eq!(nearest_rank(0.99, 100), Some(99));
        assert_eq!(nearest_rank(0.99, 101), Some(100));
        assert_eq!(nearest_rank(0.0, 7), Some(1));
    }
}
