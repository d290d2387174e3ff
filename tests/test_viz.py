"""Visualisation: every plot draws the run's real numbers, the graph is laid out and
annotated, sweep plots find the Pareto front, and the explorer re-simulates on a slider."""

import matplotlib

matplotlib.use("Agg")

import re  # noqa: E402
from pathlib import Path  # noqa: E402

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

import cdpkit as cdp  # noqa: E402
from cdpkit import ConfigError, viz  # noqa: E402
from cdpkit.demo import gateway, gateway_workload  # noqa: E402
from cdpkit.viz.widgets import with_rate  # noqa: E402


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def faulty():
    """Retries, dead letters, drops and a hot actor key in one small pipeline."""
    p = cdp.Pipeline("faulty")
    p.add_source("http", queue="jobs")
    p.add_queue("jobs", max_batch_size=10, max_batch_timeout=1, max_retries=2,
                dead_letter_queue="jobs-dlq", max_concurrency=2)
    p.add_queue("jobs-dlq", max_batch_size=5, max_batch_timeout=1)
    p.add_queue("events", max_batch_size=20, max_batch_timeout=1, max_retries=0)
    p.add_consumer("jobs", service={"base": 0.01, "per_message": 0.002}, failure=0.2, permanent=0.3,
                   retry={"policy": "fixed", "base": 1}, calls="Scorer", publish=["events"])
    p.add_consumer("jobs-dlq")
    p.add_consumer("events", failure=0.1)            # no retries, no DLQ: failures are dropped
    p.add_actor("Scorer", service=0.004, instances=20, skew=1.2)
    return p


@pytest.fixture(scope="module")
def res():
    return cdp.simulate(faulty(), cdp.Poisson(rate=60), duration=20, seed=5)


@pytest.fixture(scope="module")
def gw():
    return cdp.simulate(gateway(), gateway_workload(100), duration=10, seed=3)


@pytest.fixture(scope="module")
def table():
    p = cdp.Pipeline("sweep")
    p.add_source("http", queue="events")
    p.add_queue("events", max_batch_size=10, max_batch_timeout=1)
    p.add_consumer("events", service={"base": 0.005, "per_message": 0.0002})
    grid = {"events.max_batch_size": [5, 50, 100], "events.max_batch_timeout": [1, 5]}
    return cdp.sweep(p, grid, cdp.Poisson(rate=100), duration=10, seed=1, progress=False)


# ----------------------------------------------------------------------- numbers

def test_node_stats_match_the_frames(res):
    stats = viz.node_stats(res)
    m = res.messages
    for queue in res.pipeline.nodes("queue"):
        acked = ((m["queue"] == queue) & (m["outcome"] == "acked")).sum()
        assert stats.loc[queue, "throughput"] == pytest.approx(acked / res.duration)
        tl = res.timeline
        assert stats.loc[queue, "max_backlog"] == tl.loc[tl["node"] == queue, "backlog"].max()
    assert stats.loc["jobs", "throughput"] == pytest.approx(res.summary()["throughput"])
    assert stats.loc["jobs.consumer", "throughput"] == pytest.approx(
        (res.batches["queue"] == "jobs").sum() / res.duration)
    calls = res.actor_calls
    assert stats.loc["Scorer", "throughput"] == pytest.approx(len(calls) / res.duration)
    assert stats.loc["http", "throughput"] == pytest.approx(len(res.arrivals) / res.duration)
    assert set(stats["kind"]) == {"source", "queue", "consumer", "actor"}


def test_utilisation_is_offered_load():
    """Constant arrivals, one message per batch, one consumer: utilisation = rate x service;
    an actor with 2 instances and 4 ms per call: rate x 0.004 / 2."""
    p = cdp.Pipeline("load")
    p.add_source("http", queue="jobs")
    p.add_queue("jobs", max_batch_size=1, max_batch_timeout=0, max_concurrency=1)
    p.add_consumer("jobs", service={"base": 0.01}, calls="Worker")
    p.add_actor("Worker", service=0.004, instances=2)
    res = cdp.simulate(p, cdp.Constant(rate=50), duration=20, seed=1)
    stats = viz.node_stats(res)
    assert stats.loc["jobs.consumer", "utilisation"] == pytest.approx(50 * 0.014, rel=0.02)
    assert stats.loc["Worker", "utilisation"] == pytest.approx(50 * 0.004 / 2, rel=0.02)
    util = viz.actor_utilisation(res, bins=20)
    assert list(util.columns) == ["Worker"]
    assert util["Worker"].iloc[2:-2].to_numpy() == pytest.approx(0.1, rel=0.05)


