"""The 2-cycle test (``train_checks.CycleCheck``) and the trainer's lr halving on it (``lr_backoff``).

Both sides of the test: a 2-cycle of gradient descent on a quadratic (the step too large for its curvature)
is flagged; steady descent, a damped zig-zag and a plateau whose steps are noise alone are not. Then the
trainer: it halves lr (and rebuilds its fixed-point rule) at most ``MAX_LR_HALVINGS`` times, ``lr_backoff=False``
keeps the paper's lr, a resume is bit-exact across a halving, the CLI flag and the config.
"""
from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hge_embedded import SimulatedDNPU
from hge_embedded import train_checks as tc
from hge_embedded.tasks import gate
from hge_embedded.train import Trainer, TrainResult, train_task

LR = 0.02   # the paper's gate lr


def quadratic_gd(lam, x0, *, lr=LR, n=40, box=0.7, centre=None, loss_noise=0.0, rng=None, check=None):
    """Gradient descent x <- clip(x - lr H (x - c)) on E = 1/2 sum lam_i (x_i - c_i)^2 (+ 1 so that E > 0
    everywhere, as corrsig's loss), the loss measured with relative noise ``loss_noise``. Returns the
    iterations at which ``check`` (a CycleCheck, fed (E, x) every iteration) flagged, and the losses."""
    lam = np.asarray(lam, float)
    c = np.zeros(lam.size) if centre is None else np.asarray(centre, float)
    x = np.asarray(x0, float).copy()
    check = check or tc.CycleCheck()
    flags, losses = [], []
    for i in range(n):
        E = 1.0 + 0.5 * float(np.sum(lam * (x - c) ** 2))
        if loss_noise:
            E *= 1.0 + loss_noise * rng.standard_normal()
        losses.append(E)
        check.add(E, x)
        if check.cycling():
            flags.append(i)
        x = np.clip(x - lr * lam * (x - c), -box, box)
    return flags, losses


# -- the test itself, on both sides --------------------------------------------------------------------------

def test_a_two_cycle_on_a_quadratic_is_flagged_once_the_window_is_full():
    # lr lam_1 = 4.4 > 2: the first control's component grows by |1 - 4.4| per step until the box clips it,
    # then bounces between -0.7 and +0.7 V around a minimum at 0.3 V: an asymmetric 2-cycle (E alternates
    # between 1 + 110 * 1.0^2 and 1 + 110 * 0.4^2); the other controls descend steadily (lr lam <= 0.2).
    flags, E = quadratic_gd([220.0, 10.0, 5.0, 3.0, 1.0], [0.31, 0.5, -0.4, 0.2, 0.6], centre=[0.3, 0, 0, 0, 0])
    assert max(E[-10:]) > 100 and min(E[-10:]) < 30            # premise: the loss swings between the walls
    # Flagged as soon as a full window (9 points, 8 steps) lies in the cycle: the growth phase reverses every
    # step too and its loss rises on every step, so the first full window already qualifies.
    assert flags[0] == tc.CYCLE_WINDOW
    # Without the clipping box the same step diverges (lr lam > 2, |r| = 3.4): flagged just the same.
    flags, E = quadratic_gd([220.0, 10.0, 5.0, 3.0, 1.0], [0.01, 0.5, -0.4, 0.2, 0.6], box=1e9, n=12)
    assert E[-1] > 1e3 * E[0] and flags and flags[0] == tc.CYCLE_WINDOW


def test_steady_descent_and_a_damped_zigzag_are_not_flagged():
    # lr lam <= 0.6: every component shrinks without changing sign, the loss falls on every step.
    flags, E = quadratic_gd([30.0, 10.0, 5.0, 3.0, 1.0], [0.6, 0.5, -0.4, 0.2, 0.6], n=200)
    assert np.all(np.diff(E) < 0) and flags == []
    # 1 < lr lam_1 = 1.9 < 2: the first component reverses on every step (r = -0.9) and dominates the step, but
    # it shrinks and the loss falls on every step: harmless, not a cycle.
    chk = tc.CycleCheck()
    flags, E = quadratic_gd([95.0, 1.0, 1.0, 1.0, 1.0], [0.6, 0.01, 0.01, 0.01, 0.01], n=60, check=chk)
    assert np.all(np.diff(E) < 0) and flags == []
    # premise: the steps do reverse (the loss condition alone keeps it quiet) -- the last window's count:
    assert chk.reversals() == tc.CYCLE_WINDOW - 1


