"""The lock-in's DC removal and the 24-bit range (session 5, found by the lead).

The core saturates ``x - dc`` to +-(2^23 - 1) before mixing. Windows scaled by their own peak
mapped that peak to 2^23 - 1, so a window whose mean is a sizeable part of its swing (a tone over a
fractional number of periods, a small offset) clipped inside the core: a 1000 Hz tone over 496
samples read 1.4e-4 of its amplitude off the float64 reference, 9x the derived accuracy bound,
without a word. Now such windows keep one bit of headroom (``demod.AUTO_CODE``), and codes given
by the caller or scaled to a stated full scale are refused when they would clip."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hge_embedded import demodulate, design
from hge_embedded.demod import AUTO_CODE, CODE_MAX, WindowDemodulator, check_dc_headroom, to_codes
from hge_embedded.reference import fixed

FS = 10_000.0


def _c_vs_float_bound(peak_codes: float, amplitude_codes: float, freq: float, n: int) -> float:
    """Bound (codes of 2R) on |2R_c - 2R_float| for a tone of ``amplitude_codes`` whose samples were
    quantised from floats: ``design.accuracy_bound`` (reference error, filter mismatch, DC removal,
    the core's roundings; derived there for integer input) plus the input's own rounding to codes,
    at most 0.5 code per sample, through the weights: 0.5 L1 per component, 2 sqrt(2) x that on 2R."""
    filt = design.lockin_filter(FS, n / FS, n)
    l1 = float(np.sum(np.abs(design.lockin_weights(FS, n / FS, "butterworth3", n, quantized=True))))
    return design.accuracy_bound(amplitude_codes, freq, filt) + 2 * np.sqrt(2) * 0.5 * l1


@settings(max_examples=60, deadline=None)
@given(st.sampled_from([496, 504, 1000]), st.sampled_from([1000.0, 960.0, 630.0]),
       st.floats(-np.pi, np.pi), st.floats(-0.5, 0.5))
def test_auto_scaled_window_with_a_mean_reads_within_the_bound(n, freq, phase, offset):
    """A unit tone plus an offset, scaled by its own peak: the C engine within the derived bound of
    float64. Before the headroom this failed at n = 496, 1000 Hz, phase 1.0, offset 0."""
    k = np.arange(n)
    x = np.sin(2 * np.pi * freq * k / FS + phase) + offset
    c = demodulate(x, FS, [freq], engine="c")
    f = demodulate(x, FS, [freq], engine="float")
    scale = np.max(np.abs(x)) / AUTO_CODE                      # to_codes' unit per code
    bound = _c_vs_float_bound(np.max(np.abs(x)) / scale, 1.0 / scale, freq, n)
    assert abs(2 * c.R[0] - 2 * f.R[0]) / scale <= bound


def test_the_case_that_clipped():
    n, freq = 496, 1000.0
    x = np.sin(2 * np.pi * freq * np.arange(n) / FS + 1.0)
    c = demodulate(x, FS, [freq], engine="c")
    f = demodulate(x, FS, [freq], engine="float")
    codes, scale = to_codes(x)
    assert np.max(np.abs(codes)) == AUTO_CODE
    dc = fixed.mean_q0(codes)
    assert dc != 0   # the premise: a mean the DC removal subtracts
    assert abs(2 * c.R[0] - 2 * f.R[0]) / scale <= _c_vs_float_bound(AUTO_CODE, 1.0 / scale, freq, n)


def test_window_demodulator_equals_demodulate_with_the_headroom():
    n, f = 496, [1000.0, 920.0]
    rng = np.random.default_rng(3)
    x = rng.normal(0.3, 1.0, (4, n))
    wd = WindowDemodulator(FS, np.array(f), n)
    X, Y = wd(x)
    for k in range(4):
        r = demodulate(x[k], FS, f)
        assert np.array_equal(X[k], r.X) and np.array_equal(Y[k], r.Y)


@pytest.mark.parametrize("how", ["codes", "full_scale", "windows"])
def test_a_window_that_would_clip_is_refused(how):
    """A swing beyond the full scale around the mean: codes at -(2^23 - 1) for 3/4 of the window and
    +(2^23 - 1) for the rest have mean code -2^22, and the top sits 1.5 x 2^23 above it."""
    n = 496
    codes = np.full(n, -CODE_MAX, np.int32)
    codes[: n // 4] = CODE_MAX
    if how == "codes":
        with pytest.raises(ValueError, match="swing .* codes from their mean"):
            demodulate(codes, FS, [1000.0])
    elif how == "full_scale":
        with pytest.raises(ValueError, match="swing .* codes from their mean"):
            demodulate(codes * (100.0 / CODE_MAX), FS, [1000.0], full_scale=100.0)
    else:
        wd = WindowDemodulator(FS, np.array([1000.0]), n, full_scale=100.0)
        x = np.stack([np.zeros(n), codes * (100.0 / CODE_MAX)])
        with pytest.raises(ValueError, match="window 1: the samples swing"):
            wd(x)
    # ... while without DC removal nothing is subtracted and the same codes are read.
    demodulate(codes, FS, [1000.0], remove_dc=False)


def test_check_dc_headroom_edges():
    """Exactly 2^23 - 1 from the mean fits; one more code does not."""
    c = np.array([CODE_MAX - 5, -5, -5], np.int32)
    check_dc_headroom(c, -5)
    with pytest.raises(ValueError):
        check_dc_headroom(c, -6)
    with pytest.raises(ValueError):
        check_dc_headroom(np.array([-CODE_MAX, 3], np.int32), 3)
