#!/usr/bin/env bash
# The whole test suite: set up .venv (with test extras) and the pinned local Cloudflare
# runtime (wrangler from npm, for the conformance tests), then lint and run every test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh test
bash scripts/wrangler.sh required
echo "[cdpkit] ruff"
.venv/bin/ruff check cdpkit tests bench scripts
echo "[cdpkit] pytest"
exec .venv/bin/python -m pytest "$@"
