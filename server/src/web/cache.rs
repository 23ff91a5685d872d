//! The page cache: a rendered page is answered again, for at most `--page-cache-ms` (1 s by default), to the
//! requests for the same page that follow it.
//!
//! An operator's dashboard is read by a few people and many open tabs, each refreshing the same few pages; a page
//! costs 2–12 ms of CPU to read and render (a run's page within its list more at 1M runs), a cached one well under
//! 0.1 ms. So the Overview, the runs lists, a run's page, the failures and the pipelines pages are rendered at most
//! once per second each, whatever the number of readers (BENCHMARKS.md: the HTTP figures with and without it).
//!
//! What a reader sees stays true:
//! - **at most `max_age` old**, and the response says how old: `Age` (whole seconds, as HTTP caches say it) and
//!   `x-flowstate-page-cache: hit` (or `miss`, or `stale` for the one-second grace below); the pages also print
//!   when their figures were read;
//! - **this server's own changes show at once**: every request that could change something (a deletion, a
//!   cleanup, a login or logout; any method but GET/HEAD/OPTIONS, read-only server functions excepted) empties
//!   the cache when it has been answered, and a page rendered while one was being answered is not kept;
//!   changes by other processes (flujo writing its runs) show within `max_age`;
//! - **nothing of one browser reaches another**: the key is the page's path and query, the host the request
//!   names and whether it came through a proxy (a run's page shows its delete form, or why deleting is refused
//!   from there), and the request's cookies (the theme, the login session) but for the CSRF cookie; only a 200
//!   HTML page whose answer sets no cookie is kept;
//! - **every answer carries its own secrets**: a kept page is stored cut at the two secrets of the request that
//!   rendered it, its CSP nonce and its CSRF token (which a run's delete form and the page's hydration data
//!   carry), and put together again with those of the request being answered: the nonce its
//!   `Content-Security-Policy` names and the token its `flowstate_csrf` cookie holds. A page in which the two
//!   overlap is not kept. The token is 256 random bits and the nonce 128, in hex: neither is in a page by chance.
//!
//! A browser that arrives without a CSRF cookie (its first request) is answered from the cache too: the security
//! layer, outside this one, makes its new token before the page is put together, and sets the cookie holding that
//! same token on the answer afterwards; no `Set-Cookie` ever passes through the cache.
//!
//! When a kept page expires, the first request renders it again while the others arriving meanwhile are answered
//! the expired one (for up to another `max_age`, marked `stale`), so a burst of readers costs one render, not
//! one each. The cache holds at most [`MAX_ENTRIES`] pages of at most [`MAX_PAGE_BYTES`] each.
//!
//! Pages are kept uncompressed: the compression layer sits outside this one (see `router` in `web/mod.rs`), so each
//! answer, kept or rendered, is compressed for its own request's `Accept-Encoding` after its secrets are spliced in.

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
use super::security::origin::host_header;
use super::security::{needs_check, through_proxy};

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

/// A kept page: its headers and its body cut at the secrets of the request that rendered it.
struct Page {
    rendered: Instant,
    generation: u64,
    headers: HeaderMap,
    body: Cut,
}

/// A secret of the request being answered, which a kept page holds only as a cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Secret {
    /// The CSP nonce ([`CspNonce`]).
    Nonce,
    /// This browser's CSRF token ([`CsrfToken`]).
    Csrf,
}

/// A body cut at every occurrence of the secrets: `secrets[i]` was between `pieces[i]` and `pieces[i + 1]`.
#[derive(Debug)]
struct Cut {
    pieces: Vec<Bytes>,
    secrets: Vec<Secret>,
    /// The body's length when put together with secrets as long as the ones cut out.
    len: usize,
}

impl Cut {
    /// `bytes` cut at every occurrence of each non-empty secret; `None` when two occurrences overlap (a page
    /// that cannot be put together again without keeping part of a secret is not kept).
    fn new(bytes: &Bytes, secrets: &[(Secret, &[u8])]) -> Option<Cut> {
        let mut found: Vec<(usize, usize, Secret)> = secrets
            .iter()
            .filter(|(_, value)| !value.is_empty())
            .flat_map(|&(secret, value)| {
                memchr::memmem::find_iter(bytes, value).map(move |at| (at, value.len(), secret))
            })
            .collect();
        found.sort_unstable_by_key(|&(at, _, _)| at);
        let mut pieces = Vec::with_capacity(found.len() + 1);
        let mut kinds = Vec::with_capacity(found.len());
        let mut start = 0;
        for (at, len, secret) in found {
            if at < start {
                return None;
            }
            pieces.push(bytes.slice(start..at));
            kinds.push(secret);
            start = at + len;
        }
        pieces.push(bytes.slice(start..));
        Some(Cut {
            pieces,
            secrets: kinds,
            len: bytes.len(),
        })
    }

