"""Conformance scenarios (language: DSL.md). Each runs under `wrangler dev` and in cdpkit.

Times are chosen so that nothing happens within ~0.3 s of a batch timeout firing: the
real runtime is then deterministic, and a wrong flush decision shows as a different batch.
"""


def msgs(*keys, do=(), **per_key):
    """Message items: msgs("a", "b", do=["ack"], c=["retry"]) -> [{"k": "a", "do": [...]}, ...]."""
    return [{"k": k, "do": list(per_key.get(k, do))} for k in keys]


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
]
