//! flujo's `workflow_state` table on PostgreSQL, what flowstate adds beside it, and the migration.
//!
//! A fresh database gets flujo's table exactly as flujo's `PostgresBackend` creates it (20 columns, their types and
//! defaults, flujo's five indexes), so flujo can start on a database flowstate made. flujo's other tables (`runs`,
//! `steps`, `traces`, `spans`, `system_state`, `flujo_schema_versions`) are never touched.
//!
//! flowstate adds only objects of its own, which flujo ignores: `flowstate_meta` (the schema version),
//! `flowstate_audit`, the counter tables, functions and triggers of [`super::counters`], and indexes named
//! `idx_flowstate_*` for its queries. All of it in **one** transaction, under flowstate's own advisory lock
//! ([`MIGRATION_LOCK`], never flujo's `0xF1F0C0DE`), so processes opening a database together migrate it once;
//! the others find it current. `workflow_state` is locked against writes (`SHARE ROW EXCLUSIVE`) for the rest of
//! that transaction when the counters are (re)created, so filling them from the rows is exact. A migration that
//! fails changes nothing (DDL is transactional).
//!
//! Schema versions (PostgreSQL's own numbering, in `flowstate_meta`): 1 is the first; 2 counts inserts and updates
//! with row triggers (an update that changes no counted value calls nothing) instead of statement triggers. A
//! database at 1 is upgraded in place: its counters are exact, so only the trigger functions and triggers are
//! replaced (under the table's lock, in the migration's transaction), without recounting the rows.
//!
//! Version 3 makes saves cheaper ([`upgrade_indexes_to_3`], and the row triggers of [`super::counters`]): the index
//! on execution times holds only runs that have one (`idx_flowstate_pipeline_timed`, partial; it replaces
//! `idx_flowstate_pipeline_exec`), `idx_flowstate_created` is dropped (lists without a filter read flujo's own
//! `idx_workflow_state_created_at` with an incremental sort: the planner already preferred it, the smaller index,
//! at 10M runs). Its counters and triggers are version 2's. A database at 2 is upgraded in place by
//! [`upgrade_indexes_to_3`] alone; one at 1 gets version 2's triggers too, its counts kept.
//!
//! Version 5 adds the counter of runs per pipeline, hour, version and status (the Failures page's versions):
//! [`pipeline_and_version_counters`], in place from 4, filled from the rows.
//!
//! Version 6 keeps each failure's `pipeline_version` in `flowstate_failure`, with an index per scope (one pipeline's
//! failures, one version's): the Failures page of one pipeline or version reads its own failures, not every
//! failure of the window with a row of `workflow_state` each (0.9 s for a version's 7 days at 10M runs). A
//! database at 3 to 5 gets them in place ([`failure_steps`]: column and indexes added, the table filled again from
//! the failed rows).
//!
//! Version 3 also adds `flowstate_failure` ([`super::failures`]: the failed runs, kept by triggers, for the
//! failure groups); a database at 1 or 2 gets it in place, filled from its failed rows (the counters are kept
//! as they are).
//!
//! Version 4 adds the Pipelines page's counters ([`counters::PIPELINE_TABLES`]); version 5 keeps their daily
//! histograms in coarse buckets and adds two counters of every pipeline summed per day. A database at 3 or 4 gets
//! them in place ([`pipeline_and_version_counters`]: created where missing, views and fold replaced, every
//! Pipelines counter filled again from the rows after the log is folded); the overview's counters are kept.

use sqlx::{Connection, PgConnection};

use super::{counters, failures};
use crate::schema::{MigrationReport, SchemaKind};
use crate::{Result, StoreError};

/// The PostgreSQL schema version this build writes into `flowstate_meta`.
pub const PG_SCHEMA_VERSION: i64 = 6;

/// The schema version whose Pipelines counters ([`counters::PIPELINE_TABLES`]) this build keeps (5: coarse daily
/// histograms, every pipeline summed per day).
const PIPELINE_COUNTERS_VERSION: i64 = 5;

/// The schema version whose counters (tables, functions, triggers) this build keeps: a database at this version or
/// later has them current (version 3 changed nothing of them).
const COUNTERS_VERSION: i64 = 2;

/// flowstate's advisory lock key for its migrations: "flowstat" in ASCII.
pub const MIGRATION_LOCK: i64 = 0x666c_6f77_7374_6174;

