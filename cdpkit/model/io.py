"""Pipelines as YAML/JSON model files, with errors that name the node and the field.

The file format (see ``examples/cdp-gateway.yaml``)::

    name: cdp-gateway
    sources:   {http: {queue: cdp-command-queue}}
    queues:
      cdp-command-queue:
        max_batch_size: 10             # any [[queues.consumers]] setting
        consumer: {service: {base: 0.005, per_message: 0.001}, failure: 0.01,
                   retry: {policy: exponential, base: 5, cap: 60}, calls: Orchestrator}
    actors:    {Orchestrator: {service: 0.003, instances: 100, publish: [cdp-event-queue]}}
    stores:    {DB: {kind: d1, latency: 0.005}}
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from ..errors import ConfigError
from .pipeline import QUEUE_KEYS, Pipeline

SECTIONS = ("name", "sources", "queues", "actors", "stores", "provenance")
CONSUMER_KEYS = ("service", "failure", "permanent", "retry", "publish", "routes", "calls", "writes")
ACTOR_KEYS = ("service", "instances", "skew", "calls", "publish", "writes", "binding", "method", "worker")
SOURCE_KEYS = ("queue", "share", "types", "via")
STORE_KEYS = ("kind", "latency")


def _check_keys(where: str, value: Any, allowed: tuple[str, ...]) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(value).__name__} {value!r:.60}")
    unknown = [k for k in value if k not in allowed]
    if unknown:
        raise ConfigError(f"{where}: unknown field {unknown[0]!r}; allowed: {', '.join(allowed)}")
    return value


def from_dict(data: Any) -> Pipeline:
    """Build a Pipeline from plain data (what a YAML or JSON model file holds)."""
    data = _check_keys("model", data, SECTIONS)
    p = Pipeline(str(data.get("name", "pipeline")))

    def build(where: str, fn, *args, **kwargs):
        try:
            fn(*args, **kwargs)
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        except TypeError as exc:
            raise ConfigError(f"{where}: {exc}") from None

    def section(key: str) -> dict:
        value = data.get(key) or {}
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping of name -> settings, got {type(value).__name__}")
        return value

    for name, spec in section("stores").items():
        spec = _check_keys(f"stores.{name}", spec, STORE_KEYS)
        build(f"stores.{name}", p.add_store, name, **spec)
    for name, spec in section("queues").items():
        spec = dict(_check_keys(f"queues.{name}", spec, (*QUEUE_KEYS, "consumer")))
        consumer = spec.pop("consumer", None)
        build(f"queues.{name}", p.add_queue, name, **spec)
        if consumer is not None:
            consumer = _check_keys(f"queues.{name}.consumer", consumer, CONSUMER_KEYS)
            build(f"queues.{name}.consumer", p.add_consumer, name, **consumer)
    for name, spec in section("actors").items():
        spec = _check_keys(f"actors.{name}", spec, ACTOR_KEYS)
        build(f"actors.{name}", p.add_actor, name, **spec)
    for name, spec in section("sources").items():
        spec = _check_keys(f"sources.{name}", spec, SOURCE_KEYS)
        if "queue" not in spec:
            raise ConfigError(f"sources.{name}: missing field 'queue' (the queue it sends to)")
        build(f"sources.{name}", p.add_source, name, **spec)
    provenance = data.get("provenance") or {}
    if not isinstance(provenance, dict) or not all(isinstance(v, str) for v in provenance.values()):
        raise ConfigError(f"provenance: {provenance!r:.80} is not allowed; allowed: a mapping of "
                          "'<node>.<setting>' -> why (text)")
    p.provenance.update(provenance)
    p.validate()
    return p


def to_dict(p: Pipeline) -> dict:
    """Plain data that :func:`from_dict` turns back into an equal pipeline."""
    out: dict[str, Any] = {"name": p.name, "sources": {}, "queues": {}, "actors": {}, "stores": {}}
    g = p.graph
    for node in p.nodes("source"):
        spec = p.spec(node)
        out["sources"][node] = {"queue": spec["queue"], **({"share": spec["share"]} if spec["share"] != 1 else {}),
                                **({"types": spec["types"]} if spec.get("types") else {}),
                                **({"via": spec["via"]} if spec.get("via", "http") != "http" else {})}
    for node in p.nodes("queue"):
        out["queues"][node] = dict(p.spec(node))
    for node in p.nodes("consumer"):
        spec = p.spec(node)
        if spec.handler is not None:
            raise ConfigError(f"consumer {node!r} runs Python handler code, which a model file cannot hold")
        c: dict[str, Any] = {"service": {"base": spec.base.to_data(), "per_message": spec.per_message.to_data()}}
        if spec.failure:
            c["failure"] = spec.failure
        if spec.permanent:
            c["permanent"] = spec.permanent
        r = spec.retry
        c["retry"] = {"policy": r.policy, "base": r.base, "cap": r.cap, "mode": r.mode}
        for key in ("publish", "routes", "calls", "writes"):
            if getattr(spec, key):
                c[key] = getattr(spec, key)
        out["queues"][g.nodes[node]["queue"]]["consumer"] = c
    for node in p.nodes("actor"):
        spec = p.spec(node)
        if spec.cls is not None:
            raise ConfigError(f"actor {node!r} runs Python code ({spec.cls.__name__}), which a model file cannot hold")
        a: dict[str, Any] = {"service": spec.service.to_data(), "instances": spec.instances,
                             "binding": spec.binding}
        if spec.skew:
            a["skew"] = spec.skew
        if spec.method != "handle":
            a["method"] = spec.method
        if spec.worker is not None:
            a["worker"] = spec.worker
        for key in ("calls", "publish", "writes"):
            if getattr(spec, key):
                a[key] = getattr(spec, key)
        out["actors"][node] = a
    for node in p.nodes("store"):
        spec = p.spec(node)
        out["stores"][node] = {"kind": spec.kind, "latency": spec.latency.to_data()}
    out["provenance"] = dict(p.provenance)
    return {k: v for k, v in out.items() if v or k == "name"}


def from_yaml(path_or_text: str | Path) -> Pipeline:
    """Read a YAML (or JSON) model file, or YAML text."""
    text = _read(path_or_text)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"model file is not valid YAML: {exc}") from None
    return from_dict(data)


def to_yaml(p: Pipeline) -> str:
    return yaml.safe_dump(to_dict(p), sort_keys=False, default_flow_style=None, width=100)


def to_json(p: Pipeline) -> str:
    return json.dumps(to_dict(p), indent=2)


def _read(path_or_text: str | Path) -> str:
    if isinstance(path_or_text, Path) or (isinstance(path_or_text, str) and "\n" not in path_or_text
                                          and path_or_text.endswith((".yaml", ".yml", ".json"))):
        path = Path(path_or_text)
        if not path.exists():
            raise ConfigError(f"model file {str(path)!r} does not exist")
        return path.read_text()
    return str(path_or_text)
