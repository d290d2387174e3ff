"""Typed specs of a pipeline's nodes, each with one ``validated(where)`` that every way into a
spec goes through (``Pipeline.add_*``, ``Pipeline.set``, model files, the wrangler import,
sweep rows): it checks every field and returns the spec with its values normalised
(distributions parsed, numpy numbers made plain), or raises ConfigError naming the node, the
field, the value and what is allowed.

>>> ConsumerSpec(failure=0.2).validated("consumer of 'jobs'").failure
0.2
>>> ConsumerSpec(failure=2.0).validated("consumer of 'jobs'")
Traceback (most recent call last):
...
cdpkit.errors.ConfigError: consumer of 'jobs': failure=2.0 is not allowed; allowed: a probability from 0 to 1
>>> QueueSpec(max_batch_size=50).validated("queue 'jobs'")
{'max_batch_size': 50}
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass, field, replace
from numbers import Integral, Real
from typing import Any

from ..errors import ConfigError
from ..runtime.limits import check_binding_name, check_js_identifier, check_worker_name
from ..runtime.queues import ConsumerSettings
from ..runtime.semantics import PRODUCTION
from ..runtime.settings import QUEUE_SETTINGS, check_setting_names
from .dists import Dist

RETRY_POLICIES = ("fixed", "exponential")
RETRY_MODES = ("per_message", "retry_all")
SOURCE_KINDS = ("http", "cron", "producer")
STORE_KINDS = ("kv", "d1", "sink", "analytics")


def _number(value: Any, where: str, name: str, low: float, high: float = math.inf,
            allowed: str | None = None, low_open: bool = False) -> float:
    ok = isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or not (low < value if low_open else low <= value) or value > high:
        raise ConfigError(f"{where}: {name}={value!r} is not allowed; allowed: "
                          f"{allowed or f'a number from {low:g} to {high:g}'}")
    return float(value)


def _names(value: Any, where: str, name: str, what: str) -> list[str]:
    """A list of names (a single string is a mistake: ``publish: "jobs"`` means ``["jobs"]``?)."""
    if value is None:
        return []
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        hint = f"; write [{value!r}] for one" if isinstance(value, str) else ""
        raise ConfigError(f"{where}: {name}={value!r} is not allowed; allowed: a list of {what}{hint}")
    return list(value)


class QueueSpec(dict):
    """The settings given for one queue, by name (unset settings are absent; the runtime
    fills them with the semantics profile's defaults). Names, ranges and defaults come from
    :data:`cdpkit.runtime.settings.QUEUE_SETTINGS`."""

    def __init__(self, *args: Any, **settings: Any) -> None:
        super().__init__(*args, **settings)

    def validated(self, where: str) -> QueueSpec:
        check_setting_names(self, where)
        out = QueueSpec({k: QUEUE_SETTINGS[k].check(v, where, PRODUCTION)
                         for k, v in self.items() if v is not None})
        queue = where.split("'")[1] if "'" in where else where
        ConsumerSettings.of(out).validated(queue, PRODUCTION)   # the DLQ is not the queue itself
        return out

    def copy(self) -> QueueSpec:
        return QueueSpec(self)


@dataclass
class SourceSpec:
    """Where messages enter: ``via`` an HTTP ingress Worker, a ``cron`` trigger or another
    ``producer``; the workload's messages of ``types`` (None: all), a ``share`` of them."""

    queue: str = ""
    share: float = 1.0
    types: list[str] | None = None
    via: str = "http"

    def validated(self, where: str) -> SourceSpec:
        if not isinstance(self.queue, str) or not self.queue:
            raise ConfigError(f"{where}: queue={self.queue!r} is not allowed; allowed: the name of a queue")
        if self.via not in SOURCE_KINDS:
            raise ConfigError(f"{where}: via={self.via!r} is not allowed; allowed: "
                              + ", ".join(repr(k) for k in SOURCE_KINDS))
        share = _number(self.share, where, "share", 0, 1, "0 < share <= 1", low_open=True)
        types = None if self.types is None else _names(self.types, where, "types", "message types")
        return replace(self, share=share, types=types)


@dataclass
class RetryPolicy:
    """Delay before a failed message is retried: ``fixed`` (``base`` seconds) or
    ``exponential`` (``min(cap, base * 2**attempts)``); ``mode`` ``per_message`` retries the
    failed messages, ``retry_all`` the whole batch. Delays are whole seconds, as Queues takes
    them.

    >>> RetryPolicy("exponential", base=5, cap=60).delay(3)
    40
    """

    policy: str = "fixed"
    base: float = 0.0
    cap: float = 60.0
    mode: str = "per_message"

    def delay(self, attempts: int) -> int:
        if self.policy == "fixed":
            return int(self.base)
        return int(min(self.cap, self.base * 2 ** attempts))

    @classmethod
    def parse(cls, value: Any, where: str) -> RetryPolicy:
        """A policy from a dict ``{"policy", "base", "cap", "mode"}`` (or a RetryPolicy, or None)."""
        if value is None:
            return cls()
        if isinstance(value, RetryPolicy):
            return value.validated(where)
        if not isinstance(value, dict) or set(value) - {"policy", "base", "cap", "mode"}:
            raise ConfigError(f"{where}: retry={value!r} is not allowed; allowed: a dict with policy "
                              "('fixed' or 'exponential'), base, cap (whole seconds) and mode "
                              "('per_message' or 'retry_all')")
        return cls(**value).validated(where)

    def validated(self, where: str) -> RetryPolicy:
        if self.policy not in RETRY_POLICIES:
            raise ConfigError(f"{where}: retry policy={self.policy!r} is not allowed; allowed: "
                              "'fixed', 'exponential'")
        if self.mode not in RETRY_MODES:
            raise ConfigError(f"{where}: retry mode={self.mode!r} is not allowed; allowed: "
                              "'per_message', 'retry_all'")
        high = PRODUCTION.max_delay_seconds
        for name in ("base", "cap"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, Real) or not 0 <= v <= high or v != int(v):
                raise ConfigError(f"{where}: retry {name}={v!r} is not allowed; allowed: whole seconds "
                                  f"from 0 to {high} (Queues delays are whole seconds)")
        return replace(self, base=int(self.base), cap=int(self.cap))


PULL_KEYS = ("interval", "batch_size", "concurrency", "visibility_timeout")


def parse_pull(value: Any, where: str) -> dict[str, Any] | None:
    """A pull consumer's client (``type = "http_pull"``): ``interval`` seconds between polls,
    ``batch_size`` (1-100) per pull, ``concurrency`` (1-250) polling loops and the
    ``visibility_timeout`` (seconds, up to 12 h; None: the queue's ``visibility_timeout_ms``).

    >>> parse_pull({"batch_size": 10}, "consumer of 'jobs'")
    {'interval': 1.0, 'batch_size': 10, 'concurrency': 1, 'visibility_timeout': None}
    >>> parse_pull({"batch": 10}, "consumer of 'jobs'")
    Traceback (most recent call last):
    ...
    cdpkit.errors.ConfigError: consumer of 'jobs': pull key 'batch' is not allowed (did you mean 'batch_size'?); allowed: interval, batch_size, concurrency, visibility_timeout
    """
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: pull={value!r} is not allowed; allowed: a dict of "
                          + ", ".join(PULL_KEYS))
    for key in value:
        if key not in PULL_KEYS:
            near = difflib.get_close_matches(str(key), PULL_KEYS, n=1)
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            raise ConfigError(f"{where}: pull key {key!r} is not allowed{hint}; allowed: {', '.join(PULL_KEYS)}")
    out = {"interval": 1.0, "batch_size": None, "concurrency": 1, "visibility_timeout": None, **value}
    out["interval"] = _number(out["interval"], where, "pull interval", 0, 86_400,
                              "seconds > 0, at most 86400", low_open=True)
    for name, high in (("batch_size", 100), ("concurrency", 250)):
        v = out[name]
        if v is None and name == "batch_size":
            continue
        if isinstance(v, bool) or not isinstance(v, Integral) or not 1 <= v <= high:
            raise ConfigError(f"{where}: pull {name}={v!r} is not allowed; allowed: an integer from 1 to {high}")
        out[name] = int(v)
    if out["visibility_timeout"] is not None:
        out["visibility_timeout"] = _number(out["visibility_timeout"], where, "pull visibility_timeout", 0,
                                            43_200, "seconds > 0, at most 43200 (12 hours)", low_open=True)
    return out


