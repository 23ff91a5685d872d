//! The CSRF double submit: the browser holds a random token in the `flowstate_csrf` cookie (HttpOnly,
//! SameSite=Strict), the page puts the same token in every form that changes something (the hidden `csrf`
//! field, [`flowstate_app::server::security::CSRF_FIELD`]) or in the `x-csrf-token` header of a `fetch`, and a
//! change goes through only when both are there and equal (compared in constant time).

use axum::http::HeaderMap;

use super::cookies::{self, CSRF_COOKIE};
use super::tokens::{is_token_shaped, secrets_match};

/// The header carrying the CSRF token for calls that send no form (`fetch`).
pub const CSRF_HEADER: &str = "x-csrf-token";

/// This browser's CSRF token, put in the request's extensions by the layer (from the cookie, or new when the
/// browser had none; the layer then sets the cookie on the response). Pages read it through
/// [`flowstate_app::server::session::Access::csrf`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsrfToken(pub String);

/// The browser's CSRF token from its cookie, when it is one the server could have made.
pub fn cookie_token(headers: &HeaderMap) -> Option<String> {
    cookies::get(headers, CSRF_COOKIE).filter(|c| is_token_shaped(c))
}

/// The double-submit check: the token the form (or the `x-csrf-token` header) carries must equal the
/// browser's CSRF cookie. Compared in constant time.
///
/// # Errors
/// Why not, in words for the operator.
pub fn check_csrf(headers: &HeaderMap, submitted: Option<&str>) -> Result<(), String> {
    let Some(cookie) = cookie_token(headers) else {
        return Err(
            "the browser sent no CSRF cookie (cookies may be blocked); reload the page and try again".into(),
        );
    };
    let submitted = submitted.map(str::trim).unwrap_or("");
    if submitted.is_empty() {
        return Err("the form carried no CSRF token; reload the page and try again".into());
    }
    if secrets_match(&cookie, submitted) {
        Ok(())
    } else {
        Err("the form’s CSRF token is not this browser’s; reload the page and try again".into())
    }
}

/// The first value of field `name` in a url-encoded form, decoded with `form_urlencoded` (as the server
/// functions' own form decoding and the runs list's query string read it).
pub fn form_field(body: &[u8], name: &str) -> Option<String> {
    form_urlencoded::parse(body)
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::web::security::tokens::random_token;
    use axum::http::HeaderValue;

    #[test]
    fn csrf_is_a_double_submit() {
        let token = random_token();
        let mut h = HeaderMap::new();
        h.insert(
            "cookie",
            HeaderValue::from_str(&format!("a=b; {CSRF_COOKIE}={token}")).unwrap(),
        );
        assert!(check_csrf(&h, Some(&token)).is_ok());
        assert!(
            check_csrf(&h, Some(&format!(" {token} "))).is_ok(),
            "spaces around are ignored"
        );
        assert!(check_csrf(&h, Some(&random_token())).is_err());
        assert!(check_csrf(&h, Some("")).is_err());
        assert!(check_csrf(&h, None).is_err());
        assert!(check_csrf(&HeaderMap::new(), Some(&token)).is_err(), "no cookie");
        let mut odd = HeaderMap::new();
        odd.insert("cookie", HeaderValue::from_static("flowstate_csrf=short"));
        assert!(
            check_csrf(&odd, Some("short")).is_err(),
            "a cookie the server did not make"
        );
    }

    #[test]
    fn the_form_field_is_found_and_decoded() {
        let body = b"days=30&statuses=completed%2Cfailed&csrf=ab%63d&csrf=second";
        assert_eq!(form_field(body, "csrf").as_deref(), Some("abcd"), "the first one");
        assert_eq!(form_field(body, "statuses").as_deref(), Some("completed,failed"));
        assert_eq!(
            form_field(b"c%73rf=x", "csrf").as_deref(),
            Some("x"),
            "names are decoded too"
        );
        assert_eq!(form_field(b"csrf=a+b", "csrf").as_deref(), Some("a b"));
        assert_eq!(
            form_field(b"csrf=%zz", "csrf").as_deref(),
            Some("%zz"),
            "a bad escape stays as it is"
        );
        assert_eq!(form_field(b"days=30", "csrf"), None);
        assert_eq!(
            form_field(b"\xff\xfe=1&csrf=\xff", "csrf").as_deref(),
            Some("\u{fffd}")
        );
    }

    /// The two places that decode url-encoded text, this form reader and the runs list's query string, are one
    /// crate and agree on every bad escape.
    #[test]
    fn forms_and_query_strings_are_decoded_alike() {
        for raw in [
            "%",
            "%4",
            "%zz",
            "%%41",
            "a%2",
            "%C3%A9%",
            "%ff%fe",
            "+%2B+",
            "%00x",
            "%e2%80%ae",
        ] {
            let from_form = form_field(format!("v={raw}").as_bytes(), "v").unwrap();
            let from_query = flowstate_app::server::runs::parse_pairs(&format!("?v={raw}"));
            assert_eq!(from_query, [("v".to_string(), from_form.clone())], "{raw:?}");
        }
    }
}
