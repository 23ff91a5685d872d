//! Puts the built site (`target/site`: the wasm bundle, its JavaScript, the stylesheet, the favicon, as
//! `scripts/build-site.sh` writes them) into the `flowstate` binary: copies it to `$OUT_DIR/site`, with a gzip and a
//! brotli copy beside each compressible file (`pkg/flowstate_bg.wasm.gz`, `….br`), which `src/web/site.rs` embeds
//! with rust-embed and serves to the browsers that accept them, so nothing is compressed per request.
//!
//! Every build embeds what `target/site` holds when it runs, debug builds too (the browser tests run a debug
//! binary copied alone into an empty folder). Without a built site the binary embeds nothing and says so when it
//! serves. Cargo runs this again whenever a file under `target/site` changes (an empty `target/site` is created
//! when there is none, so that there is a folder to watch).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Files smaller than this are embedded as they are (compression would not pay for its header).
const MIN_COMPRESS: u64 = 256;

/// The extensions worth compressing: text and WebAssembly (images and fonts are compressed already).
const COMPRESSIBLE: &[&str] = &[
    "html", "js", "mjs", "css", "wasm", "svg", "json", "txt", "map", "xml", "ico",
];

fn main() {
    let manifest =
        PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR")).join("site");
    let site = manifest.join("..").join("target").join("site");
    // A folder that does not exist would make cargo run this script (and rebuild the crate) on every build.
    if let Err(e) = fs::create_dir_all(&site) {
        println!("cargo::warning=cannot create {}: {e}", site.display());
    }
    println!("cargo::rerun-if-changed={}", site.display());

    // Release builds compress as well as they can (once per build of the binary); debug builds fast (a debug
    // wasm is 13 MB, and the site changes with every edit of the app).
    let release = std::env::var("PROFILE").is_ok_and(|p| p == "release");
    let (gzip_level, brotli_quality) = if release { (9, 11) } else { (6, 5) };

    if out.exists() {
        fs::remove_dir_all(&out).unwrap_or_else(|e| panic!("cannot empty {}: {e}", out.display()));
    }
    fs::create_dir_all(&out).unwrap_or_else(|e| panic!("cannot create {}: {e}", out.display()));
    copy_site(&site, &site, &out, gzip_level, brotli_quality);
}

/// Copies the files under `dir` (part of `root`) to the same place under `out`, each compressible one with its
/// `.gz` and `.br` copies when they are smaller.
fn copy_site(root: &Path, dir: &Path, out: &Path, gzip_level: u32, brotli_quality: u32) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = entries.filter_map(Result::ok).collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        let rel = path.strip_prefix(root).expect("under the site root");
        if kind.is_dir() {
            copy_site(root, &path, out, gzip_level, brotli_quality);
            continue;
        }
        let name = path.to_string_lossy();
        // Compressed copies are this script's to make (a stray one would be served as if it were ours).
        if !kind.is_file() || name.ends_with(".gz") || name.ends_with(".br") {
            continue;
        }
        let data = fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        let target = out.join(rel);
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent).unwrap_or_else(|e| panic!("cannot create {}: {e}", parent.display()));
        }
        write(&target, &data);
        let compressible = path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| COMPRESSIBLE.contains(&e.to_ascii_lowercase().as_str()));
        if !compressible || (data.len() as u64) < MIN_COMPRESS {
            continue;
        }
        let worth = |compressed: &[u8]| compressed.len() < data.len() - data.len() / 10;
        let gz = gzip(&data, gzip_level);
        if worth(&gz) {
            write(&with_suffix(&target, "gz"), &gz);
        }
        let br = brotli(&data, brotli_quality);
        if worth(&br) {
            write(&with_suffix(&target, "br"), &br);
        }
    }
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".");
    name.push(suffix);
    PathBuf::from(name)
}

fn write(path: &Path, data: &[u8]) {
    fs::write(path, data).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
}

fn gzip(data: &[u8], level: u32) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(level));
    encoder.write_all(data).expect("gzip into memory");
    encoder.finish().expect("gzip into memory")
}

fn brotli(data: &[u8], quality: u32) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut writer = brotli::CompressorWriter::new(&mut out, 64 * 1024, quality, 22);
        writer.write_all(data).expect("brotli into memory");
    }
    out
}
