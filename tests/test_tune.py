"""cdp.tune: the answer equals the exhaustive grid's (every configuration, every seed, full
runs) with well under half of its simulated messages; the short runs it prunes on are the
full run's own history; bad arguments are ConfigErrors naming the field; an SLO nothing
meets is an answer, not an exception; cdp.choose and the CLI apply the answer."""

import numpy as np
import pandas as pd
import pytest

import cdpkit as cdp
from cdpkit.cli import main
from cdpkit.demo import gateway_workload
from cdpkit.sim.tune import FIGURES, SHARES, _Prefix

GATEWAY = "examples/cdp-gateway.yaml"


def jobs() -> cdp.Pipeline:
    p = cdp.Pipeline("jobs")
    p.add_source("http", queue="jobs")
    p.add_queue("jobs", max_batch_size=10, max_batch_timeout=1, max_concurrency=1)
    p.add_consumer("jobs", service={"base": 0.05, "per_message": 0.002})
    return p


def orders() -> cdp.Pipeline:
    """A consumer calling a slow actor, failing messages, a DLQ."""
    p = cdp.Pipeline("orders")
    p.add_source("http", queue="orders")
    p.add_queue("orders", max_batch_size=10, max_batch_timeout=2, max_retries=1, dead_letter_queue="orders-dlq",
                max_concurrency=2)
    p.add_queue("orders-dlq")
    p.add_consumer("orders", service={"base": 0.01}, failure=0.02, retry={"policy": "fixed", "base": 2},
                   calls="Fulfil")
    p.add_consumer("orders-dlq")
    p.add_actor("Fulfil", service={"exp": 0.02}, instances=20)
    return p


CASES = {
    "jobs": (jobs, cdp.Poisson(rate=40), {"p99_latency": 1.5},
             {"jobs.max_batch_size": [1, 2, 5, 10, 20, 50, 100], "jobs.max_batch_timeout": [0.5, 1, 5]}, 30, None),
    "orders": (orders, cdp.Poisson(rate=60), {"p95_latency": 1.0, "dead_lettered": 0.001},
               {"orders.max_batch_size": [1, 5, 20, 50], "orders.consumer.parallel": [False, True],
                "orders.max_retries": [1, 3]}, 30, None),
    "gateway": (lambda: cdp.Pipeline.from_yaml(GATEWAY), gateway_workload(40),
                {"p99_latency": 15.0, "dead_lettered": 0.002},
                {"cdp-command-queue.max_batch_size": [1, 10, 50], "cdp-command-queue.max_batch_timeout": [1, 30],
                 "cdp-task-queue.max_retries": [0, 3]}, 60,
                cdp.Faults([{"kind": "errors", "node": "GHLContactActor", "p": 1.0, "start": 10, "length": 2}])),
}


@pytest.mark.parametrize("case", list(CASES))
def test_tune_answers_as_the_exhaustive_grid_with_far_fewer_messages(case):
    build, load, slo, knobs, duration, faults = CASES[case]
    kw = dict(slo=slo, knobs=knobs, duration=duration, seeds=5, faults=faults, progress=False)
    fast, grid = cdp.tune(build(), load, **kw), cdp.tune(build(), load, method="grid", **kw)
    assert grid.best is not None
    assert fast.best.settings == grid.best.settings
    assert fast.best.figures == grid.best.figures
    passed = set(grid.table.index[grid.table["status"].isin(["best", "passed"])])
    assert 1 < len(passed) < len(grid.table)          # a real question: some pass, some do not
    # What pruning saves depends on how many configurations miss early (cdpkit.sim.tune):
    # about a quarter to a third of the grid's messages here. (The gateway's busiest seed
    # dead-letters 5 messages by t=15 s with max_retries=0, against a short-run bound of
    # 0.2 % of 2,505 = 5.01, so those six are dropped on their first full seed instead.)
    assert fast.runs < grid.runs and fast.messages <= 0.4 * grid.messages, (fast.messages, grid.messages)
    # nothing the fast search rejected for a bound passes in the grid
    rejected = set(fast.table.index[fast.table["status"] == "rejected"])
    assert not rejected & passed


