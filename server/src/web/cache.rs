//! The page cache: a rendered page is answered again, for at most `--page-cache-ms` (1 s by default), to the
//! requests for the same page that follow it.
//!
//! An operator's dashboard is read by a few people and many open tabs, each refreshing the same few pages; a page
//! costs 2–12 ms of CPU to read and render, a cached one well under 0.1 ms. So the Overview, the runs lists and
//! the failures page are rendered at most once per second each, whatever the number of readers (BENCHMARKS.md:
//! the HTTP figures with and without it). A run's page is a candidate too, but it carries this browser's CSRF
//! token (for its delete form), so it is rendered every time.
//!
//! What a reader sees stays true:
//! - **at most `max_age` old**, and the response says how old: `Age` (whole seconds, as HTTP caches say it) and
//!   `x-flowstate-page-cache: hit` (or `miss`, or `stale` for the one-second grace below); the pages also print
//!   when their figures were read;
//! - **this server's own changes show at once**: every request that could change something (a deletion, a
//!   cleanup, a login or logout; any method but GET/HEAD/OPTIONS, read-only server functions excepted) empties
//!   the cache when it has been answered, and a page rendered while one was being answered is not kept;
//!   changes by other processes (flujo writing its runs) show within `max_age`;
//! - **nothing of one browser reaches another**: the key is the page's path and query plus the request's cookies
//!   (the theme, the login session) but for the CSRF cookie; a page that carries this browser's CSRF token (a
//!   page with a form that changes something) is never kept, nor is any answer but a 200 HTML page without
//!   `Set-Cookie`;
//! - **the CSP nonce is new on every answer**: a kept page is stored cut at its nonce, and put together again
//!   with the nonce of the request being answered (the one its `Content-Security-Policy` names).
//!
//! When a kept page expires, the first request renders it again while the others arriving meanwhile are answered
//! the expired one (for up to another `max_age`, marked `stale`), so a burst of readers costs one render, not
//! one each. The cache holds at most [`MAX_ENTRIES`] pages of at most [`MAX_PAGE_BYTES`] each.
//!
//! Pages are kept uncompressed: the compression layer sits outside this one (see `router` in `web/mod.rs`), so each
//! answer, kept or rendered, is compressed for its own request's `Accept-Encoding` after its nonce is spliced in.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::headers::CspNonce;
use super::security::cookies::{self, CSRF_COOKIE};
use super::security::csrf::CsrfToken;
use super::security::needs_check;

/// How long a page is answered again when `serve` is given no `--page-cache-ms`.
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(1);

/// The most pages kept at once (each path and query is one; a full cache keeps no more until some expire).
pub const MAX_ENTRIES: usize = 512;

/// The largest page kept (larger ones are answered, not kept).
pub const MAX_PAGE_BYTES: usize = 4 * 1024 * 1024;

/// The response header saying how the page was answered: `hit`, `stale` or `miss`.
pub const CACHE_HEADER: HeaderName = HeaderName::from_static("x-flowstate-page-cache");

/// The cache of rendered pages; one per router. Cheap to share (`Arc`).
pub struct PageCache {
    max_age: Duration,
    state: Mutex<Entries>,
    /// Bumped when a changing request has been answered: pages from before no longer count.
    generation: AtomicU64,
    /// Changing requests being answered now: pages rendered meanwhile are not kept.
    changing: AtomicU64,
}

#[derive(Default)]
struct Entries {
    pages: HashMap<String, Arc<Page>>,
    /// Keys being rendered again right now (the others get the expired page meanwhile).
    rendering: HashSet<String>,
}

/// A kept page: its headers and its body cut at the nonce of the request that rendered it.
struct Page {
    rendered: Instant,
    generation: u64,
    headers: HeaderMap,
    pieces: Vec<Bytes>,
    len: usize,
}

impl PageCache {
    /// A cache answering pages again for `max_age`; `Duration::ZERO` turns it off (every request renders).
    pub fn new(max_age: Duration) -> Self {
        PageCache {
            max_age,
            state: Mutex::new(Entries::default()),
            generation: AtomicU64::new(0),
            changing: AtomicU64::new(0),
        }
    }

    /// How long a page is answered again.
    pub fn max_age(&self) -> Duration {
        self.max_age
    }

    /// How many pages are kept now.
    pub fn len(&self) -> usize {
        self.lock().pages.len()
    }

    /// True when no page is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forgets every kept page (the next request for each renders it).
    pub fn clear(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.lock().pages.clear();
    }

