"""Production truth: consumer autoscaling, platform limits and warnings (issue 14).

Every rule cites shared/reference/cloudflare-semantics.md (§1, §3, §4, §5); the autoscaling
parameters are an assumption (Cloudflare publishes none) whose defaults reproduce the
docs' worked example.
"""

import re
import warnings
from dataclasses import replace

import numpy as np
import pytest

import cdpkit as cdp
from cdpkit.errors import ConfigError, LimitError


def one_queue(service, failure=0.0, retry=None, **settings):
    p = cdp.Pipeline("one")
    p.add_source("http", queue="jobs")
    p.add_queue("jobs", **settings)
    p.add_consumer("jobs", service=service, failure=failure, **({"retry": retry} if retry else {}))
    return p


def levels(res, queue="jobs"):
    return res.runtime.queues[queue].scaler.levels


# -- consumer autoscaling (§3 "Consumer concurrency") --------------------------------------
def test_worked_example_steady_state_is_about_five_consumers():
    # docs: 100 msg/s written, one consumer takes 5 s per 100-message batch -> "a
    # steady-state of (approximately) five (5)" concurrent consumers
    p = one_queue({"base": 5.0}, max_batch_size=100, max_batch_timeout=5)
    res = cdp.simulate(p, cdp.Constant(rate=100), duration=600, seed=1)
    tl = res.timeline
    steady = tl[(tl["node"] == "jobs") & (tl["time"] > 120) & (tl["time"] <= 600)]["consumers"]
    assert 4 <= steady.min() and steady.max() <= 6
    assert 4.5 < steady.mean() < 5.5
    assert res.runtime.queues["jobs"].consumers <= 6


def spike():
    p = one_queue({"base": 1.0}, max_batch_size=10, max_batch_timeout=1)
    return p, cdp.Piecewise([(0, 2), (60, 200), (90, 2)])


def test_spike_consumers_rise_batch_by_batch_and_p99_is_higher_than_all_slots():
    p, load = spike()
    auto = cdp.simulate(p, load, duration=300, seed=2)
    slots = cdp.simulate(p, load, duration=300, seed=2, semantics=cdp.PRODUCTION_ALL_SLOTS)
    steps = levels(auto)
    assert steps[0] == (0.0, 1)
    ups = [b - a for (_, a), (_, b) in zip(steps, steps[1:]) if b > a]
    assert ups and max(ups) == 1                          # one consumer more per batch at most
    finished = set(auto.batches["finished_at"].round(9))
    assert all(round(t, 9) in finished for t, _ in steps[1:])    # only when a batch finishes
    assert max(level for _, level in steps) >= 20
    assert auto.summary()["p99_latency"] > slots.summary()["p99_latency"]
    assert slots.timeline.query("node == 'jobs'")["consumers"].eq(250).all()
    # and it scales down once the backlog is gone
    tl = auto.timeline.query("node == 'jobs'")
    assert tl[(tl["time"] > 200) & (tl["time"] < 300)]["consumers"].max() <= 3
    auto.runtime.check_conservation()


def rt_failing(call):
    rt = cdp.Runtime(semantics="production")
    rt.queue("jobs", max_batch_size=10, max_batch_timeout=1, max_retries=100)

    @rt.consumer("jobs")
    async def handle(batch, env, ctx):
        await ctx.sleep(1)
        call(batch)

    for i in range(3000):
        rt.env.JOBS.send(i)
    rt.run(until=60)
    return rt.queues["jobs"].scaler


def test_failed_invocations_scale_down_and_retries_do_not():
    def throw(batch):
        raise RuntimeError("boom")

    failing = rt_failing(throw)
    retrying = rt_failing(lambda batch: batch.retry_all())
    assert max(level for _, level in retrying.levels) >= 10
    assert retrying.level >= 10          # retryAll() is not a failed invocation
    assert failing.level == 1 and failing.failed_share > 0.9


def test_all_slots_profile_runs_every_slot_from_the_start():
    assert cdp.PRODUCTION_ALL_SLOTS.autoscaling is None
    rt = cdp.Runtime(semantics=cdp.PRODUCTION_ALL_SLOTS)
    assert rt.queue("jobs", max_concurrency=7).consumers == 7
    assert cdp.Runtime(semantics="production").queue("jobs").consumers == 1
    assert cdp.Runtime(semantics="local").queue("jobs").consumers == 1


