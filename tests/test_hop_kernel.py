"""The hopping network's C kernel (csrc/host/hge_hop_solve.c, ``HoppingNetwork.kernel = "c"``, the
default) against the numpy reference (``kernel = "numpy"``), within bounds derived below.

The two solve the same equations with the same Newton (linear-network start, damping, stop after the
first step below ``NEWTON_TOL``), but round differently: the C kernel makes exp(x_b) as
exp(u_b1 / V0) exp(-u_b0 / V0), K as g f instead of G0 G_b exp(ln f), solves by Cholesky instead of
LU, and sums in another order. So they agree to round-off and to the Newton tolerance, not to the bit.

Derivation of the bounds (n sites, A = -J = sum_b K_b C_b d_b d_b^T, kappa = ||A||_inf ||A^-1||_inf,
gamma_k = k u / (1 - k u), Higham's notation):

* phi. Each solution is within NEWTON_TOL of the root of its own floating-point residual: the last
  step, applied, was below the tolerance, and Newton converges quadratically here (steps ~1e-3,
  2e-7, 6e-15 V), so the error left after it is far smaller than the step. The floating-point
  residual at a site differs from the exact one by at most rho_i = gamma_{n+16} V0 sum_b K_b C_b
  |D_ib| (each branch current V0 K S with its exps, products and the sum over n + 7 branches;
  C >= |S| also covers the absolute error u C of sinh's two-exp cancellation), which moves the root
  by at most ||A^-1||_inf rho. Both solutions: |dphi| <= 2 (NEWTON_TOL + ||A^-1||_inf max rho).
* I = -V0 sum_out K S: first order in phi, |dI/dphi_i| = K_io C_io, plus each side's own rounding
  gamma_{n+16} V0 sum_out K C: |dI| <= sum_i K_io C_io |dphi| + 2 gamma_{n+16} V0 sum_out K C.
* gradient at the same phi (the C kernel's own potentials, handed to the numpy formula): the adjoint
  lam solves A lam = b with A and b from K, C (relative errors <= gamma_{n+16}) by a backward-stable
  solve (Cholesky, LU: backward error gamma_{3n} |A|), so each side's lam is within
  kappa (gamma_{n+16} + gamma_{3n}) / (1 - ...) ||lam|| of the exact one: dlam <= 4 kappa gamma_{4n+16}
  ||lam||_inf for the two together, dw <= 2 dlam for w_b = lam_b0 - lam_b1. grad_k is a sum of terms
  u_b t c and K C w; each term's own rounding is <= gamma_{n+30} of its magnitude (Sg_k: the sum of the
  magnitudes) and its dependence on w is linear with coefficient magnitudes summing to Sw_k:
  |dgrad_k| <= 2 gamma_{n+30} Sg_k + Sw_k dw.
* gradient end to end: add the change of the exact gradient formula between the two potentials,
  <= Lg |dphi| with Lg_k = sum_i |d grad_k / d phi_i| at fixed V, taken by central differences of the
  numpy formula with step 1e-6 V (truncation O(1e-12) relative; the factor 2 on it covers it).
"""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hge_embedded.devices import dnpu_physics
from hge_embedded.devices.dnpu_physics import NEWTON_TOL, N_ELECTRODES, HoppingNetwork
from hge_embedded.devices.simulated import DERIV_STEP, FastEvaluator, SimulatedDNPU

U = 2.0 ** -53


def gamma(k):
    return k * U / (1.0 - k * U)


_NETS = {}


def _net(seed):
    if seed not in _NETS:
        _NETS[seed] = HoppingNetwork(seed)
    return _NETS[seed]


def _numpy(net, fn, *a):
    net.kernel = "numpy"
    try:
        return fn(*a)
    finally:
        net.kernel = "c"


