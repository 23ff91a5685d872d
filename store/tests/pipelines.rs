//! The Pipelines page's figures and trends ([`flowstate_store::pipelines`]), on both backends: every figure equals a
//! reference computed here in Rust from the rows as the store holds them (read back whole), percentiles and the
//! memory maximum within their stated bound, through saves, status changes, other writers, deletes and cleanups;
//! and the in-place upgrade from schema version 3.

mod common;

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use common::backends::OtherRow;
use common::*;
use flowstate_store::pipelines::{PipelineReport, MEM_UNITS_MAX};
use flowstate_store::{CleanupPolicy, Status, Store, WorkflowState};

const NOW: &str = "2026-05-20T12:30:00Z";

fn status_of(i: u64) -> Status {
    match i % 10 {
        0..=4 => Status::Completed,
        5 | 6 => Status::Failed,
        7 => Status::Cancelled,
        8 => Status::Running,
        _ => Status::Paused,
    }
}

/// A deterministic spread of runs over 12 days: four pipelines (one hostile name), every status, times from a few
/// ms to minutes (some missing), memory with fractions (some missing, one huge).
fn runs(n: u64, now: DateTime<Utc>) -> Vec<WorkflowState> {
    let pipelines = ["alpha", "beta", "gamma", "<b>x\"&'</b>"];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..n)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let p = pipelines[(x % 4) as usize];
            let mut s = WorkflowState::new(format!("r{i:05}"), p);
            s.status = status_of(x >> 8);
            let age = Duration::seconds(((x >> 16) % (12 * 86_400)) as i64);
            s.updated_at = Some(now - age);
            s.created_at = Some(now - age - Duration::seconds(((x >> 40) % 7200) as i64));
            s.execution_time_ms = match (x >> 24) % 9 {
                0 => None,
                1 => Some(((x >> 30) % 31) as i64),
                k => Some(((x >> 30) % (1 << (6 + 2 * k))) as i64),
            };
            s.memory_usage_mb = match (x >> 34) % 7 {
                0 => None,
                1 => Some(0.0004),
                2 => Some(3.0e12),
                k => Some(((x >> 36) % 100_000) as f64 / 37.0 * k as f64),
            };
            s
        })
        .collect()
}

/// What the counters keep of a memory figure: thousandths of a MB, rounded, within `[0, 2^40]`.
fn mem_units(mb: f64) -> i64 {
    (mb * 1000.0).round().clamp(0.0, MEM_UNITS_MAX as f64) as i64
}

#[derive(Default, Debug)]
struct Reference {
    statuses: BTreeMap<String, i64>,
    times: Vec<i64>,
    mems: Vec<i64>,
}

/// Every run as the store holds it.
async fn all_runs(store: &Store) -> Vec<WorkflowState> {
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let batch = store.export_runs(after.as_deref(), 500).await.unwrap();
        if batch.is_empty() {
            return out;
        }
        after = batch.last().map(|r| r.run_id.clone());
        out.extend(batch);
    }
}

fn reference(rows: &[WorkflowState], since: DateTime<Utc>) -> BTreeMap<String, Reference> {
    let mut out: BTreeMap<String, Reference> = BTreeMap::new();
    for r in rows {
        if r.updated_at.is_none_or(|u| u < since) {
            continue;
        }
        let e = out.entry(r.pipeline_id.clone()).or_default();
        *e.statuses.entry(r.status.as_str().to_string()).or_insert(0) += 1;
        if let Some(t) = r.execution_time_ms {
            e.times.push(t);
        }
        if let Some(m) = r.memory_usage_mb {
            e.mems.push(mem_units(m));
        }
    }
    out
}

/// `reported` within `relative_error` of `exact` (1/32 from fine buckets, 1/8 from coarse ones), and exact below
/// the first bucket wider than a unit (32, 8).
fn within(reported: f64, exact: f64, relative_error: f64, what: &str) {
    let bound = if exact < 1.0 / relative_error {
        0.0
    } else {
        exact * relative_error
    };
    assert!(
        (reported - exact).abs() <= bound + 1e-9,
        "{what}: {reported} against the exact {exact} (bound {bound})"
    );
}

fn nearest_rank(sorted: &[i64], p: f64) -> f64 {
    let rank = ((p * sorted.len() as f64).ceil() as usize).max(1);
    sorted[rank - 1] as f64
}

