"""The seed's CDP gateway (``cdpkit.demo.gateway``) on both engines, same run: wall time of
simulate + summary, the ratio, and whether the two give the same summary.

The gateway is the pipeline users model first: a consumer calling an orchestrator actor
that calls children (one of which calls another, which writes to KV) and publishes, a
consumer routing by type to three actors, a DLQ consumer writing to D1 and raising
alerts. Its actors run on the Durable Object machinery (gates left at every awaited I/O
and re-entered, child requests, idle evictions), so until the compiled engine covered them
the gateway, the tuner and notebooks 06 and 10 ran on Python.

    .venv/bin/python bench/bench_gateway.py                   # 100k requests, both engines
    .venv/bin/python bench/bench_gateway.py --requests 1000000 --compiled-only
    .venv/bin/python bench/bench_gateway.py --scenario incident   # with a fault of every kind

Scenarios (``--scenario``): ``gateway``; ``incident``: the gateway under a fault timeline
of every kind (an outage that throws, the DLQ down, a purge, an eviction storm, errors with
a permanent share), which ran on Python until the compiled engine covered them; ``trace``:
the gateway with ``trace=True`` (a row per delivery); ``pull``: an HTTP pull consumer (four
polling loops, leases that expire) feeding a push consumer.

Each measurement runs in a fresh process (peak RSS is the process's). The machine is
shared and noisy: read the ratio, not the seconds.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import numpy as np

import cdpkit as cdp
from cdpkit.demo import gateway, gateway_workload

RATE = 200.0      # requests per second (the gateway's steady state in notebook 06)


def pulled() -> cdp.Pipeline:
    """Jobs pulled by an outside client (four loops of 20 every 0.2 s, 2 s leases that a slow
    batch outlives) and published to a push consumer."""
    p = cdp.Pipeline("pulled")
    p.add_source("http", queue="jobs")
    p.add_queue("jobs", max_retries=3, dead_letter_queue="jobs-dlq")
    p.add_queue("jobs-dlq")
    p.add_consumer("jobs-dlq", service={"base": 0.01})
    p.add_queue("events", max_batch_size=50, max_batch_timeout=1)
    p.add_consumer("events", service={"base": 0.02, "per_message": 0.001})
    p.add_consumer("jobs", service={"base": {"exp": 0.05}, "per_message": 0.002}, failure=0.02, publish=["events"],
                   pull={"interval": 0.2, "batch_size": 20, "concurrency": 4, "visibility_timeout": 2})
    return p


def incident(duration: float) -> cdp.Faults:
    """A fault of every kind on the gateway, each for a tenth of the run."""
    at = [duration * k / 10 for k in range(1, 10)]
    return (cdp.Faults().add("outage", "cdp-task-queue.consumer", start=at[0], length=at[0])
            .add("dlq_down", "cdp-dlq", start=at[1], length=at[0])
            .add("purge", "cdp-event-queue", at=[at[3], at[6]])
            .add("eviction", "WorkflowOrchestratorActor", at=[at[4], at[7]])
            .add("errors", "CACHE", p=0.3, permanent=0.5, start=at[5], length=at[0])
            .add("pause", "cdp-command-queue", start=at[8], length=at[0] / 2))


def child(requests: int, engine: str, semantics: str, scenario: str) -> None:
    """One measurement, in this process: prints a JSON line."""
    def run(duration: float, seed: int, **budget) -> cdp.Results:
        pipeline = pulled() if scenario == "pull" else gateway()
        return cdp.simulate(pipeline, gateway_workload(rate=RATE), duration=duration, seed=seed,
                            semantics=semantics, engine=engine, trace=scenario == "trace",
                            faults=incident(duration) if scenario == "incident" else None, **budget)

    run(5, 9).summary()       # warm-up: imports, numba's cache
    started = time.perf_counter()
    budget = cdp.Budget(messages=max(20_000_000, 10 * requests), memory_bytes=64 * 2**30)
    res = run(requests / RATE, 1, budget=budget)
    summary = res.summary()
    wall = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"engine": res.engine, "wall": wall, "peak_mib": peak, "messages": len(res.messages),
                      "actor_calls": len(res.actor_calls), "summary": summary.to_numpy(dtype=float).tolist()}))


def measure(requests: int, engine: str, semantics: str, scenario: str) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", str(requests), "--engine", engine,
                          "--semantics", semantics, "--scenario", scenario], capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--semantics", default="production")
    parser.add_argument("--compiled-only", action="store_true")
    parser.add_argument("--scenario", default="gateway", choices=["gateway", "incident", "trace", "pull"])
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--engine", default="auto", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.engine, args.semantics, args.scenario)
        return
    fast = measure(args.requests, "compiled", args.semantics, args.scenario)
    print(f"compiled: {fast['wall']:6.2f} s  peak {fast['peak_mib']:6.0f} MiB  {fast['messages']:,} ledger rows, "
          f"{fast['actor_calls']:,} actor calls")
    if args.compiled_only:
        return
    python = measure(args.requests, "python", args.semantics, args.scenario)
    print(f"python:   {python['wall']:6.2f} s  peak {python['peak_mib']:6.0f} MiB  ({python['engine']})")
    same = np.allclose(fast["summary"], python["summary"], rtol=1e-12, atol=1e-9, equal_nan=True)
    print(f"ratio python/compiled: {python['wall'] / fast['wall']:.1f}x   same summary: {same}")


if __name__ == "__main__":
    main()
