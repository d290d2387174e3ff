"""What each fault window did to a simulated run: ``res.incidents()``.

For a window [start, end) of a fault, the *affected queues* are the fault's queue (a queue,
or a consumer's queue) or, for an actor or store, the queues whose spec consumers reach it.
Their *backlog* N(t) counts messages sent to them and not yet finished (waiting, paused,
on a retry delay, or in a running batch), exactly, from the ledger. The *baseline* is the
highest N in the window's length (at least 60 s) before it starts; the queue has *drained*
at the first moment from ``end`` on when N is back at or below the baseline
(``time_to_drain`` = that moment - ``end``; NaN if it never is). The incident's span runs
from ``start`` to the drain (or the end of the run); retries, dead letters, expired
(retention ran out while waiting: lost), purged and other dropped messages on the affected
queues, and the work done anywhere (queue operations, consumer invocations and their
seconds, Durable Object seconds), are counted over that span.

``cost_usd`` prices what the incident *added* over the span, at Cloudflare's list prices
(``cdpkit/data/pricing.yaml``, through :func:`cdpkit.sim.cost.cost_table`; marginal prices,
as if the month's included allowances were already used, so the Workers Paid minimum and
the allowances are left out). The attribution:

* every retry of a message of the affected queues repeats its delivery: one more queue read
  (per 64 KB unit, at the queues' mean message size), and its share of its batch's
  invocation and CPU (a batch's share per message is 1/size of it);
* a dead-lettered message adds its dead letter queue's traffic: the DLQ write, reads and
  delete of the letters sent in the span, and the DLQ consumer's invocations and CPU there;
* a ``slowdown`` of a consumer adds the CPU it stretched (``factor - 1`` times the CPU of
  each batch started in the window, as the fault plan counted it; given only a timeline,
  ``1 - 1/factor`` of those batches' times); of an actor, ``1 - 1/factor`` of its Durable
  Object duration (GB-s of active time, as billed) for the calls that started in the window.

A batch's CPU is taken as its time from delivery to finish: exact for a spec consumer, whose
batch time is CPU; an upper bound for handler code that awaits I/O. Not counted: store
writes and Durable Object calls repeated by a retry (a spec consumer's failing message makes
none; handler code's may make some before it fails, which the ledger does not link to the
message), and storage. :func:`runtime_incidents` makes the same table for a handler-code
run (``rt.apply_faults``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import networkx as nx
import numpy as np
import pandas as pd

from ..errors import ConfigError
from ..runtime.ledger import OUTCOME_CODES
from .cost import active_seconds, cost_table, pricing, queue_operations

if TYPE_CHECKING:
    from ..model.pipeline import Pipeline

COLUMNS = ["fault", "kind", "node", "start", "end", "queues", "baseline", "peak_backlog", "peak_at",
           "drained_at", "time_to_drain", "retried", "dead_lettered", "expired", "purged", "dropped",
           "operations", "invocations", "consumer_seconds", "do_seconds", "cost_usd"]
EXPIRED, PURGED = "retention period expired", "purged"
MIN_LOOKBACK = 60.0


def calls_graph(pipeline: Pipeline) -> nx.DiGraph:
    """Who waits on whom: consumers and actors calling actors and writing stores (a queue
    in between decouples, so publishing is not a call)."""
    g = nx.DiGraph()
    g.add_nodes_from(pipeline.graph)
    g.add_edges_from((a, b) for a, b, kind in pipeline.graph.edges(data="kind")
                     if kind in ("calls", "writes") or (kind == "routes" and pipeline.graph.nodes[b]["kind"] == "actor"))
    return g


def affected_queues(res: Any, node: str) -> list[str]:
    """The queues a fault at ``node`` of ``res`` (a :class:`~cdpkit.sim.results.Results`)
    shows up in."""
    g = res.pipeline.graph
    kind = g.nodes[node]["kind"]
    if kind == "queue":
        return [node]
    if kind == "consumer":
        return [g.nodes[node]["queue"]]
    calls = calls_graph(res.pipeline)
    return sorted({g.nodes[c]["queue"] for c in res.pipeline.nodes("consumer")
                   if res.pipeline.spec(c).handler is None and node in nx.descendants(calls, c)})


def incidents(res: Any) -> pd.DataFrame:
    """One row per fault window of ``res.faults`` (empty without faults); see the module doc.

    Examples
    --------
    >>> import cdpkit as cdp
    >>> p = cdp.Pipeline("d")
    >>> p.add_source("http", queue="jobs")
    >>> p.add_queue("jobs", max_batch_size=10, max_batch_timeout=1)
    >>> p.add_consumer("jobs", service={"per_message": 0.01})
    >>> f = cdp.Faults().add("pause", "jobs", start=10, end=40)
    >>> res = cdp.simulate(p, cdp.Constant(rate=10), duration=60, faults=f)
    >>> row = res.incidents().iloc[0]
    >>> int(row["peak_backlog"]), round(float(row["time_to_drain"]), 1), float(row["cost_usd"])
    (301, 3.3, 0.0)
    """
    if not res.faults:
        return pd.DataFrame(columns=COLUMNS)
    g = res.pipeline.graph

    def bindings(node: str) -> list[str]:
        return [res.pipeline.spec(node).binding] if g.nodes[node]["kind"] == "actor" else []

    plan = getattr(res, "fault_plan", None)
    return _table(res.runtime, res.faults, res.duration, lambda node: affected_queues(res, node), bindings,
                  plan.states if plan is not None else None)


def runtime_incidents(runtime: Any, faults: Any, duration: float | None = None,
                      queues: dict[str, list[str]] | None = None) -> pd.DataFrame:
    """The incident table (as :func:`incidents`) of a handler-code run with
    ``rt.apply_faults(faults)``.

    Parameters
    ----------
    runtime : Runtime
        The runtime, after :meth:`~cdpkit.Runtime.run`.
    faults : Faults or FaultPlan
        The timeline applied (or the plan ``apply_faults`` returned).
    duration : float, optional
        The run's length (default: the runtime's clock now).
    queues : dict, optional
        Actor or store node -> the queues whose consumers call it. Handler code does not
        declare its calls, so by default an actor or store fault shows up in every queue with
        a consumer that is not a dead letter queue.

    Returns
    -------
    pandas.DataFrame
        The columns of :data:`COLUMNS`.

    Raises
    ------
    ConfigError
        For a queue in ``queues`` the runtime does not have.

    Examples
    --------
    >>> import cdpkit as cdp
    >>> rt = cdp.Runtime()
    >>> _ = rt.queue("jobs", max_batch_size=1, max_batch_timeout=0)
    >>> @rt.consumer("jobs")
    ... async def handle(batch, env, ctx):
    ...     batch.ack_all()
    >>> f = cdp.Faults().add("pause", "jobs", start=2, end=5)
    >>> _ = rt.apply_faults(f)
    >>> for t in range(8):
    ...     rt.call_at(t, rt.env.JOBS.send, t)
    >>> rt.run()
    >>> runtime_incidents(rt, f)[["peak_backlog", "peak_at", "drained_at"]].values.tolist()
    [[3.0, 4.0, 5.0]]
    """
    states = getattr(faults, "states", None)        # a FaultPlan: its timeline and what it counted
    faults = getattr(faults, "faults", faults)
    given = dict(queues or {})
    for node, names in given.items():
        unknown = sorted(set(names) - set(runtime.queues))
        if unknown:
            raise ConfigError(f"runtime_incidents: queues[{node!r}]={names!r} is not allowed ({unknown} "
                              f"not declared); allowed: {', '.join(sorted(runtime.queues))}")
    dlqs = {q.settings.dead_letter_queue for q in runtime.queues.values()}
    consumed = sorted(n for n, q in runtime.queues.items() if q.consumer is not None and n not in dlqs)

    def affected(node: str) -> list[str]:
        if node in runtime.queues:
            return [node]
        if node.endswith(".consumer") and node.removesuffix(".consumer") in runtime.queues:
            return [node.removesuffix(".consumer")]
        return sorted(given.get(node, consumed))

    def bindings(node: str) -> list[str]:
        return [b for b, ns in runtime.namespaces.items() if node in (b, ns.class_name)]

    if not faults:
        return pd.DataFrame(columns=COLUMNS)
    return _table(runtime, faults, runtime.clock.now if duration is None else duration, affected, bindings,
                  states)


def _table(rt: Any, faults: Any, duration: float, affected: Any, bindings: Any,
           states: list | None = None) -> pd.DataFrame:
    led = rt.ledger
    queue_col, outcome = led.column("queue"), led.column("outcome")
    sent, finished = led.column("sent"), led.column("finished")
    reasons = np.full(len(led), "", dtype=object)
    if led.drop_reasons:
        reasons[list(led.drop_reasons)] = list(led.drop_reasons.values())
    batches = rt.batches
    calls = rt.actor_calls
    end_of_run = float(np.nanmax(finished)) if len(led) and not np.isnan(finished).all() else duration
    end_of_run = max(end_of_run, duration)
    rows = []
    for i, fault in enumerate(faults, 1):
        queues = affected(fault.node)
        codes = [led.queue_code(q) for q in queues if q in rt.queues]
        mine = np.isin(queue_col, codes)
        times, level = _backlog(sent[mine], finished[mine])
        in_queues = batches["queue"].isin(queues)
        dlqs = sorted({rt.queues[q].settings.dead_letter_queue for q in queues if q in rt.queues} - {None})
        letters = np.isin(queue_col, [led.queue_code(q) for q in dlqs if q in rt.queues])
        for w, (start, end) in enumerate(fault.windows):
            lookback = max(end - start, MIN_LOOKBACK)
            before = (times >= start - lookback) & (times < start)
            baseline = int(max(_at(times, level, start), level[before].max() if before.any() else 0))
            after = np.flatnonzero((times >= end) & (level <= baseline))
            drained = float(times[after[0]]) if len(after) else np.nan
            stop = end_of_run if np.isnan(drained) else max(drained, end)
            span = (times >= start) & (times <= stop)
            if span.any():
                k = int(np.argmax(np.where(span, level, -1)))
                peak, peak_at = int(level[k]), float(times[k])
            else:
                peak, peak_at = _at(times, level, start), start
            peak = max(peak, _at(times, level, start))
            done = (finished >= start) & (finished <= stop)
            dropped = mine & done & (outcome == OUTCOME_CODES["dropped"])
            in_span = (batches["delivered_at"] >= start) & (batches["delivered_at"] <= stop)
            b = batches[in_span]
            c = calls[(calls["started"] >= start) & (calls["started"] <= stop)] if len(calls) else calls
            rows.append({
                "fault": i, "kind": fault.kind, "node": fault.node, "start": start,
                "end": end, "queues": ", ".join(queues), "baseline": baseline,
                "peak_backlog": peak, "peak_at": peak_at, "drained_at": drained,
                "time_to_drain": drained - end,
                "retried": int(batches.loc[in_queues & in_span, "retried"].sum()),
                "dead_lettered": int((mine & done & (outcome == OUTCOME_CODES["dead_lettered"])).sum()),
                "expired": int((dropped & (reasons == EXPIRED)).sum()),
                "purged": int((dropped & (reasons == PURGED)).sum()),
                "dropped": int((dropped & (reasons != EXPIRED) & (reasons != PURGED)).sum()),
                # a write per message sent, a read per delivery, a delete per message finished
                "operations": int(((sent >= start) & (sent <= stop)).sum() + b["size"].sum()
                                  + (done & (outcome != 0)).sum()),
                "invocations": len(b),
                "consumer_seconds": float((b["finished_at"] - b["delivered_at"]).sum()),
                "do_seconds": float((c["finished"] - c["started"]).sum()) if len(c) else 0.0,
                "cost_usd": _price(_added(rt, fault, (start, end, stop), batches[in_queues & in_span],
                                          batches[in_span & batches["queue"].isin(dlqs)],
                                          mine, letters & (sent >= start) & (sent <= stop), calls,
                                          bindings(fault.node),
                                          None if states is None else states[i - 1].added_cpu.get(w, 0.0))),
            })
    return pd.DataFrame(rows, columns=COLUMNS)


def _added(rt: Any, fault: Any, window: tuple[float, float, float], own: pd.DataFrame, dlq: pd.DataFrame,
           mine: np.ndarray, letters: np.ndarray, calls: pd.DataFrame, bindings: list[str],
           slowed_cpu: float | None) -> dict[str, float]:
    """What one fault window added, by pricing item (the attribution of the module doc):
    ``own``: the affected queues' batches in the span, ``dlq``: their dead letter queues',
    ``mine``/``letters``: ledger rows of the affected queues / of the letters sent in the span,
    ``slowed_cpu``: the CPU seconds a consumer slowdown counted it added (None: unknown)."""
    start, end, _ = window
    led = rt.ledger
    sizes = led.column("bytes")
    # queue operations: a read per retry (mean units of the queues' messages), the letters' own
    n = int(mine.sum())
    per_message = queue_operations(sizes[mine], np.zeros(n), np.zeros(n, bool)) / n if n else 1.0
    deliveries, _ = led.deliveries()
    ops = own["retried"].sum() * per_message + queue_operations(
        sizes[letters], deliveries[letters], led.column("outcome")[letters] != 0)
    share = own["retried"] / own["size"].clip(lower=1)       # a batch's work per retried message
    seconds = own["finished_at"] - own["delivered_at"]
    invocations = float(share.sum()) + len(dlq)
    cpu = float((seconds * share).sum() + (dlq["finished_at"] - dlq["delivered_at"]).sum())
    do_seconds = 0.0
    if fault.kind == "slowdown":
        stretch = 1 - 1 / fault.factor       # the part of a stretched time the slowdown added
        if fault.node.endswith(".consumer"):
            slowed = own["delivered_at"].between(start, end, inclusive="left")
            cpu += stretch * float(seconds[slowed].sum()) if slowed_cpu is None else slowed_cpu
        if bindings and len(calls):
            hit = calls[calls["binding"].isin(bindings) & (calls["started"] >= start) & (calls["started"] < end)]
            do_seconds = stretch * active_seconds(hit, rt.clock.now)
    return {"queues_operations": float(ops), "workers_requests": invocations, "workers_cpu_ms": 1000 * cpu,
            "do_duration_gb_s": do_seconds * pricing()["do_memory_gb"]}


def _price(used: dict[str, float]) -> float:
    """Dollars for ``used`` at the list price per unit (a rate item's ``run_cost`` is its
    quantity times its price, whatever the duration; allowances and the minimum left out)."""
    table = cost_table(used, duration=1.0, plan="paid")
    return float(table.loc[table["item"].isin(list(used)), "run_cost"].sum())


def _backlog(sent: np.ndarray, finished: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """N(t) after each event (+1 at a send, -1 at a finish), at the event times, sorted
    (at equal times, finishes first)."""
    done = finished[~np.isnan(finished)]
    times = np.concatenate([done, sent])
    steps = np.concatenate([-np.ones(len(done), np.int64), np.ones(len(sent), np.int64)])
    if not len(times):          # no message in these queues: no backlog at any time
        return times, steps
    order = np.lexsort((steps, times))
    times, level = times[order], np.cumsum(steps[order])
    last = np.r_[times[1:] != times[:-1], True]     # the level once a moment's events are done
    return times[last], level[last]


def _at(times: np.ndarray, level: np.ndarray, t: float) -> int:
    """N just after time ``t``."""
    i = np.searchsorted(times, t, side="right") - 1
    return int(level[i]) if i >= 0 else 0