@dataclass
class ConsumerSpec:
    """Behaviour of a queue consumer: batch service time, failures, retries, and where acked
    messages go: a message whose type is in ``routes`` goes to that queue or actor (the seed's
    Pattern 2); any other is published to ``publish`` and/or sent to the ``calls`` actor
    (Pattern 1), one message after another, or, with ``parallel=True``, all messages at once
    (the seed's ``Promise.all(batch.messages.map(...))``: each message's own steps in turn, the
    batch done when its slowest message is)."""

    base: Dist = field(default_factory=lambda: Dist("const", 0.0))
    per_message: Dist = field(default_factory=lambda: Dist("const", 0.0))
    failure: float = 0.0
    permanent: float = 0.0          # share of failing messages that fail every attempt (poison)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    publish: list[str] = field(default_factory=list)
    routes: dict[str, str] = field(default_factory=dict)
    calls: str | None = None
    writes: list[str] = field(default_factory=list)   # stores written once per acked message
    handler: Any = None             # user code instead of a spec: async def (batch, env, ctx)
    pull: dict | None = None        # an HTTP pull consumer's client (parse_pull); None: push
    parallel: bool = False          # per-message calls and writes concurrently within a batch

    def validated(self, where: str) -> ConsumerSpec:
        pull = parse_pull(self.pull, where)
        if pull is not None:
            for name in ("handler", "calls", "routes", "writes", "parallel"):
                if getattr(self, name):
                    raise ConfigError(f"{where}: {name}={getattr(self, name)!r} is not allowed with pull=; a "
                                      "pull consumer runs outside Workers (no handler code, no bindings); "
                                      "allowed: service, failure, permanent, retry, publish")
        routes = self.routes or {}
        if not isinstance(routes, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                                   for k, v in routes.items()):
            raise ConfigError(f"{where}: routes={routes!r} is not allowed; allowed: a dict of "
                              "message type -> queue or actor name")
        if self.calls is not None and not isinstance(self.calls, str):
            raise ConfigError(f"{where}: calls={self.calls!r} is not allowed; allowed: the name of one actor")
        if not isinstance(self.parallel, bool):
            raise ConfigError(f"{where}: parallel={self.parallel!r} is not allowed; allowed: True or False")
        if self.parallel and self.handler is not None:
            raise ConfigError(f"{where}: parallel=True is not allowed with handler=; handler code runs "
                              "its messages concurrently itself (await rt.gather(...)); allowed: parallel=False")
        if self.handler is not None and not callable(self.handler):
            raise ConfigError(f"{where}: handler={self.handler!r} is not allowed; allowed: "
                              "async def handler(batch, env, ctx)")
        probability = "a probability from 0 to 1"
        return replace(
            self, base=Dist.parse(self.base, f"{where}: service base"),
            per_message=Dist.parse(self.per_message, f"{where}: service per_message"),
            failure=_number(self.failure, where, "failure", 0, 1, probability),
            permanent=_number(self.permanent, where, "permanent", 0, 1, probability),
            retry=RetryPolicy.parse(self.retry, where),
            publish=_names(self.publish, where, "publish", "queue names"), routes=dict(routes),
            writes=_names(self.writes, where, "writes", "store names"), pull=pull)


