//! The counters behind the O(1) overview figures on PostgreSQL, kept exact by triggers on `workflow_state`
//! (row triggers on inserts and updates, statement triggers on deletes and `TRUNCATE`: [`create_triggers`]) whoever
//! writes it (flujo's `INSERT ... ON CONFLICT DO UPDATE` and `DELETE`, flowstate's saves,
//! any client's `UPDATE`, `TRUNCATE`), without a row writers wait for.
//!
//! The same four counters as on SQLite ([`crate::counters`]), read as these relations (views), whose key ends
//! with a `slot`:
//!
//! | relation | key | values |
//! |---|---|---|
//! | `flowstate_counts` | status_key, pipeline_key, slot | runs, timed, time_sum |
//! | `flowstate_created_hourly` | hour, status_key, slot | runs |
//! | `flowstate_updated_hourly` | hour, pipeline_key, status_key, slot | runs |
//! | `flowstate_exec_hist` | pipeline_key, bucket, slot | runs |
//!
//! A counter's value is the sum over its slots: readers `GROUP BY` the key and ignore sums of 0.
//!
//! ## No hot rows: an append-only log of deltas, folded in the background
//! A counter row every writer updates is a lock every writer queues behind until its commit (and its WAL flush)
//! is done; even spread over slots, four counter upserts per save cost PostgreSQL four statements (measured: 100
//! to 150 µs of server CPU per save, three times flujo's own upsert). So a save's trigger only **appends** its
//! deltas to `flowstate_delta` (one `INSERT` of one row per changed row, no index, no row another writer can
//! hold): +1 under a new row's keys, -1 under an old row's. Each view is its `*_base` table (the folded counts)
//! plus the pending deltas added up per key (as `slot` -1).
//!
//! `flowstate_fold()` moves the deltas into the base tables: one statement deletes the visible deltas and adds
//! them up into the base rows, in key order, in the caller's transaction, under an advisory lock tried without
//! waiting (a fold in progress elsewhere means this one is skipped). A delta and its fold are atomic with respect
//! to every reader's snapshot: a reader sees a delta either pending or folded, never both or neither. Writers
//! fold now and then (one appending row in [`FOLD_EVERY`] on average, and any `DELETE` of more than [`FOLD_ROWS`]
//! rows), so the log stays a few hundred rows long whoever writes, flowstate or flujo alone; writers never wait for
//! a fold.
//!
//! An `UPDATE` of a row that keeps every counted value (a progress save within the same hour) calls nothing: the
//! update trigger's `WHEN` skips it. `TRUNCATE` empties the counters and the log.
//!
//! The functions are `SECURITY DEFINER` (owned by the role that migrated), name every object with its schema and
//! run with `search_path = pg_catalog, pg_temp`: a writer's role (flujo's) needs no privilege on flowstate's
//! tables, and cannot make them run an operator or function of its own.
//!
//! Keys: `'=' || value` for a status or pipeline id, `''` for NULL; hours are `floor(epoch / 3600)` (NULL for an
//! infinite timestamp: in no hourly counter); buckets are [`crate::counters::bucket_of`]'s
//! (`flowstate_bucket(int8)`). `time_sum` is an `int8`: execution times are 32-bit, so it cannot overflow before
//! 2^32 runs of 2^31 ms under one key.

use std::collections::BTreeMap;

use sqlx::PgConnection;

pub(crate) use crate::counters::*;

/// Writers fold the log one time in this many counted rows (a delete statement: one in this many statements),
/// on average.
pub const FOLD_EVERY: u32 = 256;
/// A `DELETE` of more rows than this folds the log at once (inserts and updates fold as they go, per row).
pub const FOLD_ROWS: u32 = 1000;
/// The advisory lock a fold holds (tried, never waited for): "flowfold".
pub const FOLD_LOCK: i64 = 0x666c_6f77_666f_6c64;

/// The counters as readers see them (views: folded counts plus pending deltas), in the order folds write them.
pub(crate) const TABLES: [&str; 4] = [
    "flowstate_counts",
    "flowstate_created_hourly",
    "flowstate_updated_hourly",
    "flowstate_exec_hist",
];

