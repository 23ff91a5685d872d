//! Bulk loads on PostgreSQL ([`crate::bulk`]): `COPY ... FROM STDIN` into the bare table, then the indexes and the
//! counters once.
//!
//! [`PgStore::begin_bulk`] drops the counters' triggers and every index but the primary key (flowstate's and
//! flujo's: flujo's GIN index on `pipeline_context` is the dearest of all to keep up row by row), under
//! flowstate's migration lock, and leaves [`BULK_LOAD_KEY`] in `flowstate_meta` so that whichever migration comes
//! next (the load's own [`PgStore::finish_bulk`], or any writable open should the loader die) creates flujo's
//! indexes again as well as flowstate's. Each batch is one `COPY` in text format plus its progress note, in one
//! transaction with `synchronous_commit` off (a batch lost in a server crash lost its note with it, and is
//! written again). The indexes are built with a larger `maintenance_work_mem` for the session.

use chrono::{DateTime, Utc};
use sqlx::Connection;

use super::schema::{self, BULK_LOAD_KEY, FLUJO_INDEXES, MIGRATION_LOCK};
use super::write::COLUMNS;
use super::{counters, PgStore};
use crate::bulk::BulkNote;
use crate::schema::MigrationReport;
use crate::validate::ValidState;
use crate::Result;

/// Bytes of `COPY` data sent per message.
const SEND_BYTES: usize = 4 << 20;

/// `maintenance_work_mem` while the indexes are built after a bulk load.
const INDEX_MEMORY: &str = "512MB";

impl PgStore {
    /// Drops the counters' triggers and every index but the primary key, and marks the bulk load.
    pub(crate) async fn begin_bulk(&self) -> Result<()> {
        self.check_writable()?;
        let s = self.schema.as_str();
        let map = self.err("starting a bulk load");
        let mut conn = self.pool.acquire().await.map_err(&map)?;
        let mut tx = conn.begin().await.map_err(&map)?;
        let mut statements = vec![
            format!("SET LOCAL lock_timeout = {}", self.busy_ms.max(1)),
            "SET LOCAL statement_timeout = 0".to_string(),
            format!("SELECT pg_advisory_xact_lock({MIGRATION_LOCK})"),
        ];
        for t in counters::TRIGGERS.into_iter().chain(super::failures::TRIGGERS) {
            statements.push(format!("DROP TRIGGER IF EXISTS {t} ON {s}.workflow_state"));
        }
        for name in super::schema::all_indexes()
            .map(|(n, _, _)| *n)
            .chain(FLUJO_INDEXES.iter().map(|(n, _)| *n))
        {
            statements.push(format!("DROP INDEX IF EXISTS {s}.{name}"));
        }
        statements.push(format!(
            "INSERT INTO {s}.flowstate_meta (key, value) VALUES ('{BULK_LOAD_KEY}', '1') \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value"
        ));
        for sql in &statements {
            sqlx::query(sql).execute(&mut *tx).await.map_err(&map)?;
        }
        tx.commit().await.map_err(&map)
    }

    /// One `COPY` of the rows and the note, in one transaction. Rows already present (a destination that holds
    /// some of them: `COPY` refuses a repeated key) are written by the saves' upsert instead, then the note.
    pub(crate) async fn bulk_write(
        &self,
        rows: Vec<ValidState>,
        now: DateTime<Utc>,
        note: Option<&BulkNote>,
    ) -> Result<()> {
        self.check_writable()?;
        let s = self.schema.as_str();
        let map = self.err("writing a bulk batch");
        let mut conn = self.pool.acquire().await.map_err(&map)?;
        let mut tx = conn.begin().await.map_err(&map)?;
        sqlx::query("SET LOCAL synchronous_commit = off")
            .execute(&mut *tx)
            .await
            .map_err(&map)?;
        sqlx::query("SET LOCAL statement_timeout = 0")
            .execute(&mut *tx)
            .await
            .map_err(&map)?;
        let copied = if rows.is_empty() {
            Ok(())
        } else {
            copy_rows(&mut tx, s, &rows, now).await
        };
        match copied {
            Ok(()) => {}
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("23505") => {
                drop(tx);
                drop(conn);
                tracing::debug!("a bulk batch holds runs the table has; upserting it instead");
                self.save_many(&rows, now).await?;
                return self.write_note(note, now).await;
            }
            Err(e) => return Err(map(e)),
        }
        if let Some(n) = note {
            let sql = note_sql(s);
            note_query(&sql, n, now).execute(&mut *tx).await.map_err(&map)?;
        }
        tx.commit().await.map_err(&map)
    }

