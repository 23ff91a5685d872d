//! The CLI's error: a message and whether the user or the world was at fault.

use std::fmt;

use flowstate_store::StoreError;

/// Why a command failed; decides the exit code.
#[derive(Debug)]
pub enum CliError {
    /// The arguments were wrong (exit 2), including values the store rejected as invalid input.
    Usage(String),
    /// Anything else: the file, the database, an unknown run (exit 1).
    Runtime(String),
}

impl CliError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Usage(_) => 2,
            CliError::Runtime(_) => 1,
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::Usage(m) | CliError::Runtime(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for CliError {}

/// Every value the CLI hands the store comes from its arguments, so the store's "invalid input" is a usage error;
/// everything else (not found, busy, the file, the database) is a runtime error.
impl From<StoreError> for CliError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::InvalidInput { .. } => CliError::Usage(err.to_string()),
            other => CliError::Runtime(other.to_string()),
        }
    }
}
