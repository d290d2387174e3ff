"""Every way into a spec applies the same rules: ``add_*``, ``Pipeline.set`` (and so sweeps,
``choose`` and the explorer), model files. Each case names the node, the field, the value and
what is allowed, and is raised before anything runs."""

import re

import numpy as np
import pytest

import cdpkit as cdp
from cdpkit import ConfigError


def small():
    p = cdp.Pipeline("v")
    p.add_source("http", queue="jobs")
    p.add_queue("jobs", max_batch_size=10, max_batch_timeout=1)
    p.add_consumer("jobs", service={"per_message": 0.001}, calls="Worker")
    p.add_actor("Worker", service=0.002, instances=4)
    return p


# (key, value, the error's text); each once failed silently or deep inside (issue 12.2, 13.10)
BAD_SETTINGS = [
    ("jobs.consumer.failure", 2.0,
     "consumer of 'jobs': failure=2.0 is not allowed; allowed: a probability from 0 to 1"),
    ("jobs.consumer.permanent", -0.1, "permanent=-0.1 is not allowed; allowed: a probability from 0 to 1"),
    ("Worker.instances", 0, "actor 'Worker': instances=0 is not allowed; allowed: an integer >= 1"),
    ("Worker.instances", 2.5, "instances=2.5 is not allowed; allowed: an integer >= 1"),
    ("Worker.skew", -1, "actor 'Worker': skew=-1 is not allowed; allowed: a number >= 0"),
    ("Worker.skew", float("nan"), "skew=nan is not allowed"),
    ("Worker.service", {"exp": -1}, "actor 'Worker': service {'exp': -1} is not allowed"),
    ("Worker.service", float("inf"), "service inf is not allowed; allowed: a finite number"),
    ("Worker.publish", "jobs", "publish='jobs' is not allowed; allowed: a list of queue names; write ['jobs'] for one"),
    ("jobs.consumer.publish", "jobs2", "publish='jobs2' is not allowed; allowed: a list of queue names"),
    ("jobs.consumer.retry", {"policy": "fixed", "base": 2.5},
     "retry base=2.5 is not allowed; allowed: whole seconds from 0 to"),
    ("jobs.delivery_delay", -5, "queue 'jobs': delivery_delay=-5 is not allowed; allowed: an integer from 0 to"),
    ("jobs.retention", 5, "queue 'jobs': retention=5 is not allowed; allowed: a number from 60 to 1.2096e+06 (s)"),
    ("jobs.max_batch_size", 0, "max_batch_size=0 is not allowed; allowed: an integer from 1 to 100"),
    ("jobs.max_batch_timeout", float("nan"), "max_batch_timeout=nan is not allowed"),
    ("jobs.dead_letter_queue", "jobs", "dead_letter_queue='jobs' is the queue itself"),
    ("jobs.max_batch_sise", 10, "unknown setting 'max_batch_sise' (did you mean 'max_batch_size'?)"),
    ("Worker.instancez", 3, "actor 'Worker' has no field 'instancez'"),
    ("http.share", 0, "source 'http': share=0 is not allowed; allowed: 0 < share <= 1"),
    ("nowhere.max_batch_size", 3, "setting 'nowhere.max_batch_size': no node 'nowhere'"),
]


@pytest.mark.parametrize("key, value, message", BAD_SETTINGS)
def test_set_validates_like_add(key, value, message):
    p = small()
    with pytest.raises(ConfigError, match=re.escape(message)):
        p.set(key, value)


