"""cdp.simulate of a pipeline with a pull consumer (``pull={...}``): conservation, throughput
against a hand calculation of the polling model, visibility-timeout redelivery up to the dead
letter queue, empty pulls counted and costed, the local profile's refusal, and agreement
with the emulator (``rt.pull_consumer`` + ``PullClient`` driven by hand-written handler code).

The polling model (cdpkit/runtime/pull.py, PullClient): ``concurrency`` loops; a loop that got
a full batch pulls again as soon as it has acked it, after a partial or empty pull it waits
``interval``. With ``s`` the service time of a batch, a saturated queue is drained at
``concurrency * batch_size / s`` messages per second whatever the interval; when no pull is
full, one loop's cycle is ``s + interval``.
"""

import numpy as np
import pandas as pd
import pytest

import cdpkit as cdp
from cdpkit.runtime.pull import PullClient
from cdpkit.sim.cost import quantities


def pulled(pull: dict, service: dict, failure: float = 0.0, max_retries: int = 3, **consumer) -> cdp.Pipeline:
    p = cdp.Pipeline("puller")
    p.add_source("http", queue="jobs")
    p.add_queue("jobs", max_retries=max_retries, dead_letter_queue="jobs-dlq")
    p.add_queue("jobs-dlq")
    p.add_consumer("jobs", service=service, failure=failure, pull=pull, **consumer)
    p.add_consumer("jobs-dlq")
    return p


def jobs_batches(res: cdp.Results) -> pd.DataFrame:
    b = res.batches
    return b[b["queue"] == "jobs"]


def test_a_pull_consumer_in_simulate_conserves_messages_through_retries_and_the_dead_letter_queue():
    p = pulled({"interval": 0.5, "batch_size": 10, "concurrency": 2, "visibility_timeout": 30},
               {"base": 0.05, "per_message": 0.01}, failure=0.3, max_retries=2,
               retry={"policy": "fixed", "base": 2}, publish=["events"])
    p.add_queue("events")
    p.add_consumer("events")
    res = cdp.simulate(p, cdp.Poisson(rate=50), duration=20, seed=3)
    s = res.summary()
    m = res.messages
    jobs = m[m["queue"] == "jobs"]
    assert s["in_flight"] == 0 and m["outcome"].ne("in_flight").all()
    counts = jobs["outcome"].value_counts()
    assert counts["acked"] + counts["dead_lettered"] == len(jobs)
    assert counts["dead_lettered"] == (m["queue"] == "jobs-dlq").sum() > 0
    assert (m["queue"] == "events").sum() == counts["acked"]          # each acked message published once
    assert jobs["deliveries"].max() == 3 and (jobs["deliveries"] > 1).mean() > 0.2   # retried by lease
    res.runtime.check_conservation()
    assert res.timeline.query("node == 'jobs'")["consumers"].eq(2).all()     # the client's loops


@pytest.mark.parametrize("interval", [0.2, 2.0])
def test_saturated_throughput_is_concurrency_times_batch_over_service_time(interval):
    # c = 3 loops, b = 10 messages, s = 0.5 s per batch: every pull is full, so each loop pulls
    # again at once: 3 * 10 / 0.5 = 60 msg/s, whatever the interval (c*b/max(i, s) would say 15
    # with i = 2: that is a client that waits an interval after every batch, not this one)
    c, b, s = 3, 10, 0.5
    p = pulled({"interval": interval, "batch_size": b, "concurrency": c}, {"base": s})
    res = cdp.simulate(p, cdp.Poisson(rate=200), duration=30, seed=1)
    batches = jobs_batches(res)
    window = batches[(batches["delivered_at"] >= 5) & (batches["delivered_at"] < 25)]
    assert (window["size"] == b).all()
    rate = window["size"].sum() / 20
    assert rate == pytest.approx(c * b / s, rel=0.02)
    assert res.summary()["in_flight"] == 0


def test_below_saturation_a_loop_cycles_every_service_time_plus_interval():
    # one loop, batch never full: pulls at 0, s + i, 2 (s + i), ... each takes what arrived
    # during the cycle: lambda * (s + i) = 4 * 2.5 = 10 messages; arrivals every d = 1 / lambda
    # from a pull's instant on wait s + i - k d (k = 1..9) or 0 (k = 0, taken at once): on
    # average (s + i - d) / 2
    s, i, rate = 0.5, 2.0, 4.0
    p = pulled({"interval": i, "batch_size": 100, "concurrency": 1}, {"base": s})
    res = cdp.simulate(p, cdp.Constant(rate=rate), duration=100, seed=1)
    batches = jobs_batches(res)
    gaps = np.diff(batches["delivered_at"].to_numpy())
    assert gaps[:-1] == pytest.approx(s + i)
    assert batches["size"].iloc[1:-1].mean() == pytest.approx(rate * (s + i), rel=0.02)
    assert res.summary()["wait_mean"] == pytest.approx((s + i - 1 / rate) / 2, rel=0.01)


