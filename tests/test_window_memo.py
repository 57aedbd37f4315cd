"""extract_gradient keeps its HGEWindow configuration per device object (gradient._window_for):
every call still gives exactly what a window built anew gives, also after any argument or device
attribute it depends on changes (in place too), and no caller's array is shared or frozen."""
import threading

import numpy as np
import pytest

from hge_embedded import gradient
from hge_embedded.calibration import Calibration
from hge_embedded.devices.simulated import SimulatedDNPU
from hge_embedded.gradient import HGEWindow, extract_gradient
from tests.devices_for_tests import FiveElectrodeDevice, LinearDevice


def _fresh_windows(monkeypatch):
    """extract_gradient without the memo: every call builds its window anew (the old behaviour)."""
    monkeypatch.setattr(gradient, "_window_for", lambda device, **kw: HGEWindow(device, **kw))


def _same(a, b):
    for k in ("gradient", "stderr", "bias", "X", "Y", "freqs", "amplitudes", "electrodes"):
        x, y = getattr(a, k), getattr(b, k)
        assert np.array_equal(x, y, equal_nan=True), k
    assert (a.current, a.lab_time_s, a.warnings, a.stderr_reliable, a.saturated_samples) == \
        (b.current, b.lab_time_s, b.warnings, b.stderr_reliable, b.saturated_samples)


def _run_script(make, script, monkeypatch=None):
    """Run ``script(device, call)`` and collect every result or error message."""
    dev = make()
    out = []

    def call(*a, **kw):
        try:
            out.append(extract_gradient(dev, *a, **kw))
        except ValueError as e:
            out.append(str(e))
    script(dev, call)
    return out


def _compare(make, script, monkeypatch):
    with_memo = _run_script(make, script)
    with monkeypatch.context() as mp:
        _fresh_windows(mp)
        without = _run_script(make, script)
    assert len(with_memo) == len(without)
    for a, b in zip(with_memo, without):
        if isinstance(a, str) or isinstance(b, str):
            assert a == b
        else:
            _same(a, b)
    return with_memo


def test_repeated_calls_equal_fresh_windows(monkeypatch):
    def script(dev, call):
        rng = np.random.default_rng(1)
        for _ in range(4):
            call(rng.uniform(-0.5, 0.5, 7))
        call(np.zeros(7), electrodes=[2, 5], T=0.05, mode="sequential")
        call(np.zeros(7), phase="magnitude")
        call(np.zeros(7), phase="inphase", filter="boxcar")
        call(np.zeros(7))
    out = _compare(lambda: SimulatedDNPU(seed=4), script, monkeypatch)
    assert all(not isinstance(r, str) for r in out)


def test_changed_device_attributes_are_never_answered_from_the_memo(monkeypatch):
    """Each step changes one thing HGEWindow reads from the device, most of them in place."""
    bias = np.array([0.3, -0.2, 0.1])

    def script(dev, call):
        call(bias, phase="inphase")
        dev.limits[0, 1] = 0.2          # in place: the bias (0.3 V) is now outside electrode 1's limits
        call(bias, phase="inphase")
        dev.limits[0, 1] = 1.0
        call(bias, phase="inphase")
        dev.dac_lsb = 20 / 65536        # a DAC step appears: the applied fundamentals change
        call(bias, phase="inphase")
        dev.dac_lsb = 0.01              # 8 mV is under 4 steps now: refused
        call(bias, phase="inphase")
        del dev.dac_lsb
        dev.full_scale = 0.5            # a stated rail the output crosses: saturated
        call(bias, phase="inphase")
        dev.full_scale = 50.0
        call(bias, phase="inphase")
        dev.fs = 8000.0                 # another window length and plan
        call(bias, phase="inphase")
        dev.name = "renamed"            # the name in messages
        dev.limits[1, 0] = 0.0
        call(bias, phase="inphase")
    out = _compare(lambda: LinearDevice([3.0, -1.0, 0.5], S=1e-4, seed=3), script, monkeypatch)
    assert isinstance(out[1], str) and "outside its limits" in out[1]
    assert isinstance(out[4], str) and "DAC" in out[4]
    assert isinstance(out[5], str) and "saturated" in out[5]

    # Directly: the memo's window follows the device's fs, limits and full scale.
    dev = LinearDevice([3.0, -1.0, 0.5])
    w1 = gradient._window_for(dev, phase="inphase")
    dev.fs = 8000.0
    dev.limits[2, 0] = -0.5
    dev.full_scale = 7.0
    w2 = gradient._window_for(dev, phase="inphase")
    assert (w1.n, w1.fs, w1.full_scale) == (1000, 1e4, None) and (w2.n, w2.fs, w2.full_scale) == (800, 8000.0, 7.0)
    assert w2.limits[2, 0] == -0.5 and w1.limits[2, 0] == -1.0


