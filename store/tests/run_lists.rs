//! The runs list's orders, filters and totals (issue 15) on both backends: every order's keyset pages, walked
//! forwards to the end and back to the start, equal the same runs sorted in Rust; each filter equals the same
//! filter applied in Rust; totals are exact from the counters, exact from the rows below the bound, and "more than"
//! past it.

mod common;

use chrono::{DateTime, Duration, Utc};
use common::*;
use flowstate_store::{ListQuery, ListSort, RunCount, Status, Store, StoreError, WorkflowState};
use sqlx::Connection;

/// A small deterministic generator (no dependency, the same runs on every machine).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

/// 240 runs with many ties on every sort key (a shared creation instant, execution time, memory figure, last
/// update) and NULL times and memory figures.
fn runs(base: DateTime<Utc>) -> Vec<WorkflowState> {
    let mut rng = Lcg(15);
    let statuses = [
        Status::Running,
        Status::Paused,
        Status::Completed,
        Status::Failed,
        Status::Cancelled,
    ];
    (0..240)
        .map(|i| {
            let mut s = WorkflowState::new(format!("run-{:03}-{}", rng.next(1000), i), format!("p{}", i % 3));
            s.pipeline_version = format!("v{}", rng.next(3));
            s.status = statuses[rng.next(5) as usize].clone();
            let created = base + Duration::seconds(rng.next(40) as i64 * 60);
            s.created_at = Some(created);
            s.updated_at = Some(created + Duration::seconds(rng.next(20) as i64 * 30));
            s.execution_time_ms = (rng.next(5) != 0).then(|| rng.next(30) as i64 * 20_000);
            // Quarters of a MB: exact in PostgreSQL's 32-bit REAL too.
            s.memory_usage_mb = (rng.next(6) != 0).then(|| rng.next(40) as f64 * 12.25);
            s
        })
        .collect()
}

/// The runs a query lists, in its order, computed in Rust.
fn reference(all: &[WorkflowState], q: &ListQuery) -> Vec<String> {
    let mut rows: Vec<&WorkflowState> = all
        .iter()
        .filter(|s| q.statuses.is_empty() || q.statuses.contains(&s.status))
        .filter(|s| q.pipeline_id.as_ref().is_none_or(|p| &s.pipeline_id == p))
        .filter(|s| {
            q.pipeline_version
                .as_ref()
                .is_none_or(|v| &s.pipeline_version == v)
        })
        .filter(|s| {
            q.min_execution_ms
                .is_none_or(|m| s.execution_time_ms.is_some_and(|t| t >= m))
        })
        .filter(|s| {
            q.max_execution_ms
                .is_none_or(|m| s.execution_time_ms.is_some_and(|t| t <= m))
        })
        .filter(|s| {
            q.min_memory_mb
                .is_none_or(|m| s.memory_usage_mb.is_some_and(|t| t >= m))
        })
        .filter(|s| {
            q.max_memory_mb
                .is_none_or(|m| s.memory_usage_mb.is_some_and(|t| t <= m))
        })
        .filter(|s| match q.sort {
            ListSort::Slowest => s.execution_time_ms.is_some(),
            ListSort::Heaviest => s.memory_usage_mb.is_some(),
            ListSort::Newest | ListSort::Idle => true,
        })
        .collect();
    rows.sort_by(|a, b| {
        let by_id = b.run_id.as_bytes().cmp(a.run_id.as_bytes());
        match q.sort {
            ListSort::Newest => b.created_at.cmp(&a.created_at).then(by_id),
            ListSort::Slowest => b.execution_time_ms.cmp(&a.execution_time_ms).then(by_id),
            ListSort::Heaviest => b
                .memory_usage_mb
                .partial_cmp(&a.memory_usage_mb)
                .unwrap()
                .then(by_id),
            ListSort::Idle => a.updated_at.cmp(&b.updated_at).then(by_id.reverse()),
        }
    });
    rows.into_iter().map(|s| s.run_id.clone()).collect()
}

