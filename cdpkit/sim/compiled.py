"""The compiled engine: a spec pipeline's queue run in numba, event for event as the
reference runtime runs it.

The Python runtime is the reference semantics (DESIGN.md, "One semantics, proven"); this
engine repeats, for the pipelines it covers (:func:`not_covered` says which and why not),
exactly what the runtime's broker and a spec consumer do: the same events
(:class:`~cdpkit.runtime.queues.Queue`'s inflow wake-ups, the flushers' timers, batch
completions, retry landings, dead-letter landings, the timeline's samples) scheduled in the
same order, so that ties fall the same way; the same counter-based draws
(:mod:`cdpkit.sim.draws`); the autoscaler's arithmetic written as
:class:`~cdpkit.runtime.queues.Scaler` writes it. It fills the runtime's ledger, batch
records and queue state, so :class:`~cdpkit.sim.results.Results` reads a compiled run as a
Python one. ``tests/test_engine_property.py`` requires the two engines' ledgers, batches and
summaries to be identical on random covered pipelines.

Covered (first step): sources into one queue with a push spec consumer that computes
(base and per-message service, failures, poison, either retry policy), its dead letter
queue (if any) without a consumer, either semantics profile (autoscaled or every slot),
the throughput limit and message size limit at send, ``drain=True``, no fault timeline,
no trace. Anything else runs on the Python engine, with the reason in ``res.engine``.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import networkx as nx
import numpy as np

from .draws import SECOND

if TYPE_CHECKING:
    from ..model.pipeline import Pipeline
    from ..runtime.runtime import Runtime
    from .behaviour import SpecActors, SpecBodies

try:        # the compiled engine is optional: without numba every run uses the Python engine
    import numba
    from numba import njit
    HAVE_NUMBA = True
except ImportError:      # pragma: no cover - numba is a default dependency
    numba = None
    HAVE_NUMBA = False

    def njit(*args, **kwargs):
        return (lambda f: f) if not args or not callable(args[0]) else args[0]

# distribution kinds, as Dist.kind
DIST_KINDS = {"const": 0, "exp": 1, "uniform": 2, "normal": 3, "lognormal": 4}
# ledger outcome codes (cdpkit.runtime.ledger): in flight 0
ACKED, DEAD, DROPPED = 1, 2, 3
# why a compiled run gave up (then the Python engine runs it): the runtime handles these
ABORT_REASONS = {1: "a message outlived the retention period", 2: "a batch ran past the consumer wall time",
                 3: "the run's event budget", 4: "an actor past the Durable Object soft limit"}


def not_covered(pipeline: Pipeline, semantics: Any, faults: Any, trace: bool, drain: bool) -> str | None:
    """Why the compiled engine cannot run this simulation exactly (None: it can)."""
    if not HAVE_NUMBA:
        return "numba is not installed"
    if faults:
        return "a fault timeline"
    if trace:
        return "trace=True"
    if not drain:
        return "drain=False"
    g = pipeline.graph
    if len(pipeline.nodes("queue")) > 255:     # an event's queue is 8 bits of its code
        return "more than 255 queues"
    for node in pipeline.nodes("store"):
        return f"store {node!r}"
    for node in pipeline.nodes("actor"):
        spec = pipeline.spec(node)
        if spec.cls is not None:
            return f"actor {node!r} (code)"
        if spec.writes or spec.calls or spec.publish:
            return f"actor {node!r} (it writes, calls or publishes)"
    for node in pipeline.nodes("consumer"):
        spec, queue = pipeline.spec(node), g.nodes[node]["queue"]
        if spec.handler is not None:
            return f"handler code on {queue!r}"
        if spec.pull is not None:
            return f"the pull consumer of {queue!r}"
        if spec.routes or spec.writes or spec.parallel:
            return f"the consumer of {queue!r} routes, writes or runs in parallel"
    cycles = next(nx.simple_cycles(g), None)
    if cycles is not None:
        return f"a cycle ({' -> '.join(cycles)})"
    return None


# ---------------------------------------------------------------------------- draws


@njit(cache=True)
def _mix(x):
    x = x + np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


@njit(cache=True)
def _uniform(key, n):
    """draws.uniforms(key, n, 1)[0]"""
    return float(_mix(_mix(np.uint64(n) ^ key)) >> np.uint64(11)) * (2.0 ** -53)


@njit(cache=True)
def _draw(kind, a, b, key, k):
    """Dist.sample(rng) with rng at draw ``k`` of stream ``key``: (value, draws used)."""
    if kind == 0:
        return a, 0
    if kind == 1:
        if a > 0:
            return max((-a) * np.log1p(-_uniform(key, k)), 0.0), 1
        return 0.0, 0
    if kind == 2:
        return max(a + (b - a) * _uniform(key, k), 0.0), 1
    second = _uniform(key ^ np.uint64(SECOND), k)
    z = np.sqrt(-2.0 * np.log1p(-_uniform(key, k))) * np.cos(2.0 * math.pi * second)
    if kind == 3:
        return max(a + b * z, 0.0), 1
    if a > 0:
        return max(np.exp((math.log(a) - b * b / 2) + b * z), 0.0), 1
    return 0.0, 0


@njit(cache=True)
def _block_sum(x, lo, n):
    """numpy's pairwise summation of x[lo:lo+n] for n <= 128 (one block: eight running
    sums, then the rest)."""
    if n < 8:
        res = -0.0
        for i in range(lo, lo + n):
            res += x[i]
        return res
    r0, r1, r2, r3 = x[lo], x[lo + 1], x[lo + 2], x[lo + 3]
    r4, r5, r6, r7 = x[lo + 4], x[lo + 5], x[lo + 6], x[lo + 7]
    i = 8
    while i < n - (n % 8):
        r0 += x[lo + i]
        r1 += x[lo + i + 1]
        r2 += x[lo + i + 2]
        r3 += x[lo + i + 3]
        r4 += x[lo + i + 4]
        r5 += x[lo + i + 5]
        r6 += x[lo + i + 6]
        r7 += x[lo + i + 7]
        i += 8
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < n:
        res += x[lo + i]
        i += 1
    return res


@njit(cache=True)
def _np_sum(x, n):
    """float(x[:n].sum()) as numpy computes it, bit for bit, for n <= 256 (a batch holds
    at most 100 messages; numba cannot cache the recursive form numpy uses beyond)."""
    if n <= 128:
        return _block_sum(x, 0, n)
    half = n // 2
    half -= half % 8
    return _block_sum(x, 0, half) + _block_sum(x, half, n - half)


# ---------------------------------------------------------------------------- the kernel

# a queue's integer state QI[q, ...] and float state QF[q, ...]
(NXT, HEAD, TAIL, ARRIVED, HAS_WAITING, LANDING, RUNNING, WAKE_SEQ, HAS_WAKE, PENDING_SEQ, IMMEDIATE,
 F_RUNNING, TIMER_SEQ, DUE, LEVEL, N_BASE, N_PER, N_TRIAL, HAS_PER, SEEN_ARRIVED, BATCHES) = range(21)
(WAITING_SINCE, WAKE_TIME, RATE, SEEN, PER_MSG, FAILED_SHARE, CPU) = range(7)
# a queue's settings SI[q, ...] (ints) and SF[q, ...] (floats)
(SIZE, MAX_CONC, MAX_ATTEMPTS, DLQ, HAS_CONSUMER, PER_WINDOW, CALLS, PUB_LO, PUB_HI, RETRY_ALL,
 BASE_KIND, PER_KIND) = range(12)
(TIMEOUT, DELAY, RETENTION, BASE_A, BASE_B, PER_A, PER_B, TRANSIENT, POISON) = range(9)
# the run's counters G[...]
(SEQ, EVENTS, ABORT, ROWS, CALLS_MADE) = range(5)
# a call's columns CI[call, ...] (floats CF: arrived, started, finished)
(C_POOL, C_KEY, C_LEFT, C_BATCH, C_NEXT) = range(5)
# ledger columns LI[row, ...] (ints) and LF[row, ...] (floats)
(ORIGIN, FAILED, OUTCOME, REASON, ROWQ, SRC) = range(6)
(STAMP, FINISHED, SENT) = range(3)
# ledger drop reasons
NO_DLQ, DISCARDED, TOO_MANY = 1, 2, 3
REJECTED = 4     # the rejected outcome's code
# event kinds
_WAKE, _PENDING, _TIMER, _DONE, _LAND, _SAMPLE, _ENTRY, _EXIT = range(8)


@njit(cache=True)
def _push(heap, G, t, kind, q, arg):
    """clock.call_at: an event at ``t`` with the next sequence number."""
    G[SEQ] += 1
    heapq.heappush(heap, (t, G[SEQ], (np.int64(arg) << 12) | (np.int64(q) << 4) | np.int64(kind)))
    return G[SEQ]


@njit(cache=True)
def _buffer_put(bufs, QI, q, m):
    """Append ledger row ``m`` to queue ``q``'s buffer (a ring that doubles when full)."""
    buf = bufs[q]
    n = QI[q, TAIL] - QI[q, HEAD]
    if n == len(buf):
        bigger = np.empty(2 * len(buf), np.int64)
        for i in range(n):
            bigger[i] = buf[(QI[q, HEAD] + i) % len(buf)]
        QI[q, HEAD], QI[q, TAIL] = 0, n
        bufs[q] = bigger
        buf = bigger
    buf[QI[q, TAIL] % len(buf)] = m
    QI[q, TAIL] += 1


