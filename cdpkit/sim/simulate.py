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
import math
import numbers
from collections.abc import Sequence

import networkx as nx
import numpy as np
from tqdm.auto import tqdm

from ..errors import BudgetError, ConfigError
from ..model.faults import Faults, as_faults
from ..model.pipeline import Pipeline
from ..model.workload import Workload
from ..runtime.budget import DRAIN_SLACK, DRAIN_TRIPS, Budget, check_plan
from ..runtime.faults import ConsumerFaults, FaultPlan, scaled
from ..runtime.pull import PullClient, behaviour_handler
from ..runtime.runtime import Runtime
from ..runtime.semantics import Semantics, resolve
from . import compiled
from .behaviour import (
    CodeActorCaller,
    KeyPicker,
    SpecActors,
    SpecBodies,
    SpecConsumer,
    actor_streams,
    spec_actor_class,
    spec_records,
    store_writer,
)
from .draws import CounterRNG, workload_rng
from .incidents import calls_graph
from .results import Results

TIMELINE_POINTS = 400


def simulate(pipeline: Pipeline, workload: Workload, duration: float, seed: int = 0,
             semantics: str | Semantics = "production", drain: bool = True,
             trace: bool = False, progress: bool = False, budget: Budget | None = None,
             faults: Faults | list | str | None = None, engine: str = "auto") -> Results:
    """Simulate ``duration`` seconds of ``workload`` through ``pipeline``.

    Builds a :class:`~cdpkit.Runtime` from the pipeline's specs (and any handler code), feeds
    it the workload's arrivals and runs it in virtual time. Arrivals stop at ``duration``;
    with ``drain=True`` the run continues until every message has finished (acked,
    dead-lettered or dropped), which gives time-to-drain. If the pipeline has a cycle (a
    consumer publishing back upstream, dead letter queues that lead back), the drain may
    enter at most 100 messages per message in flight when arrivals stop (and 100,000 more):
    past that, messages are taken to go round without end and ``BudgetError`` names the cycle.

    A consumer declared with ``pull={interval, batch_size, concurrency, visibility_timeout}``
    is an HTTP pull consumer (``type = "http_pull"``; production only: ``wrangler dev`` has
    none): ``concurrency`` client loops pull leased batches of up to ``batch_size``, run the
    consumer's spec (service time, failures, retry policy, publishing) on each and ack or retry
    by lease; a loop that got a full batch pulls again at once, otherwise after ``interval``
    seconds (an assumption: saturated, the queue drains at ``concurrency * batch_size`` per
    batch service time); a lease not settled within the visibility timeout is delivered again
    (a failed attempt, up to ``max_retries`` and the dead letter queue). Each empty pull costs a
    read (``res.cost()``); the timeline's ``consumers`` is the client's loops. See
    :mod:`cdpkit.runtime.pull`.

    Parameters
    ----------
    pipeline : Pipeline
        The design (validated first).
    workload : Workload
        When messages arrive, of which type and size (``cdp.Poisson``, ``Constant``,
        ``Piecewise``, ``Diurnal``, ``Replay``).
    duration : float
        Seconds of arrivals, a finite number > 0.
    seed : int
        An int >= 0; the same seed gives the same run (the workload and every node draw from
        their own stream of it).
    semantics : {"production", "local"} or Semantics
        The platform profile; default ``"production"`` (Cloudflare's documented behaviour).
    drain : bool
        Keep running after ``duration`` until every message has finished.
    trace : bool
        Also keep a row per delivery (``res.runtime.trace``); per-message and per-batch
        results are always kept.
    progress : bool
        Show a bar over virtual time.
    budget : Budget, optional
        Bounds the run (default ``cdp.Budget()``: 20 million messages, 100 million events,
        ~8 GiB, 250,000 events at one virtual instant): checked before it starts, from the
        workload's expected arrivals and the actors' instances, and while it runs.
    faults : Faults, list, str, optional
        A fault timeline (a :class:`~cdpkit.Faults`, a list of faults or a YAML file; default:
        the pipeline's own ``faults:`` section) of outages, pauses, purges, error bursts,
        slowdowns, rate limits and eviction storms, checked against the pipeline and
        ``duration`` before anything runs; ``res.incidents()`` reports what each window did.

    engine : {"auto", "compiled", "python"}
        Which engine runs it. ``"python"``: the reference runtime (the one checked against
        ``wrangler dev`` and queueing theory; it runs everything). ``"compiled"``: the numba
        engine (:mod:`cdpkit.sim.compiled`), proven to give the same ledger, batches and
        summary on the pipelines it covers (spec consumers that compute, fail, retry,
        publish, call or route to queues and actors, write to stores, run in parallel and
        dead-letter; spec actors, also those that write, call and publish; fault timelines;
        pull consumers; cycles; ``trace``; no code); ConfigError if it
        does not cover the run. ``"auto"`` (default):
        the compiled engine when it covers the run, else the Python one. ``res.engine`` says
        which ran and, when ``auto`` fell back, why. Without numba every run uses the Python
        engine (a one-line notice, once).

    Returns
    -------
    Results
        ``summary()``, ``messages``, ``batches``, ``timeline``, ``end_to_end``,
        ``actor_calls``, ``cost()``, ``warnings``, ``incidents()`` and the ``runtime``.

    Raises
    ------
    ConfigError
        An argument is not allowed (``duration`` must be a finite number > 0, ``seed`` an
        int >= 0, ``drain``/``trace``/``progress`` bools), the pipeline is invalid, a fault
        names a node it cannot strike, or a pull consumer is simulated under ``"local"``.
    BudgetError
        The run would exceed, or exceeded, ``budget``; it says which limit, the figure and
        what to change.

    Examples
    --------
    >>> import cdpkit as cdp
    >>> p = cdp.Pipeline("demo")
    >>> p.add_source("http", queue="jobs")
    >>> p.add_queue("jobs", max_batch_size=10, max_batch_timeout=1)
    >>> p.add_consumer("jobs", service={"base": 0.01, "per_message": 0.002})
    >>> res = cdp.simulate(p, cdp.Poisson(rate=20), duration=30, seed=1)
    >>> res
    <Results 'demo': 631 messages, 631 acked, 0 dead-lettered, p99 0.724s>
    >>> cdp.simulate(p, cdp.Poisson(rate=20), duration=0)
    Traceback (most recent call last):
    ...
    cdpkit.errors.ConfigError: simulate: duration=0 is not allowed; allowed: a finite number of virtual seconds > 0
    """
    _check_arguments(pipeline, workload, duration, seed, semantics, drain, trace, progress, budget)
    if engine not in ("auto", "compiled", "python"):
        raise ConfigError(f"simulate: engine={engine!r} is not allowed; allowed: 'auto', 'compiled' or 'python'")
    seed = int(seed)
    budget = Budget() if budget is None else budget
    pipeline.validate()
    sem = resolve(semantics)
    _check_pull(pipeline, sem)
    faults = as_faults(pipeline.faults if faults is None else faults)
    if faults:
        check_faults(pipeline, faults, duration)
    expected = workload.expected(duration)     # None: a workload class of the user's own
    instances = {a: pipeline.spec(a).instances for a in pipeline.nodes("actor")}
    check_plan(budget, 0 if expected is None else expected, instances)
    arrivals = workload.arrivals(duration, workload_rng(seed))
    if expected is None:        # a workload class of the user's own: check what it drew
        check_plan(budget, len(arrivals), instances)
    reason = None if engine == "python" else compiled.not_covered(pipeline)
    if engine == "compiled" and reason is not None and compiled.HAVE_NUMBA:
        raise ConfigError(f"simulate: engine='compiled' does not cover this run ({reason}); allowed: "
                          "engine='auto' (the Python engine runs what the compiled one does not) or 'python'")
    if engine != "python" and reason is None:
        res = _run(pipeline, arrivals, duration, seed, semantics, drain, trace, progress, budget, faults, True)
        if isinstance(res, Results):
            return res
        reason = res         # the kernel gave up (a limit the runtime reports): run it on Python
    res = _run(pipeline, arrivals, duration, seed, semantics, drain, trace, progress, budget, faults, False)
    res.engine = "python" if engine == "python" else f"python (the compiled engine does not cover: {reason})"
    return res