/// Every figure of `report` against the reference of the rows.
fn check(report: &PipelineReport, rows: &[WorkflowState], what: &str) {
    let want = reference(rows, report.since);
    let got: Vec<&str> = report.pipelines.iter().map(|p| p.pipeline_id.as_str()).collect();
    let mut names: Vec<&str> = got.clone();
    names.sort_unstable();
    assert_eq!(
        names,
        want.keys().map(String::as_str).collect::<Vec<_>>(),
        "{what}: pipelines"
    );
    for p in &report.pipelines {
        let r = &want[&p.pipeline_id];
        let what = format!("{what}, {}", p.pipeline_id);
        assert_eq!(p.statuses, r.statuses, "{what}: runs per status");
        assert_eq!(p.runs, r.statuses.values().sum::<i64>(), "{what}");
        let finished: i64 = ["completed", "failed", "cancelled"]
            .iter()
            .map(|s| r.statuses.get(*s).copied().unwrap_or(0))
            .sum();
        let failed = r.statuses.get("failed").copied().unwrap_or(0);
        assert_eq!((p.finished, p.failed), (finished, failed), "{what}");
        assert_eq!(
            p.failure_rate,
            (finished > 0).then(|| failed as f64 / finished as f64),
            "{what}: failed of finished runs only (running and paused not in the denominator)"
        );
        let mut times = r.times.clone();
        times.sort_unstable();
        assert_eq!(p.time.count, times.len() as i64, "{what}: timed runs");
        if times.is_empty() {
            assert_eq!((p.avg_ms, p.time.p50), (None, None), "{what}");
        } else {
            let mean = times.iter().map(|t| *t as f64).sum::<f64>() / times.len() as f64;
            assert!(
                (p.avg_ms.unwrap() - mean).abs() < 1e-6 * mean.max(1.0),
                "{what}: mean time"
            );
            let e = report.relative_error;
            assert_eq!(p.time.relative_error, e, "{what}");
            within(
                p.time.p50.unwrap(),
                nearest_rank(&times, 0.50),
                e,
                &format!("{what}: p50"),
            );
            within(
                p.time.p95.unwrap(),
                nearest_rank(&times, 0.95),
                e,
                &format!("{what}: p95"),
            );
            within(
                p.time.p99.unwrap(),
                nearest_rank(&times, 0.99),
                e,
                &format!("{what}: p99"),
            );
        }
        assert_eq!(p.memory_runs, r.mems.len() as i64, "{what}: runs with memory");
        if let Some(max) = r.mems.iter().max() {
            let mean = r.mems.iter().map(|m| *m as f64).sum::<f64>() / r.mems.len() as f64 / 1000.0;
            assert!(
                (p.avg_memory_mb.unwrap() - mean).abs() < 1e-6 * mean.max(1.0),
                "{what}: mean memory"
            );
            within(
                p.max_memory_mb.unwrap() * 1000.0,
                *max as f64,
                report.relative_error,
                &format!("{what}: max memory"),
            );
        } else {
            assert_eq!((p.avg_memory_mb, p.max_memory_mb), (None, None), "{what}");
        }
        // The newest run by creation, whatever the window.
        let newest = rows
            .iter()
            .filter(|x| x.pipeline_id == p.pipeline_id)
            .max_by(|a, b| a.created_at.cmp(&b.created_at).then(a.run_id.cmp(&b.run_id)))
            .unwrap();
        assert_eq!(
            p.last_run.as_ref().map(|(id, at)| (id.as_str(), *at)),
            Some((newest.run_id.as_str(), newest.created_at)),
            "{what}: newest run"
        );
    }
    // Most failures first.
    assert!(
        report.pipelines.windows(2).all(|w| w[0].failed >= w[1].failed),
        "{what}: order"
    );
}

async fn check_windows(store: &Store, now: DateTime<Utc>, what: &str) {
    let rows = all_runs(store).await;
    for since in [
        now - Duration::hours(3),
        now - Duration::minutes(2 * 1440 + 17),
        now - Duration::days(7),
        now - Duration::days(30),
        now,
    ] {
        let report = store.pipeline_report(since).await.unwrap();
        assert!(report.since <= since && since - report.since < Duration::hours(1));
        assert_eq!(
            report.since.timestamp() % 3600,
            0,
            "the window starts at a whole hour"
        );
        // Windows within their first day read the hours' fine histograms (1/32); longer ones whole days too, in
        // coarse buckets (1/8).
        // (Runs last updated on a later day than the window's first, partial one are read from the days' coarse
        // histograms, even for a window starting today: their updates lie ahead of the clock.)
        let first_day = (report.since - Duration::seconds(1))
            .date_naive()
            .succ_opt()
            .unwrap()
            .and_hms_opt(0, 0, 0);
        let first_day = first_day.unwrap().and_utc();
        let coarse = rows.iter().any(|r| {
            r.updated_at.is_some_and(|u| u >= first_day)
                && (r.execution_time_ms.is_some() || r.memory_usage_mb.is_some())
        });
        assert_eq!(
            report.relative_error,
            if coarse { 1.0 / 8.0 } else { 1.0 / 32.0 },
            "{what}, since {since}: the stated precision"
        );
        check(&report, &rows, &format!("{what}, since {since}"));
    }
    // Trends of every pipeline (the summed counters) and of each, against the rows.
    let mut pipelines: Vec<Option<String>> = vec![None];
    pipelines.extend(
        rows.iter()
            .map(|r| Some(r.pipeline_id.clone()))
            .collect::<std::collections::BTreeSet<_>>(),
    );
    for pipeline in pipelines {
        let trend = store.pipeline_trend(7, pipeline.as_deref()).await.unwrap();
        check_trend(&trend, &rows, &format!("{what}, trend of {pipeline:?}"));
    }
    let counters = store.verify_counters().await.unwrap();
    assert!(
        counters.is_exact(),
        "{what}: {:?}",
        &counters.differences[..counters.differences.len().min(5)]
    );
}

