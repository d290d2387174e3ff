"""A run's budget: the most work one run may do before it stops with a :class:`BudgetError`.

Without a bound, a slip in a model (a zero-time cycle, ``rate=1e9``, ``instances=10**9``)
makes a run spin forever or take all the machine's memory. A run is checked twice:

* before it starts, from what it will need (:func:`check_plan`, used by ``cdp.simulate``:
  the workload's expected arrivals, the actors' instances);
* while it runs (:class:`BudgetWatch`): every few thousand clock events it looks at the
  events processed, the messages entered (also checked at each ledger append), a memory
  estimate, and how many events ran without virtual time advancing.

>>> import cdpkit as cdp
>>> cdp.Budget().messages
20000000
>>> cdp.Budget(messages=0)
Traceback (most recent call last):
...
cdpkit.errors.ConfigError: Budget: messages=0 is not allowed; allowed: an int >= 1
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING

from ..errors import BudgetError, ConfigError

if TYPE_CHECKING:
    from .runtime import Runtime

__all__ = ["Budget", "BudgetWatch", "check_plan"]

# Estimates behind ``memory_bytes`` (measured with tracemalloc on the bench scenario).
MESSAGE_BYTES = 250   # a ledger row with its share of arrival arrays, batches and call logs
INSTANCE_BYTES = 100  # an actor instance: its key's name, weight and state
EVENT_BYTES = 150     # a pending clock event (its entry and arguments)
CHECK_EVERY = 4096    # clock events between checks (the run loop does nothing per event)


@dataclass(frozen=True)
class Budget:
    """The most work one run may do; over any limit the run stops with ``BudgetError``.

    Pass it as ``cdp.simulate(..., budget=cdp.Budget(messages=50_000_000))`` or
    ``cdp.Runtime(budget=...)``. The defaults leave room for several million messages (the
    1M-message benchmark enters 2M: each is published on once); raise them for more.

    Parameters
    ----------
    events:
        Clock events processed over the runtime's life (a simulated message takes about
        0.6, a message through handler code 2 to 4). Bounds a run that never ends, such
        as ``rt.run()`` with a producer that loops forever.
    messages:
        Messages entered into queues: the workload's arrivals, messages sent or published
        on, dead letters (one per queue a message enters; retries add none).
    memory_bytes:
        An estimate of the memory the run needs (about 250 bytes a message, 100 an actor
        instance, 150 a pending event), checked before and while it runs.
    same_instant_events:
        Events processed without virtual time advancing. Over it, the run is a zero-time
        cycle (e.g. consumers that send to each other with ``max_batch_timeout=0`` and no
        service time) and the error names the queues and actors that took part.
    """

    events: int = 100_000_000
    messages: int = 20_000_000
    memory_bytes: int = 8 * 2**30
    same_instant_events: int = 250_000

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
                raise ConfigError(f"Budget: {field.name}={value!r} is not allowed; allowed: an int >= 1")


def _sci(n: float) -> str:
    mantissa, exponent = f"{n:.1e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def _gib(n: float) -> str:
    return f"{n / 2**30:,.1f} GiB" if n >= 2**30 else f"{n / 2**20:,.1f} MiB"


def _over(where: str, what: str, limit: str, change: str, how: str, field: str) -> BudgetError:
    return BudgetError(f"{where}: {what}, over the run budget of {limit}; {change}, "
                       f"or raise it with {how.format(field)}")


def check_plan(budget: Budget, messages: float, instances: dict[str, int],
               where: str = "simulate", how: str = "budget=cdp.Budget({}=...)") -> None:
    """Before a run: raise BudgetError if ``messages`` expected arrivals, or the memory they
    and the actors' ``instances`` (name -> count) need, are over ``budget``."""
    if messages > budget.messages:
        raise _over(where, f"the workload would send ~{_sci(messages)} messages",
                    f"{budget.messages:,} messages", "lower the rate or duration", how, "messages")
    parts = {"the workload's messages": messages * MESSAGE_BYTES,
             **{f"actor {name!r} with instances={n:,}": n * INSTANCE_BYTES for name, n in instances.items()}}
    total = sum(parts.values())
    if total > budget.memory_bytes:
        biggest = max(parts, key=parts.__getitem__)
        change = "lower the rate or duration" if biggest.startswith("the workload") else "lower instances"
        raise _over(where, f"the run would need ~{_gib(total)} of memory, mostly for {biggest} "
                    f"(~{_gib(parts[biggest])})", _gib(budget.memory_bytes), change, how, "memory_bytes")


