"""Virtual time: an event loop on a heap and a trampoline for ``async def`` code.

The loop is SimPy-sized on purpose. Events are plain lists ``[time, seq, fn, args]``
ordered by ``(time, seq)``, so two events at the same virtual time run in the order
they were scheduled: deterministic, like ``setTimeout`` with equal delays.

User code is ordinary ``async def``. We drive coroutines ourselves with
``coro.send`` (no asyncio), so the runtime works inside a live Jupyter kernel whose
asyncio loop is already running. A coroutine may await:

* a :class:`Future` (resumed when it completes, one scheduled step later),
* :func:`sleep` ``(seconds)`` (resumed after that much virtual time),
* any other awaitable built from these (e.g. another coroutine).

>>> clock = Clock()
>>> log = []
>>> async def hello(name, pause):
...     await sleep(pause)
...     log.append((clock.now, name))
>>> _ = clock.spawn(hello("b", 2.0)); _ = clock.spawn(hello("a", 1.0))
>>> clock.run()
>>> log
[(1.0, 'a'), (2.0, 'b')]
"""

from __future__ import annotations

import heapq
import inspect
import itertools
import math
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any

from ..errors import CdpkitError

__all__ = ["Clock", "Future", "Gate", "Task", "gather", "sleep", "work", "TimeError", "Interrupted"]


class TimeError(CdpkitError):
    """Raised for a time that is not allowed: before now, or not a finite number."""


class Interrupted(RuntimeError):
    """What a task's awaiters see when it was stopped by KeyboardInterrupt, SystemExit or
    GeneratorExit (that exception itself stops the run, once)."""


def _bad_time(what: str, when: Any, now: float, more: str = "") -> TimeError:
    why = f"is before now={now:g}" if when < now else "is not a finite number"
    return TimeError(f"{what} {why}; allowed: a finite time >= now{more}")


class Future:
    """A value that arrives later. Await it from a task; it is done once.

    Callbacks added with :meth:`add_done_callback` run synchronously when the future
    completes (the trampoline turns them into scheduled steps itself).
    """

    __slots__ = ("done", "value", "error", "_callbacks")

    def __init__(self) -> None:
        self.done = False
        self.value: Any = None
        self.error: BaseException | None = None
        self._callbacks: list[Callable[[Future], None]] | None = None

    def set_result(self, value: Any = None) -> None:
        self._finish(value, None)

    def set_exception(self, error: BaseException) -> None:
        self._finish(None, error)

    def _finish(self, value: Any, error: BaseException | None) -> None:
        if self.done:
            raise RuntimeError("future already completed")
        self.done, self.value, self.error = True, value, error
        callbacks, self._callbacks = self._callbacks, None
        if callbacks:
            for callback in callbacks:
                callback(self)

    def add_done_callback(self, callback: Callable[[Future], None]) -> None:
        if self.done:
            callback(self)
        elif self._callbacks is None:
            self._callbacks = [callback]
        else:
            self._callbacks.append(callback)

    def result(self) -> Any:
        if not self.done:
            raise RuntimeError("future is not done yet")
        if self.error is not None:
            raise self.error
        return self.value

    def __await__(self):
        if not self.done:
            yield self
        if self.error is not None:
            raise self.error
        return self.value

    def __repr__(self) -> str:
        state = "pending" if not self.done else ("failed" if self.error else "done")
        return f"<{type(self).__name__} {state}>"


def completed(value: Any = None) -> Future:
    """A future that is already done (what a producer ``send`` returns)."""
    if value is None:
        return _DONE  # shared: a done future never changes
    future = Future()
    future.done, future.value = True, value
    return future


_DONE = Future()
_DONE.done = True


def resolve_later(clock: Clock, delay: float, value: Any = None,
                  error: BaseException | None = None) -> Future:
    """A future that completes after ``delay`` (an I/O call with latency); at once if 0."""
    future = Future()
    if delay <= 0 and error is None:
        future.done, future.value = True, value
    elif error is None:
        clock.call_later(delay, future.set_result, value)
    else:
        clock.call_later(delay, future.set_exception, error)
    return future