def test_steady_descent_with_loss_noise_is_not_flagged():
    # A descent whose loss noise is as large as the loss near the stop loss (measured: sd / E 0.15-1.1 at
    # E < 0.008, train_checks): the loss condition then holds often, but the steps keep pointing one way
    # (lr lam <= 0.3), so no pair reverses. Fixed seed; 40 runs x 200 iterations.
    rng = np.random.default_rng(5)
    for _ in range(40):
        flags, E = quadratic_gd(rng.uniform(1.0, 15.0, 5), rng.uniform(-0.6, 0.6, 5), n=200, loss_noise=1.0,
                                rng=rng)
        assert flags == []


@pytest.mark.parametrize("name, seed", [("and", 1), ("a_or_not_b", 5)])
def test_a_found_gate_in_a_slow_noisy_descent_keeps_its_lr(name, seed):
    """``hge train --task NAME --seed SEED``: found, the loss falling slowly with noise (and: 300 iterations,
    41 % of its steps up; a_or_not_b: 106 iterations): the true gradient outweighs its noise, the steps do
    not reverse, lr is never halved."""
    r, _ = train_task(_cli_device(seed), gate(name), seed=seed)
    assert r.found and np.mean(np.diff(r.losses) > 0) > 0.15   # premise: a found gate whose loss jitters
    assert r.lr_halved_at == [] and r.lr == LR


def _noise_plateau_flags(m, n_windows, loss_sd, seed):
    """Windows of a plateau: each step is lr times an isotropic Gaussian gradient in ``m`` dimensions (noise
    alone), the loss 1 with relative noise ``loss_sd``. Independent windows; returns how many are flagged."""
    rng = np.random.default_rng(seed)
    n = tc.CYCLE_WINDOW + 1
    E = 1.0 + loss_sd * rng.standard_normal((n_windows, n))
    X = np.cumsum(-LR * rng.standard_normal((n_windows, n, m)), axis=1)
    flagged = 0
    chk = tc.CycleCheck()
    for e, x in zip(E, X):
        chk.reset()
        for i in range(n):
            chk.add(e[i], x[i])
        flagged += chk.cycling()
    return flagged


def test_a_noise_only_plateau_is_not_flagged():
    # A plateau at E >= 0.07, where the simulator's loss noise is <= 3.5 % of the loss (measured, train_checks):
    # the swing condition (median |dE| > 10 % of the loss, dE's sd sqrt(2) 3.5 %) needs 4 of 8 |dE| beyond 2.0
    # of their sd (P = 0.043 each): ~2e-4 per window; with every step on one line (reversals 6.25 %) ~1.3e-5
    # per window, 0.04 flags expected in 3000 windows; in 5 dimensions 8.8e-5 times less again.
    assert _noise_plateau_flags(5, 3000, 0.035, seed=1) == 0
    assert _noise_plateau_flags(1, 3000, 0.035, seed=2) == 0   # even with every step on one line


def test_noise_plateau_false_alarm_rate_matches_its_derivation():
    # With a loss noise as large as the loss (the swing condition then holds in about half the windows), the
    # reversal count is the guard: P(>= 6 of 7 cosines < -1/2) = 7 p^6 (1 - p) + p^7 with p = 5/32 in 5
    # dimensions: 8.8e-5 per window (train_checks, derivation above CYCLE_MIN_REVERSALS). Over 20 000 windows
    # at most 1.76 flags are expected; P(Poisson(1.76) > 8) = 9.5e-5 (fixed seed: deterministic anyway).
    n = 20000
    p = 5 / 32
    rate = 7 * p**6 * (1 - p) + p**7
    assert abs(rate - 8.8e-5) < 0.05e-5
    assert _noise_plateau_flags(5, n, 1.0, seed=3) <= 8
    # The documented worst case, every step on one line (p = 1/2: 6.25 % per window before the swing test):
    # the reversal count no longer guards, so many windows are flagged -- this side of the derivation holds too
    # (expected 4000 x 0.0625 x P(swing) ~ 125 with P(swing) ~ 1/2; at least a third of that).
    assert _noise_plateau_flags(1, 4000, 1.0, seed=4) > 4000 * 0.0625 * 0.5 / 3


