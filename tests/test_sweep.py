"""Sweeps: same table whichever executor runs them; bad grids fail before anything runs."""

from concurrent.futures import ProcessPoolExecutor

import pandas as pd
import pytest

import cdpkit as cdp
from cdpkit import ConfigError

GRID = {"jobs.max_batch_size": [1, 10, 50], "jobs.consumer.failure": [0.0, 0.2]}


def pipeline():
    p = cdp.Pipeline("sweep")
    p.add_source("http", queue="jobs")
    p.add_queue("jobs", max_batch_size=10, max_batch_timeout=1, max_retries=2, max_concurrency=2)
    p.add_consumer("jobs", service={"base": 0.02, "per_message": 0.001})
    return p


WORKLOAD = cdp.Poisson(rate=100)


@pytest.fixture(scope="module")
def serial():
    return cdp.sweep(pipeline(), GRID, WORKLOAD, duration=20, seed=4, progress=False)


def test_one_row_per_configuration(serial):
    assert len(serial) == 6
    assert serial[["jobs.max_batch_size", "jobs.consumer.failure"]].values.tolist() == [
        [1, 0.0], [1, 0.2], [10, 0.0], [10, 0.2], [50, 0.0], [50, 0.2]]
    assert {"p99_latency", "throughput", "retries", "monthly_cost"} <= set(serial.columns)
    batched = serial.set_index(["jobs.max_batch_size", "jobs.consumer.failure"])
    assert batched.loc[(50, 0.0), "mean_batch"] > batched.loc[(10, 0.0), "mean_batch"] > 1
    assert batched.loc[(10, 0.2), "retries"] > 0 == batched.loc[(10, 0.0), "retries"]
    # fewer, larger batches cost fewer Worker invocations
    assert batched.loc[(50, 0.0), "monthly_cost"] < batched.loc[(1, 0.0), "monthly_cost"]


def test_process_pool_gives_the_same_table(serial):
    with ProcessPoolExecutor(max_workers=2) as pool:
        parallel = cdp.sweep(pipeline(), GRID, WORKLOAD, duration=20, seed=4, executor=pool,
                             progress=False)
    pd.testing.assert_frame_equal(parallel, serial)


def test_dask_executor_gives_the_same_table(serial):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        table = cdp.sweep(pipeline(), GRID, WORKLOAD, duration=20, seed=4,
                          executor=client.get_executor(), progress=False)
    pd.testing.assert_frame_equal(table, serial)


def test_progress_bar(capsys):
    cdp.sweep(pipeline(), {"jobs.max_batch_size": [5, 6]}, WORKLOAD, duration=2, progress=True)
    assert "sweep" in capsys.readouterr().err


@pytest.mark.parametrize("grid, message", [
    ({}, "sweep grid={} is not allowed"),
    ({"jobs.max_batch_size": []}, r"sweep grid\['jobs.max_batch_size'\]=\[\] is not allowed"),
    ({"jobs.max_batch_size": [5, 500]}, "max_batch_size=500 is not allowed"),
    ({"jbos.max_batch_size": [5]}, "setting 'jbos.max_batch_size': no node 'jbos'"),
    ({"jobs.batch": [5]}, "setting 'jobs.batch': unknown setting 'batch'"),
])
def test_bad_grids_fail_before_running(grid, message):
    with pytest.raises(ConfigError, match=message):
        cdp.sweep(pipeline(), grid, WORKLOAD, duration=1, progress=False)


def test_choose_applies_a_sweep_row_and_says_why_in_the_export():
    p = cdp.Pipeline("pick")
    p.add_source("http", queue="jobs")
    p.add_queue("jobs", max_batch_size=10, max_batch_timeout=1)
    p.add_consumer("jobs", service={"base": 0.01, "per_message": 0.001})
    table = cdp.sweep(p, {"jobs.max_batch_size": [5, 50], "jobs.max_batch_timeout": [1, 5]},
                      cdp.Poisson(rate=50), duration=20, progress=False)
    row = table["monthly_cost"].idxmin()
    chosen = cdp.choose(p, table, row)
    assert chosen.spec("jobs")["max_batch_size"] == table.loc[row, "jobs.max_batch_size"]
    assert isinstance(chosen.spec("jobs")["max_batch_size"], int)
    assert p.spec("jobs")["max_batch_size"] == 10                     # the model is untouched
    toml = cdp.export.wrangler_toml(chosen)
    line = next(x for x in toml.splitlines() if x.startswith("max_batch_size"))
    assert f"# sweep row {row}: p99 " in line and "/month" in line
    with pytest.raises(cdp.ConfigError, match="row=99"):
        cdp.choose(p, table, 99)
