"""Capacity simulation speed: cdpkit vs the same model written in SimPy, same run.

Reference scenario (issue 5): Poisson 1000 msg/s into ``commands`` (batch 10, timeout 1 s,
concurrency 10; batch time 5 ms + 1 ms per message; each message fails with p=0.01, retry
delay 5 s, max_retries 3 -> DLQ); acked messages publish to ``events`` (batch 100),
whose consumer calls one of 100 single-threaded actors per message (2 ms each).

    .venv/bin/python bench/bench_simulate.py                 # 100k messages, both models
    .venv/bin/python bench/bench_simulate.py --big           # + 1M messages (cdpkit), 10k re-sim

Prints wall time, speed ratio, and summary statistics side by side (relative difference).
"""

from __future__ import annotations

import argparse
import gc
import random
import resource
import subprocess
import sys
import time

import numpy as np
import simpy

import cdpkit as cdp

RATE = 1000.0


def pipeline() -> cdp.Pipeline:
    p = cdp.Pipeline("reference")
    p.add_source("http", queue="commands")
    p.add_queue("commands", max_batch_size=10, max_batch_timeout=1, max_concurrency=10,
                max_retries=3, dead_letter_queue="commands-dlq")
    p.add_queue("commands-dlq")
    p.add_queue("events", max_batch_size=100, max_batch_timeout=1)
    p.add_consumer("commands", service={"base": 0.005, "per_message": 0.001}, failure=0.01,
                   retry={"policy": "fixed", "base": 5}, publish=["events"])
    p.add_consumer("commands-dlq")
    p.add_consumer("events", calls="Projector")
    p.add_actor("Projector", service=0.002, instances=100)
    return p


def simulate(messages: int, seed: int = 1, semantics: object = "production",
             engine: str = "auto") -> tuple[cdp.Results, dict]:
    """What a user does: simulate and read the summary (production: autoscaled consumers;
    ``engine="auto"``: the compiled engine, which covers this pipeline)."""
    budget = cdp.Budget(messages=max(20_000_000, 3 * messages), memory_bytes=64 * 2**30)
    res = cdp.simulate(pipeline(), cdp.Poisson(rate=RATE), duration=messages / RATE, seed=seed,
                       semantics=semantics, engine=engine, budget=budget)
    return res, res.summary()


def run_cdpkit(messages: int, seed: int = 1, semantics: object = "production", engine: str = "auto") -> dict:
    """:func:`simulate`, plus the statistics compared with SimPy."""
    res, s = simulate(messages, seed, semantics, engine)
    return statistics(res, s) | {"engine": res.engine}


def statistics(res: cdp.Results, s: dict) -> dict:
    b = res.batches
    return {"messages": s["messages"], "acked": s["acked"], "dead_lettered": s["dead_lettered"],
            "mean_batch": s["mean_batch"], "events_mean_batch": b[b["queue"] == "events"]["size"].mean(),
            "wait_mean": s["wait_mean"], "mean_latency": res.end_to_end["latency"].mean(),
            "p50_latency": s["p50_latency"], "p95_latency": s["p95_latency"], "p99_latency": s["p99_latency"]}


class SimpyQueue:
    """The same batching rule: a full batch as soon as a slot is free; a partial one when
    the timeout (started by the first waiting message) has passed and a slot is free."""

    def __init__(self, env, size, timeout, slots, handler):
        self.env, self.size, self.timeout, self.slots, self.handler = env, size, timeout, slots, handler
        self.buf, self.running, self.timer_gen, self.timer_on, self.due = [], 0, 0, False, False
        self.batches = []

    def put(self, msg):
        self.buf.append(msg)
        self.pump()

    def pump(self):
        while self.buf and self.running < self.slots and (self.due or len(self.buf) >= self.size):
            self.due, self.timer_on = False, False
            self.timer_gen += 1
            batch, self.buf = self.buf[:self.size], self.buf[self.size:]
            self.running += 1
            self.batches.append(len(batch))
            self.env.process(self.run(batch))
        if not self.buf:
            self.due = False
        elif not self.timer_on and not self.due:
            self.timer_on = True
            self.env.process(self.timer(self.timer_gen))

    def timer(self, gen):
        yield self.env.timeout(self.timeout)
        if gen == self.timer_gen:
            self.timer_on, self.due = False, True
            self.pump()

    def run(self, batch):
        yield from self.handler(batch)
        self.running -= 1
        self.pump()


def run_simpy(messages: int, seed: int = 1) -> dict:
    env = simpy.Environment()
    rng = random.Random(seed)
    waits, latency, outcome = [], {}, {"acked": 0, "dead_lettered": 0}
    actors = [simpy.Resource(env, capacity=1) for _ in range(100)]

    def commands_handler(batch):
        for msg in batch:
            if msg["attempts"] == 0:
                waits.append(env.now - msg["sent"])
        yield env.timeout(0.005 + 0.001 * len(batch))
        for msg in batch:
            msg["attempts"] += 1
            if rng.random() < 0.01:
                if msg["attempts"] < 4:
                    env.process(delayed(msg, 5))
                else:
                    outcome["dead_lettered"] += 1
                    latency[msg["id"]] = env.now - msg["sent"]
            else:
                outcome["acked"] += 1
                events.put(msg)

    def events_handler(batch):
        for _ in batch:
            with actors[rng.randrange(100)].request() as req:
                yield req
                yield env.timeout(0.002)
        for msg in batch:  # acked when the batch's handler returns, as in Queues
            latency[msg["id"]] = env.now - msg["sent"]

    def delayed(msg, delay):
        yield env.timeout(delay)
        commands.put(msg)

    commands = SimpyQueue(env, 10, 1.0, 10, commands_handler)
    events = SimpyQueue(env, 100, 1.0, 250, events_handler)

    def source():
        for i in range(messages):
            yield env.timeout(rng.expovariate(RATE))
            commands.put({"id": i, "sent": env.now, "attempts": 0})

    env.process(source())
    env.run()
    lat = np.array(list(latency.values()))
    return {"messages": messages, "acked": outcome["acked"], "dead_lettered": outcome["dead_lettered"],
            "mean_batch": float(np.mean(commands.batches)), "events_mean_batch": float(np.mean(events.batches)),
            "wait_mean": float(np.mean(waits)), "mean_latency": float(lat.mean()),
            "p50_latency": float(np.quantile(lat, 0.5)), "p95_latency": float(np.quantile(lat, 0.95)),
            "p99_latency": float(np.quantile(lat, 0.99))}


