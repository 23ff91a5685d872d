//! Spans of time operators put in the address bar: the Failures page's window (`?window=24h`) and the
//! Overview's stuck-run threshold (`?stuck=2h`). Pure code: the same parsing and labels on the server and in the
//! browser. Both read their value with [`flowstate_model::Span`], the parser the CLI's `--since` uses too, so
//! the units are the same everywhere (`s`, `m`/`min`, `h`, `d`, `w`).

use chrono::{DateTime, NaiveDate, NaiveDateTime, Timelike, Utc};
use flowstate_model::Span;
use serde::{Deserialize, Serialize};

/// A time window operators pick in the address bar: the last span of time (`?window=3h`, `90m`, `7d`, from 1
/// minute to 365 days) or everything since an instant (`?since=2026-03-14T12:00`, RFC 3339 or a
/// `datetime-local` value read as UTC). The default is the last 24 hours. The Failures page reads failures
/// whose last update lies in it; the Pipelines page its figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Window {
    /// The last `seconds` seconds before the page is read (60 to [`Window::MAX_SECONDS`]).
    Last {
        /// The span in seconds.
        seconds: i64,
    },
    /// Everything since this instant.
    Since(DateTime<Utc>),
}

impl Default for Window {
    /// The last 24 hours.
    fn default() -> Self {
        Window::Last { seconds: 86_400 }
    }
}

/// Why a window in a URL is not one: the parameter to name and a reason in words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowError {
    /// `window` or `since`.
    pub param: &'static str,
    /// For people.
    pub reason: String,
}

impl Window {
    /// The URL parameter of a span (`window=3h`).
    pub const PARAM: &'static str = "window";
    /// The URL parameter of a start instant (`since=2026-03-14T12:00`).
    pub const SINCE_PARAM: &'static str = "since";
    /// The shortest span: one minute.
    pub const MIN_SECONDS: i64 = 60;
    /// The longest span: 365 days.
    pub const MAX_SECONDS: i64 = 365 * 86_400;
    /// The shortcuts a picker offers, shortest first: 1 h, 24 h, 7 d, 30 d.
    pub const SHORTCUTS: [Window; 4] = [
        Window::Last { seconds: 3_600 },
        Window::Last { seconds: 86_400 },
        Window::Last { seconds: 7 * 86_400 },
        Window::Last { seconds: 30 * 86_400 },
    ];

    /// The last `seconds` seconds; `None` outside 1 minute to 365 days.
    pub fn last(seconds: i64) -> Option<Window> {
        (Self::MIN_SECONDS..=Self::MAX_SECONDS)
            .contains(&seconds)
            .then_some(Window::Last { seconds })
    }

    /// The window of a URL's `window` and `since` values; both absent or blank mean the default (24 h).
    /// `window` is a span ([`Span::parse`]: `3h`, `90m`, `7d`, `1w`, `3600s`) from 1 minute to 365 days;
    /// `since` an instant: RFC 3339 (`2026-03-14T12:00:00Z`, `+02:00`), or a date and time without offset
    /// (`2026-03-14T12:00`, what `<input type="datetime-local">` sends), or a date, both read as UTC.
    ///
    /// # Errors
    /// [`WindowError`] naming the parameter: a value that is not a span or not an instant, a span outside
    /// 1 minute to 365 days, or both parameters given.
    pub fn parse(window: Option<&str>, since: Option<&str>) -> Result<Window, WindowError> {
        let window = window.map(str::trim).filter(|v| !v.is_empty());
        let since = since.map(str::trim).filter(|v| !v.is_empty());
        match (window, since) {
            (None, None) => Ok(Window::default()),
            (Some(_), Some(_)) => Err(WindowError {
                param: Self::SINCE_PARAM,
                reason: "give either a window (window=3h) or a start (since=2026-03-14T12:00), not both"
                    .into(),
            }),
            (Some(value), None) => Self::parse_span(value).map_err(|reason| WindowError {
                param: Self::PARAM,
                reason,
            }),
            (None, Some(value)) => parse_instant(value)
                .map(Window::Since)
                .ok_or_else(|| WindowError {
                    param: Self::SINCE_PARAM,
                    reason: format!(
                        "“{value}” is not a date and time; use RFC 3339 (2026-03-14T12:00:00Z) or \
                     YYYY-MM-DDTHH:MM, read as UTC"
                    ),
                }),
        }
    }