def _magnitudes(net, V, phi):
    """At (V (7, N), phi (N, n)) with the numpy pieces: A, lam, and the magnitude sums of the bounds."""
    n = net.n
    K, (t0, t1), xt = net._state(V)
    _, J, _, S, C = net._residual_jacobian(phi, K, xt)
    A = -J
    KS, KC = K * S, K * C
    dI_dphi = (KC[:, net.out] @ net.E0[net.out])[:, :n]
    lam = np.linalg.solve(J, dI_dphi[..., None])[..., 0]
    w = lam @ net.D[:n]
    u = -net.V0 * KS * (net.is_out[None, :] - w)
    absD = np.abs(net.D[:n])
    cE = np.abs(net.c_ext)
    term_K = (np.abs(u * t0) @ net.E0 + np.abs(u * t1) @ net.E1) @ cE          # (N, 7)
    Dn = net.D[n:n + N_ELECTRODES].T
    term_x = (KC * np.abs(w)) @ Dn
    coef_w = ((net.V0 * np.abs(KS * t0)) @ net.E0 + (net.V0 * np.abs(KS * t1)) @ net.E1) @ cE + KC @ Dn
    return dict(A=A, lam=lam, KC=KC, rho=gamma(n + 16) * net.V0 * (KC @ absD.T), Sg=term_K + term_x, Sw=coef_w)


def _bounds(net, V, phi):
    """Per point: (bound on |dphi|_inf, on |dI|, on |dgrad| at the same phi (7, N), and Lg (7, N))."""
    n = net.n
    m = _magnitudes(net, V, phi)
    Ainv = np.linalg.inv(m["A"])
    nA = np.abs(m["A"]).sum(axis=2).max(axis=1)
    nAinv = np.abs(Ainv).sum(axis=2).max(axis=1)
    dphi = 2 * (NEWTON_TOL + nAinv * m["rho"].max(axis=1))
    KCo = m["KC"][:, net.out]
    dI = KCo.sum(axis=1) * dphi + 2 * gamma(n + 16) * net.V0 * KCo.sum(axis=1)
    dlam = 4 * nA * nAinv * gamma(4 * n + 16) * np.abs(m["lam"]).max(axis=1)
    dg_same = 2 * gamma(n + 30) * m["Sg"].T + m["Sw"].T * (2 * dlam)[None]
    # Lg: central differences of the numpy formula in phi at fixed V.
    eps = 1e-6
    state = net._state(V)
    Lg = np.zeros((N_ELECTRODES, V.shape[1]))
    for i in range(n):
        e = np.zeros(n)
        e[i] = eps
        gp = net._outputs_numpy(phi + e, state)[1]
        gm = net._outputs_numpy(phi - e, state)[1]
        Lg += np.abs(gp - gm) / (2 * eps)
    return dphi, dI, dg_same, 2 * Lg


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 3), vseed=st.integers(0, 2**32 - 1), span=st.sampled_from([0.05, 0.5, 1.0]))
def test_c_solve_equals_the_numpy_reference_within_the_derived_bound(seed, vseed, span):
    net = _net(seed)
    rng = np.random.default_rng(vseed)
    centre = rng.uniform(-0.8, 0.3, (7, 1))
    V = np.clip(centre + rng.uniform(-span, span, (7, 12)), -1.2, 0.7)
    Ic, Gc, pc = net.current_and_gradient(V)
    In, Gn, pn = _numpy(net, net.current_and_gradient, V)
    dphi, dI, dg_same, Lg = _bounds(net, V, pn)
    assert np.all(np.abs(pc - pn).max(axis=1) <= dphi)
    assert np.all(np.abs(Ic - In) <= dI)
    assert np.all(np.abs(Gc - Gn) <= dg_same + Lg * dphi[None])
    # current() alone gives the same current as current_and_gradient (the same solve, to the bit).
    assert np.array_equal(net.current(V), Ic)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 3), vseed=st.integers(0, 2**32 - 1))
