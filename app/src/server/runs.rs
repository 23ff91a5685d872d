//! The runs list and one run.
//!
//! The runs list reads its filters from the page's raw query string, on the server: every parameter is checked
//! here, and a bad one is a [`AppError::BadRequest`] naming it (the page answers 400), never a 500.
//!
//! | parameter | meaning |
//! |---|---|
//! | `status` | repeated (`status=failed&status=paused`) or comma-separated (`status=failed,paused`): the five known statuses, `null` for runs without one, or a legacy value the database holds (e.g. `pending`) |
//! | `pipeline` | one pipeline id |
//! | `created_after`, `created_before`, `updated_after`, `updated_before` | RFC 3339, or `YYYY-MM-DDTHH:MM[:SS]` / `YYYY-MM-DD` read as UTC (what `<input type="datetime-local">` sends) |
//! | `prefix` | run ids starting with this text |
//! | `error` | error messages containing this text, case-insensitively |
//! | `parent` | the background tasks this run started (flujo's `parent_run_id`) |
//! | `background` | `1`: background tasks only; `0`: runs that are not background tasks |
//! | `version` | one pipeline version (exact) |
//! | `min_duration`, `max_duration` | execution time at least / at most a span: `90s`, `5m`, `2h`, or `1500ms` |
//! | `min_memory`, `max_memory` | memory at least / at most this many MB (a decimal) |
//! | `sort` | `newest` (default), `slowest` (runs with a time only), `heaviest` (runs with a memory figure only), `idle` (oldest last update first) |
//! | `limit` | page size, 1 to 1000, default 50 |
//! | `cursor` | a page's next or previous cursor, as the links carry it |
//!
//! Blank values (what an untouched form field sends) mean "not set"; unknown parameters are ignored.

use leptos::prelude::*;

use crate::error::AppError;
use crate::model::{ListNeighbours, RunDetail, RunsListing};

/// One page of runs for the query string `search` (as in the address bar, with or without the `?`).
#[server(endpoint = "runs")]
pub async fn list_runs(search: String) -> Result<RunsListing, AppError> {
    super::with_status(ssr::list(&search).await)
}

/// Every field of one run. `full` names the values to show whole (`context`, `output`, `history`, `error`,
/// `metadata`, `background_error` or `all`); the others are cut after [`JSON_SHOWN_BYTES`].
#[server(endpoint = "run")]
pub async fn get_run(run_id: String, full: Option<String>) -> Result<RunDetail, AppError> {
    super::with_status(ssr::run(&run_id, full.as_deref()).await)
}

/// The previous and next runs of the list `list` (a `/runs?…` address, as the list's run links carry it) around
/// `run_id`, and the way back to that list.
#[server(endpoint = "run_neighbours")]
pub async fn run_neighbours(run_id: String, list: String) -> Result<ListNeighbours, AppError> {
    super::with_status(ssr::neighbours(&run_id, &list).await)
}

/// The query-string decoder of the runs list (the binary's CSRF layer reads forms with the same crate; its tests
/// check that both agree).
#[cfg(feature = "ssr")]
pub use ssr::parse_pairs;
#[cfg(feature = "ssr")]
pub use ssr::raw_value;

/// How much of a JSON value the run page shows before cutting it (bytes of pretty-printed text).
pub const JSON_SHOWN_BYTES: usize = 16 * 1024;

/// How much of an error message the run page shows before cutting it (bytes).
pub const ERROR_SHOWN_BYTES: usize = 16 * 1024;

/// How many characters of each large column (error, context, output, history) a run's page reads. A value up
/// to this size is parsed and pretty-printed; a larger one is never parsed for the page: its start is laid out
/// as it is (indented without building a tree) and its size shown.
pub const VIEW_HEAD_CHARS: usize = 64 * 1024;

/// The largest value `?full=` shows inside the page. Anything larger opens as plain text at [`raw_href`]: a
/// page of 50 MB helps nobody, and building it would cost a gigabyte.
pub const FULL_SHOWN_BYTES: u64 = 2 * 1024 * 1024;

/// The address of one large value of a run as plain text, whole: `/raw/context?run=ID` (also `output`,
/// `history`, `error`, `metadata`, `background_error`).
pub fn raw_href(run_id: &str, value: &str) -> String {
    format!("/raw/{value}?run={}", crate::format::url_encode(run_id))
}

