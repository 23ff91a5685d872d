//! Spans of time operators put in the address bar: the Failures page's window (`?window=24h`) and the
//! Overview's stuck-run threshold (`?stuck=2h`). Pure code: the same parsing and labels on the server and in the
//! browser. Both read their value with [`flowstate_model::Span`], the parser the CLI's `--since` uses too, so
//! the units are the same everywhere (`s`, `m`/`min`, `h`, `d`, `w`).

use flowstate_model::Span;
use serde::{Deserialize, Serialize};

/// The time window of the Failures page: failures whose last update lies within it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum FailureWindow {
    /// The last hour.
    Hour,
    /// The last 24 hours (the default).
    #[default]
    Day,
    /// The last 7 days.
    Week,
    /// The last 30 days.
    Month,
}

impl FailureWindow {
    /// The URL parameter that holds the window.
    pub const PARAM: &'static str = "window";
    /// Every window, shortest first, as the selector shows them.
    pub const ALL: [FailureWindow; 4] = [
        FailureWindow::Hour,
        FailureWindow::Day,
        FailureWindow::Week,
        FailureWindow::Month,
    ];

    /// The value in the URL: `1h`, `24h`, `7d`, `30d`.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureWindow::Hour => "1h",
            FailureWindow::Day => "24h",
            FailureWindow::Week => "7d",
            FailureWindow::Month => "30d",
        }
    }

    /// For people: `1 h`, `24 h`, `7 d`, `30 d`.
    pub fn label(self) -> &'static str {
        match self {
            FailureWindow::Hour => "1 h",
            FailureWindow::Day => "24 h",
            FailureWindow::Week => "7 d",
            FailureWindow::Month => "30 d",
        }
    }

    /// The window's length in seconds.
    pub fn seconds(self) -> i64 {
        match self {
            FailureWindow::Hour => 3600,
            FailureWindow::Day => 24 * 3600,
            FailureWindow::Week => 7 * 24 * 3600,
            FailureWindow::Month => 30 * 24 * 3600,
        }
    }

    /// The window named in a URL, in any spelling of its length (`24h`, `1d`, `1440m`); absent or empty means
    /// the default (24 h).
    ///
    /// # Errors
    /// A reason, in words, when the value is not a span of time or is none of `1h`, `24h`, `7d`, `30d`.
    pub fn parse(value: Option<&str>) -> Result<FailureWindow, String> {
        let Some(value) = value.map(str::trim).filter(|v| !v.is_empty()) else {
            return Ok(FailureWindow::default());
        };
        let not_a_window = || format!("“{value}” is not a window; use one of 1h, 24h, 7d, 30d");
        let span = Span::parse(value).map_err(|_| not_a_window())?;
        FailureWindow::ALL
            .into_iter()
            .find(|w| w.seconds() == span.seconds())
            .ok_or_else(not_a_window)
    }
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

    #[test]
    fn windows_parse_and_default_to_a_day() {
        assert_eq!(FailureWindow::parse(None), Ok(FailureWindow::Day));
        assert_eq!(FailureWindow::parse(Some("")), Ok(FailureWindow::Day));
        assert_eq!(FailureWindow::parse(Some("7d")), Ok(FailureWindow::Week));
        assert_eq!(FailureWindow::parse(Some("1H")), Ok(FailureWindow::Hour));
        // The same span in another unit names the same window.
        assert_eq!(FailureWindow::parse(Some("1d")), Ok(FailureWindow::Day));
        assert_eq!(FailureWindow::parse(Some("60m")), Ok(FailureWindow::Hour));
        assert_eq!(FailureWindow::parse(Some("1w")), Ok(FailureWindow::Week));
        assert!(
            FailureWindow::parse(Some("2h")).is_err(),
            "a span, but not a window"
        );
        let err = FailureWindow::parse(Some("bogus")).unwrap_err();
        assert!(err.contains("bogus") && err.contains("24h"), "{err}");
        for w in FailureWindow::ALL {
            assert_eq!(FailureWindow::parse(Some(w.as_str())), Ok(w));
        }
        assert_eq!(FailureWindow::Month.seconds(), 2_592_000);
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
