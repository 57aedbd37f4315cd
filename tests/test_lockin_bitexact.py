"""engine="c" and engine="fixed" give identical raw outputs (both filters, any block split),
on every path of the C core: the portable C99 path (the firmware's) and each host path,
forced one by one (ISA generic / AVX2, NCO per sample / reference cache in the lane-interleaved,
the packed 24-bit lane, the scaled lane (Butterworth only) or the row layout, 1 / 2 / 3 threads
from the persistent worker pool, and 2 threads started per call)."""
import numpy as np
import pytest
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


# Every path of the C core, forced: (isa, threads, reference cache layout or None, workers).
# 3 threads: with the lane layout (batches of 4 terminals) that splits 9+ terminals
# three ways and fewer into one job per batch; 2 threads covers a split of 5-8. Threads
# come from the persistent pool (the default), and for 2 threads also started per call.
ISAS = ["generic"] + (["avx2"] if core.isa_available("avx2") else [])
LAYOUTS = (None, "lanes", "packed", "scaled", "rows")
PATHS = ([("portable", 1, None, "pool")] + [(isa, t, lay, "pool") for isa in ISAS for t in (1, 2, 3) for lay in LAYOUTS]
         + [(isa, 2, lay, "spawn") for isa in ISAS for lay in LAYOUTS])


def all_paths(run, steps, phases, n, filter="butterworth3"):  # noqa: A002
    """``run(**kw)`` on every path of ``filter``; yields (path, result). One cache per layout and window."""
    layouts = [lay for lay in LAYOUTS if lay and not (lay == "scaled" and filter == "boxcar")]
    refs = {lay: core.References(steps, phases, n, layout=lay) for lay in layouts}
    for isa, threads, lay, workers in PATHS:
        if lay is None or lay in refs:
            yield (isa, threads, lay, workers), run(isa=isa, threads=threads, references=refs.get(lay),
                                                    workers=workers)


def test_every_dispatch_path_is_exercised():
    """The AVX2 path is tested wherever the CPU has it (here: the CI and bench machines)."""
    assert {p[0] for p in PATHS} >= {"portable", "generic"}
    if core.isa_available("avx2"):
        assert any(p[0] == "avx2" for p in PATHS)
    else:
        with pytest.raises(ValueError, match="avx2"):
            core.lockin_boxcar([1, 2, 3], [1 << 20], None, isa="avx2")


@given(windows(), st.booleans())
def test_boxcar_c_equals_fixed(w, remove_dc):
    x, freqs, phases, blocks = w
    steps = design.freq_to_step(freqs, FS)
    uph = design.phase_to_uint32(phases)
    dc = core.mean_code(x) if remove_dc else 0
    assert dc == (fixed.mean_q0(x) if remove_dc else 0)
    fi, fq = fixed.lockin_boxcar(x, steps, uph, dc)
    for path, (ci, cq) in all_paths(lambda **kw: core.lockin_boxcar(x, steps, uph, dc=dc, block_sizes=blocks, **kw),
                                    steps, uph, x.size, "boxcar"):
        assert np.array_equal(ci, fi) and np.array_equal(cq, fq), path


@given(windows(max_n=400), st.sampled_from([0.01, 0.1, 1.0]), st.booleans())
def test_bw3_c_equals_fixed(w, T, remove_dc):
    x, freqs, phases, blocks = w
    coeffs = design.lockin_filter(FS, T).coeffs
    steps = design.freq_to_step(freqs, FS)
    uph = design.phase_to_uint32(phases)
    dc = core.mean_code(x) if remove_dc else 0
    fi, fq = fixed.lockin_bw3(x, steps, uph, coeffs, dc)
    for path, (ci, cq) in all_paths(
            lambda **kw: core.lockin_bw3(x, steps, uph, coeffs, dc=dc, block_sizes=blocks, **kw), steps, uph, x.size):
        assert np.array_equal(ci, fi) and np.array_equal(cq, fq), path


