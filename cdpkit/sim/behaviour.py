"""Behaviour generated from specs, plugged into the *same* runtime as user handlers.

* :class:`SpecConsumer` is a queue consumer (the broker calls ``start`` for each batch,
  exactly as for a handler): it draws the batch's service time and which messages fail
  (retried with the spec's policy) and, for the rest, publishes, routes, writes to stores
  and calls actors. A batch that only computes, publishes or calls a service-only actor is
  one scheduled event (no coroutine); one that awaits stores or actors run as code is a
  task per batch awaiting each step, as the same consumer written by hand does, so
  same-instant events fall in the same order (``tests/test_spec_consumer_property.py``).
* A spec actor class that writes to stores, calls actors or publishes is a generated
  :class:`~cdpkit.runtime.actors.Actor` subclass (:func:`spec_actor_class`) run through the
  runtime's own Durable Object machinery (its gate, stubs, KV/D1 calls), exactly as the
  same class written by hand.
* A service-only spec actor class is :class:`SpecActors`: the gate's events, replayed as
  arithmetic in the clock's order (no coroutine per call).

A spec message's body is an int: the index of the workload arrival it descends from
(:class:`SpecBodies` gives its type, size and origin time), so results can report
end-to-end latency from the first send to the last step.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import ConfigError, HandlerError
from ..runtime.actors import Actor, admission, overload_error
from ..runtime.clock import Future, resolve_later
from ..runtime.env import ExecutionContext
from ..runtime.queues import BatchResult, Queue
from ..runtime.trace import CallLog
from .draws import CounterRNG, uniform_at

if TYPE_CHECKING:
    from ..model.pipeline import ActorSpec, ConsumerSpec, StoreSpec
    from ..runtime.runtime import Runtime

MAX_SEND_BATCH = 100   # messages per sendBatch
_ALL_ACKED = BatchResult()   # a spec batch's result when no message fails: shared, only ever read


class SpecBodies:
    """What a spec message's body stands for. The body is the index of the workload
    arrival the message descends from (an int: no object per message); its type, size and
    origin time are looked up here. Handler code sees it as a dict (:meth:`view`).
    """

    __slots__ = ("arrivals", "times", "type_names", "_types", "_sizes")

    def __init__(self, arrivals: Any) -> None:
        self.arrivals = arrivals
        self.times: np.ndarray = arrivals.times
        self.type_names: list[str] = arrivals.type_names
        self._types: list[int] | None = None
        self._sizes: list[int] | None = None

    @property
    def types(self) -> list[int]:
        """Each arrival's type code, as a list (a Python engine's lookups are faster in one;
        made on first use: a compiled run of 10M messages reads the arrays, not 480 MB of ints)."""
        if self._types is None:
            self._types = self.arrivals.types.tolist()
        return self._types

    @property
    def sizes(self) -> list[int]:
        """Each arrival's size in bytes, as a list (see :attr:`types`)."""
        if self._sizes is None:
            self._sizes = self.arrivals.sizes.tolist()
        return self._sizes

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
    counted as sent and ``rejected`` (like a send over a production limit), and never
    reaches the queue.
    """
    limit, ledger = runtime.semantics.max_message_bytes, runtime.ledger
    rows = ledger.add(queue.name, "raw", bodies, sizes, sent, sent)
    biggest = sizes.max() if len(bodies) else 0
    if biggest <= limit:
        return rows
    kept = []
    for row, size in zip(rows, sizes):
        if size > limit:
            queue.reject([row], ledger.sent[row], f"{size} bytes is over the {limit}-byte message limit")
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

        self.picks: list[int] = []     # drawn ahead, the next one last

    def pick_index(self) -> int:
        """The next key's instance index (drawn in chunks: one numpy call per 4096 picks)."""
        if not self.picks:
            self.refill()
        return self.picks.pop()

    def refill(self) -> None:
        """Draw the next 4096 picks (into the same list: a hot loop may hold it)."""
        drawn = np.searchsorted(self.cumulative, self.rng.random(4096), side="right")
        self.picks.extend(np.minimum(drawn, len(self.names) - 1)[::-1].tolist())

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
        # one sub-stream per purpose (consumer_streams): a draw is the n-th of its kind
        self.rng, self.per_rng, failure_rng, poison = consumer_streams(rng)
        self.poison_key = poison.key
        self.callers = callers          # actor/store -> its caller (awaitable(body) -> future)
        self.bodies = bodies
        self.cpu_seconds = 0.0
        pool = callers.get(spec.calls)       # actors exist before consumers
        self.simple_pool = pool if isinstance(pool, SpecActors) else None
        # A batch whose messages await stores or actors run as code runs as handler code
        # would (a task awaiting each step): the callbacks of one scheduled event cannot
        # place a zero-latency write or a call finishing at a tied instant where the task's
        # own events fall. Computing, publishing and a service-only actor's calls in turn
        # (call_each replays the gate) need no task.
        self.as_code = bool(spec.writes or spec.routes or spec.parallel
                            or (spec.calls and self.simple_pool is None))
        # An attempt fails with probability `failure`; a `permanent` share of those failures
        # are poison messages that fail every attempt, the rest fail independently with q.
        f, share = spec.failure, spec.permanent
        self.poison_share = f * share
        transient = 0.0 if f * share >= 1 else f * (1 - share) / (1 - f * share)
        self.transient = Trials(transient, failure_rng) if transient else None
        self.faults: Any = None         # a fault timeline's hook (runtime.faults.ConsumerFaults)

    def start(self, queue: Queue, batch_id: int, rows: list[int],
              done: Callable[[bool, BatchResult], None]) -> None:
        spec, rng, rt = self.spec, self.rng, self.runtime
        ledger = rt.ledger
        n = len(rows)
        base, per = spec.base, spec.per_message     # a constant is its value (what sample returns)
        cpu = (base.a if base.kind == "const" else base.sample(rng)) + (
            per.a * n if per.kind == "const" else float(per.sample(self.per_rng, n).sum()))
        result = _ALL_ACKED
        failing = self.transient.hits(n) if self.transient else []
        if self.poison_share:   # a draw per workload message: poison fails every attempt
            share, key, payload = self.poison_share, self.poison_key, ledger.payload
            failing = sorted({*failing, *(i for i, row in enumerate(rows) if uniform_at(key, payload[row]) < share)})
        if self.faults is not None:     # inside a fault window: more failures, a slower batch
            failing, cpu = self.faults.apply(rows, failing, cpu)
        acked = rows
        if failing:
            result = BatchResult()
            for i in failing:
                delay = spec.retry.delay(int(ledger.failed[rows[i]]) + 1)
                if spec.retry.mode == "retry_all":
                    result.retry_all = True
                    result.retry_all_delay = delay
                else:
                    result.retries[rows[i]] = delay
            retried = result.retries
            acked = [] if result.retry_all else [row for row in rows if row not in retried]

        def finish(error: BaseException | None = None) -> None:
            if error is not None:       # an overloaded actor, a fault: the batch fails, as in a handler
                rt.failures.record(rt.clock.now, queue.name, batch_id, error)
            done(error is None, result)

        if self.as_code:
            self._run_as_code(f"{queue.name}#{batch_id}", cpu, acked, finish)
            return
        self.cpu_seconds += cpu
        rt.clock.call_later(cpu, self._downstream, acked, finish)

    def _run_as_code(self, name: str, cpu: float, acked: list[int],
                     finish: Callable[[BaseException | None], None]) -> None:
        """The batch as :class:`~cdpkit.runtime.runtime.HandlerConsumer` runs a handler: a
        task (its first step one event later) that computes for ``cpu`` seconds, publishes,
        then awaits each message's steps; an error from a store or an actor (an overloaded
        Durable Object, a fault) fails the batch, as an exception in a handler does."""
        ctx = ExecutionContext(self.runtime)
        task = self.runtime.clock.spawn(self._steps(ctx, cpu, acked), name=name)

        def report(error: BaseException | None) -> None:
            self.cpu_seconds += ctx.cpu_seconds
            finish(error)

        task.add_done_callback(lambda _t: ctx.settle(task, report))

    async def _steps(self, ctx: ExecutionContext, cpu: float, acked: list[int]) -> None:
        await ctx.work(cpu)
        if not acked:
            return
        sends: dict[str, list[int]] = {}
        chains = self._chains(acked, sends)
        self._send(sends)
        if self.spec.parallel:      # Promise.all over the messages: each chain its own task
            await ctx.gather(*(_in_turn(chain) for chain in chains))
        else:
            for chain in chains:
                await _in_turn(chain)

    def _send(self, sends: dict[str, list[int]]) -> None:
        for queue, bodies in sends.items():
            whole = len(bodies) <= MAX_SEND_BATCH     # one sendBatch: no copy (the ledger copies)
            for start in range(0, len(bodies), MAX_SEND_BATCH):
                send_spec_messages(self.runtime, self.runtime.queues[queue],
                                   bodies if whole else bodies[start:start + MAX_SEND_BATCH], self.bodies)

    def _default_steps(self, body: int, sends: dict[str, list[int]] | None,
                       calls: list[tuple[Callable, int]]) -> None:
        """Publish ``body`` (unless ``sends`` is None), write it to stores, call the actor."""
        spec = self.spec
        if sends is not None:
            for queue in spec.publish:
                sends.setdefault(queue, []).append(body)
        for store in spec.writes:
            calls.append((self.callers[store].awaitable, body))
        if spec.calls:
            calls.append((self.callers[spec.calls].awaitable, body))

    def _downstream(self, acked: list[int], finish: Callable[..., None]) -> None:
        """A batch not run as code: publish the acked messages now, call the service-only
        actor for each in turn (if the spec calls one), then finish."""
        if acked:
            payload = self.runtime.ledger.payload
            bodies = [payload[row] for row in acked]
            self._send({queue: bodies for queue in self.spec.publish})
            if self.simple_pool is not None:
                self.simple_pool.call_each(len(bodies), finish)
                return
        finish()

    def _chains(self, acked: list[int], sends: dict[str, list[int]]) -> list[list[tuple[Callable, int]]]:
        """Per acked message, the calls it awaits in turn (its sends go into ``sends``)."""
        spec, rt, chains = self.spec, self.runtime, []
        payload = rt.ledger.payload
        for row in acked:
            body = payload[row]
            target = spec.routes.get(self.bodies.type_name(body)) if spec.routes else None
            steps: list[tuple[Callable, int]] = []
            if target is None:                # the default: publish, write, call
                self._default_steps(body, sends, steps)
            elif target in rt.queues:         # Pattern 2: this type goes to its own target
                sends.setdefault(target, []).append(body)
            else:
                steps.append((self.callers[target].awaitable, body))
            if steps:
                chains.append(steps)
        return chains


