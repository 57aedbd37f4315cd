"""extract_gradient's one-time plan work (a new window plan, the calibration, the read plan) runs on
one BLAS thread and gives the caller's setting back: a second OpenBLAS thread only waits there, then
spins for ~0.1 s after the last product, taking the other core from the gradients that follow (the
bench's "grad cpu" above "grad wall")."""
import numpy as np
import pytest

from hge_embedded import gradient
from hge_embedded.devices.simulated import SimulatedDNPU

threadpoolctl = pytest.importorskip("threadpoolctl")


def _blas_threads():
    return [lib.num_threads for lib in threadpoolctl.ThreadpoolController().select(user_api="blas").lib_controllers]


def test_plan_work_on_one_blas_thread(monkeypatch):
    before = _blas_threads()
    if not before or max(before) < 2:
        with threadpoolctl.threadpool_limits(2, user_api="blas"):
            return test_plan_work_on_one_blas_thread(monkeypatch)
    seen = {}

    def spy(name, fn):
        def wrapped(*a, **k):
            seen.setdefault(name, []).append(max(_blas_threads()))
            return fn(*a, **k)
        return wrapped
    monkeypatch.setattr(gradient.HGEWindow, "__init__", spy("window", gradient.HGEWindow.__init__))
    monkeypatch.setattr(gradient, "calibration_for", spy("calibration", gradient.calibration_for))
    monkeypatch.setattr(gradient.HGEWindow, "_make_read_plan", spy("read plan", gradient.HGEWindow._make_read_plan))
    dev = SimulatedDNPU(seed=0)
    gradient.extract_gradient(dev, np.zeros(7))
    assert set(seen) == {"window", "calibration", "read plan"}
    assert all(n == [1] * len(n) for n in seen.values()), seen
    assert _blas_threads() == before   # the caller's setting is back


def test_measure_limits_blas_where_it_calls_blas():
    """SimulatedDNPU.measure: a record of one window (extract_gradient's) runs in C alone and skips
    the BLAS limit; a record with ramps or several windows (a training iteration's) is evaluated
    inside it, as is the model without the fast evaluator."""
    import contextlib
    from hge_embedded.gradient import HGEWindow
    entered = []

    @contextlib.contextmanager
    def counting():
        entered.append(max(_blas_threads()))
        with threadpoolctl.threadpool_limits(1, user_api="blas"):
            yield
    dev = SimulatedDNPU(seed=0, noise=False)
    dev._one_thread = counting
    win = HGEWindow(dev)
    win.calibrate_at(np.zeros(7))
    one = win.waveform(np.full(7, 0.1))
    two = np.concatenate([one, win.waveform(np.full(7, -0.2))], axis=1)   # two windows, no gap
    ramp = np.concatenate([one, np.linspace(0.1, -0.2, 50)[None, :].repeat(7, 0), win.waveform(np.full(7, -0.2))],
                          axis=1)
    dev.measure(one)
    assert entered == []
    dev.measure(two)
    assert len(entered) == 1
    dev.measure(ramp)
    assert len(entered) == 2
    exact = SimulatedDNPU(seed=0, noise=False, evaluation="exact")
    exact._one_thread = counting
    exact.measure(one)
    assert len(entered) == 3


def test_simulator_still_pickles():
    """The evaluator's BLAS limit is the device's bound method (a lambda made the device unpicklable)."""
    import pickle
    dev = SimulatedDNPU(seed=0)
    copy = pickle.loads(pickle.dumps(dev))
    assert copy._fast.blas.__self__ is copy
    assert np.array_equal(copy.measure(np.zeros((7, 50))), dev.measure(np.zeros((7, 50))))
