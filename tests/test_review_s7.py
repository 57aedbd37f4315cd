"""Review s7: what session 7 merged (0c17a62..758dad2), tested where its own tests could not fail.

Each test here was checked against a mutant of the code it guards (the code broken on purpose: the test
goes red, then the code restored), named in its docstring. The strict xfail at the end is a finding left
for the lead (a design decision), written as the behaviour the documentation promises.
"""
import json
from types import SimpleNamespace

import numpy as np
import pytest

from hge_embedded import SimulatedDNPU
from hge_embedded import train_checks as tc
from hge_embedded.cli import main
from hge_embedded.tasks import gate
from hge_embedded.train import Trainer


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


# -- hge reproduce --paper-mode keeps the paper's fixed lr ----------------------------------------------------
def test_reproduce_paper_mode_trains_with_the_fixed_lr_and_project_mode_halves():
    """``hge reproduce --paper-mode`` (Fig. 4) builds its trainers from ``trainer_method_kwargs(True)`` alone,
    not through ``hge train``'s ``--fixed-lr``: the paper's fixed lr rests on its ``lr_backoff: False``.
    Mutant: drop that key -> the paper-mode trainer halves lr on a 2-cycle; no test went red before this one."""
    from hge_embedded.reproduce import fig4
    dev = SimulatedDNPU(seed=0, noise=False)
    for paper, backoff in ((True, False), (False, True)):
        _, tr, _ = fig4._train(SimpleNamespace(paper_mode=paper), dev, gate("xnor"), 0, max_iter=1)
        assert tr.lr_backoff is backoff, paper


# -- a session-6 checkpoint's stale pool (4 sums per iteration) resumes, its pool empty -----------------------
def test_a_session6_stale_pool_in_a_checkpoint_resumes_with_an_empty_pool():
    """Session 6 kept ``[n, Sgg, Sqg, Sqq, Sml]`` per iteration; session 7 needs 8 sums. The merge says such a
    pool restarts empty (``StaleCalibrationCheck.load_state``). Mutant: keep the old rows -> the resume is
    refused as damaged (the reshape to (8, m) fails); no test went red before this one."""
    tr = Trainer(SimulatedDNPU(seed=0), gate("xor"), seed=0, max_iter=3)
    tr.initialise()
    tr.step()
    st = json.loads(json.dumps(tr.state()))
    m = len(tr.task.control_electrodes)
    assert len(st["stale_check"]) == 1 and len(st["stale_check"][0]) == 1 + tc.StaleCalibrationCheck._SUMS
    st["stale_check"] = [[4.0] + [[1.0] * m] * 4 for _ in range(3)]   # three session-6 iterations
    tr2 = Trainer(SimulatedDNPU(seed=0), gate("xor"), seed=0, max_iter=3)
    tr2.load_state(st)
    assert len(tr2.stale_check.rows) == 0 and tr2.stale_check.stats() is None
    tr2.run()   # and it trains on from there
    assert tr2.iteration == 3


# -- the firmware trainer: a fixed lr, and --json says which --------------------------------------------------
def test_firmware_run_reports_its_fixed_lr_and_stores_no_backoff(capsys, tmp_path):
    """``--json`` per_task gives ``lr`` (README, ``--fixed-lr`` help); the firmware trainer's was null though
    its lr is fixed and known. Its config stores no ``fixed_lr: false`` (it keeps lr fixed; mutant: drop
    ``--trainer firmware`` from the forcing in cmd_train -> the config says the lr could be halved)."""
    code, out, err = run(capsys, "train", "--task", "xor", "--trainer", "firmware", "--out", tmp_path / "f",
                         "--no-plots", "--json", "--quiet", "--max-iter", "3", "--lr", "0.015")
    assert code == 0, err
    (t,) = json.loads(out)["per_task"]
    assert t["lr"] == 0.015 and t["lr_halved_at"] == []
    assert "fixed_lr" not in json.loads((tmp_path / "f" / "config.json").read_text())


