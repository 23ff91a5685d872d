//! `/runs/{run_id}`: one run, every field, the error first.
//!
//! Large JSON values are cut (see [`crate::server::runs::JSON_SHOWN_BYTES`]); `?full=context` (or `output`,
//! `history`, `error`, `metadata`, `background_error`, `all`) shows them whole. A run with any of the background
//! task columns of flujo's PostgreSQL layout set has a "Background task" block: its parent run (a link), task id,
//! background error and metadata.

use crate::components::PageTitle;
use leptos::prelude::*;
use leptos_router::hooks::{use_location, use_params_map, use_query_map};

use crate::components::json_view::cut_note;
use crate::components::{DeleteRunForm, ErrorPage, JsonView, RunNav, StatusBadge};
use crate::format::{duration_ms, query_value, run_href, url_encode};
use crate::model::{BackgroundDetail, RunDetail};
use crate::pages::runs::StampView;
use crate::server::runs::raw_href;
use crate::server::{get_run, run_neighbours};
use crate::steps::StepListView;

/// One run's details.
#[component]
pub fn RunPage() -> impl IntoView {
    let params = use_params_map();
    let query = use_query_map();
    let search = use_location().search;
    let run = Resource::new(
        move || {
            // `/runs/{id}`, or `/run?id=..` for the ids a path cannot carry (see `run_href`), read from the raw
            // query: decoded once.
            let id = params
                .read()
                .get("run_id")
                .or_else(|| query_value(&search.read(), "id"));
            (id.unwrap_or_default(), query.read().get("full"))
        },
        |(run_id, full)| get_run(run_id, full),
    );
    view! {
        <PageTitle text="Run"/>
        <Suspense fallback=|| view! { <p class="loading">"Reading the run…"</p> }>
            {move || Suspend::new(async move {
                match run.await {
                    Ok(run) => {
                        let list = query_value(&search.get_untracked(), "list");
                        view! { <RunView run list/> }.into_any()
                    }
                    Err(error) => {
                        view! {
                            <ErrorPage error/>
                            <p class="error-next">
                                <a href="/runs">"Back to the runs"</a>
                            </p>
                        }
                            .into_any()
                    }
                }
            })}
        </Suspense>
    }
}

/// What an unusual stored status means, for the operator.
fn status_note(status: &str) -> Option<&'static str> {
    flowstate_model::Status::from_name(status).note()
}

