"""Frequency plans: which perturbation frequency each electrode gets.

A nonlinear device answers a sum of tones with its harmonics and
intermodulation products; a lock-in channel at ``f_m`` picks up anything that
lands inside its pass band. A plan for M electrodes is valid when, with
``guard`` the pass band half-width the plan protects:

1. fundamentals are at least ``spacing`` apart (neighbour crosstalk);
2. every 2nd-order product ``2 f_i``, ``f_i + f_j``, ``|f_i - f_j|`` lies at
   least ``guard`` from every ``f_m``;
3. every 3rd-order product ``3 f_i``, ``|2 f_i +- f_j|``, ``|f_i +- f_j +- f_k|``
   lies at least ``guard3`` from every ``f_m`` (3rd-order products are
   ~``a^2 f''' / f'`` ~ 1e-4 of a first-order term at 8 mV, so the default asks
   only that they do not coincide);
4. the mixer's own ``2 f_m`` and every product fold about fs/2 (aliases count);
   for the Butterworth, which runs at fs/8 after a pre-sum of 8, ``2 f_m`` also
   folds about fs/8: a 630 Hz tone's 1260 Hz term lands at 10 Hz. The
   pre-sum's zeros at multiples of fs/8 attenuate exactly these aliases
   (at T = 0.1 s the leak of 630 Hz is 0.006, below the 0.0079 the 40 Hz
   guard already accepts), so the rule compares the folded term's actual leak
   through the whole lock-in (``design.lockin_weights``) with the leak of a
   component at the guard distance; it bites for short windows (wide filters);
5. integrate-and-dump: every f is a whole multiple of 1/T, which makes the
   channels exactly orthogonal over the window, so ``spacing = guard = 1/T``
   suffices.

Defaults (T = 0.1 s): Butterworth ``spacing = guard = 4/T`` (40 Hz, the paper's
unbiased spacing), ``guard3 = 1/T``; boxcar ``spacing = guard = guard3 = 1/T``.
Plans are searched greedily from the top of the band down on the 1/T grid,
because the 1/f noise is lowest at the top.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from itertools import combinations_with_replacement

import numpy as np

from . import _validate as v
from . import design


@dataclass(frozen=True)
class PlanRules:
    spacing: float
    guard: float
    guard3: float


def default_rules(filter: str, T: float) -> PlanRules:  # noqa: A002
    v.choice("filter", filter, {"butterworth3", "boxcar"})
    if filter == "boxcar":
        return PlanRules(1.0 / T, 1.0 / T, 1.0 / T)
    return PlanRules(4.0 / T, 4.0 / T, 1.0 / T)


def _fold(f, fs):
    """Frequency as seen after sampling at fs (alias into [0, fs/2])."""
    f = np.abs(f) % fs
    return np.minimum(f, fs - f)


def products(freqs, order: int) -> np.ndarray:
    """All distinct |+-f_i +- f_j (+- f_k)| of exactly ``order`` terms (2 or 3), unfolded.

    Terms in which one tone enters with both signs are left out: ``f_i - f_i``
    is DC and ``f_i + f_j - f_i`` is the tone ``f_j`` itself (its amplitude
    compression, the ``a^2 I'''/8`` bias of the analysis, not a product).
    """
    f = np.asarray(freqs, float)
    out = []
    tails = np.array(np.meshgrid(*[[1, -1]] * (order - 1))).T.reshape(-1, order - 1).tolist()
    sign_sets = [(1,) + tuple(s) for s in tails]
    for idx in combinations_with_replacement(range(f.size), order):
        for signs in sign_sets:
            if any(a == b and sa != sb for a, sa in zip(idx, signs) for b, sb in zip(idx, signs)):
                continue
            out.append(abs(float(np.dot(signs, f[list(idx)]))))
    return np.unique(np.round(np.array(out), 9)) if out else np.zeros(0)


@functools.lru_cache(maxsize=64)
def _presum_leak(fs: float, T: float):
    """Leak of the Butterworth lock-in (pre-sum + filter) at a frequency offset, and at the guard."""
    w = design.lockin_weights(fs, T, "butterworth3")
    k = np.arange(w.size)
    return lambda df: float(abs(np.sum(w * np.exp(-2j * np.pi * df * k / fs))))


def violations(freqs, *, fs: float, rules: PlanRules, boxcar_T: float | None = None,
               presum_T: float | None = None):
    """List of human-readable rule violations of a plan (empty: valid).

    ``presum_T``: the Butterworth's window (s); adds rule 4's fold about fs/8.
    """
    f = np.asarray(freqs, float)
    msgs = []
    if np.any((f <= 0) | (f >= fs / 2)):
        msgs.append(f"every frequency must lie in (0, fs/2 = {fs / 2}) Hz")
    if boxcar_T is not None:
        off = np.abs(f * boxcar_T - np.round(f * boxcar_T)) > 1e-6
        for x in f[off]:
            msgs.append(f"{x:g} Hz is not a multiple of 1/T = {1 / boxcar_T:g} Hz (integrate-and-dump)")
    for i in range(f.size):
        for j in range(i + 1, f.size):
            if abs(f[i] - f[j]) < rules.spacing - 1e-9:
                msgs.append(f"{f[i]:g} and {f[j]:g} Hz are {abs(f[i] - f[j]):g} Hz apart, "
                            f"less than the spacing {rules.spacing:g} Hz")
    for m, fm in enumerate(f):
        if _fold(2 * fm, fs) < rules.guard - 1e-9:
            msgs.append(f"the mixer's 2f term of {fm:g} Hz aliases to {_fold(2 * fm, fs):g} Hz, "
                        f"inside the {rules.guard:g} Hz guard around DC")
    if presum_T is not None and f.size and np.all((f > 0) & (f < fs / 2)):
        fs_d = fs / design.DECIMATION
        for fm in f:
            alias = _fold(2 * fm, fs_d)
            if alias < rules.guard - 1e-9:
                leak = _presum_leak(float(fs), float(presum_T))
                here, allowed = leak(2 * fm), leak(rules.guard)
                if here > allowed:
                    msgs.append(f"the mixer's 2f term of {fm:g} Hz aliases to {alias:g} Hz at the Butterworth's "
                                f"rate fs/8 = {fs_d:g} Hz; after the pre-sum it leaks {here:.3g}, more than the "
                                f"{allowed:.3g} the {rules.guard:g} Hz guard allows")
    for order, guard in ((2, rules.guard), (3, rules.guard3)):
        p = _fold(products(f, order), fs)
        for fm in f:
            d = np.abs(p - fm)
            k = int(np.argmin(d))
            if d[k] < guard - 1e-9:
                msgs.append(f"a {order}{'nd' if order == 2 else 'rd'}-order product at {p[k]:g} Hz "
                            f"lands {d[k]:g} Hz from {fm:g} Hz (guard {guard:g} Hz)")
    return msgs


def check_plan(freqs, *, fs: float, T: float, filter: str = "butterworth3",  # noqa: A002
               rules: PlanRules | None = None) -> np.ndarray:
    """Return ``freqs`` as an array if the plan obeys its rules, else raise ``ValueError`` saying why."""
    f = v.float_array("freqs", np.atleast_1d(freqs), ndim=1)
    rules = rules or default_rules(filter, T)
    msgs = violations(f, fs=fs, rules=rules, boxcar_T=T if filter == "boxcar" else None,
                      presum_T=T if filter == "butterworth3" else None)
    if msgs:
        raise ValueError("freqs: the plan breaks its rules:\n  - " + "\n  - ".join(msgs[:10])
                         + (f"\n  ... and {len(msgs) - 10} more" if len(msgs) > 10 else ""))
    return f


def plan_frequencies(n: int, *, fs: float = 10_000.0, T: float = 0.1, filter: str = "butterworth3",  # noqa: A002
                     f_max: float = 1000.0, f_min: float | None = None,
                     rules: PlanRules | None = None) -> np.ndarray:
    """Choose ``n`` perturbation frequencies in ``[f_min, f_max]`` Hz obeying the plan rules.

    Greedy from ``f_max`` downward on the 1/T grid; raises ``ValueError`` if the
    band cannot hold ``n`` frequencies under the rules. Returned in descending order.
    """
    v.positive("n", n, integer=True)
    v.positive("fs", fs)
    v.positive("T", T)
    rules = rules or default_rules(filter, T)
    f_min = rules.guard if f_min is None else f_min
    return np.array(_greedy_plan(int(n), float(fs), float(T), float(f_max), float(f_min), rules,
                                 filter == "butterworth3"))


@functools.lru_cache(maxsize=256)
def _greedy_plan(n: int, fs: float, T: float, f_max: float, f_min: float, rules: PlanRules,
                 presum: bool = False) -> tuple:
    """The plan search (cached: training asks for the same plan every window)."""
    step = 1.0 / T
    cands = np.arange(np.floor(f_max / step), np.ceil(f_min / step) - 1, -1) * step
    chosen: list[float] = []
    for c in cands:
        trial = chosen + [float(c)]
        if not violations(trial, fs=fs, rules=rules, presum_T=T if presum else None):
            chosen = trial
            if len(chosen) == n:
                return tuple(chosen)
    raise ValueError(f"n: cannot fit {n} frequencies in [{f_min:g}, {f_max:g}] Hz with spacing "
                     f"{rules.spacing:g} Hz, product guards {rules.guard:g}/{rules.guard3:g} Hz "
                     f"(found {len(chosen)}); widen the band or lengthen T")
