"""Least-squares tone fitting: the complex amplitude of known frequencies in one window.

A DSP primitive shared by calibration (chain response), gradient (the DAC's
applied fundamental) and analysis (the residual noise spectrum). For a
linear response the fit is exact at any frequency and any window length:
no settling, no crosstalk between tones, no plan rules beyond distinct
frequencies.
"""
from __future__ import annotations

import functools

import numpy as np


@functools.lru_cache(maxsize=256)
def tone_basis(fs: float, freqs: tuple, n: int):
    """The basis ``[sin, cos, 1, t]`` of a window of ``n`` samples and its pseudo-inverse.

    Cached (windows repeat). Returns ``(A, pinv)`` with ``A`` of shape
    ``(n, 2 M + 2)`` for ``M = len(freqs)``.
    """
    t = np.arange(n) / fs
    arg = 2 * np.pi * np.outer(t, freqs)
    A = np.column_stack([np.sin(arg), np.cos(arg), np.ones_like(t), t - t.mean()])
    pinv = np.linalg.pinv(A)
    A.flags.writeable = False
    pinv.flags.writeable = False
    return A, pinv


def fit_tones(samples, fs: float, freqs, *, residual: bool = False):
    """Least-squares complex amplitudes of tones in ``samples``.

    Parameters
    ----------
    samples : (..., n) array
        Windows along the last axis.
    fs : float
        Sample rate, Hz.
    freqs : (M,) array
        Hz.
    residual : bool
        Also return what the fit (tones, DC and a slope) leaves.

    Returns
    -------
    z : (..., M) complex array
        ``alpha + j beta`` of ``alpha sin(2 pi f t) + beta cos(2 pi f t)``: a
        component ``A sin(2 pi f t + theta)`` gives ``A e^{j theta}`` (twice the
        lock-in's ``X + jY``).
    r : (..., n) array, only with ``residual``
    """
    y = np.asarray(samples, float)
    f = tuple(float(x) for x in np.atleast_1d(freqs))
    A, pinv = tone_basis(float(fs), f, y.shape[-1])
    coef = y @ pinv.T
    m = len(f)
    z = coef[..., :m] + 1j * coef[..., m:2 * m]
    return (z, y - coef @ A.T) if residual else z
