//! The site the pages load (`/pkg/flowstate.js`, `/pkg/flowstate_bg.wasm`, `/pkg/flowstate.css`,
//! `/favicon.svg`): carried inside the binary, or read from a folder.
//!
//! `server/build.rs` copies `target/site` (as `scripts/build-site.sh` leaves it) into the build, with a gzip and a
//! brotli copy of every compressible file, and [`Assets`] embeds the lot with rust-embed, in every build. So the
//! binary alone, copied into an empty folder on another machine, serves the whole hydrated dashboard, and a
//! browser that accepts brotli or gzip gets the copy made at build time (nothing is compressed per request; the
//! compression layer leaves answers that already have a `Content-Encoding` alone). `FLOWSTATE_SITE_ROOT` (or
//! `serve --site-root DIR`) serves a folder instead, as it is on disk.

use std::path::{Path, PathBuf};

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::Response;

/// The site as the build found it in `target/site` (see the module documentation), with `NAME.gz` and
/// `NAME.br` beside the files worth compressing.
#[derive(rust_embed::Embed)]
#[folder = "$OUT_DIR/site"]
struct Assets;

/// The file whose presence says the browser bundle was built (and embedded).
const BUNDLE: &str = "pkg/flowstate_bg.wasm";

/// Where the static files come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Site {
    /// The copy inside this binary.
    Embedded,
    /// A folder on disk (`pkg/`, the favicon), read at each request.
    Dir(PathBuf),
}

impl Site {
    /// True when this site has the browser bundle (without it the pages work, but without JavaScript and
    /// styles).
    pub fn has_bundle(&self) -> bool {
        match self {
            Site::Embedded => embedded_has_bundle(),
            Site::Dir(root) => root.join(BUNDLE).is_file(),
        }
    }

    /// How `/healthz` and the log name it: `embedded` or the folder.
    pub fn describe(&self) -> String {
        match self {
            Site::Embedded => "embedded".into(),
            Site::Dir(root) => root.display().to_string(),
        }
    }
}

impl From<&Path> for Site {
    fn from(root: &Path) -> Self {
        Site::Dir(root.to_path_buf())
    }
}

impl From<&PathBuf> for Site {
    fn from(root: &PathBuf) -> Self {
        Site::Dir(root.clone())
    }
}

impl From<PathBuf> for Site {
    fn from(root: PathBuf) -> Self {
        Site::Dir(root)
    }
}

/// True when the binary carries the browser bundle (it was built after `scripts/build-site.sh`).
pub fn embedded_has_bundle() -> bool {
    Assets::get(BUNDLE).is_some()
}

/// The embedded files as the browser asks for them (`pkg/flowstate.js`, ...), without the compressed copies.
pub fn embedded_files() -> Vec<String> {
    Assets::iter()
        .filter(|name| !is_compressed_copy(name))
        .map(|name| name.into_owned())
        .collect()
}

/// The embedded file `name` (`pkg/flowstate_bg.wasm`) as it was built, uncompressed.
pub fn embedded_file(name: &str) -> Option<Vec<u8>> {
    if is_compressed_copy(name) {
        return None;
    }
    Assets::get(name).map(|file| file.data.into_owned())
}

fn is_compressed_copy(name: &str) -> bool {
    name.ends_with(".gz") || name.ends_with(".br")
}

/// The content codings this answer can use, best first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Coding {
    Brotli,
    Gzip,
    Identity,
}

