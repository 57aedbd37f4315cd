"""Found by the session-4 audit (a new user's, an auditor's and a physicist's eye): each test
fails on the code before its fix. Devices are plain objects (tests/audit_devices.py)."""
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hge_embedded import checkpoint as ck
from hge_embedded.cli import main
from hge_embedded.saturation import PILE_RATIO, RUN_MIN, saturated_counts, saturated_samples

HERE = Path(__file__).parent
BIAS = np.array([-0.3, 0.1, -0.5, 0.2, 0.0, -0.4, 0.3])


@pytest.fixture
def devices(monkeypatch):
    monkeypatch.syspath_prepend(str(HERE))
    import audit_devices
    audit_devices.CALLS["measure"] = 0
    return audit_devices


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


# -- saturation: a chain that clips near the crests, and says nothing about its full scale ----
def test_partly_clipped_window_is_refused_not_halved(devices):
    """Linear device (slope 10 nA/V on electrode 1) clipped at 5 nA, biased at 0.5 V: the 7-tone
    window touches the rail at its crests, a few samples at a time (never 16 in a row), half
    the window clipped. Before: gradient 4.9 instead of 10, stderr as usual, no word."""
    from hge_embedded import extract_gradient
    bias = np.array([0.5, 0, 0, 0, 0, 0, 0])
    with pytest.raises(ValueError, match="saturated"):
        extract_gradient(devices.clipping(), bias, phase="inphase")
    r = extract_gradient(devices.clipping(), bias, phase="inphase", saturation="count")
    assert r.saturated_samples > 100 and not r.stderr_reliable
    # The same window below the rail is accepted and right: the check does not fire on a clean one.
    # (S = 1e-6 nA^2/Hz, a = 8 mV, T = 0.1 s: Butterworth stderr ~0.6 nA/V; 5 of them.)
    ok = extract_gradient(devices.clipping(), np.zeros(7), phase="inphase")
    assert ok.saturated_samples == 0 and np.all(np.abs(ok.gradient - devices.Linear().w) < 5 * ok.stderr)


@settings(max_examples=60)
@given(st.integers(1, 7), st.floats(1.0, 1e5), st.floats(0.0, 3.0), st.integers(0, 2**31),
       st.sampled_from([1e-3, 1.0]))
def test_no_pile_up_without_a_rail(tones, amplitude_codes, noise_codes, seed, lsb):
    """Windows that touch no rail are never called saturated: multi-tone (plan frequencies, random
    phases) plus noise, quantised to codes of ``lsb`` nA (``lsb`` = 1e-3: effectively float) --
    including a pure, noise-free tone of a single code, the case the ratio's derivation covers."""
    rng = np.random.default_rng(seed)
    f = np.array([1000, 960, 910, 850, 780, 680, 540][:tones], float)
    t = np.arange(1000) / 1e4
    x = amplitude_codes * np.sin(2 * np.pi * f[:, None] * t + rng.uniform(0, 2 * np.pi, (tones, 1))).sum(0)
    y = np.round(x + rng.normal(0, noise_codes, t.size)) * lsb
    assert saturated_samples(y) == 0
    assert saturated_counts(y[None, :])[0] == 0


def test_pile_up_rule_counts_the_rail():
    """A tone clipped at 60 % of its crest: the samples on the rail are counted (both rails), and
    the vectorised count agrees with the per-window one."""
    t = np.arange(1000) / 1e4
    y = np.clip(np.sin(2 * np.pi * 970 * t), -0.6, 0.6)
    n_rail = int(np.sum(np.abs(y) >= 0.6))
    assert n_rail >= 2 * RUN_MIN and saturated_samples(y) == n_rail
    assert saturated_counts(y[None, :])[0] == n_rail
    assert PILE_RATIO >= 1 / (np.sqrt(2) - 1)  # the derivation's bound for an unclipped crest


