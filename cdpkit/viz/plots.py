"""Plots of a run's :class:`~cdpkit.sim.results.Results` and of :func:`~cdpkit.sweep` tables.

Every plot takes the results (or a sweep table), draws on ``ax`` when one is given (a new
figure otherwise) and returns the matplotlib Axes (:func:`dashboard` returns the Figure),
so plots compose with ordinary matplotlib. Nothing here calls ``plt.show()``. The numbers
behind the pictures are public too: :func:`node_stats`, :func:`outcome_counts`,
:func:`actor_utilisation` and :func:`pareto_front` return plain pandas objects.

>>> import matplotlib; matplotlib.use("Agg")
>>> import cdpkit as cdp
>>> p = cdp.Pipeline("doc")
>>> p.add_source("http", queue="jobs")
>>> p.add_queue("jobs", max_batch_size=10, max_batch_timeout=1)
>>> p.add_consumer("jobs", service={"base": 0.01, "per_message": 0.001})
>>> res = cdp.simulate(p, cdp.Poisson(rate=50), duration=10, seed=1)
>>> [line.get_label() for line in plot_backlog(res).get_lines()]
['jobs']
>>> bool(sum(bar.get_height() for bar in plot_batch_sizes(res).patches) == len(res.batches))
True
>>> stats = node_stats(res)            # the numbers draw_pipeline writes on the nodes
>>> bool(stats.loc["jobs", "throughput"] == res.summary()["throughput"])
True
>>> stats.loc["jobs.consumer", "unit"], bool(0 < stats.loc["jobs.consumer", "utilisation"] < 1)
('batch/s', True)
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ..errors import ConfigError
from ..runtime.display import fmt
from ..runtime.settings import QUEUE_SETTINGS

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from ..sim.results import Results

#: How a message ended in one queue, in the order the outcome bars stack.
OUTCOMES = ("acked", "acked after retry", "dead_lettered", "dropped", "in_flight")
OUTCOME_COLOURS = {"acked": "#43a047", "acked after retry": "#fdd835", "dead_lettered": "#e53935",
                   "dropped": "#424242", "in_flight": "#bdbdbd"}
SERVICE_COLOURS = {"Queues": "#f6821f", "Workers": "#1e88e5", "Durable Objects": "#8e24aa",
                   "KV": "#43a047", "D1": "#6d4c41"}
PERCENTILES = (0.50, 0.95, 0.99)
#: Short names for queue settings in labels ("batch=100, timeout=1").
SHORT_SETTINGS = {s.name: s.short for s in QUEUE_SETTINGS.values()}


# ------------------------------------------------------------------ shared frames (computed once)

_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _memo(results: Results, key: str, compute: Callable[[], Any]) -> Any:
    """``compute()`` once per results object (Results' frames are rebuilt on every access)."""
    store = _CACHE.setdefault(results, {})
    if key not in store:
        store[key] = compute()
    return store[key]


def _timeline(res: Results) -> pd.DataFrame:
    return _memo(res, "timeline", lambda: res.timeline)


def _batches(res: Results) -> pd.DataFrame:
    return _memo(res, "batches", lambda: res.batches)


def _calls(res: Results) -> pd.DataFrame:
    return _memo(res, "actor_calls", lambda: res.actor_calls)


def _summary(res: Results) -> pd.Series:
    return _memo(res, "summary", res.summary)


def _cost(res: Results) -> pd.DataFrame:
    return _memo(res, "cost", res.cost)


def _horizon(res: Results) -> float:
    """End of the run: the arrivals window, or later if the pipeline took longer to drain."""
    tl = _timeline(res)
    return max(float(res.duration), float(tl["time"].max()) if len(tl) else 0.0)


def _queues(res: Results, queues: Sequence[str] | None = None) -> list[str]:
    return list(queues) if queues is not None else res.pipeline.nodes("queue")


def _instances(res: Results) -> dict[str, int]:
    """Actor class -> number of instances (distinct keys) in the model."""
    p = res.pipeline
    return {a: p.spec(a).instances for a in p.nodes("actor")}


def _binding(res: Results, actor: str) -> str:
    """The binding of an actor class of the model (or ``actor`` itself if it is a binding)."""
    p = res.pipeline
    return p.spec(actor).binding if actor in p.nodes("actor") else actor


def _concurrency(res: Results, queue: str) -> int:
    """How many batches of ``queue`` can run at once under the run's semantics."""
    rt = res.runtime
    if not rt.semantics.concurrent_consumers:
        return 1
    return int(rt.queues[queue].settings.max_concurrency)


def _axes(ax: Axes | None, figsize: tuple[float, float] = (7.0, 3.5)) -> Axes:
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt
    return plt.subplots(figsize=figsize, layout="constrained")[1]


def _empty(ax: Axes, title: str, why: str) -> Axes:
    ax.set_title(title)
    ax.text(0.5, 0.5, why, ha="center", va="center", transform=ax.transAxes, color="grey")
    ax.set_xticks([])
    ax.set_yticks([])
    return ax


def fmt_value(value: Any) -> str:
    """A setting's value for a label: ``100``, ``0.5``, ``'exponential'``.

    >>> fmt_value(100.0), fmt_value(0.25), fmt_value("fixed")
    ('100', '0.25', 'fixed')
    """
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return f"{value:g}"
    return str(value)


# ------------------------------------------------------------------------------- numbers

def node_stats(results: Results) -> pd.DataFrame:
    """Per node of the pipeline: ``kind``, ``throughput`` and its ``unit``, ``utilisation``
    (the busy share of its capacity, 0..1) and ``max_backlog``.

    * source: messages offered per second (its message types and share of the workload);
    * queue: messages acked per second of the arrivals window; max backlog (messages waiting);
    * consumer: batches per second; utilisation = batch-seconds / (concurrency x run time);
    * actor: calls per second; utilisation = busy instance-seconds / (instances x run time);
      max backlog = most calls queued behind busy instances at once.

    Rates are per second of the workload's ``duration`` (as in ``Results.summary()``);
    utilisation is over the whole run including the drain. Stores get no numbers (NaN).
    These are the numbers ``draw_pipeline`` writes on the nodes.

    Parameters
    ----------
    results : Results
        What :func:`~cdpkit.simulate` returned.

    Returns
    -------
    DataFrame
        Indexed by node name.

    Examples
    --------
    >>> import matplotlib; matplotlib.use("Agg")
    >>> import cdpkit as cdp
    >>> p = cdp.Pipeline("doc")
    >>> p.add_source("http", queue="jobs")
    >>> p.add_queue("jobs", max_batch_size=10, max_batch_timeout=1)
    >>> p.add_consumer("jobs", service={"base": 0.01, "per_message": 0.001}, calls="Scorer")
    >>> p.add_actor("Scorer", service=0.01, instances=20, skew=1.2)
    >>> res = cdp.simulate(p, cdp.Poisson(rate=50), duration=10, seed=1)
    >>> node_stats(res)[["kind", "throughput", "unit"]].values.tolist()
    [['source', 52.9, 'msg/s'], ['queue', 52.9, 'msg/s'], ['consumer', 5.3, 'batch/s'], ['actor', 52.9, 'calls/s']]
    """
    return _memo(results, "node_stats", lambda: _node_stats(results))


def _node_stats(res: Results) -> pd.DataFrame:
    p, duration, horizon = res.pipeline, float(res.duration), _horizon(res)
    tl = _timeline(res)
    backlog = tl.groupby("node")["backlog"].max()
    m = res.messages
    acked = m[m["outcome"] == "acked"].groupby("queue", observed=True).size()
    b = _batches(res)
    batch_busy = (b["finished_at"].fillna(horizon) - b["delivered_at"]).groupby(b["queue"]).sum()
    batch_count = b.groupby("queue").size()
    calls = _calls(res)
    call_busy = (calls["finished"].fillna(horizon) - calls["started"]).groupby(calls["binding"]).sum()
    call_count = calls.groupby("binding").size()
    arrivals = res.arrivals
    rows = {}
    for node, data in p.graph.nodes(data=True):
        kind, spec = data["kind"], data["spec"]
        row: dict[str, Any] = {"kind": kind, "throughput": np.nan, "unit": "",
                               "utilisation": np.nan, "max_backlog": np.nan}
        if kind == "source":
            offered = len(arrivals)
            if spec.types:
                codes = [arrivals.type_names.index(t) for t in spec.types if t in arrivals.type_names]
                offered = int(np.isin(arrivals.types, codes).sum())
            row.update(throughput=offered * spec.share / duration, unit="msg/s")
        elif kind == "queue":
            row.update(throughput=acked.get(node, 0) / duration, unit="msg/s",
                       max_backlog=float(backlog.get(node, 0)))
        elif kind == "consumer":
            queue = data["queue"]
            row.update(throughput=batch_count.get(queue, 0) / duration, unit="batch/s",
                       utilisation=batch_busy.get(queue, 0.0) / (_concurrency(res, queue) * horizon))
        elif kind == "actor":
            binding = spec.binding
            row.update(throughput=call_count.get(binding, 0) / duration, unit="calls/s",
                       utilisation=call_busy.get(binding, 0.0) / (spec.instances * horizon),
                       max_backlog=float(backlog.get(node, 0)))
        rows[node] = row
    return pd.DataFrame.from_dict(rows, orient="index")


def outcome_counts(results: Results) -> pd.DataFrame:
    """Messages per queue (rows) by how they ended (columns, :data:`OUTCOMES`).

    Acked at the first delivery, acked after one or more retries, dead-lettered, dropped,
    still in flight. Each row sums to the messages sent to that queue.

    Parameters
    ----------
    results : Results
        What :func:`~cdpkit.simulate` returned.

    Returns
    -------
    DataFrame
        Indexed by queue; columns ``acked``, ``acked after retry``, ``dead_lettered``,
        ``dropped``, ``in_flight``.

    Examples
    --------
    >>> import matplotlib; matplotlib.use("Agg")
    >>> import cdpkit as cdp
    >>> p = cdp.Pipeline("doc")
    >>> p.add_source("http", queue="jobs")
    >>> p.add_queue("jobs", max_batch_size=10, max_batch_timeout=1)
    >>> p.add_consumer("jobs", service={"base": 0.01, "per_message": 0.001}, calls="Scorer")
    >>> p.add_actor("Scorer", service=0.01, instances=20, skew=1.2)
    >>> res = cdp.simulate(p, cdp.Poisson(rate=50), duration=10, seed=1)
    >>> outcome_counts(res).loc["jobs"].tolist()
    [529, 0, 0, 0, 0]
    """
    def compute() -> pd.DataFrame:
        m = results.messages
        outcome = m["outcome"].astype(str).where(
            ~((m["outcome"] == "acked") & (m["deliveries"] > 1)), "acked after retry")
        table = pd.crosstab(m["queue"].astype(str), outcome)
        present = [q for q in _queues(results) if q in table.index]
        return table.reindex(index=present, columns=list(OUTCOMES), fill_value=0)
    return _memo(results, "outcomes", compute)


def actor_utilisation(results: Results, bins: int = 100) -> pd.DataFrame:
    """Busy share (0..1) of each actor class's instances over time.

    In each of ``bins`` equal time bins over the run: instance-seconds spent on calls (from
    start to finish, i.e. holding the object) in the bin / (instances x bin width).

    Parameters
    ----------
    results : Results
        What :func:`~cdpkit.simulate` returned.
    bins : int
        How many time bins (default 100).

    Returns
    -------
    DataFrame
        Indexed by bin start (``time``), one column per actor class; empty without actors.

    Examples
    --------
    >>> import matplotlib; matplotlib.use("Agg")
    >>> import cdpkit as cdp
    >>> p = cdp.Pipeline("doc")
    >>> p.add_source("http", queue="jobs")
    >>> p.add_queue("jobs", max_batch_size=10, max_batch_timeout=1)
    >>> p.add_consumer("jobs", service={"base": 0.01, "per_message": 0.001}, calls="Scorer")
    >>> p.add_actor("Scorer", service=0.01, instances=20, skew=1.2)
    >>> res = cdp.simulate(p, cdp.Poisson(rate=50), duration=10, seed=1)
    >>> u = actor_utilisation(res, bins=10)
    >>> u.shape, bool(u["Scorer"].between(0, 1).all())
    ((10, 1), True)
    """
    def compute() -> pd.DataFrame:
        edges = np.linspace(0.0, _horizon(results), bins + 1)
        calls = _calls(results)
        columns = {}
        for actor, instances in _instances(results).items():
            rows = calls[calls["binding"] == _binding(results, actor)]
            area = _busy_area(rows["started"].to_numpy(dtype=float),
                              rows["finished"].fillna(edges[-1]).to_numpy(dtype=float), edges)
            columns[actor] = np.maximum(np.diff(area), 0.0) / (instances * np.diff(edges))
        return pd.DataFrame(columns, index=pd.Index(edges[:-1], name="time"))
    return _memo(results, f"actor_utilisation/{bins}", compute)


def _busy_area(start: np.ndarray, end: np.ndarray, at: np.ndarray) -> np.ndarray:
    """Integral from 0 to each of ``at`` of the number of intervals [start, end) in progress:
    sum over intervals of (min(t, end) - start) for start < t."""
    def passed(points: np.ndarray) -> np.ndarray:   # sum of (t - p) over points p < t
        points = np.sort(points)
        k = np.searchsorted(points, at, side="left")
        prefix = np.concatenate([[0.0], np.cumsum(points)])
        return at * k - prefix[k]
    return passed(start) - passed(end)


def pareto_front(table: pd.DataFrame, cost: str = "monthly_cost",
                 latency: str = "p99_latency") -> pd.Series:
    """Which rows no other row beats on both ``cost`` and ``latency`` (lower is better).

    Rows with NaN in either column are never on the front; exact ties with a front point
    are on it too.

    Parameters
    ----------
    table : DataFrame
        A :func:`~cdpkit.sweep` table (or any frame with the two columns).
    cost, latency : str
        The columns to minimise (default ``"monthly_cost"`` and ``"p99_latency"``).

    Returns
    -------
    Series of bool
        Named ``pareto``, with the table's index.

    Examples
    --------
    >>> t = pd.DataFrame({"monthly_cost": [1, 2, 3, 2, 1], "p99_latency": [5, 1, 0.5, 2, 5]})
    >>> pareto_front(t).tolist()
    [True, True, True, False, True]
    """
    values = table[[cost, latency]].to_numpy(dtype=float)
    on = np.zeros(len(values), dtype=bool)
    best, best_cost = np.inf, np.nan
    for i in np.lexsort((values[:, 1], values[:, 0])):   # by cost, then latency
        c, lat = values[i]
        if np.isnan(c) or np.isnan(lat):
            continue
        if lat < best:
            on[i], best, best_cost = True, lat, c
        elif lat == best and c == best_cost:             # an exact tie with a front point
            on[i] = True
    return pd.Series(on, index=table.index, name="pareto")


# --------------------------------------------------------------------------- results plots

def plot_backlog(results: Results, queues: Sequence[str] | None = None,
                 ax: Axes | None = None) -> Axes:
    """Messages waiting in each queue over virtual time, one line per queue.

    The drain after the arrivals window is shaded, and so are fault windows
    (:func:`shade_faults`); consumers running (``timeline["consumers"]``, the autoscaler's
    level) are dashed on the right axis when it goes above 1.

    Parameters
    ----------
    results : Results
        What :func:`~cdpkit.simulate` returned.
    queues : list of str, optional
        The queues to draw (default: every queue of the pipeline).
    ax : matplotlib Axes, optional
        Where to draw; default a new figure.

    Returns
    -------
    matplotlib.axes.Axes

    Examples
    --------
    >>> import matplotlib; matplotlib.use("Agg")
    >>> import cdpkit as cdp
    >>> p = cdp.Pipeline("doc")
    >>> p.add_source("http", queue="jobs")
    >>> p.add_queue("jobs", max_batch_size=10, max_batch_timeout=1)
    >>> p.add_consumer("jobs", service={"base": 0.01, "per_message": 0.001}, calls="Scorer")
    >>> p.add_actor("Scorer", service=0.01, instances=20, skew=1.2)
    >>> res = cdp.simulate(p, cdp.Poisson(rate=50), duration=10, seed=1)
    >>> [line.get_label() for line in plot_backlog(res).get_lines()]
    ['jobs']
    """
    ax = _axes(ax)
    tl = _timeline(results)
    twin = None
    for queue in _queues(results, queues):
        rows = tl[tl["node"] == queue]
        line, = ax.plot(rows["time"], rows["backlog"], drawstyle="steps-post", label=queue)
        if "consumers" in rows and rows["consumers"].max() > 1:    # the autoscaler's level, dashed
            twin = ax.twinx() if twin is None else twin
            twin.plot(rows["time"], rows["consumers"], drawstyle="steps-post", ls="--", lw=1,
                      color=line.get_color(), gid=f"consumers:{queue}")
    if twin is not None:
        twin.set_ylabel("consumers (dashed)")
        twin.set_ylim(bottom=0)
    ax.axvspan(results.duration, _horizon(results), color="grey", alpha=0.08, lw=0)  # drain
    shade_faults(results, ax)
    ax.set(title="backlog", xlabel="virtual time (s)", ylabel="messages waiting")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=8)
    return ax


