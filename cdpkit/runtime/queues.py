"""Cloudflare Queues in virtual time: producers, the per-queue broker, consumers.

The broker follows miniflare's Queues broker (``broker.worker.js`` in wrangler 4.86) step
for step under the ``local`` profile; the ``production`` profile changes only what
:class:`~cdpkit.runtime.semantics.Semantics` lists (defaults, limits, ack precedence,
concurrent consumers, retention). Read top to bottom:

1. :class:`ConsumerSettings` — the ``[[queues.consumers]]`` knobs, validated.
2. A message inside the broker is its row in the :class:`~cdpkit.runtime.ledger.Ledger`.
3. :class:`Message`, :class:`MessageBatch`, :class:`BatchResult` — what a handler sees,
   with workerd's rules for conflicting ``ack``/``retry`` calls.
4. :class:`SingleFlush`, :class:`ConcurrentFlush` — when batches are cut.
5. :class:`Queue` — buffer, flush, and what happens after a batch (retry, DLQ, drop).
6. :class:`Producer` — the ``env.MY_QUEUE`` binding (``send``, ``send_batch``).
"""

from __future__ import annotations

import json
import math
import pickle
from bisect import bisect_right
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import fields, make_dataclass, replace
from itertools import groupby
from operator import itemgetter
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import ConfigError, LimitError
from .clock import Future
from .env import io_later
from .ledger import ACKED, MAX_FAILED, Ledger
from .limits import (
    js_int,
)
from .semantics import DOCS, Autoscaling, Semantics
from .settings import settings_in

if TYPE_CHECKING:
    from .runtime import Runtime

__all__ = [
    "ConsumerSettings", "Message", "MessageBatch", "BatchResult",
    "Queue", "Producer", "CONTENT_TYPES",
]

CONTENT_TYPES = ("json", "text", "bytes", "v8")
_expm1, _ceil = math.expm1, math.ceil      # per batch in an autoscaled queue
# JSON.stringify's compact form; one encoder/decoder for all messages (dumps() builds one per call)
_json_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode

# ---------------------------------------------------------------------------- settings


class _ConsumerSettingsMethods:
    """What :class:`ConsumerSettings` can do; its fields come from the settings table."""

    def validated(self, queue: str, semantics: Semantics) -> ConsumerSettings:
        """Check every given value against Cloudflare's limits (ConfigError naming the field);
        return the settings as plain ``int``/``float``/``str`` values."""
        where = f"queue {queue!r}"
        checked = {s.name: s.check(getattr(self, s.name), where, semantics)
                   for s in settings_in("consumer") if getattr(self, s.name) is not None}
        if checked.get("dead_letter_queue") == queue:
            raise ConfigError(f"{where}: dead_letter_queue={queue!r} is the queue itself; "
                              "allowed: the name of a different queue")
        return replace(self, **checked)

    def given(self) -> dict[str, Any]:
        """The settings that were set explicitly."""
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}

    def resolved(self, semantics: Semantics) -> ConsumerSettings:
        """Fill unset values with the profile's defaults."""
        out = replace(self, **{s.name: s.default_for(semantics) for s in settings_in("consumer")
                               if getattr(self, s.name) is None})
        if out.max_retries is not None and out.max_retries + 1 > MAX_FAILED:   # a profile's own default
            raise ConfigError(f"max_retries={out.max_retries} is not allowed; allowed: at most "
                              f"{MAX_FAILED - 1} (the ledger counts failed attempts in 16 bits)")
        return out

    @classmethod
    def of(cls, settings: dict[str, Any]) -> ConsumerSettings:
        """The consumer settings among a queue's settings (``max_batch_size``, ... not
        ``delivery_delay`` or ``retention``)."""
        return cls(**{k: v for k, v in settings.items() if k in CONSUMER_KEYS})


CONSUMER_KEYS = tuple(s.name for s in settings_in("consumer"))
#: Consumer settings of one queue, as in ``[[queues.consumers]]``; None = the profile's default.
#: One field per consumer-scope row of :data:`~cdpkit.runtime.settings.QUEUE_SETTINGS`.
ConsumerSettings = make_dataclass(
    "ConsumerSettings", [(name, Any, None) for name in CONSUMER_KEYS],
    bases=(_ConsumerSettingsMethods,), frozen=True, namespace={"__module__": __name__})


def _default(value, fallback):
    return fallback if value is None else value


# ---------------------------------------------------------------------------- messages


def encode_body(body: Any, content_type: str, max_bytes: int) -> tuple[Any, int]:
    """Serialise a body as the content type says; return (payload, size in bytes)."""
    if content_type == "json":
        try:
            payload = _json_encode(body)
        except (TypeError, ValueError) as exc:
            raise LimitError(f"message body is not JSON-serialisable ({exc}); allowed with "
                             "content_type='json': dict, list, str, int, float, bool, None; "
                             "use content_type='v8' for other Python objects") from None
        size = len(payload.encode()) if not payload.isascii() else len(payload)
    elif content_type == "text":
        if not isinstance(body, str):
            raise LimitError(f"content_type='text' needs a str body, got {type(body).__name__}")
        payload, size = body, len(body.encode())
    elif content_type == "bytes":
        if not isinstance(body, (bytes, bytearray, memoryview)):
            raise LimitError(f"content_type='bytes' needs a bytes body, got {type(body).__name__}")
        payload = bytes(body)
        size = len(payload)
    elif content_type == "v8":
        # Structured clone in the real runtime; pickle is our copy and our size estimate.
        payload = pickle.dumps(body, protocol=pickle.HIGHEST_PROTOCOL)
        size = len(payload)
    else:
        raise LimitError(f"content_type={content_type!r} is not allowed; allowed: "
                         + ", ".join(repr(c) for c in CONTENT_TYPES))
    if size > max_bytes:
        raise LimitError(f"message body is {size} bytes; allowed: at most {max_bytes} bytes "
                         "per message (128 KB)")
    return payload, size


