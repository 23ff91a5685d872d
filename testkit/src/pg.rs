//! PostgreSQL for tests: empty databases on the run's shared server, and dedicated servers to stop, restart and
//! kill.
//!
//! The shared server: `./x rust-tests` starts one (scripts/pg-server.sh) and passes its URL in
//! [`TEST_PG_VAR`]; by hand: `scripts/pg-server.sh start /tmp/pg`, then
//! `FLOWSTATE_TEST_PG=$(cat /tmp/pg/url) cargo test ...`. Tests share that server but never a database: each
//! takes its own from [`fresh_database`]. The server's superuser is `flowstate` (trust authentication).
//!
//! A test that must stop, restart or crash PostgreSQL (reliability) starts its own [`Server`] (about a second).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use sqlx::{Connection, PgConnection};

use crate::{Error, Result};

/// The shared test server's URL (`postgres://flowstate@127.0.0.1:PORT/postgres`).
pub const TEST_PG_VAR: &str = "FLOWSTATE_TEST_PG";

/// The shared test server's URL, when the run has one (`FLOWSTATE_TEST_PG`, not empty).
pub fn shared_url() -> Option<String> {
    std::env::var(TEST_PG_VAR).ok().filter(|u| !u.trim().is_empty())
}

/// A new, empty database on the shared server (`FLOWSTATE_TEST_PG`); returns its URL. Its name starts with
/// `fs_`, then `hint` (letters, digits and `_` kept, lowercased, cut to 24 characters), then what makes it unique
/// (process id, a counter, the clock). [`Error::Unavailable`] when there is no shared server.
pub async fn fresh_database(hint: &str) -> Result<String> {
    let server = shared_url().ok_or_else(|| {
        Error::Unavailable(format!(
            "{TEST_PG_VAR} is not set (no PostgreSQL test server: `./x rust-tests` starts one, or \
             scripts/pg-server.sh start DIR)"
        ))
    })?;
    create_database(&server, hint).await
}

/// [`fresh_database`], or `None` after printing `SKIPPED <hint>: <why>` when there is no shared server. Any
/// other failure (the server is set but does not answer) panics: that is a broken run, not a skip.
pub async fn fresh_database_or_skip(hint: &str) -> Option<String> {
    match fresh_database(hint).await {
        Ok(url) => Some(url),
        Err(e) if e.is_unavailable() => {
            crate::skip(format_args!("{hint}: {e}"));
            None
        }
        Err(e) => panic!("creating a test database on {TEST_PG_VAR}: {e}"),
    }
}

/// A new, empty database on the server at `server_url` (any database of it; the superuser's connection);
/// returns the new database's URL (the same URL with the database name replaced; query parameters kept).
pub async fn create_database(server_url: &str, hint: &str) -> Result<String> {
    let name = unique_name(hint);
    let mut conn = PgConnection::connect(server_url).await?;
    // The name is ours ([a-z0-9_]): quoting is only for form.
    sqlx::raw_sql(&format!("CREATE DATABASE \"{name}\""))
        .execute(&mut conn)
        .await?;
    conn.close().await?;
    with_database(server_url, &name)
}

