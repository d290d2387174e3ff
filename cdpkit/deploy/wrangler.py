"""Deployable Wrangler configuration from a Pipeline, and back.

:func:`configs` builds one plain config dict per Worker (the same data for TOML and
JSONC), with :func:`notes` saying where tuned values came from; :func:`to_toml` and
:func:`to_jsonc` write them (tomlkit; a small JSONC writer), :func:`from_wrangler` reads a
``wrangler.toml`` / ``wrangler.jsonc`` back into a Pipeline.

>>> import cdpkit as cdp
>>> p = cdp.Pipeline("shop")
>>> p.add_source("http", queue="orders")
>>> p.add_queue("orders", max_batch_size=50, max_retries=5, dead_letter_queue="orders-dlq")
>>> p.add_queue("orders-dlq")
>>> p.add_consumer("orders")
>>> p.add_consumer("orders-dlq")
>>> p = p.set("orders.max_batch_size", 50, why="sweep row 4: p99 0.8 s")
>>> print(to_toml(configs(p)["shop"], notes(p)["shop"]))  # doctest: +ELLIPSIS
name = "shop"
main = "src/index.ts"
compatibility_date = "2025-09-01"
...
[[queues.consumers]]
queue = "orders"
max_batch_size = 50 # sweep row 4: p99 0.8 s
max_retries = 5
dead_letter_queue = "orders-dlq"
...
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import tomlkit

from ..errors import ConfigError
from ..model.pipeline import Pipeline
from ..runtime.limits import check_worker_name

COMPATIBILITY_DATE = "2025-09-01"
MAIN = "src/index.ts"
CONSUMER_KEYS = ("max_batch_size", "max_batch_timeout", "max_retries", "dead_letter_queue",
                 "max_concurrency", "retry_delay")
PLACEHOLDER_ID = "00000000000000000000000000000000"   # replaced after `wrangler ... create`
SECRET_NAME = re.compile(r"SECRET|TOKEN|PASSWORD|PASSWD|API_?KEY|PRIVATE|CREDENTIAL|AUTH", re.I)
SECRET_VALUE = re.compile(r"^(sk|pk|rk|ghp|gho|xox[abp])[_-]|^[A-Za-z0-9+/_\-]{32,}={0,2}$")
Note = tuple  # a path into a config: ("queues", "consumers", 0, "max_batch_size")


def binding_of(queue: str) -> str:
    """``cdp-command-queue`` -> ``CDP_COMMAND_QUEUE``."""
    return queue.upper().replace("-", "_")


def worker_of(p: Pipeline, node: str) -> str:
    """The Worker a node runs in: an actor's ``worker``, else the pipeline's own."""
    data = p.graph.nodes[node]
    return (data["spec"].worker if data["kind"] == "actor" else None) or p.name


def workers(p: Pipeline) -> list[str]:
    """Worker names, the pipeline's own first."""
    check_worker_name(p.name, f"pipeline name (the Worker name) {p.name!r}:")
    others = sorted({p.spec(a).worker for a in p.nodes("actor") if p.spec(a).worker} - {p.name})
    return [p.name, *others]


def looks_secret(name: str, value: Any) -> bool:
    """A var that must not be written into a config file.

    >>> looks_secret("API_TOKEN", "x"), looks_secret("REGION", "eu"), looks_secret("X", "sk_live_123")
    (True, False, True)
    """
    return bool(SECRET_NAME.search(name)) or (isinstance(value, str) and bool(SECRET_VALUE.search(value)))


def secrets(p: Pipeline) -> list[str]:
    """Names to set with ``wrangler secret put``: sink URLs and vars that look like secrets."""
    names = [f"{s}_URL" for s in p.nodes("store") if p.spec(s).kind == "sink"]
    names += [k for k, v in p.vars.items() if looks_secret(k, v)]
    if p.runtime_queues:
        names += ["CLOUDFLARE_ACCOUNT_ID", "CLOUDFLARE_API_TOKEN"]
    return sorted(set(names))


