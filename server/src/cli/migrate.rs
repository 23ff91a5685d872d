//! `flowstate migrate`: open (which migrates) and say what changed.

use std::path::Path;

use flowstate_store::SchemaKind;

use super::output::json_doc;
use super::{open, CliError};

/// Brings the file to the current schema in one transaction and reports what opening it changed.
pub async fn run(db: &Path, json: bool) -> Result<String, CliError> {
    let store = open::create_or_migrate(db).await?;
    let report = store.migration().clone();
    store.close().await;
    if json {
        let value = serde_json::to_value(&report)
            .map_err(|e| CliError::Runtime(format!("cannot write the report as JSON: {e}")))?;
        return Ok(json_doc(&value));
    }
    let path = db.display();
    if report.is_noop() {
        return Ok(format!(
            "{path}: already current ({}); nothing changed\n",
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
        SchemaKind::Flowstate { version } => format!("flowstate schema {version}"),
    }
}
