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
from typing import TYPE_CHECKING, Any

import numpy as np

from .draws import SECOND

if TYPE_CHECKING:
    from ..model.pipeline import Pipeline
    from ..runtime.runtime import Runtime
    from .behaviour import SpecConsumer

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
                 3: "the run's event budget"}

# event kinds
_WAKE, _PENDING, _TIMER, _DONE, _LAND, _SAMPLE, _DLQ_LAND = range(7)


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
    for node, data in g.nodes(data=True):
        if data["kind"] in ("actor", "store"):
            return f"{data['kind']} {node!r}"
    consumers = pipeline.nodes("consumer")
    if len(consumers) != 1:
        return f"{len(consumers)} consumers (covered: one)"
    spec = pipeline.spec(consumers[0])
    queue = g.nodes[consumers[0]]["queue"]
    if spec.handler is not None:
        return "handler code"
    if spec.pull is not None:
        return "a pull consumer"
    if spec.publish or spec.routes or spec.calls or spec.writes or spec.parallel:
        return f"consumer of {queue!r} publishes, routes, calls or writes"
    for source in pipeline.nodes("source"):
        if pipeline.spec(source).queue != queue:
            return f"source {source!r} feeds another queue"
    dlq = pipeline.spec(queue).get("dead_letter_queue")
    others = set(pipeline.nodes("queue")) - {queue, dlq}
    if others:
        return f"queue {sorted(others)[0]!r}"
    if dlq is not None and pipeline.spec(dlq).get("dead_letter_queue") is not None:
        return f"the dead letter queue {dlq!r} has one of its own"
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

# the queue's integer state qi[...] and float state qf[...]
(NXT, HEAD, TAIL, ARRIVED, HAS_WAITING, LANDING, RUNNING, WAKE_SEQ, HAS_WAKE, PENDING_SEQ, IMMEDIATE,
 F_RUNNING, TIMER_SEQ, DUE, LEVEL, SEQ, N_BASE, N_PER, N_TRIAL, HAS_PER, DLQ_BACKLOG, DLQ_LANDING,
 ABORT, SEEN_ARRIVED) = range(24)
(NOW, WAITING_SINCE, WAKE_TIME, RATE, SEEN, PER_MSG, FAILED_SHARE, CPU) = range(8)


@njit(cache=True)
def _absorb(due, buf, qi, qf, concurrent):
    """Queue.absorb: every known arrival up to now into the buffer."""
    nxt, now = qi[NXT], qf[NOW]
    if nxt < len(due) and due[nxt] <= now:
        hi = np.searchsorted(due, now, side="right")
        was_empty = qi[TAIL] == qi[HEAD]
        cap = len(buf)
        for i in range(nxt, hi):
            buf[qi[TAIL] % cap] = i
            qi[TAIL] += 1
        qi[ARRIVED] += hi - nxt
        if was_empty and concurrent:
            qf[WAITING_SINCE] = due[nxt]
            qi[HAS_WAITING] = 1
        qi[NXT] = hi


@njit(cache=True)
def _rewake(due, qi, qf, size, concurrent, timeout, heap):
    """Queue.rewake: the next wake-up, at the arrival that starts or fills a batch."""
    i, n, n_in = qi[NXT], qi[TAIL] - qi[HEAD], len(due)
    target, has_target = 0.0, False
    j = i + size - n - 1
    if n < size and j < n_in:
        target, has_target = due[j], True
    if n == 0 and i < n_in:
        first = due[i] + timeout if concurrent else due[i]
        if not has_target or first < target:
            target = first
        has_target = True
    if has_target != (qi[HAS_WAKE] == 1) or (has_target and target != qf[WAKE_TIME]):
        qi[WAKE_SEQ] = -1
        if has_target:
            qi[SEQ] += 1
            qi[WAKE_SEQ] = qi[SEQ]
            heapq.heappush(heap, (target, qi[SEQ], np.int64(_WAKE), np.int64(0)))
        qf[WAKE_TIME] = target
        qi[HAS_WAKE] = 1 if has_target else 0


