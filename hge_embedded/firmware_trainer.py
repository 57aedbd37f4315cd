"""``hge train --trainer firmware``: the C on-device trainer (``csrc/hge_trainer``) run through cffi.

The whole loop — perturbation synthesis, streaming DC removal, lock-in, dI/dV, corrsig
loss derivative, chain rule and update — runs in C, in integers. Python only moves
blocks: DAC codes out of the trainer, converted to volts and through the voltage gate
(``devices.check_volts``) into ``device.measure``, and the currents back as 24-bit ADC
codes. The host binding is one implementation of the board boundary (``csrc/hge_board.h``);
the QEMU image (``tools/firmware/trainer_main.c``) is another.

What the host prepares once (the configuration a board would hold in flash): DAC code
limits from ``device.limits`` and ``dac_lsb``; a frequency plan on the 1/T grid
(integrate-and-dump: no crosstalk between grid frequencies, so no solve is needed); the
chain calibration (``gradient.calibration_for``: the device's own, or one measured
through ``loopback``/phase) folded with the applied perturbation's amplitude into one Q24
rotation-and-gain pair per control; the loss scale in ADC codes; ``eta``/``shift`` of the
update for the learning rate. Demodulation: integrate-and-dump by default (``hge train
--trainer firmware``; ``--filter`` is the host trainer's); ``filter="butterworth3"`` here
runs the Butterworth lock-in on the device, its gain at T divided out through the
calibration constants and no crosstalk solve (the plan's spacing keeps channels apart).
"""
from __future__ import annotations

import time
from types import SimpleNamespace

import numpy as np

from . import plans
from ._hge_core import ffi, lib
from .core import check_status
from .devices import check_volts
from .electrodes import to_index
from .losses import DEFAULT_SCALE_NA
from .reference.trainer_fixed import synth_perturb
from .tasks import Task, gate_found, held_out_accuracy
from .train import (DC_WINDOW, DEFAULT_DAC_LSB, DEFAULT_START, FOUND_MARGIN_SD, TrainResult, inputs_outside_limits,
                    start_codes_range)

ADC_MAX = (1 << 23) - 1
DEFAULT_FULL_SCALE_NA = 110.0  # nA at ADC code 2^23 - 1 when a device does not state its own
SETTLE = 0.005  # s before each window whose mean is the DC level removed (streaming)