    fn lock(&self) -> MutexGuard<'_, Entries> {
        // A panic while holding the lock cannot leave the maps half-changed (single inserts and removals).
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl std::fmt::Debug for PageCache {
    // The pages themselves (whole HTML documents) stay out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PageCache")
            .field("max_age", &self.max_age)
            .field("pages", &self.len())
            .field("generation", &self.generation.load(Ordering::Relaxed))
            .finish()
    }
}

impl Default for PageCache {
    fn default() -> Self {
        PageCache::new(DEFAULT_MAX_AGE)
    }
}

/// Reads `body` whole when it is at most `max` bytes (`Ok(Ok(bytes))`); when it is longer, stops reading and
/// gives back a body that sends what was read and then the rest (`Ok(Err(body))`), so a large page is answered
/// without being held whole.
async fn read_at_most(body: Body, max: usize) -> Result<Result<Bytes, Body>, axum::Error> {
    use futures_util::StreamExt;
    let mut stream = body.into_data_stream();
    let mut chunks: Vec<Bytes> = Vec::new();
    let mut len = 0;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        len += chunk.len();
        chunks.push(chunk);
        if len > max {
            let read = futures_util::stream::iter(chunks.into_iter().map(Ok::<_, axum::Error>));
            return Ok(Err(Body::from_stream(read.chain(stream))));
        }
    }
    Ok(Ok(match chunks.len() {
        1 => chunks.pop().unwrap_or_default(),
        _ => chunks.concat().into(),
    }))
}

/// The layer (`axum::middleware::from_fn_with_state(cache, page_cache)`), inside the CSRF and header layers
/// (it reads the request's [`CspNonce`] and [`CsrfToken`]).
pub async fn page_cache(State(cache): State<Arc<PageCache>>, req: Request, next: Next) -> Response {
    if cache.max_age.is_zero() {
        return next.run(req).await;
    }
    if needs_check(req.method(), req.uri().path()) {
        return changing(&cache, req, next).await;
    }
    if req.method() != Method::GET || !is_page(req.uri().path()) {
        return next.run(req).await;
    }
    let key = cache_key(&req);
    let Some(nonce) = req.extensions().get::<CspNonce>().map(|n| n.0.clone()) else {
        return next.run(req).await;
    };
    let generation = cache.generation.load(Ordering::SeqCst);
    let now = Instant::now();
    let kept = {
        let mut entries = cache.lock();
        match entries.pages.get(&key).cloned() {
            Some(page) if page.generation == generation => {
                let age = now.saturating_duration_since(page.rendered);
                if age < cache.max_age {
                    Some((page, "hit"))
                } else if age < cache.max_age * 2 && entries.rendering.contains(&key) {
                    Some((page, "stale"))
                } else {
                    // Expired (and past the grace, or nobody is rendering it): this request renders it.
                    entries.rendering.insert(key.clone());
                    None
                }
            }
            _ => {
                entries.rendering.insert(key.clone());
                None
            }
        }
    };
    if let Some((page, how)) = kept {
        return answer_kept(&page, &nonce, now, how);
    }

    // Render: this request is the one refreshing `key` (the mark goes whatever happens, a dropped request too).
    let _rendering = RenderingMark {
        cache: &cache,
        key: &key,
    };
    let csrf = req.extensions().get::<CsrfToken>().map(|t| t.0.clone());
    let mut response = next.run(req).await;
    if !keepable(&response) {
        response
            .headers_mut()
            .insert(CACHE_HEADER, HeaderValue::from_static("miss"));
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let bytes = match read_at_most(body, MAX_PAGE_BYTES).await {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(whole)) => {
            // Too large to keep: answered as it is, not kept (never a 500 for a page that rendered fine).
            parts
                .headers
                .insert(CACHE_HEADER, HeaderValue::from_static("miss"));
            return Response::from_parts(parts, whole);
        }
        Err(error) => {
            // The page's rendering failed midway: say so plainly.
            tracing::error!(%error, "a page could not be read whole for the page cache");
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                "The page could not be rendered; see the server log.",
            )
                .into_response();
        }
    };
    let carries_token = csrf.is_some_and(|t| !t.is_empty() && contains(&bytes, t.as_bytes()));
    let unchanged =
        cache.generation.load(Ordering::SeqCst) == generation && cache.changing.load(Ordering::SeqCst) == 0;
    if !carries_token && unchanged {
        parts.headers.remove(header::CONTENT_LENGTH);
        let page = Arc::new(Page {
            rendered: now,
            generation,
            headers: parts.headers.clone(),
            pieces: split(&bytes, nonce.as_bytes()),
            len: bytes.len(),
        });
        let mut entries = cache.lock();
        if entries.pages.len() >= MAX_ENTRIES && !entries.pages.contains_key(&key) {
            let limit = cache.max_age * 2;
            entries.pages.retain(|_, p| {
                now.saturating_duration_since(p.rendered) < limit && p.generation == generation
            });
        }
        if entries.pages.len() < MAX_ENTRIES || entries.pages.contains_key(&key) {
            entries.pages.insert(key.clone(), page);
        }
    }
    parts
        .headers
        .insert(CACHE_HEADER, HeaderValue::from_static("miss"));
    Response::from_parts(parts, Body::from(bytes))
}

