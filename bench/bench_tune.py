"""The tuner vs the exhaustive grid on the same question (notebook 10's: the seed's gateway
through a spike and a CRM outage, p99 <= 5 s and DLQ share <= 0.1 % on every seed, 24
configurations): wall time and simulated messages of each, and whether the answers agree.

    .venv/bin/python bench/bench_tune.py [--seeds 3]
    .venv/bin/python bench/bench_tune.py --without-faults [--python]   # the spike alone

Without the outage every run is covered by the compiled engine (a fault timeline runs on
Python); ``--python`` makes every run use the Python engine, to compare.

The machine is shared and noisy: read the ratios, not the seconds.
"""

from __future__ import annotations

import argparse
import time

import cdpkit as cdp
from cdpkit.demo import GATEWAY_MIX, gateway
from cdpkit.sim import compiled

KNOBS = {"cdp-command-queue.max_batch_size": [10, 25, 100],
         "cdp-command-queue.max_batch_timeout": [1, 30],
         "cdp-task-queue.consumer.parallel": [False, True],
         "cdp-command-queue.consumer.retry": [{"policy": "exponential", "base": 5, "cap": 60},
                                              {"policy": "fixed", "base": 1}]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--without-faults", action="store_true", help="the spike alone (compiled runs)")
    parser.add_argument("--python", action="store_true", help="every run on the Python engine")
    args = parser.parse_args()
    if args.python:      # (as if numba could not run here: simulate's auto picks Python)
        compiled.BROKEN.append("bench_tune.py --python")
    spike = cdp.Piecewise([(0, 40), (60, 150), (90, 40)], types=dict(GATEWAY_MIX))
    outage = cdp.Faults().add("errors", "GHLContactActor", p=1.0, start=20, length=8)
    kw = dict(slo={"p99_latency": 5, "dead_lettered": 0.001}, knobs=KNOBS, duration=180, seeds=args.seeds,
              faults=None if args.without_faults else outage, progress=False)
    results = {}
    for method in ("halving", "grid"):
        started = time.perf_counter()
        t = cdp.tune(gateway(), spike, method=method, **kw)
        results[method] = (time.perf_counter() - started, t)
        print(f"{method:8s} {results[method][0]:7.1f} s wall  {t.runs:4d} runs  {t.messages:>11,} messages  {t!r}")
    (fast_s, fast), (grid_s, grid) = results["halving"], results["grid"]
    same = fast.best is not None and grid.best is not None and fast.best.settings == grid.best.settings
    print(f"same answer: {same}; tuner/grid: wall {fast_s / grid_s:.2f}, messages {fast.messages / grid.messages:.2f}")


if __name__ == "__main__":
    main()
