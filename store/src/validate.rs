//! Validation of everything a caller hands the store, once for both backends: a save's row, lookup ids, list
//! queries and their cursors, windows and limits, cleanup policies. The facade ([`crate::Store`]) runs these
//! before it hands a call to a backend; backends receive only values that passed.

use std::str::FromStr;

use base64::Engine;
use chrono::{DateTime, Datelike, Utc};
use flowstate_model::limits::{
    MAX_CLEANUP_DAYS, MAX_ERROR_BYTES, MAX_JSON_BYTES, MAX_JSON_DEPTH, MAX_LOOKUP_ID_BYTES, MAX_NAME_BYTES,
    MAX_RUN_ID_BYTES,
};
use serde_json::Value;

use crate::{
    CleanupPolicy, ListQuery, ListSort, Result, RunExtras, Status, StoreError, UnknownStatus, WorkflowState,
};

/// Refuses an empty value of `field`.
pub(crate) fn non_empty(field: &'static str, value: &str) -> Result<()> {
    if value.is_empty() {
        return Err(StoreError::invalid(field, "must not be empty"));
    }
    Ok(())
}

/// A run id a lookup or a delete can use: non-empty and at most [`MAX_LOOKUP_ID_BYTES`].
pub(crate) fn lookup_id(run_id: &str) -> Result<()> {
    non_empty("run_id", run_id)?;
    // Other writers (flujo) store ids longer than flowstate's own limit for saves: they must still be found and
    // deleted. The bound only keeps a lookup's key reasonable.
    if run_id.len() > MAX_LOOKUP_ID_BYTES {
        return Err(StoreError::invalid(
            "run_id",
            format!(
                "is {} bytes; the limit for a lookup is {MAX_LOOKUP_ID_BYTES}",
                run_id.len()
            ),
        ));
    }
    Ok(())
}

/// A page size: 1..=[`ListQuery::MAX_LIMIT`].
pub(crate) fn limit(limit: u32) -> Result<u32> {
    if limit == 0 || limit > ListQuery::MAX_LIMIT {
        return Err(StoreError::invalid(
            "limit",
            format!("must be between 1 and {}, got {limit}", ListQuery::MAX_LIMIT),
        ));
    }
    Ok(limit)
}

/// A save, checked and with its JSON written out: what every backend binds.
#[derive(Debug, Clone)]
pub(crate) struct ValidState {
    /// The run as given; from [`ValidState::new`] without its JSON values (`null`, `None`: a save binds the
    /// written-out text below, so the caller's values are not copied for nothing: a deep copy of a context of a
    /// few KB was a good part of a save's CPU time in the client).
    pub state: WorkflowState,
    /// The status's stored name (one of the five).
    pub status: &'static str,
    /// `pipeline_context` as JSON text.
    pub context: String,
    /// `last_step_output` as JSON text (`None`: SQL NULL).
    pub last_output: Option<String>,
    /// `step_history` as JSON text (`None`: JSON null given, stored as SQL NULL).
    pub history: Option<String>,
    /// `metadata` as JSON text.
    #[allow(dead_code)] // Written by the PostgreSQL backend and by SQLite's schema 3 (being built).
    pub metadata: Option<String>,
}

impl ValidState {
    /// Checks every field of a run to be saved, and writes its JSON columns out.
    pub(crate) fn new(state: &WorkflowState) -> Result<ValidState> {
        let encoded = Self::check(state)?;
        Ok(encoded.with(without_json(state)))
    }

    /// [`ValidState::new`] of a run the caller hands over (no copy of its values).
    pub(crate) fn new_owned(state: WorkflowState) -> Result<ValidState> {
        let encoded = Self::check(&state)?;
        Ok(encoded.with(state))
    }

