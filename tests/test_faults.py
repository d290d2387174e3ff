"""Fault timelines (issue 16): checks, queue operations, and what faults do, against
hand-computed results. Tolerances are stated where a check is statistical."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import cdpkit as cdp
from cdpkit.cli import main as cli_main


def line(name="o", batch=1, timeout=0, concurrency=1, **consumer) -> cdp.Pipeline:
    p = cdp.Pipeline(name)
    p.add_source("http", queue="jobs")
    p.add_queue("jobs", max_batch_size=batch, max_batch_timeout=timeout, max_concurrency=concurrency)
    p.add_consumer("jobs", **consumer)
    return p


# ----------------------------------------------------------------------------- checks

@pytest.mark.parametrize("fault, message", [
    ({"kind": "outage", "node": "jobs.consumer", "start": -5, "end": 10},
     "fault 1 (outage of 'jobs.consumer'): start=-5 is not allowed; allowed: a time in virtual seconds >= 0"),
    ({"kind": "rate_limit", "node": "CRM", "start": 0, "end": 10, "per_second": -1},
     "fault 1 (rate_limit of 'CRM'): per_second=-1 is not allowed; allowed: a number of calls per second >= 0"),
    ({"kind": "errors", "node": "jobs.consumer", "start": 0, "end": 10, "p": 1.5},
     "fault 1 (errors of 'jobs.consumer'): p=1.5 is not allowed; allowed: a probability from 0 to 1"),
    ({"kind": "slowdown", "node": "jobs.consumer", "start": 0, "end": 10, "factor": 0},
     "fault 1 (slowdown of 'jobs.consumer'): factor=0 is not allowed; allowed: a number > 0"),
    ({"kind": "outage", "node": "jobs.consumer", "start": 5, "end": 5},
     "fault 1 (outage of 'jobs.consumer'): end=5 is not allowed; allowed: end > start=5"),
    ({"kind": "outage", "node": "jobs.consumer", "start": 0, "end": 5, "mode": "crash"},
     "mode='crash' is not allowed; allowed: 'throw' (every invocation throws), 'pause' (delivery paused)"),
    ({"kind": "outrage", "node": "x", "start": 0, "end": 5}, "fault 1: kind='outrage' is not allowed; allowed: 'outage'"),
    ({"kind": "purge", "node": "jobs", "start": 0, "end": 5},
     "fault 1 (purge of 'jobs'): window fields ['start', 'end'] are not allowed; allowed: at"),
    ({"kind": "pause", "node": "jobs", "windows": [[0, 10], [5, 20]]},
     "window starting at 5 overlaps the one ending at 10; allowed: windows that do not overlap"),
    ({"kind": "pause", "node": "jobs", "start": 0, "end": 5, "p": 0.5},
     "fault 1 (pause of 'jobs'): field 'p' is not allowed for kind 'pause'"),
    ({"kind": "pause", "node": "jobs", "start": 0, "ends": 5}, "unknown field 'ends' (did you mean 'end'?)"),
])
def test_bad_fault_specs_name_fault_field_value_and_allowed(fault, message):
    with pytest.raises(cdp.ConfigError) as err:
        cdp.Faults([fault])
    assert message in str(err.value)


def test_faults_checked_against_pipeline_and_run_before_anything_runs():
    p = line(service={"base": 0.01})
    for fault, message in [
        ({"kind": "outage", "node": "jobz.consumer", "start": 0, "end": 5},
         "fault 1 (outage of 'jobz.consumer'): node='jobz.consumer' is not allowed (no such node); "
         "allowed: a consumer: jobs.consumer"),
        ({"kind": "outage", "node": "jobs", "start": 0, "end": 5},
         "node='jobs' is not allowed (it is a queue); allowed: a consumer: jobs.consumer"),
        ({"kind": "pause", "node": "jobs", "start": 60, "end": 70},
         "fault 1 (pause of 'jobs'): start=60 is not allowed (after the run); allowed: a time from 0 "
         "to below duration=60"),
        ({"kind": "dlq_down", "node": "jobs", "start": 0, "end": 5},
         "node='jobs' is not allowed (no queue dead-letters to it); allowed: a dead letter queue: (none)"),
    ]:
        with pytest.raises(cdp.ConfigError) as err:
            cdp.simulate(p, cdp.Poisson(rate=1), duration=60, faults=[fault])
        assert message in str(err.value)


def test_no_faults_changes_nothing():
    p = cdp.Pipeline.from_yaml("cdpkit/data/cdp-gateway.yaml")
    mix = {"execute_workflow": 0.7, "web_scraping": 0.1, "email_validation": 0.1, "crm_sync": 0.1}
    w = cdp.Poisson(rate=50, types=mix)
    a = cdp.simulate(p, w, duration=30, seed=3)
    b = cdp.simulate(p, w, duration=30, seed=3, faults=cdp.Faults())
    # a fault that never touches anything before t=29 changes nothing before it either
    c = cdp.simulate(p, w, duration=30, seed=3, drain=False,
                     faults=[{"kind": "errors", "node": "ONCALL_WEBHOOK", "start": 29.5, "end": 30, "p": 1}])
    pd.testing.assert_frame_equal(a.messages, b.messages)
    assert a.incidents().empty
    early = a.messages["finished"] < 29
    pd.testing.assert_frame_equal(a.messages[early].reset_index(drop=True),
                                  c.messages[c.messages["finished"] < 29].reset_index(drop=True),
                                  check_categorical=False)


# ------------------------------------------------------------------- against theory

def test_outage_backlog_is_lambda_t_and_drains_in_lambda_t_over_mu_minus_lambda():
    """M/D/1, lambda=20/s, mu=40/s, delivery paused for T=300 s: backlog lambda*T = 6000,
    drain lambda*T/(mu-lambda) = 300 s; the mean of 3 seeds within 5 % of each."""
    p = line(service={"base": 0.025})
    f = cdp.Faults().add("outage", "jobs.consumer", mode="pause", start=100, end=400)
    rows = [cdp.simulate(p, cdp.Poisson(rate=20), duration=1000, seed=s, faults=f).incidents().iloc[0]
            for s in range(3)]
    peak = np.mean([r["peak_backlog"] for r in rows])
    drain = np.mean([r["time_to_drain"] for r in rows])
    assert abs(peak - 6000) / 6000 < 0.05, peak
    assert abs(drain - 300) / 300 < 0.05, drain
    assert all(r["peak_at"] >= 399 for r in rows)


def test_outage_longer_than_retention_loses_exactly_the_messages_older_than_retention():
    """Paused 300 s with retention 60 s: at resume (t=400) everything sent before t=340 has
    expired; nothing younger is lost (the consumer drains in no time)."""
    p = cdp.Pipeline("r")
    p.add_source("http", queue="jobs")
    p.add_queue("jobs", max_batch_size=100, max_batch_timeout=1, retention=60)
    p.add_consumer("jobs")
    f = cdp.Faults().add("pause", "jobs", start=100, end=400)
    res = cdp.simulate(p, cdp.Constant(rate=10), duration=500, faults=f)
    m = res.messages
    expired = m["drop_reason"] == "retention period expired"
    assert set(m.index[expired]) == set(m.index[(m["sent"] < 340) & (m["outcome"] != "acked")])
    assert m.loc[m["sent"] >= 340, "outcome"].eq("acked").all()
    row = res.incidents().iloc[0]
    assert row["expired"] == expired.sum() == pytest.approx(2400, abs=10)
    res.runtime.check_conservation()


@pytest.mark.parametrize("handler", [False, True])
def test_error_burst_dead_letters_p_to_the_r_plus_1(handler):
    """Failure p=0.5 inside [100, 400), R=3 retries at once: p**4 = 6.25 % of the messages
    first delivered inside it are dead-lettered (within 4 binomial standard errors). The
    handler-code consumer goes through the wrapper, the spec consumer through its hook."""
    async def ack_all(batch, env, ctx):
        batch.ack_all()
    p = cdp.Pipeline("e")
    p.add_source("http", queue="jobs")
    p.add_queue("jobs", max_batch_size=10, max_batch_timeout=0.1, max_retries=3, dead_letter_queue="dlq")
    p.add_queue("dlq")
    p.add_consumer("jobs", handler=ack_all if handler else None)
    p.add_consumer("dlq")
    f = cdp.Faults().add("errors", "jobs.consumer", p=0.5, start=100, end=400)
    res = cdp.simulate(p, cdp.Poisson(rate=50), duration=500, seed=1, faults=f)
    m = res.messages
    jobs = m[m["queue"] == "jobs"]
    inside = jobs[(jobs["first_delivered"] >= 100) & (jobs["first_delivered"] < 399)]
    share, n = (inside["outcome"] == "dead_lettered").mean(), len(inside)
    se = np.sqrt(0.0625 * 0.9375 / n)
    assert abs(share - 0.0625) < 4 * se, (share, n)
    outside = jobs[(jobs["first_delivered"] < 100) | (jobs["first_delivered"] >= 401)]
    assert (outside["outcome"] == "acked").all()
    row = res.incidents().iloc[0]
    assert row["dead_lettered"] == (jobs["outcome"] == "dead_lettered").sum()
    assert row["retried"] == (jobs["deliveries"] - 1).sum()


def test_permanent_errors_fail_every_attempt_inside_the_window():
    p = line(batch=10, timeout=0.1, concurrency=10, retry={"policy": "fixed", "base": 0})
    p = p.set("jobs.max_retries", 3)
    f = cdp.Faults().add("errors", "jobs.consumer", p=0.3, permanent=1, start=0, end=200)
    res = cdp.simulate(p, cdp.Poisson(rate=50), duration=300, seed=2, faults=f)
    jobs = res.messages[res.messages["first_delivered"] < 199]
    share, se = (jobs["outcome"] == "dropped").mean(), np.sqrt(0.3 * 0.7 / len(jobs))
    assert abs(share - 0.3) < 4 * se      # p itself, not p**4: the same messages fail each time


def test_rate_limited_sink_grows_retries_by_the_rate_difference():
    """100 msg/s into a sink that accepts 60 calls/s for T=60 s: 60*T are written, the other
    (100-60)*T = 2400 wait in retries at the window's end (within 5 %); each refused call is
    a retry."""
    p = cdp.Pipeline("rl")
    p.add_store("CRM", kind="sink", latency=0.01)
    p.add_source("http", queue="jobs")
    p.add_queue("jobs", max_batch_size=10, max_batch_timeout=0.1, max_retries=100)
    p.add_consumer("jobs", service={"per_message": 0.0005}, writes=["CRM"],
                   retry={"policy": "fixed", "base": 1})
    f = cdp.Faults().add("rate_limit", "CRM", per_second=60, start=20, end=80)
    res = cdp.simulate(p, cdp.Constant(rate=100), duration=120, faults=f)
    row = res.incidents().iloc[0]
    assert abs(row["peak_backlog"] - 2400) / 2400 < 0.05, row["peak_backlog"]
    assert row["peak_at"] == pytest.approx(80, abs=2)
    state = res.fault_plan.states[0]
    m = res.messages
    acked_inside = ((m["finished"] >= 20) & (m["finished"] < 80) & (m["outcome"] == "acked")).sum()
    assert acked_inside == pytest.approx(60 * 60, rel=0.02)
    assert row["retried"] == (m["deliveries"] - 1).sum() > 2400
    assert state.rejected == row["retried"]
    assert row["time_to_drain"] > 0 and not np.isnan(row["time_to_drain"])


def test_throw_outage_dead_letters_what_arrives_and_handler_code_gives_the_same_table():
    """Every invocation throws in [50, 110), retries at once: every message delivered in
    the window is dead-lettered after R+1 attempts. The same pipeline with handler code
    (ctx.work of the same service time) gives the same incident table."""
    async def handler(batch, env, ctx):
        await ctx.work(0.002 + 0.001 * len(batch.messages))
        batch.ack_all()

    def build(code: bool) -> cdp.Pipeline:
        p = cdp.Pipeline("t")
        p.add_source("http", queue="jobs")
        p.add_queue("jobs", max_batch_size=10, max_batch_timeout=1, max_retries=2,
                    dead_letter_queue="dlq", max_concurrency=5)
        p.add_queue("dlq", max_batch_size=10, max_batch_timeout=1)
        p.add_consumer("jobs", **({"handler": handler} if code else
                                  {"service": {"base": 0.002, "per_message": 0.001}}))
        p.add_consumer("dlq")
        return p

    f = cdp.Faults([{"kind": "outage", "node": "jobs.consumer", "start": 50, "end": 110},
                    {"kind": "dlq_down", "node": "dlq", "start": 100, "end": 160}])
    spec = cdp.simulate(build(False), cdp.Poisson(rate=20), duration=200, seed=4, faults=f)
    code = cdp.simulate(build(True), cdp.Poisson(rate=20), duration=200, seed=4, faults=f)
    pd.testing.assert_frame_equal(spec.incidents(), code.incidents())
    jobs = spec.messages[spec.messages["queue"] == "jobs"]
    inside = jobs[(jobs["first_delivered"] >= 50) & (jobs["first_delivered"] < 110)]
    assert (inside["outcome"] == "dead_lettered").all() and len(inside) > 1000
    first, second = spec.incidents().to_dict("records")
    assert first["dead_lettered"] == len(inside)
    dlq = spec.timeline[spec.timeline["node"] == "dlq"]
    assert dlq.loc[dlq["time"].between(100, 159), "backlog"].max() >= second["peak_backlog"] - 10


def test_backlog_plot_shades_the_fault_windows():
    import matplotlib
    matplotlib.use("Agg")
    from cdpkit import viz
    p = line(service={"base": 0.01})
    f = cdp.Faults([{"kind": "pause", "node": "jobs", "windows": [[5, 10], [20, 25]]},
                    {"kind": "purge", "node": "jobs", "at": 22}])
    ax = viz.plot_backlog(cdp.simulate(p, cdp.Constant(rate=2), duration=30, faults=f))
    shaded = [a for a in [*ax.patches, *ax.lines] if (a.get_gid() or "").startswith("fault:")]
    assert sorted(a.get_gid() for a in shaded) == ["fault:1", "fault:1", "fault:2"]


def test_slowdown_multiplies_service_time_inside_the_window_only():
    p = line(service={"base": 0.1})
    f = cdp.Faults().add("slowdown", "jobs.consumer", factor=5, start=20, end=40)
    res = cdp.simulate(p, cdp.Constant(rate=1), duration=60, faults=f)
    b = res.batches
    took = (b["finished_at"] - b["delivered_at"]).round(6)
    inside = b["delivered_at"].between(20, 39.9)
    assert set(took[inside]) == {0.5} and set(took[~inside]) == {0.1}


def test_same_seed_same_incidents():
    p = cdp.Pipeline.from_yaml("cdpkit/data/cdp-gateway.yaml")
    w = cdp.Poisson(rate=30, types={"execute_workflow": 0.5, "crm_sync": 0.3, "web_scraping": 0.1,
                                    "email_validation": 0.1})
    f = cdp.Faults().add("errors", "GHLContactActor", p=0.4, start=5, end=25)
    a, b = (cdp.simulate(p, w, duration=40, seed=9, faults=f).incidents() for _ in range(2))
    pd.testing.assert_frame_equal(a, b)
    assert a.loc[0, "queues"] == "cdp-task-queue" and a.loc[0, "retried"] > 0


# ---------------------------------------------------------------- runtime operations

def test_pause_resume_purge_on_the_runtime():
    rt = cdp.Runtime(semantics="local")
    rt.queue("jobs", max_batch_size=5, max_batch_timeout=1)
    seen = []

    @rt.consumer("jobs")
    async def handle(batch, env, ctx):
        seen.extend(m.body for m in batch.messages)

    rt.pause_delivery("jobs")
    for i in range(7):
        rt.env.JOBS.send(i)
    rt.run(until=10)
    assert seen == [] and rt.queues["jobs"].backlog == 7
    rt.check_conservation()
    rt.resume_delivery("jobs")
    rt.run(until=20)
    assert seen == list(range(7))
    rt.pause_delivery("jobs")
    rt.env.JOBS.send_batch([{"body": i} for i in range(3)])
    rt.run(until=25)
    assert rt.purge("jobs") == 3
    rt.resume_delivery("jobs")
    rt.run()
    assert seen == list(range(7))
    m = rt.messages
    assert (m["drop_reason"] == "purged").sum() == 3
    rt.check_conservation()


def test_runtime_applies_a_fault_timeline_to_handler_code():
    rt = cdp.Runtime(semantics="local", seed=1)
    rt.queue("jobs", max_batch_size=1, max_batch_timeout=0, max_retries=0)

    class Counter(cdp.Actor):
        def __init__(self, ctx, env):
            super().__init__(ctx, env)
            self.seen = 0

        async def hit(self):
            self.seen += 1
            return self.seen

    rt.actor("COUNTER", Counter)
    counts = []

    @rt.consumer("jobs")
    async def handle(batch, env, ctx):
        for _ in batch.messages:
            counts.append(await env.COUNTER.get_by_name("c").hit())

    plan = rt.apply_faults(cdp.Faults([
        {"kind": "outage", "node": "jobs.consumer", "start": 10, "end": 20},
        {"kind": "eviction", "node": "Counter", "at": 30}]))

    async def produce():
        for _ in range(40):
            await rt.env.JOBS.send(1)
            await rt.sleep(1)

    rt.spawn(produce())
    rt.run()
    m = rt.messages
    assert (m["outcome"] == "dropped").sum() == 10        # max_retries=0: thrown once, dropped
    assert counts[:10] == list(range(1, 11)) and counts[20] == 1   # memory lost at t=30
    assert plan.states[0].throws == 10 and plan.states[1].evicted == 1
    rt2 = cdp.Runtime()
    rt2.kv("KV")
    with pytest.raises(cdp.ConfigError, match="permanent=0.5 is not allowed for errors of store 'KV' in "
                                              "handler code .*; allowed: 0"):
        rt2.apply_faults(cdp.Faults([{"kind": "errors", "node": "KV", "start": 0, "end": 1, "permanent": 0.5}]))


# ------------------------------------------------------------- model files, sweep, CLI

FAULTS_YAML = """\
faults:
  - {kind: outage, node: jobs.consumer, start: 10, length: 20, mode: pause}
  - {kind: slowdown, node: jobs.consumer, factor: 3, every: 20, length: 5, start: 0, end: 60}
