"""hge bench core: the baseline computes the same demodulation, rows carry every field.
(Speed is printed by the bench, never asserted.)"""
import io

import numpy as np
import scipy.signal as sig

from hge_embedded import bench, design

FS = 10_000.0


def plain_numpy(x, freqs, sos, gain, filt):
    """The demodulation written out sample by sample in numpy (no cache, no einsum)."""
    x = x - x.mean()
    arg = 2 * np.pi / FS * np.outer(freqs, np.arange(x.size))
    prod = np.concatenate([np.sin(arg) * x, np.cos(arg) * x])
    if filt == "boxcar":
        return prod.mean(axis=1)
    g = x.size // 8
    u = prod[:, :g * 8].reshape(prod.shape[0], g, 8).mean(axis=2)
    return sig.sosfilt(sos, u, axis=1)[:, -1] / gain


def test_fair_baseline_is_the_same_demodulation():
    rng = np.random.default_rng(3)
    n, freqs = 4003, np.array([40.0, 230.0, 1210.0])
    x = rng.normal(0, 1e5, n) + 3e4
    lf = design.lockin_filter(FS, n / FS, n)
    for filt in ("butterworth3", "boxcar"):
        fast = bench.NumpyLockin(FS, freqs, n, filt, lf.sos, lf.gain_float)(x)
        ref = plain_numpy(x, freqs, lf.sos, lf.gain_float, filt)
        # Same float64 operations up to summation order: relative 1e-9 of the scale
        # (n * |x| * eps ~ 4e3 * 1e5 * 2e-16 against outputs ~ 1e5 / sqrt(n)).
        assert np.allclose(fast, ref, rtol=0, atol=1e-9 * np.abs(x).max()), filt


def test_bench_core_rows_and_progress():
    out = io.StringIO()
    rows = bench.bench_core(terminals=(1, 5), lengths=(800,), min_total=0.001, progress=out)
    assert [(r["filter"], r["terminals"]) for r in rows] == [
        ("butterworth3", 1), ("boxcar", 1), ("butterworth3", 5), ("boxcar", 5)]
    for r in rows:
        assert r["c_ns"] > 0 and r["numpy_ns"] > 0 and r["c_portable_ns"] > 0
        assert np.isclose(r["ratio"], r["numpy_ns"] / r["c_ns"])
        assert r["c_cpu_1t_ns"] > 0 and r["numpy_cpu_ns"] > 0 and r["c_threads"] >= 1
        assert np.isclose(r["ratio_cpu_1t"], r["numpy_cpu_ns"] / r["c_cpu_1t_ns"])
        assert r["c_instructions"] is None or r["c_instructions"] > 0
    assert out.getvalue().count("bench core:") == len(rows)
    assert "ratio" in bench.format_core(rows)


def test_bench_core_progress_callable():
    """The CLI's progress bar: progress(done, total, label) before each row and at the end."""
    calls = []
    rows = bench.bench_core(terminals=(2,), lengths=(400,), filters=("boxcar",), min_total=0.001,
                            progress=lambda d, t, label: calls.append((d, t, label)))
    assert len(rows) == 1
    assert calls[0] == (0, 1, "boxcar M=2 N=400") and calls[-1] == (1, 1, "done")


def test_bench_core_rows_name_the_cache_and_check_arguments():
    import pytest
    rows = bench.bench_core(terminals=(5,), lengths=(400,), filters=("butterworth3",), min_total=0.001,
                            progress=io.StringIO())
    assert rows[0]["c_cache"] == "scaled"  # LockinPlan's layout for a small Butterworth plan
    with pytest.raises(ValueError, match="terminals"):
        bench.bench_core(terminals=(0,), lengths=(400,))
    with pytest.raises(ValueError, match="lengths"):
        bench.bench_core(terminals=(3,), lengths=(7,))


def test_cli_bench_core_takes_terminals_and_lengths(capsys):
    from hge_embedded import cli
    assert cli.main(["bench", "core", "--terminals", "3", "--lengths", "256", "--min-time", "0.001",
                     "--rounds", "1", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "butterworth3     3     256" in out and "boxcar           3     256" in out


def test_ratio_rounds_are_interleaved():
    """C and numpy rounds alternate, so a change of load hits both sides of the ratio."""
    calls = []
    best = bench._best_times_interleaved([lambda: calls.append("c"), lambda: calls.append("np")], 0.0, 3)
    assert calls == ["c", "np"] * 4  # warm-up, then 3 rounds of one call each (min_total 0)
    assert len(best) == 2 and all(b >= 0 for b in best)
