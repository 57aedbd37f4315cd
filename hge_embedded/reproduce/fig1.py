"""Fig. 1c: variance of dh/dw for h = 10 w under 1/f noise, HGE at several frequencies vs finite differences.

The toy system is a plain Python device (``fs``, ``n_electrodes``, ``limits``,
``measure``) whose output is ``10 w`` plus 1/f noise cut from one continuous
record, so the project's own ``extract_gradient`` and
``finite_difference_gradient`` run on it unchanged.
"""
from __future__ import annotations

import numpy as np

from ..gradient import extract_gradient, finite_difference_gradient
from .common import Row, coloured_noise, fmt, loglog_slope, save, pyplot, var_se, verdict_close, write_csv

# Fig. 1c (and its caption): alpha = 0.1, T = 1 s; under 1/f noise the variance of the
# HGE estimate falls by a factor 10 per decade of perturbation frequency.
PAPER_ALPHA = 0.1
PAPER_T_S = 1.0
PAPER_PER_DECADE = 10.0
SLOPE = 10.0                     # h = 10 w
FS_HZ = 10_000.0                 # not given for Fig. 1c; the rig's rate (Methods) assumed
FREQS_HZ = (10.0, 100.0, 1000.0)  # not given; three decades inside the rig's 1 kHz range assumed
LEVELS = (1e-4, 1e-3, 1e-2, 1e-1)  # 1/f density at 1 Hz, units^2/Hz (the figure's x axis)


class NoisyLine:
    """``h = 10 w + n(t)``: one electrode, noise consumed from a record in order (continuous in time)."""

    def __init__(self, noise: np.ndarray, fs: float = FS_HZ):
        self.fs, self.n_electrodes = float(fs), 1
        self.limits = np.array([[-1.0, 1.0]])
        self._noise, self._pos = noise, 0

    def measure(self, volts):
        v = np.asarray(volts, float)
        n = v.shape[1]
        if self._pos + n > self._noise.size:
            raise RuntimeError("noise record exhausted")  # sizes are computed exactly below
        y = SLOPE * v[0] + self._noise[self._pos:self._pos + n]
        self._pos += n
        return y