@given(st.integers(0, 2**32 - 1), st.integers(2100, 5000), st.integers(1, 9))
def test_bw3_long_blocks_every_path(seed, n, m):
    """Windows longer than the host chunk (2048 samples) and a split off the group grid:
    the chunk and group boundaries of the host paths fall everywhere."""
    rng = np.random.default_rng(seed)
    x = rng.integers(-2**24, 2**24, n)
    coeffs = design.lockin_filter(FS, 0.1).coeffs
    steps = design.freq_to_step(rng.uniform(1, 4999, m), FS)
    uph = rng.integers(0, 2**32, m, dtype=np.uint64)
    cut = int(rng.integers(0, n + 1))
    fi, fq = fixed.lockin_bw3(x, steps, uph, coeffs)
    for path, (ci, cq) in all_paths(
            lambda **kw: core.lockin_bw3(x, steps, uph, coeffs, block_sizes=[cut, n - cut], **kw), steps, uph, n):
        assert np.array_equal(ci, fi) and np.array_equal(cq, fq), path
    bi, bq = fixed.lockin_boxcar(x, steps, uph)
    for path, (ci, cq) in all_paths(
            lambda **kw: core.lockin_boxcar(x, steps, uph, block_sizes=[cut, n - cut], **kw), steps, uph, n, "boxcar"):
        assert np.array_equal(ci, bi) and np.array_equal(cq, bq), path


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
    fi, fq = fixed.lockin_bw3(x, steps, np.zeros(3, np.uint32), HOT, 2**23 - 1)
    for path, (ci, cq) in all_paths(lambda **kw: core.lockin_bw3(x, steps, None, HOT, dc=2**23 - 1, **kw),
                                    steps, np.zeros(3, np.uint32), n):
        assert np.array_equal(ci, fi) and np.array_equal(cq, fq), path


def test_bw3_saturates_instead_of_wrapping():
    """A full-scale tone at the reference frequency mixes to a large positive DC;
    through the hot filter it must pin at +2^30 - 1, never wrap negative."""
    n = 2000
    x = np.round(8e6 * np.sin(2 * np.pi * 100 * np.arange(n) / FS)).astype(np.int64)
    steps = design.freq_to_step([100.0], FS)
    fi, _ = fixed.lockin_bw3(x, steps, [0], HOT)
    assert fi[0] == 2**30 - 1
    for path, (ci, _) in all_paths(lambda **kw: core.lockin_bw3(x, steps, None, HOT, **kw), steps, [0], n):
        assert ci[0] == fi[0], path


@given(windows(max_terms=8, max_n=300), st.sampled_from(["butterworth3", "boxcar"]))
def test_demodulate_engines_agree_bitwise(w, filt):
    x, freqs, phases, blocks = w
    n = max(8, x.size - x.size % 8)  # the Butterworth lock-in reads whole groups of 8
    x = np.clip(np.resize(x, n), -2**23, 2**23 - 1)
    blocks = np.diff(np.concatenate([[0], np.sort(np.minimum(np.cumsum(blocks)[:-1], n)), [n]]))
    # Codes whose swing around their mean leaves 24 bits are refused by both engines alike (the
    # core would saturate x - dc; that saturation is tested bit for bit at the core's level above);
    # then the same codes without the DC removal.
    try:
        a = demodulate(x, FS, freqs, engine="c", filter=filt, phases=phases, block_sizes=blocks, T=0.1)
        remove_dc = True
    except ValueError as exc:
        assert "codes from their mean" in str(exc)
        with pytest.raises(ValueError, match="codes from their mean"):
            demodulate(x, FS, freqs, engine="fixed", filter=filt, phases=phases, T=0.1)
        remove_dc = False
        a = demodulate(x, FS, freqs, engine="c", filter=filt, phases=phases, block_sizes=blocks, T=0.1,
                       remove_dc=False)
    b = demodulate(x, FS, freqs, engine="fixed", filter=filt, phases=phases, T=0.1, remove_dc=remove_dc)
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
    whole = fixed.lockin_bw3(x, steps, [0, 0], coeffs)
    for path, one in all_paths(lambda **kw: core.lockin_bw3(x, steps, None, coeffs, block_sizes=[1] * n, **kw),
                               steps, [0, 0], n):
        assert np.array_equal(one[0], whole[0]) and np.array_equal(one[1], whole[1]), path


@given(windows(max_terms=16, max_n=500), st.booleans())
def test_lockin_plan_equals_the_model(w, cache):
    """core.LockinPlan (prepared once, called per window) on every isa, both filters."""
    x, freqs, phases, _ = w
    steps = design.freq_to_step(freqs, FS)
    uph = design.phase_to_uint32(phases)
    coeffs = design.lockin_filter(FS, 0.1).coeffs
    want_bw3 = fixed.lockin_bw3(x, steps, uph, coeffs, 5)
    want_box = fixed.lockin_boxcar(x, steps, uph, 5)
    for isa in ["portable"] + ISAS:
        use_cache = cache and isa != "portable"  # LockinPlan's cache: (scaled) lanes from 3 terminals, else rows
        bw3 = core.LockinPlan(steps, uph, x.size, coeffs=coeffs, isa=isa, cache=use_cache)
        box = core.LockinPlan(steps, uph, x.size, filter="boxcar", isa=isa, cache=use_cache)
        if use_cache:
            assert bw3.references.layout == ("scaled" if steps.size >= 3 else "rows")  # a small cache
            assert box.references.layout == ("lanes" if steps.size >= 3 else "rows")
        for _ in range(2):  # the same plan serves window after window
            assert all(np.array_equal(a, b) for a, b in zip(bw3(x, dc=5), want_bw3)), isa
            assert all(np.array_equal(a, b) for a, b in zip(box(x, dc=5), want_box)), isa


