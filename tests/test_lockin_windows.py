"""The batched lock-in entry (``hge_host_{bw3,boxcar}_windows``, ``core.LockinPlan.windows``):
K windows of one plan in one C call give, row for row, the integers of the one-window calls,
on every path (isa, cache layout, threads over windows, pool or spawned threads) and against
the integer model (``reference.fixed``); and its status codes and argument checks."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hge_embedded import core, design
from hge_embedded._hge_core import ffi, lib
from hge_embedded.demod import AUTO_CODE
from hge_embedded.reference import fixed

FS = 10_000.0
COEFFS = design.lockin_filter(FS, 0.1).coeffs
ISAS = ["generic"] + (["avx2"] if core.isa_available("avx2") else [])
LAYOUTS = (None, "rows", "lanes", "packed", "scaled")


@st.composite
def batches(draw, max_terms=12, max_n=400, max_k=7):
    """K windows of n codes (beyond 24 bits on purpose: the core saturates), a plan, DC codes."""
    m = draw(st.integers(1, max_terms))
    n = draw(st.integers(1, max_n))
    k = draw(st.integers(1, max_k))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    freqs = rng.uniform(0.5, FS / 2 - 0.5, m)
    phases = None if draw(st.booleans()) else design.phase_to_uint32(rng.uniform(-np.pi, np.pi, m))
    t = np.arange(n) / FS
    x = rng.uniform(0, 1, (k, 1)) * draw(st.sampled_from([1e2, 1e5, 2**23])) * np.sin(2 * np.pi * freqs[0] * t)
    x += rng.normal(0, draw(st.sampled_from([0.0, 10.0, 1e4])), (k, n)) + rng.uniform(-1e6, 1e6, (k, 1))
    x = np.clip(np.round(x), -2**31, 2**31 - 1).astype(np.int32)
    dcs = None if draw(st.booleans()) else rng.integers(-2**23, 2**23, k).astype(np.int32)
    return x, design.freq_to_step(freqs, FS), phases, dcs


def _plans(steps, phases, n):
    """Every path: (label, plan) for both filters, isa x cache layout (scaled: Butterworth only)."""
    for filt in ("butterworth3", "boxcar"):
        yield (filt, "portable", None), core.LockinPlan(steps, phases, n, filter=filt, coeffs=COEFFS,
                                                         isa="portable", cache=False)
        for isa in ISAS:
            for lay in LAYOUTS:
                if lay == "scaled" and filt == "boxcar":
                    continue
                yield (filt, isa, lay), core.LockinPlan(steps, phases, n, filter=filt, coeffs=COEFFS, isa=isa,
                                                        cache=lay is not None, layout=lay)


@given(batches())
def test_windows_equal_one_window_calls_on_every_path(b):
    x, steps, phases, dcs = b
    K, n = x.shape
    for label, plan in _plans(steps, phases, n):
        if label[2] is not None:
            assert plan.references.layout == label[2]
        one = [plan(x[k], dc=0 if dcs is None else int(dcs[k])) for k in range(K)]
        for threads, workers in ((1, "pool"), (2, "pool"), (3, "pool"), (None, "pool"), (2, "spawn")):
            if workers == "spawn":
                plan._window_opts.clear()
                plan._opts.pool = lib.HGE_POOL_SPAWN   # threads started per call for this plan
            oi, oq = plan.windows(x, dcs, threads=threads)
            assert oi.shape == oq.shape == (K, steps.size) and oi.dtype == oq.dtype == np.int64
            for k in range(K):
                assert np.array_equal(oi[k], one[k][0]) and np.array_equal(oq[k], one[k][1]), (label, threads, k)


@given(batches(max_terms=8, max_n=300, max_k=4))
def test_windows_equal_the_integer_model(b):
    """Anchored to the model, not only to the one-window calls (which test_lockin_bitexact anchors)."""
    x, steps, phases, dcs = b
    K, n = x.shape
    bw3 = core.LockinPlan(steps, phases, n, coeffs=COEFFS)
    box = core.LockinPlan(steps, phases, n, filter="boxcar")
    gi, gq = bw3.windows(x, dcs)
    hi, hq = box.windows(x, dcs)
    ph = np.zeros(steps.size, np.uint32) if phases is None else phases
    for k in range(K):
        dc = 0 if dcs is None else int(dcs[k])
        wi, wq = fixed.lockin_bw3(x[k].astype(np.int64), steps, ph, COEFFS, dc)
        assert np.array_equal(gi[k], wi) and np.array_equal(gq[k], wq)
        if n <= fixed.BOXCAR_MAX_SAMPLES:
            wi, wq = fixed.lockin_boxcar(x[k].astype(np.int64), steps, ph, dc)
            assert np.array_equal(hi[k], wi) and np.array_equal(hq[k], wq)


def test_windows_with_many_windows_split_over_threads():
    """More windows than threads, uneven shares (K = 11 over 2 and 3 threads), the default
    thread choice above THREAD_MIN_WORK; every row as its one-window call."""
    rng = np.random.default_rng(7)
    steps = design.freq_to_step(rng.uniform(10, 4000, 7), FS)
    n = 1000
    x = rng.integers(-2**22, 2**22, (40, n)).astype(np.int32)
    dcs = rng.integers(-1000, 1000, 40).astype(np.int32)
    plan = core.LockinPlan(steps, None, n, coeffs=COEFFS)
    assert 40 * 7 * n >= core.THREAD_MIN_WORK   # the default threads over windows
    want = [plan(x[k], dc=int(dcs[k])) for k in range(40)]
    for threads in (None, 2, 3, 64):
        for sub in (x[:11], x):
            oi, oq = plan.windows(sub, dcs[:len(sub)], threads=threads)
            assert all(np.array_equal(oi[k], want[k][0]) and np.array_equal(oq[k], want[k][1])
                       for k in range(len(sub)))


def test_windows_argument_checks():
    plan = core.LockinPlan([1 << 20, 3 << 20], None, 64, coeffs=COEFFS)
    x = np.zeros((3, 64), np.int32)
    with pytest.raises(ValueError, match="64 samples"):
        plan.windows(np.zeros((3, 63), np.int32))
    with pytest.raises(ValueError, match="2-D"):
        plan.windows(np.zeros(64, np.int64))
    with pytest.raises(ValueError, match="one DC code per window"):
        plan.windows(x, np.zeros(2, np.int32))
    with pytest.raises(ValueError, match=r"dcs\[1\] must be a 24-bit code"):
        plan.windows(x, np.array([0, 1 << 23, 0], np.int32))
    with pytest.raises(ValueError, match="dcs must fit int32"):
        plan.windows(x, np.array([0, 1 << 40, 0]))
    with pytest.raises(TypeError, match="dcs must hold integers"):
        plan.windows(x, np.array([0.5, 0, 0]))
    with pytest.raises(ValueError, match="threads"):
        plan.windows(x, threads=0)
    with pytest.raises(ValueError, match="layout"):
        core.LockinPlan([1 << 20], None, 64, filter="boxcar", layout="scaled")
    oi, oq = plan.windows(np.zeros((0, 64), np.int32))
    assert oi.shape == oq.shape == (0, 2)
    # Codes given as int64 are converted (no wrap: beyond int32 is refused).
    assert all(np.array_equal(a, b) for a, b in zip(plan.windows(x.astype(np.int64)), plan.windows(x)))
    with pytest.raises(ValueError, match="x must fit int32"):
        plan.windows(np.full((1, 64), 1 << 40))


def test_windows_status_codes():
    """The C entries refuse bad arguments before touching a window (direct lib use)."""
    m, n, K = 2, 64, 2
    steps = np.array([1 << 20, 3 << 20], np.uint32)
    k = core.bw3_coeffs_struct(COEFFS)
    x = np.zeros(K * n, np.int32)
    out_i, out_q = np.zeros(K * m, np.int32), np.zeros(K * m, np.int32)
    b_i, b_q = np.zeros(K * m, np.int64), np.zeros(K * m, np.int64)
    terms = ffi.new("hge_lockin_bw3_term_t[]", m)
    bterms = ffi.new("hge_lockin_boxcar_term_t[]", m)
    opts = ffi.new("hge_host_opts_t *")
    opts.isa, opts.threads, opts.pool = lib.HGE_ISA_AUTO, 1, lib.HGE_POOL_WORKERS
    refs = core.References(steps, None, n, layout="lanes")
    P = core._ptr
    st_, xp, oi, oq = P("uint32_t *", steps), P("int32_t *", x), P("int32_t *", out_i), P("int32_t *", out_q)
    bi, bq = P("int64_t *", b_i), P("int64_t *", b_q)

    def bw3(**kw):
        a = dict(coeffs=k, terms=terms, m=m, steps=st_, x=xp, n=n, K=K, refs=ffi.NULL, layout=lib.HGE_REFS_NONE,
                 stride=0, opts=opts, oi=oi)
        a.update(kw)
        return lib.hge_host_bw3_windows(a["coeffs"], a["terms"], a["m"], a["steps"], ffi.NULL, a["x"], a["n"],
                                        a["K"], ffi.NULL, a["refs"], a["layout"], a["stride"], a["opts"], a["oi"], oq)

    def box(**kw):
        a = dict(n=n, layout=lib.HGE_REFS_NONE, refs=ffi.NULL, stride=0)
        a.update(kw)
        return lib.hge_host_boxcar_windows(bterms, m, st_, ffi.NULL, xp, a["n"], K, ffi.NULL, a["refs"],
                                           a["layout"], a["stride"], opts, bi, bq)

    assert bw3() == lib.HGE_OK and box() == lib.HGE_OK
    assert bw3(K=0, x=ffi.NULL) == lib.HGE_ERR_NULL    # the pointers are checked even for no window
    assert bw3(K=0) == lib.HGE_OK
    for bad in ("coeffs", "terms", "x", "opts", "oi"):
        assert bw3(**{bad: ffi.NULL}) == lib.HGE_ERR_NULL, bad
    assert bw3(m=0) == lib.HGE_ERR_TERMINALS and bw3(m=lib.HGE_MAX_TERMINALS + 1) == lib.HGE_ERR_TERMINALS
    assert bw3(n=0) == lib.HGE_ERR_SIZE
    assert bw3(layout=lib.HGE_REFS_LANES) == lib.HGE_ERR_NULL          # a cache layout needs its cache
    rp = ffi.cast("void *", refs.pointer(0))
    assert bw3(layout=lib.HGE_REFS_LANES, refs=rp, stride=refs.stride) == lib.HGE_OK
    assert bw3(layout=lib.HGE_REFS_LANES, refs=rp, stride=refs.stride - 1) == lib.HGE_ERR_SIZE   # cache too short
    assert bw3(layout=lib.HGE_REFS_SCALED + 1, refs=rp, stride=refs.stride) == lib.HGE_ERR_RANGE
    assert box(layout=lib.HGE_REFS_SCALED, refs=rp, stride=refs.stride) == lib.HGE_ERR_RANGE
    assert box(n=lib.HGE_BOXCAR_MAX_SAMPLES + 1) == lib.HGE_ERR_SIZE
    for field, value in (("threads", 0), ("threads", lib.HGE_HOST_MAX_THREADS + 1), ("isa", 7), ("pool", 9)):
        saved = getattr(opts, field)
        setattr(opts, field, value)
        assert bw3() == lib.HGE_ERR_RANGE, field
        setattr(opts, field, saved)
    # A per-window failure: a step of 0 (no frequency) fails init, as hge_lockin_bw3_init does.
    zero = np.array([0, 1 << 20], np.uint32)
    assert bw3(steps=P("uint32_t *", zero)) == lib.HGE_ERR_FREQ


def _to_codes_rows(x, full_scale):
    """demod.to_codes row by row and the numpy DC formula: what core.codes_windows must equal."""
    from hge_embedded.demod import to_codes
    rows = [to_codes(r, full_scale) for r in x]
    codes = np.array([c for c, _ in rows], np.int32).reshape(x.shape)
    scale = np.array([s for _, s in rows])
    n = x.shape[1]
    dcs = (2 * codes.sum(axis=1, dtype=np.int64) + n) // (2 * n)
    return codes, scale, dcs


@settings(max_examples=60)
@given(st.integers(0, 2**31), st.integers(1, 5), st.integers(1, 600), st.sampled_from([None, 1.0, 37.5, 1e-300]),
       st.sampled_from(["normal", "ties", "edges", "zeros"]))
def test_codes_windows_equal_to_codes(seed, K, n, full_scale, kind):
    """Every window's codes, scale and DC code as demod.to_codes and the numpy mean formula make them:
    random values, exact ties (k + 1/2 codes, both signs), values at and just inside the clip edges,
    all-zero windows (scale 1)."""
    rng = np.random.default_rng(seed)
    fs = 1.0 if full_scale is None else full_scale
    if kind == "normal":
        x = rng.uniform(-1, 1, (K, n)) * fs
    elif kind == "ties":
        x = (rng.integers(-2**23 + 1, 2**23 - 1, (K, n)) + 0.5) * (fs / core.SAMPLE_MAX)
    elif kind == "edges":
        x = rng.choice([-1.0, 1.0, 1 - 1e-16, -(1 - 0.6 / 2**23), 1 - 0.4 / 2**23, 0.0], (K, n)) * fs
    else:
        x = np.zeros((K, n))
    if full_scale is not None:
        x = np.clip(x, -full_scale, full_scale)
    codes, scale, dcs = core.codes_windows(x, full_scale)
    want_c, want_s, want_d = _to_codes_rows(x, full_scale)
    assert np.array_equal(codes, want_c) and np.array_equal(scale, want_s) and np.array_equal(dcs, want_d)
    assert codes.dtype == np.int32 and dcs.dtype == np.int32
    for k in range(K):   # the C mean equals core.mean_code (every isa: test_lockin_bitexact)
        assert dcs[k] == core.mean_code(codes[k])
    c2, s2, d2 = core.codes_windows(x, full_scale, mean=False)
    assert d2 is None and np.array_equal(c2, codes) and np.array_equal(s2, scale)


def test_codes_windows_refuses_what_to_codes_refuses():
    x = np.zeros((2, 16))
    x[1, 3] = np.nan
    with pytest.raises(ValueError, match="finite"):
        core.codes_windows(x)
    x[1, 3] = np.inf
    with pytest.raises(ValueError, match="finite"):
        core.codes_windows(x, 5.0)
    x[1, 3] = 5.0 * (1 + 1e-9)
    with pytest.raises(ValueError, match=r"exceed full_scale = 5.0 \(largest \|sample\| 5.000000005"):
        core.codes_windows(x, 5.0)
    x[1, 3] = 5.0 * (1 + 1e-13)   # to_codes' own tolerance: accepted, clipped to the top code
    assert core.codes_windows(x, 5.0)[0][1, 3] == core.SAMPLE_MAX
    for bad in (0.0, -1.0, np.nan, np.inf):
        with pytest.raises((ValueError, TypeError), match="full_scale"):
            core.codes_windows(x, bad)
    with pytest.raises(ValueError, match="2-D"):
        core.codes_windows(np.zeros(16))
    c, s, d = core.codes_windows(np.zeros((0, 16)))
    assert c.shape == (0, 16) and s.shape == d.shape == (0,)
    # Direct C use: the status codes.
    xp = np.zeros(16)
    codes, scale, dcs = np.zeros(16, np.int32), np.zeros(1), np.zeros(1, np.int32)
    P = core._ptr
    call = lambda n=16, fs=0.0, x=P("double *", xp), isa=lib.HGE_ISA_AUTO: lib.hge_host_codes(  # noqa: E731
        x, 1, n, fs, P("int32_t *", codes), P("double *", scale), P("int32_t *", dcs), isa)
    assert call() == lib.HGE_OK and scale[0] == 1.0 / AUTO_CODE   # an all-zero window: unit 1 over the auto code
    assert call(x=ffi.NULL) == lib.HGE_ERR_NULL and call(n=0) == lib.HGE_ERR_SIZE
    assert call(fs=-1.0) == lib.HGE_ERR_RANGE and call(fs=float("inf")) == lib.HGE_ERR_RANGE
    assert call(fs=float("nan")) == lib.HGE_ERR_RANGE and call(isa=9) == lib.HGE_ERR_RANGE
