"""The simulator's C kernels (csrc/host/hge_sim_*.c, devices/taylor_kernel.py): Taylor windows, ramps, runs.

Against the numpy formula (``FastEvaluator._cubic``, the reference) within the round-off bound
derived in ``taylor_kernel.roundoff_bound``; against ``evaluation="exact"`` within the
fourth-derivative bound in ``tests/test_fast_surrogate.py`` (those tests run the C path: it is the
default); the status codes; and that splitting the windows between calls changes no bit.
"""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from hge_embedded._hge_core import ffi, lib
from hge_embedded.devices import taylor_kernel as tk
from hge_embedded.devices.simulated import FastEvaluator, SimulatedDNPU, TAYLOR_RADIUS
from hge_embedded.devices.surrogate import SurrogateModel
from tests.devices_for_tests import random_knot_values, random_ramps


def _symmetric(rng, n, order, scale):
    """A random symmetric tensor of ``order`` (2 or 3) in ``n`` dimensions."""
    A = rng.normal(0.0, scale, (n,) * order)
    if order == 2:
        return 0.5 * (A + A.T)
    perms = [(0, 1, 2), (0, 2, 1), (1, 0, 2), (1, 2, 0), (2, 0, 1), (2, 1, 0)]
    return sum(A.transpose(p) for p in perms) / 6.0


def _numpy_window(v, cen, I, g, H, T, moving=None):
    """The reference: FastEvaluator._fill's formula for one window (y = I + g . d + _cubic)."""
    d = v - cen[:, None]
    y = I + g @ d
    if moving is None:
        return y + FastEvaluator._cubic(d, H, T)
    if moving.size:
        y += FastEvaluator._cubic(d[moving], H[np.ix_(moving, moving)], T[np.ix_(moving, moving, moving)])
    return y


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 8), n_win=st.integers(1, 5),
       scale=st.sampled_from([1e-3, 1.0, 1e3]))
def test_kernel_within_the_roundoff_bound_of_the_numpy_formula(seed, n, n_win, scale):
    rng = np.random.default_rng(seed)
    lens = rng.integers(0, 40, n_win)
    gaps = rng.integers(0, 5, n_win)
    N = int(lens.sum() + gaps.sum() + 3)
    v = rng.uniform(-1.0, 1.0, (n, N))
    out = np.full(N, np.nan)
    bounds, cens, coefs, ref = [], [], [], []
    pos = 0
    for w in range(n_win):
        s, e = pos + int(gaps[w]), pos + int(gaps[w]) + int(lens[w])
        pos = e
        cen = rng.uniform(-1.0, 1.0, n)
        v[:, s:e] = cen[:, None] + rng.uniform(-TAYLOR_RADIUS, TAYLOR_RADIUS, (n, e - s))
        I, g = rng.normal(0, 30 * scale), rng.normal(0, 100 * scale, n)
        H, T = _symmetric(rng, n, 2, 1e3 * scale), _symmetric(rng, n, 3, 1e4 * scale)
        bounds.append((s, e))
        cens.append(cen)
        coefs.append(tk.pack(np.array([I]), g[:, None], H[None], T[None])[0])
        ref.append((s, e, cen, I, g, H, T))
    tk.evaluate(v, np.array(bounds), np.array(cens), np.array(coefs), out)
    written = np.zeros(N, bool)
    for s, e, cen, I, g, H, T in ref:
        y_np = _numpy_window(v[:, s:e], cen, I, g, H, T)
        bound = tk.roundoff_bound(v[:, s:e], cen, I, g, H, T)
        assert np.all(np.abs(out[s:e] - y_np) <= bound), np.max(np.abs(out[s:e] - y_np) / bound)
        written[s:e] = True
    assert np.all(np.isnan(out[~written]))   # nothing outside the windows is written


def test_the_bound_is_not_vacuous():
    """The kernel and the numpy formula do differ (different summation orders), and by far less than
    the bound: a bound that is never approached could hide a wrong formula only if it were huge; it
    is ~1e-14 relative, so a wrong coefficient (a factor 2 on a monomial) would show."""
    rng = np.random.default_rng(3)
    n, N = 7, 2000
    cen = rng.uniform(-0.5, 0.5, n)
    v = cen[:, None] + rng.uniform(-TAYLOR_RADIUS, TAYLOR_RADIUS, (n, N))
    I, g, H, T = 20.0, rng.normal(0, 100, n), _symmetric(rng, n, 2, 1e3), _symmetric(rng, n, 3, 1e4)
    out = np.empty(N)
    tk.evaluate(v, np.array([(0, N)]), cen[None], tk.pack(np.array([I]), g[:, None], H[None], T[None]), out)
    y_np = _numpy_window(v, cen, I, g, H, T)
    diff, bound = np.abs(out - y_np), tk.roundoff_bound(v, cen, I, g, H, T)
    assert np.any(diff > 0)
    assert np.all(diff <= bound)
    assert bound.max() < 1e-11 * (abs(I) + 1)
    # One monomial's coefficient doubled moves the result far outside the bound.
    T2 = T.copy()
    T2[1, 2, 3] *= 2
    for p in [(1, 3, 2), (2, 1, 3), (2, 3, 1), (3, 1, 2), (3, 2, 1)]:
        T2[p] = T2[1, 2, 3]
    out2 = np.empty(N)
    tk.evaluate(v, np.array([(0, N)]), cen[None], tk.pack(np.array([I]), g[:, None], H[None], T2[None]), out2)
    assert np.max(np.abs(out2 - y_np) - bound) > 0


