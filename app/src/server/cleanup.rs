//! The cleanup: a dry-run preview of a policy, then the deletion the operator confirmed by typing the count the
//! preview showed, and the history of changes (the audit log).
//!
//! The policy travels in the URL (`/cleanup?days=30&status=completed&status=failed&pipeline=…&preview=1`) so a
//! preview can be shared and works without JavaScript; [`CleanupPolicyForm::from_query`] reads it the same way
//! on the server and in the browser.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use flowstate_model::limits::MAX_CLEANUP_DAYS;
use flowstate_model::status::{ACTIVE_NAMES, CANCELLED, COMPLETED, FAILED, PAUSED, RUNNING, TERMINAL_NAMES};

use crate::error::AppError;
use crate::format::url_encode;

/// The statuses a cleanup can select, in the order the form lists them: the terminal ones, then the active ones.
pub const CLEANUP_STATUSES: [&str; 5] = [COMPLETED, FAILED, CANCELLED, RUNNING, PAUSED];
/// The age the form proposes.
pub const DEFAULT_DAYS: u32 = 30;
/// Audit entries the page shows.
pub const HISTORY_LIMIT: u32 = 50;

/// A cleanup policy as the operator wrote it in the form: checked, but not yet run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CleanupPolicyForm {
    /// Runs whose last activity is more than this many days old.
    pub days: u32,
    /// The selected statuses (known ones only, in [`CLEANUP_STATUSES`] order, never empty).
    pub statuses: Vec<String>,
    /// One pipeline, or every pipeline.
    pub pipeline: Option<String>,
}

impl Default for CleanupPolicyForm {
    fn default() -> Self {
        CleanupPolicyForm {
            days: DEFAULT_DAYS,
            statuses: TERMINAL_NAMES.iter().map(|s| s.to_string()).collect(),
            pipeline: None,
        }
    }
}

impl CleanupPolicyForm {
    /// Checks the form's values: `days` a whole number from 1 to [`MAX_CLEANUP_DAYS`], at least one known status
    /// (each may also be a comma-separated list), `pipeline` blank for all.
    ///
    /// # Errors
    /// [`AppError::BadRequest`] naming the field and why.
    pub fn parse(days: &str, statuses: &[String], pipeline: &str) -> Result<Self, AppError> {
        let days = days.trim();
        let days: u32 = days
            .parse()
            .ok()
            .filter(|d| (1..=MAX_CLEANUP_DAYS).contains(d))
            .ok_or_else(|| {
                AppError::bad_request(
                    "days",
                    format!("must be a whole number of days from 1 to {MAX_CLEANUP_DAYS}, got “{days}”"),
                )
            })?;
        let mut chosen = Vec::new();
        for name in statuses.iter().flat_map(|s| s.split(',')).map(str::trim) {
            if name.is_empty() {
                continue;
            }
            if !CLEANUP_STATUSES.contains(&name) {
                return Err(AppError::bad_request(
                    "status",
                    format!("“{name}” is not one of {}", CLEANUP_STATUSES.join(", ")),
                ));
            }
            chosen.push(name);
        }
        if chosen.is_empty() {
            return Err(AppError::bad_request("status", "choose at least one status"));
        }
        let statuses = CLEANUP_STATUSES
            .iter()
            .filter(|s| chosen.contains(s))
            .map(|s| s.to_string())
            .collect();
        let pipeline = Some(pipeline.trim())
            .filter(|p| !p.is_empty())
            .map(str::to_string);
        Ok(CleanupPolicyForm {
            days,
            statuses,
            pipeline,
        })
    }

    /// The policy in the page's URL query: `days`, `status` (repeated), `pipeline`. Absent values take the
    /// defaults, except that a submitted form (`preview` present) means exactly the statuses it checked.
    ///
    /// # Errors
    /// [`AppError::BadRequest`] as [`CleanupPolicyForm::parse`].
    pub fn from_query(
        days: Option<String>,
        statuses: Option<Vec<String>>,
        pipeline: Option<String>,
        submitted: bool,
    ) -> Result<Self, AppError> {
        let statuses = match statuses {
            Some(s) => s,
            None if submitted => Vec::new(),
            None => TERMINAL_NAMES.iter().map(|s| s.to_string()).collect(),
        };
        Self::parse(
            days.as_deref().unwrap_or(&DEFAULT_DAYS.to_string()),
            &statuses,
            pipeline.as_deref().unwrap_or(""),
        )
    }

