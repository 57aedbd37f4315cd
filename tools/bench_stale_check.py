"""CPU cost of the trainer's pooled stale-calibration test per iteration (``StaleCalibrationCheck.add`` then
``.test``), for an all-gates iteration (4 windows, 5 controls) and a sphere iteration (300 windows, 3 controls).

    python tools/bench_stale_check.py

prints one line per case: microseconds of CPU time (``time.process_time``), best of 7 repeats of 500 calls on a
full pool, so that the other engineers' load on the machine does not enter it.
"""
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


if __name__ == "__main__":
    for K, m, label in ((4, 5, "all-gates iteration (4 windows, 5 controls)"),
                        (300, 3, "sphere iteration (300 windows, 3 controls)")):
        print(f"stale check add+test, {label}: {cost_us(K, m):.1f} us cpu (best of 7 x 500)")