    async fn write_note(&self, note: Option<&BulkNote>, now: DateTime<Utc>) -> Result<()> {
        if let Some(n) = note {
            let sql = note_sql(&self.schema);
            note_query(&sql, n, now)
                .execute(&self.pool)
                .await
                .map_err(self.err("writing a bulk batch's note"))?;
        }
        Ok(())
    }

    /// Ends a bulk load: the migration (flujo's and flowstate's indexes, the triggers, the counters recounted) with
    /// more memory for the index builds, then `ANALYZE` so the planner knows the new rows.
    pub(crate) async fn finish_bulk(&self) -> Result<MigrationReport> {
        self.check_writable()?;
        let map = self.err("finishing a bulk load");
        let mut conn = self.pool.acquire().await.map_err(&map)?;
        sqlx::query(&format!("SET maintenance_work_mem = '{INDEX_MEMORY}'"))
            .execute(&mut *conn)
            .await
            .map_err(&map)?;
        let report = schema::migrate(&mut conn, self.busy_ms.max(1)).await;
        let reset = sqlx::query("RESET maintenance_work_mem")
            .execute(&mut *conn)
            .await;
        let report = report?;
        reset.map_err(&map)?;
        sqlx::query("SET statement_timeout = 0")
            .execute(&mut *conn)
            .await
            .map_err(&map)?;
        let analyzed = sqlx::query(&format!("ANALYZE {}.workflow_state", self.schema))
            .execute(&mut *conn)
            .await;
        let _ = sqlx::query("RESET statement_timeout").execute(&mut *conn).await;
        analyzed.map_err(&map)?;
        Ok(report)
    }
}

/// The note's UPDATE: `$1` when, `$2` the detail, `$3` matched, `$4` affected, `$5` the entry's id.
fn note_sql(s: &str) -> String {
    format!("UPDATE {s}.flowstate_audit SET at = $1, detail = $2::jsonb, matched = $3, affected = $4 WHERE id = $5")
}

fn note_query<'q>(
    sql: &'q str,
    n: &'q BulkNote,
    now: DateTime<Utc>,
) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
    sqlx::query(sql)
        .bind(now)
        .bind(n.detail.to_string())
        .bind(n.matched)
        .bind(n.affected)
        .bind(n.id)
}

/// `COPY`s the rows into the table, in text format.
async fn copy_rows(
    conn: &mut sqlx::PgConnection,
    s: &str,
    rows: &[ValidState],
    now: DateTime<Utc>,
) -> sqlx::Result<()> {
    let mut copy = conn
        .copy_in_raw(&format!("COPY {s}.workflow_state ({COLUMNS}) FROM STDIN"))
        .await?;
    let mut buf: Vec<u8> = Vec::with_capacity(SEND_BYTES + (1 << 20));
    for row in rows {
        copy_line(row, now, &mut buf);
        if buf.len() >= SEND_BYTES {
            if let Err(e) = copy.send(buf.as_slice()).await {
                let _ = copy.abort("sending failed").await;
                return Err(e);
            }
            buf.clear();
        }
    }
    if !buf.is_empty() {
        if let Err(e) = copy.send(buf.as_slice()).await {
            let _ = copy.abort("sending failed").await;
            return Err(e);
        }
    }
    copy.finish().await.map(|_| ())
}

