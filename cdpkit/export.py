"""``cdp.export``: the deployable text of a pipeline (see :mod:`cdpkit.deploy` for files).

>>> import cdpkit as cdp
>>> p = cdp.Pipeline("shop")
>>> p.add_source("http", queue="orders"); p.add_queue("orders"); p.add_consumer("orders")
>>> "[[queues.consumers]]" in cdp.export.wrangler_toml(p)
True
"""

from __future__ import annotations

from .deploy import provisioning, render, secrets, worker_skeleton
from .model.pipeline import Pipeline

__all__ = ["wrangler_toml", "wrangler_jsonc", "provisioning", "worker_skeleton", "secrets"]


def wrangler_toml(p: Pipeline, worker: str | None = None) -> str:
    """``wrangler.toml`` of ``worker`` (default: the pipeline's own Worker)."""
    return render(p, worker, "toml")


def wrangler_jsonc(p: Pipeline, worker: str | None = None) -> str:
    """``wrangler.jsonc`` of ``worker`` (default: the pipeline's own Worker)."""
    return render(p, worker, "jsonc")