# -- the command line: arguments named, nothing measured for a mistake the arguments show -----
@pytest.mark.parametrize("argv, flag", [
    (("train", "--task", "xor", "--seed", "-1"), "--seed"),
    (("gradient", "--device-seed", "-1"), "--device-seed"),
])
def test_negative_seeds_are_usage_errors_naming_the_flag(capsys, argv, flag):
    code, _, err = run(capsys, *argv)
    assert code == 2 and flag in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("factory, words", [
    ("limits_list", "limits must be a numpy array of shape (7, 2)"),
    ("float_count", "n_electrodes must be a whole number"),
    ("count_mismatch", "limits must have shape (6, 2), got (7, 2)"),
    ("bad_fs", "fs must be a finite sample rate"),
])
def test_device_contract_is_checked_where_the_device_enters(capsys, devices, factory, words):
    code, _, err = run(capsys, "gradient", "--device", f"audit_devices:{factory}")
    assert code == 2 and words in err and f"audit_devices:{factory}" in err
    assert devices.CALLS["measure"] == 0


def test_a_failing_factory_is_named(capsys, devices):
    code, _, err = run(capsys, "gradient", "--device", "audit_devices:factory_fails")
    assert code == 1 and "audit_devices:factory_fails" in err and "ConnectionError" in err
    code, _, err = run(capsys, "gradient", "--device", ":")
    assert code == 2 and "--device ':'" in err


def test_calibrate_refuses_an_unwritable_out_before_measuring(capsys, devices, tmp_path):
    code, _, err = run(capsys, "calibrate", "--device", "audit_devices:linear", "--out", tmp_path / "no" / "c.json")
    assert code == 2 and "--out" in err and "nothing was measured" in err
    code, _, err = run(capsys, "calibrate", "--device", "audit_devices:linear", "--out", tmp_path)
    assert code == 2 and "is a directory" in err
    assert devices.CALLS["measure"] == 0


def test_calibrate_refuses_an_amplitude_below_the_dac(capsys, tmp_path):
    """The simulator's loopback calibration at 0.1 mV (a third of a DAC step) gave gains of
    0.08-0.36 instead of ~1, saved silently; a gradient calibrated with it read 4-13x too large."""
    code, _, err = run(capsys, "calibrate", "--amplitude", "0.0001", "--out", tmp_path / "c.json")
    assert code == 2 and "--amplitude" in err and "DAC" in err
    assert not (tmp_path / "c.json").exists()


def test_gradient_amplitude_beyond_the_limits_names_the_flags(capsys, devices):
    code, _, err = run(capsys, "gradient", "--device", "audit_devices:linear", "--amplitude", "5")
    assert code == 2 and "--amplitude 5" in err and "outside its limits" in err
    assert devices.CALLS["measure"] == 0


def test_fd_uses_the_step_and_filter_it_is_given(capsys, devices, monkeypatch):
    """--method fd ignored --amplitude (always 8 mV) and --filter; the lock-in's options were
    accepted and silently unused."""
    made = []
    monkeypatch.setattr(devices, "linear", lambda: made.append(devices.Linear(S=0.0)) or made[-1])
    code, out, err = run(capsys, "gradient", "--device", "audit_devices:linear", "--method", "fd",
                         "--amplitude", "0.05", "--electrodes", "1", "--filter", "boxcar", "--json")
    assert code == 0, err
    v = np.concatenate(made[0].applied, axis=1)[0]
    assert np.isclose(v.max(), 0.05) and np.isclose(v.min(), -0.05)  # the step asked for
    assert json.loads(out)["gradient_nA_per_V"] == pytest.approx([10.0], rel=1e-9)  # linear, noise-free
    code, _, err = run(capsys, "gradient", "--method", "fd", "--mode", "sequential")
    assert code == 2 and "--mode" in err


# -- checkpoints that contradict themselves are refused, and left as they are ------------------
def _state(iteration=3):
    return {"task": "xor (0110)", "seed": 0, "iteration": iteration, "codes": [1, -2, 3, 4, 5],
            "losses": [0.5] * iteration, "history_controls": [[0.0] * 5] * iteration, "outputs": [0.0] * 4,
            "lab_time": 1.5, "done": False, "rng": {}}