@pytest.mark.parametrize("seed", [0, 1])
def test_surrogate_windows_c_against_numpy_within_the_bound(seed):
    """The whole FastEvaluator on HGE-like windows: kernel="c" against kernel="numpy"."""
    m = SurrogateModel(seed)
    rng = np.random.default_rng(seed)
    t = np.arange(600) / 10_000.0
    f = np.array([173.0, 211.0, 263.0, 307.0, 359.0, 419.0, 461.0])
    wins = [rng.uniform(-0.9, 0.5, (7, 1)) + 0.008 * np.sin(2 * np.pi * f[:, None] * t) for _ in range(5)]
    v = np.concatenate(wins, axis=1)
    fc, fn = FastEvaluator(m, None), FastEvaluator(m, None)
    fn.kernel = "numpy"
    yc, yn = fc.current(v), fn.current(v)
    runs = fc._runs(v)
    assert sum(e - s for s, e, _, _ in runs) == v.shape[1]
    for s, e, lo, hi in runs:
        cen = 0.5 * (lo + hi)
        I, g, H, T = m.taylor_tensors(cen[:, None])
        bound = tk.roundoff_bound(v[:, s:e], cen, I[0], g[:, 0], H[0], T[0])
        assert np.all(np.abs(yc[s:e] - yn[s:e]) <= bound)


def test_hopping_windows_c_against_numpy(monkeypatch):
    """The hopping network's difference tensors (symmetric only to their truncation error),
    embedded in 7 dimensions with zeros for the electrodes that do not move: the same polynomial
    as the numpy path over the moving ones, within roundoff_bound of the tensors packed."""
    sim = SimulatedDNPU(seed=0, noise=False, model="hopping", dac_bits=None, threads=1)
    fe = sim._fast
    t = np.arange(300) / 10_000.0
    f = np.array([173.0, 211.0, 263.0, 307.0, 359.0, 0.0, 0.0])   # two electrodes held still
    v = np.concatenate([np.array([[0.1], [-0.2], [0.3], [0.0], [-0.4], [0.2], [0.5]]) +
                        0.008 * np.sin(2 * np.pi * f[:, None] * t),
                        np.array([[-0.3], [0.1], [0.2], [0.4], [-0.1], [0.0], [0.1]]) +
                        0.008 * np.sin(2 * np.pi * f[:, None] * t + 1.0)], axis=1)
    packed = []
    real_pack = tk.pack
    monkeypatch.setattr(tk, "pack", lambda *a: packed.append(a) or real_pack(*a))
    yc = fe.current(v)
    fe.kernel = "numpy"
    yn = fe.current(v)
    fe.kernel = "c"
    runs = fe._runs(v)
    assert sum(e - s for s, e, _, _ in runs) == v.shape[1]
    assert all(np.count_nonzero(hi - lo) == 5 for _, _, lo, hi in runs)
    (I, g, H, T), = packed
    assert len(runs) == I.size
    T0 = T[0]
    assert not np.array_equal(T0, T0.transpose(1, 0, 2))     # premise: not symmetric to the bit
    for w, (s, e, lo, hi) in enumerate(runs):
        bound = tk.roundoff_bound(v[:, s:e], 0.5 * (lo + hi), I[w], g[:, w], H[w], T[w])
        assert np.all(np.abs(yc[s:e] - yn[s:e]) <= bound)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), cut=st.integers(0, 6))
def test_splitting_the_windows_between_calls_changes_no_bit(seed, cut):
    rng = np.random.default_rng(seed)
    n, W, L = 7, 6, 23
    v = rng.uniform(-0.5, 0.5, (n, W * L))
    bounds = np.array([(w * L, w * L + L) for w in range(W)])
    cens = rng.uniform(-0.5, 0.5, (W, n))
    coefs = rng.normal(0, 1e3, (W, tk.coefficient_map(n)[0].shape[0]))
    whole, parts = np.empty(W * L), np.empty(W * L)
    tk.evaluate(v, bounds, cens, coefs, whole)
    tk.evaluate(v, bounds[:cut], cens[:cut], coefs[:cut], parts)
    tk.evaluate(v, bounds[cut:], cens[cut:], coefs[cut:], parts)
    assert np.array_equal(whole, parts)
    # A view of a wider record (row stride > samples) gives the same numbers.
    wide = np.zeros((n, W * L + 17))
    wide[:, :W * L] = v
    view_out = np.empty(W * L)
    tk.evaluate(wide[:, :W * L], bounds, cens, coefs, view_out)
    assert np.array_equal(whole, view_out)