def test_service_longer_than_the_visibility_timeout_redelivers_until_the_dead_letter_queue():
    p = pulled({"interval": 1.0, "batch_size": 10, "concurrency": 1, "visibility_timeout": 1},
               {"base": 3.0}, max_retries=2)
    res = cdp.simulate(p, cdp.Constant(rate=2), duration=5, seed=1)
    m = res.messages
    jobs, dlq = m[m["queue"] == "jobs"], m[m["queue"] == "jobs-dlq"]
    assert len(jobs) == 10
    assert jobs["outcome"].eq("dead_lettered").all()          # never acked in time: 3 attempts
    assert jobs["deliveries"].eq(3).all()
    assert len(dlq) == 10 and dlq["outcome"].eq("acked").all()
    # with a lease longer than the service, the same run acks everything at once
    p = p.set("jobs.consumer.pull", {"interval": 1.0, "batch_size": 10, "concurrency": 1, "visibility_timeout": 4})
    res = cdp.simulate(p, cdp.Constant(rate=2), duration=5, seed=1)
    jobs = res.messages.query("queue == 'jobs'")
    assert jobs["outcome"].eq("acked").all() and jobs["deliveries"].eq(1).all()


def test_empty_pulls_are_counted_and_each_costs_a_read():
    # arrivals at 0, 2, 4, 6, 8; one loop, no service time, polls every second: pulls at
    # 0..10, those at 1, 3, 5, 7, 9 and 10 are empty (at 10 the run is over: the loop idles)
    p = pulled({"interval": 1.0, "batch_size": 10, "concurrency": 1}, {"base": 0.0})
    res = cdp.simulate(p, cdp.Constant(rate=0.5), duration=10, seed=1)
    pull = res.runtime.queues["jobs"].consumer
    assert (pull.pulls, pull.empty_pulls) == (11, 6)
    used = quantities(res.runtime)
    assert used["queues_operations"] == 5 * 3 + 6       # a write, a read, a delete each; 6 empty reads
    assert used["workers_requests"] == 0                # pulls are not Worker invocations
    cost = res.cost().set_index("item")
    assert cost.loc["queues_operations", "quantity"] == 5 * 3 + 6


def test_the_local_profile_has_no_pull_consumer():
    p = pulled({"batch_size": 10}, {"base": 0.01})
    with pytest.raises(cdp.ConfigError, match=r"simulate: the consumer of 'jobs' is a pull consumer \(pull=...\), "
                                             r"which semantics='local' does not have: wrangler dev has no pull "
                                             r"endpoint .*; allowed: semantics='production', or a push consumer"):
        cdp.simulate(p, cdp.Poisson(rate=10), duration=5, semantics="local")


def test_faults_reach_a_pull_consumers_behaviour_and_a_throwing_outage_is_refused():
    p = pulled({"interval": 0.5, "batch_size": 10, "concurrency": 2}, {"base": 0.05})
    errors = [{"kind": "errors", "node": "jobs.consumer", "p": 0.5, "start": 0, "end": 10}]
    res = cdp.simulate(p, cdp.Poisson(rate=40), duration=20, seed=2, faults=errors)
    jobs = res.messages.query("queue == 'jobs'")
    early = jobs[jobs["sent"] < 9]
    assert early["deliveries"].gt(1).mean() > 0.3 and jobs[jobs["sent"] > 12]["deliveries"].eq(1).all()
    with pytest.raises(cdp.ConfigError, match=r"mode='throw' of a pull consumer \('jobs.consumer'\) is not "
                                             r"modelled .*; allowed: mode='pause'"):
        cdp.simulate(p, cdp.Poisson(rate=40), duration=20, faults=[
            {"kind": "outage", "node": "jobs.consumer", "start": 0, "end": 5}])
    paused = cdp.simulate(p, cdp.Poisson(rate=40), duration=20, seed=2, faults=[
        {"kind": "outage", "node": "jobs.consumer", "start": 2, "end": 6, "mode": "pause"}])
    b = jobs_batches(paused)
    assert not ((b["delivered_at"] > 2) & (b["delivered_at"] < 6)).any()
    assert paused.summary()["in_flight"] == 0


