"""Checks that the trainer's gradients can be trusted, and why a task was not found.

Three things the trainer (``train.Trainer``) asks after every iteration or at a task's end:

* :class:`StaleCalibrationCheck` -- has the chain changed since its calibration? One gradient
  read (``extract_gradient``) tests each window's quadrature part against its own stderr
  (``gradient.stale_calibration``); the trainer reads without stderr, so it pools instead: per
  electrode, the regression slope of the quadrature part on the in-phase part over the windows of
  recent iterations, with its noise from the scatter of the quadrature part itself, guarded by a t-test
  that keeps its level whatever each window's noise level.
* :class:`DescentCheck` -- does the loss fall along the measured gradient? A calibration turned
  by ~180 deg (the chain now inverts, or no longer inverts, relative to the calibration in use)
  leaves nothing across the axis, so no quadrature test can see it; but every step then climbs.
* :func:`loss_trend`, :func:`pinned_controls`, :func:`failure_kind` -- why a task that was not found
  ended where it did (one definition, shared with ``tools/train_landscape.py``).

Every threshold's derivation is in the comment next to it; ``tests/test_train_checks.py`` tests
each on both sides.
"""
from __future__ import annotations

import collections

import numpy as np

from .gradient import STALE_ANGLE, STALE_FLOOR

# -- 1. stale calibration, pooled ------------------------------------------------------------------
# The pooled test runs on the most recent iterations that hold at least STALE_POOL_WINDOWS windows
# (all-gates: 4 windows per iteration -> the last 16 iterations; sphere: 300 -> the last one alone).
STALE_POOL_WINDOWS = 64
# Two rules must both flag an electrode (``StaleCalibrationCheck.test``):
#
# (1) The OLS rule: |s_hat| > STALE_POOL_SIGMAS se + tan(STALE_ANGLE) + STALE_FLOOR L, se from the residual scatter
# with N - 1 >= 63 degrees of freedom. When every window has the same quadrature noise, noise alone exceeds it with
# probability <= 1e-7 per electrode and test (the deterministic terms, angle and floor, only add margin): the
# two-sided t quantile at 1e-7 with 63 degrees of freedom is 6.015 (scipy t.isf(0.5e-7, 63); fewer would not be
# tested, more have a smaller quantile, so 6.0 bounds every test). A default all-gates run makes at most ~16 x 300
# tests of 5 electrodes (24 000, overlapping): by the union bound at most 0.24 % of runs see a false alarm from
# noise. Measured (hge train's device and seeds): over all-gates seeds 0-23 the largest |slope| / limit is 0.40
# (seed 18), over sphere seed 1's 300 iterations 0.17; a chain lagging half a sample more (14-18 deg) is flagged
# within 16 iterations (tests/test_train_checks.py).
STALE_POOL_SIGMAS = 6.0
# (2) The robust rule (class docstring): Student's t-test of the products Y_k = g_k e_k, which keeps its level
# WHATEVER each window's noise scale. Why: Bakirov & Szekely (2005, "Student's t-test for Gaussian scale
# mixtures", Zap. Nauchn. Sem. POMI 328, 5-19; J. Math. Sci. 139 (2006) 6497) show that for independent
# X_k = sigma_k Z_k, Z_k ~ N(0, 1), with any scales sigma_k >= 0 (independent of Z), the two-sided t-test at level
# alpha <= 0.05 keeps its level: of all scales, equal ones are the worst case. Given the in-phase parts g, Y_k is
# such an X_k (scale |g_k| sigma_k), so noise that grows with the current, or windows without spread (g_k = 0),
# cannot raise this rule's rate above alpha (tests/test_train_checks.py checks the worst case numerically, and
# the rule's rate by simulation). The assumptions are the OLS rule's: Gaussian quadrature noise, independent
# between windows and of the in-phase part (stationary noise through the lock-in's I/Q pair).
# Why (1) alone was not enough (review s6): its se assumes one noise level for all windows; with noise that grows
# with the current and is as large as the gradient it flagged 0.35-0.5 % of tests of an unchanged chain
# (tests/test_review_s6.py). Why (2) alone is not enough: at 1e-7 it cannot see a half-sample lag in 64 gate
# windows (its statistic saturates: the products' means s g_k^2 differ, and their spread counts as noise;
# measured: at most 0.9 of its limit with every pooled window lagging), and a pool of 128 windows (32 iterations)
# caught it after 30 iterations instead of 15. So (2) guards (1) at alpha = 1e-3 (t_63 quantile 3.452, rounded
# up; more windows have a smaller quantile). The bound per electrode and test is min(P(1), P(2)): <= 1e-7 with
# equal noise in every window, <= 1e-3 whatever the noise scales. Measured in the review's current-dependent case
# (tests/test_review_s6.py's model, 100 000 tests of 5 electrodes; `python tools/bench_stale_check.py
# --false-alarms 100000`): 0 flags (rule (1) alone: 362, 0.36 % of tests).
# At 1e-4 (4.16) the half-sample lag of tests/test_train_checks.py is caught one iteration later, on its bound of
# 16; at 1e-3 at the same iteration as by (1) alone. What the guard costs: a lag growing on one electrode
# (electrode 3 of XOR, seed 0; 0.02 / 0.01 sample more per measurement from the 5th) is caught at iteration 25 /
# 60 instead of 22 / 53, naming only that electrode. At 1e-2 those stay 22 / 53, but the review's case then
# flags 7 of 100 000 tests (at 1e-3: 0).
STALE_ROBUST_SIGMAS = 3.46
_TAN_ANGLE = float(np.tan(STALE_ANGLE))


