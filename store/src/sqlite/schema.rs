//! The on-disk contract: flujo's `workflow_state` table, the indexes, the schema record, and the migration that
//! brings any file flujo ever wrote to the current schema in one transaction.
//!
//! The table is created exactly as flujo 0.4.35 creates it (same columns, order, types, CHECK), so flujo keeps
//! reading and writing the file. Everything flowstate adds is an index, a table of its own (`flowstate_meta`,
//! `flowstate_audit`, the counters of [`crate::counters`]) or a trigger that keeps those counters, all of which
//! flujo ignores (its SQLite runs the triggers whenever it writes).
//!
//! Schema versions: 1 added the indexes, `flowstate_meta` and `flowstate_audit`; 2 added the counters and their
//! triggers, and replaced `idx_flowstate_status_updated` with `idx_flowstate_status_activity` (the same order,
//! with the pipeline id and the error message, so failure rates and failure groups are read from the index alone);
//! 3 added the five columns of flujo's PostgreSQL layout its SQLite one lacks ([`EXTRA_COLUMNS`]: a run's metadata
//! and what ties a background task to its parent run), so a run copied from PostgreSQL keeps every value, and two
//! partial indexes for the parent-run and background-task filters; 4 added the counters of the Pipelines page (per
//! pipeline and hour or day of last update: runs per status, execution-time and memory histograms; see
//! [`counters::PIPELINE_TABLES`]); 5 keeps the daily histograms in coarse buckets (4 per power of two), adds
//! two counters of every pipeline summed per day, so the Pipelines page's long windows and trends read few rows,
//! and runs per pipeline, hour of last update, version and status ([`counters::VERSION_TABLE`]: the Failures
//! page's table of a pipeline's versions, read from counters instead of every run of the window). A file at 4
//! gets its triggers replaced, their scratch tables recreated and every counter filled again from the rows, in
//! the migration's transaction, as from 3. 6 adds two partial indexes of the failed runs, by pipeline and by
//! version ([`failure_indexes_6`]), so a pipeline's or a version's failure groups read one index range (the
//! PostgreSQL schema 6's `flowstate_failure` indexes do the same there), and replaces the two execution-time
//! indexes by ones that end with the run id (`idx_flowstate_timed`, `idx_flowstate_pipeline_timed`, as on
//! PostgreSQL: the slowest-first order's tie-break read from the index); a file at 5 gets those four indexes,
//! the two old ones dropped, and its new version number.
//!
//! The extra columns come after flujo's fifteen (`ALTER TABLE ADD COLUMN`, which SQLite does without rewriting a
//! row: old rows read the defaults). flujo 0.4.35 names its fifteen columns in every statement, so it keeps working
//! on the file: its `INSERT OR REPLACE` leaves the extra columns at their defaults (NULL, and 0 for
//! `is_background_task`).

use sqlx::{Connection, Row, SqliteConnection};

use super::counters;
use crate::time::instant_sql;
use crate::{Result, StoreError};

pub use crate::schema::{MigrationReport, SchemaKind, SCHEMA_VERSION};

/// Indexes earlier schema versions created and this one drops (their job is done by another index).
const RETIRED_INDEXES: [&str; 3] = [
    "idx_flowstate_status_updated",
    // Schema version 6: replaced by `idx_flowstate_timed` and `idx_flowstate_pipeline_timed`, which add the run
    // id (the slowest-first order's tie-break).
    "idx_flowstate_exec",
    "idx_flowstate_pipeline_exec",
];

/// The table exactly as flujo 0.4.35 creates it.
pub(crate) const CREATE_TABLE: &str = r#"CREATE TABLE workflow_state (
    run_id TEXT PRIMARY KEY,
    pipeline_id TEXT NOT NULL,
    pipeline_name TEXT NOT NULL,
    pipeline_version TEXT NOT NULL,
    current_step_index INTEGER NOT NULL DEFAULT 0,
    pipeline_context TEXT NOT NULL,
    last_step_output TEXT,
    step_history TEXT,
    status TEXT NOT NULL CHECK (status IN ('running', 'paused', 'completed', 'failed', 'cancelled')),
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    total_steps INTEGER DEFAULT 0,
    error_message TEXT,
    execution_time_ms INTEGER,
    memory_usage_mb REAL
)"#;