def test_status_codes_and_nothing_written_on_a_bad_window():
    s = ffi.new("hge_sim_taylor_t *")
    assert lib.hge_sim_taylor_init(ffi.NULL, 7) == lib.HGE_ERR_NULL
    assert lib.hge_sim_taylor_init(s, 0) == lib.HGE_ERR_SIZE
    assert lib.hge_sim_taylor_init(s, lib.HGE_SIM_MAX_DIM + 1) == lib.HGE_ERR_SIZE
    assert lib.hge_sim_taylor_coefs(0) == 0 and lib.hge_sim_taylor_coefs(9) == 0
    assert lib.hge_sim_taylor_coefs(7) == 120 and lib.hge_sim_taylor_coefs(1) == 4
    assert lib.hge_sim_taylor_init(s, 7) == lib.HGE_OK
    N = 10
    v = np.zeros((7, N))
    cen = np.zeros((2, 7))
    coef = np.ones((2, 120))
    out = np.full(N, -1.0)
    P = lambda a, t: ffi.cast(t, a.ctypes.data)  # noqa: E731

    def call(bounds, n=N, stride=N, state=s, out_ptr=None):
        b = np.array(bounds, np.int64)
        return lib.hge_sim_taylor_process(state, P(v, "double *"), n, stride, P(b, "int64_t *"), len(bounds) // 2,
                                          P(cen, "double *"), P(coef, "double *"),
                                          P(out, "double *") if out_ptr is None else out_ptr)
    assert call([0, 5, 5, 11]) == lib.HGE_ERR_RANGE        # second window past the end
    assert call([0, 5, 4, 3]) == lib.HGE_ERR_RANGE         # ends before it starts
    assert call([-1, 5, 5, 6]) == lib.HGE_ERR_RANGE
    assert np.all(out == -1.0)                             # the good first window was not written
    assert call([0, 5, 5, 10], stride=N - 1) == lib.HGE_ERR_SIZE
    assert call([0, 5, 5, 10], out_ptr=ffi.NULL) == lib.HGE_ERR_NULL
    assert lib.hge_sim_taylor_process(ffi.NULL, ffi.NULL, 0, 0, ffi.NULL, 0, ffi.NULL, ffi.NULL,
                                      ffi.NULL) == lib.HGE_ERR_NULL
    bad = ffi.new("hge_sim_taylor_t *", {"n_dim": 7, "n_coef": 119})   # inconsistent instance
    assert call([0, 5, 5, 10], state=bad) == lib.HGE_ERR_SIZE
    assert call([0, 5, 5, 10]) == lib.HGE_OK
    assert np.all(out == 1.0)                              # d = 0: the constant term
    # The Python wrapper names what it refuses.
    with pytest.raises(ValueError, match="bounds"):
        tk.evaluate(v, np.array([(0, 11)]), cen[:1], coef[:1], out)
    with pytest.raises(ValueError, match="coefs"):
        tk.evaluate(v, np.array([(0, 5)]), cen[:1], coef[:1, :119], out)
    with pytest.raises(ValueError, match="out"):
        tk.evaluate(v, np.array([(0, 5)]), cen[:1], coef[:1], np.empty(N, np.float32))
    with pytest.raises(ValueError, match="electrodes"):
        tk.evaluate(np.zeros((9, N)), np.array([(0, 5)]), np.zeros((1, 9)), np.zeros((1, 1)), out)


def test_pack_puts_each_derivative_on_its_monomial():
    """A polynomial with one monomial at a time: the kernel's value is that monomial."""
    n = 3
    d = np.array([0.3, -0.7, 1.1])
    v = d[:, None]
    cen = np.zeros((1, n))
    out = np.empty(1)
    for j in range(n):
        for k in range(n):
            H = np.zeros((n, n))
            H[j, k] = H[k, j] = 1.0
            tk.evaluate(v, np.array([(0, 1)]), cen, tk.pack(np.zeros(1), np.zeros((n, 1)), H[None],
                                                             np.zeros((1, n, n, n))), out)
            assert np.isclose(out[0], 0.5 * d @ H @ d, rtol=1e-15)
    T = np.zeros((n, n, n))
    for p in [(0, 1, 2), (0, 2, 1), (1, 0, 2), (1, 2, 0), (2, 0, 1), (2, 1, 0)]:
        T[p] = 1.0
    tk.evaluate(v, np.array([(0, 1)]), cen, tk.pack(np.zeros(1), np.zeros((n, 1)), np.zeros((1, n, n)), T[None]), out)
    assert np.isclose(out[0], d[0] * d[1] * d[2], rtol=1e-15)     # T[d, d, d] / 6 = 6 d0 d1 d2 / 6


