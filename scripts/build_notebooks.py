"""Build the tutorial notebooks from their sources: notebooks/src/NN-name.py (jupytext percent
format: ``# %%`` code cells, ``# %% [markdown]`` text cells) -> execute -> notebooks/NN-name.ipynb.

    .venv/bin/python scripts/build_notebooks.py            # all
    .venv/bin/python scripts/build_notebooks.py 03 05      # some (by number or name prefix)

Edit the .py, not the .ipynb (tests/test_notebook_sources.py checks that each .ipynb's cells
are its source's); in JupyterLab the pair is kept in sync by jupytext on save. Cells whose first
line is ``# NBVAL_CHECK_OUTPUT`` have their output compared by the test suite
(``pytest --nbval-lax``); every other cell must simply run. Keep each notebook seeded and
under ~30 s.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import jupytext
import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
SOURCES = NOTEBOOKS / "src"


def sources(wanted: list[str]) -> list[Path]:
    """The notebook sources whose name starts with one of ``wanted`` (all when empty)."""
    found = sorted(SOURCES.glob("[0-9][0-9]-*.py"))
    chosen = [p for p in found if not wanted or any(p.stem.startswith(w) for w in wanted)]
    missing = [w for w in wanted if not any(p.stem.startswith(w) for p in found)]
    if missing:
        raise SystemExit(f"no notebook source matches {missing} in {SOURCES.relative_to(ROOT)}/")
    return chosen


def read_source(path: Path) -> nbformat.NotebookNode:
    """The notebook a source describes, without outputs; cell ids by position, so that a
    rebuild changes only what changed."""
    nb = jupytext.read(path)
    nb.metadata.get("jupytext", {}).pop("text_representation", None)
    for i, cell in enumerate(nb.cells):
        cell.id = f"cell-{i:02d}"
    return nb


def build(path: Path) -> float:
    """Execute one source's notebook in notebooks/ and write its .ipynb; returns seconds."""
    nb = read_source(path)
    started = time.perf_counter()
    NotebookClient(nb, timeout=120, kernel_name="python3", record_timing=False,
                   resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
    seconds = time.perf_counter() - started
    nbformat.validate(nb)
    nbformat.write(nb, NOTEBOOKS / f"{path.stem}.ipynb")
    return seconds


if __name__ == "__main__":
    for source in sources(sys.argv[1:]):
        print(f"{source.stem}.ipynb: {build(source):.1f} s", flush=True)