def _run(pipeline: Pipeline, arrivals, duration: float, seed: int, semantics, drain: bool, trace: bool,
         progress: bool, budget: Budget, faults: Faults, use_compiled: bool) -> Results | str:
    """Build the runtime for ``pipeline`` and run it, on the compiled engine (which may give
    up: then the reason is returned) or the Python one."""
    rt = Runtime(semantics=semantics, seed=seed, budget=budget)
    rt.watch.where, rt.watch.how = "simulate", "budget=cdp.Budget({}=...)"
    rt.recorder.keep_deliveries = trace
    streams = {name: CounterRNG.of(seed, name) for name in pipeline.graph}   # counter-based (draws.py)
    bodies = SpecBodies(arrivals)
    rt.set_body_view(bodies.view)        # how handler code sees a spec message's body

    for queue in pipeline.nodes("queue"):
        rt.queue(queue, **pipeline.spec(queue))
    callers: dict = {}
    pools: dict[str, SpecActors] = {}
    objects: dict[str, tuple[CodeActorCaller, int]] = {}     # spec actors on the Durable Object machinery
    plan = FaultPlan(rt, faults, seed) if faults else None
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
        slow = plan.of(actor, "slowdown") if plan else []
        cls = spec.cls or spec_actor_class(rt, actor, spec, service, callers, bodies,
                                           scale=(lambda draw, s=slow: scaled(draw, s, rt)) if slow else None)
        picker = KeyPicker(actor.lower(), spec.instances, spec.skew, keys)
        callers[actor] = CodeActorCaller(rt.actor(spec.binding, cls), picker, spec.method if spec.cls is None
                                          else "handle", bodies.view if spec.cls else None)
        if spec.cls is None:
            objects[actor] = (callers[actor], service.key)
    for node in pipeline.nodes("consumer"):
        data = pipeline.graph.nodes[node]
        spec = data["spec"]
        if spec.pull is not None:     # its spec behaviour, run on leased batches by a polling client
            pull_client(rt, data["queue"], spec.pull, SpecConsumer(rt, spec, streams[node], callers, bodies),
                        duration)
        elif spec.handler is not None:
            rt.consumer(data["queue"])(spec.handler)
        else:
            rt.attach_consumer(data["queue"], SpecConsumer(rt, spec, streams[node], callers, bodies),
                               reads_metadata=False)
    rt.validate()
    if plan is not None:
        install_faults(plan, pipeline, pools, bodies)

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
    step = duration / TIMELINE_POINTS
    try:
        if use_compiled:        # the engine writes its rows into the ledger's columns, made numpy arrays
            attempts = {name: queue.settings.max_retries + 1 for name, queue in rt.queues.items()}
            rt.ledger.reserve(compiled.row_room(pipeline, {q: sum(map(len, parts)) for q, parts in feeds.items()},
                                                rt.ledger.max_size, attempts), queues=len(rt.queues))
        admitted = {}
        for queue, parts in feeds.items():   # sources into one queue merge by arrival time
            indices = np.concatenate(parts)
            admitted[queue] = _admit(rt, rt.queues[queue], arrivals,
                                     indices[np.argsort(arrivals.times[indices], kind="stable")])
        feeds = indices = None      # (in the ledger now)
        if use_compiled:
            writers = {store: callers[store] for store in pipeline.nodes("store")}
            gave_up = compiled.run(rt, pipeline, admitted, pools, objects, writers, bodies, timeline, duration,
                                   step, budget.events, drain, plan)
            if gave_up is not None:
                return gave_up
            bar.update(duration)
        else:
            for queue, (due, rows) in admitted.items():
                rt.queues[queue].attach_inflow(due.tolist(), lambda lo, hi, rows=rows: rows[lo:hi])
            _sample(rt, pools, timeline, step, duration, bar)
            rt.clock.run(until=duration)
            if drain:
                _drain(rt, pipeline, duration)
            else:
                rt.close_unstarted()
    finally:
        bar.close()
        if collecting:
            gc.enable()
    rt.check_conservation()
    res = Results(pipeline, rt, arrivals, duration, timeline, pools)
    res.faults, res.fault_plan = faults, plan
    res.engine = "compiled" if use_compiled else "python"
    return res