def test_c_outputs_equal_the_numpy_formula_at_the_same_potentials(seed, vseed):
    """Round-off alone: the C kernel's I and gradient at its own final potentials against the numpy
    formula (``_outputs_numpy``) at those potentials."""
    net = _net(seed)
    V = np.random.default_rng(vseed).uniform(-1.2, 0.7, (7, 10))
    _, _, p0 = net.current_and_gradient(V)
    Ic, Gc, pc = net.current_and_gradient(V, p0)      # one more (tiny) step; outputs at pc exactly
    In, Gn = net._outputs_numpy(pc, net._state(V))
    _, _, dg_same, _ = _bounds(net, V, pc)
    dI_round = 2 * gamma(net.n + 16) * net.V0 * _magnitudes(net, V, pc)["KC"][:, net.out].sum(axis=1)
    assert np.all(np.abs(Ic - In) <= dI_round)
    assert np.all(np.abs(Gc - Gn) <= dg_same)


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 3), vseed=st.integers(0, 2**32 - 1))
def test_c_tensors_are_the_numpy_formulas_bit_for_bit(seed, vseed):
    """``hge_hop_tensors`` (one C call per batch of centres) against the same solves through
    ``current_and_gradient`` and the difference formulas in numpy: the same operations in the same
    order, so the same bits."""
    net = _net(seed)
    C = np.random.default_rng(vseed).uniform(-1.1, 0.6, (7, 3))
    a = net.taylor_tensors(C)
    b = net._taylor_tensors_numpy(C)
    for x, y in zip(a, b):
        assert np.array_equal(x, y)


def test_tensors_numpy_formulas_are_the_evaluators():
    """``_taylor_tensors_numpy``'s H and T are ``FastEvaluator._difference_tensors`` of its gradients."""
    net = _net(1)
    C = np.random.default_rng(3).uniform(-1.0, 0.5, (7, 2))
    I, g, H, T = net._taylor_tensors_numpy(C)
    D = dnpu_physics._displacements(DERIV_STEP)
    for w in range(C.shape[1]):
        _, _, phi, dphi = net._solve_c(C[:, [w]], dphi=True)
        start = phi[0] + D @ dphi[0].T
        _, Gd, _ = net.current_and_gradient(C[:, [w]] + D.T, start)
        Hr, Tr = FastEvaluator._difference_tensors(g[:, w], Gd)
        assert np.array_equal(H[w], Hr) and np.array_equal(T[w], Tr)


def test_dphi_is_the_derivative_of_the_solution():
    """dphi/dV (the predictor of the displaced points) against central differences of phi
    (h = 1e-6 V: truncation h^2 |phi'''| / 6 ~ 1e-13, cancellation ~1e-16 V / 1e-6 V = 1e-10)."""
    net = _net(0)
    V = np.random.default_rng(1).uniform(-1.2, 0.6, (7, 8))
    _, _, _, dphi = net._solve_c(V, dphi=True)
    h = 1e-6
    for k in range(7):
        e = np.zeros((7, 1))
        e[k] = h
        num = (net._solve_c(V + e)[2] - net._solve_c(V - e)[2]) / (2 * h)
        assert np.allclose(dphi[:, :, k], num, rtol=0, atol=1e-8)


