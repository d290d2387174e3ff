"""How tables of results look in a notebook, with the numbers underneath left as they are.

A column's (or a summary row's) name says what it holds: counts are integers with thousands
separators, money is dollars, times carry their unit, rates are per second. :class:`Table`
(a DataFrame) and :class:`Summary` (a Series) show themselves that way (``_repr_html_``
through a pandas Styler, and ``repr``) but are ordinary pandas objects for computing:
``summary["messages"]`` is still a number, ``table.sum()`` still adds.

>>> s = Summary({"messages": 32652.0, "throughput": 271.9, "p99_latency": 0.0123,
...              "time_to_drain": 95.0, "mean_batch": 9.96, "errors": 0.0}, name="gateway")
>>> print(s)
gateway
messages       32,652
throughput     272 /s
p99_latency   12.3 ms
time_to_drain    95 s
mean_batch       9.96
errors              0
>>> float(s["messages"]) + 1
32653.0
>>> fmt("monthly_cost", 0.0472), fmt("run_cost", 4.65e-06), fmt("monthly_cost", 1234.5)
('$0.047', '$0.0000047', '$1,234.50')
"""

from __future__ import annotations

import math
from collections.abc import Callable
from numbers import Number
from typing import Any

import pandas as pd

#: Names that hold a count of things.
COUNTS = frozenset({
    "messages", "acked", "dead_lettered", "dropped", "expired", "in_flight", "retries",
    "max_backlog", "sent", "deliveries", "batches", "errors", "requests", "evictions",
    "size", "retried", "waiting", "attempts", "bytes",
    "held_by_broker", "backlog", "running", "consumers", "landing", "instances",
})
#: Names that hold virtual seconds.
SECONDS = frozenset({
    "wait_mean", "p50_latency", "p95_latency", "p99_latency", "time_to_drain", "latency",
    "wait", "duration", "busy_seconds", "drain_time",
})


def _count(value: float) -> str:
    return f"{value:,.0f}"


def _seconds(value: float) -> str:
    """``0 s``, ``850 µs``, ``12.3 ms``, ``4.20 s``, ``3.5 min``, ``2.0 h``."""
    size = abs(value)
    if size == 0:
        return "0 s"
    for unit, scale, below in (("µs", 1e-6, 1e-3), ("ms", 1e-3, 1.0), ("s", 1.0, 120.0),
                               ("min", 60.0, 7200.0)):
        if size < below:
            return f"{value / scale:.3g} {unit}" if size / scale < 100 else f"{value / scale:.0f} {unit}"
    return f"{value / 3600:,.1f} h"


def _dollars(value: float) -> str:
    """Cents for a dollar and more, two significant digits below a cent (never 1e-06)."""
    if value == 0:
        return "$0"
    if abs(value) >= 0.01:
        return f"${value:,.2f}" if abs(value) >= 1 else f"${value:.2g}"
    decimals = 1 - math.floor(math.log10(abs(value)))
    return f"${value:.{decimals}f}"


def _rate(value: float) -> str:
    return f"{value:,.0f} /s" if abs(value) >= 100 else f"{value:.3g} /s"


def _plain(value: float) -> str:
    """Other numbers: up to 4 significant digits, thousands separated, no exponent."""
    size = abs(value)
    if value.is_integer() or size >= 999.5:
        return f"{value:,.0f}"
    if size >= 1e-3:
        return f"{value:.3g}"
    return f"{value:.{2 - math.floor(math.log10(size))}f}"


def formatter(name: object) -> Callable[[float], str]:
    """The formatting function for values under the column or row ``name``."""
    text = str(name)
    if text in COUNTS:
        return _count
    if text in SECONDS or text.endswith(("_latency", "_seconds_mean")):
        return _seconds
    if text.endswith("cost") or text.startswith("cost"):
        return _dollars
    if text in ("throughput", "rate") or text.endswith("_per_s"):
        return _rate
    if text == "mean_batch":
        return lambda v: f"{v:.3g}"
    return _plain


def fmt(name: object, value: Any) -> str:
    """``value`` as shown under ``name``: numbers formatted, NaN as ``–``, anything else as is."""
    if isinstance(value, bool) or not isinstance(value, Number):
        return str(value)
    if math.isnan(value):
        return "–"
    return formatter(name)(float(value))


def _html(styler: Any) -> str:
    # a fixed id prefix: the same table renders the same HTML (notebook outputs are compared)
    return styler.set_uuid("cdp").to_html()


class Summary(pd.Series):
    """A Series of named figures that displays each with its unit (see the module doc)."""

    @property
    def _constructor(self):
        return Summary

    def formatted(self) -> pd.Series:
        """The figures as display strings."""
        return pd.Series([fmt(k, v) for k, v in self.items()], index=self.index, name=self.name,
                         dtype=object)

    def __repr__(self) -> str:
        text = self.formatted()
        width = max((len(str(k)) for k in text.index), default=0)
        values = max((len(v) for v in text), default=0)
        head = "" if self.name is None else f"{self.name}\n"
        return head + "\n".join(f"{str(k):<{width}} {v:>{values}}" for k, v in text.items())

    def _repr_html_(self) -> str:
        frame = self.formatted().to_frame(name=self.name if self.name is not None else "")
        return _html(frame.style)


class Table(pd.DataFrame):
    """A DataFrame whose columns display with their units (see the module doc)."""

    @property
    def _constructor(self):
        return Table

    @property
    def _constructor_sliced(self):
        return pd.Series

    def formatted(self) -> pd.DataFrame:
        """The table as display strings."""
        return pd.DataFrame({c: [fmt(c, v) for v in self[c]] for c in self.columns},
                            index=self.index, columns=self.columns)

    def __repr__(self) -> str:
        return repr(pd.DataFrame(self.formatted()))

    def _repr_html_(self) -> str:
        numbers = [c for c in self.columns if pd.api.types.is_numeric_dtype(self[c])
                   and not pd.api.types.is_bool_dtype(self[c])]
        styler = pd.DataFrame(self).style.format(
            {c: (lambda v, c=c: fmt(c, v)) for c in numbers})
        return _html(styler)


def as_table(frame: pd.DataFrame) -> Table:
    """``frame`` as a :class:`Table` (same data, formatted display)."""
    return Table(frame)


def as_summary(series: pd.Series) -> Summary:
    """``series`` as a :class:`Summary` (same data, formatted display)."""
    return Summary(series)