class StaleCalibrationCheck:
    """Pooled stale-calibration test of one chain over the windows of recent iterations.

    A chain that lags more than when it was calibrated by ``phi`` turns every window's lock-in
    output by ``-phi``: the calibrated estimator's in-phase part ``g = dI/dV cos(phi)`` and its
    quadrature ``q = -tan(phi) g`` (``HGEWindow.read_windows``' ``last_quadrature``). Per electrode
    ``j`` over the N pooled windows ``k`` the model is

        q_k = s g_k + d_k + e_k,   e_k ~ N(0, sigma_k^2) independent given g (any sigma_k),

    with ``s = -tan(phi)`` and a deterministic leak ``|d_k| <= STALE_FLOOR M_k``, ``M_k = max_j |g_kj|``
    (the rule of ``gradient.stale_calibration``). The chain is unchanged (H0) while
    ``|s| <= tan(STALE_ANGLE)``. The reported slope is the OLS one, ``s_hat = sum q g / sum g^2``,
    ``angle = atan(s_hat)``. An electrode is flagged where two rules both flag (STALE_ROBUST_SIGMAS says
    why two): the OLS rule (:meth:`ols_flags`, one noise level for all windows) and the robust rule
    (:meth:`margin` > 1, any noise level per window), below.

    The robust rule. For a slope ``x`` let ``A(x) = sum g (q - x g)`` and ``B(x) = sqrt(sum g^2 (q - x g)^2)``;
    ``L = sum M |g| / sum g^2``, ``S = tan(STALE_ANGLE) + STALE_FLOOR L`` and
    ``c = L sqrt(sum g^4) + sqrt(sum g^2 M^2)``. It flags an electrode when ``A(-S)`` and ``A(S)``
    have one sign (``s_hat`` lies outside ``[-S, S]``) and at both ends ``x = +-S``

        |A(x)| > u (B(x) + STALE_FLOOR c),   u = t sqrt(N) / sqrt(N - 1 + t^2),  t = STALE_ROBUST_SIGMAS.

    Why this bounds the false alarms under H0, whatever the sigma_k: write the leak's share of the
    numerator as a slope, ``sum g d = delta sum g^2`` with ``|delta| <= STALE_FLOOR L``, and let
    ``x0 = s + delta``, which lies in ``[-S, S]``. Then ``Y_k = g_k e_k`` has ``sum Y = A(x0)`` exactly and
    ``sqrt(sum Y^2) <= B(x0) + |delta| sqrt(sum g^4) + STALE_FLOOR sqrt(sum g^2 M^2) <= B(x0) + STALE_FLOOR c``
    (the triangle inequality in the g^2-weighted norm). ``|A(x)| - u B(x)`` is concave on ``[-S, S]`` when
    A keeps its sign there (affine minus a norm of an affine function), so it is smallest at an end: a
    flag implies ``|sum Y| > u sqrt(sum Y^2)``, i.e. the one-sample t statistic of the Y_k exceeds t
    (``T = sqrt(N - 1) U / sqrt(N - U^2)`` rises with ``U = sum Y / sqrt(sum Y^2)``; ``U = u`` gives
    ``T = t``). That has probability <= 1e-3 for any scales (STALE_ROBUST_SIGMAS). Only per-iteration
    sums are kept, so the state is small (checkpointed).
    """

    # Per iteration: the window count, and per electrode one row each of (8, m): sum g^2, q g, q^2, M |g|, g^4,
    # g^3 q, g^2 q^2, g^2 M^2.
    _SUMS = 8

    def __init__(self, m: int, min_windows: int = STALE_POOL_WINDOWS):
        self.m, self.min_windows = int(m), int(min_windows)
        self.rows: collections.deque = collections.deque()   # [n, (8, m) sums] per iteration
        self._memo = None                                     # the pooled sums, until the pool changes

    def add(self, grad, quad) -> None:
        """One iteration's windows: in-phase ``grad`` and quadrature ``quad``, (K, m) nA/V."""
        g, q = np.asarray(grad, float), np.asarray(quad, float)
        if g.shape != q.shape or g.ndim != 2 or g.shape[1] != self.m:
            raise ValueError(f"StaleCalibrationCheck.add: grad and quad must both be (K, {self.m}), got "
                             f"{g.shape} and {q.shape}")
        ag = np.abs(g)
        M = ag.max(axis=1, initial=0.0)[:, None]
        g2, qg = g * g, q * g
        terms = np.stack([g2, qg, q * q, M * ag, g2 * g2, g2 * qg, qg * qg, g2 * (M * M)])
        self.rows.append([float(g.shape[0]), terms.sum(axis=1)])
        self._memo = None
        # Keep the fewest most recent iterations that still hold min_windows windows.
        while len(self.rows) > 1 and sum(r[0] for r in self.rows) - self.rows[0][0] >= self.min_windows:
            self.rows.popleft()

    def reset(self) -> None:
        self.rows.clear()
        self._memo = None

    def _sums(self):
        if self._memo is None:
            n = sum(r[0] for r in self.rows)
            if n < self.min_windows or n < 2:
                self._memo = (None,)
            else:
                self._memo = ((n,) + tuple(np.add.reduce([r[1] for r in self.rows], axis=0)),)
        return self._memo[0]

    def stats(self):
        """(N, slope, se, L) of the pooled windows, or None with fewer than ``min_windows``; ``se`` is the
        OLS standard error (one sigma for all windows), for reading only: the test does not use it."""
        sm = self._sums()
        if sm is None:
            return None
        n, gg, qg, qq, ml = sm[:5]
        with np.errstate(divide="ignore", invalid="ignore"):
            s = np.where(gg > 0, qg / gg, 0.0)
            rss = np.maximum(qq - s * qg, 0.0)
            se = np.where(gg > 0, np.sqrt(rss / (n - 1) / gg), np.inf)
            L = np.where(gg > 0, ml / gg, np.inf)
        return n, s, se, L

    def margin(self):
        """Per electrode, how far the pooled windows are towards a flag: ``min over x = +-S`` of
        ``|A(x)| / (u (B(x) + STALE_FLOOR c))`` (class docstring), 0 where ``s_hat`` lies within
        ``[-S, S]``; flagged where > 1. None with fewer than ``min_windows`` pooled."""
        sm = self._sums()
        if sm is None:
            return None
        n, gg, qg, _, ml, g4, g3q, g2q2, g2m2 = sm
        t = STALE_ROBUST_SIGMAS
        u = t * np.sqrt(n) / np.sqrt(n - 1 + t * t)
        with np.errstate(divide="ignore", invalid="ignore"):
            L = np.where(gg > 0, ml / gg, 0.0)
            S = _TAN_ANGLE + STALE_FLOOR * L
            c = L * np.sqrt(g4) + np.sqrt(g2m2)
            out = np.full(self.m, np.inf)
            same = np.ones(self.m, bool)
            sign = None
            for x in (-S, S):
                A = qg - x * gg
                B = np.sqrt(np.maximum(g2q2 - 2.0 * x * g3q + x * x * g4, 0.0))
                sign = np.sign(A) if sign is None else sign
                same &= (np.sign(A) == sign) & (A != 0)
                out = np.minimum(out, np.abs(A) / (u * (B + STALE_FLOOR * c)))
        return np.where(same & (gg > 0), out, 0.0)

    def ols_flags(self):
        """The OLS rule alone: ``|s_hat| > STALE_POOL_SIGMAS se + tan(STALE_ANGLE) + STALE_FLOOR L``, or None."""
        st = self.stats()
        if st is None:
            return None
        _, s, se, L = st
        return np.abs(s) > STALE_POOL_SIGMAS * se + _TAN_ANGLE + STALE_FLOOR * L

    def test(self):
        """``(flags (m,) bool, angle_deg (m,))``, or None while fewer than ``min_windows`` are pooled.
        Flagged where both rules flag: the OLS one and the robust one (``margin() > 1``)."""
        st = self.stats()
        if st is None:
            return None
        return self.ols_flags() & (self.margin() > 1.0), np.degrees(np.arctan(st[1]))

    def state(self) -> list:
        """Per iteration ``[n, sum_1 (m,), ..., sum_8 (m,)]`` as lists (checkpointed)."""
        return [[r[0]] + [a.tolist() for a in r[1]] for r in self.rows]

    def load_state(self, st) -> None:
        rows = [r for r in (st or [])]
        if any(len(r) != self._SUMS + 1 for r in rows):
            # A checkpoint of session 6 kept 4 sums per iteration, not the 8 this test needs: the pool starts
            # empty again and is tested once it holds min_windows windows (16 all-gates iterations).
            rows = []
        self.rows = collections.deque([float(r[0]), np.array(r[1:], float).reshape(self._SUMS, self.m)]
                                      for r in rows)
        self._memo = None


