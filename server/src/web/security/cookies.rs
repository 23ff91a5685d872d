//! The dashboard's cookies, read from `Cookie` headers and written as `Set-Cookie` with the `cookie` crate.
//!
//! Every cookie of ours is `HttpOnly`, `SameSite=Strict`, `Path=/`, without `Domain` (this host only), and
//! `Secure` when the request came over https; the theme cookie is `SameSite=Lax` and readable by the page's
//! script, which switches it in place.

use axum::http::{header, HeaderMap, HeaderValue};
use cookie::time::Duration;
use cookie::{Cookie, SameSite};
use flowstate_app::theme::Theme;

use super::sessions::SESSION_TTL;

/// The cookie holding this browser's CSRF token.
pub const CSRF_COOKIE: &str = "flowstate_csrf";
/// The cookie holding the admin session id.
pub const SESSION_COOKIE: &str = "flowstate_session";

/// How long the theme choice is kept (a year).
const THEME_MAX_AGE: Duration = Duration::days(365);

/// Every cookie the request's `Cookie` headers carry that parses, in order (pairs that do not parse are
/// skipped, as browsers never send them).
pub fn all(headers: &HeaderMap) -> impl Iterator<Item = Cookie<'_>> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(Result::ok)
}

/// The value of the first cookie `name` in the request (surrounding double quotes removed).
pub fn get(headers: &HeaderMap, name: &str) -> Option<String> {
    all(headers)
        .find(|c| c.name() == name)
        .map(|c| c.value_trimmed().to_string())
}

fn ours(name: &'static str, value: String, secure: bool) -> cookie::CookieBuilder<'static> {
    Cookie::build((name, value))
        .path("/")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(secure)
}

fn header_value(cookie: impl Into<Cookie<'static>>) -> HeaderValue {
    // Our names and values are ASCII tokens: the header is always valid.
    HeaderValue::from_str(&cookie.into().to_string()).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// `Set-Cookie` for the CSRF cookie (it lasts as long as the browser session).
pub fn csrf(token: &str, secure: bool) -> HeaderValue {
    header_value(ours(CSRF_COOKIE, token.to_string(), secure))
}

/// `Set-Cookie` for a new session: gone after [`SESSION_TTL`] or when the browser closes, whichever is first.
pub fn session(id: &str, secure: bool) -> HeaderValue {
    let max_age = Duration::seconds(i64::try_from(SESSION_TTL.as_secs()).unwrap_or(i64::MAX));
    header_value(ours(SESSION_COOKIE, id.to_string(), secure).max_age(max_age))
}

/// `Set-Cookie` that removes the session cookie.
pub fn clear_session(secure: bool) -> HeaderValue {
    header_value(ours(SESSION_COOKIE, String::new(), secure).max_age(Duration::ZERO))
}

/// `Set-Cookie` of `/theme` storing `theme` (for the system setting: removing the cookie); the same cookie the
/// page's script writes ([`Theme::set_cookie`]).
pub fn theme(theme: Theme) -> HeaderValue {
    let (value, max_age) = match theme {
        Theme::System => (String::new(), Duration::ZERO),
        other => (other.as_str().to_string(), THEME_MAX_AGE),
    };
    header_value(
        Cookie::build((Theme::COOKIE, value))
            .path("/")
            .same_site(SameSite::Lax)
            .max_age(max_age),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(header::COOKIE, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn cookies_are_read_with_the_crate() {
        let h = headers(&["a=b; flowstate_csrf=abc ; c=d", "flowstate_session=s1"]);
        assert_eq!(get(&h, CSRF_COOKIE).as_deref(), Some("abc"));
        assert_eq!(
            get(&h, SESSION_COOKIE).as_deref(),
            Some("s1"),
            "a second Cookie header"
        );
        assert_eq!(get(&h, "c").as_deref(), Some("d"));
        assert_eq!(get(&h, "missing"), None);
        let odd = headers(&[";;; =; flowstate_csrf; flowstate_csrf=first; flowstate_csrf=second"]);
        assert_eq!(
            get(&odd, CSRF_COOKIE).as_deref(),
            Some("first"),
            "pairs without `=` are skipped"
        );
        assert_eq!(
            get(&headers(&["flowstate_csrf=\"q\""]), CSRF_COOKIE).as_deref(),
            Some("q")
        );
        assert_eq!(get(&HeaderMap::new(), CSRF_COOKIE), None);
    }

    fn attributes(value: &HeaderValue) -> Cookie<'static> {
        Cookie::parse(value.to_str().unwrap().to_string()).unwrap()
    }

    #[test]
    fn our_cookies_are_http_only_strict_and_site_wide() {
        for (value, name, secure) in [
            (csrf("t", false), CSRF_COOKIE, false),
            (csrf("t", true), CSRF_COOKIE, true),
            (session("s", false), SESSION_COOKIE, false),
            (session("s", true), SESSION_COOKIE, true),
            (clear_session(true), SESSION_COOKIE, true),
        ] {
            let c = attributes(&value);
            assert_eq!(c.name(), name);
            assert_eq!(c.http_only(), Some(true), "{value:?}");
            assert_eq!(c.same_site(), Some(SameSite::Strict), "{value:?}");
            assert_eq!(c.path(), Some("/"), "{value:?}");
            assert_eq!(c.domain(), None, "{value:?}");
            assert_eq!(c.secure().unwrap_or(false), secure, "{value:?}");
        }
        assert_eq!(
            attributes(&session("s", false)).max_age(),
            Some(Duration::hours(8))
        );
        let cleared = attributes(&clear_session(false));
        assert_eq!((cleared.value(), cleared.max_age()), ("", Some(Duration::ZERO)));
        assert!(clear_session(false)
            .to_str()
            .unwrap()
            .starts_with("flowstate_session=;"));
        assert_eq!(
            attributes(&csrf("t", false)).max_age(),
            None,
            "a browser-session cookie"
        );
    }

    #[test]
    fn the_theme_cookie_is_the_one_the_page_writes() {
        for t in Theme::ALL {
            let ours = attributes(&theme(t));
            let page = Cookie::parse(t.set_cookie()).unwrap();
            assert_eq!(ours.name(), page.name(), "{t:?}");
            assert_eq!(ours.value(), page.value(), "{t:?}");
            assert_eq!(ours.path(), page.path(), "{t:?}");
            assert_eq!(ours.max_age(), page.max_age(), "{t:?}");
            assert_eq!(ours.same_site(), page.same_site(), "{t:?}");
            assert_eq!(ours.http_only(), None, "the page's script switches it: {t:?}");
        }
    }
}
