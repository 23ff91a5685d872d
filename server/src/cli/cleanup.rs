//! `flowstate cleanup`: preview, then (with `--yes`) delete old runs.

use std::path::Path;

use flowstate_store::{CleanupPolicy, CleanupPreview};
use serde_json::json;

use super::output::{human_time, json_doc, json_time, rfc3339, Table};
use super::{open, CleanupArgs, CliError};

/// Who the audit log says made a change through the CLI.
pub const ACTOR: &str = "cli";

/// Previews the cleanup a policy describes; with `--yes` also performs it. A dry run opens the file read-only.
pub async fn run(db: &Path, args: CleanupArgs, json: bool) -> Result<String, CliError> {
    let policy = CleanupPolicy {
        older_than_days: args.days,
        statuses: args.statuses,
        pipeline_id: args.pipeline,
    };
    let store = if args.yes {
        open::writable(db).await?
    } else {
        open::read_only(db).await?
    };
    let preview = store.preview_cleanup(&policy).await;
    let preview = match preview {
        Ok(p) => p,
        Err(e) => {
            store.close().await;
            return Err(e.into());
        }
    };
    // What the policy would free: the matched runs' stored size (see `Store::estimate_cleanup_bytes`).
    let estimate = if preview.matched > 0 {
        match store.estimate_cleanup_bytes(&policy, preview.matched).await {
            Ok(e) => Some(e),
            Err(e) => {
                store.close().await;
                return Err(e.into());
            }
        }
    } else {
        None
    };
    // Recorded in the audit log like the dashboard's cleanups (actor `cli`): the entry first, then each delete
    // batch writes the run ids it deleted under it in its own transaction.
    let recorded = if args.yes && preview.matched > 0 {
        let detail = json!({
            "older_than_days": policy.older_than_days,
            "statuses": policy.effective_statuses(),
            "pipeline": policy.pipeline_id,
            "cutoff": rfc3339(&preview.cutoff),
            "user": std::env::var("USER").ok().filter(|u| !u.is_empty()),
        });
        let done = store
            .cleanup_recorded(&policy, ACTOR, &detail, Some(preview.matched))
            .await;
        store.close().await;
        Some(done?)
    } else {
        store.close().await;
        None
    };
    let deleted = recorded.map_or(0, |r| r.deleted);
    let audit_id = recorded.map(|r| r.audit_id);

    if json {
        return Ok(json_doc(&json!({
            "dry_run": args.dry_run,
            "matched": preview.matched,
            "deleted": deleted,
            "audit_id": audit_id,
            "by_status": preview.by_status,
            "by_pipeline": preview.by_pipeline,
            "cutoff": rfc3339(&preview.cutoff),
            "statuses": policy.effective_statuses(),
            "oldest_updated_at": json_time(&preview.oldest_updated_at),
            "newest_updated_at": json_time(&preview.newest_updated_at),
            "estimated_bytes": estimate.map(|e| e.bytes),
            "estimate": estimate,
            "space": recorded.map(|r| r.space_json()),
        })));
    }
    let mut out = describe(&policy, &preview);
    if preview.matched == 0 {
        out.push_str("no runs match; nothing to delete\n");
        return Ok(out);
    }
    out.push_str(&preview_tables(&preview));
    if let Some(e) = estimate {
        out.push_str(&estimate_line(&e));
    }
    out.push('\n');
    if args.yes {
        out.push_str(&format!("deleted {deleted} runs\n"));
        if let Some(r) = recorded {
            out.push_str(&freed_lines(&r));
        }
        if let Some(id) = audit_id {
            out.push_str(&format!(
                "recorded as audit entry {id} (`flowstate audit {id}` lists the run ids it deleted)\n"
            ));
        }
        if deleted != preview.matched as u64 {
            out.push_str(&format!(
                "note: {} runs matched the preview; runs changed meanwhile were left alone\n",
                preview.matched
            ));
        }
    } else {
        out.push_str(&format!(
            "dry run: nothing was deleted; run the same command with --yes instead of --dry-run to delete these {} runs\n",
            preview.matched
        ));
    }
    Ok(out)
}

fn describe(policy: &CleanupPolicy, preview: &CleanupPreview) -> String {
    let statuses: Vec<String> = policy
        .effective_statuses()
        .iter()
        .map(ToString::to_string)
        .collect();
    let mut out = format!(
        "runs last updated more than {} days ago (before {} UTC), status {}",
        policy.older_than_days,
        human_time(&Some(preview.cutoff)),
        statuses.join(", ")
    );
    if let Some(p) = &policy.pipeline_id {
        out.push_str(&format!(", pipeline {p}"));
    }
    out.push_str(&format!(": {} matched\n\n", preview.matched));
    out
}

fn preview_tables(preview: &CleanupPreview) -> String {
    let mut by_status = Table::new(&["STATUS", ">RUNS"]);
    for (status, n) in &preview.by_status {
        by_status.row(vec![status.clone(), n.to_string()]);
    }
    let mut by_pipeline = Table::new(&["PIPELINE", ">RUNS"]);
    for (pipeline, n) in &preview.by_pipeline {
        by_pipeline.row(vec![pipeline.clone(), n.to_string()]);
    }
    format!(
        "{}\n{}\noldest last update  {} UTC\nnewest last update  {} UTC\n",
        by_status.render(),
        by_pipeline.render(),
        human_time(&preview.oldest_updated_at),
        human_time(&preview.newest_updated_at)
    )
}

/// What the preview would free, and how the figure is made.
fn estimate_line(e: &flowstate_store::CleanupBytes) -> String {
    let how = if e.is_exact() {
        "the stored size of their values".to_string()
    } else {
        format!(
            "the stored size of their values, measured on the oldest {} and scaled",
            flowstate_app::format::count(e.measured_runs)
        )
    };
    format!(
        "would free about       {} ({how}; indexes not counted)\n",
        flowstate_app::format::bytes(e.bytes)
    )
}

/// What a cleanup freed, in words that say where the space went.
fn freed_lines(r: &flowstate_store::RecordedChange) -> String {
    use flowstate_app::format::bytes;
    let mut out = String::new();
    match r.after.and_then(|a| a.free_bytes.map(|f| (a, f))) {
        // SQLite.
        Some((after, free)) => {
            out.push_str(&format!("freed {} in the file", bytes(r.bytes_freed)));
            if r.bytes_returned > 0 {
                out.push_str(&format!(
                    "; {} given back to the file system (now {})",
                    bytes(r.bytes_returned),
                    bytes(after.bytes)
                ));
            }
            out.push('\n');
            if free > 0 && after.incremental == Some(false) {
                out.push_str(&format!(
                    "the file keeps {} of free pages for new runs (it was not created incremental); \
                     `flowstate reclaim --convert` gives them back once, blocking writers meanwhile\n",
                    bytes(free)
                ));
            }
        }
        // PostgreSQL.
        None => {
            out.push_str(&format!(
                "freed {} of rows (reusable once VACUUM has passed: autovacuum, or `flowstate reclaim` now)",
                bytes(r.bytes_freed)
            ));
            if let (Some(b), Some(a)) = (r.before, r.after) {
                out.push_str(&format!(
                    "; table size {} before, {} after",
                    bytes(b.bytes),
                    bytes(a.bytes)
                ));
            }
            out.push('\n');
        }
    }
    out
}