/// The table exactly as flujo's `PostgresBackend` creates it.
pub(crate) const CREATE_TABLE: &str = "CREATE TABLE IF NOT EXISTS {s}.workflow_state (
    run_id TEXT PRIMARY KEY,
    pipeline_id TEXT NOT NULL,
    pipeline_name TEXT NOT NULL,
    pipeline_version TEXT NOT NULL,
    current_step_index INTEGER NOT NULL,
    pipeline_context JSONB,
    last_step_output JSONB,
    step_history JSONB,
    status TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    total_steps INTEGER DEFAULT 0,
    error_message TEXT,
    execution_time_ms INTEGER,
    memory_usage_mb REAL,
    metadata JSONB,
    is_background_task BOOLEAN DEFAULT FALSE,
    parent_run_id TEXT,
    task_id TEXT,
    background_error TEXT
)";

/// flujo's columns and their types as `format_type` spells them.
pub(crate) const COLUMNS: [(&str, &str); 20] = [
    ("run_id", "text"),
    ("pipeline_id", "text"),
    ("pipeline_name", "text"),
    ("pipeline_version", "text"),
    ("current_step_index", "integer"),
    ("pipeline_context", "jsonb"),
    ("last_step_output", "jsonb"),
    ("step_history", "jsonb"),
    ("status", "text"),
    ("created_at", "timestamp with time zone"),
    ("updated_at", "timestamp with time zone"),
    ("total_steps", "integer"),
    ("error_message", "text"),
    ("execution_time_ms", "integer"),
    ("memory_usage_mb", "real"),
    ("metadata", "jsonb"),
    ("is_background_task", "boolean"),
    ("parent_run_id", "text"),
    ("task_id", "text"),
    ("background_error", "text"),
];

/// flujo's indexes on the table (created with it on a fresh database).
pub(crate) const FLUJO_INDEXES: [(&str, &str); 5] = [
    ("idx_workflow_state_status", "(status)"),
    ("idx_workflow_state_pipeline_id", "(pipeline_id)"),
    ("idx_workflow_state_parent_run_id", "(parent_run_id)"),
    ("idx_workflow_state_created_at", "(created_at)"),
    ("idx_runs_context_gin", "USING GIN (pipeline_context)"),
];

/// flowstate's indexes: name, definition, the queries it serves. Few: every index costs each save (flujo's
/// upserts change `updated_at` and the context, so they are never HOT updates). Lists without a filter read
/// flujo's `idx_workflow_state_created_at` (the instant only) with an incremental sort of the runs sharing an
/// instant (schema version 3; see [`upgrade_indexes_to_3`]). A database already at this schema version gets a
/// missing index from the next migration ([`inspect`] lists it missing).
pub(crate) const INDEXES: [(&str, &str, &str); 5] = [
    (
        "idx_flowstate_status_created",
        "(status, created_at, run_id COLLATE \"C\")",
        "lists filtered by status (newest first, keyset pages)",
    ),
    (
        "idx_flowstate_pipeline_created",
        "(pipeline_id, created_at, run_id COLLATE \"C\")",
        "lists filtered by pipeline",
    ),
    (
        "idx_flowstate_status_activity",
        "(status, updated_at, run_id COLLATE \"C\") INCLUDE (pipeline_id)",
        "failed runs, stuck runs, cleanups, failure rates (status and last activity)",
    ),
    (
        "idx_flowstate_pipeline_timed",
        "(pipeline_id, execution_time_ms) WHERE execution_time_ms IS NOT NULL",
        "the longest execution time per pipeline (and overall: the largest of the pipelines')",
    ),
    (
        "idx_flowstate_run_id",
        "(run_id COLLATE \"C\")",
        "copies in run-id byte order (keyset batches)",
    ),
];

/// Schema version 4's indexes for the runs list's orders and filters (issue 15): name, definition, what it serves.
/// A database at version 3 gets them from the migration as every missing index of [`all_indexes`]
/// (`CREATE INDEX IF NOT EXISTS`). Each costs every save (measured in BENCHMARKS.md).
pub(crate) const LIST_INDEXES_4: [(&str, &str, &str); 4] = [
    (
        "idx_flowstate_timed",
        "(execution_time_ms, run_id COLLATE \"C\") WHERE execution_time_ms IS NOT NULL",
        "lists sorted by execution time (slowest first, keyset pages) and time bounds",
    ),
    (
        "idx_flowstate_memory",
        "(memory_usage_mb, run_id COLLATE \"C\") WHERE memory_usage_mb IS NOT NULL",
        "lists sorted by memory (most first, keyset pages) and memory bounds",
    ),
    (
        "idx_flowstate_idle",
        "(updated_at, run_id COLLATE \"C\")",
        "lists sorted by idle time (oldest last update first, keyset pages)",
    ),
    (
        "idx_flowstate_version_created",
        "(pipeline_version, created_at, run_id COLLATE \"C\")",
        "lists filtered by pipeline version (newest first)",
    ),
];