def _uses(p: Pipeline, worker: str) -> tuple[list[str], list[str], list[str], list[str]]:
    """(queues it produces to, queues it consumes, actors it binds, stores it binds)."""
    g = p.graph
    produce, consume, actors, stores = set(), set(), set(), set()
    for node, data in g.nodes(data=True):
        if worker_of(p, node) != worker:
            continue
        if data["kind"] == "consumer":
            consume.add(data["queue"])
        if data["kind"] == "actor":
            actors.add(node)
        for _, target, edge in g.out_edges(node, data=True):
            kind = g.nodes[target]["kind"]
            if edge["kind"] in ("sends", "publishes", "routes") and kind == "queue":
                produce.add(target)
            elif kind == "actor":
                actors.add(target)
            elif kind == "store":
                stores.add(target)
        if data["kind"] == "store" and worker == p.name and g.in_degree(node) == 0:
            stores.add(node)    # declared, not written by anything yet: bound by the main Worker
    return sorted(produce), sorted(consume), sorted(actors, key=lambda a: p.spec(a).binding), sorted(stores)


def configs(p: Pipeline, compatibility_date: str = COMPATIBILITY_DATE) -> dict[str, dict]:
    """One Wrangler config (plain data) per Worker, keyed by Worker name."""
    p.validate(orphans=True)
    out = {}
    for worker in workers(p):
        produce, consume, actors, stores = _uses(p, worker)
        c: dict[str, Any] = {"name": worker, "main": MAIN, "compatibility_date": compatibility_date}
        plain_vars = {k: v for k, v in sorted(p.vars.items()) if not looks_secret(k, v)}
        if plain_vars and worker == p.name:
            c["vars"] = plain_vars
        queues: dict[str, list] = {}
        if produce:
            queues["producers"] = []
            for q in produce:
                producer = {"binding": binding_of(q), "queue": q}
                if p.spec(q).get("delivery_delay") is not None:
                    producer["delivery_delay"] = p.spec(q)["delivery_delay"]
                queues["producers"].append(producer)
        if consume:
            queues["consumers"] = [{"queue": q, **{k: p.spec(q)[k] for k in CONSUMER_KEYS
                                                  if p.spec(q).get(k) is not None}} for q in consume]
        if queues:
            c["queues"] = queues
        if actors:
            bindings = []
            for a in actors:
                b = {"name": p.spec(a).binding, "class_name": a}
                if worker_of(p, a) != worker:
                    b["script_name"] = worker_of(p, a)
                bindings.append(b)
            c["durable_objects"] = {"bindings": bindings}
            own = [a for a in actors if worker_of(p, a) == worker]
            if own:
                c["migrations"] = [{"tag": "v1", "new_sqlite_classes": own}]
        for s in stores:
            spec = p.spec(s)
            if spec.kind == "kv":
                c.setdefault("kv_namespaces", []).append({"binding": s, "id": PLACEHOLDER_ID})
            elif spec.kind == "d1":
                c.setdefault("d1_databases", []).append(
                    {"binding": s, "database_name": database_name(p, s), "database_id": PLACEHOLDER_ID})
            elif spec.kind == "analytics":
                c.setdefault("analytics_engine_datasets", []).append({"binding": s, "dataset": s.lower()})
        if p.runtime_queues and worker == p.name and "QUEUE_IDS" not in stores:
            c.setdefault("kv_namespaces", []).append({"binding": "QUEUE_IDS", "id": PLACEHOLDER_ID})
        out[worker] = c
    return out


def database_name(p: Pipeline, store: str) -> str:
    return f"{p.name}-{store.lower().replace('_', '-')}"