def shade_faults(results: Results, ax: Axes) -> Axes:
    """Shade each fault window of the run (``results.faults``) on a virtual-time axis.

    An instant (purge, eviction) is drawn as a line; artists have ``gid`` ``"fault:<n>"``.
    :func:`plot_backlog` does it; call it on your own time plots.

    Parameters
    ----------
    results : Results
        What :func:`~cdpkit.simulate` returned (nothing is drawn without faults).
    ax : matplotlib Axes
        The axes to shade.

    Returns
    -------
    matplotlib.axes.Axes
        ``ax``.
    """
    for i, fault in enumerate(getattr(results, "faults", None) or (), 1):
        for start, end in fault.windows:
            if end > start:
                ax.axvspan(start, end, color="tab:red", alpha=0.12, lw=0, gid=f"fault:{i}")
            else:
                ax.axvline(start, color="tab:red", ls=":", lw=1, gid=f"fault:{i}")
    return ax


def plot_latency(results: Results, ax: Axes | None = None, log: bool = False,
                 cut: float | None = 2.0) -> Axes:
    """Cumulative distribution of end-to-end latency and of the wait before first delivery.

    End to end: from arrival to the last step it caused; wait: entry queues only. The
    end-to-end p50 / p95 / p99 are marked (texts with ``gid`` ``"p50"`` ...).

    Parameters
    ----------
    results : Results
        What :func:`~cdpkit.simulate` returned.
    ax : matplotlib Axes, optional
        Where to draw; default a new figure.
    log : bool
        Use a log time axis (then nothing is cut).
    cut : float or None
        Cut the long tail at ``cut`` x p99 (default 2); None shows all.

    Returns
    -------
    matplotlib.axes.Axes

    Examples
    --------
    >>> import matplotlib; matplotlib.use("Agg")
    >>> import cdpkit as cdp
    >>> p = cdp.Pipeline("doc")
    >>> p.add_source("http", queue="jobs")
    >>> p.add_queue("jobs", max_batch_size=10, max_batch_timeout=1)
    >>> p.add_consumer("jobs", service={"base": 0.01, "per_message": 0.001}, calls="Scorer")
    >>> p.add_actor("Scorer", service=0.01, instances=20, skew=1.2)
    >>> res = cdp.simulate(p, cdp.Poisson(rate=50), duration=10, seed=1)
    >>> ax = plot_latency(res)
    >>> [t.get_gid() for t in ax.texts], ax.get_legend_handles_labels()[1]
    (['p50', 'p95', 'p99'], ['end to end', 'wait before first delivery'])
    """
    ax = _axes(ax)
    e2e = results.end_to_end["latency"].dropna()
    m = results.messages
    wait = m.loc[m["queue"].isin(results.entry_queues), "wait"].dropna()
    if not len(e2e) and not len(wait):
        return _empty(ax, "latency", "no finished messages")
    for label, values in (("end to end", e2e), ("wait before first delivery", wait)):
        x = np.sort(values.to_numpy())
        ax.step(x, np.arange(1, len(x) + 1) / max(len(x), 1), where="post", label=label)
    marks = e2e.quantile(list(PERCENTILES)) if len(e2e) else pd.Series(dtype=float)
    for (q, value), y in zip(marks.items(), (0.04, 0.22, 0.40)):   # as Results.summary() does
        ax.axvline(value, color="grey", ls=":", lw=1)
        ax.annotate(f"p{round(q * 100)} {value:.3g} s", (value, y), xytext=(-2, 0),
                    textcoords="offset points", rotation=90, ha="right", va="bottom",
                    fontsize=8, gid=f"p{round(q * 100)}")
    if log:
        ax.set_xscale("log")
    elif cut and len(e2e):
        right = cut * max(marks.iloc[-1], wait.quantile(PERCENTILES[-1]) if len(wait) else 0.0)
        if right < max(e2e.max(), wait.max() if len(wait) else 0.0):
            ax.set_xlim(0, right)
            ax.set_title(f"latency (cut at {cut:g} x p99)")
    ax.set(xlabel="seconds", ylabel="share of messages")
    if not ax.get_title():
        ax.set_title("latency")
    ax.set_ylim(0, 1.02)
    ax.legend(fontsize=8, loc="lower right")
    return ax