# -- the ramps in C (csrc/host/hge_sim_ramp.c): the numpy block fill's operations, in its order ------


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n_ramps=st.integers(1, 6))
def test_ramp_kernel_gives_the_bits_of_the_numpy_block_fill(seed, n_ramps):
    rng = np.random.default_rng(seed)
    v, ramps, n_pts = random_ramps(rng, n_ramps)
    I, G = random_knot_values(rng, n_pts)
    c, py = np.full(v.shape[1], np.nan), np.full(v.shape[1], np.nan)
    FastEvaluator._fill_ramps(c, v, ramps, I, G, n_pts, kernel="c")
    FastEvaluator._fill_ramps(py, v, ramps, I, G, n_pts, kernel="numpy")
    assert np.array_equal(c, py, equal_nan=True)   # NaN: the samples between ramps, left alone by both
    assert np.isfinite(c).sum() == sum(e - s for s, e, _, _ in ramps)


def test_ramp_kernel_on_a_sphere_record_gives_the_numpy_bits():
    from hge_embedded.tasks import sphere
    from hge_embedded.train import Trainer
    d = SimulatedDNPU(seed=0, noise=False, threads=1)
    tr = Trainer(d, sphere(0), seed=0, max_iter=1)
    tr.initialise()
    volts, _ = tr._string_windows([tr._bias(x, tr.controls()) for x in tr.task.inputs])
    c = d.measure(volts)
    d2 = SimulatedDNPU(seed=0, noise=False, threads=1)
    d2._fast.kernel = "numpy"
    py = d2.measure(volts)
    # Windows differ by the Taylor kernel's round-off (~1e-14 nA), far below one ADC step (1.3e-5 nA):
    # the measured records are the same codes.
    assert np.array_equal(c, py)


def test_ramp_kernel_status_codes():
    v = np.zeros((7, 10))
    I, G, knots = np.zeros(3), np.zeros((7, 3)), np.array([0.0, 0.5, 1.0])
    out = np.full(10, -1.0)
    for bad in [(0, 11, 0, 3), (5, 5, 0, 3), (-1, 4, 0, 3), (0, 4, 1, 3), (0, 4, 0, 1), (0, 4, -1, 2)]:
        with pytest.raises(ValueError, match="ramp_rows"):
            tk.ramps(v, np.array([(0, 4, 0, 3), bad]), knots, I, G, out)
    assert np.all(out == -1.0)                    # the good first ramp was not written
    with pytest.raises(ValueError, match="electrodes"):
        tk.ramps(np.zeros((9, 10)), np.array([(0, 4, 0, 3)]), knots, I, np.zeros((9, 3)), out)
    with pytest.raises(ValueError, match="knots"):
        tk.ramps(v, np.array([(0, 4, 0, 3)]), knots[:2], I, G, out)
    P = lambda a, t: ffi.cast(t, a.ctypes.data)  # noqa: E731
    rows = np.array([0, 4, 0, 3], np.int64)
    args = [P(v, "double *"), 7, 10, 10, P(rows, "int64_t *"), 1, P(knots, "double *"), P(I, "double *"),
            P(G, "double *"), 3, 3, P(out, "double *")]
    assert lib.hge_sim_ramp_process(*args) == lib.HGE_OK
    for i, code in [(0, lib.HGE_ERR_NULL), (6, lib.HGE_ERR_NULL), (11, lib.HGE_ERR_NULL)]:
        a = list(args)
        a[i] = ffi.NULL
        assert lib.hge_sim_ramp_process(*a) == code
    for i, val in [(1, 0), (1, 9), (3, 9), (9, 2)]:   # n_dim, stride < n, g_stride < n_pts
        a = list(args)
        a[i] = val
        assert lib.hge_sim_ramp_process(*a) == lib.HGE_ERR_SIZE


# -- the window classification in C (csrc/host/hge_sim_runs.c) against FastEvaluator._runs ----------

def _same_runs(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x[:2] == y[:2] and np.array_equal(x[2], y[2]) and np.array_equal(x[3], y[3])


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), parts=st.integers(1, 10), gap=st.integers(0, 100),
       wiggle=st.sampled_from([0.0, 0.003, 0.01, 0.03]))
