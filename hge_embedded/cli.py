"""The ``hge`` command: train, gradient, bench (see ``hge --help``)."""
from __future__ import annotations

import argparse
import json
import sys

import numpy as np


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


def cmd_train(args) -> int:
    import time
    from pathlib import Path

    import numpy as np

    from . import plots, tasks as tasks_mod, train as tr

    try:
        task_list = tasks_mod.parse_tasks(args.task, args.seed)
    except ValueError as exc:
        raise SystemExit(f"hge train: {exc}")
    out = Path(args.out) if args.out else Path("runs") / f"{args.task}-seed{args.seed}"
    out.mkdir(parents=True, exist_ok=True)
    ckpt = out / "checkpoint.json"
    states = tr.load_checkpoint(ckpt) if args.resume else {}
    device = make_device(args)
    config = {"task": args.task, "seed": args.seed, "device": args.device, "T": args.T,
              "filter": args.filter, "engine": args.engine, "batch_size": args.batch_size,
              "lr": args.lr, "max_iter": args.max_iter, "paper_mode": args.paper_mode}
    (out / "config.json").write_text(json.dumps(config, indent=1))
    results, done_tasks, t0 = [], [], time.perf_counter()
    current = {}

    def progress(trainer, E):
        if not args.quiet:
            sys.stderr.write(f"\r{trainer.task.name:18s} iteration {trainer.iteration:3d}/{trainer.max_iter} "
                             f"loss {E:8.4f}")
            sys.stderr.flush()

    def remember(trainer):
        current[trainer.task.name] = trainer.state()

    try:
        for i, task in enumerate(task_list):
            seed = args.seed * 1000 + i if len(task_list) > 1 else args.seed
            kwargs = dict(T=args.T, filter=args.filter, engine=args.engine, batch_size=args.batch_size,
                          lr=args.lr, max_iter=args.max_iter)
            if args.paper_mode:
                from .reproduce.common import paper_train_kwargs
                kwargs.update(paper_train_kwargs(task))
            state = states.get(task.name)
            result, trainer = tr.train_task(device, task, seed=seed, progress=progress, callback=remember,
                                            state=state, **kwargs)
            current[task.name] = trainer.state()
            results.append(result)
            done_tasks.append(task)
            if not args.quiet:
                status = ("found" if result.found else "NOT found") if result.found is not None \
                    else f"accuracy {result.accuracy:.3f}"
                sys.stderr.write(f"\r{task.name:18s} {status:>10s} after {result.iterations:3d} iterations, "
                                 f"loss {result.final_loss if result.final_loss is not None else float('nan'):.4f}"
                                 f"{' (constant: threshold only)' if task.constant else ''}\n")
    except BaseException as exc:
        # Ctrl-C or an error: the device goes to 0 V (its own close / measure ramps), and the
        # state as of the last finished iteration is saved for --resume.
        tr.save_checkpoint(ckpt, current)
        close = getattr(device, "close", None)
        if close:
            close()
        if isinstance(exc, KeyboardInterrupt):
            sys.stderr.write(f"\ninterrupted; checkpoint saved to {ckpt}; continue with --resume\n")
            return 130
        raise
    tr.save_checkpoint(ckpt, current)
    close = getattr(device, "close", None)
    if close:
        close()
    wall = time.perf_counter() - t0
    gates = [r for r in results if r.kind == "gate"]
    summary = {
        "task": args.task,
        "found": sum(bool(r.found) for r in gates) if gates else None,
        "total": len(gates) if gates else len(results),
        "accuracy": results[0].accuracy if len(results) == 1 else None,
        "iterations": int(sum(r.iterations for r in results)),
        "final_loss": results[-1].final_loss if len(results) == 1 else None,
        "lab_time_s": float(sum(r.lab_time_s for r in results)),
        "wall_time_s": wall,
        "per_task": [r.summary() for r in results],
        "out": str(out),
    }
    (out / "summary.json").write_text(json.dumps(_clean(summary), indent=1))
    (out / "history.json").write_text(json.dumps(_clean(
        {r.task: {"loss": r.losses, "controls_V": r.history_controls, "outputs_nA": r.outputs}
         for r in results})))
    np.savez(out / "history.npz", **{f"{i}_loss": np.array(r.losses) for i, r in enumerate(results)},
             **{f"{i}_controls": np.array(r.history_controls) for i, r in enumerate(results)})
    summary["plots"] = [str(p) for p in plots.write_all(out, results, done_tasks)]
    if args.json:
        _print_json(summary)
    else:
        if gates:
            print(f"{args.task}: {summary['found']}/{summary['total']} gates found")
        if summary["accuracy"] is not None:
            print(f"{args.task}: test balanced accuracy {summary['accuracy']:.3f}")
        print(f"{summary['iterations']} iterations; lab time {summary['lab_time_s']:.1f} s "
              f"(on the rig); wall time {wall:.1f} s; results in {out}")
    return 0


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
            # --paper-mode: the plain read-out and 2R/a with the sign from the phase (as published).
            method = {"phase": "magnitude", "crosstalk": "none"} if args.paper_mode else {"phase": args.phase}
            r = extract_gradient(device, bias, electrodes=electrodes, T=args.T, filter=args.filter,
                                 mode=args.mode, engine=args.engine, amplitudes=args.amplitude, **method)
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


