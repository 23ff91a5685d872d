//! `flowstate migrate`: open (which migrates) and say what changed; with `--check-counters`, also recount the
//! overview counters and rebuild them if any differs.

use std::path::Path;

use flowstate_store::{CounterCheck, SchemaKind};

use super::output::json_doc;
use super::{open, CliError};

/// Brings the file to the current schema in one transaction and reports what opening it changed; with
/// `check_counters`, then recounts the counters and rebuilds them when one differs.
pub async fn run(db: &Path, check_counters: bool, json: bool) -> Result<String, CliError> {
    let store = open::create_or_migrate(db).await?;
    // The file's path, or the URL without its password.
    let shown = store.path().display().to_string();
    let report = store.migration().clone();
    let counters = if check_counters {
        let checked = async {
            let found = store.verify_counters().await?;
            if !found.is_exact() {
                store.rebuild_counters().await?;
            }
            Ok::<CounterCheck, flowstate_store::StoreError>(found)
        }
        .await;
        match checked {
            Ok(found) => Some(found),
            Err(e) => {
                store.close().await;
                return Err(CliError::from(e));
            }
        }
    } else {
        None
    };
    store.close().await;
    if json {
        let mut value = serde_json::to_value(&report)
            .map_err(|e| CliError::Runtime(format!("cannot write the report as JSON: {e}")))?;
        if let Some(found) = &counters {
            value["counters"] = serde_json::json!({
                "rows": found.rows,
                "differences": found.differences,
                "rebuilt": !found.is_exact(),
            });
        }
        return Ok(json_doc(&value));
    }
    let path = shown;
    let counters_line = counters.map(|found| {
        if found.is_exact() {
            format!("counters: exact (recounted from {} rows)\n", found.rows)
        } else {
            let mut text = format!(
                "counters: {} differed from a recount of {} rows, and were rebuilt:\n",
                found.differences.len(),
                found.rows
            );
            for d in &found.differences {
                text.push_str(&format!(
                    "  - {} {}: stored {}, recounted {}\n",
                    d.table,
                    d.key,
                    d.stored.as_deref().unwrap_or("nothing"),
                    d.recounted.as_deref().unwrap_or("nothing")
                ));
            }
            text
        }
    });
    let counters_line = counters_line.unwrap_or_default();
    if report.is_noop() {
        return Ok(format!(
            "{path}: already current ({}); nothing changed\n{counters_line}",
            describe(&report.from)
        ));
    }
    let mut out = format!(
        "{path}: migrated from {} to flowstate schema {}, {} changes in one transaction:\n",
        describe(&report.from),
        report.to_version,
        report.changes.len()
    );
    for change in &report.changes {
        out.push_str(&format!("  - {change}\n"));
    }
    out.push_str(&counters_line);
    Ok(out)
}

fn describe(kind: &SchemaKind) -> String {
    match kind {
        SchemaKind::Empty => "no workflow_state table (a new database)".into(),
        SchemaKind::FlujoOldest => "flujo's first, 9-column workflow_state table".into(),
        SchemaKind::FlujoPartial { missing } => {
            format!(
                "a workflow_state table without the columns {}",
                missing.join(", ")
            )
        }
        SchemaKind::Flujo0435 => "flujo 0.4.35's workflow_state table".into(),
        SchemaKind::FlujoPostgres => "flujo's PostgreSQL workflow_state table (its PostgresBackend)".into(),
        SchemaKind::Flowstate { version } => format!("flowstate schema {version}"),
    }
}
