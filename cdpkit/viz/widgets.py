"""A live explorer: sliders for one queue's settings and for the traffic that re-simulate
the pipeline and redraw the :func:`~cdpkit.viz.plots.dashboard` and summary table.

Moving a control re-runs :func:`cdpkit.simulate` on a copy of the pipeline with the
changed settings (``pipeline.set(...)``; the model itself is never modified) and the
workload rebuilt at the chosen rate, with an optional burst. Everything a slider does can
be done from code: ``explorer.set(batch_size=50)`` moves sliders and re-simulates once,
``explorer.result`` is the latest :class:`~cdpkit.sim.results.Results`, and
``explorer.pipeline`` / ``explorer.workload`` are what it ran.

>>> import cdpkit as cdp
>>> p = cdp.Pipeline("doc")
>>> p.add_source("http", queue="jobs")
>>> p.add_queue("jobs", max_batch_size=10, max_batch_timeout=1)
>>> p.add_consumer("jobs", service={"base": 0.01, "per_message": 0.001})
>>> explorer = explore(p, cdp.Poisson(rate=50), duration=10, draw=False)
>>> round(float(explorer.result.summary()["mean_batch"]), 1)
10.0
>>> explorer.controls["batch_size"].value = 2        # as if the slider moved
>>> round(float(explorer.result.summary()["mean_batch"]), 1)
2.0
>>> explorer.overrides
{'jobs.max_batch_size': 2}
"""

from __future__ import annotations

import html
import io
from contextlib import contextmanager
from dataclasses import replace
from time import perf_counter
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets

from ..errors import BudgetError, CdpkitError, ConfigError
from ..model.faults import Faults
from ..model.workload import Constant, Diurnal, Piecewise, Poisson, Workload
from ..runtime.budget import Budget
from ..runtime.display import fmt
from ..runtime.queues import ConsumerSettings
from ..runtime.semantics import PRODUCTION, resolve
from ..runtime.settings import QUEUE_SETTINGS
from ..sim.simulate import simulate
from .plots import dashboard, headline

if TYPE_CHECKING:
    from ..model.pipeline import Pipeline
    from ..sim.results import Results

#: Controls that change the selected queue's settings, and the pipeline setting each one sets.
QUEUE_KNOBS = {"batch_size": "max_batch_size", "timeout": "max_batch_timeout",
               "retries": "max_retries", "retry_delay": "retry_delay",
               "concurrency": "max_concurrency", "failure": "consumer.failure"}


#: The most work one re-simulation may do (~2 s): a slider position that would take longer
#: (failure 1.0 with 100 retries, say) stops with a BudgetError shown in the headline.
EXPLORER_BUDGET = Budget(events=150_000)

#: Slider ends where the table's range is wider than a slider can show usefully (the slider
#: grows when a model's value is larger).
SLIDER_MAX = {"retry_delay": 300}


def _setting_slider(name: str, **slider: Any) -> widgets.Widget:
    """A slider over one queue setting: range and label from the settings table."""
    setting = QUEUE_SETTINGS[name]
    high = SLIDER_MAX.get(name, setting.high_for(PRODUCTION))
    if setting.kind == "int":
        return widgets.IntSlider(min=setting.low, max=high, description=setting.label, **slider)
    return widgets.FloatSlider(min=setting.low, max=high, step=0.5, description=setting.label, **slider)


# ------------------------------------------------------------------------------ workload

def base_rate(workload: Workload) -> float | None:
    """The rate a workload's rate slider starts at.

    ``rate`` of Poisson / Constant, the first step of a Piecewise schedule, the mean of a
    Diurnal; None for a replayed trace (its rate cannot be changed).

    Examples
    --------
    >>> base_rate(Poisson(rate=7)), base_rate(Piecewise(schedule=[(0, 10), (5, 30)]))
    (7.0, 10.0)
    """
    if isinstance(workload, (Poisson, Constant)):
        return workload.rate
    if isinstance(workload, Piecewise):
        return workload.schedule[0][1]
    if isinstance(workload, Diurnal):
        return workload.mean
    return None


