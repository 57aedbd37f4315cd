"""Benchmarks behind ``hge bench``: figures are printed, never asserted.

``core``: nanoseconds per terminal-sample (one terminal's I and Q, per input sample)
of the C core against the strongest float64 numpy + scipy implementation of the
same demodulation we know, in one run, side by side (see :class:`NumpyLockin`).
Both sides get the same advantage: references computed once per plan and window
length, outside the timed call (the C core's :class:`hge_embedded.core.References`,
numpy's sin/cos table).
"""
from __future__ import annotations

import ctypes
import os
import struct
import sys
import time

import numpy as np
import scipy.signal as sig

from . import core, design


def _best_time(fn, min_total: float = 0.3, repeats: int = 3, clock=time.perf_counter) -> float:
    """Best per-call time over ``repeats`` rounds, each round at least ``min_total`` s of
    ``clock`` (wall: ``time.perf_counter``; CPU time of all threads: ``time.process_time``)."""
    fn()  # warm-up (also builds cached filter designs)
    return min(_best_time_round(fn, min_total, clock) for _ in range(repeats))


def _best_times_interleaved(fns, min_total: float = 0.3, repeats: int = 3, clock=time.perf_counter) -> list:
    """``_best_time`` of each of ``fns`` with their rounds interleaved (round 1 of each,
    then round 2 of each, ...): a change of load during the run then hits every function
    alike, so their ratio (the bench's headline) stays fair on a shared machine."""
    for fn in fns:
        fn()  # warm-up
    best = [np.inf] * len(fns)
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            best[i] = min(best[i], _best_time_round(fn, min_total, clock))
    return best


def _best_time_round(fn, min_total, clock):
    """One round: calls of ``fn`` until ``min_total`` s of ``clock`` have passed; time per call."""
    calls, start = 0, clock()
    while True:
        fn()
        calls += 1
        elapsed = clock() - start
        if elapsed >= min_total:
            return elapsed / calls


class InstructionCounter:
    """User-space instructions retired by this thread (Linux ``perf_event_open``).

    ``available`` is False where the kernel or the virtual machine offers no hardware
    counter (then the bench prints "n/a" rather than a guess).
    """

    _PERF_TYPE_HARDWARE, _PERF_COUNT_HW_INSTRUCTIONS = 0, 1
    _SYSCALL = {"x86_64": 298, "aarch64": 241}

    def __init__(self):
        self.fd = -1
        nr = self._SYSCALL.get(os.uname().machine)
        if nr is None or not sys.platform.startswith("linux"):
            return
        attr = bytearray(128)
        # type, size, config, sample_period, sample_type, read_format, flags
        # (flags: disabled | exclude_kernel | exclude_hv)
        struct.pack_into("IIQQQQQ", attr, 0, self._PERF_TYPE_HARDWARE, 128, self._PERF_COUNT_HW_INSTRUCTIONS,
                         0, 0, 0, (1 << 0) | (1 << 5) | (1 << 6))
        libc = ctypes.CDLL(None, use_errno=True)
        buf = ctypes.create_string_buffer(bytes(attr), 128)
        self.fd = libc.syscall(nr, buf, 0, -1, -1, 0)
        self._ioctl = libc.ioctl

    @property
    def available(self) -> bool:
        return self.fd >= 0

    def count(self, fn) -> int | None:
        """Instructions retired while ``fn()`` runs on this thread, or None."""
        if not self.available:
            return None
        enable, disable, reset = 0x2400, 0x2401, 0x2403
        self._ioctl(self.fd, reset, 0)
        self._ioctl(self.fd, enable, 0)
        fn()
        self._ioctl(self.fd, disable, 0)
        return int.from_bytes(os.read(self.fd, 8), "little")


