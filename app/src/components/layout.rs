//! The frame of every page: skip link, header with the navigation and the theme toggle, mode banners, main.

use leptos::prelude::*;
use leptos_router::components::A;

use crate::components::ThemeToggle;
use crate::server::get_settings;

/// Wraps a page. The navigation marks the current page with `aria-current="page"`.
#[component]
pub fn Layout(children: Children) -> impl IntoView {
    let settings = Resource::new(|| (), |_| get_settings());
    view! {
        <a class="skip-link" href="#main">"Skip to content"</a>
        <header class="site-header">
            <a class="brand" href="/">"flowstate"</a>
            <nav aria-label="Main">
                <ul>
                    <li><A href="/" exact=true>"Overview"</A></li>
                    <li><A href="/runs">"Runs"</A></li>
                    <li><A href="/failures">"Failures"</A></li>
                    <li><A href="/pipelines">"Pipelines"</A></li>
                    <li><A href="/cleanup">"Cleanup"</A></li>
                </ul>
            </nav>
            <ThemeToggle/>
        </header>
        <Suspense fallback=|| ()>
            {move || Suspend::new(async move {
                let s = settings.await.unwrap_or_default();
                view! {
                    {s.demo.then(|| view! {
                        <p class="banner banner-demo">
                            "Demo mode: this is a throw-away database with generated runs."
                        </p>
                    })}
                    {s.read_only.then(|| view! {
                        <p class="banner banner-read-only">
                            "Read-only mode: this dashboard shows runs but refuses every change."
                        </p>
                    })}
                }
            })}
        </Suspense>
        <main id="main" tabindex="-1">{children()}</main>
        <footer class="site-footer">
            <p>"flowstate — workflow state for flujo"</p>
        </footer>
    }
}
