"""The session-4 fast paths of a training iteration against the plain paths they replace.

Exact (``np.array_equal``) where the fast path does the same floating operations on the same
numbers: the fused voltage gate, the record written in one pass, the vectorised run growth and
straight-line test, the batched window read. Within a derived round-off bound where it does not:
the ramps' Hermite fill, whose three 7-term dot products are now sums in electrode order instead
of BLAS calls (derivation at ``_ramp_roundoff_bound``).
"""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from hge_embedded.devices import check_volts
from hge_embedded.devices.simulated import CHUNK, FastEvaluator, SimulatedDNPU
from hge_embedded.train import Trainer
from hge_embedded.tasks import gate, map_electrodes, sphere
from tests.devices_for_tests import FiveElectrodeDevice, LinearDevice, random_knot_values, random_ramps, trained

U = 2.0**-53                      # unit round-off of float64
GAMMA7 = 7 * U / (1 - 7 * U)      # Higham's gamma_7: any order of a 7-term dot, FMA or not


# -- the voltage gate: two reductions per electrode instead of three passes -----------------------

def _gate_reference(v, lim):
    """The gate as it was (three passes): None if it passes, else the message it raised."""
    if not np.all(np.isfinite(v)):
        return "must be finite"
    bad = (v < lim[:, :1]) | (v > lim[:, 1:])
    if bad.any():
        e, k = np.argwhere(bad)[0]
        return f"electrode {e + 1} at sample {k} is"
    return None


@given(seed=st.integers(0, 2**31 - 1), n=st.integers(1, 300),
       poison=st.sampled_from(["none", "nan", "inf", "-inf", "high", "low", "edge"]),
       rows=st.integers(1, 7))
def test_fused_gate_refuses_exactly_what_the_three_passes_refused(seed, n, poison, rows):
    rng = np.random.default_rng(seed)
    lim = np.sort(rng.uniform(-2, 2, (rows, 2)), axis=1)
    v = lim[:, :1] + (lim[:, 1:] - lim[:, :1]) * rng.uniform(0, 1, (rows, n))
    e, k = rng.integers(rows), rng.integers(n)
    if poison == "edge":   # exactly on a limit: allowed
        v[e, k] = lim[e, rng.integers(2)]
    elif poison != "none":
        v[e, k] = {"nan": np.nan, "inf": np.inf, "-inf": -np.inf,
                   "high": np.nextafter(lim[e, 1], np.inf), "low": np.nextafter(lim[e, 0], -np.inf)}[poison]
    want = _gate_reference(v, lim)
    if want is None:
        assert check_volts(v, lim) is not None
    else:
        with pytest.raises(ValueError, match=want):
            check_volts(v, lim)


# -- the iteration's record, written in one pass -----------------------------------------------------

@pytest.mark.parametrize("device", ["simulator", "plain"])
@given(seed=st.integers(0, 2**31 - 1), k=st.integers(1, 12), ramp=st.sampled_from([0.0, 0.0001, 0.015]))
def test_string_windows_equals_the_window_by_window_record(device, seed, k, ramp):
    if device == "simulator":
        d, task = SimulatedDNPU(seed=0, noise=False), sphere(0)
    else:  # a plain Python device: no dac_lsb, no full_scale, 5 electrodes
        d, task = FiveElectrodeDevice(seed=1), map_electrodes(gate("xor"), 5, inputs=[1, 2])
    tr = Trainer(d, task, seed=seed, ramp=ramp, max_iter=1)
    tr.initialise()
    rng = np.random.default_rng(seed)
    ctl = tr.controls()
    biases = [tr._bias(task.inputs[j], ctl) for j in rng.integers(0, len(task.targets), k)]
    v1, s1 = tr._string(biases, tr.window.waveform)
    v2, s2 = tr._string_windows(biases)
    assert np.array_equal(v1, v2) and s1 == s2
    assert v2.flags.c_contiguous


def test_string_windows_goes_through_the_voltage_gate():
    d = LinearDevice(np.array([1.0, -2.0, 3.0]), limits=[[-1, 1], [-1, 1], [-0.5, 0.5]])
    task = map_electrodes(gate("and"), 3, inputs=[1, 2])
    tr = Trainer(d, task, seed=0, max_iter=1)
    tr.initialise()
    b = tr._bias(task.inputs[0], tr.controls())
    b[2] = 0.5  # the perturbation carries electrode 3 above its 0.5 V limit
    with pytest.raises(ValueError, match="electrode 3 at sample"):
        tr._string_windows([b, b])


