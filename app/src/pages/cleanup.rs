//! `/cleanup`: the guarded cleanup.
//!
//! 1. The policy form is a plain GET form: the policy goes into the URL (`?days=30&status=…&pipeline=…&preview=1`)
//!    and the page renders the dry-run preview for it (counts by status and pipeline, oldest and newest last
//!    activity, cutoff).
//! 2. The confirmation form (an `ActionForm` posting to `run_cleanup`) asks the operator to type the previewed
//!    count. The server deletes only if that count is still what the policy matches; otherwise it refuses, and
//!    the page (the same URL, rendered again) shows the new preview and the message.
//! 3. After a cleanup the server sends the browser to `…&done=<audit id>`; the page shows the result from that
//!    audit entry, and the history of changes (the audit log) below.
//!
//! Every step works without JavaScript: a refused confirmation comes back to the page with the error in the URL
//! (leptos' `__err`), which the action shows.

use crate::components::PageTitle;
use leptos::prelude::*;
use leptos_router::hooks::use_query_map;
use serde::{Deserialize, Serialize};

use crate::components::{ErrorPage, StatusBadge};
use crate::error::AppError;
use crate::format::{count, url_encode};
use crate::server::cleanup::{
    AuditRow, CleanupChoices, CleanupPolicyForm, PreviewView, RunCleanup, When, CLEANUP_STATUSES,
};
use crate::server::session::{Access, Logout};
use crate::server::{cleanup_options, get_access, preview_cleanup};

/// What the URL asks for.
#[derive(Debug, Clone, PartialEq)]
struct CleanupRequest {
    /// The policy, or why the URL's is not acceptable (a 400 page).
    policy: Result<CleanupPolicyForm, AppError>,
    /// The policy form was sent: show the preview.
    preview: bool,
    /// The audit entry of a change just made.
    done: Option<i64>,
    /// The page's own address, for the login link.
    here: String,
}

/// Everything the page shows, read in one go.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct CleanupData {
    policy: CleanupPolicyForm,
    access: Access,
    options: CleanupChoices,
    preview: Option<PreviewView>,
}

/// The Cleanup page.
#[component]
pub fn CleanupPage() -> impl IntoView {
    let query = use_query_map();
    let run = ServerAction::<RunCleanup>::new();
    let logout = ServerAction::<Logout>::new();
    let request = Memo::new(move |_| {
        let q = query.read();
        let preview = q.get_str("preview").is_some();
        let policy =
            CleanupPolicyForm::from_query(q.get("days"), q.get_all("status"), q.get("pipeline"), preview);
        let done = q.get_str("done").and_then(|d| d.parse().ok());
        let here = match &policy {
            Ok(p) if preview => format!("/cleanup?{}&preview=1", p.query()),
            _ => "/cleanup".to_string(),
        };
        CleanupRequest {
            policy,
            preview,
            done,
            here,
        }
    });
    // One resource for the whole page: several resources resolving at once in one <Suspense> can race in
    // Leptos' server rendering (leptos#4851), and one round trip is all the page needs anyway.
    let data = Resource::new(
        move || (request.get(), run.version().get(), logout.version().get()),
        |(request, _, _)| async move {
            let policy = request.policy?;
            let access = get_access().await.unwrap_or_else(|e| Access {
                refusal: Some(e.to_string()),
                ..Default::default()
            });
            let options = cleanup_options().await?;
            let preview = if request.preview {
                Some(
                    preview_cleanup(
                        policy.days.to_string(),
                        policy.statuses_csv(),
                        policy.pipeline.clone().unwrap_or_default(),
                    )
                    .await?,
                )
            } else {
                None
            };
            Ok::<_, AppError>(CleanupData {
                policy,
                access,
                options,
                preview,
            })
        },
    );

    view! {
        <PageTitle text="Cleanup"/>
        <Suspense fallback=|| view! { <p class="loading">"Reading the cleanup policy…"</p> }>
            {move || Suspend::new(async move {
                let request = request.get();
                let CleanupData { policy, access, options, preview } = match data.await {
                    Ok(d) => d,
                    Err(error) => return view! { <ErrorPage error/> }.into_any(),
                };
                view! { <CleanupView request policy access options preview run logout/> }.into_any()
            })}
        </Suspense>
    }
}

