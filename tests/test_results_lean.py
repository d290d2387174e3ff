"""The summary, the end-to-end table and the ledger's reading methods read the ledger a step
at a time, without copying its columns (``results._STEP`` rows; a million rows or
deliveries in the ledger): they must give exactly the numbers of the plain whole-column
arithmetic they replace, with one step or many."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import cdpkit as cdp
from cdpkit.runtime.ledger import ACKED, DROPPED, OUTCOME_CODES, Ledger
from cdpkit.sim import results as results_module


def old_deliveries(ledger: Ledger) -> tuple[np.ndarray, np.ndarray]:
    """Per row: deliveries and first delivery, a time per delivery at once."""
    sizes = np.asarray(ledger._delivered_sizes, dtype=np.int64)
    rows = np.asarray(ledger._delivered, dtype=np.int64)
    times = np.repeat(np.asarray(ledger._delivered_at, dtype=np.float64), sizes)
    first = np.full(len(ledger), np.nan)
    first[rows[::-1]] = times[::-1]
    return np.bincount(rows, minlength=len(ledger)), first


def old_origin(res: cdp.Results) -> np.ndarray:
    """Per row: the arrival it descends from (-1: none), the body of a raw row."""
    ledger = res.runtime.ledger
    rows = np.flatnonzero(ledger.column("content_type") == ledger.type_code("raw"))
    origin = np.full(len(ledger), -1, dtype=np.int64)
    origin[rows] = np.fromiter([ledger.payload[i] for i in rows.tolist()], np.int64, len(rows))
    return origin


def old_end_to_end(res: cdp.Results) -> tuple[np.ndarray, ...]:
    """Per arrival that reached a queue: index, first send, last finish, unfinished."""
    ledger = res.runtime.ledger
    origin = old_origin(res)
    keep = origin >= 0
    origin, finished = origin[keep], ledger.column("finished")[keep]
    n = len(res.arrivals)
    ids = np.flatnonzero(np.bincount(origin, minlength=n))
    unfinished = np.isnan(finished)
    last = np.full(n, -np.inf)
    np.maximum.at(last, origin, np.where(unfinished, -np.inf, finished))
    unfinished = np.bincount(origin, weights=unfinished, minlength=n).astype(np.int64)[ids]
    last = last[ids]
    return ids, res.arrivals.times[ids], np.where(np.isfinite(last), last, np.nan), unfinished


def old_summary(res: cdp.Results) -> dict:
    """The summary's numbers, computed on whole copied columns."""
    ledger = res.runtime.ledger
    entry_codes = [ledger.queue_code(q) for q in res.entry_queues]
    entry = np.isin(ledger.column("queue"), entry_codes)
    outcome = ledger.column("outcome")[entry]
    counts = {name: int((outcome == code).sum()) for name, code in OUTCOME_CODES.items()}
    _, first, last, unfinished = old_end_to_end(res)
    e2e = (last - first)[unfinished == 0]
    p50, p95, p99 = np.quantile(e2e, [0.5, 0.95, 0.99]) if len(e2e) else (np.nan,) * 3
    timeline = res.timeline
    queues = timeline[timeline["node"].isin(res.runtime.queues)]
    arrivals_end = float(res.arrivals.times[-1]) if len(res.arrivals) else 0.0
    deliveries, first_delivered = old_deliveries(ledger)
    wait = (first_delivered - ledger.column("sent"))[entry]
    finished = ledger.column("finished")
    finished = finished[~np.isnan(finished)]
    batch_queue, batch_size = ledger.batch_sizes()
    entry_batches = batch_size[np.isin(batch_queue, entry_codes)]
    return {
        "messages": int(entry.sum()), **counts,
        "retries": int(np.clip(deliveries[entry] - 1, 0, None).sum()),
        "throughput": counts["acked"] / res.duration,
        "wait_mean": float(np.nanmean(wait)) if (~np.isnan(wait)).any() else np.nan,
        "p50_latency": p50, "p95_latency": p95, "p99_latency": p99,
        "mean_batch": entry_batches.mean() if len(entry_batches) else np.nan,
        "max_backlog": int(queues["backlog"].max()) if len(queues) else 0,
        "time_to_drain": max(0.0, finished.max() - arrivals_end) if len(finished) else 0.0,
        "errors": len(res.runtime.recorder.errors),
    }