/// Every index of flowstate's own: [`INDEXES`] and [`LIST_INDEXES_4`].
pub(crate) fn all_indexes() -> impl Iterator<Item = &'static (&'static str, &'static str, &'static str)> {
    INDEXES.iter().chain(LIST_INDEXES_4.iter())
}

/// Indexes of earlier schema versions that version 3 drops, with why.
pub(crate) const OBSOLETE_INDEXES: [(&str, &str); 2] = [
    (
        "idx_flowstate_created",
        "lists without a filter read flujo's idx_workflow_state_created_at",
    ),
    (
        "idx_flowstate_pipeline_exec",
        "replaced by idx_flowstate_pipeline_timed, which holds only runs with an execution time",
    ),
];

/// flujo's index that lists without a filter read (flowstate creates it when a database lacks it).
pub(crate) const FLUJO_CREATED_INDEX: (&str, &str) = ("idx_workflow_state_created_at", "(created_at)");

/// The `flowstate_meta` key present while a bulk load ([`crate::bulk`]) has flujo's indexes dropped: the next
/// migration creates them again (and removes the key).
pub(crate) const BULK_LOAD_KEY: &str = "bulk_load";

/// Every change made through flowstate (deletions, cleanups): when, who, what, how many.
const AUDIT_TABLE: &str = "CREATE TABLE IF NOT EXISTS {s}.flowstate_audit (
    id BIGSERIAL PRIMARY KEY,
    at TIMESTAMPTZ NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    detail JSONB NOT NULL,
    matched BIGINT,
    affected BIGINT NOT NULL
)";

/// Schema version 4 (issue 15, "cli"): which run ids each audited change deleted, one row per run, written in the
/// same statement as the delete batch that removed it. The primary key serves one entry's ids in run-id order.
const AUDIT_RUNS_TABLE: &str = "CREATE TABLE IF NOT EXISTS {s}.flowstate_audit_run (
    audit_id BIGINT NOT NULL,
    run_id TEXT NOT NULL,
    PRIMARY KEY (audit_id, run_id)
)";

/// Schema version 4's own step, idempotent (`CREATE TABLE IF NOT EXISTS`): `flowstate_audit_run` where it is
/// missing. flujo never reads or writes it.
fn audit_runs_steps(ins: &Inspection) -> Vec<(String, String)> {
    if ins.audit_runs_exists {
        return Vec::new();
    }
    vec![(
        AUDIT_RUNS_TABLE.replace("{s}", ins.schema.as_str()),
        "created table flowstate_audit_run (the run ids each audited change deleted)".into(),
    )]
}

/// What a database holds, read without writing.
#[derive(Debug, Clone)]
pub(crate) struct Inspection {
    pub kind: SchemaKind,
    /// The schema holding `workflow_state` (or where it will be created), quoted for SQL.
    pub schema: String,
    missing_indexes: Vec<&'static str>,
    /// Indexes of earlier versions present ([`OBSOLETE_INDEXES`]).
    obsolete_indexes: Vec<&'static str>,
    /// flujo's `idx_workflow_state_created_at` exists.
    flujo_created_index: bool,
    meta_exists: bool,
    audit_exists: bool,
    /// The counter tables and triggers all exist, at this build's version.
    pub counters_current: bool,
    /// The counter tables and triggers of schema version 1 exist: the counters are exact, their triggers are
    /// replaced by this build's (no recount).
    counters_upgradable: bool,
    /// Schema version 4's counters ([`counters::PIPELINE_TABLES`]) exist and are kept by this build's triggers.
    pub pipeline_counters_current: bool,
    /// Schema version 5's counter ([`counters::VERSION_TABLES`]) exists and is kept by this build's triggers.
    pub version_counters_current: bool,
    /// Counter tables of an earlier layout, dropped by the migration.
    legacy_tables: Vec<&'static str>,
    /// A bulk load dropped flujo's indexes and has not finished ([`BULK_LOAD_KEY`]).
    bulk_load: bool,
    /// `flowstate_failure` with its version column, its indexes and its triggers exist (schema version 6): readers
    /// may use it.
    pub failures_current: bool,
    /// `flowstate_audit_run` exists (schema version 4: the run ids each audited change deleted).
    pub audit_runs_exists: bool,
}

impl Inspection {
    /// Nothing to change.
    pub(crate) fn is_current(&self) -> bool {
        matches!(self.kind, SchemaKind::Flowstate { version } if version == PG_SCHEMA_VERSION)
            && self.missing_indexes.is_empty()
            && self.obsolete_indexes.is_empty()
            && self.flujo_created_index
            && self.meta_exists
            && self.audit_exists
            && self.counters_current
            && self.pipeline_counters_current
            && self.version_counters_current
            && self.failures_current
            && self.audit_runs_exists
            && !self.bulk_load
    }

