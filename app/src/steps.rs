//! A run's step history as a list of steps: name, outcome, duration, attempts, output size, with the failing
//! step first and highlighted; the raw JSON stays one click away (the run page's "Step history" block).
//!
//! The history is untrusted text of any size and shape. The page reads only its start (the run view's bounded
//! head, [`crate::server::runs::VIEW_HEAD_CHARS`]); [`read_steps`] takes the steps it can read from that start one
//! by one, so a cut history shows its first steps and says the rest is cut. flujo writes a list of
//! `StepResult`s (`name`, `success`, `attempts`, `latency_s`, `output`, `feedback`, `token_counts`, `cost_usd`,
//! …); other spellings some versions and tools use are accepted (`step_name`, `status`, `duration_s`,
//! `duration_ms`, `duration`, `latency_ms`, `retries`). Anything of another type counts as absent; names and
//! feedback are cut; nesting deeper than serde_json's limit stops the reading with a note; nothing panics, and
//! the page escapes every text it shows.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use crate::components::json_view::size;
use crate::format::duration_ms;

/// The most steps listed (a history of a million steps is summed up, not listed).
pub const MAX_STEPS: usize = 500;
/// The longest step name shown, in characters.
pub const NAME_CHARS: usize = 200;
/// The longest feedback shown, in characters (its first line).
pub const FEEDBACK_CHARS: usize = 500;

/// What became of a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// `success: true` (or a status such as `completed`, `success`, `ok`).
    Succeeded,
    /// `success: false` (or a status such as `failed`, `error`).
    Failed,
    /// Nothing says.
    Unknown,
}

impl Outcome {
    /// For people.
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Succeeded => "succeeded",
            Outcome::Failed => "failed",
            Outcome::Unknown => "unknown",
        }
    }
}

/// One step as the page shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRow {
    /// Its place in the history, from 1.
    pub number: usize,
    /// Its name, cut at [`NAME_CHARS`]; empty when it has none.
    pub name: String,
    /// What became of it.
    pub outcome: Outcome,
    /// How long it took, in milliseconds.
    pub duration_ms: Option<f64>,
    /// How many times it was tried.
    pub attempts: Option<i64>,
    /// The size of its output as JSON text, in bytes; `None` when it has none (absent or `null`).
    pub output_bytes: Option<usize>,
    /// The first line of its feedback (why it failed, usually), cut at [`FEEDBACK_CHARS`].
    pub feedback: Option<String>,
}

/// The steps read from a history.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StepList {
    /// The steps, in the order they ran (at most [`MAX_STEPS`]).
    pub steps: Vec<StepRow>,
    /// True when the whole history was read: every step is listed.
    pub complete: bool,
    /// Why the list stops early or is empty, for people: the history was cut, holds more than [`MAX_STEPS`]
    /// steps, is not a list, or could not be read past some point.
    pub note: Option<String>,
}

impl StepList {
    /// The steps that failed, in order.
    pub fn failed(&self) -> impl Iterator<Item = &StepRow> {
        self.steps.iter().filter(|s| s.outcome == Outcome::Failed)
    }
}

/// The steps of a stored history's start `text` (the whole value when `whole`).
#[cfg(feature = "ssr")]
pub fn read_steps(text: &str, whole: bool) -> StepList {
    use serde_json::Value;

    let mut out = StepList::default();
    let trimmed = text.trim_start();
    if trimmed.is_empty() || trimmed == "null" {
        out.complete = whole;
        return out;
    }
    let Some(mut rest) = trimmed.strip_prefix('[') else {
        out.note = Some("The step history is not a list of steps; the raw value is below.".into());
        return out;
    };
    let cut_note = || {
        "The step history is longer than what the page reads; the steps after these are cut. The whole \
         history is in the raw value below."
            .to_string()
    };
    loop {
        rest = rest.trim_start();
        if let Some(after) = rest.strip_prefix(']') {
            if after.trim().is_empty() {
                out.complete = true;
            } else {
                out.note = Some("The step history has text after its list; the raw value is below.".into());
            }
            return out;
        }
        if out.steps.len() >= MAX_STEPS {
            out.note = Some(format!(
                "The history holds more than {MAX_STEPS} steps; the first {MAX_STEPS} are listed."
            ));
            return out;
        }
        let mut values = serde_json::Deserializer::from_str(rest).into_iter::<Value>();
        match values.next() {
            Some(Ok(value)) => {
                let used = values.byte_offset();
                out.steps.push(step_of(out.steps.len() + 1, &value));
                rest = rest[used..].trim_start();
                if let Some(after) = rest.strip_prefix(',') {
                    rest = after;
                } else if !rest.starts_with(']') {
                    out.note = Some(if rest.is_empty() && !whole {
                        cut_note()
                    } else {
                        "The step history could not be read past this point; the raw value is below.".into()
                    });
                    return out;
                }
            }
            Some(Err(e)) if e.is_eof() && !whole => {
                out.note = Some(cut_note());
                return out;
            }
            None if !whole => {
                out.note = Some(cut_note());
                return out;
            }
            _ => {
                out.note = Some(
                    "The step history could not be read past this point; the raw value is below.".into(),
                );
                return out;
            }
        }
    }
}

