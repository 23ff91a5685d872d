//! The page title, escaped.
//!
//! leptos_meta 0.8 writes the text of `<Title>` into the server's `<head>` **as it is**, unescaped (its
//! `ServerMetaContext::inject_meta_context` pushes the string between `<title>` and `</title>`). A run id such as
//! `</title><meta http-equiv="refresh" ...>` would then become markup in every operator's page. Every title of
//! the dashboard goes through [`PageTitle`], which escapes the text on the server; in the browser the text is
//! set with `document.title`, which takes plain text, so it is passed as it is there.
//!
//! `leptos_meta::Title` is used nowhere else (a test of this module checks the sources).

use leptos::prelude::*;
use leptos_meta::Title;

/// The text of this page's `<title>` (the app adds " · flowstate"). Safe for any text.
#[component]
pub fn PageTitle(
    /// Plain text; markup in it is shown as text.
    #[prop(into)]
    text: String,
) -> impl IntoView {
    view! { <Title text=for_head(text)/> }
}

/// The suffix every title gets: `Runs · flowstate`. Rendered once, by the app.
#[component]
pub fn SiteTitle() -> impl IntoView {
    view! { <Title formatter=|page: String| format!("{page} · flowstate")/> }
}

/// The title text as it must reach leptos_meta: escaped on the server, plain in the browser.
fn for_head(text: String) -> String {
    #[cfg(feature = "ssr")]
    {
        html_escape::encode_text(&text).into_owned()
    }
    #[cfg(not(feature = "ssr"))]
    {
        text
    }
}

#[cfg(test)]
mod tests {
    #[cfg(feature = "ssr")]
    #[test]
    fn the_server_title_is_escaped() {
        let text = r#"</title><meta http-equiv="refresh" content="0;url=//evil.example">&amp;"#;
        let escaped = super::for_head(text.to_string());
        assert!(!escaped.contains('<') && !escaped.contains('>'), "{escaped}");
        assert_eq!(
            html_escape::decode_html_entities(&escaped),
            text,
            "the text itself is kept"
        );
    }

    /// No page uses leptos_meta's `Title` directly: it does not escape on the server.
    #[test]
    fn no_page_uses_the_unescaped_title() {
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut offenders = Vec::new();
        let mut stack = vec![src];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).expect("the sources are readable") {
                let path = entry.expect("an entry").path();
                if path.is_dir() {
                    stack.push(path);
                } else if path.extension().is_some_and(|e| e == "rs")
                    && !path.ends_with("components/title.rs")
                {
                    let text = std::fs::read_to_string(&path).expect("a source file");
                    let imports_title = text.lines().any(|line| {
                        line.contains("leptos_meta::")
                            && line
                                .split(|c: char| !c.is_alphanumeric() && c != '_')
                                .any(|word| word == "Title")
                    });
                    if imports_title || text.contains("<Title ") {
                        offenders.push(path.display().to_string());
                    }
                }
            }
        }
        assert!(
            offenders.is_empty(),
            "use components::PageTitle instead of leptos_meta::Title in {offenders:?}"
        );
    }
}
