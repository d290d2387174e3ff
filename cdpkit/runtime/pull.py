"""HTTP pull consumers (``type = "http_pull"``): clients pull leased batches and ack or retry
them by lease id; a lease not settled within its visibility timeout is delivered again.

Production semantics, from the reference (shared/reference/cloudflare-semantics.md §3;
developers.cloudflare.com/queues/configuration/pull-consumers/): a pull returns up to
``batch_size`` messages, each with a ``lease_id``; ``ack`` takes ``acks`` and ``retries``
(with an optional ``delay_seconds``) by lease id; a message not acked before its visibility
timeout is delivered again; an empty pull still costs a read operation (counted for cost).
``wrangler dev`` has no pull endpoint (miniflare's broker serves only ``POST /message`` and
``POST /batch``), so the ``local`` profile refuses a pull consumer.

A pull cuts a batch through the queue's own :meth:`~cdpkit.runtime.queues.Queue.flush`, so
retention, delivery counts, retries, the dead letter queue and conservation are the push
consumer's. Modelling choices (assumptions, not documented): a batch is settled once, when
every lease of it is acked or retried, or when its visibility timeout ends (then the rest are
retried at once and count a failed attempt, as a ``retry()`` does); acks given earlier take
effect then. A lease that expired or is unknown is ignored and reported by ``ack``. A pull
client runs outside Workers, so the consumer wall-time limit does not apply to a lease (its
bound is the visibility timeout), and pulls are not Worker invocations (``cost.py``).

:class:`PullClient` is the polling loop, driven by handler code, or (:func:`behaviour_handler`)
by a push consumer's behaviour object: that is how ``cdp.simulate`` runs a spec consumer
declared with ``pull=`` (its service time, failures, retry policy and publishing, applied to
leased batches).

>>> import cdpkit as cdp
>>> rt = cdp.Runtime(semantics="production")
>>> _ = rt.queue("jobs", max_retries=2, visibility_timeout_ms=10_000)
>>> pull = rt.pull_consumer("jobs")
>>> _ = rt.env.JOBS.send({"n": 1})
>>> rt.run(until=1)
>>> [m.attempts for m in pull.pull(batch_size=5)]     # leased for 10 s
[1]
>>> rt.run(until=12)                                   # not acked: visible again
>>> m, = pull.pull()
>>> m.attempts, pull.ack(acks=[m.lease_id]), pull.empty_pulls
(2, {'acked': 1, 'retried': 0, 'ignored': 0}, 0)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, HandlerError, LimitError
from .clock import Future
from .queues import BatchResult

if TYPE_CHECKING:
    from .queues import Queue
    from .runtime import Runtime

__all__ = ["PullConsumer", "PulledMessage", "PullClient", "MAX_PULL_BATCH", "behaviour_handler"]

MAX_PULL_BATCH = 100          # queues/platform/limits/: "Maximum consumer batch size 100 messages"
MAX_VISIBILITY_MS = 43_200_000   # queues/platform/limits/: visibilityTimeout (pull-based) 12 hours
_EXACT_TICKS = 100_000     # an idle loop's skipped polls are added up one by one up to this many


class Held:
    """The flusher of a pulled queue: messages wait in the buffer until a client pulls; a
    landing wakes the client loops that wait for one (:meth:`PullClient._idle`)."""

    __slots__ = ("consumer",)
    times_out_from_arrival = False

    def __init__(self, consumer: PullConsumer) -> None:
        self.consumer = consumer

    def landed(self, queue: Queue) -> None:
        idle = self.consumer.idle
        if idle and queue.buffer:
            self.consumer.idle = []
            for woken in idle:
                woken.set_result(None)

    def finished(self, queue: Queue) -> None:
        pass


class PulledMessage:
    """One pulled message, as the HTTP API returns it: ``id``, ``body``, ``attempts``,
    ``timestamp`` (seconds) and the ``lease_id`` to ack or retry it with."""

    __slots__ = ("id", "body", "attempts", "timestamp", "lease_id")

    def __init__(self, id: str, body: Any, attempts: int, timestamp: float, lease_id: str) -> None:
        self.id, self.body, self.attempts, self.timestamp, self.lease_id = id, body, attempts, timestamp, lease_id

    def __repr__(self) -> str:
        return f"PulledMessage(id={self.id[:8]}…, attempts={self.attempts}, lease_id={self.lease_id!r})"


class _Lease:
    """A pulled batch until it is settled: its rows, decisions so far, the timeout timer."""

    __slots__ = ("rows", "open", "result", "done", "timer")

    def __init__(self, rows: list[int], done: Callable[[bool, BatchResult], None]) -> None:
        self.rows, self.open, self.result, self.done, self.timer = rows, set(rows), BatchResult(), done, None


class PullConsumer:
    """A queue's ``http_pull`` consumer (``rt.pull_consumer(queue)``): :meth:`pull` and :meth:`ack`.

    Counts ``pulls`` and ``empty_pulls`` (each empty pull is a billed read operation).
    """

    pull_consumer = True          # cost.py: pulls are not Worker invocations

    def __init__(self, runtime: Runtime, queue: Queue) -> None:
        if not runtime.semantics.concurrent_consumers:
            raise ConfigError(
                f"pull consumer for queue {queue.name!r}: not available under semantics={runtime.semantics.name!r}; "
                "wrangler dev has no pull endpoint (miniflare's queue broker serves only POST /message and "
                "POST /batch) and wrangler refuses type = \"http_pull\" in a config; allowed: semantics='production'")
        self.runtime, self.queue = runtime, queue
        self.pulls = self.empty_pulls = 0
        self.loops = 0                # polling loops of its clients (the timeline's "consumers")
        self.idle: list[Future] = []   # loops waiting for a landing instead of polling
        self.behaviour: Any = None    # what behaviour_handler runs for its client (a spec consumer)
        self._leases: dict[str, tuple[int, int]] = {}    # lease id -> (batch id, row)
        self._batches: dict[int, _Lease] = {}
        self._cut: tuple[int, list[int], Callable] | None = None
        queue.flusher = Held(self)
        queue.scaler = None           # autoscaling is for push consumers only
        # a pull client runs outside Workers: no invocation wall time (the lease bounds it)
        queue._wall = None

    @property
    def faults(self) -> Any:
        """The fault hook of the behaviour its client runs (a fault timeline's errors and
        slowdowns of a spec pull consumer go there); no attribute without one."""
        if self.behaviour is None:
            raise AttributeError("faults")
        return self.behaviour.faults

    @faults.setter
    def faults(self, hook: Any) -> None:
        if self.behaviour is None:
            raise AttributeError("faults: a pull consumer driven by handler code has no fault hook")
        self.behaviour.faults = hook

    def lease_rows(self, messages: list[PulledMessage]) -> tuple[int, list[int]]:
        """The batch id and ledger rows of the messages one pull returned (for a behaviour
        that works on ledger rows, as a push consumer's ``start`` does)."""
        leases = self._leases
        found = [leases[m.lease_id] for m in messages]
        return found[0][0], [row for _, row in found]

    # -- called by Queue.flush ---------------------------------------------------------
    def start(self, queue: Queue, batch_id: int, rows: list[int], done: Callable[[bool, BatchResult], None]) -> None:
        self._cut = (batch_id, rows, done)

    # -- the HTTP API --------------------------------------------------------------------
    def pull(self, batch_size: int | None = None, visibility_timeout: float | None = None) -> list[PulledMessage]:
        """Lease up to ``batch_size`` messages (1-100; default the queue's ``max_batch_size``)
        for ``visibility_timeout`` seconds (default the queue's ``visibility_timeout_ms``).
        An empty list still costs a read operation."""
        queue, settings = self.queue, self.queue.settings
        size = settings.max_batch_size if batch_size is None else batch_size
        if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= MAX_PULL_BATCH:
            raise LimitError(f"pull from queue {queue.name!r}: batch_size={batch_size!r} is not allowed; "
                             f"allowed: an integer from 1 to {MAX_PULL_BATCH} (messages)")
        timeout = settings.visibility_timeout_ms / 1000 if visibility_timeout is None else visibility_timeout
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout * 1000 <= MAX_VISIBILITY_MS:
            raise LimitError(f"pull from queue {queue.name!r}: visibility_timeout={visibility_timeout!r} is not "
                             f"allowed; allowed: seconds > 0, at most {MAX_VISIBILITY_MS // 1000} (12 hours)")
        self.pulls += 1
        queue.absorb()
        self._cut = None
        if queue.buffer:
            queue.flush(size)         # retention, delivery count, batch record: as for a push batch
        queue.rewake()
        if self._cut is None:
            self.empty_pulls += 1
            return []
        batch_id, rows, done = self._cut
        self._cut = None
        lease = self.hold(batch_id, rows, done)
        lease.timer = self.runtime.clock.call_later(float(timeout), self._expire, batch_id)
        ledger = self.runtime.ledger
        return [PulledMessage(ledger.id(row), ledger.body(row), int(ledger.failed[row]) + 1, ledger.timestamp[row],
                              f"{batch_id}-{i}") for i, row in enumerate(rows)]

    def hold(self, batch_id: int, rows: list[int], done: Callable[[bool, BatchResult], None]) -> _Lease:
        """Lease batch ``batch_id``'s ``rows`` (lease ids ``"<batch>-<i>"``) until it is settled
        (``done``); the caller sets its timer. (The compiled engine holds a stopped run's open
        leases here too.)"""
        lease = self._batches[batch_id] = _Lease(rows, done)
        for i, row in enumerate(rows):
            self._leases[f"{batch_id}-{i}"] = (batch_id, row)
        return lease

    def ack(self, acks: Iterable[str] = (), retries: Iterable[str | dict] = ()) -> dict[str, int]:
        """Acknowledge leases (``acks``) and ask for redelivery (``retries``: lease ids or
        ``{"lease_id": ..., "delay_seconds": ...}``). Returns how many were acked, retried and
        ignored (expired or unknown leases)."""
        counts = {"acked": 0, "retried": 0, "ignored": 0}
        touched: list[int] = []
        decisions = [(lease, None, True) for lease in acks]
        for item in retries:
            if isinstance(item, dict):
                unknown = set(item) - {"lease_id", "delay_seconds"}
                if unknown or "lease_id" not in item:
                    raise LimitError(f"ack to queue {self.queue.name!r}: retries entry {item!r} is not allowed; "
                                     "allowed: a lease id or {'lease_id': ..., 'delay_seconds': ...}")
                delay = item.get("delay_seconds")
                delay = None if delay is None else self.queue.check_delay(delay, "ack: retries delay_seconds", retry=True)
                decisions.append((item["lease_id"], delay, False))
            else:
                decisions.append((item, None, False))
        for lease_id, delay, is_ack in decisions:
            found = self._leases.pop(lease_id, None)
            if found is None:
                counts["ignored"] += 1
                continue
            batch_id, row = found
            lease = self._batches[batch_id]
            if is_ack:
                lease.result.explicit_acks.add(row)
                counts["acked"] += 1
            else:
                lease.result.retries[row] = delay
                counts["retried"] += 1
            lease.open.discard(row)
            touched.append(batch_id)
        for batch_id in dict.fromkeys(touched):
            if not self._batches[batch_id].open:
                self._settle(batch_id)
        return counts

    # -- settling ------------------------------------------------------------------------
    def _expire(self, batch_id: int) -> None:
        lease = self._batches[batch_id]
        lease.timer = None
        for row in lease.open:        # not acked in time: delivered again (a failed attempt)
            lease.result.retries[row] = 0
        self._settle(batch_id)

    def _settle(self, batch_id: int) -> None:
        lease = self._batches.pop(batch_id)
        if lease.timer is not None:
            self.runtime.clock.cancel(lease.timer)
        for i in range(len(lease.rows)):
            self._leases.pop(f"{batch_id}-{i}", None)
        lease.done(True, lease.result)

    @property
    def leased(self) -> int:
        """Messages pulled and not settled yet."""
        return sum(len(lease.rows) for lease in self._batches.values())

    def __repr__(self) -> str:
        return f"<PullConsumer {self.queue.name!r} pulls={self.pulls} empty={self.empty_pulls} leased={self.leased}>"


class PullClient:
    """A client outside Workers polling a pull consumer: ``concurrency`` loops, each pulling
    ``batch_size`` messages, running ``handler(messages)`` and acking what it returns.

    The cadence (ASSUMPTION; the reference, §3, documents short polling, "an empty pull still
    costs a read operation", and leaves the client's cadence to its author): a loop that got a
    full batch pulls again as soon as it has acked it (more may be waiting); after a partial
    or empty pull it waits ``interval`` seconds. So one loop's cycle is ``s`` after a full
    batch and ``s + interval`` after a partial one (``s``: the handler's time), and a
    saturated queue (every pull full) is drained at ``concurrency * batch_size / s``
    messages per second whatever the interval. All loops start at time 0.

    ``handler`` is ``async def handler(messages) -> (acks, retries)`` (lease ids) or returns
    None to ack every message; its awaits (``cdp.Runtime.sleep``) take virtual time. A handler
    that raises acks nothing: the batch comes back after its visibility timeout. The loops
    run until ``until`` (virtual seconds), or for ever: run the runtime with ``rt.run(until=...)``.
    From ``idle_after`` (virtual seconds; None: never) a loop whose pull came back empty
    waits for a message to land instead of polling an empty queue, and then takes up its
    cadence again (the next poll is the first one at or after the landing, and the polls it
    skipped are counted as the empty pulls they would have been): the runtime then runs out
    of events once every message is done, so ``rt.run()`` (or a simulation's drain) ends.
    """

    def __init__(self, consumer: PullConsumer, handler: Callable | None = None, *, interval: float = 1.0,
                 batch_size: int | None = None, concurrency: int = 1, visibility_timeout: float | None = None,
                 until: float | None = None, idle_after: float | None = None) -> None:
        where = f"pull client of queue {consumer.queue.name!r}"
        for name, value, ok, allowed in (
                ("interval", interval, isinstance(interval, (int, float)) and 0 < interval <= 86_400,
                 "seconds > 0, at most 86400"),
                ("concurrency", concurrency, isinstance(concurrency, int) and 1 <= concurrency <= 250,
                 "an integer from 1 to 250"),
                ("idle_after", idle_after, idle_after is None or isinstance(idle_after, (int, float))
                 and 0 <= idle_after < math.inf, "None or a time in virtual seconds >= 0")):
            if isinstance(value, bool) or not ok:
                raise ConfigError(f"{where}: {name}={value!r} is not allowed; allowed: {allowed}")
        self.consumer, self.handler = consumer, handler
        self.interval, self.batch_size, self.concurrency = float(interval), batch_size, concurrency
        self.visibility_timeout, self.until, self.idle_after = visibility_timeout, until, idle_after
        self.errors: list[BaseException] = []
        rt = consumer.runtime
        consumer.loops += concurrency
        for i in range(concurrency):
            rt.spawn(self._loop(), name=f"{where} #{i}")

    async def _loop(self) -> None:
        consumer = self.consumer
        rt, until, idle_after = consumer.runtime, self.until, self.idle_after
        size = self.batch_size or consumer.queue.settings.max_batch_size
        try:
            while until is None or rt.now < until:
                messages = consumer.pull(self.batch_size, self.visibility_timeout)
                if messages:
                    try:
                        decided = await _call(self.handler, messages)
                    except Exception as exc:          # the client failed on this batch: no ack
                        self.errors.append(exc)
                        decided = ((), ())
                    acks, retries = ([m.lease_id for m in messages], ()) if decided is None else decided
                    consumer.ack(acks, retries)
                if len(messages) >= size:         # short polling: a full batch means more may wait
                    continue
                if not messages and idle_after is not None and rt.now >= idle_after:
                    await self._idle()
                else:
                    await rt.sleep(self.interval)
        finally:
            consumer.loops -= 1

    async def _idle(self) -> None:
        """After an empty pull: wait for a landing, then sleep to the first poll of this
        loop's cadence at or after it; the polls skipped (each would have been empty) count."""
        consumer, interval, until = self.consumer, self.interval, self.until
        rt = consumer.runtime
        polled = rt.now
        woken = Future()
        consumer.idle.append(woken)
        await woken
        now, end = rt.now, math.inf if until is None else until
        tick, skipped = polled + interval, 0
        if (now - polled) / interval < _EXACT_TICKS:
            while tick < now:                 # added up as the sleeps would: the same floats
                skipped += tick < end         # a poll at or after until would not have happened
                tick += interval
        else:                                 # a long wait: the same polls, by arithmetic
            ticks = max(1, math.ceil((now - polled) / interval))
            tick = polled + ticks * interval
            skipped = max(0, min(ticks - 1, math.ceil((end - polled) / interval) - 1 if until is not None
                                 else ticks - 1))
        consumer.pulls += skipped
        consumer.empty_pulls += skipped
        await rt.sleep(max(0.0, tick - now))


def behaviour_handler(consumer: PullConsumer, behaviour: Any) -> Callable[[list[PulledMessage]], Any]:
    """A :class:`PullClient` handler that runs ``behaviour`` on each pulled batch.

    ``behaviour`` is a push consumer's object: ``start(queue, batch_id, rows, done)``, which
    calls ``done(ok, BatchResult)`` when the batch is done (the simulator's ``SpecConsumer``:
    service time, failures and retry policy, publishing). The handler acks the messages the
    result acks and retries by lease id those it retries, with their delays (None: the
    queue's ``retry_delay``), as the broker applies a push batch's result (an explicit ack
    survives ``retry_all``, as in production); a failed batch (``ok`` False) acks nothing and
    comes back after its visibility timeout. A lease that expired meanwhile is ignored by
    ``ack``: the message was delivered again (the behaviour's downstream work was done twice,
    as a real client's would be).
    """
    queue = consumer.queue
    consumer.behaviour = behaviour

    async def handle(messages: list[PulledMessage]) -> tuple[list[str], list[dict]] | None:
        batch_id, rows = consumer.lease_rows(messages)
        finished = Future()
        behaviour.start(queue, batch_id, rows, lambda ok, result: finished.set_result((ok, result)))
        ok, result = await finished
        if not ok:
            raise HandlerError(f"pull client of queue {queue.name!r}: batch {batch_id} failed; no ack")
        if not result.retries and not result.retry_all:     # the usual case: every message acked
            return None
        acks, again = [], []
        for m, row in zip(messages, rows):
            retried, delay = result.retried(row, result.retry_all, True)     # acks survive, as in production
            if retried:
                again.append({"lease_id": m.lease_id, "delay_seconds": delay})
            else:
                acks.append(m.lease_id)
        return acks, again

    return handle


async def _call(handler: Callable | None, messages: list[PulledMessage]) -> Any:
    if handler is None:
        return None
    value = handler(messages)
    if hasattr(value, "__await__"):
        value = await value
    return value