/// One step from one element of the history; anything but an object is a step with nothing known.
#[cfg(feature = "ssr")]
fn step_of(number: usize, value: &serde_json::Value) -> StepRow {
    use serde_json::Value;

    let mut step = StepRow {
        number,
        name: String::new(),
        outcome: Outcome::Unknown,
        duration_ms: None,
        attempts: None,
        output_bytes: None,
        feedback: None,
    };
    let Some(fields) = value.as_object() else {
        return step;
    };
    let text = |keys: &[&str]| keys.iter().find_map(|k| fields.get(*k).and_then(Value::as_str));
    let number_of = |keys: &[&str]| {
        keys.iter()
            .find_map(|k| fields.get(*k).and_then(Value::as_f64))
            .filter(|v| v.is_finite() && *v >= 0.0)
    };
    step.name = cut(text(&["name", "step_name", "step"]).unwrap_or(""), NAME_CHARS);
    step.outcome = match fields.get("success") {
        Some(Value::Bool(true)) => Outcome::Succeeded,
        Some(Value::Bool(false)) => Outcome::Failed,
        _ => match text(&["status", "outcome"])
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("completed" | "success" | "succeeded" | "ok" | "passed") => Outcome::Succeeded,
            Some("failed" | "failure" | "error" | "errored") => Outcome::Failed,
            _ => Outcome::Unknown,
        },
    };
    step.duration_ms = number_of(&["latency_s", "duration_s"])
        .map(|s| s * 1000.0)
        .or_else(|| number_of(&["duration_ms", "latency_ms"]))
        .or_else(|| number_of(&["duration"]).map(|s| s * 1000.0));
    step.attempts = fields
        .get("attempts")
        .and_then(Value::as_i64)
        .or_else(|| {
            fields
                .get("retries")
                .and_then(Value::as_i64)
                .map(|r| r.saturating_add(1))
        })
        .filter(|a| *a >= 0);
    step.output_bytes = match fields.get("output") {
        None | Some(Value::Null) => None,
        Some(output) => Some(serde_json::to_string(output).map_or(0, |t| t.len())),
    };
    step.feedback = text(&["feedback", "error", "error_message"])
        .map(|f| f.lines().find(|l| !l.trim().is_empty()).unwrap_or("").trim())
        .filter(|f| !f.is_empty())
        .map(|f| cut(f, FEEDBACK_CHARS));
    step
}

/// `text` cut at `max` characters, with `…`.
#[cfg(feature = "ssr")]
fn cut(text: &str, max: usize) -> String {
    if text.chars().count() > max {
        let head: String = text.chars().take(max - 1).collect();
        format!("{head}…")
    } else {
        text.to_string()
    }
}

