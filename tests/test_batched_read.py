"""The fast paths give what the plain paths give, bit for bit.

* ``HGEWindow.read_windows`` (all windows of a record in one go: one C plan, vectorised
  checks) equals ``HGEWindow.read`` window by window, on the simulator (both models) and
  on plain Python devices without ``full_scale`` / ``dac_lsb``;
* the trainer's step through it equals a step that reads window by window;
* ``demod.WindowDemodulator`` equals ``demodulate`` row by row (every engine and filter);
* ``saturation.saturated_counts`` equals ``saturated_samples`` row by row;
* the surrogate's chunked, in-place evaluation equals its one-shot formula;
* the hopping evaluator's vectorised greedy split of windows equals the chunk-by-chunk one.

Equality is exact (``np.array_equal``): the fast paths are meant to do the same floating
operations on the same numbers, so any difference is a bug, not round-off.
"""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from hge_embedded import devices
from hge_embedded.demod import WindowDemodulator, demodulate
from hge_embedded.devices import surrogate
from hge_embedded.devices.simulated import CHUNK, TAYLOR_RADIUS, FastEvaluator, SimulatedDNPU
from hge_embedded.devices.surrogate import SurrogateModel
from hge_embedded.gradient import HGEWindow
from hge_embedded.saturation import RUN_MIN, saturated_counts, saturated_samples
from tests.devices_for_tests import FiveElectrodeDevice, LinearDevice, trained


def _record(win, biases, ramp=150):
    """Windows at ``biases`` joined by linear ramps, as the trainer strings them; volts and slices."""
    parts, slices, pos, prev = [], [], 0, None
    for b in biases:
        w = win.waveform(b)
        if prev is not None:
            t = (np.arange(1, ramp + 1) / (ramp + 1))[None, :]
            parts.append(prev[:, None] + (w[:, :1] - prev[:, None]) * t)
            pos += ramp
        parts.append(w)
        slices.append(slice(pos, pos + w.shape[1]))
        pos += w.shape[1]
        prev = w[:, -1]
    return np.concatenate(parts, axis=1), slices


def _assert_same_as_one_by_one(win, y, volts, slices, stderr):
    z, g, se, b = win.read_windows(y, volts, slices, stderr=stderr)
    assert z.shape == g.shape == se.shape == (len(slices), win.idx.size)
    for k, s in enumerate(slices):
        z1, g1, se1, b1 = win.read(y[s], volts[:, s], stderr=stderr)
        assert np.array_equal(z[k], z1) and np.array_equal(g[k], g1)
        assert np.array_equal(se[k], se1, equal_nan=True) and np.array_equal(b[k], b1)
    assert np.all(np.isnan(se)) != stderr


@pytest.mark.parametrize("model", ["surrogate", "hopping"])
@pytest.mark.parametrize("stderr", [False, True])
def test_read_windows_equals_read_on_the_simulator(model, stderr):
    d = SimulatedDNPU(seed=3, model=model)
    win = HGEWindow(d, electrodes=[1, 3, 5, 7], T=0.05)
    rng = np.random.default_rng(0)
    biases = [rng.uniform(-0.7, 0.5, 7) for _ in range(6)]
    volts, slices = _record(win, biases)
    y = devices.measure(d, volts)
    _assert_same_as_one_by_one(win, y, volts, slices, stderr)


