"""Training: loss derivative, update bit-exactness, voltage limits, interrupt + resume, CLI errors."""
import json
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hge_embedded import SimulatedDNPU, core
from hge_embedded.devices import check_volts
from hge_embedded.losses import corrsig
from hge_embedded.reference import fixed
from hge_embedded.tasks import balanced_accuracy, gate, gate_found, parse_tasks, sphere
from hge_embedded.train import Trainer, train_task


@given(st.integers(0, 2**32 - 1), st.integers(4, 40), st.sampled_from(["mean", "min"]),
       st.floats(1.0, 50.0))
def test_corrsig_derivative_matches_numerical(seed, n, separation, scale):
    rng = np.random.default_rng(seed)
    y = rng.normal(0, 30, n)
    z = np.zeros(n)
    z[rng.choice(n, n // 2, replace=False)] = 1
    E, dE = corrsig(y, z, scale=scale, separation=separation)
    h = 1e-5
    num = np.array([(corrsig(y + h * e, z, scale=scale, separation=separation)[0]
                     - corrsig(y - h * e, z, scale=scale, separation=separation)[0]) / (2 * h) for e in np.eye(n)])
    # Central differences: error ~ h^2 E''' ~ 1e-10 scale; the "min" separation is piecewise
    # linear, exact away from ties (random normals have none).
    assert np.allclose(dE, num, rtol=1e-5, atol=1e-7)
    assert np.isfinite(E) and E >= 0


def test_corrsig_degenerate_cases_raise_clearly():
    with pytest.raises(ValueError, match="targets are all 1; the correlation is undefined"):
        corrsig([1.0, 2.0, 3.0, 4.0], [1, 1, 1, 1])
    with pytest.raises(ValueError, match="every output is equal"):
        corrsig([5.0, 5.0, 5.0, 5.0], [0, 1, 1, 0])
    with pytest.raises(ValueError, match="targets must be 0 or 1"):
        corrsig([1.0, 2.0], [0, 2])
    with pytest.raises(ValueError, match="separation must be 'mean' or 'min'"):
        corrsig([1.0, 2.0], [0, 1], separation="max")


def test_tasks_and_criteria():
    assert gate("xor").extra["bits"] == "0110" and gate("0001").name.startswith("and")
    assert len(parse_tasks("all-gates")) == 16
    with pytest.raises(ValueError, match="a gate is a name .* or a 4-bit truth table such as 0110, got 'xyz'"):
        parse_tasks("xyz")
    assert gate_found([0, 10, 10, 0], [0, 1, 1, 0]) and not gate_found([0, 10, 1, 0], [0, 1, 1, 0])
    assert gate_found([1, 2, 3, 4], [1, 1, 1, 1])  # constant gate: threshold only
    s = sphere(0)
    assert s.inputs.shape == (300, 3) and s.targets.mean() == 0.5 and s.test_inputs.shape == (1000, 3)
    r = np.linalg.norm(s.inputs, axis=1)
    assert np.all(r[s.targets == 1] <= 0.3) and np.all((r[s.targets == 0] >= 0.5) & (r[s.targets == 0] <= 0.7))
    assert balanced_accuracy([1, 2, 3, 4], [0, 0, 1, 1])[0] == 1.0


def test_update_in_training_is_the_fixed_point_rule():
    """One training step moves the codes exactly as reference.fixed's model of the C rule says."""
    d = SimulatedDNPU(seed=0, noise=False)
    tr = Trainer(d, gate("xor"), seed=0)
    tr.initialise()
    before = tr.codes.copy()
    captured = {}
    orig = tr.rule.accumulate

    def spy(dEdI, dIdV, g=None):
        captured["dEdI"], captured["dIdV"] = dEdI, dIdV
        return orig(dEdI, dIdV, g)
    tr.rule.accumulate = spy
    tr.step()
    g = fixed.update_accumulate(np.zeros(5, np.int64), captured["dEdI"], captured["dIdV"])
    expect = fixed.update_process(before, g, tr.w_min, tr.w_max, tr.eta, tr.shift)
    assert np.array_equal(tr.codes, expect)
    # eta / 2^shift is lr / (lsb 2^32) to int32 precision (the float rule it implements).
    assert abs(tr.eta / 2.0**tr.shift - tr.lr / (tr.lsb * 2**32)) < 1e-9 * tr.lr / (tr.lsb * 2**32)


class RecordingDevice(SimulatedDNPU):
    """The simulator, remembering the extremes of every sample it was asked to apply."""

    def measure(self, volts):
        v = np.asarray(volts)
        self.lo = np.minimum(getattr(self, "lo", np.inf), v.min(axis=1))
        self.hi = np.maximum(getattr(self, "hi", -np.inf), v.max(axis=1))
        return super().measure(volts)


@settings(max_examples=12)
@given(st.floats(1e-3, 50.0), st.integers(0, 1000), st.sampled_from(["xor", "and", "1011"]))
def test_voltages_never_leave_limits(lr, seed, name):
    """Random learning rates (up to 2500x the paper's) and starts: every applied sample stays inside."""
    d = RecordingDevice(seed=0, noise=False)
    train_task(d, gate(name), seed=seed, lr=lr, max_iter=6)
    assert np.all(d.lo >= d.limits[:, 0]) and np.all(d.hi <= d.limits[:, 1])


def test_interrupt_and_resume_equals_uninterrupted(tmp_path):
    task = gate("xnor")
    full, _ = train_task(SimulatedDNPU(seed=0), task, seed=3, max_iter=12, stop_loss=1e-9)

    class Stop(Exception):
        pass
    states = {}

    def interrupt(tr):
        states[tr.task.name] = tr.state()
        if tr.iteration == 5:
            raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        train_task(SimulatedDNPU(seed=0), task, seed=3, max_iter=12, stop_loss=1e-9, callback=interrupt)
    # A run's checkpoint holds this state (with the device's) as JSON: round-trip it the same way.
    state = json.loads(json.dumps(states[task.name]))
    resumed, _ = train_task(SimulatedDNPU(seed=0), task, seed=3, max_iter=12, stop_loss=1e-9, state=state)
    assert resumed.iterations == full.iterations == 12
    assert np.array_equal(resumed.controls, full.controls)
    assert resumed.losses == full.losses


def test_bad_arguments_get_clear_errors(tmp_path):
    d = SimulatedDNPU(seed=0, noise=False)
    with pytest.raises(ValueError, match="lr must be > 0"):
        Trainer(d, gate("xor"), lr=0.0)
    with pytest.raises(ValueError, match="batch_size must be in 1..4, got 9"):
        Trainer(d, gate("xor"), batch_size=9)
    with pytest.raises(ValueError, match="electrode 2 at sample 0 is 0.9 V, outside its limits"):
        check_volts(np.full((7, 3), 0.9) * np.eye(7)[1][:, None], d.limits)
    r = subprocess.run([sys.executable, "-m", "hge_embedded.cli", "train", "--task", "nope",
                        "--out", str(tmp_path)], capture_output=True, text=True)
    assert r.returncode != 0 and "a gate is a name" in r.stderr
    r = subprocess.run([sys.executable, "-m", "hge_embedded.cli", "train", "--task", "xor", "--resume",
                        "--out", str(tmp_path / "none")], capture_output=True, text=True)
    assert r.returncode != 0 and "no checkpoint at" in r.stderr


def test_cli_train_json_summary(tmp_path):
    r = subprocess.run([sys.executable, "-m", "hge_embedded.cli", "train", "--task", "xor", "--json",
                        "--quiet", "--out", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    s = json.loads(r.stdout)
    for key in ("task", "found", "total", "accuracy", "iterations", "final_loss", "lab_time_s", "wall_time_s"):
        assert key in s
    assert s["found"] == 1 and s["total"] == 1
    assert (tmp_path / "learning_curve.png").stat().st_size > 1000
    assert (tmp_path / "gate_outputs.png").exists() and (tmp_path / "history.npz").exists()
