//! The read path of [`Store::load_state`](crate::Store::load_state): a few connections of its own, one thread each,
//! and lookups that share a statement.
//!
//! A pooled sqlx statement is a round trip to the connection's worker thread (two thread wake-ups) plus two more
//! (the pool pings a connection when it hands it out and again when it takes it back): that, not SQLite, was most
//! of a lookup's cost. So lookups skip the pool and sqlx's worker: each goes to the reader thread with the fewest
//! lookups in hand, which holds its connection locked and runs the statement itself ([`super::raw`]). It takes
//! every lookup waiting for it and reads them **all with one statement** (`run_id IN (...)`), then hands each
//! caller its row, which the caller decodes. A lone lookup is one statement; concurrent ones share their round
//! trip.
//!
//! Each lookup still reads the database as committed after it was called (its statement starts after it was
//! handed over), so a run saved before `load_state` is called is found.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use sqlx::sqlite::SqliteConnection;
use tokio::sync::{mpsc, oneshot};

use super::raw::{Owner, Param, RawRow, Session};
use super::row::{Columns, LookupSql};

/// The most lookups read by one statement.
const MAX_LOOKUPS: usize = 64;

/// What a lookup gets back: the row (decoded by the caller), or the error of its own statement.
pub(crate) type Found = sqlx::Result<Option<RawRow>>;

/// The reader's statement slots (see [`Session`]).
const ONE: usize = 0;
const MANY: usize = 1;

/// Handles on the reader threads. Cloned with the store; the threads end when the last handle is dropped.
#[derive(Clone)]
pub(crate) struct Readers {
    readers: Arc<[Reader]>,
}

struct Reader {
    jobs: mpsc::UnboundedSender<Job>,
    /// Lookups handed to this reader and not answered yet.
    in_hand: Arc<AtomicUsize>,
}

impl std::fmt::Debug for Readers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Readers")
            .field("count", &self.readers.len())
            .finish()
    }
}

enum Job {
    Lookup(Lookup),
    Close(oneshot::Sender<()>),
}

struct Lookup {
    run_id: String,
    done: oneshot::Sender<Found>,
}

impl Readers {
    /// Starts one reader thread on each connection (connections with the store's pragmas, used by nothing else).
    pub(crate) fn start(conns: Vec<SqliteConnection>, sql: LookupSql) -> std::io::Result<Readers> {
        let mut readers = Vec::with_capacity(conns.len());
        for conn in conns {
            let (jobs, queue) = mpsc::unbounded_channel();
            let in_hand = Arc::new(AtomicUsize::new(0));
            let task = Task {
                sql: sql.clone(),
                in_hand: Arc::clone(&in_hand),
            };
            std::thread::Builder::new()
                .name("flowstate-reader".into())
                .spawn(move || task.run(Owner::new(conn), queue))?;
            readers.push(Reader { jobs, in_hand });
        }
        Ok(Readers {
            readers: readers.into(),
        })
    }

    /// Reads the run `run_id`. The error is sqlx's "pool closed" once the store was closed.
    pub(crate) async fn load(&self, run_id: &str) -> Found {
        let reader = self
            .readers
            .iter()
            .min_by_key(|r| r.in_hand.load(Ordering::Relaxed))
            .ok_or(sqlx::Error::PoolClosed)?;
        let (done, found) = oneshot::channel();
        reader.in_hand.fetch_add(1, Ordering::Relaxed);
        let sent = reader.jobs.send(Job::Lookup(Lookup {
            run_id: run_id.to_string(),
            done,
        }));
        if sent.is_err() {
            reader.in_hand.fetch_sub(1, Ordering::Relaxed);
            return Err(sqlx::Error::PoolClosed);
        }
        found.await.unwrap_or(Err(sqlx::Error::PoolClosed))
    }

    /// Stops every reader (lookups already handed over are answered first) and closes its connection; returns
    /// once they are closed.
    pub(crate) async fn close(&self) {
        for reader in self.readers.iter() {
            let (done, closed) = oneshot::channel();
            if reader.jobs.send(Job::Close(done)).is_ok() {
                let _ = closed.await;
            }
        }
    }
}

struct Task {
    sql: LookupSql,
    in_hand: Arc<AtomicUsize>,
}

