"""Bit-exact integer model of the on-device trainer (``csrc/hge_fixmath``, ``hge_corrsig``,
``hge_synth``, ``hge_trainer``): same names, same steps, Python integers.

Python's ``//`` and ``>>`` floor, as the C code's corrected division and its pinned
arithmetic shift do; every C intermediate is bounded below 2^63 (see the C headers), so
unbounded Python integers give the same values.

Error budget of the fixed-point corrsig against float64 (``losses.corrsig``)
---------------------------------------------------------------------------
The inputs (integer codes) are exact; the normalising shift L is exact; sum d^2, sum d,
P are exact integers; Syy is exact to 1/2 LSB of Q(2L) (relative < 2^-41 since
Syy >= 2^47 after normalisation). Then, relative errors:

* ``hge_sqrt_norm``: floor of a 31-bit root, < 2^-30 each for sy and sqrt(n n1 n0);
* rho: two ``hge_ratio`` divisions, each quotient >= 2^30 before rounding: < 2^-30 each;
  so |rho_fixed - rho| < 2^-30 (Q30 rounding) + 4 * 2^-30 |rho| < 2^-27;
* x = sep / scale: two roundings of >= 30-bit quotients plus the Q24 rounding:
  |dx| < 2^-25 + 2^-29 |x|, so with |x| <= 12: |dx| < 2^-24.4, and exp(-x) moves by a
  relative exp(|dx|) - 1 < 2^-24;
* ``hge_exp_q24``: Taylor remainder to degree 8 at |r| <= ln2/2: r^9/9! e^r < 2.9e-10;
  8 Horner steps each rounding twice (0.5 + 0.5 LSB of Q30): < 8 * 2^-30 e^r < 1.1e-8;
  ln2 in Q30 (error < 2^-31) times |k| <= 18: < 8.4e-9 in the argument; so relative
  < 2e-8 (< 2^-25), plus 0.5 LSB of Q24 from the final shift;
* E = (1 - rho)(1 + ex): absolute error < 2^-27 (1 + ex) + (1 - rho) ex 2^-23 + 2^-25
  (the rho term, the exp term, the final Q24 rounding).
* dE/dy_k = -B_k / sy: every term of B_k is a product of the quantities above, each
  rounded to Q24 (0.5 LSB), and the final ratio keeps >= 28 bits of max|q|. So each
  dE/dy_k is off by less than 2^-20 B_scale / sy, with B_scale = (1 + ex)(max|u| + max|v|)
  + (1 - rho) ex (sy / scale) max|dsep| the size of B's terms, whenever |x| <= 12.
Both bounds are asserted in tests/test_firmware_trainer.py over random outputs (the
largest error seen there is about 2^-21.5 B_scale / sy).
"""
from __future__ import annotations

import math

import numpy as np

from .fixed import SAMPLE_MAX, SAMPLE_MIN, lockin_boxcar, lockin_bw3, sin_q22, update_accumulate, update_process

I64_SAT = (1 << 63) - 1
EXP_T_MAX = 12 << 24
LN2_Q30 = 744261118
CORRSIG_MAX_POINTS = 1024
CORRSIG_X_CAP = 12 << 24
CORRSIG_MAX_SHIFT = 20
LOSS_FRAC = 24
DIDV_FRAC = 16
GRAD_FRAC = 32
SYNTH_MAX_AMP = 511
MAX_DAC = 8
MAX_CTL = 8
FILTER_BOXCAR, FILTER_BW3 = 0, 1


def _sat(v: int) -> int:
    return max(-I64_SAT, min(I64_SAT, v))


# -- hge_fixmath --------------------------------------------------------------------------
def div_round(num: int, den: int) -> int:
    """floor(num / den + 1/2), den > 0."""
    q, r = divmod(num, den)
    return q + 1 if 2 * r >= den else q


def shift_round(v: int, s: int) -> int:
    if s >= 0:
        if v != 0 and (s >= 63 or abs(v).bit_length() + s > 63):
            return I64_SAT if v > 0 else -I64_SAT
        return v << s if v >= 0 else -((-v) << s)
    if s <= -63:
        return 0
    return ((v >> (-s - 1)) + 1) >> 1


def ratio(num: int, den: int, shift: int) -> int:
    room = 62 - abs(num).bit_length()
    a = max(0, min(shift, room))
    return shift_round(div_round(num << a, den), shift - a)


def mul_shift(a: int, b: int, s: int) -> int:
    mag = (abs(a) * abs(b) + (1 << (s - 1))) >> s
    if mag > I64_SAT:
        mag = I64_SAT
    return -mag if (a < 0) != (b < 0) else mag


def sqrt_norm(v: int) -> tuple[int, int]:
    e = 0
    while v < (1 << 60):
        v <<= 2
        e += 1
    return math.isqrt(v), e