def plot_batch_sizes(results: Results, queues: Sequence[str] | None = None,
                     ax: Axes | None = None) -> Axes:
    """Histogram of messages per batch, stacked by queue (counts sum to the batches).

    Parameters
    ----------
    results : Results
        What :func:`~cdpkit.simulate` returned.
    queues : list of str, optional
        The queues to count (default: every queue of the pipeline).
    ax : matplotlib Axes, optional
        Where to draw; default a new figure.

    Returns
    -------
    matplotlib.axes.Axes

    Examples
    --------
    >>> import matplotlib; matplotlib.use("Agg")
    >>> import cdpkit as cdp
    >>> p = cdp.Pipeline("doc")
    >>> p.add_source("http", queue="jobs")
    >>> p.add_queue("jobs", max_batch_size=10, max_batch_timeout=1)
    >>> p.add_consumer("jobs", service={"base": 0.01, "per_message": 0.001}, calls="Scorer")
    >>> p.add_actor("Scorer", service=0.01, instances=20, skew=1.2)
    >>> res = cdp.simulate(p, cdp.Poisson(rate=50), duration=10, seed=1)
    >>> ax = plot_batch_sizes(res)
    >>> bool(sum(bar.get_height() for bar in ax.patches) == len(res.batches))
    True
    """
    ax = _axes(ax)
    b = _batches(results)
    present = set(b["queue"])
    names = [q for q in _queues(results, queues) if q in present]
    if not names:
        return _empty(ax, "batch sizes", "no batches")
    data = [b.loc[b["queue"] == q, "size"].to_numpy() for q in names]
    top = int(max(d.max() for d in data))
    containers = ax.hist(data, bins=np.arange(0.5, top + 1.5), stacked=True)[2]
    for container, name in zip(containers, names):   # one legend entry per queue
        container.set_label(name)
    ax.set(title="batch sizes", xlabel="messages per batch", ylabel="batches")
    ax.legend(fontsize=8)
    return ax


