"""The ``hge`` command: train, gradient, calibrate, doctor, bench (see ``hge --help``).

Errors: every mistake a user can make is one line on stderr, ``hge: error: ...``,
with exit code 2 for the command line or an input file (``UsageError``, argparse,
setup and checkpoint files) and 1 for a failure while running (driver, device, a
bug). ``--debug`` (anywhere on the line) adds the traceback. SIGINT, SIGTERM and
SIGHUP stop every command the same way (outputs to 0 V, ``train`` saves its
checkpoint) with exit code 128 + the signal's number.
"""
from __future__ import annotations

import argparse
import json
import sys
from contextlib import contextmanager

import numpy as np

from . import signals

EXIT_USAGE = 2
EXIT_FAILURE = 1


class UsageError(Exception):
    """A mistake in the command line or in a file it names: reported in one line, exit code 2."""


# The library names its parameters; on the command line the user typed the flag.
TRAIN_FLAGS = {"task": "--task", "inputs": "--inputs", "controls": "--controls", "batch_size": "--batch-size",
               "max_step": "--max-step", "max_iter": "--max-iter", "lr": "--lr"}


@contextmanager
def usage_errors(flags=None):
    """Argument checks of the library (``ValueError``/``TypeError`` naming the value) as usage errors;
    a message that starts with a parameter in ``flags`` names its command-line flag instead."""
    try:
        yield
    except (ValueError, TypeError) as exc:
        msg = str(exc)
        for param, flag in (flags or {}).items():
            if msg.startswith(param + ":") or msg.startswith(param + " "):
                msg = flag + msg[len(param):]
                break
        raise UsageError(msg) from exc


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


def _close(device) -> None:
    close = getattr(device, "close", None)
    if close:
        close()


def cmd_bench(args) -> int:
    from . import bench
    from .progress import Progress
    with Progress(0, f"bench {args.what}", enabled=not args.quiet, unit="step") as bar:
        def tick(done, total, label):
            bar.total = total
            bar.update(done - bar.n, postfix=label)
        if args.what == "core":
            rows = bench.bench_core(min_total=args.min_time, progress=tick, rounds=args.rounds,
                                    terminals=tuple(args.terminals), lengths=tuple(args.lengths))
        elif args.what == "train":
            rows = bench.bench_train(models=args.models, iterations=args.iterations, progress=tick,
                                     threads=args.sim_threads)
        else:
            r = bench.bench_gradient(points=args.points, reps=args.reps, progress=tick)
    if args.what == "core":
        if args.json:
            _print_json({"bench": "core", "device": "none (the C core on this machine)", "rows": rows})
        else:
            print("device: none (the C core and numpy on this machine)")
            print(bench.format_core(rows, args.rounds))
        return 0
    if args.what == "train":
        device = (f"simulated DNPU (device seed 0; {' and '.join(args.models)} model{'s' if len(args.models) > 1 else ''}"
                  ", each in a fresh process)")
        if args.json:
            _print_json({"bench": "train", "device": device, "rows": rows})
        else:
            print(f"device: {device}")
            print(bench.format_train(rows))
        return 0
    device = "simulated DNPU (device seeds 0 and 1, built by the bench)"
    if args.json:
        _print_json({"bench": "gradient", "device": device, **r})
    else:
        print(f"device: {device}")
        print(bench.format_gradient(r))
    return 0


def _run_config(args, task_list) -> dict:
    """Every option that changes a training run's result (stored in, and compared with, its checkpoint)."""
    config = {"task": args.task, "seed": args.seed, "device": args.device,
              "config": None if args.config is None else str(_abspath(args.config)),
              "device_seed": args.device_seed, "no_noise": args.no_noise, "sim_model": args.sim_model, "T": args.T,
              "filter": args.filter,
              "engine": args.engine, "phase": args.phase, "batch_size": args.batch_size, "lr": args.lr,
              "max_iter": args.max_iter, "inputs": args.inputs, "controls": args.controls,
              "trainer": args.trainer, "init": args.init, "paper_mode": args.paper_mode, "max_step": args.max_step,
              # The setup file's content, not only its name: an edited iv.gain, iv.sign, limits or delay
              # would continue the run on another chain.
              "config_sha256": None if args.config is None else _sha256(args.config)}
    if args.restart_on_stall:  # only when given: a checkpoint from before the option stays resumable
        config["restart_on_stall"] = True
    if args.start != "full":  # absent: the whole-range draw of every run before session 5, whose
        config["start"] = args.start  # checkpoints resume with --start full (and are refused without it)
    if getattr(args, "calibration", None) is not None:   # only when given: older checkpoints stay resumable
        config["calibration_sha256"] = _sha256(args.calibration)
    # absent: the fixed lr of every run before session 7 (and of --fixed-lr, --paper-mode), whose checkpoints resume
    # with --fixed-lr (and are refused without it); a namespace built without the option (a caller's own) is such a run
    if not getattr(args, "fixed_lr", True):
        config["fixed_lr"] = False
    return config


def _config_defaults(args, task_list) -> dict:
    """What the options a run leaves at their defaults stand for, where it is fixed by the arguments:
    the simulator's device seed 0, the tasks' own input electrodes when they all share them, and
    ``--start full`` for a config without "start" (a run from before the option, or --start full)."""
    out = {"start": "full"}   # not stored (_run_config): the whole-range draw of runs before --start
    out["fixed_lr"] = True    # not stored: the fixed lr of runs before a 2-cycle could halve it
    if args.device == "sim":
        out["device_seed"] = 0
    ins = {tuple(t.input_electrodes) for t in task_list}
    if len(ins) == 1:
        out["inputs"] = list(next(iter(ins)))
    return out


def _sha256(path) -> str | None:
    """The file's SHA-256, or None when it cannot be read (``make_device`` says why, by name)."""
    import hashlib
    try:
        return hashlib.sha256(_abspath(path).read_bytes()).hexdigest()
    except OSError:
        return None


def _abspath(path):
    from pathlib import Path
    return Path(path).expanduser().resolve()


def _halved(r) -> str:
    """`` (lr halved at iteration(s) 19, 40: a 2-cycle; now 0.005)`` for a result whose lr a 2-cycle halved."""
    if not getattr(r, "lr_halved_at", None):
        return ""
    return (f" (lr halved at iteration{'s' if len(r.lr_halved_at) > 1 else ''} "
            f"{', '.join(str(i) for i in r.lr_halved_at)}: a 2-cycle; now {r.lr:g})")