def test_actor_utilisation_integrates_to_busy_time(gw):
    util = viz.actor_utilisation(gw, bins=50)
    width = np.diff(np.append(util.index, viz.plots._horizon(gw)))
    calls = gw.actor_calls
    for actor in gw.pipeline.nodes("actor"):
        spec = gw.pipeline.spec(actor)
        busy = calls.loc[calls["binding"] == spec.binding, "duration"].sum()
        assert (util[actor] * width * spec.instances).sum() == pytest.approx(busy)
        assert ((util[actor] >= 0) & (util[actor] <= 1 + 1e-9)).all()


def test_outcome_counts_cover_every_message(res):
    table = viz.outcome_counts(res)
    m = res.messages
    assert table.sum(axis=1).to_dict() == m.groupby("queue", observed=True).size().to_dict()
    assert table.loc["jobs", "dead_lettered"] == res.summary()["dead_lettered"] > 0
    assert table.loc["jobs", "acked after retry"] > 0
    assert table.loc["events", "dropped"] > 0


# --------------------------------------------------------------------- results plots

def test_backlog_one_line_per_queue(gw):
    ax = viz.plot_backlog(gw)
    lines = ax.get_lines()
    queues = gw.pipeline.nodes("queue")
    assert [line.get_label() for line in lines] == queues
    stats = viz.node_stats(gw)
    for line in lines:
        assert max(line.get_ydata()) == stats.loc[line.get_label(), "max_backlog"]
    assert len(viz.plot_backlog(gw, queues=["cdp-dlq"]).get_lines()) == 1


def test_latency_cdf_and_percentiles(gw):
    ax = viz.plot_latency(gw)
    curves = {line.get_label(): line for line in ax.get_lines() if not line.get_label().startswith("_")}
    e2e = curves["end to end"]
    assert len(e2e.get_xdata()) == gw.end_to_end["latency"].notna().sum()
    assert e2e.get_ydata()[-1] == 1.0 and np.all(np.diff(e2e.get_xdata()) >= 0)
    texts = {t.get_gid(): t.get_text() for t in ax.texts}
    s = gw.summary()
    assert texts["p50"] == f"p50 {s['p50_latency']:.3g} s"
    assert texts["p99"] == f"p99 {s['p99_latency']:.3g} s"
    assert ax.get_xlim()[1] == pytest.approx(2 * s["p99_latency"], rel=0.5)   # tail cut
    assert viz.plot_latency(gw, cut=None).get_xlim()[1] >= gw.end_to_end["latency"].max()
    assert viz.plot_latency(gw, log=True).get_xscale() == "log"


def test_batch_histogram_counts_sum_to_batches(gw):
    ax = viz.plot_batch_sizes(gw)
    b = gw.batches
    assert sum(p.get_height() for p in ax.patches) == len(b)
    per_queue = {c.get_label(): sum(p.get_height() for p in c) for c in ax.containers}
    assert per_queue == b.groupby("queue").size().to_dict()


def test_attempts_bars_count_messages(res):
    ax = viz.plot_attempts(res)
    m = res.messages
    per_queue = {c.get_label(): sum(p.get_height() for p in c) for c in ax.containers}
    assert per_queue == m.groupby("queue", observed=True).size().to_dict()
    assert ax.get_xticks().max() == m["deliveries"].max() == 3          # max_retries 2


def test_outcome_bars(res):
    ax = viz.plot_outcomes(res)
    table = viz.outcome_counts(res)
    widths = {}
    for container in ax.containers:
        widths[container.get_label()] = [bar.get_width() for bar in container]
    assert widths["dead lettered"] == table["dead_lettered"].tolist()
    assert widths["dropped"] == table["dropped"].tolist()
    totals = np.sum(list(widths.values()), axis=0)
    assert totals.tolist() == table.sum(axis=1).tolist()


