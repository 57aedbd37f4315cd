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
* site energies (the default nonlinearity): site ``i`` has a level ``E_i`` (V,
  relative to the Fermi level at zero bias, seeded, uniform in ``E_range``) that the
  electrodes shift capacitively, ``e_i = E_i - sum_k c_ik V_k`` (``c_ik`` ~ 1 / r_ik^2,
  normalised to sum to 1 over the 8 terminals; an electrode has ``e = 0``). The
  linearised Miller-Abrahams network of Ambegaokar, Halperin and Langer (Phys. Rev. B
  4, 2612 (1971); Miller and Abrahams, Phys. Rev. 120, 745 (1960)) gives a hop the
  factor ``P_ij = exp(-(|e_i| + |e_j| + |e_i - e_j|) / (2 V_T))``: a site conducts when
  its level is within ~V_T of the Fermi level, i.e. when its two charge states are
  degenerate (the single-level Coulomb-blockade condition), and an uphill hop costs
  its energy. Here ``|x|`` is ``sqrt(x^2 + (delta V_T)^2) - delta V_T`` (smooth, so the
  window expansion of ``measure`` holds) and the factor is ``floor + (1 - floor) P``
  (co-tunnelling past an off-resonant site bounds the dynamic range: without it GD
  meets regions where every output is ~0.01 nA and the gradient vanishes);
* Coulomb oscillations (optional, ``eps < 1``; the session-2 model): a site's induced
  charge ``q_i = sum_k c_ik V_k / V_e + q0_i`` sets its transparency
  ``h_i = eps + (1 - eps) exp(-sin^2(pi q_i) / w^2)``, a peak at every integer ``q_i``;
* a branch carries ``K_ij = G0 G_ij sqrt(h_i h_j) (floor + (1 - floor) P_ij)``;
* Kirchhoff: at every site the branch currents sum to zero,
  ``F_i(phi, V) = sum_j i_ji = 0``, solved by Newton's method (the Jacobian is a
  weighted graph Laplacian, symmetric negative definite, so the solution is unique
  and Newton from the linear network's solution converges);
* output: the current into the output electrode, ``I = sum_i K_io V0 sinh(phi_i / V0)``.

Properties by construction: with every terminal at one potential ``u`` the
solution is ``phi_i = u`` and every ``sinh`` is exactly 0, so ``I = 0``
(passive); each branch conducts only downhill, so the network dissipates.
Nonlinearity comes from ``V0`` (superlinear, cubic at small bias) and from the
site levels moving through the Fermi level (non-monotonic where a level crosses it:
negative differential resistance along some sweeps; monotone gating elsewhere, which
is what lets an input *lower* the output, i.e. the inverting gates). ``G0`` is the one
scale set from the device itself: the median |I| over a fixed set of random voltages
is ``current_median`` nA.

Exact gradient (implicit function theorem, adjoint form): with ``J = dF/dphi``
(symmetric), ``lambda = J^-1 dI/dphi`` and ``dI/dV = dI/dV|_phi - lambda . dF/dV``.
``dF/dV`` has two parts: the terminal ends of the branches (``K cosh(x)``) and the
conductances, ``dK_b/dV_k = K_b (t_b0 c_b0,k + t_b1 c_b1,k)`` with
``t`` the derivative of ``ln K_b`` with respect to ``c . V`` at each end of the branch
(the Coulomb term ``d ln sqrt(h) / dq / V_e`` minus the energy term ``d ln f / de``).

