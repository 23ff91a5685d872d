//! How each command opens the database.
//!
//! Reading commands open **read-only**: they never create a file for a mistyped path, never take the write lock
//! on a database live workers write to, and never migrate behind the operator's back (index builds on a large
//! file hold the lock for seconds, long enough to time out flujo's writers). flujo 0.4.35 files are read as they
//! are (its indexes suffice); a file missing columns (flujo's oldest table) is an error that says to run
//! `flowstate migrate`. Writing commands check the same way first, then open for writing (and migrate).
//!
//! Every store the CLI opens has its clock pinned at the moment it was opened, so one command sees one "now":
//! a cleanup's preview and its deletion use the same cutoff, and relative `--since` values agree with the store.

use std::path::Path;
use std::sync::Arc;

use flowstate_store::{FixedClock, Store, StoreError, StoreOptions};

use super::CliError;

fn options(read_only: bool) -> StoreOptions {
    StoreOptions {
        read_only,
        max_connections: 2,
        clock: Arc::new(FixedClock::new(chrono::Utc::now())),
        ..Default::default()
    }
}

/// Opens an existing, current database without writing anything.
pub async fn read_only(path: &Path) -> Result<Store, CliError> {
    Ok(try_read_only(path).await?)
}

/// [`read_only`] with the store's own error, for a caller that handles some of them.
pub async fn try_read_only(path: &Path) -> Result<Store, StoreError> {
    Store::open_with(path, options(true)).await
}

/// Opens an existing, current database for writing (checked read-only first, so nothing is migrated).
pub async fn writable(path: &Path) -> Result<Store, CliError> {
    read_only(path).await?.close().await;
    create_or_migrate(path).await
}

/// Opens for writing, creating the file if it is missing and migrating it if it needs it.
pub async fn create_or_migrate(path: &Path) -> Result<Store, CliError> {
    Ok(Store::open_with(path, options(false)).await?)
}