def test_runs_kernel_equals_the_numpy_classification(seed, parts, gap, wiggle):
    """Flat windows with wiggles of random size (some wider than a box), ramps of ``gap`` samples
    (neighbours that compete for samples, stretches that need the greedy split)."""
    from hge_embedded.devices.simulated import CHUNK
    rng = np.random.default_rng(seed)
    blocks = []
    for _ in range(parts):
        n = int(rng.integers(1, 150))
        blocks.append(rng.uniform(-0.5, 0.5, (7, 1)) + rng.uniform(0, wiggle + 1e-12) * rng.standard_normal((7, n)))
        if gap:
            blocks.append(np.linspace(blocks[-1][:, -1], blocks[-1][:, -1] + rng.uniform(-0.05, 0.05, 7), gap,
                                      axis=1))
    v = np.concatenate(blocks, axis=1)
    ev = FastEvaluator(SurrogateModel(0), 20 / 2**16)
    _same_runs(tk.runs(v, CHUNK, 2 * TAYLOR_RADIUS), ev._runs(v))


def test_runs_kernel_on_a_sphere_record_and_a_split_stretch():
    from hge_embedded.devices.simulated import CHUNK
    from hge_embedded.tasks import sphere
    from hge_embedded.train import Trainer
    d = SimulatedDNPU(seed=0, noise=False)
    tr = Trainer(d, sphere(0), seed=0, max_iter=1)
    tr.initialise()
    volts, _ = tr._string_windows([tr._bias(x, tr.controls()) for x in tr.task.inputs])
    v = d._dac(volts)
    runs = tk.runs(v, CHUNK, 2 * TAYLOR_RADIUS)
    assert len(runs) >= 300
    _same_runs(runs, d._fast._runs(v))
    # Windows 20 mV apart with short ramps: one stretch of small chunks, split greedily.
    t = np.arange(400) / 10_000.0
    b0 = np.random.default_rng(5).uniform(-0.5, 0.3, 7)
    wins = [b0[:, None] + 0.02 * k * np.array([0, 1, 0, 1, 0, 1, 0])[:, None] + 0.004 * np.sin(2 * np.pi * 250 * t)
            for k in range(8)]
    v = np.concatenate(wins, axis=1)
    runs = tk.runs(v, CHUNK, 2 * TAYLOR_RADIUS)
    assert len(runs) >= 4
    _same_runs(runs, d._fast._runs(v))


def test_runs_kernel_edges_and_status_codes():
    from hge_embedded.devices.simulated import CHUNK
    ev = FastEvaluator(SurrogateModel(0), None)
    for v in [np.zeros((7, 1)), np.zeros((7, CHUNK)), np.zeros((7, CHUNK + 1)),
              np.linspace(0, 1, 500)[None].repeat(7, 0)]:           # one sample; whole chunks; a ramp only
        _same_runs(tk.runs(v, CHUNK, 2 * TAYLOR_RADIUS), ev._runs(v))
    assert tk.runs(np.zeros((7, 0)), CHUNK, 0.025) == []
    with pytest.raises(ValueError, match="electrodes"):
        tk.runs(np.zeros((9, 10)), CHUNK, 0.025)
    with pytest.raises(ValueError, match="chunk"):
        tk.runs(np.zeros((7, 10)), 0, 0.025)
    with pytest.raises(ValueError, match="lim"):
        tk.runs(np.zeros((7, 10)), CHUNK, float("nan"))
    v = np.zeros((7, 64))
    b, lo, hi = np.empty((2, 2), np.int64), np.empty((2, 7)), np.empty((2, 7))
    count = ffi.new("uint64_t *")
    P = lambda a, t: ffi.cast(t, a.ctypes.data)  # noqa: E731
    args = [P(v, "double *"), 7, 64, 64, CHUNK, 0.025, P(b, "int64_t *"), P(lo, "double *"), P(hi, "double *"), 2,
            count]
    assert lib.hge_sim_runs(*args) == lib.HGE_OK and count[0] == 1 and list(b[0]) == [0, 64]
    a = list(args)
    a[9] = 1                                   # room for fewer runs than chunks
    assert lib.hge_sim_runs(*a) == lib.HGE_ERR_SIZE
    a = list(args)
    a[10] = ffi.NULL
    assert lib.hge_sim_runs(*a) == lib.HGE_ERR_NULL
    a = list(args)
    a[0] = ffi.NULL
    assert lib.hge_sim_runs(*a) == lib.HGE_ERR_NULL


# -- the simulated DAC: gate and quantisation in one C pass (csrc/host/hge_sim_dac.c) ----------------

