"""The surrogate's derivatives at one centre in C (``SurrogateModel.centre_tensors``,
``csrc/host/hge_sim_tensors.c``) against the numpy formula (``taylor_tensors``, the reference).

The bound. Both evaluate the same formula (``taylor_tensors``' docstring) in double precision, in
different orders and groupings, so each lies within a first-order forward-error bound E of the
exact value and |C - numpy| <= 2 E. E is a running error analysis (Higham, Accuracy and
Stability, 3.1-3.5), evaluated here intermediate by intermediate with the standard model
fl(a op b) = (a op b)(1 + d), |d| <= u, and for exp and tanh |d| <= 4 u (glibc's and numpy's
implementations are within a few ulp):

* a sum of n products, in any order and grouping: |err| <= sum(|a| e_b + |b| e_a) +
  gamma_k sum |a b|, k the roundings along one term's path (n adds + its multiplies);
* f(x) for exp, tanh: |err| <= |f'(x)| e_x + 4 u |f(x)|;
* a polynomial in (u, e) with k roundings per term: sum of |partial| x input error + gamma_k
  sum |terms|.

Second-order terms (products of two errors, ~u^2) are covered by the factor 1.01, which also
covers the rounding of the bound's own evaluation (a few ulp of it).
"""
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from hge_embedded.devices.simulated import FastEvaluator, SimulatedDNPU
from hge_embedded.devices.surrogate import SurrogateModel
from hge_embedded.devices.taylor_kernel import U, gamma

sys.path.insert(0, str(Path(__file__).parent))
from sanitized import run_sanitized  # noqa: E402

UF = 4 * U   # exp, tanh


