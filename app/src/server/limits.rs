//! How many heavy reads of run values run at once.
//!
//! A run written by another process can hold a 50 MB context. Reading the start of it for the run page costs
//! SQLite a copy of the value; reading it whole (`?full=`, `/raw/...`) costs the process the whole text. Each
//! kind of read takes a permit first, so eight operators opening such a run at once cost a bounded amount of
//! memory, and the other pages and `/healthz` (which take no permit) stay quick meanwhile. A request that waits
//! longer than [`WAIT`] for a permit gets [`AppError::Busy`] (503, "try again").

use std::time::Duration;

use tokio::sync::{Semaphore, SemaphorePermit};

use crate::error::AppError;

/// Run pages read at once (each reads at most `VIEW_HEAD_CHARS` of each value into the process).
pub const VIEWS_AT_ONCE: usize = 4;
/// Whole values read at once (`?full=` up to `FULL_SHOWN_BYTES`, `/raw/...` of any size).
pub const WHOLE_VALUES_AT_ONCE: usize = 2;
/// The longest a request waits for a permit.
pub const WAIT: Duration = Duration::from_secs(10);

static VIEWS: Semaphore = Semaphore::const_new(VIEWS_AT_ONCE);
static WHOLE_VALUES: Semaphore = Semaphore::const_new(WHOLE_VALUES_AT_ONCE);

/// A permit to read a run for its page.
///
/// # Errors
/// [`AppError::Busy`] after [`WAIT`].
pub async fn view() -> Result<SemaphorePermit<'static>, AppError> {
    acquire(&VIEWS).await
}

/// A permit to read one value of a run whole.
///
/// # Errors
/// [`AppError::Busy`] after [`WAIT`].
pub async fn whole_value() -> Result<SemaphorePermit<'static>, AppError> {
    acquire(&WHOLE_VALUES).await
}

async fn acquire(permits: &'static Semaphore) -> Result<SemaphorePermit<'static>, AppError> {
    match tokio::time::timeout(WAIT, permits.acquire()).await {
        Ok(Ok(permit)) => Ok(permit),
        _ => Err(AppError::Busy),
    }
}
