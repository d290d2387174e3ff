"""Command line: ``cdpkit demo`` (more subcommands arrive with the model and export issues)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pandas as pd


def demo(args: argparse.Namespace) -> int:
    from .demo import build_gateway

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    pd.set_option("display.width", 140)
    pd.set_option("display.max_columns", 20)
    for semantics in args.semantics:
        rt = build_gateway(semantics=semantics, seed=args.seed, requests=args.requests)
        started = time.perf_counter()
        rt.run()
        elapsed = time.perf_counter() - started
        rt.check_conservation()
        print(f"\n== CDP gateway demo, semantics={semantics!r}: {args.requests} requests, "
              f"{len(rt.recorder)} deliveries in {rt.now:.1f} virtual s "
              f"({elapsed:.2f} s wall) ==")
        summary = rt.summary()
        print(summary.round(3).to_string())
        print("\nconservation (sent = acked + dead_lettered + dropped + in_flight):")
        print(rt.conservation().to_string())
        summary.to_csv(out / f"summary-{semantics}.csv")
        rt.trace.to_csv(out / f"trace-{semantics}.csv", index=False)
        rt.messages.to_csv(out / f"messages-{semantics}.csv", index=False)
    print(f"\nwrote {out}/summary-*.csv, trace-*.csv, messages-*.csv")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cdpkit", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("demo", help="run the built-in CDP gateway scenario and print its summary")
    p.add_argument("--semantics", nargs="+", default=["local", "production"],
                   choices=["local", "production"])
    p.add_argument("--requests", type=int, default=5_000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", default="cdpkit-report")
    p.set_defaults(func=demo)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
