"""``cdp.tune``: the cheapest configuration that meets a service-level objective, with the
evidence, found with far fewer simulated messages than the full grid.

The question: over every combination of ``knobs``, which configuration has the lowest
``objective`` (default ``monthly_cost``) while every ``slo`` bound holds on **every** seed?
A configuration's objective is its *worst* seed's (what you must budget for), and it passes
only if each bound holds on each seed (no averaging a bad seed away). :func:`tune` answers
exactly what the exhaustive grid (``method="grid"``: every configuration, every seed, full
runs) answers, by pruning only where a rule is sound:

1. **Short runs** (rung 0): every configuration runs the first ``short`` of the duration on the
   first seed (arrivals stop there, no drain). It is the *same history* as the full run up to
   that time (same seeds, same arrivals, the fault timeline applied; ``tests/test_tune.py``
   checks it row for row), so what it shows is final:

   * a latency percentile bound ``pQ_latency <= X``: arrivals already over ``X`` (finished
     late, or still unfinished and older than ``X``) stay over ``X``; if they are more than
     the top ``1 - Q`` of the most arrivals the full run can have, the percentile is over ``X``;
   * an outcome-share bound (``dead_lettered <= b``): messages already dead-lettered stay so;
     over ``b`` times the most messages the entry queues can get (sources only), it fails;
   * ``retries`` and ``errors`` only grow.

   Other figures (``time_to_drain``, ``max_backlog``, ``throughput``, incident figures,
   ``>=`` bounds) are *not* judged on short runs: a short run saying little about them is
   not evidence. "A short run already dead-letters more than the bound" is not used as such
   (a share can fall as more messages arrive); only the counting argument above is.
   Short runs also estimate each configuration's objective, which orders the next stage
   (an order, never a verdict).
2. **Racing on full runs** (rung 1), cheapest estimate first, one seed at a time: a
   configuration is dropped as soon as one seed misses a bound (it cannot pass on all
   seeds), or as soon as its worst seed so far costs more than a configuration that passed
   on all seeds (its worst seed can only be worse). Ties go to the earlier configuration in
   grid order, in both methods.

Both rules are sound, so the answer equals the grid's; what is saved depends on how many
configurations miss early or cost more than the answer (``bench/bench_tune.py`` measures it).

>>> import cdpkit as cdp
>>> p = cdp.Pipeline("t")
>>> p.add_source("http", queue="jobs")
>>> p.add_queue("jobs", max_batch_size=10, max_batch_timeout=1, max_concurrency=1)
>>> p.add_consumer("jobs", service={"base": 0.05, "per_message": 0.002})
>>> t = cdp.tune(p, cdp.Poisson(rate=40), slo={"p99_latency": 2.0},
...              knobs={"jobs.max_batch_size": [1, 5, 20, 50]}, duration=30, seeds=2, progress=False)
>>> t.best.settings
{'jobs.max_batch_size': 50}
>>> t.table["status"].tolist()
['rejected', 'beaten', 'beaten', 'best']
"""

from __future__ import annotations

import datetime
import difflib
import math
import numbers
from collections import deque
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..errors import ConfigError
from ..model.faults import Faults, as_faults
from ..model.pipeline import Pipeline
from ..model.workload import Arrivals, Workload
from ..runtime.ledger import OUTCOME_CODES
from .draws import workload_rng
from .incidents import COLUMNS as INCIDENT_COLUMNS
from .simulate import simulate
from .sweep import _bar

__all__ = ["tune", "Tuning", "Best", "FIGURES"]

SHARES = tuple(OUTCOME_CODES)          # outcome counts are bounded as shares of `messages`
SUMMARY = ("messages", *SHARES, "retries", "throughput", "wait_mean", "p50_latency", "p95_latency",
           "p99_latency", "mean_batch", "max_backlog", "time_to_drain", "errors")