class BatchResult:
    """What the handler decided for a batch: workerd's ``QueueEventResult``."""

    __slots__ = ("ack_all", "retry_all", "retry_all_delay", "explicit_acks", "retries", "warnings")

    def __init__(self) -> None:
        self.ack_all = False
        self.retry_all = False
        self.retry_all_delay: int | None = None
        self.explicit_acks: set[int] = set()       # ledger rows
        self.retries: dict[int, int | None] = {}   # ledger row -> its own delay (None = unset)
        self.warnings: list[str] = []

    def retried(self, row: int, retry_all: bool, acks_survive: bool) -> tuple[bool, int | None]:
        """Whether message ``row`` is retried, and after which delay (None: the queue's
        ``retry_delay``): its own ``retry()``, else the batch's ``retryAll()`` (``retry_all``:
        also a failed invocation) unless an explicit ``ack()`` survives it
        (``acks_survive_batch_retry``); otherwise it is acked."""
        if row in self.retries:
            delay = self.retries[row]
            return True, self.retry_all_delay if delay is None else delay
        if retry_all and not (acks_survive and row in self.explicit_acks):
            return True, self.retry_all_delay
        return False, None


class Message:
    """A delivered message, as the handler sees it (``batch.messages[i]``).

    ``ack()`` and ``retry()`` follow workerd's ``QueueMessage``: after ``ack()``, ``retry()``
    has no effect and after ``retry()``, ``ack()`` has none; a second ``retry()`` replaces
    the first (its delay too: ``retry(delay_seconds=5)`` then ``retry()`` uses the batch or
    consumer delay); neither has any effect after ``batch.ack_all()``, and ``ack()`` has
    none after ``batch.retry_all()``. A delay is a JS Number: see :meth:`Queue.check_delay`.
    """

    __slots__ = ("timestamp", "body", "attempts", "_ledger", "_row", "_result", "_check_delay")

    def __init__(self, ledger: Ledger, row: int, result: BatchResult, check_delay: Callable) -> None:
        self.timestamp = ledger.timestamp[row]
        self.body = ledger.body(row)
        self.attempts = int(ledger.failed[row]) + 1
        self._ledger = ledger
        self._row = row
        self._result = result
        self._check_delay = check_delay

    @property
    def id(self) -> str:
        """The message's id (32 hex digits; the same on every attempt and on a DLQ)."""
        return self._ledger.id(self._row)

    def ack(self) -> None:
        """Acknowledge this message: it will not be redelivered."""
        r = self._result
        if r.ack_all:
            return
        if r.retry_all:
            r.warnings.append(f"ack() on message {self.id} after retry_all() has no effect")
        elif self._row in r.retries:
            r.warnings.append(f"ack() on message {self.id} after retry() has no effect")
        else:
            r.explicit_acks.add(self._row)

    def retry(self, delay_seconds: float | None = None) -> None:
        """Ask for this message to be redelivered, after ``delay_seconds`` if given
        (truncated to whole seconds, as workerd does)."""
        # workerd converts the argument before the call's own checks, so a bad one throws first
        delay = None if delay_seconds is None else self._check_delay(
            delay_seconds, "message.retry: delay_seconds", retry=True)
        r = self._result
        if r.ack_all:
            r.warnings.append(f"retry() on message {self.id} after ack_all() has no effect")
        elif self._row in r.explicit_acks:
            r.warnings.append(f"retry() on message {self.id} after ack() has no effect")
        else:
            r.retries[self._row] = delay      # kj's upsert: replaces an earlier retry(), delay and all

    def __repr__(self) -> str:
        return f"Message(id={self.id[:8]}…, attempts={self.attempts}, body={self.body!r:.60})"


class MessageBatch:
    """The batch a consumer handler receives: ``queue``, ``messages``, ``metadata``."""

    __slots__ = ("queue", "messages", "metadata", "_result", "_check_delay")

    def __init__(self, queue: str, messages: list[Message], metadata: dict,
                 result: BatchResult, check_delay: Callable) -> None:
        self.queue = queue
        self.messages = messages
        self.metadata = metadata
        self._result = result
        self._check_delay = check_delay

    def ack_all(self) -> None:
        """Acknowledge every message (no effect after ``retry_all()``)."""
        r = self._result
        if r.retry_all:
            r.warnings.append("ack_all() after retry_all() has no effect")
        else:
            r.ack_all = True

    def retry_all(self, delay_seconds: float | None = None) -> None:
        """Redeliver every message, after ``delay_seconds`` if given (no effect after
        ``ack_all()``; a later ``retry_all()`` without a delay keeps this one's)."""
        delay = None if delay_seconds is None else self._check_delay(
            delay_seconds, "batch.retry_all: delay_seconds", retry=True)
        r = self._result
        if r.ack_all:
            r.warnings.append("retry_all() after ack_all() has no effect")
            return
        r.retry_all = True
        if delay is not None:
            r.retry_all_delay = delay

    def __len__(self) -> int:
        return len(self.messages)

    def __repr__(self) -> str:
        return f"<MessageBatch {self.queue} × {len(self.messages)}>"


