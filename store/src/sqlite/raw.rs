//! The store's hot statements on a connection's own SQLite handle, from a thread of the store's own.
//!
//! Through sqlx, every statement is handed to the connection's worker thread and its result handed back: two
//! thread wake-ups, 50–100 µs on 2 cores, which is more than SQLite itself takes to save a run or to look one up
//! by id. So the two statements that run thousands of times a second (a save's UPSERT, a lookup by id) are run by
//! a thread that owns its connection and has locked it ([`SqliteConnection::lock_handle`]: sqlx's worker stays
//! parked meanwhile), straight through SQLite's C API: one hand-off per call (the caller's task to that thread)
//! instead of two. sqlx still opens, configures and closes every connection, and runs every other statement
//! (the thread unlocks its connection to run one, see [`Owner::with_sqlx`]).
//!
//! Errors come back as [`sqlx::Error::Database`] with SQLite's extended result code, exactly like sqlx's own, so
//! the store maps them (busy, disk full, constraint) in one place.

use std::borrow::Cow;
use std::ffi::{c_char, c_int, CStr};
use std::ptr::NonNull;

use libsqlite3_sys as ffi;
use sqlx::error::{DatabaseError, ErrorKind};
use sqlx::sqlite::{LockedSqliteHandle, SqliteConnection};

/// An error SQLite returned for a statement run here: its extended result code and message.
#[derive(Debug)]
pub(crate) struct RawError {
    code: c_int,
    message: String,
}

impl RawError {
    /// The error the connection holds after `rc` was returned.
    ///
    /// # Safety
    /// `db` is an open connection this thread has locked.
    unsafe fn last(db: NonNull<ffi::sqlite3>, rc: c_int) -> RawError {
        let code = ffi::sqlite3_extended_errcode(db.as_ptr());
        // The connection's code belongs to the call that failed unless a later one succeeded: fall back on `rc`.
        let code = if code & 0xff == rc & 0xff { code } else { rc };
        let message = text(ffi::sqlite3_errmsg(db.as_ptr()))
            .map(str::to_string)
            .unwrap_or_else(|| text(ffi::sqlite3_errstr(rc)).unwrap_or("error").to_string());
        RawError { code, message }
    }
}

/// A C string SQLite owns, as text.
///
/// # Safety
/// `p` is null or a NUL-terminated string that outlives the result.
unsafe fn text<'a>(p: *const c_char) -> Option<&'a str> {
    if p.is_null() {
        None
    } else {
        CStr::from_ptr(p).to_str().ok()
    }
}

impl std::fmt::Display for RawError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "(code: {}) {}", self.code, self.message)
    }
}

impl std::error::Error for RawError {}

impl DatabaseError for RawError {
    fn message(&self) -> &str {
        &self.message
    }

    fn code(&self) -> Option<Cow<'_, str>> {
        Some(Cow::Owned(self.code.to_string()))
    }

    fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
        self
    }

    fn kind(&self) -> ErrorKind {
        match self.code {
            ffi::SQLITE_CONSTRAINT_UNIQUE | ffi::SQLITE_CONSTRAINT_PRIMARYKEY => ErrorKind::UniqueViolation,
            ffi::SQLITE_CONSTRAINT_FOREIGNKEY => ErrorKind::ForeignKeyViolation,
            ffi::SQLITE_CONSTRAINT_NOTNULL => ErrorKind::NotNullViolation,
            ffi::SQLITE_CONSTRAINT_CHECK => ErrorKind::CheckViolation,
            _ => ErrorKind::Other,
        }
    }
}

/// A parameter to bind. Text is bound without a copy: it must live until the statement is reset, which every
/// call below does before it returns.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Param<'a> {
    Null,
    Int(i64),
    Real(f64),
    Text(&'a str),
}

impl<'a> From<&'a str> for Param<'a> {
    fn from(s: &'a str) -> Self {
        Param::Text(s)
    }
}

