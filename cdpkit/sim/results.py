"""Results of a simulation: pandas DataFrames and a summary.

``messages``: one row per message per queue (id, queue, type, bytes, sent, deliveries,
attempts, outcome, finished, latency, origin). ``batches``: every batch. ``timeline``:
backlog, messages on their way in and batches running per queue, and busy / queued actor
instances per class, sampled over time. ``summary()``: throughput, latency percentiles
(wait before first delivery and end to end), retries, DLQ and dropped counts, max
backlog and time to drain.
"""

from __future__ import annotations

from functools import cached_property
from itertools import chain
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ..runtime.ledger import categorical

if TYPE_CHECKING:
    from ..model.pipeline import Pipeline
    from ..model.workload import Arrivals
    from ..runtime.runtime import Runtime

TIMELINE_COLUMNS = ["time", "node", "backlog", "landing", "running"]


class Results:
    """What a :func:`~cdpkit.sim.simulate.simulate` run produced."""

    def __init__(self, pipeline: Pipeline, runtime: Runtime, arrivals: Arrivals, duration: float,
                 timeline: list[tuple], actor_pools: dict | None = None) -> None:
        self.pipeline = pipeline
        self.runtime = runtime
        self.arrivals = arrivals
        self.duration = duration
        self._timeline = timeline
        self.actor_pools = actor_pools or {}     # spec actor class -> SpecActors
        self.entry_queues = sorted({pipeline.spec(s)["queue"] for s in pipeline.nodes("source")})

    @cached_property
    def messages(self) -> pd.DataFrame:
        """The ledger (:attr:`Runtime.messages`) with each spec message's workload ``type``,
        ``origin`` (its arrival's index) and ``origin_time``."""
        ledger = self.runtime.ledger
        frame = ledger.frame().drop(columns="content_type")
        bodies = ledger.payload
        rows = np.flatnonzero([type(b) is tuple for b in bodies])
        origin = np.full(len(bodies), -1, dtype=np.int64)
        origin_time = np.full(len(bodies), np.nan)
        type_code = np.full(len(bodies), -1, dtype=np.int64)
        if len(rows):
            spec = bodies if len(rows) == len(bodies) else [bodies[i] for i in rows.tolist()]
            columns = np.fromiter(chain.from_iterable(spec), float, 4 * len(rows)).reshape(-1, 4)
            type_code[rows], origin_time[rows], origin[rows] = columns[:, 0], columns[:, 2], columns[:, 3]
        names = self.arrivals.type_names
        frame.insert(2, "type", categorical(type_code, names))
        frame.insert(frame.columns.get_loc("drop_reason") + 1, "origin", origin)
        frame.insert(frame.columns.get_loc("origin") + 1, "origin_time", origin_time)
        return frame

    @property
    def batches(self) -> pd.DataFrame:
        return self.runtime.batches

    @property
    def timeline(self) -> pd.DataFrame:
        return pd.DataFrame(self._timeline, columns=TIMELINE_COLUMNS)

    @property
    def actor_calls(self) -> pd.DataFrame:
        return self.runtime.actor_calls

    @cached_property
    def end_to_end(self) -> pd.DataFrame:
        """Per arrival: from its first send to the last step of everything it caused
        (NaN latency while any of it is unfinished)."""
        m = self.messages
        origin = m["origin"].to_numpy()
        keep = origin >= 0
        origin, finished = origin[keep], m["finished"].to_numpy()[keep]
        ids, index = np.unique(origin, return_inverse=True)
        last = np.full(len(ids), -np.inf)
        np.maximum.at(last, index, np.nan_to_num(finished, nan=-np.inf))
        unfinished = np.bincount(index, weights=np.isnan(finished), minlength=len(ids)).astype(np.int64)
        first = np.full(len(ids), np.nan)
        first[index[::-1]] = m["origin_time"].to_numpy()[keep][::-1]    # the first row of each origin
        frame = pd.DataFrame({"origin_time": first, "last": np.where(np.isfinite(last), last, np.nan),
                              "unfinished": unfinished}, index=pd.Index(ids, name="origin"))
        frame["latency"] = np.where(unfinished == 0, frame["last"] - frame["origin_time"], np.nan)
        return frame

    def summary(self) -> pd.Series:
        """Headline numbers for the entry queue(s) and the whole pipeline."""
        m = self.messages
        entry = m[m["queue"].isin(self.entry_queues)]
        e2e = self.end_to_end["latency"].dropna()
        timeline = self.timeline
        queues = timeline[timeline["node"].isin(self.runtime.queues)]
        arrivals_end = float(self.arrivals.times[-1]) if len(self.arrivals) else 0.0
        finished = m["finished"].max() if len(m) else np.nan
        b = self.batches
        out = {
            "messages": len(entry),
            "acked": int((entry["outcome"] == "acked").sum()),
            "dead_lettered": int((entry["outcome"] == "dead_lettered").sum()),
            "dropped": int((entry["outcome"] == "dropped").sum()),
            "in_flight": int((entry["outcome"] == "in_flight").sum()),
            "retries": int((entry["deliveries"] - 1).clip(lower=0).sum()),
            "throughput": (entry["outcome"] == "acked").sum() / self.duration,
            "wait_mean": entry["wait"].mean(),
            "p50_latency": e2e.quantile(0.50) if len(e2e) else np.nan,
            "p95_latency": e2e.quantile(0.95) if len(e2e) else np.nan,
            "p99_latency": e2e.quantile(0.99) if len(e2e) else np.nan,
            "mean_batch": b[b["queue"].isin(self.entry_queues)]["size"].mean() if len(b) else np.nan,
            "max_backlog": int(queues["backlog"].max()) if len(queues) else 0,
            "time_to_drain": max(0.0, finished - arrivals_end) if len(m) else 0.0,
        }
        return pd.Series(out, name=self.pipeline.name)

    @property
    def consumer_cpu_seconds(self) -> float:
        """CPU the consumers used (spec service time, or ``ctx.work`` in handler code)."""
        return sum(getattr(q.consumer, "cpu_seconds", 0.0) for q in self.runtime.queues.values())

    def cost(self) -> pd.DataFrame:
        """Cost by item for this run and per month at this rate (see cdpkit/data/pricing.yaml)."""
        from .cost import cost_table
        return cost_table(self)

    def __repr__(self) -> str:
        s = self.summary()
        return (f"<Results {self.pipeline.name!r}: {s['messages']} messages, {s['acked']} acked, "
                f"{s['dead_lettered']} dead-lettered, p99 {s['p99_latency']:.3g}s>")
