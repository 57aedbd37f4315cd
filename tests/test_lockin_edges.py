"""Deterministic edge tests of the C core: exact saturation edges, exact stability
edges, block lengths up to 2^32 - 1, configuration lifetime, unaligned input.

Each test here was checked against a mutation of the code it guards (an off-by-one
in hge_q30_sat, accepting d1 = -2^30, the old wrapping chunk counter, dropping the
coefficient copy or the alignment copy): the mutation fails the test.
"""
import numpy as np
import pytest

from hge_embedded import core, design
from hge_embedded._hge_core import ffi, lib
from hge_embedded.reference import fixed

FS = 10_000.0
ONE = 1 << 30
E60 = 1 << 60


def model_q30_sat(acc: int) -> int:
    """The integer model's section output: floor(acc / 2^30) clipped to [-2^30, 2^30 - 1]."""
    out, _ = fixed._section_out(np.array([acc], dtype=np.int64))
    return int(out[0])


# acc values at and around every edge of hge_q30_sat's one-compare fast path
# ([-2^60, 2^60) shifts exactly), the floor's edges at multiples of 2^30, and the
# largest |acc| the filter can reach (< 6 * 2^60, hge_lockin.c).
EDGES = sorted({e + d for e in (0, E60, -E60, E60 - ONE, -E60 + ONE, 2 * E60, -2 * E60,
                                6 * E60 - 1, -6 * E60 + 1, ONE, -ONE)
                for d in (-1, 0, 1)})


@pytest.mark.parametrize("acc", EDGES)
def test_q30_sat_exact_edges(acc):
    assert lib.hge_q30_sat_exported(acc) == model_q30_sat(acc)


def test_q30_sat_edge_values_are_the_limits():
    # Written out, so the test does not only trust the model: 2^60 - 1 is the last
    # value that shifts to 2^30 - 1; 2^60 would shift to 2^30 and must saturate.
    assert lib.hge_q30_sat_exported(E60 - 1) == ONE - 1
    assert lib.hge_q30_sat_exported(E60) == ONE - 1
    assert lib.hge_q30_sat_exported(-E60) == -ONE
    assert lib.hge_q30_sat_exported(-E60 - 1) == -ONE
    assert lib.hge_q30_sat_exported(-1) == -1  # floor, not truncation toward zero


BASE = list(design.lockin_filter(FS, 0.1).coeffs)  # (b0, b1, b2, a1, a2, c0, c1, d1, b_shift)


def with_coeffs(**changes):
    c = list(BASE)
    names = ["b0", "b1", "b2", "a1", "a2", "c0", "c1", "d1", "b_shift"]
    for k, val in changes.items():
        c[names.index(k)] = val
    return c


def bw3_init_status(coeffs):
    inst = ffi.new("hge_lockin_bw3_t *")
    terms = ffi.new("hge_lockin_bw3_term_t[]", 1)
    steps = ffi.new("uint32_t[]", [1 << 20])
    return lib.hge_lockin_bw3_init(inst, core.bw3_coeffs_struct(coeffs), terms, 1, steps, ffi.NULL)


@pytest.mark.parametrize("changes, ok", [
    (dict(d1=-ONE), False),           # the pole at -1 exactly: marginally stable, refused
    (dict(d1=-ONE + 1), True),
    (dict(d1=ONE), False),
    (dict(d1=ONE - 1), True),
    (dict(a1=0, a2=ONE), False),
    (dict(a1=0, a2=ONE - 1), True),
    (dict(a1=0, a2=-ONE), False),
    (dict(a1=0, a2=-ONE + 1), True),
    (dict(a1=ONE, a2=0), False),      # |a1| < 2^30 + a2, at equality refused
    (dict(a1=ONE - 1, a2=0), True),
    (dict(a1=-ONE, a2=0), False),
    (dict(a1=-(ONE - 1), a2=0), True),
    (dict(b_shift=32), True),
    (dict(b_shift=33), False),
])
def test_bw3_coefficient_stability_edges(changes, ok):
    status = bw3_init_status(with_coeffs(**changes))
    assert status == (lib.HGE_OK if ok else lib.HGE_ERR_COEF)


CHUNK = lib.HGE_CHUNK


