//! The answer to a refused request: a small page for a browser's form post, the server functions' JSON error for
//! `fetch` and scripts. It says why, and that nothing was changed.

use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use flowstate_app::theme::Theme;
use flowstate_app::AppError;
use html_escape::{encode_double_quoted_attribute, encode_text};

/// The refusal of a request with these headers, with the status of `error`.
pub fn refusal(headers: &HeaderMap, error: &AppError) -> Response {
    let status = StatusCode::from_u16(error.status()).unwrap_or(StatusCode::FORBIDDEN);
    let wants_html = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/html"));
    if !wants_html {
        let body = serde_json::to_string(error).unwrap_or_else(|_| "{}".into());
        return (status, [(header::CONTENT_TYPE, "application/json")], body).into_response();
    }
    (
        status,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        page(status, error, Theme::from_headers(headers)),
    )
        .into_response()
}

/// The refusal page. Every text in it is escaped (`html-escape`): the message quotes what the request sent
/// (its `Host`, its `Origin`).
fn page(status: StatusCode, error: &AppError, theme: Theme) -> String {
    let theme_attr = theme
        .attribute()
        .map(|t| format!(" data-theme=\"{}\"", encode_double_quoted_attribute(t)))
        .unwrap_or_default();
    let code = status.as_u16();
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"{theme_attr}><head><meta charset=\"utf-8\"/>\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"/>\
         <title>{title} ({code}) · flowstate</title>\
         <link rel=\"stylesheet\" href=\"{css}\"/><link rel=\"icon\" href=\"/favicon.svg\" type=\"image/svg+xml\"/>\
         </head><body><header class=\"site-header\"><a class=\"brand\" href=\"/\">flowstate</a></header>\
         <main id=\"main\"><section class=\"error-page\" role=\"alert\" data-status=\"{code}\">\
         <h1>{title} <span class=\"error-code\">({code})</span></h1><p>{message}</p>\
         <p class=\"hint\">Nothing was changed. Go back, reload the page and try again.</p>\
         <p><a href=\"/\">Back to the overview</a></p></section></main></body></html>",
        css = encode_double_quoted_attribute(flowstate_app::STYLESHEET),
        title = encode_text(error.title()),
        message = encode_text(&error.to_string()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_refusal_page_escapes_what_the_client_sent() {
        let error = AppError::Forbidden {
            reason: "the request was for “<script>alert(1)</script>&\"'”".into(),
        };
        let html = page(StatusCode::FORBIDDEN, &error, Theme::Dark);
        assert!(
            html.contains("&lt;script&gt;alert(1)&lt;/script&gt;&amp;"),
            "{html}"
        );
        assert!(!html.contains("<script"), "{html}");
        assert!(html.contains("<html lang=\"en\" data-theme=\"dark\">"));
        assert!(html.contains("Nothing was changed"));
    }
}