# -- 2. descent ------------------------------------------------------------------------------------
# The last DESCENT_WINDOW steps are tested (7 degrees of freedom for the residual scatter). An inverted
# gradient climbs from the first step, and in the runs measured (all-gates seed 0 with the calibration
# turned by 180 deg) 6 of 14 gates were caught on the 8th step, 10 of 14 within their run; later the
# climbing runs leave the region where the trapezoid prediction holds (steps of 0.3-1 V), so a longer
# window would wait for a regularity that no longer comes.
DESCENT_WINDOW = 8
# One-sided t quantile at 1e-5 with 7 degrees of freedom: 10.10 (scipy t.isf(1e-5, 7)). With the right
# sign the regression slope is 1 (>= 0 with the attenuation of noisy predictions), so a flag needs
# (beta - beta_true) / se < -DESCENT_SIGMAS: <= 1e-5 per test; a default all-gates run makes <= ~1250
# tests (overlapping windows of 8), <= 1.3 % of runs by the union bound, ~0.2 % counting windows of 8 as
# one (but see DESCENT_MIN_AGAINST: the bound assumes Gaussian residuals).
DESCENT_SIGMAS = 10.1
# And the loss must climb by at least half of what the gradient says it would fall (beta <= -1/2): an
# inverted gradient gives beta ~ -1; noise alone never reaches it with se < 1/20 (the test above).
DESCENT_MAX_RATIO = -0.5
# And at least DESCENT_MIN_AGAINST of the DESCENT_WINDOW steps are informative and went against their
# prediction. Informative: the gradient along the step, g_i . dV and g_{i+1} . dV, has one sign at both ends
# (no valley or ridge crossed along it), so the loss moves that way along the whole step, whatever its size:
# with a right gradient such a step climbs only by noise; with a wrong sign it always climbs. A step whose
# gradient reverses along it may legitimately go either way. Why the count: the sigma bound above assumes
# Gaussian residuals, and one large step across a valley breaks it by leverage: all-gates seed 8's XNOR
# (default run) took a 270 mV step with g_i . dV = -5.03 and g_{i+1} . dV = +0.14 whose loss rose by 1.24,
# which alone gave beta = -0.51 +- 0.01 (a false stop, found while testing); that window had 5 of 8 steps
# against their prediction but 2 informative ones. In the inverted runs measured (all-gates seeds 0 and 1,
# calibration turned by 180 deg) the windows caught have 6-8 informative steps against; 6 of 8 catches 15
# of 28 gates (8 of them at the 8th step, the earliest), 7 of 8 would catch 13. On the default runs (all-gates
# seeds 0-23, sphere seed 1) no window meets all three conditions; where the first two were met, at most 4
# informative steps went against (seed 2).
DESCENT_MIN_AGAINST = 6


