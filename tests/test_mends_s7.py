"""Small defects left open by session 6 (the new-user trial and review s6), each test failing on the
code before its fix: ``hge gradient --method fd``'s frequency column, the progress bar of a run that
stops early, and what ``hge calibrate`` writes on a device without a setup file."""
import json
import math
from pathlib import Path

import numpy as np
import pytest

from hge_embedded.cli import main

HERE = Path(__file__).parent


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


# -- hge gradient --method fd: no frequency, and it says so -------------------------------------------
def test_fd_prints_no_nan_and_its_json_has_no_nan(capsys):
    """Finite differences perturb no frequency: the text printed 'nan' in the f [Hz] column. Now '-';
    --json keeps one entry per electrode (null, as for every non-finite number) and names the method."""
    code, out, err = run(capsys, "gradient", "--method", "fd", "--electrodes", "1,2")
    assert code == 0, err
    assert "nan" not in out.lower()
    rows = [ln.split() for ln in out.splitlines() if ln.strip()[:1].isdigit()]
    assert [r[0] for r in rows] == ["1", "2"] and all(r[1] == "-" for r in rows)
    assert all(math.isfinite(float(r[2])) for r in rows)          # the gradient itself is printed
    code, out, err = run(capsys, "gradient", "--method", "fd", "--electrodes", "1,2", "--json")
    assert code == 0, err
    assert "NaN" not in out
    d = json.loads(out)
    assert d["method"] == "fd" and d["freqs_Hz"] == [None, None] and len(d["gradient_nA_per_V"]) == 2
    # HGE keeps its frequencies in both.
    code, out, err = run(capsys, "gradient", "--electrodes", "1,2", "--json")
    d = json.loads(out)
    assert d["method"] == "hge" and all(f > 0 for f in d["freqs_Hz"])
    code, out, err = run(capsys, "gradient", "--electrodes", "1,2")
    rows = [ln.split() for ln in out.splitlines() if ln.strip()[:1].isdigit()]
    assert [float(r[1]) for r in rows] == pytest.approx(d["freqs_Hz"], abs=0.05)



def test_an_unreliable_stderr_is_marked_in_the_table(capsys):
    """The noisy simulator's 1/f drift is not in FD's one-pair stderr (the result says stderr_reliable
    False, with warnings on stderr): the table marks its stderr column and says why below it, so a
    table read alone does not pass that stderr as trustworthy. The default HGE read (reliable on this
    device) carries no mark."""
    code, out, err = run(capsys, "gradient", "--method", "fd", "--electrodes", "1,2", "--json")
    assert code == 0 and json.loads(out)["stderr_reliable"] is False   # the premise, from the result
    code, out, err = run(capsys, "gradient", "--method", "fd", "--electrodes", "1,2")
    assert code == 0, err
    head = next(ln for ln in out.splitlines() if ln.split()[:1] == ["electrode"])
    assert head.split()[-2] == "stderr*" and "* stderr not reliable" in out
    code, out, err = run(capsys, "gradient", "--electrodes", "1,2", "--json")
    assert code == 0 and json.loads(out)["stderr_reliable"] is True   # premise
    code, out, err = run(capsys, "gradient", "--electrodes", "1,2")
    assert "stderr*" not in out and "not reliable" not in out

# -- hge calibrate's file is read back by --calibration FILE (checked against the chain) ----------------
def _grad(capsys, *extra):
    code, out, err = run(capsys, "gradient", "--no-noise", "--electrodes", "1,2,3", "--json", *extra)
    assert code == 0, err
    return json.loads(out), err


def test_a_calibration_file_is_used_by_gradient_and_only_on_its_own_chain(capsys, tmp_path):
    """Session 6: hge calibrate on the simulator wrote a file that nothing read (a lab user calibrates
    once per rig and reuses it). Now hge gradient/train --calibration FILE use it, after checking its
    chain stamp (written by hge calibrate) against the device and -T."""
    cal = tmp_path / "cal.json"
    code, out, err = run(capsys, "calibrate", "--no-noise", "--out", cal)
    assert code == 0, err
    assert f"--calibration {cal}" in err                                  # the note says how to use it
    stamp = json.loads(cal.read_text())["chain"]
    assert stamp["T_s"] == 0.1 and stamp["device"] == "sim" and stamp["fs_Hz"] == 10000.0
    measured, _ = _grad(capsys)
    reused, _ = _grad(capsys, "--calibration", cal)
    assert measured["calibration_time_s"] > 0 and reused["calibration_time_s"] == 0.0   # not measured again
    # The file's calibration is the one used: the same file turned by 180 deg negates every derivative
    # (noise-free device: the calibrated projection is linear in the calibration's unit phasor).
    data = json.loads(cal.read_text())
    data["phase_rad"] = [p + np.pi for p in data["phase_rad"]]
    turned = tmp_path / "turned.json"
    turned.write_text(json.dumps(data))
    neg, _ = _grad(capsys, "--calibration", turned)
    assert np.allclose(neg["gradient_nA_per_V"], -np.asarray(reused["gradient_nA_per_V"]), rtol=1e-9, atol=1e-9)
    assert np.allclose(reused["gradient_nA_per_V"], reused["true_gradient_nA_per_V"], rtol=0.05)  # premise: right
    # Another window, another chain: refused before anything is measured, naming the flag and the difference.
    code, _, err = run(capsys, "gradient", "--no-noise", "-T", "0.2", "--calibration", cal)
    assert code == 2 and "--calibration" in err and "T_s 0.1 then, 0.2 now" in err
    data = json.loads(cal.read_text())
    data["chain"]["chain_delay_samples"] = 3.3
    other = tmp_path / "other.json"
    other.write_text(json.dumps(data))
    code, _, err = run(capsys, "gradient", "--no-noise", "--calibration", other)
    assert code == 2 and "chain_delay_samples 3.3 then, 2.3 now" in err
    # A file without a stamp (saved from Python) is used as it is, with a note saying so.
    data = json.loads(cal.read_text())
    del data["chain"]
    bare = tmp_path / "bare.json"
    bare.write_text(json.dumps(data))
    plain, err = _grad(capsys, "--calibration", bare)
    assert "unchecked" in err and plain["gradient_nA_per_V"] == reused["gradient_nA_per_V"]