async def _in_turn(chain: list[tuple[Callable[[int], Any], int]]) -> None:
    """Await each call of one message in turn."""
    for call, body in chain:
        await call(body)


def consumer_streams(rng: CounterRNG) -> tuple[CounterRNG, CounterRNG, CounterRNG, CounterRNG]:
    """A spec consumer's random streams, spawned from its node's: (batch base times,
    per-message times, failure trials, poison). The first three are drawn in delivery order,
    so the n-th batch's base time or the n-th delivered message's trial is a fixed number
    (:mod:`.draws`); poison is drawn at the message's workload index (its body), the same on
    every attempt."""
    base, per_message, failure, poison = rng.spawn(4)
    return base, per_message, failure, poison


def actor_streams(rng: np.random.Generator) -> tuple[np.random.Generator, np.random.Generator]:
    """An actor node's two random streams, (keys, service times), spawned from its own:
    separate, so that who draws keys (a pool, a caller, handler code) does not shift the
    service times (a hand-written twin can draw the same ones)."""
    keys, service = rng.spawn(2)
    return keys, service


class SpecActors:
    """The instances of a service-only spec actor class (no store writes, child calls or
    publishing), each a single-threaded object.

    It replays the runtime's object gate (:class:`~cdpkit.runtime.clock.Gate`) as
    arithmetic, event for event, with no coroutine per call: a call *enters* the gate when
    it arrives (an entry event at once if the instance is free, else it waits in FIFO
    order); its entry event draws its service time and schedules its *exit* that much
    later; the exit hands the gate to the next waiting call (its entry event, now) and then
    tells the caller. These events carry (time, sequence number) keys taken from the clock
    exactly when the gate would take them, and run in the clock's order among the clock's
    own events (the pool keeps them in its own queues, with one entry in the clock at its
    earliest). ``tests/test_spec_actors_property.py`` checks it, call for call, against a
    hand-written :class:`~cdpkit.runtime.actors.Actor` through the real gate.
    """

    def __init__(self, runtime: Runtime, name: str, spec: ActorSpec, rng: np.random.Generator) -> None:
        if spec.writes or spec.calls or spec.publish:
            raise ConfigError(f"actor {name!r}: SpecActors runs service-only classes; "
                              "one that writes, calls or publishes runs as spec_actor_class")
        self.runtime, self.name, self.spec = runtime, name, spec
        self.binding = spec.binding
        keys, self.service_rng = actor_streams(rng)
        self.picker = KeyPicker(name.lower(), spec.instances, spec.skew, keys)
        self.service = spec.service.sampler(self.service_rng)
        self.busy = [False] * spec.instances      # does a call hold the instance's gate
        self.waiting: list[deque | None] = [None] * spec.instances   # calls waiting at its gate
        self.busy_seconds = 0.0
        # the Durable Object soft limit (production), per instance, as the runtime applies it
        rate = runtime.semantics.actor_requests_per_second
        self.period = None if rate is None else 1 / rate
        self.tats = [0.0] * spec.instances        # admission()'s bucket state, per instance
        self.log = log = CallLog(spec.binding, spec.method, self.picker.names)
        runtime.recorder.add_call_log(log)
        # pending gate events (time, seq, row, calls left, then): entries "now", in order;
        # exits in a heap
        self._entries: deque[tuple] = deque()
        self._exits: list[tuple] = []
        self._wakes: list[tuple] = []             # the (time, seq) of its entries in the clock
        clock, picker = runtime.clock, self.picker
        # what _run needs, bound once (the lists and the log's columns only change in place);
        # not the service draw, which a fault may wrap
        self._hot = (clock, self._entries, self._exits, self._wakes, clock.next_seq, clock.head,
                     picker.picks, picker.refill, log.started, log.finished, log.key, log.key.append,
                     log.arrived.append, log.started.append, log.finished.append, self.busy, self.waiting)
        self._wake = self._run

    def call(self, body: int, then: Callable[[], Any], key: int | None = None) -> None:
        """A request to instance ``key`` (default: picked); ``then()`` runs when it is done."""
        self._enter(self.runtime.clock.now, 0, then, key)
        self._schedule()

    def awaitable(self, body: int) -> Future:
        """The call as a future (for a task to await), done when the call is (failed if the
        object was overloaded)."""
        future = Future()
        self.call(body, settler(future))
        return future

    def call_each(self, count: int, then: Callable[[], Any]) -> None:
        """``count`` requests one after another (each when the previous is done), then
        ``then()``: a consumer calling the actor for each message of a batch in turn."""
        if not count:
            then()
            return
        self._enter(self.runtime.clock.now, count - 1, then, None)
        self._schedule()

    def _enter(self, t: float, left: int, then: Callable[[], Any], key: int | None) -> None:
        """A call arrives at ``t``. It enters its instance's gate, with an entry event now
        and the next sequence number, as ``Gate.enter`` schedules it, or waits behind the
        call that holds it."""
        log = self.log
        k = self.picker.pick_index() if key is None else key
        row = len(log)
        log.key.append(k)
        log.arrived.append(t)
        log.started.append(math.nan)        # (not yet: NaN in a run stopped before, drain=False)
        log.finished.append(math.nan)
        if self.period is not None:
            tat, wait = admission(self.tats[k], t, self.runtime.semantics.actor_requests_per_second)
            self.tats[k] = tat
            if wait > 0:
                self._hold(k, row, left, then, wait)
                return
        self._to_gate(k, t, row, left, then)

    def _to_gate(self, k: int, t: float, row: int, left: int, then: Callable[..., Any]) -> None:
        """``Gate.enter`` at ``t`` (the clock's now): an entry event now with the next
        sequence number if instance ``k`` is free, else a place behind the calls waiting."""
        if self.busy[k]:
            self._wait(k, (row, left, then))
        else:
            self.busy[k] = True
            self._entries.append((t, self.runtime.clock.next_seq(), row, left, then))

    def _hold(self, k: int, row: int, left: int, then: Callable[..., Any], wait: float) -> None:
        """A call past the soft limit at instance ``k`` (``wait`` > 0, from
        :func:`~cdpkit.runtime.actors.admission`), as
        :meth:`~cdpkit.runtime.actors.ActorObject.call` treats it: it enters the gate after
        ``wait`` seconds, or, if that is over ``actor_max_queue_seconds``, fails then."""
        clock, most = self.runtime.clock, self.runtime.semantics.actor_max_queue_seconds
        if wait > most:
            self.tats[k] -= self.period     # it never runs: its place in the bucket is given back
            clock.call_later(most, self._overloaded, k, row, then)
        else:
            clock.call_later(wait, self._admitted, k, row, left, then)

    def _admitted(self, k: int, row: int, left: int, then: Callable[..., Any]) -> None:
        """A call past the soft limit reaches its instance's gate now."""
        self._to_gate(k, self.runtime.clock.now, row, left, then)
        self._schedule()

    def _overloaded(self, k: int, row: int, then: Callable[..., Any]) -> None:
        """A call queued past the soft limit for too long fails; its caller's chain ends."""
        log, now = self.log, self.runtime.clock.now
        log.started[row] = log.finished[row] = now
        log.outcomes[row] = "overloaded"
        then(overload_error(self.binding, self.picker.names[k], self.runtime.semantics))

    def _wait(self, k: int, call: tuple) -> None:
        queue = self.waiting[k]
        if queue is None:
            queue = self.waiting[k] = deque()
        queue.append(call)

    def _run(self) -> None:
        """Run, in clock order, every gate event due before the clock's next event. (It
        sets ``clock.now`` only to an event's time, only when that event comes first.)

        An event is (time, seq, row, calls left, then); whether it is an entry or an exit
        is which queue it is in. An event just made that is provably next (before the
        bound and every queued event) runs at once, without a sequence number: it would
        be the newest, so it is next exactly when its time is before theirs (or equal to
        the end of the run's), and leaving a number out keeps the order of all others."""
        (clock, entries, exits, wakes, next_seq, head_of_clock, picks, refill, started, finished, keys,
         add_key, add_arrived, add_started, add_finished, busy, waiting) = self._hot
        push, pop, pushpop, service = heapq.heappush, heapq.heappop, heapq.heappushpop, self.service
        busy_seconds, rows = self.busy_seconds, len(keys)     # rows: the log's length
        period, tats = self.period, self.tats
        pop(wakes)                          # the pool's earliest entry in the clock: this one
        bt, bs = head_of_clock()            # the bound: nothing at or after it runs here
        end = bs == math.inf                # the bound is the run's end: an event at bt is before it
        while True:
            if entries and (not exits or entries[0] < exits[0]):
                head = entries[0]
                if not (head[0] < bt or head[0] == bt and head[1] < bs):
                    break
                t, _, row, left, then = entries.popleft()
                entering = True             # (it waited at the gate until now)
            elif exits:
                head = exits[0]
                if not (head[0] < bt or head[0] == bt and head[1] < bs):
                    break
                t, _, row, left, then = pop(exits)
                entering = False
            else:
                break
            clock.now = t
            while True:                     # this call's events, then its chain's, while next
                if entering:                # the call has the gate now: compute
                    started[row] = t
                    seconds = service()     # drawn when the call gets the gate, as code does
                    busy_seconds += seconds
                    t += seconds
                    if not ((t < bt or end and t == bt) and not entries and (not exits or t < exits[0][0])):
                        event = (t, next_seq(), row, left, then)
                        if entries or not exits:
                            push(exits, event)
                            break
                        head = exits[0]
                        if not (head[0] < bt or head[0] == bt and head[1] < bs):
                            push(exits, event)
                            break
                        # the earliest queued exit is next (not this one): one heap operation
                        t, _, row, left, then = pushpop(exits, event)
                    clock.now = t           # this exit is next: at once
                finished[row] = t
                k = keys[row]
                queue = waiting[k]
                if queue:                   # Gate.leave: the next call gets the gate now
                    entries.append((t, next_seq(), *queue.popleft()))
                else:
                    busy[k] = False
                if left:                    # the caller's next call, at once (_enter, inlined)
                    left -= 1
                    if not picks:
                        refill()
                    k = picks.pop()
                    row = rows
                    rows += 1
                    add_key(k)
                    add_arrived(t)
                    add_started(math.nan)
                    add_finished(math.nan)
                    if period is not None:  # the soft limit: admission(), inlined
                        tat = tats[k]
                        tats[k] = tat = (tat if tat > t else t) + period
                        if tat - t - 1.0 > 0:
                            self._hold(k, row, left, then, tat - t - 1.0)
                            bt, bs = head_of_clock()    # it scheduled its admission (or failure)
                            end = bs == math.inf
                            break
                    if busy[k]:
                        self._wait(k, (row, left, then))
                        break
                    busy[k] = True
                    # its entry at (t, newest seq) is next only if nothing else is due at t
                    if entries or not bt > t or (exits and not exits[0][0] > t):
                        entries.append((t, next_seq(), row, left, then))
                        break
                    entering = True
                    continue
                self.busy_seconds = busy_seconds
                then()
                bt, bs = head_of_clock()    # then() may have scheduled events (and made calls)
                end, rows = bs == math.inf, len(keys)
                break
        self.busy_seconds = busy_seconds
        self._schedule()

    def _schedule(self) -> None:
        """Make sure the pool has an entry in the clock at its earliest gate event's
        (time, seq). Entries are never cancelled; one that finds nothing due does nothing."""
        entries, exits, wakes = self._entries, self._exits, self._wakes
        if entries and (not exits or entries[0] < exits[0]):
            t, seq = entries[0][:2]
        elif exits:
            t, seq = exits[0][:2]
        else:
            return
        if not wakes or (t, seq) < wakes[0]:
            heapq.heappush(wakes, (t, seq))
            self.runtime.clock.call_at_seq(t, seq, self._wake)

    def load(self, now: float) -> tuple[int, int]:
        """(calls waiting at a gate, instances holding one) now."""
        return sum(len(queue) for queue in self.waiting if queue), sum(self.busy)

    def get_by_name(self, name: str) -> _SpecStub:
        """A stub for handler code: ``env.BINDING.get_by_name(key).handle(body)``."""
        return _SpecStub(self, self.picker.index(name))


