//! flowstate's test helpers (a dev-dependency only; never published).
//!
//! - [`pg`]: PostgreSQL for tests. [`pg::fresh_database`] makes an empty database on the run's shared server
//!   (`FLOWSTATE_TEST_PG`, which `./x rust-tests` starts and stops), [`pg::Server`] a dedicated server that a
//!   test may stop, restart or kill.
//! - [`flujo_pg`]: the real flujo 0.6.11 `PostgresBackend`, driven through a long-lived Python process
//!   (`FLOWSTATE_FLUJO_PG_PYTHON`, the python of `.venv-flujo-pg`).
//! - [`skip`]: how a test that cannot run says so.
//!
//! Everything that needs something absent returns [`Error::Unavailable`]; the test then calls [`skip`] and
//! returns, so a plain `cargo test` on a machine without PostgreSQL passes with `SKIPPED ...` lines:
//!
//! ```no_run
//! # async fn t() {
//! let Some(url) = flowstate_testkit::pg::fresh_database_or_skip("my_test").await else { return };
//! // ... connect to `url`
//! # }
//! ```

pub mod flujo_pg;
pub mod pg;

use std::path::PathBuf;

/// What the helpers fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A prerequisite is absent (no `FLOWSTATE_TEST_PG`, no PostgreSQL programs, no flujo venv): skip the test.
    #[error("{0}")]
    Unavailable(String),
    /// Something that should have worked did not (a script failed, the server refused, flujo raised).
    #[error("{0}")]
    Failed(String),
    #[error(transparent)]
    Sql(#[from] sqlx::Error),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl Error {
    /// True for [`Error::Unavailable`]: the test should [`skip`], not fail.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Error::Unavailable(_))
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Prints `SKIPPED <why>` on stderr, past libtest's capture (so it shows in every run's log): a skip is never
/// silent. The test then returns.
pub fn skip(why: impl std::fmt::Display) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "SKIPPED {why}");
}

/// The workspace's root (this crate's parent folder).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}
