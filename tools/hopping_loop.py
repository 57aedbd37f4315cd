"""The real training loop (HGE lock-in, noise, DAC/ADC) on a HoppingNetwork with chosen parameters.

    python tools/hopping_loop.py --task all-gates --seed 0 --device-seed 0 --param eps=1.0 V_T=0.05 ...

The CLI's ``--sim-model hopping`` takes the model's defaults; this takes any parameters.
Prints found/total, per-task iterations, lab and wall time (process CPU time too).
"""
import argparse
import json
import time

from hge_embedded import tasks as tasks_mod, train as tr
from hge_embedded.devices.dnpu_physics import HoppingNetwork
from hge_embedded.devices.simulated import SimulatedDNPU


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--task", default="all-gates")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device-seed", type=int, default=0)
    ap.add_argument("--max-iter", type=int, default=None)
    ap.add_argument("--param", nargs="*", default=[])
    a = ap.parse_args()
    kw = {k: json.loads(v) for k, v in (p.split("=") for p in a.param)}
    dev = SimulatedDNPU(seed=a.device_seed, model=HoppingNetwork(a.device_seed, **kw))
    task_list = tasks_mod.parse_tasks(a.task, a.seed)
    w0, c0 = time.perf_counter(), time.process_time()
    found, lab = 0, 0.0
    for i, t in enumerate(task_list):
        t = tasks_mod.map_electrodes(t, dev.n_electrodes)
        r, trainer = tr.train_task(dev, t, seed=tr.task_seed(a.seed, i, len(task_list)), max_iter=a.max_iter)
        s = r.summary()
        lab += trainer.lab_time
        found += bool(s.get("found")) if t.kind == "gate" else 0
        print(t.name, {k: s.get(k) for k in ("found", "iterations", "initial_loss", "final_loss", "initial_accuracy",
                                            "accuracy", "test_accuracy")}, flush=True)
    print(f"params {kw}: found {found}/{len(task_list)}; lab {lab:.0f} s, wall {time.perf_counter() - w0:.0f} s, "
          f"cpu {time.process_time() - c0:.0f} s")


if __name__ == "__main__":
    main()
