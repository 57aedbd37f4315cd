"""Why single-start gradient descent stops short of 94 % on the sphere: offline measurements.

Everything here runs on the simulator's exact response (``SurrogateModel`` or ``HoppingNetwork``
``current``/``gradient``, no lock-in, no noise), with the trainer's start and update as
``tools/train_landscape.py`` mirrors them (its functions are reused, not copied). Each study
prints its figures; ``docs/design.md`` section 6 quotes them.

``trace``      GD at the paper's recipe (lr 0.015, corrsig, DAC-rounded steps) *without* the stop at
               E 0.2, for ``--iters`` iterations: loss, correlation, separation and held-out
               accuracy at checkpoints, where E first drops below 0.2 and the accuracy there
               (does accuracy keep rising below E 0.2? do more iterations help?).
               ``--float-steps`` takes the steps without the DAC rounding, ``--scale`` sets corrsig's
               sigmoid scale (the paper's 1 nA or our 10 nA).
``hessian``    at the end of a 300-iteration GD run: |dE/dV|, the Hessian's eigenvalues (central
               differences of the exact gradient), lr * lambda (a step is stable below 2; the
               slowest direction needs ~1 / (lr lambda_min) iterations), and L-BFGS-B from the GD
               end point: how much lower the loss goes and what accuracy the minimum has.
``accuracy``   the same final controls read four ways: held-out (the trainer's: threshold chosen on
               the training outputs), the test set's best balanced accuracy (reads the test
               labels), plain accuracy at the held-out threshold, and a fresh test set of 10000
               points (the 1000-point test set's sampling error).
``landscape``  L-BFGS-B from ``--starts`` starts drawn as the trainer draws them: the distinct minima
               of corrsig, each with its loss, held-out accuracy and share of the starts (its basin).
``global``     the trainer's starts whose basin has a minimum below the stop loss: GD traced past
               the stop (the accuracy where the paper's stop would end the run, and further down).
``variants``   the encoding: our ball-and-shell data against balanced encodings without a gap
               (uniform in the 0.7 V ball or the +-0.7 V cube), GD and L-BFGS-B from the same starts.

Examples::

    python tools/sphere_study.py trace --seeds 8 --iters 1000
    python tools/sphere_study.py trace --seeds 8 --scale 1
    python tools/sphere_study.py hessian --seeds 8
    python tools/sphere_study.py accuracy --seeds 8
    python tools/sphere_study.py landscape --starts 64 --task-seed 1
    python tools/sphere_study.py global --seeds 40 --iters 1000
    python tools/sphere_study.py variants --seeds 8
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import train_landscape as tl  # noqa: E402  (the trainer's start, update and bounds)
from hge_embedded import tasks  # noqa: E402
from hge_embedded.losses import corrsig  # noqa: E402

CHECKPOINTS = (0, 50, 100, 200, 300, 500, 1000, 2000, 3000, 5000)


def loss_terms(y, z, scale):
    """``(E, rho, y_sep)`` of corrsig at outputs ``y``: which factor holds the loss up."""
    E = corrsig(y, z, scale=scale)[0]
    rho = float(np.corrcoef(y, z)[0, 1])
    return E, rho, float(y[z == 1].mean() - y[z == 0].mean())


def run_gd(f, task, codes, *, lr, scale, iters, float_steps=False, on_checkpoint=None):
    """The trainer's update (``tl.gradient_descent``'s, without its stop) for ``iters`` iterations;
    ``on_checkpoint(i, controls_V, E)`` at the iterations in ``CHECKPOINTS`` and at the first
    E < ``task.stop_loss``. Returns the controls (V) and the losses."""
    losses, crossed = [], False
    for i in range(iters + 1):
        ctl = codes * tl.LSB
        y, G = f(ctl, task.inputs)
        E, dE = corrsig(y, task.targets, scale=scale)
        losses.append(E)
        if on_checkpoint is not None and (i in CHECKPOINTS or i == iters or (E < task.stop_loss and not crossed)):
            on_checkpoint(i, ctl, E, first_below=E < task.stop_loss and not crossed)
        crossed = crossed or E < task.stop_loss
        if i == iters:
            break
        d = lr * (dE @ G) / tl.LSB
        codes = np.clip(codes - (d if float_steps else np.round(d)), tl.LO, tl.HI)
    return codes * tl.LSB, losses


def grad_fn(f, task, scale):
    def g(c):
        y, G = f(c, task.inputs)
        E, dE = corrsig(y, task.targets, scale=scale)
        return E, dE @ G
    return g


def hessian(g, c, h=1e-4):
    """Central differences of the exact gradient, symmetrised (error O(h^2 * third derivative))."""
    n = c.size
    H = np.empty((n, n))
    for j in range(n):
        e = np.zeros(n)
        e[j] = h
        H[:, j] = (g(c + e)[1] - g(c - e)[1]) / (2 * h)
    return 0.5 * (H + H.T)


def seeds(args):
    return range(args.first_seed, args.first_seed + args.seeds)


def setup(args, s):
    task = tl.placed(tasks.sphere(s), args)
    f = tl.response(task, args.model_obj)
    codes = tl.start_codes(task, s, start=args.start)
    return task, f, codes


def study_trace(args):
    lr = args.lr or 0.015
    finals, at_cross, best_acc = [], [], []
    for s in seeds(args):
        task, f, codes = setup(args, s)
        rows, cross = [], None

        def cp(i, ctl, E, first_below):
            nonlocal cross
            acc = tl.held_out(f, task, ctl)
            _, rho, sep = loss_terms(f(ctl, task.inputs)[0], task.targets, args.scale)
            rows.append((i, E, rho, sep, acc))
            if first_below:
                cross = (i, acc)
        ctl, losses = run_gd(f, task, codes, lr=lr, scale=args.scale, iters=args.iters,
                             float_steps=args.float_steps, on_checkpoint=cp)
        text = "  ".join(f"{i}:E{E:.3f}/r{rho:.3f}/s{sep:.1f}/a{acc:.3f}" for i, E, rho, sep, acc in rows)
        print(f"seed {s}: {text}")
        tail = f"; last 100 steps lowered E by {losses[-101] - losses[-1]:.4f}" if len(losses) > 100 else ""
        print(f"   E < {task.stop_loss} first at "
              f"{'never' if cross is None else f'iteration {cross[0]} (acc {cross[1]:.3f})'}{tail}")
        finals.append(rows[-1][4])
        best_acc.append(max(r[4] for r in rows))
        at_cross.append(np.nan if cross is None else cross[1])
    finals = np.array(finals)
    n_cross = int(np.sum(~np.isnan(at_cross)))
    print(f"trace (lr {lr}, scale {args.scale} nA, {args.iters} it, float steps {args.float_steps}, start {args.start}): "
          f"final held-out acc mean {finals.mean():.3f} (min {finals.min():.3f}, max {finals.max():.3f}), "
          f">= 0.94 in {int(np.sum(finals >= 0.94))}/{finals.size}; E < 0.2 reached in {n_cross}/{finals.size}"
          + (f", acc there mean {np.nanmean(at_cross):.3f}" if n_cross else ""))


def study_hessian(args):
    from scipy.optimize import minimize
    lr = args.lr or 0.015
    for s in seeds(args):
        task, f, codes = setup(args, s)
        ctl, losses = run_gd(f, task, codes, lr=lr, scale=args.scale, iters=args.iters)
        g = grad_fn(f, task, args.scale)
        E, gr = g(ctl)
        lam = np.linalg.eigvalsh(hessian(g, ctl))
        r = minimize(g, ctl, jac=True, method="L-BFGS-B", bounds=[(tl.LO * tl.LSB, tl.HI * tl.LSB)] * ctl.size)
        dist = float(np.abs(r.x - ctl).max())
        # Steps the DAC rounds to zero: |lr dE/dV_m| < LSB / 2.
        frozen = int(np.sum(np.abs(lr * gr) < tl.LSB / 2))
        print(f"seed {s}: E {E:.4f} (last 50 it: -{losses[-51] - losses[-1]:.2e}), |dE/dV| {np.abs(gr).max():.3f} /V "
              f"({frozen} of {gr.size} steps rounded to 0 codes), lr*lambda {np.round(lr * lam, 4).tolist()}, "
              f"held-out acc {tl.held_out(f, task, ctl):.3f} | L-BFGS from here: E {r.fun:.4f}, moved {dist * 1e3:.0f} mV, "
              f"acc {tl.held_out(f, task, r.x):.3f}")


def study_accuracy(args):
    lr = args.lr or 0.015
    rows = []
    for s in seeds(args):
        task, f, codes = setup(args, s)
        ctl, _ = run_gd(f, task, codes, lr=lr, scale=args.scale, iters=args.iters)
        ytr, yte = f(ctl, task.inputs)[0], f(ctl, task.test_inputs)[0]
        ho, thr = tasks.held_out_accuracy(ytr, task.targets, yte, task.test_targets)
        best = tasks.balanced_accuracy(yte, task.test_targets, polarity="high")[0]
        plain = float(np.mean((yte > thr) == (task.test_targets == 1)))
        Xb, zb = tasks.sphere_data(np.random.default_rng(np.random.SeedSequence([s, 99])), 10000)
        big = tasks.accuracy_at(f(ctl, Xb)[0], zb, thr)
        rows.append((ho, best, plain, big))
        print(f"seed {s}: held-out {ho:.3f}, test-best {best:.3f}, plain at the held-out threshold {plain:.3f}, "
              f"10000 fresh points {big:.3f}")
    a = np.array(rows)
    print("means: held-out {:.3f}, test-best {:.3f}, plain {:.3f}, 10000 fresh {:.3f}".format(*a.mean(axis=0)))


def study_landscape(args):
    """L-BFGS-B from ``--starts`` random starts drawn as the trainer draws them (``--start``: the
    middle half of the control range by default, or the full range); the distinct minima found
    (controls within 20 mV of each other are one minimum), each with its loss, held-out accuracy
    and how many starts ended there: the share of starts in a minimum's basin."""
    from scipy.optimize import minimize
    task = tl.placed(tasks.sphere(args.task_seed), args)
    f = tl.response(task, args.model_obj)
    g = grad_fn(f, task, args.scale)
    rng = np.random.default_rng(5)
    n = len(task.control_electrodes)
    lo, hi = tl.start_codes_range(np.full(n, tl.LO), np.full(n, tl.HI), args.start)
    bounds = [(tl.LO * tl.LSB, tl.HI * tl.LSB)] * n
    minima = []           # [controls, E, accuracy, count]
    for _ in range(args.starts):
        r = minimize(g, rng.integers(lo, hi + 1) * tl.LSB, jac=True, method="L-BFGS-B", bounds=bounds)
        for m in minima:
            if np.abs(m[0] - r.x).max() < 0.02:
                m[3] += 1
                break
        else:
            minima.append([r.x, float(r.fun), tl.held_out(f, task, r.x), 1])
    minima.sort(key=lambda m: m[1])
    print(f"landscape (sphere seed {args.task_seed}, scale {args.scale} nA, {args.starts} L-BFGS-B runs from the "
          f"{args.start} start range): {len(minima)} distinct minima")
    for x, E, a, k in minima[:12]:
        print(f"  E {E:.4f}  held-out acc {a:.3f}  starts {k:3d}/{args.starts}  controls {np.round(x, 3).tolist()} V")
    P = np.array([(m[1], m[2]) for m in minima for _ in range(m[3])])
    good = sum(m[3] for m in minima if m[2] >= 0.94)
    print(f"starts ending at >= 0.94: {good}/{args.starts}; ending below E 0.2: "
          f"{sum(m[3] for m in minima if m[1] < 0.2)}/{args.starts}; Spearman(E, acc) over the runs "
          f"{spearman(P[:, 0], P[:, 1]):.2f}")


