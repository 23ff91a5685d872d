//! The read path of [`Store::load_state`](crate::Store::load_state): a few connections of its own, one task each,
//! and lookups that share a statement.
//!
//! Through sqlx, every statement is a round trip to the connection's worker thread (two thread wake-ups), and a
//! pooled statement costs two more (the pool pings a connection when it hands it out and again when it takes it
//! back): that, not SQLite, is most of a lookup's cost. So lookups skip the pool: each goes to the reader task with
//! the fewest lookups in hand, which takes every lookup waiting for it and reads them **all with one statement**
//! (`run_id IN (...)`), then hands each caller its row, which the caller decodes. A lone lookup is one statement,
//! as before; concurrent ones share their round trip.
//!
//! Each lookup still reads the database as committed after it was called (its statement starts after it was
//! handed over), so a run saved before `load_state` is called is found.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use sqlx::sqlite::{SqliteConnection, SqliteRow};
use sqlx::{Connection, Row};
use tokio::sync::{mpsc, oneshot};

/// The most lookups read by one statement.
const MAX_LOOKUPS: usize = 64;

/// What a lookup gets back: the row (decoded by the caller), or the error of its own statement.
pub(crate) type Found = sqlx::Result<Option<Arc<SqliteRow>>>;

/// The statements a reader runs; both select the run id first.
#[derive(Clone)]
pub(crate) struct LookupSql {
    /// One run: `?1` is its id.
    pub(crate) one: Arc<str>,
    /// Several runs: `?1` is a JSON array of their ids.
    pub(crate) many: Arc<str>,
}

/// Handles on the reader tasks. Cloned with the store; the tasks end when the last handle is dropped.
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
    /// Starts one reader task on each connection (connections with the store's pragmas, used by nothing else).
    pub(crate) fn start(conns: Vec<SqliteConnection>, sql: LookupSql) -> Readers {
        let readers = conns
            .into_iter()
            .map(|conn| {
                let (jobs, queue) = mpsc::unbounded_channel();
                let in_hand = Arc::new(AtomicUsize::new(0));
                let task = Task {
                    conn,
                    sql: sql.clone(),
                    in_hand: Arc::clone(&in_hand),
                };
                tokio::spawn(task.run(queue));
                Reader { jobs, in_hand }
            })
            .collect();
        Readers { readers }
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
    conn: SqliteConnection,
    sql: LookupSql,
    in_hand: Arc<AtomicUsize>,
}

impl Task {
    async fn run(mut self, mut queue: mpsc::UnboundedReceiver<Job>) {
        let mut closers = Vec::new();
        let mut taken = Vec::with_capacity(MAX_LOOKUPS);
        let mut lookups = Vec::with_capacity(MAX_LOOKUPS);
        while queue.recv_many(&mut taken, MAX_LOOKUPS).await > 0 {
            for job in taken.drain(..) {
                match job {
                    Job::Lookup(lookup) => lookups.push(lookup),
                    Job::Close(done) => {
                        closers.push(done);
                        queue.close();
                    }
                }
            }
            let answered = lookups.len();
            self.answer(std::mem::take(&mut lookups)).await;
            self.in_hand.fetch_sub(answered, Ordering::Relaxed);
        }
        if let Err(e) = self.conn.close().await {
            tracing::warn!(error = %e, "closing a read connection");
        }
        for done in closers {
            let _ = done.send(());
        }
    }

    async fn answer(&mut self, lookups: Vec<Lookup>) {
        // SQLite's JSON functions may cut a string at a NUL character; such an id is read on its own.
        let (together, alone): (Vec<Lookup>, Vec<Lookup>) =
            lookups.into_iter().partition(|l| !l.run_id.contains('\0'));
        if together.len() > 1 {
            let ids: Vec<&str> = together.iter().map(|l| l.run_id.as_str()).collect();
            let ids = serde_json::Value::from(ids).to_string();
            match sqlx::query(&self.sql.many)
                .bind(ids)
                .fetch_all(&mut self.conn)
                .await
            {
                Ok(rows) => {
                    let mut rows: Vec<(String, Arc<SqliteRow>)> = rows
                        .into_iter()
                        .filter_map(|row| Some((row.try_get::<String, _>(0).ok()?, Arc::new(row))))
                        .collect();
                    rows.sort_by(|a, b| a.0.cmp(&b.0));
                    for lookup in together {
                        let row = rows
                            .binary_search_by(|(id, _)| id.as_str().cmp(&lookup.run_id))
                            .ok()
                            .map(|i| Arc::clone(&rows[i].1));
                        let _ = lookup.done.send(Ok(row));
                    }
                }
                // Each caller gets the error of its own statement.
                Err(_) => {
                    for lookup in together {
                        self.one(lookup).await;
                    }
                }
            }
        } else {
            for lookup in together {
                self.one(lookup).await;
            }
        }
        for lookup in alone {
            self.one(lookup).await;
        }
    }

    async fn one(&mut self, lookup: Lookup) {
        let found = sqlx::query(&self.sql.one)
            .bind(lookup.run_id.as_str())
            .fetch_optional(&mut self.conn)
            .await
            .map(|row| row.map(Arc::new));
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
        sqlx::query(crate::schema::CREATE_TABLE)
            .execute(&mut conn)
            .await
            .unwrap();
        let sql = crate::store::lookup_sql();
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
