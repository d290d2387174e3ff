"""Applying a fault timeline (:class:`cdpkit.model.faults.Faults`) to a Runtime.

What each kind does here:

* ``outage`` ``throw``: the queue's consumer is wrapped (:class:`FaultedConsumer`); a batch
  cut inside a window fails at once, as a handler that throws (every message retried, then
  dead-lettered or dropped by the queue's own rules); ``pause``, ``pause`` and ``dlq_down``:
  :meth:`Queue.pause_delivery` at each window's start, :meth:`Queue.resume_delivery` at
  its end; ``purge``: :meth:`Queue.purge` at each instant.
* ``errors`` of a consumer: each attempt at a message inside a window fails with ``p``
  (a spec consumer through its hook, :class:`ConsumerFaults`, so the failure takes the
  spec's retry policy; handler code through the wrapper: the message is retried as if the
  handler had called ``retry()``). ``errors`` and ``rate_limit`` of an actor or store: in
  ``cdp.simulate``, the spec consumers whose messages reach it (given by the simulator) fail
  those messages; in handler code (:meth:`FaultPlan.install_calls`, from
  ``rt.apply_faults``) the call itself raises a :class:`FaultError` where the code awaits it
  (an actor stub's RPC or ``fetch``; a KV get/put/delete/list; a D1 statement, ``batch`` or
  ``exec``; a sink's ``call``), so the handler fails as on the platform and its messages are
  retried by the queue's rules (or by the handler's own ``retry()``, if it catches it).
* ``slowdown``: a spec consumer's batch time, a spec actor's service time or a store's
  latency times ``factor`` inside a window; a handler-code consumer's invocation that starts
  inside a window is stretched (see :class:`FaultedConsumer`).
* ``eviction``: every instance of the actor class loses its memory (storage stays).

Random draws are counter-based (seed, fault, ledger row, attempt): outside the windows
nothing is drawn, so a run without faults, or before the first window, is unchanged. A
handler-code call to an actor or store does not say which message it serves, so its draw
is keyed by (seed, fault, the fault's call number inside its windows) instead: the same
seed and code give the same failures, and each call fails with ``p``, but not the very
messages a spec model of the same code fails (the spec draws per message and attempt).
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from .actors import ActorStub
from .clock import Future
from .d1 import D1Database
from .env import IoFuture, Sink, draw_latency, io_later
from .kv import KVNamespace
from .ledger import splitmix64
from .queues import BatchResult, Queue

if TYPE_CHECKING:
    from .runtime import Runtime

__all__ = ["FaultPlan", "FaultState", "ConsumerFaults", "FaultedConsumer", "FaultError"]

_MASK = (1 << 64) - 1


class FaultState:
    """One fault (a :class:`cdpkit.model.faults.Fault`, which this layer does not import)
    while a run applies it: its windows and what it has done (counters)."""

    __slots__ = ("fault", "index", "starts", "ends", "salt", "q", "poison", "second", "used",
                 "injected", "rejected", "throws", "purged", "evicted", "calls", "slowed", "added_cpu")

    def __init__(self, fault: Any, index: int, seed: int) -> None:
        self.fault, self.index = fault, index
        self.starts = [s for s, _ in fault.windows]
        self.ends = [e for _, e in fault.windows]
        self.salt = splitmix64((seed << 20) ^ (index + 1) ^ 0xFA017)
        p, share = fault.p, fault.permanent
        self.poison = p * share           # fails every attempt inside the window
        self.q = 0.0 if self.poison >= 1 else p * (1 - share) / (1 - self.poison)
        self.second, self.used = -1, 0    # the rate limit's current second and calls accepted in it
        self.injected = self.rejected = self.throws = self.purged = self.evicted = 0
        self.calls = 0          # handler-code calls drawn for inside the windows (errors)
        self.slowed = 0         # handler-code invocations stretched (slowdown)
        self.added_cpu: dict[int, float] = {}   # window index -> consumer CPU seconds a slowdown added

    def window(self, t: float) -> int:
        """The index of the window that holds ``t`` (-1 before the first)."""
        return bisect_right(self.starts, t) - 1

    def add_cpu(self, t: float, seconds: float) -> None:
        """Count CPU seconds this slowdown added to a batch started at ``t`` (for the bill)."""
        i = self.window(t)
        self.added_cpu[i] = self.added_cpu.get(i, 0.0) + seconds

    def active(self, t: float) -> bool:
        i = bisect_right(self.starts, t) - 1
        return i >= 0 and t < self.ends[i]

    def fails(self, ledger: Any, row: int) -> bool:
        """Whether this attempt at ``row`` fails (counter-based: seed, fault, message, attempt)."""
        if self.poison and _uniform(self.salt ^ 0x5EED, ledger.same_as.get(row, row)) < self.poison:
            return True
        return bool(self.q) and _uniform(self.salt, (row << 8) ^ int(ledger.failed[row])) < self.q

    def take(self, now: float) -> bool:
        """A call now under the rate limit: accepted (True) or refused, a 429 (False)."""
        second = math.floor(now)
        if second != self.second:
            self.second, self.used = second, 0
        if self.used < self.fault.per_second:
            self.used += 1
            return True
        self.rejected += 1
        return False

    def refuses(self, now: float) -> bool:
        """Whether a handler-code call to this fault's actor or store, made now, fails:
        ``rate_limit``: past ``per_second`` this second; ``errors``: with ``p``, a draw keyed
        by the call's number inside the windows (the call does not name its message)."""
        if not self.active(now):
            return False
        if self.fault.kind == "rate_limit":
            refused = not self.take(now)
        else:
            self.calls += 1
            refused = _uniform(self.salt ^ 0xCA11, self.calls) < self.fault.p
        self.injected += refused
        return refused