def plot_attempts(results: Results, ax: Axes | None = None) -> Axes:
    """Messages by number of deliveries, one group of bars per queue, on a log scale.

    1 delivery = succeeded or failed for good the first time; more = retried.

    Parameters
    ----------
    results : Results
        What :func:`~cdpkit.simulate` returned.
    ax : matplotlib Axes, optional
        Where to draw; default a new figure.

    Returns
    -------
    matplotlib.axes.Axes

    Examples
    --------
    >>> import matplotlib; matplotlib.use("Agg")
    >>> import cdpkit as cdp
    >>> p = cdp.Pipeline("doc")
    >>> p.add_source("http", queue="jobs")
    >>> p.add_queue("jobs", max_batch_size=10, max_batch_timeout=1)
    >>> p.add_consumer("jobs", service={"base": 0.01, "per_message": 0.001}, calls="Scorer")
    >>> p.add_actor("Scorer", service=0.01, instances=20, skew=1.2)
    >>> res = cdp.simulate(p, cdp.Poisson(rate=50), duration=10, seed=1)
    >>> plot_attempts(res).get_yscale()
    'log'
    """
    ax = _axes(ax)
    m = results.messages
    counts = pd.crosstab(m["deliveries"], m["queue"].astype(str))
    names = [q for q in _queues(results) if q in counts.columns]
    if not names:
        return _empty(ax, "deliveries per message", "no messages")
    width = 0.8 / max(len(names), 1)
    for i, queue in enumerate(names):
        ax.bar(counts.index + (i - (len(names) - 1) / 2) * width, counts[queue], width, label=queue)
    ax.set_xticks(counts.index)
    ax.set_yscale("log")
    ax.set(title="deliveries per message", xlabel="deliveries", ylabel="messages")
    ax.legend(fontsize=8)
    return ax


