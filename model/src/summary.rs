//! A run as lists show it, and the one spelling of an instant in flowstate's JSON.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use crate::Status;

/// A run as listed: every column of `workflow_state` but the JSON ones (which can be large). The store's lists
/// return it; `flowstate runs --json` prints it as it serializes (times in [`rfc3339`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    /// The run's id.
    pub run_id: String,
    /// The pipeline's id.
    pub pipeline_id: String,
    /// The pipeline's display name.
    pub pipeline_name: String,
    /// The pipeline's version.
    pub pipeline_version: String,
    /// The run's state.
    pub status: Status,
    /// Index of the step being executed.
    pub current_step_index: i64,
    /// How many steps the pipeline has.
    pub total_steps: i64,
    /// When the run was created; `None` when the stored value is NULL or not a timestamp.
    #[serde(with = "optional_instant")]
    pub created_at: Option<DateTime<Utc>>,
    /// When the run was last updated.
    #[serde(with = "optional_instant")]
    pub updated_at: Option<DateTime<Utc>>,
    /// The error that ended the run, if any: its first [`RunSummary::ERROR_EXCERPT_CHARS`] characters when the
    /// store lists runs (the store's `load_state` and `load_run_view` have the whole message).
    pub error_message: Option<String>,
    /// Time spent executing, in milliseconds.
    pub execution_time_ms: Option<i64>,
    /// Memory used, in MB.
    pub memory_usage_mb: Option<f64>,
    /// The whole error message's size in bytes (`error_message` is cut when it is larger than its own length).
    #[serde(default)]
    pub error_message_bytes: Option<u64>,
}

impl RunSummary {
    /// How much of an error message a listed run carries, in characters. Lists and previews show an excerpt:
    /// one worker's 3 MB message must not make every list page 3 MB.
    pub const ERROR_EXCERPT_CHARS: usize = 1000;

    /// True when [`RunSummary::error_message`] is only the start of the stored message.
    pub fn error_is_cut(&self) -> bool {
        match (&self.error_message, self.error_message_bytes) {
            (Some(m), Some(total)) => (m.len() as u64) < total,
            _ => false,
        }
    }
}

/// An instant as flowstate's JSON writes it: RFC 3339 in UTC with microseconds (`2026-01-31T12:00:00.000000Z`),
/// the precision the store keeps.
pub fn rfc3339(at: &DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// Serde for an optional instant: [`rfc3339`] or null; any RFC 3339 text reads back.
pub mod optional_instant {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes [`super::rfc3339`] or null.
    pub fn serialize<S: Serializer>(at: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
        match at {
            Some(at) => s.serialize_str(&super::rfc3339(at)),
            None => s.serialize_none(),
        }
    }

    /// Reads RFC 3339 (any offset) or null.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|text| {
                DateTime::parse_from_rfc3339(&text)
                    .map(|t| t.with_timezone(&Utc))
                    .map_err(serde::de::Error::custom)
            })
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn run() -> RunSummary {
        RunSummary {
            run_id: "r1".into(),
            pipeline_id: "p".into(),
            pipeline_name: "P".into(),
            pipeline_version: "1.0.0".into(),
            status: Status::Other(None),
            current_step_index: 2,
            total_steps: 5,
            created_at: Some(Utc.with_ymd_and_hms(2026, 1, 31, 12, 0, 0).unwrap()),
            updated_at: None,
            error_message: Some("boom".into()),
            execution_time_ms: Some(1500),
            memory_usage_mb: Some(12.5),
            error_message_bytes: Some(4),
        }
    }

    #[test]
    fn a_summary_serializes_with_microsecond_utc_times_and_reads_back() {
        let value = serde_json::to_value(run()).unwrap();
        assert_eq!(value["created_at"], "2026-01-31T12:00:00.000000Z");
        assert_eq!(value["updated_at"], serde_json::Value::Null);
        assert_eq!(value["status"], serde_json::Value::Null);
        let keys: Vec<&str> = value.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys.len(), 13);
        let back: RunSummary = serde_json::from_value(value).unwrap();
        assert_eq!(back, run());
        let offset: RunSummary = serde_json::from_str(
            &serde_json::to_string(&run())
                .unwrap()
                .replace("2026-01-31T12:00:00.000000Z", "2026-01-31T14:00:00+02:00"),
        )
        .unwrap();
        assert_eq!(offset.created_at, run().created_at);
    }

    #[test]
    fn an_error_excerpt_knows_it_is_cut() {
        let mut r = run();
        assert!(!r.error_is_cut(), "4 bytes of 4");
        r.error_message_bytes = Some(3_000_000);
        assert!(r.error_is_cut());
        r.error_message = None;
        assert!(!r.error_is_cut());
    }
}
