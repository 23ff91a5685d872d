//! SQLite's result codes, and how the store maps SQLite's failures to [`StoreError`].

use crate::StoreError;

/// SQLite primary result codes we treat specially.
pub(crate) mod code {
    pub const BUSY: i64 = 5;
    pub const LOCKED: i64 = 6;
    pub const READONLY: i64 = 8;
    pub const CORRUPT: i64 = 11;
    pub const FULL: i64 = 13;
    pub const CANTOPEN: i64 = 14;
    pub const NOTADB: i64 = 26;
    pub const INTERRUPT: i64 = 9;
}

/// Extended SQLite result codes we treat specially.
pub(crate) mod extended {
    /// The folder is not writable, so the -wal, -shm or -journal file cannot be created.
    pub const READONLY_DIRECTORY: i64 = 1544;
    /// The -shm file could not be enlarged: in practice, no space left.
    pub const IOERR_SHMSIZE: i64 = 4874;
}

/// The extended SQLite result code of an sqlx error, if it carries one.
pub(crate) fn sqlite_extended_code(err: &sqlx::Error) -> Option<i64> {
    match err {
        sqlx::Error::Database(db) => db.code().and_then(|c| c.parse::<i64>().ok()),
        _ => None,
    }
}

/// True when SQLite failed for lack of space.
pub(crate) fn is_disk_full(err: &sqlx::Error) -> bool {
    sqlite_code(err) == Some(code::FULL) || sqlite_extended_code(err) == Some(extended::IOERR_SHMSIZE)
}

/// The primary SQLite result code of an sqlx error, if it carries one.
pub(crate) fn sqlite_code(err: &sqlx::Error) -> Option<i64> {
    match err {
        sqlx::Error::Database(db) => db.code().and_then(|c| c.parse::<i64>().ok()).map(|c| c & 0xff),
        _ => None,
    }
}

/// Turns an sqlx error into a [`StoreError`], recognising "busy" so callers never see it as a generic failure.
pub(crate) fn map_err(err: sqlx::Error, busy_timeout_ms: u64, context: &str) -> StoreError {
    match sqlite_code(&err) {
        Some(code::BUSY) | Some(code::LOCKED) => StoreError::Busy {
            timeout_ms: busy_timeout_ms,
            context: context.to_string(),
        },
        _ => match err {
            sqlx::Error::PoolTimedOut => StoreError::Busy {
                timeout_ms: busy_timeout_ms,
                context: format!("{context}: no free connection"),
            },
            other => StoreError::Database(other),
        },
    }
}