/// The list of steps: the failing step first, highlighted, then every step in order (the failing ones marked).
/// Works without JavaScript; the raw history is the `<details>` block after it.
#[component]
pub fn StepListView(steps: StepList) -> impl IntoView {
    let StepList {
        steps,
        complete,
        note,
    } = steps;
    let failing = steps.iter().find(|s| s.outcome == Outcome::Failed).cloned();
    let failing = failing.map(|s| {
        let attempts = s
            .attempts
            .map(|a| format!(" after {a} attempt{}", if a == 1 { "" } else { "s" }));
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
    let count_text = if complete {
        format!("{} step{}", steps.len(), if steps.len() == 1 { "" } else { "s" })
    } else {
        format!(
            "The first {} step{} read",
            steps.len(),
            if steps.len() == 1 { "" } else { "s" }
        )
    };
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
            <p class="scroll-hint" aria-hidden="true">"Scroll sideways for more columns →"</p>
            <div class="data-scroll" tabindex="0" role="region" aria-labelledby="run-steps-heading">
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
            </div>
        </section>
    }
}

#[cfg(all(test, feature = "ssr"))]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn flujo_step_results_become_rows() {
        let history = json!([
            {"name": "plan", "output": "plan ok", "success": true, "attempts": 1, "latency_s": 1.5,
             "token_counts": 120, "cost_usd": 0.001, "feedback": null, "branch_context": null, "metadata_": null},
            {"name": "execute", "output": null, "success": false, "attempts": 3, "latency_s": 0.25,
             "feedback": "Step 'execute' failed: OperationalError: no such column: o.totl\nTraceback..."}
        ])
        .to_string();
        let list = read_steps(&history, true);
        assert!(list.complete && list.note.is_none(), "{list:?}");
        assert_eq!(list.steps.len(), 2);
        let plan = &list.steps[0];
        assert_eq!(
            (plan.number, plan.name.as_str(), plan.outcome),
            (1, "plan", Outcome::Succeeded)
        );
        assert_eq!(plan.duration_ms, Some(1500.0));
        assert_eq!(plan.attempts, Some(1));
        assert_eq!(plan.output_bytes, Some("\"plan ok\"".len()));
        let execute = &list.steps[1];
        assert_eq!(execute.outcome, Outcome::Failed);
        assert_eq!(execute.output_bytes, None);
        assert_eq!(
            execute.feedback.as_deref(),
            Some("Step 'execute' failed: OperationalError: no such column: o.totl")
        );
        assert_eq!(list.failed().count(), 1);
    }

    #[test]
    fn other_spellings_are_read_too() {
        let list = read_steps(
            r#"[{"step_name":"a","status":"COMPLETED","duration_ms":250,"retries":1},
                {"name":"b","outcome":"error","duration":2},{"name":"c"}]"#,
            true,
        );
        assert_eq!(list.steps[0].name, "a");
        assert_eq!(list.steps[0].outcome, Outcome::Succeeded);
        assert_eq!(list.steps[0].duration_ms, Some(250.0));
        assert_eq!(list.steps[0].attempts, Some(2));
        assert_eq!(list.steps[1].outcome, Outcome::Failed);
        assert_eq!(list.steps[1].duration_ms, Some(2000.0));
        assert_eq!(list.steps[2].outcome, Outcome::Unknown);
    }

    #[test]
    fn a_cut_history_lists_the_steps_it_could_read() {
        let step = json!({"name": "s", "success": true, "latency_s": 0.1, "output": "x".repeat(100)});
        let whole = serde_json::to_string(&vec![step; 40]).unwrap();
        let head = &whole[..whole.len() / 2];
        let list = read_steps(head, false);
        assert!(!list.complete);
        assert!((15..=20).contains(&list.steps.len()), "{}", list.steps.len());
        assert!(list.note.as_deref().unwrap().contains("cut"), "{:?}", list.note);
        // Cut right after a comma, or inside a string: the same.
        let at_comma = &whole[..whole.find("},").unwrap() + 2];
        let list = read_steps(at_comma, false);
        assert_eq!(list.steps.len(), 1);
        assert!(list.note.as_deref().unwrap().contains("cut"));
    }

    #[test]
    fn hostile_histories_never_panic() {
        let deep = format!("[{}{}]", "[".repeat(5000), "]".repeat(5000));
        let huge_name =
            json!([{"name": "n".repeat(100_000), "feedback": "<script>alert(1)</script>"}]).to_string();
        let cases: Vec<(String, bool)> = vec![
            (deep.clone(), true),
            (deep[..3000].to_string(), false),
            (huge_name.clone(), true),
            ("{\"not\": \"a list\"}".into(), true),
            ("\"text\"".into(), true),
            ("not json at all".into(), true),
            ("[1, \"two\", null, true, [], {}]".into(), true),
            ("[{\"name\": 5, \"success\": \"yes\", \"attempts\": -3, \"latency_s\": \"fast\", \"output\": 1e308}]".into(), true),
            ("[{\"latency_s\": 1e400}]".into(), true),
            ("[,]".into(), true),
            ("[{}] trailing".into(), true),
            ("[{} {}]".into(), true),
            ("[".into(), false),
            ("".into(), true),
            ("null".into(), true),
            ("[\"\u{0}\u{202e}\"]".into(), true),
        ];
        for (text, whole) in cases {
            let list = read_steps(&text, whole);
            assert!(list.steps.len() <= MAX_STEPS);
            for s in &list.steps {
                assert!(s.name.chars().count() <= NAME_CHARS);
                assert!(s
                    .feedback
                    .as_ref()
                    .is_none_or(|f| f.chars().count() <= FEEDBACK_CHARS));
                assert!(s.attempts.is_none_or(|a| a >= 0));
                assert!(s.duration_ms.is_none_or(|d| d.is_finite() && d >= 0.0));
            }
        }
        let list = read_steps(&huge_name, true);
        assert_eq!(list.steps[0].name.chars().count(), NAME_CHARS);
        let list = read_steps(&deep, true);
        assert!(list.note.is_some(), "too deep to read: said so");
        let list = read_steps("{\"not\": \"a list\"}", true);
        assert!(list.note.unwrap().contains("not a list"));
        let list = read_steps("[{\"name\": 5, \"success\": \"yes\", \"attempts\": -3}]", true);
        assert_eq!(list.steps[0].name, "");
        assert_eq!(list.steps[0].outcome, Outcome::Unknown);
        assert_eq!(list.steps[0].attempts, None);
    }

    #[test]
    fn long_histories_list_the_first_steps() {
        let history =
            serde_json::to_string(&vec![json!({"name": "s", "success": true}); MAX_STEPS + 10]).unwrap();
        let list = read_steps(&history, true);
        assert_eq!(list.steps.len(), MAX_STEPS);
        assert!(!list.complete);
        assert!(list.note.unwrap().contains("more than"));
    }
}