def timed(fn, *args, repeat: int = 1):
    best, out = float("inf"), None
    for _ in range(repeat):
        gc.collect()
        started = time.perf_counter()
        out = fn(*args)
        best = min(best, time.perf_counter() - started)
    return best, out


def child_peak(messages: int, engine: str) -> None:
    """Run in a fresh process: print the wall time of simulate + summary, of the statistics
    compared with SimPy (DataFrames of batches and end-to-end latency), and peak RSS."""
    started = time.perf_counter()
    res, s = simulate(messages, engine=engine)
    simulated = time.perf_counter()
    statistics(res, s)
    elapsed = time.perf_counter()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{simulated - started:.2f} {elapsed - simulated:.2f} {peak:.0f} {s['messages']}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--big", action="store_true", help="also 1M messages and 10k re-simulation")
    parser.add_argument("--huge", action="store_true", help="also 10M messages (compiled engine)")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--engine", default="auto", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child_peak(args.child, args.engine)
        return
    run_cdpkit(1_000)        # compile (or load the cache of) the compiled engine before timing
    print(f"reference scenario, {args.messages:,} messages (cdpkit best of 3, SimPy best of 3, same run)")
    t_ref, ref = timed(run_simpy, args.messages, repeat=3)
    for engine in ("compiled", "python"):
        # every slot at once (the SimPy model's rule, the former production profile), then autoscaled
        t_slots, ours = timed(run_cdpkit, args.messages, 1, cdp.PRODUCTION_ALL_SLOTS, engine, repeat=3)
        t_ours, auto = timed(run_cdpkit, args.messages, 1, "production", engine, repeat=3)
        print(f"  {engine:>8} all slots:   cdpkit {t_slots:.3f} s   simpy {t_ref:.3f} s   speed ratio "
              f"cdpkit/simpy: {t_ref / t_slots:.2f}x   ({ours['engine']})")
        print(f"  {engine:>8} autoscaling: cdpkit {t_ours:.3f} s   speed ratio cdpkit/simpy: {t_ref / t_ours:.2f}x   "
              f"(p99 {auto['p99_latency']:.3g} s vs {ours['p99_latency']:.3g} s all slots)")
    print(f"  {'statistic':<18}{'cdpkit':>12}{'simpy':>12}{'diff':>9}")
    for key in ref:
        a, b = float(ours[key]), float(ref[key])
        diff = (a - b) / b if b else float("nan")
        print(f"  {key:<18}{a:>12.4g}{b:>12.4g}{diff:>9.1%}")
    if args.big:
        for engine in ("compiled", "python"):
            t10k, _ = timed(run_cdpkit, 10_000, 1, "production", engine, repeat=5)
            print(f"10k-message re-simulation, {engine}: {t10k * 1000:.1f} ms (best of 5)")
        for engine in ("compiled", "python"):
            fresh(1_000_000, engine, 3)
        first_simulation()
    if args.huge:
        fresh(10_000_000, "compiled", 1)


def fresh(messages: int, engine: str, runs: int) -> None:
    """``messages`` simulated in ``runs`` fresh processes: wall time and peak RSS."""
    out = [subprocess.run([sys.executable, __file__, "--child", str(messages), "--engine", engine],
                          capture_output=True, text=True, check=True).stdout.split() for _ in range(runs)]
    wall = sorted(float(o[0]) for o in out)
    print(f"{messages:,} messages, {engine}, simulate + summary ({runs} fresh process{'es' * (runs > 1)}): "
          f"best {wall[0]:.2f} s, worst {wall[-1]:.2f} s; statistics DataFrames "
          f"+{min(float(o[1]) for o in out):.2f} s; peak RSS {max(float(o[2]) for o in out):.0f} MiB")


FIRST = ("import time; t = time.perf_counter(); import cdpkit as cdp; "
         "p = cdp.Pipeline('first'); p.add_source('http', queue='jobs'); p.add_queue('jobs'); "
         "p.add_consumer('jobs', service={'base': 0.01}); "
         "res = cdp.simulate(p, cdp.Poisson(rate=100), duration=60, seed=1); res.summary(); "
         "print(time.perf_counter() - t, res.engine)")


def first_simulation() -> None:
    """The first simulation in a fresh process (import included): with the compiled engine's
    cache as it is (warm after any earlier run), and with an empty cache (cold: it compiles)."""
    import os
    import tempfile
    warm = subprocess.run([sys.executable, "-c", FIRST], capture_output=True, text=True, check=True).stdout
    with tempfile.TemporaryDirectory() as empty:
        cold = subprocess.run([sys.executable, "-c", FIRST], capture_output=True, text=True, check=True,
                              env={**os.environ, "NUMBA_CACHE_DIR": empty}).stdout
    print(f"first simulation in a fresh process (import + 6,000 messages): warm cache {float(warm.split()[0]):.2f} s, "
          f"cold cache {float(cold.split()[0]):.2f} s ({cold.split()[1]})")


if __name__ == "__main__":
    main()
