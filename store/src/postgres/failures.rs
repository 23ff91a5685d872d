//! `flowstate_failure`: the failed runs of `workflow_state`, one small row each, kept exact by triggers (schema
//! version 3), so the failure groups read a short, time-ordered table instead of one scattered row of
//! `workflow_state` per failure.
//!
//! Why: the groups read every failure of a window (run id, pipeline, last update, the head of the error message).
//! No index of `workflow_state` can hold the message (flujo's writes would hit the index row-size limit with a long
//! one, and an expression index gives no index-only scan), so each failure cost a heap fetch in a table of tens of
//! GB: at 10M runs 5,577 failures in the last 24 h took 28 ms on the server alone (5,546 pages). Here the same
//! failures are a few hundred pages, written in the order they fail.
//!
//! | column | from `workflow_state` |
//! |---|---|
//! | `run_id` (`COLLATE "C"`, primary key) | `run_id` |
//! | `pipeline_id` | `pipeline_id` |
//! | `updated_at` | `updated_at` |
//! | `error_head` | the first [`RunSummary::ERROR_EXCERPT_CHARS`] characters of `error_message`: what lists and the groups read of it (a message of megabytes is not copied) |
//!
//! One row per run whose `status` is `'failed'`, whoever writes `workflow_state`:
//! - `flowstate_failure_ins`: a row trigger on inserts, `WHEN (NEW.status = 'failed')` (no call for any other insert);
//! - `flowstate_failure_upd`: a row trigger on updates, `WHEN (OLD.status = 'failed' OR NEW.status = 'failed')`:
//!   the progress saves of live runs call nothing; a run that fails is written once, a run leaving `failed`
//!   (retried: `failed` → `running`) is removed;
//! - `flowstate_failure_del`: a statement trigger on deletes (over the deleted rows: cleanups delete in bulk);
//! - `flowstate_failure_trunc`: `TRUNCATE` empties it.
//!
//! The migration creates it and fills it from the failed rows (an index range of `idx_flowstate_status_activity`,
//! under the table's lock: the failed runs are read, not the table); `Store::verify_counters` compares it with the
//! failed rows and `Store::rebuild_counters` (`flowstate migrate --check-counters`) fills it again. The functions
//! are `SECURITY DEFINER` with `search_path = pg_catalog, pg_temp`, as the counters' ([`super::counters`]).

use sqlx::PgConnection;

use crate::counters::CounterDifference;
use crate::RunSummary;

/// The table.
pub(crate) const TABLE: &str = "flowstate_failure";

/// Its index on the last update (the groups' window, newest first).
pub(crate) const INDEX: &str = "idx_flowstate_failure_updated";

/// The triggers on `workflow_state` that keep it, each with its function of the same name.
pub(crate) const TRIGGERS: [&str; 4] = [
    "flowstate_failure_ins",
    "flowstate_failure_upd",
    "flowstate_failure_del",
    "flowstate_failure_trunc",
];

/// The most differences [`check`] reports (a table emptied by hand would list every failed run).
pub(crate) const MAX_DIFFERENCES: i64 = 1000;

/// The head of an error message as the table keeps it: what [`super::read::error_excerpt`] reads.
fn head(column: &str) -> String {
    format!("substr({column}, 1, {})", RunSummary::ERROR_EXCERPT_CHARS)
}

/// The table, its index, the trigger functions and the triggers, in schema `s` (quoted). Idempotent: the table and
/// index are kept when they exist, the functions and triggers replaced.
pub(crate) fn create(s: &str) -> Vec<String> {
    let t = format!("{s}.{TABLE}");
    let upsert = |r: &str| {
        format!(
            "INSERT INTO {t} (run_id, pipeline_id, updated_at, error_head) \
             VALUES ({r}.run_id, {r}.pipeline_id, {r}.updated_at, {h}) \
             ON CONFLICT (run_id) DO UPDATE SET pipeline_id = excluded.pipeline_id, \
             updated_at = excluded.updated_at, error_head = excluded.error_head;\n",
            h = head(&format!("{r}.error_message"))
        )
    };
    let function = |name: &str, body: String| {
        format!(
            "CREATE OR REPLACE FUNCTION {s}.{name}() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER \
             SET search_path = pg_catalog, pg_temp AS $flowstate$\nBEGIN\n{body}RETURN NULL;\nEND\n$flowstate$"
        )
    };
    let on = format!("ON {s}.workflow_state");
    let mut out = vec![
        format!(
            "CREATE TABLE IF NOT EXISTS {t} (run_id text COLLATE \"C\" PRIMARY KEY, pipeline_id text, \
             updated_at timestamptz NOT NULL, error_head text)"
        ),
        format!("CREATE INDEX IF NOT EXISTS {INDEX} ON {t} (updated_at, run_id)"),
        function(TRIGGERS[0], upsert("NEW")),
        function(
            TRIGGERS[1],
            format!(
                "IF OLD.status = 'failed' AND (NEW.status IS DISTINCT FROM 'failed' OR OLD.run_id <> NEW.run_id) THEN\n\
                 DELETE FROM {t} WHERE run_id = OLD.run_id COLLATE \"C\";\nEND IF;\n\
                 IF NEW.status = 'failed' THEN\n{}END IF;\n",
                upsert("NEW")
            ),
        ),
        function(
            TRIGGERS[2],
            format!(
                "DELETE FROM {t} AS f USING old_rows AS o WHERE o.status = 'failed' \
                 AND f.run_id = o.run_id COLLATE \"C\";\n"
            ),
        ),
        function(TRIGGERS[3], format!("DELETE FROM {t};\n")),
    ];
    let trigger = |name: &str, when: String| {
        [
            format!("DROP TRIGGER IF EXISTS {name} {on}"),
            format!("CREATE TRIGGER {name} AFTER {when} EXECUTE FUNCTION {s}.{name}()"),
        ]
    };
    out.extend(trigger(
        TRIGGERS[0],
        format!("INSERT {on} FOR EACH ROW WHEN (NEW.status = 'failed')"),
    ));
    out.extend(trigger(
        TRIGGERS[1],
        format!("UPDATE {on} FOR EACH ROW WHEN (OLD.status = 'failed' OR NEW.status = 'failed')"),
    ));
    out.extend(trigger(
        TRIGGERS[2],
        format!("DELETE {on} REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT"),
    ));
    out.extend(trigger(TRIGGERS[3], format!("TRUNCATE {on} FOR EACH STATEMENT")));
    out
}

