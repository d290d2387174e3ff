"""Speed work must not change a result: run fixed scenarios with the cdpkit on the path,
save their frames, and compare two saves for exact equality.

    PYTHONPATH=/tmp/before .venv/bin/python bench/same_results.py save /tmp/before.pkl
    PYTHONPATH=.           .venv/bin/python bench/same_results.py save /tmp/after.pkl
    .venv/bin/python bench/same_results.py compare /tmp/before.pkl /tmp/after.pkl

Scenarios (each under PRODUCTION_ALL_SLOTS, production (autoscaled) and local, two seeds):
the benchmark's reference pipeline (bench_simulate.py), the seed's gateway
(examples/cdp-gateway.yaml: routes, DLQ, D1/KV/sink writes, code-path actors), and a
pipeline with retries, poison messages, a DLQ and a Zipf-skewed actor, also through a
fault timeline; plus the reference over the throughput limit (rejections). Compared per
run: ``res.messages``, ``res.batches``, ``rt.actor_calls``, ``res.timeline``, the summary,
incidents, events processed, final time, actor busy and consumer CPU seconds, autoscaler
levels, warnings and errors.
"""

from __future__ import annotations

import importlib.util
import pickle
import sys
from pathlib import Path

import pandas as pd


def scenarios(tree: Path) -> dict:
    import cdpkit as cdp
    spec = importlib.util.spec_from_file_location("bench_simulate", tree / "bench" / "bench_simulate.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    gateway = cdp.Pipeline.from_yaml(str(tree / "examples" / "cdp-gateway.yaml"))
    gateway_load = cdp.Poisson(rate=40, types={"execute_workflow": 0.5, "crm_sync": 0.3,
                                               "web_scraping": 0.1, "email_validation": 0.1})

    def retry_skew() -> cdp.Pipeline:
        p = cdp.Pipeline("retry-skew")
        p.add_source("http", queue="jobs")
        p.add_queue("jobs", max_batch_size=20, max_batch_timeout=2, max_concurrency=5, max_retries=2,
                    dead_letter_queue="dlq")
        p.add_queue("dlq", max_batch_size=10, max_batch_timeout=5)
        p.add_queue("out", max_batch_size=50, max_batch_timeout=1)
        p.add_consumer("jobs", service={"base": {"exp": 0.01}, "per_message": 0.002}, failure=0.15,
                       permanent=0.2, retry={"policy": "exponential", "base": 2, "cap": 30},
                       calls="Hot", publish=["out"])
        p.add_consumer("dlq")
        p.add_consumer("out", calls="Hot")
        p.add_actor("Hot", service={"exp": 0.004}, instances=20, skew=1.3)
        return p

    faults = cdp.Faults([
        {"kind": "outage", "node": "jobs.consumer", "start": 10, "end": 20},
        {"kind": "slowdown", "node": "Hot", "factor": 4, "start": 25, "end": 35},
        {"kind": "pause", "node": "out", "start": 40, "end": 45},
        {"kind": "errors", "node": "jobs.consumer", "p": 0.3, "start": 50, "end": 55},
    ])
    slots = cdp.PRODUCTION_ALL_SLOTS
    runs = {}
    for sem, name in ((slots, "all-slots"), ("production", "autoscaled"), ("local", "local")):
        for seed in (1, 2):
            runs[f"reference/{name}/{seed}"] = lambda sem=sem, seed=seed: cdp.simulate(
                bench.pipeline(), cdp.Poisson(rate=1000), duration=15, seed=seed, semantics=sem)
            runs[f"gateway/{name}/{seed}"] = lambda sem=sem, seed=seed: cdp.simulate(
                gateway, gateway_load, duration=120, seed=seed, semantics=sem)
            runs[f"retry-skew/{name}/{seed}"] = lambda sem=sem, seed=seed: cdp.simulate(
                retry_skew(), cdp.Poisson(rate=300), duration=60, seed=seed, semantics=sem)
        runs[f"retry-skew-faults/{name}"] = lambda sem=sem: cdp.simulate(
            retry_skew(), cdp.Poisson(rate=300), duration=60, seed=3, semantics=sem, faults=faults)
    for sem, name in ((slots, "all-slots"), ("production", "autoscaled")):   # 6,000 msg/s: rejections
        runs[f"reference-over-limit/{name}"] = lambda sem=sem: cdp.simulate(
            bench.pipeline(), cdp.Poisson(rate=6000), duration=3, seed=4, semantics=sem)
    return runs


def collect(res) -> dict:
    rt = res.runtime
    out = {"messages": res.messages, "batches": res.batches, "actor_calls": rt.actor_calls,
           "timeline": res.timeline, "summary": res.summary(), "events": rt.clock.events_processed,
           "now": rt.clock.now, "busy": {k: p.busy_seconds for k, p in res.actor_pools.items()},
           "cpu": res.consumer_cpu_seconds,
           "levels": {n: q.scaler.levels if q.scaler else None for n, q in rt.queues.items()},
           "warnings": list(rt.recorder.warnings), "errors": [e[:3] for e in rt.recorder.errors]}
    try:
        out["incidents"] = res.incidents()
    except Exception as exc:  # noqa: BLE001 - a run without faults may have none to show
        out["incidents"] = repr(exc)
    return out


def same(a, b) -> bool:
    if isinstance(a, pd.DataFrame):
        pd.testing.assert_frame_equal(a, b, check_exact=True)
        return True
    if isinstance(a, pd.Series):
        pd.testing.assert_series_equal(a, b, check_exact=True)
        return True
    return a == b or repr(a) == repr(b)


def main() -> int:
    if len(sys.argv) == 3 and sys.argv[1] == "save":
        import cdpkit
        tree = Path(cdpkit.__file__).resolve().parent.parent
        saved = {}
        for name, run in scenarios(tree).items():
            saved[name] = collect(run())
            print(f"{name}: {len(saved[name]['messages']):,} rows, {saved[name]['events']:,} events", flush=True)
        Path(sys.argv[2]).write_bytes(pickle.dumps(saved))
        return 0
    if len(sys.argv) == 4 and sys.argv[1] == "compare":
        a, b = (pickle.loads(Path(p).read_bytes()) for p in sys.argv[2:])
        if a.keys() != b.keys():
            print("different scenarios:", sorted(a.keys() ^ b.keys()))
            return 1
        bad = 0
        for name in a:
            for key in a[name]:
                try:
                    ok = same(a[name][key], b[name][key])
                except AssertionError as exc:
                    ok = False
                    print(exc)
                if not ok:
                    bad += 1
                    print("DIFFERENT:", name, key)
        print(f"{len(a)} runs compared, {bad} differences")
        return 1 if bad else 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main())
