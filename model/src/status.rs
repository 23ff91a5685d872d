//! The state of a run: the five names flujo's CHECK constraint allows, and how anything else a file holds (a
//! legacy `pending`, NULL) is named and shown.

use std::fmt;

use serde::{Deserialize, Serialize, Serializer};

/// `running`: the run is executing.
pub const RUNNING: &str = "running";
/// `paused`: the run waits (e.g. for a human).
pub const PAUSED: &str = "paused";
/// `completed`: the run finished successfully.
pub const COMPLETED: &str = "completed";
/// `failed`: the run ended with an error.
pub const FAILED: &str = "failed";
/// `cancelled`: the run was cancelled.
pub const CANCELLED: &str = "cancelled";
/// How a NULL status is named (in counts, filters, URLs and pages).
pub const NULL: &str = "null";
/// Where charts and colours put every status outside the five (legacy values and NULL together).
pub const OTHER: &str = "other";

/// The five known names, in the order the dashboard and the CLI show them.
pub const KNOWN_NAMES: [&str; 5] = [RUNNING, PAUSED, COMPLETED, FAILED, CANCELLED];
/// The terminal names: what a cleanup deletes unless told otherwise.
pub const TERMINAL_NAMES: [&str; 3] = [COMPLETED, FAILED, CANCELLED];
/// The names of runs a worker may still be writing: deleted only when named.
pub const ACTIVE_NAMES: [&str; 2] = [RUNNING, PAUSED];
/// The five known names as one list for messages: `running, paused, completed, failed, cancelled`.
pub const KNOWN_LIST: &str = "running, paused, completed, failed, cancelled";

/// The state of a run. The five known states are the ones flujo's CHECK constraint allows; files written by
/// older backends can hold other text (e.g. `pending`) or NULL, which is kept and shown as [`Status::Other`]
/// rather than dropped or rewritten.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Status {
    /// The run is executing.
    Running,
    /// The run waits (e.g. for a human).
    Paused,
    /// The run finished successfully.
    Completed,
    /// The run ended with an error.
    Failed,
    /// The run was cancelled.
    Cancelled,
    /// A value outside the five (`Some(text)`), or NULL (`None`), found in an old file. Never written.
    Other(Option<String>),
}

/// A name that is not one of the five known statuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{name:?} is not a status; use one of {KNOWN_LIST}")]
pub struct UnknownStatus {
    /// The name as given.
    pub name: String,
}

impl Status {
    /// The five known states, in the order the dashboard shows them.
    pub const KNOWN: [Status; 5] = [
        Status::Running,
        Status::Paused,
        Status::Completed,
        Status::Failed,
        Status::Cancelled,
    ];

    /// The terminal states: the ones a cleanup deletes unless told otherwise.
    pub const TERMINAL: [Status; 3] = [Status::Completed, Status::Failed, Status::Cancelled];

    /// The states of runs a worker may still be writing.
    pub const ACTIVE: [Status; 2] = [Status::Running, Status::Paused];

    /// The stored name (`running`, ...; for [`Status::Other`] the stored text, or `null`).
    pub fn as_str(&self) -> &str {
        match self {
            Status::Other(Some(s)) => s,
            Status::Other(None) => NULL,
            known => known.group(),
        }
    }