#[cfg(feature = "ssr")]
pub(crate) mod ssr {
    use chrono::{DateTime, SecondsFormat, Utc};
    use flowstate_model::status::{KNOWN_LIST, NULL};
    use flowstate_store::{
        ListQuery, ListSort, RunSummary, RunView, Status, Store, StoreError, TextColumn, TextHead,
    };
    use serde_json::Value;

    use super::{ERROR_SHOWN_BYTES, FULL_SHOWN_BYTES, JSON_SHOWN_BYTES, VIEW_HEAD_CHARS};
    use crate::error::AppError;
    use crate::format::ago;
    use crate::model::{
        step_text, BackgroundDetail, JsonBlock, ListNeighbours, RunDetail, RunRow, RunsFilter, RunsListing,
        Stamp, TimeParam,
    };
    use crate::server::limits;

    /// [`super::list_runs`].
    pub async fn list(search: &str) -> Result<RunsListing, AppError> {
        let store = crate::server::store()?;
        let read_at = store.now();
        let (query, filter) = parse_filter(&parse_pairs(search))?;
        check_legacy_statuses(&store, &query.statuses).await?;
        let page = store.list_workflows(&query).await.map_err(rename_params)?;
        let total = store.count_runs(&query).await.map_err(rename_params)?;
        let pipelines = store.pipelines().await?;
        Ok(RunsListing {
            total: total.count,
            total_exact: total.exact,
            runs: page.runs.into_iter().map(|run| row(run, read_at)).collect(),
            next_cursor: page.next_cursor,
            prev_cursor: page.prev_cursor,
            paged: query.cursor.is_some(),
            filter,
            pipelines,
            read_at: read_at.to_rfc3339_opts(SecondsFormat::Secs, true),
        })
    }

    /// [`super::run_neighbours`].
    pub async fn neighbours(run_id: &str, list: &str) -> Result<ListNeighbours, AppError> {
        let store = crate::server::store()?;
        if run_id.is_empty() {
            return Err(AppError::bad_request("run_id", "is empty"));
        }
        let search = match list.split_once('?') {
            Some(("/runs", search)) => search,
            None if list == "/runs" => "",
            _ => {
                return Err(AppError::bad_request(
                    "list",
                    "is not an address of the runs list (/runs?…)",
                ))
            }
        };
        let (mut query, filter) = parse_filter(&parse_pairs(search))?;
        check_legacy_statuses(&store, &query.statuses).await?;
        query.cursor = None;
        query.limit = None;
        let found = store
            .list_neighbours(&query, run_id)
            .await
            .map_err(rename_params)?;
        let link = |r: RunSummary| {
            let href = filter.run_href(&r.run_id);
            (r.run_id, href)
        };
        let mut label = if filter.is_filtered() {
            "filtered runs".to_string()
        } else {
            "all runs".to_string()
        };
        if query.sort != ListSort::Newest {
            label.push_str(", ");
            label.push_str(query.sort.label());
        }
        let (prev, next, listed) = match found {
            Some((prev, next)) => (prev.map(link), next.map(link), true),
            None => (None, None, false),
        };
        Ok(ListNeighbours {
            list_href: filter.href(None),
            list_label: label,
            prev,
            next,
            listed,
        })
    }

    /// [`super::get_run`]: the run's summary and the start of its large values, read and shown within bounds
    /// (see [`VIEW_HEAD_CHARS`]); the values `full` names read whole when they fit [`FULL_SHOWN_BYTES`].
    pub async fn run(run_id: &str, full: Option<&str>) -> Result<RunDetail, AppError> {
        let store = crate::server::store()?;
        let full = Full::parse(full)?;
        if run_id.is_empty() {
            return Err(AppError::bad_request("run_id", "is empty"));
        }
        let read_at = store.now();
        let view = {
            let _permit = limits::view().await?;
            store.load_run_view(run_id, VIEW_HEAD_CHARS).await?
        }
        .ok_or_else(|| AppError::not_found(format!("run “{run_id}”")))?;
        let mut detail = detail(view, read_at);
        let (metadata, background_error) = match detail.background.as_mut() {
            Some(b) => (b.metadata.as_mut(), b.error.as_mut()),
            None => (None, None),
        };
        for (asked, column, block) in [
            (full.context, TextColumn::Context, Some(&mut detail.context)),
            (full.output, TextColumn::LastOutput, detail.last_output.as_mut()),
            (full.history, TextColumn::StepHistory, Some(&mut detail.history)),
            (
                full.error,
                TextColumn::ErrorMessage,
                detail.error_message.as_mut(),
            ),
            (full.metadata, TextColumn::Metadata, metadata),
            (
                full.background_error,
                TextColumn::BackgroundError,
                background_error,
            ),
        ] {
            let Some(block) = block.filter(|b| asked && b.cut && !b.too_large) else {
                continue;
            };
            let text = {
                let _permit = limits::whole_value().await?;
                store.load_text_column(run_id, column).await?
            };
            // Deleted meanwhile, or NULL now: the page keeps what it read first.
            if let Some(Some(text)) = text {
                *block = if matches!(column, TextColumn::ErrorMessage | TextColumn::BackgroundError) {
                    text_block(text, true)
                } else {
                    json_block(&parse_json(&text), true)
                };
            }
        }
        Ok(detail)
    }