    /// Every query of the store can run on it (flujo's table exists), whether or not it is migrated.
    pub(crate) fn is_readable(&self) -> bool {
        !matches!(self.kind, SchemaKind::Empty)
    }

    /// The counters exist and are exact (this version's, or an earlier one's, kept by its triggers): readers may
    /// use them.
    pub(crate) fn counters_exact(&self) -> bool {
        self.counters_current || self.counters_upgradable
    }
}

fn unsupported(reason: String) -> StoreError {
    // The URL is filled in by the caller.
    StoreError::UnsupportedFile {
        path: Default::default(),
        reason,
    }
}

/// Reads what the database holds.
pub(crate) async fn inspect(conn: &mut PgConnection) -> Result<Inspection> {
    let found: Option<(String, String, i64)> = sqlx::query_as(
        "SELECT quote_ident(n.nspname), c.relkind::text, c.oid::int8 FROM pg_class c \
         JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = to_regclass('workflow_state')",
    )
    .fetch_optional(&mut *conn)
    .await
    .map_err(StoreError::Database)?;
    let (schema, oid) = match found {
        None => {
            let current: Option<String> = sqlx::query_scalar("SELECT quote_ident(current_schema())")
                .fetch_one(&mut *conn)
                .await
                .map_err(StoreError::Database)?;
            let Some(schema) = current else {
                return Err(unsupported(
                    "no schema of the search_path exists, so there is nowhere to create workflow_state"
                        .into(),
                ));
            };
            (schema, None)
        }
        Some((schema, kind, oid)) => {
            if kind != "r" && kind != "p" {
                return Err(unsupported(format!(
                    "workflow_state is not a table (pg_class.relkind {kind:?}); flowstate cannot use it"
                )));
            }
            (schema, Some(oid))
        }
    };
    let s = schema.as_str();
    let literal = |name: &str| format!("'{}.{name}'", s.replace('\'', "''"));
    // Every relation of the counters, and what each is ('r' table, 'v' view).
    let mut names: Vec<String> = vec![
        "flowstate_meta".into(),
        "flowstate_audit".into(),
        "flowstate_delta".into(),
    ];
    for t in counters::all_tables() {
        names.push(t.to_string());
        names.push(counters::base(t));
    }
    let mut kinds: Vec<Option<String>> = Vec::new();
    for name in &names {
        let kind: Option<String> = sqlx::query_scalar(&format!(
            "SELECT relkind::text FROM pg_class WHERE oid = to_regclass({})",
            literal(name)
        ))
        .fetch_optional(&mut *conn)
        .await
        .map_err(StoreError::Database)?;
        kinds.push(kind);
    }
    let kind_of = |name: &str| {
        names
            .iter()
            .position(|n| n == name)
            .and_then(|i| kinds[i].clone())
    };
    let meta_exists = kind_of("flowstate_meta").is_some();
    let audit_exists = kind_of("flowstate_audit").is_some();
    let tables_exist = kind_of("flowstate_delta").as_deref() == Some("r")
        && counters::TABLES.iter().all(|t| {
            kind_of(t).as_deref() == Some("v") && kind_of(&counters::base(t)).as_deref() == Some("r")
        });
    // Counters kept as tables under the views' names by an earlier build of this version: replaced.
    let legacy_tables: Vec<&'static str> = counters::TABLES
        .into_iter()
        .filter(|t| kind_of(t).as_deref() == Some("r"))
        .collect();

    let Some(oid) = oid else {
        return Ok(Inspection {
            kind: SchemaKind::Empty,
            schema,
            missing_indexes: all_indexes().map(|(n, _, _)| *n).collect(),
            obsolete_indexes: Vec::new(),
            flujo_created_index: false,
            meta_exists,
            audit_exists,
            counters_current: false,
            counters_upgradable: false,
            pipeline_counters_current: false,
            version_counters_current: false,
            legacy_tables,
            bulk_load: false,
            failures_current: false,
            audit_runs_exists: false,
        });
    };

    let columns: Vec<(String, String)> = sqlx::query_as(
        "SELECT attname::text, format_type(atttypid, atttypmod) FROM pg_attribute \
         WHERE attrelid = $1::int8::oid AND attnum > 0 AND NOT attisdropped",
    )
    .bind(oid)
    .fetch_all(&mut *conn)
    .await
    .map_err(StoreError::Database)?;
    if !columns.iter().any(|(c, _)| c == "run_id") {
        return Err(unsupported(
            "its workflow_state table has no run_id column, so it is not a workflow state table".into(),
        ));
    }
    let mut wrong = Vec::new();
    for (name, ty) in COLUMNS {
        match columns.iter().find(|(c, _)| c == name) {
            None => wrong.push(format!("{name} is missing")),
            Some((_, t)) if t != ty => wrong.push(format!("{name} is {t}, not {ty}")),
            Some(_) => {}
        }
    }
    if !wrong.is_empty() {
        return Err(unsupported(format!(
            "its workflow_state table is not flujo's PostgreSQL layout ({}); flowstate cannot use it",
            wrong.join(", ")
        )));
    }

    let indexes: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indrelid = $1::int8::oid",
    )
    .bind(oid)
    .fetch_all(&mut *conn)
    .await
    .map_err(StoreError::Database)?;
    let missing_indexes: Vec<&'static str> = all_indexes()
        .map(|(n, _, _)| *n)
        .filter(|n| !indexes.iter().any(|i| i == n))
        .collect();
    let obsolete_indexes: Vec<&'static str> = OBSOLETE_INDEXES
        .iter()
        .map(|(n, _)| *n)
        .filter(|n| indexes.iter().any(|i| i == n))
        .collect();
    let flujo_created_index = indexes.iter().any(|i| i == FLUJO_CREATED_INDEX.0);
    let triggers: Vec<String> = sqlx::query_scalar(
        "SELECT tgname::text FROM pg_trigger WHERE tgrelid = $1::int8::oid AND NOT tgisinternal AND tgenabled <> 'D'",
    )
    .bind(oid)
    .fetch_all(&mut *conn)
    .await
    .map_err(StoreError::Database)?;
    let triggers_exist = counters::TRIGGERS.iter().all(|t| triggers.iter().any(|x| x == t));

    let bulk_load = if meta_exists {
        sqlx::query_scalar::<_, i64>(&format!(
            "SELECT count(*) FROM {s}.flowstate_meta WHERE key = '{BULK_LOAD_KEY}'"
        ))
        .fetch_one(&mut *conn)
        .await
        .map_err(StoreError::Database)?
            > 0
    } else {
        false
    };
    let version: Option<i64> = if meta_exists {
        let raw: Option<String> = sqlx::query_scalar(&format!(
            "SELECT value FROM {s}.flowstate_meta WHERE key = 'schema_version'"
        ))
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
    if let Some(v) = version.filter(|v| *v > PG_SCHEMA_VERSION) {
        return Err(unsupported(format!(
            "it was written by a newer flowstate (PostgreSQL schema version {v}; this build knows \
             {PG_SCHEMA_VERSION}); upgrade flowstate"
        )));
    }
    let kind = match version {
        Some(version) => SchemaKind::Flowstate { version },
        None => SchemaKind::FlujoPostgres,
    };
    // Version 3 changed no counter: version 2's counters and triggers are this build's.
    let counters_current = tables_exist && triggers_exist && version.is_some_and(|v| v >= COUNTERS_VERSION);
    let counters_upgradable = tables_exist && triggers_exist && version == Some(1);
    let pipeline_counters_current = counters_current
        && version.is_some_and(|v| v >= PIPELINE_COUNTERS_VERSION)
        && counters::PIPELINE_TABLES.iter().all(|t| {
            kind_of(t).as_deref() == Some("v") && kind_of(&counters::base(t)).as_deref() == Some("r")
        });
    let version_counters_current = pipeline_counters_current
        && version.is_some_and(|v| v >= 5)
        && counters::VERSION_TABLES.iter().all(|t| {
            kind_of(t).as_deref() == Some("v") && kind_of(&counters::base(t)).as_deref() == Some("r")
        });
    let failures_current = failures_exist(&mut *conn, s, &triggers).await?;
    let audit_runs_exists = audit_runs_exist(&mut *conn, s).await?;
    Ok(Inspection {
        kind,
        schema,
        missing_indexes,
        obsolete_indexes,
        flujo_created_index,
        meta_exists,
        audit_exists,
        counters_current,
        counters_upgradable,
        pipeline_counters_current,
        version_counters_current,
        legacy_tables,
        bulk_load,
        failures_current,
        audit_runs_exists,
    })
}