class FirmwareTrainer:
    """An ``hge_trainer_t`` instance: the C state machine, block by block (numpy in, numpy out).

    ``cfg`` has the fields of ``hge_trainer_config_t`` (lists for arrays), ``inputs``
    (K, n_in) DAC codes, ``targets`` (K,) 0/1. Same methods as
    ``reference.trainer_fixed.TrainerModel``.
    """

    def __init__(self, cfg: dict, inputs, targets):
        self.cfg = dict(cfg)
        c = ffi.new("hge_trainer_config_t *")
        for key, val in cfg.items():
            if key == "coeffs":
                k = [int(x) for x in val]
                c.coeffs.b[0], c.coeffs.b[1], c.coeffs.b[2], c.coeffs.a[0], c.coeffs.a[1] = k[:5]
                c.coeffs.c[0], c.coeffs.c[1], c.coeffs.d, c.coeffs.b_shift = k[5:]
            elif isinstance(val, (list, tuple, np.ndarray)):
                arr = getattr(c, key)
                if len(val) > len(arr):
                    raise ValueError(f"{key}: at most {len(arr)} entries, got {len(val)}")
                for i, x in enumerate(val):
                    arr[i] = int(x)
            else:
                setattr(c, key, int(val))
        self._cfg = c
        self.inputs = np.ascontiguousarray(np.asarray(inputs, np.int64).reshape(-1), dtype=np.int32)
        self.targets = np.ascontiguousarray(targets, dtype=np.uint8)
        words = lib.hge_trainer_workspace_words(int(cfg["n_points"]), int(cfg["n_ctl"]))
        self._work = np.zeros(max(words, 1), np.int32)
        self._tr = ffi.new("hge_trainer_t *")
        check_status("hge_trainer_init", lib.hge_trainer_init(
            self._tr, c, ffi.cast("int32_t *", ffi.from_buffer(self.inputs)) if self.inputs.size else ffi.NULL,
            ffi.cast("uint8_t *", ffi.from_buffer(self.targets)),
            ffi.cast("int32_t *", ffi.from_buffer(self._work)), self._work.size))
        self.n_dac = int(cfg["n_dac"])

    def dac_block(self, n: int) -> np.ndarray:
        out = np.empty((int(n), self.n_dac), np.int32)
        check_status("hge_trainer_dac_block", lib.hge_trainer_dac_block(
            self._tr, ffi.cast("int32_t *", ffi.from_buffer(out)), int(n)))
        return out.astype(np.int64)

    def adc_block(self, x) -> None:
        x = np.ascontiguousarray(x, dtype=np.int32)
        check_status("hge_trainer_adc_block", lib.hge_trainer_adc_block(
            self._tr, ffi.cast("int32_t *", ffi.from_buffer(x)) if x.size else ffi.NULL, x.size))

    def poll(self) -> int:
        return int(lib.hge_trainer_poll(self._tr))

    def done(self) -> bool:
        return bool(lib.hge_trainer_done(self._tr))

    @property
    def loss(self) -> int:
        return int(self._tr.loss)

    @property
    def iteration(self) -> int:
        return int(self._tr.iteration)

    @property
    def measurements(self) -> int:
        return int(self._tr.measurements)

    @property
    def exponent(self) -> int:
        return int(self._tr.exponent)

    @property
    def w(self) -> list:
        return [int(self._tr.w[m]) for m in range(int(self.cfg["n_ctl"]))]

    @property
    def y(self) -> list:
        return [int(self._tr.y[k]) for k in range(int(self.cfg["n_points"]))]

    @property
    def didv(self) -> np.ndarray:
        K, M = int(self.cfg["n_points"]), int(self.cfg["n_ctl"])
        return np.array([self._tr.didv[i] for i in range(K * M)], np.int64).reshape(K, M)

    @property
    def q(self) -> list:
        return [int(self._tr.q[k]) for k in range(int(self.cfg["n_points"]))]


def update_rate(ratio: float) -> tuple[int, int]:
    """(eta, shift) with eta / 2^shift = ratio / 2^32, eta < 2^31 (as ``train.Trainer``)."""
    if not ratio > 0:
        raise ValueError(f"lr: the update ratio must be > 0, got {ratio!r}")
    shift = 32 + int(np.floor(np.log2(2**30 / ratio)))
    if not 0 <= shift <= 62:
        raise ValueError(f"lr: learning rate {ratio!r} codes per unit is outside the update's range")
    return int(round(ratio * 2.0 ** (shift - 32))), shift


def applied_amplitude(amp: int) -> float:
    """Fundamental (codes) of the rounded perturbation ``round(amp sin)`` the DAC really makes."""
    ph = np.arange(1 << 14, dtype=np.uint64) << np.uint64(18)
    wave = synth_perturb(amp, ph).astype(float)
    return float(2.0 * np.mean(wave * np.sin(2 * np.pi * ph.astype(float) / 2**32)))


