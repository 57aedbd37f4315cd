"""Benchmarks behind ``hge bench``: figures are printed, never asserted.

``core``: channel-samples per second (one channel = one terminal's I and Q
pair, per input sample) of the C core against a vectorised numpy +
``scipy.signal.sosfilt`` float64 implementation of the same demodulation
(references, mixing, DC removal, filtering, read-out), in one run, side by side.
"""
from __future__ import annotations

import time

import numpy as np
import scipy.signal as sig

from . import core, design


def _best_time(fn, min_total: float = 0.3, repeats: int = 3) -> float:
    """Best per-call time over ``repeats`` rounds, each round at least ``min_total`` s."""
    fn()  # warm-up (also builds cached filter designs)
    best = np.inf
    for _ in range(repeats):
        calls, start = 0, time.perf_counter()
        while True:
            fn()
            calls += 1
            elapsed = time.perf_counter() - start
            if elapsed >= min_total:
                break
        best = min(best, elapsed / calls)
    return best


def numpy_lockin(x, fs, freqs, filter, sos=None, gain=1.0, decimation=8):  # noqa: A002
    """The float64 numpy/scipy path the C core is measured against: the same demodulation
    (references, mixing, DC removal, pre-sum of 8, Butterworth at fs/8, read-out)."""
    x = x - x.mean()
    arg = (2 * np.pi / fs) * np.outer(freqs, np.arange(x.size))
    prod = np.concatenate([np.sin(arg) * x, np.cos(arg) * x])
    if filter == "boxcar":
        return prod.mean(axis=1)
    g = prod.shape[1] // decimation
    prod = prod[:, :g * decimation].reshape(prod.shape[0], g, decimation).mean(axis=2)
    return sig.sosfilt(sos, prod, axis=1)[:, -1] / gain


def bench_core(fs: float = 10_000.0, terminals=(1, 7, 64), lengths=(1000, 100_000),
               filters=("butterworth3", "boxcar"), seed: int = 0, min_total: float = 0.3, progress=None):
    """Measure both paths for every (filter, M, N); returns a list of result rows.

    ``progress(done, total, label)``, if given, is called after every configuration.
    """
    rng = np.random.default_rng(seed)
    rows = []
    total, done = len(lengths) * len(filters) * len(terminals), 0
    for n in lengths:
        x = np.round(rng.normal(0, 1e6, n)).astype(np.int32)
        xf = x.astype(float)
        T = n / fs
        for filt in filters:
            for m in terminals:
                done += 1
                if progress:
                    progress(done - 1, total, f"{filt} M={m} N={n}")
                freqs = np.linspace(20.0, 2000.0, m) if m > 1 else np.array([200.0])
                steps = design.freq_to_step(freqs, fs)
                if filt == "butterworth3":
                    lf = design.lockin_filter(fs, T, n)

                    def c_call():
                        core.lockin_bw3(x, steps, None, lf.coeffs, dc=core.mean_code(x))

                    def np_call():
                        numpy_lockin(xf, fs, freqs, filt, lf.sos, lf.gain_float)
                else:
                    if n > core.BOXCAR_MAX_SAMPLES:
                        continue

                    def c_call():
                        core.lockin_boxcar(x, steps, None, dc=core.mean_code(x))

                    def np_call():
                        numpy_lockin(xf, fs, freqs, filt)
                t_c = _best_time(c_call, min_total)
                t_np = _best_time(np_call, min_total)
                rate_c, rate_np = m * n / t_c, m * n / t_np
                rows.append(dict(filter=filt, terminals=m, samples=n,
                                 c_channel_samples_per_s=rate_c,
                                 numpy_channel_samples_per_s=rate_np,
                                 speedup=rate_c / rate_np,
                                 realtime_factor_c=rate_c / (m * fs)))
    if progress:
        progress(total, total, "done")
    return rows


def format_core(rows) -> str:
    lines = [f"{'filter':13s} {'M':>3s} {'N':>7s} {'C [ch-samp/s]':>14s} {'numpy [ch-samp/s]':>18s} "
             f"{'C/numpy':>8s} {'x real time':>12s}"]
    for r in rows:
        lines.append(f"{r['filter']:13s} {r['terminals']:3d} {r['samples']:7d} "
                     f"{r['c_channel_samples_per_s']:14.3e} {r['numpy_channel_samples_per_s']:18.3e} "
                     f"{r['speedup']:8.1f} {r['realtime_factor_c']:12.0f}")
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
    # 1. Noise-free accuracy on 100 random bias points.
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
    out["fd_lab_time_over_hge"] = fd_runs[0].lab_time_s / hge_runs[0].lab_time_s
    step("HGE vs finite differences")
    # 5. Wall time of one parallel 7-electrode gradient, split.
    d = SimulatedDNPU(seed=seed)
    extract_gradient(d, b)
    n = int(T * fs)
    volts = perturbation_waveform(b, np.arange(7), np.full(7, a), f, n, fs)
    t_dev = _best_time(lambda: d.model.current(volts), 0.2)
    t_meas = _best_time(lambda: d.measure(volts), 0.2)
    y = d.measure(volts)
    t_core = _best_time(lambda: demodulate(y, fs, f, full_scale=d.full_scale), 0.2)
    t_all = _best_time(lambda: extract_gradient(d, b), 0.2)
    out["wall_time_ms"] = dict(device_model=t_dev * 1e3, chain_and_noise=(t_meas - t_dev) * 1e3,
                               core_demodulate=t_core * 1e3, host_overhead=(t_all - t_meas - t_core) * 1e3,
                               total=t_all * 1e3)
    step("wall time")
    return out


def format_gradient(r) -> str:
    lines = ["noise-free accuracy, 100 random bias points (relative error, floor 10 % of RMS gradient):"]
    for k, v in r["noise_free_accuracy"].items():
        lines.append(f"  {k:42s} max {v['max']:.4f}  p99 {v['p99']:.4f}  (cubic device term alone: max {v['cubic_max']:.4f})")
    e = r["error_terms"]
    lines.append(f"error terms: settling gain at T {e['settling_gain_at_T']:.4f}; leak at 40 Hz {e['leak_at_40Hz']:.4f}; "
                 f"2f leak {e['leak_at_2f_min']:.2e}; DC leak {e['dc_leak_per_nA']:.3f} nA/V per nA")
    for filt, v in r["noise"].items():
        lines.append(f"noise {filt:12s}: var/model {v['var_over_model']}")
        lines.append(f"{'':19s} stderr/spread {v['stderr_over_spread']}")
        lines.append(f"{'':19s} white noise: var / (S/(a^2 T)) = {v['white_var_over_bound']:.3f}")
    lines.append(f"finite differences / HGE variance under 1/f^1.5 noise: {r['fd_over_hge_variance']} "
                 f"(FD also takes {r['fd_lab_time_over_hge']:.0f}x the lab time)")
    w = r["wall_time_ms"]
    lines.append(f"one parallel 7-electrode gradient: {w['total']:.2f} ms = device model {w['device_model']:.2f} + "
                 f"chain/noise {w['chain_and_noise']:.2f} + core {w['core_demodulate']:.2f} + host {w['host_overhead']:.2f}")
    return "\n".join(lines)
