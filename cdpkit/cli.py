"""Command line.

    cdpkit demo                    simulate the built-in CDP gateway, write a report folder
    cdpkit simulate MODEL.yaml     simulate a model file and print its summary
    cdpkit export MODEL.yaml       write wrangler.toml (or .jsonc), provisioning script, Worker skeleton
    cdpkit tune MODEL.yaml --slo p99_latency=5 --knob QUEUE.max_batch_size=5..100 [--out deploy/]
                                   the cheapest configuration meeting the SLO (and its config)
    cdpkit lab [JUPYTER OPTIONS]   open JupyterLab on the tutorial notebooks
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

import pandas as pd


def _show(title: str, table: pd.Series | pd.DataFrame) -> None:
    print(f"\n== {title} ==")
    print(table.to_string())


def _out_dir(path: str) -> Path:
    """The ``--out`` folder, created now (before any run), or a ConfigError saying why not."""
    from .errors import ConfigError
    try:
        Path(path).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"--out {path!r} cannot be created ({exc.strerror}); allowed: a folder "
                          "path you can write to") from None
    return Path(path)


def _report(res, out: Path) -> list[Path]:
    """Summary, tables and plots of one simulation into ``out``."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from . import viz

    written = []
    for name, frame in (("summary.csv", res.summary()), ("cost.csv", res.cost()),
                        ("messages.csv", res.messages), ("batches.csv", res.batches),
                        ("timeline.csv", res.timeline)):
        frame.to_csv(out / name)
        written.append(out / name)
    for name, draw in (("pipeline.png", lambda: viz.draw_pipeline(res.pipeline, res)),
                       ("dashboard.png", lambda: viz.dashboard(res))):
        made = draw()
        figure = made if hasattr(made, "savefig") else made.figure
        figure.savefig(out / name, dpi=110, bbox_inches="tight")
        plt.close(figure)
        written.append(out / name)
    return written


def demo(args: argparse.Namespace) -> int:
    """The main job: the seed's CDP gateway, simulated, reported and exported."""
    from . import deploy
    from .demo import build_gateway, gateway, gateway_workload
    from .sim import simulate

    out = _out_dir(args.out)
    pd.set_option("display.width", 140)
    pd.set_option("display.max_columns", 20)

    pipeline = gateway()
    print(f"CDP gateway model: {pipeline!r}")
    started = time.perf_counter()
    res = simulate(pipeline, gateway_workload(args.rate), duration=args.duration, seed=args.seed,
                   progress=True)
    elapsed = time.perf_counter() - started
    _show(f"capacity simulation: {args.rate:g} requests/s for {args.duration:g} virtual s "
          f"({elapsed:.1f} s wall)", res.summary().round(4))
    cost = res.cost()
    _show(f"cost (Cloudflare list prices as of {cost.attrs['pricing_as_of']})",
          cost[["service", "item", "quantity", "run_cost", "monthly_cost"]].round(4))
    print("\nconservation per queue (sent = acked + dead_lettered + dropped + in_flight):")
    print(res.runtime.conservation().to_string())

    # the same shape written as handler code, in both semantics profiles
    for semantics in ("local", "production"):
        rt = build_gateway(semantics=semantics, seed=args.seed, requests=args.requests)
        rt.run()
        rt.check_conservation()
        summary = rt.summary()
        summary.to_csv(out / f"handlers-{semantics}.csv")
        _show(f"handler-code gateway, semantics={semantics!r}: {args.requests} requests",
              summary.round(3))

    written = _report(res, out)
    written += deploy.write_all(pipeline, out / "deploy", overwrite=True)
    print(f"\nwrote {len(written)} files to {out}/:")
    for path in written:
        print(f"  {path}")
    print("\nNext: the tutorial notebooks in JupyterLab (01-quickstart first):\n"
          "  .venv/bin/cdpkit lab          # add --no-browser --port 8899 etc. as for jupyter lab")
    return 0


def _workload(args: argparse.Namespace, pipeline):
    from .model import Poisson

    types = sorted({t for s in pipeline.nodes("source") for t in (pipeline.spec(s).types or [])})
    return Poisson(rate=args.rate, types=dict.fromkeys(types, 1.0) if types else {"message": 1.0})


def simulate_cmd(args: argparse.Namespace) -> int:
    """Simulate a model file under Poisson traffic (types shared equally between sources' types)."""
    from .model import Faults, Pipeline
    from .sim import simulate

    pipeline = Pipeline.from_yaml(args.model)
    out = _out_dir(args.out) if args.out else None    # before the run: a bad folder fails at once
    faults = Faults.from_yaml(args.faults) if args.faults else None
    res = simulate(pipeline, _workload(args, pipeline), duration=args.duration, seed=args.seed,
                   semantics=args.semantics, progress=True, faults=faults)
    pd.set_option("display.width", 140)
    _show(f"{pipeline.name}: {args.rate:g} messages/s for {args.duration:g} virtual s", res.summary().round(4))
    if res.faults:
        _show("incidents (one row per fault window)", res.incidents().round(3).set_index("fault"))
    if out is not None:
        for path in _report(res, out):
            print(f"wrote {path}")
    return 0


