"""Durable Objects: ids, RPC, single-threaded execution, storage, eviction, persist, alarms."""

import dataclasses
import gc
import inspect
import warnings

import pytest

import cdpkit as cdp
from cdpkit import ConfigError, HandlerError, LimitError
from cdpkit.demo import gateway, gateway_workload


class Recorder(cdp.Actor):
    """Logs each step of each request, to observe interleaving."""

    log: list = []

    async def compute(self, who, cpu):
        Recorder.log.append((self.name, who, "start", round(self.env_now(), 3)))
        await self.ctx.work(cpu)
        Recorder.log.append((self.name, who, "end", round(self.env_now(), 3)))
        return who

    async def call_out(self, who, pause):
        Recorder.log.append((self.name, who, "before-io", round(self.env_now(), 3)))
        await self.ctx.sleep(pause)          # outgoing I/O: the gate opens
        Recorder.log.append((self.name, who, "after-io", round(self.env_now(), 3)))

    async def use_storage(self, who):
        Recorder.log.append((self.name, who, "storage-start", round(self.env_now(), 3)))
        await self.ctx.storage.put(who, 1)   # storage: the gate stays closed
        await self.ctx.storage.get(who)
        Recorder.log.append((self.name, who, "storage-end", round(self.env_now(), 3)))

    def env_now(self):
        return RT[0].now


RT = []


@pytest.fixture
def rt():
    runtime = cdp.Runtime()
    RT[:] = [runtime]
    Recorder.log = []
    runtime.actor("REC", Recorder)
    return runtime


def call_at(rt, t, coro_fn):
    def start():
        made = coro_fn()                 # a stub call has started already; a coroutine needs a task
        if inspect.iscoroutine(made):
            rt.spawn(made)
    rt.call_at(t, start)


def test_id_from_name_is_deterministic_and_per_namespace(rt):
    rt.actor("OTHER", Recorder)
    a, b = rt.env.REC.id_from_name("w1"), rt.env.REC.id_from_name("w1")
    assert a == b and str(a) == str(b) and len(str(a)) == 64
    assert rt.env.REC.id_from_name("w2") != a
    assert str(rt.env.OTHER.id_from_name("w1")) != str(a)
    again = cdp.Runtime()
    again.actor("REC", Recorder)
    assert str(again.env.REC.id_from_name("w1")) == str(a)  # across runs too
    assert rt.env.REC.id_from_string(str(a)) == a
    u1, u2 = rt.env.REC.new_unique_id(), rt.env.REC.new_unique_id()
    assert u1 != u2 and len(str(u1)) == 64


def test_cpu_work_of_one_object_is_serial_others_run_in_parallel(rt):
    stub = rt.env.REC.get_by_name("hot")
    other = rt.env.REC.get_by_name("cold")
    for who in ("a", "b"):
        call_at(rt, 0, lambda who=who: stub.compute(who, 1.0))
    call_at(rt, 0, lambda: other.compute("c", 1.0))
    rt.run()
    assert [e for e in Recorder.log if e[0] == "hot"] == [
        ("hot", "a", "start", 0.0), ("hot", "a", "end", 1.0),
        ("hot", "b", "start", 1.0), ("hot", "b", "end", 2.0)]
    assert ("cold", "c", "end", 1.0) in Recorder.log
    calls = rt.actor_calls.set_index(["object", "method"]).sort_index()
    assert calls["wait"].tolist() == [0.0, 0.0, 1.0]


def test_requests_interleave_only_at_outgoing_io(rt):
    stub = rt.env.REC.get_by_name("x")
    call_at(rt, 0, lambda: stub.call_out("a", 5))
    call_at(rt, 1, lambda: stub.compute("b", 1))
    call_at(rt, 1, lambda: stub.use_storage("c"))
    rt.run()
    steps = [(who, what, t) for _, who, what, t in Recorder.log]
    assert steps == [("a", "before-io", 0.0), ("b", "start", 1.0), ("b", "end", 2.0),
                     ("c", "storage-start", 2.0), ("c", "storage-end", 2.0), ("a", "after-io", 5.0)]


def test_storage_awaits_keep_the_gate_closed(rt):
    stub = rt.env.REC.get_by_name("x")
    call_at(rt, 0, lambda: stub.use_storage("a"))
    call_at(rt, 0, lambda: stub.use_storage("b"))
    rt.run()
    assert [w for _, w, _, _ in Recorder.log] == ["a", "a", "b", "b"]


