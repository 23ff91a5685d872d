//! `flowstate failures`: the failed runs of a window grouped by error signature, as the dashboard's Failures page
//! shows them (the same store call, [`flowstate_store::Store::failure_groups_in`], with the same scope: every
//! failure, one pipeline's, one version's, or both).

use std::path::Path;

use flowstate_store::{FailureGroup, FailureScope};
use serde_json::json;

use super::output::{human_time, json_doc, json_time, one_line, rfc3339, run_json, truncate, Table};
use super::{open, CliError, FailuresArgs};

/// Widest signature shown when the width of the output is unknown (not a terminal, no `COLUMNS`).
const SIGNATURE_COLUMNS: usize = 80;
/// Sample run ids printed per group (the JSON has every sample the store returned).
const SAMPLES_SHOWN: usize = 3;

/// Groups the failures of `--since` (default the last 24 h), largest first; `--pipeline` and `--version` group
/// only that pipeline's (version's) failures, so every figure (counts, first and last seen, samples) is theirs.
pub async fn run(db: &Path, args: FailuresArgs, json: bool) -> Result<String, CliError> {
    let store = open::read_only(db).await?;
    let now = store.now();
    let since = args.since.resolve(now);
    if since >= now {
        store.close().await;
        return Err(CliError::Usage(format!(
            "--since ({}) must be in the past",
            rfc3339(&since)
        )));
    }
    let scope = FailureScope {
        pipeline: args.pipeline.clone(),
        version: args.version.clone(),
    };
    let report = store.failure_groups_in(since, &scope).await;
    store.close().await;
    let report = report?;
    let mut groups: Vec<FailureGroup> = report.groups;
    let total = report.total_failed;
    let shown_groups = groups.len().min(args.limit as usize);
    let more = groups.len() - shown_groups;
    groups.truncate(shown_groups);

    if json {
        return Ok(json_doc(&json!({
            "since": rfc3339(&since),
            "pipeline": args.pipeline,
            "version": args.version,
            "total_failed": total,
            "truncated": report.truncated,
            "groups_not_shown": more,
            "groups": groups.iter().map(|g| json!({
                "signature": g.signature,
                "key": g.key,
                "example": g.example,
                "count": g.count,
                "pipelines": g.pipelines,
                "first_seen": json_time(&g.first_seen),
                "last_seen": json_time(&g.last_seen),
                "samples": g.samples.iter().map(run_json).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        })));
    }

    let mut out = format!(
        "failed runs last updated since {} UTC{}{}: {}",
        human_time(&Some(since)),
        args.pipeline
            .as_ref()
            .map(|p| format!(", pipeline {}", one_line(p)))
            .unwrap_or_default(),
        args.version
            .as_ref()
            .map(|v| format!(", version {}", one_line(v)))
            .unwrap_or_default(),
        flowstate_app::format::count(total)
    );
    if report.truncated {
        out.push_str(&format!(
            " (grouped: the newest {} of them)",
            flowstate_app::format::count(flowstate_store::insights::MAX_FAILURE_SCAN)
        ));
    }
    out.push('\n');
    if groups.is_empty() {
        out.push_str("no failures in this window\n");
        return Ok(out);
    }
    out.push('\n');
    let fit = super::output::terminal_columns();
    let mut table = Table::new(&[
        ">#",
        ">RUNS",
        "FIRST SEEN (UTC)",
        "LAST SEEN (UTC)",
        "SIGNATURE",
        "PIPELINES",
    ]);
    for (i, g) in groups.iter().enumerate() {
        let mut pipelines: Vec<(&String, &i64)> = g.pipelines.iter().collect();
        pipelines.sort_by(|a, b| b.1.cmp(a.1).then_with(|| a.0.cmp(b.0)));
        let pipelines: Vec<String> = pipelines
            .iter()
            .map(|(p, n)| format!("{} ({n})", truncate(&one_line(p), 32)))
            .collect();
        let signature = one_line(&g.signature);
        table.row(vec![
            (i + 1).to_string(),
            flowstate_app::format::count(g.count),
            human_time(&g.first_seen),
            human_time(&g.last_seen),
            match fit {
                Some(_) => signature,
                None => truncate(&signature, SIGNATURE_COLUMNS),
            },
            truncate(&pipelines.join(", "), 48),
        ]);
    }
    // On a terminal the pipelines give way first, then the signature.
    if let Some(columns) = fit {
        table.fit(5, columns);
        table.fit(4, columns);
    }
    out.push_str(&table.render());
    out.push_str("\nsample runs (newest first; `flowstate show RUN_ID`):\n");
    let mut samples = Table::new(&[">#", "RUN IDS"]);
    for (i, g) in groups.iter().enumerate() {
        let ids: Vec<String> = g
            .samples
            .iter()
            .take(SAMPLES_SHOWN)
            .map(|r| one_line(&r.run_id))
            .collect();
        samples.row(vec![(i + 1).to_string(), ids.join("  ")]);
    }
    if let Some(columns) = fit {
        samples.fit(1, columns);
    }
    out.push_str(&samples.render());
    if more > 0 {
        out.push_str(&format!(
            "\n{more} smaller groups not shown (--limit N shows more)\n"
        ));
    }
    Ok(out)
}