/// Every page of `q` (7 runs a page) walked forwards with `next_cursor`, then back with `prev_cursor`: the runs in
/// order, both ways.
async fn walk(store: &Store, q: &ListQuery) -> (Vec<String>, Vec<String>) {
    let mut q = ListQuery {
        limit: Some(7),
        ..q.clone()
    };
    let mut forward = Vec::new();
    let mut pages = Vec::new();
    loop {
        let page = store.list_workflows(&q).await.unwrap();
        assert!(page.runs.len() <= 7);
        forward.extend(page.runs.iter().map(|r| r.run_id.clone()));
        pages.push(page.runs.len());
        match page.next_cursor {
            Some(c) => q.cursor = Some(c),
            None => {
                // Back from the last page to the first.
                let mut backward: Vec<Vec<String>> =
                    vec![page.runs.iter().map(|r| r.run_id.clone()).collect()];
                let mut prev = page.prev_cursor;
                while let Some(c) = prev {
                    q.cursor = Some(c);
                    let page = store.list_workflows(&q).await.unwrap();
                    backward.push(page.runs.iter().map(|r| r.run_id.clone()).collect());
                    prev = page.prev_cursor;
                    assert!(
                        page.next_cursor.is_some(),
                        "a page before another has a next page"
                    );
                }
                backward.reverse();
                return (forward, backward.concat());
            }
        }
    }
}

async fn seeded(db: &common::backends::TestDb) -> (Store, Vec<WorkflowState>) {
    let base = at("2026-05-01T08:00:00Z");
    let (store, _clock) = db.open_at(base + Duration::days(1)).await;
    let all = runs(base);
    store.save_many(&all).await.unwrap();
    (store, all)
}

fn queries() -> Vec<ListQuery> {
    let mut out = Vec::new();
    for sort in ListSort::ALL {
        out.push(ListQuery {
            sort,
            ..Default::default()
        });
        out.push(ListQuery {
            sort,
            pipeline_id: Some("p1".into()),
            ..Default::default()
        });
        out.push(ListQuery {
            sort,
            statuses: vec![Status::Running, Status::Paused],
            ..Default::default()
        });
        out.push(ListQuery {
            sort,
            pipeline_version: Some("v2".into()),
            min_execution_ms: Some(200_000),
            ..Default::default()
        });
        out.push(ListQuery {
            sort,
            min_memory_mb: Some(98.0),
            max_memory_mb: Some(392.0),
            max_execution_ms: Some(400_000),
            ..Default::default()
        });
    }
    out
}

