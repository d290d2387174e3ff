"""Fault timelines in handler code (issue 16): ``errors`` and ``rate_limit`` of actors and
stores make their calls raise the platform's error where the handler awaits them, and a
``slowdown`` stretches a handler consumer's invocations. Each test runs a Runtime with
``rt.apply_faults`` and checks what the handler saw and what the queue did with it."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import cdpkit as cdp
from cdpkit.runtime.faults import FaultError


def faults(*items: dict) -> cdp.Faults:
    return cdp.Faults(list(items))


def runtime(*, max_retries: int = 2, retry_delay: int = 0, dlq: bool = True, seed: int = 0) -> cdp.Runtime:
    rt = cdp.Runtime(semantics="local", seed=seed)
    rt.queue("jobs", max_batch_size=1, max_batch_timeout=0, max_retries=max_retries,
             retry_delay=retry_delay, **({"dead_letter_queue": "dlq"} if dlq else {}))
    if dlq:
        rt.queue("dlq")
    return rt


def send_each_second(rt: cdp.Runtime, count: int, start: float = 0.0) -> None:
    for t in range(count):
        rt.call_at(start + t, rt.env.JOBS.send, {"n": t})


def run(rt: cdp.Runtime) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")       # HandlerWarning: the injected errors are the point
        rt.run()


def errors_text(rt: cdp.Runtime) -> list[str]:
    return [str(e) for e in rt.errors["error"]]


# ---------------------------------------------------------------------- stores

def test_kv_errors_fail_the_handler_and_the_queue_retries_then_dead_letters():
    """KV fails every call in [10, 20): each message sent there throws at its put, is retried
    at once (retry_delay 0) max_retries=2 times inside the window, then dead-lettered."""
    rt = runtime()
    rt.kv("CACHE")

    @rt.consumer("jobs")
    async def handle(batch, env, ctx):
        for m in batch.messages:
            await env.CACHE.put(f"k{m.body['n']}", "v")
            m.ack()

    plan = rt.apply_faults(faults({"kind": "errors", "node": "CACHE", "p": 1, "start": 9.5, "end": 19.5}))
    send_each_second(rt, 30)
    run(rt)
    m = rt.messages
    jobs = m[m["queue"] == "jobs"]
    inside = jobs["sent"].between(10, 19)
    assert (jobs.loc[inside, "outcome"] == "dead_lettered").all() and inside.sum() == 10
    assert (jobs.loc[inside, "deliveries"] == 3).all()
    assert (jobs.loc[~inside, "outcome"] == "acked").all()
    assert set(errors_text(rt)) == {"KV PUT failed: 500 Internal Server Error (CACHE.put) "
                                    "[injected by fault 1 (errors of 'CACHE')]"}
    assert len(rt.errors) == 30 and plan.states[0].injected == 30
    assert rt.kv_namespaces["CACHE"].writes == 20          # a failed put writes (and bills) nothing
    assert (m["queue"] == "dlq").sum() == 10
    rt.check_conservation()


def test_kv_rate_limit_refuses_calls_past_n_per_second_with_a_429():
    """5 messages a second into a KV that accepts 2 puts a second in [0, 10): 3 of each
    second's puts get 429 and their messages are retried 1 s later (retried, not lost)."""
    rt = runtime(max_retries=20, retry_delay=1, dlq=False)
    kv = rt.kv("CACHE")
    seen: list[str] = []

    @rt.consumer("jobs")
    async def handle(batch, env, ctx):
        for m in batch.messages:
            try:
                await env.CACHE.put(f"k{m.body['n']}", "v")
            except FaultError as error:
                seen.append(str(error))
                m.retry(delay_seconds=1)
            else:
                m.ack()

    plan = rt.apply_faults(faults({"kind": "rate_limit", "node": "CACHE", "per_second": 2, "start": 0, "end": 10}))
    for i in range(50):
        rt.call_at(i / 5, rt.env.JOBS.send, {"n": i})
    rt.run()
    acked = rt.messages[rt.messages["outcome"] == "acked"]
    per_second = np.bincount(np.floor(acked["finished"]).astype(int))
    assert (per_second[:10] == 2).all()                  # the limit, each second of the window
    assert len(acked) == 50 and kv.writes == 50          # the rest got through after it
    assert len(seen) == plan.states[0].rejected == (rt.messages["deliveries"] - 1).sum() > 0
    assert seen[0] == "KV PUT failed: 429 Too Many Requests (CACHE.put) [injected by fault 1 (rate_limit of 'CACHE')]"


