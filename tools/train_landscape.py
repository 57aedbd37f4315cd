"""Offline study of the training recipe on a simulated DNPU's exact response (no lock-in, no noise
unless asked): why the sphere stalls and why some gates are not found.

It mirrors the host trainer's update: the trainer's random start (``SeedSequence([seed, 11])``,
integer DAC codes), the step ``round(lr dE/dV / lsb)`` codes with dE/dV from the exact
gradient (``model.gradient``, the adjoint on the hopping model), an optional ``--max-step``
trust region, and clipping to the control range shrunk by the 8 mV perturbation. Only the
fixed-point rounding of dE/dI and dI/dV (2^-24, 2^-8) is left out.

Three studies, each printing its figures:

``capacity``  the best the device can do on the sphere: a grid over the 4 controls (train
              balanced accuracy) and L-BFGS-B on corrsig from the best grid points and random
              points; prints the best loss and the best held-out test accuracy.
``sphere``    single-start runs for task seeds 0..N-1: plain GD (the trainer's recipe) and
              L-BFGS-B from the same start; initial and final loss and held-out accuracy.
``gates``     all-gates runs for seeds 0..N-1 (task seed 1000 s + i, as ``hge train``):
              found (gap > 3 x 0.217 nA, the trainer's margin at the default noise) and why
              the others fail (``train_checks.loss_trend``, the trainer's own: oscillating / stalled: no
              progress in the last 50 iterations / descending; and the controls pinned on a bound).

Examples::

    python tools/train_landscape.py capacity --model surrogate
    python tools/train_landscape.py sphere --seeds 12
    python tools/train_landscape.py gates --seeds 16 --grad-noise 2
    python tools/train_landscape.py gates --model hopping --seeds 2 --max-step 0.02
    python tools/train_landscape.py sphere --seeds 6 --inputs 1,2,7
    python tools/train_landscape.py gates --seeds 16 --restart-on-stall
    python tools/train_landscape.py gates --seeds 64 --start full      # the whole-range start (sessions 1-4)
    python tools/train_landscape.py gates --seeds 64 --first-seed 100  # seeds not reported by hge train
    python tools/train_landscape.py gates --seeds 64 --fixed-lr        # the paper's fixed lr (sessions 1-6)

The random start is the trainer's (``train.start_codes_range``; ``--start middle`` by default).
Session 5 (surrogate device 0, exact gradients): all-gates runs 16/16, seeds 0-63, 28/64 from the
whole range (975/1024 gates, 47 of 49 failures pinned on a bound) -> 51/64 from the middle half
(1011/1024, 8 of 13 pinned); seeds 100-163: 23/64 -> 46/64 (974 -> 1006 gates).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hge_embedded import tasks  # noqa: E402
from hge_embedded.losses import corrsig  # noqa: E402
from hge_embedded.train import DEFAULT_DAC_LSB, DEFAULT_START, STALL_TOL, STALL_WINDOW  # noqa: E402
from hge_embedded.train import STARTS, start_codes_range  # noqa: E402
from hge_embedded.train_checks import MAX_LR_HALVINGS, CycleCheck, loss_trend, pinned_controls  # noqa: E402
# (the trainer's definitions: why a gate failed, and the 2-cycle test that halves lr, train.Trainer.back_off)

LSB = DEFAULT_DAC_LSB          # the simulator's DAC step (16 bit over +-10 V)
AMP = 0.008                    # V, the perturbation the trainer keeps clear of the limits
LO = int(np.ceil((tasks.CONTROL_RANGE[0] + AMP) / LSB))
HI = int(np.floor((tasks.CONTROL_RANGE[1] - AMP) / LSB))
MARGIN_NA = 3 * 0.217          # 3 output-noise SDs at the default noise (measured by the trainer)


def make_model(name: str, seed: int):
    if name == "surrogate":
        from hge_embedded.devices.surrogate import SurrogateModel
        return SurrogateModel(seed)
    from hge_embedded.devices.dnpu_physics import HoppingNetwork
    return HoppingNetwork(seed)


def response(task, model):
    """``f(controls, X) -> (I (K,), dI/dcontrols (K, n_controls))`` at the task's electrodes."""
    ii = np.array(task.input_electrodes) - 1
    ci = np.array(task.control_electrodes) - 1

    def f(ctl, X):
        V = np.zeros((7, len(X)))
        V[ii] = np.asarray(X).T
        V[ci] = np.asarray(ctl)[:, None]
        return model.current(V), model.gradient(V)[ci].T
    return f


