"""Errors a user would otherwise never see: a consumer handler that raises is shown as a
warning with its traceback (first of each kind), counted at the end of the run, kept with its
traceback in rt.errors, and counted in summaries, the Results repr and the explorer headline."""

from __future__ import annotations

import warnings

import pytest

import cdpkit as cdp
from cdpkit.errors import HandlerWarning


def shown(run) -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")     # what a notebook does: not "always"
        run()
    return [str(w.message) for w in caught if issubclass(w.category, HandlerWarning)]


def missing_field_runtime(semantics: str = "local") -> cdp.Runtime:
    rt = cdp.Runtime(semantics=semantics)
    rt.queue("jobs", max_retries=2, max_batch_size=10)

    @rt.consumer("jobs")
    async def handle(batch, env, ctx):
        for m in batch.messages:
            print(m.body["workflow"])       # the line the user must be shown

    for _ in range(5):
        rt.env.JOBS.send({"tenant": "t1"})
    return rt


def test_first_error_of_each_kind_is_a_warning_with_its_traceback_and_a_count_at_the_end():
    rt = missing_field_runtime()
    messages = shown(rt.run)
    assert len(messages) == 2, messages           # 3 batches failed: one warning + the count
    first, count = messages
    assert "queue 'jobs': the consumer handler raised KeyError: 'workflow'" in first
    assert 'print(m.body["workflow"])' in first and __file__ in first   # the user's line
    assert "clock.py" not in first                # not the trampoline that called it
    assert count == "queue 'jobs': 3 handler errors in this run (1 kind: KeyError); see rt.errors"
    errors = rt.errors
    assert list(errors.columns) == ["time", "queue", "batch", "error", "traceback"]
    assert errors["traceback"].str.contains('m.body\\["workflow"\\]').all()
    assert errors["traceback"].str.endswith("KeyError: 'workflow'\n").all()
    assert rt.summary().loc["jobs", "errors"] == 3


def test_the_same_error_is_shown_again_in_a_new_runtime():
    """Re-running a notebook cell builds a new runtime: its errors are not swallowed as
    'already warned' (warnings.warn's once-per-location registry would)."""
    assert len(shown(missing_field_runtime().run)) == 2
    assert len(shown(missing_field_runtime().run)) == 2


def test_retry_delay_over_the_limit_points_at_the_users_call():
    rt = cdp.Runtime(semantics="production")
    rt.queue("jobs", max_retries=0)

    @rt.consumer("jobs")
    async def handle(batch, env, ctx):
        for m in batch.messages:
            m.retry(delay_seconds=100_000)

    rt.env.JOBS.send(1)
    first, _ = shown(rt.run)
    assert "LimitError" in first and "m.retry(delay_seconds=100_000)" in first
    assert rt.errors["traceback"][0].count("File ") >= 2      # the user's call and the check


def test_a_handler_with_the_wrong_arity_is_shown_at_its_definition():
    rt = cdp.Runtime()
    rt.queue("jobs", max_retries=0)

    @rt.consumer("jobs")
    async def handle(batch):
        pass

    rt.env.JOBS.send(1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        rt.run()
    assert "TypeError" in str(caught[0].message)
    assert caught[0].filename == __file__ and caught[0].lineno == handle.__code__.co_firstlineno


def test_simulate_counts_handler_errors_in_summary_and_repr():
    p = cdp.Pipeline("failing")
    p.add_source("http", queue="jobs")
    p.add_queue("jobs", max_retries=1)

    async def handle(batch, env, ctx):
        for m in batch.messages:
            m.body["missing"]

    p.add_consumer("jobs", handler=handle)
    with pytest.warns(HandlerWarning, match="KeyError"):
        res = cdp.simulate(p, cdp.Constant(rate=5), duration=2, seed=1)
    errors = len(res.runtime.errors)
    assert errors > 0 and res.summary()["errors"] == errors
    assert f"{errors} handler errors (KeyError), see res.runtime.errors" in repr(res)
    assert "handler errors" not in repr(cdp.simulate(p.set("jobs.consumer.handler", None),
                                                     cdp.Constant(rate=5), duration=2, seed=1))
