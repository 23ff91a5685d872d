//! The one error type of the dashboard: what a page or a server function tells the operator when something
//! goes wrong, and the HTTP status it stands for.
//!
//! It crosses the wire (server functions return it), so it holds words for operators only: never SQL text,
//! file contents or a backtrace. The real error is logged on the server where it is created
//! (`From<StoreError>`).

use std::fmt;

use leptos::server_fn::codec::JsonEncoding;
use leptos::server_fn::error::{FromServerFnError, ServerFnErrorErr};
use serde::{Deserialize, Serialize};

/// Everything a page can fail with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AppError {
    /// A query parameter or form field is not acceptable (400). `param` names it, `reason` says why.
    BadRequest {
        /// The parameter or field, as the operator typed it in the URL or form.
        param: String,
        /// Why it was rejected, in words the operator can act on.
        reason: String,
    },
    /// The run (or other thing) asked for does not exist (404).
    NotFound {
        /// What was looked for, e.g. `run "run_42"` or `page "/nope"`.
        what: String,
    },
    /// A change was refused: read-only mode, not logged in, a bad CSRF token (403).
    Forbidden {
        /// Why, for the operator.
        reason: String,
    },
    /// Too many attempts (login) from one client in a short time (429).
    TooManyRequests {
        /// Seconds until the next attempt is accepted.
        retry_after_secs: u64,
    },
    /// The change conflicts with what the database holds now (409).
    Conflict {
        /// What changed, for the operator.
        reason: String,
    },
    /// The database was locked by another process for too long (503); trying again usually works.
    Busy,
    /// Anything else on the server (500). The details are in the server's log, not here.
    Internal,
    /// The browser could not talk to the server, or the answer could not be read (502).
    Transport {
        /// What failed, from the server-function machinery.
        reason: String,
    },
}

impl AppError {
    /// A 400 for `param`.
    pub fn bad_request(param: impl Into<String>, reason: impl Into<String>) -> Self {
        AppError::BadRequest {
            param: param.into(),
            reason: reason.into(),
        }
    }

    /// A 404 for `what`.
    pub fn not_found(what: impl Into<String>) -> Self {
        AppError::NotFound { what: what.into() }
    }

    /// The HTTP status this error stands for.
    pub fn status(&self) -> u16 {
        match self {
            AppError::BadRequest { .. } => 400,
            AppError::Forbidden { .. } => 403,
            AppError::NotFound { .. } => 404,
            AppError::Conflict { .. } => 409,
            AppError::TooManyRequests { .. } => 429,
            AppError::Internal => 500,
            AppError::Transport { .. } => 502,
            AppError::Busy => 503,
        }
    }

    /// A short title for the error page.
    pub fn title(&self) -> &'static str {
        match self {
            AppError::BadRequest { .. } => "Bad request",
            AppError::Forbidden { .. } => "Not allowed",
            AppError::NotFound { .. } => "Not found",
            AppError::Conflict { .. } => "Changed meanwhile",
            AppError::TooManyRequests { .. } => "Too many attempts",
            AppError::Busy => "Database busy",
            AppError::Internal => "Server error",
            AppError::Transport { .. } => "Server unreachable",
        }
    }
}

impl fmt::Display for AppError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AppError::BadRequest { param, reason } => {
                write!(f, "The parameter “{param}” is not valid: {reason}.")
            }
            AppError::NotFound { what } => write!(f, "There is no {what}."),
            AppError::Forbidden { reason } => write!(f, "This change is not allowed: {reason}."),
            AppError::Conflict { reason } => write!(f, "{reason}."),
            AppError::TooManyRequests { retry_after_secs } => write!(
                f,
                "Too many attempts from this address. Try again in {retry_after_secs} s."
            ),
            AppError::Busy => f.write_str(
                "The database is busy (another process held its lock for too long). Try again in a moment.",
            ),
            AppError::Internal => {
                f.write_str("Something went wrong on the server. The details are in the server's log.")
            }
            AppError::Transport { reason } => write!(f, "The server could not be reached: {reason}."),
        }
    }
}

impl std::error::Error for AppError {}

impl FromServerFnError for AppError {
    type Encoder = JsonEncoding;

    fn from_server_fn_error(value: ServerFnErrorErr) -> Self {
        match value {
            // The arguments of the call could not be read: the caller's fault.
            ServerFnErrorErr::Args(reason) | ServerFnErrorErr::MissingArg(reason) => {
                AppError::bad_request("arguments", reason)
            }
            ServerFnErrorErr::Request(reason) | ServerFnErrorErr::Response(reason) => {
                AppError::Transport { reason }
            }
            // On the server, what cannot be read is the request (a body that is not text, a form that is not
            // one): the caller's fault, 400. In the browser it is the server's answer.
            ServerFnErrorErr::Deserialization(reason) if cfg!(feature = "ssr") => {
                AppError::bad_request("arguments", reason)
            }
            ServerFnErrorErr::Deserialization(reason) => AppError::Transport {
                reason: format!("the answer could not be read ({reason})"),
            },
            ServerFnErrorErr::UnsupportedRequestMethod(method) => {
                AppError::bad_request("method", format!("{method} is not accepted here; use POST"))
            }
            ServerFnErrorErr::Registration(_)
            | ServerFnErrorErr::MiddlewareError(_)
            | ServerFnErrorErr::Serialization(_)
            | ServerFnErrorErr::ServerError(_) => {
                #[cfg(feature = "ssr")]
                tracing::error!(error = %value, "server function failed");
                AppError::Internal
            }
        }
    }
}

#[cfg(feature = "ssr")]
impl From<flowstate_store::StoreError> for AppError {
    fn from(err: flowstate_store::StoreError) -> Self {
        use flowstate_store::StoreError;
        match err {
            StoreError::InvalidInput { field, reason } => AppError::bad_request(field, reason),
            StoreError::NotFound { run_id } => AppError::not_found(format!("run “{run_id}”")),
            StoreError::Conflict(reason) => AppError::Conflict { reason },
            StoreError::Busy { .. } | StoreError::Unavailable { .. } => {
                tracing::warn!(error = %err, "store busy or unavailable");
                AppError::Busy
            }
            other => {
                // The only place the real error goes: the log. The page says "see the log".
                tracing::error!(error = %other, "store failure");
                AppError::Internal
            }
        }
    }
}
