"""Simulation against queueing theory (Ciw-style). Fixed seeds, utilisation <= 0.8, runs
long enough that each stated tolerance is about three standard errors of the estimate
(measured over seeds 1-6: M/M/3 Wq spread +-4 % at 100k customers, so 200k are used).

The mapping to Cloudflare terms: one queue, ``max_concurrency`` = servers c (production
semantics without autoscaling, ``cdp.PRODUCTION_ALL_SLOTS``: up to c batches at once), ``max_batch_size`` = 1 for single service or K for
bulk service, ``max_batch_timeout = 0`` so whatever waits is taken when a consumer frees.
Wq = time from send to first delivery (the wait before service starts).
"""

import math

import pytest

import cdpkit as cdp


def one_queue(c=1, K=1, T=0.0, service=1.0, failure=0.0, retries=3, dlq=False):
    p = cdp.Pipeline("theory")
    p.add_source("arrivals", queue="jobs")
    settings = dict(max_batch_size=K, max_batch_timeout=T, max_concurrency=c, max_retries=retries)
    if dlq:
        settings["dead_letter_queue"] = "jobs-dlq"
        p.add_queue("jobs-dlq")
        p.add_consumer("jobs-dlq")
    p.add_queue("jobs", **settings)
    p.add_consumer("jobs", service={"base": service}, failure=failure)
    return p


def erlang_c_wq(c: int, lam: float, mu: float) -> float:
    """Mean wait in queue for M/M/c (Erlang C)."""
    a = lam / mu
    rho = a / c
    tail = a**c / math.factorial(c) / (1 - rho)
    p_wait = tail / (sum(a**k / math.factorial(k) for k in range(c)) + tail)
    return p_wait / (c * mu - lam)


def test_erlang_c_reference_values():
    assert erlang_c_wq(1, 0.5, 1) == pytest.approx(1.0)
    assert erlang_c_wq(3, 2, 1) == pytest.approx(0.4444, abs=1e-4)
    assert erlang_c_wq(10, 8, 1) == pytest.approx(0.2046, abs=1e-4)


@pytest.mark.parametrize("c, lam, duration, expected, tolerance", [
    (1, 0.5, 200_000, 1.0, 0.05),       # M/M/1
    (3, 2.0, 100_000, 0.4444, 0.06),    # M/M/3
    (10, 8.0, 20_000, 0.2046, 0.06),    # M/M/10
])
def test_mmc_wait_in_queue(c, lam, duration, expected, tolerance):
    # M/M/c: c servers at all times, i.e. every slot from the first second (no autoscaling)
    res = cdp.simulate(one_queue(c=c, service={"exp": 1.0}), cdp.Poisson(rate=lam), duration, seed=1,
                       semantics=cdp.PRODUCTION_ALL_SLOTS)
    s = res.summary()
    assert s["wait_mean"] == pytest.approx(expected, rel=tolerance)
    assert s["mean_batch"] == 1.0
    assert s["throughput"] == pytest.approx(lam, rel=0.02)


def test_md1_wait_in_queue():
    # Pollaczek-Khinchine with deterministic service: Wq = rho / (2 mu (1 - rho)) = 2.0
    res = cdp.simulate(one_queue(service=1.0), cdp.Poisson(rate=0.8), 150_000, seed=1)
    assert res.summary()["wait_mean"] == pytest.approx(2.0, rel=0.05)


def test_bulk_service_up_to_k():
    # M/M^[K]/1 with lambda=4, mu=1, K=5 (rho = 0.8): Wq ~ 3.095, mean batch ~ 4.074
    res = cdp.simulate(one_queue(K=5, service={"exp": 1.0}), cdp.Poisson(rate=4), 80_000, seed=1)
    s = res.summary()
    assert s["wait_mean"] == pytest.approx(3.095, rel=0.06)
    assert s["mean_batch"] == pytest.approx(4.074, rel=0.02)


def test_batch_fill_with_timeout():
    # the timer starts at the first message; T seconds later the batch holds 1 + Poisson(lambda T)
    res = cdp.simulate(one_queue(c=10, K=100, T=5, service=0.0), cdp.Poisson(rate=2), 20_000, seed=1)
    assert res.summary()["mean_batch"] == pytest.approx(11.0, rel=0.03)


@pytest.mark.parametrize("p, retries", [(0.5, 2), (0.3, 1), (0.2, 0)])
def test_dead_letter_fraction_is_p_to_the_attempts(p, retries):
    res = cdp.simulate(one_queue(c=10, service=0.0, failure=p, retries=retries, dlq=True),
                       cdp.Poisson(rate=10), 2_000, seed=1)
    s = res.summary()
    expected = p ** (retries + 1)
    n = s["messages"]
    assert abs(s["dead_lettered"] / n - expected) <= 4 * math.sqrt(expected * (1 - expected) / n)
    assert s["acked"] + s["dead_lettered"] == n