/// Schema version 4 (issue 15, "cli"): which run ids each audited change deleted, one row per run, written in the
/// same transaction as the delete batch that removed it (a cleanup's, a single run's). `WITHOUT ROWID`: the
/// primary key is the table, so one entry's ids are read in run-id order by keyset (`Store::audit_run_ids`).
pub(crate) const AUDIT_RUNS_TABLE: &str = r#"CREATE TABLE IF NOT EXISTS flowstate_audit_run (
    audit_id INTEGER NOT NULL,
    run_id TEXT NOT NULL,
    PRIMARY KEY (audit_id, run_id)
) WITHOUT ROWID"#;

/// Schema version 4's own step, idempotent (`CREATE TABLE IF NOT EXISTS`): `flowstate_audit_run` where it is
/// missing. flujo never reads or writes it.
fn audit_runs_steps(ins: &Inspection) -> Vec<(String, String)> {
    if ins.audit_runs_exists {
        return Vec::new();
    }
    vec![(
        AUDIT_RUNS_TABLE.to_string(),
        "created table flowstate_audit_run (the run ids each audited change deleted)".into(),
    )]
}

/// Every change made through flowstate (deletions, cleanups): when, who, what, how many.
const AUDIT_TABLE: &str = r#"CREATE TABLE IF NOT EXISTS flowstate_audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    detail TEXT NOT NULL,
    matched INTEGER,
    affected INTEGER NOT NULL
)"#;

/// flujo's columns with the definition used when an older file lacks one, in the order flujo's own migration
/// adds them (the nine original columns first). These are flujo's definitions, so an upgraded file has the same
/// columns, in the same order, as one flujo 0.4.35 upgraded itself.
pub(crate) const COLUMNS: [(&str, &str); 15] = [
    ("run_id", "TEXT"),
    ("pipeline_id", "TEXT"),
    ("pipeline_version", "TEXT"),
    ("current_step_index", "INTEGER DEFAULT 0"),
    ("pipeline_context", "TEXT"),
    ("last_step_output", "TEXT"),
    ("status", "TEXT"),
    ("created_at", "TEXT"),
    ("updated_at", "TEXT"),
    ("total_steps", "INTEGER DEFAULT 0"),
    ("error_message", "TEXT"),
    ("execution_time_ms", "INTEGER"),
    ("memory_usage_mb", "REAL"),
    ("step_history", "TEXT"),
    ("pipeline_name", "TEXT NOT NULL DEFAULT ''"),
];

/// The five columns of flujo's PostgreSQL table its SQLite one lacks, as flowstate adds them (schema version 3), in
/// PostgreSQL's order. `is_background_task` (a BOOLEAN there) is 0 or 1 here. The four text columns (`metadata`
/// is JSONB there, JSON text here) are declared **without a type**: they hold text all the same (flowstate binds
/// text, and a column without a type keeps what it is given), but SQLite's planner estimates a row's width from
/// the declared types, and four more `TEXT` columns made it prefer `idx_workflow_state_status_updated` over the
/// ranges of `idx_flowstate_status_activity` for the overview's count of live runs (a scan of every running and
/// paused run instead of a range; `overview_reads_never_scan_the_runs` caught it). Columns without a type count as
/// narrow as an integer, and every plan stays as it was.
pub(crate) const EXTRA_COLUMNS: [(&str, &str); 5] = [
    ("metadata", ""),
    ("is_background_task", "INTEGER DEFAULT 0"),
    ("parent_run_id", ""),
    ("task_id", ""),
    ("background_error", ""),
];

/// The nine columns of flujo's first backend.
const OLDEST_COLUMNS: [&str; 9] = [
    "run_id",
    "pipeline_id",
    "pipeline_version",
    "current_step_index",
    "pipeline_context",
    "last_step_output",
    "status",
    "created_at",
    "updated_at",
];

