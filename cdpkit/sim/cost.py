"""Cost of a run from Cloudflare's published prices (``cdpkit/data/pricing.yaml``, dated, with
the source of every figure).

:func:`quantities` counts what a runtime used, item by item: queue operations per 64 KB
(KB = 1,000 bytes, ~100 bytes of metadata per message inside it), consumer Worker invocations
and CPU, Durable Object requests, active GB-s (wall-clock while any request is in the object,
I/O waits included), SQLite rows and KV-backed storage operations, KV and D1. It reads a
runtime duck-typed (``ledger``, ``recorder``, ``queues``, ``namespaces``, ``kv_namespaces``,
``databases``, ``actor_calls``): this module does not know :class:`~cdpkit.sim.results.Results`.
:func:`cost_table` prices plain quantities for a plan: ``"paid"`` (monthly allowances, the
$5 monthly minimum) or ``"free"`` (daily allowances; nothing is billed, and a rate past an
allowance is flagged, since the Free plan refuses further operations of that kind).
"""

from __future__ import annotations

import math
from functools import lru_cache
from importlib import resources
from typing import Any

import numpy as np
import pandas as pd
import yaml

from ..errors import ConfigError

__all__ = ["pricing", "quantities", "cost_table", "queue_operations", "active_seconds", "PLANS", "MONTH", "DAY"]

DAY = 86_400
MONTH = 30 * DAY
PLANS = ("paid", "free")
GB = 1e9


@lru_cache(maxsize=1)
def pricing() -> dict:
    """The pricing file as plain data."""
    return yaml.safe_load(resources.files("cdpkit.data").joinpath("pricing.yaml").read_text())