COSTS = ("run_cost", "monthly_cost")
INCIDENT = tuple(f"incident.{c}" for c in INCIDENT_COLUMNS[6:])   # the worst fault window's
FIGURES = (*SUMMARY, *COSTS, *INCIDENT)
GROWING = ("retries", "errors")        # counts that only grow: a short run's is a lower bound
UNITS = {"p50_latency": " s", "p95_latency": " s", "p99_latency": " s", "time_to_drain": " s",
         "wait_mean": " s", "incident.time_to_drain": " s"}
METHODS = ("halving", "grid")


@dataclass
class Bound:
    """``figure <= value`` (``op="<="``) or ``figure >= value``."""

    figure: str
    op: str
    value: float

    def holds(self, x: float) -> bool:
        if x is None or (isinstance(x, float) and math.isnan(x)):
            return False             # nothing measured is no evidence
        return x <= self.value if self.op == "<=" else x >= self.value

    def text(self, x: float) -> str:
        sign = ("≤" if self.holds(x) else ">") if self.op == "<=" else ("≥" if self.holds(x) else "<")
        return f"{self.figure} {_fmt(self.figure, x)} {sign} {_fmt(self.figure, self.value)}"

    def worst(self, values: list[float]) -> float:
        values = [np.inf if v is None or math.isnan(v) else v for v in values] if self.op == "<=" else \
                 [-np.inf if v is None or math.isnan(v) else v for v in values]
        return max(values) if self.op == "<=" else min(values)


@dataclass
class Best:
    """The answer: ``settings`` (knob -> value), the ``figures`` that justify it (each SLO
    figure and the objective, worst over ``seeds``) and ``why``, the provenance line."""

    settings: dict[str, Any]
    figures: dict[str, float]
    seeds: list[int]
    why: str


@dataclass
class Tuning:
    """What :func:`tune` found: :attr:`best` (None if nothing meets the SLO), :attr:`table`
    (every configuration: how far it went, why it was rejected), :attr:`front` (objective vs
    the main SLO figure, Pareto-optimal configurations) and :meth:`plot`."""

    pipeline_name: str
    slo: list[Bound]
    objective: str
    knobs: list[str]
    seeds: list[int]
    table: pd.DataFrame
    best: Best | None
    messages: int                     # simulated messages, every run
    runs: int
    method: str = "halving"

    @property
    def front(self) -> pd.DataFrame:
        """Configurations run in full on every seed that no other beats on both the objective
        and the main (first) SLO figure (worst seed's values), cheapest first."""
        main = self.slo[0]
        done = self.table[self.table["seeds_run"] == len(self.seeds)]
        done = done.sort_values([self.objective, main.figure], ascending=[True, main.op == "<="])
        keep, best_main = [], None
        for i, row in done.iterrows():
            x = row[main.figure]
            if best_main is None or (x < best_main if main.op == "<=" else x > best_main):
                keep.append(i)
                best_main = x
        return done.loc[keep, [*self.knobs, self.objective, main.figure, "status"]]

    @property
    def closest(self) -> pd.DataFrame:
        """When nothing passes: configurations by how far they miss (the largest ratio of a
        missed figure to its bound), with which bound each misses."""
        table = self.table.copy()
        table = table[table["status"] != "error"]
        return table.sort_values(["miss", "seeds_run"], ascending=[True, False])[
            [*self.knobs, "miss", "reason", "stage", "seeds_run"]].head(5)

    def plot(self, ax: Any = None) -> Any:
        """The front: objective vs the main SLO figure for every configuration run in full
        (worst seed), the Pareto front as a line, the bound and the answer marked."""
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(7, 4))
        main = self.slo[0]
        done = self.table[self.table["seeds_run"] > 0]
        ok = done["status"].isin(["best", "passed"])
        ax.scatter(done.loc[~ok, main.figure], done.loc[~ok, self.objective], c="0.7", label="misses a bound")
        ax.scatter(done.loc[ok, main.figure], done.loc[ok, self.objective], c="C0", label="meets the SLO")
        front = self.front
        ax.plot(front[main.figure], front[self.objective], "-", c="C0", alpha=0.6, label="Pareto front")
        ax.axvline(main.value, ls="--", c="C3", label=f"bound {main.figure} {main.op} {main.value:g}")
        if self.best is not None:
            ax.scatter([self.best.figures[main.figure]], [self.best.figures[self.objective]], s=160,
                       facecolors="none", edgecolors="C3", linewidths=2, label="best")
        ax.set_xlabel(f"{main.figure} (worst seed)")
        ax.set_ylabel(f"{self.objective} (worst seed)")
        ax.set_title(f"{self.pipeline_name}: {len(self.table)} configurations, {self.runs} runs")
        ax.legend(fontsize=8)
        return ax

    def __repr__(self) -> str:
        head = f"<Tuning {self.pipeline_name!r}: "
        tail = (f"; {len(self.table)} configurations, {self.runs} runs, "
                f"{self.messages:,} simulated messages>")
        if self.best is None:
            close = self.closest.iloc[0] if len(self.closest) else None
            near = ("" if close is None else " closest " + ", ".join(f"{k}={_plain(close[k])!r}" for k in self.knobs)
                    + f" misses {close['reason']}")
            return head + "no configuration meets the SLO;" + near + tail
        settings = ", ".join(f"{k}={_plain(v)!r}" for k, v in self.best.settings.items())
        return head + f"{settings} ({self.best.why})" + tail