@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(1, 300), bits=st.sampled_from([8, 12, 16]))
def test_dac_pass_gives_the_bits_of_the_numpy_dac_and_stays_inside_the_limits(seed, n, bits):
    rng = np.random.default_rng(seed)
    lim = np.stack([rng.uniform(-2.0, -0.1, 7), rng.uniform(0.1, 2.0, 7)], axis=1)   # around 0 V
    d = SimulatedDNPU(seed=0, noise=False, dac_bits=bits, limits=lim)
    v = rng.uniform(lim[:, :1], lim[:, 1:], (7, n))
    v[:, 0], v[:, -1] = lim[:, 1], lim[:, 0]                 # exactly on the limits
    v[rng.integers(0, 7), rng.integers(0, n)] = -1e-12        # rounds to -0.0: the sign is kept
    ref = d._dac(v)
    got = d._gate_and_dac(v)
    assert got.tobytes() == ref.tobytes()
    assert np.all(got >= lim[:, :1]) and np.all(got <= lim[:, 1:])
    step = 20.0 / 2**bits
    # Away from the limits the nearest code, at a limit at most one step inside.
    assert np.all(np.abs(got - v) <= step * (1 + 1e-9))
    inner = (v - lim[:, :1] > step) & (lim[:, 1:] - v > step)
    assert np.array_equal(got[inner], (np.round(v / step) * step)[inner])


def test_dac_pass_refuses_what_the_gate_refuses_with_its_message():
    d = SimulatedDNPU(seed=0, noise=False)
    v = np.zeros((7, 50))
    for bad, msg in [(np.nan, "must be finite: electrode 3 at sample 7"), (np.inf, "must be finite"),
                     (0.9, "electrode 3 at sample 7 is 0.9 V, outside")]:
        w = v.copy()
        w[2, 7] = bad
        with pytest.raises(ValueError, match=msg):
            d._gate_and_dac(w)
        with pytest.raises(ValueError, match=msg):
            d.measure(w)
    with pytest.raises(TypeError, match="complex"):
        d._gate_and_dac(v.astype(complex))
    assert d._gate_and_dac(v.astype(np.float32)).dtype == np.float64     # other dtypes: the numpy path
    with pytest.raises(ValueError, match="contain no DAC code"):
        SimulatedDNPU(seed=0, limits=[[0.10001, 0.10002]] * 7)
    P = lambda a, t: ffi.cast(t, a.ctypes.data)  # noqa: E731
    lim_lo, lim_hi, c_lo, c_hi, out = np.full(7, -1.0), np.full(7, 1.0), np.full(7, -3.0), np.full(7, 3.0), np.empty((7, 50))
    args = [P(v, "double *"), 7, 50, 50, P(lim_lo, "double *"), P(lim_hi, "double *"), 0.25, P(c_lo, "double *"),
            P(c_hi, "double *"), P(out, "double *"), 50]
    assert lib.hge_sim_dac(*args) == lib.HGE_OK
    for i, val, code in [(0, ffi.NULL, lib.HGE_ERR_NULL), (9, ffi.NULL, lib.HGE_ERR_NULL), (1, 0, lib.HGE_ERR_SIZE),
                         (3, 49, lib.HGE_ERR_SIZE), (10, 49, lib.HGE_ERR_SIZE), (6, 0.0, lib.HGE_ERR_COEF),
                         (6, float("nan"), lib.HGE_ERR_COEF), (7, P(c_hi + 1, "double *"), lib.HGE_ERR_COEF)]:
        a = list(args)
        a[i] = val
        assert lib.hge_sim_dac(*a) == code


@pytest.mark.parametrize("n", [1, 3, 4, 5, 11, 16])
def test_dac_pass_lanes_and_tail_give_numpy_bits_and_see_every_bad_sample(n):
    """hge_sim_dac four samples at a time (AVX2) and the scalar tail: ties to even, signed zeros,
    codes past 2^52 (already integers), clamps at the code limits, at every position; and a sample
    outside the limits (or NaN) at any position -- any lane, the tail -- is refused."""
    P = lambda a, t: ffi.cast(t, a.ctypes.data)  # noqa: E731
    pool = np.array([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, -1e-3, 0.0, -0.0, 7.49, 1e17, -1e17, 3e20, 2.0**52 + 2,
                     40.0, -40.0])
    lsb, clo, chi = 1.0, -30.0, 1e18
    for shift in range(len(pool)):
        v = np.ascontiguousarray(np.roll(pool, shift)[:n][None, :])
        out = np.empty_like(v)
        lo, hi, cl, ch = np.array([-1e21]), np.array([1e21]), np.array([clo]), np.array([chi])
        st = lib.hge_sim_dac(P(v, "double *"), 1, n, n, P(lo, "double *"), P(hi, "double *"), lsb,
                             P(cl, "double *"), P(ch, "double *"), P(out, "double *"), n)
        assert st == lib.HGE_OK
        assert out.tobytes() == (np.clip(np.round(v / lsb), clo, chi) * lsb).tobytes()
    for i in range(n):
        for bad in (2.0, np.nan):
            v = np.zeros((1, n))
            v[0, i] = bad
            out = np.empty_like(v)
            lo, hi, cl, ch = np.array([-1.0]), np.array([1.0]), np.array([-4.0]), np.array([4.0])
            st = lib.hge_sim_dac(P(v, "double *"), 1, n, n, P(lo, "double *"), P(hi, "double *"), 0.25,
                                 P(cl, "double *"), P(ch, "double *"), P(out, "double *"), n)
            assert st == lib.HGE_ERR_RANGE, (i, bad)


