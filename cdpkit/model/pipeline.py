"""A pipeline as a networkx DiGraph: sources, queues, consumers, actors, and their wiring.

Nodes carry ``kind`` (source, queue, consumer, actor, store) and ``spec``; edges carry
``kind`` (``sends``, ``consumes``, ``publishes``, ``routes``, ``calls``, ``writes``,
``dead_letters``). The graph is
plain networkx: inspect it with any networkx function.

>>> p = Pipeline("demo")
>>> p.add_queue("jobs", max_batch_size=10, max_retries=2, dead_letter_queue="jobs-dlq")
>>> p.add_queue("jobs-dlq")
>>> p.add_source("http", queue="jobs")
>>> p.add_consumer("jobs", service={"base": 0.005, "per_message": 0.001}, failure=0.01)
>>> p.add_consumer("jobs-dlq")
>>> sorted(p.graph.successors("jobs"))
['jobs-dlq', 'jobs.consumer']
>>> p.validate()
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import networkx as nx

from ..errors import ConfigError
from ..runtime.limits import BINDING_NAME, check_js_identifier, check_queue_name, check_worker_name
from ..runtime.queues import ConsumerSettings
from ..runtime.semantics import PRODUCTION
from .dists import Dist

QUEUE_KEYS = ("max_batch_size", "max_batch_timeout", "max_retries", "dead_letter_queue",
              "retry_delay", "max_concurrency", "delivery_delay", "retention")
RETRY_POLICIES = ("fixed", "exponential")
SOURCE_KINDS = ("http", "cron", "producer")
RETRY_MODES = ("per_message", "retry_all")


@dataclass
class RetryPolicy:
    """Delay before a failed message is retried: fixed, or ``min(cap, base * 2**attempts)``."""

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
        if value is None:
            return cls()
        if isinstance(value, RetryPolicy):
            return value
        if not isinstance(value, dict) or set(value) - {"policy", "base", "cap", "mode"}:
            raise ConfigError(f"{where}: retry={value!r} is not allowed; allowed: a dict with policy "
                              "('fixed' or 'exponential'), base, cap (seconds) and mode "
                              "('per_message' or 'retry_all')")
        policy = cls(**value)
        if policy.policy not in RETRY_POLICIES:
            raise ConfigError(f"{where}: retry policy={policy.policy!r} is not allowed; allowed: "
                              "'fixed', 'exponential'")
        if policy.mode not in RETRY_MODES:
            raise ConfigError(f"{where}: retry mode={policy.mode!r} is not allowed; allowed: "
                              "'per_message', 'retry_all'")
        for name in ("base", "cap"):
            v = getattr(policy, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= PRODUCTION.max_delay_seconds:
                raise ConfigError(f"{where}: retry {name}={v!r} is not allowed; allowed: 0 to "
                                  f"{PRODUCTION.max_delay_seconds} seconds")
        return policy


@dataclass
class ConsumerSpec:
    """Behaviour of a queue consumer: batch service time, failures, retries, and where acked
    messages go: a message whose type is in ``routes`` goes to that queue or actor (the seed's
    Pattern 2); any other is published to ``publish`` and/or sent to the ``calls`` actor
    (Pattern 1), one message after another."""

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


STORE_KINDS = ("kv", "d1", "sink", "analytics")


@dataclass
class StoreSpec:
    """A KV namespace, a D1 database, or a sink (an outside endpoint: webhook, analytics,
    e-mail); each write or call takes ``latency`` seconds of I/O."""

    kind: str = "d1"
    latency: Dist = field(default_factory=lambda: Dist("const", 0.0))
    binding: str = ""


class Pipeline:
    """A Cloudflare Queues + Durable Objects pipeline (the user's design)."""

    def __init__(self, name: str = "pipeline") -> None:
        self.name = name
        self.graph = nx.DiGraph(name=name)
        self._strict = True

    # -- building ------------------------------------------------------------------------
    def add_queue(self, name: str, **settings: Any) -> None:
        """A queue and its consumer settings (keys as in ``[[queues.consumers]]``)."""
        check_queue_name(name)
        self._new_node(name)
        unknown = set(settings) - set(QUEUE_KEYS)
        if unknown:
            raise ConfigError(f"queue {name!r}: unknown settings {sorted(unknown)}; allowed: "
                              + ", ".join(QUEUE_KEYS))
        consumer = {k: v for k, v in settings.items() if k in ConsumerSettings.__dataclass_fields__}
        ConsumerSettings(**consumer).validated(name, PRODUCTION)
        self.graph.add_node(name, kind="queue", spec=dict(settings))
        self.wire(strict=False)

    def add_source(self, name: str, *, queue: str, share: float = 1.0,
                   types: list[str] | None = None, via: str = "http") -> None:
        """Where messages enter: ``via`` an HTTP ingress Worker, a ``cron`` trigger or another
        ``producer``; the workload's messages of ``types`` (default: all), a ``share`` of them."""
        self._new_node(name)
        if via not in SOURCE_KINDS:
            raise ConfigError(f"source {name!r}: via={via!r} is not allowed; allowed: "
                              + ", ".join(repr(k) for k in SOURCE_KINDS))
        if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 < share <= 1:
            raise ConfigError(f"source {name!r}: share={share!r} is not allowed; allowed: 0 < share <= 1")
        if types is not None and (not isinstance(types, list) or not all(isinstance(t, str) for t in types)):
            raise ConfigError(f"source {name!r}: types={types!r} is not allowed; allowed: a list of message types")
        self.graph.add_node(name, kind="source", spec={"queue": queue, "share": share, "types": types,
                                                       "via": via})
        self.wire(strict=False)

    def add_consumer(self, queue: str, *, service: Any = None, failure: float = 0.0,
                     permanent: float = 0.0, retry: Any = None, publish: list[str] | None = None,
                     routes: dict[str, str] | None = None, calls: str | None = None,
                     writes: list[str] | None = None, handler: Any = None) -> None:
        """The consumer of ``queue``: a behaviour spec, or user ``handler`` code."""
        where = f"consumer of {queue!r}"
        service = service or {}
        if not isinstance(service, dict) or set(service) - {"base", "per_message"}:
            raise ConfigError(f"{where}: service={service!r} is not allowed; allowed: "
                              "{'base': dist, 'per_message': dist} (seconds)")
        for name, value in (("failure", failure), ("permanent", permanent)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
                raise ConfigError(f"{where}: {name}={value!r} is not allowed; allowed: a probability 0 to 1")
        spec = ConsumerSpec(
            base=Dist.parse(service.get("base", 0.0), f"{where}: service base"),
            per_message=Dist.parse(service.get("per_message", 0.0), f"{where}: service per_message"),
            failure=float(failure), permanent=float(permanent),
            retry=RetryPolicy.parse(retry, where), publish=list(publish or []),
            routes=dict(routes or {}), calls=calls, writes=list(writes or []), handler=handler)
        node = f"{queue}.consumer"
        self._new_node(node)
        self.graph.add_node(node, kind="consumer", spec=spec, queue=queue)
        self.wire(strict=False)

    def add_actor(self, name: str, *, service: Any = 0.0, instances: int = 1, skew: float = 0.0,
                  calls: list[str] | None = None, publish: list[str] | None = None,
                  writes: list[str] | None = None, binding: str | None = None,
                  cls: type | None = None, method: str = "handle", worker: str | None = None) -> None:
        """A Durable Object class (``name`` is its class name): a behaviour spec, or user
        code ``cls`` (a :class:`cdpkit.Actor` subclass with ``async def handle(self, body)``;
        ``body`` is ``{"type", "size", "origin", "origin_time"}``), called with the same key mapping (``instances``, ``skew``). ``method``: the RPC method
        name callers use; ``worker``: the name of another Worker that defines the class (the
        export binds it with ``script_name``)."""
        check_js_identifier(name, "actor class name")
        self._new_node(name)
        if isinstance(instances, bool) or not isinstance(instances, int) or instances < 1:
            raise ConfigError(f"actor {name!r}: instances={instances!r} is not allowed; allowed: an integer >= 1")
        if isinstance(skew, bool) or not isinstance(skew, (int, float)) or skew < 0:
            raise ConfigError(f"actor {name!r}: skew={skew!r} is not allowed; allowed: a number >= 0 "
                              "(Zipf exponent; 0 = uniform)")
        if cls is not None and not callable(getattr(cls, "handle", None)):
            raise ConfigError(f"actor {name!r}: cls={cls!r} is not allowed; allowed: a cdpkit.Actor "
                              "subclass with an async handle(self, body) method")
        check_js_identifier(method, f"actor {name!r}: method")
        if method.startswith("_"):
            raise ConfigError(f"actor {name!r}: method={method!r} is not allowed; allowed: a JavaScript "
                              "identifier not starting with '_'")
        if worker is not None:
            check_worker_name(worker, f"actor {name!r}: worker")
        spec = ActorSpec(Dist.parse(service, f"actor {name!r}: service"), instances, float(skew),
                         list(calls or []), list(publish or []), list(writes or []),
                         binding or _snake(name).upper(), cls, method, worker)
        self.graph.add_node(name, kind="actor", spec=spec)
        self.wire(strict=False)

    def add_store(self, name: str, *, kind: str = "d1", latency: Any = 0.0) -> None:
        """A KV namespace (``kind="kv"``), D1 database (``"d1"``) or sink (``"sink"``: an
        outside HTTP endpoint) that consumers and actors write to; ``name`` is its binding."""
        if not BINDING_NAME.fullmatch(name):
            raise ConfigError(f"store {name!r}: the name is its binding and must be a JavaScript identifier")
        if kind not in STORE_KINDS:
            raise ConfigError(f"store {name!r}: kind={kind!r} is not allowed; allowed: 'kv', 'd1', 'sink'")
        self._new_node(name)
        self.graph.add_node(name, kind="store",
                            spec=StoreSpec(kind, Dist.parse(latency, f"store {name!r}: latency"), name))
        self.wire(strict=False)

    def _new_node(self, name: str) -> None:
        if name in self.graph:
            raise ConfigError(f"node {name!r} already exists in pipeline {self.name!r}; allowed: unique names")

    # -- wiring and validation --------------------------------------------------------
    def wire(self, strict: bool = True) -> None:
        """(Re)build the edges from the node specs (``strict``: a missing target is an error)."""
        self._strict = strict
        g = self.graph
        g.remove_edges_from(list(g.edges))
        for node, data in g.nodes(data=True):
            kind, spec = data["kind"], data["spec"]
            if kind == "source":
                self._edge(node, spec["queue"], "sends")
            elif kind == "queue" and spec.get("dead_letter_queue"):
                self._edge(node, spec["dead_letter_queue"], "dead_letters")
            elif kind == "consumer":
                self._edge(data["queue"], node, "consumes")
                for target in spec.publish:
                    self._edge(node, target, "publishes")
                for message_type, target in spec.routes.items():
                    self._edge(node, target, "routes", message_type=message_type)
                if spec.calls:
                    self._edge(node, spec.calls, "calls")
                for target in spec.writes:
                    self._edge(node, target, "writes")
            elif kind == "actor":
                for target in spec.calls:
                    self._edge(node, target, "calls")
                for target in spec.publish:
                    self._edge(node, target, "publishes")
                for target in spec.writes:
                    self._edge(node, target, "writes")

    def _edge(self, a: str, b: str, kind: str, **attrs: Any) -> None:
        for end in (a, b):
            if end not in self.graph:
                if not self._strict:
                    return  # not added yet; validate() will insist
                raise ConfigError(f"{a!r} {kind.replace('_', ' ')} {b!r}, but {end!r} is not in "
                                  f"pipeline {self.name!r}; nodes: {', '.join(sorted(self.graph))}")
        self.graph.add_edge(a, b, kind=kind, **attrs)

    def validate(self, orphans: bool = False) -> None:
        """Check wiring and limits before anything runs; raise ConfigError naming the node.
        ``orphans=True`` allows unconnected nodes (a config may bind what no code calls yet)."""
        self.wire()
        g = self.graph
        for node, data in g.nodes(data=True):
            kind = data["kind"]
            if kind == "source" and g.nodes[data["spec"]["queue"]]["kind"] != "queue":
                raise ConfigError(f"source {node!r} sends to {data['spec']['queue']!r}, which is not a queue")
            if kind == "consumer" and data["queue"] not in g:
                raise ConfigError(f"consumer {node!r}: queue {data['queue']!r} does not exist")
            if kind == "queue":
                dlq = data["spec"].get("dead_letter_queue")
                if dlq and g.nodes[dlq]["kind"] != "queue":
                    raise ConfigError(f"queue {node!r}: dead_letter_queue {dlq!r} is not a queue")
            for _, target, edge in g.out_edges(node, data=True):
                want = {"publishes": "queue", "routes": ("queue", "actor"), "calls": "actor",
                        "writes": "store"}.get(edge["kind"])
                if want and g.nodes[target]["kind"] not in (want if isinstance(want, tuple) else (want,)):
                    raise ConfigError(f"{node!r} {edge['kind']} {target!r}, which is a "
                                      f"{g.nodes[target]['kind']}, not a {want}")
            if g.degree(node) == 0 and len(g) > 1 and not orphans:
                raise ConfigError(f"node {node!r} is not connected to anything (orphan); wire it or remove it")
        consumers = {d["queue"] for _, d in g.nodes(data=True) if d["kind"] == "consumer"}
        for node, data in g.nodes(data=True):
            if data["kind"] == "queue" and node not in consumers and any(
                    k in data["spec"] for k in ConsumerSettings.__dataclass_fields__):
                raise ConfigError(f"queue {node!r} has consumer settings but no consumer; add one "
                                  f"with add_consumer({node!r}, ...)")
        # cycles are allowed only through queues (a queue decouples); actor call cycles deadlock
        actors = g.subgraph(n for n, d in g.nodes(data=True) if d["kind"] == "actor")
        for cycle in nx.simple_cycles(actors):
            raise ConfigError(f"actors call each other in a cycle {' -> '.join([*cycle, cycle[0]])}; "
                              "cycles are allowed only through a queue")

    # -- access ----------------------------------------------------------------------------
    def nodes(self, kind: str) -> list[str]:
        return [n for n, d in self.graph.nodes(data=True) if d["kind"] == kind]

    def spec(self, node: str) -> Any:
        return self.graph.nodes[node]["spec"]

    def set(self, key: str, value: Any, why: str | None = None) -> Pipeline:
        """A copy with one setting changed: ``p.set("jobs.max_batch_size", 50)``.

        ``why`` records where the value came from (e.g. ``"sweep row 3: p99 1.2 s, $4.10/month"``);
        the export writes it as a comment next to the setting (see :attr:`provenance`).

        Keys are ``<queue>.<setting>``, ``<queue>.consumer.<field>`` or ``<Actor>.<field>``.
        """
        node, _, attr = key.rpartition(".")
        if node not in self.graph:
            raise ConfigError(f"setting {key!r}: no node {node!r}; nodes: {', '.join(sorted(self.graph))}")
        copy_ = self.copy()
        data = copy_.graph.nodes[node]
        spec = data["spec"]
        if isinstance(spec, dict):
            if data["kind"] == "queue" and attr not in QUEUE_KEYS:
                raise ConfigError(f"setting {key!r}: {attr!r} is not a queue setting; allowed: "
                                  + ", ".join(QUEUE_KEYS))
            spec[attr] = value
            if data["kind"] == "queue":
                consumer = {k: v for k, v in spec.items() if k in ConsumerSettings.__dataclass_fields__}
                ConsumerSettings(**consumer).validated(node, PRODUCTION)
        else:
            if not hasattr(spec, attr):
                raise ConfigError(f"setting {key!r}: {data['kind']} {node!r} has no field {attr!r}")
            current = getattr(spec, attr)
            setattr(spec, attr, Dist.parse(value, key) if isinstance(current, Dist) else value)
        if why is not None:
            copy_.graph.graph.setdefault("provenance", {})[key] = str(why)
        return copy_

    @property
    def vars(self) -> dict[str, object]:
        """Environment variables for the Worker (``[vars]``); ones that look like secrets are
        not exported but listed for ``wrangler secret put``."""
        return self.graph.graph.setdefault("vars", {})

    @property
    def runtime_queues(self) -> list[str]:
        """Queue name templates created at run time through the REST API (the seed's
        multi-tenant pattern), e.g. ``["tenant-*-queue"]``; the Worker skeleton gets that path."""
        return self.graph.graph.setdefault("runtime_queues", [])

    @property
    def provenance(self) -> dict[str, str]:
        """Why settings have their values: ``{"jobs.max_batch_size": "sweep row 3: ..."}``."""
        return self.graph.graph.setdefault("provenance", {})

    @classmethod
    def from_yaml(cls, path_or_text: str | Any) -> Pipeline:
        """Read a model file (YAML or JSON), e.g. ``Pipeline.from_yaml("examples/cdp-gateway.yaml")``."""
        from .io import from_yaml
        return from_yaml(path_or_text)

    @classmethod
    def from_wrangler(cls, *paths: str | Any) -> Pipeline:
        """Read ``wrangler.toml`` / ``wrangler.jsonc`` file(s) (see :func:`cdpkit.deploy.from_wrangler`
        for the behaviour defaults): ``Pipeline.from_wrangler("wrangler.toml")``."""
        from ..deploy.wrangler import from_wrangler
        return from_wrangler(*paths)

    @classmethod
    def from_dict(cls, data: dict) -> Pipeline:
        from .io import from_dict
        return from_dict(data)

    def to_dict(self) -> dict:
        from .io import to_dict
        return to_dict(self)

    def to_yaml(self) -> str:
        from .io import to_yaml
        return to_yaml(self)

    def copy(self) -> Pipeline:
        other = Pipeline(self.name)
        other.graph = copy.deepcopy(self.graph)
        return other

    def __repr__(self) -> str:
        counts = {}
        for _, d in self.graph.nodes(data=True):
            counts[d["kind"]] = counts.get(d["kind"], 0) + 1
        parts = ", ".join(f"{n} {k}s" for k, n in sorted(counts.items()))
        return f"<Pipeline {self.name!r}: {parts or 'empty'}>"


def _snake(name: str) -> str:
    out = []
    for i, ch in enumerate(name):
        if ch.isupper() and i and not name[i - 1].isupper():
            out.append("_")
        out.append(ch)
    return "".join(out)