@njit(cache=True)
def _absorb(q, now, in_due, in_rows, in_lo, bufs, QI, QF, concurrent):
    """Queue.absorb: every known arrival up to now into the buffer."""
    lo, hi_all = in_lo[q], in_lo[q + 1]
    nxt = QI[q, NXT]
    if lo + nxt < hi_all and in_due[lo + nxt] <= now:
        hi = np.searchsorted(in_due[lo:hi_all], now, side="right")
        was_empty = QI[q, TAIL] == QI[q, HEAD]
        for i in range(nxt, hi):
            _buffer_put(bufs, QI, q, in_rows[lo + i])
        QI[q, ARRIVED] += hi - nxt
        if was_empty and concurrent:
            QF[q, WAITING_SINCE] = in_due[lo + nxt]
            QI[q, HAS_WAITING] = 1
        QI[q, NXT] = hi


@njit(cache=True)
def _rewake(q, in_due, in_lo, QI, QF, SI, SF, concurrent, heap, G):
    """Queue.rewake: the next wake-up, at the arrival that starts or fills a batch."""
    lo, n_in = in_lo[q], in_lo[q + 1] - in_lo[q]
    i, n, size = QI[q, NXT], QI[q, TAIL] - QI[q, HEAD], SI[q, SIZE]
    target, has_target = 0.0, False
    j = i + size - n - 1
    if n < size and j < n_in:
        target, has_target = in_due[lo + j], True
    if n == 0 and i < n_in:
        first = in_due[lo + i] + SF[q, TIMEOUT] if concurrent else in_due[lo + i]
        if not has_target or first < target:
            target = first
        has_target = True
    if has_target != (QI[q, HAS_WAKE] == 1) or (has_target and target != QF[q, WAKE_TIME]):
        QI[q, WAKE_SEQ] = _push(heap, G, target, _WAKE, q, 0) if has_target else -1
        QF[q, WAKE_TIME] = target
        QI[q, HAS_WAKE] = 1 if has_target else 0


