"""Sweeps: one simulation per configuration of a grid, on any ``concurrent.futures`` executor.

>>> import cdpkit as cdp
>>> p = cdp.Pipeline("s")
>>> p.add_source("http", queue="jobs")
>>> p.add_queue("jobs", max_batch_size=10, max_batch_timeout=1)
>>> p.add_consumer("jobs", service={"base": 0.01, "per_message": 0.001})
>>> table = cdp.sweep(p, {"jobs.max_batch_size": [1, 10]}, cdp.Poisson(rate=50), duration=20,
...                   progress=False)
>>> table[["jobs.max_batch_size", "mean_batch"]].round(1).values.tolist()
[[1.0, 1.0], [10.0, 10.0]]
"""

from __future__ import annotations

import itertools
from concurrent.futures import Executor, as_completed
from typing import Any

import pandas as pd

from ..errors import ConfigError
from ..model.pipeline import Pipeline
from ..model.workload import Workload
from .simulate import simulate


def grid_rows(grid: dict[str, list]) -> list[dict[str, Any]]:
    """Every combination of the grid's values, in a stable order (the first key varies slowest).

    Raises
    ------
    ConfigError
        If ``grid`` is not a non-empty dict of non-empty lists.

    Examples
    --------
    >>> grid_rows({"jobs.max_batch_size": [10, 50], "jobs.max_retries": [1, 3]})
    [{'jobs.max_batch_size': 10, 'jobs.max_retries': 1}, {'jobs.max_batch_size': 10, 'jobs.max_retries': 3}, {'jobs.max_batch_size': 50, 'jobs.max_retries': 1}, {'jobs.max_batch_size': 50, 'jobs.max_retries': 3}]
    """
    if not isinstance(grid, dict) or not grid:
        raise ConfigError(f"sweep grid={grid!r} is not allowed; allowed: a dict of "
                          "'<node>.<setting>' -> list of values")
    for key, values in grid.items():
        if not isinstance(values, (list, tuple)) or not values:
            raise ConfigError(f"sweep grid[{key!r}]={values!r} is not allowed; allowed: a non-empty list")
    keys = list(grid)
    return [dict(zip(keys, combo)) for combo in itertools.product(*(grid[k] for k in keys))]


def run_one(pipeline: Pipeline, config: dict[str, Any], workload: Workload, duration: float,
            seed: int, semantics: str, faults: Any = None) -> dict[str, Any]:
    """Simulate one configuration; return its summary and cost as plain data (a sweep row).

    ``config`` maps ``"<node>.<setting>"`` to a value (applied with :meth:`Pipeline.set`);
    the row holds the configuration, every :meth:`Results.summary` number, ``run_cost`` and
    ``monthly_cost`` (dollars) and which ``engine`` ran it (``res.engine``). Picklable, so any executor can run it.
    """
    for key, value in config.items():
        pipeline = pipeline.set(key, value)
    res = simulate(pipeline, workload, duration, seed=seed, semantics=semantics, faults=faults)
    row = dict(config)
    row.update(res.summary().to_dict())
    cost = res.cost()
    row["run_cost"] = float(cost["run_cost"].sum())
    row["monthly_cost"] = float(cost["monthly_cost"].sum())
    row["engine"] = res.engine
    return row