    /// The statuses as one comma-separated value (the confirmation form's hidden field).
    pub fn statuses_csv(&self) -> String {
        self.statuses.join(",")
    }

    /// True when running or paused runs are selected.
    pub fn includes_active(&self) -> bool {
        self.statuses.iter().any(|s| ACTIVE_NAMES.contains(&s.as_str()))
    }

    /// The policy as a URL query (without `?`), for links and redirects.
    pub fn query(&self) -> String {
        let mut q = format!("days={}", self.days);
        for s in &self.statuses {
            q.push_str("&status=");
            q.push_str(&url_encode(s));
        }
        if let Some(p) = &self.pipeline {
            q.push_str("&pipeline=");
            q.push_str(&url_encode(p));
        }
        q
    }

    /// The policy in words: `completed, failed runs of pipeline “x” idle for more than 30 days`.
    pub fn describe(&self) -> String {
        let mut out = format!("{} runs", self.statuses.join(", "));
        if let Some(p) = &self.pipeline {
            out.push_str(&format!(" of pipeline “{p}”"));
        }
        out.push_str(&format!(" idle for more than {} days", self.days));
        out
    }
}

/// An instant as the page shows it, formatted on the server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct When {
    /// RFC 3339 in UTC, for `<time datetime>`.
    pub iso: String,
    /// `2026-03-14 12:00 UTC`.
    pub text: String,
}

/// What a cleanup with a policy would delete, right now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreviewView {
    /// The policy previewed.
    pub policy: CleanupPolicyForm,
    /// Runs whose last activity is before this instant match.
    pub cutoff: When,
    /// How many runs match.
    pub matched: i64,
    /// Matches per status, in [`CLEANUP_STATUSES`] order (only statuses with matches).
    pub by_status: Vec<(String, i64)>,
    /// Matches per pipeline, most first (`""` is runs without a pipeline).
    pub by_pipeline: Vec<(String, i64)>,
    /// The oldest last activity among the matches.
    pub oldest: Option<When>,
    /// The newest last activity among the matches.
    pub newest: Option<When>,
    /// What deleting them would free: their stored size (`Store::estimate_cleanup_bytes`), and whether every
    /// matched run was measured (otherwise the oldest 10,000 were, and the rest counted at their average).
    pub estimated_bytes: Option<(i64, bool)>,
}

/// One entry of the audit log, for the history table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRow {
    /// Sequence number (`done=` in the page's URL after a change).
    pub id: i64,
    /// When.
    pub at: Option<When>,
    /// Who: `admin`, `local`, `cli`.
    pub actor: String,
    /// What: `cleanup`, `delete_run`.
    pub action: String,
    /// The filter or target in words.
    pub target: String,
    /// How many runs the confirmed preview showed.
    pub matched: Option<i64>,
    /// How many runs were deleted.
    pub affected: i64,
    /// What a cleanup freed (bytes; entries written before issue 15 have none).
    pub bytes_freed: Option<i64>,
    /// Of which given back to the file system (a SQLite file with incremental auto_vacuum).
    pub bytes_returned: Option<i64>,
}

/// The cleanup page's choices and history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CleanupChoices {
    /// Every pipeline id, sorted (the pipeline menu).
    pub pipelines: Vec<String>,
    /// The newest [`HISTORY_LIMIT`] changes, newest first.
    pub history: Vec<AuditRow>,
}

/// What a confirmed cleanup did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CleanupDone {
    /// The audit entry written for it.
    pub audit_id: i64,
    /// Runs the confirmed preview showed.
    pub matched: i64,
    /// Runs deleted (fewer than `matched` when some changed meanwhile).
    pub deleted: i64,
}

/// The dry run: what [`run_cleanup`] would delete with this policy now. Reads only.
#[server(endpoint = "cleanup_preview")]
pub async fn preview_cleanup(
    days: String,
    statuses: String,
    pipeline: String,
) -> Result<PreviewView, AppError> {
    let policy = CleanupPolicyForm::parse(&days, &[statuses], &pipeline)?;
    let store = super::store()?;
    ssr::preview(&store, &policy).await
}

/// The pipelines (for the form) and the newest changes (the history). Reads only.
#[server(endpoint = "cleanup_options")]
pub async fn cleanup_options() -> Result<CleanupChoices, AppError> {
    let store = super::store()?;
    let pipelines = store.pipelines().await?;
    let history = store
        .audit_log(HISTORY_LIMIT)
        .await?
        .into_iter()
        .map(ssr::audit_row)
        .collect();
    Ok(CleanupChoices { pipelines, history })
}