class DescentCheck:
    """Does the loss fall along the measured gradient? (A wrong sign makes every step climb.)

    After each step ``dV = x_{i+1} - x_i`` (the step actually applied, V) the measured change
    ``D_i = E_{i+1} - E_i`` is compared with the trapezoid prediction ``P_i = (g_i + g_{i+1}) . dV / 2``
    from the gradients used at both ends (1/V). The trapezoid is exact for a quadratic loss, so a
    step too large for the local curvature (an overshoot, a 2-cycle: the first-order prediction
    ``g_i . dV`` says "falls" while the loss rises) is still predicted right (``D ~ P``), whereas a
    gradient of the wrong sign gives ``D ~ -P`` at any step size. Over the last ``DESCENT_WINDOW``
    steps: ``beta = sum D P / sum P^2`` with ``se`` from the residual scatter (the loss noise,
    estimated, no noise model needed); inverted when ``beta <= DESCENT_MAX_RATIO``,
    ``beta + DESCENT_SIGMAS se < 0`` and at least ``DESCENT_MIN_AGAINST`` of the steps are informative
    (``g_i . dV`` and ``g_{i+1} . dV`` of one sign) and moved the loss against their prediction (so
    that one large step across a valley cannot decide by leverage).
    """

    def __init__(self, window: int = DESCENT_WINDOW):
        self.window = int(window)
        self.prev = None                                   # (E, g (1/V), x (V)) of the last iteration
        self.D: collections.deque = collections.deque(maxlen=self.window)
        self.P: collections.deque = collections.deque(maxlen=self.window)
        self.I: collections.deque = collections.deque(maxlen=self.window)   # the step is informative

    def add(self, E: float, g, x) -> None:
        """The loss ``E`` and gradient used ``g`` (1/V) measured at controls ``x`` (V)."""
        g, x = np.asarray(g, float), np.asarray(x, float)
        if self.prev is not None:
            E0, g0, x0 = self.prev
            dx = x - x0
            if np.any(dx):   # a step that did not move (all controls pinned or rounded away) predicts nothing
                a, b = float(np.dot(g0, dx)), float(np.dot(g, dx))
                self.D.append(float(E) - E0)
                self.P.append(0.5 * (a + b))
                self.I.append(bool(a * b > 0))
        self.prev = (float(E), g, x)

    def reset(self) -> None:
        """Forget the history (a new start: the controls jump)."""
        self.prev = None
        self.D.clear()
        self.P.clear()
        self.I.clear()

    def stats(self):
        """(beta, se, informative steps against their prediction) over the last ``window`` steps, or None
        before there are that many."""
        if len(self.D) < self.window:
            return None
        D, P = np.array(self.D), np.array(self.P)
        pp = float(P @ P)
        if pp == 0.0:
            return None
        beta = float(D @ P) / pp
        se = float(np.sqrt(np.sum((D - beta * P) ** 2) / (self.window - 1) / pp))
        return beta, se, int(np.sum((D * P < 0) & np.array(self.I, bool)))

    def inverted(self):
        """``(beta, se, against)`` when the loss climbs along the measured gradient, significantly and on
        nearly every step; else None."""
        st = self.stats()
        if st is None:
            return None
        beta, se, against = st
        ok = beta <= DESCENT_MAX_RATIO and beta + DESCENT_SIGMAS * se < 0.0 and against >= DESCENT_MIN_AGAINST
        return st if ok else None

    def state(self) -> dict:
        return {"prev": None if self.prev is None else [self.prev[0], self.prev[1].tolist(), self.prev[2].tolist()],
                "D": list(self.D), "P": list(self.P), "I": list(self.I)}

    def load_state(self, st) -> None:
        self.reset()
        if not st:
            return
        if st.get("prev") is not None:
            E, g, x = st["prev"]
            self.prev = (float(E), np.asarray(g, float), np.asarray(x, float))
        D, P, I_ = list(st.get("D", [])), list(st.get("P", [])), list(st.get("I", []))
        if not len(D) == len(P) == len(I_):
            raise ValueError(f"descent check: {len(D)} changes, {len(P)} predictions, {len(I_)} flags")
        self.D.extend(float(v) for v in D)
        self.P.extend(float(v) for v in P)
        self.I.extend(bool(v) for v in I_)