@pytest.mark.parametrize("filter_, engine", [("butterworth3", "c"), ("boxcar", "c"), ("butterworth3", "fixed")])
@pytest.mark.parametrize("stderr", [False, True])
def test_read_windows_equals_read_on_plain_devices(filter_, engine, stderr):
    """No full_scale, no dac_lsb (each window scaled by its own peak), the phase estimator's calibration."""
    for d, phase in ((FiveElectrodeDevice(S=1e-6, seed=1), "calibrated"),
                     (LinearDevice([3.0, -1.0, 0.5, 2.0], S=1e-4, seed=2), "inphase")):
        T = 0.05 if engine == "fixed" else 0.1
        win = HGEWindow(d, electrodes=[1, 2, 4], T=T, filter=filter_, engine=engine, phase=phase)
        rng = np.random.default_rng(1)
        biases = [rng.uniform(-0.5, 0.5, d.n_electrodes) for _ in range(4)]
        volts, slices = _record(win, biases, ramp=37)
        y = devices.measure(d, volts)
        _assert_same_as_one_by_one(win, y, volts, slices, stderr)


def test_read_windows_names_the_saturated_window():
    d = LinearDevice([3.0, -1.0, 0.5], full_scale=2.0)
    win = HGEWindow(d, electrodes=[1, 2], T=0.05, phase="inphase")
    volts, slices = _record(win, [np.full(3, 0.1), np.full(3, 0.9), np.full(3, 0.1)])
    y = devices.measure(d, volts)
    with pytest.raises(ValueError, match="point 1:"):
        win.read_windows(y, volts, slices, labels=lambda k: f"point {k}")
    win_count = HGEWindow(d, electrodes=[1, 2], T=0.05, phase="inphase", saturation="count")
    win_count.read_windows(y, volts, slices)
    assert win_count.last_saturated == saturated_samples(np.clip(y[slices[1]], -2, 2), 2.0) > 0


def test_read_windows_refuses_a_slice_of_the_wrong_length():
    d = LinearDevice([3.0, -1.0])
    win = HGEWindow(d, T=0.05, phase="inphase")
    volts, slices = _record(win, [np.zeros(2)])
    y = devices.measure(d, volts)
    with pytest.raises(ValueError, match=f"expected a slice of {win.n} consecutive samples"):
        win.read_windows(y, volts, [slice(0, win.n - 8)])
    with pytest.raises(ValueError, match="step 2"):
        win.read_windows(y, volts, [slice(0, 2 * win.n, 2)] if y.size >= 2 * win.n else [slice(None, None, 2)])
    with pytest.raises(ValueError, match="not a slice"):
        win.read_windows(y, volts, [(0, win.n)])


_READ_WINDOWS = HGEWindow.read_windows


def _read_one_by_one(self, y, volts, slices, sel=None, stderr=True, labels=None, bias=True):
    """``read_windows`` as ``read`` window by window (``read`` itself reads one window)."""
    if len(slices) == 1:
        return _READ_WINDOWS(self, y, volts, slices, sel, stderr=stderr, labels=labels, bias=bias)
    rows = [self.read(y[s], volts[:, s], sel, stderr=stderr, label=labels(k) if callable(labels) else "w")
            for k, s in enumerate(slices)]
    return tuple(np.array([r[i] for r in rows]) for i in range(4))


@pytest.mark.parametrize("case", ["sim-sphere", "plain-gate"])
def test_trainer_steps_equal_the_window_by_window_path(case, monkeypatch):
    batched = trained(case, sphere_batch=40, sphere_iter=2, gate_iter=4)
    monkeypatch.setattr(HGEWindow, "read_windows", _read_one_by_one)
    one_by_one = trained(case, sphere_batch=40, sphere_iter=2, gate_iter=4)
    assert batched[0] == one_by_one[0]
    assert np.array_equal(batched[1], one_by_one[1]) and np.array_equal(batched[2], one_by_one[2])


@given(seed=st.integers(0, 2**31 - 1), peak=st.sampled_from([None, 50.0]),
       filt=st.sampled_from(["butterworth3", "boxcar"]))
