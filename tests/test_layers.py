"""The package's import graph shows the architecture: runtime -> model -> sim -> viz/deploy,
data flowing one way. No module of a lower layer imports a higher one, and there is no import
circle outside ``runtime/`` (whose clock, queues and actors are one unit)."""

import ast
from pathlib import Path

import networkx as nx

ROOT = Path(__file__).resolve().parents[1] / "cdpkit"
LAYERS = {"errors": 0, "runtime": 0, "model": 1, "sim": 2, "viz": 3, "deploy": 3, "export": 3,
          "cli": 4, "demo": 4, "data": 0, "__init__": 4, "__main__": 4}


def import_graph() -> nx.DiGraph:
    g = nx.DiGraph()
    modules = {".".join(f.relative_to(ROOT.parent).with_suffix("").parts).removesuffix(".__init__")
               for f in ROOT.rglob("*.py")}
    for f in ROOT.rglob("*.py"):
        module = ".".join(f.relative_to(ROOT.parent).with_suffix("").parts).removesuffix(".__init__")
        package = module if f.name == "__init__.py" else module.rpartition(".")[0]
        for node in ast.walk(ast.parse(f.read_text())):
            if not isinstance(node, ast.ImportFrom):
                continue
            if node.level:
                base = package.split(".")[:len(package.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            elif node.module and node.module.startswith("cdpkit"):
                target = node.module
            else:
                continue
            for alias in node.names:      # `from . import io` imports the module cdpkit.model.io
                name = f"{target}.{alias.name}"
                g.add_edge(module, name if name in modules else target)
    return g


def layer(module: str) -> int:
    parts = module.split(".")
    return LAYERS[parts[1] if len(parts) > 1 else "__init__"]


def test_no_import_reaches_up_a_layer():
    g = import_graph()
    upward = [(a, b) for a, b in g.edges if layer(b) > layer(a) and a != "cdpkit"]
    assert not upward, upward
    assert "cdpkit.deploy.wrangler" not in nx.descendants(g, "cdpkit.model.pipeline")


def test_no_import_circle_outside_the_runtime():
    g = import_graph()
    circles = [c for c in nx.simple_cycles(g)
               if len(c) > 1 and not all(m.startswith("cdpkit.runtime") for m in c)]
    assert not circles, circles