# Draining around a cycle (simulate's drain; the compiled engine stops where it would): the
# messages that may still enter queues, per message in flight when arrivals stopped, plus a slack
DRAIN_TRIPS, DRAIN_SLACK = 100, 100_000


class BudgetWatch:
    """Checks a runtime against its budget while it runs: the clock calls it every
    ``every`` events, the ledger when it grows past ``budget.messages``.

    ``where`` names the run in errors, ``how`` says how to raise a limit (``{}`` is the field).
    """

    def __init__(self, runtime: Runtime, budget: Budget, where: str = "rt.run",
                 how: str = "cdp.Runtime(budget=cdp.Budget({}=...))") -> None:
        self.runtime, self.budget, self.where, self.how = runtime, budget, where, how
        # often enough to stop a zero-time cycle within ~1.25 times its limit
        self.every = max(1, min(CHECK_EVERY, budget.same_instant_events // 4, budget.events))
        self.instant = math.nan      # virtual time at the last check
        self.counted = 0             # events processed at the last check
        self.same = 0                # events processed since time last advanced (at checks)
        self.before: dict[str, int] | None = None   # activity when time stopped advancing
        runtime.clock.set_watch(self, self.every)
        runtime.ledger.max_size = budget.messages
        runtime.ledger.on_full = self.too_many_messages

    def __call__(self) -> None:
        rt, budget = self.runtime, self.budget
        clock = rt.clock
        events = clock.events_processed
        if events > budget.events:
            raise _over(self.where, f"{events:,} events processed by t={clock.now:g}s",
                        f"{budget.events:,} events", "if the run should end, look for a task or "
                        "timer that never stops; run to a time with run(until=...)", self.how, "events")
        rows = len(rt.ledger)
        if rows > budget.messages:
            self.too_many_messages(rows)
        memory = rows * MESSAGE_BYTES + len(clock._heap) * EVENT_BYTES
        if memory > budget.memory_bytes:
            raise _over(self.where, f"the run holds ~{_gib(memory)} by t={clock.now:g}s ({rows:,} "
                        f"messages, {len(clock._heap):,} pending events)", _gib(budget.memory_bytes),
                        "run a shorter time or less traffic", self.how, "memory_bytes")
        if clock.now == self.instant:
            if self.before is None:
                self.before = rt.activity()
            self.same += events - self.counted
            if self.same > budget.same_instant_events:
                self.zero_time()
        else:
            self.instant, self.same, self.before = clock.now, 0, None
        self.counted = events

    def too_many_messages(self, rows: int) -> None:
        clock = self.runtime.clock
        raise _over(self.where, f"{rows:,} messages entered queues by t={clock.now:g}s",
                    f"{self.budget.messages:,} messages", "lower the traffic or the run's length "
                    "(or look for a cycle that sends messages on without end)", self.how, "messages")

    def zero_time(self) -> None:
        """Raise BudgetError naming what ran while virtual time stood still."""
        now, before = self.runtime.activity(), self.before or {}
        active = {name: n - before.get(name, 0) for name, n in now.items() if n > before.get(name, 0)}
        if active:
            cycle = "a zero-time cycle through " + ", ".join(
                f"{name} ({n:,} batches or calls)" for name, n in sorted(active.items(), key=lambda kv: -kv[1]))
        else:
            cycle = "a zero-time loop outside queues and actors (a task or timer that never waits)"
        raise _over(self.where, f"virtual time has not advanced past t={self.runtime.clock.now:g}s "
                    f"for {self.same:,} events: {cycle}", f"{self.budget.same_instant_events:,} "
                    "events at one instant", "give a step some virtual time (a max_batch_timeout, a "
                    "service time, ctx.work or a delay) so that time can advance", self.how,
                    "same_instant_events")
