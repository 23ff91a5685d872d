//! Time: the injectable clock, reading every spelling flujo writes, and the one spelling flowstate writes.
//!
//! flujo stores `datetime.isoformat()` text: a `T`, microseconds only when non-zero, an offset only for
//! timezone-aware values (naive values mean UTC). Comparing that text with anything is wrong as soon as two
//! spellings or offsets meet, so every window and every ordering in the store goes through the *instant*:
//! microseconds since the Unix epoch, computed in Rust by [`parse_timestamp`] and in SQL by
//! [`instant_sql`] (which is also the expression the time indexes are built on).

use std::sync::{Arc, Mutex};

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};

/// Where the store takes "now" from. Injected so tests can pin time exactly.
pub trait Clock: Send + Sync + std::fmt::Debug + 'static {
    /// The current instant.
    fn now(&self) -> DateTime<Utc>;
}

/// The system's wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that stays where it is told to be; for tests and for reproducing a report "as of" an instant.
#[derive(Debug, Clone)]
pub struct FixedClock(Arc<Mutex<DateTime<Utc>>>);

impl FixedClock {
    /// A clock standing at `at`.
    pub fn new(at: DateTime<Utc>) -> Self {
        FixedClock(Arc::new(Mutex::new(at)))
    }

    /// Moves the clock to `at` (every store sharing this clock sees it).
    pub fn set(&self, at: DateTime<Utc>) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = at;
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: chrono::Duration) {
        let mut guard = self.0.lock().unwrap_or_else(|p| p.into_inner());
        *guard += by;
    }
}

impl Clock for FixedClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Reads a timestamp in any spelling flujo (or SQLite) writes: `T` or space separator, with or without a
/// fraction of any length, with an offset (`+HH:MM`, `-HH:MM`, `Z`) or naive (meaning UTC).
/// Returns `None` for text that is not a timestamp.
pub fn parse_timestamp(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    if let Ok(dt) = DateTime::parse_from_rfc3339(text) {
        return Some(dt.with_timezone(&Utc));
    }
    for fmt in ["%Y-%m-%dT%H:%M:%S%.f%:z", "%Y-%m-%d %H:%M:%S%.f%:z"] {
        if let Ok(dt) = DateTime::parse_from_str(text, fmt) {
            return Some(dt.with_timezone(&Utc));
        }
    }
    for fmt in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(naive) = NaiveDateTime::parse_from_str(text, fmt) {
            return Some(Utc.from_utc_datetime(&naive));
        }
    }
    if let Ok(date) = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return date.and_hms_opt(0, 0, 0).map(|n| Utc.from_utc_datetime(&n));
    }
    None
}

/// The spelling flowstate writes: `2025-07-19T12:34:56.789012+00:00`. Always six fraction digits and an explicit
/// UTC offset, so values sort correctly as text among themselves, and Python's `datetime.fromisoformat` reads them
/// back as aware UTC datetimes.
pub fn format_timestamp(at: &DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%S%.6f+00:00").to_string()
}

/// Microseconds since the Unix epoch of an instant.
pub fn instant_micros(at: &DateTime<Utc>) -> i64 {
    at.timestamp_micros()
}

/// The instant of a microsecond count, if it is in chrono's range.
pub fn from_micros(us: i64) -> Option<DateTime<Utc>> {
    DateTime::<Utc>::from_timestamp_micros(us)
}

/// The sort key given to a NULL or unreadable timestamp: older than every real instant.
pub const UNKNOWN_INSTANT: i64 = i64::MIN;

/// The SQL expression giving the instant of a timestamp column in microseconds since the epoch (or
/// [`UNKNOWN_INSTANT`] when the text is NULL or not a timestamp).
///
/// Python writes six fraction digits or none. With six, the whole seconds come from SQLite's own parser
/// (`strftime('%s')`, which honours offsets and both separators) applied to the text *without* its fraction
/// (SQLite rounds fractions to milliseconds, which would carry `59.999999` into the next second), and the
/// microseconds are read from the text. Any other spelling goes through `julianday`, exact to the millisecond
/// SQLite keeps. The expression is deterministic, so the indexes in [`crate::schema`] are built on it and every
/// query that uses it verbatim can use them. It uses only functions SQLite has had since 3.20, so flujo's
/// Python, which maintains these indexes whenever it writes, handles it.
pub fn instant_sql(column: &str) -> String {
    format!(
        "COALESCE(CASE WHEN {c} GLOB \
         '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9][T ][0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]*' \
         AND substr({c}, 27, 1) NOT GLOB '[0-9]' \
         THEN CAST(strftime('%s', substr({c}, 1, 19) || substr({c}, 27)) AS INTEGER) * 1000000 \
         + CAST(substr({c}, 21, 6) AS INTEGER) \
         ELSE CAST(round((julianday({c}) - 2440587.5) * 86400000.0) AS INTEGER) * 1000 END, {unknown})",
        c = column,
        unknown = UNKNOWN_INSTANT
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn us(text: &str) -> i64 {
        parse_timestamp(text)
            .unwrap_or_else(|| panic!("{text} should parse"))
            .timestamp_micros()
    }

    #[test]
    fn every_flujo_spelling_is_the_same_instant() {
        let base = us("2025-07-19T12:34:56.789012");
        assert_eq!(us("2025-07-19T12:34:56.789012+00:00"), base);
        assert_eq!(us("2025-07-19 12:34:56.789012"), base);
        assert_eq!(us("2025-07-19T12:34:56.789012Z"), base);
        assert_eq!(us("2025-07-19T05:34:56.789012-07:00"), base);
        assert_eq!(us("2025-07-19T12:34:56") + 789_012, base);
        assert_eq!(us("2025-07-19T05:34:56-07:00") + 789_012, base);
        assert_eq!(parse_timestamp("yesterday"), None);
        assert_eq!(parse_timestamp(""), None);
    }

    #[test]
    fn canonical_spelling_round_trips_and_sorts() {
        let a = parse_timestamp("2025-07-19T12:34:56").unwrap();
        let b = parse_timestamp("2025-07-19T12:34:56.000001").unwrap();
        assert_eq!(format_timestamp(&a), "2025-07-19T12:34:56.000000+00:00");
        assert!(format_timestamp(&a) < format_timestamp(&b));
        assert_eq!(parse_timestamp(&format_timestamp(&b)), Some(b));
    }
}