def with_rate(workload: Workload, rate: float, burst: float = 1.0,
              window: tuple[float, float] = (0.0, 0.0)) -> Workload:
    """``workload`` scaled to start at ``rate`` messages/s (:func:`base_rate`), and
    multiplied by ``burst`` from ``window[0]`` to ``window[1]`` seconds (a Piecewise
    schedule). The same workload object when nothing changes; same types and sizes.

    >>> w = with_rate(Poisson(rate=10), 20, burst=5, window=(3, 4))
    >>> type(w).__name__, w.schedule
    ('Piecewise', [(0.0, 20.0), (3.0, 100.0), (4.0, 20.0)])
    >>> with_rate(Piecewise(schedule=[(0, 10), (5, 30)]), 20).schedule
    [(0.0, 20.0), (5.0, 60.0)]
    """
    base = base_rate(workload)
    if rate == base and burst == 1:
        return workload
    if base is None:
        raise ConfigError(f"{type(workload).__name__} workload: the rate and burst cannot be "
                          "changed; allowed: Poisson, Constant, Piecewise or Diurnal workloads")
    if isinstance(workload, Diurnal):
        if burst != 1:
            raise ConfigError("Diurnal workload: burst is not allowed; use a Poisson or Piecewise workload")
        return replace(workload, mean=rate)
    if burst == 1 and isinstance(workload, (Poisson, Constant)):
        return replace(workload, rate=rate)
    scale = rate / base if base else 0.0
    shape = workload if isinstance(workload, Piecewise) else Piecewise(schedule=[(0.0, base)])
    start, end = window
    times = sorted({t for t, _ in shape.schedule} | ({start, end} if burst != 1 else set()))
    schedule = [(t, shape.rate_at(t) * scale * (burst if start <= t < end else 1.0)) for t in times]
    return Piecewise(schedule=schedule, types=dict(workload.types), size=workload.size)


# ------------------------------------------------------------------------------ explorer