# ---------------------------------------------------------------------------- batching


class SingleFlush:
    """miniflare's ``ensurePendingFlush``: at most one pending flush per queue.

    A flush is scheduled immediately when the buffer holds a full batch, else after
    ``max_batch_timeout``. It stays pending until its handler returns. If it came from a
    timeout and the buffer fills meanwhile, an immediate flush is scheduled as well, so
    two batches can run at once, exactly as in ``wrangler dev``.
    """

    __slots__ = ("pending", "immediate")
    times_out_from_arrival = False     # it must see each first arrival (see Queue.rewake)

    def __init__(self) -> None:
        self.pending: list | None = None
        self.immediate = False

    def landed(self, queue: Queue) -> None:
        has_space = len(queue.buffer) < queue.settings.max_batch_size
        clock = queue.runtime.clock
        if self.pending is not None:
            if self.immediate or has_space:
                return
            clock.cancel(self.pending)
        delay = queue.settings.max_batch_timeout if has_space else 0.0
        self.pending = clock.call_later(delay, self._fire, queue)
        self.immediate = delay == 0

    def _fire(self, queue: Queue) -> None:
        queue.absorb()
        if len(queue.buffer) >= queue.settings.max_batch_size:
            self.immediate = True   # an arrival now filled the batch: as if it came first
        queue.flush()
        queue.rewake()

    def finished(self, queue: Queue) -> None:
        self.pending = None
        if queue.buffer:
            self.landed(queue)


class ConcurrentFlush:
    """Production: up to ``queue.concurrency`` batches of a queue run at once (the
    autoscaler's level, or every ``max_concurrency`` slot without autoscaling).

    A full batch starts as soon as a consumer slot is free; a partial batch starts when
    ``max_batch_timeout`` has passed since it began waiting (or when a slot frees after that).
    """

    __slots__ = ("running", "timer", "due")
    times_out_from_arrival = True      # it can start the timeout as of an arrival seen later

    def __init__(self) -> None:
        self.running = 0
        self.timer: list | None = None
        self.due = False

    def landed(self, queue: Queue) -> None:
        settings, buffer, clock, scaler = queue.settings, queue.buffer, queue.runtime.clock, queue.scaler
        since, queue.waiting_since = queue.waiting_since, None     # queue.take_waiting_since()
        if since is not None and self.timer is None and since + settings.max_batch_timeout <= clock.now:
            self.due = True                       # the timeout begun by an arrival absorbed now
        # the cap is queue.concurrency: the autoscaler's level (read each time), or every slot
        while buffer and self.running < (settings.max_concurrency if scaler is None else scaler.level) and (
                self.due or len(buffer) >= settings.max_batch_size):
            self.due, since = False, None
            if self.timer is not None:
                clock.cancel(self.timer)
                self.timer = None
            self.running += 1
            queue.flush()
        if not buffer:
            self.due = False
        elif self.timer is None and not self.due:
            start = clock.now if since is None else since
            self.timer = clock.call_at(start + settings.max_batch_timeout, self._expire, queue)

    def _expire(self, queue: Queue) -> None:
        self.timer, self.due = None, True
        queue.absorb()
        self.landed(queue)
        queue.rewake()

    def finished(self, queue: Queue) -> None:
        self.running -= 1
        self.landed(queue)


class Scaler:
    """A production queue's consumer autoscaler: :class:`~cdpkit.runtime.semantics.Autoscaling`
    applied after each batch (never while one runs). ``levels`` keeps (time, consumers) at
    every change, from the start."""

    __slots__ = ("policy", "cap", "level", "levels", "rate", "seen", "arrived", "per_message",
                 "failed_share", "_k", "_window", "_drain", "_up", "_down")

    def __init__(self, policy: Autoscaling, cap: int) -> None:
        self.policy, self.cap = policy, cap
        # the policy's numbers, read once (it is frozen): decide runs after every batch
        self._k = 1.0 / policy.memory    # the averages' weight of a new batch
        self._window, self._drain = policy.rate_window, policy.drain_seconds
        self._up, self._down = policy.step_up, policy.step_down
        self.level = min(policy.start, cap)
        self.levels: list[tuple[float, int]] = [(0.0, self.level)]
        self.rate = 0.0                  # messages landing per second (averaged)
        self.seen, self.arrived = 0.0, 0     # when the rate was last updated, arrivals then
        self.per_message: float | None = None    # seconds a consumer spends per message
        self.failed_share = 0.0

    def decide(self, queue: Queue, failed: bool, size: int, seconds: float, now: float | None = None) -> None:
        """After a batch of ``size`` messages that took ``seconds`` (ending ``now``, default
        the clock's): the new level."""
        # after every batch: each value is read once and the arithmetic is exactly as written
        # (same operations, same order: results are compared bit for bit, bench/same_results.py)
        if now is None:
            now = queue.runtime.clock.now
        dt = now - self.seen
        weight = -_expm1(-dt / self._window)    # time-weighted average of the landing rate
        if weight > 0:     # weight / dt, not count / dt: finite however close batches end
            arrived, rate = queue.arrived, self.rate
            self.rate = rate + (weight / dt * (arrived - self.arrived) - weight * rate)
            self.seen, self.arrived = now, arrived
        k = self._k
        sample = seconds / (size if size > 1 else 1)      # max(size, 1)
        per_message = self.per_message
        self.per_message = per_message = sample if per_message is None else per_message + k * (sample - per_message)
        failed_share = self.failed_share
        self.failed_share = failed_share = failed_share + k * (failed - failed_share)
        need = (self.rate + len(queue.buffer) / self._drain) * per_message * (1.0 - failed_share)
        # rounded up: enough consumers for the need (rounding 1.2 down left one consumer short
        # of the inflow, holding a standing backlog); the epsilon absorbs float noise at whole numbers
        target = _ceil(need - 1e-9)
        level = self.level
        if target == level:                 # the usual case: the level holds (it is in 1..cap)
            return
        if target > self.cap:               # max(1, min(cap, target)), without two calls
            target = self.cap
        if target < 1:
            target = 1
        if target > level:
            level = min(target, level + self._up)
        elif target < level:
            level = max(target, level - self._down)
        if level != self.level:
            self.level = level
            self.levels.append((now, level))


