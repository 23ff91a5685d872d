//! Bad input to the library (issue 4, part 5): property tests feeding the store unicode and NUL in ids and
//! names, arbitrary JSON, huge and deeply nested JSON, timestamps from year -262143 to 262142, NaN and infinite
//! numbers, hostile filters and cursors. Every call either succeeds, and what was saved loads back identical
//! (after the documented normalisations: timestamps to the microsecond, a NULL `step_history` as `[]`), or
//! returns the typed `StoreError::InvalidInput` naming a field that really breaks a documented rule. Never a
//! panic, never another error.
//!
//! Quick (CI): 256 cases per property with a fixed seed (reproducible). Long (`FLOWSTATE_LONG_TESTS=1`): 4,096
//! cases per property, random seed. See RELIABILITY.md.

mod support;

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::{DateTime, Datelike, Utc};
use flowstate_store::{
    FixedClock, ListQuery, Status, Store, StoreError, StoreOptions, WorkflowState, MAX_ERROR_BYTES,
    MAX_JSON_BYTES, MAX_JSON_DEPTH, MAX_NAME_BYTES, MAX_RUN_ID_BYTES,
};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestRng, TestRunner};
use serde_json::{json, Value};
use support::*;

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-03-01T08:00:00.123456Z")
        .unwrap()
        .with_timezone(&Utc)
}

fn runner() -> TestRunner {
    let config = Config {
        cases: scale(256, 4_096),
        failure_persistence: None,
        max_shrink_iters: 2_000,
        ..Config::default()
    };
    if long_mode() {
        TestRunner::new(config)
    } else {
        TestRunner::new_with_rng(config, TestRng::deterministic_rng(RngAlgorithm::ChaCha))
    }
}

struct Fixture {
    rt: tokio::runtime::Runtime,
    store: Store,
    _dir: tempfile::TempDir,
}

fn fixture() -> Fixture {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hostile.db");
    let store = rt
        .block_on(Store::open_with(
            &path,
            StoreOptions {
                clock: Arc::new(FixedClock::new(now())),
                ..Default::default()
            },
        ))
        .unwrap();
    Fixture { rt, store, _dir: dir }
}

// ---------------------------------------------------------------------------------------------------------------
// Strategies

/// Text with anything in it: any char (NUL, controls, combining marks, RTL, emoji, private use), some SQL and
/// LIKE/GLOB metacharacters, and lengths around the limits.
fn text(max_chars: usize) -> BoxedStrategy<String> {
    prop_oneof![
        6 => proptest::collection::vec(any::<char>(), 0..max_chars).prop_map(String::from_iter),
        2 => proptest::sample::select(vec![
            String::new(),
            "\0".into(),
            "a\0b".into(),
            " ".into(),
            "run_1".into(),
            "'; DROP TABLE workflow_state; --".into(),
            "' OR '1'='1".into(),
            "%".into(),
            "_".into(),
            "*?[]".into(),
            "\u{202e}evil\u{202c}".into(),
            "e\u{301}".into(),
            "\u{1F600}\u{1F4A5}".into(),
            "\u{FEFF}bom".into(),
            "\r\n\t".into(),
            "NULL".into(),
        ]),
        1 => (500usize..520).prop_map(|n| "x".repeat(n)),
        1 => (125usize..132).prop_map(|n| "é".repeat(n * 2)),
    ]
    .boxed()
}

/// [`text`], mostly without NUL (which any text field and any JSON string refuses): so that most states pass and
/// some do not.
fn mostly_text(max_chars: usize) -> BoxedStrategy<String> {
    prop_oneof![
        12 => text(max_chars).prop_map(|s| s.replace('\0', "\u{1}")),
        1 => text(max_chars),
    ]
    .boxed()
}