def test_the_windows_on_both_evaluator_paths_agree_within_the_bound():
    """The evaluator's whole-record path (``taylor_tensors``, all 7 electrodes, predictor starts)
    against its per-window path (``analytic = False``: the moving electrodes only, displaced points
    started at the centre's potentials): each window's polynomial differs by at most
    dI + |dg| |d| + |dH| |d|^2 / 2 + |dT| |d|^3 / 6 with |dH| <= 2 dg / (2 h) and |dT| <= 4 dg / h^2
    (dg the largest end-to-end gradient bound over the centre and its displaced points), plus the
    Taylor kernel's round-off (2 gamma_{3n+9} of the terms, the kernel being the same on both)."""
    sim = SimulatedDNPU(seed=2, noise=False, model="hopping", dac_bits=None, threads=1)
    fe = sim._fast
    assert fe.analytic                       # the hopping model takes the whole-record path
    t = np.arange(400) / 10_000.0
    f = np.array([173.0, 211.0, 263.0, 307.0, 359.0, 419.0, 0.0])   # one electrode held still
    rng = np.random.default_rng(11)
    v = np.concatenate([rng.uniform(-0.9, 0.4, (7, 1)) + 0.008 * np.sin(2 * np.pi * f[:, None] * t)
                        for _ in range(3)], axis=1)
    new = fe.current(v)
    fe.analytic = False
    try:
        old = fe.current(v)
    finally:
        fe.analytic = True
    net = sim.model
    D = dnpu_physics._displacements(DERIV_STEP)
    h = DERIV_STEP
    for s, e, lo, hi in fe._runs(v):
        cen = 0.5 * (lo + hi)
        P = np.concatenate([cen[:, None], cen[:, None] + D.T], axis=1)
        _, _, pn = _numpy(net, net.current_and_gradient, P)
        dphi, dI, dg_same, Lg = _bounds(net, P, pn)
        dg = np.max(dg_same + Lg * dphi[None])
        d = np.abs(v[:, s:e] - cen[:, None]).sum(axis=0)
        I, g, H, T = net.taylor_tensors(cen[:, None])
        terms = (abs(I[0]) + np.abs(g[:, 0]) @ np.abs(v[:, s:e] - cen[:, None])
                 + np.abs(H[0]).max() * d**2 / 2 + np.abs(T[0]).max() * d**3 / 6)
        bound = dI[0] + dg * d + (dg / h) * d**2 / 2 + (4 * dg / h**2) * d**3 / 6 + 2 * gamma(3 * 7 + 9) * terms
        assert np.all(np.abs(new[s:e] - old[s:e]) <= bound)


def test_passive_and_exact_zero_in_c():
    """Every terminal at 0 V: phi = 0 from the linear start, every exp factor is exp(0) = 1, sinh 0 = 0."""
    for seed in range(4):
        I, G, phi = _net(seed).current_and_gradient(np.zeros((7, 3)))
        assert np.all(I == 0.0) and np.all(phi == 0.0)


def test_c_refusals_name_the_argument():
    net = _net(0)
    V = np.zeros((7, 4))
    V[2, 1] = np.nan
    with pytest.raises(ValueError, match="V: point 1"):
        net.current(V)
    with pytest.raises(ValueError, match="V must be"):
        net.current(np.zeros((6, 3)))
    with pytest.raises(ValueError, match="phi0"):
        net.current_and_gradient(np.zeros((7, 3)), np.zeros((2, net.n)))
    start = np.zeros((3, net.n))
    start[2, 4] = np.inf
    with pytest.raises(ValueError, match="phi0: point 2"):
        net.current_and_gradient(np.zeros((7, 3)), start)
    with pytest.raises(ValueError, match="C must be"):
        net.taylor_tensors(np.zeros((5, 2)))
    # A start 1 kV away: the damping moves at most V0 = 0.3 V per step, so 40 steps cannot reach it.
    with pytest.raises(RuntimeError, match="did not converge at point 0"):
        net.current(np.zeros((7, 1)), np.full((1, net.n), 1e3))


def test_models_the_c_kernel_does_not_cover_stay_on_numpy():
    assert HoppingNetwork(0, **dnpu_physics.PERIODIC_BLOCKADE_PARAMS).kernel == "numpy"
    net = HoppingNetwork(0, eps=0.5)
    assert net.kernel == "numpy"
    net.kernel = "c"                      # forced onto a model it does not cover: refused, not solved wrong
    with pytest.raises(ValueError, match="kernel 'c'.*eps=0.5"):
        net.current(np.zeros((7, 2)))
    assert HoppingNetwork(0).kernel == "c"
