"""Training: loss derivative, update bit-exactness, voltage limits, interrupt + resume, CLI errors."""
import functools
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
from tests.devices_for_tests import ClippedNoFullScale


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
    assert gate_found([0, 10, 10, 0], [0, 1, 1, 0]) and not gate_found([0, 10, 0, 1], [0, 1, 1, 0])
    assert gate_found([0, 10, 1, 0], [0, 1, 1, 0])  # separable (any threshold in (0, 1)) with no margin asked
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
    # eta / 2^shift is lr / (lsb 2^32) (the float rule it implements) up to eta's rounding:
    # relative error <= 0.5 / eta, and eta >= 2^23 here (shift capped at 63 - 13 for 5898 codes).
    exact = tr.lr / (tr.lsb * 2**32)
    assert tr.eta >= 2**23 and abs(tr.eta / 2.0**tr.shift - exact) <= 0.5 / tr.eta * exact


@pytest.mark.parametrize("lr", [0.02, 0.015, 0.001])
def test_update_takes_the_plain_step_up_to_the_whole_range_without_saturating(lr):
    """eta * g saturates at 2^63 in the C rule; eta/shift must leave room for any step up to the
    control range. Before, dE/dV = 20 /V at lr 0.02 moved 256 codes (78 mV) instead of 1311."""
    d = SimulatedDNPU(seed=0, noise=False)
    tr = Trainer(d, gate("xor"), lr=lr)
    mid = (tr.w_min + tr.w_max) // 2
    half = int(np.min(tr.w_max - mid))
    for dEdV in (20.0, 1.0, 0.05, 1e4):
        g = np.array([dEdV, -dEdV / 3, 0.0, dEdV / 7, -dEdV], float)
        gq = np.round(g * 2.0**32).astype(np.int64)
        w = tr.rule.step(mid, gq).astype(np.int64)
        want = -np.round(lr / tr.lsb * g)            # the float step in codes
        inside = np.abs(want) <= half                # else the range clamp decides
        assert np.all(np.abs((w - mid)[inside] - want[inside]) <= 1)
        assert np.all((w == tr.w_min) | (w == tr.w_max) | inside)


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
    with pytest.raises(ValueError, match="batch_size must be in 2..4, got 9"):
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
    # AND from the best of 8 starts (the session-3 device: found after 27 iterations, gap 10 nA
    # against 0.24 nA of output noise per sample).
    r = subprocess.run([sys.executable, "-m", "hge_embedded.cli", "train", "--task", "and", "--init", "best-of-8",
                        "--json", "--quiet", "--out", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    s = json.loads(r.stdout)
    for key in ("task", "found", "total", "accuracy", "iterations", "final_loss", "lab_time_s", "wall_time_s",
                "initial_loss", "initial_accuracy"):
        assert key in s
    assert s["found"] == 1 and s["total"] == 1
    assert s["final_loss"] < s["initial_loss"]
    bad = subprocess.run([sys.executable, "-m", "hge_embedded.cli", "train", "--task", "and", "--init", "best-of-x",
                          "--out", str(tmp_path)], capture_output=True, text=True)
    assert bad.returncode != 0 and "init must be 'single' or 'best-of-N'" in bad.stderr
    assert (tmp_path / "learning_curve.png").stat().st_size > 1000
    assert (tmp_path / "gate_outputs.png").exists() and (tmp_path / "history.npz").exists()


def test_init_option_and_gate_margin():
    from hge_embedded.tasks import class_gap
    from hge_embedded.train import parse_init
    assert parse_init("single") == 1 and parse_init("best-of-8") == 8
    for bad in ("best-of-0", "best-of-x", "many", ""):
        with pytest.raises(ValueError, match="init must be 'single' or 'best-of-N'"):
            parse_init(bad)
    # The margin: a gap of 2 nA counts only when it exceeds the margin.
    assert class_gap([0, 2, 2, 0], [0, 1, 1, 0]) == 2.0
    assert gate_found([0, 2, 2, 0], [0, 1, 1, 0], margin=1.9)
    assert not gate_found([0, 2, 2, 0], [0, 1, 1, 0], margin=2.1)
    # The polarity counts: outputs (5, 1, 1, 5) for XOR (0110) realise XNOR.
    assert class_gap([5, 1, 1, 5], [0, 1, 1, 0]) == -4.0
    assert class_gap([5, 1, 1, 5], [0, 1, 1, 0], polarity="either") == 4.0
    assert not gate_found([5, 1, 1, 5], [0, 1, 1, 0])
    with pytest.raises(ValueError, match="polarity must be 'high' or 'either', got 'low'"):
        class_gap([0, 2, 2, 0], [0, 1, 1, 0], polarity="low")
    with pytest.raises(ValueError, match="a constant gate has no gap"):
        class_gap([1, 2, 3, 4], [1, 1, 1, 1])
    with pytest.raises(ValueError, match="margin must be >= 0"):
        gate_found([0, 2, 2, 0], [0, 1, 1, 0], margin=-1.0)


def _middle_half(w_min, w_max):
    """The codes between the quarter points of [w_min, w_max], written out independently of
    train.start_codes_range: the smallest code >= w_min + (w_max - w_min) / 4 and the largest
    <= w_max - (w_max - w_min) / 4 (exact in fractions of 4)."""
    w_min, w_max = np.asarray(w_min, np.int64), np.asarray(w_max, np.int64)
    span = w_max - w_min
    lo = w_min + (span + 3) // 4            # ceil(span / 4)
    hi = w_max - (span + 3) // 4            # floor(w_max - span / 4)
    return lo, hi


@settings(max_examples=200)
@given(st.integers(-40_000, 40_000), st.integers(0, 80_000))
def test_start_is_drawn_from_the_middle_half_of_the_range(w_min, span):
    from hge_embedded.train import start_codes_range
    w_max = w_min + span
    lo, hi = start_codes_range(np.array([w_min]), np.array([w_max]))
    if span >= 2:   # a range of 0 or 1 codes has no quarter points inside: its centre (below)
        elo, ehi = _middle_half([w_min], [w_max])
        assert (lo[0], hi[0]) == (elo[0], ehi[0])
    assert w_min <= lo[0] <= hi[0] <= w_max
    # Symmetric about the centre: as far from w_min as from w_max, to within the rounding of one code.
    assert abs((lo[0] - w_min) - (w_max - hi[0])) <= 1
    full = start_codes_range(np.array([w_min]), np.array([w_max]), "full")
    assert (full[0][0], full[1][0]) == (w_min, w_max)


def test_start_option_reaches_every_draw_and_is_validated():
    from hge_embedded.train import STALL_WINDOW
    d = _Rail(_FLAT)
    tr = Trainer(d, gate("xor"), seed=3, max_iter=2 * STALL_WINDOW + 4, stop_loss=1e-9, phase="inphase",
                 restart_on_stall=True, init="best-of-3")
    tr.run()
    lo, hi = _middle_half(tr.w_min, tr.w_max)
    assert tr.restarts  # premise: the flat device stalls, so restarts drew again
    # Every start (the flat device's controls never move) lies in the middle half.
    for c in tr.history_controls:
        codes = np.round(np.array(c) / tr.lsb).astype(np.int64)
        assert np.all(codes >= lo) and np.all(codes <= hi)
    full = Trainer(d, gate("xor"), seed=3, phase="inphase", start="full")
    assert np.array_equal(full.s_min, full.w_min) and np.array_equal(full.s_max, full.w_max)
    full.initialise()
    assert np.array_equal(full.codes, np.random.default_rng(np.random.SeedSequence([3, 11])).integers(
        full.w_min, full.w_max + 1))
    with pytest.raises(ValueError, match="start must be one of \\['middle', 'full'\\], got 'edge'"):
        Trainer(d, gate("xor"), phase="inphase", start="edge")


def test_start_is_part_of_the_run_config_and_old_checkpoints_resume_with_start_full():
    import argparse

    from hge_embedded import checkpoint as ck
    from hge_embedded.cli import _run_config
    ns = argparse.Namespace(task="xor", seed=0, device="sim", config=None, device_seed=None, no_noise=False,
                            sim_model="surrogate", T=0.1, filter="butterworth3", engine="c", phase="calibrated",
                            batch_size=None, lr=None, max_iter=None, inputs=None, controls=None, trainer="host",
                            init="single", paper_mode=False, max_step=None, restart_on_stall=False, start="middle")
    middle = _run_config(ns, None)
    full = _run_config(argparse.Namespace(**{**vars(ns), "start": "full"}), None)
    assert middle["start"] == "middle" and "start" not in full
    old = dict(full)  # a checkpoint's config before session 5: no "start", drawn from the whole range
    assert ck.differences(old, full) == []
    diff = ck.differences(old, middle)
    assert len(diff) == 1 and diff[0].startswith("--start")
    assert ck.differences(middle, full)[0].startswith("--start")


def test_best_of_n_starts_at_the_lowest_loss_candidate_and_single_at_the_first():
    d = SimulatedDNPU(seed=0, noise=False)
    single = Trainer(d, gate("xor"), seed=4, init="single")
    single.initialise()
    lo, hi = _middle_half(single.w_min, single.w_max)
    first = np.random.default_rng(np.random.SeedSequence([4, 11])).integers(lo, hi + 1)
    assert np.array_equal(single.codes, first)
    best = Trainer(d, gate("xor"), seed=4, init="best-of-6")
    best.initialise()
    rng = np.random.default_rng(np.random.SeedSequence([4, 11]))
    cands = [rng.integers(lo, hi + 1) for _ in range(6)]
    losses = [best.loss(best.measure_outputs(best.task.inputs, c), best.task.targets)[0] for c in cands]
    assert np.array_equal(best.codes, cands[int(np.argmin(losses))])
    with pytest.raises(ValueError, match="init must be"):
        Trainer(d, gate("xor"), init="best-of-none")


def test_result_reports_initial_loss_and_noise_margin():
    d = SimulatedDNPU(seed=0)
    r, _ = train_task(d, gate("and"), seed=1, max_iter=3, stop_loss=1e-9)
    s = r.summary()
    assert s["initial_loss"] == r.losses[0] and len(r.losses) == 3
    # The noise per sample in 20 ms windows at the default noise: 1/f from 0.01 Hz to 5 kHz
    # gives ~0.36 nA rms in all; within a window the part above ~50 Hz, ~0.2 nA.
    assert 0.05 < s["noise_sd_nA"] < 0.5
    assert r.found == (r.gap > 3 * r.noise_sd and gate_found(r.outputs, gate("and").targets))


def test_gate_found_is_the_gap_not_the_midpoint_of_the_class_means():
    """A separable gate whose low outputs are spread: the old rule (threshold halfway between the
    class means) put the threshold at -28.80 nA, below the low -28.72, and called it not found.
    The outputs are an offline AND run's end point (surrogate, task seed 2001)."""
    from hge_embedded.tasks import class_gap, gate_threshold
    y, z = [-52.22, -28.72, -42.99, -16.25], gate("and").targets
    assert 0.5 * (y[3] + np.mean(y[:3])) < y[1]          # the old rule's threshold fails
    assert class_gap(y, z) == pytest.approx(12.47)       # -16.25 - (-28.72)
    assert gate_found(y, z, margin=12.0) and not gate_found(y, z, margin=12.5)
    assert gate_threshold(y, z) == pytest.approx(-22.485)
    with pytest.raises(ValueError, match="threshold"):
        gate_threshold([1, 2, 3, 4], [1, 1, 1, 1])


def test_trainer_reports_the_gate_threshold_inside_the_gap():
    d = SimulatedDNPU(seed=0, noise=False)
    r, _ = train_task(d, gate("and"), seed=1, max_iter=2, stop_loss=1e-9)
    z = gate("and").targets
    assert r.threshold == pytest.approx(0.5 * (r.outputs[z == 1].min() + r.outputs[z == 0].max()))
    assert r.found == (r.gap > 3 * r.noise_sd)


def test_held_out_accuracy_takes_threshold_and_polarity_from_the_training_outputs():
    from hge_embedded.tasks import accuracy_at, held_out_accuracy
    z = np.array([0, 0, 1, 1])
    # Training: class 1 above; the best threshold lies between 2 and 3 (the midpoint 2.5).
    acc, thr = held_out_accuracy([1.0, 2.0, 3.0, 4.0], z, [1.0, 2.6, 2.4, 4.0], z)
    assert thr == 2.5 and acc == 0.5  # 2.6 (class 0) above, 2.4 (class 1) below: one error per class
    assert balanced_accuracy([1.0, 2.6, 2.4, 4.0], z)[0] == 0.75  # the test set's own best threshold
    # Inverted test outputs score 0 with the trained polarity, 1 with "either" chosen on the test set.
    assert held_out_accuracy([1.0, 2.0, 3.0, 4.0], z, [4.0, 3.0, 2.0, 1.0], z)[0] == 0.0
    assert balanced_accuracy([4.0, 3.0, 2.0, 1.0], z)[0] == 1.0
    assert balanced_accuracy([4.0, 3.0, 2.0, 1.0], z, polarity="high")[0] == 0.5
    assert accuracy_at([0.0, 1.0, 2.0, 3.0], z, 1.5) == 1.0
    with pytest.raises(ValueError, match="polarity must be 'high' or 'either', got 'up'"):
        balanced_accuracy([1.0, 2.0], [0, 1], polarity="up")
    with pytest.raises(ValueError, match="both"):
        accuracy_at([1.0, 2.0], [1, 1], 0.0)


def test_sphere_accuracy_is_scored_at_the_training_threshold():
    d = SimulatedDNPU(seed=0, noise=False)
    task = sphere(3, n_train=24, n_test=40)
    r, tr = train_task(d, task, seed=3, max_iter=0)
    from hge_embedded.tasks import accuracy_at
    assert r.threshold == balanced_accuracy(r.outputs, task.targets, polarity="high")[1]
    assert r.accuracy == accuracy_at(r.test_outputs, task.test_targets, r.threshold)
    assert r.initial_accuracy is not None and 0.0 <= r.initial_accuracy <= 1.0


@functools.lru_cache(maxsize=1)
def _update_constants():
    tr = Trainer(SimulatedDNPU(seed=0, noise=False), gate("nor"))
    return tr.lsb, tr.eta, tr.shift


def _rule_step(tr, g):
    """The codes the C rule would move for gradient g: round-half-up(eta g / 2^shift) (hge_update.c)."""
    return np.array([(int(x) * tr.eta + (1 << (tr.shift - 1))) >> tr.shift for x in g])


@given(st.lists(st.integers(-2**62, 2**62), min_size=5, max_size=5),
       st.floats(0.001, 0.5, allow_nan=False))
def test_limit_step_keeps_every_code_step_within_max_step_and_the_direction(g, max_step):
    tr = Trainer.__new__(Trainer)  # only the update's constants are needed: a real trainer's
    tr.lsb, tr.eta, tr.shift = _update_constants()
    tr.max_step_codes = int(np.floor(max_step / tr.lsb))
    g = np.array(g, np.int64)
    out = Trainer.limit_step(tr, g)
    steps = _rule_step(tr, out)
    assert np.max(np.abs(steps)) <= tr.max_step_codes
    raw = _rule_step(tr, g)
    if np.max(np.abs(raw)) <= tr.max_step_codes:
        assert np.array_equal(out, g)  # untouched when small enough
    else:
        # Scaled, not clipped: signs kept, the largest component stays the largest, and the
        # largest step is the cap to within one code (floor of the bound).
        assert np.all(np.sign(out) == np.sign(g) * (np.abs(out) > 0)) and np.argmax(np.abs(out)) == np.argmax(np.abs(g))
        assert np.max(np.abs(steps)) >= tr.max_step_codes - 1


def test_max_step_caps_the_trainers_update_and_is_validated():
    d = SimulatedDNPU(seed=0, noise=False)
    free = Trainer(d, gate("nor"), seed=1008, max_iter=1, stop_loss=1e-9)
    capped = Trainer(d, gate("nor"), seed=1008, max_iter=1, stop_loss=1e-9, max_step=0.005)
    for tr in (free, capped):
        tr.initialise()
        c0 = tr.codes.copy()
        tr.step()
        tr.moved = np.max(np.abs(tr.codes - c0)) * tr.lsb
    assert np.array_equal(free.history_controls[0], capped.history_controls[0])  # same start
    # The uncapped first step of this start is far above 5 mV (offline: ~0.45 V on the surrogate).
    assert free.moved > 0.05 and capped.moved <= 0.005 + 1e-12
    for bad in (0.0, -0.1, float("nan"), 1e-6):
        with pytest.raises(ValueError, match="max_step must be a finite step of at least one DAC code"):
            Trainer(d, gate("nor"), max_step=bad)


def test_cli_max_step_reaches_the_trainer_and_is_refused_by_the_firmware_trainer(tmp_path):
    r = subprocess.run([sys.executable, "-m", "hge_embedded.cli", "train", "--task", "nor", "--seed", "1008",
                        "--max-step", "0.005", "--max-iter", "2", "--json", "--quiet", "--no-plots",
                        "--out", str(tmp_path / "run")], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path / "run" / "config.json").read_text())["max_step"] == 0.005
    # controls_V: the controls each iteration measured at (2 here), then the final ones.
    path = np.array(json.loads((tmp_path / "run" / "history.json").read_text())["nor (1000)"]["controls_V"]
                    + [json.loads(r.stdout)["per_task"][0]["controls_V"]])
    assert path.shape == (3, 5) and 0 < np.abs(np.diff(path, axis=0)).max() <= 0.005 + 1e-12
    bad = subprocess.run([sys.executable, "-m", "hge_embedded.cli", "train", "--task", "and", "--trainer", "firmware",
                          "--max-step", "0.02", "--out", str(tmp_path / "fw")], capture_output=True, text=True)
    assert bad.returncode == 2 and "--max-step" in bad.stderr and "Traceback" not in bad.stderr


# -- session 4: restarts on a stall, a rail ends only its own task ---------------------------------

class _Rail:
    """A plain device (no loopback, no calibration, not ours): ``I = w . V`` nA, clipped at
    ``full_scale``; while ``rail_calls`` > 0 a measure returns the rail itself (and counts down).

    ``wave`` (weights per electrode, 0 on the inputs 1 and 6) adds a product of the two gate inputs
    whose weight the controls set through a wavy function of ``u = wave . V`` (nA)::

        I += 20 V1 V6 (sin(3 u) + 0.6 sin(7.3 u + 1))

    so the loss varies with the controls and has several local minima of different depth: a
    descent moves the controls, and stalls at different losses from different starts."""

    def __init__(self, w, full_scale=200.0, wave=None):
        self.w = np.asarray(w, float)
        self.wave = None if wave is None else np.asarray(wave, float)
        self.n_electrodes, self.fs, self.full_scale = self.w.size, 10_000.0, float(full_scale)
        self.limits = np.array([[-1.2, 0.7]] * self.w.size)
        self.rail_calls = 0

    def measure(self, volts):
        volts = np.asarray(volts, float)
        if self.rail_calls > 0:
            self.rail_calls -= 1
            return np.full(volts.shape[1], self.full_scale)
        current = self.w @ volts
        if self.wave is not None:
            u = self.wave @ volts
            current = current + 20.0 * volts[0] * volts[5] * (np.sin(3.0 * u) + 0.6 * np.sin(7.3 * u + 1.0))
        return np.clip(current, -self.full_scale, self.full_scale)


# Inputs on electrodes 1 and 6, controls 2-5 and 7: a linear device's controls only shift all four
# outputs together, so the loss (a correlation and a difference of class means) is the same at every
# control setting: every start stalls, exactly at its 31st measurement (STALL_WINDOW = 30).
_FLAT = [10.0, 3.0, -2.0, 1.0, 4.0, 5.0, -1.0]
_WAVE = [0.0, 2.0, -1.5, 1.0, 0.5, 0.0, -2.5]


def _wavy():
    """The flat device plus the controls' wavy product term (``_Rail``): a loss that varies with the
    controls, for the tests whose checks would pass unchanged on a flat loss (the session-4 review)."""
    return _Rail(_FLAT, wave=_WAVE)


def test_stalled_start_is_replaced_by_the_next_random_draw_within_the_budget():
    from hge_embedded.train import STALL_WINDOW
    d = _Rail(_FLAT)
    tr = Trainer(d, gate("xor"), seed=5, max_iter=70, stop_loss=1e-9, phase="inphase", restart_on_stall=True)
    tr.run()
    assert len(set(tr.losses)) == 1  # flat, as designed
    # Stall at the (W+1)-th loss of each start: iterations W and 2W + 1; no more within 70.
    assert tr.restarts == [STALL_WINDOW, 2 * STALL_WINDOW + 1] and tr.iteration == len(tr.losses) == 70
    rng = np.random.default_rng(np.random.SeedSequence([5, 11]))
    lo, hi = _middle_half(tr.w_min, tr.w_max)
    draws = [rng.integers(lo, hi + 1) for _ in range(3)]
    # Each start's controls (the update moves none: dE/dV is 0) are the next draw of the trainer's generator.
    for it, k in ((0, 0), (STALL_WINDOW + 1, 1), (2 * STALL_WINDOW + 2, 2)):
        assert np.allclose(tr.history_controls[it], draws[k] * tr.lsb)
    r = tr.result(0.0)
    assert r.restarts == tr.restarts and r.summary()["restarts"] == tr.restarts
    # Without the option the same run keeps its one start.
    plain = Trainer(_Rail(_FLAT), gate("xor"), seed=5, max_iter=70, stop_loss=1e-9, phase="inphase")
    plain.run()
    assert plain.restarts == [] and np.allclose(plain.history_controls[-1], draws[0] * plain.lsb)
    with pytest.raises(TypeError, match="restart_on_stall must be True or False, got 'yes'"):
        Trainer(d, gate("xor"), phase="inphase", restart_on_stall="yes")


def test_stall_rule_and_return_to_the_best_start():
    tr = Trainer(_Rail(_FLAT), gate("xor"), seed=0, phase="inphase", restart_on_stall=True)
    # 31 losses of one start: stalled unless the last 30 beat the best before them by > 1 %.
    tr.losses = [1.0] + [0.995] * 30
    assert tr.stalled()
    tr.losses = [1.0] + [0.985] + [1.2] * 29
    assert not tr.stalled()
    tr.losses = [1.0] * 30
    assert not tr.stalled()  # too short to judge
    # finish(): a later start that ended worse returns the controls of the lowest loss measured.
    tr.losses, tr.segment_start, tr.restarts = [0.9, 0.5, 0.7, 0.8], 2, [1]
    tr.best_loss, tr.best_codes, tr.codes = 0.5, np.array([1, 2, 3, 4, 5]), np.array([9, 9, 9, 9, 9])
    tr.finish()
    assert np.array_equal(tr.codes, [1, 2, 3, 4, 5])
    r = tr.result(0.0)  # the loss reported is the one measured at the controls it ends at
    assert r.final_loss == 0.5 and np.allclose(r.controls, np.arange(1, 6) * tr.lsb) and r.initial_loss == 0.9
    tr.ended_at_best = False
    tr.codes, tr.best_loss = np.array([9, 9, 9, 9, 9]), 0.75  # the current start is the best: stay
    tr.segment_start = 2
    tr.losses = [0.9, 0.8, 0.7, 0.8]
    tr.finish()
    assert np.array_equal(tr.codes, [9, 9, 9, 9, 9])


def test_a_task_whose_output_reaches_the_rail_ends_alone_and_says_so():
    from hge_embedded.saturation import SaturationError
    from hge_embedded.train import TrainResult, run_tasks
    assert issubclass(SaturationError, ValueError)  # callers catching ValueError keep working
    d = _wavy()
    trainers = [Trainer(d, gate(g), seed=i, max_iter=5, stop_loss=1e-9, phase="inphase")
                for i, g in enumerate(("and", "or"))]

    def progress(tr, E):
        if tr.task.name.startswith("and") and tr.iteration == 2:
            d.rail_calls = 1  # the next measurement (iteration 2's windows) sits on the rail
    results = run_tasks(trainers, progress=progress)
    a, b = results
    assert a.iterations == 2 and "output on the rail at iteration 2" in a.stopped and "saturated" in a.stopped
    # It ends at the controls of its lowest loss, with that loss. The device's loss varies, so this can
    # fail: the controls moved (two distinct settings) and the two losses differ; the lowest is the
    # second, measured before the update that the rail's iteration never got to judge.
    assert len({tuple(h) for h in a.history_controls}) == 2 and len(set(a.losses)) == 2
    best = int(np.argmin(a.losses))
    assert np.allclose(a.controls, a.history_controls[best]) and a.final_loss == a.losses[best]
    assert b.stopped is None and b.iterations == 5  # the run went on with the next task
    back = TrainResult.from_dict(json.loads(json.dumps(a.to_dict())))
    assert back.stopped == a.stopped and a.summary()["stopped"] == a.stopped


def test_final_outputs_on_the_rail_are_not_a_found_gate():
    # I = 100 V1 + 10 V6 clipped at 60 nA: gate A (0011) reads (-60, -56, 60, 60), a 116 nA gap, but
    # three of the four means are the rail, not the outputs.
    w = [100.0, 0.0, 0.0, 0.0, 0.0, 10.0, 0.0]
    r, _ = train_task(_Rail(w, full_scale=60.0), gate("a"), seed=0, max_iter=0, phase="inphase")
    assert r.gap > 100 and not r.found and "final evaluation at the device's full_scale" in r.stopped
    ok, _ = train_task(_Rail(w, full_scale=200.0), gate("a"), seed=0, max_iter=0, phase="inphase")
    assert ok.found and ok.stopped is None  # the same gate away from the rail is found


# Gate A on I = 100 V1 + 10 V6: outputs (-77, -63, 63, 77) nA, a 126 nA gap.
_GATE_A = [100.0, 0.0, 0.0, 0.0, 0.0, 10.0, 0.0]


@pytest.mark.parametrize("clip, sd, on_rail", [
    (np.inf, 0.5, False),   # noisy, no rail: found
    (np.inf, 0.0, False),   # noise-free, four distinct outputs: found (no repeated extreme)
    (70.0, 0.0, False),     # noise-free, one case on each rail (-70, -63, 63, 70): no extreme repeated
    (60.0, 0.0, True),      # noise-free, (-60, -60, 60, 60): two cases on each rail, cannot be told from one
    (63.0, 0.5, True),      # noisy, two cases near each rail: runs of the clip value inside the windows
    (50.0, 0.5, True),      # noisy, every sample on the rail: constant windows at a repeated extreme
])
def test_final_outputs_on_an_unstated_rail_are_not_a_found_gate(clip, sd, on_rail):
    r, _ = train_task(ClippedNoFullScale(_GATE_A, clip=clip, sd=sd), gate("a"), seed=0, max_iter=0, phase="inphase")
    assert r.gap > 3 * r.noise_sd  # every case: a gap far above the margin, whatever the rail did to it
    if on_rail:
        assert not r.found and "does not state" in r.stopped and "full_scale" in r.stopped
    else:
        assert r.found and r.stopped is None


@pytest.mark.parametrize("clip", [np.inf, 70.0])
def test_a_clipped_constant_window_does_not_shrink_the_noise_estimate(clip):
    """Clipped at +-70 nA, the outer cases (-77, 77 nA) give constant windows (not a repeated extreme: no rail
    is counted); the noise estimate is the other windows' (0.5 nA), not sqrt(2/4) of it (review s5). Two
    windows of 200 samples: the estimate's relative sd is 1/sqrt(2 * 398) = 3.5 %, so +-18 % is 5 sd."""
    r, _ = train_task(ClippedNoFullScale(_GATE_A, clip=clip, sd=0.5), gate("a"), seed=0, max_iter=0,
                      phase="inphase")
    if clip < np.inf:   # premise: two windows are constant at the clip
        assert np.sum(np.abs(np.abs(r.outputs) - clip) == 0) == 2
    assert abs(r.noise_sd - 0.5) < 0.18 * 0.5, r.noise_sd


def test_unstated_rail_rule_on_windows():
    from hge_embedded.saturation import RUN_MIN
    from hge_embedded.train import unstated_rail_samples
    rng = np.random.default_rng(1)
    noisy = [rng.normal(m, 0.5, 200) for m in (-30.0, -10.0, 10.0, 30.0)]
    assert unstated_rail_samples(noisy) == 0
    clipped = np.minimum(noisy[3], 30.0)  # half the samples equal the clip: runs and a pile-up at the top
    assert unstated_rail_samples(noisy[:3] + [clipped]) >= RUN_MIN
    flat = [np.full(200, v) for v in (-5.0, -5.0, 2.0, 7.0)]
    assert unstated_rail_samples(flat) == 400   # the repeated minimum
    assert unstated_rail_samples([np.full(200, v) for v in (-5.0, -4.0, 2.0, 7.0)]) == 0
    assert unstated_rail_samples([np.full(200, v) for v in (-5.0, 2.0, 2.0, 7.0)]) == 0  # repeated, not extreme


def test_cli_restart_on_stall_reaches_the_trainer_and_the_json(tmp_path):
    # XOR from task seed 1006 on the default simulator, started in the whole range (--start full, as
    # in session 4): the start stalls with electrode 2 pinned on the 0.6 V bound (offline and in
    # session 4's run: restart at iteration 56, found at 68).
    r = subprocess.run([sys.executable, "-m", "hge_embedded.cli", "train", "--task", "xor", "--seed", "1006",
                        "--restart-on-stall", "--start", "full", "--max-iter", "60", "--json", "--quiet", "--no-plots",
                        "--out", str(tmp_path / "run")], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    s = json.loads(r.stdout)
    task = s["per_task"][0]
    # A stall is judged on 31 losses of one start at the earliest (STALL_WINDOW = 30).
    assert task["restarts"] and all(30 <= k < 60 for k in task["restarts"])
    assert task["stopped"] is None and s["stopped"] == []
    cfg = json.loads((tmp_path / "run" / "config.json").read_text())
    assert cfg["restart_on_stall"] is True and "start" not in cfg  # --start full: stored as before session 5
    bad = subprocess.run([sys.executable, "-m", "hge_embedded.cli", "train", "--task", "and", "--trainer", "firmware",
                          "--restart-on-stall", "--out", str(tmp_path / "fw")], capture_output=True, text=True)
    assert bad.returncode == 2 and "--restart-on-stall" in bad.stderr and "Traceback" not in bad.stderr
    paper = subprocess.run([sys.executable, "-m", "hge_embedded.cli", "train", "--task", "and", "--paper-mode",
                            "--restart-on-stall", "--out", str(tmp_path / "paper")], capture_output=True, text=True)
    assert paper.returncode == 2 and "--restart-on-stall" in paper.stderr and "Traceback" not in paper.stderr
    assert not (tmp_path / "paper").exists()  # refused before the run directory exists


def test_resume_with_restarts_equals_uninterrupted():
    # The restart state (where the current start began, the restarts, the lowest loss and its codes)
    # is in the checkpoint: interrupted after the first restart, the run goes on exactly as before.
    # On the wavy device (a loss that varies): seed 7's first start stalls at a lower loss than the
    # second reaches, so the full run ends at the first start's best codes, which only the checkpoint's
    # best_loss/best_codes carry across the interruption (test_review_s4 drops them: the run differs).
    kw = dict(seed=7, max_iter=70, stop_loss=1e-9, phase="inphase", restart_on_stall=True)
    full, _ = train_task(_wavy(), gate("xor"), **kw)
    states = {}

    def interrupt(tr):
        states["s"] = tr.state()
        if tr.iteration == 40:
            raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        train_task(_wavy(), gate("xor"), callback=interrupt, **kw)
    state = json.loads(json.dumps(states["s"]))
    first = full.restarts[0]
    # Premises: one restart before the interruption at 40, none after it; the run ends at the first
    # start's lowest loss, below every loss of the second start (and not its last loss).
    assert full.restarts == [first] and first < 40 and state["restarts"] == [first]
    assert full.final_loss == min(full.losses[:first + 1]) < min(full.losses[first + 1:])
    resumed, _ = train_task(_wavy(), gate("xor"), state=state, **kw)
    assert resumed.restarts == full.restarts
    assert np.array_equal(resumed.controls, full.controls) and resumed.losses == full.losses
    assert resumed.final_loss == full.final_loss
