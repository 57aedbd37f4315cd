"""``demodulate``: one window of output samples -> X, Y for every frequency.

The engines share one definition of the result (docs/design.md section 1):
``X_m = (A_m / 2) cos(theta_m)``, ``Y_m = (A_m / 2) sin(theta_m)`` for an input
component ``A_m sin(2 pi f_m t + phi_m + theta_m)``, in the unit of the
samples. Both low-pass filters are read at the window's end; the Butterworth
(behind a pre-sum of 8 samples, see ``csrc/hge_lockin.h``) is divided by its
step response there (about 1.02, the 98 %-settling rule), so a constant
product comes out exactly.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from . import _validate as v
from . import core, design
from .reference import fixed, floating

ENGINES = ("c", "fixed", "float")
FILTERS = ("butterworth3", "boxcar")
CODE_MAX = (1 << 23) - 1


@dataclass
class Demodulated:
    """Result of ``demodulate``: float ``X``, ``Y`` (unit of the samples) per frequency."""

    X: np.ndarray
    Y: np.ndarray
    freqs: np.ndarray
    engine: str
    filter: str
    raw_X: np.ndarray | None = None   # integer engines: Q6 filter outputs or Q22 sums
    raw_Y: np.ndarray | None = None
    scale: float = 1.0                # unit of the samples per ADC code

    @property
    def R(self) -> np.ndarray:
        return np.hypot(self.X, self.Y)

    @property
    def phase(self) -> np.ndarray:
        """theta in radians, the lag of the measured component behind the reference."""
        return np.arctan2(self.Y, self.X)


AUTO_CODE = (1 << 22) - 1   # the largest |code| of a window scaled by its own peak (to_codes)


def check_dc_headroom(codes, dcs, what: str = "samples") -> None:
    """Refuse windows whose codes minus their DC code leave 24 bits.

    The lock-in core saturates ``x - dc`` to +-(2^23 - 1) before mixing (``hge_condition``;
    the integer model likewise), which would flatten the window's extremes without a word.
    ``codes`` (n,) or (K, n) int32, ``dcs`` scalar or (K,). Only windows whose swing around
    their mean exceeds the full scale reach it (a window scaled by its own peak never does:
    ``AUTO_CODE``). Raises ``ValueError`` naming the window and its swing in codes."""
    c = np.atleast_2d(codes)
    d = np.atleast_1d(np.asarray(dcs, np.int64))
    up = c.max(axis=1).astype(np.int64) - d
    down = d - c.min(axis=1).astype(np.int64)
    bad = np.flatnonzero((up > CODE_MAX) | (down > CODE_MAX))
    if bad.size:
        k = int(bad[0])
        where = f"{what}, window {k}" if c.shape[0] > 1 else what
        raise ValueError(f"{where}: the samples swing {int(max(up[k], down[k]))} codes from their mean, beyond the "
                         f"24-bit range (2^23 - 1) the lock-in's DC removal keeps: it would clip them. The window "
                         f"spans more than the full scale around its mean; use a smaller perturbation or remove_dc=False")


def to_codes(samples, full_scale=None):
    """Float samples -> 24-bit ADC codes, and the unit per code.

    Integer samples are taken as codes (scale 1) and must fit 24 bits.
    Float samples map ``full_scale`` to code ``2^23 - 1``, rounding to nearest.
    Without ``full_scale`` their largest magnitude maps to ``AUTO_CODE`` = 2^22 - 1,
    one bit below: the lock-in subtracts the window's mean code before mixing and
    saturates ``x - mean`` to 24 bits (``hge_condition``), and |x - mean| <= 2 max|x|
    fits only with that bit to spare. (Mapping the peak to 2^23 - 1 clipped every
    window whose mean is a sizeable part of its swing -- a tone over a fractional
    number of periods, a small offset -- by up to 1.4e-4 of the amplitude, silently.)
    With ``full_scale`` the codes are the ADC's and :func:`check_dc_headroom` refuses
    a window that would clip.
    """
    x = np.asarray(samples)
    if x.ndim != 1 or x.size == 0:
        raise ValueError(f"samples must be a non-empty 1-D array, got shape {x.shape}")
    if x.dtype.kind in "iu":
        if x.min() < -(CODE_MAX + 1) or x.max() > CODE_MAX:
            raise ValueError(f"samples: integer samples are 24-bit ADC codes, got values in "
                             f"[{x.min()}, {x.max()}]")
        return x.astype(np.int32), 1.0
    x = v.float_array("samples", x)
    if full_scale is None:
        scale = (float(np.max(np.abs(x))) or 1.0) / AUTO_CODE
    else:
        v.positive("full_scale", full_scale)
        if np.max(np.abs(x)) > full_scale * (1 + 1e-12):
            raise ValueError(f"samples exceed full_scale = {full_scale} (largest |sample| {np.max(np.abs(x))})")
        scale = full_scale / CODE_MAX
    return np.clip(np.round(x / scale), -CODE_MAX, CODE_MAX).astype(np.int32), scale


def demodulate(samples, fs, freqs, *, engine: str = "c", filter: str = "butterworth3",  # noqa: A002
               T: float | None = None, phases=None, full_scale: float | None = None,
               remove_dc: bool = True, block_sizes=None) -> Demodulated:
    """Lock-in demodulation of one window at every frequency of ``freqs``.

    Parameters
    ----------
    samples : (n,) array
        Output samples of one window. Integer: ADC codes used as they are.
        Float: quantised to 24-bit codes against ``full_scale`` for the
        integer engines; used as they are by ``engine="float"``.
    fs : float
        Sample rate, Hz.
    freqs : (M,) array
        Reference frequencies, Hz, each in (0, fs/2).
    engine : {"c", "fixed", "float"}
        The C core, its bit-exact Python model, or the float64 ideal.
    filter : {"butterworth3", "boxcar"}
        Third-order Butterworth 98 % settled at ``T``, or integrate-and-dump.
    T : float, optional
        Window length the Butterworth is designed for, s. Default ``n / fs``.
    phases : (M,) array, optional
        Reference phases phi_m, rad. Default 0.
    remove_dc : bool
        Subtract the window's mean before mixing (docs/design.md section 1).
    block_sizes : sequence of int, optional
        Feed the C core in these blocks (same result as one block; for tests).
    """
    v.choice("engine", engine, ENGINES)
    v.choice("filter", filter, FILTERS)
    v.positive("fs", fs)
    freqs = v.float_array("freqs", np.atleast_1d(freqs), ndim=1)
    steps = design.freq_to_step(freqs, fs)
    phases = np.zeros(freqs.size) if phases is None else v.float_array("phases", np.atleast_1d(phases), ndim=1)
    if phases.size != freqs.size:
        raise ValueError(f"phases must have one entry per frequency ({freqs.size}), got {phases.size}")
    if engine == "float":
        x = np.asarray(samples)
        if x.ndim != 1 or x.size == 0:
            raise ValueError(f"samples must be a non-empty 1-D array, got shape {x.shape}")
        x = v.float_array("samples", x)
    else:
        codes, scale = to_codes(samples, full_scale)
    n = np.asarray(samples).size
    T = n / fs if T is None else v.positive("T", T)
    if filter == "butterworth3":
        filt = design.lockin_filter(float(fs), float(T), n)
        if n % design.DECIMATION:
            raise ValueError(f"samples: the Butterworth lock-in sums groups of {design.DECIMATION} samples; "
                             f"the window must be a multiple of {design.DECIMATION}, got {n}")

    if engine == "float":
        if filter == "boxcar":
            X, Y = floating.lockin(x, fs, freqs, phases, filter="boxcar", remove_dc=remove_dc)
        else:
            X, Y = floating.lockin(x, fs, freqs, phases, filter=filter, sos=filt.sos,
                                   gain=filt.gain_float, remove_dc=remove_dc)
        return Demodulated(X, Y, freqs, engine, filter)

    uphases = design.phase_to_uint32(phases)
    dc = (core.mean_code(codes) if engine == "c" else fixed.mean_q0(codes)) if remove_dc else 0
    if remove_dc and (full_scale is not None or np.asarray(samples).dtype.kind in "iu"):
        check_dc_headroom(codes, dc)   # auto-scaled codes fit by construction (AUTO_CODE)
    if filter == "boxcar":
        if engine == "c":
            ri, rq = core.lockin_boxcar(codes, steps, uphases, dc=dc, block_sizes=block_sizes)
        else:
            if codes.size > fixed.BOXCAR_MAX_SAMPLES:
                raise ValueError(f"samples: integrate-and-dump takes at most {fixed.BOXCAR_MAX_SAMPLES}, got {codes.size}")
            ri, rq = fixed.lockin_boxcar(codes, steps, uphases, dc)
        unit = scale / (codes.size * fixed.SINE_AMPLITUDE)
    else:
        if engine == "c":
            ri, rq = core.lockin_bw3(codes, steps, uphases, filt.coeffs, dc=dc, block_sizes=block_sizes)
        else:
            ri, rq = fixed.lockin_bw3(codes, steps, uphases, filt.coeffs, dc)
        unit = scale * 2.0**fixed.MIXER_SHIFT / fixed.SINE_AMPLITUDE / filt.gain_fixed  # one Q6 LSB = 1/64 code
    return Demodulated(ri * unit, rq * unit, freqs, engine, filter, ri, rq, scale)


class WindowDemodulator:
    """``demodulate`` for many windows of one plan and length, prepared once.

    The argument checks, the filter design and, for ``engine="c"``, a
    :class:`hge_embedded.core.LockinPlan` (its references computed once for the
    plan and window length) are made at construction; a call then takes a
    ``(K, n)`` block of windows and does only per-window work. Row ``k`` of the
    result equals ``demodulate(samples[k], fs, freqs, engine=..., filter=...,
    T=..., full_scale=...)`` bit for bit (tested): the quantisation to codes and
    the mean are the same element-wise operations, and the lock-in integers are
    the core's (every host path gives the same integers). The integer
    reference and float engines are called window by window.

    Parameters
    ----------
    fs, freqs, engine, filter, T, full_scale, remove_dc
        As for :func:`demodulate`; ``full_scale=None`` scales each window by
        its own largest magnitude, as :func:`to_codes` does.
    n : int
        Samples per window.
    """

    def __init__(self, fs, freqs, n: int, *, engine: str = "c", filter: str = "butterworth3",  # noqa: A002
                 T: float | None = None, full_scale: float | None = None, remove_dc: bool = True):
        v.choice("engine", engine, ENGINES)
        v.choice("filter", filter, FILTERS)
        v.positive("fs", fs)
        v.positive("n", n, integer=True)
        self.fs, self.n, self.engine, self.filter = float(fs), int(n), engine, filter
        self.freqs = v.float_array("freqs", np.atleast_1d(freqs), ndim=1)
        steps = design.freq_to_step(self.freqs, fs)
        self.T = self.n / self.fs if T is None else float(v.positive("T", T))
        if full_scale is not None:
            v.positive("full_scale", full_scale)
        self.full_scale, self.remove_dc = full_scale, bool(remove_dc)
        self._plan = None
        if filter == "butterworth3":
            self._filt = design.lockin_filter(self.fs, self.T, self.n)
            if self.n % design.DECIMATION:
                raise ValueError(f"samples: the Butterworth lock-in sums groups of {design.DECIMATION} samples; "
                                 f"the window must be a multiple of {design.DECIMATION}, got {self.n}")
        if engine == "c":
            coeffs = self._filt.coeffs if filter == "butterworth3" else None
            self._plan = core.LockinPlan(steps, None, self.n, filter=filter, coeffs=coeffs)

    def __call__(self, samples):
        """Windows ``samples`` (K, n) -> ``(X, Y)``, each (K, M), in the unit of the samples."""
        x = np.asarray(samples, dtype=float)
        if x.ndim != 2:
            raise ValueError(f"samples must be 2-D, got shape {x.shape}")
        if x.shape[1] != self.n:
            raise ValueError(f"samples: windows of {self.n} samples expected, got {x.shape[1]}")
        if self._plan is None:  # the Python engines: window by window
            v.float_array("samples", x)
            rows = [demodulate(row, self.fs, self.freqs, engine=self.engine, filter=self.filter, T=self.T,
                               full_scale=self.full_scale, remove_dc=self.remove_dc) for row in x]
            return np.array([r.X for r in rows]), np.array([r.Y for r in rows])
        # The codes, their scales and DC codes in one C pass (core.codes_windows: to_codes' numbers).
        codes, scale, dcs = core.codes_windows(x, self.full_scale, mean=self.remove_dc)
        if self.remove_dc and self.full_scale is not None:
            check_dc_headroom(codes, dcs)   # auto-scaled codes fit by construction (AUTO_CODE)
        # Every window in one C call (core.LockinPlan.windows: the per-window calls, made in C).
        ri, rq = self._plan.windows(codes, dcs)
        if self.filter == "boxcar":
            unit = scale / (self.n * fixed.SINE_AMPLITUDE)
        else:
            unit = scale * 2.0**fixed.MIXER_SHIFT / fixed.SINE_AMPLITUDE / self._filt.gain_fixed
        return ri * unit[:, None], rq * unit[:, None]


@functools.lru_cache(maxsize=32)
def window_demodulator(fs: float, freqs: tuple, n: int, engine: str = "c", filter: str = "butterworth3",  # noqa: A002
                       T: float | None = None, full_scale: float | None = None) -> WindowDemodulator:
    """A shared :class:`WindowDemodulator` per plan (cached: ``extract_gradient`` at one plan builds its
    C plan and reference cache once, not per call; the instance holds no per-call state)."""
    return WindowDemodulator(fs, np.array(freqs, float), n, engine=engine, filter=filter, T=T, full_scale=full_scale)
