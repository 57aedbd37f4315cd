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


def numpy_lockin(x, fs, freqs, filter, sos=None, gain=1.0):  # noqa: A002
    """The float64 numpy/scipy path the C core is measured against."""
    x = x - x.mean()
    arg = (2 * np.pi / fs) * np.outer(freqs, np.arange(x.size))
    prod = np.concatenate([np.sin(arg) * x, np.cos(arg) * x])
    if filter == "boxcar":
        return prod.mean(axis=1)
    return sig.sosfilt(sos, prod, axis=1)[:, -1] / gain


def bench_core(fs: float = 10_000.0, terminals=(1, 7, 64), lengths=(1000, 100_000),
               filters=("butterworth3", "boxcar"), seed: int = 0, min_total: float = 0.3):
    """Measure both paths for every (filter, M, N); returns a list of result rows."""
    rng = np.random.default_rng(seed)
    rows = []
    for n in lengths:
        x = np.round(rng.normal(0, 1e6, n)).astype(np.int32)
        xf = x.astype(float)
        T = n / fs
        for filt in filters:
            for m in terminals:
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
    return rows


def format_core(rows) -> str:
    lines = [f"{'filter':13s} {'M':>3s} {'N':>7s} {'C [ch-samp/s]':>14s} {'numpy [ch-samp/s]':>18s} "
             f"{'C/numpy':>8s} {'x real time':>12s}"]
    for r in rows:
        lines.append(f"{r['filter']:13s} {r['terminals']:3d} {r['samples']:7d} "
                     f"{r['c_channel_samples_per_s']:14.3e} {r['numpy_channel_samples_per_s']:18.3e} "
                     f"{r['speedup']:8.1f} {r['realtime_factor_c']:12.0f}")
    return "\n".join(lines)