class NumpyLockin:
    """The fair float64 baseline: the same demodulation as the C core, in numpy + scipy.

    Built once per plan and window length (like :class:`hge_embedded.core.References`):
    the sin and cos references of every terminal, shape (2M, N). Per call: DC removal
    (the window's mean), then for ``"butterworth3"`` the pre-sum of 8 mixer products as
    one ``einsum`` over all channels (faster here than multiply-then-sum or a batched
    matmul, measured), one 2-D ``sosfilt`` over all 2M channels at fs/8 and the last
    output; for ``"boxcar"`` one BLAS matrix-vector product (the integrate-and-dump
    sums). Returns float64 ``(2M,)``.
    """

    def __init__(self, fs: float, freqs, n: int, filter: str, sos=None, gain: float = 1.0,  # noqa: A002
                 decimation: int = 8):
        arg = (2 * np.pi / fs) * np.outer(np.asarray(freqs, float), np.arange(n))
        self.refs = np.concatenate([np.sin(arg), np.cos(arg)])
        self.filter, self.sos, self.gain, self.n = filter, sos, gain, n
        self.groups = n // decimation
        self.decimation = decimation
        self.refs3 = self.refs[:, :self.groups * decimation].reshape(-1, self.groups, decimation)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        xc = x - x.mean()
        if self.filter == "boxcar":
            return self.refs @ xc / self.n
        u = np.einsum("cgq,gq->cg", self.refs3, xc[:self.groups * self.decimation].reshape(self.groups, -1))
        return sig.sosfilt(self.sos, u, axis=1)[:, -1] / (self.gain * self.decimation)


def numpy_lockin(x, fs, freqs, filter, sos=None, gain=1.0, decimation=8):  # noqa: A002
    """One-shot :class:`NumpyLockin` (references built inside the call)."""
    return NumpyLockin(fs, freqs, np.asarray(x).size, filter, sos, gain, decimation)(np.asarray(x, float))


