//! The checks of a raw copy between two SQLite files ([`super::rawcopy`]), as SQL functions written in Rust.
//!
//! A raw copy moves a row from the source's table into the destination's with `INSERT ... SELECT`, never decoding
//! it into a [`crate::WorkflowState`]. That is only right for a row the per-run path (read, [`crate::validate`],
//! write) would store with the same values. [`row_is_plain`] says so, conservatively: it is true only when every
//! column, as the store's reader reads it ([`super::row::whole_columns`]), passes the save's validation as it is
//! and its JSON text reads back as the same value whether kept as it is or written out again by serde_json. Any
//! other row (a NUL, text that is not UTF-8, a value over a limit, JSON that is not JSON or might not round-trip)
//! is not plain, and goes the per-run way: read, validated and written exactly as a save, or refused with the
//! save's reason. A false "not plain" costs only time; a false "plain" would be a wrong copy, so every rule below
//! errs on the side of "not plain".

use std::ffi::c_int;

use chrono::Datelike;
use flowstate_model::limits::{
    MAX_ERROR_BYTES, MAX_JSON_BYTES, MAX_JSON_DEPTH, MAX_NAME_BYTES, MAX_RUN_ID_BYTES,
};
use flowstate_model::Status;

use crate::time;

/// A SQL value as a function receives it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Val<'a> {
    Null,
    Int(i64),
    Real(f64),
    /// Text, as bytes: SQLite does not check that they are UTF-8.
    Text(&'a [u8]),
    Blob,
}

impl<'a> Val<'a> {
    /// The text as a `&str` when it is text and UTF-8 (what sqlx's reader reads; anything else it reads as NULL).
    fn str(self) -> Option<&'a str> {
        match self {
            Val::Text(b) => std::str::from_utf8(b).ok(),
            _ => None,
        }
    }
}

/// How many values [`row_is_plain`] takes: the columns of [`super::row::whole_columns`], in that order.
pub(crate) const ROW_VALUES: usize = 21;

/// True when the run in `v` (the 21 values of [`super::row::whole_columns`]: the summary's 13, the three JSON
/// columns, the five extras) is stored by a raw copy with the values the per-run path would give it.
///
/// The raw copy writes every column as read, except: the step history NULL as `[]` (the reader reads NULL as an
/// empty history, which a save writes as `[]`), and both timestamps through [`instant_text`] (the save's spelling,
/// the copy's time when unreadable).
pub(crate) fn row_is_plain(v: &[Val<'_>]) -> bool {
    if v.len() != ROW_VALUES {
        return false;
    }
    let text_ok = |val: Val<'_>, min: usize, max: usize| {
        val.str()
            .is_some_and(|s| s.len() >= min && s.len() <= max && !s.as_bytes().contains(&0))
    };
    let opt_text_ok = |val: Val<'_>, max: usize| val == Val::Null || text_ok(val, 0, max);
    let count_ok = |val: Val<'_>| matches!(val, Val::Int(n) if (0..=i64::from(i32::MAX)).contains(&n));
    let timestamp_ok = |val: Val<'_>| match val {
        Val::Text(b) if is_canonical_instant(b) => &b[..4] != b"0000",
        // Unreadable (NULL, not UTF-8, not a time): the copy's time, as a save gives it.
        Val::Text(_) => val
            .str()
            .and_then(time::parse_timestamp)
            .is_none_or(|at| (1..=9999).contains(&at.year())),
        _ => true,
    };
    let status_ok = |val: Val<'_>| val.str().and_then(Status::known).is_some();
    text_ok(v[0], 1, MAX_RUN_ID_BYTES)
        && text_ok(v[1], 1, MAX_NAME_BYTES)
        && text_ok(v[2], 0, MAX_NAME_BYTES)
        && text_ok(v[3], 0, MAX_NAME_BYTES)
        && status_ok(v[4])
        && count_ok(v[5])
        && count_ok(v[6])
        && timestamp_ok(v[7])
        && timestamp_ok(v[8])
        && opt_text_ok(v[9], MAX_ERROR_BYTES)
        && (v[10] == Val::Null || count_ok(v[10]))
        && match v[11] {
            Val::Null => true,
            Val::Real(m) => m.is_finite() && m >= 0.0,
            _ => false,
        }
        // v[12] is the error message's size, read for lists only.
        // The context: NULL reads as JSON null, which a save writes as `null`: not as it is.
        && json_is_plain(v[13], true)
        && (v[14] == Val::Null || json_is_plain(v[14], true))
        && (v[15] == Val::Null || json_is_plain(v[15], false))
        && (v[16] == Val::Null || json_is_plain(v[16], true))
        && matches!(v[17], Val::Int(0 | 1))
        && opt_text_ok(v[18], MAX_NAME_BYTES)
        && opt_text_ok(v[19], MAX_NAME_BYTES)
        && opt_text_ok(v[20], MAX_ERROR_BYTES)
}

