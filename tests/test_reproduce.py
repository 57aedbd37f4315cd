"""hge reproduce: summary schema, files, a few numbers checked against derived values, --paper-mode wiring."""
from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest

from hge_embedded import analysis, cli, reproduce
from hge_embedded.reproduce import fig3
from hge_embedded.reproduce.common import (ROW_FIELDS, VERDICTS, Progress, Row, verdict_close, write_csv)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SUBSET = ["3b", "speedup", "1c"]


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("reproduce")
    summary = reproduce.run(out, figures=SUBSET, quick=True, seed=0, progress=False)
    return out, summary


def _csv(path):
    with open(path) as fh:
        return list(csv.DictReader(fh))


def test_registry_has_every_figure_of_the_issue():
    assert list(reproduce.FIGURES) == ["1c", "2b", "2c", "2d", "2e", "3b", "3c", "3d", "4a", "4b", "4c", "4d",
                                       "speedup"]


def test_summary_schema_and_files(quick_run):
    out, summary = quick_run
    assert summary["figures"] == SUBSET and summary["quick"] is True and summary["paper_mode"] is False
    rows = summary["rows"]
    assert {r["figure"] for r in rows} == set(SUBSET)
    for r in rows:
        assert tuple(r) == ROW_FIELDS
        assert r["verdict"] in VERDICTS
        assert all(isinstance(r[k], str) and r[k] for k in ROW_FIELDS)
        # Without --paper-mode a row that ran a read-out says which one.
        if r["figure"] == "speedup":
            assert "project mode" in r["parameters"]
        if r["verdict"] == "disagree":
            assert "why:" in r["parameters"]
    on_disk = json.loads((out / "summary.json").read_text())
    assert on_disk["rows"] == rows
    md = (out / "summary.md").read_text()
    assert sum(line.startswith("| ") and not line.startswith("| #") for line in md.splitlines()) == len(rows)
    for fid in SUBSET:
        pngs = list((out / fid).glob("*.png"))
        data = list((out / fid).glob("*.csv"))
        assert pngs and data, fid
        for p in pngs:
            blob = p.read_bytes()
            assert blob[:8] == PNG_MAGIC and len(blob) > 5000, p
            import matplotlib.image as mpimg
            img = mpimg.imread(p)
            assert img.shape[0] > 100 and img.shape[1] > 100 and np.ptp(img) > 0, p


def test_speedup_counts_windows(quick_run):
    out, _ = quick_run
    rows = {r["method"]: float(r["lab_time_s"]) for r in _csv(out / "speedup" / "lab_time.csv")}
    # One 0.1 s window for all 7 electrodes, one per electrode sequentially, two per electrode for FD.
    assert rows["parallel HGE"] == pytest.approx(0.1)
    assert rows["sequential HGE"] == pytest.approx(0.7)
    assert rows["finite differences"] == pytest.approx(1.4)


def test_3b_parallel_over_sequential(quick_run):
    """Ratio 2.05: parallel >> sequential at 10 Hz, ~1 at 40 Hz, against the finite-window Eq. 7."""
    out, _ = quick_run
    rows = {float(r["spacing_Hz"]): r for r in _csv(out / "3b" / "mse_vs_spacing.csv")}
    p = json.loads((out / "3b" / "parameters.json").read_text())
    S = p["S_at_channel_nA2_per_Hz"]
    g, seq_model = p["gradient_nA_per_V"], p["mse_sequential_model_nA2_per_V2"]
    model = analysis.mse_parallel([10.0, 40.0], S, 0.008, g, fig3.F_CHANNEL_HZ, 10_000.0, 0.1, "butterworth3",
                                  ratio=2.05, neighbours=6) / seq_model
    q10 = float(rows[10.0]["parallel_over_sequential_ratio2.05"])
    q10_se = float(rows[10.0]["parallel_over_sequential_ratio2.05_se"])
    q40 = float(rows[40.0]["parallel_over_sequential_ratio2.05"])
    q40_se = float(rows[40.0]["parallel_over_sequential_ratio2.05_se"])
    # 10 Hz: the first-order model is a lower bound for the 2R/a read-out (its quadrature error adds
    # on top of the in-phase one), so the MC must reach the model within its 3 s.e.
    assert model[0] > 10
    assert q10 > model[0] - 3 * q10_se
    # 40 Hz: the model's excess over sequential is model[1] - 1 (~0.5 %); the MC ratio is within
    # 3 s.e. of it (paired noise makes the s.e. small, ~2 % at 60 windows).
    assert abs(q40 - model[1]) < 3 * q40_se + 0.01
    # The sequential MC agrees with Eq. 8's sequential MSE: a mean of 60 squared Gaussian errors has a
    # relative s.e. sqrt(2/60) = 18 %; 3 s.e. = 55 %.
    seq = float(rows[40.0]["mse_sequential_nA2_per_V2"])
    assert abs(seq / seq_model - 1) < 3 * np.sqrt(2 / 60)