/// Schema version 4's counters (the Pipelines page, [`crate::pipelines`]), after [`TABLES`] in fold order: as on
/// SQLite ([`crate::sqlite`]'s `PIPELINE_TABLES`), keyed by the hour or day (`floor(hour / 24)`) of the last
/// update, with `vsum` the sum of the values in a bucket (memory in thousandths of a MB, within `[0, 2^40]`).
/// Each counts only deltas with a day (`dy`): deltas a version-3 trigger appended before the upgrade have none,
/// and the rows they stand for are already in the refill of these counters.
///
/// Schema version 5 (as on SQLite): the daily histograms' buckets are coarse ([`COARSE_SUB_BUCKETS`], 4 per power
/// of two, [`COARSE_B`]; the hourly ones keep 16), and every pipeline's rows are summed per day in two more
/// counters (`flowstate_all_status_daily`, `flowstate_all_exec_daily`), which the trend of all pipelines reads.
pub(crate) const PIPELINE_TABLES: [&str; 7] = [
    "flowstate_pipe_status_daily",
    "flowstate_pipe_exec_hourly",
    "flowstate_pipe_exec_daily",
    "flowstate_pipe_mem_hourly",
    "flowstate_pipe_mem_daily",
    "flowstate_all_status_daily",
    "flowstate_all_exec_daily",
];

/// Schema version 5's counter, after [`PIPELINE_TABLES`] in fold order: runs per (pipeline, hour of the last
/// update, `pipeline_version`, status), for the Failures page's table of a pipeline's versions (as SQLite's
/// `flowstate_version_hourly`). Counts only deltas with a version key (`vk`): deltas a version-4 trigger appended
/// before the upgrade have none, and the rows they stand for are in the refill of this counter.
pub(crate) const VERSION_TABLES: [&str; 1] = ["flowstate_version_hourly"];

/// The coarse bucket ([`crate::counters::coarse_of`]) of a delta's fine execution-time bucket `b`: the bucket itself
/// below 8, else with all but its three highest bits cleared (built-in functions only: the fold runs with an empty
/// `search_path`).
const COARSE_B: &str = "CASE WHEN b < 8 THEN b ELSE (b >> (62 - position('1' IN b::bit(64)::text))) \
     << (62 - position('1' IN b::bit(64)::text)) END";
/// The same of the memory bucket `mb`.
const COARSE_MB: &str = "CASE WHEN mb < 8 THEN mb ELSE (mb >> (62 - position('1' IN mb::bit(64)::text))) \
     << (62 - position('1' IN mb::bit(64)::text)) END";

/// Every counter, in fold order.
pub(crate) fn all_tables() -> impl Iterator<Item = &'static str> {
    TABLES.into_iter().chain(PIPELINE_TABLES).chain(VERSION_TABLES)
}

/// The triggers on `workflow_state`, with their function.
pub(crate) const TRIGGERS: [&str; 4] = [
    "flowstate_counters_ins",
    "flowstate_counters_upd",
    "flowstate_counters_del",
    "flowstate_counters_trunc",
];

/// A counter table: its name, key columns (with the delta column of each), and value columns (with the sum of
/// deltas each holds).
struct Counter {
    table: &'static str,
    keys: &'static [(&'static str, &'static str)],
    values: &'static [(&'static str, &'static str)],
    /// Rows of the delta that count here at all.
    counted: &'static str,
}

const COUNTERS: [Counter; 12] = [
    Counter {
        table: "flowstate_counts",
        keys: &[("status_key", "sk"), ("pipeline_key", "pk")],
        values: &[
            ("runs", "sum(d)"),
            ("timed", "sum(CASE WHEN e IS NULL THEN 0 ELSE d END)"),
            ("time_sum", "COALESCE(sum(e * d), 0)"),
        ],
        counted: "true",
    },
    Counter {
        table: "flowstate_created_hourly",
        keys: &[("hour", "ch"), ("status_key", "sk")],
        values: &[("runs", "sum(d)")],
        counted: "ch IS NOT NULL",
    },
    Counter {
        table: "flowstate_updated_hourly",
        keys: &[("hour", "uh"), ("pipeline_key", "pk"), ("status_key", "sk")],
        values: &[("runs", "sum(d)")],
        counted: "uh IS NOT NULL",
    },
    Counter {
        table: "flowstate_exec_hist",
        keys: &[("pipeline_key", "pk"), ("bucket", "b")],
        values: &[("runs", "sum(d)")],
        counted: "b IS NOT NULL",
    },
    Counter {
        table: "flowstate_pipe_status_daily",
        keys: &[("day", "dy"), ("pipeline_key", "pk"), ("status_key", "sk")],
        values: &[("runs", "sum(d)")],
        counted: "dy IS NOT NULL",
    },
    Counter {
        table: "flowstate_pipe_exec_hourly",
        keys: &[("hour", "uh"), ("pipeline_key", "pk"), ("bucket", "b")],
        values: &[("runs", "sum(d)"), ("vsum", "COALESCE(sum(e * d), 0)")],
        counted: "dy IS NOT NULL AND b IS NOT NULL",
    },
    Counter {
        table: "flowstate_pipe_exec_daily",
        keys: &[("day", "dy"), ("pipeline_key", "pk"), ("bucket", COARSE_B)],
        values: &[("runs", "sum(d)"), ("vsum", "COALESCE(sum(e * d), 0)")],
        counted: "dy IS NOT NULL AND b IS NOT NULL",
    },
    Counter {
        table: "flowstate_pipe_mem_hourly",
        keys: &[("hour", "uh"), ("pipeline_key", "pk"), ("bucket", "mb")],
        values: &[("runs", "sum(d)"), ("vsum", "COALESCE(sum(m * d), 0)")],
        counted: "dy IS NOT NULL AND mb IS NOT NULL",
    },
    Counter {
        table: "flowstate_pipe_mem_daily",
        keys: &[("day", "dy"), ("pipeline_key", "pk"), ("bucket", COARSE_MB)],
        values: &[("runs", "sum(d)"), ("vsum", "COALESCE(sum(m * d), 0)")],
        counted: "dy IS NOT NULL AND mb IS NOT NULL",
    },
    Counter {
        table: "flowstate_all_status_daily",
        keys: &[("day", "dy"), ("status_key", "sk")],
        values: &[("runs", "sum(d)")],
        counted: "dy IS NOT NULL",
    },
    Counter {
        table: "flowstate_all_exec_daily",
        keys: &[("day", "dy"), ("bucket", COARSE_B)],
        values: &[("runs", "sum(d)")],
        counted: "dy IS NOT NULL AND b IS NOT NULL",
    },
    // Schema version 5: [`VERSION_TABLES`].
    Counter {
        table: "flowstate_version_hourly",
        keys: &[
            ("pipeline_key", "pk"),
            ("hour", "uh"),
            ("version_key", "vk"),
            ("status_key", "sk"),
        ],
        values: &[("runs", "sum(d)")],
        counted: "vk IS NOT NULL AND uh IS NOT NULL",
    },
];

