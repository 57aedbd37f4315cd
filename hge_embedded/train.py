"""Training in the loop: HGE gradient per data point, chain rule, C fixed-point update.

One iteration measures every data point (or a mini-batch) in one ``device.measure``
call: for each point a window of T with the control electrodes perturbed, joined by
linear ramps of ``ramp`` s (the paper: 15 ms) that are never demodulated. The loss
derivative dE/dy comes from ``losses.corrsig``; the chain rule and the step on DAC
codes run through the C core's fixed-point update rule (``core.UpdateRule``):

    dEdI  Q24 (1/nA, int32)     dIdV  Q8 (nA/V, int32)     g = sum_k dEdI dIdV  Q32 (1/V)
    codes <- clamp(codes - round(eta g / 2^shift)),   eta / 2^shift = lr / (dac_lsb 2^32)

eta and shift leave eta * g room for any step up to the whole control range (the rule
saturates eta * g at 2^63): the step is the paper's lr dE/dV, clipped only by the range.
``max_step`` (optional, V) scales a larger step down to it, keeping its direction.

Every window passes the voltage gate (``devices.check_volts``) before it is applied;
controls are clamped to their range shrunk by the perturbation amplitude, so no
sample ever leaves the limits.

The random start (``start``): one setting (or N candidates, ``init="best-of-N"``) drawn
uniformly from the middle half of each control's range (``start_codes_range``). The paper
trains from one random start and gives neither a best-of-N nor the draw's distribution; the
step rule, lr, iteration budget and stop loss stay the paper's. Why the middle half and not
the whole range (``start="full"``): projected gradient descent stops at stationary points of
the box-constrained loss, with controls pinned on a bound and the gradient pointing out of
the range; their basins of attraction lie by the bounds (measured, see ``STARTS`` below and
the README), so a start drawn away from them reaches a gate far more often.

A gate is judged on the final plain outputs; outputs on a rail are never a found gate: the
device's ``full_scale`` when it states one, otherwise ``unstated_rail_samples``.
"""
from __future__ import annotations

import collections
import time
from dataclasses import dataclass, field

import numpy as np

from . import checkpoint, core
from .devices import check_limits, check_volts, device_name
from .devices import measure as checked_measure
from .electrodes import to_index
from .gradient import HGEWindow
from .losses import DEFAULT_SCALE_NA, corrsig
from .saturation import RUN_MIN, SaturationError, saturated_samples
from .tasks import Task, class_gap, gate_found, gate_threshold, held_out_accuracy
from .train_checks import (MAX_LR_HALVINGS, CycleCheck, DescentCheck, StaleCalibrationCheck,
                           failure_kind, loss_trend, oscillation_note, pinned_controls)

DEDI_FRAC = 24   # Q24
DIDV_FRAC = 8    # Q8
DC_WINDOW = 0.02  # s, plain (unperturbed) output windows for initial candidates and evaluation
DEFAULT_DAC_LSB = 20.0 / 2**16  # the cDAQ 9264's grid, when a device does not state its own
DEFAULT_INIT = "single"  # the paper: one random start, then gradient descent
FOUND_MARGIN_SD = 3.0    # a gate is found when its class gap exceeds 3 output-noise standard deviations
# --restart-on-stall: a start has stalled when the best loss of its last STALL_WINDOW iterations
# is not STALL_TOL (relative) below its best before them. On the surrogate every single-start
# gate failure is such a stall: controls pinned on the control range's bound with the gradient
# pointing out of it and the free components below half a DAC code per step (a constrained
# stationary point that projected gradient descent cannot leave; README, "Restarts").
STALL_WINDOW = 30
STALL_TOL = 0.01
# The random start: each control is drawn uniformly from the MIDDLE HALF of its range (codes
# between the range's quarter points), not from the whole range (``start="full"``, sessions 1-4).
# Why (session 5, README "Where to start"): single-start gate failures on the simulator are
# constrained stationary points with controls pinned on the range's bounds, and their basins lie
# by the bounds: offline (exact gradients, surrogate device 0, 64 all-gates seeds 100-163) the share
# of gates not found rises with the number of controls drawn in the outer half of their range,
# 0/23 with none, 1.9 % with one ... 12 % with all five. Drawn in the middle half, 974 -> 1004 of
# 1024 gates are found and 23 -> 44 of 64 runs are 16/16 (seeds 164-227: 968 -> 1008, 26 -> 49);
# on devices 1, 2, 3 (not used to choose) 459 -> 491, 478 -> 503, 444 -> 462 of 512. The paper
# states one random start, not its distribution; the step rule, lr, iterations and stop loss are
# unchanged. The start is a property of the run (checkpointed through the config), not of the device.
# What the middle half leaves: on seeds 0-63 offline 13 of 1024 gates (was 49), 8 of them pinned
# (was 47) and 3 a 2-cycle of the step (an XNOR whose loss curves faster than 2 / lr).
STARTS = ("middle", "full")
DEFAULT_START = "middle"


def inputs_outside_limits(task, inputs, limits) -> str:
    """The refusal of a task whose input voltages leave the input electrodes' limits: names each electrode,
    the voltages the task drives on it and its limits (``limits``: (n_inputs, 2) V)."""
    x = np.asarray(inputs, float).reshape(-1, len(task.input_electrodes))
    parts = []
    for j, e in enumerate(task.input_electrodes):
        lo, hi = float(limits[j, 0]), float(limits[j, 1])
        bad = sorted({float(v) for v in x[:, j] if v < lo or v > hi})
        if bad:
            parts.append(f"electrode {e}: inputs {bad} V outside its limits [{lo:g}, {hi:g}] V")
    return (f"task {task.name}: the inputs leave the device limits ({'; '.join(parts)}); give the input electrodes "
            "limits that hold the task's input voltages, or map the inputs to other electrodes (--inputs)")


def dEdI_codes(dE):
    """``dE/dI`` (1/nA) as int32 codes for the update rule, with a block exponent: ``(codes, k)``
    with ``codes = round(dE 2^(DEDI_FRAC - k))`` and the smallest ``k >= 0`` that fits int32.

    ``k = 0`` (Q24, |dE/dI| < 128 /nA) on every run of the default loss. The paper's loss without
    a scale (``--paper-mode``) reaches ``|dE/dI| = (1 - rho) e^(-y_sep / 1 nA)``, ~1e17 at a
    separation of -40 nA: the rule then accumulates in Q(24 - k) and ``shift_left_sat64`` brings
    the sum back to Q32. Rounding: half a unit of ``2^(k - 24)`` per point instead of ``2^-24``."""
    dE = np.asarray(dE, float)
    peak = float(np.max(np.abs(dE), initial=0.0)) * 2.0**DEDI_FRAC
    k = 0
    if peak >= 2**31 - 1:
        k = int(np.ceil(np.log2(peak / (2**31 - 1))))
    codes = np.round(dE * 2.0**(DEDI_FRAC - k))
    while np.max(np.abs(codes), initial=0.0) >= 2**31:   # log2's rounding at a power of two
        k += 1
        codes = np.round(dE * 2.0**(DEDI_FRAC - k))
    return codes.astype(np.int64), k


def shift_left_sat64(g, k: int) -> np.ndarray:
    """``g 2^k`` saturated to int64 (Python integers: the product may not fit). A saturated
    component means a step of at least ``2^(63 - shift)`` codes, which the trainer's ``shift``
    makes longer than the whole control range: the rule puts that electrode on the bound the
    float step ``lr dE/dV`` would cross, as the paper's clamp does."""
    g = np.asarray(g, np.int64)
    if k == 0:
        return g
    hi = 2**63 - 1
    return np.array([max(-hi, min(hi, int(x) << k)) for x in g.tolist()], np.int64)