# -- the simulator's run growth and straight-line test, vectorised ------------------------------------

def _grow_sequential(ev, v, runs):
    """Run growth as before session 4: run by run, each left edge bounded by the previous grown end."""
    starts, prev_end = [r[0] for r in runs], 0
    for k, run in enumerate(runs):
        nxt = starts[k + 1] if k + 1 < len(runs) else v.shape[1]
        ev._grow_one(v, run, run[0], run[1], run[2], run[3], prev_end, nxt)
        prev_end = run[1]


@given(seed=st.integers(0, 2**31 - 1), parts=st.integers(1, 10), gap=st.integers(0, 3 * CHUNK))
def test_vectorised_run_growth_equals_the_run_by_run_growth(seed, parts, gap):
    """Flat windows with wiggles of random size, joined by ramps of ``gap`` samples: small gaps
    make neighbours compete for samples (the in-order repair), large ones do not."""
    rng = np.random.default_rng(seed)
    blocks = []
    for _ in range(parts):
        n = int(rng.integers(1, 150))
        blocks.append(rng.uniform(-0.5, 0.5, (7, 1)) + rng.uniform(0, 0.03) * rng.standard_normal((7, n)))
        if gap:
            blocks.append(np.linspace(blocks[-1][:, -1], rng.uniform(-0.5, 0.5, 7), gap, axis=1))
    v = np.concatenate(blocks, axis=1)
    ev = FastEvaluator(SimulatedDNPU(seed=0, noise=False).model, 20 / 2**16)
    fast = ev._runs(v)
    ev._grow_runs = lambda v, runs: _grow_sequential(ev, v, runs)
    slow = ev._runs(v)
    assert len(fast) == len(slow)
    for a, b in zip(fast, slow):
        assert a[:2] == b[:2] and np.array_equal(a[2], b[2]) and np.array_equal(a[3], b[3])


@given(seed=st.integers(0, 2**31 - 1), n_segs=st.integers(1, 8))
def test_line_segments_equal_the_per_segment_test(seed, n_segs):
    rng = np.random.default_rng(seed)
    lsb = 20 / 2**16
    ev = FastEvaluator(SimulatedDNPU(seed=0, noise=False).model, lsb)
    pieces, segs, pos = [], [], 0
    for _ in range(n_segs):
        n = int(rng.integers(1, 60))
        kind = rng.integers(3)
        a, b = rng.uniform(-0.5, 0.5, 7), rng.uniform(-0.5, 0.5, 7)
        x = np.linspace(a, b, n, axis=1)
        if kind == 1:    # quantised: off the line by < 1 LSB (a ramp)
            x = np.round(x / lsb) * lsb
        elif kind == 2:  # a kink of a few LSB somewhere (not a ramp, or just about)
            x[:, rng.integers(n)] += rng.uniform(0, 6) * lsb
        pieces.append(x)
        gap = int(rng.integers(0, 3))
        pieces.append(rng.uniform(-1, 1, (7, gap)))
        segs.append((pos, pos + n))
        pos += n + gap
    v = np.concatenate(pieces, axis=1)
    want = [e - s >= 3 and np.max(np.abs(np.diff(v[:, s:e], 2, axis=1))) <= ev.line_tol for s, e in segs]
    assert ev._line_segments(v, segs).tolist() == want


# -- the ramps' Hermite fill: round-off bound -------------------------------------------------------