def plot_outcomes(results: Results, ax: Axes | None = None) -> Axes:
    """How every message ended, per queue (stacked horizontal bars).

    Acked first time, acked after retries, dead-lettered, dropped or still in flight; each
    bar is labelled with its total (see :func:`outcome_counts`).

    Parameters
    ----------
    results : Results
        What :func:`~cdpkit.simulate` returned.
    ax : matplotlib Axes, optional
        Where to draw; default a new figure.

    Returns
    -------
    matplotlib.axes.Axes

    Examples
    --------
    >>> import matplotlib; matplotlib.use("Agg")
    >>> import cdpkit as cdp
    >>> p = cdp.Pipeline("doc")
    >>> p.add_source("http", queue="jobs")
    >>> p.add_queue("jobs", max_batch_size=10, max_batch_timeout=1)
    >>> p.add_consumer("jobs", service={"base": 0.01, "per_message": 0.001}, calls="Scorer")
    >>> p.add_actor("Scorer", service=0.01, instances=20, skew=1.2)
    >>> res = cdp.simulate(p, cdp.Poisson(rate=50), duration=10, seed=1)
    >>> ax = plot_outcomes(res)
    >>> [t.get_text() for t in ax.get_yticklabels()], ax.get_legend_handles_labels()[1]
    (['jobs'], ['acked'])
    """
    ax = _axes(ax)
    table = outcome_counts(results)
    if table.empty:
        return _empty(ax, "outcomes", "no messages")
    left = np.zeros(len(table))
    for outcome in OUTCOMES:
        values = table[outcome].to_numpy()
        if values.any():
            ax.barh(table.index, values, left=left, color=OUTCOME_COLOURS[outcome],
                    label=outcome.replace("_", " "))
        left += values
    for y, total in enumerate(left):
        ax.annotate(f"{total:,.0f}", (total, y), xytext=(3, 0), textcoords="offset points",
                    va="center", fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 1.12 * max(left.max(), 1))
    ax.set(title="message outcomes", xlabel="messages")
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=3, frameon=False)
    return ax


