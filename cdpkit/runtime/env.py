"""The ``env`` a handler receives, and the ``ctx`` (execution context) beside it."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from .clock import Clock, Future, Task, sleep, work
from .limits import check_binding_name

if TYPE_CHECKING:
    from .runtime import Runtime


class Env:
    """Bindings by name, like a Worker's ``env``: ``env.CDP_COMMAND_QUEUE.send(...)``.

    >>> env = Env()
    >>> env.bind("GREETING", "hello")
    >>> env.GREETING
    'hello'
    >>> env.MISSING
    Traceback (most recent call last):
    ...
    AttributeError: env has no binding 'MISSING'; bindings: GREETING
    """

    def __init__(self) -> None:
        object.__setattr__(self, "_bindings", {})

    def bind(self, name: str, value: Any) -> None:
        check_binding_name(name)
        bindings = self._bindings
        if name in bindings and bindings[name] is not value:
            raise ConfigError(f"binding {name!r} is already bound to {bindings[name]!r}; "
                              "allowed: one binding per name")
        bindings[name] = value

    def __getattr__(self, name: str) -> Any:
        try:
            return self._bindings[name]
        except KeyError:
            known = ", ".join(sorted(self._bindings)) or "(none)"
            raise AttributeError(f"env has no binding {name!r}; bindings: {known}") from None

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("env is read-only inside handlers; declare bindings on the Runtime")

    def __contains__(self, name: str) -> bool:
        return name in self._bindings

    def __dir__(self) -> list[str]:
        return sorted(self._bindings)

    def __repr__(self) -> str:
        return f"<Env {', '.join(sorted(self._bindings)) or '(empty)'}>"


class IoFuture(Future):
    """The result of a binding's I/O call (KV, D1): awaiting it always suspends, even at
    zero latency, so a Durable Object awaiting it lets its queued requests in. workerd's
    input gate stays locked only for the object's own storage; any other I/O opens it
    (``IoContext::awaitIo`` vs ``awaitIoWithInputLock``)."""

    __slots__ = ()

    def __await__(self):
        yield self
        if self.error is not None:
            raise self.error
        return self.value


def draw_latency(latency: float | Callable[[], float]) -> float:
    """One call's latency: ``latency`` seconds, or a draw of the function (simulate's stores
    draw each call's from the store's stream)."""
    return latency() if callable(latency) else latency


def io_later(clock: Clock, delay: float, value: Any = None, error: BaseException | None = None) -> IoFuture:
    """An :class:`IoFuture` with ``value`` (or failing with ``error``) after ``delay`` (done
    at once when 0, so ``.result()`` works outside handlers)."""
    future = IoFuture()
    if delay <= 0:
        future.done, future.value, future.error = True, value, error
    elif error is None:
        clock.call_later(delay, future.set_result, value)
    else:
        clock.call_later(delay, future.set_exception, error)
    return future


class Sink:
    """An outside endpoint (a webhook, an e-mail API: a ``fetch`` to another service): counts
    calls; each takes ``latency`` seconds (or a function drawing each call's) and, being I/O
    that is not the object's own storage, opens a Durable Object's input gate."""

    def __init__(self, clock: Clock, name: str, latency: float | Callable[[], float] = 0.0) -> None:
        self.clock, self.name, self.calls, self.latency = clock, name, 0, latency

    def call(self, latency: float | None = None) -> IoFuture:
        self.calls += 1
        return io_later(self.clock, draw_latency(self.latency) if latency is None else latency)

    def __repr__(self) -> str:
        return f"<Sink {self.name} calls={self.calls}>"


class ExecutionContext:
    """``ctx``: virtual CPU work, sleeping, and ``wait_until`` for background work.

    ``await ctx.work(0.002)`` spends 2 ms of virtual CPU time; ``await ctx.sleep(1)``
    waits a virtual second without using CPU (I/O, timers).
    """

    __slots__ = ("_runtime", "_background", "cpu_seconds")

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime
        self._background: list[Future] = []
        self.cpu_seconds = 0.0

    def work(self, seconds: float):
        """Consume ``seconds`` of virtual CPU time (awaitable)."""
        self.cpu_seconds += seconds
        return work(seconds)

    def sleep(self, seconds: float):
        """Wait ``seconds`` of virtual time (awaitable)."""
        return sleep(seconds)

    def gather(self, *awaitables: Any):
        """Run coroutines (or await futures) concurrently; their results in order, like
        ``Promise.all`` (the first error wins). The seed's parallel processing:
        ``await ctx.gather(*(process(m) for m in batch.messages))``."""
        return self._runtime.gather(*awaitables)

    def wait_until(self, awaitable: Awaitable) -> None:
        """Keep the invocation alive until ``awaitable`` finishes, like ``ctx.waitUntil``.

        As in workerd without the ``queue_consumer_no_wait_for_wait_until`` flag, a queue
        batch is reported only when these finish too, and a failure retries the batch.
        """
        if inspect.iscoroutine(awaitable):
            awaitable = self._runtime.clock.spawn(awaitable)
        if not isinstance(awaitable, Future):
            raise TypeError(f"wait_until needs a coroutine or a cdpkit future, got {awaitable!r}")
        self._background.append(awaitable)

    def settle(self, main: Task, then) -> None:
        """Call ``then(error)`` once ``main`` and every wait_until future are done."""
        pending = [main, *self._background]
        while pending and pending[0].done:
            pending.pop(0)
        if pending:
            pending[0].add_done_callback(lambda _f: self.settle(main, then))
            return
        failure = next((f.error for f in (main, *self._background) if f.error is not None), None)
        then(failure)