    /// [`raw_href`]: one large value of a run whole, as stored (plain text, never parsed).
    ///
    /// # Errors
    /// [`AppError::BadRequest`] for an unknown value name or an empty id; [`AppError::NotFound`] for an unknown
    /// run or a NULL value; [`AppError::Busy`] when too many whole values are being read at once.
    pub async fn raw_value(store: &Store, run_id: &str, value: &str) -> Result<String, AppError> {
        let column = match value {
            "context" => TextColumn::Context,
            "output" => TextColumn::LastOutput,
            "history" => TextColumn::StepHistory,
            "error" => TextColumn::ErrorMessage,
            "metadata" => TextColumn::Metadata,
            "background_error" => TextColumn::BackgroundError,
            other => {
                return Err(AppError::bad_request(
                    "value",
                    format!(
                        "“{other}” is not a value of a run; use context, output, history, error, metadata or \
                         background_error"
                    ),
                ))
            }
        };
        if run_id.is_empty() {
            return Err(AppError::bad_request("run", "is missing or empty"));
        }
        let _permit = limits::whole_value().await?;
        match store.load_text_column(run_id, column).await? {
            None => Err(AppError::not_found(format!("run “{run_id}”"))),
            Some(None) => Err(AppError::not_found(format!(
                "{value} of run “{run_id}” (it is NULL)"
            ))),
            Some(Some(text)) => Ok(text),
        }
    }

    /// Splits a raw query string into decoded `(name, value)` pairs, in order, with `form_urlencoded` (what
    /// browsers send and the binary's CSRF layer reads forms with): `+` is a space, `%XX` a byte, a `%` not
    /// followed by two hex digits stays as it is, invalid UTF-8 becomes U+FFFD.
    pub fn parse_pairs(search: &str) -> Vec<(String, String)> {
        form_urlencoded::parse(search.trim_start_matches('?').as_bytes())
            .map(|(name, value)| (name.into_owned(), value.into_owned()))
            .collect()
    }