    /// A span from `?window=`, 1 minute to 365 days.
    fn parse_span(value: &str) -> Result<Window, String> {
        let out_of_range = || format!("“{value}” is out of range; a window is 1m to 365d, e.g. 90m, 3h, 7d");
        let seconds = match Span::parse(value) {
            Ok(span) => span.seconds(),
            Err(flowstate_model::SpanError::TooLong { .. }) => return Err(out_of_range()),
            Err(e) => return Err(format!("{e}; a window is 1m to 365d, e.g. 90m, 3h, 7d")),
        };
        Window::last(seconds).ok_or_else(out_of_range)
    }

    /// The window's start when the page is read at `now`.
    pub fn since(self, now: DateTime<Utc>) -> DateTime<Utc> {
        match self {
            Window::Last { seconds } => now - chrono::Duration::seconds(seconds),
            Window::Since(at) => at,
        }
    }

    /// The URL parameter that holds this window: [`Window::PARAM`] or [`Window::SINCE_PARAM`].
    pub fn param_name(self) -> &'static str {
        match self {
            Window::Last { .. } => Self::PARAM,
            Window::Since(_) => Self::SINCE_PARAM,
        }
    }

    /// The canonical URL value: a span in the largest unit that divides it (`90m`, `3h`, `7d`, `90s`; one day
    /// is `24h`), or the instant as RFC 3339 in UTC (`2026-03-14T12:00:00Z`).
    pub fn as_param(self) -> String {
        match self {
            Window::Last { seconds: s } => {
                // One day reads `24h`, as the shortcut always did; longer whole days in days.
                if s % 86_400 == 0 && s > 86_400 {
                    format!("{}d", s / 86_400)
                } else if s % 3_600 == 0 {
                    format!("{}h", s / 3_600)
                } else if s % 60 == 0 {
                    format!("{}m", s / 60)
                } else {
                    format!("{s}s")
                }
            }
            Window::Since(at) => at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
        }
    }

    /// `window=3h` or `since=2026-03-14T12%3A00%3A00Z`: the query pair of this window, encoded.
    pub fn query(self) -> String {
        format!(
            "{}={}",
            self.param_name(),
            flowstate_model::url::url_encode(&self.as_param())
        )
    }

    /// For people, short: `last 3 h`, `last 90 min`, `since 2026-03-14 12:00 UTC`.
    pub fn label(self) -> String {
        match self {
            Window::Last { .. } => format!("last {}", self.span_label()),
            Window::Since(at) => format!("since {}", instant_label(at)),
        }
    }

    /// For a sentence: `in the last 3 h`, `since 2026-03-14 12:00 UTC`.
    pub fn phrase(self) -> String {
        match self {
            Window::Last { .. } => format!("in the {}", self.label()),
            Window::Since(_) => self.label(),
        }
    }

    /// The span alone (`3 h`, `90 min`, `7 d`, `90 s`); for a start instant, `since …` as in [`Window::label`].
    pub fn span_label(self) -> String {
        match self {
            Window::Last { .. } => {
                let p = self.as_param();
                let (n, unit) = p.split_at(p.len() - 1);
                match unit {
                    "m" => format!("{n} min"),
                    other => format!("{n} {other}"),
                }
            }
            Window::Since(_) => self.label(),
        }
    }

    /// The value for an `<input type="datetime-local">` (`2026-03-14T12:00`, UTC, 24-hour) of a start instant;
    /// `None` for a span.
    pub fn since_input(self) -> Option<String> {
        match self {
            Window::Since(at) => Some(datetime_local(at)),
            Window::Last { .. } => None,
        }
    }

    /// The span's value for a text field (`3h`); `None` for a start instant.
    pub fn span_input(self) -> Option<String> {
        matches!(self, Window::Last { .. }).then(|| self.as_param())
    }

    /// True for the default (24 h).
    pub fn is_default(self) -> bool {
        self == Window::default()
    }

    /// True for one of [`Window::SHORTCUTS`].
    pub fn is_shortcut(self) -> bool {
        Self::SHORTCUTS.contains(&self)
    }
}

