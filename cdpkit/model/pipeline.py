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
import inspect
from dataclasses import fields, replace
from typing import Any

import networkx as nx

from ..errors import ConfigError
from ..runtime.limits import BINDING_NAME, check_js_identifier, check_queue_name
from ..runtime.queues import ConsumerSettings
from ..runtime.settings import QUEUE_SETTINGS, check_setting_names
from . import io
from .faults import Faults
from .specs import (
    RETRY_MODES,
    RETRY_POLICIES,
    SOURCE_KINDS,
    STORE_KINDS,
    ActorSpec,
    ConsumerSpec,
    QueueSpec,
    RetryPolicy,
    SourceSpec,
    StoreSpec,
)

__all__ = ["Pipeline", "QueueSpec", "SourceSpec", "ConsumerSpec", "ActorSpec", "StoreSpec", "RetryPolicy",
           "RETRY_MODES", "RETRY_POLICIES", "SOURCE_KINDS", "STORE_KINDS"]


class Pipeline:
    """A Cloudflare Queues + Durable Objects pipeline (the user's design)."""

    def __init__(self, name: str = "pipeline") -> None:
        self.name = name
        self.graph = nx.DiGraph(name=name)
        self._strict = True

    # -- building ------------------------------------------------------------------------
    def add_queue(self, name: str, **settings: Any) -> None:
        """A queue and its settings.

        Parameters
        ----------
        name : str
            The queue's name (1-63 lowercase letters, digits and dashes, starting with a letter).
        **settings
            Any of :data:`cdpkit.runtime.settings.QUEUE_SETTINGS`: ``max_batch_size`` (1-100),
            ``max_batch_timeout`` (0-60 s), ``max_retries`` (0-100), ``dead_letter_queue``,
            ``retry_delay`` and ``delivery_delay`` (whole seconds), ``max_concurrency``
            (1-250), ``retention`` (60 s to 14 days). Unset = the semantics profile's default.

        Raises
        ------
        ConfigError
            For an unknown setting (naming the nearest one) or a value out of range.

        Examples
        --------
        >>> p = Pipeline("demo")
        >>> p.add_queue("jobs", max_batch_size=50, max_retries=5)
        >>> p.spec("jobs")
        {'max_batch_size': 50, 'max_retries': 5}
        >>> p.add_queue("jobs2", max_batch_size=500)
        Traceback (most recent call last):
        ...
        cdpkit.errors.ConfigError: queue 'jobs2': max_batch_size=500 is not allowed; allowed: an integer from 1 to 100 (messages)
        """
        check_queue_name(name)
        self._add(name, "queue", QueueSpec(settings), f"queue {name!r}")

    def add_source(self, name: str, *, queue: str, share: float = 1.0,
                   types: list[str] | None = None, via: str = "http") -> None:
        """Where messages enter the pipeline.

        Parameters
        ----------
        name : str
            The source's name (any unique node name).
        queue : str
            The queue it sends to.
        share : float
            The share of the workload's messages (of ``types``) that enter here, 0 < share <= 1.
        types : list of str, optional
            The workload's message types that enter here (default: all).
        via : {"http", "cron", "producer"}
            An HTTP ingress Worker, a cron trigger, or another producer.

        Examples
        --------
        >>> p = Pipeline("demo")
        >>> p.add_queue("jobs")
        >>> p.add_source("web", queue="jobs", types=["click"], share=0.5)
        >>> p.spec("web")
        SourceSpec(queue='jobs', share=0.5, types=['click'], via='http')
        """
        self._add(name, "source", SourceSpec(queue, share, types, via), f"source {name!r}")

    def add_consumer(self, queue: str, *, service: Any = None, failure: float = 0.0,
                     permanent: float = 0.0, retry: Any = None, publish: list[str] | None = None,
                     routes: dict[str, str] | None = None, calls: str | None = None,
                     writes: list[str] | None = None, handler: Any = None, pull: dict | None = None,
                     parallel: bool = False) -> None:
        """The consumer of ``queue``: a behaviour spec, or user ``handler`` code.

        Parameters
        ----------
        queue : str
            The queue it consumes (node ``"<queue>.consumer"``).
        service : dict, optional
            ``{"base": dist, "per_message": dist}``: seconds per batch plus per message; a
            dist is a number or ``{"exp": mean}``, ``{"uniform": [lo, hi]}``, ... (see :class:`Dist`).
        failure : float
            Probability that one attempt at a message fails (it is retried).
        permanent : float
            Share of failing messages that fail on every attempt (poison messages).
        retry : dict, optional
            ``{"policy": "fixed" | "exponential", "base": s, "cap": s, "mode": "per_message" |
            "retry_all"}``; delays are whole seconds.
        publish : list of str
            Queues every acked message is published to.
        routes : dict
            Message type -> queue or actor (type-routed consumers).
        calls : str, optional
            The actor each acked message is sent to.
        writes : list of str
            Stores written once per acked message.
        handler : callable, optional
            ``async def handler(batch, env, ctx)``: user code instead of the spec.
        pull : dict, optional
            An HTTP pull consumer (``type = "http_pull"``) instead of a push consumer:
            ``{"interval": s, "batch_size": 1-100, "concurrency": 1-250, "visibility_timeout": s}``
            (see :func:`~cdpkit.model.specs.parse_pull`); the queue's ``visibility_timeout_ms``
            is the lease a pull gets by default. Exported to ``provision.sh``, not to the config.
        parallel : bool
            Process a batch's messages concurrently (the seed's ``Promise.all``): each acked
            message's writes and actor call run in turn, all messages at once; the batch ends
            when the slowest message is done. False: one message after another.

        Examples
        --------
        >>> p = Pipeline("demo")
        >>> p.add_queue("jobs")
        >>> p.add_consumer("jobs", service={"per_message": 0.001}, failure=0.01,
        ...                retry={"policy": "exponential", "base": 5, "cap": 60})
        >>> p.spec("jobs.consumer").retry
        RetryPolicy(policy='exponential', base=5, cap=60, mode='per_message')
        >>> p.add_consumer("jobs", publish="events")
        Traceback (most recent call last):
        ...
        cdpkit.errors.ConfigError: node 'jobs.consumer' already exists in pipeline 'demo'; allowed: unique names
        """
        where = f"consumer of {queue!r}"
        service = {} if service is None else service
        if not isinstance(service, dict) or set(service) - {"base", "per_message"}:
            raise ConfigError(f"{where}: service={service!r} is not allowed; allowed: "
                              "{'base': dist, 'per_message': dist} (seconds)")
        spec = ConsumerSpec(service.get("base", 0.0), service.get("per_message", 0.0), failure,
                            permanent, retry, publish, routes, calls, writes, handler, pull, parallel)
        self._add(f"{queue}.consumer", "consumer", spec, where, queue=queue)

    def add_actor(self, name: str, *, service: Any = 0.0, instances: int = 1, skew: float = 0.0,
                  calls: list[str] | None = None, publish: list[str] | None = None,
                  writes: list[str] | None = None, binding: str | None = None,
                  cls: type | None = None, method: str = "handle", worker: str | None = None) -> None:
        """A Durable Object class: a behaviour spec, or user code ``cls``.

        Parameters
        ----------
        name : str
            Its class name (a JavaScript identifier, not a reserved word).
        service : dist
            Seconds of the object's serial time per call (a number or ``{"exp": mean}``, ...).
        instances : int
            How many distinct keys (objects) calls are spread over.
        skew : float
            Zipf exponent of the key popularity (0 = uniform).
        calls, publish, writes : list of str
            Child actors called, queues published to and stores written, once per call.
        binding : str, optional
            Its binding name (default: the class name in UPPER_SNAKE_CASE).
        cls : type, optional
            A :class:`cdpkit.Actor` subclass with ``async def handle(self, body)``; ``body``
            is ``{"type", "size", "origin", "origin_time"}``.
        method : str
            The RPC method callers use (named in the Worker skeleton).
        worker : str, optional
            Another Worker that defines the class (the export binds it with ``script_name``).

        Examples
        --------
        >>> p = Pipeline("demo")
        >>> p.add_actor("ProfileScorer", service={"exp": 0.002}, instances=10, skew=1.2)
        >>> p.spec("ProfileScorer").binding
        'PROFILE_SCORER'
        >>> p.add_actor("class")
        Traceback (most recent call last):
        ...
        cdpkit.errors.ConfigError: actor class name='class' is not allowed; allowed: a JavaScript identifier that is not a reserved word (class, default, delete, ...)
        """
        check_js_identifier(name, "actor class name")
        spec = ActorSpec(service, instances, skew, calls, publish, writes,
                         _snake(name).upper() if binding is None else binding, cls, method, worker)
        self._add(name, "actor", spec, f"actor {name!r}")

    def add_store(self, name: str, *, kind: str = "d1", latency: Any = 0.0) -> None:
        """A store that consumers and actors write to; ``name`` is its binding.

        Parameters
        ----------
        kind : {"kv", "d1", "analytics", "sink"}
            A KV namespace, a D1 database, an Analytics Engine dataset, or a sink (an outside
            HTTP endpoint).
        latency : dist
            Seconds of I/O per write.

        Examples
        --------
        >>> p = Pipeline("demo")
        >>> p.add_store("DB", kind="d1", latency=0.005)
        >>> p.spec("DB").latency.mean
        0.005
        """
        if not isinstance(name, str) or not BINDING_NAME.fullmatch(name):
            raise ConfigError(f"store {name!r}: the name is its binding and must be a JavaScript identifier")
        self._add(name, "store", StoreSpec(kind, latency, name), f"store {name!r}")

    def _add(self, node: str, kind: str, spec: Any, where: str, **attrs: Any) -> None:
        self._new_node(node)
        self.graph.add_node(node, kind=kind, spec=spec.validated(where), **attrs)
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
                self._edge(node, spec.queue, "sends")
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
            if kind == "source" and g.nodes[data["spec"].queue]["kind"] != "queue":
                raise ConfigError(f"source {node!r} sends to {data['spec'].queue!r}, which is not a queue")
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
        for node in self.nodes("queue"):
            if node not in consumers and ConsumerSettings.of(self.spec(node)).given():
                raise ConfigError(f"queue {node!r} has consumer settings but no consumer; add one "
                                  f"with add_consumer({node!r}, ...)")
        # cycles are allowed only through queues (a queue decouples); actor call cycles deadlock,
        # and a dead-letter cycle would pass a poison message round for ever
        for kind, edges, why in (("actor", ("calls",), "actors call each other in a cycle"),
                                 ("queue", ("dead_letters",), "dead-letter queues form a cycle")):
            sub = nx.DiGraph([(a, b) for a, b, k in g.edges(data="kind") if k in edges
                              and g.nodes[a]["kind"] == kind == g.nodes[b]["kind"]])
            for cycle in nx.simple_cycles(sub):
                start = cycle.index(min(cycle))       # name a cycle the same way every time
                cycle = cycle[start:] + cycle[:start]
                raise ConfigError(f"{why} {' -> '.join([*cycle, cycle[0]])}; allowed: no cycle "
                                  f"({'cycles are allowed only through a queue' if kind == 'actor' else 'a DLQ chain must end'})")

    # -- access ----------------------------------------------------------------------------
    def nodes(self, kind: str) -> list[str]:
        return [n for n, d in self.graph.nodes(data=True) if d["kind"] == kind]

    def spec(self, node: str) -> Any:
        return self.graph.nodes[node]["spec"]

    def set(self, key: str, value: Any, why: str | None = None) -> Pipeline:
        """A copy with one setting changed, validated as ``add_*`` validates it.

        Parameters
        ----------
        key : str
            ``"<queue>.<setting>"`` (a queue setting; ``None`` unsets it),
            ``"<queue>.consumer.<field>"``, ``"<Actor>.<field>"``, ``"<store>.<field>"`` or
            ``"<source>.<field>"``: a field of that node's spec (:class:`ConsumerSpec`, ...).
        value
            The new value (a dict for distributions and retry policies, as in ``add_*``).
        why : str, optional
            Where the value came from (e.g. ``"sweep row 3: p99 1.2 s, $4.10/month"``); the
            export writes it as a comment next to the setting (see :attr:`provenance`).

        Raises
        ------
        ConfigError
            For an unknown node or field, or a value ``add_*`` would refuse.

        Examples
        --------
        >>> p = Pipeline("demo")
        >>> p.add_queue("jobs", max_batch_size=10)
        >>> p.add_consumer("jobs")
        >>> p.set("jobs.max_batch_size", 50).spec("jobs")["max_batch_size"]
        50
        >>> p.set("jobs.consumer.failure", 2.0)
        Traceback (most recent call last):
        ...
        cdpkit.errors.ConfigError: setting 'jobs.consumer.failure': consumer of 'jobs': failure=2.0 is not allowed; allowed: a probability from 0 to 1
        """
        node, _, attr = key.rpartition(".") if isinstance(key, str) else ("", "", "")
        if node not in self.graph:
            raise ConfigError(f"setting {key!r}: no node {node!r}; allowed: '<node>.<field>' with a "
                              f"node of {', '.join(sorted(self.graph))}")
        data = self.graph.nodes[node]
        spec, kind = data["spec"], data["kind"]
        where = f"consumer of {data['queue']!r}" if kind == "consumer" else f"{kind} {node!r}"
        if kind == "queue":
            check_setting_names([attr], f"setting {key!r}")
            changed = QueueSpec({**spec, attr: value})
        else:
            names = [f.name for f in fields(spec)]
            if attr not in names:
                raise ConfigError(f"setting {key!r}: {kind} {node!r} has no field {attr!r}; "
                                  f"allowed: {', '.join(names)}")
            changed = replace(spec, **{attr: value})
        try:
            changed = changed.validated(where)
        except ConfigError as exc:
            raise ConfigError(f"setting {key!r}: {exc}") from None
        copy_ = self.copy()
        copy_.graph.nodes[node]["spec"] = changed
        copy_.wire(strict=False)
        if why is not None:
            copy_.provenance[key] = str(why)
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
    def faults(self) -> Faults:
        """The pipeline's fault timeline (the model file's ``faults:`` section), which
        ``simulate`` applies unless given others; empty by default."""
        return self.graph.graph.setdefault("faults", Faults())

    @faults.setter
    def faults(self, value: Any) -> None:
        faults = Faults(value)
        faults.check({n: d["kind"] for n, d in self.graph.nodes(data=True)},
                     dead_letter_queues=[self.spec(q).get("dead_letter_queue") for q in self.nodes("queue")])
        self.graph.graph["faults"] = faults

    @property
    def provenance(self) -> dict[str, str]:
        """Why settings have their values: ``{"jobs.max_batch_size": "sweep row 3: ..."}``."""
        return self.graph.graph.setdefault("provenance", {})

    # -- model files ---------------------------------------------------------------------
    @classmethod
    def from_yaml(cls, path_or_text: str | Any) -> Pipeline:
        """Read a model file (YAML or JSON) or YAML text (see :meth:`from_dict` for the format).

        >>> p = Pipeline.from_yaml("examples/cdp-gateway.yaml")   # doctest: +SKIP
        """
        return cls.from_dict(io.load_document(path_or_text))

    @classmethod
    def from_dict(cls, data: Any) -> Pipeline:
        """Build a pipeline from plain data, as a YAML or JSON model file holds it::

            name: cdp-gateway
            sources:   {http: {queue: cdp-command-queue}}
            queues:
              cdp-command-queue:
                max_batch_size: 10             # any queue setting
                consumer: {service: {base: 0.005, per_message: 0.001}, failure: 0.01,
                           retry: {policy: exponential, base: 5, cap: 60}, calls: Orchestrator}
            actors:    {Orchestrator: {service: 0.003, instances: 100, publish: [cdp-event-queue]}}
            stores:    {DB: {kind: d1, latency: 0.005}}

        The fields of each section are the keyword arguments of ``add_source``, ``add_queue``
        (plus ``consumer``: those of ``add_consumer``), ``add_actor`` and ``add_store``.

        >>> p = Pipeline.from_dict({"name": "d", "sources": {"http": {"queue": "jobs"}},
        ...                         "queues": {"jobs": {"max_batch_size": 5, "consumer": {}}}})
        >>> p.spec("jobs")
        {'max_batch_size': 5}
        >>> Pipeline.from_dict({"queues": {"jobs": {"max_batch_sise": 5}}})
        Traceback (most recent call last):
        ...
        cdpkit.errors.ConfigError: queues.jobs: unknown setting 'max_batch_sise' (did you mean 'max_batch_size'?); allowed: max_batch_size, max_batch_timeout, max_retries, dead_letter_queue, retry_delay, max_concurrency, visibility_timeout_ms, delivery_delay, retention, consumer
        """
        data = io.check_keys("model", data, SECTIONS)
        name = data.get("name", "pipeline")
        if not isinstance(name, str) or not name:
            raise ConfigError(f"name={name!r} is not allowed; allowed: a non-empty string")
        p = cls(name)

        def section(key: str) -> dict:
            value = data.get(key) or {}
            if not isinstance(value, dict):
                raise ConfigError(f"{key}: expected a mapping of name -> settings, got {type(value).__name__}")
            return value

        def build(where: str, method, name: str, spec: Any, allowed: tuple[str, ...]) -> None:
            spec = io.check_keys(where, spec, allowed)
            try:
                method(name, **spec)
            except ConfigError as exc:
                raise ConfigError(f"{where}: {exc}") from None

        for name, spec in section("stores").items():
            build(f"stores.{name}", p.add_store, name, spec, _keywords(p.add_store))
        for name, spec in section("queues").items():
            spec = dict(io.check_keys(f"queues.{name}", spec, (*QUEUE_SETTING_NAMES, "consumer"),
                                      what="setting"))
            consumer = spec.pop("consumer", None)
            build(f"queues.{name}", p.add_queue, name, spec, QUEUE_SETTING_NAMES)
            if consumer is not None:
                build(f"queues.{name}.consumer", p.add_consumer, name, consumer,
                      _keywords(p.add_consumer, "handler"))
        for name, spec in section("actors").items():
            build(f"actors.{name}", p.add_actor, name, spec, _keywords(p.add_actor, "cls"))
        for name, spec in section("sources").items():
            if isinstance(spec, dict) and "queue" not in spec:
                raise ConfigError(f"sources.{name}: missing field 'queue' (the queue it sends to)")
            build(f"sources.{name}", p.add_source, name, spec, _keywords(p.add_source))
        provenance = data.get("provenance") or {}
        if not isinstance(provenance, dict) or not all(isinstance(v, str) for v in provenance.values()):
            raise ConfigError(f"provenance: {provenance!r:.80} is not allowed; allowed: a mapping of "
                              "'<node>.<setting>' -> why (text)")
        p.provenance.update(provenance)
        p.validate()
        if data.get("faults"):
            p.faults = data["faults"]
        return p

    def to_dict(self) -> dict:
        """Plain data that :meth:`from_dict` turns back into an equal pipeline.

        >>> p = Pipeline("d")
        >>> p.add_queue("jobs", max_batch_size=5)
        >>> p.add_source("http", queue="jobs")
        >>> p.add_consumer("jobs")
        >>> Pipeline.from_dict(p.to_dict()).to_dict() == p.to_dict()
        True
        """
        out: dict[str, Any] = {"name": self.name, "sources": {}, "queues": {}, "actors": {}, "stores": {}}
        for node in self.nodes("source"):
            spec = self.spec(node)
            out["sources"][node] = _changed(spec, SourceSpec(spec.queue), keep=("queue",))
        for node in self.nodes("queue"):
            out["queues"][node] = dict(self.spec(node))
        for node in self.nodes("consumer"):
            spec = self.spec(node)
            if spec.handler is not None:
                raise ConfigError(f"consumer {node!r} runs Python handler code, which a model file cannot hold")
            c = {"service": {"base": spec.base.to_data(), "per_message": spec.per_message.to_data()},
                 **_changed(spec, ConsumerSpec(), skip=("base", "per_message", "retry"))}
            c["retry"] = vars(spec.retry).copy()
            out["queues"][self.graph.nodes[node]["queue"]]["consumer"] = c
        for node in self.nodes("actor"):
            spec = self.spec(node)
            if spec.cls is not None:
                raise ConfigError(f"actor {node!r} runs Python code ({spec.cls.__name__}), which a "
                                  "model file cannot hold")
            out["actors"][node] = {"service": spec.service.to_data(), "instances": spec.instances,
                                   "binding": spec.binding,
                                   **_changed(spec, ActorSpec(), skip=("service", "instances", "binding"))}
        for node in self.nodes("store"):
            spec = self.spec(node)
            out["stores"][node] = {"kind": spec.kind, "latency": spec.latency.to_data()}
        out["provenance"] = dict(self.provenance)
        out["faults"] = self.faults.to_list()
        return {k: v for k, v in out.items() if v or k == "name"}

    def to_yaml(self) -> str:
        """The model file (YAML) of this pipeline."""
        return io.dump_yaml(self.to_dict())

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


SECTIONS = ("name", "sources", "queues", "actors", "stores", "provenance", "faults")
QUEUE_SETTING_NAMES = tuple(QUEUE_SETTINGS)


def _keywords(method: Any, *code_only: str) -> tuple[str, ...]:
    """The keyword arguments of an ``add_*`` method a model file may give (not user code)."""
    return tuple(name for name, param in inspect.signature(method).parameters.items()
                 if param.kind is param.KEYWORD_ONLY and name not in code_only)


def _changed(spec: Any, default: Any, keep: tuple[str, ...] = (), skip: tuple[str, ...] = ()) -> dict:
    """The fields of ``spec`` that differ from ``default`` (and those in ``keep``), as plain data."""
    return {f.name: getattr(spec, f.name) for f in fields(spec)
            if f.name not in skip and (f.name in keep or getattr(spec, f.name) != getattr(default, f.name))}


def _snake(name: str) -> str:
    out = []
    for i, ch in enumerate(name):
        if ch.isupper() and i and not name[i - 1].isupper():
            out.append("_")
        out.append(ch)
    return "".join(out)

