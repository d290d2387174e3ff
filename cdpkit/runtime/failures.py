"""Handler failures made visible: the traceback of every exception a consumer handler raises
is kept (``rt.errors``), the first of each kind is shown as a warning at once, and a run that
had any ends with a count, the way ``wrangler dev`` prints every uncaught exception.

A *kind* is the queue, the exception type and the line of user code it came from: a
``KeyError`` raised by the same line for ten thousand messages is shown once.

>>> import warnings, cdpkit as cdp
>>> rt = cdp.Runtime()
>>> _ = rt.queue("jobs", max_retries=1)
>>> @rt.consumer("jobs")
... async def handle(batch, env, ctx):
...     for m in batch.messages:
...         m.body["workflow"]
>>> _ = rt.env.JOBS.send({})
>>> with warnings.catch_warnings(record=True) as shown:
...     warnings.simplefilter("always")
...     rt.run()
>>> [str(w.message).splitlines()[0] for w in shown]     # doctest: +NORMALIZE_WHITESPACE
["queue 'jobs': the consumer handler raised KeyError: 'workflow' at t=1 s (batch 1);
  its messages are retried or dead-lettered. First error of this kind; every one, with its
  traceback, is in rt.errors",
 "queue 'jobs': 2 handler errors in this run (1 kind: KeyError); see rt.errors"]
>>> tb = rt.errors["traceback"][0]
>>> 'in handle' in tb, tb.splitlines()[-1]
(True, "KeyError: 'workflow'")
"""

from __future__ import annotations

import os
import traceback
import warnings
from collections import Counter
from typing import TYPE_CHECKING

from ..errors import HandlerWarning

if TYPE_CHECKING:
    from .trace import Trace

_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))   # cdpkit/
_RUNTIME = os.path.dirname(os.path.abspath(__file__))


def describe(error: BaseException, handler: object = None) -> tuple[str, tuple[str, int]]:
    """The traceback of a handler's exception without the runtime's frames that led into the
    handler, and where it came from: the innermost frame of user code (outside cdpkit), else
    the handler's definition (a handler called with the wrong arguments never ran)."""
    summary = traceback.TracebackException.from_exception(error)
    frames = list(summary.stack)
    while len(frames) > 1 and os.path.abspath(frames[0].filename).startswith(_RUNTIME):
        frames.pop(0)        # the trampoline and _invoke: how the handler was called
    summary.stack = traceback.StackSummary.from_list(frames)
    user = [f for f in frames if not os.path.abspath(f.filename).startswith(_PACKAGE)]
    code = getattr(handler, "__code__", None)
    if user:
        location = (user[-1].filename, user[-1].lineno or 0)
    elif code is not None:
        location = (code.co_filename, code.co_firstlineno)
    else:
        location = (frames[-1].filename, frames[-1].lineno or 0) if frames else ("<handler>", 0)
    return "".join(summary.format()), location


def _warn(text: str, location: tuple[str, int]) -> None:
    # warn_explicit with no registry: shown every run (not once per kernel like warnings.warn)
    warnings.warn_explicit(HandlerWarning(text), HandlerWarning, location[0], location[1],
                           registry=None)


class FailureLog:
    """What a runtime knows about its handlers' failures (``rt.failures``)."""

    __slots__ = ("recorder", "kinds", "locations")

    def __init__(self, recorder: Trace) -> None:
        self.recorder = recorder
        self.kinds: set[tuple[str, str, tuple[str, int]]] = set()
        self.locations: dict[str, tuple[str, int]] = {}    # queue -> where its first error came from

    def record(self, t: float, queue: str, batch_id: int, error: BaseException,
               handler: object = None) -> None:
        """Keep the error and its traceback; warn if it is the first of its kind."""
        text, location = describe(error, handler)
        self.recorder.error(t, queue, batch_id, error, text)
        kind = (queue, type(error).__qualname__, location)
        if kind in self.kinds:
            return
        self.kinds.add(kind)
        self.locations.setdefault(queue, location)
        message = "".join(traceback.format_exception_only(type(error), error)).strip()
        _warn(f"queue {queue!r}: the consumer handler raised {message} at t={t:g} s "
              f"(batch {batch_id}); its messages are retried or dead-lettered. First error of "
              f"this kind; every one, with its traceback, is in rt.errors\n{text}", location)

    def report(self, since: int = 0) -> None:
        """Warn how many errors each queue's handler raised after the ``since``-th one."""
        errors = self.recorder.errors[since:]
        for queue, count in Counter(e[1] for e in errors).items():
            types = Counter(type(e[3]).__qualname__ for e in errors if e[1] == queue)
            kinds = len({k for k in self.kinds if k[0] == queue})
            _warn(f"queue {queue!r}: {count:,} handler error{'s' * (count != 1)} in this run "
                  f"({kinds} kind{'s' * (kinds != 1)}: {', '.join(types)}); see rt.errors",
                  self.locations.get(queue, ("<handler>", 0)))