def settler(future: Future) -> Callable[..., None]:
    """A pool call's ``then(error=None)`` that completes ``future`` (or fails it)."""
    def then(error: BaseException | None = None) -> None:
        if error is None:
            future.set_result()
        else:
            future.set_exception(error)
    return then


def spec_origin(body: Any, where: str, why: str) -> int:
    """The arrival index a spec body stands for: an int, or the dict handler code sees."""
    if isinstance(body, dict) and "origin" in body:
        body = body["origin"]
    if isinstance(body, int) and not isinstance(body, bool):
        return body
    raise HandlerError(f"{where}: body={body!r:.60} is not allowed; allowed: a workload message's "
                       f"body (m.body) or its 'origin', because {why}")


def spec_actor_class(runtime: Runtime, name: str, spec: ActorSpec, service_rng: np.random.Generator,
                     callers: dict[str, Any], bodies: SpecBodies,
                     scale: Callable[[Callable[[], float]], Callable[[], float]] | None = None) -> type[Actor]:
    """The :class:`~cdpkit.runtime.actors.Actor` subclass a spec actor stands for, to run
    through the runtime's gate: its ``handle(body)`` computes for a service time, then
    writes to each store (the store's own call, awaited), calls each child actor (awaited)
    and publishes ``body`` to each queue. ``callers``: the stores' writers, and the
    children's callers once every actor node is built (looked up at the call). ``scale``
    wraps the service draw (a fault's slowdown)."""
    service = spec.service.sampler(service_rng)     # the node's service stream (actor_streams)
    if scale is not None:
        service = scale(service)
    writes = [callers[store].write for store in spec.writes]     # stores are built first
    queues = [runtime.queues[queue] for queue in spec.publish]
    where, why = f"{spec.binding}.{spec.method}", f"{name} writes to stores, calls actors or publishes"

    async def handle(self: Actor, body: Any) -> None:
        body = spec_origin(body, where, why)
        await self.ctx.work(service())
        for write in writes:
            await write(body)
        for child in spec.calls:
            await callers[child].awaitable(body)   # its errors fail this call too
        for queue in queues:
            send_spec_messages(runtime, queue, [body], bodies)

    return type(name, (Actor,), {spec.method: handle, "__doc__": f"Generated from spec actor {name!r}."})


