"""The simulated device and operating point every device figure uses (public API only)."""
from __future__ import annotations

import numpy as np

from ..devices.simulated import SimulatedDNPU

ELECTRODE = 4            # the swept / perturbed electrode of Figs. 2b and 2e (the paper does not say which)
OP_RANGE_V = (-0.6, 0.4)  # operating points drawn here: inside every electrode's limits with 0.1 V to spare


def make_device(ctx, noise=True) -> SimulatedDNPU:
    """The simulated DNPU of ``--seed`` (device response and noise), the paper's noise by default."""
    return SimulatedDNPU(seed=ctx.seed, noise=noise)


def operating_point(ctx, device, candidates: int = 32) -> np.ndarray:
    """A random bias (V, all 7 electrodes) where electrode ``ELECTRODE``'s dI/dV is typical:
    of ``candidates`` uniform draws, the one whose |dI/dV| is nearest the draws' median
    (a point near a zero of the derivative would make every relative figure meaningless)."""
    rng = ctx.rng(99)
    pts = rng.uniform(*OP_RANGE_V, size=(candidates, device.n_electrodes))
    g = np.abs(np.array([device.true_gradient(p)[ELECTRODE - 1] for p in pts]))
    return pts[int(np.argmin(np.abs(g - np.median(g))))]


def dc_level(device, bias, T: float) -> float:
    """Mean measured current (nA) over a window T at a constant ``bias``."""
    n = int(round(T * device.fs))
    return float(np.mean(device.measure(np.repeat(np.asarray(bias, float)[:, None], n, axis=1))))