def run_1c(ctx) -> list[Row]:
    reps = ctx.size(40, 300)
    n = int(round(PAPER_T_S * FS_HZ))
    bar = ctx.bar("1c", len(LEVELS) * (len(FREQS_HZ) + 2) * reps)
    phase = "magnitude" if ctx.paper_mode else "inphase"   # the toy has no chain lag to calibrate
    var = np.zeros((len(LEVELS), len(FREQS_HZ) + 1))
    var_e = np.zeros_like(var)
    for i, level in enumerate(LEVELS):
        def psd(f, level=level):
            return level / f   # 1/f, level at 1 Hz
        for j, f in enumerate(FREQS_HZ):
            dev = NoisyLine(coloured_noise(psd, reps * n, FS_HZ, ctx.rng(1, i, j)))
            g = []
            for _ in range(reps):
                r = extract_gradient(dev, np.zeros(1), amplitudes=PAPER_ALPHA, T=PAPER_T_S, freqs=[f],
                                     phase=phase, crosstalk="none")
                g.append(r.gradient[0])
                bar.advance()
            var[i, j], var_e[i, j] = var_se(g)
        dev = NoisyLine(coloured_noise(psd, 2 * reps * n, FS_HZ, ctx.rng(2, i)))
        g = []
        for _ in range(reps):
            g.append(finite_difference_gradient(dev, np.zeros(1), step=PAPER_ALPHA, T=PAPER_T_S).gradient[0])
            bar.advance(2)
        var[i, -1], var_e[i, -1] = var_se(g)
    bar.close()

    d = ctx.dir("1c")
    cols = {"noise_level_1overf_at_1Hz_units2_per_Hz": np.array(LEVELS)}
    for j, f in enumerate(FREQS_HZ):
        cols[f"var_hge_{f:g}Hz_units2"] = var[:, j]
        cols[f"var_hge_{f:g}Hz_se_units2"] = var_e[:, j]
    cols["var_fd_units2"], cols["var_fd_se_units2"] = var[:, -1], var_e[:, -1]
    write_csv(d / "data.csv", cols)
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5, 4))
    for j, f in enumerate(FREQS_HZ):
        ax.errorbar(LEVELS, var[:, j], yerr=var_e[:, j], marker="o", ls="-", label=f"HGE {f:g} Hz")
    ax.errorbar(LEVELS, var[:, -1], yerr=var_e[:, -1], marker="s", ls="--", color="k", label="FD")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("1/f noise density at 1 Hz [units$^2$/Hz]")
    ax.set_ylabel("variance of dh/dw [1]")
    ax.set_title(f"h = 10 w, alpha = {PAPER_ALPHA}, T = {PAPER_T_S:g} s")
    ax.legend(fontsize=8)
    save(fig, d / "variance.png")

    # Per-decade ratio: variance at f over variance at 10 f, pooled over noise levels (log mean).
    ratios, ratio_se = [], []
    for j in range(len(FREQS_HZ) - 1):
        r = var[:, j] / var[:, j + 1]
        rel = np.sqrt((var_e[:, j] / var[:, j]) ** 2 + (var_e[:, j + 1] / var[:, j + 1]) ** 2)
        ratios.append(np.exp(np.mean(np.log(r))))
        ratio_se.append(ratios[-1] * np.sqrt(np.sum(rel**2)) / len(LEVELS))
    per_decade = float(np.exp(np.mean(np.log(ratios))))
    per_decade_se = float(per_decade * np.sqrt(np.sum((np.array(ratio_se) / ratios) ** 2)) / len(ratios))
    fd_ratio = np.exp(np.mean(np.log(var[:, -1:] / var[:, :-1]), axis=0))
    lin_slope, lin_se = loglog_slope(LEVELS, var[:, 1], var_e[:, 1])
    params = (f"toy h = 10 w + n(t), 1/f noise (beta = 1) at levels {LEVELS} units^2/Hz at 1 Hz; "
              f"alpha = {PAPER_ALPHA}, T = {PAPER_T_S:g} s, fs = {FS_HZ:g} Hz (assumed: the rig's rate); "
              f"HGE at {FREQS_HZ} Hz (assumed: the paper does not list them), Butterworth read-out, "
              f"{'2R/a with the sign from the phase' if ctx.paper_mode else '2X/a (no chain lag)'}; "
              f"FD: central difference of two T windows; {reps} repetitions per point")
    rows = [
        Row("1c", "under 1/f noise the HGE variance falls a factor 10 per decade of perturbation frequency",
            f"{PAPER_PER_DECADE:g}x per decade", f"{fmt(per_decade)}x per decade "
            f"({', '.join(fmt(r) for r in ratios)} for {FREQS_HZ[0]:g}->{FREQS_HZ[-1]:g} Hz)",
            f"+-{fmt(per_decade_se)}", verdict_close(per_decade, PAPER_PER_DECADE, per_decade_se, 0.2),
            params + "; verdict: agree within max(2 s.e., 20 %)"),
        Row("1c", "the variance of the estimate is proportional to the noise level (log-log slope 1)",
            "slope 1", f"slope {fmt(lin_slope)} (HGE {FREQS_HZ[1]:g} Hz)", f"+-{fmt(lin_se)}",
            verdict_close(lin_slope, 1.0, lin_se, 0.1), params + "; verdict: agree within max(2 s.e., 10 %)"),
        Row("1c", "HGE has a lower variance than finite differences at every frequency shown",
            "FD/HGE > 1 (figure only, no number)",
            "FD/HGE " + ", ".join(f"{fmt(r)} at {f:g} Hz" for r, f in zip(fd_ratio, FREQS_HZ)),
            "see data.csv (per-point s.e.)", "agree" if np.all(fd_ratio > 1) else "disagree",
            params + "; verdict: agree if FD/HGE > 1 at every frequency"),
    ]
    return rows