#[component]
fn CleanupView(
    request: CleanupRequest,
    policy: CleanupPolicyForm,
    access: Access,
    options: CleanupChoices,
    preview: Option<PreviewView>,
    run: ServerAction<RunCleanup>,
    logout: ServerAction<Logout>,
) -> impl IntoView {
    let done = request
        .done
        .map(|id| (id, options.history.iter().find(|e| e.id == id).cloned()));
    let refused = move || {
        run.value().get().and_then(Result::err).map(|e| {
            view! {
                <div class="notice notice-error" role="alert" data-testid="cleanup-error">
                    <p>{e.to_string()}</p>
                </div>
            }
            .into_any()
        })
    };
    view! {
        <h1>"Cleanup"</h1>
        <p class="lead">
            "Delete runs whose last activity is older than a number of days. Nothing is deleted until you have seen "
            "a preview and typed the number of runs it shows; every deletion is written to the history below."
        </p>
        <AccessNotice access=access.clone() here=request.here.clone() logout/>
        {done.map(|(id, entry)| view! { <DoneNotice id entry/> }.into_any())}
        {refused}
        <PolicyForm policy=policy.clone() pipelines=options.pipelines.clone()/>
        {preview.map(|p| view! { <PreviewSection preview=p access=access.clone() run/> }.into_any())}
        <History history=options.history highlight=request.done/>
    }
    .into_any()
}

/// Says when changes are refused here (read-only, login needed), with a login link or a logout button.
#[component]
fn AccessNotice(access: Access, here: String, logout: ServerAction<Logout>) -> impl IntoView {
    if access.logged_in {
        return view! {
            <div class="notice notice-session">
                <p>"Logged in with the admin token."</p>
                <ActionForm action=logout attr:class="logout-form">
                    <input type="hidden" name="csrf" value=access.csrf.clone()/>
                    <button type="submit" class="quiet-button">"Log out"</button>
                </ActionForm>
            </div>
        }
        .into_any();
    }
    match access.refusal.clone() {
        None => ().into_any(),
        Some(reason) => {
            let login = access.needs_login().then(|| {
                let href = format!("/login?next={}", url_encode(&here));
                view! { " " <a href=href>"Log in"</a> " to delete runs." }
            });
            view! {
                <p class="notice notice-warning" data-testid="cleanup-refusal">
                    "Previews work, but deleting is not possible here: " {reason} "." {login}
                </p>
            }
            .into_any()
        }
    }
}

#[component]
fn DoneNotice(id: i64, entry: Option<AuditRow>) -> impl IntoView {
    let text = match &entry {
        Some(e) if e.action == "cleanup" => {
            let mut t = format!("Deleted {} runs: {}.", count(e.affected), e.target);
            if let Some(freed) = e.bytes_freed {
                t.push_str(&format!(" Freed {}", crate::format::bytes(freed)));
                match e.bytes_returned.filter(|r| *r > 0) {
                    Some(r) => t.push_str(&format!(
                        ", {} of it given back to the file system.",
                        crate::format::bytes(r)
                    )),
                    None => t.push('.'),
                }
            }
            if let Some(m) = e.matched.filter(|m| *m != e.affected) {
                t.push_str(&format!(
                    " The confirmed preview showed {}; runs that changed meanwhile were kept.",
                    count(m)
                ));
            }
            t
        }
        Some(e) => format!("Done: {} {} ({} runs).", e.action, e.target, count(e.affected)),
        None => format!("Change #{id} was made; it is no longer among the newest entries of the history."),
    };
    view! {
        <div class="notice notice-success" role="status" data-testid="cleanup-done">
            <p>{text}</p>
            <p class="hint">{format!("History entry #{id}.")}</p>
        </div>
    }
    .into_any()
}