def test_hot_key_queue_grows_while_others_idle():
    rt = cdp.Runtime()
    RT[:] = [rt]
    rt.actor("REC", Recorder)
    hot = rt.env.REC.get_by_name("hot")
    for i in range(20):
        call_at(rt, i * 0.1, lambda i=i: hot.compute(i, 0.5))      # 10 req/s x 0.5 s: overloaded
        cold = rt.env.REC.get_by_name(f"cold-{i}")
        call_at(rt, i * 0.1, lambda cold=cold, i=i: cold.compute(i, 0.5))
    rt.run()
    calls = rt.actor_calls
    hot_waits = calls[calls["object"] == "hot"]["wait"].tolist()
    assert hot_waits == sorted(hot_waits) and hot_waits[-1] == pytest.approx(19 * 0.4)
    assert calls[calls["object"] != "hot"]["wait"].max() == 0


class Counter(cdp.Actor):
    total = cdp.persist(0)
    history = cdp.persist([])

    def __init__(self, ctx, env):
        super().__init__(ctx, env)
        self.in_memory = 0

    async def add(self, n):
        self.in_memory += n
        self.total += n
        self.history.append(n)            # in-place mutation is kept at the end of the request
        await self.ctx.storage.put("last", n)
        return {"memory": self.in_memory, "total": self.total, "history": list(self.history)}

    async def crash(self):
        self.ctx.abort("reset")


def run_calls(rt, stub, calls):
    out = []

    async def script():
        for name, arg in calls:
            if name == "evict":
                rt.evict("COUNTER")
                continue
            try:
                out.append(await getattr(stub, name)(*arg))
            except cdp.ActorAborted as exc:
                out.append(f"aborted: {exc}")

    rt.spawn(script())
    rt.run()
    return out


def test_storage_and_persist_survive_eviction_memory_does_not():
    rt = cdp.Runtime()
    rt.actor("COUNTER", Counter)
    stub = rt.env.COUNTER.get_by_name("c")
    out = run_calls(rt, stub, [("add", (1,)), ("add", (2,)), ("evict", ()), ("add", (3,)),
                               ("crash", ()), ("add", (4,))])
    assert out[0] == {"memory": 1, "total": 1, "history": [1]}
    assert out[1] == {"memory": 3, "total": 3, "history": [1, 2]}
    assert out[2] == {"memory": 3, "total": 6, "history": [1, 2, 3]}     # memory restarted at 0
    assert out[3] == "aborted: reset"
    assert out[4] == {"memory": 4, "total": 10, "history": [1, 2, 3, 4]}
    assert rt.actors.loc[0, "evictions"] == 1


def test_idle_eviction_in_production_profile():
    rt = cdp.Runtime(semantics="production")
    rt.actor("COUNTER", Counter, evict_after=30)
    stub = rt.env.COUNTER.get_by_name("c")
    rt.spawn(_call(stub, 1))
    rt.run(until=10)
    assert rt.actors.loc[0, "in_memory"]
    rt.run(until=31)
    assert not rt.actors.loc[0, "in_memory"]


async def _call(stub, n):
    return await stub.add(n)


def test_rpc_arguments_and_results_are_copies():
    class Keeper(cdp.Actor):
        async def keep(self, items):
            items.append("inside")
            self.kept = items
            return self.kept

    rt = cdp.Runtime()
    rt.actor("KEEPER", Keeper)
    mine = ["outside"]
    result = []

    async def script():
        result.append(await rt.env.KEEPER.get_by_name("k").keep(mine))

    rt.spawn(script())
    rt.run()
    assert mine == ["outside"] and result == [["outside", "inside"]]


def test_rpc_errors_reach_the_caller():
    class Failing(cdp.Actor):
        async def explode(self):
            raise ValueError("bad input")

    rt = cdp.Runtime()
    rt.actor("F", Failing)
    caught = []

    async def script():
        try:
            await rt.env.F.get_by_name("f").explode()
        except ValueError as exc:
            caught.append(str(exc))

    rt.spawn(script())
    rt.run()
    assert caught == ["bad input"]
    assert rt.actor_calls["outcome"].tolist() == ["error"]


class Alarmed(cdp.Actor):
    fired: list = []

    async def arm(self, at, failures):
        await self.ctx.storage.put("failures", failures)
        await self.ctx.storage.set_alarm(at)

    async def alarm(self, info):
        Alarmed.fired.append((RT[0].now, info["retry_count"]))
        left = await self.ctx.storage.get("failures")
        if left:
            await self.ctx.storage.put("failures", left - 1)
            raise RuntimeError("alarm failed")


