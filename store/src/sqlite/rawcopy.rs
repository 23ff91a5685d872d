//! A raw copy from one SQLite file into another during a bulk load ([`crate::bulk`]): the source attached read-only
//! to the destination's write connection, and each range of runs moved by one `INSERT ... SELECT` inside SQLite,
//! without decoding a row into a [`crate::WorkflowState`] and writing its JSON out again.
//!
//! A row goes this way only when [`rawcheck::row_is_plain`] (a SQL function written in Rust, registered on the
//! connection) says the per-run path would store it with the same values; the others of the range, in the same
//! transaction, are read as the store's reader reads them, validated as a save ([`crate::validate`]) and written
//! by the saves' upsert, or refused with the save's reason. The copy's progress note is updated in that
//! transaction too, so a resumed copy starts exactly after the last range committed.

use std::ffi::{c_int, CStr};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use chrono::{DateTime, Utc};
use libsqlite3_sys as ffi;
use percent_encoding::{percent_encode, AsciiSet, NON_ALPHANUMERIC};
use sqlx::{Connection, SqliteConnection};

use super::rawcheck::{self, Val, ROW_VALUES};
use super::row::{self, decode_state, EncodedRow, UPSERT_COLUMNS};
use super::schema::{COLUMNS, EXTRA_COLUMNS};
use super::writer::NOTE_SQL;
use crate::bulk::{CopiedRange, RangeNote};
use crate::time;
use crate::validate::ValidState;

/// The schema name the source is attached under.
pub(crate) const SOURCE: &str = "flowstate_src";

/// Bytes of the files SQLite may map into memory while copying (the source's pages are read once each; mapped,
/// they are read without a system call).
const MMAP_BYTES: i64 = 1 << 34;

/// The source's `file:` URI, read-only. Every byte of the path but letters, digits and `/-_.~` is
/// percent-encoded, so a `?`, `#` or `%` in a file name stays part of the name.
pub(crate) fn source_uri(path: &Path) -> String {
    const KEEP: &AsciiSet = &NON_ALPHANUMERIC
        .remove(b'/')
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~');
    let absolute = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|d| d.join(path))
            .unwrap_or_else(|_| path.to_path_buf())
    };
    format!(
        "file:{}?mode=ro",
        percent_encode(absolute.as_os_str().as_bytes(), KEEP)
    )
}

/// The source's `workflow_state` as the store's reader reads it: `extras` when it has the five columns of
/// [`crate::RunExtras`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Source {
    extras: bool,
}

/// Registers the functions, attaches the source and checks it can be copied raw. `None` (and detached again) when
/// it cannot: a table without flujo's fifteen columns, or a run id that is not UTF-8 text (the ranges are bound
/// as text).
pub(crate) async fn attach(conn: &mut SqliteConnection, path: &Path) -> sqlx::Result<Option<Source>> {
    register(conn).await?;
    let synchronous: i64 = sqlx::query_scalar("PRAGMA main.synchronous")
        .fetch_one(&mut *conn)
        .await?;
    sqlx::query(&format!("ATTACH DATABASE ?1 AS {SOURCE}"))
        .bind(source_uri(path))
        .execute(&mut *conn)
        .await?;
    for pragma in [
        format!("PRAGMA {SOURCE}.mmap_size = {MMAP_BYTES}"),
        format!("PRAGMA main.mmap_size = {MMAP_BYTES}"),
        // Commits not synced: a killed copy loses nothing (the system has every write), and the copy syncs once
        // it is done ([`detach`]); an OS crash or power loss during the copy may damage the destination.
        "PRAGMA main.synchronous = OFF".to_string(),
    ] {
        sqlx::query(&pragma).execute(&mut *conn).await?;
    }
    let columns: Vec<String> = sqlx::query_scalar(&format!(
        "SELECT name FROM pragma_table_info('workflow_state', '{SOURCE}')"
    ))
    .fetch_all(&mut *conn)
    .await?;
    let has = |name: &str| columns.iter().any(|c| c == name);
    let readable = COLUMNS.iter().all(|(c, _)| has(c));
    let extras = EXTRA_COLUMNS.iter().all(|(c, _)| has(c));
    let odd_ids: i64 = if readable {
        sqlx::query_scalar(&format!(
            "SELECT count(*) FROM {SOURCE}.workflow_state WHERE NOT flowstate_copy_text(run_id)"
        ))
        .fetch_one(&mut *conn)
        .await?
    } else {
        0
    };
    if !readable || odd_ids > 0 {
        tracing::debug!(readable, odd_ids, "the source cannot be copied raw");
        detach(conn, &synchronous.to_string()).await?;
        return Ok(None);
    }
    Ok(Some(Source { extras }))
}

