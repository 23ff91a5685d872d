//! A run's step history as a list of steps: name, outcome, duration, attempts, output size, the failing step
//! first. Read here once for the dashboard's run page (`flowstate_app::steps::StepListView` shows it) and for
//! `flowstate show` (a table in the terminal, a `steps` array in `--json`).
//!
//! The history is untrusted text of any size and shape. The page reads only its start (the run view's bounded
//! head); [`read_steps`] takes the steps it can read from that start one by one, so a cut history shows its first
//! steps and says the rest is cut. The CLI holds the whole value already parsed: [`steps_of_value`] reads the same
//! steps from it. flujo writes a list of `StepResult`s (`name`, `success`, `attempts`, `latency_s`, `output`,
//! `feedback`, `token_counts`, `cost_usd`, …); other spellings some versions and tools use are accepted
//! (`step_name`, `status`, `duration_s`, `duration_ms`, `duration`, `latency_ms`, `retries`). Anything of another
//! type counts as absent; names and feedback are cut; nesting deeper than serde_json's limit stops the reading
//! with a note; nothing panics. The texts are as stored (cut, not escaped): whoever shows them escapes them (the
//! page as HTML, the CLI for a terminal).
//!
//! The reading needs `serde_json`: feature `json` (the server and the CLI; the browser bundle only needs the
//! types).

use serde::{Deserialize, Serialize};

/// The most steps listed (a history of a million steps is summed up, not listed).
pub const MAX_STEPS: usize = 500;
/// The longest step name shown, in characters.
pub const NAME_CHARS: usize = 200;
/// The longest feedback shown, in characters (its first line).
pub const FEEDBACK_CHARS: usize = 500;

/// What became of a step (in JSON: `succeeded`, `failed`, `unknown`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
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

    /// The first step that failed: the one called out above the list.
    pub fn failing(&self) -> Option<&StepRow> {
        self.failed().next()
    }

    /// How many steps are listed, for people: `3 steps` (every step), `The first 40 steps read` (not all).
    pub fn count_text(&self) -> String {
        let n = self.steps.len();
        let plural = if n == 1 { "" } else { "s" };
        if self.complete {
            format!("{n} step{plural}")
        } else {
            format!("The first {n} step{plural} read")
        }
    }
}

impl StepRow {
    /// ` after 3 attempts` (empty when the attempts are unknown): what the failing step's call-out adds.
    pub fn attempts_phrase(&self) -> String {
        self.attempts
            .map(|a| format!(" after {a} attempt{}", if a == 1 { "" } else { "s" }))
            .unwrap_or_default()
    }
}

/// The note of a history that is not a list.
#[cfg(feature = "json")]
const NOT_A_LIST: &str = "The step history is not a list of steps; the raw value is below.";

/// The note of a history of more than [`MAX_STEPS`] steps.
#[cfg(feature = "json")]
fn too_many_note() -> String {
    format!("The history holds more than {MAX_STEPS} steps; the first {MAX_STEPS} are listed.")
}

/// The steps of a history already parsed whole (what `flowstate show` holds): the steps [`read_steps`] reads
/// from the same value's text, with the same notes. A history the store could not parse is a string: not a
/// list.
#[cfg(feature = "json")]
pub fn steps_of_value(history: &serde_json::Value) -> StepList {
    use serde_json::Value;

    let mut out = StepList::default();
    match history {
        Value::Null => out.complete = true,
        Value::Array(items) => {
            out.steps = items
                .iter()
                .take(MAX_STEPS)
                .enumerate()
                .map(|(i, item)| step_of(i + 1, item))
                .collect();
            out.complete = items.len() <= MAX_STEPS;
            if !out.complete {
                out.note = Some(too_many_note());
            }
        }
        _ => out.note = Some(NOT_A_LIST.into()),
    }
    out
}

/// The steps of a stored history's start `text` (the whole value when `whole`).
#[cfg(feature = "json")]
pub fn read_steps(text: &str, whole: bool) -> StepList {
    use serde_json::Value;

    let mut out = StepList::default();
    let trimmed = text.trim_start();
    if trimmed.is_empty() || trimmed == "null" {
        out.complete = whole;
        return out;
    }
    let Some(mut rest) = trimmed.strip_prefix('[') else {
        out.note = Some(NOT_A_LIST.into());
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
            out.note = Some(too_many_note());
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
#[cfg(feature = "json")]
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
#[cfg(feature = "json")]
fn cut(text: &str, max: usize) -> String {
    if text.chars().count() > max {
        let head: String = text.chars().take(max - 1).collect();
        format!("{head}…")
    } else {
        text.to_string()
    }
}

#[cfg(all(test, feature = "json"))]
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

    #[test]
    fn a_parsed_history_reads_as_its_text_does() {
        let histories = [
            json!([{"name": "plan", "success": true, "attempts": 1, "latency_s": 1.5, "output": {"a": [1, 2]}},
                   {"step_name": "b", "status": "error", "retries": 2, "feedback": "\n\nboom\nmore"}]),
            json!([1, "two", null, true, [], {}]),
            json!([{"name": "n".repeat(1000), "latency_s": 1e300, "attempts": -1}]),
            json!({"not": "a list"}),
            json!("not json at all"),
            json!(null),
            json!([]),
            serde_json::to_value(vec![json!({"name": "s", "success": false}); MAX_STEPS + 1]).unwrap(),
        ];
        for history in histories {
            let text = history.to_string();
            assert_eq!(steps_of_value(&history), read_steps(&text, true), "{text:.200}");
        }
        let list =
            steps_of_value(&json!([{"name": "a", "success": false, "attempts": 1}, {"success": false}]));
        assert_eq!(list.failing().map(|s| s.number), Some(1));
        assert_eq!(list.failing().unwrap().attempts_phrase(), " after 1 attempt");
        assert_eq!(list.steps[1].attempts_phrase(), "");
        assert_eq!(list.count_text(), "2 steps");
        assert_eq!(
            read_steps("[{}, {\"na", false).count_text(),
            "The first 1 step read"
        );
    }

    #[test]
    fn outcomes_are_lowercase_in_json() {
        assert_eq!(serde_json::to_string(&Outcome::Failed).unwrap(), "\"failed\"");
        let row = &steps_of_value(&json!([{"name": "x", "success": true}])).steps[0];
        let value = serde_json::to_value(row).unwrap();
        assert_eq!(value["outcome"], "succeeded");
        assert_eq!(value["number"], 1);
    }
}