class FaultError(RuntimeError):
    """What a fault makes an actor or store call raise in handler code: the platform's
    error text (``status`` 500 for ``errors``, 429 for ``rate_limit``), ending with the
    fault that injected it."""

    def __init__(self, message: str, status: int, fault: str) -> None:
        super().__init__(f"{message} [injected by {fault}]")
        self.status, self.fault = status, fault
        self.retryable = True      # transient: the docs suggest retrying with backoff


def _uniform(salt: int, key: int) -> float:
    return splitmix64((splitmix64(key & _MASK) ^ salt) & _MASK) / 2.0**64


class ConsumerFaults:
    """A spec consumer's hook (``SpecConsumer.faults``): inside a window, more of a batch's
    messages fail (its own ``errors``; the ``errors`` and ``rate_limit`` of actors and stores
    a message reaches, by its type) and the batch takes longer (``slowdown``)."""

    def __init__(self, runtime: Runtime, own: list[FaultState], reach: dict[int | None, list[FaultState]],
                 type_of: Callable[[int], int]) -> None:
        self.runtime = runtime
        self.errors = [s for s in own if s.fault.kind == "errors"]
        self.slow = [s for s in own if s.fault.kind == "slowdown"]
        self.reach = reach                 # message type code (None: any other) -> downstream faults
        self.type_of = type_of
        self.states = [*own, *(s for states in reach.values() for s in states)]

    def apply(self, rows: Sequence[int], failing: list[int], cpu: float) -> tuple[list[int], float]:
        """The batch's failing offsets and its service time, with the faults active now."""
        now = self.runtime.clock.now
        if not any(s.active(now) for s in self.states):
            return failing, cpu
        for s in self.slow:
            if s.active(now):
                s.add_cpu(now, cpu * (s.fault.factor - 1))
                cpu *= s.fault.factor
        ledger, reach, default = self.runtime.ledger, self.reach, self.reach.get(None, ())
        errors = [s for s in self.errors if s.active(now)]
        known = set(failing)
        for i, row in enumerate(rows):
            if i in known:
                continue
            failed = None
            for s in errors:
                if s.fails(ledger, row):
                    failed = s
                    break
            if failed is None and reach:
                for s in reach.get(self.type_of(row), default):     # downstream, in call order
                    if not s.active(now):
                        continue
                    if s.fault.kind == "rate_limit" and not s.take(now):
                        failed = s
                        break
                    if s.fault.kind == "errors" and s.fails(ledger, row):
                        failed = s
                        break
            if failed is not None:
                failed.injected += 1
                known.add(i)
        return sorted(known), cpu


