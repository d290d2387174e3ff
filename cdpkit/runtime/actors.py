"""Durable Objects (actors) in virtual time: namespaces, ids, stubs, single-threaded objects.

* A namespace binding (``env.ORCHESTRATOR``) makes ids (``id_from_name`` is deterministic,
  ``new_unique_id``, ``id_from_string``) and stubs (``get(id)``).
* ``await stub.method(*args)`` is an RPC: arguments and results are copied, a missing
  method is a clear error at the call.
* Each object runs one thing at a time (an :class:`ObjectGate`, workerd's input gate): CPU
  work (``ctx.work``) is serial, and requests interleave only while one awaits outgoing
  I/O (an RPC to another object, a timer, any KV/D1 call). Storage calls keep the gate
  closed, and so does ``ctx.block_concurrency_while`` (and ``storage.transaction``)
  through any await; if its callback fails, the object is reset and its queued requests
  fail with the same error.
* Storage survives eviction (after ``evict_after`` idle seconds, or ``rt.evict``) and
  ``ctx.abort()``; the instance and its in-memory fields do not. :func:`persist` fields
  are kept in storage, like ``@Persist`` in ``@cloudflare/actors``.
* Alarms: ``ctx.storage.set_alarm(t)`` calls ``alarm(info)`` at ``t`` (a past ``t`` becomes
  now); a failing alarm is retried with exponential backoff from 2 s, at most 6 times.
  ``get_alarm()`` is None while the handler runs and the scheduled time again after it
  fails; the alarm is deleted once it succeeds.
"""

from __future__ import annotations

import copy
import hashlib
import inspect
import pickle
import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from ..errors import HandlerError, LimitError
from .clock import Future, Gate, sleep, work
from .storage import Storage

if TYPE_CHECKING:
    from .env import Env
    from .runtime import Runtime

__all__ = ["Actor", "persist", "ActorId", "ActorNamespace", "ActorStub", "ActorAborted", "ObjectGate"]

HEX_ID = re.compile(r"[0-9a-f]{64}")
ALARM_FIRST_BACKOFF = 2.0
ALARM_MAX_RETRIES = 6



def admission(tat: float, now: float, rate: float) -> tuple[float, float]:
    """One request at a Durable Object under durable-objects/platform/limits/ "soft limit of
    1,000 requests per second" per object, as a bucket of one second's requests refilled at
    ``rate`` (ASSUMPTION: the docs give no window), kept as the time the requests so far
    would have drained at ``rate`` (``tat``, the generic cell rate algorithm's theoretical
    arrival time; 0.0 at first): returns the new ``tat`` and the seconds this request waits
    first (none unless positive).

    >>> admission(0.0, 0.0, 2.0)             # an empty bucket: at once
    (0.5, -0.5)
    >>> admission(1.0, 0.0, 2.0)             # two ahead of it: it waits half a second
    (1.5, 0.5)
    """
    tat = (tat if tat > now else now) + 1 / rate
    return tat, tat - now - 1.0


def overload_error(binding: str, label: str, semantics: Any) -> LimitError:
    """What a request queued past the soft limit for ``actor_max_queue_seconds`` fails with
    (durable-objects/platform/limits/: "Durable Object is overloaded. Requests queued for too
    long.")."""
    return LimitError(
        f"Durable Object is overloaded. Requests queued for too long. ({binding} {label}: over "
        f"{semantics.actor_requests_per_second:,.0f} requests per second, queued "
        f"{semantics.actor_max_queue_seconds:g} s; spread the load over more objects)")

class ActorAborted(Exception):
    """Raised by ``ctx.abort()``: the object is reset; storage stays, memory is lost."""


_IMMUTABLE = (int, float, str, bool, bytes, type(None))


def _immutable(value: Any) -> bool:
    kind = type(value)
    return kind in _IMMUTABLE or (kind is tuple and all(_immutable(v) for v in value))


def _clone(value: Any) -> Any:
    """Structured-clone stand-in for RPC arguments and results (immutables pass as they are)."""
    if _immutable(value):
        return value
    try:
        return pickle.loads(pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL))
    except Exception:
        return copy.deepcopy(value)