def test_window_demodulator_equals_demodulate(seed, peak, filt):
    rng = np.random.default_rng(seed)
    fs, n = 10_000.0, 400
    freqs = rng.choice(np.arange(1, 40), 3, replace=False) * fs / n if filt == "boxcar" else \
        np.sort(rng.uniform(50, 600, 3))
    x = rng.normal(0, 10, (4, n)) + rng.normal(0, 5, (4, 1))
    x[1] = 0.0                       # an all-zero window: to_codes' scale of 1
    x[2, ::2] = 0.5                  # ties in the rounding of the mean
    x[2, 1::2] = -0.5
    engines = ["c", "fixed", "float"] if seed % 5 == 0 else ["c"]  # the integer model is slow
    for engine in engines:
        X, Y = WindowDemodulator(fs, freqs, n, engine=engine, filter=filt, full_scale=peak)(x)
        for k in range(x.shape[0]):
            d = demodulate(x[k], fs, freqs, engine=engine, filter=filt, full_scale=peak)
            assert np.array_equal(X[k], d.X) and np.array_equal(Y[k], d.Y)


def test_window_demodulator_checks_its_input():
    wd = WindowDemodulator(10_000.0, [100.0, 230.0], 800, full_scale=10.0)
    with pytest.raises(ValueError, match="full_scale"):
        wd(np.full((2, 800), 11.0))
    with pytest.raises(ValueError, match="800 samples"):
        wd(np.zeros((2, 400)))
    with pytest.raises(ValueError, match="finite"):
        wd(np.full((1, 800), np.nan))


@given(seed=st.integers(0, 2**31 - 1))
def test_saturated_counts_equal_saturated_samples(seed):
    rng = np.random.default_rng(seed)
    y = rng.normal(0, 1, (6, 200))
    y[1, 50:50 + RUN_MIN] = y[1].max() + 1.0           # a stuck run at the top
    y[2, 10:10 + RUN_MIN - 1] = y[2].min() - 1.0       # one sample short of a run
    y[3, ::3] = y[3].min() - 1.0                        # many extremes, no run
    y[4] = 0.0                                          # flat
    y[5, :30] = 2.5                                     # on a stated rail
    for fs in (None, 2.5, 1.0):
        expect = [saturated_samples(row, fs) for row in y]
        assert saturated_counts(y, fs).tolist() == expect


@pytest.mark.parametrize("n", [1, 3, surrogate.CHUNK - 1, surrogate.CHUNK, surrogate.CHUNK + 1, surrogate.CHUNK + 3,
                               2 * surrogate.CHUNK + 1, 3 * surrogate.CHUNK + 17])
def test_surrogate_chunked_equals_one_shot(n):
    m = SurrogateModel(seed=2)
    V = np.random.default_rng(n).uniform(-1.2, 0.7, (7, n))
    u = m.W1 @ V + m.b1[:, None]
    e = np.exp(-u * u)
    p = np.tanh(m.W2 @ (2.0 * e - 1.0) + m.b2[:, None])
    assert np.array_equal(m.current(V), m.scale * (m.c @ p))
    dp = m.c[:, None] * (1.0 - p * p)
    assert np.array_equal(m.gradient(V), m.scale * (m.W1.T @ ((m.W2.T @ dp) * (-4.0 * u * e))))


def _greedy_reference(lo, hi, lim):
    """The chunk-by-chunk greedy split on plain floats (the evaluator's earlier code)."""
    lo_l, hi_l = lo.T.tolist(), hi.T.tolist()
    out, c = [], 0
    while c < len(lo_l):
        r_lo, r_hi, cs = lo_l[c], hi_l[c], c
        c += 1
        while c < len(lo_l):
            n_lo = [min(p, q) for p, q in zip(r_lo, lo_l[c])]
            n_hi = [max(p, q) for p, q in zip(r_hi, hi_l[c])]
            if max(q - p for p, q in zip(n_lo, n_hi)) > lim:
                break
            r_lo, r_hi, c = n_lo, n_hi, c + 1
        out.append((cs, c, r_lo, r_hi))
    return out