    /// The store's query and the filters as the page shows them, from the URL's pairs.
    ///
    /// # Errors
    /// [`AppError::BadRequest`] naming the parameter: an unknown status, a date that is not one, a page size
    /// outside 1..=1000, a time range that ends before it starts.
    pub fn parse_filter(pairs: &[(String, String)]) -> Result<(ListQuery, RunsFilter), AppError> {
        let mut query = ListQuery::default();
        let mut filter = RunsFilter::default();
        for (name, raw) in pairs {
            let value = raw.trim();
            match name.as_str() {
                "status" => {
                    for part in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                        let status = parse_status(part)?;
                        if !query.statuses.contains(&status) {
                            filter.statuses.push(status.as_str().to_string());
                            query.statuses.push(status);
                        }
                    }
                }
                _ if value.is_empty() => {}
                "pipeline" => {
                    query.pipeline_id = Some(value.to_string());
                    filter.pipeline = Some(value.to_string());
                }
                "prefix" => {
                    // Ids are matched as stored: leading or trailing spaces are part of the prefix.
                    query.run_id_prefix = Some(raw.to_string());
                    filter.prefix = Some(raw.to_string());
                }
                "error" => {
                    query.error_contains = Some(value.to_string());
                    filter.error = Some(value.to_string());
                }
                "parent" => {
                    // Ids are matched as stored, as `prefix` is.
                    query.parent_run_id = Some(raw.to_string());
                    filter.parent = Some(raw.to_string());
                }
                "background" => {
                    let background = match value {
                        "1" | "true" | "yes" => true,
                        "0" | "false" | "no" => false,
                        other => {
                            return Err(AppError::bad_request(
                                "background",
                                format!(
                                    "“{other}” is not 1 (background tasks only) or 0 (no background tasks)"
                                ),
                            ))
                        }
                    };
                    query.background = Some(background);
                    filter.background = Some(background);
                }
                "created_after" | "created_before" | "updated_after" | "updated_before" => {
                    let at = parse_time(name, value)?;
                    let param = Some(time_param(&at));
                    match name.as_str() {
                        "created_after" => (query.created_after, filter.created_after) = (Some(at), param),
                        "created_before" => (query.created_before, filter.created_before) = (Some(at), param),
                        "updated_after" => (query.updated_after, filter.updated_after) = (Some(at), param),
                        _ => (query.updated_before, filter.updated_before) = (Some(at), param),
                    }
                }
                "limit" => {
                    let limit = parse_limit(value)?;
                    query.limit = Some(limit);
                    filter.limit = limit;
                }
                "cursor" => query.cursor = Some(value.to_string()),
                "version" => {
                    query.pipeline_version = Some(value.to_string());
                    filter.version = Some(value.to_string());
                }
                "min_duration" | "max_duration" => {
                    let ms = flowstate_model::bounds::parse_duration_ms(value)
                        .map_err(|e| AppError::bad_request(name, e))?;
                    if name == "min_duration" {
                        (query.min_execution_ms, filter.min_duration) = (Some(ms), Some(value.to_string()));
                    } else {
                        (query.max_execution_ms, filter.max_duration) = (Some(ms), Some(value.to_string()));
                    }
                }
                "min_memory" | "max_memory" => {
                    let mb = flowstate_model::bounds::parse_memory_mb(value)
                        .map_err(|e| AppError::bad_request(name, e))?;
                    if name == "min_memory" {
                        (query.min_memory_mb, filter.min_memory) = (Some(mb), Some(value.to_string()));
                    } else {
                        (query.max_memory_mb, filter.max_memory) = (Some(mb), Some(value.to_string()));
                    }
                }
                "sort" => {
                    let sort = ListSort::parse(&value.to_ascii_lowercase()).ok_or_else(|| {
                        AppError::bad_request(
                            "sort",
                            format!("“{value}” is not an order; use newest, slowest, heaviest or idle"),
                        )
                    })?;
                    query.sort = sort;
                    filter.sort = (sort != ListSort::Newest).then(|| sort.as_str().to_string());
                }
                // Anything else (a tracking parameter, `full`, ...) does not change the list.
                _ => {}
            }
        }
        for (name, after, before) in [
            ("created_before", query.created_after, query.created_before),
            ("updated_before", query.updated_after, query.updated_before),
        ] {
            if let (Some(after), Some(before)) = (after, before) {
                if before <= after {
                    return Err(AppError::bad_request(
                        name,
                        format!(
                            "the range ends ({}) before it starts ({})",
                            iso(&before),
                            iso(&after)
                        ),
                    ));
                }
            }
        }
        Ok((query, filter))
    }

    /// A status name from the URL: one of the five (any case), `null`, or kept as a legacy name to be checked
    /// against the database ([`check_legacy_statuses`]).
    fn parse_status(name: &str) -> Result<Status, AppError> {
        if let Some(known) = Status::known(&name.to_ascii_lowercase()) {
            return Ok(known);
        }
        if name == NULL {
            return Ok(Status::Other(None));
        }
        if name.len() > 64 || name.chars().any(char::is_control) {
            return Err(unknown_status(name));
        }
        Ok(Status::Other(Some(name.to_string())))
    }

    fn unknown_status(name: &str) -> AppError {
        AppError::bad_request(
            "status",
            format!("“{name}” is not a status; use one of {KNOWN_LIST} (or several)"),
        )
    }

    /// Legacy status names (`pending`, ...) are accepted only when the database holds them: `status=done` is a
    /// typo, not an empty list.
    ///
    /// # Errors
    /// [`AppError::BadRequest`] for `status` when a name is neither known nor stored.
    pub async fn check_legacy_statuses(store: &Store, statuses: &[Status]) -> Result<(), AppError> {
        let legacy: Vec<&str> = statuses
            .iter()
            .filter_map(|s| match s {
                Status::Other(Some(name)) => Some(name.as_str()),
                _ => None,
            })
            .collect();
        if legacy.is_empty() {
            return Ok(());
        }
        let stored = store.get_workflow_stats().await?.status_counts;
        match legacy.into_iter().find(|name| !stored.contains_key(*name)) {
            Some(name) => Err(unknown_status(name)),
            None => Ok(()),
        }
    }

    /// An instant from the URL: RFC 3339, or a date and time without offset read as UTC (what
    /// `<input type="datetime-local">` sends), or a date (midnight UTC).
    fn parse_time(param: &str, value: &str) -> Result<DateTime<Utc>, AppError> {
        let parsed = flowstate_store::time::parse_timestamp(value).or_else(|| {
            // An unencoded `+01:00` offset arrives as a space: ` 01:00`.
            let (head, tail) = value.rsplit_once(' ')?;
            let offset = tail.len() == 5 && tail.as_bytes()[2] == b':' && head.contains('T');
            offset
                .then(|| flowstate_store::time::parse_timestamp(&format!("{head}+{tail}")))
                .flatten()
        });
        parsed.ok_or_else(|| {
            AppError::bad_request(
                param,
                format!(
                    "“{value}” is not a date and time; use RFC 3339 (2026-03-14T12:00:00Z) or \
                     YYYY-MM-DDTHH:MM, read as UTC"
                ),
            )
        })
    }

    fn parse_limit(value: &str) -> Result<u32, AppError> {
        let bad = || {
            AppError::bad_request(
                "limit",
                format!(
                    "“{value}” is not a page size; use a whole number from 1 to {}",
                    RunsFilter::MAX_LIMIT
                ),
            )
        };
        let limit: u32 = value.parse().map_err(|_| bad())?;
        if limit == 0 || limit > RunsFilter::MAX_LIMIT {
            return Err(bad());
        }
        Ok(limit)
    }

    /// The store names some fields after its own API (`run_id_prefix`); the page names the URL's parameters.
    pub fn rename_params(err: StoreError) -> AppError {
        match AppError::from(err) {
            AppError::BadRequest { param, reason } => {
                let param = match param.as_str() {
                    "run_id_prefix" => "prefix".to_string(),
                    "error_contains" => "error".to_string(),
                    "pipeline_id" => "pipeline".to_string(),
                    "parent_run_id" => "parent".to_string(),
                    "pipeline_version" => "version".to_string(),
                    "min_execution_ms" => "min_duration".to_string(),
                    "max_execution_ms" => "max_duration".to_string(),
                    "min_memory_mb" => "min_memory".to_string(),
                    "max_memory_mb" => "max_memory".to_string(),
                    _ => param,
                };
                AppError::BadRequest { param, reason }
            }
            other => other,
        }
    }

    /// RFC 3339 in UTC with as many fraction digits as needed.
    pub fn iso(at: &DateTime<Utc>) -> String {
        at.to_rfc3339_opts(SecondsFormat::AutoSi, true)
    }

    fn time_param(at: &DateTime<Utc>) -> TimeParam {
        // The form's field shows whole seconds, 24-hour (`2026-03-14 13:45`); the link keeps the exact instant.
        let input = crate::spans::instant_input(*at);
        TimeParam {
            rfc3339: iso(at),
            input,
        }
    }

    /// An instant for people, relative to `now`.
    pub fn stamp(at: &DateTime<Utc>, now: DateTime<Utc>) -> Stamp {
        Stamp {
            rfc3339: iso(at),
            utc: at.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
            relative: ago((now - *at).num_seconds()),
        }
    }

    /// A listed run for the table.
    pub fn row(run: RunSummary, now: DateTime<Utc>) -> RunRow {
        RunRow {
            error_cut: run.error_is_cut(),
            step: step_text(run.current_step_index, run.total_steps),
            status: run.status.as_str().to_string(),
            created: run.created_at.map(|at| stamp(&at, now)),
            updated: run.updated_at.map(|at| stamp(&at, now)),
            run_id: run.run_id,
            pipeline_id: run.pipeline_id,
            pipeline_name: run.pipeline_name,
            execution_time_ms: run.execution_time_ms,
            memory_usage_mb: run.memory_usage_mb,
            error_message: run.error_message,
        }
    }

    /// Which JSON values the run page shows whole (`?full=`).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
    pub struct Full {
        context: bool,
        output: bool,
        history: bool,
        error: bool,
        metadata: bool,
        background_error: bool,
    }

    impl Full {
        /// `context`, `output`, `history`, `error`, `metadata`, `background_error`, `all`, or nothing (several with
        /// commas).
        ///
        /// # Errors
        /// [`AppError::BadRequest`] for `full` with any other value.
        pub fn parse(value: Option<&str>) -> Result<Full, AppError> {
            let mut full = Full::default();
            for part in value
                .unwrap_or("")
                .split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
            {
                match part {
                    "context" => full.context = true,
                    "output" => full.output = true,
                    "history" => full.history = true,
                    "error" => full.error = true,
                    "metadata" => full.metadata = true,
                    "background_error" => full.background_error = true,
                    "all" => {
                        full = Full {
                            context: true,
                            output: true,
                            history: true,
                            error: true,
                            metadata: true,
                            background_error: true,
                        }
                    }
                    other => {
                        return Err(AppError::bad_request(
                            "full",
                            format!(
                                "“{other}” is not a value of the run; use context, output, history, error, \
                                 metadata, background_error or all"
                            ),
                        ))
                    }
                }
            }
            Ok(full)
        }
    }

    /// A JSON value pretty-printed, cut after [`JSON_SHOWN_BYTES`] unless `whole` (at a line end when one is
    /// near, never inside a character).
    pub fn json_block(value: &Value, whole: bool) -> JsonBlock {
        let text = serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string());
        let items = value.as_array().map(Vec::len);
        let mut block = cut_block(text, if whole { usize::MAX } else { JSON_SHOWN_BYTES });
        block.items = items;
        block
    }

    /// Text cut after `max` bytes (at a line end when one is within the last KB, never inside a character).
    fn cut_block(mut text: String, max: usize) -> JsonBlock {
        let total_bytes = text.len();
        if total_bytes > max {
            let mut end = max;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            if let Some(line_end) = text[..end].rfind('\n').filter(|&at| at + 1024 >= end) {
                end = line_end;
            }
            text.truncate(end);
        }
        JsonBlock {
            cut: text.len() < total_bytes,
            text,
            total_bytes,
            items: None,
            too_large: false,
        }
    }

    /// An error message, cut after [`ERROR_SHOWN_BYTES`] unless `whole`.
    pub fn text_block(text: String, whole: bool) -> JsonBlock {
        cut_block(text, if whole { usize::MAX } else { ERROR_SHOWN_BYTES })
    }

    /// A stored JSON text as a value: text that is not JSON (old rows) is shown as a string, as the store does.
    fn parse_json(text: &str) -> Value {
        serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_string()))
    }

    /// The block of a JSON column from its start as stored: parsed and pretty-printed when the start is the whole
    /// value; otherwise laid out as it is (indented by `jsonformat`, which never builds a tree and takes a cut
    /// value as it comes), cut, with the stored size.
    pub fn head_block(head: &TextHead) -> JsonBlock {
        if head.is_whole() {
            return json_block(&parse_json(&head.head), false);
        }
        let laid_out = jsonformat::format(&head.head, jsonformat::Indentation::TwoSpace);
        cut_head(cut_block(laid_out, JSON_SHOWN_BYTES), head.total_bytes)
    }

    /// The block of an error message from its start as stored.
    fn error_head_block(head: TextHead) -> JsonBlock {
        let (whole, stored) = (head.is_whole(), head.total_bytes);
        let block = text_block(head.head, false);
        if whole {
            block
        } else {
            cut_head(block, stored)
        }
    }

    /// `block`, shown from the start of a stored value of `stored` bytes: cut, with the stored size, and too
    /// large for the page past [`FULL_SHOWN_BYTES`].
    fn cut_head(mut block: JsonBlock, stored: u64) -> JsonBlock {
        block.cut = true;
        block.total_bytes = usize::try_from(stored).unwrap_or(usize::MAX);
        block.too_large = stored > FULL_SHOWN_BYTES;
        block
    }

    /// A run for its page, from what [`Store::load_run_view`] read.
    pub fn detail(view: RunView, now: DateTime<Utc>) -> RunDetail {
        let RunView {
            summary: run,
            error_message,
            pipeline_context,
            last_step_output,
            step_history,
            metadata,
            background_error,
            is_background_task,
            parent_run_id,
            task_id,
        } = view;
        let background = (is_background_task
            || parent_run_id.is_some()
            || task_id.is_some()
            || background_error.is_some()
            || metadata.is_some())
        .then(|| BackgroundDetail {
            is_background_task,
            parent_run_id,
            task_id,
            error: background_error.map(error_head_block),
            metadata: metadata.as_ref().map(head_block),
        });
        RunDetail {
            step: step_text(run.current_step_index, run.total_steps),
            status: run.status.as_str().to_string(),
            created: run.created_at.map(|at| stamp(&at, now)),
            updated: run.updated_at.map(|at| stamp(&at, now)),
            // NULL reads as the store reads it: a NULL context is `null`, a NULL history `[]`.
            context: pipeline_context
                .as_ref()
                .map_or_else(|| json_block(&Value::Null, false), head_block),
            last_output: last_step_output.as_ref().map(head_block),
            steps: step_history.as_ref().map_or_else(
                || crate::steps::read_steps("[]", true),
                |h| crate::steps::read_steps(&h.head, h.is_whole()),
            ),
            history: step_history
                .as_ref()
                .map_or_else(|| json_block(&Value::Array(Vec::new()), false), head_block),
            error_message: error_message.map(error_head_block),
            background,
            run_id: run.run_id,
            pipeline_id: run.pipeline_id,
            pipeline_name: run.pipeline_name,
            pipeline_version: run.pipeline_version,
            current_step_index: run.current_step_index,
            total_steps: run.total_steps,
            execution_time_ms: run.execution_time_ms,
            memory_usage_mb: run.memory_usage_mb,
            read_at: now.to_rfc3339_opts(SecondsFormat::Secs, true),
        }
    }
}

