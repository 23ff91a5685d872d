//! Counters kept by SQLite triggers, so the overview reads a handful of small rows instead of the whole table.
//!
//! Four tables, each keyed by what a page groups by, hold how many runs fall under each key:
//!
//! | table | key | values |
//! |---|---|---|
//! | `flowstate_counts` | status, pipeline | runs, runs with an execution time, the sum of execution times |
//! | `flowstate_created_hourly` | creation hour (UTC), status | runs |
//! | `flowstate_updated_hourly` | hour of last update, pipeline, status | runs |
//! | `flowstate_exec_hist` | pipeline, execution-time bucket | runs |
//!
//! Triggers on `workflow_state` keep them exact whoever writes the table: flowstate, flujo's Python (`INSERT OR
//! REPLACE`, with `recursive_triggers` off, so no delete trigger fires for the row it replaces), or any SQLite
//! client (`UPDATE`, `DELETE`, UPSERT, `INSERT OR IGNORE`, `UPDATE OR REPLACE` changing a run id). They use only
//! SQLite's core functions, so every SQLite that writes the file runs them.
//!
//! ## How the triggers stay exact
//! A row's *contribution* is +1 under each of its keys. Every change of a row is applied as "subtract the old
//! row, add the new one", and only by `AFTER` triggers, which fire only for changes that happened. The one change
//! an `AFTER` trigger cannot see is a row deleted by a `REPLACE` conflict while `recursive_triggers` is off: no
//! delete trigger fires, and by the time `AFTER INSERT` runs the old row is gone. So a `BEFORE INSERT` trigger
//! (and a `BEFORE UPDATE OF run_id` one, for `UPDATE OR REPLACE`) copies the counted columns of the row the new
//! one could replace (the row holding the same run id) into `flowstate_stash`, and:
//!
//! - `AFTER INSERT` adds the new row, subtracts the stashed row if one is still stashed (it was replaced without a
//!   delete trigger), and clears the stash;
//! - `AFTER DELETE` subtracts the deleted row and clears its stash (with `recursive_triggers` on, a replaced row is
//!   subtracted here, so `AFTER INSERT` finds no stash);
//! - `AFTER UPDATE` subtracts the old row and adds the new one when a counted column changed; when the run id
//!   changed, it also subtracts the row stashed under the new id (replaced by `UPDATE OR REPLACE`); it clears the
//!   stashes of both ids.
//!
//! A stash no `AFTER` trigger consumes (the insert was ignored, or became an UPSERT's update that changed nothing
//! counted) is stale but harmless: the row it copies is still in the table, and every trigger that reads a stash
//! for a run id runs after a `BEFORE` trigger of the same statement and row that rewrote it.
//!
//! The `AFTER` triggers on `workflow_state` compute the old and new keys once and insert them as one row into
//! `flowstate_delta`; the triggers on that table apply it to each counter table whose key changed (an update that
//! only moves a run within the same hour touches none), and delete the row. Trigger statements never conflict
//! (counter rows are created with `INSERT ... WHERE NOT EXISTS`, then updated), so the conflict policy of the
//! statement that fired them (`OR REPLACE`, `OR IGNORE`), which SQLite applies to the triggers' statements too,
//! changes nothing. Counter rows that fall to zero are deleted, so the tables hold only keys that have runs.
//!
//! Keys: a status or pipeline id is stored as `'=' || value`, and NULL as `''`, so NULL never collides with a
//! stored value (not even an empty one). Hours are instants ([`crate::time::instant_sql`]) divided by an hour,
//! rounded down; a timestamp that cannot be read has no hour and is in neither hourly table (no window counts
//! it). Execution times are counted as every reader shows them: integers as they are, other values rounded to
//! the millisecond. Their sum is kept in two integer halves (the high and the low 32 bits of each time), so it is
//! exact and cannot overflow.

use std::collections::BTreeMap;

use sqlx::SqliteConnection;

pub(crate) use crate::counters::*;
use crate::time::{instant_sql, UNKNOWN_INSTANT};

/// The counter tables, the stash and the delta table, in creation order.
pub(crate) const TABLES: [(&str, &str); 14] = [
    (
        "flowstate_counts",
        "CREATE TABLE IF NOT EXISTS flowstate_counts (status_key TEXT NOT NULL, pipeline_key TEXT NOT NULL, \
         runs INTEGER NOT NULL, timed INTEGER NOT NULL, time_hi INTEGER NOT NULL, time_lo INTEGER NOT NULL, \
         PRIMARY KEY (status_key, pipeline_key)) WITHOUT ROWID",
    ),
    (
        "flowstate_created_hourly",
        "CREATE TABLE IF NOT EXISTS flowstate_created_hourly (hour INTEGER NOT NULL, status_key TEXT NOT NULL, \
         runs INTEGER NOT NULL, PRIMARY KEY (hour, status_key)) WITHOUT ROWID",
    ),
    (
        "flowstate_updated_hourly",
        "CREATE TABLE IF NOT EXISTS flowstate_updated_hourly (hour INTEGER NOT NULL, pipeline_key TEXT NOT NULL, \
         status_key TEXT NOT NULL, runs INTEGER NOT NULL, PRIMARY KEY (hour, pipeline_key, status_key)) WITHOUT ROWID",
    ),
    (
        "flowstate_exec_hist",
        "CREATE TABLE IF NOT EXISTS flowstate_exec_hist (pipeline_key TEXT NOT NULL, bucket INTEGER NOT NULL, \
         runs INTEGER NOT NULL, PRIMARY KEY (pipeline_key, bucket)) WITHOUT ROWID",
    ),
    // Schema version 4 (the Pipelines page and its trends): see [`PIPELINE_TABLES`].
    PIPELINE_TABLES[0],
    PIPELINE_TABLES[1],
    PIPELINE_TABLES[2],
    PIPELINE_TABLES[3],
    PIPELINE_TABLES[4],
    // Schema version 5: every pipeline's rows summed, per day (the trend of all pipelines).
    PIPELINE_TABLES[5],
    PIPELINE_TABLES[6],
    // Schema version 5: runs per pipeline, hour of last update, version and status ([`VERSION_TABLE`]).
    VERSION_TABLE,
    // The counted columns of a row another may replace, as stored (no type, so no conversion).
    (
        "flowstate_stash",
        "CREATE TABLE IF NOT EXISTS flowstate_stash (run_id TEXT NOT NULL PRIMARY KEY, status, pipeline_id, \
         created_at, updated_at, execution_time_ms, memory_usage_mb, pipeline_version) WITHOUT ROWID",
    ),
    // One change at a time: `o` (an old row is subtracted) and `n` (a new row is added), each with its keys.
    // Always empty between statements.
    (
        "flowstate_delta",
        "CREATE TABLE IF NOT EXISTS flowstate_delta (id INTEGER PRIMARY KEY, \
         o, o_status, o_pipeline, o_created, o_updated, o_exec, o_bucket, o_mem, o_mbucket, o_version, \
         n, n_status, n_pipeline, n_created, n_updated, n_exec, n_bucket, n_mem, n_mbucket, n_version, o_day, n_day, \
         o_cbucket, n_cbucket, o_cmbucket, n_cmbucket)",
    ),
];