def test_d1_errors_and_rate_limit_raise_d1_errors_and_write_nothing():
    rt = runtime(max_retries=0, dlq=False)
    db = rt.d1("DB")
    db.exec("CREATE TABLE t (n INTEGER)")

    @rt.consumer("jobs")
    async def handle(batch, env, ctx):
        for m in batch.messages:
            n = m.body["n"]
            if n % 2:
                await env.DB.batch([env.DB.prepare("INSERT INTO t VALUES (?)").bind(n),
                                    env.DB.prepare("INSERT INTO t VALUES (?)").bind(-n)])
            else:
                await env.DB.prepare("INSERT INTO t VALUES (?)").bind(n).run()

    plan = rt.apply_faults(faults({"kind": "errors", "node": "DB", "p": 1, "start": 4.5, "end": 6.5},
                                  {"kind": "rate_limit", "node": "DB", "per_second": 0, "start": 8.5, "end": 9.5}))
    send_each_second(rt, 12)
    run(rt)
    assert errors_text(rt) == [
        "D1_ERROR: Network connection lost. (DB) [injected by fault 1 (errors of 'DB')]",
        "D1_ERROR: Network connection lost. (DB) [injected by fault 1 (errors of 'DB')]",
        "D1 DB is overloaded. Too many requests queued. (DB) [injected by fault 2 (rate_limit of 'DB')]"]
    written = set(db.table("t")["n"])
    assert written.isdisjoint({5, -5, 6, 9, -9})              # a failed batch writes none of its rows
    assert {4, 7, -7, 10, 11, -11} <= written
    assert plan.states[0].injected == 2                   # one draw per request, not per statement
    out = rt.messages.set_index(rt.messages["sent"].astype(int))["outcome"]
    assert out[[5, 6, 9]].eq("dropped").all() and out[[4, 7, 8, 10]].eq("acked").all()


def test_sink_errors_are_drawn_per_call_with_p_and_reproducible_per_seed():
    def one(seed: int) -> tuple[list, int]:
        rt = runtime(max_retries=0, dlq=False, seed=seed)
        rt.sink("crm", latency=0.01)

        @rt.consumer("jobs")
        async def handle(batch, env, ctx):
            await rt.sinks["crm"].call()

        rt.apply_faults(faults({"kind": "errors", "node": "crm", "p": 0.3, "start": 0, "end": 1000}))
        send_each_second(rt, 1000)
        run(rt)
        return rt.messages["outcome"].tolist(), rt.sinks["crm"].calls

    a, calls = one(1)
    assert a == one(1)[0] and a != one(2)[0]
    share = a.count("dropped") / len(a)
    assert abs(share - 0.3) < 4 * np.sqrt(0.3 * 0.7 / len(a)), share
    assert calls == 1000          # the refused calls were made too (and answered 500)


# ---------------------------------------------------------------------- actors

class Counter(cdp.Actor):
    hits = 0

    async def hit(self, n):
        Counter.hits += 1
        await self.ctx.work(0.01)
        return n