def _ramp_reference(v, s, e, t_knots, k0, I, G):
    """The ramp branch of FastEvaluator._fill before session 4 (BLAS dot products), and the
    quantities the bound needs."""
    seg = v[:, s:e]
    delta = seg[:, -1] - seg[:, 0]
    dd = max(float(delta @ delta), 1e-300)
    t = (delta @ (seg - seg[:, :1])) / dd
    j = np.clip(np.searchsorted(t_knots, t, side="right") - 1, 0, t_knots.size - 2)
    h = t_knots[j + 1] - t_knots[j]
    u = (t - t_knots[j]) / h
    y0, y1 = I[k0 + j], I[k0 + j + 1]
    G0, G1 = G[:, k0 + j], G[:, k0 + j + 1]
    m0 = (delta @ G0) * h
    m1 = (delta @ G1) * h
    u2, u3 = u * u, u * u * u
    y = (2 * u3 - 3 * u2 + 1) * y0 + (u3 - 2 * u2 + u) * m0 + (-2 * u3 + 3 * u2) * y1 + (u3 - u2) * m1
    off = seg - (seg[:, :1] + t * delta[:, None])
    gl = (1 - u) * G0 + u * G1
    out = y + np.sum(gl * off, axis=0)
    q = dict(seg=seg, delta=delta, dd=dd, t=t, h=h, u=u, y0=y0, y1=y1, G0=G0, G1=G1, m0=m0, m1=m1,
             off=off, gl=gl)
    return out, q


def _ramp_roundoff_bound(q):
    """|fast - reference| per sample, derived.

    Both paths evaluate the same formula; they differ in how three 7-term dot products are
    summed (BLAS vs electrode order) and in dd = delta . delta. Any order, with or without FMA,
    is within gamma_7 sum|a_i b_i| of the exact dot (Higham, Accuracy and Stability, 3.1), so the
    two differ by at most 2 gamma_7 sum|a_i b_i|. Propagated to first order:

    * t = num / dd:  dt <= 2 gamma_7 (sum|delta_i x_i| + |t| dd) / dd + 2 u |t| (the divisions
      round different numbers);
    * u = (t - t_j) / h:  du <= dt / h + 2 u |u|; if t crosses a knot, the Hermite piece
      changes, but the interpolant is C^1 at knots, so the same derivative bound holds;
    * y(u):  |dy/du| <= 1.5 |y1 - y0| + |m0| + |m1| (max over [0, 1] of the Hermite basis
      derivatives: 6 u (1 - u) <= 1.5, |3u^2 - 4u + 1| <= 1, |3u^2 - 2u| <= 1);
    * m0, m1:  dm <= 2 gamma_7 h sum|delta_i G_i|, weighted by |u^3 - 2u^2 + u|, |u^3 - u^2| <= 4/27;
    * the correction sum gl_i off_i:  off moves by dt |delta_i|, gl by du |G1_i - G0_i|;
    * the remaining operations round their (now slightly different) operands: each of the two
      results is within 16 u of its exact value relative to the sum of the magnitudes of its
      terms (at most 8 roundings per term, basis values <= 1), so 2 x 16 u x that sum.

    The first-order terms are doubled to cover second order (dt, du ~ 1e-15 here: the
    neglected products are ~1e-30 relative)."""
    x = q["seg"] - q["seg"][:, :1]
    d = np.abs(q["delta"])[:, None]
    dt = 2 * GAMMA7 * (np.sum(d * np.abs(x), axis=0) + np.abs(q["t"]) * q["dd"]) / q["dd"] + 2 * U * np.abs(q["t"])
    du = dt / q["h"] + 2 * U * np.abs(q["u"])
    dydu = 1.5 * np.abs(q["y1"] - q["y0"]) + np.abs(q["m0"]) + np.abs(q["m1"])
    dm = 2 * GAMMA7 * q["h"] * (np.sum(d * np.abs(q["G0"]), axis=0) + np.sum(d * np.abs(q["G1"]), axis=0))
    dcorr = np.sum(np.abs(q["gl"]) * d, axis=0) * dt + np.sum(np.abs(q["off"]) * np.abs(q["G1"] - q["G0"]), axis=0) * du
    terms = (np.abs(q["y0"]) + np.abs(q["y1"]) + np.abs(q["m0"]) + np.abs(q["m1"])
             + np.sum(np.abs(q["gl"] * q["off"]), axis=0))
    return 2 * (dydu * du + 4 / 27 * dm + dcorr) + 2 * 16 * U * terms


def _check_ramps(v, ramps, I, G):
    n_pts = max(k0 + t.size for _, _, t, k0 in ramps)
    out = np.full(v.shape[1], np.nan)
    FastEvaluator._fill_ramps(out, v, ramps, I, G, n_pts)
    for s, e, t_knots, k0 in ramps:
        ref, q = _ramp_reference(v, s, e, t_knots, k0, I, G)
        bound = _ramp_roundoff_bound(q)
        assert np.all(np.abs(out[s:e] - ref) <= bound), (np.max(np.abs(out[s:e] - ref)), bound.min())
    return out


