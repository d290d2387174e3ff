"""Service-time and size distributions, written the way people say them.

A distribution is given as a number (a constant) or a one-key dict:

>>> Dist.parse(0.005).mean
0.005
>>> Dist.parse({"exp": 2.0}).mean          # exponential with mean 2 s
2.0
>>> Dist.parse({"uniform": [1, 3]}).mean
2.0
>>> Dist.parse({"lognormal": [0.01, 0.5]}).describe()
'lognormal(mean=0.01, sigma=0.5)'
>>> Dist.parse({"gamma": 1})
Traceback (most recent call last):
...
cdpkit.errors.ConfigError: distribution {'gamma': 1} is not allowed; allowed: a finite number >= 0, or one of {'const': v}, {'exp': mean}, {'uniform': [low, high]}, {'normal': [mean, sd]}, {'lognormal': [mean, sigma]}
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Real

import numpy as np

from ..errors import ConfigError

KINDS = ("const", "exp", "uniform", "normal", "lognormal")
ALLOWED = ("a finite number >= 0, or one of {'const': v}, {'exp': mean}, {'uniform': [low, high]}, "
           "{'normal': [mean, sd]}, {'lognormal': [mean, sigma]}")


@dataclass(frozen=True)
class Dist:
    """A non-negative random quantity (seconds or bytes). Samples are clipped at 0."""

    kind: str
    a: float
    b: float = 0.0

    @classmethod
    def parse(cls, value: object, field: str = "distribution") -> Dist:
        if isinstance(value, Dist):
            return value
        if _nonneg(value):
            return cls("const", float(value))
        if isinstance(value, dict) and len(value) == 1:
            (kind, arg), = value.items()
            try:
                if kind in ("const", "exp") and _nonneg(arg):
                    return cls(kind, float(arg))
                if kind in ("uniform", "normal", "lognormal") and len(arg) == 2 and all(map(_nonneg, arg)):
                    low, high = float(arg[0]), float(arg[1])
                    if kind == "uniform" and high < low:
                        raise ConfigError(f"{field}: uniform [{low:g}, {high:g}] has high < low")
                    return cls(kind, low, high)
            except TypeError:
                pass
        raise ConfigError(f"{field} {value!r} is not allowed; allowed: {ALLOWED}")

    @property
    def mean(self) -> float:
        if self.kind == "uniform":
            return (self.a + self.b) / 2
        return self.a  # const, exp, normal and lognormal are parameterised by their mean

    def sample(self, rng: np.random.Generator, n: int | None = None):
        """One sample (n=None) or an array of n samples."""
        kind, a, b = self.kind, self.a, self.b
        if kind == "const":
            return a if n is None else np.full(n, a)
        if kind == "exp":
            x = rng.exponential(a, n) if a > 0 else (0.0 if n is None else np.zeros(n))
        elif kind == "uniform":
            x = rng.uniform(a, b, n)
        elif kind == "normal":
            x = rng.normal(a, b, n)
        else:  # lognormal with the given mean: mu = ln(mean) - sigma^2 / 2
            x = rng.lognormal(math.log(a) - b * b / 2, b, n) if a > 0 else 0.0
        return max(float(x), 0.0) if n is None else np.maximum(x, 0.0)

    def sampler(self, rng: np.random.Generator, chunk: int = 4096):
        """A function returning one sample per call, drawn from ``rng`` ``chunk`` at a time
        (the hot path of a simulation calls it once per message or call).

        >>> draw = Dist.parse({"uniform": [1, 2]}).sampler(np.random.default_rng(1))
        >>> all(1 <= draw() <= 2 for _ in range(10_000))
        True
        """
        if self.kind == "const":
            a = self.a
            return lambda: a
        pool: list[float] = []

        def draw() -> float:
            if not pool:
                pool.extend(self.sample(rng, chunk)[::-1].tolist())
            return pool.pop()

        return draw

    def describe(self) -> str:
        if self.kind == "const":
            return f"{self.a:g}"
        if self.kind == "exp":
            return f"exp(mean={self.a:g})"
        if self.kind == "uniform":
            return f"uniform({self.a:g}, {self.b:g})"
        second = "sd" if self.kind == "normal" else "sigma"
        return f"{self.kind}(mean={self.a:g}, {second}={self.b:g})"

    def to_data(self) -> object:
        """The plain form ``parse`` reads (for YAML/JSON)."""
        if self.kind == "const":
            return self.a
        if self.kind == "exp":
            return {"exp": self.a}
        return {self.kind: [self.a, self.b]}


def _nonneg(x: object) -> bool:
    return isinstance(x, Real) and not isinstance(x, bool) and x >= 0 and math.isfinite(x)
