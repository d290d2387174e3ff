"""Run things under the real local runtime: `wrangler dev` (workerd + miniflare) on 127.0.0.1.

`wrangler_dev(directory)` starts wrangler from the project's pinned npm install
(`node_modules/.bin/wrangler`, put there by `npm ci`), waits until it answers, and always
stops its whole process group. `run_scenarios` runs queue scenarios (DSL.md) in one
`wrangler dev`, all at once, and returns every delivery.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
WRANGLER = ROOT / "node_modules" / ".bin" / "wrangler"
HERE = Path(__file__).resolve().parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(method: str, url: str, body: object | None = None, timeout: float = 30) -> object:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method,
                                     headers={"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        text = response.read().decode()
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


@contextlib.contextmanager
def wrangler_dev(directory: Path, startup_timeout: float = 90, configs: list[str] = ()) -> Iterator[str]:
    """Start `wrangler dev` in ``directory`` (holding wrangler.toml, or the ``configs`` given,
    several for several Workers: the first one serves HTTP); yield its base URL."""
    if not WRANGLER.exists():
        raise RuntimeError(f"{WRANGLER} is missing: run `npm ci` in {ROOT} (scripts/test.sh does)")
    port = free_port()
    log_path = directory / "wrangler.log"
    env = {**os.environ, "WRANGLER_SEND_METRICS": "false", "CI": "true", "NO_COLOR": "1",
           "WRANGLER_LOG_PATH": str(directory / "logs")}
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [str(WRANGLER), "dev", "--ip", "127.0.0.1", "--port", str(port), "--local",
             "--persist-to", str(directory / "state"), "--show-interactive-dev-session=false",
             *(arg for config in configs for arg in ("-c", config))],
            cwd=directory, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            env=env, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + startup_timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"wrangler dev exited with {process.returncode}:\n"
                                   + log_path.read_text()[-3000:])
            try:
                http("GET", base + "/", timeout=2)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("wrangler dev did not answer within "
                                       f"{startup_timeout}s:\n" + log_path.read_text()[-3000:]) from None
                time.sleep(0.25)
        yield base
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def queue_config(scenarios: list[dict]) -> str:
    """wrangler.toml for the generic worker: a producer and (maybe) a consumer per queue."""
    lines = ['name = "cdpkit-conformance"', 'main = "index.js"', 'compatibility_date = "2025-06-01"', ""]
    for s in scenarios:
        for short, settings in s["queues"].items():
            real = f"{s['name']}-{short}"
            lines += ["[[queues.producers]]",
                      f'binding = "{("Q_" + s["name"] + "_" + short).replace("-", "_").upper()}"',
                      f'queue = "{real}"', ""]
            if settings is None:
                continue
            lines += ["[[queues.consumers]]", f'queue = "{real}"']
            for key, value in settings.items():
                if key == "dead_letter_queue":
                    value = f"{s['name']}-{value}"
                lines.append(f"{key} = {json.dumps(value)}")
            lines.append("")
    return "\n".join(lines)


def run_scenarios(scenarios: list[dict], workdir: Path | None = None) -> dict[str, dict]:
    """Run every scenario concurrently in one `wrangler dev`; per scenario, its ``deliveries``
    and ``sent``: the time each send really began (on a busy machine the HTTP request that
    starts a send can be half a second late; cdpkit then sends at the same times)."""
    workdir = Path(workdir or tempfile.mkdtemp(prefix="cdpkit-wrangler-"))
    workdir.mkdir(parents=True, exist_ok=True)
    shutil.copy(HERE / "worker" / "index.js", workdir / "index.js")
    (workdir / "scenarios.json").write_text(json.dumps(scenarios))
    (workdir / "wrangler.toml").write_text(queue_config(scenarios))
    sends = sorted(((send["at"], s["name"], i) for s in scenarios for i, send in enumerate(s["sends"])),
                   key=lambda x: x[0])
    errors: list[BaseException] = []
    sent: dict[str, dict[int, float]] = {s["name"]: {} for s in scenarios}
    with wrangler_dev(workdir) as base:
        http("POST", base + "/start", {})
        t0 = time.monotonic()

        def send(name: str, index: int) -> None:
            try:
                sent[name][index] = http("POST", base + "/send", {"scenario": name, "index": index})["at"]
            except BaseException as exc:  # reported after the run
                errors.append(exc)

        threads = []
        for at, name, index in sends:
            time.sleep(max(0.0, t0 + at - time.monotonic()))
            thread = threading.Thread(target=send, args=(name, index))
            thread.start()
            threads.append(thread)
        for thread in threads:
            thread.join()
        time.sleep(max(0.0, t0 + max(s["duration"] for s in scenarios) - time.monotonic()))
        log = http("GET", base + "/log")
    if errors:
        raise RuntimeError(f"sends failed: {errors!r}")
    results: dict[str, dict] = {s["name"]: {"deliveries": [], "sent": [sent[s["name"]][i] for i in
                                                                     range(len(s["sends"]))]}
                                for s in scenarios}
    for delivery in log:
        results[delivery.pop("scenario")]["deliveries"].append(delivery)
    for result in results.values():
        result["deliveries"].sort(key=lambda d: (d["queue"], d["batch"]))
    return results