/// Deletes the runs the policy matches, if the operator's `confirm_count` equals the number that match now;
/// otherwise nothing is deleted and the error says the new count (the page shows the new preview). Guarded
/// (read-only, CSRF and origin, login), deleted in batches, written to the audit log. On success the browser
/// is sent to `/cleanup?<policy>&done=<audit id>`, which shows the result.
#[server(endpoint = "run_cleanup")]
pub async fn run_cleanup(
    days: String,
    statuses: String,
    pipeline: String,
    confirm_count: String,
    csrf: String,
) -> Result<CleanupDone, AppError> {
    use super::security::require_change;
    use super::with_status;
    with_status(
        async move {
            let actor = require_change("cleanup", &csrf)?;
            let policy = CleanupPolicyForm::parse(&days, &[statuses], &pipeline)?;
            let typed = confirm_count.trim();
            let typed: i64 = typed.parse::<u32>().map(i64::from).map_err(|_| {
                AppError::bad_request(
                    "confirm_count",
                    format!("type the number of runs the preview shows, as digits (got “{typed}”)"),
                )
            })?;
            let store = super::store()?;
            ssr::run(&store, actor.as_str(), &policy, typed).await
        }
        .await,
    )
}

#[cfg(feature = "ssr")]
pub(crate) mod ssr {
    use chrono::{DateTime, SecondsFormat, Utc};
    use flowstate_store::{AuditEntry, CleanupPolicy, Status, Store};
    use serde_json::{json, Value};

    use super::{AuditRow, CleanupDone, CleanupPolicyForm, PreviewView, When, CLEANUP_STATUSES};
    use crate::error::AppError;

    pub fn when(at: &DateTime<Utc>) -> When {
        When {
            iso: at.to_rfc3339_opts(SecondsFormat::Secs, true),
            text: at.format("%Y-%m-%d %H:%M UTC").to_string(),
        }
    }

