//! SQLite schema version 6: a pipeline's or a version's failure groups read one range of a partial index of the
//! failed runs (`idx_flowstate_failed_pipeline`, `idx_flowstate_failed_version`). The groups must be those of the
//! rows whatever reads them: the indexes, a file at schema 5 opened read-only (no indexes: the rows), the same file
//! upgraded in place; and past the scan's bound the total is still exact.

use chrono::{DateTime, Duration, Utc};
use flowstate_store::insights::MAX_FAILURE_SCAN;
use flowstate_store::{
    FailureGroup, FailureReport, FailureScope, SchemaKind, Status, Store, StoreOptions, WorkflowState,
    SCHEMA_VERSION,
};
use sqlx::Connection;

fn scope(pipeline: Option<&str>, version: Option<&str>) -> FailureScope {
    FailureScope {
        pipeline: pipeline.map(String::from),
        version: version.map(String::from),
    }
}

/// 400 runs of pipelines "a", "b", "c" and versions "1" to "3" (every version in every pipeline), six in seven
/// failed, with messages of five signatures, none, and over the excerpt's length; three runs share each instant.
fn runs(now: DateTime<Utc>) -> Vec<WorkflowState> {
    let messages = [
        "TimeoutError: agent call exceeded 30s",
        "TimeoutError: agent call exceeded 5s",
        "UsageLimitExceededError: Cost limit of $0.50 exceeded",
        "",
        "ValidationError: field \"total\" expected number\nsecond line 42",
    ];
    (0..400i64)
        .map(|i| {
            let mut r = WorkflowState::new(format!("r{i:03}"), ["a", "b", "c"][(i % 3) as usize]);
            r.pipeline_version = ["1", "2", "3", "2"][(i % 4) as usize].to_string();
            r.status = if i % 7 == 0 {
                Status::Completed
            } else {
                Status::Failed
            };
            r.error_message = match i % 11 {
                0 => None,
                1 => Some(format!("{} {i}", "é".repeat(900))),
                k => Some(messages[(k as usize) % messages.len()].to_string()),
            };
            let at = now - Duration::minutes(i / 3 * 13);
            r.created_at = Some(at - Duration::minutes(2));
            r.updated_at = Some(at);
            r
        })
        .collect()
}

type Scoped = Vec<(FailureReport, Option<FailureGroup>)>;

/// Each window's report of each scope, and its first group's page.
async fn scoped(store: &Store, windows: &[DateTime<Utc>], scopes: &[FailureScope]) -> Scoped {
    let mut out = Vec::new();
    for since in windows {
        for scope in scopes {
            let report = store.failure_groups_in(*since, scope).await.unwrap();
            let group = match report.groups.first() {
                Some(g) => store.failure_group_in(*since, &g.key, 40, scope).await.unwrap(),
                None => None,
            };
            out.push((report, group));
        }
    }
    out
}

async fn raw(path: &std::path::Path) -> sqlx::SqliteConnection {
    sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap()
}