def _drain(rt: Runtime, pipeline: Pipeline, duration: float) -> None:
    """Run until every message has finished; around a cycle, only while messages do."""
    cycles = _cycles(pipeline)
    ledger = rt.ledger
    if cycles:
        start = len(ledger)
        in_flight = int(np.count_nonzero(np.frombuffer(ledger.outcome, dtype=np.int8)[:start] == 0))
        cap = start + DRAIN_TRIPS * in_flight + DRAIN_SLACK

        def round_and_round(rows: int) -> None:
            raise BudgetError(
                f"simulate: draining after duration={duration:g}, {rows - start:,} messages "
                f"entered queues by t={rt.now:g}s for the {in_flight:,} in flight when arrivals stopped: "
                f"messages go round the cycle {cycles} without end; use drain=False (the run stops "
                "at duration), or break the cycle")

        if cap < ledger.max_size:
            ledger.max_size, ledger.on_full = cap, round_and_round
    rt.clock.run()


def pull_client(rt: Runtime, queue: str, pull: dict, behaviour: SpecConsumer, duration: float) -> PullClient:
    """A spec consumer declared with ``pull=`` (an ``http_pull`` consumer): the queue gets a
    :class:`~cdpkit.runtime.pull.PullConsumer` and ``pull["concurrency"]`` polling loops
    (:class:`~cdpkit.runtime.pull.PullClient`: every ``interval`` s, at once again after a full
    batch) run the spec's behaviour on each leased batch through its ``start`` interface
    (:func:`~cdpkit.runtime.pull.behaviour_handler`) and ack or retry by lease; a lease not
    settled within the visibility timeout is delivered again. From ``duration`` on, a loop
    that finds the queue empty waits for a landing instead of polling, so the drain ends."""
    consumer = rt.pull_consumer(queue)
    rt.queues[queue].backlog_bytes = None      # nothing reads batch metadata (as for a push spec consumer)
    return PullClient(consumer, behaviour_handler(consumer, behaviour), interval=pull["interval"],
                      batch_size=pull["batch_size"], concurrency=pull["concurrency"],
                      visibility_timeout=pull["visibility_timeout"], idle_after=duration)