/// Answers a GET or HEAD for an embedded file: the brotli or gzip copy when the request accepts it (and one
/// exists), else the file itself; `304 Not Modified` when `If-None-Match` names the file's tag. `None` when no
/// such file is embedded (or for another method), so the caller answers the 404 page.
pub fn serve_embedded(method: &Method, path: &str, headers: &HeaderMap) -> Option<Response> {
    if method != Method::GET && method != Method::HEAD {
        return None;
    }
    let name = path.strip_prefix('/')?;
    if name.is_empty() || is_compressed_copy(name) {
        return None;
    }
    let file = Assets::get(name)?;
    let hash: String = file
        .metadata
        .sha256_hash()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    // Weak: the plain and the compressed copies are the same content, so they share it.
    let etag = HeaderValue::from_str(&format!("W/\"{}\"", &hash[..32])).ok()?;
    let content_type = HeaderValue::from_str(file.metadata.mimetype()).ok()?;
    let brotli = Assets::get(&format!("{name}.br"));
    let gzip = Assets::get(&format!("{name}.gz"));
    let has_copies = brotli.is_some() || gzip.is_some();

    let mut builder = Response::builder()
        .header(header::CONTENT_TYPE, content_type)
        .header(header::ETAG, etag.clone())
        // The names carry no hash of the content: the browser asks again each time (a 304 when unchanged).
        .header(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if has_copies {
        builder = builder.header(header::VARY, HeaderValue::from_static("accept-encoding"));
    }
    if if_none_match(headers, &etag) {
        return builder.status(StatusCode::NOT_MODIFIED).body(Body::empty()).ok();
    }
    let coding = choose_coding(headers, brotli.is_some(), gzip.is_some());
    let (data, encoding) = match coding {
        Coding::Brotli => (brotli.map(|f| f.data), Some("br")),
        Coding::Gzip => (gzip.map(|f| f.data), Some("gzip")),
        Coding::Identity => (Some(file.data), None),
    };
    let data = data?;
    if let Some(encoding) = encoding {
        builder = builder.header(header::CONTENT_ENCODING, HeaderValue::from_static(encoding));
    }
    builder
        .header(header::CONTENT_LENGTH, data.len())
        .status(StatusCode::OK)
        .body(Body::from(data))
        .ok()
}

/// True when `If-None-Match` is `*` or names `etag` (weak comparison, as RFC 9110 asks for this header).
fn if_none_match(headers: &HeaderMap, etag: &HeaderValue) -> bool {
    let ours = etag.to_str().unwrap_or_default().trim_start_matches("W/");
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .any(|tag| tag == "*" || tag.trim_start_matches("W/") == ours)
}

/// The coding to answer with, from `Accept-Encoding` (its q-values; `*` stands for any coding not named):
/// brotli when it is accepted at least as much as gzip, then gzip, else the file itself.
fn choose_coding(headers: &HeaderMap, has_brotli: bool, has_gzip: bool) -> Coding {
    let mut brotli_q = None;
    let mut gzip_q = None;
    let mut any_q = None;
    for item in headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
    {
        let mut parts = item.split(';');
        let coding = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
        let q = parts
            .filter_map(|p| {
                p.trim()
                    .strip_prefix("q=")
                    .or_else(|| p.trim().strip_prefix("Q="))
            })
            .find_map(|q| q.trim().parse::<f32>().ok())
            .filter(|q| q.is_finite())
            .unwrap_or(1.0)
            .clamp(0.0, 1.0);
        match coding.as_str() {
            "br" => brotli_q = Some(q),
            "gzip" | "x-gzip" => gzip_q = Some(q),
            "*" => any_q = Some(q),
            _ => {}
        }
    }
    let brotli_q = if has_brotli {
        brotli_q.or(any_q).unwrap_or(0.0)
    } else {
        0.0
    };
    let gzip_q = if has_gzip {
        gzip_q.or(any_q).unwrap_or(0.0)
    } else {
        0.0
    };
    if brotli_q > 0.0 && brotli_q >= gzip_q {
        Coding::Brotli
    } else if gzip_q > 0.0 {
        Coding::Gzip
    } else {
        Coding::Identity
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT_ENCODING, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn codings_follow_the_accept_encoding_header() {
        let both = |v: &str| choose_coding(&accept(v), true, true);
        assert_eq!(
            both("gzip, deflate, br, zstd"),
            Coding::Brotli,
            "what Chromium sends"
        );
        assert_eq!(both("gzip"), Coding::Gzip);
        assert_eq!(both("x-gzip"), Coding::Gzip);
        assert_eq!(both("br;q=0.5, gzip"), Coding::Gzip);
        assert_eq!(both("br;q=0, gzip;q=0"), Coding::Identity);
        assert_eq!(both("*"), Coding::Brotli);
        assert_eq!(both("*;q=0.1, gzip;q=0.9"), Coding::Gzip);
        assert_eq!(both("identity"), Coding::Identity);
        assert_eq!(both("deflate"), Coding::Identity);
        assert_eq!(
            both("br;q=nan, gzip;q=bogus"),
            Coding::Brotli,
            "unreadable q-values count as 1"
        );
        assert_eq!(choose_coding(&HeaderMap::new(), true, true), Coding::Identity);
        assert_eq!(choose_coding(&accept("br"), false, true), Coding::Identity);
        assert_eq!(choose_coding(&accept("br, gzip"), false, true), Coding::Gzip);
    }

    #[test]
    fn if_none_match_compares_weakly() {
        let etag = HeaderValue::from_static("W/\"abc\"");
        let with = |v: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::IF_NONE_MATCH, HeaderValue::from_str(v).unwrap());
            if_none_match(&headers, &etag)
        };
        assert!(with("W/\"abc\""));
        assert!(with("\"abc\""));
        assert!(with("\"x\", W/\"abc\""));
        assert!(with("*"));
        assert!(!with("\"abcd\""));
        assert!(!if_none_match(&HeaderMap::new(), &etag));
    }
}
