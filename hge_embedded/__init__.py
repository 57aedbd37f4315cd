"""hge-embedded: homodyne gradient extraction for training physical systems in materia.

The public names below are imported on first use (PEP 562 module ``__getattr__``):
``import hge_embedded`` stays fast because scipy.signal, which the DSP modules
need, takes over a second to import and a script that only builds a device or
reads a result should not pay for it.
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

_LAZY = {
    "state_bytes_per_terminal": ".core",
    "Demodulated": ".demod", "demodulate": ".demod",
    "Device": ".devices",
    "SimulatedDNPU": ".devices.simulated",
    "Calibration": ".calibration", "calibrate": ".calibration",
    "GradientResult": ".gradient", "extract_gradient": ".gradient",
    "finite_difference_gradient": ".gradient",
    "check_plan": ".plans", "plan_frequencies": ".plans",
}

__all__ = sorted(_LAZY) + ["__version__"]


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'hge_embedded' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value  # later look-ups skip this hook
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
