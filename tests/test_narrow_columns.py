"""The ledger, the deliveries, the call logs and the arrivals keep narrow integer columns
(failed attempts int16, a compiled run's bodies, deliveries, call keys and sizes int32,
its queue codes uint8): a narrowed column must never overflow, and the public frames keep
their int64 columns."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import cdpkit as cdp
from cdpkit.errors import ConfigError
from cdpkit.runtime.semantics import PRODUCTION


def always_failing(max_retries: int) -> cdp.Pipeline:
    p = cdp.Pipeline("always-failing")
    p.add_source("http", queue="jobs")
    p.add_queue("jobs", max_batch_size=10, max_batch_timeout=1, max_retries=max_retries,
                dead_letter_queue="dlq")
    p.add_queue("dlq", max_batch_size=10, max_batch_timeout=1)
    p.add_consumer("jobs", service={"base": 0.001}, failure=1.0, retry={"policy": "fixed", "base": 0},
                   calls="Hot")
    p.add_consumer("dlq", calls="Hot")
    p.add_actor("Hot", service=0.001, instances=3)
    return p


def both(pipeline: cdp.Pipeline, workload, duration: float, **kwargs) -> tuple[cdp.Results, cdp.Results]:
    compiled = cdp.simulate(pipeline, workload, duration=duration, seed=1, engine="compiled", **kwargs)
    python = cdp.simulate(pipeline, workload, duration=duration, seed=1, engine="python", **kwargs)
    assert compiled.engine == "compiled" and python.engine == "python"
    return compiled, python


def test_the_most_retries_count_every_attempt():
    compiled, python = both(always_failing(100), cdp.Poisson(rate=5), 4)
    for res in (compiled, python):
        m = res.messages
        jobs = m[m["queue"] == "jobs"]
        assert len(jobs) and (jobs["outcome"] == "dead_lettered").all()
        assert (jobs["attempts"] == 101).all() and (jobs["deliveries"] == 101).all()
        assert int(res.runtime.ledger.view("failed").max()) == 101
        assert res.summary()["retries"] == 100 * len(jobs)
    assert compiled.messages.equals(python.messages)


def test_public_frames_keep_their_dtypes():
    compiled, python = both(always_failing(3), cdp.Poisson(rate=20, types={"a": 1, "b": 1}), 10)
    ledger = compiled.runtime.ledger           # narrow inside
    assert ledger.failed.dtype == np.int16 and ledger.payload.dtype == np.int32
    assert ledger.bytes.dtype == np.int32 and ledger.queue.dtype == np.uint8
    assert ledger._delivered.dtype == np.int32 and compiled.runtime.recorder.call_logs[0].key.dtype == np.int32
    assert compiled.arrivals.sizes.dtype == np.int32 and compiled.arrivals.types.dtype == np.int64
    m = compiled.messages
    for column in ("bytes", "attempts", "deliveries", "origin"):
        assert m[column].dtype == np.int64, column
    assert m.dtypes.equals(python.messages.dtypes) and m.equals(python.messages)
    for name in ("batches", "actor_calls", "end_to_end"):
        a, b = getattr(compiled, name), getattr(python, name)
        assert a.dtypes.equals(b.dtypes), name
        assert a.index.dtype == b.index.dtype, name
    e2e = compiled.end_to_end
    assert e2e.index.dtype == np.int64 and e2e["unfinished"].dtype == np.int64
    assert (e2e["latency"] == e2e["last"] - e2e["origin_time"]).all()
    assert compiled.summary().equals(python.summary())


def test_sizes_past_32_bits_are_kept():
    p = cdp.Pipeline("big")
    p.add_source("http", queue="jobs")
    p.add_queue("jobs")
    p.add_consumer("jobs", service={"base": 0.001})
    compiled, python = both(p, cdp.Poisson(rate=5, size={"uniform": [1, 5e9]}), 20)
    assert compiled.arrivals.sizes.dtype == np.int64
    assert compiled.runtime.ledger.bytes.dtype == np.int64
    assert compiled.messages["bytes"].max() > 2**31
    assert compiled.messages.equals(python.messages)


def test_a_backlog_past_32_bits_sums_exactly():
    """Rows in flight after a compiled run (in a queue's buffer) sum their bytes item by
    item (the write-back's backlog_bytes): past 2**31 in all, the column is made int64."""
    from cdpkit.sim.compiled import ENGINE_COLUMNS
    n = 20_000                                   # 128 KB each: 2.56 GB in flight
    sizes = np.full(n, 128_000, dtype=np.int32)
    for in_flight, wide in ((2**31 // 128_000, False), (n, True)):
        ledger = cdp.Runtime().ledger
        ledger.reserve(n + 10, queues=1)
        rows = ledger.add("jobs", "raw", np.arange(n), sizes, np.zeros(n), np.zeros(n))
        ledger.outcome[in_flight:n] = 1          # acked: no longer counted
        ledger.grown(n, ["jobs"], "raw", sizes, {name: getattr(ledger, name) for name in ENGINE_COLUMNS},
                     np.zeros((0, 2), np.int64))
        assert (ledger.bytes.dtype == np.int64) is wide
        assert sum(map(ledger.bytes.__getitem__, list(rows)[:in_flight])) == 128_000 * in_flight


def test_a_profile_cannot_count_past_the_failed_column():
    sem = dataclasses.replace(PRODUCTION, default_max_retries=40_000)
    rt = cdp.Runtime(semantics=sem)
    with pytest.raises(ConfigError, match=r"max_retries=40000 is not allowed; allowed: at most 32766 \(the ledger "
                                          r"counts failed attempts in 16 bits\)"):
        rt.queue("jobs")