/// Drops the database `url` names (closing its sessions first: `WITH (FORCE)`). Optional: the whole test
/// server is removed at the end of the run anyway; tests that make many databases can give the space back.
pub async fn drop_database(url: &str) -> Result<()> {
    let parsed = url::Url::parse(url).map_err(|e| Error::Failed(format!("{url}: {e}")))?;
    let name = parsed.path().trim_start_matches('/').to_string();
    if name.is_empty() || name == "postgres" || name.contains('"') {
        return Err(Error::Failed(format!("will not drop the database of {url}")));
    }
    let mut conn = PgConnection::connect(&with_database(url, "postgres")?).await?;
    sqlx::raw_sql(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        .execute(&mut conn)
        .await?;
    conn.close().await?;
    Ok(())
}

/// `url` with its database (the path) replaced by `database`.
pub fn with_database(url: &str, database: &str) -> Result<String> {
    let mut parsed = url::Url::parse(url).map_err(|e| Error::Failed(format!("{url}: {e}")))?;
    parsed.set_path(&format!("/{database}"));
    Ok(parsed.into())
}

fn unique_name(hint: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let hint: String = hint
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .map(|c| c.to_ascii_lowercase())
        .take(24)
        .collect();
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    // PostgreSQL cuts names at 63 bytes: the unique tail (at most 40) is kept whole, the hint cut to fit.
    let tail = format!(
        "{}_{}_{:x}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        nanos
    );
    let head_len = 63usize.saturating_sub(tail.len() + 4).min(hint.len());
    format!("fs_{}_{tail}", &hint[..head_len])
}

fn script() -> PathBuf {
    crate::workspace_root().join("scripts/pg-server.sh")
}

/// A dedicated PostgreSQL server in a temporary folder, for tests that stop, restart or kill it. Started by
/// scripts/pg-server.sh (as `flowstate-pg` when the tests run as root), on 127.0.0.1 at a free port and on a Unix
/// socket; superuser `flowstate`, trust authentication, fsync on. Dropping it stops it and removes its data.
///
/// Every method blocks while the script runs (start: about a second; stop, kill: a fraction of one).
#[derive(Debug)]
pub struct Server {
    dir: tempfile::TempDir,
    url: String,
    socket_url: String,
}

impl Server {
    /// Starts a new server (a fresh cluster). [`Error::Unavailable`] when PostgreSQL's server programs are not
    /// installed (`bash scripts/prereqs.sh postgres`).
    pub fn start() -> Result<Server> {
        let dir = tempfile::Builder::new().prefix("flowstate-pg-test").tempdir()?;
        let url = run_script("start", dir.path())?;
        let socket_url = std::fs::read_to_string(dir.path().join("socket_url"))?
            .trim()
            .to_string();
        Ok(Server { dir, url, socket_url })
    }

    /// [`Server::start`], or `None` after printing `SKIPPED <why>` when PostgreSQL is not installed. Other
    /// failures panic.
    pub fn start_or_skip(test: &str) -> Option<Server> {
        match Server::start() {
            Ok(server) => Some(server),
            Err(e) if e.is_unavailable() => {
                crate::skip(format_args!("{test}: {e}"));
                None
            }
            Err(e) => panic!("starting a PostgreSQL test server: {e}"),
        }
    }

    /// `postgres://flowstate@127.0.0.1:PORT/postgres`; the same after [`Server::start_again`].
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The same server through its Unix socket: `postgres:///postgres?host=SOCKET_DIR&port=PORT&user=flowstate`.
    pub fn socket_url(&self) -> &str {
        &self.socket_url
    }

    /// A new, empty database on this server ([`create_database`]); returns its URL.
    pub async fn fresh_database(&self, hint: &str) -> Result<String> {
        create_database(&self.url, hint).await
    }

    /// Stops the server (fast shutdown: open sessions are cut, committed work is kept). The data and the port
    /// stay for [`Server::start_again`]. Nothing to do when it is not running.
    pub fn stop(&self) -> Result<()> {
        run_script("halt", self.dir.path()).map(drop)
    }

    /// Starts the server again on the same data and port, after [`Server::stop`] or [`Server::kill`] (crash
    /// recovery then replays the WAL). Nothing to do when it runs.
    pub fn start_again(&self) -> Result<()> {
        run_script("start", self.dir.path()).map(drop)
    }

    /// SIGKILLs the postmaster and all its processes at once: a crash (or a power cut, for what was committed
    /// with fsync on). [`Server::start_again`] recovers.
    pub fn kill(&self) -> Result<()> {
        run_script("kill", self.dir.path()).map(drop)
    }

    /// Ends every client session but the one it uses (`pg_terminate_backend`): connections break mid-statement
    /// or mid-transaction while the server keeps running. Returns how many it ended.
    pub async fn kill_backends(&self) -> Result<u64> {
        let mut conn = PgConnection::connect(&self.url).await?;
        let ended: i64 = sqlx::query_scalar(
            // CASE: the filter must be decided before pg_terminate_backend runs (AND has no order).
            "SELECT count(*) FROM pg_stat_activity WHERE CASE \
             WHEN backend_type = 'client backend' AND pid <> pg_backend_pid() \
             THEN pg_terminate_backend(pid) ELSE false END",
        )
        .fetch_one(&mut conn)
        .await?;
        conn.close().await?;
        Ok(u64::try_from(ended).unwrap_or(0))
    }

    /// The folder the server was started for (scripts/pg-server.sh's DIR: `url`, `port`, `base`, ...).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Err(e) = run_script("stop", self.dir.path()) {
            eprintln!(
                "stopping the PostgreSQL test server in {}: {e}",
                self.dir.path().display()
            );
        }
    }
}

/// Runs `scripts/pg-server.sh CMD DIR`; returns its stdout, trimmed. Exit status 2 (no PostgreSQL programs) is
/// [`Error::Unavailable`].
fn run_script(cmd: &str, dir: &Path) -> Result<String> {
    let out = Command::new("bash").arg(script()).arg(cmd).arg(dir).output()?;
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
    match out.status.code() {
        Some(0) => Ok(String::from_utf8_lossy(&out.stdout).trim().to_string()),
        Some(2) if cmd == "start" => Err(Error::Unavailable(stderr)),
        _ => Err(Error::Failed(format!(
            "scripts/pg-server.sh {cmd} {}: {} {stderr}",
            dir.display(),
            out.status
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_valid_unique_and_short() {
        let a = unique_name("Store API: list/filters ÄÖ and a very long hint beyond any limit");
        let b = unique_name("Store API: list/filters ÄÖ and a very long hint beyond any limit");
        assert_ne!(a, b);
        for n in [&a, &b] {
            assert!(n.len() <= 63, "{n}");
            assert!(n.starts_with("fs_storeapilistfilters"), "{n}");
            assert!(
                n.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
                "{n}"
            );
        }
        assert!(unique_name("").starts_with("fs__"));
    }

    #[test]
    fn database_replaced_in_urls() {
        assert_eq!(
            with_database("postgres://flowstate@127.0.0.1:5432/postgres", "x").unwrap(),
            "postgres://flowstate@127.0.0.1:5432/x"
        );
        assert_eq!(
            with_database("postgres:///postgres?host=/tmp/s&port=1&user=flowstate", "x").unwrap(),
            "postgres:///x?host=/tmp/s&port=1&user=flowstate"
        );
    }
}
