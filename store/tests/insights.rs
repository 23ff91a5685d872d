//! The dashboard's figures: stuck runs, percentiles, activity buckets, failure groups and rates, the audit log. Each
//! test runs on both backends ([`both_backends!`]): SQLite and PostgreSQL.

mod common;

use chrono::Duration;
use common::backends::OtherRow;
use common::*;
use flowstate_store::{Bucket, Status, WorkflowState};
use serde_json::json;

fn run(id: &str, pipeline: &str, status: Status, created: &str, updated: &str) -> WorkflowState {
    let mut s = WorkflowState::new(id, pipeline);
    s.status = status;
    s.created_at = Some(at(created));
    s.updated_at = Some(at(updated));
    s
}

both_backends! {
    async fn stuck_runs_are_counted_exactly_whichever_part_of_an_hour_the_threshold_falls_in(db) {
        let (store, _) = db.open_at(at("2026-04-10T12:20:00Z")).await;
        let live = [
            ("s0", Status::Running, "2026-04-10T09:30:00Z"),
            ("s1", Status::Running, "2026-04-10T10:05:00Z"),
            ("s2", Status::Paused, "2026-04-10T10:50:00Z"),
            ("s3", Status::Running, "2026-04-10T11:05:00Z"),
            ("s4", Status::Running, "2026-04-10T11:19:59Z"),
            ("s5", Status::Paused, "2026-04-10T11:20:00Z"),
            ("s6", Status::Running, "2026-04-10T11:20:01Z"),
            ("s7", Status::Running, "2026-04-10T11:45:00Z"),
            ("s8", Status::Paused, "2026-04-10T12:10:00Z"),
            ("c1", Status::Completed, "2026-04-10T09:00:00Z"),
            ("c2", Status::Failed, "2026-04-10T11:00:00Z"),
        ];
        let runs: Vec<WorkflowState> = live
            .iter()
            .map(|(id, status, updated)| run(id, "p", status.clone(), "2026-04-10T08:00:00Z", updated))
            .collect();
        store.save_many(&runs).await.unwrap();
        // Last updates no instant can be read from (PostgreSQL: the infinities; SQLite: text it cannot read):
        // never stuck.
        for (id, status, updated) in [("inf", "running", "infinity"), ("ninf", "paused", "-infinity")] {
            db.other_writer_save(&OtherRow {
                run_id: id,
                pipeline_id: "p",
                status,
                created_at: "2026-04-10T08:00:00Z",
                updated_at: updated,
                error_message: None,
                execution_time_ms: None,
            })
            .await;
        }
        for (idle, expected) in [
            (Duration::hours(1), 5),          // 11:20, the first half of its hour
            (Duration::minutes(35), 7),       // 11:45, the second half
            (Duration::minutes(140), 1),      // 10:00, an hour's start
            (Duration::minutes(10), 8),       // 12:10, the current hour
            (Duration::seconds(1), 9),
            (Duration::hours(4), 0),
        ] {
            let stuck = store.stuck_runs(idle, 100).await.unwrap();
            assert_eq!(stuck.count, expected, "idle for {idle}");
            assert_eq!(stuck.runs.len() as i64, expected, "idle for {idle}");
            assert!(
                stuck.runs.windows(2).all(|w| w[0].updated_at <= w[1].updated_at),
                "longest idle first"
            );
        }
    }

    async fn stuck_runs_are_live_runs_idle_past_the_threshold(db) {
        let (store, _) = db.open_at(at("2026-04-10T12:00:00Z")).await;
        store
            .save_many(&[
                run(
                    "idle_running",
                    "p",
                    Status::Running,
                    "2026-04-09T00:00:00Z",
                    "2026-04-10T08:00:00Z",
                ),
                run(
                    "idle_paused",
                    "p",
                    Status::Paused,
                    "2026-04-01T00:00:00Z",
                    "2026-04-02T00:00:00Z",
                ),
                run(
                    "busy_running",
                    "p",
                    Status::Running,
                    "2026-04-10T11:00:00Z",
                    "2026-04-10T11:59:00Z",
                ),
                run(
                    "old_completed",
                    "p",
                    Status::Completed,
                    "2026-04-01T00:00:00Z",
                    "2026-04-01T00:00:00Z",
                ),
            ])
            .await
            .unwrap();
        let stuck = store.stuck_runs(Duration::hours(1), 10).await.unwrap();
        assert_eq!(stuck.count, 2);
        let ids: Vec<_> = stuck.runs.iter().map(|r| r.run_id.as_str()).collect();
        assert_eq!(ids, vec!["idle_paused", "idle_running"], "longest idle first");
        assert_eq!(store.stuck_runs(Duration::hours(5), 10).await.unwrap().count, 1);
        assert!(store.stuck_runs(Duration::zero(), 10).await.is_err());
    }

    async fn percentiles_are_nearest_rank_overall_and_per_pipeline(db) {
        let (store, _) = db.open_at(at("2026-04-10T12:00:00Z")).await;
        let mut runs = Vec::new();
        for i in 1..=100 {
            let mut r = run(
                &format!("r{i}"),
                "a",
                Status::Completed,
                "2026-04-10T00:00:00Z",
                "2026-04-10T00:00:00Z",
            );
            r.execution_time_ms = Some(i * 10);
            runs.push(r);
        }
        let mut b = run(
            "b1",
            "b",
            Status::Completed,
            "2026-04-10T00:00:00Z",
            "2026-04-10T00:00:00Z",
        );
        b.execution_time_ms = Some(5);
        runs.push(b);
        runs.push(run(
            "no_time",
            "b",
            Status::Running,
            "2026-04-10T00:00:00Z",
            "2026-04-10T00:00:00Z",
        ));
        store.save_many(&runs).await.unwrap();

        // p50, p95 and p99 come from the execution-time histogram: within 1/32 of the exact nearest-rank values
        // (exact below 32 ms); the count and the longest time are exact.
        let within = |got: Option<f64>, exact: f64| {
            let got = got.expect("a percentile");
            assert!(
                (got - exact).abs() <= exact / 32.0,
                "{got} is not within 1/32 of {exact}"
            );
        };
        let a = store.execution_percentiles(Some("a")).await.unwrap();
        assert_eq!(a.count, 100);
        assert_eq!(a.relative_error, 1.0 / 32.0);
        within(a.p50, 500.0);
        within(a.p95, 950.0);
        within(a.p99, 990.0);
        assert_eq!(a.max, Some(1000.0));
        let all = store.execution_percentiles(None).await.unwrap();
        assert_eq!(all.count, 101);
        within(all.p50, 500.0); // rank ceil(50.5) = 51st of [5, 10, 20, ...] = 500
        assert_eq!(all.max, Some(1000.0));
        let b = store.execution_percentiles(Some("b")).await.unwrap();
        assert_eq!(
            (b.count, b.p50, b.p99, b.max),
            (1, Some(5.0), Some(5.0), Some(5.0))
        );
        let none = store.execution_percentiles(Some("zzz")).await.unwrap();
        assert_eq!(none.count, 0);
        assert_eq!(none.p50, None);
        let per = store.execution_percentiles_by_pipeline().await.unwrap();
        assert_eq!(
            per.iter().map(|(p, s)| (p.as_str(), s.count)).collect::<Vec<_>>(),
            vec![("a", 100), ("b", 1)]
        );
        assert_eq!(
            store.pipelines().await.unwrap(),
            vec!["a".to_string(), "b".to_string()]
        );
    }

    async fn activity_counts_runs_per_hour_and_day_by_status(db) {
        let (store, _) = db.open_at(at("2026-04-10T12:30:00Z")).await;
        store
            .save_many(&[
                run(
                    "h12a",
                    "p",
                    Status::Completed,
                    "2026-04-10T12:10:00Z",
                    "2026-04-10T12:10:00Z",
                ),
                run(
                    "h12b",
                    "p",
                    Status::Failed,
                    "2026-04-10T12:20:00Z",
                    "2026-04-10T12:20:00Z",
                ),
                run(
                    "h11",
                    "p",
                    Status::Completed,
                    "2026-04-10T11:59:59Z",
                    "2026-04-10T11:59:59Z",
                ),
                run(
                    "yesterday",
                    "p",
                    Status::Completed,
                    "2026-04-09T13:00:00Z",
                    "2026-04-09T13:00:00Z",
                ),
                run(
                    "too_old",
                    "p",
                    Status::Completed,
                    "2026-04-09T12:00:00Z",
                    "2026-04-09T12:00:00Z",
                ),
            ])
            .await
            .unwrap();
        let hours = store.activity(Bucket::Hour, 24).await.unwrap();
        assert_eq!(hours.len(), 24);
        assert_eq!(hours[23].start, at("2026-04-10T12:00:00Z"));
        assert_eq!(hours[0].start, at("2026-04-09T13:00:00Z"));
        assert_eq!(hours[23].counts.get("completed"), Some(&1));
        assert_eq!(hours[23].counts.get("failed"), Some(&1));
        assert_eq!(hours[22].counts.get("completed"), Some(&1));
        assert_eq!(hours[0].counts.get("completed"), Some(&1));
        let total: i64 = hours.iter().flat_map(|h| h.counts.values()).sum();
        assert_eq!(total, 4, "too_old is outside the 24 buckets");

        let days = store.activity(Bucket::Day, 30).await.unwrap();
        assert_eq!(days.len(), 30);
        assert_eq!(days[29].start, at("2026-04-10T00:00:00Z"));
        assert_eq!(days[29].counts.values().sum::<i64>(), 3);
        assert_eq!(days[28].counts.values().sum::<i64>(), 2);
    }

    async fn failures_group_by_signature_with_counts_pipelines_and_samples(db) {
        let (store, _) = db.open_at(at("2026-04-10T12:00:00Z")).await;
        let mut runs = Vec::new();
        for (i, (msg, pipeline, updated)) in [
            (
                "TimeoutError: agent call exceeded 30s",
                "a",
                "2026-04-10T10:00:00Z",
            ),
            (
                "TimeoutError: agent call exceeded 45s",
                "b",
                "2026-04-10T11:00:00Z",
            ),
            (
                "TimeoutError: agent call exceeded 5s",
                "a",
                "2026-04-10T09:00:00Z",
            ),
            (
                "UsageLimitExceededError: Cost limit of $0.50 exceeded",
                "a",
                "2026-04-10T08:00:00Z",
            ),
            (
                "TimeoutError: agent call exceeded 30s",
                "a",
                "2026-04-01T08:00:00Z",
            ), // outside the window
        ]
        .into_iter()
        .enumerate()
        {
            let mut r = run(
                &format!("f{i}"),
                pipeline,
                Status::Failed,
                "2026-04-01T00:00:00Z",
                updated,
            );
            r.error_message = Some(msg.into());
            runs.push(r);
        }
        runs.push(run(
            "ok",
            "a",
            Status::Completed,
            "2026-04-10T00:00:00Z",
            "2026-04-10T00:00:00Z",
        ));
        store.save_many(&runs).await.unwrap();

        let report = store.failure_groups(at("2026-04-09T12:00:00Z")).await.unwrap();
        assert_eq!(report.total_failed, 4);
        assert!(!report.truncated);
        assert_eq!(report.groups.len(), 2);
        let g = &report.groups[0];
        assert_eq!(g.signature, "TimeoutError: agent call exceeded <dur>");
        assert_eq!(g.count, 3);
        assert_eq!(g.pipelines.get("a"), Some(&2));
        assert_eq!(g.pipelines.get("b"), Some(&1));
        assert_eq!(g.first_seen, Some(at("2026-04-10T09:00:00Z")));
        assert_eq!(g.last_seen, Some(at("2026-04-10T11:00:00Z")));
        assert_eq!(g.samples[0].run_id, "f1", "newest first");
        assert_eq!(report.groups[1].count, 1);

        let rates = store.failure_rates(at("2026-04-09T12:00:00Z")).await.unwrap();
        let b = rates.iter().find(|r| r.pipeline_id == "b").unwrap();
        assert_eq!((b.total, b.failed, b.rate), (1, 1, 1.0));
        let a = rates.iter().find(|r| r.pipeline_id == "a").unwrap();
        assert_eq!((a.total, a.finished, a.failed), (4, 4, 3));
        assert_eq!(rates[0].pipeline_id, "b", "highest rate first");
    }

    async fn failures_filter_by_pipeline_and_version_and_count_per_version(db) {
        // A deploy: version 2.0 of "etl" fails where 1.9 did not; another pipeline fails too.
        let (store, _) = db.open_at(at("2026-04-10T12:00:00Z")).await;
        let mut runs = Vec::new();
        let mut add = |id: String, pipeline: &str, version: &str, status: Status, updated: &str, error: Option<&str>| {
            let mut r = run(&id, pipeline, status, "2026-04-09T00:00:00Z", updated);
            r.pipeline_version = version.into();
            r.error_message = error.map(String::from);
            runs.push(r);
        };
        for i in 0..10 {
            add(format!("old{i}"), "etl", "1.9", Status::Completed, "2026-04-10T02:00:00Z", None);
        }
        add("old-f".into(), "etl", "1.9", Status::Failed, "2026-04-10T02:30:00Z", Some("KeyError: 'a'"));
        for i in 0..4 {
            add(format!("new{i}"), "etl", "2.0", Status::Completed, "2026-04-10T10:00:00Z", None);
        }
        for i in 0..6 {
            add(format!("newf{i}"), "etl", "2.0", Status::Failed, &format!("2026-04-10T10:{:02}:00Z", i * 5),
                Some(&format!("TimeoutError: agent call exceeded {}s", 10 + i)));
        }
        add("new-live".into(), "etl", "2.0", Status::Running, "2026-04-10T11:00:00Z", None);
        add("other-f".into(), "mail", "2.0", Status::Failed, "2026-04-10T09:00:00Z", Some("TimeoutError: agent call exceeded 3s"));
        add("ancient".into(), "etl", "1.8", Status::Failed, "2026-03-01T00:00:00Z", Some("old"));
        store.save_many(&runs).await.unwrap();
        let since = at("2026-04-10T00:00:00Z");
        let scope = |pipeline: Option<&str>, version: Option<&str>| flowstate_store::FailureScope {
            pipeline: pipeline.map(String::from),
            version: version.map(String::from),
        };

        let all = store.failure_groups(since).await.unwrap();
        assert_eq!(all.total_failed, 8);
        let etl = store.failure_groups_in(since, &scope(Some("etl"), None)).await.unwrap();
        assert_eq!(etl.total_failed, 7);
        assert_eq!(etl.groups.iter().map(|g| g.count).sum::<i64>(), 7);
        let deploy = store.failure_groups_in(since, &scope(Some("etl"), Some("2.0"))).await.unwrap();
        assert_eq!(deploy.total_failed, 6);
        assert_eq!(deploy.groups.len(), 1, "one signature: {:?}", deploy.groups);
        assert_eq!(deploy.groups[0].signature, "TimeoutError: agent call exceeded <dur>");
        assert_eq!(deploy.groups[0].samples[0].run_id, "newf5", "newest first");
        // A version across pipelines.
        let v2 = store.failure_groups_in(since, &scope(None, Some("2.0"))).await.unwrap();
        assert_eq!(v2.total_failed, 7);
        assert_eq!(v2.groups[0].pipelines.get("mail"), Some(&1));
        // A group by key within the scope.
        let key = deploy.groups[0].key.clone();
        let one = store.failure_group_in(since, &key, 50, &scope(Some("etl"), Some("2.0"))).await.unwrap().unwrap();
        assert_eq!(one.count, 6);
        assert!(store.failure_group_in(since, &key, 50, &scope(Some("etl"), Some("1.9"))).await.unwrap().is_none());
        // Nothing matches: empty, not an error.
        let none = store.failure_groups_in(since, &scope(Some("etl"), Some("9.9"))).await.unwrap();
        assert_eq!((none.total_failed, none.groups.len()), (0, 0));

        // Per version: runs, finished, failed, rate of finished runs; the newest version first.
        let versions = store.failures_by_version(since, "etl").await.unwrap();
        let rows: Vec<(&str, i64, i64, i64)> = versions
            .iter()
            .map(|v| (v.version.as_str(), v.total, v.finished, v.failed))
            .collect();
        assert_eq!(rows, vec![("2.0", 11, 10, 6), ("1.9", 11, 11, 1)]);
        assert!((versions[0].rate - 0.6).abs() < 1e-12);
        assert!((versions[1].rate - 1.0 / 11.0).abs() < 1e-12);
        assert_eq!(versions[0].last_seen, Some(at("2026-04-10T11:00:00Z")));
        assert!(store.failures_by_version(since, "nope").await.unwrap().is_empty());
    }

    async fn failures_per_version_are_the_rows_for_any_window_start_after_updates_and_deletes(db) {
        // Read from counters per pipeline, hour, version and status (schema version 5) plus the first hour's part
        // from the rows: every window start (on the hour, just after it, past its half) must give exactly what the
        // rows say, with each version's newest update to the microsecond, before and after other writers and
        // deletes change the table.
        let (store, _) = db.open_at(at("2026-04-10T18:00:00Z")).await;
        let base = at("2026-04-10T08:00:00Z");
        let statuses = [Status::Completed, Status::Failed, Status::Running, Status::Cancelled, Status::Paused];
        let versions = ["1.0", "1.1", "2.0"];
        // (run id, pipeline, version, status, last update)
        let mut rows: Vec<(String, String, String, Status, chrono::DateTime<chrono::Utc>)> = Vec::new();
        let mut runs = Vec::new();
        for i in 0..90i64 {
            let id = format!("r{i:03}");
            let pipeline = if i % 9 == 4 { "other" } else { "etl" };
            let version = versions[(i as usize * 7 / 5) % 3];
            let status = statuses[(i as usize * 3) % 5].clone();
            let updated = base + Duration::minutes(i * 7) + Duration::microseconds(i * 1013);
            let mut r = WorkflowState::new(&id, pipeline);
            r.status = status.clone();
            r.pipeline_version = version.into();
            r.created_at = Some(base - Duration::hours(1));
            r.updated_at = Some(updated);
            runs.push(r);
            rows.push((id, pipeline.into(), version.into(), status, updated));
        }
        store.save_many(&runs).await.unwrap();

        type Instant = chrono::DateTime<chrono::Utc>;
        type Figures = (i64, i64, i64, Option<Instant>);
        type Expected = Vec<(String, i64, i64, i64, Option<Instant>)>;
        let expected = |rows: &[(String, String, String, Status, chrono::DateTime<chrono::Utc>)],
                        since: chrono::DateTime<chrono::Utc>|
         -> Expected {
            let mut per: std::collections::BTreeMap<String, Figures> = Default::default();
            for (_, p, v, st, u) in rows {
                if p != "etl" || *u < since {
                    continue;
                }
                let e = per.entry(v.clone()).or_default();
                e.0 += 1;
                if matches!(st, Status::Completed | Status::Failed | Status::Cancelled) {
                    e.1 += 1;
                }
                if *st == Status::Failed {
                    e.2 += 1;
                }
                e.3 = e.3.max(Some(*u));
            }
            per.into_iter().map(|(v, (t, f, x, l))| (v, t, f, x, l)).collect()
        };
        let read = |store: &flowstate_store::Store, since| {
            let store = store.clone();
            async move {
                let mut got: Expected = store
                    .failures_by_version(since, "etl")
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|v| (v.version, v.total, v.finished, v.failed, v.last_seen))
                    .collect();
                got.sort();
                got
            }
        };
        let starts: Vec<chrono::DateTime<chrono::Utc>> = (0..=66)
            .map(|k| base - Duration::minutes(30) + Duration::minutes(k * 11) + Duration::seconds(k % 7))
            .chain([at("2026-04-10T10:00:00Z"), at("2026-04-10T13:00:00Z"), at("2026-04-10T15:59:59Z")])
            .collect();
        for since in &starts {
            assert_eq!(read(&store, *since).await, expected(&rows, *since), "window from {since}");
        }

        // Another writer moves runs to version 1.0 (its fixed version), to another status and hour; runs go.
        for (i, row) in rows.iter_mut().enumerate().filter(|(i, _)| i % 5 == 1) {
            let updated = base + Duration::minutes(i as i64 * 5 + 3);
            db.other_writer_save(&OtherRow {
                run_id: &row.0,
                pipeline_id: "etl",
                status: "failed",
                created_at: "2026-04-10T07:00:00Z",
                updated_at: &updated.to_rfc3339(),
                error_message: Some("boom"),
                execution_time_ms: Some(5),
            })
            .await;
            *row = (row.0.clone(), "etl".into(), "1.0".into(), Status::Failed, updated);
        }
        let gone: Vec<String> = rows.iter().enumerate().filter(|(i, _)| i % 4 == 2).map(|(_, r)| r.0.clone()).collect();
        for (n, id) in gone.iter().enumerate() {
            if n % 2 == 0 {
                db.other_writer_delete(id).await;
            } else {
                assert!(store.delete_state(id).await.unwrap());
            }
        }
        rows.retain(|r| !gone.contains(&r.0));
        for since in &starts {
            assert_eq!(read(&store, *since).await, expected(&rows, *since), "after the changes, from {since}");
        }
        let check = store.verify_counters().await.unwrap();
        assert!(check.is_exact(), "{:?}", check.differences);
    }

    async fn failure_rates_divide_by_finished_runs_not_by_live_ones(db) {
        // The proportions: 6 failed of 40 finished runs is 15 %; counted over all 87 runs, with the 47
        // running or paused ones that have no outcome yet, it read 6.9 %.
        let (store, _) = db.open_at(at("2026-04-10T12:00:00Z")).await;
        let mut runs = Vec::new();
        let plan = [
            (Status::Completed, 30),
            (Status::Failed, 6),
            (Status::Cancelled, 4),
            (Status::Running, 40),
            (Status::Paused, 7),
        ];
        let mut i = 0;
        for (status, n) in plan {
            for _ in 0..n {
                // Spread over the window, some in its first, partial hour (read from the index, not the
                // hourly counters).
                let updated = format!("2026-04-10T{:02}:{:02}:00Z", 3 + i % 9, (i * 7) % 60);
                runs.push(run(&format!("r{i:03}"), "deploy", status.clone(), "2026-04-10T00:00:00Z", &updated));
                i += 1;
            }
        }
        // Outside the window: not counted.
        runs.push(run("old", "deploy", Status::Failed, "2026-04-01T00:00:00Z", "2026-04-01T00:00:00Z"));
        // A pipeline with only live runs: no finished run, a rate of 0, not a division by zero.
        runs.push(run("live", "live-only", Status::Running, "2026-04-10T00:00:00Z", "2026-04-10T11:00:00Z"));
        store.save_many(&runs).await.unwrap();

        let rates = store.failure_rates(at("2026-04-10T03:30:00Z")).await.unwrap();
        let all_in_window = runs.iter().filter(|r| r.updated_at.unwrap() >= at("2026-04-10T03:30:00Z"));
        let expect = |status: Status| all_in_window.clone().filter(|r| r.pipeline_id == "deploy" && r.status == status).count() as i64;
        let d = rates.iter().find(|r| r.pipeline_id == "deploy").unwrap();
        let finished = expect(Status::Completed) + expect(Status::Failed) + expect(Status::Cancelled);
        let live = expect(Status::Running) + expect(Status::Paused);
        assert_eq!((d.total, d.finished, d.failed), (finished + live, finished, expect(Status::Failed)));
        assert!((d.rate - d.failed as f64 / finished as f64).abs() < 1e-12);

        // The whole window: exactly the figures.
        let rates = store.failure_rates(at("2026-04-10T00:00:00Z")).await.unwrap();
        let d = rates.iter().find(|r| r.pipeline_id == "deploy").unwrap();
        assert_eq!((d.total, d.finished, d.failed), (87, 40, 6));
        assert!((d.rate - 0.15).abs() < 1e-12, "15 % of finished runs, not 6.9 %: {}", d.rate);
        let l = rates.iter().find(|r| r.pipeline_id == "live-only").unwrap();
        assert_eq!((l.total, l.finished, l.failed, l.rate), (1, 0, 0, 0.0));
        assert_eq!(rates[0].pipeline_id, "deploy", "highest rate first");
    }

    async fn one_failure_group_by_key_holds_more_samples_and_failures_are_counted(db) {
        let (store, _) = db.open_at(at("2026-04-10T12:00:00Z")).await;
        let mut runs = Vec::new();
        for i in 0..12 {
            let mut r = run(
                &format!("t{i:02}"),
                if i % 3 == 0 { "b" } else { "a" },
                Status::Failed,
                "2026-04-01T00:00:00Z",
                &format!("2026-04-10T{:02}:00:00Z", i % 12),
            );
            r.error_message = Some(format!("TimeoutError: agent call exceeded {}s", 10 + i));
            runs.push(r);
        }
        let mut other = run(
            "u1",
            "a",
            Status::Failed,
            "2026-04-01T00:00:00Z",
            "2026-04-10T11:30:00Z",
        );
        other.error_message = Some("UsageLimitExceededError: Cost limit of $0.50 exceeded".into());
        runs.push(other);
        let mut old = run(
            "old",
            "a",
            Status::Failed,
            "2026-04-01T00:00:00Z",
            "2026-04-01T00:00:00Z",
        );
        old.error_message = Some("TimeoutError: agent call exceeded 1s".into());
        runs.push(old);
        store.save_many(&runs).await.unwrap();

        let since = at("2026-04-09T12:00:00Z");
        let report = store.failure_groups(since).await.unwrap();
        let timeouts = &report.groups[0];
        assert_eq!(timeouts.count, 12);
        assert_eq!(
            timeouts.samples.len(),
            flowstate_store::insights::FAILURE_SAMPLES,
            "the report keeps a few samples per group"
        );

        let group = store
            .failure_group(since, &timeouts.key, 50)
            .await
            .unwrap()
            .expect("the group is found by its key");
        assert_eq!(group.signature, timeouts.signature);
        assert_eq!(group.count, 12, "the same count as in the report");
        assert_eq!(group.samples.len(), 12, "every run of the group, up to the limit");
        assert_eq!(group.samples[0].run_id, "t11", "newest first");
        assert_eq!(group.pipelines.get("b"), Some(&4));
        assert_eq!(
            store
                .failure_group(since, &timeouts.key, 3)
                .await
                .unwrap()
                .unwrap()
                .samples
                .len(),
            3
        );
        assert_eq!(
            store.failure_group(since, "0000000000000000", 50).await.unwrap(),
            None
        );
        assert!(store.failure_group(since, &timeouts.key, 100_000).await.is_err());

        assert_eq!(store.count_failed_since(since).await.unwrap(), 13);
        assert_eq!(
            store
                .count_failed_since(at("2026-03-01T00:00:00Z"))
                .await
                .unwrap(),
            14
        );
        assert_eq!(
            store
                .count_failed_since(at("2026-04-10T11:00:00Z"))
                .await
                .unwrap(),
            2
        );
    }

    async fn audit_entries_are_recorded_and_listed_newest_first(db) {
        let (store, clock) = db.open_at(at("2026-04-10T12:00:00Z")).await;
        assert!(store.audit_log(10).await.unwrap().is_empty());
        store
            .record_audit("admin", "cleanup", &json!({"older_than_days": 30}), Some(12), 12)
            .await
            .unwrap();
        clock.advance(Duration::minutes(1));
        store
            .record_audit("local", "delete_run", &json!({"run_id": "r1"}), None, 1)
            .await
            .unwrap();
        let log = store.audit_log(10).await.unwrap();
        assert_eq!(log.len(), 2);
        assert_eq!(log[0].action, "delete_run");
        assert_eq!(log[0].at, Some(at("2026-04-10T12:01:00Z")));
        assert_eq!(log[1].detail, json!({"older_than_days": 30}));
        assert_eq!(log[1].matched, Some(12));
    }
}
