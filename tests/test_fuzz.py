"""Hostile but honest input: random settings, specs and model documents fed to ``Pipeline``,
``simulate`` (with a small budget) and the export. Every call returns or raises cdpkit's own
errors, within a time bound: no KeyError, AttributeError, TypeError, RecursionError or numpy
error from deep inside, and no hang (issue 13)."""

import math
import signal
import warnings
from contextlib import contextmanager

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import cdpkit as cdp
from cdpkit import CdpkitError
from cdpkit.runtime.settings import QUEUE_SETTINGS

SECONDS = 20     # one call's time bound (a hang is what this catches, not slowness)

# values of every kind a user might type, or a sweep might produce
VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-10, 10**9), st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, 1, 2, 5, 10, 60, 100, 101, 250, 251, 86_400, 0.5, 2.5, -1, 1e12]),
    st.sampled_from([np.int64(20), np.float64(0.5), np.bool_(True), np.float64("nan")]),
    st.text(max_size=8), st.lists(st.text(max_size=4), max_size=3),
    st.sampled_from(["jobs", "jobs2", "Worker", "DB", ["jobs"], ["DB"], {"exp": 0.1},
                     {"uniform": [1, 0]}, {"gamma": 1}, {"policy": "exponential", "base": 5},
                     {"policy": "fixed", "base": 2.5}, {"base": 1e9}, {"a": "b"}]),
)
# values that are often right for the key (so that runs happen), else anything
PLAUSIBLE = st.one_of(st.integers(0, 300), st.floats(0, 2), st.sampled_from(
    [None, 0.0, 0.5, 1, 3, 60, ["jobs2"], ["DB"], [], "Worker", {"exp": 0.01}, {"uniform": [0, 0.01]},
     {"policy": "exponential", "base": 1, "cap": 8}, {"policy": "fixed", "base": 0, "mode": "retry_all"},
     "kv", "d1", "sink", "cron", ["message"], "jobs2"]))
KEYS = st.sampled_from(
    [f"jobs.{name}" for name in QUEUE_SETTINGS] + ["jobs.max_batch_sise", "jobs.consumer.nope"]
    + [f"jobs.consumer.{f}" for f in ("base", "per_message", "failure", "permanent", "retry",
                                      "publish", "routes", "calls", "writes", "handler")]
    + [f"Worker.{f}" for f in ("service", "instances", "skew", "calls", "publish", "writes",
                               "binding", "method", "worker", "cls")]
    + [f"DB.{f}" for f in ("kind", "latency", "binding")]
    + [f"http.{f}" for f in ("queue", "share", "types", "via")] + ["nowhere.x", "", "jobs"])


@contextmanager
def time_bound(seconds: int = SECONDS):
    def stop(signum, frame):
        raise TimeoutError(f"no answer within {seconds} s: a hang")
    old = signal.signal(signal.SIGALRM, stop)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def base() -> cdp.Pipeline:
    p = cdp.Pipeline("fuzz")
    p.add_source("http", queue="jobs")
    p.add_queue("jobs", max_batch_size=10, max_batch_timeout=1, dead_letter_queue="jobs2")
    p.add_queue("jobs2")
    p.add_consumer("jobs", service={"per_message": 0.001}, calls="Worker", writes=["DB"])
    p.add_consumer("jobs2")
    p.add_actor("Worker", service=0.002, instances=3)
    p.add_store("DB", kind="d1", latency=0.001)
    return p


SMALL = cdp.Budget(messages=20_000, events=200_000, same_instant_events=20_000)


def run_all(p: cdp.Pipeline) -> None:
    """Everything a user does with a pipeline: simulate briefly, summarise, export."""
    res = cdp.simulate(p, cdp.Poisson(rate=50), duration=5, seed=1, budget=SMALL)
    res.summary()
    res.cost()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cdp.export.wrangler_toml(p)
        cdp.export.wrangler_jsonc(p)