def test_autoscaling_parameters_are_checked():
    with pytest.raises(ConfigError, match=re.escape("Autoscaling: step_up=0 is not allowed; allowed: an int >= 1")):
        cdp.Autoscaling(step_up=0)
    with pytest.raises(ConfigError, match=re.escape("Autoscaling: drain_seconds=-1 is not allowed")):
        cdp.Autoscaling(drain_seconds=-1)
    faster = replace(cdp.PRODUCTION, autoscaling=cdp.Autoscaling(start=4))
    assert cdp.Runtime(semantics=faster).queue("jobs").consumers == 4


# -- queue limits (§1, §3) -----------------------------------------------------------------
def test_send_over_5000_per_second_throws_too_many_requests():
    rt = cdp.Runtime(semantics="production")
    rt.queue("jobs")
    rt.env.JOBS.send_batch([{"body": i} for i in range(100)])
    for i in range(4_900):
        rt.env.JOBS.send(i)
    with pytest.raises(LimitError, match=re.escape(
            "send to queue 'jobs': Too Many Requests: 5,001 messages in 1 s; allowed: at most 5,000 "
            "messages per second per queue (shard across queues")):
        rt.env.JOBS.send(0)
    with pytest.raises(LimitError, match="send_batch to queue 'jobs': Too Many Requests"):
        rt.env.JOBS.send_batch([{"body": 1}])
    assert len(rt.ledger) == 5_000
    rt.run(until=1.0)
    rt.env.JOBS.send(1)                  # a new second
    assert cdp.Runtime(semantics="local").queue("x") is not None


def test_local_has_no_throughput_limit():
    rt = cdp.Runtime(semantics="local")
    rt.queue("jobs")
    for i in range(6_000):
        rt.env.JOBS.send(i)
    assert len(rt.ledger) == 6_000


def test_spec_pipeline_over_5000_per_second_rejects_and_conserves():
    p = one_queue({"base": 0.01}, max_batch_size=100, max_batch_timeout=1)
    res = cdp.simulate(p, cdp.Constant(rate=7_000), duration=3, seed=1)
    s = res.summary()
    assert s["rejected"] == 6_000 and s["acked"] == 15_000
    assert s["messages"] == s["acked"] + s["rejected"] + s["dropped"] + s["dead_lettered"]
    msgs = res.messages
    assert set(msgs.loc[msgs["outcome"] == "rejected", "drop_reason"]) == {
        "Too Many Requests: over 5,000 messages per second"}
    res.runtime.check_conservation()
    frame = res.runtime.conservation()
    assert frame.loc["jobs", "rejected"] == 6_000 and frame["balanced"].all()
    w = res.warnings
    row = w[w["what"] == "queue throughput (messages/s)"].iloc[0]
    assert row["value"] == 7_000 and row["limit"] == 5_000 and "shard over 2 queues" in row["advice"]
    assert "Too Many Requests" in row["source"]
    # sharded over two queues: nothing rejected, no throughput warning over the limit
    q = cdp.Pipeline("sharded")
    for k in (0, 1):
        q.add_source(f"http{k}", queue=f"jobs-{k}", share=0.5)
        q.add_queue(f"jobs-{k}", max_batch_size=100, max_batch_timeout=1)
        q.add_consumer(f"jobs-{k}", service={"base": 0.01})
    sharded = cdp.simulate(q, cdp.Constant(rate=7_000), duration=3, seed=1)
    assert sharded.runtime.ledger.counts()["rejected"].sum() == 0


def test_backlog_over_25_gb_fails_with_storage_limit_exceeded():
    small = replace(cdp.PRODUCTION, queue_backlog_bytes=1_000)
    rt = cdp.Runtime(semantics=small)
    rt.queue("jobs")
    for _ in range(5):
        rt.env.JOBS.send("x" * 198)      # 200 bytes as JSON
    rt.run(until=0.0)
    with pytest.raises(LimitError, match=re.escape(
            "send to queue 'jobs': Storage Limit Exceeded: the backlog would hold 1,200 bytes; "
            "allowed: at most 1,000 bytes (25 GB) per queue")):
        rt.env.JOBS.send("x" * 198)
    assert cdp.PRODUCTION.queue_backlog_bytes == 25e9


