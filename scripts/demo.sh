#!/usr/bin/env bash
# The main job: set up .venv and run the cdpkit demo.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
exec .venv/bin/python -m cdpkit demo "$@"
