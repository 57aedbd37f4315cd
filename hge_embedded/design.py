"""Filter design and quantisation, NCO settings, settling and noise bandwidth.

Everything the C core runs is designed here in float64 and quantised here;
the C side only executes coefficients. Frequencies in Hz, times in s.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import scipy.signal as sig

from . import _validate as v
from .reference import fixed

COEF_ONE = 1 << 30
SETTLE_TOLERANCE = 0.02  # the paper's rule: step response within 2 % at T


@functools.lru_cache(maxsize=None)
def settling_constant(order: int = 3, tolerance: float = SETTLE_TOLERANCE) -> float:
    """``fc * T`` for an analog Butterworth whose step response stays within ``tolerance`` from T on.

    Computed once from the analog prototype (omega_c = 1): the last time
    ``|s(t) - 1| > tolerance``, divided by 2 pi. For order 3 and 2 % it is
    1.0564, the paper's ``fc ~= 1.056 / T``.
    """
    t = np.linspace(0.0, 40.0, 400001)
    if order == 3:
        # Closed form (no simulation): 1 / (s (s + 1) (s^2 + s + 1)) has the partial
        # fractions 1/s - 1/(s + 1) - 1/(s^2 + s + 1), so the step response is
        # s(t) = 1 - exp(-t) - (2/sqrt 3) exp(-t/2) sin(sqrt(3) t / 2).
        s = 1.0 - np.exp(-t) - (2.0 / np.sqrt(3.0)) * np.exp(-0.5 * t) * np.sin(0.5 * np.sqrt(3.0) * t)
    else:
        b, a = sig.butter(order, 1.0, analog=True)
        _, s = sig.step((b, a), T=t)
    last_out = np.nonzero(np.abs(s - 1.0) > tolerance)[0][-1]
    # Interpolate the crossing between samples last_out and last_out + 1.
    t0, t1 = t[last_out], t[last_out + 1]
    e0, e1 = abs(s[last_out] - 1) - tolerance, abs(s[last_out + 1] - 1) - tolerance
    t_settle = t0 + (t1 - t0) * e0 / (e0 - e1)
    return float(t_settle / (2 * np.pi))


def butterworth_cutoff(T: float) -> float:
    """Cut-off (Hz) of the third-order Butterworth that is 98 % settled at T (s)."""
    v.positive("T", T)
    return settling_constant() / T


def butterworth3_sos(fc: float, fs: float) -> np.ndarray:
    """Third-order Butterworth low-pass as ``[biquad, first-order]`` sos, each section with DC gain 1."""
    v.positive("fs", fs)
    v.positive("fc", fc)
    if fc >= fs / 2:
        raise ValueError(f"fc must be below fs/2 = {fs / 2} Hz, got {fc}")
    _, poles, _ = sig.butter(3, fc, btype="low", fs=fs, output="zpk")
    real = poles[np.argmin(np.abs(poles.imag))].real
    pair = poles[np.argmax(poles.imag)]
    # All three zeros sit at z = -1: two in the biquad, one in the first-order section.
    out = np.array([[1.0, 2.0, 1.0, 1.0, -2.0 * pair.real, abs(pair) ** 2],
                    [1.0, 1.0, 0.0, 1.0, -real, 0.0]])
    for s in out:
        s[:3] *= s[3:].sum() / s[:3].sum()
    return out


def quantize_butterworth3(sos: np.ndarray) -> tuple[int, ...]:
    """Coefficients ``(b0, b1, b2, a1, a2, c0, c1, d1, b_shift)`` for ``hge_bw3_coeffs_t``.

    a, c, d in Q2.30; b in Q(30 + b_shift) with the largest b_shift (<= 32)
    that keeps every b in int32. Denominators round to nearest. Numerators:
    b0 = b2 and c0 round to nearest, and the middle/last numerator takes what
    is left so that each section's numerator sum equals its denominator sum
    exactly: DC gain is exactly 1 in integers, whatever the cut-off. Raises
    ``ValueError`` if a quantised pole is not strictly inside the unit circle.
    """
    sos = np.asarray(sos, dtype=float)
    if sos.shape != (2, 6):
        raise ValueError(f"sos must have shape (2, 6) [biquad, first-order], got {sos.shape}")
    q = lambda x: int(np.round(x * COEF_ONE))  # noqa: E731
    a1, a2 = q(sos[0, 4]), q(sos[0, 5])
    # b1 ~ 2 b0 is the largest numerator; leave it a factor 2 of headroom.
    b_shift = 0
    while b_shift < 32 and abs(sos[0, 1]) * COEF_ONE * 2.0 ** (b_shift + 1) < 2.0**30:
        b_shift += 1
    b0 = int(np.round(sos[0, 0] * COEF_ONE * 2.0**b_shift))
    b1 = (COEF_ONE + a1 + a2) * (1 << b_shift) - 2 * b0
    d1 = q(sos[1, 4])
    c0 = q(sos[1, 0])
    c1 = COEF_ONE + d1 - c0
    coeffs = (b0, b1, b0, a1, a2, c0, c1, d1, b_shift)
    poles = np.concatenate([np.roots([COEF_ONE, a1, a2]), np.roots([COEF_ONE, d1])])
    # The C core's own test (hge_bw3_coeffs_stable), exact in integers (Jury: |a2| < 1, |a1| < 1 + a2,
    # |d1| < 1): np.roots alone can put a pole on the circle just inside it (T = 300 s at 10 kHz).
    jury = -COEF_ONE < a2 < COEF_ONE and abs(a1) < COEF_ONE + a2 and -COEF_ONE < d1 < COEF_ONE
    if not jury or np.any(np.abs(poles) >= 1.0):
        raise ValueError(f"quantised poles leave the unit circle: |p| = {np.abs(poles).max()} (a cut-off "
                         f"this low is not representable in Q2.30)")
    if any(not -(1 << 31) <= c < (1 << 31) for c in coeffs[:8]):
        raise ValueError(f"coefficients do not fit int32 Q2.30: {coeffs}")
    return coeffs


def coeffs_to_sos(coeffs) -> np.ndarray:
    """Float sos of quantised Q2.30 coefficients (what the integer filter computes, without rounding)."""
    b0, b1, b2, a1, a2, c0, c1, d1, b_shift = coeffs
    b0, b1, b2 = (b / COEF_ONE / 2.0**b_shift for b in (b0, b1, b2))
    a1, a2, c0, c1, d1 = (c / COEF_ONE for c in (a1, a2, c0, c1, d1))
    return np.array([[b0, b1, b2, 1.0, a1, a2], [c0, c1, 0.0, 1.0, d1, 0.0]])


def step_gain(sos: np.ndarray, n: int) -> float:
    """Step response of ``sos`` at sample ``n - 1`` (the value read at the window's end)."""
    return float(sig.sosfilt(sos, np.ones(int(n)))[-1])


def impulse_response(sos: np.ndarray, n: int) -> np.ndarray:
    imp = np.zeros(int(n))
    imp[0] = 1.0
    return sig.sosfilt(sos, imp)


def enbw(sos: np.ndarray, fs: float, n: int | None = None) -> float:
    """One-sided equivalent noise bandwidth (Hz) of a unity-DC-gain filter.

    White noise of one-sided density ``S_N`` gives output variance
    ``S_N * enbw``. With ``n`` the impulse response is cut at ``n`` samples
    (the filter has only seen the window when it is read at its end).
    """
    h = impulse_response(sos, n if n is not None else int(50 * fs))
    return float(fs * np.sum(h**2) / 2.0)


def boxcar_enbw(T: float) -> float:
    """One-sided ENBW of integrate-and-dump over T seconds: 1 / (2 T)."""
    return 1.0 / (2.0 * v.positive("T", T))


def freq_to_step(freqs, fs: float) -> np.ndarray:
    """NCO phase steps ``round(f / fs * 2^32)``; each f must be in (0, fs/2)."""
    v.positive("fs", fs)
    f = v.float_array("freqs", freqs, ndim=1)
    bad = (f <= 0) | (f >= fs / 2)
    if bad.any():
        raise ValueError(f"freqs must lie in (0, fs/2 = {fs / 2}) Hz, got {f[bad][0]}")
    return np.round(f / fs * 2.0**32).astype(np.uint64).astype(np.uint32)


def phase_to_uint32(phases) -> np.ndarray:
    """Phases in radians to uint32 turns (``2^32`` per turn), rounded."""
    p = v.float_array("phases", phases, ndim=1)
    return (np.round(np.mod(p / (2 * np.pi), 1.0) * 2.0**32).astype(np.uint64) & 0xFFFFFFFF).astype(np.uint32)


def check_boxcar_window(freqs, fs: float, T: float, *, tol: float = 1e-6) -> None:
    """Integrate-and-dump needs every frequency to make whole periods in T (``f T`` integer)."""
    f = v.float_array("freqs", freqs, ndim=1)
    n = T * fs
    if abs(n - round(n)) > 1e-9 * max(1.0, n):
        raise ValueError(f"T: integrate-and-dump needs T * fs whole, got {T} s * {fs} Hz = {n}")
    cycles = f * T
    off = np.abs(cycles - np.round(cycles)) > tol
    if off.any():
        bad = f[off][0]
        raise ValueError(f"freqs: integrate-and-dump needs f * T whole; {bad} Hz * {T} s = "
                         f"{bad * T} periods (use multiples of 1/T = {1 / T} Hz)")


DECIMATION = fixed.BW3_DECIMATION


@dataclass(frozen=True)
class LockinFilter:
    """The low-pass of a lock-in: a pre-sum of 8, then the Butterworth at fs/8.

    Float design, its Q2.30 quantisation, and the gain read at the window's end.
    """

    fs: float
    T: float
    n: int                    # window, samples at fs
    fc: float
    sos: np.ndarray           # float64 design at fs_d, [biquad, first-order]
    coeffs: tuple             # (b0, b1, b2, a1, a2, c0, c1, d1, b_shift)
    gain_float: float         # step response of sos at decimated sample n_d - 1
    gain_fixed: float         # step response of the quantised filter there
    decimation: int = DECIMATION

    @property
    def fs_d(self) -> float:
        return self.fs / self.decimation

    @property
    def n_d(self) -> int:
        return self.n // self.decimation


@functools.lru_cache(maxsize=64)
def lockin_filter(fs: float, T: float, n: int | None = None, fc: float | None = None) -> LockinFilter:
    """Design the lock-in low-pass for a window of ``T`` s at ``fs`` Hz: a pre-sum of 8 samples,
    then a third-order Butterworth at fs/8 whose step response is 98 % settled at T."""
    v.positive("fs", fs)
    v.positive("T", T)
    n = int(round(T * fs)) if n is None else int(n)
    fc = butterworth_cutoff(T) if fc is None else float(fc)
    fs_d = fs / DECIMATION
    if n < DECIMATION:
        raise ValueError(f"samples: the Butterworth lock-in needs at least {DECIMATION} samples, got {n}")
    if fc >= fs_d / 2:
        raise ValueError(f"T = {T} s is too short for the Butterworth at fs = {fs} Hz: its cut-off "
                         f"{fc:.1f} Hz must stay below fs/16 = {fs_d / 2:g} Hz (it runs at fs/8)")
    sos = butterworth3_sos(fc, fs_d)
    coeffs = quantize_butterworth3(sos)
    n_d = n // DECIMATION
    return LockinFilter(fs, T, n, fc, sos, coeffs, step_gain(sos, n_d), step_gain(coeffs_to_sos(coeffs), n_d))


@functools.lru_cache(maxsize=64)
def lockin_weights(fs: float, T: float, filter: str, n: int | None = None,  # noqa: A002
                   quantized: bool = False) -> np.ndarray:
    """Weights ``w_k`` (k = 0..n-1, applied to sample k's product) of a lock-in read at the window's end.

    Integrate-and-dump: 1/n. Butterworth: sample k falls in group k // 8, whose
    pre-sum the filter weights with its impulse response at n_d - 1 - group;
    a trailing partial group weighs 0. ``quantized``: the integer engines'
    Q2.30 filter instead of the float design. Normalised to unit DC gain at T.
    """
    n = int(round(T * fs)) if n is None else int(n)
    if filter == "boxcar":
        w = np.full(n, 1.0 / n)
    else:
        lf = lockin_filter(float(fs), float(T), n)
        sos, gain = (coeffs_to_sos(lf.coeffs), lf.gain_fixed) if quantized else (lf.sos, lf.gain_float)
        h = impulse_response(sos, lf.n_d)[::-1] / gain
        w = np.zeros(n)
        w[:lf.n_d * DECIMATION] = np.repeat(h, DECIMATION) / DECIMATION
    w.flags.writeable = False  # cached and shared: read-only
    return w


def rounding_gain(coeffs, n_d: int) -> float:
    """Worst-case output error (in Q6 LSB) of the integer filter's roundings over n_d filter steps.

    The pre-sum of 8 half-up rounded products is within 4 LSB of exact; it
    passes the whole filter (weights ``g``: at most ``4 sum |g|``). Each filter
    section floors with error feedback, leaving a remainder in [0, 1) LSB,
    written as ``1/2 + u`` with ``|u| <= 1/2``: a shaping filter ``g`` turns it
    into at most ``|sum g| / 2 + sum |g| / 2``. The biquad's error feedback
    makes its output the exact recursion plus ``(e[n-1] - e[n])``: the
    remainder passes ``(1 - z^-1) / A1(z)`` and then the first-order section;
    the first-order section's remainder passes ``(1 - z^-1) / A2(z)``.
    See ``reference/fixed.py``.
    """
    sos_q = coeffs_to_sos(coeffs)
    imp = np.zeros(int(n_d))
    imp[0] = 1.0
    presum = 4.0 * np.sum(np.abs(sig.sosfilt(sos_q, imp)))
    shapes = [
        sig.sosfilt(sos_q[1:], sig.lfilter([1.0, -1.0], sos_q[0, 3:], imp)),
        sig.lfilter([1.0, -1.0], sos_q[1, 3:5], imp),
    ]
    return float(presum + sum(0.5 * abs(np.sum(g)) + 0.5 * np.sum(np.abs(g)) for g in shapes))


def accuracy_bound(amplitude: float, freq: float, filt: LockinFilter) -> float:
    """Bound (codes) on ``|2R_fixed - 2R_float|`` for a noise-free tone of ``amplitude`` codes at ``freq`` Hz.

    Per component (X or Y), with ``w`` the fixed lock-in's weights on the
    window's samples (``lockin_weights``), ``L1 = sum |w|``:

    * reference error: ``L1 * A * REF_ERROR_BOUND`` (``reference/fixed.py``);
    * filter mismatch: the mixer product of a tone is ``(A/2) (cos - cos(2 w n + psi))``.
      Both engines divide by their own gain at T, so the DC part agrees
      exactly; the 2f part differs by ``(A/2) |sum_k (w_fixed - w_float)[k] e^{-j 2 w k}|``;
    * DC removal: the integer mean is within 0.5 code of the exact one:
      ``0.5 * L1`` codes;
    * integer rounding: ``rounding_gain`` Q6 LSB, converted to codes.

    ``|dR| <= sqrt(dX^2 + dY^2) <= sqrt(2) max``, and ``2R`` doubles it.
    """
    n = filt.n
    w_fixed = lockin_weights(filt.fs, filt.T, "butterworth3", n, quantized=True)
    w_float = lockin_weights(filt.fs, filt.T, "butterworth3", n)
    l1 = float(np.sum(np.abs(w_fixed)))
    k = np.arange(n)
    mismatch = 0.5 * amplitude * abs(np.sum((w_fixed - w_float) * np.exp(-2j * (2 * np.pi * freq / filt.fs) * k)))
    lsb_codes = 2.0**fixed.MIXER_SHIFT / fixed.SINE_AMPLITUDE / filt.gain_fixed  # one Q6 LSB
    per_component = (l1 * amplitude * fixed.REF_ERROR_BOUND + mismatch + 0.5 * l1
                     + rounding_gain(filt.coeffs, filt.n_d) * lsb_codes)
    return 2.0 * np.sqrt(2.0) * per_component


def boxcar_accuracy_bound(amplitude: float) -> float:
    """Bound (codes) on ``|2R_fixed - 2R_float|`` for integrate-and-dump (weights 1/N, L1 = 1).

    Reference error ``A * REF_ERROR_BOUND`` and DC-removal error 0.5 code per
    component; the sums themselves are exact.
    """
    return 2.0 * np.sqrt(2.0) * (amplitude * fixed.REF_ERROR_BOUND + 0.5)