/// True when `b` is already the save's spelling of a valid instant (`2025-07-19T12:34:56.789012+00:00`,
/// [`time::format_timestamp`]): reading it and writing it out again gives the same text.
pub(crate) fn is_canonical_instant(b: &[u8]) -> bool {
    const SHAPE: &[u8; 32] = b"dddd-dd-ddTdd:dd:dd.dddddd+00:00";
    if b.len() != SHAPE.len()
        || !b
            .iter()
            .zip(SHAPE)
            .all(|(c, s)| if *s == b'd' { c.is_ascii_digit() } else { c == s })
    {
        return false;
    }
    let n = |r: std::ops::Range<usize>| b[r].iter().fold(0u32, |acc, d| acc * 10 + u32::from(d - b'0'));
    chrono::NaiveDate::from_ymd_opt(n(0..4) as i32, n(5..7), n(8..10)).is_some()
        && chrono::NaiveTime::from_hms_micro_opt(n(11..13), n(14..16), n(17..19), n(20..26)).is_some()
}

/// The save's spelling of a timestamp read as text ([`time::format_timestamp`]), or `None` when the reader cannot
/// read it (the copy then writes its own time, as a save does).
pub(crate) fn instant_text(val: Val<'_>) -> Option<String> {
    val.str()
        .and_then(time::parse_timestamp)
        .map(|at| time::format_timestamp(&at))
}

/// True when `val` is JSON text that reads back as the same value kept as it is or written out again by
/// serde_json, and that a save accepts: UTF-8, strict JSON, nested at most [`MAX_JSON_DEPTH`] deep, at most
/// [`MAX_JSON_BYTES`] once written out, without U+0000 (nor anything that writes out as `\u0000`), and with no
/// number serde_json might refuse. `null_ok`: a top-level `null` is kept as it is (false for the step history,
/// whose JSON null a save stores as SQL NULL).
pub(crate) fn json_is_plain(val: Val<'_>, null_ok: bool) -> bool {
    let Val::Text(text) = val else {
        return false;
    };
    // The scan checks UTF-8 too: outside strings only ASCII is JSON, inside them each sequence is checked.
    let Some(scan) = scan_json(text) else {
        return false;
    };
    if !null_ok && scan.top_is_null {
        return false;
    }
    // serde_json writes a number read as a float in up to 24 bytes ("-1.7976931348623157e308"); every other token
    // it writes no longer than it was read (whitespace dropped, escapes as short or shorter).
    text.len() + scan.numbers * 24 <= MAX_JSON_BYTES
}

/// What [`scan_json`] found in a plain JSON text.
#[derive(Debug, PartialEq)]
struct Scan {
    /// Number tokens.
    numbers: usize,
    /// The text is `null` (with whitespace around it).
    top_is_null: bool,
}

/// Bytes that end a run of plain string content: `"`, `\`, control characters, and the first byte of anything
/// not ASCII (checked as UTF-8).
static STRING_STOP: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = i < 0x20 || i >= 0x80;
        i += 1;
    }
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t
};

