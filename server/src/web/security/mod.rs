//! The dashboard's HTTP security, all of it: the `Host` check (DNS rebinding), this site's origin, the CSRF
//! double submit, the admin token and its sessions, the login attempt limit, the cookies and the refusal page.
//!
//! Two places use it:
//!
//! - [`layer`], in front of the whole router: refuses a request for another host, issues the CSRF cookie, and
//!   refuses with 403, before anything runs, every request that could change something without this site's
//!   origin and CSRF token;
//! - the server functions of `flowstate_app`, which ask again in each change (defence in depth) through the
//!   trait [`flowstate_app::server::security::Security`], implemented here by [`Security`] and provided to them
//!   in the Leptos context as a [`SecurityHandle`]. The app crate holds no security logic of its own.
//!
//! A change (deleting a run, a cleanup, a login) is refused unless:
//!
//! 1. the dashboard is not in `--read-only` mode;
//! 2. the request names an allowed host (this machine, or a `--public-url`), and its `Origin` (or, without one,
//!    its `Referer`) is this site's origin, and the CSRF token of the form equals the browser's cookie;
//! 3. the operator is authorised: logged in with the admin token when one is configured, or else the server
//!    listens on a loopback address and the request names this machine and came through no proxy.

pub mod cookies;
pub mod csrf;
pub mod layer;
pub mod login_limit;
pub mod origin;
pub mod refusal;
pub mod sessions;
pub mod tokens;

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue};
use flowstate_app::server::security::{Actor, Security as AppSecurity, SecurityHandle};
use flowstate_app::server::session::Access;
use flowstate_app::AppError;
use subtle::ConstantTimeEq;

pub use layer::{layer, needs_check, ClientIp, READ_ONLY_SERVER_FNS};
pub use origin::{PublicUrl, Site};

use self::cookies::SESSION_COOKIE;
use self::csrf::{check_csrf, cookie_token, CsrfToken};
use self::login_limit::{ClientNet, LoginLimiter};
use self::origin::check_same_origin;
use self::sessions::Sessions;
use self::tokens::digest;

/// Why `--read-only` refuses a change.
const READ_ONLY_REASON: &str = "the dashboard was started with --read-only, so it refuses every change";

/// The security state of one server: the mode, the bound address, the public URLs, the admin token (as a
/// digest), live sessions and recent login attempts. Shared by the layer and, through [`SecurityHandle`], every
/// server function.
pub struct Security {
    read_only: bool,
    bind: SocketAddr,
    public_urls: Vec<PublicUrl>,
    /// SHA-256 of the admin token: compared in constant time, never kept in clear.
    token_digest: Option<[u8; 32]>,
    sessions: Sessions,
    logins: LoginLimiter,
}

impl fmt::Debug for Security {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Security")
            .field("read_only", &self.read_only)
            .field("bind", &self.bind)
            .field("public_urls", &self.public_urls)
            .field("admin_token", &self.token_digest.map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}

impl Security {
    /// The security of a server in `read_only` mode or not, listening on `bind`, with an optional admin token
    /// (blank means none) and the URLs operators reach it at besides this machine's own names.
    pub fn new(
        read_only: bool,
        bind: SocketAddr,
        admin_token: Option<&str>,
        public_urls: Vec<PublicUrl>,
    ) -> Self {
        Security {
            read_only,
            bind,
            public_urls,
            token_digest: admin_token.filter(|t| !t.trim().is_empty()).map(digest),
            sessions: Sessions::default(),
            logins: LoginLimiter::default(),
        }
    }

    /// The same security answering for `public_urls` (besides this machine's names) instead; sessions and login
    /// budgets start afresh.
    pub fn with_public_urls(&self, public_urls: Vec<PublicUrl>) -> Self {
        Security {
            read_only: self.read_only,
            bind: self.bind,
            public_urls,
            token_digest: self.token_digest,
            sessions: Sessions::default(),
            logins: LoginLimiter::default(),
        }
    }