def _plain(value: Any) -> Any:
    """A numpy scalar as the Python value (for reprs and ``Pipeline.set``)."""
    return value.item() if hasattr(value, "item") else value


class _Prefix(Workload):
    """The first ``until`` seconds of ``inner``'s arrivals over ``full`` seconds: exactly the
    arrivals the full run has before ``until`` (drawn for the full duration, then cut)."""

    def __init__(self, inner: Workload, full: float) -> None:
        self.inner, self.full = inner, full
        self.types, self.size = inner.types, inner.size
        self.drawn: Arrivals | None = None

    def arrivals(self, duration: float, rng: np.random.Generator) -> Arrivals:
        a = self.drawn = self.inner.arrivals(self.full, rng)
        keep = a.times < duration
        return Arrivals(a.times[keep], a.types[keep], a.sizes[keep], a.type_names)


def tune(pipeline: Pipeline, workload: Workload, slo: dict[str, Any], knobs: dict[str, Any],
         objective: str = "monthly_cost", duration: float = 60.0, seeds: int | list[int] = 3,
         faults: Faults | list | str | None = None, executor: Executor | Any = None,
         progress: bool = True, semantics: str = "production", short: float = 0.25,
         method: str = "halving", steps: int = 5) -> Tuning:
    """The configuration of ``knobs`` with the lowest ``objective`` that meets ``slo`` on
    every seed (see the module docstring for the search and why its pruning is sound).

    Parameters
    ----------
    pipeline : Pipeline
        The design to tune.
    workload : Workload
        The traffic (a spike: :class:`~cdpkit.Piecewise`).
    slo : dict
        Figure -> bound: a number means ``figure <= bound``; ``(">=", x)`` a lower bound.
        Figures: every ``res.summary()`` figure (``p99_latency``, ``time_to_drain``,
        ``max_backlog``, ...; the outcome counts ``acked``, ``dead_lettered``, ``dropped`` are
        bounded as *shares* of ``messages``), ``run_cost``, ``monthly_cost``, and with
        ``faults`` the worst fault window's ``incident.<column>`` of ``res.incidents()``
        (``incident.time_to_drain``, ``incident.dead_lettered``, ...). The first is the
        *main* figure of :attr:`Tuning.front`.
    knobs : dict
        ``Pipeline.set`` key -> values: a list, a ``range``, or ``(lo, hi)`` (``steps`` values
        from lo to hi, geometric when lo > 0, whole numbers for integer ends). Every value is
        checked by ``pipeline.set`` before anything runs.
    objective : str
        The figure to minimise (worst seed), default ``"monthly_cost"``.
    duration : float
        Virtual seconds of traffic per full run (runs drain after it).
    seeds : int or list of int
        ``n`` (seeds 0..n-1) or the seeds; a bound must hold on each.
    faults
        A fault timeline every run goes through (``cdp.Faults``, a list, a YAML file).
    executor
        Any ``concurrent.futures.Executor`` or a ``dask.distributed`` client; None: in-process.
        Runs are deterministic per seed, so the answer does not depend on it.
    progress : bool
        A tqdm bar over runs.
    short : float
        The share of ``duration`` short runs simulate (at least past every fault's start).
    method : {"halving", "grid"}
        ``"grid"`` runs everything in full (the reference the tests compare with).
    steps : int
        How many values a ``(lo, hi)`` knob takes.

    Returns
    -------
    Tuning
        ``best`` (None if nothing meets the SLO: then ``closest`` says which bounds the
        nearest configurations miss), ``table``, ``front``, ``plot()``.

    Raises
    ------
    ConfigError
        An unknown figure (naming the nearest), a knob value ``pipeline.set`` refuses, or a
        bad argument.

    Examples
    --------
    >>> import cdpkit as cdp
    >>> p = cdp.Pipeline("t")
    >>> p.add_source("http", queue="jobs")
    >>> p.add_queue("jobs")
    >>> p.add_consumer("jobs")
    >>> cdp.tune(p, cdp.Poisson(rate=1), slo={"p99_latncy": 1}, knobs={"jobs.max_batch_size": [1]})
    Traceback (most recent call last):
    ...
    cdpkit.errors.ConfigError: tune: slo figure 'p99_latncy' is not allowed (did you mean 'p99_latency'?); allowed: messages, acked, dead_lettered, dropped, rejected, in_flight, retries, throughput, wait_mean, p50_latency, p95_latency, p99_latency, mean_batch, max_backlog, time_to_drain, errors, run_cost, monthly_cost, incident.baseline, ...
    """
    bounds = _bounds(slo, faults is not None)
    if objective not in FIGURES:
        raise ConfigError(f"tune: objective={objective!r} is not allowed{_near(objective)}; allowed: "
                          "a figure to minimise, e.g. 'monthly_cost'")
    if method not in METHODS:
        raise ConfigError(f"tune: method={method!r} is not allowed; allowed: 'halving', 'grid'")
    if isinstance(short, bool) or not isinstance(short, numbers.Real) or not 0 < short <= 1:
        raise ConfigError(f"tune: short={short!r} is not allowed; allowed: a share of duration, 0 < short <= 1")
    seeds = _seeds(seeds)
    grid = expand_knobs(knobs, steps)
    configs = [dict(zip(grid, combo)) for combo in _product(list(grid.values()))]
    for config in configs:            # every value checked (pipeline.set validates) before any run
        p = pipeline
        for key, value in config.items():
            p = p.set(key, value)
        p.validate()
    faults = as_faults(faults)
    if faults is None and pipeline.faults:
        faults = pipeline.faults
    if executor is not None and hasattr(executor, "get_executor"):   # a dask.distributed Client
        executor = executor.get_executor()
    seeds = _busiest_first(pipeline, workload, duration, seeds)
    job = _Job(pipeline, workload, duration, semantics, faults, bounds, objective)
    search = _Search(job, configs, seeds, executor, _bar(len(configs) * (len(seeds) + 1), progress))
    try:
        if method == "halving":
            until = _short_until(duration, short, faults)
            if until is not None:
                search.screen(until)
        search.race(grid_mode=method == "grid")
    finally:
        search.bar.close()
    return search.result(pipeline.name, list(grid), method)


