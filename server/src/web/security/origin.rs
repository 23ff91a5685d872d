//! Which site a request is for and which it comes from: the `Host` check (DNS rebinding), this server's own
//! origin, and the `Origin`/`Referer` check of every change.
//!
//! A request is answered only when its `Host` names this machine (`localhost` and names under it, 127.0.0.0/8,
//! `[::1]`, any port) or one of the public URLs the server was started with (`--public-url`). A page of another
//! site whose name was re-pointed at this server (DNS rebinding) is same-origin with itself and gets its own
//! CSRF cookie; only its `Host` gives it away, so this check holds in every mode, with or without an admin token.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use axum::http::uri::Authority;
use axum::http::{header, HeaderMap, Uri};
use url::Url;

/// A host name and port as a `Host` header or a URL names them: the name lowercase, without a trailing dot,
/// an IPv6 address in brackets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPort {
    /// `localhost`, `flowstate.example`, `127.0.0.1`, `[::1]`.
    pub name: String,
    /// The port, when one is written.
    pub port: Option<u16>,
}

impl HostPort {
    /// Parses a `Host` header value (`name[:port]`); `None` for anything else (user info, a path, spaces, a
    /// port that is not one).
    pub fn parse(host: &str) -> Option<HostPort> {
        if host.is_empty() || host.contains('@') {
            return None;
        }
        // `Authority` checks the characters; it is lenient about what follows the host (`[::1]x`, `h:abc`,
        // `h:99999` parse, without a port), so the rest must be nothing or `:` and a port.
        let authority = Authority::from_str(host).ok()?;
        let rest = host.strip_prefix(authority.host())?;
        let port = match rest.strip_prefix(':') {
            None if rest.is_empty() => None,
            Some(digits) if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) => {
                Some(digits.parse::<u16>().ok()?)
            }
            _ => return None,
        };
        let name = authority.host().trim_end_matches('.').to_ascii_lowercase();
        if name.is_empty() {
            return None;
        }
        Some(HostPort { name, port })
    }

    /// True for this machine: `localhost` (or a name under it), an address of 127.0.0.0/8, or `[::1]`.
    pub fn is_local(&self) -> bool {
        let bare = self.name.trim_start_matches('[').trim_end_matches(']');
        self.name == "localhost"
            || self.name.ends_with(".localhost")
            || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
    }
}

/// A URL operators reach the dashboard at (`--public-url`): `http` or `https`, a host, maybe a port, nothing
/// else (no path, query, fragment or user info: the dashboard is served from its root).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicUrl {
    url: Url,
    host: HostPort,
}

impl PublicUrl {
    /// The origin (`https://flowstate.example`), as browsers send it in `Origin`.
    pub fn origin(&self) -> String {
        self.url.origin().ascii_serialization()
    }

    /// True when served over https (cookies get `Secure`).
    pub fn is_https(&self) -> bool {
        self.url.scheme() == "https"
    }

    /// True when a request's `Host` names this URL: the same name, and the same port (an absent one being the
    /// scheme's default on either side).
    pub fn matches(&self, host: &HostPort) -> bool {
        host.name == self.host.name
            && (host.port == self.url.port_or_known_default()
                || (host.port.is_none() && self.url.port().is_none()))
    }
}

impl fmt::Display for PublicUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.origin())
    }
}

impl FromStr for PublicUrl {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let url = Url::parse(text.trim()).map_err(|e| format!("“{text}” is not a URL ({e})"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!("“{text}” must start with http:// or https://"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(format!("“{text}” must not hold a user name or password"));
        }
        if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
            return Err(format!(
                "“{text}” must name the dashboard's root, such as https://flowstate.example.com (the dashboard \
                 cannot be served under a path)"
            ));
        }
        let host_port = match (url.host_str(), url.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_string(),
            (None, _) => return Err(format!("“{text}” names no host")),
        };
        let host = HostPort::parse(&host_port).ok_or_else(|| format!("“{text}” names no usable host"))?;
        Ok(PublicUrl { url, host })
    }
}

/// True when the request reached us over https (directly, or through a proxy that says so).
pub fn forwarded_https(headers: &HeaderMap, uri: &Uri) -> bool {
    uri.scheme_str() == Some("https")
        || headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .is_some_and(|p| p.trim().eq_ignore_ascii_case("https"))
}

/// The `Host` the request names (the header, else the URI's authority, as HTTP/2 sends it), raw.
pub fn host_header<'a>(headers: &'a HeaderMap, uri: &'a Uri) -> Option<&'a str> {
    headers
        .get(header::HOST)
        .map(|h| h.to_str().unwrap_or("\u{0}"))
        .or_else(|| uri.authority().map(Authority::as_str))
}

/// The site a request was sent to, as far as the server trusts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Site {
    /// No `Host` at all (an HTTP/1.0 client, a test): nothing to check, nothing to trust either.
    Unnamed,
    /// This machine, by one of its names.
    Local(HostPort),
    /// One of the public URLs.
    Public(PublicUrl),
    /// Any other name (or an unreadable `Host`): refused.
    Other(String),
}