def test_alarm_fires_and_retries_with_exponential_backoff():
    rt = cdp.Runtime(semantics=dataclasses.replace(cdp.LOCAL, alarm_retry_jitter=0))
    RT[:] = [rt]
    Alarmed.fired = []
    rt.actor("ALARMED", Alarmed)
    rt.spawn(_arm(rt.env.ALARMED.get_by_name("a"), 10.0, 3))
    rt.run()
    assert Alarmed.fired == [(10.0, 0), (12.0, 1), (16.0, 2), (24.0, 3)]


def test_alarm_retries_are_jittered_up_to_25_percent():
    rt = cdp.Runtime(seed=3)
    RT[:] = [rt]
    Alarmed.fired = []
    rt.actor("ALARMED", Alarmed)
    rt.spawn(_arm(rt.env.ALARMED.get_by_name("a"), 10.0, 3))
    rt.run()
    times = [t for t, _ in Alarmed.fired]
    gaps = [b - a for a, b in zip(times, times[1:])]
    for gap, base in zip(gaps, [2, 4, 8]):
        assert base <= gap < base * 1.25
    assert len(set(g / b for g, b in zip(gaps, [2, 4, 8]))) == 3  # really random


def test_alarm_gives_up_after_six_retries():
    rt = cdp.Runtime(semantics=dataclasses.replace(cdp.LOCAL, alarm_retry_jitter=0))
    RT[:] = [rt]
    Alarmed.fired = []
    rt.actor("ALARMED", Alarmed)
    rt.spawn(_arm(rt.env.ALARMED.get_by_name("a"), 1.0, 100))
    rt.run()
    assert [r for _, r in Alarmed.fired] == [0, 1, 2, 3, 4, 5, 6]
    assert Alarmed.fired[-1][0] == 1 + 2 + 4 + 8 + 16 + 32 + 64


async def _arm(stub, at, failures):
    await stub.arm(at, failures)


def test_sql_storage_only_on_sqlite_classes():
    class Sql(cdp.Actor):
        async def count(self):
            self.ctx.storage.sql.exec("CREATE TABLE IF NOT EXISTS hits(t REAL)")
            self.ctx.storage.sql.exec("INSERT INTO hits VALUES (?)", 1.0)
            return self.ctx.storage.sql.exec("SELECT count(*) AS n FROM hits").one()["n"]

    rt = cdp.Runtime()
    rt.actor("SQL", Sql)
    rt.actor("KVSQL", Sql, sqlite=False)
    results = []

    async def script():
        for _ in range(2):
            results.append(await rt.env.SQL.get_by_name("s").count())
        try:
            await rt.env.KVSQL.get_by_name("s").count()
        except HandlerError as exc:
            results.append(str(exc))

    rt.spawn(script())
    rt.run()
    assert results[:2] == [1, 2]
    assert results[2].startswith("ctx.storage.sql is only available on SQLite-backed")


def test_storage_kv_api():
    from cdpkit.runtime.storage import Storage
    s = Storage()
    s.put({"b": 2, "a": 1, "c": 3, "ab": 4})
    assert list(s.list().result()) == ["a", "ab", "b", "c"]
    assert list(s.list(prefix="a").result()) == ["a", "ab"]
    assert list(s.list(start="ab", end="c").result()) == ["ab", "b"]
    assert list(s.list(reverse=True, limit=2).result()) == ["c", "b"]
    assert s.get(["a", "zz"]).result() == {"a": 1}
    assert s.delete(["a", "zz"]).result() == 1
    assert s.get("a").result() is None


def test_storage_transaction_rolls_back():
    from cdpkit.runtime.clock import Clock
    from cdpkit.runtime.storage import Storage
    s, clock = Storage(), Clock()
    s.put("k", 1)

    async def txn(t):
        await t.put("k", 2)
        raise RuntimeError("abort")

    task = clock.spawn(s.transaction(txn))
    clock.run()
    assert isinstance(task.error, RuntimeError) and s.get("k").result() == 1


# ----------------------------------------------------------------------- bad input


def test_missing_rpc_method_is_a_clear_error(rt):
    with pytest.raises(HandlerError, match=r"REC \(Recorder\) has no RPC method 'comptue'; methods: "
                                           "call_out, compute, env_now, use_storage"):
        rt.env.REC.get_by_name("x").comptue("a", 1)
    with pytest.raises(HandlerError, match="has no RPC method '_private'"):
        rt.env.REC.get_by_name("x")._private()