    /// The body put together again with `nonce` and `csrf` where the secrets were.
    fn join(&self, nonce: &str, csrf: &str) -> Vec<u8> {
        let mut body = Vec::with_capacity(self.len);
        for (i, piece) in self.pieces.iter().enumerate() {
            if let Some(secret) = i.checked_sub(1).and_then(|j| self.secrets.get(j)) {
                body.extend_from_slice(match secret {
                    Secret::Nonce => nonce.as_bytes(),
                    Secret::Csrf => csrf.as_bytes(),
                });
            }
            body.extend_from_slice(piece);
        }
        body
    }
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
    // Both secrets come from the layers outside (headers, security); without them nothing is kept or answered.
    let (Some(nonce), Some(csrf)) = (
        req.extensions().get::<CspNonce>().map(|n| n.0.clone()),
        req.extensions().get::<CsrfToken>().map(|t| t.0.clone()),
    ) else {
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
        return answer_kept(&page, &nonce, &csrf, now, how);
    }

    // Render: this request is the one refreshing `key` (the mark goes whatever happens, a dropped request too).
    let _rendering = RenderingMark {
        cache: &cache,
        key: &key,
    };
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
    let unchanged =
        cache.generation.load(Ordering::SeqCst) == generation && cache.changing.load(Ordering::SeqCst) == 0;
    let cut = unchanged
        .then(|| {
            Cut::new(
                &bytes,
                &[(Secret::Nonce, nonce.as_bytes()), (Secret::Csrf, csrf.as_bytes())],
            )
        })
        .flatten();
    if let Some(body) = cut {
        parts.headers.remove(header::CONTENT_LENGTH);
        let page = Arc::new(Page {
            rendered: now,
            generation,
            headers: parts.headers.clone(),
            body,
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

/// The kept page, with this request's nonce and CSRF token, and its age.
fn answer_kept(page: &Page, nonce: &str, csrf: &str, now: Instant, how: &'static str) -> Response {
    let mut response = Response::new(Body::from(page.body.join(nonce, csrf)));
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

/// Only a whole 200 HTML page without cookies of its own is kept (the CSRF cookie of a browser that had none is
/// set outside, by the security layer).
fn keepable(response: &Response) -> bool {
    response.status() == StatusCode::OK
        && !response.headers().contains_key(header::SET_COOKIE)
        && response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/html"))
}

/// The path and query; the host the request names and whether it came through a proxy (on which a run page's
/// delete form depends: [`super::security::Security::authorise`]); and the cookies but the CSRF one, sorted (the
/// order a browser sends them in is not the page's business).
fn cache_key(req: &Request) -> String {
    let mut cookies: Vec<String> = cookies::all(req.headers())
        .filter(|c| c.name() != CSRF_COOKIE)
        .map(|c| c.to_string())
        .collect();
    cookies.sort_unstable();
    let uri = req.uri();
    let path_and_query = uri.path_and_query().map_or("/", |pq| pq.as_str());
    let host = host_header(req.headers(), uri).unwrap_or("");
    let proxied = if through_proxy(req.headers()) {
        "proxied"
    } else {
        "direct"
    };
    format!("{path_and_query}\n{host}\n{proxied}\n{}", cookies.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NONCE: &str = "0123456789abcdef0123456789abcdef";
    const TOKEN: &str = "aaaaaaaaaaaaaaaabbbbbbbbbbbbbbbbccccccccccccccccdddddddddddddddd";

    /// A page with a script, a form carrying the token and hydration data carrying it again, as a run's page.
    fn run_page(nonce: &str, token: &str) -> String {
        format!(
            "<script nonce=\"{nonce}\">a</script><form><input type=\"hidden\" name=\"csrf\" value=\"{token}\"/>\
             </form><script nonce=\"{nonce}\">__RESOLVED({{\"csrf\":\"{token}\",\"logged_in\":false}})</script>"
        )
    }

    fn cut(html: &str, nonce: &str, token: &str) -> Option<Cut> {
        Cut::new(
            &Bytes::from(html.to_string()),
            &[
                (Secret::Nonce, nonce.as_bytes()),
                (Secret::Csrf, token.as_bytes()),
            ],
        )
    }

    #[test]
    fn pages_are_cut_at_their_secrets_and_put_together_with_another_requests() {
        let html = run_page(NONCE, TOKEN);
        let page = Page {
            rendered: Instant::now(),
            generation: 0,
            headers: HeaderMap::new(),
            body: cut(&html, NONCE, TOKEN).unwrap(),
        };
        assert_eq!(page.body.pieces.len(), 5);
        assert_eq!(
            page.body.secrets,
            [Secret::Nonce, Secret::Csrf, Secret::Nonce, Secret::Csrf]
        );
        for piece in &page.body.pieces {
            assert!(find(piece, NONCE.as_bytes()).is_none() && find(piece, TOKEN.as_bytes()).is_none());
        }
        let (nonce, token) = (
            "fedcba9876543210fedcba9876543210",
            "1111111111111111222222222222222233333333333333334444444444444444",
        );
        let body = body_text(answer_kept(&page, nonce, token, Instant::now(), "hit"));
        assert_eq!(body, run_page(nonce, token));
        assert!(!body.contains(NONCE) && !body.contains(TOKEN));
        // The secrets do not swap places (a nonce where the token was, or the other way round).
        let body = page.body.join(NONCE, TOKEN);
        assert_eq!(body, html.as_bytes());
    }

    #[test]
    fn overlapping_secrets_are_not_kept_and_empty_ones_are_not_cut() {
        // The nonce inside the token, or the two overlapping: no cut could put them back without part of a secret.
        assert!(Cut::new(
            &Bytes::from_static(b"x abcdef y"),
            &[(Secret::Csrf, b"abcdef"), (Secret::Nonce, b"cd")]
        )
        .is_none());
        assert!(Cut::new(
            &Bytes::from_static(b"x abcdef y"),
            &[(Secret::Nonce, b"abcd"), (Secret::Csrf, b"cdef")]
        )
        .is_none());
        // Side by side is fine.
        let side = Cut::new(
            &Bytes::from_static(b"abcdcdef"),
            &[(Secret::Nonce, b"abcd"), (Secret::Csrf, b"cdef")],
        )
        .unwrap();
        assert_eq!(side.secrets, [Secret::Nonce, Secret::Csrf]);
        assert_eq!(side.join("N", "T"), b"NT");
        // An empty secret is not cut at (it would match everywhere); a page without secrets is one piece.
        let plain = Cut::new(
            &Bytes::from_static(b"plain"),
            &[(Secret::Nonce, b""), (Secret::Csrf, b"zz")],
        )
        .unwrap();
        assert_eq!((plain.pieces.len(), plain.secrets.len()), (1, 0));
        assert_eq!(plain.join("N", "T"), b"plain");
        let ends = Cut::new(&Bytes::from_static(b"NxN"), &[(Secret::Nonce, b"N")]).unwrap();
        assert_eq!(ends.pieces.len(), 3);
        assert_eq!(ends.join("ab", "T"), b"abxab");
    }

    fn body_text(response: Response) -> String {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let bytes = rt
            .block_on(axum::body::to_bytes(response.into_body(), usize::MAX))
            .unwrap();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    /// The first index of `needle` in `haystack`.
    fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
        memchr::memmem::find(haystack, needle)
    }

    /// A router answering `/runs/r` with `page`'s HTML for each request's nonce and token, behind the cache and
    /// a stand-in for the headers and security layers: the nonce and token come from the `x-nonce` and
    /// `x-token` headers (no header: that secret is missing).
    fn echo_app(cache: Arc<PageCache>, page: fn(&str, &str) -> String) -> axum::Router {
        use axum::routing::get;
        axum::Router::new()
            .route(
                "/runs/r",
                get(move |req: Request| async move {
                    let nonce = req.extensions().get::<CspNonce>().map(|n| n.0.clone());
                    let token = req.extensions().get::<CsrfToken>().map(|t| t.0.clone());
                    (
                        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
                        page(&nonce.unwrap_or_default(), &token.unwrap_or_default()),
                    )
                }),
            )
            .layer(axum::middleware::from_fn_with_state(cache, page_cache))
            .layer(axum::middleware::from_fn(
                |mut req: Request, next: Next| async move {
                    let (nonce, token) = (text(&req, "x-nonce"), text(&req, "x-token"));
                    if let Some(nonce) = nonce {
                        req.extensions_mut().insert(CspNonce(nonce));
                    }
                    if let Some(token) = token {
                        req.extensions_mut().insert(CsrfToken(token));
                    }
                    next.run(req).await
                },
            ))
    }

    fn text(req: &Request, name: &str) -> Option<String> {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }

    async fn fetch(app: &axum::Router, nonce: Option<&str>, token: Option<&str>) -> (String, String) {
        use tower::ServiceExt;
        let mut request = Request::get("/runs/r");
        for (name, value) in [("x-nonce", nonce), ("x-token", token)] {
            if let Some(value) = value {
                request = request.header(name, value);
            }
        }
        let response = app
            .clone()
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let how = response
            .headers()
            .get(CACHE_HEADER)
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (how, String::from_utf8(body.to_vec()).unwrap())
    }

    /// The token a page carries is the requesting browser's, kept or not; a request without either secret is
    /// neither answered from the cache nor kept.
    #[tokio::test]
    async fn each_answer_carries_its_own_requests_token_and_nonce() {
        let cache = Arc::new(PageCache::new(Duration::from_secs(60)));
        let app = echo_app(cache.clone(), run_page);
        let other = "9999999999999999888888888888888877777777777777776666666666666666";
        let other_nonce = "fedcba9876543210fedcba9876543210";
        assert_eq!(
            fetch(&app, Some(NONCE), Some(TOKEN)).await,
            ("miss".into(), run_page(NONCE, TOKEN))
        );
        assert_eq!(cache.len(), 1, "a page carrying a token is kept now");
        assert_eq!(
            fetch(&app, Some(other_nonce), Some(other)).await,
            ("hit".into(), run_page(other_nonce, other)),
            "another browser gets the kept page with its own token and nonce"
        );
        assert_eq!(
            fetch(&app, Some(NONCE), Some(TOKEN)).await,
            ("hit".into(), run_page(NONCE, TOKEN))
        );
        // Without a token (no security layer in front) or without a nonce: rendered, not kept, not marked.
        cache.clear();
        for (nonce, token) in [(Some(NONCE), None), (None, Some(TOKEN))] {
            let (how, _) = fetch(&app, nonce, token).await;
            assert_eq!(how, "");
            assert!(cache.is_empty());
        }
    }

    /// A page in which the nonce and the token overlap (only a page that prints one inside the other could) is
    /// answered as rendered and not kept.
    #[tokio::test]
    async fn a_page_whose_secrets_overlap_is_not_kept() {
        let cache = Arc::new(PageCache::new(Duration::from_secs(60)));
        let app = echo_app(cache.clone(), |nonce, token| {
            format!("<p>{}{token}</p><p>{nonce}</p>", &nonce[..nonce.len() / 2])
        });
        let token = format!("{}{}", &NONCE[16..], &TOKEN[..48]);
        for _ in 0..2 {
            let (how, body) = fetch(&app, Some(NONCE), Some(&token)).await;
            assert_eq!(how, "miss");
            assert!(body.contains(&token));
        }
        assert!(cache.is_empty());
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
                    req.extensions_mut().insert(CspNonce(NONCE.into()));
                    req.extensions_mut().insert(CsrfToken(TOKEN.into()));
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
                .header(header::HOST, "127.0.0.1:3000")
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

    /// A run's page shows the delete form or why deleting is refused, which depends on the host the request
    /// names and on whether it came through a proxy: those are other pages.
    #[test]
    fn the_key_holds_the_host_and_whether_a_proxy_forwarded_the_request() {
        let request = |host: &str, forwarded: Option<(&str, &str)>| {
            let mut r = Request::builder()
                .uri("/runs/r?list=%2Fruns")
                .header(header::HOST, host)
                .header(header::COOKIE, "theme=dark");
            if let Some((name, value)) = forwarded {
                r = r.header(name, value);
            }
            cache_key(&r.body(Body::empty()).unwrap())
        };
        let direct = request("127.0.0.1:3000", None);
        assert_ne!(direct, request("localhost:3000", None));
        assert_ne!(direct, request("flowstate.example", None));
        let proxied = request("127.0.0.1:3000", Some(("x-forwarded-for", "203.0.113.7")));
        assert_ne!(direct, proxied);
        assert_eq!(
            proxied,
            request("127.0.0.1:3000", Some(("x-forwarded-for", "198.51.100.1"))),
            "one page for every client behind the proxy"
        );
        assert_eq!(
            proxied,
            request("127.0.0.1:3000", Some(("forwarded", "for=203.0.113.7")))
        );
    }
}
