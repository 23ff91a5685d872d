//! Every database flujo wrote (tests/fixtures) opened, migrated twice, and checked against its ground truth.

mod common;

use std::collections::BTreeMap;

use common::*;
use flowstate_store::{ListQuery, SchemaKind, Status, Store};
use serde_json::Value;

const ALL_COLUMNS: [&str; 15] = [
    "run_id",
    "pipeline_id",
    "pipeline_name",
    "pipeline_version",
    "current_step_index",
    "pipeline_context",
    "last_step_output",
    "step_history",
    "status",
    "created_at",
    "updated_at",
    "total_steps",
    "error_message",
    "execution_time_ms",
    "memory_usage_mb",
];

async fn all_runs(store: &Store, mut query: ListQuery) -> Vec<flowstate_store::RunSummary> {
    let mut out = Vec::new();
    query.limit = Some(97); // not a divisor of anything here: pages end mid-way
    loop {
        let page = store.list_workflows(&query).await.unwrap();
        out.extend(page.runs);
        match page.next_cursor {
            Some(c) => query.cursor = Some(c),
            None => return out,
        }
    }
}

#[tokio::test]
async fn sample_300_matches_ground_truth_and_keeps_every_value() {
    let dir = tempfile::tempdir().unwrap();
    let db = copy_fixture("flujo-0.4.35-sample-300.db", dir.path());
    let truth = fixture_truth("flujo-0.4.35-sample-300.json");
    let now = chrono::DateTime::parse_from_rfc3339(truth["generated_now_utc"].as_str().unwrap())
        .unwrap()
        .with_timezone(&chrono::Utc);
    let before = raw_rows(&db, &ALL_COLUMNS).await;
    assert_eq!(before.len(), 300);

    let (store, _clock) = open_at(&db, now).await;
    assert_eq!(store.migration().from, SchemaKind::Flujo0435);
    assert!(!store.migration().is_noop(), "a flujo file gains the indexes");
    store.close().await;

    // Migrated twice: the second open changes nothing.
    let (store, _clock) = open_at(&db, now).await;
    assert!(
        store.migration().is_noop(),
        "second open changed: {:?}",
        store.migration()
    );
    assert_eq!(
        store.migration().from,
        SchemaKind::Flowstate {
            version: flowstate_store::SCHEMA_VERSION
        }
    );

    // Every row and every value (type included) is as flujo wrote it.
    assert_eq!(raw_rows(&db, &ALL_COLUMNS).await, before);

    let stats = store.get_workflow_stats().await.unwrap();
    assert_eq!(stats.total_workflows, 300);
    let want: BTreeMap<String, i64> = serde_json::from_value(truth["counts_by_status"].clone()).unwrap();
    assert_eq!(stats.status_counts, want);
    assert_eq!(
        stats.recent_workflows_24h,
        truth["recent_created_24h"]["true_count_by_created_at"]
            .as_i64()
            .unwrap(),
        "flujo itself says {}",
        truth["recent_created_24h"]["flujo_get_workflow_stats"]
    );
    let avg = truth["average_execution_time_ms"]["true"].as_f64().unwrap();
    assert!((stats.average_execution_time_ms - avg).abs() < 1e-6);

    let failed = store.get_failed_workflows(24, 1000).await.unwrap();
    assert_eq!(
        failed.len() as i64,
        truth["failed_last_24h"]["true_count_by_updated_at"]
            .as_i64()
            .unwrap()
    );
    assert!(failed.iter().all(|r| r.status == Status::Failed));
    assert!(failed.windows(2).all(|w| w[0].updated_at >= w[1].updated_at));

    // Per pipeline and status, through the list filters and keyset pages.
    let per: BTreeMap<String, BTreeMap<String, i64>> =
        serde_json::from_value(truth["counts_by_pipeline_and_status"].clone()).unwrap();
    for (pipeline, statuses) in &per {
        let runs = all_runs(
            &store,
            ListQuery {
                pipeline_id: Some(pipeline.clone()),
                ..Default::default()
            },
        )
        .await;
        assert_eq!(runs.len() as i64, statuses.values().sum::<i64>(), "{pipeline}");
        for (status, count) in statuses {
            let runs = all_runs(
                &store,
                ListQuery {
                    pipeline_id: Some(pipeline.clone()),
                    statuses: vec![Status::parse(status).unwrap()],
                    ..Default::default()
                },
            )
            .await;
            assert_eq!(runs.len() as i64, *count, "{pipeline}/{status}");
        }
    }

    // Older than 30 days by creation instant (flujo's own answer is off by its time-window bug).
    let old = all_runs(
        &store,
        ListQuery {
            created_before: Some(now - chrono::Duration::days(30)),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(
        old.len() as i64,
        truth["older_than_30_days"]["true_count_by_created_at"]
            .as_i64()
            .unwrap()
    );

    // All 300 listed once, newest first by instant.
    let all = all_runs(&store, ListQuery::default()).await;
    assert_eq!(all.len(), 300);
    let mut ids: Vec<_> = all.iter().map(|r| r.run_id.clone()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 300);
    assert!(all.windows(2).all(|w| w[0].created_at >= w[1].created_at));

    // load_state reads every JSON column as the JSON flujo wrote (spaced style, escaped unicode).
    let mut conn = raw(&db).await;
    let rows: Vec<(String, String, Option<String>, Option<String>)> =
        sqlx::query_as("SELECT run_id, pipeline_context, last_step_output, step_history FROM workflow_state")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    for (run_id, ctx, out, hist) in rows {
        let state = store.load_state(&run_id).await.unwrap().expect("row loads");
        assert_eq!(
            state.pipeline_context,
            serde_json::from_str::<Value>(&ctx).unwrap()
        );
        assert_eq!(
            state.last_step_output,
            out.map(|o| serde_json::from_str::<Value>(&o).unwrap())
        );
        let hist = hist
            .map(|h| serde_json::from_str::<Value>(&h).unwrap())
            .unwrap_or(Value::Array(vec![]));
        assert_eq!(state.step_history, hist);
        assert!(state.created_at.is_some() && state.updated_at.is_some());
    }
}

#[tokio::test]
async fn oldest_schemas_are_upgraded_keeping_every_row_and_value() {
    for name in ["flujo-oldest-schema", "flujo-oldest-schema-null-pipeline-id"] {
        let dir = tempfile::tempdir().unwrap();
        let db = copy_fixture(&format!("{name}.db"), dir.path());
        let truth = fixture_truth(&format!("{name}.json"));
        let old_columns: Vec<&str> = truth["before"]["columns_in_order"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap())
            .collect();
        let before = raw_rows(&db, &old_columns).await;
        let truth_rows = truth["before"]["rows"].as_array().unwrap();
        assert_eq!(before.len(), truth_rows.len());

        let store = Store::open(&db).await.unwrap();
        assert_eq!(store.migration().from, SchemaKind::FlujoOldest, "{name}");
        store.close().await;
        let store = Store::open(&db).await.unwrap();
        assert!(
            store.migration().is_noop(),
            "{name}: second open changed something"
        );

        // The nine old columns are untouched, the file has flujo 0.4.35's fifteen, nothing was renamed aside.
        assert_eq!(raw_rows(&db, &old_columns).await, before, "{name}");
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(names.iter().all(|n| !n.contains("corrupt")), "{names:?}");
        let added = raw_rows(&db, &["run_id", "pipeline_name", "total_steps", "error_message"]).await;
        for row in &added {
            assert_eq!(row[2], "0", "total_steps defaults to 0 like flujo's migration");
            assert_eq!(row[3], "NULL");
        }

        // Every row is listed with what is known, under its own status.
        let stats = store.get_workflow_stats().await.unwrap();
        assert_eq!(stats.total_workflows as usize, truth_rows.len());
        let mut want: BTreeMap<String, i64> = BTreeMap::new();
        for row in truth_rows {
            let key = row["status"].as_str().unwrap_or("null").to_string();
            *want.entry(key).or_default() += 1;
        }
        assert_eq!(stats.status_counts, want, "{name}");
        assert_eq!(stats.status_counts.get("pending"), Some(&1));
        let page = store
            .list_workflows(&ListQuery {
                limit: Some(1000),
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(page.runs.len(), truth_rows.len());
        for row in truth_rows {
            let id = row["run_id"].as_str().unwrap();
            let state = store.load_state(id).await.unwrap().expect(id);
            assert_eq!(state.pipeline_id, row["pipeline_id"].as_str().unwrap_or(""));
            // pipeline_name is filled from pipeline_id, as flujo's own migration does.
            assert_eq!(state.pipeline_name, state.pipeline_id);
            assert_eq!(
                state.status,
                Status::from_stored(row["status"].as_str().map(String::from))
            );
            let ctx = row["pipeline_context"]
                .as_str()
                .map(|c| serde_json::from_str::<Value>(c).unwrap())
                .unwrap_or(Value::Null);
            assert_eq!(state.pipeline_context, ctx, "{id}");
            let created = row["created_at"].as_str().unwrap();
            assert_eq!(state.created_at, flowstate_store::time::parse_timestamp(created));
        }
        // The pipeline the null-id row belongs to is unknown, and it still counts.
        if name.ends_with("null-pipeline-id") {
            let state = store
                .load_state("run_old_null_pipeline_id")
                .await
                .unwrap()
                .unwrap();
            assert_eq!(state.pipeline_id, "");
        }
    }
}

#[tokio::test]
async fn oldest_schema_new_columns_match_what_flujo_adds() {
    let dir = tempfile::tempdir().unwrap();
    let db = copy_fixture("flujo-oldest-schema.db", dir.path());
    let truth = fixture_truth("flujo-oldest-schema.json");
    Store::open(&db).await.unwrap().close().await;
    let after = &truth["after_flujo_0_4_35"];
    let flujo_columns: Vec<&str> = after["columns_in_order"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    let mut conn = raw(&db).await;
    let ours: Vec<String> = sqlx::query_scalar("SELECT name FROM pragma_table_info('workflow_state')")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    // flujo's columns first, in flujo's order, then the five of its PostgreSQL layout flowstate adds (schema 3).
    assert_eq!(
        ours[..flujo_columns.len()],
        flujo_columns,
        "same columns in the same order as flujo's own migration"
    );
    assert_eq!(
        ours[flujo_columns.len()..],
        [
            "metadata",
            "is_background_task",
            "parent_run_id",
            "task_id",
            "background_error"
        ]
    );
    // Columns flujo added hold what flujo puts there (flujo also fills NULL step/context/status; we keep those
    // as they were, which the test above checks).
    for row in after["rows"].as_array().unwrap() {
        let id = row["run_id"].as_str().unwrap();
        let (total_steps, name, hist, err): (i64, String, Option<String>, Option<String>) = sqlx::query_as(
            "SELECT total_steps, pipeline_name, step_history, error_message FROM workflow_state WHERE run_id = ?1",
        )
        .bind(id)
        .fetch_one(&mut conn)
        .await
        .unwrap();
        assert_eq!(total_steps, row["total_steps"].as_i64().unwrap(), "{id}");
        assert_eq!(name, row["pipeline_name"].as_str().unwrap(), "{id}");
        assert_eq!(hist.as_deref(), row["step_history"].as_str(), "{id}");
        assert_eq!(err.as_deref(), row["error_message"].as_str(), "{id}");
    }
}
