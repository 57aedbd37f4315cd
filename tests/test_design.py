"""Filter design: the 98 %-settling rule, exact DC gain in integers, poles inside, ENBW."""
import numpy as np
import pytest
import scipy.signal as sig

from hge_embedded import design

FS = 10_000.0


def test_settling_constant_matches_paper():
    # The paper's rule fc ~= 1.056 / T.
    assert abs(design.settling_constant() - 1.056) < 1e-3


@pytest.mark.parametrize("T", [0.02, 0.1, 0.5, 1.0])
def test_step_response_98_percent_settled_at_T(T):
    """The Butterworth runs at fs/8 on pre-sums; its step response is 98 % settled at T."""
    filt = design.lockin_filter(FS, T)
    assert filt.fs_d == FS / 8
    s = sig.sosfilt(filt.sos, np.ones(int(3 * T * filt.fs_d)))
    n = filt.n_d
    # From T on, within 2 % (a sample of slack for the discrete grid) ...
    assert np.all(np.abs(s[n:] - 1) <= 0.02 + 1e-3)
    # ... and not long before: at 0.9 T it is still outside the band.
    assert np.max(np.abs(s[int(0.8 * n):int(0.95 * n)] - 1)) > 0.02
    # The quantised filter obeys the same rule (each engine divides by its own gain at T).
    sq = sig.sosfilt(design.coeffs_to_sos(filt.coeffs), np.ones(int(3 * T * filt.fs_d)))
    assert np.all(np.abs(sq[n:] - 1) <= 0.02 + 1e-3)
    assert abs(filt.gain_fixed - sq[n - 1]) < 1e-12


@pytest.mark.parametrize("fc", [1.0, 5.0, 20.0, 200.0])
def test_quantised_dc_gain_exact_and_poles_inside(fc):
    c = design.quantize_butterworth3(design.butterworth3_sos(fc, FS))
    b0, b1, b2, a1, a2, c0, c1, d1, b_shift = c
    one = 1 << 30
    assert b0 + b1 + b2 == (one + a1 + a2) << b_shift
    assert c0 + c1 == one + d1
    assert max(abs(b0), abs(b1)) < 2**31
    poles = np.concatenate([np.roots([one, a1, a2]), np.roots([one, d1])])
    assert np.all(np.abs(poles) < 1)
    # The quantised response is the design's within 1e-6 over a long window.
    x = np.random.default_rng(0).normal(size=20000)
    ref = sig.sosfilt(design.butterworth3_sos(fc, FS), x)
    q = sig.sosfilt(design.coeffs_to_sos(c), x)
    assert np.max(np.abs(q - ref)) < 1e-6 * np.max(np.abs(ref)) * 1e3


def test_enbw_against_white_noise():
    filt = design.lockin_filter(FS, 0.1)
    b = design.enbw(filt.sos, filt.fs_d)
    # Analog third-order Butterworth: ENBW = (pi / 3) fc (one-sided, unit DC gain).
    assert abs(b / filt.fc - np.pi / 3) < 0.01
    rng = np.random.default_rng(1)
    S_N = 2.0  # one-sided density: variance of white samples = S_N fs / 2
    x = rng.normal(0, np.sqrt(S_N * FS / 2), (400, 2400))
    w = design.lockin_weights(FS, 0.24, "butterworth3", 2400)
    y = x @ w
    # 400 draws: the sample variance has relative sd sqrt(2/400) = 0.07; allow 3 sd.
    assert abs(np.var(y) / (S_N * FS * np.sum(w**2) / 2) - 1) < 0.21
    assert design.boxcar_enbw(0.1) == 5.0


def test_freq_and_phase_conversion():
    assert design.freq_to_step([2500.0], FS)[0] == 2**30
    assert design.phase_to_uint32([np.pi / 2])[0] == 2**30
    assert design.phase_to_uint32([-np.pi / 2])[0] == 3 * 2**30
    design.check_boxcar_window([10.0, 40.0, 990.0], FS, 0.1)
