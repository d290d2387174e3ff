"""Bad input gets a clear error naming the field, the value and what is allowed."""

import re

import numpy as np
import pytest

import cdpkit as cdp
from cdpkit import ConfigError, LimitError


def rt_with_jobs(semantics="local", **settings):
    rt = cdp.Runtime(semantics=semantics)
    rt.queue("jobs", **settings)
    return rt


@pytest.mark.parametrize("name", ["Jobs", "jobs_q", "1jobs", "-jobs", "", "a" * 64, "jobs q", 7])
def test_queue_names_cloudflare_rejects(name):
    with pytest.raises(ConfigError, match=re.escape(f"queue name {name!r} is not allowed: use 1-63 "
                                                   "lowercase letters, digits and dashes, starting with a letter")):
        cdp.Runtime().queue(name)


def test_longest_allowed_queue_name():
    cdp.Runtime().queue("a" * 63)


@pytest.mark.parametrize("field, value, allowed", [
    ("max_batch_size", 0, "an integer from 1 to 100"),
    ("max_batch_size", 101, "an integer from 1 to 100"),
    ("max_batch_size", 2.5, "an integer from 1 to 100"),
    ("max_batch_size", True, "an integer from 1 to 100"),
    ("max_batch_timeout", 61, "a number from 0 to 60"),
    ("max_batch_timeout", -1, "a number from 0 to 60"),
    ("max_retries", 101, "an integer from 0 to 100"),
    ("max_retries", -1, "an integer from 0 to 100"),
    ("retry_delay", 86_401, "an integer from 0 to 86400"),
    ("retry_delay", 1.5, "an integer from 0 to 86400"),
    ("max_concurrency", 0, "an integer from 1 to 250"),
    ("max_concurrency", 251, "an integer from 1 to 250"),
])
def test_consumer_settings_out_of_range(field, value, allowed):
    with pytest.raises(ConfigError, match=re.escape(f"queue 'jobs': {field}={value!r} is not allowed; "
                                                   f"allowed: {allowed}")):
        rt_with_jobs(**{field: value})


def test_production_delay_limit_is_24_hours():
    # "delaySeconds up to 24 h" since Feb 2026 (12 h before)
    assert rt_with_jobs("production", retry_delay=86_400).queues["jobs"].settings.retry_delay == 86_400
    with pytest.raises(ConfigError, match=re.escape("retry_delay=86401 is not allowed; allowed: an "
                                                   "integer from 0 to 86400")):
        rt_with_jobs("production", retry_delay=86_401)


def test_dead_letter_queue_cannot_be_itself_or_a_bad_name():
    with pytest.raises(ConfigError, match="dead_letter_queue='jobs' is the queue itself; allowed: "
                                          "the name of a different queue"):
        rt_with_jobs(dead_letter_queue="jobs")
    with pytest.raises(ConfigError, match="queue 'jobs': dead_letter_queue 'DLQ' is not allowed"):
        rt_with_jobs(dead_letter_queue="DLQ")


def test_producer_delivery_delay_and_retention_ranges():
    with pytest.raises(ConfigError, match=re.escape("queue 'jobs': delivery_delay=86401 is not allowed; "
                                                   "allowed: an integer from 0 to 86400")):
        rt_with_jobs(delivery_delay=86_401)
    with pytest.raises(ConfigError, match=re.escape("queue 'jobs': retention=30 is not allowed; "
                                                   "allowed: a number from 60 to 1.2096e+06")):
        rt_with_jobs(retention=30)


def test_bad_binding_name_and_duplicates():
    rt = cdp.Runtime()
    with pytest.raises(ConfigError, match="binding '1JOBS' is not allowed: bindings are JavaScript identifiers"):
        rt.queue("jobs", binding="1JOBS")
    rt.queue("jobs")
    with pytest.raises(ConfigError, match="queue 'jobs' is already declared"):
        rt.queue("jobs")
    with pytest.raises(ConfigError, match="binding 'JOBS' is already bound"):
        rt.queue("other", binding="JOBS")


def test_consumer_on_missing_queue_and_twice():
    rt = rt_with_jobs()
    with pytest.raises(ConfigError, match="consumer for queue 'jbos': no such queue; declare it first "
                                          r"with rt.queue\('jbos', ...\); declared queues: jobs"):
        rt.consumer("jbos")
    rt.consumer("jobs")(lambda b, e, c: None)
    with pytest.raises(ConfigError, match="queue 'jobs' already has a consumer"):
        rt.consumer("jobs")(lambda b, e, c: None)