def test_a_short_run_is_the_full_runs_history():
    """What rung 0 prunes on: the short run is the full run up to its end, row for row."""
    p = cdp.Pipeline.from_yaml(GATEWAY)
    faults = cdp.Faults([{"kind": "errors", "node": "GHLContactActor", "p": 1.0, "start": 5, "length": 10}])
    full = cdp.simulate(p, gateway_workload(40), 40, seed=3, faults=faults)
    short = cdp.simulate(p, _Prefix(gateway_workload(40), 40), 15, seed=3, faults=faults, drain=False)
    cols = ["queue", "origin", "sent", "first_delivered", "deliveries", "attempts", "outcome", "finished"]

    def done(res):
        m = res.messages
        m = m[m["finished"] <= 15][cols].astype({"queue": str, "outcome": str})
        return m.sort_values(cols).reset_index(drop=True)

    a, b = done(short), done(full)
    assert len(a) > 500
    pd.testing.assert_frame_equal(a, b)


def test_an_slo_nothing_meets_gets_the_closest_configurations():
    t = cdp.tune(jobs(), cdp.Poisson(rate=40), slo={"p99_latency": 0.01},
                 knobs={"jobs.max_batch_size": [1, 10, 50]}, duration=20, seeds=2, progress=False)
    assert t.best is None
    assert "no configuration meets the SLO; closest jobs.max_batch_size=" in repr(t)
    close = t.closest
    assert len(close) == 3 and close["reason"].str.contains(r"p99_latency .* > 10 ms|p99_latency > 0.01",
                                                             regex=True).all()
    with pytest.raises(cdp.ConfigError, match=r"choose: .*no configuration meets the SLO.*closest"):
        cdp.choose(jobs(), t)


def test_errors_name_the_field_and_the_nearest_figure():
    p = jobs()
    load = cdp.Poisson(rate=5)
    with pytest.raises(cdp.ConfigError, match=r"slo figure 'p99_latncy' is not allowed \(did you mean 'p99_latency'\?\)"):
        cdp.tune(p, load, slo={"p99_latncy": 1}, knobs={"jobs.max_batch_size": [1]})
    with pytest.raises(cdp.ConfigError, match=r"slo figure 'incident.time_to_drain' is not allowed without faults="):
        cdp.tune(p, load, slo={"incident.time_to_drain": 1}, knobs={"jobs.max_batch_size": [1]})
    with pytest.raises(cdp.ConfigError, match=r"slo\['p99_latency'\]='fast' is not allowed; allowed: a number"):
        cdp.tune(p, load, slo={"p99_latency": "fast"}, knobs={"jobs.max_batch_size": [1]})
    with pytest.raises(cdp.ConfigError, match=r"setting 'jobs.max_batch_size': .*max_batch_size=500 is not allowed"):
        cdp.tune(p, load, slo={"p99_latency": 1}, knobs={"jobs.max_batch_size": [10, 500]})
    with pytest.raises(cdp.ConfigError, match=r"knobs\['jobs.max_batch_size'\]=\(50, 5\) is not allowed; "
                                              r"allowed: \(lo, hi\) with lo <= hi"):
        cdp.tune(p, load, slo={"p99_latency": 1}, knobs={"jobs.max_batch_size": (50, 5)})
    with pytest.raises(cdp.ConfigError, match=r"seeds=0 is not allowed"):
        cdp.tune(p, load, slo={"p99_latency": 1}, knobs={"jobs.max_batch_size": [1]}, seeds=0)
    with pytest.raises(cdp.ConfigError, match=r"objective='cost' is not allowed"):
        cdp.tune(p, load, slo={"p99_latency": 1}, knobs={"jobs.max_batch_size": [1]}, objective="cost")


