"""Cost: quantities counted from a run, priced from the dated pricing file; cases by hand."""

import dataclasses

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import cdpkit as cdp
from cdpkit.sim.cost import DAY, MONTH, active_seconds, cost_table, pricing, quantities


def run(size=1_000, failure=0.0, actor=False):
    p = cdp.Pipeline("cost")
    p.add_source("http", queue="jobs")
    p.add_queue("jobs", max_batch_size=10, max_batch_timeout=5, max_retries=1)
    p.add_consumer("jobs", service={"per_message": 0.002}, failure=failure,
                   calls="Worker" if actor else None)
    if actor:
        p.add_actor("Worker", service=0.01, instances=4)
    return cdp.simulate(p, cdp.Constant(rate=10, size=size), duration=10, seed=1)


def row(res, item, plan=None):
    return res.cost(plan=plan).set_index("item").loc[item]


def acking_runtime(retry_first=False, **queue):
    rt = cdp.Runtime(semantics="production")
    rt.queue("jobs", max_batch_size=100, max_batch_timeout=1, **queue)

    @rt.consumer("jobs")
    async def handle(batch, env, ctx):
        for m in batch.messages:
            m.retry() if retry_first and m.attempts == 1 else m.ack()
    return rt


def body(size):
    """A JSON string body of ``size`` bytes once encoded (its two quotes included)."""
    return "x" * (size - 2)


# -- Queues operations, by hand -------------------------------------------------------------

def test_1000_messages_of_1kb_acked_once_are_3000_operations():
    rt = acking_runtime()
    for _ in range(1_000):
        rt.env.JOBS.send(body(1_000))
    rt.run()
    assert rt.messages["bytes"].eq(1_000).all()
    assert quantities(rt)["queues_operations"] == 1_000 * (1 + 1 + 1)   # write, read, delete


@pytest.mark.parametrize("size, units", [(70_000, 2), (63_900, 1), (63_901, 2), (64_000, 2), (127_900, 2)])
def test_a_message_counts_per_64kb_unit_of_1000_bytes_with_100_bytes_of_metadata(size, units):
    # 70 KB = 2 units; 64,000 bytes + ~100 bytes of metadata = 2 units (1 with 1,024-byte KB)
    rt = acking_runtime()
    rt.env.JOBS.send(body(size))
    rt.run()
    assert quantities(rt)["queues_operations"] == 3 * units


def test_each_retry_adds_a_read():
    rt = acking_runtime(retry_first=True)
    for _ in range(10):
        rt.env.JOBS.send(body(1_000))
    rt.run()
    assert rt.messages["deliveries"].eq(2).all()
    assert quantities(rt)["queues_operations"] == 10 * (1 + 2 + 1)


def test_an_expired_message_costs_a_write_and_a_delete():
    rt = acking_runtime(retention=60)
    rt.env.JOBS.send(body(1_000), delay_seconds=120)     # lands after its retention is over
    rt.run()
    m = rt.messages.iloc[0]
    assert (m["outcome"], m["deliveries"], m["drop_reason"]) == ("dropped", 0, "retention period expired")
    assert quantities(rt)["queues_operations"] == 2


def test_a_dead_letter_is_a_write_on_its_queue():
    rt = cdp.Runtime(semantics="production")
    rt.queue("jobs", max_batch_size=10, max_retries=0, dead_letter_queue="jobs-dlq")

    @rt.consumer("jobs")
    async def fail(batch, env, ctx):
        batch.retry_all()
    rt.env.JOBS.send(body(1_000))
    rt.run(until=60)
    # jobs: write, read, delete; jobs-dlq (no consumer in production: it waits): write
    assert quantities(rt)["queues_operations"] == 3 + 1


def test_queue_operations_of_a_simulation():
    assert row(run(), "queues_operations")["quantity"] == 100 * 3
    assert row(run(size=100_000), "queues_operations")["quantity"] == 100 * 3 * 2   # two 64 KB units
    res = run(failure=0.5)
    deliveries = res.messages["deliveries"].sum()
    assert deliveries > 100
    assert row(res, "queues_operations")["quantity"] == 100 * 2 + deliveries


# -- Workers and Durable Objects ------------------------------------------------------------

