#!/usr/bin/env bash
# The whole test suite: set up .venv (with test extras) and the pinned local Cloudflare
# runtime (wrangler from npm, for the conformance tests), then lint and run every test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh test
bash scripts/wrangler.sh required
# tests/test_browser.py drives Debian's chromium with playwright (fails, saying how, without it)
if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "[cdpkit] installing chromium (apt-get) for the browser test"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
echo "[cdpkit] ruff"
.venv/bin/ruff check cdpkit tests bench scripts notebooks/src
echo "[cdpkit] pytest"
exec .venv/bin/python -m pytest "$@"