fn json_value() -> BoxedStrategy<Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        proptest::num::f64::ANY
            .prop_filter("JSON numbers are finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        mostly_text(40).prop_map(Value::String),
    ];
    leaf.prop_recursive(6, 96, 8, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            proptest::collection::btree_map(mostly_text(12), inner, 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
    .boxed()
}

/// Any instant chrono can hold, weighted towards the edges of what the store accepts (years 1 and 9999).
fn instant() -> BoxedStrategy<DateTime<Utc>> {
    let min = DateTime::<Utc>::MIN_UTC.timestamp_micros();
    let max = DateTime::<Utc>::MAX_UTC.timestamp_micros();
    let year1 = -62_135_596_800_000_000i64; // 0001-01-01T00:00:00Z
    let year10000 = 253_402_300_800_000_000i64; // 10000-01-01T00:00:00Z
    prop_oneof![
        12 => (0i64..4_102_444_800_000_000).boxed(), // 1970..2100
        2 => (min..=max).boxed(),
        1 => (year1 - 5..year1 + 5).boxed(),
        1 => (year10000 - 5..year10000 + 5).boxed(),
    ]
    .prop_map(|us| DateTime::<Utc>::from_timestamp_micros(us).unwrap())
    .boxed()
}

fn maybe<T: std::fmt::Debug + Clone + 'static>(s: BoxedStrategy<T>) -> BoxedStrategy<Option<T>> {
    prop_oneof![1 => Just(None), 3 => s.prop_map(Some)].boxed()
}

fn counter() -> BoxedStrategy<i64> {
    prop_oneof![
        24 => 0i64..1_000,
        1 => any::<i64>(),
        1 => Just(i64::MAX),
        1 => Just((1i64 << 53) + 1),
    ]
    .boxed()
}

fn status() -> BoxedStrategy<Status> {
    prop_oneof![
        20 => proptest::sample::select(Status::KNOWN.to_vec()),
        1 => text(10).prop_map(|t| Status::Other(Some(t))),
        1 => Just(Status::Other(None)),
    ]
    .boxed()
}

fn workflow_state() -> impl Strategy<Value = WorkflowState> {
    let ids = (
        text(40),
        mostly_text(30),
        mostly_text(20),
        mostly_text(12),
        status(),
    );
    let numbers = (
        counter(),
        counter(),
        maybe(counter()),
        maybe(prop_oneof![6 => 0.0..1e6f64, 1 => proptest::num::f64::ANY].boxed()),
    );
    let json = (json_value(), maybe(json_value()), json_value());
    let rest = (maybe(instant()), maybe(instant()), maybe(mostly_text(200)));
    (ids, numbers, json, rest).prop_map(
        |(
            (run_id, pipeline_id, pipeline_name, pipeline_version, status),
            (current_step_index, total_steps, execution_time_ms, memory_usage_mb),
            (pipeline_context, last_step_output, step_history),
            (created_at, updated_at, error_message),
        )| WorkflowState {
            run_id,
            pipeline_id,
            pipeline_name,
            pipeline_version,
            current_step_index,
            pipeline_context,
            last_step_output,
            step_history,
            status,
            created_at,
            updated_at,
            total_steps,
            error_message,
            execution_time_ms,
            memory_usage_mb,
            extras: Default::default(),
        },
    )
}

// ---------------------------------------------------------------------------------------------------------------
// The oracle: the documented rules, written out independently of the store.

fn violations(s: &WorkflowState) -> BTreeSet<&'static str> {
    let mut bad = BTreeSet::new();
    if s.run_id.is_empty() || s.run_id.len() > MAX_RUN_ID_BYTES || s.run_id.contains('\0') {
        bad.insert("run_id");
    }
    // Text and JSON must also fit PostgreSQL (flujo's other layout): no NUL in text, no U+0000 in a JSON string,
    // integers of 32 bits. The same rules on both backends, so any run can be copied between them.
    if s.pipeline_id.is_empty() || s.pipeline_id.len() > MAX_NAME_BYTES || s.pipeline_id.contains('\0') {
        bad.insert("pipeline_id");
    }
    if s.pipeline_name.len() > MAX_NAME_BYTES || s.pipeline_name.contains('\0') {
        bad.insert("pipeline_name");
    }
    if s.pipeline_version.len() > MAX_NAME_BYTES || s.pipeline_version.contains('\0') {
        bad.insert("pipeline_version");
    }
    for (field, value) in [
        ("pipeline_context", Some(&s.pipeline_context)),
        ("last_step_output", s.last_step_output.as_ref()),
        ("step_history", Some(&s.step_history)),
    ] {
        if value.is_some_and(has_nul_string) {
            bad.insert(field);
        }
    }
    if !s.status.is_known() {
        bad.insert("status");
    }
    let int32 = |v: i64| (0..=i64::from(i32::MAX)).contains(&v);
    if !int32(s.current_step_index) {
        bad.insert("current_step_index");
    }
    if !int32(s.total_steps) {
        bad.insert("total_steps");
    }
    if s.execution_time_ms.is_some_and(|v| !int32(v)) {
        bad.insert("execution_time_ms");
    }
    if s.memory_usage_mb.is_some_and(|m| !m.is_finite() || m < 0.0) {
        bad.insert("memory_usage_mb");
    }
    if s.error_message
        .as_ref()
        .is_some_and(|e| e.len() > MAX_ERROR_BYTES || e.contains('\0'))
    {
        bad.insert("error_message");
    }
    for (field, at) in [("created_at", s.created_at), ("updated_at", s.updated_at)] {
        if at.is_some_and(|t| !(1..=9999).contains(&t.year())) {
            bad.insert(field);
        }
    }
    bad
}

