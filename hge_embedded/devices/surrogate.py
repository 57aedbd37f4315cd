"""The surrogate DNPU response: a seeded, smooth, strongly nonlinear map ``I(V)`` (not a conductor).

This is the first round's static response, kept as the simulator's default model
(``SimulatedDNPU(model="surrogate")``) because the paper's training recipe reaches the
paper's results on it (all 16 gates, sphere ~0.9); the physical hopping network
(``devices.dnpu_physics.HoppingNetwork``, ``model="hopping"``) is passive and
Kirchhoff-exact but, today, the recipe does not learn most inverting gates on it
(see ``docs/design.md``, "Simulated devices").

What it is, and what it is not: a neural-network-like surrogate of a DNPU, the way
the DNPU literature fits surrogates to measured devices, drawn at random from a seed:

* site potentials linear in the electrode voltages (capacitive coupling),
  ``u = W1 V + b1``, 96 sites; each site couples with ``N(0, 1.5^2 / V^2)`` to the
  2 electrodes nearest to it and 0.2 times that to the others;
* a site conducts best when its level aligns with the Fermi level
  (Coulomb-blockade-like peaks): ``g = 2 exp(-u^2) - 1``;
* 32 percolation paths combine sites and saturate: ``p = tanh(W2 g + b2)``;
* the output is a signed sum of paths: ``I = 30 nA * c . p``.

It is *not passive*: with every electrode at 0 V it carries a few nA, and it shows
negative differential resistance along most sweeps. ``current`` and ``gradient``
are exact.
"""
from __future__ import annotations

import numpy as np

N_ELECTRODES = 7
CHUNK = 1024   # samples per evaluation chunk: the (96, CHUNK) intermediates fit in L2


def _chunks(n: int):
    """(start, stop) of the evaluation chunks: ``CHUNK`` samples each, the last one taking the
    remainder (``CHUNK`` to ``2 CHUNK - 1`` samples). BLAS handles the last ``n % 4`` columns of
    a product with an edge kernel whose rounding differs, and a 1-column product with another
    routine: a full-size last chunk keeps every sample on the path the one-shot product of all
    ``n`` samples takes (tested bit for bit)."""
    stops = list(range(CHUNK, n - CHUNK + 1, CHUNK)) + [n]
    return list(zip([0] + stops[:-1], stops))


class SurrogateModel:
    """The seeded surrogate response ``I(V)`` (nA) with its exact gradient (nA/V)."""

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
        """``V`` (7, n) volts -> (n,) nA.

        Evaluated in chunks of ``CHUNK`` samples with in-place arithmetic, so the
        (96, n) intermediates stay in cache and a long record (a training
        iteration: ~3.5e5 samples) needs no 265 MB temporaries. Bit for bit what
        the one-shot expression ``scale * (c @ tanh(W2 (2 exp(-u^2) - 1) + b2))``
        gives (each element sees the same operations in the same order; tested).
        """
        V = np.asarray(V, float)
        n = V.shape[1]
        out = np.empty(n)
        b1, b2 = self.b1[:, None], self.b2[:, None]
        for s, stop in _chunks(n):
            u = self.W1 @ V[:, s:stop]
            u += b1
            e = np.multiply(u, u, out=u)       # -u*u == -(u*u) exactly: negation is exact
            np.negative(e, out=e)
            np.exp(e, out=e)
            e *= 2.0
            e -= 1.0                           # g = 2 e - 1
            p = self.W2 @ e
            p += b2
            np.tanh(p, out=p)
            out[s:stop] = self.c @ p
        out *= self.scale
        return out

    def gradient(self, V: np.ndarray) -> np.ndarray:
        """``V`` (7, n) volts -> (7, n) dI/dV in nA/V (in chunks of ``CHUNK`` samples)."""
        V = np.asarray(V, float)
        out = np.empty(V.shape)
        for s, stop in _chunks(V.shape[1]):
            u, e, p = self._forward(V[:, s:stop])
            dp = self.c[:, None] * (1.0 - p * p)
            dg = (self.W2.T @ dp) * (-4.0 * u * e)
            out[:, s:stop] = self.scale * (self.W1.T @ dg)
        return out