# -- arguments ---------------------------------------------------------------------------
def _near(name: str) -> str:
    near = difflib.get_close_matches(str(name), FIGURES, n=1)
    return f" (did you mean {near[0]!r}?)" if near else ""


def _bounds(slo: Any, with_faults: bool) -> list[Bound]:
    if not isinstance(slo, dict) or not slo:
        raise ConfigError(f"tune: slo={slo!r:.80} is not allowed; allowed: a dict of figure -> bound, "
                          "e.g. {'p99_latency': 5, 'dead_lettered': 0.001}")
    out = []
    for figure, spec in slo.items():
        if figure not in FIGURES:
            shown = ", ".join(FIGURES[:FIGURES.index("incident.baseline") + 1])
            raise ConfigError(f"tune: slo figure {figure!r} is not allowed{_near(figure)}; allowed: {shown}, ...")
        if figure.startswith("incident.") and not with_faults:
            raise ConfigError(f"tune: slo figure {figure!r} is not allowed without faults=; allowed: "
                              "summary figures, or give a fault timeline")
        op, value = ("<=", spec) if not isinstance(spec, (tuple, list)) else (tuple(spec) + (None,))[:2]
        if op not in ("<=", ">=") or isinstance(value, bool) or not isinstance(value, numbers.Real) \
                or not math.isfinite(value):
            raise ConfigError(f"tune: slo[{figure!r}]={spec!r} is not allowed; allowed: a number (an upper "
                              "bound) or ('>=', number) / ('<=', number)")
        out.append(Bound(figure, op, float(value)))
    return out


