"""Queue semantics, profile by profile. Expected values follow miniflare's broker (local)
and Cloudflare's documentation (production); see shared/reference/cloudflare-semantics.md."""

import pytest

import cdpkit as cdp


def make(semantics="local", handler=None, **settings):
    rt = cdp.Runtime(semantics=semantics)
    rt.queue("jobs", **settings)
    log = []

    @rt.consumer("jobs")
    async def consume(batch, env, ctx):
        log.append((rt.now, [(m.body, m.attempts) for m in batch.messages]))
        if handler is not None:
            await handler(batch, env, ctx)

    return rt, log


def test_full_batch_goes_at_once_partial_after_timeout():
    rt, log = make(max_batch_size=3, max_batch_timeout=2)
    for i in range(4):
        rt.env.JOBS.send(i)
    rt.run()
    assert log == [(0.0, [(0, 1), (1, 1), (2, 1)]), (2.0, [(3, 1)])]


def test_local_defaults_are_miniflares():
    rt, log = make()  # batch 5, timeout 1 s, 2 retries
    for i in range(7):
        rt.env.JOBS.send(i)
    rt.run()
    assert [len(b) for _, b in log] == [5, 2]
    assert log[1][0] == 1.0
    q = rt.queues["jobs"].settings
    assert (q.max_batch_size, q.max_batch_timeout, q.max_retries) == (5, 1.0, 2)


def test_production_defaults():
    rt, _ = make("production")
    q = rt.queues["jobs"].settings
    assert (q.max_batch_size, q.max_batch_timeout, q.max_retries, q.max_concurrency) == (10, 5.0, 3, 250)


def test_local_runs_one_batch_at_a_time_when_flush_was_immediate():
    async def slow(batch, env, ctx):
        await ctx.sleep(5)

    rt, log = make(handler=slow, max_batch_size=2, max_batch_timeout=1)
    for i in range(6):
        rt.env.JOBS.send(i)
    rt.run()
    assert [t for t, _ in log] == [0.0, 5.0, 10.0]


def test_local_second_batch_when_timeout_flush_in_flight_and_buffer_fills():
    # miniflare: a timeout flush is still "pending" while its handler runs; if the buffer
    # fills meanwhile an immediate flush is scheduled and runs concurrently.
    async def slow(batch, env, ctx):
        await ctx.sleep(5)

    rt, log = make(handler=slow, max_batch_size=2, max_batch_timeout=1)
    rt.env.JOBS.send("a")
    rt.call_at(2.0, lambda: [rt.env.JOBS.send(x) for x in ("b", "c")])
    rt.run()
    assert log == [(1.0, [("a", 1)]), (2.0, [("b", 1), ("c", 1)])]


def test_production_runs_up_to_max_concurrency_batches():
    async def slow(batch, env, ctx):
        await ctx.sleep(5)

    # every slot from the first second (no autoscaling): max_concurrency batches at once
    rt, log = make(cdp.PRODUCTION_ALL_SLOTS, handler=slow, max_batch_size=2, max_batch_timeout=1,
                   max_concurrency=2)
    for i in range(8):
        rt.env.JOBS.send(i)
    rt.run()
    assert [t for t, _ in log] == [0.0, 0.0, 5.0, 5.0]


def test_production_partial_batch_waits_for_a_free_slot_after_timeout():
    async def slow(batch, env, ctx):
        await ctx.sleep(5)

    rt, log = make("production", handler=slow, max_batch_size=2, max_batch_timeout=1,
                   max_concurrency=1)
    for i in range(3):
        rt.env.JOBS.send(i)
    rt.run()
    assert log == [(0.0, [(0, 1), (1, 1)]), (5.0, [(2, 1)])]


@pytest.mark.parametrize("semantics", ["local", "production"])
def test_conflicting_calls_first_wins(semantics):
    async def conflicted(batch, env, ctx):
        a, b, c = batch.messages
        a.ack()
        a.retry()                   # ignored: a stays acked
        b.retry()
        b.ack()                     # ignored: b is retried
        c.retry()
        batch.ack_all()             # a per-message retry beats a later ack_all

    rt, log = make(semantics, handler=conflicted, max_batch_size=3, max_retries=0)
    for x in "abc":
        rt.env.JOBS.send(x)
    rt.run()
    outcomes = rt.messages["outcome"].tolist()
    assert outcomes == ["acked", "dropped", "dropped"]
    assert len(rt.recorder.warnings) == 2  # the two ignored calls are reported


