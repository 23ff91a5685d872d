//! `flowstate reclaim`: give the space deleted runs left back (see `flowstate_store::space`).

use std::path::Path;

use flowstate_app::format::bytes;
use flowstate_store::Reclaimed;
use serde_json::json;

use super::output::json_doc;
use super::{open, CliError, ReclaimArgs};

/// SQLite: free pages given back in small steps (an incremental file), or with `--convert` the one blocking
/// `VACUUM` that makes a file incremental. PostgreSQL: `VACUUM workflow_state`.
pub async fn run(db: &Path, args: ReclaimArgs, json: bool) -> Result<String, CliError> {
    let store = open::writable(db).await?;
    let done = if args.convert {
        store.convert_to_incremental().await
    } else {
        store.reclaim_space().await
    };
    store.close().await;
    let done = done?;
    if json {
        return Ok(json_doc(&json!({
            "method": done.method,
            "steps": done.steps,
            "seconds": done.seconds,
            "bytes_before": done.before.bytes,
            "bytes_after": done.after.bytes,
            "bytes_returned": done.bytes_returned(),
            "free_bytes_before": done.before.free_bytes,
            "free_bytes_after": done.after.free_bytes,
            "incremental": done.after.incremental,
        })));
    }
    Ok(describe(&done))
}

fn describe(r: &Reclaimed) -> String {
    let size = |s: &flowstate_store::SpaceUse| match s.free_bytes {
        Some(free) => format!("{} ({} of it free pages)", bytes(s.bytes), bytes(free)),
        None => bytes(s.bytes),
    };
    let mut out = format!("before  {}\nafter   {}\n", size(&r.before), size(&r.after));
    out.push_str(&match r.method {
        "none" => format!(
            "nothing given back: the file's auto_vacuum is NONE (flujo's default), so its free pages stay for new \
             runs. `flowstate reclaim --convert` makes it incremental with one VACUUM, which rewrites the file \
             ({}) holding the write lock throughout: stop the writers first, and have that much free disk\n",
            bytes(r.before.bytes)
        ),
        "incremental_vacuum" => format!(
            "gave back {} in {} steps of at most 1 MiB ({:.2} s; writers took turns with each step)\n",
            bytes(r.bytes_returned()),
            r.steps,
            r.seconds
        ),
        "vacuum" => format!(
            "VACUUM workflow_state took {:.2} s beside the writers: the deleted rows' space is reusable now; the \
             table shrinks only by the empty pages at its end ({} given back)\n",
            r.seconds,
            bytes(r.bytes_returned())
        ),
        _ => format!(
            "rewrote the file with VACUUM in {:.2} s (the write lock held throughout); it is incremental now, so \
             cleanups give their space back by themselves ({} given back)\n",
            r.seconds,
            bytes(r.bytes_returned())
        ),
    });
    out
}
