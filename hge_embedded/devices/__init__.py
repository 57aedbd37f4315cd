"""Devices: anything with ``fs``, ``n_electrodes``, ``limits`` and ``measure(volts) -> current``.

See docs/design.md section 3. ``measure`` takes float64 volts of shape
``(n_electrodes, n_samples)`` and returns float64 nA of shape ``(n_samples,)``,
aligned sample for sample; ramps to and from 0 V and chain delays known in
whole samples are the device's business and never appear in the result.

Optional attributes a device may offer, used when present:
``full_scale`` (nA at ADC code 2^23 - 1, for exact code conversion),
``loopback(volts) -> (n_samples,)`` (the chain without the device, for
``calibrate``), ``close()``, ``get_state() -> dict`` / ``set_state(dict)`` (a small
JSON-able state that checkpoints store; see docs/design.md section 3).
"""
from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Device(Protocol):
    fs: float
    n_electrodes: int
    limits: np.ndarray  # (n_electrodes, 2), volts

    def measure(self, volts: np.ndarray) -> np.ndarray: ...


def check_volts(volts, limits, *, name: str = "volts") -> np.ndarray:
    """The voltage gate: refuse (raise) any sample outside an electrode's limits.

    Every path that can reach hardware calls this before anything is written.
    """
    v = np.asarray(volts, dtype=float)
    lim = np.asarray(limits, dtype=float)
    if v.ndim != 2 or v.shape[0] != lim.shape[0]:
        raise ValueError(f"{name} must have shape ({lim.shape[0]}, n_samples), got {v.shape}")
    if not np.all(np.isfinite(v)):
        raise ValueError(f"{name} must be finite")
    lo, hi = lim[:, :1], lim[:, 1:]
    bad = (v < lo) | (v > hi)
    if bad.any():
        e, k = np.argwhere(bad)[0]
        raise ValueError(f"{name}: electrode {e + 1} at sample {k} is {v[e, k]:.6g} V, outside its "
                         f"limits [{lim[e, 0]:.6g}, {lim[e, 1]:.6g}] V; nothing was applied")
    return v
