//! The bounds of the runs list's time and memory filters as people type them, the one parser for the CLI
//! (`--min-duration 5m`, `--min-memory 100`) and the pages (`?min_duration=5m&min_memory=100`).

use crate::span::{Span, SpanError};

/// The longest execution time a bound can name: the column is a 32-bit integer of milliseconds (24.8 days).
pub const MAX_DURATION_MS: i64 = i32::MAX as i64;

/// The largest memory figure a bound can name, in MB (a petabyte: far above any run, and exact in a double).
pub const MAX_MEMORY_MB: f64 = 1e9;

/// Reads an execution-time bound: a span as [`Span::parse`] reads it (`90s`, `5m`, `2h`), or a whole number of
/// milliseconds with `ms` (`1500ms`). In milliseconds.
///
/// # Errors
/// What is wrong, in words.
pub fn parse_duration_ms(text: &str) -> Result<i64, String> {
    let trimmed = text.trim();
    let ms = if let Some(digits) = trimmed
        .strip_suffix("ms")
        .or_else(|| trimmed.strip_suffix("MS"))
        .map(str::trim_end)
        .filter(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
    {
        digits.parse::<i64>().unwrap_or(i64::MAX)
    } else {
        let span = Span::parse(trimmed).map_err(|e| match e {
            SpanError::Empty => {
                "no duration given; write a whole number and a unit, like 90s, 5m or 1500ms".into()
            }
            e => format!("{e} (or milliseconds, like 1500ms)"),
        })?;
        span.seconds().saturating_mul(1000)
    };
    if ms > MAX_DURATION_MS {
        return Err(format!(
            "“{}” is longer than the longest execution time a run can record ({MAX_DURATION_MS} ms, 24.8 days)",
            trimmed
        ));
    }
    Ok(ms)
}

/// Reads a memory bound in MB: a non-negative decimal (`100`, `0.5`), at most [`MAX_MEMORY_MB`].
///
/// # Errors
/// What is wrong, in words.
pub fn parse_memory_mb(text: &str) -> Result<f64, String> {
    let trimmed = text.trim();
    let number = trimmed
        .strip_suffix("MB")
        .or_else(|| trimmed.strip_suffix("mb"))
        .unwrap_or(trimmed)
        .trim_end();
    // Digits and one point only: no sign, exponent, `inf` or `NaN`.
    let plain = !number.is_empty()
        && number.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && number.bytes().filter(|b| *b == b'.').count() <= 1
        && number.bytes().any(|b| b.is_ascii_digit());
    let value: f64 = plain
        .then(|| number.parse().ok())
        .flatten()
        .ok_or_else(|| format!("“{trimmed}” is not a number of MB; write a decimal like 100 or 0.5"))?;
    if value > MAX_MEMORY_MB {
        return Err(format!("“{trimmed}” is more than {MAX_MEMORY_MB} MB"));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_spans_or_milliseconds() {
        assert_eq!(parse_duration_ms("5m"), Ok(300_000));
        assert_eq!(parse_duration_ms(" 90s "), Ok(90_000));
        assert_eq!(parse_duration_ms("1500ms"), Ok(1500));
        assert_eq!(parse_duration_ms("0ms"), Ok(0));
        assert_eq!(parse_duration_ms("24d"), Ok(24 * 86_400_000));
        for bad in [
            "",
            "5",
            "-5m",
            "1.5m",
            "ms",
            "5 parsecs",
            "30d",
            "99999999999999999999ms",
        ] {
            assert!(parse_duration_ms(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn memory_reads_plain_decimals() {
        assert_eq!(parse_memory_mb("100"), Ok(100.0));
        assert_eq!(parse_memory_mb("0.5"), Ok(0.5));
        assert_eq!(parse_memory_mb("12.25 MB"), Ok(12.25));
        for bad in ["", "-1", "1e3", "inf", "NaN", "1.2.3", ".", "10 GB", "2e9"] {
            assert!(parse_memory_mb(bad).is_err(), "{bad:?}");
        }
    }
}