/// A strict JSON scan (RFC 8259, as serde_json reads it), refusing what might not round-trip: `None` when the text
/// is not JSON, nests deeper than [`MAX_JSON_DEPTH`], holds a `\u` escape of U+0000, of a lone surrogate or of an
/// ASCII character (which could spell `\u0000` once written out), the letters `u0000` anywhere, or a number whose
/// exponent has three digits or more, or with more than 300 digits before it (serde_json refuses numbers beyond
/// the range of a double).
fn scan_json(b: &[u8]) -> Option<Scan> {
    // `\\u0000` in a string writes out as `\\u0000`, which holds `\u0000`: a save refuses it.
    if memchr::memmem::find(b, b"u0000").is_some() {
        return None;
    }
    let mut i = 0;
    let n = b.len();
    let ws = |i: &mut usize| {
        while *i < n && matches!(b[*i], b' ' | b'\t' | b'\n' | b'\r') {
            *i += 1;
        }
    };
    // The containers open: true for an object.
    let mut stack: Vec<bool> = Vec::new();
    let mut numbers = 0usize;
    ws(&mut i);
    let top_is_null = b[i..].starts_with(b"null");
    // Expecting a value (after `[`, `,` in an array, `:`, or at the top).
    'value: loop {
        ws(&mut i);
        if i >= n {
            return None;
        }
        match b[i] {
            b'{' | b'[' => {
                let object = b[i] == b'{';
                stack.push(object);
                if stack.len() > MAX_JSON_DEPTH {
                    return None;
                }
                i += 1;
                ws(&mut i);
                if i < n && b[i] == if object { b'}' } else { b']' } {
                    stack.pop();
                    i += 1;
                } else if object {
                    i = key(b, i)?;
                    continue 'value;
                } else {
                    continue 'value;
                }
            }
            b'"' => i = string(b, i)?,
            b't' if b[i..].starts_with(b"true") => i += 4,
            b'f' if b[i..].starts_with(b"false") => i += 5,
            b'n' if b[i..].starts_with(b"null") => i += 4,
            b'-' | b'0'..=b'9' => {
                i = number(b, i)?;
                numbers += 1;
            }
            _ => return None,
        }
        // After a value: `,` or the end of its container, or the end of the text.
        loop {
            ws(&mut i);
            let Some(&object) = stack.last() else {
                return (i == n).then_some(Scan { numbers, top_is_null });
            };
            if i >= n {
                return None;
            }
            match b[i] {
                b',' => {
                    i += 1;
                    if object {
                        ws(&mut i);
                        i = key(b, i)?;
                    }
                    continue 'value;
                }
                b'}' if object => {
                    stack.pop();
                    i += 1;
                }
                b']' if !object => {
                    stack.pop();
                    i += 1;
                }
                _ => return None,
            }
        }
    }
}

/// A key and its colon, from `i` (at the key's quote); where the value starts.
fn key(b: &[u8], i: usize) -> Option<usize> {
    if b.get(i) != Some(&b'"') {
        return None;
    }
    let mut i = string(b, i)?;
    while i < b.len() && matches!(b[i], b' ' | b'\t' | b'\n' | b'\r') {
        i += 1;
    }
    (b.get(i) == Some(&b':')).then_some(i + 1)
}

/// A string from its opening quote at `i`; the index after its closing quote.
fn string(b: &[u8], mut i: usize) -> Option<usize> {
    i += 1;
    loop {
        while i < b.len() && !STRING_STOP[b[i] as usize] {
            i += 1;
        }
        match b.get(i)? {
            b'"' => return Some(i + 1),
            b'\\' => {
                match b.get(i + 1)? {
                    b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => i += 2,
                    b'u' => {
                        let unit = hex4(b, i + 2)?;
                        i += 6;
                        match unit {
                            // U+0000, and ASCII (which a writer has no reason to escape): could spell `\u0000`.
                            0 | 0x20..=0x7f => return None,
                            0xd800..=0xdbff => {
                                // A high surrogate must be followed by a low one.
                                if b.get(i) != Some(&b'\\') || b.get(i + 1) != Some(&b'u') {
                                    return None;
                                }
                                let low = hex4(b, i + 2)?;
                                if !(0xdc00..=0xdfff).contains(&low) {
                                    return None;
                                }
                                i += 6;
                            }
                            0xdc00..=0xdfff => return None,
                            _ => {}
                        }
                    }
                    _ => return None,
                }
            }
            &lead if lead >= 0x80 => {
                let len = match lead {
                    0xc2..=0xdf => 2,
                    0xe0..=0xef => 3,
                    0xf0..=0xf4 => 4,
                    _ => return None,
                };
                std::str::from_utf8(b.get(i..i + len)?).ok()?;
                i += len;
            }
            // A control character inside a string.
            _ => return None,
        }
    }
}

fn hex4(b: &[u8], i: usize) -> Option<u32> {
    let digits = b.get(i..i + 4)?;
    let mut v = 0u32;
    for d in digits {
        v = v * 16 + (*d as char).to_digit(16)?;
    }
    Some(v)
}

/// A number from `i`; the index after it. Refuses exponents of three digits or more and more than 300 integer
/// digits (a double's range ends near 1.8e308).
fn number(b: &[u8], mut i: usize) -> Option<usize> {
    let digits = |i: &mut usize| {
        let start = *i;
        while *i < b.len() && b[*i].is_ascii_digit() {
            *i += 1;
        }
        *i - start
    };
    if b[i] == b'-' {
        i += 1;
    }
    match b.get(i)? {
        b'0' => i += 1,
        b'1'..=b'9' => {
            if digits(&mut i) > 300 {
                return None;
            }
        }
        _ => return None,
    }
    if b.get(i) == Some(&b'.') {
        i += 1;
        if digits(&mut i) == 0 {
            return None;
        }
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let n = digits(&mut i);
        if n == 0 || n > 2 {
            return None;
        }
    }
    Some(i)
}