@njit(cache=True)
def _flush(buf, qi, qf, ip, fp, keys, delays, origin, sent, failed, per_x, heap,
           b_rows, b_lo, b_start, b_fail_lo, fails, fail_delay, b_retry_all, b_delay_all):
    """Queue.flush, then SpecConsumer.start: cut a batch from the front of the buffer, draw
    its service time and failures, schedule its end. Returns False if the buffer was empty."""
    size = ip[0]
    take = min(size, qi[TAIL] - qi[HEAD])
    if take == 0:
        return False
    now, cap = qf[NOW], len(buf)
    retention = fp[9]
    lo = len(b_rows)
    for k in range(take):
        m = buf[(qi[HEAD] + k) % cap]
        if now - retention > 0 and sent[m] < now - retention:
            qi[ABORT] = 1
        b_rows.append(m)
    qi[HEAD] += take
    b_lo.append(len(b_rows))
    qi[RUNNING] += 1
    b = len(b_start)
    b_start.append(now)
    # SpecConsumer.start: base + per-message time, failing messages and their delays
    bv, used = _draw(ip[11], fp[3], fp[4], keys[0], qi[N_BASE])
    qi[N_BASE] += used
    if ip[12] == 0:
        cpu = bv + fp[5] * take
    else:
        for k in range(take):
            pv, used = _draw(ip[12], fp[5], fp[6], keys[1], qi[N_PER])
            qi[N_PER] += used
            per_x[k] = pv
        cpu = bv + _np_sum(per_x, take)
    transient, poison = fp[7], fp[8]
    retry_all, last = False, np.int64(-1)
    for k in range(take):
        hit = transient > 0 and _uniform(keys[2], qi[N_TRIAL] + k) < transient
        if not hit and poison > 0:
            hit = _uniform(keys[3], origin[b_rows[lo + k]]) < poison
        if hit:
            d = delays[failed[b_rows[lo + k]] + 1]
            fails.append(k)
            fail_delay.append(d)
            last = d
            if ip[10] == 1:
                retry_all = True
    if transient > 0:
        qi[N_TRIAL] += take
    b_fail_lo.append(len(fails))
    b_retry_all.append(retry_all)
    b_delay_all.append(last if retry_all else np.int64(-1))
    qf[CPU] += cpu
    qi[SEQ] += 1
    heapq.heappush(heap, (now + cpu, qi[SEQ], np.int64(_DONE), np.int64(b)))
    return True


@njit(cache=True)
def _cancelled(entry, qi):
    kind, s = entry[2], entry[1]
    return (kind == _WAKE and s != qi[WAKE_SEQ]) or (kind == _PENDING and s != qi[PENDING_SEQ]) or (
        kind == _TIMER and s != qi[TIMER_SEQ])


