"""Draw a :class:`~cdpkit.model.pipeline.Pipeline`: nodes styled by kind, laid out left to
right in layers (sources, queues, consumers, actors, stores as messages flow), edges
labelled with their settings, and after a run every node annotated with its numbers.

>>> import matplotlib; matplotlib.use("Agg")
>>> import cdpkit as cdp
>>> p = cdp.Pipeline("doc")
>>> p.add_source("http", queue="jobs")
>>> p.add_queue("jobs", max_batch_size=10, max_batch_timeout=30, max_retries=3,
...             dead_letter_queue="jobs-dlq")
>>> p.add_queue("jobs-dlq")
>>> p.add_consumer("jobs", service={"base": 0.01})
>>> p.add_consumer("jobs-dlq")
>>> layers(p)
{'http': 0, 'jobs': 1, 'jobs-dlq': 2, 'jobs.consumer': 2, 'jobs-dlq.consumer': 3}
>>> edge_labels(p)[("jobs", "jobs.consumer")]
'batch 10 / 30 s\\nretries 3'
>>> ax = draw_pipeline(p)
"""

from __future__ import annotations

import textwrap
from typing import TYPE_CHECKING, Any

import networkx as nx

from ..runtime.queues import ConsumerSettings
from ..runtime.semantics import PRODUCTION
from .plots import _axes, fmt_value, node_stats

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from ..model.pipeline import Pipeline
    from ..sim.results import Results

#: Marker and colour of each node kind.
NODE_STYLE: dict[str, dict[str, str]] = {
    "source": {"shape": ">", "color": "#9ccc65"},
    "queue": {"shape": "s", "color": "#42a5f5"},
    "consumer": {"shape": "o", "color": "#ffb74d"},
    "actor": {"shape": "h", "color": "#ba68c8"},
    "store": {"shape": "d", "color": "#b0bec5"},
}
#: Colour, line style and width of each edge kind.
EDGE_STYLE: dict[str, dict[str, Any]] = {
    "sends": {"color": "#7cb342", "style": "solid", "width": 1.2},
    "consumes": {"color": "#1e88e5", "style": "solid", "width": 2.0},
    "publishes": {"color": "#43a047", "style": "solid", "width": 1.2},
    "routes": {"color": "#8e24aa", "style": "solid", "width": 1.2},
    "calls": {"color": "#6d4c41", "style": "dashed", "width": 1.2},
    "writes": {"color": "#78909c", "style": "dotted", "width": 1.5},
    "dead_letters": {"color": "#e53935", "style": "dashed", "width": 1.5},
}
NODE_SIZE = 900
#: A notebook shows a figure at most this wide (pixels at :data:`DPI`); wider ones are scaled
#: down, text with them. The drawing fits it, so its smallest text (:data:`FONT_SIZE` points)
#: stays >= 10 px tall.
NOTEBOOK_WIDTH_PX = 1000
DPI = 100
FONT_SIZE = 7.5
#: Longest line of a node name before it wraps (``Workflow`` / ``Orchestrator`` / ``Actor``).
NAME_WIDTH = 16


# ------------------------------------------------------------------------------ layout

def back_edges(pipeline: Pipeline) -> set[tuple[str, str]]:
    """Edges that close a cycle (e.g. an actor publishing to a queue upstream of it), found
    by a depth-first search from the sources; without them the graph is acyclic."""
    g = pipeline.graph
    starts = pipeline.nodes("source") + [n for n in g if g.in_degree(n) == 0] + list(g)
    state: dict[str, int] = {}          # 1 = on the stack, 2 = done
    back: set[tuple[str, str]] = set()
    for start in starts:
        if start in state:
            continue
        state[start] = 1
        stack = [(start, iter(g.successors(start)))]
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                state[node] = 2
                stack.pop()
            elif child not in state:
                state[child] = 1
                stack.append((child, iter(g.successors(child))))
            elif state[child] == 1:
                back.add((node, child))
    return back