class Explorer(widgets.VBox):
    """The widget :func:`explore` returns (an ``ipywidgets.VBox``).

    ``controls``: the widgets by name (``queue``, ``batch_size``, ``timeout``, ``retries``,
    ``retry_delay``, ``concurrency``, ``failure``, ``rate``, ``burst``, ``semantics``);
    ``overrides``: the pipeline settings changed from the model; ``result``, ``pipeline``,
    ``workload``: the latest run and what it ran; ``error``: why the latest run failed
    (the previous result stays). :meth:`update` re-simulates, :meth:`set` moves controls.
    """

    def __init__(self, pipeline: Pipeline, workload: Workload, duration: float = 60.0,
                 queue: str | None = None, seed: int = 0, semantics: str = "production",
                 draw: bool = True, burst_window: tuple[float, float] = (0.4, 0.5),
                 budget: Budget | None = None) -> None:
        pipeline.validate()
        self.budget = EXPLORER_BUDGET if budget is None else budget
        self.model = pipeline
        self.base_workload = workload
        self.duration = float(duration)
        self.seed = seed
        self.draw = draw
        self.burst_window = (burst_window[0] * self.duration, burst_window[1] * self.duration)
        self.overrides: dict[str, Any] = {}
        self.result: Results | None = None
        self.pipeline: Pipeline = pipeline
        self.workload: Workload = workload
        self.error: Exception | None = None
        self._holding = False       # moves are recorded but not simulated until update()
        self._loading = False       # controls show the model's values: not a user's move
        queues = [d["queue"] for _, d in pipeline.graph.nodes(data=True) if d["kind"] == "consumer"]
        if not queues:
            raise ConfigError(f"pipeline {pipeline.name!r} has no consumer to explore; add one with add_consumer()")
        entry = [pipeline.spec(s).queue for s in pipeline.nodes("source")]
        queue = queue if queue is not None else next((q for q in entry if q in queues), queues[0])
        if queue not in queues:
            raise ConfigError(f"explore: queue={queue!r} is not allowed; allowed: a queue with a "
                              f"consumer: {', '.join(queues)}")
        self.controls = self._make_controls(queues, queue, semantics)
        self.status = widgets.HTML(layout=widgets.Layout(width="100%"))
        # everything stacks and wraps: it fits a notebook ~1,000 px wide (or less)
        self.image = widgets.Image(format="png", layout=widgets.Layout(width="100%", max_width="864px"))
        self.table = widgets.HTML(layout=widgets.Layout(width="100%"))
        left = widgets.VBox([self.controls[k] for k in ("queue", *QUEUE_KNOBS)])
        right = widgets.VBox([self.controls[k] for k in ("rate", "burst", "outage", "semantics")])
        super().__init__([widgets.HBox([left, right], layout=widgets.Layout(flex_flow="row wrap")),
                          self.status, self.table, self.image],
                         layout=widgets.Layout(width="100%", max_width="1000px"))
        self._load_queue()
        for control in self.controls.values():
            control.observe(self._changed, names="value")
        self.update()

    # -- controls ------------------------------------------------------------------------
    def _make_controls(self, queues: list[str], queue: str, semantics: str) -> dict[str, widgets.Widget]:
        style = {"description_width": "120px"}
        slider = {"continuous_update": False, "style": style, "layout": widgets.Layout(width="440px")}
        rate = base_rate(self.base_workload)
        return {
            "queue": widgets.Dropdown(options=queues, value=queue, description="queue", style=style),
            **{name: _setting_slider(QUEUE_KNOBS[name], **slider)
               for name in ("batch_size", "timeout", "retries", "retry_delay", "concurrency")},
            "failure": widgets.FloatSlider(min=0, max=1, step=0.005, readout_format=".3f",
                                           description="failure rate", **slider),
            "rate": widgets.FloatSlider(value=rate or 0.0, min=0, max=max(4 * (rate or 0.0), 10.0),
                                        step=max((rate or 0.0) / 100, 0.01), disabled=rate is None,
                                        description="arrival rate (/s)", **slider),
            "burst": widgets.FloatSlider(value=1.0, min=1, max=20, step=0.5, description="burst x",
                                         disabled=rate is None or isinstance(self.base_workload, Diurnal),
                                         tooltip="rate multiplier during the burst window",
                                         **slider),
            # incident rehearsal: the selected queue's consumer throws on every invocation
            # (a bad deploy) from start to end; (0, 0) = no outage
            "outage": widgets.FloatRangeSlider(value=(0.0, 0.0), min=0.0, max=self.duration,
                                               step=max(self.duration / 200, 0.01),
                                               description="outage (s)",
                                               tooltip="the selected consumer throws in this window",
                                               **slider),
            "semantics": widgets.Dropdown(options=["production", "local"], value=semantics,
                                          description="semantics", style=style),
        }

    def _model_value(self, name: str, queue: str) -> Any:
        """What the model (not the overrides) says for a queue control."""
        settings = ConsumerSettings.of(self.model.spec(queue)).resolved(
            resolve(self.controls["semantics"].value))
        consumer = self.model.spec(f"{queue}.consumer")
        if name == "failure":
            return consumer.failure
        if name == "retry_delay" and consumer.handler is None:
            return int(consumer.retry.base)
        return getattr(settings, QUEUE_KNOBS[name])

    def _setting(self, name: str, queue: str, value: Any) -> tuple[str, Any]:
        """The ``pipeline.set`` key and value for a queue control (a spec consumer's retry
        delay is the base of its retry policy; a handler's is the queue's ``retry_delay``)."""
        consumer = self.model.spec(f"{queue}.consumer")
        if name == "retry_delay" and consumer.handler is None:
            return f"{queue}.consumer.retry", replace(consumer.retry, base=float(value))
        return f"{queue}.{QUEUE_KNOBS[name]}", value

    def _load_queue(self) -> None:
        """Show the selected queue's settings (model values, or overrides made earlier)."""
        queue = self.controls["queue"].value
        handler = self.model.spec(f"{queue}.consumer").handler is not None
        loading, self._loading = self._loading, True
        try:
            for name in QUEUE_KNOBS:
                key, _ = self._setting(name, queue, 0)
                value = self.overrides.get(key, self._model_value(name, queue))
                if name == "retry_delay" and not isinstance(value, int):   # a RetryPolicy override
                    value = int(value.base)
                control = self.controls[name]
                control.max = max(control.max, value)
                control.value = value
            self.controls["failure"].disabled = handler
            # local semantics run one batch at a time per queue: max_concurrency does nothing
            local = not resolve(self.controls["semantics"].value).concurrent_consumers
            self.controls["concurrency"].disabled = local
            self.controls["concurrency"].tooltip = ("ignored under local semantics (one batch at a time)"
                                                    if local else "")
        finally:
            self._loading = loading

    @contextmanager
    def hold(self):
        """Move several controls without re-simulating after each (``with explorer.hold():``),
        then call :meth:`update` once; every move is recorded in :attr:`overrides` as it is made.
        :meth:`set` does this for you.
        """
        holding, self._holding = self._holding, True
        try:
            yield self
        finally:
            self._holding = holding

    def _changed(self, change: dict) -> None:
        if self._loading:
            return
        name = next(k for k, c in self.controls.items() if c is change["owner"])
        if name in ("queue", "semantics"):
            self._load_queue()
        elif name in QUEUE_KNOBS:
            self._record(name)       # also inside hold(): what the controls show is what runs
        if not self._holding:
            self.update()

    def _record(self, name: str) -> None:
        queue = self.controls["queue"].value
        value = self.controls[name].value
        key, setting = self._setting(name, queue, value)
        if value == self._model_value(name, queue):
            self.overrides.pop(key, None)
        else:
            self.overrides[key] = setting

    def set(self, **values: Any) -> Results | None:
        """Move controls by name, then re-simulate once.

        Parameters
        ----------
        **values
            Control name -> value: ``queue``, ``batch_size``, ``timeout``, ``retries``,
            ``retry_delay``, ``concurrency``, ``failure``, ``rate``, ``burst``, ``outage``
            (``(start, end)`` seconds: the selected consumer throws), ``semantics``.
            ``queue`` and ``semantics`` are applied first (they reload the queue's settings).

        Returns
        -------
        Results or None
            The new result; None if the run failed (see ``error``).

        Raises
        ------
        ConfigError
            For a control that does not exist.

        Examples
        --------
        >>> import cdpkit as cdp
        >>> p = cdp.Pipeline("doc")
        >>> p.add_source("http", queue="jobs")
        >>> p.add_queue("jobs", max_batch_size=10, max_batch_timeout=1)
        >>> p.add_consumer("jobs", service={"base": 0.01, "per_message": 0.001})
        >>> ex = explore(p, cdp.Poisson(rate=50), duration=10, draw=False)
        >>> ex.set(batch_size=50, rate=100)
        <Results 'doc': 1068 messages, 1068 acked, 0 dead-lettered, p99 0.938s>
        >>> ex.overrides
        {'jobs.max_batch_size': 50}
        >>> ex.set(batchsize=1)
        Traceback (most recent call last):
        ...
        cdpkit.errors.ConfigError: explorer controls ['batchsize'] do not exist; allowed: queue, batch_size, timeout, retries, retry_delay, concurrency, failure, rate, burst, outage, semantics
        """
        unknown = set(values) - set(self.controls)
        if unknown:
            raise ConfigError(f"explorer controls {sorted(unknown)} do not exist; allowed: "
                              + ", ".join(self.controls))
        with self.hold():            # each move is recorded (_changed); one run at the end
            for name in ("queue", "semantics"):
                if name in values:
                    self.controls[name].value = values.pop(name)
            for name, value in values.items():
                self.controls[name].value = value
        return self.update()

    # -- running -------------------------------------------------------------------------
    def configured(self) -> tuple[Pipeline, Workload]:
        """The pipeline (model + :attr:`overrides`) and workload the controls describe.

        Returns
        -------
        tuple of (Pipeline, Workload)
            What the next :meth:`update` simulates; the model itself is not changed.
        """
        pipeline = self.model
        for key, value in self.overrides.items():
            pipeline = pipeline.set(key, value)
        workload = with_rate(self.base_workload, self.controls["rate"].value,
                             self.controls["burst"].value, self.burst_window)
        return pipeline, workload

    def faults(self) -> Faults | None:
        """The outage the ``outage`` control sets: the selected queue's consumer throws on
        every invocation in that window (None when the window is empty).

        >>> import cdpkit as cdp
        >>> p = cdp.Pipeline("doc")
        >>> p.add_source("http", queue="jobs")
        >>> p.add_queue("jobs", max_batch_size=10, max_batch_timeout=1)
        >>> p.add_consumer("jobs", service={"per_message": 0.001})
        >>> ex = explore(p, cdp.Poisson(rate=20), duration=60, draw=False)
        >>> ex.set(outage=(10, 30)).incidents()[["start", "end"]].values.tolist()
        [[10.0, 30.0]]
        """
        start, end = self.controls["outage"].value
        if end <= start:
            return None
        node = f"{self.controls['queue'].value}.consumer"
        return Faults([{"kind": "outage", "node": node, "mode": "throw", "start": start, "end": end}])

    def update(self) -> Results | None:
        """Re-simulate with the current controls and redraw.

        The headline, table and dashboard change together, once all three are ready; while
        the run goes the headline says "simulating…". A run over the explorer's ``budget``
        stops with the BudgetError shown instead (the previous result stays).

        Returns
        -------
        Results or None
            The new result; None if the run failed (``error`` says why).
        """
        started = perf_counter()
        self.status.value = f"<i>simulating… </i>{self.status.value}"
        try:
            pipeline, workload = self.configured()
            result = simulate(pipeline, workload, self.duration, seed=self.seed,
                              semantics=self.controls["semantics"].value, budget=self.budget,
                              faults=self.faults())
        except CdpkitError as error:
            self.error = error
            hint = (" (the explorer's limit: explore(..., budget=cdp.Budget(events=...)))"
                    if isinstance(error, BudgetError) else "")
            self.status.value = f"<b style='color:#c62828'>{html.escape(str(error) + hint)}</b>"
            return None
        self.result, self.pipeline, self.workload, self.error = result, pipeline, workload, None
        table = summary_html(result)
        image = self.png() if self.draw else None
        took = perf_counter() - started
        self.status.value = (f"<b>{html.escape(headline(result))}</b> "
                             f"<span style='color:#607d8b'>(updated in {took:.2f} s)</span>")
        self.table.value = table
        if image is not None:
            self.image.value = image
        return result

    def png(self, dpi: int = 72) -> bytes:
        """The latest result's dashboard as PNG bytes (what the image shows).

        Parameters
        ----------
        dpi : int
            Resolution (default 72).

        Returns
        -------
        bytes
        """
        from matplotlib.figure import Figure
        fig = Figure(figsize=(12, 10), layout="constrained")
        dashboard(self.result, fig=fig)
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=dpi)
        return buffer.getvalue()

    def __repr__(self) -> str:
        c = self.controls
        knobs = ", ".join(f"{name}={c[name].value!r}" for name in (*QUEUE_KNOBS, "rate", "burst"))
        tail = f"; error: {self.error}" if self.error else ""
        last = "" if self.result is None else f" -> {self.result!r}"
        return f"<Explorer {self.model.name!r} queue {c['queue'].value!r}: {knobs}{last}{tail}>"


