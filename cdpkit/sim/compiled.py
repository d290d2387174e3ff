"""The compiled engine: a spec pipeline run in numba, event for event as the reference runtime
runs it.

The Python runtime is the reference semantics (DESIGN.md, "One semantics, proven"); this
engine repeats, for the pipelines it covers (:func:`not_covered` says which and why not),
exactly what the runtime's brokers, spec consumers and spec actors do: the same events
(:class:`~cdpkit.runtime.queues.Queue`'s inflow wake-ups, the flushers' timers, batch
completions, publish, retry and dead-letter landings, the actors' gate entries and exits, a
Durable Object request's steps, its I/O's ends, idle evictions, the timeline's samples)
scheduled in the same order with the clock's (time, sequence) keys, so that ties fall the
same way; the same counter-based draws (:mod:`cdpkit.sim.draws`); the autoscaler's
arithmetic operation for operation. It fills the runtime's ledger, batch records, call logs
and queue state, so :class:`~cdpkit.sim.results.Results` reads a compiled run as a Python
one. ``tests/test_engine_property.py`` requires the two engines' ledgers, batches, actor
calls, timelines, summaries, costs and warnings to be equal on random covered pipelines.

Covered: sources (shares, types), queues under any profile (autoscaling or every slot, the
throughput limit), push spec consumers that compute (base and per-message service, any
distribution), fail (transient and poison), retry (either policy and mode), publish (fan-out
included), call an actor for each message, route by message type to queues or to actors,
write to stores (sinks, KV, D1, Analytics Engine) and dead-letter; a
consumer that routes, writes or runs in parallel runs each batch as a task, as the runtime
runs it (its CPU, its sends, then each message's writes and call awaited in turn, or with
``parallel`` each message's in a task of its own, gathered: a binding's I/O always suspends,
a step follows each); service-only spec actors (keys with skew, the object gate); spec
actors that write to stores, call child actors and publish, as the runtime's Durable Object
machinery runs them (each request a task that computes holding its object's input gate,
leaves the gate at every awaited write or child request and re-enters it behind the requests
waiting there, publishes, and ends the request: the idle-eviction timer, then its caller
goes on); ``drain`` either way (``False``: the run stops at the duration with what is in
flight held as the runtime holds it); a fault timeline, every kind (errors, with a permanent
share too, rate limits and slowdowns of consumers, actors and stores, as the runtime's
``ConsumerFaults`` hook fails a batch's messages and its ``scaled`` draws stretch service
times and latencies; outages, whose invocations throw at once or whose delivery pauses;
pauses, purges, a dead letter queue down, eviction storms), with each fault's counters;
cycles (a drain round one stops where simulate's does); HTTP pull consumers (``pull=``: the client's polling loops as ``PullClient`` runs
them, each pull a leased batch cut as a flush cuts one and worked on by the spec's behaviour,
acked when it is done or delivered again when its visibility timeout ends first, empty pulls
counted, idle loops woken by a landing). The stores get the writes afterwards, as their own
calls make them; ``trace=True`` keeps each delivery's attempt and disposition as the runtime's
recorder does. Not covered (the Python engine runs it, ``res.engine`` says why): handler or
actor code. The platform's limits act as in the runtime: messages past the retention
period are dropped as batches are cut, an invocation past the consumer wall time fails, a
request queued too long at a Durable Object's soft limit fails overloaded (one queued less
long is held and admitted) and a KV put over the per-key write rate is refused; a failed
call or write fails whatever awaited it (a batch's task, a message's task and with it its
batch's gather, a Durable Object request and then its caller), and the batch's error is
recorded as the runtime records it (``rt.errors``; the kernel has no Python traceback to
keep). A run past the message budget (or a drain round a cycle past its limit) is given
back to the Python engine, which raises its error.
"""

from __future__ import annotations

import math
import sys
import threading
import warnings
from collections import deque, namedtuple
from collections.abc import Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

import networkx as nx
import numpy as np
from tqdm import tqdm

from ..runtime.actors import overload_error
from ..runtime.budget import DRAIN_SLACK, DRAIN_TRIPS
from ..runtime.faults import FaultedConsumer
from ..runtime.kv import put_rate_error
from ..runtime.ledger import ACKED, DROPPED, REJECTED
from ..runtime.ledger import DEAD_LETTERED as DEAD
from ..runtime.pull import _EXACT_TICKS as EXACT_TICKS
from ..runtime.queues import Inflow, wall_time_error
from ..runtime.trace import call_outcomes
from .draws import SECOND

if TYPE_CHECKING:
    from ..model.pipeline import Pipeline
    from ..runtime.faults import FaultPlan
    from ..runtime.runtime import Runtime
    from .behaviour import CodeActorCaller, SpecActors, SpecBodies, StoreWriter

try:        # the compiled engine is optional: without numba every run uses the Python engine
    import numba
    from numba import njit
    from numba.core.errors import NumbaError
    HAVE_NUMBA = True
except ImportError:      # pragma: no cover - numba is a default dependency
    numba = None
    HAVE_NUMBA = False
    NumbaError = Exception

    def njit(*args, **kwargs):
        return (lambda f: f) if not args or not callable(args[0]) else args[0]

BROKEN: list[str] = []      # why the compiled engine cannot run in this process (once found)


def fall_back(why: str, message: str) -> str:
    """The compiled engine cannot run here (numba missing, or unable to compile the kernel):
    remember why and say ``message`` once per process; returns why."""
    if not BROKEN:
        BROKEN.append(why)
        warnings.warn(message, RuntimeWarning, stacklevel=4)
    return BROKEN[0]

# distribution kinds, as Dist.kind
DIST_KINDS = {"const": 0, "exp": 1, "uniform": 2, "normal": 3, "lognormal": 4}
# why a compiled run gave up (then the Python engine runs it): the runtime handles these
ABORT_REASONS = {3: "the run's event budget", 5: "more than 4,096 cancelled batch timers pending on one queue",
                 7: "the message budget (around a cycle: the drain's limit)"}


def not_covered(pipeline: Pipeline) -> str | None:
    """Why the compiled engine cannot run this simulation exactly (None: it can)."""
    if BROKEN:
        return BROKEN[0]
    if not HAVE_NUMBA:
        return fall_back("numba is not installed", "cdpkit: numba is not installed, so simulations run on "
                         "the Python engine (`pip install numba` for the compiled one)")
    g = pipeline.graph
    if len(pipeline.nodes("queue")) > 255:     # an event's queue is 8 bits of its code
        return "more than 255 queues"
    for node in pipeline.nodes("actor"):
        spec = pipeline.spec(node)
        if spec.cls is not None:
            return f"actor {node!r} (code)"
    for node in pipeline.nodes("consumer"):
        spec, queue = pipeline.spec(node), g.nodes[node]["queue"]
        if spec.handler is not None:
            return f"handler code on {queue!r}"
    return None


def cyclic(pipeline: Pipeline) -> bool:
    """Whether messages can go round (publishing, routing, dead letters, actors publishing):
    then a drain stops them as simulate's does (``DRAIN_TRIPS``)."""
    return not nx.is_directed_acyclic_graph(pipeline.graph)


def row_margin(pipeline: Pipeline) -> int:
    """The most ledger rows one kernel event can add (the room it checks for): a batch of
    up to 100 messages sending each to every queue its consumer publishes to (routing sends
    each to one), its dead letters, or an actor's request publishing its body to each of its
    queues; plus a few."""
    fan_out = max((len(pipeline.spec(c).publish) for c in pipeline.nodes("consumer")), default=1)
    publish = max((len(pipeline.spec(a).publish) for a in pipeline.nodes("actor")), default=0)
    return max(100 * max(1, fan_out), publish) + 108


def row_room(pipeline: Pipeline, arrivals: dict[str, int], cap: float, attempts: dict[str, int] | None = None) -> int:
    """The most ledger rows a covered run can make from ``arrivals`` (queue ->
    messages fed to it), at most ``cap`` + 1 (the message budget: past it the run stops),
    and the room the kernel checks for before each event: a message is a row on its queue
    and then, once, either what its consumer sends (to each queue it publishes to, or the
    one its type is routed to) and what the actor it calls (or is routed to) publishes, or
    its dead letter's copy. An actor's request publishes its body to each of its queues and
    calls each of its children once. A pull consumer's batch may be worked on after its lease
    expired and the message was delivered again: up to ``attempts[queue]`` times (default: its
    ``max_retries`` + 1, 4 if unset). Around a cycle there is no such bound: then room for a
    few trips round it (the kernel grows the columns if it needs more)."""
    g = pipeline.graph
    if cyclic(pipeline):     # no bound: room for a few trips (the kernel makes more if it needs it)
        return int(min(4 * sum(arrivals.values()) + DRAIN_SLACK, cap + 1)) + row_margin(pipeline)
    consumers = {g.nodes[c]["queue"]: pipeline.spec(c) for c in pipeline.nodes("consumer")}
    memo: dict[str, int] = {}

    def rows(node: str) -> int:       # rows a message on queue ``node``, or a request to actor ``node``, makes
        if node not in memo:
            spec = pipeline.spec(node)
            if g.nodes[node]["kind"] == "actor":
                memo[node] = sum(map(rows, spec.publish)) + sum(map(rows, spec.calls))
                return memo[node]
            consumer, dlq = consumers.get(node), spec.get("dead_letter_queue")
            # (a pull consumer's lease may expire while its batch is worked on: each delivery publishes)
            deliveries = 1 if consumer is None or not consumer.pull else (
                attempts[node] if attempts else spec.get("max_retries", 3) + 1)
            memo[node] = 1 if consumer is None else 1 + max(
                deliveries * (sum(map(rows, consumer.publish)) + (rows(consumer.calls) if consumer.calls else 0)),
                max(map(rows, consumer.routes.values()), default=0),
                rows(dlq) if dlq else 0)
        return memo[node]

    return int(min(sum(n * rows(queue) for queue, n in arrivals.items()), cap + 1)) + row_margin(pipeline)


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
#
# State lives in numpy arrays with named columns (numba passes arrays cheaply; typed lists
# cost several times more per append): a queue's state QI/QF, its settings SI/SF, the
# ledger's own columns (numpy arrays it reserved: the engine writes its rows in place), a
# queue's buffer a linked list through ``nxt[row]``, the batches BI/BF, landing groups,
# actor calls (their pools' logs), task steps, store writes. Tables grow by half when full.

# a queue's integer state QI[q, ...] and float state QF[q, ...]
(NXT, HEAD, TAIL, COUNT, ARRIVED, HAS_WAITING, LANDING, RUNNING, WAKE_SEQ, HAS_WAKE, PENDING_SEQ, IMMEDIATE,
 F_RUNNING, TIMER_SEQ, DUE, LEVEL, N_BASE, N_PER, N_TRIAL, HAS_PER, SEEN_ARRIVED, BATCHES, CX_HEAD, CX_TAIL, FIRED,
 PULLS, EMPTY, IDLE_HEAD, IDLE_TAIL, PAUSED, HELD_HEAD, HELD_TAIL, HELD_COUNT) = range(33)
QI_COLUMNS = HELD_COUNT + 1
# (a queue whose delivery is paused keeps what lands in a second list, HELD_*, not counted as arrived)
(WAITING_SINCE, WAKE_TIME, RATE, SEEN, PER_MSG, FAILED_SHARE, CPU) = range(7)
# a queue's settings SI[q, ...] (ints) and SF[q, ...] (floats); a pull consumer's queue (PULL)
# has polling loops LOOP_LO..LOOP_HI pulling PULL_SIZE messages, every INTERVAL s, for VISIBILITY s
(SIZE, MAX_CONC, MAX_ATTEMPTS, DLQ, HAS_CONSUMER, PER_WINDOW, CALLS, PUB_LO, PUB_HI, RETRY_ALL,
 BASE_KIND, PER_KIND, TASK, W_LO, W_HI, PARALLEL, PULL, PULL_SIZE, LOOP_LO, LOOP_HI) = range(20)
SI_COLUMNS = LOOP_HI + 1
(TIMEOUT, DELAY, RETENTION, BASE_A, BASE_B, PER_A, PER_B, TRANSIENT, POISON, INTERVAL, VISIBILITY,
 RETRY_DELAY) = range(12)
SF_COLUMNS = RETRY_DELAY + 1
# the run's counters G[...]
(SEQ, EVENTS, ABORT, ROWS, CALLS_MADE, NB, NBR, NF, NDONE, NL, NG, HN, NSM, NLV, NDL, NCH, NW, NT, FREE_T, CAP,
 DRAINING, NERR, NNOK) = range(23)
G_SIZE = NNOK + 1
# a call's own columns are its pool's log: c_key, c_arrived, c_started, c_finished (and
# c_pool); a caller makes its calls one at a time, so which call is on, how many are left
# (call_each) and the next caller waiting at the same instance are the caller's (B_CALL,
# B_LEFT, B_WAITING)
# a batch's columns BI[b, ...] (floats BF: started, finished): its rows brows[B_LO:B_HI], its
# failing positions and their delays fails/fdelay[B_FLO:B_FHI], what became of its messages
(B_LO, B_HI, B_Q, B_FLO, B_FHI, B_RA, B_DA, B_ACK, B_RET, B_DEAD, B_DROP, B_CALL, B_LEFT, B_WAITING,
 B_CHAIN, B_CHEND, B_OUT) = range(17)
B_COLUMNS = B_OUT + 1
# A caller (of an actor, of a store) is a batch b, as x = 2b, or, for a consumer that runs its
# messages in parallel, one message's task t (a row of TK, laid out as BI: its batch in B_LO,
# its steps, its call, its gate wait link), as x = 2t + 1; B_OUT counts a batch's tasks left.
# a task batch's steps are chain[B_CHAIN:B_CHEND] (with their bodies chain_body): a pool a >= 0
# to call, or -1 - s, a write to store s; the writes done go to the write log (store, body, time)
#
# Pools a (P[a], PF[a], pkeys[a]) are the actor classes, in the timeline's order: first the spec
# actors that write, call or publish (they run on the runtime's Durable Object machinery: P[a,
# P_KIND] == OBJECTS), then the service-only ones (SpecActors). A call to an OBJECTS pool is a
# request served by a task of its own, a TK row laid out for it (T_*): the caller x it wakes at
# the end, the call c it serves (c_pool/c_key: which object), its body and its program counter:
# -1, it has not started; then the actor's steps PROG[P[a, P_LO]:P[a, P_HI]] in turn, each (kind,
# what): a write to store s, a call to pool b, a publish to queue q. The task holds its
# object's gate while it computes and leaves it at every awaited write or call, re-entering
# behind the requests waiting there (ObjectGate: a FIFO through B_WAITING). Finished tasks'
# rows are reused (a free list through T_FREE, from G[FREE_T]).
(P_INSTANCES, P_FIRST, P_SERVICE, P_KIND, P_LO, P_HI) = range(6)
SERVICE_ONLY, OBJECTS = 0, 1
(T_PARENT, T_FREE, T_SERVES, T_BODY) = (B_LO, B_HI, B_Q, B_FLO)   # a serve task's own TK columns
T_PC = B_CHAIN
WRITE, CALL, PUBLISH = range(3)                                      # PROG's step kinds
# a store's settings ST[s, ...]: its kind, its latency's distribution kind, which KV namespace
(ST_KIND, ST_LATENCY, ST_KV) = range(3)
SINK, KV, D1, ANALYTICS = range(4)
# ledger drop reasons
NO_DLQ, DISCARDED, TOO_MANY, PURGED, EXPIRED = 1, 2, 3, 4, 5
RETRIED = 5        # a delivery's disposition (trace=True): the ledger's outcome codes, or this
DISPOSITIONS = {ACKED: "acked", RETRIED: "retried", DEAD: "dead_lettered", DROPPED: "dropped"}
# room one event may need (_run checks it before each event, _engine makes it): the batches
# one flush can start (max_concurrency is at most 250) and their landing groups, their rows
# (100 each), and the events they schedule
BATCH_ROOM, BATCH_ROWS_ROOM, HEAP_ROOM = 256, 25_600, 600
# A pull consumer's polling loops l (PullClient._loop), LI[l, ...]: its queue, what it does next
# (L_POLL: pull; L_LEASED: it leased batch L_BATCH of L_TAKEN messages, and the behaviour is done
# with it: ack; L_IDLE: waiting for a landing, since its empty pull at LF[l], in the queue's idle
# list through L_NEXT). A pull batch keeps its loop and its lease's timer (the sequence number of
# its expiry event, -1 once settled) in columns a pull batch has no other use for.
(L_Q, L_STATE, L_BATCH, L_TAKEN, L_NEXT) = range(5)
L_POLL, L_LEASED, L_IDLE = range(3)
B_LOOP, B_LEASE = B_CALL, B_LEFT
# event kinds
(_WAKE, _PENDING, _TIMER, _DONE, _LAND, _SAMPLE, _ENTRY, _EXIT, _START, _STEP, _IO, _MAIN, _ADMIT,
 _OSTEP, _OADMIT, _EVICT, _PSTEP, _EXPIRE, _OP, _THROW, _FAIL) = range(21)     # (5 bits of an event's code)
