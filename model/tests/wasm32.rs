//! The crate is shared with the dashboard's browser bundle: it must build for `wasm32-unknown-unknown`.

use std::path::Path;
use std::process::Command;

const TARGET: &str = "wasm32-unknown-unknown";

#[test]
fn the_model_builds_for_wasm32() {
    // The target is installed by scripts/build-site.sh and .ci/run; without it there is nothing to build with.
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .any(|l| l.trim() == TARGET)
        })
        .unwrap_or(false);
    if !installed {
        println!("SKIPPED the {TARGET} target is not installed (rustup target add {TARGET})");
        return;
    }
    // A target directory of its own: the one running this test may be locked by the cargo that runs it.
    let target_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("wasm32-check");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["build", "--quiet", "--lib", "--target", TARGET, "--manifest-path"])
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir)
        .env_remove("RUSTFLAGS")
        .output()
        .expect("cargo runs");
    assert!(
        out.status.success(),
        "flowstate-model does not build for {TARGET}:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rlib = target_dir
        .join(TARGET)
        .join("debug")
        .join("libflowstate_model.rlib");
    assert!(rlib.exists(), "no {} after the build", rlib.display());
}