@pytest.mark.parametrize("node", ["Counter", "COUNTER"])
def test_actor_errors_by_class_or_binding_fail_the_stub_call_before_the_object_runs(node):
    Counter.hits = 0
    rt = runtime(max_retries=1, retry_delay=5)
    rt.actor("COUNTER", Counter)

    @rt.consumer("jobs")
    async def handle(batch, env, ctx):
        for m in batch.messages:
            await env.COUNTER.get_by_name("c").hit(m.body["n"])

    rt.apply_faults(faults({"kind": "errors", "node": node, "p": 1, "start": 9.5, "end": 14.5}))
    send_each_second(rt, 20)
    run(rt)
    jobs = rt.messages[rt.messages["queue"] == "jobs"]
    sent = jobs.set_index(jobs["sent"].astype(int))
    # first tries at 10..14 fail; retried 5 s later (15..19, outside): acked on the 2nd attempt
    assert sent.loc[10:14, "deliveries"].eq(2).all() and jobs["outcome"].eq("acked").all()
    assert Counter.hits == 20 and len(rt.actor_calls) == 20     # refused calls never reached it
    assert errors_text(rt)[0] == ("Internal error in Durable Object: a transient infrastructure error, "
                                  f"retryable (COUNTER (Counter) c.hit) [injected by fault 1 (errors of {node!r})]")


def test_actor_rate_limit_and_fetch():
    rt = runtime(max_retries=0, dlq=False)

    class Page(cdp.Actor):
        async def fetch(self, request):
            return "ok"

    rt.actor("PAGES", Page)

    @rt.consumer("jobs")
    async def handle(batch, env, ctx):
        await env.PAGES.get_by_name("p").fetch("req")

    rt.apply_faults(faults({"kind": "rate_limit", "node": "Page", "per_second": 3, "start": 0, "end": 2}))
    for i in range(10):
        rt.call_at(i / 10, rt.env.JOBS.send, i)         # 10 in the first second
    run(rt)
    assert rt.messages["outcome"].value_counts().to_dict() == {"dropped": 7, "acked": 3}
    assert errors_text(rt)[0] == ("Durable Object is overloaded. 429 Too Many Requests: over 3 requests per "
                                  "second (PAGES (Page) p.fetch) [injected by fault 1 (rate_limit of 'Page')]")
    assert all(isinstance(e, FaultError) and e.status == 429 and e.retryable for e in rt.errors["error"])


def test_a_missing_rpc_method_is_still_the_callers_bug_under_a_fault():
    rt = runtime()
    rt.actor("COUNTER", Counter)
    rt.apply_faults(faults({"kind": "errors", "node": "Counter", "p": 1, "start": 0, "end": 5}))
    with pytest.raises(cdp.HandlerError, match="has no RPC method 'nope'"):
        rt.env.COUNTER.get_by_name("c").nope()


def test_handler_code_fault_checks():
    rt = runtime()
    rt.actor("COUNTER", Counter)
    rt.kv("KV")
    for fault, message in [
        ({"kind": "errors", "node": "Counter", "p": 0.5, "permanent": 1, "start": 0, "end": 5},
         "fault 1 (errors of 'Counter'): permanent=1 is not allowed for errors of actor 'Counter' in handler "
         "code (its calls do not say which message they serve); allowed: 0 (each call fails with p)"),
        ({"kind": "slowdown", "node": "COUNTER", "factor": 2, "start": 0, "end": 5},
         "fault 1 (slowdown of 'COUNTER'): slowdown of actor 'COUNTER' is not modelled in handler code; allowed:"),
        ({"kind": "rate_limit", "node": "KVV", "per_second": 1, "start": 0, "end": 5},
         "node='KVV' is not allowed (no such node); allowed: a actor or store: COUNTER, Counter, KV"),
    ]:
        with pytest.raises(cdp.ConfigError) as err:
            rt.apply_faults(cdp.Faults([fault]))
        assert message in str(err.value)


def test_calls_outside_the_windows_draw_nothing_and_change_nothing():
    def one(fault: dict | None) -> list:
        rt = runtime(seed=3)
        rt.kv("KV")

        @rt.consumer("jobs")
        async def handle(batch, env, ctx):
            await env.KV.put("k", "v")

        if fault:
            rt.apply_faults(faults(fault))
        send_each_second(rt, 10)
        rt.run()
        return rt.messages.fillna(-1).values.tolist()

    assert one(None) == one({"kind": "errors", "node": "KV", "p": 1, "start": 50, "end": 60})