"""


def test_yaml_faults_section_round_trips_and_simulate_uses_it(tmp_path):
    p = line(service={"base": 0.01})
    data = p.to_dict()
    data["faults"] = cdp.Faults.from_yaml(FAULTS_YAML).to_list()
    q = cdp.Pipeline.from_dict(data)
    assert len(q.faults) == 2 and q.faults[1].windows[1] == (20.0, 25.0)
    assert cdp.Pipeline.from_dict(q.to_dict()).to_dict() == q.to_dict()
    res = cdp.simulate(q, cdp.Constant(rate=2), duration=60)
    assert list(res.incidents()["kind"]) == ["outage", "slowdown", "slowdown", "slowdown"]
    data["faults"][0]["node"] = "nope.consumer"
    with pytest.raises(cdp.ConfigError, match="fault 1 \\(outage of 'nope.consumer'\\): node='nope.consumer'"):
        cdp.Pipeline.from_dict(data)


def test_sweep_takes_faults_and_compares_recovery_knobs():
    p = line(batch=10, timeout=1, concurrency=2, service={"per_message": 0.01})
    f = cdp.Faults().add("outage", "jobs.consumer", start=10, end=40)
    p = p.set("jobs.max_retries", 10)
    table = cdp.sweep(p, {"jobs.retry_delay": [0, 10]}, cdp.Constant(rate=5), duration=60,
                      progress=False, faults=f)
    # retried at once, 11 attempts fit in the 30 s outage; 10 s apart they outlast it
    assert table["dropped"].tolist()[0] > 100 and table["dropped"].tolist()[1] == 0


def test_cli_simulate_with_faults(tmp_path, capsys):
    model = tmp_path / "m.yaml"
    model.write_text(line(service={"base": 0.01}).to_yaml())
    faults = tmp_path / "f.yaml"
    faults.write_text(FAULTS_YAML)
    assert cli_main(["simulate", str(model), "--rate", "2", "--duration", "60", "--faults", str(faults)]) == 0
    out = capsys.readouterr().out
    assert "incidents" in out and "outage" in out and "peak_backlog" in out


def test_slowdown_of_an_analytics_dataset_is_refused_before_the_run():
    """writeDataPoint returns at once: there is no wait to slow. It ended in an
    AttributeError from inside the fault wiring; now a ConfigError naming the fault."""
    p = cdp.Pipeline("points")
    p.add_source("http", queue="jobs")
    p.add_queue("jobs")
    p.add_consumer("jobs", writes=["LOG"])
    p.add_store("LOG", kind="analytics")
    slow = cdp.Faults().add("slowdown", "LOG", factor=4, start=0, length=5)
    with pytest.raises(cdp.ConfigError, match=r"fault 1 \(slowdown of 'LOG'\): slowdown of Analytics Engine "
                                              r"dataset 'LOG' is not modelled .*; allowed: a sink, KV"):
        cdp.simulate(p, cdp.Poisson(rate=5), duration=10, faults=slow, engine="python")


def test_an_eviction_storm_cancels_the_idle_timer_it_makes_moot():
    """An object idle since t=1 would be evicted at t=71 (production: 70 s idle). A storm at
    t=10 evicts it; a request at t=20 brings it back and ends: idle again, it is evicted at
    90, not at 71 by the timer the storm made moot (it was left pending: the object was
    evicted twice, 50 s early)."""
    rt = cdp.Runtime(semantics="production", seed=1)

    class Counter(cdp.Actor):
        async def hit(self):
            await self.ctx.work(1.0)

    ns = rt.actor("COUNTER", Counter)
    plan = rt.apply_faults(cdp.Faults([{"kind": "eviction", "node": "Counter", "at": 10}]))

    async def at(t):
        await rt.sleep(t)
        await ns.get_by_name("c").hit()

    rt.spawn(at(0))
    rt.spawn(at(19))
    rt.run(until=80)
    obj = ns.object_named("c")
    assert plan.states[0].evicted == 1 and obj.evictions == 1 and obj.instance is not None
    rt.run()
    assert obj.evictions == 2 and obj.instance is None and rt.now == 90


def test_messages_arriving_while_delivery_is_paused_count_in_the_backlog_bytes():
    """The 25 GB backlog limit counts stored messages: those that arrive while delivery is
    paused are stored too (the count lost them until delivery resumed)."""
    rt = cdp.Runtime(semantics="production")
    queue = rt.queue("jobs")

    @rt.consumer("jobs")
    async def handle(batch, env, ctx):
        pass

    queue.pause_delivery()
    rt.env.JOBS.send_batch([{"body": "x" * 100}] * 3)
    rt.run()
    assert queue.backlog == 3 and queue.backlog_bytes == sum(rt.ledger.bytes[:3])
    queue.resume_delivery()
    assert queue.backlog_bytes == sum(rt.ledger.bytes[:3])
