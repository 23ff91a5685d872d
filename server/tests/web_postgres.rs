//! The dashboard on what only PostgreSQL has: a role that may only read (`--read-only` serves every page and
//! refuses changes in words; without `--read-only` a change the server refuses is a 409 that says why, never a
//! 500), and `/healthz` naming the database without its password. Every other router test runs on PostgreSQL
//! too, under `FLOWSTATE_TEST_BACKEND=postgres` (support/mod.rs).
//!
//! Each test makes its own database on `FLOWSTATE_TEST_PG` and prints `SKIPPED <why>` without one.

mod support;

use std::sync::Arc;

use axum::http::StatusCode;
use chrono::Duration;
use flowstate_store::{FixedClock, Status, Store, StoreOptions, WorkflowState};
use sqlx::{Connection, PgConnection};
use support::*;

/// A few runs: failures, an old completed one (a cleanup's), a running one.
fn runs() -> Vec<WorkflowState> {
    let mut out = Vec::new();
    for (i, (status, age_days)) in [
        (Status::Failed, 0),
        (Status::Failed, 1),
        (Status::Completed, 40),
        (Status::Completed, 2),
        (Status::Running, 0),
    ]
    .into_iter()
    .enumerate()
    {
        let mut run = WorkflowState::new(format!("pg-{i}"), if i % 2 == 0 { "ingest" } else { "report" });
        let failed = status == Status::Failed;
        run.status = status;
        let at = now() - Duration::days(age_days) - Duration::minutes(i as i64);
        run.created_at = Some(at);
        run.updated_at = Some(at);
        run.execution_time_ms = Some(100 * (i as i64 + 1));
        if failed {
            run.error_message = Some(format!("ValueError: bad input {i}"));
        }
        out.push(run);
    }
    out
}

/// A database on the test server holding [`runs`], migrated by its owner; `None` after `SKIPPED`.
async fn owned(test: &str) -> Option<(String, Store)> {
    let url = flowstate_testkit::pg::fresh_database_or_skip(test).await?;
    let store = open_store(std::path::Path::new(&url), now()).await;
    store.save_many(&runs()).await.unwrap();
    Some((url, store))
}

