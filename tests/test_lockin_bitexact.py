"""engine="c" and engine="fixed" give identical raw outputs (both filters, any block split)."""
import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from hge_embedded import core, demodulate, design
from hge_embedded.reference import fixed

FS = 10_000.0


@st.composite
def windows(draw, max_terms=64, max_n=600):
    m = draw(st.integers(1, max_terms))
    n = draw(st.integers(1, max_n))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    freqs = rng.uniform(0.5, FS / 2 - 0.5, m)
    phases = rng.uniform(-np.pi, np.pi, m)
    amps = rng.uniform(0, 1, m) * draw(st.sampled_from([1e2, 1e5, 2**23]))
    t = np.arange(n) / FS
    x = (amps[:, None] * np.sin(2 * np.pi * freqs[:, None] * t + phases[:, None])).sum(0)
    x += rng.normal(0, draw(st.sampled_from([0.0, 10.0, 1e4])), n) + rng.uniform(-1e6, 1e6)
    # Beyond 24 bits on purpose: the core saturates, and both sides must agree.
    x = np.clip(np.round(x), -2**31, 2**31 - 1).astype(np.int64)
    cuts = np.sort(rng.integers(0, n + 1, draw(st.integers(0, 5))))
    blocks = np.diff(np.concatenate([[0], cuts, [n]]))
    return x, freqs, phases, blocks


@given(windows(), st.booleans())
def test_boxcar_c_equals_fixed(w, remove_dc):
    x, freqs, phases, blocks = w
    steps = design.freq_to_step(freqs, FS)
    uph = design.phase_to_uint32(phases)
    dc = core.mean_code(x) if remove_dc else 0
    assert dc == (fixed.mean_q0(x) if remove_dc else 0)
    ci, cq = core.lockin_boxcar(x, steps, uph, dc=dc, block_sizes=blocks)
    fi, fq = fixed.lockin_boxcar(x, steps, uph, dc)
    assert np.array_equal(ci, fi) and np.array_equal(cq, fq)


@given(windows(max_n=400), st.sampled_from([0.01, 0.1, 1.0]), st.booleans())
def test_bw3_c_equals_fixed(w, T, remove_dc):
    x, freqs, phases, blocks = w
    coeffs = design.lockin_filter(FS, T).coeffs
    steps = design.freq_to_step(freqs, FS)
    uph = design.phase_to_uint32(phases)
    dc = core.mean_code(x) if remove_dc else 0
    ci, cq = core.lockin_bw3(x, steps, uph, coeffs, dc=dc, block_sizes=blocks)
    fi, fq = fixed.lockin_bw3(x, steps, uph, coeffs, dc)
    assert np.array_equal(ci, fi) and np.array_equal(cq, fq)


# High-gain coefficients (DC gain ~ 1e4 per section, still stable) that drive
# both sections into saturation; int32 extremes in the numerators.
ONE = 1 << 30
HOT = (2**31 - 1, -2**31, 2**31 - 1, -int(1.999 * ONE), int(0.9995 * ONE),
       2**31 - 1, 2**31 - 1, -int(0.999 * ONE), 0)


@given(st.integers(0, 2**32 - 1), st.integers(1, 300))
def test_bw3_saturation_c_equals_fixed(seed, n):
    rng = np.random.default_rng(seed)
    x = np.where(rng.random(n) < 0.5, -2**31, 2**31 - 1).astype(np.int64)
    steps = design.freq_to_step(rng.uniform(1, 4999, 3), FS)
    ci, cq = core.lockin_bw3(x, steps, None, HOT, dc=2**23 - 1)
    fi, fq = fixed.lockin_bw3(x, steps, np.zeros(3, np.uint32), HOT, 2**23 - 1)
    assert np.array_equal(ci, fi) and np.array_equal(cq, fq)


def test_bw3_saturates_instead_of_wrapping():
    """A full-scale tone at the reference frequency mixes to a large positive DC;
    through the hot filter it must pin at +2^30 - 1, never wrap negative."""
    n = 2000
    x = np.round(8e6 * np.sin(2 * np.pi * 100 * np.arange(n) / FS)).astype(np.int64)
    steps = design.freq_to_step([100.0], FS)
    ci, _ = core.lockin_bw3(x, steps, None, HOT)
    fi, _ = fixed.lockin_bw3(x, steps, [0], HOT)
    assert ci[0] == fi[0] == 2**30 - 1


@given(windows(max_terms=8, max_n=300), st.sampled_from(["butterworth3", "boxcar"]))
def test_demodulate_engines_agree_bitwise(w, filt):
    x, freqs, phases, blocks = w
    n = max(8, x.size - x.size % 8)  # the Butterworth lock-in reads whole groups of 8
    x = np.clip(np.resize(x, n), -2**23, 2**23 - 1)
    blocks = np.diff(np.concatenate([[0], np.sort(np.minimum(np.cumsum(blocks)[:-1], n)), [n]]))
    a = demodulate(x, FS, freqs, engine="c", filter=filt, phases=phases, block_sizes=blocks, T=0.1)
    b = demodulate(x, FS, freqs, engine="fixed", filter=filt, phases=phases, T=0.1)
    assert np.array_equal(a.raw_X, b.raw_X) and np.array_equal(a.raw_Y, b.raw_Y)
    assert np.array_equal(a.X, b.X)


def test_state_bytes_targets():
    assert core.state_bytes_per_terminal("butterworth3") <= 72
    assert core.state_bytes_per_terminal("boxcar") <= 24


@given(st.integers(0, 2**32 - 1), st.integers(1, 200))
def test_bw3_partial_groups_across_blocks(seed, n):
    """The pre-sum's group of 8 continues across process calls of any length (1-sample blocks too)."""
    rng = np.random.default_rng(seed)
    x = rng.integers(-2**23, 2**23, n)
    coeffs = design.lockin_filter(FS, 0.1).coeffs
    steps = design.freq_to_step(rng.uniform(1, 4999, 2), FS)
    one = core.lockin_bw3(x, steps, None, coeffs, block_sizes=[1] * n)
    whole = fixed.lockin_bw3(x, steps, [0, 0], coeffs)
    assert np.array_equal(one[0], whole[0]) and np.array_equal(one[1], whole[1])