/// Every index: name, definition, and the query it serves.
pub(crate) fn indexes() -> Vec<(&'static str, String, &'static str)> {
    let created = instant_sql("created_at");
    let updated = instant_sql("updated_at");
    let mut all = vec![
        // The seed's six, under the seed's names (flujo 0.4.35 creates the first three itself).
        (
            "idx_workflow_state_status",
            "workflow_state(status)".into(),
            "flujo's list_workflows(status=...) and get_failed_workflows",
        ),
        (
            "idx_workflow_state_pipeline_id",
            "workflow_state(pipeline_id)".into(),
            "flujo's list_workflows(pipeline_id=...)",
        ),
        (
            "idx_workflow_state_created_at",
            "workflow_state(created_at)".into(),
            "flujo's ordering of list_workflows and its cleanup",
        ),
        (
            "idx_workflow_state_updated_at",
            "workflow_state(updated_at)".into(),
            "the seed's updated_at lookups",
        ),
        (
            "idx_workflow_state_status_updated",
            "workflow_state(status, updated_at)".into(),
            "the seed's failed-runs query",
        ),
        (
            "idx_workflow_state_pipeline_status",
            "workflow_state(pipeline_id, status)".into(),
            "counts per pipeline and status",
        ),
        // flowstate's own: keyed on the real instant, so ordering and windows are right whatever the spelling.
        (
            "idx_flowstate_created",
            format!("workflow_state({created}, run_id)"),
            "list_workflows unfiltered (newest first, keyset pages) and recent_workflows_24h",
        ),
        (
            "idx_flowstate_status_created",
            format!("workflow_state(status, {created}, run_id)"),
            "list_workflows filtered by status",
        ),
        (
            "idx_flowstate_pipeline_created",
            format!("workflow_state(pipeline_id, {created}, run_id)"),
            "list_workflows filtered by pipeline",
        ),
        (
            "idx_flowstate_status_activity",
            format!("workflow_state(status, {updated}, run_id, pipeline_id, error_message)"),
            "get_failed_workflows (failed + updated_at window), stuck runs and cleanup (status + last activity); \
             failure rates and failures grouped by error signature, read from the index alone",
        ),
        // Schema version 6: with the run id, so the slowest-first order (and its keyset pages, and a run page's
        // neighbours in it) reads runs sharing a time in index order instead of reading each one's row and
        // sorting them (a demo template's time is shared by ~1,200 runs of a 10M bench file: 3.5 ms a page).
        (
            TIMED_INDEX,
            "workflow_state(execution_time_ms, run_id)".into(),
            "the longest execution time (read from the index, not the rows) and lists sorted slowest first",
        ),
        (
            PIPELINE_TIMED_INDEX,
            "workflow_state(pipeline_id, execution_time_ms, run_id)".into(),
            "the longest execution time per pipeline and a pipeline's runs sorted slowest first",
        ),
        // Partial: only background tasks have entries, so a save of any other run never writes to them.
        (
            "idx_flowstate_parent_created",
            format!("workflow_state(parent_run_id, {created}, run_id) WHERE parent_run_id IS NOT NULL"),
            "list_workflows filtered by parent run (the background tasks a run started)",
        ),
        (
            "idx_flowstate_background_created",
            format!("workflow_state({created}, run_id) WHERE is_background_task = 1"),
            "list_workflows of background tasks only",
        ),
    ];
    all.extend(list_indexes_4());
    all.extend(failure_indexes_6());
    all
}