    fn check(state: &WorkflowState) -> Result<Encoded> {
        lookup_id(&state.run_id)?;
        if state.run_id.len() > MAX_RUN_ID_BYTES {
            return Err(StoreError::invalid(
                "run_id",
                format!("is {} bytes; the limit is {MAX_RUN_ID_BYTES}", state.run_id.len()),
            ));
        }
        non_empty("pipeline_id", &state.pipeline_id)?;
        let RunExtras {
            parent_run_id,
            task_id,
            background_error,
            ..
        } = &state.extras;
        for (field, value) in [
            ("run_id", Some(&state.run_id)),
            ("pipeline_id", Some(&state.pipeline_id)),
            ("pipeline_name", Some(&state.pipeline_name)),
            ("pipeline_version", Some(&state.pipeline_version)),
            ("error_message", state.error_message.as_ref()),
            ("parent_run_id", parent_run_id.as_ref()),
            ("task_id", task_id.as_ref()),
            ("background_error", background_error.as_ref()),
        ] {
            // PostgreSQL's text cannot hold NUL, and flujo's Python reads it back differently: refused everywhere,
            // so a run saved on one backend can be copied to the other.
            if value.is_some_and(|v| v.contains('\0')) {
                return Err(StoreError::invalid(field, "must not contain NUL characters"));
            }
        }
        for (field, value) in [
            ("pipeline_id", Some(&state.pipeline_id)),
            ("pipeline_name", Some(&state.pipeline_name)),
            ("pipeline_version", Some(&state.pipeline_version)),
            ("parent_run_id", parent_run_id.as_ref()),
            ("task_id", task_id.as_ref()),
        ] {
            if let Some(value) = value.filter(|v| v.len() > MAX_NAME_BYTES) {
                return Err(StoreError::invalid(
                    field,
                    format!("is {} bytes; the limit is {MAX_NAME_BYTES}", value.len()),
                ));
            }
        }
        let Some(status) = state.status.known_name() else {
            return Err(StoreError::from(UnknownStatus {
                name: state.status.as_str().to_string(),
            }));
        };
        for (field, value) in [
            ("current_step_index", Some(state.current_step_index)),
            ("total_steps", Some(state.total_steps)),
            ("execution_time_ms", state.execution_time_ms),
        ] {
            if value.is_some_and(|v| v < 0) {
                return Err(StoreError::invalid(field, "must not be negative"));
            }
        }
        // PostgreSQL's INTEGER columns (flujo's layout) hold 32 bits: the same bound on both backends.
        for (field, value) in [
            ("current_step_index", Some(state.current_step_index)),
            ("total_steps", Some(state.total_steps)),
            ("execution_time_ms", state.execution_time_ms),
        ] {
            if value.is_some_and(|v| v > i64::from(i32::MAX)) {
                return Err(StoreError::invalid(
                    field,
                    format!("must be at most {} (a 32-bit INTEGER column)", i32::MAX),
                ));
            }
        }
        if let Some(m) = state.memory_usage_mb {
            if !m.is_finite() || m < 0.0 {
                return Err(StoreError::invalid(
                    "memory_usage_mb",
                    format!("must be a finite, non-negative number, got {m}"),
                ));
            }
        }
        for (field, value) in [
            ("error_message", &state.error_message),
            ("background_error", background_error),
        ] {
            if let Some(e) = value.as_ref().filter(|e| e.len() > MAX_ERROR_BYTES) {
                return Err(StoreError::invalid(
                    field,
                    format!("is {} bytes; the limit is {MAX_ERROR_BYTES}", e.len()),
                ));
            }
        }
        for (field, value) in [
            ("created_at", &state.created_at),
            ("updated_at", &state.updated_at),
        ] {
            if let Some(at) = value {
                if !(1..=9999).contains(&at.year()) {
                    return Err(StoreError::invalid(
                        field,
                        format!(
                            "year {} is outside 1..=9999 (what Python's datetime can read)",
                            at.year()
                        ),
                    ));
                }
            }
        }
        let context = encode_json("pipeline_context", &state.pipeline_context)?;
        let last_output = state
            .last_step_output
            .as_ref()
            .map(|v| encode_json("last_step_output", v))
            .transpose()?;
        let history = match &state.step_history {
            Value::Null => None,
            v => Some(encode_json("step_history", v)?),
        };
        let metadata = state
            .extras
            .metadata
            .as_ref()
            .map(|v| encode_json("metadata", v))
            .transpose()?;
        Ok(Encoded {
            status,
            context,
            last_output,
            history,
            metadata,
        })
    }
}

