"""Durable Objects, KV and D1: the same routes run under `wrangler dev` (actors_worker/,
SQLite-backed classes) and in cdpkit's `local` profile; their observations are compared.

Each route of actors_worker/index.js has a twin here written against cdpkit. Both sides
are called at the same (real / virtual) times from SCHEDULE; every response must match,
times within a tolerance (alarm times counted from the arming call, retries also within
workerd's 25 % retry jitter).
The real run takes ~62 s because KV's minimum TTL is 60 s.
"""

from __future__ import annotations

import shutil
import sys
import threading
import time
from pathlib import Path

import pytest

import cdpkit as cdp

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from wrangler_runner import http, wrangler_dev  # noqa: E402

pytestmark = pytest.mark.conformance
TOLERANCE = 0.35

SCHEDULE = [(0.0, r) for r in ("a1-send", "a2-io", "a2-storage", "a3-order", "a4-abort", "a5-ids",
                               "a6-arm", "a7-put", "a8-send", "a9-sql", "a10-missing")] + [
    # the b routes start after the a6 alarms' first firing, so as not to delay it
    (1.5, r) for r in ("b1-kv", "b1-d1", "b2-arm", "b3-rollback", "b4-multi", "b5-ctor", "b5-method",
                       "b5-fail", "b6-rows")] + [
    (3.0, "a1-observe"), (3.0, "b2-pending"), (5.0, "a8-rows"), (8.0, "b2-done"), (12.0, "a6-observe"),
    (61.5, "a7-get")]


# ------------------------------------------------------------------ the cdpkit twin
class Counter(cdp.Actor):
    def __init__(self, ctx, env):
        super().__init__(ctx, env)
        self.memory = 0

    async def add(self, n):
        self.memory += n
        total = (await self.ctx.storage.get("total") or 0) + n
        await self.ctx.storage.put("total", total)
        return {"memory": self.memory, "total": total}

    async def via_io(self, who):
        await self.mark(f"{who}:start")
        await self.ctx.sleep(0.2)
        await self.mark(f"{who}:end")

    async def via_storage(self, who):
        await self.mark(f"{who}:start")
        await self.ctx.storage.put(f"k-{who}", who)
        await self.ctx.storage.get(f"k-{who}")
        await self.mark(f"{who}:end")

    async def mark(self, who):
        log = await self.ctx.storage.get("log") or []
        log.append(who)
        await self.ctx.storage.put("log", log)

    async def order(self):
        return await self.ctx.storage.get("log") or []

    async def crash(self):
        self.ctx.abort("reset")

    async def via_kv(self, who):
        await self.mark(f"{who}:start")
        await self.env.CACHE.get("nothing")
        await self.mark(f"{who}:end")

    async def via_d1(self, who):
        await self.mark(f"{who}:start")
        await self.env.DB.prepare("SELECT 1 AS one").first()
        await self.mark(f"{who}:end")

    async def sql(self, n):
        sql = self.ctx.storage.sql
        sql.exec("CREATE TABLE IF NOT EXISTS hits(n INTEGER)")
        sql.exec("INSERT INTO hits VALUES (?)", n)
        return sql.exec("SELECT count(*) AS c, sum(n) AS s FROM hits").one()


class Alarms(cdp.Actor):
    async def arm(self, delay, failures):
        await self.ctx.storage.put("failures", failures)
        await self.ctx.storage.put("fired", [])
        await self.ctx.storage.put("armed", RUNTIME[0].now)
        await self.ctx.storage.put("due", RUNTIME[0].now + delay)
        await self.ctx.storage.set_alarm(RUNTIME[0].now + delay)

    async def arm_past(self, seconds):
        now = RUNTIME[0].now
        await self.ctx.storage.put("fired", [])
        await self.ctx.storage.put("failures", 0)
        await self.ctx.storage.set_alarm(now - seconds)
        return round(await self.ctx.storage.get_alarm() - now)

    async def pending(self):
        alarm = await self.ctx.storage.get_alarm()
        due = await self.ctx.storage.get("due")
        return [None if alarm is None else round(alarm - due, 1),
                [[f["retry"], f["alarm"]] for f in await self.ctx.storage.get("fired") or []]]

    async def alarm(self, info):
        fired = await self.ctx.storage.get("fired") or []
        armed = await self.ctx.storage.get("armed") or 0
        fired.append({"t": RUNTIME[0].now - armed, "retry": info["retry_count"],
                      "alarm": await self.ctx.storage.get_alarm()})
        await self.ctx.storage.put("fired", fired)
        left = await self.ctx.storage.get("failures")
        if left > 0:
            await self.ctx.storage.put("failures", left - 1)
            raise RuntimeError("alarm failed")

    async def fired(self):
        return await self.ctx.storage.get("fired") or []