def _seeds(seeds: Any) -> list[int]:
    if isinstance(seeds, numbers.Integral) and not isinstance(seeds, bool) and seeds >= 1:
        return list(range(int(seeds)))
    if isinstance(seeds, (list, tuple, range)) and seeds and all(
            isinstance(s, numbers.Integral) and not isinstance(s, bool) and s >= 0 for s in seeds) \
            and len(set(seeds)) == len(seeds):
        return [int(s) for s in seeds]
    raise ConfigError(f"tune: seeds={seeds!r} is not allowed; allowed: a count >= 1 or a list of "
                      "distinct ints >= 0")


def expand_knobs(knobs: Any, steps: int = 5) -> dict[str, list]:
    """Each knob's values: a list as given, a ``range`` listed, ``(lo, hi)`` as ``steps``
    values from lo to hi (geometric if lo > 0; whole numbers if both ends are).

    >>> expand_knobs({"q.max_batch_size": (5, 100), "q.consumer.parallel": [False, True]})
    {'q.max_batch_size': [5, 11, 22, 47, 100], 'q.consumer.parallel': [False, True]}
    """
    if not isinstance(knobs, dict) or not knobs:
        raise ConfigError(f"tune: knobs={knobs!r:.80} is not allowed; allowed: a dict of "
                          "'<node>.<setting>' -> list, range or (lo, hi)")
    out = {}
    for key, values in knobs.items():
        if isinstance(values, range):
            values = list(values)
        elif isinstance(values, tuple) and len(values) == 2 and all(
                isinstance(v, numbers.Real) and not isinstance(v, bool) for v in values):
            lo, hi = values
            if not lo <= hi:
                raise ConfigError(f"tune: knobs[{key!r}]={values!r} is not allowed; allowed: (lo, hi) with lo <= hi")
            grid = np.geomspace(lo, hi, steps) if lo > 0 else np.linspace(lo, hi, steps)
            whole = all(isinstance(v, numbers.Integral) for v in values)
            values = list(dict.fromkeys(int(round(v)) if whole else float(v) for v in grid))
        if not isinstance(values, (list, tuple)) or not values:
            raise ConfigError(f"tune: knobs[{key!r}]={values!r} is not allowed; allowed: a non-empty "
                              "list, a range, or (lo, hi)")
        out[key] = list(values)
    return out


def _busiest_first(pipeline: Pipeline, workload: Workload, duration: float, seeds: list[int]) -> list[int]:
    """The seeds, those drawing the most arrivals first (drawn as simulate draws them): the
    busiest seed is usually every configuration's worst, so it rejects or beats soonest.
    (Only an order: the answer does not depend on it.)"""
    def arrivals(seed: int) -> int:
        return len(workload.arrivals(duration, workload_rng(seed)))

    return sorted(seeds, key=lambda s: (-arrivals(s), seeds.index(s)))


def _product(lists: list[list]) -> list[tuple]:
    import itertools
    return list(itertools.product(*lists))


def _short_until(duration: float, short: float, faults: Faults | None) -> float | None:
    """How long short runs are: ``short`` of the run, and past every fault window's start
    (a short run carries the same fault timeline); None if that is the whole run."""
    until = short * duration
    if faults:
        until = max(until, max(f.windows[-1][0] for f in faults) + 1.0)
    return until if until < duration else None


