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
    """A non-negative random quantity (seconds or bytes). Samples are clipped at 0.

    Build one with :meth:`parse` from the plain form a pipeline or workload takes: a number
    (a constant) or a one-key dict, ``{"const": v}``, ``{"exp": mean}``,
    ``{"uniform": [low, high]}``, ``{"normal": [mean, sd]}`` or
    ``{"lognormal": [mean, sigma]}`` (parameterised by its mean, not ``mu``).

    Parameters
    ----------
    kind : {"const", "exp", "uniform", "normal", "lognormal"}
        The family.
    a : float
        The constant, the mean, or ``low`` for ``uniform``.
    b : float
        ``high`` (uniform), ``sd`` (normal) or ``sigma`` (lognormal); unused otherwise.

    Examples
    --------
    >>> import numpy as np
    >>> d = Dist.parse({"exp": 0.01})
    >>> d
    Dist(kind='exp', a=0.01, b=0.0)
    >>> bool(abs(d.sample(np.random.default_rng(0), 100_000).mean() - 0.01) < 0.0005)
    True
    """

    kind: str
    a: float
    b: float = 0.0

    @classmethod
    def parse(cls, value: object, field: str = "distribution") -> Dist:
        """A :class:`Dist` from its plain form, checked.

        Parameters
        ----------
        value : float, dict or Dist
            A finite number >= 0 (a constant) or one of ``{"const": v}``, ``{"exp": mean}``,
            ``{"uniform": [low, high]}``, ``{"normal": [mean, sd]}``,
            ``{"lognormal": [mean, sigma]}`` (all numbers finite and >= 0). A Dist is returned
            as it is.
        field : str
            What the value is, for the error message (e.g. ``"consumer of 'jobs': service"``).

        Returns
        -------
        Dist

        Raises
        ------
        ConfigError
            For any other value, or a ``uniform`` with ``high < low``.

        Examples
        --------
        >>> Dist.parse(2)
        Dist(kind='const', a=2.0, b=0.0)
        >>> Dist.parse({"uniform": [3, 1]}, "workload size")
        Traceback (most recent call last):
        ...
        cdpkit.errors.ConfigError: workload size: uniform [3, 1] has high < low
        """
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
        """The distribution's mean, before clipping at 0 (``normal`` with a large ``sd`` samples higher).

        Examples
        --------
        >>> Dist.parse({"uniform": [1, 3]}).mean, Dist.parse({"lognormal": [0.2, 1.0]}).mean
        (2.0, 0.2)
        """
        if self.kind == "uniform":
            return (self.a + self.b) / 2
        return self.a  # const, exp, normal and lognormal are parameterised by their mean

    def sample(self, rng: np.random.Generator, n: int | None = None):
        """Draw samples from ``rng``, clipped at 0.

        Parameters
        ----------
        rng : numpy.random.Generator
            The source of randomness (seeded: the same seed, the same samples).
        n : int, optional
            How many; default one.

        Returns
        -------
        float or numpy.ndarray
            One sample (``n=None``) or an array of ``n`` samples.

        Examples
        --------
        >>> import numpy as np
        >>> Dist.parse({"uniform": [1, 2]}).sample(np.random.default_rng(1), 3).round(3).tolist()
        [1.512, 1.95, 1.144]
        >>> Dist.parse(0.5).sample(np.random.default_rng(1))
        0.5
        """
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
        """A short human form, as plots and tables show it.

        Examples
        --------
        >>> Dist.parse(0.005).describe(), Dist.parse({"exp": 2}).describe()
        ('0.005', 'exp(mean=2)')
        """
        if self.kind == "const":
            return f"{self.a:g}"
        if self.kind == "exp":
            return f"exp(mean={self.a:g})"
        if self.kind == "uniform":
            return f"uniform({self.a:g}, {self.b:g})"
        second = "sd" if self.kind == "normal" else "sigma"
        return f"{self.kind}(mean={self.a:g}, {second}={self.b:g})"

    def to_data(self) -> object:
        """The plain form :meth:`parse` reads (for YAML/JSON).

        Examples
        --------
        >>> Dist.parse({"normal": [1, 0.1]}).to_data()
        {'normal': [1.0, 0.1]}
        >>> Dist.parse(Dist.parse(3).to_data()) == Dist.parse(3)
        True
        """
        if self.kind == "const":
            return self.a
        if self.kind == "exp":
            return {"exp": self.a}
        return {self.kind: [self.a, self.b]}


def _nonneg(x: object) -> bool:
    return isinstance(x, Real) and not isinstance(x, bool) and x >= 0 and math.isfinite(x)