def layers(pipeline: Pipeline) -> dict[str, int]:
    """Each node's column: the longest path to it from a node with no inputs (back edges
    ignored), so messages flow left to right."""
    g = pipeline.graph
    dag = nx.DiGraph(g.edges)
    dag.add_nodes_from(g)
    dag.remove_edges_from(back_edges(pipeline))
    layer: dict[str, int] = {}
    for node in nx.topological_sort(dag):
        layer[node] = max((layer[p] + 1 for p in dag.predecessors(node)), default=0)
    return {node: layer[node] for node in g}     # in the model's order


def layered_positions(pipeline: Pipeline, sweeps: int = 5) -> dict[str, tuple[float, float]]:
    """``(x, y)`` per node: ``x`` its :func:`layers` column; within a column, nodes ordered
    by the mean position of their neighbours in the previous column (a few barycentre
    sweeps, down and up, to uncross edges) and centred on ``y = 0``."""
    g = pipeline.graph
    layer = layers(pipeline)
    columns: dict[int, list[str]] = {}
    for node in g:                                  # insertion order: the model's order
        columns.setdefault(layer[node], []).append(node)
    rank = {n: i for col in columns.values() for i, n in enumerate(col)}
    order = sorted(columns)
    for sweep in range(sweeps):
        downward = sweep % 2 == 0
        for x in (order[1:] if downward else order[-2::-1]):
            side = x - 1 if downward else x + 1
            centre = {}
            for node in columns[x]:
                near = [rank[n] for n in (g.predecessors(node) if downward else g.successors(node))
                        if layer[n] == side]
                centre[node] = sum(near) / len(near) if near else rank[node]
            columns[x].sort(key=centre.__getitem__)
            rank.update({n: i for i, n in enumerate(columns[x])})
    return {n: (float(x), (len(col) - 1) / 2 - i)
            for x, col in columns.items() for i, n in enumerate(col)}


# ------------------------------------------------------------------------------ labels

def edge_labels(pipeline: Pipeline, results: Results | None = None) -> dict[tuple[str, str], str]:
    """Text for the edges that carry settings: ``consumes`` (batch size / timeout, retries,
    concurrency when set, and the consumer's retry policy), ``dead_letters`` ("DLQ"),
    ``routes`` (the message type) and ``sends`` (the source's types and share). Settings
    left unset show the defaults of the run's semantics (production without results)."""
    g = pipeline.graph
    out: dict[tuple[str, str], str] = {}
    for a, b, data in g.edges(data=True):
        kind = data["kind"]
        if kind == "consumes":
            out[(a, b)] = _consumes_label(pipeline, a, b, results)
        elif kind == "dead_letters":
            out[(a, b)] = "DLQ"
        elif kind == "routes":
            out[(a, b)] = data["message_type"]
        elif kind == "sends":
            spec = pipeline.spec(a)
            parts = [textwrap.fill(", ".join(spec.types), 16, break_long_words=False)] if spec.types else []
            if spec.share < 1:
                parts.append(f"{spec.share:.0%}")
            if parts:
                out[(a, b)] = "\n".join(parts)
    return out


def _consumes_label(pipeline: Pipeline, queue: str, consumer: str, results: Results | None) -> str:
    given = pipeline.spec(queue)
    if results is not None and queue in results.runtime.queues:
        settings = results.runtime.queues[queue].settings
    else:
        settings = ConsumerSettings.of(given).resolved(PRODUCTION)
    lines = [f"batch {settings.max_batch_size} / {fmt_value(float(settings.max_batch_timeout))} s",
             f"retries {settings.max_retries}"]
    spec = pipeline.spec(consumer)
    retry = getattr(spec, "retry", None)
    if retry is not None and getattr(spec, "handler", None) is None and retry.base:
        delays = (f"{fmt_value(float(retry.base))} s" if retry.policy == "fixed"
                  else f"{fmt_value(float(retry.base))}-{fmt_value(float(retry.cap))} s")
        lines.append(f"{retry.policy[:3]} {delays}")
    elif settings.retry_delay:
        lines.append(f"delay {settings.retry_delay} s")
    if "max_concurrency" in given:
        lines.append(f"concurrency {settings.max_concurrency}")
    return "\n".join(lines)