/// Every day of a trend and both periods against the rows (of its pipeline, or all).
fn check_trend(trend: &flowstate_store::pipelines::Trend, rows: &[WorkflowState], what: &str) {
    assert_eq!(
        trend.relative_error,
        1.0 / 8.0,
        "{what}: daily histograms are coarse"
    );
    let of = |from: DateTime<Utc>, to: DateTime<Utc>| -> Vec<&WorkflowState> {
        rows.iter()
            .filter(|r| trend.pipeline_id.as_ref().is_none_or(|p| *p == r.pipeline_id))
            .filter(|r| r.updated_at.is_some_and(|u| u >= from && u < to))
            .collect()
    };
    let expect = |runs: Vec<&WorkflowState>, got: (i64, i64, i64, Option<f64>), what: &str| {
        let failed = runs.iter().filter(|r| r.status == Status::Failed).count() as i64;
        let finished = runs.iter().filter(|r| r.status.is_terminal()).count() as i64;
        assert_eq!(
            (got.0, got.1, got.2),
            (runs.len() as i64, finished, failed),
            "{what}: runs, finished, failed"
        );
        let mut times: Vec<i64> = runs.iter().filter_map(|r| r.execution_time_ms).collect();
        times.sort_unstable();
        match got.3 {
            Some(p) => within(
                p,
                nearest_rank(&times, 0.95),
                trend.relative_error,
                &format!("{what}: p95"),
            ),
            None => assert!(times.is_empty(), "{what}: no p95"),
        }
    };
    for d in &trend.daily {
        let runs = of(d.day, d.day + Duration::days(1));
        let mut statuses: BTreeMap<String, i64> = BTreeMap::new();
        for r in &runs {
            *statuses.entry(r.status.as_str().to_string()).or_insert(0) += 1;
        }
        assert_eq!(d.statuses, statuses, "{what}, {}: per status", d.day);
        expect(
            runs,
            (d.runs, d.finished, d.failed, d.p95_ms),
            &format!("{what}, {}", d.day),
        );
    }
    for (p, name) in [
        (&trend.current, "this period"),
        (&trend.previous, "the previous period"),
    ] {
        let runs = of(p.from, p.to);
        expect(
            runs,
            (p.runs, p.finished, p.failed, p.p95_ms),
            &format!("{what}, {name}"),
        );
    }
}