def test_1c_per_decade_ratio(quick_run):
    """1/f noise: S(f) / S(10 f) = 10, so the HGE variance falls 10x per decade (the lock-in reads S near f)."""
    out, _ = quick_run
    rows = _csv(out / "1c" / "data.csv")
    assert rows, "1c wrote no rows"
    for r in rows:
        v10, v100 = float(r["var_hge_10Hz_units2"]), float(r["var_hge_100Hz_units2"])
        e10, e100 = float(r["var_hge_10Hz_se_units2"]), float(r["var_hge_100Hz_se_units2"])
        ratio = v10 / v100
        rel = np.hypot(e10 / v10, e100 / v100)
        assert abs(np.log(ratio / 10.0)) < 3 * rel, (ratio, rel)


def test_cli_json_and_paper_mode(tmp_path, capsys):
    assert cli.main(["reproduce", "--figure", "speedup", "--quick", "--paper-mode", "--quiet",
                     "--out", str(tmp_path), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["paper_mode"] is True and [r["figure"] for r in printed["rows"]] == ["speedup"]
    assert "paper mode" in printed["rows"][0]["parameters"]
    assert json.loads((tmp_path / "summary.json").read_text())["rows"] == printed["rows"]


def test_cli_rejects_unknown_figure(tmp_path, capsys):
    assert cli.main(["reproduce", "--figure", "9z", "--out", str(tmp_path)]) == 2
    assert "unknown ID '9z'" in capsys.readouterr().err
    assert not (tmp_path / "summary.json").exists()


@pytest.mark.parametrize("seed", [-1, 1.5, True])
def test_run_rejects_bad_seed(tmp_path, seed):
    with pytest.raises(ValueError, match="seed"):
        reproduce.run(tmp_path, figures=["speedup"], seed=seed)


def test_gradient_paper_mode_maps_to_the_published_read_out(monkeypatch, capsys):
    from hge_embedded import gradient
    seen = {}
    real = gradient.extract_gradient

    def spy(*a, **kw):
        seen.update(kw)
        return real(*a, **kw)
    monkeypatch.setattr(gradient, "extract_gradient", spy)
    assert cli.main(["gradient", "--paper-mode", "--no-noise", "--json"]) == 0
    assert seen["phase"] == "magnitude" and seen["crosstalk"] == "none"
    capsys.readouterr()


def _spy_trainers(monkeypatch):
    """Record every Trainer the CLI builds (the run itself goes ahead with --max-iter 0)."""
    from hge_embedded import train
    built = []

    class Spy(train.Trainer):
        def __init__(self, *a, **kw):
            super().__init__(*a, **kw)
            built.append(self)

    monkeypatch.setattr(train, "Trainer", Spy)
    return built


def test_train_paper_mode_maps_to_the_published_method(monkeypatch, tmp_path, capsys):
    import inspect

    from hge_embedded import train
    has_init = "init" in inspect.signature(train.Trainer.__init__).parameters
    built = _spy_trainers(monkeypatch)
    assert cli.main(["train", "--task", "and", "--paper-mode", "--max-iter", "0", "--quiet", "--no-noise",
                     "--no-plots", "--out", str(tmp_path)]) == 0
    capsys.readouterr()
    tr, = built
    assert tr.window.phase == "magnitude" and tr.window.crosstalk == "none"
    assert tr.loss_scale == 1.0
    assert getattr(tr, "init", None) == "single" if has_init else tr.task.init_candidates == 1
    assert json.loads((tmp_path / "config.json").read_text())["paper_mode"] is True


def test_train_without_paper_mode_keeps_the_project_method(monkeypatch, tmp_path, capsys):
    built = _spy_trainers(monkeypatch)
    assert cli.main(["train", "--task", "and", "--max-iter", "0", "--quiet", "--no-noise", "--no-plots",
                     "--out", str(tmp_path)]) == 0
    capsys.readouterr()
    tr, = built
    assert tr.window.phase == "calibrated" and tr.window.crosstalk == "solve" and tr.loss_scale == 10.0


def test_verdict_rule():
    # |d| <= max(2 sigma, rel_tol |target|, abs_tol): agree; up to twice that: partial.
    assert verdict_close(10.5, 10.0, 0.1, 0.1) == "agree"        # tol 1.0
    assert verdict_close(11.5, 10.0, 0.1, 0.1) == "partial"      # 1.5 <= 2.0
    assert verdict_close(12.5, 10.0, 0.1, 0.1) == "disagree"
    assert verdict_close(10.5, 10.0, 0.3, 0.0) == "agree"        # 2 sigma = 0.6
    assert verdict_close(0.04, 0.0, 0.0, 0.0, abs_tol=0.05) == "agree"
    assert verdict_close(float("nan"), 1.0, 0.1, 0.1) == "disagree"
    with pytest.raises(ValueError, match="verdict"):
        Row("x", "c", "p", "q", "u", "maybe", "params")


def test_write_csv_rejects_ragged_columns(tmp_path):
    with pytest.raises(ValueError, match="differ in length"):
        write_csv(tmp_path / "x.csv", {"a_V": [1, 2], "b_nA": [1]})


def test_progress_plain_lines_when_not_a_terminal():
    buf = io.StringIO()
    p = Progress("3b", 4, stream=buf, every=0.0)
    p.advance(2)
    p.close()
    lines = buf.getvalue().splitlines()
    assert "\r" not in buf.getvalue()
    assert lines[0].startswith("reproduce 3b:  50.0 %") and "ETA" in lines[0]
    assert lines[-1].startswith("reproduce 3b: 100.0 %")
