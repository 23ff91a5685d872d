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
//! | `pipeline_version` (schema version 6) | `pipeline_version` |
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

use chrono::{DateTime, Datelike, Utc};
use futures_util::TryStreamExt;
use sqlx::PgConnection;

use crate::counters::CounterDifference;
use crate::insights::FailureScope;
use crate::RunSummary;

/// The table.
pub(crate) const TABLE: &str = "flowstate_failure";

/// Its index on the last update (the groups' window, newest first).
pub(crate) const INDEX: &str = "idx_flowstate_failure_updated";

/// Schema version 6's indexes for a scope's window (one pipeline's failures; one version's, of one pipeline or
/// of any), each an index range in the window's order: name and columns.
pub(crate) const SCOPE_INDEXES: [(&str, &str); 2] = [
    (
        "idx_flowstate_failure_pipeline",
        "(pipeline_id, updated_at, run_id)",
    ),
    (
        "idx_flowstate_failure_version",
        "(pipeline_version, pipeline_id, updated_at, run_id)",
    ),
];

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
            "INSERT INTO {t} (run_id, pipeline_id, pipeline_version, updated_at, error_head) \
             VALUES ({r}.run_id, {r}.pipeline_id, {r}.pipeline_version, {r}.updated_at, {h}) \
             ON CONFLICT (run_id) DO UPDATE SET pipeline_id = excluded.pipeline_id, \
             pipeline_version = excluded.pipeline_version, updated_at = excluded.updated_at, \
             error_head = excluded.error_head;\n",
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
             updated_at timestamptz NOT NULL, error_head text, pipeline_version text)"
        ),
        // A table of schema 3 to 5 gets the version (filled by the refill that follows the creation).
        format!("ALTER TABLE {t} ADD COLUMN IF NOT EXISTS pipeline_version text"),
        format!("CREATE INDEX IF NOT EXISTS {INDEX} ON {t} (updated_at, run_id)"),
        format!(
            "CREATE INDEX IF NOT EXISTS {} ON {t} {}",
            SCOPE_INDEXES[0].0, SCOPE_INDEXES[0].1
        ),
        format!(
            "CREATE INDEX IF NOT EXISTS {} ON {t} {}",
            SCOPE_INDEXES[1].0, SCOPE_INDEXES[1].1
        ),
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

/// The failed rows of `workflow_state` as the table holds them (`run_id, pipeline_id, updated_at, error_head,
/// pipeline_version`).
fn recount(s: &str) -> String {
    format!(
        "SELECT run_id COLLATE \"C\" AS run_id, pipeline_id, updated_at, {} AS error_head, pipeline_version \
         FROM {s}.workflow_state WHERE status = 'failed'",
        head("error_message")
    )
}

/// Statements that empty the table and fill it from the failed rows, oldest update first (the order the triggers
/// write in, so a window is a few adjacent pages), in the caller's transaction (which must keep writers out); then
/// `ANALYZE`, so the planner reads a window as the index range it is from the first query on.
///
/// Emptied by `DELETE`, not `TRUNCATE` (which would show an empty table to a reader whose snapshot is older than
/// the commit): the old rows stay dead beside the new ones until a vacuum (499,428 at 10M runs; each window read
/// their index entries too, the failure groups of 24 h twice as slow), so the migration and the rebuild of the
/// counters vacuum the table after their commit ([`super::schema::vacuum_refilled`]).
pub(crate) fn refill(s: &str) -> Vec<String> {
    vec![
        format!("DELETE FROM {s}.{TABLE}"),
        format!(
            "INSERT INTO {s}.{TABLE} (run_id, pipeline_id, updated_at, error_head, pipeline_version) \
             SELECT * FROM ({}) AS r ORDER BY updated_at, run_id",
            recount(s)
        ),
        format!("ANALYZE {s}.{TABLE}"),
    ]
}