@njit(cache=True)
def _kernel(due, origin, sent, ip, fp, keys, delays):
    """One queue and its compute-only spec consumer, as the runtime runs them.

    ``ip``: size, concurrent (production), max_concurrency, autoscale, start, step_up,
    step_down, memory, max_attempts, has_dlq, retry_all mode, base kind, per kind, max
    events, discard (a queue without a consumer drops what lands: local).
    ``fp``: timeout, rate_window, drain_seconds, base a, base b, per a, per b, transient p,
    poison share, retention, wall (inf: none), sample step, duration, dlq delay.
    ``keys``: base, per-message, failure, poison stream keys. ``delays[a]``: the retry delay
    after attempt ``a``."""
    size, concurrent, max_conc, autoscale = ip[0], ip[1] == 1, ip[2], ip[3] == 1
    step_up, step_down, max_attempts, has_dlq = ip[5], ip[6], ip[8], ip[9] == 1
    max_events, discard = ip[13], ip[14] == 1
    timeout, window, drain_s, wall, step, duration, dlq_delay = fp[0], fp[1], fp[2], fp[10], fp[11], fp[12], fp[13]
    k_weight = 1.0 / ip[7]
    n_in = len(due)
    qi = np.zeros(24, np.int64)
    qf = np.zeros(8, np.float64)
    qi[WAKE_SEQ] = qi[PENDING_SEQ] = qi[TIMER_SEQ] = -1
    qi[LEVEL] = min(ip[4], max_conc)
    failed = np.zeros(n_in, np.int64)
    outcome = np.zeros(n_in, np.int8)
    finished = np.full(n_in, np.nan)
    buf = np.empty(n_in + 1, np.int64)          # a ring: at most every message waits at once
    per_x = np.empty(max(size, 1), np.float64)
    heap = [(0.0, np.int64(0), np.int64(0), np.int64(0))][:0]
    b_rows, b_lo, b_start = [np.int64(0)][:0], [np.int64(0)], [0.0][:0]
    b_end = [0.0][:0]
    b_fail_lo, fails, fail_delay = [np.int64(0)], [np.int64(0)][:0], [np.int64(0)][:0]
    b_retry_all, b_delay_all = [False][:0], [np.int64(0)][:0]
    b_counts, done_order = [np.int64(0)][:0], [np.int64(0)][:0]
    g_rows, g_lo = [np.int64(0)][:0], [np.int64(0)]
    dead, dead_at, dlq_lo = [np.int64(0)][:0], [0.0][:0], [np.int64(0)]
    samples = [0.0][:0]
    levels_t, levels_v = [0.0], [qi[LEVEL]]
    d_vals, d_rows, d_of = [np.int64(0)][:0], [np.int64(0)][:0], [np.int64(0)][:0]
    counts = np.zeros(4, np.int64)            # a batch's acked, retried, dead, dropped
    events = 0

    # _feed: attach_inflow's rewake; then _sample's call_at(0.0)
    _rewake(due, qi, qf, size, concurrent, timeout, heap)
    qi[SEQ] += 1
    heapq.heappush(heap, (0.0, qi[SEQ], np.int64(_SAMPLE), np.int64(0)))
    while len(heap) > 0:
        entry = heapq.heappop(heap)
        if _cancelled(entry, qi):
            continue
        t, _, kind, arg = entry
        qf[NOW] = now = t
        events += 1
        if events > max_events:
            qi[ABORT] = 3
            break
        landed = rewake = False
        dead_n = 0
        if kind == _WAKE:                             # land(()): absorb, landed, rewake
            _absorb(due, buf, qi, qf, concurrent)
            landed = rewake = True
        elif kind == _LAND:                           # _land(rows)
            lo, hi = g_lo[arg], g_lo[arg + 1]
            qi[LANDING] -= hi - lo
            _absorb(due, buf, qi, qf, concurrent)
            cap = len(buf)
            for i in range(lo, hi):
                buf[qi[TAIL] % cap] = g_rows[i]
                qi[TAIL] += 1
            qi[ARRIVED] += hi - lo
            landed = rewake = True
        elif kind == _PENDING:                        # SingleFlush._fire
            _absorb(due, buf, qi, qf, concurrent)
            if qi[TAIL] - qi[HEAD] >= size:
                qi[IMMEDIATE] = 1
            if _flush(buf, qi, qf, ip, fp, keys, delays, origin, sent, failed, per_x, heap, b_rows, b_lo,
                      b_start, b_fail_lo, fails, fail_delay, b_retry_all, b_delay_all):
                b_end.append(np.nan)
            else:
                qi[PENDING_SEQ] = -1                   # an empty flush: finished (the buffer is empty)
            rewake = True
        elif kind == _TIMER:                          # ConcurrentFlush._expire
            qi[TIMER_SEQ] = -1
            qi[DUE] = 1
            _absorb(due, buf, qi, qf, concurrent)
            landed = rewake = True
        elif kind == _DLQ_LAND:                       # the dead letter queue's _land
            n = dlq_lo[arg + 1] - dlq_lo[arg]
            qi[DLQ_LANDING] -= n
            if not discard:
                qi[DLQ_BACKLOG] += n
            continue
        elif kind == _SAMPLE:                         # simulate._sample
            _absorb(due, buf, qi, qf, concurrent)
            samples.append(now)
            samples.append(float(qi[TAIL] - qi[HEAD]))
            samples.append(float(qi[LANDING]))
            samples.append(float(qi[RUNNING]))
            samples.append(float((qi[LEVEL] if autoscale else max_conc) if concurrent else 1))
            samples.append(float(qi[DLQ_BACKLOG]))
            samples.append(float(qi[DLQ_LANDING]))
            while len(heap) > 0 and _cancelled(heap[0], qi):     # clock.peek
                heapq.heappop(heap)
            if now + step <= duration or len(heap) > 0:
                qi[SEQ] += 1
                heapq.heappush(heap, (now + step, qi[SEQ], np.int64(_SAMPLE), np.int64(0)))
            continue
        else:                                         # _DONE: Queue._batch_done
            b = arg
            qi[RUNNING] -= 1
            lo, hi = b_lo[b], b_lo[b + 1]
            started, n = b_start[b], hi - lo
            if now - started > wall:
                qi[ABORT] = 2
                break
            fl, fh = b_fail_lo[b], b_fail_lo[b + 1]
            counts[:] = 0
            if fh == fl:
                for i in range(lo, hi):
                    outcome[b_rows[i]] = ACKED
                    finished[b_rows[i]] = now
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
                        outcome[m] = ACKED
                        finished[m] = now
                        counts[0] += 1
                        continue
                    failed[m] += 1
                    if failed[m] < max_attempts:
                        q = 0
                        while q < len(d_vals) and d_vals[q] != delay:
                            q += 1
                        if q == len(d_vals):
                            d_vals.append(delay)
                        d_rows.append(m)
                        d_of.append(q)
                        counts[1] += 1
                    elif has_dlq:
                        outcome[m] = DEAD
                        finished[m] = now
                        dead.append(m)
                        dead_at.append(now)
                        counts[2] += 1
                    else:
                        outcome[m] = DROPPED
                        finished[m] = now
                        counts[3] += 1
                for q in range(len(d_vals)):          # a landing per delay, first-seen order
                    for r in range(len(d_rows)):
                        if d_of[r] == q:
                            g_rows.append(d_rows[r])
                    g_lo.append(len(g_rows))
                    qi[LANDING] += g_lo[len(g_lo) - 1] - g_lo[len(g_lo) - 2]
                    qi[SEQ] += 1
                    heapq.heappush(heap, (now + d_vals[q], qi[SEQ], np.int64(_LAND), np.int64(len(g_lo) - 2)))
            for c in range(4):
                b_counts.append(counts[c])
            b_end[b] = now
            done_order.append(b)
            dead_n = counts[2]
            _absorb(due, buf, qi, qf, concurrent)
            if autoscale:                             # Scaler.decide, operation for operation
                dt = now - qf[SEEN]
                weight = -math.expm1(-dt / window)
                if weight > 0:
                    rate = qf[RATE]
                    qf[RATE] = rate + (weight / dt * (qi[ARRIVED] - qi[SEEN_ARRIVED]) - weight * rate)
                    qf[SEEN] = now
                    qi[SEEN_ARRIVED] = qi[ARRIVED]
                sample = (now - started) / (n if n > 1 else 1)
                if qi[HAS_PER] == 0:
                    qf[PER_MSG] = sample
                    qi[HAS_PER] = 1
                else:
                    qf[PER_MSG] = qf[PER_MSG] + k_weight * (sample - qf[PER_MSG])
                qf[FAILED_SHARE] = qf[FAILED_SHARE] + k_weight * (False - qf[FAILED_SHARE])
                need = (qf[RATE] + (qi[TAIL] - qi[HEAD]) / drain_s) * qf[PER_MSG] * (1.0 - qf[FAILED_SHARE])
                target = math.ceil(need - 1e-9)
                level = qi[LEVEL]
                if target != level:
                    target = min(max(target, 1), max_conc)
                    new = level
                    if target > level:
                        new = min(target, level + step_up)
                    elif target < level:
                        new = max(target, level - step_down)
                    if new != level:
                        qi[LEVEL] = new
                        levels_t.append(now)
                        levels_v.append(new)
            if concurrent:                            # flusher.finished
                qi[F_RUNNING] -= 1
                landed = True
            else:
                qi[PENDING_SEQ] = -1
                landed = qi[TAIL] > qi[HEAD]
            rewake = True
        if landed and concurrent:                     # ConcurrentFlush.landed
            has_since = qi[HAS_WAITING] == 1
            since = qf[WAITING_SINCE]
            qi[HAS_WAITING] = 0
            if has_since and qi[TIMER_SEQ] < 0 and since + timeout <= now:
                qi[DUE] = 1
            cap = qi[LEVEL] if autoscale else max_conc
            while qi[TAIL] > qi[HEAD] and qi[F_RUNNING] < cap and (qi[DUE] == 1 or qi[TAIL] - qi[HEAD] >= size):
                qi[DUE] = 0
                has_since = False
                qi[TIMER_SEQ] = -1
                qi[F_RUNNING] += 1
                _flush(buf, qi, qf, ip, fp, keys, delays, origin, sent, failed, per_x, heap, b_rows, b_lo,
                       b_start, b_fail_lo, fails, fail_delay, b_retry_all, b_delay_all)
                b_end.append(np.nan)
            if qi[TAIL] == qi[HEAD]:
                qi[DUE] = 0
            elif qi[TIMER_SEQ] < 0 and qi[DUE] == 0:
                qi[SEQ] += 1
                qi[TIMER_SEQ] = qi[SEQ]
                heapq.heappush(heap, ((since if has_since else now) + timeout, qi[SEQ], np.int64(_TIMER),
                                      np.int64(0)))
        elif landed:                                  # SingleFlush.landed
            has_space = qi[TAIL] - qi[HEAD] < size
            if qi[PENDING_SEQ] < 0 or not (qi[IMMEDIATE] == 1 or has_space):
                delay = timeout if has_space else 0.0
                qi[SEQ] += 1
                qi[PENDING_SEQ] = qi[SEQ]
                qi[IMMEDIATE] = 1 if delay == 0 else 0
                heapq.heappush(heap, (now + delay, qi[SEQ], np.int64(_PENDING), np.int64(0)))
        if rewake:
            _rewake(due, qi, qf, size, concurrent, timeout, heap)
        if dead_n:                                    # receive_dead_letters: _enqueue after the rest
            dlq_lo.append(len(dead))
            qi[DLQ_LANDING] += dead_n
            qi[SEQ] += 1
            heapq.heappush(heap, (now + dlq_delay, qi[SEQ], np.int64(_DLQ_LAND), np.int64(len(dlq_lo) - 2)))
        if qi[ABORT]:
            break
    return (qi, qf, events, failed, outcome, finished, np.array(b_rows), np.array(b_lo), np.array(b_start),
            np.array(b_end), np.array(b_retry_all), np.array(b_counts), np.array(done_order),
            np.array(dead), np.array(dead_at), np.array(samples), np.array(levels_t), np.array(levels_v))