/// Back to schema 5: the failure indexes dropped, the execution-time indexes without the run id, the version
/// recorded as 5.
async fn downgrade_to_5(path: &std::path::Path) {
    let mut conn = raw(path).await;
    sqlx::raw_sql(
        "DROP INDEX idx_flowstate_failed_pipeline; DROP INDEX idx_flowstate_failed_version; \
         DROP INDEX idx_flowstate_timed; DROP INDEX idx_flowstate_pipeline_timed; \
         CREATE INDEX idx_flowstate_exec ON workflow_state(execution_time_ms); \
         CREATE INDEX idx_flowstate_pipeline_exec ON workflow_state(pipeline_id, execution_time_ms); \
         UPDATE flowstate_meta SET value = '5' WHERE key = 'schema_version'",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    conn.close().await.unwrap();
}

fn read_only() -> StoreOptions {
    StoreOptions {
        read_only: true,
        ..Default::default()
    }
}

#[tokio::test]
async fn a_scopes_failure_groups_are_its_rows_from_the_indexes_from_a_schema_5_file_and_after_the_upgrade() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("failures.db");
    let store = Store::open(&path).await.unwrap();
    let now = Utc::now();
    let rows = runs(now);
    store.save_many(&rows).await.unwrap();
    let windows = [
        now - Duration::hours(1),
        now - Duration::hours(24),
        now - Duration::days(30),
    ];
    let scopes = [
        scope(Some("a"), None),
        scope(None, Some("2")),
        scope(Some("a"), Some("2")),
        scope(Some("c"), Some("1")),
        scope(Some("nope"), None),
        scope(Some("b"), Some("nope")),
    ];
    let from_indexes = scoped(&store, &windows, &scopes).await;

    // Each scope's report is its failed rows: the total, every group's count and pipelines, and the samples,
    // newest first (ties by run id, newest id first).
    for (w, since) in windows.iter().enumerate() {
        for (s, sc) in scopes.iter().enumerate() {
            let mut failed: Vec<&WorkflowState> = rows
                .iter()
                .filter(|r| r.status == Status::Failed && r.updated_at.unwrap() >= *since)
                .filter(|r| sc.pipeline.as_deref().is_none_or(|p| r.pipeline_id == p))
                .filter(|r| sc.version.as_deref().is_none_or(|v| r.pipeline_version == v))
                .collect();
            failed.sort_by(|x, y| (y.updated_at, &y.run_id).cmp(&(x.updated_at, &x.run_id)));
            let (report, group) = &from_indexes[w * scopes.len() + s];
            let what = format!("since {since}, {sc:?}");
            assert_eq!(report.total_failed, failed.len() as i64, "{what}");
            assert_eq!(
                report.groups.iter().map(|g| g.count).sum::<i64>(),
                failed.len() as i64,
                "{what}"
            );
            assert!(!report.truncated, "{what}");
            for g in &report.groups {
                for p in g.pipelines.keys() {
                    assert!(sc.pipeline.as_deref().is_none_or(|want| want == p), "{what}: {p}");
                }
            }
            if let Some(g) = group {
                let newest = failed
                    .iter()
                    .find(|r| g.samples.first().is_some_and(|x| x.run_id == r.run_id));
                assert!(
                    newest.is_some(),
                    "{what}: the sample is one of the scope's failures"
                );
                let ids: Vec<&str> = g.samples.iter().map(|r| r.run_id.as_str()).collect();
                let mut sorted = ids.clone();
                sorted.sort_by_key(|id| {
                    let r = failed.iter().position(|r| r.run_id == *id).unwrap();
                    r
                });
                assert_eq!(ids, sorted, "{what}: samples newest first");
            }
        }
    }
    // The 30-day window of "a" and version "2" has failures, and the long message is cut to the excerpt.
    let wide = &from_indexes[2 * scopes.len() + 2].0;
    assert!(wide.total_failed > 10, "{:?}", wide.total_failed);
    store.close().await;

    // The same file at schema 5, read-only: no indexes, the rows read instead, the same groups.
    downgrade_to_5(&path).await;
    let ro = Store::open_with(&path, read_only()).await.unwrap();
    assert_eq!(ro.migration().from, SchemaKind::Flowstate { version: 5 });
    assert_eq!(
        scoped(&ro, &windows, &scopes).await,
        from_indexes,
        "a schema 5 file, read-only"
    );
    ro.close().await;

    // Upgraded in place: four indexes, two dropped, the version number, nothing else; the same groups.
    let upgraded = Store::open(&path).await.unwrap();
    let m = upgraded.migration().clone();
    assert_eq!(m.from, SchemaKind::Flowstate { version: 5 });
    assert_eq!(m.to_version, SCHEMA_VERSION);
    let mut changes: Vec<&str> = m.changes.iter().map(|c| c.split(" (").next().unwrap()).collect();
    changes.sort();
    assert_eq!(
        changes,
        [
            "created index idx_flowstate_failed_pipeline",
            "created index idx_flowstate_failed_version",
            "created index idx_flowstate_pipeline_timed",
            "created index idx_flowstate_timed",
            "dropped index idx_flowstate_exec",
            "dropped index idx_flowstate_pipeline_exec",
            "recorded schema version 6",
        ],
        "{:#?}",
        m.changes
    );
    assert_eq!(
        scoped(&upgraded, &windows, &scopes).await,
        from_indexes,
        "upgraded from schema 5"
    );
    // Later writes of every kind keep the indexes right: a failure recovered, a run failing, a delete.
    let mut recovered = rows
        .iter()
        .find(|r| r.status == Status::Failed && r.pipeline_id == "a")
        .unwrap()
        .clone();
    recovered.status = Status::Completed;
    let mut failing = rows
        .iter()
        .find(|r| r.status == Status::Completed && r.pipeline_id == "a")
        .unwrap()
        .clone();
    failing.status = Status::Failed;
    failing.error_message = Some("KeyError: 'late'".into());
    upgraded
        .save_many(&[recovered.clone(), failing.clone()])
        .await
        .unwrap();
    let gone = rows
        .iter()
        .rev()
        .find(|r| r.status == Status::Failed && r.pipeline_id == "a")
        .unwrap();
    upgraded.delete_state(&gone.run_id).await.unwrap();
    let after = upgraded
        .failure_groups_in(windows[2], &scope(Some("a"), None))
        .await
        .unwrap();
    let before = &from_indexes[2 * scopes.len()].0;
    let gone_counted = i64::from(gone.updated_at.unwrap() >= windows[2]);
    assert_eq!(
        after.total_failed,
        before.total_failed - gone_counted,
        "one recovered, one failed, one deleted"
    );
    assert!(after.groups.iter().any(|g| g.signature.starts_with("KeyError")));
    upgraded.close().await;
    let again = Store::open(&path).await.unwrap();
    assert!(again.migration().is_noop(), "{:?}", again.migration().changes);
    again.close().await;
}

