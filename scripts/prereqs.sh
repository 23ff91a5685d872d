#!/usr/bin/env bash
# Installs what flowstate's commands need, skipping what is present, and says which it did:
#
#   scripts/prereqs.sh NAME...        e.g. scripts/prereqs.sh wasm32 wasm-bindgen
#   scripts/prereqs.sh --list         the names and what each brings
#
# The one place that installs anything: `./x` (cargo-make), the tasks of Makefile.toml (each names what it needs)
# and .ci/run call it. Only the package registries are used (crates.io, PyPI, Debian, npm). A prerequisite that
# cannot be installed here (no cargo; no root for apt) stops with one sentence saying what to do, exit status 1.
#
# To add one: write a function `need_NAME` below (check; then `apt_can` or other checks that can fail, `installing`,
# the install, `installed`; `say` and `fail` help) and a line in `describe`, then name it in the Makefile.toml task
# that needs it (`args = ["scripts/prereqs.sh", ..., "NAME"]`).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# Where `cargo install` puts programs (a fresh CARGO_HOME's bin is not on PATH yet).
CARGO_BIN="${CARGO_INSTALL_ROOT:-${CARGO_HOME:-$HOME/.cargo}}/bin"
export PATH="$CARGO_BIN:$PATH"

CARGO_MAKE_VERSION=0.37.24
# The Python that creates the flujo venv (python3.11 on the CI machine kind).
PYTHON3="${FLOWSTATE_PYTHON3:-python3}"
FLUJO_VERSION=0.4.35
FLUJO_VENV="${FLUJO_VENV:-$ROOT/.venv-flujo}"
CHROMIUM="${CHROMIUM_PATH:-/usr/bin/chromium}"
# The real flujo PostgreSQL writer (flujo 0.6.11 needs Python 3.13 or newer), in its own venv (.venv-flujo-pg).
FLUJO_PG_VERSION=0.6.11
FLUJO_PG_VENV="${FLUJO_PG_VENV:-$ROOT/.venv-flujo-pg}"
# flujo 0.6.11 imports `opentelemetry._events`, which the newest OpenTelemetry no longer has: these are pinned back
# after it is installed (pip then warns about logfire's wishes; harmless).
FLUJO_PG_OTEL_PINS=(opentelemetry-api==1.38.0 opentelemetry-sdk==1.38.0 opentelemetry-exporter-otlp-proto-http==1.38.0
  opentelemetry-exporter-otlp-proto-common==1.38.0 opentelemetry-proto==1.38.0 opentelemetry-semantic-conventions==0.59b0)

say() { echo "prereqs: $*"; }
fail() {
  echo "prereqs: $*" >&2
  exit 1
}
# installing WHAT HOW-LONG: announces an install; `installed` then says how long it took.
installing() {
  INSTALL_START=$SECONDS
  say "installing $1 ($2) ..."
}
installed() { say "$1 installed in $((SECONDS - INSTALL_START)) s"; }