def test_bad_ids(rt):
    with pytest.raises(HandlerError, match=r"REC.id_from_string: 'xyz' is not a Durable Object id; "
                                           "allowed: 64 lowercase hex characters"):
        rt.env.REC.id_from_string("xyz")
    with pytest.raises(HandlerError, match="REC.get: 'w1' is not an id; make one with id_from_name"):
        rt.env.REC.get("w1")
    rt.actor("OTHER", Recorder)
    with pytest.raises(HandlerError, match="REC.get: id belongs to namespace 'OTHER'"):
        rt.env.REC.get(rt.env.OTHER.id_from_name("a"))
    with pytest.raises(HandlerError, match="id_from_name: name=5 is not allowed"):
        rt.env.REC.id_from_name(5)


def test_unbound_namespace_and_bad_actor_declarations(rt):
    with pytest.raises(AttributeError, match="env has no binding 'ORCHESTRATOR'; bindings: QUEUES_API, REC"):
        rt.env.ORCHESTRATOR
    with pytest.raises(ConfigError, match="actor 'X': 5 is not a class"):
        rt.actor("X", 5)
    with pytest.raises(ConfigError, match="binding 'my-actor' is not allowed"):
        rt.actor("my-actor", Recorder)
    with pytest.raises(ConfigError, match="evict: no actor binding 'NOPE'"):
        rt.evict("NOPE")


def test_class_without_migration_is_an_error_before_running():
    rt = cdp.Runtime()
    rt.actor("REC", Recorder)
    rt.actor("COUNTER", Counter)
    rt.migration("v1", new_sqlite_classes=["Recorder"])
    with pytest.raises(ConfigError, match="actor 'COUNTER': class 'Counter' has no migration; add it to "
                                          "new_sqlite_classes"):
        rt.run()
    rt.migration("v2", new_classes=["Counter"])
    rt.run()
    assert rt.namespaces["COUNTER"].sqlite is False


def test_migration_rules():
    rt = cdp.Runtime()
    rt.migration("v1", new_sqlite_classes=["A"])
    with pytest.raises(ConfigError, match="migration tag 'v1' is used twice"):
        rt.migration("v1")
    with pytest.raises(ConfigError, match="renamed_classes entry .* allowed: {'from': 'Old', 'to': 'New'}"):
        rt.migration("v2", renamed_classes=[{"old": "A"}])
    rt.migration("v3", renamed_classes=[{"from": "Nope", "to": "Recorder"}])
    rt.actor("REC", Recorder)
    with pytest.raises(ConfigError, match="renamed_classes from 'Nope', which no earlier migration introduced"):
        rt.run()


def test_oversized_storage_values():
    from cdpkit.runtime.storage import Storage
    with pytest.raises(LimitError, match="storage value for key 'k' is 200009 bytes; allowed: at most 131072 bytes \\(128 KiB"):
        Storage(sqlite=False).put("k", "x" * 200_000)
    with pytest.raises(LimitError, match="allowed: at most 2097152 bytes \\(SQLite-backed object\\)"):
        Storage(sqlite=True).put("k", b"x" * 3_000_000)
    with pytest.raises(LimitError, match="storage key of 3000 bytes is not allowed; allowed: at most 2048"):
        Storage(sqlite=False).put("k" * 3000, 1)


def test_stub_fetch_and_classes_without_fetch():
    class Web(cdp.Actor):
        async def fetch(self, request):
            return {"status": 200, "body": f"hello {request['path']}"}

    rt = cdp.Runtime()
    rt.actor("WEB", Web)
    rt.actor("REC", Recorder)
    got = []

    async def script():
        got.append(await rt.env.WEB.get_by_name("w").fetch({"path": "/x"}))

    rt.spawn(script())
    rt.run()
    assert got == [{"status": 200, "body": "hello /x"}]
    with pytest.raises(HandlerError, match=r"REC \(Recorder\) has no fetch\(\) handler"):
        rt.env.REC.get_by_name("x").fetch({})


def test_gather_is_promise_all():
    rt = cdp.Runtime()
    out = []

    async def value(v, delay):
        await rt.sleep(delay)
        return v

    async def script():
        out.append(await rt.gather(value("a", 2), value("b", 1)))
        out.append(rt.now)

    rt.spawn(script())
    rt.run()
    assert out == [["a", "b"], 2.0]