/// An instant as a `datetime-local` value: `2026-03-14T12:00`, with seconds when it has some.
pub fn datetime_local(at: DateTime<Utc>) -> String {
    if at.second() == 0 && at.nanosecond() == 0 {
        at.format("%Y-%m-%dT%H:%M").to_string()
    } else {
        at.format("%Y-%m-%dT%H:%M:%S").to_string()
    }
}

/// An instant for people, 24-hour UTC: `2026-03-14 12:00 UTC`, with seconds when it has some.
fn instant_label(at: DateTime<Utc>) -> String {
    if at.second() == 0 && at.nanosecond() == 0 {
        at.format("%Y-%m-%d %H:%M UTC").to_string()
    } else {
        at.format("%Y-%m-%d %H:%M:%S UTC").to_string()
    }
}

/// An instant from a URL: RFC 3339 (`Z` or an offset, `T` or a space), a date and time without offset read as
/// UTC (what `<input type="datetime-local">` sends, with or without seconds), or a date (midnight UTC). An
/// unencoded `+01:00` arrives as ` 01:00` and is read as the offset it was.
pub fn parse_instant(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    if text.len() > 64 {
        return None;
    }
    let read = |text: &str| -> Option<DateTime<Utc>> {
        if let Ok(dt) = DateTime::parse_from_rfc3339(text) {
            return Some(dt.with_timezone(&Utc));
        }
        for fmt in [
            "%Y-%m-%dT%H:%M:%S%.f%:z",
            "%Y-%m-%d %H:%M:%S%.f%:z",
            "%Y-%m-%dT%H:%M%:z",
        ] {
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
                return Some(naive.and_utc());
            }
        }
        NaiveDate::parse_from_str(text, "%Y-%m-%d")
            .ok()
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .map(|n| n.and_utc())
    };
    read(text).or_else(|| {
        let (head, tail) = text.rsplit_once(' ')?;
        let offset = tail.len() == 5 && tail.as_bytes()[2] == b':' && head.contains('T');
        offset.then(|| read(&format!("{head}+{tail}"))).flatten()
    })
}

/// How long a running or paused run may go without an update before the Overview calls it stuck.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StuckThreshold {
    /// The threshold in seconds.
    pub seconds: i64,
}

impl Default for StuckThreshold {
    /// One hour: flujo steps that call agents finish in minutes, so an hour without an update is worth a look.
    fn default() -> Self {
        StuckThreshold { seconds: 3600 }
    }
}

impl StuckThreshold {
    /// The URL parameter that holds the threshold.
    pub const PARAM: &'static str = "stuck";
    /// The shortest threshold accepted: one minute.
    pub const MIN_SECONDS: i64 = 60;
    /// The longest threshold accepted: 365 days.
    pub const MAX_SECONDS: i64 = 365 * 24 * 3600;

    /// A threshold from a URL: a span of time ([`Span::parse`]: a whole number and `s`, `m`, `h`, `d` or `w`),
    /// e.g. `90m`, `2h`, `1d`, from 1 minute to 365 days. Absent or empty means the default (1 h).
    ///
    /// # Errors
    /// A reason, in words, for anything else or a value outside 1 minute to 365 days.
    pub fn parse(value: Option<&str>) -> Result<StuckThreshold, String> {
        let Some(value) = value.map(str::trim).filter(|v| !v.is_empty()) else {
            return Ok(StuckThreshold::default());
        };
        let out_of_range = || format!("“{value}” is out of range; use 1m to 365d");
        let seconds = match Span::parse(value) {
            Ok(span) => span.seconds(),
            Err(flowstate_model::SpanError::TooLong { .. }) => return Err(out_of_range()),
            Err(e) => return Err(e.to_string()),
        };
        if !(Self::MIN_SECONDS..=Self::MAX_SECONDS).contains(&seconds) {
            return Err(out_of_range());
        }
        Ok(StuckThreshold { seconds })
    }

