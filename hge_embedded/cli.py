"""The ``hge`` command: train, gradient, bench (see ``hge --help``)."""
from __future__ import annotations

import argparse
import json
import sys


def _print_json(obj) -> None:
    json.dump(obj, sys.stdout, default=float)
    sys.stdout.write("\n")


def cmd_bench(args) -> int:
    from . import bench
    if args.what == "core":
        rows = bench.bench_core(min_total=args.min_time)
        if args.json:
            _print_json({"bench": "core", "rows": rows})
        else:
            print(bench.format_core(rows))
        return 0
    raise AssertionError(args.what)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="hge",
        description="Homodyne gradient extraction: train physical systems by gradient descent in materia.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    b = sub.add_parser("bench", help="measure speed and accuracy; prints figures")
    b.add_argument("what", choices=["core"], help="core: C lock-in vs numpy/scipy float64")
    b.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    b.add_argument("--min-time", type=float, default=0.3, help="seconds per timing round (default 0.3)")
    b.set_defaults(func=cmd_bench)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
