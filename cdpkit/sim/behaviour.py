"""Behaviour generated from specs, plugged into the *same* runtime as user handlers.

* :class:`SpecConsumer` is a queue consumer (the broker calls ``start`` for each batch,
  exactly as for a handler): it spends the batch's service time, decides per message
  whether the attempt fails (retry with the spec's policy) and, for the rest, publishes,
  routes or calls an actor. One scheduled event per batch, no coroutine per message.
* :func:`actor_class` makes a Durable Object class from an :class:`ActorSpec`; it runs
  through the runtime's per-object gate like any hand-written actor.

Spec messages carry a small tuple body ``(type, size, origin_time, origin_id)`` so that
results can report end-to-end latency from the first send to the last step.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from ..runtime.actors import Actor, ActorNamespace
from ..runtime.clock import resolve_later
from ..runtime.queues import BatchResult, Queue, QueuedMessage

if TYPE_CHECKING:
    from ..model.pipeline import ActorSpec, ConsumerSpec
    from ..runtime.runtime import Runtime

# body = (type, size, origin_time, origin_id)
TYPE, SIZE, ORIGIN_TIME, ORIGIN_ID = range(4)


def send_spec_message(runtime: Runtime, queue: Queue, body: tuple, delay: float = 0.0) -> None:
    """Enqueue a spec message (no serialisation: the body is an immutable tuple)."""
    now = runtime.clock.now
    record = QueuedMessage(runtime.new_message_id(), queue.name, "raw", body, body[SIZE], now, now)
    if body[SIZE] > runtime.semantics.max_message_bytes:
        runtime.ledger.append(record)  # the producer's send() throws: counted, never enqueued
        runtime.finish(record, "dropped", f"rejected: {body[SIZE]} bytes is over the "
                                          f"{runtime.semantics.max_message_bytes}-byte message limit")
        return
    queue.enqueue(record, delay)


class KeyPicker:
    """Which instance (by name) a message goes to: ``instances`` keys, Zipf ``skew``."""

    def __init__(self, prefix: str, instances: int, skew: float, rng: np.random.Generator) -> None:
        self.prefix = prefix
        weights = 1.0 / np.arange(1, instances + 1) ** skew
        self.cumulative = np.cumsum(weights / weights.sum())
        self.rng = rng
        self.names = [f"{prefix}-{k}" for k in range(instances)]

    def pick(self) -> str:
        index = int(np.searchsorted(self.cumulative, self.rng.random(), side="right"))
        return self.names[min(index, len(self.names) - 1)]


class SpecConsumer:
    """A consumer whose behaviour is a :class:`ConsumerSpec`."""

    def __init__(self, runtime: Runtime, spec: ConsumerSpec, rng: np.random.Generator,
                 callers: dict[str, Callable[[tuple], Any]], type_names: list[str]) -> None:
        self.runtime = runtime
        self.spec = spec
        self.rng = rng
        self.callers = callers          # actor class -> function(body) -> Future
        self.type_names = type_names
        self.cpu_seconds = 0.0

    def _poison(self, record: QueuedMessage) -> bool:
        # a stable per-message draw from its (seeded, random) id
        return self.spec.permanent > 0 and int(record.id[:8], 16) / 16**8 < self.spec.permanent

    def start(self, queue: Queue, batch_id: int, records: list[QueuedMessage], metadata: dict,
              done: Callable[[bool, BatchResult], None]) -> None:
        spec, rng, rt = self.spec, self.rng, self.runtime
        n = len(records)
        per = spec.per_message
        cpu = spec.base.sample(rng) + (per.a * n if per.kind == "const" else float(per.sample(rng, n).sum()))
        self.cpu_seconds += cpu
        result = BatchResult()
        acked = []
        for record in records:
            if self._poison(record) or (spec.failure and rng.random() < spec.failure):
                delay = spec.retry.delay(record.failed_attempts + 1)
                if spec.retry.mode == "retry_all":
                    result.retry_all = True
                    result.retry_all_delay = delay
                else:
                    result.retries[record.id] = delay
            else:
                acked.append(record)
        if result.retry_all:
            acked = []

        def after_cpu() -> None:
            self._downstream(acked, lambda: done(True, result))

        rt.clock.call_later(cpu, after_cpu)

    def _downstream(self, acked: list[QueuedMessage], finish: Callable[[], None]) -> None:
        """Publish and route now; call the actor for each message in turn, then finish."""
        spec, rt = self.spec, self.runtime
        calls: list[tuple[Callable, tuple]] = []
        for record in acked:
            body = record.payload
            target = spec.routes.get(self.type_names[body[TYPE]]) if spec.routes else None
            if target is not None:            # Pattern 2: this type goes to its own target
                if target in rt.queues:
                    send_spec_message(rt, rt.queues[target], body)
                else:
                    calls.append((self.callers[target], body))
                continue
            for queue in spec.publish:        # otherwise: publish and/or call the default actor
                send_spec_message(rt, rt.queues[queue], body)
            for store in spec.writes:
                calls.append((self.callers[store], body))
            if spec.calls:
                calls.append((self.callers[spec.calls], body))
        if not calls:
            finish()
            return
        sequence = iter(calls)

        def next_call(_future: Any = None) -> None:
            step = next(sequence, None)
            if step is None:
                finish()
            else:
                step[0](step[1]).add_done_callback(next_call)

        next_call()


def actor_class(name: str, spec: ActorSpec, runtime: Runtime, rng: np.random.Generator,
                callers: dict[str, Callable[[tuple], Any]]) -> type:
    """A Durable Object class that does what ``spec`` says, one call at a time per object."""
    service = spec.service

    async def handle(self, body: tuple) -> None:
        await self.ctx.work(service.sample(rng))
        for store in spec.writes:
            await callers[store](body)
        for child in spec.calls:
            await callers[child](body)
        for queue in spec.publish:
            send_spec_message(runtime, runtime.queues[queue], body)

    return type(name, (Actor,), {"handle": handle, "__doc__": f"Generated from the spec of {name}."})


class Sink:
    """An outside endpoint (webhook, analytics, e-mail): counts calls; each takes its latency."""

    def __init__(self, runtime: Runtime, name: str) -> None:
        self.runtime, self.name, self.calls = runtime, name, 0

    def call(self, latency: float):
        self.calls += 1
        return resolve_later(self.runtime.clock, latency)


def store_writer(runtime: Runtime, name: str, spec, rng: np.random.Generator) -> Callable[[tuple], Any]:
    """One write per message to a KV namespace, D1 database or sink, taking its latency."""
    if spec.kind == "sink":
        sink = runtime.sinks[name] = Sink(runtime, name)

        def write(body: tuple):
            return sink.call(spec.latency.sample(rng))
    elif spec.kind == "kv":
        kv = runtime.kv(name)

        def write(body: tuple):
            kv.latency = spec.latency.sample(rng)
            return kv.put(f"message:{body[ORIGIN_ID]}", "1")
    else:
        db = runtime.d1(name)
        db.exec("CREATE TABLE writes (origin INTEGER, type INTEGER)")
        insert = db.prepare("INSERT INTO writes VALUES (?, ?)")

        def write(body: tuple):
            db.latency = spec.latency.sample(rng)
            return insert.bind(body[ORIGIN_ID], body[TYPE]).run()
    return write


def caller_for(namespace: ActorNamespace, picker: KeyPicker) -> Callable[[tuple], Any]:
    """A function that sends one body to the instance its key maps to."""
    def call(body: tuple):
        return namespace.get_by_name(picker.pick()).handle(body)
    return call

