//! A large value of a run, pretty-printed in a collapsible block, cut when large, with links to all of it.

use leptos::prelude::*;

use crate::model::JsonBlock;

/// `1536` → `1.5 KB`.
pub fn size(bytes: usize) -> String {
    if bytes < 1024 {
        format!("{bytes} B")
    } else if bytes < 1024 * 1024 {
        format!("{:.1} KB", bytes as f64 / 1024.0)
    } else {
        format!("{:.1} MB", bytes as f64 / (1024.0 * 1024.0))
    }
}

/// The note over a cut value (`block.cut`): how much of it is shown, and where it is whole: `see_all` in the page
/// (unless it is too large for one), `raw` as plain text. The links' test ids start with `id` (`context-raw`).
pub fn cut_note(id: &str, block: &JsonBlock, see_all: String, raw: String) -> impl IntoView {
    let whole = if block.too_large {
        view! { "Too large to show in a page; " }.into_any()
    } else {
        view! {
            <a href=see_all data-testid=format!("{id}-see-all")>"Show all"</a>
            " or "
        }
        .into_any()
    };
    view! {
        <p class="json-cut">
            {format!("Showing the first {} of {}. ", size(block.text.len()), size(block.total_bytes))}
            {whole}
            <a href=raw data-testid=format!("{id}-raw")>"open it as plain text"</a>
            "."
        </p>
    }
}

/// A `<details>` block (works without JavaScript) titled by an `<h2>`. When the value was cut, a note says how
/// much is shown and `see_all` leads to the whole value.
#[component]
pub fn JsonView(
    /// The element id, so `see_all` can come back to this block (`#context`).
    id: &'static str,
    /// The heading.
    title: &'static str,
    /// The value; `None` shows `empty` instead.
    block: Option<JsonBlock>,
    /// What to say when there is no value (e.g. "NULL: no step has produced output").
    #[prop(optional)]
    empty: &'static str,
    /// The address showing this value whole in the page.
    see_all: String,
    /// The address of this value whole as plain text (any size).
    raw: String,
    /// Open at first.
    #[prop(optional)]
    open: bool,
    /// What one item of a list is called ("step"), for the summary line.
    #[prop(optional)]
    item: &'static str,
) -> impl IntoView {
    let heading_id = format!("{id}-heading");
    let meta = block.as_ref().map(|b| {
        let items = match (b.items, item.is_empty()) {
            (Some(1), false) => format!("1 {item}, "),
            (Some(n), false) => format!("{n} {item}s, "),
            (Some(n), true) => format!("{n} items, "),
            (None, _) => String::new(),
        };
        format!("{items}{}", size(b.total_bytes))
    });
    let body = match block {
        Some(b) => {
            let note = b.cut.then(|| cut_note(id, &b, see_all, raw));
            view! {
                {note}
                <pre class="json" tabindex="0"><code>{b.text}</code></pre>
            }
            .into_any()
        }
        None => view! { <p class="json-empty">{empty}</p> }.into_any(),
    };
    view! {
        <section class="json-section" id=id>
            <details class="json-block" open=open>
                <summary>
                    <h2 id=heading_id.clone()>{title}</h2>
                    {meta.map(|m| view! { <span class="json-meta">{m}</span> })}
                </summary>
                {body}
            </details>
        </section>
    }
}

#[cfg(test)]
mod tests {
    use super::size;

    #[test]
    fn sizes_read_well() {
        assert_eq!(size(900), "900 B");
        assert_eq!(size(16 * 1024), "16.0 KB");
        assert_eq!(size(90_340), "88.2 KB");
        assert_eq!(size(3 * 1024 * 1024), "3.0 MB");
    }
}