both_backends! {
    async fn pipeline_figures_equal_a_reference_from_the_rows_through_every_kind_of_change(db) {
        let now = at(NOW);
        let (store, clock) = db.open_at(now).await;
        let mut all = runs(700, now);
        store.save_many(&all).await.unwrap();
        check_windows(&store, now, "saved").await;

        // Status changes, progress saves within the hour, moves across hours and days, times and memory changed.
        clock.set(now + Duration::minutes(20));
        let later = now + Duration::minutes(20);
        for (i, r) in all.iter_mut().enumerate().filter(|(i, _)| i % 7 == 0) {
            r.status = if i % 2 == 0 { Status::Failed } else { Status::Completed };
            r.updated_at = Some(if i % 3 == 0 { later } else { r.updated_at.unwrap() + Duration::days(1) });
            r.execution_time_ms = r.execution_time_ms.map(|t| t * 3 + 1);
            r.memory_usage_mb = if i % 5 == 0 { None } else { Some(i as f64 * 1.25) };
            store.save_state(r).await.unwrap();
        }
        check_windows(&store, later, "changed").await;

        // Another writer (flujo's own statement), deletes, and a cleanup.
        for i in 0..20 {
            db.other_writer_save(&OtherRow {
                run_id: &format!("o{i}"),
                pipeline_id: if i % 2 == 0 { "alpha" } else { "delta" },
                status: if i % 3 == 0 { "failed" } else { "running" },
                created_at: "2026-05-19T10:00:00Z",
                updated_at: "2026-05-20T11:15:00Z",
                error_message: None,
                execution_time_ms: Some(1000 + i),
            })
            .await;
        }
        for r in all.iter().step_by(11) {
            store.delete_state(&r.run_id).await.unwrap();
        }
        db.other_writer_delete("r00003").await;
        check_windows(&store, later, "other writers and deletes").await;
        let removed = store.cleanup_old_workflows(&CleanupPolicy::older_than_days(6)).await.unwrap();
        assert!(removed > 0);
        check_windows(&store, later, "cleaned up").await;

        // Rebuilt from the rows: the same figures.
        let before = store.pipeline_report(later - Duration::days(3)).await.unwrap();
        assert!(store.rebuild_counters().await.unwrap().is_exact());
        assert_eq!(store.pipeline_report(later - Duration::days(3)).await.unwrap(), before);
        assert!(store.pipeline_report(later + Duration::hours(2)).await.is_err(), "a start in the future");
        store.close().await;
    }

    async fn trends_compare_this_period_with_the_previous_one_and_mark_regressions(db) {
        let now = at(NOW);
        let (store, _) = db.open_at(now).await;
        let mut rows = Vec::new();
        // 14 days: the 7 before this period fail 1 in 10 finished runs, this period 3 in 10 (a regression);
        // running runs (many, the days before) never count in the denominator. Times: the same spread both
        // periods for "steady", ten times longer this period for "slow".
        for d in 0..14i64 {
            let day = now - Duration::days(d);
            for k in 0..20i64 {
                let mut s = WorkflowState::new(format!("t{d:02}-{k:02}"), if k % 2 == 0 { "steady" } else { "slow" });
                let fails = if d < 7 { 6 } else { 2 };
                s.status = if k < fails { Status::Failed } else if k < 20 { Status::Completed } else { Status::Running };
                s.updated_at = Some(day - Duration::minutes(k));
                s.created_at = s.updated_at;
                let base = 100 + 10 * k;
                s.execution_time_ms = Some(if k % 2 == 1 && d < 7 { base * 10 } else { base });
                rows.push(s);
            }
            if d >= 7 {
                for k in 0..15 {
                    let mut s = WorkflowState::new(format!("live{d:02}-{k:02}"), "steady");
                    s.status = Status::Running;
                    s.updated_at = Some(day - Duration::minutes(30 + k));
                    rows.push(s);
                }
            }
        }
        store.save_many(&rows).await.unwrap();

        let all = store.pipeline_trend(7, None).await.unwrap();
        assert_eq!(all.daily.len(), 7);
        assert_eq!(all.daily.last().unwrap().day, at("2026-05-20T00:00:00Z"));
        assert_eq!(all.current.from, at("2026-05-14T00:00:00Z"));
        assert_eq!(all.previous.from, at("2026-05-07T00:00:00Z"));
        assert_eq!(all.previous.to, all.current.from);
        // The reference per day from the rows.
        for day in &all.daily {
            let of_day: Vec<&WorkflowState> = rows
                .iter()
                .filter(|r| {
                    let u = r.updated_at.unwrap();
                    u >= day.day && u < day.day + Duration::days(1)
                })
                .collect();
            assert_eq!(day.runs, of_day.len() as i64, "{}", day.day);
            let failed = of_day.iter().filter(|r| r.status == Status::Failed).count() as i64;
            let finished = of_day.iter().filter(|r| r.status.is_terminal()).count() as i64;
            assert_eq!((day.failed, day.finished), (failed, finished), "{}", day.day);
            let mut times: Vec<i64> = of_day.iter().filter_map(|r| r.execution_time_ms).collect();
            times.sort_unstable();
            match day.p95_ms {
                Some(p) => within(p, nearest_rank(&times, 0.95), all.relative_error, "daily p95"),
                None => assert!(times.is_empty()),
            }
        }
        let total_prev: i64 = rows
            .iter()
            .filter(|r| {
                let u = r.updated_at.unwrap();
                u >= all.previous.from && u < all.previous.to
            })
            .count() as i64;
        assert_eq!(all.previous.runs, total_prev);
        assert!(all.failure_rate_regression, "{:?} vs {:?}", all.current, all.previous);
        assert!(all.current.failure_rate.unwrap() >= 0.29 && all.previous.failure_rate.unwrap() <= 0.11);

        let slow = store.pipeline_trend(7, Some("slow")).await.unwrap();
        assert!(slow.p95_regression, "{:?} vs {:?}", slow.current.p95_ms, slow.previous.p95_ms);
        let steady = store.pipeline_trend(7, Some("steady")).await.unwrap();
        assert!(!steady.p95_regression);
        assert_eq!(steady.daily.iter().map(|d| d.runs).sum::<i64>(), 70);
        let none = store.pipeline_trend(30, Some("nope")).await.unwrap();
        assert_eq!((none.current.runs, none.previous.runs), (0, 0));
        assert!(!none.failure_rate_regression && !none.p95_regression, "nothing to compare");
        assert!(store.pipeline_trend(0, None).await.is_err());
        assert!(store.pipeline_trend(400, None).await.is_err());
        store.close().await;
    }
}