# ---------------------------------------------------------------------------- the glue


def run(rt: Runtime, pipeline: Pipeline, queue_name: str, due: np.ndarray, rows: list[int],
        timeline: list, duration: float, step: float, max_events: int) -> str | None:
    """Run the covered pipeline built in ``rt`` (its queue ``queue_name`` fed ``rows`` landing
    at ``due``, as simulate's ``_feed`` admitted them) with the kernel, and write what happened
    into ``rt`` as its own broker would have: the ledger, the batch records, the queues'
    state, the consumer's CPU time, the clock, and ``timeline``'s samples. Returns None, or
    why the run was given up (nothing written: the caller runs it on the Python engine)."""
    queue = rt.queues[queue_name]
    consumer: SpecConsumer = queue.consumer
    spec, sem, settings = consumer.spec, rt.semantics, queue.settings
    ledger = rt.ledger
    rows_a = np.asarray(rows, dtype=np.int64)
    origin = np.asarray([ledger.payload[r] for r in rows], dtype=np.int64) if len(rows) else np.zeros(0, np.int64)
    sent = np.frombuffer(ledger.sent, dtype=np.float64)[rows_a] if len(rows) else np.zeros(0)
    scaler, policy = queue.scaler, sem.autoscaling
    max_attempts = settings.max_retries + 1
    dlq_name = settings.dead_letter_queue
    dlq = rt.queues[dlq_name] if dlq_name is not None else None
    delays = np.array([0] + [spec.retry.delay(a) for a in range(1, max_attempts + 1)], dtype=np.int64)
    ip = np.array([
        settings.max_batch_size, int(sem.concurrent_consumers), settings.max_concurrency,
        int(scaler is not None), policy.start if scaler else 1, policy.step_up if scaler else 1,
        policy.step_down if scaler else 1, policy.memory if scaler else 1, max_attempts, int(dlq is not None),
        int(spec.retry.mode == "retry_all"), DIST_KINDS[spec.base.kind], DIST_KINDS[spec.per_message.kind],
        max_events, int(sem.discard_without_consumer)], dtype=np.int64)
    fp = np.array([
        settings.max_batch_timeout, policy.rate_window if scaler else 1.0, policy.drain_seconds if scaler else 1.0,
        spec.base.a, spec.base.b, spec.per_message.a, spec.per_message.b,
        consumer.transient.p if consumer.transient else 0.0, consumer.poison_share,
        math.inf if queue.retention is None else queue.retention,
        math.inf if sem.consumer_wall_seconds is None else sem.consumer_wall_seconds,
        step, duration, float((dlq.delivery_delay or 0) if dlq is not None else 0)],
        dtype=np.float64)
    keys = np.array([consumer.rng.key, consumer.per_rng.key,
                     consumer.transient.rng.key if consumer.transient else 0, consumer.poison_key], dtype=np.uint64)
    (qi, qf, events, failed, outcome, finished, b_rows, b_lo, b_start, b_end, b_retry_all, b_counts, done_order,
     dead, dead_at, samples, levels_t, levels_v) = _kernel(np.asarray(due, dtype=np.float64), origin, sent,
                                                             ip, fp, keys, delays)
    if qi[ABORT]:
        return ABORT_REASONS[int(qi[ABORT])]

    # the ledger: each admitted message's failed attempts, outcome and when it finished
    np.frombuffer(ledger.failed, dtype=np.int64)[rows_a] = failed
    np.frombuffer(ledger.outcome, dtype=np.int8)[rows_a] = outcome
    np.frombuffer(ledger.finished, dtype=np.float64)[rows_a] = finished
    why = f"failed {max_attempts} attempts, no dead letter queue"
    for row in rows_a[outcome == DROPPED].tolist():
        ledger.drop_reasons[row] = why
    # batches: delivered in start order (ids in that order), recorded in finish order
    ids = [rt.next_batch_id() for _ in range(len(b_start))]
    rows_list = rows_a[b_rows].tolist()
    lo_list, start_list, end_list = b_lo.tolist(), b_start.tolist(), b_end.tolist()
    for b in range(len(b_start)):
        ledger.delivered(rows_list[lo_list[b]:lo_list[b + 1]], start_list[b])
    counts = b_counts.reshape(-1, 4).tolist()
    retry_all = b_retry_all.tolist()
    record = rt.recorder._batches.append
    for k, b in enumerate(done_order.tolist()):
        acked, retried, dead_n, dropped = counts[k]
        record((queue_name, ids[b], start_list[b], end_list[b], lo_list[b + 1] - lo_list[b], "ok",
                retry_all[b], False, acked, retried, dead_n, dropped))
    queue.batches += len(b_start)
    queue.arrived = int(qi[ARRIVED])
    consumer.cpu_seconds += float(qf[CPU])
    if scaler is not None:
        scaler.level = int(qi[LEVEL])
        scaler.levels = list(zip(levels_t.tolist(), levels_v.tolist()))
    # dead letters: copied to the dead letter queue when they failed their last attempt
    if len(dead):
        times = dead_at.tolist()
        source = rows_a[dead].tolist()
        start = 0
        landed: list[int] = []
        for end in range(1, len(times) + 1):
            if end == len(times) or times[end] != times[start]:
                landed.extend(ledger.copy_to(dlq_name, source[start:end], times[start]))
                start = end
        wait = dlq.delivery_delay or 0
        if sem.discard_without_consumer:
            for row, t in zip(landed, times):
                ledger.finish(row, "dropped", t + wait, "no consumer (wrangler dev discards)")
        else:
            dlq.buffer.extend(landed)
            dlq.arrived += len(landed)
            if dlq.backlog_bytes is not None:
                dlq.backlog_bytes += sum(map(ledger.bytes.__getitem__, landed))
    # the timeline, a row per queue per sample, in the runtime's queue order
    dlq_consumers = dlq.consumers if dlq is not None else 0
    for t, backlog, landing, running, consumers, d_backlog, d_landing in samples.reshape(-1, 7).tolist():
        for name in rt.queues:
            if name == queue_name:
                timeline.append((t, name, int(backlog), int(landing), int(running), int(consumers)))
            else:
                timeline.append((t, name, int(d_backlog), int(d_landing), 0, dlq_consumers))
    rt.clock.now = max(float(qf[NOW]), float(duration))
    rt.clock.events_processed += int(events)
    return None