    /// The handle the app's server functions find in their Leptos context.
    pub fn handle(self: &Arc<Self>) -> SecurityHandle {
        SecurityHandle(self.clone())
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

    /// The URLs operators reach the dashboard at (`--public-url`).
    pub fn public_urls(&self) -> &[PublicUrl] {
        &self.public_urls
    }

    /// True when `candidate` is the admin token (false when none is configured). Constant time: both sides
    /// are hashed first, so neither the content nor the length of the token leaks through timing.
    pub fn token_matches(&self, candidate: &str) -> bool {
        match &self.token_digest {
            Some(expected) => bool::from(digest(candidate).ct_eq(expected)),
            None => false,
        }
    }

    /// The site a request names.
    pub fn site(&self, headers: &HeaderMap, uri: &axum::http::Uri) -> Site {
        Site::of(headers, uri, &self.public_urls)
    }

    /// Why a request for another host than this dashboard's is refused.
    pub fn host_refusal(&self, host: &str) -> String {
        let public = if self.public_urls.is_empty() {
            String::new()
        } else {
            let urls: Vec<String> = self.public_urls.iter().map(ToString::to_string).collect();
            format!(" or at {}", urls.join(", "))
        };
        format!(
            "this dashboard answers only requests for this machine (such as http://{}/){public}; the request was \
             for “{host}”",
            self.bind
        )
    }

    /// True when the request's session cookie names a live session.
    pub fn logged_in(&self, headers: &HeaderMap) -> bool {
        cookies::get(headers, SESSION_COOKIE).is_some_and(|id| self.sessions.is_valid(&id))
    }

    /// Who may change things with this request: [`Actor::Admin`] with a live session; [`Actor::Local`] when no
    /// token is configured, the server listens on loopback, and the request names this machine and came
    /// through no proxy.
    ///
    /// # Errors
    /// Why not, in words for the operator.
    pub fn authorise(&self, site: &Site, headers: &HeaderMap) -> Result<Actor, String> {
        if self.token_required() {
            return if self.logged_in(headers) {
                Ok(Actor::Admin)
            } else {
                Err("changes need a login with the admin token; log in first".into())
            };
        }
        if !self.bind.ip().is_loopback() {
            return Err(format!(
                "this server listens on {}, which other machines can reach, and no admin token is configured \
                 (set FLOWSTATE_ADMIN_TOKEN)",
                self.bind
            ));
        }
        match site {
            // A proxy on this machine makes every request look local: whoever reaches the proxy could change
            // things. A proxied request says so; without a token, it may only read.
            Site::Local(_) if through_proxy(headers) => Err(
                "the request came through a proxy (it carries Forwarded or X-Forwarded-For), so it may come from \
                 another machine; set FLOWSTATE_ADMIN_TOKEN to allow changes through a proxy"
                    .into(),
            ),
            Site::Local(_) => Ok(Actor::Local),
            Site::Unnamed | Site::Public(_) | Site::Other(_) => Err(format!(
                "without an admin token, changes are allowed only from this machine, at an address such as \
                 http://{}/ (the request was for “{}”)",
                self.bind,
                match site {
                    Site::Public(url) => url.to_string(),
                    Site::Other(host) => host.clone(),
                    _ => "no host".into(),
                }
            )),
        }
    }

    /// The host, origin and CSRF checks every change (and a login, a logout) passes first.
    fn check_request(&self, request: &Parts, csrf: &str) -> Result<Site, String> {
        let site = self.site(&request.headers, &request.uri);
        if let Site::Other(host) = &site {
            return Err(self.host_refusal(host));
        }
        check_same_origin(&site, &request.headers, &request.uri)?;
        check_csrf(&request.headers, Some(csrf))?;
        Ok(site)
    }

    /// Why a login is pointless when no token is configured, saying what is true of changes.
    fn nothing_to_log_in_to(&self, site: &Site, headers: &HeaderMap) -> String {
        let changes = if self.read_only {
            format!("and {READ_ONLY_REASON}")
        } else {
            match self.authorise(site, headers) {
                Ok(_) => "and changes are allowed because the server listens on this machine only".into(),
                Err(reason) => format!("and changes are refused: {reason}"),
            }
        };
        format!("No admin token is configured, so there is nothing to log in to, {changes}")
    }
}

/// True when the request says it came through a proxy (it carries `Forwarded` or `X-Forwarded-For`): without an
/// admin token such a request may only read, whatever host it names. The page cache keys pages on it too (a
/// run's page shows the delete form or why deleting is refused).
pub fn through_proxy(headers: &HeaderMap) -> bool {
    headers.contains_key("forwarded") || headers.contains_key("x-forwarded-for")
}

/// The CSRF token of the page being rendered: the layer's [`CsrfToken`], else the cookie (when the layer is not
/// in front). Empty when neither is there.
fn page_csrf_token(request: &Parts) -> String {
    request
        .extensions
        .get::<CsrfToken>()
        .map(|t| t.0.clone())
        .or_else(|| cookie_token(&request.headers))
        .unwrap_or_default()
}

impl AppSecurity for Security {
    fn require_change(&self, request: &Parts, action: &str, csrf: &str) -> Result<Actor, AppError> {
        let refused = |reason: String| {
            tracing::warn!(action, %reason, "change refused");
            AppError::Forbidden { reason }
        };
        if self.read_only {
            return Err(refused(READ_ONLY_REASON.into()));
        }
        let site = self.check_request(request, csrf).map_err(refused)?;
        self.authorise(&site, &request.headers).map_err(refused)
    }