@settings(max_examples=400, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(KEYS, st.one_of(PLAUSIBLE, PLAUSIBLE, VALUES)), min_size=1, max_size=2))
def test_random_settings_return_or_raise_cdpkit_errors(changes):
    p = base()
    with time_bound():
        try:
            for key, value in changes:
                p = p.set(key, value)
            run_all(p)
        except CdpkitError:
            pass


NAMES = st.sampled_from(["jobs", "jobs2", "A", "DB", "http", "class", "Bad Name", "", "x" * 70])
SPEC = st.dictionaries(st.sampled_from(
    ["max_batch_size", "max_batch_timeout", "max_retries", "dead_letter_queue", "retry_delay",
     "max_concurrency", "delivery_delay", "retention", "consumer", "service", "failure", "retry",
     "publish", "calls", "routes", "writes", "instances", "skew", "kind", "latency", "queue",
     "share", "types", "via", "binding", "method", "worker", "max_batch_sise"]),
    st.one_of(PLAUSIBLE, PLAUSIBLE, VALUES), max_size=4)
DOCUMENT = st.one_of(
    st.fixed_dictionaries({}, optional={
        "name": st.one_of(st.text(max_size=6), VALUES),
        "sources": st.one_of(st.dictionaries(NAMES, SPEC, max_size=2), VALUES,
                             st.just({"http": {"queue": "jobs"}})),
        "queues": st.one_of(st.dictionaries(NAMES, st.one_of(SPEC, st.fixed_dictionaries(
            {"consumer": SPEC})), max_size=3), VALUES),
        "actors": st.one_of(st.dictionaries(NAMES, SPEC, max_size=2), VALUES),
        "stores": st.one_of(st.dictionaries(NAMES, SPEC, max_size=2), VALUES),
        "provenance": VALUES,
        "queus": VALUES}),
    VALUES)


FIELDS = {"queues": [*QUEUE_SETTINGS, "max_batch_sise"],
          "actors": ["service", "instances", "skew", "calls", "publish", "writes", "binding", "method"],
          "stores": ["kind", "latency"], "sources": ["queue", "share", "types", "via"]}
MUTATION = st.sampled_from([("queues", "jobs"), ("queues", "jobs2"), ("actors", "Worker"), ("stores", "DB"),
                            ("sources", "http"), ("queues", "new-q"), ("actors", "class")]).flatmap(
    lambda where: st.tuples(st.just(where), st.sampled_from(FIELDS[where[0]]),
                            st.one_of(PLAUSIBLE, PLAUSIBLE, VALUES)))


@settings(max_examples=400, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(DOCUMENT, st.tuples(st.just("mutations"), st.lists(MUTATION, min_size=1, max_size=3))))
def test_random_model_documents_return_or_raise_cdpkit_errors(document):
    if isinstance(document, tuple):          # mutations of a valid document
        changes, document = document[1], base().to_dict()
        for (section, node), key, value in changes:
            document.setdefault(section, {}).setdefault(node, {})[key] = value
    try:
        text = yaml.safe_dump(document)
    except yaml.YAMLError:
        return
    if isinstance(document, float) and math.isnan(document):
        return
    with time_bound():
        try:
            p = cdp.Pipeline.from_yaml(text)
            run_all(p)
        except CdpkitError:
            pass


@settings(max_examples=100, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(duration=VALUES, seed=VALUES, rate=VALUES)
def test_random_simulate_arguments_return_or_raise_cdpkit_errors(duration, seed, rate):
    with time_bound():
        try:
            workload = cdp.Poisson(rate=rate)
            cdp.simulate(base(), workload, duration=duration, seed=seed, budget=SMALL).summary()
        except CdpkitError:
            pass


@pytest.mark.parametrize("text", [
    "queues: {a: {dead_letter_queue: b, consumer: {}}, b: {dead_letter_queue: a, consumer: {}}}\n"
    "sources: {http: {queue: a}}",
    "queues: {a: {consumer: {publish: [b]}}, b: {consumer: {publish: [a]}}}\nsources: {http: {queue: a}}",
])
def test_cycles_in_model_files_return_or_raise(text):
    with time_bound():
        try:
            run_all(cdp.Pipeline.from_yaml(text))
        except CdpkitError:
            pass