#[component]
fn RunView(run: RunDetail, list: Option<String>) -> impl IntoView {
    let RunDetail {
        run_id,
        pipeline_id,
        pipeline_name,
        pipeline_version,
        status,
        current_step_index,
        total_steps,
        step,
        created,
        updated,
        error_message,
        execution_time_ms,
        memory_usage_mb,
        context,
        last_output,
        history,
        steps,
        background,
        read_at,
    } = run;
    let base = run_href(&run_id);
    let join = if base.contains('?') { '&' } else { '?' };
    let see_all = |which: &str| format!("{base}{join}full={which}#{which}");
    let raw = |which: &str| raw_href(&run_id, which);
    let pipeline_runs = format!("/runs?pipeline={}", url_encode(&pipeline_id));
    let note = status_note(&status);
    let stored_step = if total_steps > 0 {
        format!("stored index {current_step_index}, {total_steps} steps")
    } else {
        format!("stored index {current_step_index}, step count unknown")
    };
    let error = error_message.map(|message| {
        let note = message
            .cut
            .then(|| cut_note("error", &message, see_all("error"), raw("error")));
        view! {
            <section class="run-error" id="error" aria-labelledby="run-error-heading" data-testid="run-error">
                <h2 id="run-error-heading">"Error"</h2>
                {note}
                <pre class="error-text">{message.text}</pre>
            </section>
        }
    });
    let (background, metadata) = match background {
        Some(b) => {
            let metadata = b.metadata.clone();
            (
                Some(background_view(
                    b,
                    &see_all("background_error"),
                    &raw("background_error"),
                )),
                metadata,
            )
        }
        None => (None, None),
    };
    let metadata = metadata.map(|block| {
        view! {
            <JsonView
                id="metadata"
                title="Metadata"
                block=Some(block)
                see_all=see_all("metadata")
                raw=raw("metadata")
                open=true
            />
        }
    });
    let children = format!("/runs?parent={}", url_encode(&run_id));
    // The list the run was opened from (`?list=/runs?…`): the breadcrumb leads back to it, and the run's neighbours
    // in it are a step away. Only an address of the runs list is followed.
    let list = list.filter(|l| l == "/runs" || l.starts_with("/runs?"));
    let back = list.clone().unwrap_or_else(|| "/runs".into());
    let list_words = list
        .as_deref()
        .map(|l| crate::model::RunsFilter::from_list(l).describe())
        .filter(|words| !words.is_empty());
    let nav = list.map(|list| {
        let id = run_id.clone();
        let neighbours = Resource::new(
            move || (id.clone(), list.clone()),
            |(id, list)| run_neighbours(id, list),
        );
        view! {
            <Suspense fallback=|| ()>
                {move || Suspend::new(async move {
                    neighbours.await.ok().map(|neighbours| view! { <RunNav neighbours/> })
                })}
            </Suspense>
        }
    });
    // The title names the list the run was opened from, as that list's own title does: tabs opened from two
    // lists stay apart.
    let title = match list_words {
        Some(words) => format!("Run {run_id} · Runs · {words}"),
        None => format!("Run {run_id}"),
    };
    view! {
        <PageTitle text=title/>
        <nav class="breadcrumbs" aria-label="Breadcrumbs">
            <a href=back data-testid="breadcrumb-runs">"Runs"</a>
            " › "
            <span aria-current="page">{run_id.clone()}</span>
        </nav>
        <h1>"Run " <code class="run-id">{run_id.clone()}</code></h1>
        {nav}
        {error}
        <section aria-labelledby="run-fields-heading">
            <h2 id="run-fields-heading" class="visually-hidden">"Fields"</h2>
            <dl class="run-fields">
                <div>
                    <dt>"Status"</dt>
                    <dd data-field="status">
                        <StatusBadge status=status.clone()/>
                        {note.map(|n| view! { <span class="hint">" " {n}</span> })}
                    </dd>
                </div>
                <div>
                    <dt>"Progress"</dt>
                    <dd data-field="step">
                        {step} " " <span class="hint">{format!("({stored_step})")}</span>
                    </dd>
                </div>
                <div>
                    <dt>"Pipeline"</dt>
                    <dd data-field="pipeline">
                        <span class="pipeline-name">{pipeline_name}</span>
                        " · id "
                        <a href=pipeline_runs title="Runs of this pipeline"><code>{pipeline_id}</code></a>
                        " · version "
                        <code data-field="pipeline-version">{pipeline_version}</code>
                    </dd>
                </div>
                <div>
                    <dt>"Created"</dt>
                    <dd data-field="created"><StampView stamp=created/></dd>
                </div>
                <div>
                    <dt>"Updated"</dt>
                    <dd data-field="updated"><StampView stamp=updated/></dd>
                </div>
                <div>
                    <dt>"Execution time"</dt>
                    <dd data-field="execution">
                        {execution_time_ms
                            .map(|ms| format!("{} ({ms} ms)", duration_ms(ms as f64)))
                            .unwrap_or_else(|| "not recorded".into())}
                    </dd>
                </div>
                <div>
                    <dt>"Memory"</dt>
                    <dd data-field="memory">
                        {memory_usage_mb
                            .map(|mb| format!("{mb:.1} MB"))
                            .unwrap_or_else(|| "not recorded".into())}
                    </dd>
                </div>
            </dl>
            <p class="read-at">
                "Read at " <time datetime=read_at.clone()>{read_at.replace('T', " ").replace('Z', " UTC")}</time>
                "; relative times count from then."
            </p>
        </section>
        // The steps right after the fields (what happened, the failing step first), the raw history collapsed
        // under them: one click away.
        <StepListView steps/>
        <JsonView id="history" title="Step history (raw JSON)" block=Some(history) see_all=see_all("history")
            raw=raw("history")
            item="step"
        />
        {background}
        {metadata}
        <JsonView
            id="context"
            title="Context"
            block=Some(context)
            see_all=see_all("context")
            raw=raw("context")
            open=true
        />
        <JsonView
            id="output"
            title="Last step output"
            block=last_output
            empty="None: no step has stored an output (NULL)."
            see_all=see_all("output")
            raw=raw("output")
            open=true
        />
        <DeleteRunForm run_id=run_id.clone() status=status.clone()/>
        <p class="run-links">
            <a href="/runs">"All runs"</a>
            " · "
            <a href=children data-testid="run-children">"Background tasks this run started"</a>
        </p>
    }
}

/// The "Background task" block: whether the run is one, the run that started it (a link to its page), its task id
/// and the error it ended with (cut when long, with the same links as the run's error).
fn background_view(background: BackgroundDetail, see_all: &str, raw: &str) -> impl IntoView {
    let BackgroundDetail {
        is_background_task,
        parent_run_id,
        task_id,
        error,
        metadata: _,
    } = background;
    let parent = match parent_run_id {
        Some(parent) => {
            let href = run_href(&parent);
            view! {
                <a href=href data-testid="parent-run"><code>{parent}</code></a>
            }
            .into_any()
        }
        None => view! { <span class="hint">"none"</span> }.into_any(),
    };
    let task = match task_id {
        Some(task) => view! { <code>{task}</code> }.into_any(),
        None => view! { <span class="hint">"none"</span> }.into_any(),
    };
    let error = error.map(|message| {
        let note = message
            .cut
            .then(|| cut_note("background_error", &message, see_all.to_string(), raw.to_string()));
        view! {
            <div class="run-error" id="background_error" data-testid="background-error">
                <h3>"Background error"</h3>
                {note}
                <pre class="error-text">{message.text}</pre>
            </div>
        }
    });
    view! {
        <section class="run-background" id="background" aria-labelledby="run-background-heading"
            data-testid="run-background">
            <h2 id="run-background-heading">"Background task"</h2>
            <dl class="run-fields">
                <div>
                    <dt>"Background task"</dt>
                    <dd data-field="is-background-task">{if is_background_task { "yes" } else { "no" }}</dd>
                </div>
                <div>
                    <dt>"Started by"</dt>
                    <dd data-field="parent-run">{parent}</dd>
                </div>
                <div>
                    <dt>"Task id"</dt>
                    <dd data-field="task-id">{task}</dd>
                </div>
            </dl>
            {error}
        </section>
    }
}