def gather(clock: Clock, *awaitables: Any) -> Future:
    """Like ``Promise.all``: a future of the list of results (the first error wins)."""
    tasks = [clock.spawn(a) if inspect.iscoroutine(a) else
             clock.spawn(_awaiting(a)) if isinstance(a, _Sleep) else a for a in awaitables]
    result = Future()
    remaining = [len(tasks)]
    if not tasks:
        result.set_result([])

    def one_done(future: Future) -> None:
        if result.done:
            return
        if future.error is not None:
            result.set_exception(future.error)
            return
        remaining[0] -= 1
        if remaining[0] == 0:
            result.set_result([t.value for t in tasks])

    for task in tasks:
        task.add_done_callback(one_done)
    return result


class _Sleep:
    """Awaitable that asks the trampoline to resume after ``delay`` virtual seconds.

    ``busy`` marks CPU work (and storage latency): a gated task keeps its gate through it.
    """

    __slots__ = ("delay", "busy")

    def __init__(self, delay: float, busy: bool = False) -> None:
        self.delay = delay
        self.busy = busy

    def __await__(self):
        yield self


async def _awaiting(awaitable: Any) -> Any:
    return await awaitable


def sleep(seconds: float) -> _Sleep:
    """Awaitable pause of ``seconds`` of virtual time (``await sleep(1.5)``)."""
    if not 0 <= seconds < math.inf:  # also rejects NaN
        raise TimeError(f"sleep: seconds={seconds!r} is not allowed; use a finite number >= 0")
    return _Sleep(float(seconds))


def work(seconds: float) -> _Sleep:
    """Awaitable use of ``seconds`` of virtual CPU: like sleep, but it keeps a task's gate."""
    if not 0 <= seconds < math.inf:
        raise TimeError(f"work: seconds={seconds!r} is not allowed; use a finite number >= 0")
    return _Sleep(float(seconds), busy=True)


class Gate:
    """One-at-a-time execution for a group of tasks (a Durable Object's single thread).

    A gated task holds the gate while it computes (including ``work``) and gives it up
    while it waits for anything else (I/O, timers), re-entering in FIFO order after.
    """

    __slots__ = ("clock", "holder", "waiting")

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.holder: Task | None = None
        self.waiting: deque = deque()

    def enter(self, task: Task, value: Any = None, error: BaseException | None = None) -> None:
        """Run ``task``'s next step (with ``value``/``error``) as soon as the gate is free."""
        if self.holder is None:
            self.holder = task
            self.clock.call_later(0.0, task._step, value, error)
        else:
            self.waiting.append((task, value, error))

    def leave(self, task: Task) -> None:
        if self.holder is not task:
            raise RuntimeError(f"{task!r} left a gate held by {self.holder!r}")
        self.holder = None
        if self.waiting:
            nxt, value, error = self.waiting.popleft()
            self.holder = nxt
            self.clock.call_later(0.0, nxt._step, value, error)


