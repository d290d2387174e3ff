"""Results of a simulation: pandas DataFrames and a summary.

``messages``: one row per message per queue (id, queue, type, bytes, sent, deliveries,
attempts, outcome, finished, latency, origin). ``batches``: every batch. ``timeline``:
backlog, messages on their way in, batches running and consumers (the autoscaler's level)
per queue, and busy / queued actor instances per class, sampled over time. ``summary()``: throughput, latency percentiles
(wait before first delivery and end to end), retries, DLQ and dropped counts, max
backlog, time to drain and handler errors.
"""

from __future__ import annotations

from array import array
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ..runtime.display import Summary, Table
from ..runtime.ledger import OUTCOME_CODES, categorical
from .cost import cost_table, quantities

if TYPE_CHECKING:
    from ..model.pipeline import Pipeline
    from ..model.workload import Arrivals
    from ..runtime.ledger import Ledger
    from ..runtime.runtime import Runtime

TIMELINE_COLUMNS = ["time", "node", "backlog", "landing", "running", "consumers"]
WARNING_COLUMNS = ["what", "where", "when", "value", "limit", "source", "advice"]
_LIMITS = "shared/reference/cloudflare-semantics.md"
# Rows (or deliveries) read at a time by the summary and the end-to-end table: temporaries
# of a few MB instead of a copy of each column (a 10M-message run has 20M rows).
_STEP = 1 << 20