def test_settings_without_consumer_fail_before_running():
    rt = rt_with_jobs(max_batch_size=10)
    rt.env.JOBS.send(1)
    with pytest.raises(ConfigError, match=r"queue 'jobs' has consumer settings \(max_batch_size\) but no "
                                          r"consumer; register one with @rt.consumer\('jobs'\)"):
        rt.run()
    assert rt.now == 0  # nothing ran


def test_unknown_semantics():
    with pytest.raises(ConfigError, match="semantics='staging' is not a profile; allowed: 'local', "
                                          "'production'"):
        cdp.Runtime(semantics="staging")


def test_message_size_limit_is_128kb():
    rt = rt_with_jobs()
    rt.env.JOBS.send("x" * 127_998)  # JSON adds two quotes: exactly 128,000 bytes
    with pytest.raises(LimitError, match="send to queue 'jobs': message body is 128001 bytes; allowed: "
                                         "at most 128000 bytes per message"):
        rt.env.JOBS.send("x" * 127_999)
    with pytest.raises(LimitError, match="message body is 128002 bytes"):
        rt.env.JOBS.send("é" * 64_001, content_type="text")  # counted in UTF-8 bytes


ALLOWED_LOCAL = "a number of seconds from 0 to 86400 (fractions are truncated)"


@pytest.mark.parametrize("delay, semantics, allowed", [
    (-1, "local", ALLOWED_LOCAL),
    (-1.5, "local", ALLOWED_LOCAL),                # truncated to -1, then refused
    (86_401, "local", ALLOWED_LOCAL),
    (2**31 - 1, "local", ALLOWED_LOCAL),
    (86_401, "production", "a number of seconds from 0 to 86400 (fractions are truncated)"),
    (2**31, "local", "a number from -2147483648 to 2147483647 (workerd: 'Value out of range')"),
    (-1e10, "local", "a number from -2147483648 to 2147483647 (workerd: 'Value out of range')"),
    ("2", "local", "a number (int or float)"),
])
def test_send_delay_bounds(delay, semantics, allowed):
    rt = rt_with_jobs(semantics)
    for call in (lambda: rt.env.JOBS.send(1, delay_seconds=delay),
                 lambda: rt.env.JOBS.send_batch([{"body": 1}], delay_seconds=delay)):
        with pytest.raises(LimitError, match=re.escape(f"delay_seconds={delay!r} is not allowed; "
                                                      f"allowed: {allowed}")):
            call()
    assert len(rt.ledger) == 0


@pytest.mark.parametrize("delay, used", [
    # workerd's jsg int conversion (wrangler dev 4.86 accepts all of these, see conformance)
    (1.9, 1), (2.0, 2), (-0.5, 0), (86_400.9, 86_400), (float("nan"), 0), (float("inf"), 0),
    (float("-inf"), 0), (True, 1), (False, 0), (np.float64(2.7), 2), (np.int32(3), 3),
])
def test_send_delay_is_a_js_number_truncated(delay, used):
    rt = rt_with_jobs(max_batch_size=10, max_batch_timeout=0)
    seen = []

    @rt.consumer("jobs")
    async def h(batch, env, ctx):
        seen.extend((rt.now, m.body) for m in batch.messages)

    rt.env.JOBS.send("send", delay_seconds=delay)
    rt.env.JOBS.send_batch([{"body": "own", "delay_seconds": delay}, {"body": "call"},
                            {"body": "none", "delay_seconds": None}], delay_seconds=delay)
    rt.run()
    assert seen == [(used, "send"), (used, "own"), (used, "call"), (used, "none")]


def test_content_type_rules():
    rt = rt_with_jobs()
    with pytest.raises(LimitError, match="content_type='xml' is not allowed; allowed: 'json', 'text', "
                                         "'bytes', 'v8'"):
        rt.env.JOBS.send("<a/>", content_type="xml")
    with pytest.raises(LimitError, match="message body is not JSON-serialisable .* use content_type='v8'"):
        rt.env.JOBS.send({1, 2})
    with pytest.raises(LimitError, match="content_type='text' needs a str body, got int"):
        rt.env.JOBS.send(5, content_type="text")
    with pytest.raises(LimitError, match="content_type='bytes' needs a bytes body, got str"):
        rt.env.JOBS.send("x", content_type="bytes")