# -- the robust stale rule: what it cannot see ----------------------------------------------------------------
# Review s6's rig model (tests/test_review_s6.py): the 4 data points of a gate at currents 1, 4.6, 21.5 and 100,
# their dI/dV alike, so one window of each iteration carries almost all of sum g^2. Noise-free, a chain lagging
# phi more than calibrated gives q = s g with s = -tan(phi) exactly. Then A(x) = (s - x) sum g^2 and
# B(x) = |s - x| sqrt(sum g^4), so the robust rule's margin is at most sqrt(N_eff) / u with
# N_eff = (sum g^2)^2 / sum g^4 (the floor term only lowers it): it can flag only where N_eff > u^2 = 10.2
# (N = 64 windows), WHATEVER the angle. Per iteration N_eff is 1.10 here; 16 iterations pool to 17.6 with a
# constant gradient (a 30 deg lag then flags 2 of 5 electrodes, which stops the task), to 10.5 with a gradient
# growing 10 % per iteration (a descent leaving a flat start: the floor term then keeps a 60 deg lag's margins at
# 0.87-0.99, nothing flagged), to 7.7 with 15 % (below the bound: no angle can be flagged).
# On the default simulator (constant noise, the 4 cases' gradients alike) the pool nearly always has the power:
# over all-gates seeds 0 and 11 (2019 pooled tests) N_eff fell below 10.2 in 2 tests (min 9.8), its 1 % quantile
# 15-16 (measured by wrapping StaleCalibrationCheck.test; review s7's report has the script).
LEVELS = np.geomspace(1.0, 100.0, 4)[:, None]


def _pool(phi_deg, growth, seed=0):
    u = np.random.default_rng(seed).normal(0.0, 1.0, 5)
    chk = tc.StaleCalibrationCheck(5)
    s = -np.tan(np.radians(phi_deg))
    g_all = []
    for k in range(16):                      # 16 gate iterations of 4 windows: the pool of 64
        g = LEVELS * u * growth**k
        chk.add(g, s * g)
        g_all.append(g)
    return chk, np.concatenate(g_all)


def test_robust_rule_is_blind_where_few_windows_carry_the_in_phase_power():
    """What the code does today (the premise of the strict xfail below), derived above."""
    chk, g = _pool(60.0, 1.15)
    n = g.shape[0]
    t = tc.STALE_ROBUST_SIGMAS
    u = t * np.sqrt(n) / np.sqrt(n - 1 + t * t)
    n_eff = (g * g).sum(0) ** 2 / (g ** 4).sum(0)
    assert np.all(n_eff < u * u)                                  # below the bound: no angle can flag
    assert np.all(chk.margin() <= np.sqrt(n_eff) / u + 1e-12)     # the bound, on the class
    assert chk.ols_flags().all()                                  # the OLS rule sees the 60 deg lag
    assert not chk.test()[0].any()                                # both must agree: nothing flagged


@pytest.mark.xfail(strict=True, reason="review s7, left for the lead (a design decision): the robust guard "
                   "(Bakirov-Szekely t-test of g*q) needs the in-phase power spread over more than u^2 ~ 10 "
                   "windows; on review s6's current-dependent rig with a gradient growing 10-15 %/iteration a "
                   "60 deg lag is never flagged (README: 'a half-sample extra lag is caught within 16 iterations')")
def test_a_large_lag_is_flagged_on_the_current_dependent_rig():
    for growth in (1.1, 1.15):
        chk, _ = _pool(60.0, growth)
        assert chk.test()[0].any(), growth


# -- the lr halving: what its docstrings promise, through the trainer ------------------------------------------
LR = 0.02   # the paper's gate lr


