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
effect then. A lease that expired or is unknown is ignored and reported by ``ack``.

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

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, LimitError
from .queues import BatchResult

if TYPE_CHECKING:
    from .queues import Queue
    from .runtime import Runtime

__all__ = ["PullConsumer", "PulledMessage", "PullClient", "MAX_PULL_BATCH"]

MAX_PULL_BATCH = 100          # queues/platform/limits/: "Maximum consumer batch size 100 messages"
MAX_VISIBILITY_MS = 43_200_000   # queues/platform/limits/: visibilityTimeout (pull-based) 12 hours


class Held:
    """The flusher of a pulled queue: messages wait in the buffer until a client pulls."""

    __slots__ = ()
    times_out_from_arrival = False

    def landed(self, queue: Queue) -> None:
        pass

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
        self._leases: dict[str, tuple[int, int]] = {}    # lease id -> (batch id, row)
        self._batches: dict[int, _Lease] = {}
        self._cut: tuple[int, list[int], Callable] | None = None
        queue.flusher = Held()
        queue.scaler = None           # autoscaling is for push consumers only

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
        lease = self._batches[batch_id] = _Lease(rows, done)
        lease.timer = self.runtime.clock.call_later(float(timeout), self._expire, batch_id)
        ledger, out = self.runtime.ledger, []
        for i, row in enumerate(rows):
            lease_id = f"{batch_id}-{i}"
            self._leases[lease_id] = (batch_id, row)
            out.append(PulledMessage(ledger.id(row), ledger.body(row), ledger.failed[row] + 1,
                                     ledger.timestamp[row], lease_id))
        return out

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
    ``batch_size`` messages every ``interval`` seconds (short polling: at once again after a
    full batch), running ``handler(messages)`` and acking what it returns.

    ``handler`` is ``async def handler(messages) -> (acks, retries)`` (lease ids) or returns
    None to ack every message; its awaits (``cdp.Runtime.sleep``) take virtual time. A handler
    that raises acks nothing: the batch comes back after its visibility timeout. The loops
    run until ``until`` (virtual seconds), or for ever: run the runtime with ``rt.run(until=...)``.
    """

    def __init__(self, consumer: PullConsumer, handler: Callable | None = None, *, interval: float = 1.0,
                 batch_size: int | None = None, concurrency: int = 1, visibility_timeout: float | None = None,
                 until: float | None = None) -> None:
        where = f"pull client of queue {consumer.queue.name!r}"
        for name, value, ok, allowed in (
                ("interval", interval, isinstance(interval, (int, float)) and 0 < interval <= 86_400,
                 "seconds > 0, at most 86400"),
                ("concurrency", concurrency, isinstance(concurrency, int) and 1 <= concurrency <= 250,
                 "an integer from 1 to 250")):
            if isinstance(value, bool) or not ok:
                raise ConfigError(f"{where}: {name}={value!r} is not allowed; allowed: {allowed}")
        self.consumer, self.handler = consumer, handler
        self.interval, self.batch_size, self.concurrency = float(interval), batch_size, concurrency
        self.visibility_timeout, self.until = visibility_timeout, until
        self.errors: list[BaseException] = []
        rt = consumer.runtime
        for i in range(concurrency):
            rt.spawn(self._loop(), name=f"{where} #{i}")

    async def _loop(self) -> None:
        rt = self.consumer.runtime
        while self.until is None or rt.now < self.until:
            messages = self.consumer.pull(self.batch_size, self.visibility_timeout)
            if messages:
                try:
                    decided = await _call(self.handler, messages)
                except Exception as exc:          # the client failed on this batch: no ack
                    self.errors.append(exc)
                    decided = ((), ())
                acks, retries = ([m.lease_id for m in messages], ()) if decided is None else decided
                self.consumer.ack(acks, retries)
            size = self.batch_size or self.consumer.queue.settings.max_batch_size
            if len(messages) < size:          # short polling: a full batch means more may wait
                await rt.sleep(self.interval)


async def _call(handler: Callable | None, messages: list[PulledMessage]) -> Any:
    if handler is None:
        return None
    value = handler(messages)
    if hasattr(value, "__await__"):
        value = await value
    return value
