"""Golden check of extract_gradient: write every output of a fixed set of calls, or compare with a file.

    python tools/grad_golden.py write FILE.npz    # on the reference commit (e.g. main)
    python tools/grad_golden.py check FILE.npz    # on a change: gradient, X, Y, bias, current bit for bit;
                                                  # stderr: the largest relative change is printed

The cases: both simulator models, three device seeds, several biases, three consecutive calls each (the
noise stream goes on), the parallel and sequential modes, the three phases, crosstalk "none", the boxcar
filter, the fixed/float engines, a subset of electrodes, and a plain Python device without a DAC.
"""
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tests"))

import numpy as np  # noqa: E402

from hge_embedded.devices.simulated import SimulatedDNPU  # noqa: E402
from hge_embedded.gradient import extract_gradient  # noqa: E402

FIELDS = ("gradient", "stderr", "X", "Y", "bias", "current", "lab_time_s")


def cases():
    rng = np.random.default_rng(20261129)
    for model in ("surrogate", "hopping"):
        for seed in (0, 1, 2):
            dev = SimulatedDNPU(seed=seed, model=model)
            for _ in range(2):
                b = rng.uniform(-0.5, 0.5, 7)
                for rep in range(3):
                    yield f"{model}/s{seed}/b{_}/r{rep}", dev, b, {}
    dev = SimulatedDNPU(seed=3)
    b = rng.uniform(-0.5, 0.5, 7)
    variants = [dict(mode="sequential"), dict(phase="inphase"), dict(phase="magnitude"), dict(crosstalk="none"),
                dict(filter="boxcar"), dict(engine="fixed"), dict(engine="float"), dict(electrodes=[1, 3, 6]),
                dict(amplitudes=0.02), dict(saturation="count")]
    for kw in variants:
        for rep in range(2):
            yield f"variant/{sorted(kw.items())}/r{rep}", dev, b, kw
    from devices_for_tests import LinearDevice
    plain = LinearDevice([30.0, -15.0, 7.0, 22.0], S=1e-6, seed=5)
    for rep in range(2):
        yield f"plain/r{rep}", plain, np.zeros(plain.n_electrodes), {}


def run():
    out = {}
    for name, dev, b, kw in cases():
        r = extract_gradient(dev, b, **kw)
        for f in FIELDS:
            out[f"{name}|{f}"] = np.asarray(getattr(r, f), float)
    return out


def main(argv):
    if len(argv) != 3 or argv[1] not in ("write", "check"):
        sys.exit(__doc__)
    got = run()
    if argv[1] == "write":
        np.savez(argv[2], **got)
        print(f"wrote {len(got)} arrays to {argv[2]}")
        return
    ref = np.load(argv[2])
    bad, worst = [], 0.0
    for k, v in got.items():
        r = ref[k]
        if k.endswith("|stderr"):
            with np.errstate(invalid="ignore", divide="ignore"):
                rel = np.nanmax(np.abs(v - r) / np.abs(r)) if v.size else 0.0
            worst = max(worst, float(rel))
            if not np.array_equal(np.isnan(v), np.isnan(r)):
                bad.append(k)
        elif not np.array_equal(v, r, equal_nan=True):
            bad.append(k)
    n_cases = len({k.split("|")[0] for k in got})
    print(f"{n_cases} cases: {len(bad)} arrays differ (gradient, X, Y, bias, current, lab time bit for bit); "
          f"stderr largest relative change {worst:.3g}")
    for k in bad[:20]:
        print("  differs:", k)
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main(sys.argv)
