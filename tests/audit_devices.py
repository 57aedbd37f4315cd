"""Devices a user might bring to ``hge --device audit_devices:NAME`` (tests put this folder on
sys.path): plain objects with fs, n_electrodes, limits and measure, nothing else."""
import numpy as np

CALLS = {"measure": 0}  # every measure() of every instance, so a test can prove nothing was measured


class Linear:
    """``I = w . V`` nA with white noise (one-sided density ``S`` nA^2/Hz), optionally clipped at
    +-``clip`` nA by a chain that does not say so (no ``full_scale``); records the voltages."""

    def __init__(self, w=(10.0, -6.0, 4.0, 2.0, -3.0, 5.0, 1.0), S=1e-6, clip=None, seed=0):
        self.w = np.asarray(w, float)
        self.n_electrodes, self.fs = self.w.size, 10_000.0
        self.limits = np.array([[-1.0, 1.0]] * self.w.size)
        self.S, self.clip = S, clip
        self.rng = np.random.default_rng(seed)
        self.applied = []

    def measure(self, volts):
        CALLS["measure"] += 1
        volts = np.asarray(volts, float)
        self.applied.append(volts.copy())
        i = self.w @ volts + self.rng.normal(0.0, np.sqrt(self.S * self.fs / 2), volts.shape[1])
        return i if self.clip is None else np.clip(i, -self.clip, self.clip)


def linear():
    return Linear()


def clipping():
    return Linear(clip=5.0)


def limits_list():
    d = Linear()
    d.limits = [[-1.0, 1.0]] * 7
    return d


def float_count():
    d = Linear()
    d.n_electrodes = 7.0
    return d


def count_mismatch():
    d = Linear()
    d.n_electrodes = 6
    return d


def bad_fs():
    d = Linear()
    d.fs = float("nan")
    return d


def factory_fails():
    raise ConnectionError("the probe station is not answering")


class ClippedDNPU:
    """The simulated DNPU's response behind a chain that clips below ``low`` nA and does not say
    so (no full_scale, no loopback): a plain object."""

    def __init__(self, low=-27.0):
        from hge_embedded import SimulatedDNPU
        self._sim = SimulatedDNPU(seed=0, noise=False)
        self.fs, self.n_electrodes = self._sim.fs, 7
        self.limits = self._sim.limits.copy()
        self.low = low

    def measure(self, volts):
        CALLS["measure"] += 1
        return np.maximum(self._sim.model.current(np.asarray(volts, float)), self.low)