ROW_STATEMENTS = [
    "CREATE TABLE r(id INTEGER PRIMARY KEY, name TEXT UNIQUE, v INTEGER)",
    "CREATE TABLE e(x)",
    "INSERT INTO r(name, v) VALUES ('a', 1), ('b', 2), ('c', 3)",
    "INSERT INTO e VALUES (1)",
    "SELECT * FROM r",
    "SELECT count(*) AS n FROM r",
    "SELECT * FROM r WHERE id = 2",
    "SELECT * FROM r WHERE name = 'b'",
    "SELECT * FROM r WHERE v = 2",
    "SELECT * FROM r WHERE id > 1",
    "SELECT * FROM r ORDER BY v DESC LIMIT 1",
    "SELECT max(id) AS m FROM r",
    "UPDATE r SET v = v + 1 WHERE name = 'a'",
    "UPDATE r SET name = 'z' WHERE id = 3",
    "UPDATE r SET v = 0",
    "DELETE FROM r WHERE name = 'b'",
    "DELETE FROM e",
    "SELECT * FROM e",
    "SELECT count(*) AS n FROM e",
    "INSERT INTO e SELECT id FROM r",
    "DELETE FROM r",
]


class Probe(cdp.Actor):
    """Gates, transactions, multi-statement SQL, block_concurrency_while, row counts."""

    def __init__(self, ctx, env):
        super().__init__(ctx, env)
        self.ready = False
        ctx.block_concurrency_while(self._boot)     # no request runs before this finishes

    async def _boot(self):
        await self.ctx.sleep(0.2)
        self.ready = True

    async def hello(self, who):
        return [who, self.ready]

    async def critical(self, who):
        async def section():
            await self.mark(f"{who}:start")
            await self.ctx.sleep(0.1)
            await self.mark(f"{who}:end")
        await self.ctx.block_concurrency_while(section)
        return who

    async def mark(self, who):
        log = await self.ctx.storage.get("log") or []
        log.append(who)
        await self.ctx.storage.put("log", log)

    async def order(self):
        return await self.ctx.storage.get("log") or []

    async def boom(self):
        self.ready = "boomed"

        async def fail():
            raise RuntimeError("init failed")
        await self.ctx.block_concurrency_while(fail)
        return "not reached"

    async def memory(self):
        return self.ready

    async def rollback(self):
        async def closure(txn):
            await txn.put("rb", 1)
            txn.rollback()
            txn.rollback()
            after = "no error"
            try:
                await txn.get("rb")
            except cdp.HandlerError as exc:
                after = str(exc)
            return after
        return [await self.ctx.storage.transaction(closure), await self.ctx.storage.get("rb")]

    async def multi(self):
        sql = self.ctx.storage.sql
        rows = sql.exec("CREATE TABLE IF NOT EXISTS m(x); INSERT INTO m VALUES (1); "
                        "INSERT INTO m VALUES (2); SELECT count(*) AS c FROM m").to_array()
        out = [rows]
        for query in ["INSERT INTO m VALUES (?); SELECT count(*) AS c FROM m", ";", ""]:
            try:
                sql.exec(query, 5)
                out.append("no error")
            except cdp.HandlerError as exc:   # workerd's sentence, then cdpkit's (query: ...)
                out.append(str(exc).removeprefix("sql exec failed: ").split(" (query")[0])
        cursor = sql.exec("INSERT INTO m VALUES (3); SELECT x FROM m WHERE x > ?", 1)
        out.append([cursor.to_array(), cursor.rows_read, cursor.rows_written])
        return out

    async def rows(self, statements):
        out = []
        for query in statements:
            cursor = self.ctx.storage.sql.exec(query)
            out.append([len(cursor.to_array()), cursor.rows_read, cursor.rows_written])
        return out


RUNTIME: list[cdp.Runtime] = []


