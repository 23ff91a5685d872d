//! Times on the command line: an instant in any spelling the store reads, or a duration before now.

use chrono::{DateTime, Duration, Utc};
use flowstate_store::time::parse_timestamp;

/// A `--since`/`--until` value. Relative values are resolved against the store's clock, not the parse time.
#[derive(Debug, Clone, PartialEq)]
pub enum When {
    /// An instant.
    At(DateTime<Utc>),
    /// This long before now (`30m`, `24h`, `7d`).
    Ago(Duration),
}

impl When {
    /// clap's value parser.
    pub fn parse_arg(text: &str) -> Result<When, String> {
        let t = text.trim();
        if let Some(ago) = parse_duration(t) {
            return ago.map(When::Ago);
        }
        parse_timestamp(t).map(When::At).ok_or_else(|| {
            format!(
                "{text:?} is not a time: use RFC 3339 (2026-01-31T12:00:00Z), a date (2026-01-31), \
                 or a duration before now (30m, 24h, 7d)"
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

/// `None` when the text does not look like a duration at all; `Some(Err)` when it does but is unusable.
fn parse_duration(text: &str) -> Option<Result<Duration, String>> {
    let unit = text.chars().last()?;
    let digits = text[..text.len() - unit.len_utf8()].trim_end();
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let seconds_per = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3_600,
        'd' => 86_400,
        'w' => 7 * 86_400,
        _ => return None,
    };
    // Ten thousand years is more than any stored time can be old.
    const MAX_SECONDS: i64 = 10_000 * 366 * 86_400;
    let too_long = || format!("{text:?} is too long ago");
    Some(
        digits
            .parse::<i64>()
            .ok()
            .and_then(|n| n.checked_mul(seconds_per))
            .filter(|s| *s <= MAX_SECONDS)
            .map(Duration::seconds)
            .ok_or_else(too_long),
    )
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
    }
}