def queue_operations(sizes: np.ndarray, deliveries: np.ndarray, finished: np.ndarray) -> int:
    """Queues operations of messages: per 64 KB unit (with ~100 bytes of metadata), one write,
    one read per delivery, one delete once the message is gone (acked, dead-lettered, dropped
    or expired).

    >>> queue_operations(np.array([1_000, 70_000]), np.array([1, 0]), np.array([True, False]))
    5
    """
    table = pricing()
    unit, meta = table["queues_operation_bytes"], table["queues_metadata_bytes"]
    units = -(-(np.asarray(sizes, dtype=np.int64) + meta) // unit)
    return int((units * (1 + np.asarray(deliveries) + np.asarray(finished, dtype=bool))).sum())


def active_seconds(calls: pd.DataFrame, now: float) -> float:
    """Seconds some request was inside an object (from its arrival to its end, waits for the
    input gate and I/O included), summed over objects: overlapping requests count once.

    >>> calls = pd.DataFrame({"binding": ["A", "A", "A"], "object": ["x", "x", "y"],
    ...                       "arrived": [0.0, 0.5, 0.0], "finished": [1.0, 1.5, 2.0]})
    >>> active_seconds(calls, now=10.0)
    3.5
    """
    if not len(calls):
        return 0.0
    binding, _ = pd.factorize(calls["binding"])       # an object: (binding, object) as one int
    obj, objects = pd.factorize(calls["object"])
    key = binding.astype(np.int64) * max(len(objects), 1) + obj
    start = calls["arrived"].to_numpy(float)
    end = calls["finished"].fillna(now).to_numpy(float)
    order = np.lexsort((start, key))                  # by object, then arrival
    key, start, end = key[order], start[order], end[order]
    firsts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
    # the busy interval so far ends at the running max of ends within the object; a request
    # arriving after it leaves a gap. Union length = each object's span minus its gaps.
    reach = np.empty_like(end)
    for lo, hi in zip(firsts.tolist(), [*firsts[1:].tolist(), len(end)]):
        reach[lo:hi] = np.maximum.accumulate(end[lo:hi])
    gap = np.maximum(start[1:] - reach[:-1], 0.0)
    gap[firsts[1:] - 1] = 0.0                         # (not across objects)
    lasts = np.r_[firsts[1:] - 1, len(end) - 1]
    return float((reach[lasts] - start[firsts]).sum() - gap.sum())


def quantities(runtime: Any) -> dict[str, float]:
    """What a runtime (a :class:`~cdpkit.Runtime`, or anything with its attributes) used,
    keyed like ``pricing()["items"]``."""
    rt, ledger = runtime, runtime.ledger
    deliveries, _ = ledger.deliveries()
    ops = queue_operations(ledger.column("bytes"), deliveries, ledger.column("outcome") != 0)
    pulled = {name for name, q in rt.queues.items() if getattr(q.consumer, "pull_consumer", False)}
    ops += sum(rt.queues[name].consumer.empty_pulls for name in pulled)   # an empty pull is a read
    batch_queue, _ = ledger.batch_sizes()
    pull_codes = [ledger.queue_code(name) for name in pulled]
    invocations = int((~np.isin(batch_queue, pull_codes)).sum())   # pulls are not Worker runs
    cpu = sum(getattr(q.consumer, "cpu_seconds", 0.0) for q in rt.queues.values())
    calls = rt.actor_calls
    sqlite = {"rows_read": 0, "rows_written": 0, "bytes": 0}
    kv_backed = {"reads": 0, "writes": 0}
    for namespace in rt.namespaces.values():
        for obj in namespace.objects.values():
            use = obj.storage.usage()
            if namespace.sqlite:
                sqlite["rows_read"] += use["reads"] + use["rows_read"]
                sqlite["rows_written"] += use["writes"] + use["rows_written"]
                sqlite["bytes"] += use["bytes"]
            else:
                kv_backed["reads"] += use["reads"]
                kv_backed["writes"] += use["writes"]      # deletes are counted as writes
    kv, d1 = rt.kv_namespaces.values(), rt.databases.values()
    return {
        "queues_operations": ops,
        "workers_requests": invocations,
        "workers_cpu_ms": 1000 * cpu,
        "do_requests": len(calls),
        "do_duration_gb_s": active_seconds(calls, rt.clock.now) * pricing()["do_memory_gb"],
        "do_sqlite_rows_read": sqlite["rows_read"],
        "do_sqlite_rows_written": sqlite["rows_written"],
        "do_sqlite_stored_gb": sqlite["bytes"] / GB,
        "do_kv_reads": kv_backed["reads"],
        "do_kv_writes": kv_backed["writes"],
        "kv_reads": sum(s.reads for s in kv),
        "kv_writes": sum(s.writes + s.deletes + s.lists for s in kv),
        "kv_stored_gb": sum(s.stored_bytes() for s in kv) / GB,
        "d1_rows_read": sum(db.rows_read for db in d1),
        "d1_rows_written": sum(db.rows_written for db in d1),
        "d1_stored_gb": sum(_sqlite_bytes(db.connection) for db in d1) / GB,
    }


def _sqlite_bytes(connection: Any) -> int:
    pages = connection.execute("PRAGMA page_count").fetchone()[0]
    return pages * connection.execute("PRAGMA page_size").fetchone()[0]


def check_plan(plan: Any) -> str:
    if plan not in PLANS:
        raise ConfigError(f"plan={plan!r} is not allowed; allowed: 'paid', 'free'")
    return plan


def cost_table(used: dict[str, float], duration: float, plan: str = "paid") -> pd.DataFrame:
    """One row per priced item: quantity and cost in the run, and in a 30-day month at this rate.

    Parameters
    ----------
    used : dict
        Quantities by item (:func:`quantities`).
    duration : float
        Seconds of virtual time the quantities were counted over (> 0).
    plan : {"paid", "free"}
        ``"paid"``: the monthly allowances apply, usage past them is billed, and the Workers
        Paid $5 monthly minimum is a row of its own. ``"free"``: nothing is billed; the daily
        allowances apply and ``over_allowance`` says which rates would exceed them (the Free
        plan refuses further operations of that kind that day).

    Returns
    -------
    pandas.DataFrame
        Columns ``service, item, unit, quantity, monthly_quantity, free_allowance,
        allowance_per, run_cost, monthly_cost, over_allowance``; ``attrs`` holds
        ``pricing_as_of``, ``plan`` and ``sources`` (item -> where its figures come from).

    Examples
    --------
    >>> t = cost_table({"queues_operations": 3_000}, duration=60, plan="free").set_index("item")
    >>> r = t.loc["queues_operations"]     # 3,000 a minute is 4.32M a day
    >>> int(r.free_allowance), r.allowance_per, bool(r.over_allowance), float(r.monthly_cost)
    (10000, 'day', True, 0.0)
    """
    check_plan(plan)
    if isinstance(duration, bool) or not isinstance(duration, (int, float)) or not duration > 0 or not math.isfinite(duration):
        raise ConfigError(f"duration={duration!r} is not allowed; allowed: seconds > 0")
    table = pricing()
    rows, sources = [], {}
    for key, item in table["items"].items():
        qty = used.get(key, 0)
        price = item["per_million"] / 1e6 if "per_million" in item else item["per_unit"]
        stored = item["kind"] == "stored"
        monthly = qty if stored else qty * MONTH / duration
        allowance = item[plan]
        included = None if allowance is None else allowance["included"]
        run_cost = qty * price * (duration / MONTH if stored else 1.0)
        if plan == "paid":
            monthly_cost = max(0.0, monthly - included) * price
            over = monthly > included
        else:
            run_cost = monthly_cost = 0.0
            per_day = qty if stored else qty * DAY / duration
            over = included is not None and per_day > included
        rows.append({"service": item["service"], "item": key, "unit": item["unit"], "quantity": qty,
                     "monthly_quantity": monthly, "free_allowance": included,
                     "allowance_per": None if allowance is None else allowance["per"],
                     "run_cost": run_cost, "monthly_cost": monthly_cost, "over_allowance": bool(over)})
        sources[key] = item["source"] + (f" [assumption: {item['assumption']}]" if "assumption" in item else "")
    fee = table["paid_plan_monthly"] if plan == "paid" else 0.0
    rows.append({"service": "Workers", "item": "workers_paid_minimum", "unit": "month",
                 "quantity": duration / MONTH, "monthly_quantity": 1.0, "free_allowance": None,
                 "allowance_per": None, "run_cost": fee * duration / MONTH, "monthly_cost": fee,
                 "over_allowance": False})
    sources["workers_paid_minimum"] = table["paid_plan_source"]
    frame = pd.DataFrame(rows)
    frame.attrs.update(pricing_as_of=table["as_of"], plan=plan, sources=sources)
    return frame
