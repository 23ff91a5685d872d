//! The values pages show, as the browser receives them. Plain serde types: the store (and sqlx) never reach
//! the browser, so server functions turn store values into these.

use serde::{Deserialize, Serialize};

/// How the dashboard was started; shown in the layout (e.g. the read-only banner).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settings {
    /// `--read-only`: every change is refused.
    pub read_only: bool,
    /// `--demo`: the database is a throw-away demo.
    pub demo: bool,
    /// An admin token is configured (`FLOWSTATE_ADMIN_TOKEN`): changes need a login.
    pub admin_token_configured: bool,
}

/// How many runs have one status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusCount {
    /// The stored status name (`running`, ...; an unknown stored value as it is; NULL as `null`).
    pub status: String,
    /// Runs with that status.
    pub count: i64,
}

/// The Overview page's figures, read in one go.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Overview {
    /// Every run in the database.
    pub total: i64,
    /// Runs created in the 24 hours before `read_at`.
    pub recent_24h: i64,
    /// The five known statuses in a fixed order (zero counts included), then any other stored values.
    pub statuses: Vec<StatusCount>,
    /// Mean execution time over the runs that have one; `None` when none has.
    pub average_execution_ms: Option<f64>,
    /// When the figures were read, RFC 3339 in UTC.
    pub read_at: String,
}
