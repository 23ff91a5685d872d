//! `/login`: the admin token form (when `FLOWSTATE_ADMIN_TOKEN` is set, changes need a login), and logging out.

use crate::components::PageTitle;
use leptos::prelude::*;
use leptos_router::hooks::use_query_map;

use crate::components::ErrorPage;
use crate::server::get_access;
use crate::server::session::{login_target, Access, Login, Logout};

/// The login page. `?next=/path` is where a successful login goes (a local path; `/cleanup` by default).
#[component]
pub fn LoginPage() -> impl IntoView {
    let query = use_query_map();
    let login = ServerAction::<Login>::new();
    let logout = ServerAction::<Logout>::new();
    let access = Resource::new(
        move || (login.version().get(), logout.version().get()),
        |_| get_access(),
    );
    let next = Memo::new(move |_| login_target(query.read().get_str("next")));
    let logged_out = Memo::new(move |_| query.read().get_str("out").is_some());
    view! {
        <PageTitle text="Log in"/>
        <h1>"Log in"</h1>
        <Suspense fallback=|| view! { <p class="loading">"…"</p> }>
            {move || Suspend::new(async move {
                match access.await {
                    Ok(access) => view! {
                        <LoginView access next=next.get() logged_out=logged_out.get() login logout/>
                    }
                    .into_any(),
                    Err(error) => view! { <ErrorPage error/> }.into_any(),
                }
            })}
        </Suspense>
    }
}

#[component]
fn LoginView(
    access: Access,
    next: String,
    logged_out: bool,
    login: ServerAction<Login>,
    logout: ServerAction<Logout>,
) -> impl IntoView {
    let error = move || {
        login.value().get().and_then(Result::err).map(|e| {
            view! { <p class="notice notice-error" role="alert" data-testid="login-error">{e.to_string()}</p> }
        })
    };
    if !access.token_required {
        return view! {
            <p class="notice">
                "No admin token is configured (FLOWSTATE_ADMIN_TOKEN), so there is nothing to log in to. "
                {match access.refusal {
                    None => "Changes are allowed because the server listens on this machine only.".to_string(),
                    Some(reason) => format!("Changes are refused: {reason}."),
                }}
            </p>
        }
        .into_any();
    }
    if access.logged_in {
        return view! {
            <p class="notice notice-success" role="status">"You are logged in with the admin token."</p>
            <p><a href=next>"Continue"</a></p>
            <ActionForm action=logout attr:class="logout-form">
                <input type="hidden" name="csrf" value=access.csrf.clone()/>
                <button type="submit" class="quiet-button">"Log out"</button>
            </ActionForm>
        }
        .into_any();
    }
    view! {
        {logged_out.then(|| view! { <p class="notice" role="status">"You are logged out."</p> })}
        {access.read_only.then(|| view! {
            <p class="notice notice-warning">
                "The dashboard is in read-only mode: even logged in, every change is refused."
            </p>
        })}
        <p>"Changes (deleting runs, cleanups) need the admin token this server was started with."</p>
        {error}
        <ActionForm action=login attr:class="login-form" attr:data-testid="login-form">
            <input type="hidden" name="csrf" value=access.csrf.clone()/>
            <input type="hidden" name="next" value=next/>
            <p class="field">
                <label for="token">"Admin token"</label>
                <input id="token" name="token" type="password" autocomplete="current-password" required/>
            </p>
            <button type="submit" class="button-primary">"Log in"</button>
        </ActionForm>
    }
    .into_any()
}