/// A file of schema version 3 (the counters of version 3, without version 4's tables or triggers) upgrades in
/// place: version 4's counters are created and filled, every counter exact, the figures those of the rows.
#[tokio::test]
async fn a_version_3_sqlite_file_upgrades_in_place() {
    use sqlx::Connection;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("v3.db");
    let now = at(NOW);
    let (store, _) = open_at(&db, now).await;
    store.save_many(&runs(300, now)).await.unwrap();
    store.close().await;
    // Back to version 3: no version-4 tables, version 3's triggers gone (a v3 file's triggers differ from these,
    // so the migration replaces them all the same), the record says 3.
    let mut conn = raw(&db).await;
    let triggers: Vec<String> = sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'trigger'")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    for t in triggers {
        sqlx::query(&format!("DROP TRIGGER {t}"))
            .execute(&mut conn)
            .await
            .unwrap();
    }
    for t in [
        "flowstate_pipe_status_daily",
        "flowstate_pipe_exec_hourly",
        "flowstate_pipe_exec_daily",
        "flowstate_pipe_mem_hourly",
        "flowstate_pipe_mem_daily",
        "flowstate_all_status_daily",
        "flowstate_all_exec_daily",
    ] {
        sqlx::query(&format!("DROP TABLE {t}"))
            .execute(&mut conn)
            .await
            .unwrap();
    }
    sqlx::query("UPDATE flowstate_meta SET value = '3' WHERE key = 'schema_version'")
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();

    let (store, _) = open_at(&db, now).await;
    let m = store.migration().clone();
    assert_eq!(m.from, flowstate_store::SchemaKind::Flowstate { version: 3 });
    assert_eq!(m.to_version, flowstate_store::SCHEMA_VERSION);
    let recorded = format!("recorded schema version {}", flowstate_store::SCHEMA_VERSION);
    for wanted in [
        "created table flowstate_pipe_exec_daily",
        "filled the counters from the rows",
        &recorded,
    ] {
        assert!(
            m.changes.iter().any(|c| c.starts_with(wanted)),
            "{wanted}: {:#?}",
            m.changes
        );
    }
    check_windows(&store, now, "upgraded").await;
    store.close().await;
    let (store, _) = open_at(&db, now).await;
    assert!(store.migration().is_noop(), "{:?}", store.migration().changes);
    store.close().await;
}

/// The same on PostgreSQL: a database of version 3 (version 4's counters gone, pending deltas in the log) gets them
/// in place without a recount of the older counters.
#[tokio::test]
async fn a_version_3_postgres_database_upgrades_in_place() {
    use sqlx::Connection;
    let Some(url) = flowstate_testkit::pg::fresh_database_or_skip("pipelines_v3").await else {
        return;
    };
    let now = at(NOW);
    let clock = flowstate_store::FixedClock::new(now);
    let options = || flowstate_store::StoreOptions {
        clock: std::sync::Arc::new(clock.clone()),
        ..Default::default()
    };
    let store = Store::open_with(&url, options()).await.unwrap();
    store.save_many(&runs(300, now)).await.unwrap();
    store.close().await;
    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    for t in [
        "flowstate_pipe_status_daily",
        "flowstate_pipe_exec_hourly",
        "flowstate_pipe_exec_daily",
        "flowstate_pipe_mem_hourly",
        "flowstate_pipe_mem_daily",
        "flowstate_all_status_daily",
        "flowstate_all_exec_daily",
    ] {
        sqlx::raw_sql(&format!("DROP VIEW {t}; DROP TABLE {t}_base"))
            .execute(&mut conn)
            .await
            .unwrap();
    }
    sqlx::raw_sql(
        "ALTER TABLE flowstate_delta DROP COLUMN dy, DROP COLUMN m, DROP COLUMN mb; \
         UPDATE flowstate_meta SET value = '3' WHERE key = 'schema_version'; \
         INSERT INTO flowstate_counts_base VALUES ('=marker', '=p', 0, 1, 0, 0)",
    )
    .execute(&mut conn)
    .await
    .unwrap();

    let store = Store::open_with(&url, options()).await.unwrap();
    let m = store.migration().clone();
    assert_eq!(m.from, flowstate_store::SchemaKind::Flowstate { version: 3 });
    assert!(
        m.changes
            .iter()
            .any(|c| c.contains("counters of the Pipelines page")),
        "{:#?}",
        m.changes
    );
    let marker: i64 =
        sqlx::query_scalar("SELECT count(*) FROM flowstate_counts_base WHERE status_key = '=marker'")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(marker, 1, "no recount of the older counters");
    sqlx::query("DELETE FROM flowstate_counts_base WHERE status_key = '=marker'")
        .execute(&mut conn)
        .await
        .unwrap();
    check_windows(&store, now, "upgraded").await;
    // Kept by the triggers afterwards.
    let mut more = runs(40, now);
    for r in &mut more {
        r.run_id = format!("n{}", r.run_id);
    }
    store.save_many(&more).await.unwrap();
    check_windows(&store, now, "upgraded, then saved").await;
    store.close().await;
    let store = Store::open_with(&url, options()).await.unwrap();
    assert!(store.migration().is_noop(), "{:?}", store.migration().changes);
    store.close().await;
    conn.close().await.unwrap();
}