@dataclass
class ActorSpec:
    """A Durable Object class in a spec: service time per call, how keys map to instances
    (``instances`` distinct keys, Zipf ``skew``; 0 = uniform), calls to child actors and
    publishing to queues."""

    service: Dist = field(default_factory=lambda: Dist("const", 0.0))
    instances: int = 1
    skew: float = 0.0
    calls: list[str] = field(default_factory=list)
    publish: list[str] = field(default_factory=list)
    writes: list[str] = field(default_factory=list)
    binding: str = ""
    cls: Any = None                 # user code instead of a spec: a cdpkit.Actor subclass whose
                                    # handle(self, body) method receives each call
    method: str = "handle"          # the RPC method callers use (named in the Worker skeleton)
    worker: str | None = None       # defined by another Worker (bound with script_name); None = main

    def validated(self, where: str) -> ActorSpec:
        if isinstance(self.instances, bool) or not isinstance(self.instances, Integral) or self.instances < 1:
            raise ConfigError(f"{where}: instances={self.instances!r} is not allowed; allowed: an integer >= 1")
        skew = _number(self.skew, where, "skew", 0, allowed="a number >= 0 (Zipf exponent; 0 = uniform)")
        if self.cls is not None and not callable(getattr(self.cls, "handle", None)):
            raise ConfigError(f"{where}: cls={self.cls!r} is not allowed; allowed: a cdpkit.Actor "
                              "subclass with an async handle(self, body) method")
        check_js_identifier(self.method, f"{where}: method")
        if self.method.startswith("_"):
            raise ConfigError(f"{where}: method={self.method!r} is not allowed; allowed: a JavaScript "
                              "identifier not starting with '_'")
        check_binding_name(self.binding, f"{where}: binding")
        if self.worker is not None:
            check_worker_name(self.worker, f"{where}: worker")
        return replace(self, service=Dist.parse(self.service, f"{where}: service"),
                       instances=int(self.instances), skew=skew,
                       calls=_names(self.calls, where, "calls", "actor names"),
                       publish=_names(self.publish, where, "publish", "queue names"),
                       writes=_names(self.writes, where, "writes", "store names"))


@dataclass
class StoreSpec:
    """A KV namespace, a D1 database, an Analytics Engine dataset, or a sink (an outside
    endpoint: webhook, e-mail); each write or call takes ``latency`` seconds of I/O."""

    kind: str = "d1"
    latency: Dist = field(default_factory=lambda: Dist("const", 0.0))
    binding: str = ""

    def validated(self, where: str) -> StoreSpec:
        if self.kind not in STORE_KINDS:
            raise ConfigError(f"{where}: kind={self.kind!r} is not allowed; allowed: "
                              + ", ".join(repr(k) for k in STORE_KINDS))
        check_binding_name(self.binding, f"{where}: binding")
        return replace(self, latency=Dist.parse(self.latency, f"{where}: latency"))
