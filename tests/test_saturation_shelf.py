"""saturation's shelf rule: a rail spread by noise after it is counted; a working window is not."""
import numpy as np
from hypothesis import given, settings, strategies as st

from hge_embedded import plans
from hge_embedded.saturation import saturated_counts, saturated_samples

T = np.arange(1000) / 1e4
PLAN = plans.plan_frequencies(7, fs=1e4, T=0.1)


@settings(max_examples=150)
@given(st.sampled_from(list(PLAN) + list(plans.plan_frequencies(2, fs=1e4, T=0.1)) + [1250.0, 2500.0]),
       st.floats(0, 2 * np.pi),
       st.floats(1e-3, 1e3), st.floats(-1e3, 1e3))
def test_a_noise_free_sampled_tone_is_not_a_rail(f, phase, amplitude, dc):
    """A tone of a plan sampled at a few phases per period repeats its crest value (2 of 10 samples at
    1 kHz, 1 of 8 at 1.25 kHz), more than the continuous crest's 4.5 % in the band, but one value, not a
    shelf; on a large DC offset its levels repeat only to the last digits (the pile-up rule's levels are
    taken to 1e-9 of the spread)."""
    y = dc + amplitude * np.sin(2 * np.pi * f * T + phase)
    assert saturated_samples(y) == 0
    assert saturated_counts(y[None, :])[0] == 0


@settings(max_examples=100)
@given(st.integers(0, 2**31), st.floats(0.2, 0.6), st.floats(1e-5, 1e-3))
def test_a_rail_spread_by_noise_is_counted(seed, rail, sd):
    """Seven plan tones (crests ~2.6) clipped at +-rail, then noise of sd (well inside the band 0.5 % of
    the spread, 6 sd < 0.005 x 2 rail): at least the clipped samples beyond the noise are counted."""
    rng = np.random.default_rng(seed)
    x = np.sin(2 * np.pi * PLAN[:, None] * T + rng.uniform(0, 2 * np.pi, (7, 1))).sum(0)
    clipped = np.abs(x) > rail
    if min(np.sum(x > rail), np.sum(x < -rail)) < 0.12 * T.size:   # the rule's stated reach: 12 % at a rail
        return
    if 6 * sd > 0.005 * 2 * rail:   # and noise inside the band (0.5 % of the spread)
        return
    y = np.clip(x, -rail, rail) + rng.normal(0, sd, T.size)
    n = saturated_samples(y)
    assert n >= 0.9 * clipped.sum()
    assert saturated_counts(y[None, :])[0] == n