class Results:
    """What a :func:`~cdpkit.sim.simulate.simulate` run produced.

    Tables are pandas DataFrames, made when first read. ``pipeline``, ``runtime`` (the
    :class:`~cdpkit.Runtime` that ran, with its own frames), ``arrivals``, ``duration`` and
    ``faults`` (the timeline applied, or None) are kept as attributes.

    Examples
    --------
    >>> import cdpkit as cdp
    >>> p = cdp.Pipeline("demo")
    >>> p.add_source("http", queue="jobs")
    >>> p.add_queue("jobs", max_batch_size=10, max_batch_timeout=1)
    >>> p.add_consumer("jobs", service={"base": 0.01, "per_message": 0.002})
    >>> res = cdp.simulate(p, cdp.Poisson(rate=20), duration=30, seed=1)
    >>> int(res.summary()["acked"]), len(res.messages), res.plan, res.engine
    (631, 631, 'paid', 'compiled')
    """

    def __init__(self, pipeline: Pipeline, runtime: Runtime, arrivals: Arrivals, duration: float,
                 timeline: list[tuple], actor_pools: dict | None = None) -> None:
        self.pipeline = pipeline
        self.runtime = runtime
        self.arrivals = arrivals
        self.duration = duration
        self._timeline = timeline
        self.actor_pools = actor_pools or {}     # spec actor class -> SpecActors
        # which engine ran it: "compiled", "python", or "python (the compiled engine does not
        # cover: ...)" when engine="auto" fell back (simulate sets it)
        self.engine = "python"
        self.entry_queues = sorted({pipeline.spec(s).queue for s in pipeline.nodes("source")})
        runtime.failures.report()     # the run is over: how many handler errors, if any

    @property
    def messages(self) -> pd.DataFrame:
        """One row per message per queue: the ledger (:attr:`Runtime.messages`) with each spec
        message's workload ``type``, ``origin`` (its arrival's index) and ``origin_time``.

        Columns ``message_id``, ``queue``, ``type``, ``bytes``, ``sent``, ``first_delivered``,
        ``deliveries``, ``attempts``, ``outcome``, ``finished``, ``drop_reason``, ``origin``,
        ``origin_time``, ``wait`` and ``latency`` (seconds).
        """
        frame = self._ledger
        if "message_id" not in frame:   # made on first use: a string per row is the costly part
            frame.insert(0, "message_id", self.runtime.ledger.ids(np.arange(len(frame))))
        return frame

    @cached_property
    def _origin(self) -> np.ndarray:
        """Per ledger row: the index of the workload arrival it descends from (-1: none).
        A spec message's body is that index (:class:`~cdpkit.sim.behaviour.SpecBodies`)."""
        ledger = self.runtime.ledger
        origin = np.empty(len(ledger), dtype=np.int64)
        for start in range(0, len(ledger), _STEP):
            stop = min(start + _STEP, len(ledger))
            origin[start:stop] = _origins(ledger, start, stop)
        return origin

    @cached_property
    def _ledger(self) -> pd.DataFrame:
        """:attr:`messages` without ids."""
        ledger = self.runtime.ledger
        frame = ledger.frame(ids=False).drop(columns="content_type")
        origin = self._origin
        known = origin >= 0
        type_code = np.full(len(ledger), -1, dtype=np.int64)
        type_code[known] = self.arrivals.types[origin[known]]
        origin_time = np.full(len(ledger), np.nan)
        origin_time[known] = self.arrivals.times[origin[known]]
        names = self.arrivals.type_names
        frame.insert(1, "type", categorical(type_code, names))
        frame.insert(frame.columns.get_loc("drop_reason") + 1, "origin", origin)
        frame.insert(frame.columns.get_loc("origin") + 1, "origin_time", origin_time)
        return frame

    @property
    def batches(self) -> pd.DataFrame:
        """Every batch (:attr:`Runtime.batches`): ``queue``, ``batch``, ``delivered_at``,
        ``finished_at``, ``size``, ``outcome`` and how many of its messages were ``acked``,
        ``retried``, ``dead_lettered`` and ``dropped``.
        """
        return self.runtime.batches

    @property
    def timeline(self) -> pd.DataFrame:
        """Queues and actor pools sampled over time (about 400 points).

        Columns ``time``, ``node`` (a queue, or an actor class), ``backlog`` (messages waiting; for
        an actor: calls queued), ``landing`` (messages on their way in), ``running`` (batches; for
        an actor: busy instances) and ``consumers`` (the autoscaler's level).

        Examples
        --------
        >>> import cdpkit as cdp
        >>> p = cdp.Pipeline("demo")
        >>> p.add_source("http", queue="jobs")
        >>> p.add_queue("jobs")
        >>> p.add_consumer("jobs", service={"per_message": 0.01})
        >>> tl = cdp.simulate(p, cdp.Poisson(rate=20), duration=10, seed=1).timeline
        >>> tl.columns.tolist(), int(tl["backlog"].max()) > 0
        (['time', 'node', 'backlog', 'landing', 'running', 'consumers'], True)
        """
        return pd.DataFrame(self._timeline, columns=TIMELINE_COLUMNS)

    @property
    def actor_calls(self) -> pd.DataFrame:
        """Every request to a Durable Object (:attr:`Runtime.actor_calls`): ``binding``,
        ``object``, ``method``, ``arrived``, ``started``, ``finished``, ``outcome``, ``wait`` and
        ``duration``.
        """
        return self.runtime.actor_calls

    def _arrival_ends(self) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Per workload arrival: when the last message it caused finished (-inf: none has),
        whether any reached a queue, and how many are unfinished (None: none is). Reads the
        ledger :data:`_STEP` rows at a time: no per-row array."""
        ledger, n = self.runtime.ledger, len(self.arrivals)
        last, seen, open_rows = np.full(n, -np.inf), np.zeros(n, dtype=bool), []
        for start in range(0, len(ledger), _STEP):
            stop = min(start + _STEP, len(ledger))
            origin, finished = _origins(ledger, start, stop), ledger.view("finished")[start:stop]
            known = origin >= 0
            if not known.all():
                origin, finished = origin[known], finished[known]
            np.fmax.at(last, origin, finished)      # fmax skips NaN: an unfinished row
            seen[origin] = True
            unfinished = np.isnan(finished)
            if unfinished.any():
                open_rows.append(origin[unfinished])
        return last, seen, (np.bincount(np.concatenate(open_rows), minlength=n) if open_rows else None)

    @cached_property
    def _end_to_end(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Per arrival that reached a queue: its index, first send, last finish, unfinished."""
        last, seen, unfinished = self._arrival_ends()
        ids = np.flatnonzero(seen)      # origins are arrival indices: by index, no sort
        everyone = len(ids) == len(seen)     # (the usual case: no copies by index)
        del seen
        if not everyone:
            last = last[ids]
        last[~np.isfinite(last)] = np.nan     # (last is ours: in place)
        unfinished = (np.zeros(len(ids), dtype=np.int64) if unfinished is None
                      else unfinished if everyone else unfinished[ids])
        first = self.arrivals.times.copy() if everyone else self.arrivals.times[ids]
        return ids, first, last, unfinished

    @cached_property
    def end_to_end(self) -> pd.DataFrame:
        """Per arrival: from its first send to the last step of everything it caused.

        Indexed by ``origin`` (the arrival's index); columns ``origin_time``, ``last`` (when the
        last message it caused finished), ``unfinished`` (how many are not finished) and
        ``latency`` (NaN while any of it is unfinished). The summary's ``p50_latency`` ...
        ``p99_latency`` are its quantiles.
        """
        ids, first, last, unfinished = self._end_to_end
        # copy=False: the frame is the arrays of _end_to_end (which nothing else reads), not a
        # copy of them (10M arrivals: 400 MB)
        latency = np.subtract(last, first)
        latency[unfinished != 0] = np.nan
        return pd.DataFrame({"origin_time": first, "last": last, "unfinished": unfinished, "latency": latency},
                            index=pd.Index(ids, name="origin", copy=False), copy=False)

    def summary(self) -> pd.Series:
        """Headline numbers for the entry queue(s) and the whole pipeline.

        Returns
        -------
        Series
            Named after the pipeline: ``messages`` (entering the entry queues), ``acked``,
            ``dead_lettered``, ``dropped``, ``rejected``, ``in_flight``, ``retries``,
            ``throughput`` (acked/s), ``wait_mean`` (s before first delivery), ``p50_latency``,
            ``p95_latency``, ``p99_latency`` (end to end, s), ``mean_batch``, ``max_backlog``,
            ``time_to_drain`` (s after the last arrival) and ``errors`` (handler exceptions).
            Shown with units in a notebook.

        Examples
        --------
        >>> import cdpkit as cdp
        >>> p = cdp.Pipeline("demo")
        >>> p.add_source("http", queue="jobs")
        >>> p.add_queue("jobs", max_batch_size=10, max_batch_timeout=1)
        >>> p.add_consumer("jobs", service={"base": 0.01, "per_message": 0.002})
        >>> s = cdp.simulate(p, cdp.Poisson(rate=20), duration=30, seed=1).summary()
        >>> s[["messages", "acked", "dead_lettered", "mean_batch"]].round(2).tolist()
        [631.0, 631.0, 0.0, 9.86]
        """
        ledger = self.runtime.ledger
        queue = ledger.view("queue")
        entry = np.zeros(len(ledger), dtype=bool)
        for code in {ledger.queue_code(q) for q in self.entry_queues} - {-1}:
            entry |= queue == code
        del queue
        outcome = ledger.view("outcome")[entry]
        counts = {name: int(np.count_nonzero(outcome == code)) for name, code in OUTCOME_CODES.items()}
        del outcome
        wait, retries = _entry_waits(ledger, entry)
        undelivered = np.isnan(wait)
        delivered = len(wait) - int(np.count_nonzero(undelivered))
        wait[undelivered] = 0.0        # np.nanmean's arithmetic, on the array it would copy
        wait_mean = float(np.sum(wait) / np.intp(delivered)) if delivered else np.nan
        del wait, undelivered
        p50, p95, p99 = self._latency_quantiles([0.5, 0.95, 0.99])
        timeline = self.timeline
        queues = timeline[timeline["node"].isin(self.runtime.queues)]
        arrivals_end = float(self.arrivals.times[-1]) if len(self.arrivals) else 0.0
        last_finish = np.fmax.reduce(ledger.view("finished")) if len(ledger) else np.nan   # NaN: none
        batch_queue, batch_size = ledger.batch_sizes()
        entry_batches = batch_size[np.isin(batch_queue, [ledger.queue_code(q) for q in self.entry_queues])]
        out = {
            "messages": int(np.count_nonzero(entry)),
            **counts,
            "retries": retries,
            "throughput": counts["acked"] / self.duration,
            "wait_mean": wait_mean,
            "p50_latency": p50,
            "p95_latency": p95,
            "p99_latency": p99,
            "mean_batch": entry_batches.mean() if len(entry_batches) else np.nan,
            "max_backlog": int(queues["backlog"].max()) if len(queues) else 0,
            "time_to_drain": 0.0 if np.isnan(last_finish) else max(0.0, last_finish - arrivals_end),
            "errors": len(self.runtime.recorder.errors),    # handler exceptions, all queues
        }
        return Summary(out, name=self.pipeline.name)   # shows counts, times, rates with units

    def _latency_quantiles(self, q: list[float]) -> list[float]:
        """Quantiles of the end-to-end latency of the arrivals whose messages all finished
        (:attr:`end_to_end`'s ``latency``), without building that table."""
        last, seen, unfinished = self._arrival_ends()
        done = seen if unfinished is None else seen & (unfinished == 0)
        last -= self.arrivals.times            # in place: last becomes the latency
        latency = last if done.all() else last[done]
        del last
        if not len(latency):
            return [np.nan] * len(q)
        return list(np.quantile(latency, q, overwrite_input=True))   # latency is ours to reorder

    faults = None       # the fault timeline the run applied (simulate sets it)

    def incidents(self) -> pd.DataFrame:
        """One row per fault window: what each incident did.

        Columns ``fault``, ``kind``, ``node``, ``start``, ``end``, ``queues``, ``baseline``,
        ``peak_backlog`` and ``peak_at``, ``drained_at`` and ``time_to_drain`` (after the window),
        ``retried``, ``dead_lettered``, ``expired``, ``purged``, ``dropped`` and the work done
        meanwhile: ``operations``, ``invocations``, ``consumer_seconds``, ``do_seconds``, and
        ``cost_usd``, what the window added to the bill at list prices (retries, dead letters,
        slowdowns; see :func:`cdpkit.sim.incidents.incidents`). Empty without faults. For a
        handler-code run, :func:`cdpkit.sim.incidents.runtime_incidents` gives the same table.

        Examples
        --------
        >>> import cdpkit as cdp
        >>> p = cdp.Pipeline("demo")
        >>> p.add_source("http", queue="jobs")
        >>> p.add_queue("jobs", max_batch_size=10, max_batch_timeout=1)
        >>> p.add_consumer("jobs", service={"base": 0.01, "per_message": 0.002})
        >>> res = cdp.simulate(p, cdp.Poisson(rate=20), duration=30, seed=1,
        ...                    faults=[{"kind": "outage", "node": "jobs.consumer", "start": 10,
        ...                             "length": 5, "mode": "pause"}])
        >>> res.incidents()[["kind", "start", "end", "peak_backlog"]].values.tolist()
        [['outage', 10.0, 15.0, 122]]
        >>> float(res.incidents()["cost_usd"].iloc[0])     # a pause retries nothing: no extra cost
        0.0
        """
        from .incidents import incidents
        return incidents(self)

    @property
    def consumer_cpu_seconds(self) -> float:
        """CPU seconds the consumers used (spec service time, or ``ctx.work`` in handler code)."""
        return sum(getattr(q.consumer, "cpu_seconds", 0.0) for q in self.runtime.queues.values())

    def cost(self, plan: str | None = None) -> pd.DataFrame:
        """Cost by item for this run and per month at this rate.

        Parameters
        ----------
        plan : {"paid", "free"}, optional
            The Workers plan; by default the run's own (:attr:`plan`), else ``"paid"``.

        Returns
        -------
        DataFrame
            One row per priced item: ``service``, ``item``, ``unit``, ``quantity`` (in the run),
            ``monthly_quantity`` (at this rate over 30 days), ``free_allowance``,
            ``allowance_per``, ``run_cost``, ``monthly_cost`` and ``over_allowance``; ``attrs``
            holds ``pricing_as_of``, ``plan`` and each item's ``sources`` (see
            :func:`~cdpkit.sim.cost.cost_table` and cdpkit/data/pricing.yaml). Shown in dollars.

        Examples
        --------
        >>> import cdpkit as cdp
        >>> p = cdp.Pipeline("demo")
        >>> p.add_source("http", queue="jobs")
        >>> p.add_queue("jobs", max_batch_size=10, max_batch_timeout=1)
        >>> p.add_consumer("jobs", service={"base": 0.01, "per_message": 0.002})
        >>> res = cdp.simulate(p, cdp.Poisson(rate=20), duration=30, seed=1)
        >>> c = res.cost(plan="free")
        >>> c.attrs["plan"], float(c["monthly_cost"].sum())
        ('free', 0.0)
        >>> int(c.set_index("item").loc["queues_operations", "quantity"])   # write, read, delete each
        1893
        """
        if plan is None:
            plan = getattr(self, "plan", None) or getattr(getattr(self, "profile", None), "plan", None) or "paid"
        frame = cost_table(quantities(self.runtime), self.duration, plan)
        shown = Table(frame)     # shown in dollars
        shown.attrs.update(frame.attrs)     # pricing_as_of, plan, sources
        return shown

    def __repr__(self) -> str:
        s = self.summary()
        return (f"<Results {self.pipeline.name!r}: {s['messages']:.0f} messages, {s['acked']:.0f} acked, "
                f"{s['dead_lettered']:.0f} dead-lettered, p99 {s['p99_latency']:.3g}s{self._failed()}>"
                + self._warned())

    @property
    def plan(self) -> str:
        """The Workers plan of the run's semantics profile (``"paid"`` or ``"free"``)."""
        return self.runtime.semantics.plan

    @cached_property
    def warnings(self) -> pd.DataFrame:
        """Where the run came near (>= ``semantics.warn_at``, 80 %) or over a platform limit.

        One row per (limit, place) with ``what``, ``where``, ``when`` (the worst moment, s),
        ``value``, ``limit``, ``source`` (the documentation line) and ``advice``: queue
        throughput, backlog bytes, autoscaled consumers, expired messages, consumer wall time,
        Durable Object requests/s and KV writes per key. Empty when nothing came near; the
        :class:`Results` repr prints one line per warning.
        """
        return platform_warnings(self)

    def _warned(self) -> str:
        """One line per platform warning (see :attr:`warnings`)."""
        return "".join(f"\n  warning: {w.what} at {w.where} (t={w.when:g}s): {w.value:,.4g} of {w.limit:,.4g}; "
                       f"{w.advice}" for w in self.warnings.itertuples())

    def _failed(self) -> str:
        """``; 3 handler errors (KeyError), see res.runtime.errors`` when handlers raised."""
        errors = self.runtime.recorder.errors
        if not errors:
            return ""
        types = ", ".join(dict.fromkeys(type(e[3]).__qualname__ for e in errors))
        return f"; {len(errors):,} handler error{'s' * (len(errors) != 1)} ({types}), see res.runtime.errors"