class FirmwareRun:
    """Prepare the C trainer for one task on one device, and drive it block by block."""

    def __init__(self, device, task: Task, *, seed: int = 0, T: float = 0.1, ramp: float = 0.015,
                 settle: float = SETTLE, amplitude: float = 0.008, lr: float | None = None,
                 max_iter: int | None = None, stop_loss: float | None = None,
                 loss_scale: float = DEFAULT_SCALE_NA, calibration=None, filter: str = "boxcar"):  # noqa: A002
        from . import design
        from .gradient import calibration_for
        if filter not in ("boxcar", "butterworth3"):
            raise ValueError(f"filter must be 'boxcar' or 'butterworth3', got {filter!r}")
        if len(task.targets) > lib.HGE_CORRSIG_MAX_POINTS:
            raise ValueError(f"task {task.name}: the firmware trainer takes at most "
                             f"{lib.HGE_CORRSIG_MAX_POINTS} data points, got {len(task.targets)}")
        for name, val in (("T", T), ("amplitude", amplitude), ("loss_scale", loss_scale)):
            if not val > 0:
                raise ValueError(f"{name} must be > 0, got {val!r}")
        for name, val in (("ramp", ramp), ("settle", settle)):
            if not val >= 0:
                raise ValueError(f"{name} must be >= 0 s, got {val!r}")
        self.device, self.task, self.seed = device, task, seed
        self.fs = float(device.fs)
        n_el = int(device.n_electrodes)
        if n_el > lib.HGE_TRAINER_MAX_DAC:
            raise ValueError(f"device.n_electrodes: the firmware trainer drives at most "
                             f"{lib.HGE_TRAINER_MAX_DAC} electrodes, got {n_el}")
        self.lsb = float(getattr(device, "dac_lsb", None) or DEFAULT_DAC_LSB)
        self.full_scale = float(getattr(device, "full_scale", None) or DEFAULT_FULL_SCALE_NA)
        self.lr = task.lr if lr is None else float(lr)
        self.max_iter = task.max_iter if max_iter is None else int(max_iter)
        self.stop_loss = task.stop_loss if stop_loss is None else float(stop_loss)
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if self.max_iter < 0:
            raise ValueError(f"max_iter must be >= 0, got {self.max_iter}")
        lim = np.asarray(device.limits, float)
        self.limits = lim
        self.in_idx = to_index(task.input_electrodes, n_el)
        self.ctl_idx = to_index(task.control_electrodes, n_el)
        M = self.ctl_idx.size
        dac_lo = np.ceil(lim[:, 0] / self.lsb - 1e-9).astype(np.int64)
        dac_hi = np.floor(lim[:, 1] / self.lsb + 1e-9).astype(np.int64)
        amp = int(round(amplitude / self.lsb))
        if not 1 <= amp <= 511:
            raise ValueError(f"amplitude: {amplitude} V is {amp} DAC codes of {self.lsb:.4g} V; "
                             "the firmware synthesis takes 1..511 codes")
        lo = np.maximum(np.ceil(task.control_range[0] / self.lsb - 1e-9), dac_lo[self.ctl_idx]) + amp
        hi = np.minimum(np.floor(task.control_range[1] / self.lsb + 1e-9), dac_hi[self.ctl_idx]) - amp
        if np.any(lo > hi):
            raise ValueError(f"task {task.name}: control range {task.control_range} V leaves no room "
                             f"inside the device limits for a {amplitude} V perturbation")
        self.w_min, self.w_max = lo.astype(np.int64), hi.astype(np.int64)
        x = np.asarray(task.inputs, float)
        if np.any(x < lim[self.in_idx, 0]) or np.any(x > lim[self.in_idx, 1]):
            raise ValueError(inputs_outside_limits(task, x, lim[self.in_idx]))
        # The nearest DAC code inside the limits (a limit off the code grid moves an input < 1 LSB).
        self.inputs = self._input_codes(x)
        self.n_window = int(round(T * self.fs))
        self.T = self.n_window / self.fs
        # On the 1/T grid (whole periods: integrate-and-dump has no crosstalk) with the
        # Butterworth plan's wider spacing and product guards, so the phase-only calibration
        # (which demodulates with the Butterworth) can measure the chain at the same tones.
        self.freqs = plans.plan_frequencies(M, fs=self.fs, T=self.T, filter="butterworth3")
        steps = np.round(self.freqs / self.fs * 2**32).astype(np.int64)
        # A calibration measured now (no device.calibration, none given) costs lab time: counted below.
        cal, cal_time = (calibration, 0.0) if calibration is not None else calibration_for(device, self.freqs, self.T)
        H = cal.at(self.freqs)
        a_eff = applied_amplitude(amp)
        gain = 2.0 / (np.abs(H) * a_eff) * 2**24 / (1 - 2.0**-22)
        extra = {"filter": 0}
        if filter == "butterworth3":
            if self.n_window % design.DECIMATION:
                raise ValueError(f"T: the Butterworth needs a window of a multiple of {design.DECIMATION} "
                                 f"samples, got {self.n_window}")
            lf = design.lockin_filter(self.fs, self.T, self.n_window)
            gain = gain / lf.gain_fixed  # the filter's step response at T, divided out in the constants
            extra = {"filter": 1, "coeffs": list(lf.coeffs)}
        cal_i = np.round(gain * np.cos(np.angle(H))).astype(np.int64)
        cal_q = np.round(gain * np.sin(np.angle(H))).astype(np.int64)
        if np.any(np.abs(np.concatenate([cal_i, cal_q])) >= 2**31):
            raise ValueError(f"calibration: chain gain {np.abs(H).min():.3g} is too small for the Q24 "
                             "rotation-and-gain constants")
        self.adc_lsb = self.full_scale / ADC_MAX  # nA per ADC code
        scale = int(round(loss_scale / self.adc_lsb))
        eta, shift = update_rate(self.lr / self.lsb**2)
        self.cfg = dict(n_dac=n_el, n_ctl=M, n_in=self.in_idx.size, n_points=len(task.targets),
                        ctl=self.ctl_idx.tolist(), dac_lo=dac_lo.tolist(), dac_hi=dac_hi.tolist(),
                        w_min=self.w_min.tolist(), w_max=self.w_max.tolist(), w0=self.w_min.tolist(),
                        steps=steps.tolist(), amp=[amp] * M, cal_i=cal_i.tolist(), cal_q=cal_q.tolist(),
                        n_ramp=int(round(ramp * self.fs)), n_settle=int(round(settle * self.fs)),
                        n_window=self.n_window, scale=scale,
                        stop_loss=int(np.clip(round(self.stop_loss * 2**24), -2**63, 2**63 - 1)),
                        max_iter=self.max_iter, eta=eta, shift=shift, **extra)
        self.cfg["in"] = self.in_idx.tolist()
        self.rng = np.random.default_rng(np.random.SeedSequence([seed, 11]))
        self.lab_time = float(cal_time)

    def _input_codes(self, x) -> np.ndarray:
        lo = np.ceil(self.limits[self.in_idx, 0] / self.lsb - 1e-9)
        hi = np.floor(self.limits[self.in_idx, 1] / self.lsb + 1e-9)
        return np.clip(np.round(np.asarray(x, float) / self.lsb), lo, hi).astype(np.int64)

    # -- the board boundary, host side ------------------------------------------------
    def _measure(self, codes: np.ndarray) -> np.ndarray:
        volts = check_volts(codes.T * self.lsb, self.limits, name="firmware DAC codes")
        current = np.asarray(self.device.measure(volts), float)
        self.lab_time += codes.shape[0] / self.fs
        if current.shape != (codes.shape[0],) or not np.all(np.isfinite(current)):
            raise ValueError(f"device.measure returned shape {current.shape} (finite: "
                             f"{bool(np.all(np.isfinite(current)))}); expected {codes.shape[0]} finite currents")
        adc = np.round(current / self.adc_lsb)
        if np.any(np.abs(adc) >= ADC_MAX):
            raise ValueError(f"device output reached the ADC full scale ({self.full_scale:g} nA; largest "
                             f"{np.abs(current).max():.4g} nA): a clipped window gives a wrong gradient. "
                             "Give the device a larger full_scale.")
        return adc.astype(np.int64)

    def _check_windows(self, adc: np.ndarray, n_points: int) -> None:
        """Refuse an iteration whose demodulated windows sit on a rail (``saturation``).

        ``_measure`` catches the ADC's own full scale; a chain that clips below it (an IV
        converter, a device without ``full_scale``) shows only as samples stuck at, or piled
        up at, a window's extreme, and a clipped window silently shrinks every derivative
        the C trainer computes from it. Each point's block is ramp, settle, window."""
        from .saturation import check_saturation
        n_ramp, n_settle, n_win = (int(self.cfg[k]) for k in ("n_ramp", "n_settle", "n_window"))
        per_point = n_ramp + n_settle + n_win
        for k in range(n_points):
            start = k * per_point + n_ramp + n_settle
            check_saturation(adc[start:start + n_win].astype(float), None, policy="raise",
                             what=f"firmware trainer, task {self.task.name}, data point {k + 1} of {n_points}")

    def output_noise_sd(self, w, inputs) -> float:
        """Pooled per-sample standard deviation (nA) of the plain output at controls ``w`` for each
        of ``inputs`` (codes): ``DC_WINDOW`` s held at each point after a ramp of ``n_ramp``
        samples, as the host trainer measures it for its "found" margin. Lab time is counted."""
        n_win, n_ramp = max(2, int(round(DC_WINDOW * self.fs))), int(self.cfg["n_ramp"])
        rows, windows, prev, pos = [], [], None, 0
        for x in np.asarray(inputs, np.int64):
            b = np.zeros(int(self.cfg["n_dac"]), np.int64)
            b[self.in_idx], b[self.ctl_idx] = x, np.asarray(w, np.int64)
            if prev is not None and n_ramp:
                t = (np.arange(1, n_ramp + 1) / (n_ramp + 1))[:, None]
                rows.append(np.round(prev + (b - prev) * t).astype(np.int64))
                pos += n_ramp
            rows.append(np.repeat(b[None, :], n_win, axis=0))
            windows.append(slice(pos, pos + n_win))
            pos, prev = pos + n_win, b
        y = self._measure(np.concatenate(rows)) * self.adc_lsb
        return float(np.sqrt(np.mean([y[s].var(ddof=1) for s in windows])))

    def run(self, inputs, targets, w0, *, max_iter: int, progress=None):
        """Train (or, with max_iter = 0, measure once) from controls ``w0``; returns (trainer, losses)."""
        cfg = dict(self.cfg, w0=[int(v) for v in w0], max_iter=int(max_iter), n_points=len(targets))
        tr = FirmwareTrainer(cfg, inputs, targets)
        K = len(targets)
        per_iter = K * (cfg["n_ramp"] + cfg["n_settle"] + cfg["n_window"])
        losses, finished = [], False
        while not tr.done():
            # One iteration per block (no hold samples); after the last, the ramp to 0 V.
            n = max(1, cfg["n_ramp"]) if finished else per_iter
            codes = tr.dac_block(n)
            adc = self._measure(codes)
            if not finished:
                self._check_windows(adc, K)
            tr.adc_block(adc)
            before = tr.iteration
            r = tr.poll()
            if r < 0:
                raise ValueError(f"task {self.task.name}: the firmware loss refused the outputs "
                                 f"(status {r}: every output equal?)")
            if r == 1:
                losses.append(tr.loss / 2**24)
                finished = tr.iteration == before
                if progress:
                    progress(SimpleNamespace(task=self.task, iteration=tr.iteration, max_iter=max_iter),
                             losses[-1])
        return tr, losses

    def initial_controls(self, candidates: int | None = None, start: str = DEFAULT_START) -> np.ndarray:
        """Best of ``candidates`` (default ``task.init_candidates``) random control codes by the
        firmware's own loss; one candidate is a single random start. Each is drawn as the host
        trainer draws it (``train.start_codes_range``: the middle half of the control range by
        default, ``start="full"`` the whole range)."""
        n = self.task.init_candidates if candidates is None else candidates
        lo, hi = start_codes_range(self.w_min, self.w_max, start)
        cands = [self.rng.integers(lo, hi + 1) for _ in range(max(1, n))]
        if len(cands) == 1:
            return cands[0]
        scores = []
        for c in cands:
            tr, losses = self.run(self.inputs, self.task.targets, c, max_iter=0)
            scores.append(losses[0] if losses else np.inf)
        return cands[int(np.argmin(scores))]