#[component]
fn PolicyForm(policy: CleanupPolicyForm, pipelines: Vec<String>) -> impl IntoView {
    let checkboxes = CLEANUP_STATUSES
        .iter()
        .map(|s| {
            let id = format!("status-{s}");
            let checked = policy.statuses.iter().any(|p| p == s);
            let active = flowstate_model::status::ACTIVE_NAMES.contains(s);
            view! {
                <li class="check" class:check-active=active>
                    <input type="checkbox" id=id.clone() name="status" value=*s checked=checked/>
                    <label for=id>
                        <StatusBadge status=*s/>
                        {active.then(|| view! {
                            <span class="check-warning">
                                " only when abandoned: a worker may still be writing these runs"
                            </span>
                        })}
                    </label>
                </li>
            }
        })
        .collect_view();
    let mut choices = pipelines;
    if let Some(p) = &policy.pipeline {
        if !choices.contains(p) {
            choices.insert(0, p.clone());
        }
    }
    let selected = policy.pipeline.clone().unwrap_or_default();
    let pipeline_options = choices
        .into_iter()
        .map(|p| {
            let is = p == selected;
            let label = p.clone();
            view! { <option value=p selected=is>{label}</option> }
        })
        .collect_view();
    view! {
        <section aria-labelledby="policy-heading" class="cleanup-step">
            <h2 id="policy-heading">"1. Policy"</h2>
            <form method="get" action="/cleanup" class="policy-form" data-testid="policy-form">
                <input type="hidden" name="preview" value="1"/>
                <p class="field">
                    <label for="days">"Last activity more than (days) ago"</label>
                    <input
                        id="days"
                        name="days"
                        type="number"
                        inputmode="numeric"
                        min="1"
                        max=flowstate_model::limits::MAX_CLEANUP_DAYS
                        required
                        value=policy.days
                    />
                </p>
                <fieldset class="field">
                    <legend>"Statuses"</legend>
                    <ul class="checks">{checkboxes}</ul>
                    <p class="hint">"Running and paused runs are deleted only when checked here."</p>
                </fieldset>
                <p class="field">
                    <label for="pipeline">"Pipeline"</label>
                    <select id="pipeline" name="pipeline">
                        <option value="" selected=selected.is_empty()>"Every pipeline"</option>
                        {pipeline_options}
                    </select>
                </p>
                <p>
                    <button type="submit" class="button-primary">"Preview"</button>
                    " "
                    <span class="hint">"Shows what would be deleted; deletes nothing."</span>
                </p>
            </form>
        </section>
    }
    .into_any()
}

fn when_view(w: Option<When>) -> AnyView {
    match w {
        Some(When { iso, text }) => view! { <time datetime=iso>{text}</time> }.into_any(),
        None => view! { <span class="muted">"—"</span> }.into_any(),
    }
}

#[component]
fn PreviewSection(preview: PreviewView, access: Access, run: ServerAction<RunCleanup>) -> impl IntoView {
    let PreviewView {
        policy,
        cutoff,
        matched,
        by_status,
        by_pipeline,
        oldest,
        newest,
        estimated_bytes,
    } = preview;
    let estimate = estimated_bytes.map(|(bytes, exact)| {
        let how = if exact {
            "the stored size of their values; indexes not counted"
        } else {
            "the stored size of their values, measured on the oldest 10,000 and scaled; indexes not counted"
        };
        view! {
            <div>
                <dt>"Would free about"</dt>
                <dd data-testid="preview-bytes" data-value=bytes>
                    {crate::format::bytes(bytes)} " " <span class="hint">{format!("({how})")}</span>
                </dd>
            </div>
        }
    });
    let status_rows = by_status
        .into_iter()
        .map(|(status, n)| {
            let badge = status.clone();
            view! {
                <tr data-status=status>
                    <th scope="row"><StatusBadge status=badge/></th>
                    <td class="num" data-value=n>{count(n)}</td>
                </tr>
            }
        })
        .collect_view();
    let pipeline_rows = by_pipeline
        .into_iter()
        .map(|(pipeline, n)| {
            let name = if pipeline.is_empty() {
                "(none)".to_string()
            } else {
                pipeline
            };
            view! {
                <tr>
                    <th scope="row">{name}</th>
                    <td class="num">{count(n)}</td>
                </tr>
            }
        })
        .collect_view();
    let active_warning = policy.includes_active().then(|| {
        view! {
            <p class="notice notice-warning" role="note">
                <strong>"Running or paused runs are selected."</strong>
                " A worker may still be writing them: delete them only when you know they are abandoned."
            </p>
        }
    });
    let confirm = if matched == 0 {
        view! { <p class="notice" data-testid="nothing-to-delete">"No runs match: there is nothing to delete."</p> }
            .into_any()
    } else if !access.can_change() {
        view! { <p class="notice">"Deleting is not possible here (see above)."</p> }.into_any()
    } else {
        view! { <ConfirmForm policy=policy.clone() csrf=access.csrf.clone() matched run/> }.into_any()
    };
    view! {
        <section aria-labelledby="preview-heading" class="cleanup-step cleanup-preview" data-testid="preview">
            <h2 id="preview-heading">"2. Preview"</h2>
            <p>
                <strong class="figure" data-testid="preview-count" data-value=matched>{count(matched)}</strong>
                {if matched == 1 { " run matches: " } else { " runs match: " }}
                {policy.describe()} ", that is, last active before " {when_view(Some(cutoff))} "."
            </p>
            {active_warning}
            {(matched > 0).then(|| view! {
                <div class="preview-tables">
                    <table class="data-table">
                        <caption>"By status"</caption>
                        <thead><tr><th scope="col">"Status"</th><th scope="col" class="num">"Runs"</th></tr></thead>
                        <tbody>{status_rows}</tbody>
                    </table>
                    <table class="data-table">
                        <caption>"By pipeline"</caption>
                        <thead><tr><th scope="col">"Pipeline"</th><th scope="col" class="num">"Runs"</th></tr></thead>
                        <tbody>{pipeline_rows}</tbody>
                    </table>
                    <dl class="preview-range">
                        <div><dt>"Oldest last activity"</dt><dd>{when_view(oldest)}</dd></div>
                        <div><dt>"Newest last activity"</dt><dd>{when_view(newest)}</dd></div>
                        {estimate}
                    </dl>
                </div>
            })}
            {confirm}
        </section>
    }
    .into_any()
}

