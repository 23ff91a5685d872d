//! The guards every change passes, on the server, every time (DESIGN.md, "Guarded actions").
//!
//! A change (deleting a run, a cleanup, a login) is refused unless:
//!
//! 1. the dashboard is not in `--read-only` mode;
//! 2. the request is same-site: its `Origin` (or, without one, its `Referer`) is this server's own origin, and
//!    the CSRF token the form carries equals the browser's `flowstate_csrf` cookie (double submit, compared in
//!    constant time);
//! 3. the operator is authorised: logged in with the admin token when one is configured, or else the server
//!    listens on a loopback address only and the request names this machine in its `Host` (so a page of another
//!    site re-pointed at 127.0.0.1, DNS rebinding, is refused).
//!
//! Check 2 runs twice: in the binary's axum layer in front of every POST (`server/src/web/guard.rs`, which
//! answers 403 before any server function runs) and again inside each server function through
//! [`require_change`], so a server function mounted without the layer is still safe. The layer also issues the
//! CSRF cookie and tells pages its value ([`CsrfToken`]).
//!
//! Names shared with the browser bundle (cookie and field names, the read-only endpoints) are compiled for both
//! targets; the checks themselves are server-only.

/// The form field carrying the CSRF token.
pub const CSRF_FIELD: &str = "csrf";
/// The header carrying the CSRF token for calls that send no form (`fetch`).
pub const CSRF_HEADER: &str = "x-csrf-token";
/// The cookie holding this browser's CSRF token (HttpOnly, SameSite=Strict).
pub const CSRF_COOKIE: &str = "flowstate_csrf";
/// The cookie holding the admin session id (HttpOnly, SameSite=Strict).
pub const SESSION_COOKIE: &str = "flowstate_session";

/// Server functions that only read. The binary's CSRF layer lets POSTs to these through without a token (the
/// hydrated pages call them with `fetch`, and another site gains nothing by calling them: it cannot read the
/// answer). **Every other POST needs a CSRF token and a same-origin `Origin`**, so a new server function is
/// guarded until it is listed here: list only functions that change nothing.
pub const READ_ONLY_ENDPOINTS: &[&str] = &[
    "/api/overview",
    "/api/failures",
    "/api/runs",
    "/api/run",
    "/api/settings",
    "/api/access",
    "/api/cleanup_preview",
    "/api/cleanup_options",
];

#[cfg(feature = "ssr")]
pub use ssr::*;

#[cfg(feature = "ssr")]
mod ssr {
    use std::collections::{HashMap, VecDeque};
    use std::fmt;
    use std::net::{IpAddr, SocketAddr};
    use std::sync::{Arc, Mutex, PoisonError};
    use std::time::{Duration, Instant};

    use http::header::{ACCEPT, COOKIE, HOST, ORIGIN, REFERER};
    use http::request::Parts;
    use http::{HeaderMap, Uri};
    use leptos::prelude::use_context;
    use rand::rngs::OsRng;
    use rand::RngCore;
    use sha2::{Digest, Sha256};
    use subtle::ConstantTimeEq;

    use super::{CSRF_COOKIE, SESSION_COOKIE};
    use crate::error::AppError;

    /// How long a login lasts.
    pub const SESSION_TTL: Duration = Duration::from_secs(8 * 3600);
    /// Login attempts accepted from one client address per [`LOGIN_WINDOW`].
    pub const LOGIN_ATTEMPTS: usize = 5;
    /// The window of [`LOGIN_ATTEMPTS`].
    pub const LOGIN_WINDOW: Duration = Duration::from_secs(60);
    /// Sessions kept at most; the oldest goes when a new login would exceed it.
    const MAX_SESSIONS: usize = 1024;
    /// Client addresses whose login attempts are remembered at most; beyond, new addresses share one budget.
    const MAX_CLIENTS: usize = 10_000;