def plot_actor_utilisation(results: Results, ax: Axes | None = None, bins: int = 100) -> Axes:
    """Share of each actor class's instances busy over time, one step line per class.

    See :func:`actor_utilisation`; without actors the axes say so.

    Parameters
    ----------
    results : Results
        What :func:`~cdpkit.simulate` returned.
    ax : matplotlib Axes, optional
        Where to draw; default a new figure.
    bins : int
        How many time bins (default 100).

    Returns
    -------
    matplotlib.axes.Axes

    Examples
    --------
    >>> import matplotlib; matplotlib.use("Agg")
    >>> import cdpkit as cdp
    >>> p = cdp.Pipeline("doc")
    >>> p.add_source("http", queue="jobs")
    >>> p.add_queue("jobs", max_batch_size=10, max_batch_timeout=1)
    >>> p.add_consumer("jobs", service={"base": 0.01, "per_message": 0.001}, calls="Scorer")
    >>> p.add_actor("Scorer", service=0.01, instances=20, skew=1.2)
    >>> res = cdp.simulate(p, cdp.Poisson(rate=50), duration=10, seed=1)
    >>> plot_actor_utilisation(res, bins=20).get_legend_handles_labels()[1]
    ['Scorer']
    """
    ax = _axes(ax)
    util = actor_utilisation(results, bins)
    if util.empty:
        return _empty(ax, "actor utilisation", "no actors")
    for actor in util.columns:
        ax.stairs(100 * util[actor].to_numpy(), np.append(util.index, _horizon(results)), label=actor)
    ax.set(title="actor utilisation", xlabel="virtual time (s)", ylabel="% of instances busy")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=7)
    return ax


def plot_hot_keys(results: Results, actor: str | None = None, top: int = 10,
                  ax: Axes | None = None) -> Axes:
    """Calls per actor instance (key), the ``top`` busiest, as horizontal bars.

    Each bar is labelled with its share of the calls: a skewed key popularity shows as a
    few long bars.

    Parameters
    ----------
    results : Results
        What :func:`~cdpkit.simulate` returned.
    actor : str, optional
        One actor class (its class name or binding); default all.
    top : int
        How many instances to show (default 10).
    ax : matplotlib Axes, optional
        Where to draw; default a new figure.

    Returns
    -------
    matplotlib.axes.Axes

    Examples
    --------
    >>> import matplotlib; matplotlib.use("Agg")
    >>> import cdpkit as cdp
    >>> p = cdp.Pipeline("doc")
    >>> p.add_source("http", queue="jobs")
    >>> p.add_queue("jobs", max_batch_size=10, max_batch_timeout=1)
    >>> p.add_consumer("jobs", service={"base": 0.01, "per_message": 0.001}, calls="Scorer")
    >>> p.add_actor("Scorer", service=0.01, instances=20, skew=1.2)
    >>> res = cdp.simulate(p, cdp.Poisson(rate=50), duration=10, seed=1)
    >>> ax = plot_hot_keys(res, "Scorer", top=5)
    >>> len(ax.patches), ax.get_title()
    (5, 'hot keys (Scorer): top 5 of 20 instances')
    """
    ax = _axes(ax)
    calls = _calls(results)
    if actor is not None:
        calls = calls[calls["binding"] == _binding(results, actor)]
    title = f"hot keys ({actor or 'all actors'})"
    if not len(calls):
        return _empty(ax, title, "no actor calls")
    per = calls["object"].value_counts()
    shown = per.head(top)
    ax.barh(shown.index, shown.to_numpy(), color="#8e24aa")
    for y, n in enumerate(shown.to_numpy()):
        ax.annotate(f"{n / len(calls):.1%}", (n, y), xytext=(3, 0), textcoords="offset points",
                    va="center", fontsize=8)
    ax.invert_yaxis()
    ax.margins(x=0.12)
    ax.set(title=f"{title}: top {len(shown)} of {len(per)} instances", xlabel="calls")
    ax.tick_params(axis="y", labelsize=7)
    return ax