def cmd_train(args) -> int:
    import time
    from pathlib import Path

    from . import checkpoint as ck, plots, tasks as tasks_mod, train as tr
    from .progress import Progress

    with usage_errors(TRAIN_FLAGS):
        task_list = tasks_mod.parse_tasks(args.task, args.seed)
    # The start draw: middle half by default; --paper-mode draws from the whole range (the paper's one
    # random start; the middle half is the project's choice) and refuses --start middle.
    if args.paper_mode and args.start == "middle":
        raise UsageError("--paper-mode draws its one random start from the whole range, as published; "
                         "--start middle (the project's draw) contradicts it")
    args.start = "full" if args.paper_mode else (args.start or tr.DEFAULT_START)
    # The paper keeps lr fixed; so do --paper-mode and the firmware trainer (which runs none of the host's checks).
    args.fixed_lr = bool(args.fixed_lr or args.paper_mode or args.trainer == "firmware")
    out = Path(args.out) if args.out else Path("runs") / f"{args.task}-seed{args.seed}"
    ckpt = out / ck.CHECKPOINT
    config = _run_config(args, task_list)
    # 1. The run directory, read only: refuse before anything is built or written.
    snapshot = None
    if args.resume:
        try:
            snapshot = ck.load(ckpt, config, _config_defaults(args, task_list))
        except FileNotFoundError as exc:
            raise UsageError(str(exc)) from None
        except ck.CheckpointError as exc:
            raise UsageError(str(exc)) from None
    elif ckpt.exists() or (out / "config.json").exists():
        raise UsageError(f"--out {out} already holds a run; add --resume to continue it "
                         "(same options), or choose another --out")
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file, not a directory; choose another --out")
    # 2. Device, electrode mapping and trainers: every argument checked before the run directory exists.
    device = make_device(args)
    name = describe_device(args, device)
    try:
        with usage_errors(TRAIN_FLAGS):
            n = len(task_list)
            task_list = [tasks_mod.map_electrodes(t, device.n_electrodes, inputs=args.inputs, controls=args.controls)
                         for t in task_list]
            kwargs = dict(T=args.T, filter=args.filter, engine=args.engine, phase=args.phase,
                          batch_size=args.batch_size,
                          lr=args.lr, max_iter=args.max_iter, init=args.init, max_step=args.max_step,
                          restart_on_stall=args.restart_on_stall, start=args.start, lr_backoff=not args.fixed_lr)
            if args.trainer == "firmware" and args.calibration is not None:
                raise UsageError(f"--calibration {args.calibration}: the firmware trainer (--trainer firmware) "
                                 "measures its own calibration constants; drop one of them")
            use_calibration_file(args, device)
            if args.trainer == "firmware":
                _check_firmware_args(args)
                trainers = None
            elif args.paper_mode:
                # The method as published: single start, the Methods' loss, plain read-out, 2R/a.
                if args.init != "single":
                    raise ValueError(f"--paper-mode starts from one random setting, as the paper; --init {args.init} "
                                     "contradicts it")
                if args.restart_on_stall:
                    raise ValueError("--paper-mode trains from one random setting, as the paper; --restart-on-stall "
                                     "(new starts after a stall) contradicts it")
                from .reproduce.common import paper_train_kwargs
                trainers = [tr.Trainer(device, t, seed=tr.task_seed(args.seed, i, n),
                                       **{**kwargs, **paper_train_kwargs(t)}) for i, t in enumerate(task_list)]
            else:
                trainers = [tr.Trainer(device, t, seed=tr.task_seed(args.seed, i, n), **kwargs)
                            for i, t in enumerate(task_list)]
            if snapshot is not None:
                try:
                    tr.check_snapshot(snapshot, trainers)
                except ValueError as exc:
                    raise ValueError(f"--resume: {ckpt} cannot be resumed ({exc}); it was left as it is") from None
    except BaseException:
        _close(device)
        raise
    # 3. The run: locked directory, atomic checkpoints, one path for every way of stopping.
    created = not out.exists()
    try:
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(f"--out {out}: cannot create the run directory ({exc.strerror or exc}); "
                             "nothing was measured") from None
        lock = ck.RunLock(out)
    except BaseException:
        _close(device)
        if created and out.exists() and not any(out.iterdir()):
            out.rmdir()
        raise
    saved = {"snapshot": snapshot, "written": snapshot, "iters": 0, "time": time.monotonic()}
    every_iter, every_s = args.checkpoint_every, args.checkpoint_seconds
    if trainers is None:
        total = sum(0 if t.constant else (t.max_iter if args.max_iter is None else args.max_iter) for t in task_list)
    else:
        total = sum(t.max_iter if not t.task.constant else 0 for t in trainers)
    bar = Progress(total, f"train {args.task} on {name}", enabled=not args.quiet)
    done_before = len(snapshot["done"]) if snapshot else 0
    if snapshot:
        # The finished tasks count what they ran (a task that ended early leaves the rest of its --max-iter
        # out of the total), the task in progress its iterations so far.
        for d, t in zip(snapshot["done"], trainers[:done_before]):
            if not t.task.constant:
                r = tr.TrainResult.from_dict(d)
                bar.shrink(t.max_iter - r.iterations, postfix=task_end_reason(r, t.max_iter, t.stop_loss))
                bar.update(r.iterations)
        bar.update((snapshot["current"] or {}).get("iteration", 0))

    def save_latest():
        if saved["snapshot"] is not None and saved["snapshot"] is not saved["written"]:
            tr.save_checkpoint(ckpt, saved["snapshot"])
            saved["written"] = saved["snapshot"]
        saved["iters"], saved["time"] = 0, time.monotonic()

    def on_snapshot(snap, boundary):
        saved["snapshot"] = snap
        saved["iters"] += 1
        if boundary or saved["iters"] >= every_iter or time.monotonic() - saved["time"] >= every_s:
            save_latest()

    def progress(trainer, E):
        bar.update(1, postfix=f"{trainer.task.name} iteration {trainer.iteration} loss {E:.4f}")

    t0 = time.perf_counter()
    try:
        if not snapshot:
            # A new run starts with a checkpoint of its start, so --resume works from any moment.
            ck.write_json_atomic(out / "config.json", config)
            saved["snapshot"] = {"config": config, "done": [], "device": tr.device_state(device), "current": None}
            save_latest()
        # A task that ends before its --max-iter leaves its unused iterations out of the total (the bar
        # ends at what ran, not at the plan), and the bar says why it ended.
        def on_snap(snap, boundary):
            on_snapshot(snap, boundary)
            if boundary:
                r, t = tr.TrainResult.from_dict(snap["done"][-1]), trainers[len(snap["done"]) - 1]
                if not t.task.constant:
                    bar.shrink(t.max_iter - r.iterations, postfix=task_end_reason(r, t.max_iter, t.stop_loss))
                if not args.quiet:
                    status = ("found" if r.found else "NOT found") if r.found is not None \
                        else f"accuracy {r.accuracy:.3f}"
                    bar.write(f"{r.task:18s} {status:>10s} after {r.iterations:3d} iterations, loss "
                              f"{r.final_loss if r.final_loss is not None else float('nan'):.4f}"
                              f"{' (constant: threshold only)' if t.task.constant else ''}"
                              f"{f' ({len(r.restarts)} restart(s))' if r.restarts else ''}"
                              f"{_halved(r)}"
                              f"{' (STOPPED: ' + r.stopped + ')' if r.stopped else ''}"
                              f"{' [' + r.failure + ']' if r.failure else ''}"
                              f"{' (' + r.diagnosis + ')' if r.diagnosis else ''}")
        if trainers is None:
            results = _train_firmware(args, device, task_list, progress, bar)
        else:
            results = tr.run_tasks(trainers, snapshot=snapshot, config=config, progress=progress,
                                   on_snapshot=on_snap)
    except BaseException as exc:
        # Any way of stopping (an error, Ctrl-C, SIGTERM, SIGHUP): the last consistent snapshot
        # is saved (never one older or smaller than what is on disk), the device goes to 0 V.
        bar.close()
        try:
            save_latest()
        finally:
            try:
                _close(device)
            finally:
                lock.release()
        if isinstance(exc, KeyboardInterrupt) or signals.received():
            # (A signal that lands inside an import or a class body can reach us wrapped in
            # another exception, e.g. RuntimeError from __set_name__ on Python < 3.12.)
            how = exc.name if isinstance(exc, signals.Interrupted) else \
                signals.Interrupted(signals.first() or 2).name
            if trainers is None:  # --trainer firmware: its state lives on the device, nothing to resume
                sys.stderr.write(f"hge: stopped by {how}; the firmware trainer keeps no checkpoint (its state is "
                                 f"on the device), so this run cannot be resumed: start it again with another "
                                 f"--out than {out}\n")
            else:
                sys.stderr.write(f"hge: stopped by {how}; checkpoint in {ckpt}; continue with the same "
                                 "command and --resume\n")
            exc.reported = True
        raise
    bar.close()
    try:
        save_latest()
        _close(device)
        wall = time.perf_counter() - t0
        gates = [r for r in results if r.kind == "gate"]
        on_rig = args.device == "nidaq"
        summary = {
            "task": args.task,
            "device": name,
            "found": sum(bool(r.found) for r in gates) if gates else None,
            "total": len(gates) if gates else len(results),
            "accuracy": results[0].accuracy if len(results) == 1 else None,
            "iterations": int(sum(r.iterations for r in results)),
            "final_loss": results[-1].final_loss if len(results) == 1 else None,
            "initial_loss": results[-1].initial_loss if len(results) == 1 else None,
            "initial_accuracy": results[-1].initial_accuracy if len(results) == 1 else None,
            "lab_time_s": float(sum(r.lab_time_s for r in results)),
            "wall_time_s": wall,
            "per_task": [r.summary() for r in results],
            # Tasks that ended early (their output reached the rail): each is recorded in its own
            # per_task entry ("stopped"), and the run went on with the next task.
            "stopped": [r.task for r in results if r.stopped],
            "out": str(out),
        }
        ck.write_json_atomic(out / "summary.json", _clean(summary))
        (out / "history.json").write_text(json.dumps(_clean(
            {r.task: {"loss": r.losses, "controls_V": r.history_controls, "outputs_nA": r.outputs}
             for r in results})))
        np.savez(out / "history.npz", **{f"{i}_loss": np.array(r.losses) for i, r in enumerate(results)},
                 **{f"{i}_controls": np.array(r.history_controls) for i, r in enumerate(results)})
        summary["plots"] = [] if args.no_plots else [str(p) for p in plots.write_all(out, results, task_list)]
    finally:
        lock.release()
    if args.json:
        _print_json(summary)
    else:
        print(f"device: {name}")
        if gates:
            print(f"{args.task}: {summary['found']}/{summary['total']} gates found")
            halved = [r for r in gates if r.lr_halved_at]
            if halved:   # the step was too large for a region (train_checks.CycleCheck): say where it was halved
                print(f"  lr halved on a 2-cycle in {len(halved)} gate(s): "
                      + "; ".join(f"{r.task} at {', '.join(str(i) for i in r.lr_halved_at)}" for r in halved)
                      + " (--fixed-lr keeps it)")
            for r in gates:   # why each gate not found ended where it did (train_checks.failure_kind)
                if not r.found and (r.failure or r.diagnosis):
                    print(f"  {r.task}: not found, {r.failure or 'unknown'}"
                          f"{'; ' + r.diagnosis if r.diagnosis else ''}")
        for r in results:
            if r.kind != "gate" and r.diagnosis:
                print(f"  {r.task}: {r.diagnosis}")
        if summary["accuracy"] is not None:
            print(f"{args.task}: test balanced accuracy {summary['accuracy']:.3f}")
        where = "on the rig" if on_rig else "what the rig would take"
        print(f"{summary['iterations']} iterations; lab time {summary['lab_time_s']:.1f} s "
              f"({where}); wall time {wall:.1f} s{' (this process: the lab time counts the whole run)' if args.resume else ''}; "
              f"results in {out}")
    return 0


