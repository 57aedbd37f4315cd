"""The stderr's noise power laws in C (``csrc/host/hge_host_psdlaw.h``, ``analysis.WindowPsdPlan.at_bins``).

* ``hge_psdlaw_exp`` within its derived bound (``PSDLAW_EXP_REL``, derived in the header) of libm's
  exp, whose own error is below one ulp; libm's own value beyond +-708 and for NaN/inf; four lanes
  and the scalar tail the same bits;
* ``at_bins`` within that bound of ``at_bins_exact`` (numpy), which is ``window_psd``'s S bit for bit
  (tests/test_read_fast_paths.py);
* through ``HGEWindow.read_windows`` and ``extract_gradient``: the gradient bit for bit, the stderr
  within the bound derived in ``at_bins``' docstring;
* the C under ASan/UBSan with exact-size buffers (tests/c/psdlaw_check.c).
"""
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hge_embedded import analysis
from hge_embedded._hge_core import ffi, lib
from hge_embedded.devices.simulated import SimulatedDNPU
from hge_embedded.gradient import extract_gradient
from tests.devices_for_tests import FiveElectrodeDevice, tones_in_noise

sys.path.insert(0, str(Path(__file__).parent))
from sanitized import run_sanitized  # noqa: E402

U = 2.0**-53
LIBM_ULP = 2.3e-16      # libm's exp: under one ulp (2^-52 relative at most)
BOUND = analysis.PSDLAW_EXP_REL + LIBM_ULP


def gamma(n):
    return n * U / (1 - n * U)


def fast_exp(x):
    x = np.ascontiguousarray(x, float)
    out = np.empty_like(x)
    assert lib.hge_psdlaw_exp(ffi.from_buffer("double[]", x), x.size,
                              ffi.from_buffer("double[]", out, require_writable=True)) == lib.HGE_OK
    return out


def test_header_and_python_bound_agree():
    assert analysis.PSDLAW_EXP_REL == 5.9e-15


@settings(max_examples=200)
@given(st.lists(st.floats(-708.0, 708.0), min_size=1, max_size=40))
def test_exp_within_its_bound_of_libm(xs):
    x = np.array(xs)
    got, ref = fast_exp(x), np.exp(x)
    assert np.all(np.abs(got / ref - 1.0) <= BOUND)


def test_exp_dense_over_the_stderr_range():
    """2 10^5 arguments over the range the laws take (PSD levels 1e-13..1e2 nA^2/Hz), and the whole fast range."""
    rng = np.random.default_rng(11)
    for lo, hi in ((-30.0, 5.0), (-708.0, 708.0), (-0.35, 0.35)):
        x = rng.uniform(lo, hi, 100_003)
        rel = np.abs(fast_exp(x) / np.exp(x) - 1.0)
        assert rel.max() <= BOUND
    # A mutant with the polynomial one degree shorter (truncation 0.35^13/13! = 1.7e-16 relative) would pass
    # this; one with the reduction's low part dropped (k 1.9e-10 absolute) would not: k up to 1021 here.
    x = np.linspace(-708.0, 708.0, 20001)
    assert np.max(np.abs(fast_exp(x) / np.exp(x) - 1.0)) <= BOUND


def test_exp_outside_the_fast_range_is_libm():
    x = np.array([708.5, 709.7, 710.0, 1e300, -708.5, -720.0, -745.0, -746.0, -1e300, np.inf, -np.inf, np.nan,
                  0.0, -0.0, 1e-300])
    with np.errstate(over="ignore"):
        got, ref = fast_exp(x), np.exp(x)
    assert np.array_equal(got[:12], ref[:12], equal_nan=True)
    assert np.all(got[12:] == 1.0)


@settings(max_examples=50)
@given(st.integers(0, 2**31), st.integers(1, 23))
def test_exp_lanes_and_tail_the_same_bits(seed, n):
    """Every value the same whether it falls in a four-lane block or in the scalar tail."""
    x = np.random.default_rng(seed).uniform(-40, 10, n)
    whole = fast_exp(x)
    alone = np.array([fast_exp(x[j:j + 1])[0] for j in range(n)])
    assert np.array_equal(whole, alone)