def _fmt(figure: str, x: float) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    if figure in SHARES:
        return f"{100 * x:.3g} %"
    if figure in COSTS:
        return f"${x:,.2f}"
    return f"{x:.3g}{UNITS.get(figure, '')}"


# -- one run -----------------------------------------------------------------------------
@dataclass
class _Job:
    """Everything a run needs, sent to the executor with a configuration and a seed."""

    pipeline: Pipeline
    workload: Workload
    duration: float
    semantics: str
    faults: Faults | None
    bounds: list[Bound]
    objective: str

    def configured(self, config: dict[str, Any]) -> Pipeline:
        p = self.pipeline
        for key, value in config.items():
            p = p.set(key, value)
        return p

    def full(self, config: dict[str, Any], seed: int) -> dict[str, Any]:
        """A full run's figures (outcome counts as shares), and how many messages it simulated."""
        res = simulate(self.configured(config), self.workload, self.duration, seed=seed,
                       semantics=self.semantics, faults=self.faults)
        summary = res.summary().to_dict()
        out = {k: float(v) for k, v in summary.items()}
        for name in SHARES:
            out[name] = summary[name] / summary["messages"] if summary["messages"] else 0.0
        cost = res.cost()
        out["run_cost"] = float(cost["run_cost"].sum())
        out["monthly_cost"] = float(cost["monthly_cost"].sum())
        if self.faults:
            inc = res.incidents()
            for name in INCIDENT:
                column = inc[name.split(".", 1)[1]]
                out[name] = float(column.max()) if len(column) else float("nan")
        out["simulated"] = len(res.runtime.ledger)
        return out

    def short(self, config: dict[str, Any], seed: int, until: float) -> dict[str, Any]:
        """A short run (the full run's history up to ``until``): which bounds it shows
        missed for sure (figure -> evidence), its objective estimate, messages simulated."""
        p = self.configured(config)
        load = _Prefix(self.workload, self.duration)
        res = simulate(p, load, until, seed=seed, semantics=self.semantics, faults=self.faults, drain=False)
        full = load.drawn
        summary = res.summary()
        missed: dict[str, tuple[float, str]] = {}
        for b in self.bounds:
            if b.op != "<=":
                continue
            if b.figure.endswith("_latency") and b.figure[1:3].isdigit():
                q = int(b.figure[1:3]) / 100
                n = len(full)                     # the most arrivals the full run can have
                late = _certainly_over(res, b.value, until)
                need = n - math.floor(q * (n - 1))
                if n and late >= need:
                    missed[b.figure] = (late / need * b.value,
                                        f"{b.figure} > {_fmt(b.figure, b.value)} (short run: {late:,} of at "
                                        f"most {n:,} arrivals already over it by t={until:g}s)")
            elif b.figure in SHARES and b.figure != "in_flight":   # final outcomes only
                most = _most_entry_messages(p, full)
                count = summary[b.figure]
                if most and count / most > b.value:
                    missed[b.figure] = (count / most, f"{b.figure} > {_fmt(b.figure, b.value)} (short run: "
                                        f"{count:,} of at most {most:,} messages by t={until:g}s)")
            elif b.figure in GROWING and summary[b.figure] > b.value:
                missed[b.figure] = (float(summary[b.figure]),
                                    f"{b.figure} > {b.value:g} (short run: {summary[b.figure]:,} by t={until:g}s)")
        cost = res.cost()
        estimate = {"monthly_cost": float(cost["monthly_cost"].sum()), "run_cost": float(cost["run_cost"].sum())}
        value = estimate.get(self.objective, float(summary.get(self.objective, np.nan)))
        return {"missed": missed, "estimate": value, "simulated": len(res.runtime.ledger)}