/// Schema version 6's partial indexes of the failed runs (issue 15): a pipeline's, or a version's, failures of a
/// window are one range of one of them, newest first, read from the index alone (the error message's excerpt is
/// an indexed expression, the one lists read: [`super::row::ERROR_EXCERPT`]). Before them a scope read every failure
/// of the window from `idx_flowstate_status_activity` and, for a version, each failure's row (62 ms for a version's
/// 7 days at 10M runs). Only failed runs have entries, so a save of any other run never writes to them. Created on
/// upgrade by the same `CREATE INDEX IF NOT EXISTS` as every missing index.
pub(crate) fn failure_indexes_6() -> Vec<(&'static str, String, &'static str)> {
    let updated = instant_sql("updated_at");
    let excerpt = &*super::row::ERROR_EXCERPT;
    vec![
        (
            FAILED_PIPELINE_INDEX,
            format!("workflow_state(pipeline_id, {updated}, run_id, {excerpt}) WHERE status = 'failed'"),
            "a pipeline's failures of a window grouped by error signature",
        ),
        (
            FAILED_VERSION_INDEX,
            format!(
                "workflow_state(pipeline_version, pipeline_id, {updated}, run_id, {excerpt}) WHERE status = 'failed'"
            ),
            "a version's (and a pipeline's version's) failures of a window grouped by error signature",
        ),
    ]
}

/// The runs by execution time and run id (schema version 6; `idx_flowstate_exec`, without the run id, before).
pub(crate) const TIMED_INDEX: &str = "idx_flowstate_timed";
/// The runs by pipeline, execution time and run id (schema version 6; `idx_flowstate_pipeline_exec` before).
pub(crate) const PIPELINE_TIMED_INDEX: &str = "idx_flowstate_pipeline_timed";
/// The failed runs by pipeline, last update and run id ([`failure_indexes_6`]).
pub(crate) const FAILED_PIPELINE_INDEX: &str = "idx_flowstate_failed_pipeline";
/// The failed runs by version, pipeline, last update and run id ([`failure_indexes_6`]).
pub(crate) const FAILED_VERSION_INDEX: &str = "idx_flowstate_failed_version";

/// Schema version 4's indexes for the runs list's orders and filters (issue 15), created on upgrade by the same
/// `CREATE INDEX IF NOT EXISTS` as every missing index. The slowest-first order reads `idx_flowstate_timed`
/// (schema version 6; before it, `idx_flowstate_exec`, whose runs sharing a time were sorted by run id as they
/// came).
pub(crate) fn list_indexes_4() -> Vec<(&'static str, String, &'static str)> {
    let created = instant_sql("created_at");
    let updated = instant_sql("updated_at");
    vec![
        (
            "idx_flowstate_memory",
            "workflow_state(memory_usage_mb, run_id)".into(),
            "lists sorted by memory (most first, keyset pages) and memory bounds",
        ),
        (
            "idx_flowstate_idle",
            format!("workflow_state({updated}, run_id)"),
            "lists sorted by idle time (oldest last update first, keyset pages)",
        ),
        (
            "idx_flowstate_version_created",
            format!("workflow_state(pipeline_version, {created}, run_id)"),
            "lists filtered by pipeline version (newest first)",
        ),
    ]
}

#[derive(Debug)]
pub(crate) struct Inspection {
    pub kind: SchemaKind,
    columns: Vec<String>,
    missing_indexes: Vec<&'static str>,
    retired_indexes: Vec<&'static str>,
    meta_exists: bool,
    audit_exists: bool,
    /// The counter tables and triggers all exist, the triggers exactly as this build writes them.
    counters_current: bool,
    /// `flowstate_audit_run` exists (schema version 4: the run ids each audited change deleted).
    pub(crate) audit_runs_exists: bool,
}

impl Inspection {
    /// True when both of schema version 6's partial indexes of the failed runs exist ([`failure_indexes_6`]); a
    /// file opened read-only before its upgrade may lack them, and then a scope's failures are read as before.
    pub(crate) fn has_failure_indexes(&self) -> bool {
        [FAILED_PIPELINE_INDEX, FAILED_VERSION_INDEX]
            .iter()
            .all(|name| !self.missing_indexes.contains(name))
    }

    /// True when `workflow_state` has every one of [`EXTRA_COLUMNS`] (schema version 3 and later); a file opened
    /// read-only without them reads them as their defaults.
    pub(crate) fn has_extras(&self) -> bool {
        EXTRA_COLUMNS
            .iter()
            .all(|(name, _)| self.columns.iter().any(|c| c == name))
    }
}