def test_actor_utilisation_plot(gw):
    ax = viz.plot_actor_utilisation(gw, bins=40)
    assert [p.get_label() for p in ax.patches] == gw.pipeline.nodes("actor")
    util = viz.actor_utilisation(gw, bins=40)
    assert ax.patches[0].get_data().values == pytest.approx(100 * util.iloc[:, 0].to_numpy())


def test_hot_keys(res):
    ax = viz.plot_hot_keys(res, "Scorer", top=5)
    widths = [bar.get_width() for bar in ax.patches]
    counts = res.actor_calls["object"].value_counts()
    assert widths == counts.head(5).tolist() and widths == sorted(widths, reverse=True)
    assert ax.texts[0].get_text() == f"{counts.iloc[0] / counts.sum():.1%}"
    assert counts.iloc[0] / counts.sum() > 0.2          # Zipf 1.2 over 20 keys: a hot key
    assert len(viz.plot_hot_keys(res, top=50).patches) == res.actor_calls["object"].nunique()
    assert "no actor calls" in viz.plot_hot_keys(res, "NOPE").texts[0].get_text()


def test_cost_bars_sum_to_the_bill(gw):
    ax = viz.plot_cost(gw)
    cost = gw.cost()
    assert sum(bar.get_width() for bar in ax.patches) == pytest.approx(cost["monthly_cost"].sum())
    run = viz.plot_cost(gw, period="run")
    assert sum(bar.get_width() for bar in run.patches) == pytest.approx(cost["run_cost"].sum())
    with pytest.raises(ValueError, match="period"):
        viz.plot_cost(gw, period="year")


def test_dashboard(gw, res):
    fig = viz.dashboard(gw)
    titles = [ax.get_title() for ax in fig.axes]
    # six plots, and the backlog plot's twin axis of autoscaled consumers when they go above 1
    assert len(fig.axes) == 7 and "backlog" in titles and "actor utilisation" in titles
    assert f"{gw.summary()['messages']:,.0f} messages" in fig.get_suptitle()
    reused = viz.dashboard(res, fig=fig)          # redraws into the same figure
    assert reused is fig and len(fig.axes) in (6, 7) and fig.get_suptitle().startswith("faulty")


def test_plots_of_an_idle_run():
    p = cdp.Pipeline("idle")
    p.add_source("http", queue="jobs")
    p.add_queue("jobs")
    p.add_consumer("jobs")
    res = cdp.simulate(p, cdp.Poisson(rate=0), duration=5)
    fig = viz.dashboard(res)
    assert "no batches" in fig.axes[2].texts[0].get_text()
    viz.draw_pipeline(p, res)


# -------------------------------------------------------------------------- graph

def test_layout_is_layered_left_to_right(gw):
    p = gw.pipeline
    pos = viz.layered_positions(p)
    assert len(set(pos.values())) == len(pos) == len(p.graph)
    back = viz.graph.back_edges(p)
    for a, b, kind in p.graph.edges(data="kind"):
        if (a, b) not in back:
            assert pos[a][0] < pos[b][0], (a, b, kind)
    layer = viz.layers(p)
    assert {layer[s] for s in p.nodes("source")} == {0}
    assert layer["cdp-command-queue.consumer"] == layer["cdp-command-queue"] + 1


def test_back_edges_make_a_dag():
    import networkx as nx
    p = cdp.Pipeline("loop")
    p.add_source("http", queue="a")
    p.add_queue("a")
    p.add_queue("b")
    p.add_consumer("a", publish=["b"])
    p.add_consumer("b", publish=["a"])          # a cycle through queues is allowed
    back = viz.graph.back_edges(p)
    assert back == {("b.consumer", "a")}
    dag = p.graph.copy()
    dag.remove_edges_from(back)
    assert nx.is_directed_acyclic_graph(dag)
    viz.draw_pipeline(p)