/// Reads the arguments of a SQL function call.
///
/// # Safety
/// `argv` holds `argc` values of the call being made.
pub(crate) unsafe fn args<'a>(
    argc: c_int,
    argv: *mut *mut libsqlite3_sys::sqlite3_value,
    out: &mut Vec<Val<'a>>,
) {
    use libsqlite3_sys as ffi;
    out.clear();
    if argv.is_null() || argc <= 0 {
        return;
    }
    for &v in std::slice::from_raw_parts(argv, argc as usize) {
        out.push(match ffi::sqlite3_value_type(v) {
            ffi::SQLITE_INTEGER => Val::Int(ffi::sqlite3_value_int64(v)),
            ffi::SQLITE_FLOAT => Val::Real(ffi::sqlite3_value_double(v)),
            ffi::SQLITE_TEXT => {
                let p = ffi::sqlite3_value_text(v);
                let len = ffi::sqlite3_value_bytes(v);
                if p.is_null() || len <= 0 {
                    Val::Text(&[])
                } else {
                    Val::Text(std::slice::from_raw_parts(p, len as usize))
                }
            }
            ffi::SQLITE_BLOB => Val::Blob,
            _ => Val::Null,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn plain(text: &str) -> bool {
        json_is_plain(Val::Text(text.as_bytes()), true)
    }

    /// What the per-run path stores for a JSON text, read back: `None` when a save refuses it.
    fn per_run(text: &str) -> Option<Value> {
        let value = serde_json::from_str::<Value>(text).unwrap_or_else(|_| Value::String(text.into()));
        let state = crate::WorkflowState {
            pipeline_context: value,
            ..crate::WorkflowState::new("r", "p")
        };
        let valid = crate::validate::ValidState::new(&state).ok()?;
        serde_json::from_str(&valid.context).ok()
    }

    #[test]
    fn plain_json_reads_back_as_the_per_run_path_writes_it() {
        let cases = [
            r#"{"a": 1, "b": [true, false, null], "c": {"d": "e\n\"f\" \u00e9 \ud83d\ude80"}}"#,
            "  [1, -0, 0.5, -1.5e10, 1E-5, 12345678901234567890123]  ",
            r#""a string""#,
            "null",
            "3",
            r#"{"dup": 1, "dup": 2}"#,
            r#"["\/ \b \f \r \t é 🚀", {}, []]"#,
            &format!("{}1{}", "[".repeat(100), "]".repeat(100)),
        ];
        for text in cases {
            assert!(plain(text), "{text} is plain");
            let kept: Value = serde_json::from_str(text).unwrap();
            assert_eq!(Some(kept), per_run(text), "{text}");
        }
    }

    #[test]
    fn anything_that_might_not_round_trip_is_not_plain() {
        let not_plain = [
            "",
            "   ",
            "{",
            "[1,]",
            "{\"a\":1,}",
            "{\"a\" 1}",
            "{1: 2}",
            "[1 2]",
            "01",
            "1.",
            ".5",
            "1e",
            "1e400",
            "1e100",
            "+1",
            "NaN",
            "Infinity",
            "tru",
            "nul",
            "[] []",
            "\"unterminated",
            "\"tab\tinside\"",
            "\"\\x\"",
            "\"\\u0000\"",
            "\"\\\\u0000\"",
            "\"\\u005c\"",
            "\"\\u0041\"",
            "\"\\ud800\"",
            "\"\\udc00\"",
            "\"\\ud800\\u0041\"",
            "\"u0000\"",
            "{'a': 1}",
            &"9".repeat(301),
            &format!("{}1{}", "[".repeat(101), "]".repeat(101)),
        ];
        for text in not_plain {
            assert!(!plain(text), "{text:?} is not plain");
        }
        assert!(!json_is_plain(Val::Text(b"\"\xff\""), true), "not UTF-8");
        assert!(!json_is_plain(Val::Null, true));
        assert!(!json_is_plain(Val::Int(1), true));
        assert!(!json_is_plain(Val::Text(b" null "), false), "null history");
        assert!(json_is_plain(Val::Text(b"[]"), false));
    }

    fn row<'a>(texts: &'a [Option<&'a str>; 4]) -> Vec<Val<'a>> {
        let t = |s: &'a str| Val::Text(s.as_bytes());
        let mut v = vec![
            t(texts[0].unwrap_or("run")),
            t("pipe"),
            t("name"),
            t("1.0"),
            t("completed"),
            Val::Int(1),
            Val::Int(2),
            t("2025-07-19T12:34:56.789012"),
            Val::Null,
            Val::Null,
            Val::Int(5),
            Val::Real(1.5),
            Val::Null,
            t(texts[1].unwrap_or("{}")),
            Val::Null,
            t(texts[2].unwrap_or("[]")),
            Val::Null,
            Val::Int(0),
            Val::Null,
            Val::Null,
            Val::Null,
        ];
        if let Some(e) = texts[3] {
            v[9] = t(e);
        }
        v
    }

    #[test]
    fn a_row_is_plain_only_when_every_column_passes_as_it_is() {
        assert!(row_is_plain(&row(&[None, None, None, None])));
        assert!(!row_is_plain(&row(&[Some(""), None, None, None])), "empty id");
        assert!(
            !row_is_plain(&row(&[Some("a\0b"), None, None, None])),
            "NUL in id"
        );
        let long = "x".repeat(MAX_RUN_ID_BYTES + 1);
        assert!(!row_is_plain(&row(&[Some(&long), None, None, None])), "long id");
        assert!(
            !row_is_plain(&row(&[None, Some("nope"), None, None])),
            "context not JSON"
        );
        assert!(
            !row_is_plain(&row(&[None, None, Some("null"), None])),
            "history JSON null"
        );
        assert!(
            !row_is_plain(&row(&[None, None, None, Some("x\0y")])),
            "NUL in error"
        );
        let mut v = row(&[None, None, None, None]);
        v[4] = Val::Text(b"FAILED");
        assert!(!row_is_plain(&v), "unknown status");
        let mut v = row(&[None, None, None, None]);
        v[5] = Val::Int(-1);
        assert!(!row_is_plain(&v), "negative step");
        let mut v = row(&[None, None, None, None]);
        v[10] = Val::Int(i64::from(i32::MAX) + 1);
        assert!(!row_is_plain(&v), "32 bits");
        let mut v = row(&[None, None, None, None]);
        v[11] = Val::Real(-0.5);
        assert!(!row_is_plain(&v), "negative memory");
        let mut v = row(&[None, None, None, None]);
        v[7] = Val::Text(b"0000-01-01T00:00:00");
        assert!(!row_is_plain(&v), "year 0");
        let mut v = row(&[None, None, None, None]);
        v[7] = Val::Text(b"not a time");
        assert!(row_is_plain(&v), "unreadable: the copy's time, as a save");
        let mut v = row(&[None, None, None, None]);
        v[2] = Val::Text(b"\xff");
        assert!(!row_is_plain(&v), "not UTF-8");
        let mut v = row(&[None, None, None, None]);
        v[15] = Val::Null;
        assert!(row_is_plain(&v), "NULL history, written as []");
        assert_eq!(
            instant_text(Val::Text(b"2025-07-19 12:34:56")).as_deref(),
            Some("2025-07-19T12:34:56.000000+00:00")
        );
        assert_eq!(instant_text(Val::Text(b"soon")), None);
        // The save's own spelling is kept as it is (and is what writing it out again gives).
        for text in [
            "2025-07-19T12:34:56.789012+00:00",
            "0001-01-01T00:00:00.000000+00:00",
        ] {
            assert!(is_canonical_instant(text.as_bytes()), "{text}");
            assert_eq!(instant_text(Val::Text(text.as_bytes())).as_deref(), Some(text));
        }
        for text in [
            "2025-02-30T12:34:56.789012+00:00",
            "2025-07-19T24:00:00.000000+00:00",
            "2025-07-19T23:59:60.000000+00:00",
            "2025-07-19T12:34:56.789012+01:00",
            "2025-07-19 12:34:56.789012+00:00",
            "2025-07-19T12:34:56.789012",
        ] {
            assert!(!is_canonical_instant(text.as_bytes()), "{text}");
        }
        let mut v = row(&[None, None, None, None]);
        v[8] = Val::Text(b"0000-01-01T00:00:00.000000+00:00");
        assert!(!row_is_plain(&v), "year 0 in the save's spelling");
        assert_eq!(instant_text(Val::Null), None);
    }
}