APT_UPDATED=false
SUDO=()
# apt_can WHY PACKAGE...: returns when apt can install PACKAGE (root, or sudo without a password); otherwise one
# sentence saying what to run, and exit 1. Call it before announcing the install.
apt_can() {
  local why=$1
  shift
  command -v apt-get >/dev/null ||
    fail "$why is missing and this is not a Debian system (no apt-get): install $* by hand, then run this command again."
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
      SUDO=(sudo)
    else
      fail "$why is missing and installing it needs root: run \`sudo apt-get install -y $*\` (or run this as root), then run this command again."
    fi
  fi
}
# apt_install WHY PACKAGE...: Debian packages, as root or through sudo (after apt_can).
apt_install() {
  apt_can "$@"
  shift
  if ! $APT_UPDATED; then
    "${SUDO[@]}" apt-get update -qq
    APT_UPDATED=true
  fi
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

need_cargo() {
  command -v cargo >/dev/null ||
    fail "cargo is not on PATH: install Rust (1.85 or newer; 1.95 is what CI uses) with rustup, open a new shell, then run this command again."
  say "cargo present: $(cargo --version)"
}

need_rustup() {
  need_cargo >/dev/null
  command -v rustup >/dev/null ||
    fail "rustup is not on PATH (it adds the wasm32 target and cargo's components): install Rust with rustup, then run this command again."
}

# need_component COMPONENT SUBCOMMAND: a rustup component cargo runs as `cargo SUBCOMMAND`.
need_component() {
  if cargo "$2" --version >/dev/null 2>&1; then
    say "$1 present: $(cargo "$2" --version)"
  else
    need_rustup
    installing "$1" "seconds"
    rustup component add "$1"
    installed "$1"
  fi
}

need_rustfmt() { need_component rustfmt fmt; }
need_clippy() { need_component clippy clippy; }

# cargo_tool CRATE VERSION BINARY DURATION: `cargo install --locked` unless BINARY --version says VERSION.
cargo_tool() {
  local crate=$1 version=$2 binary=$3 duration=$4 found
  found="$("$binary" --version 2>/dev/null | grep -oE '[0-9]+\.[0-9]+\.[0-9]+' | head -1 || true)"
  if [ "$found" = "$version" ]; then
    say "$crate $version present"
    return
  fi
  need_cargo >/dev/null
  installing "$crate $version${found:+ (found $found)}" "$duration, from crates.io"
  cargo install --locked "$crate" --version "$version"
  installed "$crate $version"
}

need_cargo-make() {
  # `cargo make --version` answers "cargo-make 0.37.24" through cargo, which also finds it in CARGO_HOME/bin.
  local found
  found="$(cargo make --version 2>/dev/null | grep -oE '[0-9]+\.[0-9]+\.[0-9]+' | head -1 || true)"
  if [ -n "$found" ]; then
    say "cargo-make present: $found"
    return
  fi
  cargo_tool cargo-make "$CARGO_MAKE_VERSION" cargo-make "about 3 minutes"
}

need_wasm32() {
  need_rustup
  if rustup target list --installed | grep -qx wasm32-unknown-unknown; then
    say "wasm32-unknown-unknown target present"
  else
    installing "the wasm32-unknown-unknown target" "seconds"
    rustup target add wasm32-unknown-unknown
    installed "wasm32-unknown-unknown"
  fi
}

# The CLI must equal the wasm-bindgen crate in Cargo.lock exactly (Cargo.toml pins it).
wasm_bindgen_version() {
  awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' "$ROOT/Cargo.lock"
}

need_wasm-bindgen() {
  local version
  version="$(wasm_bindgen_version)"
  [ -n "$version" ] || fail "Cargo.lock names no wasm-bindgen version; run \`cargo metadata\` once, then this command again."
  cargo_tool wasm-bindgen-cli "$version" wasm-bindgen "about 2.5 minutes"
}

need_python3-venv() {
  if ! command -v "$PYTHON3" >/dev/null; then
    apt_can "$PYTHON3" python3 python3-venv
    installing "python3 and python3-venv" "seconds, from Debian"
    apt_install "$PYTHON3" python3 python3-venv
    installed "python3"
  fi
  # Debian's python3 creates venvs only with python3-venv (ensurepip) installed.
  if "$PYTHON3" -c 'import ensurepip, venv' >/dev/null 2>&1; then
    say "python3 venv support present: $("$PYTHON3" --version)"
  else
    apt_can "python3's venv module" python3-venv
    installing "python3-venv" "seconds, from Debian"
    apt_install "python3's venv module" python3-venv
    installed "python3-venv"
  fi
}

flujo_ok() {
  "$FLUJO_VENV/bin/python" -c "import importlib.metadata as m, flujo; assert m.version('flujo') == '$FLUJO_VERSION', m.version('flujo')" \
    >/dev/null 2>&1
}

# The real flujo for the compatibility tests, in its own venv (.venv-flujo).
need_flujo() {
  if flujo_ok; then
    say "flujo $FLUJO_VERSION present in $FLUJO_VENV"
    return
  fi
  need_python3-venv >/dev/null
  installing "flujo $FLUJO_VERSION into $FLUJO_VENV" "about 35 s, from PyPI"
  "$PYTHON3" -m venv "$FLUJO_VENV"
  "$FLUJO_VENV/bin/pip" install --quiet --disable-pip-version-check "flujo==$FLUJO_VERSION" sqlvalidator
  if ! flujo_ok; then
    "$FLUJO_VENV/bin/python" -c 'import flujo' || true
    fail "flujo $FLUJO_VERSION still cannot be imported from $FLUJO_VENV/bin/python (see above); remove $FLUJO_VENV and run this command again."
  fi
  installed "flujo $FLUJO_VERSION"
}

# The directory with PostgreSQL's server programs (initdb, pg_ctl, postgres): FLOWSTATE_PG_BIN, else Debian's
# /usr/lib/postgresql/VERSION/bin (newest first), else PATH. Prints nothing when there is none.
# (scripts/pg-server.sh looks the same way.)
pg_bin_dir() {
  local dir
  local -a dirs
  if [ -n "${FLOWSTATE_PG_BIN:-}" ]; then
    dirs=("$FLOWSTATE_PG_BIN")
  else
    dirs=($(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r) "$(dirname "$(command -v initdb 2>/dev/null || echo /nonexistent/initdb)")")
  fi
  for dir in "${dirs[@]}"; do
    if [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ] && [ -x "$dir/postgres" ]; then
      echo "$dir"
      return
    fi
  done
}

# PostgreSQL's server programs, for the throwaway test servers of scripts/pg-server.sh. Debian's `postgresql`
# package when missing; its own cluster is never used, and a policy-rc.d keeps the install from starting it.
need_postgres() {
  local dir policy=/usr/sbin/policy-rc.d placed=false
  dir="$(pg_bin_dir)"
  if [ -n "$dir" ]; then
    say "postgres present: $("$dir/postgres" --version) in $dir"
    return
  fi
  [ -z "${FLOWSTATE_PG_BIN:-}" ] ||
    fail "FLOWSTATE_PG_BIN names $FLOWSTATE_PG_BIN, which lacks initdb, pg_ctl or postgres: fix or unset it, then run this command again."
  apt_can "PostgreSQL (for the PostgreSQL tests)" postgresql
  installing "Debian's postgresql" "about a minute, from Debian"
  if [ ! -e "$policy" ]; then
    # 101: "action forbidden", so the package's scripts do not start the system cluster.
    "${SUDO[@]}" sh -c "printf '#!/bin/sh\nexit 101\n' > $policy && chmod 755 $policy"
    placed=true
  fi
  apt_install "PostgreSQL (for the PostgreSQL tests)" postgresql || {
    if $placed; then "${SUDO[@]}" rm -f "$policy"; fi
    fail "apt-get could not install postgresql (see above)."
  }
  if $placed; then "${SUDO[@]}" rm -f "$policy"; fi
  dir="$(pg_bin_dir)"
  [ -n "$dir" ] || fail "Debian's postgresql is installed but no initdb, pg_ctl and postgres were found in /usr/lib/postgresql/*/bin."
  installed "postgres $("$dir/postgres" --version | grep -oE '[0-9]+(\.[0-9]+)?' | head -1)"
}

# A Python 3.13 or newer for flujo 0.6.11: FLOWSTATE_PYTHON313, else python3.13 on PATH, else pyenv's
# ~/.pyenv/versions/3.13*/bin/python3 (newest first), else python3 if it is new enough. Prints nothing when none.
python313() {
  local candidate
  local -a candidates
  if [ -n "${FLOWSTATE_PYTHON313:-}" ]; then
    candidates=("$FLOWSTATE_PYTHON313")
  else
    candidates=(python3.13 $(ls -d "$HOME"/.pyenv/versions/3.1[3-9]*/bin/python3 2>/dev/null | sort -V -r) python3)
  fi
  for candidate in "${candidates[@]}"; do
    # A pyenv shim is on PATH even when its version is not selected: it must actually run.
    if "$candidate" -c 'import sys, venv; sys.exit(sys.version_info < (3, 13))' >/dev/null 2>&1; then
      command -v "$candidate"
      return
    fi
  done
}

flujo_pg_ok() {
  "$FLUJO_PG_VENV/bin/python" -c "import importlib.metadata as m, flujo, asyncpg; assert m.version('flujo') == '$FLUJO_PG_VERSION', m.version('flujo')" \
    >/dev/null 2>&1
}

# The real flujo 0.6.11 with its PostgresBackend, for the PostgreSQL compatibility tests, in .venv-flujo-pg.
# Without a Python 3.13 this says so and goes on: those tests then print SKIPPED.
need_flujo-pg() {
  local python
  if flujo_pg_ok; then
    say "flujo $FLUJO_PG_VERSION (postgres) present in $FLUJO_PG_VENV"
    return
  fi
  python="$(python313)"
  if [ -z "$python" ]; then
    [ -z "${FLOWSTATE_PYTHON313:-}" ] ||
      fail "FLOWSTATE_PYTHON313 names $FLOWSTATE_PYTHON313, which is not a Python 3.13 or newer with venv: fix or unset it, then run this command again."
    say "no Python 3.13 or newer (python3.13, ~/.pyenv/versions/3.13*, FLOWSTATE_PYTHON313) for flujo $FLUJO_PG_VERSION: the tests against the real flujo PostgreSQL writer will print SKIPPED"
    return
  fi
  installing "flujo[postgres] $FLUJO_PG_VERSION into $FLUJO_PG_VENV with $("$python" --version)" "about a minute, from PyPI"
  rm -rf "$FLUJO_PG_VENV"
  "$python" -m venv "$FLUJO_PG_VENV"
  "$FLUJO_PG_VENV/bin/pip" install --quiet --disable-pip-version-check "flujo[postgres]==$FLUJO_PG_VERSION"
  # pip then says that other packages (logfire's instrumentation, mistralai) want a newer OpenTelemetry: expected,
  # flujo's PostgreSQL backend uses neither. Its output is shown only when it fails.
  local log
  if ! log="$("$FLUJO_PG_VENV/bin/pip" install --quiet --disable-pip-version-check "${FLUJO_PG_OTEL_PINS[@]}" 2>&1)"; then
    echo "$log" >&2
    fail "pip could not pin OpenTelemetry back in $FLUJO_PG_VENV (see above); remove $FLUJO_PG_VENV and run this command again."
  fi
  if ! flujo_pg_ok; then
    "$FLUJO_PG_VENV/bin/python" -c 'import flujo, asyncpg' || true
    fail "flujo $FLUJO_PG_VERSION still cannot be imported from $FLUJO_PG_VENV/bin/python (see above); remove $FLUJO_PG_VENV and run this command again."
  fi
  installed "flujo $FLUJO_PG_VERSION (postgres)"
}

# Debian's Chromium for the browser tests (never a downloaded browser). CHROMIUM_PATH names another one.
need_chromium() {
  if [ -x "$CHROMIUM" ]; then
    say "chromium present: $("$CHROMIUM" --version 2>/dev/null || echo "$CHROMIUM")"
    return
  fi
  [ -z "${CHROMIUM_PATH:-}" ] || fail "CHROMIUM_PATH names $CHROMIUM, which is not an executable: fix or unset it, then run this command again."
  apt_can "Chromium (for the browser tests)" chromium
  installing "Debian's chromium" "about 2 minutes, from Debian"
  apt_install "Chromium (for the browser tests)" chromium
  installed chromium
}

need_node() {
  if command -v node >/dev/null && command -v npm >/dev/null; then
    say "node present: $(node --version), npm $(npm --version)"
    return
  fi
  apt_can "Node.js (for the browser tests)" nodejs npm
  installing "node and npm" "about a minute, from Debian"
  apt_install "Node.js (for the browser tests)" nodejs npm
  installed "node and npm"
}

# The npm packages of end2end/ (Playwright), as its package-lock.json pins them.
need_npm-packages() {
  need_node >/dev/null
  local dir="$ROOT/end2end"
  if [ -d "$dir/node_modules/@playwright/test" ] && [ "$dir/node_modules/.package-lock.json" -nt "$dir/package-lock.json" ]; then
    say "npm packages of end2end/ present"
    return
  fi
  installing "the npm packages of end2end/" "seconds, from npm"
  (cd "$dir" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error)
  installed "npm packages"
}

# wasm-opt shrinks the release wasm (`./x dist`) to about half: one of version 116 or newer on PATH, else
# binaryen's Node program from npm (scripts/wasm-opt/, seconds). Debian's binaryen (108) makes a wasm that fails to
# hydrate; crates.io's wasm-opt takes about 8 minutes to build. Without node this is skipped, not failed: the
# bundle works, twice as large.
WASM_OPT_MIN=116
wasm_opt_version() { "$1" --version 2>/dev/null | grep -oE '[0-9]+' | head -1 || true; }
need_wasm-opt() {
  local found npm_opt="$ROOT/scripts/wasm-opt/node_modules/.bin/wasm-opt"
  found="$(wasm_opt_version wasm-opt)"
  if [ -n "$found" ] && [ "$found" -ge "$WASM_OPT_MIN" ]; then
    say "wasm-opt $found present: $(command -v wasm-opt)"
    return
  fi
  if [ -x "$npm_opt" ] && [ "$ROOT/scripts/wasm-opt/node_modules/.package-lock.json" -nt "$ROOT/scripts/wasm-opt/package-lock.json" ]; then
    say "wasm-opt $(wasm_opt_version "$npm_opt") present: $npm_opt"
    return
  fi
  if ! command -v npm >/dev/null; then
    say "no wasm-opt and no npm to install binaryen's: the release wasm is not shrunk (it works, about twice as large)"
    return
  fi
  installing "binaryen's wasm-opt" "seconds, from npm"
  (cd "$ROOT/scripts/wasm-opt" && npm ci --no-audit --no-fund --loglevel=error)
  installed "wasm-opt $(wasm_opt_version "$npm_opt")"
}

describe() {
  cat <<EOF
cargo           Rust's cargo (cannot be installed from here: install Rust with rustup)
rustfmt clippy  cargo's components, with rustup
cargo-make      cargo-make $CARGO_MAKE_VERSION, from crates.io (about 3 minutes)
wasm32          the wasm32-unknown-unknown target, with rustup (seconds)
wasm-bindgen    wasm-bindgen-cli $(wasm_bindgen_version), the version Cargo.lock pins, from crates.io (about 2.5 minutes)
python3-venv    python3 and its venv module, from Debian
flujo           flujo $FLUJO_VERSION in $FLUJO_VENV, from PyPI (about 35 s)
postgres        PostgreSQL's server programs (initdb, pg_ctl, postgres) for throwaway test servers, from Debian
flujo-pg        flujo[postgres] $FLUJO_PG_VERSION in $FLUJO_PG_VENV, from PyPI, with a Python 3.13 or newer (skipped without one)
chromium        Debian's chromium at $CHROMIUM (about 2 minutes)
node            node and npm, from Debian
npm-packages    the npm packages of end2end/ (npm ci, seconds)
wasm-opt        wasm-opt $WASM_OPT_MIN or newer for release builds: binaryen's from npm (scripts/wasm-opt/, seconds) unless one is on PATH
EOF
}

if [ $# -eq 0 ] || [ "$1" = "-h" ] || [ "$1" = "--help" ]; then
  sed -n '2,13p' "$0"
  exit 0
fi
if [ "$1" = "--list" ]; then
  describe
  exit 0
fi
for name in "$@"; do
  declare -F "need_$name" >/dev/null || fail "unknown prerequisite \`$name\` (scripts/prereqs.sh --list names them)"
done
for name in "$@"; do
  "need_$name"
done