/// True when a string of `value` (a key or a value) holds U+0000.
fn has_nul_string(value: &Value) -> bool {
    match value {
        Value::String(s) => s.contains('\0'),
        Value::Array(items) => items.iter().any(has_nul_string),
        Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || has_nul_string(v)),
        _ => false,
    }
}

/// Truncates to the microsecond: the precision the store (and flujo's Python) keeps.
fn to_micros(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp_micros(t.timestamp_micros()).unwrap()
}

/// What loading a saved state gives back, per the documented normalisations. `created_at: None` means "now" for a
/// new run (every case deletes its run first); `updated_at: None` means now; a JSON `null` step history is stored
/// as SQL NULL and reads as `[]`.
fn expected(s: &WorkflowState) -> WorkflowState {
    let mut e = s.clone();
    e.created_at = Some(to_micros(s.created_at.unwrap_or(now())));
    e.updated_at = Some(to_micros(s.updated_at.unwrap_or(now())));
    if e.step_history.is_null() {
        e.step_history = Value::Array(Vec::new());
    }
    e
}

fn ok_or_invalid<T>(r: &Result<T, StoreError>) -> bool {
    matches!(r, Ok(_) | Err(StoreError::InvalidInput { .. }))
}

fn invalid_field(result: &Result<(), StoreError>) -> Option<&'static str> {
    match result {
        Err(StoreError::InvalidInput { field, .. }) => Some(field),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Properties

#[test]
fn any_state_is_saved_and_loaded_back_identical_or_refused_with_invalid_input() {
    let fx = fixture();
    let (saved, refused) = (std::cell::Cell::new(0u32), std::cell::Cell::new(0u32));
    let by_field = std::cell::RefCell::new(std::collections::BTreeMap::<&'static str, u32>::new());
    runner()
        .run(&workflow_state(), |state| {
            fx.rt.block_on(async {
                // A fresh run each case (created_at: None then means now).
                if let Err(e) = fx.store.delete_state(&state.run_id).await {
                    prop_assert!(
                        matches!(e, StoreError::InvalidInput { field: "run_id", .. }),
                        "{e:?}"
                    );
                }
                let bad = violations(&state);
                let result = fx.store.save_state(&state).await;
                match (&result, bad.is_empty()) {
                    (Ok(()), true) => {
                        saved.set(saved.get() + 1);
                        let loaded = fx.store.load_state(&state.run_id).await;
                        let loaded = loaded.map_err(|e| TestCaseError::fail(format!("load: {e:?}")))?;
                        prop_assert_eq!(loaded, Some(expected(&state)));
                        // It is listed too, under its own id.
                        let page = fx
                            .store
                            .list_workflows(&ListQuery {
                                pipeline_id: Some(state.pipeline_id.clone()),
                                limit: Some(ListQuery::MAX_LIMIT),
                                ..Default::default()
                            })
                            .await
                            .map_err(|e| TestCaseError::fail(format!("list: {e:?}")))?;
                        prop_assert!(page.runs.iter().any(|r| r.run_id == state.run_id));
                    }
                    (Err(_), false) if invalid_field(&result).is_some_and(|f| bad.contains(f)) => {
                        refused.set(refused.get() + 1);
                        *by_field
                            .borrow_mut()
                            .entry(invalid_field(&result).unwrap())
                            .or_insert(0) += 1;
                        // Nothing was written.
                        if !state.run_id.is_empty() && state.run_id.len() <= MAX_RUN_ID_BYTES {
                            let loaded = fx.store.load_state(&state.run_id).await;
                            prop_assert!(matches!(loaded, Ok(None)), "{loaded:?}");
                        }
                    }
                    _ => prop_assert!(false, "save_state gave {result:?}; the rules broken: {bad:?}"),
                }
                Ok(())
            })
        })
        .unwrap();
    let (saved, refused) = (saved.get(), refused.get());
    figure(
        "hostile_input",
        format!(
            "states: {saved} saved and loaded back identical, {refused} refused with InvalidInput ({:?})",
            by_field.borrow()
        ),
    );
    assert!(
        saved > 10 && refused > 10,
        "both outcomes are exercised: {saved} / {refused}"
    );
}

#[test]
fn timestamps_keep_their_instant_to_the_microsecond_or_are_refused() {
    let fx = fixture();
    let nanos = 0u32..1_000_000_000;
    runner()
        .run(&(instant(), nanos.clone(), instant(), nanos), |(c, cn, u, un)| {
            // Sub-microsecond parts too: they are truncated (flujo's Python keeps microseconds).
            let c = c.with_timezone(&Utc).timestamp_micros().div_euclid(1_000_000);
            let created = DateTime::<Utc>::from_timestamp(c, cn % 1_000_000_000).unwrap();
            let u = u.timestamp_micros().div_euclid(1_000_000);
            let updated = DateTime::<Utc>::from_timestamp(u, un % 1_000_000_000).unwrap();
            let mut state = WorkflowState::new("timestamps", "p");
            state.created_at = Some(created);
            state.updated_at = Some(updated);
            fx.rt.block_on(async {
                let bad = violations(&state);
                let result = fx.store.save_state(&state).await;
                if bad.is_empty() {
                    prop_assert!(result.is_ok(), "{result:?}");
                    let loaded = fx.store.load_state("timestamps").await.unwrap().unwrap();
                    prop_assert_eq!(loaded.created_at, Some(to_micros(created)));
                    prop_assert_eq!(loaded.updated_at, Some(to_micros(updated)));
                    // The SQL instant agrees with Rust's: a window around it finds the run.
                    let page = fx
                        .store
                        .list_workflows(&ListQuery {
                            created_after: Some(to_micros(created)),
                            created_before: Some(to_micros(created) + chrono::Duration::microseconds(1)),
                            ..Default::default()
                        })
                        .await
                        .unwrap();
                    prop_assert_eq!(page.runs.len(), 1);
                } else {
                    prop_assert!(
                        invalid_field(&result).is_some_and(|f| bad.contains(f)),
                        "{result:?} for {bad:?}"
                    );
                }
                Ok(())
            })
        })
        .unwrap();
}

#[test]
fn hostile_lookups_filters_and_cursors_never_panic_and_match_nothing_extra() {
    let fx = fixture();
    fx.rt.block_on(async {
        for (id, pipeline, error) in [
            ("run-a", "invoice", Some("TimeoutError: agent call")),
            ("run-b", "support", None),
            ("run-é", "invoice", Some("KeyError: 'x'")),
        ] {
            let mut s = WorkflowState::new(id, pipeline);
            s.error_message = error.map(String::from);
            fx.store.save_state(&s).await.unwrap();
        }
    });
    let strategy = (
        text(30),
        maybe(text(20)),
        maybe(text(20)),
        maybe(text(20)),
        maybe(text(60)),
        maybe(any::<u32>().boxed()),
        maybe(any::<u64>().boxed()),
    );
    runner()
        .run(
            &strategy,
            |(id, pipeline, prefix, error, cursor, limit, offset)| {
                fx.rt.block_on(async {
                    let loaded = fx.store.load_state(&id).await;
                    prop_assert!(ok_or_invalid(&loaded), "load_state({id:?}): {loaded:?}");
                    if let Ok(Some(run)) = &loaded {
                        prop_assert_eq!(&run.run_id, &id);
                    }
                    let deleted = fx.store.delete_state(&id).await;
                    prop_assert!(ok_or_invalid(&deleted), "delete_state({id:?}): {deleted:?}");
                    prop_assert!(!matches!(deleted, Ok(true)), "deleted a seeded run by {id:?}");

                    let query = ListQuery {
                        pipeline_id: pipeline.clone(),
                        run_id_prefix: prefix.clone(),
                        error_contains: error.clone(),
                        cursor,
                        limit,
                        offset,
                        ..Default::default()
                    };
                    let page = fx.store.list_workflows(&query).await;
                    prop_assert!(ok_or_invalid(&page), "{query:?}: {page:?}");
                    if let Ok(page) = page {
                        for run in &page.runs {
                            if let Some(p) = &pipeline {
                                prop_assert_eq!(&run.pipeline_id, p);
                            }
                            if let Some(p) = &prefix {
                                prop_assert!(run.run_id.starts_with(p.as_str()), "{:?} / {p:?}", run.run_id);
                            }
                            if let Some(e) = &error {
                                let msg = run.error_message.clone().unwrap_or_default().to_ascii_lowercase();
                                prop_assert!(msg.contains(&e.to_ascii_lowercase()), "{msg:?} / {e:?}");
                            }
                        }
                    }
                    let failed = fx.store.get_failed_workflows(limit.unwrap_or(1), 10).await;
                    prop_assert!(ok_or_invalid(&failed), "{failed:?}");
                    Ok(())
                })
            },
        )
        .unwrap();
}

#[test]
fn numbers_nan_infinities_and_extremes() {
    let fx = fixture();
    let strategy = (proptest::num::f64::ANY, any::<i64>(), any::<i64>());
    runner()
        .run(&strategy, |(memory, exec, step)| {
            let mut state = WorkflowState::new("numbers", "p");
            state.memory_usage_mb = Some(memory);
            state.execution_time_ms = Some(exec);
            state.current_step_index = step;
            state.total_steps = step;
            fx.rt.block_on(async {
                let bad = violations(&state);
                let result = fx.store.save_state(&state).await;
                if bad.is_empty() {
                    prop_assert!(result.is_ok(), "{result:?}");
                    let loaded = fx.store.load_state("numbers").await.unwrap().unwrap();
                    prop_assert_eq!(loaded.memory_usage_mb, Some(memory));
                    prop_assert_eq!(loaded.execution_time_ms, Some(exec));
                    prop_assert_eq!(loaded.current_step_index, step);
                    prop_assert_eq!(loaded.total_steps, step);
                } else {
                    prop_assert!(
                        invalid_field(&result).is_some_and(|f| bad.contains(f)),
                        "{result:?} for {bad:?}"
                    );
                }
                Ok(())
            })
        })
        .unwrap();
    // The named extremes, whatever the generator picked.
    fx.rt.block_on(async {
        for m in [
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            -1.0,
            -f64::MIN_POSITIVE,
        ] {
            let mut s = WorkflowState::new("numbers", "p");
            s.memory_usage_mb = Some(m);
            let r = fx.store.save_state(&s).await;
            assert_eq!(invalid_field(&r), Some("memory_usage_mb"), "{m}: {r:?}");
        }
        for m in [0.0, -0.0, f64::MIN_POSITIVE / 2.0, f64::MAX, 1e-300] {
            let mut s = WorkflowState::new("numbers", "p");
            s.memory_usage_mb = Some(m);
            fx.store.save_state(&s).await.unwrap();
            let back = fx
                .store
                .load_state("numbers")
                .await
                .unwrap()
                .unwrap()
                .memory_usage_mb;
            assert_eq!(back, Some(m), "{m}");
        }
        for e in [(1i64 << 53) + 1, i64::from(i32::MAX) + 1, i64::MAX] {
            let mut s = WorkflowState::new("numbers", "p");
            s.execution_time_ms = Some(e);
            let r = fx.store.save_state(&s).await;
            assert_eq!(invalid_field(&r), Some("execution_time_ms"), "{e}: {r:?}");
        }
        for e in [0, 1, i64::from(i32::MAX) - 1, i64::from(i32::MAX)] {
            let mut s = WorkflowState::new("numbers", "p");
            s.execution_time_ms = Some(e);
            fx.store.save_state(&s).await.unwrap();
            let back = fx
                .store
                .load_state("numbers")
                .await
                .unwrap()
                .unwrap()
                .execution_time_ms;
            assert_eq!(back, Some(e), "{e}");
        }
    });
}

// ---------------------------------------------------------------------------------------------------------------
// Deep and huge JSON (deterministic: the sizes that matter)

/// `depth` nested containers (arrays, or objects when `objects`) around a string, built without recursion.
fn nested(depth: usize, objects: bool) -> Value {
    let mut v = Value::String("core".into());
    for _ in 0..depth {
        v = if objects {
            // Not `json!({ "k": v })`: that serializes `v` again (recursively).
            let mut map = serde_json::Map::new();
            map.insert("k".into(), v);
            Value::Object(map)
        } else {
            Value::Array(vec![v])
        };
    }
    v
}

/// Drops a deep value without recursion (dropping it the ordinary way recurses once per level).
fn dismantle(v: Value) {
    let mut stack = vec![v];
    while let Some(v) = stack.pop() {
        match v {
            Value::Array(items) => stack.extend(items),
            Value::Object(map) => stack.extend(map.into_iter().map(|(_, v)| v)),
            _ => {}
        }
    }
}

#[tokio::test]
async fn deeply_nested_json_loads_back_or_is_refused_at_save() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("deep.db")).await.unwrap();
    let limit = MAX_JSON_DEPTH;
    for depth in [1, 64, limit - 1, limit, limit + 1, 200, 1_000, 10_000, 100_000] {
        for objects in [false, true] {
            for field in ["pipeline_context", "last_step_output", "step_history"] {
                let value = nested(depth, objects);
                let mut state = WorkflowState::new(format!("deep-{depth}-{objects}-{field}"), "p");
                match field {
                    "pipeline_context" => state.pipeline_context = value,
                    "last_step_output" => state.last_step_output = Some(value),
                    _ => state.step_history = value,
                }
                let result = store.save_state(&state).await;
                if depth <= limit {
                    result.unwrap_or_else(|e| panic!("depth {depth} in {field}: {e:?}"));
                    let loaded = store.load_state(&state.run_id).await.unwrap().unwrap();
                    assert!(
                        loaded == state.clone_with_now(&loaded),
                        "depth {depth} in {field} changed"
                    );
                    dismantle_state(loaded);
                } else {
                    match &result {
                        Err(StoreError::InvalidInput { field: f, reason }) => {
                            assert_eq!(*f, field);
                            assert!(reason.contains("deep"), "{reason}");
                        }
                        other => panic!("depth {depth} in {field}: {other:?}"),
                    }
                    assert!(store.load_state(&state.run_id).await.unwrap().is_none());
                }
                dismantle_state(state);
            }
        }
    }
    store.close().await;
}