def cmd_reproduce(args) -> int:
    """The paper's figures and claims next to the project's (``hge_embedded.reproduce``)."""
    from . import reproduce
    try:
        summary = reproduce.run(args.out, figures=args.figure, quick=args.quick, paper_mode=args.paper_mode,
                                seed=args.seed, progress=not args.quiet)
    except ValueError as exc:
        raise SystemExit(f"hge reproduce: {exc}")
    if args.json:
        _print_json(summary)
    else:
        print(reproduce.summary_markdown(summary), end="")
        print(f"\nwritten to {args.out} ({summary['wall_time_s']:.0f} s wall)")
    return 0


def cmd_doctor(args) -> int:
    """What the driver sees, and whether the setup file fits it."""
    from .devices.nidaq import NIDAQError, _explain, list_devices
    from .devices.nidaq_config import load_setup
    ok = True
    try:
        import nidaqmx.errors
        import nidaqmx.system
        try:
            version = nidaqmx.system.System.local().driver_version
        except nidaqmx.errors.Error as exc:
            raise _explain(exc, None, "asking for the driver version") from None
        print(f"NI-DAQmx driver {version.major_version}.{version.minor_version}.{version.update_version}")
        devices = list_devices()
    except NIDAQError as exc:
        print(f"driver: {exc}")
        devices, ok = [], False
    except Exception as exc:  # noqa: BLE001 - report, do not crash
        print(f"driver: NI-DAQmx not usable here ({type(exc).__name__}: {exc})")
        devices, ok = [], False
    for name, product in devices:
        print(f"  {name:16s} {product}")
    if args.config:
        try:
            setup = load_setup(args.config)
        except (ValueError, FileNotFoundError) as exc:
            print(f"setup: {exc}")
            return 2
        print(f"setup {args.config}: {len(setup.ao_channels)} electrodes, AI {setup.ai_channel}, "
              f"{setup.rate:g} S/s, ceiling {setup.ceiling} V")
        seen = {d[0] for d in devices}
        for module in setup.modules:
            found = module in seen
            ok &= found
            print(f"  {module:16s} {'found' if found else 'NOT FOUND by the driver'}")
    return 0 if ok else 1


def cmd_calibrate(args) -> int:
    """Measure the chain's gain and phase at the default plan's frequencies and save them."""
    from . import plans
    from .calibration import calibrate
    device = make_device(args)
    try:
        freqs = np.unique(np.concatenate([plans.plan_frequencies(n, fs=device.fs, T=args.T, filter=f)
                                          for n in range(1, device.n_electrodes + 1)
                                          for f in ("butterworth3", "boxcar")]))
        cal = calibrate(device, freqs, T=args.T)
    finally:
        close = getattr(device, "close", None)
        if close:
            close()
    out = args.out or (getattr(getattr(device, "setup", None), "calibration_file", None) or "calibration.json")
    cal.save(out)
    if args.json:
        _print_json({"file": str(out), **cal.to_dict()})
    else:
        print(f"{'f [Hz]':>8s} {'gain':>8s} {'phase [deg]':>12s}   ({cal.method})")
        for f, h in zip(cal.freqs, cal.response):
            print(f"{f:8.1f} {abs(h):8.4f} {np.degrees(np.angle(h)):12.3f}")
        print(f"saved to {out}")
    return 0


