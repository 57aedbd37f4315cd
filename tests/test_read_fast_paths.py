"""The HGE read's per-plan fast paths against the plain computations they replace.

* ``analysis.WindowPsdPlan`` (the stderr's noise fit, made once per plan) equals ``window_psd``
  bit for bit: its slope and ``S`` at the lock-in's noise bins (``at_bins_exact``; ``at_bins``, whose
  exp() is in C, is within its derived bound of it: tests/test_psdlaw.py);
* ``gradient.applied_windows`` (the DAC's applied fundamentals from two dot products per electrode, in C)
  is within its derived round-off bound of ``applied_fundamentals`` (the whole tone fit);
* the stderr from combined spectral weights (``HGEWindow._stderr_weights``) is within its derived
  bound of ``HGEWindow._stderr`` (three products, then combined);
* through ``extract_gradient``: the gradient within the applied fundamentals' bound carried
  through the estimator, the stderr within the weights' bound.
"""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hge_embedded import analysis, plans
from hge_embedded.devices.simulated import SimulatedDNPU
from hge_embedded.gradient import HGEWindow, applied_fundamentals, applied_windows, fundamental_projectors
from hge_embedded.tonefit import fit_tones
from tests.devices_for_tests import FiveElectrodeDevice, LinearDevice, tones_in_noise

U = 2.0**-53


def gamma(n):
    """Higham's gamma_n = n u / (1 - n u): the relative round-off of an n-term sum of products."""
    return n * U / (1 - n * U)


@settings(max_examples=60)
@given(st.integers(0, 2**31), st.sampled_from([(1, 0.05), (2, 0.05), (4, 0.1), (7, 0.1), (3, 0.2), (7, 0.2)]),
       st.sampled_from([1e-6, 1e-3, 1.0]), st.floats(-1.5, 0.0), st.floats(-50, 50))
def test_window_psd_plan_equals_window_psd(seed, plan_, level, beta, dc):
    rng = np.random.default_rng(seed)
    fs = 1e4
    m, T = plan_
    y, f, n = tones_in_noise(rng, m, T, level, beta, fs=fs, dc=dc, phases=True)
    bins = analysis.lockin_noise_spectra(tuple(f), fs, T, "butterworth3", n, True, True)[0]
    plan = analysis.WindowPsdPlan(n, fs, f, bins)
    fit = plan.fit(y)
    S = analysis.window_psd(y, fs, f)
    assert np.array_equal(plan.at_bins_exact(fit), S(bins))
    assert (fit[2] is None and np.isnan(S.slope)) or fit[2][0] == S.slope


@pytest.mark.parametrize("order", ["ascending", "shuffled"])
def test_window_psd_plan_split_at_the_low_edge(order):
    """at_bins takes the near law's exp() only above the low band when the bins below it are a prefix
    (the lock-in's ascending bins); bins in any other order take the masked path. Both equal
    window_psd's S bit for bit (a split that missed or double-counted a bin would not); the C exp's
    at_bins within its bound of it (PSDLAW_EXP_REL + 2.3e-16 for libm's own error), on both paths."""
    fs, T, m = 1e4, 0.1, 7
    f = plans.plan_frequencies(m, fs=fs, T=T)
    n = 1000
    y = np.random.default_rng(5).normal(size=n) + np.cumsum(np.random.default_rng(6).normal(size=n)) / 30
    bins = analysis.lockin_noise_spectra(tuple(f), fs, T, "butterworth3", n, True, True)[0]
    if order == "shuffled":
        bins = np.random.default_rng(7).permutation(bins)
        bins.flags.writeable = False
    plan = analysis.WindowPsdPlan(n, fs, f, bins)
    assert plan.below is not None and plan.below.sum() >= 1 and (~plan.below).sum() >= 1   # premise: both laws used
    assert (plan._split is not None) == (order == "ascending")
    fit = plan.fit(y)
    assert fit[2] is not None
    assert np.array_equal(plan.at_bins_exact(fit), analysis.window_psd(y, fs, f)(bins))
    assert np.all(np.abs(plan.at_bins(fit) / plan.at_bins_exact(fit) - 1) <= analysis.PSDLAW_EXP_REL + 2.3e-16)


