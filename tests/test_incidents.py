"""Incident tables (issue 16): the same fault timeline in handler code (``rt.apply_faults``,
``runtime_incidents``) and in a spec model of the same pipeline (``cdp.simulate``) gives the
same table, and ``cost_usd`` prices what a window added, against hand-computed cases."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import cdpkit as cdp
from cdpkit.runtime.faults import FaultError
from cdpkit.sim.cost import pricing
from cdpkit.sim.incidents import runtime_incidents

CPU, DLQ_CPU, RETRY = 0.01, 0.005, 2


def spec_pipeline(target: str) -> cdp.Pipeline:
    """jobs -> consumer (10 ms) -> a KV put or a Worker call (10 ms); retries 2 s apart,
    twice, then to a DLQ whose consumer takes 5 ms."""
    p = cdp.Pipeline("twins")
    p.add_source("http", queue="jobs")
    p.add_queue("jobs", max_batch_size=1, max_batch_timeout=0, max_retries=2, dead_letter_queue="dlq")
    p.add_queue("dlq", max_batch_size=1, max_batch_timeout=0)
    downstream = {"writes": ["KV"]} if target == "KV" else {"calls": "Worker"}
    p.add_consumer("jobs", service={"base": CPU}, retry={"policy": "fixed", "base": RETRY}, **downstream)
    p.add_consumer("dlq", service={"base": DLQ_CPU})
    if target == "KV":
        p.add_store("KV", kind="kv", latency=0)
    else:
        p.add_actor("Worker", service=CPU, binding="WORKER")
    return p


class Worker(cdp.Actor):
    async def handle(self, body):
        await self.ctx.work(CPU)


def code_runtime(target: str, times: np.ndarray, faults: cdp.Faults, seed: int) -> cdp.Runtime:
    """The same pipeline as handler code: the consumer works 10 ms, then puts or calls; a
    FaultError retries the message 2 s later, as the spec's retry policy does."""
    rt = cdp.Runtime(semantics="local", seed=seed)
    rt.queue("jobs", max_batch_size=1, max_batch_timeout=0, max_retries=2, dead_letter_queue="dlq")
    rt.queue("dlq", max_batch_size=1, max_batch_timeout=0)
    if target == "KV":
        rt.kv("KV")
    else:
        rt.actor("WORKER", Worker)

    @rt.consumer("jobs")
    async def handle(batch, env, ctx):
        await ctx.work(CPU)
        for m in batch.messages:
            try:
                if target == "KV":
                    await env.KV.put(f"message:{m.body}", "1")
                else:
                    await env.WORKER.get_by_name("worker-0").handle(m.body)
            except FaultError:
                m.retry(delay_seconds=RETRY)
            else:
                m.ack()

    @rt.consumer("dlq")
    async def letters(batch, env, ctx):
        await ctx.work(DLQ_CPU)
        batch.ack_all()

    rt.apply_faults(faults)
    for i, t in enumerate(times):
        rt.call_at(float(t), rt.env.JOBS.send, i)
    return rt


