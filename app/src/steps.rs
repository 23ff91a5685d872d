//! The run page's list of steps (its "Steps" block, above the raw "Step history"): the failing step first and
//! highlighted, then every step with its outcome, duration, attempts and output size. The steps are read by
//! [`flowstate_model::steps`] (re-exported here), which `flowstate show` uses too; this module only lays them
//! out. Every text is escaped by Leptos.

use leptos::prelude::*;

use crate::components::json_view::size;
use crate::components::ScrollTable;
use crate::format::duration_ms;

pub use flowstate_model::steps::*;

/// The list of steps: the failing step first, highlighted, then every step in order (the failing ones marked).
/// Works without JavaScript; the raw history is the `<details>` block after it.
#[component]
pub fn StepListView(steps: StepList) -> impl IntoView {
    let count_text = steps.count_text();
    let failing = steps.failing().cloned().map(|s| {
        let attempts = s.attempts_phrase();
        view! {
            <div class="step-failing" data-testid="failing-step" role="note">
                <p>
                    <strong>{format!("Failed at step {}", s.number)}</strong>
                    {(!s.name.is_empty()).then(|| view! { ": " <code>{s.name.clone()}</code> })}
                    {attempts}
                    {s.duration_ms.map(|ms| format!(" ({})", duration_ms(ms)))}
                </p>
                {s.feedback.clone().map(|f| view! { <p class="step-feedback">{f}</p> })}
            </div>
        }
    });
    let StepList { steps, note, .. } = steps;
    let rows = steps
        .into_iter()
        .map(|s| {
            let failed = s.outcome == Outcome::Failed;
            let name = if s.name.is_empty() {
                view! { <span class="hint">"(no name)"</span> }.into_any()
            } else {
                view! { <code>{s.name}</code> }.into_any()
            };
            view! {
                <tr class=if failed { "step-row step-row-failed" } else { "step-row" } data-outcome=s.outcome.label()>
                    <td class="num" data-label="#">{s.number}</td>
                    <th scope="row" data-label="Step">{name}</th>
                    <td data-label="Outcome">
                        <span class=format!("step-outcome step-outcome-{}", s.outcome.label())>{s.outcome.label()}</span>
                    </td>
                    <td class="num" data-label="Duration">{s.duration_ms.map_or_else(|| "—".to_string(), duration_ms)}</td>
                    <td class="num" data-label="Attempts">{s.attempts.map_or_else(|| "—".to_string(), |a| a.to_string())}</td>
                    <td class="num" data-label="Output">{s.output_bytes.map_or_else(|| "none".to_string(), size)}</td>
                </tr>
            }
        })
        .collect_view();
    view! {
        <section class="run-steps" id="steps" aria-labelledby="run-steps-heading" data-testid="run-steps">
            <h2 id="run-steps-heading">"Steps"</h2>
            {failing}
            {note.map(|n| view! { <p class="note" role="note" data-testid="steps-note">{n}</p> })}
            <ScrollTable label="Steps">
                <table class="data-table steps-table" data-testid="steps-table">
                    <caption>{count_text}", in the order they ran; the raw history is below."</caption>
                    <thead>
                        <tr>
                            <th scope="col" class="num">"#"</th>
                            <th scope="col">"Step"</th>
                            <th scope="col">"Outcome"</th>
                            <th scope="col" class="num">"Duration"</th>
                            <th scope="col" class="num">"Attempts"</th>
                            <th scope="col" class="num">"Output"</th>
                        </tr>
                    </thead>
                    <tbody>{rows}</tbody>
                </table>
            </ScrollTable>
        </section>
    }
}