@given(seed=st.integers(0, 2**31 - 1), n_ramps=st.integers(1, 6))
def test_ramp_fill_within_the_roundoff_bound_of_the_ramp_by_ramp_fill(seed, n_ramps):
    rng = np.random.default_rng(seed)
    v, ramps, k0 = random_ramps(rng, n_ramps)
    I, G = random_knot_values(rng, k0)
    out = _check_ramps(v, ramps, I, G)
    assert np.all(np.isfinite(out[np.concatenate([np.arange(s, e) for s, e, _, _ in ramps])]))


def test_ramp_fill_on_a_sphere_record_is_within_the_bound_and_tiny():
    """A real iteration's record (300 windows, 299 ramps) on the surrogate, at its own knots."""
    d = SimulatedDNPU(seed=0, noise=False)
    tr = Trainer(d, sphere(0), seed=0, max_iter=1)
    tr.initialise()
    ctl = tr.controls()
    volts, _ = tr._string_windows([tr._bias(x, ctl) for x in tr.task.inputs])
    v = d._dac(volts)
    ev = d._fast
    runs = ev._runs(v)
    free = np.ones(v.shape[1], bool)
    for s, e, _, _ in runs:
        free[s:e] = False
    edges = np.flatnonzero(np.diff(np.concatenate([[0], free.astype(np.int8), [0]])))
    segs = list(zip(edges[::2].tolist(), edges[1::2].tolist()))
    ramps, pts, k0 = [], [], 0
    for (s, e), line in zip(segs, ev._line_segments(v, segs)):
        if line:
            span = np.max(np.abs(v[:, e - 1] - v[:, s]))
            t_knots = ev._knots(max(1, int(np.ceil(span / ev.ramp_knot))))
            ramps.append((s, e, t_knots, k0))
            pts.append(v[:, s:s + 1] + t_knots[None, :] * (v[:, e - 1] - v[:, s])[:, None])
            k0 += t_knots.size
    assert len(ramps) >= 250
    P = np.concatenate(pts, axis=1)
    I, G, _ = d.model.current_and_gradient(P)
    out = _check_ramps(v, ramps, I, G)
    ref = np.concatenate([_ramp_reference(v, s, e, t, k, I, G)[0] for s, e, t, k in ramps])
    got = np.concatenate([out[s:e] for s, e, _, _ in ramps])
    # What it means for a measurement: far below the 24-bit ADC's step (110 nA / 2^23 = 1.3e-5 nA).
    assert np.max(np.abs(got - ref)) < 1e-3 * 110 / 2**23


# -- a whole training iteration: the same losses and steps as before ---------------------------------

@pytest.mark.parametrize("case", ["sim-sphere", "plain-gate"])
def test_trainer_step_equals_the_window_by_window_record(case, monkeypatch):
    """The step through the one-pass record equals the step through ``_string`` window by window
    (the plain device has no dac_lsb, no full_scale and 5 electrodes)."""
    fast = trained(case, sphere_batch=30, sphere_iter=2, gate_iter=3)
    monkeypatch.setattr(Trainer, "_string_windows", lambda self, b: self._string(b, self.window.waveform))
    slow = trained(case, sphere_batch=30, sphere_iter=2, gate_iter=3)
    assert fast[0] == slow[0]
    assert np.array_equal(fast[1], slow[1]) and np.array_equal(fast[2], slow[2])


# -- the batched window read, on one electrode and on several -----------------------------------------

