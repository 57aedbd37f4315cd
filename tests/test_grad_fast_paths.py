"""extract_gradient's per-call fast paths against the reference they replace (session 6)."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from hge_embedded.devices import check_volts
from hge_embedded.devices.simulated import SimulatedDNPU
from hge_embedded.gradient import HGEWindow


def _verdict(fn):
    try:
        fn()
        return None
    except ValueError as e:
        return str(e)


DEV = SimulatedDNPU(seed=0, noise=False)
WINDOWS = {mode: HGEWindow(DEV, mode=mode, amplitudes=0.02) for mode in ("parallel", "sequential")}
LIM = np.asarray(DEV.limits, float)


@given(st.lists(st.sampled_from([0, 1, 2, 3]), min_size=7, max_size=7),
       st.lists(st.floats(-0.03, 0.03), min_size=7, max_size=7),
       st.sampled_from(["parallel", "sequential"]), st.sampled_from([None, np.nan, np.inf, -np.inf]))
def test_gate_decides_as_check_volts(where, offset, mode, odd):
    """HGEWindow.gate (a window's extremes from its tones' extremes) refuses exactly the windows
    check_volts refuses, with its message: biases at and just beyond either limit by less than
    the amplitude (where rounding of bias + tone decides), inside, and non-finite."""
    win = WINDOWS[mode]
    b = np.array([(0.0, LIM[e, 0], LIM[e, 1], 0.5 * (LIM[e, 0] + LIM[e, 1]))[w] for e, w in enumerate(where)])
    b = b + np.array(offset)
    if odd is not None:
        b[3] = odd
    for sel in win.groups:
        rows, tones = win.tone_rows(sel)
        volts = np.repeat(b[:, None], win.n, axis=1)
        volts[rows] += tones
        assert _verdict(lambda: win.gate(b, sel, volts)) == _verdict(lambda: check_volts(volts, win.limits))


def test_gate_at_the_exact_edge():
    """A bias whose window's largest sample lands exactly on the upper limit passes, one ulp more
    is refused (both ways by check_volts too)."""
    win = WINDOWS["parallel"]
    rows, tones = win.tone_rows(None)
    top = tones.max(axis=1)
    b = np.zeros(7)
    e = 2
    b[rows] = 0.0
    b[e] = LIM[e, 1] - top[list(rows).index(e)]
    for bias in (b, np.nextafter(b, np.inf)):
        volts = np.repeat(bias[:, None], win.n, axis=1)
        volts[rows] += tones
        assert _verdict(lambda: win.gate(bias, None, volts)) == _verdict(lambda: check_volts(volts, win.limits))


def test_gate_extremes_per_plan():
    """The extremes are the tones' own for each selection and each plan (amplitudes, frequencies):
    a window of another plan is gated by its own."""
    a = HGEWindow(DEV, amplitudes=0.01)
    b = HGEWindow(DEV, amplitudes=0.3)
    bias = np.full(7, LIM[0, 1] - 0.2)
    for win in (a, b):
        rows, tones = win.tone_rows(None)
        volts = np.repeat(bias[:, None], win.n, axis=1)
        volts[rows] += tones
        got = _verdict(lambda: win.gate(bias, None, volts))
        assert got == _verdict(lambda: check_volts(volts, win.limits))
    assert _verdict(lambda: a.gate(bias, None, np.repeat(bias[:, None], a.n, axis=1))) is None
    with pytest.raises(ValueError, match="outside its limits"):
        rows, tones = b.tone_rows(None)
        volts = np.repeat(bias[:, None], b.n, axis=1)
        volts[rows] += tones
        b.gate(bias, None, volts)