trait WithNow {
    fn clone_with_now(&self, loaded: &WorkflowState) -> WorkflowState;
}

impl WithNow for WorkflowState {
    /// This state as it loads back: the timestamps the store filled in taken from `loaded`.
    fn clone_with_now(&self, loaded: &WorkflowState) -> WorkflowState {
        let mut e = self.clone();
        e.created_at = loaded.created_at;
        e.updated_at = loaded.updated_at;
        e
    }
}

fn dismantle_state(s: WorkflowState) {
    dismantle(s.pipeline_context);
    dismantle(s.step_history);
    if let Some(v) = s.last_step_output {
        dismantle(v);
    }
}

#[tokio::test]
async fn huge_json_up_to_the_limit_loads_back_and_beyond_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("huge.db")).await.unwrap();

    // Just under the limit: one long string (the quotes take two bytes).
    let mut state = WorkflowState::new("huge-string", "p");
    state.pipeline_context = Value::String("z".repeat(MAX_JSON_BYTES - 2));
    store.save_state(&state).await.unwrap();
    let loaded = store.load_state("huge-string").await.unwrap().unwrap();
    assert_eq!(loaded.pipeline_context, state.pipeline_context);

    // One byte over.
    state.pipeline_context = Value::String("z".repeat(MAX_JSON_BYTES - 1));
    let r = store.save_state(&state).await;
    assert_eq!(invalid_field(&r), Some("pipeline_context"), "{r:?}");
    // The earlier save is untouched.
    let loaded = store.load_state("huge-string").await.unwrap().unwrap();
    assert_eq!(
        loaded.pipeline_context.as_str().map(str::len),
        Some(MAX_JSON_BYTES - 2)
    );

    // Wide rather than long: 200,000 small objects in the step history.
    let mut wide = WorkflowState::new("huge-wide", "p");
    wide.step_history = Value::Array(
        (0..200_000)
            .map(|i| json!({ "step": i, "ok": i % 7 != 0, "t": i as f64 / 3.0 }))
            .collect(),
    );
    store.save_state(&wide).await.unwrap();
    let loaded = store.load_state("huge-wide").await.unwrap().unwrap();
    assert_eq!(loaded.step_history, wide.step_history);

    // An error message at its limit, and over it.
    let mut err = WorkflowState::new("huge-error", "p");
    err.error_message = Some("e".repeat(MAX_ERROR_BYTES));
    store.save_state(&err).await.unwrap();
    err.error_message = Some("e".repeat(MAX_ERROR_BYTES + 1));
    let r = store.save_state(&err).await;
    assert_eq!(invalid_field(&r), Some("error_message"), "{r:?}");
    store.close().await;
}
