//! `flowstate audit`: the record of changes made through flowstate (cleanups and deletions from the CLI and the
//! dashboard, copies), and the run ids each deletion removed, a bounded page at a time.

use std::path::Path;

use flowstate_store::AuditEntry;
use serde_json::{json, Value};

use super::output::{human_time, json_doc, json_time, key_values, one_line, truncate, Table};
use super::{open, AuditArgs, CliError};

/// Widest description of a change when the width of the output is unknown.
const DETAIL_COLUMNS: usize = 80;
/// Entries looked through to find one by its id (the store reads the newest ones).
const ENTRY_SCAN: u32 = 1000;

/// Lists the newest entries, or (with an id) one entry and a page of the run ids it deleted.
pub async fn run(db: &Path, args: AuditArgs, json: bool) -> Result<String, CliError> {
    let store = open::read_only(db).await?;
    let result = match args.id {
        None => list(&store, args.limit, json).await,
        Some(id) => one(&store, id, args.after.as_deref(), args.limit, json).await,
    };
    store.close().await;
    result
}

fn entry_json(e: &AuditEntry) -> Value {
    json!({
        "id": e.id,
        "at": json_time(&e.at),
        "actor": e.actor,
        "action": e.action,
        "detail": e.detail,
        "matched": e.matched,
        "affected": e.affected,
    })
}

async fn list(store: &flowstate_store::Store, limit: u32, json: bool) -> Result<String, CliError> {
    let entries = store.audit_log(limit).await?;
    if json {
        return Ok(json_doc(&json!({
            "entries": entries.iter().map(entry_json).collect::<Vec<_>>(),
        })));
    }
    if entries.is_empty() {
        return Ok("no changes recorded\n".into());
    }
    let fit = super::output::terminal_columns();
    let mut table = Table::new(&[
        ">ID",
        "WHEN (UTC)",
        "ACTOR",
        "ACTION",
        ">MATCHED",
        ">DELETED",
        "WHAT",
    ]);
    for e in &entries {
        let what = one_line(&e.detail.to_string());
        table.row(vec![
            e.id.to_string(),
            human_time(&e.at),
            truncate(&e.actor, 16),
            truncate(&e.action, 16),
            e.matched.map_or_else(|| "-".into(), |m| m.to_string()),
            e.affected.to_string(),
            match fit {
                Some(_) => what,
                None => truncate(&what, DETAIL_COLUMNS),
            },
        ]);
    }
    if let Some(columns) = fit {
        table.fit(6, columns);
    }
    let mut out = table.render();
    out.push_str("\n`flowstate audit ID` shows one entry and the run ids it deleted\n");
    Ok(out)
}

async fn one(
    store: &flowstate_store::Store,
    id: i64,
    after: Option<&str>,
    limit: u32,
    json: bool,
) -> Result<String, CliError> {
    let entry = store
        .audit_log(ENTRY_SCAN)
        .await?
        .into_iter()
        .find(|e| e.id == id);
    let ids = store.audit_run_ids(id, after, limit).await?;
    if entry.is_none() && ids.is_empty() {
        return Err(CliError::Runtime(format!(
            "no audit entry {id} among the newest {ENTRY_SCAN} (`flowstate audit` lists them)"
        )));
    }
    let next_after = (ids.len() == limit as usize)
        .then(|| ids.last().cloned())
        .flatten();
    if json {
        return Ok(json_doc(&json!({
            "entry": entry.as_ref().map(entry_json),
            "run_ids": ids,
            "next_after": next_after,
        })));
    }
    let mut out = String::new();
    if let Some(e) = &entry {
        out.push_str(&key_values(&[
            ("entry", e.id.to_string()),
            ("when", format!("{} UTC", human_time(&e.at))),
            ("actor", one_line(&e.actor)),
            ("action", one_line(&e.action)),
            ("what", one_line(&e.detail.to_string())),
            ("matched", e.matched.map_or_else(|| "-".into(), |m| m.to_string())),
            ("deleted", e.affected.to_string()),
        ]));
        out.push('\n');
    }
    if ids.is_empty() {
        out.push_str(if after.is_some() {
            "no more run ids\n"
        } else {
            "no run ids recorded for this entry (entries written before schema 4, and copies, have none)\n"
        });
        return Ok(out);
    }
    out.push_str(&format!(
        "run ids deleted ({} shown, in run-id order):\n",
        ids.len()
    ));
    for run_id in &ids {
        out.push_str(&one_line(run_id));
        out.push('\n');
    }
    if let Some(last) = next_after {
        out.push_str(&format!(
            "\nnext page: flowstate audit {id} --after {}\n",
            shell_word(&last)
        ));
    }
    Ok(out)
}

/// A run id as one word a shell reads back unchanged: quoted unless it is plainly safe.
fn shell_word(text: &str) -> String {
    if !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':' | '/'))
    {
        text.to_string()
    } else {
        format!("'{}'", one_line(text).replace('\'', r"'\''"))
    }
}
