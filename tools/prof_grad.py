"""extract_gradient warm on the default simulator (surrogate, 7 electrodes, T = 0.1 s, stderr included):
wall and CPU time per call in a loop (100 calls, best and median of 7 rounds), the device's share
(SimulatedDNPU.measure on the same window), and a cProfile of 200 calls.

    python tools/prof_grad.py [--no-profile]
"""
import cProfile
import pathlib
import pstats
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from hge_embedded.bench import _BIAS  # noqa: E402
from hge_embedded.devices.simulated import SimulatedDNPU  # noqa: E402
from hge_embedded.gradient import extract_gradient, HGEWindow  # noqa: E402


def rounds(fn, calls=100, repeats=7):
    wall, cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(calls):
            fn()
        wall.append((time.perf_counter() - t0) / calls * 1e3)
        cpu.append((time.process_time() - c0) / calls * 1e3)
    return sorted(wall), sorted(cpu)


dev = SimulatedDNPU(seed=0, model="surrogate")
b = np.array(_BIAS)
for _ in range(5):
    extract_gradient(dev, b)
wall, cpu = rounds(lambda: extract_gradient(dev, b))
print(f"extract_gradient  wall ms per call: best {wall[0]:.3f} median {wall[3]:.3f};  "
      f"cpu ms per call: best {cpu[0]:.3f} median {cpu[3]:.3f}")
win = HGEWindow(dev)
win.calibrate_at(b)
volts = win.waveform(b)
wall_d, cpu_d = rounds(lambda: dev.measure(volts))
print(f"  of which device.measure (the same window): wall best {wall_d[0]:.3f} ms, cpu best {cpu_d[0]:.3f} ms; "
      f"host (the rest, cpu best - cpu best): {cpu[0] - cpu_d[0]:.3f} ms")
if "--no-profile" not in sys.argv:
    pr = cProfile.Profile()
    pr.enable()
    for _ in range(200):
        extract_gradient(dev, b)
    pr.disable()
    pstats.Stats(pr).sort_stats("tottime").print_stats(30)