def _check_firmware_args(args) -> None:
    """``--trainer firmware`` runs the C trainer's own loop: refuse the host trainer's options."""
    host_only = {"--resume": args.resume, "--batch-size": args.batch_size is not None,
                 "--filter": args.filter != "butterworth3", "--engine": args.engine != "c",
                 "--phase": args.phase != "calibrated", "--paper-mode": args.paper_mode,
                 "--max-step": args.max_step is not None, "--restart-on-stall": args.restart_on_stall}
    given = [k for k, v in host_only.items() if v]
    if given:
        raise ValueError(f"--trainer firmware: {', '.join(given)} belong(s) to the host trainer (the firmware "
                         "trainer uses integrate-and-dump, its own fixed-point lock-in and calibration, and keeps "
                         "its state on the device: no checkpoints)")


def task_end_reason(r, max_iter: int, stop_loss: float) -> str:
    """Why a task's iterations ended, for the progress bar's last words: its ``stopped`` note's
    headline (a trust check, the rail), the stop loss, or ``--max-iter``."""
    if r.stopped:
        why = "stopped: " + r.stopped.split(":")[0]
    elif r.iterations < max_iter:
        why = f"loss {r.final_loss:.4f} below the stop loss {stop_loss:g}" if r.final_loss is not None \
            else "stop loss reached"
    else:
        why = "--max-iter reached"
    return f"{r.task} ended at iteration {r.iterations} of {max_iter}: {why}"


def _train_firmware(args, device, task_list, progress, bar) -> list:
    """Each task through the C on-device trainer (``hge_embedded.firmware_trainer``)."""
    from . import train as tr
    from .firmware_trainer import train_task_firmware
    results = []
    for i, task in enumerate(task_list):
        # The firmware reports every loss it computes, also the last one measured after its final update
        # (its iteration count does not advance there): the bar counts iterations, as for the host trainer.
        last = [0]

        def counted(ns, E, last=last):
            if ns.iteration > last[0]:
                last[0] = ns.iteration
                progress(ns, E)
        r = train_task_firmware(device, task, seed=tr.task_seed(args.seed, i, len(task_list)), progress=counted,
                                T=args.T, lr=args.lr, max_iter=args.max_iter, init=args.init, start=args.start)
        if not task.constant:
            planned = task.max_iter if args.max_iter is None else args.max_iter
            bar.shrink(planned - r.iterations, postfix=task_end_reason(r, planned, task.stop_loss))
        if not args.quiet:
            status = ("found" if r.found else "NOT found") if r.found is not None else f"accuracy {r.accuracy:.3f}"
            bar.write(f"{r.task:18s} {status:>10s} after {r.iterations:3d} iterations (firmware trainer)")
        results.append(r)
    return results