    /// The name of a known state, with a static lifetime; `None` for [`Status::Other`].
    pub fn known_name(&self) -> Option<&'static str> {
        match self {
            Status::Running => Some(RUNNING),
            Status::Paused => Some(PAUSED),
            Status::Completed => Some(COMPLETED),
            Status::Failed => Some(FAILED),
            Status::Cancelled => Some(CANCELLED),
            Status::Other(_) => None,
        }
    }

    /// The group a status is shown in (its colour, its chart series, its badge): the known name, or [`OTHER`]
    /// for every other stored value and NULL.
    pub fn group(&self) -> &'static str {
        self.known_name().unwrap_or(OTHER)
    }

    /// One of the five known states, by its exact name.
    pub fn known(name: &str) -> Option<Status> {
        match name {
            RUNNING => Some(Status::Running),
            PAUSED => Some(Status::Paused),
            COMPLETED => Some(Status::Completed),
            FAILED => Some(Status::Failed),
            CANCELLED => Some(Status::Cancelled),
            _ => None,
        }
    }

    /// Parses a name the user typed: one of the five (surrounding blanks ignored), or an error naming them.
    ///
    /// # Errors
    /// [`UnknownStatus`] for any other text.
    pub fn parse(name: &str) -> Result<Status, UnknownStatus> {
        Status::known(name.trim()).ok_or_else(|| UnknownStatus {
            name: name.to_string(),
        })
    }

    /// What a stored value means: one of the five, or kept as [`Status::Other`].
    pub fn from_stored(value: Option<String>) -> Status {
        match value {
            Some(text) => Status::known(&text).unwrap_or(Status::Other(Some(text))),
            None => Status::Other(None),
        }
    }

    /// The status a shown name stands for: the inverse of [`Status::as_str`] (`null` is NULL).
    pub fn from_name(name: &str) -> Status {
        if name == NULL {
            Status::Other(None)
        } else {
            Status::from_stored(Some(name.to_string()))
        }
    }

    /// True for one of the five known states.
    pub fn is_known(&self) -> bool {
        !matches!(self, Status::Other(_))
    }

    /// True for completed, failed and cancelled.
    pub fn is_terminal(&self) -> bool {
        matches!(self, Status::Completed | Status::Failed | Status::Cancelled)
    }

    /// True for running and paused: a worker may still be writing the run.
    pub fn is_active(&self) -> bool {
        matches!(self, Status::Running | Status::Paused)
    }

    /// What an unusual status means, for an operator; `None` for the five known ones.
    pub fn note(&self) -> Option<&'static str> {
        match self {
            Status::Other(None) => Some("No status is stored for this run (written by an old backend)."),
            Status::Other(Some(_)) => {
                Some("A legacy status from an old backend, not one of the five current ones.")
            }
            _ => None,
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Status {
    type Err = UnknownStatus;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Status::parse(s)
    }
}

impl Serialize for Status {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Status::Other(None) => s.serialize_none(),
            other => s.serialize_str(other.as_str()),
        }
    }
}

impl<'de> Deserialize<'de> for Status {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value: Option<String> = Option::deserialize(d)?;
        Ok(Status::from_stored(value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_lists_and_variants_agree() {
        let names: Vec<&str> = Status::KNOWN.iter().map(Status::as_str).collect();
        assert_eq!(names, KNOWN_NAMES);
        assert_eq!(KNOWN_LIST, KNOWN_NAMES.join(", "));
        let terminal: Vec<&str> = Status::TERMINAL.iter().map(Status::as_str).collect();
        assert_eq!(terminal, TERMINAL_NAMES);
        let active: Vec<&str> = Status::ACTIVE.iter().map(Status::as_str).collect();
        assert_eq!(active, ACTIVE_NAMES);
        for s in Status::KNOWN {
            assert_eq!(Status::known(s.as_str()), Some(s.clone()));
            assert_eq!(Status::from_name(s.as_str()), s);
            assert_eq!(s.known_name(), Some(s.as_str()));
            assert_eq!(s.group(), s.as_str());
            assert!(s.is_known() && s.note().is_none());
            assert_eq!(s.is_terminal(), TERMINAL_NAMES.contains(&s.as_str()));
            assert_eq!(s.is_active(), ACTIVE_NAMES.contains(&s.as_str()));
        }
    }

    #[test]
    fn unknown_and_null_statuses_are_kept_and_shown_as_other() {
        let pending = Status::from_stored(Some("pending".into()));
        assert_eq!(pending, Status::Other(Some("pending".into())));
        assert_eq!(pending.as_str(), "pending");
        assert_eq!(pending.group(), OTHER);
        assert!(pending.note().unwrap().contains("legacy"));
        let null = Status::from_stored(None);
        assert_eq!(null.as_str(), NULL);
        assert_eq!(Status::from_name(NULL), null);
        assert_eq!(null.group(), OTHER);
        assert!(null.note().unwrap().contains("No status"));
        assert!(!null.is_known() && !null.is_terminal() && !null.is_active());
    }

    #[test]
    fn parsing_refuses_other_names_with_a_typed_error() {
        assert_eq!(Status::parse(" failed "), Ok(Status::Failed));
        assert_eq!("paused".parse::<Status>(), Ok(Status::Paused));
        let err = Status::parse("done").unwrap_err();
        assert_eq!(err.name, "done");
        assert!(err.to_string().contains(KNOWN_LIST), "{err}");
        assert!(
            Status::parse("Failed").is_err(),
            "names are exact; callers lowercase what people type"
        );
    }

    #[test]
    fn serde_keeps_null_as_null() {
        let json = serde_json::to_string(&[Status::Failed, Status::Other(None)]).unwrap();
        assert_eq!(json, r#"["failed",null]"#);
        let back: Vec<Status> = serde_json::from_str(r#"["failed",null,"pending"]"#).unwrap();
        assert_eq!(
            back,
            [
                Status::Failed,
                Status::Other(None),
                Status::Other(Some("pending".into()))
            ]
        );
    }
}