def start_codes_range(w_min, w_max, start: str = DEFAULT_START):
    """The codes a random start is drawn from: ``"full"`` the whole control range
    ``[w_min, w_max]``; ``"middle"`` its middle half, ``[ceil(c - q), floor(c + q)]`` with
    ``c = (w_min + w_max) / 2`` and ``q = (w_max - w_min) / 4`` (never empty: it holds ``c``
    rounded, which lies in the range). Raises ``ValueError`` for another ``start``."""
    if start not in STARTS:
        raise ValueError(f"start must be one of {list(STARTS)}, got {start!r}")
    w_min, w_max = np.asarray(w_min, np.int64), np.asarray(w_max, np.int64)
    if start == "full":
        return w_min, w_max
    c, q = (w_min + w_max) / 2.0, (w_max - w_min) / 4.0
    lo, hi = np.ceil(c - q).astype(np.int64), np.floor(c + q).astype(np.int64)
    mid = np.floor(c).astype(np.int64)   # an empty middle (a range of 0-1 codes) falls back to its centre
    return np.where(lo <= hi, lo, mid), np.where(lo <= hi, hi, mid)


UNSTATED_RAIL_NOTE = ("on a rail the device does not state (no full_scale: runs of one value at a window's "
                      "extreme, or every sample equal at an extreme output that another window repeats; a "
                      "noise-free device looks the same: state its full_scale to be judged by it)")


def unstated_rail_samples(windows) -> int:
    """Samples of plain (DC) evaluation windows that sit on a rail the device does not state.

    A device without ``full_scale`` (the contract leaves it optional) may still clip. A final
    evaluation on such a rail must not count as a found gate, as on a stated one (``Trainer.result``).
    Without the rail's value the rule can only use what clipping does to noise:

    * a window whose samples vary: ``saturation.saturated_samples`` with its run rules (the lock-in
      windows' rule: runs of >= ``RUN_MIN`` equal samples at the window's extreme, a pile-up there,
      a shelf), which an unclipped noisy output does not produce;
    * a window whose samples are all equal (clipping removes the noise entirely): counted when its
      value is the largest or the smallest output of the evaluation and another constant window has
      exactly the same value, i.e. two cases on one rail (the case where clipped outputs look like a
      wide gap). A noise-free device whose outputs repeat an extreme value exactly is counted too:
      without ``full_scale`` the two cannot be told apart, and the note (``UNSTATED_RAIL_NOTE``) says
      to state it. A single constant window at an extreme is not counted: clipping is monotone, so
      alone it cannot turn an overlap of the classes into a gap.
    * a window of at most ``FEW_LEVELS`` equally spaced values (noise below ~0.4 ADC steps rms: one level
      read through coarse quantisation, which always has runs at its extremes) is judged as a constant
      window at its most frequent value (review s5: 0.2 steps rms was counted as a rail);
    * when no window shows noise (each constant, or moving monotonically to a final run of at least
      ``RUN_MIN`` equal samples: a noise-free device's chain settling), every window is judged by its
      settled value with the rule above, not by the run rule (which counts every settled window):
      on a noisy device such an evaluation has every case on one of two rails, so with three or more
      cases a rail's value is repeated and extreme.

    Parameters
    ----------
    windows : sequence of 1-D arrays
        The samples (nA) of each plain window.

    Returns
    -------
    int
        The number of samples counted as on a rail.
    """
    windows = [np.asarray(w, float) for w in windows]
    constant = [w.size > 1 and bool(np.all(w == w[0])) for w in windows]
    # A window of at most FEW_LEVELS equally spaced values is one level read through coarse quantisation
    # (noise below ~0.4 ADC steps rms): judged by its most frequent value like a constant window, not by the
    # run rule, whose runs such a window always has (review s5: 0.2 steps rms read as a rail).
    few = [None if const else _few_level_value(w) for w, const in zip(windows, constant)]
    settled = [_settled_value(w) for w in windows]
    if windows and all(x is not None for x in settled) and not all(constant):
        # No window shows noise: each settles (monotonically, e.g. through the chain's filter) on a run
        # of one value. Either the device is noise-free or every window is on a rail; on a noisy device
        # every case is then on one of the two rails, so with 3 or more cases a rail's value is repeated
        # and an extreme: the repeated-extreme rule below, on the settled values, counts it. The run rule
        # would count every settled window of a noise-free device (its settled value is its extreme).
        windows = [np.full(w.size, x) for w, x in zip(windows, settled)]
        constant = [w.size > 1 for w in windows]
        few = [None] * len(windows)
    # Few-level windows stand for their level from here on (one value, as a constant window).
    windows = [w if f is None else np.full(w.size, f) for w, f in zip(windows, few)]
    constant = [const or f is not None for const, f in zip(constant, few)]
    # Each window's output level: a constant window's own value (its mean differs from it by round-off
    # for most values, e.g. 200 x 60.7 nA averages to 60.7 + 7e-15: compared with the value, the extreme
    # would then be missed and a gate on the rail counted as found; review s5), else its mean.
    levels = [float(w[0]) if const else float(w.mean()) for w, const in zip(windows, constant) if w.size]
    hi, lo = (max(levels), min(levels)) if levels else (np.nan, np.nan)
    # How many constant windows hold each value (a dict, not a pairwise search: a sphere's test set
    # has ~1000 windows; -0.0 and 0.0 are one key, as they compare equal).
    seen = collections.Counter(float(w[0]) for w, const in zip(windows, constant) if const)
    count = 0
    for w, const in zip(windows, constant):
        if not const:
            count += saturated_samples(w, None, runs=True) if w.size else 0
            continue
        v = float(w[0])
        repeated = seen[v] >= 2
        if repeated and (v == hi or v == lo):
            count += w.size
    return count


FEW_LEVELS = 3   # Gaussian noise of sd s ADC steps around a level stays within +-1 step (3 values) over a
                # 200-sample window unless a sample lies 1.5 steps out: P(|z| > 1.5 / s) per sample, 6e-14
                # at s = 0.2, 0.27 % at s = 0.5 (a 4th value in 42 % of windows): "few levels" is noise
                # below ~0.4 steps rms. A clipped window with so few levels cannot be told from it either.


def _few_level_value(w):
    """The most frequent value of a window of 2..FEW_LEVELS distinct, equally spaced values (one level read
    through coarse quantisation), the one nearest the mean on a tie; None for any other window."""
    if w.size < 2:
        return None
    u, c = np.unique(w, return_counts=True)
    if not 2 <= u.size <= FEW_LEVELS:
        return None
    d = np.diff(u)
    if not np.allclose(d, d[0], rtol=1e-6, atol=0.0):
        return None
    top = np.flatnonzero(c == c.max())
    return float(u[top[np.argmin(np.abs(u[top] - w.mean()))]])


def _settled_value(w):
    """The value a noise-free window settles on: ``w`` moves monotonically (or not at all) to a final
    run of at least ``RUN_MIN`` equal samples (or is constant); None for any other window."""
    if w.size < 2:
        return None
    last = w[-1]
    moving = np.flatnonzero(w != last)
    k = int(moving[-1]) + 1 if moving.size else 0      # the final run is w[k:]
    if k and w.size - k < RUN_MIN:
        return None
    d = np.diff(w[:k + 1])
    return float(last) if (np.all(d >= 0) or np.all(d <= 0)) else None


def parse_init(init) -> int:
    """``"single"`` -> 1 candidate; ``"best-of-N"`` -> N (N >= 1). Raises ValueError otherwise."""
    key = str(init).strip().lower()
    if key == "single":
        return 1
    if key.startswith("best-of-"):
        try:
            n = int(key[len("best-of-"):])
        except ValueError:
            n = 0
        if n >= 1:
            return n
    raise ValueError(f"init must be 'single' or 'best-of-N' with N >= 1 (e.g. best-of-8), got {init!r}")


