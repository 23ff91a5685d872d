//! What a database held before flowstate opened it, and what opening it changed: the same report for both
//! backends. Each backend's own tables, indexes and migration are in its module ([`crate::sqlite`]'s schema,
//! [`crate::postgres`]'s schema).

use serde::Serialize;

/// The SQLite schema version this build writes into `flowstate_meta`.
pub const SCHEMA_VERSION: i64 = 6;

/// What a file held before flowstate looked at it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SchemaKind {
    /// No `workflow_state` table (a new or unrelated database).
    Empty,
    /// flujo's first backend: the 9-column table without constraints.
    FlujoOldest,
    /// A `workflow_state` table missing some of flujo 0.4.35's columns.
    FlujoPartial {
        /// The columns that were missing.
        missing: Vec<String>,
    },
    /// flujo 0.4.35's table, never opened by flowstate.
    Flujo0435,
    /// flujo's PostgreSQL table (its `PostgresBackend`), never opened by flowstate.
    FlujoPostgres,
    /// Already migrated by flowstate, at this schema version.
    Flowstate {
        /// The recorded schema version.
        version: i64,
    },
}

impl SchemaKind {
    /// In words, for messages.
    pub fn describe(&self) -> String {
        match self {
            SchemaKind::Empty => "no workflow_state table".into(),
            SchemaKind::FlujoOldest => "flujo's oldest 9-column table".into(),
            SchemaKind::FlujoPartial { missing } => {
                format!("a workflow_state table without {}", missing.join(", "))
            }
            SchemaKind::Flujo0435 => "flujo 0.4.35's table".into(),
            SchemaKind::FlujoPostgres => "flujo's PostgreSQL table".into(),
            SchemaKind::Flowstate { version } => format!("flowstate schema version {version}"),
        }
    }
}

/// What opening (migrating) a database did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MigrationReport {
    /// What the file held before.
    pub from: SchemaKind,
    /// The schema version it holds now.
    pub to_version: i64,
    /// Each change made, in words; empty when the file was already current.
    pub changes: Vec<String>,
    /// How long each statement of the migration took, in microseconds, with what it did (its change, or the start
    /// of its SQL): where the time of a bulk load's end goes (each index build, the counters' recount).
    pub timings: Vec<(String, u64)>,
}

/// A migration step's entry in [`MigrationReport::timings`] (logged at debug level): its description, or the
/// start of its SQL when it has none, and the microseconds since `started`.
pub(crate) fn timed(description: &str, sql: &str, started: std::time::Instant) -> (String, u64) {
    let micros = started.elapsed().as_micros() as u64;
    let seconds = micros as f64 / 1e6;
    let what = if description.is_empty() {
        sql.split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .chars()
            .take(80)
            .collect()
    } else {
        description.to_string()
    };
    tracing::debug!(step = %what, seconds, "migration step");
    (what, micros)
}

impl MigrationReport {
    /// True when nothing had to change.
    pub fn is_noop(&self) -> bool {
        self.changes.is_empty()
    }
}