def error_bound(m: SurrogateModel, V):
    """E of I (1,), g (7,), H (7, 7), T (7, 7, 7) at the centre V (7,) (module docstring)."""
    W1, b1, W2, b2, c, s = m.W1, m.b1, m.W2, m.b2, m.c, abs(m.scale)
    S, E = W1.shape
    P = W2.shape[0]
    aW1, aW2, ac = np.abs(W1), np.abs(W2), np.abs(c)
    u = W1 @ V + b1
    au = np.abs(u)
    e_u = gamma(E + 1) * (aW1 @ np.abs(V) + np.abs(b1))
    e = np.exp(-u * u)
    # exp(-(u u)): the argument's error 2|u| e_u + u u^2, through exp (derivative e).
    e_e = e * (2 * au * e_u + U * u * u) + UF * e
    g1, g2, g3 = -4 * u * e, (8 * u * u - 4) * e, (24 * u - 16 * u ** 3) * e
    e_g1 = 4 * (au * e_e + e * e_u) + gamma(2) * np.abs(g1)
    e_g2 = 16 * au * e * e_u + np.abs(8 * u * u - 4) * e_e + gamma(3) * (8 * u * u + 4) * e
    e_g3 = (np.abs(24 - 48 * u * u) * e * e_u + np.abs(24 * u - 16 * u ** 3) * e_e
            + gamma(5) * (24 * au + 16 * au ** 3) * e)
    gv = 2 * e - 1
    e_gv = 2 * e_e + U * np.abs(gv)
    z = W2 @ gv + b2
    e_z = aW2 @ e_gv + gamma(S + 1) * (aW2 @ np.abs(gv) + np.abs(b2))
    p = np.tanh(z)
    ap = np.abs(p)
    e_p = (1 - p * p) * e_z + UF * ap
    q = 1 - p * p
    e_q = 2 * ap * e_p + gamma(2) * (1 + p * p)
    cf1, cf2, cf3 = c * q, c * (-2 * p * q), c * (q * (6 * p * p - 2))
    e_cf1 = ac * e_q + U * np.abs(cf1)
    e_cf2 = 2 * ac * (np.abs(q) * e_p + ap * e_q) + gamma(3) * np.abs(cf2)
    e_cf3 = (ac * (np.abs(q) * 12 * ap * e_p + np.abs(6 * p * p - 2) * e_q)
             + gamma(5) * ac * np.abs(q) * (6 * p * p + 2))
    e_I = s * (ac @ e_p + gamma(P + 1) * (ac @ ap)) + U * s * abs(c @ p)
    w = W2.T @ cf1
    e_w = aW2.T @ e_cf1 + gamma(P + 1) * (aW2.T @ np.abs(cf1))
    aw = np.abs(w)
    e_g = s * (aW1.T @ (aw * e_g1 + np.abs(g1) * e_w) + gamma(S + 3) * (aW1.T @ (aw * np.abs(g1))))
    J = W2 @ (g1[:, None] * W1)                                            # (P, 7)
    aJ = np.abs(J)
    e_J = aW2 @ (aW1 * e_g1[:, None]) + gamma(S + 2) * (aW2 @ (aW1 * np.abs(g1)[:, None]))
    # H = s sum_S (w g'') W1_j W1_l + s sum_P (cf2 J_j) J_l
    W11 = aW1[:, :, None] * aW1[:, None, :]                                # (S, 7, 7)
    h_terms = (np.einsum("s,sjl->jl", aw * np.abs(g2), W11)
               + np.einsum("p,pj,pl->jl", np.abs(cf2), aJ, aJ))
    e_H = s * (np.einsum("s,sjl->jl", aw * e_g2 + np.abs(g2) * e_w, W11)
               + np.einsum("p,pj,pl->jl", e_cf2, aJ, aJ)
               + np.einsum("p,pj,pl->jl", np.abs(cf2), e_J, aJ)
               + np.einsum("p,pj,pl->jl", np.abs(cf2), aJ, e_J)
               + gamma(max(S, P) + 6) * h_terms) + U * s * h_terms
    # T = s [sum_S (w g''') W1_j W1_l W1_m + M_jlm + M_ljm + M_mjl + sum_P cf3 J_j J_l J_m],
    # M_abc = sum_S B_aS W1_b W1_c, B_aS = (sum_P cf2 J_a W2_PS) g''_S.
    Bt = (cf2[:, None] * J).T @ W2                                         # (7, S), before g''
    aBt_terms = (np.abs(cf2)[:, None] * aJ).T @ aW2
    e_Bt = (e_cf2[:, None] * aJ + np.abs(cf2)[:, None] * e_J).T @ aW2 + gamma(P + 2) * aBt_terms
    aB = np.abs(Bt * g2)
    e_B = e_Bt * np.abs(g2) + np.abs(Bt) * e_g2 + U * aB
    W111 = W11[:, :, :, None] * aW1[:, None, None, :]                      # (S, 7, 7, 7)
    M = np.einsum("as,sbc->abc", aB, W11)                                  # |M| terms
    e_M = np.einsum("as,sbc->abc", e_B, W11)
    t_terms = (np.einsum("s,sjlm->jlm", aw * np.abs(g3), W111) + M + M.transpose(1, 0, 2)
               + M.transpose(2, 0, 1) + np.einsum("p,pj,pl,pm->jlm", np.abs(cf3), aJ, aJ, aJ))
    e_T = s * (np.einsum("s,sjlm->jlm", aw * e_g3 + np.abs(g3) * e_w, W111)
               + e_M + e_M.transpose(1, 0, 2) + e_M.transpose(2, 0, 1)
               + np.einsum("p,pj,pl,pm->jlm", e_cf3, aJ, aJ, aJ)
               + np.einsum("p,pj,pl,pm->jlm", np.abs(cf3), e_J, aJ, aJ)
               + np.einsum("p,pj,pl,pm->jlm", np.abs(cf3), aJ, e_J, aJ)
               + np.einsum("p,pj,pl,pm->jlm", np.abs(cf3), aJ, aJ, e_J)
               + gamma(max(S, P) + 10) * t_terms) + U * s * t_terms
    return e_I, e_g, e_H, e_T


def _check(m, V):
    ref = m.taylor_tensors(V[:, None])
    got = m.centre_tensors(V)
    eI, eg, eH, eT = error_bound(m, V)
    for name, a, b, bound in zip("IgHT", ref, got, (eI, eg[:, None], eH[None], eT[None])):
        assert a.shape == b.shape, name
        excess = np.abs(a - b) - 2.0 * 1.01 * bound
        assert np.all(excess <= 0), (name, float(np.max(excess)))


@given(st.lists(st.floats(-1.5, 1.5), min_size=7, max_size=7), st.integers(0, 5))
def test_centre_tensors_within_the_derived_bound_of_numpy(v, seed):
    _check(SurrogateModel(seed), np.array(v))