# ------------------------------------------- workerd's gates, alarms, transactions (issue 19)
class Gates(cdp.Actor):
    """Logs the steps of requests that await KV, D1, a timer inside critical sections, ..."""

    def __init__(self, ctx, env):
        super().__init__(ctx, env)
        self.log = []
        self.ready = False
        if self.name == "boot":
            self.done = ctx.block_concurrency_while(self._boot)

    async def _boot(self):
        await self.ctx.sleep(0.2)
        self.ready = True

    async def via_kv(self, who):
        self.log.append(f"{who}:start")
        await self.env.CACHE.get("nothing")
        self.log.append(f"{who}:end")

    async def via_d1(self, who):
        self.log.append(f"{who}:start")
        await self.env.DB.prepare("SELECT 1").first()
        self.log.append(f"{who}:end")

    async def via_queue(self, who):
        self.log.append(f"{who}:start")
        await self.env.EVENTS.send({"who": who})
        self.log.append(f"{who}:end")

    async def critical(self, who):
        async def section():
            self.log.append(f"{who}:start")
            await self.ctx.sleep(0.1)
            self.log.append(f"{who}:end")
        await self.ctx.block_concurrency_while(section)
        return who

    async def in_transaction(self, who):
        async def closure(txn):
            self.log.append(f"{who}:start")
            await self.ctx.sleep(0.1)          # a timer: it would open the gate elsewhere
            await txn.put(who, 1)
            self.log.append(f"{who}:end")
        await self.ctx.storage.transaction(closure)

    async def hello(self, who):
        return [who, self.ready, RT[0].now]

    async def boom(self):
        self.ready = "boomed"

        async def fail():
            raise RuntimeError("init failed")
        await self.ctx.block_concurrency_while(fail)

    async def memory(self):
        return self.ready

    async def order(self):
        return self.log


def gates_runtime():
    rt = cdp.Runtime()
    RT[:] = [rt]
    rt.actor("GATES", Gates)
    rt.kv("CACHE")
    rt.d1("DB")
    rt.queue("events")
    return rt


def settle(rt, *calls):
    """Start the calls together; their results or error texts once all are done."""
    futures = [call() for call in calls]
    rt.run()
    return [f.value if f.error is None else f"error: {f.error}" for f in futures]


@pytest.mark.parametrize("method", ["via_kv", "via_d1", "via_queue"])
def test_kv_and_d1_awaits_let_queued_requests_in_at_zero_latency(method):
    """KV, D1 and a queue send are I/O that is not the object's own storage: awaiting them
    lets the object's queued requests in, whatever the latency (workerd's awaitIo)."""
    rt = gates_runtime()
    stub = rt.env.GATES.get_by_name("g")
    settle(rt, *(lambda w=w: getattr(stub, method)(w) for w in "ABC"))
    assert settle(rt, stub.order) == [["A:start", "B:start", "C:start", "A:end", "B:end", "C:end"]]


def test_block_concurrency_while_keeps_the_gate_closed_through_a_timer():
    rt = gates_runtime()
    stub = rt.env.GATES.get_by_name("g")
    assert settle(rt, *(lambda w=w: stub.critical(w) for w in "ABC")) == ["A", "B", "C"]
    assert settle(rt, stub.order) == [["A:start", "A:end", "B:start", "B:end", "C:start", "C:end"]]


def test_block_concurrency_while_in_the_constructor_runs_before_any_request():
    rt = gates_runtime()
    stub = rt.env.GATES.get_by_name("boot")
    assert settle(rt, lambda: stub.hello("A"), lambda: stub.hello("B")) == [["A", True, 0.2], ["B", True, 0.2]]


def test_a_failing_block_concurrency_while_resets_the_object_and_fails_queued_requests():
    rt = gates_runtime()
    stub = rt.env.GATES.get_by_name("g")
    settle(rt, lambda: stub.hello("warm"))
    assert settle(rt, stub.boom, stub.memory) == ["error: init failed", "error: init failed"]
    assert settle(rt, stub.memory) == [False]        # a new instance


def test_transaction_keeps_the_gate_closed_through_io():
    rt = gates_runtime()
    stub = rt.env.GATES.get_by_name("g")
    settle(rt, *(lambda w=w: stub.in_transaction(w) for w in "AB"))
    assert settle(rt, stub.order) == [["A:start", "A:end", "B:start", "B:end"]]