def explore(pipeline: Pipeline, workload: Workload, duration: float = 60.0,
            queue: str | None = None, seed: int = 0, semantics: str = "production",
            draw: bool = True, burst_window: tuple[float, float] = (0.4, 0.5),
            budget: Budget | None = None) -> Explorer:
    """An interactive explorer of one queue's settings and the traffic, for a notebook.

    Sliders and dropdowns over one queue's settings (batch size, timeout, retries, retry
    delay, concurrency, consumer failure rate) and over the traffic (arrival rate, a burst of
    x times the rate during ``burst_window``, the semantics profile). Every change
    re-simulates ``duration`` seconds with ``seed`` and redraws the headline, the summary and
    the :func:`~cdpkit.viz.plots.dashboard`.

    Parameters
    ----------
    pipeline : Pipeline
        The model (not changed: moved settings are kept in ``explorer.overrides``).
    workload : Workload
        Poisson, Constant, Piecewise or Diurnal (a Replay cannot change rate).
    duration : float
        Seconds simulated per change (default 60).
    queue : str, optional
        The queue whose settings the sliders show (default: the first entry queue); a
        dropdown switches.
    seed : int
        The seed of every run.
    semantics : {"production", "local"}
        The profile the dropdown starts at.
    draw : bool
        Draw the dashboard (False: the headline and summary table only, faster).
    burst_window : (float, float)
        Where the burst is, as fractions of ``duration`` (default 0.4 to 0.5).
    budget : Budget, optional
        The most one re-simulation may do (default :data:`EXPLORER_BUDGET`, about 2 s);
        over it the explorer says so and keeps the previous result.

    Returns
    -------
    Explorer
        An ``ipywidgets.VBox``: display it. ``set(...)`` moves controls from code,
        ``result`` is the latest run, ``overrides`` the settings changed, ``error`` why the
        latest run failed.

    Examples
    --------
    >>> import cdpkit as cdp
    >>> p = cdp.Pipeline("doc")
    >>> p.add_source("http", queue="jobs")
    >>> p.add_queue("jobs", max_batch_size=10, max_batch_timeout=1)
    >>> p.add_consumer("jobs", service={"base": 0.01, "per_message": 0.001})
    >>> ex = explore(p, cdp.Poisson(rate=50), duration=10, draw=False)
    >>> ex.controls["batch_size"].value, ex.result
    (10, <Results 'doc': 548 messages, 548 acked, 0 dead-lettered, p99 0.907s>)
    """
    return Explorer(pipeline, workload, duration=duration, queue=queue, seed=seed,
                    semantics=semantics, draw=draw, burst_window=burst_window, budget=budget)


