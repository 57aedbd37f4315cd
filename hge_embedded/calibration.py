"""Chain calibration: the complex gain ``H(f)`` between an applied perturbation and the sampled output.

A real chain (IV converter, anti-alias filter, delta-sigma ADC) delays and
attenuates each frequency differently. The phase-calibrated estimator divides
each channel's ``X + jY`` by ``H(f_m)``; without it, ``2X/a`` is biased by
``|H| cos(arg H)`` and the paper's ``2R/a`` by ``|H|``.

Two ways to measure H, chosen by what the device offers:

``loopback``  the device has ``loopback(volts)``: a known reference resistor (or
              a spare AI channel wired to an AO output) in place of the device.
              A multi-tone on electrode 1 gives gain and phase at every
              frequency in one window, by least squares (exact for any
              frequency, no crosstalk).
``phase``     otherwise: perturb the device at random bias points; each
              channel's ``X + jY`` is ``(a dI/dV / 2) H`` with ``dI/dV`` real of
              unknown sign, so ``arg H = arg(sum (X + jY)^2) / 2`` (branch with
              |arg H| < 90 deg); the gain stays 1.
"""
from __future__ import annotations

import functools
import json
from dataclasses import dataclass

import numpy as np

from . import _validate as v
from .devices import check_volts

LOOPBACK_NA_PER_V = 10.0  # the simulator's reference resistor (100 MOhm)


@dataclass
class Calibration:
    freqs: np.ndarray      # Hz, ascending
    response: np.ndarray   # complex chain gain at freqs
    method: str

    def at(self, freqs) -> np.ndarray:
        """H at ``freqs``: linear interpolation of gain and unwrapped phase; no extrapolation."""
        f = np.atleast_1d(np.asarray(freqs, float))
        lo, hi = self.freqs.min(), self.freqs.max()
        if np.any((f < lo - 1e-9) | (f > hi + 1e-9)):
            raise ValueError(f"freqs: calibration covers {lo:g}..{hi:g} Hz, asked for {f.tolist()}")
        if self.freqs.size == 1:
            return np.full(f.size, self.response[0])
        gain = np.interp(f, self.freqs, np.abs(self.response))
        phase = np.interp(f, self.freqs, np.unwrap(np.angle(self.response)))
        return gain * np.exp(1j * phase)

    def to_dict(self) -> dict:
        return {"freqs": self.freqs.tolist(), "gain": np.abs(self.response).tolist(),
                "phase_rad": np.angle(self.response).tolist(), "method": self.method}

    @classmethod
    def from_dict(cls, d: dict) -> "Calibration":
        for key in ("freqs", "gain", "phase_rad", "method"):
            if key not in d:
                raise ValueError(f"calibration: missing key {key!r}")
        f = np.asarray(d["freqs"], float)
        h = np.asarray(d["gain"], float) * np.exp(1j * np.asarray(d["phase_rad"], float))
        order = np.argsort(f)
        return cls(f[order], h[order], str(d["method"]))

    def save(self, path) -> None:
        with open(path, "w") as fh:
            json.dump(self.to_dict(), fh, indent=1)

    @classmethod
    def load(cls, path) -> "Calibration":
        with open(path) as fh:
            return cls.from_dict(json.load(fh))


@functools.lru_cache(maxsize=256)
def tone_basis(fs: float, freqs: tuple, n: int):
    """The basis ``[sin, cos, 1, t]`` of a window and its pseudo-inverse (cached: windows repeat)."""
    t = np.arange(n) / fs
    arg = 2 * np.pi * np.outer(t, freqs)
    A = np.column_stack([np.sin(arg), np.cos(arg), np.ones_like(t), t - t.mean()])
    return A, np.linalg.pinv(A)


def fit_tones(samples, fs: float, freqs, *, residual: bool = False):
    """Least-squares complex amplitudes ``alpha + j beta`` of ``alpha sin + beta cos`` at each f (plus DC
    and slope) of the last axis of ``samples``; with ``residual`` also what the fit leaves."""
    y = np.asarray(samples, float)
    A, pinv = tone_basis(float(fs), tuple(float(f) for f in np.atleast_1d(freqs)), y.shape[-1])
    coef = y @ pinv.T
    m = len(np.atleast_1d(freqs))
    z = coef[..., :m] + 1j * coef[..., m:2 * m]
    return (z, y - coef @ A.T) if residual else z


def calibrate(device, freqs, *, T: float = 0.1, amplitude: float = 0.05, windows: int = 4,
              points: int = 16, rng=None) -> Calibration:
    """Measure the chain's complex gain at ``freqs`` (Hz). See the module docstring."""
    f = np.sort(v.float_array("freqs", np.atleast_1d(freqs), ndim=1))
    v.positive("T", T)
    v.positive("amplitude", amplitude)
    n = int(round(T * device.fs))
    t = np.arange(n) / device.fs
    if hasattr(device, "loopback"):
        a = amplitude / max(1, f.size) ** 0.5
        volts = np.zeros((device.n_electrodes, n))
        volts[0] = a * np.sin(2 * np.pi * np.outer(f, t)).sum(axis=0)
        check_volts(volts, device.limits)
        acc = np.zeros(f.size, complex)
        for _ in range(windows):
            acc += fit_tones(device.loopback(volts), device.fs, f)
        return Calibration(f, acc / windows / (a * LOOPBACK_NA_PER_V), "loopback")

    # Phase only: the sign of dI/dV is unknown, so square to fold it away.
    from .gradient import extract_gradient  # late import: gradient uses calibrations
    rng = np.random.default_rng(rng)
    lim = np.asarray(device.limits, float)
    margin = 0.05
    acc = np.zeros(f.size, complex)
    for _ in range(points):
        bias = rng.uniform(lim[:, 0] + margin, lim[:, 1] - margin)
        r = extract_gradient(device, bias, electrodes=np.arange(1, f.size + 1), freqs=f, T=T,
                             phase="inphase", filter="butterworth3")
        z = r.X + 1j * r.Y
        acc += z * z
    theta = np.angle(acc) / 2.0
    return Calibration(f, np.exp(1j * theta), "phase")
