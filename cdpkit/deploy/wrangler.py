"""Deployable Wrangler configuration from a Pipeline, and back.

:func:`configs` builds one plain config dict per Worker (the same data for TOML and
JSONC), with :func:`notes` saying where tuned values came from; :func:`to_toml` and
:func:`to_jsonc` write them (tomlkit; a small JSONC writer), :func:`from_wrangler` reads a
``wrangler.toml`` / ``wrangler.jsonc`` back into a Pipeline (JSONC with ``json5``).

What imported configs declare but the model does not derive (a binding no modelled node
uses, a producer in another Worker, keys cdpkit does not model such as ``triggers``, real
KV ids) is kept in ``p.graph.graph["wrangler"]`` and written back by :func:`configs`, so
export -> import -> export gives the same configs; :func:`unmodelled` lists it.

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
import warnings
from pathlib import Path
from typing import Any

import json5
import numpy as np
import tomlkit

from ..errors import ConfigError
from ..model.pipeline import Pipeline
from ..runtime.limits import check_js_identifier, check_worker_name
from ..runtime.settings import QUEUE_SETTINGS, settings_in
from .schema import check_imported
from .sensitive import looks_secret

COMPATIBILITY_DATE = "2025-09-01"
MAIN = "src/index.ts"
# [[queues.consumers]] and [[queues.producers]] keys of a queue's settings (the settings table)
CONSUMER_KEYS = tuple(s.name for s in settings_in("consumer"))
PRODUCER_KEYS = tuple(s.name for s in settings_in("producer"))
# the [[queues.consumers]] keys an http_pull consumer takes (wrangler's `queues consumer http add`)
# the settings a pull consumer has (those with a `wrangler queues consumer http add` option)
PULL_CONFIG_KEYS = tuple(s.name for s in QUEUE_SETTINGS.values() if s.pull_flag)
PLACEHOLDER_ID = "00000000000000000000000000000000"   # replaced after `wrangler ... create`
_SURROGATE = re.compile("[\ud800-\udfff]")
Note = tuple  # a path into a config: ("queues", "consumers", 0, "max_batch_size")
# The binding tables cdpkit models: what names an entry, and the fields the model owns.
# Other fields of an imported entry (a real KV id, visibility_timeout_ms, ...) are kept.
TABLES = {"queues.producers": ("queue", {"binding", "queue", *PRODUCER_KEYS}),
          "queues.consumers": ("queue", {"queue", *CONSUMER_KEYS}),
          "durable_objects.bindings": ("class_name", {"name", "class_name", "script_name"}),
          "kv_namespaces": ("binding", {"binding"}),
          "d1_databases": ("binding", {"binding"}),
          "analytics_engine_datasets": ("binding", {"binding"})}
MODELLED = {"name", "vars", "queues", "durable_objects", "migrations", "kv_namespaces",
            "d1_databases", "analytics_engine_datasets"}
# top-level keys kept from an import without a warning (they do not change behaviour)
QUIET = {"$schema", "main", "compatibility_date", "migrations", "account_id"}
# names the Worker skeleton declares or uses as globals: an actor class would shadow them
SKELETON_NAMES = {"Env", "Body", "DurableObject", "keyOf", "count", "seen", "ensureQueue", "sendToQueue",
                  "Response", "Request", "URL", "Math", "JSON", "String", "Error", "Promise", "Record",
                  "crypto", "fetch", "ExecutionContext", "MessageBatch", "Queue", "DurableObjectNamespace",
                  "KVNamespace", "D1Database", "AnalyticsEngineDataset"}


def binding_of(queue: str) -> str:
    """The default binding of a queue: ``cdp-command-queue`` -> ``CDP_COMMAND_QUEUE``.

    Examples
    --------
    >>> binding_of("cdp-command-queue")
    'CDP_COMMAND_QUEUE'
    """
    return queue.upper().replace("-", "_")


def _declared(p: Pipeline, part: str) -> dict[str, Any]:
    """Per Worker, what imported configs declared beyond the model: ``bindings`` (node names
    per table), ``fields`` (unmodelled fields per entry) and ``kept`` (unmodelled top-level keys)."""
    return p.graph.graph.get("wrangler", {}).get(part, {})


def worker_of(p: Pipeline, node: str) -> str:
    """The Worker a node runs in: an actor's ``worker``; a consumer an imported config put in
    another Worker runs there; else the pipeline's own."""
    data = p.graph.nodes[node]
    if data["kind"] == "consumer":
        for worker, tables in _declared(p, "bindings").items():
            if data["queue"] in tables.get("queues.consumers", ()):
                return worker
    return (data["spec"].worker if data["kind"] == "actor" else None) or p.name


