"""Validate a Wrangler config: wrangler's own JSON schema, then cdpkit's rules.

The schema is the installed wrangler's ``config-schema.json`` (``npm ci`` puts it in
``node_modules/wrangler/``; ``CDPKIT_WRANGLER_SCHEMA`` points elsewhere). cdpkit's rules
add what the schema cannot say: Cloudflare's limits on consumer settings, queue, binding
and Worker names, dead-letter wiring, and a migration for every class a Worker defines.
"""

from __future__ import annotations

import json
import os
import warnings
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..runtime.limits import check_binding_name, check_queue_name, check_worker_name
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
def _validator(path: str):
    import jsonschema
    schema = json.loads(Path(path).read_text())
    return jsonschema.Draft7Validator(schema)


def schema_errors(config: dict) -> list[str]:
    """Messages for every place ``config`` breaks wrangler's schema (empty: valid)."""
    validator = _validator(str(schema_path()))
    errors = sorted(validator.iter_errors(config), key=lambda e: list(e.absolute_path))
    return [f"{'.'.join(str(x) for x in e.absolute_path) or '(top level)'}: {e.message}" for e in errors]


def validate_config(config: dict[str, Any], others: list[dict] = ()) -> None:
    """Raise ConfigError naming the field if ``config`` is not deployable.

    ``others``: the configs of other Workers it binds Durable Objects from (``script_name``).
    Without wrangler installed (no ``config-schema.json``) it warns and applies cdpkit's rules.
    """
    try:
        problems = schema_errors(config)
    except FileNotFoundError as missing:
        if os.environ.get("CDPKIT_WRANGLER_SCHEMA"):
            raise
        warnings.warn(f"{missing}; checked with cdpkit's rules only", stacklevel=2)
        problems = []
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
        settings = {k: consumer[k] for k in ConsumerSettings.__dataclass_fields__
                    if consumer.get(k) is not None}
        try:
            ConsumerSettings(**settings).validated(consumer["queue"], PRODUCTION)
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