Implementation: two kernels solve the same equations. ``kernel="c"`` (the default for the
model family it covers: site energies, no periodic peaks) is ``csrc/host/hge_hop_solve.c``:
point by point, the same Newton (the linear network's solution as the start, steps damped to
V0, stop after the first step below ``NEWTON_TOL`` = 1e-11 V), Cholesky for the Laplacian,
one exp per node for the branch sinh/cosh (``exp(u_j / V0) exp(-u_i / V0)``), and the adjoint
gradient; about 4 us per solve against ~100 us batched in numpy. ``kernel="numpy"`` is the
batched reference (and the kernel of the session-2 model). They agree to the Newton tolerance
and round-off (bounds derived and tested in ``tests/test_hop_kernel.py``; observed ~1e-16 V in
phi, ~1e-14 nA in I, ~1e-13 nA/V in the gradient). ``taylor_tensors`` gives the simulator's
window expansion its derivatives at a window centre: I and g exact, H and T differences of
exact gradients (35 more solves, each started from the centre's first-order prediction
``phi + (dphi/dV) D``), in one C call (``hge_hop_tensors``).
"""
from __future__ import annotations

import numpy as np

N_TERMINALS = 8      # 7 voltage electrodes + the output (index 7, 0 V)
N_ELECTRODES = 7
NEWTON_TOL = 1e-11   # V: Newton stops after a step whose largest site move is below this
NEWTON_MAX_ITER = 40


def _points(V: np.ndarray) -> np.ndarray:
    """``V`` as (7, N) for the C kernel, or ValueError naming its shape."""
    if V.ndim != 2 or V.shape[0] != N_ELECTRODES:
        raise ValueError(f"V must be ({N_ELECTRODES}, N) volts, got shape {V.shape}")
    return V


def _c_supported(net) -> bool:
    """The C kernel solves the default model family: site energies (V_T), no periodic Coulomb
    peaks (eps = 1), up to HGE_HOP_MAX_SITES sites, with the C core built."""
    if net.V_T is None or net.eps < 1.0:
        return False
    try:
        from .._hge_core import lib
    except ImportError:  # pragma: no cover - the core is built with the package
        return False
    return net.n <= int(lib.HGE_HOP_MAX_SITES)


# The first physical model (session 2): periodic Coulomb peaks, no site energies. Kept so its
# figures can be reproduced: HoppingNetwork(seed, **PERIODIC_BLOCKADE_PARAMS).
PERIODIC_BLOCKADE_PARAMS = dict(a=0.7, V0=0.6, V_e=0.35, width=0.3, eps=0.01, V_T=None, current_rms=10.0,
                                current_median=None)


class HoppingNetwork:
    """A seeded hopping network; ``current`` gives currents, ``current_and_gradient`` exact dI/dV.

    The defaults are the parameter set chosen by the trainability study of session 3
    (``tools/hopping_study.py``; ``docs/design.md`` section 6 has the figures).

    Parameters
    ----------
    seed : int
    n_sites : int
        Hopping sites (dopant islands), >= 2.
    a : float
        Localisation length, in units of the disc radius (> 0).
    V0 : float
        Voltage scale of field-assisted hopping, V (> 0).
    V_T : float or None
        Thermal voltage of the site-energy (Ambegaokar-Halperin-Langer) factor, V (> 0);
        None leaves the factor out.
    E_range : (float, float)
        Site energies relative to the Fermi level at zero bias are uniform in this range, V.
    floor : float
        Smallest energy factor (0 <= floor < 1): co-tunnelling past an off-resonant site.
    delta : float
        Smoothing of ``|x|`` in the energy factor, in units of ``V_T`` (> 0).
    V_e, width, eps : float
        Periodic Coulomb peaks: the voltage that adds one electron, the peak width (in
        ``sin(pi q)``) and the off-peak transparency; ``eps = 1`` leaves the peaks out.
    periodic, q0_range
        Periodic (Coulomb oscillation) or single Gaussian peak; offset-charge range.
    current_median, current_rms : float
        Current scale, nA: the median |I| (or, with ``current_median=None``, the RMS
        current) over a fixed set of random voltages in the box [-1, 0.6] V.
    rim_order : sequence of 8 ints or None
        Which terminal sits at each of the 8 evenly spaced rim positions (default: 0..7).

    Attributes
    ----------
    kernel : {"c", "numpy"}
        Who solves: ``"c"`` (``csrc/host/hge_hop_solve.c``; the default where it applies: site
        energies, no periodic peaks) or ``"numpy"`` (the batched reference). The parameters are
        read into the C instance on first use: change them by making a new network.

    Raises
    ------
    ValueError
        For a parameter outside its range, naming it and the value.
    """

    def __init__(self, seed: int = 0, *, n_sites: int = 10, a: float = 0.8, V0: float = 0.3,
                 V_e: float = 0.35, width: float = 0.3, eps: float = 1.0, current_rms: float = 10.0,
                 periodic: bool = True, q0_range: tuple = (0.0, 1.0), V_T: float | None = 0.1,
                 E_range: tuple = (-0.3, 0.4), delta: float = 0.5,
                 current_median: float | None = 10.0,
                 floor: float = 0.01, rim_order: tuple | None = None):
        for name, val in (("a", a), ("V0", V0), ("V_e", V_e), ("width", width), ("delta", delta),
                          ("current_rms", current_rms)):
            if not (np.isfinite(val) and val > 0):
                raise ValueError(f"{name} must be a finite number > 0, got {val!r}")
        if int(n_sites) < 2:
            raise ValueError(f"n_sites must be >= 2, got {n_sites!r}")
        if not 0.0 < eps <= 1.0:
            raise ValueError(f"eps must be in (0, 1], got {eps!r}")
        if not 0.0 <= floor < 1.0:
            raise ValueError(f"floor must be in [0, 1), got {floor!r}")
        if V_T is not None and not (np.isfinite(V_T) and V_T > 0):
            raise ValueError(f"V_T must be None or a finite number > 0, got {V_T!r}")
        if current_median is not None and not (np.isfinite(current_median) and current_median > 0):
            raise ValueError(f"current_median must be None or a finite number > 0, got {current_median!r}")
        if len(E_range) != 2 or not E_range[0] <= E_range[1]:
            raise ValueError(f"E_range must be (low, high) with low <= high, got {E_range!r}")
        rng = np.random.default_rng(np.random.SeedSequence([seed, 2024]))   # geometry, offsets, box
        self.n, self.V0, self.V_e, self.width, self.eps = int(n_sites), float(V0), float(V_e), float(width), float(eps)
        r = np.sqrt(rng.random(self.n))
        th = 2 * np.pi * rng.random(self.n)
        sites = np.stack([r * np.cos(th), r * np.sin(th)], axis=1)
        order = np.arange(N_TERMINALS) if rim_order is None else np.asarray(rim_order, int)
        if sorted(order.tolist()) != list(range(N_TERMINALS)):
            raise ValueError(f"rim_order must be a permutation of 0..{N_TERMINALS - 1}, got {rim_order!r}")
        ang = 2 * np.pi * np.argsort(order) / N_TERMINALS   # terminal k sits at rim position argsort(order)[k]
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
        # Site energies (V, relative to the Fermi level at zero bias) and the AHL energy factor.
        self.V_T = None if V_T is None else float(V_T)
        self.floor = float(floor)
        self.delta = float(delta)
        rng_e = np.random.default_rng(np.random.SeedSequence([seed, 2026]))
        self.E = rng_e.uniform(*E_range, self.n)
        self.c_ext = np.zeros((self.n + N_TERMINALS, N_ELECTRODES))
        self.c_ext[:self.n] = self.c[:, :N_ELECTRODES]
        self._build_branches()
        self.G0 = 1.0
        # The scale from the numpy reference, so both kernels solve the same network (the same G0 bits).
        self.kernel = "numpy"
        box = rng.uniform(-1.0, 0.6, (N_ELECTRODES, 64))
        I_box = self.current(box)
        if current_median is None:
            self.G0 = current_rms / np.sqrt(np.mean(I_box ** 2))
        else:
            self.G0 = current_median / np.median(np.abs(I_box))
        # "c": csrc/host/hge_hop_solve.c (the default where it applies: site energies, no periodic
        # peaks, and the C core built); "numpy": the batched reference below. Both solve the same
        # equations to the Newton tolerance; tests/test_hop_kernel.py derives and tests the bound.
        self._c_net = None
        self.kernel = "c" if _c_supported(self) else "numpy"

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
        """Per-sample branch conductances K (N, B), d ln K_b / d(c . V) at both branch ends
        (t0, t1: (N, B)), terminal part of u @ D."""
        N = V.shape[1]
        n = self.n
        B = self.b0.size
        if self.eps < 1.0:
            h, s = self._blockade(V)
            lnh = np.zeros((N, n + N_TERMINALS))
            lnh[:, :n] = 0.5 * np.log(h)
            sx = np.zeros((N, n + N_TERMINALS))
            sx[:, :n] = s / self.V_e            # d ln sqrt(h) / d(c . V)
            lnK = lnh[:, self.b0] + lnh[:, self.b1]
            t0, t1 = sx[:, self.b0], sx[:, self.b1]
        else:                                   # no Coulomb peaks: h = 1
            lnK, t0, t1 = np.zeros((N, B)), np.zeros((N, B)), np.zeros((N, B))
        if self.V_T is not None:
            # Ambegaokar-Halperin-Langer: ln K -= (|e_i| + |e_j| + |e_i - e_j|) / (2 V_T), with the
            # smooth |x| ~ sqrt(x^2 + d^2) (d = delta V_T; kinks would spoil the window expansion).
            eps = np.zeros((N, n + N_TERMINALS))
            eps[:, :n] = self.E[None] - (self.c[:, :N_ELECTRODES] @ V).T   # electrodes: e = 0
            e0, e1 = eps[:, self.b0], eps[:, self.b1]
            d2 = (self.delta * self.V_T) ** 2
            a0, a1, a01 = np.sqrt(e0 * e0 + d2), np.sqrt(e1 * e1 + d2), np.sqrt((e0 - e1) ** 2 + d2)
            k = 0.5 / self.V_T
            P = np.exp(-k * (a0 + a1 + a01 - 3 * self.delta * self.V_T))
            # A floor (co-tunnelling past an off-resonant site) bounds the dynamic range:
            # factor f = floor + (1 - floor) P, d ln f = (1 - floor) P / f d ln P.
            f = self.floor + (1.0 - self.floor) * P
            lnK += np.log(f)
            r = (1.0 - self.floor) * P / f
            # d ln K / d e0, d e1; and d e / d(c . V) = -1 at a site.
            g0 = -k * r * (e0 / a0 + (e0 - e1) / a01)
            g1 = -k * r * (e1 / a1 - (e0 - e1) / a01)
            t0 = t0 - g0 * (self.b0 < n)
            t1 = t1 - g1 * (self.b1 < n)
        K = (self.G0 * self.Gb) * np.exp(lnK)
        xt = V.T @ self.D[self.n:self.n + N_ELECTRODES]      # terminal contribution to u @ D
        return K, (t0, t1), xt

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

    def solve(self, V, phi0=None, *, tol: float = NEWTON_TOL, max_iter: int = NEWTON_MAX_ITER):
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

    # -- the C kernel ---------------------------------------------------------------------
    def _c_instance(self):
        """The C instance (``hge_hop_t``) and the arrays it points to, made once."""
        if self._c_net is None:
            if not _c_supported(self):
                raise ValueError(f"kernel 'c' solves networks with site energies (V_T) and no periodic peaks "
                                 f"(eps = 1), up to 64 sites; this one has V_T={self.V_T!r}, eps={self.eps!r}, "
                                 f"n_sites={self.n}: use kernel 'numpy'")
            from .._hge_core import ffi, lib
            g_ss = self.G0 * self.G_ss          # the same products as G0 * Gb (zero diagonal, unread)
            arrs = dict(g_ss=np.ascontiguousarray(g_ss, float), g_st=np.ascontiguousarray(self.G0 * self.G_se, float),
                        c=np.ascontiguousarray(self.c[:, :N_ELECTRODES], float),
                        E=np.ascontiguousarray(self.E, float))
            st = ffi.new("hge_hop_t *")
            ptr = {k: ffi.cast("const double *", a.ctypes.data) for k, a in arrs.items()}
            status = lib.hge_hop_init(st, self.n, ptr["g_ss"], ptr["g_st"], ptr["c"], ptr["E"], self.V0, self.V_T,
                                      self.floor, self.delta, NEWTON_TOL, NEWTON_MAX_ITER)
            if status != lib.HGE_OK:  # pragma: no cover - _c_supported checked what the C refuses
                raise ValueError(f"hopping network refused by the C kernel (status {status})")
            self._c_net = (st, arrs, int(lib.hge_hop_work_doubles(self.n)))
        return self._c_net

    def _solve_c(self, V, phi0=None, gradient: bool = True, dphi: bool = False):
        """(I (N,), dI/dV (7, N) or None, phi (N, n)[, dphi/dV (N, n, 7)]) by ``hge_hop_process``;
        the same Newton (start, damping, stopping rule) as :meth:`solve`, point by point."""
        from .._hge_core import ffi, lib
        st, _, n_work = self._c_instance()
        V = np.ascontiguousarray(V, dtype=np.float64)
        N = V.shape[1]
        I = np.empty(N)
        G = np.empty((N_ELECTRODES, N)) if gradient else None
        phi = np.empty((N, self.n))
        if phi0 is not None:
            phi0 = np.ascontiguousarray(phi0, dtype=np.float64)
            if phi0.shape != (N, self.n):
                raise ValueError(f"phi0 must have shape {(N, self.n)}, got {phi0.shape}")
        work = np.empty(n_work)
        D = np.empty((N, self.n, N_ELECTRODES)) if dphi else None
        done = ffi.new("uint64_t *")
        status = lib.hge_hop_process(st, ffi.cast("const double *", V.ctypes.data), N, N,
                                     ffi.NULL if phi0 is None else ffi.cast("const double *", phi0.ctypes.data),
                                     ffi.cast("double *", I.ctypes.data),
                                     ffi.NULL if G is None else ffi.cast("double *", G.ctypes.data), N,
                                     ffi.cast("double *", phi.ctypes.data),
                                     ffi.NULL if D is None else ffi.cast("double *", D.ctypes.data),
                                     ffi.cast("double *", work.ctypes.data), n_work, done)
        if status == lib.HGE_ERR_RANGE:
            k = int(done[0])
            if not np.all(np.isfinite(V[:, k])):
                raise ValueError(f"V: point {k} is not finite ({V[:, k].tolist()})")
            if phi0 is not None and not np.all(np.isfinite(phi0[k])):
                raise ValueError(f"phi0: point {k}'s start is not finite ({phi0[k].tolist()})")
            raise RuntimeError(f"hopping network: Newton did not converge at point {k} (V = {V[:, k].tolist()})")
        if status != lib.HGE_OK:  # pragma: no cover - the shapes above leave nothing else
            raise RuntimeError(f"hge_hop_process: status {status}")
        return (I, G, phi, D) if dphi else (I, G, phi)

    # -- public -----------------------------------------------------------------------
    def current(self, V, phi0=None) -> np.ndarray:
        """V (7, N) volts -> output current (N,) nA."""
        V = np.asarray(V, float)
        if self.kernel == "c":
            return self._solve_c(_points(V), phi0, gradient=False)[0]
        phi, (K, _, xt) = self.solve(V, phi0)
        _, _, _, S, _ = self._residual_jacobian(phi, K, xt, jac=False)
        return -self.V0 * (K[:, self.out] * S[:, self.out]).sum(axis=1)

    def gradient(self, V) -> np.ndarray:
        """V (7, N) volts -> exact dI/dV (7, N) nA/V."""
        return self.current_and_gradient(V)[1]

    def current_and_gradient(self, V, phi0=None):
        """V (7, N) -> (I (N,) nA, dI/dV (7, N) nA/V, phi (N, n)); exact by the adjoint."""
        V = np.asarray(V, float)
        if self.kernel == "c":
            return self._solve_c(_points(V), phi0)
        phi, state = self.solve(V, phi0)
        I, grad = self._outputs_numpy(phi, state)
        return I, grad, phi

    def _outputs_numpy(self, phi, state):
        """(I (N,), dI/dV (7, N)) at the site potentials ``phi`` (N, n), with ``state`` =
        ``self._state(V)``: no Newton (the numpy reference's last stage; tests evaluate it at the
        C kernel's potentials)."""
        n = self.n
        K, (t0, t1), xt = state
        _, J, _, S, C = self._residual_jacobian(phi, K, xt)
        KS, KC = K * S, K * C
        I = -self.V0 * KS[:, self.out].sum(axis=1)
        # dI/dphi_i = sum over output branches of K C (x = -phi_i / V0 there).
        dI_dphi = (KC[:, self.out] @ self.E0[self.out])[:, :n]
        lam = np.linalg.solve(J, dI_dphi[..., None])[..., 0]      # J is symmetric
        # grad_k = dI/dV_k|phi - lam . dF/dV_k, contracted over sites first (w_b = lam . D_s[:, b]):
        #   through K: d ln K_b / dV_k = t0_b c_b0k + t1_b c_b1k (terminals: c = 0), so a
        #   branch weight u_b contributes ((u t0) E0 + (u t1) E1) @ c_ext;
        #   through x: the terminal ends, D[n + k, b] / V0.
        w = lam @ self.D[:n]
        u = -self.V0 * KS * (self.is_out[None, :] - w)           # output term minus lam . F term
        via_K = ((u * t0) @ self.E0 + (u * t1) @ self.E1) @ self.c_ext
        via_x = (KC * w) @ self.D[n:n + N_ELECTRODES].T
        grad = via_K + via_x
        return I, grad.T

    # -- what the simulator's window expansion needs (devices.simulated.FastEvaluator) ----------
    def taylor_tensors(self, C: np.ndarray):
        """Derivatives at window centres ``C`` (7, k) for the simulator's window expansion:
        (I (k,), g (7, k), H (k, 7, 7), T (k, 7, 7, 7)).

        I and g are exact (Newton and the adjoint). H and T are differences of exact gradients
        with the step ``h = simulated.DERIV_STEP``, the formulas of
        ``FastEvaluator._difference_tensors`` for all 7 electrodes: the gradients g(c + h e_j),
        g(c - h e_j) and g(c + h (e_j + e_k)), j < k (35 solves per centre, each Newton
        warm-started at the centre's solution), then
        ``H = sym((g+ - g-) / 2h)``, ``T[:, j, j] = (g+_j - 2 g0 + g-_j) / h^2``,
        ``T[:, j, k] = T[:, k, j] = (g_jk - g+_j - g+_k + g0) / h^2`` (truncation: O(h^2) for H
        and the diagonal of T, O(h) for its off-diagonal). The same numbers, element for element,
        as the evaluator's per-window path for a window whose 7 electrodes all move; for a window
        where some do not, their offsets are exactly 0, so the expansion is the same polynomial
        there too (tests/test_hop_kernel.py checks the two paths give the same bits)."""
        from .simulated import DERIV_STEP
        C = np.asarray(C, float)
        if C.ndim != 2 or C.shape[0] != N_ELECTRODES:
            raise ValueError(f"C must be ({N_ELECTRODES}, k) volts, got shape {C.shape}")
        if self.kernel == "c":
            return self._tensors_c(C, DERIV_STEP)
        return self._taylor_tensors_numpy(C)

    def _tensors_c(self, C, h: float):
        """:meth:`taylor_tensors` in one C call (``hge_hop_tensors``): the same solves, starts and
        difference formulas as :meth:`_taylor_tensors_numpy` (the same bits; tested)."""
        from .._hge_core import ffi, lib
        st, _, n_work = self._c_instance()
        C = np.ascontiguousarray(C, dtype=np.float64)
        k, ne = C.shape[1], N_ELECTRODES
        I, G = np.empty(k), np.empty((ne, k))
        H, T = np.empty((k, ne, ne)), np.empty((k, ne, ne, ne))
        work = np.empty(n_work)
        done = ffi.new("uint64_t *")
        status = lib.hge_hop_tensors(st, ffi.cast("const double *", C.ctypes.data), k, k, float(h),
                                     ffi.cast("double *", I.ctypes.data), ffi.cast("double *", G.ctypes.data), k,
                                     ffi.cast("double *", H.ctypes.data), ffi.cast("double *", T.ctypes.data),
                                     ffi.cast("double *", work.ctypes.data), n_work, done)
        if status == lib.HGE_ERR_RANGE:
            q = int(done[0])
            if not np.all(np.isfinite(C[:, q])):
                raise ValueError(f"C: centre {q} is not finite ({C[:, q].tolist()})")
            raise RuntimeError(f"hopping network: Newton did not converge at or around centre {q} "
                               f"(V = {C[:, q].tolist()})")
        if status != lib.HGE_OK:  # pragma: no cover - the shapes above leave nothing else
            raise RuntimeError(f"hge_hop_tensors: status {status}")
        return I, G, H, T

    def _taylor_tensors_numpy(self, C):
        """:meth:`taylor_tensors` with the solves batched through :meth:`current_and_gradient` and
        the difference formulas in numpy (the reference of :meth:`_tensors_c`; the path of the
        numpy kernel)."""
        from .simulated import DERIV_STEP
        C = np.asarray(C, float)
        k, ne, h = C.shape[1], N_ELECTRODES, DERIV_STEP
        D = _displacements(h)                                  # (35, 7)
        P = (C.T[:, None, :] + D[None]).reshape(k * D.shape[0], ne).T   # centre + D, centre by centre
        if self.kernel == "c":
            # Newton for a displaced point starts from the centre's first-order prediction
            # phi + (dphi/dV) D (off by O(h^2): one Newton step fewer than from phi itself).
            I, g0, phi, dphi = self._solve_c(C, dphi=True)
            start = (phi[:, None, :] + np.einsum("wik,dk->wdi",
                                                 dphi, D)).reshape(-1, self.n)
        else:
            I, g0, phi = self.current_and_gradient(C)
            start = np.repeat(phi, D.shape[0], axis=0)
        _, Gd, _ = self.current_and_gradient(P, start)
        Gd = Gd.reshape(ne, k, D.shape[0]).transpose(1, 0, 2)  # (k, component i, displaced point)
        gp, gm, gx = Gd[:, :, :ne], Gd[:, :, ne:2 * ne], Gd[:, :, 2 * ne:]
        g0k = g0.T[:, :, None]                                 # (k, i, 1)
        H = (gp - gm) / (2 * h)
        H = 0.5 * (H + H.transpose(0, 2, 1))
        T = np.empty((k, ne, ne, ne))
        jj = np.arange(ne)
        T[:, :, jj, jj] = (gp - 2 * g0k + gm) / h**2
        a, b = np.triu_indices(ne, 1)                          # pairs j < k in the order of _displacements
        off = (gx - gp[:, :, a] - gp[:, :, b] + g0k) / h**2
        T[:, :, a, b] = off
        T[:, :, b, a] = off
        return I, g0, H, T


def _displacements(h: float) -> np.ndarray:
    """The evaluator's displaced points for 7 moving electrodes (``FastEvaluator.current``):
    +h e_j, -h e_j, then +h (e_j + e_k) for j < k in order, as rows (35, 7)."""
    m = N_ELECTRODES
    D = np.zeros((2 * m + m * (m - 1) // 2, m))
    D[np.arange(m), np.arange(m)] = h
    D[m + np.arange(m), np.arange(m)] = -h
    r = 2 * m
    for a in range(m):
        for b in range(a + 1, m):
            D[r, a] = D[r, b] = h
            r += 1
    return D