# What fails an awaited call or write (ERRI[e] = kind, call or store, caller, the batch it failed
# (-1: none, yet); ERRF[e]: for a KV put, how long ago its key was written): a request queued
# too long at a Durable Object's soft limit (a service-only pool's call, or an object's
# request: then the caller is its serve task), a KV put over the per-key write rate. Its _FAIL
# event gives the error to the caller: a call_each batch fails at once; a task keeps it in
# B_ERR (its B_LEFT, which a task does not use) and raises at its next step (a batch task
# fails the batch, a message's task fails the batch's gather once, a serve task ends its
# request with an error and passes it to its caller). NOK[k] = (call, outcome) of the calls
# that did not end "ok".
(E_KIND, E_A, E_X, E_BATCH, E_BODY) = range(5)
POOL_OVERLOAD, OBJECT_OVERLOAD, KV_REFUSED = range(3)
OVERLOADED, ERRORED = 1, 2
B_ERR = B_LEFT
# a fault timeline's queue and actor operations, OPS[k] = (operation, queue or pool, fault) at OPT[k]
OP_PAUSE, OP_RESUME, OP_PURGE, OP_EVICT = range(4)
THREW = -1.0       # a batch's CPU (BF[b, 2]) when its invocation threw at once (an outage): none


@njit(cache=True, inline="always")
def _push(HT, HK, G, t, kind, q, arg):
    """clock.call_at: an event at ``t`` with the next sequence number, into the heap of
    (time, seq) keys HT/HK[:, 0] (its code, ``arg << 13 | queue << 5 | kind``, in HK[:, 1])."""
    G[SEQ] += 1
    seq, code = G[SEQ], (np.int64(arg) << 13) | (np.int64(q) << 5) | np.int64(kind)
    i = G[HN]
    G[HN] = i + 1
    while i > 0:                      # sift up
        p = (i - 1) >> 1
        if t < HT[p] or (t == HT[p] and seq < HK[p, 0]):
            HT[i], HK[i, 0], HK[i, 1] = HT[p], HK[p, 0], HK[p, 1]
            i = p
        else:
            break
    HT[i], HK[i, 0], HK[i, 1] = t, seq, code
    return seq


@njit(cache=True, inline="always")
def _pop(HT, HK, G):
    """The earliest event (time, seq, code), out of the heap."""
    t, seq, code = HT[0], HK[0, 0], HK[0, 1]
    n = G[HN] - 1
    G[HN] = n
    if n > 0:                         # the last entry sifts down from the root
        lt, ls, lc = HT[n], HK[n, 0], HK[n, 1]
        i = 0
        while True:
            c = 2 * i + 1
            if c >= n:
                break
            if c + 1 < n and (HT[c + 1] < HT[c] or (HT[c + 1] == HT[c] and HK[c + 1, 0] < HK[c, 0])):
                c += 1
            if HT[c] < lt or (HT[c] == lt and HK[c, 0] < ls):
                HT[i], HK[i, 0], HK[i, 1] = HT[c], HK[c, 0], HK[c, 1]
                i = c
            else:
                break
        HT[i], HK[i, 0], HK[i, 1] = lt, ls, lc
    return t, seq, code