@pytest.mark.parametrize("semantics", ["local", "production"])
def test_retry_after_ack_all_has_no_effect(semantics):
    async def handler(batch, env, ctx):
        batch.ack_all()
        batch.messages[0].retry()
        batch.retry_all()

    rt, log = make(semantics, handler=handler, max_batch_size=2, max_retries=0)
    rt.env.JOBS.send("x")
    rt.run()
    assert rt.messages["outcome"].tolist() == ["acked"]


@pytest.mark.parametrize("semantics, expected", [
    ("local", ["dropped", "dropped", "dropped"]),        # the whole batch, acks included
    ("production", ["acked", "dropped", "dropped"]),     # explicit acks survive
])
def test_throw_after_partial_acks(semantics, expected):
    async def handler(batch, env, ctx):
        batch.messages[0].ack()
        raise RuntimeError("boom")

    rt, _ = make(semantics, handler=handler, max_batch_size=3, max_retries=0)
    for x in "abc":
        rt.env.JOBS.send(x)
    rt.run()
    assert rt.messages["outcome"].tolist() == expected
    assert "boom" in str(rt.errors["error"][0])


@pytest.mark.parametrize("semantics, expected", [
    ("local", ["dropped", "dropped"]),
    ("production", ["acked", "dropped"]),
])
def test_retry_all_after_ack(semantics, expected):
    async def handler(batch, env, ctx):
        batch.messages[0].ack()
        batch.retry_all()

    rt, _ = make(semantics, handler=handler, max_batch_size=2, max_retries=0)
    rt.env.JOBS.send("a")
    rt.env.JOBS.send("b")
    rt.run()
    assert rt.messages["outcome"].tolist() == expected


def run_calls(calls: str, m, batch) -> None:
    """'retry:5,ackAll' -> m.retry(delay_seconds=5); batch.ack_all()."""
    for call in calls.split(","):
        name, _, arg = call.partition(":")
        delay = None if not arg else int(arg) if arg.lstrip("-").isdigit() else float(arg)
        if name == "ack":
            m.ack()
        elif name == "retry":
            m.retry(delay_seconds=delay)
        elif name == "ackAll":
            batch.ack_all()
        else:
            batch.retry_all(delay_seconds=delay)


@pytest.mark.parametrize("calls, redelivered_at", [
    # workerd's QueueMessage/QueueEvent bookkeeping, miniflare's use of it (retry_delay=11)
    ("retry:5,retry", 11),          # a second retry() replaces the first, delay and all
    ("retry,retry:5", 5),
    ("retry:5,retry:2", 2),
    ("ack,retry:5", None),          # retry() after ack(): no effect
    ("retry:5,ack", 5),             # ack() after retry(): no effect
    ("ackAll,retry:5", None),
    ("ackAll,ack", None),
    ("retry:5,ackAll", 5),          # the broker ignores ackAll; the retry stands
    ("retry:5,ackAll,retry", 5),    # retry() after ackAll(): no effect
    ("ack,ackAll", None),
    ("retryAll:3,ack", 3),          # ack() after retryAll(): no effect
    ("ack,retryAll:3", 3),          # local: retryAll retries explicit acks too
    ("retryAll:3,retry:5", 5),      # a message's own delay beats the batch's
    ("retryAll:3,retry", 3),
    ("retry:5,retryAll:3", 5),
    ("retry,retryAll:3", 3),
    ("retryAll:3,retryAll", 3),     # a later retryAll() without a delay keeps the earlier one's
    ("retryAll:3,retryAll:2", 2),
    ("retryAll,retryAll:2", 2),
    ("retryAll:3,ackAll", 3),       # ackAll() after retryAll(): no effect
    ("ackAll,retryAll:3", None),    # retryAll() after ackAll(): no effect
    ("retry:2.9", 2),               # delays are JS Numbers, truncated
    ("retryAll:1.9", 1),
])
def test_every_ordering_of_calls_on_one_message(calls, redelivered_at):
    async def handler(batch, env, ctx):
        if batch.messages[0].attempts == 1:
            run_calls(calls, batch.messages[0], batch)

    rt, log = make(handler=handler, max_batch_size=1, max_batch_timeout=0, retry_delay=11)
    rt.env.JOBS.send("x")
    rt.run()
    assert log == [(0.0, [("x", 1)])] + ([] if redelivered_at is None else [(redelivered_at, [("x", 2)])])


def test_retry_delay_precedence_message_then_batch_then_consumer():
    async def handler(batch, env, ctx):
        if batch.messages[0].attempts == 1:
            a, b, c = batch.messages
            a.retry(delay_seconds=7)
            b.retry()
            batch.retry_all(delay_seconds=3)   # b and c take this one
        else:
            batch.ack_all()

    rt, log = make(handler=handler, max_batch_size=3, max_batch_timeout=0, retry_delay=11)
    for x in "abc":
        rt.env.JOBS.send(x)
    rt.run()
    assert log[1:] == [(3.0, [("b", 2), ("c", 2)]), (7.0, [("a", 2)])]