    fn access(&self, request: &Parts) -> Access {
        let site = self.site(&request.headers, &request.uri);
        let refusal = if self.read_only {
            Some(READ_ONLY_REASON.to_string())
        } else {
            self.authorise(&site, &request.headers).err()
        };
        Access {
            read_only: self.read_only,
            token_required: self.token_required(),
            logged_in: self.logged_in(&request.headers),
            refusal,
            csrf: page_csrf_token(request),
        }
    }

    fn login(&self, request: &Parts, token: &str, csrf: &str) -> Result<HeaderValue, AppError> {
        let refused = |reason: String| {
            tracing::warn!(%reason, "login refused");
            AppError::Forbidden { reason }
        };
        let site = self.check_request(request, csrf).map_err(refused)?;
        if !self.token_required() {
            return Err(AppError::Conflict {
                reason: self.nothing_to_log_in_to(&site, &request.headers),
            });
        }
        let client = request.extensions.get::<ClientIp>().map(|c| c.0);
        if let Err(limited) = self.logins.attempt(ClientNet::of(client), Instant::now()) {
            tracing::warn!(client = ?client, ?limited, "login refused: too many attempts");
            return Err(AppError::TooManyRequests {
                retry_after_secs: limited.retry_after_secs(),
            });
        }
        if !self.token_matches(token) {
            tracing::warn!(client = ?client, "login refused: wrong token");
            return Err(AppError::Forbidden {
                reason: "that is not the admin token".into(),
            });
        }
        let id = self.sessions.start();
        tracing::info!(client = ?client, "admin logged in");
        Ok(cookies::session(
            &id,
            site.is_https(&request.headers, &request.uri),
        ))
    }