def test_hopping_window_split_equals_the_greedy_reference():
    """Windows 20 mV apart joined by short ramps: every stretch of small chunks needs splitting."""
    d = SimulatedDNPU(seed=1, model="hopping", noise=False)
    win = HGEWindow(d, electrodes=[1, 3, 5, 7], T=0.05, phase="inphase")
    rng = np.random.default_rng(5)
    b0 = rng.uniform(-0.5, 0.3, 7)
    biases = [b0 + 0.02 * k * np.array([0, 1, 0, 1, 0, 1, 0]) for k in range(8)]
    volts, _ = _record(win, biases, ramp=40)
    v = d._dac(volts)
    runs = FastEvaluator(d.model, d.dac_lsb)._runs(v)
    # Rebuild what the split saw and split it with the reference.
    N = v.shape[1]
    starts = np.arange(0, N, CHUNK)
    lo = np.minimum.reduceat(v, starts, axis=1)
    hi = np.maximum.reduceat(v, starts, axis=1)
    lim = 2 * TAYLOR_RADIUS
    small = np.max(hi - lo, axis=0) <= lim
    assert small.all()  # the ramps are small here: one stretch over the whole record
    ref = _greedy_reference(lo, hi, lim)
    assert len(ref) >= 4 and len(runs) == len(ref)
    for (cs, ce, _, _), run in zip(ref, runs):
        assert run[0] <= starts[cs] and run[1] >= min(N, starts[ce - 1] + CHUNK)  # grown, never shrunk
    # The boxes before growing are the reference's: the split itself is identical.
    ev = FastEvaluator(d.model, d.dac_lsb)
    ev._grow_runs = lambda v, runs: None  # no growing: the split alone
    for (cs, ce, r_lo, r_hi), run in zip(ref, ev._runs(v)):
        assert run[0] == starts[cs] and run[1] == min(N, starts[ce - 1] + CHUNK)
        assert np.array_equal(run[2], np.array(r_lo)) and np.array_equal(run[3], np.array(r_hi))


@pytest.mark.parametrize("sel", [None, [1], [0, 2]])
def test_waveform_equals_perturbation_waveform(sel):
    """The window's cached tones add up to what ``perturbation_waveform`` builds each time."""
    from hge_embedded.gradient import perturbation_waveform
    d = SimulatedDNPU(seed=0, noise=False)
    win = HGEWindow(d, electrodes=[2, 4, 6], T=0.05, amplitudes=[0.008, 0.01, 0.012])
    s = np.arange(3) if sel is None else np.array(sel)
    for b in (np.zeros(7), np.linspace(-0.5, 0.5, 7)):
        for _ in range(2):  # built, then cached
            ref = perturbation_waveform(b, win.idx[s], win.amps[s], win.freqs[s], win.n, win.fs)
            assert np.array_equal(win.waveform(b, sel), ref)