def _certainly_over(res: Any, limit: float, until: float) -> int:
    """Arrivals whose end-to-end latency in the full run is certainly over ``limit``: one of
    their messages finished more than ``limit`` after the arrival, or is unfinished at
    ``until`` and already older than that (it can only finish later)."""
    frame = res.end_to_end
    last = np.where(frame["unfinished"].to_numpy() > 0, until, frame["last"].to_numpy())
    return int(np.count_nonzero(last - frame["origin_time"].to_numpy() > limit))


def _most_entry_messages(p: Pipeline, arrivals: Arrivals) -> int | None:
    """The most messages the entry queues can get over the full run: what the sources send
    (their types, share <= 1); None if anything else sends to an entry queue."""
    g = p.graph
    entry = {p.spec(s).queue for s in p.nodes("source")}
    for _, b, kind in g.edges(data="kind"):
        if b in entry and kind != "sends":
            return None
    total = 0
    for s in p.nodes("source"):
        types = p.spec(s).types
        codes = [arrivals.type_names.index(t) for t in types or [] if t in arrivals.type_names]
        total += len(arrivals) if not types else int(np.isin(arrivals.types, codes).sum())
    return total


def _run(job: _Job, kind: str, config: dict, seed: int, until: float | None) -> dict:
    return job.full(config, seed) if kind == "full" else job.short(config, seed, until)


