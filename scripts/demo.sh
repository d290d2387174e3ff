#!/usr/bin/env bash
# The main job: set up .venv (and the pinned wrangler, if npm is there) and run the cdpkit demo.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
bash scripts/wrangler.sh optional   # to validate the exported wrangler.toml with wrangler's schema
exec .venv/bin/python -m cdpkit demo "$@"
