"""The ``hge`` command: train, gradient, bench (see ``hge --help``)."""
from __future__ import annotations

import argparse
import json
import sys


def _clean(obj):
    """JSON-safe: numpy scalars to Python, NaN and infinities to null."""
    import math

    import numpy as np
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _clean(obj.tolist())
    if isinstance(obj, (np.floating, float)):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def _print_json(obj) -> None:
    json.dump(_clean(obj), sys.stdout, allow_nan=False)
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
    if args.what == "gradient":
        r = bench.bench_gradient(points=args.points, reps=args.reps)
        if args.json:
            _print_json({"bench": "gradient", **r})
        else:
            print(bench.format_gradient(r))
        return 0
    raise AssertionError(args.what)


def cmd_gradient(args) -> int:
    import numpy as np

    from .gradient import extract_gradient, finite_difference_gradient
    device = make_device(args)
    try:
        bias = np.array([float(x) for x in args.bias.split(",")]) if args.bias else np.zeros(device.n_electrodes)
        electrodes = [int(x) for x in args.electrodes.split(",")] if args.electrodes else None
        if args.method == "fd":
            r = finite_difference_gradient(device, bias, electrodes=electrodes, T=args.T)
        else:
            r = extract_gradient(device, bias, electrodes=electrodes, T=args.T, filter=args.filter,
                                 mode=args.mode, engine=args.engine, phase=args.phase,
                                 amplitudes=args.amplitude)
    finally:
        close = getattr(device, "close", None)
        if close:
            close()
    truth = device.true_gradient(r.bias) if hasattr(device, "true_gradient") else None
    if args.json:
        _print_json({"electrodes": r.electrodes.tolist(), "gradient_nA_per_V": r.gradient.tolist(),
                     "stderr_nA_per_V": r.stderr.tolist(), "freqs_Hz": r.freqs.tolist(),
                     "current_nA": r.current, "bias_V": r.bias.tolist(), "lab_time_s": r.lab_time_s,
                     "true_gradient_nA_per_V": None if truth is None else truth[r.electrodes - 1].tolist()})
        return 0
    print(f"{'electrode':>9s} {'f [Hz]':>8s} {'dI/dV [nA/V]':>13s} {'stderr':>8s}" + ("   exact" if truth is not None else ""))
    for k, e in enumerate(r.electrodes):
        line = f"{e:9d} {r.freqs[k]:8.1f} {r.gradient[k]:13.3f} {r.stderr[k]:8.3f}"
        if truth is not None:
            line += f" {truth[e - 1]:9.3f}"
        print(line)
    print(f"output current {r.current:.3f} nA; lab time {r.lab_time_s:.3f} s")
    return 0


def make_device(args):
    """--device sim (default), nidaq (with --config), or package.module:factory."""
    spec = args.device
    if spec == "sim":
        from .devices.simulated import SimulatedDNPU
        return SimulatedDNPU(seed=args.device_seed, noise=not args.no_noise)
    if spec == "nidaq":
        if not args.config:
            raise SystemExit("hge: --device nidaq needs --config SETUP.toml")
        from .devices.nidaq import NIDAQDevice
        return NIDAQDevice.from_config(args.config)
    if ":" in spec:
        import importlib
        mod, _, name = spec.partition(":")
        try:
            factory = getattr(importlib.import_module(mod), name)
        except (ImportError, AttributeError) as exc:
            raise SystemExit(f"hge: --device {spec!r}: cannot load {name!r} from {mod!r} ({exc})")
        return factory()
    raise SystemExit(f"hge: --device must be sim, nidaq or package.module:factory, got {spec!r}")


def add_device_args(p) -> None:
    p.add_argument("--device", default="sim", help="sim (default), nidaq, or package.module:factory")
    p.add_argument("--config", help="setup file (TOML) for --device nidaq")
    p.add_argument("--device-seed", type=int, default=0, help="seed of the simulated device (default 0)")
    p.add_argument("--no-noise", action="store_true", help="simulated device without noise")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="hge",
        description="Homodyne gradient extraction: train physical systems by gradient descent in materia.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    g = sub.add_parser("gradient", help="extract dI/dV at one bias point and print it")
    add_device_args(g)
    g.add_argument("--bias", help="comma-separated volts for electrodes 1..7 (default all 0)")
    g.add_argument("--electrodes", help="comma-separated electrodes to perturb, numbered from 1 (default all)")
    g.add_argument("--method", choices=["hge", "fd"], default="hge", help="HGE (default) or finite differences")
    g.add_argument("--mode", choices=["parallel", "sequential"], default="parallel")
    g.add_argument("--filter", choices=["butterworth3", "boxcar"], default="butterworth3")
    g.add_argument("--engine", choices=["c", "fixed", "float"], default="c")
    g.add_argument("--phase", choices=["calibrated", "inphase", "magnitude"], default="calibrated")
    g.add_argument("--amplitude", type=float, default=0.008, help="perturbation amplitude, V (default 0.008)")
    g.add_argument("-T", type=float, default=0.1, help="window, s (default 0.1)")
    g.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    g.set_defaults(func=cmd_gradient)

    b = sub.add_parser("bench", help="measure speed and accuracy; prints figures")
    b.add_argument("what", choices=["core", "gradient"],
                   help="core: C lock-in vs numpy/scipy float64; gradient: accuracy, noise, timing")
    b.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    b.add_argument("--min-time", type=float, default=0.3, help="seconds per timing round (default 0.3)")
    b.add_argument("--points", type=int, default=100, help="bias points for accuracy (default 100)")
    b.add_argument("--reps", type=int, default=300, help="repetitions for noise figures (default 300)")
    b.set_defaults(func=cmd_bench)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
