//! The guarded "delete this run" form, for the Run page.

use leptos::prelude::*;

use crate::format::{run_href, url_encode};
use crate::server::get_access;
use crate::server::runs_delete::DeleteRun;
use crate::server::session::Access;

/// A form that deletes one run after the operator types its id (and, for a running or paused run, checks that
/// they mean it). Posts to `delete_run`, which checks every guard on the server and, on success, goes to
/// `/runs`. Works without JavaScript: a refusal comes back to this page and is shown here.
///
/// When changes are not possible (read-only mode, not logged in) it says why instead of showing the form.
#[component]
pub fn DeleteRunForm(
    /// The run to delete.
    #[prop(into)]
    run_id: String,
    /// Its stored status: `running` and `paused` need an extra confirmation, which the form then asks for
    /// with a warning. Without it the form offers that confirmation for whatever status the run has.
    #[prop(optional, into)]
    status: Option<String>,
) -> impl IntoView {
    let access = Resource::new(|| (), |_| get_access());
    let action = ServerAction::<DeleteRun>::new();
    let error = move || {
        action.value().get().and_then(Result::err).map(|e| {
            view! { <p class="notice notice-error" role="alert" data-testid="delete-run-error">{e.to_string()}</p> }
        })
    };
    view! {
        <section class="danger-zone" aria-labelledby="delete-run-heading">
            <h2 id="delete-run-heading">"Delete this run"</h2>
            {error}
            <Suspense fallback=|| ()>
                {move || {
                    let run_id = run_id.clone();
                    let status = status.clone();
                    Suspend::new(async move {
                        match access.await {
                            Ok(access) => view! { <DeleteRunFields access run_id status action/> }.into_any(),
                            Err(e) => view! { <p class="notice notice-error">{e.to_string()}</p> }.into_any(),
                        }
                    })
                }}
            </Suspense>
        </section>
    }
}

#[component]
fn DeleteRunFields(
    access: Access,
    run_id: String,
    status: Option<String>,
    action: ServerAction<DeleteRun>,
) -> impl IntoView {
    if !access.can_change() {
        let login = access.needs_login().then(|| {
            let href = format!("/login?next={}", url_encode(&run_href(&run_id)));
            view! { <a href=href>"Log in to delete it"</a> }
        });
        let reason = access.refusal.clone().unwrap_or_default();
        return view! {
            <p class="notice" data-testid="delete-run-refusal">
                "Deleting is not possible here: " {reason} ". " {login}
            </p>
        }
        .into_any();
    }
    let warning = match status.as_deref() {
        Some(s) if flowstate_model::Status::from_name(s).is_active() => Some(
            view! {
                <p class="notice notice-warning">
                    <strong>{format!("This run is {s}.")}</strong>
                    " A worker may still be writing it; deleting it now can make that worker fail or start over."
                </p>
                <p class="check">
                    <input type="checkbox" id="delete-run-active-ok" name="active_ok" value="yes"/>
                    <label for="delete-run-active-ok">{format!("Delete it even though it is {s}")}</label>
                </p>
            }
            .into_any(),
        ),
        Some(_) => None,
        None => Some(
            view! {
                <p class="check">
                    <input type="checkbox" id="delete-run-active-ok" name="active_ok" value="yes"/>
                    <label for="delete-run-active-ok">
                        "If the run is running or paused, delete it anyway (a worker may still be writing it)"
                    </label>
                </p>
            }
            .into_any(),
        ),
    };
    view! {
        <p>
            "Deleting removes the run’s stored state for good. The deletion is written to the audit log, "
            "shown on the " <a href="/cleanup#history-heading">"Cleanup"</a> " page."
        </p>
        <ActionForm action=action attr:class="confirm-form" attr:data-testid="delete-run-form">
            <input type="hidden" name="run_id" value=run_id.clone()/>
            <input type="hidden" name="csrf" value=access.csrf.clone()/>
            {warning}
            <p class="field">
                <label for="delete-run-confirm">
                    "Type the run id " <code class="run-id">{run_id.clone()}</code> " to confirm"
                </label>
                <input
                    id="delete-run-confirm"
                    name="confirm"
                    type="text"
                    required
                    autocomplete="off"
                    spellcheck="false"
                    autocapitalize="off"
                />
            </p>
            <button type="submit" class="button-danger">"Delete run"</button>
        </ActionForm>
    }
    .into_any()
}