def test_window_psd_plan_without_a_low_band():
    """A plan whose lowest tone leaves under 8 bins below it: the near law everywhere (as window_psd)."""
    fs, n = 1e4, 800
    f = np.array([90.0, 210.0])
    assert analysis._low_band(n, fs, tuple(f), 3)[0].sum() < 8   # premise
    y = np.random.default_rng(3).normal(size=n) + np.sin(2 * np.pi * 90.0 * np.arange(n) / fs)
    bins = np.fft.rfftfreq(16 * n, 1 / fs)[1:]
    bins.flags.writeable = False
    plan = analysis.WindowPsdPlan(n, fs, f, bins)
    fit = plan.fit(y)
    S = analysis.window_psd(y, fs, f)
    assert fit[2] is None and np.isnan(S.slope)
    assert np.array_equal(plan.at_bins_exact(fit), S(bins))


@settings(max_examples=40)
@given(st.integers(0, 2**31), st.sampled_from([1, 2, 3, 7]), st.integers(1, 4), st.sampled_from([800, 1000, 2000]),
       st.sampled_from([20 / 65536, 1e-6, 3.0]))
def test_applied_windows_within_the_round_off_bound_of_the_tone_fit(seed, m, K, n, lsb):
    """Against the whole tone fit's diagonal on the DAC's values of each window (what
    applied_fundamentals computes): 2 gamma_n sum |q| |p| per coefficient. Windows at random places
    in a record of 8 electrodes, the perturbed ones in a random order."""
    fs = 1e4
    rng = np.random.default_rng(seed)
    f = np.array([1000.0, 960.0, 910.0, 850.0, 780.0, 680.0, 540.0][:m])
    N = K * n + 500
    idx = rng.permutation(8)[:m]
    t = np.arange(N) / fs
    volts = rng.uniform(-0.7, 0.7, (8, 1)) + rng.normal(0, 0.01, (8, N))
    volts[idx] += rng.uniform(0.004, 0.02, (m, 1)) * np.sin(2 * np.pi * f[:, None] * t)
    if lsb == 3.0:
        volts *= 1e17   # values beyond 2^52 steps: already on the grid (the C rounding's other branch)
    starts = np.sort(rng.integers(0, N - n + 1, K))
    ps, pc = fundamental_projectors(fs, f, n)
    new = applied_windows(volts, idx, starts, n, lsb, ps, pc)
    assert new.shape == (K, m)
    for k, s0 in enumerate(starts):
        q = np.round(volts[idx, s0:s0 + n] / lsb) * lsb
        old = np.diagonal(fit_tones(q, fs, f)) if m > 1 else fit_tones(q, fs, f)[:, 0]
        assert np.array_equal(old, applied_fundamentals(volts[:, s0:s0 + n], idx, f, fs, lsb))   # premise
        bound_s = 2 * gamma(n) * (np.abs(q) * np.abs(ps)).sum(axis=1)
        bound_c = 2 * gamma(n) * (np.abs(q) * np.abs(pc)).sum(axis=1)
        assert np.all(np.abs(new[k].real - old.real) <= bound_s)
        assert np.all(np.abs(new[k].imag - old.imag) <= bound_c)


def _applied_in_order(volts, idx, starts, n, lsb, ps, pc):
    """hge_host_fundamentals' sums written out in Python floats (IEEE doubles, no fused multiply-add):
    DAC value ``round(v / lsb) lsb`` (ties to even by adding and subtracting 1.5 2^52, for the
    |v / lsb| < 2^51 used here), then both sums in sample order."""
    big = 6755399441055744.0
    out = np.empty((len(starts), len(idx)), complex)
    for k, s0 in enumerate(starts):
        for i, r in enumerate(idx):
            s = c = 0.0
            for j in range(n):
                x = float(volts[r, s0 + j]) / lsb
                q = ((x + big) - big) * lsb
                s += q * float(ps[i, j])
                c += q * float(pc[i, j])
            out[k, i] = complex(s, c)
    return out