def workers(p: Pipeline) -> list[str]:
    """The pipeline's Worker names, its own (``p.name``) first.

    Others come from actors with a ``worker`` and from imported configs.

    Raises
    ------
    ConfigError
        If the pipeline's name is not a valid Worker name.
    """
    check_worker_name(p.name, f"pipeline name (the Worker name) {p.name!r}:")
    others = {p.spec(a).worker for a in p.nodes("actor") if p.spec(a).worker}
    others |= set(_declared(p, "bindings")) | set(_declared(p, "kept"))
    return [p.name, *sorted(others - {p.name})]


def _vars(p: Pipeline, worker: str) -> dict[str, Any]:
    """A Worker's vars: the pipeline's for its own Worker, as imported for the others."""
    return p.vars if worker == p.name else _declared(p, "kept").get(worker, {}).get("vars") or {}


def secrets(p: Pipeline) -> list[str]:
    """Names to set with ``wrangler secret put``: sink URLs and vars that look like secrets.

    Never written into a config (see :mod:`cdpkit.deploy.sensitive`); :func:`write_all`
    lists them in ``SECRETS.md``.

    Returns
    -------
    list of str
    """
    names = [f"{s}_URL" for s in p.nodes("store") if p.spec(s).kind == "sink"]
    for worker in workers(p):
        names += [k for k, v in _vars(p, worker).items() if looks_secret(k, v)]
    if p.runtime_queues:
        names += ["CLOUDFLARE_ACCOUNT_ID", "CLOUDFLARE_API_TOKEN"]
    return sorted(set(names))


def _uses(p: Pipeline, worker: str, declared: bool = True) -> tuple[list[str], list[str], list[str], list[str]]:
    """(queues it produces to, queues it consumes, actors it binds, stores it binds);
    ``declared``: with what imported configs declared beyond the model."""
    g = p.graph
    produce, consume, actors, stores = set(), set(), set(), set()
    tables = _declared(p, "bindings") if declared else {}
    bound_elsewhere = {s for t in tables.values() for s in t.get("stores", ())}
    for node, data in g.nodes(data=True):
        if worker_of(p, node) != worker:
            continue
        if data["kind"] == "consumer" and data["spec"].pull is None:   # a pull consumer: see pull_consumers
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
        if (data["kind"] == "store" and worker == p.name and g.in_degree(node) == 0
                and node not in bound_elsewhere):
            stores.add(node)    # declared, not written by anything yet: bound by the main Worker
    mine = tables.get(worker, {})
    kinds = {n: d["kind"] for n, d in g.nodes(data=True)}
    produce |= {q for q in mine.get("queues.producers", ()) if kinds.get(q) == "queue"}
    actors |= {a for a in mine.get("durable_objects.bindings", ()) if kinds.get(a) == "actor"}
    stores |= {s for s in mine.get("stores", ()) if kinds.get(s) == "store"}
    return sorted(produce), sorted(consume), sorted(actors, key=lambda a: p.spec(a).binding), sorted(stores)


def pull_consumers(p: Pipeline) -> dict[str, dict[str, Any]]:
    """Per pulled queue, its ``wrangler queues consumer http add`` settings. wrangler 4.86
    refuses ``type = "http_pull"`` in a config (config-schema.json: ``type`` is the const
    ``"worker"``; "Only \"worker\" consumers can be configured in your Wrangler configuration"),
    though the pull-consumers docs show it, so the export declares them in ``provision.sh``."""
    out = {}
    for node in p.nodes("consumer"):
        pull = p.spec(node).pull
        if pull is not None:
            queue = p.graph.nodes[node]["queue"]
            out[queue] = {k: p.spec(queue)[k] for k in PULL_CONFIG_KEYS if p.spec(queue).get(k) is not None}
    return out


def unmodelled(p: Pipeline) -> list[str]:
    """What the configs declare that no modelled node uses: kept in the export, not simulated.

    >>> import cdpkit as cdp
    >>> unmodelled(cdp.Pipeline.from_yaml("examples/multi-worker.yaml"))
    []
    """
    out = []
    for worker in workers(p):
        with_declared, modelled = _uses(p, worker), _uses(p, worker, declared=False)
        for what, extra in (("produces to queue", set(with_declared[0]) - set(modelled[0])),
                            ("binds Durable Object class", set(with_declared[2]) - set(modelled[2])),
                            ("binds store", set(with_declared[3]) - set(modelled[3]))):
            out += [f"Worker {worker!r} {what} {name!r}, but no modelled node of it uses it"
                    for name in sorted(extra)]
    return out