    /// The store's policy: statuses named explicitly (the form never sends none, so the store's "empty means
    /// terminal" default never applies here).
    pub fn policy(form: &CleanupPolicyForm) -> Result<CleanupPolicy, AppError> {
        let statuses = form
            .statuses
            .iter()
            .map(|s| {
                Status::known(s).ok_or_else(|| AppError::bad_request("status", format!("“{s}” is unknown")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if statuses.is_empty() {
            return Err(AppError::bad_request("status", "choose at least one status"));
        }
        Ok(CleanupPolicy {
            older_than_days: form.days,
            statuses,
            pipeline_id: form.pipeline.clone(),
        })
    }

    pub async fn preview(store: &Store, form: &CleanupPolicyForm) -> Result<PreviewView, AppError> {
        let policy = policy(form)?;
        let p = store.preview_cleanup(&policy).await?;
        let estimated_bytes = if p.matched > 0 {
            let e = store.estimate_cleanup_bytes(&policy, p.matched).await?;
            Some((e.bytes, e.is_exact()))
        } else {
            None
        };
        let by_status = CLEANUP_STATUSES
            .iter()
            .filter_map(|s| p.by_status.get(*s).map(|n| (s.to_string(), *n)))
            .collect();
        let mut by_pipeline: Vec<(String, i64)> = p.by_pipeline.into_iter().collect();
        by_pipeline.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        Ok(PreviewView {
            policy: form.clone(),
            cutoff: when(&p.cutoff),
            matched: p.matched,
            by_status,
            by_pipeline,
            oldest: p.oldest_updated_at.as_ref().map(when),
            newest: p.newest_updated_at.as_ref().map(when),
            estimated_bytes,
        })
    }

    /// The confirmed cleanup, after the guards passed.
    pub async fn run(
        store: &Store,
        actor: &str,
        form: &CleanupPolicyForm,
        confirmed: i64,
    ) -> Result<CleanupDone, AppError> {
        let policy = policy(form)?;
        let now = store.preview_cleanup(&policy).await?;
        if now.matched != confirmed {
            tracing::info!(
                confirmed,
                matched = now.matched,
                "cleanup not run: the count changed"
            );
            return Err(AppError::Conflict {
                reason: format!(
                    "Nothing was deleted: you confirmed {confirmed} runs, but {} match this policy now. Check the \
                     new preview and confirm its count",
                    now.matched
                ),
            });
        }
        if confirmed == 0 {
            return Err(AppError::bad_request(
                "confirm_count",
                "no runs match this policy, so there is nothing to delete",
            ));
        }
        let detail = json!({
            "older_than_days": form.days,
            "statuses": form.statuses,
            "pipeline": form.pipeline,
            "cutoff": now.cutoff.to_rfc3339_opts(SecondsFormat::Secs, true),
        });
        // The entry is written first and each batch records its run ids in its own transaction, so the audit
        // log says what was deleted even when a batch fails midway.
        let done = store
            .cleanup_recorded(&policy, actor, &detail, Some(confirmed))
            .await
            .inspect_err(
                |e| tracing::error!(error = %e, "cleanup failed; its audit entry says what was deleted"),
            )?;
        let (audit_id, deleted) = (done.audit_id, i64::try_from(done.deleted).unwrap_or(i64::MAX));
        tracing::info!(actor, deleted, matched = confirmed, audit_id, "cleanup done");
        leptos_axum::redirect(&format!("/cleanup?{}&done={audit_id}", form.query()));
        Ok(CleanupDone {
            audit_id,
            matched: confirmed,
            deleted,
        })
    }

    /// A figure of the space a cleanup freed (`detail.space`, written by `Store::cleanup_recorded`).
    fn space(detail: &Value, key: &str) -> Option<i64> {
        detail.get("space")?.get(key)?.as_i64()
    }

    fn text(detail: &Value, key: &str) -> Option<String> {
        detail.get(key).and_then(Value::as_str).map(str::to_string)
    }

    /// An audit entry in words: the filter of a cleanup, the run of a deletion.
    pub fn audit_row(entry: AuditEntry) -> AuditRow {
        let d = &entry.detail;
        let target = match entry.action.as_str() {
            "cleanup" => {
                let statuses: Vec<String> = d
                    .get("statuses")
                    .and_then(Value::as_array)
                    .map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_string)).collect())
                    .unwrap_or_default();
                let days = d.get("older_than_days").and_then(Value::as_u64);
                let mut t = if statuses.is_empty() {
                    "terminal runs".to_string()
                } else {
                    format!("{} runs", statuses.join(", "))
                };
                if let Some(p) = text(d, "pipeline").or_else(|| text(d, "pipeline_id")) {
                    t.push_str(&format!(" of pipeline “{p}”"));
                }
                if let Some(days) = days {
                    t.push_str(&format!(" idle for more than {days} days"));
                }
                t
            }
            "delete_run" => match text(d, "run_id") {
                Some(id) => format!("run {id}"),
                None => d.to_string(),
            },
            _ => d.to_string(),
        };
        AuditRow {
            id: entry.id,
            at: entry.at.as_ref().map(when),
            actor: entry.actor,
            action: entry.action,
            target,
            matched: entry.matched,
            affected: entry.affected,
            bytes_freed: space(d, "bytes_freed"),
            bytes_returned: space(d, "bytes_returned"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_form_is_checked() {
        let p = CleanupPolicyForm::parse(" 7 ", &v(&["failed", "running,completed"]), " p1 ").unwrap();
        assert_eq!(p.days, 7);
        assert_eq!(
            p.statuses,
            v(&["completed", "failed", "running"]),
            "known order, deduplicated"
        );
        assert_eq!(p.pipeline.as_deref(), Some("p1"));
        assert!(p.includes_active());
        assert_eq!(
            p.query(),
            "days=7&status=completed&status=failed&status=running&pipeline=p1"
        );

        for (days, statuses, param) in [
            ("0", v(&["failed"]), "days"),
            ("abc", v(&["failed"]), "days"),
            ("36601", v(&["failed"]), "days"),
            ("30", v(&[]), "status"),
            ("30", v(&[""]), "status"),
            ("30", v(&["exploded"]), "status"),
        ] {
            match CleanupPolicyForm::parse(days, &statuses, "") {
                Err(AppError::BadRequest { param: p, .. }) => assert_eq!(p, param, "{days} {statuses:?}"),
                other => panic!("{days} {statuses:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn the_query_defaults_to_terminal_runs_unless_the_form_was_sent() {
        let d = CleanupPolicyForm::from_query(None, None, None, false).unwrap();
        assert_eq!(d, CleanupPolicyForm::default());
        assert!(!d.includes_active(), "running and paused only when named");
        assert!(
            CleanupPolicyForm::from_query(None, None, None, true).is_err(),
            "a sent form with none checked"
        );
    }
}
