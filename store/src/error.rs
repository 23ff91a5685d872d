//! The one error type of the store.

use std::path::PathBuf;

/// Everything that can go wrong in the store.
///
/// The variants separate "your input is wrong" ([`StoreError::InvalidInput`], [`StoreError::NotFound`]) from
/// "the file or the database is the problem", so a caller (CLI, HTTP handler) can pick an exit code or a status
/// without reading strings.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A value given by the caller is not acceptable; `field` names it and `reason` says why.
    #[error("invalid {field}: {reason}")]
    InvalidInput {
        /// The field or argument that was rejected (e.g. `run_id`, `limit`, `cursor`).
        field: &'static str,
        /// Why it was rejected, in words an operator can act on.
        reason: String,
    },
    /// The run asked for does not exist.
    #[error("no run with id {run_id:?}")]
    NotFound {
        /// The id that was looked up.
        run_id: String,
    },
    /// The operation conflicts with the state of the database (e.g. a newer schema, a changed preview).
    #[error("conflict: {0}")]
    Conflict(String),
    /// Another connection held the database lock for longer than the busy timeout.
    #[error("database is busy: another process held the lock for longer than {timeout_ms} ms ({context})")]
    Busy {
        /// The busy timeout that was waited for.
        timeout_ms: u64,
        /// What the store was doing.
        context: String,
    },
    /// The file exists but is not a database flowstate can use; it has been left exactly as it was.
    #[error("{path}: {reason} (the file was left unchanged)")]
    UnsupportedFile {
        /// The file that was rejected.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The file could not be opened or created (missing folder, permissions, read-only file system).
    #[error("cannot open {path}: {reason}")]
    CannotOpen {
        /// The path that was asked for.
        path: PathBuf,
        /// The operating system's or SQLite's reason.
        reason: String,
    },
    /// The disk holding the database is full (or the user's quota is used up). The call changed nothing: SQLite
    /// rolled its statement or transaction back, and the file is as it was.
    #[error("{path}: the disk is full ({context}); nothing was changed: free some space and try again")]
    DiskFull {
        /// The database file.
        path: PathBuf,
        /// What the store was doing.
        context: String,
    },
    /// The database server cannot be reached right now (PostgreSQL down, restarting, or the network): the call
    /// changed nothing it did not report, and may be retried. The store reconnects by itself.
    #[error("the database server is unavailable ({context}): {reason}")]
    Unavailable {
        /// What the store was doing.
        context: String,
        /// The driver's reason.
        reason: String,
    },
    /// Any other database failure. The message is for logs, not for end users.
    #[error("database error: {0}")]
    Database(#[source] sqlx::Error),
}

impl StoreError {
    pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        StoreError::InvalidInput {
            field,
            reason: reason.into(),
        }
    }

    /// True when the caller's input was at fault (invalid input or an unknown run), as opposed to the database.
    pub fn is_user_error(&self) -> bool {
        matches!(
            self,
            StoreError::InvalidInput { .. } | StoreError::NotFound { .. }
        )
    }
}

/// The store's result type.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;
