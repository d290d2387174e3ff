"""The pipeline model, workloads and spec-driven simulation (beyond queueing theory)."""

import numpy as np
import pandas as pd
import pytest

import cdpkit as cdp
from cdpkit import ConfigError


def gateway(**command_settings):
    """The seed's three patterns: commands -> orchestrator actor -> child actors; typed
    tasks routed to actors; actors publishing events; a DLQ consumer."""
    p = cdp.Pipeline("cdp-gateway")
    p.add_source("http", queue="cdp-command-queue")
    p.add_queue("cdp-command-queue", max_batch_size=10, max_batch_timeout=1, max_retries=3,
                dead_letter_queue="cdp-dlq", max_concurrency=10, **command_settings)
    p.add_queue("cdp-event-queue", max_batch_size=100, max_batch_timeout=1)
    p.add_queue("cdp-dlq", max_batch_size=10)
    p.add_consumer("cdp-command-queue", service={"base": 0.005, "per_message": 0.001}, failure=0.01,
                   retry={"policy": "exponential", "base": 5, "cap": 60},
                   routes={"web_scraping": "WebScraperActor"}, calls="WorkflowOrchestratorActor")
    p.add_consumer("cdp-event-queue", service={"per_message": 0.0005})
    p.add_consumer("cdp-dlq")
    p.add_actor("WorkflowOrchestratorActor", service=0.003, instances=50,
                calls=["ProfileScorerActor"], publish=["cdp-event-queue"])
    p.add_actor("ProfileScorerActor", service={"exp": 0.002}, instances=10, skew=1.2)
    p.add_actor("WebScraperActor", service=0.01, instances=5)
    return p


MIX = {"execute_workflow": 0.8, "web_scraping": 0.2}


def test_graph_is_plain_networkx():
    import networkx as nx
    p = gateway()
    p.validate()
    kinds = nx.get_edge_attributes(p.graph, "kind")
    assert kinds[("cdp-command-queue", "cdp-dlq")] == "dead_letters"
    assert kinds[("cdp-command-queue.consumer", "WorkflowOrchestratorActor")] == "calls"
    assert kinds[("WorkflowOrchestratorActor", "cdp-event-queue")] == "publishes"
    assert nx.has_path(p.graph, "http", "cdp-event-queue")
    assert "5 actors" not in repr(p) and "3 actors" in repr(p)


def test_gateway_runs_end_to_end_and_conserves():
    res = cdp.simulate(gateway(), cdp.Poisson(rate=50, types=MIX), duration=60, seed=3)
    s = res.summary()
    assert s["messages"] > 2_500 and s["in_flight"] == 0
    assert s["acked"] + s["dead_lettered"] + s["dropped"] == s["messages"]
    m = res.messages
    events = m[m["queue"] == "cdp-event-queue"]
    workflows = m[(m["queue"] == "cdp-command-queue") & (m["type"] == "execute_workflow")
                  & (m["outcome"] == "acked")]
    assert len(events) == len(workflows)      # each acked workflow published one event
    calls = res.actor_calls.groupby("binding").size()
    assert calls["WORKFLOW_ORCHESTRATOR_ACTOR"] == len(workflows)
    assert calls["PROFILE_SCORER_ACTOR"] == len(workflows)
    assert calls["WEB_SCRAPER_ACTOR"] == ((m["type"] == "web_scraping") & (m["queue"] == "cdp-command-queue")
                                          & (m["outcome"] == "acked")).sum()
    assert s["p99_latency"] >= s["p50_latency"] > 0


def test_zipf_skew_makes_hot_keys():
    res = cdp.simulate(gateway(), cdp.Poisson(rate=50, types=MIX), duration=60, seed=3)
    per_object = res.actor_calls[res.actor_calls["binding"] == "PROFILE_SCORER_ACTOR"].groupby("object").size()
    assert per_object.max() > 3 * per_object.median()            # skew 1.2: one hot key
    uniform = res.actor_calls[res.actor_calls["binding"] == "WEB_SCRAPER_ACTOR"].groupby("object").size()
    assert uniform.max() < 2 * uniform.min()