@njit(cache=True)
def _bigger(a, need):
    """``a`` with at least ``need`` rows (doubled), its contents kept."""
    if need <= a.shape[0]:
        return a
    size = max(a.shape[0] + a.shape[0] // 2, need)      # half as much again
    out = np.empty((size,) + a.shape[1:], a.dtype)      # (rows past the old ones are written before read)
    out[:a.shape[0]] = a
    return out


@njit(cache=True, inline="always")
def _put(nxt, QI, q, m):
    """Append ledger row ``m`` to queue ``q``'s buffer (paused: to what it holds)."""
    nxt[m] = -1
    head, tail, count = (HELD_HEAD, HELD_TAIL, HELD_COUNT) if QI[q, PAUSED] else (HEAD, TAIL, COUNT)
    if QI[q, count] == 0:
        QI[q, head] = m
    else:
        nxt[QI[q, tail]] = m
    QI[q, tail] = m
    QI[q, count] += 1


@njit(cache=True, inline="always")
def _absorb(q, now, in_due, in_rows, in_lo, nxt, QI, QF, SI, concurrent, discard, outcome, finished, reason):
    """Queue.absorb: every known arrival up to now into the buffer (or, wrangler dev's way
    with no consumer, dropped now)."""
    lo, hi_all = in_lo[q], in_lo[q + 1]
    taken = QI[q, NXT]
    if lo + taken < hi_all and in_due[lo + taken] <= now:
        hi = np.searchsorted(in_due[lo:hi_all], now, side="right")
        QI[q, NXT] = hi
        if discard and SI[q, HAS_CONSUMER] == 0:
            for i in range(taken, hi):
                m = in_rows[lo + i]
                outcome[m], finished[m], reason[m] = DROPPED, now, DISCARDED
            return
        was_empty = QI[q, COUNT] == 0
        for i in range(taken, hi):
            _put(nxt, QI, q, in_rows[lo + i])
        if QI[q, PAUSED]:                 # (held: not arrived, as far as the queue's counts go)
            return
        QI[q, ARRIVED] += hi - taken
        if was_empty and concurrent:
            QF[q, WAITING_SINCE] = in_due[lo + taken]
            QI[q, HAS_WAITING] = 1
        QI[q, NXT] = hi


@njit(cache=True, inline="always")
def _rewake(q, in_due, in_lo, QI, QF, SI, SF, concurrent, HT, HK, G):
    """Queue.rewake: the next wake-up, at the arrival that starts or fills a batch."""
    lo, n_in = in_lo[q], in_lo[q + 1] - in_lo[q]
    i, n, size = QI[q, NXT], QI[q, COUNT], SI[q, SIZE]
    target, has_target = 0.0, False
    j = i + size - n - 1
    if n < size and j < n_in:
        target, has_target = in_due[lo + j], True
    if n == 0 and i < n_in:     # (a pull consumer's queue: no batch timeout, a pull takes what is there)
        first = in_due[lo + i] + SF[q, TIMEOUT] if concurrent and SI[q, PULL] == 0 else in_due[lo + i]
        if not has_target or first < target:
            target = first
        has_target = True
    if has_target != (QI[q, HAS_WAKE] == 1) or (has_target and target != QF[q, WAKE_TIME]):
        QI[q, WAKE_SEQ] = _push(HT, HK, G, target, _WAKE, q, 0) if has_target else -1
        QF[q, WAKE_TIME] = target
        QI[q, HAS_WAKE] = 1 if has_target else 0


# A fault timeline (runtime.faults) as tables FT (a FaultTables): fault f's kind, its windows
# WS/WE[FI[f, F_WLO]:FI[f, F_WHI]], its rate limit's second and calls in it, what it injected,
# refused, threw, purged and evicted (FI); its retry-independent failure probability q, slowdown
# factor, calls per second and permanent share (FF); its draws' salt; each window's CPU seconds
# a consumer slowdown added (WCPU, WT: touched). FL is a flat list of fault indices: queue q's
# consumer consults its own errors FL[CF[q, 0]:CF[q, 1]], its slowdowns FL[CF[q, 2]:CF[q, 3]],
# its outages' throws FL[CF[q, 5]:CF[q, 6]] and, for a message of type y, the faults of the
# actors and stores it reaches FL[RR[q, y, 0]:RR[q, y, 1]] (ConsumerFaults; CF[q, 4]: any of
# these); pool a's service draws are slowed by FL[PS[a, 0]:PS[a, 1]], store s's latencies by
# FL[SS[s, 0]:SS[s, 1]] (scaled). Queue and actor operations are events of their own (OPS).
FaultTables = namedtuple("FaultTables", "FI FF salt WS WE WCPU WT FL CF RR PS SS")
(F_KIND, F_WLO, F_WHI, F_SECOND, F_USED, F_INJECTED, F_REJECTED, F_THROWS, F_PURGED, F_EVICTED) = range(10)
(F_Q, F_FACTOR, F_PER_SECOND, F_POISON) = range(4)
ERRORS, RATE_LIMIT, SLOWDOWN = range(3)


@njit(cache=True, inline="always")
def _window(f, t, FT):
    """FaultState.active: the index of fault ``f``'s window holding ``t``, or -1."""
    FI, WS, WE = FT.FI, FT.WS, FT.WE
    lo, hi = FI[f, F_WLO], FI[f, F_WHI]
    w = np.searchsorted(WS[lo:hi], t, side="right") - 1
    if w >= 0 and t < WE[lo + w]:
        return w
    return -1


@njit(cache=True)
def _slowed(value, lo, hi, now, FT):
    """scaled(): ``value`` times each slowdown FL[lo:hi] active now, in turn."""
    for j in range(lo, hi):
        f = FT.FL[j]
        if _window(f, now, FT) >= 0:
            value *= FT.FF[f, F_FACTOR]
    return value


@njit(cache=True)
def _fault_hits(q, m, y, now, failed, FT, DLT, ndl):
    """ConsumerFaults.apply for one message (row ``m``, type ``y``) not already failing:
    whether a fault active now fails it (its own errors first, then those of the actors and
    stores it reaches, in call order: a rate limit past its calls this second, an error by
    its draw), counted as that fault's."""
    FI, FF, fsalt, FL, CF, RR = FT.FI, FT.FF, FT.salt, FT.FL, FT.CF, FT.RR
    for j in range(CF[q, 0], CF[q, 1]):
        f = FL[j]
        if _window(f, now, FT) >= 0 and _fault_fails(f, m, failed, FF, fsalt, DLT, ndl):
            FI[f, F_INJECTED] += 1
            return True
    for j in range(RR[q, y, 0], RR[q, y, 1]):
        f = FL[j]
        if _window(f, now, FT) < 0:
            continue
        if FI[f, F_KIND] == RATE_LIMIT:       # FaultState.take
            second = np.int64(np.floor(now))
            if second != FI[f, F_SECOND]:
                FI[f, F_SECOND], FI[f, F_USED] = second, 0
            if FI[f, F_USED] < FF[f, F_PER_SECOND]:
                FI[f, F_USED] += 1
                continue
            FI[f, F_REJECTED] += 1
            FI[f, F_INJECTED] += 1
            return True
        if FI[f, F_KIND] == ERRORS and _fault_fails(f, m, failed, FF, fsalt, DLT, ndl):
            FI[f, F_INJECTED] += 1
            return True
    return False


@njit(cache=True, inline="always")
def _fault_fails(f, m, failed, FF, fsalt, DLT, ndl):
    """FaultState.fails for this attempt at row ``m``: its permanent share by the message (a
    dead letter is its original, as ``ledger.same_as`` says: DLT's copies, in row order), the
    rest by message and attempt."""
    if FF[f, F_POISON] > 0:
        origin = m
        while True:
            i = np.searchsorted(DLT[:ndl, 0], origin)
            if i < ndl and DLT[i, 0] == origin:
                origin = DLT[i, 1]
            else:
                break
        key = np.uint64(origin)
        if float(_mix(_mix(key) ^ (fsalt[f] ^ np.uint64(0x5EED)))) * (2.0 ** -64) < FF[f, F_POISON]:
            return True
    q = FF[f, F_Q]
    if q == 0:
        return False
    key = (np.uint64(m) << np.uint64(8)) ^ np.uint64(failed[m])
    return float(_mix(_mix(key) ^ fsalt[f])) * (2.0 ** -64) < q


@njit(cache=True, inline="always")
def _flush(q, now, QI, QF, SI, SF, keys, delays, body, failed, stamp, nxt, per_x, HT, HK, G, BI, BF, brows, dtries, fails,
           fdelay, otype, FT, DLT, outcome, finished, reason):
    """Queue.flush, then SpecConsumer.start: cut a batch from the front of queue ``q``'s
    buffer, draw its service time and failures, schedule its end. False if it was empty.
    (The caller made room in the batch tables.)"""
    b = _take(q, now, SI[q, SIZE], QI, SF, failed, stamp, nxt, G, BI, BF, brows, dtries, outcome, finished, reason)
    if b < 0:
        return False
    CF = FT.CF
    for j in range(CF[q, 5], CF[q, 6]):         # FaultedConsumer: in an outage the invocation throws
        f = FT.FL[j]
        if _window(f, now, FT) >= 0:
            FT.FI[f, F_THROWS] += 1
            BI[b, B_FHI], BI[b, B_RA], BF[b, 2] = BI[b, B_FLO], 0, THREW
            _push(HT, HK, G, now, _THROW, q, b)     # (returns, failed, at once; nothing drawn)
            return True
    _draws(q, b, now, QI, SI, SF, keys, delays, body, failed, per_x, G, BI, BF, brows, fails, fdelay, otype, FT, DLT)
    _begin(q, b, now, QI, QF, SI, BF, HT, HK, G)
    return True


@njit(cache=True, inline="always")
def _begin(q, b, now, QI, QF, SI, BF, HT, HK, G):
    """The end of SpecConsumer.start: batch ``b``'s work is scheduled (its CPU BF[b, 2])."""
    if SI[q, TASK] == 1:       # run as code (SpecConsumer._run_as_code): a task whose first step
        _push(HT, HK, G, now, _START, q, b)     # is one event later, then awaits work(cpu); its CPU
    else:                                     # is counted at the end
        QF[q, CPU] += BF[b, 2]
        _push(HT, HK, G, now + BF[b, 2], _DONE, q, b)


@njit(cache=True, inline="always")
def _cut(q, now, size, QI, SI, SF, keys, delays, body, failed, stamp, nxt, per_x, G, BI, BF, brows, dtries, fails, fdelay,
         otype, FT, DLT, outcome, finished, reason):
    """Queue.flush and SpecConsumer.start but for scheduling the batch's end (:func:`_begin`):
    cut a batch of up to ``size`` messages from the front of queue ``q``'s buffer, draw its
    service time (BF[b, 2]) and failures; its index, or -1 if the buffer was empty."""
    b = _take(q, now, size, QI, SF, failed, stamp, nxt, G, BI, BF, brows, dtries, outcome, finished, reason)
    if b >= 0:
        _draws(q, b, now, QI, SI, SF, keys, delays, body, failed, per_x, G, BI, BF, brows, fails, fdelay, otype, FT, DLT)
    return b


@njit(cache=True, inline="always")
def _take(q, now, size, QI, SF, failed, stamp, nxt, G, BI, BF, brows, dtries, outcome, finished, reason):
    """Queue.flush: cut a batch of up to ``size`` messages from the front of queue ``q``'s
    buffer (its rows, delivered now); its index, or -1 if the buffer was empty."""
    cutoff = now - SF[q, RETENTION]
    lo = G[NBR]
    m = QI[q, HEAD]
    take = 0
    while take < size and QI[q, COUNT] > 0:       # (Queue._drop_expired: those past the retention
        QI[q, COUNT] -= 1                         # period are dropped, the batch filled from the rest)
        if cutoff > 0 and stamp[m] < cutoff:
            outcome[m], finished[m], reason[m] = DROPPED, now, EXPIRED
        else:
            brows[lo + take] = m
            if dtries.shape[0]:                   # trace=True: each delivery's attempt number
                dtries[lo + take] = failed[m] + 1
            take += 1
        m = nxt[m]
    QI[q, HEAD] = m
    if take == 0:
        return -1
    G[NBR] = lo + take
    QI[q, RUNNING] += 1
    QI[q, BATCHES] += 1
    b = G[NB]
    G[NB] = b + 1
    BI[b, B_LO], BI[b, B_HI], BI[b, B_Q], BI[b, B_FLO] = lo, lo + take, q, G[NF]
    BF[b, 0], BF[b, 1] = now, np.nan
    return b


@njit(cache=True, inline="always")
def _draws(q, b, now, QI, SI, SF, keys, delays, body, failed, per_x, G, BI, BF, brows, fails, fdelay, otype, FT, DLT):
    """SpecConsumer.start for batch ``b``: its service time (BF[b, 2]) and failing messages."""
    lo, take = BI[b, B_LO], BI[b, B_HI] - BI[b, B_LO]
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
    CF = FT.CF
    for j in range(CF[q, 2], CF[q, 3]):           # a slowdown of this consumer (ConsumerFaults)
        f = FT.FL[j]
        w = _window(f, now, FT)
        if w >= 0:
            i = FT.FI[f, F_WLO] + w                   # (FaultState.add_cpu)
            FT.WCPU[i] += cpu * (FT.FF[f, F_FACTOR] - 1)
            FT.WT[i] = 1
            cpu *= FT.FF[f, F_FACTOR]
    transient, poison = SF[q, TRANSIENT], SF[q, POISON]
    retry_all, last = False, np.int64(-1)
    nf = G[NF]
    faulted = CF[q, 4] == 1                       # errors or rate limits may fail its messages
    if transient > 0 or poison > 0 or faulted:
        for k in range(take):
            m = brows[lo + k]
            hit = transient > 0 and _uniform(keys[q, 2], QI[q, N_TRIAL] + k) < transient
            if not hit and poison > 0:
                hit = _uniform(keys[q, 3], body[m]) < poison
            if not hit and faulted:
                hit = _fault_hits(q, m, otype[body[m]], now, failed, FT, DLT, G[NDL])
            if hit:
                d = delays[q, failed[m] + 1]
                fails[nf] = k
                fdelay[nf] = d
                nf += 1
                last = d
                if SI[q, RETRY_ALL] == 1:
                    retry_all = True
        if transient > 0:
            QI[q, N_TRIAL] += take
    G[NF] = nf
    BI[b, B_FHI], BI[b, B_RA], BI[b, B_DA] = nf, retry_all, last if retry_all else -1
    BF[b, 2] = cpu


@njit(cache=True)
def _poll(lp, now, idle_after, LI, LF, QI, QF, SI, SF, keys, delays, body, failed, stamp, nxt, per_x, HT, HK, G, BI,
          BF, brows, dtries, fails, fdelay, otype, FT, DLT, in_due, in_rows, in_lo, concurrent, discard, outcome, finished, reason):
    """Polling loop ``lp`` pulls (PullConsumer.pull): the queue cuts a batch as a flush does,
    leased until its visibility timeout (the expiry event), and the loop runs the consumer's
    behaviour on it (behaviour_handler: SpecConsumer.start); an empty pull is counted, and the
    loop sleeps ``interval`` seconds, or, from ``idle_after`` on, waits for a landing
    (PullClient._idle). (The caller made room in the batch tables.)"""
    q = LI[lp, L_Q]
    QI[q, PULLS] += 1
    _absorb(q, now, in_due, in_rows, in_lo, nxt, QI, QF, SI, concurrent, discard, outcome, finished, reason)
    b = -1
    if QI[q, COUNT] > 0:
        b = _cut(q, now, SI[q, PULL_SIZE], QI, SI, SF, keys, delays, body, failed, stamp, nxt, per_x, G, BI, BF,
                 brows, dtries, fails, fdelay, otype, FT, DLT, outcome, finished, reason)
    _rewake(q, in_due, in_lo, QI, QF, SI, SF, concurrent, HT, HK, G)
    if b >= 0:
        BI[b, B_LOOP] = lp
        BI[b, B_LEASE] = _push(HT, HK, G, now + SF[q, VISIBILITY], _EXPIRE, q, b)
        _begin(q, b, now, QI, QF, SI, BF, HT, HK, G)
        LI[lp, L_STATE], LI[lp, L_BATCH], LI[lp, L_TAKEN] = L_LEASED, b, BI[b, B_HI] - BI[b, B_LO]
        return
    QI[q, EMPTY] += 1
    if now >= idle_after:             # idle: at the end of the queue's list of loops waiting for a landing
        LF[lp] = now
        LI[lp, L_STATE], LI[lp, L_NEXT] = L_IDLE, -1
        if QI[q, IDLE_TAIL] >= 0:
            LI[QI[q, IDLE_TAIL], L_NEXT] = lp
        else:
            QI[q, IDLE_HEAD] = lp
        QI[q, IDLE_TAIL] = lp
        return
    LI[lp, L_STATE] = L_POLL
    _push(HT, HK, G, now + SF[q, INTERVAL], _PSTEP, q, lp)


@njit(cache=True)
def _woken(lp, now, LI, LF, QI, SF, HT, HK, G):
    """PullClient._idle after the landing that woke loop ``lp``: the polls it skipped while
    idle count as the empty pulls they would have been, and it sleeps to the first poll of
    its cadence at or after now."""
    q = LI[lp, L_Q]
    polled, interval = LF[lp], SF[q, INTERVAL]
    tick, skipped = polled + interval, 0
    if (now - polled) / interval < EXACT_TICKS:     # added up as the sleeps would
        while tick < now:
            skipped += 1
            tick += interval
    else:                                       # a long wait: the same polls, by arithmetic
        ticks = max(1, math.ceil((now - polled) / interval))
        tick = polled + ticks * interval
        skipped = max(0, ticks - 1)
    QI[q, PULLS] += skipped
    QI[q, EMPTY] += skipped
    LI[lp, L_STATE] = L_POLL
    _push(HT, HK, G, now + max(0.0, tick - now), _PSTEP, q, lp)


@njit(cache=True, inline="always")
def _land(HT, HK, G, QI, q, now, delay, rows, n, lrows, LG):
    """The broker's ``_enqueue``: ``rows[:n]`` land in queue ``q`` after ``delay`` (the
    caller made room in lrows and LG)."""
    lo = G[NL]
    for i in range(n):
        lrows[lo + i] = rows[i]
    g = G[NG]
    LG[g, 0], LG[g, 1] = lo, lo + n
    G[NL], G[NG] = lo + n, g + 1
    QI[q, LANDING] += n
    _push(HT, HK, G, now + delay, _LAND, q, g)


# an object's state OB[i, ...] (an instance of an OBJECTS pool, as ActorObject keeps it): requests
# inside it, requests served, its idle-eviction timer's sequence number (-1: none), evictions,
# whether its instance is in memory, its first call (the order the runtime meets objects in)
(O_ACTIVE, O_REQUESTS, O_EVICT, O_EVICTIONS, O_LIVE, O_FIRST) = range(6)


@njit(cache=True, inline="always")
def _call(a, x, m, now, P, pkeys, cumulative, busy, w_head, w_tail, tats, BI, TK, OB, c_pool, c_key, c_arrived,
          c_started, c_finished, p_picks, p_waiting, p_holding, period, most, HT, HK, G, ERRI, ERRF):
    """Caller ``x``'s next call to pool ``a``, for body ``m``, arrives now: its key is picked
    (the next draw of the pool's key stream) and its call row made. A service-only pool's
    call enters the instance's gate (SpecActors._enter, :func:`_to_gate`); an OBJECTS pool's
    (CodeActorCaller.awaitable, then ActorObject.call) gets a serve task, and is served
    (:func:`_serve`). Past the soft limit either is held (SpecActors._hold,
    ActorObject._queued): it goes on ``wait`` seconds later (an admission event), or, held
    longer than ``most`` seconds, it fails then, overloaded (its place in the bucket given
    back: a _FAIL event). (The caller made room in the call columns, tasks and errors.)"""
    lo, n = P[a, P_FIRST], P[a, P_INSTANCES]
    u = _uniform(pkeys[a, 0], p_picks[a])
    p_picks[a] += 1
    k = np.searchsorted(cumulative[lo:lo + n], u, side="right")
    if k > n - 1:
        k = n - 1
    c = G[CALLS_MADE]
    G[CALLS_MADE] = c + 1
    c_pool[c], c_key[c] = a, k
    c_arrived[c] = now
    c_started[c] = c_finished[c] = np.nan             # (not yet)
    (TK if x & 1 else BI)[x >> 1, B_CALL] = c
    i = lo + k
    objects = P[a, P_KIND] == OBJECTS
    if objects:                                       # the request's own task (reusing a finished one's row)
        t = G[FREE_T]
        if t >= 0:
            G[FREE_T] = TK[t, T_FREE]
        else:
            t = G[NT]
            G[NT] = t + 1
        TK[t, T_PARENT], TK[t, T_SERVES], TK[t, T_BODY], TK[t, T_PC] = x, c, m, -1
        TK[t, B_CALL], TK[t, B_ERR] = -1, -1
        if OB[i, O_FIRST] < 0:
            OB[i, O_FIRST] = c
        x = 2 * t + 1                                 # (from here on: the task that serves it)
    if period > 0:                                    # the soft limit: admission()
        tat = (tats[i] if tats[i] > now else now) + period
        tats[i] = tat
        wait = tat - now - 1.0
        if wait > 0:
            if wait > most:                           # it never runs: its place is given back
                tats[i] -= period
                e = _error(ERRI, ERRF, G, OBJECT_OVERLOAD if objects else POOL_OVERLOAD, c, x, 0.0)
                _push(HT, HK, G, now + most, _FAIL, 0, e)
            else:
                _push(HT, HK, G, now + wait, _OADMIT if objects else _ADMIT, 0, x)
            return
    if objects:
        _serve(a, i, x, now, busy, w_head, w_tail, BI, TK, OB, p_waiting, p_holding, HT, HK, G)
    else:
        _to_gate(a, i, x, now, busy, w_head, w_tail, BI, TK, p_waiting, p_holding, HT, HK, G, _ENTRY)


@njit(cache=True, inline="always")
def _error(ERRI, ERRF, G, kind, what, x, since):
    """A new error row (see ERRI's comment): its index."""
    e = G[NERR]
    G[NERR] = e + 1
    ERRI[e, E_KIND], ERRI[e, E_A], ERRI[e, E_X], ERRI[e, E_BATCH], ERRI[e, E_BODY] = kind, what, x, -1, -1
    ERRF[e] = since
    return e


@njit(cache=True, inline="always")
def _not_ok(NOK, G, c, what):
    """Call ``c`` ended ``what`` (OVERLOADED, ERRORED), not "ok"."""
    k = G[NNOK]
    NOK[k, 0], NOK[k, 1] = c, what
    G[NNOK] = k + 1


@njit(cache=True)
def _serve(a, i, x, now, busy, w_head, w_tail, BI, TK, OB, p_waiting, p_holding, HT, HK, G):
    """ActorObject._serve: object ``i`` takes task ``x``'s request (its idle-eviction timer,
    if any, is cancelled) and the task enters the object's gate."""
    OB[i, O_ACTIVE] += 1
    OB[i, O_REQUESTS] += 1
    OB[i, O_EVICT] = -1
    _to_gate(a, i, x, now, busy, w_head, w_tail, BI, TK, p_waiting, p_holding, HT, HK, G, _OSTEP)


@njit(cache=True, inline="always")
def _to_gate(a, i, x, now, busy, w_head, w_tail, BI, TK, p_waiting, p_holding, HT, HK, G, kind):
    """Gate.enter: ``x`` enters instance ``i``'s gate, of pool ``a`` (an event ``kind`` now:
    a service-only call's entry, or a serve task's next step), or waits behind the one
    holding it, in FIFO order."""
    if busy[i]:
        (TK if x & 1 else BI)[x >> 1, B_WAITING] = -1     # the end of the line (whatever x waited
        last = w_tail[i]                                  # behind before: a serve task re-enters)
        if last >= 0:
            (TK if last & 1 else BI)[last >> 1, B_WAITING] = x
        else:
            w_head[i] = x
        w_tail[i] = x
        p_waiting[a] += 1
    else:
        busy[i] = True
        p_holding[a] += 1
        _push(HT, HK, G, now, kind, 0, x)


@njit(cache=True, inline="always")
def _leave(a, i, now, busy, w_head, w_tail, BI, TK, p_waiting, p_holding, HT, HK, G, kind):
    """Gate.leave: the first waiting at instance ``i``'s gate gets it (an event ``kind`` now),
    or the gate is free."""
    waiting = w_head[i]
    if waiting >= 0:
        w_head[i] = (TK if waiting & 1 else BI)[waiting >> 1, B_WAITING]
        if w_head[i] < 0:
            w_tail[i] = -1
        p_waiting[a] -= 1
        _push(HT, HK, G, now, kind, 0, waiting)
    else:
        busy[i] = False
        p_holding[a] -= 1


@njit(cache=True)
def _resume(x, now, BI, TK, P, c_pool, c_key, busy, w_head, w_tail, p_waiting, p_holding, HT, HK, G):
    """Task._wake: what caller ``x`` awaited is done. A consumer's task (a batch's, or one
    message's) takes its next step one event later; a serve task re-enters its object's gate."""
    if x & 1 and TK[x >> 1, T_SERVES] >= 0:
        c = TK[x >> 1, T_SERVES]
        a = c_pool[c]
        _to_gate(a, P[a, P_FIRST] + c_key[c], x, now, busy, w_head, w_tail, BI, TK, p_waiting, p_holding, HT, HK, G,
                 _OSTEP)
    else:
        _push(HT, HK, G, now, _STEP, BI[TK[x >> 1, B_LO] if x & 1 else x >> 1, B_Q], x)


@njit(cache=True)
def _write(st, m, x, q, now, ST, STF, skeys, s_draws, kv_last, kv_period, wl_store, wl_body, wl_time, HT, HK, G, FT,
           ERRI, ERRF, rejected):
    """Caller ``x`` writes body ``m`` to store ``st`` (StoreWriter.write): the write is logged and
    its latency drawn; returns the latency (its end, an I/O event, is scheduled when over 0), or
    -1.0 for an Analytics Engine data point (done at once, nothing drawn: awaiting it does not
    suspend). A KV put over the per-key write rate (production) is refused: not written, its
    future fails after its latency (a _FAIL event, even at zero latency): -2.0."""
    if ST[st, ST_KIND] == KV and kv_period > 0:       # KV's per-key write rate
        last = kv_last[ST[st, ST_KV], m]
        if last == last and now - last < kv_period:
            latency, used = _draw(ST[st, ST_LATENCY], STF[st, 0], STF[st, 1], skeys[st], s_draws[st])
            s_draws[st] += used
            latency = _slowed(latency, FT.SS[st, 0], FT.SS[st, 1], now, FT)
            rejected[st] += 1
            e = _error(ERRI, ERRF, G, KV_REFUSED, st, x, now - last)
            ERRI[e, E_BODY] = m
            _push(HT, HK, G, now + latency, _FAIL, q, e)
            return -2.0
        kv_last[ST[st, ST_KV], m] = now
    w = G[NW]
    wl_store[w], wl_body[w], wl_time[w] = st, m, now
    G[NW] = w + 1
    if ST[st, ST_KIND] == ANALYTICS:
        return -1.0
    latency, used = _draw(ST[st, ST_LATENCY], STF[st, 0], STF[st, 1], skeys[st], s_draws[st])
    s_draws[st] += used
    latency = _slowed(latency, FT.SS[st, 0], FT.SS[st, 1], now, FT)
    if latency > 0:                                   # an I/O future: done after its latency
        _push(HT, HK, G, now + latency, _IO, q, x)
    return latency


@njit(cache=True)
def _send(target, vals, lo, n, now, body, rowq, failed, outcome, reason, stamp, sent, finished, SI, SF, SD,
          rate_window, lrows, LG, QI, HT, HK, G):
    """send_spec_messages: bodies ``vals[lo:lo + n]`` sent to queue ``target`` together (one
    sendBatch: ledger rows now, what is over the throughput limit rejected, the rest landing
    together after the queue's delivery delay)."""
    first = G[ROWS]
    for i in range(n):
        r = first + i
        body[r], rowq[r], failed[r], outcome[r], reason[r] = vals[lo + i], target, 0, 0, 0
        stamp[r], sent[r], finished[r] = now, now, np.nan
    G[ROWS] = first + n
    last = first + n
    per_window = SI[target, PER_WINDOW]
    if per_window >= 0:                               # Queue.enqueue's throughput limit
        w = np.int64(now // rate_window)
        so_far = SD[target, w]
        if so_far + n > per_window:
            fits = per_window - so_far if per_window > so_far else 0
            for r in range(first + fits, last):
                outcome[r], finished[r], reason[r] = REJECTED, now, TOO_MANY
            last = first + fits
        SD[target, w] = so_far + (last - first)
        if last == first:
            return
    lo2 = G[NL]
    for i in range(last - first):
        lrows[lo2 + i] = first + i
    LG[G[NG], 0], LG[G[NG], 1] = lo2, lo2 + last - first
    G[NL] += last - first
    G[NG] += 1
    QI[target, LANDING] += last - first
    _push(HT, HK, G, now + SF[target, DELAY], _LAND, target, G[NG] - 1)


@njit(cache=True)
def _object_step(x, now, TK, OB, o_busy_s, PROG, P, PF, pkeys, cumulative, p_picks, p_draws, p_busy_s, busy, w_head,
                 w_tail, tats, p_waiting, p_holding, period, most, c_pool, c_key, c_arrived, c_started, c_finished, BI,
                 bodies, body, rowq, failed, outcome, reason, stamp, sent, finished, SI, SF, SD, rate_window, lrows, LG,
                 QI, ST, STF, skeys, s_draws, kv_last, kv_period, wl_store, wl_body, wl_time, HT, HK, G, FT, ERRI,
                 ERRF, NOK, rejected):
    """Serve task ``x``'s next step, with its object's gate (an _OSTEP event): at first the
    request starts and computes (``ctx.work``: the gate kept); then its steps in turn, a
    publish at once, a write or a child request awaited (the gate left); at the end the
    request is done (serve's ``finally``: the idle-eviction timer), the gate left and the
    caller resumed; if what it awaited failed (B_ERR), the request ends there with an error,
    which its caller gets. (Its own function: inlined into ``_run``, numba took three times
    as long to compile the kernel.)"""
    t = x >> 1
    c = TK[t, T_SERVES]
    a = c_pool[c]
    i = P[a, P_FIRST] + c_key[c]
    m = TK[t, T_BODY]
    if TK[t, T_PC] < 0:                       # its first: started; ctx.work(service), the gate kept
        c_started[c] = now
        OB[i, O_LIVE] = 1                     # (ensure_instance)
        seconds, used = _draw(P[a, P_SERVICE], PF[a, 0], PF[a, 1], pkeys[a, 1], p_draws[a])
        p_draws[a] += used
        seconds = _slowed(seconds, FT.PS[a, 0], FT.PS[a, 1], now, FT)
        p_busy_s[a] += seconds
        o_busy_s[i] += seconds
        TK[t, T_PC] = P[a, P_LO]
        _push(HT, HK, G, now + seconds, _OSTEP, 0, x)
        return
    waits = False
    failed_with = TK[t, B_ERR]                # (what it awaited failed: the handler raises)
    while TK[t, T_PC] < P[a, P_HI] and failed_with < 0:   # then its writes, calls and publishes in turn
        e = TK[t, T_PC]
        TK[t, T_PC] = e + 1
        what = PROG[e, 1]
        if PROG[e, 0] == PUBLISH:             # send_spec_messages(queue, [body]): no await
            bodies[0] = m
            _send(what, bodies, 0, 1, now, body, rowq, failed, outcome, reason, stamp, sent, finished, SI,
                  SF, SD, rate_window, lrows, LG, QI, HT, HK, G)
            continue
        if PROG[e, 0] == WRITE:
            latency = _write(what, m, x, 0, now, ST, STF, skeys, s_draws, kv_last, kv_period, wl_store,
                             wl_body, wl_time, HT, HK, G, FT, ERRI, ERRF, rejected)
            if latency == -1.0:                   # (a data point: done at once)
                continue
        else:                                 # the child's call (awaitable(body)), then the await
            _call(what, x, m, now, P, pkeys, cumulative, busy, w_head, w_tail, tats, BI, TK, OB, c_pool,
                  c_key, c_arrived, c_started, c_finished, p_picks, p_waiting, p_holding, period, most, HT,
                  HK, G, ERRI, ERRF)
            latency = 1.0
        # awaiting I/O or another object opens the gate (IoFuture: even when done already,
        # then it is back in line at once)
        _leave(a, i, now, busy, w_head, w_tail, BI, TK, p_waiting, p_holding, HT, HK, G, _OSTEP)
        if latency == 0:
            _to_gate(a, i, x, now, busy, w_head, w_tail, BI, TK, p_waiting, p_holding, HT, HK, G, _OSTEP)
        waits = True
        break
    if waits:
        return
    # the handler returns (or raises: the call's outcome is "error"): serve's finally (the call
    # ends; idle, the eviction timer), then Task._step leaves the gate and completes the task:
    # its caller goes on (or gets the error)
    c_finished[c] = now
    if failed_with >= 0:
        _not_ok(NOK, G, c, ERRORED)
    OB[i, O_ACTIVE] -= 1
    if OB[i, O_ACTIVE] == 0 and PF[a, 2] >= 0:
        OB[i, O_EVICT] = _push(HT, HK, G, now + PF[a, 2], _EVICT, 0, i)
    _leave(a, i, now, busy, w_head, w_tail, BI, TK, p_waiting, p_holding, HT, HK, G, _OSTEP)
    parent = TK[t, T_PARENT]
    if failed_with >= 0:
        (TK if parent & 1 else BI)[parent >> 1, B_ERR] = failed_with
    _resume(parent, now, BI, TK, P, c_pool, c_key, busy, w_head, w_tail, p_waiting, p_holding, HT, HK, G)
    TK[t, T_FREE] = G[FREE_T]                 # (its row is free for the next request)
    G[FREE_T] = t


@njit(cache=True)
def _operation(k, now, OPS, P, OB, QI, QF, SI, nxt, in_due, in_rows, in_lo, concurrent, discard, outcome, finished,
               reason, FT):
    """Fault timeline operation ``k`` (FaultPlan.install's): an eviction storm, a purge, a
    pause or a resume of a queue's delivery. True when delivery resumed (the caller lands
    nothing, as ``land(())`` does: the flusher looks, the queue wakes again)."""
    op, target, f = OPS[k, 0], OPS[k, 1], OPS[k, 2]
    if op == OP_EVICT:                        # FaultPlan._evict: every object in memory, busy too
        if P[target, P_KIND] == OBJECTS:      # (a service-only class keeps none)
            for i in range(P[target, P_FIRST], P[target, P_FIRST] + P[target, P_INSTANCES]):
                if OB[i, O_LIVE]:
                    OB[i, O_LIVE], OB[i, O_EVICT] = 0, -1     # (its idle timer: moot)
                    OB[i, O_EVICTIONS] += 1
                    FT.FI[f, F_EVICTED] += 1
        return False
    q = target
    if op == OP_PURGE:                        # Queue.purge: what waits, buffered or held
        _absorb(q, now, in_due, in_rows, in_lo, nxt, QI, QF, SI, concurrent, discard, outcome, finished, reason)
        for first, count in ((HEAD, COUNT), (HELD_HEAD, HELD_COUNT)):
            m = QI[q, first]
            for _ in range(QI[q, count]):
                outcome[m], finished[m], reason[m] = DROPPED, now, PURGED
                m = nxt[m]
            FT.FI[f, F_PURGED] += QI[q, count]
            QI[q, count] = 0
        QI[q, HEAD] = QI[q, TAIL] = QI[q, HELD_HEAD] = QI[q, HELD_TAIL] = -1
        return False
    if op == OP_PAUSE:                        # Queue.pause_delivery: the buffer is held
        if QI[q, PAUSED] == 0:
            _absorb(q, now, in_due, in_rows, in_lo, nxt, QI, QF, SI, concurrent, discard, outcome, finished, reason)
            QI[q, HELD_HEAD], QI[q, HELD_TAIL], QI[q, HELD_COUNT] = QI[q, HEAD], QI[q, TAIL], QI[q, COUNT]
            QI[q, HEAD], QI[q, TAIL], QI[q, COUNT] = -1, -1, 0
            QI[q, PAUSED] = 1
        return False
    if QI[q, PAUSED] == 0:                    # Queue.resume_delivery: held, then buffered, delivered
        return False
    _absorb(q, now, in_due, in_rows, in_lo, nxt, QI, QF, SI, concurrent, discard, outcome, finished, reason)
    if QI[q, HELD_COUNT]:                     # (the buffer stays empty while paused; if not, it
        if QI[q, COUNT]:                      # would follow what was held)
            nxt[QI[q, HELD_TAIL]] = QI[q, HEAD]
            QI[q, HELD_TAIL] = QI[q, TAIL]
            QI[q, HELD_COUNT] += QI[q, COUNT]
        QI[q, HEAD], QI[q, TAIL], QI[q, COUNT] = QI[q, HELD_HEAD], QI[q, HELD_TAIL], QI[q, HELD_COUNT]
    QI[q, HELD_HEAD], QI[q, HELD_TAIL], QI[q, HELD_COUNT], QI[q, PAUSED] = -1, -1, 0, 0
    _absorb(q, now, in_due, in_rows, in_lo, nxt, QI, QF, SI, concurrent, discard, outcome, finished, reason)
    return True


@njit(cache=True, inline="always")
def _uncancel(CX, QI, q, seq):
    """Whether SingleFlush timer ``seq`` of queue ``q`` was cancelled (then it is forgotten:
    it has fired). Only timeout timers are cancelled, all ``max_batch_timeout`` after they
    were set: they fire in the order they were cancelled, so CX[q] is a FIFO."""
    head = QI[q, CX_HEAD]
    if head < QI[q, CX_TAIL] and CX[q, head % CX.shape[1]] == seq:
        QI[q, CX_HEAD] = head + 1
        return True
    return False


@njit(cache=True, _nrt=False)
def _run(G, GF, QI, QF, SI, SF, keys, delays, pub, otype, routes, order, bodies, gi, gf, fed, in_due, in_rows, in_lo,
         body, failed, outcome, reason, rowq, stamp, sent, finished, nxt, DLT, chain, chain_body, TK, qwrites, ST, STF,
         skeys, s_draws, kv_last, wl_store, wl_body, wl_time, BI, BF, done_order,
         brows, dtries, ddisp, fails, fdelay, lrows, LG, SM, LV, SD, per_x, scratch, d_vals, d_of, P, PF, pkeys, cumulative, busy,
         w_head, w_tail, tats, c_pool, c_key, c_arrived, c_started, c_finished, p_picks, p_draws, p_busy_s,
         p_waiting, p_holding, OB, o_busy_s, PROG, FT, LI, LF, OPS, ERRI, ERRF, NOK, rejected, HT, HK, CX,
         row_margin):
    """Process events (see :func:`_engine`) until none are left (returns False) or a table is
    short of room for the next one (returns True: the caller makes room and calls again).
    Nothing here allocates or reassigns an array (it is compiled without numba's reference
    counting, which took two thirds of the time): the timeline samples SM, autoscaler levels
    LV (queue, time, level), sends per throughput window SD[q, window] and each queue's
    cancelled timers CX[q] are preallocated tables like the rest."""
    nq, na = SI.shape[0], P.shape[0]
    concurrent, autoscale = gi[0] == 1, gi[1] == 1
    step_up, step_down, max_events, discard = gi[3], gi[4], gi[6], gi[7] == 1
    window, drain_s, wall, step, duration, rate_window, period = gf[0], gf[1], gf[2], gf[3], gf[4], gf[5], gf[6]
    kv_period, most, until = gf[7], gf[8], gf[9]
    k_weight = 1.0 / gi[5]
    now = GF[0]
    while G[HN] > 0:
        if (G[NB] + BATCH_ROOM > BI.shape[0] or G[NBR] + BATCH_ROWS_ROOM > brows.shape[0]
                or G[NF] + BATCH_ROWS_ROOM > fails.shape[0] or G[ROWS] + row_margin > body.shape[0]
                or G[NL] + row_margin + 128 > lrows.shape[0] or G[NG] + BATCH_ROOM > LG.shape[0]
                or G[CALLS_MADE] + 1 > c_key.shape[0] or G[HN] + HEAP_ROOM > HT.shape[0]
                or G[NSM] + 1 + 4 * nq + 2 * na > SM.shape[0] or G[NLV] + 1 > LV.shape[0]
                or G[NDL] + BATCH_ROOM > DLT.shape[0] or G[NCH] + BATCH_ROWS_ROOM > chain.shape[0]
                or G[NW] + BATCH_ROWS_ROOM > wl_store.shape[0] or G[NT] + BATCH_ROOM > TK.shape[0]
                or G[NERR] + 2 > ERRI.shape[0] or G[NNOK] + 2 > NOK.shape[0]
                or HT[0] / rate_window + 3 > SD.shape[1]):
            GF[0] = now
            return True
        if HT[0] > until:                             # drain=False: clock.run(until=duration) stops here
            break
        if HT[0] > duration and G[DRAINING] == 0:     # the drain begins (simulate._drain): around a cycle,
            G[DRAINING] = 1                           # messages may enter DRAIN_TRIPS times those in flight
            if gi[10]:
                in_flight = 0
                for m in range(G[ROWS]):
                    in_flight += outcome[m] == 0
                G[CAP] = min(G[CAP], G[ROWS] + DRAIN_TRIPS * in_flight + DRAIN_SLACK)
        if G[ROWS] > G[CAP]:                          # (the Python engine says which, as it does)
            G[ABORT] = 7
            break
        t, s, code = _pop(HT, HK, G)
        kind, q, arg = code & 31, (code >> 5) & 255, code >> 13
        if (kind == _WAKE and s != QI[q, WAKE_SEQ]) or (kind == _PENDING and _uncancel(CX, QI, q, s)) or (
                kind == _TIMER and s != QI[q, TIMER_SEQ]) or (kind == _EVICT and s != OB[arg, O_EVICT]) or (
                kind == _EXPIRE and s != BI[arg, B_LEASE]):
            continue                                  # cancelled
        now = t
        G[EVENTS] += 1
        if G[EVENTS] > max_events:
            G[ABORT] = 3
            break
        finished_batch = -1                           # a batch whose handler returns now
        errored = -1                                  # ... failing with this error (ERRI)
        expired = False                               # ... or whose lease expired now (a pull batch)
        thrown = False                                # ... or whose invocation threw (an outage)
        polling = -1                                  # a pull loop that polls on, after all that
        stepping = -1                                 # a task batch that runs its next steps now
        landed = rewake = False
        n_dead = 0
        if kind == _WAKE:                             # land(()): absorb, landed, rewake
            _absorb(q, now, in_due, in_rows, in_lo, nxt, QI, QF, SI, concurrent, discard, outcome, finished, reason)
            landed = SI[q, HAS_CONSUMER] == 1
            rewake = True
        elif kind == _LAND:                           # _land(rows): land them
            lo, hi = LG[arg, 0], LG[arg, 1]
            QI[q, LANDING] -= hi - lo
            _absorb(q, now, in_due, in_rows, in_lo, nxt, QI, QF, SI, concurrent, discard, outcome, finished, reason)
            if SI[q, HAS_CONSUMER] == 0 and discard:  # wrangler dev forgets what has no consumer
                for i in range(lo, hi):
                    m = lrows[i]
                    outcome[m], finished[m], reason[m] = DROPPED, now, DISCARDED
            else:
                for i in range(lo, hi):
                    _put(nxt, QI, q, lrows[i])
                if not QI[q, PAUSED]:
                    QI[q, ARRIVED] += hi - lo
            landed = SI[q, HAS_CONSUMER] == 1
            rewake = True
        elif kind == _PENDING:                        # SingleFlush._fire
            if s == QI[q, PENDING_SEQ]:
                QI[q, FIRED] = 1                      # (cancelling it now changes nothing)
            _absorb(q, now, in_due, in_rows, in_lo, nxt, QI, QF, SI, concurrent, discard, outcome, finished, reason)
            if QI[q, COUNT] >= SI[q, SIZE]:
                QI[q, IMMEDIATE] = 1
            if not _flush(q, now, QI, QF, SI, SF, keys, delays, body, failed, stamp, nxt, per_x, HT, HK, G, BI, BF, brows, dtries,
                          fails, fdelay, otype, FT, DLT, outcome, finished, reason):
                QI[q, PENDING_SEQ] = -1               # an empty flush: finished (the buffer is empty)
            rewake = True
        elif kind == _TIMER:                          # ConcurrentFlush._expire
            QI[q, TIMER_SEQ] = -1
            QI[q, DUE] = 1
            _absorb(q, now, in_due, in_rows, in_lo, nxt, QI, QF, SI, concurrent, discard, outcome, finished, reason)
            landed = rewake = True
        elif kind == _SAMPLE:                         # simulate._sample
            i = G[NSM]
            SM[i] = now
            for r in range(nq):
                _absorb(r, now, in_due, in_rows, in_lo, nxt, QI, QF, SI, concurrent, discard, outcome, finished, reason)
                SM[i + 1], SM[i + 2], SM[i + 3] = QI[r, COUNT] + QI[r, HELD_COUNT], QI[r, LANDING], QI[r, RUNNING]
                SM[i + 4] = (QI[r, LEVEL] if autoscale else SI[r, MAX_CONC]) if concurrent else 1
                if SI[r, PULL] == 1:                  # a pull consumer's: its client's polling loops
                    SM[i + 4] = SI[r, LOOP_HI] - SI[r, LOOP_LO]
                i += 4
            for a in range(na):
                SM[i + 1], SM[i + 2] = p_waiting[a], p_holding[a]
                i += 2
            G[NSM] = i + 1
            while G[HN] > 0:                          # clock.peek: drop cancelled entries
                s2, code2 = HK[0, 0], HK[0, 1]
                k2, q2, a2 = code2 & 31, (code2 >> 5) & 255, code2 >> 13
                if (k2 == _WAKE and s2 != QI[q2, WAKE_SEQ]) or (k2 == _PENDING and _uncancel(CX, QI, q2, s2)) or (
                        k2 == _TIMER and s2 != QI[q2, TIMER_SEQ]) or (k2 == _EVICT and s2 != OB[a2, O_EVICT]) or (
                        k2 == _EXPIRE and s2 != BI[a2, B_LEASE]):
                    _pop(HT, HK, G)
                else:
                    break
            if now + step <= duration or G[HN] > 0:
                _push(HT, HK, G, now + step, _SAMPLE, 0, 0)
            continue
        elif kind == _START:                          # the task's first step: await ctx.work(cpu)
            _push(HT, HK, G, now + BF[arg, 2], _DONE, q, arg)
            continue
        elif kind == _DONE:                           # SpecConsumer._downstream, or the task after its CPU
            b = arg
            lo, hi = BI[b, B_LO], BI[b, B_HI]
            n_acked = 0
            if not BI[b, B_RA]:                       # the acked messages' bodies
                f, fh = BI[b, B_FLO], BI[b, B_FHI]
                for k in range(hi - lo):
                    if f < fh and fails[f] == k:
                        f += 1
                        continue
                    scratch[n_acked] = body[brows[lo + k]]
                    n_acked += 1
            routed = SI[q, TASK] == 1               # (then routes[q, type]: a queue, -1 the default
            if routed:                                # steps, or -2 - a: a call to pool a)
                BI[b, B_ERR] = -1                     # (a task: nothing it awaited has failed yet)
            if n_acked:
                # the queues sent to, in the order the consumer first adds each (its sends dict):
                # the publish list, or, routing by type, each message's target (or the publish list)
                n_t = 0
                for k in range(n_acked if routed else 1):
                    target = routes[q, otype[scratch[k]]] if routed else -1
                    if target < -1:                   # to an actor: no send
                        continue
                    for p in range(SI[q, PUB_LO] if target < 0 else 0, SI[q, PUB_HI] if target < 0 else 1):
                        t2 = pub[p] if target < 0 else target
                        seen = False
                        for i in range(n_t):
                            seen = seen or order[i] == t2
                        if not seen:
                            order[n_t] = t2
                            n_t += 1
                for ti in range(n_t):                 # publish: sendBatch calls of 100
                    target = order[ti]
                    n_b = 0
                    for k in range(n_acked):          # the bodies this queue gets, in order
                        route = routes[q, otype[scratch[k]]] if routed else -1
                        goes = route == target
                        if route == -1:
                            for p in range(SI[q, PUB_LO], SI[q, PUB_HI]):
                                goes = goes or pub[p] == target
                        if goes:
                            bodies[n_b] = scratch[k]
                            n_b += 1
                    for c in range(0, n_b, 100):
                        _send(target, bodies, c, min(100, n_b - c), now, body, rowq, failed, outcome, reason, stamp,
                              sent, finished, SI, SF, SD, rate_window, lrows, LG, QI, HT, HK, G)
                a = SI[q, CALLS]
                if routed:                            # the task then awaits each message's steps in turn
                    BI[b, B_CHAIN] = G[NCH]           # (in parallel: a task of its own for each message
                    BI[b, B_OUT] = 0                  # with steps, its first step now: ctx.gather)
                    for k in range(n_acked):
                        first = G[NCH]
                        route = routes[q, otype[scratch[k]]]
                        if route == -1:               # the default: its writes, then the call
                            for w in range(SI[q, W_LO], SI[q, W_HI]):
                                chain[G[NCH]], chain_body[G[NCH]] = -1 - qwrites[w], scratch[k]
                                G[NCH] += 1
                        if route < -1 or route == -1 and a >= 0:
                            chain[G[NCH]], chain_body[G[NCH]] = -2 - route if route < -1 else a, scratch[k]
                            G[NCH] += 1
                        if SI[q, PARALLEL] == 1 and G[NCH] > first:
                            t = G[NT]
                            G[NT] = t + 1
                            TK[t, B_LO], TK[t, B_CHAIN], TK[t, B_CHEND], TK[t, T_SERVES] = b, first, G[NCH], -1
                            TK[t, B_ERR] = -1
                            BI[b, B_OUT] += 1
                            _push(HT, HK, G, now, _STEP, q, 2 * t + 1)
                    BI[b, B_CHEND] = G[NCH]
                    if SI[q, PARALLEL] == 1:          # the batch's own task awaits them all (gather)
                        if BI[b, B_OUT]:
                            continue
                        BI[b, B_CHAIN] = BI[b, B_CHEND]   # (none had steps: gather is done at once)
                elif a >= 0:                          # call_each: the first call now
                    BI[b, B_LEFT] = n_acked - 1
                    _call(a, 2 * b, 0, now, P, pkeys, cumulative, busy, w_head, w_tail, tats, BI, TK, OB, c_pool, c_key,
                          c_arrived, c_started, c_finished, p_picks, p_waiting, p_holding, period, most, HT, HK, G, ERRI, ERRF)
                    continue
            if routed:                                # the task goes on with its steps (below)
                if not n_acked:
                    BI[b, B_CHAIN] = BI[b, B_CHEND] = 0
                stepping = 2 * b
            elif SI[q, PULL] == 1:                    # a pull batch: its loop's handler goes on (acks)
                _push(HT, HK, G, now, _PSTEP, q, BI[b, B_LOOP])
                continue
            else:
                finished_batch = b
        elif kind == _STEP:                           # caller arg's step after an awaited call or write
            stepping = arg
        elif kind == _PSTEP:                          # pull loop arg's next step
            state = LI[arg, L_STATE]
            if state == L_POLL:
                _poll(arg, now, duration, LI, LF, QI, QF, SI, SF, keys, delays, body, failed, stamp, nxt, per_x, HT,
                      HK, G, BI, BF, brows, dtries, fails, fdelay, otype, FT, DLT, in_due, in_rows, in_lo, concurrent, discard,
                      outcome, finished, reason)
                continue
            if state == L_IDLE:
                _woken(arg, now, LI, LF, QI, SF, HT, HK, G)
                continue
            b = LI[arg, L_BATCH]                      # the behaviour is done with its batch: ack it
            if BI[b, B_LEASE] >= 0:                   # (ignored if its lease expired: delivered again)
                BI[b, B_LEASE] = -1                   # settled: its expiry is cancelled
                finished_batch = b
            polling = arg
        elif kind == _THROW:                          # an outage: the batch returns, failed
            finished_batch = arg
            thrown = True
        elif kind == _OP:                             # a fault timeline's queue or actor operation
            q = OPS[arg, 1]
            if not _operation(arg, now, OPS, P, OB, QI, QF, SI, nxt, in_due, in_rows, in_lo, concurrent, discard,
                              outcome, finished, reason, FT):
                continue
            landed = SI[q, HAS_CONSUMER] == 1         # resumed: then land(()), as a wake-up
            rewake = True
        elif kind == _EXPIRE:                         # a lease's visibility timeout: its batch is
            BI[arg, B_LEASE] = -1                     # settled, every message delivered again at once
            finished_batch = arg
            expired = True
        elif kind == _IO:                             # a store write's latency is over: its future is
            _resume(arg, now, BI, TK, P, c_pool, c_key, busy, w_head, w_tail, p_waiting, p_holding, HT, HK, G)
            continue                                  # done, its caller goes on
        elif kind == _MAIN:                           # gather's result: the batch's task goes on, and ends
            QF[q, CPU] += BF[arg, 2]                  # (or raises what failed a message's task)
            finished_batch = arg
            errored = BI[arg, B_ERR]
        elif kind == _FAIL:                           # what a caller awaited failed (see ERRI)
            e = arg
            x = ERRI[e, E_X]
            if ERRI[e, E_KIND] != KV_REFUSED:         # overloaded: the call ends now
                c = ERRI[e, E_A]
                c_started[c] = c_finished[c] = now
                _not_ok(NOK, G, c, OVERLOADED)
                if ERRI[e, E_KIND] == OBJECT_OVERLOAD:    # the request never ran: its object counts
                    t = x >> 1                        # it, its serve task's row is free, its caller
                    OB[P[c_pool[c], P_FIRST] + c_key[c], O_REQUESTS] += 1     # gets the error
                    x = TK[t, T_PARENT]
                    TK[t, T_FREE] = G[FREE_T]
                    G[FREE_T] = t
            if x & 1 or SI[BI[x >> 1, B_Q], TASK] == 1:   # a task: it raises at its next step
                (TK if x & 1 else BI)[x >> 1, B_ERR] = e
                _resume(x, now, BI, TK, P, c_pool, c_key, busy, w_head, w_tail, p_waiting, p_holding, HT, HK, G)
                continue
            finished_batch = x >> 1                   # call_each: the batch fails now (finish(error))
            q = BI[finished_batch, B_Q]
            errored = e
        elif kind == _ADMIT:                          # a call held at the soft limit reaches its gate
            c = (TK if arg & 1 else BI)[arg >> 1, B_CALL]
            a = c_pool[c]
            _to_gate(a, P[a, P_FIRST] + c_key[c], arg, now, busy, w_head, w_tail, BI, TK, p_waiting, p_holding, HT, HK, G, _ENTRY)
            continue
        elif kind == _OADMIT:                         # a request held at the soft limit: served now
            c = TK[arg >> 1, T_SERVES]
            a = c_pool[c]
            _serve(a, P[a, P_FIRST] + c_key[c], arg, now, busy, w_head, w_tail, BI, TK, OB, p_waiting, p_holding,
                   HT, HK, G)
            continue
        elif kind == _EVICT:                          # ActorObject.evict: idle for evict_after seconds
            OB[arg, O_EVICT] = -1
            if OB[arg, O_LIVE] == 1 and OB[arg, O_ACTIVE] == 0:
                OB[arg, O_LIVE] = 0
                OB[arg, O_EVICTIONS] += 1
            continue
        elif kind == _OSTEP:                          # serve task arg's next step, with its object's gate
            _object_step(arg, now, TK, OB, o_busy_s, PROG, P, PF, pkeys, cumulative, p_picks, p_draws, p_busy_s,
                         busy, w_head, w_tail, tats, p_waiting, p_holding, period, most, c_pool, c_key, c_arrived,
                         c_started, c_finished, BI, bodies, body, rowq, failed, outcome, reason, stamp, sent, finished,
                         SI, SF, SD, rate_window, lrows, LG, QI, ST, STF, skeys, s_draws, kv_last, kv_period, wl_store,
                         wl_body, wl_time, HT, HK, G, FT, ERRI, ERRF, NOK, rejected)
            continue
        elif kind == _ENTRY:                          # caller arg's call gets its instance's gate
            c = (TK if arg & 1 else BI)[arg >> 1, B_CALL]
            a = c_pool[c]
            c_started[c] = now
            seconds, used = _draw(P[a, P_SERVICE], PF[a, 0], PF[a, 1], pkeys[a, 1], p_draws[a])
            p_draws[a] += used
            seconds = _slowed(seconds, FT.PS[a, 0], FT.PS[a, 1], now, FT)
            p_busy_s[a] += seconds
            _push(HT, HK, G, now + seconds, _EXIT, 0, arg)
            continue
        else:                                         # _EXIT: caller arg's call is done; Gate.leave
            b = arg >> 1
            c = (TK if arg & 1 else BI)[b, B_CALL]
            a = c_pool[c]
            c_finished[c] = now
            _leave(a, P[a, P_FIRST] + c_key[c], now, busy, w_head, w_tail, BI, TK, p_waiting, p_holding, HT, HK, G, _ENTRY)
            if arg & 1 or SI[BI[b, B_Q], TASK] == 1:      # a task awaited it: it goes on
                _resume(arg, now, BI, TK, P, c_pool, c_key, busy, w_head, w_tail, p_waiting, p_holding, HT, HK, G)
                continue
            if BI[b, B_LEFT] > 0:                     # call_each: the caller's next call, at once
                BI[b, B_LEFT] -= 1
                _call(a, arg, 0, now, P, pkeys, cumulative, busy, w_head, w_tail, tats, BI, TK, OB, c_pool, c_key,
                      c_arrived, c_started, c_finished, p_picks, p_waiting, p_holding, period, most, HT, HK, G, ERRI, ERRF)
                continue
            finished_batch = b
            q = BI[b, B_Q]
        if stepping >= 0 and (TK if stepping & 1 else BI)[stepping >> 1, B_ERR] >= 0:
            x, r = stepping, stepping >> 1            # what the task awaited failed: it raises
            if x & 1:                                 # a message's task: the batch's gather fails (once)
                b = TK[r, B_LO]
                BI[b, B_OUT] -= 1
                if BI[b, B_ERR] < 0:
                    BI[b, B_ERR] = TK[r, B_ERR]
                    _push(HT, HK, G, now, _MAIN, q, b)
                continue
            QF[q, CPU] += BF[r, 2]                    # the batch's task: the batch fails (its CPU counted)
            finished_batch, errored = r, BI[r, B_ERR]
        elif stepping >= 0:                           # a task's steps, until one awaits something pending
            x, r = stepping, stepping >> 1
            tab = TK if x & 1 else BI
            waits = False
            while tab[r, B_CHAIN] < tab[r, B_CHEND]:
                e = tab[r, B_CHAIN]
                tab[r, B_CHAIN] = e + 1
                target = chain[e]
                if target >= 0:                       # await pool.awaitable(body): the call's end wakes it
                    _call(target, x, chain_body[e], now, P, pkeys, cumulative, busy, w_head, w_tail, tats, BI, TK, OB,
                          c_pool, c_key, c_arrived, c_started, c_finished, p_picks, p_waiting, p_holding, period, most,
                          HT, HK, G, ERRI, ERRF)
                    waits = True
                    break
                # await the store's write(body): an I/O future always suspends (IoFuture), done
                # after its latency; at zero latency it is done already: the next step is now
                latency = _write(-1 - target, chain_body[e], x, q, now, ST, STF, skeys, s_draws, kv_last, kv_period,
                                 wl_store, wl_body, wl_time, HT, HK, G, FT, ERRI, ERRF, rejected)
                if latency == -1.0:                   # writeDataPoint: done at once
                    continue
                if latency == 0:
                    _push(HT, HK, G, now, _STEP, q, x)
                waits = True
                break
            if waits:
                continue
            if x & 1:                                 # a message's task ends; the last one's end
                b = TK[r, B_LO]                       # completes gather: the batch's task steps on
                BI[b, B_OUT] -= 1                     # (unless a message's task failed it already)
                if BI[b, B_OUT] == 0 and BI[b, B_ERR] < 0:
                    _push(HT, HK, G, now, _MAIN, q, b)
                continue
            QF[q, CPU] += BF[r, 2]                    # the task ends: its CPU is counted
            finished_batch = r
        if finished_batch >= 0:                       # Queue._batch_done
            b = finished_batch
            QI[q, RUNNING] -= 1
            lo, hi = BI[b, B_LO], BI[b, B_HI]
            started, n = BF[b, 0], hi - lo
            pulled = SI[q, PULL] == 1
            # over the consumer wall time the invocation failed (the platform ends it; counted
            # when it returns): its messages are retried as a thrown invocation's are, but those
            # failing on their own keep their delays (a pull client runs outside Workers)
            failing = thrown or errored >= 0 or (now - started > wall and not pulled)
            if errored >= 0:                          # (rt.failures.record, written back)
                ERRI[errored, E_BATCH] = b
            fl, fh = BI[b, B_FLO], BI[b, B_FHI]
            acked = retried = dropped = 0
            if fh == fl and not expired and not failing:
                for i in range(lo, hi):
                    outcome[brows[i]] = ACKED
                    finished[brows[i]] = now
                if ddisp.shape[0]:                    # trace=True: each delivery's disposition
                    ddisp[lo:hi] = ACKED
                acked = n
            else:
                retry_all = BI[b, B_RA] == 1               # (the spec's retry_all: every message, its delay)
                all_delay = BI[b, B_DA] if retry_all else SF[q, RETRY_DELAY]
                n_vals = 0
                f = fl
                for j in range(n):
                    m = brows[lo + j]
                    again, delay = retry_all or failing, all_delay
                    if expired:                       # (a lease that ended: at once)
                        again, delay = True, 0
                    elif not retry_all and f < fh and fails[f] == j:
                        again, delay = True, fdelay[f]
                        f += 1
                    if not again:
                        outcome[m], finished[m] = ACKED, now
                        acked += 1
                        if ddisp.shape[0]:
                            ddisp[lo + j] = ACKED
                        continue
                    failed[m] += 1
                    if ddisp.shape[0]:                # (retried, or this attempt was its last)
                        ddisp[lo + j] = RETRIED if failed[m] < SI[q, MAX_ATTEMPTS] else (
                            DEAD if SI[q, DLQ] >= 0 else DROPPED)
                    if failed[m] < SI[q, MAX_ATTEMPTS]:
                        v = 0
                        while v < n_vals and d_vals[v] != delay:
                            v += 1
                        if v == n_vals:
                            d_vals[v] = delay
                            n_vals += 1
                        scratch[retried] = m
                        d_of[retried] = v
                        retried += 1
                    elif SI[q, DLQ] >= 0:
                        outcome[m], finished[m] = DEAD, now
                        scratch[128 + n_dead] = m
                        n_dead += 1
                    else:
                        outcome[m], finished[m], reason[m] = DROPPED, now, NO_DLQ
                        dropped += 1
                for v in range(n_vals):               # a landing per delay, in first-seen order
                    g, lo2 = G[NG], G[NL]
                    for r in range(retried):
                        if d_of[r] == v:
                            lrows[G[NL]] = scratch[r]
                            G[NL] += 1
                    LG[g, 0], LG[g, 1] = lo2, G[NL]
                    G[NG] = g + 1
                    QI[q, LANDING] += G[NL] - lo2
                    _push(HT, HK, G, now + d_vals[v], _LAND, q, g)
            BI[b, B_ACK], BI[b, B_RET], BI[b, B_DEAD], BI[b, B_DROP] = acked, retried, n_dead, dropped
            BF[b, 1] = now
            done_order[G[NDONE]] = b
            G[NDONE] += 1
            _absorb(q, now, in_due, in_rows, in_lo, nxt, QI, QF, SI, concurrent, discard, outcome, finished, reason)
            if autoscale and not pulled:              # Scaler.decide, operation for operation
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
                QF[q, FAILED_SHARE] = QF[q, FAILED_SHARE] + k_weight * (failing - QF[q, FAILED_SHARE])
                need = (QF[q, RATE] + QI[q, COUNT] / drain_s) * QF[q, PER_MSG] * (1.0 - QF[q, FAILED_SHARE])
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
                        LV[G[NLV], 0], LV[G[NLV], 1], LV[G[NLV], 2] = q, now, new
                        G[NLV] += 1
            if pulled:                                # flusher.finished: nothing (Held)
                pass
            elif concurrent:                          # flusher.finished
                QI[q, F_RUNNING] -= 1
                landed = True
            else:
                QI[q, PENDING_SEQ] = -1
                landed = QI[q, COUNT] > 0
            rewake = True
        if landed and SI[q, PULL] == 1:               # Held.landed: idle loops wake (in the order they
            if QI[q, COUNT] > 0:                      # went idle), each one event later
                lp = QI[q, IDLE_HEAD]
                while lp >= 0:
                    _push(HT, HK, G, now, _PSTEP, q, lp)
                    lp = LI[lp, L_NEXT]
                QI[q, IDLE_HEAD] = QI[q, IDLE_TAIL] = -1
        elif landed and concurrent:                   # ConcurrentFlush.landed
            has_since = QI[q, HAS_WAITING] == 1
            since = QF[q, WAITING_SINCE]
            QI[q, HAS_WAITING] = 0
            if has_since and QI[q, TIMER_SEQ] < 0 and since + SF[q, TIMEOUT] <= now:
                QI[q, DUE] = 1
            cap = QI[q, LEVEL] if autoscale else SI[q, MAX_CONC]
            while QI[q, COUNT] > 0 and QI[q, F_RUNNING] < cap and (QI[q, DUE] == 1 or QI[q, COUNT] >= SI[q, SIZE]):
                QI[q, DUE] = 0
                has_since = False
                QI[q, TIMER_SEQ] = -1
                QI[q, F_RUNNING] += 1
                _flush(q, now, QI, QF, SI, SF, keys, delays, body, failed, stamp, nxt, per_x, HT, HK, G, BI, BF,
                       brows, dtries, fails, fdelay, otype, FT, DLT, outcome, finished, reason)
            if QI[q, COUNT] == 0:
                QI[q, DUE] = 0
            elif QI[q, TIMER_SEQ] < 0 and QI[q, DUE] == 0:
                QI[q, TIMER_SEQ] = _push(HT, HK, G, (since if has_since else now) + SF[q, TIMEOUT], _TIMER, q, 0)
        elif landed:                                  # SingleFlush.landed
            has_space = QI[q, COUNT] < SI[q, SIZE]
            if QI[q, PENDING_SEQ] < 0 or not (QI[q, IMMEDIATE] == 1 or has_space):
                if QI[q, PENDING_SEQ] >= 0:           # clock.cancel(self.pending): only here. (finished()
                    tail = QI[q, CX_TAIL]                 # forgets a pending without cancelling it: it fires)
                    if QI[q, FIRED] == 0:
                        if tail - QI[q, CX_HEAD] == CX.shape[1]:
                            G[ABORT] = 5
                            break
                        CX[q, tail % CX.shape[1]] = QI[q, PENDING_SEQ]
                        QI[q, CX_TAIL] = tail + 1
                delay = SF[q, TIMEOUT] if has_space else 0.0
                QI[q, PENDING_SEQ] = _push(HT, HK, G, now + delay, _PENDING, q, 0)
                QI[q, FIRED] = 0
                QI[q, IMMEDIATE] = 1 if delay == 0 else 0
        if rewake:
            _rewake(q, in_due, in_lo, QI, QF, SI, SF, concurrent, HT, HK, G)
        if n_dead:                                    # receive_dead_letters, after the rest
            d = SI[q, DLQ]
            first = G[ROWS]
            for i in range(n_dead):                   # Ledger.copy_to: the same body and timestamp
                m, r = scratch[128 + i], first + i
                body[r], rowq[r], failed[r], outcome[r], reason[r] = body[m], d, 0, 0, 0
                stamp[r], sent[r], finished[r] = stamp[m], now, np.nan
                DLT[G[NDL], 0], DLT[G[NDL], 1] = r, m        # it keeps m's id
                G[NDL] += 1
                scratch[i] = r
            G[ROWS] = first + n_dead
            _land(HT, HK, G, QI, d, now, SF[d, DELAY], scratch, n_dead, lrows, LG)
        if polling >= 0:                              # the pull loop, its batch acked: more may wait
            if LI[polling, L_TAKEN] >= SI[q, PULL_SIZE]:   # after a full batch: pull again at once
                _poll(polling, now, duration, LI, LF, QI, QF, SI, SF, keys, delays, body, failed, stamp, nxt, per_x,
                      HT, HK, G, BI, BF, brows, dtries, fails, fdelay, otype, FT, DLT, in_due, in_rows, in_lo, concurrent,
                      discard, outcome, finished, reason)
            else:
                LI[polling, L_STATE] = L_POLL
                _push(HT, HK, G, now + SF[q, INTERVAL], _PSTEP, q, polling)
    GF[0] = now
    return False


@njit(cache=True)
def _engine(fed, in_due, in_rows, in_lo, n0, body, failed, outcome, rowq, stamp, sent, finished, SI, SF,
            keys, delays, pub, otype, routes, gi, gf, sends_init, P, PF, pkeys, cumulative, PROG, qwrites, ST, STF,
            skeys, kv_last, FT, OPS, OPT):
    """Every queue, spec consumer and service-only spec actor of a covered pipeline, as the
    runtime runs them (see the module's docstring). Arguments: the queues' known arrivals
    (``in_due``/``in_rows`` from ``in_lo[q]``), the ledger's reserved columns and its ``n0``
    rows so far (the engine adds its rows after them: ``rowq`` is their queue index, not
    the ledger's code), the queues' settings
    (``SI``, ``SF``), stream keys and retry delays, publish targets, global settings
    (``gi``: concurrent, autoscale, start, step_up, step_down, memory, max events,
    discard, row margin (:func:`row_margin`), trace (keep each delivery); ``gf``: rate window, drain seconds, wall, sample step, duration, throughput
    window, actor period (0: no soft limit), KV's per-key write period (0: none), the most a
    request queues at the soft limit), the
    sends already counted per throughput
    window, and the pools (``P[a]``: instances, first instance, service kind; ``PF[a]``:
    service a, b; ``pkeys[a]``: key and service stream keys; ``cumulative``: key weights), and
    the stores consumers write (``qwrites[SI[q, W_LO]:SI[q, W_HI]]``: queue q's consumer's, in
    order; ``ST``/``STF``/``skeys``: each store's kind, latency and its stream key;
    ``kv_last[kv, body]``: when a KV namespace's key for that body was last written, NaN:
    never)."""
    nq, na = SI.shape[0], P.shape[0]
    concurrent = gi[0] == 1
    G = np.zeros(G_SIZE, np.int64)
    G[CAP] = np.int64(min(gf[10], 2.0 ** 62))         # the message budget: past it, the run is given back
    G[FREE_T] = -1
    QI = np.zeros((nq, QI_COLUMNS), np.int64)
    QF = np.zeros((nq, 7), np.float64)
    for q in range(nq):
        QI[q, WAKE_SEQ] = QI[q, PENDING_SEQ] = QI[q, TIMER_SEQ] = QI[q, HEAD] = QI[q, TAIL] = -1
        QI[q, IDLE_HEAD] = QI[q, IDLE_TAIL] = -1
        QI[q, LEVEL] = min(gi[2], SI[q, MAX_CONC])
    n_loops = max(SI[:, LOOP_HI].max(), 1) if nq else 1      # pull consumers' polling loops
    LI = np.zeros((n_loops, 5), np.int64)
    LF = np.zeros(n_loops, np.float64)
    for q in range(nq):
        for lp in range(SI[q, LOOP_LO], SI[q, LOOP_HI]):
            LI[lp, L_Q], LI[lp, L_STATE], LI[lp, L_NEXT] = q, L_POLL, -1
    # the engine's own row columns: why a row was dropped, the next row in its queue's buffer
    reason = np.zeros(len(body), np.int8)
    nxt = np.empty(len(body), np.int32)               # (run() checks rows fit in 32 bits)
    DLT = np.empty((1024, 2), np.int64)               # dead letters: (row, the row it copies)
    chain = np.empty(1024, np.int32)                  # a task batch's steps, in turn
    chain_body = np.empty(1024, np.int64)
    TK = np.empty((1024, B_COLUMNS), np.int64)        # parallel consumers' messages' tasks
    wl_store, wl_body, wl_time = np.empty(1024, np.int32), np.empty(1024, np.int64), np.empty(1024)
    s_draws = np.zeros(max(ST.shape[0], 1), np.int64)
    rejected = np.zeros(max(ST.shape[0], 1), np.int64)        # KV puts refused at the write rate
    ERRI = np.empty((64, 5), np.int64)                        # what failed awaited calls and writes
    ERRF = np.empty(64, np.float64)
    NOK = np.empty((64, 2), np.int64)                         # calls that did not end "ok"
    G[ROWS] = n0
    # batches, landing groups
    # (sized for a typical run of n0 arrivals, so that they rarely grow)
    # (np.empty: every entry is written before it is read; untouched pages cost nothing)
    BI = np.empty((n0 // 4 + 1024, B_COLUMNS), np.int64)
    BF = np.empty((n0 // 4 + 1024, 3), np.float64)           # started, finished, cpu
    done_order = np.empty(n0 // 4 + 1024, np.int64)
    brows = np.empty(2 * n0 + 30_000, np.int32)
    dtries = np.empty(len(brows) if gi[9] else 0, np.int16)     # trace=True: each delivery's attempt
    ddisp = np.empty(len(brows) if gi[9] else 0, np.int8)       # ... and disposition, as brows
    fails = np.empty(n0 // 8 + 30_000, np.int64)
    fdelay = np.empty(n0 // 8 + 30_000, np.int64)
    lrows = np.empty(n0 + 30_000, np.int32)
    LG = np.empty((n0 // 4 + 1024, 2), np.int64)
    SM = np.zeros(512 * (1 + 4 * nq + 2 * na), np.float64)  # timeline samples, one after another
    LV = np.zeros((64, 3), np.float64)                       # autoscaler levels: queue, time, level
    windows = int(sends_init[:, 1].max()) + 2 if sends_init.shape[0] else 2
    SD = np.zeros((nq, windows), np.int64)                   # sends per queue and throughput window
    for i in range(sends_init.shape[0]):
        SD[sends_init[i, 0], sends_init[i, 1]] = sends_init[i, 2]
    CX = np.full((nq, 4096), -1, np.int64)                   # each queue's cancelled SingleFlush timers
    per_x = np.empty(128, np.float64)
    scratch = np.empty(256, np.int64)        # a batch's acked origins, dead letters, retried rows
    d_vals = np.empty(128, np.int64)
    d_of = np.empty(128, np.int64)
    order = np.empty(max(nq, 1), np.int64)                   # the queues a batch sends to, in order
    bodies = np.empty(128, np.int64)                         # ... and the bodies one of them gets
    # pools: instances' gates (busy, FIFO of waiting batches through B_WAITING), calls
    n_inst = max(int(P[:, 0].sum()), 1) if na else 1
    busy = np.zeros(n_inst, np.bool_)
    w_head = np.full(n_inst, -1, np.int64)
    w_tail = np.full(n_inst, -1, np.int64)
    tats = np.zeros(n_inst, np.float64)
    calls = len(body) if na else 1            # (a call per acked message at most: one per row)
    c_pool, c_key = np.empty(calls, np.int16), np.empty(calls, np.int32)
    c_arrived, c_started, c_finished = np.empty(calls), np.empty(calls), np.empty(calls)
    p_picks = np.zeros(max(na, 1), np.int64)
    p_draws = np.zeros(max(na, 1), np.int64)
    p_busy_s = np.zeros(max(na, 1), np.float64)
    p_waiting = np.zeros(max(na, 1), np.int64)
    p_holding = np.zeros(max(na, 1), np.int64)
    OB = np.zeros((n_inst, 6), np.int64)              # objects (OBJECTS pools' instances)
    OB[:, O_EVICT] = OB[:, O_FIRST] = -1
    o_busy_s = np.zeros(n_inst, np.float64)
    HT = np.empty(4096, np.float64)                   # the event heap: times,
    HK = np.empty((4096, 2), np.int64)                # ... sequence numbers and codes
    GF = np.zeros(1, np.float64)                      # now
    row_margin = gi[8]

    # simulate: the pull clients' loops start (spawned with their consumers), the fault
    # timeline's operations are scheduled, each fed queue's attach_inflow (a rewake), in
    # feeding order, then _sample's call_at(0.0)
    for q in range(nq):
        for lp in range(SI[q, LOOP_LO], SI[q, LOOP_HI]):
            _push(HT, HK, G, 0.0, _PSTEP, q, lp)
    for k in range(len(OPT)):             # FaultPlan.install: the timeline's operations, in its order
        _push(HT, HK, G, OPT[k], _OP, 0, k)
    for q in fed:
        _rewake(q, in_due, in_lo, QI, QF, SI, SF, concurrent, HT, HK, G)
    _push(HT, HK, G, 0.0, _SAMPLE, 0, 0)
    while _run(G, GF, QI, QF, SI, SF, keys, delays, pub, otype, routes, order, bodies, gi, gf, fed, in_due, in_rows,
               in_lo, body, failed, outcome, reason, rowq, stamp, sent, finished, nxt, DLT, chain, chain_body, TK,
               qwrites,
               ST, STF, skeys, s_draws, kv_last, wl_store, wl_body, wl_time, BI, BF,
               done_order, brows, dtries, ddisp, fails, fdelay, lrows, LG, SM, LV, SD, per_x, scratch, d_vals, d_of, P, PF, pkeys,
               cumulative, busy, w_head, w_tail, tats, c_pool, c_key, c_arrived, c_started, c_finished, p_picks,
               p_draws, p_busy_s, p_waiting, p_holding, OB, o_busy_s, PROG, FT, LI, LF, OPS, ERRI, ERRF, NOK, rejected,
               HT, HK, CX, row_margin):
        # a table is short of room for one more event: double it, then go on
        if G[NB] + BATCH_ROOM > BI.shape[0]:
            need = G[NB] + BATCH_ROOM
            BI, BF, done_order = _bigger(BI, need), _bigger(BF, need), _bigger(done_order, need)
        if G[NBR] + BATCH_ROWS_ROOM > brows.shape[0]:
            brows = _bigger(brows, G[NBR] + BATCH_ROWS_ROOM)
            if gi[9]:
                dtries, ddisp = _bigger(dtries, brows.shape[0]), _bigger(ddisp, brows.shape[0])
        if G[NF] + BATCH_ROWS_ROOM > fails.shape[0]:
            fails, fdelay = _bigger(fails, G[NF] + BATCH_ROWS_ROOM), _bigger(fdelay, G[NF] + BATCH_ROWS_ROOM)
        if G[ROWS] + row_margin > body.shape[0]:        # (more rows than simulate reserved)
            need = G[ROWS] + row_margin
            body, failed, outcome, rowq = _bigger(body, need), _bigger(failed, need), _bigger(outcome, need), \
                _bigger(rowq, need)
            stamp, sent, finished = _bigger(stamp, need), _bigger(sent, need), _bigger(finished, need)
            reason, nxt = _bigger(reason, need), _bigger(nxt, need)
        if G[NDL] + BATCH_ROOM > DLT.shape[0]:
            DLT = _bigger(DLT, G[NDL] + BATCH_ROOM)
        if G[NCH] + BATCH_ROWS_ROOM > chain.shape[0]:
            chain, chain_body = _bigger(chain, G[NCH] + BATCH_ROWS_ROOM), _bigger(chain_body, G[NCH] + BATCH_ROWS_ROOM)
        if G[NT] + BATCH_ROOM > TK.shape[0]:
            TK = _bigger(TK, G[NT] + BATCH_ROOM)
        if G[NERR] + 2 > ERRI.shape[0]:
            need = 2 * ERRI.shape[0]
            ERRI, ERRF = _bigger(ERRI, need), _bigger(ERRF, need)
        if G[NNOK] + 2 > NOK.shape[0]:
            NOK = _bigger(NOK, 2 * NOK.shape[0])
        if G[NW] + BATCH_ROWS_ROOM > wl_store.shape[0]:
            need = G[NW] + BATCH_ROWS_ROOM
            wl_store, wl_body, wl_time = _bigger(wl_store, need), _bigger(wl_body, need), _bigger(wl_time, need)
        if G[NL] + row_margin + 128 > lrows.shape[0]:
            lrows = _bigger(lrows, G[NL] + row_margin + 128)
        if G[NG] + BATCH_ROOM > LG.shape[0]:
            LG = _bigger(LG, G[NG] + BATCH_ROOM)
        if G[CALLS_MADE] + 1 > c_key.shape[0]:
            need = G[CALLS_MADE] + 1
            c_pool, c_key = _bigger(c_pool, need), _bigger(c_key, need)
            c_arrived, c_started, c_finished = _bigger(c_arrived, need), _bigger(c_started, need), \
                _bigger(c_finished, need)
        if G[HN] + HEAP_ROOM > HT.shape[0]:
            HT, HK = _bigger(HT, G[HN] + HEAP_ROOM), _bigger(HK, G[HN] + HEAP_ROOM)
        if G[NSM] + 1 + 4 * nq + 2 * na > SM.shape[0]:
            SM = _bigger(SM, 2 * SM.shape[0])
        if G[NLV] + 1 > LV.shape[0]:
            LV = _bigger(LV, G[NLV] + 1)
        if HT[0] / gf[5] + 3 > SD.shape[1]:
            wider = np.zeros((nq, 2 * SD.shape[1] + int(HT[0] / gf[5]) + 3), np.int64)
            wider[:, :SD.shape[1]] = SD
            SD = wider
    now = GF[0]
    buffered = np.zeros(int(QI[:, COUNT].sum() + QI[:, HELD_COUNT].sum()), np.int64)   # left in queues (a
    buffered_q = np.zeros(len(buffered), np.int64)       # consumer's: drain=False), held ones after the rest
    i = 0
    for first, count in ((HEAD, COUNT), (HELD_HEAD, HELD_COUNT)):
        for q in range(nq):
            m = QI[q, first]
            for _ in range(QI[q, count]):
                buffered[i], buffered_q[i] = m, q
                m = nxt[m]
                i += 1
    sends_out = np.argwhere(SD > 0)               # (queue, window) of each window something was sent in
    counts = np.empty((len(sends_out), 3), np.int64)
    for i in range(len(sends_out)):
        counts[i, 0], counts[i, 1] = sends_out[i, 0], sends_out[i, 1]
        counts[i, 2] = SD[sends_out[i, 0], sends_out[i, 1]]
    n, nb, nc = G[ROWS], G[NB], G[CALLS_MADE]
    # (views, not copies: a million-message run's columns are hundreds of MB)
    return (G, QI, QF, now, body, failed, outcome, rowq, stamp, sent, finished, reason[:n], DLT[:G[NDL]],
            brows[:G[NBR]], BI[:nb], BF[:nb], dtries[:G[NBR]], ddisp[:G[NBR]],
            done_order[:G[NDONE]], SM[:G[NSM]], LV[:G[NLV], 0].astype(np.int64),
            LV[:G[NLV], 1].copy(), LV[:G[NLV], 2].astype(np.int64), counts, buffered, buffered_q, c_pool[:nc],
            c_key[:nc], c_arrived[:nc], c_started[:nc], c_finished[:nc], p_busy_s, tats, busy, wl_store[:G[NW]],
            wl_body[:G[NW]], wl_time[:G[NW]], s_draws, OB, o_busy_s, LI, ERRI[:G[NERR]], ERRF[:G[NERR]],
            NOK[:G[NNOK]], rejected, FT)


# ---------------------------------------------------------------------------- the glue


NOTICE_AFTER = 2.0      # seconds: loading from numba's cache takes ~0.5-1 s; compiling, a minute or two


def _engine_call(*args):
    """:func:`_engine`, loaded from numba's cache or, the first time on a machine, compiled
    (a minute or two) before it runs: a compile that takes long says so on stderr instead of a
    silent pause (the run itself may take long too: that says nothing)."""
    if hasattr(_engine, "compile") and not _engine.signatures:      # not yet loaded in this process
        timer = threading.Timer(NOTICE_AFTER, tqdm.write, (    # (tqdm's write: not onto a progress bar's line)
            "cdpkit: compiling the simulation engine for this machine (once, a minute or two; later runs "
            "load it from numba's cache)",), {"file": sys.stderr})
        timer.daemon = True
        timer.start()
        try:
            _engine.compile(tuple(numba.typeof(arg) for arg in args))
        finally:
            timer.cancel()
    return _engine(*args)


# the ledger's columns the engine writes (Ledger.reserve made them numpy arrays), in its order
ENGINE_COLUMNS = ("payload", "failed", "outcome", "queue", "timestamp", "sent", "finished")


def run(rt: Runtime, pipeline: Pipeline, admitted: dict[str, tuple[np.ndarray, Sequence[int]]],
        pools: dict[str, SpecActors], objects: dict[str, tuple[CodeActorCaller, int]],
        writers: dict[str, StoreWriter], bodies: SpecBodies, timeline: list, duration: float, step: float,
        max_events: int, drain: bool = True, plan: FaultPlan | None = None) -> str | None:
    """Run the covered pipeline built in ``rt`` with the kernel, its queues fed as simulate's
    ``_admit`` admitted them (``admitted``: queue -> (landing times, rows), in feeding order;
    emptied here), and write what happened into ``rt`` as its own broker, consumers, pools and
    Durable Objects would have: the ledger, the batch records, the queues', pools' and
    objects' state, the actor calls, the consumers' CPU time, the clock, and ``timeline``'s
    samples; ``plan``: the run's fault plan (its errors, rate limits and slowdowns act here, as
    the runtime's hooks and wrappers apply them, and its counters are written back);
    ``drain=False`` stops at ``duration`` as ``clock.run(until=duration)`` does, and
    what is in flight then is written as the runtime holds it. ``objects``: the spec actors that write, call or publish (run on the runtime's
    Durable Object machinery), each its caller and its service stream's key, in the order
    their namespaces were made. Returns None, or why the run was given up (nothing is written
    then: the caller runs it on the Python engine)."""
    sem, ledger = rt.semantics, rt.ledger
    if ledger.room >= 2**31 - 1:     # the kernel's row links are 32-bit
        return "more than 2,147,483,646 ledger rows"
    names = list(rt.queues)
    index = {name: q for q, name in enumerate(names)}
    units = [*objects, *pools]         # the pools, as the timeline lists them: namespaces first
    unit_index = {name: a for a, name in enumerate(units)}
    nq = len(names)
    # the queues' known arrivals, in queue order
    in_due, in_rows, in_lo = [np.zeros(0)], [np.zeros(0, np.int32)], [0]
    for name in names:
        due, rows = admitted.get(name, (np.zeros(0), ()))
        in_due.append(np.asarray(due, dtype=np.float64))
        in_rows.append(np.asarray(rows, dtype=np.int32))
        in_lo.append(in_lo[-1] + len(due))
    fed = np.array([index[name] for name in admitted], dtype=np.int64)
    in_due, in_rows = np.concatenate(in_due), np.concatenate(in_rows)
    admitted.clear()                 # (taken: 10M arrivals are 160 MB the run no longer needs twice)
    # the queues' settings and their consumers' specs
    attempts = max((q.settings.max_retries + 1 for q in rt.queues.values()), default=1)
    SI = np.zeros((nq, SI_COLUMNS), np.int64)
    store_index = {name: st for st, name in enumerate(writers)}
    qwrites: list[int] = []
    routes = np.full((nq, max(len(bodies.type_names), 1)), -1, np.int64)     # type -> queue (or -2 - pool)
    SF = np.zeros((nq, SF_COLUMNS), np.float64)
    keys = np.zeros((nq, 4), np.uint64)
    delays = np.zeros((nq, attempts + 1), np.int64)
    pub: list[int] = []
    loops = 0
    for q, queue in enumerate(rt.queues.values()):
        settings, consumer = queue.settings, queue.consumer
        dlq = settings.dead_letter_queue
        SI[q, [SIZE, MAX_CONC, MAX_ATTEMPTS, DLQ, PER_WINDOW]] = (
            settings.max_batch_size, settings.max_concurrency, settings.max_retries + 1,
            -1 if dlq is None else index[dlq], -1 if queue._per_window is None else queue._per_window)
        SF[q, [TIMEOUT, DELAY, RETENTION, RETRY_DELAY]] = (
            settings.max_batch_timeout, queue.delivery_delay or 0,
            math.inf if queue.retention is None else queue.retention, settings.retry_delay or 0)
        SI[q, CALLS] = -1
        if consumer is None:
            continue
        if getattr(consumer, "pull_consumer", False):      # its client's loops run the spec's behaviour
            pull = consumer.behaviour.spec.pull
            SI[q, [PULL, PULL_SIZE, LOOP_LO, LOOP_HI]] = (1, pull["batch_size"] or settings.max_batch_size, loops,
                                                         loops + pull["concurrency"])
            loops += pull["concurrency"]
            SF[q, [INTERVAL, VISIBILITY]] = (pull["interval"], settings.visibility_timeout_ms / 1000
                                             if pull["visibility_timeout"] is None else pull["visibility_timeout"])
        consumer = spec_consumer(queue)
        spec = consumer.spec
        SI[q, HAS_CONSUMER] = 1
        SI[q, TASK] = consumer.as_code          # routes, writes or parallel: a task per batch (as the runtime)
        SI[q, PARALLEL] = spec.parallel
        SI[q, W_LO] = len(qwrites)
        qwrites.extend(store_index[store] for store in spec.writes)
        SI[q, W_HI] = len(qwrites)
        if spec.routes:           # by message type to a queue, or to a (service-only) actor's pool a: -2 - a
            for type_name, target in spec.routes.items():
                if type_name in bodies.type_names:
                    routes[q, bodies.type_names.index(type_name)] = (
                        index[target] if target in index else -2 - unit_index[target])
        SI[q, PUB_LO] = len(pub)
        pub.extend(index[target] for target in spec.publish)
        SI[q, PUB_HI] = len(pub)
        if spec.calls:
            SI[q, CALLS] = unit_index[spec.calls]
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
        if scaler_policy else [1, 1, 1, 1]) + [max_events, sem.discard_without_consumer, row_margin(pipeline),
                                              rt.recorder.keep_deliveries, cyclic(pipeline)],
        dtype=np.int64)
    rate = sem.actor_requests_per_second
    gf = np.array([scaler_policy.rate_window if scaler_policy else 1.0,
                   scaler_policy.drain_seconds if scaler_policy else 1.0,
                   math.inf if sem.consumer_wall_seconds is None else sem.consumer_wall_seconds,
                   step, duration, sem.queue_rate_window, 0.0 if rate is None else 1 / rate,
                   0.0 if sem.kv_key_writes_per_second is None else 1 / sem.kv_key_writes_per_second,
                   sem.actor_max_queue_seconds, math.inf if drain else duration, ledger.max_size],
                  dtype=np.float64)
    # the stores consumers write: kind, latency (distribution, stream key), KV namespaces' last writes
    kinds = {"sink": SINK, "kv": KV, "d1": D1, "analytics": ANALYTICS}
    ST = np.zeros((len(writers), 3), np.int64)
    STF = np.zeros((len(writers), 2), np.float64)
    skeys = np.zeros(len(writers), np.uint64)
    n_kv = 0
    for st, writer in enumerate(writers.values()):
        ST[st] = (kinds[writer.kind], DIST_KINDS[writer.latency.kind], n_kv)
        STF[st] = (writer.latency.a, writer.latency.b)
        skeys[st] = writer.stream_key
        n_kv += writer.kind == "kv"
    kv_last = np.full((n_kv, len(bodies.times)) if gf[7] > 0 else (0, 0), np.nan)
    sends_init = np.array([(index[name], w, c) for name, queue in rt.queues.items() for w, c in queue.sends.items()],
                          dtype=np.int64).reshape(-1, 3)
    # the pools: instances, key weights, stream keys, service distributions, and the objects' programs
    P = np.zeros((len(units), 6), np.int64)
    PF = np.zeros((len(units), 3), np.float64)
    pkeys = np.zeros((len(units), 2), np.uint64)
    cumulative = [np.zeros(0)]
    prog: list[tuple[int, int]] = []
    first = 0
    for a, name in enumerate(units):
        spec = pipeline.spec(name)
        service, lo = spec.service, len(prog)
        if name in objects:
            caller, service_key = objects[name]
            picker, evict_after = caller.picker, caller.namespace.evict_after
            prog += [(WRITE, store_index[store]) for store in spec.writes]
            prog += [(CALL, unit_index[child]) for child in spec.calls]
            prog += [(PUBLISH, index[queue]) for queue in spec.publish]
        else:
            picker, service_key, evict_after = pools[name].picker, pools[name].service_rng.key, None
        P[a] = (spec.instances, first, DIST_KINDS[service.kind], OBJECTS if name in objects else SERVICE_ONLY,
                lo, len(prog))
        PF[a] = (service.a, service.b, -1.0 if evict_after is None else evict_after)
        pkeys[a] = (picker.rng.key, service_key)
        cumulative.append(picker.cumulative)
        first += spec.instances
    FT = _fault_tables(plan, rt, units, list(writers), len(bodies.type_names))
    OPS, OPT = _operations(plan, pipeline, index, unit_index)
    # the ledger so far (the workload's arrivals)
    # the ledger so far (the workload's arrivals), in the columns it reserved for the engine
    for task in rt.clock.drop_scheduled_tasks():    # the pull clients' loops: the kernel runs them
        task.coro.close()
    try:
        out = _engine_call(fed, in_due, in_rows, np.array(in_lo, dtype=np.int64),
                           len(ledger), *(getattr(ledger, name) for name in ENGINE_COLUMNS), SI, SF, keys, delays, np.array(pub, dtype=np.int64),
                           np.asarray(bodies.arrivals.types, dtype=np.int64), routes, gi, gf, sends_init, P, PF, pkeys,
                           np.concatenate(cumulative), np.array(prog, dtype=np.int64).reshape(-1, 2),
                           np.array(qwrites, dtype=np.int64), ST, STF, skeys, kv_last, FT, OPS, OPT)
    except NumbaError as error:      # a platform where numba cannot compile the kernel: say so once
        return fall_back("numba could not compile it on this platform", "cdpkit: the compiled engine could "
                         f"not be compiled here ({type(error).__name__}); simulations use the Python engine")
    if out[0][ABORT]:
        return ABORT_REASONS[int(out[0][ABORT])]
    _write_back(rt, names, pools, objects, writers, bodies, timeline, duration, out, sends_init,
                (in_due, in_rows, in_lo))
    if plan is not None:          # what each fault did, as its FaultState counts it
        FT_out = out[-1]
        FI = FT_out.FI
        for f, state in enumerate(plan.states):
            state.second, state.used = int(FI[f, F_SECOND]), int(FI[f, F_USED])
            state.injected, state.rejected = int(FI[f, F_INJECTED]), int(FI[f, F_REJECTED])
            state.throws, state.purged, state.evicted = int(FI[f, F_THROWS]), int(FI[f, F_PURGED]), \
                int(FI[f, F_EVICTED])
            lo = int(FI[f, F_WLO])
            state.added_cpu = {w - lo: float(FT_out.WCPU[w]) for w in range(lo, int(FI[f, F_WHI])) if FT_out.WT[w]}
    return None


def spec_consumer(queue: Any) -> Any:
    """The spec consumer (``SpecConsumer``) behind a queue's consumer: itself, the behaviour a
    pull consumer's client runs, or what a fault timeline's wrapper (an outage) wraps."""
    consumer = queue.consumer
    return consumer.behaviour if getattr(consumer, "pull_consumer", False) else getattr(consumer, "inner", consumer)


def _operations(plan: FaultPlan | None, pipeline: Pipeline, index: dict[str, int],
                unit_index: dict[str, int]) -> tuple[np.ndarray, np.ndarray]:
    """The fault timeline's queue and actor operations as FaultPlan.install schedules them, in
    its order: (OPS: operation, queue or pool, fault; OPT: time)."""
    ops: list[tuple[int, int, int]] = []
    times: list[float] = []
    for f, state in enumerate(plan.states if plan is not None else ()):
        fault = state.fault
        node = pipeline.graph.nodes[fault.node].get("queue", fault.node)    # a consumer's queue
        if fault.kind in ("pause", "dlq_down") or (fault.kind == "outage" and fault.mode == "pause"):
            for start, end in fault.windows:
                ops += [(OP_PAUSE, index[node], f), (OP_RESUME, index[node], f)]
                times += [start, end]
        elif fault.kind in ("purge", "eviction"):
            for at, _ in fault.windows:
                ops.append((OP_PURGE, index[node], f) if fault.kind == "purge" else (OP_EVICT, unit_index[node], f))
                times.append(at)
    return np.array(ops, np.int64).reshape(-1, 3), np.array(times, np.float64)


def _fault_tables(plan: FaultPlan | None, rt: Runtime, units: list[str], stores: list[str], types: int) -> tuple:
    """The kernel's fault tables FT (see ``FaultTables``' comment) for ``plan``'s errors, rate
    limits and slowdowns: each queue's consumer's hook (ConsumerFaults: its own errors and
    slowdowns, and by message type the faults of what it reaches), each pool's and store's
    slowdowns. (Empty tables without a plan.)"""
    states = plan.states if plan is not None else []
    index = {id(state): f for f, state in enumerate(states)}
    kinds = {"errors": ERRORS, "rate_limit": RATE_LIMIT, "slowdown": SLOWDOWN}
    FI = np.zeros((len(states), 10), np.int64)
    FF = np.zeros((len(states), 4), np.float64)
    fsalt = np.array([state.salt for state in states], dtype=np.uint64)
    starts: list[float] = []
    ends: list[float] = []
    for f, state in enumerate(states):
        FI[f] = (kinds.get(state.fault.kind, -1), len(starts), len(starts) + len(state.starts), state.second,
                 state.used, state.injected, state.rejected, state.throws, state.purged, state.evicted)
        FF[f] = (state.q, state.fault.factor, state.fault.per_second, state.poison)
        starts += state.starts
        ends += state.ends
    FL: list[int] = []

    def listed(chosen: Sequence[Any]) -> tuple[int, int]:
        lo = len(FL)
        FL.extend(index[id(state)] for state in chosen)
        return lo, len(FL)

    queues = list(rt.queues.values())
    CF = np.zeros((len(queues), 7), np.int64)
    RR = np.zeros((len(queues), max(types, 1), 2), np.int64)
    for q, queue in enumerate(queues):
        if isinstance(queue.consumer, FaultedConsumer):     # an outage's throws (its errors: the hook's)
            CF[q, 5:7] = listed(queue.consumer.throws)
        hook = getattr(queue.consumer, "faults", None)
        if hook is None:
            continue
        CF[q, 0:2], CF[q, 2:4] = listed(hook.errors), listed(hook.slow)
        default = hook.reach.get(None, ())
        for y in range(types):
            RR[q, y] = listed(hook.reach.get(y, default)) if hook.reach else (0, 0)
        CF[q, 4] = CF[q, 1] > CF[q, 0] or bool((RR[q, :, 1] > RR[q, :, 0]).any())
    PS = np.array([listed(plan.of(name, "slowdown") if plan else ()) for name in units], np.int64).reshape(-1, 2)
    SS = np.array([listed(plan.of(name, "slowdown") if plan else ()) for name in stores], np.int64).reshape(-1, 2)
    return FaultTables(FI, FF, fsalt, np.array(starts, np.float64), np.array(ends, np.float64), np.zeros(len(starts)),
                       np.zeros(len(starts), np.int64), np.array(FL, np.int64), CF, RR, PS, SS)


def _outcomes(calls: np.ndarray, c_finished: np.ndarray, not_ok: dict[int, str]) -> np.ndarray:
    """The outcomes of ``calls`` (call indices): "ok" once finished, None before, or what
    ``not_ok`` says (overloaded, error)."""
    outcome = call_outcomes(c_finished[calls])
    for c, what in not_ok.items():
        i = int(np.searchsorted(calls, c))
        if i < len(calls) and calls[i] == c:
            outcome[i] = what
    return outcome


def _error_of(e: int, ERRI: np.ndarray, ERRF: np.ndarray, c_pool: np.ndarray, c_key: np.ndarray, units: list[str],
              pools: dict[str, SpecActors], objects: dict[str, tuple[CodeActorCaller, int]],
              writers: dict[str, StoreWriter], sem: Any) -> Exception:
    """Error row ``e``'s exception, as the runtime raises it (see ERRI's comment)."""
    kind, what = int(ERRI[e, E_KIND]), int(ERRI[e, E_A])
    if kind == KV_REFUSED:
        store = list(writers.values())[what].store
        return put_rate_error(store.binding, f"message:{int(ERRI[e, E_BODY])}", float(ERRF[e]),
                              sem.kv_key_writes_per_second)
    name = units[int(c_pool[what])]
    if name in objects:
        caller = objects[name][0]
        return overload_error(caller.namespace.binding, caller.picker.names[int(c_key[what])], sem)
    pool = pools[name]
    return overload_error(pool.binding, pool.picker.names[int(c_key[what])], sem)


def _write_back(rt: Runtime, names: list[str], pools: dict[str, SpecActors],
                objects: dict[str, tuple[CodeActorCaller, int]], writers: dict[str, StoreWriter],
                bodies: SpecBodies, timeline: list, duration: float, out: tuple, sends_init: np.ndarray,
                arrivals: tuple) -> None:
    """What the kernel did, into the runtime's own structures (see :func:`run`)."""
    G, QI, QF, now, *columns, reason, copies, brows, BI, BF, tries, dispositions = out[:18]
    (done_order, samples, lv_q, lv_t, lv_v, sends, buffered, buffered_q, c_pool, c_key, c_arrived, c_started,
     c_finished, p_busy_s, tats, busy, wl_store, wl_body, wl_time, s_draws, OB, o_busy_s, _loops, ERRI, ERRF, NOK, rejected, _faults) = out[18:]
    sem, ledger, queues = rt.semantics, rt.ledger, list(rt.queues.values())
    is_pull = np.array([getattr(queue.consumer, "pull_consumer", False) for queue in queues], dtype=bool)
    units = [*objects, *pools]
    # the rows it added (sends, dead letters' copies) are in the ledger's columns already
    ledger.grown(int(G[ROWS]), names, "raw", bodies.arrivals.sizes, dict(zip(ENGINE_COLUMNS, columns)), copies)
    rate = sem.queue_messages_per_second
    queue_codes = ledger.view("queue")
    code_queue = [names.index(name) for name in ledger._queue_names]
    for code, why in ((NO_DLQ, None), (DISCARDED, "no consumer (wrangler dev discards)"),
                      (TOO_MANY, f"Too Many Requests: over {rate or 0:,.0f} messages per second"),
                      (PURGED, "purged"), (EXPIRED, "retention period expired")):
        for row in np.flatnonzero(reason == code).tolist():
            if why is None:
                attempts = queues[code_queue[queue_codes[row]]].settings.max_retries + 1
                ledger.drop_reasons[row] = f"failed {attempts} attempts, no dead letter queue"
            else:
                ledger.drop_reasons[row] = why
    # batches: delivered in start order (ids in that order), recorded in finish order
    first_id = rt.next_batch_id(len(BI))      # ids first_id .. first_id + batches - 1
    sizes = BI[:, B_HI] - BI[:, B_LO]
    ledger.delivered_batches(brows, sizes, BF[:, 0])
    if len(done_order):       # (none: the records stay as the runtime's own, an empty frame alike)
        ran = BF[done_order, 1] - BF[done_order, 0]
        thrown = BF[done_order, 2] == THREW       # an outage's invocations, those that raised what an
        errors = dict(zip(ERRI[:, E_BATCH].tolist(), range(len(ERRI))))     # awaited call or write
        errors.pop(-1, None)                      # failed with, and those past the wall time
        errored = np.isin(done_order, list(errors)) if errors else np.zeros(len(done_order), dtype=bool)
        walled = (ran > (math.inf if sem.consumer_wall_seconds is None else sem.consumer_wall_seconds)) & ~thrown \
            & ~errored & ~is_pull[BI[done_order, B_Q]]
        for b, seconds in zip(done_order[walled | errored].tolist(), ran[walled | errored].tolist()):
            queue = names[BI[b, B_Q]]
            if b in errors:                       # (SpecConsumer's finish(error))
                rt.failures.record(float(BF[b, 1]), queue, first_id + b,
                                   _error_of(int(errors[b]), ERRI, ERRF, c_pool, c_key, units, pools, objects,
                                             writers, sem))
            else:
                rt.recorder.error(float(BF[b, 1]), queue, first_id + b,
                                  wall_time_error(queue, seconds, sem.consumer_wall_seconds))
        rt.recorder.batches_finished({      # (each column its own array: the trace keeps them)
            "queue": np.array(names, dtype=object)[BI[done_order, B_Q]], "batch": first_id + done_order,
            "delivered_at": BF[done_order, 0], "finished_at": BF[done_order, 1], "size": sizes[done_order],
            "outcome": np.where(thrown | walled | errored, "exception", "ok").astype(object),
            # (a lease's result has no retry_all, nor has a thrown invocation's)
            "retry_all": (BI[done_order, B_RA] == 1) & (is_pull[BI[done_order, B_Q]] == 0),
            "ack_all": np.zeros(len(done_order), dtype=bool), "acked": BI[done_order, B_ACK],
            "retried": BI[done_order, B_RET], "dead_lettered": BI[done_order, B_DEAD], "dropped": BI[done_order, B_DROP]})
        if rt.recorder.keep_deliveries:     # trace=True: a row per delivery, batch by batch in finish order
            lo, hi = BI[done_order, B_LO], BI[done_order, B_HI]
            at = np.repeat(lo - np.cumsum(np.r_[0, sizes[done_order][:-1]]), sizes[done_order]) + np.arange(
                int(sizes[done_order].sum()))      # the positions in brows, batch after batch
            each = np.repeat(np.arange(len(done_order)), sizes[done_order])
            codes = np.zeros(max(DISPOSITIONS) + 1, dtype=object)
            for code, what in DISPOSITIONS.items():
                codes[code] = what
            rt.recorder.deliveries_finished({
                "queue": np.array(names, dtype=object)[BI[done_order, B_Q]][each],
                "batch": (first_id + done_order)[each], "delivered_at": BF[done_order, 0][each],
                "finished_at": BF[done_order, 1][each], "message_id": brows[at].astype(np.int64),
                "attempts": tries[at].astype(np.int64), "disposition": codes[dispositions[at]]})
    unfinished = np.flatnonzero(np.isnan(BF[:, 1]))      # (drain=False: batches still running)
    for b in unfinished.tolist():
        rt.recorder.batch_started(first_id + b, names[BI[b, B_Q]], float(BF[b, 0]),
                                  brows[BI[b, B_LO]:BI[b, B_HI]].tolist(), ledger)
    # the queues' state
    if not np.array_equal(sends, sends_init):     # (usually only the arrivals counted: as they were)
        for queue in queues:
            queue.sends.clear()
        for q, w, c in sends.tolist():
            queues[q].sends[w] = c
    for q, queue in enumerate(queues):
        queue.batches += int(QI[q, BATCHES])
        if is_pull[q]:            # a pull consumer: its pulls, and the leases not settled (drain=False)
            pulled = queue.consumer
            pulled.pulls += int(QI[q, PULLS])
            pulled.empty_pulls += int(QI[q, EMPTY])
            for b in np.flatnonzero((BI[:, B_Q] == q) & np.isnan(BF[:, 1])).tolist():
                rows = brows[BI[b, B_LO]:BI[b, B_HI]].tolist()
                pulled.hold(first_id + b, rows, partial(queue._batch_done, first_id + b, rows, started=float(BF[b, 0])))
        queue.arrived = int(QI[q, ARRIVED])
        queue.landing, queue.running = int(QI[q, LANDING]), int(QI[q, RUNNING])   # (in flight: drain=False)
        if hasattr(queue.flusher, "running"):
            queue.flusher.running = int(QI[q, F_RUNNING])
        if queue.consumer is not None:
            spec_consumer(queue).cpu_seconds += float(QF[q, CPU])
        if queue.scaler is not None:
            queue.scaler.level = int(QI[q, LEVEL])
    for q, t, level in zip(lv_q.tolist(), lv_t.tolist(), lv_v.tolist()):
        queues[q].scaler.levels.append((t, level))
    for q in np.flatnonzero(QI[:, PAUSED]).tolist():      # delivery paused (drain=False): what it holds
        queues[q].held = deque()
    n_buffered = int(QI[:, COUNT].sum())
    for k, (q, row) in enumerate(zip(buffered_q.tolist(), buffered.tolist())):
        (queues[q].buffer if k < n_buffered else queues[q].held).append(row)
    in_due, in_rows, in_lo = arrivals
    for q, queue in enumerate(queues):     # arrivals not taken in yet stay the queue's inflow, as in
        lo, hi = in_lo[q] + int(QI[q, NXT]), in_lo[q + 1]     # the runtime (a queue without a consumer
        if lo < hi:                                            # takes them in when someone looks)
            rows = in_rows[lo:hi].tolist()
            queue.inflow = Inflow(in_due[lo:hi].tolist(), lambda a, b, rows=rows: rows[a:b])
    for queue in queues:
        if queue.backlog and queue.backlog_bytes is not None:
            queue.backlog_bytes = sum(map(ledger.bytes.__getitem__, [*queue.buffer, *(queue.held or ())]))
    # the stores' writes, each store's in the order they were made
    for st, writer in enumerate(writers.values()):
        mine = wl_store == st
        writer.replay(rt.clock, wl_body[mine], wl_time[mine])
        if writer.kind == "kv":
            writer.store.rejected_writes += int(rejected[st])
    # the calls: the objects' requests (the recorder's, in the order they were made), the pools' logs
    n_objects = len(objects)
    not_ok = {c: ("overloaded" if what == OVERLOADED else "error") for c, what in NOK.tolist()}
    mine = np.flatnonzero(c_pool < n_objects)
    if len(mine):       # (none: the runtime's frame of no calls, as a Python run leaves it)
        callers = [objects[name][0] for name in objects]
        pool, offsets = c_pool[mine], np.cumsum([0] + [len(caller.picker.names) for caller in callers])
        labels = np.array([name for caller in callers for name in caller.picker.names], dtype=object)
        rt.recorder.add_actor_calls({
            "binding": np.array([caller.namespace.binding for caller in callers], dtype=object)[pool],
            "object": labels[offsets[pool] + c_key[mine]],
            "method": np.array([caller.method for caller in callers], dtype=object)[pool],
            "arrived": c_arrived[mine], "started": c_started[mine], "finished": c_finished[mine],
            "outcome": _outcomes(mine, c_finished, not_ok)})
    first = 0
    for a, name in enumerate(units):
        if name in objects:         # its objects, in the order the runtime met them (their first calls)
            caller = objects[name][0]
            k = len(caller.picker.names)
            touched = [i for i in range(first, first + k) if OB[i, O_FIRST] >= 0]
            for i in sorted(touched, key=lambda i: OB[i, O_FIRST]):
                obj = caller.namespace.object_named(caller.picker.names[i - first])
                obj.requests, obj.busy_seconds, obj.evictions = int(OB[i, O_REQUESTS]), float(o_busy_s[i]), \
                    int(OB[i, O_EVICTIONS])
                obj._tat, obj.active = float(tats[i]), int(OB[i, O_ACTIVE])
                if OB[i, O_LIVE]:
                    obj.ensure_instance()
        else:
            pool = pools[name]
            pool.log.take(c_key, c_arrived, c_started, c_finished, None if len(units) == 1 else c_pool == a)
            failed = [(c, what) for c, what in not_ok.items() if c_pool[c] == a]
            if failed:                        # (overloaded: the call's row in the pool's log)
                calls = np.flatnonzero(c_pool == a)
                for c, what in failed:
                    pool.log.outcomes[int(np.searchsorted(calls, c))] = what
            pool.busy_seconds = float(p_busy_s[a])
            k = pool.spec.instances
            pool.tats[:] = tats[first:first + k].tolist()
            pool.busy[:] = busy[first:first + k].tolist()
        first += k
    # the timeline: per sample, a row per queue (runtime order), then per pool
    width = 1 + 4 * len(queues) + 2 * len(units)
    pool_names = [objects[name][0].namespace.class_name for name in objects] + list(pools)
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