def build() -> tuple[cdp.Runtime, dict]:
    rt = cdp.Runtime(semantics="local", seed=1)
    RUNTIME[:] = [rt]
    rt.actor("COUNTER", Counter)
    rt.actor("ALARMS", Alarms)
    rt.actor("PROBE", Probe)
    rt.migration("v1", new_sqlite_classes=["Counter", "Alarms", "Probe"])
    rt.queue("a-jobs", binding="JOBS", max_batch_size=4, max_batch_timeout=1)
    rt.queue("a-failing", binding="FAILING", max_batch_size=5, max_batch_timeout=1, max_retries=1,
             dead_letter_queue="a-failing-dlq")
    rt.queue("a-failing-dlq", binding="FAILING_DLQ", max_batch_size=5, max_batch_timeout=1)
    rt.kv("CACHE")
    rt.d1("DB")
    log: list[dict] = []
    env = rt.env

    def counter(name):
        return env.COUNTER.get(env.COUNTER.id_from_name(name))

    @rt.consumer("a-jobs")
    async def jobs(batch, env, ctx):
        for m in batch.messages:
            r = await counter(m.body["k"]).add(m.body["n"])
            log.append({"route": "a1", "k": m.body["k"], "total": r["total"],
                        "batch_size": len(batch.messages)})

    @rt.consumer("a-failing")
    async def failing(batch, env, ctx):
        for m in batch.messages:
            m.retry()

    @rt.consumer("a-failing-dlq")
    async def dead(batch, env, ctx):
        for m in batch.messages:
            await env.DB.prepare("INSERT INTO dead VALUES (?, ?)").bind(m.body["k"], m.attempts).run()

    async def a1_send():
        for k, n in [("x", 1), ("y", 10), ("x", 2), ("x", 3), ("y", 20)]:
            await env.JOBS.send({"k": k, "n": n})
        return "sent"

    async def a1_observe():
        return [e for e in log if e["route"] == "a1"]

    async def a2_io():
        s = counter("a2-io")
        await rt.gather(*(s.via_io(w) for w in "ABC"))
        return await s.order()

    async def a2_storage():
        s = counter("a2-storage")
        await rt.gather(*(s.via_storage(w) for w in "ABC"))
        return await s.order()

    async def a3_order():
        s = counter("a3")
        await rt.gather(*(s.mark(w) for w in "12345"))
        return await s.order()

    async def a4_abort():
        s = counter("a4")
        out = [await s.add(1), await s.add(2)]
        try:
            await s.crash()
            out.append("no error")
        except cdp.ActorAborted:
            out.append("aborted")
        out.append(await counter("a4").add(3))
        return out

    async def a5_ids():
        ns = env.COUNTER
        a, b, c, u = ns.id_from_name("w1"), ns.id_from_name("w1"), ns.id_from_name("w2"), ns.new_unique_id()
        back = ns.id_from_string(str(a))
        try:
            ns.id_from_string("xyz")
            bad = "accepted"
        except cdp.HandlerError:
            bad = "rejected"
        return [a.equals(b), str(a) == str(b), a.equals(c), len(str(a)), len(str(u)), back.equals(a), bad]

    async def a6_arm():
        await env.ALARMS.get(env.ALARMS.id_from_name("ok")).arm(1, 0)
        await env.ALARMS.get(env.ALARMS.id_from_name("flaky")).arm(1, 2)
        return "armed"

    async def a6_observe():
        return [await env.ALARMS.get(env.ALARMS.id_from_name("ok")).fired(),
                await env.ALARMS.get(env.ALARMS.id_from_name("flaky")).fired()]

    async def a7_put():
        await env.CACHE.put("short", "v", expiration_ttl=60)
        await env.CACHE.put("long", "w", expiration_ttl=3600)
        try:
            await env.CACHE.put("tiny", "x", expiration_ttl=30)
            floor = "accepted"
        except cdp.LimitError:
            floor = "rejected"
        return [floor, await env.CACHE.get("short"), await env.CACHE.get("long")]

    async def a7_get():
        return [await env.CACHE.get("short"), await env.CACHE.get("long")]

    async def a8_send():
        await env.DB.exec("CREATE TABLE IF NOT EXISTS dead (k TEXT, attempts INTEGER)")
        for k in ["p1", "p2", "p3"]:
            await env.FAILING.send({"k": k})
        return "sent"

    async def a8_rows():
        return (await env.DB.prepare("SELECT k, attempts FROM dead ORDER BY k").all())["results"]

    async def a9_sql():
        s = counter("a9")
        return [await s.sql(5), await s.sql(7)]

    async def a10_missing():
        try:
            await counter("a10").nope()
            return "no error"
        except cdp.HandlerError:
            return "error"

    def probe(name):
        return env.PROBE.get(env.PROBE.id_from_name(name))

    async def b1_kv():
        s = counter("b1-kv")
        await rt.gather(*(s.via_kv(w) for w in "ABC"))
        log = await s.order()
        return [sorted(log[:3]), sorted(log[3:])]

    async def b1_d1():
        s = counter("b1-d1")
        await rt.gather(*(s.via_d1(w) for w in "ABC"))
        log = await s.order()
        return [sorted(log[:3]), sorted(log[3:])]

    async def b2_arm():
        past = await env.ALARMS.get(env.ALARMS.id_from_name("past")).arm_past(60)
        await env.ALARMS.get(env.ALARMS.id_from_name("retry")).arm(0.5, 1)
        return past

    async def b2_pending():
        return await env.ALARMS.get(env.ALARMS.id_from_name("retry")).pending()

    b2_done = b2_pending

    async def b3_rollback():
        return await probe("b3").rollback()

    async def b4_multi():
        return await probe("b4").multi()

    async def b5_ctor():
        s = probe("b5-ctor")
        return await rt.gather(*(s.hello(w) for w in "AB"))

    async def b5_method():
        s = probe("b5-method")
        await rt.gather(*(s.critical(w) for w in "ABC"))
        return await s.order()

    async def b5_fail():
        s = probe("b5-fail")
        await s.hello("warm")
        out = []
        for call in [s.boom(), s.memory()]:     # both queued at once, like Promise.allSettled
            out.append(call)
        settled = []
        for call in out:
            try:
                settled.append(["ok", await call])
            except RuntimeError as exc:
                settled.append(["error", str(exc)])
        settled.append(await probe("b5-fail").memory())
        return settled

    async def b6_rows():
        sql_rows = await probe("b6").rows(ROW_STATEMENTS)
        d1_rows = []
        for query in ROW_STATEMENTS:
            r = await env.DB.prepare(query).all()
            d1_rows.append([len(r["results"]), r["meta"]["rows_read"], r["meta"]["rows_written"]])
        return {"sql": sql_rows, "d1": d1_rows}

    routes = {name.replace("_", "-"): fn for name, fn in locals().items()
              if name[0] in "ab" and name[1:2].isdigit() and callable(fn)}
    return rt, routes