    /// Who made a change, as the audit log records it.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Actor {
        /// Logged in with the admin token.
        Admin,
        /// No token is configured and the server listens on loopback only: whoever can reach it is local.
        Local,
    }

    impl Actor {
        /// The name in the audit log.
        pub fn as_str(self) -> &'static str {
            match self {
                Actor::Admin => "admin",
                Actor::Local => "local",
            }
        }
    }

    /// This browser's CSRF token, put in the request's extensions by the binary's layer (from the cookie, or new
    /// when the browser had none; the layer then sets the cookie on the response). Pages put it in their forms.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct CsrfToken(pub String);

    /// The address of the client's socket, put in the request's extensions by the binary (absent in tests that
    /// send requests without a socket). Proxy headers are not trusted for it: they are the client's to write.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct ClientIp(pub IpAddr);

    /// The guards' state: the mode, the admin token (as a digest), the bound address, live sessions and recent
    /// login attempts. One per server, shared by every request through the Leptos context (`Arc<Guard>`).
    pub struct Guard {
        read_only: bool,
        bind: SocketAddr,
        /// SHA-256 of the admin token: compared in constant time, never kept in clear.
        token_digest: Option<[u8; 32]>,
        /// SHA-256 of each session id → when it expires.
        sessions: Mutex<HashMap<[u8; 32], Instant>>,
        /// Recent login attempts per client address (`None`: unknown, or beyond [`MAX_CLIENTS`]).
        attempts: Mutex<HashMap<Option<IpAddr>, VecDeque<Instant>>>,
    }

    impl fmt::Debug for Guard {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("Guard")
                .field("read_only", &self.read_only)
                .field("bind", &self.bind)
                .field("admin_token", &self.token_digest.map(|_| "<redacted>"))
                .finish_non_exhaustive()
        }
    }

    impl Guard {
        /// The guards of a server in `read_only` mode or not, listening on `bind`, with an optional admin token
        /// (blank means none).
        pub fn new(read_only: bool, bind: SocketAddr, admin_token: Option<&str>) -> Self {
            Guard {
                read_only,
                bind,
                token_digest: admin_token.filter(|t| !t.trim().is_empty()).map(digest),
                sessions: Mutex::new(HashMap::new()),
                attempts: Mutex::new(HashMap::new()),
            }
        }

        /// `--read-only`: every change is refused.
        pub fn read_only(&self) -> bool {
            self.read_only
        }

        /// Changes need a login with the admin token.
        pub fn token_required(&self) -> bool {
            self.token_digest.is_some()
        }

        /// The address the server listens on.
        pub fn bind(&self) -> SocketAddr {
            self.bind
        }

        /// True when `candidate` is the admin token (false when none is configured). Constant time: both sides
        /// are hashed first, so neither the content nor the length of the token leaks through timing.
        pub fn token_matches(&self, candidate: &str) -> bool {
            match &self.token_digest {
                Some(expected) => bool::from(digest(candidate).ct_eq(expected)),
                None => false,
            }
        }

        /// Counts a login attempt from `client`. `Err(seconds)` when the client already made
        /// [`LOGIN_ATTEMPTS`] attempts within [`LOGIN_WINDOW`]: the attempt must be refused, and the seconds say
        /// when the next one will be accepted.
        pub fn count_login_attempt(&self, client: Option<IpAddr>) -> Result<(), u64> {
            let now = Instant::now();
            let mut attempts = self.attempts.lock().unwrap_or_else(PoisonError::into_inner);
            if attempts.len() >= MAX_CLIENTS {
                attempts.retain(|_, times| {
                    times
                        .back()
                        .is_some_and(|t| now.duration_since(*t) < LOGIN_WINDOW)
                });
            }
            let key = if attempts.len() >= MAX_CLIENTS && !attempts.contains_key(&client) {
                None
            } else {
                client
            };
            let times = attempts.entry(key).or_default();
            while times
                .front()
                .is_some_and(|t| now.duration_since(*t) >= LOGIN_WINDOW)
            {
                times.pop_front();
            }
            if times.len() >= LOGIN_ATTEMPTS {
                let oldest = times.front().copied().unwrap_or(now);
                let wait = LOGIN_WINDOW.saturating_sub(now.duration_since(oldest));
                return Err(wait.as_secs().max(1));
            }
            times.push_back(now);
            Ok(())
        }

        /// Starts a session: returns a new random session id (256 bits from the operating system) to put in the
        /// session cookie. Only its digest is kept.
        pub fn start_session(&self) -> String {
            let id = random_token();
            let now = Instant::now();
            let mut sessions = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
            sessions.retain(|_, expires| *expires > now);
            if sessions.len() >= MAX_SESSIONS {
                if let Some(oldest) = sessions.iter().min_by_key(|(_, e)| **e).map(|(k, _)| *k) {
                    sessions.remove(&oldest);
                }
            }
            sessions.insert(digest(&id), now + SESSION_TTL);
            id
        }

        /// True when `id` is a live session.
        pub fn session_is_valid(&self, id: &str) -> bool {
            if !is_token_shaped(id) {
                return false;
            }
            let sessions = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
            sessions
                .get(&digest(id))
                .is_some_and(|expires| *expires > Instant::now())
        }

        /// Ends the session `id` (a logout). Unknown ids are ignored.
        pub fn end_session(&self, id: &str) {
            let mut sessions = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
            sessions.remove(&digest(id));
        }

        /// True when whoever reaches the server may change things without a login: no admin token, and a
        /// loopback bind. Requests must then name this machine in their `Host` (see [`host_is_local`]).
        pub fn local_only(&self) -> bool {
            !self.token_required() && self.bind.ip().is_loopback()
        }

        /// True when the request's session cookie names a live session.
        pub fn logged_in(&self, headers: &HeaderMap) -> bool {
            cookie_value(headers, SESSION_COOKIE).is_some_and(|id| self.session_is_valid(id))
        }

        /// Who may change things with these request headers: [`Actor::Admin`] with a live session,
        /// [`Actor::Local`] when no token is configured and the server listens on loopback only.
        ///
        /// # Errors
        /// Why not, in words for the operator.
        pub fn authorise(&self, headers: &HeaderMap) -> Result<Actor, String> {
            if self.token_required() {
                if self.logged_in(headers) {
                    Ok(Actor::Admin)
                } else {
                    Err("changes need a login with the admin token; log in first".into())
                }
            } else if self.bind.ip().is_loopback() {
                // A page of another site whose name was re-pointed at 127.0.0.1 (DNS rebinding) is
                // same-origin with itself and gets its own CSRF cookie: only the Host header tells it apart.
                match headers.get(HOST).and_then(|h| h.to_str().ok()) {
                    Some(host) if host_is_local(host) => Ok(Actor::Local),
                    host => Err(format!(
                        "without an admin token, changes are allowed only from this machine, at an address \
                         such as http://{}/ (the request was for “{}”)",
                        self.bind,
                        host.unwrap_or("no host")
                    )),
                }
            } else {
                Err(format!(
                    "this server listens on {}, which other machines can reach, and no admin token is \
                     configured (set FLOWSTATE_ADMIN_TOKEN)",
                    self.bind
                ))
            }
        }
    }

    /// True when a `Host` header value names this machine: `localhost` (or a name under it), an address of
    /// 127.0.0.0/8, or `[::1]`, with any port.
    pub fn host_is_local(host: &str) -> bool {
        let host = host.trim();
        let name = if let Some(rest) = host.strip_prefix('[') {
            match rest.split_once(']') {
                Some((ip, port)) if port.is_empty() || port.starts_with(':') => ip,
                _ => return false,
            }
        } else {
            match host.rsplit_once(':') {
                Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
                Some(_) => return false,
                None => host,
            }
        };
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        name == "localhost"
            || name.ends_with(".localhost")
            || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
    }

    fn digest(value: &str) -> [u8; 32] {
        Sha256::digest(value.as_bytes()).into()
    }

    /// Compares two secrets in constant time (over their SHA-256 digests, so lengths do not leak either).
    pub fn secrets_match(a: &str, b: &str) -> bool {
        bool::from(digest(a).ct_eq(&digest(b)))
    }

    /// 256 random bits from the operating system, as 64 lowercase hex digits.
    pub fn random_token() -> String {
        let mut bytes = [0u8; 32];
        OsRng.fill_bytes(&mut bytes);
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// True for a value [`random_token`] could have made (64 hex digits): anything else in a cookie is ignored.
    pub fn is_token_shaped(value: &str) -> bool {
        value.len() == 64 && value.bytes().all(|b| b.is_ascii_hexdigit())
    }

    /// The first value of cookie `name` in the request's `Cookie` headers.
    pub fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
        headers
            .get_all(COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.trim())
    }

    /// True when the request reached us over https (directly, or through a proxy that says so).
    pub fn is_https(headers: &HeaderMap, uri: &Uri) -> bool {
        uri.scheme_str() == Some("https")
            || headers
                .get("x-forwarded-proto")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split(',').next())
                .is_some_and(|p| p.trim().eq_ignore_ascii_case("https"))
    }

    /// This server's origin as the browser sees it: scheme and the `Host` header (`http://127.0.0.1:3000`).
    pub fn own_origin(headers: &HeaderMap, uri: &Uri) -> Option<String> {
        let host = headers
            .get(HOST)
            .and_then(|h| h.to_str().ok())
            .map(str::to_string)
            .or_else(|| uri.authority().map(|a| a.as_str().to_string()))?;
        if host.is_empty() || host.contains(['/', '@', ' ']) {
            return None;
        }
        let scheme = if is_https(headers, uri) { "https" } else { "http" };
        Some(format!("{scheme}://{}", host.to_ascii_lowercase()))
    }

    /// The origin (`scheme://host[:port]`) of an absolute URL, lowercase; `None` when it has none.
    fn origin_of(url: &str) -> Option<String> {
        let (scheme, rest) = url.split_once("://")?;
        let authority = rest.split(['/', '?', '#']).next()?;
        if scheme.is_empty() || authority.is_empty() || authority.contains('@') {
            return None;
        }
        Some(format!("{scheme}://{authority}").to_ascii_lowercase())
    }

    /// Checks the request comes from one of our own pages: its `Origin` (or, when the browser sent none, its
    /// `Referer`) must be this server's origin. A request with neither is refused: it cannot be told apart from
    /// one another site made.
    ///
    /// # Errors
    /// Why not, in words for the operator.
    pub fn check_same_origin(headers: &HeaderMap, uri: &Uri) -> Result<(), String> {
        let own = own_origin(headers, uri)
            .ok_or_else(|| "the request does not say which host it was sent to".to_string())?;
        let mut origins = headers.get_all(ORIGIN).iter();
        if let Some(origin) = origins.next() {
            let origin = origin.to_str().unwrap_or("");
            if origins.next().is_none() && origin.eq_ignore_ascii_case(&own) {
                return Ok(());
            }
            return Err(format!(
                "it was sent from another site (Origin “{origin}”, expected “{own}”)"
            ));
        }
        if let Some(referer) = headers.get(REFERER) {
            let referer = referer.to_str().unwrap_or("");
            return match origin_of(referer) {
                Some(o) if o == own => Ok(()),
                _ => Err(format!(
                    "it was sent from another page than this dashboard’s (expected “{own}/…”)"
                )),
            };
        }
        Err(
            "the browser sent neither Origin nor Referer, so the request cannot be told apart from one made \
             by another site"
                .into(),
        )
    }

    /// The double-submit check: the token the form (or the `x-csrf-token` header) carries must equal the
    /// browser's CSRF cookie. Compared in constant time.
    ///
    /// # Errors
    /// Why not, in words for the operator.
    pub fn check_csrf(headers: &HeaderMap, submitted: Option<&str>) -> Result<(), String> {
        let Some(cookie) = cookie_value(headers, CSRF_COOKIE).filter(|c| is_token_shaped(c)) else {
            return Err(
                "the browser sent no CSRF cookie (cookies may be blocked); reload the page and try again"
                    .into(),
            );
        };
        let submitted = submitted.map(str::trim).unwrap_or("");
        if submitted.is_empty() {
            return Err("the form carried no CSRF token; reload the page and try again".into());
        }
        if secrets_match(cookie, submitted) {
            Ok(())
        } else {
            Err("the form’s CSRF token is not this browser’s; reload the page and try again".into())
        }
    }

    /// `Set-Cookie` for the CSRF cookie.
    pub fn csrf_cookie(token: &str, secure: bool) -> String {
        format!(
            "{CSRF_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict{}",
            if secure { "; Secure" } else { "" }
        )
    }

    /// `Set-Cookie` for a new session (a session cookie: it also ends when the browser closes).
    pub fn session_cookie(id: &str, secure: bool) -> String {
        format!(
            "{SESSION_COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
            SESSION_TTL.as_secs(),
            if secure { "; Secure" } else { "" }
        )
    }

    /// `Set-Cookie` that removes the session cookie.
    pub fn clear_session_cookie(secure: bool) -> String {
        format!(
            "{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{}",
            if secure { "; Secure" } else { "" }
        )
    }

    /// The guards the binary provided to this request (`Arc<Guard>` in the Leptos context).
    ///
    /// # Errors
    /// [`AppError::Internal`] (logged) when missing: a wiring bug, and then nothing may change.
    pub fn guard() -> Result<Arc<Guard>, AppError> {
        use_context::<Arc<Guard>>().ok_or_else(|| {
            tracing::error!(
                "no Guard in the Leptos context: the router must provide it; refusing the change"
            );
            AppError::Internal
        })
    }

    /// The request being answered (provided by leptos_axum to pages and server functions).
    ///
    /// # Errors
    /// [`AppError::Internal`] (logged) when missing.
    pub fn request_parts() -> Result<Parts, AppError> {
        use_context::<Parts>().ok_or_else(|| {
            tracing::error!("no request Parts in the Leptos context");
            AppError::Internal
        })
    }

    /// This browser's CSRF token for the forms of the page being rendered: the layer's [`CsrfToken`], else the
    /// cookie (when the layer is not in front, e.g. a test of the app alone). Empty when neither is there.
    pub fn csrf_token() -> String {
        let Some(parts) = use_context::<Parts>() else {
            return String::new();
        };
        parts
            .extensions
            .get::<CsrfToken>()
            .map(|t| t.0.clone())
            .or_else(|| {
                cookie_value(&parts.headers, CSRF_COOKIE)
                    .filter(|c| is_token_shaped(c))
                    .map(str::to_string)
            })
            .unwrap_or_default()
    }

    /// True when the request is a plain browser form post (no JavaScript): leptos_axum then answers with a
    /// redirect back to the page, carrying an error in the URL, so the status must not be changed.
    pub fn is_plain_form_post(parts: &Parts) -> bool {
        parts
            .headers
            .get(ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("text/html"))
    }

    /// Gives a server function's error its HTTP status (403, 409, ...) for callers that read statuses (`fetch`,
    /// scripts, tests). Plain form posts keep leptos_axum's redirect back to the page, which shows the error.
    pub fn with_status<T>(result: Result<T, AppError>) -> Result<T, AppError> {
        if let Err(err) = &result {
            let plain = use_context::<Parts>().is_some_and(|p| is_plain_form_post(&p));
            if !plain {
                if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
                    response.set_status(
                        http::StatusCode::from_u16(err.status())
                            .unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR),
                    );
                }
            }
        }
        result
    }

    /// Every guard of a change, in order: not read-only; same origin and the CSRF token `csrf` (the form's
    /// hidden field) equal to the cookie; authorised. Returns who is making the change, for the audit log.
    /// Call it first in every server function that changes anything, before reading its other arguments.
    ///
    /// # Errors
    /// [`AppError::Forbidden`] saying which guard refused (also logged), [`AppError::Internal`] when the guards
    /// are not wired.
    pub fn require_change(action: &str, csrf: &str) -> Result<Actor, AppError> {
        let guard = guard()?;
        let parts = request_parts()?;
        let refused = |reason: String| {
            tracing::warn!(action, %reason, "change refused");
            AppError::Forbidden { reason }
        };
        if guard.read_only() {
            return Err(refused(
                "the dashboard was started with --read-only, so it refuses every change".into(),
            ));
        }
        check_same_origin(&parts.headers, &parts.uri).map_err(refused)?;
        check_csrf(&parts.headers, Some(csrf)).map_err(refused)?;
        let actor = guard.authorise(&parts.headers).map_err(refused)?;
        Ok(actor)
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        use http::HeaderValue;

        fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
            let mut h = HeaderMap::new();
            for (k, v) in pairs {
                h.append(*k, HeaderValue::from_str(v).unwrap());
            }
            h
        }

        #[test]
        fn same_origin_needs_origin_or_referer_of_this_host() {
            let uri: Uri = "/api/run_cleanup".parse().unwrap();
            let ok = headers(&[("host", "127.0.0.1:3000"), ("origin", "http://127.0.0.1:3000")]);
            assert!(check_same_origin(&ok, &uri).is_ok());
            let referer = headers(&[
                ("host", "127.0.0.1:3000"),
                ("referer", "http://127.0.0.1:3000/cleanup?x=1"),
            ]);
            assert!(check_same_origin(&referer, &uri).is_ok());
            for bad in [
                headers(&[("host", "127.0.0.1:3000"), ("origin", "http://evil.example")]),
                headers(&[("host", "127.0.0.1:3000"), ("origin", "null")]),
                headers(&[("host", "127.0.0.1:3000"), ("origin", "https://127.0.0.1:3000")]),
                headers(&[
                    ("host", "127.0.0.1:3000"),
                    ("referer", "http://127.0.0.1:3000.evil.example/"),
                ]),
                headers(&[
                    ("host", "127.0.0.1:3000"),
                    ("referer", "http://x@127.0.0.1:3000/"),
                ]),
                headers(&[("host", "127.0.0.1:3000")]),
                headers(&[("origin", "http://127.0.0.1:3000")]),
            ] {
                assert!(check_same_origin(&bad, &uri).is_err(), "{bad:?} must be refused");
            }
            let proxied = headers(&[
                ("host", "flowstate.example"),
                ("x-forwarded-proto", "https"),
                ("origin", "https://flowstate.example"),
            ]);
            assert!(check_same_origin(&proxied, &uri).is_ok());
        }

        #[test]
        fn csrf_is_a_double_submit() {
            let token = random_token();
            assert!(is_token_shaped(&token));
            assert_ne!(token, random_token(), "tokens are random");
            let h = headers(&[("cookie", &format!("a=b; {CSRF_COOKIE}={token}"))]);
            assert!(check_csrf(&h, Some(&token)).is_ok());
            assert!(check_csrf(&h, Some(&random_token())).is_err());
            assert!(check_csrf(&h, Some("")).is_err());
            assert!(check_csrf(&h, None).is_err());
            assert!(check_csrf(&HeaderMap::new(), Some(&token)).is_err(), "no cookie");
            let odd = headers(&[("cookie", &format!("{CSRF_COOKIE}=short"))]);
            assert!(
                check_csrf(&odd, Some("short")).is_err(),
                "a cookie we did not make"
            );
        }

        #[test]
        fn sessions_and_tokens() {
            let g = Guard::new(false, "127.0.0.1:3000".parse().unwrap(), Some("s3cret"));
            assert!(g.token_matches("s3cret"));
            assert!(!g.token_matches("s3cre"));
            assert!(!g.token_matches(""));
            assert!(!format!("{g:?}").contains("s3cret"));
            let id = g.start_session();
            assert!(g.session_is_valid(&id));
            let h = headers(&[("cookie", &format!("{SESSION_COOKIE}={id}"))]);
            assert_eq!(g.authorise(&h), Ok(Actor::Admin));
            assert!(
                g.authorise(&HeaderMap::new()).is_err(),
                "a token needs a login, even on loopback"
            );
            g.end_session(&id);
            assert!(!g.session_is_valid(&id));

            let none = Guard::new(false, "127.0.0.1:3000".parse().unwrap(), Some("  "));
            assert!(!none.token_required(), "a blank token is none");
            assert!(!none.token_matches("  "));
            assert_eq!(
                none.authorise(&headers(&[("host", "localhost:3000")])),
                Ok(Actor::Local)
            );
            assert!(
                none.authorise(&HeaderMap::new()).is_err(),
                "a change names its host"
            );
            let public = Guard::new(false, "0.0.0.0:3000".parse().unwrap(), None);
            assert!(public.authorise(&HeaderMap::new()).is_err());
        }

        #[test]
        fn local_hosts() {
            for ok in [
                "127.0.0.1:3000",
                "127.0.0.1",
                "localhost:3000",
                "LOCALHOST",
                "app.localhost:80",
                "[::1]:3000",
                "127.1.2.3:9",
            ] {
                assert!(host_is_local(ok), "{ok}");
            }
            for bad in [
                "evil.example:3000",
                "127.0.0.1.evil.example",
                "localhost.evil.example",
                "[::1]x",
                "10.0.0.1:3000",
                "0.0.0.0:3000",
                "",
            ] {
                assert!(!host_is_local(bad), "{bad}");
            }
            let g = Guard::new(false, "127.0.0.1:3000".parse().unwrap(), None);
            assert!(g.local_only());
            let rebound = headers(&[("host", "evil.example:3000")]);
            assert!(g.authorise(&rebound).is_err(), "DNS rebinding");
            assert_eq!(
                g.authorise(&headers(&[("host", "127.0.0.1:3000")])),
                Ok(Actor::Local)
            );
        }

        #[test]
        fn login_attempts_are_limited_per_client() {
            let g = Guard::new(false, "127.0.0.1:3000".parse().unwrap(), Some("t"));
            let a = Some("10.0.0.1".parse().unwrap());
            let b = Some("10.0.0.2".parse().unwrap());
            for _ in 0..LOGIN_ATTEMPTS {
                assert!(g.count_login_attempt(a).is_ok());
            }
            let wait = g.count_login_attempt(a).unwrap_err();
            assert!((1..=60).contains(&wait), "{wait}");
            assert!(
                g.count_login_attempt(b).is_ok(),
                "another client has its own budget"
            );
        }
    }
}