/// A file of schema version 4 (the Pipelines counters with fine daily histograms, no summed counters, version 4's
/// scratch tables and triggers) upgrades in place to 5: the daily histograms are refilled in coarse buckets, the
/// summed counters created and filled, every counter exact and every figure that of the rows within 1/8.
#[tokio::test]
async fn a_version_4_sqlite_file_upgrades_in_place() {
    use sqlx::Connection;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("v4.db");
    let now = at(NOW);
    let (store, _) = open_at(&db, now).await;
    store.save_many(&runs(300, now)).await.unwrap();
    store.close().await;
    // Back to version 4: its daily histograms had the hours' fine buckets (summed from the hourly ones here), its
    // delta table no coarse columns, no summed counters; its triggers differ from these (dropped here).
    let mut conn = raw(&db).await;
    let triggers: Vec<String> = sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'trigger'")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    for t in triggers {
        sqlx::query(&format!("DROP TRIGGER {t}"))
            .execute(&mut conn)
            .await
            .unwrap();
    }
    sqlx::raw_sql(
        "DROP TABLE flowstate_all_status_daily; DROP TABLE flowstate_all_exec_daily; DROP TABLE flowstate_delta; \
         CREATE TABLE flowstate_delta (id INTEGER PRIMARY KEY, o, o_status, o_pipeline, o_created, o_updated, \
         o_exec, o_bucket, o_mem, o_mbucket, n, n_status, n_pipeline, n_created, n_updated, n_exec, n_bucket, \
         n_mem, n_mbucket, o_day, n_day); \
         DELETE FROM flowstate_pipe_exec_daily; \
         INSERT INTO flowstate_pipe_exec_daily SELECT hour / 24, pipeline_key, bucket, sum(runs), sum(sum_hi), \
         sum(sum_lo) FROM flowstate_pipe_exec_hourly GROUP BY 1, 2, 3; \
         DELETE FROM flowstate_pipe_mem_daily; \
         INSERT INTO flowstate_pipe_mem_daily SELECT hour / 24, pipeline_key, bucket, sum(runs), sum(sum_hi), \
         sum(sum_lo) FROM flowstate_pipe_mem_hourly GROUP BY 1, 2, 3; \
         UPDATE flowstate_meta SET value = '4' WHERE key = 'schema_version'",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    // Fine buckets a coarse histogram cannot hold (e.g. 36 ms: 32 + 4, whose coarse bucket is 32).
    let buckets: Vec<i64> = sqlx::query_scalar("SELECT bucket FROM flowstate_pipe_exec_daily")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    let coarse = |v: i64| {
        if v < 8 {
            v
        } else {
            let s = 61 - v.leading_zeros() as i64;
            (v >> s) << s
        }
    };
    let fine = buckets.iter().filter(|b| coarse(**b) != **b).count();
    assert!(fine > 0, "the version-4 daily histogram has fine buckets");
    conn.close().await.unwrap();

    let (store, _) = open_at(&db, now).await;
    let m = store.migration().clone();
    assert_eq!(m.from, flowstate_store::SchemaKind::Flowstate { version: 4 });
    assert_eq!(m.to_version, flowstate_store::SCHEMA_VERSION);
    let recorded = format!("recorded schema version {}", flowstate_store::SCHEMA_VERSION);
    for wanted in [
        "created table flowstate_all_exec_daily",
        "filled the counters from the rows",
        recorded.as_str(),
    ] {
        assert!(
            m.changes.iter().any(|c| c.starts_with(wanted)),
            "{wanted}: {:#?}",
            m.changes
        );
    }
    check_windows(&store, now, "upgraded from 4").await;
    let mut more = runs(40, now);
    for r in &mut more {
        r.run_id = format!("n{}", r.run_id);
    }
    store.save_many(&more).await.unwrap();
    check_windows(&store, now, "upgraded from 4, then saved").await;
    store.close().await;
    let (store, _) = open_at(&db, now).await;
    assert!(store.migration().is_noop(), "{:?}", store.migration().changes);
    store.close().await;
}

