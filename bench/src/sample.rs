//! Repeated timings and their percentiles.

use std::future::Future;
use std::time::{Duration, Instant};

use flowstate_model::percentiles::nearest_rank;

use crate::Result;

/// Timings of one operation, sorted, in milliseconds.
#[derive(Debug, Clone, Default)]
pub struct Samples {
    sorted_ms: Vec<f64>,
}

impl Samples {
    /// From durations in any order.
    pub fn new(durations: impl IntoIterator<Item = Duration>) -> Samples {
        let mut sorted_ms: Vec<f64> = durations.into_iter().map(|d| d.as_secs_f64() * 1e3).collect();
        sorted_ms.sort_by(|a, b| a.total_cmp(b));
        Samples { sorted_ms }
    }

    /// How many timings.
    pub fn len(&self) -> usize {
        self.sorted_ms.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.sorted_ms.is_empty()
    }

    /// The `p`-th percentile (nearest rank, `p` in 0..=100), in ms; 0 when empty.
    pub fn percentile_ms(&self, p: f64) -> f64 {
        if self.sorted_ms.is_empty() {
            return 0.0;
        }
        let rank = nearest_rank(p / 100.0, self.sorted_ms.len() as i64).unwrap_or(1);
        self.sorted_ms[rank as usize - 1]
    }

    /// The median, in ms.
    pub fn median_ms(&self) -> f64 {
        self.percentile_ms(50.0)
    }

    /// The 99th percentile, in ms.
    pub fn p99_ms(&self) -> f64 {
        self.percentile_ms(99.0)
    }

    /// How many took longer than `ms`.
    pub fn count_over_ms(&self, ms: f64) -> u64 {
        (self.sorted_ms.len() - self.sorted_ms.partition_point(|&v| v <= ms)) as u64
    }

    /// The longest, in ms.
    pub fn max_ms(&self) -> f64 {
        self.sorted_ms.last().copied().unwrap_or(0.0)
    }
}

/// How long to keep repeating an operation: at least `min` times, then until `time` has passed or `max` times.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    /// Fewest timings.
    pub min: usize,
    /// Most timings.
    pub max: usize,
    /// Time to spend, once `min` timings are taken.
    pub time: Duration,
}

impl Budget {
    /// The fewest timings of an operation whose warm-up call alone took longer than the whole budget (a
    /// baseline scanning a 10M-run table takes minutes): two, not `min`.
    pub const SLOW_MIN: usize = 2;

    /// An operation whose first call alone took this many budgets is timed by that call only (no warm-up, no
    /// repeat): a baseline's `GROUP BY` over a 10M-run file larger than the memory reads tens of gigabytes a call,
    /// and its three calls took most of an hour.
    pub const ONCE_AFTER: u32 = 20;

    /// How many timings at least, given how long the first warm-up call took: `min`, or [`Budget::SLOW_MIN`]
    /// when that call alone outlasted the budget (then the second warm-up call is skipped too), or none past
    /// [`Budget::ONCE_AFTER`] budgets (the first call is then the only timing).
    pub fn min_after(&self, first_call: Duration) -> usize {
        if first_call > self.time * Self::ONCE_AFTER {
            0
        } else if first_call > self.time {
            self.min.min(Self::SLOW_MIN)
        } else {
            self.min
        }
    }

    /// A budget of `secs` seconds, 5 to 2,000 timings.
    pub fn secs(secs: f64) -> Budget {
        Budget {
            min: 5,
            max: 2_000,
            time: Duration::from_secs_f64(secs),
        }
    }
}

/// Times `f` repeatedly within `budget`, after two untimed calls that warm the caches (one, and two timings at
/// least, when the first call alone outlasts the budget: see [`Budget::min_after`]).
///
/// # Errors
/// The first error `f` returns.
pub async fn sample_async<F, Fut, T, E>(budget: Budget, mut f: F) -> Result<Samples>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = std::result::Result<T, E>>,
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let first = Instant::now();
    f().await.map_err(Into::into)?;
    let first_call = first.elapsed();
    let min = budget.min_after(first_call);
    if min == 0 {
        return Ok(Samples::new([first_call]));
    }
    if min == budget.min {
        f().await.map_err(Into::into)?;
    }
    let started = Instant::now();
    let mut out = Vec::new();
    while out.len() < min || (out.len() < budget.max && started.elapsed() < budget.time) {
        let t = Instant::now();
        let value = f().await.map_err(Into::into)?;
        out.push(t.elapsed());
        drop(value);
    }
    Ok(Samples::new(out))
}

