"""The simulated DNPU: a seeded, smooth, strongly nonlinear 7-electrode device and its measurement chain.

Static response
---------------
DNPUs conduct by variable-range hopping between dopant sites, and the
literature models them with neural-network surrogates. This device is such a
surrogate, drawn at random from a seed (nothing is fitted to any task):

* site potentials are linear in the electrode voltages (capacitive coupling):
  ``u = W1 V + b1``, 96 sites. Electrostatics makes coupling local: each site
  couples with ``N(0, 1.5^2 / V^2)`` to the 2 electrodes nearest to it and
  0.2 times that to the others;
* a site conducts best when its level aligns with the Fermi level and less on
  either side (Coulomb-blockade-like peaks, the non-monotonic, negative
  differential resistance regime reported for DNPUs): ``g = 2 exp(-u^2) - 1``;
* 32 percolation paths combine sites and saturate: ``p = tanh(W2 g + b2)``,
  ``W2 ~ N(0, 1 / 96)``;
* the output current is a signed sum of paths: ``I = 30 nA * c . p``.

Currents span tens of nA over the electrode box (controls [-1.2, 0.6] V,
inputs [-0.7, 0.7] V). ``static_current`` and ``true_gradient`` are exact and
noise-free.

How these numbers were chosen (all structural, none fitted to a task): the
device must be rich on the scale of the tasks (~0.3 V: all 16 gates, the
3-D sphere) yet smooth on the scale of the 8 mV perturbation, where a
parallel HGE window reads ``dI/dV_m + sum_n (a_n^2 / 4) d^3 I / dV_m dV_n^2``.
Dense coupling of every site to all 7 electrodes made that cross term reach
6 % of the RMS gradient; local coupling and unsaturated paths keep it near
1 %, while exact-gradient training still finds every gate and ~0.9 sphere
accuracy.

Measurement chain (what ``measure`` adds)
-----------------------------------------
DAC quantisation (16 bit over +-10 V) -> device -> current noise (white plus
1/f^beta, continuous across calls; default the paper's 1e-5 nA^2/Hz at 1 kHz
with slope 1.5) -> IV converter and anti-alias filter (first-order,
``chain_bandwidth`` Hz) -> delay of ``chain_delay`` samples (the whole samples
are taken out, as the Device protocol asks; the fraction stays, applied by
linear interpolation) -> IV converter range (hard clip at +-110 nA) -> ADC
quantisation (24 bit over the IV range). The chain's gain and phase at each
frequency are what ``calibrate`` measures through ``loopback``.
"""
from __future__ import annotations

import numpy as np
import scipy.signal as sig

from . import check_volts
from .noise import NoiseModel, NoiseSource

N_ELECTRODES = 7
CONTROL_RANGE = (-1.2, 0.6)
INPUT_RANGE = (-0.7, 0.7)


class DNPUModel:
    """The seeded static response ``I(V)`` (nA) with its exact gradient (nA/V)."""

    def __init__(self, seed: int = 0, sites: int = 96, paths: int = 32, coupling: float = 1.5,
                 scale: float = 30.0, near: int | None = 2, far: float = 0.2,
                 path_gain: float = 1.0):
        rng = np.random.default_rng(seed)
        self.W1 = rng.normal(0.0, coupling, (sites, N_ELECTRODES))
        if near is not None:
            # Each site sits near `near` electrodes; the others couple `far` times as strongly.
            mask = np.full((sites, N_ELECTRODES), far)
            for j in range(sites):
                mask[j, rng.choice(N_ELECTRODES, near, replace=False)] = 1.0
            self.W1 *= mask
        self.b1 = rng.normal(0.0, 1.0, sites)
        self.W2 = rng.normal(0.0, path_gain / np.sqrt(sites), (paths, sites))
        self.b2 = rng.normal(0.0, 0.5, paths)
        self.c = rng.normal(0.0, 1.0 / np.sqrt(paths), paths)
        self.scale = float(scale)

    def _forward(self, V):
        u = self.W1 @ V + self.b1[:, None]
        e = np.exp(-u * u)
        g = 2.0 * e - 1.0
        p = np.tanh(self.W2 @ g + self.b2[:, None])
        return u, e, p

    def current(self, V: np.ndarray) -> np.ndarray:
        """``V`` (7, n) volts -> (n,) nA."""
        _, _, p = self._forward(V)
        return self.scale * (self.c @ p)

    def gradient(self, V: np.ndarray) -> np.ndarray:
        """``V`` (7, n) volts -> (7, n) dI/dV in nA/V."""
        u, e, p = self._forward(V)
        dp = self.c[:, None] * (1.0 - p * p)
        dg = (self.W2.T @ dp) * (-4.0 * u * e)
        return self.scale * (self.W1.T @ dg)