def test_send_batch_limits():
    rt = rt_with_jobs()
    with pytest.raises(LimitError, match="send_batch: 101 messages; allowed: at most 100 messages per batch"):
        rt.env.JOBS.send_batch([{"body": i} for i in range(101)])
    with pytest.raises(LimitError, match="send_batch: 300003 bytes in total; allowed: at most 288000 bytes"):
        rt.env.JOBS.send_batch([{"body": "x" * 99_999}] * 3)
    prod = rt_with_jobs("production")
    with pytest.raises(LimitError, match="allowed: at most 256000 bytes per batch"):
        prod.env.JOBS.send_batch([{"body": "x" * 99_999}] * 3)
    with pytest.raises(LimitError, match=r"send_batch: messages\[1\]=5 is not allowed; allowed: a dict with 'body'"):
        rt.env.JOBS.send_batch([{"body": 1}, 5])
    with pytest.raises(LimitError, match=r"send_batch: messages\[0\] has unknown keys \['delaySeconds'\]; "
                                         "allowed: 'body', 'delay_seconds', 'content_type'"):
        rt.env.JOBS.send_batch([{"body": 1, "delaySeconds": 3}])
    with pytest.raises(LimitError, match=r"send_batch: messages\[0\]: delay_seconds=90000"):
        rt.env.JOBS.send_batch([{"body": 1, "delay_seconds": 90_000}])
    assert len(rt.ledger) == 0  # a rejected batch sends nothing


def retry_calls(semantics, *calls):
    """Run each call on the first batch's first message/the batch; return errors and deliveries."""
    rt = rt_with_jobs(semantics, max_retries=1, max_batch_timeout=0)
    errors, seen = [], []

    @rt.consumer("jobs")
    async def h(batch, env, ctx):
        seen.append(rt.now)
        if len(seen) == 1:
            for call in calls:
                try:
                    call(batch)
                except LimitError as exc:
                    errors.append(str(exc))

    rt.env.JOBS.send(1)
    rt.run(until=100)
    return errors, seen


def test_retry_delay_range_checked_in_production():
    errors, _ = retry_calls("production", lambda b: b.messages[0].retry(delay_seconds=-5),
                            lambda b: b.retry_all(delay_seconds=86_401))
    allowed = "allowed: a number of seconds from 0 to 86400 (fractions are truncated)"
    assert errors == [f"message.retry: delay_seconds=-5 is not allowed; {allowed}",
                      f"batch.retry_all: delay_seconds=86401 is not allowed; {allowed}"]


@pytest.mark.parametrize("call, redelivered", [
    # miniflare hands retry delays to setTimeout unchecked: negative -> at once, long -> waits
    (lambda b: b.messages[0].retry(delay_seconds=-5), [0.0]),
    (lambda b: b.retry_all(delay_seconds=-7.5), [0.0]),
    (lambda b: b.messages[0].retry(delay_seconds=10**6), []),
    (lambda b: b.retry_all(delay_seconds=2.9), [2.0]),
    (lambda b: b.messages[0].retry(delay_seconds=float("nan")), [0.0]),
])
def test_local_retry_delay_is_not_range_checked(call, redelivered):
    errors, seen = retry_calls("local", call)
    assert errors == [] and seen == [0.0, *redelivered]


def test_retry_delay_outside_int32_raises_as_workerd():
    errors, seen = retry_calls("local", lambda b: b.messages[0].retry(delay_seconds=2**31),
                               lambda b: b.retry_all(delay_seconds="3"))
    assert errors == [
        "message.retry: delay_seconds=2147483648 is not allowed; allowed: a number from "
        "-2147483648 to 2147483647 (workerd: 'Value out of range')",
        "batch.retry_all: delay_seconds='3' is not allowed; allowed: a number (int or float)",
    ]
    assert seen == [0.0]      # neither call took effect: the message was acked


def test_runtime_created_queue_errors():
    rt = rt_with_jobs()
    with pytest.raises(ConfigError, match="queue 'jobs' already exists"):
        rt.create_queue("jobs")
    with pytest.raises(ConfigError, match="queue name 'Tenant_1' is not allowed"):
        rt.create_queue("Tenant_1")
    with pytest.raises(ConfigError, match="queue name pattern 'Tenant-x' is not allowed"):
        rt.queue("Tenant-*")
    with pytest.raises(ConfigError, match="QUEUES_API.send: queue_id='nope' does not exist"):
        rt.env.QUEUES_API.send("nope", [{"body": 1}])


def test_env_names_missing_bindings():
    rt = rt_with_jobs()
    with pytest.raises(AttributeError, match="env has no binding 'JOB'; bindings: JOBS, QUEUES_API"):
        rt.env.JOB