def test_same_seed_same_results():
    a = cdp.simulate(gateway(), cdp.Poisson(rate=20, types=MIX), duration=30, seed=9)
    b = cdp.simulate(gateway(), cdp.Poisson(rate=20, types=MIX), duration=30, seed=9)
    assert a.messages.equals(b.messages) and a.batches.equals(b.batches)
    c = cdp.simulate(gateway(), cdp.Poisson(rate=20, types=MIX), duration=30, seed=10)
    assert not a.messages["sent"].equals(c.messages["sent"])


def test_timeline_and_time_to_drain_after_a_burst():
    p = cdp.Pipeline("burst")
    p.add_source("http", queue="jobs")
    p.add_queue("jobs", max_batch_size=10, max_batch_timeout=1, max_concurrency=2)
    p.add_consumer("jobs", service={"base": 0.1})      # 2 x 10 / 0.1 s = 200 msg/s capacity
    res = cdp.simulate(p, cdp.Piecewise([(0, 50), (10, 1000), (20, 50)]), duration=30, seed=1)
    t = res.timeline
    jobs = t[t["node"] == "jobs"]
    assert jobs[jobs["time"] < 10]["backlog"].max() < 20
    assert jobs["backlog"].max() > 3000                 # 10 s at 1000/s vs 200/s
    assert res.summary()["time_to_drain"] > 10


def test_handler_code_runs_in_a_pipeline_on_the_same_engine():
    seen, bodies = [], []

    async def handler(batch, env, ctx):
        await ctx.work(0.01)
        seen.append(len(batch.messages))
        bodies.extend(m.body for m in batch.messages)

    p = cdp.Pipeline("code")
    p.add_source("http", queue="jobs")
    p.add_queue("jobs", max_batch_size=5, max_batch_timeout=1)
    p.add_consumer("jobs", handler=handler)
    res = cdp.simulate(p, cdp.Constant(rate=10, types={"track": 1, "identify": 1}, size=700),
                       duration=10, seed=1)
    assert sum(seen) == res.summary()["acked"] == 100
    # a workload message's body, as handler code sees it: what it stands for
    assert sorted(b["origin"] for b in bodies) == list(range(100))
    first = min(bodies, key=lambda b: b["origin"])
    assert first == {"type": first["type"], "size": 700, "origin": 0, "origin_time": 0.0}
    assert {b["type"] for b in bodies} == {"track", "identify"}


def test_handler_code_calls_a_spec_actor_with_a_message_body():
    """Handler code may call a spec actor with a workload message's body (its dict view);
    a body that stands for no message is refused by name when the actor needs one (it
    writes to a store), instead of writing rows for nothing."""
    def run(pass_body):
        async def handler(batch, env, ctx):
            for m in batch.messages:
                await env.WORKER.get_by_name("worker-0").handle(pass_body(m))

        p = cdp.Pipeline("stub")
        p.add_source("http", queue="jobs")
        p.add_queue("jobs", max_batch_size=5, max_batch_timeout=1, max_retries=0)
        p.add_consumer("jobs", handler=handler)
        p.add_actor("Worker", service=0.01, writes=["DB"])
        p.add_store("DB", kind="d1", latency=0.001)
        return cdp.simulate(p, cdp.Constant(rate=10), duration=2, seed=1)

    res = run(lambda m: m.body)
    assert res.summary()["acked"] == 20
    assert sorted(res.runtime.databases["DB"].table("writes")["origin"]) == list(range(20))
    res = run(lambda m: "hello")
    assert res.summary()["acked"] == 0 and len(res.runtime.databases["DB"].table("writes")) == 0
    error = res.runtime.errors["error"][0]
    assert isinstance(error, cdp.HandlerError)
    assert str(error) == ("WORKER.handle: body='hello' is not allowed; allowed: a workload message's "
                          "body (m.body) or its 'origin', because Worker writes to stores, calls "
                          "actors or publishes")


