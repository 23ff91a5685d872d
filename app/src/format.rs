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

/// Percent-encodes a value for a URL query (everything but RFC 3986's unreserved characters).
pub fn url_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The link to the runs list filtered by one status.
pub fn runs_with_status(status: &str) -> String {
    format!("/runs?status={}", url_encode(status))
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
    fn urls_are_encoded() {
        assert_eq!(url_encode("a b/c?d=é"), "a%20b%2Fc%3Fd%3D%C3%A9");
        assert_eq!(runs_with_status("failed"), "/runs?status=failed");
    }
}