/// A changing request: answered, then every kept page forgotten (and none rendered meanwhile kept).
async fn changing(cache: &PageCache, req: Request, next: Next) -> Response {
    cache.changing.fetch_add(1, Ordering::SeqCst);
    let done = ChangingMark(cache);
    let response = next.run(req).await;
    drop(done);
    response
}

/// Ends a changing request (also when its future is dropped): the cache is emptied.
struct ChangingMark<'a>(&'a PageCache);

impl Drop for ChangingMark<'_> {
    fn drop(&mut self) {
        self.0.clear();
        self.0.changing.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Clears the "being rendered" mark of a key when its rendering ends, however it ends.
struct RenderingMark<'a> {
    cache: &'a PageCache,
    key: &'a str,
}

impl Drop for RenderingMark<'_> {
    fn drop(&mut self) {
        self.cache.lock().rendering.remove(self.key);
    }
}

/// The kept page, with this request's nonce and its age.
fn answer_kept(page: &Page, nonce: &str, now: Instant, how: &'static str) -> Response {
    let mut body = Vec::with_capacity(page.len);
    for (i, piece) in page.pieces.iter().enumerate() {
        if i > 0 {
            body.extend_from_slice(nonce.as_bytes());
        }
        body.extend_from_slice(piece);
    }
    let mut response = Response::new(Body::from(body));
    *response.headers_mut() = page.headers.clone();
    let age = now.saturating_duration_since(page.rendered).as_secs();
    response.headers_mut().insert(header::AGE, HeaderValue::from(age));
    response
        .headers_mut()
        .insert(CACHE_HEADER, HeaderValue::from_static(how));
    response
}

/// Pages that may be kept: the Overview, the runs lists, a run, the failures and pipelines pages. Not the cleanup
/// page (its preview must be read when it is shown), the login page, server functions, files or `/healthz`.
fn is_page(path: &str) -> bool {
    matches!(path, "/" | "/runs" | "/failures" | "/pipelines")
        || path
            .strip_prefix("/runs/")
            .is_some_and(|id| !id.is_empty() && !id.contains('/'))
}

/// Only a whole 200 HTML page without cookies of its own is kept.
fn keepable(response: &Response) -> bool {
    response.status() == StatusCode::OK
        && !response.headers().contains_key(header::SET_COOKIE)
        && response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/html"))
}

/// The path and query, and the cookies but the CSRF one, sorted (the order a browser sends them in is not the
/// page's business).
fn cache_key(req: &Request) -> String {
    let mut cookies: Vec<String> = cookies::all(req.headers())
        .filter(|c| c.name() != CSRF_COOKIE)
        .map(|c| c.to_string())
        .collect();
    cookies.sort_unstable();
    let uri = req.uri();
    let path_and_query = uri.path_and_query().map_or("/", |pq| pq.as_str());
    format!("{path_and_query}\n{}", cookies.join("; "))
}

/// `bytes` cut at every occurrence of `at` (n occurrences: n + 1 pieces).
fn split(bytes: &Bytes, at: &[u8]) -> Vec<Bytes> {
    let mut pieces = Vec::new();
    let mut start = 0;
    if !at.is_empty() {
        while let Some(i) = find(&bytes[start..], at) {
            pieces.push(bytes.slice(start..start + i));
            start += i + at.len();
        }
    }
    pieces.push(bytes.slice(start..));
    pieces
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    find(haystack, needle).is_some()
}

