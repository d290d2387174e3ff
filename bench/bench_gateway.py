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


def child(requests: int, engine: str, semantics: str) -> None:
    """One measurement, in this process: prints a JSON line."""
    cdp.simulate(gateway(), gateway_workload(rate=RATE), duration=5, seed=9, semantics=semantics,
                 engine=engine).summary()       # warm-up: imports, numba's cache
    started = time.perf_counter()
    budget = cdp.Budget(messages=max(20_000_000, 10 * requests), memory_bytes=64 * 2**30)
    res = cdp.simulate(gateway(), gateway_workload(rate=RATE), duration=requests / RATE, seed=1,
                       semantics=semantics, engine=engine, budget=budget)
    summary = res.summary()
    wall = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"engine": res.engine, "wall": wall, "peak_mib": peak, "messages": len(res.messages),
                      "actor_calls": len(res.actor_calls), "summary": summary.to_numpy(dtype=float).tolist()}))


def measure(requests: int, engine: str, semantics: str) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", str(requests), "--engine", engine,
                          "--semantics", semantics], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--semantics", default="production")
    parser.add_argument("--compiled-only", action="store_true")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--engine", default="auto", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.engine, args.semantics)
        return
    fast = measure(args.requests, "compiled", args.semantics)
    print(f"compiled: {fast['wall']:6.2f} s  peak {fast['peak_mib']:6.0f} MiB  {fast['messages']:,} ledger rows, "
          f"{fast['actor_calls']:,} actor calls")
    if args.compiled_only:
        return
    python = measure(args.requests, "python", args.semantics)
    print(f"python:   {python['wall']:6.2f} s  peak {python['peak_mib']:6.0f} MiB  ({python['engine']})")
    same = np.allclose(fast["summary"], python["summary"], rtol=1e-12, atol=1e-9, equal_nan=True)
    print(f"ratio python/compiled: {python['wall'] / fast['wall']:.1f}x   same summary: {same}")


if __name__ == "__main__":
    main()