#[cfg(all(test, feature = "ssr"))]
mod tests {
    use chrono::{TimeZone, Utc};
    use flowstate_store::Status;
    use serde_json::json;

    use super::ssr::*;
    use super::JSON_SHOWN_BYTES;
    use crate::error::AppError;

    fn pairs(search: &str) -> Vec<(String, String)> {
        parse_pairs(search)
    }

    #[track_caller]
    fn bad_param(search: &str) -> String {
        match parse_filter(&pairs(search)) {
            Err(AppError::BadRequest { param, .. }) => param,
            other => panic!("{search}: expected a 400, got {other:?}"),
        }
    }

    #[test]
    fn query_strings_are_decoded() {
        assert_eq!(
            pairs("?error=Connection+reset%20by%20peer&prefix=run%5F&x&e=%zz%4"),
            [
                ("error".to_string(), "Connection reset by peer".to_string()),
                ("prefix".into(), "run_".into()),
                ("x".into(), "".into()),
                ("e".into(), "%zz%4".into()),
            ]
        );
        assert_eq!(pairs("q=%C3%A9%25"), [("q".to_string(), "é%".to_string())]);
        assert!(pairs("").is_empty());
    }

    #[test]
    fn statuses_come_repeated_or_with_commas() {
        let (q, f) = parse_filter(&pairs(
            "status=failed&status=paused,Running&status=failed&status=",
        ))
        .unwrap();
        assert_eq!(q.statuses, [Status::Failed, Status::Paused, Status::Running]);
        assert_eq!(f.statuses, ["failed", "paused", "running"]);
        let (q, _) = parse_filter(&pairs("status=null&status=pending")).unwrap();
        assert_eq!(
            q.statuses,
            [Status::Other(None), Status::Other(Some("pending".into()))],
            "legacy names are checked against the database later"
        );
    }

