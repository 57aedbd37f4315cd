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


def device_name(device) -> str:
    """A short name for messages: the device's ``name`` attribute if it has one, else its class."""
    name = getattr(device, "name", None)
    return str(name) if isinstance(name, str) and name else type(device).__name__


def has_loopback(device) -> bool:
    """Whether ``calibrate`` can use ``device.loopback``: the method exists and the device does not
    declare ``has_loopback = False`` (an NI setup without a loopback channel)."""
    return callable(getattr(device, "loopback", None)) and bool(getattr(device, "has_loopback", True))


def check_limits(limits, n_electrodes: int | None = None, *, name: str = "limits") -> np.ndarray:
    """Electrode limits as a float ``(n_electrodes, 2)`` array of finite ``[low, high]`` with low <= high.

    The voltage gate fails closed: NaN or infinite limits would make every
    comparison false and let any voltage through, so they are refused here.
    """
    lim = np.asarray(limits, dtype=float)
    if lim.ndim != 2 or lim.shape[1] != 2 or (n_electrodes is not None and lim.shape[0] != n_electrodes):
        want = f"({n_electrodes}, 2)" if n_electrodes is not None else "(n_electrodes, 2)"
        raise ValueError(f"{name} must have shape {want}, got {lim.shape}")
    bad = ~np.all(np.isfinite(lim), axis=1)
    if bad.any():
        e = int(np.argmax(bad))
        raise ValueError(f"{name}: electrode {e + 1} has non-finite limits {lim[e].tolist()} V; "
                         f"the voltage gate refuses to run without finite limits")
    inv = lim[:, 0] > lim[:, 1]
    if inv.any():
        e = int(np.argmax(inv))
        raise ValueError(f"{name}: electrode {e + 1} has inverted limits [{lim[e, 0]:.6g}, {lim[e, 1]:.6g}] V "
                         f"(low above high)")
    return lim


def check_volts(volts, limits, *, name: str = "volts") -> np.ndarray:
    """The voltage gate: refuse (raise) any sample outside an electrode's limits.

    Every path that can reach hardware calls this before anything is written.
    Non-finite or inverted limits are refused too (``check_limits``).
    """
    if np.iscomplexobj(volts):  # np.asarray(float) would drop the imaginary part with a warning
        raise TypeError(f"{name} must be real voltages, got a complex {type(volts).__name__}")
    v = np.asarray(volts, dtype=float)
    lim = check_limits(limits)
    if v.ndim != 2 or v.shape[0] != lim.shape[0]:
        raise ValueError(f"{name} must have shape ({lim.shape[0]}, n_samples), got {v.shape}")
    lo, hi = lim[:, :1], lim[:, 1:]
    # One fused test, two reductions over the record (was: isfinite, v < lo, v > hi, their or):
    # np.min/np.max propagate NaN and a comparison with NaN is False, so a row passes only if it
    # has no NaN and all its samples lie in [min, max] within the finite limits, which also
    # excludes +-inf. Exactly the samples the three passes below refuse make it fail; they then
    # find the first offender for the message.
    if v.shape[1] and bool(np.all((v.min(axis=1) >= lim[:, 0]) & (v.max(axis=1) <= lim[:, 1]))):
        return v
    finite = np.isfinite(v)
    if not finite.all():
        e, k = np.argwhere(~finite)[0]
        raise ValueError(f"{name} must be finite: electrode {e + 1} at sample {k} is {v[e, k]}; nothing was applied")
    bad = (v < lo) | (v > hi)
    if bad.any():
        e, k = np.argwhere(bad)[0]
        raise ValueError(f"{name}: electrode {e + 1} at sample {k} is {v[e, k]:.6g} V, outside its "
                         f"limits [{lim[e, 0]:.6g}, {lim[e, 1]:.6g}] V; nothing was applied")
    return v


def _describe(y) -> str:
    if not isinstance(y, np.ndarray):
        return f"a {type(y).__name__}" + (f" of length {len(y)}" if hasattr(y, "__len__") else "")
    desc = f"an array of dtype {y.dtype} and shape {y.shape}"
    if y.dtype.kind in "fc":
        bad = int(np.size(y) - np.count_nonzero(np.isfinite(y)))
        if bad:
            desc += f" with {bad} non-finite values (NaN {int(np.count_nonzero(np.isnan(y)))})"
    return desc


def measure(device, volts) -> np.ndarray:
    """``device.measure(volts)``, checked: the one call every measurement path goes through.

    Parameters
    ----------
    device : Device
    volts : (n_electrodes, n) array, V
        Already through ``check_volts``.

    Returns
    -------
    (n,) float64 array, nA

    Raises
    ------
    ValueError
        Naming the device's ``measure()`` and what came back, unless it is a
        1-D finite floating-point numpy array of exactly ``n`` samples. A
        wrong length is never trimmed or padded: a device that drops samples
        (say a delay cut off the front) would shift every phase.
    """
    return _checked_call(device, "measure", volts, " (one per voltage sample)")


def loopback(device, volts) -> np.ndarray:
    """``device.loopback(volts)`` with the same checks as ``measure``."""
    return _checked_call(device, "loopback", volts, "")


def _checked_call(device, method: str, volts, per_sample: str) -> np.ndarray:
    """``device.<method>(volts)``, refused unless a 1-D finite float array of one value per sample."""
    n = np.shape(volts)[1]
    y = getattr(device, method)(volts)
    ok = (isinstance(y, np.ndarray) and y.dtype.kind == "f" and y.ndim == 1 and y.size == n
          and bool(np.all(np.isfinite(y))))
    if not ok:
        raise ValueError(f"{device_name(device)}.{method}() must return a 1-D finite float numpy array of "
                         f"{n} samples{per_sample}, got {_describe(y)}")
    return np.asarray(y, dtype=np.float64)