def _check_pull(pipeline: Pipeline, semantics: Semantics) -> None:
    """A pull consumer needs the production profile: ``wrangler dev`` has none."""
    if semantics.concurrent_consumers:
        return
    for node in pipeline.nodes("consumer"):
        if pipeline.spec(node).pull is not None:
            raise ConfigError(
                f"simulate: the consumer of {pipeline.graph.nodes[node]['queue']!r} is a pull consumer "
                f"(pull=...), which semantics={semantics.name!r} does not have: wrangler dev has no pull "
                "endpoint (miniflare's queue broker serves only POST /message and POST /batch); allowed: "
                "semantics='production', or a push consumer (drop pull=)")


def check_faults(pipeline: Pipeline, faults: Faults, duration: float) -> None:
    """Each fault names a node of the right kind and starts inside the run (ConfigError
    naming the fault); what the simulator cannot apply is refused here too."""
    g = pipeline.graph
    dlqs = [pipeline.spec(q).get("dead_letter_queue") for q in pipeline.nodes("queue")]
    faults.check({n: d["kind"] for n, d in g.nodes(data=True)}, duration, [q for q in dlqs if q])
    reached = {n for c in pipeline.nodes("consumer") if pipeline.spec(c).handler is None
               for n in nx.descendants(calls_graph(pipeline), c)}
    for f in faults:
        kind = g.nodes[f.node]["kind"]
        if f.kind in ("errors", "rate_limit") and kind != "consumer" and f.node not in reached:
            raise ConfigError(f"{f.label}: node={f.node!r} is not allowed (no spec consumer's messages "
                              f"reach it); allowed: an actor or store a spec consumer calls or writes "
                              "(directly or through actors)")
        if f.kind == "outage" and f.mode == "throw" and kind == "consumer" and pipeline.spec(f.node).pull:
            raise ConfigError(f"{f.label}: mode='throw' of a pull consumer ({f.node!r}) is not modelled (its "
                              "client runs outside Workers: no invocation to throw); allowed: mode='pause', "
                              "or errors / slowdown of the consumer")
        # a handler consumer's slowdown stretches its invocations (runtime.faults.FaultedConsumer);
        # an actor class's code has no service draw to scale
        if f.kind == "slowdown" and kind == "store" and pipeline.spec(f.node).kind == "analytics":
            raise ConfigError(f"{f.label}: slowdown of Analytics Engine dataset {f.node!r} is not modelled "
                              "(writeDataPoint returns at once: there is no wait to slow); allowed: a sink, KV "
                              "namespace or D1 database")
        if f.kind == "slowdown" and kind == "actor" and pipeline.spec(f.node).cls is not None:
            raise ConfigError(f"{f.label}: slowdown of user code ({f.node!r}) is not modelled; allowed: a "
                              "consumer, spec actor or store (slow the store the code calls instead)")


