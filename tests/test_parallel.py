"""Parallel spec consumers (``add_consumer(..., parallel=True)``, the seed's "Parallel
Processing": ``await Promise.all(batch.messages.map(...))``) run exactly like the same
consumer written as handler code with ``rt.gather``: random specs, the hand-written twin
making the same random draws (the consumer node's stream for service time and failures,
the actor node's key stream), every ledger row's times, attempts and outcome and every
actor call's times equal, with no tolerance.
"""

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_spec_actors_property import assert_same_run as same_calls_and_ledger
from test_spec_actors_property import stream

import cdpkit as cdp
from cdpkit.model.dists import Dist
from cdpkit.sim.behaviour import KeyPicker, Trials, consumer_streams

specs = st.fixed_dictionaries({
    "base": st.sampled_from([0.0, 0.01, {"exp": 0.01}]),
    "per_message": st.sampled_from([0.0, 0.002]),
    "service": st.sampled_from([0.02, {"exp": 0.02}, {"uniform": [0.005, 0.05]}]),
    "instances": st.integers(1, 4),
    "writes": st.sampled_from([[], ["KV"]]),
    "kv_latency": st.sampled_from([0.003, {"exp": 0.01}]),
    "actor_writes": st.booleans(),
    "failure": st.sampled_from([0.0, 0.2]),
    "batch": st.integers(1, 6),
    "concurrency": st.integers(1, 3),
    "rate": st.sampled_from([20, 60, 150]),
    "seed": st.integers(0, 1000),
})


def pipeline(sc: dict, handler=None) -> cdp.Pipeline:
    p = cdp.Pipeline("parallel")
    p.add_source("http", queue="jobs")
    p.add_queue("jobs", max_batch_size=sc["batch"], max_batch_timeout=0.2, max_concurrency=sc["concurrency"],
                max_retries=2, retry_delay=1)
    p.add_consumer("jobs", service={"base": sc["base"], "per_message": sc["per_message"]},
                   failure=sc["failure"], retry={"policy": "fixed", "base": 1}, calls="Worker",
                   writes=sc["writes"], parallel=handler is None, handler=handler)
    p.add_actor("Worker", service=sc["service"], instances=sc["instances"],
                writes=["DB"] if sc["actor_writes"] else [])
    if sc["writes"]:
        p.add_store("KV", kind="kv", latency=sc["kv_latency"])
    if sc["actor_writes"]:
        p.add_store("DB", kind="d1", latency=sc["kv_latency"])
    return p


def twin(sc: dict):
    """The consumer written by hand: the same draws, each message's steps in turn, all
    messages at once with rt.gather."""
    p = pipeline(sc)
    rng, per_rng, failure_rng, _ = consumer_streams(stream(p, sc["seed"], "jobs.consumer"))
    base, per = Dist.parse(sc["base"]), Dist.parse(sc["per_message"])
    trials = Trials(sc["failure"], failure_rng) if sc["failure"] else None
    picker = KeyPicker("worker", sc["instances"], 0.0, stream(p, sc["seed"], "Worker").spawn(2)[0])

    async def handle(batch, env, ctx):
        n = len(batch.messages)
        cpu = base.sample(rng) + (per.a * n if per.kind == "const" else float(per.sample(per_rng, n).sum()))
        failing = set(trials.hits(n)) if trials else set()
        await ctx.work(cpu)

        async def one(m):
            for _ in sc["writes"]:
                await env.KV.put(f"message:{m.body['origin']}", "1")
            await env.WORKER.get_by_name(picker.names[picker.pick_index()]).handle(m.body)

        for i, m in enumerate(batch.messages):
            if i in failing:
                m.retry(delay_seconds=1)
        await ctx.gather(*(one(m) for i, m in enumerate(batch.messages) if i not in failing))

    return handle


def run(sc: dict, handler=None) -> cdp.Results:
    # the reference engine for both: this is the spec path against handler code, exactly (the
    # compiled engine's equality with it, to 1e-9 s, is tests/test_engine_property.py's)
    return cdp.simulate(pipeline(sc, handler), cdp.Poisson(rate=sc["rate"]), duration=3.0, seed=sc["seed"],
                        engine="python")


def assert_same_run(a: cdp.Results, b: cdp.Results) -> None:
    same_calls_and_ledger(a, b)
    assert a.consumer_cpu_seconds == pytest.approx(b.consumer_cpu_seconds)


@settings(max_examples=30, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(specs)
def test_parallel_spec_consumer_runs_like_handler_code_with_gather(sc):
    spec, code = run(sc), run(sc, twin(sc))
    assert len(spec.actor_calls) > 0
    assert_same_run(spec, code)


def test_parallel_batch_ends_with_its_slowest_message():
    """Five messages in one batch, each a 1 s call to its own instance: in turn the batch
    takes 5 s, at once 1 s (and each call starts when the batch's CPU is done)."""
    ends = {}
    for parallel in (False, True):
        p = cdp.Pipeline("one-batch")
        p.add_source("http", queue="jobs")
        p.add_queue("jobs", max_batch_size=5, max_batch_timeout=60)
        p.add_consumer("jobs", service={"base": 0.5}, calls="Worker", parallel=parallel)
        p.add_actor("Worker", service=1.0, instances=1000)
        res = cdp.simulate(p, cdp.Replay(trace=pd.DataFrame({"time": [0.0] * 5})), duration=1.0)
        batch = res.batches.iloc[0]
        ends[parallel] = batch["finished_at"] - batch["delivered_at"]
        calls = res.actor_calls
        if parallel:
            assert calls["arrived"].tolist() == [0.5] * 5
    assert ends == {False: pytest.approx(5.5), True: pytest.approx(1.5)}


def test_parallel_is_checked_and_round_trips():
    p = cdp.Pipeline("d")
    p.add_queue("jobs")
    with pytest.raises(cdp.ConfigError, match=r"consumer of 'jobs': parallel='yes' is not allowed; "
                                              r"allowed: True or False"):
        p.add_consumer("jobs", parallel="yes")
    with pytest.raises(cdp.ConfigError, match=r"parallel=True is not allowed with handler="):
        p.add_consumer("jobs", parallel=True, handler=lambda batch, env, ctx: None)
    p.add_source("http", queue="jobs")
    p.add_consumer("jobs", parallel=True)
    assert cdp.Pipeline.from_yaml(p.to_yaml()).spec("jobs.consumer").parallel is True
    assert p.set("jobs.consumer.parallel", False).spec("jobs.consumer").parallel is False
    with pytest.raises(cdp.ConfigError, match=r"setting 'jobs.consumer.parallel': .*parallel=1 is not allowed"):
        p.set("jobs.consumer.parallel", 1)


def test_skeleton_writes_promise_all_for_a_parallel_consumer():
    p = cdp.Pipeline("gw")
    p.add_source("http", queue="jobs")
    p.add_queue("jobs")
    p.add_consumer("jobs", calls="Worker", parallel=True)
    p.add_actor("Worker")
    code = cdp.export.worker_skeleton(p)
    assert "await Promise.all(batch.messages.map(async (message) => {" in code
    assert "for (const message of batch.messages)" not in code
    sequential = cdp.export.worker_skeleton(p.set("jobs.consumer.parallel", False))
    assert "Promise.all" not in sequential and "for (const message of batch.messages)" in sequential

