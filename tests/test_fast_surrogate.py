"""The surrogate's window expansion (``SimulatedDNPU(evaluation="fast")``, the default) against the
exact per-sample evaluation, within the derived error bound.

The bound (``SurrogateModel.fourth_derivative_bound`` has the derivation of B4, an upper bound of
|d^4/dt^4 I(V + t d)| over a box and a set of directions):

* windows: the third-order Taylor expansion at the centre of a box of half-width r_j <= TAYLOR_RADIUS
  per electrode, at an offset d with |d_j| <= r_j, leaves the Lagrange remainder
  |I - T3| <= B4(centre, r, r) / 4! (the derivatives at the centre are analytic, exact to round-off);
* ramps: cubic Hermite interpolation of f(t) = I(V0 + t D) between knots h apart leaves
  |f - p| <= h^4 / 384 max|f''''| (the classical Hermite remainder, max of (u(1-u))^2/4! = 1/384),
  and f'''' h^4 = d^4 I [h D]^4, so on each knot interval |I - p| <= B4(its midpoint, h |D| / 2,
  h |D|) / 384;
* through the chain (noise off): the first-order filter and the fractional delay are convex
  combinations of samples (non-negative weights summing to 1) and the clip is 1-Lipschitz, so the
  largest difference of the currents bounds the difference before the ADC; the ADC rounding then
  differs by at most one step.
Round-off of the expansions themselves: ~1e-12 nA, far below the bounds (added as 1e-9 nA).
"""
import numpy as np
import pytest

from hge_embedded.devices.simulated import TAYLOR_RADIUS, FastEvaluator, SimulatedDNPU
from hge_embedded.devices.surrogate import SurrogateModel

ROUND = 1e-9   # nA


def _windows(rng, n_windows, length=400, amp=0.008):
    """HGE-like windows: a random bias plus sines of +-amp on every electrode."""
    t = np.arange(length) / 10_000.0
    freqs = np.array([173.0, 211.0, 263.0, 307.0, 359.0, 419.0, 461.0])
    out = []
    for _ in range(n_windows):
        bias = rng.uniform(-0.9, 0.5, 7)
        out.append(bias[:, None] + amp * np.sin(2 * np.pi * freqs[:, None] * t + rng.uniform(0, 6.3, (7, 1))))
    return out


def _ramp_bound(m, a, b, knot):
    """max over the ramp's knot intervals of B4(interval midpoint, step/2, step) / 384."""
    D = np.abs(b - a)
    n_int = max(1, int(np.ceil(D.max() / knot)))
    mids = [a + (i + 0.5) / n_int * (b - a) for i in range(n_int)]
    return max(m.fourth_derivative_bound(c, D / n_int / 2, D / n_int) for c in mids) / 384


def test_taylor_tensors_are_the_derivatives():
    m = SurrogateModel(3)
    C = np.random.default_rng(0).uniform(-0.8, 0.4, (7, 4))
    I, g, H, T = m.taylor_tensors(C)
    assert np.array_equal(I, m.current_and_gradient(C)[0])
    np.testing.assert_allclose(g, m.gradient(C), rtol=1e-12, atol=1e-9)
    h = 1e-5
    E = np.eye(7)
    for k in range(C.shape[1]):
        # Central differences: error h^2/6 |f'''| ~ 1e-10 * 1e4 relative to entries ~1e2..1e3.
        Hn = np.array([(m.gradient(C[:, [k]] + h * E[:, [j]]) - m.gradient(C[:, [k]] - h * E[:, [j]]))[:, 0] / (2 * h)
                       for j in range(7)])
        np.testing.assert_allclose(H[k], Hn, atol=1e-5 * np.abs(H[k]).max())
        Tn = np.array([(m.taylor_tensors(C[:, [k]] + h * E[:, [j]])[2][0] -
                        m.taylor_tensors(C[:, [k]] - h * E[:, [j]])[2][0]) / (2 * h) for j in range(7)])
        np.testing.assert_allclose(T[k], Tn, atol=1e-5 * np.abs(T[k]).max())


@pytest.mark.parametrize("seed", [0, 1])
def test_windows_within_the_taylor_bound(seed):
    m = SurrogateModel(seed)
    fe = FastEvaluator(m, 20.0 / 2**16)
    rng = np.random.default_rng(seed)
    step = 20.0 / 2**16
    v = np.round(np.concatenate(_windows(rng, 6), axis=1) / step) * step   # DAC-quantised
    runs = fe._runs(v)
    assert sum(e - s for s, e, _, _ in runs) == v.shape[1]        # every sample in a window
    err = np.abs(fe.current(v) - m.current(v))
    for s, e, lo, hi in runs:
        assert np.all(hi - lo <= 2 * TAYLOR_RADIUS)
        r = 0.5 * (hi - lo)
        bound = m.fourth_derivative_bound(0.5 * (lo + hi), r, r) / 24 + ROUND
        assert err[s:e].max() <= bound, (s, err[s:e].max(), bound)


@pytest.mark.parametrize("seed", [0, 2])
def test_ramps_within_the_hermite_bound(seed):
    m = SurrogateModel(seed)
    fe = FastEvaluator(m, None)           # exact straight lines (no DAC): only the Hermite error
    rng = np.random.default_rng(10 + seed)
    for _ in range(4):
        a, b = rng.uniform(-0.9, 0.5, 7), rng.uniform(-0.9, 0.5, 7)
        n = 500
        v = a[:, None] + np.linspace(0, 1, n)[None] * (b - a)[:, None]
        y = fe.current(v)
        assert not fe._runs(v)                                     # a ramp, not a window
        bound = _ramp_bound(m, a, b, fe.ramp_knot) + ROUND
        err = np.abs(y - m.current(v)).max()
        assert err <= bound, (err, bound)
        assert err > 0        # it is the expansion, not the exact path


def test_measure_fast_against_exact_within_the_bound():
    """The default simulator against ``evaluation="exact"``: windows and ramps through the chain."""
    kw = dict(seed=1, noise=False, dac_bits=None)
    fast, exact = SimulatedDNPU(**kw), SimulatedDNPU(**kw, evaluation="exact")
    assert fast._fast is not None and exact._fast is None
    rng = np.random.default_rng(5)
    wins = _windows(rng, 4)
    parts, bound = [], 0.0
    m = fast.model
    for k, w in enumerate(wins):
        parts.append(w)
        r = 0.5 * np.ptp(w, axis=1)
        bound = max(bound, m.fourth_derivative_bound(0.5 * (w.max(1) + w.min(1)), r, r) / 24)
        if k + 1 < len(wins):
            a, b = w[:, -1], wins[k + 1][:, 0]
            parts.append(a[:, None] + np.linspace(0, 1, 302)[None, 1:-1] * (b - a)[:, None])
            bound = max(bound, _ramp_bound(m, a, b, fast._fast.ramp_knot))
    v = np.concatenate(parts, axis=1)
    diff = np.abs(fast.measure(v) - exact.measure(v))
    assert diff.max() <= bound + fast.adc_lsb + ROUND
    print(f'bound {bound:.3g} nA, largest difference {diff.max():.3g} nA')


def test_evaluation_option_is_checked():
    with pytest.raises(ValueError, match="evaluation must be one of .*'fast'.*got 'approx'"):
        SimulatedDNPU(evaluation="approx")