@given(st.lists(st.floats(-1.0, 1.0), min_size=7, max_size=7))
def test_centre_tensors_other_sizes(v):
    """Sites and paths not multiples of 4 (the C sums' tails), a gain that saturates the paths."""
    for kw in (dict(sites=21, paths=7), dict(sites=5, paths=3, path_gain=4.0), dict(sites=96, paths=33)):
        _check(SurrogateModel(3, **kw), np.array(v))


def test_the_bound_is_not_vacuous():
    """The bound is far below the derivatives (a few hundred u of their terms), and the two paths do
    differ (else the test could not tell them apart): it could fail."""
    m = SurrogateModel(0)
    V = np.array([-0.3, 0.1, -0.5, 0.2, 0.0, -0.4, 0.3])
    ref, got = m.taylor_tensors(V[:, None]), m.centre_tensors(V)
    eT = error_bound(m, V)[3]
    assert np.max(eT) < 1e-11 * np.max(np.abs(ref[3]))
    assert any(not np.array_equal(a, b) for a, b in zip(ref, got))


def test_centre_tensors_symmetric_and_shapes():
    m = SurrogateModel(1)
    I, g, H, T = m.centre_tensors(np.linspace(-0.5, 0.5, 7))
    assert I.shape == (1,) and g.shape == (7, 1) and H.shape == (1, 7, 7) and T.shape == (1, 7, 7, 7)
    assert np.array_equal(H[0], H[0].T)
    for axes in ((1, 0, 2), (0, 2, 1), (2, 1, 0), (1, 2, 0), (2, 0, 1)):
        assert np.array_equal(T[0], T[0].transpose(axes))


def test_centre_tensors_see_the_weights_as_they_are_now():
    """Nothing is kept between calls: weights changed in place give the new model's derivatives."""
    m = SurrogateModel(2)
    V = np.full(7, 0.1)
    before = m.centre_tensors(V)
    m.W1[3, 2] += 0.5
    m.b2[0] -= 0.25
    after = m.centre_tensors(V)
    fresh = SurrogateModel(2)
    fresh.W1[3, 2] += 0.5
    fresh.b2[0] -= 0.25
    assert not np.array_equal(before[3], after[3])
    assert all(np.array_equal(a, b) for a, b in zip(after, fresh.centre_tensors(V)))
    _check(m, V)
    # An attribute set to a new array (the C views are kept per array identity), and weights that
    # are not contiguous float64 (copied per call, never kept: a later change in place is seen too).
    m.W2 = m.W2 * 1.5
    fresh.W2 = fresh.W2 * 1.5
    assert all(np.array_equal(a, b) for a, b in zip(m.centre_tensors(V), fresh.centre_tensors(V)))
    _check(m, V)
    m.W1 = np.asfortranarray(m.W1)
    assert all(np.array_equal(a, b) for a, b in zip(m.centre_tensors(V), fresh.centre_tensors(V)))
    m.W1[0, 0] += 1.0
    fresh.W1[0, 0] += 1.0
    assert all(np.array_equal(a, b) for a, b in zip(m.centre_tensors(V), fresh.centre_tensors(V)))
    _check(m, V)


def test_centre_tensors_refusals():
    m = SurrogateModel(0)
    with pytest.raises(ValueError, match="centre must have 7"):
        m.centre_tensors(np.zeros(6))
    with pytest.raises(ValueError, match="finite"):
        m.centre_tensors(np.array([0, 0, np.nan, 0, 0, 0, 0.0]))
    from hge_embedded._hge_core import ffi, lib
    work = np.empty(int(lib.hge_sim_tensors_work(96, 32, 7)))
    out = np.empty(1 + 7 + 49 + 343)
    d = lambda a: ffi.from_buffer("double[]", a)  # noqa: E731
    args = [d(np.ascontiguousarray(a)) for a in (m.W1, m.b1, m.W2, m.b2, m.c)]
    cen = d(np.zeros(7))
    o = d(out)
    assert lib.hge_sim_tensors(*args, 30.0, 96, 32, 7, cen, d(work), work.size - 1, o, o + 1, o + 8,
                               o + 57) == lib.HGE_ERR_SIZE
    assert lib.hge_sim_tensors(*args, 30.0, 96, 32, 17, cen, d(work), work.size, o, o + 1, o + 8,
                               o + 57) == lib.HGE_ERR_SIZE
    assert lib.hge_sim_tensors(ffi.NULL, *args[1:], 30.0, 96, 32, 7, cen, d(work), work.size, o, o + 1,
                               o + 8, o + 57) == lib.HGE_ERR_NULL
    out[:] = 7.0
    assert lib.hge_sim_tensors(*args, 30.0, 96, 32, 7, d(np.array([0, 0, 0, np.inf, 0, 0, 0.0])), d(work),
                               work.size, o, o + 1, o + 8, o + 57) == lib.HGE_ERR_RANGE
    assert np.all(out == 7.0)   # nothing written before the checks pass


