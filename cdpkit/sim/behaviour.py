"""Behaviour generated from specs, plugged into the *same* runtime as user handlers.

* :class:`SpecConsumer` is a queue consumer (the broker calls ``start`` for each batch,
  exactly as for a handler): it spends the batch's service time, decides per message
  whether the attempt fails (retry with the spec's policy) and, for the rest, publishes,
  routes or calls an actor. One scheduled event per batch, no coroutine per message.
* :class:`SpecActors` runs the instances of a spec actor class with the runtime's
  object-gate rule (one call computes at a time, in arrival order) as arithmetic.

Spec messages carry a small tuple body ``(type, size, origin_time, origin_id)`` so that
results can report end-to-end latency from the first send to the last step.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import ConfigError, HandlerError
from ..runtime.clock import Future, resolve_later
from ..runtime.queues import BatchResult, Queue
from ..runtime.trace import CallLog

if TYPE_CHECKING:
    from ..model.pipeline import ActorSpec, ConsumerSpec
    from ..runtime.runtime import Runtime

MAX_SEND_BATCH = 100   # messages per sendBatch


class SpecBodies:
    """What a spec message's body stands for. The body is the index of the workload
    arrival the message descends from (an int: no object per message); its type, size and
    origin time are looked up here. Handler code sees it as a dict (:meth:`view`).
    """

    __slots__ = ("types", "sizes", "times", "type_names")

    def __init__(self, arrivals: Any) -> None:
        self.types: list[int] = arrivals.types.tolist()
        self.sizes: list[int] = arrivals.sizes.tolist()
        self.times: np.ndarray = arrivals.times
        self.type_names: list[str] = arrivals.type_names

    def type_name(self, body: int) -> str:
        return self.type_names[self.types[body]]

    def view(self, body: int) -> dict:
        """The body as handler code and code actors get it."""
        return {"type": self.type_name(body), "size": self.sizes[body], "origin": body,
                "origin_time": float(self.times[body])}


def spec_records(runtime: Runtime, queue: Queue, bodies: list[int], sizes: np.ndarray,
                 sent: np.ndarray) -> Sequence[int]:
    """Ledger rows for spec messages arriving at ``sent`` (entered ahead; no serialisation:
    a body is its arrival's index: :class:`SpecBodies`).

    A body over the message size limit is what the producer's ``send()`` throws on: it is
    counted as sent and dropped, and never reaches the queue.
    """
    limit, ledger = runtime.semantics.max_message_bytes, runtime.ledger
    rows = ledger.add(queue.name, "raw", bodies, sizes, sent, sent)
    biggest = sizes.max() if len(bodies) else 0
    if biggest <= limit:
        return rows
    kept = []
    for row, size in zip(rows, sizes):
        if size > limit:
            ledger.finish(row, "dropped", ledger.sent[row],
                          f"rejected: {size} bytes is over the {limit}-byte message limit")
        else:
            kept.append(row)
    return kept


def send_spec_messages(runtime: Runtime, queue: Queue, bodies: list[int], spec_bodies: SpecBodies) -> None:
    """Send spec messages together (as one ``sendBatch``: they land together). A body sent
    on is one that arrived (its size was checked then: :func:`spec_records`)."""
    sent = [runtime.clock.now] * len(bodies)
    sizes = spec_bodies.sizes
    rows = runtime.ledger.add(queue.name, "raw", bodies, [sizes[body] for body in bodies], sent, sent)
    queue.enqueue(rows, queue.delivery_delay or 0)


class KeyPicker:
    """Which instance (by name) a message goes to: ``instances`` keys, Zipf ``skew``."""

    def __init__(self, prefix: str, instances: int, skew: float, rng: np.random.Generator) -> None:
        self.prefix = prefix
        weights = 1.0 / np.arange(1, instances + 1) ** skew
        self.cumulative = np.cumsum(weights / weights.sum())
        self.rng = rng
        self.names = [f"{prefix}-{k}" for k in range(instances)]

        self._picks: list[int] = []

    def pick_index(self) -> int:
        """The next key's instance index (drawn in chunks: one numpy call per 4096 picks)."""
        if not self._picks:
            drawn = np.searchsorted(self.cumulative, self.rng.random(4096), side="right")
            self._picks.extend(np.minimum(drawn, len(self.names) - 1)[::-1].tolist())
        return self._picks.pop()

    def index(self, name: str) -> int:
        try:
            return self.names.index(name)
        except ValueError:
            raise ConfigError(f"no instance {name!r}; instances: {self.names[0]} .. {self.names[-1]}") from None


class Trials:
    """Independent trials that succeed with probability ``p``, taken ``n`` at a time:
    ``hits(n)`` gives the offsets (0..n-1) of the successes among the next ``n``. The
    uniforms are drawn ``chunk`` at a time and only the successes' positions are kept.

    >>> trials = Trials(0.25, np.random.default_rng(1))
    >>> hits = [len(trials.hits(10)) for _ in range(10_000)]
    >>> bool(abs(sum(hits) / 100_000 - 0.25) < 0.01)
    True
    """

    __slots__ = ("p", "rng", "chunk", "drawn", "taken", "successes")

    def __init__(self, p: float, rng: np.random.Generator, chunk: int = 4096) -> None:
        self.p, self.rng, self.chunk = p, rng, chunk
        self.drawn = self.taken = 0        # uniforms drawn so far, trials taken so far
        self.successes: deque[int] = deque()

    def hits(self, n: int) -> list[int]:
        start, end = self.taken, self.taken + n
        while self.drawn < end:
            found = np.flatnonzero(self.rng.random(self.chunk) < self.p) + self.drawn
            self.successes.extend(found.tolist())
            self.drawn += self.chunk
        self.taken = end
        successes, out = self.successes, []
        while successes and successes[0] < end:
            out.append(successes.popleft() - start)
        return out


class SpecConsumer:
    """A consumer whose behaviour is a :class:`ConsumerSpec`."""

    def __init__(self, runtime: Runtime, spec: ConsumerSpec, rng: np.random.Generator,
                 callers: dict[str, Callable[[int], Any]], bodies: SpecBodies) -> None:
        self.runtime = runtime
        self.spec = spec
        self.rng = rng
        self.callers = callers          # actor/store -> function(body, then): calls then() when done
        self.bodies = bodies
        self.cpu_seconds = 0.0
        pool = getattr(callers.get(spec.calls), "__self__", None)    # actors exist before consumers
        self.simple_pool = pool if isinstance(pool, SpecActors) and pool.simple else None
        # An attempt fails with probability `failure`; a `permanent` share of those failures
        # are poison messages that fail every attempt, the rest fail independently with q.
        f, share = spec.failure, spec.permanent
        self.poison_share = f * share
        transient = 0.0 if f * share >= 1 else f * (1 - share) / (1 - f * share)
        self.transient = Trials(transient, rng) if transient else None

    def start(self, queue: Queue, batch_id: int, rows: list[int],
              done: Callable[[bool, BatchResult], None]) -> None:
        spec, rng, rt = self.spec, self.rng, self.runtime
        ledger = rt.ledger
        n = len(rows)
        per = spec.per_message
        cpu = spec.base.sample(rng) + (per.a * n if per.kind == "const" else float(per.sample(rng, n).sum()))
        self.cpu_seconds += cpu
        result = BatchResult()
        failing = self.transient.hits(n) if self.transient else []
        if self.poison_share:   # a stable per-message draw: poison fails every attempt
            share, uniform = self.poison_share, ledger.stable_uniform
            failing = sorted({*failing, *(i for i, row in enumerate(rows) if uniform(row) < share)})
        acked = rows
        if failing:
            for i in failing:
                delay = spec.retry.delay(ledger.failed[rows[i]] + 1)
                if spec.retry.mode == "retry_all":
                    result.retry_all = True
                    result.retry_all_delay = delay
                else:
                    result.retries[rows[i]] = delay
            retried = result.retries
            acked = [] if result.retry_all else [row for row in rows if row not in retried]

        def after_cpu() -> None:
            self._downstream(acked, lambda: done(True, result))

        rt.clock.call_later(cpu, after_cpu)

    def _send(self, sends: dict[str, list[int]]) -> None:
        for queue, bodies in sends.items():
            for start in range(0, len(bodies), MAX_SEND_BATCH):
                send_spec_messages(self.runtime, self.runtime.queues[queue], bodies[start:start + MAX_SEND_BATCH],
                                   self.bodies)

    def _default_steps(self, body: int, sends: dict[str, list[int]] | None,
                       calls: list[tuple[Callable, int]]) -> None:
        """Publish ``body`` (unless ``sends`` is None), write it to stores, call the actor."""
        spec = self.spec
        if sends is not None:
            for queue in spec.publish:
                sends.setdefault(queue, []).append(body)
        for store in spec.writes:
            calls.append((self.callers[store], body))
        if spec.calls:
            calls.append((self.callers[spec.calls], body))

    def _downstream(self, acked: list[int], finish: Callable[[], None]) -> None:
        """Publish and route now; call the actor for each message in turn, then finish."""
        spec, rt = self.spec, self.runtime
        calls: list[tuple[Callable, int]] = []
        sends: dict[str, list[int]] = {}
        payload = rt.ledger.payload
        if spec.routes:
            for row in acked:
                body = payload[row]
                target = spec.routes.get(self.bodies.type_name(body))
                if target is None:            # the default: publish, write, call
                    self._default_steps(body, sends, calls)
                elif target in rt.queues:     # Pattern 2: this type goes to its own target
                    sends.setdefault(target, []).append(body)
                else:
                    calls.append((self.callers[target], body))
        elif acked:                           # every message takes the default steps
            bodies = [payload[row] for row in acked]
            for queue in spec.publish:
                sends[queue] = bodies
            if spec.writes:
                for body in bodies:
                    self._default_steps(body, None, calls)
            elif spec.calls:
                if self.simple_pool is not None:   # calls that are just service time
                    self._send(sends)
                    self.simple_pool.call_each(len(bodies), finish)
                    return
                caller = self.callers[spec.calls]
                calls = [(caller, body) for body in bodies]
        self._send(sends)
        if not calls:
            finish()
            return
        remaining = iter(calls)

        def next_call() -> None:
            step = next(remaining, None)
            if step is None:
                finish()
            else:
                step[0](step[1], next_call)

        next_call()


class SpecActors:
    """The instances of a spec actor class, each a single-threaded object.

    The rule is the runtime's object gate, written as arithmetic: a call computes for its
    service time once every call that arrived earlier at the same instance has finished
    computing (FIFO); while it waits for a store or a child actor the instance serves other
    calls, and it continues in turn once the gate is free again. One scheduled event per
    step, no coroutine per call (``tests/test_model.py`` checks it against a hand-written
    :class:`~cdpkit.runtime.actors.Actor` through the real gate).
    """

    def __init__(self, runtime: Runtime, name: str, spec: ActorSpec, rng: np.random.Generator,
                 callers: dict[str, Callable[[int], Any]], bodies: SpecBodies) -> None:
        self.runtime, self.name, self.spec, self.bodies = runtime, name, spec, bodies
        self.binding = spec.binding
        self.picker = KeyPicker(name.lower(), spec.instances, spec.skew, rng)
        self.service = spec.service.sampler(rng)
        self.free_at = [0.0] * spec.instances
        self.starts: list[float] = []       # heap of start times not yet reached (queued calls)
        self.busy_seconds = 0.0
        self.callers = callers
        self.steps = [*spec.writes, *spec.calls]
        self.simple = not self.steps and not spec.publish   # a call is just its service time
        self.log = log = CallLog(spec.binding, spec.method, self.picker.names)
        runtime.recorder.call_logs.append(log)
        self._chains: list[tuple] = []      # heap of (time, seq, calls left, then) of call_each
        self._wakes: list[tuple] = []       # heap of the (time, seq) of its entries in the clock
        self._hot = (self.free_at, self.starts, self.service, self.picker.pick_index,   # for _issue
                     log.key.append, log.arrived.append, log.started.append, log.finished.append)

    def _issue(self, t: float, key: int | None = None) -> float:
        """The gate rule as arithmetic: a request arriving at an instance at ``t`` computes
        once the calls that arrived there before it have. Returns when it finishes."""
        free_at, starts, service, pick, keys, arrived, started, finished = self._hot
        k = pick() if key is None else key
        free = free_at[k]
        start = free if free > t else t
        seconds = service()
        self.busy_seconds += seconds
        free_at[k] = finish = start + seconds
        if start > t:
            heapq.heappush(starts, start)
        keys(k)
        arrived(t)
        started(start)
        finished(finish)
        return finish

    def call(self, body: int, then: Callable[[], Any], key: int | None = None) -> None:
        """A request from ``body``'s key to its instance; ``then()`` runs when it is done."""
        clock = self.runtime.clock
        finish = self._issue(clock.now, key)
        if self.simple:
            clock.call_at(finish, then)
        else:
            clock.call_at(finish, self._step, self.log.key[-1], body, len(self.log) - 1, then, 0)

    def call_each(self, count: int, then: Callable[[], Any]) -> None:
        """``count`` simple requests one after another (each when the previous is done),
        then ``then()``.

        Each step is an event at (time, sequence number) exactly as if it were in the
        clock's queue, but the pool keeps its chains in its own small heap with a single
        entry in the clock's: when that fires, the pool runs every step of its chains that
        comes before the clock's next event, in the same order the clock would have.
        """
        if not count:
            then()
            return
        clock = self.runtime.clock
        finish = self._issue(clock.now)
        if count == 1:
            clock.call_at(finish, then)
        else:
            heapq.heappush(self._chains, (finish, clock.next_seq(), count - 1, then))
            self._schedule_chains()

    def _run_chains(self) -> None:
        """Run, in clock order, every chain step due before the clock's next event."""
        clock, chains, issue, pop = self.runtime.clock, self._chains, self._issue, heapq.heappop
        pop(self._wakes)                     # the pool's earliest entry in the clock: this one
        bound = clock.head()
        while chains and chains[0] < bound:
            t, _, left, then = pop(chains)
            while True:
                clock.now = t
                t = issue(t)
                left -= 1
                if not left:
                    clock.call_at(t, then)
                    bound = clock.head()
                    break
                step = (t, clock.next_seq())
                if step < bound and (not chains or step < chains[0]):
                    continue                 # this chain's next step is also the next event
                heapq.heappush(chains, (*step, left, then))
                break
        self._schedule_chains()

    def _schedule_chains(self) -> None:
        """Make sure the pool has an entry in the clock at or before its earliest step.
        Entries are never cancelled (a cancelled one would still hold its (time, seq) in
        the clock's heap); one that finds nothing due does nothing."""
        chains, wakes = self._chains, self._wakes
        if chains:
            head = chains[0][:2]
            if not wakes or head < wakes[0]:
                heapq.heappush(wakes, head)
                self.runtime.clock.call_at_seq(head[0], head[1], self._run_chains)

    def _step(self, k: int, body: int, row: int, then: Callable[[], Any], i: int,
              entered: bool = False) -> None:
        """Continue call ``row`` at its ``i``-th store write / child call, or finish it."""
        clock = self.runtime.clock
        if i and not entered and self.free_at[k] > clock.now:   # re-enter behind earlier calls
            clock.call_at(self.free_at[k], self._step, k, body, row, then, i, True)
            return
        if i < len(self.steps):
            self.callers[self.steps[i]](body, lambda: self._step(k, body, row, then, i + 1))
            return
        rt = self.runtime
        for queue in self.spec.publish:
            send_spec_messages(rt, rt.queues[queue], [body], self.bodies)
        self.log.finished[row] = clock.now
        then()

    def load(self, now: float) -> tuple[int, int]:
        """(calls queued, instances computing) at ``now``."""
        starts = self.starts
        while starts and starts[0] <= now:
            heapq.heappop(starts)
        return len(starts), sum(1 for f in self.free_at if f > now)

    def get_by_name(self, name: str) -> _SpecStub:
        """A stub for handler code: ``env.BINDING.get_by_name(key).handle(body)``."""
        return _SpecStub(self, self.picker.index(name))


def code_actor_caller(namespace: Any, picker: KeyPicker, bodies: SpecBodies
                      ) -> Callable[[int, Callable[[], Any]], None]:
    """Calls into a user-code actor class (``add_actor(..., cls=...)``) through the runtime's
    namespace: ``handle(body)`` on the instance the body's key maps to, then ``then()``."""
    names = picker.names

    def call(body: int, then: Callable[[], Any]) -> None:
        stub = namespace.get_by_name(names[picker.pick_index()])
        stub.handle(bodies.view(body)).add_done_callback(lambda _f: then())

    return call


class _SpecStub:
    __slots__ = ("pool", "key")

    def __init__(self, pool: SpecActors, key: int) -> None:
        self.pool, self.key = pool, key

    def handle(self, body: Any) -> Future:
        if isinstance(body, dict) and "origin" in body:   # a spec message's body, as handlers see it
            body = body["origin"]
        elif not self.pool.simple and not isinstance(body, int):
            # its store writes and publishes need what a workload message stands for
            raise HandlerError(f"{self.pool.binding}.handle: body={body!r:.60} is not allowed; allowed: "
                               f"a workload message's body (m.body) or its 'origin', because "
                               f"{self.pool.name} writes to stores, calls actors or publishes")
        future = Future()
        self.pool.call(body, lambda: future.set_result(None), self.key)
        return future


class Sink:
    """An outside endpoint (webhook, analytics, e-mail): counts calls; each takes its latency."""

    def __init__(self, runtime: Runtime, name: str) -> None:
        self.runtime, self.name, self.calls = runtime, name, 0

    def call(self, latency: float):
        self.calls += 1
        return resolve_later(self.runtime.clock, latency)


def store_writer(runtime: Runtime, name: str, spec, rng: np.random.Generator, bodies: SpecBodies
                 ) -> Callable[[int, Callable[[], Any]], None]:
    """One write per message to a KV namespace, D1 database or sink, taking its latency;
    the returned ``write(body, then)`` runs ``then()`` when the write is done."""
    if spec.kind == "sink":
        sink = runtime.sinks[name] = Sink(runtime, name)

        def write(body: int):
            return sink.call(spec.latency.sample(rng))
    elif spec.kind == "analytics":   # writeDataPoint is fire-and-forget: no latency
        dataset = runtime.analytics(name)

        def write(body: int):
            dataset.write_data_point({"blobs": [bodies.type_name(body)], "doubles": [float(bodies.times[body])],
                                      "indexes": [str(body)]})
            return resolve_later(runtime.clock, 0.0)
    elif spec.kind == "kv":
        kv = runtime.kv(name)

        def write(body: int):
            kv.latency = spec.latency.sample(rng)
            return kv.put(f"message:{body}", "1")
    else:
        db = runtime.d1(name)
        db.exec("CREATE TABLE writes (origin INTEGER, type INTEGER)")
        insert = db.prepare("INSERT INTO writes VALUES (?, ?)")

        def write(body: int):
            db.latency = spec.latency.sample(rng)
            return insert.bind(body, bodies.types[body]).run()

    def write_then(body: int, then: Callable[[], Any]) -> None:
        write(body).add_done_callback(lambda _future: then())

    return write_then
