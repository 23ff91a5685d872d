//! The time-window picker of the Failures and Pipelines pages (one component, two pages): the shortcut windows as
//! plain links, then two small GET forms, a span (`3h`, `90m`, `7d`) and a start instant (24-hour text, UTC). All
//! of it works without JavaScript; the current window is marked. The page's other choices (its filter, the trend's
//! days) ride along: in the shortcut links (the page builds them) and as hidden fields of both forms.

use leptos::prelude::*;

use crate::spans::Window;

/// The picker for the page at `action` (`/failures`, `/pipelines`), showing `current`. `href` gives a shortcut
/// window's address on that page; `hidden` are the page's other choices as `(name, value)` fields of both forms
/// (after the window field, so a form's address reads as the links do: the window first).
#[component]
pub fn WindowPicker(
    action: &'static str,
    current: Window,
    href: impl Fn(Window) -> String + 'static,
    #[prop(optional)] hidden: Vec<(&'static str, String)>,
) -> impl IntoView {
    let links = Window::SHORTCUTS
        .into_iter()
        .map(|w| {
            let here = w == current;
            view! {
                <li>
                    <a
                        href=href(w)
                        aria-current=here.then_some("page")
                        class=if here { "segment segment-current" } else { "segment" }
                    >
                        {format!("Last {}", w.span_label())}
                    </a>
                </li>
            }
        })
        .collect_view();
    let custom = (!current.is_shortcut()).then(|| {
        view! {
            <li>
                <span class="segment segment-current" aria-current="page">{capitalized(&current.label())}</span>
            </li>
        }
    });
    let keep = || {
        hidden
            .iter()
            .map(|(name, value)| view! { <input type="hidden" name=*name value=value.clone()/> })
            .collect_view()
    };
    view! {
        <nav class="window-picker" aria-label="Time window">
            <ul>{links}{custom}</ul>
            <form class="window-form" method="get" action=action data-testid="window-form">
                <label>
                    "Last "
                    <input
                        type="text"
                        name=Window::PARAM
                        value=current.span_input().unwrap_or_default()
                        placeholder="3h, 90m, 7d"
                        size="7"
                        maxlength="24"
                        pattern="\\s*[0-9]+\\s*[A-Za-z]{1,3}\\s*"
                        title="A whole number and a unit: 90m, 3h, 7d (1m to 365d)"
                        required
                    />
                </label>
                {keep()}
                <button type="submit">"Show"</button>
            </form>
            <form class="window-form" method="get" action=action data-testid="since-form">
                <label>
                    "Since "
                    // Text, 24-hour: a `datetime-local` field shows AM/PM in an en-US Chromium (spans.rs).
                    <input
                        type="text"
                        name=Window::SINCE_PARAM
                        value=current.since_input().unwrap_or_default()
                        placeholder="YYYY-MM-DD HH:MM"
                        pattern=crate::spans::INSTANT_PATTERN
                        title="A date and a 24-hour time in UTC: 2026-03-14 13:45, or a date"
                        size="16"
                        maxlength="40"
                        required
                    />
                    " UTC"
                </label>
                {keep()}
                <button type="submit">"Show"</button>
            </form>
        </nav>
    }
}

/// `last 3 h` → `Last 3 h`.
pub fn capitalized(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// A wide table that scrolls sideways on a narrow screen: the "Scroll sideways" hint (shown on phones by the
/// style sheet) and the scrolling region, focusable so a keyboard can scroll it, named `label` for screen readers.
#[component]
pub fn ScrollTable(#[prop(into)] label: String, children: Children) -> impl IntoView {
    view! {
        <p class="scroll-hint" aria-hidden="true">"Scroll sideways for more columns →"</p>
        <div class="data-scroll" role="region" aria-label=label tabindex="0">
            {children()}
        </div>
    }
}