def bench_core(fs: float = 10_000.0, terminals=(1, 7, 64, 256), lengths=(1000, 100_000),
               filters=("butterworth3", "boxcar"), seed: int = 0, min_total: float = 0.3, progress=None,
               rounds: int = 3):
    """Measure the C core and the fair numpy baseline for every (filter, M, N).

    Per row, ns per terminal-sample, each the best of ``rounds`` timing rounds (the C
    and numpy rounds of a ratio interleaved):
    ``c_ns`` (wall clock; host C path through a :class:`hge_embedded.core.LockinPlan`:
    AVX2 when present, cached references in the layout ``c_cache``, ``c_threads``
    threads over terminals (the calling thread and the persistent worker pool): one per
    CPU above ``core.THREAD_MIN_WORK`` terminal-samples), ``c_portable_ns`` (wall; the
    portable C99 path the firmware runs, NCO per sample, one thread), ``numpy_ns`` (wall;
    :class:`NumpyLockin`), ``ratio`` = numpy_ns / c_ns (the headline: one run of each on
    this machine); and in CPU time (``time.process_time``, all threads of the process,
    so other processes on a shared machine disturb it less) ``c_cpu_1t_ns`` (the same
    C path on one thread), ``numpy_cpu_ns`` and ``ratio_cpu_1t`` = numpy_cpu_ns /
    c_cpu_1t_ns; ``c_instructions`` per terminal-sample where a hardware counter exists
    (else None).
    ``progress``: None prints one line per row on stderr; a callable is called as
    ``progress(done, total, label)`` before every row and once at the end (the CLI's
    progress bar); anything else with ``write`` receives the lines.
    """
    for m in terminals:
        if not 1 <= int(m) <= core.MAX_TERMINALS:
            raise ValueError(f"terminals: each must be in 1..{core.MAX_TERMINALS}, got {m}")
    for n in lengths:
        if int(n) < 8:
            raise ValueError(f"lengths: each must be >= 8 (one Butterworth group), got {n}")
    todo = [(n, m, f) for n in lengths for m in terminals for f in filters
            if not (f == "boxcar" and n > core.BOXCAR_MAX_SAMPLES)]
    done = 0

    def report(label, line=None):
        if callable(progress):
            progress(done, len(todo), label)
        elif line is not None:
            print(line, file=sys.stderr if progress is None else progress, flush=True)

    counter = InstructionCounter()
    rng = np.random.default_rng(seed)
    rows = []
    for n in lengths:
        x = np.round(rng.normal(0, 1e6, n)).astype(np.int32)
        xf = x.astype(float)
        T = n / fs
        for m in terminals:
            freqs = np.linspace(20.0, 2000.0, m) if m > 1 else np.array([200.0])
            steps = design.freq_to_step(freqs, fs)
            for filt in filters:
                if filt == "boxcar" and n > core.BOXCAR_MAX_SAMPLES:
                    continue
                if filt == "butterworth3":
                    lf = design.lockin_filter(fs, T, n)
                    baseline = NumpyLockin(fs, freqs, n, filt, lf.sos, lf.gain_float)
                    coeffs = lf.coeffs
                else:
                    baseline = NumpyLockin(fs, freqs, n, filt)
                    coeffs = None
                report(f"{filt} M={m} N={n}")
                plan = core.LockinPlan(steps, None, n, filter=filt, coeffs=coeffs)
                plan_1t = core.LockinPlan(steps, None, n, filter=filt, coeffs=coeffs, threads=1, cache=False)
                plan_1t.references = plan.references  # same cache, one thread (instruction count)
                portable = core.LockinPlan(steps, None, n, filter=filt, coeffs=coeffs, isa="portable")

                def c_call(p=plan):
                    p(x, dc=core.mean_code(x))

                t_c, t_np = _best_times_interleaved([c_call, lambda: baseline(xf)], min_total, rounds)
                t_portable = _best_time(lambda: c_call(portable), min_total, rounds)
                cpu_c1, cpu_np = _best_times_interleaved([lambda: c_call(plan_1t), lambda: baseline(xf)], min_total,
                                                         rounds, time.process_time)
                insn = counter.count(lambda: c_call(plan_1t))
                row = dict(filter=filt, terminals=m, samples=n, c_threads=int(plan._opts.threads),
                           c_cache=None if plan.references is None else plan.references.layout,
                           c_ns=1e9 * t_c / (m * n), c_portable_ns=1e9 * t_portable / (m * n),
                           numpy_ns=1e9 * t_np / (m * n), ratio=t_np / t_c,
                           c_cpu_1t_ns=1e9 * cpu_c1 / (m * n), numpy_cpu_ns=1e9 * cpu_np / (m * n),
                           ratio_cpu_1t=cpu_np / cpu_c1,
                           c_instructions=None if insn is None else insn / (m * n),
                           realtime_factor_c=n / fs / t_c)
                rows.append(row)
                done += 1
                report(f"{filt} M={m} N={n}", f"bench core: {filt} M={m} N={n}: C {row['c_ns']:.3f} ns "
                       f"({row['c_threads']} thr), numpy {row['numpy_ns']:.3f} ns, {row['ratio']:.1f}x; CPU time, "
                       f"C 1 thread {row['c_cpu_1t_ns']:.3f} ns, numpy {row['numpy_cpu_ns']:.3f} ns, "
                       f"{row['ratio_cpu_1t']:.1f}x")
                del plan, plan_1t, portable
    report("done")
    return rows


def format_core(rows, rounds: int = 3) -> str:
    lines = [f"ns per terminal-sample, best of {rounds} rounds. Wall clock: C = host path (cached references, "
             "AVX2 if present, thr threads), portable = the firmware's C99 path, ratio = numpy / C. "
             "CPU time (process_time): C on 1 thread, numpy, cpu ratio = numpy / C 1 thread",
             f"{'filter':13s} {'M':>4s} {'N':>7s} {'C [ns]':>8s} {'thr':>3s} {'portable':>9s} {'numpy [ns]':>10s} "
             f"{'ratio':>6s} {'C 1t cpu':>9s} {'numpy cpu':>9s} {'cpu ratio':>9s} {'C insn':>7s} {'x real time':>12s}"]
    for r in rows:
        insn = "n/a" if r["c_instructions"] is None else f"{r['c_instructions']:.1f}"
        lines.append(f"{r['filter']:13s} {r['terminals']:4d} {r['samples']:7d} {r['c_ns']:8.3f} {r['c_threads']:3d} "
                     f"{r['c_portable_ns']:9.3f} {r['numpy_ns']:10.3f} {r['ratio']:6.1f} {r['c_cpu_1t_ns']:9.3f} "
                     f"{r['numpy_cpu_ns']:9.3f} {r['ratio_cpu_1t']:9.1f} {insn:>7s} {r['realtime_factor_c']:12.0f}")
    return "\n".join(lines)


