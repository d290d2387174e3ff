"""HTTP pull consumers: leases, visibility timeout, ack/retry by lease id, empty pulls (cost),
the pull client, the model option, validation and the wrangler export/import."""

import pytest

import cdpkit as cdp
from cdpkit.runtime.pull import PullClient
from cdpkit.sim.cost import quantities


def runtime(**settings):
    rt = cdp.Runtime(semantics="production")
    rt.queue("jobs", **{"max_batch_size": 10, "visibility_timeout_ms": 10_000, **settings})
    return rt, rt.pull_consumer("jobs")


def send(rt, n, at=None):
    for i in range(n):
        rt.env.JOBS.send({"n": i})


# -- the emulator ---------------------------------------------------------------------------

def test_a_message_not_acked_is_delivered_again_after_the_visibility_timeout():
    rt, pull = runtime()
    send(rt, 1)
    rt.run(until=1)
    first, = pull.pull()
    assert first.attempts == 1 and pull.leased == 1
    rt.run(until=10.9)
    assert pull.pull() == []                 # still leased
    rt.run(until=11)                         # pulled at 1 + 10 s
    again, = pull.pull()
    assert (again.id, again.attempts) == (first.id, 2)
    assert again.lease_id != first.lease_id
    assert pull.ack(acks=[first.lease_id]) == {"acked": 0, "retried": 0, "ignored": 1}   # expired lease
    assert pull.ack(acks=[again.lease_id]) == {"acked": 1, "retried": 0, "ignored": 0}
    m = rt.messages.iloc[0]
    assert (m["outcome"], m["deliveries"], m["finished"]) == ("acked", 2, 11.0)
    rt.check_conservation()


def test_a_per_pull_visibility_timeout_overrides_the_queue_setting():
    rt, pull = runtime()
    send(rt, 1)
    rt.run(until=1)
    pull.pull(visibility_timeout=2.5)
    rt.run(until=3.5)
    assert [m.attempts for m in pull.pull()] == [2]


def test_ack_and_retry_by_lease_id():
    rt, pull = runtime()
    send(rt, 3)
    rt.run(until=1)
    a, b, c = pull.pull(batch_size=3)
    assert pull.ack(acks=[a.lease_id]) == {"acked": 1, "retried": 0, "ignored": 0}
    rt.check_conservation()                  # acked in a batch still open: settled with it
    counts = pull.ack(acks=[c.lease_id], retries=[{"lease_id": b.lease_id, "delay_seconds": 5}])
    assert counts == {"acked": 1, "retried": 1, "ignored": 0}
    assert pull.leased == 0
    rt.run(until=5.9)
    assert pull.pull() == []                 # the retry waits its delay
    rt.run(until=6)
    again, = pull.pull()
    assert (again.id, again.attempts) == (b.id, 2)
    assert rt.messages.set_index("message_id").loc[[a.id, c.id], "outcome"].tolist() == ["acked", "acked"]
    rt.check_conservation()


def test_retries_and_timeouts_count_attempts_up_to_the_dead_letter_queue():
    rt, pull = runtime(max_retries=1, dead_letter_queue="jobs-dlq")
    send(rt, 1)
    rt.run(until=1)
    m, = pull.pull()
    pull.ack(retries=[m.lease_id])           # attempt 1 failed
    rt.run(until=2)
    pull.pull()                              # attempt 2 times out at 12
    rt.run(until=13)
    assert pull.pull() == []
    frame = rt.messages
    assert frame["queue"].tolist() == ["jobs", "jobs-dlq"]
    assert frame["outcome"].tolist()[0] == "dead_lettered"
    rt.check_conservation()


def test_empty_pulls_are_counted_and_each_costs_a_read():
    rt, pull = runtime()
    for _ in range(3):
        assert pull.pull() == []
    send(rt, 2)
    rt.run(until=1)
    assert len(pull.pull()) == 2
    assert (pull.pulls, pull.empty_pulls) == (4, 3)
    pull.ack(acks=[])                         # nothing acked yet: the messages stay leased
    used = quantities(rt)
    assert used["queues_operations"] == 3 + 2 * (1 + 1)     # 3 empty reads; 2 x (write, read)
    assert used["workers_requests"] == 0                    # a pull is not a Worker invocation