def install_faults(plan: FaultPlan, pipeline: Pipeline, pools: dict[str, SpecActors], bodies: SpecBodies) -> None:
    """Wire a fault plan into a built runtime: queue operations and wrappers
    (:meth:`FaultPlan.install`), and each spec consumer's hook with its own faults and those
    of the actors and stores its messages reach, by message type."""
    rt = plan.runtime
    consumers = {c: pipeline.graph.nodes[c]["queue"] for c in pipeline.nodes("consumer")}
    actors = {a: pools.get(a) or rt.namespaces[pipeline.spec(a).binding] for a in pipeline.nodes("actor")}
    stores = {s: rt.kv_namespaces.get(s) or rt.databases.get(s) or rt.sinks.get(s) or rt.datasets.get(s)
              for s in pipeline.nodes("store")}
    plan.install(consumers, actors, stores)
    calls, ledger, types = calls_graph(pipeline), rt.ledger, bodies.types
    downstream = [s for s in plan.states if s.fault.kind in ("errors", "rate_limit")
                  and pipeline.graph.nodes[s.fault.node]["kind"] != "consumer"]

    def reached(start: str) -> list:
        below = nx.descendants(calls, start) | {start}
        return [s for s in downstream if s.fault.node in below]

    for node, queue in consumers.items():
        spec = pipeline.spec(node)
        if spec.handler is not None:
            continue
        own = plan.of(node, "errors", "slowdown")
        default = [s for target in [*spec.writes, *([spec.calls] if spec.calls else [])] for s in reached(target)]
        reach = {None: default} if default else {}
        for name, target in spec.routes.items():
            code = bodies.type_names.index(name) if name in bodies.type_names else None
            if code is not None and pipeline.graph.nodes[target]["kind"] == "actor":
                reach[code] = reached(target)
            elif code is not None:
                reach[code] = []
        if own or any(reach.values()):
            consumer = rt.queues[queue].consumer
            getattr(consumer, "inner", consumer).faults = ConsumerFaults(rt, own, reach,
                                                              lambda row: types[ledger.payload[row]])