def test_figures_are_what_summary_reports():
    res = cdp.simulate(jobs(), cdp.Poisson(rate=5), 5)
    assert [f for f in FIGURES if "." not in f and f not in ("run_cost", "monthly_cost")] == list(res.summary().index)
    assert set(SHARES) <= set(res.summary().index)


def test_choose_applies_the_answer_with_provenance_that_the_export_writes():
    t = cdp.tune(jobs(), cdp.Poisson(rate=40), slo={"p99_latency": 1.5},
                 knobs={"jobs.max_batch_size": [1, 5, 50], "jobs.max_concurrency": (1, 4)}, duration=20, seeds=2,
                 progress=False)
    assert list(t.table["jobs.max_concurrency"].unique()) == [1, 2, 3, 4]     # (lo, hi): 1..4
    chosen = cdp.choose(jobs(), t)
    for key, value in t.best.settings.items():
        node, _, field = key.rpartition(".")
        assert chosen.spec(node)[field] == value
        assert chosen.provenance[key].startswith("tuned ")
        assert "p99_latency" in chosen.provenance[key] and "over 2 seeds" in chosen.provenance[key]
    toml = cdp.export.wrangler_toml(chosen)
    assert f"# {chosen.provenance['jobs.max_batch_size']}" in toml
    assert t.best.figures["p99_latency"] <= 1.5
    front = t.front
    assert front["monthly_cost"].is_monotonic_increasing and front["p99_latency"].is_monotonic_decreasing
    assert "jobs.max_batch_size=" in repr(t) and "over 2 seeds" in repr(t)


def test_the_answer_does_not_depend_on_the_executor():
    from concurrent.futures import ThreadPoolExecutor

    kw = dict(slo={"p99_latency": 1.5}, knobs={"jobs.max_batch_size": [1, 5, 20, 50]}, duration=20, seeds=2,
              progress=False)
    alone = cdp.tune(jobs(), cdp.Poisson(rate=40), **kw)
    with ThreadPoolExecutor(2) as pool:
        pooled = cdp.tune(jobs(), cdp.Poisson(rate=40), executor=pool, **kw)
    assert pooled.best == alone.best


def test_plot_draws_the_front():
    import matplotlib
    matplotlib.use("Agg")
    t = cdp.tune(jobs(), cdp.Poisson(rate=40), slo={"p99_latency": 1.5},
                 knobs={"jobs.max_batch_size": [5, 20, 50]}, duration=20, seeds=2, progress=False)
    ax = t.plot()
    assert ax.get_xlabel() == "p99_latency (worst seed)"
    assert len(ax.lines) >= 2        # the front and the bound


def test_cli_tune_writes_the_chosen_configuration(tmp_path, capsys):
    model = tmp_path / "jobs.yaml"
    model.write_text(jobs().to_yaml())
    code = main(["tune", str(model), "--slo", "p99_latency=1.5", "--knob", "jobs.max_batch_size=1,5,50",
                 "--knob", "jobs.max_concurrency=1..2", "--rate", "40", "--duration", "20", "--seeds", "2",
                 "--out", str(tmp_path / "deploy")])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "best:" in out and "jobs.max_batch_size" in out
    assert "# tuned " in (tmp_path / "deploy" / "wrangler.toml").read_text()
    code = main(["tune", str(model), "--slo", "p99=1", "--knob", "jobs.max_batch_size=1,5"])
    assert code == 2
    assert "slo figure 'p99' is not allowed" in capsys.readouterr().err


def test_seed_answers_are_deterministic():
    kw = dict(slo={"p99_latency": 1.5}, knobs={"jobs.max_batch_size": [5, 50]}, duration=20, seeds=[3, 7],
              progress=False)
    a, b = cdp.tune(jobs(), cdp.Poisson(rate=40), **kw), cdp.tune(jobs(), cdp.Poisson(rate=40), **kw)
    assert a.table.drop(columns="reason").fillna(-1).equals(b.table.drop(columns="reason").fillna(-1))
    assert np.isfinite(a.best.figures["monthly_cost"])