def test_lockin_plan_refuses_other_windows():
    plan = core.LockinPlan([1 << 20], None, 64, coeffs=design.lockin_filter(FS, 0.1).coeffs)
    with pytest.raises(ValueError, match="64 samples"):
        plan(np.zeros(63, np.int32))
    with pytest.raises(ValueError, match="coeffs"):
        core.LockinPlan([1 << 20], None, 64)
    refs = core.References([1 << 20], None, 64)
    with pytest.raises(ValueError, match="other steps"):
        core.lockin_bw3(np.zeros(64, np.int32), [1 << 21], None, design.lockin_filter(FS, 0.1).coeffs,
                        references=refs)


@pytest.mark.parametrize("level", [2**18, -2**18, 3 * 2**18, -(2**23) + 2**18])
def test_bw3_mixer_ties_every_path(level):
    """Exact halves in the mixer's rounding: x' = level is 2^18 mod 2^19, so every odd
    reference makes x' ref = 2^18 mod 2^19, a tie that half-up rounding must send up.
    Random inputs hit a tie once in 2^19 products; here about half the products are ties."""
    n, m = 2600, 5
    x = np.full(n, level, np.int64)
    rng = np.random.default_rng(abs(level) % 1000)
    steps = design.freq_to_step(rng.uniform(1, 4999, m), FS)
    uph = rng.integers(0, 2**32, m, dtype=np.uint64)
    coeffs = design.lockin_filter(FS, 0.1).coeffs
    fi, fq = fixed.lockin_bw3(x, steps, uph, coeffs)
    for path, (ci, cq) in all_paths(lambda **kw: core.lockin_bw3(x, steps, uph, coeffs, block_sizes=[3, n - 3], **kw),
                                    steps, uph, n):
        assert np.array_equal(ci, fi) and np.array_equal(cq, fq), path