def _accuracy(device, filt, points, rng, crosstalk="solve"):
    from . import analysis
    from .gradient import extract_gradient
    raw, cub = [], []
    for _ in range(points):
        r = extract_gradient(device, rng.uniform(-0.7, 0.5, 7), filter=filt, crosstalk=crosstalk)
        g = device.true_gradient(r.bias)
        floor = np.maximum(np.abs(g), 0.1 * np.sqrt(np.mean(g**2)))
        c = analysis.cubic_bias(device.true_gradient, r.bias, np.full(7, 0.008))
        raw.append(np.abs(r.gradient - g) / floor)
        cub.append(np.abs(c) / floor)
    raw, cub = np.array(raw), np.array(cub)
    return dict(max=float(raw.max()), p99=float(np.percentile(raw, 99)), cubic_max=float(cub.max()))


def bench_gradient(points: int = 100, reps: int = 300, seed: int = 0, progress=None):
    """Accuracy, error terms, noise, spacing, HGE vs finite differences and timing (issue figures).

    ``progress(done, total, label)``, if given, is called after every stage (12 stages).
    """
    stage = [0]

    def step(label):
        stage[0] += 1
        if progress:
            progress(stage[0], 12, label)
    from . import analysis, plans
    from .demod import demodulate
    from .devices.noise import NoiseModel
    from .devices.simulated import SimulatedDNPU
    from .gradient import extract_gradient, finite_difference_gradient, perturbation_waveform
    out = {}
    fs, T, a = 10_000.0, 0.1, 0.008
    # 1. Noise-free accuracy on `points` random bias points.
    out["points"] = points
    acc = {}
    for label, kw in (("ideal DAC", dict(dac_bits=None)), ("16-bit DAC", {})):
        for filt, ct in (("boxcar", "solve"), ("butterworth3", "solve"), ("butterworth3", "none")):
            d = SimulatedDNPU(seed=seed, noise=False, **kw)
            acc[f"{label}, {filt}, crosstalk={ct}"] = _accuracy(d, filt, points, np.random.default_rng(123), ct)
            step(f"accuracy {label} {filt}")
    out["noise_free_accuracy"] = acc
    # 2. Error terms of the paper's read-out at the default plan.
    f = plans.plan_frequencies(7)
    out["error_terms"] = dict(
        settling_gain_at_T=analysis.settling_gain(fs, T),
        leak_at_40Hz=float(analysis.leak_gain(40.0, fs, T, "butterworth3")[0]),
        leak_at_2f_min=float(analysis.leak_gain(2 * f.min(), fs, T, "butterworth3")[0]),
        dc_leak_per_nA=float(analysis.dc_leak(1.0, a, f.min(), fs, T, "butterworth3")[0]),
    )
    # 3. Noise: variance and stderr against the model, white-noise bound.
    b = np.array([-0.3, 0.1, -0.5, 0.2, 0.0, -0.4, 0.3])
    noise = {}
    for filt in ("boxcar", "butterworth3"):
        d = SimulatedDNPU(seed=seed, dac_bits=None)
        rs = [extract_gradient(d, b, filter=filt) for _ in range(reps)]
        g = np.array([r.gradient for r in rs])
        model = analysis.hge_variance_psd(d.noise_model.psd, a, rs[0].freqs, fs, T, filt)
        noise[filt] = dict(var_over_model=(g.var(axis=0, ddof=1) / model).round(3).tolist(),
                           stderr_over_spread=(np.mean([r.stderr for r in rs], axis=0)
                                               / g.std(axis=0, ddof=1)).round(3).tolist())
        step(f"noise {filt}")
    S = 1e-4
    for filt in ("boxcar", "butterworth3"):
        d = SimulatedDNPU(seed=seed + 1, noise=NoiseModel(white=S, pink_level=0.0), dac_bits=None)
        g = np.array([extract_gradient(d, b, filter=filt).gradient for _ in range(reps)])
        noise[filt]["white_var_over_bound"] = float(np.mean(g.var(axis=0, ddof=1)) / analysis.white_noise_bound(S, a, T))
        step(f"white noise {filt}")
    out["noise"] = noise
    # 4. HGE vs finite differences under the paper's 1/f noise.
    d = SimulatedDNPU(seed=seed, dac_bits=None)
    hge_runs = [extract_gradient(d, b) for _ in range(reps)]
    fd_runs = [finite_difference_gradient(d, b) for _ in range(reps)]
    hge = np.array([r.gradient for r in hge_runs])
    fd = np.array([r.gradient for r in fd_runs])
    out["fd_over_hge_variance"] = (fd.var(axis=0, ddof=1) / hge.var(axis=0, ddof=1)).round(1).tolist()
    # Windows only: the first HGE run also paid for the one-time chain calibration.
    out["fd_lab_time_over_hge"] = fd_runs[0].lab_time_s / (hge_runs[0].lab_time_s - hge_runs[0].calibration_time_s)
    step("HGE vs finite differences")
    # 5. Wall time of one parallel 7-electrode gradient, split.
    d = SimulatedDNPU(seed=seed)
    extract_gradient(d, b)
    n = int(T * fs)
    volts = perturbation_waveform(b, np.arange(7), np.full(7, a), f, n, fs)
    # measure() evaluates the model by its window expansion, not by the exact model.current, so the
    # model alone cannot be subtracted from it (that gave a negative "chain" part): the measurement
    # (model, chain and noise) is one figure.
    t_meas = _best_time(lambda: d.measure(volts), 0.2)
    y = d.measure(volts)
    t_core = _best_time(lambda: demodulate(y, fs, f, full_scale=d.full_scale), 0.2)
    t_all = _best_time(lambda: extract_gradient(d, b), 0.2)
    out["wall_time_ms"] = dict(measure=t_meas * 1e3, core_demodulate=t_core * 1e3,
                               host_overhead=(t_all - t_meas - t_core) * 1e3, total=t_all * 1e3)
    step("wall time")
    return out