    /// The canonical URL value: `90m`, `2h`, `1d` (the largest unit that divides it).
    pub fn as_param(self) -> String {
        let s = self.seconds;
        if s % (24 * 3600) == 0 {
            format!("{}d", s / (24 * 3600))
        } else if s % 3600 == 0 {
            format!("{}h", s / 3600)
        } else {
            format!("{}m", s / 60)
        }
    }

    /// For people: `90 min`, `2 h`, `1 d`.
    pub fn label(self) -> String {
        let p = self.as_param();
        let (n, unit) = p.split_at(p.len() - 1);
        match unit {
            "m" => format!("{n} min"),
            other => format!("{n} {other}"),
        }
    }

    /// True for the default (1 h).
    pub fn is_default(self) -> bool {
        self == StuckThreshold::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
    }

    fn span(window: Option<&str>) -> Result<Window, WindowError> {
        Window::parse(window, None)
    }

    #[test]
    fn windows_default_to_a_day_and_take_any_span_from_a_minute_to_a_year() {
        assert_eq!(Window::parse(None, None), Ok(Window::default()));
        assert_eq!(
            Window::parse(Some(" "), Some("")),
            Ok(Window::Last { seconds: 86_400 })
        );
        assert_eq!(span(Some("3h")), Ok(Window::Last { seconds: 10_800 }));
        assert_eq!(span(Some("90m")), Ok(Window::Last { seconds: 5_400 }));
        assert_eq!(span(Some("7d")), Ok(Window::Last { seconds: 604_800 }));
        assert_eq!(span(Some("1H")), Ok(Window::Last { seconds: 3_600 }));
        assert_eq!(span(Some("1w")), Ok(Window::Last { seconds: 604_800 }));
        assert_eq!(span(Some("1m")), Ok(Window::Last { seconds: 60 }));
        assert_eq!(
            span(Some("365d")),
            Ok(Window::Last {
                seconds: 365 * 86_400
            })
        );
        // Every spelling of a span gets one canonical value.
        assert_eq!(span(Some("1440m")).unwrap().as_param(), "24h");
        assert_eq!(span(Some("3600s")).unwrap().as_param(), "1h");
        assert_eq!(span(Some("90s")).unwrap().as_param(), "90s");
        assert_eq!(span(Some("2w")).unwrap().as_param(), "14d");
        for bad in [
            "2",
            "h",
            "2x",
            "-1h",
            "0m",
            "59s",
            "366d",
            "53w",
            "99999999999999999999d",
            "1.5h",
            "3h;drop",
        ] {
            let err = span(Some(bad)).unwrap_err();
            assert_eq!(err.param, "window", "{bad}");
            assert!(err.reason.contains("365d"), "{bad}: {}", err.reason);
        }
    }

    #[test]
    fn shortcuts_are_the_old_four_windows() {
        let params: Vec<String> = Window::SHORTCUTS.iter().map(|w| w.as_param()).collect();
        assert_eq!(params, ["1h", "24h", "7d", "30d"]);
        assert_eq!(span(Some("1d")).unwrap().as_param(), "24h");
        assert_eq!(span(Some("48h")).unwrap().as_param(), "2d");
        assert!(Window::default().is_shortcut() && Window::default().is_default());
        assert!(!span(Some("3h")).unwrap().is_shortcut());
        assert_eq!(span(Some("24h")), Ok(Window::default()));
        assert_eq!(Window::SHORTCUTS[3].label(), "last 30 d");
    }

    #[test]
    fn since_takes_rfc3339_and_datetime_local_values_as_utc() {
        let noon = at("2026-03-14T12:00:00Z");
        for text in [
            "2026-03-14T12:00",
            "2026-03-14T12:00:00",
            "2026-03-14 12:00",
            "2026-03-14T12:00:00Z",
            "2026-03-14T13:00:00+01:00",
            "2026-03-14T13:00:00 01:00",
            "2026-03-14T08:00-04:00",
            " 2026-03-14T12:00:00.000Z ",
        ] {
            assert_eq!(Window::parse(None, Some(text)), Ok(Window::Since(noon)), "{text}");
        }
        assert_eq!(
            Window::parse(None, Some("2026-03-14")),
            Ok(Window::Since(at("2026-03-14T00:00:00Z")))
        );
        for bad in [
            "yesterday",
            "2026-13-01",
            "3h",
            "2026-03-14T25:00",
            &"9".repeat(5000),
        ] {
            let err = Window::parse(None, Some(bad)).unwrap_err();
            assert_eq!(err.param, "since");
        }
        let both = Window::parse(Some("3h"), Some("2026-03-14T12:00")).unwrap_err();
        assert_eq!(both.param, "since");
        assert!(both.reason.contains("not both"), "{}", both.reason);
    }

