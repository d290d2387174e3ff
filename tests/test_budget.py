"""Every run returns or raises: the run budget, zero-time cycles, interrupts, lost errors,
bad times and arguments (issue 13, items 1-9)."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import pytest

import cdpkit as cdp
from cdpkit.cli import main
from cdpkit.errors import BudgetError, ConfigError, LimitError
from cdpkit.runtime.clock import Clock, Interrupted, TimeError

pytestmark = pytest.mark.timeout(120)   # before these fixes, most of them hung

EXAMPLE = str(Path(__file__).resolve().parent.parent / "examples" / "cdp-gateway.yaml")


# -- the budget itself -----------------------------------------------------------------
def test_budget_defaults_and_validation():
    assert cdp.Budget() == cdp.Budget(events=100_000_000, messages=20_000_000,
                                      memory_bytes=8 * 2**30, same_instant_events=250_000)
    with pytest.raises(ConfigError, match=r"Budget: messages=0 is not allowed; allowed: an int >= 1"):
        cdp.Budget(messages=0)
    with pytest.raises(ConfigError, match=r"Budget: events=1.5 is not allowed"):
        cdp.Budget(events=1.5)
    with pytest.raises(ConfigError, match=r"budget=5 is not allowed; allowed: a cdpkit.Budget or None"):
        cdp.Runtime(budget=5)


# -- zero-time cycles (item 1) ---------------------------------------------------------
# production without the 5,000 msg/s per-queue limit, which would end these cycles first
UNLIMITED = replace(cdp.PRODUCTION, queue_messages_per_second=None)


def ping_pong(fan: int = 1, budget: cdp.Budget | None = None) -> cdp.Runtime:
    """Two queues whose consumers send to each other at once: virtual time never moves."""
    rt = cdp.Runtime(semantics=UNLIMITED, budget=budget)
    rt.queue("a", max_batch_timeout=0, max_batch_size=1)
    rt.queue("b", max_batch_timeout=0, max_batch_size=1)

    @rt.consumer("a")
    async def to_b(batch, env, ctx):
        for _ in range(fan):
            await env.B.send(1)

    @rt.consumer("b")
    async def to_a(batch, env, ctx):
        await env.A.send(1)

    rt.env.A.send(0)
    return rt


def test_zero_time_cycle_stops_with_the_default_budget_naming_its_queues():
    rt = ping_pong()
    with pytest.raises(BudgetError) as err:
        rt.run(until=1)
    text = str(err.value)
    assert text.startswith("rt.run: virtual time has not advanced past t=0s for ")
    assert "a zero-time cycle through queue 'a' (" in text and "queue 'b' (" in text
    assert "over the run budget of 250,000 events at one instant" in text
    assert text.endswith("or raise it with cdp.Runtime(budget=cdp.Budget(same_instant_events=...))")
    assert rt.now == 0.0


def test_fan_out_at_one_instant_stops():
    rt = ping_pong(fan=2, budget=cdp.Budget(same_instant_events=20_000))
    with pytest.raises(BudgetError, match=r"zero-time cycle through queue '[ab]'"):
        rt.run(until=30)


def test_zero_time_loop_outside_queues_is_named_as_such():
    rt = cdp.Runtime(budget=cdp.Budget(same_instant_events=1_000))

    def again():
        rt.clock.call_later(0.0, again)

    rt.call_at(0.5, again)
    with pytest.raises(BudgetError, match=r"past t=0.5s for [\d,]+ events: a zero-time loop outside "
                                          r"queues and actors"):
        rt.run()


def zero_time_pipeline() -> cdp.Pipeline:
    p = cdp.Pipeline("zero")
    p.add_source("http", queue="a")
    p.add_queue("a", max_batch_timeout=0, max_batch_size=1)
    p.add_queue("b", max_batch_timeout=0, max_batch_size=1)
    p.add_consumer("a", publish=["b"])
    p.add_consumer("b", publish=["a"])
    return p


def test_simulate_zero_time_cycle_without_drain_stops():
    with pytest.raises(BudgetError) as err:
        cdp.simulate(zero_time_pipeline(), cdp.Poisson(rate=1), duration=10, drain=False,
                     budget=cdp.Budget(same_instant_events=20_000), semantics=UNLIMITED)
    text = str(err.value)
    assert text.startswith("simulate: virtual time has not advanced past t=")
    assert "queue 'a' (" in text and "queue 'b' (" in text
    assert text.endswith("or raise it with budget=cdp.Budget(same_instant_events=...)")


# -- cycles that never drain (item 2) --------------------------------------------------
def publish_cycle() -> cdp.Pipeline:
    p = cdp.Pipeline("cycle")
    p.add_source("http", queue="a")
    p.add_queue("a")
    p.add_queue("b")
    p.add_consumer("a", service={"base": 0.01}, publish=["b"])
    p.add_consumer("b", service={"base": 0.01}, publish=["a"])
    return p


def test_draining_a_publish_cycle_stops_naming_the_cycle():
    with pytest.raises(BudgetError) as err:
        cdp.simulate(publish_cycle(), cdp.Poisson(rate=1), duration=10, seed=1)
    text = str(err.value)
    assert text.startswith("simulate: draining after duration=10, ")
    assert "messages go round the cycle " in text and "a -> a.consumer -> b -> b.consumer" in text
    assert text.endswith("use drain=False (the run stops at duration), or break the cycle")


def test_a_publish_cycle_without_drain_returns():
    res = cdp.simulate(publish_cycle(), cdp.Poisson(rate=1), duration=10, seed=1, drain=False)
    assert res.summary()["messages"] > 0


def test_draining_a_dead_letter_cycle_stops():
    p = cdp.Pipeline("dlq-cycle")
    p.add_source("http", queue="a")
    p.add_queue("a", dead_letter_queue="b", max_retries=0)
    p.add_queue("b", dead_letter_queue="a", max_retries=0)
    p.add_consumer("a", failure=1.0)
    p.add_consumer("b", failure=1.0)
    # rejected when validated (another change), or stopped while draining: never a hang
    with pytest.raises(cdp.CdpkitError, match="cycle"):
        cdp.simulate(p, cdp.Poisson(rate=1), duration=10)


# -- duration=0 (item 3) and argument checks (item 8) -----------------------------------
def one_queue() -> cdp.Pipeline:
    p = cdp.Pipeline("one")
    p.add_source("http", queue="q")
    p.add_queue("q")
    p.add_consumer("q")
    return p


@pytest.mark.parametrize(("kwargs", "message"), [
    (dict(duration=0), "simulate: duration=0 is not allowed; allowed: a finite number of virtual seconds > 0"),
    (dict(duration=-5), "simulate: duration=-5 is not allowed"),
    (dict(duration=math.nan), "simulate: duration=nan is not allowed"),
    (dict(duration=math.inf), "simulate: duration=inf is not allowed"),
    (dict(duration="60"), "simulate: duration='60' is not allowed"),
    (dict(duration=5, seed=-1), "simulate: seed=-1 is not allowed; allowed: an int >= 0"),
    (dict(duration=5, seed=1.5), "simulate: seed=1.5 is not allowed"),
    (dict(duration=5, semantics="prod"), "simulate: semantics='prod' is not a profile; allowed: 'local', "
                                         "'production'"),
    (dict(duration=5, drain="no"), "simulate: drain='no' is not allowed; allowed: True or False"),
    (dict(duration=5, budget={"messages": 5}), "simulate: budget={'messages': 5} is not allowed"),
])
def test_simulate_checks_its_arguments(kwargs, message):
    with pytest.raises(ConfigError) as err:
        cdp.simulate(one_queue(), cdp.Poisson(rate=1), **kwargs)
    assert str(err.value).startswith(message)


def test_simulate_checks_the_workload_type():
    with pytest.raises(ConfigError, match=r"simulate: workload=5 is not allowed; allowed: a cdpkit Workload"):
        cdp.simulate(one_queue(), 5, duration=5)


def test_runtime_checks_its_seed():
    with pytest.raises(ConfigError, match=r"seed=-1 is not allowed; allowed: an int >= 0"):
        cdp.Runtime(seed=-1)


# -- what a run needs, checked before it starts (item 4) --------------------------------
def test_too_many_expected_messages_fail_before_the_run():
    with pytest.raises(BudgetError) as err:
        cdp.simulate(one_queue(), cdp.Poisson(rate=1e9), duration=1)
    assert str(err.value) == (
        "simulate: the workload would send ~1.0e9 messages, over the run budget of 20,000,000 "
        "messages; lower the rate or duration, or raise it with budget=cdp.Budget(messages=...)")
    with pytest.raises(BudgetError, match=r"would send ~1.0e12 messages"):
        cdp.simulate(one_queue(), cdp.Poisson(rate=1), duration=1e12)
    with pytest.raises(BudgetError, match=r"would send ~1.5e4 messages"):   # Diurnal draws at its peak
        cdp.simulate(one_queue(), cdp.Diurnal(mean=100, amplitude=0.5), duration=100,
                     budget=cdp.Budget(messages=10_000))
    with pytest.raises(BudgetError, match=r"would send ~2.0e4 messages"):
        cdp.simulate(one_queue(), cdp.Piecewise([(0, 100), (50, 300)]), duration=100,
                     budget=cdp.Budget(messages=10_000))


def test_too_many_actor_instances_fail_before_the_run():
    p = cdp.Pipeline("huge")
    p.add_source("http", queue="q")
    p.add_queue("q")
    p.add_consumer("q", calls="Counter")
    p.add_actor("Counter", service=0.001, instances=10**9)
    with pytest.raises(BudgetError) as err:
        cdp.simulate(p, cdp.Poisson(rate=1), duration=10)
    assert str(err.value) == (
        "simulate: the run would need ~93.1 GiB of memory, mostly for actor 'Counter' with "
        "instances=1,000,000,000 (~93.1 GiB), over the run budget of 8.0 GiB; lower instances, "
        "or raise it with budget=cdp.Budget(memory_bytes=...)")


def test_the_default_budget_lets_ten_million_messages_plan_through():
    from cdpkit.runtime.budget import check_plan
    check_plan(cdp.Budget(), 10_000_000, {"Projector": 100})
    with pytest.raises(BudgetError):
        check_plan(cdp.Budget(), 25_000_000, {})
    check_plan(cdp.Budget(messages=50_000_000, memory_bytes=16 * 2**30), 25_000_000, {})


def test_a_raised_budget_lets_the_run_through():
    res = cdp.simulate(one_queue(), cdp.Poisson(rate=100), duration=10, seed=1,
                       budget=cdp.Budget(messages=5_000))
    assert res.summary()["messages"] > 900


# -- what a run does, checked while it runs (item 4) ------------------------------------
def test_messages_entered_are_counted_while_running():
    rt = cdp.Runtime(budget=cdp.Budget(messages=50))
    rt.queue("jobs")

    async def producer():
        for i in range(100):
            await rt.env.JOBS.send(i)
            await rt.sleep(1)

    rt.spawn(producer())
    with pytest.raises(BudgetError) as err:
        rt.run()
    assert str(err.value) == (
        "rt.run: 51 messages entered queues by t=50s, over the run budget of 50 messages; lower the "
        "traffic or the run's length (or look for a cycle that sends messages on without end), "
        "or raise it with cdp.Runtime(budget=cdp.Budget(messages=...))")


def test_events_are_counted_while_running():
    rt = cdp.Runtime(budget=cdp.Budget(events=10_000))

    async def forever():
        while True:
            await rt.sleep(1)

    rt.spawn(forever())
    with pytest.raises(BudgetError, match=r"^rt.run: 1[\d,]+ events processed by t=\d+s, over the run "
                                          r"budget of 10,000 events; .* run to a time with run\(until=...\), "
                                          r"or raise it with cdp.Runtime\(budget=cdp.Budget\(events=...\)\)$"):
        rt.run()


def test_memory_estimate_is_checked_while_running():
    rt = cdp.Runtime(budget=cdp.Budget(memory_bytes=1_000_000))

    def spread():   # each call schedules two more, far ahead: pending events pile up
        rt.clock.call_later(1.0, spread)
        rt.clock.call_later(10**6, spread)

    rt.call_at(0, spread)
    with pytest.raises(BudgetError, match=r"^rt.run: the run holds ~1.2 MiB by t=\d+s \(0 messages, "
                                          r"8,19\d pending events\), over the run budget of 1.0 MiB; "
                                          r".*budget=cdp.Budget\(memory_bytes=...\)\)$"):
        rt.run(until=10**5)


# -- Ctrl-C and sys.exit (item 5) -------------------------------------------------------
@pytest.mark.parametrize("stop", [KeyboardInterrupt, SystemExit])
def test_interrupt_in_handler_code_stops_the_run(stop):
    rt = cdp.Runtime()
    rt.queue("jobs")

    @rt.consumer("jobs")
    async def handle(batch, env, ctx):
        raise stop()

    rt.env.JOBS.send(1)
    with pytest.raises(stop):
        rt.run()


def test_awaiters_of_an_interrupted_task_see_interrupted():
    clock = Clock()
    seen = []

    async def victim():
        await clock_sleep(clock, 1)
        raise KeyboardInterrupt

    async def waiter(task):
        try:
            await task
        except Interrupted as exc:
            seen.append(str(exc))

    task = clock.spawn(victim(), name="victim")
    clock.spawn(waiter(task))
    with pytest.raises(KeyboardInterrupt):
        clock.run()
    clock.run()     # the run can go on; the waiter gets an ordinary error
    assert seen == ["task 'victim' was stopped by KeyboardInterrupt"]


async def clock_sleep(clock, seconds):
    from cdpkit.runtime.clock import sleep
    await sleep(seconds)


# -- errors in spawned tasks (item 6) ---------------------------------------------------
def test_an_error_in_a_spawned_task_nobody_awaits_is_raised_by_run():
    rt = cdp.Runtime(semantics="production")
    rt.queue("jobs")

    async def producer():
        await rt.sleep(2)
        await rt.env.JOBS.send("x" * 200_000)     # over the 128 KB message limit

    rt.spawn(producer(), name="producer")
    with pytest.raises(LimitError, match=r"128 KB") as err:
        rt.run()
    assert err.value.__notes__ == ["(in task 'producer' started with spawn, which nothing awaited; "
                                   "it failed at t=2s)"]


def test_an_error_in_a_spawned_task_that_is_awaited_goes_to_its_awaiter():
    rt = cdp.Runtime()
    rt.kv("CACHE")
    caught = []

    async def put():
        await rt.env.CACHE.put("k", "v", expiration_ttl=5)    # KV needs a TTL of at least 60 s

    async def main():
        try:
            await rt.spawn(put())
        except cdp.CdpkitError as exc:
            caught.append(type(exc).__name__)

    rt.spawn(main())
    rt.run()
    assert caught == ["LimitError"]


def test_bad_sql_in_a_spawned_task_is_raised_by_run():
    rt = cdp.Runtime()
    rt.d1("DB")

    async def query():
        await rt.env.DB.exec("SELEKT 1")

    rt.spawn(query())
    with pytest.raises(Exception, match="SELEKT"):
        rt.run()


def test_handler_errors_in_consumers_are_still_retried_not_raised():
    rt = cdp.Runtime()
    rt.queue("jobs", max_retries=1)

    @rt.consumer("jobs")
    async def handle(batch, env, ctx):
        raise RuntimeError("boom")

    rt.env.JOBS.send(1)
    rt.run()
    assert len(rt.errors) == 2 and rt.messages["outcome"].tolist() == ["dropped"]


# -- times (item 7) -----------------------------------------------------------------------
@pytest.mark.parametrize("when", [math.nan, math.inf, -1.0])
def test_call_at_rejects_non_finite_and_past_times(when):
    rt = cdp.Runtime()
    why = "is before now=0" if when < 0 else "is not a finite number"
    with pytest.raises(TimeError, match=rf"call_at: when={when!r} {why}; allowed: a finite time >= now$"):
        rt.call_at(when, print)


@pytest.mark.parametrize("until", [math.nan, math.inf, -1.0])
def test_run_rejects_non_finite_and_past_until(until):
    rt = cdp.Runtime()
    why = "is before now=0" if until < 0 else "is not a finite number"
    with pytest.raises(TimeError, match=rf"run: until={until!r} {why}; allowed: a finite time >= now, or None"):
        rt.run(until=until)
    assert rt.now == 0.0


def test_sleep_rejects_infinity():
    from cdpkit.runtime.clock import sleep
    with pytest.raises(TimeError, match=r"sleep: seconds=inf is not allowed; use a finite number >= 0"):
        sleep(math.inf)


# -- the command line (items 3, 8, 9) -------------------------------------------------------
def test_cli_checks_the_output_folder_before_the_run(monkeypatch, capsys):
    import cdpkit.sim
    monkeypatch.setattr(cdpkit.sim, "simulate", lambda *a, **k: pytest.fail("the run started"))
    assert main(["simulate", EXAMPLE, "--out", "/dev/null/x"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: cdpkit simulate: --out '/dev/null/x' cannot be created (Not a directory)")
    assert err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.parametrize(("argv", "message"), [
    (["--duration", "0"], "error: cdpkit simulate: simulate: duration=0.0 is not allowed"),
    (["--seed", "-1"], "error: cdpkit simulate: simulate: seed=-1 is not allowed"),
    (["--rate", "1e9", "--duration", "1"], "error: cdpkit simulate: simulate: the workload would send ~1.0e9"),
])
def test_cli_prints_one_error_line_and_exits_2(argv, message, capsys):
    assert main(["simulate", EXAMPLE, *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith(message) and err.count("\n") == 1
