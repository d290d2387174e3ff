"""Pictures of pipelines, runs and sweeps (matplotlib), and a live explorer (ipywidgets).

* :func:`draw_pipeline`: the model as a left-to-right graph; after a run, every node
  annotated with throughput, utilisation and max backlog.
* Plots of a run's results: :func:`plot_backlog`, :func:`plot_latency`,
  :func:`plot_batch_sizes`, :func:`plot_attempts`, :func:`plot_outcomes`,
  :func:`plot_actor_utilisation`, :func:`plot_hot_keys`, :func:`plot_cost`, and
  :func:`dashboard` combining the main ones.
* Plots of a :func:`~cdpkit.sweep` table: :func:`heatmap`, :func:`cost_latency_front`.
* :func:`explore`: sliders that re-simulate and redraw (imported on first use, so
  ``import cdpkit`` does not load ipywidgets).

Each plot takes an optional ``ax`` and returns it; nothing calls ``plt.show()``.

>>> from cdpkit import viz
>>> callable(viz.explore)
True
"""

from typing import Any

from .graph import (
    EDGE_STYLE,
    NODE_STYLE,
    draw_pipeline,
    edge_labels,
    layered_positions,
    layers,
    node_annotations,
)
from .plots import (
    OUTCOMES,
    actor_utilisation,
    cost_latency_front,
    dashboard,
    headline,
    heatmap,
    node_stats,
    outcome_counts,
    pareto_front,
    plot_actor_utilisation,
    plot_attempts,
    plot_backlog,
    plot_batch_sizes,
    plot_cost,
    plot_hot_keys,
    plot_latency,
    plot_outcomes,
    shade_faults,
)

__all__ = ["draw_pipeline", "edge_labels", "layers", "layered_positions", "node_annotations",
           "NODE_STYLE", "EDGE_STYLE", "node_stats", "outcome_counts", "actor_utilisation",
           "pareto_front", "OUTCOMES", "plot_backlog", "plot_latency", "plot_batch_sizes",
           "plot_attempts", "plot_outcomes", "plot_actor_utilisation", "plot_hot_keys",
           "plot_cost", "shade_faults", "dashboard", "headline", "heatmap", "cost_latency_front", "explore",
           "Explorer"]


def __getattr__(name: str) -> Any:
    if name in ("explore", "Explorer"):
        from . import widgets
        return getattr(widgets, name)
    raise AttributeError(f"module 'cdpkit.viz' has no attribute {name!r}")