def exp_q24(t: int) -> int:
    """e^t, t Q24 clamped to +-12, result Q24."""
    t = max(-EXP_T_MAX, min(EXP_T_MAX, int(t)))
    t30 = t * 64
    k = div_round(t30, LN2_Q30)
    r = t30 - k * LN2_Q30
    p = 1 << 30
    for i in range(8, 0, -1):
        p = (1 << 30) + div_round(mul_shift(r, p, 30), i)
    return shift_round(p, k - 6)


# -- hge_corrsig --------------------------------------------------------------------------
def corrsig(y, z, scale: int):
    """``hge_corrsig``: returns ``(loss_q24, rho_q30, x_q24, q, exponent)``; ValueError where C refuses."""
    y = [int(v) for v in y]
    z = [int(v) for v in z]
    n = len(y)
    if not 2 <= n <= CORRSIG_MAX_POINTS:
        raise ValueError(f"y: need 2..{CORRSIG_MAX_POINTS} points, got {n}")
    if scale < 4096 or any(not SAMPLE_MIN <= v <= SAMPLE_MAX for v in y) or any(v not in (0, 1) for v in z):
        raise ValueError("corrsig: a code, a target or the scale is out of range")
    n1 = sum(z)
    n0 = n - n1
    if n1 in (0, n):
        raise ValueError("z: constant target")
    m = div_round(sum(y), n)
    d = [v - m for v in y]
    maxd = max(abs(v) for v in d)
    if maxd == 0:
        raise ValueError("y: zero variance")
    L = 0
    while L < CORRSIG_MAX_SHIFT and (maxd << L) < (1 << 24):
        L += 1
    sd = sum(d)
    sdd = sum(v * v for v in d)
    d1 = sum(v for v, t in zip(d, z) if t)
    d0 = sd - d1
    syy = (sdd << 2 * L) - div_round((sd * sd) << 2 * L, n)
    if syy <= 0:
        raise ValueError("y: zero variance")
    p = (n0 * d1 - n1 * d0) << L
    sy_m, e_y = sqrt_norm(syy)
    sk_m, e_k = sqrt_norm(n * n1 * n0)
    rho = ratio(ratio(p, sy_m, 30 + e_y), sk_m, e_k)
    rho = max(-(1 << 30), min(1 << 30, rho))
    omr = (1 << 30) - rho
    x = ratio(ratio(p, n1 * n0, 24 - L), scale, 0)
    x = max(-CORRSIG_X_CAP, min(CORRSIG_X_CAP, x))
    ex = exp_q24(-x)
    onep = (1 << 24) + ex
    loss = mul_shift(omr, onep, 30)
    cs = ratio(sy_m, scale, 24 - L - e_y)
    coef2 = mul_shift(mul_shift(omr, ex, 30), cs, 24)
    u1 = ratio(n0, sk_m, 24 + e_k)
    u0 = -ratio(n1, sk_m, 24 + e_k)
    ds1 = div_round(1 << 24, n1)
    ds0 = -div_round(1 << 24, n0)
    B = []
    for dk, t in zip(d, z):
        v = ratio(ratio(n * (dk << L) - (sd << L), sy_m, 24 + e_y), n, 0)
        a = (u1 if t else u0) - mul_shift(rho, v, 30)
        B.append(_sat(mul_shift(onep, a, 24) + mul_shift(coef2, ds1 if t else ds0, 24)))
    bmax = max(abs(b) for b in B)
    F = 0 if bmax == 0 else 29 + sy_m.bit_length() - bmax.bit_length()
    q = [ratio(-b, sy_m, F) for b in B]
    return loss, rho, x, q, 24 + F - L - e_y


# -- hge_synth ----------------------------------------------------------------------------
def synth_perturb(amp: int, phases) -> np.ndarray:
    """round-half-up amp * sin_q22(phase) / 2^22 for uint32 phases."""
    return (int(amp) * sin_q22(phases) + (1 << 21)) >> 22


def synth_ramp_step(frm: int, to: int, n_ramp: int) -> int:
    diff = to - frm
    step = (abs(diff) * 65536) // (n_ramp + 1)
    return -step if diff < 0 else step


# -- hge_trainer --------------------------------------------------------------------------
S_RAMP, S_SETTLE, S_WINDOW, S_HOLD, S_FINAL, S_STOP = range(6)
A_WAIT, A_RAMP, A_SETTLE, A_WINDOW = range(4)


def _sat24(x):
    return np.clip(np.asarray(x, np.int64), SAMPLE_MIN, SAMPLE_MAX)


def _sat32(v: int) -> int:
    return max(-(1 << 31), min((1 << 31) - 1, v))


