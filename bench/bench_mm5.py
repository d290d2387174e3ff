"""M/M/5 in four simulators, same process, same run: cdpkit, SimPy, Ciw and queueing-tool.

The classical case: Poisson arrivals at 4/s, exponential service with mean 1 s, 5 servers,
FIFO, ``--customers`` customers (default 100,000, i.e. 25,000 virtual seconds of arrivals).
For each simulator it measures the wall time of one run (simulate + the mean wait; best of
``--repeat``, ``time.perf_counter``), the customers served and the mean wait in queue Wq,
then Wq over ``--seeds`` further seeds (mean and spread), against Erlang C's Wq = 0.5541 s.
Only same-run ratios (``x SimPy`` = SimPy's seconds / the simulator's) mean anything on
the shared, noisy machine.

cdpkit: one queue with ``max_batch_size=1``, ``max_batch_timeout=0``, ``max_concurrency=5``
under ``cdp.PRODUCTION_ALL_SLOTS`` (every slot from the start; "production" autoscales), Wq
= ``summary()["wait_mean"]`` (send to first delivery). cdpkit and SimPy drain after the
arrivals stop; Ciw and queueing-tool stop at the duration (the few customers still in the
system are left out). If ``cdp.simulate`` takes ``engine=``, cdpkit is timed once per
engine ("python", "compiled").

Run:  .venv/bin/python bench/bench_mm5.py [--customers 100000] [--repeat 3] [--seeds 5]
Ciw and queueing-tool are bench-only (not in pyproject.toml); a missing one is skipped:
      .venv/bin/pip install ciw queueing-tool
"""
from __future__ import annotations

import argparse
import inspect
import math
import random
import statistics
import time

import numpy as np

LAM, MU, SERVERS = 4.0, 1.0, 5
ENGINES_SEEN: set[str] = set()   # "asked -> res.engine", to show a fallback


def erlang_c_wq(lam: float, mu: float, c: int) -> float:
    """Theoretical mean wait in queue of M/M/c (Erlang C)."""
    a, rho = lam / mu, lam / (c * mu)
    top = a**c / math.factorial(c) / (1 - rho)
    p_wait = top / (sum(a**k / math.factorial(k) for k in range(c)) + top)
    return p_wait / (c * mu - lam)


def run_cdpkit(duration: float, seed: int, engine: str | None = None) -> tuple[int, float]:
    import cdpkit as cdp

    p = cdp.Pipeline("mm5")
    p.add_source("http", queue="jobs")
    p.add_queue("jobs", max_batch_size=1, max_batch_timeout=0, max_concurrency=SERVERS)
    p.add_consumer("jobs", service={"base": {"exp": 1 / MU}})   # {"exp": mean}
    kw = {} if engine is None else {"engine": engine}
    res = cdp.simulate(p, cdp.Poisson(rate=LAM), duration=duration, seed=seed,
                       semantics=cdp.PRODUCTION_ALL_SLOTS, **kw)
    if engine is not None and seed == 0:
        ENGINES_SEEN.add(f"{engine} -> {getattr(res, 'engine', '(no res.engine)')}")
    s = res.summary()
    return int(s["acked"]), float(s["wait_mean"])



def run_simpy(duration: float, seed: int) -> tuple[int, float]:
    import simpy

    rng = random.Random(seed)
    env = simpy.Environment()
    servers = simpy.Resource(env, capacity=SERVERS)
    waits: list[float] = []

    def customer():
        arrived = env.now
        with servers.request() as req:
            yield req
            waits.append(env.now - arrived)
            yield env.timeout(rng.expovariate(MU))

    def arrivals():
        while True:
            yield env.timeout(rng.expovariate(LAM))
            if env.now > duration:
                return
            env.process(customer())

    env.process(arrivals())
    env.run()          # drains, as cdpkit does
    return len(waits), sum(waits) / len(waits)


def run_ciw(duration: float, seed: int) -> tuple[int, float]:
    import ciw

    ciw.seed(seed)
    net = ciw.create_network(arrival_distributions=[ciw.dists.Exponential(LAM)],
                             service_distributions=[ciw.dists.Exponential(MU)],
                             number_of_servers=[SERVERS])
    sim = ciw.Simulation(net)
    sim.simulate_until_max_time(duration)
    waits = [r.waiting_time for r in sim.get_all_records()]
    return len(waits), sum(waits) / len(waits)