def test_simulator_takes_the_c_derivatives_for_one_window_only():
    """FastEvaluator: one window's derivatives from centre_tensors, a batch's from the numpy formula
    bit for bit as before (a training iteration's record is unchanged), for both C paths."""
    m = SurrogateModel(0)
    fe = FastEvaluator(m, 20 / 2**16, threads=1)
    C1 = np.full((7, 1), 0.05)
    C3 = np.random.default_rng(0).uniform(-0.5, 0.5, (7, 3))
    assert all(np.array_equal(a, b) for a, b in zip(fe._window_tensors(C1), m.centre_tensors(C1[:, 0])))
    assert all(np.array_equal(a, b) for a, b in zip(fe._window_tensors(C3), m.taylor_tensors(C3)))


def test_one_window_record_within_bound_of_the_numpy_path():
    """A one-window record on the simulator (noise off, no ADC): the whole-record C path with the C
    derivatives against the numpy reference path. The expansion is linear in the packed tensors,
    so their difference (<= 2 E) moves the output by at most sum |dI| + |dg| |d| + |dH| |d|^2 / 2 +
    |dT| |d|^3 / 6 (d the offset from the centre), plus the two paths' own round-off
    (taylor_kernel.roundoff_bound)."""
    from hge_embedded.devices import taylor_kernel as tk
    sim = SimulatedDNPU(seed=0, noise=False, dac_bits=None, threads=1)
    fe = sim._fast
    t = np.arange(1000) / 10_000.0
    f = np.array([1000.0, 960.0, 910.0, 850.0, 780.0, 680.0, 540.0])
    v = np.array([-0.3, 0.1, -0.5, 0.2, 0.0, -0.4, 0.3])[:, None] + 0.008 * np.sin(2 * np.pi * f[:, None] * t)
    yc = fe.current(v)
    runs = fe._runs(v)
    assert len(runs) == 1
    _, _, lo, hi = runs[0]
    cen = 0.5 * (lo + hi)
    fe.kernel = "numpy"
    try:
        yn = fe.current(v)
    finally:
        fe.kernel = "c"
    I, g, H, T = sim.model.taylor_tensors(cen[:, None])
    eI, eg, eH, eT = (2.02 * x for x in error_bound(sim.model, cen))
    a = np.abs(v - cen[:, None])
    moved = (eI + eg @ a + np.einsum("jk,jn,kn->n", eH, a, a) / 2
             + np.einsum("jkl,jn,kn,ln->n", eT, a, a, a) / 6)
    bound = tk.roundoff_bound(v, cen, I[0], g[:, 0], H[0], T[0]) + moved
    assert np.all(np.abs(yc - yn) <= bound)


def test_numpy_tensors_see_w1_changed_in_place():
    """The reference's cached outer powers of W1 follow W1's value (they were made once, so a W1
    changed in place after the first call gave the old model's H and T, silently)."""
    m, fresh = SurrogateModel(4), SurrogateModel(4)
    C = np.full((7, 2), 0.2)
    m.taylor_tensors(C)
    m.W1[5, 1] -= 0.3
    fresh.W1[5, 1] -= 0.3
    assert all(np.array_equal(a, b) for a, b in zip(m.taylor_tensors(C), fresh.taylor_tensors(C)))


def test_centre_tensors_c_under_sanitizers(tmp_path):
    """csrc/host/hge_sim_tensors.c with AddressSanitizer and UBSan (tests/c/sim_tensors_check.c: exact-size
    buffers, tails, E = 1 and 16, refusals). Built at -O0."""
    out = run_sanitized(tmp_path, "sim_tensors_check", ["csrc/host/hge_sim_tensors.c", "tests/c/sim_tensors_check.c"],
                        timeout=60)
    assert out.startswith("PASS sim tensors: ")