@pytest.mark.parametrize("n", [3, 255, 256, 257, 600])
def test_applied_windows_sums_in_sample_order(n):
    """The C sums (DAC values four at a time, a chunk of 256 at a time) give the bits of the plain
    in-order sums: chunk edges (255, 256, 257, 600 samples), vector tails (3), ties on DAC codes."""
    rng = np.random.default_rng(n)
    lsb = 20.0 / 65536
    f = np.array([97.0, 211.0, 333.0])
    ps, pc = fundamental_projectors(1e4, f, n)
    volts = rng.uniform(-0.5, 0.5, (5, n + 40))
    volts[:, ::7] = (np.round(volts[:, ::7] / lsb) + 0.5) * lsb     # exactly half a step: ties to even
    idx, starts = [4, 0, 2], [0, 17, 40]
    got = applied_windows(volts, idx, starts, n, lsb, ps, pc)
    assert got.tobytes() == _applied_in_order(volts, idx, starts, n, lsb, ps, pc).tobytes()


def test_applied_windows_refuses_a_window_past_the_record():
    ps, pc = fundamental_projectors(1e4, [1000.0], 100)
    volts = np.zeros((2, 150))
    with pytest.raises(ValueError, match="HGE_ERR_SIZE"):
        applied_windows(volts, [1], [51], 100, 1e-3, ps, pc)
    with pytest.raises(ValueError, match="HGE_ERR_RANGE"):
        applied_windows(volts, [1], [0], 100, 0.0, ps, pc)
    assert applied_windows(volts, [1], [50], 100, 1e-3, ps, pc).shape == (1, 1)


def _windows_for(device, **kw):
    win = HGEWindow(device, **kw)
    rng = np.random.default_rng(11)
    bias = rng.uniform(-0.4, 0.4, device.n_electrodes)
    win.calibrate_at(bias)
    volts = win.waveform(bias)
    return win, device.measure(volts), volts


@pytest.mark.parametrize("make, kw", [
    (lambda: SimulatedDNPU(seed=2), {}),
    (lambda: SimulatedDNPU(seed=2, model="hopping"), dict(electrodes=[2, 3, 6])),
    (lambda: SimulatedDNPU(seed=2), dict(phase="inphase", filter="boxcar")),
    (lambda: FiveElectrodeDevice(S=1e-4, seed=4), {}),
    (lambda: LinearDevice([3.0, -1.0, 0.5], S=1e-4, seed=3, dac_lsb=20 / 65536), dict(phase="inphase")),
])
def test_stderr_weights_within_the_round_off_bound_of_three_products(make, kw):
    win, y, volts = _windows_for(make(), **kw)
    z, grad, se, _ = win.read_windows(y, volts, [slice(0, win.n)])
    rp = win._read_plan(None)
    W, scale = win._stderr_weights(rp)
    fb, KXX, KYY, KXY = win._cov[rp["key"]]
    plan = rp["psd"]
    S = plan.at_bins(plan.fit(y))
    m = rp["m"]
    # read_windows' stderr is exactly scale sqrt(max(W S, 0)) ...
    assert np.array_equal(se[0], scale[:m] * np.sqrt(np.maximum(W @ S, 0))[:m])
    assert np.array_equal(win.last_quadrature_stderr[0], (scale * np.sqrt(np.maximum(W @ S, 0)))[m:])
    # ... and W S is within 2 gamma_{N+3} T of _stderr's combination of three products.
    old_se, old_q = win._stderr(lambda fq: S, z[0], rp["sel"], rp["key"], across=True)
    if win.phase == "inphase":
        c, s = np.ones(m), np.zeros(m)
    else:
        ang = np.angle(win.response)
        c, s = np.cos(ang), np.sin(ang)
    xx, yy, xy_abs = KXX @ S, KYY @ S, np.abs(KXY) @ S
    N = S.size
    for new_var, sc, cc, ss, old in ((W[:m] @ S, scale[:m], c, s, old_se), (W[m:] @ S, scale[m:], s, c, old_q)):
        T_ = cc**2 * xx + ss**2 * yy + np.abs(2 * cc * ss) * xy_abs
        dv = 2 * gamma(N + 3) * T_ * (1 + 1e-9)          # the bound (T_ itself computed in floating point)
        # se = scale sqrt(var): |d se| <= scale dv / (sqrt(v1) + sqrt(v2)), plus the sqrt's and the
        # product's rounding in each (2 u se each).
        v_new = np.maximum(new_var, 0)
        bound = sc * dv / (np.sqrt(v_new) + old / sc + 1e-300) + 4 * U * np.maximum(old, sc * np.sqrt(v_new))
        assert np.all(np.abs(sc * np.sqrt(v_new) - old) <= bound)
