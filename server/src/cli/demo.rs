//! `flowstate demo`: a realistic demo database.

use std::path::Path;

use flowstate_store::{Location, StoreError};
use serde_json::json;

use super::output::json_doc;
use super::{open, CliError, DemoArgs};

/// Writes demo runs. Refuses a database that already holds runs unless `--force`; never deletes or replaces.
pub async fn run(db: &Path, args: DemoArgs, json: bool) -> Result<String, CliError> {
    let count = usize::try_from(args.runs)
        .map_err(|_| CliError::Usage(format!("--runs {} is too many", args.runs)))?;
    // Look before writing: a database that holds runs (or, a file, needs a migration) is not touched without
    // --force. A missing file is new; a PostgreSQL database without flujo's table is empty (read-only opening
    // refuses it as "no workflow_state table": creating it is what the demo does next).
    let (exists, postgres) = match Location::parse(db) {
        Location::Sqlite(path) => (path.exists(), false),
        Location::Postgres(_) => (true, true),
    };
    if exists {
        let store = match open::try_read_only(db).await {
            Ok(store) => Some(store),
            // No workflow_state yet: the demo creates it. (A table flowstate cannot use, or a newer schema, is
            // refused again, and said why, by opening for writing below.)
            Err(StoreError::UnsupportedFile { .. }) if postgres => None,
            Err(e) => return Err(e.into()),
        };
        if let Some(store) = store {
            let existing = store.get_workflow_stats().await.map(|s| s.total_workflows);
            let shown = store.path().display().to_string();
            store.close().await;
            let existing = existing?;
            if existing > 0 && !args.force {
                return Err(CliError::Runtime(format!(
                    "{shown} already holds {existing} runs; write demo data to a new or empty database, or pass \
                     --force to add demo runs beside them (nothing is deleted or replaced)"
                )));
            }
        }
    }
    let store = open::create_or_migrate(db).await?;
    let shown = store.path().display().to_string();
    let written = flowstate_store::demo::write_demo(&store, count, args.seed).await;
    store.close().await;
    // Demo rows are generated, not typed: a rejected row is a bug, not a usage error.
    let written = written.map_err(|e| CliError::Runtime(e.to_string()))?;
    if json {
        return Ok(json_doc(&json!({
            "written": written,
            "seed": args.seed,
            "db": shown,
        })));
    }
    Ok(format!(
        "wrote {written} demo runs to {shown} (seed {})\n",
        args.seed
    ))
}