@pytest.mark.parametrize("n", [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 2**31, 2**32 - CHUNK - 1, 2**32 - CHUNK,
                               2**32 - CHUNK + 1, 2**32 - 1])
def test_chunk_iteration_covers_any_uint32_block(n):
    """The process loops walk a block with hge_next_chunk (remaining -= min(remaining, HGE_CHUNK)),
    which terminates for every uint32_t n: the old start += HGE_CHUNK wrapped above
    2^32 - HGE_CHUNK and looped forever. A 4 GiB block cannot be allocated in a test, so the iterator the
    loops use is walked here on its own, at the edges."""
    chunks = ffi.new("uint32_t *")
    last = ffi.new("uint32_t *")
    covered = lib.hge_chunk_walk_exported(n, chunks, last)
    assert covered == n
    assert chunks[0] == -(-n // CHUNK)
    assert last[0] == (0 if n == 0 else (n - 1) % CHUNK + 1)


def test_bw3_coefficients_are_copied_at_init():
    """Changing (or freeing) the caller's coefficient block after init changes nothing."""
    rng = np.random.default_rng(5)
    x = rng.integers(-2**23, 2**23, 800).astype(np.int32)
    steps = design.freq_to_step([120.0, 930.0], FS).astype(np.uint32)
    k = core.bw3_coeffs_struct(BASE)
    inst = ffi.new("hge_lockin_bw3_t *")
    terms = ffi.new("hge_lockin_bw3_term_t[]", 2)
    c_steps = ffi.new("uint32_t[]", [int(s) for s in steps])
    assert lib.hge_lockin_bw3_init(inst, k, terms, 2, c_steps, ffi.NULL) == lib.HGE_OK
    assert lib.hge_lockin_bw3_process(inst, ffi.from_buffer("int32_t[]", x[:400]), 400) == lib.HGE_OK
    k.b[0], k.b[1], k.b[2], k.a[0], k.a[1], k.c[0], k.c[1], k.d = (0, 0, 0, 0, 0, 0, 0, ONE - 1)
    assert lib.hge_lockin_bw3_process(inst, ffi.from_buffer("int32_t[]", x[400:]), 400) == lib.HGE_OK
    oi, oq = ffi.new("int32_t[]", 2), ffi.new("int32_t[]", 2)
    assert lib.hge_lockin_bw3_output(inst, oi, oq) == lib.HGE_OK
    fi, fq = fixed.lockin_bw3(x, steps, [0, 0], BASE)
    assert list(oi) == list(fi) and list(oq) == list(fq)


def test_update_refuses_changed_limits():
    """The update rule borrows its limits: changed after init, process refuses and leaves w."""
    lo = ffi.new("int32_t[]", [-100, -100, -100])
    hi = ffi.new("int32_t[]", [100, 100, 100])
    u = ffi.new("hge_update_t *")
    assert lib.hge_update_init(u, lo, hi, 3, 1, 0) == lib.HGE_OK
    w = ffi.new("int32_t[]", [0, 0, 0])
    g = ffi.new("int64_t[]", [-1000, 5, 1000])
    assert lib.hge_update_process(u, w, g) == lib.HGE_OK
    assert list(w) == [100, -5, -100]
    hi[1] = 1000  # a wider limit would let the electrode go further than init allowed
    assert lib.hge_update_process(u, w, g) == lib.HGE_ERR_RANGE
    assert list(w) == [100, -5, -100]
    hi[1] = 100
    assert lib.hge_update_process(u, w, g) == lib.HGE_OK


def test_update_rule_owns_readonly_limits():
    lo, hi = np.array([-5, -5]), np.array([5, 5])
    rule = core.UpdateRule(lo, hi, eta=1, shift=0)
    lo[0] = 0  # the caller's array is not the rule's
    assert rule.step([0, 0], [10, -10]).tolist() == [-5, 5]
    with pytest.raises(ValueError):
        rule.w_min[0] = 0


def unaligned_int32(values) -> np.ndarray:
    values = np.asarray(values, dtype=np.int32)
    buf = bytearray(values.nbytes + 1)
    arr = np.frombuffer(buf, dtype=np.int32, count=values.size, offset=1)
    arr[:] = values
    assert arr.flags.c_contiguous and not arr.flags.aligned
    return arr


def test_unaligned_views_never_reach_c():
    rng = np.random.default_rng(9)
    x = unaligned_int32(rng.integers(-2**23, 2**23, 240))
    with pytest.raises(ValueError, match="aligned"):
        core._ptr("int32_t *", x)
    steps = design.freq_to_step([200.0, 1300.0], FS)
    ci, cq = core.lockin_bw3(x, steps, None, BASE)
    fi, fq = fixed.lockin_bw3(np.asarray(x), steps, [0, 0], BASE)
    assert np.array_equal(ci, fi) and np.array_equal(cq, fq)
    bi, bq = core.lockin_boxcar(x, unaligned_int32(steps).view(np.uint32), None)
    gi, gq = fixed.lockin_boxcar(np.asarray(x), steps, [0, 0])
    assert np.array_equal(bi, gi) and np.array_equal(bq, gq)
    assert core.mean_code(x) == fixed.mean_q0(np.asarray(x))


# The mixer term's extremes: x' at both 24-bit limits and around 0, ref at the Q22
# amplitude, the split points of the ARMv6-M pieces (x' = 2^8 xs + xl, ref = 2^7 rs + rl:
# multiples of 2^8 and 2^7, with the largest low parts xl = 255, rl = 127, which make the
# error term E of hge_presum_mac_pieces largest), those of earlier splits (2^11, 2^12) and
# random values.
XS = [-2**23, -2**23 + 1, -2**23 + 255, -4097, -4096, -4095, -257, -256, -255, -1, 0, 1, 255, 256,
      4095, 4096, 2**18, -2**18, 3 * 2**18, 2**23 - 256, 2**23 - 2, 2**23 - 1]  # 2^18: ties with odd refs
REFS = [-(2**22 - 1), -(2**22 - 1) + 127, -2049, -2048, -2047, -129, -128, -127, -1, 0, 1, 127, 128,
        2047, 2048, 2**22 - 129, 2**22 - 2, 2**22 - 1]


def model_term(xv: int, ref: int) -> int:
    return (xv * ref + (1 << 18)) >> 19


def test_presum_term_pieces_equal_the_model():
    """hge_presum_mac_pieces (the Cortex-M0 route, 32-bit products only) is the model's
    rounding, exactly; so is the host's 64-bit route."""
    rng = np.random.default_rng(11)
    pairs = [(a, b) for a in XS for b in REFS]
    pairs += list(zip(rng.integers(-2**23, 2**23, 4000).tolist(), rng.integers(-2**22 + 1, 2**22, 4000).tolist()))
    for xv, ref in pairs:
        want = model_term(xv, ref)
        assert lib.hge_presum_term_exported(xv, ref, 1) == want, (xv, ref)
        assert lib.hge_presum_term_exported(xv, ref, 0) == want, (xv, ref)


def test_dot3_pieces_is_the_exact_sum():
    """hge_dot3_pieces (the Cortex-M0 filter's sums of products, 32-bit multiplies only)
    equals the exact sum wherever its precondition holds: coefficients anywhere in int32,
    signals within [-2^30, 2^30] (the filter's range), at the extremes, the 2^16 split
    points and random values."""
    coef = [-2**31, -2**31 + 1, -65537, -65536, -1, 0, 1, 65535, 65536, 2**31 - 1]
    sig_ = [-2**30, -2**30 + 1, -65536, -65535, -1, 0, 1, 65535, 65536, 2**30 - 1, 2**30]
    rng = np.random.default_rng(13)
    cases = [(a, b, a2, b2, a3, b3) for a in coef for b in sig_ for (a2, b2, a3, b3) in
             [(a, b, a, b), (-a - 1 if a < 0 else a, -b, 0, 0), (2**31 - 1, 2**30, -2**31, -2**30)]]
    for _ in range(3000):
        c = rng.integers(-2**31, 2**31, 3).tolist()
        x = rng.integers(-2**30, 2**30 + 1, 3).tolist()
        cases.append((c[0], x[0], c[1], x[1], c[2], x[2]))
    for a0, b0, a1, b1, a2, b2 in cases:
        assert lib.hge_dot3_pieces_exported(a0, b0, a1, b1, a2, b2) == a0 * b0 + a1 * b1 + a2 * b2