def test_spec_actor_matches_hand_written_actor():
    """One engine: a spec actor and the same behaviour written as code give the same run."""
    p = cdp.Pipeline("spec")
    p.add_source("http", queue="jobs")
    p.add_queue("jobs", max_batch_size=4, max_batch_timeout=1, max_concurrency=3)
    p.add_consumer("jobs", calls="Worker")
    p.add_actor("Worker", service=0.05, instances=1)
    spec_calls = cdp.simulate(p, cdp.Constant(rate=20), duration=5, seed=1).actor_calls

    rt = cdp.Runtime(semantics="production", seed=1)
    rt.queue("jobs", max_batch_size=4, max_batch_timeout=1, max_concurrency=3)

    class Worker(cdp.Actor):
        async def handle(self, body):
            await self.ctx.work(0.05)

    rt.actor("WORKER", Worker)

    @rt.consumer("jobs")
    async def consume(batch, env, ctx):
        for m in batch.messages:
            await env.WORKER.get_by_name("worker-0").handle(m.body)

    for i in range(100):
        rt.call_at(i / 20, rt.env.JOBS.send, i)
    rt.run()
    code_calls = rt.actor_calls
    cols = ["arrived", "started", "finished"]
    assert np.allclose(spec_calls[cols].to_numpy(), code_calls[cols].to_numpy())


def test_message_sizes_over_128kb_are_rejected_at_send():
    p = cdp.Pipeline("big")
    p.add_source("http", queue="jobs")
    p.add_queue("jobs")
    p.add_consumer("jobs")
    res = cdp.simulate(p, cdp.Constant(rate=10, size={"uniform": [100_000, 160_000]}), duration=10, seed=1)
    m = res.messages
    rejected = m[m["outcome"] == "rejected"]      # refused at the producer, like any send over a limit
    assert len(rejected) > 0 and (rejected["bytes"] > 128_000).all()
    assert rejected["drop_reason"].str.endswith("-byte message limit").all()
    assert res.summary()["rejected"] == len(rejected)
    assert (m[m["outcome"] == "acked"]["bytes"] <= 128_000).all()


def test_workloads():
    rng = np.random.default_rng(1)
    assert len(cdp.Constant(rate=4).arrivals(10, rng)) == 40
    d = cdp.Diurnal(mean=100, amplitude=1.0, period=100).arrivals(100, rng).times
    assert np.sum(d < 50) > 2 * np.sum(d >= 50)          # the first half of the sine is the busy one
    trace = pd.DataFrame({"time": [0.5, 0.1, 2.0], "type": ["a", "b", "a"], "size": [10, 20, 30]})
    a = cdp.Replay(trace=trace).arrivals(10, rng)
    assert list(a.times) == [0.1, 0.5, 2.0] and list(a.sizes) == [20, 10, 30]
    assert [a.type_names[i] for i in a.types] == ["b", "a", "a"]
    mix = cdp.Poisson(rate=1000, types={"x": 3, "y": 1}).arrivals(10, rng)
    assert 0.7 < np.mean(mix.types == 0) < 0.8


@pytest.mark.parametrize("make, message", [
    (lambda: cdp.Poisson(rate=-1), "workload rate=-1 is not allowed; allowed: a finite number >= 0"),
    (lambda: cdp.Poisson(rate=1, types={}), "workload types={} is not allowed"),
    (lambda: cdp.Piecewise([(5, 1)]), r"workload schedule=\[\(5, 1\)\] is not allowed"),
    (lambda: cdp.Diurnal(mean=1, amplitude=2), "workload amplitude=2 is not allowed; allowed: 0 to 1"),
    (lambda: cdp.Replay(trace=pd.DataFrame({"t": [1]})), "allowed: a DataFrame or CSV path with a 'time' column"),
    (lambda: cdp.Poisson(rate=1, size={"gamma": 2}), r"workload size \{'gamma': 2\} is not allowed"),
])
def test_workload_errors(make, message):
    with pytest.raises(ConfigError, match=message):
        make()