def notes(p: Pipeline) -> dict[str, dict[Note, str]]:
    """Per Worker, comments for config paths: where a tuned value came from."""
    out: dict[str, dict[Note, str]] = {}
    for worker, c in configs(p).items():
        found: dict[Note, str] = {}
        for i, consumer in enumerate(c.get("queues", {}).get("consumers", [])):
            for key in consumer:
                why = p.provenance.get(f"{consumer['queue']}.{key}")
                if why:
                    found[("queues", "consumers", i, key)] = _one_line(why)
        for i, producer in enumerate(c.get("queues", {}).get("producers", [])):
            why = p.provenance.get(f"{producer['queue']}.delivery_delay")
            if why and "delivery_delay" in producer:
                found[("queues", "producers", i, "delivery_delay")] = _one_line(why)
        out[worker] = found
    return out


def _one_line(text: str) -> str:
    """A comment cannot end early or run onto the next line (no injection through ``why``)."""
    return " ".join(str(text).split())[:200]


# ---------------------------------------------------------------------------- writers


def to_toml(config: dict, comments: dict[Note, str] | None = None, header: str | None = None) -> str:
    """``wrangler.toml`` text (tomlkit: strings escaped as TOML requires)."""
    comments = comments or {}
    doc = tomlkit.document()
    if header:
        for line in header.splitlines():
            doc.add(tomlkit.comment(line))
    for key, value in config.items():          # scalars (and [vars]-free lists) first, as TOML needs
        if not isinstance(value, dict) and not _is_tables(value):
            doc.add(key, value)
    for key, value in config.items():
        if isinstance(value, dict):
            table = tomlkit.table(is_super_table=all(_is_tables(v) for v in value.values()))
            for sub, items in value.items():
                table.add(sub, _aot(items, comments, (key, sub)) if _is_tables(items) else items)
            doc.add(key, table)
        elif _is_tables(value):
            doc.add(key, _aot(value, comments, (key,)))
    return tomlkit.dumps(doc)


def _is_tables(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)


def _aot(items: list[dict], comments: dict[Note, str], path: tuple) -> Any:
    """An array of tables, each value with its comment (if any)."""
    aot = tomlkit.aot()
    for i, item in enumerate(items):
        t = tomlkit.table()
        for k, v in item.items():
            t.add(k, v)
            note = comments.get((*path, i, k))
            if note:
                t[k].comment(note)
        aot.append(t)
    return aot


def to_jsonc(config: dict, comments: dict[Note, str] | None = None, header: str | None = None) -> str:
    """``wrangler.jsonc`` text: JSON (``json.dumps`` escaping) with ``//`` comments."""
    comments = comments or {}
    lines = [f"// {line}" for line in (header or "").splitlines()]

    def dump(value: Any, path: tuple, indent: str) -> str:
        if isinstance(value, dict) and value:
            inner = indent + "  "
            parts = []
            for n, (k, v) in enumerate(value.items()):
                comma = "," if n < len(value) - 1 else ""
                note = comments.get((*path, k))
                parts.append(f"{inner}{json.dumps(k, ensure_ascii=False)}: {dump(v, (*path, k), inner)}{comma}"
                             + (f" // {note}" if note else ""))
            return "{\n" + "\n".join(parts) + f"\n{indent}}}"
        if isinstance(value, list) and value and any(isinstance(v, (dict, list)) for v in value):
            inner = indent + "  "
            parts = [f"{inner}{dump(v, (*path, i), inner)}{',' if i < len(value) - 1 else ''}"
                     for i, v in enumerate(value)]
            return "[\n" + "\n".join(parts) + f"\n{indent}]"
        return json.dumps(value, ensure_ascii=False)

    lines.append(dump(config, (), ""))
    return "\n".join(lines) + "\n"


def strip_jsonc(text: str) -> str:
    """JSONC -> JSON: drop ``//`` and ``/* */`` comments outside strings, and trailing commas.

    >>> json.loads(strip_jsonc('{"a": "x // y", // note\\n "b": [1, 2,], /* c */}'))
    {'a': 'x // y', 'b': [1, 2]}
    """
    out, i, n, in_string = [], 0, len(text), False
    while i < n:
        ch = text[i]
        if in_string:
            out.append(ch)
            if ch == "\\":
                out.append(text[i + 1:i + 2])
                i += 1
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
            out.append(ch)
        elif text.startswith("//", i):
            i = text.find("\n", i)
            i = n if i < 0 else i
            continue
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            i = n if end < 0 else end + 2
            continue
        else:
            out.append(ch)
        i += 1
    return re.sub(r",(\s*[}\]])", r"\1", "".join(out))