def test_measure_runs_the_model_on_one_blas_thread_and_restores_the_callers_setting():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    seen = []

    class Spy:
        def __init__(self, fail=False):
            self.inner, self.fail = SurrogateModel(0), fail

        def current(self, V):
            seen.append([i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"])
            if self.fail:
                raise RuntimeError("model failed")
            return self.inner.current(V)

        gradient = None

    def blas_threads():
        return [i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"]
    if not blas_threads():
        pytest.skip("no BLAS library that threadpoolctl can see")
    with threadpoolctl.threadpool_limits(2, user_api="blas"):
        mine = blas_threads()
        d = SimulatedDNPU(seed=0, model=Spy(), noise=False)
        d.measure(np.zeros((7, 50)))
        assert seen[-1] and all(n == 1 for n in seen[-1])
        assert blas_threads() == mine
        d_fail = SimulatedDNPU(seed=0, model=Spy(fail=True), noise=False)
        with pytest.raises(RuntimeError, match="model failed"):
            d_fail.measure(np.zeros((7, 50)))
        assert all(n == 1 for n in seen[-1]) and blas_threads() == mine


def test_demodulators_are_shared_while_small(monkeypatch):
    """Two windows of one plan share one WindowDemodulator (its C plan and references built once);
    above SHARED_DEMOD_BYTES each window keeps its own, with the same results."""
    from hge_embedded import gradient
    d = LinearDevice([3.0, -1.0, 0.5], S=1e-4, seed=3)
    a, b = (HGEWindow(d, T=0.05, phase="inphase") for _ in range(2))
    volts, slices = _record(a, [np.zeros(3), np.full(3, 0.2)])
    y = devices.measure(d, volts)
    za = a.read_windows(y, volts, slices)
    b.read_windows(y, volts, slices)
    assert a._demods[tuple(a.freqs)] is b._demods[tuple(b.freqs)]
    monkeypatch.setattr(gradient, "SHARED_DEMOD_BYTES", 0)
    c = HGEWindow(d, T=0.05, phase="inphase")
    zc = c.read_windows(y, volts, slices)
    assert c._demods[tuple(c.freqs)] is not a._demods[tuple(a.freqs)]
    for u, w in zip(za, zc):
        assert np.array_equal(u, w, equal_nan=True)


def test_read_windows_refuses_volts_that_do_not_match_the_record():
    d = LinearDevice([3.0, -1.0])
    win = HGEWindow(d, T=0.05, phase="inphase")
    volts, slices = _record(win, [np.zeros(2)])
    y = devices.measure(d, volts)
    with pytest.raises(ValueError, match="volts"):
        win.read_windows(y, volts[:, :-1], slices)


@pytest.mark.parametrize("n", [1000, 16 * 1024 - 1, 16 * 1024, 40_001])
def test_surrogate_threads_give_the_same_record(n):
    """Blocks of whole chunks on several threads: the same samples as one thread (and the same noise).
    The exact per-sample path (``evaluation="exact"``), where the surrogate's blocks run on threads."""
    V = np.random.default_rng(n).uniform(-1.2, 0.7, (7, n))
    ref = SimulatedDNPU(seed=4, threads=1, evaluation="exact").measure(V)
    for threads in (2, 3):
        assert np.array_equal(SimulatedDNPU(seed=4, threads=threads, evaluation="exact").measure(V), ref)


@pytest.mark.parametrize("model", ["surrogate", "hopping"])
def test_threads_give_the_same_record(model):
    """Both models' evaluators (the surrogate's window expansion, the hopping model's batches): windows,
    ramps and arbitrary samples filled on several threads give the same samples as one thread."""
    records = []
    for threads in (1, 2, 3):
        d = SimulatedDNPU(seed=2, model=model, threads=threads)
        win = HGEWindow(d, electrodes=[1, 3, 5, 7], T=0.05, phase="inphase")
        rng = np.random.default_rng(7)
        volts, _ = _record(win, [rng.uniform(-0.7, 0.5, 7) for _ in range(40)], ramp=60)
        volts = np.concatenate([volts, rng.uniform(-0.5, 0.3, (7, 50))], axis=1)  # arbitrary samples: exact
        records.append(d.measure(volts))
    assert np.array_equal(records[0], records[1]) and np.array_equal(records[0], records[2])


def test_surrogate_blocks_cover_the_record_on_chunk_boundaries():
    from hge_embedded.devices.simulated import surrogate_blocks
    for n in (1, 1023, 1024, 5000, 345_000):
        for workers in (1, 2, 4):
            b = surrogate_blocks(n, workers)
            assert b[0][0] == 0 and b[-1][1] == n and all(p[1] == q[0] for p, q in zip(b, b[1:]))
            assert all(s % surrogate.CHUNK == 0 for s, _ in b)
            assert len(b) == max(1, min(workers, n // surrogate.CHUNK))


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_simulator_refuses_bad_threads(bad):
    with pytest.raises(ValueError, match="threads"):
        SimulatedDNPU(threads=bad)