@given(st.integers(1, 13), st.integers(1, 40), st.integers(0, 2**32 - 1))
def test_lane_cache_holds_the_nco_references(m, n, seed):
    """The lane-interleaved cache holds hge_sin_q22 of each terminal's phase walk (the
    row layout's values, regrouped: batch m // 4, lane m % 4, sines then cosines) and
    zeros in the lanes past the last terminal."""
    rng = np.random.default_rng(seed)
    steps = rng.integers(1, 2**31, m, dtype=np.uint64)
    uph = rng.integers(0, 2**32, m, dtype=np.uint64)
    lanes = core.References(steps, uph, n).table
    rows = core.References(steps, uph, n, layout="rows").table
    w = core.lib.HGE_HOST_LANES
    assert lanes.shape == (-(-m // w), n, 2 * w)
    phase = fixed.phases_at(steps, uph, n)
    assert np.array_equal(rows[0::2], fixed.sin_q22(phase))
    assert np.array_equal(rows[1::2], fixed.sin_q22(phase + np.uint64(fixed.QUARTER_TURN)))
    for t in range(m):
        b, lane = divmod(t, w)
        assert np.array_equal(lanes[b, :, lane], rows[2 * t])
        assert np.array_equal(lanes[b, :, w + lane], rows[2 * t + 1])
    pad = [(m - 1) // w, slice(None)]
    for lane in range(m % w or w, w):
        assert not lanes[pad[0], :, lane].any() and not lanes[pad[0], :, w + lane].any()


@given(st.integers(1, 13), st.integers(1, 40), st.integers(0, 2**32 - 1))
def test_packed_cache_holds_the_lane_values(m, n, seed):
    """The packed cache holds the lane cache's values as 24-bit little-endian two's
    complement, 3 bytes per value, same order (4 sines then 4 cosines per row)."""
    rng = np.random.default_rng(seed)
    steps = rng.integers(1, 2**31, m, dtype=np.uint64)
    uph = rng.integers(0, 2**32, m, dtype=np.uint64)
    lanes = core.References(steps, uph, n, layout="lanes").table
    packed = core.References(steps, uph, n, layout="packed").table
    w = core.lib.HGE_HOST_LANES
    assert packed.dtype == np.uint8 and packed.shape == (-(-m // w), n, 3 * 2 * w)
    b = packed.reshape(packed.shape[0], n, 2 * w, 3).astype(np.int64)
    u = b[..., 0] | (b[..., 1] << 8) | (b[..., 2] << 16)
    assert np.array_equal(np.where(u >= 1 << 23, u - (1 << 24), u), lanes)


def test_references_layout_is_checked():
    with pytest.raises(ValueError, match="layout"):
        core.References([1 << 20], None, 8, layout="columns")


@pytest.mark.parametrize("k", [(1 << 30) + 12345, 3 << 29, (1 << 31) - 1])
def test_bw3_saturation_just_past_the_edge(k):
    """The first-order accumulator lands in [2^60, 3 2^60): past hge_q30_sat's edge, but
    not by enough to set bit 62 of acc + 2^60. The AVX2 lane kernel runs unsaturated
    and must see this (bits 61..63 of the check) and redo the run with saturation.
    Identity biquad (b0 = 2^30, shift 0, no feedback) so y = u, the pre-sum; first order
    c0 = c1 = k, d1 = 0, so acc = k (u + u_prev). A full-scale constant x' against a
    reference held near its peak (phase a quarter turn, tiny step) gives u close to
    8 * 2^26 = 2^29, so acc = k 2^30 in [2^60, 2^61) for k in [2^30, 2^31)."""
    coeffs = (1 << 30, 0, 0, 0, 0, k, k, 0, 0)
    n, m = 200, 5
    x = np.full(n, 2**23 - 1, np.int64)
    steps = np.full(m, 3, np.uint64)
    uph = np.full(m, fixed.QUARTER_TURN, np.uint64)
    fi, fq = fixed.lockin_bw3(x, steps, uph, coeffs)
    assert np.all(fi == 2**30 - 1)  # the model saturates: the case is the one described
    for path, (ci, cq) in all_paths(lambda **kw: core.lockin_bw3(x, steps, uph, coeffs, **kw), steps, uph, n):
        assert np.array_equal(ci, fi) and np.array_equal(cq, fq), path


@given(st.integers(1, 70), st.integers(0, 2**32 - 1), st.integers(0, 8))
def test_mean_code_every_isa_equals_the_model(n, seed, shift):
    """hge_mean_q0 (portable) and hge_host_mean_q0 (generic, AVX2: 8 lanes and a scalar
    tail, so lengths around multiples of 8) give the model's round-half-up mean of the
    24-bit-saturated codes, also for codes far beyond 24 bits (shift 0: full int32)."""
    rng = np.random.default_rng(seed)
    x = (rng.integers(-2**31, 2**31, n, dtype=np.int64) >> shift).astype(np.int32)
    want = fixed.mean_q0(x)
    for isa in ["portable", "auto"] + ISAS:
        assert core.mean_code(x, isa=isa) == want, isa


def test_mean_code_saturated_extremes_every_isa():
    """All codes at one 24-bit limit (or beyond): the mean is that limit on every isa."""
    n = core.lib.HGE_MEAN_MAX_SAMPLES // 64  # long enough for the int64 lanes to matter
    for value, want in [(2**31 - 1, 2**23 - 1), (-2**31, -2**23), (2**23 - 1, 2**23 - 1)]:
        x = np.full(n, value, np.int32)
        for isa in ["portable", "auto"] + ISAS:
            assert core.mean_code(x, isa=isa) == want, (isa, value)
    with pytest.raises(ValueError, match="isa"):
        core.mean_code([1, 2], isa="neon")


@given(st.integers(0, 2**32 - 1), st.integers(1, 5000), st.sampled_from(["random", "min", "max"]))
def test_mean_code_every_isa_long_windows(seed, n, kind):
    """hge_host_mean_q0's AVX2 sum runs rounds of 1024 codes in int32 lanes before widening;
    windows past several rounds, at both saturation extremes (the largest lane sums), on
    every isa equal the model's mean."""
    rng = np.random.default_rng(seed)
    x = {"random": rng.integers(-2**31, 2**31, n), "min": np.full(n, -2**31),
         "max": np.full(n, 2**31 - 1)}[kind]
    want = fixed.mean_q0(x)
    for isa in ["portable", "auto"] + ISAS:
        assert core.mean_code(x, isa=isa) == want, isa