@pytest.mark.parametrize("argv, words", [
    (["gradient", "--phase", "inphase"], "--phase inphase does not use a chain calibration"),
    (["gradient", "--paper-mode"], "--paper-mode does not use a chain calibration"),
    (["gradient", "--method", "fd"], "--calibration belong(s) to the lock-in"),
    (["train", "--task", "xor", "--phase", "magnitude"], "--phase magnitude does not use a chain calibration"),
    (["train", "--task", "xor", "--trainer", "firmware"], "firmware trainer"),
])
def test_a_calibration_file_where_nothing_would_use_it_is_refused(capsys, tmp_path, argv, words):
    cal = tmp_path / "cal.json"
    assert run(capsys, "calibrate", "--no-noise", "--out", cal)[0] == 0
    code, _, err = run(capsys, *argv, "--calibration", cal, "--out" if argv[0] == "train" else "--json",
                       *([tmp_path / "run"] if argv[0] == "train" else []))
    assert code == 2 and words in err, err
    assert not (tmp_path / "run").exists()


def test_train_uses_the_calibration_file_and_resumes_only_with_it(capsys, tmp_path):
    cal = tmp_path / "cal.json"
    assert run(capsys, "calibrate", "--no-noise", "--out", cal)[0] == 0
    common = ["train", "--task", "xor", "--no-noise", "--max-iter", "2", "--no-plots", "--quiet", "--json"]
    code, out, err = run(capsys, *common, "--out", tmp_path / "a")
    assert code == 0, err
    measured = json.loads(out)
    code, out, err = run(capsys, *common, "--out", tmp_path / "b", "--calibration", cal)
    assert code == 0, err
    reused = json.loads(out)
    # The same iterations; without the calibration's 4 loopback windows of 0.1 s.
    assert measured["lab_time_s"] - reused["lab_time_s"] == pytest.approx(0.4, abs=1e-9)
    code, _, err = run(capsys, *common, "--out", tmp_path / "b", "--resume")
    assert code == 2 and "calibration" in err                            # the run's options include the file
    code, _, err = run(capsys, *common, "--out", tmp_path / "b", "--resume", "--calibration", cal)
    assert code == 0, err


def test_a_calibration_file_of_a_device_we_did_not_design(capsys, tmp_path, monkeypatch):
    """A plain object (fs, n_electrodes, limits, measure; no loopback): hge calibrate takes the phase method
    on it, the file is stamped with its --device, rate and electrodes, and is reused only by that device."""
    monkeypatch.syspath_prepend(str(HERE))
    import audit_devices
    cal = tmp_path / "cal.json"
    code, out, err = run(capsys, "calibrate", "--device", "audit_devices:linear", "--out", cal)
    assert code == 0, err
    assert json.loads(cal.read_text())["chain"] == {"fs_Hz": 10000.0, "n_electrodes": 7,
                                                    "device": "audit_devices:linear", "T_s": 0.1}
    audit_devices.CALLS["measure"] = 0
    code, out, err = run(capsys, "gradient", "--device", "audit_devices:linear", "--calibration", cal, "--json")
    assert code == 0, err
    d = json.loads(out)
    assert d["calibration_time_s"] == 0.0 and audit_devices.CALLS["measure"] == 1   # one window, no calibration
    # Linear device: dI/dV = w, within 6 of its own stderr (white noise: ~0.6 nA/V at 8 mV and 0.1 s).
    err6 = 6 * np.asarray(d["stderr_nA_per_V"])
    assert np.all(np.abs(np.asarray(d["gradient_nA_per_V"]) - audit_devices.Linear().w) < err6)
    code, _, err = run(capsys, "gradient", "--device", "audit_devices:clipping", "--calibration", cal)
    assert code == 2 and "device 'audit_devices:linear' then, 'audit_devices:clipping' now" in err