class FaultedConsumer:
    """A queue's consumer under faults: inside an ``outage`` (``throw``) window a batch fails
    at once, as a handler that throws; inside an ``errors`` window (handler code) each
    message fails with ``p`` and is retried, as if the handler had called ``retry()``.

    Inside a ``slowdown`` window (handler code), an invocation that *starts* in the window
    takes ``factor`` times as long. ASSUMPTION (the model): the handler runs as it would,
    and its end, as the queue sees it, is delayed by ``(factor - 1) * elapsed`` (its virtual
    run time from start to return), as if every step it took, CPU and I/O alike, were
    ``factor`` times slower; its CPU seconds (for cost) are multiplied by ``factor`` too,
    as a spec consumer's batch time is. What the handler did (its calls, sends, acks) keeps
    its own times; only the invocation's end, and so the queue's concurrency slot and the
    messages' finish, move. The CPU-time limit is checked on the unstretched CPU.
    """

    def __init__(self, inner: Any, runtime: Runtime, throws: list[FaultState],
                 errors: list[FaultState], slow: list[FaultState] | None = None) -> None:
        self.inner, self.runtime, self.throws, self.errors = inner, runtime, throws, errors
        self.slow = slow or []
        self.cpu_seen = getattr(inner, "cpu_seconds", 0.0)   # the consumer's CPU after the last batch

    def __getattr__(self, name: str) -> Any:      # cpu_seconds, spec, ... of the real consumer
        return getattr(self.inner, name)

    def start(self, queue: Queue, batch_id: int, rows: list[int],
              done: Callable[[bool, BatchResult], None]) -> None:
        rt = self.runtime
        now = rt.clock.now
        for s in self.throws:
            if s.active(now):
                s.throws += 1
                rt.clock.call_later(0.0, done, False, BatchResult())   # returns, failed, at once
                return
        if self.slow:
            done = self._stretched(done, now)
        errors = [s for s in self.errors if s.active(now)]
        if not errors:
            self.inner.start(queue, batch_id, rows, done)
            return
        failing = []
        for row in rows:    # decided as the batch starts, as a spec consumer decides
            for s in errors:
                if s.fails(rt.ledger, row):
                    s.injected += 1
                    failing.append(row)
                    break

        def finish(ok: bool, result: BatchResult) -> None:
            for row in failing:
                result.retries.setdefault(row, None)       # the queue's retry_delay
                result.explicit_acks.discard(row)
            done(ok, result)

        self.inner.start(queue, batch_id, rows, finish)

    def _stretched(self, done: Callable[[bool, BatchResult], None], started: float
                   ) -> Callable[[bool, BatchResult], None]:
        """``done``, called ``(factor - 1) * elapsed`` later for an invocation started in a
        slowdown window (every batch passes here, to follow the consumer's CPU total)."""
        active = [s for s in self.slow if s.active(started)]
        factor = math.prod(s.fault.factor for s in active)
        clock = self.runtime.clock

        def finish(ok: bool, result: BatchResult) -> None:
            cpu = getattr(self.inner, "cpu_seconds", None)
            if cpu is not None:
                # a handler consumer adds its batch's CPU just before calling done: the rise
                # since the last batch's end is this batch's
                spent = cpu - self.cpu_seen
                extra = (factor - 1) * spent
                self.inner.cpu_seconds = self.cpu_seen = cpu + extra
                for s in active:         # each slowdown's own share (they multiply)
                    s.add_cpu(started, (s.fault.factor - 1) * spent)
            delay = (factor - 1) * (clock.now - started)
            if not active or delay <= 0:
                done(ok, result)
                return
            for s in active:
                s.slowed += 1
            clock.call_later(delay, done, ok, result)

        return finish


