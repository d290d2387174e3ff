#!/usr/bin/env bash
# Install the pinned local Cloudflare runtime (wrangler from package-lock.json) when it is
# missing or stale. `required` fails without npm; `optional` (the demo) warns and goes on:
# the export is then checked with cdpkit's rules only, not wrangler's config-schema.json.
set -euo pipefail
cd "$(dirname "$0")/.."
mode="${1:-required}"
if [ -x node_modules/.bin/wrangler ] && [ ! package-lock.json -nt node_modules/.package-lock.json ]; then
    exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
    if [ "$mode" = optional ]; then
        echo "[cdpkit] npm not found: skipping wrangler (exports are checked with cdpkit's rules only)" >&2
        exit 0
    fi
    echo "[cdpkit] npm not found: install Node >= 20 (wrangler is needed by the tests)" >&2
    exit 1
fi
echo "[cdpkit] installing the pinned wrangler (npm ci)"
npm ci --no-audit --no-fund --loglevel=error