def node_labels(pipeline: Pipeline) -> dict[str, str]:
    """Short names: ``consumer`` for ``<queue>.consumer``, sources and stores with their kind."""
    out = {}
    for node, data in pipeline.graph.nodes(data=True):
        kind = data["kind"]
        if kind == "consumer":
            out[node] = "consumer"
        elif kind == "source":
            out[node] = f"{node} ({data['spec'].via})"
        elif kind == "store":
            out[node] = f"{node} ({data['spec'].kind})"
        else:
            out[node] = node
    return out


def wrap_name(name: str, width: int = NAME_WIDTH) -> str:
    """A node name on lines of at most ``width`` characters where it can break: after a
    ``-``, ``_``, ``.`` or a space, or before a capital (``Workflow`` / ``Orchestrator`` / ``Actor``).

    >>> wrap_name("WorkflowOrchestratorActor")
    'Workflow\\nOrchestrator\\nActor'
    >>> wrap_name("cdp-command-queue")
    'cdp-command-\\nqueue'
    >>> wrap_name("consumer")
    'consumer'
    """
    import re
    parts = re.findall(r"[^-_. ]*[-_. ]|[A-Z]?[^A-Z\-_. ]+|.+?", name)
    lines, line = [], ""
    for part in parts:
        if line and len(line) + len(part) > width:
            lines.append(line.rstrip())
            line = ""
        line += part
    lines.append(line)
    return "\n".join(lines)


def figure_size(columns: int, rows: int) -> tuple[float, float]:
    """Inches for a drawing of ``columns`` layers and at most ``rows`` nodes in one: at most
    :data:`NOTEBOOK_WIDTH_PX` wide at :data:`DPI`, so a notebook does not scale its text down;
    a layer is at most 2.1 in wide and a row 1.7 in tall."""
    width = min(NOTEBOOK_WIDTH_PX / DPI, max(6.0, 2.1 * columns + 0.5))
    return width, max(3.0, 1.7 * rows + 1.0)


def node_annotations(results: Results) -> dict[str, str]:
    """After a run, per node: throughput, utilisation and max backlog (:func:`node_stats`)."""
    out = {}
    for node, row in node_stats(results).iterrows():
        kind = row["kind"]
        if kind == "store":
            continue
        lines = [f"{row['throughput']:.3g} {row['unit']}"]
        if kind in ("consumer", "actor"):
            lines.append(f"util {_percent(row['utilisation'])}")
        if kind == "queue":
            lines.append(f"max backlog {row['max_backlog']:.0f}")
        if kind == "actor":
            lines.append(f"max queued {row['max_backlog']:.0f}")
        out[node] = "\n".join(lines)
    return out


def _percent(share: float) -> str:
    """``12%``, ``3.4%``, ``0.05%``: two significant digits below 10 %."""
    return f"{share:.0%}" if share >= 0.1 or share == 0 else f"{100 * share:.2g}%"


# ------------------------------------------------------------------------------- draw

def warned_nodes(pipeline: Pipeline, results: Results) -> set[str]:
    """Queues and actor classes that came near or over a platform limit (``results.warnings``)."""
    where = set(results.warnings["where"])
    nodes = {q for q in pipeline.nodes("queue") if f"queue {q!r}" in where}
    for actor in pipeline.nodes("actor"):
        binding = pipeline.spec(actor).binding
        if any(w.startswith(binding + " ") for w in where):
            nodes.add(actor)
    return nodes


