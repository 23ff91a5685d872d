//! # flowstate-app
//!
//! The operators' dashboard as a Leptos application, compiled twice:
//!
//! - with `ssr` into the server binary: every route renders complete HTML (`SsrMode::Async`), server functions
//!   (in [`server`]) read the [`flowstate_store::Store`] the binary puts in the Leptos context;
//! - with `hydrate` into `flowstate.wasm`: [`hydrate`] attaches to that HTML and adds small comforts.
//!
//! Pages never see SQL; the browser never sees the store. Values crossing the wire are the serde types of
//! [`model`]; failures are [`AppError`].

#[cfg(feature = "ssr")]
pub mod charts;
pub mod components;
pub mod error;
pub mod format;
pub mod model;
pub mod pages;
pub mod server;
pub mod spans;
pub mod steps;
pub mod theme;

use leptos::prelude::*;
use leptos_meta::{provide_meta_context, MetaTags};
use leptos_router::components::{Route, Router, Routes};
use leptos_router::{path, SsrMode};

pub use error::AppError;

use components::title::SiteTitle;
use components::{Layout, NotFoundPage};
use pages::{CleanupPage, FailuresPage, LoginPage, OverviewPage, PipelinesPage, RunPage, RunsPage};

/// The URL of the stylesheet (built by `scripts/build-site.sh` from `style/main.css`).
pub const STYLESHEET: &str = "/pkg/flowstate.css";

/// The HTML document around the app, rendered on the server only.
///
/// The theme cookie is read here so `<html data-theme>` is right from the first byte.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    let theme = theme::current();
    view! {
        <!DOCTYPE html>
        <html lang="en" data-theme=theme.attribute()>
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <link rel="stylesheet" href=STYLESHEET/>
                <link rel="icon" href="/favicon.svg" type="image/svg+xml"/>
                <HydrationScripts options/>
                <MetaTags/>
            </head>
            <body>
                <App/>
            </body>
        </html>
    }
}

/// The application: layout and routes. Every route renders with `SsrMode::Async`, so the server sends the page
/// only when its data is in it: complete without JavaScript.
#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    view! {
        <SiteTitle/>
        <Router>
            <Layout>
                <Routes fallback=NotFoundPage>
                    <Route path=path!("/") view=OverviewPage ssr=SsrMode::Async/>
                    <Route path=path!("/runs") view=RunsPage ssr=SsrMode::Async/>
                    <Route path=path!("/runs/:run_id") view=RunPage ssr=SsrMode::Async/>
                    // The same page for ids a path cannot carry (`.`, `..`): `/run?id=..`.
                    <Route path=path!("/run") view=RunPage ssr=SsrMode::Async/>
                    <Route path=path!("/failures") view=FailuresPage ssr=SsrMode::Async/>
                    <Route path=path!("/pipelines") view=PipelinesPage ssr=SsrMode::Async/>
                    <Route path=path!("/cleanup") view=CleanupPage ssr=SsrMode::Async/>
                    <Route path=path!("/login") view=LoginPage ssr=SsrMode::Async/>
                </Routes>
            </Layout>
        </Router>
    }
}

/// The browser entry point, called by the script [`HydrationScripts`] writes: attaches to the server's HTML.
///
/// When it is done it marks `<html data-hydrated="true">`, which the end-to-end tests wait for.
#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_body(App);
    if let Some(html) = document().document_element() {
        let _ = html.set_attribute("data-hydrated", "true");
    }
}
