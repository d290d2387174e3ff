"""Workloads: when messages arrive, of which type, how big. Generated vectorised with numpy.

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
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import ConfigError
from .dists import Dist


@dataclass
class Arrivals:
    """Arrival times (sorted, seconds), message type codes and sizes in bytes."""

    times: np.ndarray
    types: np.ndarray
    sizes: np.ndarray
    type_names: list[str]

    def __len__(self) -> int:
        return len(self.times)


@dataclass(kw_only=True)
class Workload:
    """Base class. ``types`` maps message type -> weight; ``size`` is a byte distribution."""

    types: dict[str, float] = field(default_factory=lambda: {"message": 1.0})
    size: object = 1_000

    def __post_init__(self) -> None:
        if not self.types or any((not isinstance(w, (int, float))) or w < 0 for w in self.types.values()) \
                or sum(self.types.values()) <= 0:
            raise ConfigError(f"workload types={self.types!r} is not allowed; allowed: a dict of "
                              "message type -> non-negative weight, with a positive total")
        self.size = Dist.parse(self.size, "workload size")

    def times(self, duration: float, rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError

    def arrivals(self, duration: float, rng: np.random.Generator) -> Arrivals:
        times = self.times(duration, rng)
        names = list(self.types)
        weights = np.array([self.types[n] for n in names], dtype=float)
        codes = (rng.choice(len(names), size=len(times), p=weights / weights.sum())
                 if len(names) > 1 else np.zeros(len(times), dtype=np.int64))
        sizes = np.maximum(np.rint(self.size.sample(rng, len(times))), 1).astype(np.int64)
        return Arrivals(times, codes, sizes, names)


def _check_rate(rate: object, field: str = "rate") -> float:
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not (rate >= 0) or math.isinf(rate):
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


@dataclass
class Poisson(_Rated):
    """Poisson arrivals at ``rate`` messages per second."""

    def times(self, duration: float, rng: np.random.Generator) -> np.ndarray:
        if self.rate == 0:
            return np.empty(0)
        n = rng.poisson(self.rate * duration)
        return np.sort(rng.uniform(0.0, duration, n))


@dataclass
class Constant(_Rated):
    """Evenly spaced arrivals at ``rate`` per second (deterministic)."""

    def times(self, duration: float, rng: np.random.Generator) -> np.ndarray:
        if self.rate == 0:
            return np.empty(0)
        return np.arange(0.0, duration, 1.0 / self.rate)


@dataclass
class Piecewise(Workload):
    """Poisson with a rate that changes at given times: ``[(t0, rate0), (t1, rate1), ...]``.

    Bursts are steps up and back down: ``Piecewise([(0, 100), (60, 2000), (70, 100)])``.
    """

    schedule: list = field(default_factory=lambda: [(0.0, 1.0)])

    def __post_init__(self) -> None:
        super().__post_init__()
        steps = [(float(t), _check_rate(r, f"schedule rate at t={t}")) for t, r in self.schedule]
        if not steps or steps[0][0] != 0 or any(b[0] <= a[0] for a, b in zip(steps, steps[1:])):
            raise ConfigError(f"workload schedule={self.schedule!r} is not allowed; allowed: "
                              "[(0, rate), (t1, rate), ...] with increasing times starting at 0")
        self.schedule = steps

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
    """Poisson with rate ``mean * (1 + amplitude * sin(2 pi t / period))`` (thinning)."""

    mean: float = 1.0
    amplitude: float = 0.5
    period: float = 86_400.0

    def __post_init__(self) -> None:
        super().__post_init__()
        self.mean = _check_rate(self.mean, "mean")
        if not 0 <= self.amplitude <= 1:
            raise ConfigError(f"workload amplitude={self.amplitude!r} is not allowed; allowed: 0 to 1")
        if not self.period > 0:
            raise ConfigError(f"workload period={self.period!r} is not allowed; allowed: > 0 seconds")

    def rate_at(self, t):
        return self.mean * (1 + self.amplitude * np.sin(2 * np.pi * np.asarray(t) / self.period))

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
    optional ``type`` and ``size`` columns."""

    trace: object = None

    def __post_init__(self) -> None:
        frame = self.trace
        if isinstance(frame, (str, Path)):
            frame = pd.read_csv(frame)
        if not isinstance(frame, pd.DataFrame) or "time" not in frame.columns:
            raise ConfigError("workload trace is not allowed; allowed: a DataFrame or CSV path with a "
                              "'time' column (seconds), optional 'type' and 'size'")
        frame = frame.sort_values("time", kind="stable").reset_index(drop=True)
        if (frame["time"] < 0).any():
            raise ConfigError("workload trace has negative times; allowed: seconds >= 0")
        self.frame = frame
        if "type" in frame.columns:
            self.types = {str(t): 1.0 for t in pd.unique(frame["type"])}
        super().__post_init__()

    def arrivals(self, duration: float, rng: np.random.Generator) -> Arrivals:
        frame = self.frame[self.frame["time"] < duration]
        names = list(self.types)
        codes = (frame["type"].astype(str).map({n: i for i, n in enumerate(names)}).to_numpy()
                 if "type" in frame.columns else np.zeros(len(frame), dtype=np.int64))
        sizes = (frame["size"].to_numpy(dtype=np.int64) if "size" in frame.columns
                 else np.maximum(np.rint(self.size.sample(rng, len(frame))), 1).astype(np.int64))
        return Arrivals(frame["time"].to_numpy(dtype=float), codes, sizes, names)