def make_device(args):
    """--device sim (default), nidaq (with --config), or package.module:factory."""
    spec = args.device
    if spec == "sim":
        import numpy as np

        from .devices.simulated import SimulatedDNPU
        seed = getattr(args, "seed", 0) if args.device_seed is None else args.device_seed
        # The device's response is fixed (device seed 0 unless --device-seed); the run's
        # seed picks its noise, so different --seed values are different runs on one device.
        return SimulatedDNPU(seed=0 if args.device_seed is None else args.device_seed,
                             noise=not args.no_noise, rng=np.random.default_rng(np.random.SeedSequence([seed, 3])))
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
    p.add_argument("--device-seed", type=int, default=None, help="seed of the simulated device's response (default 0)")
    p.add_argument("--no-noise", action="store_true", help="simulated device without noise")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="hge",
        description="Homodyne gradient extraction: train physical systems by gradient descent in materia.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    t = sub.add_parser("train", help="train a task on a device (default: the simulated DNPU)")
    t.add_argument("--task", required=True,
                   help="and, or, xor, nand, nor, xnor, ..., a truth table such as 0110, all-gates, sphere")
    add_device_args(t)
    t.add_argument("--seed", type=int, default=0, help="seeds data, initial voltages and simulated noise")
    t.add_argument("--out", help="directory for config, history, plots, checkpoint (default runs/TASK-seedN)")
    t.add_argument("--resume", action="store_true", help="continue from the checkpoint in --out")
    t.add_argument("--json", action="store_true", help="print one JSON summary object on stdout")
    t.add_argument("--quiet", action="store_true", help="no progress on stderr")
    t.add_argument("-T", type=float, default=0.1, help="HGE window per data point, s (default 0.1)")
    t.add_argument("--filter", choices=["butterworth3", "boxcar"], default="butterworth3")
    t.add_argument("--engine", choices=["c", "fixed", "float"], default="c")
    t.add_argument("--lr", type=float, help="learning rate (default: 0.02 gates, 0.015 sphere)")
    t.add_argument("--max-iter", type=int, help="iterations at most (default 300)")
    t.add_argument("--batch-size", type=int, help="data points per iteration (default all)")
    t.add_argument("--paper-mode", action="store_true",
                   help="the method as published: single random start, loss (1 - rho)/sigmoid(y_sep) with y_sep "
                        "in nA, plain read-out, 2R/a with the sign from the phase")
    t.set_defaults(func=cmd_train)

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
    g.add_argument("--paper-mode", action="store_true",
                   help="the read-out as published: no crosstalk solve, 2R/a with the sign from the phase "
                        "(overrides --phase)")
    g.add_argument("-T", type=float, default=0.1, help="window, s (default 0.1)")
    g.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    g.set_defaults(func=cmd_gradient)

    c = sub.add_parser("calibrate", help="measure the chain's gain and phase per frequency (loopback) and save it")
    add_device_args(c)
    c.add_argument("-T", type=float, default=0.1, help="window, s (default 0.1)")
    c.add_argument("--out", help="calibration file (default: the setup's [calibration] file)")
    c.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    c.set_defaults(func=cmd_calibrate)

    r = sub.add_parser("reproduce", help="the paper's figures and claims next to the project's, with verdicts")
    r.add_argument("--figure", nargs="+", action="extend",
                   help="figure IDs to run (default all): 1c 2b 2c 2d 2e 3b 3c 3d 4a 4b 4c 4d speedup")
    r.add_argument("--paper-mode", action="store_true",
                   help="the method as published (plain read-out, 2R/a, single random start, the Methods' loss)")
    r.add_argument("--quick", action="store_true", help="small Monte Carlo sizes (minutes instead of the paper's)")
    r.add_argument("--seed", type=int, default=0, help="seeds the simulated device, its noise and the data")
    r.add_argument("--out", required=True, help="directory for DIR/<ID>/ data and PNGs and DIR/summary.{md,json}")
    r.add_argument("--json", action="store_true", help="print the summary as one JSON object on stdout")
    r.add_argument("--quiet", action="store_true", help="no progress on stderr")
    r.set_defaults(func=cmd_reproduce)

    d = sub.add_parser("doctor", help="list the NI-DAQmx devices the driver sees and check a setup file")
    d.add_argument("--config", help="setup file (TOML) to check")
    d.set_defaults(func=cmd_doctor)

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
    try:
        return args.func(args)
    except Exception as exc:
        from .devices.nidaq import NIDAQError
        if isinstance(exc, (NIDAQError, FileNotFoundError)):
            sys.stderr.write(f"hge: {exc}\n")
            return 2
        raise


if __name__ == "__main__":
    sys.exit(main())