impl Site {
    /// The site of a request, given the public URLs the server was started with.
    pub fn of(headers: &HeaderMap, uri: &Uri, public: &[PublicUrl]) -> Site {
        let Some(raw) = host_header(headers, uri) else {
            return Site::Unnamed;
        };
        match HostPort::parse(raw) {
            Some(host) if host.is_local() => Site::Local(host),
            Some(host) => match public.iter().find(|u| u.matches(&host)) {
                Some(url) => Site::Public(url.clone()),
                None => Site::Other(raw.to_string()),
            },
            None => Site::Other(raw.to_string()),
        }
    }

    /// True for a request served over https: the public URL is https, or the proxy says so.
    pub fn is_https(&self, headers: &HeaderMap, uri: &Uri) -> bool {
        match self {
            Site::Public(url) if url.is_https() => true,
            _ => forwarded_https(headers, uri),
        }
    }

    /// This server's origin as the browser that sent the request sees it (`http://127.0.0.1:3000`,
    /// `https://flowstate.example`); `None` when the request names no allowed host.
    pub fn origin(&self, headers: &HeaderMap, uri: &Uri) -> Option<String> {
        match self {
            Site::Public(url) if url.is_https() => Some(url.origin()),
            Site::Public(PublicUrl { host, .. }) | Site::Local(host) => {
                let scheme = if forwarded_https(headers, uri) {
                    "https"
                } else {
                    "http"
                };
                let url = match host.port {
                    Some(port) => format!("{scheme}://{}:{port}", host.name),
                    None => format!("{scheme}://{}", host.name),
                };
                Url::parse(&url).ok().map(|u| u.origin().ascii_serialization())
            }
            Site::Unnamed | Site::Other(_) => None,
        }
    }
}