def test_consumer_retry_delay_applies_when_call_gives_none():
    async def handler(batch, env, ctx):
        for m in batch.messages:
            (m.retry() if m.attempts == 1 else m.ack())

    rt, log = make(handler=handler, max_batch_size=1, retry_delay=4)
    rt.env.JOBS.send("x")
    rt.run()
    assert log == [(0.0, [("x", 1)]), (4.0, [("x", 2)])]


def test_dead_letter_after_max_retries_plus_one_attempts_attempts_restart():
    rt = cdp.Runtime()
    rt.queue("jobs", max_batch_size=1, max_retries=2, dead_letter_queue="jobs-dlq")
    rt.queue("jobs-dlq", max_batch_size=1)
    seen = []

    @rt.consumer("jobs")
    async def failing(batch, env, ctx):
        seen.append(("jobs", batch.messages[0].attempts))
        batch.retry_all()

    @rt.consumer("jobs-dlq")
    async def dlq(batch, env, ctx):
        seen.append(("dlq", batch.messages[0].attempts, batch.messages[0].body))

    rt.env.JOBS.send({"order": 7})
    rt.run()
    assert seen == [("jobs", 1), ("jobs", 2), ("jobs", 3), ("dlq", 1, {"order": 7})]
    msgs = rt.messages
    assert msgs["outcome"].tolist() == ["dead_lettered", "acked"]
    assert msgs["message_id"].nunique() == 1  # the DLQ keeps the id (and timestamp)
    rt.check_conservation()


def test_exhausted_without_dlq_is_dropped_with_reason():
    async def fail(batch, env, ctx):
        raise ValueError("always")

    rt, log = make(handler=fail, max_batch_size=1, max_retries=1)
    rt.env.JOBS.send("x")
    rt.run()
    assert len(log) == 2
    row = rt.messages.iloc[0]
    assert row["outcome"] == "dropped" and "failed 2 attempts" in row["drop_reason"]


def test_undeclared_dead_letter_queue_exists_without_consumer():
    rt, _ = make(max_retries=0, dead_letter_queue="lost")
    rt.run()
    assert "lost" in rt.queues and rt.queues["lost"].consumer is None


def test_no_consumer_local_discards_production_keeps():
    for semantics, outcome in [("local", "dropped"), ("production", "in_flight")]:
        rt = cdp.Runtime(semantics=semantics)
        rt.queue("events")
        rt.env.EVENTS.send({"e": 1})
        rt.run(until=60)
        assert rt.messages["outcome"].tolist() == [outcome], semantics
        rt.check_conservation()


def test_production_retention_drops_expired_messages():
    rt = cdp.Runtime(semantics="production")
    rt.queue("slow", max_batch_size=1, max_concurrency=1, retention=60)
    log = []

    @rt.consumer("slow")
    async def handle(batch, env, ctx):
        log.append(batch.messages[0].body)
        await ctx.sleep(100)

    rt.env.SLOW.send("a")
    rt.env.SLOW.send("b")
    rt.run()
    assert log == ["a"]
    row = rt.messages.iloc[1]
    assert row["outcome"] == "dropped" and row["drop_reason"] == "retention period expired"


@pytest.mark.parametrize("keep_count", [True, False])
def test_batch_metadata_backlog_after_expired_messages_are_dropped(keep_count):
    """The backlog in batch metadata counts what is left after a flush drops expired
    messages, whether the queue keeps a running byte count or adds it up when asked."""
    rt = cdp.Runtime(semantics="production")
    rt.queue("slow", max_batch_size=1, max_concurrency=1, retention=60)
    if not keep_count:
        rt.queues["slow"].backlog_bytes = None
    metrics = []

    @rt.consumer("slow")
    async def handle(batch, env, ctx):
        metrics.append((batch.messages[0].body, batch.metadata["metrics"]["backlog_count"],
                        batch.metadata["metrics"]["backlog_bytes"]))
        await ctx.sleep(100 if batch.messages[0].body == "a" else 1)

    rt.env.SLOW.send("a")
    rt.env.SLOW.send("b")                     # expires while "a" runs (at t=40)
    rt.call_at(50, lambda: rt.env.SLOW.send("cc"))
    rt.call_at(51, lambda: rt.env.SLOW.send("ddd"))
    rt.run()
    assert metrics == [("a", 0, 0), ("cc", 1, 5), ("ddd", 0, 0)]   # json: "cc" 4 bytes, "ddd" 5


