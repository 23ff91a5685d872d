//! `flowstate demo`: a realistic demo database.

use std::path::Path;

use serde_json::json;

use super::output::json_doc;
use super::{open, CliError, DemoArgs};

/// Writes demo runs. Refuses a database that already holds runs unless `--force`; never deletes or replaces.
pub async fn run(db: &Path, args: DemoArgs, json: bool) -> Result<String, CliError> {
    let count = usize::try_from(args.runs)
        .map_err(|_| CliError::Usage(format!("--runs {} is too many", args.runs)))?;
    if db.exists() {
        // Look before writing: a file that holds runs (or needs a migration) is not touched without --force.
        let store = open::read_only(db).await?;
        let existing = store.get_workflow_stats().await.map(|s| s.total_workflows);
        store.close().await;
        let existing = existing?;
        if existing > 0 && !args.force {
            return Err(CliError::Runtime(format!(
                "{} already holds {existing} runs; write demo data to a new or empty database, or pass --force \
                 to add demo runs beside them (nothing is deleted or replaced)",
                db.display()
            )));
        }
    }
    let store = open::create_or_migrate(db).await?;
    let written = flowstate_store::demo::write_demo(&store, count, args.seed).await;
    store.close().await;
    // Demo rows are generated, not typed: a rejected row is a bug, not a usage error.
    let written = written.map_err(|e| CliError::Runtime(e.to_string()))?;
    if json {
        return Ok(json_doc(&json!({
            "written": written,
            "seed": args.seed,
            "db": db.display().to_string(),
        })));
    }
    Ok(format!(
        "wrote {written} demo runs to {} (seed {})\n",
        db.display(),
        args.seed
    ))
}
