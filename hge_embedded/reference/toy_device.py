"""The integer device model of the firmware closed loop (``tools/firmware/toy_device.c``).

A seeded polynomial "device" in integer arithmetic with a fixed pseudo-random noise
generator, so the emulator's whole training loop is reproducible bit for bit in Python.
Not a DNPU: its job is to let an image with nothing else in it train a gate. Input
electrodes a, b (channels 0 and 5, as electrodes 1 and 6) and controls w (channels
1, 2, 3, 4, 6) in DAC codes; output in ADC codes:

    y = (a b D(w)) >> 16 + (a B(w) + b C(w)) >> 4 + E(w) + noise,   clamped to 24 bits
    D = d . w,  B = b0 + bv . w,  C = c0 + cv . w,  E = (e . w) << 6

with small signed integer coefficients drawn from the generator. A gate is a sign
pattern of D, B, C, all linear in w, so gradient descent on corrsig can reach XOR.
Noise: xorshift32 (13, 17, 5), ``(state >> 20) - 2048`` codes per sample (uniform,
+-2048 codes = +-0.027 nA on a 110 nA scale).
"""
from __future__ import annotations

import numpy as np

N_DAC = 7
INPUTS = (0, 5)
CONTROLS = (1, 2, 3, 4, 6)
SEED = 2463534242


def xorshift32(state: int) -> int:
    state ^= (state << 13) & 0xFFFFFFFF
    state ^= state >> 17
    state ^= (state << 5) & 0xFFFFFFFF
    return state & 0xFFFFFFFF


class ToyDevice:
    """``measure_codes(codes (n, 7) int) -> (n,) int`` ADC codes; the state is the noise generator."""

    def __init__(self, seed: int = SEED):
        self.state = seed
        coef = []
        for _ in range(3 * len(CONTROLS) + 2 + len(CONTROLS)):
            self.state = xorshift32(self.state)
            coef.append(int(self.state % 17) - 8)  # [-8, 8]
        M = len(CONTROLS)
        self.d = coef[:M]
        self.bv = coef[M:2 * M]
        self.cv = coef[2 * M:3 * M]
        self.b0 = coef[3 * M] << 11
        self.c0 = coef[3 * M + 1] << 11
        self.e = coef[3 * M + 2:]

    def coefficients(self) -> list:
        return self.d + self.bv + self.cv + [self.b0, self.c0] + self.e

    def measure_codes(self, codes) -> np.ndarray:
        codes = np.asarray(codes, np.int64)
        a, b = codes[:, INPUTS[0]], codes[:, INPUTS[1]]
        w = codes[:, list(CONTROLS)]
        D = w @ np.array(self.d, np.int64)
        B = self.b0 + w @ np.array(self.bv, np.int64)
        C = self.c0 + w @ np.array(self.cv, np.int64)
        E = (w @ np.array(self.e, np.int64)) << 6
        y = ((a * b * D) >> 16) + ((a * B + b * C) >> 4) + E
        noise = np.empty(len(codes), np.int64)
        s = self.state
        for i in range(len(codes)):
            s = xorshift32(s)
            noise[i] = (s >> 20) - 2048
        self.state = s
        return np.clip(y + noise, -(1 << 23), (1 << 23) - 1)


# -- the closed loop the emulator image runs (tools/firmware/trainer_main.c) -------------
FS = 10_000.0
N_WINDOW = 200            # T = 20 ms: a 50 Hz grid
BINS = (3, 5, 7, 11, 13)  # control tones on the 1/T grid: 150 .. 650 Hz
AMP = 26                  # codes: 8 mV on a 16-bit +-10 V DAC
DAC_LO, DAC_HI = -3932, 2294     # -1.2 .. 0.7 V
W_LO, W_HI = -3932 + AMP, 1966 - AMP  # controls in [-1.2, 0.6] V less the perturbation
LOGIC = (-2294, 2294)     # +-0.7 V
SCALE = 762600            # 10 nA in codes of a 110 nA, 24-bit ADC
STOP_LOSS = round(0.008 * 2**24)
LR_CODES = 4.0e6          # codes of step per unit of dE/dw (1/code)
W0 = (-1000, 500, -2000, 1000, -500)


def update_rate(ratio: float) -> tuple[int, int]:
    """(eta, shift) with eta / 2^shift = ratio / 2^32 and eta < 2^31 (as train.Trainer)."""
    shift = 32 + int(np.floor(np.log2(2**30 / ratio)))
    return int(round(ratio * 2.0 ** (shift - 32))), shift


def closed_loop_config(bits: str = "0110", *, max_iter: int = 300, w0=W0, n_ramp: int = 20,
                       n_settle: int = 40, n_window: int = N_WINDOW, lr: float = LR_CODES):
    """(cfg dict, inputs (4, 2), targets (4,)) of a gate on the toy device."""
    M = len(CONTROLS)
    eta, shift = update_rate(lr)
    steps = [int(round(k / (n_window / FS) / FS * 2**32)) for k in BINS]
    cal = int(round(2.0 / AMP * 2**24 / (1 - 2.0**-22)))
    cfg = dict(n_dac=N_DAC, n_ctl=M, n_in=2, n_points=4, ctl=list(CONTROLS), **{"in": list(INPUTS)},
               dac_lo=[DAC_LO] * N_DAC, dac_hi=[DAC_HI] * N_DAC, w_min=[W_LO] * M, w_max=[W_HI] * M,
               w0=list(w0), steps=steps, amp=[AMP] * M, cal_i=[cal] * M, cal_q=[0] * M,
               n_ramp=n_ramp, n_settle=n_settle, n_window=n_window, scale=SCALE, stop_loss=STOP_LOSS,
               max_iter=max_iter, eta=eta, shift=shift)
    lo, hi = LOGIC
    inputs = np.array([[lo, lo], [lo, hi], [hi, lo], [hi, hi]], np.int64)
    targets = np.array([int(c) for c in bits], np.int64)
    return cfg, inputs, targets


def run_closed_loop(trainer, device: ToyDevice, n_dac: int = N_DAC, block: int = 256, max_blocks: int = 10**6):
    """Drive a trainer (model or C binding, same methods) against the toy device; returns the losses (Q24)."""
    losses = []
    for _ in range(max_blocks):
        codes = trainer.dac_block(block)
        trainer.adc_block(device.measure_codes(codes))
        if trainer.poll() == 1:
            losses.append(trainer.loss)
        if trainer.done():
            return losses
    raise RuntimeError("closed loop did not finish")
