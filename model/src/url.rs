//! Percent-encoding for the addresses flowstate writes (links, redirects), with the `percent-encoding` crate.
//! Decoding what clients send is the server's business (the guards), not this module's.

use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS, NON_ALPHANUMERIC};

/// Everything but RFC 3986's unreserved characters (`A-Z a-z 0-9 - _ . ~`): safe in a query value and in a path
/// segment.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Controls, space and (always) every non-ASCII byte: what a `Location` header cannot carry as it is.
const NOT_VISIBLE_ASCII: &AsciiSet = &CONTROLS.add(b' ');

/// Percent-encodes a value for a URL query or a path segment: `a b/c?d=é` → `a%20b%2Fc%3Fd%3D%C3%A9`.
pub fn url_encode(value: &str) -> String {
    utf8_percent_encode(value, COMPONENT).to_string()
}

/// A path as a `Location` header can carry it: bytes outside visible ASCII (`é`, spaces, controls)
/// percent-encoded, everything else (including `%`, `/`, `?`) kept, the way a browser sent it.
pub fn header_safe_path(path: &str) -> String {
    utf8_percent_encode(path, NOT_VISIBLE_ASCII).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components_keep_only_unreserved_characters() {
        assert_eq!(url_encode("a b/c?d=é"), "a%20b%2Fc%3Fd%3D%C3%A9");
        assert_eq!(url_encode("AZaz09-_.~"), "AZaz09-_.~");
        assert_eq!(url_encode("+&%#\u{0}🦀"), "%2B%26%25%23%00%F0%9F%A6%80");
        // Every byte either stays unreserved or becomes %XX.
        for b in 0u8..=127 {
            let s = char::from(b).to_string();
            let e = url_encode(&s);
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                assert_eq!(e, s);
            } else {
                assert_eq!(e, format!("%{b:02X}"));
            }
        }
    }

    #[test]
    fn header_paths_encode_only_what_a_header_cannot_carry() {
        assert_eq!(header_safe_path("/runs/a b"), "/runs/a%20b");
        assert_eq!(header_safe_path("/runs/é?x=%2F"), "/runs/%C3%A9?x=%2F");
        assert_eq!(header_safe_path("/a\tb\u{7f}"), "/a%09b%7F");
        for b in 0u8..=127 {
            let s = char::from(b).to_string();
            let e = header_safe_path(&s);
            if b.is_ascii_graphic() {
                assert_eq!(e, s);
            } else {
                assert_eq!(e, format!("%{b:02X}"));
            }
        }
    }
}