impl<'a> From<Option<&'a str>> for Param<'a> {
    fn from(s: Option<&'a str>) -> Self {
        s.map_or(Param::Null, Param::Text)
    }
}

impl From<i64> for Param<'_> {
    fn from(v: i64) -> Self {
        Param::Int(v)
    }
}

impl From<Option<i64>> for Param<'_> {
    fn from(v: Option<i64>) -> Self {
        v.map_or(Param::Null, Param::Int)
    }
}

impl From<Option<f64>> for Param<'_> {
    fn from(v: Option<f64>) -> Self {
        v.map_or(Param::Null, Param::Real)
    }
}

/// A column of a row read here, owned so that it can be handed to the caller's task.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Column {
    Null,
    Int(i64),
    Real(f64),
    /// Text (a blob is read as text too); bytes that are not UTF-8 are replaced, never refused.
    Text(String),
}

/// A row read here.
pub(crate) type RawRow = Vec<Column>;

/// A connection owned by one thread, with the statements that thread prepared on it.
///
/// The statements are finalized before the connection is closed (sqlx's close refuses a handle with statements
/// left open), by [`Owner::close`] or, should the thread unwind, by `Drop`.
pub(crate) struct Owner {
    /// Before `conn`: fields are dropped in order, and the statements must be finalized before the connection's
    /// handle is closed.
    stmts: Statements,
    conn: SqliteConnection,
}

/// Prepared statements by slot (each user numbers its statements).
#[derive(Default)]
struct Statements(Vec<Option<NonNull<ffi::sqlite3_stmt>>>);

// The statements are only used by the thread that owns them, with its connection locked.
unsafe impl Send for Statements {}

impl Drop for Statements {
    fn drop(&mut self) {
        for stmt in self.0.drain(..).flatten() {
            // SAFETY: prepared here and not finalized yet; no other thread runs statements of this connection
            // unless asked to by its owner, which is this thread.
            unsafe {
                ffi::sqlite3_finalize(stmt.as_ptr());
            }
        }
    }
}

impl Owner {
    pub(crate) fn new(conn: SqliteConnection) -> Owner {
        Owner {
            conn,
            stmts: Statements::default(),
        }
    }

    /// Locks the connection for this thread's statements until the returned session is dropped.
    pub(crate) fn lock(&mut self) -> sqlx::Result<Session<'_>> {
        let locked = futures_executor::block_on(self.conn.lock_handle())?;
        Ok(Session {
            locked,
            stmts: &mut self.stmts,
        })
    }

    /// The connection, for a statement through sqlx. It is not locked: no session lives while it is borrowed.
    pub(crate) fn sqlx(&mut self) -> &mut SqliteConnection {
        &mut self.conn
    }

    /// Finalizes the statements, then closes the connection (which checkpoints the WAL when it is the file's last
    /// one).
    pub(crate) fn close(mut self) -> sqlx::Result<()> {
        // Finalized with the connection locked, so that sqlx's worker is parked meanwhile (should locking fail,
        // `Drop` finalizes them: the worker only acts when this thread asks it to).
        if let Ok(session) = self.lock() {
            drop(std::mem::take(session.stmts));
        }
        let Owner { conn, stmts } = self;
        drop(stmts);
        futures_executor::block_on(sqlx::Connection::close(conn))
    }
}

/// The connection, locked by its owning thread: statements run here on SQLite's C API.
pub(crate) struct Session<'o> {
    locked: LockedSqliteHandle<'o>,
    stmts: &'o mut Statements,
}

/// Resets a statement (ending its read transaction) and drops its bindings when the call using it returns, however
/// it returns.
struct Reset(NonNull<ffi::sqlite3_stmt>);

impl Drop for Reset {
    fn drop(&mut self) {
        // SAFETY: a live statement of the locked connection.
        unsafe {
            ffi::sqlite3_reset(self.0.as_ptr());
            ffi::sqlite3_clear_bindings(self.0.as_ptr());
        }
    }
}