/// The folded counts of each counter (`TABLES[i]` + `_base`).
pub(crate) fn base(table: &str) -> String {
    format!("{table}_base")
}

/// Creates the base tables, the log and the views (in schema `s`, quoted). Views are replaced (their definition
/// follows the build); tables are kept.
pub(crate) fn create_tables(s: &str) -> Vec<String> {
    let with =
        "WITH (fillfactor = 70, autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_threshold = 1000)";
    let mut out = vec![
        format!(
            "CREATE TABLE IF NOT EXISTS {s}.flowstate_delta (sk text COLLATE \"C\" NOT NULL, pk text COLLATE \"C\" NOT NULL, \
             ch int8, uh int8, e int8, b int8, d int2 NOT NULL, dy int8, m int8, mb int8) \
             WITH (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 5000, \
             autovacuum_vacuum_insert_scale_factor = 0, autovacuum_vacuum_insert_threshold = 5000)"
        ),
        // Schema version 4: a log created by version 3 gains the day and memory columns (NULL in its deltas).
        format!("ALTER TABLE {s}.flowstate_delta ADD COLUMN IF NOT EXISTS dy int8, ADD COLUMN IF NOT EXISTS m int8, \
             ADD COLUMN IF NOT EXISTS mb int8"),
        // Schema version 5: the version key (NULL in the deltas of earlier triggers).
        format!("ALTER TABLE {s}.flowstate_delta ADD COLUMN IF NOT EXISTS vk text COLLATE \"C\""),
        format!(
            "CREATE TABLE IF NOT EXISTS {s}.flowstate_counts_base (status_key text COLLATE \"C\" NOT NULL, \
             pipeline_key text COLLATE \"C\" NOT NULL, slot int2 NOT NULL, runs int8 NOT NULL, timed int8 NOT NULL, \
             time_sum int8 NOT NULL, PRIMARY KEY (status_key, pipeline_key, slot)) {with}"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {s}.flowstate_created_hourly_base (hour int8 NOT NULL, \
             status_key text COLLATE \"C\" NOT NULL, slot int2 NOT NULL, runs int8 NOT NULL, \
             PRIMARY KEY (hour, status_key, slot)) {with}"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {s}.flowstate_updated_hourly_base (hour int8 NOT NULL, \
             pipeline_key text COLLATE \"C\" NOT NULL, status_key text COLLATE \"C\" NOT NULL, slot int2 NOT NULL, \
             runs int8 NOT NULL, PRIMARY KEY (hour, pipeline_key, status_key, slot)) {with}"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {s}.flowstate_exec_hist_base (pipeline_key text COLLATE \"C\" NOT NULL, \
             bucket int8 NOT NULL, slot int2 NOT NULL, runs int8 NOT NULL, PRIMARY KEY (pipeline_key, bucket, slot)) \
             {with}"
        ),
        format!(
            "CREATE TABLE IF NOT EXISTS {s}.flowstate_pipe_status_daily_base (day int8 NOT NULL, \
             pipeline_key text COLLATE \"C\" NOT NULL, status_key text COLLATE \"C\" NOT NULL, slot int2 NOT NULL, \
             runs int8 NOT NULL, PRIMARY KEY (day, pipeline_key, status_key, slot)) {with}"
        ),
    ];
    out.push(format!(
        "CREATE TABLE IF NOT EXISTS {s}.flowstate_all_status_daily_base (day int8 NOT NULL, \
         status_key text COLLATE \"C\" NOT NULL, slot int2 NOT NULL, runs int8 NOT NULL, \
         PRIMARY KEY (day, status_key, slot)) {with}"
    ));
    out.push(format!(
        "CREATE TABLE IF NOT EXISTS {s}.flowstate_all_exec_daily_base (day int8 NOT NULL, bucket int8 NOT NULL, \
         slot int2 NOT NULL, runs int8 NOT NULL, PRIMARY KEY (day, bucket, slot)) {with}"
    ));
    out.push(format!(
        "CREATE TABLE IF NOT EXISTS {s}.flowstate_version_hourly_base (pipeline_key text COLLATE \"C\" NOT NULL, \
         hour int8 NOT NULL, version_key text COLLATE \"C\" NOT NULL, status_key text COLLATE \"C\" NOT NULL, \
         slot int2 NOT NULL, runs int8 NOT NULL, PRIMARY KEY (pipeline_key, hour, version_key, status_key, slot)) {with}"
    ));
    for (table, period) in [
        ("flowstate_pipe_exec_hourly", "hour"),
        ("flowstate_pipe_exec_daily", "day"),
        ("flowstate_pipe_mem_hourly", "hour"),
        ("flowstate_pipe_mem_daily", "day"),
    ] {
        out.push(format!(
            "CREATE TABLE IF NOT EXISTS {s}.{table}_base ({period} int8 NOT NULL, \
             pipeline_key text COLLATE \"C\" NOT NULL, bucket int8 NOT NULL, slot int2 NOT NULL, runs int8 NOT NULL, \
             vsum int8 NOT NULL, PRIMARY KEY ({period}, pipeline_key, bucket, slot)) {with}"
        ));
    }
    for c in &COUNTERS {
        let keys: Vec<&str> = c.keys.iter().map(|(k, _)| *k).collect();
        let values: Vec<&str> = c.values.iter().map(|(v, _)| *v).collect();
        let dkeys: Vec<String> = c.keys.iter().map(|(k, d)| format!("{d} AS {k}")).collect();
        let dgroup: Vec<&str> = c.keys.iter().map(|(_, d)| *d).collect();
        let sums: Vec<String> = c
            .values
            .iter()
            .map(|(v, e)| format!("({e})::int8 AS {v}"))
            .collect();
        out.push(format!(
            "CREATE OR REPLACE VIEW {s}.{t} AS SELECT {k}, slot, {v} FROM {s}.{b} \
             UNION ALL SELECT {dk}, (-1)::int2 AS slot, {sums} FROM {s}.flowstate_delta WHERE {counted} GROUP BY {dg}",
            t = c.table,
            b = base(c.table),
            k = keys.join(", "),
            v = values.join(", "),
            dk = dkeys.join(", "),
            sums = sums.join(", "),
            counted = c.counted,
            dg = dgroup.join(", "),
        ));
    }
    out
}

/// `flowstate_bucket(int8)` ([`crate::counters::bucket_of`] in SQL) and `flowstate_hour(timestamptz)`.
pub(crate) fn create_functions(s: &str) -> Vec<String> {
    // The highest set bit is found from the 64-bit string of the time: its first '1'.
    let shift = "(60 - position('1' IN ms::bit(64)::text))";
    vec![
        format!(
            "CREATE OR REPLACE FUNCTION {s}.flowstate_bucket(ms int8) RETURNS int8 LANGUAGE sql IMMUTABLE \
             PARALLEL SAFE AS $$ SELECT CASE WHEN ms < 32 THEN greatest(ms, 0) ELSE (ms >> {shift}) << {shift} END $$"
        ),
        format!(
            "CREATE OR REPLACE FUNCTION {s}.flowstate_hour(at timestamptz) RETURNS int8 LANGUAGE sql STABLE \
             PARALLEL SAFE AS $$ SELECT CASE WHEN isfinite(at) THEN floor(extract(epoch FROM at) / 3600)::int8 END $$"
        ),
        format!(
            "CREATE OR REPLACE FUNCTION {s}.flowstate_fold() RETURNS boolean LANGUAGE plpgsql SECURITY DEFINER \
             SET search_path = pg_catalog, pg_temp AS \
             $flowstate$\nBEGIN\nIF NOT pg_try_advisory_xact_lock({FOLD_LOCK}) THEN RETURN false; END IF;\n{};\n\
             RETURN true;\nEND\n$flowstate$",
            fold_statement(s)
        ),
    ]
}

/// One statement: deletes the log's visible deltas and adds them up into the base tables, each in key order.
fn fold_statement(s: &str) -> String {
    let (last, first) = COUNTERS.split_last().expect("counters");
    let mut sql = format!(
        "WITH delta AS MATERIALIZED (DELETE FROM {s}.flowstate_delta RETURNING sk, pk, ch, uh, e, b, d, dy, m, mb, vk)"
    );
    for (i, c) in first.iter().enumerate() {
        sql.push_str(&format!(", w{i} AS ({})", apply(s, c, "delta")));
    }
    sql.push(' ');
    sql.push_str(&apply(s, last, "delta"));
    sql
}

/// The counted keys of a row of `workflow_state` aliased `r`: status key, pipeline key, creation hour, update
/// hour, execution time, bucket (as `sk, pk, ch, uh, e, b`).
///
/// Schema version 4 adds the day of the last update, the memory figure (thousandths of a MB, rounded half away
/// from zero as SQLite's `round`, within `[0, 2^40]`; NULL for NULL and NaN) and its bucket (`dy, m, mb`);
/// version 5 the version key (`vk`: `'=' || pipeline_version`, `''` for NULL).
fn keys_of(s: &str, r: &str) -> String {
    let mem = format!(
        "(CASE WHEN {r}.memory_usage_mb IS NULL OR {r}.memory_usage_mb = 'NaN' THEN NULL \
         ELSE least(greatest(floor({r}.memory_usage_mb::float8 * 1000 + 0.5), 0), {max})::int8 END)",
        max = crate::counters::MEM_UNITS_MAX
    );
    format!(
        "COALESCE('=' || {r}.status, '') AS sk, COALESCE('=' || {r}.pipeline_id, '') AS pk, \
         {s}.flowstate_hour({r}.created_at) AS ch, {s}.flowstate_hour({r}.updated_at) AS uh, \
         {r}.execution_time_ms::int8 AS e, {s}.flowstate_bucket({r}.execution_time_ms::int8) AS b, \
         floor({s}.flowstate_hour({r}.updated_at) / 24.0)::int8 AS dy, {mem} AS m, {s}.flowstate_bucket({mem}) AS mb, \
         COALESCE('=' || {r}.pipeline_version, '') AS vk"
    )
}

/// The statement adding the deltas of `delta` (a FROM item with columns `sk, pk, ch, uh, e, b, d`) to one
/// counter's base table (slot 0), in key order.
fn apply(s: &str, c: &Counter, delta: &str) -> String {
    let keys: Vec<&str> = c.keys.iter().map(|(k, _)| *k).collect();
    let dkeys: Vec<&str> = c.keys.iter().map(|(_, d)| *d).collect();
    let values: Vec<&str> = c.values.iter().map(|(v, _)| *v).collect();
    let sums: Vec<&str> = c.values.iter().map(|(_, e)| *e).collect();
    let nonzero: Vec<String> = sums.iter().map(|e| format!("{e} <> 0")).collect();
    let set: Vec<String> = values
        .iter()
        .map(|v| format!("{v} = c.{v} + excluded.{v}"))
        .collect();
    format!(
        "INSERT INTO {s}.{t} AS c ({k}, slot, {v}) SELECT {dk}, 0, {sums} FROM {delta} \
         WHERE {counted} GROUP BY {dk} HAVING {nonzero} ORDER BY {dk} \
         ON CONFLICT ({k}, slot) DO UPDATE SET {set}",
        t = base(c.table),
        k = keys.join(", "),
        v = values.join(", "),
        dk = dkeys.join(", "),
        sums = sums.join(", "),
        counted = c.counted,
        nonzero = nonzero.join(" OR "),
        set = set.join(", "),
    )
}

/// What an `UPDATE` of a row must change for its counters to change (the `WHEN` of the update trigger, `OLD` and
/// `NEW` the row's versions): its status, pipeline, execution time, creation time, or the hour of its last update
/// (UTC hours: the boundaries of [`crate::counters::hour_of`]). Built-in functions only: a call of a SQL function
/// here (`flowstate_hour`) would be inlined, its body parsed again, for every statement.
const COUNTED_CHANGE: &str = "OLD.status IS DISTINCT FROM NEW.status OR OLD.pipeline_id IS DISTINCT FROM NEW.pipeline_id \
     OR OLD.execution_time_ms IS DISTINCT FROM NEW.execution_time_ms OR OLD.created_at IS DISTINCT FROM NEW.created_at \
     OR date_trunc('hour', OLD.updated_at, 'UTC') IS DISTINCT FROM date_trunc('hour', NEW.updated_at, 'UTC') \
     OR OLD.memory_usage_mb IS DISTINCT FROM NEW.memory_usage_mb \
     OR OLD.pipeline_version IS DISTINCT FROM NEW.pipeline_version";

/// The trigger functions and triggers, in schema `s` (quoted). Replaces what exists.
///
/// Inserts and updates are counted by **row** triggers: an update whose row keeps every counted value (a progress
/// save within the hour, 3 of a run's 5 saves) is skipped by the trigger's `WHEN` without any function call, and
/// the others append one or two rows to the log. Statement triggers were measured dearer for single-row saves,
/// the writes that matter: an `INSERT ... ON CONFLICT DO UPDATE` fires both the insert and the update statement
/// trigger, two PL/pgSQL calls per save whatever it changed (about 600,000 of the server's instructions per save,
/// against about 1,000,000 for flujo's whole upsert). Deletes, which come in bulk (cleanups), keep a statement
/// trigger over the deleted rows, and `TRUNCATE` one that empties the counters. Row triggers fold the log now and
/// then ([`FOLD_EVERY`]: one appending row in that many, on average), so a statement of many rows folds as it goes
/// and the log stays a few hundred rows long.
pub(crate) fn create_triggers(s: &str) -> Vec<String> {
    let rows = |table: &str, d: i32| format!("SELECT {}, {d} FROM {table} AS r", keys_of(s, "r"));
    let row = |r: &str, d: i32| format!("SELECT {}, {d}", keys_of(s, r));
    let maybe_fold = format!("IF random() < 1.0 / {FOLD_EVERY} THEN PERFORM {s}.flowstate_fold(); END IF;\n");
    let append = |source: &str| {
        format!("INSERT INTO {s}.flowstate_delta (sk, pk, ch, uh, e, b, dy, m, mb, vk, d) {source};\n")
    };
    let insert_body = format!("BEGIN\n{}{maybe_fold}RETURN NULL;\nEND", append(&row("NEW", 1)));
    let update_body = format!(
        "BEGIN\n{}{maybe_fold}RETURN NULL;\nEND",
        append(&format!("{} UNION ALL {}", row("OLD", -1), row("NEW", 1)))
    );
    let delete_body = format!(
        "DECLARE\nn int8;\nBEGIN\n{}GET DIAGNOSTICS n = ROW_COUNT;\n\
         IF n > {FOLD_ROWS} OR (n > 0 AND random() < 1.0 / {FOLD_EVERY}) THEN PERFORM {s}.flowstate_fold(); END IF;\n\
         RETURN NULL;\nEND",
        append(&rows("old_rows", -1))
    );
    let function = |name: &str, body: String| {
        format!(
            "CREATE OR REPLACE FUNCTION {s}.{name}() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER \
             SET search_path = pg_catalog, pg_temp AS \
             $flowstate$\n{body}\n$flowstate$"
        )
    };
    let trigger = |name: &str, when: &str| {
        vec![
            format!("DROP TRIGGER IF EXISTS {name} ON {s}.workflow_state"),
            format!("CREATE TRIGGER {name} AFTER {when} EXECUTE FUNCTION {s}.{name}()"),
        ]
    };
    let on = format!("ON {s}.workflow_state");
    let mut out = vec![
        function(TRIGGERS[0], insert_body),
        function(TRIGGERS[1], update_body),
        function(TRIGGERS[2], delete_body),
        function(
            TRIGGERS[3],
            format!(
                "BEGIN\nDELETE FROM {s}.flowstate_delta;\n{}\nRETURN NULL;\nEND",
                all_tables()
                    .map(|t| format!("DELETE FROM {s}.{};", base(t)))
                    .collect::<Vec<_>>()
                    .join("\n")
            ),
        ),
    ];
    out.extend(trigger(TRIGGERS[0], &format!("INSERT {on} FOR EACH ROW")));
    out.extend(trigger(
        TRIGGERS[1],
        &format!("UPDATE {on} FOR EACH ROW WHEN ({COUNTED_CHANGE})"),
    ));
    out.extend(trigger(
        TRIGGERS[2],
        &format!("DELETE {on} REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT"),
    ));
    out.extend(trigger(TRIGGERS[3], &format!("TRUNCATE {on} FOR EACH STATEMENT")));
    out
}

/// What each counter table should hold, recounted from `workflow_state`: `(table, SELECT key..., value...)`, the
/// columns named as the table's, keys first, only keys with runs.
fn recounts(s: &str) -> Vec<(&'static str, String)> {
    let rows = format!("SELECT {} FROM {s}.workflow_state AS r", keys_of(s, "r"));
    COUNTERS
        .iter()
        .map(|c| {
            let keys: Vec<String> = c.keys.iter().map(|(k, d)| format!("{d} AS {k}")).collect();
            let dkeys: Vec<&str> = c.keys.iter().map(|(_, d)| *d).collect();
            let values: Vec<String> = c
                .values
                .iter()
                .map(|(v, e)| format!("{} AS {v}", e.replace('d', "1").replace("sum(1)", "count(*)")))
                .collect();
            (
                c.table,
                format!(
                    "SELECT {}, {} FROM ({rows}) AS x WHERE {} GROUP BY {}",
                    keys.join(", "),
                    values.join(", "),
                    c.counted,
                    dkeys.join(", ")
                ),
            )
        })
        .collect()
}

/// Statements that empty the counters and fill them (slot 0) from the table, in the caller's transaction (which
/// must keep writers out: the migration's and the rebuild's lock on `workflow_state`).
pub(crate) fn refill(s: &str) -> Vec<String> {
    let mut out = vec![
        format!("SELECT pg_advisory_xact_lock({FOLD_LOCK})"),
        format!("DELETE FROM {s}.flowstate_delta"),
    ];
    out.extend(refill_some(s, COUNTERS.iter().zip(recounts(s))));
    out
}

/// Statements that empty schema version 4's counters ([`PIPELINE_TABLES`]) and fill them from the table, in the
/// migration's transaction (which keeps writers out). The log is folded first (by this build's fold, so every
/// pending delta lands in the counters it counts in), so no delta pending from before counts twice.
pub(crate) fn refill_pipelines(s: &str) -> Vec<String> {
    let mut out = vec![
        format!("SELECT pg_advisory_xact_lock({FOLD_LOCK})"),
        format!("SELECT {s}.flowstate_fold()"),
    ];
    let counters = COUNTERS
        .iter()
        .zip(recounts(s))
        .skip(TABLES.len())
        .take(PIPELINE_TABLES.len());
    out.extend(refill_some(s, counters));
    out
}

/// Statements that empty schema version 5's counter ([`VERSION_TABLES`]) and fill it from the table, in the
/// migration's transaction, after a fold (as [`refill_pipelines`]).
pub(crate) fn refill_versions(s: &str) -> Vec<String> {
    let mut out = vec![
        format!("SELECT pg_advisory_xact_lock({FOLD_LOCK})"),
        format!("SELECT {s}.flowstate_fold()"),
    ];
    let counters = COUNTERS
        .iter()
        .zip(recounts(s))
        .skip(TABLES.len() + PIPELINE_TABLES.len());
    out.extend(refill_some(s, counters));
    out
}

/// Empties and refills (slot 0) each of `counters` from its recount, in key order: the rows of one hour or day
/// (the first key of the time counters) end up in adjacent pages. Without the order they came in the recount's
/// hash order, and a day's hourly histogram rows of the Pipelines counters lay on as many pages as rows (10,432
/// rows on 6,313 pages at 10M runs). The old rows stay dead until a vacuum (`DELETE`, not `TRUNCATE`, which
/// would show an empty table to readers whose snapshot is older than the commit): the migration vacuums what it
/// refilled after its commit ([`super::schema::vacuum_refilled`]).
fn refill_some<'a>(
    s: &str,
    counters: impl Iterator<Item = (&'a Counter, (&'static str, String))>,
) -> Vec<String> {
    let mut out = Vec::new();
    for (c, (table, select)) in counters {
        let table = base(table);
        let keys: Vec<&str> = c.keys.iter().map(|(k, _)| *k).collect();
        let values: Vec<&str> = c.values.iter().map(|(v, _)| *v).collect();
        out.push(format!("DELETE FROM {s}.{table}"));
        out.push(format!(
            "INSERT INTO {s}.{table} ({k}, slot, {v}) SELECT {k}, 0, {v} FROM ({select}) AS recount ORDER BY {k}",
            k = keys.join(", "),
            v = values.join(", ")
        ));
    }
    out
}

/// Recounts every counter from the table and compares, in the caller's transaction (one snapshot: repeatable
/// read, or a lock that keeps writers out).
pub(crate) async fn check(conn: &mut PgConnection, s: &str) -> sqlx::Result<CounterCheck> {
    let rows: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {s}.workflow_state"))
        .fetch_one(&mut *conn)
        .await?;
    let mut differences = Vec::new();
    for (c, (table, select)) in COUNTERS.iter().zip(recounts(s)) {
        let text = |cols: &[&str]| {
            cols.iter()
                .map(|c| format!("quote_literal({c})"))
                .collect::<Vec<_>>()
                .join(" || ', ' || ")
        };
        let keys: Vec<&str> = c.keys.iter().map(|(k, _)| *k).collect();
        let values: Vec<&str> = c.values.iter().map(|(v, _)| *v).collect();
        let sums: Vec<String> = values.iter().map(|v| format!("sum({v}) AS {v}")).collect();
        let nonzero: Vec<String> = values.iter().map(|v| format!("sum({v}) <> 0")).collect();
        let stored_sql = format!(
            "SELECT {kt}, {vt} FROM (SELECT {k}, {sums} FROM {s}.{table} GROUP BY {k} HAVING {nz}) AS x",
            kt = text(&keys),
            vt = text(&values),
            k = keys.join(", "),
            sums = sums.join(", "),
            nz = nonzero.join(" OR "),
        );
        let recount_sql = format!(
            "SELECT {kt}, {vt} FROM ({select}) AS x",
            kt = text(&keys),
            vt = text(&values)
        );
        let stored: BTreeMap<String, String> = sqlx::query_as::<_, (String, String)>(&stored_sql)
            .fetch_all(&mut *conn)
            .await?
            .into_iter()
            .collect();
        let recounted: BTreeMap<String, String> = sqlx::query_as::<_, (String, String)>(&recount_sql)
            .fetch_all(&mut *conn)
            .await?
            .into_iter()
            .collect();
        differences.extend(CounterDifference::between(table, &stored, &recounted));
    }
    Ok(CounterCheck { rows, differences })
}

/// The statements that read the counters, for the store's readers (stats here, insights in `insights.rs`).
pub(crate) mod sql {
    /// Runs, timed runs and the sum of execution times per status key (every pipeline), keys with runs only. The
    /// sum as text: it is a `numeric`, exact.
    pub const COUNTS: &str = "SELECT status_key, sum(runs)::int8, sum(timed)::int8, sum(time_sum)::text \
         FROM flowstate_counts GROUP BY status_key HAVING sum(runs) <> 0 OR sum(timed) <> 0 OR sum(time_sum) <> 0";
    /// Runs created in the hours after `$1`.
    pub const CREATED_AFTER_HOUR: &str =
        "SELECT COALESCE(sum(runs), 0)::int8 FROM flowstate_created_hourly WHERE hour > $1";
    /// Runs created in hour `$1`.
    pub const CREATED_IN_HOUR: &str =
        "SELECT COALESCE(sum(runs), 0)::int8 FROM flowstate_created_hourly WHERE hour = $1";
    /// Runs created in `[$1, $2)` (a range of flujo's `idx_workflow_state_created_at`).
    pub const CREATED_BETWEEN: &str =
        "SELECT count(*) FROM workflow_state WHERE created_at >= $1 AND created_at < $2";
}

/// Runs created at or after `since_us` (microseconds since the epoch): whole hours from
/// `flowstate_created_hourly`, and the hour `since_us` falls in from the creation-time index, counting whichever
/// part of that hour is shorter (at most half an hour of runs). Run in one snapshot with the other reads.
pub(crate) async fn created_since(conn: &mut PgConnection, since_us: i64) -> sqlx::Result<i64> {
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
    let at = |us: i64| crate::time::from_micros(us).unwrap_or_default();
    let part: i64 = sqlx::query_scalar(sql::CREATED_BETWEEN)
        .bind(at(from))
        .bind(at(to))
        .fetch_one(&mut *conn)
        .await?;
    Ok(if from == start {
        whole + first - part
    } else {
        whole + part
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fold_writes_every_base_table_in_key_order() {
        let f = fold_statement("\"public\"");
        let at: Vec<usize> = TABLES
            .iter()
            .map(|t| f.find(&format!("\"public\".{}_base AS c", t)).expect(t))
            .collect();
        assert!(at.windows(2).all(|w| w[0] < w[1]), "{f}");
        assert!(f.contains("ORDER BY sk, pk ON CONFLICT"), "{f}");
        assert!(f.starts_with("WITH delta AS MATERIALIZED (DELETE FROM \"public\".flowstate_delta"));
        // Writers only append.
        for t in &create_triggers("s")[..3] {
            assert!(!t.contains("ON CONFLICT"), "{t}");
            assert!(t.contains("INSERT INTO s.flowstate_delta"), "{t}");
        }
    }

    #[test]
    fn recounts_count_rows() {
        let r = recounts("s");
        assert!(r[0].1.contains("count(*) AS runs"), "{}", r[0].1);
        assert!(
            r[0].1.contains("COALESCE(sum(e * 1), 0) AS time_sum"),
            "{}",
            r[0].1
        );
        assert!(
            r[0].1
                .contains("sum(CASE WHEN e IS NULL THEN 0 ELSE 1 END) AS timed"),
            "{}",
            r[0].1
        );
    }
}