def cmd_gradient(args) -> int:
    import numpy as np

    from .devices import check_volts
    from .gradient import extract_gradient, finite_difference_gradient
    device = make_device(args)
    name = describe_device(args, device)
    try:
        with usage_errors():
            bias = np.zeros(device.n_electrodes) if args.bias is None else np.asarray(args.bias, float)
            if bias.size != device.n_electrodes:
                raise ValueError(f"--bias needs {device.n_electrodes} voltages (one per electrode of {name}), "
                                 f"got {bias.size}: {args.bias}")
            check_volts(bias[:, None], device.limits, name="--bias")
            electrodes = args.electrodes
            from .electrodes import to_index
            idx = np.arange(device.n_electrodes) if electrodes is None else to_index(electrodes, device.n_electrodes)
            if args.method == "fd":
                # Finite differences have a step (--amplitude) and a read-out filter, nothing else:
                # the lock-in's options would be silently ignored.
                lockin_only = {"--mode": args.mode != "parallel", "--engine": args.engine != "c",
                               "--phase": args.phase != "calibrated", "--paper-mode": args.paper_mode,
                               "--calibration": args.calibration is not None}
                given = [k for k, val in lockin_only.items() if val]
                if given:
                    raise ValueError(f"--method fd: {', '.join(given)} belong(s) to the lock-in (--method hge); "
                                     "finite differences take --amplitude (the step), --filter, -T and --electrodes")
            # What the arguments already show, named by flag (extract_gradient would refuse it too,
            # but as a failure of the run, naming its own arguments). FD steps by the same amount.
            from .gradient import check_amplitudes
            check_amplitudes(args.amplitude, getattr(device, "dac_lsb", None), name="--amplitude")
            swing = np.zeros(device.n_electrodes)
            swing[idx] = args.amplitude
            for sign in (-1, 1):
                check_volts((bias + sign * swing)[:, None], device.limits,
                            name=f"--bias {'-' if sign < 0 else '+'} --amplitude {args.amplitude:g} V")
            if args.method == "hge":
                # The window and the frequency plan -T and --filter give (extract_gradient's own
                # defaults), refused here by flag instead of as "n: cannot fit ..." with exit code 1.
                from . import analysis, plans
                from .gradient import window_samples
                try:
                    n = window_samples(float(device.fs), args.T, args.filter)
                    analysis.lockin_weights(float(device.fs), args.T, args.filter, n,
                                            quantized=args.engine != "float")
                    plans.plan_frequencies(idx.size, fs=float(device.fs), T=args.T, filter=args.filter)
                except ValueError as exc:
                    raise ValueError(f"-T {args.T:g} s with --filter {args.filter} on {idx.size} electrodes: "
                                     f"{exc}") from None
                use_calibration_file(args, device)
        if args.method == "fd":
            r = finite_difference_gradient(device, bias, electrodes=electrodes, step=args.amplitude, T=args.T,
                                           filter=args.filter, saturation=args.saturation)
        else:
            # --paper-mode: the plain read-out and 2R/a with the sign from the phase (as published).
            method = {"phase": "magnitude", "crosstalk": "none"} if args.paper_mode else {"phase": args.phase}
            r = extract_gradient(device, bias, electrodes=electrodes, T=args.T, filter=args.filter,
                                 mode=args.mode, engine=args.engine, amplitudes=args.amplitude,
                                 saturation=args.saturation, **method)
    finally:
        _close(device)
    truth = device.true_gradient(r.bias) if hasattr(device, "true_gradient") else None
    # Finite differences perturb no frequency: its result's freqs are NaN. The text shows '-' in that column
    # and --json null per electrode (as for every non-finite number; the list keeps its length), "method" says why.
    if args.json:
        _print_json({"device": name, "method": args.method, "electrodes": r.electrodes.tolist(),
                     "gradient_nA_per_V": r.gradient.tolist(),
                     "stderr_nA_per_V": r.stderr.tolist(),
                     "freqs_Hz": r.freqs.tolist(),
                     "current_nA": r.current, "bias_V": r.bias.tolist(), "lab_time_s": r.lab_time_s,
                     "calibration_time_s": r.calibration_time_s, "saturated_samples": r.saturated_samples,
                     "stderr_reliable": r.stderr_reliable, "warnings": r.warnings,
                     "true_gradient_nA_per_V": None if truth is None else truth[r.electrodes - 1].tolist()})
        return 0
    print(f"device: {name}")
    # A stderr the result itself does not trust (non-white noise under a white-noise model, saturation)
    # is marked in the table, not only in a warning on stderr that a reader of the table may not see.
    se_head = "stderr" if r.stderr_reliable else "stderr*"
    print(f"{'electrode':>9s} {'f [Hz]':>8s} {'dI/dV [nA/V]':>13s} {se_head:>8s}" + ("   exact" if truth is not None else ""))
    for k, e in enumerate(r.electrodes):
        f_txt = f"{r.freqs[k]:8.1f}" if args.method == "hge" else f"{'-':>8s}"   # fd: no frequency
        line = f"{e:9d} {f_txt} {r.gradient[k]:13.3f} {r.stderr[k]:8.3f}"
        if truth is not None:
            line += f" {truth[e - 1]:9.3f}"
        print(line)
    cal_txt = f" (of which calibration {r.calibration_time_s:.3f} s)" if r.calibration_time_s else ""
    print(f"output current {r.current:.3f} nA; lab time {r.lab_time_s:.3f} s{cal_txt}")
    if not r.stderr_reliable:
        print("* stderr not reliable (likely low): see the warnings")
    for w in r.warnings:
        sys.stderr.write(f"hge: warning: {w}\n")
    return 0


def cmd_reproduce(args) -> int:
    """The paper's figures and claims next to the project's (``hge_embedded.reproduce``)."""
    from . import reproduce
    with usage_errors():
        reproduce.check_args(args.figure, args.seed)
    summary = reproduce.run(args.out, figures=args.figure, quick=args.quick, paper_mode=args.paper_mode,
                            seed=args.seed, progress=not args.quiet)
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
    report = {"driver": None, "driver_error": None, "devices": [], "setup": None, "setup_file": args.config,
              "modules": {}, "ok": True}
    setup = None
    if args.config:
        try:
            setup = load_setup(args.config)
        except (ValueError, FileNotFoundError) as exc:
            raise UsageError(str(exc)) from None
    try:
        import nidaqmx.errors
        import nidaqmx.system
        try:
            version = nidaqmx.system.System.local().driver_version
        except nidaqmx.errors.Error as exc:
            raise _explain(exc, setup, "asking for the driver version") from None
        report["driver"] = f"{version.major_version}.{version.minor_version}.{version.update_version}"
        report["devices"] = [list(d) for d in list_devices()]
    except NIDAQError as exc:
        report["driver_error"], report["ok"] = str(exc), False
    except Exception as exc:  # noqa: BLE001 - report, do not crash
        report["driver_error"] = f"NI-DAQmx not usable here ({type(exc).__name__}: {exc})"
        report["ok"] = False
    if setup is not None:
        report["setup"] = {"electrodes": len(setup.ao_channels), "ao_channels": setup.ao_channels,
                           "ai_channel": setup.ai_channel, "rate": setup.rate, "ceiling": setup.ceiling,
                           "trigger": setup.trigger}
        seen = {d[0] for d in report["devices"]}
        for module in setup.modules:
            report["modules"][module] = module in seen
            report["ok"] &= module in seen
    if args.json:
        _print_json(report)
        return 0 if report["ok"] else EXIT_FAILURE
    if report["driver"]:
        print(f"NI-DAQmx driver {report['driver']}")
    else:
        print(f"driver: {report['driver_error']}")
    for dev_name, product in report["devices"]:
        print(f"  {dev_name:16s} {product}")
    if setup is not None:
        print(f"setup {args.config}: {len(setup.ao_channels)} electrodes, AI {setup.ai_channel}, "
              f"{setup.rate:g} S/s, ceiling {setup.ceiling} V")
        for module, found in report["modules"].items():
            print(f"  {module:16s} {'found' if found else 'NOT FOUND by the driver'}")
    return 0 if report["ok"] else EXIT_FAILURE