def study_global(args):
    """Runs whose start lies in the basin of a minimum below the stop loss (L-BFGS-B from the
    trainer's start ends below E 0.2): GD traced without the stop, to see the accuracy where the
    paper's stop would end the run against the accuracy further down the same basin."""
    from scipy.optimize import minimize
    lr, found = args.lr or 0.015, 0
    for s in seeds(args):
        task, f, codes = setup(args, s)
        g = grad_fn(f, task, args.scale)
        r = minimize(g, codes * tl.LSB, jac=True, method="L-BFGS-B",
                     bounds=[(tl.LO * tl.LSB, tl.HI * tl.LSB)] * codes.size)
        if r.fun >= task.stop_loss:
            continue
        found += 1
        rows = []

        def cp(i, ctl, E, first_below):
            rows.append(f"{i}{'*' if first_below else ''}:E{E:.4f}/a{tl.held_out(f, task, ctl):.3f}")
        run_gd(f, task, codes, lr=lr, scale=args.scale, iters=args.iters, on_checkpoint=cp)
        print(f"seed {s}: L-BFGS minimum E {r.fun:.4f}, acc {tl.held_out(f, task, r.x):.3f}; GD (* = first below "
              f"{task.stop_loss}): " + "  ".join(rows))
    print(f"{found} of {args.seeds} starts in the basin of a minimum below the stop loss")