#[tokio::test]
async fn past_the_scan_bound_a_scopes_total_is_still_exact() {
    // More failures of one scope than a group report reads: the report says it was cut, and its total counts
    // every one of them, from the index and from the rows of a schema 5 file alike.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("many.db");
    let store = Store::open(&path).await.unwrap();
    let now = Utc::now();
    let n = MAX_FAILURE_SCAN + 7;
    let runs: Vec<WorkflowState> = (0..n + 30)
        .map(|i| {
            let mut r = WorkflowState::new(format!("m{i:06}"), if i < n { "big" } else { "small" });
            r.pipeline_version = "9".into();
            r.status = Status::Failed;
            r.error_message = Some(format!("RuntimeError: batch {} failed", i % 5));
            r.updated_at = Some(now - Duration::seconds(i));
            r.created_at = r.updated_at;
            r
        })
        .collect();
    store.save_many(&runs).await.unwrap();
    let since = now - Duration::days(2);
    let check = |report: &FailureReport, want: i64, what: &str| {
        assert_eq!(report.total_failed, want, "{what}");
        assert!(report.truncated, "{what}");
        assert_eq!(
            report.groups.iter().map(|g| g.count).sum::<i64>(),
            MAX_FAILURE_SCAN,
            "{what}: the groups count what was read"
        );
    };
    let big = store
        .failure_groups_in(since, &scope(Some("big"), None))
        .await
        .unwrap();
    check(&big, n, "pipeline, indexes");
    let nine = store
        .failure_groups_in(since, &scope(None, Some("9")))
        .await
        .unwrap();
    check(&nine, n + 30, "version (of both pipelines), indexes");
    store.close().await;
    downgrade_to_5(&path).await;
    let ro = Store::open_with(&path, read_only()).await.unwrap();
    assert_eq!(
        ro.failure_groups_in(since, &scope(Some("big"), None))
            .await
            .unwrap(),
        big
    );
    assert_eq!(
        ro.failure_groups_in(since, &scope(None, Some("9")))
            .await
            .unwrap(),
        nine
    );
    ro.close().await;
}
