"""Fixed-point update rule: C == model (including saturation) and codes never leave their limits."""
import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from hge_embedded import core
from hge_embedded._hge_core import ffi, lib
from hge_embedded.reference import fixed

i32 = st.integers(-2**31, 2**31 - 1)


@st.composite
def problems(draw):
    n = draw(st.integers(1, 16))
    k = draw(st.integers(0, 12))
    lo = np.array(draw(st.lists(i32, min_size=n, max_size=n)), np.int64)
    width = np.array(draw(st.lists(st.integers(0, 2**32), min_size=n, max_size=n)), np.int64)
    hi = np.minimum(lo + width, 2**31 - 1)
    w = np.array(draw(st.lists(i32, min_size=n, max_size=n)), np.int64)  # may start outside
    dEdI = np.array(draw(st.lists(i32, min_size=k, max_size=k)), np.int64)
    dIdV = np.array(draw(st.lists(i32, min_size=k * n, max_size=k * n)), np.int64).reshape(k, n)
    g0 = np.array(draw(st.lists(st.integers(-2**63 + 1, 2**63 - 1), min_size=n, max_size=n)), np.int64)
    eta = draw(i32)
    shift = draw(st.integers(0, 62))
    return lo, hi, w, dEdI, dIdV, g0, eta, shift


@given(problems())
def test_update_c_equals_fixed_and_stays_in_limits(p):
    lo, hi, w, dEdI, dIdV, g0, eta, shift = p
    rule = core.UpdateRule(lo, hi, eta=eta, shift=shift)
    g_c = rule.accumulate(dEdI, dIdV, g0)
    g_f = fixed.update_accumulate(g0, dEdI, dIdV)
    assert np.array_equal(g_c, g_f)
    w_c = rule.step(w, g_c)
    w_f = fixed.update_process(w, g_f, lo, hi, eta, shift)
    assert np.array_equal(w_c, w_f)
    assert np.all(w_c >= lo) and np.all(w_c <= hi)


def test_update_rounds_half_up_and_saturates():
    rule = core.UpdateRule([-100, -100, -100, -100], [100, 100, 100, 100], eta=1, shift=1)
    # delta = round_half_up(g / 2): 3/2 -> 2, -3/2 -> -1, 1/2 -> 1, huge -> clamp
    w = rule.step([0, 0, 0, 0], [3, -3, 1, 2**62])
    assert w.tolist() == [-2, 1, -1, -100]
    g = rule.accumulate([2**31 - 1] * 3, [[2**31 - 1] * 4] * 3, [2**63 - 1 - 5] * 4)
    assert g.tolist() == [2**63 - 1] * 4  # saturated, not wrapped


def test_update_rounding_at_int64_extremes():
    """p = eta g saturates at 2^63 - 1; rounding by 2^1 must give 2^62, not wrap (a bug once)."""
    for shift, expect in ((1, -2**31), (2, -2**31), (62, -2)):  # (2^63 - 1) / 2^62 rounds to 2
        rule = core.UpdateRule([-2**31], [2**31 - 1], eta=-3, shift=shift)
        w = rule.step([0], [-3074457345618258603])
        assert w[0] == fixed.update_process([0], [-3074457345618258603], [-2**31], [2**31 - 1], -3, shift)[0]
        assert w[0] == expect


def test_update_matches_float_rule_when_unsaturated():
    rng = np.random.default_rng(3)
    n = 5
    lo, hi = np.full(n, -30000), np.full(n, 30000)
    g = rng.integers(-10**9, 10**9, n)
    eta, shift = 12345, 40
    w = core.UpdateRule(lo, hi, eta=eta, shift=shift).step(np.zeros(n, int), g)
    exact = -g * eta / 2**shift
    assert np.all(np.abs(w - exact) <= 0.5)


def test_update_status_codes():
    u = ffi.new("hge_update_t *")
    lo = ffi.new("int32_t[]", [0, 0])
    hi = ffi.new("int32_t[]", [1, 1])
    bad = ffi.new("int32_t[]", [2, 0])
    assert lib.hge_update_init(ffi.NULL, lo, hi, 2, 1, 0) == lib.HGE_ERR_NULL
    assert lib.hge_update_init(u, ffi.NULL, hi, 2, 1, 0) == lib.HGE_ERR_NULL
    assert lib.hge_update_init(u, lo, hi, 0, 1, 0) == lib.HGE_ERR_SIZE
    assert lib.hge_update_init(u, lo, hi, lib.HGE_MAX_TERMINALS + 1, 1, 0) == lib.HGE_ERR_TERMINALS
    assert lib.hge_update_init(u, lo, hi, 2, 1, 63) == lib.HGE_ERR_RANGE
    assert lib.hge_update_init(u, bad, hi, 2, 1, 0) == lib.HGE_ERR_RANGE
    assert lib.hge_update_init(u, lo, hi, 2, 1, 0) == lib.HGE_OK
    g = ffi.new("int64_t[]", 2)
    w = ffi.new("int32_t[]", 2)
    d = ffi.new("int32_t[]", 2)
    assert lib.hge_update_accumulate(u, ffi.NULL, d, d, 1) == lib.HGE_ERR_NULL
    assert lib.hge_update_accumulate(u, g, d, d, 0) == lib.HGE_OK
    assert lib.hge_update_process(u, ffi.NULL, g) == lib.HGE_ERR_NULL
    assert lib.hge_update_process(u, w, g) == lib.HGE_OK
