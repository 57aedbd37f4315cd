"""``hge bench train``: the extrapolation's arithmetic and one real (short) run; figures are printed,
never asserted against a speed."""
import json

import pytest

from hge_embedded import bench
from hge_embedded.cli import main


def _row(**kw):
    r = dict(model="m", iterations_measured=2, task_iterations=300, lab_setup_s=40.0, wall_setup_s=2.0,
             cpu_setup_s=1.0, calibration_lab_s=0.5, lab_per_iteration_s=34.5, wall_per_iteration_s=0.5,
             wall_per_iteration_best_s=0.25, cpu_per_iteration_s=0.4, lab_final_s=45.0, wall_final_s=3.0,
             cpu_final_s=2.0, rss_after_imports_bytes=100 * 2**20, max_rss_bytes=200 * 2**20,
             gradient_wall_ms=3.0, gradient_cpu_ms=2.5)
    r.update(kw)
    return r


def test_extrapolate_adds_setup_iterations_and_final_evaluation():
    e = bench.extrapolate(_row())
    lab = 40.0 + 300 * 34.5 + 45.0
    assert e["lab_s"] == pytest.approx(lab)
    assert e["wall_s"] == pytest.approx(2.0 + 300 * 0.5 + 3.0)
    assert e["lab_over_wall"] == pytest.approx(lab / (2.0 + 150 + 3.0))
    assert e["lab_over_wall_best"] == pytest.approx(lab / (2.0 + 75 + 3.0))
    assert e["lab_over_cpu"] == pytest.approx(lab / (1.0 + 120 + 2.0))
    assert e["lab_over_wall_iterations_only"] == pytest.approx(69.0)


def test_format_train_prints_every_model():
    rows = [dict(_row(model=m), **bench.extrapolate(_row(model=m))) for m in ("surrogate", "hopping")]
    text = bench.format_train(rows)
    assert "surrogate" in text and "hopping" in text and "200MB" in text


def test_bench_train_runs_a_short_sphere_run(capsys):
    """One model, one iteration, in its own process: the JSON holds the figures the table prints."""
    assert main(["bench", "train", "--iterations", "1", "--quiet", "--json", "--models", "surrogate"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["bench"] == "train" and [r["model"] for r in out["rows"]] == ["surrogate"]
    r = out["rows"][0]
    # One sphere iteration is 300 windows of 0.1 s and 300 ramps of 15 ms (the first point has none:
    # 299 ramps): 300 * 0.1 + 299 * 0.015 = 34.485 s of lab time, exactly as the trainer counts it.
    assert r["lab_per_iteration_s"] == pytest.approx(300 * 0.1 + 299 * 0.015, rel=1e-9)
    assert r["iterations_measured"] == 1 and r["max_rss_bytes"] >= r["rss_after_imports_bytes"] > 0
    assert r["lab_over_wall"] > 0 and r["gradient_wall_ms"] > 0


def test_bench_train_takes_the_simulator_threads_and_says_the_load(capsys):
    assert main(["bench", "train", "--iterations", "1", "--quiet", "--json", "--models", "surrogate",
                 "--sim-threads", "1"]) == 0
    r = json.loads(capsys.readouterr().out)["rows"][0]
    assert r["sim_threads"] == 1 and r["load_average"] >= 0
    text = bench.format_train([dict(r, **bench.extrapolate(r))])
    assert "simulator threads: surrogate 1" in text and "load average" in text
