"""The notebooks' reviewable sources: each notebooks/NN-name.ipynb has a jupytext percent source
notebooks/src/NN-name.py with the same cells (scripts/build_notebooks.py builds one from the
other), the sources pass ruff, and the README's table lists every notebook."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import jupytext
import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted(p.stem for p in (ROOT / "notebooks").glob("[0-9][0-9]-*.ipynb"))
SOURCES = sorted(p.stem for p in (ROOT / "notebooks" / "src").glob("[0-9][0-9]-*.py"))


def cells(nb) -> list[tuple[str, str]]:
    return [(c.cell_type, c.source) for c in nb.cells]


def test_every_notebook_has_a_source_and_every_source_a_notebook():
    assert NOTEBOOKS, "no notebooks found"
    assert set(NOTEBOOKS) - set(SOURCES) == set(), (
        "notebooks without a source in notebooks/src/ (convert one with "
        "`jupytext --to src//py:percent notebooks/NN-name.ipynb`)")
    assert set(SOURCES) - set(NOTEBOOKS) == set(), (
        "sources never built (run `.venv/bin/python scripts/build_notebooks.py NN`)")


@pytest.mark.parametrize("name", SOURCES)
def test_notebook_cells_are_its_sources(name):
    built = nbformat.read(ROOT / "notebooks" / f"{name}.ipynb", as_version=4)
    source = jupytext.read(ROOT / "notebooks" / "src" / f"{name}.py")
    assert cells(built) == cells(source), (
        f"notebooks/{name}.ipynb differs from notebooks/src/{name}.py: edit the .py, then run "
        f"`.venv/bin/python scripts/build_notebooks.py {name[:2]}`")
    assert built.metadata["jupytext"]["formats"] == "ipynb,src//py:percent"
    code = [c for c in built.cells if c.cell_type == "code"]
    assert all(c.execution_count is not None for c in code), f"{name}.ipynb was not executed"


def test_a_changed_source_is_caught(tmp_path):
    """The comparison above sees a one-character edit in a source."""
    name = SOURCES[0]
    text = (ROOT / "notebooks" / "src" / f"{name}.py").read_text()
    edited = tmp_path / f"{name}.py"
    edited.write_text(text.replace("# %%\n", "# %%\n#\n", 1))
    built = nbformat.read(ROOT / "notebooks" / f"{name}.ipynb", as_version=4)
    assert cells(built) != cells(jupytext.read(edited))


def test_sources_pass_ruff():
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    if ruff is None:
        pytest.fail("ruff is not installed (it is in the test extra)")
    run = subprocess.run([ruff, "check", "notebooks/src"], cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr


def test_readme_lists_every_notebook():
    readme = (ROOT / "README.md").read_text()
    listed = set(re.findall(r"^\| `(\d\d-[\w-]+)` \|", readme, re.M))
    assert set(NOTEBOOKS) <= listed, f"not in the README's notebook table: {set(NOTEBOOKS) - listed}"
