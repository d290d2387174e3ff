"""Cost of a simulated run from Cloudflare's published pricing (``cdpkit/data/pricing.yaml``).

Quantities are counted in the run (queue operations per 64 KB, Worker invocations and
CPU, Durable Object requests and active GB-s, KV and D1 operations), then extrapolated to
a 30-day month at the simulated rate, where the monthly free allowances apply.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import yaml

if TYPE_CHECKING:
    from .results import Results

MONTH = 30 * 86_400
CHUNK = 64 * 1024


@lru_cache(maxsize=1)
def pricing() -> dict:
    return yaml.safe_load(resources.files("cdpkit.data").joinpath("pricing.yaml").read_text())


def quantities(res: Results) -> dict[str, float]:
    """What the run used, item by item (keys of pricing.yaml's ``items``)."""
    rt = res.runtime
    led = rt.ledger
    chunks = np.maximum(1, -(-led.column("bytes") // CHUNK))
    operations = 1 + led.deliveries()[0] + (led.column("outcome") != 0)
    ops = int((chunks * operations).sum())   # write, reads, delete per 64 KB chunk
    calls = rt.actor_calls
    active = float((calls["finished"] - calls["started"]).sum()) if len(calls) else 0.0
    kv = rt.kv_namespaces.values()
    d1 = rt.databases.values()
    return {
        "queues_operations": ops,
        "workers_requests": len(rt.recorder._batches),
        "workers_cpu_ms": 1000 * res.consumer_cpu_seconds,
        "do_requests": len(calls),
        "do_duration_gb_s": active * pricing()["do_memory_gb"],
        "kv_reads": sum(s.reads for s in kv),
        "kv_writes": sum(s.writes + s.deletes + s.lists for s in kv),
        "d1_rows_read": sum(db.rows_read for db in d1),
        "d1_rows_written": sum(db.rows_written for db in d1),
    }


def cost_table(res: Results) -> pd.DataFrame:
    """One row per priced item: quantity and cost for the run, and for a month at this rate."""
    table = pricing()
    used = quantities(res)
    scale = MONTH / res.duration
    rows = []
    for key, item in table["items"].items():
        qty = used[key]
        unit = item["per_million"] / 1e6
        monthly = qty * scale
        rows.append({
            "service": item["service"], "item": key, "unit": item["unit"], "quantity": qty,
            "run_cost": qty * unit, "monthly_quantity": monthly,
            "monthly_cost": max(0.0, monthly - item["free_per_month"]) * unit,
        })
    frame = pd.DataFrame(rows)
    frame.attrs["pricing_as_of"] = table["as_of"]
    return frame
