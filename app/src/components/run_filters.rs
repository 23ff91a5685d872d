//! The runs list's filter form: a GET form, so the filters live in the address and a view can be shared.

use leptos::prelude::*;
use leptos_router::components::Form;

use flowstate_model::status::KNOWN_NAMES;

use crate::components::StatusBadge;
use crate::model::{RunsFilter, TimeParam};

/// The filter form, filled in with `filter`. Without JavaScript the browser submits it; once hydrated the
/// router does, without reloading the page. Either way the result is `/runs?…` with no cursor: new filters
/// start at the newest page.
#[component]
pub fn RunFilters(filter: RunsFilter, pipelines: Vec<String>) -> impl IntoView {
    let RunsFilter {
        statuses,
        pipeline,
        created_after,
        created_before,
        updated_after,
        updated_before,
        prefix,
        error,
        parent,
        background,
        version,
        min_duration,
        max_duration,
        min_memory,
        max_memory,
        sort,
        limit,
    } = filter;
    let sort = sort.unwrap_or_default();
    // Newest first sends an empty value, as "All pipelines" does: the default stays out of the address.
    let sort_options = [
        ("", "Newest first"),
        ("slowest", "Slowest first (runs with a time)"),
        ("heaviest", "Most memory first (runs with a figure)"),
        ("idle", "Longest idle first"),
    ]
    .into_iter()
    .map(|(value, label)| view! { <option value=value selected={sort == value}>{label}</option> })
    .collect_view();
    let text_input =
        |name: &'static str, label: &'static str, value: Option<String>, placeholder: &'static str| {
            let id = format!("filter-{name}");
            view! {
                <div class="field">
                    <label for=id.clone()>{label}</label>
                    <input
                        type="text"
                        id=id
                        name=name
                        value=value.unwrap_or_default()
                        placeholder=placeholder
                        autocomplete="off"
                        spellcheck="false"
                    />
                </div>
            }
        };

    // The five, then any other selected name (a legacy `pending`, `null`) so submitting keeps it.
    let mut names: Vec<String> = KNOWN_NAMES.iter().map(|s| s.to_string()).collect();
    names.extend(
        statuses
            .iter()
            .filter(|s| !names.contains(s))
            .cloned()
            .collect::<Vec<_>>(),
    );
    let status_boxes = names
        .into_iter()
        .map(|name| {
            let checked = statuses.contains(&name);
            view! {
                <label class="status-choice">
                    <input type="checkbox" name="status" value=name.clone() checked=checked/>
                    <StatusBadge status=name/>
                </label>
            }
        })
        .collect_view();

    // A selected pipeline that no run has any more stays selectable.
    let mut pipeline_ids = pipelines;
    if let Some(p) = &pipeline {
        if !pipeline_ids.contains(p) {
            pipeline_ids.push(p.clone());
        }
    }
    let pipeline_options = pipeline_ids
        .into_iter()
        .map(|id| {
            let selected = pipeline.as_deref() == Some(id.as_str());
            let label = id.clone();
            view! { <option value=id selected=selected>{label}</option> }
        })
        .collect_view();

    let time_input = |name: &'static str, label: &'static str, value: Option<TimeParam>| {
        let id = format!("filter-{name}");
        view! {
            <div class="field">
                <label for=id.clone()>{label}</label>
                // Text, not `datetime-local`: Chromium shows that one in its own locale (12-hour AM/PM for en-US,
                // whatever the page's `lang`), under a UTC label. Here it reads 24-hour, as every time of the site.
                <input
                    type="text"
                    id=id
                    name=name
                    placeholder="YYYY-MM-DD HH:MM"
                    pattern=crate::spans::INSTANT_PATTERN
                    title="A date and a 24-hour time in UTC: 2026-03-14 13:45 (seconds optional), or a date"
                    value=value.map(|v| v.input).unwrap_or_default()
                />
            </div>
        }
    };

    view! {
        <Form
            method="GET"
            action="/runs"
            on_form_data=std::sync::Arc::new(drop_blank_fields)
            attr:class="run-filters"
            attr:aria-label="Filter runs"
        >
            <fieldset class="filter-statuses">
                <legend>"Status"</legend>
                <div class="status-choices">{status_boxes}</div>
            </fieldset>
            <div class="filter-grid">
                <div class="field">
                    <label for="filter-pipeline">"Pipeline"</label>
                    <select id="filter-pipeline" name="pipeline">
                        <option value="" selected=pipeline.is_none()>"All pipelines"</option>
                        {pipeline_options}
                    </select>
                </div>
                <div class="field">
                    <label for="filter-prefix">"Run id starts with"</label>
                    <input
                        type="search"
                        id="filter-prefix"
                        name="prefix"
                        value=prefix.unwrap_or_default()
                        autocomplete="off"
                        spellcheck="false"
                    />
                </div>
                <div class="field">
                    <label for="filter-error">"Error contains"</label>
                    <input type="search" id="filter-error" name="error" value=error.unwrap_or_default()/>
                </div>
                <div class="field">
                    <label for="filter-background">"Background tasks"</label>
                    <select id="filter-background" name="background">
                        <option value="" selected=background.is_none()>"Any run"</option>
                        <option value="1" selected={background == Some(true)}>"Background tasks only"</option>
                        <option value="0" selected={background == Some(false)}>"No background tasks"</option>
                    </select>
                </div>
                <div class="field">
                    <label for="filter-parent">"Started by run"</label>
                    <input
                        type="search"
                        id="filter-parent"
                        name="parent"
                        value=parent.unwrap_or_default()
                        autocomplete="off"
                        spellcheck="false"
                    />
                </div>
                {text_input("version", "Pipeline version", version, "e.g. 2.1.0")}
                <div class="field">
                    <label for="filter-sort">"Order"</label>
                    <select id="filter-sort" name="sort">{sort_options}</select>
                </div>
                <div class="field field-narrow">
                    <label for="filter-limit">"Per page"</label>
                    <input
                        type="number"
                        id="filter-limit"
                        name="limit"
                        min="1"
                        max=RunsFilter::MAX_LIMIT
                        value=limit
                        inputmode="numeric"
                    />
                </div>
            </div>
            <fieldset class="filter-times">
                <legend>"Time range " <span class="hint">"(UTC)"</span></legend>
                <div class="filter-grid">
                    {time_input("created_after", "Created from", created_after)}
                    {time_input("created_before", "Created before", created_before)}
                    {time_input("updated_after", "Updated from", updated_after)}
                    {time_input("updated_before", "Updated before", updated_before)}
                </div>
            </fieldset>
            <fieldset class="filter-costs">
                <legend>"Time and memory " <span class="hint">"(time: 90s, 5m, 2h or 1500ms; memory in MB)"</span></legend>
                <div class="filter-grid">
                    {text_input("min_duration", "Took at least", min_duration, "e.g. 5m")}
                    {text_input("max_duration", "Took at most", max_duration, "e.g. 1h")}
                    {text_input("min_memory", "Memory at least (MB)", min_memory, "e.g. 100")}
                    {text_input("max_memory", "Memory at most (MB)", max_memory, "e.g. 500")}
                </div>
            </fieldset>
            <div class="filter-actions">
                <button type="submit" class="button-primary">"Apply filters"</button>
                <a href="/runs" class="button-link">"Clear filters"</a>
            </div>
        </Form>
    }
}

/// Takes the blank fields out of the form's data before the router (JavaScript on) builds the address from it, so
/// the address holds only the filters set, as the server's redirect makes it for a form sent without JavaScript.
fn drop_blank_fields(data: &leptos::web_sys::FormData) {
    // The router adds the submit button as a field without a name (a stray `&=`).
    data.delete("");
    for name in RunsFilter::PARAMS {
        let values = data.get_all(name);
        let blank = values
            .iter()
            .all(|v| v.as_string().is_none_or(|s| s.trim().is_empty()));
        if values.length() > 0 && blank {
            data.delete(name);
        }
    }
}
