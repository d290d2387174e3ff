"""``simulate(pipeline, workload, duration)``: build a Runtime from the pipeline's specs,
feed it the workload's arrivals, run it in virtual time, return :class:`Results`.

>>> import cdpkit as cdp
>>> p = cdp.Pipeline("mm1")
>>> p.add_source("http", queue="jobs")
>>> p.add_queue("jobs", max_batch_size=1, max_batch_timeout=0, max_concurrency=1)
>>> p.add_consumer("jobs", service={"base": {"exp": 1.0}})
>>> res = cdp.simulate(p, cdp.Poisson(rate=0.5), duration=2_000, seed=1)
>>> bool(0.7 < res.summary()["wait_mean"] < 1.3)   # M/M/1: Wq = rho / (mu - lambda) = 1.0
True
"""

from __future__ import annotations

import gc

import numpy as np
from tqdm.auto import tqdm

from ..errors import ConfigError
from ..model.pipeline import Pipeline
from ..model.workload import Workload
from ..runtime.runtime import Runtime
from ..runtime.semantics import Semantics
from .behaviour import (
    KeyPicker,
    SpecActors,
    SpecBodies,
    SpecConsumer,
    actor_streams,
    code_actor_caller,
    spec_actor_class,
    spec_records,
    store_writer,
)
from .results import Results

TIMELINE_POINTS = 400


def simulate(pipeline: Pipeline, workload: Workload, duration: float, seed: int = 0,
             semantics: str | Semantics = "production", drain: bool = True,
             trace: bool = False, progress: bool = False) -> Results:
    """Simulate ``duration`` seconds of ``workload`` through ``pipeline``.

    Arrivals stop at ``duration``; with ``drain=True`` the run continues until every
    message has finished (acked, dead-lettered or dropped), which gives time-to-drain.
    ``trace=True`` also keeps a row per delivery (``res.runtime.trace``); per-message and
    per-batch results are always kept. ``progress=True`` shows a bar over virtual time.
    """
    pipeline.validate()
    rt = Runtime(semantics=semantics, seed=seed)
    rt.recorder.keep_deliveries = trace
    names = sorted(pipeline.graph)
    streams = dict(zip(names, (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(len(names) + 1))))
    workload_rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(len(names) + 1)[-1])
    arrivals = workload.arrivals(duration, workload_rng)
    bodies = SpecBodies(arrivals)
    rt.ledger.raw_view = bodies.view     # how handler code sees a spec message's body

    for queue in pipeline.nodes("queue"):
        rt.queue(queue, **pipeline.spec(queue))
    callers: dict = {}
    pools: dict[str, SpecActors] = {}
    for store in pipeline.nodes("store"):
        callers[store] = store_writer(rt, store, pipeline.spec(store), streams[store], bodies)
    for actor in pipeline.nodes("actor"):
        spec = pipeline.spec(actor)
        if spec.cls is None and not (spec.writes or spec.calls or spec.publish):
            pool = pools[actor] = SpecActors(rt, actor, spec, streams[actor])   # the gate as arithmetic
            rt.env.bind(spec.binding, pool)
            callers[actor] = pool
            continue
        # user code, or a spec that does I/O: the runtime's own Durable Object machinery
        keys, service = actor_streams(streams[actor])
        cls = spec.cls or spec_actor_class(rt, actor, spec, service, callers, bodies)
        picker = KeyPicker(actor.lower(), spec.instances, spec.skew, keys)
        callers[actor] = code_actor_caller(rt.actor(spec.binding, cls), picker, spec.method if spec.cls is None
                                           else "handle", bodies.view if spec.cls else None)
    for node in pipeline.nodes("consumer"):
        data = pipeline.graph.nodes[node]
        spec = data["spec"]
        if spec.handler is not None:
            rt.consumer(data["queue"])(spec.handler)
        else:
            queue = rt.queues[data["queue"]]
            queue.consumer = SpecConsumer(rt, spec, streams[node], callers, bodies)
            queue.backlog_bytes = None     # a spec consumer reads no batch metadata
    rt.validate()

    feeds: dict[str, list[np.ndarray]] = {}
    for source in pipeline.nodes("source"):
        spec = pipeline.spec(source)
        keep = np.ones(len(arrivals), dtype=bool)
        if spec.types:
            unknown = set(spec.types) - set(arrivals.type_names)
            if unknown:
                raise ConfigError(f"source {source!r}: types {sorted(unknown)} are not in the workload's "
                                  f"types {arrivals.type_names}")
            codes = [arrivals.type_names.index(t) for t in spec.types]
            keep &= np.isin(arrivals.types, codes)
        if spec.share < 1:
            keep &= streams[source].random(len(arrivals)) < spec.share
        feeds.setdefault(spec.queue, []).append(np.flatnonzero(keep))
    # A run allocates millions of small acyclic objects (message bodies, batches): the
    # cyclic collector would rescan them again and again (40 % of the time on a million
    # messages) and free nothing.
    collecting = gc.isenabled()
    gc.disable()
    bar = tqdm(total=duration, unit="virtual s", desc=pipeline.name, disable=not progress,
               bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f} virtual s [{elapsed}<{remaining}]")
    timeline: list[tuple] = []
    try:
        for queue, parts in feeds.items():   # sources into one queue merge by arrival time
            indices = np.concatenate(parts)
            _feed(rt, rt.queues[queue], arrivals, indices[np.argsort(arrivals.times[indices], kind="stable")])
        _sample(rt, pools, timeline, duration / TIMELINE_POINTS, duration, bar)
        rt.clock.run(until=duration)
        if drain:
            rt.clock.run()
    finally:
        bar.close()
        if collecting:
            gc.enable()
    rt.check_conservation()
    return Results(pipeline, rt, arrivals, duration, timeline, pools)


def _feed(rt: Runtime, queue, arrivals, indices: np.ndarray) -> None:
    """Arrivals ``indices`` are sent to ``queue`` at their times: entered in the ledger
    now, all at once, and taken into the queue by index when their time comes
    (:class:`~cdpkit.runtime.queues.Inflow`), not one event per message."""
    times, sizes = arrivals.times[indices], arrivals.sizes[indices]
    bodies = indices.tolist()          # a spec message's body is its arrival's index
    rows = spec_records(rt, queue, bodies, sizes, times)
    if len(rows) < len(bodies):      # over the size limit: dropped at send
        times = rt.ledger.column("sent")[np.asarray(rows, dtype=np.int64)]
    due = (times + (queue.delivery_delay or 0)).tolist()
    queue.attach_inflow(due, lambda lo, hi: rows[lo:hi])


def _sample(rt: Runtime, pools: dict[str, SpecActors], timeline: list, step: float,
            duration: float, bar: tqdm) -> None:
    """Record backlog, in-flight batches and actor activity every ``step`` seconds."""
    def sample() -> None:
        now = rt.clock.now
        for name, queue in rt.queues.items():
            queue.absorb()
            timeline.append((now, name, len(queue.buffer), queue.landing, queue.running))
        for namespace in rt.namespaces.values():
            busy = sum(1 for obj in namespace.objects.values() if obj.gate.holder is not None)
            queued = sum(len(obj.gate.waiting) for obj in namespace.objects.values())
            timeline.append((now, namespace.class_name, queued, 0, busy))
        for name, pool in pools.items():
            queued, busy = pool.load(now)
            timeline.append((now, name, queued, 0, busy))
        bar.update(min(now, duration) - bar.n)
        if now + step <= duration or rt.clock.peek() is not None:
            rt.clock.call_later(step, sample)

    rt.clock.call_at(0.0, sample)