class ActorId:
    """A Durable Object id: 64 hex characters, plus the name it came from (if any)."""

    __slots__ = ("hex", "name", "namespace")

    def __init__(self, hex: str, namespace: str, name: str | None = None) -> None:
        self.hex, self.namespace, self.name = hex, namespace, name

    def __str__(self) -> str:
        return self.hex

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ActorId) and (self.hex, self.namespace) == (other.hex, other.namespace)

    def __hash__(self) -> int:
        return hash((self.hex, self.namespace))

    def equals(self, other: ActorId) -> bool:
        return self == other

    def __repr__(self) -> str:
        label = f"name={self.name!r}" if self.name is not None else self.hex[:12] + "…"
        return f"ActorId({self.namespace}, {label})"


class persist:
    """A field kept in the object's storage, so it survives eviction (``@Persist``).

    Reads load it from storage once per instance; assignments write through, and at the
    end of every request the current value is written back (so in-place mutation of a
    dict or list is kept too).

    >>> class Counter(Actor):
    ...     runs = persist(0)
    """

    def __init__(self, default: Any = None) -> None:
        self.default = default
        self.name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name
        owner._persisted = (*getattr(owner, "_persisted", ()), name)

    @property
    def key(self) -> str:
        return f"__persist__:{self.name}"

    def __get__(self, obj: Any, objtype: type | None = None) -> Any:
        if obj is None:
            return self
        cache = obj.__dict__
        if self.name not in cache:
            cache[self.name] = obj.ctx.storage.read(self.key, copy.deepcopy(self.default))
        return cache[self.name]

    def __set__(self, obj: Any, value: Any) -> None:
        obj.__dict__[self.name] = value
        obj.ctx.storage.write(self.key, value)


class Actor:
    """Base class for Durable Object classes: ``self.ctx`` (state) and ``self.env``.

    Public methods (not starting with ``_``) are RPC methods; ``async def fetch(request)``
    answers ``stub.fetch``; ``async def alarm(info)`` runs when an alarm fires.
    """

    _persisted: tuple[str, ...] = ()

    def __init__(self, ctx: ActorContext, env: Env) -> None:
        self.ctx = ctx
        self.env = env

    @property
    def id(self) -> ActorId:
        return self.ctx.id

    @property
    def name(self) -> str | None:
        return self.ctx.id.name


class ObjectGate(Gate):
    """A Durable Object's input gate: a :class:`~cdpkit.runtime.clock.Gate` whose holder can
    keep it closed through I/O awaits while it runs a critical section (workerd's
    ``InputGate::CriticalSection``, used by ``blockConcurrencyWhile`` and transactions)."""

    __slots__ = ("critical",)

    def __init__(self, clock) -> None:
        super().__init__(clock)
        self.critical: Any = None       # the task in a critical section, if any

    def leave(self, task) -> None:
        if task is not self.critical:
            super().leave(task)

    def enter(self, task, value: Any = None, error: BaseException | None = None) -> None:
        if task is self.critical:       # it kept the gate: resume at once
            self.clock.call_later(0.0, task._step, value, error)
        else:
            super().enter(task, value, error)

    async def hold(self, awaitable: Any) -> Any:
        """Await ``awaitable`` in the running task with the gate closed to everyone else."""
        outer, self.critical = self.critical, self.holder
        try:
            return await awaitable
        finally:
            self.critical = outer


class ActorContext:
    """``this.ctx`` of a Durable Object: id, storage, CPU work, sleep, wait_until, abort,
    block_concurrency_while."""

    def __init__(self, obj: ActorObject) -> None:
        self._obj = obj
        self.id = obj.id
        self.storage = obj.storage

    def block_concurrency_while(self, callback: Callable[[], Awaitable[Any]]) -> Any:
        """Run ``await callback()`` with no other request let in, even while it awaits I/O.

        Await it in a method (``await self.ctx.block_concurrency_while(self._load)``); in
        ``__init__`` just call it: it runs before the first request. If the callback fails,
        the object is reset and the requests queued at it fail with that error.
        """
        if not callable(callback):
            raise HandlerError(f"block_concurrency_while: callback={callback!r:.60} is not allowed; "
                               "allowed: a function returning an awaitable (e.g. an async def)")
        obj = self._obj
        if obj.constructing:            # runs first thing, before the request (see serve)
            done = Future()
            obj.pending_critical.append((callback, done))
            return done
        return obj.critical(callback)

    def work(self, seconds: float):
        """Spend ``seconds`` of this object's (serial) CPU time."""
        self._obj.busy_seconds += seconds
        return work(seconds)

    def sleep(self, seconds: float):
        """Wait ``seconds`` (a timer: other requests may run meanwhile)."""
        return sleep(seconds)

    def wait_until(self, awaitable) -> None:
        if inspect.iscoroutine(awaitable):
            self._obj.namespace.runtime.clock.spawn(awaitable, gate=self._obj.gate)

    def abort(self, reason: str = "aborted") -> None:
        """Reset the object (like ``ctx.abort()``): memory is lost, storage is kept."""
        self._obj.instance = None
        raise ActorAborted(reason)