@pytest.mark.parametrize("edit, words", [
    (lambda c: c.update(iteration=-5), "iteration must be a whole number >= 0"),
    (lambda c: c.update(iteration=True), "iteration must be a whole number >= 0"),
    (lambda c: c.update(losses=[0.5]), "losses must hold one entry per iteration"),
    (lambda c: c.update(codes=[1, 2, 3]), "has 3 controls"),
    (lambda c: c.update(codes=["a"] * 5), "whole DAC codes"),
    (lambda c: c.update(lab_time=-1.0), "lab_time"),
])
def test_inconsistent_checkpoint_is_refused_untouched(tmp_path, edit, words):
    cur = _state()
    snap = {"config": {"task": "xor"}, "done": [], "device": None, "current": cur}
    path = tmp_path / ck.CHECKPOINT
    ck.save(path, snap)
    assert ck.load(path, {"task": "xor"})["current"] == cur  # the consistent one loads
    edit(cur)
    ck.save(path, snap)
    before = path.read_bytes()
    with pytest.raises(ck.CheckpointError, match=words):
        ck.load(path, {"task": "xor"})
    assert path.read_bytes() == before


def test_a_real_checkpoint_passes_the_consistency_check(capsys, tmp_path):
    """The check is not stricter than what hge train writes (mid-task and finished)."""
    code, _, err = run(capsys, "train", "--task", "all-gates", "--max-iter", "2", "--out", tmp_path / "r",
                       "--no-plots", "--quiet", "--checkpoint-every", "1")
    assert code == 0, err
    data = json.loads((tmp_path / "r" / ck.CHECKPOINT).read_text())
    assert len(data["done"]) == 16 and ck.consistency_problem(data) is None


def test_every_snapshot_of_a_run_passes_the_consistency_check():
    """Mid-task snapshots (one per iteration) and task boundaries, as run_tasks makes them."""
    from hge_embedded import SimulatedDNPU
    from hge_embedded.tasks import gate
    from hge_embedded.train import Trainer, run_tasks
    dev = SimulatedDNPU(seed=0)
    snaps = []
    trainers = [Trainer(dev, gate(g), seed=i, max_iter=3) for i, g in enumerate(("and", "xor"))]
    run_tasks(trainers, config={}, on_snapshot=lambda s, b: snaps.append(json.loads(json.dumps(s))))
    assert len(snaps) == 8 and sum(s["current"] is not None for s in snaps) == 6
    assert all(ck.consistency_problem(s) is None for s in snaps)


@pytest.mark.parametrize("low", [-29.5, -31.4, None])
def test_firmware_trainer_refuses_clipped_windows(devices, low):
    """The C trainer's host boundary checked only the ADC's full scale: the simulator's response
    behind a chain clipping below ``low`` nA (data point 2 sits at -31.3 nA, its crests lower)
    trained on, its derivatives shrunk or zero. -29.5: the whole window on the rail; -31.4: only
    the crests (fewer than 16 samples in a row); None: the rail far away, the run trains.
    The start is drawn from the whole range (``start="full"``, the draw before session 5): the
    outputs above are at that start."""
    from hge_embedded.firmware_trainer import train_task_firmware
    from hge_embedded.tasks import gate
    if low is None:
        r = train_task_firmware(devices.ClippedDNPU(-1e3), gate("nand"), seed=0, max_iter=2, start="full")
        assert len(r.losses) == 3 and r.losses[-1] < r.losses[0]
        return
    with pytest.raises(ValueError, match="data point 2 of 4: .* saturated"):
        train_task_firmware(devices.ClippedDNPU(low), gate("nand"), seed=0, max_iter=2, start="full")


def test_stopped_firmware_run_does_not_promise_a_resume(capsys, monkeypatch, tmp_path):
    """Ctrl-C in `hge train --trainer firmware` said "continue with the same command and --resume",
    which the firmware trainer refuses (it keeps no checkpoints)."""
    from hge_embedded import firmware_trainer

    def interrupted(*a, **kw):
        raise KeyboardInterrupt
    monkeypatch.setattr(firmware_trainer, "train_task_firmware", interrupted)
    code, _, err = run(capsys, "train", "--task", "nand", "--trainer", "firmware", "--out", tmp_path / "fw",
                       "--no-plots")
    assert code == 130
    assert "cannot be resumed" in err and "--resume" not in err


def test_resume_refusal_says_default_not_none():
    assert ck.differences({"lr": None, "seed": 0}, {"lr": 0.03, "seed": 0}) == \
        ["--lr default (checkpoint) vs 0.03 (now)"]


