"""Coloured noise with a prescribed one-sided PSD: white plus 1/f^beta, continuous across windows.

``S(f) = white + pink_level * (f_ref / f)^beta`` in nA^2/Hz. Noise is made by
shaping white Gaussian noise in the frequency domain over a long segment and
served in consecutive chunks, so successive windows see the correlated
low-frequency wander that makes finite differences suffer (the segment length
sets the lowest frequency represented).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class NoiseModel:
    """Output-current noise of the device and chain (one-sided densities, nA^2/Hz)."""

    white: float = 0.0            # white density, nA^2/Hz
    pink_level: float = 1e-5      # 1/f^beta density at f_ref, nA^2/Hz (the paper: 1e-5 at 1 kHz)
    f_ref: float = 1000.0         # Hz
    beta: float = 1.5             # spectral slope (the paper: 1.5)
    drift: float = 0.0            # linear drift, nA/s

    def psd(self, f) -> np.ndarray:
        """One-sided PSD at frequencies f > 0 (nA^2/Hz)."""
        f = np.asarray(f, dtype=float)
        return self.white + self.pink_level * (self.f_ref / f) ** self.beta


class NoiseSource:
    """Consecutive chunks of noise with the PSD of ``model`` at sample rate ``fs``."""

    def __init__(self, model: NoiseModel, fs: float, rng: np.random.Generator, segment: int = 1 << 20):
        self.model, self.fs, self.rng, self.segment = model, float(fs), rng, int(segment)
        self._buf = np.empty(0)
        self._t = 0.0  # seconds served so far, for drift
        # The segment being served is a function of the generator's state before it was made,
        # so (that state, samples served from it) is the whole state: get_state stays small.
        self._seg_state = None
        self._pos = 0

    def _new_segment(self) -> np.ndarray:
        n = self.segment
        f = np.fft.rfftfreq(n, 1.0 / self.fs)
        s = np.zeros_like(f)
        s[1:] = self.model.psd(f[1:])
        # Real white noise has one-sided PSD 2 sigma^2 / fs; scale bins so the
        # synthesised series has PSD s: |X_k|^2 = s_k * fs * n / 2 for rfft bins.
        amp = np.sqrt(s * self.fs * n / 4.0)
        spec = amp * (self.rng.standard_normal(f.size) + 1j * self.rng.standard_normal(f.size))
        spec[0] = 0.0
        if n % 2 == 0:
            spec[-1] = amp[-1] * np.sqrt(2.0) * self.rng.standard_normal()
        return np.fft.irfft(spec, n)

    def take(self, n: int) -> np.ndarray:
        """The next ``n`` samples (nA)."""
        out = np.empty(n)
        filled = 0
        while filled < n:
            if self._pos >= self._buf.size:
                self._seg_state = self.rng.bit_generator.state
                self._buf, self._pos = self._new_segment(), 0
            k = min(n - filled, self._buf.size - self._pos)
            out[filled:filled + k] = self._buf[self._pos:self._pos + k]
            self._pos += k
            filled += k
        if self.model.drift:
            out += self.model.drift * (self._t + np.arange(n) / self.fs)
        self._t += n / self.fs
        return out

    def get_state(self) -> dict:
        """Small, JSON-able state: the generator before the current segment, the position in it."""
        if self._seg_state is None:
            return {"rng": self.rng.bit_generator.state, "segment_rng": None, "pos": 0, "t": self._t}
        return {"rng": self.rng.bit_generator.state, "segment_rng": self._seg_state,
                "pos": int(self._pos), "t": self._t}

    def set_state(self, st: dict) -> None:
        """Continue exactly where ``get_state`` was taken (the segment is made again from its seed state)."""
        if st["segment_rng"] is None:
            self._buf, self._pos, self._seg_state = np.empty(0), 0, None
        else:
            self.rng.bit_generator.state = st["segment_rng"]
            self._seg_state = st["segment_rng"]
            self._buf, self._pos = self._new_segment(), int(st["pos"])
        self.rng.bit_generator.state = st["rng"]
        self._t = float(st["t"])
