"""Conformance scenarios (language: DSL.md). Each runs under `wrangler dev` and in cdpkit.

Times are chosen so that nothing happens within ~0.3 s of a batch timeout firing: the
real runtime is then deterministic, and a wrong flush decision shows as a different batch.
"""


def msgs(*keys, do=(), **per_key):
    """Message items: msgs("a", "b", do=["ack"], c=["retry"]) -> [{"k": "a", "do": [...]}, ...]."""
    return [{"k": k, "do": list(per_key.get(k, do))} for k in keys]


LATER = 0.3


def send(at, queue, items, mode="send", delay=None):
    return {"at": at, "queue": queue, "mode": mode, "delay": delay, "messages": items}


SCENARIOS = [
    # Batching -------------------------------------------------------------------------
    dict(name="s01-size", duration=4,  # full batches go at once, the rest after the timeout
         queues={"jobs": {"max_batch_size": 3, "max_batch_timeout": 2}},
         sends=[send(0, "jobs", msgs(*"abcdefg"))]),
    dict(name="s02-timeout", duration=3,  # a partial batch waits max_batch_timeout
         queues={"jobs": {"max_batch_size": 10, "max_batch_timeout": 1.5}},
         sends=[send(0, "jobs", msgs("a", "b"))]),
    dict(name="s03-size-one", duration=2,
         queues={"jobs": {"max_batch_size": 1, "max_batch_timeout": 1}},
         sends=[send(0, "jobs", msgs(*"abcd"))]),
    dict(name="s04-defaults", duration=3,  # miniflare defaults: batch 5, timeout 1 s
         queues={"jobs": {}},
         sends=[send(0, "jobs", msgs(*"abcdefg"))]),
    # Retries ----------------------------------------------------------------------------
    dict(name="s05-retry-then-ack", duration=3,  # retried message re-enters, waits a timeout
         queues={"jobs": {"max_batch_size": 3, "max_batch_timeout": 1}},
         sends=[send(0, "jobs", msgs("a", "b", "c", a=["retry", "ack"], b=["ack"]))]),
    dict(name="s06-retry-delay", duration=5,  # message.retry({delaySeconds})
         queues={"jobs": {"max_batch_size": 2, "max_batch_timeout": 1}},
         sends=[send(0, "jobs", msgs("a", "b", a=["retry:2", "ack"]))]),
    dict(name="s07-consumer-retry-delay", duration=4,  # retry_delay when retry() gives none
         queues={"jobs": {"max_batch_size": 1, "max_batch_timeout": 1, "retry_delay": 2}},
         sends=[send(0, "jobs", msgs("a", a=["retry", "ack"]))]),
    dict(name="s08-dead-letter", duration=5,  # exhausted -> DLQ, attempts restart at 1
         queues={"jobs": {"max_batch_size": 2, "max_batch_timeout": 1, "max_retries": 1,
                          "dead_letter_queue": "dlq"},
                 "dlq": {"max_batch_size": 5, "max_batch_timeout": 1}},
         sends=[send(0, "jobs", msgs("a", "b", a=["retry"], b=["ack"]))],
         batches={"dlq": {"default": ["ackAll"]}}),
    dict(name="s09-dropped", duration=3,  # exhausted without a DLQ: dropped after 3 attempts
         queues={"jobs": {"max_batch_size": 1, "max_batch_timeout": 1, "max_retries": 2}},
         sends=[send(0, "jobs", msgs("a", a=["retry"]))]),
    dict(name="s10-retry-all", duration=2,
         queues={"jobs": {"max_batch_size": 3, "max_batch_timeout": 1}},
         sends=[send(0, "jobs", msgs(*"abc"))],
         batches={"jobs": {"0": ["retryAll"]}}),
    dict(name="s11-retry-all-delay", duration=4,
         queues={"jobs": {"max_batch_size": 3, "max_batch_timeout": 1}},
         sends=[send(0, "jobs", msgs(*"abc"))],
         batches={"jobs": {"0": ["retryAll:2"]}}),
    dict(name="s12-delay-precedence", duration=6,  # message delay > retryAll delay > retry_delay
         queues={"jobs": {"max_batch_size": 3, "max_batch_timeout": 0.5, "retry_delay": 5}},
         sends=[send(0, "jobs", msgs("a", "b", "c", a=["retry:4", "ack"]))],
         batches={"jobs": {"0": ["messages", "retryAll:2"]}}),
    # Conflicting calls ------------------------------------------------------------------
    dict(name="s13-ack-all-then-retry", duration=2,  # retry() after ackAll() has no effect
         queues={"jobs": {"max_batch_size": 2, "max_batch_timeout": 1}},
         sends=[send(0, "jobs", msgs("a", "b", do=["retry"]))],
         batches={"jobs": {"0": ["ackAll", "messages"]}}),
    dict(name="s14-ack-retry-order", duration=3,  # the first call on a message wins
         queues={"jobs": {"max_batch_size": 2, "max_batch_timeout": 1}},
         sends=[send(0, "jobs", msgs("a", "b", a=["ack,retry"], b=["retry,ack", "ack"]))]),
    dict(name="s15-retry-then-ack-all", duration=3,  # a per-message retry beats a later ackAll
         queues={"jobs": {"max_batch_size": 2, "max_batch_timeout": 1}},
         sends=[send(0, "jobs", msgs("a", "b", a=["retry", "ack"]))],
         batches={"jobs": {"0": ["messages", "ackAll"]}}),
    dict(name="s16-throw-after-acks", duration=2,  # locally every message is retried, acks too
         queues={"jobs": {"max_batch_size": 3, "max_batch_timeout": 1}},
         sends=[send(0, "jobs", msgs("a", "b", "c", a=["ack"], b=["ack"]))],
         batches={"jobs": {"0": ["messages", "throw"]}}),
    dict(name="s17-retry-all-after-acks", duration=2,  # locally retryAll retries acked ones too
         queues={"jobs": {"max_batch_size": 2, "max_batch_timeout": 1}},
         sends=[send(0, "jobs", msgs("a", "b", a=["ack"]))],
         batches={"jobs": {"0": ["messages", "retryAll"]}}),
    dict(name="s18-throw-keeps-retry-delays", duration=5,  # after a throw, retry() delays hold
         queues={"jobs": {"max_batch_size": 2, "max_batch_timeout": 0.5, "retry_delay": 1}},
         sends=[send(0, "jobs", msgs("a", "b", a=["retry:3", "ack"], b=["ack"]))],
         batches={"jobs": {"0": ["messages", "throw"]}}),
    # Delays, chains, several queues -------------------------------------------------------
    dict(name="s19-delayed-send", duration=7,  # send() with delaySeconds per message
         queues={"jobs": {"max_batch_size": 5, "max_batch_timeout": 1}},
         sends=[send(0, "jobs", [{"k": "c", "do": []}, {"k": "a", "do": [], "delay": 2},
                                 {"k": "b", "do": [], "delay": 5}])]),
    dict(name="s20-delayed-send-batch", duration=6,  # sendBatch: call delay, message override
         queues={"jobs": {"max_batch_size": 5, "max_batch_timeout": 1}},
         sends=[send(0, "jobs", [{"k": "x", "do": []}, {"k": "y", "do": []},
                                 {"k": "z", "do": [], "delay": 4}], mode="batch", delay=2)]),
    dict(name="s21-publish-chain", duration=5,  # consumer publishes to a second queue
         queues={"jobs": {"max_batch_size": 2, "max_batch_timeout": 2},
                 "events": {"max_batch_size": 5, "max_batch_timeout": 1}},
         sends=[send(0, "jobs", msgs("a", "b", "c", do=["send:events,ack"]))]),
    dict(name="s22-several-queues", duration=4,
         queues={"orders": {"max_batch_size": 2, "max_batch_timeout": 1},
                 "emails": {"max_batch_size": 4, "max_batch_timeout": 2},
                 "audit": {"max_batch_size": 1, "max_batch_timeout": 1}},
         sends=[send(0, "orders", msgs("o1", "o2", "o3")), send(0, "emails", msgs("e1", "e2")),
                send(0.5, "audit", msgs("x1", "x2")), send(0.5, "emails", msgs("e3", "e4"))]),
    dict(name="s23-concurrent-flush", duration=6,  # a second batch while a timeout flush runs
         queues={"jobs": {"max_batch_size": 2, "max_batch_timeout": 1}},
         sends=[send(0, "jobs", msgs("a")), send(2, "jobs", msgs("b", "c")),
                send(2.5, "jobs", msgs("d"))],
         batches={"jobs": {"0": ["sleep:3", "messages"]}}),
    dict(name="s24-no-consumer", duration=2,  # wrangler dev discards messages without a consumer
         queues={"void": None, "jobs": {"max_batch_size": 2, "max_batch_timeout": 1}},
         sends=[send(0, "void", msgs("v1", "v2")), send(0, "jobs", msgs("j1", "j2"))]),
    # Delays are JS Numbers (workerd truncates toward zero; NaN, Infinity -> 0) ------------
    # Timeouts of 0.5 s and whole-second delays: every landing is 0.5 s from any flush.
    # Sent LATER than the burst of sends at 0, and in one sendBatch where the delay does not
    # matter: the real runtime's HTTP sends queue up, and a late send shifts every delivery.
    dict(name="s25-fractional-retry", duration=8,  # retry(): truncated; negative -> at once
         queues={"jobs": {"max_batch_size": 10, "max_batch_timeout": 0.5, "retry_delay": 5}},
         sends=[send(LATER, "jobs", msgs(*"abcdefghi", a=["retry:1.9", "ack"], b=["retry:2.9", "ack"],
                                     c=["retry:-0.5", "ack"], d=["retry:-4", "ack"],
                                     e=["retry:NaN", "ack"], f=["retry:Infinity", "ack"],
                                     g=["retry:1,retry", "ack"],     # the second retry() resets
                                     h=["retry,retry:3", "ack"], i=["retry:3,retry:1", "ack"]),
                     mode="batch")]),
    dict(name="s26-retry-all-delays", duration=6,
         queues={q: {"max_batch_size": 10, "max_batch_timeout": 0.5, "retry_delay": 3}
                 for q in ("r1", "r2", "r3", "r4")},
         sends=[send(LATER, q, msgs(f"{q}a")) for q in ("r1", "r2", "r3", "r4")],
         batches={"r1": {"0": ["retryAll:1.9"]},
                  "r2": {"0": ["retryAll:2", "retryAll"]},    # a delay-less retryAll keeps 2
                  "r3": {"0": ["retryAll:3", "retryAll:1.9"]},
                  "r4": {"0": ["retryAll:NaN"]}}),            # 0, not retry_delay
    dict(name="s27-call-orderings", duration=7,  # ack/retry/ackAll/retryAll on one message
         queues={q: {"max_batch_size": 10, "max_batch_timeout": 0.5, "retry_delay": 4}
                 for q in ("o1", "o2", "o3", "o4", "o5", "o6")},
         sends=[send(LATER, "o1", msgs("a", "b", "c", a=["retry:1", "ack"], b=["ack"], c=["retry", "ack"]), mode="batch"),
                send(LATER, "o2", msgs("a", "b", "c", a=["retry:2", "ack"], b=["ack"]), mode="batch"),
                send(LATER, "o3", msgs("a", "b", "c", a=["retry:1", "ack"], b=["ack"]), mode="batch"),
                send(LATER, "o4", msgs("a", "b", a=["retry:1"]), mode="batch"),
                send(LATER, "o5", msgs("a", "b"), mode="batch"),
                send(LATER, "o6", msgs("a", "b", "c", "d", a=["ack,retry:1"], b=["retry:1,ack", "ack"],
                                   c=["retry:3,retry", "ack"], d=["retry,retry:2", "ack"]), mode="batch")],
         batches={"o1": {"0": ["retryAll:2", "messages"]},     # own delay > batch's; ack: no effect
                  "o2": {"0": ["messages", "ackAll"]},         # the broker ignores ackAll
                  "o3": {"0": ["messages", "retryAll:3"]},     # local: retries the acked b too
                  "o4": {"0": ["ackAll", "messages", "retryAll:1"]},   # nothing after ackAll
                  "o5": {"0": ["retryAll:1", "ackAll"]}}),     # nor ackAll after retryAll
    dict(name="s28-fractional-send", duration=5,  # send/sendBatch delays, per call and message
         queues={"s": {"max_batch_size": 10, "max_batch_timeout": 0.5},
                 "b": {"max_batch_size": 10, "max_batch_timeout": 0.5}},
         sends=[send(LATER, "s", [{"k": "a", "do": [], "delay": 1.9}, {"k": "b", "do": [], "delay": "NaN"},
                              {"k": "c", "do": [], "delay": -0.5}, {"k": "d", "do": [], "delay": "Infinity"}]),
                send(LATER, "b", [{"k": "x", "do": []}, {"k": "y", "do": [], "delay": 0.5},
                              {"k": "z", "do": [], "delay": "Infinity"}, {"k": "w", "do": [], "delay": 1.9},
                              {"k": "v", "do": [], "delay": -0.5}], mode="batch", delay=2.9)]),
    dict(name="s29-send-delay-in-handler", duration=4,  # -1 fails the send (and the batch);
         queues={"jobs": {"max_batch_size": 10, "max_batch_timeout": 0.5},   # 86400.5 -> 86400
                 "out": {"max_batch_size": 10, "max_batch_timeout": 0.5}},
         sends=[send(LATER, "jobs", msgs("c", "b", "a", c=["send:out:1.9", "ack"],
                                     b=["send:out:86400.5", "ack"], a=["send:out:-1", "ack"]),
                     mode="batch")]),
    # A fault timeline (issue 16): the consumer throws for every invocation in [2, 5.5) s (a bad
    # deploy). cdpkit applies it as rt.apply_faults(outage); the worker throws while the
    # window is open. Attempts at 2.5 and 4.5 fail, the one at 6.5 (retry_delay 2) succeeds.
    dict(name="s30-outage-window", duration=8,
         queues={"jobs": {"max_batch_size": 2, "max_batch_timeout": 1, "max_retries": 3, "retry_delay": 2}},
         outages={"jobs": [2.0, 5.5]},
         sends=[send(LATER, "jobs", msgs("a", "b"), mode="batch"),
                send(2.5, "jobs", msgs("c", "d"), mode="batch")]),
]
