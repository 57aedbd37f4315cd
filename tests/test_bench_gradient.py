"""`hge bench gradient` end to end on a small budget: it runs, counts what it was asked for, and its
report states the figures it measured (the figures themselves are the benchmark's, not the test's)."""
import json
import math

from hge_embedded import bench
from hge_embedded.cli import main


def test_bench_gradient_reports_what_it_ran():
    stages = []
    r = bench.bench_gradient(points=2, reps=4, progress=lambda done, total, label: stages.append((done, total)))
    assert stages == [(k, 12) for k in range(1, 13)]  # every stage reported, in order
    assert r["points"] == 2
    text = bench.format_gradient(r)
    assert "2 random bias points" in text
    w = r["wall_time_ms"]
    assert set(w) == {"measure", "core_demodulate", "host_overhead", "total"}
    assert all(math.isfinite(x) for x in w.values()) and w["total"] > 0 and w["measure"] > 0
    for v in r["noise_free_accuracy"].values():
        assert 0 <= v["max"] and math.isfinite(v["max"])


def test_bench_gradient_cli_json(capsys):
    assert main(["bench", "gradient", "--points", "2", "--reps", "4", "--json", "--quiet"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["points"] == 2
