"""Cost: quantities counted from the run, priced from the dated pricing file."""

import pytest

import cdpkit as cdp
from cdpkit.sim.cost import MONTH, pricing


def run(size=1_000, failure=0.0, actor=False):
    p = cdp.Pipeline("cost")
    p.add_source("http", queue="jobs")
    p.add_queue("jobs", max_batch_size=10, max_batch_timeout=5, max_retries=1)
    p.add_consumer("jobs", service={"per_message": 0.002}, failure=failure,
                   calls="Worker" if actor else None)
    if actor:
        p.add_actor("Worker", service=0.01, instances=4)
    return cdp.simulate(p, cdp.Constant(rate=10, size=size), duration=10, seed=1)


def row(res, item):
    return res.cost().set_index("item").loc[item]


def test_queue_operations_write_read_delete_per_64kb():
    assert row(run(), "queues_operations")["quantity"] == 100 * 3
    assert row(run(size=100_000), "queues_operations")["quantity"] == 100 * 3 * 2   # two 64 KB chunks


def test_each_retry_adds_a_read():
    res = run(failure=0.5)
    deliveries = res.messages["deliveries"].sum()
    assert deliveries > 100
    assert row(res, "queues_operations")["quantity"] == 100 * 2 + deliveries


def test_workers_and_durable_objects():
    res = run(actor=True)
    assert row(res, "workers_requests")["quantity"] == len(res.batches) == 10
    assert row(res, "workers_cpu_ms")["quantity"] == pytest.approx(100 * 2.0)
    assert row(res, "do_requests")["quantity"] == 100
    assert row(res, "do_duration_gb_s")["quantity"] == pytest.approx(100 * 0.01 * 0.128)


def test_monthly_extrapolation_applies_free_tier():
    res = run()
    r = row(res, "queues_operations")
    monthly = 300 * MONTH / 10
    assert r["monthly_quantity"] == pytest.approx(monthly)
    price = pricing()["items"]["queues_operations"]
    assert r["monthly_cost"] == pytest.approx((monthly - price["free_per_month"]) * price["per_million"] / 1e6)
    assert r["run_cost"] == pytest.approx(300 * 0.40 / 1e6)
    assert res.cost().attrs["pricing_as_of"] == "2026-11-24"