def _origins(ledger: Ledger, start: int, stop: int) -> np.ndarray:
    """Ledger rows ``start`` to ``stop``: the index of the workload arrival each descends from
    (-1: none), the body of a "raw" (spec) row. May be a view of the ledger: use it, then drop
    it."""
    raw = ledger.view("content_type")[start:stop] == ledger.type_code("raw")
    payload = ledger.payload         # a list (ints, str/bytes) or an int32/int64 array
    if raw.all():
        if isinstance(payload, np.ndarray):
            return np.asarray(payload[start:stop], dtype=np.int64)
        return np.frombuffer(array("q", payload[start:stop]), dtype=np.int64)
    origin = np.full(stop - start, -1, dtype=np.int64)
    rows = np.flatnonzero(raw)
    if len(rows):
        if isinstance(payload, np.ndarray):
            origin[rows] = payload[start:stop][rows]
        else:
            origin[rows] = np.frombuffer(array("q", map(payload.__getitem__, (rows + start).tolist())), np.int64)
    return origin


def _entry_waits(ledger: Ledger, entry: np.ndarray) -> tuple[np.ndarray, int]:
    """For the rows where ``entry`` is True, in row order: the wait before the first delivery
    (NaN: never delivered), and how many redeliveries they had in all. Only those rows: a
    position per row (int32) instead of :meth:`Ledger.deliveries`' two arrays of all rows."""
    position = np.cumsum(entry, dtype=np.int32 if len(entry) < 2**31 else np.int64)   # entry row -> 1 + index
    wait = np.full(int(position[-1]) if len(position) else 0, np.nan)
    deliveries = 0
    for mine, times in ledger.delivery_chunks(_STEP):    # the earliest delivery is written last
        keep = entry[mine]
        mine, times = mine[keep], times[keep]
        deliveries += len(mine)
        wait[position[mine[::-1]] - 1] = times[::-1]
    del position
    sent, done = ledger.view("sent"), 0
    for start in range(0, len(entry), _STEP):
        chunk = sent[start:start + _STEP][entry[start:start + _STEP]]
        wait[done:done + len(chunk)] -= chunk
        done += len(chunk)
    return wait, deliveries - int(np.count_nonzero(~np.isnan(wait)))