/// Detaches the source (nothing when it is not attached), maps the destination's pages no more, syncs its
/// commits again (`synchronous`: the level the store opened it with) and checkpoints the copy into the file.
pub(crate) async fn detach(conn: &mut SqliteConnection, synchronous: &str) -> sqlx::Result<()> {
    let attached: Option<String> =
        sqlx::query_scalar("SELECT name FROM pragma_database_list WHERE name = ?1")
            .bind(SOURCE)
            .fetch_optional(&mut *conn)
            .await?;
    if attached.is_some() {
        sqlx::query(&format!("DETACH DATABASE {SOURCE}"))
            .execute(&mut *conn)
            .await?;
    }
    sqlx::query("PRAGMA main.mmap_size = 0")
        .execute(&mut *conn)
        .await?;
    sqlx::query(&format!("PRAGMA main.synchronous = {synchronous}"))
        .execute(&mut *conn)
        .await?;
    // What was copied, synced: the checkpoint writes the WAL into the file and syncs both.
    sqlx::query("PRAGMA main.wal_checkpoint(PASSIVE)")
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Copies the runs after `after` (from the first when `None`), at most `limit` of them, in one `BEGIN IMMEDIATE`
/// transaction with `note`'s progress note: plain rows by `INSERT ... SELECT`, the others as saves are written
/// (or refused). Returns what the range held; `read` 0 when the source has no run after `after`.
pub(crate) async fn copy_range(
    conn: &mut SqliteConnection,
    source: Source,
    after: Option<String>,
    limit: u32,
    now: DateTime<Utc>,
    note: Option<RangeNote>,
) -> sqlx::Result<CopiedRange> {
    let lower = if after.is_some() {
        "run_id > ?1"
    } else {
        "?1 IS NULL"
    };
    let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
    let bound: Option<String> = sqlx::query_scalar(&format!(
        "SELECT run_id FROM {SOURCE}.workflow_state WHERE {lower} ORDER BY run_id LIMIT 1 OFFSET ?2"
    ))
    .bind(after.as_deref())
    .bind(i64::from(limit.max(1)) - 1)
    .fetch_optional(&mut *tx)
    .await?;
    let bound = match bound {
        Some(b) => Some(b),
        None => {
            sqlx::query_scalar::<_, Option<String>>(&format!(
                "SELECT max(run_id) FROM {SOURCE}.workflow_state WHERE {lower}"
            ))
            .bind(after.as_deref())
            .fetch_one(&mut *tx)
            .await?
        }
    };
    let Some(bound) = bound else {
        tx.commit().await?;
        return Ok(CopiedRange::default());
    };
    let range = format!("{lower} AND run_id <= ?2");
    let columns = row::whole_columns(source.extras);
    let now_text = time::format_timestamp(&now);
    // The reader's values of a row, by position in `whole_columns` (1-based, as `SELECT` results are not named).
    let insert = format!(
        "INSERT INTO main.workflow_state ({UPSERT_COLUMNS}) \
         SELECT c1, c2, c3, c4, c6, c14, c15, COALESCE(c16, '[]'), c5, \
                COALESCE(flowstate_copy_instant(c8), ?3), COALESCE(flowstate_copy_instant(c9), ?3), \
                c7, c10, c11, c12, c17, c18, c19, c20, c21 \
         FROM (SELECT {aliased} FROM {SOURCE}.workflow_state WHERE {range}) \
         WHERE flowstate_copy_plain({names})",
        aliased = aliased(&columns),
        names = (1..=ROW_VALUES)
            .map(|i| format!("c{i}"))
            .collect::<Vec<_>>()
            .join(", "),
    );
    let plain = sqlx::query(&insert)
        .bind(after.as_deref())
        .bind(&bound)
        .bind(&now_text)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    // The others: as the store's reader reads them, then as a save.
    let apart = sqlx::query(&format!(
        "SELECT {columns} FROM {SOURCE}.workflow_state WHERE {range} AND NOT flowstate_copy_plain({columns}) \
         ORDER BY run_id"
    ))
    .bind(after.as_deref())
    .bind(&bound)
    .fetch_all(&mut *tx)
    .await?;
    let mut refused = Vec::new();
    let upsert = row::upsert_sql(1);
    for r in &apart {
        let state = decode_state(r);
        let id = state.run_id.clone();
        match ValidState::new_owned(state) {
            Ok(valid) => {
                let encoded = EncodedRow::from_valid(valid, now);
                row::bind_params(sqlx::query(&upsert), &encoded)
                    .execute(&mut *tx)
                    .await?;
            }
            Err(e) => refused.push((id, e.to_string())),
        }
    }
    let copied = CopiedRange {
        read: plain + apart.len() as u64,
        plain,
        last_run_id: Some(bound),
        refused,
    };
    if let Some(note) = note {
        let n = note(&copied);
        sqlx::query(NOTE_SQL)
            .bind(&now_text)
            .bind(n.detail.to_string())
            .bind(n.matched)
            .bind(n.affected)
            .bind(n.id)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(copied)
}

/// `expr1 AS c1, expr2 AS c2, ...` of a column list whose expressions hold commas only inside parentheses.
fn aliased(columns: &str) -> String {
    let mut out = Vec::new();
    let (mut depth, mut start) = (0i32, 0usize);
    let bytes = columns.as_bytes();
    let mut in_quote = false;
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'\'' => in_quote = !in_quote,
            b'(' if !in_quote => depth += 1,
            b')' if !in_quote => depth -= 1,
            b',' if !in_quote && depth == 0 => {
                out.push(columns[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(columns[start..].trim());
    out.iter()
        .enumerate()
        .map(|(i, e)| format!("{e} AS c{}", i + 1))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Registers `flowstate_copy_plain(21 values)`, `flowstate_copy_instant(text)` and `flowstate_copy_text(value)`
/// on the connection.
async fn register(conn: &mut SqliteConnection) -> sqlx::Result<()> {
    let mut handle = conn.lock_handle().await?;
    let db = handle.as_raw_handle();
    let functions: [(&CStr, c_int, Func); 3] = [
        (c"flowstate_copy_plain", ROW_VALUES as c_int, plain_fn),
        (c"flowstate_copy_instant", 1, instant_fn),
        (c"flowstate_copy_text", 1, text_fn),
    ];
    for (name, args, f) in functions {
        // SAFETY: the connection is locked by this task; the functions read only their arguments.
        let rc = unsafe {
            ffi::sqlite3_create_function_v2(
                db.as_ptr(),
                name.as_ptr(),
                args,
                ffi::SQLITE_UTF8 | ffi::SQLITE_DETERMINISTIC | ffi::SQLITE_INNOCUOUS,
                std::ptr::null_mut(),
                Some(f),
                None,
                None,
                None,
            )
        };
        if rc != ffi::SQLITE_OK {
            return Err(sqlx::Error::Protocol(format!(
                "registering {} failed with SQLite code {rc}",
                name.to_string_lossy()
            )));
        }
    }
    Ok(())
}

type Func = unsafe extern "C" fn(*mut ffi::sqlite3_context, c_int, *mut *mut ffi::sqlite3_value);

/// Calls `f` with the arguments; a panic is reported as a SQL error, never unwound into SQLite.
///
/// # Safety
/// `argv` holds `argc` values of the call being made on `ctx`.
unsafe fn call(
    ctx: *mut ffi::sqlite3_context,
    argc: c_int,
    argv: *mut *mut ffi::sqlite3_value,
    f: impl FnOnce(&[Val<'_>]) + std::panic::UnwindSafe,
) {
    let mut values = Vec::with_capacity(ROW_VALUES);
    rawcheck::args(argc, argv, &mut values);
    if std::panic::catch_unwind(move || f(&values)).is_err() {
        ffi::sqlite3_result_error(ctx, c"a flowstate copy check failed".as_ptr(), -1);
    }
}

unsafe extern "C" fn plain_fn(
    ctx: *mut ffi::sqlite3_context,
    argc: c_int,
    argv: *mut *mut ffi::sqlite3_value,
) {
    let out = ctx as usize;
    call(ctx, argc, argv, move |v| {
        let ok = rawcheck::row_is_plain(v);
        // SAFETY: the context of this call.
        unsafe { ffi::sqlite3_result_int(out as *mut ffi::sqlite3_context, c_int::from(ok)) };
    });
}

unsafe extern "C" fn instant_fn(
    ctx: *mut ffi::sqlite3_context,
    argc: c_int,
    argv: *mut *mut ffi::sqlite3_value,
) {
    let out = ctx as usize;
    call(ctx, argc, argv, move |v| {
        let ctx = out as *mut ffi::sqlite3_context;
        // SAFETY: the context of this call; SQLite copies the text (SQLITE_TRANSIENT) before `text` is dropped.
        unsafe {
            if let Some(Val::Text(b)) = v.first() {
                if rawcheck::is_canonical_instant(b) {
                    // Already the save's spelling: as it is.
                    ffi::sqlite3_result_text64(
                        ctx,
                        b.as_ptr().cast(),
                        b.len() as u64,
                        ffi::SQLITE_TRANSIENT(),
                        ffi::SQLITE_UTF8 as u8,
                    );
                    return;
                }
            }
            match v.first().and_then(|v| rawcheck::instant_text(*v)) {
                Some(text) => ffi::sqlite3_result_text64(
                    ctx,
                    text.as_ptr().cast(),
                    text.len() as u64,
                    ffi::SQLITE_TRANSIENT(),
                    ffi::SQLITE_UTF8 as u8,
                ),
                None => ffi::sqlite3_result_null(ctx),
            }
        }
    });
}

unsafe extern "C" fn text_fn(
    ctx: *mut ffi::sqlite3_context,
    argc: c_int,
    argv: *mut *mut ffi::sqlite3_value,
) {
    let out = ctx as usize;
    call(ctx, argc, argv, move |v| {
        let ok = matches!(v.first(), Some(Val::Text(b)) if std::str::from_utf8(b).is_ok());
        // SAFETY: the context of this call.
        unsafe { ffi::sqlite3_result_int(out as *mut ffi::sqlite3_context, c_int::from(ok)) };
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn odd_paths_become_uris_that_name_the_same_file() {
        assert_eq!(
            source_uri(Path::new("/tmp/a b/ru?n#s%.db")),
            "file:/tmp/a%20b/ru%3Fn%23s%25.db?mode=ro"
        );
        assert!(source_uri(Path::new("rel.db")).starts_with("file:/"));
    }

    #[test]
    fn every_column_of_the_reader_gets_a_name() {
        let columns = row::whole_columns(true);
        let named = aliased(&columns);
        assert!(named.ends_with(&format!("AS c{ROW_VALUES}")), "{named}");
        assert!(!named.contains(&format!("AS c{}", ROW_VALUES + 1)));
        assert_eq!(
            aliased(&row::whole_columns(false)).matches(" AS c").count(),
            ROW_VALUES
        );
    }
}