/// Schema version 4's counters, for the Pipelines page and its trends ([`crate::pipelines`]), keyed by the hour
/// or the day (UTC) of a run's last update: runs per (day, pipeline, status), and histograms of execution times
/// and of memory (in thousandths of a MB, [`mem_sql`]) per (hour or day, pipeline, bucket) with the sum of the
/// values in each bucket (two 32-bit halves, as `flowstate_counts` keeps its times). A window reads whole days from
/// the daily tables and the hours of its first, partial day from the hourly ones (and from
/// `flowstate_updated_hourly` for the runs per status).
///
/// Schema version 5: the daily histograms' buckets are **coarse** ([`COARSE_SUB_BUCKETS`], 4 per power of two:
/// [`coarse_sql`]; the hourly ones keep 16), and two more tables hold every pipeline's rows summed per day (runs per
/// (day, status), runs per (day, coarse time bucket)), which the trend of all pipelines reads: a 90-day trend reads
/// 180 days × ~40 buckets instead of 180 days × pipelines × ~160.
pub(crate) const PIPELINE_TABLES: [(&str, &str); 7] = [
    (
        "flowstate_pipe_status_daily",
        "CREATE TABLE IF NOT EXISTS flowstate_pipe_status_daily (day INTEGER NOT NULL, pipeline_key TEXT NOT NULL, \
         status_key TEXT NOT NULL, runs INTEGER NOT NULL, PRIMARY KEY (day, pipeline_key, status_key)) WITHOUT ROWID",
    ),
    (
        "flowstate_pipe_exec_hourly",
        "CREATE TABLE IF NOT EXISTS flowstate_pipe_exec_hourly (hour INTEGER NOT NULL, pipeline_key TEXT NOT NULL, \
         bucket INTEGER NOT NULL, runs INTEGER NOT NULL, sum_hi INTEGER NOT NULL, sum_lo INTEGER NOT NULL, \
         PRIMARY KEY (hour, pipeline_key, bucket)) WITHOUT ROWID",
    ),
    (
        "flowstate_pipe_exec_daily",
        "CREATE TABLE IF NOT EXISTS flowstate_pipe_exec_daily (day INTEGER NOT NULL, pipeline_key TEXT NOT NULL, \
         bucket INTEGER NOT NULL, runs INTEGER NOT NULL, sum_hi INTEGER NOT NULL, sum_lo INTEGER NOT NULL, \
         PRIMARY KEY (day, pipeline_key, bucket)) WITHOUT ROWID",
    ),
    (
        "flowstate_pipe_mem_hourly",
        "CREATE TABLE IF NOT EXISTS flowstate_pipe_mem_hourly (hour INTEGER NOT NULL, pipeline_key TEXT NOT NULL, \
         bucket INTEGER NOT NULL, runs INTEGER NOT NULL, sum_hi INTEGER NOT NULL, sum_lo INTEGER NOT NULL, \
         PRIMARY KEY (hour, pipeline_key, bucket)) WITHOUT ROWID",
    ),
    (
        "flowstate_pipe_mem_daily",
        "CREATE TABLE IF NOT EXISTS flowstate_pipe_mem_daily (day INTEGER NOT NULL, pipeline_key TEXT NOT NULL, \
         bucket INTEGER NOT NULL, runs INTEGER NOT NULL, sum_hi INTEGER NOT NULL, sum_lo INTEGER NOT NULL, \
         PRIMARY KEY (day, pipeline_key, bucket)) WITHOUT ROWID",
    ),
    (
        "flowstate_all_status_daily",
        "CREATE TABLE IF NOT EXISTS flowstate_all_status_daily (day INTEGER NOT NULL, status_key TEXT NOT NULL, \
         runs INTEGER NOT NULL, PRIMARY KEY (day, status_key)) WITHOUT ROWID",
    ),
    (
        "flowstate_all_exec_daily",
        "CREATE TABLE IF NOT EXISTS flowstate_all_exec_daily (day INTEGER NOT NULL, bucket INTEGER NOT NULL, \
         runs INTEGER NOT NULL, PRIMARY KEY (day, bucket)) WITHOUT ROWID",
    ),
];

/// Schema version 5's counter, for the Failures page's table of a pipeline's versions
/// ([`crate::Store::failures_by_version`]): runs per (pipeline, hour of the last update, `pipeline_version`,
/// status). Keyed by the pipeline first, so one pipeline's window is one range of the primary key.
pub(crate) const VERSION_TABLE: (&str, &str) = (
    "flowstate_version_hourly",
    "CREATE TABLE IF NOT EXISTS flowstate_version_hourly (pipeline_key TEXT NOT NULL, hour INTEGER NOT NULL, \
     version_key TEXT NOT NULL, status_key TEXT NOT NULL, runs INTEGER NOT NULL, \
     PRIMARY KEY (pipeline_key, hour, version_key, status_key)) WITHOUT ROWID",
);

/// The triggers' names, in the order of [`create_triggers`].
pub(crate) const TRIGGERS: [&str; 19] = [
    "flowstate_counters_bi",
    "flowstate_counters_ai",
    "flowstate_counters_bu",
    "flowstate_counters_au",
    "flowstate_counters_au_stash",
    "flowstate_counters_ad",
    "flowstate_delta_counts",
    "flowstate_delta_created",
    "flowstate_delta_updated",
    "flowstate_delta_exec",
    "flowstate_delta_pipe_status_daily",
    "flowstate_delta_pipe_exec_hourly",
    "flowstate_delta_pipe_exec_daily",
    "flowstate_delta_pipe_mem_hourly",
    "flowstate_delta_pipe_mem_daily",
    "flowstate_delta_all_status_daily",
    "flowstate_delta_all_exec_daily",
    "flowstate_delta_version_hourly",
    "flowstate_delta_done",
];

/// The columns of `workflow_state` the counters depend on.
const COUNTED: [&str; 7] = [
    "status",
    "pipeline_id",
    "created_at",
    "updated_at",
    "execution_time_ms",
    "memory_usage_mb",
    "pipeline_version",
];

/// `'=' || value`, or `''` for NULL.
pub(crate) fn key_sql(column: &str) -> String {
    format!("COALESCE('=' || {column}, '')")
}

/// An execution time as every reader shows it: an integer as it is, anything else rounded to the millisecond.
pub(crate) fn exec_sql(column: &str) -> String {
    format!("CASE WHEN typeof({column}) = 'integer' THEN {column} ELSE CAST(round({column}) AS INTEGER) END")
}

/// A memory figure as the pipeline counters keep it: thousandths of a MB, rounded, within `[0, 2^40]`
/// ([`MEM_UNITS_MAX`]: about 1.1 PB); NULL when the column holds no number.
pub(crate) fn mem_sql(column: &str) -> String {
    format!(
        "CASE WHEN typeof({column}) IN ('integer', 'real') THEN \
         CAST(min(max(round({column} * 1000.0), 0.0), {MEM_UNITS_MAX}.0) AS INTEGER) END"
    )
}

/// The day (an hour divided by 24, rounded down) of an hour expression; NULL for NULL.
fn day_sql(hour: &str) -> String {
    format!("({hour} / 24 - ({hour} % 24 < 0))")
}

/// The hour (instant divided by an hour, rounded down) of a timestamp column; NULL when it cannot be read.
pub(crate) fn hour_sql(column: &str) -> String {
    format!(
        "(SELECT CASE WHEN i = {UNKNOWN_INSTANT} THEN NULL ELSE i / {HOUR_US} - (i % {HOUR_US} < 0) END \
         FROM (SELECT {} AS i))",
        instant_sql(column)
    )
}

/// The histogram bucket of an execution time (an expression such as [`exec_sql`]'s): its lower bound, i.e. the
/// time itself below 32 ms (negative times count as 0), else the time with all but its five highest bits cleared.
/// The highest bit is found from the time's hexadecimal digits (`printf('%x')`): their number, and the first one.
pub(crate) fn bucket_sql(exec: &str) -> String {
    format!(
        "(SELECT (v >> s) << s FROM (SELECT v, max(4 * length(h) + CASE WHEN substr(h, 1, 1) < '2' THEN -8 \
         WHEN substr(h, 1, 1) < '4' THEN -7 WHEN substr(h, 1, 1) < '8' THEN -6 ELSE -5 END, 0) AS s \
         FROM (SELECT v, printf('%x', v) AS h FROM (SELECT max({exec}, 0) AS v))))"
    )
}

/// The coarse bucket ([`COARSE_SUB_BUCKETS`], the Rust twin [`coarse_of`]) of a value or of its fine bucket (an
/// expression): the value itself below 8, else the value with all but its three highest bits cleared (as
/// [`bucket_sql`], from the hexadecimal digits); NULL for NULL.
pub(crate) fn coarse_sql(v: &str) -> String {
    format!(
        "(SELECT (v >> s) << s FROM (SELECT v, max(4 * length(h) + CASE WHEN substr(h, 1, 1) < '2' THEN -6 \
         WHEN substr(h, 1, 1) < '4' THEN -5 WHEN substr(h, 1, 1) < '8' THEN -4 ELSE -3 END, 0) AS s \
         FROM (SELECT v, printf('%x', v) AS h FROM (SELECT max({v}, 0) AS v))))"
    )
}

/// The nine keys of a row whose columns are `{row}status`, ...: status, pipeline, creation hour, update hour,
/// execution-time bucket, execution time, memory bucket, memory ([`mem_sql`]), version.
fn keys_of(row: &str) -> [String; 9] {
    let exec = exec_sql(&format!("{row}execution_time_ms"));
    let mem = mem_sql(&format!("{row}memory_usage_mb"));
    [
        key_sql(&format!("{row}status")),
        key_sql(&format!("{row}pipeline_id")),
        hour_sql(&format!("{row}created_at")),
        hour_sql(&format!("{row}updated_at")),
        bucket_sql(&exec),
        exec,
        bucket_sql(&mem),
        mem,
        key_sql(&format!("{row}pipeline_version")),
    ]
}