def start_codes(task, seed: int, with_rng: bool = False, start: str = DEFAULT_START):
    """The trainer's first draw (``Trainer.draw``: ``start_codes_range`` of the control range) and,
    ``with_rng``, a function drawing the restarts that follow from its generator."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 11]))
    n = len(task.control_electrodes)
    lo, hi = start_codes_range(np.full(n, LO), np.full(n, HI), start)

    def draw():
        return rng.integers(lo, hi + 1).astype(float)
    codes = draw()
    return (codes, draw) if with_rng else codes


def pinned(f, task, ctl, scale, separation="mean"):
    """Controls on a bound of the control range with dE/dV pointing out of it, and the largest
    |dE/dV| of the others (1/V): a box-constrained stationary point has the latter ~0."""
    y, G = f(ctl, task.inputs)
    g = corrsig(y, task.targets, scale=scale, separation=separation)[1] @ G
    out = pinned_controls(ctl, np.full(ctl.size, LO * LSB), np.full(ctl.size, HI * LSB), g, tol=1e-9)
    return int(out.sum()), float(np.abs(g[~out]).max()) if (~out).any() else 0.0


def gradient_descent(f, task, codes, *, lr, scale, iters, max_step=None, grad_noise=0.0, rng=None,
                     separation="mean", restart_rng=None, float_steps=False, backoff=True, halved=None):
    """The trainer's loop on exact gradients; returns final controls (V), losses, steps (V).

    ``restart_rng`` (``start_codes``' draw after the first): ``--restart-on-stall`` as the
    trainer does it (``Trainer.stalled``, ``Trainer.finish``); the restarts are in ``steps`` as NaN.
    ``backoff``: a 2-cycle halves lr as the trainer does (``Trainer.back_off``: ``CycleCheck`` on each
    loss and the controls it was measured at, at most ``MAX_LR_HALVINGS`` times; False: ``--fixed-lr``);
    the iterations of the halvings are appended to the list ``halved`` when one is given."""
    losses, steps = [], []
    seg0, best = 0, (np.inf, None)
    cycle = CycleCheck()
    n_halved = 0
    for it in range(iters):
        y, G = f(codes * LSB, task.inputs)
        if grad_noise:
            G = G + rng.normal(0.0, grad_noise, G.shape)
            y = y + rng.normal(0.0, 0.01 * grad_noise, y.shape)
        E, dE = corrsig(y, task.targets, scale=scale, separation=separation)
        losses.append(E)
        if E < best[0]:
            best = (E, codes.copy())
        if E < task.stop_loss:
            break
        if backoff:   # (before the stall test, as Trainer.step)
            cycle.add(E, codes * LSB)
            if n_halved < MAX_LR_HALVINGS and cycle.cycling():
                lr, n_halved = lr / 2.0, n_halved + 1
                if halved is not None:
                    halved.append(it)
                cycle.reset()
                cycle.add(E, codes * LSB)
        seg = losses[seg0:]
        if restart_rng is not None and len(seg) > STALL_WINDOW and \
                min(seg[-STALL_WINDOW:]) > (1 - STALL_TOL) * min(seg[:-STALL_WINDOW]):
            codes = restart_rng()
            seg0 = len(losses)
            steps.append(float("nan"))
            cycle.reset()
            continue
        d = lr * (dE @ G)
        if max_step is not None and np.abs(d).max() > max_step:
            d *= max_step / np.abs(d).max()
        new = np.clip(codes - (d / LSB if float_steps else np.round(d / LSB)), LO, HI)
        steps.append(float(np.abs(new - codes).max() * LSB))
        codes = new
    if restart_rng is not None and losses[-1] >= task.stop_loss and best[0] < min(losses[seg0:]):
        codes = best[1]
    return codes * LSB, losses, steps


def lbfgs(f, task, c0, scale):
    from scipy.optimize import minimize

    def fun(c):
        y, G = f(c, task.inputs)
        E, dE = corrsig(y, task.targets, scale=scale)
        return E, dE @ G
    bounds = [(LO * LSB, HI * LSB)] * len(c0)
    r = minimize(fun, c0, jac=True, method="L-BFGS-B", bounds=bounds)
    return r.x, float(r.fun)


def held_out(f, task, ctl):
    ytr = f(ctl, task.inputs)[0]
    yte = f(ctl, task.test_inputs)[0]
    return tasks.held_out_accuracy(ytr, task.targets, yte, task.test_targets)[0]


def placed(task, args):
    """The task on the electrodes given by --inputs/--controls (default: the paper's)."""
    return tasks.map_electrodes(task, 7, inputs=args.inputs, controls=args.controls)


def study_capacity(args, model):
    task = placed(tasks.sphere(args.task_seed), args)
    f = response(task, model)
    g1 = np.linspace(LO * LSB, HI * LSB, args.grid)
    C = np.array(np.meshgrid(g1, g1, g1, g1, indexing="ij")).reshape(4, -1).T
    acc, loss = np.empty(len(C)), np.empty(len(C))
    for j, c in enumerate(C):
        y = f(c, task.inputs)[0]
        acc[j] = tasks.balanced_accuracy(y, task.targets, polarity="high")[0]
        try:
            loss[j] = corrsig(y, task.targets, scale=args.scale)[0]
        except ValueError:
            loss[j] = np.inf
    print(f"grid {args.grid}^4: train balanced acc median {np.median(acc):.3f}, max {acc.max():.3f}; "
          f"loss min {loss.min():.3f}")
    rng = np.random.default_rng(1)
    starts = list(C[np.argsort(loss)[:8]]) + list(rng.uniform(LO * LSB, HI * LSB, (8, 4)))
    best = max(((held_out(f, task, x), E, x) for x, E in (lbfgs(f, task, c, args.scale) for c in starts)),
               key=lambda q: q[0])
    Emin = min(lbfgs(f, task, c, args.scale)[1] for c in starts[:8])
    print(f"capacity ({args.model} device {args.device_seed}, sphere seed {args.task_seed}): best held-out test "
          f"acc {best[0]:.3f} (E {best[1]:.3f}) at controls {np.round(best[2], 3).tolist()} V; lowest E {Emin:.3f}")


def study_sphere(args, model):
    accs = {"gd": [], "lbfgs": []}
    for s in range(args.first_seed, args.first_seed + args.seeds):
        task = placed(tasks.sphere(s), args)
        f = response(task, model)
        codes, rrng = start_codes(task, s, with_rng=True, start=args.start)
        ctl, losses, steps = gradient_descent(f, task, codes.copy(), lr=args.lr or task.lr, scale=args.scale,
                                              iters=args.iters, max_step=args.max_step, separation=args.separation,
                                              restart_rng=rrng if args.restart_on_stall else None,
                                              backoff=not args.fixed_lr)
        x, E_l = lbfgs(f, task, codes * LSB, args.scale)
        a0, a1, a2 = held_out(f, task, codes * LSB), held_out(f, task, ctl), held_out(f, task, x)
        accs["gd"].append(a1)
        accs["lbfgs"].append(a2)
        ups = int(np.sum(np.diff(losses) > 0))
        nrest = int(np.sum(np.isnan(steps)))
        at_bound = int(np.sum((np.abs(ctl - LO * LSB) < 1e-9) | (np.abs(ctl - HI * LSB) < 1e-9)))
        print(f"seed {s}: GD E {losses[0]:.3f} -> {min(losses):.3f} (lowest) in {len(losses)} it ({ups} up, "
              f"{nrest} restarts), acc "
              f"{a0:.3f} -> {a1:.3f}, {at_bound} control(s) at a bound | L-BFGS E -> {E_l:.3f}, acc {a2:.3f}")
    for k, v in accs.items():
        v = np.array(v)
        print(f"{k}: mean held-out acc {v.mean():.3f}, >= 0.94 in {int(np.sum(v >= 0.94))}/{v.size}")


def study_gates(args, model):
    found, kinds, fails, runs16, n_pinned = 0, {}, [], 0, 0
    n_halved_gates, n_halvings, halved_lost = 0, 0, []
    rng = np.random.default_rng(99)
    for s in range(args.first_seed, args.first_seed + args.seeds):
        found_before = found
        for i in range(16):
            task = placed(tasks.gate(format(i, "04b")), args)
            if task.constant:
                found += 1
                continue
            f = response(task, model)
            codes, rrng = start_codes(task, 1000 * s + i, with_rng=True, start=args.start)
            halved = []
            ctl, losses, steps = gradient_descent(f, task, codes, lr=args.lr or task.lr,
                                                  scale=args.scale, iters=args.iters, max_step=args.max_step,
                                                  grad_noise=args.grad_noise, rng=rng, separation=args.separation,
                                                  restart_rng=rrng if args.restart_on_stall else None,
                                                  float_steps=args.float_steps, backoff=not args.fixed_lr,
                                                  halved=halved)
            n_halved_gates += bool(halved)
            n_halvings += len(halved)
            if args.verbose and halved:
                print(f"  lr halved {s}:{task.extra['bits']} at {halved} ({len(losses)} iterations)")
            y = f(ctl, task.inputs)[0]
            if tasks.gate_found(y, task.targets, margin=MARGIN_NA):
                found += 1
                continue
            # The trainer's definition (train_checks.loss_trend): oscillating (over 40 % of the last 50
            # steps go up, with swings over a tenth of the loss), stalled (the last 50 losses never beat
            # the best before them by 1 %), descending: neither.
            kind = loss_trend(losses)
            kinds[kind] = kinds.get(kind, 0) + 1
            k_pin, g_free = pinned(f, task, ctl, args.scale, args.separation)
            n_pinned += k_pin > 0
            fails.append(f"{s}:{task.extra['bits']} E {losses[-1]:.3f} gap {tasks.class_gap(y, task.targets):.1f} "
                         f"nA {kind}; {k_pin} control(s) pinned at a bound, free |dE/dV| {g_free:.4f} /V "
                         f"({(args.lr or task.lr) * g_free / LSB:.2f} DAC codes per step)"
                         f"{f'; lr halved at {halved}' if halved else ''}")
        runs16 += found - found_before == 16
    for line in fails:
        print("  not found", line)
    print(f"gates ({args.model}, lr {args.lr or 0.02}, scale {args.scale} nA, separation {args.separation}, "
          f"max_step {args.max_step}, start {args.start}, seeds {args.first_seed}..{args.first_seed + args.seeds - 1}, "
          f"gradient noise {args.grad_noise} nA/V, restart on stall "
          f"{args.restart_on_stall}): found {found}/{16 * args.seeds}; all-gates runs 16/16: {runs16}/{args.seeds}; "
          f"failures {kinds}, {n_pinned} of them with a control pinned at a bound; "
          f"{'fixed lr' if args.fixed_lr else f'lr halved on a 2-cycle in {n_halved_gates} gates ({n_halvings} halvings)'}")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("study", choices=["capacity", "sphere", "gates"])
    p.add_argument("--model", choices=["surrogate", "hopping"], default="surrogate")
    p.add_argument("--device-seed", type=int, default=0)
    p.add_argument("--task-seed", type=int, default=0, help="capacity: the sphere's data seed")
    p.add_argument("--seeds", type=int, default=4)
    p.add_argument("--first-seed", type=int, default=0,
                   help="sphere/gates: the run seeds are first-seed .. first-seed + seeds - 1 (hge train --seed)")
    p.add_argument("--start", choices=STARTS, default=DEFAULT_START,
                   help="where the random start is drawn: the middle half of the control range (the trainer's "
                        "default) or the full range (sessions 1-4)")
    p.add_argument("--iters", type=int, default=300)
    p.add_argument("--lr", type=float, default=None, help="default: the task's (0.02 gates, 0.015 sphere)")
    p.add_argument("--scale", type=float, default=10.0, help="corrsig's separation scale, nA")
    p.add_argument("--max-step", type=float, default=None, help="V per iteration (default none)")
    p.add_argument("--grad-noise", type=float, default=0.0, help="gates: Gaussian dI/dV noise, nA/V")
    p.add_argument("--separation", choices=["mean", "min"], default="mean", help="corrsig's separation")
    p.add_argument("--restart-on-stall", action="store_true", help="as hge train --restart-on-stall")
    p.add_argument("--fixed-lr", action="store_true",
                   help="as hge train --fixed-lr: no halving of lr on a 2-cycle (the paper's recipe, sessions 1-6)")
    p.add_argument("--verbose", action="store_true", help="gates: print each gate whose lr was halved")
    p.add_argument("--float-steps", action="store_true", help="gates: steps without DAC rounding")
    p.add_argument("--grid", type=int, default=9, help="capacity: grid points per control")
    ints = lambda text: [int(e) for e in text.split(",")]  # noqa: E731
    p.add_argument("--inputs", type=ints, default=None, help="input electrodes, e.g. 1,2,7 (default: the paper's)")
    p.add_argument("--controls", type=ints, default=None, help="control electrodes (default: all others)")
    args = p.parse_args(argv)
    model = make_model(args.model, args.device_seed)
    t0 = time.process_time()
    {"capacity": study_capacity, "sphere": study_sphere, "gates": study_gates}[args.study](args, model)
    print(f"CPU time {time.process_time() - t0:.1f} s")


if __name__ == "__main__":
    main()
