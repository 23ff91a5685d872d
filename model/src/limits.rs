//! Limits that more than one part of flowstate checks (the store refuses, the CLI and the pages say so first).

/// The longest run id a save accepts, in bytes.
pub const MAX_RUN_ID_BYTES: usize = 512;
/// The longest run id a lookup or a delete accepts, in bytes: longer than [`MAX_RUN_ID_BYTES`], since other
/// writers (flujo) keep no limit, and such runs must be found and deleted too.
pub const MAX_LOOKUP_ID_BYTES: usize = 64 * 1024;
/// The longest pipeline id, name or version accepted, in bytes.
pub const MAX_NAME_BYTES: usize = 512;
/// The largest serialized JSON value accepted per column, in bytes (16 MiB).
pub const MAX_JSON_BYTES: usize = 16 * 1024 * 1024;
/// The deepest nesting of arrays and objects accepted in a JSON value (`[]` is depth 1). serde_json, which reads
/// the value back, refuses more than 127 levels, and flujo's Python readers have limits of their own, so a deeper
/// value could be saved but never loaded again.
pub const MAX_JSON_DEPTH: usize = 100;
/// The longest error message accepted, in bytes (1 MiB).
pub const MAX_ERROR_BYTES: usize = 1024 * 1024;
/// The largest age a cleanup accepts, in days (about a hundred years).
pub const MAX_CLEANUP_DAYS: u32 = 36_600;
/// Runs per page when none is asked for.
pub const DEFAULT_PAGE_SIZE: u32 = 50;
/// The largest page of runs.
pub const MAX_PAGE_SIZE: u32 = 1000;
