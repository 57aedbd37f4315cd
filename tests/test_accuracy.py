"""engine="c" against engine="float": within the derived bound, and the bound is < 1e-4 of the tone.

The bound (``design.accuracy_bound``) is derived in ``reference/fixed.py`` and
``design.py``: reference-table error times the filter's L1 norm, the exact 2f
mismatch between quantised and float filters, DC-removal rounding, and the
integer roundings through their shaping filters.
"""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from hge_embedded import demodulate, design

FS = 10_000.0
T = 0.1
N = 1000
FULL = 2**23 - 1
# A plan as the gradient code uses it: 7 electrodes, 40 Hz apart (the paper),
# plus the integrate-and-dump grid and the ends of the usable band.
PLAN_BW3 = [1000.0 - 40.0 * k for k in range(7)]
GRID = [30.0, 40.0, 50.0, 500.0, 990.0, 2000.0, 4990.0]


def tone(amplitude, freq, phase):
    t = np.arange(N) / FS
    return np.round(amplitude * np.sin(2 * np.pi * freq * t + phase)).astype(np.int32)


@given(st.floats(0.01, 1.0), st.sampled_from(PLAN_BW3 + [30.0, 2000.0, 4500.0]),
       st.floats(-np.pi, np.pi), st.floats(-np.pi, np.pi))
def test_bw3_c_vs_float_within_bound(frac, freq, phase, ref_phase):
    a = frac * FULL
    x = tone(a, freq, phase)
    c = demodulate(x, FS, [freq], engine="c", phases=[ref_phase])
    f = demodulate(x.astype(float), FS, [freq], engine="float", phases=[ref_phase])
    bound = design.accuracy_bound(a, freq, design.lockin_filter(FS, T, N))
    assert bound < 1e-4 * a
    assert abs(2 * c.R[0] - 2 * f.R[0]) <= bound


@given(st.floats(0.01, 1.0), st.sampled_from(GRID), st.floats(-np.pi, np.pi))
def test_boxcar_c_vs_float_within_bound(frac, freq, phase):
    a = frac * FULL
    x = tone(a, freq, phase)
    c = demodulate(x, FS, [freq], engine="c", filter="boxcar")
    f = demodulate(x.astype(float), FS, [freq], engine="float", filter="boxcar")
    bound = design.boxcar_accuracy_bound(a)
    assert bound < 1e-4 * a
    assert abs(2 * c.R[0] - 2 * f.R[0]) <= bound


def test_float_engine_recovers_amplitude_and_phase():
    """The yardstick itself: a grid tone through integrate-and-dump is exact to float precision."""
    x = tone(1e6, 200.0, 0.7).astype(float)
    r = demodulate(x, FS, [200.0], engine="float", filter="boxcar")
    assert abs(2 * r.R[0] - 1e6) < 1.0  # rounding of the tone to integers: < 0.5 code per sample
    assert abs(r.phase[0] - 0.7) < 1e-6


@pytest.mark.parametrize("fc", [1.0, 20.0])
def test_no_stuck_offset_at_low_cutoff(fc):
    """At fc = 1e-4 fs and 2e-3 fs the integer filter settles to the exact DC.

    A tone at the reference frequency mixes to A/2 plus 2f. At 1875 Hz the 2f
    term (3750 Hz = 3 fs/8) falls in a null of the pre-sum of 8 samples, and what
    the NCO's rounding leaves of it passes a 20 Hz filter at (20/625)^3 < 1e-4.
    After 8 settling times the step response is 1 within 1e-6, so the float
    result is A/2 within 1e-6 A; the integer one must be within the rounding
    bound (``rounding_gain`` LSB) of it, plus the tone's own rounding to
    integer codes (0.5 code through the filter's L1 norm): no offset sticks.
    """
    T_fc = design.settling_constant() / fc
    n = int(8 * T_fc * FS) // 8 * 8
    filt = design.lockin_filter(FS, T_fc, n, fc)
    a = 1e5
    x = np.round(a * np.sin(2 * np.pi * 1875.0 * np.arange(n) / FS)).astype(np.int32)
    c = demodulate(x, FS, [1875.0], T=T_fc, remove_dc=False)
    lsb = 2.0**16 / (2**22 - 1)  # one Q6 LSB in codes
    expected = (a / 2) / filt.gain_fixed
    l1 = np.sum(np.abs(design.lockin_weights(FS, T_fc, "butterworth3", n, quantized=True)))
    bound = design.rounding_gain(filt.coeffs, filt.n_d) * lsb + 0.5 * l1 + 1e-6 * a
    assert abs(c.X[0] - expected) <= bound