/// Reads what the database holds, without writing anything.
pub(crate) async fn inspect(conn: &mut SqliteConnection) -> Result<Inspection> {
    let objects: Vec<(String, String)> = sqlx::query_as(
        "SELECT name, type FROM sqlite_master WHERE name IN ('workflow_state', 'flowstate_meta', 'flowstate_audit')",
    )
    .fetch_all(&mut *conn)
    .await
    .map_err(StoreError::Database)?;
    let kind_of = |name: &str| objects.iter().find(|(n, _)| n == name).map(|(_, t)| t.clone());
    let meta_exists = match kind_of("flowstate_meta").as_deref() {
        None => false,
        Some("table") => true,
        Some(other) => return Err(unsupported(format!("flowstate_meta is a {other}, not a table"))),
    };
    let audit_exists = kind_of("flowstate_audit").as_deref() == Some("table");
    let existing_indexes: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'workflow_state'",
    )
    .fetch_all(&mut *conn)
    .await
    .map_err(StoreError::Database)?;
    let missing_indexes: Vec<&'static str> = indexes()
        .into_iter()
        .map(|(name, _, _)| name)
        .filter(|name| !existing_indexes.iter().any(|e| e == name))
        .collect();
    let retired_indexes: Vec<&'static str> = RETIRED_INDEXES
        .into_iter()
        .filter(|name| existing_indexes.iter().any(|e| e == name))
        .collect();
    let counter_tables: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'flowstate\\_%' ESCAPE '\\'",
    )
    .fetch_all(&mut *conn)
    .await
    .map_err(StoreError::Database)?;
    let triggers: Vec<(String, Option<String>)> =
        sqlx::query_as("SELECT name, sql FROM sqlite_master WHERE type = 'trigger'")
            .fetch_all(&mut *conn)
            .await
            .map_err(StoreError::Database)?;
    let wanted_triggers = counters::create_triggers();
    let counters_current = counters::TABLES
        .iter()
        .all(|(name, _)| counter_tables.iter().any(|t| t == name))
        && counters::TRIGGERS
            .iter()
            .zip(&wanted_triggers)
            .all(|(name, sql)| {
                triggers
                    .iter()
                    .any(|(n, s)| n == name && s.as_deref() == Some(sql.as_str()))
            });

    let columns: Vec<String> = match kind_of("workflow_state").as_deref() {
        None => Vec::new(),
        Some("table") => sqlx::query("SELECT name FROM pragma_table_info('workflow_state')")
            .fetch_all(&mut *conn)
            .await
            .map_err(StoreError::Database)?
            .iter()
            .map(|r| r.get::<String, _>(0))
            .collect(),
        Some(other) => {
            return Err(unsupported(format!(
                "workflow_state is a {other}, not a table; flowstate cannot use it"
            )))
        }
    };
    let version: Option<i64> = if meta_exists {
        let raw: Option<String> =
            sqlx::query_scalar("SELECT value FROM flowstate_meta WHERE key = 'schema_version'")
                .fetch_optional(&mut *conn)
                .await
                .map_err(StoreError::Database)?;
        match raw {
            None => None,
            Some(v) => Some(v.trim().parse::<i64>().map_err(|_| {
                unsupported(format!("flowstate_meta holds an unreadable schema_version {v:?}"))
            })?),
        }
    } else {
        None
    };

    let kind = if columns.is_empty() {
        SchemaKind::Empty
    } else {
        if !columns.iter().any(|c| c == "run_id") {
            return Err(unsupported(
                "its workflow_state table has no run_id column, so it is not a workflow state table"
                    .to_string(),
            ));
        }
        let missing: Vec<String> = COLUMNS
            .iter()
            .map(|(c, _)| c.to_string())
            .filter(|c| !columns.contains(c))
            .collect();
        let is_oldest = columns.len() == OLDEST_COLUMNS.len()
            && OLDEST_COLUMNS.iter().all(|c| columns.iter().any(|x| x == c));
        match version {
            Some(v) if missing.is_empty() => SchemaKind::Flowstate { version: v },
            _ if is_oldest => SchemaKind::FlujoOldest,
            _ if !missing.is_empty() => SchemaKind::FlujoPartial { missing },
            _ => SchemaKind::Flujo0435,
        }
    };
    if let SchemaKind::Flowstate { version } = kind {
        if version > SCHEMA_VERSION {
            return Err(unsupported(format!(
                "it was written by a newer flowstate (schema version {version}; this build knows {SCHEMA_VERSION}); upgrade flowstate"
            )));
        }
    }
    let audit_runs_exists = counter_tables.iter().any(|t| t == "flowstate_audit_run");
    Ok(Inspection {
        kind,
        columns,
        missing_indexes,
        retired_indexes,
        meta_exists,
        audit_exists,
        counters_current,
        audit_runs_exists,
    })
}