/// `flowstate_audit_run` exists in schema `s` (schema version 4).
async fn audit_runs_exist(conn: &mut PgConnection, s: &str) -> Result<bool> {
    let literal = format!("'{}.flowstate_audit_run'", s.replace('\'', "''"));
    sqlx::query_scalar(&format!("SELECT to_regclass({literal}) IS NOT NULL"))
        .fetch_one(&mut *conn)
        .await
        .map_err(StoreError::Database)
}

/// `flowstate_failure` with its `pipeline_version` column and its indexes exist in schema `s`, and its triggers
/// among `triggers` (schema version 6; version 3 to 5's table has neither the column nor the scopes' indexes).
async fn failures_exist(conn: &mut PgConnection, s: &str, triggers: &[String]) -> Result<bool> {
    if !failures::TRIGGERS.iter().all(|t| triggers.iter().any(|x| x == t)) {
        return Ok(false);
    }
    let literal = |name: &str| format!("'{}.{name}'", s.replace('\'', "''"));
    let kinds: Vec<Option<String>> = sqlx::query_scalar(&format!(
        "SELECT (SELECT relkind::text FROM pg_class WHERE oid = to_regclass(n)) FROM unnest(ARRAY[{}, {}, {}, {}]) \
         AS n",
        literal(failures::TABLE),
        literal(failures::INDEX),
        literal(failures::SCOPE_INDEXES[0].0),
        literal(failures::SCOPE_INDEXES[1].0)
    ))
    .fetch_all(&mut *conn)
    .await
    .map_err(StoreError::Database)?;
    let (table, index) = (Some("r".to_string()), Some("i".to_string()));
    if kinds != [table, index.clone(), index.clone(), index] {
        return Ok(false);
    }
    let has_version: bool = sqlx::query_scalar(&format!(
        "SELECT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass({}) \
         AND attname = 'pipeline_version' AND NOT attisdropped)",
        literal(failures::TABLE)
    ))
    .fetch_one(&mut *conn)
    .await
    .map_err(StoreError::Database)?;
    Ok(has_version)
}