def test_pull_arguments_are_checked():
    rt, pull = runtime()
    with pytest.raises(cdp.LimitError, match=r"pull from queue 'jobs': batch_size=101 is not allowed; "
                                            r"allowed: an integer from 1 to 100 \(messages\)"):
        pull.pull(batch_size=101)
    with pytest.raises(cdp.LimitError, match=r"visibility_timeout=0 is not allowed; allowed: seconds > 0, "
                                            r"at most 43200 \(12 hours\)"):
        pull.pull(visibility_timeout=0)
    with pytest.raises(cdp.LimitError, match=r"retries entry \{'lease': 'x'\} is not allowed"):
        pull.ack(retries=[{"lease": "x"}])
    with pytest.raises(cdp.ConfigError, match=r"queue 'jobs' already has a consumer"):
        rt.pull_consumer("jobs")
    with pytest.raises(cdp.ConfigError, match=r"visibility_timeout_ms=0 is not allowed; allowed: an integer "
                                             r"from 1 to 4.32e\+07 \(ms\)"):
        cdp.Runtime(semantics="production").queue("q", visibility_timeout_ms=0)


def test_wrangler_dev_has_no_pull_consumer():
    rt = cdp.Runtime(semantics="local")
    rt.queue("jobs")
    with pytest.raises(cdp.ConfigError, match=r"pull consumer for queue 'jobs': not available under "
                                             r"semantics='local'; wrangler dev has no pull endpoint"):
        rt.pull_consumer("jobs")


def test_pull_client_polls_batches_and_acks():
    rt, pull = runtime()
    send(rt, 25)
    seen = []

    async def handler(messages):
        seen.append((rt.now, len(messages)))
        await rt.sleep(0.2)                  # work outside Cloudflare
        return [m.lease_id for m in messages], ()

    client = PullClient(pull, handler, interval=1.0, batch_size=10, concurrency=1, until=3.5)
    rt.run(until=5)
    # full batches are followed at once by another pull; a partial one waits an interval
    assert seen == [(0.0, 10), (pytest.approx(0.2), 10), (pytest.approx(0.4), 5)]
    assert (pull.pulls, pull.empty_pulls) == (5, 2)         # 1.6 and 2.6 found nothing
    assert rt.messages["outcome"].eq("acked").all() and client.errors == []
    rt.check_conservation()


def test_pull_client_that_fails_leaves_the_batch_to_its_visibility_timeout():
    rt, pull = runtime(visibility_timeout_ms=2_000)
    send(rt, 1)
    calls = []

    async def handler(messages):
        calls.append((rt.now, messages[0].attempts))
        if len(calls) == 1:
            raise RuntimeError("downstream is down")

    client = PullClient(pull, handler, interval=1.0, concurrency=2, until=4)
    rt.run(until=6)
    # the lease ends at 2.0; the message lands again through the timer queue after the two
    # pulls of 2.0, so the pulls of 3.0 find it
    assert calls == [(0.0, 1), (3.0, 2)]
    assert [type(e).__name__ for e in client.errors] == ["RuntimeError"]
    with pytest.raises(cdp.ConfigError, match=r"pull client of queue 'jobs': concurrency=0 is not allowed; "
                                             r"allowed: an integer from 1 to 250"):
        PullClient(pull, handler, concurrency=0)


# -- the model and the export ---------------------------------------------------------------

def pulled_pipeline(**pull):
    p = cdp.Pipeline("puller")
    p.add_source("http", queue="jobs")
    p.add_queue("jobs", max_batch_size=20, max_retries=5, dead_letter_queue="jobs-dlq",
                visibility_timeout_ms=5_000)
    p.add_queue("jobs-dlq")
    p.add_consumer("jobs", pull={"interval": 1.0, "batch_size": 10, "concurrency": 1,
                                 "visibility_timeout": 30, **pull})
    p.add_consumer("jobs-dlq")
    return p


