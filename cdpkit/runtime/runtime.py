"""The Runtime: one virtual-time world holding queues, consumers and bindings.

>>> import cdpkit as cdp
>>> rt = cdp.Runtime(semantics="local")
>>> rt.queue("jobs", max_batch_size=2, max_retries=1)
<Queue 'jobs' no consumer, max_batch_size=2, max_retries=1 backlog=0>
>>> @rt.consumer("jobs")
... async def handle(batch, env, ctx):
...     for m in batch.messages:
...         await ctx.work(0.1)
...         m.ack()
>>> for i in range(3):
...     _ = rt.env.JOBS.send({"n": i})
>>> rt.run()
>>> rt.trace[["batch", "delivered_at", "attempts", "disposition"]]
   batch  delivered_at  attempts disposition
0      1           0.0         1       acked
1      1           0.0         1       acked
2      2           1.2         1       acked
"""

from __future__ import annotations

import fnmatch
import inspect
import numbers
import random
from collections.abc import Callable, Coroutine
from typing import Any

import pandas as pd

from ..errors import ConfigError
from .actors import ActorId, ActorNamespace
from .analytics import AnalyticsDataset
from .budget import Budget, BudgetWatch
from .clock import Clock, Future, Task, completed, gather, sleep
from .d1 import D1Database
from .display import Table
from .env import Env, ExecutionContext, Sink
from .failures import FailureLog
from .kv import KVNamespace
from .ledger import OUTCOMES, Ledger
from .limits import (
    BINDING_NAME,
    binding_for,
    check_binding_name,
    check_number,
    check_queue_name,
)
from .pull import PullConsumer
from .queues import (
    BatchResult,
    ConsumerSettings,
    Message,
    MessageBatch,
    Producer,
    Queue,
)
from .semantics import Semantics, resolve
from .settings import QUEUE_SETTINGS, check_setting_names
from .trace import Trace

__all__ = ["Runtime", "HandlerConsumer"]


class HandlerConsumer:
    """Runs a user ``async def handler(batch, env, ctx)`` for each batch."""

    __slots__ = ("handler", "runtime", "cpu_seconds")

    def __init__(self, handler: Callable, runtime: Runtime) -> None:
        self.handler, self.runtime = handler, runtime
        self.cpu_seconds = 0.0      # ctx.work of every batch, for cost

    def start(self, queue: Queue, batch_id: int, rows: list[int],
              done: Callable[[bool, BatchResult], None]) -> None:
        rt, check = self.runtime, queue.check_delay
        result = BatchResult()
        batch = MessageBatch(queue.name, [Message(rt.ledger, row, result, check) for row in rows],
                             queue.metadata(), result, check)
        ctx = ExecutionContext(rt)

        def report(error: BaseException | None) -> None:
            self.cpu_seconds += ctx.cpu_seconds
            if error is not None:
                rt.failures.record(rt.clock.now, queue.name, batch_id, error, self.handler)
            done(error is None, result)

        task = rt.clock.spawn(_invoke(self.handler, batch, rt.env, ctx), name=f"{queue.name}#{batch_id}")
        task.add_done_callback(lambda _t: ctx.settle(task, report))


async def _invoke(handler: Callable, *args: Any) -> Any:
    """Call a sync or async handler; a sync one finishes at once."""
    value = handler(*args)
    if inspect.isawaitable(value):
        value = await value
    return value


