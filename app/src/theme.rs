//! Light, dark, or the system's choice.
//!
//! The choice lives in a cookie so the server renders `<html data-theme=…>` right on the first byte (no flash)
//! and the toggle works without JavaScript: each choice is a plain link to `GET /theme?set=…&back=…`, which sets
//! the cookie and redirects back (served by the binary, see `server/src/web`). After hydration the same links
//! switch the theme in place, without a navigation.

use serde::{Deserialize, Serialize};

/// The operator's theme choice.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Theme {
    /// Follow `prefers-color-scheme` (no `data-theme` attribute).
    #[default]
    System,
    /// Always light.
    Light,
    /// Always dark.
    Dark,
}

impl Theme {
    /// The cookie holding the choice.
    pub const COOKIE: &'static str = "flowstate_theme";
    /// Every choice, in the order the toggle shows them.
    pub const ALL: [Theme; 3] = [Theme::System, Theme::Light, Theme::Dark];

    /// The name used in the cookie and the `/theme?set=` link.
    pub fn as_str(self) -> &'static str {
        match self {
            Theme::System => "system",
            Theme::Light => "light",
            Theme::Dark => "dark",
        }
    }

    /// The label on the toggle.
    pub fn label(self) -> &'static str {
        match self {
            Theme::System => "System",
            Theme::Light => "Light",
            Theme::Dark => "Dark",
        }
    }

    /// A name back to a theme.
    pub fn parse(name: &str) -> Option<Theme> {
        Theme::ALL.into_iter().find(|t| t.as_str() == name.trim())
    }

    /// The value of `<html data-theme>`: none for the system setting.
    pub fn attribute(self) -> Option<&'static str> {
        match self {
            Theme::System => None,
            other => Some(other.as_str()),
        }
    }

    /// The theme in a request's `Cookie` headers (the system setting when absent or unreadable), read with the
    /// `cookie` crate: the first `flowstate_theme` naming a theme wins.
    #[cfg(feature = "ssr")]
    pub fn from_headers(headers: &http::HeaderMap) -> Theme {
        headers
            .get_all(http::header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(cookie::Cookie::split_parse)
            .filter_map(Result::ok)
            .filter(|c| c.name() == Theme::COOKIE)
            .find_map(|c| Theme::parse(c.value()))
            .unwrap_or_default()
    }

    /// The cookie that stores this choice, as the browser's `document.cookie` takes it (for the system setting:
    /// one that removes the cookie). The server's `/theme` sends the same cookie, built with the `cookie` crate
    /// (`server/src/web/security/cookies.rs`, which checks that both agree).
    pub fn set_cookie(self) -> String {
        match self {
            Theme::System => format!("{}=; Path=/; Max-Age=0; SameSite=Lax", Theme::COOKIE),
            other => format!(
                "{}={}; Path=/; Max-Age=31536000; SameSite=Lax",
                Theme::COOKIE,
                other.as_str()
            ),
        }
    }
}

/// The theme of the page being rendered: on the server from the request's cookie, in the browser from the
/// `data-theme` attribute the server wrote (so hydration sees the same value).
pub fn current() -> Theme {
    #[cfg(feature = "ssr")]
    {
        use leptos::prelude::use_context;
        use_context::<http::request::Parts>()
            .map(|parts| Theme::from_headers(&parts.headers))
            .unwrap_or_default()
    }
    #[cfg(all(feature = "hydrate", not(feature = "ssr")))]
    {
        leptos::prelude::document()
            .document_element()
            .and_then(|html| html.get_attribute("data-theme"))
            .and_then(|name| Theme::parse(&name))
            .unwrap_or_default()
    }
    #[cfg(not(any(feature = "ssr", feature = "hydrate")))]
    {
        Theme::System
    }
}

/// Switches the page to `theme` in place and remembers it in the cookie (browser only; a no-op elsewhere).
pub fn apply(theme: Theme) {
    #[cfg(feature = "hydrate")]
    {
        use wasm_bindgen::JsCast;
        let document = leptos::prelude::document();
        if let Some(html) = document.document_element() {
            let _ = match theme.attribute() {
                Some(value) => html.set_attribute("data-theme", value),
                None => html.remove_attribute("data-theme"),
            };
        }
        if let Ok(doc) = document.dyn_into::<web_sys::HtmlDocument>() {
            let _ = doc.set_cookie(&theme.set_cookie());
        }
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = theme;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_cookie_names_the_choice() {
        assert!(Theme::Dark.set_cookie().starts_with("flowstate_theme=dark;"));
        assert!(Theme::System.set_cookie().contains("Max-Age=0"));
    }

    #[cfg(feature = "ssr")]
    #[test]
    fn the_theme_is_read_from_the_cookie_headers() {
        let headers = |values: &[&str]| {
            let mut h = http::HeaderMap::new();
            for v in values {
                h.append(http::header::COOKIE, http::HeaderValue::from_str(v).unwrap());
            }
            h
        };
        assert_eq!(
            Theme::from_headers(&headers(&["a=b; flowstate_theme=dark; c=d"])),
            Theme::Dark
        );
        assert_eq!(
            Theme::from_headers(&headers(&["flowstate_theme=light"])),
            Theme::Light
        );
        assert_eq!(
            Theme::from_headers(&headers(&["flowstate_theme=purple"])),
            Theme::System
        );
        assert_eq!(Theme::from_headers(&headers(&[""])), Theme::System);
        assert_eq!(Theme::from_headers(&http::HeaderMap::new()), Theme::System);
        assert_eq!(
            Theme::from_headers(&headers(&[";;; =; flowstate_theme", "x=1; flowstate_theme=dark"])),
            Theme::Dark,
            "unreadable pairs are skipped, a second Cookie header is read"
        );
        assert_eq!(
            Theme::from_headers(&headers(&["flowstate_theme=bogus; flowstate_theme=light"])),
            Theme::Light
        );
    }
}