def variant_data(kind, rng, n):
    """Balanced sphere data sets for the encoding check: ``"ours"`` (tasks.sphere_data: ball r <= 0.3 V,
    shell 0.5..0.7 V, a 0.2 V gap), ``"ball"`` (uniform in the ball of 0.7 V, class 1 within
    0.7 / 2^(1/3) = 0.556 V: balanced, no gap), ``"cube"`` (uniform in the cube [-0.7, 0.7]^3 V,
    class 1 within the radius holding half its volume, 0.689 V; drawn until each class has n/2)."""
    if kind == "ours":
        return tasks.sphere_data(rng, n)
    if kind == "ball":
        k, rb = n // 2, 0.7 / 2 ** (1 / 3)
        X = np.vstack([tasks._shell_points(rng, k, 0.0, rb), tasks._shell_points(rng, n - k, rb, 0.7)])
        z = np.concatenate([np.ones(k), np.zeros(n - k)])
        order = rng.permutation(n)
        return X[order], z[order]
    r_half = (0.5 * 1.4**3 * 3 / (4 * np.pi)) ** (1 / 3)
    inner, outer = [], []
    while len(inner) < n // 2 or len(outer) < n - n // 2:
        x = rng.uniform(-0.7, 0.7, 3)
        (inner if np.linalg.norm(x) < r_half else outer).append(x)
    X = np.vstack([inner[:n // 2], outer[:n - n // 2]])
    z = np.concatenate([np.ones(n // 2), np.zeros(n - n // 2)])
    order = rng.permutation(n)
    return X[order], z[order]


def study_variants(args):
    """L-BFGS-B (the best a local method does from that start) and 300 GD iterations from the trainer's
    starts on the three encodings of ``variant_data``: does the encoding set the accuracy?"""
    from dataclasses import replace
    from scipy.optimize import minimize
    for kind in ("ours", "ball", "cube"):
        acc_l, acc_g = [], []
        for s in seeds(args):
            task, f, codes = setup(args, s)
            rng = np.random.default_rng(np.random.SeedSequence([s, 7]))
            X, z = variant_data(kind, rng, 300)
            Xt, zt = variant_data(kind, rng, 1000)
            task = replace(task, inputs=X, targets=z, test_inputs=Xt, test_targets=zt)
            g = grad_fn(f, task, args.scale)
            r = minimize(g, codes * tl.LSB, jac=True, method="L-BFGS-B",
                         bounds=[(tl.LO * tl.LSB, tl.HI * tl.LSB)] * codes.size)
            ctl, _ = run_gd(f, task, codes, lr=args.lr or 0.015, scale=args.scale, iters=args.iters)
            acc_l.append(tl.held_out(f, task, r.x))
            acc_g.append(tl.held_out(f, task, ctl))
        a, b = np.array(acc_g), np.array(acc_l)
        print(f"{kind:5s}: GD {args.iters} it held-out acc mean {a.mean():.3f} (>= 0.94 in {int(np.sum(a >= 0.94))}/"
              f"{a.size}); L-BFGS mean {b.mean():.3f}, max {b.max():.3f} (>= 0.94 in {int(np.sum(b >= 0.94))}/{b.size})")


def spearman(a, b):
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("study", choices=["trace", "hessian", "accuracy", "landscape", "global", "variants"])
    p.add_argument("--model", choices=["surrogate", "hopping"], default="surrogate")
    p.add_argument("--device-seed", type=int, default=0)
    p.add_argument("--seeds", type=int, default=4)
    p.add_argument("--first-seed", type=int, default=0)
    p.add_argument("--task-seed", type=int, default=0, help="landscape: the sphere's data seed")
    p.add_argument("--starts", type=int, default=24, help="landscape: L-BFGS-B runs")
    p.add_argument("--start", choices=tl.STARTS, default=tl.DEFAULT_START)
    p.add_argument("--iters", type=int, default=300)
    p.add_argument("--lr", type=float, default=None, help="default: the paper's 0.015")
    p.add_argument("--scale", type=float, default=10.0, help="corrsig's sigmoid scale, nA (paper: 1)")
    p.add_argument("--float-steps", action="store_true", help="trace: steps without the DAC rounding")
    ints = lambda text: [int(e) for e in text.split(",")]  # noqa: E731
    p.add_argument("--inputs", type=ints, default=None)
    p.add_argument("--controls", type=ints, default=None)
    args = p.parse_args(argv)
    args.model_obj = tl.make_model(args.model, args.device_seed)
    t0 = time.process_time()
    {"trace": study_trace, "hessian": study_hessian, "accuracy": study_accuracy,
     "landscape": study_landscape, "global": study_global, "variants": study_variants}[args.study](args)
    print(f"CPU time {time.process_time() - t0:.1f} s")


if __name__ == "__main__":
    main()