def format_gradient(r) -> str:
    lines = [f"noise-free accuracy, {r['points']} random bias points (relative error, floor 10 % of RMS gradient):"]
    for k, v in r["noise_free_accuracy"].items():
        lines.append(f"  {k:42s} max {v['max']:.4f}  p99 {v['p99']:.4f}  (cubic device term alone: max {v['cubic_max']:.4f})")
    e = r["error_terms"]
    lines.append(f"error terms: settling gain at T {e['settling_gain_at_T']:.4f}; leak at 40 Hz {e['leak_at_40Hz']:.4f}; "
                 f"2f leak {e['leak_at_2f_min']:.2e}; DC leak {e['dc_leak_per_nA']:.3f} nA/V per nA")
    for filt, v in r["noise"].items():
        lines.append(f"noise {filt:12s}: var/model {v['var_over_model']}")
        lines.append(f"{'':19s} stderr/spread {v['stderr_over_spread']}")
        lines.append(f"{'':19s} white noise: var / (S/(a^2 T)) = {v['white_var_over_bound']:.3f}")
    lines.append(f"finite differences / HGE variance under the default noise: {r['fd_over_hge_variance']} "
                 f"(FD also takes {r['fd_lab_time_over_hge']:.0f}x the lab time)")
    w = r["wall_time_ms"]
    lines.append(f"one parallel 7-electrode gradient: {w['total']:.2f} ms = measure (model, chain, noise) "
                 f"{w['measure']:.2f} + core {w['core_demodulate']:.2f} + host {w['host_overhead']:.2f}")
    return "\n".join(lines)


# -- bench train: the sphere run's lab time / wall time, its peak memory, extract_gradient warm ---------

TRAIN_MODELS = ("surrogate", "hopping")
_BIAS = (-0.3, 0.1, -0.5, 0.2, 0.0, -0.4, 0.3)


