#!/usr/bin/env bash
# Runs the browser tests (Playwright in Debian's Chromium, JavaScript on and off) against the built binary and
# prints one plain line: "N passed, M failed". Build first: scripts/build-site.sh.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
if [ ! -d node_modules/@playwright/test ]; then
  npm ci --no-audit --no-fund || exit 1
fi
results="$(mktemp)"
PLAYWRIGHT_JSON_OUTPUT_NAME="$results" npx playwright test --reporter=list,json "$@"
status=$?
node -e '
  const fs = require("fs");
  let s = {};
  try { s = JSON.parse(fs.readFileSync(process.argv[1], "utf8")).stats || {}; } catch (e) {}
  const passed = (s.expected || 0) + (s.flaky || 0);
  let failed = s.unexpected || 0;
  const broken = process.argv[2] !== "0" && failed === 0;
  if (broken) failed = 1; // the run failed outside any test (setup, build missing): never report it as green
  console.log(`${passed} passed, ${failed} failed` + (s.skipped ? `, ${s.skipped} skipped` : "") +
    (broken ? " (the run failed outside the tests; see above)" : ""));
' "$results" "$status"
rm -f "$results"
exit $status