# ---------------------------------------------------------------------- slowdown

def test_slowdown_stretches_a_handler_invocation_started_inside_the_window():
    """Each invocation: 0.1 s of CPU and a 0.2 s KV call. Started in [10, 20) with factor 3 it
    ends 0.9 s after it starts (its CPU counted 0.3 s); outside, 0.3 s (0.1 s)."""
    rt = runtime(dlq=False)
    rt.kv("KV", latency=0.2)

    @rt.consumer("jobs")
    async def handle(batch, env, ctx):
        await ctx.work(0.1)
        await env.KV.put("k", "v")
        batch.ack_all()

    plan = rt.apply_faults(faults({"kind": "slowdown", "node": "jobs.consumer", "factor": 3, "start": 9.5, "end": 19.5}))
    send_each_second(rt, 30)
    rt.run()
    b = rt.batches
    took = (b["finished_at"] - b["delivered_at"]).round(9)
    inside = b["delivered_at"].between(10, 19)
    assert set(took[inside]) == {0.9} and set(took[~inside]) == {0.3}
    assert rt.queues["jobs"].consumer.cpu_seconds == pytest.approx(20 * 0.1 + 10 * 0.3)
    assert plan.states[0].slowed == 10
    assert (rt.messages["outcome"] == "acked").all()


def test_simulate_stretches_a_handler_consumers_invocations_in_a_slowdown_window():
    """cdp.simulate applied a spec consumer's slowdown but refused a handler's; the runtime's
    wrapper stretches a handler invocation started in the window by its factor (before: a
    ConfigError 'slowdown of user code')."""
    async def handle(batch, env, ctx):
        await ctx.work(0.1)

    def run(faults):
        p = cdp.Pipeline("slow")
        p.add_source("http", queue="jobs")
        p.add_queue("jobs", max_batch_size=1, max_batch_timeout=0, max_concurrency=1)
        p.add_consumer("jobs", handler=handle)
        return cdp.simulate(p, cdp.Constant(rate=2), duration=20, seed=1, faults=faults)

    base = run(None)
    slow = run([{"kind": "slowdown", "node": "jobs.consumer", "start": 5, "end": 10, "factor": 3}])
    took = lambda r: (r.messages["finished"] - r.messages["first_delivered"]).to_numpy()   # noqa: E731
    inside = ((slow.messages["first_delivered"] >= 5) & (slow.messages["first_delivered"] < 10)).to_numpy()
    assert inside.sum() == 10
    assert np.allclose(took(slow)[inside], 0.3) and np.allclose(took(slow)[~inside], 0.1)
    assert np.allclose(took(base), 0.1)
    assert slow.consumer_cpu_seconds == pytest.approx(base.consumer_cpu_seconds + 10 * 0.2)


def test_simulate_refuses_a_slowdown_of_an_actor_class_written_as_code():
    """An actor class's code has no service draw to scale: refused up front, naming the fault."""
    class Scorer(cdp.Actor):
        async def handle(self, body):
            await self.ctx.work(0.01)

    p = cdp.Pipeline("slow")
    p.add_source("http", queue="jobs")
    p.add_queue("jobs")
    p.add_consumer("jobs", calls="Scorer")
    p.add_actor("Scorer", cls=Scorer)
    with pytest.raises(cdp.ConfigError, match=r"^fault 1 \(slowdown of 'Scorer'\): slowdown of user code "
                       r"\('Scorer'\) is not modelled; allowed: a consumer, spec actor or store \(slow the "
                       r"store the code calls instead\)$"):
        cdp.simulate(p, cdp.Constant(rate=2), duration=5, seed=1,
                     faults=[{"kind": "slowdown", "node": "Scorer", "start": 1, "end": 2, "factor": 2}])
