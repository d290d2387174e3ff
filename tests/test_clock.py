"""The event loop and trampoline: ordering, time, tasks, futures."""

import pytest

from cdpkit.runtime.clock import Clock, Future, TimeError, sleep


def test_events_run_in_time_then_schedule_order():
    clock, log = Clock(), []
    clock.call_later(2.0, log.append, "late")
    clock.call_later(1.0, log.append, "first")
    clock.call_later(1.0, log.append, "second")  # same time: scheduling order
    clock.run()
    assert log == ["first", "second", "late"]
    assert clock.now == 2.0


def test_run_until_stops_and_sets_now():
    clock, log = Clock(), []
    clock.call_later(5.0, log.append, "x")
    clock.run(until=3.0)
    assert log == [] and clock.now == 3.0
    clock.run(until=5.0)  # inclusive
    assert log == ["x"]


def test_cannot_go_backwards():
    clock = Clock()
    clock.run(until=10)
    with pytest.raises(TimeError, match="before now"):
        clock.call_at(5, print)
    with pytest.raises(TimeError, match="before now"):
        clock.run(until=1)
    with pytest.raises(TimeError, match="seconds=-1"):
        sleep(-1)


def test_a_sequence_number_taken_early_keeps_the_event_s_place():
    """next_seq + call_at_seq: an event scheduled later with an earlier number runs where
    call_at at that moment would have put it; head() bounds what runs next in a run."""
    clock, log = Clock(), []
    early = clock.next_seq()
    clock.call_at(1.0, log.append, "scheduled second")
    clock.call_at_seq(1.0, early, log.append, "numbered first")
    assert clock.head() == (1.0, early)
    seen = []
    clock.call_at(0.5, lambda: seen.append(clock.head()))   # within run(until=0.8): capped at 0.8
    clock.run(until=0.8)
    assert seen == [(0.8, float("inf"))]
    clock.run()
    assert log == ["numbered first", "scheduled second"]
    assert clock.head() == (float("inf"), float("inf"))


def test_cancelled_event_does_not_run():
    clock, log = Clock(), []
    handle = clock.call_later(1.0, log.append, "x")
    Clock.cancel(handle)
    clock.run()
    assert log == [] and clock.peek() is None


def test_tasks_await_sleep_futures_and_each_other():
    clock, log = Clock(), []
    gate = Future()

    async def child():
        await sleep(1)
        return "child-done"

    async def parent():
        value = await clock.spawn(child())
        log.append((clock.now, value))
        opened = await gate
        log.append((clock.now, opened))

    task = clock.spawn(parent())
    clock.call_later(3, gate.set_result, "opened")
    clock.run()
    assert log == [(1.0, "child-done"), (3.0, "opened")]
    assert task.done and task.result() is None


def test_task_exception_is_kept_and_propagates_to_awaiter():
    clock = Clock()

    async def boom():
        await sleep(1)
        raise KeyError("x")

    async def waiter():
        try:
            await clock.spawn(boom())
        except KeyError:
            return "caught"

    failing, caught = clock.spawn(boom()), clock.spawn(waiter())
    clock.run()
    assert isinstance(failing.error, KeyError)
    assert caught.result() == "caught"


def test_awaiting_foreign_awaitable_is_a_clear_error():
    import asyncio

    clock = Clock()

    async def bad():
        await asyncio.sleep(0)

    task = clock.spawn(bad())
    clock.run()
    assert isinstance(task.error, TypeError)
    assert "only await cdpkit futures or sleeps" in str(task.error)


def test_gather_takes_sleeps_and_time_stays_a_float():
    """rt.gather(rt.sleep(1), rt.sleep(2)) once failed inside the task ('_Sleep' has no
    add_done_callback); after run(until=30) now was the int 30."""
    import cdpkit as cdp
    rt = cdp.Runtime()
    done = []

    async def both():
        await rt.gather(rt.sleep(1), rt.sleep(2))
        done.append(rt.now)

    rt.spawn(both())
    rt.run(until=30)
    assert done == [2.0] and isinstance(rt.now, float) and rt.now == 30.0