@pytest.mark.parametrize("threads", [1, 2])
def test_whole_record_path_gives_the_bits_of_the_general_path(threads):
    """FastEvaluator._current_c (whole-record arrays) against the general per-window path with the
    same C kernels, on a sphere record plus arbitrary samples (a gap that is no line)."""
    from hge_embedded.tasks import sphere
    from hge_embedded.train import Trainer
    d = SimulatedDNPU(seed=0, noise=False, threads=threads)
    tr = Trainer(d, sphere(0), seed=0, max_iter=1)
    tr.initialise()
    volts, _ = tr._string_windows([tr._bias(x, tr.controls()) for x in tr.task.inputs[:40]])
    wild = np.random.default_rng(1).uniform(-0.5, 0.5, (7, 77))        # neither window nor line
    v = d._dac(np.concatenate([volts, wild, volts[:, :1500]], axis=1))
    fe = d._fast
    assert fe.whole_record and fe.kernel == "c"
    a = fe.current(v)
    fe.whole_record = False
    b = fe.current(v)
    fe.whole_record = True
    assert a.tobytes() == b.tobytes()
    assert np.array_equal(b[volts.shape[1]:volts.shape[1] + 77], d.model.current(v[:, volts.shape[1]:volts.shape[1] + 77]))


def test_lines_kernel_equals_the_numpy_line_test():
    rng = np.random.default_rng(4)
    lsb = 20 / 2**16
    x = np.concatenate([np.round(np.linspace(rng.uniform(-1, 1, 7), rng.uniform(-1, 1, 7), 100, axis=1) / lsb) * lsb,
                        rng.uniform(-1, 1, (7, 50)), np.zeros((7, 2)),
                        np.round(np.linspace(rng.uniform(-1, 1, 7), rng.uniform(-1, 1, 7), 60, axis=1) / lsb) * lsb],
                       axis=1)
    segs = [(0, 100), (100, 150), (150, 152), (152, 212), (90, 110), (0, 0), (5, 8)]
    fe = FastEvaluator(SurrogateModel(0), lsb)
    assert np.array_equal(tk.lines(x, np.array(segs), fe.line_tol), fe._line_segments(x, segs))
    assert tk.lines(x, np.array(segs), fe.line_tol).tolist() == [True, False, False, True, False, False, True]
    with pytest.raises(ValueError, match="segs"):
        tk.lines(x, np.array([(0, 213)]), fe.line_tol)


# -- the measurement chain in one C pass (csrc/host/hge_sim_chain.c) ---------------------------------

@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(1, 2000), bw=st.sampled_from([None, 5000.0, 1234.5]),
       delay=st.sampled_from([0.0, 2.3, 1.0, 0.75]), adc=st.sampled_from([None, 12, 24]))
def test_chain_pass_gives_the_bits_of_the_numpy_chain(seed, n, bw, delay, adc):
    d = SimulatedDNPU(seed=0, noise=False, chain_bandwidth=bw, chain_delay=delay, adc_bits=adc)
    rng = np.random.default_rng(seed)
    x = rng.normal(0.0, 60.0, n)                        # some samples beyond the +-110 nA range
    x[rng.integers(0, n)] = -1e-9                        # rounds to -0.0 at the ADC
    assert d._chain(x).tobytes() == d._chain_numpy(x).tobytes()