/// Checks the request comes from one of this site's own pages: its `Origin` (or, when the browser sent none, its
/// `Referer`) must be this server's origin ([`Site::origin`]). A request with neither is refused: it cannot be
/// told apart from one another site made.
///
/// # Errors
/// Why not, in words for the operator.
pub fn check_same_origin(site: &Site, headers: &HeaderMap, uri: &Uri) -> Result<(), String> {
    let own = site
        .origin(headers, uri)
        .ok_or_else(|| "the request does not name this dashboard's host".to_string())?;
    let mut origins = headers.get_all(header::ORIGIN).iter();
    if let Some(origin) = origins.next() {
        let origin = origin.to_str().unwrap_or("");
        if origins.next().is_none() && origin.eq_ignore_ascii_case(&own) {
            return Ok(());
        }
        return Err(format!(
            "it was sent from another site (Origin “{origin}”, expected “{own}”)"
        ));
    }
    if let Some(referer) = headers.get(header::REFERER) {
        return match referer.to_str().ok().and_then(|r| Url::parse(r).ok()) {
            // Browsers never put user info in a Referer.
            Some(url)
                if url.username().is_empty()
                    && url.password().is_none()
                    && url.origin().ascii_serialization() == own =>
            {
                Ok(())
            }
            _ => Err(format!(
                "it was sent from another page than this dashboard’s (expected “{own}/…”)"
            )),
        };
    }
    Err(
        "the browser sent neither Origin nor Referer, so the request cannot be told apart from one made by \
         another site"
            .into(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn public(urls: &[&str]) -> Vec<PublicUrl> {
        urls.iter().map(|u| u.parse().unwrap()).collect()
    }

    #[test]
    fn local_hosts() {
        for ok in [
            "127.0.0.1:3000",
            "127.0.0.1",
            "localhost:3000",
            "LOCALHOST",
            "localhost.",
            "app.localhost:80",
            "[::1]:3000",
            "[::1]",
            "127.1.2.3:9",
        ] {
            assert!(HostPort::parse(ok).is_some_and(|h| h.is_local()), "{ok}");
        }
        for bad in [
            "evil.example:3000",
            "127.0.0.1.evil.example",
            "localhost.evil.example",
            "[::1]x",
            "[::1",
            "10.0.0.1:3000",
            "0.0.0.0:3000",
            "",
            "a b",
            "127.0.0.1:99999",
            "127.0.0.1:",
            "x@127.0.0.1",
            "127.0.0.1/x",
        ] {
            assert!(!HostPort::parse(bad).is_some_and(|h| h.is_local()), "{bad}");
        }
    }

    #[test]
    fn public_urls_are_roots_of_http_sites() {
        for ok in [
            "https://flowstate.example",
            "http://10.0.0.5:3000/",
            "https://[2001:db8::1]:8443",
        ] {
            assert!(ok.parse::<PublicUrl>().is_ok(), "{ok}");
        }
        for bad in [
            "flowstate.example",
            "ftp://flowstate.example",
            "https://flowstate.example/dashboard",
            "https://flowstate.example/?x=1",
            "https://user:pw@flowstate.example",
            "https://",
            "",
        ] {
            assert!(bad.parse::<PublicUrl>().is_err(), "{bad}");
        }
        let url: PublicUrl = "HTTPS://FlowState.Example:443/".parse().unwrap();
        assert_eq!(url.to_string(), "https://flowstate.example");
        for host in ["flowstate.example", "FLOWSTATE.example:443", "flowstate.example."] {
            assert!(url.matches(&HostPort::parse(host).unwrap()), "{host}");
        }
        for host in ["flowstate.example:80", "flowstate.example.evil", "evil.example"] {
            assert!(!url.matches(&HostPort::parse(host).unwrap()), "{host}");
        }
        let with_port: PublicUrl = "http://10.0.0.5:3000".parse().unwrap();
        assert!(with_port.matches(&HostPort::parse("10.0.0.5:3000").unwrap()));
        assert!(!with_port.matches(&HostPort::parse("10.0.0.5").unwrap()));
    }

    #[test]
    fn sites() {
        let uri: Uri = "/x".parse().unwrap();
        let urls = public(&["https://flowstate.example"]);
        let site = |host: &str| Site::of(&headers(&[("host", host)]), &uri, &urls);
        assert!(matches!(site("127.0.0.1:3000"), Site::Local(_)));
        assert!(matches!(site("flowstate.example"), Site::Public(_)));
        assert!(matches!(site("evil.example"), Site::Other(_)));
        assert_eq!(Site::of(&HeaderMap::new(), &uri, &urls), Site::Unnamed);
        let h2: Uri = "https://flowstate.example/x".parse().unwrap();
        assert!(
            matches!(Site::of(&HeaderMap::new(), &h2, &urls), Site::Public(_)),
            "HTTP/2"
        );
        assert_eq!(
            site("flowstate.example")
                .origin(&HeaderMap::new(), &uri)
                .as_deref(),
            Some("https://flowstate.example"),
            "the public URL's scheme, whatever the proxy says"
        );
        assert_eq!(
            site("127.0.0.1:3000").origin(&HeaderMap::new(), &uri).as_deref(),
            Some("http://127.0.0.1:3000")
        );
        assert_eq!(site("evil.example").origin(&HeaderMap::new(), &uri), None);
    }

    #[test]
    fn same_origin_needs_origin_or_referer_of_this_host() {
        let uri: Uri = "/api/run_cleanup".parse().unwrap();
        let check = |pairs: &[(&'static str, &str)], urls: &[PublicUrl]| {
            let h = headers(pairs);
            check_same_origin(&Site::of(&h, &uri, urls), &h, &uri)
        };
        assert!(check(
            &[("host", "127.0.0.1:3000"), ("origin", "http://127.0.0.1:3000")],
            &[]
        )
        .is_ok());
        assert!(check(
            &[
                ("host", "127.0.0.1:3000"),
                ("referer", "http://127.0.0.1:3000/cleanup?x=1")
            ],
            &[]
        )
        .is_ok());
        for bad in [
            &[("host", "127.0.0.1:3000"), ("origin", "http://evil.example")][..],
            &[("host", "127.0.0.1:3000"), ("origin", "null")],
            &[("host", "127.0.0.1:3000"), ("origin", "https://127.0.0.1:3000")],
            &[
                ("host", "127.0.0.1:3000"),
                ("origin", "http://127.0.0.1:3000"),
                ("origin", "http://127.0.0.1:3000"),
            ],
            &[
                ("host", "127.0.0.1:3000"),
                ("referer", "http://127.0.0.1:3000.evil.example/"),
            ],
            &[
                ("host", "127.0.0.1:3000"),
                ("referer", "http://x@127.0.0.1:3000/"),
            ],
            &[("host", "127.0.0.1:3000"), ("referer", "not a url")],
            &[("host", "127.0.0.1:3000")],
            &[("origin", "http://127.0.0.1:3000")],
            &[("host", "evil.example"), ("origin", "http://evil.example")],
        ] {
            assert!(check(bad, &[]).is_err(), "{bad:?} must be refused");
        }
        let proxied = [
            ("host", "flowstate.example"),
            ("x-forwarded-proto", "https"),
            ("origin", "https://flowstate.example"),
        ];
        assert!(check(&proxied, &public(&["http://flowstate.example"])).is_ok());
        assert!(check(&proxied, &[]).is_err(), "a host not configured");
        let no_proto = [
            ("host", "flowstate.example"),
            ("origin", "https://flowstate.example"),
        ];
        assert!(check(&no_proto, &public(&["https://flowstate.example"])).is_ok());
        let downgraded = [
            ("host", "flowstate.example"),
            ("origin", "http://flowstate.example"),
        ];
        assert!(check(&downgraded, &public(&["https://flowstate.example"])).is_err());
    }
}