def test_validation_errors_name_the_node_and_field():
    p = cdp.Pipeline("bad")
    p.add_queue("jobs", max_batch_size=10)
    with pytest.raises(ConfigError, match="queue 'jobs' has consumer settings but no consumer"):
        p.validate()
    p.add_consumer("jobs", publish=["nowhere"])
    with pytest.raises(ConfigError, match="'jobs.consumer' publishes 'nowhere', but 'nowhere' is not in pipeline"):
        p.validate()
    with pytest.raises(ConfigError, match="queue 'big': max_batch_size=500 is not allowed; allowed: an integer from 1 to 100"):
        p.add_queue("big", max_batch_size=500)
    with pytest.raises(ConfigError, match=r"queue 'x': unknown setting 'batch_size' \(did you mean 'max_batch_size'\?\)"):
        p.add_queue("x", batch_size=5)
    with pytest.raises(ConfigError, match="node 'jobs' already exists"):
        p.add_queue("jobs")
    with pytest.raises(ConfigError, match="consumer of 'q': failure=1.5 is not allowed; allowed: a probability"):
        p.add_consumer("q", failure=1.5)
    with pytest.raises(ConfigError, match="consumer of 'q': retry policy='linear' is not allowed"):
        p.add_consumer("q", retry={"policy": "linear"})
    with pytest.raises(ConfigError, match="actor 'A': instances=0 is not allowed"):
        p.add_actor("A", instances=0)


def test_orphans_cycles_and_wrong_kinds():
    p = cdp.Pipeline("bad")
    p.add_source("http", queue="jobs")
    p.add_queue("jobs")
    p.add_consumer("jobs", calls="A")
    p.add_actor("A", calls=["B"])
    p.add_actor("B", calls=["A"])
    with pytest.raises(ConfigError, match="actors call each other in a cycle"):
        p.validate()
    q = cdp.Pipeline("orphan")
    q.add_source("http", queue="jobs")
    q.add_queue("jobs")
    q.add_consumer("jobs")
    q.add_queue("lonely")
    with pytest.raises(ConfigError, match="node 'lonely' is not connected to anything"):
        q.validate()
    r = cdp.Pipeline("kinds")
    r.add_source("http", queue="jobs")
    r.add_queue("jobs")
    r.add_actor("A")
    r.add_consumer("jobs", publish=["A"])
    with pytest.raises(ConfigError, match="'jobs.consumer' publishes 'A', which is a actor, not a queue"):
        r.validate()


def test_cycles_through_queues_are_fine():
    """a -> b -> a through queues is a valid design (a queue decouples; actor call cycles and
    dead-letter cycles are not); it runs for its duration (draining it is the run budget's
    business: a cycle that never empties is stopped with an error naming it)."""
    import networkx as nx
    p = cdp.Pipeline("loop")
    p.add_source("http", queue="a")
    p.add_queue("a", max_batch_timeout=1)
    p.add_queue("b", max_batch_timeout=1)
    p.add_consumer("a", publish=["b"])
    p.add_consumer("b", publish=["a"])
    p.validate()
    assert ["a", "a.consumer", "b", "b.consumer"] in [sorted(c) for c in nx.simple_cycles(p.graph)]
    res = cdp.simulate(p, cdp.Poisson(rate=5), duration=10, seed=1, drain=False)
    assert res.summary()["messages"] > 50      # arrivals plus their trips round the cycle