class CodeActorCaller:
    """Calls into an actor class through the runtime's namespace: ``method(body)`` on the
    instance the next picked key maps to. ``view``: how the class gets the body (user code:
    :meth:`SpecBodies.view`; None: the int itself)."""

    __slots__ = ("namespace", "picker", "method", "view")

    def __init__(self, namespace: Any, picker: KeyPicker, method: str, view: Callable[[int], Any] | None) -> None:
        self.namespace, self.picker, self.method, self.view = namespace, picker, method, view

    def awaitable(self, body: int) -> Future:
        """The stub's call (a future that fails as the call does: an overloaded object, a fault)."""
        stub = self.namespace.get_by_name(self.picker.names[self.picker.pick_index()])
        return getattr(stub, self.method)(body if self.view is None else self.view(body))


class _SpecStub:
    __slots__ = ("pool", "key")

    def __init__(self, pool: SpecActors, key: int) -> None:
        self.pool, self.key = pool, key

    def handle(self, body: Any) -> Future:
        future = Future()
        self.pool.call(body, settler(future), self.key)   # a service-only call: any body
        return future


class StoreWriter:
    """One write per message to a KV namespace, D1 database, sink or Analytics Engine
    dataset, through the runtime's own store (its latency is drawn per call from the
    store's stream, by the store): ``write(body)`` (also ``awaitable``) is the store's
    awaitable call."""

    INSERT = "INSERT INTO writes VALUES (?, ?)"     # a D1 store's write: (origin, type)

    def __init__(self, runtime: Runtime, name: str, spec: StoreSpec, rng: np.random.Generator,
                 bodies: SpecBodies) -> None:
        self.kind, self.latency, self.stream_key, self.bodies = spec.kind, spec.latency, rng.key, bodies
        latency = spec.latency.a if spec.latency.kind == "const" else spec.latency.sampler(rng)
        if spec.kind == "sink":
            sink = self.store = runtime.sink(name, latency)
            self.write = lambda body: sink.call()
        elif spec.kind == "analytics":   # writeDataPoint is fire-and-forget: no latency
            dataset = self.store = runtime.analytics(name)

            def write(body: int) -> Future:
                dataset.write_data_point(self._point(body))
                return resolve_later(runtime.clock, 0.0)
            self.write = write
        elif spec.kind == "kv":
            kv = self.store = runtime.kv(name)
            kv.latency = latency
            self.write = lambda body: kv.put(f"message:{body}", "1")
        else:
            db = self.store = runtime.d1(name)
            db.exec("CREATE TABLE writes (origin INTEGER, type INTEGER)")
            db.latency = latency
            insert = db.prepare(self.INSERT)
            self.write = lambda body: insert.bind(body, bodies.types[body]).run()

    def _point(self, body: int) -> dict:
        """An Analytics Engine store's data point for ``body``."""
        bodies = self.bodies
        return {"blobs": [bodies.type_name(body)], "doubles": [float(bodies.times[body])], "indexes": [str(body)]}

    def replay(self, clock: Any, bodies: np.ndarray, times: np.ndarray) -> None:
        """The writes a compiled run made (``bodies`` written at ``times``, in order) into
        the store as :meth:`write` makes them, without their latencies (the run drew those)."""
        store = self.store
        if self.kind == "sink":
            store.calls += len(bodies)
        elif self.kind == "kv":
            for body, t in zip(bodies.tolist(), times.tolist()):
                store.record_put(f"message:{body}", "1", t)
        elif self.kind == "d1":
            types = self.bodies.arrivals.types[bodies]
            store.insert_many(self.INSERT, list(zip(bodies.tolist(), types.tolist())))
        else:
            now = clock.now
            for body, t in zip(bodies.tolist(), times.tolist()):
                clock.now = t                 # (a data point keeps the time it was written)
                store.write_data_point(self._point(body))
            clock.now = now

    def awaitable(self, body: int) -> Future:
        """The store's call for ``body`` (a future)."""
        return self.write(body)


def store_writer(runtime: Runtime, name: str, spec: StoreSpec, rng: np.random.Generator,
                 bodies: SpecBodies) -> StoreWriter:
    """The writer of store ``name`` (:class:`StoreWriter`)."""
    return StoreWriter(runtime, name, spec, rng, bodies)