# ---------------------------------------------------------------------------- the broker


class Inflow:
    """Arrivals known in advance (a workload's send times, sorted), absorbed into the
    buffer by index whenever the queue looks at it, instead of one event per message.

    ``make(lo, hi)`` returns the ledger rows of arrivals ``lo..hi-1``. The queue only wakes
    up when the flusher could decide something: at the arrival that fills a batch, and at
    the first arrival into an empty buffer, or, in production (where that arrival only
    starts the batch timeout, which the flusher can start as of the arrival when it next
    looks: :meth:`Queue.take_waiting_since`), when that timeout expires.
    """

    __slots__ = ("times", "make", "next", "wake", "wake_time")

    def __init__(self, times: list[float], make: Callable[[int, int], Sequence[int]]) -> None:
        self.times = times
        self.make = make
        self.next = 0
        self.wake: list | None = None
        self.wake_time: float | None = None



def wall_time_error(queue: str, seconds: float, wall: float) -> LimitError:
    """What a consumer invocation that ran ``seconds`` past the ``wall`` time limit fails with."""
    return LimitError(f"queue {queue!r}: consumer invocation ran {seconds:g} s; allowed: at most "
                      f"{wall:g} s of wall time per invocation ({DOCS} §3)")


class Queue:
    """One queue: its buffer, its consumer and the delivery algorithm."""

    def __init__(self, runtime: Runtime, name: str, settings: ConsumerSettings,
                 delivery_delay: int | None = None, retention: float | None = None) -> None:
        self.runtime = runtime
        self.name = name
        self.declared = settings                  # as given (for export and repr)
        self.settings = settings.resolved(runtime.semantics)
        self.delivery_delay = delivery_delay
        self.retention = runtime.semantics.retention_for(retention, f"queue {name!r}")
        self.consumer: Any = None                 # object with .start(queue, batch_id, rows, done)
        self.ledger = runtime.ledger
        self.buffer: deque[int] = deque()         # ledger rows, in arrival order
        self.backlog_bytes: int | None = 0        # None: not kept (no consumer reads metadata)
        self.landing = 0                          # messages on their way in (delay/retry timers)
        self.running = 0                          # batches whose handler has not returned
        self.batches = 0
        sem = runtime.semantics
        self.flusher = ConcurrentFlush() if sem.concurrent_consumers else SingleFlush()
        self.scaler = Scaler(sem.autoscaling, self.settings.max_concurrency) if (
            sem.concurrent_consumers and sem.autoscaling is not None) else None
        self.arrived = 0                          # messages put in the buffer (the scaler's rate)
        self.sends: dict[int, int] = {}           # sends per rate window (the throughput limit)
        # the throughput limit, decided once: messages per rate window (None: no limit)
        self._rate_window = sem.queue_rate_window
        self._per_window = None if sem.queue_messages_per_second is None else int(
            sem.queue_messages_per_second * sem.queue_rate_window)
        self._wall = sem.consumer_wall_seconds   # None: no limit on a consumer invocation
        self.inflow: Inflow | None = None
        self.waiting_since: float | None = None   # see take_waiting_since
        self.held: deque[int] | None = None       # delivery paused: messages wait here instead

    @property
    def concurrency(self) -> int:
        """Batches that may run at once: the autoscaler's level, else ``max_concurrency``."""
        return self.settings.max_concurrency if self.scaler is None else self.scaler.level

    @property
    def consumers(self) -> int:
        """Consumers the queue runs now (1 under ``local``: one pending flush; a pull
        consumer's: its clients' polling loops)."""
        loops = getattr(self.consumer, "loops", None)
        if loops is not None:
            return loops
        return self.concurrency if self.runtime.semantics.concurrent_consumers else 1

    # -- platform limits on sends ------------------------------------------------------
    def admit(self, count: int, nbytes: int, where: str) -> None:
        """A producer's send of ``count`` messages (``nbytes``) now, or the platform's error:
        queues/platform/limits/: "5,000 messages per second" per queue (send() throws
        "Too Many Requests"), and a "25 GB" backlog ("Storage Limit Exceeded")."""
        sem = self.runtime.semantics
        limit = sem.queue_backlog_bytes
        if limit is not None and self.backlog_bytes is not None and self.backlog_bytes + nbytes > limit:
            raise LimitError(f"{where} to queue {self.name!r}: Storage Limit Exceeded: the backlog would "
                             f"hold {self.backlog_bytes + nbytes:,} bytes; allowed: at most {limit:,.0f} "
                             f"bytes (25 GB) per queue ({DOCS} §3)")
        if sem.queue_messages_per_second is not None and self.allowed_now(count) < count:
            window = sem.queue_rate_window
            raise LimitError(f"{where} to queue {self.name!r}: Too Many Requests: "
                             f"{self.sends[int(self.runtime.clock.now // window)] + count:,} messages "
                             f"in {window:g} s; allowed: at most {sem.queue_messages_per_second:,.0f} "
                             f"messages per second per queue (shard across queues; {DOCS} §3)")
        self.count_sends(count)

    def allowed_now(self, count: int) -> int:
        """How many of ``count`` messages sent now fit in this rate window."""
        if self._per_window is None:
            return count
        window = int(self.runtime.clock.now // self._rate_window)
        room = self._per_window - self.sends.setdefault(window, 0)
        return max(0, min(count, room))

    def count_sends(self, count: int) -> None:
        if self._per_window is not None:
            window = int(self.runtime.clock.now // self._rate_window)
            self.sends[window] = self.sends.get(window, 0) + count

    def reject(self, rows: Sequence[int], when: Sequence[float] | float, why: str) -> None:
        """Sends the producer's call threw on: ledger outcome ``rejected``, never in the queue."""
        ledger = self.ledger
        times = [when] * len(rows) if isinstance(when, (int, float)) else when
        for row, t in zip(rows, times):
            ledger.finish(row, "rejected", t, why)

    def admit_arrivals(self, times: np.ndarray, rows: Sequence[int]) -> tuple[np.ndarray, Sequence[int]]:
        """Arrivals known in advance (simulate's sources, ``times`` sorted), counted against
        the throughput limit by their send times; the excess is rejected. Returns the
        admitted ones (times, rows)."""
        sem = self.runtime.semantics
        if sem.queue_messages_per_second is None or not len(times):
            return times, rows
        room = int(sem.queue_messages_per_second * sem.queue_rate_window)
        windows = np.floor(times / sem.queue_rate_window).astype(np.int64)
        firsts = np.flatnonzero(np.r_[True, windows[1:] != windows[:-1]])     # (times are sorted)
        counts = np.diff(np.r_[firsts, len(windows)])       # arrivals per window
        if counts.max() > room:             # each window's arrivals past the room are rejected
            keep = np.arange(len(windows)) - np.repeat(firsts, counts) < room
            rows_array = np.asarray(rows, dtype=np.int64)
            out = np.flatnonzero(~keep)
            self.reject(rows_array[out].tolist(), times[out].tolist(),
                        f"Too Many Requests: over {sem.queue_messages_per_second:,.0f} messages per second")
            times, rows = times[keep], rows_array[keep].tolist()
            counts = np.minimum(counts, room)
        for w, c in zip(windows[firsts].tolist(), counts.tolist()):
            if c:
                self.sends[w] = self.sends.get(w, 0) + c
        return times, rows

    # -- arrivals known in advance -------------------------------------------------------
    def attach_inflow(self, times: list[float], make: Callable[[int, int], Sequence[int]]) -> None:
        """Feed this queue from sorted arrival ``times`` (see :class:`Inflow`)."""
        self.inflow = Inflow(times, make)
        self.rewake()

    def absorb(self) -> None:
        """Take in every known arrival up to now (they precede anything landing now)."""
        inflow = self.inflow
        if inflow is None:
            return
        lo, times, now = inflow.next, inflow.times, self.runtime.clock.now
        probe = lo + 32            # a wake-up takes in a few arrivals: search near lo first
        hi = bisect_right(times, now, lo, probe) if probe < len(times) and times[probe] > now else (
            bisect_right(times, now, lo))
        if hi > lo:
            was_empty = not self.buffer
            inflow.next = hi
            self._put(inflow.make(lo, hi))
            if was_empty and self.buffer and self.flusher.times_out_from_arrival:
                self.waiting_since = inflow.times[lo]

    def take_waiting_since(self) -> float | None:
        """When the buffer became non-empty, if that was an arrival absorbed since the
        flusher last looked (so the batch timeout began then, not now); else None."""
        since, self.waiting_since = self.waiting_since, None
        return since

    def rewake(self) -> None:
        """Schedule the next wake-up: the arrival that starts or fills a batch."""
        inflow = self.inflow
        if inflow is None:
            return
        times, i, n = inflow.times, inflow.next, len(self.buffer)
        size = self.settings.max_batch_size
        j = i + size - n - 1                  # the arrival that fills the batch
        target = times[j] if n < size and j < len(times) else None
        if n == 0 and i < len(times):         # or the first one, or the timeout it begins
            first = times[i]
            if self.flusher.times_out_from_arrival:
                first += self.settings.max_batch_timeout
            target = first if target is None else min(target, first)
        if target != inflow.wake_time:
            if inflow.wake is not None:
                self.runtime.clock.cancel(inflow.wake)
            inflow.wake = None if target is None else self.runtime.clock.call_at(target, self.land, ())
            inflow.wake_time = target

    # -- arriving ----------------------------------------------------------------------
    def enqueue(self, rows: Sequence[int], delay: float) -> None:
        """Sent ``rows`` (in the ledger already) land in the buffer after ``delay``; what is
        over the throughput limit is rejected (spec pipelines' sends; a Producer checks first
        and throws instead)."""
        per_window, clock, n = self._per_window, self.runtime.clock, len(rows)
        if per_window is not None:     # allowed_now and count_sends, in one look at the window
            window, sends = int(clock.now // self._rate_window), self.sends
            sent = sends.get(window, 0)
            if sent + n > per_window:  # the excess is rejected (the usual case fits: no min/max calls)
                fits = per_window - sent if per_window > sent else 0
                self.reject(rows[fits:], clock.now, "Too Many Requests: over "
                            f"{self.runtime.semantics.queue_messages_per_second:,.0f} messages per second")
                rows, n = rows[:fits], fits
            sends[window] = sent + n
            if not n:
                return
        self.landing += n                         # _enqueue, inlined
        clock.call_later(delay, self._land, rows)

    def _enqueue(self, rows: Sequence[int], delay: float) -> None:
        """Land ledger ``rows`` in the buffer after ``delay`` (always through the timer queue;
        messages sent together land together, in order)."""
        self.landing += len(rows)
        self.runtime.clock.call_later(delay, self._land, rows)

    def _land(self, rows: Sequence[int]) -> None:
        self.landing -= len(rows)
        self.land(rows)

    def land(self, rows: Sequence[int]) -> None:
        """Put ledger ``rows`` in the buffer now, and let the flusher decide."""
        if self.inflow is not None:
            self.absorb()
        if rows:                                  # a wake-up lands nothing of its own
            self._put(rows)
        if self.consumer is not None:
            self.flusher.landed(self)
        if self.inflow is not None:
            self.rewake()

    def _put(self, rows: Sequence[int]) -> None:
        ledger = self.ledger
        if self.consumer is None and self.runtime.semantics.discard_without_consumer:
            # miniflare's broker answers sends to a queue without a consumer and forgets them
            for row in rows:
                ledger.finish(row, "dropped", self.runtime.clock.now, "no consumer (wrangler dev discards)")
            return
        if self.backlog_bytes is not None:        # (stored, delivered or not)
            self.backlog_bytes += sum(map(ledger.bytes.__getitem__, rows))
        if self.held is not None:                 # delivery paused: kept, not delivered
            self.held.extend(rows)
            return
        self.buffer.extend(rows)
        self.arrived += len(rows)

    # -- delivering --------------------------------------------------------------------
    def metadata(self) -> dict:
        """A batch's ``metadata`` as the consumer sees it when the batch is cut (now)."""
        buffer = self.buffer
        backlog_bytes = self.backlog_bytes
        if backlog_bytes is None:
            backlog_bytes = sum(map(self.ledger.bytes.__getitem__, buffer))
        return {"metrics": {"backlog_count": len(buffer), "backlog_bytes": backlog_bytes,
                            "oldest_message_timestamp": self.ledger.timestamp[buffer[0]] if buffer else None}}

    def flush(self, size: int | None = None) -> None:
        """Cut the next batch (``size`` messages at most, default ``max_batch_size``: a pull
        asks for its own) from the buffer and hand it to the consumer. (The flusher calls it
        after known arrivals up to now are absorbed; the caller wakes it again.)"""
        buffer, now, ledger = self.buffer, self.runtime.clock.now, self.ledger
        size = self.settings.max_batch_size if size is None else size
        sizes, timestamp = ledger.bytes, ledger.timestamp
        if len(buffer) <= size:                   # all of it (the usual case): no pop per row
            batch = list(buffer)
            buffer.clear()
        else:
            popleft = buffer.popleft
            batch = [popleft() for _ in range(size)]
        taken = batch
        cutoff = -1.0 if self.retention is None else now - self.retention
        expired = cutoff > 0 and batch and min(map(timestamp.__getitem__, batch)) < cutoff   # times are >= 0
        if expired:
            batch, taken = self._drop_expired(batch, cutoff, size)
        if self.backlog_bytes is not None:
            self.backlog_bytes -= sum(map(sizes.__getitem__, taken))
        if not batch:
            self.flusher.finished(self)
            return
        ledger.delivered(batch, now)
        self.batches += 1
        self.running += 1
        batch_id = self.runtime.next_batch_id()
        self.runtime.recorder.batch_started(batch_id, self.name, now, batch, ledger)
        self.consumer.start(self, batch_id, batch,
                            lambda ok, result: self._batch_done(batch_id, batch, ok, result, now))

    def _drop_expired(self, batch: list[int], cutoff: float, size: int) -> tuple[list[int], list[int]]:
        """Drop the messages older than the retention period (``timestamp < cutoff``) and
        fill the batch from the buffer again; return it and every row taken from the buffer."""
        ledger, buffer, now = self.ledger, self.buffer, self.runtime.clock.now
        kept, pending, taken = [], list(batch), list(batch)
        while pending or (buffer and len(kept) < size):
            if pending:
                row = pending.pop(0)
            else:
                row = buffer.popleft()
                taken.append(row)
            if ledger.timestamp[row] < cutoff:
                ledger.finish(row, "dropped", now, "retention period expired")
            else:
                kept.append(row)
        return kept, taken

    def check_delay(self, value: object, field: str, retry: bool = False) -> int:
        """A ``delay_seconds`` as the runtime uses it: a JS Number truncated to an int
        (:func:`~cdpkit.runtime.limits.js_int`), in 0..max for a send. A retry delay is not
        checked by miniflare's broker (it goes to ``setTimeout``: a negative one is 0), so
        under ``local`` it is only clamped; ``production`` holds it to the documented range."""
        delay = js_int(value, field)
        high = self.runtime.semantics.max_delay_seconds
        if retry and self.runtime.semantics.name == "local":
            return max(delay, 0)
        if not 0 <= delay <= high:
            raise LimitError(f"{field}={value!r} is not allowed; allowed: a number of seconds from 0 "
                             f"to {high} (fractions are truncated)")
        return delay

    def _batch_done(self, batch_id: int, batch: list[int], ok: bool, result: BatchResult,
                    started: float) -> None:
        """Apply the handler's decisions: ack, retry after a delay, dead-letter or drop."""
        rt, settings, ledger = self.runtime, self.settings, self.ledger
        now = rt.clock.now
        self.running -= 1
        wall = self._wall
        if wall is not None and ok and now - started > wall:
            # queues/platform/limits/: consumer "wall time 15 minutes"; the platform ends the
            # invocation (simplification: counted as failed when the handler returns)
            ok = False
            rt.recorder.error(now, self.name, batch_id, wall_time_error(self.name, now - started, wall))
        retry_all = result.retry_all or not ok
        dead: list[int] = []
        if not result.retries and not retry_all:   # the common case: every message acked
            ledger.finish_all(batch, ACKED, now)
            dispositions = ["acked"] * len(batch)
        else:
            acks_survive, decide = rt.semantics.acks_survive_batch_retry, result.retried
            max_attempts = settings.max_retries + 1
            retried: dict[int, list[int]] = {}    # delay -> rows landing together
            dispositions = []
            failed = ledger.failed
            for row in batch:
                again, delay = decide(row, retry_all, acks_survive)
                if not again:
                    ledger.finish(row, "acked", now)
                    dispositions.append("acked")
                    continue
                delay = _default(delay, settings.retry_delay)
                failed[row] += 1
                if failed[row] < max_attempts:
                    retried.setdefault(delay, []).append(row)
                    dispositions.append("retried")
                elif settings.dead_letter_queue is not None:
                    ledger.finish(row, "dead_lettered", now)
                    dead.append(row)
                    dispositions.append("dead_lettered")
                else:
                    ledger.finish(row, "dropped", now, f"failed {max_attempts} attempts, no dead letter queue")
                    dispositions.append("dropped")
            for delay, rows in retried.items():
                self.landing += len(rows)
                rt.clock.call_later(delay, self._land, rows)
        rt.recorder.batch_finished(batch_id, now, batch, dispositions, ok, result)
        if self.inflow is not None:
            self.absorb()
        scaler = self.scaler
        if scaler is not None:        # "After processing a batch ... check ... concurrent consumers"
            scaler.decide(self, not ok, len(batch), now - started, now)
        self.flusher.finished(self)
        if self.inflow is not None:
            self.rewake()
        if dead:
            rt.queue_named(settings.dead_letter_queue).receive_dead_letters(dead)

    def receive_dead_letters(self, rows: Sequence[int]) -> None:
        """Dead letters arrive with their id, body and timestamp; attempts start again."""
        new = self.ledger.copy_to(self.name, rows, self.runtime.clock.now)
        self._enqueue(new, _default(self.delivery_delay, 0))

    # -- pause, resume, purge (the Queues API's operations) ------------------------------
    def pause_delivery(self) -> None:
        """Stop delivering: messages keep arriving and wait (batches running now finish)."""
        if self.held is None:
            self.absorb()
            self.held, self.buffer = self.buffer, deque()

    def resume_delivery(self) -> None:
        """Deliver again, oldest first (the retention check drops what has expired)."""
        if self.held is not None:
            self.absorb()
            held, self.held = self.held, None
            held.extend(self.buffer)
            self.buffer = held
            if self.backlog_bytes is not None:
                self.backlog_bytes = sum(map(self.ledger.bytes.__getitem__, held))
            self.land(())

    def purge(self) -> int:
        """Delete every message waiting for delivery (outcome ``dropped``, reason
        "purged"); returns how many. Messages in a running batch or on a delay timer stay."""
        self.absorb()
        now, ledger = self.runtime.clock.now, self.ledger
        waiting = [*self.buffer, *(self.held or ())]
        for row in waiting:
            ledger.finish(row, "dropped", now, "purged")
        self.buffer.clear()
        if self.held is not None:
            self.held.clear()
        if self.backlog_bytes is not None:
            self.backlog_bytes = 0
        return len(waiting)

    # -- inspecting --------------------------------------------------------------------
    @property
    def scheduled(self) -> int:
        """Known arrivals (in the ledger already) whose time has not come yet."""
        return 0 if self.inflow is None else len(self.inflow.times) - self.inflow.next

    @property
    def backlog(self) -> int:
        """Messages waiting in the buffer (landed, not yet delivered; paused ones too)."""
        return len(self.buffer) + len(self.held or ())

    def __repr__(self) -> str:
        given = ", ".join(f"{k}={v!r}" for k, v in self.declared.given().items())
        consumer = "consumer" if self.consumer is not None else "no consumer"
        return f"<Queue {self.name!r} {consumer}{', ' + given if given else ''} backlog={self.backlog}>"


# ---------------------------------------------------------------------------- producing


class Producer:
    """A queue producer binding (``env.MY_QUEUE``): ``send`` and ``send_batch``.

    Both return an already-completed I/O future, so they can be awaited (as in Workers) or
    called plainly from outside a handler. Awaiting one is I/O to the Queues service, not the
    object's own storage: inside a Durable Object it lets queued requests in (workerd's
    ``IoContext::awaitIo``), like KV and D1 calls.
    """

    __slots__ = ("_runtime", "_queue_name", "binding")

    def __init__(self, runtime: Runtime, queue_name: str, binding: str) -> None:
        self._runtime = runtime
        self._queue_name = queue_name
        self.binding = binding

    @property
    def queue(self) -> Queue:
        return self._runtime.queue_named(self._queue_name)

    def send(self, body: Any, *, delay_seconds: float | None = None,
             content_type: str | None = None) -> Future:
        """Send one message. Example: ``await env.JOBS.send({"id": 1}, delay_seconds=30)``."""
        queue = self.queue
        content_type, payload, size, delay = self._encode(queue, body, delay_seconds, content_type, "send")
        queue.admit(1, size, "send")
        queue._enqueue(self._add(queue, content_type, [payload], [size]), delay)
        return io_later(self._runtime.clock, 0.0)

    def send_batch(self, messages: Iterable[dict], *, delay_seconds: float | None = None) -> Future:
        """Send up to 100 messages at once: ``[{"body": ..., "delay_seconds": 5}, ...]``."""
        queue, sem = self.queue, self._runtime.semantics
        messages = list(messages)
        if len(messages) > sem.max_batch_messages:
            raise LimitError(f"send_batch: {len(messages)} messages; allowed: at most "
                             f"{sem.max_batch_messages} messages per batch")
        if delay_seconds is not None:      # sent as a header: checked even if every message has its own
            delay_seconds = queue.check_delay(delay_seconds, "send_batch: delay_seconds")
        prepared, total = [], 0
        for i, item in enumerate(messages):
            if not isinstance(item, dict) or "body" not in item:
                raise LimitError(f"send_batch: messages[{i}]={item!r:.80} is not allowed; allowed: "
                                 "a dict with 'body' and optional 'delay_seconds', 'content_type'")
            unknown = set(item) - {"body", "delay_seconds", "content_type"}
            if unknown:
                raise LimitError(f"send_batch: messages[{i}] has unknown keys {sorted(unknown)}; "
                                 "allowed: 'body', 'delay_seconds', 'content_type'")
            own_delay = item.get("delay_seconds")
            if own_delay is None:          # JS undefined: the call's delay
                own_delay = delay_seconds
            prepared.append(self._encode(queue, item["body"], own_delay, item.get("content_type"),
                                         f"send_batch: messages[{i}]"))
            total += prepared[-1][2]
        if total > sem.max_batch_bytes:
            raise LimitError(f"send_batch: {total} bytes in total; allowed: at most "
                             f"{sem.max_batch_bytes} bytes per batch")
        queue.admit(len(prepared), total, "send_batch")
        by_delay: dict[int, list[tuple]] = {}     # messages with the same delay land together
        for encoded in prepared:
            by_delay.setdefault(encoded[3], []).append(encoded)
        for delay, group in by_delay.items():
            rows: list[int] = []
            for content_type, same_type in groupby(group, key=itemgetter(0)):
                same_type = list(same_type)
                rows.extend(self._add(queue, content_type, [m[1] for m in same_type], [m[2] for m in same_type]))
            queue._enqueue(rows, delay)
        return io_later(self._runtime.clock, 0.0)

    def _encode(self, queue: Queue, body: Any, delay_seconds: float | None,
                content_type: str | None, where: str) -> tuple[str, Any, int, int]:
        rt = self._runtime
        if delay_seconds is not None:
            delay_seconds = queue.check_delay(delay_seconds, f"{where}: delay_seconds")
        ct = "json" if content_type is None else content_type
        try:
            payload, size = encode_body(body, ct, rt.semantics.max_message_bytes)
        except LimitError as exc:
            raise LimitError(f"{where} to queue {queue.name!r}: {exc}") from None
        return ct, payload, size, _default(delay_seconds, _default(queue.delivery_delay, 0))

    def _add(self, queue: Queue, content_type: str, payloads: list, sizes: list[int]) -> range:
        sent = [self._runtime.clock.now] * len(payloads)
        return self._runtime.ledger.add(queue.name, content_type, payloads, sizes, sent, sent)

    def __repr__(self) -> str:
        return f"<Producer {self.binding} -> {self._queue_name}>"