    #[test]
    fn blank_fields_of_an_untouched_form_mean_no_filter() {
        let (q, f) = parse_filter(&pairs(
            "pipeline=&created_after=&created_before=&updated_after=&updated_before=&prefix=&error=+&limit=",
        ))
        .unwrap();
        assert_eq!(q, flowstate_store::ListQuery::default());
        assert!(!f.is_filtered());
        assert_eq!(f.href(None), "/runs");
    }

    #[test]
    fn dates_are_rfc3339_or_datetime_local_in_utc() {
        let (q, f) = parse_filter(&pairs(
            "created_after=2026-03-14T12:00&created_before=2026-03-15T01:02:03%2B01:00&updated_after=2026-03-14T12:00:00.5Z&updated_before=2026-03-16",
        ))
        .unwrap();
        assert_eq!(
            q.created_after,
            Some(Utc.with_ymd_and_hms(2026, 3, 14, 12, 0, 0).unwrap())
        );
        assert_eq!(
            q.created_before,
            Some(Utc.with_ymd_and_hms(2026, 3, 15, 0, 2, 3).unwrap())
        );
        assert_eq!(f.created_before.as_ref().unwrap().rfc3339, "2026-03-15T00:02:03Z");
        assert_eq!(f.created_before.as_ref().unwrap().input, "2026-03-15 00:02:03");
        assert_eq!(f.created_after.as_ref().unwrap().input, "2026-03-14 12:00");
        assert_eq!(
            f.updated_after.as_ref().unwrap().rfc3339,
            "2026-03-14T12:00:00.500Z"
        );
        assert_eq!(
            q.updated_before,
            Some(Utc.with_ymd_and_hms(2026, 3, 16, 0, 0, 0).unwrap())
        );
        // An unencoded `+` in the offset arrives as a space.
        let (q, _) = parse_filter(&pairs("created_after=2026-03-14T13:00:00+01:00")).unwrap();
        assert_eq!(
            q.created_after,
            Some(Utc.with_ymd_and_hms(2026, 3, 14, 12, 0, 0).unwrap())
        );
    }