@pytest.mark.parametrize("key, value, message", BAD_SETTINGS[:8])
def test_sweep_rows_are_validated_before_anything_runs(key, value, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        cdp.sweep(small(), {key: [value]}, cdp.Poisson(rate=10), duration=5, progress=False)


def test_add_applies_the_same_rules():
    p = cdp.Pipeline("v")
    with pytest.raises(ConfigError, match=re.escape("queue 'jobs': delivery_delay=-5 is not allowed")):
        p.add_queue("jobs", delivery_delay=-5)
    with pytest.raises(ConfigError, match=re.escape("queue 'jobs': retention=5 is not allowed")):
        p.add_queue("jobs", retention=5)
    with pytest.raises(ConfigError, match=re.escape("actor 'A': skew=-1 is not allowed")):
        p.add_actor("A", skew=-1)
    with pytest.raises(ConfigError, match=re.escape("consumer of 'jobs': publish='jobs2' is not allowed")):
        p.add_consumer("jobs", publish="jobs2")


@pytest.mark.parametrize("text, message", [
    ("queues:\n  jobs: {delivery_delay: -5, consumer: {}}", "queues.jobs: queue 'jobs': delivery_delay=-5"),
    ("queues:\n  jobs: {retention: 5, consumer: {}}", "queues.jobs: queue 'jobs': retention=5"),
    ("queues:\n  jobs: {consumer: {retry: {base: 2.5}}}", "retry base=2.5 is not allowed; allowed: whole seconds"),
    ("queues:\n  jobs: {consumer: {publish: jobs2}}", "publish='jobs2' is not allowed"),
    ("actors:\n  A: {skew: -1}", "actors.A: actor 'A': skew=-1 is not allowed"),
])
def test_model_files_apply_the_same_rules(text, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        cdp.Pipeline.from_yaml(text)


def test_set_keeps_the_value_plain_and_the_original_unchanged():
    p = small()
    q = p.set("jobs.max_batch_size", np.int64(20)).set("Worker.instances", np.int64(8))
    assert q.spec("jobs")["max_batch_size"] == 20 and type(q.spec("jobs")["max_batch_size"]) is int
    assert type(q.spec("Worker").instances) is int
    assert p.spec("jobs")["max_batch_size"] == 10 and p.spec("Worker").instances == 4
    assert q.set("jobs.max_batch_size", None).spec("jobs") == {"max_batch_timeout": 1.0}


def test_set_rewires_changed_edges():
    p = small()
    p.add_queue("events")
    p.add_consumer("events")
    q = p.set("jobs.consumer.publish", ["events"])
    assert q.graph.edges["jobs.consumer", "events"]["kind"] == "publishes"
    q.validate()


def test_dead_letter_cycles_are_refused():
    p = cdp.Pipeline("v")
    p.add_source("http", queue="a")
    p.add_queue("a", dead_letter_queue="b")
    p.add_queue("b", dead_letter_queue="a")
    p.add_consumer("a")
    p.add_consumer("b")
    with pytest.raises(ConfigError, match=re.escape("dead-letter queues form a cycle a -> b -> a")):
        p.validate()


def test_model_file_path_that_is_not_a_model_file():
    with pytest.raises(ConfigError, match=re.escape("model file 'model.txt' does not exist")):
        cdp.Pipeline.from_yaml("model.txt")


def test_simulate_runs_a_pull_consumer_in_production_and_refuses_it_under_local():
    p = cdp.Pipeline("v")
    p.add_source("http", queue="jobs")
    p.add_queue("jobs")
    p.add_consumer("jobs", pull={"batch_size": 10})
    res = cdp.simulate(p, cdp.Poisson(rate=10), duration=5)
    assert res.summary()["acked"] == res.summary()["messages"] > 0
    assert type(res.runtime.queues["jobs"].consumer).__name__ == "PullConsumer"   # not pushed
    with pytest.raises(ConfigError, match=re.escape("simulate: the consumer of 'jobs' is a pull consumer "
                                                    "(pull=...), which semantics='local' does not have")):
        cdp.simulate(p, cdp.Poisson(rate=10), duration=5, semantics="local")


@pytest.mark.parametrize("make, message", [
    (lambda: cdp.Poisson(rate=1, types={"a": float("nan")}), "workload types={'a': nan} is not allowed"),
    (lambda: cdp.Poisson(rate=float("inf")), "workload rate=inf is not allowed"),
    (lambda: cdp.Diurnal(mean=10, amplitude="big"), "workload amplitude='big' is not allowed; allowed: 0 to 1"),
    (lambda: cdp.Piecewise([(0, 10), 5]), "workload schedule=[(0, 10), 5] is not allowed"),
    # a replayed row that cannot be replayed is an error, never silently dropped (issue 13.13)
    (lambda: cdp.Replay(trace=__import__("pandas").DataFrame({"time": [0.1, float("nan"), 0.3]})),
     "workload trace: time must be a finite number of seconds >= 0 in every row; rows [1] are not (nan)"),
    (lambda: cdp.Replay(trace=__import__("pandas").DataFrame({"time": [0.1], "size": [1.5]})),
     "workload trace: size must be a whole number of bytes >= 1 in every row; rows [0]"),
])
def test_workload_inputs_are_checked(make, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        make()


def test_numpy_seeds_and_settings_are_plain_numbers():
    """A seed or setting from a DataFrame row is a numpy number; it works like the int it holds
    (once a TypeError from random.Random; found by the fuzz test)."""
    res = cdp.simulate(small(), cdp.Poisson(rate=10), duration=5, seed=np.int64(20))
    again = cdp.simulate(small(), cdp.Poisson(rate=10), duration=5, seed=20)
    assert res.summary().equals(again.summary())
    assert cdp.Runtime(seed=np.int64(3)).seed == 3