def run_cdpkit() -> dict:
    rt, routes = build()
    results: dict = {}

    async def call(route):
        results[route] = await routes[route]()

    for at, route in SCHEDULE:
        rt.call_at(at, lambda r=route: rt.spawn(call(r)))
    rt.run(until=max(at for at, _ in SCHEDULE) + 1)
    return results


def run_wrangler(workdir: Path) -> dict:
    for name in ("index.js", "wrangler.toml"):
        shutil.copy(HERE / "actors_worker" / name, workdir / name)
    results: dict = {}
    with wrangler_dev(workdir) as base:
        http("POST", base + "/start", {})
        t0 = time.monotonic()
        threads = []
        for at, route in SCHEDULE:
            time.sleep(max(0.0, t0 + at - time.monotonic()))

            def go(route=route):
                results[route] = http("GET", f"{base}/{route}")

            thread = threading.Thread(target=go)
            thread.start()
            threads.append(thread)
        for thread in threads:
            thread.join()
    return results


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    return run_wrangler(tmp_path_factory.mktemp("actors")), run_cdpkit()


def test_every_route_has_a_twin():
    _, routes = build()
    assert sorted(routes) == sorted({r for _, r in SCHEDULE})
    assert len(routes) >= 8


@pytest.mark.parametrize("route", [r for _, r in SCHEDULE if r != "a6-observe"])
def test_route_matches_wrangler_dev(route, both):
    real, ours = both
    assert ours[route] == real[route], f"{route}: real {real[route]!r}, cdpkit {ours[route]!r}"


def test_alarms_fire_and_retry_like_wrangler_dev(both):
    real, ours = both
    for real_fired, our_fired in zip(real["a6-observe"], ours["a6-observe"]):
        assert [f["retry"] for f in our_fired] == [f["retry"] for f in real_fired]
        backoff = 0.0
        for i, (r, o) in enumerate(zip(real_fired, our_fired)):
            if i:
                backoff += 2 ** i  # 2 s, 4 s, ... each jittered by up to 25 % on both sides
            assert abs(r["t"] - o["t"]) <= TOLERANCE + 0.25 * backoff, (real_fired, our_fired)