/// [`sample_async`] for a blocking operation.
///
/// # Errors
/// The first error `f` returns.
pub fn sample_sync<F, T, E>(budget: Budget, mut f: F) -> Result<Samples>
where
    F: FnMut() -> std::result::Result<T, E>,
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let first = Instant::now();
    f().map_err(Into::into)?;
    let first_call = first.elapsed();
    let min = budget.min_after(first_call);
    if min == 0 {
        return Ok(Samples::new([first_call]));
    }
    if min == budget.min {
        f().map_err(Into::into)?;
    }
    let started = Instant::now();
    let mut out = Vec::new();
    while out.len() < min || (out.len() < budget.max && started.elapsed() < budget.time) {
        let t = Instant::now();
        let value = f().map_err(Into::into)?;
        out.push(t.elapsed());
        drop(value);
    }
    Ok(Samples::new(out))
}

/// CPU time the whole machine spent busy so far (every core; user, system, interrupts, steal), in seconds.
pub fn machine_busy_secs() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/stat") else {
        return 0.0;
    };
    let Some(line) = stat.lines().find(|l| l.starts_with("cpu ")) else {
        return 0.0;
    };
    // user nice system idle iowait irq softirq steal ...
    let ticks: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    let busy: u64 = [0, 1, 2, 5, 6, 7].iter().filter_map(|&i| ticks.get(i)).sum();
    busy as f64 / 100.0
}

/// User and system CPU time of a process (`self` or a pid) so far, in seconds (0 when unreadable).
pub fn cpu_secs(pid: &str) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // The fields after the command name (which may hold spaces) in parentheses: utime and stime are the 14th and
    // 15th fields of the line, in clock ticks of 1/100 s (USER_HZ).
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
    (ticks(11) + ticks(12)) as f64 / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slow_operations_are_timed_fewer_times() {
        let budget = Budget::secs(0.05);
        assert_eq!(budget.min_after(Duration::from_millis(1)), 5);
        assert_eq!(budget.min_after(Duration::from_millis(60)), Budget::SLOW_MIN);
        let mut calls = 0;
        let s = sample_sync(budget, || -> std::result::Result<(), std::io::Error> {
            calls += 1;
            std::thread::sleep(Duration::from_millis(60));
            Ok(())
        })
        .unwrap();
        assert_eq!((calls, s.len()), (3, 2), "one warm-up call and two timings");
        let mut fast = 0;
        let s = sample_sync(budget, || -> std::result::Result<(), std::io::Error> {
            fast += 1;
            Ok(())
        })
        .unwrap();
        assert!(s.len() >= 5 && fast == s.len() + 2);
        // Past ONCE_AFTER budgets, the first call is the only timing.
        let tiny = Budget::secs(0.001);
        assert_eq!(tiny.min_after(Duration::from_millis(30)), 0);
        let mut once = 0;
        let s = sample_sync(tiny, || -> std::result::Result<(), std::io::Error> {
            once += 1;
            std::thread::sleep(Duration::from_millis(30));
            Ok(())
        })
        .unwrap();
        assert_eq!((once, s.len()), (1, 1), "one call, timed");
        assert!(s.median_ms() >= 30.0, "{}", s.median_ms());
    }

    #[test]
    fn nearest_rank_percentiles() {
        let s = Samples::new((1..=100).map(Duration::from_millis));
        assert_eq!(s.median_ms(), 50.0);
        assert_eq!(s.p99_ms(), 99.0);
        assert_eq!(s.max_ms(), 100.0);
        assert_eq!(Samples::new([Duration::from_millis(7)]).p99_ms(), 7.0);
        assert_eq!(Samples::default().median_ms(), 0.0);
        assert_eq!(s.count_over_ms(50.0), 50);
        assert_eq!(s.count_over_ms(99.5), 1);
        assert_eq!(s.count_over_ms(100.0), 0);
        assert_eq!(Samples::default().count_over_ms(0.0), 0);
    }
}