/// `INSERT INTO flowstate_delta` of an old row (`old`: its column prefix, or `None`) and a new one, with
/// `tail` after the values (a `FROM`/`WHERE`).
/// The update hours' days, and the coarse buckets of the daily histograms (from the fine ones), are computed once,
/// by an outer `SELECT` over the keys.
fn delta(old: Option<&str>, new: Option<&str>, old_present: &str, tail: &str) -> String {
    let side = |row: Option<&str>, first: usize| -> String {
        let values: Vec<String> = match row {
            Some(r) => {
                let [s, p, c, u, b, e, mb, m, v] = keys_of(r);
                vec![s, p, c, u, e, b, m, mb, v]
            }
            None => vec!["NULL".to_string(); 9],
        };
        values
            .iter()
            .enumerate()
            .map(|(i, v)| format!("{v} AS c{}", first + i))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let cols: Vec<String> = (0..20).map(|i| format!("c{i}")).collect();
    format!(
        "INSERT INTO flowstate_delta (o, o_status, o_pipeline, o_created, o_updated, o_exec, o_bucket, o_mem, \
         o_mbucket, o_version, n, n_status, n_pipeline, n_created, n_updated, n_exec, n_bucket, n_mem, n_mbucket, \
         n_version, o_day, n_day, o_cbucket, n_cbucket, o_cmbucket, n_cmbucket) \
         SELECT {}, {}, {}, {}, {}, {}, {} FROM (SELECT {old_present} AS c0, {}, {} AS c10, {}{tail});\n",
        cols.join(", "),
        day_sql("c4"),
        day_sql("c14"),
        coarse_sql("c6"),
        coarse_sql("c16"),
        coarse_sql("c8"),
        coarse_sql("c18"),
        side(old, 1),
        if new.is_some() { "1" } else { "0" },
        side(new, 11),
    )
}

/// Copies the counted columns of the row holding `run_id` (if any) into the stash, replacing a stale stash.
fn stash(run_id: &str) -> String {
    format!(
        "DELETE FROM flowstate_stash WHERE run_id = {run_id};\n\
         INSERT INTO flowstate_stash (run_id, {cols}) SELECT run_id, {cols} FROM workflow_state \
         WHERE run_id = {run_id} LIMIT 1;\n",
        cols = COUNTED.join(", ")
    )
}

/// A counter table as the delta triggers see it: name, key columns with the delta's column for each, the
/// value columns with the expression adding one row (`{e}` is the row's execution time), and the condition for
/// a row to be counted at all.
struct Counter {
    table: &'static str,
    keys: &'static [(&'static str, &'static str)],
    values: &'static [(&'static str, &'static str)],
    counted: &'static str,
    /// The delta's value column (`exec`, `mem`) the values depend on beside the keys, if any.
    value: Option<&'static str>,
}

const COUNTERS: [Counter; 12] = [
    Counter {
        table: "flowstate_counts",
        keys: &[("status_key", "status"), ("pipeline_key", "pipeline")],
        values: &[
            ("runs", "1"),
            ("timed", "({e} IS NOT NULL)"),
            ("time_hi", "COALESCE({e} >> 32, 0)"),
            ("time_lo", "COALESCE({e} & 4294967295, 0)"),
        ],
        counted: "1",
        value: Some("exec"),
    },
    Counter {
        table: "flowstate_created_hourly",
        keys: &[("hour", "created"), ("status_key", "status")],
        values: &[("runs", "1")],
        counted: "{x}_created IS NOT NULL",
        value: None,
    },
    Counter {
        table: "flowstate_updated_hourly",
        keys: &[
            ("hour", "updated"),
            ("pipeline_key", "pipeline"),
            ("status_key", "status"),
        ],
        values: &[("runs", "1")],
        counted: "{x}_updated IS NOT NULL",
        value: None,
    },
    Counter {
        table: "flowstate_exec_hist",
        keys: &[("pipeline_key", "pipeline"), ("bucket", "bucket")],
        values: &[("runs", "1")],
        counted: "{x}_bucket IS NOT NULL",
        value: None,
    },
    // Schema version 4: [`PIPELINE_TABLES`], in the same order.
    Counter {
        table: "flowstate_pipe_status_daily",
        keys: &[
            ("day", "day"),
            ("pipeline_key", "pipeline"),
            ("status_key", "status"),
        ],
        values: &[("runs", "1")],
        counted: "{x}_day IS NOT NULL",
        value: None,
    },
    Counter {
        table: "flowstate_pipe_exec_hourly",
        keys: &[
            ("hour", "updated"),
            ("pipeline_key", "pipeline"),
            ("bucket", "bucket"),
        ],
        values: EXEC_SUMS,
        counted: "{x}_updated IS NOT NULL AND {x}_bucket IS NOT NULL",
        value: Some("exec"),
    },
    // Daily histograms in coarse buckets (schema version 5).
    Counter {
        table: "flowstate_pipe_exec_daily",
        keys: &[
            ("day", "day"),
            ("pipeline_key", "pipeline"),
            ("bucket", "cbucket"),
        ],
        values: EXEC_SUMS,
        counted: "{x}_day IS NOT NULL AND {x}_cbucket IS NOT NULL",
        value: Some("exec"),
    },
    Counter {
        table: "flowstate_pipe_mem_hourly",
        keys: &[
            ("hour", "updated"),
            ("pipeline_key", "pipeline"),
            ("bucket", "mbucket"),
        ],
        values: MEM_SUMS,
        counted: "{x}_updated IS NOT NULL AND {x}_mbucket IS NOT NULL",
        value: Some("mem"),
    },
    Counter {
        table: "flowstate_pipe_mem_daily",
        keys: &[
            ("day", "day"),
            ("pipeline_key", "pipeline"),
            ("bucket", "cmbucket"),
        ],
        values: MEM_SUMS,
        counted: "{x}_day IS NOT NULL AND {x}_cmbucket IS NOT NULL",
        value: Some("mem"),
    },
    // Schema version 5: every pipeline summed, per day.
    Counter {
        table: "flowstate_all_status_daily",
        keys: &[("day", "day"), ("status_key", "status")],
        values: &[("runs", "1")],
        counted: "{x}_day IS NOT NULL",
        value: None,
    },
    Counter {
        table: "flowstate_all_exec_daily",
        keys: &[("day", "day"), ("bucket", "cbucket")],
        values: &[("runs", "1")],
        counted: "{x}_day IS NOT NULL AND {x}_cbucket IS NOT NULL",
        value: None,
    },
    // Schema version 5: [`VERSION_TABLE`].
    Counter {
        table: "flowstate_version_hourly",
        keys: &[
            ("pipeline_key", "pipeline"),
            ("hour", "updated"),
            ("version_key", "version"),
            ("status_key", "status"),
        ],
        values: &[("runs", "1")],
        counted: "{x}_updated IS NOT NULL",
        value: None,
    },
];

/// A histogram row's values: runs, and the sum of their values in two 32-bit halves.
const EXEC_SUMS: &[(&str, &str)] = &[
    ("runs", "1"),
    ("sum_hi", "({e} >> 32)"),
    ("sum_lo", "({e} & 4294967295)"),
];
const MEM_SUMS: &[(&str, &str)] = &[
    ("runs", "1"),
    ("sum_hi", "({m} >> 32)"),
    ("sum_lo", "({m} & 4294967295)"),
];

/// The trigger applying a delta row to one counter table: only when the row's keys (or values) for that table
/// changed; the new row is added first, so a key that stays never drops to zero in between.
fn delta_trigger(name: &str, c: &Counter) -> String {
    let on = |x: &str| -> String {
        c.keys
            .iter()
            .map(|(col, d)| format!("{col} = NEW.{x}_{d}"))
            .collect::<Vec<_>>()
            .join(" AND ")
    };
    let counted = |x: &str| c.counted.replace("{x}", &format!("NEW.{x}"));
    let set = |x: &str, sign: &str| -> String {
        c.values
            .iter()
            .map(|(col, add)| {
                format!(
                    "{col} = {col} {sign} {}",
                    add.replace("{e}", &format!("NEW.{x}_exec"))
                        .replace("{m}", &format!("NEW.{x}_mem"))
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut changed: Vec<String> = vec!["NEW.o IS NOT NEW.n".into()];
    for (_, d) in c.keys {
        changed.push(format!("NEW.o_{d} IS NOT NEW.n_{d}"));
    }
    if let Some(v) = c.value {
        changed.push(format!("NEW.o_{v} IS NOT NEW.n_{v}"));
    }
    let key_cols: Vec<&str> = c.keys.iter().map(|(col, _)| *col).collect();
    let new_keys: Vec<String> = c.keys.iter().map(|(_, d)| format!("NEW.n_{d}")).collect();
    let zeros: Vec<&str> = c.values.iter().map(|_| "0").collect();
    let value_cols: Vec<&str> = c.values.iter().map(|(col, _)| *col).collect();
    format!(
        "CREATE TRIGGER {name} AFTER INSERT ON flowstate_delta FOR EACH ROW WHEN {changed} BEGIN\n\
         INSERT INTO {t} ({kc}, {vc}) SELECT {nk}, {zeros} WHERE NEW.n AND {n_counted} \
         AND NOT EXISTS (SELECT 1 FROM {t} WHERE {on_n});\n\
         UPDATE {t} SET {add} WHERE NEW.n AND {on_n};\n\
         UPDATE {t} SET {sub} WHERE NEW.o AND {on_o};\n\
         DELETE FROM {t} WHERE NEW.o AND {on_o} AND runs = 0;\n\
         END",
        changed = changed.join(" OR "),
        t = c.table,
        kc = key_cols.join(", "),
        vc = value_cols.join(", "),
        nk = new_keys.join(", "),
        zeros = zeros.join(", "),
        n_counted = counted("n"),
        on_n = on("n"),
        on_o = on("o"),
        add = set("n", "+"),
        sub = set("o", "-"),
    )
}

/// `CREATE TRIGGER` statements, in the order of [`TRIGGERS`].
pub(crate) fn create_triggers() -> Vec<String> {
    let changed: Vec<String> = COUNTED
        .iter()
        .map(|c| format!("OLD.{c} IS NOT NEW.{c} OR typeof(OLD.{c}) IS NOT typeof(NEW.{c})"))
        .collect();
    let on = |name: &str, event: &str, when: &str, body: String| {
        format!("CREATE TRIGGER {name} {event} ON workflow_state FOR EACH ROW{when} BEGIN\n{body}END")
    };
    let mut out = vec![
        on(TRIGGERS[0], "BEFORE INSERT", "", stash("NEW.run_id")),
        on(
            TRIGGERS[1],
            "AFTER INSERT",
            "",
            format!(
                "{}DELETE FROM flowstate_stash WHERE run_id = NEW.run_id;\n",
                delta(
                    Some("s."),
                    Some("NEW."),
                    "s.run_id IS NOT NULL",
                    " FROM (SELECT 1) LEFT JOIN flowstate_stash AS s ON s.run_id = NEW.run_id"
                )
            ),
        ),
        on(TRIGGERS[2], "BEFORE UPDATE OF run_id", "", stash("NEW.run_id")),
        on(
            TRIGGERS[3],
            "AFTER UPDATE",
            &format!(" WHEN {}", changed.join(" OR ")),
            delta(Some("OLD."), Some("NEW."), "1", ""),
        ),
        on(
            TRIGGERS[4],
            "AFTER UPDATE",
            "",
            format!(
                "{}DELETE FROM flowstate_stash WHERE run_id IN (OLD.run_id, NEW.run_id);\n",
                delta(
                    Some("s."),
                    None,
                    "1",
                    " FROM flowstate_stash AS s WHERE s.run_id = NEW.run_id AND NEW.run_id IS NOT OLD.run_id"
                )
            ),
        ),
        on(
            TRIGGERS[5],
            "AFTER DELETE",
            "",
            format!(
                "{}DELETE FROM flowstate_stash WHERE run_id = OLD.run_id;\n",
                delta(Some("OLD."), None, "1", "")
            ),
        ),
    ];
    for (name, counter) in TRIGGERS[6..6 + COUNTERS.len()].iter().zip(&COUNTERS) {
        out.push(delta_trigger(name, counter));
    }
    out.push(format!(
        "CREATE TRIGGER {} AFTER INSERT ON flowstate_delta FOR EACH ROW BEGIN\n\
         DELETE FROM flowstate_delta WHERE id = NEW.id;\nEND",
        TRIGGERS[6 + COUNTERS.len()]
    ));
    out
}

/// What each counter table should hold, recounted from `workflow_state`: `(table, columns, SELECT)`. The SELECTs
/// return the table's columns in order and under their names, keys first.
pub(crate) fn recounts() -> Vec<(&'static str, &'static str, String)> {
    let [s, p, ch, uh, b, e, mb, m, v] = keys_of("");
    let d = day_sql("hour");
    let mut out = vec![
        (
            "flowstate_counts",
            "status_key, pipeline_key, runs, timed, time_hi, time_lo",
            format!(
                "SELECT {s} AS status_key, {p} AS pipeline_key, count(*) AS runs, count({e}) AS timed, \
                 COALESCE(sum({e} >> 32), 0) AS time_hi, COALESCE(sum({e} & 4294967295), 0) AS time_lo \
                 FROM workflow_state GROUP BY status_key, pipeline_key"
            ),
        ),
        (
            "flowstate_created_hourly",
            "hour, status_key, runs",
            format!(
                "SELECT hour, status_key, count(*) AS runs FROM (SELECT {ch} AS hour, {s} AS status_key \
                 FROM workflow_state) WHERE hour IS NOT NULL GROUP BY hour, status_key"
            ),
        ),
        (
            "flowstate_updated_hourly",
            "hour, pipeline_key, status_key, runs",
            format!(
                "SELECT hour, pipeline_key, status_key, count(*) AS runs FROM (SELECT {uh} AS hour, \
                 {p} AS pipeline_key, {s} AS status_key FROM workflow_state) WHERE hour IS NOT NULL \
                 GROUP BY hour, pipeline_key, status_key"
            ),
        ),
        (
            "flowstate_exec_hist",
            "pipeline_key, bucket, runs",
            format!(
                "SELECT pipeline_key, bucket, count(*) AS runs FROM (SELECT {p} AS pipeline_key, {b} AS bucket \
                 FROM workflow_state) WHERE bucket IS NOT NULL GROUP BY pipeline_key, bucket"
            ),
        ),
    ];
    // Schema version 4's (and 5's: coarse daily buckets, every pipeline summed per day).
    let rows = format!(
        "SELECT {d} AS day, hour, {s} AS status_key, {p} AS pipeline_key, {e} AS e, {b} AS b, {m} AS m, {mb} AS mb, \
         {cb} AS cb, {cmb} AS cmb FROM (SELECT *, {uh} AS hour FROM workflow_state) WHERE hour IS NOT NULL",
        cb = coarse_sql(&b),
        cmb = coarse_sql(&mb),
    );
    out.push((
        "flowstate_pipe_status_daily",
        "day, pipeline_key, status_key, runs",
        format!(
            "SELECT day, pipeline_key, status_key, count(*) AS runs FROM ({rows}) GROUP BY day, pipeline_key, status_key"
        ),
    ));
    for (table, period, v, bk) in [
        ("flowstate_pipe_exec_hourly", "hour", "e", "b"),
        ("flowstate_pipe_exec_daily", "day", "e", "cb"),
        ("flowstate_pipe_mem_hourly", "hour", "m", "mb"),
        ("flowstate_pipe_mem_daily", "day", "m", "cmb"),
    ] {
        out.push((
            table,
            if period == "hour" {
                "hour, pipeline_key, bucket, runs, sum_hi, sum_lo"
            } else {
                "day, pipeline_key, bucket, runs, sum_hi, sum_lo"
            },
            format!(
                "SELECT {period}, pipeline_key, {bk} AS bucket, count(*) AS runs, sum({v} >> 32) AS sum_hi, \
                 sum({v} & 4294967295) AS sum_lo FROM ({rows}) WHERE {bk} IS NOT NULL GROUP BY {period}, pipeline_key, {bk}"
            ),
        ));
    }
    out.push((
        "flowstate_all_status_daily",
        "day, status_key, runs",
        format!("SELECT day, status_key, count(*) AS runs FROM ({rows}) GROUP BY day, status_key"),
    ));
    out.push((
        "flowstate_all_exec_daily",
        "day, bucket, runs",
        format!(
            "SELECT day, cb AS bucket, count(*) AS runs FROM ({rows}) WHERE cb IS NOT NULL GROUP BY day, cb"
        ),
    ));
    // Schema version 5's.
    out.push((
        VERSION_TABLE.0,
        "pipeline_key, hour, version_key, status_key, runs",
        format!(
            "SELECT pipeline_key, hour, version_key, status_key, count(*) AS runs FROM (SELECT {p} AS pipeline_key, \
             {uh} AS hour, {v} AS version_key, {s} AS status_key FROM workflow_state) WHERE hour IS NOT NULL \
             GROUP BY pipeline_key, hour, version_key, status_key"
        ),
    ));
    out
}

/// Statements that empty the counters and fill them from the table (run inside one transaction). The table is
/// read once: every row's keys go to a temporary table, which the four counts are then grouped from (the same
/// counts as [`recounts`], which reads the table once per counter table).
pub(crate) fn refill() -> Vec<String> {
    let [s, p, ch, uh, b, e, mb, m, v] = keys_of("");
    let mut out = vec![
        "DELETE FROM flowstate_stash".to_string(),
        "DELETE FROM flowstate_delta".to_string(),
        "DROP TABLE IF EXISTS temp.flowstate_refill".to_string(),
        format!(
            "CREATE TEMP TABLE flowstate_refill AS SELECT {s} AS status_key, {p} AS pipeline_key, \
             {ch} AS created_hour, {uh} AS updated_hour, {e} AS exec_ms, {b} AS bucket, {m} AS mem, \
             {mb} AS mbucket, {v} AS version_key FROM workflow_state"
        ),
    ];
    let day = day_sql("updated_hour");
    for (table, columns, select) in [
        (
            "flowstate_counts",
            "status_key, pipeline_key, runs, timed, time_hi, time_lo",
            "SELECT status_key, pipeline_key, count(*), count(exec_ms), COALESCE(sum(exec_ms >> 32), 0), \
             COALESCE(sum(exec_ms & 4294967295), 0) FROM temp.flowstate_refill GROUP BY status_key, pipeline_key",
        ),
        (
            "flowstate_created_hourly",
            "hour, status_key, runs",
            "SELECT created_hour, status_key, count(*) FROM temp.flowstate_refill WHERE created_hour IS NOT NULL \
             GROUP BY created_hour, status_key",
        ),
        (
            "flowstate_updated_hourly",
            "hour, pipeline_key, status_key, runs",
            "SELECT updated_hour, pipeline_key, status_key, count(*) FROM temp.flowstate_refill \
             WHERE updated_hour IS NOT NULL GROUP BY updated_hour, pipeline_key, status_key",
        ),
        (
            "flowstate_exec_hist",
            "pipeline_key, bucket, runs",
            "SELECT pipeline_key, bucket, count(*) FROM temp.flowstate_refill WHERE bucket IS NOT NULL \
             GROUP BY pipeline_key, bucket",
        ),
    ] {
        out.push(format!("DELETE FROM {table}"));
        out.push(format!("INSERT INTO {table} ({columns}) {select}"));
    }
    // Schema version 4's.
    out.push("DELETE FROM flowstate_pipe_status_daily".to_string());
    out.push(format!(
        "INSERT INTO flowstate_pipe_status_daily (day, pipeline_key, status_key, runs) SELECT {day} AS d, \
         pipeline_key, status_key, count(*) FROM temp.flowstate_refill WHERE updated_hour IS NOT NULL \
         GROUP BY d, pipeline_key, status_key"
    ));
    let (cb, cmb) = (coarse_sql("bucket"), coarse_sql("mbucket"));
    for (table, period, v, bk) in [
        ("flowstate_pipe_exec_hourly", "hour", "exec_ms", "bucket"),
        ("flowstate_pipe_exec_daily", "day", "exec_ms", cb.as_str()),
        ("flowstate_pipe_mem_hourly", "hour", "mem", "mbucket"),
        ("flowstate_pipe_mem_daily", "day", "mem", cmb.as_str()),
    ] {
        let key = if period == "hour" {
            "updated_hour".to_string()
        } else {
            day.clone()
        };
        out.push(format!("DELETE FROM {table}"));
        out.push(format!(
            "INSERT INTO {table} ({period}, pipeline_key, bucket, runs, sum_hi, sum_lo) SELECT {key} AS k, \
             pipeline_key, {bk} AS bk, count(*), sum({v} >> 32), sum({v} & 4294967295) FROM temp.flowstate_refill \
             WHERE updated_hour IS NOT NULL AND bk IS NOT NULL GROUP BY k, pipeline_key, bk"
        ));
    }
    // Schema version 5's: every pipeline summed per day.
    out.push("DELETE FROM flowstate_all_status_daily".to_string());
    out.push(format!(
        "INSERT INTO flowstate_all_status_daily (day, status_key, runs) SELECT {day} AS d, status_key, count(*) \
         FROM temp.flowstate_refill WHERE updated_hour IS NOT NULL GROUP BY d, status_key"
    ));
    out.push("DELETE FROM flowstate_all_exec_daily".to_string());
    out.push(format!(
        "INSERT INTO flowstate_all_exec_daily (day, bucket, runs) SELECT {day} AS d, {cb} AS bk, count(*) \
         FROM temp.flowstate_refill WHERE updated_hour IS NOT NULL AND bk IS NOT NULL GROUP BY d, bk"
    ));
    // Schema version 5's.
    out.push(format!("DELETE FROM {}", VERSION_TABLE.0));
    out.push(format!(
        "INSERT INTO {} (pipeline_key, hour, version_key, status_key, runs) SELECT pipeline_key, updated_hour, \
         version_key, status_key, count(*) FROM temp.flowstate_refill WHERE updated_hour IS NOT NULL \
         GROUP BY pipeline_key, updated_hour, version_key, status_key",
        VERSION_TABLE.0
    ));
    out.push("DROP TABLE temp.flowstate_refill".to_string());
    out
}

/// The statements that read the counters (and the few index ranges beside them), in one place so the tests can
/// check each one's query plan.
pub(crate) mod sql {
    use crate::time::{instant_sql, UNKNOWN_INSTANT};

    /// Every `flowstate_counts` row (a few per status and pipeline).
    pub const COUNTS: &str = "SELECT status_key, runs, timed, time_hi, time_lo FROM flowstate_counts";
    /// Runs created in the hours after `?1`.
    pub const CREATED_AFTER_HOUR: &str =
        "SELECT COALESCE(sum(runs), 0) FROM flowstate_created_hourly WHERE hour > ?1";
    /// Runs created in hour `?1`.
    pub const CREATED_IN_HOUR: &str =
        "SELECT COALESCE(sum(runs), 0) FROM flowstate_created_hourly WHERE hour = ?1";
    /// Runs created per bucket of `?3` hours and status, in the hours `[?1, ?2)`.
    pub const ACTIVITY: &str =
        "SELECT (hour - ?1) / ?3 AS b, status_key, sum(runs) FROM flowstate_created_hourly \
         WHERE hour >= ?1 AND hour < ?2 GROUP BY b, status_key";
    /// The execution-time histogram of pipeline key `?1`, or of every pipeline when `?1` is NULL, as one JSON
    /// array of `[bucket, runs]` (one result row: the driver's cost per row is many times SQLite's).
    pub const HISTOGRAM: &str =
        "SELECT json_group_array(json_array(bucket, n)) FROM (SELECT bucket, sum(runs) AS n \
         FROM flowstate_exec_hist WHERE ?1 IS NULL OR pipeline_key = ?1 GROUP BY bucket)";
    /// Every pipeline's histogram (as [`HISTOGRAM`]) and longest execution time (the end of its numbers in
    /// `idx_flowstate_pipeline_timed`), one row per pipeline key.
    pub const HISTOGRAMS: &str = "SELECT h.pipeline_key, json_group_array(json_array(h.bucket, h.runs)), \
         (SELECT CAST(max(execution_time_ms) AS REAL) FROM workflow_state \
         WHERE pipeline_id = substr(h.pipeline_key, 2) AND execution_time_ms < '') \
         FROM flowstate_exec_hist AS h WHERE h.pipeline_key <> '' GROUP BY h.pipeline_key";
    /// The longest execution time (the end of `idx_flowstate_timed`'s numbers: `< ''` leaves out text, which
    /// SQLite sorts after every number).
    pub const LONGEST: &str =
        "SELECT CAST(max(execution_time_ms) AS REAL) FROM workflow_state WHERE execution_time_ms < ''";
    /// The longest execution time of pipeline `?1` (the end of its numbers in `idx_flowstate_pipeline_timed`).
    pub const LONGEST_OF: &str = "SELECT CAST(max(execution_time_ms) AS REAL) FROM workflow_state \
         WHERE pipeline_id = ?1 AND execution_time_ms < ''";
    /// Every pipeline id, sorted.
    pub const PIPELINES: &str =
        "SELECT DISTINCT substr(pipeline_key, 2) FROM flowstate_counts WHERE pipeline_key <> '' ORDER BY 1";
    /// Running and paused runs.
    pub const LIVE: &str =
        "SELECT COALESCE(sum(runs), 0) FROM flowstate_counts WHERE status_key IN ('=running', '=paused')";
    /// The statuses the table holds.
    pub const STATUSES: &str = "SELECT DISTINCT status_key FROM flowstate_counts";

    /// The failed runs updated at or after `?1`, newest first, at most `?2`: run id, pipeline, last update and
    /// the error message's excerpt as lists read it ([`super::row::ERROR_EXCERPT`]: a signature reads only the
    /// first 500 characters of the first line; a 3 MB message is not copied into the scan), from
    /// `idx_flowstate_status_activity` alone. Read on the connection's own handle
    /// ([`crate::sqlite::raw::query_map`]): thousands of rows through sqlx would cost a hand-over each.
    pub fn failed_window() -> String {
        let u = instant_sql("updated_at");
        format!(
            "SELECT CAST(COALESCE(run_id, '') AS TEXT) AS rid, CAST(COALESCE(pipeline_id, '') AS TEXT) AS pipeline, \
             {u} AS updated, {} AS message FROM workflow_state \
             WHERE status = 'failed' AND {u} >= ?1 ORDER BY {u} DESC, run_id DESC LIMIT ?2",
            *crate::sqlite::row::ERROR_EXCERPT
        )
    }

    /// [`failed_window`] of one pipeline (`?3`, NULL: any) and one version (`?4`, NULL: any), through
    /// `idx_flowstate_status_activity` (the version read from the row): for a file without schema version 6's
    /// partial indexes (opened read-only before its upgrade).
    pub fn failed_window_in() -> String {
        let u = instant_sql("updated_at");
        format!(
            "SELECT CAST(COALESCE(run_id, '') AS TEXT) AS rid, CAST(COALESCE(pipeline_id, '') AS TEXT) AS pipeline, \
             {u} AS updated, {} AS message FROM workflow_state \
             WHERE status = 'failed' AND {u} >= ?1 AND (?3 IS NULL OR pipeline_id = ?3) \
             AND (?4 IS NULL OR pipeline_version = ?4) ORDER BY {u} DESC, run_id DESC LIMIT ?2",
            *crate::sqlite::row::ERROR_EXCERPT
        )
    }

    /// How many failures [`failed_window_in`] would read without its limit (`?2` bound, unused).
    pub fn failed_count_in() -> String {
        format!(
            "SELECT count(*) FROM workflow_state WHERE status = 'failed' AND {} >= ?1 \
             AND (?3 IS NULL OR pipeline_id = ?3) AND (?4 IS NULL OR pipeline_version = ?4) AND ?2 IS NOT NULL",
            instant_sql("updated_at")
        )
    }

    /// The failures of one scope from schema version 6's partial index of the failed runs
    /// ([`crate::sqlite::schema::failure_indexes_6`]): the pipeline's (`?3`) with `version` false, the version's
    /// (`?4`, and the pipeline's when `pipeline`) with `version` true; `?1`, `?2` and the columns as in
    /// [`failed_window`]. One range of the index, newest first, read from the index alone (the message's excerpt
    /// is an indexed expression). A parameter the scope has not is compared with NULL, so all four are always
    /// bound.
    pub fn failed_window_scoped(pipeline: bool, version: bool) -> String {
        failed_scope(
            &format!(
                "CAST(COALESCE(run_id, '') AS TEXT) AS rid, CAST(COALESCE(pipeline_id, '') AS TEXT) AS pipeline, \
                 {} AS updated, {} AS message",
                instant_sql("updated_at"),
                *crate::sqlite::row::ERROR_EXCERPT
            ),
            pipeline,
            version,
            true,
        )
    }

    /// How many failures [`failed_window_scoped`] would read without its limit (`?2` bound, unused).
    pub fn failed_count_scoped(pipeline: bool, version: bool) -> String {
        failed_scope("count(*)", pipeline, version, false)
    }

    fn failed_scope(columns: &str, pipeline: bool, version: bool, ordered: bool) -> String {
        use crate::sqlite::schema::{FAILED_PIPELINE_INDEX, FAILED_VERSION_INDEX};
        let u = instant_sql("updated_at");
        let index = if version {
            FAILED_VERSION_INDEX
        } else {
            FAILED_PIPELINE_INDEX
        };
        let pipeline = if pipeline {
            "pipeline_id = ?3"
        } else {
            "?3 IS NULL"
        };
        let version = if version {
            "pipeline_version = ?4"
        } else {
            "?4 IS NULL"
        };
        let tail = if ordered {
            format!("ORDER BY {u} DESC, run_id DESC LIMIT ?2")
        } else {
            "AND ?2 IS NOT NULL".to_string()
        };
        format!(
            "SELECT {columns} FROM workflow_state INDEXED BY {index} \
             WHERE status = 'failed' AND {pipeline} AND {version} AND {u} >= ?1 {tail}"
        )
    }

    /// Runs created in `[?1, ?2)` (a range of `idx_flowstate_created`).
    pub fn created_between() -> String {
        format!(
            "SELECT count(*) FROM workflow_state WHERE {c} >= ?1 AND {c} < ?2",
            c = instant_sql("created_at")
        )
    }

    /// Running or paused runs updated at or after `?1`, and those whose last update cannot be read (two ranges of
    /// `idx_flowstate_status_activity`).
    pub fn live_active_and_unknown() -> String {
        let u = instant_sql("updated_at");
        format!(
            "SELECT (SELECT count(*) FROM workflow_state WHERE status IN ('running', 'paused') AND {u} >= ?1), \
             (SELECT count(*) FROM workflow_state WHERE status IN ('running', 'paused') AND {u} = {UNKNOWN_INSTANT})"
        )
    }

    /// Runs per pipeline and status key updated in the hours `{op} ?1`, of status key `?2` when `one_status`.
    pub fn updated_hours(op: &str, one_status: bool) -> String {
        format!(
            "SELECT pipeline_key, status_key, sum(runs) FROM flowstate_updated_hourly WHERE hour {op} ?{}\
             GROUP BY pipeline_key, status_key",
            if one_status {
                "1 AND status_key = ?2 "
            } else {
                "1 "
            }
        )
    }

    /// Runs per version and status key of pipeline key `?1` in the hours `{op} ?2`, with the newest such hour.
    pub fn version_hours(op: &str) -> String {
        format!(
            "SELECT version_key, status_key, sum(runs), max(hour) FROM flowstate_version_hourly \
             WHERE pipeline_key = ?1 AND hour {op} ?2 GROUP BY version_key, status_key"
        )
    }

    /// Runs per version and status key of pipeline `?` updated in `[?, ?)` (bound after the statuses), among
    /// `statuses` stored statuses (or the NULL status when 0), with their newest update: ranges of
    /// `idx_flowstate_status_activity` (the pipeline compared in the index, the version read from the row).
    pub fn versions_between(statuses: usize) -> String {
        let u = instant_sql("updated_at");
        let filter = if statuses == 0 {
            "status IS NULL".to_string()
        } else {
            format!("status IN ({})", vec!["?"; statuses].join(", "))
        };
        format!(
            "SELECT {}, {}, count(*), max({u}) FROM workflow_state WHERE {filter} AND {u} >= ? AND {u} < ? \
             AND +pipeline_id = ? GROUP BY 1, 2",
            super::key_sql("pipeline_version"),
            super::key_sql("status")
        )
    }

    /// The newest last update in `[?1, ?2)` of a run of pipeline `?3` and version `?4` (NULL: none): walks
    /// `idx_flowstate_idle` back from `?2` to the first such run (at most the runs of one hour).
    pub fn newest_of_version() -> String {
        let u = instant_sql("updated_at");
        format!(
            "SELECT {u} FROM workflow_state WHERE {u} >= ?1 AND {u} < ?2 AND +pipeline_id = ?3 \
             AND +pipeline_version IS ?4 ORDER BY {u} DESC LIMIT 1"
        )
    }

    /// Runs per pipeline and status key updated in `[?, ?)`, among `statuses` stored statuses (`?` each, bound
    /// first) or, with `statuses == 0`, among runs with a NULL status: ranges of
    /// `idx_flowstate_status_activity`, read from the index alone.
    pub fn updated_between(statuses: usize) -> String {
        let u = instant_sql("updated_at");
        let filter = if statuses == 0 {
            "status IS NULL".to_string()
        } else {
            format!("status IN ({})", vec!["?"; statuses].join(", "))
        };
        format!(
            "SELECT {}, {}, count(*) FROM workflow_state WHERE {filter} AND {u} >= ? AND {u} < ? GROUP BY 1, 2",
            super::key_sql("pipeline_id"),
            super::key_sql("status")
        )
    }
}

/// Runs created at or after `since_us`: whole hours from `flowstate_created_hourly`, and the hour `since_us` falls
/// in from the creation-instant index, counting whichever part of that hour is shorter (at most half an hour of
/// runs).
pub(crate) async fn created_since(conn: &mut SqliteConnection, since_us: i64) -> sqlx::Result<i64> {
    let h0 = hour_of(since_us);
    let start = h0 * HOUR_US;
    let whole: i64 = sqlx::query_scalar(sql::CREATED_AFTER_HOUR)
        .bind(h0)
        .fetch_one(&mut *conn)
        .await?;
    let first: i64 = sqlx::query_scalar(sql::CREATED_IN_HOUR)
        .bind(h0)
        .fetch_one(&mut *conn)
        .await?;
    if since_us == start {
        return Ok(whole + first);
    }
    let (from, to) = if since_us - start <= HOUR_US / 2 {
        (start, since_us)
    } else {
        (since_us, start + HOUR_US)
    };
    let part: i64 = sqlx::query_scalar(&sql::created_between())
        .bind(from)
        .bind(to)
        .fetch_one(&mut *conn)
        .await?;
    Ok(if from == start {
        whole + first - part
    } else {
        whole + part
    })
}

/// Runs last updated at or after `since_us`, per (pipeline key, status key); with `only_status`, only that
/// stored status. Whole hours come from `flowstate_updated_hourly`, the hour `since_us` falls in from
/// `idx_flowstate_status_activity` (whichever part of it is shorter).
pub(crate) async fn updated_since(
    conn: &mut SqliteConnection,
    since_us: i64,
    only_status: Option<&str>,
) -> sqlx::Result<BTreeMap<(String, String), i64>> {
    let h0 = hour_of(since_us);
    let start = h0 * HOUR_US;
    let mut out: BTreeMap<(String, String), i64> = BTreeMap::new();
    let add = |rows: Vec<(String, String, i64)>, sign: i64, out: &mut BTreeMap<(String, String), i64>| {
        for (pk, sk, n) in rows {
            *out.entry((pk, sk)).or_insert(0) += sign * n;
        }
    };
    // The first hour is read whole from the counters when the window starts with it, or when the part of it
    // before the window is the shorter one (then subtracted below).
    let before_part = since_us != start && since_us - start <= HOUR_US / 2;
    let op = if since_us == start || before_part {
        ">="
    } else {
        ">"
    };
    let hours_sql = sql::updated_hours(op, only_status.is_some());
    let mut q = sqlx::query_as::<_, (String, String, i64)>(&hours_sql).bind(h0);
    if let Some(status) = only_status {
        q = q.bind(encode_key(status));
    }
    let rows = q.fetch_all(&mut *conn).await?;
    add(rows, 1, &mut out);
    if since_us == start {
        return Ok(out);
    }
    let (from, to, sign) = if before_part {
        (start, since_us, -1)
    } else {
        (since_us, start + HOUR_US, 1)
    };
    // The statuses to look up in the index: the one asked for, or every status the table holds.
    let statuses: Vec<Option<String>> = match only_status {
        Some(s) => vec![Some(s.to_string())],
        None => sqlx::query_scalar::<_, String>(sql::STATUSES)
            .fetch_all(&mut *conn)
            .await?
            .iter()
            .map(|k| decode_key(k))
            .collect(),
    };
    let named: Vec<&String> = statuses.iter().flatten().collect();
    let mut lookups: Vec<Vec<&String>> = Vec::new();
    if !named.is_empty() {
        lookups.push(named);
    }
    if statuses.iter().any(Option::is_none) {
        lookups.push(Vec::new());
    }
    for names in lookups {
        let text = sql::updated_between(names.len());
        let mut q = sqlx::query_as::<_, (String, String, i64)>(&text);
        for name in &names {
            q = q.bind(name.as_str());
        }
        let rows = q.bind(from).bind(to).fetch_all(&mut *conn).await?;
        add(rows, sign, &mut out);
    }
    out.retain(|_, n| *n != 0);
    Ok(out)
}

/// Runs of pipeline `pipeline` last updated at or after `since_us`, per version key and status key, with the newest
/// last update of each: whole hours from `flowstate_version_hourly`, and the hour `since_us` falls in from
/// `idx_flowstate_status_activity`, counting whichever part of that hour is shorter (as [`updated_since`]); each
/// version's newest update is then found in its newest hour (one backward walk of `idx_flowstate_idle`).
pub(crate) async fn versions_since(
    conn: &mut SqliteConnection,
    pipeline: &str,
    since_us: i64,
) -> sqlx::Result<Vec<crate::insights::VersionCount>> {
    let h0 = hour_of(since_us);
    let start = h0 * HOUR_US;
    let before_part = since_us != start && since_us - start <= HOUR_US / 2;
    let op = if since_us == start || before_part {
        ">="
    } else {
        ">"
    };
    // Per (version key, status key): runs, and per version key: the newest hour and the newest instant known.
    let mut counts: BTreeMap<(String, String), i64> = BTreeMap::new();
    let mut newest_hour: BTreeMap<String, i64> = BTreeMap::new();
    let mut newest_edge: BTreeMap<String, i64> = BTreeMap::new();
    let rows: Vec<(String, String, i64, i64)> = sqlx::query_as(&sql::version_hours(op))
        .bind(encode_key(pipeline))
        .bind(h0)
        .fetch_all(&mut *conn)
        .await?;
    for (v, st, n, hour) in rows {
        *counts.entry((v.clone(), st)).or_insert(0) += n;
        let e = newest_hour.entry(v).or_insert(hour);
        *e = (*e).max(hour);
    }
    if since_us != start {
        let (from, to, sign) = if before_part {
            (start, since_us, -1)
        } else {
            (since_us, start + HOUR_US, 1)
        };
        let statuses: Vec<Option<String>> = sqlx::query_scalar::<_, String>(sql::STATUSES)
            .fetch_all(&mut *conn)
            .await?
            .iter()
            .map(|k| decode_key(k))
            .collect();
        let named: Vec<&String> = statuses.iter().flatten().collect();
        let mut lookups: Vec<Vec<&String>> = Vec::new();
        if !named.is_empty() {
            lookups.push(named);
        }
        if statuses.iter().any(Option::is_none) {
            lookups.push(Vec::new());
        }
        for names in lookups {
            let text = sql::versions_between(names.len());
            let mut q = sqlx::query_as::<_, (String, String, i64, i64)>(&text);
            for name in &names {
                q = q.bind(name.as_str());
            }
            let rows = q.bind(from).bind(to).bind(pipeline).fetch_all(&mut *conn).await?;
            for (v, st, n, newest) in rows {
                *counts.entry((v.clone(), st)).or_insert(0) += sign * n;
                if sign > 0 {
                    let e = newest_edge.entry(v).or_insert(newest);
                    *e = (*e).max(newest);
                }
            }
        }
    }
    counts.retain(|_, n| *n != 0);
    // The newest update of each version still counted: in its newest whole hour when it has one (later than
    // any edge), else the edge's.
    let mut newest: BTreeMap<String, Option<i64>> = BTreeMap::new();
    let newest_sql = sql::newest_of_version();
    for (v, _) in counts.keys() {
        if newest.contains_key(v) {
            continue;
        }
        let found = match newest_hour.get(v) {
            Some(&hour) => {
                let lo = (hour * HOUR_US).max(since_us);
                sqlx::query_scalar::<_, i64>(&newest_sql)
                    .bind(lo)
                    .bind((hour + 1) * HOUR_US)
                    .bind(pipeline)
                    .bind(decode_key(v))
                    .fetch_optional(&mut *conn)
                    .await?
            }
            None => None,
        };
        newest.insert(v.clone(), found.or_else(|| newest_edge.get(v).copied()));
    }
    Ok(counts
        .into_iter()
        .map(|((v, st), n)| {
            let at = newest.get(&v).copied().flatten();
            (decode_key(&v).unwrap_or_default(), st, n, at)
        })
        .collect())
}

/// One difference between a counter table and a recount of `workflow_state`.
/// Recounts every counter from the table and compares, in the caller's (read) transaction.
pub(crate) async fn check(conn: &mut SqliteConnection) -> sqlx::Result<CounterCheck> {
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM workflow_state")
        .fetch_one(&mut *conn)
        .await?;
    let mut differences = Vec::new();
    for (table, columns, select) in recounts() {
        let names: Vec<&str> = columns.split(", ").collect();
        let keys = COUNTERS
            .iter()
            .find(|c| c.table == table)
            .map_or(2, |c| c.keys.len());
        let text = |cols: &[&str]| {
            cols.iter()
                .map(|c| format!("quote({c})"))
                .collect::<Vec<_>>()
                .join(" || ', ' || ")
        };
        let (key_text, value_text) = (text(&names[..keys]), text(&names[keys..]));
        let as_text = format!("SELECT {key_text}, {value_text} FROM");
        let stored: BTreeMap<String, String> =
            sqlx::query_as::<_, (String, String)>(&format!("{as_text} {table}"))
                .fetch_all(&mut *conn)
                .await?
                .into_iter()
                .collect();
        let recounted: BTreeMap<String, String> =
            sqlx::query_as::<_, (String, String)>(&format!("{as_text} ({select})"))
                .fetch_all(&mut *conn)
                .await?
                .into_iter()
                .collect();
        differences.extend(CounterDifference::between(table, &stored, &recounted));
    }
    Ok(CounterCheck { rows, differences })
}

#[cfg(test)]
mod plans {
    use super::sql;

    /// The query plan's lines.
    async fn plan(conn: &mut sqlx::SqliteConnection, statement: &str) -> Vec<String> {
        let rows: Vec<(i64, i64, i64, String)> = sqlx::query_as(&format!("EXPLAIN QUERY PLAN {statement}"))
            .fetch_all(&mut *conn)
            .await
            .unwrap_or_else(|e| panic!("{e}: {statement}"));
        rows.into_iter().map(|r| r.3).collect()
    }

    /// The statement's bytecode: address, opcode, p1, p2.
    async fn explain(conn: &mut sqlx::SqliteConnection, statement: &str) -> Vec<(i64, String, i64, i64)> {
        use sqlx::Row;
        let rows = sqlx::query(&format!("EXPLAIN {statement}"))
            .fetch_all(&mut *conn)
            .await
            .unwrap_or_else(|e| panic!("{e}: {statement}"));
        rows.iter()
            .map(|r| {
                (
                    r.get::<i64, _>(0),
                    r.get::<String, _>(1),
                    r.get::<i64, _>(2),
                    r.get::<i64, _>(3),
                )
            })
            .collect()
    }

    #[tokio::test]
    async fn the_sql_bucket_is_the_rust_bucket() {
        use sqlx::Connection;
        let mut conn = sqlx::SqliteConnection::connect("sqlite::memory:").await.unwrap();
        let statement = format!("SELECT {}", super::bucket_sql(&super::exec_sql("?1")));
        let mut values: Vec<i64> = (-40..2100).collect();
        for k in 5..63 {
            let p = 1i64 << k;
            values.extend([p - 1, p, p + 1, p + p / 3, p.saturating_add(p - 1)]);
        }
        values.extend([i64::MAX, i64::MIN, i64::MAX - 1]);
        for v in values {
            let got: i64 = sqlx::query_scalar(&statement)
                .bind(v)
                .fetch_one(&mut conn)
                .await
                .unwrap();
            assert_eq!(got, super::bucket_of(v), "bucket of {v}");
        }
        // Fractions round to the millisecond first, as every reader shows them.
        let got: i64 = sqlx::query_scalar(&statement)
            .bind(47.6f64)
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert_eq!(got, super::bucket_of(48));
        let none: Option<i64> = sqlx::query_scalar(&statement)
            .bind(None::<i64>)
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert_eq!(none, None);
    }

    #[tokio::test]
    async fn overview_reads_never_scan_the_runs() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::Store::open(dir.path().join("plan.db")).await.unwrap();
        let mut conn = store.sqlite().unwrap().pool().acquire().await.unwrap();
        // Statements on the counter tables only: stats, activity, percentiles, pipelines, live runs.
        for statement in [
            sql::COUNTS,
            sql::CREATED_AFTER_HOUR,
            sql::CREATED_IN_HOUR,
            sql::ACTIVITY,
            sql::HISTOGRAM,
            sql::PIPELINES,
            sql::LIVE,
            sql::STATUSES,
            &sql::updated_hours(">", false),
            &sql::updated_hours(">=", true),
        ] {
            let lines = plan(&mut conn, statement).await;
            assert!(
                !lines.iter().any(|l| l.contains("workflow_state")),
                "{statement} reads workflow_state: {lines:?}"
            );
            if statement.contains("WHERE hour") {
                assert!(
                    lines.iter().any(|l| l.starts_with("SEARCH")),
                    "{statement} reads a range of hours: {lines:?}"
                );
            }
        }
        // Statements on workflow_state: index ranges (or one step at an index's end) that read no row of the table
        // (a `DeferredSeek` no column is read after is never done).
        let root: i64 =
            sqlx::query_scalar("SELECT rootpage FROM sqlite_master WHERE name = 'workflow_state'")
                .fetch_one(&mut *conn)
                .await
                .unwrap();
        // (statement, the index it reads a range of, whether it may sort what it reads)
        let mut statements: Vec<(String, &str, bool)> = [
            (sql::LONGEST.to_string(), "idx_flowstate_timed"),
            (sql::LONGEST_OF.to_string(), "idx_flowstate_pipeline_timed"),
            (sql::HISTOGRAMS.to_string(), "idx_flowstate_pipeline_timed"),
            (sql::created_between(), "idx_flowstate_created"),
            (sql::live_active_and_unknown(), "idx_flowstate_status_activity"),
            (sql::updated_between(5), "idx_flowstate_status_activity"),
            // (`updated_between(0)`, for NULL statuses, is only run on old files whose status column may be NULL;
            // here the column is NOT NULL, so SQLite knows it finds nothing.)
            (sql::failed_window(), "idx_flowstate_status_activity"),
            // A scope's failures (schema version 6): one range of its partial index, the message's excerpt read
            // from the index; a version across pipelines sorts its failures of the window (one range per version).
            (
                sql::failed_window_scoped(true, false),
                "idx_flowstate_failed_pipeline",
            ),
            (
                sql::failed_window_scoped(true, true),
                "idx_flowstate_failed_version",
            ),
            (
                sql::failed_count_scoped(true, false),
                "idx_flowstate_failed_pipeline",
            ),
            (
                sql::failed_count_scoped(true, true),
                "idx_flowstate_failed_version",
            ),
            (
                sql::failed_count_scoped(false, true),
                "idx_flowstate_failed_version",
            ),
        ]
        .into_iter()
        .map(|(statement, index)| (statement, index, false))
        .collect();
        statements.push((
            sql::failed_window_scoped(false, true),
            "idx_flowstate_failed_version",
            true,
        ));
        for (statement, index, sorts) in statements {
            let lines = plan(&mut conn, &statement).await;
            let reads: Vec<&String> = lines.iter().filter(|l| l.contains("workflow_state")).collect();
            assert!(!reads.is_empty(), "{statement}: {lines:?}");
            for line in reads {
                assert!(
                    line.starts_with("SEARCH workflow_state USING ")
                        && line.split_whitespace().any(|w| w == index),
                    "{statement} does not read a range of {index}: {lines:?}"
                );
            }
            // Rows come in index order (grouping or ranking a bounded window of them sorts that window only).
            if !sorts && !statement.contains(" OVER ") && !statement.contains("GROUP BY") {
                assert!(
                    !lines.iter().any(|l| l.contains("TEMP B-TREE")),
                    "{statement} sorts: {lines:?}"
                );
            }
            let code = explain(&mut conn, &statement).await;
            let table_cursors: Vec<i64> = code
                .iter()
                .filter(|(_, op, _, p2)| op == "OpenRead" && *p2 == root)
                .map(|(_, _, p1, _)| *p1)
                .collect();
            let row_reads: Vec<&(i64, String, i64, i64)> = code
                .iter()
                .filter(|(_, op, p1, _)| {
                    ["Column", "Rowid", "RowData", "SeekRowid", "NotExists"].contains(&op.as_str())
                        && table_cursors.contains(p1)
                })
                .collect();
            assert!(
                row_reads.is_empty(),
                "{statement} reads rows of workflow_state: {row_reads:?}"
            );
        }
        drop(conn);
        store.close().await;
    }
}
