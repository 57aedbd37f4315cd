"""The physics of the simulated DNPU: a hopping network solved by Kirchhoff's laws, with its exact gradient.

Model
-----
Boron acceptors in silicon between metal electrodes conduct by variable-range
hopping (Miller-Abrahams rates ``nu_ij = nu0 exp(-2 r_ij / a) min(1, exp(-dE / kT))``;
Tertilt et al., Phys. Rev. Applied 17, 064025 (2022) and 22, 024063 (2024)). This
module keeps that physics in a steady-state network that is cheap enough for
millions of samples:

* geometry (seeded): ``n_sites`` hopping sites (islands of dopants) uniform in a
  disc of radius 1, the 8 electrodes (7 controls/inputs, index 7 the output at
  virtual ground, 0 V) evenly on its rim;
* hopping conductance between any two nodes ``i, j`` (sites or electrodes):
  ``G_ij = exp(-2 r_ij / a)`` (tunnelling overlap, localisation length ``a``);
* field-assisted hopping: the branch current is
  ``i_ij = K_ij V0 sinh((phi_i - phi_j) / V0)`` (the Miller-Abrahams forward minus
  backward rate with the bias split symmetrically over the hop), superlinear on
  the scale ``V0``;
* Coulomb blockade: a site conducts when its charge states are degenerate. Its
  capacitively induced charge ``q_i = sum_k c_ik V_k / V_e + q0_i`` (``c_ik``
  ~ 1 / r_ik^2, normalised to sum to 1; ``V_e`` the voltage that adds one
  electron; ``q0`` a seeded offset charge) sets its transparency
  ``h_i = eps + (1 - eps) exp(-sin^2(pi q_i) / w^2)``, a peak at every integer
  ``q_i`` (period 1 in q: a Coulomb oscillation); a branch carries
  ``K_ij = G0 G_ij sqrt(h_i h_j)`` (``h = 1`` at an electrode);
* Kirchhoff: at every site the branch currents sum to zero,
  ``F_i(phi, V) = sum_j i_ji = 0``, solved by Newton's method (the Jacobian is a
  weighted graph Laplacian, symmetric negative definite, so the solution is unique
  and Newton from the linear network's solution converges);
* output: the current into the output electrode, ``I = sum_i K_io V0 sinh(phi_i / V0)``.

Properties by construction: with every terminal at one potential ``u`` the
solution is ``phi_i = u`` and every ``sinh`` is exactly 0, so ``I = 0``
(passive); each branch conducts only downhill, so the network dissipates.
Nonlinearity comes from ``V0`` (superlinear, cubic at small bias) and from the
Coulomb peaks (non-monotonic: negative differential resistance along some
sweeps). ``G0`` is the one scale set from the device itself: the RMS current
over a fixed set of random voltages is ``current_rms`` nA.

Exact gradient (implicit function theorem, adjoint form): with ``J = dF/dphi``
(symmetric), ``lambda = J^-1 dI/dphi`` and ``dI/dV = dI/dV|_phi - lambda . dF/dV``.
At a solution ``F = 0``, so the terms of ``dF/dV`` that scale ``F_i`` through
``h_i`` vanish and ``dF_i/dV_k = K_ik cosh((V_k - phi_i)/V0) + sum_j K_ij
V0 sinh((phi_j - phi_i)/V0) s_j c_jk / V_e`` with ``s = d ln sqrt(h) / dq``.
"""
from __future__ import annotations

import numpy as np

N_TERMINALS = 8      # 7 voltage electrodes + the output (index 7, 0 V)
N_ELECTRODES = 7