def test_workers_and_durable_objects():
    res = run(actor=True)
    assert row(res, "workers_requests")["quantity"] == len(res.batches) == 10
    assert row(res, "workers_cpu_ms")["quantity"] == pytest.approx(100 * 2.0)
    assert row(res, "do_requests")["quantity"] == 100
    busy = res.actor_calls.groupby("object").apply(lambda c: (c["finished"] - c["arrived"]).sum())
    assert row(res, "do_duration_gb_s")["quantity"] == pytest.approx(busy.sum() * 0.128)


class Waiter(cdp.Actor):
    async def handle(self, pause):
        await self.ctx.work(0.1)          # CPU: the gate is held
        await self.ctx.sleep(pause)       # outgoing I/O: billed, and another request may enter


def actor_runtime(calls):
    rt = cdp.Runtime(semantics="production")
    ns = rt.actor("WAITER", Waiter)

    async def caller(name, pause):
        await ns.get(ns.id_from_name(name)).handle(pause)
    for name, pause in calls:
        rt.spawn(caller(name, pause))
    rt.run()
    return rt


def test_do_duration_is_wall_clock_including_io_waits():
    rt = actor_runtime([("a", 1.0)])
    assert quantities(rt)["do_duration_gb_s"] == pytest.approx(1.1 * 0.128)


def test_do_duration_counts_overlapping_requests_in_one_object_once():
    # a: 0-1.1 (CPU 0-0.1, I/O 0.1-1.1); b enters at 0.1 when a awaits I/O: 0.1-1.2.
    # The object is active 0-1.2 (1.2 s), not 1.1 + 1.1 s; another object is billed apart.
    rt = actor_runtime([("a", 1.0), ("a", 1.0), ("z", 0.5)])
    calls = rt.actor_calls
    assert calls["finished"].round(6).tolist() == [1.1, 1.2, 0.6]
    assert quantities(rt)["do_duration_gb_s"] == pytest.approx((1.2 + 0.6) * 0.128)


class Rows(cdp.Actor):
    async def handle(self, n):
        sql = self.ctx.storage.sql
        sql.exec("CREATE TABLE IF NOT EXISTS t(x)")
        for i in range(n):
            sql.exec("INSERT INTO t VALUES (?)", i)
        sql.exec("SELECT * FROM t").raw()
        await self.ctx.storage.put("k", "v")


class KvBacked(cdp.Actor):
    async def handle(self, n):
        await self.ctx.storage.put("k", n)
        await self.ctx.storage.get("k")
        await self.ctx.storage.delete("k")


def test_durable_object_storage_sqlite_rows_and_kv_backed_operations():
    rt = cdp.Runtime(semantics="production")
    rows, kv = rt.actor("ROWS", Rows, sqlite=True), rt.actor("KVB", KvBacked, sqlite=False)

    async def go():
        await rows.get(rows.id_from_name("r")).handle(3)
        await kv.get(kv.id_from_name("k")).handle(1)
    rt.spawn(go())
    rt.run()
    used = quantities(rt)
    # CREATE writes 2 schema rows, 3 inserts 3 rows, the KV API put 1 row; the scan reads 3 (+1 for CREATE)
    assert used["do_sqlite_rows_written"] == 2 + 3 + 1
    assert used["do_sqlite_rows_read"] == 1 + 3
    assert used["do_sqlite_stored_gb"] > 0
    assert (used["do_kv_reads"], used["do_kv_writes"]) == (1, 2)     # a put and a delete
    t = cost_table(used, duration=10).set_index("item")
    assert t.loc["do_kv_writes", "run_cost"] == pytest.approx(2 * 1.00 / 1e6)
    assert t.loc["do_kv_reads", "run_cost"] == pytest.approx(1 * 0.20 / 1e6)
    assert t.loc["do_sqlite_rows_written", "run_cost"] == pytest.approx(6 * 1.00 / 1e6)


# -- plans ------------------------------------------------------------------------------------

def test_monthly_extrapolation_applies_the_paid_allowance():
    res = run()
    r = row(res, "queues_operations")
    monthly = 300 * MONTH / 10
    assert r["monthly_quantity"] == pytest.approx(monthly)
    assert r["free_allowance"] == 1_000_000 and r["allowance_per"] == "month"
    assert r["monthly_cost"] == pytest.approx((monthly - 1_000_000) * 0.40 / 1e6)
    assert r["run_cost"] == pytest.approx(300 * 0.40 / 1e6)
    assert res.cost().attrs["pricing_as_of"] == pricing()["as_of"] == "2026-12-01"


