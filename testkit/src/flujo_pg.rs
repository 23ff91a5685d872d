//! The real flujo 0.6.11 `PostgresBackend`, for compatibility tests: one long-lived Python process
//! (testkit/flujo_pg_driver.py, with the python in [`PYTHON_VAR`]) per database, driven with one JSON line per
//! call. Each method calls the flujo method of the same name and returns what flujo returned, made JSON (the
//! driver's docstring has the details: timestamps as ISO strings such as `2026-12-06T09:00:00.500000+00:00`,
//! JSON columns as values even where flujo returns their text, AVG as a number).
//!
//! ```no_run
//! # async fn t() -> flowstate_testkit::Result<()> {
//! use flowstate_testkit::{flujo_pg::FlujoPg, pg};
//! let Some(url) = pg::fresh_database_or_skip("compat").await else { return Ok(()) };
//! let Some(mut flujo) = FlujoPg::spawn_or_skip("compat", &url).await else { return Ok(()) };
//! flujo.save("r1", &serde_json::json!({"pipeline_id": "p", "pipeline_name": "P",
//!     "pipeline_version": "1", "current_step_index": 0, "status": "running"})).await?;
//! let state = flujo.load("r1").await?.expect("saved");
//! # Ok(()) }
//! ```

use std::process::Stdio;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use crate::{Error, Result};

/// The python of the flujo[postgres] 0.6.11 venv (`.venv-flujo-pg/bin/python`; `./x rust-tests` sets it).
pub const PYTHON_VAR: &str = "FLOWSTATE_FLUJO_PG_PYTHON";

/// How long one call may take before it is an error (flujo's first call also migrates its schema).
pub const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// A running flujo 0.6.11 `PostgresBackend(url)`. Dropping it ends the process.
#[derive(Debug)]
pub struct FlujoPg {
    child: Child,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
    version: Value,
}