def test_edge_labels(gw):
    labels = viz.edge_labels(gw.pipeline, gw)
    assert labels[("cdp-command-queue", "cdp-command-queue.consumer")] == \
        "batch 10 / 30 s\nretries 3\nexp 5-60 s\nconcurrency 10"      # one setting a line (narrow)
    assert labels[("cdp-task-queue", "cdp-task-queue.consumer")] == "batch 20 / 5 s\nretries 3\nfix 30 s"
    assert labels[("cdp-command-queue", "cdp-dlq")] == "DLQ"
    assert labels[("cdp-task-queue.consumer", "WebScraperActor")] == "web_scraping"
    assert labels[("http-workflows", "cdp-command-queue")] == "execute_workflow"
    # unset settings show the profile's defaults
    p = cdp.Pipeline("defaults")
    p.add_source("http", queue="jobs")
    p.add_queue("jobs")
    p.add_consumer("jobs")
    assert viz.edge_labels(p)[("jobs", "jobs.consumer")] == "batch 10 / 5 s\nretries 3"
    local = cdp.simulate(p, cdp.Poisson(rate=1), duration=1, semantics="local")
    assert viz.edge_labels(p, local)[("jobs", "jobs.consumer")] == "batch 5 / 1 s\nretries 2"


def test_draw_pipeline_styles_and_annotations(gw):
    ax = viz.draw_pipeline(gw.pipeline, gw)
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert {"source", "queue", "consumer", "actor", "store"} <= set(legend)
    assert {"consumes", "dead letters", "routes", "calls", "writes", "publishes", "sends"} <= set(legend)
    assert sum(len(c.get_offsets()) for c in ax.collections) == len(gw.pipeline.graph)  # node markers
    texts = {t.get_gid(): t.get_text() for t in ax.texts if t.get_gid()}
    assert texts["label:cdp-command-queue.consumer"] == "consumer"
    m = gw.messages
    for queue in gw.pipeline.nodes("queue"):
        acked = ((m["queue"] == queue) & (m["outcome"] == "acked")).sum()
        assert f"{acked / gw.duration:.3g} msg/s" in texts[f"stats:{queue}"]
    tl = gw.timeline
    peak = tl.loc[tl["node"] == "cdp-event-queue", "backlog"].max()
    assert f"max backlog {peak}" in texts["stats:cdp-event-queue"]
    calls = gw.actor_calls
    scorer = (calls["binding"] == "PROFILE_SCORER_ACTOR").sum() / gw.duration
    assert texts["stats:ProfileScorerActor"].startswith(f"{scorer:.3g} calls/s\nutil ")
    assert "stats:CACHE" not in texts
    edge_texts = {t.get_text() for t in ax.texts if not t.get_gid()}
    assert "DLQ" in edge_texts and "crm_sync" in edge_texts
    plain = viz.draw_pipeline(gw.pipeline)           # before a run: no numbers
    assert not [t for t in plain.texts if (t.get_gid() or "").startswith("stats:")]


def shown_text_px(fig: Figure, notebook_px: int = 1_000, dpi: int = 100) -> tuple[float, float]:
    """(width in px, smallest text in px) of a figure as a notebook shows it: rendered at
    ``dpi`` with a tight bounding box (the inline backend's way), then scaled down to fit
    ``notebook_px`` when wider."""
    import io

    from matplotlib.image import imread
    from matplotlib.text import Text

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    buf.seek(0)
    width = max(fig.get_size_inches()[0] * dpi, imread(buf).shape[1])
    smallest = min(t.get_fontsize() for t in fig.findobj(Text) if t.get_visible() and t.get_text())
    return width, smallest * dpi / 72 * min(1.0, notebook_px / width)


def test_pipeline_drawing_is_readable_at_notebook_width(gw):
    """Issue 15: the seed's gateway was drawn 1,841 px wide, so at a notebook's ~1,000 px its
    labels were about 5 px tall. Before and after a run, every text is >= 9 px there."""
    assert set(gw.pipeline.graph) == set(cdp.Pipeline.from_yaml(Path(__file__).resolve().parents[1] / "examples" / "cdp-gateway.yaml").graph)
    for drawing in (viz.draw_pipeline(gw.pipeline, gw), viz.draw_pipeline(gw.pipeline)):
        width, smallest = shown_text_px(drawing.figure)
        assert smallest >= 9, f"smallest text {smallest:.1f} px at 1,000 px (drawn {width:.0f} px wide)"


# -------------------------------------------------------------------------- sweeps