/// Schema version 3's step (from 1 or 2, or on a new database), and 6's (from 3 to 5: the version column and the
/// scopes' indexes): `flowstate_failure`, its indexes and triggers, and the table filled from the failed rows,
/// under the migration's lock on `workflow_state`. Idempotent (`IF NOT EXISTS`, functions and triggers replaced,
/// the table emptied before it is filled).
fn failure_steps(ins: &Inspection) -> Vec<(String, String)> {
    if ins.failures_current {
        return Vec::new();
    }
    let s = ins.schema.as_str();
    let mut steps: Vec<(String, String)> = failures::create(s)
        .into_iter()
        .map(|sql| (sql, String::new()))
        .collect();
    steps.extend(failures::refill(s).into_iter().map(|sql| (sql, String::new())));
    steps.push((
        String::new(),
        if matches!(ins.kind, SchemaKind::Flowstate { version } if (3..6).contains(&version)) {
            "added each failure's pipeline version to table flowstate_failure, with an index per pipeline and per \
             version (the failure groups of one pipeline or version), and filled it again from the failed rows"
                .into()
        } else {
            "created table flowstate_failure (the failed runs, kept by triggers, for the failure groups) and filled \
             it from the failed rows"
                .into()
        },
    ));
    steps
}

/// Schema versions 4 and 5's step (from 3 or 4, or from 1 or 2 with the steps before), under the migration's
/// lock on `workflow_state`: the counters of the Pipelines page ([`counters::PIPELINE_TABLES`]) and of runs per
/// pipeline, hour, version and status ([`counters::VERSION_TABLES`]), the log's new columns, the fold and trigger
/// functions that keep them (created or replaced once), then each set that is not current emptied and filled again
/// from the rows (pending deltas folded first by the new fold). The overview's counters are kept as they are (no
/// recount). Idempotent. Nothing when the counters were just created whole (a new database, or counters not
/// current: the full refill counts these too).
///
/// Version 5's Pipelines counters differ from 4's (coarse daily histograms, two counters of every pipeline summed
/// per day), so a database at 4 has **every** Pipelines counter refilled, and the version counter filled.
fn pipeline_and_version_counters(ins: &Inspection) -> Vec<(String, String)> {
    let (pipelines, versions) = (!ins.pipeline_counters_current, !ins.version_counters_current);
    if !(pipelines || versions) || !(ins.counters_current || ins.counters_upgradable) {
        return Vec::new();
    }
    let s = ins.schema.as_str();
    let mut steps: Vec<(String, String)> = counters::create_tables(s)
        .into_iter()
        .chain(counters::create_functions(s))
        .chain(counters::create_triggers(s))
        .map(|sql| (sql, String::new()))
        .collect();
    if pipelines {
        steps.extend(
            counters::refill_pipelines(s)
                .into_iter()
                .map(|sql| (sql, String::new())),
        );
        steps.push((
            String::new(),
            "created the counters of the Pipelines page (per pipeline and hour or day of last update: runs per \
             status, execution-time and memory histograms) and filled them from the rows"
                .into(),
        ));
    }
    if versions {
        steps.extend(
            counters::refill_versions(s)
                .into_iter()
                .map(|sql| (sql, String::new())),
        );
        steps.push((
            String::new(),
            "created the counter of runs per pipeline, hour of last update, version and status (the Failures \
             page's versions) and filled it from the rows"
                .into(),
        ));
    }
    steps
}