def draw_pipeline(pipeline: Pipeline, results: Results | None = None, ax: Axes | None = None,
                  labels: bool = True) -> Axes:
    """Draw the pipeline left to right (:func:`layered_positions`): nodes by kind
    (:data:`NODE_STYLE`), edges by kind (:data:`EDGE_STYLE`, back edges curved), edge
    settings (:func:`edge_labels`) and a legend. With ``results``, each node is annotated
    with :func:`node_annotations` (text objects with ``gid`` ``"stats:<node>"``; node names
    have ``gid`` ``"label:<node>"``); a node near or over a platform limit gets a red "!"
(``gid`` ``"warning:<node>"``, see ``results.warnings``). Returns the Axes."""
    g = pipeline.graph
    pos = layered_positions(pipeline)
    columns = max((x for x, _ in pos.values()), default=0) + 1
    rows = max((sum(1 for p in pos.values() if p[0] == x) for x in range(int(columns))), default=1)
    ax = _axes(ax, figure_size(int(columns), rows))
    from matplotlib.lines import Line2D

    handles = []
    for kind, style in NODE_STYLE.items():
        nodes = pipeline.nodes(kind)
        if nodes:
            nx.draw_networkx_nodes(g, pos, nodelist=nodes, node_shape=style["shape"],
                                   node_color=style["color"], node_size=NODE_SIZE, ax=ax,
                                   edgecolors="#37474f", linewidths=0.8)
            handles.append(Line2D([], [], ls="", marker=style["shape"], markersize=10,
                                  markerfacecolor=style["color"], markeredgecolor="#37474f", label=kind))
    back = back_edges(pipeline)
    texts = edge_labels(pipeline, results)
    for kind, style in EDGE_STYLE.items():
        edges = [(a, b) for a, b, k in g.edges(data="kind") if k == kind]
        if not edges:
            continue
        handles.append(Line2D([], [], color=style["color"], ls=style["style"], lw=style["width"],
                              label=kind.replace("_", " ")))
        for curved in (False, True):
            group = [e for e in edges if ((e in back or pos[e[0]][0] >= pos[e[1]][0]) == curved)]
            if not group:
                continue
            connection = "arc3,rad=0.3" if curved else "arc3"
            nx.draw_networkx_edges(g, pos, edgelist=group, ax=ax, edge_color=style["color"],
                                   style=style["style"], width=style["width"], arrows=True,
                                   arrowstyle="-|>", arrowsize=12, node_size=NODE_SIZE,
                                   connectionstyle=connection)
            group_labels = {e: texts[e] for e in group if e in texts}
            if labels and group_labels:
                nx.draw_networkx_edge_labels(g, pos, edge_labels=group_labels, ax=ax,
                                             font_size=FONT_SIZE,
                                             label_pos=0.35 if kind == "routes" else 0.5,
                                             font_color=style["color"], rotate=False,
                                             node_size=NODE_SIZE, connectionstyle=connection,
                                             bbox={"boxstyle": "round,pad=0.15", "fc": "white",
                                                   "ec": "none", "alpha": 0.85})
    names = node_labels(pipeline)
    stats = node_annotations(results) if results is not None else {}
    for node, (x, y) in pos.items():
        name = wrap_name(names[node])
        ax.annotate(name, (x, y), xytext=(0, -16), textcoords="offset points", ha="center",
                    va="top", fontsize=FONT_SIZE + 0.5, gid=f"label:{node}")
        if node in stats:
            below = 16 + 10.5 * (name.count("\n") + 1)
            ax.annotate(stats[node], (x, y), xytext=(0, -below), textcoords="offset points",
                        ha="center", va="top", fontsize=FONT_SIZE, color="#455a64", gid=f"stats:{node}")
    for node in warned_nodes(pipeline, results) if results is not None else ():
        ax.annotate("!", pos[node], xytext=(13, 11), textcoords="offset points", ha="center", va="center",
                    fontsize=9, fontweight="bold", color="white", gid=f"warning:{node}",
                    bbox={"boxstyle": "circle,pad=0.2", "fc": "#c62828", "ec": "none"})
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 0.0), fontsize=FONT_SIZE + 0.5,
              frameon=False, ncol=6)
    ax.margins(0.06, 0.12)
    ax.set_axis_off()
    title = pipeline.name if results is None else f"{pipeline.name}: {results.duration:g} s simulated"
    ax.set_title(title)
    return ax