fn unsupported(reason: String) -> StoreError {
    // The path is filled in by the caller, which knows it.
    StoreError::UnsupportedFile {
        path: Default::default(),
        reason,
    }
}

/// The statements that bring an inspected database to the current schema, each with a description.
fn plan(ins: &Inspection) -> Vec<(String, String)> {
    let mut steps: Vec<(String, String)> = Vec::new();
    if ins.kind == SchemaKind::Empty {
        steps.push((
            CREATE_TABLE.to_string(),
            "created table workflow_state (flujo 0.4.35 layout)".into(),
        ));
    } else {
        for (name, definition) in COLUMNS.iter() {
            if !ins.columns.iter().any(|c| c == name) {
                steps.push((
                    format!("ALTER TABLE workflow_state ADD COLUMN {name} {definition}"),
                    format!("added column {name} {definition}"),
                ));
                if *name == "pipeline_name" {
                    // As flujo's own migration does, so its readers find a name; NULL ids (which break flujo's
                    // migration) become '' instead of failing.
                    steps.push((
                        "UPDATE workflow_state SET pipeline_name = COALESCE(pipeline_id, '')".into(),
                        "filled pipeline_name from pipeline_id".into(),
                    ));
                }
            }
        }
    }
    // After flujo's columns (a new table is flujo's exactly, then these), on every kind of file.
    for (name, definition) in EXTRA_COLUMNS.iter() {
        if !ins.columns.iter().any(|c| c == name) {
            let definition = if definition.is_empty() {
                String::new()
            } else {
                format!(" {definition}")
            };
            steps.push((
                format!("ALTER TABLE workflow_state ADD COLUMN {name}{definition}"),
                format!("added column {name}{definition} (flujo's PostgreSQL layout)"),
            ));
        }
    }
    for (name, definition, serves) in indexes() {
        if ins.kind == SchemaKind::Empty || ins.missing_indexes.contains(&name) {
            steps.push((
                format!("CREATE INDEX IF NOT EXISTS {name} ON {definition}"),
                format!("created index {name} (for {serves})"),
            ));
        }
    }
    for name in &ins.retired_indexes {
        steps.push((
            format!("DROP INDEX IF EXISTS {name}"),
            format!("dropped index {name} (replaced by another index)"),
        ));
    }
    if !ins.counters_current {
        steps.extend(pipeline_counters_v4());
        for (name, sql) in counters::TABLES {
            steps.push((
                sql.to_string(),
                format!("created table {name} if missing (overview counters)"),
            ));
        }
        for (name, sql) in counters::TRIGGERS.iter().zip(counters::create_triggers()) {
            steps.push((format!("DROP TRIGGER IF EXISTS {name}"), String::new()));
            steps.push((sql, format!("created trigger {name} (keeps the counters exact)")));
        }
        for sql in counters::refill() {
            steps.push((sql, String::new()));
        }
        steps.push((String::new(), "filled the counters from the rows".into()));
    }
    if !ins.meta_exists {
        steps.push((
            "CREATE TABLE IF NOT EXISTS flowstate_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)".into(),
            "created table flowstate_meta".into(),
        ));
    }
    if !ins.audit_exists {
        steps.push((
            AUDIT_TABLE.to_string(),
            "created table flowstate_audit (the record of changes made through flowstate)".into(),
        ));
    }
    steps.extend(audit_runs_steps(ins));
    let current = matches!(ins.kind, SchemaKind::Flowstate { version } if version == SCHEMA_VERSION);
    if !current {
        steps.push((
            format!(
                "INSERT INTO flowstate_meta (key, value) VALUES ('schema_version', '{SCHEMA_VERSION}') \
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value"
            ),
            format!("recorded schema version {SCHEMA_VERSION}"),
        ));
    }
    steps
}