def test_delays_up_to_24_hours_in_production():
    assert cdp.PRODUCTION.max_delay_seconds == 86_400
    rt = cdp.Runtime(semantics="production")
    rt.queue("jobs")
    rt.env.JOBS.send(1, delay_seconds=86_400)
    with pytest.raises(LimitError, match=re.escape("send: delay_seconds=86401 is not allowed; allowed: "
                                                   "a number of seconds from 0 to 86400")):
        rt.env.JOBS.send(1, delay_seconds=86_401)


def test_free_plan_fixes_retention_at_24_hours():
    assert cdp.PRODUCTION.plan == "paid" and cdp.PRODUCTION_FREE.plan == "free"
    free = cdp.Runtime(semantics=cdp.PRODUCTION_FREE)
    assert free.queue("jobs").retention == 86_400
    assert cdp.Runtime(semantics="production").queue("jobs").retention == 4 * 86_400
    assert cdp.Runtime(semantics="production").queue("jobs", retention=14 * 86_400).retention == 14 * 86_400
    with pytest.raises(ConfigError, match=re.escape(
            "queue 'long': retention=172800 is not allowed on the Free plan; allowed: 86400 "
            "(fixed at 24 h on the Free plan)")):
        free.queue("long", retention=172_800)
    with pytest.raises(ConfigError, match=re.escape("Semantics: plan='pro' is not allowed; allowed: 'paid', 'free'")):
        replace(cdp.PRODUCTION, plan="pro")
    p = one_queue({"base": 0.1})
    assert cdp.simulate(p, cdp.Constant(rate=1), duration=5, semantics=cdp.PRODUCTION_FREE).plan == "free"


def test_consumer_invocation_over_15_minutes_of_wall_time_fails():
    rt = cdp.Runtime(semantics="production")
    rt.queue("jobs", max_retries=0)

    @rt.consumer("jobs")
    async def slow(batch, env, ctx):
        await ctx.sleep(901)

    rt.env.JOBS.send(1)
    rt.run()
    assert rt.messages["outcome"].tolist() == ["dropped"]
    assert str(rt.errors["error"][0]) == ("queue 'jobs': consumer invocation ran 901 s; allowed: at most "
                                          "900 s of wall time per invocation (shared/reference/"
                                          "cloudflare-semantics.md §3)")


@pytest.mark.parametrize("semantics, cpu, outcome", [("production", 31, "dropped"),
                                                     ("production", 29, "acked"),
                                                     ("local", 31, "acked")])