def test_heatmap_cells_are_the_pivot(table):
    ax = viz.heatmap(table, x="events.max_batch_size", y="events.max_batch_timeout", value="p99_latency")
    grid = table.pivot(index="events.max_batch_timeout", columns="events.max_batch_size", values="p99_latency")
    assert np.asarray(ax.images[0].get_array()) == pytest.approx(grid.to_numpy())
    assert [t.get_text() for t in ax.get_xticklabels()] == ["5", "50", "100"]
    assert sorted(t.get_text() for t in ax.texts) == sorted(f"{v:.3g}" for v in grid.to_numpy().ravel())


def dominated(point, others):
    return any((o[0] <= point[0] and o[1] <= point[1]) and (o[0] < point[0] or o[1] < point[1])
               for o in others)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pareto_front_is_exactly_the_non_dominated(seed):
    rng = np.random.default_rng(seed)
    t = pd.DataFrame({"monthly_cost": rng.integers(0, 8, 40).astype(float),
                      "p99_latency": rng.integers(0, 8, 40).astype(float)})
    t.loc[3, "p99_latency"] = np.nan
    on = viz.pareto_front(t)
    points = t[["monthly_cost", "p99_latency"]].dropna().to_numpy()
    for i, row in t.iterrows():
        if np.isnan(row["p99_latency"]):
            assert not on[i]
        else:
            assert on[i] == (not dominated(row.to_numpy(), points)), i


def test_cost_latency_front(table):
    ax = viz.cost_latency_front(table)
    front = {c.get_label(): c for c in ax.collections}["Pareto front"]
    expected = table[viz.pareto_front(table)]
    got = sorted(map(tuple, front.get_offsets()))
    assert got == sorted(zip(expected["monthly_cost"], expected["p99_latency"]))
    points = table[["monthly_cost", "p99_latency"]].to_numpy()
    assert all(not dominated(p, points) for p in got)
    labels = [t.get_text() for t in ax.texts]
    assert len(labels) == len(set(got)) and all(t.startswith("batch=") for t in labels)
    # timeouts never fire at 100 msg/s: they tie, and share a label
    assert "batch=5, timeout=1/5" in labels


# ------------------------------------------------------------------------ explorer

def small():
    p = cdp.Pipeline("small")
    p.add_source("http", queue="jobs")
    p.add_queue("jobs", max_batch_size=10, max_batch_timeout=1, max_retries=2,
                dead_letter_queue="jobs-dlq")
    p.add_queue("jobs-dlq", max_batch_size=5, max_batch_timeout=2)
    p.add_consumer("jobs", service={"base": 0.01, "per_message": 0.001},
                   retry={"policy": "fixed", "base": 2})
    p.add_consumer("jobs-dlq")
    return p


def test_explorer_resimulates_when_a_slider_moves():
    p = small()
    workload = cdp.Poisson(rate=40)
    ex = viz.explore(p, workload, duration=15, seed=2, draw=False)
    plain = cdp.simulate(p, workload, 15, seed=2)
    pd.testing.assert_series_equal(ex.result.summary(), plain.summary())
    assert ex.controls["queue"].value == "jobs" and ex.controls["batch_size"].value == 10
    assert all(c.continuous_update is False for c in ex.controls.values() if hasattr(c, "continuous_update"))
    before = ex.result
    ex.controls["batch_size"].value = 3
    assert ex.result is not before and ex.result.summary()["mean_batch"] == pytest.approx(3, abs=0.1)
    assert ex.pipeline.spec("jobs")["max_batch_size"] == 3 and p.spec("jobs")["max_batch_size"] == 10
    assert ex.overrides == {"jobs.max_batch_size": 3}
    ex.controls["failure"].value = 0.3
    assert ex.result.summary()["retries"] > 0 and ex.result.summary()["dead_lettered"] > 0
    ex.controls["retries"].value = 0
    assert ex.result.messages.query("queue == 'jobs'")["deliveries"].max() == 1
    ex.controls["retry_delay"].value = 7
    assert ex.pipeline.spec("jobs.consumer").retry.base == 7
    ex.controls["batch_size"].value = 10              # back to the model's value: no override
    assert "jobs.max_batch_size" not in ex.overrides
    assert "small" in repr(ex) and "batch_size=10" in repr(ex)