def plot_cost(results: Results, period: str = "monthly", ax: Axes | None = None) -> Axes:
    """Cost by priced item (:meth:`Results.cost`), coloured by service.

    Items that cost nothing are left out; the title has the total.

    Parameters
    ----------
    results : Results
        What :func:`~cdpkit.simulate` returned.
    period : {"monthly", "run"}
        ``"monthly"`` (at this run's rate, after free tiers) or ``"run"``.
    ax : matplotlib Axes, optional
        Where to draw; default a new figure.

    Returns
    -------
    matplotlib.axes.Axes

    Raises
    ------
    ConfigError
        For another ``period``.

    Examples
    --------
    >>> import matplotlib; matplotlib.use("Agg")
    >>> import cdpkit as cdp
    >>> p = cdp.Pipeline("doc")
    >>> p.add_source("http", queue="jobs")
    >>> p.add_queue("jobs", max_batch_size=10, max_batch_timeout=1)
    >>> p.add_consumer("jobs", service={"base": 0.01, "per_message": 0.001}, calls="Scorer")
    >>> p.add_actor("Scorer", service=0.01, instances=20, skew=1.2)
    >>> res = cdp.simulate(p, cdp.Poisson(rate=50), duration=10, seed=1)
    >>> plot_cost(res, period="run").get_title()
    'cost per run: $0.00'
    """
    if period not in ("monthly", "run"):
        raise ConfigError(f"plot_cost: period={period!r} is not allowed; allowed: 'monthly', 'run'")
    ax = _axes(ax)
    table = _cost(results)
    column = f"{period}_cost"
    rows = table[table[column] > 0]
    total = float(table[column].sum())
    title = f"cost per {'month' if period == 'monthly' else 'run'}: ${total:,.2f}"
    if rows.empty:
        return _empty(ax, title, "nothing to pay (free tier)")
    ax.barh(rows["item"], rows[column], color=[SERVICE_COLOURS.get(s, "grey") for s in rows["service"]])
    for y, value in enumerate(rows[column]):
        ax.annotate(f"${value:,.2f}", (value, y), xytext=(3, 0), textcoords="offset points",
                    va="center", fontsize=8)
    ax.invert_yaxis()
    ax.margins(x=0.15)
    ax.set(title=title, xlabel="USD")
    from matplotlib.patches import Patch
    services = list(dict.fromkeys(rows["service"]))
    ax.legend(handles=[Patch(color=SERVICE_COLOURS.get(s, "grey"), label=s) for s in services],
              fontsize=8, loc="best")
    return ax


def dashboard(results: Results, fig: Figure | None = None) -> Figure:
    """One figure with the main plots under a headline of the summary.

    Six panels: :func:`plot_backlog`, :func:`plot_latency`, :func:`plot_batch_sizes`,
    :func:`plot_outcomes`, :func:`plot_actor_utilisation` (or :func:`plot_attempts` when there
    are no actors) and :func:`plot_cost`; the title is :func:`headline`, and platform limits
    the run came near (:attr:`Results.warnings`) are written underneath in red.

    Parameters
    ----------
    results : Results
        What :func:`~cdpkit.simulate` returned.
    fig : matplotlib Figure, optional
        Draw into it (cleared first); default a new 13 x 11 in figure.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import matplotlib; matplotlib.use("Agg")
    >>> import cdpkit as cdp
    >>> p = cdp.Pipeline("doc")
    >>> p.add_source("http", queue="jobs")
    >>> p.add_queue("jobs", max_batch_size=10, max_batch_timeout=1)
    >>> p.add_consumer("jobs", service={"base": 0.01, "per_message": 0.001}, calls="Scorer")
    >>> p.add_actor("Scorer", service=0.01, instances=20, skew=1.2)
    >>> res = cdp.simulate(p, cdp.Poisson(rate=50), duration=10, seed=1)
    >>> fig = dashboard(res)
    >>> len(fig.axes), fig.axes[5].get_title()
    (6, 'cost per month: $195.57')
    """
    if fig is None:
        import matplotlib.pyplot as plt
        fig = plt.figure(figsize=(13, 11), layout="constrained")
    else:
        fig.clear()
    axes = fig.subplots(3, 2)
    plot_backlog(results, ax=axes[0, 0])
    plot_latency(results, ax=axes[0, 1])
    plot_batch_sizes(results, ax=axes[1, 0])
    plot_outcomes(results, ax=axes[1, 1])
    if results.pipeline.nodes("actor"):
        plot_actor_utilisation(results, ax=axes[2, 0])
    else:
        plot_attempts(results, ax=axes[2, 0])
    plot_cost(results, ax=axes[2, 1])
    fig.suptitle(headline(results))
    warnings = results.warnings          # platform limits came near or over: say so
    if len(warnings):
        fig.supxlabel("limits: " + "; ".join(f"{w.what} at {w.where} ({w.value:,.4g} of {w.limit:,.4g})"
                                             for w in warnings.itertuples()), color="#c62828", fontsize=9)
    return fig


def headline(results: Results) -> str:
    """One line: messages, throughput, mean batch, p99, how every message ended, errors, cost.

    Dead-lettered and dropped (and how many of those expired) are always shown; messages
    still in flight and handler errors when there are any; then the monthly cost.

    Parameters
    ----------
    results : Results
        What :func:`~cdpkit.simulate` returned.

    Returns
    -------
    str

    Examples
    --------
    >>> import matplotlib; matplotlib.use("Agg")
    >>> import cdpkit as cdp
    >>> p = cdp.Pipeline("doc")
    >>> p.add_source("http", queue="jobs")
    >>> p.add_queue("jobs", max_batch_size=10, max_batch_timeout=1)
    >>> p.add_consumer("jobs", service={"base": 0.01, "per_message": 0.001}, calls="Scorer")
    >>> p.add_actor("Scorer", service=0.01, instances=20, skew=1.2)
    >>> res = cdp.simulate(p, cdp.Poisson(rate=50), duration=10, seed=1)
    >>> headline(res)
    'doc: 529 messages in 10 s, acked 52.9 /s, mean batch 9.98, p99 1000 ms, dead-lettered 0, dropped 0, $195.57/month'
    """
    s = _summary(results)
    monthly = float(_cost(results)["monthly_cost"].sum())
    parts = [f"{results.pipeline.name}: {s['messages']:,.0f} messages in {results.duration:g} s",
             f"acked {fmt('throughput', s['throughput'])}", f"mean batch {fmt('mean_batch', s['mean_batch'])}",
             f"p99 {fmt('p99_latency', s['p99_latency'])}", f"dead-lettered {s['dead_lettered']:,.0f}",
             f"dropped {s['dropped']:,.0f}"]
    expired = expired_count(results)
    if expired:
        parts[-1] += f" ({expired:,} expired)"
    if s["in_flight"]:
        parts.append(f"in flight {s['in_flight']:,.0f}")
    if s.get("errors", 0):
        parts.append(f"handler errors {s['errors']:,.0f}")
    return ", ".join(parts) + f", ${monthly:,.2f}/month"


