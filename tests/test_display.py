"""Tables a notebook shows read as numbers with units (counts with separators, dollars,
times with their unit), while the data underneath stays numeric for computing."""

from __future__ import annotations

import re

import pandas as pd

import cdpkit as cdp
from cdpkit.runtime.display import Summary, Table, fmt

SCIENTIFIC = re.compile(r"\d[eE][+-]\d")


def run() -> cdp.sim.results.Results:
    p = cdp.Pipeline("gateway")
    p.add_source("http", queue="jobs")
    p.add_queue("jobs", max_batch_size=100, max_batch_timeout=1)
    p.add_consumer("jobs", service={"base": 0.001, "per_message": 0.0001})
    return cdp.simulate(p, cdp.Poisson(rate=3000), duration=12, seed=1)


def test_summary_shows_counts_times_and_rates_with_units_and_keeps_numbers():
    res = run()
    summary = res.summary()
    assert isinstance(summary, pd.Series) and summary["messages"] > 30_000
    text = repr(summary)
    assert not SCIENTIFIC.search(text), text
    assert re.search(r"messages\s+3\d,\d{3}\n", text)          # 32,652 not 3.265e+04 / 32652.0
    assert re.search(r"p99_latency\s+[\d.]+ m?s\n", text)
    assert re.search(r"throughput\s+[\d,]+ /s\n", text)
    html = summary._repr_html_()
    assert not SCIENTIFIC.search(html) and re.search(r">3\d,\d{3}<", html)
    assert float(summary.sum()) > summary["messages"]           # still numbers underneath


def test_cost_table_shows_dollars_and_runtime_summary_counts():
    res = run()
    cost = res.cost()
    assert pd.api.types.is_float_dtype(cost["monthly_cost"])
    html, text = cost._repr_html_(), repr(cost)
    for shown in (html, text):
        assert not SCIENTIFIC.search(shown)
        assert "$" in shown
    assert isinstance(cost[["service", "monthly_cost"]], Table)   # a selection shows the same way
    table = res.runtime.summary()
    assert isinstance(table, Table) and not SCIENTIFIC.search(table._repr_html_())
    assert re.search(r">3\d,\d{3}<", table._repr_html_())


def test_the_same_table_renders_the_same_html():
    """Notebook outputs are compared by nbval: no random Styler ids."""
    frame = Table({"sent": [1.0, 2.0]})
    assert frame._repr_html_() == Table({"sent": [1.0, 2.0]})._repr_html_()


def test_formats():
    assert fmt("messages", 32652.0) == "32,652"
    assert fmt("p99_latency", 0.00042) == "420 µs"
    assert fmt("time_to_drain", 3600 * 3) == "3.0 h"
    assert fmt("monthly_cost", 4.65e-06) == "$0.0000047"
    assert fmt("run_cost", 0.0465) in ("$0.046", "$0.047")
    assert fmt("quantity", 1234567.0) == "1,234,567" and fmt("quantity", 0.0012) == "0.0012"
    assert fmt("p99_latency", float("nan")) == "–"
    assert repr(Summary({"a": 1.5}, name="x")) == "x\na 1.5"
