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

from ..errors import ConfigError, LimitError
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
from .semantics import DOCS, Semantics, resolve
from .settings import QUEUE_SETTINGS, check_setting_names
from .trace import Trace

__all__ = ["Runtime", "HandlerConsumer"]


class HandlerConsumer:
    """Runs a user ``async def handler(batch, env, ctx)`` for each batch.

    What :meth:`Runtime.consumer` installs on a queue; ``cpu_seconds`` adds up the
    ``ctx.work`` of every batch (for the cost table). A handler that raises fails its batch
    (recorded in :attr:`Runtime.errors`); a sync function works too and finishes at once.
    """

    __slots__ = ("handler", "runtime", "cpu_seconds")

    def __init__(self, handler: Callable, runtime: Runtime) -> None:
        self.handler, self.runtime = handler, runtime
        self.cpu_seconds = 0.0      # ctx.work of every batch, for cost

    def start(self, queue: Queue, batch_id: int, rows: list[int],
              done: Callable[[bool, BatchResult], None]) -> None:
        """Run the handler on one batch (the broker calls it); ``done(ok, result)`` when it ends."""
        rt, check = self.runtime, queue.check_delay
        result = BatchResult()
        batch = MessageBatch(queue.name, [Message(rt.ledger, row, result, check) for row in rows],
                             queue.metadata(), result, check)
        ctx = ExecutionContext(rt)

        def report(error: BaseException | None) -> None:
            self.cpu_seconds += ctx.cpu_seconds
            cpu = rt.semantics.consumer_cpu_seconds
            if error is None and cpu is not None and ctx.cpu_seconds > cpu:
                # queues/platform/limits/: consumer "CPU time 30 seconds" by default; the platform
                # ends the invocation (simplification: it fails when the handler returns)
                error = LimitError(
                    f"Worker exceeded CPU time limit. (queue {queue.name!r}: the invocation used "
                    f"{ctx.cpu_seconds:g} s of CPU; allowed: at most {cpu:g} s, the default limit; "
                    f"{DOCS} §3)")
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

    Declare queues (:meth:`queue`), consumers (:meth:`consumer`), Durable Objects
    (:meth:`actor`), KV (:meth:`kv`), D1 (:meth:`d1`) and Analytics Engine
    (:meth:`analytics`); send through ``rt.env.<BINDING>``; :meth:`run` the clock; read
    :attr:`trace`, :attr:`batches`, :attr:`messages`, :attr:`actor_calls`, :attr:`errors`
    and :meth:`summary`. Nothing waits in real time: a run of virtual hours returns in
    milliseconds, and the same seed gives the same run.

    Parameters
    ----------
    semantics : {"local", "production"} or Semantics
        ``"local"`` (the default) reproduces ``wrangler dev`` delivery for delivery;
        ``"production"`` uses Cloudflare's production defaults, limits and consumer
        concurrency (see :mod:`cdpkit.runtime.semantics`).
    seed : int
        Seeds message ids (and anything random), an int >= 0; the same seed gives the same run.
    budget : Budget, optional
        The most work a run may do (:class:`~cdpkit.Budget`: events, messages, memory,
        events at one virtual instant); over it :meth:`run` raises ``BudgetError``.
        Default ``cdp.Budget()``.

    Raises
    ------
    ConfigError
        For an unknown semantics profile, a seed that is not an int >= 0, or a budget that
        is not a :class:`~cdpkit.Budget`.

    Examples
    --------
    >>> rt = Runtime(semantics="production", seed=1)
    >>> rt
    <Runtime semantics='production' t=0s queues=0 deliveries=0>
    >>> Runtime(seed=-1)
    Traceback (most recent call last):
    ...
    cdpkit.errors.ConfigError: seed=-1 is not allowed; allowed: an int >= 0
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
        """Decorator: register ``async def handler(batch, env, ctx)`` as the queue's consumer.

        The handler gets a ``MessageBatch`` (``batch.messages``, ``batch.queue``,
        ``batch.ack_all()``, ``batch.retry_all(delay_seconds=...)``; each message has ``id``,
        ``body``, ``attempts``, ``timestamp``, ``ack()`` and ``retry(delay_seconds=...)``), the
        bindings ``env`` and an execution context ``ctx`` (``await ctx.work(s)`` spends virtual
        CPU, ``await ctx.sleep(s)`` waits, ``ctx.wait_until(coro)``). Messages neither acked nor
        retried are acked when the handler returns; if it raises, the whole batch is retried.
        The decorator returns the handler unchanged.

        Parameters
        ----------
        queue_name : str
            A queue declared with :meth:`queue`, or a template pattern (``"tenant-*"``): then
            every matching queue created at run time gets this handler.

        Returns
        -------
        callable
            The decorator.

        Raises
        ------
        ConfigError
            If the queue is not declared, already has a consumer, or the handler is not callable.

        Examples
        --------
        >>> rt = Runtime()
        >>> _ = rt.queue("jobs", max_batch_size=10)
        >>> @rt.consumer("jobs")
        ... async def handle(batch, env, ctx):
        ...     batch.ack_all()
        >>> _ = rt.env.JOBS.send_batch([{"body": n} for n in range(25)])
        >>> rt.run()
        >>> rt.batches["size"].tolist()
        [10, 10, 5]
        >>> rt.consumer("nope")
        Traceback (most recent call last):
        ...
        cdpkit.errors.ConfigError: consumer for queue 'nope': no such queue; declare it first with rt.queue('nope', ...); declared queues: jobs
        """
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
        """Give a queue an HTTP pull consumer (``type = "http_pull"``) instead of a push consumer.

        Clients call its ``pull(batch_size, visibility_timeout)`` (a list of leased messages,
        each with a ``lease_id``) and ``ack(acks=[...], retries=[...])``; a lease not settled
        within the visibility timeout is delivered again as a failed attempt (see
        :mod:`cdpkit.runtime.pull`, and ``PullClient`` for a polling loop).

        Parameters
        ----------
        queue_name : str
            A declared queue without a consumer.

        Returns
        -------
        PullConsumer
            The queue's consumer.

        Raises
        ------
        ConfigError
            If the queue is not declared or already has a consumer, or under
            ``semantics="local"`` (``wrangler dev`` has no pull endpoint).

        Examples
        --------
        >>> rt = Runtime(semantics="production")
        >>> _ = rt.queue("jobs")
        >>> pc = rt.pull_consumer("jobs")
        >>> _ = rt.env.JOBS.send({"n": 1})
        >>> rt.run(until=1)
        >>> leased = pc.pull(batch_size=10)
        >>> [m.body for m in leased]
        [{'n': 1}]
        >>> pc.ack(acks=[m.lease_id for m in leased])
        {'acked': 1, 'retried': 0, 'ignored': 0}
        """
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

        Parameters
        ----------
        binding : str
            The binding name (a JavaScript identifier, e.g. ``"ORCHESTRATOR"``).
        cls : type
            The class: a subclass of :class:`cdpkit.Actor` (or any class taking ``(ctx, env)``);
            its public async methods are its RPC methods. Its name must be a JavaScript identifier.
        sqlite : bool, optional
            The storage backend: SQLite (``new_sqlite_classes``, the default) or key-value
            (``new_classes``). With explicit :meth:`migration` entries it comes from them (and
            must agree if given).
        evict_after : float or None
            Idle seconds before the instance is dropped from memory (storage stays), 0 to
            86,400; None never evicts. Default ``"profile"``: the semantics profile's (70 s in
            production, never in local).
        script_name : str, optional
            The Worker that defines the class, when it is another one (no migration needed here).

        Returns
        -------
        ActorNamespace
            The namespace (``id_from_name``, ``get``, ``get_by_name``, ``new_unique_id``, ...).

        Raises
        ------
        ConfigError
            For a bad binding name, ``cls`` not a class, or ``evict_after`` out of range.

        Examples
        --------
        >>> import cdpkit as cdp
        >>> class Counter(cdp.Actor):
        ...     n = cdp.persist(0)
        ...     async def add(self, k):
        ...         self.n += k
        ...         return self.n
        >>> rt = Runtime()
        >>> rt.actor("COUNTER", Counter)
        <ActorNamespace COUNTER class=Counter sqlite objects=0>
        >>> stub = rt.env.COUNTER.get_by_name("a")
        >>> async def calls():
        ...     await stub.add(2)
        ...     return await stub.add(3)
        >>> task = rt.spawn(calls())
        >>> rt.run()
        >>> task.result(), len(rt.actor_calls)
        (5, 2)
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
        """Declare a ``[[migrations]]`` entry, as in ``wrangler.toml``.

        Without any, each bound class gets one (tag ``v1``). With them, every class bound by
        :meth:`actor` must be introduced by one (checked when the run starts), and its storage
        backend comes from the list it is in.

        Parameters
        ----------
        tag : str
            The migration's tag, unique and non-empty.
        new_sqlite_classes, new_classes : list of str
            Classes introduced with SQLite-backed or key-value storage.
        renamed_classes : list of dict
            ``{"from": "Old", "to": "New"}`` entries.
        deleted_classes : list of str
            Classes removed.

        Raises
        ------
        ConfigError
            For an empty or repeated tag or a malformed ``renamed_classes`` entry; at :meth:`run`,
            for a bound class no migration introduces.

        Examples
        --------
        >>> rt = Runtime()
        >>> rt.migration("v1", new_sqlite_classes=["Orchestrator"])
        >>> rt.migration("v2", renamed_classes=[{"from": "Orchestrator", "to": "Conductor"}])
        >>> [m["tag"] for m in rt.migrations]
        ['v1', 'v2']
        >>> rt.migration("v2")
        Traceback (most recent call last):
        ...
        cdpkit.errors.ConfigError: migration tag 'v2' is used twice; allowed: unique tags
        """
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
        """Bind a KV namespace as ``env.<binding>``.

        ``get``, ``put`` (``expiration_ttl`` >= 60 s), ``delete`` and ``list`` are awaitable and
        count as I/O (a Durable Object awaiting one lets its queued requests in); writes to one
        key more than once a second are rejected with a 429 as on Cloudflare.

        Parameters
        ----------
        binding : str
            The binding name (a JavaScript identifier).
        propagation_delay : float
            Seconds before a write is seen by reads, 0 to 3,600 (eventual consistency).
        latency : float
            Seconds each call takes, 0 to 60.

        Returns
        -------
        KVNamespace

        Raises
        ------
        ConfigError
            For a bad binding name or a value out of range.

        Examples
        --------
        >>> rt = Runtime()
        >>> rt.kv("CACHE", latency=0.002)
        <KVNamespace CACHE keys=0>
        >>> async def roundtrip():
        ...     await rt.env.CACHE.put("k", "v")
        ...     return await rt.env.CACHE.get("k")
        >>> task = rt.spawn(roundtrip())
        >>> rt.run()
        >>> task.result(), rt.now
        ('v', 0.004)
        """
        check_number(propagation_delay, f"kv {binding!r}: propagation_delay", 0, 3600)
        check_number(latency, f"kv {binding!r}: latency", 0, 60)
        store = KVNamespace(self, check_binding_name(binding), propagation_delay, latency)
        self.env.bind(binding, store)
        self.kv_namespaces[binding] = store
        return store

    def d1(self, binding: str, *, database_name: str | None = None, latency: float = 0.0) -> D1Database:
        """Bind a D1 database (sqlite3 in memory) as ``env.<binding>``.

        ``prepare(sql).bind(...)`` then ``run()``, ``all()``, ``first()`` or ``raw()``, and
        ``batch([...])``, as the Workers D1 API; results carry ``meta`` with estimated
        ``rows_read``/``rows_written`` (billed).

        Parameters
        ----------
        binding : str
            The binding name (a JavaScript identifier).
        database_name : str, optional
            The ``database_name`` of the export (default: from the binding).
        latency : float
            Seconds each call takes, 0 to 60.

        Returns
        -------
        D1Database

        Raises
        ------
        ConfigError
            For a bad binding name or latency out of range.

        Examples
        --------
        >>> rt = Runtime()
        >>> _ = rt.d1("DB", latency=0.005)
        >>> async def query():
        ...     return await rt.env.DB.prepare("SELECT ? AS x").bind(7).first()
        >>> task = rt.spawn(query())
        >>> rt.run()
        >>> task.result(), rt.now
        ({'x': 7}, 0.005)
        """
        check_number(latency, f"d1 {binding!r}: latency", 0, 60)
        db = D1Database(self, check_binding_name(binding), database_name, latency)
        self.env.bind(binding, db)
        self.databases[binding] = db
        return db

    def analytics(self, binding: str, *, dataset: str | None = None) -> AnalyticsDataset:
        """Bind an Analytics Engine dataset as ``env.<binding>``.

        Code calls ``env.<binding>.write_data_point({"blobs": [...], "doubles": [...],
        "indexes": [...]})``; the points are in :attr:`data_points`.

        Parameters
        ----------
        binding : str
            The binding name (a JavaScript identifier).
        dataset : str, optional
            The dataset name (default: the binding in lower case).

        Returns
        -------
        AnalyticsDataset

        Examples
        --------
        >>> rt = Runtime()
        >>> _ = rt.analytics("METRICS", dataset="cdp")
        >>> rt.env.METRICS.write_data_point({"blobs": ["a"], "doubles": [1.5], "indexes": ["t1"]})
        >>> rt.data_points[["dataset", "index1", "blob1", "double1"]].values.tolist()
        [['cdp', 't1', 'a', 1.5]]
        """
        ds = AnalyticsDataset(self, check_binding_name(binding), dataset or binding.lower())
        self.env.bind(binding, ds)
        self.datasets[binding] = ds
        return ds

    def sink(self, name: str, latency: float | Callable[[], float] = 0.0) -> Sink:
        """An outside endpoint that code calls: a webhook, an e-mail or CRM API.

        Code awaits ``rt.sinks[name].call()``; each call takes ``latency`` seconds and, being I/O
        that is not a Durable Object's own storage, opens the object's input gate (like KV and
        D1). The sink counts its ``calls``.

        Parameters
        ----------
        name : str
            Its name, the key in ``rt.sinks``.
        latency : float or callable
            Seconds per call, or a function drawing each call's latency.

        Returns
        -------
        Sink

        Examples
        --------
        >>> rt = Runtime()
        >>> rt.sink("crm", latency=0.5)
        <Sink crm calls=0>
        >>> async def post():
        ...     await rt.sinks["crm"].call()
        >>> _ = rt.spawn(post())
        >>> rt.run()
        >>> rt.now, rt.sinks["crm"].calls
        (0.5, 1)
        """
        sink = self.sinks[name] = Sink(self.clock, name, latency)
        return sink

    def attach_consumer(self, queue: str, consumer: Any, *, reads_metadata: bool = True) -> None:
        """Make ``consumer`` the consumer of ``queue`` (a seam for the simulator).

        ``consumer`` is an object with the broker's consumer interface
        (``start(queue, batch_id, rows, done)``), e.g. the simulator's spec consumer; user code
        registers handlers with :meth:`consumer` instead.

        Parameters
        ----------
        queue : str
            A declared queue without a consumer.
        consumer : object
            The consumer.
        reads_metadata : bool
            False: it never reads batch metadata, so the queue keeps no running backlog byte count.

        Raises
        ------
        ConfigError
            If the queue does not exist or already has a consumer.
        """
        target = self.queue_named(queue)
        if target.consumer is not None:
            raise ConfigError(f"queue {queue!r} already has a consumer; allowed: one consumer per queue")
        target.consumer = consumer
        if not reads_metadata:
            target.backlog_bytes = None

    def set_body_view(self, view: Callable[[Any], Any] | None) -> None:
        """How handler code sees a message entered as a raw payload (a seam for the simulator).

        A simulated workload's messages are arrival indices; ``view`` turns one into the body a
        handler reads (``{"type", "size", "origin", "origin_time"}``). None: bodies as stored.
        """
        self.ledger.raw_view = view

    def evict(self, binding: str, name_or_id: str | ActorId | None = None) -> int:
        """Evict Durable Objects from memory on purpose (their storage stays).

        Parameters
        ----------
        binding : str
            The actor binding (see :meth:`actor`).
        name_or_id : str or ActorId, optional
            One object, by name or id; default: every object of the namespace.

        Returns
        -------
        int
            How many objects were evicted (those not in memory count 0).

        Raises
        ------
        ConfigError
            If no actor is bound as ``binding``.

        Examples
        --------
        >>> import cdpkit as cdp
        >>> class Echo(cdp.Actor):
        ...     async def ping(self):
        ...         return "pong"
        >>> rt = Runtime()
        >>> _ = rt.actor("ECHO", Echo)
        >>> _ = rt.env.ECHO.get_by_name("a").ping()      # a call outside a handler starts at once
        >>> rt.run()
        >>> rt.evict("ECHO", "a"), rt.evict("ECHO")
        (1, 0)
        """
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
        """Pause delivery from ``queue`` (``wrangler queues pause-delivery``).

        Messages are still accepted and wait; batches running now finish.
        :meth:`resume_delivery` delivers them again, oldest first.

        Parameters
        ----------
        queue : str
            A declared queue.

        Raises
        ------
        ConfigError
            If there is no such queue.

        Examples
        --------
        >>> rt = Runtime()
        >>> _ = rt.queue("jobs")
        >>> @rt.consumer("jobs")
        ... async def handle(batch, env, ctx):
        ...     batch.ack_all()
        >>> rt.pause_delivery("jobs")
        >>> _ = rt.env.JOBS.send({"n": 1})
        >>> rt.run(until=60)
        >>> rt.messages["outcome"].tolist()
        ['in_flight']
        >>> rt.resume_delivery("jobs")
        >>> rt.run()
        >>> rt.messages["outcome"].tolist()
        ['acked']
        """
        self.queue_named(queue).pause_delivery()

    def resume_delivery(self, queue: str) -> None:
        """Resume delivery from ``queue`` (``wrangler queues resume-delivery``), oldest message first.

        Parameters
        ----------
        queue : str
            A declared queue (see :meth:`pause_delivery` for an example).

        Raises
        ------
        ConfigError
            If there is no such queue.
        """
        self.queue_named(queue).resume_delivery()

    def purge(self, queue: str) -> int:
        """Delete the messages waiting in ``queue`` (``wrangler queues purge``).

        Purged messages end ``dropped`` with drop reason ``"purged"``; batches running now are
        not touched.

        Parameters
        ----------
        queue : str
            A declared queue.

        Returns
        -------
        int
            How many messages were deleted.

        Raises
        ------
        ConfigError
            If there is no such queue.

        Examples
        --------
        >>> rt = Runtime()
        >>> _ = rt.queue("jobs")
        >>> @rt.consumer("jobs")
        ... async def handle(batch, env, ctx):
        ...     batch.ack_all()
        >>> rt.pause_delivery("jobs")
        >>> _ = rt.env.JOBS.send_batch([{"body": n} for n in range(3)])
        >>> rt.run(until=10)
        >>> rt.purge("jobs")
        3
        >>> rt.messages["drop_reason"].tolist()
        ['purged', 'purged', 'purged']
        """
        return self.queue_named(queue).purge()

    def apply_faults(self, faults: Any) -> Any:
        """Apply a fault timeline (a :class:`cdpkit.Faults`) to
        this runtime's queues, consumers, actors and stores; declare them (and register the
        consumers) first. Times are virtual seconds from 0. Returns the plan (its
        ``states`` count what each fault did).

        In handler code, ``errors`` and ``rate_limit`` of an actor (named by binding or class)
        or a store (a KV namespace, D1 database or sink) make its calls raise a
        :class:`~cdpkit.runtime.faults.FaultError` with the platform's text (e.g. ``KV PUT
        failed: 429 Too Many Requests``, ``D1_ERROR: Network connection lost.``) where the
        handler awaits them; an exception the handler does not catch fails its batch, which is
        retried by the queue's rules. ``slowdown`` of a consumer stretches each invocation that
        starts inside a window (see :class:`~cdpkit.runtime.faults.FaultedConsumer`); of a
        store, its latency.

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

        A KV namespace failing every call for 10 s:

        >>> rt = cdp.Runtime()
        >>> _ = rt.queue("jobs", max_retries=0)
        >>> _ = rt.kv("CACHE")
        >>> @rt.consumer("jobs")
        ... async def handle(batch, env, ctx):
        ...     await env.CACHE.put("k", "v")
        >>> _ = rt.apply_faults(cdp.Faults([{"kind": "errors", "node": "CACHE", "p": 1,
        ...                                  "start": 0, "end": 10}]))
        >>> _ = rt.env.JOBS.send({"n": 1})
        >>> import warnings
        >>> with warnings.catch_warnings():
        ...     warnings.simplefilter("ignore")     # a HandlerWarning shows the traceback
        ...     rt.run()
        >>> str(rt.errors["error"][0]), rt.messages["outcome"].tolist()
        ("KV PUT failed: 500 Internal Server Error (CACHE.put) [injected by fault 1 (errors of 'CACHE')]", ['dropped'])
        """
        from .faults import FaultPlan, runtime_nodes
        if not callable(getattr(faults, "check", None)):     # the model layer's class, by duck type
            raise ConfigError(f"apply_faults: faults={faults!r:.80} is not allowed; allowed: a "
                              "cdpkit.Faults (e.g. cdp.Faults([{'kind': 'outage', 'node': ...}]))")
        kinds, consumers, actors, stores = runtime_nodes(self)
        dlqs = {q.settings.dead_letter_queue for q in self.queues.values()} - {None}
        faults.check(kinds, None, dlqs)
        for f in faults:
            if f.kind == "errors" and kinds[f.node] != "consumer" and f.permanent:
                # a call does not name the message it serves: "fails every attempt of the same
                # message" has no meaning for it
                raise ConfigError(f"{f.label}: permanent={f.permanent:g} is not allowed for errors of "
                                  f"{kinds[f.node]} {f.node!r} in handler code (its calls do not say "
                                  "which message they serve); allowed: 0 (each call fails with p)")
            if f.kind == "slowdown" and kinds[f.node] == "actor":
                raise ConfigError(f"{f.label}: slowdown of actor {f.node!r} is not modelled in handler "
                                  "code; allowed: a consumer or store (slow the stores the actor calls, "
                                  "or its consumer), or cdp.simulate of a spec actor")
        plan = FaultPlan(self, faults, self.seed)
        plan.install(consumers, actors, stores)
        plan.install_calls(actors, stores)
        return plan

    def create_queue(self, name: str) -> Queue:
        """Create a queue at run time (the seed's multi-tenant pattern).

        Settings and consumer come from the first template (``rt.queue("tenant-*", ...)``)
        whose pattern matches; without one the queue has profile defaults and no consumer.
        Handler code does the same with ``await env.QUEUES_API.create_queue(name)``.

        Parameters
        ----------
        name : str
            A new queue name.

        Returns
        -------
        Queue

        Raises
        ------
        ConfigError
            For a bad or existing name.

        Examples
        --------
        >>> rt = Runtime()
        >>> rt.queue("tenant-*", max_batch_size=5)
        >>> @rt.consumer("tenant-*")
        ... async def handle(batch, env, ctx):
        ...     batch.ack_all()
        >>> rt.create_queue("tenant-7")
        <Queue 'tenant-7' consumer, max_batch_size=5 backlog=0>
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
        """Current virtual time in seconds (0 at the start, advanced only by :meth:`run`).

        Examples
        --------
        >>> rt = Runtime()
        >>> rt.run(until=30.0)
        >>> rt.now
        30.0
        """
        return self.clock.now

    @staticmethod
    def sleep(seconds: float):
        """Awaitable pause of ``seconds`` of virtual time, for producer scripts.

        Parameters
        ----------
        seconds : float
            A finite number >= 0.

        Raises
        ------
        TimeError
            For a negative, infinite or NaN ``seconds``.

        Examples
        --------
        >>> rt = Runtime()
        >>> async def producer():
        ...     for n in range(3):
        ...         await rt.env.JOBS.send({"n": n})
        ...         await rt.sleep(10)
        >>> _ = rt.queue("jobs")
        >>> _ = rt.spawn(producer())
        >>> rt.run()
        >>> rt.now, rt.messages["sent"].tolist()
        (30.0, [0.0, 10.0, 20.0])
        """
        return sleep(seconds)

    def gather(self, *awaitables: Any) -> Future:
        """Await several things at once, like ``Promise.all``.

        Coroutines are started as tasks; futures and tasks are awaited as they are. The result
        is the list of their values, in order; the first error wins.

        Parameters
        ----------
        *awaitables
            Coroutines, tasks or futures (such as ``env.JOBS.send(...)``).

        Returns
        -------
        Future
            Awaitable from a task (see :meth:`spawn`).

        Examples
        --------
        >>> rt = Runtime()
        >>> async def nap(s):
        ...     await rt.sleep(s)
        ...     return s
        >>> async def main():
        ...     return await rt.gather(nap(1), nap(2))
        >>> task = rt.spawn(main())
        >>> rt.run()
        >>> task.result(), rt.now
        ([1, 2], 2.0)
        """
        return gather(self.clock, *awaitables)

    def spawn(self, coro: Coroutine, name: str = "") -> Task:
        """Run a coroutine (a producer script, say) in virtual time.

        If it raises while nothing awaits it, :meth:`run` re-raises the exception then
        (with a note naming the task): like ``asyncio.run`` with its main coroutine, or
        Node's unhandled rejections, a failure is not swallowed. To handle it instead,
        await the task (or ``rt.gather`` it) from another task, or catch it inside.

        Parameters
        ----------
        coro : coroutine
            E.g. ``producer()`` for an ``async def producer()``.
        name : str
            Its name in error messages (default: the coroutine's).

        Returns
        -------
        Task
            ``task.result()`` is its return value once it is done.

        Raises
        ------
        ConfigError
            If ``coro`` is not a coroutine (a function not called, say).

        Examples
        --------
        >>> rt = Runtime()
        >>> async def answer():
        ...     await rt.sleep(5)
        ...     return 42
        >>> task = rt.spawn(answer())
        >>> rt.run()
        >>> task.result()
        42
        """
        if not inspect.iscoroutine(coro):
            raise ConfigError(f"spawn: {coro!r:.80} is not allowed; allowed: a coroutine, "
                              "e.g. rt.spawn(producer()) for an async def producer")
        task = self.clock.spawn(coro, name)
        task.surface = True
        return task

    def call_at(self, when: float, fn: Callable, *args: Any) -> None:
        """Call ``fn(*args)`` at virtual time ``when``.

        Parameters
        ----------
        when : float
            A finite time in seconds, not before :attr:`now`.
        fn : callable
            A plain function (not a coroutine function: use :meth:`spawn` for those).
        *args
            Its arguments.

        Raises
        ------
        TimeError
            If ``when`` is in the past or not finite.

        Examples
        --------
        >>> rt = Runtime()
        >>> _ = rt.queue("jobs")
        >>> rt.call_at(5, rt.env.JOBS.send, {"n": 1})
        >>> rt.run()
        >>> rt.messages["sent"].tolist()
        [5.0]
        """
        self.clock.call_at(when, fn, *args)

    def run(self, until: float | None = None) -> None:
        """Run until virtual time ``until`` (seconds), or until nothing is left to do.

        It always returns or raises: over the runtime's :class:`~cdpkit.Budget` (too many
        events or messages, too much memory, or virtual time standing still) it raises
        ``BudgetError``; an exception in a task from :meth:`spawn` that nothing awaits,
        KeyboardInterrupt and SystemExit propagate. A handler that raises is shown as a
        ``HandlerWarning`` (with its traceback) the first time each kind of error happens, and
        counted at the end; see :attr:`errors`. It may be called again to continue.

        Parameters
        ----------
        until : float, optional
            A finite time not before now; default: run until no event is left.

        Raises
        ------
        ConfigError
            If the wiring is wrong (see :meth:`validate`).
        BudgetError
            Over the budget.
        TimeError
            If ``until`` is in the past or not finite.

        Examples
        --------
        >>> rt = Runtime()
        >>> _ = rt.queue("jobs", max_batch_timeout=2)
        >>> @rt.consumer("jobs")
        ... async def handle(batch, env, ctx):
        ...     await ctx.work(0.5)
        >>> _ = rt.env.JOBS.send({"n": 1})
        >>> rt.run(until=1)
        >>> rt.messages["outcome"].tolist()
        ['in_flight']
        >>> rt.run()
        >>> rt.messages["outcome"].tolist(), rt.now
        (['acked'], 2.5)
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
        """Check the wiring before anything runs (:meth:`run` calls it).

        Creates dead letter queues that were named but not declared (without a consumer) and
        applies the :meth:`migration` entries.

        Raises
        ------
        ConfigError
            Naming the problem: a queue with consumer settings but no consumer, a bound class no
            migration introduces, or a storage backend that disagrees with the migrations.

        Examples
        --------
        >>> rt = Runtime()
        >>> _ = rt.queue("jobs", max_batch_size=5)
        >>> rt.validate()
        Traceback (most recent call last):
        ...
        cdpkit.errors.ConfigError: queue 'jobs' has consumer settings (max_batch_size) but no consumer; register one with @rt.consumer('jobs') or drop them
        """
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

    def next_batch_id(self, count: int = 1) -> int:
        """The next batch number (1, 2, ...), shared by all queues; used by the broker (a
        compiled run takes ``count`` consecutive numbers at once: the first is returned)."""
        first = self._batch_seq + 1
        self._batch_seq += count
        return first

    def queue_named(self, name: str) -> Queue:
        """The declared queue ``name``; raises ConfigError listing the queues if there is none."""
        try:
            return self.queues[name]
        except KeyError:
            raise ConfigError(f"no queue named {name!r}; queues: {', '.join(sorted(self.queues))}") from None

    # -- results -----------------------------------------------------------------------
    @property
    def trace(self) -> pd.DataFrame:
        """Every delivery: one row per message per attempt.

        Columns ``queue``, ``batch``, ``delivered_at``, ``finished_at``, ``message_id``,
        ``attempts`` and ``disposition`` (``acked``, ``retried``, ``dead_lettered``, ``dropped``,
        ...). See the module example; :attr:`messages` has one row per message instead.
        """
        return self.recorder.deliveries(self.ledger)

    @property
    def batches(self) -> pd.DataFrame:
        """Every batch: how it was cut and how it ended.

        Columns ``queue``, ``batch`` (its number), ``delivered_at``, ``finished_at``, ``size``,
        ``outcome`` (``ok``, ``exception``, ...), ``retry_all``, ``ack_all`` and how many of its
        messages were ``acked``, ``retried``, ``dead_lettered`` and ``dropped``.

        Examples
        --------
        >>> rt = Runtime()
        >>> _ = rt.queue("jobs", max_batch_size=2)
        >>> @rt.consumer("jobs")
        ... async def handle(batch, env, ctx):
        ...     batch.ack_all()
        >>> _ = rt.env.JOBS.send_batch([{"body": n} for n in range(3)])
        >>> rt.run()
        >>> rt.batches[["batch", "size", "outcome", "acked"]].values.tolist()
        [[1, 2, 'ok', 2], [2, 1, 'ok', 1]]
        """
        return self.recorder.batches()

    @property
    def messages(self) -> pd.DataFrame:
        """Every message sent to every queue (dead letters appear again on their DLQ).

        Columns ``message_id``, ``queue``, ``content_type``, ``bytes``, ``sent``,
        ``first_delivered``, ``deliveries``, ``attempts``, ``outcome`` (``acked``,
        ``dead_lettered``, ``dropped``, ``in_flight``, ...), ``finished``, ``drop_reason``,
        ``wait`` (sent to first delivery) and ``latency`` (sent to finished).

        Examples
        --------
        >>> rt = Runtime()
        >>> _ = rt.queue("jobs")
        >>> _ = rt.env.JOBS.send({"n": 1})      # no consumer: wrangler dev discards it
        >>> rt.run()
        >>> rt.messages[["queue", "outcome", "drop_reason"]].values.tolist()
        [['jobs', 'dropped', 'no consumer (wrangler dev discards)']]
        """
        return self.ledger.frame()

    @property
    def actor_calls(self) -> pd.DataFrame:
        """Every request to a Durable Object.

        Columns ``binding``, ``object``, ``method``, ``arrived``, ``started``, ``finished``,
        ``outcome``, ``wait`` (queued behind the object's input gate) and ``duration``. See
        :meth:`actor` for an example.
        """
        return self.recorder.actor_calls()

    @property
    def actors(self) -> pd.DataFrame:
        """Per Durable Object: what it did and whether it is in memory now.

        Columns ``binding``, ``object``, ``requests``, ``busy_seconds`` (CPU), ``evictions``,
        ``in_memory`` and ``waiting`` (requests queued at its gate now).

        Examples
        --------
        >>> import cdpkit as cdp
        >>> class Echo(cdp.Actor):
        ...     async def ping(self):
        ...         return "pong"
        >>> rt = Runtime()
        >>> _ = rt.actor("ECHO", Echo)
        >>> _ = rt.env.ECHO.get_by_name("a").ping()      # a call outside a handler starts at once
        >>> rt.run()
        >>> rt.actors[["binding", "object", "requests", "in_memory"]].values.tolist()
        [['ECHO', 'a', 1, True]]
        """
        rows = [(ns.binding, obj.label, obj.requests, obj.busy_seconds, obj.evictions,
                 obj.instance is not None, len(obj.gate.waiting))
                for ns in self.namespaces.values() for obj in ns.objects.values()]
        return pd.DataFrame(rows, columns=["binding", "object", "requests", "busy_seconds",
                                           "evictions", "in_memory", "waiting"])

    @property
    def data_points(self) -> pd.DataFrame:
        """Analytics Engine points written with ``write_data_point``: ``time``, ``dataset``, and
        ``index1``, ``blob1``..., ``double1``... (see :meth:`analytics`).
        """
        return pd.DataFrame([p for ds in self.datasets.values() for p in ds.points])

    @property
    def errors(self) -> pd.DataFrame:
        """Exceptions raised by consumer handlers, one row each.

        Columns ``time``, ``queue``, ``batch``, ``error`` (the exception) and ``traceback``
        (text, from the handler down to where it was raised).

        Examples
        --------
        >>> import warnings
        >>> rt = Runtime()
        >>> _ = rt.queue("jobs", max_retries=0)
        >>> @rt.consumer("jobs")
        ... async def handle(batch, env, ctx):
        ...     batch.messages[0].body["missing"]
        >>> _ = rt.env.JOBS.send({"n": 1})
        >>> with warnings.catch_warnings():
        ...     warnings.simplefilter("ignore")     # a HandlerWarning shows the traceback
        ...     rt.run()
        >>> rt.errors[["time", "queue", "batch"]].values.tolist(), repr(rt.errors["error"][0])
        ([[1.0, 'jobs', 1]], "KeyError('missing')")
        """
        return pd.DataFrame(self.recorder.errors, columns=["time", "queue", "batch", "error", "traceback"])

    def conservation(self) -> pd.DataFrame:
        """Per queue: sent = acked + dead_lettered + dropped + in_flight, cross-checked.

        ``in_flight`` counted from the ledger must equal what the brokers hold (buffered,
        on a delay/retry timer, scheduled to arrive, or inside a running batch);
        :meth:`check_conservation` raises if any row disagrees.

        Returns
        -------
        DataFrame
            Indexed by queue: ``sent``, the outcome counts, ``in_flight``, ``held_by_broker``
            and ``balanced`` (bool).

        Examples
        --------
        >>> rt = Runtime()
        >>> _ = rt.queue("jobs")
        >>> @rt.consumer("jobs")
        ... async def handle(batch, env, ctx):
        ...     batch.ack_all()
        >>> _ = rt.env.JOBS.send_batch([{"body": n} for n in range(3)])
        >>> rt.run()
        >>> rt.conservation()[["sent", "acked", "in_flight", "balanced"]].values.tolist()
        [[3, 3, 0, True]]
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

    def close_unstarted(self) -> int:
        """Close the coroutines of tasks that never started (their first step still scheduled,
        or waiting at an object's input gate), and return how many. A simulation stopped with
        work in flight (``drain=False``) is not run further; without this, Python warns, when
        it collects them, that cdpkit's own coroutines were never awaited."""
        tasks = self.clock.scheduled_tasks()
        tasks += [task for namespace in self.namespaces.values() for obj in namespace.objects.values()
                  for task, _, _ in obj.gate.waiting]
        unstarted = [task for task in tasks if inspect.getcoroutinestate(task.coro) == inspect.CORO_CREATED]
        for task in unstarted:
            task.coro.close()
        return len(unstarted)

    def check_conservation(self) -> None:
        """Check that every message is accounted for exactly once (see :meth:`conservation`).

        Raises
        ------
        AssertionError
            Showing the queues whose counts disagree.

        Examples
        --------
        >>> rt = Runtime()
        >>> _ = rt.queue("jobs")
        >>> _ = rt.env.JOBS.send({"n": 1})
        >>> rt.run(until=10)
        >>> rt.check_conservation()
        """
        frame = self.conservation()
        if not frame["balanced"].all():
            raise AssertionError(f"conservation violated:\n{frame[~frame['balanced']]}")

    def summary(self) -> pd.DataFrame:
        """Per queue: messages, outcomes, deliveries, latency, batches and handler errors.

        Returns
        -------
        DataFrame
            Indexed by queue: ``sent``, ``acked``, ``dead_lettered``, ``dropped``,
            ``in_flight``, ``deliveries``, ``p50_latency``, ``p99_latency`` (s), ``batches``,
            ``mean_batch`` and ``errors``, the exceptions its handler raised (:attr:`errors` has
            their tracebacks). Shown with units in a notebook.

        Examples
        --------
        >>> rt = Runtime()
        >>> _ = rt.queue("jobs", max_batch_size=2)
        >>> @rt.consumer("jobs")
        ... async def handle(batch, env, ctx):
        ...     batch.ack_all()
        >>> _ = rt.env.JOBS.send_batch([{"body": n} for n in range(3)])
        >>> rt.run()
        >>> s = rt.summary()
        >>> s.loc["jobs", ["sent", "acked", "batches", "errors"]].tolist(), float(s.loc["jobs", "mean_batch"])
        ([3, 3, 2, 0], 1.5)
        """
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
        """``await env.QUEUES_API.create_queue(name)``: create a queue (see :meth:`Runtime.create_queue`).

        Returns an awaitable of ``{"queue_id", "queue_name", "created_on"}``.
        """
        rt = self._runtime
        rt.create_queue(queue_name)
        queue_id = f"{rt._rng.getrandbits(128):032x}"
        self._ids[queue_id] = queue_name
        return completed({"queue_id": queue_id, "queue_name": queue_name, "created_on": rt.now})

    def send(self, queue_id: str, messages: list[dict]):
        """``await env.QUEUES_API.send(queue_id, [{"body": ...}, ...])``: send to a created queue.

        Raises ConfigError for a ``queue_id`` that ``create_queue`` did not return.
        """
        try:
            name = self._ids[queue_id]
        except KeyError:
            raise ConfigError(f"QUEUES_API.send: queue_id={queue_id!r} does not exist; "
                              "allowed: a queue_id returned by create_queue") from None
        return Producer(self._runtime, name, "QUEUES_API").send_batch(messages)
