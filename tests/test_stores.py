"""KV, D1 and Analytics Engine bindings."""

import pytest

import cdpkit as cdp
from cdpkit import HandlerError, LimitError


def test_kv_expiration_ttl_and_minimum():
    rt = cdp.Runtime()
    kv = rt.kv("CACHE")
    kv.put("queue:t1", "q-123", expiration_ttl=60)
    kv.put("forever", "x")
    rt.run(until=59.9)
    assert kv.get("queue:t1").result() == "q-123"
    rt.run(until=60)
    assert kv.get("queue:t1").result() is None
    assert kv.get("forever").result() == "x"
    with pytest.raises(LimitError, match="CACHE.put: expiration_ttl=59 is not allowed; allowed: at least 60 seconds"):
        kv.put("k", "v", expiration_ttl=59)
    with pytest.raises(LimitError, match=r"CACHE.put: expiration=100 is not allowed; allowed: a time at least 60 "
                                         r"seconds from now \(120\)"):
        kv.put("k", "v", expiration=100)


def test_kv_propagation_delay_and_latency():
    rt = cdp.Runtime()
    kv = rt.kv("CACHE", propagation_delay=30, latency=0.01)
    seen = []

    async def script():
        await kv.put("k", "v1")                  # 10 ms
        value = await kv.get("k")                # 10 ms; not visible for 30 s
        seen.append((round(rt.now, 2), value))
        await rt.sleep(30)
        value = await kv.get("k")
        seen.append((round(rt.now, 2), value))

    rt.spawn(script())
    rt.run()
    assert seen == [(0.02, None), (30.03, "v1")]


def test_kv_values_metadata_list_delete_and_limits():
    rt = cdp.Runtime()
    kv = rt.kv("KV")
    kv.put("a:1", '{"n": 1}', metadata={"tenant": "a"})
    kv.put("a:2", b"\x00")
    kv.put("b:1", "x")
    assert kv.get("a:1", type="json").result() == {"n": 1}
    assert kv.get_with_metadata("a:1").result()["metadata"] == {"tenant": "a"}
    listing = kv.list(prefix="a:", limit=1).result()
    assert [k["name"] for k in listing["keys"]] == ["a:1"] and not listing["list_complete"]
    rest = kv.list(prefix="a:", cursor=listing["cursor"]).result()
    assert [k["name"] for k in rest["keys"]] == ["a:2"] and rest["list_complete"]
    kv.delete("a:1")
    assert kv.get("a:1").result() is None
    with pytest.raises(LimitError, match="KV.put: key of 513 bytes is not allowed; allowed: at most 512 bytes"):
        kv.put("k" * 513, "v")
    with pytest.raises(LimitError, match="KV.put: value of type dict is not allowed; allowed: str or bytes"):
        kv.put("k", {"a": 1})
    with pytest.raises(LimitError, match="KV.put: value of 26214401 bytes is not allowed"):
        kv.put("k", b"x" * (25 * 1024 * 1024 + 1))


def test_d1_statements_batch_and_rollback():
    rt = cdp.Runtime()
    db = rt.d1("DB")
    db.exec("CREATE TABLE dead_letters(id TEXT PRIMARY KEY, queue TEXT, attempts INTEGER)")
    insert = db.prepare("INSERT INTO dead_letters VALUES (?, ?, ?)")
    meta = insert.bind("m1", "cdp-dlq", 4).run().result()["meta"]
    assert meta["changes"] == 1 and meta["rows_written"] == 2   # the row + its PRIMARY KEY index entry
    db.batch([insert.bind("m2", "cdp-dlq", 4), insert.bind("m3", "cdp-dlq", 4)])
    assert db.prepare("SELECT count(*) AS n FROM dead_letters").first("n").result() == 3
    with pytest.raises(HandlerError, match="D1_ERROR: UNIQUE constraint failed"):
        db.batch([insert.bind("m4", "q", 1), insert.bind("m1", "q", 1)])
    assert db.prepare("SELECT count(*) AS n FROM dead_letters").first("n").result() == 3  # m4 rolled back
    assert db.prepare("SELECT id FROM dead_letters ORDER BY id").raw().result() == [["m1"], ["m2"], ["m3"]]
    assert db.table("dead_letters").shape == (3, 3)
    with pytest.raises(HandlerError, match=r"D1 bind: parameter 1=\{'a': 1\} is not allowed"):
        insert.bind({"a": 1}, "q", 1)