def _peak_per_window(times: np.ndarray, window: float) -> tuple[float, float]:
    """The most events in one ``window``-second window (aligned at 0), and when it began."""
    if not len(times):
        return 0.0, 0.0
    bins = np.floor(times / window).astype(np.int64)
    values, counts = np.unique(bins, return_counts=True)
    i = int(np.argmax(counts))
    return float(counts[i]), float(values[i] * window)


def platform_warnings(res: Results) -> pd.DataFrame:
    """The rows of :attr:`Results.warnings`: each limit of the semantics profile checked
    against what the run did (limits the profile does not enforce are not checked)."""
    rt = res.runtime
    sem, ledger = rt.semantics, rt.ledger
    near = sem.warn_at
    rows: list[tuple] = []

    def check(what: str, where: str, when: float, value: float, limit: float, source: str, advice: str) -> None:
        if limit and value >= near * limit:
            rows.append((what if value > limit else f"near: {what}", where, when, value, limit, source, advice))

    outcome, queue_codes = ledger.column("outcome"), ledger.column("queue")
    rejected = outcome == OUTCOME_CODES["rejected"]
    timeline = res.timeline
    for name, queue in rt.queues.items():
        code, mine = ledger.queue_code(name), queue_codes == ledger.queue_code(name)
        rate = sem.queue_messages_per_second
        if rate is not None and queue.sends:
            window = sem.queue_rate_window
            peak = max(queue.sends, key=queue.sends.get)
            refused = rejected & mine
            offered = queue.sends[peak] + int(np.count_nonzero(
                refused & (np.floor(ledger.column("sent") / window) == peak)))
            check("queue throughput (messages/s)", f"queue {name!r}", peak * window, offered / window, rate,
                  _LIMITS + " §3: 5,000 messages/s per queue (send() throws 'Too Many Requests')",
                  f"{int(np.count_nonzero(refused)):,} sends rejected; shard over "
                  f"{max(2, int(np.ceil(offered / window / (near * rate))))} queues")
        limit = sem.queue_backlog_bytes
        tl = timeline[timeline["node"] == name]
        if limit is not None and len(tl) and mine.any():
            i = int(tl["backlog"].to_numpy().argmax())
            check("queue backlog (bytes, estimated)", f"queue {name!r}", float(tl["time"].iloc[i]),
                  float(tl["backlog"].iloc[i]) * float(ledger.column("bytes")[mine].mean()), limit,
                  _LIMITS + " §3: 25 GB backlog per queue (send() fails: 'Storage Limit Exceeded')",
                  "consume faster or shard over more queues")
        if queue.scaler is not None and queue.consumer is not None:
            when, top = max(queue.scaler.levels, key=lambda level: level[1])
            check("consumers (autoscaled)", f"queue {name!r}", when, top, queue.settings.max_concurrency,
                  _LIMITS + " §3: max_concurrency 1-250 (250 concurrent consumer invocations)",
                  "raise max_concurrency (up to 250) or make each batch faster")
        expired = [row for row, why in ledger.drop_reasons.items()
                   if why == "retention period expired" and queue_codes[row] == code]
        if expired:
            rows.append(("messages expired (retention)", f"queue {name!r}", float(ledger.finished[expired[0]]),
                         float(len(expired)), float(queue.retention),
                         _LIMITS + " §1: retention default 4 days, up to 14 days; 24 h on the Free plan",
                         "messages waited longer than the retention period and were deleted"))
    wall, batches = sem.consumer_wall_seconds, res.batches
    if wall is not None and len(batches):
        batches = batches.assign(seconds=batches["finished_at"] - batches["delivered_at"])
        for name, group in batches.groupby("queue", observed=True):
            if getattr(rt.queues[name].consumer, "pull_consumer", False):
                continue        # a pull client runs outside Workers: its lease bounds it, not 15 min
            i = group["seconds"].idxmax()
            check("consumer wall time (s)", f"queue {name!r}", float(group.loc[i, "delivered_at"]),
                  float(group.loc[i, "seconds"]), wall, _LIMITS + " §3: consumer wall time 15 min",
                  "split the work into smaller batches")
    rate = sem.actor_requests_per_second
    calls = res.actor_calls if rate is not None else ()
    if len(calls):
        for (binding, obj), group in calls.groupby(["binding", "object"], observed=True, sort=True):
            peak, when = _peak_per_window(group["arrived"].to_numpy(), 1.0)
            overloaded = int((group["outcome"] == "overloaded").sum())
            check("Durable Object requests/s", f"{binding} {obj}", when, peak, rate,
                  _LIMITS + " §4: soft limit of 1,000 requests/s per object ('Durable Object is overloaded')",
                  f"{overloaded:,} requests overloaded; spread this object's load over "
                  f"{int(np.ceil(peak / (near * rate)))} keys")
    for binding, kv in rt.kv_namespaces.items():
        if kv.rejected_writes:
            rows.append(("KV writes to one key over 1/s (429)", f"kv {binding}", float("nan"),
                         float(kv.rejected_writes), 1.0, _LIMITS + " §5: writes to the same key: 1 per second",
                         "write each key at most once a second (batch updates or use more keys)"))
    return pd.DataFrame(rows, columns=WARNING_COLUMNS)