class ActorObject:
    """One object (one id): its storage and gate live as long as the namespace."""

    def __init__(self, namespace: ActorNamespace, actor_id: ActorId) -> None:
        self.namespace = namespace
        self.id = actor_id
        self.storage = Storage(namespace.sqlite, on_alarm_change=self._schedule_alarm,
                               clock=namespace.runtime.clock)
        self.gate = ObjectGate(namespace.runtime.clock)
        self.storage.critical = self.gate.hold
        self.constructing = False
        self.pending_critical: list[tuple[Callable, Future]] = []
        self.generation = 0             # +1 each time a failed critical section resets it
        self.broken_by: BaseException | None = None
        self.instance: Any = None
        self.active = 0
        self.busy_seconds = 0.0
        self.requests = 0
        self.evictions = 0
        self._evict_timer: list | None = None
        self._alarm_timer: list | None = None
        self._alarm_retries = 0
        self._alarm_due: float | None = None
        self._tat = 0.0     # the soft limit's bucket (production): see admission()

    @property
    def label(self) -> str:
        return self.id.name if self.id.name is not None else self.id.hex

    def ensure_instance(self) -> Any:
        if self.instance is None:
            ns = self.namespace
            self.constructing = True
            try:
                self.instance = ns.cls(ActorContext(self), ns.runtime.env)
            finally:
                self.constructing = False
        return self.instance

    async def critical(self, callback: Callable[[], Awaitable[Any]]) -> Any:
        """``callback()`` in a critical section; if it fails, the object is reset
        (``broken.inputGateBroken`` in workerd) and the error goes to every queued request."""
        try:
            return await self.gate.hold(callback())
        except BaseException as exc:
            self._break(exc)
            raise

    def _break(self, error: BaseException) -> None:
        self.instance = None
        self.generation += 1
        self.broken_by = error
        waiting = self.gate.waiting
        for i, (task, value, _) in enumerate(waiting):
            if inspect.getcoroutinestate(task.coro) != inspect.CORO_CREATED:
                waiting[i] = (task, value, error)   # in flight: fails where it awaits
            # not started yet: serve() sees the new generation and fails

    def flush_persisted(self) -> None:
        instance = self.instance
        if instance is not None:
            for name in getattr(type(instance), "_persisted", ()):
                if name in instance.__dict__:
                    self.storage.write(f"__persist__:{name}", instance.__dict__[name])

    def admission(self) -> float:
        """Seconds a request arriving now waits before the object takes it (:func:`admission`)."""
        rt = self.namespace.runtime
        rate, now = rt.semantics.actor_requests_per_second, rt.clock.now
        if rate is None:
            return 0.0
        self._tat, wait = admission(self._tat, now, rate)
        return wait

    def call(self, method: str, args: tuple, kwargs: dict) -> Future:
        """Queue a request at this object; the returned future completes with the result."""
        rt = self.namespace.runtime
        record = rt.recorder.actor_call(self.namespace.binding, self.label, method, rt.clock.now)
        args = _clone(args)      # structured clone at the call, whenever it runs
        kwargs = _clone(kwargs) if kwargs else kwargs
        wait = self.admission()
        if wait > 0:
            return self._queued(wait, record, method, args, kwargs)
        return self._serve(record, method, args, kwargs)

    def _queued(self, wait: float, record: list, method: str, args: tuple, kwargs: dict) -> Future:
        """A request past the soft limit queues; queued longer than ``actor_max_queue_seconds``
        (ASSUMPTION) it fails as the platform says: "Durable Object is overloaded. Requests
        queued for too long." (durable-objects/platform/limits/)."""
        rt, outer = self.namespace.runtime, Future()
        most = rt.semantics.actor_max_queue_seconds
        if wait > most:
            self._tat -= 1 / rt.semantics.actor_requests_per_second   # it never runs: its place is given back

            def overloaded() -> None:
                record[4] = record[5] = rt.clock.now
                record[6] = "overloaded"
                self.requests += 1
                outer.set_exception(overload_error(self.namespace.binding, self.label, rt.semantics))
            rt.clock.call_later(most, overloaded)
            return outer

        def admitted() -> None:
            task = self._serve(record, method, args, kwargs)
            task.add_done_callback(lambda t: outer.set_exception(t.error) if t.error is not None
                                   else outer.set_result(t.value))
        rt.clock.call_later(wait, admitted)
        return outer

    def _serve(self, record: list, method: str, args: tuple, kwargs: dict) -> Future:
        rt = self.namespace.runtime
        self.active += 1
        self.requests += 1
        if self._evict_timer is not None:
            rt.clock.cancel(self._evict_timer)
            self._evict_timer = None
        generation = self.generation

        async def serve():
            record[4] = rt.clock.now  # started: the gate is ours
            try:
                if generation != self.generation:   # queued when a critical section failed
                    raise self.broken_by
                instance = self.ensure_instance()
                while self.pending_critical:         # the constructor's block_concurrency_while
                    callback, done = self.pending_critical.pop(0)
                    try:
                        done.set_result(await self.critical(callback))
                    except BaseException as exc:
                        self.pending_critical.clear()
                        done.set_exception(exc)
                        raise
                value = getattr(instance, method)(*args, **kwargs)
                if inspect.isawaitable(value):
                    value = await value
                self.flush_persisted()
                record[6] = "ok"
                return _clone(value)
            except BaseException:
                record[6] = "error"
                raise
            finally:
                record[5] = rt.clock.now
                self.active -= 1
                if self.active == 0:
                    self._idle()

        return rt.clock.spawn(serve(), name=f"{self.namespace.binding}:{self.label}.{method}",
                              gate=self.gate)

    def _idle(self) -> None:
        after = self.namespace.evict_after
        if after is not None:
            self._evict_timer = self.namespace.runtime.clock.call_later(after, self.evict)

    def evict(self) -> None:
        """Drop the instance (memory); storage and the alarm stay. (An eviction storm calls it
        too: the idle timer it makes moot is cancelled, or it would evict a later instance.)"""
        if self._evict_timer is not None:
            self.namespace.runtime.clock.cancel(self._evict_timer)
            self._evict_timer = None
        if self.instance is not None and self.active == 0:
            self.flush_persisted()
            self.instance = None
            self.evictions += 1

    # -- alarms ----------------------------------------------------------------------------
    def _schedule_alarm(self) -> None:
        clock = self.namespace.runtime.clock
        if self._alarm_timer is not None:
            clock.cancel(self._alarm_timer)
            self._alarm_timer = None
        when = self.storage.alarm
        if when is not None:
            self._alarm_retries = 0
            self._alarm_timer = clock.call_at(max(when, clock.now), self._fire_alarm)

    def _fire_alarm(self) -> None:
        self._alarm_timer = None
        # getAlarm() is None while the handler runs (unless it sets one); the time comes back
        # if it fails (ActorSqlite::armAlarmHandler / cancelDeferredAlarmDeletion)
        if self.storage.alarm is not None:
            self._alarm_due = self.storage.alarm
        self.storage.alarm = None
        retries = self._alarm_retries
        info = {"retry_count": retries, "is_retry": retries > 0}
        if not hasattr(self.namespace.cls, "alarm"):
            raise HandlerError(f"{self.namespace.class_name} set an alarm but has no alarm() method")
        done = self.call("alarm", (info,), {})
        done.add_done_callback(self._alarm_done)

    def _alarm_done(self, future: Future) -> None:
        if future.error is None or self._alarm_retries >= ALARM_MAX_RETRIES:
            self._alarm_retries = 0     # done (or given up): the alarm stays deleted
            return
        rt = self.namespace.runtime
        clock = rt.clock
        jitter = rt.semantics.alarm_retry_jitter
        delay = ALARM_FIRST_BACKOFF * 2 ** self._alarm_retries
        if jitter:
            delay *= 1 + jitter * rt.random_bits(32) / 2**32
        self._alarm_retries += 1
        if self.storage.alarm is None:  # the failed handler did not set a new alarm
            self.storage.alarm = self._alarm_due
            self._alarm_timer = clock.call_later(delay, self._fire_alarm)