def test_dlq_consumer_writes_rows_to_d1_and_analytics():
    rt = cdp.Runtime()
    rt.queue("jobs", max_retries=1, dead_letter_queue="jobs-dlq")
    rt.queue("jobs-dlq")
    db = rt.d1("DB")
    rt.analytics("METRICS", dataset="cdp")
    db.exec("CREATE TABLE failed(id TEXT, attempts INTEGER)")

    @rt.consumer("jobs")
    async def always_fails(batch, env, ctx):
        batch.retry_all()

    @rt.consumer("jobs-dlq")
    async def record(batch, env, ctx):
        stmt = env.DB.prepare("INSERT INTO failed VALUES (?, ?)")
        await env.DB.batch([stmt.bind(m.id, m.attempts) for m in batch.messages])
        env.METRICS.write_data_point({"blobs": ["dlq"], "doubles": [len(batch.messages)], "indexes": ["cdp"]})

    for i in range(3):
        rt.env.JOBS.send({"i": i})
    rt.run()
    assert len(db.table("failed")) == 3
    points = rt.data_points
    assert points["double1"].sum() == 3 and set(points["blob1"]) == {"dlq"}
    with pytest.raises(LimitError, match="METRICS.write_data_point: unknown keys \\['blob'\\]"):
        rt.env.METRICS.write_data_point({"blob": ["x"]})
    with pytest.raises(LimitError, match="at most one index of at most 96 bytes"):
        rt.env.METRICS.write_data_point({"indexes": ["a", "b"]})


# Rows read / written as workerd reports them: observed under `wrangler dev` for these
# statements, run in order (cursor.rowsRead/rowsWritten and D1's meta agree), as
# (result rows, rows read, rows written). The actors conformance route b6-rows checks it.
ROW_COUNTS = [
    ("CREATE TABLE r(id INTEGER PRIMARY KEY, name TEXT UNIQUE, v INTEGER)", 0, 1, 3),
    ("CREATE TABLE e(x)", 0, 1, 2),
    ("INSERT INTO r(name, v) VALUES ('a', 1), ('b', 2), ('c', 3)", 0, 0, 6),
    ("INSERT INTO e VALUES (1)", 0, 0, 1),
    ("SELECT * FROM r", 3, 3, 0),
    ("SELECT count(*) AS n FROM r", 1, 3, 0),
    ("SELECT * FROM r WHERE id = 2", 1, 1, 0),
    ("SELECT * FROM r WHERE name = 'b'", 1, 1, 0),
    ("SELECT * FROM r WHERE v = 2", 1, 3, 0),
    ("SELECT * FROM r WHERE id > 1", 2, 2, 0),
    ("SELECT * FROM r ORDER BY v DESC LIMIT 1", 1, 6, 0),
    ("SELECT max(id) AS m FROM r", 1, 1, 0),
    ("UPDATE r SET v = v + 1 WHERE name = 'a'", 0, 1, 1),
    ("UPDATE r SET name = 'z' WHERE id = 3", 0, 1, 2),
    ("UPDATE r SET v = 0", 0, 3, 3),
    ("DELETE FROM r WHERE name = 'b'", 0, 1, 1),
    ("DELETE FROM e", 0, 0, 1),
    ("SELECT * FROM e", 0, 1, 0),
    ("SELECT count(*) AS n FROM e", 1, 0, 0),   # from the source (OP_Count adds the row count)
    ("INSERT INTO e SELECT id FROM r", 0, 2, 2),
    ("DELETE FROM r", 0, 0, 2),
]


def test_rows_read_and_written_follow_what_sqlite_reads_and_writes():
    from cdpkit.runtime.storage import Storage
    rt = cdp.Runtime()
    db, sql = rt.d1("DB"), Storage().sql
    for query, found, read, written in ROW_COUNTS:
        meta = db.prepare(query).all().result()["meta"]
        cursor = sql.exec(query)
        assert (len(cursor.to_array()), cursor.rows_read, cursor.rows_written) == (found, read, written), query
        assert (meta["rows_read"], meta["rows_written"]) == (read, written), query
    assert (db.rows_read, db.rows_written) == (sum(r[2] for r in ROW_COUNTS), sum(r[3] for r in ROW_COUNTS))


def test_d1_exec_counts_rows_of_every_statement():
    rt = cdp.Runtime()
    db = rt.d1("DB")
    assert db.exec("CREATE TABLE t(x UNIQUE); INSERT INTO t VALUES (1); INSERT INTO t VALUES (2)").result()["count"] == 3
    assert (db.rows_read, db.rows_written) == (1, 3 + 2 + 2)
    with pytest.raises(HandlerError, match="D1_EXEC_ERROR: UNIQUE constraint failed: t.x"):
        db.exec("INSERT INTO t VALUES (1)")