def cmd_calibrate(args) -> int:
    """Measure the chain's gain and phase at the default plans' frequencies and save them.

    Loopback when the device has one; otherwise the phase method, perturbing
    the device at ``--bias`` with ``--amplitude`` (see ``calibration``)."""
    from . import plans
    from .calibration import calibrate, stamp_calibration_file
    device = make_device(args)
    name = describe_device(args, device)
    try:
        with usage_errors():
            bias = None if args.bias is None else np.asarray(args.bias, float)
            if bias is not None and bias.size != device.n_electrodes:
                raise ValueError(f"--bias needs {device.n_electrodes} voltages (one per electrode of {name}), "
                                 f"got {bias.size}: {args.bias}")
            freqs = np.unique(np.concatenate([plans.plan_frequencies(n, fs=device.fs, T=args.T, filter=f)
                                              for n in range(1, device.n_electrodes + 1)
                                              for f in ("butterworth3", "boxcar")]))
            if args.amplitude is not None:
                # The loopback path of calibrate() takes any amplitude: below a few DAC steps
                # its gains come out 0.1-0.4 instead of ~1, and every calibrated gradient
                # 3-10x too large. The same floor as extract_gradient's.
                from .gradient import check_amplitudes
                check_amplitudes(args.amplitude, getattr(device, "dac_lsb", None), name="--amplitude")
            out = _writable_file(args.out or (getattr(getattr(device, "setup", None), "calibration_file", None)
                                              or "calibration.json"), "--out")
        cal = calibrate(device, freqs, T=args.T, bias=bias, amplitude=args.amplitude, method=args.method)
    finally:
        _close(device)
    cal.save(out)
    # Every file says which chain and window it belongs to (--calibration and the NI setup check it).
    stamp_calibration_file(out, _chain_stamp(args, device))
    if args.json:
        _print_json({"device": name, "file": str(out), **cal.to_dict()})
    else:
        print(f"device: {name}")
        print(f"{'f [Hz]':>8s} {'gain':>8s} {'phase [deg]':>12s} {'+-':>6s}   ({cal.method})")
        sd = cal.phase_sd if cal.phase_sd is not None else np.full(cal.freqs.size, np.nan)
        for f, h, e in zip(cal.freqs, cal.response, sd):
            print(f"{f:8.1f} {abs(h):8.4f} {np.degrees(np.angle(h)):12.3f} {np.degrees(e):6.2f}")
        extra = f"; delay {cal.delay_s * 1e3:.3f} ms" if cal.delay_s is not None else ""
        print(f"lab time {cal.lab_time_s:.2f} s ({cal.windows} windows){extra}; saved to {out}")
    # Who reads the file: the NI setup that names it, and --calibration; hge gradient/train measure their own
    # otherwise (each new process, as lab time).
    setup_file = getattr(getattr(device, "setup", None), "calibration_file", None)
    if setup_file is None or _abspath(setup_file) != _abspath(out):
        where = " (or name it in the setup file: [calibration] file = ...)" if args.device == "nidaq" else ""
        sys.stderr.write(f"hge: note: to use it, pass --calibration {out} to hge gradient and hge train on this "
                         f"device with -T {args.T:g}{where}; from Python pass "
                         f"calibration=Calibration.load({str(out)!r})\n")
    return 0



# -- a saved chain calibration, reused: hge calibrate writes it, --calibration FILE reads it ----------------
def _chain_stamp(args, device) -> dict:
    """What a saved calibration depends on, for ``hge calibrate`` to write into the file as ``chain`` and
    ``--calibration`` to compare: the device's own ``chain_identity()`` when it has one (the NI rig: rate,
    delay, AI settings, IV sign), else its rate and electrode count, with the simulator's chain
    (``chain_bandwidth``, ``chain_delay``: the same for every device seed) or the ``--device`` it came from;
    and the window ``-T``, which fixes the plan frequencies it covers."""
    if hasattr(device, "chain_identity"):
        stamp = dict(device.chain_identity())
    else:
        stamp = {"fs_Hz": float(device.fs), "n_electrodes": int(device.n_electrodes)}
        if args.device == "sim":
            stamp.update({"device": "sim", "chain_bandwidth_Hz": getattr(device, "chain_bandwidth", None),
                          "chain_delay_samples": getattr(device, "chain_delay", None)})
        else:
            stamp["device"] = args.device
    stamp["T_s"] = float(args.T)
    return stamp


def use_calibration_file(args, device) -> None:
    """``--calibration FILE``: load it, check it was measured on this chain (its ``chain`` stamp against
    ``_chain_stamp``), and give it to the device as ``device.calibration``, which the calibrated estimator
    then uses instead of measuring one. A usage error, naming the flag, when it cannot be used: a lab rig
    is calibrated once and reused, and a calibration of another chain would project every derivative on the
    wrong axis without anything else looking wrong."""
    path = getattr(args, "calibration", None)
    if path is None:
        return
    from .calibration import Calibration
    if args.phase != "calibrated" or getattr(args, "paper_mode", False):
        used = "--paper-mode" if getattr(args, "paper_mode", False) else f"--phase {args.phase}"
        raise UsageError(f"--calibration {path}: {used} does not use a chain calibration (only --phase "
                         "calibrated does); drop one of them")
    try:
        with open(path) as fh:
            raw = json.load(fh)
        cal = Calibration.from_dict(raw)
    except (OSError, ValueError, TypeError, AttributeError) as exc:
        raise UsageError(f"--calibration {path}: not a calibration file ({exc}); write one with hge calibrate "
                         "--out FILE") from None
    saved, now = raw.get("chain"), _chain_stamp(args, device)
    if not isinstance(saved, dict):
        sys.stderr.write(f"hge: note: --calibration {path} does not say which chain it was measured on (not "
                         f"written by hge calibrate): used as it is, unchecked\n")
    else:
        diff = [f"{k} {saved.get(k)!r} then, {v!r} now" for k, v in now.items() if saved.get(k) != v]
        if diff:
            raise UsageError(f"--calibration {path} was measured on another chain or window ({'; '.join(diff)}): "
                             f"its phases would project every derivative on the wrong axis. Calibrate this one "
                             f"again with the same options (hge calibrate ... -T {args.T:g} --out {path})")
    device.calibration = cal