both_backends! {
    async fn every_sort_pages_both_ways_as_the_sorted_reference(db) {
        let (store, all) = seeded(&db).await;
        for q in queries() {
            let want = reference(&all, &q);
            assert!(!want.is_empty(), "{q:?} matches some runs");
            let (forward, backward) = walk(&store, &q).await;
            assert_eq!(forward, want, "forward pages of {q:?}");
            assert_eq!(backward, want, "backward pages of {q:?}");
        }
        // Where runs without a figure go: a slowest-first list leaves out runs without a time, a
        // most-memory-first one runs without a memory figure; newest and idle list every run.
        let untimed = all.iter().filter(|s| s.execution_time_ms.is_none()).count();
        let unmeasured = all.iter().filter(|s| s.memory_usage_mb.is_none()).count();
        assert!(untimed > 10 && unmeasured > 10);
        let n = |sort| reference(&all, &ListQuery { sort, ..Default::default() }).len();
        assert_eq!(n(ListSort::Slowest), all.len() - untimed);
        assert_eq!(n(ListSort::Heaviest), all.len() - unmeasured);
        assert_eq!(n(ListSort::Idle), all.len());
    }

    async fn neighbours_are_the_runs_before_and_after_in_the_list(db) {
        let (store, all) = seeded(&db).await;
        for q in queries() {
            let want = reference(&all, &q);
            for i in [0, 1, want.len() / 2, want.len() - 1] {
                let (prev, next) = store.list_neighbours(&q, &want[i]).await.unwrap().expect("listed");
                let id = |r: Option<flowstate_store::RunSummary>| r.map(|r| r.run_id);
                assert_eq!(id(prev), i.checked_sub(1).map(|j| want[j].clone()), "before {i} of {q:?}");
                assert_eq!(id(next), want.get(i + 1).cloned(), "after {i} of {q:?}");
            }
        }
        // A run without a time has no place in a slowest-first list; an unknown run none anywhere.
        let untimed = all.iter().find(|s| s.execution_time_ms.is_none()).unwrap();
        let slow = ListQuery { sort: ListSort::Slowest, ..Default::default() };
        assert_eq!(store.list_neighbours(&slow, &untimed.run_id).await.unwrap(), None);
        assert_eq!(store.list_neighbours(&ListQuery::default(), "nope").await.unwrap(), None);
    }

    async fn a_version_3_database_gets_the_list_indexes_in_place(db) {
        let (store, all) = seeded(&db).await;
        store.close().await;
        // Back to schema version 3: without the version-4 indexes, version 3 recorded.
        let v4 = ["idx_flowstate_memory", "idx_flowstate_idle", "idx_flowstate_version_created", "idx_flowstate_timed"];
        if db.is_postgres() {
            let mut conn = sqlx::PgConnection::connect(&db.location).await.unwrap();
            for name in v4 {
                sqlx::query(&format!("DROP INDEX IF EXISTS {name}")).execute(&mut conn).await.unwrap();
            }
            sqlx::query("UPDATE flowstate_meta SET value = '3' WHERE key = 'schema_version'")
                .execute(&mut conn)
                .await
                .unwrap();
            conn.close().await.unwrap();
        } else {
            let mut conn = raw(std::path::Path::new(&db.location)).await;
            for name in v4 {
                sqlx::query(&format!("DROP INDEX IF EXISTS {name}")).execute(&mut conn).await.unwrap();
            }
            sqlx::query("UPDATE flowstate_meta SET value = '3' WHERE key = 'schema_version'")
                .execute(&mut conn)
                .await
                .unwrap();
            conn.close().await.unwrap();
        }
        let (store, _) = db.open_at(at("2026-05-02T08:00:00Z")).await;
        let report = store.migration().clone();
        assert_eq!(report.from, flowstate_store::SchemaKind::Flowstate { version: 3 });
        let current = if db.is_postgres() {
            flowstate_store::postgres::PG_SCHEMA_VERSION
        } else {
            flowstate_store::SCHEMA_VERSION
        };
        assert_eq!(report.to_version, current);
        let recorded = format!("recorded schema version {current}");
        let mut wanted = vec!["created index idx_flowstate_memory", "created index idx_flowstate_idle",
            "created index idx_flowstate_version_created", "created index idx_flowstate_timed", recorded.as_str()];
        if db.is_postgres() {
            // PostgreSQL's counters of versions 4 and 5 are checked by version too: a database recorded as
            // version 3 gets them filled again (from the rows, after folding the log), nothing else.
            wanted.push("created the counters of the Pipelines page");
            wanted.push("created the counter of runs per pipeline, hour of last update, version and status");
        }
        for w in &wanted {
            assert!(report.changes.iter().any(|c| c.starts_with(w)), "{w:?} not in {:#?}", report.changes);
        }
        assert_eq!(report.changes.len(), wanted.len(), "only those: {:#?}", report.changes);
        // The runs are all there, and the lists read as before.
        let q = ListQuery { sort: ListSort::Heaviest, ..Default::default() };
        assert_eq!(walk(&store, &q).await.0, reference(&all, &q));
        store.close().await;
        // Opening again changes nothing.
        let (again, _) = db.open_at(at("2026-05-02T08:00:00Z")).await;
        assert!(again.migration().is_noop(), "{:?}", again.migration().changes);
    }

    async fn totals_are_exact_from_the_counters_and_the_rows(db) {
        let (store, all) = seeded(&db).await;
        for q in queries() {
            let want = reference(&all, &q).len() as u64;
            let got = store.count_runs(&q).await.unwrap();
            assert_eq!(got, RunCount { count: want, exact: true }, "{q:?}");
        }
        // The page fields change nothing.
        let q = ListQuery { limit: Some(3), offset: Some(5), ..Default::default() };
        assert_eq!(store.count_runs(&q).await.unwrap().count, all.len() as u64);
    }

    async fn totals_past_the_bound_say_more_than(db) {
        let base = at("2026-05-01T08:00:00Z");
        let (store, _clock) = db.open_at(base + Duration::days(1)).await;
        let n = RunCount::BOUND as usize + 25;
        for chunk in (0..n).collect::<Vec<_>>().chunks(2000) {
            let batch: Vec<WorkflowState> = chunk
                .iter()
                .map(|i| {
                    let mut s = WorkflowState::new(format!("bulk-{i:06}"), "big");
                    s.pipeline_version = "v9".into();
                    s.created_at = Some(base + Duration::seconds(*i as i64));
                    s.execution_time_ms = Some(*i as i64);
                    s
                })
                .collect();
            store.save_many(&batch).await.unwrap();
        }
        // The counters answer a pipeline exactly, whatever the size.
        let by_pipeline = ListQuery { pipeline_id: Some("big".into()), ..Default::default() };
        assert_eq!(store.count_runs(&by_pipeline).await.unwrap(), RunCount { count: n as u64, exact: true });
        // A version is counted from the rows: up to the bound, then "more than".
        let by_version = ListQuery { pipeline_version: Some("v9".into()), ..Default::default() };
        let got = store.count_runs(&by_version).await.unwrap();
        assert!(!got.exact, "{got:?}");
        assert!(got.count == RunCount::BOUND || got.count == 0, "{got:?}");
        // Below the bound, exact.
        let few = ListQuery { min_execution_ms: Some(n as i64 - 100), ..Default::default() };
        assert_eq!(store.count_runs(&few).await.unwrap(), RunCount { count: 100, exact: true });
    }

    async fn bad_list_values_are_refused_by_name(db) {
        let (store, _) = seeded(&db).await;
        let store = &store;
        let bad = |q: ListQuery, field: &'static str| async move {
            match store.list_workflows(&q).await {
                Err(StoreError::InvalidInput { field: f, .. }) if f == field => {}
                other => panic!("expected InvalidInput on {field}, got {other:?}"),
            }
            match store.count_runs(&q).await {
                Err(StoreError::InvalidInput { field: f, .. }) if f == field => {}
                other => panic!("count: expected InvalidInput on {field}, got {other:?}"),
            }
        };
        bad(ListQuery { min_execution_ms: Some(-1), ..Default::default() }, "min_execution_ms").await;
        bad(ListQuery { max_execution_ms: Some(1 << 40), ..Default::default() }, "max_execution_ms").await;
        bad(ListQuery { min_execution_ms: Some(10), max_execution_ms: Some(5), ..Default::default() }, "min_execution_ms").await;
        bad(ListQuery { min_memory_mb: Some(f64::NAN), ..Default::default() }, "min_memory_mb").await;
        bad(ListQuery { max_memory_mb: Some(-2.0), ..Default::default() }, "max_memory_mb").await;
        bad(ListQuery { min_memory_mb: Some(10.0), max_memory_mb: Some(5.0), ..Default::default() }, "min_memory_mb").await;
        bad(ListQuery { pipeline_version: Some(String::new()), ..Default::default() }, "pipeline_version").await;
        // A cursor of one order is refused by another.
        let slow = ListQuery { sort: ListSort::Slowest, limit: Some(5), ..Default::default() };
        let cursor = store.list_workflows(&slow).await.unwrap().next_cursor.unwrap();
        bad(ListQuery { sort: ListSort::Heaviest, cursor: Some(cursor.clone()), ..Default::default() }, "cursor").await;
        bad(ListQuery { cursor: Some(cursor), ..Default::default() }, "cursor").await;
    }
}