def test_a_step_that_did_not_move_reverses_nothing():
    chk = tc.CycleCheck()
    x = np.zeros(5)
    for i in range(tc.CYCLE_WINDOW + 1):
        chk.add(1.0 + (i % 2), x)        # the loss swings, the controls never move (pinned, rounded away)
    assert chk.reversals() == 0 and not chk.cycling()


@settings(max_examples=60, deadline=None)
@given(scale=st.floats(1e-4, 1e3), shift=st.floats(-1.0, 1.0), escale=st.floats(1e-3, 1e3),
       seed=st.integers(0, 2**31 - 1))
def test_cycle_check_is_invariant_to_the_units_of_controls_and_loss(scale, shift, escale, seed):
    """The counts use angles between steps and the swing a ratio to the median loss: moving or rescaling the
    controls, or rescaling the loss, changes nothing (up to the round-off of a cosine right at -1/2)."""
    rng = np.random.default_rng(seed)
    X = np.cumsum(rng.standard_normal((tc.CYCLE_WINDOW + 1, 5)) * np.where(rng.random(5) < 0.5, 1, -1), axis=0)
    X[1::2] *= -1                                          # some zig-zag, so both outcomes occur
    E = 1.0 + rng.random(tc.CYCLE_WINDOW + 1)
    a, b = tc.CycleCheck(), tc.CycleCheck()
    for e, x in zip(E, X):
        a.add(e, x)
        b.add(escale * e, scale * x + shift)
    d = np.diff(X, axis=0)
    cos = np.sum(d[:-1] * d[1:], 1) / np.linalg.norm(d[:-1], axis=1) / np.linalg.norm(d[1:], axis=1)
    if np.any(np.abs(cos - tc.CYCLE_COS) < 1e-9):
        return
    assert a.reversals() == b.reversals() == int(np.sum(cos < tc.CYCLE_COS))
    assert a.cycling() == b.cycling()


def test_cycle_check_state_round_trips_and_refuses_a_damaged_one():
    a = tc.CycleCheck()
    for i in range(5):
        a.add(0.5 + 0.1 * i, [i, -i, 0.0])
    b = tc.CycleCheck()
    b.load_state(json.loads(json.dumps(a.state())))
    assert list(b.E) == list(a.E) and all(np.array_equal(u, v) for u, v in zip(a.x, b.x))
    with pytest.raises(ValueError, match="cycle check"):
        b.load_state({"E": [1.0, 2.0], "x": [[0.0]]})
    b.load_state(None)
    assert len(b.E) == 0


def test_loss_trend_uses_the_same_swing_rule():
    E = [0.3, 0.6] * 30
    assert tc.loss_swings(E[-tc.TREND_WINDOW:]) and tc.loss_trend(E) == "oscillating"
    assert not tc.loss_swings([1.0, 0.9]) and not tc.loss_swings(np.linspace(1, 0.1, 20))


# -- the trainer -----------------------------------------------------------------------------------------------

def _cycling_points(n, m=5):
    """(E, x) of a clean 2-cycle (x alternating between two points, the loss between 0.2 and 0.8)."""
    a, b = np.full(m, 0.1), np.full(m, -0.1)
    return [((0.2, a) if i % 2 == 0 else (0.8, b)) for i in range(n)]


def test_back_off_halves_lr_and_rebuilds_the_rule_at_most_max_halvings_times():
    tr = Trainer(SimulatedDNPU(seed=0, noise=False), gate("xnor"), seed=0)
    assert tr.lr == LR and tr.lr_backoff
    halved = []
    for i, (E, x) in enumerate(_cycling_points(80)):
        tr.iteration = i
        if tr.back_off(E, x):
            halved.append(i)
            # The rule now is the one a trainer built with this lr has (eta and shift from lr alone).
            fresh = Trainer(SimulatedDNPU(seed=0, noise=False), gate("xnor"), seed=0, lr=tr.lr)
            assert (tr.eta, tr.shift) == (fresh.eta, fresh.shift)
    # The first flag when the window is full (9 points: iteration 8); each halving starts a new window at its
    # own point, so the next needs 8 more steps; then no more than MAX_LR_HALVINGS.
    assert halved == [8, 16, 24][:tc.MAX_LR_HALVINGS] and tr.lr_halved_at == halved
    assert tr.lr == LR / 2**tc.MAX_LR_HALVINGS