def test_transaction_rollback_undoes_writes_and_closes_the_txn():
    from cdpkit.runtime.clock import Clock
    from cdpkit.runtime.storage import Storage
    s, clock = Storage(), Clock()
    s.put("k", 1)
    seen = []

    async def closure(txn):
        await txn.put("k", 2)
        await txn.put("new", 3)
        txn.rollback()
        txn.rollback()                      # a second rollback is allowed
        try:
            await txn.get("k")
        except HandlerError as exc:
            seen.append(str(exc))
        seen.append(txn)
        return "returned"

    task = clock.spawn(s.transaction(closure))
    clock.run()
    assert task.result() == "returned"
    assert seen[0] == "Cannot get() on rolled back transaction"
    assert s.get("k").result() == 1 and s.get("new").result() is None

    async def keep(txn):
        await txn.put("k", 5)
        return txn

    task = clock.spawn(s.transaction(keep))
    clock.run()
    with pytest.raises(HandlerError, match=r"Cannot call put\(\) on transaction that has already committed"):
        task.result().put("k", 6)
    assert s.get("k").result() == 5


class Timed(cdp.Actor):
    seen: list = []

    async def arm(self, at, failures):
        await self.ctx.storage.put("failures", failures)
        await self.ctx.storage.set_alarm(at)
        return await self.ctx.storage.get_alarm()

    async def alarm(self, info):
        Timed.seen.append(("in alarm", RT[0].now, await self.ctx.storage.get_alarm()))
        left = await self.ctx.storage.get("failures")
        if left:
            await self.ctx.storage.put("failures", left - 1)
            raise RuntimeError("alarm failed")

    async def pending(self):
        return await self.ctx.storage.get_alarm()


def test_set_alarm_in_the_past_becomes_now():
    rt = cdp.Runtime()
    RT[:] = [rt]
    Timed.seen = []
    rt.actor("TIMED", Timed)
    stub = rt.env.TIMED.get_by_name("t")
    rt.run(until=100)
    assert settle(rt, lambda: stub.arm(40.0, 0)) == [100.0]
    assert Timed.seen == [("in alarm", 100.0, None)]


def test_a_failed_alarm_keeps_its_time_until_it_succeeds():
    rt = cdp.Runtime(semantics=dataclasses.replace(cdp.LOCAL, alarm_retry_jitter=0))
    RT[:] = [rt]
    Timed.seen = []
    rt.actor("TIMED", Timed)
    stub = rt.env.TIMED.get_by_name("t")
    probes = {}
    rt.call_at(0.0, lambda: stub.arm(10.0, 1))   # fails at 10, retried at 12
    for t in (11.0, 13.0):
        rt.call_at(t, lambda t=t: probes.__setitem__(t, stub.pending()))
    rt.run()
    assert Timed.seen == [("in alarm", 10.0, None), ("in alarm", 12.0, None)]
    assert probes[11.0].value == 10.0 and probes[13.0].value is None


def test_sql_exec_runs_several_statements_and_returns_the_last_cursor():
    from cdpkit.runtime.storage import Storage
    sql = Storage().sql
    cursor = sql.exec("CREATE TABLE m(x); INSERT INTO m VALUES (1); INSERT INTO m VALUES ('a;b'); "
                      "SELECT count(*) AS c FROM m")
    assert cursor.to_array() == [{"c": 2}]
    cursor = sql.exec("INSERT INTO m VALUES (3); SELECT x FROM m WHERE x > ?", 1)
    assert (cursor.to_array(), cursor.rows_read, cursor.rows_written) == ([{"x": "a;b"}, {"x": 3}], 3, 0)
    with pytest.raises(HandlerError, match="sql exec failed: When executing multiple SQL statements in a "
                       "single call, only the last statement can have parameters."):
        sql.exec("INSERT INTO m VALUES (?); SELECT 1", 5)
    for empty in (";", "  "):
        with pytest.raises(HandlerError, match="sql exec failed: SQL code did not contain a statement."):
            sql.exec(empty)


def test_a_stopped_simulation_leaves_no_coroutine_to_warn_about():
    """A Python run stopped with requests in flight (``drain=False``: the tuner's short runs)
    has requests that never got their object's gate; collected later, their coroutines made
    Python warn "coroutine ... was never awaited" from cdpkit's own code, wherever the
    user was. The run closes them (and only them: requests under way keep their state)."""
    res = cdp.simulate(gateway(), gateway_workload(rate=300), duration=20, seed=1, drain=False, engine="python")
    assert res.summary()["in_flight"] > 0
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        del res
        gc.collect()
    assert not [w for w in caught if "never awaited" in str(w.message)], [str(w.message) for w in caught]