def test_explorer_traffic_and_queue_controls():
    ex = viz.explore(small(), cdp.Poisson(rate=40), duration=20, seed=2, draw=False)
    quiet = ex.result.summary()
    busier = ex.set(rate=120)
    assert busier.summary()["messages"] > 2.5 * quiet["messages"]
    assert ex.workload.rate == 120
    burst = ex.set(rate=40, burst=10, concurrency=1)
    assert type(ex.workload).__name__ == "Piecewise" and ex.workload.schedule[1] == (8.0, 400.0)
    assert burst.summary()["max_backlog"] > quiet["max_backlog"]
    ex.set(queue="jobs-dlq")                            # knobs now show the DLQ's settings
    assert ex.controls["batch_size"].value == 5 and ex.controls["timeout"].value == 2
    assert ex.overrides == {"jobs.max_concurrency": 1}   # the first queue's change is kept
    ex.set(semantics="local")
    assert ex.result.runtime.semantics.name == "local"
    with pytest.raises(ConfigError, match="batch"):
        ex.set(batch=3)


def test_explorer_draws_the_dashboard():
    ex = viz.explore(small(), cdp.Poisson(rate=20), duration=5, seed=1)
    assert ex.image.value[:8] == b"\x89PNG\r\n\x1a\n"
    assert "mean_batch" in ex.table.value and "small" in ex.status.value
    first = ex.image.value
    ex.controls["batch_size"].value = 1
    assert ex.image.value != first


def test_with_rate():
    w = cdp.Poisson(rate=10, types={"a": 1, "b": 3})
    assert with_rate(w, 10) is w
    burst = with_rate(w, 20, burst=3, window=(5, 6))
    assert burst.schedule == [(0.0, 20.0), (5.0, 60.0), (6.0, 20.0)] and burst.types == w.types
    assert with_rate(cdp.Diurnal(mean=5, period=60), 10).mean == 10
    replay = cdp.Replay(trace=pd.DataFrame({"time": [0.0, 1.0]}))
    with pytest.raises(ConfigError, match="Replay"):
        with_rate(replay, 3)
    ex = viz.explore(small(), replay, duration=2, draw=False)
    assert ex.controls["rate"].disabled and ex.controls["burst"].disabled


def test_explorer_rejects_unknown_queue():
    with pytest.raises(ConfigError, match="queue='nope'"):
        viz.explore(small(), cdp.Poisson(rate=1), queue="nope", draw=False)


def test_figures_come_from_pyplot_only_when_no_ax_is_given(gw):
    fig = Figure()
    ax = fig.subplots()
    assert viz.plot_backlog(gw, ax=ax) is ax
    before = plt.get_fignums()
    viz.plot_cost(gw, ax=ax)
    assert plt.get_fignums() == before


# ----------------------------------------------- explorer as a user meets it (issue 15)

def orders(**queue):
    p = cdp.Pipeline("orders")
    p.add_source("http", queue="orders")
    p.add_queue("orders", max_batch_size=10, max_batch_timeout=1, max_concurrency=1, **queue)
    p.add_consumer("orders", service={"base": 0.05, "per_message": 0.005})
    return p


def test_headline_says_how_messages_ended_dropped_expired_in_flight():
    ex = viz.explore(orders(), cdp.Poisson(rate=80), duration=20, seed=2, draw=False)
    r = ex.set(failure=0.3)                       # no DLQ: what fails for good is dropped
    dropped = int(r.summary()["dropped"])
    assert dropped > 0 and f"dropped {dropped:,}" in ex.status.value
    assert "dead-lettered 0" in ex.status.value
    slow = orders(retention=60)                   # backlog older than 60 s expires
    res = cdp.simulate(slow, cdp.Poisson(rate=300), duration=120, seed=1)
    expired = viz.plots.expired_count(res)
    assert expired > 0 and f"({expired:,} expired)" in viz.headline(res)
    assert not re.search(r"\de[+-]\d", viz.headline(res))      # 1.28e+04 s -> 3.6 h


def test_headline_and_explorer_show_handler_errors():
    p = orders()

    async def handle(batch, env, ctx):
        for m in batch.messages:
            m.body["missing"]

    p = p.set("orders.consumer.handler", handle)
    with pytest.warns(cdp.errors.HandlerWarning):
        ex = viz.explore(p, cdp.Poisson(rate=5), duration=5, seed=1, draw=False)
    errors = int(ex.result.summary()["errors"])
    assert errors > 0 and f"handler errors {errors:,}" in ex.status.value