def test_fixed_lr_and_batches_never_halve():
    tr = Trainer(SimulatedDNPU(seed=0, noise=False), gate("xnor"), seed=0, lr_backoff=False)
    tr.run()   # (back_off is not called without lr_backoff; fed directly it would flag: the premise below)
    assert tr.lr == LR and tr.lr_halved_at == []
    tb = Trainer(SimulatedDNPU(seed=0, noise=False), gate("xnor"), seed=0, batch_size=3)
    assert not any(tb.back_off(E, x) for E, x in _cycling_points(40)) and tb.lr == LR
    with pytest.raises(TypeError, match="lr_backoff"):
        Trainer(SimulatedDNPU(seed=0, noise=False), gate("xnor"), seed=0, lr_backoff="no")


def _cli_device(seed):
    """The simulator as ``hge train --seed SEED`` makes it (device 0, the run's noise stream)."""
    return SimulatedDNPU(seed=0, rng=np.random.default_rng(np.random.SeedSequence([seed, 3])))


# ``hge train --task xnor --seed 24``: at lr 0.02 its steps cycle from the start; the test halves lr at
# iterations 10, 24 and 38 (measured; the test below takes them from the uninterrupted run, not from here).
XNOR_SEED = 24


def test_a_run_halves_lr_where_it_cycles_and_the_fixed_lr_run_is_the_same_until_then():
    full, _ = train_task(_cli_device(XNOR_SEED), gate("xnor"), seed=XNOR_SEED, max_iter=45)
    fixed, _ = train_task(_cli_device(XNOR_SEED), gate("xnor"), seed=XNOR_SEED, max_iter=45, lr_backoff=False)
    assert full.lr_halved_at and fixed.lr_halved_at == [] and fixed.lr == LR
    assert full.lr == LR / 2 ** len(full.lr_halved_at)
    k = full.lr_halved_at[0]
    # Until the first halving both runs are one run (the halving acts on the step after loss k)...
    assert full.losses[:k + 1] == fixed.losses[:k + 1]
    assert full.losses[k + 1] != fixed.losses[k + 1]
    # ...and where it halved, the window before it reversed and swung (the flag's own condition, re-derived
    # from the recorded path: the controls each loss was measured at).
    chk = tc.CycleCheck()
    for E, x in zip(full.losses[k - tc.CYCLE_WINDOW:k + 1], full.history_controls[k - tc.CYCLE_WINDOW:k + 1]):
        chk.add(E, x)
    assert chk.cycling()
    d = full.to_dict()
    assert TrainResult.from_dict(json.loads(json.dumps(d))).lr_halved_at == full.lr_halved_at
    assert full.summary()["lr"] == full.lr and full.summary()["lr_halved_at"] == full.lr_halved_at


@pytest.mark.parametrize("stop_at", [7, 12])   # inside the first window; just after the first halving
def test_resume_across_a_halving_equals_the_uninterrupted_run(stop_at):
    kw = dict(seed=XNOR_SEED, max_iter=30)
    full, _ = train_task(_cli_device(XNOR_SEED), gate("xnor"), **kw)
    assert full.lr_halved_at and full.lr_halved_at[0] in range(8, stop_at + 20)   # premise: a halving to cross
    states = {}

    def interrupt(tr):
        states["s"] = tr.state()
        if tr.iteration == stop_at:
            raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        train_task(_cli_device(XNOR_SEED), gate("xnor"), callback=interrupt, **kw)
    state = json.loads(json.dumps(states["s"]))   # as a checkpoint holds it
    resumed, tr = train_task(_cli_device(XNOR_SEED), gate("xnor"), state=state, **kw)
    assert resumed.losses == full.losses and np.array_equal(resumed.controls, full.controls)
    assert resumed.lr_halved_at == full.lr_halved_at and resumed.lr == full.lr
    assert resumed.iterations == full.iterations