def _plain(value: Any) -> Any:
    """numpy scalars (a sweep row's ``np.int64(20)``) as the Python values TOML/JSON write."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def configs(p: Pipeline, compatibility_date: str | None = None) -> dict[str, dict]:
    """One Wrangler config (plain data) per Worker, keyed by Worker name.

    Parameters
    ----------
    p : Pipeline
        The design (validated, orphans included).
    compatibility_date : str, optional
        The configs' ``compatibility_date`` (default: an imported config's, else cdpkit's).

    Returns
    -------
    dict
        Worker name -> config (``name``, ``main``, ``compatibility_date``, ``queues``
        (``producers``, ``consumers``), ``durable_objects``, ``migrations``,
        ``kv_namespaces``, ``d1_databases``, ``vars``, ...): what :func:`to_toml` and
        :func:`to_jsonc` write.

    Raises
    ------
    ConfigError
        If the pipeline is invalid, or an actor class has a name the skeleton uses.

    Examples
    --------
    >>> import cdpkit as cdp
    >>> p = cdp.Pipeline("shop")
    >>> p.add_source("http", queue="orders")
    >>> p.add_queue("orders", max_batch_size=50)
    >>> p.add_consumer("orders")
    >>> configs(p)["shop"]["queues"]
    {'producers': [{'binding': 'ORDERS', 'queue': 'orders'}], 'consumers': [{'queue': 'orders', 'max_batch_size': 50}]}
    """
    p.validate(orphans=True)
    for actor in p.nodes("actor"):
        if actor in SKELETON_NAMES:
            raise ConfigError(f"actor class name={actor!r} is not allowed; allowed: a name the Worker "
                              f"skeleton does not declare itself or use as a global ({', '.join(sorted(SKELETON_NAMES))})")
    return {worker: _plain(_config(p, worker, compatibility_date)) for worker in workers(p)}


def _config(p: Pipeline, worker: str, compatibility_date: str | None) -> dict[str, Any]:
    kept = dict(_declared(p, "kept").get(worker, {}))
    fields = _declared(p, "fields").get(worker, {})
    produce, consume, actors, stores = _uses(p, worker)
    c: dict[str, Any] = {"name": worker, "main": kept.pop("main", MAIN),
                         "compatibility_date": compatibility_date or kept.pop("compatibility_date", COMPATIBILITY_DATE)}
    kept.pop("compatibility_date", None)
    plain_vars = {k: v for k, v in sorted(_vars(p, worker).items()) if not looks_secret(k, v)}
    kept.pop("vars", None)
    if plain_vars:
        c["vars"] = plain_vars

    def entry(table: str, item: dict) -> dict:
        """A generated entry with the fields an import kept for it (those the model does not own)."""
        key, owned = TABLES[table]
        extra = fields.get(table, {}).get(item[key], {})
        return {**item, **{k: v for k, v in extra.items() if k not in owned}}

    queues: dict[str, list] = {}
    if produce:
        queues["producers"] = []
        for q in produce:
            producer = {"binding": binding_of(q), "queue": q,
                        **{k: p.spec(q)[k] for k in PRODUCER_KEYS if p.spec(q).get(k) is not None}}
            queues["producers"].append(entry("queues.producers", producer))
    if consume:
        queues["consumers"] = [entry("queues.consumers", {"queue": q, **{k: p.spec(q)[k] for k in CONSUMER_KEYS
                                                                          if p.spec(q).get(k) is not None}})
                               for q in consume]
    if queues:
        c["queues"] = queues
    if actors:
        bindings = []
        for a in actors:
            b = {"name": p.spec(a).binding, "class_name": a}
            if worker_of(p, a) != worker:
                b["script_name"] = worker_of(p, a)
            bindings.append(entry("durable_objects.bindings", b))
        c["durable_objects"] = {"bindings": bindings}
    own = [a for a in actors if worker_of(p, a) == worker]
    migrations = list(kept.pop("migrations", None) or [])
    defined = {cls for m in migrations for key in ("new_sqlite_classes", "new_classes")
               for cls in m.get(key) or []}
    missing = [a for a in own if a not in defined]
    if missing:       # a class the imported migrations do not define yet gets a migration of its own
        migrations.append({"tag": f"v{len(migrations) + 1}", "new_sqlite_classes": missing})
    if migrations:
        c["migrations"] = migrations
    for s in stores:
        spec = p.spec(s)
        if spec.kind == "kv":
            c.setdefault("kv_namespaces", []).append(entry("kv_namespaces", {"binding": s, "id": PLACEHOLDER_ID}))
        elif spec.kind == "d1":
            c.setdefault("d1_databases", []).append(entry("d1_databases", {
                "binding": s, "database_name": database_name(p, s), "database_id": PLACEHOLDER_ID}))
        elif spec.kind == "analytics":
            c.setdefault("analytics_engine_datasets", []).append(
                entry("analytics_engine_datasets", {"binding": s, "dataset": s.lower()}))
    if p.runtime_queues and worker == p.name and "QUEUE_IDS" not in stores:
        c.setdefault("kv_namespaces", []).append({"binding": "QUEUE_IDS", "id": PLACEHOLDER_ID})
    c.update(kept)      # keys cdpkit does not model, as the imported config wrote them
    return c


def database_name(p: Pipeline, store: str) -> str:
    """The ``database_name`` a D1 store gets: ``<pipeline>-<store in kebab case>``."""
    return f"{p.name}-{store.lower().replace('_', '-')}"


def notes(p: Pipeline) -> dict[str, dict[Note, str]]:
    """Per Worker, comments for config paths: where a tuned value came from.

    Values set with ``why=`` (e.g. by :func:`~cdpkit.choose`) get their reason as a comment.

    Returns
    -------
    dict
        Worker name -> {path in the config: comment}.
    """
    out: dict[str, dict[Note, str]] = {}
    for worker, c in configs(p).items():
        found: dict[Note, str] = {}
        for i, consumer in enumerate(c.get("queues", {}).get("consumers", [])):
            for key in consumer:
                why = p.provenance.get(f"{consumer['queue']}.{key}")
                if why:
                    found[("queues", "consumers", i, key)] = _one_line(why)
        for i, producer in enumerate(c.get("queues", {}).get("producers", [])):
            for key in PRODUCER_KEYS:
                why = p.provenance.get(f"{producer['queue']}.{key}")
                if why and key in producer:
                    found[("queues", "producers", i, key)] = _one_line(why)
        out[worker] = found
    return out


def _one_line(text: str) -> str:
    """A comment cannot end early or run onto the next line (no injection through ``why``)."""
    return " ".join(str(text).split())[:200]


# ---------------------------------------------------------------------------- writers


def to_toml(config: dict, comments: dict[Note, str] | None = None, header: str | None = None) -> str:
    """``wrangler.toml`` text of a config (tomlkit: strings escaped as TOML requires).

    Parameters
    ----------
    config : dict
        One Worker's config (from :func:`configs`).
    comments : dict, optional
        Path in the config -> comment (from :func:`notes`).
    header : str, optional
        Lines written as comments at the top.

    Returns
    -------
    str

    Examples
    --------
    >>> print(to_toml({"name": "shop", "vars": {"MODE": "live"}}, header="generated"))
    # generated
    name = "shop"
    <BLANKLINE>
    [vars]
    MODE = "live"
    <BLANKLINE>
    """
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
    """``wrangler.jsonc`` text of a config: JSON (``json.dumps`` escaping) with ``//`` comments.

    Parameters
    ----------
    config : dict
        One Worker's config (from :func:`configs`).
    comments : dict, optional
        Path in the config -> comment (from :func:`notes`).
    header : str, optional
        Lines written as ``//`` comments at the top.

    Returns
    -------
    str

    Examples
    --------
    >>> print(to_jsonc({"name": "shop"}, header="generated"))
    // generated
    {
      "name": "shop"
    }
    <BLANKLINE>
    """
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



def loads_jsonc(text: str) -> Any:
    """JSONC (``//`` and ``/* */`` comments, trailing commas) as plain data, with ``json5``.

    >>> loads_jsonc('{"a": "x // y, ]", // note\\n "b": [1, 2,], /* c */}')
    {'a': 'x // y, ]', 'b': [1, 2]}
    """
    return _pairs(json5.loads(text))


def _pairs(value: Any) -> Any:
    """Join surrogate pairs json5 leaves split: ``"\\ud83d\\ude00"`` is one emoji (as ``json`` reads it)."""
    if isinstance(value, str):
        return value.encode("utf-16", "surrogatepass").decode("utf-16", "surrogatepass") if _SURROGATE.search(value) else value
    if isinstance(value, dict):
        return {_pairs(k): _pairs(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_pairs(v) for v in value]
    return value


def read_config(path: str | Path) -> dict:
    r"""A ``wrangler.toml`` / ``wrangler.json`` / ``wrangler.jsonc`` file as plain data.

    Parameters
    ----------
    path : str or Path
        The file; ``.toml`` is read as TOML, anything else as JSON with comments.

    Returns
    -------
    dict

    Raises
    ------
    ConfigError
        If the file is not valid TOML / JSONC.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "wrangler.toml"
    >>> _ = path.write_text('name = "shop"\n[[queues.producers]]\nbinding = "ORDERS"\nqueue = "orders"\n')
    >>> read_config(path)
    {'name': 'shop', 'queues': {'producers': [{'binding': 'ORDERS', 'queue': 'orders'}]}}
    """
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix == ".toml":
            return tomlkit.parse(text).unwrap()
        return loads_jsonc(text)
    except (tomlkit.exceptions.ParseError, ValueError) as exc:
        raise ConfigError(f"{path}: not a valid Wrangler config ({exc})") from None


# ---------------------------------------------------------------------------- import


def from_wrangler(*paths: str | Path) -> Pipeline:
    """Read Wrangler config file(s) into a Pipeline; the first is the pipeline's own Worker,
    the others are Workers it works with (e.g. defining Durable Object classes it binds
    with ``script_name``).

    Behaviour defaults (a config says nothing about behaviour): every queue with a producer
    binding in the first config gets an HTTP source sending to it; every consumer takes no
    time, never fails and acks; every Durable Object class is an actor with one instance, no
    service time and the RPC method ``handle``; KV and D1 have no latency. Consumer settings,
    dead-letter queues, delivery delays, vars, KV, D1 and Analytics bindings are read as
    written. Actors are not wired to callers (the config does not say who calls them): wire
    them before simulating, e.g. ``p.add_consumer`` with ``calls=`` on a fresh pipeline, or
    ``p.set("<queue>.consumer.calls", "<Actor>")``.

    Nothing a config declares is lost: bindings no modelled node uses, fields and keys
    cdpkit does not model are kept and exported again (a ``UserWarning`` lists what is kept
    but not simulated). A key wrangler does not know is a ConfigError naming the file, the
    table and the nearest valid key; so is every structural problem.
    """
    if not paths:
        raise ConfigError("from_wrangler: give at least one wrangler.toml / wrangler.jsonc path")
    cfgs, pulled = [], {}
    for path in paths:
        c = read_config(path)
        for entry in _take_pull_consumers(c):   # the docs' form, which wrangler's schema refuses
            pulled[entry["queue"]] = (str(path), entry)
        check_imported(c, str(path))
        cfgs.append((str(path), c))
    names = [c["name"] for _, c in cfgs]
    for (path, _), worker in zip(cfgs, names):
        check_worker_name(worker, f"{path}: name")
        if names.count(worker) > 1:
            raise ConfigError(f"{path}: name={worker!r} is not allowed; allowed: one config per Worker")
    main = names[0]
    p = Pipeline(main)
    p._strict = False
    declared: dict[str, dict] = {"bindings": {}, "fields": {}, "kept": {}}
    queues: dict[str, dict] = {}
    producers: list[str] = []
    consumed: dict[str, str] = {}
    origin: dict[str, str] = {}        # the file a queue's settings came from
    kept_notes: list[str] = []
    for path, c in cfgs:
        worker = c["name"]
        tables = declared["bindings"].setdefault(worker, {})
        fields = declared["fields"].setdefault(worker, {})
        for table, (key, owned) in TABLES.items():
            for item in _table(c, table):
                name = item[key]
                bucket = "stores" if "." not in table else table
                tables.setdefault(bucket, []).append(name)
                extra = {k: v for k, v in item.items() if k not in owned}
                if extra:
                    fields.setdefault(table, {})[name] = extra
                    if table.startswith("queues."):
                        kept_notes += [f"{path}: {table} {name!r} {k}" for k in extra]
        kept = {k: v for k, v in c.items() if k not in MODELLED or k == "migrations"}
        if worker != main and c.get("vars"):
            kept["vars"] = c["vars"]
        if kept:
            declared["kept"][worker] = kept
        kept_notes += [f"{path}: {k}" for k in kept if k not in QUIET]
        for producer in _table(c, "queues.producers"):
            spec = queues.setdefault(producer["queue"], {})
            spec.update({k: producer[k] for k in PRODUCER_KEYS if k in producer})
            if worker == main:
                producers.append(producer["queue"])
        for consumer in _table(c, "queues.consumers"):
            queue = consumer["queue"]
            if queue in consumed:
                raise ConfigError(f"{path}: queues.consumers queue={queue!r} is not allowed; it is "
                                  f"consumed by {consumed[queue]!r} already and a queue has one consumer Worker")
            consumed[queue] = worker
            origin[queue] = path
            spec = queues.setdefault(queue, {})
            spec.update({k: consumer[k] for k in CONSUMER_KEYS if k in consumer})
    for queue, (path, entry) in pulled.items():
        if queue in consumed:
            raise ConfigError(f"{path}: queues.consumers queue={queue!r} is not allowed; it has a push "
                              "consumer already and a queue has one consumer")
        queues.setdefault(queue, {}).update({k: entry[k] for k in PULL_CONFIG_KEYS if k in entry})
        kept_notes.append(f"{path}: queues.consumers {queue!r} type = \"http_pull\" (wrangler 4.86 refuses it "
                          "in a config; the export declares it in provision.sh)")
    for spec in list(queues.values()):
        if spec.get("dead_letter_queue"):
            queues.setdefault(spec["dead_letter_queue"], {})
    for queue in sorted(queues):
        where = pulled[queue][0] if queue in pulled else origin.get(queue, str(paths[0]))
        _add(where, f"queues.consumers queue={queue!r}", p.add_queue, queue, **queues[queue])
    for queue in sorted(consumed):
        p.add_consumer(queue)
    for queue in sorted(pulled):
        p.add_consumer(queue, pull={})
    for queue in sorted(set(producers)):
        p.add_source(f"http-{queue}", queue=queue)
    defined: dict[str, str] = {}
    for _, c in cfgs:
        for m in c.get("migrations") or []:
            for cls in (m.get("new_sqlite_classes") or []) + (m.get("new_classes") or []):
                defined[cls] = c["name"]
    for path, c in cfgs:
        for i, b in enumerate(_table(c, "durable_objects.bindings")):
            cls = b["class_name"]
            if cls in p.graph:
                continue
            where = f"durable_objects.bindings[{i}]"
            check_js_identifier(cls, f"{path}: {where}.class_name")
            worker = b.get("script_name") or defined.get(cls, c["name"])
            _add(path, where, p.add_actor, cls, binding=b["name"], worker=None if worker == main else worker)
        for kind, table in (("kv", "kv_namespaces"), ("d1", "d1_databases"),
                            ("analytics", "analytics_engine_datasets")):
            for i, b in enumerate(_table(c, table)):
                if b["binding"] not in p.graph:
                    _add(path, f"{table}[{i}]", p.add_store, b["binding"], kind=kind)
    p.vars.update(cfgs[0][1].get("vars") or {})
    p.wire(strict=False)
    p.graph.graph["wrangler"] = declared
    kept_notes += unmodelled(p)
    if kept_notes:
        warnings.warn("kept in the export as the config wrote it, not simulated: " + "; ".join(kept_notes),
                      UserWarning, stacklevel=2)
    return p


def _take_pull_consumers(config: Any) -> list[dict]:
    """Remove and return the ``type = "http_pull"`` entries of ``queues.consumers``."""
    queues = config.get("queues") if isinstance(config, dict) else None
    consumers = queues.get("consumers") if isinstance(queues, dict) else None
    if not isinstance(consumers, list):
        return []
    pulled = [c for c in consumers if isinstance(c, dict) and c.get("type") == "http_pull"]
    if pulled:
        config["queues"]["consumers"] = [c for c in consumers if c not in pulled]
        for entry in pulled:
            unknown = set(entry) - {"queue", "type", *PULL_CONFIG_KEYS}
            if unknown or not isinstance(entry.get("queue"), str):
                raise ConfigError(f"queues.consumers (type = \"http_pull\") {entry!r}: keys {sorted(unknown)} are not "
                                  f"allowed; allowed: queue, type, {', '.join(PULL_CONFIG_KEYS)}")
    return pulled


def _table(config: dict, table: str) -> list[dict]:
    """The entries of ``queues.producers``, ``kv_namespaces``, ... (checked by check_imported)."""
    *outer, inner = table.split(".")
    for key in outer:
        config = config.get(key) or {}
    return config.get(inner) or []


def _add(path: str, where: str, add: Any, *args: Any, **kwargs: Any) -> None:
    """A model call whose ConfigError names the file and the table it came from."""
    try:
        add(*args, **kwargs)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {where}: {exc}") from None