RETRY_SKEW = """
name: retry-skew
sources: {http: {queue: jobs}}
queues:
  jobs:
    max_batch_size: 20
    max_batch_timeout: 2
    max_concurrency: 5
    max_retries: 2
    dead_letter_queue: dlq
    consumer: {service: {base: {exp: 0.01}, per_message: 0.002}, failure: 0.15, permanent: 0.2,
               retry: {policy: exponential, base: 2, cap: 30}, calls: Hot, publish: [out]}
  dlq: {max_batch_size: 10, max_batch_timeout: 5, consumer: {}}
  out: {max_batch_size: 50, max_batch_timeout: 1, consumer: {calls: Hot}}
actors:
  Hot: {service: {exp: 0.004}, instances: 20, skew: 1.3}
"""


def retry_skew() -> cdp.Pipeline:
    """Retries, dead letters, publishing and a skewed actor (bench/same_results.py's scenario)."""
    return cdp.Pipeline.from_yaml(RETRY_SKEW)


def mixed_bodies() -> cdp.Pipeline:
    """Handler code publishing JSON next to the workload's own (raw) messages: rows with no
    arrival to descend from."""
    async def handler(batch, env, ctx):
        await ctx.work(0.002)
        for m in batch.messages:
            await env.NOTES.send({"note": m.attempts})

    p = cdp.Pipeline("mixed")
    p.add_source("http", queue="jobs")
    p.add_queue("jobs", max_batch_size=5, max_batch_timeout=1)
    p.add_queue("notes", max_batch_size=10, max_batch_timeout=1)
    p.add_consumer("jobs", handler=handler, publish=["notes"])
    p.add_consumer("notes", service={"per_message": 0.001})
    return p


RUNS = {
    "retry-skew": lambda: cdp.simulate(retry_skew(), cdp.Poisson(rate=300), duration=20, seed=3),
    "retry-skew-python": lambda: cdp.simulate(retry_skew(), cdp.Poisson(rate=300), duration=20, seed=3,
                                              engine="python"),
    "undrained": lambda: cdp.simulate(retry_skew(), cdp.Poisson(rate=300), duration=20, seed=4, drain=False),
    "mixed-bodies": lambda: cdp.simulate(mixed_bodies(), cdp.Poisson(rate=50), duration=10, seed=1),
    "empty": lambda: cdp.simulate(retry_skew(), cdp.Poisson(rate=1), duration=1e-6, seed=1),
}


@pytest.fixture(scope="module", params=sorted(RUNS))
def run(request) -> tuple[str, cdp.Results]:
    return request.param, RUNS[request.param]()


@pytest.mark.parametrize("step", [7, 1 << 20])
def test_summary_and_end_to_end_are_the_whole_column_numbers(run, step, monkeypatch):
    name, res = run
    monkeypatch.setattr(results_module, "_STEP", step)
    for cached in ("_origin", "_end_to_end", "end_to_end"):
        res.__dict__.pop(cached, None)
    ledger = res.runtime.ledger
    if name == "mixed-bodies":      # the case it stands for: rows of no arrival
        assert 0 < np.count_nonzero(ledger.column("content_type") != ledger.type_code("raw")) < len(ledger)
    if name == "undrained":
        assert np.isnan(ledger.column("finished")).any()
    if name == "empty":
        assert len(ledger) == 0
    got, want = res.summary(), old_summary(res)
    assert list(got.index) == list(want)
    for key, value in want.items():
        assert got[key] == value or (np.isnan(got[key]) and np.isnan(value)), key
    for new, old in zip(res._end_to_end, old_end_to_end(res), strict=True):
        assert new.dtype == old.dtype and np.array_equal(new, old, equal_nan=True)
    origin = res._origin
    assert origin.dtype == np.int64 and np.array_equal(origin, old_origin(res))


