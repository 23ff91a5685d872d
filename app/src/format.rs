//! Small formatting helpers shared by pages (same output on the server and in the browser, so hydration
//! matches).

/// `1234567` → `1,234,567`.
pub fn count(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    if n < 0 {
        out.push('-');
    }
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// How many runs a list matches, for people: `1 run`, `1,234 runs`, `more than 10,000 runs` (a count that
/// stopped at its bound), or, when even that could not be counted in time, that it was not counted.
pub fn run_total(count: u64, exact: bool) -> String {
    let n = i64::try_from(count).unwrap_or(i64::MAX);
    match (count, exact) {
        (1, true) => "1 run".into(),
        (_, true) => format!("{} runs", self::count(n)),
        (0, false) => "runs not counted (too many to count quickly)".into(),
        (_, false) => format!("more than {} runs", self::count(n)),
    }
}

/// Memory in MB for people: `87.5 MB`, `1,204 MB`, `—` for none.
pub fn memory_mb(mb: Option<f64>) -> String {
    match mb {
        Some(mb) if (0.0..1000.0).contains(&mb) => format!("{mb:.1} MB"),
        Some(mb) if mb.is_finite() && mb >= 0.0 => format!("{} MB", count(mb.round().min(9e18) as i64)),
        _ => "—".into(),
    }
}

/// A duration in milliseconds for people: `850 ms`, `12.3 s`, `4 min 05 s`, `2 h 03 min`.
pub fn duration_ms(ms: f64) -> String {
    if !ms.is_finite() || ms < 0.0 {
        return "—".into();
    }
    if ms < 1000.0 {
        return format!("{} ms", ms.round() as i64);
    }
    let secs = ms / 1000.0;
    if secs < 60.0 {
        return format!("{secs:.1} s");
    }
    let total = secs.round() as i64;
    if total < 3600 {
        return format!("{} min {:02} s", total / 60, total % 60);
    }
    format!("{} h {:02} min", total / 3600, (total % 3600) / 60)
}

/// A size in bytes for people (1024-based): `830 B`, `4.0 KB`, `12.3 MB`, `1.50 GB`; `—` when negative.
pub fn bytes(n: i64) -> String {
    const K: f64 = 1024.0;
    if n < 0 {
        return "—".into();
    }
    let f = n as f64;
    if f < K {
        format!("{n} B")
    } else if f < K * K {
        format!("{:.1} KB", f / K)
    } else if f < K * K * K {
        format!("{:.1} MB", f / (K * K))
    } else {
        format!("{:.2} GB", f / (K * K * K))
    }
}

/// Percent-encodes a value for a URL query or a path segment (declared in `flowstate_model::url`).
pub use flowstate_model::url::url_encode;

/// The address of a run's page, `/runs/{id}`, or `/run?id={id}` for the ids a path cannot carry: browsers
/// resolve the segments `.` and `..` (also spelled `%2E`) before asking, and leptos_router decodes a path
/// parameter twice (an id holding `%2F` would come out as `/`). The run page reads `id` from the raw query with
/// [`query_value`], decoded once.
pub fn run_href(run_id: &str) -> String {
    if run_id == "." || run_id == ".." || run_id.contains('%') {
        format!("/run?id={}", url_encode(run_id))
    } else {
        format!("/runs/{}", url_encode(run_id))
    }
}

/// The value of parameter `name` in a raw query string (`?a=1&b=2` or `a=1&b=2`), decoded once as a form is
/// (`+` is a space). leptos_router's own query map decodes its values a second time, so `%2525` would read `%`.
pub fn query_value(search: &str, name: &str) -> Option<String> {
    form_urlencoded::parse(search.trim_start_matches('?').as_bytes())
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
}

/// The link to the runs list filtered by one status.
pub fn runs_with_status(status: &str) -> String {
    format!("/runs?status={}", url_encode(status))
}

/// The first `max` characters of `text`, with `…` when something was cut.
pub fn truncate_chars(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_string(),
    }
}

/// A span of seconds for people, relative to now: `just now`, `5 min ago`, `3 h 05 min ago`, `2 d 4 h ago`;
/// a negative span reads `in …`.
pub fn ago(seconds: i64) -> String {
    let s = seconds.unsigned_abs();
    let span = if s < 60 {
        return "just now".into();
    } else if s < 3600 {
        format!("{} min", s / 60)
    } else if s < 24 * 3600 {
        format!("{} h {:02} min", s / 3600, (s % 3600) / 60)
    } else {
        format!("{} d {} h", s / 86_400, (s % 86_400) / 3600)
    };
    if seconds < 0 {
        format!("in {span}")
    } else {
        format!("{span} ago")
    }
}

/// A rate from 0 to 1 as a percentage: `0 %`, `12.5 %`, `100 %`.
pub fn percent(rate: f64) -> String {
    if !rate.is_finite() {
        return "—".into();
    }
    let p = (rate * 1000.0).round() / 10.0;
    if p.fract() == 0.0 {
        format!("{p:.0} %")
    } else {
        format!("{p:.1} %")
    }
}

/// An instant for a page: RFC 3339, `2026-11-27 10:35 UTC`, and relative to `now` (the instant the figures
/// were read). Server only: the browser gets the strings.
#[cfg(feature = "ssr")]
pub fn stamp(at: chrono::DateTime<chrono::Utc>, now: chrono::DateTime<chrono::Utc>) -> crate::model::Stamp {
    crate::model::Stamp {
        rfc3339: at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
        utc: at.format("%Y-%m-%d %H:%M UTC").to_string(),
        relative: ago((now - at).num_seconds()),
    }
}