class TrainerModel:
    """``hge_trainer_t`` step for step. ``cfg`` is a dict with the fields of
    ``hge_trainer_config_t`` (lists for the arrays; ``filter`` 0 boxcar (default) or 1
    Butterworth, then ``coeffs`` = (b0, b1, b2, a1, a2, c0, c1, d1, b_shift)); ``inputs`` (K, n_in) codes;
    ``targets`` (K,) 0/1. Validation is the binding's job; this model assumes a
    configuration ``hge_trainer_init`` accepts."""

    def __init__(self, cfg: dict, inputs, targets):
        self.c = dict(cfg)
        c = self.c
        self.inputs = np.asarray(inputs, np.int64).reshape(c["n_points"], c["n_in"])
        self.targets = [int(t) for t in targets]
        K, M = c["n_points"], c["n_ctl"]
        self.y = [0] * K
        self.q = [0] * K
        self.didv = np.zeros((K, M), np.int64)
        self.w = [int(v) for v in c["w0"][:M]]
        self.steps = np.array(c["steps"][:M], np.uint64)
        self.zero = [max(c["dac_lo"][e], min(c["dac_hi"][e], 0)) for e in range(c["n_dac"])]
        self.dac_pos = self.adc_pos = 0
        self.a_state, self.a_point, self.a_count, self.a_sum, self.a_seq = A_WAIT, 0, 0, 0, 0
        self.window_x: list = []
        self.window_phases = None
        self.window_dc = 0
        self.started = self.measured = self.ready = self.finished = 0
        self.iteration = self.measurements = 0
        self.loss = self.exponent = 0
        self.error = None
        self.s_bias = list(self.zero)
        self.iter_start = 0
        self._s_start_iteration()

    # -- DAC side --
    def _point_bias(self, k):
        c = self.c
        b = list(self.zero)
        for j in range(c["n_in"]):
            b[c["in"][j]] = int(self.inputs[k, j])
        for m in range(c["n_ctl"]):
            b[c["ctl"][m]] = self.w[m]
        return b

    def _s_enter(self, state):
        c = self.c
        self.s_count = 0
        if state == S_RAMP and c["n_ramp"] == 0:
            state = S_SETTLE
        if state == S_SETTLE and c["n_settle"] == 0:
            state = S_WINDOW
        if state == S_FINAL and c["n_ramp"] == 0:
            state = S_STOP
        self.s_state = state

    def _s_start_ramp(self, to, state):
        self.s_from = list(self.s_bias)
        self.s_step = [synth_ramp_step(f, t, self.c["n_ramp"]) for f, t in zip(self.s_bias, to)]
        self.s_acc = [0] * len(to)
        self.s_bias = list(to)
        self._s_enter(state)

    def _s_start_point(self, k):
        self.s_point = k
        self._s_start_ramp(self._point_bias(k), S_RAMP)

    def _s_start_iteration(self):
        self.iter_start = self.dac_pos
        self._s_start_point(0)
        self.started = (self.started + 1) & 0xFFFFFFFF

    def _state_len(self, st):
        c = self.c
        return {S_RAMP: c["n_ramp"], S_SETTLE: c["n_settle"], S_WINDOW: c["n_window"], S_FINAL: c["n_ramp"]}.get(st)

    def dac_block(self, n: int) -> np.ndarray:
        c = self.c
        E, M = c["n_dac"], c["n_ctl"]
        out = np.empty((n, E), np.int64)
        i = 0
        while i < n:
            if self.s_state == S_HOLD and self.ready:
                self.ready = 0
                if self.finished:
                    self._s_start_ramp(self.zero, S_FINAL)
                else:
                    self._s_start_iteration()
            st = self.s_state
            length = self._state_len(st)
            r = n - i if length is None else min(n - i, length - self.s_count)
            j = np.arange(1, r + 1, dtype=np.int64)
            chunk = np.empty((r, E), np.int64)
            for e in range(E):
                if st in (S_RAMP, S_FINAL):
                    acc = self.s_acc[e] + j * self.s_step[e]
                    chunk[:, e] = self.s_from[e] + ((acc + 32768) >> 16)
                    self.s_acc[e] += r * self.s_step[e]
                else:
                    chunk[:, e] = self.s_bias[e]
            pos = (np.uint64(self.dac_pos) + np.arange(r, dtype=np.uint64))
            if st not in (S_FINAL, S_STOP):
                for m in range(M):
                    ph = (pos * self.steps[m]) & np.uint64(0xFFFFFFFF)
                    chunk[:, c["ctl"][m]] += synth_perturb(c["amp"][m], ph)
            lo = np.array(c["dac_lo"][:E], np.int64)
            hi = np.array(c["dac_hi"][:E], np.int64)
            out[i:i + r] = np.clip(chunk, lo, hi)
            i += r
            self.dac_pos += r
            self.s_count += r
            if length is not None and self.s_count == length:
                if st == S_RAMP:
                    self._s_enter(S_SETTLE)
                elif st == S_SETTLE:
                    self._s_enter(S_WINDOW)
                elif st == S_WINDOW:
                    if self.s_point + 1 < c["n_points"]:
                        self._s_start_point(self.s_point + 1)
                    else:
                        self._s_enter(S_HOLD)
                elif st == S_FINAL:
                    self._s_enter(S_STOP)
        return out

    # -- ADC side --
    def _a_enter(self, state):
        c = self.c
        settle_sum, frm = self.a_sum, self.a_state
        self.a_count, self.a_sum = 0, 0
        if state == A_RAMP and c["n_ramp"] == 0:
            state = A_SETTLE
        if state == A_SETTLE and c["n_settle"] == 0:
            state = A_WINDOW
        if state == A_WINDOW:
            dc = 0
            if c["n_settle"] and frm == A_SETTLE:
                dc = int(_sat24(div_round(settle_sum, c["n_settle"])))
            self.window_dc = dc
            self.window_phases = (np.uint64(self.adc_pos & 0xFFFFFFFF) * self.steps) & np.uint64(0xFFFFFFFF)
            self.window_x = []
        self.a_state = state

    def _window_end(self):
        c = self.c
        k, n = self.a_point, c["n_window"]
        x = np.concatenate(self.window_x)
        bw3 = c.get("filter", 0) == FILTER_BW3
        if bw3:
            oi, oq = lockin_bw3(x, self.steps, self.window_phases, c["coeffs"], dc=self.window_dc)
        else:
            oi, oq = lockin_boxcar(x, self.steps, self.window_phases, dc=self.window_dc)
        for m in range(c["n_ctl"]):
            if bw3:
                x8, y8 = _sat32(int(oi[m]) * 4), _sat32(int(oq[m]) * 4)
            else:
                x8 = _sat32(shift_round(div_round(int(oi[m]), n), -14))
                y8 = _sat32(shift_round(div_round(int(oq[m]), n), -14))
            self.didv[k, m] = _sat32(shift_round(x8 * c["cal_i"][m] + y8 * c["cal_q"][m], -16))
        self.y[k] = div_round(self.a_sum, n)

    def adc_block(self, x) -> None:
        c = self.c
        x = np.asarray(x, np.int64)
        n = x.size
        if n > self.dac_pos - self.adc_pos:
            raise ValueError("adc_block: more samples than generated")
        i = 0
        while i < n:
            st = self.a_state
            if st == A_WAIT:
                if self.started != self.a_seq and self.adc_pos == self.iter_start:
                    self.a_seq = self.started
                    self.a_point = 0
                    self._a_enter(A_RAMP)
                    continue
                r = n - i
                if self.started != self.a_seq:
                    r = min(r, self.iter_start - self.adc_pos)
                i += r
                self.adc_pos += r
                continue
            length = {A_RAMP: c["n_ramp"], A_SETTLE: c["n_settle"], A_WINDOW: c["n_window"]}[st]
            r = min(n - i, length - self.a_count)
            seg = x[i:i + r]
            if st in (A_SETTLE, A_WINDOW):
                self.a_sum += int(_sat24(seg).sum())
            if st == A_WINDOW:
                self.window_x.append(seg)
            i += r
            self.adc_pos += r
            self.a_count += r
            if self.a_count == length:
                if st == A_RAMP:
                    self._a_enter(A_SETTLE)
                elif st == A_SETTLE:
                    self._a_enter(A_WINDOW)
                else:
                    self._window_end()
                    if self.a_point + 1 < c["n_points"]:
                        self.a_point += 1
                        self._a_enter(A_RAMP)
                    else:
                        self.a_state = A_WAIT
                        self.measured = 1

    def poll(self) -> int:
        c = self.c
        if not self.measured:
            return 0
        self.measured = 0
        self.measurements += 1
        try:
            loss, _, _, q, ex = corrsig(self.y, self.targets, c["scale"])
        except ValueError:
            self.error = "HGE_ERR_RANGE"
            self.finished = self.ready = 1
            return -5
        self.loss, self.exponent, self.q = loss, ex, q
        if loss < c["stop_loss"] or self.iteration >= c["max_iter"]:
            self.finished = 1
        else:
            M = c["n_ctl"]
            g = update_accumulate(np.zeros(M, np.int64), np.array(q, np.int64), self.didv)
            g = [shift_round(int(v), GRAD_FRAC - ex - DIDV_FRAC) for v in g]
            self.w = [int(v) for v in update_process(self.w, g, c["w_min"][:M], c["w_max"][:M],
                                                      c["eta"], c["shift"])]
            self.iteration += 1
        self.ready = 1
        return 1

    def done(self) -> bool:
        return bool(self.finished and self.s_state == S_STOP and self.adc_pos == self.dac_pos)