impl Task {
    /// The thread: holds its connection locked and answers lookups until the queue is closed and empty.
    fn run(self, mut owner: Owner, mut queue: mpsc::UnboundedReceiver<Job>) {
        let mut closers = Vec::new();
        let mut lookups = Vec::with_capacity(MAX_LOOKUPS);
        let mut session = owner.lock();
        while let Some(first) = queue.blocking_recv() {
            let mut next = Some(first);
            while let Some(job) = next.take() {
                match job {
                    Job::Lookup(lookup) => lookups.push(lookup),
                    Job::Close(done) => {
                        closers.push(done);
                        queue.close();
                    }
                }
                if lookups.len() < MAX_LOOKUPS {
                    next = queue.try_recv().ok();
                }
            }
            let answered = lookups.len();
            match &mut session {
                Ok(session) => self.answer(session, std::mem::take(&mut lookups)),
                // The connection's worker is gone: nothing can be read.
                Err(_) => {
                    for lookup in lookups.drain(..) {
                        let _ = lookup.done.send(Err(sqlx::Error::WorkerCrashed));
                    }
                }
            }
            self.in_hand.fetch_sub(answered, Ordering::Relaxed);
        }
        drop(session);
        if let Err(e) = owner.close() {
            tracing::warn!(error = %e, "closing a read connection");
        }
        for done in closers {
            let _ = done.send(());
        }
    }

    fn answer(&self, session: &mut Session<'_>, lookups: Vec<Lookup>) {
        // SQLite's JSON functions may cut a string at a NUL character; such an id is read on its own.
        let (together, alone): (Vec<Lookup>, Vec<Lookup>) =
            lookups.into_iter().partition(|l| !l.run_id.contains('\0'));
        if together.len() > 1 {
            let ids: Vec<&str> = together.iter().map(|l| l.run_id.as_str()).collect();
            let ids = serde_json::Value::from(ids).to_string();
            match session.query(MANY, &self.sql.many, [Param::Text(&ids)], usize::MAX) {
                Ok(mut rows) => {
                    // By run id (the first column), in place.
                    rows.sort_by(|a, b| a.text(0).cmp(&b.text(0)));
                    for lookup in together {
                        // Cloned: the same run may be asked for by several callers.
                        let found = rows
                            .binary_search_by(|row| row.text(0).cmp(&Some(lookup.run_id.as_str())))
                            .ok()
                            .map(|i| rows[i].clone());
                        let _ = lookup.done.send(Ok(found));
                    }
                }
                // Each caller gets the error of its own statement.
                Err(_) => {
                    for lookup in together {
                        self.one(session, lookup);
                    }
                }
            }
        } else {
            for lookup in together {
                self.one(session, lookup);
            }
        }
        for lookup in alone {
            self.one(session, lookup);
        }
    }

    fn one(&self, session: &mut Session<'_>, lookup: Lookup) {
        let found = session
            .query(ONE, &self.sql.one, [Param::Text(&lookup.run_id)], usize::MAX)
            .map(|rows| rows.into_iter().next());
        let _ = lookup.done.send(found);
    }
}

#[cfg(test)]
mod tests {
    use sqlx::{Connection, Row, SqliteConnection};

    /// Both lookups find rows through the primary key's index, never by scanning the table.
    #[tokio::test]
    async fn lookups_search_the_primary_key() {
        let mut conn = SqliteConnection::connect("sqlite::memory:").await.unwrap();
        sqlx::query(crate::sqlite::schema::CREATE_TABLE)
            .execute(&mut conn)
            .await
            .unwrap();
        // flujo's table (a file opened read-only before its migration), then with the extra columns.
        for extras in [false, true] {
            if extras {
                for (name, definition) in crate::sqlite::schema::EXTRA_COLUMNS {
                    sqlx::query(&format!(
                        "ALTER TABLE workflow_state ADD COLUMN {name} {definition}"
                    ))
                    .execute(&mut conn)
                    .await
                    .unwrap();
                }
            }
            let sql = crate::sqlite::row::lookup_sql(extras);
            for (query, arg) in [(&sql.one, "a"), (&sql.many, r#"["a", "b"]"#)] {
                let rows = sqlx::query(&format!("EXPLAIN QUERY PLAN {query}"))
                    .bind(arg)
                    .fetch_all(&mut conn)
                    .await
                    .unwrap_or_else(|e| panic!("{query}: {e}"));
                let plan: Vec<String> = rows.iter().map(|r| r.get::<String, _>("detail")).collect();
                let plan = plan.join("\n");
                assert!(plan.contains("SEARCH workflow_state USING INDEX"), "{plan}");
                assert!(!plan.contains("SCAN workflow_state"), "{plan}");
            }
        }
    }
}
