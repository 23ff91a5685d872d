#!/usr/bin/env bash
# Builds the dashboard without cargo-leptos: the browser bundle (app with `hydrate`, for wasm32) into
# target/site/pkg, the stylesheet and public files into target/site, then the `flowstate` binary (app with `ssr`).
#
#   scripts/build-site.sh            debug build  (target/debug/flowstate)
#   scripts/build-site.sh --release  release build (target/release/flowstate; wasm with the wasm-release profile,
#                                    shrunk with wasm-opt when a good one is installed)
#
# The binary finds target/site by itself (a path compiled in); elsewhere set FLOWSTATE_SITE_ROOT.
# Installs what is missing: the wasm32 target (seconds) and wasm-bindgen-cli 0.2.129 (about 2.5 minutes), which
# must equal the wasm-bindgen crate pinned in Cargo.toml.
set -euo pipefail

WASM_BINDGEN_VERSION=0.2.129
# Debian's binaryen (108) makes a wasm that fails to hydrate; crates.io's wasm-opt 0.116.1 works.
WASM_OPT_MIN=116

release=false
for arg in "$@"; do
  case "$arg" in
    --release) release=true ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "build-site.sh: unknown argument $arg (use --release)" >&2; exit 2 ;;
  esac
done

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
target_dir="${CARGO_TARGET_DIR:-$root/target}"
site="$root/target/site"
started=$SECONDS
step() { echo "==> $* ($((SECONDS - started)) s)"; }

step "checking the wasm32 target"
if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  rustup target add wasm32-unknown-unknown
fi

step "checking wasm-bindgen $WASM_BINDGEN_VERSION"
if [ "$(wasm-bindgen --version 2>/dev/null | awk '{print $2}')" != "$WASM_BINDGEN_VERSION" ]; then
  cargo install --locked wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION"
fi

if $release; then
  wasm_profile_args=(--profile wasm-release); wasm_profile_dir=wasm-release
  server_profile_args=(--release)
else
  wasm_profile_args=(); wasm_profile_dir=debug
  server_profile_args=()
fi

step "building the browser bundle (flowstate-app, hydrate, wasm32, ${wasm_profile_dir})"
cargo build -p flowstate-app --lib --target wasm32-unknown-unknown --no-default-features --features hydrate \
  "${wasm_profile_args[@]}"

step "generating JavaScript bindings into target/site/pkg"
mkdir -p "$site/pkg"
wasm-bindgen --target web --no-typescript --out-dir "$site/pkg" --out-name flowstate \
  "$target_dir/wasm32-unknown-unknown/$wasm_profile_dir/flowstate_app.wasm"

if $release; then
  opt_version="$(wasm-opt --version 2>/dev/null | grep -oE '[0-9]+' | head -1 || true)"
  if [ -n "$opt_version" ] && [ "$opt_version" -ge "$WASM_OPT_MIN" ]; then
    step "shrinking the wasm with wasm-opt $opt_version"
    wasm-opt -Oz --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext --enable-reference-types \
      --enable-multivalue \
      -o "$site/pkg/flowstate_bg.wasm.opt" "$site/pkg/flowstate_bg.wasm"
    mv "$site/pkg/flowstate_bg.wasm.opt" "$site/pkg/flowstate_bg.wasm"
  else
    echo "note: no wasm-opt >= $WASM_OPT_MIN found (cargo install --locked wasm-opt --version 0.116.1);" \
      "the bundle works but is about twice as large" >&2
  fi
fi
# Debug builds never run wasm-opt: it is slow and only saves bytes.

step "copying the stylesheet and public files"
cp style/main.css "$site/pkg/flowstate.css"
if [ -d public ] && [ -n "$(ls -A public)" ]; then
  cp -R public/. "$site/"
fi

step "building the server (flowstate, ssr)"
cargo build -p flowstate "${server_profile_args[@]}"

wasm_size=$(wc -c < "$site/pkg/flowstate_bg.wasm")
step "done: site in target/site (wasm $((wasm_size / 1024)) KB), binary in $target_dir/$($release && echo release || echo debug)/flowstate"