@dataclass
class TrainResult:
    task: str
    kind: str
    found: bool | None
    accuracy: float | None
    iterations: int
    final_loss: float | None
    controls: np.ndarray            # V, in order of the task's control electrodes
    outputs: np.ndarray             # nA at the training points (last evaluation)
    losses: list
    lab_time_s: float
    wall_time_s: float
    threshold: float | None = None
    test_outputs: np.ndarray | None = None
    history_controls: list = field(default_factory=list)
    initial_loss: float | None = None
    initial_accuracy: float | None = None
    noise_sd: float | None = None     # nA, output noise per sample in the evaluation windows
    gap: float | None = None          # nA, gate class gap min(high) - max(low) at the end (< 0: not separated)
    restarts: list = field(default_factory=list)  # iterations at which a stalled start was replaced
    stopped: str | None = None        # why the task ended early, e.g. its output reached the rail (None: it did not)
    failure: str | None = None        # a gate not found: train_checks.failure_kind (pinned, oscillating, ...)
    diagnosis: str | None = None      # what the loss did, when worth saying (train_checks.OSCILLATION_NOTE)
    control_electrodes: list | None = None   # the electrodes (1-based) that ``controls`` are in order of
    input_electrodes: list | None = None     # the electrodes (1-based) the task's inputs were applied to
    lr: float | None = None           # the learning rate at the task's end (the starting one unless halved)
    lr_halved_at: list = field(default_factory=list)   # iterations at which a 2-cycle halved lr (train_checks.CycleCheck)

    _ARRAYS = ("controls", "outputs", "test_outputs")

    def to_dict(self) -> dict:
        """Every field, JSON-able (floats kept exactly: JSON writes the shortest round-trip repr)."""
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        for k in self._ARRAYS:
            d[k] = None if d[k] is None else np.asarray(d[k]).tolist()
        d["found"] = None if d["found"] is None else bool(d["found"])
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "TrainResult":
        d = dict(d)
        d.setdefault("restarts", [])   # fields added in session 4, with their defaults
        d.setdefault("stopped", None)
        d.setdefault("failure", None)    # session 6
        d.setdefault("diagnosis", None)
        d.setdefault("control_electrodes", None)   # session 6: results saved before name no electrodes
        d.setdefault("input_electrodes", None)
        d.setdefault("lr", None)            # session 7: results saved before record no lr (it was fixed)
        d.setdefault("lr_halved_at", [])
        missing = [k for k in cls.__dataclass_fields__ if k not in d]
        if missing:
            raise ValueError(f"a finished task's result lacks {missing}")
        for k in cls._ARRAYS:
            d[k] = None if d[k] is None else np.asarray(d[k], float)
        return cls(**{k: d[k] for k in cls.__dataclass_fields__})

    def summary(self) -> dict:
        return {"task": self.task, "found": self.found, "accuracy": self.accuracy,
                "iterations": self.iterations, "final_loss": self.final_loss,
                "initial_loss": self.initial_loss, "initial_accuracy": self.initial_accuracy,
                "gap_nA": self.gap, "noise_sd_nA": self.noise_sd, "restarts": list(self.restarts),
                "stopped": self.stopped, "failure": self.failure, "diagnosis": self.diagnosis,
                "lab_time_s": self.lab_time_s, "wall_time_s": self.wall_time_s,
                "controls_V": self.controls.tolist(), "control_electrodes": self.control_electrodes,
                "input_electrodes": self.input_electrodes, "lr": self.lr, "lr_halved_at": list(self.lr_halved_at)}


