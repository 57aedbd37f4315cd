"""Devices we did not design, for `hge --device cli_devices:NAME` in the CLI tests (PYTHONPATH=tests)."""
import numpy as np

from hge_embedded import SimulatedDNPU


class FiveElectrodes:
    """A plain object with 5 electrodes: the simulator with electrodes 6 and 7 held at 0 V."""

    def __init__(self):
        self._sim = SimulatedDNPU(seed=0, noise=False)
        self.fs = self._sim.fs
        self.n_electrodes = 5
        self.limits = self._sim.limits[:5].copy()

    def measure(self, volts):
        v = np.zeros((7, volts.shape[1]))
        v[:5] = volts
        return self._sim.measure(v)


class Broken:
    fs, n_electrodes = 10_000.0, 7
    limits = np.array([[-1.2, 0.7]] * 7)

    def measure(self, volts):
        raise RuntimeError("the probe station lost contact")


def five():
    return FiveElectrodes()


def broken():
    return Broken()


def missing_measure():
    return object()
