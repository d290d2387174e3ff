"""The exported config and skeleton, checked by wrangler itself (offline).

* ``wrangler deploy --dry-run`` for every example pipeline (every Worker of it);
* ``wrangler dev`` on every exported example: messages go HTTP -> queue -> consumer ->
  Durable Objects -> event queue -> consumer, end to end on 127.0.0.1 (the multi-Worker one
  with both Workers in one ``wrangler dev``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import cdpkit as cdp
from cdpkit.deploy import write_all

sys.path.insert(0, str(Path(__file__).resolve().parent))
from wrangler_runner import WRANGLER, http, wrangler_dev  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))

if not WRANGLER.exists():
    if os.environ.get("CI"):
        raise RuntimeError(f"{WRANGLER} is missing under CI: scripts/test.sh runs `npm ci`")
    pytest.skip("wrangler is not installed (run `npm ci`)", allow_module_level=True)


def dry_run(directory: Path) -> str:
    env = {**os.environ, "WRANGLER_SEND_METRICS": "false", "NO_COLOR": "1", "CI": "true",
           "XDG_CONFIG_HOME": str(directory / ".config"), "WRANGLER_LOG_PATH": str(directory / "logs")}
    env.pop("CLOUDFLARE_API_TOKEN", None)
    done = subprocess.run([str(WRANGLER), "deploy", "--dry-run", "--outdir", str(directory / "dist")],
                          cwd=directory, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return done.stdout


@pytest.mark.parametrize("example", EXAMPLES, ids=[e.stem for e in EXAMPLES])
@pytest.mark.parametrize("fmt", ["toml", "jsonc"])
def test_wrangler_deploy_dry_run_accepts_the_export(tmp_path, example, fmt):
    p = cdp.Pipeline.from_yaml(example)
    written = write_all(p, tmp_path, format=fmt)
    configs = [f for f in written if f.name == f"wrangler.{fmt}"]
    assert len(configs) == len(cdp.deploy.workers(p))
    for config in configs:
        out = dry_run(config.parent)
        assert "--dry-run: exiting now." in out
        for b in cdp.deploy.configs(p)[cdp.deploy.read_config(config)["name"]].get("durable_objects", {}).get("bindings", []):
            line = next(x for x in out.splitlines() if x.startswith(f"env.{b['name']} ("))
            assert b["class_name"] in line and "Durable Object" in line
        assert (config.parent / "dist" / "index.js").exists()


def test_exported_gateway_delivers_end_to_end_under_wrangler_dev(tmp_path):
    p = cdp.Pipeline.from_yaml(ROOT / "examples" / "cdp-gateway.yaml")
    write_all(p, tmp_path)
    with wrangler_dev(tmp_path) as base:
        for i in range(10):                       # fills a command batch (max_batch_size 10)
            http("POST", f"{base}/http-workflows", {"type": "execute_workflow", "workflowId": f"wf-{i}"})
        for i, kind in enumerate(["web_scraping", "email_validation", "crm_sync"] * 2):
            http("POST", f"{base}/http-tasks", {"type": kind, "workflowId": f"task-{i}"})
        deadline, seen = time.monotonic() + 45, {}
        while time.monotonic() < deadline:
            seen = http("GET", f"{base}/_cdpkit/seen")
            if seen.get("acked:cdp-event-queue", 0) >= 12 and seen.get("acked:cdp-task-queue", 0) >= 6:
                break
            time.sleep(0.5)
    assert seen.get("sent:cdp-command-queue") == 10 and seen.get("sent:cdp-task-queue") == 6
    assert seen.get("acked:cdp-command-queue") == 10          # orchestrator and children ran
    assert seen.get("acked:cdp-task-queue") == 6              # routed by type
    # 10 workflow.completed events from the orchestrator, 2 from the crm_sync actor
    assert seen.get("acked:cdp-event-queue") == 12, seen


def test_exported_multi_worker_pipeline_delivers_across_workers(tmp_path):
    """Gateway Worker -> Durable Object defined by the actor Worker (script_name) -> events
    queue published from the actor Worker -> the gateway's consumer."""
    p = cdp.Pipeline.from_yaml(ROOT / "examples" / "multi-worker.yaml")
    write_all(p, tmp_path)
    configs = [f"{w}/wrangler.toml" for w in cdp.deploy.workers(p)]
    with wrangler_dev(tmp_path, configs=configs) as base:
        for i in range(25):                       # one full batch of score-requests
            http("POST", f"{base}/http", {"type": "score", "key": f"customer-{i}"})
        deadline, seen = time.monotonic() + 30, {}
        while time.monotonic() < deadline:
            seen = http("GET", f"{base}/_cdpkit/seen")
            if seen.get("acked:score-events", 0) >= 25:
                break
            time.sleep(0.5)
    assert seen.get("acked:score-requests") == 25, seen
    assert seen.get("acked:score-events") == 25, seen