/// The placeholders an error signature puts where messages vary (see `flowstate_store::insights`).
const SIGNATURE_PLACEHOLDERS: [&str; 4] = ["<v>", "<id>", "<dur>", "<n>"];

/// The longest constant piece of an error signature: the text between its `<…>` placeholders, trimmed. Every
/// message of the group contains it, so it is what the runs list's `error` filter (a case-insensitive
/// "contains") is given to list the group. `None` when no piece has at least three characters.
///
/// `Step <v> failed: ConnectionError: Connection reset by peer` → `failed: ConnectionError: Connection reset by
/// peer`.
pub fn signature_fragment(signature: &str) -> Option<String> {
    let mut pieces = vec![signature.to_string()];
    for placeholder in SIGNATURE_PLACEHOLDERS {
        pieces = pieces
            .iter()
            .flat_map(|p| p.split(placeholder).map(str::to_string).collect::<Vec<_>>())
            .collect();
    }
    pieces
        .iter()
        .map(|p| p.trim())
        .filter(|p| p.chars().count() >= 3)
        .fold(None::<&str>, |best, p| match best {
            Some(b) if b.chars().count() >= p.chars().count() => Some(b),
            _ => Some(p),
        })
        .map(str::to_string)
}

/// The runs list of a failure group: failed runs updated at or after `updated_after` (RFC 3339) whose error
/// contains `fragment` (see [`signature_fragment`]).
pub fn runs_of_failure_group(fragment: &str, updated_after: &str) -> String {
    format!(
        "/runs?status=failed&error={}&updated_after={}",
        url_encode(fragment),
        url_encode(updated_after)
    )
}

/// The runs list of a failure group's runs in one pipeline: the group's filter ([`runs_of_failure_group`], or
/// every failure of the window when the group has no usable fragment) and `pipeline`.
pub fn runs_of_failure_group_in(fragment: Option<&str>, updated_after: &str, pipeline: &str) -> String {
    let base = match fragment {
        Some(fragment) => runs_of_failure_group(fragment, updated_after),
        None => format!("/runs?status=failed&updated_after={}", url_encode(updated_after)),
    };
    format!("{base}&pipeline={}", url_encode(pipeline))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_get_separators() {
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(1000), "1,000");
        assert_eq!(count(1234567), "1,234,567");
        assert_eq!(count(-1234), "-1,234");
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(duration_ms(850.4), "850 ms");
        assert_eq!(duration_ms(12_345.0), "12.3 s");
        assert_eq!(duration_ms(245_000.0), "4 min 05 s");
        assert_eq!(duration_ms(7_380_000.0), "2 h 03 min");
        assert_eq!(duration_ms(f64::NAN), "—");
    }

    #[test]
    fn sizes_read_well() {
        assert_eq!(bytes(830), "830 B");
        assert_eq!(bytes(4096), "4.0 KB");
        assert_eq!(bytes(29_045_760), "27.7 MB");
        assert_eq!(bytes(1_610_612_736), "1.50 GB");
        assert_eq!(bytes(-1), "—");
    }

    #[test]
    fn urls_are_encoded() {
        assert_eq!(url_encode("a b/c?d=é"), "a%20b%2Fc%3Fd%3D%C3%A9");
        assert_eq!(
            url_encode("A-z_0.9~\u{0}%+&#\u{202e}"),
            "A-z_0.9~%00%25%2B%26%23%E2%80%AE"
        );
        assert_eq!(runs_with_status("failed"), "/runs?status=failed");
    }

    #[test]
    fn truncation_counts_characters() {
        assert_eq!(truncate_chars("short", 10), "short");
        assert_eq!(truncate_chars("exactly", 7), "exactly");
        assert_eq!(truncate_chars("Traducción", 6), "Traduc…");
    }
}

#[cfg(test)]
mod failure_format_tests {
    use super::*;

    #[test]
    fn spans_read_as_relative_time() {
        assert_eq!(ago(5), "just now");
        assert_eq!(ago(300), "5 min ago");
        assert_eq!(ago(3 * 3600 + 5 * 60), "3 h 05 min ago");
        assert_eq!(ago(2 * 86_400 + 4 * 3600 + 59), "2 d 4 h ago");
        assert_eq!(ago(-600), "in 10 min");
    }

    #[test]
    fn rates_read_as_percentages() {
        assert_eq!(percent(0.0), "0 %");
        assert_eq!(percent(0.125), "12.5 %");
        assert_eq!(percent(1.0), "100 %");
        assert_eq!(percent(1.0 / 3.0), "33.3 %");
        assert_eq!(percent(f64::NAN), "—");
    }

    #[test]
    fn the_longest_constant_fragment_of_a_signature() {
        assert_eq!(
            signature_fragment("Step <v> failed: ConnectionError: Connection reset by peer").as_deref(),
            Some("failed: ConnectionError: Connection reset by peer")
        );
        assert_eq!(
            signature_fragment("Step <v> failed: ValidationError: <n> validation error(s) for InvoiceModel")
                .as_deref(),
            Some("validation error(s) for InvoiceModel")
        );
        assert_eq!(
            signature_fragment("TimeoutError: agent call exceeded <dur>").as_deref(),
            Some("TimeoutError: agent call exceeded")
        );
        assert_eq!(
            signature_fragment("<id>: <n>"),
            None,
            "nothing constant worth filtering by"
        );
        assert_eq!(
            signature_fragment("(no error message)").as_deref(),
            Some("(no error message)"),
            "callers handle the empty-message group themselves"
        );
        assert_eq!(
            runs_of_failure_group("reset by peer", "2026-11-26T10:35:25.586029Z"),
            "/runs?status=failed&error=reset%20by%20peer&updated_after=2026-11-26T10%3A35%3A25.586029Z"
        );
    }
}