@njit(cache=True)
def _flush(q, now, bufs, QI, QF, SI, SF, keys, delays, LI, LF, per_x, heap, G, B):
    """Queue.flush, then SpecConsumer.start: cut a batch from the front of queue ``q``'s
    buffer, draw its service time and failures, schedule its end. False if it was empty."""
    b_rows, b_lo, b_start, b_end, b_queue, b_fail_lo, fails, fail_delay, b_retry_all, b_delay_all = B
    take = min(SI[q, SIZE], QI[q, TAIL] - QI[q, HEAD])
    if take == 0:
        return False
    buf = bufs[q]
    retention = SF[q, RETENTION]
    lo = len(b_rows)
    for k in range(take):
        m = buf[(QI[q, HEAD] + k) % len(buf)]
        if now - retention > 0 and LF[m, STAMP] < now - retention:
            G[ABORT] = 1
        b_rows.append(m)
    QI[q, HEAD] += take
    b_lo.append(len(b_rows))
    QI[q, RUNNING] += 1
    QI[q, BATCHES] += 1
    b = len(b_start)
    b_start.append(now)
    b_end.append(np.nan)
    b_queue.append(q)
    bv, used = _draw(SI[q, BASE_KIND], SF[q, BASE_A], SF[q, BASE_B], keys[q, 0], QI[q, N_BASE])
    QI[q, N_BASE] += used
    if SI[q, PER_KIND] == 0:
        cpu = bv + SF[q, PER_A] * take
    else:
        for k in range(take):
            pv, used = _draw(SI[q, PER_KIND], SF[q, PER_A], SF[q, PER_B], keys[q, 1], QI[q, N_PER])
            QI[q, N_PER] += used
            per_x[k] = pv
        cpu = bv + _np_sum(per_x, take)
    transient, poison = SF[q, TRANSIENT], SF[q, POISON]
    retry_all, last = False, np.int64(-1)
    for k in range(take):
        m = b_rows[lo + k]
        hit = transient > 0 and _uniform(keys[q, 2], QI[q, N_TRIAL] + k) < transient
        if not hit and poison > 0:
            hit = _uniform(keys[q, 3], LI[m, ORIGIN]) < poison
        if hit:
            d = delays[q, LI[m, FAILED] + 1]
            fails.append(k)
            fail_delay.append(d)
            last = d
            if SI[q, RETRY_ALL] == 1:
                retry_all = True
    if transient > 0:
        QI[q, N_TRIAL] += take
    b_fail_lo.append(len(fails))
    b_retry_all.append(retry_all)
    b_delay_all.append(last if retry_all else np.int64(-1))
    QF[q, CPU] += cpu
    _push(heap, G, now + cpu, _DONE, q, b)
    return True


@njit(cache=True)
def _new_rows(LI, LF, G, q, n, now):
    """``n`` ledger rows for messages entering queue ``q`` now (the columns double when
    full); returns the columns and the first row. The caller fills in origin and stamp."""
    lo = G[ROWS]
    if lo + n > LI.shape[0]:
        size = max(2 * LI.shape[0], lo + n)
        bigger_i, bigger_f = np.zeros((size, LI.shape[1]), np.int64), np.full((size, LF.shape[1]), np.nan)
        bigger_i[:lo] = LI[:lo]
        bigger_f[:lo] = LF[:lo]
        LI, LF = bigger_i, bigger_f
    for r in range(lo, lo + n):
        LI[r, ROWQ] = q
        LI[r, SRC] = -1
        LF[r, SENT] = now
    G[ROWS] = lo + n
    return LI, LF, lo


@njit(cache=True)
def _land_group(heap, G, QI, q, now, delay, lo, hi, land_lo, land_rows):
    """The broker's ``_enqueue``: rows ``lo..hi-1`` land in queue ``q`` after ``delay``."""
    for r in range(lo, hi):
        land_rows.append(r)
    land_lo.append(len(land_rows))
    QI[q, LANDING] += hi - lo
    _push(heap, G, now + delay, _LAND, q, len(land_lo) - 2)


@njit(cache=True)
def _call(a, left, batch, now, P, pkeys, cumulative, busy, w_head, w_tail, tats, CI, CF, p_picks, p_waiting,
          p_holding, period, heap, G):
    """SpecActors._enter: a call to pool ``a`` (its next picked key) arrives now; it enters
    the instance's gate (an entry event now) or waits behind the call holding it. Past the
    soft limit it would be held: the kernel gives the run back (ABORT 4)."""
    lo, n = P[a, 1], P[a, 0]
    u = _uniform(pkeys[a, 0], p_picks[a])
    p_picks[a] += 1
    k = np.searchsorted(cumulative[lo:lo + n], u, side="right")
    if k > n - 1:
        k = n - 1
    c = G[CALLS_MADE]
    if c == CI.shape[0]:                              # the call columns double when full
        CI, CF = np.concatenate((CI, np.zeros_like(CI))), np.concatenate((CF, np.zeros_like(CF)))
    G[CALLS_MADE] = c + 1
    CI[c, C_POOL], CI[c, C_KEY], CI[c, C_LEFT], CI[c, C_BATCH], CI[c, C_NEXT] = a, k, left, batch, -1
    CF[c, 0] = CF[c, 1] = CF[c, 2] = now              # arrived, started, finished
    i = lo + k
    if period > 0:                                    # the soft limit: admission()
        tat = (tats[i] if tats[i] > now else now) + period
        tats[i] = tat
        if tat - now - 1.0 > 0:
            G[ABORT] = 4
            return CI, CF
    if busy[i]:
        if w_tail[i] >= 0:
            CI[w_tail[i], C_NEXT] = c
        else:
            w_head[i] = c
        w_tail[i] = c
        p_waiting[a] += 1
    else:
        busy[i] = True
        p_holding[a] += 1
        _push(heap, G, now, _ENTRY, 0, c)
    return CI, CF