class FaultPlan:
    """A fault timeline applied to one runtime: ``states[i]`` is fault ``i``'s state."""

    def __init__(self, runtime: Runtime, faults: Any, seed: int = 0) -> None:
        self.runtime, self.faults = runtime, faults
        self.states = [FaultState(f, i, seed) for i, f in enumerate(faults)]

    def of(self, node: str, *kinds: str) -> list[FaultState]:
        return [s for s in self.states if s.fault.node == node and s.fault.kind in kinds]

    def install(self, consumers: dict[str, str], actors: dict[str, Any], stores: dict[str, Any]) -> None:
        """Schedule the queue operations and wrap what the faults change.

        ``consumers``: consumer node -> its queue; ``actors``: actor node -> its namespace
        (an :class:`~cdpkit.runtime.actors.ActorNamespace`) or a service-only pool (anything
        with ``service``); ``stores``: store node -> its KV namespace, D1 database or sink.
        A spec consumer (one with a ``faults`` hook) takes its ``errors`` and ``slowdown``
        through that hook (:class:`ConsumerFaults`), handler code through the wrapper.
        """
        rt = self.runtime
        for s in self.states:
            f = s.fault
            if f.kind in ("pause", "dlq_down") or (f.kind == "outage" and f.mode == "pause"):
                queue = rt.queue_named(consumers.get(f.node, f.node))
                for start, end in f.windows:
                    rt.clock.call_at(start, queue.pause_delivery)
                    rt.clock.call_at(end, queue.resume_delivery)
            elif f.kind == "purge":
                queue = rt.queue_named(f.node)
                for at, _ in f.windows:
                    rt.clock.call_at(at, self._purge, s, queue)
            elif f.kind == "eviction":
                for at, _ in f.windows:
                    rt.clock.call_at(at, self._evict, s, actors[f.node])
            elif f.kind == "slowdown" and f.node in stores:
                _slow_store(stores[f.node], s, rt)
            elif f.kind == "slowdown" and f.node in actors and hasattr(actors[f.node], "service"):
                pool = actors[f.node]
                pool.service = scaled(pool.service, [s], rt)
        for node, queue_name in consumers.items():
            throws = [s for s in self.of(node, "outage") if s.fault.mode == "throw"]
            hooked = _hooked(rt, queue_name)     # a spec consumer slows and fails through its hook
            errors = [] if hooked else self.of(node, "errors")
            slow = [] if hooked else self.of(node, "slowdown")
            if throws or errors or slow:
                queue = rt.queue_named(queue_name)
                queue.consumer = FaultedConsumer(queue.consumer, rt, throws, errors, slow)

    def install_calls(self, actors: dict[str, Any], stores: dict[str, Any]) -> None:
        """Make handler code's calls to faulted actors and stores fail (``errors``,
        ``rate_limit``): their namespaces and stores are wrapped in place, so every binding
        that reaches them (``env.X``, ``rt.sinks[...]``) sees it. For handler-code runs only
        (``rt.apply_faults``): ``cdp.simulate`` fails a spec consumer's messages instead
        (:class:`ConsumerFaults`) and does not call this.

        ``actors``: actor node -> :class:`~cdpkit.runtime.actors.ActorNamespace` (a binding
        and its class name may both name it); ``stores``: store node -> KV namespace, D1
        database or sink.
        """
        targets = {**actors, **stores}
        wrapped: set[int] = set()
        for node, target in targets.items():
            if id(target) in wrapped:        # a binding and its class name: one wrapper for both
                continue
            names = {n for n, t in targets.items() if t is target}
            states = [s for s in self.states if s.fault.node in names and s.fault.kind in ("errors", "rate_limit")]
            if not states:
                continue
            wrapped.add(id(target))
            calls = CallFaults(self.runtime, states)
            if node in actors:
                _fault_actor(target, calls)
            elif isinstance(target, KVNamespace):
                _fault_kv(target, calls)
            elif isinstance(target, D1Database):
                _fault_d1(target, calls)
            elif isinstance(target, Sink):
                _fault_sink(target, calls)
            else:
                raise ConfigError(f"{states[0].fault.label}: node={node!r} is not allowed ({type(target).__name__} "
                                  "calls cannot fail in handler code); allowed: an actor, KV namespace, D1 "
                                  "database or sink")

    def _purge(self, state: FaultState, queue: Queue) -> None:
        state.purged += queue.purge()

    def _evict(self, state: FaultState, target: Any) -> None:
        objects = getattr(target, "objects", None)
        if objects is None:
            return      # a service-only spec actor keeps no memory: nothing to lose
        for obj in objects.values():
            if obj.instance is not None:
                obj.active, busy = 0, obj.active     # a storm takes busy instances too
                obj.evict()
                obj.active = busy
                state.evicted += 1