class Runtime:
    """A virtual-time Cloudflare world: queues, consumers, bindings, and their trace.

    Parameters
    ----------
    semantics:
        ``"local"`` reproduces ``wrangler dev`` delivery for delivery; ``"production"``
        uses Cloudflare's production defaults, limits and consumer concurrency.
    seed:
        Seeds message ids (and anything random); the same seed gives the same run.
    budget:
        The most work a run may do (:class:`~cdpkit.Budget`: events, messages, memory,
        events at one virtual instant); over it ``run`` raises ``BudgetError``.
    """

    def __init__(self, semantics: str | Semantics = "local", seed: int = 0,
                 budget: Budget | None = None) -> None:
        self.semantics = resolve(semantics)
        if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
            raise ConfigError(f"seed={seed!r} is not allowed; allowed: an int >= 0")
        if budget is not None and not isinstance(budget, Budget):
            raise ConfigError(f"budget={budget!r} is not allowed; allowed: a cdpkit.Budget or None")
        self.seed = seed = int(seed)      # a numpy integer (a sweep row's) seeds like an int
        self.budget = Budget() if budget is None else budget
        self.clock = Clock()
        self.env = Env()
        self.recorder = Trace()
        self.failures = FailureLog(self.recorder)   # handler exceptions: kept, and shown
        self.ledger = Ledger(seed)
        self.watch = BudgetWatch(self, self.budget)
        self.queues: dict[str, Queue] = {}
        self._templates: dict[str, dict[str, Any]] = {}
        self._template_handlers: dict[str, Callable] = {}
        self.namespaces: dict[str, ActorNamespace] = {}
        self.kv_namespaces: dict[str, KVNamespace] = {}
        self.databases: dict[str, D1Database] = {}
        self.datasets: dict[str, AnalyticsDataset] = {}
        self.sinks: dict[str, Any] = {}          # outside endpoints of spec pipelines
        self.migrations: list[dict[str, Any]] = []
        self._rng = random.Random(seed)
        self._batch_seq = 0
        self.env.bind("QUEUES_API", QueuesAPI(self))

    # -- declaring ---------------------------------------------------------------------
    def queue(self, name: str, *, binding: str | None = None, **settings: Any) -> Queue | None:
        """Declare a queue with its settings and a producer binding.

        ``settings`` are the keys of ``[[queues.consumers]]`` and more, as listed in
        :data:`cdpkit.runtime.settings.QUEUE_SETTINGS`: ``max_batch_size``,
        ``max_batch_timeout``, ``max_retries``, ``dead_letter_queue``, ``retry_delay``,
        ``max_concurrency``, ``delivery_delay`` (seconds every send waits unless it gives its
        own) and ``retention`` (seconds a message may wait). Unset = the profile's default.
        The binding defaults to the name in UPPER_SNAKE_CASE (``jobs-dlq`` -> ``JOBS_DLQ``).
        A name containing ``*`` declares a *template* for queues created at run time
        (``rt.create_queue`` or ``env.QUEUES_API.create_queue``), e.g. ``"tenant-*"``.

        >>> rt = Runtime()
        >>> rt.queue("jobs", max_batch_size=10, max_retries=2).settings.max_batch_size
        10
        >>> rt.queue("jobs2", max_batch_sise=10)
        Traceback (most recent call last):
        ...
        cdpkit.errors.ConfigError: queue 'jobs2': unknown setting 'max_batch_sise' (did you mean 'max_batch_size'?); allowed: max_batch_size, max_batch_timeout, max_retries, dead_letter_queue, retry_delay, max_concurrency, visibility_timeout_ms, delivery_delay, retention
        """
        where = f"queue {name!r}"
        check_setting_names(settings, where)
        settings = {k: v for k, v in settings.items() if v is not None}
        for key, value in settings.items():   # consumer settings are checked by validated()
            if QUEUE_SETTINGS[key].scope != "consumer":
                settings[key] = QUEUE_SETTINGS[key].check(value, where, self.semantics)
        delivery_delay, retention = settings.get("delivery_delay"), settings.get("retention")
        settings = ConsumerSettings.of(settings)
        if isinstance(name, str) and "*" in name:
            check_queue_name(name.replace("*", "x"), "queue name pattern")
            settings = settings.validated(name, self.semantics)
            if binding is not None:
                raise ConfigError(f"queue pattern {name!r}: binding={binding!r} is not allowed; "
                                  "queues created at run time have no binding (use env.QUEUES_API)")
            self._templates[name] = dict(settings=settings, delivery_delay=delivery_delay,
                                         retention=retention)
            return None
        check_queue_name(name)
        if name in self.queues:
            raise ConfigError(f"queue {name!r} is already declared; allowed: each name once")
        settings = settings.validated(name, self.semantics)
        binding = binding_for(name) if binding is None else check_binding_name(binding)
        queue = Queue(self, name, settings, delivery_delay, retention)
        self.env.bind(binding, Producer(self, name, binding))
        self.queues[name] = queue
        return queue

    def consumer(self, queue_name: str) -> Callable[[Callable], Callable]:
        """Decorator: register ``async def handler(batch, env, ctx)`` as the queue's consumer."""
        if queue_name not in self.queues and queue_name not in self._templates:
            known = ", ".join(sorted([*self.queues, *self._templates])) or "(none)"
            raise ConfigError(f"consumer for queue {queue_name!r}: no such queue; declare it first "
                              f"with rt.queue({queue_name!r}, ...); declared queues: {known}")

        def register(handler: Callable) -> Callable:
            if not callable(handler):
                raise ConfigError(f"consumer for queue {queue_name!r}: {handler!r} is not callable")
            if queue_name in self._templates:
                self._template_handlers[queue_name] = handler
                for queue in self.queues.values():
                    if fnmatch.fnmatchcase(queue.name, queue_name) and queue.consumer is None:
                        queue.consumer = HandlerConsumer(handler, self)
            else:
                queue = self.queues[queue_name]
                if queue.consumer is not None:
                    raise ConfigError(f"queue {queue_name!r} already has a consumer; "
                                      "allowed: one consumer per queue")
                queue.consumer = HandlerConsumer(handler, self)
            return handler

        return register

    def pull_consumer(self, queue_name: str) -> PullConsumer:
        """Give a queue an HTTP pull consumer (``type = "http_pull"``) instead of a push
        consumer: clients call its ``pull()`` and ``ack()`` (see :mod:`cdpkit.runtime.pull`)."""
        queue = self.queues.get(queue_name)
        if queue is None:
            raise ConfigError(f"pull consumer for queue {queue_name!r}: no such queue; declare it first "
                              f"with rt.queue({queue_name!r}, ...)")
        if queue.consumer is not None:
            raise ConfigError(f"queue {queue_name!r} already has a consumer; allowed: one consumer per queue")
        queue.consumer = PullConsumer(self, queue)
        return queue.consumer

    def actor(self, binding: str, cls: type, *, sqlite: bool | None = None,
              evict_after: float | None | str = "profile", script_name: str | None = None
              ) -> ActorNamespace:
        """Bind a Durable Object class as ``env.<binding>``.

        ``sqlite`` picks the storage backend (``new_sqlite_classes``, the default, or
        ``new_classes``); with explicit :meth:`migration` entries it comes from them.
        ``evict_after``: idle seconds before the instance is dropped (default: profile).
        """
        check_binding_name(binding)
        if not isinstance(cls, type):
            raise ConfigError(f"actor {binding!r}: {cls!r} is not a class; allowed: a class taking "
                              "(ctx, env), e.g. a subclass of cdpkit.Actor")
        if not BINDING_NAME.fullmatch(cls.__name__):
            raise ConfigError(f"actor {binding!r}: class name {cls.__name__!r} is not a JavaScript identifier")
        if evict_after == "profile":
            evict_after = self.semantics.actor_idle_eviction
        elif evict_after is not None:
            check_number(evict_after, f"actor {binding!r}: evict_after", 0, 86_400)
        namespace = ActorNamespace(self, binding, cls, True if sqlite is None else bool(sqlite),
                                   evict_after, script_name)
        namespace.declared_sqlite = sqlite
        self.env.bind(binding, namespace)
        self.namespaces[binding] = namespace
        return namespace

    def migration(self, tag: str, *, new_sqlite_classes: list[str] = (), new_classes: list[str] = (),
                  renamed_classes: list[dict[str, str]] = (), deleted_classes: list[str] = ()) -> None:
        """Declare a ``[[migrations]]`` entry. Without any, each bound class gets one (tag v1)."""
        if not isinstance(tag, str) or not tag:
            raise ConfigError(f"migration tag={tag!r} is not allowed; allowed: a non-empty str")
        if any(m["tag"] == tag for m in self.migrations):
            raise ConfigError(f"migration tag {tag!r} is used twice; allowed: unique tags")
        for renamed in renamed_classes:
            if set(renamed) != {"from", "to"}:
                raise ConfigError(f"migration {tag!r}: renamed_classes entry {renamed!r} is not allowed; "
                                  "allowed: {'from': 'Old', 'to': 'New'}")
        self.migrations.append(dict(tag=tag, new_sqlite_classes=list(new_sqlite_classes),
                                    new_classes=list(new_classes),
                                    renamed_classes=[dict(r) for r in renamed_classes],
                                    deleted_classes=list(deleted_classes)))

    def kv(self, binding: str, *, propagation_delay: float = 0.0, latency: float = 0.0) -> KVNamespace:
        """Bind a KV namespace as ``env.<binding>``."""
        check_number(propagation_delay, f"kv {binding!r}: propagation_delay", 0, 3600)
        check_number(latency, f"kv {binding!r}: latency", 0, 60)
        store = KVNamespace(self, check_binding_name(binding), propagation_delay, latency)
        self.env.bind(binding, store)
        self.kv_namespaces[binding] = store
        return store

    def d1(self, binding: str, *, database_name: str | None = None, latency: float = 0.0) -> D1Database:
        """Bind a D1 database (sqlite3 in memory) as ``env.<binding>``."""
        check_number(latency, f"d1 {binding!r}: latency", 0, 60)
        db = D1Database(self, check_binding_name(binding), database_name, latency)
        self.env.bind(binding, db)
        self.databases[binding] = db
        return db

    def analytics(self, binding: str, *, dataset: str | None = None) -> AnalyticsDataset:
        """Bind an Analytics Engine dataset; points are in :attr:`data_points`."""
        ds = AnalyticsDataset(self, check_binding_name(binding), dataset or binding.lower())
        self.env.bind(binding, ds)
        self.datasets[binding] = ds
        return ds

    def sink(self, name: str, latency: float | Callable[[], float] = 0.0) -> Sink:
        """An outside endpoint that code calls (``await rt.sinks[name].call()``): a webhook,
        an e-mail or CRM API; each call takes ``latency`` seconds (or a function's draw)."""
        sink = self.sinks[name] = Sink(self.clock, name, latency)
        return sink

    def attach_consumer(self, queue: str, consumer: Any, *, reads_metadata: bool = True) -> None:
        """Make ``consumer`` (an object with the broker's consumer interface, e.g. the
        simulator's spec consumer) the consumer of ``queue``. ``reads_metadata=False``: it
        never reads batch metadata, so the queue keeps no running backlog byte count."""
        target = self.queue_named(queue)
        if target.consumer is not None:
            raise ConfigError(f"queue {queue!r} already has a consumer; allowed: one consumer per queue")
        target.consumer = consumer
        if not reads_metadata:
            target.backlog_bytes = None

    def set_body_view(self, view: Callable[[Any], Any] | None) -> None:
        """How handler code sees a message entered as a raw payload (a simulated workload's
        messages are arrival indices; ``view`` turns one into the body a handler reads)."""
        self.ledger.raw_view = view

    def evict(self, binding: str, name_or_id: str | ActorId | None = None) -> int:
        """Evict one object (by name or id) or every object of a namespace; returns how many."""
        namespace = self.namespaces.get(binding)
        if namespace is None:
            raise ConfigError(f"evict: no actor binding {binding!r}; bindings: "
                              f"{', '.join(sorted(self.namespaces)) or '(none)'}")
        objects = list(namespace.objects.values())
        if name_or_id is not None:
            wanted = name_or_id if isinstance(name_or_id, ActorId) else namespace.id_from_name(name_or_id)
            objects = [o for o in objects if o.id == wanted]
        before = sum(o.evictions for o in objects)
        for obj in objects:
            obj.evict()
        return sum(o.evictions for o in objects) - before

    def pause_delivery(self, queue: str) -> None:
        """Pause delivery from ``queue`` (``wrangler queues pause-delivery``): messages are
        still accepted and wait; batches running now finish."""
        self.queue_named(queue).pause_delivery()

    def resume_delivery(self, queue: str) -> None:
        """Resume delivery from ``queue``, oldest message first."""
        self.queue_named(queue).resume_delivery()

    def purge(self, queue: str) -> int:
        """Delete the messages waiting in ``queue`` (``wrangler queues purge``); returns how many."""
        return self.queue_named(queue).purge()

    def apply_faults(self, faults: Any) -> Any:
        """Apply a fault timeline (a :class:`cdpkit.Faults`) to
        this runtime's queues, consumers, actors and stores; declare them (and register the
        consumers) first. Times are virtual seconds from 0. Returns the plan (its
        ``states`` count what each fault did).

        >>> import cdpkit as cdp
        >>> rt = cdp.Runtime()
        >>> _ = rt.queue("jobs", max_retries=0)
        >>> @rt.consumer("jobs")
        ... async def handle(batch, env, ctx):
        ...     pass
        >>> _ = rt.apply_faults(cdp.Faults([{"kind": "outage", "node": "jobs.consumer",
        ...                                  "start": 0, "end": 5}]))
        >>> _ = rt.env.JOBS.send({"n": 1})
        >>> rt.run()
        >>> rt.messages["outcome"].tolist()     # it threw: dropped after max_retries + 1 attempts
        ['dropped']
        """
        from .faults import FaultPlan, runtime_nodes
        if not callable(getattr(faults, "check", None)):     # the model layer's class, by duck type
            raise ConfigError(f"apply_faults: faults={faults!r:.80} is not allowed; allowed: a "
                              "cdpkit.Faults (e.g. cdp.Faults([{'kind': 'outage', 'node': ...}]))")
        kinds, consumers, actors, stores = runtime_nodes(self)
        dlqs = {q.settings.dead_letter_queue for q in self.queues.values()} - {None}
        faults.check(kinds, None, dlqs)
        for f in faults:
            if f.kind in ("errors", "rate_limit") and kinds[f.node] != "consumer":
                raise ConfigError(f"{f.label}: {f.kind} of {kinds[f.node]} {f.node!r} is not modelled in "
                                  "handler code (its calls would have to raise); allowed: a consumer "
                                  "(or cdp.simulate of a spec pipeline)")
        plan = FaultPlan(self, faults, self.seed)
        plan.install(consumers, actors, stores)
        return plan

    def create_queue(self, name: str) -> Queue:
        """Create a queue at run time (the seed's multi-tenant pattern).

        Settings and consumer come from the first template (``rt.queue("tenant-*", ...)``)
        whose pattern matches; without one the queue has profile defaults and no consumer.
        """
        check_queue_name(name)
        if name in self.queues:
            raise ConfigError(f"queue {name!r} already exists; allowed: a new, unused name")
        for pattern, template in self._templates.items():
            if fnmatch.fnmatchcase(name, pattern):
                queue = Queue(self, name, template["settings"], template["delivery_delay"],
                              template["retention"])
                handler = self._template_handlers.get(pattern)
                if handler is not None:
                    queue.consumer = HandlerConsumer(handler, self)
                break
        else:
            queue = Queue(self, name, ConsumerSettings())
        self.queues[name] = queue
        self._ensure_dead_letter_queues()
        return queue

    # -- running -----------------------------------------------------------------------
    @property
    def now(self) -> float:
        """Current virtual time in seconds."""
        return self.clock.now

    @staticmethod
    def sleep(seconds: float):
        """Awaitable pause of ``seconds`` of virtual time, for producer scripts."""
        return sleep(seconds)

    def gather(self, *awaitables: Any) -> Future:
        """Await several things at once, like ``Promise.all`` (coroutines are started)."""
        return gather(self.clock, *awaitables)

    def spawn(self, coro: Coroutine, name: str = "") -> Task:
        """Run a coroutine (a producer script, say) in virtual time.

        If it raises while nothing awaits it, :meth:`run` re-raises the exception then
        (with a note naming the task): like ``asyncio.run`` with its main coroutine, or
        Node's unhandled rejections, a failure is not swallowed. To handle it instead,
        await the task (or ``rt.gather`` it) from another task, or catch it inside.
        """
        if not inspect.iscoroutine(coro):
            raise ConfigError(f"spawn: {coro!r:.80} is not allowed; allowed: a coroutine, "
                              "e.g. rt.spawn(producer()) for an async def producer")
        task = self.clock.spawn(coro, name)
        task.surface = True
        return task

    def call_at(self, when: float, fn: Callable, *args: Any) -> None:
        """Call ``fn(*args)`` at virtual time ``when`` (finite, not before now)."""
        self.clock.call_at(when, fn, *args)

    def run(self, until: float | None = None) -> None:
        """Run until virtual time ``until`` (seconds), or until nothing is left to do.

        It always returns or raises: over the runtime's :class:`~cdpkit.Budget` (too many
        events or messages, too much memory, or virtual time standing still) it raises
        ``BudgetError``; an exception in a task from :meth:`spawn` that nothing awaits,
        KeyboardInterrupt and SystemExit propagate. ``until`` must be a finite time not
        before now. A handler that raises is shown as a warning (with its traceback) the first
        time each kind of error happens, and counted at the end; see :attr:`errors`.
        """
        self.validate()
        errors = len(self.recorder.errors)
        self.clock.run(until)
        self.failures.report(since=errors)

    def activity(self) -> dict[str, int]:
        """Batches cut per queue and requests per actor class so far (what a zero-time
        cycle's error names)."""
        counts = {f"queue {name!r}": queue.batches for name, queue in self.queues.items()}
        for namespace in self.namespaces.values():
            counts[f"actor {namespace.binding!r}"] = sum(o.requests for o in namespace.objects.values())
        for log in self.recorder.call_logs:
            counts[f"actor {log.binding!r}"] = len(log)
        return counts

    def validate(self) -> None:
        """Check the wiring before anything runs; raises ConfigError naming the problem."""
        for queue in self.queues.values():
            if queue.consumer is None:
                given = queue.declared.given()
                if given:
                    raise ConfigError(
                        f"queue {queue.name!r} has consumer settings ({', '.join(given)}) but no "
                        f"consumer; register one with @rt.consumer({queue.name!r}) or drop them")
        self._ensure_dead_letter_queues()
        self._apply_migrations()

    def _apply_migrations(self) -> None:
        """Every bound class must be introduced by a migration; the backend comes from it."""
        if not self.migrations:
            return
        classes: dict[str, bool] = {}
        for m in self.migrations:
            for name in m["new_sqlite_classes"]:
                classes[name] = True
            for name in m["new_classes"]:
                classes[name] = False
            for r in m["renamed_classes"]:
                if r["from"] not in classes:
                    raise ConfigError(f"migration {m['tag']!r}: renamed_classes from {r['from']!r}, "
                                      "which no earlier migration introduced")
                classes[r["to"]] = classes.pop(r["from"])
            for name in m["deleted_classes"]:
                classes.pop(name, None)
        for ns in self.namespaces.values():
            if ns.script_name is not None:
                continue  # defined (and migrated) by another Worker
            if ns.class_name not in classes:
                raise ConfigError(
                    f"actor {ns.binding!r}: class {ns.class_name!r} has no migration; add it to "
                    "new_sqlite_classes (or new_classes) of a rt.migration(...) entry")
            if ns.declared_sqlite is not None and ns.declared_sqlite != classes[ns.class_name]:
                raise ConfigError(
                    f"actor {ns.binding!r}: sqlite={ns.declared_sqlite} but the migrations declare "
                    f"{ns.class_name!r} in {'new_sqlite_classes' if classes[ns.class_name] else 'new_classes'}")
            ns.sqlite = classes[ns.class_name]

    def _ensure_dead_letter_queues(self) -> None:
        """A dead letter queue that was not declared exists anyway, without a consumer."""
        for queue in list(self.queues.values()):
            dlq = queue.settings.dead_letter_queue
            if dlq is not None and dlq not in self.queues:
                self.queue(dlq)

    # -- bookkeeping used by the broker ----------------------------------------------
    def random_bits(self, bits: int) -> int:
        """Seeded randomness for ids (same seed, same ids)."""
        return self._rng.getrandbits(bits)

    def next_batch_id(self) -> int:
        self._batch_seq += 1
        return self._batch_seq

    def queue_named(self, name: str) -> Queue:
        try:
            return self.queues[name]
        except KeyError:
            raise ConfigError(f"no queue named {name!r}; queues: {', '.join(sorted(self.queues))}") from None

    # -- results -----------------------------------------------------------------------
    @property
    def trace(self) -> pd.DataFrame:
        """Every delivery: queue, batch, delivered_at, finished_at, message_id, attempts, disposition."""
        return self.recorder.deliveries(self.ledger)

    @property
    def batches(self) -> pd.DataFrame:
        """Every batch: queue, times, size, handler outcome, and how its messages ended."""
        return self.recorder.batches()

    @property
    def messages(self) -> pd.DataFrame:
        """Every message sent to every queue (dead letters appear again on their DLQ):
        id, queue, content type, bytes, sent, first delivery, deliveries, attempts,
        outcome, finished, drop reason, wait and latency (see :class:`Ledger`)."""
        return self.ledger.frame()

    @property
    def actor_calls(self) -> pd.DataFrame:
        """Every request to a Durable Object: binding, object, method, arrived, started,
        finished, outcome, wait (queued behind the object's gate) and duration."""
        return self.recorder.actor_calls()

    @property
    def actors(self) -> pd.DataFrame:
        """Per object: requests, CPU busy seconds, evictions, whether it is in memory now."""
        rows = [(ns.binding, obj.label, obj.requests, obj.busy_seconds, obj.evictions,
                 obj.instance is not None, len(obj.gate.waiting))
                for ns in self.namespaces.values() for obj in ns.objects.values()]
        return pd.DataFrame(rows, columns=["binding", "object", "requests", "busy_seconds",
                                           "evictions", "in_memory", "waiting"])

    @property
    def data_points(self) -> pd.DataFrame:
        """Analytics Engine points written with ``write_data_point``."""
        return pd.DataFrame([p for ds in self.datasets.values() for p in ds.points])

    @property
    def errors(self) -> pd.DataFrame:
        """Exceptions raised by consumer handlers: time, queue, batch, error (the exception)
        and traceback (text, from the handler down to where it was raised)."""
        return pd.DataFrame(self.recorder.errors, columns=["time", "queue", "batch", "error", "traceback"])

    def conservation(self) -> pd.DataFrame:
        """Per queue: sent = acked + dead_lettered + dropped + in_flight, cross-checked.

        ``in_flight`` counted from the ledger must equal what the brokers hold (buffered,
        on a delay/retry timer, scheduled to arrive, or inside a running batch);
        :meth:`check_conservation` raises if any row disagrees.
        """
        for queue in self.queues.values():
            queue.absorb()   # known arrivals up to now have been sent
        frame = self.ledger.counts().reindex(list(self.queues), fill_value=0)
        frame.index.name = "queue"
        running = self.recorder.in_progress_by_queue()
        frame["held_by_broker"] = [queue.backlog + queue.landing + queue.scheduled + running.get(name, 0)
                                   for name, queue in self.queues.items()]
        frame["balanced"] = (frame["sent"] == frame[list(OUTCOMES)].sum(axis=1) + frame["in_flight"]) & (
            frame["in_flight"] == frame["held_by_broker"])
        return frame

    def check_conservation(self) -> None:
        """Raise AssertionError unless every message is accounted for exactly once."""
        frame = self.conservation()
        if not frame["balanced"].all():
            raise AssertionError(f"conservation violated:\n{frame[~frame['balanced']]}")

    def summary(self) -> pd.DataFrame:
        """Per queue: messages, outcomes, deliveries, latency, batches, mean batch size and
        ``errors``, the exceptions its handler raised (:attr:`errors` has their tracebacks)."""
        msgs = self.messages
        batches = self.batches
        out = msgs.groupby("queue", observed=True).agg(
            sent=("message_id", "size"),
            acked=("outcome", lambda s: int((s == "acked").sum())),
            dead_lettered=("outcome", lambda s: int((s == "dead_lettered").sum())),
            dropped=("outcome", lambda s: int((s == "dropped").sum())),
            in_flight=("outcome", lambda s: int((s == "in_flight").sum())),
            deliveries=("deliveries", "sum"),
            p50_latency=("latency", lambda s: s.quantile(0.5)),
            p99_latency=("latency", lambda s: s.quantile(0.99)),
        )
        if len(batches):
            per_queue = batches.groupby("queue", observed=True)["size"].agg(batches="size", mean_batch="mean")
            out = out.join(per_queue, how="left")
        failed = pd.Series([e[1] for e in self.recorder.errors], dtype=object).value_counts()
        out["errors"] = failed.reindex(out.index, fill_value=0).astype(int)   # handler exceptions
        return Table(out)     # shows counts and times with their units

    def __repr__(self) -> str:
        return (f"<Runtime semantics={self.semantics.name!r} t={self.now:g}s "
                f"queues={len(self.queues)} deliveries={len(self.recorder)}>")


class QueuesAPI:
    """``env.QUEUES_API``: the Cloudflare REST API calls the seed uses for dynamic queues.

    ``await env.QUEUES_API.create_queue("tenant-7-queue")`` returns
    ``{"queue_id", "queue_name", "created_on"}``; ``await env.QUEUES_API.send(queue_id,
    [{"body": ...}])`` sends to a queue that has no binding.
    """

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime
        self._ids: dict[str, str] = {}

    def create_queue(self, queue_name: str):
        rt = self._runtime
        rt.create_queue(queue_name)
        queue_id = f"{rt._rng.getrandbits(128):032x}"
        self._ids[queue_id] = queue_name
        return completed({"queue_id": queue_id, "queue_name": queue_name, "created_on": rt.now})

    def send(self, queue_id: str, messages: list[dict]):
        try:
            name = self._ids[queue_id]
        except KeyError:
            raise ConfigError(f"QUEUES_API.send: queue_id={queue_id!r} does not exist; "
                              "allowed: a queue_id returned by create_queue") from None
        return Producer(self._runtime, name, "QUEUES_API").send_batch(messages)