def both(target: str, fault: dict, rate: float, duration: float, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    faults = cdp.Faults([fault])
    load = cdp.Constant(rate=rate)
    spec = cdp.simulate(spec_pipeline(target), load, duration=duration, seed=seed, faults=faults)
    rt = code_runtime(target, spec.arrivals.times, faults, seed)
    rt.run()
    return spec.incidents(), runtime_incidents(rt, faults, duration=duration)


@pytest.mark.parametrize("target", ["KV", "Worker"])
def test_errors_on_a_store_or_actor_give_the_same_incident_table_in_handler_code_and_spec(target):
    """p=1 inside [20.5, 30.5): no draw is left to chance, so the tables are equal, cost and
    all (the spec fails a message before its call, handler code at its call: the same instant
    here, since the call follows the consumer's CPU in both)."""
    fault = {"kind": "errors", "node": target, "p": 1, "start": 20.5, "end": 30.5}
    spec, code = both(target, fault, rate=1, duration=60, seed=0)
    pd.testing.assert_frame_equal(spec, code)
    row = spec.iloc[0]
    assert row["retried"] > 10 and row["dead_lettered"] > 0 and row["cost_usd"] > 0
    assert row["queues"] == "jobs"


@pytest.mark.parametrize("target", ["KV", "Worker"])
def test_an_error_burst_retries_and_dead_letters_alike_in_handler_code_and_spec(target):
    """p=0.3 over 200 s at 10 msg/s (2,000 messages, 2 retries): the spec draws per message
    and attempt, handler code per call, so the runs differ message by message; the counts
    agree within 4 standard deviations of their difference (retries per message: mean
    p + p^2 = 0.39, variance 0.418; dead letters: p^3 = 2.7 %)."""
    fault = {"kind": "errors", "node": target, "p": 0.3, "start": 10, "end": 210}
    spec, code = both(target, fault, rate=10, duration=230, seed=5)
    a, b = spec.iloc[0], code.iloc[0]
    n = 2000
    assert abs(a["retried"] - b["retried"]) < 4 * np.sqrt(2 * n * 0.418)
    assert abs(a["retried"] - 0.39 * n) < 4 * np.sqrt(n * 0.418)
    dl = 0.3 ** 3
    assert abs(a["dead_lettered"] - b["dead_lettered"]) < 4 * np.sqrt(2 * n * dl * (1 - dl))
    assert abs(b["dead_lettered"] - dl * n) < 4 * np.sqrt(n * dl * (1 - dl))


# ----------------------------------------------------------------------- dollars

def price(item: str) -> float:
    return pricing()["items"][item]["per_million"] / 1e6


def test_cost_usd_prices_the_retries_and_the_dead_letters_by_hand():
    """One message a second (t = 0, 1, ...), every attempt failing in [10.5, 20.5), retried at
    once twice: messages 11..20 are tried 3 times and dead-lettered. Added: 20 queue reads
    (the retries) + 10 letters x (write, read, delete) = 50 operations; 20 invocations of
    the consumer (10 ms each) + 10 of the DLQ's (20 ms each) = 30 invocations, 400 CPU ms."""
    p = cdp.Pipeline("bill")
    p.add_source("http", queue="jobs")
    p.add_queue("jobs", max_batch_size=1, max_batch_timeout=0, max_retries=2, dead_letter_queue="dlq")
    p.add_queue("dlq", max_batch_size=1, max_batch_timeout=0)
    p.add_consumer("jobs", service={"base": 0.01})
    p.add_consumer("dlq", service={"base": 0.02})
    f = cdp.Faults().add("errors", "jobs.consumer", p=1, start=10.5, end=20.5)
    res = cdp.simulate(p, cdp.Constant(rate=1), duration=40, faults=f)
    row = res.incidents().iloc[0]
    assert (row["retried"], row["dead_lettered"]) == (20, 10)
    expected = 50 * price("queues_operations") + 30 * price("workers_requests") + 400 * price("workers_cpu_ms")
    assert row["cost_usd"] == pytest.approx(expected, rel=1e-9)
    assert expected == pytest.approx(50 * 0.40e-6 + 30 * 0.30e-6 + 400 * 0.02e-6)    # at 2026-12 prices
    assert row["operations"] > 50        # the quantities stay: all the span's work, not the added part


def test_cost_usd_of_a_pause_is_zero_and_of_a_slowdown_its_stretch():
    """A pause delays work but adds none. A consumer slowed 3x for 10 batches of 0.1 s adds
    10 x 0.3 x (1 - 1/3) = 2 CPU s; an actor slowed 2x for 10 calls of 0.1 s adds 1 s of
    Durable Object time (128 MB: 0.128 GB-s per s)."""
    p = cdp.Pipeline("slow")
    p.add_source("http", queue="jobs")
    p.add_queue("jobs", max_batch_size=1, max_batch_timeout=0)
    p.add_consumer("jobs", service={"base": 0.1}, calls="Worker")
    p.add_actor("Worker", service=0.1)
    f = cdp.Faults([{"kind": "pause", "node": "jobs", "start": 30.5, "end": 35.5},
                    {"kind": "slowdown", "node": "jobs.consumer", "factor": 3, "start": 10.5, "end": 20.5},
                    {"kind": "slowdown", "node": "Worker", "factor": 2, "start": 40.5, "end": 50.5}])
    table = cdp.simulate(p, cdp.Constant(rate=1), duration=60, faults=f).incidents()
    pause, consumer, actor = table["cost_usd"]
    assert pause == 0
    assert consumer == pytest.approx(2000 * price("workers_cpu_ms"))
    assert actor == pytest.approx(1.0 * pricing()["do_memory_gb"] * price("do_duration_gb_s"))


def test_runtime_incidents_checks_its_queues():
    rt = cdp.Runtime()
    rt.queue("jobs")
    rt.kv("KV")
    f = cdp.Faults().add("errors", "KV", p=1, start=0, end=1)
    with pytest.raises(cdp.ConfigError, match=r"runtime_incidents: queues\['KV'\]=\['jobz'\] is not allowed "
                                              r"\(\['jobz'\] not declared\); allowed: jobs"):
        runtime_incidents(rt, f, queues={"KV": ["jobz"]})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert runtime_incidents(rt, f, duration=1, queues={"KV": ["jobs"]})["queues"].tolist() == ["jobs"]