def export_cmd(args: argparse.Namespace) -> int:
    """Write the deployable config, provisioning script and Worker skeleton of a model file."""
    from . import deploy
    from .model import Pipeline

    pipeline = Pipeline.from_yaml(args.model)
    for path in deploy.write_all(pipeline, Path(args.out), overwrite=args.overwrite, format=args.format):
        print(f"wrote {path}")
    return 0


def _parse_pairs(values: list[str], what: str, allowed: str) -> list[tuple[str, str, str]]:
    """``NAME=VALUE`` (or ``NAME>=VALUE``) options as (name, op, value)."""
    from .errors import ConfigError

    out = []
    for text in values or []:
        op = ">=" if ">=" in text else "<=" if "<=" in text else "="
        name, sep, value = text.partition(op)
        if not sep or not name or not value:
            raise ConfigError(f"--{what} {text!r} is not allowed; allowed: {allowed}")
        out.append((name.strip(), op, value.strip()))
    return out


def _value(text: str):
    import yaml
    return yaml.safe_load(text)


def tune_cmd(args: argparse.Namespace) -> int:
    """Tune a model file's knobs for an SLO under Poisson traffic; print and optionally export the answer."""
    from . import deploy
    from .errors import ConfigError
    from .model import Faults, Pipeline
    from .sim import choose, tune

    pipeline = Pipeline.from_yaml(args.model)
    slo = {}
    for name, op, value in _parse_pairs(args.slo, "slo", "FIGURE=BOUND (<=) or FIGURE>=BOUND"):
        bound = _value(value)
        slo[name] = bound if op != ">=" else (">=", bound)
    knobs = {}
    for name, _, value in _parse_pairs(args.knob, "knob", "KEY=a,b,c or KEY=lo..hi"):
        if ".." in value:
            lo, _, hi = value.partition("..")
            knobs[name] = (_value(lo), _value(hi))
        else:
            knobs[name] = [_value(v) for v in value.split(",")]
    if not slo or not knobs:
        raise ConfigError("tune: give at least one --slo FIGURE=BOUND and one --knob KEY=VALUES")
    faults = Faults.from_yaml(args.faults) if args.faults else None
    result = tune(pipeline, _workload(args, pipeline), slo=slo, knobs=knobs, objective=args.objective,
                  duration=args.duration, seeds=args.seeds, faults=faults, semantics=args.semantics,
                  steps=args.steps, progress=True)
    pd.set_option("display.width", 160)
    _show("configurations (worst seed; why each was rejected)", result.table.drop(columns=["estimate"]))
    print(f"\n{result!r}")
    if result.best is None:
        print("no configuration meets the SLO; closest:")
        print(result.closest.to_string())
        return 1
    print("best: " + ", ".join(f"{k}={v!r}" for k, v in result.best.settings.items()))
    if args.out:
        for path in deploy.write_all(choose(pipeline, result), Path(args.out), overwrite=True):
            print(f"wrote {path}")
    return 0


#: JupyterLab settings the lab command starts with: no autosave, so opening or running the
#: tutorial notebooks does not rewrite the committed .ipynb files (Ctrl-S still saves).
LAB_OVERRIDES = {"@jupyterlab/docmanager-extension:plugin": {"autosave": False}}


def lab_command(notebooks: str | Path, extra: list[str], jupyter: str = "jupyter") -> list[str]:
    """The ``jupyter lab`` command line: the notebooks folder, autosave off (an app settings
    folder with :data:`LAB_OVERRIDES`), ``--allow-root`` when running as root (JupyterLab
    refuses to start otherwise), then ``extra`` options passed through as given.

    >>> cmd = lab_command("notebooks", ["--port", "8899", "--no-browser"])
    >>> cmd[:3], cmd[-3:]
    (['jupyter', 'lab', 'notebooks'], ['--port', '8899', '--no-browser'])
    >>> any(c.startswith("--LabApp.app_settings_dir=") for c in cmd)
    True
    """
    import json
    import tempfile

    settings = Path(tempfile.gettempdir()) / "cdpkit-lab-settings"
    settings.mkdir(exist_ok=True)
    (settings / "overrides.json").write_text(json.dumps(LAB_OVERRIDES, indent=2))
    command = [jupyter, "lab", str(notebooks), f"--LabApp.app_settings_dir={settings}"]
    if hasattr(os, "geteuid") and os.geteuid() == 0 and "--allow-root" not in extra:
        command.append("--allow-root")
    return command + list(extra)


