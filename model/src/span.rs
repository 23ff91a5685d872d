//! Spans of time as people type them: a whole number and a unit, `30m`, `24h`, `7d`, `2w`. The one parser for
//! the CLI (`--since 7d`) and the pages (`?stuck=2h`, `?window=24h`), so both accept the same units.

use serde::{Deserialize, Serialize};

/// The units a span may use, with their length in seconds. Units are case-insensitive.
pub const UNITS: [(&str, i64); 6] = [
    ("s", 1),
    ("m", 60),
    ("min", 60),
    ("h", 3_600),
    ("d", 86_400),
    ("w", 7 * 86_400),
];

/// The longest span accepted: 10,000 years of 366 days, more than any stored time can be old (and far from
/// overflowing a `chrono::Duration`).
pub const MAX_SECONDS: i64 = 10_000 * 366 * 86_400;

/// A span of time, in whole seconds, from zero to [`MAX_SECONDS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Span {
    seconds: i64,
}

/// Why a text is not a span.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpanError {
    /// Nothing but blanks.
    #[error("no span of time given; write a whole number and a unit, like 30m, 24h, 7d or 2w")]
    Empty,
    /// Not a whole number followed by a unit (a sign, a fraction, no number, no unit, other text).
    #[error("“{text}” is not a span of time; write a whole number and a unit (s, m, h, d or w), like 30m, 24h, 7d or 2w")]
    Malformed {
        /// The text as given.
        text: String,
    },
    /// A whole number followed by something that is not a unit.
    #[error("“{text}” has no known unit (“{unit}”); use s, m, h, d or w")]
    UnknownUnit {
        /// The text as given.
        text: String,
        /// What stood where the unit should be.
        unit: String,
    },
    /// A well-formed span longer than [`MAX_SECONDS`].
    #[error("“{text}” is too long; a span can be at most 10,000 years")]
    TooLong {
        /// The text as given.
        text: String,
    },
}

impl Span {
    /// A span of `seconds`; `None` when negative or longer than [`MAX_SECONDS`].
    pub fn from_seconds(seconds: i64) -> Option<Span> {
        (0..=MAX_SECONDS).contains(&seconds).then_some(Span { seconds })
    }

    /// The span in seconds.
    pub fn seconds(self) -> i64 {
        self.seconds
    }

    /// The span as a `chrono::Duration`.
    pub fn duration(self) -> chrono::Duration {
        chrono::Duration::seconds(self.seconds)
    }

    /// Reads a span: blanks around it are ignored, then a whole number, optional blanks and one of [`UNITS`]
    /// (any case): `30m`, `90 min`, `24h`, `7d`, `2w`, `45s`.
    ///
    /// # Errors
    /// [`SpanError`] saying what is wrong: empty, malformed, unknown unit, or too long.
    pub fn parse(text: &str) -> Result<Span, SpanError> {
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Err(SpanError::Empty);
        }
        let malformed = || SpanError::Malformed {
            text: text.to_string(),
        };
        let split = trimmed
            .find(|c: char| !c.is_ascii_digit())
            .ok_or_else(malformed)?;
        let (digits, unit) = (&trimmed[..split], trimmed[split..].trim_start());
        if digits.is_empty() {
            return Err(malformed());
        }
        let per_unit = UNITS
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(unit))
            .map(|(_, seconds)| *seconds)
            .ok_or_else(|| {
                if unit.chars().all(|c| c.is_alphabetic()) {
                    SpanError::UnknownUnit {
                        text: text.to_string(),
                        unit: unit.to_string(),
                    }
                } else {
                    malformed()
                }
            })?;
        let too_long = || SpanError::TooLong {
            text: text.to_string(),
        };
        // Only digits: a failed parse is an overflow.
        let number: i64 = digits.parse().map_err(|_| too_long())?;
        number
            .checked_mul(per_unit)
            .and_then(Span::from_seconds)
            .ok_or_else(too_long)
    }
}

impl std::str::FromStr for Span {
    type Err = SpanError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Span::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(text: &str) -> i64 {
        Span::parse(text)
            .unwrap_or_else(|e| panic!("{text:?}: {e}"))
            .seconds()
    }

    #[test]
    fn every_unit_reads_in_any_case_with_or_without_a_blank() {
        assert_eq!(secs("45s"), 45);
        assert_eq!(secs("30m"), 1_800);
        assert_eq!(secs("90min"), 5_400);
        assert_eq!(secs("90 MIN"), 5_400);
        assert_eq!(secs("24h"), 86_400);
        assert_eq!(secs("24H"), 86_400);
        assert_eq!(secs("7d"), 604_800);
        assert_eq!(secs(" 2w "), 1_209_600);
        assert_eq!(secs("5 h"), 18_000);
        assert_eq!(secs("0m"), 0);
        assert_eq!(secs("007d"), 604_800);
        assert_eq!(Span::parse("7d").unwrap().duration(), chrono::Duration::days(7));
        for (unit, seconds) in UNITS {
            assert_eq!(secs(&format!("3{unit}")), 3 * seconds, "{unit}");
        }
    }

    #[test]
    fn bad_input_gets_a_typed_error() {
        assert_eq!(Span::parse(""), Err(SpanError::Empty));
        assert_eq!(Span::parse("   "), Err(SpanError::Empty));
        for malformed in ["h", "-5h", "+5h", "1.5h", "5", "12 34h", "5h!", "٣h", "5hh1"] {
            assert!(
                matches!(
                    Span::parse(malformed),
                    Err(SpanError::Malformed { .. } | SpanError::UnknownUnit { .. })
                ),
                "{malformed:?}: {:?}",
                Span::parse(malformed)
            );
        }
        assert_eq!(
            Span::parse("5x"),
            Err(SpanError::UnknownUnit {
                text: "5x".into(),
                unit: "x".into()
            })
        );
        assert!(
            matches!(Span::parse("1y"), Err(SpanError::UnknownUnit { .. })),
            "no years"
        );
        assert!(matches!(Span::parse("1.5h"), Err(SpanError::Malformed { .. })));
        assert!(matches!(Span::parse("-5h"), Err(SpanError::Malformed { .. })));
        for too_long in ["99999999999999999999d", "100000000w", "9223372036854775807s"] {
            assert_eq!(
                Span::parse(too_long),
                Err(SpanError::TooLong {
                    text: too_long.into()
                })
            );
        }
        assert_eq!(
            Span::parse(&format!("{MAX_SECONDS}s")).unwrap().seconds(),
            MAX_SECONDS
        );
        assert!(Span::parse(&format!("{}s", MAX_SECONDS + 1)).is_err());
        let message = Span::parse("soon").unwrap_err().to_string();
        assert!(message.contains("soon") && message.contains("7d"), "{message}");
    }
}