    #[test]
    fn bad_values_name_their_parameter() {
        assert_eq!(bad_param("limit=0"), "limit");
        assert_eq!(bad_param("limit=1001"), "limit");
        assert_eq!(bad_param("limit=ten"), "limit");
        // `status=done` is checked against the database's stored names (see check_legacy_statuses); text no
        // status can be is refused here.
        assert_eq!(bad_param("status=a%07b"), "status");
        assert_eq!(bad_param(&format!("status={}", "x".repeat(65))), "status");
        assert_eq!(bad_param("created_after=yesterday"), "created_after");
        assert_eq!(bad_param("updated_after=2026-13-01T00:00"), "updated_after");
        assert_eq!(bad_param("background=maybe"), "background");
        assert_eq!(bad_param("background=2"), "background");
        assert_eq!(
            bad_param("created_after=2026-03-15T00:00&created_before=2026-03-14T00:00"),
            "created_before"
        );
    }

    #[test]
    fn links_keep_the_filters_and_drop_blanks() {
        let (_, f) = parse_filter(&pairs(
            "status=failed,paused&pipeline=sql-agent&error=reset+by&updated_after=2026-03-14T12:00:00Z&limit=20&cursor=abc&utm=x",
        ))
        .unwrap();
        assert_eq!(
            f.href(Some("c/1")),
            "/runs?status=failed&status=paused&pipeline=sql-agent&updated_after=2026-03-14T12%3A00%3A00Z\
             &error=reset%20by&limit=20&cursor=c%2F1"
        );
        assert!(f.is_filtered());
    }