def big_ledger(rows: int, deliveries: int) -> Ledger:
    """A ledger of more than a million rows and deliveries (several steps of its reading
    methods), on three queues, with every outcome and redeliveries."""
    rng = np.random.default_rng(5)
    led = Ledger(seed=1)
    sent = np.sort(rng.uniform(0, 1000, rows))
    queue_of = rng.integers(0, 3, rows).astype(np.uint16)
    queue_of[:3] = [0, 1, 2]        # codes in order of first row: a, b, c
    led.reserve(rows)               # written as the compiled engine writes (then finish_all thaws it)
    led.grown(rows, ["a", "b", "c"], "raw", np.full(rows, 100), {
        "payload": np.arange(rows), "failed": np.zeros(rows, np.int64), "outcome": np.zeros(rows, np.int8),
        "queue": queue_of, "timestamp": sent, "sent": sent.copy(), "finished": np.full(rows, np.nan)},
        np.zeros((0, 2), np.int64))
    for lo, hi, code in ((0, rows // 2, ACKED), (rows // 2, rows // 2 + 1000, DROPPED)):
        led.finish_all(list(range(lo, hi)), code, now=1000.0)
    sizes = rng.integers(1, 101, deliveries // 50)
    sizes = sizes[np.cumsum(sizes) <= deliveries]
    led.delivered_batches(rng.integers(0, rows, int(sizes.sum())), sizes, np.sort(rng.uniform(0, 2000, len(sizes))))
    return led


def test_ledger_reading_methods_in_steps_are_the_whole_column_numbers():
    led = big_ledger(1_200_000, 2_500_000)
    counts, first = led.deliveries()
    old_counts, old_first = old_deliveries(led)
    assert counts.dtype == old_counts.dtype and np.array_equal(counts, old_counts)
    assert np.array_equal(first, old_first, equal_nan=True)
    assert counts.max() > 1 and np.isnan(first).any()      # redeliveries, undelivered rows
    queue, outcome = led.column("queue").astype(np.int64), led.column("outcome")
    table = np.bincount(queue * 5 + outcome, minlength=15).reshape(3, 5)
    want = pd.DataFrame(table[:, [1, 2, 3, 4, 0]], index=pd.Index(["a", "b", "c"], name="queue"),
                        columns=["acked", "dead_lettered", "dropped", "rejected", "in_flight"])
    want.insert(0, "sent", table.sum(axis=1))
    pd.testing.assert_frame_equal(led.counts(), want, check_exact=True)
    led.add("a", "raw", [0], [1], [0.0], [0.0])     # the readers kept no view: the ledger grows


def test_frame_keeps_no_view_of_the_ledger():
    led = Ledger(seed=0)
    led.add("jobs", "text", ["a", "b"], [1, 1], [0.0, 0.5], [0.0, 0.5])
    frame = led.frame()
    led.add("jobs", "text", ["c"], [1], [1.0], [1.0])      # a view kept would refuse this
    frame.loc[0, "sent"] = 9.0                              # and the frame is its own
    assert led.column("sent").tolist() == [0.0, 0.5, 1.0]


def test_origins_read_a_payload_list_or_an_int64_array_alike():
    """The payload column is a list today (ints for spec rows, str/bytes for handler code) and
    may become an int64 array (longer than the ledger, grown ahead): the same origins."""
    led = Ledger(seed=0)
    led.add("jobs", "raw", [4, 0, 7], [1] * 3, [0.0] * 3, [0.0] * 3)
    led.add("notes", "json", ['{"a": 1}'], [1], [1.0], [1.0])
    led.add("jobs", "raw", [2], [1], [2.0], [2.0])
    want = [4, 0, 7, -1, 2]
    for start, stop in ((0, 5), (0, 3), (3, 5), (1, 2)):
        assert results_module._origins(led, start, stop).tolist() == want[start:stop]
    led.payload = np.array([4, 0, 7, 99, 2, 0, 0, 0], dtype=np.int64)   # a number on the JSON row
    for start, stop in ((0, 5), (0, 3), (3, 5), (1, 2)):
        got = results_module._origins(led, start, stop)
        assert got.dtype == np.int64 and got.tolist() == want[start:stop]