@pytest.mark.parametrize("case", ["sequential", "two", "all"])
@pytest.mark.parametrize("phase", ["calibrated", "magnitude"])
def test_read_windows_equals_read_for_every_selection(case, phase):
    """One perturbed electrode too (sequential mode's windows): numpy's complex loops and BLAS
    can round a (K, 1) or stacked operation differently from the 1-D one (seen), which the
    batched read must not do."""
    d = SimulatedDNPU(seed=2)
    from hge_embedded.gradient import HGEWindow
    sel = [2] if case == "sequential" else None
    win = HGEWindow(d, mode="sequential" if case == "sequential" else "parallel", phase=phase,
                    electrodes=[1, 4] if case == "two" else None)
    rng = np.random.default_rng(4)
    biases = [rng.uniform(-0.6, 0.4, 7) for _ in range(4)]
    win.calibrate_at(biases[0])
    s = None if sel is None else np.array(sel)
    parts, slices, pos = [], [], 0
    for b in biases:
        parts.append(win.waveform(b, s))
        slices.append(slice(pos, pos + win.n))
        pos += win.n
    volts = np.concatenate(parts, axis=1)
    from hge_embedded.devices import measure
    y = measure(d, volts)
    z, g, se, bias = win.read_windows(y, volts, slices, s)
    for k, sl in enumerate(slices):
        z1, g1, se1, b1 = win.read(y[sl], volts[:, sl], s)
        assert np.array_equal(z[k], z1) and np.array_equal(g[k], g1)
        assert np.array_equal(se[k], se1) and np.array_equal(bias[k], b1)


# -- the per-call memos of extract_gradient ----------------------------------------------------------

def test_calibration_at_memo_follows_a_changed_calibration():
    from hge_embedded.calibration import Calibration
    cal = Calibration(np.array([10.0, 20.0, 40.0]), np.array([1.0 + 0.1j, 0.9 - 0.2j, 0.5 + 0.5j]), "loopback")
    f = np.array([15.0, 30.0])
    first = cal.at(f)
    first[:] = 0  # the caller's copy: the memo is not changed through it
    assert np.array_equal(cal.at(f), cal._at(f)) and np.all(cal.at(f) != 0)
    cal.response = cal.response * 2  # a changed calibration is not answered from the memo
    assert np.array_equal(cal.at(f), cal._at(f))
    assert np.allclose(np.abs(cal.at(f)), 2 * np.abs(Calibration(cal.freqs, cal.response / 2, "x").at(f)))
    with pytest.raises(ValueError, match="calibration covers"):
        cal.at([5.0])


def test_log_memo_only_for_read_only_arrays():
    from hge_embedded.analysis import _log
    a = np.linspace(1.0, 100.0, 50)
    assert np.array_equal(_log(a), np.log(a))
    a[:] = 3.0  # writeable: never memoised
    assert np.array_equal(_log(a), np.log(a))
    b = np.linspace(1.0, 100.0, 50).copy()   # owns its data (np.linspace may return a view)
    b.flags.writeable = False
    assert _log(b) is _log(b) and np.array_equal(_log(b), np.log(b))


def test_noise_aside_and_tensor_batches_on_threads_give_the_same_records():
    """Long records (noise drawn on a pool thread, > TENSOR_BATCH windows' derivatives on the
    threads), twice in a row (the noise continues): the same samples as on one thread."""
    from hge_embedded.devices.simulated import NOISE_ASIDE, TENSOR_BATCH
    from hge_embedded.gradient import HGEWindow
    out = []
    for threads in (1, 2):
        d = SimulatedDNPU(seed=5, threads=threads)
        win = HGEWindow(d, electrodes=[2, 4, 6], T=0.01, phase="inphase", filter="boxcar", check=False,
                        freqs=[500.0, 700.0, 900.0])
        rng = np.random.default_rng(1)
        biases = [rng.uniform(-0.6, 0.4, 7) for _ in range(TENSOR_BATCH + 20)]
        volts = np.concatenate([win.waveform(b) for b in biases], axis=1)
        assert volts.shape[1] >= NOISE_ASIDE
        out.append(np.concatenate([d.measure(volts), d.measure(volts[:, ::-1])]))
    assert np.array_equal(out[0], out[1])


def test_window_derivatives_on_threads_from_a_fresh_model():
    """The first derivatives of a fresh surrogate, batches on two threads at once: its lazily made
    weight powers must be seen whole by both (a half-made pair raised AttributeError, now and then)."""
    from hge_embedded.devices.simulated import TENSOR_BATCH
    from hge_embedded.devices.surrogate import SurrogateModel
    C = np.random.default_rng(0).uniform(-0.6, 0.4, (7, 3 * TENSOR_BATCH))
    ref = FastEvaluator(SurrogateModel(3), 20 / 2**16, threads=1)._tensors(C)
    for _ in range(20):
        got = FastEvaluator(SurrogateModel(3), 20 / 2**16, threads=2)._tensors(C)
        assert all(np.array_equal(a, b) for a, b in zip(got, ref))