@pytest.mark.parametrize("pull, error", [
    ({"batch": 10}, r"consumer of 'jobs': pull key 'batch' is not allowed \(did you mean 'batch_size'\?\); "
                    r"allowed: interval, batch_size, concurrency, visibility_timeout"),
    ({"batch_size": 101}, r"consumer of 'jobs': pull batch_size=101 is not allowed; allowed: an integer from 1 to 100"),
    ({"concurrency": 0}, r"pull concurrency=0 is not allowed; allowed: an integer from 1 to 250"),
    ({"interval": 0}, r"pull interval=0 is not allowed; allowed: seconds > 0, at most 86400"),
    ({"visibility_timeout": 50_000}, r"pull visibility_timeout=50000 is not allowed; allowed: seconds > 0, "
                                     r"at most 43200 \(12 hours\)"),
])
def test_pull_option_is_validated_on_every_way_in(pull, error):
    with pytest.raises(cdp.ConfigError, match=error):
        pulled_pipeline(**pull)
    p = pulled_pipeline()
    with pytest.raises(cdp.ConfigError, match=error):
        p.set("jobs.consumer.pull", {"interval": 1.0, **pull})


def test_a_pull_consumer_has_no_handler_or_bindings():
    p = cdp.Pipeline("x")
    p.add_queue("jobs")
    with pytest.raises(cdp.ConfigError, match=r"consumer of 'jobs': calls='A' is not allowed with pull=; a pull "
                                             r"consumer runs outside Workers"):
        p.add_consumer("jobs", pull={}, calls="A")
    with pytest.raises(cdp.ConfigError, match=r"queue 'q': visibility_timeout_ms=1000000000 is not allowed; allowed: an integer from 1 to 4.32e\+07 \(ms\)"):
        p.add_queue("q", visibility_timeout_ms=10**9)


def test_pull_consumer_round_trips_through_the_model_file():
    p = pulled_pipeline()
    q = cdp.Pipeline.from_yaml(p.to_yaml())
    assert q.spec("jobs.consumer").pull == {"interval": 1.0, "batch_size": 10, "concurrency": 1,
                                            "visibility_timeout": 30.0}
    assert q.spec("jobs")["visibility_timeout_ms"] == 5_000


def test_export_declares_the_pull_consumer_in_provisioning_and_the_config_passes_the_schema():
    p = pulled_pipeline()
    config = cdp.deploy.configs(p)["puller"]
    consumers = [c["queue"] for c in config["queues"]["consumers"]]
    assert consumers == ["jobs-dlq"]          # not a push consumer of 'jobs'
    assert cdp.deploy.schema_errors(config) == []
    cdp.deploy.validate_config(config)
    script = cdp.export.provisioning(p)
    assert ("$WRANGLER queues consumer http add jobs --batch-size 20 --message-retries 5 "
            "--dead-letter-queue jobs-dlq --visibility-timeout-secs 5") in script
    assert script.index("queues create jobs-dlq") < script.index("consumer http add jobs")


def test_import_reads_type_http_pull_as_the_docs_write_it(tmp_path):
    path = tmp_path / "wrangler.toml"
    path.write_text('name = "w"\n[[queues.producers]]\nbinding = "JOBS"\nqueue = "jobs"\n'
                    '[[queues.consumers]]\nqueue = "jobs"\ntype = "http_pull"\nvisibility_timeout_ms = 5000\n'
                    'max_retries = 5\ndead_letter_queue = "jobs-dlq"\n')
    with pytest.warns(UserWarning, match=r"type = \"http_pull\" \(wrangler 4.86 refuses it in a config"):
        p = cdp.from_wrangler(path)
    assert p.spec("jobs.consumer").pull is not None
    assert dict(p.spec("jobs")) == {"visibility_timeout_ms": 5000, "max_retries": 5, "dead_letter_queue": "jobs-dlq"}
    assert "queues consumer http add jobs --message-retries 5 --dead-letter-queue jobs-dlq " \
           "--visibility-timeout-secs 5" in cdp.export.provisioning(p)
    assert "consumers" not in cdp.deploy.configs(p)["w"].get("queues", {})
    path.write_text('name = "w"\n[[queues.consumers]]\nqueue = "jobs"\ntype = "http_pull"\nmax_concurrency = 3\n')
    with pytest.raises(cdp.ConfigError, match=r"keys \['max_concurrency'\] are not allowed; allowed: queue, type, "
                                             r"max_batch_size, max_retries"):
        cdp.from_wrangler(path)