/// A copy of a run without its JSON values (`pipeline_context`, `last_step_output`, `step_history` as `null` /
/// `None`, `metadata` as `None`), which [`ValidState`] holds written out.
fn without_json(state: &WorkflowState) -> WorkflowState {
    let x = &state.extras;
    WorkflowState {
        run_id: state.run_id.clone(),
        pipeline_id: state.pipeline_id.clone(),
        pipeline_name: state.pipeline_name.clone(),
        pipeline_version: state.pipeline_version.clone(),
        current_step_index: state.current_step_index,
        pipeline_context: Value::Null,
        last_step_output: None,
        step_history: Value::Null,
        status: state.status.clone(),
        created_at: state.created_at,
        updated_at: state.updated_at,
        total_steps: state.total_steps,
        error_message: state.error_message.clone(),
        execution_time_ms: state.execution_time_ms,
        memory_usage_mb: state.memory_usage_mb,
        extras: RunExtras {
            metadata: None,
            is_background_task: x.is_background_task,
            parent_run_id: x.parent_run_id.clone(),
            task_id: x.task_id.clone(),
            background_error: x.background_error.clone(),
        },
    }
}

/// The checked, written-out columns of a [`ValidState`], before the run is attached.
struct Encoded {
    status: &'static str,
    context: String,
    last_output: Option<String>,
    history: Option<String>,
    metadata: Option<String>,
}

impl Encoded {
    fn with(self, state: WorkflowState) -> ValidState {
        ValidState {
            state,
            status: self.status,
            context: self.context,
            last_output: self.last_output,
            history: self.history,
            metadata: self.metadata,
        }
    }
}

fn encode_json(field: &'static str, value: &Value) -> Result<String> {
    // Before serializing: serde_json's writer recurses once per level, so a value nested 100,000 deep would
    // overflow the stack there.
    if let Some(depth) = depth_beyond(value, MAX_JSON_DEPTH) {
        return Err(StoreError::invalid(
            field,
            format!(
                "nests arrays and objects {depth} deep (or more); the limit is {MAX_JSON_DEPTH} levels, so that \
                 every reader (flowstate, flujo) can load it back"
            ),
        ));
    }
    let text = serde_json::to_string(value)
        .map_err(|e| StoreError::invalid(field, format!("cannot be written as JSON: {e}")))?;
    if text.len() > MAX_JSON_BYTES {
        return Err(StoreError::invalid(
            field,
            format!("is {} bytes of JSON; the limit is {MAX_JSON_BYTES}", text.len()),
        ));
    }
    // PostgreSQL's JSONB cannot hold the character U+0000 in a string (serde_json writes it as \u0000): refused
    // on both backends, so that every run can move between them.
    if text.contains("\\u0000") {
        return Err(StoreError::invalid(
            field,
            "holds the character U+0000 in a string, which PostgreSQL's JSONB cannot store",
        ));
    }
    Ok(text)
}

/// The nesting depth of `value` when it exceeds `limit` (counted without recursion, and only up to `limit + 1`),
/// or `None` when it is within the limit.
fn depth_beyond(value: &Value, limit: usize) -> Option<usize> {
    let mut stack: Vec<(&Value, usize)> = vec![(value, 0)];
    while let Some((v, depth)) = stack.pop() {
        let depth = depth + 1;
        match v {
            Value::Array(_) | Value::Object(_) if depth > limit => return Some(depth),
            Value::Array(items) => stack.extend(items.iter().map(|c| (c, depth))),
            Value::Object(map) => stack.extend(map.values().map(|c| (c, depth))),
            _ => {}
        }
    }
    None
}

/// A list query that passed: its page size, offset and cursor decoded, its filters non-empty.
#[derive(Debug)]
pub(crate) struct ValidList<'a> {
    /// The query as given.
    pub query: &'a ListQuery,
    /// Rows of the page.
    pub limit: u32,
    /// Rows to skip after the cursor.
    pub offset: i64,
    /// Where the page starts (or, going back, ends).
    pub cursor: Option<Cursor>,
    /// The order.
    pub sort: ListSort,
}

