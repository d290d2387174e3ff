#!/usr/bin/env bash
# The whole test suite: set up .venv (with test extras) and the pinned local Cloudflare
# runtime (wrangler from npm, for the conformance tests), then lint and run every test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh test,lab
if [ ! -x node_modules/.bin/wrangler ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    echo "[cdpkit] installing the pinned wrangler (npm ci)"
    npm ci --no-audit --no-fund --loglevel=error
fi
echo "[cdpkit] ruff"
.venv/bin/ruff check cdpkit tests bench scripts
echo "[cdpkit] pytest"
exec .venv/bin/python -m pytest "$@"