    fn logout(&self, request: &Parts, csrf: &str) -> Result<HeaderValue, AppError> {
        let site = self
            .check_request(request, csrf)
            .map_err(|reason| AppError::Forbidden { reason })?;
        if let Some(id) = cookies::get(&request.headers, SESSION_COOKIE) {
            self.sessions.end(&id);
        }
        Ok(cookies::clear_session(
            site.is_https(&request.headers, &request.uri),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Request;

    fn parts(pairs: &[(&'static str, &str)]) -> Parts {
        let mut request = Request::post("/api/x");
        for (k, v) in pairs {
            request = request.header(*k, *v);
        }
        request.body(()).unwrap().into_parts().0
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        parts(pairs).headers
    }

    fn authorise(s: &Security, pairs: &[(&'static str, &str)]) -> Result<Actor, String> {
        let h = headers(pairs);
        s.authorise(&s.site(&h, &"/".parse().unwrap()), &h)
    }

    #[test]
    fn tokens_and_sessions() {
        let s = Security::new(false, "127.0.0.1:3000".parse().unwrap(), Some("s3cret"), vec![]);
        assert!(s.token_matches("s3cret"));
        assert!(!s.token_matches("s3cre"));
        assert!(!s.token_matches(""));
        assert!(!format!("{s:?}").contains("s3cret"));
        let id = s.sessions.start();
        let cookie = format!("{SESSION_COOKIE}={id}");
        assert_eq!(
            authorise(&s, &[("cookie", &cookie), ("host", "127.0.0.1:3000")]),
            Ok(Actor::Admin)
        );
        assert!(
            authorise(&s, &[("host", "127.0.0.1:3000")]).is_err(),
            "a token needs a login, even on loopback"
        );
        let none = Security::new(false, "127.0.0.1:3000".parse().unwrap(), Some("  "), vec![]);
        assert!(!none.token_required(), "a blank token is none");
        assert!(!none.token_matches("  "));
    }

    #[test]
    fn without_a_token_only_this_machine_changes_things() {
        let s = Security::new(false, "127.0.0.1:3000".parse().unwrap(), None, vec![]);
        assert_eq!(authorise(&s, &[("host", "localhost:3000")]), Ok(Actor::Local));
        assert!(authorise(&s, &[]).is_err(), "a change names its host");
        assert!(
            authorise(&s, &[("host", "evil.example:3000")]).is_err(),
            "DNS rebinding"
        );
        assert!(
            authorise(
                &s,
                &[("host", "127.0.0.1:3000"), ("x-forwarded-for", "203.0.113.7")]
            )
            .is_err(),
            "through a proxy"
        );
        assert!(authorise(
            &s,
            &[("host", "127.0.0.1:3000"), ("forwarded", "for=203.0.113.7")]
        )
        .is_err());
        let behind: Security = Security::new(
            false,
            "127.0.0.1:3000".parse().unwrap(),
            None,
            vec!["https://flowstate.example".parse().unwrap()],
        );
        assert!(
            authorise(&behind, &[("host", "flowstate.example")]).is_err(),
            "a public URL never counts as this machine"
        );
        let public = Security::new(false, "0.0.0.0:3000".parse().unwrap(), None, vec![]);
        let refused = authorise(&public, &[("host", "127.0.0.1:3000")]).unwrap_err();
        assert!(refused.contains("FLOWSTATE_ADMIN_TOKEN"), "{refused}");
    }

    #[test]
    fn a_login_without_a_token_says_what_is_true() {
        let ok = [("host", "127.0.0.1:3000"), ("origin", "http://127.0.0.1:3000")];
        let csrf = tokens::random_token();
        let cookie = format!("flowstate_csrf={csrf}");
        let with_cookie = |pairs: &[(&'static str, &'static str)]| {
            let mut p = parts(pairs);
            p.headers
                .insert("cookie", HeaderValue::from_str(&cookie).unwrap());
            p
        };
        let message = |s: &Security| match s.login(&with_cookie(&ok), "x", &csrf) {
            Err(AppError::Conflict { reason }) => reason,
            other => panic!("{other:?}"),
        };
        let local = message(&Security::new(
            false,
            "127.0.0.1:3000".parse().unwrap(),
            None,
            vec![],
        ));
        assert!(local.contains("changes are allowed"), "{local}");
        let read_only = message(&Security::new(
            true,
            "127.0.0.1:3000".parse().unwrap(),
            None,
            vec![],
        ));
        assert!(!read_only.contains("allowed"), "{read_only}");
        assert!(read_only.contains("--read-only"), "{read_only}");
        let public = message(&Security::new(
            false,
            "0.0.0.0:3000".parse().unwrap(),
            None,
            vec![],
        ));
        assert!(public.contains("changes are refused"), "{public}");
    }
}