def test_consumer_invocation_over_30_seconds_of_cpu_fails_in_production(semantics, cpu, outcome):
    rt = cdp.Runtime(semantics=semantics)
    rt.queue("jobs", max_retries=0)

    @rt.consumer("jobs")
    async def busy(batch, env, ctx):
        await ctx.work(cpu)

    rt.env.JOBS.send(1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", cdp.HandlerWarning)
        rt.run()
    assert rt.messages["outcome"].tolist() == [outcome]
    if outcome == "dropped":
        assert str(rt.errors["error"][0]) == (
            "Worker exceeded CPU time limit. (queue 'jobs': the invocation used 31 s of CPU; allowed: "
            "at most 30 s, the default limit; shared/reference/cloudflare-semantics.md §3)")


# -- Durable Objects (§4) and KV (§5) -------------------------------------------------------
class Counter(cdp.Actor):
    async def hit(self):
        return 1


def hot_object(rate, seconds=6.0, keys=1):
    rt = cdp.Runtime(semantics="production")
    rt.actor("COUNTER", Counter)
    results = []

    async def caller(i):
        try:
            results.append(await rt.env.COUNTER.get_by_name(f"k{i % keys}").hit())
        except LimitError as exc:
            results.append(str(exc))

    n = int(rate * seconds)
    for i in range(n):
        rt.call_at(i / rate, lambda i=i: rt.spawn(caller(i)))
    rt.run()
    return rt, results


def test_hot_durable_object_is_overloaded_past_1000_requests_per_second():
    rt, results = hot_object(1_500)
    errors = [r for r in results if r != 1]
    assert errors and all(e.startswith("Durable Object is overloaded. Requests queued for too long.")
                          for e in errors)
    calls = rt.actor_calls
    assert (calls["outcome"] == "overloaded").sum() == len(errors)
    assert calls["wait"].max() <= cdp.PRODUCTION.actor_max_queue_seconds + 1e-9
    # sharded over two keys: 750 requests/s each, no error
    _, results = hot_object(1_500, keys=2)
    assert all(r == 1 for r in results)
    # under 1,000/s nothing queues
    rt, results = hot_object(900)
    assert all(r == 1 for r in results) and rt.actor_calls["wait"].max() == 0


def test_local_durable_object_has_no_request_limit():
    rt = cdp.Runtime(semantics="local")
    rt.actor("COUNTER", Counter)
    futures = [rt.env.COUNTER.get_by_name("k").hit() for _ in range(3_000)]
    rt.run()
    assert all(f.result() == 1 for f in futures)


def test_kv_writes_to_one_key_faster_than_1_per_second_get_429():
    rt = cdp.Runtime(semantics="production")
    kv = rt.kv("CACHE")
    outcomes = []

    async def writer():
        for t in (0.0, 0.5, 1.0, 1.0):
            await rt.sleep(t - rt.now)
            try:
                await kv.put("k", "v")
                outcomes.append("ok")
            except LimitError as exc:
                outcomes.append(str(exc))
        await kv.put("other", "v")

    rt.spawn(writer())
    rt.run()
    assert outcomes[0] == "ok" and outcomes[2] == "ok"
    assert outcomes[1] == ("CACHE.put: KV PUT failed: 429 Too Many Requests: key 'k' was written 0.5 s ago; "
                           "allowed: 1 write per second to one key")
    assert outcomes[3].startswith("CACHE.put: KV PUT failed: 429 Too Many Requests")
    assert kv.rejected_writes == 2 and kv.writes == 3
    local = cdp.Runtime(semantics="local").kv("CACHE")
    local.put("k", "v")
    local.put("k", "w")
    assert local.writes == 2


# -- warnings --------------------------------------------------------------------------------
def test_warnings_near_and_over_limits_name_place_time_value_limit_and_source():
    p = cdp.Pipeline("hot")
    p.add_source("http", queue="jobs")
    p.add_queue("jobs", max_batch_size=100, max_batch_timeout=1)
    p.add_consumer("jobs", service={"base": 0.01}, calls="Hot")
    p.add_actor("Hot", instances=1, service=0.0001)
    res = cdp.simulate(p, cdp.Constant(rate=4_200), duration=2, seed=1)
    w = res.warnings
    assert list(w.columns) == ["what", "where", "when", "value", "limit", "source", "advice"]
    queue = w[w["where"] == "queue 'jobs'"].iloc[0]
    assert queue["what"] == "near: queue throughput (messages/s)" and queue["value"] == 4_200
    hot = w[w["what"] == "Durable Object requests/s"].iloc[0]
    assert hot["value"] > 1_000 and hot["limit"] == 1_000 and "keys" in hot["advice"]
    assert "§4: soft limit of 1,000 requests/s per object" in hot["source"]
    assert "warning: Durable Object requests/s" in repr(res)
    quiet = cdp.simulate(one_queue({"base": 0.1}), cdp.Constant(rate=10), duration=5, seed=1)
    assert quiet.warnings.empty and "warning" not in repr(quiet)
    assert cdp.simulate(p, cdp.Constant(rate=4_200), duration=1, seed=1, semantics="local").warnings.empty


def test_timeline_has_consumers_per_queue():
    res = cdp.simulate(one_queue({"base": 0.5}), cdp.Constant(rate=50), duration=30, seed=1)
    tl = res.timeline
    assert "consumers" in tl.columns
    jobs = tl[tl["node"] == "jobs"]["consumers"]
    assert jobs.iloc[0] == 1 and jobs.max() > 1
    assert np.isfinite(jobs).all()


def test_dashboard_draws_consumers_and_warnings_and_graph_marks_the_node():
    import matplotlib
    matplotlib.use("Agg")
    from cdpkit.viz.widgets import summary_html

    p = cdp.Pipeline("hot")
    p.add_source("http", queue="jobs")
    p.add_queue("jobs", max_batch_size=100, max_batch_timeout=1)
    p.add_consumer("jobs", service={"base": 0.5}, calls="Hot")
    p.add_actor("Hot", instances=1, service=0.0001)
    res = cdp.simulate(p, cdp.Constant(rate=4_200), duration=2, seed=1)
    fig = cdp.viz.dashboard(res)
    lines = [line for ax in fig.axes for line in ax.get_lines() if line.get_gid() == "consumers:jobs"]
    assert lines and max(lines[0].get_ydata()) > 1
    assert "Durable Object requests/s at HOT" in fig._supxlabel.get_text()
    ax = cdp.viz.draw_pipeline(p, res)
    marks = {t.get_gid() for t in ax.texts if (t.get_gid() or "").startswith("warning:")}
    assert marks == {"warning:jobs", "warning:Hot"}
    page = summary_html(res)
    # the summary shows the limit warning (near or over: the load depends on how fast consumers scale)
    assert "consumers jobs (peak)</span> <b>" in page and "Durable Object requests/s at HOT" in page


@pytest.mark.parametrize("dt", [5e-324, 1e-310, 1e-300, 1e-9])
def test_autoscaler_stays_finite_when_batches_end_an_instant_apart(dt):
    """The landing rate is averaged over time; two batches ending 5e-324 s apart once made it
    inf * 0 = NaN and int(NaN) crashed the run (found by test_virtual_time_is_monotonic)."""
    from types import SimpleNamespace

    from cdpkit.runtime.queues import Scaler
    scaler = Scaler(cdp.PRODUCTION.autoscaling, cap=10)
    clock = SimpleNamespace(now=dt)
    queue = SimpleNamespace(runtime=SimpleNamespace(clock=clock), arrived=3, buffer=[0] * 50)
    scaler.decide(queue, failed=False, size=10, seconds=0.5)
    clock.now, queue.arrived = 2 * dt, 7
    scaler.decide(queue, failed=False, size=10, seconds=0.5)
    assert np.isfinite(scaler.rate) and 1 <= scaler.level <= 10
def test_steady_inflow_above_one_consumers_capacity_gets_a_second_consumer():
    # one consumer does a batch of 10 in 80 ms (125 msg/s); 150 msg/s arrive: the inflow alone
    # needs 150 * 0.008 = 1.2 consumers, and max_concurrency allows 20
    p = cdp.Pipeline("one")
    p.add_source("http", queue="jobs")
    p.add_queue("jobs", max_batch_size=10, max_batch_timeout=1, max_concurrency=20)
    p.add_consumer("jobs", service={"per_message": 0.008})
    res = cdp.simulate(p, cdp.Constant(rate=150), duration=300, seed=1)
    tl = res.timeline.query("node == 'jobs' and time > 120")
    assert tl["consumers"].min() >= 2, tl["consumers"].value_counts().to_dict()
    assert tl["backlog"].max() < 100, tl["backlog"].describe().to_dict()


def test_a_hot_spec_actor_is_queued_and_overloaded_like_the_same_actor_in_code():
    """A service-only spec actor past the 1,000 req/s soft limit queues its calls and fails
    those queued too long, as the runtime's Durable Objects do (before: its calls ran at once
    and the warning could only say its times were optimistic). The same pipeline with the
    actor written as code gives the same calls, and the batches that met an overloaded
    actor are retried."""
    def hot(cls=None):
        p = cdp.Pipeline("hot")
        p.add_source("http", queue="hits")
        p.add_queue("hits", max_batch_size=100, max_batch_timeout=1, max_concurrency=50)
        # all of a batch's calls at once (Promise.all), every slot at once: the calls keep
        # arriving at 3,000/s (calls in turn slow down to what the object admits)
        p.add_consumer("hits", service={"base": 0.005}, calls="Counter", parallel=True)
        p.add_actor("Counter", instances=1, service=0.0005, cls=cls)
        return cdp.simulate(p, cdp.Constant(rate=3_000), duration=2, seed=1, semantics=cdp.PRODUCTION_ALL_SLOTS)

    class Counter(cdp.Actor):
        async def handle(self, body):
            await self.ctx.work(0.0005)

    spec, code = hot(), hot(Counter)
    calls = spec.actor_calls
    overloaded = int((calls["outcome"] == "overloaded").sum())
    assert overloaded > 0 and calls["wait"].max() > 0
    assert calls["wait"].max() <= cdp.PRODUCTION.actor_max_queue_seconds + 1e-9
    for column in ["arrived", "started", "finished", "outcome"]:
        assert calls[column].tolist() == code.actor_calls[column].tolist(), column
    assert spec.messages["attempts"].tolist() == code.messages["attempts"].tolist()
    assert spec.messages["attempts"].max() > 1           # failed batches were retried
    assert str(spec.runtime.errors["error"].iloc[0]).startswith(
        "Durable Object is overloaded. Requests queued for too long.")
    advice = spec.warnings.query("what == 'Durable Object requests/s'")["advice"].tolist()
    assert len(advice) == 1 and advice[0].startswith(f"{overloaded:,} requests overloaded; spread this "
                                                     "object's load over ")
