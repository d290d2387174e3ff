"""Validate a Wrangler config: wrangler's own JSON schema, then cdpkit's rules.

The schema is the installed wrangler's ``config-schema.json`` (``npm ci`` puts it in
``node_modules/wrangler/``; ``CDPKIT_WRANGLER_SCHEMA`` points elsewhere). cdpkit's rules
add what the schema cannot say: Cloudflare's limits on consumer settings, queue, binding
and Worker names, dead-letter wiring, and a migration for every class a Worker defines.
"""

from __future__ import annotations

import difflib
import json
import os
import warnings
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..runtime.limits import (
    check_binding_name,
    check_js_identifier,
    check_queue_name,
    check_worker_name,
)
from ..runtime.queues import ConsumerSettings
from ..runtime.semantics import PRODUCTION


def schema_path() -> Path:
    """Where wrangler's ``config-schema.json`` is (env var, else ``node_modules`` upwards)."""
    given = os.environ.get("CDPKIT_WRANGLER_SCHEMA")
    if given:
        return Path(given)
    for base in (Path.cwd(), *Path.cwd().parents, Path(__file__).resolve().parents[2]):
        candidate = base / "node_modules" / "wrangler" / "config-schema.json"
        if candidate.exists():
            return candidate
    raise FileNotFoundError("wrangler's config-schema.json was not found; run `npm ci` in the "
                            "cdpkit checkout (or set CDPKIT_WRANGLER_SCHEMA)")


@lru_cache(maxsize=2)
def _schema(path: str) -> dict:
    return json.loads(Path(path).read_text())


@lru_cache(maxsize=2)
def _validator(path: str):
    import jsonschema
    return jsonschema.Draft7Validator(_schema(path))


def _where(path: list) -> str:
    """``['queues', 'consumers', 0]`` -> ``queues.consumers[0]``."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else f"{'.' if out else ''}{part}"
    return out or "(top level)"


def schema_errors(config: dict) -> list[str]:
    """Messages for every place ``config`` breaks wrangler's schema (empty: valid)."""
    validator = _validator(str(schema_path()))
    errors = sorted(validator.iter_errors(config), key=lambda e: [str(x) for x in e.absolute_path])
    return [f"{_where(list(e.absolute_path))}: {e.message}" for e in errors]


def unknown_keys(config: dict) -> list[str]:
    """Every key wrangler's schema does not know, with the nearest valid one (difflib).

    >>> unknown_keys({"name": "w", "queues": {"consumers": [{"queue": "q", "max_batch_sise": 10}]}})
    ["queues.consumers[0] (queue 'q'): unknown key 'max_batch_sise'; did you mean 'max_batch_size'?"]
    """
    schema = _schema(str(schema_path()))
    found: list[str] = []

    def walk(value: Any, node: dict, path: list) -> None:
        while "$ref" in node:      # '#/definitions/Name'
            node = schema["definitions"][node["$ref"].rsplit("/", 1)[-1]]
        if isinstance(value, dict):
            known, extra = node.get("properties", {}), node.get("additionalProperties", True)
            for key, sub in value.items():
                if key in known:
                    walk(sub, known[key], [*path, key])
                elif isinstance(extra, dict):
                    walk(sub, extra, [*path, key])
                elif extra is False:
                    near = difflib.get_close_matches(str(key), list(known), n=1)
                    hint = (f"did you mean {near[0]!r}?" if near
                            else f"allowed: {', '.join(sorted(known)) or 'none'}")
                    label = next((f" ({k} {value[k]!r})" for k in ("queue", "binding", "class_name", "name")
                                  if isinstance(value.get(k), str) and path), "")
                    found.append(f"{_where(path)}{label}: unknown key {key!r}; {hint}")
        elif isinstance(value, list) and isinstance(node.get("items"), dict):
            for i, item in enumerate(value):
                walk(item, node["items"], [*path, i])

    walk(config, {"$ref": schema["$ref"]}, [])
    return found


def _with_schema(check: Callable[[], list[str]], otherwise: str, stacklevel: int) -> list[str]:
    """``check()``'s problems; without wrangler's config-schema.json (wrangler not installed) a
    warning saying ``otherwise``, unless CDPKIT_WRANGLER_SCHEMA says the schema must be there."""
    try:
        return check()
    except FileNotFoundError as missing:
        if os.environ.get("CDPKIT_WRANGLER_SCHEMA"):
            raise
        warnings.warn(f"{missing}; {otherwise}", stacklevel=stacklevel + 1)   # as seen from the caller
        return []


# What cdpkit's import reads from each table: it must be a list of tables with these strings.
IMPORTED = {"queues.producers": ("binding", "queue"), "queues.consumers": ("queue",),
            "durable_objects.bindings": ("name", "class_name"), "kv_namespaces": ("binding",),
            "d1_databases": ("binding",), "analytics_engine_datasets": ("binding",)}