/// The failed rows of `workflow_state` as the table holds them (`run_id, pipeline_id, updated_at, error_head`).
fn recount(s: &str) -> String {
    format!(
        "SELECT run_id COLLATE \"C\" AS run_id, pipeline_id, updated_at, {} AS error_head \
         FROM {s}.workflow_state WHERE status = 'failed'",
        head("error_message")
    )
}

/// Statements that empty the table and fill it from the failed rows, oldest update first (the order the triggers
/// write in, so a window is a few adjacent pages), in the caller's transaction (which must keep writers out).
pub(crate) fn refill(s: &str) -> Vec<String> {
    vec![
        format!("DELETE FROM {s}.{TABLE}"),
        format!(
            "INSERT INTO {s}.{TABLE} (run_id, pipeline_id, updated_at, error_head) \
             SELECT * FROM ({}) AS r ORDER BY updated_at, run_id",
            recount(s)
        ),
    ]
}

/// The rows of the table that differ from the failed rows of `workflow_state` (at most [`MAX_DIFFERENCES`]), as
/// counter differences of table `flowstate_failure`: key the run id, values its pipeline, last update and the
/// md5 of the error head. Run it in one snapshot (or with writers kept out).
pub(crate) async fn check(conn: &mut PgConnection, s: &str) -> sqlx::Result<Vec<CounterDifference>> {
    let value = |r: &str| {
        format!(
            "CASE WHEN {r}.run_id IS NULL THEN NULL ELSE quote_nullable({r}.pipeline_id) || ', ' || \
             quote_literal({r}.updated_at::text) || ', md5 ' || COALESCE(md5({r}.error_head), 'of NULL') END"
        )
    };
    let rows: Vec<(String, Option<String>, Option<String>)> = sqlx::query_as(&format!(
        "SELECT quote_literal(COALESCE(f.run_id, r.run_id)), {}, {} FROM {s}.{TABLE} AS f \
         FULL JOIN ({}) AS r ON r.run_id = f.run_id \
         WHERE f.run_id IS NULL OR r.run_id IS NULL \
         OR (f.pipeline_id, f.updated_at, f.error_head) IS DISTINCT FROM (r.pipeline_id, r.updated_at, r.error_head) \
         ORDER BY 1 LIMIT {MAX_DIFFERENCES}",
        value("f"),
        value("r"),
        recount(s)
    ))
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(key, stored, recounted)| CounterDifference {
            table: TABLE.to_string(),
            key,
            stored,
            recounted,
        })
        .collect())
}

/// The failures last updated at or after `$1`, newest first, at most `$2`: run id, pipeline, last update, error
/// head (a backward range of [`INDEX`]).
pub(crate) const WINDOW: &str = "SELECT run_id, pipeline_id, updated_at, error_head FROM flowstate_failure \
     WHERE updated_at >= $1 ORDER BY updated_at DESC, run_id DESC LIMIT $2";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_triggers_call_nothing_for_rows_that_are_not_failed() {
        let sql = create("s").join("\n");
        assert!(sql.contains("INSERT ON s.workflow_state FOR EACH ROW WHEN (NEW.status = 'failed')"));
        assert!(sql.contains(
            "UPDATE ON s.workflow_state FOR EACH ROW WHEN (OLD.status = 'failed' OR NEW.status = 'failed')"
        ));
        // The head is the excerpt lists read.
        assert!(sql.contains(&format!(
            "substr(NEW.error_message, 1, {})",
            RunSummary::ERROR_EXCERPT_CHARS
        )));
        assert!(refill("s")[1].contains("ORDER BY updated_at, run_id"));
    }
}