def read_config(path: str | Path) -> dict:
    """A ``wrangler.toml`` / ``wrangler.json`` / ``wrangler.jsonc`` file as plain data."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix == ".toml":
            return tomlkit.parse(text).unwrap()
        return json.loads(strip_jsonc(text))
    except (tomlkit.exceptions.ParseError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: not a valid Wrangler config ({exc})") from None


# ---------------------------------------------------------------------------- import


def from_wrangler(*paths: str | Path) -> Pipeline:
    """Read Wrangler config file(s) into a Pipeline; the first is the pipeline's own Worker,
    others define Durable Object classes it binds with ``script_name``.

    Behaviour defaults (a config says nothing about behaviour): every queue with a producer
    binding gets an HTTP source sending to it; every consumer takes no time, never fails and
    acks; every Durable Object class is an actor with one instance, no service time and the
    RPC method ``handle``; KV and D1 have no latency. Consumer settings, dead-letter queues,
    delivery delays, vars, KV, D1 and Analytics bindings are read as written. Actors are not
    wired to callers (the config does not say who calls them): wire them before simulating,
    e.g. ``p.add_consumer`` with ``calls=`` on a fresh pipeline, or ``p.set("<queue>.consumer.calls", "<Actor>")``.
    """
    if not paths:
        raise ConfigError("from_wrangler: give at least one wrangler.toml / wrangler.jsonc path")
    cfgs = [read_config(path) for path in paths]
    main = cfgs[0]
    name = main.get("name")
    check_worker_name(name, f"{paths[0]}: name")
    p = Pipeline(name)
    p._strict = False
    queues: dict[str, dict] = {}
    producers: list[str] = []
    consumers: list[str] = []
    for c in cfgs:
        q = c.get("queues") or {}
        for producer in q.get("producers") or []:
            spec = queues.setdefault(producer["queue"], {})
            if "delivery_delay" in producer:
                spec["delivery_delay"] = producer["delivery_delay"]
            if c is main:
                producers.append(producer["queue"])
        for consumer in q.get("consumers") or []:
            spec = queues.setdefault(consumer["queue"], {})
            spec.update({k: consumer[k] for k in CONSUMER_KEYS if k in consumer})
            consumers.append(consumer["queue"])
    for spec in list(queues.values()):
        if spec.get("dead_letter_queue"):
            queues.setdefault(spec["dead_letter_queue"], {})
    for queue in sorted(queues):
        p.add_queue(queue, **queues[queue])
    for queue in sorted(set(consumers)):
        p.add_consumer(queue)
    for queue in sorted(set(producers)):
        p.add_source(f"http-{queue}", queue=queue)
    defined: dict[str, str] = {}
    for c in cfgs:
        for m in c.get("migrations") or []:
            for cls in (m.get("new_sqlite_classes") or []) + (m.get("new_classes") or []):
                defined[cls] = c["name"]
    for c in cfgs:
        for b in (c.get("durable_objects") or {}).get("bindings") or []:
            cls = b["class_name"]
            if cls in p.graph:
                continue
            worker = b.get("script_name") or defined.get(cls, name)
            p.add_actor(cls, binding=b["name"], worker=None if worker == name else worker)
        for kind, key in (("kv", "kv_namespaces"), ("d1", "d1_databases"),
                          ("analytics", "analytics_engine_datasets")):
            for b in c.get(key) or []:
                if b["binding"] not in p.graph:
                    p.add_store(b["binding"], kind=kind)
    p.vars.update(main.get("vars") or {})
    p.wire(strict=False)
    return p