# -- the search --------------------------------------------------------------------------
class _Search:
    def __init__(self, job: _Job, configs: list[dict], seeds: list[int], executor: Any, bar: Any) -> None:
        self.job, self.configs, self.seeds, self.executor, self.bar = job, configs, seeds, executor, bar
        n = len(configs)
        self.stage = ["-"] * n
        self.status = ["pending"] * n
        self.reason = [""] * n
        self.miss = [np.inf] * n
        self.estimate = [np.nan] * n
        self.per_seed: list[list[dict]] = [[] for _ in range(n)]
        self.messages = [0] * n
        self.runs = 0
        self.best: int | None = None
        self.best_value = np.inf

    def _submit(self, kind: str, i: int, seed: int, until: float | None = None) -> Any:
        args = (self.job, kind, self.configs[i], seed, until)
        if self.executor is None:
            return _Done(_run(*args))
        return self.executor.submit(_run, *args)

    def _took(self, i: int, out: dict) -> None:
        self.messages[i] += out["simulated"]
        self.runs += 1
        self.bar.update()

    def screen(self, until: float) -> None:
        """Rung 0: a short run per configuration on the first seed."""
        futures = [self._submit("short", i, self.seeds[0], until) for i in range(len(self.configs))]
        for i, future in enumerate(futures):
            out = future.result()
            self._took(i, out)
            self.stage[i], self.estimate[i] = "short", out["estimate"]
            if out["missed"]:
                self.status[i] = "rejected"
                self.reason[i] = "; ".join(text for _, text in out["missed"].values())
                self.miss[i] = max(self._ratio(b.figure, v) for b in self.job.bounds
                                   for f, (v, _) in out["missed"].items() if f == b.figure)

    def _ratio(self, figure: str, x: float) -> float:
        b = next(b for b in self.job.bounds if b.figure == figure)
        if b.op == "<=":
            return x / b.value if b.value > 0 else (np.inf if x > 0 else 1.0)
        return b.value / x if x > 0 else np.inf

    def race(self, grid_mode: bool) -> None:
        """Rung 1: full runs, seed after seed, the cheapest estimate first (grid: everything)."""
        alive = [i for i in range(len(self.configs)) if self.status[i] == "pending"]
        order = sorted(alive, key=lambda i: (np.nan_to_num(self.estimate[i], nan=np.inf), i))
        waiting = deque(order)
        width = 1 if self.executor is None else max(1, int(getattr(self.executor, "_max_workers", 4) or 4))
        running: deque[tuple[int, int, Any]] = deque()      # (config, seed index, future), FIFO

        def start(i: int, k: int) -> None:
            running.append((i, k, self._submit("full", i, self.seeds[k])))

        while waiting or running:
            while waiting and len(running) < width:
                start(waiting.popleft(), 0)
            if not running:
                break
            i, k, future = running.popleft()        # in submission order: deterministic decisions
            out = future.result()
            self._took(i, out)
            self.stage[i] = "full"
            self.per_seed[i].append(out)
            if self.status[i] != "pending":
                continue
            missed = [b for b in self.job.bounds if not b.holds(out[b.figure])]
            if missed and not grid_mode:
                self._reject(i, f"seed {self.seeds[k]}: " + "; ".join(b.text(out[b.figure]) for b in missed))
                continue
            if not grid_mode and self._beaten(i):
                continue
            if k + 1 < len(self.seeds):
                start(i, k + 1)
                continue
            self._finish(i)

    def _worst(self, i: int, figure: str) -> float:
        values = [r[figure] for r in self.per_seed[i]]
        bound = next((b for b in self.job.bounds if b.figure == figure), None)
        return bound.worst(values) if bound else max(values)

    def _beaten(self, i: int) -> bool:
        """Its worst seed so far already costs more than (or as much as, later in grid order)
        a configuration that passed on every seed: it cannot be the answer."""
        if self.best is None or not self.per_seed[i]:
            return False
        value = self._worst(i, self.job.objective)
        if value > self.best_value or (value == self.best_value and i > self.best):
            self._reject(i, f"{self.job.objective} {_fmt(self.job.objective, value)} (worst seed so far) ≥ "
                            f"the best's {_fmt(self.job.objective, self.best_value)}", beaten=True)
            return True
        return False

    def _reject(self, i: int, why: str, beaten: bool = False) -> None:
        self.status[i], self.reason[i] = ("beaten" if beaten else "rejected"), why
        if not beaten:
            self.miss[i] = max((self._ratio(b.figure, b.worst([r[b.figure] for r in self.per_seed[i]]))
                                for b in self.job.bounds
                                if not all(b.holds(r[b.figure]) for r in self.per_seed[i])), default=np.inf)

    def _finish(self, i: int) -> None:
        """Every seed run: it passes if each bound held on each seed (grid mode judges here)."""
        runs = self.per_seed[i]
        missed = [b for b in self.job.bounds if not all(b.holds(r[b.figure]) for r in runs)]
        if missed:
            self._reject(i, "; ".join(b.text(b.worst([r[b.figure] for r in runs])) for b in missed))
            return
        self.status[i], self.miss[i] = "passed", 0.0
        value = self._worst(i, self.job.objective)
        if value < self.best_value or (value == self.best_value and (self.best is None or i < self.best)):
            if self.best is not None:
                self.status[self.best] = "passed"
            self.best, self.best_value = i, value
            self.status[i] = "best"

    def result(self, name: str, knobs: list[str], method: str) -> Tuning:
        rows = []
        figures = list(dict.fromkeys([*(b.figure for b in self.job.bounds), self.job.objective]))
        for i, config in enumerate(self.configs):
            row = dict(config)
            row.update(status=self.status[i] if self.status[i] != "pending" else "not run",
                       stage=self.stage[i], seeds_run=len(self.per_seed[i]), reason=self.reason[i],
                       miss=self.miss[i], estimate=self.estimate[i], messages=self.messages[i])
            for figure in figures:
                row[figure] = self._worst(i, figure) if self.per_seed[i] else np.nan
            rows.append(row)
        table = pd.DataFrame(rows)
        best = None
        if self.best is not None:
            i = self.best
            values = {f: self._worst(i, f) for f in figures}
            stamp = datetime.date.today().isoformat()
            held = ", ".join(b.text(values[b.figure]) for b in self.job.bounds)
            why = (f"tuned {stamp}: {held} over {len(self.seeds)} seeds"
                   + (f", {_fmt(self.job.objective, values[self.job.objective])}/month"
                      if self.job.objective == "monthly_cost"
                      else f", {self.job.objective} {_fmt(self.job.objective, values[self.job.objective])}"))
            best = Best(dict(self.configs[i]), values, sorted(self.seeds), why)
        return Tuning(name, self.job.bounds, self.job.objective, knobs, sorted(self.seeds), table, best,
                      sum(self.messages), self.runs, method)


class _Done:
    """An in-process result, shaped like a future."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def result(self) -> Any:
        return self.value
