"""Bit-exact integer model of the C core in ``csrc/``.

Each function here has the name and the steps of the C routine it models, so a
reader can check one against the other line by line. numpy ``int64`` is used
wherever the C code uses ``int64_t``; the bounds in ``csrc/hge_lockin.c`` show
no intermediate value reaches 2^63, so numpy's silent wrap-around never occurs.
numpy's ``>>`` on signed integers is an arithmetic shift (floor), which is
what ``hge_types.h`` pins for the C side.

Reference accuracy (the error budget behind ``tests/test_accuracy.py``)
-----------------------------------------------------------------------
Let the ideal reference be ``A_r sin(phi)`` with ``A_r = 2^22 - 1``.

* Table rounding: each entry within 0.5 LSB of ``A_r sin``.
* Linear interpolation between entries ``D = 2 pi / 1024`` apart: the chord
  lies ``A_r u (1 - u) D^2 / 2 |sin|`` (to first order) inside the sine, u the
  position between nodes, at most ``A_r D^2 / 8 = 4.7e-6 A_r`` = 19.7 LSB.
* Rounding of the interpolation step (half-up): 0.5 LSB.
* Phase: 6 dropped phase bits plus the one-LSB mirror in odd quadrants:
  below ``2 pi 2^-26`` rad, i.e. ``9.4e-8 A_r``.

So ``|ref - A_r sin(phi)| <= REF_ERROR_BOUND * A_r`` with
``REF_ERROR_BOUND = 4.7e-6 + 2.4e-7 + 9.4e-8 < 5.1e-6`` for every phase.

A lock-in output is a weighted sum ``sum_n w_n x_n ref_n / A_r`` whose weights
(the filter's impulse response read at the window's end, or 1/N) have
``sum |w_n| = L1``. A reference error ``e_n`` then moves ``X`` (or ``Y``) by at
most ``L1 * max|x| * REF_ERROR_BOUND``, and ``R`` by at most ``sqrt(2)`` times
that. For the Butterworth used here ``L1 < 1.2``, so the reference alone
contributes ``|2R_fixed - 2R_float| <= 2 sqrt(2) 1.2 5.1e-6 A = 1.8e-5 A``; the
integer path's own roundings come on top (next paragraph).

Rounding: each mixer product is rounded half-up to the pre-sum's format
(error in [-1/2, 1/2) LSB, so a pre-sum of 8 is off by less than 4 LSB,
weighted by the filter's ``L1``); each filter section floors with error feedback, so its
output is the exact recursion plus ``(e[n-1] - e[n]) / 2^30`` with
``e in [0, 2^30)``: a noise of at most one LSB per sample shaped by
``(1 - z^-1) / A(z)`` (and the sections after it). ``hge_embedded.design.
rounding_gain`` computes the L1 norms of those shaping filters, and
``hge_embedded.design.accuracy_bound`` adds it all up; the accuracy test
checks against that number and that the number is below 1e-4 of the tone.
"""
from __future__ import annotations

import numpy as np

SINE_TABLE_BITS = 8
SINE_TABLE_SIZE = 1 << SINE_TABLE_BITS
SINE_AMPLITUDE = (1 << 22) - 1
QUARTER_TURN = 1 << 30
MIXER_SHIFT = 16
BW3_DECIMATION = 8
PRESUM_SHIFT = 19
REF_ERROR_BOUND = (2 * np.pi / 1024) ** 2 / 8 + 1.0 / SINE_AMPLITUDE + 2 * np.pi * 2.0 ** -26
FILTER_MIN = -(1 << 30)
FILTER_MAX = (1 << 30) - 1
SAMPLE_MIN = -(1 << 23)
SAMPLE_MAX = (1 << 23) - 1
COEF_SHIFT = 30
BOXCAR_MAX_SAMPLES = 1 << 17
MEAN_MAX_SAMPLES = 1 << 24
I64_MAX = (1 << 63) - 1
_MASK32 = 0xFFFFFFFF
_REMAINDER_MASK = (1 << COEF_SHIFT) - 1


def sine_table() -> np.ndarray:
    """The 257-entry quarter-wave Q22 table: ``round((2^22 - 1) sin(pi/2 i / 256))``."""
    i = np.arange(SINE_TABLE_SIZE + 1)
    return np.round(SINE_AMPLITUDE * np.sin(0.5 * np.pi * i / SINE_TABLE_SIZE)).astype(np.int32)


_TABLE = sine_table().astype(np.int64)


def sin_q22(phase) -> np.ndarray:
    """``hge_sin_q22``: Q22 sine of uint32 phases (2^32 per turn), as int64."""
    phase = np.asarray(phase, dtype=np.uint64) & np.uint64(_MASK32)
    quadrant = phase >> np.uint64(30)
    pos = phase & np.uint64(0x3FFFFFFF)
    pos = np.where(quadrant & np.uint64(1), pos ^ np.uint64(0x3FFFFFFF), pos)
    idx = (pos >> np.uint64(30 - SINE_TABLE_BITS)).astype(np.int64)
    frac = ((pos >> np.uint64(14 - SINE_TABLE_BITS)) & np.uint64(0xFFFF)).astype(np.int64)
    lo = _TABLE[idx]
    v = lo + (((_TABLE[idx + 1] - lo) * frac + 32768) >> 16)
    return np.where(quadrant & np.uint64(2), -v, v)