    #[test]
    fn a_window_gives_its_start_its_param_and_its_labels() {
        let now = at("2026-03-14T12:00:00Z");
        let three_hours = span(Some("3h")).unwrap();
        assert_eq!(three_hours.since(now), at("2026-03-14T09:00:00Z"));
        assert_eq!(three_hours.param_name(), "window");
        assert_eq!(three_hours.as_param(), "3h");
        assert_eq!(three_hours.query(), "window=3h");
        assert_eq!(three_hours.label(), "last 3 h");
        assert_eq!(three_hours.phrase(), "in the last 3 h");
        assert_eq!(three_hours.span_input().as_deref(), Some("3h"));
        assert_eq!(three_hours.since_input(), None);
        assert_eq!(span(Some("90m")).unwrap().label(), "last 90 min");

        let since = Window::parse(None, Some("2026-03-13T18:30")).unwrap();
        assert_eq!(since.since(now), at("2026-03-13T18:30:00Z"));
        assert_eq!(since.param_name(), "since");
        assert_eq!(since.as_param(), "2026-03-13T18:30:00Z");
        assert_eq!(since.query(), "since=2026-03-13T18%3A30%3A00Z");
        // 24-hour clock, UTC named.
        assert_eq!(since.label(), "since 2026-03-13 18:30 UTC");
        assert_eq!(since.phrase(), "since 2026-03-13 18:30 UTC");
        assert_eq!(since.since_input().as_deref(), Some("2026-03-13T18:30"));
        assert_eq!(since.span_input(), None);
        // The canonical value reads back as the same window.
        for w in [
            three_hours,
            since,
            Window::default(),
            Window::Last { seconds: 90 },
        ] {
            let (window, since) = match w.param_name() {
                "window" => (Some(w.as_param()), None),
                _ => (None, Some(w.as_param())),
            };
            assert_eq!(Window::parse(window.as_deref(), since.as_deref()), Ok(w));
        }
        let with_seconds = Window::parse(None, Some("2026-03-13T18:30:05.25Z")).unwrap();
        assert_eq!(with_seconds.as_param(), "2026-03-13T18:30:05.250Z");
        assert_eq!(with_seconds.label(), "since 2026-03-13 18:30:05 UTC");
    }

    #[test]
    fn stuck_thresholds_parse_with_units_and_limits() {
        assert_eq!(StuckThreshold::parse(None), Ok(StuckThreshold::default()));
        assert_eq!(StuckThreshold::parse(Some("2h")).unwrap().seconds, 7200);
        assert_eq!(StuckThreshold::parse(Some("90m")).unwrap().seconds, 5400);
        assert_eq!(StuckThreshold::parse(Some(" 1d ")).unwrap().seconds, 86_400);
        // The CLI's units too: one parser.
        assert_eq!(StuckThreshold::parse(Some("1w")).unwrap().seconds, 604_800);
        assert_eq!(StuckThreshold::parse(Some("3600s")).unwrap().as_param(), "1h");
        assert_eq!(StuckThreshold::parse(Some("120m")).unwrap().as_param(), "2h");
        assert_eq!(StuckThreshold::parse(Some("90m")).unwrap().label(), "90 min");
        assert_eq!(StuckThreshold::default().label(), "1 h");
        assert_eq!(StuckThreshold::default().as_param(), "1h");
        for bad in [
            "2",
            "h",
            "2x",
            "-1h",
            "0m",
            "400d",
            "99999999999999999999d",
            "1.5h",
        ] {
            assert!(StuckThreshold::parse(Some(bad)).is_err(), "{bad} must be refused");
        }
    }
}
