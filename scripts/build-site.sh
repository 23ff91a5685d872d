#!/usr/bin/env bash
# Builds the dashboard without cargo-leptos: the browser bundle (app with `hydrate`, for wasm32) into
# target/site/pkg, the stylesheet and public files into target/site, then the `flowstate` binary (app with `ssr`).
#
#   scripts/build-site.sh            debug build  (target/debug/flowstate)
#   scripts/build-site.sh --release  release build (target/release/flowstate; wasm with the wasm-release profile,
#                                    shrunk with wasm-opt: binaryen's from npm unless a good one is on PATH)
#
# The binary carries the site inside itself (server/build.rs embeds target/site when the server is built, last);
# FLOWSTATE_SITE_ROOT=DIR serves a folder instead.
# Installs what is missing first (scripts/prereqs.sh): the wasm32 target (seconds) and wasm-bindgen-cli (about 2.5
# minutes), which must equal the wasm-bindgen crate pinned in Cargo.toml.
set -euo pipefail

# Debian's binaryen (108) makes a wasm that fails to hydrate; crates.io's wasm-opt 0.116.1 and npm's binaryen 132
# work.
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
export PATH="${CARGO_INSTALL_ROOT:-${CARGO_HOME:-$HOME/.cargo}}/bin:$PATH"
target_dir="${CARGO_TARGET_DIR:-$root/target}"
site="$root/target/site"
# wasm-bindgen writes here; only what changed is copied into target/site, so an unchanged site does not make cargo
# embed it (and rebuild the server) again.
staging="$target_dir/site-staging"
started=$SECONDS
step() { echo "==> $* ($((SECONDS - started)) s)"; }

step "checking the wasm32 target and wasm-bindgen"
bash "$root/scripts/prereqs.sh" wasm32 wasm-bindgen

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

step "generating JavaScript bindings"
rm -rf "$staging"
mkdir -p "$staging/pkg"
wasm-bindgen --target web --no-typescript --out-dir "$staging/pkg" --out-name flowstate \
  "$target_dir/wasm32-unknown-unknown/$wasm_profile_dir/flowstate_app.wasm"

if $release; then
  # scripts/prereqs.sh wasm-opt: one on PATH (version 116 or newer), else binaryen's from npm.
  bash "$root/scripts/prereqs.sh" wasm-opt
  wasm_opt=wasm-opt
  opt_version="$(wasm-opt --version 2>/dev/null | grep -oE '[0-9]+' | head -1 || true)"
  if [ -z "$opt_version" ] || [ "$opt_version" -lt "$WASM_OPT_MIN" ]; then
    wasm_opt="$root/scripts/wasm-opt/node_modules/.bin/wasm-opt"
    opt_version="$("$wasm_opt" --version 2>/dev/null | grep -oE '[0-9]+' | head -1 || true)"
  fi
  if [ -n "$opt_version" ] && [ "$opt_version" -ge "$WASM_OPT_MIN" ]; then
    step "shrinking the wasm with wasm-opt $opt_version"
    "$wasm_opt" -Oz --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext --enable-reference-types \
      --enable-multivalue \
      -o "$staging/pkg/flowstate_bg.wasm.opt" "$staging/pkg/flowstate_bg.wasm"
    mv "$staging/pkg/flowstate_bg.wasm.opt" "$staging/pkg/flowstate_bg.wasm"
  else
    echo "note: no wasm-opt >= $WASM_OPT_MIN (scripts/prereqs.sh wasm-opt installs one with npm);" \
      "the bundle works but is about twice as large" >&2
  fi
fi
# Debug builds never run wasm-opt: it is slow and only saves bytes.

step "copying the stylesheet and public files; updating target/site"
cp style/main.css "$staging/pkg/flowstate.css"
if [ -d public ] && [ -n "$(ls -A public)" ]; then
  cp -R public/. "$staging/"
fi
# target/site becomes exactly the staging folder: changed and new files copied, files no longer built removed.
mkdir -p "$site"
(cd "$staging" && find . -type f) | while read -r file; do
  if ! cmp -s "$staging/$file" "$site/$file"; then
    mkdir -p "$(dirname "$site/$file")"
    cp "$staging/$file" "$site/$file"
  fi
done
(cd "$site" && find . -type f) | while read -r file; do
  [ -f "$staging/$file" ] || rm -f "$site/$file"
done

step "building the server (flowstate, ssr; the site embedded)"
cargo build -p flowstate "${server_profile_args[@]}"

wasm_size=$(wc -c < "$site/pkg/flowstate_bg.wasm")
step "done: site in target/site (wasm $((wasm_size / 1024)) KB), binary in $target_dir/$($release && echo release || echo debug)/flowstate"