/// The same on PostgreSQL: a database of version 4 (fine daily histograms, no summed counters, deltas pending in
/// the log) gets version 5's Pipelines counters in place, refilled from the rows, without a recount of the
/// overview's counters.
#[tokio::test]
async fn a_version_4_postgres_database_upgrades_in_place() {
    use sqlx::Connection;
    let Some(url) = flowstate_testkit::pg::fresh_database_or_skip("pipelines_v4").await else {
        return;
    };
    let now = at(NOW);
    let clock = flowstate_store::FixedClock::new(now);
    let options = || flowstate_store::StoreOptions {
        clock: std::sync::Arc::new(clock.clone()),
        ..Default::default()
    };
    let store = Store::open_with(&url, options()).await.unwrap();
    let all = runs(300, now);
    store.save_many(&all[..250]).await.unwrap();
    store.close().await;
    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    // Version 4's daily views and folded counts kept the hours' fine buckets.
    let mut v4 = String::from(
        "SELECT flowstate_fold(); DROP VIEW flowstate_all_status_daily; \
         DROP TABLE flowstate_all_status_daily_base; DROP VIEW flowstate_all_exec_daily; \
         DROP TABLE flowstate_all_exec_daily_base; ",
    );
    for (kind, b) in [("exec", "b"), ("mem", "mb")] {
        let e = if kind == "exec" { "e" } else { "m" };
        v4.push_str(&format!(
            "DELETE FROM flowstate_pipe_{kind}_daily_base; \
             INSERT INTO flowstate_pipe_{kind}_daily_base SELECT floor(hour / 24.0)::int8, pipeline_key, bucket, 0, \
             sum(runs), sum(vsum) FROM flowstate_pipe_{kind}_hourly_base GROUP BY 1, 2, 3; \
             CREATE OR REPLACE VIEW flowstate_pipe_{kind}_daily AS SELECT day, pipeline_key, bucket, slot, runs, vsum \
             FROM flowstate_pipe_{kind}_daily_base UNION ALL SELECT dy AS day, pk AS pipeline_key, {b} AS bucket, \
             (-1)::int2 AS slot, (sum(d))::int8 AS runs, (COALESCE(sum({e} * d), 0))::int8 AS vsum \
             FROM flowstate_delta WHERE dy IS NOT NULL AND {b} IS NOT NULL GROUP BY dy, pk, {b}; "
        ));
    }
    v4.push_str(
        "UPDATE flowstate_meta SET value = '4' WHERE key = 'schema_version'; \
         INSERT INTO flowstate_counts_base VALUES ('=marker', '=p', 0, 1, 0, 0)",
    );
    sqlx::raw_sql(&v4).execute(&mut conn).await.unwrap();
    drop(conn);
    // Deltas pending in the log at the upgrade: another writer's saves (version 4's triggers append as these do).
    // The fold lock held meanwhile: a fold of this build's (one insert in 256 tries one) would write the counters
    // dropped above; a writer's fold skips when another holds the lock.
    let mut holder = sqlx::PgConnection::connect(&url).await.unwrap();
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(flowstate_store::postgres::FOLD_LOCK)
        .execute(&mut holder)
        .await
        .unwrap();
    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    for r in &all[250..] {
        sqlx::query(
            "INSERT INTO workflow_state (run_id, pipeline_id, pipeline_name, pipeline_version, current_step_index, \
             status, created_at, updated_at, execution_time_ms, memory_usage_mb) \
             VALUES ($1, $2, $2, '1', 0, $3, $4, $5, $6, $7)",
        )
        .bind(&r.run_id)
        .bind(&r.pipeline_id)
        .bind(r.status.as_str())
        .bind(r.created_at.unwrap())
        .bind(r.updated_at.unwrap())
        .bind(r.execution_time_ms.map(|t| t as i32))
        .bind(r.memory_usage_mb.map(|m| m as f32))
        .execute(&mut conn)
        .await
        .unwrap();
    }
    let pending: i64 = sqlx::query_scalar("SELECT count(*) FROM flowstate_delta")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert!(pending > 0, "deltas pending in the log");
    holder.close().await.unwrap();

    let store = Store::open_with(&url, options()).await.unwrap();
    let m = store.migration().clone();
    assert_eq!(m.from, flowstate_store::SchemaKind::Flowstate { version: 4 });
    assert_eq!(m.to_version, flowstate_store::postgres::PG_SCHEMA_VERSION);
    assert!(
        m.changes
            .iter()
            .any(|c| c.contains("counters of the Pipelines page")),
        "{:#?}",
        m.changes
    );
    let marker: i64 =
        sqlx::query_scalar("SELECT count(*) FROM flowstate_counts_base WHERE status_key = '=marker'")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(marker, 1, "no recount of the overview's counters");
    sqlx::query("DELETE FROM flowstate_counts_base WHERE status_key = '=marker'")
        .execute(&mut conn)
        .await
        .unwrap();
    check_windows(&store, now, "upgraded from 4").await;
    let mut more = runs(40, now);
    for r in &mut more {
        r.run_id = format!("n{}", r.run_id);
    }
    store.save_many(&more).await.unwrap();
    check_windows(&store, now, "upgraded from 4, then saved").await;
    store.close().await;
    let store = Store::open_with(&url, options()).await.unwrap();
    assert!(store.migration().is_noop(), "{:?}", store.migration().changes);
    store.close().await;
    conn.close().await.unwrap();
}