def test_set_returns_a_changed_copy():
    p = gateway()
    q = p.set("cdp-command-queue.max_batch_size", 50).set("ProfileScorerActor.service", 0.01)
    assert p.spec("cdp-command-queue")["max_batch_size"] == 10
    assert q.spec("cdp-command-queue")["max_batch_size"] == 50
    assert q.spec("ProfileScorerActor").service.mean == 0.01
    with pytest.raises(ConfigError, match="max_batch_size=500 is not allowed"):
        p.set("cdp-command-queue.max_batch_size", 500)
    with pytest.raises(ConfigError, match="setting 'nope.max_batch_size': no node 'nope'"):
        p.set("nope.max_batch_size", 5)


def test_retry_all_mode_retries_the_whole_batch():
    p = cdp.Pipeline("all")
    p.add_source("http", queue="jobs")
    p.add_queue("jobs", max_batch_size=10, max_batch_timeout=1, max_retries=5)
    p.add_consumer("jobs", failure=0.05, retry={"policy": "fixed", "base": 2, "mode": "retry_all"})
    res = cdp.simulate(p, cdp.Constant(rate=100), duration=10, seed=1, trace=True)
    b = res.batches
    failed = b[b["retry_all"]]
    # a failed batch acks nothing: each message is retried, or, on its last attempt
    # (max_retries + 1), dead-lettered or (no DLQ here) dropped
    assert len(failed) > 0 and (failed["acked"] == 0).all()
    assert (failed["retried"] + failed["dead_lettered"] + failed["dropped"] == failed["size"]).all()
    deliveries = res.runtime.trace.query("batch in @failed.batch")
    out = deliveries["disposition"] != "retried"      # the queue gave up on these
    assert (deliveries.loc[out, "attempts"] == 5 + 1).all() and (deliveries.loc[~out, "attempts"] <= 5).all()
    assert set(deliveries["disposition"]) <= {"retried", "dead_lettered", "dropped"}
    per = cdp.simulate(p.set("jobs.consumer.retry", cdp.model.RetryPolicy("fixed", 2, 60, "per_message")),
                       cdp.Constant(rate=100), duration=10, seed=1)
    assert per.summary()["retries"] < res.summary()["retries"]


def test_sinks_and_cron_sources():
    p = cdp.Pipeline("sink")
    p.add_source("nightly", queue="jobs", via="cron")
    p.add_queue("jobs")
    p.add_store("WEBHOOK", kind="sink", latency=0.2)
    p.add_consumer("jobs", writes=["WEBHOOK"])
    res = cdp.simulate(p, cdp.Constant(rate=1), duration=10, seed=1)
    assert res.runtime.sinks["WEBHOOK"].calls == 10
    assert res.batches["finished_at"].sub(res.batches["delivered_at"]).min() >= 0.2
    with pytest.raises(ConfigError, match="source 'x': via='email' is not allowed"):
        p.add_source("x", queue="jobs", via="email")


def test_delivery_trace_is_optional():
    p = cdp.Pipeline("traced")
    p.add_source("http", queue="jobs")
    p.add_queue("jobs", max_batch_size=5, max_batch_timeout=1)
    p.add_consumer("jobs", failure=0.2, retry={"policy": "fixed", "base": 1})
    quiet = cdp.simulate(p, cdp.Constant(rate=10), duration=10, seed=1)
    with pytest.raises(ValueError, match="trace=True"):
        quiet.runtime.trace
    traced = cdp.simulate(p, cdp.Constant(rate=10), duration=10, seed=1, trace=True)
    deliveries = traced.runtime.trace
    assert len(deliveries) == traced.messages["deliveries"].sum() > 100
    assert deliveries.groupby("batch").size().tolist() == traced.batches["size"].tolist()