def train_task_firmware(device, task: Task, *, seed: int = 0, progress=None, T: float = 0.1,
                        ramp: float = 0.015, amplitude: float = 0.008, lr: float | None = None,
                        max_iter: int | None = None, stop_loss: float | None = None, batch_size=None,
                        resume: bool = False, filter: str = "boxcar", init: str | None = None,  # noqa: A002
                        start: str = DEFAULT_START):
    """Train one task with the C trainer; returns a ``train.TrainResult`` (same fields as the host's).

    ``init``: ``"single"`` or ``"best-of-N"`` as for the host trainer (default: the task's
    ``init_candidates``). ``start``: where the random starts are drawn, as for the host trainer
    (``"middle"`` half of the control range, default, or ``"full"``).

    ``batch_size`` and ``resume`` exist only in the host trainer: anything but None / False
    raises ``ValueError`` rather than being ignored.
    """
    if batch_size is not None:
        raise ValueError(f"batch_size: the firmware trainer measures every data point per iteration, "
                         f"got {batch_size}")
    if resume:
        raise ValueError("resume: the firmware trainer keeps its state on the device; no checkpoints")
    t0 = time.perf_counter()
    if task.constant:
        # No correlation to train: found by the threshold alone, as the host trainer says.
        return TrainResult(task=task.name, kind=task.kind, found=True if task.kind == "gate" else None,
                           control_electrodes=list(map(int, task.control_electrodes)),
                           input_electrodes=list(map(int, task.input_electrodes)), accuracy=None, iterations=0, final_loss=None, controls=np.zeros(len(task.control_electrodes)),
                           outputs=np.full(len(task.targets), np.nan), losses=[], lab_time_s=0.0,
                           wall_time_s=time.perf_counter() - t0, lr=task.lr if lr is None else float(lr))
    fr = FirmwareRun(device, task, seed=seed, T=T, ramp=ramp, amplitude=amplitude, lr=lr, max_iter=max_iter,
                     stop_loss=stop_loss, filter=filter)
    from .train import parse_init
    w0 = fr.initial_controls(None if init is None else parse_init(init), start=start)
    tr, losses = fr.run(fr.inputs, task.targets, w0, max_iter=fr.max_iter, progress=progress)
    outputs = np.array(tr.y, float) * fr.adc_lsb
    found = accuracy = threshold = test_out = None
    if task.kind == "gate":
        # The host trainer's margin: every high case above every low case by more than 3 SDs
        # of the output noise, measured here at the final controls.
        found = gate_found(outputs, task.targets,
                           margin=FOUND_MARGIN_SD * fr.output_noise_sd(tr.w, fr.inputs))
    if task.test_inputs is not None:
        test_codes = fr._input_codes(task.test_inputs)
        te, _ = fr.run(test_codes, task.test_targets, tr.w, max_iter=0)
        test_out = np.array(te.y, float) * fr.adc_lsb
        accuracy, threshold = held_out_accuracy(outputs, task.targets, test_out, task.test_targets)
    controls = np.array(tr.w, float) * fr.lsb
    return TrainResult(task=task.name, kind=task.kind, found=found, accuracy=accuracy, iterations=tr.iteration,
                       control_electrodes=list(map(int, task.control_electrodes)),
                       input_electrodes=list(map(int, task.input_electrodes)),
                       final_loss=losses[-1] if losses else None, controls=controls, outputs=outputs,
                       losses=losses, lab_time_s=fr.lab_time, wall_time_s=time.perf_counter() - t0,
                       threshold=threshold, test_outputs=test_out,
                       initial_loss=losses[0] if losses else None,
                       lr=fr.lr)   # fixed: the firmware never halves it (--json per_task's lr, as the host trainer's)