# -- 3. why a task was not found -------------------------------------------------------------------
TREND_WINDOW = 50   # iterations judged at a run's end (tools/train_landscape.py since session 5)
# Oscillating: more than OSC_UPS of the window's steps raise the loss (a 2-cycle raises it on half of
# them, a descent on few) AND the swings are large: the median |E_{i+1} - E_i| exceeds OSC_SWING of the
# median loss. The second condition separates a 2-cycle from a stall whose loss jitters with noise (which
# also goes up half the time). Measured on the simulator (default runs, lock-in gradients): all-gates
# seed 11's XNOR swings 0.34 around a median loss ~0.5 (ratio ~0.7); stalls pinned on a bound (seed 35
# XNOR, seed 46 A) jitter by 0.012 and 0.03 around 0.66 and 1.19 (ratio 0.02): 0.1 lies a factor of
# 4-7 from both.
OSC_UPS = 0.4
OSC_SWING = 0.1
STALL_TOL_TREND = 0.01   # stalled: the window's lowest loss is not 1 % below the lowest before it
OSCILLATION_NOTE = ("loss oscillating: the step lr*dE/dV is too large for this region; try --lr 0.01 or "
                    "--max-step")
FAILURE_KINDS = ("pinned", "oscillating", "stalled", "descending", "stopped")