def test_an_older_state_without_lr_resumes_with_the_lr_it_was_given():
    tr = Trainer(SimulatedDNPU(seed=0, noise=False), gate("xnor"), seed=0, max_iter=3)
    tr.run()
    st = tr.state()
    for k in ("lr", "lr_halved_at", "cycle_check"):
        del st[k]
    t2 = Trainer(SimulatedDNPU(seed=0, noise=False), gate("xnor"), seed=0, max_iter=3, lr=0.01)
    t2.load_state(st)
    assert t2.lr == 0.01 and t2.lr_halved_at == []
    st2 = tr.state()
    st2["lr"] = 0.005
    t3 = Trainer(SimulatedDNPU(seed=0, noise=False), gate("xnor"), seed=0, max_iter=3)
    t3.load_state(st2)
    fresh = Trainer(SimulatedDNPU(seed=0, noise=False), gate("xnor"), seed=0, lr=0.005)
    assert t3.lr == 0.005 and (t3.eta, t3.shift) == (fresh.eta, fresh.shift) and t3.eta != tr.eta


def test_fixed_lr_is_part_of_the_run_config_and_old_checkpoints_resume_with_it():
    from hge_embedded import checkpoint as ck
    from hge_embedded.cli import _config_defaults, _run_config
    from hge_embedded.tasks import parse_tasks
    ns = argparse.Namespace(task="xor", seed=0, device="sim", config=None, device_seed=None, no_noise=False,
                            sim_model="surrogate", T=0.1, filter="butterworth3", engine="c", phase="calibrated",
                            batch_size=None, lr=None, max_iter=None, inputs=None, controls=None, trainer="host",
                            init="single", paper_mode=False, max_step=None, restart_on_stall=False, start="middle",
                            fixed_lr=False)
    backoff = _run_config(ns, None)
    fixed = _run_config(argparse.Namespace(**{**vars(ns), "fixed_lr": True}), None)
    assert backoff["fixed_lr"] is False and "fixed_lr" not in fixed
    defaults = _config_defaults(ns, parse_tasks("xor", 0))
    old = dict(fixed)   # a checkpoint's config before session 7: no "fixed_lr", its lr was fixed
    assert ck.differences(old, fixed, defaults) == []
    diff = ck.differences(old, backoff, defaults)
    assert len(diff) == 1 and diff[0].startswith("--fixed-lr True (checkpoint)")


def test_cli_reports_the_halving_in_json_and_text_and_fixed_lr_turns_it_off(tmp_path, capsys):
    from hge_embedded.cli import main
    args = ["train", "--task", "xnor", "--seed", str(XNOR_SEED), "--max-iter", "14", "--no-plots", "--quiet"]
    assert main(args + ["--json", "--out", str(tmp_path / "a")]) == 0
    (t,) = json.loads(capsys.readouterr().out)["per_task"]
    assert t["lr_halved_at"] and t["lr"] == LR / 2 ** len(t["lr_halved_at"])
    assert json.loads((tmp_path / "a" / "config.json").read_text())["fixed_lr"] is False
    assert main(args + ["--out", str(tmp_path / "b")]) == 0
    assert f"lr halved on a 2-cycle in 1 gate(s): xnor (1001) at {t['lr_halved_at'][0]}" in capsys.readouterr().out
    assert main(args + ["--json", "--fixed-lr", "--out", str(tmp_path / "c")]) == 0
    (t,) = json.loads(capsys.readouterr().out)["per_task"]
    assert t["lr_halved_at"] == [] and t["lr"] == LR
    assert "fixed_lr" not in json.loads((tmp_path / "c" / "config.json").read_text())
    # --paper-mode keeps the paper's fixed lr (stored as --fixed-lr's, so a paper-mode run resumes as before)
    assert main(["train", "--task", "xnor", "--seed", "1", "--max-iter", "1", "--no-plots", "--quiet", "--paper-mode",
                 "--json", "--out", str(tmp_path / "p")]) == 0
    (t,) = json.loads(capsys.readouterr().out)["per_task"]
    assert t["lr_halved_at"] == [] and "fixed_lr" not in json.loads((tmp_path / "p" / "config.json").read_text())
