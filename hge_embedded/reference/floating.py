"""Float64 ideal of the lock-in: exact sin/cos references, the unquantised
scipy-designed Butterworth, exact DC removal. The yardstick ``engine="float"``."""
from __future__ import annotations

import numpy as np
import scipy.signal as sig


def references(n: int, fs: float, freqs, phases):
    """Exact ``sin`` and ``cos`` of ``2 pi f t + phi`` at t = k / fs, shape (M, n)."""
    t = np.arange(n) / fs
    arg = 2 * np.pi * np.asarray(freqs, float)[:, None] * t[None, :] + np.asarray(phases, float)[:, None]
    return np.sin(arg), np.cos(arg)


def lockin(x, fs: float, freqs, phases, *, filter: str, sos=None, gain: float = 1.0,  # noqa: A002
           remove_dc: bool = True, decimation: int = 8):
    """Demodulate ``x`` (float, shape (n,)) at each frequency; returns ``(X, Y)``, each (M,).

    ``filter="butterworth3"``: mix, average groups of ``decimation`` products
    (the pre-sum), run ``sos`` (designed at fs / decimation) with
    ``scipy.signal.sosfilt``, read the last output and divide by ``gain`` (the
    step response there). ``filter="boxcar"``: the mean of the products.
    """
    x = np.asarray(x, dtype=float)
    if remove_dc:
        x = x - x.mean()
    s, c = references(x.size, fs, freqs, phases)
    if filter == "boxcar":
        return (s * x).mean(axis=1), (c * x).mean(axis=1)
    prod = np.concatenate([s * x, c * x])
    groups = prod.shape[1] // decimation
    prod = prod[:, :groups * decimation].reshape(prod.shape[0], groups, decimation).mean(axis=2)
    out = sig.sosfilt(sos, prod, axis=1)[:, -1] / gain
    m = len(freqs)
    return out[:m], out[m:]
