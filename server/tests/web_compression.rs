//! Compression on the wire and the site inside the binary, through the whole router:
//!
//! - a page, JSON and a folder's wasm asked for with `Accept-Encoding: gzip` (or `br`) come compressed, with
//!   `Vary: Accept-Encoding`, the security headers and the page cache's header kept, and decompress to what a
//!   request without it gets plain;
//! - the embedded site (server/build.rs, web/site.rs) serves, byte for byte, the files of `target/site` it was
//!   built from: plain, or the gzip and brotli copies made at build time; a matching `If-None-Match` gets a 304.

mod support;

use std::io::Read;
use std::path::Path;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, HeaderMap, Request, StatusCode};
use axum::Router;
use flowstate_app::model::Settings;
use flowstate_server::web::{router, site, AppState, Site};
use flowstate_store::{Status, WorkflowState};
use support::*;
use tower::ServiceExt;

/// A response with its body as bytes (compressed bodies are not text).
struct Raw {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Raw {
    fn header(&self, name: &str) -> &str {
        self.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
    }

    fn varies_by_encoding(&self) -> bool {
        self.headers.get_all(header::VARY).iter().any(|v| {
            v.to_str()
                .unwrap_or("")
                .to_ascii_lowercase()
                .contains("accept-encoding")
        })
    }

