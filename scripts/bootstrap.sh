#!/usr/bin/env bash
# Create (or refresh) the project's own virtual environment in .venv from pyproject.toml.
# Usage: source-free; `bash scripts/bootstrap.sh [extras]`, e.g. `bash scripts/bootstrap.sh test,lab`.
# Re-installs only when pyproject.toml or the requested extras changed (stamp file).
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"
python="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    echo "[cdpkit] creating virtual environment in .venv"
    "$python" -m venv .venv
fi
spec="."
[ -n "$extras" ] && spec=".[${extras}]"
stamp=".venv/.cdpkit-installed"
want="$(sha256sum pyproject.toml | cut -d' ' -f1) ${extras}"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "[cdpkit] installing $spec into .venv"
    .venv/bin/python -m pip install --quiet --upgrade pip
    .venv/bin/python -m pip install --quiet -e "$spec"
    echo "$want" > "$stamp"
fi
