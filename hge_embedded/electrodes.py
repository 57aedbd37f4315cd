"""The one place where electrode numbers people type (1-based) become array indices (0-based)."""
from __future__ import annotations

import numpy as np


def to_index(electrodes, n_electrodes: int) -> np.ndarray:
    """1-based electrode numbers -> 0-based indices; ``None`` means all electrodes."""
    if electrodes is None:
        return np.arange(n_electrodes)
    e = np.atleast_1d(np.asarray(electrodes))
    if e.dtype.kind not in "iu" or e.ndim != 1 or e.size == 0:
        raise ValueError(f"electrodes must be a non-empty list of electrode numbers 1..{n_electrodes}, got {electrodes!r}")
    if e.min() < 1 or e.max() > n_electrodes:
        raise ValueError(f"electrodes are numbered 1..{n_electrodes}, got {e.tolist()}")
    if np.unique(e).size != e.size:
        raise ValueError(f"electrodes must not repeat, got {e.tolist()}")
    return e.astype(int) - 1


def to_number(index) -> np.ndarray:
    return np.asarray(index, dtype=int) + 1