/// The rows of the table that differ from the failed rows of `workflow_state` (at most [`MAX_DIFFERENCES`]), as
/// counter differences of table `flowstate_failure`: key the run id, values its pipeline, version, last update and
/// the md5 of the error head. Run it in one snapshot (or with writers kept out).
pub(crate) async fn check(conn: &mut PgConnection, s: &str) -> sqlx::Result<Vec<CounterDifference>> {
    let value = |r: &str| {
        format!(
            "CASE WHEN {r}.run_id IS NULL THEN NULL ELSE quote_nullable({r}.pipeline_id) || ', ' || \
             quote_nullable({r}.pipeline_version) || ', ' || quote_literal({r}.updated_at::text) || ', md5 ' || COALESCE(md5({r}.error_head), 'of NULL') END"
        )
    };
    let rows: Vec<(String, Option<String>, Option<String>)> = sqlx::query_as(&format!(
        "SELECT quote_literal(COALESCE(f.run_id, r.run_id)), {}, {} FROM {s}.{TABLE} AS f \
         FULL JOIN ({}) AS r ON r.run_id = f.run_id \
         WHERE f.run_id IS NULL OR r.run_id IS NULL \
         OR (f.pipeline_id, f.pipeline_version, f.updated_at, f.error_head) \
         IS DISTINCT FROM (r.pipeline_id, r.pipeline_version, r.updated_at, r.error_head) \
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

/// The condition on the scope's columns, the pipeline and the version given as `pipeline` and `version` (SQL
/// expressions): empty for every failure. A scope reads one range of [`SCOPE_INDEXES`] (the pipeline's, or the
/// version's) in the window's order.
fn scope_condition(scope: &FailureScope, pipeline: &str, version: &str) -> String {
    let mut out = String::new();
    if scope.pipeline.is_some() {
        out.push_str(&format!(" AND pipeline_id = {pipeline}"));
    }
    if scope.version.is_some() {
        out.push_str(&format!(" AND pipeline_version = {version}"));
    }
    out
}

/// The scope's own values, pipeline then version, each only when the scope has it: the parameters [`window`] and
/// [`count`] number after their fixed ones.
pub(crate) fn scope_values(scope: &FailureScope) -> impl Iterator<Item = &str> {
    [&scope.pipeline, &scope.version]
        .into_iter()
        .flatten()
        .map(String::as_str)
}

/// The failures of `scope` last updated at or after `$1`, newest first, at most `$2`: run id, pipeline, last
/// update, error head (a backward range of [`INDEX`], or of a [`SCOPE_INDEXES`] one); the scope's pipeline is
/// `$3` and its version `$4` when it has them (else the version `$3`). [`copy_window`] reads the same rows faster.
pub(crate) fn window(scope: &FailureScope) -> String {
    let version = if scope.pipeline.is_some() { "$4" } else { "$3" };
    format!(
        "SELECT run_id, pipeline_id, updated_at, error_head FROM {TABLE} WHERE updated_at >= $1{} \
         ORDER BY updated_at DESC, run_id DESC LIMIT $2",
        scope_condition(scope, "$3", version)
    )
}

/// How many failures of `scope` were last updated at or after `$1` (`infinity` not counted, as the counters count):
/// the pipeline `$2` and the version `$3` when the scope has both, else its one value `$2`. An index range.
pub(crate) fn count(scope: &FailureScope) -> String {
    let version = if scope.pipeline.is_some() { "$3" } else { "$2" };
    format!(
        "SELECT count(*) FROM {TABLE} WHERE updated_at >= $1 AND updated_at <> 'infinity'{}",
        scope_condition(scope, "$2", version)
    )
}

/// The custom settings through which [`copy_window`] passes a scope's pipeline and version to its `COPY` (which
/// takes no parameters): set for the caller's transaction only.
const SCOPE_SETTINGS: [&str; 2] = ["flowstate.failure_pipeline", "flowstate.failure_version"];

/// The failures of `scope` last updated at or after `since`, newest first, at most `limit`: run id, pipeline, last
/// update, error head (a backward range of [`INDEX`], or of a [`SCOPE_INDEXES`] one), as the bytes of
/// `COPY ... TO STDOUT (FORMAT binary)`, for [`parse_window`]. `None` for an instant outside the years 1 to 9999
/// (no literal of it is certain to read back the same: the caller reads the rows instead). Run it in a
/// transaction: a scope's pipeline and version are set for the transaction ([`SCOPE_SETTINGS`], bound as
/// parameters of `set_config`) and read back by the `COPY` with `current_setting` (a stable function, so still an
/// index range).
///
/// Why `COPY`: the window is thousands of rows (5,577 in the last 24 h at 10M runs) and sqlx's cost per row (a
/// message, a row, a decoded value per column) was most of the failure groups' time; here the rows come as one
/// stream of bytes, and their text is borrowed from it. `COPY` takes no parameters, hence the literal (formatted
/// here from the instant, with its offset: nothing of the caller's text).
pub(crate) async fn copy_window(
    conn: &mut PgConnection,
    since: &DateTime<Utc>,
    limit: i64,
    scope: &FailureScope,
) -> sqlx::Result<Option<Vec<u8>>> {
    if !(1..=9999).contains(&since.year()) {
        return Ok(None);
    }
    if !scope.is_all() {
        sqlx::query("SELECT set_config($1, $2, true), set_config($3, $4, true)")
            .bind(SCOPE_SETTINGS[0])
            .bind(scope.pipeline.as_deref().unwrap_or_default())
            .bind(SCOPE_SETTINGS[1])
            .bind(scope.version.as_deref().unwrap_or_default())
            .execute(&mut *conn)
            .await?;
    }
    let setting = |name: &str| format!("current_setting('{name}')");
    let sql = format!(
        "COPY (SELECT run_id, pipeline_id, updated_at, error_head FROM {TABLE} WHERE updated_at >= '{}'{} \
         ORDER BY updated_at DESC, run_id DESC LIMIT {limit}) TO STDOUT (FORMAT binary)",
        since.format("%Y-%m-%d %H:%M:%S%.6f+00"),
        scope_condition(scope, &setting(SCOPE_SETTINGS[0]), &setting(SCOPE_SETTINGS[1]))
    );
    let mut stream = conn.copy_out_raw(&sql).await?;
    let mut out = Vec::new();
    while let Some(chunk) = stream.try_next().await? {
        out.extend_from_slice(&chunk);
    }
    Ok(Some(out))
}

/// A failure of the window: run id, pipeline, last update (PostgreSQL's microseconds since 2000, `i64::MAX` for
/// `infinity`), error head.
pub(crate) type WindowRow<'a> = (&'a str, &'a str, i64, Option<&'a str>);

/// The rows of [`copy_window`]'s bytes (PostgreSQL's binary `COPY` format: a signature, flags and an extension
/// area, then per row a field count and each field as a length, -1 for NULL, and its bytes; -1 ends). A NULL
/// pipeline reads as empty. Anything else than four fields of the expected sizes and valid UTF-8 is an error.
pub(crate) fn parse_window(bytes: &[u8]) -> Result<Vec<WindowRow<'_>>, String> {
    const SIGNATURE: &[u8] = b"PGCOPY\n\xff\r\n\0";
    struct Reader<'a> {
        bytes: &'a [u8],
        at: usize,
    }
    impl<'a> Reader<'a> {
        fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
            let end = self
                .at
                .checked_add(n)
                .filter(|end| *end <= self.bytes.len())
                .ok_or_else(|| {
                    format!(
                        "the COPY data ends early (byte {} of {})",
                        self.at,
                        self.bytes.len()
                    )
                })?;
            let out = &self.bytes[self.at..end];
            self.at = end;
            Ok(out)
        }
        fn int<const N: usize>(&mut self) -> Result<[u8; N], String> {
            let b = self.take(N)?;
            Ok(b.try_into().expect("N bytes"))
        }
        /// A field: `None` for NULL.
        fn field(&mut self) -> Result<Option<&'a [u8]>, String> {
            let len = i32::from_be_bytes(self.int()?);
            if len < 0 {
                return Ok(None);
            }
            self.take(len as usize).map(Some)
        }
        fn text(&mut self) -> Result<Option<&'a str>, String> {
            match self.field()? {
                None => Ok(None),
                Some(b) => std::str::from_utf8(b)
                    .map(Some)
                    .map_err(|e| format!("a text field of the COPY data is not UTF-8: {e}")),
            }
        }
    }
    let mut r = Reader { bytes, at: 0 };
    if r.take(SIGNATURE.len())? != SIGNATURE {
        return Err("the COPY data does not start with PostgreSQL's binary signature".into());
    }
    let _flags = r.int::<4>()?;
    let extension = u32::from_be_bytes(r.int()?);
    r.take(extension as usize)?;
    let mut rows = Vec::new();
    loop {
        match i16::from_be_bytes(r.int()?) {
            -1 => break,
            4 => {}
            n => return Err(format!("a row of the COPY data has {n} fields, not 4")),
        }
        let run_id = r.text()?.ok_or("a failure without a run id")?;
        let pipeline = r.text()?.unwrap_or_default();
        let updated = match r.field()? {
            Some(b) => i64::from_be_bytes(
                b.try_into()
                    .map_err(|_| format!("a timestamp of {} bytes in the COPY data", b.len()))?,
            ),
            None => return Err("a failure without a last update".into()),
        };
        let head = r.text()?;
        rows.push((run_id, pipeline, updated, head));
    }
    if r.at != bytes.len() {
        return Err("bytes after the end of the COPY data".into());
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Binary COPY data of `rows` (as PostgreSQL writes it).
    fn copy_data(rows: &[[Option<&[u8]>; 4]]) -> Vec<u8> {
        let mut out = b"PGCOPY\n\xff\r\n\0".to_vec();
        out.extend_from_slice(&0u32.to_be_bytes());
        out.extend_from_slice(&0u32.to_be_bytes());
        for row in rows {
            out.extend_from_slice(&4i16.to_be_bytes());
            for field in row {
                match field {
                    None => out.extend_from_slice(&(-1i32).to_be_bytes()),
                    Some(b) => {
                        out.extend_from_slice(&(b.len() as i32).to_be_bytes());
                        out.extend_from_slice(b);
                    }
                }
            }
        }
        out.extend_from_slice(&(-1i16).to_be_bytes());
        out
    }

    #[test]
    fn the_copy_window_is_read_exactly_and_anything_malformed_is_an_error() {
        fn f(b: &[u8]) -> Option<&[u8]> {
            Some(b)
        }
        let t = 1_234_567_890i64.to_be_bytes();
        let inf = i64::MAX.to_be_bytes();
        let data = copy_data(&[
            [f(b"r1"), f(b"p"), f(&t), f("boom \t\n é".as_bytes())],
            [f(b"r2"), None, f(&inf), None],
        ]);
        assert_eq!(
            parse_window(&data).unwrap(),
            vec![
                ("r1", "p", 1_234_567_890, Some("boom \t\n é")),
                ("r2", "", i64::MAX, None)
            ]
        );
        assert_eq!(parse_window(&copy_data(&[])).unwrap(), vec![]);
        // Cut anywhere, or with a byte more: an error, never a panic.
        for end in 0..data.len() {
            assert!(parse_window(&data[..end]).is_err(), "cut at {end}");
        }
        let mut longer = data.clone();
        longer.push(0);
        assert!(parse_window(&longer).is_err());
        for bad in [
            copy_data(&[[None, f(b"p"), f(&t), None]]),
            copy_data(&[[f(b"r"), f(b"p"), f(b"1234"), None]]),
            copy_data(&[[f(b"r"), f(b"p"), None, None]]),
            copy_data(&[[f(b"r"), f(&[0xff, 0xfe]), f(&t), None]]),
        ] {
            assert!(parse_window(&bad).is_err());
        }
        let mut three = copy_data(&[[f(b"r"), f(b"p"), f(&t), None]]);
        three[20] = 3;
        assert!(parse_window(&three).is_err());
        let mut huge = copy_data(&[[f(b"r"), f(b"p"), f(&t), None]]);
        huge[21..25].copy_from_slice(&i32::MAX.to_be_bytes());
        assert!(parse_window(&huge).is_err());
    }

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
