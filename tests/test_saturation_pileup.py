"""saturation's pile-up rule on windows of few codes: its PILE_MIN_VALUES condition and the bound
behind it (saturation.py: a pure sine of at least three codes puts at most 3x the largest of the
NEXT_LEVELS codes inside on its top code, sampled at the plan's phases; PILE_RATIO = 4)."""
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from hge_embedded import plans
from hge_embedded.saturation import NEXT_LEVELS, PILE_MIN_VALUES, PILE_RATIO, RUN_MIN, saturated_counts, \
    saturated_samples

T = np.arange(1000) / 1e4
FREQS = sorted(set(plans.plan_frequencies(7, fs=1e4, T=0.1)) | set(plans.plan_frequencies(2, fs=1e4, T=0.1))
               | {500.0, 1000.0, 1250.0, 2000.0, 2500.0})


def _top_ratio(y):
    """The pile-up statistic at both ends: samples on the extreme over the largest count among the
    NEXT_LEVELS values inside."""
    lv, c = np.unique(y, return_counts=True)
    return max(c[-1] / c[-1 - NEXT_LEVELS:-1].max(), c[0] / c[1:1 + NEXT_LEVELS].max())


@settings(max_examples=200)
@given(st.sampled_from(FREQS), st.floats(0, 2 * np.pi), st.floats(0.2, 12.0), st.floats(0, 1, exclude_max=True),
       st.sampled_from([1.0, 1e-3, 37.5]))
def test_a_clean_quantised_sine_is_never_piled_up(f, phase, amplitude_codes, offset, lsb):
    """Any clean sine of the plan's frequencies quantised to codes of ``lsb``, however few codes it spans
    (two: the PILE_MIN_VALUES condition; three and more: the derived bound, checked here too)."""
    y = np.round(offset + amplitude_codes * np.sin(2 * np.pi * f * T + phase)) * lsb
    values = np.unique(y).size
    if values >= PILE_MIN_VALUES:
        assert _top_ratio(y) <= 3.0 < PILE_RATIO   # the bound in saturation.py's docstring
    on = np.concatenate([[False], (y == y.max()) | (y == y.min()), [False]])
    edges = np.flatnonzero(np.diff(on.astype(np.int8)))
    if values == 1 or np.max(edges[1::2] - edges[::2]) >= RUN_MIN:
        return   # a flat window is stuck (the run rule, by design), and a slow tone can sit RUN_MIN samples on one code
    assert saturated_samples(y) == 0
    assert saturated_counts(y[None, :])[0] == 0


def test_a_rail_on_a_few_codes_is_still_counted():
    """A sine of 6 codes clipped at 0 (seven values): the rail holds ~53 % of the window against ~5 %
    on the code below it, never 16 samples in a row (970 Hz): the condition leaves the rule to act."""
    y = np.minimum(np.round(6.0 * np.sin(2 * np.pi * 970.0 * T)), 0.0)
    assert np.unique(y).size >= PILE_MIN_VALUES
    on_rail = int(np.sum(y == 0.0))
    assert on_rail >= PILE_RATIO * int(np.sum(y == -1.0))   # premise: piled up
    assert saturated_samples(y) == on_rail > RUN_MIN
    assert saturated_counts(y[None, :])[0] == on_rail


def test_a_window_of_two_values_is_left_to_the_run_rule():
    """Two values: the pile-up rule does not apply (any share is a clean sine's); the run rule still
    counts a rail held RUN_MIN samples in a row."""
    y = np.where(np.sin(2 * np.pi * 970.0 * T) > 0.3, 1.0, 0.0)   # short stretches at both values
    assert saturated_samples(y) == 0
    y[100:100 + RUN_MIN] = 1.0
    assert saturated_samples(y) >= RUN_MIN


@settings(max_examples=80)
@given(st.integers(0, 2**31), st.sampled_from([8, 15, 16, 200]), st.sampled_from([None, 2.5, 1.0]))
def test_counts_screen_equals_saturated_samples_on_awkward_rows(seed, n, fs):
    """saturated_counts hands only some rows to saturated_samples (its screen: full scale, RUN_MIN
    samples in a band at an end): every other row must be one that counts 0. Rows made to sit on the
    screen's edges: exactly RUN_MIN - 1 / RUN_MIN samples at an extreme or in the band, shelves,
    full-scale hits, NaN and inf, few codes, flat."""
    rng = np.random.default_rng(seed)
    y = rng.normal(0, 1, (12, n))
    k = min(RUN_MIN, n)
    y[1, rng.choice(n, k, replace=False)] = y[1].max() + 1.0          # RUN_MIN at the top, scattered
    y[2, rng.choice(n, k - 1, replace=False)] = y[2].min() - 1.0      # one short
    y[3, :k] = y[3].max() + 1.0                                        # a run
    y[4] = 0.0
    y[5, : n // 3] = 2.5                                               # on a stated rail
    y[6] = np.round(y[6] * 0.7)                                        # a few codes
    y[7, 0] = np.nan
    y[8, n // 2] = np.inf
    y[9, -1] = -np.inf
    top = y[10].max()
    y[10, rng.choice(n, max(1, int(0.13 * n)), replace=False)] = top - rng.uniform(0, 1e-3, max(1, int(0.13 * n)))
    y[11] = np.clip(y[11], -0.8, 0.8) + rng.normal(0, 1e-4, n)         # a shelf spread by noise
    with np.errstate(invalid="ignore"):   # the NaN and inf rows' own arithmetic (not what is tested)
        expect = [saturated_samples(row, fs) for row in y]
        assert saturated_counts(y, fs).tolist() == expect
        assert [int(saturated_counts(y[k:k + 1], fs)[0]) for k in range(len(y))] == expect   # one row: its own path