class ActorStub:
    """``env.NS.get(id)``: call RPC methods with ``await stub.method(...)``, or ``fetch``."""

    __slots__ = ("_object",)

    def __init__(self, obj: ActorObject) -> None:
        object.__setattr__(self, "_object", obj)

    @property
    def id(self) -> ActorId:
        return self._object.id

    def __getattr__(self, method: str):
        obj = self._object
        ns = obj.namespace
        if method.startswith("_") or not callable(getattr(ns.cls, method, None)) or method in RESERVED:
            raise HandlerError(f"{ns.binding} ({ns.class_name}) has no RPC method {method!r}; "
                               f"methods: {', '.join(ns.methods) or '(none)'}")

        def rpc(*args: Any, **kwargs: Any) -> Future:
            return obj.call(method, args, kwargs)

        rpc.__name__ = method
        return rpc

    def fetch(self, request: Any) -> Future:
        ns = self._object.namespace
        if not callable(getattr(ns.cls, "fetch", None)):
            raise HandlerError(f"{ns.binding} ({ns.class_name}) has no fetch() handler")
        return self._object.call("fetch", (request,), {})

    def __repr__(self) -> str:
        return f"<ActorStub {self._object.namespace.binding} {self._object.label}>"


RESERVED = {"fetch", "alarm", "id", "name", "ctx", "env"}


