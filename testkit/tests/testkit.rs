//! The testkit's own tests: a dedicated server stops, restarts and crashes with its data kept; fresh databases
//! are distinct and empty; the real flujo 0.6.11 saves and loads a run through the driver. Each prints
//! `SKIPPED ...` when its prerequisite is absent (PostgreSQL's programs; `FLOWSTATE_TEST_PG`;
//! `FLOWSTATE_FLUJO_PG_PYTHON`).

use std::path::PathBuf;

use flowstate_testkit::flujo_pg::FlujoPg;
use flowstate_testkit::pg::{self, Server};
use serde_json::json;
use sqlx::{Connection, PgConnection};

async fn count(url: &str) -> Result<i64, sqlx::Error> {
    let mut conn = PgConnection::connect(url).await?;
    let n = sqlx::query_scalar("SELECT count(*) FROM t")
        .fetch_one(&mut conn)
        .await?;
    conn.close().await?;
    Ok(n)
}

async fn exec(url: &str, sql: &str) {
    let mut conn = PgConnection::connect(url).await.expect("connecting");
    sqlx::raw_sql(sql).execute(&mut conn).await.expect(sql);
    conn.close().await.expect("closing");
}

#[tokio::test]
async fn dedicated_server_stops_restarts_and_survives_a_crash() {
    let Some(server) = Server::start_or_skip("dedicated_server_stops_restarts_and_survives_a_crash") else {
        return;
    };
    let url = server.url().to_string();
    assert!(url.starts_with("postgres://flowstate@127.0.0.1:"), "{url}");
    exec(&url, "CREATE TABLE t (x int); INSERT INTO t VALUES (1)").await;
    // The Unix socket reaches the same server.
    assert_eq!(count(server.socket_url()).await.expect("over the socket"), 1);
    let mut db = PgConnection::connect(&server.fresh_database("dedicated").await.unwrap())
        .await
        .unwrap();

    // A clean stop: connecting fails at once (no hang), and again on the same port with the data.
    server.stop().unwrap();
    assert!(count(&url).await.is_err(), "connected to a stopped server");
    server.stop().unwrap(); // nothing to do
    server.start_again().unwrap();
    assert_eq!(server.url(), url);
    assert_eq!(count(&url).await.unwrap(), 1);
    // The old session was cut by the stop.
    assert!(sqlx::query("SELECT 1").execute(&mut db).await.is_err());

    // A session killed while the server runs.
    let mut held = PgConnection::connect(&url).await.unwrap();
    sqlx::query("SELECT 1").execute(&mut held).await.unwrap();
    assert!(server.kill_backends().await.unwrap() >= 1);
    assert!(sqlx::query("SELECT 1").execute(&mut held).await.is_err());

    // A crash (SIGKILL of every server process): what was committed is there after recovery.
    exec(&url, "INSERT INTO t VALUES (2)").await;
    server.kill().unwrap();
    assert!(count(&url).await.is_err(), "connected to a killed server");
    server.start_again().unwrap();
    assert_eq!(count(&url).await.unwrap(), 2);

    // Dropped: stopped, its data removed.
    let base = PathBuf::from(std::fs::read_to_string(server.dir().join("base")).unwrap().trim());
    assert!(base.join("data/PG_VERSION").exists());
    drop(server);
    assert!(!base.exists(), "{} left behind", base.display());
    assert!(count(&url).await.is_err(), "the server still answers after drop");
}

