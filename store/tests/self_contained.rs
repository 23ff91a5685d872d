//! The repository is the whole project (issue 13): no file of the project reaches for a path outside it, such as
//! the team's folder beside the clone, which a user's clone does not have. Test data lives in the repository
//! (`store/tests/fixtures`, made by its own `generate.py`).
//!
//! The outside names are spelled here in pieces ([`TEAM`], [`MACHINE`]), so this file is searched like any other.

use std::path::{Path, PathBuf};
use std::process::Command;

use regex::Regex;

/// The team's folder beside the repository (a relative climb into it, or its contents, mean a path outside).
const TEAM: &str = "shared";
/// The team machine's top folder (an absolute path into it means a path outside).
const MACHINE: &str = "work";

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the store crate sits in the workspace")
        .to_path_buf()
}

/// Files whose paths are read when the project is built, tested, run or set up.
fn is_project_file(relative: &str) -> bool {
    const EXTENSIONS: [&str; 11] = [
        "rs", "ts", "js", "mjs", "sh", "toml", "py", "json", "yml", "yaml", "cfg",
    ];
    let in_ci = relative.starts_with(".ci/") || relative.starts_with(".cargo/");
    let extension = Path::new(relative).extension().and_then(|e| e.to_str());
    in_ci || extension.is_some_and(|e| EXTENSIONS.contains(&e))
}

/// The paths that point outside the repository: a relative climb into a `shared` folder beside it, the team
/// machine's absolute folders, and the team folder's own contents named without the climb.
fn outside_paths() -> Vec<Regex> {
    [
        format!(r"(?:\.\./)+{TEAM}\b"),
        format!(r"(?:^|[^\w.~-])/{MACHINE}/"),
        format!(r"\b{TEAM}/(?:fixtures|tools|hooks)\b"),
        format!(r"\b{TEAM}/[A-Z][A-Z0-9_-]*\.md\b"),
    ]
    .iter()
    .map(|p| Regex::new(p).expect("a valid pattern"))
    .collect()
}

/// Every `line: text` of `text` that names a path outside the repository.
fn offending_lines(text: &str, patterns: &[Regex]) -> Vec<String> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| patterns.iter().any(|p| p.is_match(line)))
        .map(|(i, line)| format!("{}: {}", i + 1, line.trim()))
        .collect()
}

/// The project's files, relative to the root: what git tracks plus new files it does not ignore; without git (an
/// unpacked archive), every file under the root except build output, dependencies and hidden folders.
fn project_files(root: &Path) -> (Vec<String>, &'static str) {
    let git = Command::new("git")
        .args(["ls-files", "-z", "--cached", "--others", "--exclude-standard"])
        .current_dir(root)
        .output();
    if let Ok(out) = git {
        if out.status.success() && !out.stdout.is_empty() {
            let files = out
                .stdout
                .split(|b| *b == 0)
                .filter(|f| !f.is_empty())
                .map(|f| String::from_utf8_lossy(f).into_owned())
                .collect();
            return (files, "git ls-files");
        }
    }
    let mut files = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("listing a project folder") {
            let entry = entry.expect("a folder entry");
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = entry.path();
            let kind = entry.file_type().expect("a file type");
            if kind.is_dir() {
                let skipped = ["target", "node_modules", "test-results", "playwright-report"]
                    .contains(&name.as_str())
                    || (name.starts_with('.') && name != ".ci" && name != ".cargo");
                if !skipped {
                    stack.push(path);
                }
            } else if kind.is_file() {
                let relative = path.strip_prefix(root).expect("under the root");
                files.push(relative.to_string_lossy().replace('\\', "/"));
            }
        }
    }
    (files, "a walk of the tree")
}

#[test]
fn no_project_file_reads_outside_the_repository() {
    let root = workspace_root();
    let patterns = outside_paths();
    let (files, how) = project_files(&root);
    let mut searched = 0;
    let mut found = Vec::new();
    for relative in files.iter().filter(|f| is_project_file(f)) {
        // A file listed by git but deleted in the working tree is not part of the project any more.
        let Ok(bytes) = std::fs::read(root.join(relative)) else {
            continue;
        };
        searched += 1;
        for line in offending_lines(&String::from_utf8_lossy(&bytes), &patterns) {
            found.push(format!("{relative}:{line}"));
        }
    }
    assert!(
        searched >= 50,
        "only {searched} project files found through {how} under {}",
        root.display()
    );
    assert!(
        found.is_empty(),
        "project files name paths outside the repository (a user's clone has none of them; keep test data in \
         store/tests/fixtures):\n{}",
        found.join("\n")
    );
    eprintln!("self_contained: {searched} project files searched (listed by {how})");
}

#[test]
fn the_search_finds_outside_paths_and_only_them() {
    let patterns = outside_paths();
    for bad in [
        format!(r#"Path::new(env!("CARGO_MANIFEST_DIR")).join("../../{TEAM}/fixtures")"#),
        format!("FIXTURES=../{TEAM}"),
        format!("cp /{MACHINE}/{TEAM}/tools/make_db.py ."),
        format!("# Versions from {TEAM}/TOOLCHAIN.md"),
        format!("python {TEAM}/tools/gen_states.py"),
    ] {
        assert_eq!(offending_lines(&bad, &patterns).len(), 1, "{bad:?} is flagged");
    }
    for fine in [
        r#"Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")"#,
        r#"join("../store/tests/fixtures")"#,
        "\"wasm-bindgen-shared\",",
        "let db = dir.path().join(\"shared.db\");",
        "//! Pieces shared by pages.",
        "let shared = Arc::new(Mutex::new(LoadFigures::default()));",
        format!("network/{MACHINE}/queue").as_str(),
    ] {
        assert!(
            offending_lines(fine, &patterns).is_empty(),
            "{fine:?} is not flagged"
        );
    }
    assert!(is_project_file("server/tests/cli.rs"));
    assert!(is_project_file(".ci/run"));
    assert!(is_project_file("Makefile.toml"));
    assert!(is_project_file("end2end/playwright.config.ts"));
    assert!(!is_project_file("store/tests/fixtures/flujo-oldest-schema.db"));
    assert!(!is_project_file("README.md"));
}

/// The fixtures the tests read are in the repository, each database with its ground truth, and stay small.
#[test]
fn the_fixtures_are_in_the_repository_and_small() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut total = 0;
    for name in [
        "flujo-0.4.35-sample-300",
        "flujo-oldest-schema",
        "flujo-oldest-schema-null-pipeline-id",
    ] {
        for ext in ["db", "json"] {
            let path = dir.join(format!("{name}.{ext}"));
            let meta = std::fs::metadata(&path)
                .unwrap_or_else(|e| panic!("{} is missing ({e}): run generate.py", path.display()));
            total += meta.len();
        }
    }
    assert!(
        dir.join("generate.py").is_file(),
        "the generator is kept beside its output"
    );
    assert!(dir.join("README.md").is_file());
    assert!(total < 4 << 20, "the fixtures total {total} bytes");
}
