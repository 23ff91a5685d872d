//! Deleting one run (the Run page's guarded delete form, [`crate::components::DeleteRunForm`]).

use leptos::prelude::*;

use crate::error::AppError;

/// Deletes run `run_id` when the operator typed its id in `confirm`. A running or paused run (a worker may still
/// write it) is deleted only with `active_ok` set (the form's "delete it even though it is running" box).
/// Guarded (read-only, CSRF and origin, login) and written to the audit log. On success the browser goes to
/// `/runs`.
#[server(endpoint = "delete_run")]
pub async fn delete_run(
    run_id: String,
    confirm: String,
    csrf: String,
    active_ok: Option<String>,
) -> Result<(), AppError> {
    use super::security::require_change;
    use super::with_status;
    with_status(
        async move {
            let actor = require_change("delete_run", &csrf)?;
            if run_id.is_empty() {
                return Err(AppError::bad_request("run_id", "names no run"));
            }
            if confirm.trim() != run_id {
                return Err(AppError::bad_request(
                    "confirm",
                    "type the run id exactly as shown to confirm the deletion; nothing was deleted",
                ));
            }
            let store = super::store()?;
            // Only the summary: a run's large columns are not read to delete it.
            let Some(run) = store.load_run_view(&run_id, 0).await? else {
                return Err(AppError::not_found(format!("run “{run_id}”")));
            };
            let status = run.summary.status.as_str().to_string();
            let active = run.summary.status.is_active();
            if active && active_ok.as_deref().is_none_or(str::is_empty) {
                return Err(AppError::Conflict {
                    reason: format!(
                        "Nothing was deleted: the run is {status}, so a worker may still be writing it. Check “delete \
                         it even though it is {status}” to delete it anyway"
                    ),
                });
            }
            let detail = serde_json::json!({ "run_id": run_id, "status": status });
            // The deletion, its audit entry and the run's id under it: one transaction.
            let Some(audit_id) = store
                .delete_run_recorded(&run_id, actor.as_str(), "delete_run", &detail)
                .await?
            else {
                return Err(AppError::not_found(format!("run “{run_id}”")));
            };
            tracing::info!(actor = actor.as_str(), run_id, audit_id, "run deleted");
            leptos_axum::redirect("/runs");
            Ok(())
        }
        .await,
    )
}