class Task(Future):
    """A coroutine driven by the clock. Completes with the coroutine's return value.

    If it fails while nothing awaits it and ``surface`` is set (``rt.spawn`` sets it), the
    exception also propagates out of ``run``: a producer script that stopped silently would
    make every later figure wrong. KeyboardInterrupt, SystemExit and GeneratorExit always
    propagate (awaiters see :class:`Interrupted`).
    """

    __slots__ = ("clock", "coro", "name", "gate", "surface")

    def __init__(self, clock: Clock, coro: Coroutine, name: str = "",
                 gate: Gate | None = None) -> None:
        super().__init__()
        self.clock, self.coro, self.name, self.gate = clock, coro, name, gate
        self.surface = False

    def _step(self, value: Any = None, error: BaseException | None = None) -> None:
        try:
            if error is None:
                yielded = self.coro.send(value)
            else:
                yielded = self.coro.throw(error)
        except StopIteration as stop:
            if self.gate is not None:
                self.gate.leave(self)
            self.set_result(stop.value)
            return
        except Exception as exc:  # the task failed; whoever awaits it sees why
            if self.gate is not None:
                self.gate.leave(self)
            unawaited = self.surface and self._callbacks is None
            self.set_exception(exc)
            if unawaited:
                exc.add_note(f"(in task {self.name or self.coro.__qualname__!r} started with spawn, "
                             f"which nothing awaited; it failed at t={self.clock.now:g}s)")
                raise
            return
        except BaseException as exc:  # Ctrl-C, sys.exit(): stop the run, as in asyncio
            if self.gate is not None:
                self.gate.leave(self)
            self.set_exception(Interrupted(f"task {self.name or self.coro.__qualname__!r} was "
                                           f"stopped by {type(exc).__name__}"))
            raise
        gate = self.gate
        if type(yielded) is _Sleep:
            if gate is None or yielded.busy:
                self.clock.call_later(yielded.delay, self._step)
            else:
                gate.leave(self)
                self.clock.call_later(yielded.delay, gate.enter, self)
        elif isinstance(yielded, Future):
            if gate is not None:
                gate.leave(self)
            yielded.add_done_callback(self._wake)
        else:
            self.clock.call_later(
                0.0, self._step, None,
                TypeError(f"cdpkit tasks can only await cdpkit futures or sleeps, got {yielded!r} "
                          "(asyncio objects do not run in virtual time)"),
            )

    def _wake(self, future: Future) -> None:
        if self.gate is not None:
            self.gate.enter(self, future.value, future.error)
        else:
            self.clock.call_later(0.0, self._step, future.value, future.error)

    def __repr__(self) -> str:
        return f"<Task {self.name or self.coro.__qualname__} {'done' if self.done else 'pending'}>"


