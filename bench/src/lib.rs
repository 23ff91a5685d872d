//! # flowstate-bench
//!
//! Benchmarks of `flowstate-store` at scale, each figure beside its baseline measured in the same run (raw
//! SQLite through rusqlite, on the same file, at the same settings).
//!
//! - [`load`]: a bulk loader that builds a realistic database of N runs in seconds to minutes (1M, 10M), cached
//!   under `target/bench/db/` so later runs reuse it;
//! - [`generate`]: the rows (the demo's pipelines, contexts and errors; 5 % failed; 90 days);
//! - [`report`]: every figure as one JSON object in `target/bench/flowstate.json`, and a table;
//! - [`sample`]: repeated timings and percentiles.
//!
//! The measurements themselves are the crate's bench targets: `cargo bench -p flowstate-bench` (sizes from
//! `FLOWSTATE_BENCH_ROWS`, default 100,000).
//!
//! ```no_run
//! # async fn demo() -> flowstate_bench::Result<()> {
//! let db = flowstate_bench::load::ensure(1_000_000).await?; // built once, then reused
//! let store = flowstate_store::Store::open_with(&db.path, db.store_options()).await?;
//! let stats = store.get_workflow_stats().await?;
//! let m = flowstate_bench::report::Measurement::new("example", db.rows, stats.total_workflows as f64, "runs");
//! flowstate_bench::report::merge_into(&flowstate_bench::report::report_path(), &[m])?;
//! # Ok(()) }
//! ```
#![warn(missing_docs)]

use std::path::PathBuf;

pub mod generate;
pub mod lists;
pub mod load;
pub mod pg;
pub mod report;
pub mod sample;
pub mod triage;

/// Errors of the bench: anything, with its message.
pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// The bench's result type.
pub type Result<T> = std::result::Result<T, Error>;

/// The seed of every bench database.
pub const SEED: u64 = 0xF10_57A7E;

/// Rows of the database when neither `FLOWSTATE_BENCH_ROWS` nor an argument says.
pub const DEFAULT_ROWS: u64 = 100_000;

/// The workspace's target folder (`CARGO_TARGET_DIR`, or `target/` at the workspace root).
pub fn target_dir() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => root.join(dir),
        _ => root.join("target"),
    }
}

/// `target/bench`: the report, the cached databases, scratch files.
pub fn bench_dir() -> PathBuf {
    target_dir().join("bench")
}

/// What a bench run measures, from the environment and the command line.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Database sizes, each measured in turn.
    pub rows: Vec<u64>,
    /// Seconds per throughput measurement, and the time budget of each latency measurement.
    pub secs: f64,
    /// Only the groups whose names contain one of these words (all when empty).
    pub only: Vec<String>,
    /// A PostgreSQL server to measure as well (`FLOWSTATE_BENCH_PG`, or `--pg URL`).
    pub pg: Option<String>,
}

impl Config {
    /// Reads `FLOWSTATE_BENCH_ROWS` (sizes, comma-separated: `100000`, `1M`, `1000000,10000000`),
    /// `FLOWSTATE_BENCH_SECS` (default 3), `FLOWSTATE_BENCH_ONLY` (group names) and `FLOWSTATE_BENCH_PG` (a
    /// PostgreSQL server's URL), then the arguments, which win: `--rows N[,N...]`, a bare size, `--secs S`,
    /// `--pg URL`, and any other word as a group name. The `--bench` flag cargo
    /// passes is ignored.
    ///
    /// # Errors
    /// An unreadable size or duration.
    pub fn from_env_and_args(args: impl IntoIterator<Item = String>) -> Result<Config> {
        let mut config = Config {
            rows: vec![DEFAULT_ROWS],
            secs: 3.0,
            only: Vec::new(),
            pg: pg::server_from_env(),
        };
        if let Ok(v) = std::env::var("FLOWSTATE_BENCH_ROWS") {
            if !v.trim().is_empty() {
                config.rows = parse_sizes(&v)?;
            }
        }
        if let Ok(v) = std::env::var("FLOWSTATE_BENCH_SECS") {
            if !v.trim().is_empty() {
                config.secs = parse_secs(&v)?;
            }
        }
        if let Ok(v) = std::env::var("FLOWSTATE_BENCH_ONLY") {
            config.only = v
                .split([',', ' '])
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect();
        }
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            if arg == "--bench" || arg.is_empty() {
                continue;
            }
            if let Some(v) = arg.strip_prefix("--rows=") {
                config.rows = parse_sizes(v)?;
            } else if arg == "--rows" {
                config.rows = parse_sizes(&args.next().ok_or("--rows needs a value")?)?;
            } else if let Some(v) = arg.strip_prefix("--secs=") {
                config.secs = parse_secs(v)?;
            } else if arg == "--secs" {
                config.secs = parse_secs(&args.next().ok_or("--secs needs a value")?)?;
            } else if let Some(v) = arg.strip_prefix("--pg=") {
                config.pg = Some(v.to_string());
            } else if arg == "--pg" {
                config.pg = Some(args.next().ok_or("--pg needs a server URL")?);
            } else if arg.starts_with(|c: char| c.is_ascii_digit()) {
                config.rows = parse_sizes(&arg)?;
            } else if arg.starts_with('-') {
                return Err(format!("unknown option {arg}").into());
            } else {
                config.only.push(arg);
            }
        }
        Ok(config)
    }

    /// True when the group `name` is to run.
    pub fn wants(&self, name: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|o| name.contains(o.as_str()))
    }
}

/// Reads sizes: `100000`, `100_000`, `100k`, `1M`, `10m`, comma-separated.
///
/// # Errors
/// Text that is not a positive size.
pub fn parse_sizes(text: &str) -> Result<Vec<u64>> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            let clean: String = s.chars().filter(|c| *c != '_').collect();
            let (digits, factor) = match clean.chars().last() {
                Some('k' | 'K') => (&clean[..clean.len() - 1], 1_000),
                Some('m' | 'M') => (&clean[..clean.len() - 1], 1_000_000),
                _ => (clean.as_str(), 1),
            };
            match digits.parse::<u64>() {
                Ok(n) if n > 0 => Ok(n * factor),
                _ => Err(format!("{s:?} is not a number of rows (e.g. 100000, 100k, 1M)").into()),
            }
        })
        .collect()
}

fn parse_secs(text: &str) -> Result<f64> {
    match text.trim().parse::<f64>() {
        Ok(s) if s > 0.0 && s.is_finite() => Ok(s),
        _ => Err(format!("{text:?} is not a number of seconds").into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_arguments() {
        assert_eq!(parse_sizes("100000").unwrap(), vec![100_000]);
        assert_eq!(
            parse_sizes("1M,10m, 100k,1_000").unwrap(),
            vec![1_000_000, 10_000_000, 100_000, 1_000]
        );
        assert!(parse_sizes("lots").is_err());
        assert!(parse_sizes("0").is_err());
        let args = |a: &[&str]| Config::from_env_and_args(a.iter().map(|s| s.to_string()));
        let c = args(&["--bench", "--rows", "1M", "save", "--secs=0.5"]).unwrap();
        assert_eq!(c.rows, vec![1_000_000]);
        assert_eq!(c.secs, 0.5);
        assert!(c.wants("save_state") && !c.wants("list"));
        assert_eq!(args(&["10M"]).unwrap().rows, vec![10_000_000]);
        assert!(args(&["--frobnicate"]).is_err());
        assert_eq!(
            args(&["--pg", "postgres://u@h/db"]).unwrap().pg.as_deref(),
            Some("postgres://u@h/db")
        );
        assert!(args(&["--pg"]).is_err());
    }
}