/// The statements that bring an inspected database to the current schema, each with a description (empty: not
/// reported).
fn plan(ins: &Inspection) -> Vec<(String, String)> {
    let s = ins.schema.as_str();
    let mut steps: Vec<(String, String)> = Vec::new();
    if ins.kind == SchemaKind::Empty {
        steps.push((
            CREATE_TABLE.replace("{s}", s),
            "created table workflow_state (flujo's PostgreSQL layout)".into(),
        ));
        for (name, def) in FLUJO_INDEXES {
            steps.push((
                format!("CREATE INDEX IF NOT EXISTS {name} ON {s}.workflow_state {def}"),
                format!("created index {name} (flujo's)"),
            ));
        }
    }
    if !ins.counters_current
        || !ins.pipeline_counters_current
        || !ins.version_counters_current
        || !ins.failures_current
        || !ins.missing_indexes.is_empty()
        || !ins.obsolete_indexes.is_empty()
        || ins.bulk_load
    {
        // Writers wait until the migration commits: the counters are filled from rows no one changes meanwhile.
        steps.push((
            format!("LOCK TABLE {s}.workflow_state IN SHARE ROW EXCLUSIVE MODE"),
            String::new(),
        ));
    }
    if !ins.meta_exists {
        steps.push((
            format!(
                "CREATE TABLE IF NOT EXISTS {s}.flowstate_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)"
            ),
            "created table flowstate_meta".into(),
        ));
    }
    if !ins.audit_exists {
        steps.push((
            AUDIT_TABLE.replace("{s}", s),
            "created table flowstate_audit (the record of changes made through flowstate)".into(),
        ));
    }
    steps.extend(upgrade_indexes_to_3(ins));
    for (name, def, serves) in all_indexes() {
        if ins.missing_indexes.contains(name) {
            steps.push((
                format!("CREATE INDEX IF NOT EXISTS {name} ON {s}.workflow_state {def}"),
                format!("created index {name} (for {serves})"),
            ));
        }
    }
    if ins.bulk_load {
        for (name, def) in FLUJO_INDEXES {
            steps.push((
                format!("CREATE INDEX IF NOT EXISTS {name} ON {s}.workflow_state {def}"),
                format!("created index {name} (flujo's, after a bulk load)"),
            ));
        }
        steps.push((
            format!("DELETE FROM {s}.flowstate_meta WHERE key = '{BULK_LOAD_KEY}'"),
            String::new(),
        ));
    }
    if !ins.counters_current {
        for t in &ins.legacy_tables {
            steps.push((format!("DROP TABLE {s}.{t}"), String::new()));
        }
        for sql in counters::create_tables(s) {
            steps.push((sql, String::new()));
        }
        for sql in counters::create_functions(s) {
            steps.push((sql, String::new()));
        }
        for sql in counters::create_triggers(s) {
            steps.push((sql, String::new()));
        }
        if ins.counters_upgradable {
            // Version 1's counters are exact: only their triggers change (the table is locked meanwhile).
            steps.push((
                String::new(),
                "replaced the counters' statement triggers on inserts and updates by row triggers (a save that \
                 changes no counted value calls nothing); the counts are kept"
                    .into(),
            ));
        } else {
            steps.push((
                String::new(),
                "created the counter tables and the triggers that keep them exact (writers append deltas to a \
                 log, folded into the counts now and then: no row any writer waits for)"
                    .into(),
            ));
            for sql in counters::refill(s) {
                steps.push((sql, String::new()));
            }
            steps.push((String::new(), "filled the counters from the rows".into()));
        }
    }
    steps.extend(failure_steps(ins));
    steps.extend(audit_runs_steps(ins));
    steps.extend(pipeline_and_version_counters(ins));
    let current = matches!(ins.kind, SchemaKind::Flowstate { version } if version == PG_SCHEMA_VERSION);
    if !current {
        steps.push((
            format!(
                "INSERT INTO {s}.flowstate_meta (key, value) VALUES ('schema_version', '{PG_SCHEMA_VERSION}') \
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value"
            ),
            format!("recorded schema version {PG_SCHEMA_VERSION}"),
        ));
    }
    steps
}