def _check_arguments(pipeline, workload, duration, seed, semantics, drain, trace, progress, budget) -> None:
    """Each argument's type and range, up front (ConfigError naming the argument)."""
    if not isinstance(pipeline, Pipeline):
        raise ConfigError(f"simulate: pipeline={pipeline!r:.80} is not allowed; allowed: a cdpkit.Pipeline")
    if not isinstance(workload, Workload):
        raise ConfigError(f"simulate: workload={workload!r:.80} is not allowed; allowed: a cdpkit "
                          "Workload (Poisson, Constant, Piecewise, Diurnal, Replay)")
    if isinstance(duration, bool) or not isinstance(duration, numbers.Real) or not 0 < duration < math.inf:
        raise ConfigError(f"simulate: duration={duration!r} is not allowed; allowed: a finite number "
                          "of virtual seconds > 0")
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ConfigError(f"simulate: seed={seed!r} is not allowed; allowed: an int >= 0")
    try:
        resolve(semantics)
    except ConfigError as exc:
        raise ConfigError(f"simulate: {exc}") from None
    for name, value in (("drain", drain), ("trace", trace), ("progress", progress)):
        if not isinstance(value, bool):
            raise ConfigError(f"simulate: {name}={value!r} is not allowed; allowed: True or False")
    if budget is not None and not isinstance(budget, Budget):
        raise ConfigError(f"simulate: budget={budget!r:.80} is not allowed; allowed: a cdpkit.Budget or None")


def _cycles(pipeline: Pipeline) -> str:
    """The pipeline's cycles (through queues: publishing, dead letters), as text, each
    from its first node by name."""
    cycles = (c[c.index(min(c)):] + c[:c.index(min(c))] for c in nx.simple_cycles(pipeline.graph))
    return "; ".join(sorted(" -> ".join([*c, c[0]]) for c in cycles))


def _admit(rt: Runtime, queue, arrivals, indices: np.ndarray) -> tuple[np.ndarray, Sequence[int]]:
    """Arrivals ``indices`` are sent to ``queue`` at their times: entered in the ledger
    now, all at once (those over the size or throughput limit rejected); returns when the
    rest land and their rows, for the queue to take in by index when their time comes
    (:class:`~cdpkit.runtime.queues.Inflow`), not one event per message."""
    times, sizes = arrivals.times[indices], arrivals.sizes[indices]
    # a spec message's body is its arrival's index (ints in a list, or in reserved numpy columns)
    bodies = indices if rt.ledger.room is not None else indices.tolist()
    rows = spec_records(rt, queue, bodies, sizes, times)
    if len(rows) < len(bodies):      # over the size limit: dropped at send
        times = rt.ledger.column("sent")[np.asarray(rows, dtype=np.int64)]
    times, rows = queue.admit_arrivals(times, rows)    # over the throughput limit: rejected
    return times + (queue.delivery_delay or 0), rows


def _sample(rt: Runtime, pools: dict[str, SpecActors], timeline: list, step: float,
            duration: float, bar: tqdm) -> None:
    """Record backlog, in-flight batches, consumers (the autoscaler's level; 0 for actor
    rows) and actor activity every ``step`` seconds."""
    def sample() -> None:
        now = rt.clock.now
        for name, queue in rt.queues.items():
            queue.absorb()
            timeline.append((now, name, queue.backlog, queue.landing, queue.running, queue.consumers))
        for namespace in rt.namespaces.values():
            queued, busy = namespace.load()
            timeline.append((now, namespace.class_name, queued, 0, busy, 0))
        for name, pool in pools.items():
            queued, busy = pool.load(now)
            timeline.append((now, name, queued, 0, busy, 0))
        bar.update(min(now, duration) - bar.n)
        if now + step <= duration or rt.clock.peek() is not None:
            rt.clock.call_later(step, sample)

    rt.clock.call_at(0.0, sample)