def _writable_file(path, flag: str):
    """``path`` if a file can be written there, else ``ValueError`` naming ``flag``: checked
    before a measurement, so lab time is never spent on a result that cannot be saved."""
    import os
    from pathlib import Path
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise ValueError(f"{flag} {path} is a directory; give a file name such as {path / 'calibration.json'}")
    if not parent.is_dir():
        raise ValueError(f"{flag} {path}: the directory {parent} does not exist; nothing was measured")
    if not os.access(parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise ValueError(f"{flag} {path} cannot be written; nothing was measured")
    return path


def make_device(args):
    """--device sim (default), nidaq (with --config), or package.module:factory."""
    spec = args.device
    if args.config is not None and spec != "nidaq":
        raise UsageError(f"--config is the NI-DAQmx setup file and needs --device nidaq (got --device {spec}); "
                         "nothing was run")
    if spec != "sim" and (args.device_seed is not None or args.no_noise or args.sim_model != "surrogate"):
        raise UsageError(f"--device-seed, --no-noise and --sim-model apply to the simulator (--device sim), "
                         f"not --device {spec}")
    if spec == "sim":
        import numpy as np

        from .devices.simulated import SimulatedDNPU
        seed = getattr(args, "seed", 0)
        # The device's response is fixed (device seed 0 unless --device-seed); the run's
        # seed picks its noise, so different --seed values are different runs on one device.
        return SimulatedDNPU(seed=0 if args.device_seed is None else args.device_seed, model=args.sim_model,
                             noise=not args.no_noise, rng=np.random.default_rng(np.random.SeedSequence([seed, 3])))
    if spec == "nidaq":
        if not args.config:
            raise UsageError("--device nidaq needs --config SETUP.toml")
        from .devices.nidaq import NIDAQDevice
        from .devices.nidaq_config import load_setup
        try:
            setup = load_setup(args.config)
        except (ValueError, FileNotFoundError) as exc:
            raise UsageError(str(exc)) from None
        return NIDAQDevice(setup)
    if ":" in spec:
        import importlib
        mod, _, attr = spec.partition(":")
        try:
            factory = getattr(importlib.import_module(mod), attr)
        except (ImportError, AttributeError, ValueError) as exc:
            raise UsageError(f"--device {spec!r}: cannot load {attr!r} from {mod!r} ({exc})") from None
        try:
            device = factory()
        except Exception as exc:  # noqa: BLE001 - the user's code: say whose call failed
            raise RuntimeError(f"--device {spec!r}: {spec.partition(':')[2]}() raised "
                               f"{type(exc).__name__}: {exc}") from exc
        missing = [a for a in ("fs", "n_electrodes", "limits", "measure") if not hasattr(device, a)]
        if missing:
            _close(device)
            raise UsageError(f"--device {spec!r}: the object it made lacks {', '.join(missing)} "
                             "(a device has fs, n_electrodes, limits and measure(volts))")
        try:
            check_device_contract(device)
        except ValueError as exc:
            _close(device)
            raise UsageError(f"--device {spec!r}: {exc}") from None
        return device
    raise UsageError(f"--device must be sim, nidaq or package.module:factory, got {spec!r}")


def check_device_contract(device) -> None:
    """Refuse (``ValueError``) a device whose ``fs``, ``n_electrodes`` or ``limits`` break the contract.

    docs/design.md section 3: ``fs`` a finite rate > 0 (Hz), ``n_electrodes`` a whole number
    >= 1, ``limits`` a float numpy array ``(n_electrodes, 2)`` of finite ``[low, high]``
    (every path indexes it as an array), ``measure`` callable. Checked once, where the
    device enters, so that a mistake is named here instead of surfacing as an unrelated
    error deep inside a measurement (``list indices must be integers``, or a shape error
    blamed on ``--bias``).
    """
    from .devices import check_limits
    fs, n, lim = device.fs, device.n_electrodes, device.limits
    if isinstance(fs, bool) or not isinstance(fs, (int, float, np.integer, np.floating)) \
            or not np.isfinite(fs) or fs <= 0:
        raise ValueError(f"fs must be a finite sample rate > 0 (Hz), got {fs!r}")
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n_electrodes must be a whole number >= 1 (an int), got {n!r}")
    if not isinstance(lim, np.ndarray):
        raise ValueError(f"limits must be a numpy array of shape ({n}, 2) (V), got a {type(lim).__name__}")
    check_limits(lim, int(n), name="limits")
    if not callable(device.measure):
        raise ValueError("measure must be a method measure(volts) -> current")


def describe_device(args, device) -> str:
    """The device that ran, in words every text output carries."""
    if args.device == "sim":
        seed = 0 if args.device_seed is None else args.device_seed
        noise = "no noise" if args.no_noise else f"noise seed {getattr(args, 'seed', 0)}"
        return f"simulated DNPU ({args.sim_model} model, device seed {seed}, {noise})"
    if args.device == "nidaq":
        return f"NI-DAQmx rig (setup {args.config}, {device.n_electrodes} electrodes)"
    return f"{args.device} ({device.n_electrodes} electrodes)"


# -- argument types: a bad value is a one-line usage error naming the flag ------------------
def _number(text: str) -> float:
    try:
        x = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not np.isfinite(x):
        raise argparse.ArgumentTypeError(f"must be finite, got {text!r}")
    return x


def positive_float(text: str) -> float:
    x = _number(text)
    if x <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text!r}")
    return x


def _whole(text: str, lowest: int) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if n < lowest:
        raise argparse.ArgumentTypeError(f"must be >= {lowest}, got {text!r}")
    return n


def nonnegative_int(text: str) -> int:
    return _whole(text, 0)


def positive_int(text: str) -> int:
    return _whole(text, 1)


def volt_list(text: str) -> list:
    """``-0.3,0.1,...`` -> list of finite floats."""
    try:
        return [_number(x) for x in text.split(",")]
    except argparse.ArgumentTypeError as exc:
        raise argparse.ArgumentTypeError(f"comma-separated volts, {exc}") from None


def electrode_list(text: str) -> list:
    """``1,6`` -> [1, 6]: electrode numbers from 1, no repeats (the device's count is checked later)."""
    try:
        e = [int(x) for x in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"comma-separated electrode numbers (from 1), got {text!r}") from None
    if min(e) < 1 or len(set(e)) != len(e):
        raise argparse.ArgumentTypeError(f"electrodes are numbered from 1 and must not repeat, got {text!r}")
    return e


class Parser(argparse.ArgumentParser):
    """argparse, with errors as one line (``hge: error: ...``) instead of usage + message."""

    def error(self, message):
        raise UsageError(f"{message} (see {self.prog} --help)")


