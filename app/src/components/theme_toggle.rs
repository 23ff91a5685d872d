//! The light / dark / system switch in the header. See [`crate::theme`].

use leptos::prelude::*;
use leptos_router::hooks::use_location;

use crate::format::url_encode;
use crate::theme::{self, Theme};

/// Three links, one per theme. Without JavaScript each is a `GET /theme?set=…&back=<this page>` that sets the
/// cookie and comes back; once hydrated a click switches the theme in place.
#[component]
pub fn ThemeToggle() -> impl IntoView {
    let current = RwSignal::new(theme::current());
    let location = use_location();
    let back = Memo::new(move |_| {
        let path = location.pathname.get();
        let search = location.search.get();
        let search = search.trim_start_matches('?');
        if search.is_empty() {
            path
        } else {
            format!("{path}?{search}")
        }
    });
    let choices = Theme::ALL
        .into_iter()
        .map(|choice| {
            let selected = move || current.get() == choice;
            view! {
                <a
                    href=move || format!("/theme?set={}&back={}", choice.as_str(), url_encode(&back.get()))
                    rel="external"
                    class="theme-choice"
                    data-theme-choice=choice.as_str()
                    aria-current=move || selected().then_some("true")
                    on:click=move |ev| {
                        ev.prevent_default();
                        theme::apply(choice);
                        current.set(choice);
                    }
                >
                    {choice.label()}
                </a>
            }
        })
        .collect_view();
    view! {
        <div class="theme-toggle" role="group" aria-label="Colour theme">
            <span class="theme-label">"Theme:"</span>
            {choices}
        </div>
    }
}