class SimulatedDNPU:
    """The default device: a simulated DNPU behind an NI-like measurement chain.

    Parameters
    ----------
    seed : int
        Seeds the static response and, unless ``rng`` is given, the noise.
    noise : bool or NoiseModel
        ``True``: the paper's level (1e-5 nA^2/Hz at 1 kHz, 1/f^1.5);
        ``False``: noise-free chain; a ``NoiseModel`` for anything else.
    fs : float
        Sample rate, Hz (10 kHz: cDAQ 9264 out / 9202 in).
    chain_bandwidth : float or None
        First-order bandwidth of IV converter + anti-alias filter, Hz.
    chain_delay : float
        Chain delay in samples; the whole part is removed from the result.
    iv_range : float
        IV converter range, nA: the current clips at +-iv_range.
    dac_bits, adc_bits : int or None
        Quantisation of the voltages (+-10 V) and of the current (+-iv_range).
    """

    def __init__(self, seed: int = 0, noise=True, *, fs: float = 10_000.0,
                 chain_bandwidth: float | None = 5_000.0, chain_delay: float = 2.3,
                 iv_range: float = 110.0, dac_bits: int | None = 16, adc_bits: int | None = 24,
                 limits=None, rng: np.random.Generator | None = None, model: DNPUModel | None = None):
        self.fs = float(fs)
        self.n_electrodes = N_ELECTRODES
        self.limits = np.array([CONTROL_RANGE] * N_ELECTRODES if limits is None else limits, dtype=float)
        if self.limits.shape != (N_ELECTRODES, 2):
            raise ValueError(f"limits must have shape (7, 2), got {self.limits.shape}")
        # The default limits admit both control and input ranges.
        if limits is None:
            self.limits[:, 0] = min(CONTROL_RANGE[0], INPUT_RANGE[0])
            self.limits[:, 1] = max(CONTROL_RANGE[1], INPUT_RANGE[1])
        self.model = model if model is not None else DNPUModel(seed)
        if noise is True:
            noise = NoiseModel()
        self.noise_model = noise if isinstance(noise, NoiseModel) else None
        rng = rng if rng is not None else np.random.default_rng(np.random.SeedSequence([seed, 1]))
        self._noise = NoiseSource(self.noise_model, self.fs, rng) if self.noise_model else None
        self.chain_bandwidth = chain_bandwidth
        if chain_delay < 0:
            raise ValueError(f"chain_delay must be >= 0 samples, got {chain_delay}")
        self.chain_delay = float(chain_delay)
        self.iv_range = float(iv_range)
        self.full_scale = self.iv_range  # nA at ADC code 2^23 - 1
        self.dac_lsb = 20.0 / 2**dac_bits if dac_bits else None  # V per DAC code, for the host
        self.adc_lsb = self.iv_range / (2 ** (adc_bits - 1) - 1) if adc_bits else None
        self.samples_measured = 0

    # -- state, for checkpoints (resume gives the same noise as an uninterrupted run) ----
    def get_state(self) -> dict:
        st = {"samples_measured": self.samples_measured}
        if self._noise is not None:
            st["noise"] = self._noise.get_state()
        return st

    def set_state(self, st: dict) -> None:
        self.samples_measured = int(st["samples_measured"])
        if self._noise is not None:
            self._noise.set_state(st["noise"])

    # -- exact, noise-free views of the device -------------------------------------------
    def static_current(self, V) -> np.ndarray:
        """Exact current (nA) at voltages ``V``: shape (7,) -> scalar, (7, n) -> (n,)."""
        V = np.asarray(V, dtype=float)
        out = self.model.current(V.reshape(N_ELECTRODES, -1))
        return out[0] if V.ndim == 1 else out

    def true_gradient(self, V) -> np.ndarray:
        """Exact dI/dV (nA/V): shape (7,) -> (7,), (7, n) -> (7, n)."""
        V = np.asarray(V, dtype=float)
        g = self.model.gradient(V.reshape(N_ELECTRODES, -1))
        return g[:, 0] if V.ndim == 1 else g

    # -- the chain ---------------------------------------------------------------------
    def _chain(self, current: np.ndarray) -> np.ndarray:
        """IV/anti-alias filter, fractional delay, clip, ADC (steady state before sample 0)."""
        y = current
        if self.chain_bandwidth:
            alpha = np.exp(-2 * np.pi * self.chain_bandwidth / self.fs)
            zi = sig.lfilter_zi([1 - alpha], [1, -alpha]) * y[0]
            y, _ = sig.lfilter([1 - alpha], [1, -alpha], y, zi=zi)
        frac = self.chain_delay - np.floor(self.chain_delay)
        if frac:
            y = (1 - frac) * y + frac * np.concatenate([y[:1], y[:-1]])
        y = np.clip(y, -self.iv_range, self.iv_range)
        if self.adc_lsb:
            y = np.round(y / self.adc_lsb) * self.adc_lsb
        return y

    def _dac(self, volts: np.ndarray) -> np.ndarray:
        return np.round(volts / self.dac_lsb) * self.dac_lsb if self.dac_lsb else volts

    def measure(self, volts) -> np.ndarray:
        """Apply ``volts`` (7, n) and return the output current (n,) in nA, aligned to them."""
        v = check_volts(volts, self.limits)
        current = self.model.current(self._dac(v))
        if self._noise is not None:
            current = current + self._noise.take(current.size)
        self.samples_measured += current.size
        return self._chain(current)

    def loopback(self, volts) -> np.ndarray:
        """The chain without the device: electrode 1's voltage through a 10 nA/V reference
        resistor. What a spare AI channel wired to an AO output measures on the rig."""
        v = check_volts(volts, self.limits)
        self.samples_measured += v.shape[1]
        return self._chain(10.0 * self._dac(v)[0])

    def chain_response(self, freqs) -> np.ndarray:
        """Exact complex gain of the chain at ``freqs`` (for tests; ``calibrate`` measures it)."""
        f = np.asarray(freqs, dtype=float)
        z = np.exp(-2j * np.pi * f / self.fs)
        h = np.ones_like(z)
        if self.chain_bandwidth:
            alpha = np.exp(-2 * np.pi * self.chain_bandwidth / self.fs)
            h = (1 - alpha) / (1 - alpha * z)
        frac = self.chain_delay - np.floor(self.chain_delay)
        return h * ((1 - frac) + frac * z)