#[component]
fn ConfirmForm(
    policy: CleanupPolicyForm,
    csrf: String,
    matched: i64,
    run: ServerAction<RunCleanup>,
) -> impl IntoView {
    let pending = run.pending();
    view! {
        <ActionForm action=run attr:class="confirm-form" attr:data-testid="confirm-form">
            <h3>"3. Confirm"</h3>
            <input type="hidden" name="days" value=policy.days/>
            <input type="hidden" name="statuses" value=policy.statuses_csv()/>
            <input type="hidden" name="pipeline" value=policy.pipeline.clone().unwrap_or_default()/>
            <input type="hidden" name="csrf" value=csrf/>
            <p class="field">
                <label for="confirm_count">
                    {format!("Type the number of runs to delete ({}) to confirm", count(matched))}
                </label>
                <input
                    id="confirm_count"
                    name="confirm_count"
                    type="text"
                    inputmode="numeric"
                    pattern="[0-9]*"
                    autocomplete="off"
                    required
                />
            </p>
            <p class="hint">
                "The server counts again before deleting: if the number changed meanwhile, nothing is deleted and "
                "the new preview is shown."
            </p>
            <button type="submit" class="button-danger" disabled=move || pending.get()>
                "Delete these runs"
            </button>
        </ActionForm>
    }
    .into_any()
}

#[component]
fn History(history: Vec<AuditRow>, highlight: Option<i64>) -> impl IntoView {
    let empty = history.is_empty();
    let rows = history
        .into_iter()
        .map(|e| {
            let current = highlight == Some(e.id);
            view! {
                <tr class:current=current data-audit-id=e.id>
                    <td class="num">{e.id}</td>
                    <td>{when_view(e.at)}</td>
                    <td>{e.actor}</td>
                    <td>{e.action}</td>
                    <td>{e.target}</td>
                    <td class="num">{e.matched.map(count).unwrap_or_else(|| "—".into())}</td>
                    <td class="num" data-testid="history-affected">{count(e.affected)}</td>
                    <td class="num" data-testid="history-freed">
                        {e.bytes_freed.map(crate::format::bytes).unwrap_or_else(|| "—".into())}
                    </td>
                </tr>
            }
        })
        .collect_view();
    view! {
        <section aria-labelledby="history-heading" class="cleanup-history">
            <h2 id="history-heading">"History"</h2>
            {if empty {
                view! { <p class="muted">"No changes were made through flowstate yet."</p> }.into_any()
            } else {
                view! {
                    <div class="data-scroll">
                        <table class="data-table" data-testid="history">
                            <caption class="visually-hidden">"Changes made through flowstate, newest first"</caption>
                            <thead>
                                <tr>
                                    <th scope="col" class="num">"#"</th>
                                    <th scope="col">"When"</th>
                                    <th scope="col">"Who"</th>
                                    <th scope="col">"What"</th>
                                    <th scope="col">"Filter or target"</th>
                                    <th scope="col" class="num">"Confirmed"</th>
                                    <th scope="col" class="num">"Deleted"</th>
                                    <th scope="col" class="num">"Freed"</th>
                                </tr>
                            </thead>
                            <tbody>{rows}</tbody>
                        </table>
                    </div>
                }
                .into_any()
            }}
        </section>
    }
}
