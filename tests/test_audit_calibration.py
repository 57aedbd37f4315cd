"""Three silent wrong answers the session-4 audit found in calibration.py and gradient.py (kept as
regressions: each failed before its fix): an amplitude below the DAC's step accepted by the loopback
calibration, and a chain that no longer matches its calibration (more lag; a loopback that bypasses
the IV converter) read without a word -- now flagged by ``gradient.stale_calibration``."""
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from hge_embedded import SimulatedDNPU, extract_gradient, plans
from hge_embedded.calibration import calibrate

sys.path.insert(0, str(Path(__file__).parent))
from audit_devices import Linear  # noqa: E402

BIAS = np.array([-0.3, 0.1, -0.5, 0.2, 0.0, -0.4, 0.3])


class StillSilent(AssertionError):
    """The defect itself (a broken premise raises something else and fails the test)."""


def assert_flagged(r) -> None:
    """The result says it may be wrong (the phase calibration's note on its DC anchor is not that)."""
    if r.stderr_reliable and all(w.startswith("anchor frequency") for w in r.warnings):
        raise StillSilent(f"a wrong gradient {np.round(r.gradient, 2).tolist()} with no warning")


def test_loopback_calibration_refuses_an_amplitude_below_the_dac():
    """0.1 mV on a 16-bit +-10 V DAC (0.3 mV steps): the loopback gains come out 0.08-0.36 instead of
    ~1, are saved, and a gradient calibrated with them reads 4-13x too large, without a word."""
    d = SimulatedDNPU(seed=0)
    with pytest.raises(ValueError, match="DAC"):
        calibrate(d, plans.plan_frequencies(7, fs=d.fs, T=0.1), amplitude=1e-4)


class Lagging(Linear):
    """The linear device behind a chain that lags ``lag`` whole samples more than when it was calibrated."""

    def __init__(self, lag, **kw):
        super().__init__(**kw)
        self.lag = lag

    def measure(self, volts):
        i = super().measure(volts)
        return np.concatenate([np.full(self.lag, i[0]), i[:-self.lag]])


def test_a_calibration_that_no_longer_fits_the_chain_is_not_silent():
    """Calibrated on the chain without lag, then the chain lags 3 samples more (ai.delay edited, another
    AI filter setting, another rig): electrode 1 reads -3.1 +- 0.64 nA/V for 10, electrode 2 +0.9 for
    -6; stderr_reliable stays True and no warning is given. The component orthogonal to the calibrated
    axis is ~15 stderr: either raise or say so."""
    cal = calibrate(Linear(), plans.plan_frequencies(7, fs=1e4, T=0.1))
    try:
        r = extract_gradient(Lagging(3), np.zeros(7), calibration=cal)
    except ValueError:
        return  # refused: also right
    wrong = np.abs(r.gradient - Lagging(3).w) > 5 * r.stderr
    assert wrong.any()  # the premise: the answer is wrong
    assert_flagged(r)


class RigWiredLoopback(SimulatedDNPU):
    """README's wiring, step 1: AO 0 also to a spare AI channel. That loopback sees the AI's delay but
    not the IV converter (the simulator's own loopback runs through the whole chain, IV included)."""

    def loopback(self, volts):
        bw, self.chain_bandwidth = self.chain_bandwidth, None
        try:
            return super().loopback(volts)
        finally:
            self.chain_bandwidth = bw


def test_a_loopback_that_bypasses_the_iv_converter_is_not_silent():
    """IV converter + anti-alias at 1 kHz bandwidth: every derivative reads 0.63-0.83 of the truth
    (frequency-dependent: the gradient's direction turns too), stderr_reliable True, no warning."""
    d = RigWiredLoopback(seed=0, noise=False, chain_bandwidth=1000.0)
    try:
        r = extract_gradient(d, BIAS)
    except ValueError:
        return  # refused: also right
    ratio = r.gradient / d.true_gradient(BIAS)
    assert np.all(ratio < 0.9)  # the premise: the answer is wrong
    assert_flagged(r)


@pytest.mark.parametrize("model", ["surrogate", "hopping"])
@pytest.mark.parametrize("noise", [False, True])
def test_a_fresh_calibration_is_never_called_stale(model, noise):
    """The other side: on the chain it was calibrated on, the quadrature check stays quiet (both
    models, with and without noise; 120 such calls while choosing the thresholds flagged none)."""
    d = SimulatedDNPU(seed=1, noise=noise, model=model)
    rng = np.random.default_rng(5)
    for _ in range(3):
        bias = rng.uniform(d.limits[:, 0] * 0.8, d.limits[:, 1] * 0.8)
        r = extract_gradient(d, bias)
        assert not any("calibrated chain" in w for w in r.warnings), r.warnings


@settings(max_examples=200)
@given(st.lists(st.floats(-100, 100), min_size=1, max_size=8), st.floats(0.0, np.pi), st.floats(1e-3, 1e3))
def test_stale_calibration_flags_a_turned_axis_by_its_angle(g, angle, scale):
    """Noise-free responses g turned by ``angle``: the part along the axis is g cos, across it g sin.
    An electrode is flagged exactly when |g sin| > tan(0.1) |g cos| + 0.02 max|g cos|, and the rule does
    not depend on the unit (scale)."""
    from hge_embedded.gradient import STALE_ANGLE, STALE_FLOOR, stale_calibration
    g = np.array(g)
    grad, quad = g * np.cos(angle), g * np.sin(angle)
    flagged = stale_calibration(grad, quad, np.zeros_like(g))
    limit = np.tan(STALE_ANGLE) * np.abs(grad) + STALE_FLOOR * np.abs(grad).max()
    assert np.array_equal(flagged, np.abs(quad) > limit)
    assert np.array_equal(stale_calibration(scale * grad, scale * quad, np.zeros_like(g)), flagged) or \
        np.any(np.isclose(np.abs(quad), limit, rtol=1e-9))  # scaling may move a value sitting on the limit
    if angle < STALE_ANGLE:  # turned less than the allowance: never flagged
        assert not flagged.any()


def test_loopback_calibration_near_electrode_1s_limit_says_why():
    """The loopback's tones go on electrode 1 even when the gradient perturbs other electrodes: a bias
    at electrode 1's limit is refused with that reason, not only 'electrode 1 is 0.74 V'."""
    d = SimulatedDNPU(seed=0)
    bias = np.zeros(7)
    bias[0] = d.limits[0, 1]
    with pytest.raises(ValueError, match="loopback calibration drives electrode 1"):
        calibrate(d, plans.plan_frequencies(2, fs=d.fs, T=0.1), bias=bias)
    assert d.samples_measured == 0