class CallFaults:
    """The ``errors`` and ``rate_limit`` faults of one actor or store, for handler code:
    :meth:`refused` says whether a call made now fails, and with which fault."""

    def __init__(self, runtime: Runtime, states: list[FaultState]) -> None:
        self.clock, self.states = runtime.clock, states

    def refused(self) -> FaultState | None:
        now = self.clock.now
        for s in self.states:       # the fault listed first decides first
            if s.refuses(now):
                return s
        return None


# The platform's words for a failed call (status 500: errors; 429: rate_limit):
# - KV: workerd's "KV <OP> failed: <status> <reason>" (the text the put rate limit raises too).
# - D1: from the D1 docs' list of errors (d1/observability/debug-d1/): "D1_ERROR: Network
#   connection lost." (transient, retry) and "D1 DB is overloaded. Too many requests queued."
# - Durable Object: an infrastructure error reaches the caller as an Error (durable-objects/
#   best-practices/error-handling/: "transient internal errors", "sending too many requests");
#   the overload text is the platform's (durable-objects/observability/troubleshooting/).
# - A sink (an outside API behind fetch): the caller's own check of the response's status.
_KV_OPS = {"get": "GET", "get_with_metadata": "GET", "put": "PUT", "delete": "DELETE", "list": "LIST"}


def _fault_kv(kv: KVNamespace, calls: CallFaults) -> None:
    for op, verb in _KV_OPS.items():
        method = getattr(kv, op)

        def faulted(*args: Any, _method: Callable = method, _op: str = op, _verb: str = verb,
                    **kwargs: Any) -> Future:
            s = calls.refused()
            if s is None:
                return _method(*args, **kwargs)
            status = "429 Too Many Requests" if s.fault.kind == "rate_limit" else "500 Internal Server Error"
            error = FaultError(f"KV {_verb} failed: {status} ({kv.binding}.{_op})", int(status[:3]), s.fault.label)
            return io_later(kv.runtime.clock, draw_latency(kv.latency), error=error)

        setattr(kv, op, faulted)      # this namespace only; the class keeps its methods


def _d1_error(db: D1Database, s: FaultState) -> FaultError:
    if s.fault.kind == "rate_limit":
        return FaultError(f"D1 DB is overloaded. Too many requests queued. ({db.binding})", 429, s.fault.label)
    return FaultError(f"D1_ERROR: Network connection lost. ({db.binding})", 500, s.fault.label)


def _fault_d1(db: D1Database, calls: CallFaults) -> None:
    """A D1 request (a statement's run/all/first/raw, a ``batch``, an ``exec``) fails before
    any statement runs, so nothing is written. Statements are built by the database's own
    class, so the failure is raised as the call is made (``await stmt.run()`` raises it at
    the same line of the handler, with no latency) rather than by its future."""
    execute, batch, exec_ = db._execute, db.batch, db.exec
    inside = [False]        # within one batch/exec request: its statements are not drawn again

    def one_request(call: Callable, *args: Any) -> Any:
        s = calls.refused()
        if s is not None:
            raise _d1_error(db, s)
        inside[0] = True
        try:
            return call(*args)
        finally:
            inside[0] = False

    def faulted_execute(query: str, params: tuple, error: str = "D1_ERROR") -> Any:
        if inside[0]:
            return execute(query, params, error)
        return one_request(execute, query, params, error)

    db._execute = faulted_execute
    db.batch = lambda statements: one_request(batch, statements)
    db.exec = lambda query: one_request(exec_, query)