def oscillation_note(lr_halved_at=(), lr=None) -> str:
    """The diagnosis of a task whose loss oscillates at its end: ``OSCILLATION_NOTE`` when lr was never
    halved; else what the halvings (at iterations ``lr_halved_at``, ending at ``lr``) did not cure."""
    if not lr_halved_at:
        return OSCILLATION_NOTE
    return (f"loss oscillating although a 2-cycle halved lr {len(lr_halved_at)} time(s) (at iteration(s) "
            f"{', '.join(str(int(i)) for i in lr_halved_at)}, to {lr:g}): try --max-step 0.02")


def loss_swings(losses) -> bool:
    """The loss of ``losses`` (all of them: the caller picks the window) swings: more than ``OSC_UPS``
    of its steps go up and the median ``|E_{i+1} - E_i|`` exceeds ``OSC_SWING`` times the median loss.
    False for fewer than 3 losses. The oscillation rule of :func:`loss_trend` (its last ``TREND_WINDOW``)
    and of :class:`CycleCheck` (its last ``CYCLE_WINDOW`` steps)."""
    w = [float(e) for e in losses]
    if len(w) <= 2:
        return False
    d = [b - a for a, b in zip(w[:-1], w[1:])]
    # (Plain Python: the trainer asks every iteration, on 9 values; numpy's median costs ~20 us a call.)
    return sum(x > 0 for x in d) / len(d) > OSC_UPS and _median([abs(x) for x in d]) > OSC_SWING * abs(_median(w))


def _median(v) -> float:
    """``np.median`` of a short list (the mean of the two middle values for an even count)."""
    v = sorted(v)
    k = len(v) // 2
    return v[k] if len(v) % 2 else (v[k - 1] + v[k]) / 2.0


def loss_trend(losses, window: int = TREND_WINDOW) -> str:
    """How a run's loss moves over its last ``window`` iterations: ``"oscillating"`` (see
    ``OSC_UPS``, ``OSC_SWING``: :func:`loss_swings`), ``"stalled"`` (at least ``2 window`` iterations
    and the last ``window`` never ``STALL_TOL_TREND`` below the lowest before them) or ``"descending"``."""
    E = np.asarray(losses, float)
    if E.size > 2 and loss_swings(E[-window:]):
        return "oscillating"
    if E.size >= 2 * window and E[-window:].min() > (1.0 - STALL_TOL_TREND) * E[:-window].min():
        return "stalled"
    return "descending"