def test_the_paid_plan_has_a_5_dollar_monthly_minimum():
    table = cost_table({"queues_operations": 3}, duration=DAY)   # far inside every allowance
    fee = table.set_index("item").loc["workers_paid_minimum"]
    assert (fee["monthly_cost"], fee["run_cost"]) == (5.0, pytest.approx(5.0 / 30))
    assert table["monthly_cost"].sum() == 5.0
    assert cost_table({}, duration=DAY, plan="free")["monthly_cost"].sum() == 0.0


def test_free_plan_daily_allowances():
    # 3,000 queue operations a day: inside the Free plan's 10,000/day; 3,000 a minute is not
    day = cost_table({"queues_operations": 3_000, "do_requests": 100_000}, duration=DAY, plan="free").set_index("item")
    assert day.loc["queues_operations", ["free_allowance", "allowance_per", "over_allowance"]].tolist() == [10_000, "day", False]
    assert day.loc["do_requests", "over_allowance"] == False      # noqa: E712  (100,000/day allowed)
    assert day["run_cost"].sum() == day["monthly_cost"].sum() == 0.0
    minute = cost_table({"queues_operations": 3_000, "do_kv_reads": 1}, duration=60, plan="free").set_index("item")
    assert minute.loc["queues_operations", "over_allowance"] == True   # noqa: E712
    assert minute.loc["do_kv_reads", "over_allowance"] == True         # noqa: E712  KV-backed: not on Free
    assert pd.isna(minute.loc["workers_cpu_ms", "free_allowance"])
    assert cost_table({}, duration=60, plan="free").attrs["plan"] == "free"


def test_plan_is_checked_and_defaults_to_the_results_plan():
    res = run()
    with pytest.raises(cdp.ConfigError, match=r"plan='pro' is not allowed; allowed: 'paid', 'free'"):
        res.cost(plan="pro")
    assert res.cost().attrs["plan"] == "paid"
    # a run that knows its plan (its semantics profile's) prices for it by default
    res.runtime.semantics = dataclasses.replace(res.runtime.semantics, plan="free")
    assert res.plan == "free" and res.cost().attrs["plan"] == "free"
    with pytest.raises(cdp.ConfigError, match=r"duration=0 is not allowed; allowed: seconds > 0"):
        cost_table({}, duration=0)


def test_every_priced_item_has_a_source_and_assumptions_are_marked():
    table = pricing()
    for key, item in table["items"].items():
        assert item["source"], key
    sources = cost_table({}, duration=1).attrs["sources"]
    assert "[assumption:" in sources["workers_requests"] and "[assumption:" not in sources["queues_operations"]
    assert set(sources) == {*table["items"], "workers_paid_minimum"}


def test_cost_does_not_import_results():
    import ast
    import inspect

    import cdpkit.sim.cost as cost
    imported = [n.module for n in ast.walk(ast.parse(inspect.getsource(cost)))
                if isinstance(n, ast.ImportFrom)]
    assert not any(m and "results" in m for m in imported)


def _union_length(intervals: list[tuple[float, float]]) -> float:
    """The length of a union of intervals, by merging them in order (the oracle)."""
    total, current = 0.0, None
    for lo, hi in sorted(intervals):
        if current is None or lo > current[1]:
            if current is not None:
                total += current[1] - current[0]
            current = [lo, hi]
        else:
            current[1] = max(current[1], hi)
    return total + (current[1] - current[0] if current is not None else 0.0)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(st.lists(st.tuples(st.sampled_from(["A", "B"]), st.sampled_from(["x", "y", "z"]),
                          st.integers(0, 40), st.integers(0, 10), st.booleans()), max_size=60))
def test_active_seconds_is_each_objects_busy_union(rows):
    """Durable Object duration: per object, the union of its requests' [arrival, end]
    intervals (an unfinished request runs to now), summed: as merging the intervals gives."""
    now = 60.0
    calls = pd.DataFrame([(b, o, t / 4, None if unfinished else (t + d) / 4) for b, o, t, d, unfinished in rows],
                         columns=["binding", "object", "arrived", "finished"])
    calls["finished"] = calls["finished"].astype(float)
    by_object: dict = {}
    for b, o, t, d, unfinished in rows:
        by_object.setdefault((b, o), []).append((t / 4, now if unfinished else (t + d) / 4))
    assert active_seconds(calls, now) == pytest.approx(sum(map(_union_length, by_object.values())), abs=1e-9)