def _fault_sink(sink: Sink, calls: CallFaults) -> None:
    call = sink.call

    def faulted(latency: float | None = None) -> IoFuture:
        s = calls.refused()
        if s is None:
            return call(latency)
        sink.calls += 1             # the request was made (and answered with an error)
        status = (429, "Too Many Requests") if s.fault.kind == "rate_limit" else (500, "Internal Server Error")
        error = FaultError(f"{sink.name} call failed: {status[0]} {status[1]}", status[0], s.fault.label)
        return io_later(sink.clock, draw_latency(sink.latency) if latency is None else latency, error=error)

    sink.call = faulted


class _FaultedStub(ActorStub):
    """A stub whose RPCs and ``fetch`` may fail (the namespace's faults): the request fails
    before it reaches the object, so the object runs nothing and records no call."""

    __slots__ = ("_calls",)

    def __init__(self, stub: ActorStub, calls: CallFaults) -> None:
        super().__init__(stub._object)
        object.__setattr__(self, "_calls", calls)

    def _refused(self, method: str) -> IoFuture | None:
        s = self._calls.refused()
        if s is None:
            return None
        obj = self._object
        ns = obj.namespace
        where = f"{ns.binding} ({ns.class_name}) {obj.label}.{method}"
        if s.fault.kind == "rate_limit":
            error = FaultError(f"Durable Object is overloaded. 429 Too Many Requests: over "
                               f"{s.fault.per_second:g} requests per second ({where})", 429, s.fault.label)
        else:
            error = FaultError(f"Internal error in Durable Object: a transient infrastructure error, "
                               f"retryable ({where})", 500, s.fault.label)
        return io_later(ns.runtime.clock, 0.0, error=error)

    def __getattr__(self, method: str) -> Any:
        rpc = super().__getattr__(method)      # a missing method is still the caller's bug

        def faulted(*args: Any, **kwargs: Any) -> Future:
            refused = self._refused(method)
            return rpc(*args, **kwargs) if refused is None else refused

        faulted.__name__ = method
        return faulted

    def fetch(self, request: Any) -> Future:
        refused = self._refused("fetch")
        return super().fetch(request) if refused is None else refused


def _fault_actor(namespace: Any, calls: CallFaults) -> None:
    """Stubs from this namespace (``get``, and ``get_by_name`` through it) may fail."""
    get = namespace.get
    namespace.get = lambda actor_id: _FaultedStub(get(actor_id), calls)


def _hooked(runtime: Runtime, queue: str) -> bool:
    """Whether the queue's consumer is a spec consumer, with its own fault hook."""
    return hasattr(runtime.queue_named(queue).consumer, "faults")


def scaled(draw: Callable[[], float], states: list[FaultState], runtime: Runtime) -> Callable[[], float]:
    """``draw`` times each active slowdown's factor (the draws themselves are unchanged)."""
    clock = runtime.clock

    def slowed() -> float:
        value = draw()
        for s in states:
            if s.active(clock.now):
                value *= s.fault.factor
        return value

    return slowed


def _slow_store(store: Any, state: FaultState, runtime: Runtime) -> None:
    latency = store.latency
    draw = latency if callable(latency) else (lambda: latency)
    store.latency = scaled(draw, [state], runtime)


def runtime_nodes(runtime: Runtime) -> tuple[dict[str, str], dict[str, str], dict[str, Any], dict[str, Any]]:
    """A handler-code runtime's fault targets: (node -> kind, consumer node -> queue,
    actor node -> namespace, store node -> store). Actors are named by binding or class."""
    kinds: dict[str, str] = {}
    consumers, actors, stores = {}, {}, {}
    for name, queue in runtime.queues.items():
        kinds[name] = "queue"
        if queue.consumer is not None:
            consumers[f"{name}.consumer"] = name
            kinds[f"{name}.consumer"] = "consumer"
    for binding, ns in runtime.namespaces.items():
        for name in (binding, ns.class_name):
            kinds[name], actors[name] = "actor", ns
    for name, store in [*runtime.kv_namespaces.items(), *runtime.databases.items(), *runtime.sinks.items()]:
        kinds[name], stores[name] = "store", store
    return kinds, consumers, actors, stores