def test_the_emulator_and_simulate_agree_on_a_small_deterministic_case():
    # two loops of batch 4 every second; a batch takes 0.3 + 0.6 n s, so batches of 3 or more
    # outlive the 2 s lease and come back; max_retries 1 sends the twice-late ones to the DLQ
    times = [0.137 + 0.31 * k for k in range(20)]       # no arrival at a poll's instant
    pull = {"interval": 1.0, "batch_size": 4, "concurrency": 2, "visibility_timeout": 2}
    p = pulled(pull, {"base": 0.3, "per_message": 0.6}, max_retries=1)
    res = cdp.simulate(p, cdp.Replay(trace=pd.DataFrame({"time": times})), duration=10, seed=1)

    rt = cdp.Runtime(semantics="production")
    rt.queue("jobs", max_retries=1, dead_letter_queue="jobs-dlq")
    rt.queue("jobs-dlq")

    @rt.consumer("jobs-dlq")
    async def dlq(batch, env, ctx):
        pass

    consumer = rt.pull_consumer("jobs")

    async def handler(messages):
        await rt.sleep(0.3 + 0.6 * len(messages))     # the spec's service time, by hand

    for k, t in enumerate(times):
        rt.clock.call_at(t, rt.env.JOBS.send, {"n": k})
    PullClient(consumer, handler, interval=1.0, batch_size=4, concurrency=2, visibility_timeout=2, idle_after=10)
    rt.run()

    columns = ["sent", "deliveries", "outcome", "finished"]
    ours = res.messages.query("queue == 'jobs'").sort_values("sent")[columns].reset_index(drop=True)
    hand = rt.messages.query("queue == 'jobs'").sort_values("sent")[columns].reset_index(drop=True)
    pd.testing.assert_frame_equal(ours, hand, check_exact=False, rtol=1e-9, check_categorical=False)
    assert set(ours["outcome"]) == {"acked", "dead_lettered"} and ours["deliveries"].max() == 2
    simulated = res.runtime.queues["jobs"].consumer
    assert (simulated.pulls, simulated.empty_pulls) == (consumer.pulls, consumer.empty_pulls)
    batches = [b[["delivered_at", "size"]].reset_index(drop=True) for b in (jobs_batches(res),
               rt.batches[rt.batches["queue"] == "jobs"])]
    pd.testing.assert_frame_equal(*batches, check_exact=False, rtol=1e-9)


def test_an_idle_loop_counts_the_polls_it_skips():
    # the first attempt is retried with a 5 s delay: an idle loop waits for it to land instead
    # of polling, and counts the polls it skipped; a loop that never idles polls them
    def run(idle_after, until):
        rt = cdp.Runtime(semantics="production")
        rt.queue("jobs", max_retries=3)
        consumer = rt.pull_consumer("jobs")

        async def handler(messages):
            m, = messages
            if m.attempts == 1:
                return [], [{"lease_id": m.lease_id, "delay_seconds": 5}]

        rt.clock.call_at(0.25, rt.env.JOBS.send, {"n": 1})
        PullClient(consumer, handler, interval=0.7, idle_after=idle_after)
        rt.run(until=until)
        return rt, consumer

    idle, pull = run(0.0, None)
    assert idle.messages["outcome"].tolist() == ["acked"]
    busy, polled = run(None, idle.now)
    assert busy.messages["finished"].tolist() == idle.messages["finished"].tolist()
    # polls every 0.7 s: 0 (empty), 0.7 (attempt 1, retried to land at 5.7), 1.4 .. 5.6 (7 empty),
    # 6.3 (attempt 2, acked), 7.0 (empty: the idle loop waits from then on, the run is over)
    assert idle.now == pytest.approx(7.0)
    assert (pull.pulls, pull.empty_pulls) == (polled.pulls, polled.empty_pulls) == (11, 9)
    with pytest.raises(cdp.ConfigError, match=r"idle_after=-1 is not allowed; allowed: None or a time"):
        PullClient(pull, None, idle_after=-1)


def test_a_lease_is_not_held_to_the_consumer_wall_time_limit():
    # a pull client runs outside Workers: a 20-minute lease acked after 16 minutes is acked
    rt = cdp.Runtime(semantics="production")
    rt.queue("jobs")
    pull = rt.pull_consumer("jobs")
    rt.env.JOBS.send({"n": 1})
    rt.run(until=1)
    m, = pull.pull(visibility_timeout=1200)
    rt.run(until=1 + 960)
    assert pull.ack(acks=[m.lease_id]) == {"acked": 1, "retried": 0, "ignored": 0}
    assert rt.messages["outcome"].tolist() == ["acked"] and rt.errors.empty


def test_a_long_pulled_batch_is_not_warned_about_the_workers_wall_time():
    """A pulled batch that takes 20 minutes (inside its 1-hour lease) is not a Worker
    invocation: no 'consumer wall time' warning (there was one, citing the 15-minute limit)."""
    p = pulled({"interval": 1, "batch_size": 1, "concurrency": 1, "visibility_timeout": 3600},
               {"base": 1200})
    res = cdp.simulate(p, cdp.Constant(rate=0.001), duration=2000, seed=1, semantics="production")
    assert res.messages["outcome"].tolist() == ["acked"] * len(res.messages) and len(res.messages) >= 1
    assert "consumer wall time (s)" not in res.warnings["what"].tolist()