impl<'a> ValidList<'a> {
    pub(crate) fn new(query: &'a ListQuery) -> Result<ValidList<'a>> {
        let limit = limit(query.limit.unwrap_or(ListQuery::DEFAULT_LIMIT))?;
        let offset = i64::try_from(query.offset.unwrap_or(0))
            .map_err(|_| StoreError::invalid("offset", "is too large"))?;
        let sort = query.sort;
        let cursor = query.cursor.as_deref().map(Cursor::decode).transpose()?;
        if let Some(c) = cursor.as_ref().filter(|c| c.sort != sort) {
            return Err(StoreError::invalid(
                "cursor",
                format!(
                    "belongs to a list sorted {}, not {}",
                    c.sort.label(),
                    sort.label()
                ),
            ));
        }
        for (field, v) in [
            ("min_execution_ms", query.min_execution_ms),
            ("max_execution_ms", query.max_execution_ms),
        ] {
            if let Some(v) = v.filter(|v| !(0..=i64::from(i32::MAX)).contains(v)) {
                return Err(StoreError::invalid(
                    field,
                    format!("must be between 0 and {} ms, got {v}", i32::MAX),
                ));
            }
        }
        if let (Some(lo), Some(hi)) = (query.min_execution_ms, query.max_execution_ms) {
            if lo > hi {
                return Err(StoreError::invalid(
                    "min_execution_ms",
                    format!("{lo} ms is above the maximum, {hi} ms"),
                ));
            }
        }
        for (field, v) in [
            ("min_memory_mb", query.min_memory_mb),
            ("max_memory_mb", query.max_memory_mb),
        ] {
            if let Some(v) = v.filter(|v| !v.is_finite() || *v < 0.0) {
                return Err(StoreError::invalid(
                    field,
                    format!("must be a finite, non-negative number of MB, got {v}"),
                ));
            }
        }
        if let (Some(lo), Some(hi)) = (query.min_memory_mb, query.max_memory_mb) {
            if lo > hi {
                return Err(StoreError::invalid(
                    "min_memory_mb",
                    format!("{lo} MB is above the maximum, {hi} MB"),
                ));
            }
        }
        for (field, value) in [
            ("pipeline_version", &query.pipeline_version),
            ("pipeline_id", &query.pipeline_id),
            ("run_id_prefix", &query.run_id_prefix),
            ("error_contains", &query.error_contains),
            ("parent_run_id", &query.parent_run_id),
        ] {
            if let Some(v) = value {
                non_empty(field, v)?;
            }
        }
        Ok(ValidList {
            query,
            limit,
            offset,
            cursor,
            sort,
        })
    }

    /// True when the page is read backwards (a `prev_cursor`).
    pub(crate) fn backwards(&self) -> bool {
        self.cursor.as_ref().is_some_and(|c| c.before)
    }

    /// True when the list's filters are only statuses and a pipeline (what the counters count).
    pub(crate) fn only_counted_filters(&self) -> bool {
        let q = self.query;
        q.created_after.is_none()
            && q.created_before.is_none()
            && q.updated_after.is_none()
            && q.updated_before.is_none()
            && q.run_id_prefix.is_none()
            && q.error_contains.is_none()
            && q.parent_run_id.is_none()
            && q.background.is_none()
            && q.pipeline_version.is_none()
            && q.min_execution_ms.is_none()
            && q.max_execution_ms.is_none()
            && q.min_memory_mb.is_none()
            && q.max_memory_mb.is_none()
    }

    /// The page from the rows a backend read (at most `limit + 1`, each with its cursor key, see [`Cursor::key`]),
    /// in the order it read them (the sort's order; the reverse when going back).
    pub(crate) fn page(&self, rows: Vec<(i64, crate::RunSummary)>) -> crate::Page {
        let backwards = self.backwards();
        let more = rows.len() > self.limit as usize;
        let mut keyed: Vec<(i64, crate::RunSummary)> = rows.into_iter().take(self.limit as usize).collect();
        if backwards {
            keyed.reverse();
        }
        let at = |i: Option<&(i64, crate::RunSummary)>, before: bool| {
            i.map(|(key, run)| {
                Cursor {
                    sort: self.sort,
                    key: *key,
                    run_id: run.run_id.clone(),
                    before,
                }
                .encode()
            })
        };
        // Going forward, a next page exists when more rows came back, a previous one whenever we came from a
        // cursor; going backward, the other way round.
        let (has_next, has_prev) = if backwards {
            (true, more)
        } else {
            (more, self.cursor.is_some())
        };
        let next_cursor = if has_next { at(keyed.last(), false) } else { None };
        let prev_cursor = if has_prev { at(keyed.first(), true) } else { None };
        crate::Page {
            runs: keyed.into_iter().map(|(_, r)| r).collect(),
            next_cursor,
            prev_cursor,
        }
    }
}

/// A keyset position: the sort key and run id of the last (or, going back, first) row of a page. The same on both
/// backends, so a cursor survives a `flowstate copy`.
#[derive(Debug, Clone)]
pub(crate) struct Cursor {
    /// The order the cursor belongs to.
    pub sort: ListSort,
    /// The sort key: an instant in microseconds since the epoch ([`ListSort::Newest`]: creation,
    /// [`ListSort::Idle`]: last update), or a number ([`ListSort::Slowest`]: the execution time,
    /// [`ListSort::Heaviest`]: the memory) as [`real_key`] writes it.
    pub key: i64,
    pub run_id: String,
    /// Rows before this position (newer ones) rather than after it.
    pub before: bool,
}

impl Cursor {
    pub(crate) fn encode(&self) -> String {
        let dir = if self.before { 'b' } else { 'a' };
        // Newest-first cursors keep version 2's spelling, so links made before the other orders still work.
        let text = match self.sort {
            ListSort::Newest => format!("v2:{dir}:{}:{}", self.key, self.run_id),
            sort => format!("v3:{}:{dir}:{}:{}", sort.as_str(), self.key, self.run_id),
        };
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text)
    }