impl Session<'_> {
    fn db(&mut self) -> NonNull<ffi::sqlite3> {
        self.locked.as_raw_handle()
    }

    /// The statement in `slot`, prepared from `sql` the first time (kept for the connection's life: SQLite
    /// prepares it again by itself should the schema change).
    fn statement(&mut self, slot: usize, sql: &str) -> sqlx::Result<NonNull<ffi::sqlite3_stmt>> {
        if let Some(Some(stmt)) = self.stmts.0.get(slot) {
            return Ok(*stmt);
        }
        let db = self.db();
        // SAFETY: `db` is locked by this thread.
        let stmt = unsafe { prepare(db, sql, ffi::SQLITE_PREPARE_PERSISTENT)? };
        if self.stmts.0.len() <= slot {
            self.stmts.0.resize(slot + 1, None);
        }
        self.stmts.0[slot] = Some(stmt);
        Ok(stmt)
    }

    /// Prepares (or reuses) the statement in `slot` and binds `params` to it, in order.
    fn bound<'p>(
        &mut self,
        slot: usize,
        sql: &str,
        params: impl IntoIterator<Item = Param<'p>>,
    ) -> sqlx::Result<Reset> {
        let stmt = self.statement(slot, sql)?;
        let reset = Reset(stmt);
        let db = self.db();
        // SAFETY: a live statement of the locked connection, reset (which drops the bindings) before the caller's
        // parameters go.
        unsafe { bind(db, stmt, params)? };
        Ok(reset)
    }

    /// Runs a statement that returns no rows; returns the rows it changed.
    pub(crate) fn execute<'p>(
        &mut self,
        slot: usize,
        sql: &str,
        params: impl IntoIterator<Item = Param<'p>>,
    ) -> sqlx::Result<u64> {
        let reset = self.bound(slot, sql, params)?;
        let db = self.db();
        // SAFETY: a bound statement of the locked connection.
        unsafe {
            loop {
                match ffi::sqlite3_step(reset.0.as_ptr()) {
                    ffi::SQLITE_DONE => break,
                    ffi::SQLITE_ROW => continue,
                    rc => return Err(RawError::last(db, rc).into()),
                }
            }
            Ok(ffi::sqlite3_changes64(db.as_ptr()).max(0) as u64)
        }
    }

    /// Runs a query and returns its rows, each with its first `columns` columns.
    pub(crate) fn query<'p>(
        &mut self,
        slot: usize,
        sql: &str,
        params: impl IntoIterator<Item = Param<'p>>,
        columns: usize,
    ) -> sqlx::Result<Vec<RawRow>> {
        let reset = self.bound(slot, sql, params)?;
        let db = self.db();
        // SAFETY: a bound statement of the locked connection.
        let rows = unsafe { collect(db, reset.0, columns) };
        drop(reset);
        rows
    }

    /// Runs SQL without parameters or rows (BEGIN, COMMIT, ROLLBACK).
    pub(crate) fn batch(&mut self, sql: &CStr) -> sqlx::Result<()> {
        let db = self.db();
        // SAFETY: the locked connection; no callback.
        let rc = unsafe {
            ffi::sqlite3_exec(
                db.as_ptr(),
                sql.as_ptr(),
                None,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            )
        };
        if rc == ffi::SQLITE_OK {
            Ok(())
        } else {
            // SAFETY: as above.
            Err(unsafe { RawError::last(db, rc) }.into())
        }
    }

    /// True when no transaction is open.
    pub(crate) fn autocommit(&mut self) -> bool {
        let db = self.db();
        // SAFETY: the locked connection.
        unsafe { ffi::sqlite3_get_autocommit(db.as_ptr()) != 0 }
    }

    /// Sets how long SQLite waits for another connection's lock.
    pub(crate) fn set_busy_timeout(&mut self, ms: i32) -> sqlx::Result<()> {
        let db = self.db();
        // SAFETY: the locked connection.
        let rc = unsafe { ffi::sqlite3_busy_timeout(db.as_ptr(), ms) };
        if rc == ffi::SQLITE_OK {
            Ok(())
        } else {
            // SAFETY: as above.
            Err(unsafe { RawError::last(db, rc) }.into())
        }
    }
}