/// The first index of `needle` in `haystack` (memchr's substring search).
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(haystack, needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_are_cut_at_the_nonce_and_put_together_with_another() {
        let nonce = "0123456789abcdef0123456789abcdef";
        let html =
            format!("<script nonce=\"{nonce}\">a</script><p>x</p><script nonce=\"{nonce}\">b</script>");
        let pieces = split(&Bytes::from(html.clone()), nonce.as_bytes());
        assert_eq!(pieces.len(), 3);
        let page = Page {
            rendered: Instant::now(),
            generation: 0,
            headers: HeaderMap::new(),
            pieces,
            len: html.len(),
        };
        let other = "fedcba9876543210fedcba9876543210";
        let response = answer_kept(&page, other, Instant::now(), "hit");
        let body = body_text(response);
        assert_eq!(body, html.replace(nonce, other));
        assert!(!body.contains(nonce));
    }

    fn body_text(response: Response) -> String {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let bytes = rt
            .block_on(axum::body::to_bytes(response.into_body(), usize::MAX))
            .unwrap();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    /// A page larger than the cache keeps (a run list with huge values written by another process) is answered
    /// whole, 200, every time, and never kept: it used to be a 500 for everyone (issue 12).
    #[tokio::test]
    async fn a_page_too_large_to_keep_is_answered_whole_and_not_kept() {
        use axum::routing::get;
        use tower::ServiceExt;
        let big = format!("<p>{}</p>", "x".repeat(MAX_PAGE_BYTES + 10));
        let cache = Arc::new(PageCache::new(Duration::from_secs(60)));
        let page = big.clone();
        let app = axum::Router::new()
            .route(
                "/runs",
                get(move || {
                    let page = page.clone();
                    async move { ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], page) }
                }),
            )
            .layer(axum::middleware::from_fn_with_state(cache.clone(), page_cache))
            .layer(axum::middleware::from_fn(
                |mut req: Request, next: Next| async move {
                    req.extensions_mut()
                        .insert(CspNonce("0123456789abcdef0123456789abcdef".into()));
                    next.run(req).await
                },
            ));
        for _ in 0..2 {
            let response = app
                .clone()
                .oneshot(Request::get("/runs").body(Body::empty()).unwrap())
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            assert_eq!(response.headers()[CACHE_HEADER], "miss");
            let body = axum::body::to_bytes(response.into_body(), usize::MAX)
                .await
                .unwrap();
            assert_eq!(body.len(), big.len(), "the whole page is sent");
            assert_eq!(body, big.as_bytes());
        }
        assert!(cache.is_empty(), "a page over {MAX_PAGE_BYTES} bytes is not kept");
    }

    #[test]
    fn find_and_split_edges() {
        assert_eq!(find(b"abcabc", b"ca"), Some(2));
        assert_eq!(find(b"abc", b"abcd"), None);
        assert_eq!(find(b"", b"a"), None);
        assert_eq!(find(b"aaab", b"aab"), Some(1));
        assert_eq!(split(&Bytes::from_static(b"xNy"), b"N").len(), 2);
        assert_eq!(split(&Bytes::from_static(b"NN"), b"N").len(), 3);
        assert_eq!(split(&Bytes::from_static(b"plain"), b"N").len(), 1);
    }

    #[test]
    fn which_requests_are_pages_and_which_change() {
        for page in ["/", "/runs", "/failures", "/pipelines", "/runs/run_1"] {
            assert!(is_page(page), "{page}");
        }
        for other in [
            "/cleanup",
            "/login",
            "/runs/",
            "/runs/a/b",
            "/api/overview",
            "/pkg/flowstate.js",
            "/healthz",
        ] {
            assert!(!is_page(other), "{other}");
        }
        assert!(!needs_check(&Method::GET, "/runs"));
        assert!(needs_check(&Method::POST, "/api/delete_run"));
        assert!(needs_check(&Method::DELETE, "/runs/x"));
        for read_only in super::super::security::READ_ONLY_SERVER_FNS {
            assert!(!needs_check(&Method::POST, read_only));
        }
    }

    #[test]
    fn the_key_ignores_the_csrf_cookie_and_cookie_order() {
        let request = |cookie: &str| {
            Request::builder()
                .uri("/runs?status=failed")
                .header(header::COOKIE, cookie)
                .body(Body::empty())
                .unwrap()
        };
        let a = cache_key(&request(&format!("{CSRF_COOKIE}=aaaa; theme=dark; session=s1")));
        let b = cache_key(&request(&format!("session=s1; theme=dark; {CSRF_COOKIE}=bbbb")));
        assert_eq!(a, b);
        assert_ne!(a, cache_key(&request("session=s2; theme=dark")));
        assert_ne!(a, cache_key(&request("session=s1; theme=light")));
        assert!(a.starts_with("/runs?status=failed\n"));
    }
}