# -- the progress bar of a run that ends early: at what ran, saying why ------------------------------------
class _Tty:
    """A text stream that says it is a terminal (tqdm's bar), keeping what was written."""

    def __init__(self):
        import io
        self.buf = io.StringIO()

    def write(self, text):
        return self.buf.write(text)

    def flush(self):
        pass

    def isatty(self):
        return True


@pytest.mark.parametrize("tty", [False, True])
def test_progress_ends_at_the_work_done_when_the_plan_shrinks(tty):
    import io

    from hge_embedded.progress import Progress
    f = _Tty() if tty else io.StringIO()
    p = Progress(300, "train xor", file=f, interval=0.0)
    p.update(20)
    p.shrink(280, postfix="xor ended at iteration 20 of 300: stop loss")
    assert (p.n, p.total) == (20, 20)
    if tty:
        assert p._bar.total == 20 and p._bar.n == 20
    p.close()
    text = (f.buf if tty else f).getvalue()
    last = text.replace("\r", "\n").strip().splitlines()[-1] if not tty else text
    assert "20/20" in text and "300/300" not in text
    if not tty:   # the log's last line: the count that ran and why it ended
        assert "20/20" in last and "ended at iteration 20 of 300: stop loss" in last
    q = Progress(10, "x", file=io.StringIO(), interval=1e9)
    q.update(4)
    q.shrink(100)                 # never below what is done
    assert (q.n, q.total) == (4, 4)


def test_train_log_ends_at_the_iterations_run_and_says_why(capsys, tmp_path):
    """Session 6 (new-user trial): `hge train --task xor` stops at the stop loss after 20 of 300 iterations,
    and the bar jumped to 300/300. In a log (stderr not a terminal) it now ends at 20/20, saying why."""
    code, out, err = run(capsys, "train", "--task", "xor", "--out", tmp_path / "r", "--no-plots")
    assert code == 0, err
    last = [ln for ln in err.splitlines() if ln.startswith("train xor")][-1]
    assert "300/300" not in err and "20/20" in last
    assert "ended at iteration 20 of 300: loss 0.0071 below the stop loss 0.008" in last
    # A resumed finished run shows the same.
    code, out, err = run(capsys, "train", "--task", "xor", "--out", tmp_path / "r", "--no-plots", "--resume")
    assert code == 0, err
    last = [ln for ln in err.splitlines() if ln.startswith("train xor")][-1]
    assert "20/20" in last and "ended at iteration 20 of 300" in last


def test_train_log_says_a_trust_check_ended_the_task(capsys, tmp_path):
    """A calibration turned by 180 deg (unstamped, so --calibration takes it with a note): the descent check
    stops the task; the bar ends at the iterations run and names the check."""
    cal = tmp_path / "cal.json"
    assert run(capsys, "calibrate", "--out", cal)[0] == 0
    data = json.loads(cal.read_text())
    data["phase_rad"] = [p + np.pi for p in data["phase_rad"]]
    del data["chain"]
    cal.write_text(json.dumps(data))
    code, out, err = run(capsys, "train", "--task", "xor", "--out", tmp_path / "r", "--no-plots", "--json",
                         "--calibration", cal)
    assert code == 0, err
    n = json.loads(out)["iterations"]
    assert n < 300
    last = [ln for ln in err.splitlines() if ln.startswith("train xor")][-1]
    assert f"{n}/{n}" in last and f"ended at iteration {n} of 300: stopped: the loss rises along" in last


def test_task_end_reason_names_the_rail_and_max_iter():
    from types import SimpleNamespace

    from hge_embedded.cli import task_end_reason
    r = SimpleNamespace(task="and (0001)", iterations=7, final_loss=0.3,
                        stopped="output on the rail at iteration 6: 40 samples at full scale")
    assert task_end_reason(r, 300, 0.008) == "and (0001) ended at iteration 7 of 300: stopped: output on the rail " \
                                            "at iteration 6"
    r = SimpleNamespace(task="and (0001)", iterations=300, final_loss=0.3, stopped=None)
    assert task_end_reason(r, 300, 0.008).endswith("--max-iter reached")


def test_firmware_train_log_counts_its_iterations(capsys, tmp_path):
    """The firmware trainer also reports the loss measured after its last update (its iteration does not
    advance there): the bar counted 22 for 21 iterations. It ends at the iterations run, saying why."""
    code, out, err = run(capsys, "train", "--task", "xor", "--trainer", "firmware", "--out", tmp_path / "f",
                         "--no-plots", "--json")
    assert code == 0, err
    n = json.loads(out)["iterations"]
    assert n < 300   # premise: it ended early
    last = [ln for ln in err.splitlines() if ln.startswith("train xor")][-1]
    assert f" {n}/{n} " in last and f"ended at iteration {n} of 300: loss" in last