def condition(x, dc: int) -> np.ndarray:
    """``hge_condition``: ``sat24(x - dc)`` as int64 (the C side's 32-bit route gives the same)."""
    return np.clip(np.asarray(x, dtype=np.int64) - int(dc), SAMPLE_MIN, SAMPLE_MAX)


def mean_q0(x) -> int:
    """``hge_mean_q0``: round-half-up mean of 24-bit-saturated codes."""
    x = condition(x, 0)
    n = x.size
    if n == 0 or n > MEAN_MAX_SAMPLES:
        raise ValueError(f"x: need 1..{MEAN_MAX_SAMPLES} samples, got {n}")
    s = int(x.sum())
    return (2 * s + n) // (2 * n)


def phases_at(steps, phases, n: int) -> np.ndarray:
    """uint32 phase of every terminal at samples 0..n-1, shape (M, n), as uint64."""
    steps = np.asarray(steps, dtype=np.uint64)[:, None]
    phases = np.asarray(phases, dtype=np.uint64)[:, None]
    k = np.arange(n, dtype=np.uint64)[None, :]
    return (phases + k * steps) & np.uint64(_MASK32)


def mix(x, dc, steps, phases):
    """Conditioned samples times sin and cos references (Q22 products), shape (M, n)."""
    xv = condition(x, dc)[None, :]
    ph = phases_at(steps, phases, xv.shape[1])
    return xv * sin_q22(ph), xv * sin_q22(ph + np.uint64(QUARTER_TURN))


def _section_out(acc):
    """Split accumulators into saturated Q6 outputs and 30-bit remainders."""
    return np.clip(acc >> COEF_SHIFT, FILTER_MIN, FILTER_MAX), acc & _REMAINDER_MASK


def lockin_bw3(x, steps, phases, coeffs, dc: int = 0):
    """``hge_lockin_bw3_process`` on a fresh instance, then ``_output``.

    ``coeffs`` is ``(b0, b1, b2, a1, a2, c0, c1, d1, b_shift)``: b in
    Q(30 + b_shift), the rest Q2.30. Products are rounded half-up by 2^19 and
    summed in groups of 8 (from the first sample; a last partial group is not
    filtered), and the sums run through the filter. Returns the int64 final
    outputs ``(out_i, out_q)``, each shape (M,).
    """
    b0, b1, b2, a1, a2, c0, c1, d1, b_shift = (int(v) for v in coeffs)
    pi, pq = mix(x, dc, steps, phases)
    p = (np.concatenate([pi, pq]) + (1 << (PRESUM_SHIFT - 1))) >> PRESUM_SHIFT  # (2M, n): I rows, Q rows
    ch, n = p.shape
    groups = n // BW3_DECIMATION
    u = p[:, :groups * BW3_DECIMATION].reshape(ch, groups, BW3_DECIMATION).sum(axis=2)
    x1 = np.zeros(ch, np.int64); x2 = np.zeros(ch, np.int64)
    y1 = np.zeros(ch, np.int64); y2 = np.zeros(ch, np.int64)
    z1 = np.zeros(ch, np.int64)
    e1 = np.zeros(ch, np.int64); e2 = np.zeros(ch, np.int64)
    for k in range(groups):
        uk = u[:, k]
        num = (b0 * uk + b1 * x1 + b2 * x2) >> b_shift
        y, e1 = _section_out(num - a1 * y1 - a2 * y2 + e1)
        z1, e2 = _section_out(c0 * y + c1 * y1 - d1 * z1 + e2)
        x2, x1, y2, y1 = x1, uk, y1, y
    m = ch // 2
    return z1[:m], z1[m:]


def lockin_boxcar(x, steps, phases, dc: int = 0):
    """``hge_lockin_boxcar_process`` on a fresh instance: exact Q22 sums (int64)."""
    n = np.asarray(x).size
    if n > BOXCAR_MAX_SAMPLES:
        raise ValueError(f"x: at most {BOXCAR_MAX_SAMPLES} samples, got {n}")
    pi, pq = mix(x, dc, steps, phases)
    return pi.sum(axis=1), pq.sum(axis=1)


def _sat64(v: int) -> int:
    return max(-I64_MAX, min(I64_MAX, v))


def update_accumulate(g, dEdI, dIdV):
    """``hge_update_accumulate``: g[m] += sum_k dEdI[k] dIdV[k, m], saturating per add."""
    g = [int(v) for v in np.asarray(g, dtype=np.int64)]
    dEdI = np.asarray(dEdI, dtype=np.int64)
    dIdV = np.asarray(dIdV, dtype=np.int64)
    for k in range(dEdI.size):
        for m in range(len(g)):
            g[m] = _sat64(g[m] + int(dEdI[k]) * int(dIdV[k, m]))
    return np.array(g, dtype=np.int64)


def update_process(w, g, w_min, w_max, eta: int, shift: int):
    """``hge_update_process``: one clamped, rounded gradient step on DAC codes."""
    out = []
    for wm, gm, lo, hi in zip(w, g, w_min, w_max):
        p = _sat64(int(gm) * int(eta))
        delta = p if shift == 0 else ((p >> (shift - 1)) + 1) >> 1
        delta = max(-(1 << 33), min(1 << 33, delta))
        out.append(max(int(lo), min(int(hi), int(wm) - delta)))
    return np.array(out, dtype=np.int32)