/// Appends `value` in `COPY`'s text format: backslash, tab, newline and carriage return escaped.
pub fn copy_text(out: &mut Vec<u8>, value: &str) {
    let bytes = value.as_bytes();
    let mut start = 0;
    for (i, b) in bytes.iter().enumerate() {
        let escaped: &[u8] = match b {
            b'\\' => b"\\\\",
            b'\t' => b"\\t",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        out.extend_from_slice(escaped);
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
}

/// Appends an optional value: `\N` for NULL.
pub fn copy_opt(out: &mut Vec<u8>, value: Option<&str>) {
    match value {
        Some(v) => copy_text(out, v),
        None => out.extend_from_slice(b"\\N"),
    }
}

/// Appends an instant as `COPY` reads a `timestamptz`: UTC, to the microsecond.
pub fn copy_instant(out: &mut Vec<u8>, at: &DateTime<Utc>) {
    use std::io::Write;
    let _ = write!(out, "{}", at.format("%Y-%m-%d %H:%M:%S%.6f+00"));
}

/// One row of the 20 columns, as the saves' upsert writes them: a missing creation or update time is `now`, the
/// memory figure rounded to the `REAL` column's 32 bits as the upsert's cast does.
fn copy_line(row: &ValidState, now: DateTime<Utc>, out: &mut Vec<u8>) {
    use std::io::Write;
    let s = &row.state;
    let x = &s.extras;
    let tab = |out: &mut Vec<u8>| out.push(b'\t');
    copy_text(out, &s.run_id);
    tab(out);
    copy_text(out, &s.pipeline_id);
    tab(out);
    copy_text(out, &s.pipeline_name);
    tab(out);
    copy_text(out, &s.pipeline_version);
    tab(out);
    let _ = write!(out, "{}", s.current_step_index);
    tab(out);
    copy_text(out, &row.context);
    tab(out);
    copy_opt(out, row.last_output.as_deref());
    tab(out);
    copy_opt(out, row.history.as_deref());
    tab(out);
    copy_text(out, row.status);
    tab(out);
    copy_instant(out, &s.created_at.unwrap_or(now));
    tab(out);
    copy_instant(out, &s.updated_at.unwrap_or(now));
    tab(out);
    let _ = write!(out, "{}", s.total_steps);
    tab(out);
    copy_opt(out, s.error_message.as_deref());
    tab(out);
    match s.execution_time_ms {
        Some(v) => {
            let _ = write!(out, "{v}");
        }
        None => out.extend_from_slice(b"\\N"),
    }
    tab(out);
    match s.memory_usage_mb {
        // The shortest text of the 32-bit value reads back as exactly that value; one too large for 32 bits is
        // written whole, and refused by the server as the upsert's cast refuses it.
        Some(m) if (m as f32).is_finite() => {
            let _ = write!(out, "{}", m as f32);
        }
        Some(m) => {
            let _ = write!(out, "{m}");
        }
        None => out.extend_from_slice(b"\\N"),
    }
    tab(out);
    copy_opt(out, row.metadata.as_deref());
    tab(out);
    out.push(if x.is_background_task { b't' } else { b'f' });
    tab(out);
    copy_opt(out, x.parent_run_id.as_deref());
    tab(out);
    copy_opt(out, x.task_id.as_deref());
    tab(out);
    copy_opt(out, x.background_error.as_deref());
    out.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_text_escapes_what_copy_reads_specially() {
        let mut out = Vec::new();
        copy_text(&mut out, "a\\b\tc\nd\re \"f\" é");
        assert_eq!(String::from_utf8(out).unwrap(), "a\\\\b\\tc\\nd\\re \"f\" é");
        let mut out = Vec::new();
        copy_instant(
            &mut out,
            &DateTime::<Utc>::from_timestamp_micros(-62_135_596_800_000_000).unwrap(),
        );
        assert_eq!(String::from_utf8(out).unwrap(), "0001-01-01 00:00:00.000000+00");
    }
}
