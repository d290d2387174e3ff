"""Emulator throughput: deliveries per second through a trivial async handler, and peak memory.

Same scenario in cdpkit and in a SimPy reference model, same process, same run:
N messages sent at t=0 in send_batch calls of 100; one queue, max_batch_size=100,
max_batch_timeout=1 s; the handler acks every message (optionally retrying a fraction on
the first attempt). Reported: wall time, deliveries/s, tracemalloc peak, and the ratio.

    .venv/bin/python bench/bench_emulator.py [--messages 100000] [--retry 0.1] [--repeat 3]
"""

from __future__ import annotations

import argparse
import gc
import time
import tracemalloc

import simpy

import cdpkit as cdp


def run_cdpkit(n: int, retry: float) -> int:
    rt = cdp.Runtime(semantics="local", seed=1)
    rt.queue("jobs", max_batch_size=100, max_batch_timeout=1, max_retries=3)
    threshold = int(retry * 1000)

    @rt.consumer("jobs")
    async def handle(batch, env, ctx):
        for m in batch.messages:
            if m.attempts == 1 and m.body % 1000 < threshold:
                m.retry()
            else:
                m.ack()

    producer = rt.env.JOBS
    for start in range(0, n, 100):
        producer.send_batch([{"body": i} for i in range(start, min(n, start + 100))])
    rt.run()
    return len(rt.recorder)


def run_simpy(n: int, retry: float) -> int:
    """Reference: the same batching rule (full batch now, partial after the timeout)."""
    env = simpy.Environment()
    store = simpy.Store(env)
    threshold = int(retry * 1000)
    delivered = 0

    def consumer():
        nonlocal delivered
        while True:
            first = yield store.get()
            batch = [first]
            deadline = env.now + 1.0
            while len(batch) < 100:
                if store.items:
                    batch.append((yield store.get()))
                    continue
                get = store.get()
                timeout = env.timeout(deadline - env.now)
                result = yield get | timeout
                if get in result:
                    batch.append(result[get])
                else:
                    get.cancel()
                    break
            for body, attempts in batch:
                delivered += 1
                if attempts == 1 and body % 1000 < threshold:
                    store.put((body, attempts + 1))

    for i in range(n):
        store.put((i, 1))
    env.process(consumer())
    env.run()
    return delivered


def measure(fn, n: int, retry: float, repeat: int) -> dict:
    best = float("inf")
    for _ in range(repeat):
        gc.collect()
        started = time.perf_counter()
        deliveries = fn(n, retry)
        best = min(best, time.perf_counter() - started)
    gc.collect()
    tracemalloc.start()
    fn(n, retry)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return {"deliveries": deliveries, "seconds": best, "per_second": deliveries / best,
            "peak_mib": peak / 2**20}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--retry", type=float, default=0.0)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    ours = measure(run_cdpkit, args.messages, args.retry, args.repeat)
    ref = measure(run_simpy, args.messages, args.retry, args.repeat)
    assert ours["deliveries"] == ref["deliveries"], (ours, ref)
    print(f"{args.messages} messages, retry fraction {args.retry}: {ours['deliveries']} deliveries")
    print(f"{'model':<10}{'best s':>10}{'deliveries/s':>15}{'peak MiB':>11}")
    for name, r in (("cdpkit", ours), ("simpy", ref)):
        print(f"{name:<10}{r['seconds']:>10.3f}{r['per_second']:>15,.0f}{r['peak_mib']:>11.1f}")
    print(f"ratio cdpkit/simpy deliveries per second: {ours['per_second'] / ref['per_second']:.2f}x")


if __name__ == "__main__":
    main()