impl FlujoPg {
    /// Starts the driver on the database `url` (about 2 s: Python imports flujo). Before flujo's first use it
    /// marks flujo's pgvector migrations (3 and 5) applied in `flujo_schema_versions`; flujo creates the rest on
    /// its first call. [`Error::Unavailable`] when [`PYTHON_VAR`] is not set.
    pub async fn spawn(url: &str) -> Result<FlujoPg> {
        let python = std::env::var(PYTHON_VAR)
            .ok()
            .filter(|p| !p.trim().is_empty())
            .ok_or_else(|| {
                Error::Unavailable(format!(
                    "{PYTHON_VAR} is not set (the flujo 0.6.11 venv: `bash scripts/prereqs.sh flujo-pg`, then \
                     {PYTHON_VAR}=.venv-flujo-pg/bin/python; `./x rust-tests` does both)"
                ))
            })?;
        let driver = crate::workspace_root().join("testkit/flujo_pg_driver.py");
        let mut child = Command::new(&python)
            .arg(&driver)
            .arg(url)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| Error::Failed(format!("starting {python} {}: {e}", driver.display())))?;
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
        let mut flujo = FlujoPg {
            child,
            stdin,
            stdout,
            version: Value::Null,
        };
        flujo.version = flujo.answer().await?;
        Ok(flujo)
    }

    /// [`FlujoPg::spawn`], or `None` after printing `SKIPPED <test>: <why>` when [`PYTHON_VAR`] is not set.
    /// Other failures (a python that cannot import flujo, a database that does not answer) panic.
    pub async fn spawn_or_skip(test: &str, url: &str) -> Option<FlujoPg> {
        match FlujoPg::spawn(url).await {
            Ok(flujo) => Some(flujo),
            Err(e) if e.is_unavailable() => {
                crate::skip(format_args!("{test}: {e}"));
                None
            }
            Err(e) => panic!("starting the flujo 0.6.11 driver: {e}"),
        }
    }

    /// What the driver reported at start: `{"flujo": "0.6.11", "python": "3.13.0"}`.
    pub fn version(&self) -> &Value {
        &self.version
    }

    /// flujo's `save_state(run_id, state)`. `state` as flujo takes it: `pipeline_id`, `pipeline_name`,
    /// `pipeline_version`, `current_step_index` required; the other columns optional (timestamps as ISO
    /// strings; flujo's defaults: status `running`, times now, total_steps 0, is_background_task false).
    pub async fn save(&mut self, run_id: &str, state: &Value) -> Result<()> {
        self.call(json!({"cmd": "save_state", "run_id": run_id, "state": state}))
            .await
            .map(drop)
    }

    /// flujo's `load_state(run_id)`: all 20 fields, or `None` when there is no such run.
    pub async fn load(&mut self, run_id: &str) -> Result<Option<Value>> {
        let state = self.call(json!({"cmd": "load_state", "run_id": run_id})).await?;
        Ok((!state.is_null()).then_some(state))
    }

    /// flujo's `delete_state(run_id)`.
    pub async fn delete(&mut self, run_id: &str) -> Result<()> {
        self.call(json!({"cmd": "delete_state", "run_id": run_id}))
            .await
            .map(drop)
    }

    /// flujo's `get_workflow_stats()`: `total_workflows`, `status_counts`, `recent_workflows_24h`,
    /// `average_execution_time_ms`, `background_status_counts`.
    pub async fn stats(&mut self) -> Result<Value> {
        self.call(json!({"cmd": "get_workflow_stats"})).await
    }

    /// flujo's `list_workflows(status, pipeline_id, limit, offset)`: newest first.
    pub async fn list(
        &mut self,
        status: Option<&str>,
        pipeline_id: Option<&str>,
        limit: Option<i64>,
        offset: i64,
    ) -> Result<Vec<Value>> {
        let rows = self
            .call(
                json!({"cmd": "list_workflows", "status": status, "pipeline_id": pipeline_id,
                "limit": limit, "offset": offset}),
            )
            .await?;
        rows_of(rows)
    }

    /// flujo's `get_failed_workflows(hours_back)`.
    pub async fn failed(&mut self, hours_back: i64) -> Result<Vec<Value>> {
        let rows = self
            .call(json!({"cmd": "get_failed_workflows", "hours_back": hours_back}))
            .await?;
        rows_of(rows)
    }

    /// flujo's `cleanup_old_workflows(days_old)`: the count flujo reports (it counts, then deletes).
    pub async fn cleanup(&mut self, days_old: f64) -> Result<i64> {
        let n = self
            .call(json!({"cmd": "cleanup_old_workflows", "days_old": days_old}))
            .await?;
        n.as_i64()
            .ok_or_else(|| Error::Failed(format!("cleanup_old_workflows answered {n}")))
    }

    /// One request to the driver (`{"cmd": ..., ...}`, see testkit/flujo_pg_driver.py); flujo's exceptions
    /// come back as [`Error::Failed`] with `Type: message`, and the driver goes on.
    pub async fn call(&mut self, request: Value) -> Result<Value> {
        let mut line = request.to_string();
        line.push('\n');
        self.stdin.write_all(line.as_bytes()).await?;
        self.stdin.flush().await?;
        self.answer().await
    }

    /// Ends the driver (flujo closes its pool) and waits for it.
    pub async fn shutdown(mut self) -> Result<()> {
        self.call(json!({"cmd": "shutdown"})).await?;
        self.child.wait().await?;
        Ok(())
    }

    async fn answer(&mut self) -> Result<Value> {
        let line = match tokio::time::timeout(CALL_TIMEOUT, self.stdout.next_line()).await {
            Err(_) => {
                return Err(Error::Failed(format!(
                    "the flujo driver did not answer within {CALL_TIMEOUT:?}"
                )))
            }
            Ok(line) => line?,
        };
        let Some(line) = line else {
            let status = self.child.wait().await?;
            return Err(Error::Failed(format!(
                "the flujo driver ended ({status}); its stderr is above"
            )));
        };
        let doc: Value = serde_json::from_str(&line)
            .map_err(|e| Error::Failed(format!("the flujo driver wrote {line:?}: {e}")))?;
        if doc["ok"] == Value::Bool(true) {
            Ok(doc["result"].clone())
        } else {
            Err(Error::Failed(format!(
                "flujo: {}",
                doc["error"].as_str().unwrap_or(&line)
            )))
        }
    }
}

fn rows_of(rows: Value) -> Result<Vec<Value>> {
    match rows {
        Value::Array(rows) => Ok(rows),
        other => Err(Error::Failed(format!("expected a list of rows, got {other}"))),
    }
}