    fn decode(text: &str) -> Result<Cursor> {
        let bad = || StoreError::invalid("cursor", "is not a cursor this store returned");
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(text.trim())
            .map_err(|_| bad())?;
        let text = String::from_utf8(bytes).map_err(|_| bad())?;
        let (sort, rest) = if let Some(rest) = text.strip_prefix("v2:") {
            (ListSort::Newest, rest)
        } else {
            let rest = text.strip_prefix("v3:").ok_or_else(bad)?;
            let (sort, rest) = rest.split_once(':').ok_or_else(bad)?;
            (ListSort::parse(sort).ok_or_else(bad)?, rest)
        };
        let (dir, rest) = rest.split_once(':').ok_or_else(bad)?;
        let before = match dir {
            "a" => false,
            "b" => true,
            _ => return Err(bad()),
        };
        let (key, run_id) = rest.split_once(':').ok_or_else(bad)?;
        Ok(Cursor {
            sort,
            key: i64::from_str(key).map_err(|_| bad())?,
            run_id: run_id.to_string(),
            before,
        })
    }
}

/// A number as a cursor key that sorts as the number does (the IEEE 754 bits, negative numbers' flipped), so
/// a cursor holds the exact value a backend compares with.
pub(crate) fn real_key(value: f64) -> i64 {
    let bits = value.to_bits() as i64;
    if bits < 0 {
        bits ^ i64::MAX
    } else {
        bits
    }
}

/// The number [`real_key`] wrote.
pub(crate) fn key_real(key: i64) -> f64 {
    let bits = if key < 0 { key ^ i64::MAX } else { key };
    f64::from_bits(bits as u64)
}

/// The window of [`crate::Store::get_failed_workflows`]: 1 hour to ten years.
pub(crate) fn hours_back(hours_back: u32) -> Result<()> {
    if hours_back == 0 || hours_back > 24 * 366 * 10 {
        return Err(StoreError::invalid(
            "hours_back",
            format!(
                "must be between 1 and {} (ten years), got {hours_back}",
                24 * 366 * 10
            ),
        ));
    }
    Ok(())
}

/// A cleanup policy that passed, at one instant: the statuses it removes, and the cutoff on last activity.
#[derive(Debug, Clone)]
pub(crate) struct ValidCleanup {
    /// The statuses (known ones only), sorted.
    pub statuses: Vec<Status>,
    /// Runs last updated strictly before this instant are matched.
    pub cutoff: DateTime<Utc>,
    /// Only this pipeline.
    pub pipeline_id: Option<String>,
}

impl ValidCleanup {
    pub(crate) fn new(policy: &CleanupPolicy, now: DateTime<Utc>) -> Result<ValidCleanup> {
        if policy.older_than_days == 0 || policy.older_than_days > MAX_CLEANUP_DAYS {
            return Err(StoreError::invalid(
                "older_than_days",
                format!(
                    "must be between 1 and {MAX_CLEANUP_DAYS}, got {}",
                    policy.older_than_days
                ),
            ));
        }
        let statuses = policy.effective_statuses();
        if let Some(bad) = statuses.iter().find(|s| !s.is_known()) {
            return Err(StoreError::invalid(
                "statuses",
                format!("{:?} is not a status a cleanup can select", bad.as_str()),
            ));
        }
        if let Some(p) = &policy.pipeline_id {
            non_empty("pipeline_id", p)?;
        }
        Ok(ValidCleanup {
            statuses,
            cutoff: now - chrono::Duration::days(i64::from(policy.older_than_days)),
            pipeline_id: policy.pipeline_id.clone(),
        })
    }
}