class Trainer:
    """Trains one task on one device; state is explicit so a run can be checkpointed and resumed."""

    def __init__(self, device, task: Task, *, seed: int = 0, T: float = 0.1, ramp: float = 0.015,
                 filter: str = "butterworth3", engine: str = "c", amplitude: float = 0.008,  # noqa: A002
                 lr: float | None = None, max_iter: int | None = None, stop_loss: float | None = None,
                 batch_size: int | None = None, loss_scale: float = DEFAULT_SCALE_NA,
                 separation: str = "mean", phase: str = "calibrated", init: str = DEFAULT_INIT,
                 crosstalk: str = "solve", max_step: float | None = None, restart_on_stall: bool = False,
                 start: str = DEFAULT_START, lr_backoff: bool = True):
        self.device, self.task = device, task
        self.seed, self.T, self.ramp, self.amplitude = seed, float(T), float(ramp), float(amplitude)
        self.lr = task.lr if lr is None else float(lr)
        self.max_iter = task.max_iter if max_iter is None else max_iter
        if isinstance(self.max_iter, bool) or not isinstance(self.max_iter, (int, np.integer)) or self.max_iter < 0:
            raise ValueError(f"max_iter must be a whole number >= 0, got {max_iter!r}")
        self.max_iter = int(self.max_iter)
        self.stop_loss = task.stop_loss if stop_loss is None else float(stop_loss)
        self.batch_size = batch_size
        self.loss_scale, self.separation = loss_scale, separation
        self.init, self.n_candidates = str(init), parse_init(init)
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        # At least 2: the loss is a correlation, undefined on one target (review s6: --batch-size 1 ended every
        # trained task with "targets are all 0").
        lo_batch = 1 if task.constant else 2
        if batch_size is not None and not lo_batch <= batch_size <= len(task.targets):
            raise ValueError(f"batch_size must be in {lo_batch}..{len(task.targets)}, got {batch_size}")
        if not np.isfinite(self.ramp) or self.ramp < 0:
            raise ValueError(f"ramp must be a finite time >= 0 s, got {ramp!r}")
        self.fs = float(device.fs)
        self.in_idx = to_index(task.input_electrodes, device.n_electrodes)
        self.ctl_idx = to_index(task.control_electrodes, device.n_electrodes)
        lim = check_limits(device.limits, int(device.n_electrodes), name=f"{device_name(device)}.limits")
        if np.any(task.inputs < lim[self.in_idx, 0]) or np.any(task.inputs > lim[self.in_idx, 1]):
            raise ValueError(inputs_outside_limits(task, task.inputs, lim[self.in_idx]))
        self.lsb = getattr(device, "dac_lsb", None) or DEFAULT_DAC_LSB
        lo = np.maximum(task.control_range[0], lim[self.ctl_idx, 0]) + self.amplitude
        hi = np.minimum(task.control_range[1], lim[self.ctl_idx, 1]) - self.amplitude
        if np.any(lo > hi):
            raise ValueError(f"task {task.name}: control range {task.control_range} V leaves no room "
                             f"inside the device limits for a {self.amplitude} V perturbation")
        self.w_min = np.ceil(lo / self.lsb).astype(np.int64)
        self.w_max = np.floor(hi / self.lsb).astype(np.int64)
        self.set_lr(self.lr)   # the fixed-point rule's eta and shift (set_lr says how they are chosen)
        self.start = start
        self.s_min, self.s_max = start_codes_range(self.w_min, self.w_max, start)
        # Optional trust region: no electrode moves more than max_step V in one update (the whole
        # step is scaled, so its direction is kept). None: the paper's plain step lr * dE/dV.
        self.max_step = None if max_step is None else float(max_step)
        self.max_step_codes = None
        if self.max_step is not None:
            if not (np.isfinite(self.max_step) and self.max_step >= self.lsb):
                raise ValueError(f"max_step must be a finite step of at least one DAC code ({self.lsb:.3g} V), "
                                 f"got {max_step!r}")
            self.max_step_codes = int(np.floor(self.max_step / self.lsb))
        if not isinstance(restart_on_stall, (bool, np.bool_)):
            raise TypeError(f"restart_on_stall must be True or False, got {restart_on_stall!r}")
        self.restart_on_stall = bool(restart_on_stall)
        # A 2-cycle halves lr (at most MAX_LR_HALVINGS times; train_checks.CycleCheck). False: the paper's fixed lr.
        if not isinstance(lr_backoff, (bool, np.bool_)):
            raise TypeError(f"lr_backoff must be True or False, got {lr_backoff!r}")
        self.lr_backoff = bool(lr_backoff)
        self.window = HGEWindow(device, electrodes=task.control_electrodes, amplitudes=self.amplitude,
                                T=self.T, filter=filter, engine=engine, phase=phase, crosstalk=crosstalk,
                                eager=True)
        self.n_ramp = int(round(self.ramp * self.fs))
        # Run state (everything a checkpoint must hold).
        self.rng = np.random.default_rng(np.random.SeedSequence([seed, 11]))
        self.codes: np.ndarray | None = None
        self.iteration = 0
        self.losses: list = []
        self.history_controls: list = []
        self.outputs = np.zeros(len(task.targets))
        self.lab_time = self.window.take_calibration_time()  # a loopback calibration measured just now
        self.done = False
        self.initial_accuracy: float | None = None
        # --restart-on-stall state: where the current start's losses begin, the restarts so far,
        # and the lowest loss of the whole run with the codes it was measured at.
        self.segment_start = 0
        self.restarts: list = []
        self.best_loss = np.inf
        self.best_codes: np.ndarray | None = None
        self.stopped: str | None = None
        self.ended_at_best = False  # finish() went back to an earlier start's lowest loss
        self.evaluation_saturated = 0  # samples on a rail in the last plain evaluation (measure_outputs)
        self.evaluation_rail = ""      # which rule saw them (the device's full_scale or an unstated rail)
        # Trust checks (train_checks; checkpointed): the pooled stale-calibration test of this task's chain
        # and the descent check; the last gradient used (1/V), for the pinned diagnosis at the end.
        self.stale_check = StaleCalibrationCheck(len(task.control_electrodes))
        self.descent_check = DescentCheck()
        self.last_g: np.ndarray | None = None
        self.best_g: np.ndarray | None = None   # dE/dV measured at best_codes (the pinned test at a return to them)
        # lr_backoff: the 2-cycle test (checkpointed) and the iterations at which it halved lr.
        self.cycle_check = CycleCheck()
        self.lr_halved_at: list = []

    def set_lr(self, lr: float) -> None:
        """Use learning rate ``lr`` (V^2) from the next step on: the fixed-point rule's ``eta`` and ``shift``.

        eta as large as int32 allows (precision), but no larger than leaves eta * g room in
        int64 for every step up to the whole control range: the rule saturates eta * g at
        2^63, i.e. a step of 2^(63 - shift) codes, so shift <= 63 - ceil(log2(range codes)).
        (Before session 3 eta sat in [2^29, 2^30): |dE/dV| above ~2.6 /V (lr 0.015) or
        ~3.9 /V (lr 0.02) silently clipped every electrode's step at 128 or 256 codes,
        39 or 78 mV, turning the step's direction; the paper's plain step is taken now.)
        A deterministic function of ``lr``: a resumed run rebuilds the same rule from the checkpointed lr."""
        ratio = float(lr) / self.lsb  # codes per unit of dE/dV
        span = int(np.max(self.w_max - self.w_min)) + 1
        shift = min(32 + int(np.floor(np.log2(2**30 / ratio))), 63 - int(np.ceil(np.log2(span))))
        eta = int(round(ratio * 2.0 ** (shift - 32)))
        if not 1 <= eta < 2**31 or shift < 1:
            raise ValueError(f"lr {lr} V^2 (with the DAC step {self.lsb:.3g} V) does not fit the fixed-point "
                             f"update (eta {eta}, shift {shift})")
        self.lr, self.shift, self.eta = float(lr), shift, eta
        self.rule = core.UpdateRule(self.w_min, self.w_max, eta=self.eta, shift=self.shift)

    # -- volts --------------------------------------------------------------------------
    def controls(self, codes=None) -> np.ndarray:
        return (self.codes if codes is None else codes) * self.lsb

    def _bias(self, x, controls) -> np.ndarray:
        b = np.zeros(self.device.n_electrodes)
        b[self.in_idx] = x
        b[self.ctl_idx] = controls
        return b

    def _string(self, biases, window_of):
        """Join windows (``window_of(bias)`` -> volts) with linear ramps; return volts and slices."""
        parts, slices, pos, prev = [], [], 0, None
        for b in biases:
            w = window_of(b)
            if prev is not None and self.n_ramp:
                t = (np.arange(1, self.n_ramp + 1) / (self.n_ramp + 1))[None, :]
                parts.append(prev[:, None] + (w[:, :1] - prev[:, None]) * t)
                pos += self.n_ramp
            parts.append(w)
            slices.append(slice(pos, pos + w.shape[1]))
            pos += w.shape[1]
            prev = w[:, -1]
        volts = np.concatenate(parts, axis=1)
        check_volts(volts, self.device.limits)
        return volts, slices

    def _string_windows(self, biases):
        """HGE windows at ``biases`` (K, n_electrodes) joined by ramps: ``_string(biases,
        self.window.waveform)``, bit for bit (the same sums and products per sample, tested), written
        straight into the record instead of through K window arrays and a concatenation."""
        win = self.window
        B = np.asarray(biases, dtype=float)
        if win.needs_calibration:  # the first window calibrates, as in waveform()
            win.waveform(B[0])
        K, ne = B.shape
        n, nr = win.n, self.n_ramp
        L = n + nr
        volts = np.empty((ne, K * n + (K - 1) * nr))
        rows, tones = win.tone_rows()
        # Windows 0..K-2 each with the ramp after it: a (ne, K-1, L) view of the record.
        body = volts[:, :(K - 1) * L].reshape(ne, K - 1, L)
        if K > 1 and not np.shares_memory(body, volts):  # pragma: no cover - numpy makes a view here
            raise RuntimeError("Trainer._string_windows: the record's window view is a copy")
        last = volts[:, (K - 1) * L:]
        # bias + tone written in one pass per row (the same sum as writing the bias, then adding the
        # tone); a row's further tones, if any, added after it, as before; rows without a tone: the bias.
        toned = set()
        for r, tone in zip(rows.tolist(), tones):
            if r in toned:
                body[r, :, :n] += tone
                last[r] += tone
            else:
                np.add(B[:-1, r][:, None], tone, out=body[r, :, :n])
                np.add(B[-1, r], tone, out=last[r])
                toned.add(r)
        for r in range(ne):
            if r not in toned:
                body[r, :, :n] = B[:-1, r][:, None]
                last[r] = B[-1, r]
        if nr and K > 1:
            prev = body[:, :, n - 1:n]                                             # (ne, K-1, 1)
            nxt = np.concatenate([body[:, 1:, :1], last[:, None, :1]], axis=1)   # (ne, K-1, 1)
            t = (np.arange(1, nr + 1) / (nr + 1))[None, None, :]
            body[:, :, n:] = prev + (nxt - prev) * t
        check_volts(volts, self.device.limits)
        return volts, [slice(k * L, k * L + n) for k in range(K)]

    def measure_outputs(self, inputs, codes=None, noise: bool = False):
        """Plain output currents (nA) at ``inputs`` for the current controls (DC windows).

        ``noise=True`` also returns the pooled per-sample standard deviation (nA) inside
        the windows: the output noise the gate margin is compared with."""
        n = max(1, int(round(DC_WINDOW * self.fs)))
        ctl = self.controls(codes)
        volts, slices = self._string([self._bias(x, ctl) for x in inputs],
                                     lambda b: np.repeat(b[:, None], n, axis=1))
        y = checked_measure(self.device, volts)
        self.lab_time += volts.shape[1] / self.fs + self.window.take_calibration_time()
        means = np.array([y[s].mean() for s in slices])
        full_scale = getattr(self.device, "full_scale", None)
        if full_scale:
            # Samples on full_scale in these plain windows (no run rule: a noise-free device repeats values).
            self.evaluation_saturated = sum(saturated_samples(y[s], full_scale, runs=False) for s in slices)
            self.evaluation_rail = "at the device's full_scale"
        else:
            self.evaluation_saturated = unstated_rail_samples([y[s] for s in slices])
            self.evaluation_rail = UNSTATED_RAIL_NOTE
        if not noise:
            return means
        if n < 2:
            return means, float("nan")
        var = np.array([y[s].var(ddof=1) for s in slices])
        # Windows without any spread, on a device that shows noise in others, are clipped (on a rail): their
        # zero variance is not the output noise, and pooled it would shrink the estimate the found margin
        # uses (one clipped window of four: sqrt(3/4), 3 sd -> 2.6 sd; review s5). Left out; with no noisy
        # window at all (a noise-free device) the estimate stays 0.
        noisy = var > 0
        sd = float(np.sqrt(np.mean(var[noisy]))) if noisy.any() else 0.0
        return means, sd

    def loss(self, y, z):
        return corrsig(y, z, scale=self.loss_scale, separation=self.separation)

    # -- the loop -----------------------------------------------------------------------
    def draw(self) -> np.ndarray:
        """One random start: integer codes drawn uniformly from ``start_codes_range`` (the middle
        half of the control range by default) with the run's generator."""
        return self.rng.integers(self.s_min, self.s_max + 1)

    def initialise(self) -> None:
        """The starting controls: one random setting (``init="single"``) or the best of N by loss
        (``"best-of-N"``, forward measurements only), each drawn by ``draw``."""
        cands = [self.draw() for _ in range(self.n_candidates)]
        if self.task.constant or len(cands) == 1:
            self.codes = cands[0]
            return
        scores = []
        for c in cands:
            y = self.measure_outputs(self.task.inputs, c)
            try:
                score = float(self.loss(y, self.task.targets)[0])
            except ValueError:
                score = np.inf
            scores.append(score if np.isfinite(score) else np.inf)  # NaN never wins
        if not np.isfinite(min(scores)):
            raise ValueError(f"{device_name(self.device)}: none of the {len(cands)} initial candidates gave a "
                             f"finite loss (outputs constant or non-finite); check the device and its limits")
        self.codes = cands[int(np.argmin(scores))]

    def step(self) -> float:
        """One iteration: measure, chain rule, fixed-point update. Returns the loss before the update."""
        task = self.task
        k_all = np.arange(len(task.targets))
        batch = k_all if self.batch_size is None else np.sort(self.rng.choice(k_all, self.batch_size, replace=False))
        # A batch whose targets are all one class has no correlation to train on (review s6: all-gates
        # --batch-size 2 ended with "targets are all 0" at AND, half of whose pairs are): drawn again. A batch
        # that holds both is kept as drawn, so every run that did not fail draws what it drew before.
        while self.batch_size is not None and not task.constant and np.ptp(np.asarray(task.targets)[batch]) == 0:
            batch = np.sort(self.rng.choice(k_all, self.batch_size, replace=False))
        ctl = self.controls()
        biases = [self._bias(task.inputs[k], ctl) for k in batch]
        volts, slices = self._string_windows(biases)
        y_all = checked_measure(self.device, volts)
        self.lab_time += volts.shape[1] / self.fs + self.window.take_calibration_time()
        # Each window's mean (one reduction along the rows: the same pairwise sums as y_all[s].mean()).
        y = y_all[np.array([s.start for s in slices])[:, None] + np.arange(self.window.n)].mean(axis=1)
        # All windows in one read (one C plan, checks vectorised): what reading them one by one gives.
        _, grads, _, _ = self.window.read_windows(y_all, volts, slices, stderr=False, bias=False,
                                                  labels=lambda j: f"data point {batch[j]}")
        quad = self.window.last_quadrature   # (K, m) with the calibrated estimator; None with the others
        if quad is not None and np.shape(quad) != np.shape(grads):
            quad = None   # a read path that kept only its last window's (a test's one-by-one read): nothing to pool
        self.outputs[batch] = y
        E, dE = self.loss(y, task.targets[batch])
        if not (np.isfinite(E) and np.all(np.isfinite(dE))):
            raise ValueError(f"{device_name(self.device)}: non-finite loss {E} or dE/dI {np.asarray(dE).tolist()} "
                             f"at iteration {self.iteration}; not stepping on it")
        self.losses.append(float(E))
        self.history_controls.append(ctl.tolist())
        new_best = E < self.best_loss
        if new_best:
            self.best_loss, self.best_codes = float(E), self.codes.copy()
        # dE/dV (1/V) in float for the checks: the fixed-point g below differs from it by the rounding of dE/dI
        # and dI/dV (2^-24 and 2^-8 of their units), far below anything the checks resolve.
        self.last_g = np.asarray(dE, float) @ grads
        if new_best:
            self.best_g = self.last_g.copy()
        # (Not at the stopping iteration: no step follows, and the outputs judged do not use the gradients.)
        if E >= self.stop_loss and self.check_trust(grads, quad, E, ctl):
            return E   # stopped: no step on gradients that cannot be trusted
        if E < self.stop_loss:
            # The stopping iteration counts: it was measured (and costs lab time), but no
            # update follows. So `iteration == len(losses)` always.
            self.iteration += 1
            self.done = True
            return E
        if self.lr_backoff:
            self.back_off(E, ctl)
        if self.restart_on_stall and self.stalled():
            # A new random start (the same draw as the first) in place of this iteration's step.
            self.codes = self.draw()
            self.segment_start = len(self.losses)
            self.restarts.append(self.iteration)
            self.descent_check.reset()   # the controls jump: no step to compare the loss along
            self.cycle_check.reset()
            self.iteration += 1
            if self.iteration >= self.max_iter:
                self.done = True
            return E
        self.codes = self.updated_codes(dE, grads)
        self.iteration += 1
        if self.iteration >= self.max_iter:
            self.done = True
        return E

    def check_trust(self, grads, quad, E, ctl) -> bool:
        """Run the trust checks on this iteration (its windows' in-phase ``grads`` and quadrature ``quad``,
        nA/V; its loss ``E`` at controls ``ctl``, V, with ``self.last_g``) and stop the task when one fails.

        On a stale calibration (``StaleCalibrationCheck``) or a loss that climbs along the gradient
        (``DescentCheck``: the gradient's sign is wrong) the task STOPS with a ``stopped`` note, at its
        lowest-loss controls, as for the rail; it does not re-calibrate and go on. Why: (1) the chain
        changed under a running task (an IV range, a filter, a cable, or a checkpointed calibration
        resumed on a rig that changed): the user must learn it, and a silent re-calibration would hide
        it; an IV range also changes the gain and the rail, which no phase calibration restores;
        (2) the steps already taken used the wrong gradients, so the run is no longer the one asked
        for; (3) a calibration off by 180 deg is what the loopback or phase method measured, so
        measuring again may give it again. The losses stay right (they come from the window means,
        not the lock-in), so the lowest-loss controls are a sound place to end. Returns True if stopped.
        """
        # The descent check compares the losses of consecutive iterations: with --batch-size they are losses of
        # different batches, whose differences are the batches' and not the step's, so it is not run.
        full_batch = self.batch_size is None or self.batch_size == len(self.task.targets)
        if full_batch:
            self.descent_check.add(E, self.last_g, ctl)
        note = None
        if quad is not None:
            self.stale_check.add(grads, quad)
            res = self.stale_check.test()
            if res is not None and res[0].any():
                flags, ang = res
                el = [int(e) for e, f in zip(self.task.control_electrodes, flags) if f]
                note = (f"stale calibration at iteration {self.iteration}: on electrodes {el} the lock-in output lies "
                        f"{np.round(ang[flags], 1).tolist()} deg off the calibrated chain's axis (pooled over the "
                        f"last {int(self.stale_check.stats()[0])} windows): the chain changed since it was "
                        f"calibrated (an IV range, a filter setting, a cable, or a resumed calibration on a rig "
                        f"that changed); every derivative may be scaled or of the wrong sign. Calibrate again on "
                        f"this chain (a new run measures it) and restart")
        if note is None and full_batch:
            inv = self.descent_check.inverted()
            if inv is not None:
                note = (f"the loss rises along the measured gradient at iteration {self.iteration}: over the last "
                        f"{self.descent_check.window} steps ({inv[2]} of them climbing where the gradient said it "
                        f"falls all along the step) it changed by {inv[0]:.2f} (+- {inv[1]:.2f}) times the predicted "
                        f"change, where a right gradient gives +1: the gradient's sign is wrong (the chain inverts "
                        f"relative to its calibration: an inverting IV converter or AI pair swapped in or out, or a "
                        f"calibration from another chain). Calibrate again on this chain and restart")
        if note is None:
            return False
        self.stopped = note
        self.iteration += 1   # this iteration was measured (iteration == len(losses))
        self.done = True
        if self.best_codes is not None:
            self.codes = self.best_codes.copy()
            self.ended_at_best = True
        return True

    def back_off(self, E, ctl) -> bool:
        """``lr_backoff``: feed the 2-cycle test (``train_checks.CycleCheck``) this iteration's loss ``E`` at
        controls ``ctl`` (V) and halve lr when it flags a cycle, at most ``MAX_LR_HALVINGS`` times per task; the
        step that follows already uses the halved lr. The test then starts afresh from this point: a second
        halving needs a full window of steps at the new lr that still cycles. Returns True if lr was halved.

        Not run with ``--batch-size``: consecutive losses then come from different batches, so their swings are
        the batches', not the step's (as for the descent check). A restart (``restart_on_stall``) keeps the halved
        lr: the task's landscape showed a curvature above 2 / lr, and a new start does not change the landscape.
        Cost: ~10 us per iteration (the loss test first; the step angles only when the loss swings)."""
        if self.batch_size is not None and self.batch_size != len(self.task.targets):
            return False
        self.cycle_check.add(E, ctl)
        if len(self.lr_halved_at) >= MAX_LR_HALVINGS or not self.cycle_check.cycling():
            return False
        self.set_lr(self.lr / 2.0)
        self.lr_halved_at.append(self.iteration)
        self.cycle_check.reset()
        self.cycle_check.add(E, ctl)
        return True

    def final_gradient(self) -> np.ndarray | None:
        """dE/dV (1/V) for judging the final controls: the one measured at the lowest-loss codes when the
        task went back to them (restarts, the rail, a trust check's stop), else the last one used."""
        if self.ended_at_best and self.best_g is not None:
            return self.best_g
        return self.last_g

    def stalled(self) -> bool:
        """The current start has stalled: over its last ``STALL_WINDOW`` iterations its best loss
        is not ``STALL_TOL`` (relative) below its best before them (noise-proof: a single noisy
        dip before the window counts against the window, not for it)."""
        seg = self.losses[self.segment_start:]
        if len(seg) <= STALL_WINDOW:
            return False
        return min(seg[-STALL_WINDOW:]) > (1.0 - STALL_TOL) * min(seg[:-STALL_WINDOW])

    def finish(self) -> None:
        """With restarts, end at the best start: if an earlier start reached a lower loss than the
        current one, return to the codes of that lowest loss (a restart never makes the result
        worse than stopping at the stall). A no-op without restarts or after a stop on the loss."""
        if not self.restarts or self.best_codes is None or (self.losses and self.losses[-1] < self.stop_loss):
            return
        if self.best_loss < min(self.losses[self.segment_start:], default=np.inf):
            self.codes = self.best_codes.copy()
            self.ended_at_best = True

    def updated_codes(self, dE, grads) -> np.ndarray:
        """The codes after one step on ``dE/dI`` (K,) and ``dI/dV`` (K, n): the fixed-point rule
        (``core.UpdateRule``, the firmware's), ``dE/dI`` with its block exponent (``dEdI_codes``)."""
        dEdI, k = dEdI_codes(dE)
        dIdV = np.round(np.asarray(grads, float) * 2.0**DIDV_FRAC)
        if np.max(np.abs(dIdV), initial=0.0) >= 2**31:
            raise OverflowError(f"dI/dV does not fit its fixed-point format Q{DIDV_FRAC} in int32 "
                                f"(largest |dI/dV| {np.max(np.abs(grads)):.4g} nA/V)")
        g = self.rule.accumulate(dEdI, dIdV.astype(np.int64))   # Q(32 - k)
        # max_step scales the exact sum (Python integers): saturating it to int64 first would give every large
        # component one value and turn the step into a sign step (--paper-mode --max-step; review s6).
        g = self.limit_step(g, k) if self.max_step_codes is not None else shift_left_sat64(g, k)
        return self.rule.step(self.codes, g).astype(np.int64)

    def limit_step(self, g, k: int = 0) -> np.ndarray:
        """Scale the accumulated gradient ``g`` (Q(32 - k), 1/V: ``k`` is dE/dI's block exponent) to Q32 so
        that no electrode's step exceeds ``max_step_codes`` codes; only shifted to Q32 (saturated) without
        ``max_step`` or when it is small enough.

        The rule steps by round-half-up(eta g / 2^shift) codes, which is at most C in magnitude
        for |g| <= floor(C 2^shift / eta). The largest |g| is scaled to that bound and the others
        by the same factor with floor division, which never raises a magnitude above it. Python
        integers: g (up to 2^63) times the bound does not fit int64, nor does g 2^k, which is scaled
        exactly (its direction kept) before anything saturates."""
        g = np.asarray(g, np.int64)
        if self.max_step_codes is None:
            return shift_left_sat64(g, k)
        bound = (self.max_step_codes << self.shift) // self.eta
        exact = [int(x) << int(k) for x in g.tolist()]
        peak = max((abs(x) for x in exact), default=0)
        if peak <= bound:
            return np.array(exact, np.int64)
        return np.array([x * bound // peak for x in exact], np.int64)

    def run(self, progress=None, callback=None) -> None:
        """Iterate until the loss is below ``stop_loss`` or ``max_iter`` iterations.

        An iteration is one gradient measurement of the batch (``len(losses)`` counts
        them): the one whose loss is below ``stop_loss`` is counted and not followed by
        an update; every other one is. ``max_iter = 0`` measures nothing but the
        starting point and the final outputs.
        """
        if self.task.constant or self.iteration >= self.max_iter:
            self.done = True
        if self.codes is None:
            self.initialise()
            if self.task.test_inputs is not None and not self.task.constant:
                # The start's classifier: threshold on the training outputs, scored on the test set.
                y0_train = self.measure_outputs(self.task.inputs)
                y0 = self.measure_outputs(self.task.test_inputs)
                self.initial_accuracy = held_out_accuracy(y0_train, self.task.targets, y0,
                                                          self.task.test_targets)[0]
        while not self.done:
            try:
                E = self.step()
            except SaturationError as exc:
                # The output reached the rail: this task ends here (recorded in `stopped`), at the
                # lowest-loss controls it measured; a run of several tasks goes on with the next.
                self.stopped = f"output on the rail at iteration {self.iteration}: {exc}"
                self.done = True
                if self.best_codes is not None:
                    self.codes = self.best_codes.copy()
                    self.ended_at_best = True
                break
            if progress:
                progress(self, E)
            if callback:
                callback(self)
        self.finish()

    def result(self, wall_time: float) -> TrainResult:
        task = self.task
        found = accuracy = threshold = test_out = gap = None
        outputs, noise_sd = self.measure_outputs(task.inputs, noise=True)
        if not np.all(np.isfinite(outputs)):
            raise ValueError(f"{device_name(self.device)}: non-finite outputs at the final evaluation")
        stopped, on_rail = self.stopped, self.evaluation_saturated
        if on_rail:  # a mean over clipped samples is not the output: nothing is judged on it
            stopped = (stopped + "; " if stopped else "") + (f"{on_rail} samples of the final evaluation "
                                                              f"{self.evaluation_rail}: the outputs are clipped")
        if task.kind == "gate":
            gap = None if task.constant else class_gap(outputs, task.targets)
            found = gate_found(outputs, task.targets, margin=FOUND_MARGIN_SD * noise_sd) and not on_rail
            threshold = None if task.constant else gate_threshold(outputs, task.targets)
        if task.test_inputs is not None:
            test_out = self.measure_outputs(task.test_inputs)
            accuracy, threshold = held_out_accuracy(outputs, task.targets, test_out, task.test_targets)
        # The loss measured at the final controls: the last one, or the lowest when the run went
        # back to it (restarts, the rail).
        final = (self.best_loss if self.ended_at_best else self.losses[-1]) if self.losses else None
        # Why a gate was not found, and what the loss did (train_checks: one definition, shared with
        # tools/train_landscape.py). Pinned: the final controls on a bound with the last gradient used
        # pointing out of the range.
        failure = diagnosis = None
        reached = bool(self.losses) and self.losses[-1] < self.stop_loss
        # (Not for a gate found: advice to change the step beside a found gate reads as a fault.)
        if self.losses and not reached and not task.constant and found is not True \
                and loss_trend(self.losses) == "oscillating":
            diagnosis = oscillation_note(self.lr_halved_at, self.lr)
        if task.kind == "gate" and found is False and not task.constant:
            n_pin = 0
            g_final = self.final_gradient()
            if g_final is not None and self.codes is not None:
                n_pin = int(pinned_controls(self.codes, self.w_min, self.w_max, g_final).sum())
            failure = failure_kind(self.losses, n_pin, stopped=stopped is not None)
        return TrainResult(task=task.name, kind=task.kind, found=found, accuracy=accuracy,
                           control_electrodes=[int(e) for e in task.control_electrodes],
                           input_electrodes=[int(e) for e in task.input_electrodes],
                           iterations=self.iteration, final_loss=final, controls=self.controls(),
                           outputs=outputs, losses=list(self.losses), lab_time_s=self.lab_time,
                           wall_time_s=wall_time, threshold=threshold, test_outputs=test_out,
                           history_controls=list(self.history_controls),
                           initial_loss=self.losses[0] if self.losses else None,
                           initial_accuracy=self.initial_accuracy, noise_sd=noise_sd, gap=gap,
                           restarts=list(self.restarts), stopped=stopped, failure=failure, diagnosis=diagnosis,
                           lr=self.lr, lr_halved_at=list(self.lr_halved_at))

    # -- checkpoints --------------------------------------------------------------------
    def state(self) -> dict:
        st = {"task": self.task.name, "seed": self.seed, "iteration": self.iteration,
              "codes": None if self.codes is None else self.codes.tolist(), "losses": list(self.losses),
              "history_controls": list(self.history_controls), "outputs": self.outputs.tolist(),
              "lab_time": self.lab_time, "done": self.done, "rng": self.rng.bit_generator.state,
              "initial_accuracy": self.initial_accuracy, "segment_start": self.segment_start,
              "restarts": list(self.restarts),
              "best_loss": None if not np.isfinite(self.best_loss) else self.best_loss,
              "best_codes": None if self.best_codes is None else self.best_codes.tolist(),
              "stopped": self.stopped, "ended_at_best": self.ended_at_best,
              # session 6: the trust checks' running sums and the last gradient used (older checkpoints
              # lack them: the checks then start afresh at the resumed iteration)
              "stale_check": self.stale_check.state(), "descent_check": self.descent_check.state(),
              "last_g": None if self.last_g is None else self.last_g.tolist(),
              "best_g": None if self.best_g is None else self.best_g.tolist(),
              # session 7: the lr in use, where a 2-cycle halved it, the 2-cycle test's window (older checkpoints
              # lack them: their runs kept a fixed lr, which their config's missing "fixed_lr" stands for)
              "lr": self.lr, "lr_halved_at": list(self.lr_halved_at), "cycle_check": self.cycle_check.state()}
        get = getattr(self.device, "get_state", None)
        st["device"] = get() if get else None
        st["calibration"] = self.window.calibration_state()  # a resumed run does not measure it again
        return st

    STATE_KEYS = ("task", "seed", "iteration", "codes", "losses", "history_controls", "outputs",
                  "lab_time", "done", "rng")

    def load_state(self, st: dict) -> None:
        missing = [k for k in self.STATE_KEYS if k not in st] if isinstance(st, dict) else list(self.STATE_KEYS)
        if missing:
            raise ValueError(f"checkpoint: the state of task {self.task.name!r} lacks {missing}")
        if st["task"] != self.task.name or st["seed"] != self.seed:
            raise ValueError(f"checkpoint is for task {st['task']!r} seed {st['seed']}, "
                             f"not {self.task.name!r} seed {self.seed}")
        self.iteration, self.losses = st["iteration"], list(st["losses"])
        self.codes = None if st["codes"] is None else np.array(st["codes"], np.int64)
        self.history_controls, self.outputs = list(st["history_controls"]), np.array(st["outputs"])
        self.lab_time, self.done = st["lab_time"], st["done"]
        self.rng.bit_generator.state = st["rng"]
        self.initial_accuracy = st.get("initial_accuracy")
        self.segment_start, self.restarts = int(st.get("segment_start", 0)), list(st.get("restarts", []))
        self.best_loss = np.inf if st.get("best_loss") is None else float(st["best_loss"])
        self.best_codes = None if st.get("best_codes") is None else np.array(st["best_codes"], np.int64)
        self.stopped = st.get("stopped")
        self.ended_at_best = bool(st.get("ended_at_best", False))
        try:
            self.stale_check.load_state(st.get("stale_check"))
            self.descent_check.load_state(st.get("descent_check"))
            self.last_g = None if st.get("last_g") is None else np.asarray(st["last_g"], float)
            self.best_g = None if st.get("best_g") is None else np.asarray(st["best_g"], float)
            self.cycle_check.load_state(st.get("cycle_check"))
            self.lr_halved_at = [int(i) for i in st.get("lr_halved_at", [])]
            if st.get("lr") is not None:
                self.set_lr(float(st["lr"]))
        except (TypeError, ValueError, KeyError, IndexError) as exc:
            raise ValueError(f"checkpoint: the trust checks' state of task {self.task.name!r} is damaged ({exc})") \
                from None
        if st.get("device") is not None and hasattr(self.device, "set_state"):
            self.device.set_state(st["device"])
        fresh = self.window.calibration   # measured now (loopback) or the device's own; None: none yet
        self.window.restore_calibration(st.get("calibration"))
        note = resumed_calibration_note(fresh, self.window.calibration, self.window.freqs,
                                        self.task.control_electrodes, self.iteration)
        if note and not self.done:
            # The checkpointed chain is gone: the task in progress ends here (its steps so far were made on the
            # old chain), at its lowest-loss controls; the run's later tasks use the calibration measured now.
            self.stopped, self.done = note, True
            # restore_calibration also remembered the checkpointed calibration for this device and plan: put the
            # one measured now back, so that nothing measured later on this device object uses the old chain's.
            self.window.restore_calibration({"freqs": np.asarray(fresh.freqs).tolist(),
                                             "re": np.asarray(fresh.response).real.tolist(),
                                             "im": np.asarray(fresh.response).imag.tolist(), "method": fresh.method})
            if self.best_codes is not None:
                self.codes = self.best_codes.copy()
                self.ended_at_best = True


RESUME_SIGMAS = 5.0   # a loopback's phase noise: |N(0,1)| > 5 has probability 5.7e-7 per frequency


def resumed_calibration_note(fresh, saved, freqs, electrodes, iteration):
    """A ``stopped`` note when the chain calibration measured by a resumed process (``fresh``) is not the
    checkpointed one it resumes with (``saved``): their phases at the plan ``freqs`` differ by more than
    ``gradient.STALE_ANGLE`` + ``RESUME_SIGMAS`` sqrt(2) ``fresh.phase_sd`` (the two measurements' noise, the
    checkpoint's taken as the fresh one's: it does not store its own) on some electrode. None otherwise,
    or without both. A resumed run keeps the checkpointed calibration (an exact resume); this is what
    tells a rig that changed meanwhile (a cable, a filter, an IV range) from one that did not."""
    from .gradient import STALE_ANGLE
    if fresh is None or saved is None or fresh is saved:
        return None
    f = np.asarray(freqs, float)
    try:
        dphi = np.angle(fresh.at(f) / saved.at(f))
    except ValueError:   # the checkpointed calibration does not cover the plan: it is not this chain's
        return (f"resumed at iteration {iteration} on a chain whose calibration does not match the checkpoint's "
                f"(it does not cover {f.tolist()} Hz): start a new run")
    sd = np.zeros(f.size) if fresh.phase_sd is None else np.interp(f, fresh.freqs, np.asarray(fresh.phase_sd, float))
    bad = np.abs(dphi) > STALE_ANGLE + RESUME_SIGMAS * np.sqrt(2.0) * sd
    if not bad.any():
        return None
    el = [int(e) for e, b in zip(electrodes, bad) if b]
    return (f"the chain changed since the checkpoint: at iteration {iteration} its calibration measured now lies "
            f"{np.round(np.degrees(dphi[bad]), 1).tolist()} deg off the checkpointed one on electrodes {el} (a "
            f"cable, a filter setting, an IV range): the task in progress ends at its lowest loss so far; start it "
            f"again (a new run) to train on this chain")


def save_checkpoint(path, snapshot: dict) -> None:
    """Write a run snapshot (from ``run_tasks``'s ``on_snapshot``) atomically; see ``checkpoint``."""
    checkpoint.save(path, snapshot)


def load_checkpoint(path, config: dict | None = None) -> dict:
    """Read a checkpoint, refusing one made with another ``config`` (``checkpoint.load``)."""
    return checkpoint.load(path, config)


def device_state(device):
    """The device's own state (``get_state()``), or None for a device without one."""
    get = getattr(device, "get_state", None)
    return get() if get else None


def task_seed(seed: int, index: int, n_tasks: int) -> int:
    """The seed of task ``index`` of a run of ``n_tasks`` started with ``seed``."""
    return seed * 1000 + index if n_tasks > 1 else seed


def check_snapshot(snapshot: dict, trainers) -> None:
    """Refuse (``ValueError``) a checkpoint whose tasks do not fit ``trainers`` or lack a field."""
    done = snapshot.get("done") or []
    if len(done) > len(trainers):
        raise ValueError(f"checkpoint: {len(done)} finished tasks, but the run has {len(trainers)}")
    for tr, d in zip(trainers, done):
        if not isinstance(d, dict) or d.get("task") != tr.task.name:
            raise ValueError(f"checkpoint: finished task {d.get('task') if isinstance(d, dict) else d!r} "
                             f"where the run has {tr.task.name!r}")
        TrainResult.from_dict(d)
    cur = snapshot.get("current")
    if cur is not None:
        if len(done) >= len(trainers):
            raise ValueError("checkpoint: a task in progress after the last task")
        nxt = trainers[len(done)]
        missing = [k for k in Trainer.STATE_KEYS if k not in cur] if isinstance(cur, dict) else ["all"]
        if missing:
            raise ValueError(f"checkpoint: the state of task {nxt.task.name!r} lacks {missing}")
        if cur["task"] != nxt.task.name or cur["seed"] != nxt.seed:
            raise ValueError(f"checkpoint: task in progress {cur['task']!r} seed {cur['seed']}, where the run has "
                             f"{nxt.task.name!r} seed {nxt.seed}")


def run_tasks(trainers, *, snapshot=None, config=None, progress=None, on_snapshot=None) -> list:
    """Train ``trainers`` (one per task, sharing one device) in order; resumable anywhere.

    Parameters
    ----------
    trainers : list of Trainer
        Built for the run's tasks, in order, on one device.
    snapshot : dict, optional
        A checkpoint (``load_checkpoint``) to continue from: finished tasks are taken
        from it without measuring again, the task in progress continues from its last
        finished iteration, and the device's state is restored, so the rest of the run
        is what an uninterrupted run would have done.
    config : dict, optional
        Stored in every snapshot (the options that made the run).
    progress : callable, optional
        ``progress(trainer, loss)`` after every iteration.
    on_snapshot : callable, optional
        ``on_snapshot(snapshot, boundary)`` after every iteration (``boundary`` False)
        and after every finished task (True). ``snapshot`` is a JSON-able dict with
        ``config``, ``done``, ``device`` and ``current``; saving it
        (``save_checkpoint``) is the caller's choice of when.

    Returns
    -------
    list of TrainResult
    """
    if not trainers:
        return []
    device = trainers[0].device
    snapshot = snapshot or {}
    check_snapshot(snapshot, trainers)
    done_dicts = list(snapshot.get("done") or [])
    results = [TrainResult.from_dict(d) for d in done_dicts]
    current = snapshot.get("current")
    boundary_device = snapshot.get("device")
    if current is None and boundary_device is not None and hasattr(device, "set_state"):
        device.set_state(boundary_device)
    for tr in trainers[len(results):]:
        t0 = time.perf_counter()
        if current is not None:
            tr.load_state(current)  # checks task and seed; restores the device's state
            current = None

        def iteration(trainer, E):
            if progress:
                progress(trainer, E)
            if on_snapshot:
                on_snapshot({"config": config, "done": done_dicts, "device": boundary_device,
                             "current": trainer.state()}, False)
        tr.run(progress=iteration)
        results.append(tr.result(time.perf_counter() - t0))
        done_dicts = done_dicts + [results[-1].to_dict()]
        boundary_device = device_state(device)
        if on_snapshot:
            on_snapshot({"config": config, "done": done_dicts, "device": boundary_device, "current": None}, True)
    return results


def train_task(device, task: Task, *, seed: int = 0, progress=None, callback=None, state=None,
               **kwargs) -> tuple[TrainResult, Trainer]:
    """Train one task; ``state`` (from a checkpoint) resumes where it stopped."""
    t0 = time.perf_counter()
    tr = Trainer(device, task, seed=seed, **kwargs)
    if state is not None:
        tr.load_state(state)
    tr.run(progress=progress, callback=callback)
    return tr.result(time.perf_counter() - t0), tr
