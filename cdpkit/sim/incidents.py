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
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import networkx as nx
import numpy as np
import pandas as pd

from ..runtime.ledger import OUTCOME_CODES

if TYPE_CHECKING:
    from ..model.pipeline import Pipeline

COLUMNS = ["fault", "kind", "node", "start", "end", "queues", "baseline", "peak_backlog", "peak_at",
           "drained_at", "time_to_drain", "retried", "dead_lettered", "expired", "purged", "dropped",
           "operations", "invocations", "consumer_seconds", "do_seconds"]
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
    >>> int(row["peak_backlog"]), round(float(row["time_to_drain"]), 1)
    (301, 3.3)
    """
    faults = res.faults
    if not faults:
        return pd.DataFrame(columns=COLUMNS)
    rt = res.runtime
    led = rt.ledger
    queue_col, outcome = led.column("queue"), led.column("outcome")
    sent, finished = led.column("sent"), led.column("finished")
    reasons = np.full(len(led), "", dtype=object)
    if led.drop_reasons:
        reasons[list(led.drop_reasons)] = list(led.drop_reasons.values())
    batches = rt.batches
    calls = rt.actor_calls
    end_of_run = float(np.nanmax(finished)) if len(led) and not np.isnan(finished).all() else res.duration
    end_of_run = max(end_of_run, res.duration)
    rows = []
    for i, fault in enumerate(faults, 1):
        queues = affected_queues(res, fault.node)
        codes = [led.queue_code(q) for q in queues if q in rt.queues]
        mine = np.isin(queue_col, codes)
        times, level = _backlog(sent[mine], finished[mine])
        in_queues = batches["queue"].isin(queues)
        for start, end in fault.windows:
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
            b = batches[(batches["delivered_at"] >= start) & (batches["delivered_at"] <= stop)]
            c = calls[(calls["started"] >= start) & (calls["started"] <= stop)] if len(calls) else calls
            rows.append({
                "fault": i, "kind": fault.kind, "node": fault.node, "start": start,
                "end": end, "queues": ", ".join(queues), "baseline": baseline,
                "peak_backlog": peak, "peak_at": peak_at, "drained_at": drained,
                "time_to_drain": drained - end,
                "retried": int(batches.loc[in_queues & batches["delivered_at"].between(start, stop), "retried"].sum()),
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
            })
    return pd.DataFrame(rows, columns=COLUMNS)


def _backlog(sent: np.ndarray, finished: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """N(t) after each event (+1 at a send, -1 at a finish), at the event times, sorted
    (at equal times, finishes first)."""
    done = finished[~np.isnan(finished)]
    times = np.concatenate([done, sent])
    steps = np.concatenate([-np.ones(len(done), np.int64), np.ones(len(sent), np.int64)])
    order = np.lexsort((steps, times))
    times, level = times[order], np.cumsum(steps[order])
    last = np.r_[times[1:] != times[:-1], True]     # the level once a moment's events are done
    return times[last], level[last]


def _at(times: np.ndarray, level: np.ndarray, t: float) -> int:
    """N just after time ``t``."""
    i = np.searchsorted(times, t, side="right") - 1
    return int(level[i]) if i >= 0 else 0
