"""Durable Object RPC throughput: 100k calls over 1k objects, and peak memory.

cdpkit: 100 caller tasks each make 1,000 sequential ``await stub.add(n)`` RPCs to random
objects (of 1,000); each call spends 1 ms of the object's CPU and updates storage.
Reference: the same in SimPy, each object a ``Resource(capacity=1)`` (the gate) with a
dict for storage. Same process, same run; reported as a ratio.

    .venv/bin/python bench/bench_actors.py [--calls 100000] [--objects 1000]
"""

from __future__ import annotations

import argparse
import gc
import random
import time
import tracemalloc

import simpy

import cdpkit as cdp

CALLERS = 100


class Account(cdp.Actor):
    async def add(self, n):
        await self.ctx.work(0.001)
        total = (await self.ctx.storage.get("total") or 0) + n
        await self.ctx.storage.put("total", total)
        return total


def run_cdpkit(calls: int, objects: int) -> int:
    rt = cdp.Runtime(seed=1)
    ns = rt.actor("ACCOUNT", Account)
    rng = random.Random(1)
    stubs = [ns.get_by_name(f"acct-{i}") for i in range(objects)]
    done = 0

    async def caller(count):
        nonlocal done
        for _ in range(count):
            await stubs[rng.randrange(objects)].add(1)
            done += 1

    for _ in range(CALLERS):
        rt.spawn(caller(calls // CALLERS))
    rt.run()
    return done


def run_simpy(calls: int, objects: int) -> int:
    env = simpy.Environment()
    rng = random.Random(1)
    gates = [simpy.Resource(env, capacity=1) for _ in range(objects)]
    storage = [{} for _ in range(objects)]
    done = 0

    def add(i, n):
        with gates[i].request() as req:
            yield req
            yield env.timeout(0.001)
            storage[i]["total"] = storage[i].get("total", 0) + n
            return storage[i]["total"]

    def caller(count):
        nonlocal done
        for _ in range(count):
            yield env.process(add(rng.randrange(objects), 1))
            done += 1

    for _ in range(CALLERS):
        env.process(caller(calls // CALLERS))
    env.run()
    return done


def measure(fn, calls: int, objects: int, repeat: int = 3) -> dict:
    best = float("inf")
    for _ in range(repeat):
        gc.collect()
        started = time.perf_counter()
        done = fn(calls, objects)
        best = min(best, time.perf_counter() - started)
    tracemalloc.start()
    fn(calls, objects)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return {"calls": done, "seconds": best, "per_second": done / best, "peak_mib": peak / 2**20}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=100_000)
    parser.add_argument("--objects", type=int, default=1_000)
    args = parser.parse_args()
    ours = measure(run_cdpkit, args.calls, args.objects)
    ref = measure(run_simpy, args.calls, args.objects)
    assert ours["calls"] == ref["calls"] == args.calls
    print(f"{args.calls} RPC calls over {args.objects} objects, {CALLERS} concurrent callers")
    print(f"{'model':<10}{'best s':>10}{'calls/s':>12}{'peak MiB':>11}")
    for name, r in (("cdpkit", ours), ("simpy", ref)):
        print(f"{name:<10}{r['seconds']:>10.3f}{r['per_second']:>12,.0f}{r['peak_mib']:>11.1f}")
    print(f"ratio cdpkit/simpy calls per second: {ours['per_second'] / ref['per_second']:.2f}x")


if __name__ == "__main__":
    main()