def summary_html(result: Results) -> str:
    """The run's summary as HTML: a grid of figures with units that wraps to the notebook's width.

    Each :meth:`Results.summary` figure, each queue's peak autoscaled consumers, and a red
    line per platform warning (a one-column table of 16 rows would not fit beside the
    dashboard).
    """
    cells = "".join(
        f"<div><span style='color:#607d8b'>{html.escape(str(name))}</span> "
        f"<b>{html.escape(fmt(name, value))}</b></div>"
        for name, value in result.summary().items())
    tl = result.timeline
    for queue in result.pipeline.nodes("queue"):      # the autoscaler's peak (timeline "consumers")
        peak = tl.loc[tl["node"] == queue, "consumers"].max()
        cells += (f"<div><span style='color:#607d8b'>consumers {html.escape(queue)} (peak)</span> "
                  f"<b>{0 if peak != peak else int(peak)}</b></div>")
    warned = "".join(f"<div style='color:#c62828'>limit: {html.escape(f'{w.what} at {w.where}: {w.advice}')}"
                     "</div>" for w in result.warnings.itertuples())
    return ("<div class='cdp-summary' style='display:grid;grid-template-columns:repeat(auto-fill,"
            f"minmax(170px,1fr));gap:2px 16px;font-size:12px'>{cells}</div>{warned}")