async fn sql(url: &str, sql: &str) {
    let mut conn = PgConnection::connect(url).await.unwrap();
    sqlx::raw_sql(sql)
        .execute(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    conn.close().await.unwrap();
}

fn as_user(url: &str, user: &str, password: Option<&str>) -> String {
    let mut u = url::Url::parse(url).unwrap();
    u.set_username(user).unwrap();
    u.set_password(password).unwrap();
    u.to_string()
}

/// A login role that may only read `url`'s database (CONNECT, USAGE, SELECT on every table); `url` as it.
async fn read_only_role(url: &str) -> String {
    let database = url::Url::parse(url)
        .unwrap()
        .path()
        .trim_start_matches('/')
        .to_string();
    let role: String = format!("ro_{}", database.trim_start_matches("fs_"))
        .chars()
        .take(63)
        .collect();
    sql(
        url,
        &format!(
            "CREATE ROLE \"{role}\" LOGIN; GRANT CONNECT ON DATABASE \"{database}\" TO \"{role}\"; \
             GRANT USAGE ON SCHEMA public TO \"{role}\"; GRANT SELECT ON ALL TABLES IN SCHEMA public TO \"{role}\";"
        ),
    )
    .await;
    as_user(url, &role, None)
}

async fn open_as(url: &str, read_only: bool) -> flowstate_store::Result<Store> {
    Store::open_with(
        url,
        StoreOptions {
            read_only,
            clock: Arc::new(FixedClock::new(now())),
            ..Default::default()
        },
    )
    .await
}

/// The pages a reader opens.
const PAGES: [&str; 8] = [
    "/",
    "/runs",
    "/runs?status=failed",
    "/runs?pipeline=ingest&status=completed",
    "/runs/pg-0",
    "/failures",
    "/login",
    "/healthz",
];

/// `serve --read-only` with a role that may only read: every page is a 200 with the runs; every change is
/// refused (403) in words naming --read-only; nothing changes.
#[tokio::test]
async fn read_only_on_a_role_that_may_only_read_serves_every_page_and_refuses_changes() {
    let Some((url, owner)) = owned("web_readonly_role").await else {
        return;
    };
    let ro = read_only_role(&url).await;
    let store = open_as(&ro, true)
        .await
        .expect("a role that may only read opens read-only");
    let before = db_bytes(std::path::Path::new(&url));
    let app = app_with(&store, Mode::READ_ONLY);
    for page in PAGES {
        let answer = visit(app.clone(), page, None).await;
        assert_eq!(answer.status, StatusCode::OK, "{page}: {}", answer.body);
    }
    let (_, runs) = get(&store, "/runs?status=failed").await;
    assert!(
        runs.contains("pg-0") && runs.contains("pg-1"),
        "the failures are listed"
    );
    let health = visit(app.clone(), "/healthz", None).await.json();
    assert_eq!(health["ok"], true, "{health}");
    assert_eq!(health["read_only"], true, "{health}");

    for (what, post) in [
        ("delete", Post::delete("pg-0", "pg-0")),
        ("cleanup", Post::cleanup("1")),
        (
            "delete, no JavaScript",
            Post::delete("pg-0", "pg-0").sent_from("/runs/pg-0"),
        ),
    ] {
        let answer = post.send(app.clone()).await;
        assert!(
            answer.status == StatusCode::FORBIDDEN || answer.status.is_redirection(),
            "{what}: {} {}",
            answer.status,
            answer.body
        );
        if answer.status == StatusCode::FORBIDDEN {
            assert!(answer.body.contains("--read-only"), "{what}: {}", answer.body);
        }
    }
    assert_eq!(db_bytes(std::path::Path::new(&url)), before, "nothing changed");
    assert!(owner.load_state("pg-0").await.unwrap().is_some());
}

/// Without `--read-only`, the same role: opening for writing is refused in words (it may not migrate), or, on a
/// database already current, the dashboard starts and a change the server refuses is a 409 naming the missing
/// privilege, never a 500; nothing changes.
#[tokio::test]
async fn a_role_that_may_only_read_without_read_only_is_refused_in_words_never_a_500() {
    let Some((url, owner)) = owned("web_readonly_writable").await else {
        return;
    };
    let ro = read_only_role(&url).await;
    let before = db_bytes(std::path::Path::new(&url));
    match open_as(&ro, false).await {
        Err(e) => {
            let message = e.to_string();
            assert!(
                message.contains("may not") || message.contains("read-only"),
                "says why and what to do: {message}"
            );
        }
        Ok(store) => {
            let app = app(&store);
            for page in PAGES {
                let answer = visit(app.clone(), page, None).await;
                assert_eq!(answer.status, StatusCode::OK, "{page}: {}", answer.body);
            }
            for (what, post) in [
                ("delete", Post::delete("pg-0", "pg-0")),
                ("cleanup", Post::cleanup("1")),
            ] {
                let answer = post.send(app.clone()).await;
                assert_eq!(answer.status, StatusCode::CONFLICT, "{what}: {}", answer.body);
                assert!(
                    answer.body.contains("permission denied"),
                    "{what} says why: {}",
                    answer.body
                );
            }
        }
    }
    assert_eq!(db_bytes(std::path::Path::new(&url)), before, "nothing changed");
    assert!(owner.load_state("pg-0").await.unwrap().is_some());
}

/// `/healthz` names the database to a logged-in operator as its URL without the password (given in the URL;
/// the test server trusts any); nobody else sees it; no page or answer carries the password.
#[tokio::test]
async fn healthz_names_the_database_without_its_password() {
    let Some((url, _owner)) = owned("web_healthz_password").await else {
        return;
    };
    let with_password = as_user(&url, "flowstate", Some("s3cret-pw"));
    let store = open_as(&with_password, false).await.unwrap();
    assert_eq!(store.path().to_str().unwrap(), as_user(&url, "flowstate", None));
    let app = app_with(&store, Mode::TOKEN);
    let anonymous = visit(app.clone(), "/healthz", None).await;
    assert!(anonymous.json().get("db").is_none(), "{}", anonymous.body);
    let login = Post::login(ADMIN_TOKEN).send(app.clone()).await;
    let session = login
        .cookies()
        .into_iter()
        .find(|c| c.starts_with("flowstate_session=") && !c.starts_with("flowstate_session=;"))
        .map(|c| c.split(';').next().unwrap().to_string())
        .expect("a session");
    let health = visit(app.clone(), "/healthz", Some(&session)).await;
    assert_eq!(health.status, StatusCode::OK, "{}", health.body);
    assert_eq!(
        health.json()["db"],
        as_user(&url, "flowstate", None).as_str(),
        "{}",
        health.body
    );
    for page in PAGES {
        let answer = visit(app.clone(), page, Some(&session)).await;
        assert!(!answer.body.contains("s3cret-pw"), "{page} shows the password");
    }
}