def add_device_args(p) -> None:
    p.add_argument("--device", default="sim", help="sim (default), nidaq, or package.module:factory")
    p.add_argument("--config", help="setup file (TOML) for --device nidaq (an error with any other device)")
    p.add_argument("--device-seed", type=nonnegative_int, default=None,
                   help="seed of the simulated device's response (default 0)")
    p.add_argument("--no-noise", action="store_true", help="simulated device without noise")
    p.add_argument("--sim-model", choices=["surrogate", "hopping"], default="surrogate",
                   help="simulated device's response: surrogate (default; the paper's training results hold on "
                        "it) or hopping (a passive, Kirchhoff-exact hopping network; training on it does not yet "
                        "reach the paper's results)")


def _path_arg(text: str) -> str:
    """A path that is not empty (an empty --out used to fall back to the default directory silently)."""
    if not text.strip():
        raise argparse.ArgumentTypeError(f"must be a path, got {text!r}")
    return text


def _init_arg(text: str) -> str:
    from .train import parse_init
    try:
        parse_init(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc))
    return text


def build_parser() -> argparse.ArgumentParser:
    from . import __version__
    p = Parser(
        prog="hge",
        description="Homodyne gradient extraction: train physical systems by gradient descent in materia.",
        epilog="Errors are one line on stderr (exit 2: the command line or a file it names; 1: a failure "
               "while running); --debug shows the traceback. SIGINT/SIGTERM/SIGHUP: outputs to 0 V, "
               "exit 128 + signal.")
    p.add_argument("--version", action="version", version=f"hge {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    t = sub.add_parser("train", help="train a task on a device (default: the simulated DNPU)")
    t.add_argument("--task", required=True,
                   help="and, or, xor, nand, nor, xnor, ..., a truth table such as 0110, all-gates, sphere")
    add_device_args(t)
    t.add_argument("--seed", type=nonnegative_int, default=0, help="seeds data, initial voltages and simulated noise")
    t.add_argument("--out", type=_path_arg, help="directory for config, history, plots, checkpoint (default runs/TASK-seedN)")
    t.add_argument("--resume", action="store_true",
                   help="continue the run in --out (refused, files untouched, if any option differs)")
    t.add_argument("--checkpoint-every", type=positive_int, default=10, metavar="N",
                   help="write the checkpoint every N iterations (default 10), and at every task's end")
    t.add_argument("--checkpoint-seconds", type=positive_float, default=60.0, metavar="S",
                   help="... and at least every S seconds (default 60)")
    t.add_argument("--json", action="store_true", help="print one JSON summary object on stdout")
    t.add_argument("--quiet", action="store_true", help="no progress on stderr")
    t.add_argument("--no-plots", action="store_true", help="skip the PNG figures (JSON and NPZ are still written)")
    t.add_argument("-T", type=positive_float, default=0.1, help="HGE window per data point, s (default 0.1)")
    t.add_argument("--filter", choices=["butterworth3", "boxcar"], default="butterworth3")
    t.add_argument("--engine", choices=["c", "fixed", "float"], default="c")
    t.add_argument("--phase", choices=["calibrated", "inphase", "magnitude"], default="calibrated",
                   help="estimator: calibrated chain phase (default; calibrates once if the device has no "
                        "calibration), inphase 2X/a (no calibration), magnitude 2R/a")
    t.add_argument("--calibration", type=_path_arg, metavar="FILE",
                   help="a chain calibration written by hge calibrate on this device and -T (checked; default: "
                        "measure one per run, or the NI setup's); part of the run's options on --resume")
    t.add_argument("--lr", type=positive_float, help="learning rate (default: 0.02 gates, 0.015 sphere)")
    t.add_argument("--max-step", type=positive_float, metavar="V",
                   help="largest control step per iteration, V (the step lr * dE/dV is scaled down to it; "
                        "default: none, as the paper). 0.02 helps where the loss curves faster than 2/lr "
                        "(the hopping model)")
    t.add_argument("--fixed-lr", action="store_true",
                   help="keep the learning rate for the whole task, as the paper (default: halve it, at most 3 "
                        "times per task, when the steps reverse while the loss swings: a 2-cycle, the step too "
                        "large for the region; --json per_task gives lr and lr_halved_at; not with --batch-size). "
                        "--paper-mode and --trainer firmware keep it fixed")
    t.add_argument("--restart-on-stall", action="store_true",
                   help="replace a start that has stalled (best loss not 1%% lower over 30 iterations) by a new "
                        "random start, within the same --max-iter budget, and end at the lowest loss measured "
                        "(default: off, one start as the paper; on the simulator every single-start gate failure "
                        "is a stall with controls pinned at the control range's bound)")
    t.add_argument("--max-iter", type=nonnegative_int,
                   help="gradient measurements per task at most (default 300; 0: none, only the start is measured)")
    t.add_argument("--batch-size", type=positive_int,
                   help="data points per iteration (default all; at least 2, and each batch holds both classes)")
    t.add_argument("--paper-mode", action="store_true",
                   help="the method as published: single random start, loss (1 - rho)/sigmoid(y_sep) with y_sep "
                        "in nA, plain read-out, 2R/a with the sign from the phase (overrides --phase)")
    t.add_argument("--inputs", type=electrode_list,
                   help="electrodes for the task's inputs (default: the paper's, gates 1,6, sphere 2,4,6)")
    t.add_argument("--controls", type=electrode_list,
                   help="control electrodes (default: every electrode that is not an input)")
    t.add_argument("--trainer", choices=["host", "firmware"], default="host",
                   help="host: the Python trainer (default); firmware: the whole loop in the C on-device trainer "
                        "(integrate-and-dump; no checkpoints; --filter, --engine, --phase, --batch-size and "
                        "--resume are the host trainer's)")
    t.add_argument("--init", type=_init_arg, default="single", metavar="single|best-of-N",
                   help="starting controls: one random setting (default, as the paper) or the best of N "
                        "random settings by loss")
    t.add_argument("--start", choices=["middle", "full"], default=None,
                   help="where a random start is drawn: each control uniformly in the middle half of its range "
                        "(default: starts near the bounds end pinned on them far more often) or in its whole range "
                        "(full: the draw before this option existed, and --paper-mode's, which refuses middle; a "
                        "run checkpointed then resumes with --start full)")
    t.set_defaults(func=cmd_train)

    g = sub.add_parser("gradient", help="extract dI/dV at one bias point and print it")
    add_device_args(g)
    g.add_argument("--bias", type=volt_list, help="comma-separated volts for electrodes 1..7 (default all 0)")
    g.add_argument("--electrodes", type=electrode_list,
                   help="comma-separated electrodes to perturb, numbered from 1 (default all)")
    g.add_argument("--method", choices=["hge", "fd"], default="hge",
                   help="HGE (default) or finite differences (no frequencies: '-' in the f column, null in --json)")
    g.add_argument("--mode", choices=["parallel", "sequential"], default="parallel")
    g.add_argument("--filter", choices=["butterworth3", "boxcar"], default="butterworth3")
    g.add_argument("--engine", choices=["c", "fixed", "float"], default="c")
    g.add_argument("--phase", choices=["calibrated", "inphase", "magnitude"], default="calibrated")
    g.add_argument("--calibration", type=_path_arg, metavar="FILE",
                   help="a chain calibration written by hge calibrate on this device and -T (checked; default: "
                        "measure one, or the NI setup's)")
    g.add_argument("--amplitude", type=positive_float, default=0.008,
                   help="perturbation amplitude, V (default 0.008); with --method fd the step")
    g.add_argument("--paper-mode", action="store_true",
                   help="the read-out as published: no crosstalk solve, 2R/a with the sign from the phase "
                        "(overrides --phase)")
    g.add_argument("-T", type=positive_float, default=0.1, help="window, s (default 0.1)")
    g.add_argument("--saturation", choices=["raise", "count"], default="raise",
                   help="a window on the rail: raise (default) or count it in the result")
    g.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    g.set_defaults(func=cmd_gradient)

    c = sub.add_parser("calibrate", help="measure the chain's gain and phase per frequency (loopback, or the "
                                         "phase method on the device) and save it; reuse it with "
                                         "gradient/train --calibration FILE")
    add_device_args(c)
    c.add_argument("-T", type=positive_float, default=0.1, help="window, s (default 0.1)")
    c.add_argument("--out", type=_path_arg, help="calibration file (default: the setup's [calibration] file; calibration.json in the current directory for a device without a setup file)")
    c.add_argument("--bias", type=volt_list,
                   help="phase method: comma-separated volts per electrode (default 0 V, or mid-limits)")
    c.add_argument("--amplitude", type=positive_float, default=None,
                   help="perturbation amplitude, V (default 0.05 loopback, 0.008 phase method)")
    c.add_argument("--method", choices=["auto", "loopback", "phase"], default="auto",
                   help="auto (default): loopback if the device has one, else the phase method")
    c.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    c.set_defaults(func=cmd_calibrate)

    r = sub.add_parser("reproduce", help="the paper's figures and claims next to the project's, with verdicts")
    r.add_argument("--figure", nargs="+", action="extend",
                   help="figure IDs to run (default all): 1c 2b 2c 2d 2e 3b 3c 3d 4a 4b 4c 4d speedup")
    r.add_argument("--paper-mode", action="store_true",
                   help="the method as published (plain read-out, 2R/a, single random start, the Methods' loss)")
    r.add_argument("--quick", action="store_true", help="small Monte Carlo sizes: under a minute instead of tens of minutes at the paper's sizes")
    r.add_argument("--seed", type=nonnegative_int, default=0,
                   help="seeds the simulated device, its noise and the data")
    r.add_argument("--out", type=_path_arg, required=True, help="directory for DIR/<ID>/ data and PNGs and DIR/summary.{md,json}")
    r.add_argument("--json", action="store_true", help="print the summary as one JSON object on stdout")
    r.add_argument("--quiet", action="store_true", help="no progress on stderr")
    r.set_defaults(func=cmd_reproduce)

    d = sub.add_parser("doctor", help="list the NI-DAQmx devices the driver sees and check a setup file")
    d.add_argument("--config", help="setup file (TOML) to check")
    d.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    d.set_defaults(func=cmd_doctor)

    b = sub.add_parser("bench", help="measure speed and accuracy; prints figures")
    b.add_argument("what", choices=["core", "gradient", "train"],
                   help="core: C lock-in vs numpy/scipy float64; gradient: accuracy, noise, timing; train: the "
                        "sphere run's lab time / wall time and peak memory, extract_gradient warm, per simulator model")
    b.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    b.add_argument("--quiet", action="store_true", help="no progress on stderr")
    b.add_argument("--min-time", type=positive_float, default=0.3, help="seconds per timing round (default 0.3)")
    b.add_argument("--rounds", type=positive_int, default=3,
                   help="core: timing rounds, the best one counts (default 3; more on a busy machine)")
    b.add_argument("--terminals", type=positive_int, nargs="+", default=[1, 7, 64, 256], metavar="M",
                   help="core: terminal counts to measure (default 1 7 64 256)")
    b.add_argument("--lengths", type=positive_int, nargs="+", default=[1000, 100_000], metavar="N",
                   help="core: window lengths in samples (default 1000 100000)")
    b.add_argument("--points", type=positive_int, default=100, help="bias points for accuracy (default 100)")
    b.add_argument("--reps", type=positive_int, default=300, help="repetitions for noise figures (default 300)")
    b.add_argument("--iterations", type=positive_int, default=5,
                   help="train: sphere iterations measured per model, the full run extrapolated (default 5)")
    b.add_argument("--models", nargs="+", choices=["surrogate", "hopping"], default=["surrogate", "hopping"],
                   help="train: simulator models to run (default both)")
    b.add_argument("--sim-threads", type=positive_int, default=None,
                   help="train: the simulator's evaluation threads (default: the available CPUs, at most 4)")
    b.set_defaults(func=cmd_bench)

    # Every command (also those added later) takes --debug.
    for parser in (p, *sub.choices.values()):
        parser.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                            help="on an error, show the Python traceback")
    return p


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    if not isinstance(exc, (UsageError, ValueError, TypeError, OSError, RuntimeError)) or not text:
        text = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    cause = exc.__cause__ or exc.__context__
    from .devices.nidaq import ZeroingError
    if isinstance(cause, ZeroingError) and not isinstance(exc, ZeroingError):
        text += f"; and {' '.join(str(cause).split())}"
    return text