class Clock:
    """Virtual clock and event loop.

    ``call_later``/``call_at`` schedule plain callbacks; ``spawn`` starts a coroutine.
    ``run(until=t)`` processes every event with time <= t and leaves ``now == t``;
    ``run()`` runs until nothing is left to do.
    """

    __slots__ = ("now", "_heap", "next_seq", "events_processed", "_limit", "_watch", "_watch_every",
                 "_countdown")

    def __init__(self, start: float = 0.0) -> None:
        self.now = float(start)
        self._heap: list[list] = []
        # next_seq(): the next event's sequence number, as call_at takes it (a component that
        # keeps events of its own takes them too: see SpecActors); bound once, it is cheap
        self.next_seq: Callable[[], int] = itertools.count(1).__next__
        self.events_processed = 0
        self._limit = float("inf")     # run(until=...) while it runs
        self._watch: Callable[[], None] | None = None
        self._watch_every = self._countdown = 0

    def set_watch(self, watch: Callable[[], None] | None, every: int = 4096) -> None:
        """Call ``watch()`` after every ``every`` events (it may raise to stop the run).
        Checking in chunks keeps the per-event loop as it is (see :class:`BudgetWatch`)."""
        self._watch, self._watch_every, self._countdown = watch, every, every

    def call_at(self, when: float, fn: Callable, *args: Any) -> list:
        """Run ``fn(*args)`` at virtual time ``when``. Returns a handle for :meth:`cancel`."""
        if not self.now <= when < math.inf:     # also NaN, which would poison every later time
            raise _bad_time(f"call_at: when={when!r}", when, self.now)
        entry = [when, self.next_seq(), fn, args]
        heapq.heappush(self._heap, entry)
        return entry

    def call_later(self, delay: float, fn: Callable, *args: Any) -> list:
        """Run ``fn(*args)`` after ``delay`` virtual seconds (0 = after what is already due)."""
        entry = [self.now + delay, self.next_seq(), fn, args]
        heapq.heappush(self._heap, entry)
        return entry

    @staticmethod
    def cancel(entry: list) -> None:
        """Cancel a scheduled call (no effect if it already ran)."""
        entry[2] = None

    def spawn(self, coro: Coroutine, name: str = "", gate: Gate | None = None) -> Task:
        """Start a coroutine as a task; its first step runs now (or when ``gate`` is free)."""
        task = Task(self, coro, name, gate)
        if gate is None:
            self.call_later(0.0, task._step)
        else:
            gate.enter(task)
        return task

    def scheduled_tasks(self) -> list[Task]:
        """The tasks whose next step is scheduled (to begin, or to resume after a timer)."""
        return [entry[2].__self__ for entry in self._heap if getattr(entry[2], "__func__", None) is Task._step]

    def drop_scheduled_tasks(self) -> list[Task]:
        """Cancel the scheduled steps of every task (see :meth:`scheduled_tasks`) and return
        those tasks: the compiled engine ran what they would have done."""
        tasks = []
        for entry in self._heap:
            if getattr(entry[2], "__func__", None) is Task._step:
                tasks.append(entry[2].__self__)
                entry[2] = None
        return tasks

    def peek(self) -> float | None:
        """Time of the next live event, or None when idle."""
        heap = self._heap
        while heap and heap[0][2] is None:
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    # -- for a component that keeps events of its own (see SpecActors) --------------------
    def call_at_seq(self, when: float, seq: int, fn: Callable, *args: Any) -> list:
        """Like :meth:`call_at`, with a sequence number taken earlier from ``next_seq()``."""
        if when < self.now:
            raise TimeError(f"cannot schedule at t={when} before now={self.now}")
        entry = [when, seq, fn, args]
        heapq.heappush(self._heap, entry)
        return entry

    def head(self) -> tuple[float, float]:
        """The (time, sequence) before which no event in the queue runs within this
        ``run``: the first entry's, or the end of the run's. (A cancelled entry at the
        front counts: a safe answer.)"""
        heap, end = self._heap, (self._limit, math.inf)
        if heap and (heap[0][0], heap[0][1]) < end:
            return heap[0][0], heap[0][1]
        return end

    def run(self, until: float | None = None, max_events: int | None = None) -> None:
        """Process events in (time, sequence) order up to ``until`` (inclusive).

        Events run in chunks between calls of the watch (see :meth:`set_watch`), so the
        loop per event is only the heap and the counter.
        """
        if until is not None and not self.now <= until < math.inf:
            raise _bad_time(f"run: until={until!r}", until, self.now, ", or None to run until nothing is left to do")
        heap, pop = self._heap, heapq.heappop
        limit = float("inf") if until is None else until
        left = -1 if max_events is None else max_events     # events this call may still run
        watch = self._watch
        processed = 0
        self._limit = limit
        try:
            while True:
                stop = self._countdown if watch is not None else -1
                if left >= 0 and (stop < 0 or left < stop):
                    stop = left
                while heap and processed != stop:
                    entry = heap[0]
                    if entry[0] > limit:
                        break
                    pop(heap)
                    fn = entry[2]
                    if fn is None:
                        continue
                    self.now = entry[0]
                    processed += 1
                    fn(*entry[3])
                finished = processed != stop or left == processed
                self.events_processed += processed
                if left >= 0:
                    left -= processed
                if watch is not None:
                    self._countdown -= processed
                processed = 0
                if watch is not None and self._countdown == 0:
                    self._countdown = self._watch_every
                    watch()
                if finished:
                    break
        finally:
            self._limit = float("inf")
            self.events_processed += processed
            if watch is not None:
                self._countdown -= processed
        if until is not None and left != 0:
            self.now = float(until)

    def __len__(self) -> int:
        return sum(1 for entry in self._heap if entry[2] is not None)

    def __repr__(self) -> str:
        return f"<Clock now={self.now:g} pending={len(self)}>"