@njit(cache=True)
def _engine(fed, in_due, in_rows, in_lo, row_origin, row_stamp, row_queue, row_outcome, row_finished, SI, SF,
            keys, delays,
            pub, gi, gf, sends_init, P, PF, pkeys, cumulative):
    """Every queue, spec consumer and service-only spec actor of a covered pipeline, as the
    runtime runs them (see the module's docstring). Arguments: the queues' known arrivals
    (``in_due``/``in_rows`` from ``in_lo[q]``), the ledger so far, the queues' settings
    (``SI``, ``SF``), stream keys and retry delays, publish targets, global settings
    (``gi``: concurrent, autoscale, start, step_up, step_down, memory, max events,
    discard; ``gf``: rate window, drain seconds, wall, sample step, duration, throughput
    window, actor period (0: no soft limit)), the sends already counted per throughput
    window, and the pools (``P[a]``: instances, first instance, service kind; ``PF[a]``:
    service a, b; ``pkeys[a]``: key and service stream keys; ``cumulative``: key weights)."""
    nq, na = SI.shape[0], P.shape[0]
    concurrent, autoscale = gi[0] == 1, gi[1] == 1
    step_up, step_down, max_events, discard = gi[3], gi[4], gi[6], gi[7] == 1
    window, drain_s, wall, step, duration, rate_window, period = gf[0], gf[1], gf[2], gf[3], gf[4], gf[5], gf[6]
    k_weight = 1.0 / gi[5]
    G = np.zeros(5, np.int64)
    QI = np.zeros((nq, 21), np.int64)
    QF = np.zeros((nq, 7), np.float64)
    for q in range(nq):
        QI[q, WAKE_SEQ] = QI[q, PENDING_SEQ] = QI[q, TIMER_SEQ] = -1
        QI[q, LEVEL] = min(gi[2], SI[q, MAX_CONC])
    bufs = [np.empty(16, np.int64) for _ in range(nq)]
    # the ledger: rows so far, then the rows sends and dead letters add
    n0 = len(row_origin)
    LI = np.zeros((2 * n0 + 1024, 6), np.int64)       # origin, failed, outcome, reason, queue, copied from
    LF = np.full((2 * n0 + 1024, 3), np.nan)          # stamp, finished, sent
    LI[:n0, ORIGIN], LI[:n0, OUTCOME], LI[:n0, ROWQ], LI[:n0, SRC] = row_origin, row_outcome, row_queue, -1
    LF[:n0, STAMP], LF[:n0, FINISHED], LF[:n0, SENT] = row_stamp, row_finished, row_stamp
    G[ROWS] = n0
    B = ([np.int64(0)][:0], [np.int64(0)], [0.0][:0], [0.0][:0], [np.int64(0)][:0], [np.int64(0)],
         [np.int64(0)][:0], [np.int64(0)][:0], [False][:0], [np.int64(0)][:0])
    b_rows, b_lo, b_start, b_end, b_queue, b_fail_lo, fails, fail_delay, b_retry_all, b_delay_all = B
    b_counts, done_order = [np.int64(0)][:0], [np.int64(0)][:0]
    land_rows, land_lo = [np.int64(0)][:0], [np.int64(0)]
    samples = [0.0][:0]
    lv_q, lv_t, lv_v = [np.int64(0)][:0], [0.0][:0], [np.int64(0)][:0]
    sends = {np.int64(0): np.int64(0)}       # (window * nq + q) -> messages sent in that window
    sends.clear()
    for i in range(sends_init.shape[0]):
        sends[sends_init[i, 1] * nq + sends_init[i, 0]] = sends_init[i, 2]
    per_x = np.empty(128, np.float64)
    d_vals, d_rows, d_of = [np.int64(0)][:0], [np.int64(0)][:0], [np.int64(0)][:0]
    dead = [np.int64(0)][:0]
    counts = np.zeros(4, np.int64)
    # pools: instances' gates (busy, FIFO of waiting calls through c_next), calls
    n_inst = 0
    for a in range(na):
        n_inst += P[a, 0]
    busy = np.zeros(max(n_inst, 1), np.bool_)
    w_head = np.full(max(n_inst, 1), -1, np.int64)
    w_tail = np.full(max(n_inst, 1), -1, np.int64)
    tats = np.zeros(max(n_inst, 1), np.float64)
    CI = np.zeros((1024, 5), np.int64)                # calls: pool, key, calls left, batch, next waiting
    CF = np.zeros((1024, 3), np.float64)              # calls: arrived, started, finished
    p_picks = np.zeros(max(na, 1), np.int64)
    p_draws = np.zeros(max(na, 1), np.int64)
    p_busy_s = np.zeros(max(na, 1), np.float64)
    p_waiting = np.zeros(max(na, 1), np.int64)
    p_holding = np.zeros(max(na, 1), np.int64)
    heap = [(0.0, np.int64(0), np.int64(0))][:0]      # (time, seq, arg << 12 | queue << 4 | kind)
    cancelled = {np.int64(-1)}                        # SingleFlush pendings cancelled (by seq)

    # simulate: each fed queue's attach_inflow (a rewake), in feeding order, then _sample's call_at(0.0)
    for q in fed:
        _rewake(q, in_due, in_lo, QI, QF, SI, SF, concurrent, heap, G)
    _push(heap, G, 0.0, _SAMPLE, 0, 0)
    now = 0.0
    while len(heap) > 0:
        t, s, code = heapq.heappop(heap)
        kind, q, arg = code & 15, (code >> 4) & 255, code >> 12
        if (kind == _WAKE and s != QI[q, WAKE_SEQ]) or (kind == _PENDING and s in cancelled) or (
                kind == _TIMER and s != QI[q, TIMER_SEQ]):
            continue                                  # cancelled
        now = t
        G[EVENTS] += 1
        if G[EVENTS] > max_events:
            G[ABORT] = 3
            break
        finished_batch = -1                           # a batch whose handler returns now
        landed = rewake = False
        if kind == _WAKE:                             # land(()): absorb, landed, rewake
            _absorb(q, now, in_due, in_rows, in_lo, bufs, QI, QF, concurrent)
            landed = SI[q, HAS_CONSUMER] == 1
            rewake = True
        elif kind == _LAND:                           # _land(rows): land them
            lo, hi = land_lo[arg], land_lo[arg + 1]
            QI[q, LANDING] -= hi - lo
            _absorb(q, now, in_due, in_rows, in_lo, bufs, QI, QF, concurrent)
            if SI[q, HAS_CONSUMER] == 0 and discard:  # wrangler dev forgets what has no consumer
                for i in range(lo, hi):
                    m = land_rows[i]
                    LI[m, OUTCOME], LF[m, FINISHED], LI[m, REASON] = DROPPED, now, DISCARDED
            else:
                for i in range(lo, hi):
                    _buffer_put(bufs, QI, q, land_rows[i])
                QI[q, ARRIVED] += hi - lo
            landed = SI[q, HAS_CONSUMER] == 1
            rewake = True
        elif kind == _PENDING:                        # SingleFlush._fire
            _absorb(q, now, in_due, in_rows, in_lo, bufs, QI, QF, concurrent)
            if QI[q, TAIL] - QI[q, HEAD] >= SI[q, SIZE]:
                QI[q, IMMEDIATE] = 1
            if not _flush(q, now, bufs, QI, QF, SI, SF, keys, delays, LI, LF, per_x, heap, G, B):
                QI[q, PENDING_SEQ] = -1               # an empty flush: finished (the buffer is empty)
            rewake = True
        elif kind == _TIMER:                          # ConcurrentFlush._expire
            QI[q, TIMER_SEQ] = -1
            QI[q, DUE] = 1
            _absorb(q, now, in_due, in_rows, in_lo, bufs, QI, QF, concurrent)
            landed = rewake = True
        elif kind == _SAMPLE:                         # simulate._sample
            samples.append(now)
            for r in range(nq):
                _absorb(r, now, in_due, in_rows, in_lo, bufs, QI, QF, concurrent)
                samples.append(float(QI[r, TAIL] - QI[r, HEAD]))
                samples.append(float(QI[r, LANDING]))
                samples.append(float(QI[r, RUNNING]))
                samples.append(float((QI[r, LEVEL] if autoscale else SI[r, MAX_CONC]) if concurrent else 1))
            for a in range(na):
                samples.append(float(p_waiting[a]))
                samples.append(float(p_holding[a]))
            while len(heap) > 0:                      # clock.peek: drop cancelled entries
                s2, code = heap[0][1], heap[0][2]
                k2, q2 = code & 15, (code >> 4) & 255
                if (k2 == _WAKE and s2 != QI[q2, WAKE_SEQ]) or (k2 == _PENDING and s2 in cancelled) or (
                        k2 == _TIMER and s2 != QI[q2, TIMER_SEQ]):
                    heapq.heappop(heap)
                else:
                    break
            if now + step <= duration or len(heap) > 0:
                _push(heap, G, now + step, _SAMPLE, 0, 0)
            continue
        elif kind == _DONE:                           # SpecConsumer._downstream
            b = arg
            lo, hi = b_lo[b], b_lo[b + 1]
            n_acked = 0
            if not b_retry_all[b]:
                fl, fh = b_fail_lo[b], b_fail_lo[b + 1]
                n_acked = (hi - lo) - (fh - fl)
            if n_acked:
                origins = np.empty(n_acked, np.int64)
                f, j = b_fail_lo[b], 0
                for k in range(hi - lo):
                    if f < b_fail_lo[b + 1] and fails[f] == k:
                        f += 1
                        continue
                    origins[j] = LI[b_rows[lo + k], ORIGIN]
                    j += 1
                for p in range(SI[q, PUB_LO], SI[q, PUB_HI]):   # publish: sendBatch calls of 100
                    target = pub[p]
                    for c in range(0, n_acked, 100):
                        chunk = origins[c:c + 100]
                        LI, LF, first = _new_rows(LI, LF, G, target, len(chunk), now)
                        for i in range(len(chunk)):
                            LI[first + i, ORIGIN] = chunk[i]
                            LF[first + i, STAMP] = now
                        last = first + len(chunk)
                        per_window = SI[target, PER_WINDOW]
                        if per_window >= 0:           # Queue.enqueue's throughput limit
                            w = np.int64(now // rate_window) * nq + target
                            sent = sends.get(w, 0)
                            if sent + len(chunk) > per_window:
                                fits = per_window - sent if per_window > sent else 0
                                for m in range(first + fits, last):
                                    LI[m, OUTCOME], LF[m, FINISHED], LI[m, REASON] = REJECTED, now, TOO_MANY
                                last = first + fits
                            sends[w] = sent + (last - first)
                            if last == first:
                                continue
                        _land_group(heap, G, QI, target, now, SF[target, DELAY], first, last, land_lo, land_rows)
                a = SI[q, CALLS]
                if a >= 0:                            # call_each: the first call now
                    CI, CF = _call(a, n_acked - 1, b, now, P, pkeys, cumulative, busy, w_head, w_tail, tats, CI, CF,
                                   p_picks, p_waiting, p_holding, period, heap, G)
                    if G[ABORT]:
                        break
                    continue
            finished_batch = b
        elif kind == _ENTRY:                          # a call gets its instance's gate
            c = arg
            a = CI[c, C_POOL]
            CF[c, 1] = now
            seconds, used = _draw(P[a, 2], PF[a, 0], PF[a, 1], pkeys[a, 1], p_draws[a])
            p_draws[a] += used
            p_busy_s[a] += seconds
            _push(heap, G, now + seconds, _EXIT, q, c)
            continue
        else:                                         # _EXIT: the call is done; Gate.leave
            c = arg
            a = CI[c, C_POOL]
            CF[c, 2] = now
            k = P[a, 1] + CI[c, C_KEY]
            nxt_call = w_head[k]
            if nxt_call >= 0:                         # the next waiting call gets the gate now
                w_head[k] = CI[nxt_call, C_NEXT]
                if w_head[k] < 0:
                    w_tail[k] = -1
                p_waiting[a] -= 1
                _push(heap, G, now, _ENTRY, q, nxt_call)
            else:
                busy[k] = False
                p_holding[a] -= 1
            if CI[c, C_LEFT] > 0:                     # the caller's next call, at once
                CI, CF = _call(a, CI[c, C_LEFT] - 1, CI[c, C_BATCH], now, P, pkeys, cumulative, busy, w_head,
                               w_tail, tats, CI, CF, p_picks, p_waiting, p_holding, period, heap, G)
                if G[ABORT]:
                    break
                continue
            finished_batch = CI[c, C_BATCH]
            q = b_queue[finished_batch]
        if finished_batch >= 0:                       # Queue._batch_done
            b = finished_batch
            QI[q, RUNNING] -= 1
            lo, hi = b_lo[b], b_lo[b + 1]
            started, n = b_start[b], hi - lo
            if now - started > wall:
                G[ABORT] = 2
                break
            fl, fh = b_fail_lo[b], b_fail_lo[b + 1]
            counts[:] = 0
            dead.clear()
            if fh == fl:
                for i in range(lo, hi):
                    LI[b_rows[i], OUTCOME] = ACKED
                    LF[b_rows[i], FINISHED] = now
                counts[0] = n
            else:
                retry_all = b_retry_all[b]
                d_vals.clear()
                d_rows.clear()
                d_of.clear()
                f = fl
                for j in range(n):
                    m = b_rows[lo + j]
                    again, delay = retry_all, b_delay_all[b]
                    if not retry_all and f < fh and fails[f] == j:
                        again, delay = True, fail_delay[f]
                        f += 1
                    if not again:
                        LI[m, OUTCOME], LF[m, FINISHED] = ACKED, now
                        counts[0] += 1
                        continue
                    LI[m, FAILED] += 1
                    if LI[m, FAILED] < SI[q, MAX_ATTEMPTS]:
                        v = 0
                        while v < len(d_vals) and d_vals[v] != delay:
                            v += 1
                        if v == len(d_vals):
                            d_vals.append(delay)
                        d_rows.append(m)
                        d_of.append(v)
                        counts[1] += 1
                    elif SI[q, DLQ] >= 0:
                        LI[m, OUTCOME], LF[m, FINISHED] = DEAD, now
                        dead.append(m)
                        counts[2] += 1
                    else:
                        LI[m, OUTCOME], LF[m, FINISHED], LI[m, REASON] = DROPPED, now, NO_DLQ
                        counts[3] += 1
                for v in range(len(d_vals)):          # a landing per delay, in first-seen order
                    for r in range(len(d_rows)):
                        if d_of[r] == v:
                            land_rows.append(d_rows[r])
                    land_lo.append(len(land_rows))
                    QI[q, LANDING] += land_lo[len(land_lo) - 1] - land_lo[len(land_lo) - 2]
                    _push(heap, G, now + d_vals[v], _LAND, q, len(land_lo) - 2)
            for c in range(4):
                b_counts.append(counts[c])
            b_end[b] = now
            done_order.append(b)
            _absorb(q, now, in_due, in_rows, in_lo, bufs, QI, QF, concurrent)
            if autoscale:                             # Scaler.decide, operation for operation
                dt = now - QF[q, SEEN]
                weight = -math.expm1(-dt / window)
                if weight > 0:
                    rate = QF[q, RATE]
                    QF[q, RATE] = rate + (weight / dt * (QI[q, ARRIVED] - QI[q, SEEN_ARRIVED]) - weight * rate)
                    QF[q, SEEN] = now
                    QI[q, SEEN_ARRIVED] = QI[q, ARRIVED]
                sample = (now - started) / (n if n > 1 else 1)
                if QI[q, HAS_PER] == 0:
                    QF[q, PER_MSG] = sample
                    QI[q, HAS_PER] = 1
                else:
                    QF[q, PER_MSG] = QF[q, PER_MSG] + k_weight * (sample - QF[q, PER_MSG])
                QF[q, FAILED_SHARE] = QF[q, FAILED_SHARE] + k_weight * (False - QF[q, FAILED_SHARE])
                need = (QF[q, RATE] + (QI[q, TAIL] - QI[q, HEAD]) / drain_s) * QF[q, PER_MSG] * (
                    1.0 - QF[q, FAILED_SHARE])
                target = math.ceil(need - 1e-9)
                level = QI[q, LEVEL]
                if target != level:
                    target = min(max(target, 1), SI[q, MAX_CONC])
                    new = level
                    if target > level:
                        new = min(target, level + step_up)
                    elif target < level:
                        new = max(target, level - step_down)
                    if new != level:
                        QI[q, LEVEL] = new
                        lv_q.append(q)
                        lv_t.append(now)
                        lv_v.append(new)
            if concurrent:                            # flusher.finished
                QI[q, F_RUNNING] -= 1
                landed = True
            else:
                QI[q, PENDING_SEQ] = -1
                landed = QI[q, TAIL] > QI[q, HEAD]
            rewake = True
        if landed and concurrent:                     # ConcurrentFlush.landed
            has_since = QI[q, HAS_WAITING] == 1
            since = QF[q, WAITING_SINCE]
            QI[q, HAS_WAITING] = 0
            if has_since and QI[q, TIMER_SEQ] < 0 and since + SF[q, TIMEOUT] <= now:
                QI[q, DUE] = 1
            cap = QI[q, LEVEL] if autoscale else SI[q, MAX_CONC]
            while QI[q, TAIL] > QI[q, HEAD] and QI[q, F_RUNNING] < cap and (
                    QI[q, DUE] == 1 or QI[q, TAIL] - QI[q, HEAD] >= SI[q, SIZE]):
                QI[q, DUE] = 0
                has_since = False
                QI[q, TIMER_SEQ] = -1
                QI[q, F_RUNNING] += 1
                _flush(q, now, bufs, QI, QF, SI, SF, keys, delays, LI, LF, per_x, heap, G, B)
            if QI[q, TAIL] == QI[q, HEAD]:
                QI[q, DUE] = 0
            elif QI[q, TIMER_SEQ] < 0 and QI[q, DUE] == 0:
                QI[q, TIMER_SEQ] = _push(heap, G, (since if has_since else now) + SF[q, TIMEOUT], _TIMER, q, 0)
        elif landed:                                  # SingleFlush.landed
            has_space = QI[q, TAIL] - QI[q, HEAD] < SI[q, SIZE]
            if QI[q, PENDING_SEQ] < 0 or not (QI[q, IMMEDIATE] == 1 or has_space):
                if QI[q, PENDING_SEQ] >= 0:           # clock.cancel(self.pending): only here. (finished()
                    cancelled.add(QI[q, PENDING_SEQ])     # forgets a pending without cancelling it: it fires)
                delay = SF[q, TIMEOUT] if has_space else 0.0
                QI[q, PENDING_SEQ] = _push(heap, G, now + delay, _PENDING, q, 0)
                QI[q, IMMEDIATE] = 1 if delay == 0 else 0
        if rewake:
            _rewake(q, in_due, in_lo, QI, QF, SI, SF, concurrent, heap, G)
        if finished_batch >= 0 and len(dead):         # receive_dead_letters, after the rest
            d = SI[q, DLQ]
            LI, LF, first = _new_rows(LI, LF, G, d, len(dead), now)
            for i in range(len(dead)):             # Ledger.copy_to: the same body and timestamp
                LI[first + i, ORIGIN] = LI[dead[i], ORIGIN]
                LI[first + i, SRC] = dead[i]
                LF[first + i, STAMP] = LF[dead[i], STAMP]
            _land_group(heap, G, QI, d, now, SF[d, DELAY], first, first + len(dead), land_lo, land_rows)
        if G[ABORT]:
            break
    buffered = [np.int64(0)][:0]                      # what is left in queues without a consumer
    buffered_q = [np.int64(0)][:0]
    for q in range(nq):
        buf = bufs[q]
        for i in range(QI[q, HEAD], QI[q, TAIL]):
            buffered.append(buf[i % len(buf)])
            buffered_q.append(q)
    sends_out = np.empty((len(sends), 3), np.int64)
    i = 0
    for w, count in sends.items():
        sends_out[i, 0], sends_out[i, 1], sends_out[i, 2] = w % nq, w // nq, count
        i += 1
    n = G[ROWS]
    return (G, QI, QF, now, LI[:n, FAILED].copy(), LI[:n, OUTCOME].copy(), LF[:n, FINISHED].copy(),
            LI[:n, REASON].copy(), LI[:n, ORIGIN].copy(), LF[:n, STAMP].copy(), LF[:n, SENT].copy(),
            LI[:n, SRC].copy(), LI[:n, ROWQ].copy(),
            np.array(b_rows), np.array(b_lo), np.array(b_start), np.array(b_end), np.array(b_queue),
            np.array(b_retry_all), np.array(b_counts), np.array(done_order), np.array(samples),
            np.array(lv_q), np.array(lv_t), np.array(lv_v), sends_out, np.array(buffered), np.array(buffered_q),
            CI[:G[CALLS_MADE], C_POOL].copy(), CI[:G[CALLS_MADE], C_KEY].copy(), CF[:G[CALLS_MADE], 0].copy(),
            CF[:G[CALLS_MADE], 1].copy(), CF[:G[CALLS_MADE], 2].copy(),
            p_busy_s, tats, busy)




# ---------------------------------------------------------------------------- the glue


def run(rt: Runtime, pipeline: Pipeline, admitted: dict[str, tuple[list[float], Sequence[int]]],
        pools: dict[str, SpecActors], bodies: SpecBodies, timeline: list, duration: float, step: float,
        max_events: int) -> str | None:
    """Run the covered pipeline built in ``rt`` with the kernel, its queues fed as simulate's
    ``_admit`` admitted them (``admitted``: queue -> (landing times, rows), in feeding order),
    and write what happened into ``rt`` as its own broker, consumers and pools would have:
    the ledger, the batch records, the queues' and pools' state, the consumers' CPU time, the
    clock, and ``timeline``'s samples. Returns None, or why the run was given up (nothing is
    written then: the caller runs it on the Python engine)."""
    sem, ledger = rt.semantics, rt.ledger
    names = list(rt.queues)
    index = {name: q for q, name in enumerate(names)}
    pool_index = {id(pool): a for a, pool in enumerate(pools.values())}
    nq = len(names)
    # the queues' known arrivals, in queue order
    in_due, in_rows, in_lo = [], [], [0]
    for name in names:
        due, rows = admitted.get(name, ([], []))
        in_due.extend(due)
        in_rows.extend(rows)
        in_lo.append(len(in_due))
    fed = np.array([index[name] for name in admitted], dtype=np.int64)
    # the queues' settings and their consumers' specs
    attempts = max((q.settings.max_retries + 1 for q in rt.queues.values()), default=1)
    SI = np.zeros((nq, 12), np.int64)
    SF = np.zeros((nq, 9), np.float64)
    keys = np.zeros((nq, 4), np.uint64)
    delays = np.zeros((nq, attempts + 1), np.int64)
    pub: list[int] = []
    for q, queue in enumerate(rt.queues.values()):
        settings, consumer = queue.settings, queue.consumer
        dlq = settings.dead_letter_queue
        SI[q, [SIZE, MAX_CONC, MAX_ATTEMPTS, DLQ, PER_WINDOW]] = (
            settings.max_batch_size, settings.max_concurrency, settings.max_retries + 1,
            -1 if dlq is None else index[dlq], -1 if queue._per_window is None else queue._per_window)
        SF[q, [TIMEOUT, DELAY, RETENTION]] = (settings.max_batch_timeout, queue.delivery_delay or 0,
                                              math.inf if queue.retention is None else queue.retention)
        SI[q, CALLS] = -1
        if consumer is None:
            continue
        spec = consumer.spec
        SI[q, HAS_CONSUMER] = 1
        SI[q, PUB_LO] = len(pub)
        pub.extend(index[target] for target in spec.publish)
        SI[q, PUB_HI] = len(pub)
        if consumer.simple_pool is not None:
            SI[q, CALLS] = pool_index[id(consumer.simple_pool)]
        SI[q, [RETRY_ALL, BASE_KIND, PER_KIND]] = (spec.retry.mode == "retry_all", DIST_KINDS[spec.base.kind],
                                                   DIST_KINDS[spec.per_message.kind])
        SF[q, [BASE_A, BASE_B, PER_A, PER_B, TRANSIENT, POISON]] = (
            spec.base.a, spec.base.b, spec.per_message.a, spec.per_message.b,
            consumer.transient.p if consumer.transient else 0.0, consumer.poison_share)
        keys[q] = (consumer.rng.key, consumer.per_rng.key,
                   consumer.transient.rng.key if consumer.transient else 0, consumer.poison_key)
        delays[q, 1:settings.max_retries + 2] = [spec.retry.delay(a) for a in range(1, settings.max_retries + 2)]
    scaler_policy = sem.autoscaling if sem.concurrent_consumers else None
    gi = np.array([sem.concurrent_consumers, scaler_policy is not None] + (
        [scaler_policy.start, scaler_policy.step_up, scaler_policy.step_down, scaler_policy.memory]
        if scaler_policy else [1, 1, 1, 1]) + [max_events, sem.discard_without_consumer], dtype=np.int64)
    rate = sem.actor_requests_per_second
    gf = np.array([scaler_policy.rate_window if scaler_policy else 1.0,
                   scaler_policy.drain_seconds if scaler_policy else 1.0,
                   math.inf if sem.consumer_wall_seconds is None else sem.consumer_wall_seconds,
                   step, duration, sem.queue_rate_window, 0.0 if rate is None else 1 / rate], dtype=np.float64)
    sends_init = np.array([(index[name], w, c) for name, queue in rt.queues.items() for w, c in queue.sends.items()],
                          dtype=np.int64).reshape(-1, 3)
    # the pools: instances, key weights, stream keys, service distributions
    P = np.zeros((len(pools), 3), np.int64)
    PF = np.zeros((len(pools), 2), np.float64)
    pkeys = np.zeros((len(pools), 2), np.uint64)
    cumulative = [np.zeros(0)]
    first = 0
    for a, pool in enumerate(pools.values()):
        service = pool.spec.service
        P[a] = (pool.spec.instances, first, DIST_KINDS[service.kind])
        PF[a] = (service.a, service.b)
        pkeys[a] = (pool.picker.rng.key, pool.service_rng.key)
        cumulative.append(pool.picker.cumulative)
        first += pool.spec.instances
    # the ledger so far (the workload's arrivals)
    n0 = len(ledger)
    queue_of = np.array([index[name] for name in ledger._queue_names] or [0], dtype=np.int64)
    out = _engine(fed, np.array(in_due, dtype=np.float64), np.array(in_rows, dtype=np.int64),
                  np.array(in_lo, dtype=np.int64), np.array(ledger.payload, dtype=np.int64),
                  np.frombuffer(ledger.timestamp, dtype=np.float64)[:n0].copy(),
                  queue_of[np.frombuffer(ledger.queue, dtype=np.uint16)[:n0]],
                  np.frombuffer(ledger.outcome, dtype=np.int8)[:n0].astype(np.int64),
                  np.frombuffer(ledger.finished, dtype=np.float64)[:n0].copy(),
                  SI, SF, keys, delays, np.array(pub, dtype=np.int64), gi, gf, sends_init, P, PF, pkeys,
                  np.concatenate(cumulative))
    if out[0][ABORT]:
        return ABORT_REASONS[int(out[0][ABORT])]
    _write_back(rt, names, pools, bodies, timeline, duration, out)
    return None


def _write_back(rt: Runtime, names: list[str], pools: dict[str, SpecActors], bodies: SpecBodies,
                timeline: list, duration: float, out: tuple) -> None:
    """What the kernel did, into the runtime's own structures (see :func:`run`)."""
    (G, QI, QF, now, failed, outcome, finished, reason, origin, stamp, sent, src, row_queue, b_rows, b_lo, b_start,
     b_end, b_queue, b_retry_all, b_counts, done_order, samples, lv_q, lv_t, lv_v, sends, buffered, buffered_q,
     c_pool, c_key, c_arrived, c_started, c_finished, p_busy_s, tats, busy) = out
    sem, ledger, queues = rt.semantics, rt.ledger, list(rt.queues.values())
    # rows the run added, in the order it added them: sends, and dead letters' copies
    n0 = len(ledger)
    if len(origin) > n0:
        block = slice(n0, len(origin))
        ledger.add_block(names, row_queue[block], "raw", origin[block].tolist(),
                         np.asarray(bodies.sizes, dtype=np.int64)[origin[block]], stamp[block], sent[block], src[block])
    n = len(ledger)
    np.frombuffer(ledger.failed, dtype=np.int64)[:n] = failed
    np.frombuffer(ledger.outcome, dtype=np.int8)[:n] = outcome
    np.frombuffer(ledger.finished, dtype=np.float64)[:n] = finished
    rate = sem.queue_messages_per_second
    queue_codes = np.frombuffer(ledger.queue, dtype=np.uint16)[:n]
    code_queue = [names.index(name) for name in ledger._queue_names]
    for code, why in ((NO_DLQ, None), (DISCARDED, "no consumer (wrangler dev discards)"),
                      (TOO_MANY, f"Too Many Requests: over {rate or 0:,.0f} messages per second")):
        for row in np.flatnonzero(reason == code).tolist():
            if why is None:
                attempts = queues[code_queue[queue_codes[row]]].settings.max_retries + 1
                ledger.drop_reasons[row] = f"failed {attempts} attempts, no dead letter queue"
            else:
                ledger.drop_reasons[row] = why
    # batches: delivered in start order (ids in that order), recorded in finish order
    first_id = rt.next_batch_id()
    rt._batch_seq += len(b_start) - 1          # ids first_id .. first_id + batches - 1
    sizes = np.diff(b_lo)
    ledger.delivered_batches(b_rows, sizes, b_start)
    order = done_order
    counts = b_counts.reshape(-1, 4)
    queue_names = np.array(names, dtype=object)
    rt.recorder.batches_finished({
        "queue": queue_names[b_queue[order]], "batch": first_id + order, "delivered_at": b_start[order],
        "finished_at": b_end[order], "size": sizes[order], "outcome": np.full(len(order), "ok", dtype=object),
        "retry_all": b_retry_all[order], "ack_all": np.zeros(len(order), dtype=bool), "acked": counts[:, 0],
        "retried": counts[:, 1], "dead_lettered": counts[:, 2], "dropped": counts[:, 3]})
    # the queues' state
    for queue in queues:
        queue.sends.clear()
    for q, w, c in sends.tolist():
        queues[q].sends[w] = c
    for q, queue in enumerate(queues):
        queue.batches += int(QI[q, BATCHES])
        queue.arrived = int(QI[q, ARRIVED])
        if queue.consumer is not None:
            queue.consumer.cpu_seconds += float(QF[q, CPU])
        if queue.scaler is not None:
            queue.scaler.level = int(QI[q, LEVEL])
    for q, t, level in zip(lv_q.tolist(), lv_t.tolist(), lv_v.tolist()):
        queues[q].scaler.levels.append((t, level))
    for q, row in zip(buffered_q.tolist(), buffered.tolist()):
        queues[q].buffer.append(row)
    for queue in queues:
        if queue.buffer and queue.backlog_bytes is not None:
            queue.backlog_bytes = sum(map(ledger.bytes.__getitem__, queue.buffer))
    # the pools' calls and state
    first = 0
    for a, pool in enumerate(pools.values()):
        mine = c_pool == a
        log = pool.log
        for column, values in ((log.key, c_key), (log.arrived, c_arrived), (log.started, c_started),
                               (log.finished, c_finished)):
            column.frombytes(values[mine].tobytes())
        pool.busy_seconds = float(p_busy_s[a])
        k = pool.spec.instances
        pool.tats[:] = tats[first:first + k].tolist()
        pool.busy[:] = busy[first:first + k].tolist()
        first += k
    # the timeline: per sample, a row per queue (runtime order), then per pool
    width = 1 + 4 * len(queues) + 2 * len(pools)
    pool_names = list(pools)
    for sample in samples.reshape(-1, width).tolist():
        t = sample[0]
        for q, name in enumerate(names):
            backlog, landing, running, consumers = sample[1 + 4 * q:5 + 4 * q]
            timeline.append((t, name, int(backlog), int(landing), int(running), int(consumers)))
        base = 1 + 4 * len(queues)
        for a, name in enumerate(pool_names):
            timeline.append((t, name, int(sample[base + 2 * a]), 0, int(sample[base + 2 * a + 1]), 0))
    rt.clock.now = max(float(now), float(duration))
    rt.clock.events_processed += int(G[EVENTS])