def lab(args: argparse.Namespace) -> int:
    """Open JupyterLab on the notebooks; options cdpkit does not know go to JupyterLab."""
    jupyter = shutil.which("jupyter", path=str(Path(sys.executable).parent)) or shutil.which("jupyter")
    if jupyter is None:
        print("jupyter is not installed in this environment; run `bash scripts/bootstrap.sh` "
              "or `pip install cdpkit` (JupyterLab is one of its dependencies)", file=sys.stderr)
        return 2
    command = lab_command(args.notebooks, args.extra, jupyter)
    print("running:", " ".join(command))
    if args.dry_run:
        return 0
    os.execv(jupyter, command)
    return 0  # not reached


def _split_lab_options(argv: list[str]) -> tuple[list[str], list[str]]:
    """``cdpkit lab`` arguments: its own (``--notebooks DIR``, ``--dry-run``, ``-h``) and
    the rest, for ``jupyter lab``, in the order given."""
    own, rest = [], []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in ("--dry-run", "-h", "--help") or arg.startswith("--notebooks="):
            own.append(arg)
        elif arg == "--notebooks" and i + 1 < len(argv):
            own += argv[i:i + 2]
            i += 1
        else:
            rest.append(arg)
        i += 1
    return own, rest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cdpkit", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("demo", help="simulate the built-in CDP gateway and write a report folder")
    p.add_argument("--rate", type=float, default=200.0, help="requests per second (default 200)")
    p.add_argument("--duration", type=float, default=120.0, help="virtual seconds of traffic (default 120)")
    p.add_argument("--requests", type=int, default=5_000, help="requests in the handler-code run")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", default="cdpkit-report")
    p.set_defaults(func=demo)

    p = sub.add_parser("simulate", help="simulate a YAML/JSON model file")
    p.add_argument("model")
    p.add_argument("--rate", type=float, default=100.0, help="messages per second (default 100)")
    p.add_argument("--duration", type=float, default=60.0, help="virtual seconds (default 60)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--semantics", choices=["production", "local"], default="production")
    p.add_argument("--out", help="also write tables and plots to this folder")
    p.add_argument("--faults", help="a fault timeline (YAML: a list of faults, or faults: [...]); "
                                    "prints one incident row per fault window")
    p.set_defaults(func=simulate_cmd)

    p = sub.add_parser("export", help="write wrangler config, provisioning script and Worker skeleton")
    p.add_argument("model")
    p.add_argument("--out", default="deploy")
    p.add_argument("--format", choices=["toml", "jsonc"], default="toml")
    p.add_argument("--overwrite", action="store_true", help="replace files that already exist")
    p.set_defaults(func=export_cmd)

    p = sub.add_parser("tune", help="the cheapest configuration of some knobs that meets an SLO")
    p.add_argument("model")
    p.add_argument("--slo", action="append", help="FIGURE=BOUND (figure <= bound) or FIGURE>=BOUND; repeat")
    p.add_argument("--knob", action="append", help="KEY=a,b,c or KEY=lo..hi (Pipeline.set keys); repeat")
    p.add_argument("--objective", default="monthly_cost", help="figure to minimise (default monthly_cost)")
    p.add_argument("--rate", type=float, default=100.0, help="messages per second (default 100)")
    p.add_argument("--duration", type=float, default=60.0, help="virtual seconds per run (default 60)")
    p.add_argument("--seeds", type=int, default=3, help="seeds a bound must hold on (default 3)")
    p.add_argument("--steps", type=int, default=5, help="values a lo..hi knob takes (default 5)")
    p.add_argument("--semantics", choices=["production", "local"], default="production")
    p.add_argument("--faults", help="a fault timeline (YAML) every run goes through")
    p.add_argument("--out", help="write the chosen configuration (wrangler.toml, ...) to this folder")
    p.set_defaults(func=tune_cmd)

    p = sub.add_parser("lab", help="open JupyterLab on the tutorial notebooks")
    p.add_argument("--notebooks", default=str(Path(__file__).resolve().parent.parent / "notebooks"))
    p.add_argument("--dry-run", action="store_true", help="print the command instead of running it")
    p.add_argument("extra", nargs="*", help="anything else (--port 8899 --no-browser "
                   "--allow-root ...) is passed on to jupyter lab")
    p.set_defaults(func=lab)

    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["lab"]:      # options cdpkit does not know go to JupyterLab, in order
        known, passed = _split_lab_options(argv[1:])
        args = parser.parse_args(["lab", *known])
        args.extra = passed
    else:
        args = parser.parse_args(argv)
    from .errors import CdpkitError
    try:
        return args.func(args)
    except (CdpkitError, OSError) as exc:   # a bad model, argument or folder: one line, no traceback
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        print(f"error: cdpkit {args.command}: {' '.join(lines)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