def test_chain_pass_passes_nan_and_refuses_a_negative_range():
    d = SimulatedDNPU(seed=0, noise=False)
    x = np.array([1.0, np.nan, 3.0, 200.0, -200.0])
    assert np.array_equal(d._chain(x), d._chain_numpy(x), equal_nan=True)
    d.iv_range = -1.0
    with pytest.raises(ValueError, match="iv_range"):
        d._chain(x)
    out = np.empty(3)
    assert lib.hge_sim_chain(ffi.NULL, 3, 1, 0.5, 0.5, 0.0, 0, 1.0, 0.0, 1.0, 0.0,
                             ffi.cast("double *", out.ctypes.data)) == lib.HGE_ERR_NULL
    assert lib.hge_sim_chain(ffi.NULL, 0, 1, 0.5, 0.5, 0.0, 0, 1.0, 0.0, 1.0, 0.0, ffi.NULL) == lib.HGE_OK


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(1, 8), lens=st.lists(st.integers(0, 70), min_size=1, max_size=5))
def test_every_isa_gives_the_same_bits(seed, n, lens):
    """Plain C, vectors of 2 and (where the CPU has it) AVX2: blocks of 8 or 16 samples, partial
    blocks padded; every sample's operations the same, so the same bits."""
    rng = np.random.default_rng(seed)
    N = sum(lens) + 3
    v = rng.uniform(-1, 1, (n, N))
    edges = np.cumsum([0] + lens)
    bounds = np.stack([edges[:-1], edges[1:]], axis=1)
    cens = rng.uniform(-1, 1, (len(lens), n))
    coefs = rng.normal(0, 1e3, (len(lens), tk.coefficient_map(n)[0].shape[0]))
    results = []
    for isa in (lib.HGE_SIM_ISA_PLAIN, lib.HGE_SIM_ISA_SSE2, lib.HGE_SIM_ISA_AVX2, lib.HGE_SIM_ISA_AUTO):
        if not lib.hge_sim_taylor_isa_available(isa):
            continue
        out = np.full(N, np.nan)
        tk.evaluate(v, bounds, cens, coefs, out, isa=isa)
        results.append(out.tobytes())
    assert len(results) >= 3 and all(r == results[0] for r in results)


def test_an_unavailable_isa_is_refused():
    with pytest.raises(ValueError, match="isa 9"):
        tk.evaluate(np.zeros((7, 4)), np.array([(0, 4)]), np.zeros((1, 7)), np.zeros((1, 120)), np.empty(4), isa=9)
    s = ffi.new("hge_sim_taylor_t *")
    assert lib.hge_sim_taylor_init(s, 7) == lib.HGE_OK and s.isa == lib.HGE_SIM_ISA_AUTO
    s.isa = 9
    v, out, b = np.zeros((7, 4)), np.empty(4), np.array([0, 4], np.int64)
    P = lambda a, t: ffi.cast(t, a.ctypes.data)  # noqa: E731
    assert lib.hge_sim_taylor_process(s, P(v, "double *"), 4, 4, P(b, "int64_t *"), 1, P(np.zeros(7), "double *"),
                                      P(np.zeros(120), "double *"), P(out, "double *")) == lib.HGE_ERR_RANGE


def test_dac_codes_keep_a_limit_that_is_a_code_and_the_converter_range():
    """A limit that is itself a code is applied exactly (the range is not shrunk by one), a limit
    between codes gets the code inside it, limits at the converter's +-10 V are held to its signed
    16-bit codes (a sample at +10 V is applied one step inside), and limits beyond +-10 V are refused
    (review s5: saturating there applied 11 V, inside +-12 V limits, at 9.9997 V without a word)."""
    lsb = 20.0 / 2**16
    lim = np.array([[-3932 * lsb, 2293 * lsb]] * 6 + [[-10.0, 10.0]])
    d = SimulatedDNPU(seed=0, noise=False, limits=lim)
    lo, hi = d._dac_codes(lim)
    assert lo[:6].tolist() == [-3932] * 6 and hi[:6].tolist() == [2293] * 6
    assert lo[6] == -2**15 and hi[6] == 2**15 - 1
    v = np.repeat(lim[:, 1:], 2, axis=1)
    q = d._gate_and_dac(v)
    assert np.array_equal(q[:6], v[:6])                      # on a code: applied as asked
    assert q[6, 0] == (2**15 - 1) * lsb                      # at the converter's end: its top code
    with pytest.raises(ValueError, match="reach beyond the DAC's range"):
        SimulatedDNPU(seed=0, noise=False, limits=np.array([[-3932 * lsb, 2293 * lsb]] * 6 + [[-12.0, 12.0]]))
    d2 = SimulatedDNPU(seed=0, noise=False, limits=[[-0.70001, 0.70001]] * 7)
    assert np.all(d2._gate_and_dac(np.full((7, 2), 0.70001)) == 2293 * lsb)   # 2294 codes would be past it


def test_addr_is_the_first_elements_address_for_every_layout():
    """taylor_kernel._addr (ffi.from_buffer for contiguous arrays) points where numpy's ctypes pointer
    does: contiguous, read-only, a row-strided view (the ctypes fallback), a view past the start."""
    from hge_embedded.devices.taylor_kernel import _addr
    a = np.arange(40.0).reshape(4, 10)
    ro = a.copy()
    ro.flags.writeable = False
    for x in (a, ro, a[:, :7], a[1:], a[2], np.arange(5, dtype=np.int64)):
        assert int(ffi.cast("uintptr_t", _addr(ffi, "double *", x))) == x.ctypes.data
    p = _addr(ffi, "double *", a[1:])
    assert p[0] == 10.0 and p[9] == 19.0