class HoppingNetwork:
    """A seeded hopping network; ``solve`` gives currents, ``gradient`` exact dI/dV.

    Parameters
    ----------
    seed : int
    n_sites : int
        Hopping sites (dopant islands).
    a : float
        Localisation length, in units of the disc radius.
    V0 : float
        Voltage scale of field-assisted hopping, V.
    V_e : float
        Voltage (on all electrodes together) that adds one electron to a site, V.
    width, eps : float
        Coulomb-peak width (in ``sin(pi q)``) and the off-peak transparency.
    current_rms : float
        RMS output current (nA) over a fixed set of random voltages in the box.
    """

    def __init__(self, seed: int = 0, *, n_sites: int = 10, a: float = 0.7, V0: float = 0.6,
                 V_e: float = 0.35, width: float = 0.3, eps: float = 0.01, current_rms: float = 10.0,
                 periodic: bool = True, q0_range: tuple = (0.0, 1.0)):
        rng = np.random.default_rng(np.random.SeedSequence([seed, 2024]))
        self.n, self.V0, self.V_e, self.width, self.eps = int(n_sites), float(V0), float(V_e), float(width), float(eps)
        r = np.sqrt(rng.random(self.n))
        th = 2 * np.pi * rng.random(self.n)
        sites = np.stack([r * np.cos(th), r * np.sin(th)], axis=1)
        ang = 2 * np.pi * np.arange(N_TERMINALS) / N_TERMINALS
        elec = np.stack([np.cos(ang), np.sin(ang)], axis=1)
        d_ss = np.linalg.norm(sites[:, None] - sites[None], axis=2)
        d_se = np.linalg.norm(sites[:, None] - elec[None], axis=2)
        self.G_ss = np.exp(-2 * d_ss / a)
        np.fill_diagonal(self.G_ss, 0.0)
        self.G_se = np.exp(-2 * d_se / a)
        w = 1.0 / np.maximum(d_se, 0.05) ** 2
        self.c = w / w.sum(axis=1, keepdims=True)           # (n, 8) capacitive shares
        self.kappa = self.c[:, :N_ELECTRODES] / self.V_e       # (n, 7) induced charge per volt
        self.periodic = bool(periodic)
        self.q0 = rng.uniform(*q0_range, self.n)
        self._build_branches()
        self.G0 = 1.0
        box = rng.uniform(-1.0, 0.6, (N_ELECTRODES, 64))
        self.G0 = current_rms / np.sqrt(np.mean(self.current(box) ** 2))

    # -- pieces -----------------------------------------------------------------------
    def _build_branches(self):
        """Branch list over nodes [sites 0..n-1, terminals n..n+7]: site pairs and site-terminal pairs."""
        n = self.n
        ii, jj = np.triu_indices(n, 1)
        si, ej = np.meshgrid(np.arange(n), np.arange(N_TERMINALS), indexing="ij")
        self.b0 = np.concatenate([ii, si.ravel()])
        self.b1 = np.concatenate([jj, n + ej.ravel()])
        self.Gb = np.concatenate([self.G_ss[ii, jj], self.G_se.ravel()])
        B = self.b0.size
        # x_b = (u[b1] - u[b0]) / V0 = (u @ D)_b / V0
        self.D = np.zeros((n + N_TERMINALS, B))
        self.D[self.b1, np.arange(B)] += 1.0
        self.D[self.b0, np.arange(B)] -= 1.0
        Ds = self.D[:n]
        self.M = np.einsum("ib,jb->bij", Ds, Ds).reshape(B, n * n)   # d_b d_b^T over sites
        self.out = np.flatnonzero(self.b1 == n + N_ELECTRODES)        # branches into the output
        self.E0 = np.zeros((B, n + N_TERMINALS))
        self.E0[np.arange(B), self.b0] = 1.0
        self.E1 = np.zeros((B, n + N_TERMINALS))
        self.E1[np.arange(B), self.b1] = 1.0
        self.is_out = np.zeros(B)
        self.is_out[self.out] = 1.0
        self.kappa_ext = np.zeros((n + N_TERMINALS, N_ELECTRODES))
        self.kappa_ext[:n] = self.kappa

    def _blockade(self, V):
        """V (7, N) -> transparency h (N, n) and s = d ln sqrt(h) / dq (N, n)."""
        q = (self.kappa @ V).T + self.q0
        if self.periodic:
            sq = np.sin(np.pi * q)
            e = (1.0 - self.eps) * np.exp(-(sq * sq) / self.width**2)
            dlog = -np.pi * np.sin(2 * np.pi * q) / self.width**2
        else:
            e = (1.0 - self.eps) * np.exp(-(q * q) / self.width**2)
            dlog = -2.0 * q / self.width**2
        h = self.eps + e
        return h, 0.5 * e * dlog / h

    def _state(self, V):
        """Per-sample branch conductances K (N, B), blockade slopes s (N, n), terminal part of u @ D."""
        h, s = self._blockade(V)
        sh = np.ones((V.shape[1], self.n + N_TERMINALS))
        sh[:, :self.n] = np.sqrt(h)
        K = (self.G0 * self.Gb) * sh[:, self.b0] * sh[:, self.b1]
        xt = V.T @ self.D[self.n:self.n + N_ELECTRODES]      # terminal contribution to u @ D
        return K, s, xt

    def _residual_jacobian(self, phi, K, xt, jac=True):
        x = (phi @ self.D[:self.n] + xt) / self.V0
        e = np.exp(x)
        ei = 1.0 / e
        S = 0.5 * (e - ei)
        F = -self.V0 * ((K * S) @ self.D[:self.n].T)
        if not jac:
            return F, None, x, S, None
        C = 0.5 * (e + ei)
        J = -((K * C) @ self.M).reshape(-1, self.n, self.n)
        return F, J, x, S, C

    def solve(self, V, phi0=None, *, tol: float = 1e-11, max_iter: int = 40):
        """Site potentials (N, n) for electrode voltages ``V`` (7, N), Newton from ``phi0`` or the linear network."""
        K, s, xt = self._state(V)
        if phi0 is None:
            # The linear network (sinh x ~ x): F is affine in phi, one Newton step from 0 solves it.
            F = -(K * xt) @ self.D[:self.n].T
            J = -(K @ self.M).reshape(-1, self.n, self.n)
            phi = np.linalg.solve(J, -F[..., None])[..., 0]
        else:
            phi = np.array(phi0, float)
        for _ in range(max_iter):
            F, J, *_ = self._residual_jacobian(phi, K, xt)
            step = np.linalg.solve(J, -F[..., None])[..., 0]
            # Damping: no site moves more than V0 per step (sinh grows fast beyond it).
            big = np.max(np.abs(step), axis=1, keepdims=True)
            step *= np.minimum(1.0, self.V0 / np.maximum(big, 1e-300))
            phi = phi + step
            if np.max(big) < tol:
                break
        else:
            raise RuntimeError(f"hopping network: Newton did not converge (last step {np.max(big):.3g} V)")
        return phi, (K, s, xt)

    # -- public -----------------------------------------------------------------------
    def current(self, V, phi0=None) -> np.ndarray:
        """V (7, N) volts -> output current (N,) nA."""
        V = np.asarray(V, float)
        phi, (K, _, xt) = self.solve(V, phi0)
        _, _, _, S, _ = self._residual_jacobian(phi, K, xt, jac=False)
        return -self.V0 * (K[:, self.out] * S[:, self.out]).sum(axis=1)

    def gradient(self, V) -> np.ndarray:
        """V (7, N) volts -> exact dI/dV (7, N) nA/V."""
        return self.current_and_gradient(V)[1]

    def current_and_gradient(self, V, phi0=None):
        """V (7, N) -> (I (N,) nA, dI/dV (7, N) nA/V, phi (N, n)); exact by the adjoint."""
        V = np.asarray(V, float)
        n = self.n
        phi, (K, s, xt) = self.solve(V, phi0)
        _, J, _, S, C = self._residual_jacobian(phi, K, xt)
        KS, KC = K * S, K * C
        I = -self.V0 * KS[:, self.out].sum(axis=1)
        # dI/dphi_i = sum over output branches of K C (x = -phi_i / V0 there).
        dI_dphi = (KC[:, self.out] @ self.E0[self.out])[:, :n]
        lam = np.linalg.solve(J, dI_dphi[..., None])[..., 0]      # J is symmetric
        # grad_k = dI/dV_k|phi - lam . dF/dV_k, contracted over sites first (w_b = lam . D_s[:, b]):
        #   through K: d ln K_b / dV_k = s_b0 kappa_b0k + s_b1 kappa_b1k (terminals: s = 0), so a
        #   branch weight u_b contributes ((u E0 + u E1) * s_ext) @ kappa_ext;
        #   through x: the terminal ends, D[n + k, b] / V0.
        s_ext = np.zeros((V.shape[1], n + N_TERMINALS))
        s_ext[:, :n] = s
        w = lam @ self.D[:n]
        u = -self.V0 * KS * (self.is_out[None, :] - w)           # output term minus lam . F term
        via_K = ((u @ self.E0 + u @ self.E1) * s_ext) @ self.kappa_ext
        via_x = (KC * w) @ self.D[n:n + N_ELECTRODES].T
        grad = via_K + via_x
        return I, grad.T, phi