def sweep(pipeline: Pipeline, grid: dict[str, list], workload: Workload, duration: float = 60.0,
          seed: int = 0, semantics: str = "production", executor: Executor | None = None,
          progress: bool = True, faults: Any = None) -> pd.DataFrame:
    """Simulate every combination in ``grid``; one row per configuration.

    Every configuration uses the same ``seed``, so rows differ only by their settings, and
    the table is the same whichever executor ran it. Bad keys or values fail before anything
    runs.

    Parameters
    ----------
    pipeline : Pipeline
        The design the settings are applied to (not changed).
    grid : dict
        ``"<node>.<setting>"`` -> list of values, e.g.
        ``{"jobs.max_batch_size": [10, 50, 100], "jobs.consumer.retry": [...]}``; any key
        :meth:`Pipeline.set` takes.
    workload : Workload
        The arrivals every configuration sees.
    duration : float
        Seconds of arrivals per run (default 60).
    seed : int
        The seed of every run.
    semantics : str
        The platform profile (default ``"production"``).
    executor : concurrent.futures.Executor, optional
        Where runs go: None runs them here one by one; a process pool, or a
        ``dask.distributed`` client's ``get_executor()`` to go beyond one machine.
    progress : bool
        Show a bar counting configurations.
    faults : Faults, list, str, optional
        A fault timeline (passed to :func:`simulate`): every configuration rehearses the same
        incident.

    Returns
    -------
    DataFrame
        One row per configuration in grid order: the grid's columns, the
        :meth:`Results.summary` columns (``p99_latency``, ``mean_batch``, ``dead_lettered``,
        ...), ``run_cost``, ``monthly_cost`` and ``engine`` (which engine ran it).

    Raises
    ------
    ConfigError
        For a bad grid, key or value (naming it), before anything runs.

    See Also
    --------
    choose : a pipeline with one row's settings.

    Examples
    --------
    >>> import cdpkit as cdp
    >>> p = cdp.Pipeline("s")
    >>> p.add_source("http", queue="jobs")
    >>> p.add_queue("jobs", max_batch_size=10, max_batch_timeout=1)
    >>> p.add_consumer("jobs", service={"base": 0.01, "per_message": 0.001})
    >>> table = sweep(p, {"jobs.max_batch_size": [1, 10], "jobs.max_retries": [0, 3]},
    ...               cdp.Poisson(rate=50), duration=10, progress=False)
    >>> table[["jobs.max_batch_size", "jobs.max_retries", "acked"]].values.tolist()
    [[1.0, 0.0, 548.0], [1.0, 3.0, 548.0], [10.0, 0.0, 548.0], [10.0, 3.0, 548.0]]
    >>> sweep(p, {"jobs.max_batch_sise": [1]}, cdp.Poisson(rate=50), progress=False)
    Traceback (most recent call last):
    ...
    cdpkit.errors.ConfigError: setting 'jobs.max_batch_sise': unknown setting 'max_batch_sise' (did you mean 'max_batch_size'?); allowed: max_batch_size, max_batch_timeout, max_retries, dead_letter_queue, retry_delay, max_concurrency, visibility_timeout_ms, delivery_delay, retention
    """
    rows = grid_rows(grid)
    for config in rows:  # bad keys or values fail here, before anything runs
        p = pipeline
        for key, value in config.items():
            p = p.set(key, value)
        p.validate()
    bar = _bar(len(rows), progress)
    results: list[dict | None] = [None] * len(rows)
    try:
        if executor is None:
            for i, config in enumerate(rows):
                results[i] = run_one(pipeline, config, workload, duration, seed, semantics, faults)
                bar.update()
        else:
            futures = {executor.submit(run_one, pipeline, config, workload, duration, seed, semantics, faults): i
                       for i, config in enumerate(rows)}
            for future in as_completed(futures):
                results[futures[future]] = future.result()
                bar.update()
    finally:
        bar.close()
    return pd.DataFrame(results)


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def _bar(total: int, progress: bool):
    if not progress:
        return _NoBar()
    from tqdm.auto import tqdm
    return tqdm(total=total, desc="sweep", unit="config")


def choose(pipeline: Pipeline, table: Any, row: int | None = None) -> Pipeline:
    """A copy of ``pipeline`` with the settings of sweep ``table``'s row ``row`` (its index
    label), or of a :class:`~cdpkit.sim.tune.Tuning`'s ``best`` (no ``row``), each recorded
    with where it came from, which the export writes as a comment.

    >>> import cdpkit as cdp
    >>> p = cdp.Pipeline("s")
    >>> p.add_source("http", queue="jobs")
    >>> p.add_queue("jobs", max_batch_size=10, max_batch_timeout=1)
    >>> p.add_consumer("jobs", service={"base": 0.01, "per_message": 0.001})
    >>> table = cdp.sweep(p, {"jobs.max_batch_size": [1, 10]}, cdp.Poisson(rate=50), duration=20,
    ...                   progress=False)
    >>> best = choose(p, table, table["monthly_cost"].idxmin())
    >>> best.spec("jobs")["max_batch_size"], best.provenance["jobs.max_batch_size"][:11]
    (10, 'sweep row 1')
    """
    if not isinstance(table, pd.DataFrame) and hasattr(table, "best"):    # a Tuning (tune imports sweep)
        if table.best is None:
            raise ConfigError(f"choose: {table!r} is not allowed: no configuration meets the SLO; allowed: a "
                              "Tuning with a best configuration (relax a bound, or widen the knobs)")
        for key, value in table.best.settings.items():
            pipeline = pipeline.set(key, value, why=table.best.why)
        return pipeline
    if row not in table.index:
        raise ConfigError(f"choose: row={row!r} is not allowed; allowed: a row label of the table "
                          f"({table.index.min()} .. {table.index.max()})")
    settings = [c for c in table.columns if "." in c]
    r = table.loc[row]
    why = (f"sweep row {row}: p99 {r['p99_latency']:.3g} s, mean batch {r['mean_batch']:.3g}, "
           f"${r['monthly_cost']:,.2f}/month")
    for key in settings:
        value = table.at[row, key]     # the column's own type (a row of mixed columns is all floats)
        pipeline = pipeline.set(key, value.item() if hasattr(value, "item") else value, why=why)
    return pipeline