/// Schema version 3's index changes, idempotent (`DROP INDEX IF EXISTS`, `CREATE INDEX IF NOT EXISTS`): the
/// indexes of [`OBSOLETE_INDEXES`] dropped (each costs every save: 10,000 to 25,000 of the server's instructions,
/// of about 1,400,000), and flujo's `idx_workflow_state_created_at` created where it is missing, since lists
/// without a filter read it now. The partial `idx_flowstate_pipeline_timed` comes with the other missing indexes
/// of [`INDEXES`].
fn upgrade_indexes_to_3(ins: &Inspection) -> Vec<(String, String)> {
    let s = ins.schema.as_str();
    let mut steps: Vec<(String, String)> = OBSOLETE_INDEXES
        .iter()
        .filter(|(name, _)| ins.obsolete_indexes.contains(name))
        .map(|(name, why)| {
            (
                format!("DROP INDEX IF EXISTS {s}.{name}"),
                format!("dropped index {name} ({why})"),
            )
        })
        .collect();
    // A new table and a bulk load's end create flujo's indexes with the others.
    if !ins.flujo_created_index && ins.kind != SchemaKind::Empty && !ins.bulk_load {
        let (name, def) = FLUJO_CREATED_INDEX;
        steps.push((
            format!("CREATE INDEX IF NOT EXISTS {name} ON {s}.workflow_state {def}"),
            format!("created index {name} (flujo's; lists without a filter read it)"),
        ));
    }
    steps
}

/// Brings the database to the current schema in one transaction under [`MIGRATION_LOCK`]. Idempotent: a current
/// database is only read. `lock_timeout_ms` bounds the waits for the advisory lock and for the table's lock.
pub(crate) async fn migrate(conn: &mut PgConnection, lock_timeout_ms: u64) -> Result<MigrationReport> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match migrate_once(conn, lock_timeout_ms).await {
            // Another client (flujo) created the same table at the same moment without our lock: look again.
            Err(StoreError::Database(sqlx::Error::Database(e)))
                if attempt < 4 && matches!(e.code().as_deref(), Some("42P07" | "23505" | "40P01")) =>
            {
                tracing::debug!(error = %e, "the migration raced with another client; trying again");
            }
            other => return other,
        }
    }
}

async fn migrate_once(conn: &mut PgConnection, lock_timeout_ms: u64) -> Result<MigrationReport> {
    let first = inspect(conn).await?;
    if first.is_current() {
        return Ok(MigrationReport {
            from: first.kind,
            to_version: PG_SCHEMA_VERSION,
            changes: Vec::new(),
            timings: Vec::new(),
        });
    }
    let mut tx = conn.begin().await.map_err(StoreError::Database)?;
    for set in [
        format!("SET LOCAL lock_timeout = {lock_timeout_ms}"),
        "SET LOCAL statement_timeout = 0".to_string(),
    ] {
        sqlx::query(&set)
            .execute(&mut *tx)
            .await
            .map_err(StoreError::Database)?;
    }
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(MIGRATION_LOCK)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::Database)?;
    // Look again under the lock: another process may have migrated in between.
    let ins = inspect(&mut tx).await?;
    let steps = plan(&ins);
    let mut changes = Vec::new();
    let mut timings = Vec::new();
    let statements: Vec<String> = steps.iter().map(|(sql, _)| sql.clone()).collect();
    for (sql, description) in steps {
        if !sql.is_empty() {
            let started = std::time::Instant::now();
            sqlx::query(&sql)
                .execute(&mut *tx)
                .await
                .map_err(StoreError::Database)?;
            timings.push(crate::schema::timed(&description, &sql, started));
        }
        if !description.is_empty() {
            changes.push(description);
        }
    }
    tx.commit().await.map_err(StoreError::Database)?;
    vacuum_refilled(conn, &statements).await;
    if !changes.is_empty() {
        tracing::info!(from = ?ins.kind, changes = changes.len(), "migrated workflow_state to PostgreSQL schema {PG_SCHEMA_VERSION}");
    }
    Ok(MigrationReport {
        from: ins.kind,
        to_version: PG_SCHEMA_VERSION,
        changes,
        timings,
    })
}

/// The tables that `statements` empty whole (`DELETE FROM table`, no condition): the refills of counters and of
/// `flowstate_failure`.
pub(crate) fn refilled_tables(statements: &[String]) -> Vec<&str> {
    statements
        .iter()
        .filter_map(|sql| sql.strip_prefix("DELETE FROM "))
        .filter(|table| !table.contains(char::is_whitespace))
        .collect()
}

/// After a commit that refilled tables ([`refilled_tables`] of its statements): `VACUUM (ANALYZE)` of each, so
/// their old rows, all dead, are not read again by every reader until autovacuum comes (neither readers nor
/// writers wait for it). A failure is logged, not returned: the commit is done and the tables are right.
pub(crate) async fn vacuum_refilled(conn: &mut PgConnection, statements: &[String]) {
    for table in refilled_tables(statements) {
        if let Err(error) = sqlx::query(&format!("VACUUM (ANALYZE) {table}"))
            .execute(&mut *conn)
            .await
        {
            tracing::warn!(%error, table, "could not vacuum a refilled table");
        }
    }
}
