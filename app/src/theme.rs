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

    /// The theme in a `Cookie:` header (the system setting when absent or unreadable).
    pub fn from_cookie_header(header: &str) -> Theme {
        header
            .split(';')
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(name, _)| *name == Theme::COOKIE)
            .and_then(|(_, value)| Theme::parse(value))
            .unwrap_or_default()
    }

    /// A `Set-Cookie` value that stores this choice (for the system setting: one that removes the cookie).
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
            .and_then(|parts| {
                parts
                    .headers
                    .get_all(http::header::COOKIE)
                    .iter()
                    .filter_map(|v| v.to_str().ok())
                    .map(Theme::from_cookie_header)
                    .find(|t| *t != Theme::System)
            })
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
    fn cookie_round_trip() {
        assert_eq!(
            Theme::from_cookie_header("a=b; flowstate_theme=dark; c=d"),
            Theme::Dark
        );
        assert_eq!(Theme::from_cookie_header("flowstate_theme=light"), Theme::Light);
        assert_eq!(Theme::from_cookie_header("flowstate_theme=purple"), Theme::System);
        assert_eq!(Theme::from_cookie_header(""), Theme::System);
        assert!(Theme::Dark.set_cookie().starts_with("flowstate_theme=dark;"));
        assert!(Theme::System.set_cookie().contains("Max-Age=0"));
    }
}