def _traceback(debug: bool) -> None:
    """With --debug, the Python traceback of the exception being handled, on stderr."""
    if debug:
        import traceback
        traceback.print_exc()


def main(argv=None) -> int:
    previous = signals.install()
    debug = "--debug" in (sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser().parse_args(argv)
        return args.func(args)
    except signals.Interrupted as exc:
        if not getattr(exc, "reported", False):
            sys.stderr.write(f"hge: stopped by {exc.name}\n")
        _traceback(debug)
        return exc.exit_code
    except KeyboardInterrupt:
        return 128 + 2
    except UsageError as exc:
        _traceback(debug)
        sys.stderr.write(f"hge: error: {_one_line(exc)}\n")
        return EXIT_USAGE
    except Exception as exc:  # noqa: BLE001 - one line for the user, the traceback with --debug
        if signals.received():  # a stop signal that arrived wrapped in another exception
            stop = signals.Interrupted(signals.first())
            if not getattr(exc, "reported", False):
                sys.stderr.write(f"hge: stopped by {stop.name}\n")
            _traceback(debug)
            return stop.exit_code
        _traceback(debug)
        sys.stderr.write(f"hge: error: {_one_line(exc)}" + ("" if debug else " (--debug shows the traceback)") + "\n")
        return EXIT_FAILURE
    finally:
        if argv is None and signals.received():
            signals.ignore_rest()  # the program is ending on the first signal; a second must not kill it
        else:
            signals.restore(previous)


if __name__ == "__main__":
    sys.exit(main())