class ActorNamespace:
    """A Durable Object namespace binding (``env.WORKFLOW_ORCHESTRATOR_ACTOR``)."""

    def __init__(self, runtime: Runtime, binding: str, cls: type, sqlite: bool,
                 evict_after: float | None, script_name: str | None = None) -> None:
        self.runtime = runtime
        self.binding = binding
        self.cls = cls
        self.class_name = cls.__name__
        self.sqlite = sqlite
        self.declared_sqlite: bool | None = None   # as given to rt.actor (None = from migrations)
        self.evict_after = evict_after
        self.script_name = script_name
        self.objects: dict[ActorId, ActorObject] = {}
        self.methods = sorted(
            name for name, member in inspect.getmembers(cls, callable)
            if not name.startswith("_") and name not in RESERVED)
        self._key = hashlib.sha256(f"{binding}:{cls.__qualname__}".encode()).hexdigest()[:16]
        self._named: dict[str, ActorId] = {}

    def id_from_name(self, name: str) -> ActorId:
        """The same name always gives the same id (in this namespace)."""
        known = self._named.get(name) if isinstance(name, str) else None
        if known is not None:
            return known
        if not isinstance(name, str):
            raise HandlerError(f"{self.binding}.id_from_name: name={name!r} is not allowed; allowed: a str")
        digest = hashlib.sha256(f"{self._key}:{name}".encode()).hexdigest()
        actor_id = self._named[name] = ActorId(digest, self.binding, name)
        return actor_id

    def new_unique_id(self) -> ActorId:
        return ActorId(f"{self.runtime.random_bits(256):064x}", self.binding)

    def id_from_string(self, hex_id: str) -> ActorId:
        """Parse an id made by ``str(id)``; it must be 64 lowercase hex characters."""
        if not isinstance(hex_id, str) or not HEX_ID.fullmatch(hex_id):
            raise HandlerError(f"{self.binding}.id_from_string: {hex_id!r:.80} is not a Durable Object "
                               "id; allowed: 64 lowercase hex characters, as made by str(id)")
        for existing in self.objects:
            if existing.hex == hex_id:
                return existing
        return ActorId(hex_id, self.binding)

    def get(self, actor_id: ActorId) -> ActorStub:
        if not isinstance(actor_id, ActorId):
            raise HandlerError(f"{self.binding}.get: {actor_id!r:.60} is not an id; make one with "
                               f"id_from_name(), new_unique_id() or id_from_string()")
        if actor_id.namespace != self.binding:
            raise HandlerError(f"{self.binding}.get: id belongs to namespace {actor_id.namespace!r}")
        return ActorStub(self._object(actor_id))

    def get_by_name(self, name: str) -> ActorStub:
        """Shorthand for ``get(id_from_name(name))``."""
        return self.get(self.id_from_name(name))

    def object_named(self, name: str) -> ActorObject:
        """The object ``get_by_name(name)`` talks to (made now if it is new)."""
        return self._object(self.id_from_name(name))

    def _object(self, actor_id: ActorId) -> ActorObject:
        obj = self.objects.get(actor_id)
        if obj is None:
            obj = self.objects[actor_id] = ActorObject(self, actor_id)
        return obj

    def load(self) -> tuple[int, int]:
        """(requests waiting at the objects' gates, objects serving one) now."""
        objects = self.objects.values()
        return (sum(len(obj.gate.waiting) for obj in objects),
                sum(1 for obj in objects if obj.gate.holder is not None))

    def __repr__(self) -> str:
        kind = "sqlite" if self.sqlite else "kv"
        return f"<ActorNamespace {self.binding} class={self.class_name} {kind} objects={len(self.objects)}>"
