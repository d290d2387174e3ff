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
  handler had called ``retry()``). ``errors`` and ``rate_limit`` of an actor or store: the
  consumers whose messages reach it (given by the simulator) fail those messages.
* ``slowdown``: a spec consumer's batch time, a spec actor's service time or a store's
  latency times ``factor`` inside a window.
* ``eviction``: every instance of the actor class loses its memory (storage stays).

Random draws are counter-based (seed, fault, ledger row, attempt): outside the windows
nothing is drawn, so a run without faults, or before the first window, is unchanged.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from .ledger import splitmix64
from .queues import BatchResult, Queue

if TYPE_CHECKING:
    from .runtime import Runtime

__all__ = ["FaultPlan", "FaultState", "ConsumerFaults", "FaultedConsumer"]

_MASK = (1 << 64) - 1


class FaultState:
    """One fault (a :class:`cdpkit.model.faults.Fault`, which this layer does not import)
    while a run applies it: its windows and what it has done (counters)."""

    __slots__ = ("fault", "index", "starts", "ends", "salt", "q", "poison", "second", "used",
                 "injected", "rejected", "throws", "purged", "evicted")

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

    def active(self, t: float) -> bool:
        i = bisect_right(self.starts, t) - 1
        return i >= 0 and t < self.ends[i]

    def fails(self, ledger: Any, row: int) -> bool:
        """Whether this attempt at ``row`` fails (counter-based: seed, fault, message, attempt)."""
        if self.poison and _uniform(self.salt ^ 0x5EED, ledger.same_as.get(row, row)) < self.poison:
            return True
        return bool(self.q) and _uniform(self.salt, (row << 8) ^ ledger.failed[row]) < self.q

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
    message fails with ``p`` and is retried, as if the handler had called ``retry()``."""

    def __init__(self, inner: Any, runtime: Runtime, throws: list[FaultState],
                 errors: list[FaultState]) -> None:
        self.inner, self.runtime, self.throws, self.errors = inner, runtime, throws, errors

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
            elif f.kind == "slowdown" and f.node in consumers and not _hooked(rt, consumers[f.node]):
                raise ConfigError(f"{f.label}: slowdown of a handler-code consumer is not modelled; "
                                  "allowed: a spec consumer, actor or store (slow the handler's own "
                                  "calls, e.g. its KV/D1 store, instead)")
        for node, queue_name in consumers.items():
            throws = [s for s in self.of(node, "outage") if s.fault.mode == "throw"]
            errors = [] if _hooked(rt, queue_name) else self.of(node, "errors")
            if throws or errors:
                queue = rt.queue_named(queue_name)
                queue.consumer = FaultedConsumer(queue.consumer, rt, throws, errors)

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