def run_queueing_tool(duration: float, seed: int) -> tuple[int, float]:
    import queueing_tool as qt

    rng = np.random.default_rng(seed)
    q = qt.QueueServer(num_servers=SERVERS, collect_data=True,
                       arrival_f=lambda t: t + rng.exponential(1 / LAM),
                       service_f=lambda t: t + rng.exponential(1 / MU))
    q.set_active()
    q.simulate(t=duration)
    d = q.fetch_data()            # columns: arrival, service start, departure, ...
    done = d[d[:, 2] > 0]         # departure 0 = not served yet
    return len(done), float((done[:, 1] - done[:, 0]).mean())


def available() -> dict:
    """The simulators that import, each a run(duration, seed) function."""
    import cdpkit as cdp

    sims = {}
    if "engine" in inspect.signature(cdp.simulate).parameters:
        for eng in ("python", "compiled"):
            sims[f"cdpkit ({eng})"] = lambda d, s, e=eng: run_cdpkit(d, s, e)
    else:
        sims["cdpkit"] = run_cdpkit
    sims["SimPy"] = run_simpy
    try:
        import ciw  # noqa: F401
        sims["Ciw"] = run_ciw
    except ImportError:
        print("note: Ciw not installed, skipped (.venv/bin/pip install ciw)")
    try:
        if not hasattr(np, "infty"):
            np.infty = np.inf     # queueing-tool 1.2.5 imports numpy.infty, gone in NumPy 2
        import queueing_tool  # noqa: F401
        sims["queueing-tool"] = run_queueing_tool
    except Exception as exc:      # ImportError, or a build that fails on this Python
        print(f"note: queueing-tool unavailable, skipped ({type(exc).__name__}: {exc}); "
              ".venv/bin/pip install queueing-tool")
    return sims


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--customers", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seeds", type=int, default=5)
    args = ap.parse_args()
    duration = args.customers / LAM
    wq_theory = erlang_c_wq(LAM, MU, SERVERS)
    print(f"M/M/{SERVERS}: lambda={LAM:g}/s, mu={MU:g}/s, {duration:,.0f} s of arrivals "
          f"(~{args.customers:,} customers); Erlang C Wq = {wq_theory:.4f} s\n")

    rows, by_seed = {}, {}
    for name, run in available().items():
        try:
            times, out = [], None
            for _ in range(args.repeat):          # same seed each time: same work
                t0 = time.perf_counter()
                out = run(duration, 0)
                times.append(time.perf_counter() - t0)
            rows[name] = (min(times), *out)
            by_seed[name] = [run(duration, s)[1] for s in range(1, args.seeds + 1)]
        except Exception as exc:    # a simulator that breaks must not stop the others
            print(f"note: {name} failed, skipped ({type(exc).__name__}: {exc})")
    for line in sorted(ENGINES_SEEN):
        print(f"cdpkit engine asked -> res.engine: {line}")

    simpy_t = rows.get("SimPy", (math.nan,))[0]
    print(f"{'simulator':<20} {'seconds':>8} {'customers':>10} {'Wq (s)':>8} {'vs theory':>10} "
          f"{'x SimPy':>8}")
    for name, (sec, n, wq) in rows.items():
        print(f"{name:<20} {sec:8.3f} {n:10,d} {wq:8.4f} {100 * (wq / wq_theory - 1):+9.2f}% "
              f"{simpy_t / sec:7.2f}x")

    print(f"\nWq over {args.seeds} seeds (1..{args.seeds}), theory {wq_theory:.4f} s")
    print(f"{'simulator':<20} {'mean':>8} {'sd':>8} {'min':>8} {'max':>8} {'mean vs theory':>15}")
    for name, wqs in by_seed.items():
        sd = statistics.stdev(wqs) if len(wqs) > 1 else 0.0
        m = statistics.fmean(wqs)
        print(f"{name:<20} {m:8.4f} {sd:8.4f} {min(wqs):8.4f} {max(wqs):8.4f} "
              f"{100 * (m / wq_theory - 1):+14.2f}%")


if __name__ == "__main__":
    main()