def _cycling_points(n, m=5):
    """(E, x) of a clean 2-cycle: x alternating between two points, the loss between 0.2 and 0.8."""
    a, b = np.full(m, 0.1), np.full(m, -0.1)
    return [((0.2, a) if i % 2 == 0 else (0.8, b)) for i in range(n)]


def test_a_restart_on_stall_keeps_the_halved_lr_and_starts_a_new_cycle_window():
    """``Trainer.back_off``: 'A restart (restart_on_stall) keeps the halved lr' and the 2-cycle test starts
    afresh at the new start. Mutant: reset lr to the task's at a restart -> no test went red before this one."""
    tr = Trainer(SimulatedDNPU(seed=0, noise=False), gate("xnor"), seed=0, restart_on_stall=True, max_iter=50)
    tr.initialise()
    for i, (E, x) in enumerate(_cycling_points(tc.CYCLE_WINDOW + 1)):
        tr.iteration = i
        tr.back_off(E, x)
    assert tr.lr_halved_at == [tc.CYCLE_WINDOW] and tr.lr == LR / 2      # premise: halved once
    eta = tr.eta
    tr.stalled = lambda: True                                           # the next step restarts
    tr.step()
    assert tr.restarts == [tc.CYCLE_WINDOW]                              # (the iteration the loop left)
    assert tr.lr == LR / 2 and tr.eta == eta and tr.lr_halved_at == [tc.CYCLE_WINDOW]
    assert len(tr.cycle_check.E) == 0                                    # the window starts at the new start


def test_an_oscillating_end_after_halvings_says_which_halvings_did_not_cure_it():
    """``Trainer.result``: a task whose loss still oscillates at its end after halvings gets
    ``oscillation_note(lr_halved_at, lr)`` (README: 'says which halvings did not cure it and suggests
    --max-step 0.02'), not the fixed-lr note. Mutant: always the fixed-lr note -> no test went red before."""
    tr = Trainer(SimulatedDNPU(seed=0, noise=False), gate("xnor"), seed=0, max_iter=60)
    tr.initialise()
    tr.losses = [0.3, 0.6] * 30                                          # the last 50 swing: 'oscillating'
    tr.history_controls = [tr.controls().tolist()] * 60
    tr.iteration = 60
    tr.lr_halved_at = [8, 16, 24]
    tr.set_lr(LR / 8)
    r = tr.result(0.0)
    assert r.found is False and r.failure == "oscillating"               # premise: the note's case
    assert r.diagnosis == tc.oscillation_note([8, 16, 24], LR / 8) != tc.OSCILLATION_NOTE
    assert "8, 16, 24" in r.diagnosis and "0.0025" in r.diagnosis and "--max-step 0.02" in r.diagnosis


def test_reproduce_fig4_rows_say_whether_lr_was_fixed():
    """Fig. 4's rows state the method they ran (``_method_text``): project mode now halves lr on a 2-cycle
    (the trainer's default since session 7), paper mode keeps it fixed; the text named neither."""
    from hge_embedded.reproduce import fig4
    assert "lr halved on a 2-cycle" in fig4._method_text(SimpleNamespace(paper_mode=False))
    assert "fixed lr" in fig4._method_text(SimpleNamespace(paper_mode=True))


def test_a_calibration_stamp_that_lacks_a_key_is_refused(capsys, tmp_path):
    """A file stamped before ``-T`` was part of the stamp (session 6's NI ``stamp_calibration`` wrote the chain
    alone) does not say which window it covers: refused, naming the key, not taken as matching. Mutant: compare
    only the keys the file has -> accepted; no test went red before this one."""
    cal = tmp_path / "cal.json"
    assert run(capsys, "calibrate", "--no-noise", "--out", cal)[0] == 0
    data = json.loads(cal.read_text())
    del data["chain"]["T_s"]
    cal.write_text(json.dumps(data))
    code, _, err = run(capsys, "gradient", "--no-noise", "--calibration", cal)
    assert code == 2 and "T_s None then, 0.1 now" in err, err