def test_resume_compares_the_setup_files_content(tmp_path):
    """The run's configuration held the setup file's path only: an edited iv.gain (10x every current),
    iv.sign or limits continued the run on another chain without a word."""
    import argparse

    from hge_embedded.cli import _run_config
    setup = tmp_path / "setup.toml"
    setup.write_text("[iv]\ngain = 10.0\n")
    ns = argparse.Namespace(task="xor", seed=0, device="nidaq", config=str(setup), device_seed=None,
                            no_noise=False, sim_model="surrogate", T=0.1, filter="butterworth3", engine="c",
                            phase="calibrated", batch_size=None, lr=None, max_iter=None, inputs=None,
                            controls=None, trainer="host", init="single", paper_mode=False, max_step=None,
                            restart_on_stall=False, start="middle")
    before = json.loads(json.dumps(_run_config(ns, None)))
    assert ck.differences(before, _run_config(ns, None)) == []
    setup.write_text("[iv]\ngain = 100.0\n")
    diff = ck.differences(before, _run_config(ns, None))
    assert len(diff) == 1 and diff[0].startswith("--config (the setup file's content")


def test_an_option_added_later_at_its_default_does_not_block_a_resume():
    """Checkpoints written before config_sha256 existed: a simulator run (no setup file) resumes."""
    assert ck.differences({"seed": 0}, {"seed": 0, "config_sha256": None}) == []
    assert ck.differences({"seed": 0}, {"seed": 0, "config_sha256": "ab"}) != []


def test_noise_free_sequential_window_is_not_called_clipped():
    """One tone at 1000 Hz, noise-free: every level of the 10-sample period repeats 100 times; the
    first period differs in the last digits (the chain's onset), so a stray value sits between the
    top level and the next. Compared with that one value, the top looked piled up (100 vs 1)."""
    from hge_embedded import SimulatedDNPU, extract_gradient
    d = SimulatedDNPU(seed=0, noise=False)
    r = extract_gradient(d, BIAS, mode="sequential")
    g = d.true_gradient(BIAS)
    # The device's cubic term at 8 mV is ~1 % of the RMS gradient (README); 3 % covers it.
    assert np.all(np.abs(r.gradient - g) < 0.03 * np.sqrt(np.mean(g ** 2)))


@pytest.mark.parametrize("T, words", [("0.05", "cannot fit 7 frequencies"), ("0.0001", "pre-sum"),
                                      ("1e9", "longer than 16777216 samples"), ("1000", "quantised poles"),
                                      ("300", "quantised poles")])
def test_gradient_window_mistakes_name_T(capsys, devices, T, words):
    """Before: "n: cannot fit 7 frequencies ..." (an internal argument) or "quantised poles leave the
    unit circle", exit code 1 as if the run had failed."""
    code, _, err = run(capsys, "gradient", "--device", "audit_devices:linear", "-T", T)
    assert code == 2 and err.startswith(f"hge: error: -T {float(T):g} s") and words in err
    assert devices.CALLS["measure"] == 0


def test_calibrate_says_who_reads_the_file(capsys, tmp_path):
    """README: calibrate "writes the setup's calibration file, which the estimator then uses"; for a
    file nobody names (the simulator, a plugin device, an NI setup without [calibration] file) the
    command said only "saved to", and the user believed it in use."""
    code, out, err = run(capsys, "calibrate", "--no-noise", "--out", tmp_path / "c.json")
    assert code == 0 and "saved to" in out
    assert "--calibration" in err and "Calibration.load" in err   # session 7: hge gradient/train read it


def test_train_out_that_cannot_be_a_directory_names_out(capsys, tmp_path):
    """Before: "[Errno 17] File exists: ..." with exit code 1."""
    f = tmp_path / "a_file"
    f.write_text("x")
    code, _, err = run(capsys, "train", "--task", "xor", "--out", f, "--max-iter", "1", "--quiet")
    assert code == 2 and "--out" in err and "is a file" in err
    code, _, err = run(capsys, "train", "--task", "xor", "--out", f / "sub", "--max-iter", "1", "--quiet")
    assert code == 2 and "--out" in err and "cannot create the run directory" in err