def expired_count(results: Results) -> int:
    """Messages of the entry queues dropped because their retention period expired.

    Parameters
    ----------
    results : Results
        What :func:`~cdpkit.simulate` returned.

    Returns
    -------
    int
    """
    ledger = results.runtime.ledger
    codes = {ledger.queue_code(q) for q in results.entry_queues}
    queue = ledger.column("queue")
    return sum(1 for row, why in ledger.drop_reasons.items()
               if "retention" in why and int(queue[row]) in codes)


# ----------------------------------------------------------------------------- sweep plots

def heatmap(table: pd.DataFrame, x: str, y: str, value: str, ax: Axes | None = None,
            cmap: str = "viridis", fmt: str = ".3g") -> Axes:
    """``value`` of a :func:`~cdpkit.sweep` table over two of its settings, one cell per
    (``x``, ``y``) pair, annotated (rows sharing a pair, from other settings, are averaged).

    >>> import matplotlib; matplotlib.use("Agg")
    >>> t = pd.DataFrame({"q.max_batch_size": [10, 10, 100, 100], "q.max_batch_timeout": [1, 5, 1, 5],
    ...                   "p99_latency": [0.2, 0.3, 0.9, 1.1]})
    >>> ax = heatmap(t, "q.max_batch_size", "q.max_batch_timeout", "p99_latency")
    >>> ax.images[0].get_array().tolist()
    [[0.2, 0.9], [0.3, 1.1]]
    """
    ax = _axes(ax, (6.0, 4.0))
    grid = table.pivot_table(index=y, columns=x, values=value, aggfunc="mean")
    image = ax.imshow(grid.to_numpy(dtype=float), origin="lower", aspect="auto", cmap=cmap)
    ax.set_xticks(range(len(grid.columns)), [fmt_value(v) for v in grid.columns])
    ax.set_yticks(range(len(grid.index)), [fmt_value(v) for v in grid.index])
    for (i, j), v in np.ndenumerate(grid.to_numpy(dtype=float)):
        if not np.isnan(v):
            ax.text(j, i, format(v, fmt), ha="center", va="center", fontsize=8,
                    color="black" if image.norm(v) > 0.5 else "white")
    ax.set(xlabel=x, ylabel=y, title=value)
    ax.figure.colorbar(image, ax=ax, label=value)
    return ax


def cost_latency_front(table: pd.DataFrame, cost: str = "monthly_cost",
                       latency: str = "p99_latency", ax: Axes | None = None,
                       params: Sequence[str] | None = None) -> Axes:
    """Every configuration of a sweep by ``cost`` and ``latency``, the Pareto front highlighted.

    The Pareto-optimal configurations (:func:`pareto_front`) are joined, highlighted and
    labelled with their ``params`` (configurations that tie share one label, e.g.
    ``batch=100, timeout=1/5/30``).

    Parameters
    ----------
    table : DataFrame
        A :func:`~cdpkit.sweep` table.
    cost, latency : str
        The columns on the axes (default ``"monthly_cost"`` and ``"p99_latency"``).
    ax : matplotlib Axes, optional
        Where to draw; default a new figure.
    params : list of str, optional
        The columns to label points with (default: the table's ``<node>.<setting>`` columns).

    Returns
    -------
    matplotlib.axes.Axes

    Examples
    --------
    >>> import matplotlib; matplotlib.use("Agg")
    >>> t = pd.DataFrame({"q.max_batch_size": [10, 50, 100], "monthly_cost": [9.0, 4.0, 5.0],
    ...                   "p99_latency": [0.2, 0.5, 0.9]})
    >>> ax = cost_latency_front(t)
    >>> [a.get_text() for a in ax.texts]
    ['batch=50', 'batch=10']
    """
    ax = _axes(ax, (6.0, 4.0))
    on = pareto_front(table, cost, latency)
    ax.scatter(table[cost], table[latency], color="#b0bec5", label="configurations", zorder=2)
    front = table[on].sort_values([cost, latency])
    ax.step(front[cost], front[latency], where="post", color="C3", lw=1, zorder=2)
    ax.scatter(front[cost], front[latency], color="C3", label="Pareto front", zorder=3)
    params = list(params) if params is not None else [c for c in table.columns if "." in str(c)]
    names = _short_names(params)
    for (x, y), tied in front.groupby([cost, latency], sort=False):   # one label per point
        text = ", ".join(f"{names[c]}=" + "/".join(fmt_value(v) for v in pd.unique(tied[c]))
                         for c in params)
        ax.annotate(text, (x, y), xytext=(4, 4), textcoords="offset points", fontsize=7)
    ax.set(xlabel=cost, ylabel=latency, title=f"{cost} vs {latency}")
    ax.legend(fontsize=8)
    return ax


def _short_names(params: Sequence[str]) -> dict[str, str]:
    """``cdp-command-queue.max_batch_size`` -> ``batch`` unless two params would collide."""
    short = {c: SHORT_SETTINGS.get(str(c).rpartition(".")[2], str(c).rpartition(".")[2]) for c in params}
    if len(set(short.values())) < len(short):
        return {c: str(c) for c in params}
    return short
