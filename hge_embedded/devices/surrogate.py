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
are exact. For the simulator's fast evaluation (``devices.simulated.FastEvaluator``)
it also gives exact analytic second and third derivatives (``taylor_tensors``) and a
bound of its fourth derivative over a box (``fourth_derivative_bound``), from which
the error of that evaluation is bounded.
"""
from __future__ import annotations

import weakref

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

    # -- what the simulator's window expansion needs (devices.simulated.FastEvaluator) ----------
    ramp_knot = 0.05   # V: knot spacing on ramps for this model (Hermite error ~ step^4; see fourth_derivative_bound)

    def current_and_gradient(self, V: np.ndarray, phi0=None):
        """``V`` (7, n) -> (I (n,), dI/dV (7, n), None): both exact, one forward pass (``phi0`` is
        ignored: there is no internal state to warm-start, unlike the hopping network's)."""
        V = np.asarray(V, float)
        I = np.empty(V.shape[1])
        G = np.empty(V.shape)
        for s, stop in _chunks(V.shape[1]):
            u, e, p = self._forward(V[:, s:stop])
            I[s:stop] = self.scale * (self.c @ p)
            dp = self.c[:, None] * (1.0 - p * p)
            G[:, s:stop] = self.scale * (self.W1.T @ ((self.W2.T @ dp) * (-4.0 * u * e)))
        return I, G, None

    def taylor_tensors(self, C: np.ndarray):
        """Exact derivatives at centres ``C`` (7, k): (I (k,), g (7, k), H (k, 7, 7), T (k, 7, 7, 7)),
        analytic (no differences): I = s c . f(z), z = W2 g(u) + b2, u = W1 V + b1, f = tanh,
        g = 2 exp(-u^2) - 1, so with z_j = dz/dV_j = W2 (g' W1_j), z_jl = W2 (g'' W1_j W1_l),
        z_jlm = W2 (g''' W1_j W1_l W1_m):
        H_jl  = s c . (f'' z_j z_l + f' z_jl),
        T_jlm = s c . (f''' z_j z_l z_m + f'' (z_j z_lm + z_l z_jm + z_m z_jl) + f' z_jlm)."""
        C = np.asarray(C, float)
        W1, W2, c, s = self.W1, self.W2, self.c, self.scale
        n_e = W1.shape[1]
        u = W1 @ C + self.b1[:, None]                        # (S, k)
        e = np.exp(-u * u)
        g1 = -4.0 * u * e                                    # g' ; g'' ; g'''
        g2 = (8.0 * u * u - 4.0) * e
        g3 = (24.0 * u - 16.0 * u ** 3) * e
        p = np.tanh(W2 @ (2.0 * e - 1.0) + self.b2[:, None])  # (P, k)
        q = 1.0 - p * p
        cf1, cf2, cf3 = c[:, None] * q, c[:, None] * (-2.0 * p * q), c[:, None] * (q * (6.0 * p * p - 2.0))
        w = W2.T @ cf1                                       # (S, k): sum_P c_P f'_P W2_PS
        I = s * (c @ p)
        grad = s * (W1.T @ (w * g1))
        k, n_p, n_s = C.shape[1], W2.shape[0], W1.shape[0]
        W11, W111 = self._outer_powers()
        # z_j for every centre in one product: (P, S) @ (S, k 7) (not k small batched products).
        X = (g1.T[:, :, None] * W1[None]).transpose(1, 0, 2).reshape(n_s, k * n_e)
        J = (W2 @ X).reshape(n_p, k, n_e).transpose(1, 0, 2)               # z_j  (k, P, 7)
        cJ2 = (cf2.T[:, :, None] * J).transpose(0, 2, 1)                    # (k, 7, P)
        H = s * ((w * g2).T @ W11).reshape(k, n_e, n_e) + s * (cJ2 @ J)
        T = ((w * g3).T @ W111).reshape(k, n_e, n_e, n_e)
        # sum_P cf2_P z_j,P z_lm,P with z_lm = W2 (g'' W1_l W1_m), summed over the paths first:
        # sum_S (sum_P cf2_P z_j,P W2_PS) g''_S W1_Sl W1_Sm, two products over all centres at once
        # ((k 7, P) @ (P, S), then (k 7, S) @ (S, 49)) instead of forming z_lm (k, P, 49): a third
        # of the multiplies.
        A = (cJ2.reshape(k * n_e, n_p) @ W2).reshape(k, n_e, n_s) * g2.T[:, None, :]
        JM = (A.reshape(k * n_e, n_s) @ W11).reshape(k, n_e, n_e, n_e)    # sum_P cf2 z_j z_lm
        T += JM + JM.transpose(0, 2, 1, 3) + JM.transpose(0, 3, 2, 1)
        JJ = (J[:, :, :, None] * J[:, :, None, :]).reshape(k, n_p, n_e * n_e)
        T += ((cf3.T[:, :, None] * J).transpose(0, 2, 1) @ JJ).reshape(k, n_e, n_e, n_e)
        return I, grad, H, s * T

    def centre_tensors(self, centre):
        """:meth:`taylor_tensors` at one centre (7,), in C (``csrc/host/hge_sim_tensors.c``): the same
        (I (1,), g (7, 1), H (1, 7, 7), T (1, 7, 7, 7)), H and T exactly symmetric.

        The same formula term for term, with the sums in index order instead of BLAS's, so the two
        differ by round-off only (the bound is derived and tested in tests/test_centre_tensors.py).
        For one centre numpy's ~50 calls on tiny arrays cost ~10 times the arithmetic; the
        simulator uses this for a record of one window (``extract_gradient``'s), the numpy
        formula for batches of windows (a training iteration: unchanged)."""
        from .._hge_core import ffi, lib
        cen = np.asarray(centre, float).reshape(-1)
        n_s, n_e = self.W1.shape
        n_p = self.W2.shape[0]
        if cen.size != n_e:
            raise ValueError(f"centre must have {n_e} voltages, got shape {np.shape(centre)}")
        buf = _weight_buffers(self, ffi)
        n_work = int(lib.hge_sim_tensors_work(n_s, n_p, n_e))
        # One array for the work area and the results: I, g, H, T are views of its tail.
        out = np.empty(n_work + 1 + n_e + n_e ** 2 + n_e ** 3)
        o = n_work + 1 + n_e + n_e ** 2
        I, g = out[n_work:n_work + 1], out[n_work + 1:n_work + 1 + n_e].reshape(n_e, 1)
        H, T = out[n_work + 1 + n_e:o].reshape(1, n_e, n_e), out[o:].reshape(1, n_e, n_e, n_e)
        p = ffi.from_buffer("double[]", out)
        o_g = n_work + 1
        status = lib.hge_sim_tensors(*buf, float(self.scale), n_s, n_p, n_e,
                                     ffi.from_buffer("double[]", np.ascontiguousarray(cen)), p, n_work,
                                     p + n_work, p + o_g, p + o_g + n_e, p + o)
        if status != lib.HGE_OK:
            raise ValueError(f"centre {cen.tolist()}: the C derivatives refused it (status {status}; "
                             f"{n_e} electrodes, at most {lib.HGE_SIM_TENSORS_MAX_DIM}; a finite centre)")
        return I, g, H, T

    def _outer_powers(self):
        """W1_Sj W1_Sl (S, 49) and W1_Sj W1_Sl W1_Sm (S, 343), made once per value of W1 (kept with a
        copy of the W1 they were made from: a W1 changed in place or replaced makes them anew)."""
        # One attribute, set once both exist: threads evaluating window batches at once (the simulator's
        # _tensors) see either nothing (and make the same arrays themselves) or both, never half.
        powers = getattr(self, "_powers", None)
        W1 = self.W1
        if powers is None or powers[0].shape != W1.shape or not np.array_equal(powers[0], W1):
            n_e = W1.shape[1]
            w11 = (W1[:, :, None] * W1[:, None, :]).reshape(-1, n_e * n_e)
            w111 = (w11[:, :, None] * W1[:, None, :]).reshape(-1, n_e ** 3)
            powers = self._powers = (np.array(W1, dtype=float), w11, w111)
        return powers[1:]

    def fourth_derivative_bound(self, centre: np.ndarray, half_range: np.ndarray, step: np.ndarray) -> float:
        """An upper bound of |d^4/dt^4 I(V + t d)| over every V in the box ``centre +- half_range``
        and every direction with |d_j| <= ``step_j`` (all (7,), volts).

        Derivation. Along the line, a_S = W1_S . d is the site's rate (|a_S| <= A_S = |W1_S| . step),
        z_P(t) = W2_P . g(u(t)) + b2_P has derivatives z^(k) = sum_S W2_PS g^(k)(u_S) a_S^k, and by
        Faa di Bruno
            (f o z)'''' = f'''' z'^4 + 6 f''' z'^2 z'' + f'' (3 z''^2 + 4 z' z''') + f' z''''.
        Every factor is bounded by its largest magnitude over the box: |g^(k)(u_S)| <= |g^(k)(u_S0)|
        + r_S sup|g^(k+1)| (mean value theorem; u_S0 at the box centre, |u_S - u_S0| <= r_S =
        |W1_S| . half_range), so |z^(k)| <= Z_k = sum_S |W2_PS| G_Sk A_S^k; likewise
        |f^(k)(z_P)| <= |f^(k)(z_P0)| + rho_P sup|f^(k+1)| with |z_P - z_P0| <= rho_P = sum_S |W2_PS|
        sup|g'| r_S. The global sups come from ``_derivative_sups`` (exact: at the critical points
        of the polynomials that express the derivatives). Then |I''''| <= s sum_P |c_P| (that
        Faa di Bruno sum with every term replaced by its bound)."""
        centre, half_range, step = (np.asarray(a, float) for a in (centre, half_range, step))
        G_sup, F_sup = _derivative_sups()
        aW1, aW2 = np.abs(self.W1), np.abs(self.W2)
        u0 = self.W1 @ centre + self.b1
        r = aW1 @ half_range
        A = aW1 @ step
        G = np.array([np.abs(_g_derivative(k, u0)) + r * G_sup[k + 1] for k in range(1, 5)])   # (4, S)
        Z = np.array([aW2 @ (G[k - 1] * A ** k) for k in range(1, 5)])                          # (4, P)
        z0 = self.W2 @ (2.0 * np.exp(-u0 * u0) - 1.0) + self.b2
        rho = aW2 @ (G_sup[1] * r)
        F = np.array([np.abs(_tanh_derivative(k, np.tanh(z0))) + rho * F_sup[k + 1] for k in range(1, 5)])
        F = np.minimum(F, F_sup[1:5, None])
        z1, z2, z3, z4 = Z
        per_path = F[3] * z1 ** 4 + 6 * F[2] * z1 ** 2 * z2 + F[1] * (3 * z2 ** 2 + 4 * z1 * z3) + F[0] * z4
        return float(self.scale * np.abs(self.c) @ per_path)


_WEIGHT_BUFFERS = weakref.WeakKeyDictionary()


def _weight_buffers(m: SurrogateModel, ffi) -> list:
    """C views of the model's weights for ``centre_tensors``. Views of the arrays themselves (a change
    in place is seen), kept per model while those are its arrays (by identity: an attribute set to a
    new array makes new views); weights that are not contiguous float64 are copied per call."""
    ws = (m.W1, m.b1, m.W2, m.b2, m.c)
    hit = _WEIGHT_BUFFERS.get(m)
    if hit is not None and all(a is b for a, b in zip(hit[0], ws)):
        return hit[1]
    arrays = [np.ascontiguousarray(a, dtype=np.float64) for a in ws]
    buf = [ffi.from_buffer("double[]", a) for a in arrays]
    if all(a is w for a, w in zip(arrays, ws)):   # no copy: views of the model's own arrays
        _WEIGHT_BUFFERS[m] = (ws, buf)
    return buf


def _g_derivative(k: int, u):
    """d^k/du^k of g(u) = 2 exp(-u^2) - 1: 2 (-1)^k H_k(u) exp(-u^2) (physicists' Hermite H_k), k >= 1."""
    coef = np.zeros(k + 1)
    coef[k] = 1.0
    return 2.0 * (-1) ** k * np.polynomial.hermite.hermval(u, coef) * np.exp(-u * u)


def _tanh_poly(k: int) -> np.polynomial.Polynomial:
    """tanh^(k)(z) as a polynomial in p = tanh z: d/dz P(p) = P'(p) (1 - p^2)."""
    P = np.polynomial.Polynomial([0.0, 1.0])
    for _ in range(k):
        P = P.deriv() * np.polynomial.Polynomial([1.0, 0.0, -1.0])
    return P


def _tanh_derivative(k: int, p):
    return _tanh_poly(k)(p)


_SUPS = None


def _derivative_sups():
    """(sup|g^(k)|, sup|tanh^(k)|) for k = 0..5, exactly: |H_k(u) exp(-u^2)| has its extremes
    where its derivative -H_{k+1}(u) exp(-u^2) vanishes (the real roots of H_{k+1}); tanh^(k) is a
    polynomial in p = tanh z on [-1, 1], extreme at the endpoints or the roots of its derivative."""
    global _SUPS
    if _SUPS is None:
        G, F = np.zeros(6), np.zeros(6)
        G[0], F[0] = 1.0, 1.0
        for k in range(1, 6):
            coef = np.zeros(k + 2)
            coef[k + 1] = 1.0
            roots = np.polynomial.hermite.hermroots(coef).real
            G[k] = np.max(np.abs(_g_derivative(k, np.append(roots, 0.0))))
            P = _tanh_poly(k)
            crit = P.deriv().roots()
            crit = crit[np.abs(crit.imag) < 1e-12].real
            pts = np.concatenate([[-1.0, 1.0], crit[np.abs(crit) <= 1.0]])
            F[k] = np.max(np.abs(P(pts)))
        _SUPS = (G, F)
    return _SUPS