def test_concurrency_slider_is_disabled_where_it_is_ignored():
    ex = viz.explore(orders(), cdp.Poisson(rate=20), duration=5, seed=1, draw=False)
    assert not ex.controls["concurrency"].disabled
    ex.set(semantics="local")
    assert ex.controls["concurrency"].disabled and "ignored" in ex.controls["concurrency"].tooltip
    ex.set(semantics="production")
    assert not ex.controls["concurrency"].disabled


def test_a_long_resimulation_stops_at_the_explorers_budget():
    import time
    ex = viz.explore(orders(), cdp.Piecewise(schedule=[(0, 80), (30, 400), (40, 80)]),
                     duration=120, seed=2, draw=False)
    kept = ex.result
    started = time.perf_counter()
    assert ex.set(failure=1.0, retries=100) is None          # would run ~4 s and more
    assert time.perf_counter() - started < 3.5
    assert isinstance(ex.error, cdp.BudgetError) and "budget" in ex.status.value
    assert ex.result is kept


def test_headline_table_and_dashboard_change_together():
    ex = viz.explore(small(), cdp.Poisson(rate=20), duration=5, seed=1)
    seen = {}
    draw = ex.png

    def png(*args, **kwargs):          # while the dashboard renders, nothing new is shown yet
        seen["status"], seen["table"] = ex.status.value, ex.table.value
        return draw(*args, **kwargs)

    ex.png = png
    before = ex.table.value
    ex.controls["batch_size"].value = 2
    assert seen["status"].startswith("<i>simulating") and seen["table"] == before
    assert "mean batch 1.98" in ex.status.value and "updated in" in ex.status.value
    assert ex.table.value != before


def test_explorer_fits_a_1000px_notebook():
    ex = viz.explore(small(), cdp.Poisson(rate=20), duration=5, seed=1, draw=False)
    assert ex.layout.max_width == "1000px" and ex.image.layout.width == "100%"
    assert ex.children[0].layout.flex_flow == "row wrap"     # the two control columns wrap
    widths = [int(c.layout.width.removesuffix("px")) for c in ex.controls.values()
              if c.layout.width and c.layout.width.endswith("px")]
    assert max(widths) <= 480
    assert "<table" not in ex.table.value and "grid" in ex.table.value
    assert re.search(r"messages</span> <b>[\d,]+</b>", ex.table.value)


def test_controls_moved_inside_hold_are_what_the_next_update_runs():
    """Moving sliders by hand inside ``with ex.hold():`` once changed what the controls showed
    but not what ran (the moves were not recorded); now every move is recorded."""
    ex = viz.explore(small(), cdp.Poisson(rate=40), duration=10, seed=2, draw=False)
    queue = ex.controls["queue"].value
    with ex.hold():
        ex.controls["batch_size"].value = 2
        ex.controls["retries"].value = 5
    assert ex.overrides[f"{queue}.max_batch_size"] == 2 and ex.overrides[f"{queue}.max_retries"] == 5
    pipeline, _ = ex.configured()
    assert pipeline.spec(queue)["max_batch_size"] == 2
    assert ex.update().summary()["mean_batch"] <= 2


def test_plot_cost_refuses_an_unknown_period_with_a_config_error():
    res = cdp.simulate(small(), cdp.Poisson(rate=10), duration=5, seed=1)
    with pytest.raises(cdp.ConfigError, match=r"plot_cost: period='weekly' is not allowed; allowed: 'monthly', 'run'"):
        viz.plot_cost(res, period="weekly")


def test_explorer_outage_control_rehearses_a_consumer_outage():
    """Issue 16: the explorer's outage control makes the selected consumer throw in a window;
    the run shows the incident, and an empty window is no outage."""
    ex = viz.explore(small(), cdp.Poisson(rate=20), duration=60, seed=2, draw=False)
    calm = ex.update()
    res = ex.set(outage=(10.0, 30.0))
    incidents = res.incidents()
    assert incidents[["kind", "start", "end"]].values.tolist() == [["outage", 10.0, 30.0]]
    assert incidents["peak_backlog"].iloc[0] > calm.summary()["max_backlog"]
    assert ex.set(outage=(0.0, 0.0)).incidents().empty