#[tokio::test]
async fn fresh_databases_are_distinct_and_empty() {
    let Some(a) = pg::fresh_database_or_skip("fresh_databases_are_distinct").await else {
        return;
    };
    let b = pg::fresh_database("fresh_databases_are_distinct").await.unwrap();
    assert_ne!(a, b);
    for url in [&a, &b] {
        let mut conn = PgConnection::connect(url).await.unwrap();
        let tables: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')",
        )
        .fetch_one(&mut conn)
        .await
        .unwrap();
        assert_eq!(tables, 0, "{url} is not empty");
        let name: String = sqlx::query_scalar("SELECT current_database()")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert!(url.ends_with(&format!("/{name}")), "{url} vs {name}");
        conn.close().await.unwrap();
    }
    exec(&a, "CREATE TABLE t (x int); INSERT INTO t VALUES (1)").await;
    assert_eq!(count(&a).await.unwrap(), 1);
    assert!(count(&b).await.is_err(), "a's table is visible in b");
    pg::drop_database(&a).await.unwrap();
    assert!(
        PgConnection::connect(&a).await.is_err(),
        "dropped database still there"
    );
}

#[tokio::test]
async fn flujo_saves_and_loads_a_run_on_postgres() {
    let test = "flujo_saves_and_loads_a_run_on_postgres";
    let Some(url) = pg::fresh_database_or_skip(test).await else {
        return;
    };
    let Some(mut flujo) = FlujoPg::spawn_or_skip(test, &url).await else {
        return;
    };
    assert_eq!(flujo.version()["flujo"], "0.6.11");

    let state = json!({
        "pipeline_id": "pid-1", "pipeline_name": "ingest", "pipeline_version": "2.1",
        "current_step_index": 2, "pipeline_context": {"user": "ü", "n": [1, 2.5, null]},
        "last_step_output": "plain text", "step_history": [{"name": "a", "ok": true}],
        "status": "failed", "created_at": "2026-12-06T08:00:00+00:00",
        "updated_at": "2026-12-06T09:30:00.250000+00:00", "total_steps": 5,
        "error_message": "boom", "execution_time_ms": 1234, "memory_usage_mb": 12.5,
        "metadata": {"tenant": "t1"}, "is_background_task": true, "parent_run_id": "parent-1",
        "task_id": "task-9", "background_error": "bg failed",
    });
    flujo.save("run-1", &state).await.unwrap();
    let mut expected = state.clone();
    expected["run_id"] = json!("run-1");
    assert_eq!(flujo.load("run-1").await.unwrap(), Some(expected));
    assert_eq!(flujo.load("no-such-run").await.unwrap(), None);

    // flujo made its table: the 20 columns, and its pgvector migrations were skipped, the others applied.
    let mut conn = PgConnection::connect(&url).await.unwrap();
    let columns: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM information_schema.columns WHERE table_name = 'workflow_state'",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(columns, 20);
    let versions: Vec<i32> = sqlx::query_scalar("SELECT version FROM flujo_schema_versions ORDER BY version")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    assert_eq!(versions, [1, 2, 3, 4, 5]);
    conn.close().await.unwrap();

    let stats = flujo.stats().await.unwrap();
    assert_eq!(stats["total_workflows"], 1);
    assert_eq!(stats["status_counts"], json!({"failed": 1}));
    assert_eq!(stats["background_status_counts"], json!({"failed": 1}));
    assert_eq!(stats["average_execution_time_ms"], 1234.0);
    let listed = flujo.list(Some("failed"), None, Some(10), 0).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["metadata"], json!({"tenant": "t1"}));
    assert!(flujo
        .list(Some("running"), None, None, 0)
        .await
        .unwrap()
        .is_empty());
    // Updated 2026-12-06T09:30Z: within a window reaching back far enough.
    assert_eq!(flujo.failed(24 * 365 * 100).await.unwrap().len(), 1);

    // flujo's errors come back as errors, and the driver goes on.
    let err = flujo.save("bad", &json!({"pipeline_id": "p"})).await.unwrap_err();
    assert!(err.to_string().contains("KeyError"), "{err}");
    flujo.delete("run-1").await.unwrap();
    assert_eq!(flujo.load("run-1").await.unwrap(), None);
    assert_eq!(flujo.cleanup(0.0).await.unwrap(), 0);
    flujo.shutdown().await.unwrap();
}