/// Prepares `sql` on `db` with the `flags` of `sqlite3_prepare_v3`.
///
/// # Safety
/// `db` is an open connection this thread has locked.
unsafe fn prepare(
    db: NonNull<ffi::sqlite3>,
    sql: &str,
    flags: u32,
) -> sqlx::Result<NonNull<ffi::sqlite3_stmt>> {
    let len = c_int::try_from(sql.len()).map_err(|_| sqlx::Error::Protocol("statement too long".into()))?;
    let mut stmt = std::ptr::null_mut();
    // `sql` is valid for `len` bytes.
    let rc = ffi::sqlite3_prepare_v3(
        db.as_ptr(),
        sql.as_ptr().cast(),
        len,
        flags,
        &mut stmt,
        std::ptr::null_mut(),
    );
    if rc != ffi::SQLITE_OK {
        return Err(RawError::last(db, rc).into());
    }
    NonNull::new(stmt).ok_or_else(|| sqlx::Error::Protocol("empty statement".into()))
}

/// Binds `params` to `stmt`, in order. Text is bound without a copy (`SQLITE_STATIC`).
///
/// # Safety
/// `stmt` is a live statement of `db`, which this thread has locked; the text of `params` outlives the
/// statement's use (it is reset or finalized before the parameters go).
unsafe fn bind<'p>(
    db: NonNull<ffi::sqlite3>,
    stmt: NonNull<ffi::sqlite3_stmt>,
    params: impl IntoIterator<Item = Param<'p>>,
) -> sqlx::Result<()> {
    for (i, param) in params.into_iter().enumerate() {
        let i = c_int::try_from(i + 1).map_err(|_| sqlx::Error::Protocol("too many parameters".into()))?;
        let s = stmt.as_ptr();
        let rc = match param {
            Param::Null => ffi::sqlite3_bind_null(s, i),
            Param::Int(v) => ffi::sqlite3_bind_int64(s, i, v),
            Param::Real(v) => ffi::sqlite3_bind_double(s, i, v),
            Param::Text(t) => ffi::sqlite3_bind_text64(
                s,
                i,
                t.as_ptr().cast(),
                t.len() as u64,
                ffi::SQLITE_STATIC(),
                ffi::SQLITE_UTF8 as u8,
            ),
        };
        if rc != ffi::SQLITE_OK {
            return Err(RawError::last(db, rc).into());
        }
    }
    Ok(())
}

/// Steps a bound statement to its end and returns its rows, each with its first `columns` columns.
///
/// # Safety
/// `stmt` is a bound statement of `db`, which this thread has locked.
unsafe fn collect(
    db: NonNull<ffi::sqlite3>,
    stmt: NonNull<ffi::sqlite3_stmt>,
    columns: usize,
) -> sqlx::Result<Vec<RawRow>> {
    let s = stmt.as_ptr();
    let mut rows = Vec::new();
    // Column pointers are read before the next step.
    let columns = columns.min(ffi::sqlite3_column_count(s).max(0) as usize);
    loop {
        match ffi::sqlite3_step(s) {
            ffi::SQLITE_DONE => break,
            ffi::SQLITE_ROW => {
                let row = (0..columns as c_int)
                    .map(|i| match ffi::sqlite3_column_type(s, i) {
                        ffi::SQLITE_INTEGER => Column::Int(ffi::sqlite3_column_int64(s, i)),
                        ffi::SQLITE_FLOAT => Column::Real(ffi::sqlite3_column_double(s, i)),
                        ffi::SQLITE_NULL => Column::Null,
                        _ => {
                            let p = ffi::sqlite3_column_text(s, i);
                            let n = ffi::sqlite3_column_bytes(s, i).max(0) as usize;
                            if p.is_null() {
                                Column::Text(String::new())
                            } else {
                                let bytes = std::slice::from_raw_parts(p, n);
                                Column::Text(match std::str::from_utf8(bytes) {
                                    Ok(text) => text.to_owned(),
                                    Err(_) => String::from_utf8_lossy(bytes).into_owned(),
                                })
                            }
                        }
                    })
                    .collect();
                rows.push(row);
            }
            rc => return Err(RawError::last(db, rc).into()),
        }
    }
    Ok(rows)
}