def test_changed_arguments_and_calibrations_are_never_answered_from_the_memo(monkeypatch):
    def script(dev, call):   # its own arguments each run (the script changes them in place)
        amps = [0.008, 0.01, 0.012, 0.009, 0.011]
        cal = Calibration(np.array([50.0, 2000.0]), np.array([1.0 + 0j, 0.9 - 0.1j]), "loopback")
        bias = np.zeros(5)
        call(bias, amplitudes=amps)
        amps[2] = 0.02                  # the caller's list, changed in place
        call(bias, amplitudes=amps)
        call(bias, amplitudes=amps, calibration=cal)
        cal.response[1] = 0.8 - 0.3j    # the calibration's array, changed in place
        call(bias, amplitudes=amps, calibration=cal)
        dev.calibration = Calibration(cal.freqs.copy(), cal.response.copy(), "loopback")
        call(bias)
        dev.calibration.response[0] = 1.1 + 0j
        call(bias)
        freqs = np.array(HGEWindow(dev).freqs)   # the plan's own frequencies, as the caller's array
        call(bias, freqs=freqs)
        freqs[0] += 10.0                # changed in place: another plan (or a refusal naming it)
        call(bias, freqs=freqs)
        call(bias, freqs=freqs, check=False)
        el = [1, 3]
        call(bias, electrodes=el)
        el[1] = 4
        call(bias, electrodes=el)
    _compare(lambda: FiveElectrodeDevice(S=1e-5, seed=2), script, monkeypatch)


def test_results_and_callers_keep_their_own_arrays():
    dev = LinearDevice([3.0, -1.0, 0.5], S=1e-4, seed=3)
    freqs = np.array(HGEWindow(dev).freqs)
    r1 = extract_gradient(dev, np.zeros(3), freqs=freqs, phase="inphase")
    assert freqs.flags.writeable and dev.limits.flags.writeable      # nothing of the caller's is frozen
    r1.amplitudes *= 2                                               # a result's arrays are its own
    r1.freqs += 1.0
    r2 = extract_gradient(dev, np.zeros(3), freqs=freqs, phase="inphase")
    assert np.array_equal(r2.amplitudes, np.full(3, 0.008)) and np.array_equal(r2.freqs, freqs)


def test_devices_without_weak_references_or_exact_keys_still_work():
    class Slotted:
        __slots__ = ("fs", "n_electrodes", "limits", "inner")

        def __init__(self):
            self.inner = LinearDevice([2.0, 1.0], S=1e-4, seed=1)
            self.fs, self.n_electrodes, self.limits = self.inner.fs, 2, self.inner.limits

        def measure(self, volts):
            return self.inner.measure(volts)

    r = extract_gradient(Slotted(), np.zeros(2), phase="inphase")
    assert np.all(np.abs(r.gradient - [2.0, 1.0]) < 5 * r.stderr + 1e-9)

    class OddLimits(LinearDevice):   # limits as a list of lists: keyed by value too
        pass
    d = OddLimits([2.0, 1.0], S=1e-4, seed=1)
    d.limits = [[-1.0, 1.0], [-1.0, 1.0]]
    extract_gradient(d, np.zeros(2), phase="inphase")
    d.limits[0][1] = 0.1
    with pytest.raises(ValueError, match="outside its limits"):
        extract_gradient(d, np.array([0.5, 0.0]), phase="inphase")


def test_threads_sharing_a_device_get_their_own_window_state():
    """Two threads calling extract_gradient on one device object at once: each result as the same
    call made alone (a noise-free device, so the order of the calls does not matter)."""
    dev = SimulatedDNPU(seed=1, noise=False)
    biases = [np.full(7, 0.1 * k) for k in range(-3, 4)]
    extract_gradient(dev, biases[0])   # the calibration, measured once (its lab time in this call only)
    alone = [extract_gradient(dev, b) for b in biases]
    got = [None] * len(biases)

    def work(ks):
        for _ in range(3):
            for k in ks:
                got[k] = extract_gradient(dev, biases[k])
    threads = [threading.Thread(target=work, args=(range(j, len(biases), 2),)) for j in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for a, b in zip(alone, got):
        _same(a, b)
