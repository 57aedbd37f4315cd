"""Review of session 6 (the trainer's trust checks and the block exponent for dE/dI): regression tests."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from hge_embedded import tasks
from hge_embedded.devices.simulated import SimulatedDNPU
from hge_embedded.reproduce.common import paper_train_kwargs
from hge_embedded.train import Trainer, task_seed


_TRAINERS = {}


def _paper_nor_trainer(max_step):
    """One trainer per max_step (built once: it calibrates the chain); updated_codes does not change it."""
    if max_step in _TRAINERS:
        return _TRAINERS[max_step]
    task = tasks.gate("nor")
    kw = {**paper_train_kwargs(task), "max_step": max_step}
    tr = Trainer(SimulatedDNPU(seed=0), task, seed=task_seed(0, 8, 16), **kw)
    tr.codes = np.array([(lo + hi) // 2 for lo, hi in zip(tr.w_min, tr.w_max)], np.int64)
    _TRAINERS[max_step] = tr
    return tr


@given(st.floats(12.0, 18.0), st.lists(st.floats(-200.0, 200.0), min_size=5, max_size=5))
def test_max_step_keeps_the_direction_when_dE_dV_exceeds_q32(e, G1):
    """--paper-mode --max-step: dE/dI ~1e17 (the paper's loss at a separation of -40 nA) makes dE/dV
    pass 2^31 /V, beyond int64 in Q32. The step must still be the float step scaled down to max_step
    (its direction kept, as --max-step promises), not every large component saturated to one value
    (which turned it into a sign step: [65 65 -65 65 -65] codes for a gradient of [100 50 -10 1 -0.5])."""
    tr = _paper_nor_trainer(0.02)
    dE = np.array([10.0**e, 0.0, 0.0, 0.0])
    G = np.zeros((4, 5))
    G[0] = G1
    s = dE @ G                                        # dE/dV, 1/V (dI/dV rounds to 2^-8: relative 2^-9 / |G|)
    if np.max(np.abs(s)) == 0.0:
        return
    step = tr.codes - tr.updated_codes(dE, G)
    want = s / np.max(np.abs(s)) * tr.max_step_codes   # the float step scaled to max_step, codes
    # Rounding: dI/dV to 2^-9 absolute per component moves the direction by at most 2^-9 / max|G1|
    # relative to the largest component (the block exponent's dE/dI rounding is 2^-31 relative), the
    # scaling's floor division by one code and the rule's rounding by half a code: <= 1.5 codes +
    # max_step_codes * 2 * 2^-9 / max|G1| (the ratio of two rounded quantities).
    bound = 1.5 + tr.max_step_codes * 2 * 2.0**-9 / np.max(np.abs(G1)) + 1e-9
    assert np.all(np.abs(step - want) <= bound), (step, want)


class _InvertedSim(SimulatedDNPU):
    """The simulator (with its get_state/set_state: a resume restores its noise) stating a calibration of
    an inverted chain: the descent check stops a xor run at its 9th iteration (test_train_checks)."""

    def __init__(self):
        from hge_embedded import plans
        from hge_embedded.calibration import Calibration, calibrate
        super().__init__(seed=0)
        cal = calibrate(SimulatedDNPU(seed=0), plans.plan_frequencies(5, fs=self.fs, T=0.1))
        self.calibration = Calibration(cal.freqs, -cal.response, cal.method)


def test_a_resume_inside_the_descent_window_stops_where_the_uninterrupted_run_does():
    """Interrupted after 5 iterations (inside the first window of 8 steps) and resumed from the JSON state,
    the run stops at the same iteration with the same note, losses, controls and check state."""
    import json

    from hge_embedded.train import train_task
    task = tasks.gate("xor")
    full, tr_full = train_task(_InvertedSim(), task, seed=6, max_iter=30)
    assert full.stopped is not None and "sign is wrong" in full.stopped   # premise: the check fires
    states = {}

    def interrupt(tr):
        states[0] = tr.state()
        if tr.iteration == 5:
            raise KeyboardInterrupt
    try:
        train_task(_InvertedSim(), task, seed=6, max_iter=30, callback=interrupt)
        raise AssertionError("not interrupted")
    except KeyboardInterrupt:
        pass
    assert 0 < len(states[0]["descent_check"]["D"]) < 8          # premise: inside the window
    resumed, tr_res = train_task(_InvertedSim(), task, seed=6, max_iter=30, state=json.loads(json.dumps(states[0])))
    assert resumed.stopped == full.stopped and resumed.iterations == full.iterations
    assert resumed.losses == full.losses and np.array_equal(resumed.controls, full.controls)
    a, b = tr_full.state(), tr_res.state()
    assert a["descent_check"] == b["descent_check"] and a["stale_check"] == b["stale_check"]


def test_a_batch_always_holds_both_classes_and_one_point_is_refused():
    """all-gates --batch-size 2 ended at AND with "targets are all 0" (half of AND's pairs are one class); a
    batch of one point made every trained task end so. Now a one-class batch is drawn again and 1 is refused."""
    import pytest

    from hge_embedded.train import train_task
    task = tasks.gate("and")
    seen = []

    class Spy(Trainer):
        def loss(self, y, z):
            seen.append(np.ptp(z))
            return super().loss(y, z)
    tr = Spy(SimulatedDNPU(seed=0), task, seed=0, batch_size=2, max_iter=12, stop_loss=0.0)
    tr.run()
    assert len(seen) == 12 and min(seen) > 0          # every batch trained on held both classes
    with pytest.raises(ValueError, match="batch_size must be in 2..4, got 1"):
        Trainer(SimulatedDNPU(seed=0), task, batch_size=1)
    # A constant gate trains nothing: any batch size of its points is accepted (as before).
    train_task(SimulatedDNPU(seed=0), tasks.gate("0000"), seed=0, batch_size=1, max_iter=5)


@given(st.lists(st.floats(-18.0, 18.0), min_size=4, max_size=4), st.lists(st.booleans(), min_size=4, max_size=4),
       st.lists(st.floats(-60.0, 60.0), min_size=20, max_size=20))
def test_a_step_far_beyond_the_range_lands_on_the_bound_of_its_sign(exps, negs, G):
    """test_update_block_exponent's bound grows with |s| / eta, so where the float step s leaves the range by
    far it accepts any code in the range, even the opposite bound (a sign error in the saturated shift). Here:
    where |s| exceeds the range plus that bound, the code must be exactly the bound the float step crosses."""
    tr = _paper_nor_trainer(None)
    dE = np.array([(-1.0 if n else 1.0) * 10.0**e for e, n in zip(exps, negs)])
    G = np.array(G).reshape(4, 5)
    new = tr.updated_codes(dE, G)
    ratio = tr.lr / tr.lsb
    s = ratio * (dE @ G)
    from hge_embedded.train import DEDI_FRAC, DIDV_FRAC, dEdI_codes
    _, k = dEdI_codes(dE)
    h_e, h_g = 2.0**(k - DEDI_FRAC - 1), 2.0**-(DIDV_FRAC + 1)
    B = (h_e * np.abs(G) + h_g * np.abs(dE)[:, None] + h_e * h_g).sum(axis=0)
    err = ratio * B * (1 + 1 / tr.eta) + np.abs(s) / tr.eta + 0.5     # as derived there
    far = np.abs(s) - err > (tr.w_max - tr.w_min)
    want = np.where(s > 0, tr.w_min, tr.w_max)
    assert np.array_equal(new[far], want[far]), (new, want, far)


def test_pooled_stale_test_keeps_its_false_alarm_rate_when_the_noise_grows_with_the_current():
    """A rig whose output noise grows with the current (1/f noise ~ I^2 on a real DNPU; the simulator's is
    constant): the 4 data points of a gate sit at currents 1, 4.6, 21.5 and 100 (arbitrary unit), their
    dI/dV and its noise scale alike, the noise as large as the gradient (a plateau, or a short T). No lag:
    the quadrature is noise alone. Review s6 (strict xfail until session 7): the OLS rule alone flagged 0.5 %
    of these tests (its se counts the 48 small windows' scatter for the 16 large ones that carry the slope).
    Now a second rule must also flag, a t-test that keeps its level <= 1e-3 whatever each window's noise
    level (train_checks.STALE_ROBUST_SIGMAS: the derivation; tests/test_train_checks.py checks it). That
    guarantee alone is too weak to promise 0 of 2000 tests of 5 electrodes; what this measures is the two
    rules together: none flags (0 of 100 000 in a longer run). Premise, so that this could fail: the OLS rule
    alone flags here."""
    from hge_embedded import train_checks as tc
    rng = np.random.default_rng(0)
    levels = np.geomspace(1.0, 100.0, 4)[:, None]
    flagged = ols = 0
    for _ in range(2000):
        u = rng.normal(0.0, 1.0, 5)
        chk = tc.StaleCalibrationCheck(5)
        for _ in range(16):
            g = levels * u + levels * rng.normal(0.0, 1.0, (4, 5))
            chk.add(g, levels * rng.normal(0.0, 1.0, (4, 5)))
        flagged += bool(chk.test()[0].any())
        ols += bool(chk.ols_flags().any())
    assert flagged == 0, flagged
    assert ols >= 5, ols          # the OLS rule alone: ~0.5 % of 2000 (this seed)


def test_pinned_is_judged_with_the_gradient_measured_where_the_task_ends():
    """Review s6 (F7): a task that goes back to its lowest-loss codes (restarts, the rail, a trust check's stop)
    was judged "pinned" or not with the last gradient used, measured at other controls. Now with the one
    measured at those codes (``best_g``, checkpointed)."""
    tr = Trainer(SimulatedDNPU(seed=0, noise=False), tasks.gate("xor"), seed=0, max_iter=6, stop_loss=1e-12)
    seen = []
    tr.run(callback=lambda t: seen.append((t.losses[-1], t.last_g.copy())))
    best = min(range(len(seen)), key=lambda i: seen[i][0])
    assert np.array_equal(tr.best_g, seen[best][1])   # recorded at the lowest loss's iteration
    # The task went back to codes on the upper bound of every control, where the gradient measured points
    # out of the range (dE/dV < 0 at the upper bound), while the last gradient used points in.
    n = len(tr.w_max)
    tr.codes, tr.best_codes = tr.w_max.copy(), tr.w_max.copy()
    tr.best_g, tr.last_g, tr.ended_at_best = -np.ones(n), np.ones(n), True
    r = tr.result(0.0)
    assert r.found is False   # premise: every control on its upper bound is no XOR
    assert r.failure == "pinned"
    tr.ended_at_best = False   # ended where the last step left it: the last gradient judges, pointing in
    assert tr.result(0.0).failure != "pinned"
    again = Trainer(SimulatedDNPU(seed=0, noise=False), tasks.gate("xor"), seed=0, max_iter=6, stop_loss=1e-12)
    again.load_state(tr.state())
    assert np.array_equal(again.best_g, tr.best_g)


def test_the_descent_check_is_not_run_on_batches(monkeypatch):
    """Review s6 (F6): with --batch-size consecutive losses are of different batches, so the descent check
    (loss change against the step's prediction) would judge the batches, not the step: it is not run.
    Premise: the full-batch trainer does feed it."""
    from hge_embedded import train_checks as tc
    calls = []
    orig = tc.DescentCheck.add
    monkeypatch.setattr(tc.DescentCheck, "add", lambda self, *a: (calls.append(1), orig(self, *a))[1])
    task = tasks.gate("xor")
    Trainer(SimulatedDNPU(seed=0), task, seed=0, max_iter=4, stop_loss=1e-12).run()
    assert len(calls) >= 3
    calls.clear()
    Trainer(SimulatedDNPU(seed=0), task, seed=0, max_iter=4, stop_loss=1e-12, batch_size=3).run()
    assert calls == []


@pytest.mark.parametrize("trainer", ["host", "firmware"])
def test_inputs_outside_the_limits_are_refused_naming_electrode_voltages_and_limits(trainer):
    """A new user's device whose input electrode 6 reaches only 0.5 V: the refusal names the electrode, the task's
    voltages beyond the limit and the limits (it named the electrodes alone), before anything is measured."""
    import re
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).parent))
    from audit_devices import Linear
    from hge_embedded import firmware_trainer
    d = Linear()
    d.limits[5] = [-1.0, 0.5]
    make = Trainer if trainer == "host" else firmware_trainer.FirmwareRun
    n = len(d.applied)
    with pytest.raises(ValueError, match=re.escape("electrode 6: inputs [0.7] V outside its limits [-1, 0.5] V")):
        make(d, tasks.gate("xor"), seed=0)
    assert len(d.applied) == n   # refused before the first sample


def test_a_found_gate_gets_no_advice_to_change_its_step():
    """New-user trial, session 6: a hopping all-gates run printed "nor found after 300 iterations ... (loss
    oscillating: ... try --lr 0.01 ...)". The note is for tasks not found; a found gate keeps none."""
    from hge_embedded import train_checks as tc
    tr = Trainer(SimulatedDNPU(seed=0, noise=False), tasks.gate("xor"), seed=0, max_iter=40, stop_loss=1e-12)
    tr.run()
    tr.losses = [0.3, 0.6] * 30   # a 2-cycle above the stop loss
    assert tc.loss_trend(tr.losses) == "oscillating"   # premise: the note's condition holds
    r = tr.result(0.0)
    assert r.found is True   # premise
    assert r.diagnosis is None and r.failure is None