/// A row of a statement being stepped by [`query_map`]: its columns borrowed until the next step.
pub(crate) struct RowRef<'s> {
    stmt: NonNull<ffi::sqlite3_stmt>,
    _step: std::marker::PhantomData<&'s ()>,
}

impl RowRef<'_> {
    /// Column `i` as text (a number as its text; bytes that are not UTF-8 replaced), `None` when NULL.
    pub(crate) fn text(&self, i: c_int) -> Option<Cow<'_, str>> {
        // SAFETY: the statement stands on a row until the next step, which the borrow of `self` outlasts not.
        unsafe {
            let s = self.stmt.as_ptr();
            if ffi::sqlite3_column_type(s, i) == ffi::SQLITE_NULL {
                return None;
            }
            let p = ffi::sqlite3_column_text(s, i);
            let n = ffi::sqlite3_column_bytes(s, i).max(0) as usize;
            if p.is_null() {
                return Some(Cow::Borrowed(""));
            }
            Some(String::from_utf8_lossy(std::slice::from_raw_parts(p, n)))
        }
    }

    /// Column `i` as an integer, `None` when it holds anything else.
    pub(crate) fn int(&self, i: c_int) -> Option<i64> {
        // SAFETY: as in `text`.
        unsafe {
            let s = self.stmt.as_ptr();
            (ffi::sqlite3_column_type(s, i) == ffi::SQLITE_INTEGER).then(|| ffi::sqlite3_column_int64(s, i))
        }
    }
}

/// Texts read by [`query_map`] that repeat (a pipeline key, an error message), each copied once and shared.
#[derive(Default)]
pub(crate) struct Shared(std::collections::HashMap<String, std::sync::Arc<str>>);

impl Shared {
    /// `text`, shared with every earlier equal text.
    pub(crate) fn get(&mut self, text: &str) -> std::sync::Arc<str> {
        if let Some(s) = self.0.get(text) {
            return s.clone();
        }
        let s: std::sync::Arc<str> = std::sync::Arc::from(text);
        self.0.insert(text.to_string(), s.clone());
        s
    }
}

