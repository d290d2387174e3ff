"""Workloads: when messages arrive, of which type, how big. Generated vectorised with numpy.

Every workload takes ``types`` (message type -> weight) and ``size`` (bytes: a number or a
distribution, see :class:`~cdpkit.model.dists.Dist`) and draws :class:`Arrivals` for a
duration from a numpy generator; :meth:`Workload.expected` says how many it will draw on
average, before drawing (the run budget uses it).

>>> import numpy as np
>>> w = Poisson(rate=100)
>>> t = w.arrivals(duration=10, rng=np.random.default_rng(1)).times
>>> bool(900 < len(t) < 1100 and (np.diff(t) >= 0).all())
True
>>> Piecewise([(0, 10), (5, 100)]).rate_at(6.0)
100.0
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from numbers import Real
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import ConfigError
from .dists import Dist


@dataclass
class Arrivals:
    """Arrival times (sorted, seconds), message type codes and sizes in bytes. Sizes are
    int32 when they all fit (10M arrivals: 40 MB instead of 80 MB), else int64; their values
    are the same. (Type codes stay int64: the compiled engine reads them as int64, and one
    type's codes are ``np.zeros``, pages that cost nothing until written.)

    >>> Arrivals(np.zeros(2), np.zeros(2, dtype=np.int64), np.array([1_000, 128_000]), ["a"]).sizes.dtype
    dtype('int32')
    >>> a = Arrivals(np.zeros(2), np.zeros(2, dtype=np.int64), np.array([1_000, 3_000_000_000]), ["a"])
    >>> a.sizes.dtype, int(a.sizes[1])
    (dtype('int64'), 3000000000)
    """

    times: np.ndarray
    types: np.ndarray
    sizes: np.ndarray
    type_names: list[str]

    def __post_init__(self) -> None:
        self.sizes = _narrow(self.sizes)

    def __len__(self) -> int:
        return len(self.times)


def _narrow(values: np.ndarray) -> np.ndarray:
    """Integer ``values`` as int32 when they all fit, else int64 when they fit that; anything
    else as it is."""
    values = np.asarray(values)
    if values.dtype.kind not in "iu" or not len(values):
        return values
    lo, hi = int(values.min()), int(values.max())
    for dtype in (np.int32, np.int64):
        if np.iinfo(dtype).min <= lo and hi <= np.iinfo(dtype).max:
            return values.astype(dtype, copy=False)
    return values


@dataclass(kw_only=True)
class Workload:
    """Base class. ``types`` maps message type -> weight; ``size`` is a byte distribution."""

    types: dict[str, float] = field(default_factory=lambda: {"message": 1.0})
    size: object = 1_000

    def __post_init__(self) -> None:
        weights = self.types.values() if isinstance(self.types, dict) else [None]
        if not self.types or not all(_finite(w) and w >= 0 for w in weights) or sum(weights) <= 0:
            raise ConfigError(f"workload types={self.types!r} is not allowed; allowed: a dict of "
                              "message type -> non-negative weight, with a positive total")
        self.size = Dist.parse(self.size, "workload size")

    def times(self, duration: float, rng: np.random.Generator) -> np.ndarray:
        """Sorted arrival times in ``[0, duration)``."""
        raise NotImplementedError

    def expected(self, duration: float) -> float | None:
        """How many arrivals :meth:`arrivals` draws over ``duration`` on average (None: unknown
        until drawn). The run budget checks it before anything is drawn.

        >>> Poisson(rate=100).expected(60)
        6000.0
        """
        return None

    def arrivals(self, duration: float, rng: np.random.Generator) -> Arrivals:
        """Draw the arrivals of ``duration`` seconds: times, type codes and sizes.

        >>> a = Poisson(rate=10, types={"a": 1, "b": 3}).arrivals(100, np.random.default_rng(0))
        >>> a.type_names, bool(0.65 < (a.types == 1).mean() < 0.85)
        (['a', 'b'], True)
        """
        times = self.times(duration, rng)
        names = list(self.types)
        weights = np.array([self.types[n] for n in names], dtype=float)
        codes = (rng.choice(len(names), size=len(times), p=weights / weights.sum())
                 if len(names) > 1 else np.zeros(len(times), dtype=np.int64))
        sizes = np.maximum(np.rint(self.size.sample(rng, len(times))), 1).astype(np.int64)
        return Arrivals(times, codes, sizes, names)


def _finite(x: object) -> bool:
    return isinstance(x, Real) and not isinstance(x, bool) and math.isfinite(x)


def _check_rate(rate: object, field: str = "rate") -> float:
    if not _finite(rate) or rate < 0:
        raise ConfigError(f"workload {field}={rate!r} is not allowed; allowed: a finite number >= 0 "
                          "(messages per second)")
    return float(rate)


@dataclass
class _Rated(Workload):
    """A workload with one constant ``rate`` (messages per second)."""

    rate: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        self.rate = _check_rate(self.rate)

    def expected(self, duration: float) -> float:
        return self.rate * duration


@dataclass
class Poisson(_Rated):
    """Poisson arrivals at ``rate`` messages per second.

    Parameters
    ----------
    rate : float
        Mean arrivals per second (a finite number >= 0).
    types : dict, optional
        Message type -> weight (default ``{"message": 1.0}``).
    size : dist, optional
        Message size in bytes (default 1,000).

    Examples
    --------
    >>> w = Poisson(rate=50, types={"click": 0.9, "order": 0.1}, size={"uniform": [200, 2000]})
    >>> len(w.arrivals(10, np.random.default_rng(1))) > 400
    True
    >>> Poisson(rate=-1)
    Traceback (most recent call last):
    ...
    cdpkit.errors.ConfigError: workload rate=-1 is not allowed; allowed: a finite number >= 0 (messages per second)
    """

    def times(self, duration: float, rng: np.random.Generator) -> np.ndarray:
        if self.rate == 0:
            return np.empty(0)
        n = rng.poisson(self.rate * duration)
        return np.sort(rng.uniform(0.0, duration, n))


@dataclass
class Constant(_Rated):
    """Evenly spaced arrivals at ``rate`` per second (deterministic).

    >>> Constant(rate=2).arrivals(2, np.random.default_rng(0)).times.tolist()
    [0.0, 0.5, 1.0, 1.5]
    """

    def times(self, duration: float, rng: np.random.Generator) -> np.ndarray:
        if self.rate == 0:
            return np.empty(0)
        return np.arange(0.0, duration, 1.0 / self.rate)


@dataclass
class Piecewise(Workload):
    """Poisson with a rate that changes at given times: ``[(t0, rate0), (t1, rate1), ...]``.

    Bursts are steps up and back down: ``Piecewise([(0, 100), (60, 2000), (70, 100)])``.

    >>> w = Piecewise([(0, 100), (60, 2000), (70, 100)])
    >>> w.rate_at(65), w.expected(120)
    (2000.0, 31000.0)
    >>> Piecewise([(5, 100)])
    Traceback (most recent call last):
    ...
    cdpkit.errors.ConfigError: workload schedule=[(5, 100)] is not allowed; allowed: [(0, rate), (t1, rate), ...] with increasing times starting at 0
    """

    schedule: list = field(default_factory=lambda: [(0.0, 1.0)])

    def __post_init__(self) -> None:
        super().__post_init__()
        allowed = "[(0, rate), (t1, rate), ...] with increasing times starting at 0"
        if not isinstance(self.schedule, (list, tuple)) or not all(
                isinstance(step, (list, tuple)) and len(step) == 2 and _finite(step[0])
                for step in self.schedule):
            raise ConfigError(f"workload schedule={self.schedule!r} is not allowed; allowed: {allowed}")
        steps = [(float(t), _check_rate(r, f"schedule rate at t={t}")) for t, r in self.schedule]
        if not steps or steps[0][0] != 0 or any(b[0] <= a[0] for a, b in zip(steps, steps[1:])):
            raise ConfigError(f"workload schedule={self.schedule!r} is not allowed; allowed: {allowed}")
        self.schedule = steps

    def expected(self, duration: float) -> float:
        bounds = [t for t, _ in self.schedule[1:]] + [math.inf]
        return sum(rate * max(0.0, min(end, duration) - start)
                   for (start, rate), end in zip(self.schedule, bounds))

    def rate_at(self, t: float) -> float:
        rate = self.schedule[0][1]
        for start, r in self.schedule:
            if t >= start:
                rate = r
        return rate

    def times(self, duration: float, rng: np.random.Generator) -> np.ndarray:
        parts = []
        bounds = [t for t, _ in self.schedule] + [math.inf]
        for (start, rate), end in zip(self.schedule, bounds[1:]):
            end = min(end, duration)
            if start >= duration:
                break
            n = rng.poisson(rate * (end - start))
            parts.append(np.sort(rng.uniform(start, end, n)))
        return np.concatenate(parts) if parts else np.empty(0)


@dataclass
class Diurnal(Workload):
    """Poisson with rate ``mean * (1 + amplitude * sin(2 pi t / period))`` (thinning).

    >>> Diurnal(mean=100, amplitude=0.5, period=3600).rate_at(900)
    150.0
    """

    mean: float = 1.0
    amplitude: float = 0.5
    period: float = 86_400.0

    def __post_init__(self) -> None:
        super().__post_init__()
        self.mean = _check_rate(self.mean, "mean")
        if not _finite(self.amplitude) or not 0 <= self.amplitude <= 1:
            raise ConfigError(f"workload amplitude={self.amplitude!r} is not allowed; allowed: 0 to 1")
        if not _finite(self.period) or not self.period > 0:
            raise ConfigError(f"workload period={self.period!r} is not allowed; allowed: > 0 seconds")

    def expected(self, duration: float) -> float:
        return self.mean * (1 + self.amplitude) * duration   # candidates drawn at the peak rate

    def rate_at(self, t):
        """The rate (per second) at time(s) ``t``."""
        rate = self.mean * (1 + self.amplitude * np.sin(2 * np.pi * np.asarray(t) / self.period))
        return float(rate) if np.ndim(rate) == 0 else rate

    def times(self, duration: float, rng: np.random.Generator) -> np.ndarray:
        peak = self.mean * (1 + self.amplitude)
        if peak == 0:
            return np.empty(0)
        candidates = np.sort(rng.uniform(0.0, duration, rng.poisson(peak * duration)))
        keep = rng.uniform(0.0, peak, len(candidates)) < self.rate_at(candidates)
        return candidates[keep]


@dataclass
class Replay(Workload):
    """Replay recorded arrivals: a DataFrame or CSV with a ``time`` column (seconds) and
    optional ``type`` and ``size`` columns (bytes).

    >>> import pandas as pd
    >>> Replay(trace=pd.DataFrame({"time": [0.5, 0.1], "type": ["a", "b"]})).expected(1)
    2.0
    >>> Replay(trace=pd.DataFrame({"time": [0.5, float("nan")]}))
    Traceback (most recent call last):
    ...
    cdpkit.errors.ConfigError: workload trace: time must be a finite number of seconds >= 0 in every row; rows [1] are not (nan)
    """

    trace: object = None

    def __post_init__(self) -> None:
        frame = self.trace
        if isinstance(frame, (str, Path)):
            frame = pd.read_csv(frame)
        if not isinstance(frame, pd.DataFrame) or "time" not in frame.columns:
            raise ConfigError("workload trace is not allowed; allowed: a DataFrame or CSV path with a "
                              "'time' column (seconds), optional 'type' and 'size'")
        for column, what in (("time", "a finite number of seconds >= 0"), ("size", "a whole number of bytes >= 1")):
            if column not in frame.columns:
                continue
            values = pd.to_numeric(frame[column], errors="coerce")
            bad = ~(np.isfinite(values) & (values >= (0 if column == "time" else 1)))
            if column == "size":
                bad |= values != np.round(values)
            if bad.any():      # a row that cannot be replayed is an error, never dropped
                rows = list(frame.index[bad][:5])
                raise ConfigError(f"workload trace: {column} must be {what} in every row; rows {rows} "
                                  f"are not ({', '.join(str(v) for v in frame.loc[bad, column][:5])})")
        frame = frame.sort_values("time", kind="stable").reset_index(drop=True)
        self.frame = frame
        if "type" in frame.columns:
            self.types = {str(t): 1.0 for t in pd.unique(frame["type"])}
        super().__post_init__()

    def expected(self, duration: float) -> float:
        return float((self.frame["time"] < duration).sum())

    def arrivals(self, duration: float, rng: np.random.Generator) -> Arrivals:
        frame = self.frame[self.frame["time"] < duration]
        names = list(self.types)
        codes = (frame["type"].astype(str).map({n: i for i, n in enumerate(names)}).to_numpy()
                 if "type" in frame.columns else np.zeros(len(frame), dtype=np.int64))
        sizes = (frame["size"].to_numpy(dtype=np.int64) if "size" in frame.columns
                 else np.maximum(np.rint(self.size.sample(rng, len(frame))), 1).astype(np.int64))
        return Arrivals(frame["time"].to_numpy(dtype=float), codes, sizes, names)
