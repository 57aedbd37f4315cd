"""The hopping model's speed in CPU time (best of N rounds, robust to other jobs on the machine):
the Newton solve per point in both kernels, the window derivatives per centre, one sphere training
iteration on one simulator thread, and ``extract_gradient`` warm.

    python tools/hopping_speed.py [--rounds 5] [--iterations 3]

The headline figures (lab/wall of a sphere run, extract_gradient) are ``hge bench train --models
hopping``'s; this tool splits them into their parts with CPU time, which others' jobs disturb less.
"""
import argparse
import pathlib
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from hge_embedded._blas import OneBlasThread  # noqa: E402
from hge_embedded.bench import _BIAS, _setup  # noqa: E402
from hge_embedded.devices.dnpu_physics import HoppingNetwork  # noqa: E402
from hge_embedded.devices.simulated import SimulatedDNPU  # noqa: E402
from hge_embedded.gradient import extract_gradient  # noqa: E402
from hge_embedded.tasks import sphere  # noqa: E402
from hge_embedded.train import Trainer  # noqa: E402


def best_cpu(fn, rounds):
    best = np.inf
    for _ in range(rounds):
        c0 = time.process_time()
        fn()
        best = min(best, time.process_time() - c0)
    return best


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--iterations", type=int, default=3, help="sphere iterations per round")
    a = p.parse_args(argv)
    net = HoppingNetwork(0)
    rng = np.random.default_rng(0)
    V = rng.uniform(-1.2, 0.6, (7, 256))
    C = rng.uniform(-0.8, 0.4, (7, 64))
    with OneBlasThread()():
        for kernel in ("c", "numpy"):
            net.kernel = kernel
            t = best_cpu(lambda: net.current_and_gradient(V), a.rounds)
            print(f"solve + gradient, kernel {kernel:5s}: {1e6 * t / V.shape[1]:8.1f} us CPU per point "
                  f"(linear-network start, random box voltages)")
            t = best_cpu(lambda: net.taylor_tensors(C), a.rounds)
            print(f"window derivatives, kernel {kernel:5s}: {1e6 * t / C.shape[1]:8.1f} us CPU per centre (36 solves)")
        net.kernel = "c"
    dev = SimulatedDNPU(seed=0, model="hopping", threads=1)
    tr = Trainer(dev, sphere(0), seed=0, max_iter=10**9)
    _setup(tr)
    lab0 = tr.lab_time
    tr.step()
    lab_it = tr.lab_time - lab0
    t = best_cpu(lambda: [tr.step() for _ in range(a.iterations)], a.rounds) / a.iterations
    print(f"sphere iteration, 1 simulator thread: {t:.3f} s CPU (best of {a.rounds} rounds of {a.iterations}); "
          f"lab {lab_it:.2f} s per iteration: lab/cpu {lab_it / t:.0f}")
    dev = SimulatedDNPU(seed=0, model="hopping")
    b = np.array(_BIAS)
    for _ in range(5):
        extract_gradient(dev, b)
    times = sorted(best_cpu(lambda: [extract_gradient(dev, b) for _ in range(20)], 1) / 20 for _ in range(a.rounds))
    print(f"extract_gradient warm: {1e3 * times[0]:.2f} ms CPU best, {1e3 * times[len(times) // 2]:.2f} ms median "
          f"({a.rounds} rounds of 20 calls)")


if __name__ == "__main__":
    main()