/// Runs a query once on a connection locked by the calling task (prepared, run and finalized here, inside
/// whatever transaction the connection has open), mapping each row with `f` while it is borrowed: for a read of
/// thousands of small rows, which through sqlx would cost a hand-over per row (or one large JSON document built,
/// copied and parsed), and here costs no allocation but what `f` makes.
pub(crate) fn query_map<'p, T>(
    locked: &mut LockedSqliteHandle<'_>,
    sql: &str,
    params: impl IntoIterator<Item = Param<'p>>,
    mut f: impl FnMut(&RowRef<'_>) -> T,
) -> sqlx::Result<Vec<T>> {
    /// Finalizes the statement however the call returns.
    struct Finalize(NonNull<ffi::sqlite3_stmt>);
    impl Drop for Finalize {
        fn drop(&mut self) {
            // SAFETY: prepared below, finalized once, here.
            unsafe {
                ffi::sqlite3_finalize(self.0.as_ptr());
            }
        }
    }
    let db = locked.as_raw_handle();
    // SAFETY: `db` is locked by this task.
    let stmt = unsafe { prepare(db, sql, 0)? };
    let finalize = Finalize(stmt);
    // SAFETY: a live statement of the locked connection, finalized (by `finalize`) before the parameters go.
    unsafe { bind(db, stmt, params)? };
    let mut out = Vec::new();
    loop {
        // SAFETY: a bound statement of the locked connection.
        match unsafe { ffi::sqlite3_step(stmt.as_ptr()) } {
            ffi::SQLITE_DONE => break,
            ffi::SQLITE_ROW => out.push(f(&RowRef {
                stmt,
                _step: std::marker::PhantomData,
            })),
            // SAFETY: as above.
            rc => return Err(unsafe { RawError::last(db, rc) }.into()),
        }
    }
    drop(finalize);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode};
    use sqlx::{ConnectOptions, Connection};

    fn open(path: &std::path::Path) -> SqliteConnection {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal);
        futures_executor::block_on(options.connect()).unwrap()
    }

    fn setup() -> (tempfile::TempDir, std::path::PathBuf, Owner) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("raw.db");
        let mut conn = open(&path);
        futures_executor::block_on(
            sqlx::query("CREATE TABLE t (id TEXT PRIMARY KEY, n INTEGER, x REAL, s TEXT)").execute(&mut conn),
        )
        .unwrap();
        (dir, path, Owner::new(conn))
    }

    #[test]
    fn parameters_and_columns_keep_their_types() {
        let (_dir, _path, mut owner) = setup();
        let mut session = owner.lock().unwrap();
        let insert = "INSERT INTO t VALUES (?, ?, ?, ?)";
        let params = [Param::Text("a"), Param::Int(-7), Param::Real(2.5), Param::Null];
        assert_eq!(session.execute(0, insert, params).unwrap(), 1);
        let params = [
            Param::Text("b"),
            Param::Int(i64::MAX),
            Param::Real(-0.125),
            Param::Text("é\u{1F600}"),
        ];
        assert_eq!(session.execute(0, insert, params).unwrap(), 1);
        let rows = session
            .query(1, "SELECT id, n, x, s FROM t ORDER BY id", [], usize::MAX)
            .unwrap();
        assert_eq!(
            rows,
            vec![
                vec![
                    Column::Text("a".into()),
                    Column::Int(-7),
                    Column::Real(2.5),
                    Column::Null
                ],
                vec![
                    Column::Text("b".into()),
                    Column::Int(i64::MAX),
                    Column::Real(-0.125),
                    Column::Text("é\u{1F600}".into())
                ],
            ]
        );
        // Fewer columns when asked for fewer.
        let rows = session
            .query(1, "SELECT id, n, x, s FROM t ORDER BY id", [], 1)
            .unwrap();
        assert_eq!(rows[0], vec![Column::Text("a".into())]);
        drop(session);
        owner.close().unwrap();
    }

    #[test]
    fn text_that_is_not_utf8_is_read_with_replacements() {
        let (_dir, _path, mut owner) = setup();
        let mut session = owner.lock().unwrap();
        let rows = session
            .query(0, "SELECT CAST(X'61FF62' AS TEXT)", [], usize::MAX)
            .unwrap();
        assert_eq!(rows, vec![vec![Column::Text("a\u{FFFD}b".into())]]);
    }

    #[test]
    fn errors_carry_sqlites_extended_code_like_sqlxs_own() {
        let (_dir, _path, mut owner) = setup();
        let mut session = owner.lock().unwrap();
        let insert = "INSERT INTO t (id) VALUES (?)";
        session.execute(0, insert, [Param::Text("a")]).unwrap();
        let err = session.execute(0, insert, [Param::Text("a")]).unwrap_err();
        let sqlx::Error::Database(db) = &err else {
            panic!("not a database error: {err:?}")
        };
        assert_eq!(db.code().as_deref(), Some("1555"), "{err}");
        assert!(db.is_unique_violation(), "{err}");
        assert_eq!(crate::sqlite::errors::sqlite_code(&err), Some(19));
        assert!(db.message().contains("UNIQUE constraint failed: t.id"), "{err}");
        // The statement was reset: the connection goes on working, with the same prepared statement.
        assert_eq!(session.execute(0, insert, [Param::Text("b")]).unwrap(), 1);
        // A statement SQLite cannot prepare.
        let err = session
            .execute(1, "INSERT INTO missing VALUES (1)", [])
            .unwrap_err();
        assert_eq!(crate::sqlite::errors::sqlite_code(&err), Some(1), "{err}");
        assert!(err.to_string().contains("no such table: missing"), "{err}");
    }

    /// A query's read transaction ends with the call, so it never keeps a checkpoint from emptying the WAL.
    #[test]
    fn a_query_leaves_no_read_transaction_open() {
        let (_dir, path, mut owner) = setup();
        let mut session = owner.lock().unwrap();
        session
            .execute(0, "INSERT INTO t (id) VALUES (?)", [Param::Text("a")])
            .unwrap();
        session
            .execute(0, "INSERT INTO t (id) VALUES (?)", [Param::Text("b")])
            .unwrap();
        let rows = session.query(1, "SELECT id FROM t", [], 1).unwrap();
        assert_eq!(rows.len(), 2);
        assert!(session.autocommit());
        let mut other = open(&path);
        futures_executor::block_on(sqlx::query("INSERT INTO t (id) VALUES ('c')").execute(&mut other))
            .unwrap();
        let (busy, _, _): (i64, i64, i64) = futures_executor::block_on(
            sqlx::query_as("PRAGMA wal_checkpoint(TRUNCATE)").fetch_one(&mut other),
        )
        .unwrap();
        assert_eq!(busy, 0, "a reader still holds a snapshot");
    }

    /// The owner's statements are finalized before sqlx closes the connection (which panics on a handle with
    /// statements left open), and the connection can still run sqlx statements between sessions.
    #[test]
    fn sqlx_and_raw_statements_take_turns_and_the_connection_closes() {
        let (_dir, path, mut owner) = setup();
        let mut session = owner.lock().unwrap();
        session
            .execute(0, "INSERT INTO t (id) VALUES (?)", [Param::Text("a")])
            .unwrap();
        drop(session);
        let n: i64 =
            futures_executor::block_on(sqlx::query_scalar("SELECT count(*) FROM t").fetch_one(owner.sqlx()))
                .unwrap();
        assert_eq!(n, 1);
        let mut session = owner.lock().unwrap();
        let rows = session.query(1, "SELECT count(*) FROM t", [], 1).unwrap();
        assert_eq!(rows, vec![vec![Column::Int(1)]]);
        drop(session);
        owner.close().unwrap();
        // Closed: the WAL was checkpointed and removed by the last connection.
        assert!(!path.with_extension("db-wal").exists());
        let again = open(&path);
        futures_executor::block_on(again.close()).unwrap();
    }

    /// An owner dropped without [`Owner::close`] (its thread unwinding, say) still finalizes its statements before
    /// the connection is closed: otherwise SQLite refuses to close it, and the file stays open with its WAL.
    #[test]
    fn an_owner_dropped_without_close_still_closes_its_connection() {
        let (_dir, path, mut owner) = setup();
        let mut session = owner.lock().unwrap();
        session
            .execute(0, "INSERT INTO t (id) VALUES (?)", [Param::Text("a")])
            .unwrap();
        session.query(1, "SELECT id FROM t", [], 1).unwrap();
        drop(session);
        let wal = path.with_extension("db-wal");
        assert!(wal.exists());
        drop(owner);
        // sqlx closes the handle on its worker thread, after the drop returns.
        let began = std::time::Instant::now();
        while wal.exists() && began.elapsed() < std::time::Duration::from_secs(10) {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(!wal.exists(), "the connection was not closed");
    }
}
