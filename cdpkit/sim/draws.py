"""Counter-based random draws for spec behaviour.

Every random number a spec pipeline draws is a function of ``(seed, node, purpose, n)``:
the ``n``-th draw of one purpose (a consumer's batch base times, its per-message times,
its failure trials; an actor's key picks, its service times; a store's latencies) at one
node. Nothing depends on how draws of different nodes interleave, or on how many a caller
takes at a time, so two engines that run each node's events in the same order draw the
same numbers, whatever they do between nodes (the compiled engine,
:mod:`cdpkit.sim.compiled`, repeats these formulas).

A draw's 64 random bits are SplitMix64 (:func:`cdpkit.runtime.ledger.splitmix64`) applied twice to the stream's key and the counter;
a uniform is their top 53 bits over 2**53. Distributions are inverse transforms of those
uniforms (Box-Muller, with a second stream, for ``normal`` and ``lognormal``).

>>> rng = CounterRNG.of(seed=1, node="jobs")
>>> a = rng.random(5)
>>> b = CounterRNG.of(seed=1, node="jobs")
>>> bool((b.random(2).tolist() + b.random(3).tolist()) == a.tolist())   # chunking does not matter
True
>>> rng.spawn(2)[0].random() != rng.spawn(2)[1].random()
True
"""

from __future__ import annotations

import hashlib
import math

import numpy as np

from ..runtime.ledger import splitmix64

MASK = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15
SECOND = 0xD1B54A32D192ED03      # the normal's second uniform comes from key ^ SECOND
TWO_PI = 2.0 * math.pi
_U53 = 2.0 ** -53


def node_key(seed: int, node: str) -> int:
    """The 64-bit key of ``node``'s stream for ``seed`` (stable across processes and
    independent of the pipeline's other nodes)."""
    digest = hashlib.blake2b(f"cdpkit\0{seed}\0{node}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def child_key(key: int, index: int) -> int:
    """The key of sub-stream ``index`` of stream ``key`` (one per purpose at a node)."""
    return splitmix64((splitmix64(key ^ 0x5EED) + (index + 1) * GOLDEN) & MASK)


def uniforms(key: int, start: int, n: int) -> np.ndarray:
    """Draws ``start .. start+n-1`` of stream ``key`` as uniforms in [0, 1)."""
    counters = np.arange(start, start + n, dtype=np.uint64)
    with np.errstate(over="ignore"):
        bits = splitmix64(splitmix64(counters ^ np.uint64(key)))
    return (bits >> np.uint64(11)).astype(np.float64) * _U53


def uniform_at(key: int, n: int) -> float:
    """Draw ``n`` of stream ``key`` alone (the same number as ``uniforms(key, n, 1)[0]``).

    >>> bool(uniform_at(7, 3) == uniforms(7, 3, 1)[0])
    True
    """
    return (splitmix64(splitmix64(n ^ key)) >> 11) * _U53


class CounterRNG:
    """A stream of counter-based draws with the few methods of ``numpy.random.Generator``
    that spec behaviour uses (``random``, ``exponential``, ``uniform``, ``normal``,
    ``lognormal``, ``spawn``): the ``n``-th number is a function of the key and ``n`` only.

    >>> rng = CounterRNG(12345)
    >>> x = rng.exponential(2.0, 100_000)
    >>> bool(abs(x.mean() - 2.0) < 0.03), rng.drawn
    (True, 100000)
    >>> bool(CounterRNG(12345).exponential(2.0) == x[0])
    True
    """

    __slots__ = ("key", "drawn")

    def __init__(self, key: int, drawn: int = 0) -> None:
        self.key = key & MASK
        self.drawn = drawn

    @classmethod
    def of(cls, seed: int, node: str) -> CounterRNG:
        """``node``'s stream for ``seed`` (:func:`node_key`)."""
        return cls(node_key(seed, node))

    def spawn(self, n: int) -> list[CounterRNG]:
        """``n`` independent sub-streams (by index, not by how much this one has drawn)."""
        return [CounterRNG(child_key(self.key, i)) for i in range(n)]

    def _take(self, n: int | None) -> np.ndarray:
        count = 1 if n is None else n
        u = uniforms(self.key, self.drawn, count)
        self.drawn += count
        return u

    @staticmethod
    def _out(x: np.ndarray, n: int | None):
        return float(x[0]) if n is None else x

    def random(self, n: int | None = None):
        return self._out(self._take(n), n)

    def exponential(self, scale: float = 1.0, n: int | None = None):
        return self._out(-scale * np.log1p(-self._take(n)), n)

    def uniform(self, low: float = 0.0, high: float = 1.0, n: int | None = None):
        return self._out(low + (high - low) * self._take(n), n)

    def _standard_normal(self, n: int | None) -> np.ndarray:
        second = uniforms(self.key ^ SECOND, self.drawn, 1 if n is None else n)
        first = self._take(n)
        return np.sqrt(-2.0 * np.log1p(-first)) * np.cos(TWO_PI * second)

    def normal(self, loc: float = 0.0, scale: float = 1.0, n: int | None = None):
        return self._out(loc + scale * self._standard_normal(n), n)

    def lognormal(self, mean: float = 0.0, sigma: float = 1.0, n: int | None = None):
        return self._out(np.exp(mean + sigma * self._standard_normal(n)), n)

    def __repr__(self) -> str:
        return f"<CounterRNG key={self.key:#018x} drawn={self.drawn}>"


def workload_rng(seed: int) -> np.random.Generator:
    """The generator a run's workload draws its arrivals from (up front, vectorised: they do
    not depend on event order). Its own seed sequence, independent of the pipeline's nodes."""
    return np.random.default_rng(np.random.SeedSequence([seed, 0x3A7]))