def pinned_controls(x, lo, hi, g, tol: float = 0.0) -> np.ndarray:
    """Controls on a bound of their range with dE/dV ``g`` pointing out of it (a step would leave it):
    at ``hi`` with ``g < 0`` or at ``lo`` with ``g > 0`` (within ``tol``). Bool array."""
    x, lo, hi, g = (np.asarray(a, float) for a in (x, lo, hi, g))
    return ((np.abs(x - hi) <= tol) & (g < 0)) | ((np.abs(x - lo) <= tol) & (g > 0))


def failure_kind(losses, n_pinned: int, stopped: bool = False) -> str:
    """Why a task was not found: ``"stopped"`` (ended early by a check: its note says why),
    ``"oscillating"`` (the step is too large for the region: a smaller lr or ``--max-step`` helps),
    ``"pinned"`` (controls on a bound with the gradient pointing out of the range: a constrained
    stationary point projected descent cannot leave), ``"stalled"`` (no progress, interior) or
    ``"descending"`` (still improving when the iterations ran out)."""
    if stopped:
        return "stopped"
    trend = loss_trend(losses)
    if trend == "oscillating":
        return trend
    if n_pinned:
        return "pinned"
    return trend


# -- 4. a step too large for the region: the trainer halves lr ---------------------------------------
# Gradient descent x <- x - lr g on a loss with curvature lam along some direction multiplies that component of
# the step by r = 1 - lr lam per iteration. lr lam < 1: consecutive steps point the same way along it (steady
# descent); 1 < lr lam < 2: they reverse (r < 0) but shrink, and the loss still falls on every step (a damped
# zig-zag, harmless); lr lam >= 2: they reverse and do not shrink, the loss stops falling and, bounded only by the
# landscape's nonlinearity, bounces between the valley's walls (a 2-cycle, or a period-doubling cascade of them:
# all-gates seed 11's XNOR at lr 0.02 swings between 0.15 and 1.0 for 300 iterations; exact gradients do the same,
# so it is not noise). This is the "edge of stability" of Cohen et al., ICLR 2021: GD cannot descend where the
# sharpness exceeds 2 / lr. Halving lr halves lr lam, so a bounded number of halvings brings any finite curvature
# seen below 2; each halving doubles the iterations a descent needs, so only a detected cycle triggers one.
CYCLE_WINDOW = 8          # steps judged (9 losses and controls): the descent check's window
CYCLE_COS = -0.5          # a pair of consecutive steps reverses when the angle between them exceeds 120 deg
# At least CYCLE_MIN_REVERSALS of the window's CYCLE_WINDOW - 1 consecutive pairs reverse AND the window's loss
# swings (loss_swings: >= 4 of its 8 steps go up, median |dE| > OSC_SWING of the median loss).
# False alarms, derived:
# * steady descent (the loss falls by more than its noise on each step): no step goes up, so loss_swings is false
#   (it needs 4 ups of 8); and its steps point one way (cos > 0), so the reversal count is ~0 as well. A damped
#   zig-zag (1 < lr lam < 2) reverses on every pair but its loss falls on every step: not flagged either.
# * a plateau where the steps are noise alone (g is the gradient's noise, i.i.d. over iterations): for step
#   directions drawn isotropically in m dimensions the cosine t of two of them has density ~ (1 - t^2)^((m-3)/2),
#   so P(t < -1/2) = p_m: p_5 = 5/32 = 0.156 (gates: 5 controls), p_4 = 0.196 (sphere), p_2 = 1/3, p_1 = 1/2; the
#   cosines along a chain of i.i.d. isotropic directions are independent (given the middle one, its neighbours
#   are), so P(>= 6 of 7) = 7 p^6 (1 - p) + p^7: 8.8e-5 (m = 5), 3.3e-4 (m = 4) per window, before loss_swings,
#   which noise alone meets only when the loss's own noise s reaches ~a tenth of the loss (the median |dE| of
#   i.i.d. noise is 0.95 s). Measured on hge train's device (controls held at six found gates' ends, 200 reads):
#   s / E = 0.025-0.035 at E = 0.07-0.22, but 0.15-1.1 at E = 1e-4-0.008, so near and below the stop loss (0.008)
#   the swing condition no longer guards and the reversal count does alone. The gradient noise is not isotropic
#   there: held at E = 2e-4 (xor, seed 0, far below the stop loss, which a default run never reaches) 38 % of
#   consecutive noise steps reverse (p between the 1-D and 2-D values) and 2 of 192 windows were flagged. There a
#   halving only damps the noise-driven jitter of a gate already found (the controls move by lr times noise).
#   Where a found gate still descends (the true gradient above its noise: and, or, xnor, a_or_not_b held at their
#   ends) no pair of noise steps reversed at all.
# Measured (all-gates seeds 0-23, the paper's lr throughout, replayed from the runs' histories): the windows with
# the loss swinging in gates that descended cleanly show at most 4 reversals of 7 (seed 13's a, 300 iterations);
# windows with 6-7 reversals and swings occur only where the loss bounced between the walls for >= 8 steps.
CYCLE_MIN_REVERSALS = 6
MAX_LR_HALVINGS = 3       # lr 0.02 -> 0.0025 at most: a step ~8x smaller than the paper's, ~8x more iterations


