//! Times on the command line: an instant in any spelling the store reads, or a span of time before now (read
//! by [`flowstate_model::Span`], the parser the dashboard's `?stuck=` and `?window=` use too).

use chrono::{DateTime, Duration, Utc};
use flowstate_model::{Span, SpanError};
use flowstate_store::time::parse_timestamp;

/// A `--since`/`--until` value. Relative values are resolved against the store's clock, not the parse time.
#[derive(Debug, Clone, PartialEq)]
pub enum When {
    /// An instant.
    At(DateTime<Utc>),
    /// This long before now (`30m`, `24h`, `7d`, `2w`).
    Ago(Duration),
}

impl When {
    /// clap's value parser.
    pub fn parse_arg(text: &str) -> Result<When, String> {
        let t = text.trim();
        match Span::parse(t) {
            Ok(span) => return Ok(When::Ago(span.duration())),
            // A span, but longer than any stored time can be old.
            Err(e @ SpanError::TooLong { .. }) => return Err(e.to_string()),
            // Not a span: maybe an instant.
            Err(_) => {}
        }
        parse_timestamp(t).map(When::At).ok_or_else(|| {
            format!(
                "{text:?} is not a time: use RFC 3339 (2026-01-31T12:00:00Z), a date (2026-01-31), \
                 or a span of time before now (30m, 24h, 7d, 2w)"
            )
        })
    }

    /// The instant this value names, as of `now`.
    pub fn resolve(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        match self {
            When::At(at) => *at,
            When::Ago(d) => now - *d,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn durations_and_instants() {
        let now = Utc.with_ymd_and_hms(2026, 1, 31, 12, 0, 0).unwrap();
        let at = |t: &str| When::parse_arg(t).unwrap().resolve(now);
        assert_eq!(at("24h"), now - Duration::hours(24));
        assert_eq!(at("7d"), now - Duration::days(7));
        assert_eq!(at("30m"), now - Duration::minutes(30));
        assert_eq!(at("2w"), now - Duration::days(14));
        assert_eq!(at("45s"), now - Duration::seconds(45));
        assert_eq!(at("90min"), now - Duration::minutes(90));
        assert_eq!(at("2026-01-30T12:00:00Z"), now - Duration::days(1));
        assert_eq!(at("2026-01-30T14:00:00+02:00"), now - Duration::days(1));
        assert_eq!(at("2026-01-30 12:00:00"), now - Duration::days(1));
        assert_eq!(at("2026-01-30"), now - Duration::hours(36));
        for bad in [
            "yesterday",
            "",
            "h",
            "-5h",
            "5x",
            "99999999999999999999d",
            "100000000w",
        ] {
            assert!(When::parse_arg(bad).is_err(), "{bad:?} should be refused");
        }
        let err = When::parse_arg("100000000w").unwrap_err();
        assert!(err.contains("too long"), "a span, refused as too long: {err}");
        let err = When::parse_arg("5x").unwrap_err();
        assert!(err.contains("not a time") && err.contains("2w"), "{err}");
    }
}
