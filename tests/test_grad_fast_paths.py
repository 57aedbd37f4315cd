"""extract_gradient's per-call fast paths against the reference they replace (session 6)."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from hge_embedded.devices import check_volts
from hge_embedded.devices.simulated import SimulatedDNPU
from hge_embedded.gradient import HGEWindow


def _verdict(fn):
    try:
        fn()
        return None
    except ValueError as e:
        return str(e)


DEV = SimulatedDNPU(seed=0, noise=False)
WINDOWS = {mode: HGEWindow(DEV, mode=mode, amplitudes=0.02) for mode in ("parallel", "sequential")}
LIM = np.asarray(DEV.limits, float)


@given(st.lists(st.sampled_from([0, 1, 2, 3]), min_size=7, max_size=7),
       st.lists(st.floats(-0.03, 0.03), min_size=7, max_size=7),
       st.sampled_from(["parallel", "sequential"]), st.sampled_from([None, np.nan, np.inf, -np.inf]))
def test_gate_decides_as_check_volts(where, offset, mode, odd):
    """HGEWindow.gate (a window's extremes from its tones' extremes) refuses exactly the windows
    check_volts refuses, with its message: biases at and just beyond either limit by less than
    the amplitude (where rounding of bias + tone decides), inside, and non-finite."""
    win = WINDOWS[mode]
    b = np.array([(0.0, LIM[e, 0], LIM[e, 1], 0.5 * (LIM[e, 0] + LIM[e, 1]))[w] for e, w in enumerate(where)])
    b = b + np.array(offset)
    if odd is not None:
        b[3] = odd
    for sel in win.groups:
        rows, tones = win.tone_rows(sel)
        volts = np.repeat(b[:, None], win.n, axis=1)
        volts[rows] += tones
        assert _verdict(lambda: win.gate(b, sel, volts)) == _verdict(lambda: check_volts(volts, win.limits))


def test_gate_at_the_exact_edge():
    """A bias whose window's largest sample lands exactly on the upper limit passes, one ulp more
    is refused (both ways by check_volts too)."""
    win = WINDOWS["parallel"]
    rows, tones = win.tone_rows(None)
    top = tones.max(axis=1)
    b = np.zeros(7)
    e = 2
    b[rows] = 0.0
    b[e] = LIM[e, 1] - top[list(rows).index(e)]
    for bias in (b, np.nextafter(b, np.inf)):
        volts = np.repeat(bias[:, None], win.n, axis=1)
        volts[rows] += tones
        assert _verdict(lambda: win.gate(bias, None, volts)) == _verdict(lambda: check_volts(volts, win.limits))


def test_gate_extremes_per_plan():
    """The extremes are the tones' own for each selection and each plan (amplitudes, frequencies):
    a window of another plan is gated by its own."""
    a = HGEWindow(DEV, amplitudes=0.01)
    b = HGEWindow(DEV, amplitudes=0.3)
    bias = np.full(7, LIM[0, 1] - 0.2)
    for win in (a, b):
        rows, tones = win.tone_rows(None)
        volts = np.repeat(bias[:, None], win.n, axis=1)
        volts[rows] += tones
        got = _verdict(lambda: win.gate(bias, None, volts))
        assert got == _verdict(lambda: check_volts(volts, win.limits))
    assert _verdict(lambda: a.gate(bias, None, np.repeat(bias[:, None], a.n, axis=1))) is None
    with pytest.raises(ValueError, match="outside its limits"):
        rows, tones = b.tone_rows(None)
        volts = np.repeat(bias[:, None], b.n, axis=1)
        volts[rows] += tones
        b.gate(bias, None, volts)


def psd_stderr_bound(W, S, scale, got, ref):
    """Bound of |WindowPsdPlan.stderr - scale sqrt(max(W @ S, 0))| per row.

    Derivation. Both sum the N products W_j S_j, in different orders (four interleaved partial
    sums in C, BLAS's order in numpy): each is within gamma_N A of the exact sum, A = sum_j |W_j|
    S_j (S >= 0; Higham 3.1). S itself is the same operations in both; exp may be another
    implementation (numpy's own SIMD exp on some CPUs, glibc's in C), each within 4 u of exact,
    which moves a sum by at most 8 u A. So |dv| <= dv_max = (2 gamma_N + 8 u) A (A in floating
    point: (1 + 1e-9) covers it). max(., 0) is 1-Lipschitz; se = scale sqrt(v), and
    |sqrt(v1) - sqrt(v2)| <= min(sqrt(|dv|), |dv| / (sqrt(v1) + sqrt(v2))); the sqrt's and the
    product's rounding add 2 u se to each side."""
    from hge_embedded.devices.taylor_kernel import U, gamma
    A = np.abs(W) @ S * (1 + 1e-9)
    dv = (2 * gamma(S.size) + 8 * U) * A
    s1, s2 = got / scale, ref / scale
    d_sqrt = np.minimum(np.sqrt(dv), dv / np.maximum(s1 + s2, 1e-300))
    return scale * d_sqrt * (1 + 1e-9) + 4 * U * np.maximum(got, ref)


def _read_parts(make, **kw):
    from hge_embedded import devices
    d = make()
    win = HGEWindow(d, **kw)
    b = np.linspace(-0.3, 0.2, d.n_electrodes)
    win.calibrate_at(b)
    volts = win.waveform(b)
    y = devices.measure(d, volts)
    z, grad, se, _ = win.read_windows(y, volts, [slice(0, win.n)])
    rp = win._read_plan(None)
    return win, y, se, rp


@pytest.mark.parametrize("make, kw", [
    (lambda: SimulatedDNPU(seed=1), {}),
    (lambda: SimulatedDNPU(seed=2, model="hopping"), dict(electrodes=[2, 3, 6])),
    (lambda: SimulatedDNPU(seed=2), dict(phase="inphase", filter="boxcar")),
    (lambda: SimulatedDNPU(seed=3), dict(T=0.3)),
])
def test_psd_stderr_in_c_within_the_bound_of_numpy(make, kw):
    """The read's stderr (WindowPsdPlan.stderr, one C pass) against the numpy expression it replaced,
    within psd_stderr_bound; the density bins it used equal at_bins' (returned in the work area),
    and the fallback (weights not C-contiguous) is the numpy expression itself."""
    win, y, se, rp = _read_parts(make, **kw)
    W, scale = win._stderr_weights(rp)
    plan = rp["psd"]
    fit = plan.fit(y)
    S = plan.at_bins(fit)
    got = plan.stderr(fit, W, scale)
    m = rp["m"]
    assert np.array_equal(se[0], got[:m]) and np.array_equal(win.last_quadrature_stderr[0], got[m:])
    ref = scale * np.sqrt(np.maximum(W @ S, 0))
    assert np.all(np.abs(got - ref) <= psd_stderr_bound(W, S, scale, got, ref))
    Wf = np.asfortranarray(W)
    assert np.array_equal(plan.stderr(fit, Wf, scale), scale * np.sqrt(np.maximum(Wf @ S, 0)))


def test_psd_stderr_in_c_same_density_bins():
    """The C pass's density S (its work area) is at_bins' bit for bit (the same operations, glibc's exp
    on both sides here: numpy's float64 exp calls it on AVX2 machines), with and without a low band."""
    from hge_embedded._hge_core import ffi, lib
    win, y, se, rp = _read_parts(lambda: SimulatedDNPU(seed=1))
    plan = rp["psd"]
    fit = plan.fit(y)
    ref = plan.at_bins(fit)
    nb, lb, lb2, lbins = plan._c_args
    assert nb > 0 and plan.below is not None and nb == np.count_nonzero(plan.below)
    W = np.ones((1, ref.size))
    work, out = np.empty(ref.size), np.empty(1)
    fb = ffi.from_buffer
    st = lib.hge_host_psd_stderr(fb("double[]", W), 1, ref.size, lbins, float(fit[1]), float(fit[0]), nb, lb, lb2,
                                 fb("double[]", np.array(fit[2], float)), fb("double[]", np.ones(1)),
                                 fb("double[]", work), fb("double[]", out))
    assert st == lib.HGE_OK
    if np.exp(np.float64(0.7)) == np.float64(__import__("math").exp(0.7)):   # numpy calls the C library's exp
        assert np.array_equal(work, ref)
    else:   # pragma: no cover - another exp: within 8 u
        assert np.all(np.abs(work - ref) <= 8 * 2.0**-53 * ref)
    # refusals
    assert lib.hge_host_psd_stderr(fb("double[]", W), 0, ref.size, lbins, 0.0, 0.0, 0, ffi.NULL, ffi.NULL,
                                   ffi.NULL, fb("double[]", np.ones(1)), fb("double[]", work),
                                   fb("double[]", out)) == lib.HGE_ERR_SIZE
    assert lib.hge_host_psd_stderr(fb("double[]", W), 1, ref.size, lbins, 0.0, 0.0, ref.size + 1, lb, lb2,
                                   fb("double[]", np.zeros(5)), fb("double[]", np.ones(1)), fb("double[]", work),
                                   fb("double[]", out)) == lib.HGE_ERR_SIZE
    assert lib.hge_host_psd_stderr(ffi.NULL, 1, ref.size, lbins, 0.0, 0.0, 0, ffi.NULL, ffi.NULL, ffi.NULL,
                                   fb("double[]", np.ones(1)), fb("double[]", work),
                                   fb("double[]", out)) == lib.HGE_ERR_NULL
