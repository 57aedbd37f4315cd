"""CPU cost of the trainer's pooled stale-calibration test per iteration (``StaleCalibrationCheck.add`` then
``.test``), for an all-gates iteration (4 windows, 5 controls) and a sphere iteration (300 windows, 3 controls).

    python tools/bench_stale_check.py

prints one line per case: microseconds of CPU time (``time.process_time``), best of 7 repeats of 500 calls on a
full pool, so that the other engineers' load on the machine does not enter it.

    python tools/bench_stale_check.py --false-alarms 100000

counts, instead, how many pooled tests of an unchanged chain flag when the noise grows with the current
(tests/test_review_s6.py's model: 16 gate iterations of 4 data points at currents 1..100, dI/dV and noise
scaled alike, noise as large as the gradient; 5 electrodes per test): both rules together (what stops a run)
and the OLS rule alone (session 6). Seeded; 100 000 tests take about 3-4 min.

    python tools/bench_stale_check.py --false-alarms 2000 --lag 60

the same model with a chain that lags 60 deg more than calibrated: how many tests detect it (review s7: both
rules 79 of 2000 = 4.0 %, the OLS rule alone 29.6 %; at --lag 30: 0.8 % against 21.8 %; the robust rule rarely
has the power here, one window of each iteration carrying most of sum g^2).
"""
import argparse
import time

import numpy as np

from hge_embedded.train_checks import StaleCalibrationCheck


def cost_us(K: int, m: int, reps: int = 7, calls: int = 500) -> float:
    rng = np.random.default_rng(0)
    g, q = rng.normal(0, 10, (K, m)), rng.normal(0, 1, (K, m))
    chk = StaleCalibrationCheck(m)
    for _ in range(20):   # a full pool, as in a run
        chk.add(g, q)
    best = np.inf
    for _ in range(reps):
        t0 = time.process_time()
        for _ in range(calls):
            chk.add(g, q)
            chk.test()
        best = min(best, (time.process_time() - t0) / calls)
    return best * 1e6


def false_alarms(tests: int, seed: int = 1, lag_deg: float = 0.0) -> tuple:
    """(tests flagged by both rules, by the OLS rule alone) of ``tests`` pooled tests of an unchanged chain; with
    ``lag_deg`` (review s7) of a chain lagging that much more than calibrated, in the same model: the lock-in's
    output turned by the lag (in-phase ``cos``, quadrature ``-sin`` of the true dI/dV), each part with its noise.
    Flags are then detections: the power that goes with the false-alarm rate."""
    rng = np.random.default_rng(seed)
    levels = np.geomspace(1.0, 100.0, 4)[:, None]
    c, s = np.cos(np.radians(lag_deg)), -np.sin(np.radians(lag_deg))
    both = ols = 0
    for _ in range(tests):
        u = rng.normal(0.0, 1.0, 5)
        chk = StaleCalibrationCheck(5)
        for _ in range(16):
            chk.add(c * levels * u + levels * rng.normal(0.0, 1.0, (4, 5)),
                    s * levels * u + levels * rng.normal(0.0, 1.0, (4, 5)))
        both += bool(chk.test()[0].any())
        ols += bool(chk.ols_flags().any())
    return both, ols


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--false-alarms", type=int, metavar="N", help="count false alarms over N tests instead")
    ap.add_argument("--lag", type=float, default=0.0, metavar="DEG",
                    help="with --false-alarms: a chain lagging DEG more than calibrated (detections, not false alarms)")
    args = ap.parse_args()
    if args.false_alarms:
        both, ols = false_alarms(args.false_alarms, lag_deg=args.lag)
        n = args.false_alarms
        what = f"a chain lagging {args.lag:g} deg more" if args.lag else "unchanged chain"
        print(f"current-dependent noise, {what}: {both} of {n} tests flagged (both rules); "
              f"OLS rule alone {ols} of {n} ({100 * ols / n:.2f} %)")
        raise SystemExit(0)
    for K, m, label in ((4, 5, "all-gates iteration (4 windows, 5 controls)"),
                        (300, 3, "sphere iteration (300 windows, 3 controls)")):
        print(f"stale check add+test, {label}: {cost_us(K, m):.1f} us cpu (best of 7 x 500)")