def _train_one(model: str, iterations: int, repeats: int = 3, seed: int = 0, threads: int | None = None) -> dict:
    """One model, in this process: a sphere run's parts timed (wall and CPU) and its lab time,
    then ``extract_gradient`` warm. Called in a fresh process by :func:`bench_train`."""
    import resource

    from .devices.simulated import SimulatedDNPU
    from .gradient import extract_gradient
    from .tasks import sphere
    from .train import Trainer

    def timed(fn):
        c0, w0 = time.process_time(), time.perf_counter()
        out = fn()
        return out, time.perf_counter() - w0, time.process_time() - c0

    rss_imports = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")  # others' work disturbs wall time
    device = SimulatedDNPU(seed=seed, model=model, threads=threads)
    task = sphere(seed)
    tr, w_init, c_init = timed(lambda: Trainer(device, task, seed=seed, max_iter=10**9))
    lab0 = tr.lab_time
    _, w, c = timed(lambda: _setup(tr))
    w_init, c_init, lab_setup = w_init + w, c_init + c, tr.lab_time
    iters = []
    for _ in range(iterations):
        lab = tr.lab_time
        _, w, c = timed(tr.step)
        iters.append((tr.lab_time - lab, w, c))
    lab = tr.lab_time
    res, w_final, c_final = timed(lambda: tr.result(0.0))
    lab_final = tr.lab_time - lab
    max_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    lab_it = np.array([x[0] for x in iters])
    w_it = np.array([x[1] for x in iters])
    c_it = np.array([x[2] for x in iters])
    # extract_gradient warm: same device, the run's calibration cached; best of `repeats` rounds.
    b = np.array(_BIAS)
    for _ in range(3):
        extract_gradient(device, b)
    g_wall, g_cpu = np.inf, np.inf
    for _ in range(repeats):
        _, w, c = timed(lambda: [extract_gradient(device, b) for _ in range(20)])
        g_wall, g_cpu = min(g_wall, w / 20), min(g_cpu, c / 20)
    return dict(model=model, iterations_measured=iterations, task_iterations=int(task.max_iter),
                lab_setup_s=lab_setup, wall_setup_s=w_init, cpu_setup_s=c_init, calibration_lab_s=lab0,
                lab_per_iteration_s=float(lab_it.mean()), wall_per_iteration_s=float(w_it.mean()),
                wall_per_iteration_best_s=float(w_it.min()), cpu_per_iteration_s=float(c_it.mean()),
                lab_final_s=lab_final, wall_final_s=w_final, cpu_final_s=c_final,
                rss_after_imports_bytes=int(rss_imports), max_rss_bytes=int(max_rss),
                gradient_wall_ms=1e3 * g_wall, gradient_cpu_ms=1e3 * g_cpu,
                sim_threads=int(device.threads), load_average=float(load))


def _setup(tr) -> None:
    """What ``Trainer.run`` does before its first iteration: the start, the initial test accuracy."""
    from .tasks import balanced_accuracy
    tr.initialise()
    if tr.task.test_inputs is not None:
        y0 = tr.measure_outputs(tr.task.test_inputs)
        tr.initial_accuracy = balanced_accuracy(y0, tr.task.test_targets)[0]


def extrapolate(r: dict) -> dict:
    """A full ``hge train --task sphere`` run from the measured parts: setup + ``task_iterations``
    iterations at the measured mean + the final evaluation (lab, wall, CPU in s) and the ratios.

    Honest about what it is: the iterations' lab time is the same every iteration (one window and
    one ramp per data point), their wall time is the measured mean of the first few; a run that
    stops early on ``stop_loss`` has fewer. ``wall_best`` uses the fastest iteration (for a machine
    that others disturb)."""
    n = r["task_iterations"]
    lab = r["lab_setup_s"] + n * r["lab_per_iteration_s"] + r["lab_final_s"]
    out = {}
    for key, per in (("wall", "wall_per_iteration_s"), ("wall_best", "wall_per_iteration_best_s"),
                     ("cpu", "cpu_per_iteration_s")):
        side = "cpu" if key == "cpu" else "wall"
        t = r[f"{side}_setup_s"] + n * r[per] + r[f"{side}_final_s"]
        out[f"{key}_s"] = t
        out[f"lab_over_{key}"] = lab / t
    out["lab_s"] = lab
    out["lab_over_wall_iterations_only"] = r["lab_per_iteration_s"] / r["wall_per_iteration_s"]
    out["lab_over_cpu_iterations_only"] = r["lab_per_iteration_s"] / r["cpu_per_iteration_s"]
    return out