    #[test]
    fn background_and_parent_filters_round_trip_through_links() {
        let (q, f) = parse_filter(&pairs("parent=run+%C3%A9%2F1&background=1")).unwrap();
        assert_eq!(q.parent_run_id.as_deref(), Some("run é/1"));
        assert_eq!(q.background, Some(true));
        assert!(f.is_filtered());
        assert_eq!(f.href(None), "/runs?parent=run%20%C3%A9%2F1&background=1");
        let (q, f) = parse_filter(&pairs("background=0&parent=")).unwrap();
        assert_eq!((q.background, q.parent_run_id), (Some(false), None));
        assert_eq!(f.href(None), "/runs?background=0");
        let (q, _) = parse_filter(&pairs("background=")).unwrap();
        assert_eq!(q.background, None, "a blank field is no filter");
    }

    #[test]
    fn full_names_the_values_to_show_whole() {
        assert!(Full::parse(None).is_ok());
        assert!(Full::parse(Some("context,history")).is_ok());
        assert!(Full::parse(Some("metadata,background_error")).is_ok());
        assert!(matches!(
            Full::parse(Some("everything")),
            Err(AppError::BadRequest { param, .. }) if param == "full"
        ));
    }

    #[test]
    fn large_json_is_cut_at_a_line_end_small_json_is_not() {
        let small = json!({"a": 1});
        let block = json_block(&small, false);
        assert!(!block.cut);
        assert_eq!(block.text, "{\n  \"a\": 1\n}");

        let big = json!({ "items": (0..5000).map(|i| format!("item é {i}")).collect::<Vec<_>>() });
        let cut = json_block(&big, false);
        assert!(cut.cut);
        assert!(cut.text.len() <= JSON_SHOWN_BYTES);
        assert!(cut.text.len() > JSON_SHOWN_BYTES - 1024);
        assert!(cut.total_bytes > 50_000);
        assert!(
            cut.text.ends_with(','),
            "cut at a line end: {:?}",
            &cut.text[cut.text.len() - 20..]
        );
        let whole = json_block(&big, true);
        assert!(!whole.cut);
        assert_eq!(whole.text.len(), whole.total_bytes);
        assert_eq!(json_block(&json!([1, 2, 3]), false).items, Some(3));
    }
}