/// Schema version 4's step (3 -> 4), run before the counters are created and filled again: the two scratch tables
/// of the triggers gain the memory column and the day of the last update, so they are dropped (`flowstate_delta`
/// is empty between statements, and a stashed row is only ever read by the statement that stashed it) and
/// created anew with the counter tables. The new counters ([`counters::PIPELINE_TABLES`]) are created with the
/// others (`IF NOT EXISTS`), the triggers replaced (their SQL changed, so the counters are not current) and every
/// counter filled from the rows. Idempotent.
fn pipeline_counters_v4() -> Vec<(String, String)> {
    vec![
        ("DROP TABLE IF EXISTS flowstate_delta".to_string(), String::new()),
        ("DROP TABLE IF EXISTS flowstate_stash".to_string(), String::new()),
    ]
}

/// Checks that a database can be migrated, without writing. Used on a read-only connection before the file is
/// opened for writing, so a file flowstate cannot use is never touched.
pub(crate) async fn preflight(conn: &mut SqliteConnection) -> Result<Inspection> {
    inspect(conn).await
}

/// True when every query of the store can run on the database as it is (flujo 0.4.35's fifteen columns; the
/// missing indexes only make some queries slower). Read-only stores accept such files without migrating them.
pub(crate) fn is_readable(ins: &Inspection) -> bool {
    matches!(ins.kind, SchemaKind::Flujo0435 | SchemaKind::Flowstate { .. })
}

/// True when the counters and their triggers exist as this build keeps them, so the overview can read them
/// (false for a file opened read-only before it was migrated: the store then counts from the table).
pub(crate) fn has_counters(ins: &Inspection) -> bool {
    ins.counters_current
}

/// True when the database needs no change.
pub(crate) fn is_current(ins: &Inspection) -> bool {
    plan(ins).is_empty()
}

/// Brings the database to the current schema in one `BEGIN IMMEDIATE` transaction. Idempotent: a current
/// database is only read.
pub(crate) async fn migrate(conn: &mut SqliteConnection, busy_ms: u64) -> Result<MigrationReport> {
    let first = inspect(conn).await?;
    if is_current(&first) {
        return Ok(MigrationReport {
            from: first.kind,
            to_version: SCHEMA_VERSION,
            changes: Vec::new(),
            timings: Vec::new(),
        });
    }
    let mut tx = conn
        .begin_with("BEGIN IMMEDIATE")
        .await
        .map_err(|e| super::errors::map_err(e, busy_ms, "starting the migration"))?;
    // Look again under the write lock: another process may have migrated in between.
    let ins = inspect(&mut tx).await?;
    let steps = plan(&ins);
    let mut changes = Vec::with_capacity(steps.len());
    let mut timings = Vec::with_capacity(steps.len());
    for (sql, description) in steps {
        if !sql.is_empty() {
            let started = std::time::Instant::now();
            sqlx::query(&sql)
                .execute(&mut *tx)
                .await
                .map_err(|e| super::errors::map_err(e, busy_ms, "migrating"))?;
            timings.push(crate::schema::timed(&description, &sql, started));
        }
        if !description.is_empty() {
            changes.push(description);
        }
    }
    tx.commit()
        .await
        .map_err(|e| super::errors::map_err(e, busy_ms, "committing the migration"))?;
    if !changes.is_empty() {
        tracing::info!(from = ?ins.kind, changes = changes.len(), "migrated workflow_state to schema {SCHEMA_VERSION}");
    }
    Ok(MigrationReport {
        from: ins.kind,
        to_version: SCHEMA_VERSION,
        changes,
        timings,
    })
}