def test_delays_on_send_send_batch_and_producer_default():
    rt = cdp.Runtime()
    rt.queue("jobs", max_batch_size=1, delivery_delay=2)
    times = []

    @rt.consumer("jobs")
    async def handle(batch, env, ctx):
        times.append((batch.messages[0].body, rt.now))

    rt.env.JOBS.send("default")                       # producer delivery_delay
    rt.env.JOBS.send("own", delay_seconds=5)
    rt.env.JOBS.send_batch([{"body": "b1"}, {"body": "b2", "delay_seconds": 9}], delay_seconds=7)
    rt.run()
    assert sorted(times, key=lambda x: x[1]) == [("default", 2.0), ("own", 5.0), ("b1", 7.0), ("b2", 9.0)]


def test_wait_until_holds_the_batch_and_its_failure_retries():
    async def handler(batch, env, ctx):
        async def background():
            await ctx.sleep(3)
            if batch.messages[0].attempts == 1:
                raise RuntimeError("background failed")
        ctx.wait_until(background())

    rt, log = make(handler=handler, max_batch_size=1, max_retries=1)
    rt.env.JOBS.send("x")
    rt.run()
    assert log == [(0.0, [("x", 1)]), (3.0, [("x", 2)])]
    assert rt.batches["finished_at"].tolist() == [3.0, 6.0]
    assert rt.messages["outcome"].tolist() == ["acked"]


def test_sync_handler_and_message_fields():
    rt = cdp.Runtime()
    rt.queue("jobs")
    got = []

    @rt.consumer("jobs")
    def handle(batch, env, ctx):
        m = batch.messages[0]
        got.append((batch.queue, len(m.id), m.timestamp, m.body, m.attempts))

    rt.call_at(1.5, rt.env.JOBS.send, {"a": [1, 2]})
    rt.run()
    assert got == [("jobs", 32, 1.5, {"a": [1, 2]}, 1)]


def test_bodies_are_copied_at_send():
    rt, log = make()
    body = {"items": [1]}
    rt.env.JOBS.send(body)
    body["items"].append(2)
    rt.run()
    assert log[0][1][0][0] == {"items": [1]}


def test_content_types_round_trip():
    rt, log = make(max_batch_size=4)
    rt.env.JOBS.send("plain", content_type="text")
    rt.env.JOBS.send(b"\x00\x01", content_type="bytes")
    rt.env.JOBS.send({1, 2}, content_type="v8")
    rt.env.JOBS.send([1, "x"])
    rt.run()
    assert [b for b, _ in log[0][1]] == ["plain", b"\x00\x01", {1, 2}, [1, "x"]]


def test_runtime_created_queues_use_templates_and_the_rest_api_mirror():
    rt = cdp.Runtime()
    rt.queue("tenant-*", max_batch_size=2)
    rt.queue("signup", max_batch_size=1)
    got = []

    @rt.consumer("tenant-*")
    async def tenant(batch, env, ctx):
        got.append((batch.queue, [m.body for m in batch.messages]))

    @rt.consumer("signup")
    async def signup(batch, env, ctx):
        tenant_id = batch.messages[0].body["tenant"]
        created = await env.QUEUES_API.create_queue(f"tenant-{tenant_id}-queue")
        await env.QUEUES_API.send(created["queue_id"], [{"body": {"task": "welcome"}},
                                                        {"body": {"task": "enrich"}}])

    rt.env.SIGNUP.send({"tenant": "abc"})
    rt.run()
    assert got == [("tenant-abc-queue", [{"task": "welcome"}, {"task": "enrich"}])]
    assert rt.queues["tenant-abc-queue"].settings.max_batch_size == 2


def test_same_seed_same_run_different_seed_different_ids():
    def run(seed):
        rt = cdp.Runtime(seed=seed)
        rt.queue("jobs", max_batch_size=3)

        @rt.consumer("jobs")
        async def h(batch, env, ctx):
            for m in batch.messages:
                (m.retry() if m.attempts < 2 else m.ack())

        for i in range(10):
            rt.env.JOBS.send(i)
        rt.run()
        return rt.trace

    assert run(1).equals(run(1))
    assert not run(1)["message_id"].equals(run(2)["message_id"])


def test_trace_and_batches_frames():
    rt, _ = make(max_batch_size=2)
    for i in range(3):
        rt.env.JOBS.send(i)
    rt.run()
    assert list(rt.trace.columns) == ["queue", "batch", "delivered_at", "finished_at", "message_id",
                                      "attempts", "disposition"]
    assert rt.batches["size"].tolist() == [2, 1]
    assert "Runtime semantics='local'" in repr(rt)