class CycleCheck:
    """Is the step too large for the region (a 2-cycle: steps reversing while the loss swings)?

    Fed the loss ``E`` (measured at ``x``) and the controls ``x`` (V) of every iteration. Over the last
    ``CYCLE_WINDOW`` steps ``dV_j = x_{j+1} - x_j`` it counts the consecutive pairs that reverse
    (``cos(dV_j, dV_{j+1}) < CYCLE_COS``; a step that did not move reverses nothing) and flags a cycle when
    at least ``CYCLE_MIN_REVERSALS`` do and the window's losses swing (:func:`loss_swings`, the oscillation
    rule of :func:`loss_trend` on these 9 losses). Needs no gradient and no noise model, so the offline
    study (``tools/train_landscape.py``) runs the same test on its exact-gradient runs. The derivation of
    the thresholds and their false-alarm rates is in the comments above the constants.
    """

    def __init__(self, window: int = CYCLE_WINDOW):
        self.window = int(window)
        self.E: collections.deque = collections.deque(maxlen=self.window + 1)
        self.x: collections.deque = collections.deque(maxlen=self.window + 1)

    def add(self, E: float, x) -> None:
        self.E.append(float(E))
        self.x.append(np.array(x, float))

    def reset(self) -> None:
        """Forget the history (the step changed, or the controls jumped to a new start)."""
        self.E.clear()
        self.x.clear()

    def reversals(self):
        """The number of consecutive step pairs of the window that reverse, or None before it is full."""
        if len(self.x) <= self.window:
            return None
        X = np.array(self.x)
        d = X[1:] - X[:-1]
        n2 = (d * d).sum(axis=1)
        dots = (d[:-1] * d[1:]).sum(axis=1)
        # cos < CYCLE_COS without dividing: dots < CYCLE_COS |d_j| |d_j+1| (false for a step that did not move:
        # both sides are then 0)
        return int(np.count_nonzero(dots < CYCLE_COS * np.sqrt(n2[:-1] * n2[1:])))

    def cycling(self) -> bool:
        # (The loss test first: the cheaper one, and false on most iterations of a descent.)
        return len(self.x) > self.window and loss_swings(self.E) and self.reversals() >= CYCLE_MIN_REVERSALS

    def state(self) -> dict:
        return {"E": list(self.E), "x": [v.tolist() for v in self.x]}

    def load_state(self, st) -> None:
        self.reset()
        if not st:
            return
        E, x = list(st.get("E", [])), list(st.get("x", []))
        if len(E) != len(x) or len(E) > self.window + 1:
            raise ValueError(f"cycle check: {len(E)} losses and {len(x)} control vectors (at most {self.window + 1})")
        for e, v in zip(E, x):
            self.add(e, v)