def bench_train(models=TRAIN_MODELS, iterations: int = 5, repeats: int = 3, progress=None,
                threads: int | None = None) -> list:
    """For each simulator model, in a fresh Python process (so its peak memory is the run's own):
    the sphere task's setup, ``iterations`` training iterations and the final evaluation, timed in
    wall and CPU time, with the lab time they stand for (:func:`extrapolate` turns them into a full
    run's lab/wall), the peak memory (max RSS of the process; its RSS after the imports for
    comparison) and ``extract_gradient`` warm (mean of 20 calls, best of
    ``repeats`` rounds). ``progress(done, total, label)`` between models. ``threads``: the
    simulator's evaluation threads (default: its own, the available CPUs up to 4)."""
    import json
    import subprocess
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    rows = []
    for k, model in enumerate(models):
        if progress:
            progress(k, len(models), f"sphere on {model}")
        code = ("import json; from hge_embedded.bench import _train_one; "
                f"print(json.dumps(_train_one({model!r}, {int(iterations)}, {int(repeats)}, "
                f"threads={None if threads is None else int(threads)})))")
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False)
        if proc.returncode:
            raise RuntimeError(f"bench train ({model}) failed:\n{proc.stderr.strip()[-2000:]}")
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        r.update(extrapolate(r))
        rows.append(r)
    if progress:
        progress(len(models), len(models), "done")
    return rows


def format_train(rows) -> str:
    lines = ["hge train --task sphere (seed 0), extrapolated from its measured parts: setup (start, initial test "
             "accuracy), N iterations, final evaluation; a full run has 300 iterations unless the loss stops it",
             f"{'model':10s} {'N':>3s} {'lab/iter':>9s} {'wall/iter':>10s} {'cpu/iter':>9s} {'lab/wall':>9s} "
             f"{'lab/wall*':>10s} {'lab/cpu':>8s} {'max RSS':>8s} {'imports':>8s} {'grad wall':>10s} {'grad cpu':>9s}"]
    for r in rows:
        lines.append(f"{r['model']:10s} {r['iterations_measured']:3d} {r['lab_per_iteration_s']:8.2f}s "
                     f"{r['wall_per_iteration_s']:9.3f}s {r['cpu_per_iteration_s']:8.3f}s {r['lab_over_wall']:9.1f} "
                     f"{r['lab_over_wall_best']:10.1f} {r['lab_over_cpu']:8.1f} {r['max_rss_bytes'] / 2**20:6.0f}MB "
                     f"{r['rss_after_imports_bytes'] / 2**20:6.0f}MB {r['gradient_wall_ms']:8.2f}ms {r['gradient_cpu_ms']:7.2f}ms")
    lines.append("lab/wall: the full run (mean iteration wall time); lab/wall*: with the fastest iteration; lab/cpu: "
                 "CPU time (this process, all threads). max RSS: the process's peak resident memory over the bench "
                 "(imports included); imports: its resident memory after the imports, before the run. grad: "
                 "extract_gradient warm, 7 electrodes, T = 0.1 s, stderr included (mean of 20 calls, best of 3 "
                 "rounds).")
    if rows and "load_average" in rows[0]:
        lines.append("simulator threads: " + ", ".join(f"{r['model']} {r['sim_threads']}" for r in rows)
                     + "; 1-minute load average at each model's start: "
                     + ", ".join(f"{r['model']} {r['load_average']:.1f}" for r in rows)
                     + " (on a machine busier than its cores, compare cpu, not wall)")
    return "\n".join(lines)