    /// The body as sent, decoded according to its `Content-Encoding`.
    fn decoded(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self.header("content-encoding") {
            "" => out.clone_from(&self.body),
            "gzip" => {
                flate2::read::GzDecoder::new(&self.body[..])
                    .read_to_end(&mut out)
                    .expect("a valid gzip body");
            }
            "br" => {
                brotli::Decompressor::new(&self.body[..], 4096)
                    .read_to_end(&mut out)
                    .expect("a valid brotli body");
            }
            other => panic!("unexpected Content-Encoding {other}"),
        }
        out
    }
}

/// GETs `uri` as a browser would, with `accept_encoding` when given.
async fn get_raw(app: Router, uri: &str, accept_encoding: Option<&str>) -> Raw {
    let mut request = Request::get(uri)
        .header(header::HOST, HOST)
        .header(header::ACCEPT, "text/html");
    if let Some(value) = accept_encoding {
        request = request.header(header::ACCEPT_ENCODING, value);
    }
    let response = app
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .expect("the router answers");
    let status = response.status();
    let headers = response.headers().clone();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("a body")
        .to_vec();
    Raw {
        status,
        headers,
        body,
    }
}

/// The router over `db` serving `site`, pages kept for a minute (so two requests get the same page but for its
/// nonce).
fn app_serving(db: &Db, site: Site) -> Router {
    let state = AppState::new(db.store.clone(), Settings::default(), site, HOST.parse().unwrap())
        .with_page_cache(Duration::from_secs(60));
    router(state)
}

/// `html` with this answer's CSP nonce replaced by a placeholder (each answer has its own).
fn without_nonce(raw: &Raw, html: &[u8]) -> String {
    let policy = raw.header("content-security-policy");
    let nonce = policy
        .split("'nonce-")
        .nth(1)
        .and_then(|rest| rest.split('\'').next())
        .expect("a nonce in the CSP");
    String::from_utf8(html.to_vec()).unwrap().replace(nonce, "NONCE")
}

async fn some_runs() -> Db {
    let runs: Vec<WorkflowState> = (0..300)
        .map(|i| {
            let mut run = WorkflowState::new(format!("run-{i:04}"), format!("pipeline-{}", i % 7));
            run.status = [Status::Completed, Status::Failed, Status::Running][i % 3].clone();
            run.created_at = Some(now() - chrono::Duration::minutes(i as i64 * 7));
            run.updated_at = run.created_at;
            run.error_message = (i % 3 == 1).then(|| format!("timeout after {i} s calling the model"));
            run
        })
        .collect();
    new_db("compression.db", now(), &runs).await
}

/// A folder site with a wasm file of `len` bytes that compresses (as real wasm does).
fn folder_site(root: &Path, len: usize) -> Vec<u8> {
    let mut wasm = b"\0asm\x01\0\0\0".to_vec();
    let mut i = 0u32;
    while wasm.len() < len {
        wasm.extend_from_slice(format!("func_{}_{} ", i % 97, i % 13).as_bytes());
        i += 1;
    }
    std::fs::create_dir_all(root.join("pkg")).unwrap();
    std::fs::write(root.join("pkg/flowstate_bg.wasm"), &wasm).unwrap();
    wasm
}

#[tokio::test]
async fn pages_json_and_wasm_are_compressed_for_clients_that_accept_it_and_plain_for_others() {
    let db = some_runs().await;
    let dir = tempfile::tempdir().unwrap();
    let wasm = folder_site(dir.path(), 200_000);
    let app = app_serving(&db, Site::Dir(dir.path().to_path_buf()));

    // A page: the plain answer first (it fills the page cache), then compressed ones of the same kept page.
    let plain = get_raw(app.clone(), "/", None).await;
    assert_eq!(plain.status, StatusCode::OK);
    assert_eq!(plain.header("content-encoding"), "", "no Accept-Encoding: plain");
    assert!(
        plain.varies_by_encoding(),
        "Vary: Accept-Encoding on the plain page too"
    );
    let plain_html = without_nonce(&plain, &plain.body);
    assert!(plain_html.contains("<h1>Overview</h1>") || plain_html.contains("Overview"));
    for coding in ["gzip", "br"] {
        let packed = get_raw(app.clone(), "/", Some(coding)).await;
        assert_eq!(packed.status, StatusCode::OK);
        assert_eq!(packed.header("content-encoding"), coding);
        assert!(packed.varies_by_encoding());
        assert_eq!(
            packed.header("x-flowstate-page-cache"),
            "hit",
            "the kept page, compressed"
        );
        assert!(
            !packed.header("content-security-policy").is_empty(),
            "security headers kept"
        );
        assert_eq!(packed.header("x-content-type-options"), "nosniff");
        assert!(
            packed.body.len() * 3 < plain.body.len(),
            "{coding}: {} bytes on the wire for a {}-byte page",
            packed.body.len(),
            plain.body.len()
        );
        assert_eq!(
            without_nonce(&packed, &packed.decoded()),
            plain_html,
            "{coding} decompresses to the same page"
        );
    }

    // JSON.
    let plain = get_raw(app.clone(), "/healthz", None).await;
    let packed = get_raw(app.clone(), "/healthz", Some("gzip")).await;
    assert_eq!(plain.header("content-encoding"), "");
    assert_eq!(packed.header("content-encoding"), "gzip");
    assert_eq!(packed.decoded(), plain.body);

    // A folder's wasm, compressed per request.
    let plain = get_raw(app.clone(), "/pkg/flowstate_bg.wasm", None).await;
    assert_eq!(plain.status, StatusCode::OK);
    assert_eq!(plain.header("content-type"), "application/wasm");
    assert_eq!(plain.header("content-encoding"), "");
    assert_eq!(plain.body, wasm);
    for coding in ["gzip", "br", "gzip, deflate, br, zstd"] {
        let packed = get_raw(app.clone(), "/pkg/flowstate_bg.wasm", Some(coding)).await;
        assert_eq!(packed.status, StatusCode::OK);
        assert_ne!(packed.header("content-encoding"), "", "{coding}");
        assert!(packed.varies_by_encoding());
        assert!(
            packed.body.len() < wasm.len() / 2,
            "{coding}: {} bytes",
            packed.body.len()
        );
        assert_eq!(packed.decoded(), wasm, "{coding} decompresses to the file");
    }
}

#[tokio::test]
async fn the_404_page_and_refusals_are_compressed_too() {
    let db = some_runs().await;
    let app = app_serving(&db, Site::Dir(tempfile::tempdir().unwrap().path().to_path_buf()));
    let plain = get_raw(app.clone(), "/no/such/page", None).await;
    let packed = get_raw(app.clone(), "/no/such/page", Some("gzip")).await;
    assert_eq!(plain.status, StatusCode::NOT_FOUND);
    assert_eq!(packed.status, StatusCode::NOT_FOUND);
    assert_eq!(packed.header("content-encoding"), "gzip");
    assert_eq!(
        without_nonce(&packed, &packed.decoded()),
        without_nonce(&plain, &plain.body)
    );
}

#[tokio::test]
async fn the_embedded_site_is_the_built_site_plain_or_precompressed() {
    if !site::embedded_has_bundle() {
        // Straight to stderr, past libtest's capture, so CI's log shows it.
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED the_embedded_site_is_the_built_site_plain_or_precompressed: the binary was built without a \
             site (`./x test` builds it first; or run scripts/build-site.sh, then the tests)"
        );
        return;
    }
    let db = some_runs().await;
    let app = app_serving(&db, Site::Embedded);
    let on_disk = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/site");
    let files = site::embedded_files();
    for name in [
        "pkg/flowstate_bg.wasm",
        "pkg/flowstate.js",
        "pkg/flowstate.css",
        "favicon.svg",
    ] {
        assert!(files.iter().any(|f| f == name), "{name} is embedded: {files:?}");
    }
    assert!(
        !files.iter().any(|f| f.ends_with(".gz") || f.ends_with(".br")),
        "the compressed copies are not listed as files"
    );
    for name in &files {
        let built = site::embedded_file(name).unwrap();
        // What scripts/build-site.sh left in target/site is what the binary carries (cargo embeds it again
        // whenever it changes).
        if let Ok(disk) = std::fs::read(on_disk.join(name)) {
            assert!(
                disk == built,
                "{name}: the embedded copy differs from target/site"
            );
        }
        let uri = format!("/{name}");
        let plain = get_raw(app.clone(), &uri, None).await;
        assert_eq!(plain.status, StatusCode::OK, "{name}");
        assert_eq!(plain.header("content-encoding"), "", "{name}");
        assert_eq!(plain.header("content-length"), built.len().to_string(), "{name}");
        assert!(plain.body == built, "{name}: served plain, byte for byte");
        assert!(
            !plain.header("content-security-policy").is_empty(),
            "{name}: security headers"
        );
        let compressible = built.len() > 1024 && !name.ends_with(".png");
        for coding in ["gzip", "br", "gzip, deflate, br, zstd"] {
            let packed = get_raw(app.clone(), &uri, Some(coding)).await;
            assert_eq!(packed.status, StatusCode::OK, "{name}");
            if compressible {
                let expected = if coding == "gzip" { "gzip" } else { "br" };
                assert_eq!(packed.header("content-encoding"), expected, "{name} for {coding}");
                assert!(packed.varies_by_encoding(), "{name}");
                assert!(packed.body.len() < built.len(), "{name}: smaller on the wire");
            }
            assert!(
                packed.decoded() == built,
                "{name}: {coding} decompresses to the built file"
            );
        }
        // Asked again with its tag: 304, no body.
        let etag = plain.header("etag").to_string();
        assert!(etag.starts_with("W/\""), "{name}: {etag}");
        let request = Request::get(&uri)
            .header(header::HOST, HOST)
            .header(header::IF_NONE_MATCH, &etag)
            .header(header::ACCEPT_ENCODING, "gzip")
            .body(Body::empty())
            .unwrap();
        let again = app.clone().oneshot(request).await.unwrap();
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED, "{name}");
    }
    // A name that is no file, a compressed copy asked for by name, another method: the 404 page.
    for uri in [
        "/pkg/nothing.js",
        "/pkg/flowstate_bg.wasm.br",
        "/pkg/flowstate.js.gz",
        "/pkg",
    ] {
        let answer = get_raw(app.clone(), uri, Some("gzip")).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{uri}");
        assert!(
            String::from_utf8(answer.decoded()).unwrap().contains("<html"),
            "{uri}: the 404 page"
        );
    }
}