def check_imported(config: Any, path: str) -> None:
    """Raise ConfigError naming the file, the table and the field for anything ``config``
    (read from ``path``) gets wrong: unknown or misspelled keys (with the nearest valid one),
    whatever wrangler's schema rejects, and the fields the import reads. Without wrangler
    installed it warns and checks the fields the import reads."""
    if not isinstance(config, dict):
        raise ConfigError(f"{path}: the top level must be a table of settings, not {type(config).__name__}")
    problems = _with_schema(lambda: unknown_keys(config) or schema_errors(config),
                            "unknown keys are not checked", stacklevel=3)
    if problems:
        raise ConfigError(f"{path}: " + "; ".join(problems[:5]))
    if not isinstance(config.get("name"), str):
        raise ConfigError(f"{path}: name={config.get('name')!r} is not allowed; allowed: the Worker's name")
    for table, needed in IMPORTED.items():
        *outer, inner = table.split(".")
        holder: Any = config
        for key in outer:
            holder = holder.get(key) or {}
            if not isinstance(holder, dict):
                raise ConfigError(f"{path}: {key} must be a table, not {type(holder).__name__}")
        entries = holder.get(inner) or []
        if not isinstance(entries, list):
            raise ConfigError(f"{path}: {table} must be a list of tables ([[{table}]]), not {type(entries).__name__}")
        for i, entry in enumerate(entries):
            if not isinstance(entry, dict):
                raise ConfigError(f"{path}: {table}[{i}] must be a table, not {type(entry).__name__}")
            for field_name in needed:
                if not isinstance(entry.get(field_name), str):
                    raise ConfigError(f"{path}: {table}[{i}].{field_name}={entry.get(field_name)!r} is not "
                                      f"allowed; allowed: a string (required)")


def validate_config(config: dict[str, Any], others: list[dict] = ()) -> None:
    """Raise ConfigError naming the field if ``config`` is not deployable.

    The config is checked against wrangler's own ``config-schema.json`` (from the pinned npm
    package), then against cdpkit's rules: names, consumer settings in range, every Durable
    Object class introduced by a migration, ``script_name`` naming one of ``others``.

    Parameters
    ----------
    config : dict
        One Worker's config as plain data (see :func:`cdpkit.deploy.configs`).
    others : list of dict
        The configs of other Workers it binds Durable Objects from (``script_name``).

    Raises
    ------
    ConfigError
        Naming the Worker, the field and what is allowed. Without wrangler installed (no
        ``config-schema.json``) it warns and applies cdpkit's rules only.

    Examples
    --------
    >>> import warnings
    >>> config = {"name": "demo", "main": "src/index.ts", "compatibility_date": "2025-09-01",
    ...           "queues": {"consumers": [{"queue": "jobs", "max_batch_size": 500}]}}
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore")
    ...     validate_config(config)
    Traceback (most recent call last):
    ...
    cdpkit.errors.ConfigError: queues.consumers[0]: queue 'jobs': max_batch_size=500 is not allowed; allowed: an integer from 1 to 100 (messages)
    """
    problems = _with_schema(lambda: schema_errors(config), "checked with cdpkit's rules only", stacklevel=2)
    if problems:
        raise ConfigError(f"{config.get('name', '?')}: wrangler's config-schema.json rejects the config: "
                          + "; ".join(problems[:5]))
    check_worker_name(config.get("name"), "name")
    queues = config.get("queues") or {}
    for i, producer in enumerate(queues.get("producers") or []):
        check_queue_name(producer["queue"], f"queues.producers[{i}].queue")
        check_binding_name(producer["binding"])
    for i, consumer in enumerate(queues.get("consumers") or []):
        where = f"queues.consumers[{i}]"
        check_queue_name(consumer["queue"], f"{where}.queue")
        settings = ConsumerSettings.of({k: v for k, v in consumer.items() if v is not None})
        try:
            settings.validated(consumer["queue"], PRODUCTION)
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None
    migrated = set()
    for m in config.get("migrations") or []:
        migrated.update(m.get("new_sqlite_classes") or [])
        migrated.update(m.get("new_classes") or [])
        migrated.update(r["to"] for r in m.get("renamed_classes") or [])
    elsewhere = {o.get("name") for o in others}
    for i, b in enumerate((config.get("durable_objects") or {}).get("bindings") or []):
        check_binding_name(b["name"])
        check_js_identifier(b["class_name"], f"durable_objects.bindings[{i}].class_name")
        script = b.get("script_name")
        if script is None and b["class_name"] not in migrated:
            raise ConfigError(f"durable_objects.bindings[{i}]: class {b['class_name']!r} has no "
                              "migration; add it to new_sqlite_classes of a [[migrations]] entry")
        if script is not None and others and script not in elsewhere:
            raise ConfigError(f"durable_objects.bindings[{i}]: script_name={script!r} is not one of "
                              f"the Workers exported with it: {', '.join(sorted(elsewhere))}")
    for key in ("kv_namespaces", "d1_databases", "analytics_engine_datasets"):
        for b in config.get(key) or []:
            check_binding_name(b["binding"])
