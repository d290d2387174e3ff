"""The front door in a real browser: JupyterLab from the project's environment (the lab
command's own settings: autosave off, --allow-root as root), on a copy of the notebooks,
driven by Chromium. Every notebook runs with no error in the page, and in 04 moving the
batch-size slider changes the explorer's numbers. Screenshots at ~1,000 px go to
``$CDPKIT_SCREENSHOTS`` (default: the test's temporary folder).

Needs Debian's ``chromium`` (``apt-get install -y chromium``; scripts/test.sh installs it)
and Python's ``playwright`` (the test extra). Without them this test fails saying so.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from cdpkit.cli import lab_command

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted(p.name for p in (ROOT / "notebooks").glob("[0-9][0-9]-*.ipynb"))
WIDTH = 1000


def chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        if shutil.which(name):
            return shutil.which(name)
    pytest.fail("no Chromium to drive: install Debian's package (`apt-get update && apt-get "
                "install -y chromium`, as bash scripts/test.sh does), then re-run")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    work = tmp_path_factory.mktemp("lab")
    for name in NOTEBOOKS:
        shutil.copy(ROOT / "notebooks" / name, work / name)
    token, port = secrets.token_hex(16), free_port()
    jupyter = str(Path(sys.executable).parent / "jupyter")
    command = lab_command(work, ["--no-browser", "--ip=127.0.0.1", f"--port={port}",
                                 f"--IdentityProvider.token={token}", "--ServerApp.open_browser=False"],
                          jupyter)
    log = open(work / "lab.log", "w")
    server = subprocess.Popen(command, cwd=work, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2) as r:
                json.load(r)
            break
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                pytest.fail(f"JupyterLab did not start: {(work / 'lab.log').read_text()[-2000:]}")
            time.sleep(0.5)
    yield url, token, work
    server.terminate()
    try:
        server.wait(10)
    except subprocess.TimeoutExpired:
        server.kill()
    log.close()


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("Python's playwright is missing: `pip install -e '.[test]'` (scripts/test.sh does)")
    path = chromium()
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=path, args=["--no-sandbox", "--disable-gpu"])
        yield b
        b.close()


def palette(page, command: str, done: str, timeout: int) -> None:
    """Run a JupyterLab command from the command palette and wait until the JavaScript
    condition ``done`` holds. The command is typed into the palette's own box once it is
    open: typed blind, before the page had bound the shortcut, its letters went to the
    notebook as command-mode keys (once notebook 04's cells never ran, and its explorer
    never appeared). It tries three times."""
    box = page.locator(".lm-CommandPalette-input:visible").first
    for attempt in range(3):
        page.locator(".jp-Notebook").first.click()
        page.keyboard.press("Control+Shift+c")
        try:
            box.wait_for(state="visible", timeout=10_000)
        except Exception:
            if attempt == 2:
                raise
            page.keyboard.press("Escape")
            continue
        page.keyboard.type(command)         # (into the box, which has the focus now)
        page.keyboard.press("Enter")
        try:
            page.wait_for_function(done, timeout=timeout)
            return
        except Exception:
            if attempt == 2:
                raise
            page.keyboard.press("Escape")


PROMPTS = "[...document.querySelectorAll('.jp-Notebook .jp-InputPrompt')]"


def run_all(page, url: str, token: str, name: str) -> None:
    """Open a notebook, clear its saved outputs, run every cell, wait until done."""
    page.goto(f"{url}/lab/tree/{name}?token={token}&reset")
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)
    page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=60_000)
    # cleared first, so that "it ran" is visible: prompts [ ] -> [*] -> [1]
    palette(page, "Clear Outputs of All Cells", rf"() => {PROMPTS}.every(e => !/\d/.test(e.textContent))", 10_000)
    palette(page, "Run All Cells", rf"() => {PROMPTS}.some(e => /\[(\*|\d+)\]/.test(e.textContent))", 20_000)
    page.wait_for_timeout(1_000)
    page.wait_for_function(
        f"""() => {{ const p = {PROMPTS};
                   return p.length && p.every(e => !e.textContent.includes('*')); }}""",
        timeout=240_000)
    page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=60_000)


def test_every_notebook_runs_in_jupyterlab_and_the_explorer_responds(lab, browser, tmp_path):
    url, token, work = lab
    shots = Path(os.environ.get("CDPKIT_SCREENSHOTS", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": WIDTH + 60, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    for name in NOTEBOOKS:
        try:
            run_all(page, url, token, name)
        except Exception:
            page.screenshot(path=str(shots / f"failed-{name}.png"))
            raise
        failed = page.locator("[data-mime-type='application/vnd.jupyter.error']")
        assert failed.count() == 0, f"{name}: {failed.first.inner_text()[:2000]}"
        if name.startswith("04"):
            explorer_responds(page, shots)
        if name.startswith("06"):
            image = page.locator(".jp-OutputArea-output img").first
            image.wait_for(state="attached", timeout=120_000)   # slow kernels on a fresh environment
            image.scroll_into_view_if_needed()
            page.screenshot(path=str(shots / "06-notebook.png"))
    assert not errors, errors
    for name in NOTEBOOKS:                 # autosave off: the copies were not rewritten
        assert (work / name).read_bytes() == (ROOT / "notebooks" / name).read_bytes()


def explorer_responds(page, shots: Path) -> None:
    status = page.locator(".widget-html-content", has_text="mean batch").first
    try:         # the widget renders once the kernel's comm messages arrive: slow on a busy machine
        status.wait_for(state="attached", timeout=120_000)
    except Exception:
        page.screenshot(path=str(shots / "failed-04-explorer.png"), full_page=True)
        outputs = page.locator(".jp-OutputArea-output").all_inner_texts()
        raise AssertionError("the explorer's headline never appeared; widget outputs: "
                             + " | ".join(o[:200] for o in outputs if "explor" in o.lower() or "widget" in o.lower())
                             ) from None
    status.scroll_into_view_if_needed()
    before = status.inner_text()
    explorer = page.locator(".widget-vbox", has=page.locator(".widget-html-content", has_text="mean batch")).first
    box = explorer.bounding_box()
    page.screenshot(path=str(shots / "04-explorer.png"))
    assert box["width"] <= WIDTH + 5
    readout = page.locator(".widget-slider", has_text="max_batch_size").locator(".widget-readout").first
    if readout.count() == 0:
        readout = page.locator(".widget-slider", has_text="batch").locator(".widget-readout").first
    readout.click()
    page.keyboard.press("Control+a")
    page.keyboard.type("2")
    page.keyboard.press("Enter")
    page.wait_for_function(
        "([before]) => [...document.querySelectorAll('.widget-html-content')].some("
        "e => e.textContent.includes('mean batch') && !e.textContent.includes('simulating')"
        " && e.textContent !== before)", arg=[before], timeout=60_000)
    after = page.locator(".widget-html-content", has_text="mean batch").first.inner_text()
    assert after != before and re.search(r"mean batch 2\b|mean batch 1\.9\d", after), (before, after)
    page.screenshot(path=str(shots / "04-explorer-after.png"))