def test_permanent_failures_are_a_share_of_failures():
    """failure = P(an attempt fails); permanent = the share of those that are poison and
    fail every attempt, so P(dead-lettered) = f*s + (1 - f*s) * q**(R+1)."""
    f, share, retries = 0.1, 0.3, 2
    p = cdp.Pipeline("poison")
    p.add_source("http", queue="jobs")
    p.add_queue("jobs", max_batch_size=10, max_batch_timeout=1, max_retries=retries,
                dead_letter_queue="jobs-dlq")
    p.add_queue("jobs-dlq")
    p.add_consumer("jobs", failure=f, permanent=share, retry={"policy": "fixed", "base": 1})
    p.add_consumer("jobs-dlq")
    res = cdp.simulate(p, cdp.Poisson(rate=200), duration=200, seed=2)
    jobs = res.messages[res.messages["queue"] == "jobs"]
    n = len(jobs)
    first_failed = (jobs["deliveries"] > 1).mean()
    q = f * (1 - share) / (1 - f * share)
    expected_dead = f * share + (1 - f * share) * q ** (retries + 1)
    dead = (jobs["outcome"] == "dead_lettered").mean()
    assert abs(first_failed - f) < 4 * np.sqrt(f * (1 - f) / n)
    assert abs(dead - expected_dead) < 4 * np.sqrt(expected_dead * (1 - expected_dead) / n)


def test_actor_node_with_user_code_runs_on_the_same_engine():
    """add_actor(cls=...) puts user code at an actor node, run through the real object gate;
    with the same service time it gives the same calls as the spec actor."""
    def pipeline(instances, **actor):
        p = cdp.Pipeline("code-actor")
        p.add_source("http", queue="jobs")
        p.add_queue("jobs", max_batch_size=4, max_batch_timeout=1, max_concurrency=3)
        p.add_consumer("jobs", calls="Worker")
        p.add_actor("Worker", instances=instances, **actor)
        return p

    received = []

    class Worker(cdp.Actor):
        async def handle(self, body):
            received.append(body)
            await self.ctx.work(0.02)

    def calls(instances, **actor):
        # every slot at once: three consumers call concurrently, so calls queue at the gate
        res = cdp.simulate(pipeline(instances, **actor), cdp.Poisson(rate=40), duration=20, seed=3,
                           semantics=cdp.PRODUCTION_ALL_SLOTS)
        return res.actor_calls
    cols = ["arrived", "started", "finished"]
    # one instance: every call identical
    a, b = calls(1, service=0.02), calls(1, cls=Worker)
    assert len(a) > 700 and (a["started"] > a["arrived"]).sum() > 100      # calls queued
    assert np.allclose(a[cols].to_numpy(), b[cols].to_numpy())
    assert received[0] == {"type": "message", "size": 1000, "origin": 0, "origin_time": received[0]["origin_time"]}
    # three instances: the same keys in the same order; chains that continue at the very
    # same instant (constant service times line them up) may take them in another order,
    # so compare what that cannot change
    a, b = calls(3, service=0.02), calls(3, cls=Worker)
    assert a["object"].value_counts().to_dict() == b["object"].value_counts().to_dict()
    assert a["wait"].mean() == pytest.approx(b["wait"].mean(), rel=0.05)
    with pytest.raises(cdp.ConfigError, match="Python code"):
        pipeline(1, cls=Worker).to_yaml()
    with pytest.raises(cdp.ConfigError, match="handle"):
        pipeline(1, cls=int)


def test_source_share_keeps_its_type_filter():
    """A source with ``types`` and ``share < 1`` receives a share of *those* types only
    (the share once replaced the type filter, so half of everything arrived)."""
    p = cdp.Pipeline("filter")
    p.add_source("a-only", queue="jobs", types=["a"], share=0.5)
    p.add_queue("jobs", max_batch_size=10, max_batch_timeout=1)
    p.add_consumer("jobs")
    res = cdp.simulate(p, cdp.Poisson(rate=100, types={"a": 0.5, "b": 0.5}), duration=50, seed=3)
    types = res.messages["type"].value_counts().to_dict()
    assert set(types) == {"a"}, types
    assert 0.2 < types["a"] / 5_000 < 0.3      # half of the a's: ~1,250 of ~5,000 arrivals