/// The save cost of the Pipelines counters on SQLite, measured, not asserted (`--ignored`; run in release): saves
/// that change a run's status and move it to a later hour (the saves that touch every new counter), on the same
/// file with all seven delta triggers of the Pipelines counters, without schema 5's two summed ones, and without
/// any, interleaved, median of 5 rounds each. (Schema 5's coarse buckets are computed in the delta insert, which
/// every configuration runs.)
#[tokio::test]
#[ignore = "a measurement: cargo test --release -p flowstate-store --test pipelines -- --ignored --nocapture"]
async fn save_cost_of_the_pipeline_counters() {
    use sqlx::Connection;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("cost.db");
    let now = at(NOW);
    // NORMAL: no fsync per commit, so the triggers' work is not lost in the disk's noise.
    let clock = flowstate_store::FixedClock::new(now);
    let store = Store::open_with(
        &db,
        flowstate_store::StoreOptions {
            durability: flowstate_store::Durability::Normal,
            clock: std::sync::Arc::new(clock.clone()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let base = runs(2000, now);
    store.save_many(&base).await.unwrap();
    let triggers: Vec<(String, String)> = {
        let mut conn = raw(&db).await;
        let t = sqlx::query_as(
            "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND (name LIKE 'flowstate_delta_pipe_%' \
             OR name LIKE 'flowstate_delta_all_%')",
        )
        .fetch_all(&mut conn)
        .await
        .unwrap();
        conn.close().await.unwrap();
        t
    };
    assert_eq!(triggers.len(), 7);
    // 0: every trigger, 1: without the summed counters (schema 4's set), 2: none of the Pipelines counters.
    let mut cost: [Vec<f64>; 3] = Default::default();
    let mut t = now;
    for round in 0..15 {
        let config = round % 3;
        {
            let mut conn = raw(&db).await;
            for (name, sql) in &triggers {
                sqlx::query(&format!("DROP TRIGGER IF EXISTS {name}"))
                    .execute(&mut conn)
                    .await
                    .unwrap();
                let on = match config {
                    0 => true,
                    1 => !name.contains("_all_"),
                    _ => false,
                };
                if on {
                    sqlx::query(sql).execute(&mut conn).await.unwrap();
                }
            }
            conn.close().await.unwrap();
        }
        t += Duration::hours(1);
        clock.set(t);
        let started = std::time::Instant::now();
        for (i, r) in base.iter().enumerate().take(1000) {
            let mut r = r.clone();
            r.status = if (i + round) % 2 == 0 {
                Status::Failed
            } else {
                Status::Completed
            };
            r.updated_at = Some(t);
            store.save_state(&r).await.unwrap();
        }
        cost[config].push(started.elapsed().as_secs_f64() * 1e6 / 1000.0);
    }
    for c in &mut cost {
        c.sort_by(f64::total_cmp);
    }
    println!(
        "save (status change, new hour), µs per save, median of 5: every Pipelines counter {:.0}, without the two \
         summed per day (schema 4's set) {:.0}, without any {:.0}",
        cost[0][2], cost[1][2], cost[2][2]
    );
    store.close().await;
}