@settings(max_examples=60)
@given(st.integers(0, 2**31), st.sampled_from([(2, 0.05), (4, 0.1), (7, 0.1), (3, 0.2)]),
       st.sampled_from([1e-6, 1e-3, 1.0]), st.floats(-1.5, 0.0), st.booleans())
def test_at_bins_within_the_bound_of_at_bins_exact(seed, plan_, level, beta, shuffled):
    rng = np.random.default_rng(seed)
    fs = 1e4
    m, T = plan_
    y, f, n = tones_in_noise(rng, m, T, level, beta, fs=fs)
    bins = analysis.lockin_noise_spectra(tuple(f), fs, T, "butterworth3", n, True, True)[0]
    if shuffled:   # the masked path (bins below the low edge not a prefix)
        bins = rng.permutation(bins)
        bins.flags.writeable = False
    plan = analysis.WindowPsdPlan(n, fs, f, bins)
    fit = plan.fit(y)
    fast, exact = plan.at_bins(fit), plan.at_bins_exact(fit)
    assert np.all(np.abs(fast / exact - 1.0) <= BOUND)
    assert np.array_equal(exact, analysis.window_psd(y, fs, f)(bins))


@pytest.mark.parametrize("make, kw", [
    (lambda: SimulatedDNPU(seed=0), {}),
    (lambda: SimulatedDNPU(seed=1, model="hopping"), dict(electrodes=[2, 3, 6])),
    (lambda: SimulatedDNPU(seed=2), dict(phase="magnitude")),
    (lambda: SimulatedDNPU(seed=2), dict(phase="inphase", filter="boxcar", mode="sequential")),
    (lambda: FiveElectrodeDevice(S=1e-4, seed=4), {}),
])
def test_extract_gradient_stderr_within_the_bound_gradient_identical(make, kw, monkeypatch):
    """Two devices made alike (the same seed: the same noise), read alike: at_bins in C and at_bins_exact. The gradient and
    everything but the stderr bit for bit; the stderr within (e + 2 gamma_N) / 2 + 4 u, relative (at_bins'
    docstring; W >= 0 on these plans, checked)."""
    dev, twin = make(), make()
    b = np.zeros(dev.n_electrodes) if not isinstance(dev, SimulatedDNPU) else \
        np.array([-0.3, 0.1, -0.5, 0.2, 0.0, -0.4, 0.3])
    fast = [extract_gradient(dev, b, **kw) for _ in range(3)]
    monkeypatch.setattr(analysis.WindowPsdPlan, "at_bins", analysis.WindowPsdPlan.at_bins_exact)
    exact = [extract_gradient(twin, b, **kw) for _ in range(3)]
    from hge_embedded import gradient as gm
    win = next(iter(gm._WINDOWS[dev].values()))[0]
    rp = next(iter(win._reads.values()))
    N = rp["psd"].bins.size
    if "weights" in rp:
        assert np.all(rp["weights"][1][0] >= 0)   # premise of the relative bound
    bound = (BOUND + 2 * gamma(N)) / 2 + 4 * U
    for a, e in zip(fast, exact):
        for name in ("gradient", "X", "Y", "bias", "current"):
            assert np.array_equal(getattr(a, name), getattr(e, name)), name
        assert np.all(np.abs(a.stderr / e.stderr - 1.0) <= bound)


@settings(max_examples=60)
@given(st.integers(0, 2**31), st.sampled_from([8, 96, 400, 800, 1000, 1600, 2000, 4000, 999, 1001]),
       st.floats(1e-6, 1e6))
def test_the_plans_rfft_is_numpys_bit_for_bit(seed, n, scale):
    """WindowPsdPlan's transform (scipy.fft.rfft: a cached plan) gives np.fft.rfft's numbers exactly."""
    x = np.random.default_rng(seed).normal(size=n) * scale
    assert np.array_equal(analysis._cached_rfft()(x), np.fft.rfft(x))


def test_psdlaw_under_sanitizers(tmp_path):
    out = run_sanitized(tmp_path, "psdlaw_check", ["csrc/host/hge_host_psdlaw.c", "tests/c/psdlaw_check.c"],
                        extra_flags=["-Itests/c"])
    assert out.startswith("PASS psdlaw")
