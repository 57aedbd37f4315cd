"""Homodyne gradient extraction (parallel and sequential) and the finite-difference baseline.

Data path: plan -> waveform -> device.measure -> demodulate (C core) -> X, Y
-> estimator -> dI/dV. Electrode numbers are 1-based here (as people type
them); ``electrodes.to_index`` converts once.
"""
from __future__ import annotations

import weakref
from dataclasses import dataclass

import numpy as np
import scipy.signal as sig

from . import _validate as v
from . import analysis, design, plans
from .calibration import Calibration, calibrate
from .demod import demodulate
from .devices import check_volts
from .electrodes import to_index, to_number

PHASES = ("calibrated", "inphase", "magnitude")
MODES = ("parallel", "sequential")
CROSSTALK = ("solve", "none")

# Calibrations measured on the fly, per device object and plan (lab time spent once).
_CALIBRATIONS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


@dataclass
class GradientResult:
    """dI/dV at one bias point. Arrays follow ``electrodes`` (1-based numbers)."""

    gradient: np.ndarray      # nA/V
    stderr: np.ndarray        # nA/V, estimated from this window's residual spectrum
    bias: np.ndarray          # V, the bias actually applied (DAC-quantised, all electrodes)
    X: np.ndarray             # nA
    Y: np.ndarray             # nA
    freqs: np.ndarray         # Hz
    electrodes: np.ndarray
    amplitudes: np.ndarray    # V
    current: float            # mean output current over the window(s), nA
    lab_time_s: float         # measurement time on the rig (windows only)
    mode: str = "parallel"
    filter: str = "butterworth3"
    phase: str = "calibrated"


def calibration_for(device, freqs, T: float) -> Calibration:
    """The device's calibration covering ``freqs``: its own (``device.calibration``), or one measured once."""
    own = getattr(device, "calibration", None)
    if own is not None:
        return own
    key = (tuple(np.round(np.sort(freqs), 9)), float(T))
    per_device = _CALIBRATIONS.setdefault(device, {})
    if key not in per_device:
        per_device[key] = calibrate(device, freqs, T=T)
    return per_device[key]


def _as_bias(device, bias) -> np.ndarray:
    b = v.float_array("bias", bias, ndim=1)
    if b.size != device.n_electrodes:
        raise ValueError(f"bias must have {device.n_electrodes} voltages, got {b.size}")
    return b


def perturbation_waveform(bias, idx, amplitudes, freqs, n: int, fs: float) -> np.ndarray:
    """Volts (n_electrodes, n): bias plus ``a_m sin(2 pi f_m t)`` on electrodes ``idx``."""
    t = np.arange(n) / fs
    volts = np.repeat(np.asarray(bias, float)[:, None], n, axis=1)
    volts[idx] += amplitudes[:, None] * np.sin(2 * np.pi * np.outer(freqs, t))
    return volts


def applied_bias(bias, n: int, dac_lsb: float | None, volts=None) -> np.ndarray:
    """The DC the DAC really applies: the window mean of the quantised waveform (or the quantised bias)."""
    if not dac_lsb:
        return np.asarray(bias, float)
    if volts is None:
        return np.round(np.asarray(bias, float) / dac_lsb) * dac_lsb
    return (np.round(volts / dac_lsb) * dac_lsb).mean(axis=1)


def applied_fundamentals(volts, idx, freqs, fs: float, dac_lsb: float | None):
    """Complex fundamental ``alpha + j beta`` of each perturbed electrode's waveform as the DAC makes it.

    An 8 mV sine is only ~26 LSB of a 16-bit +-10 V DAC; its fundamental
    differs from 8 mV by up to ~0.5 % depending on where the bias falls on
    the code grid. Where the device states its ``dac_lsb``, the host
    computes the quantised waveform's fundamental exactly and uses it.
    """
    from .calibration import fit_tones
    if not dac_lsb:
        return None
    q = np.round(volts[idx] / dac_lsb) * dac_lsb
    # Each electrode carries one tone; fitting all tones to every row and keeping the
    # diagonal is the same least-squares answer (the other tones are absent from a row)
    # in one matrix product.
    return np.diagonal(fit_tones(q, fs, freqs)).copy() if len(idx) > 1 else fit_tones(q, fs, freqs)[:, 0]


def _estimate(z, amplitudes, response, phase, applied=None):
    """X + jY -> dI/dV (nA/V) with the chosen phase estimator."""
    if phase == "inphase":
        return 2 * z.real / amplitudes
    if phase == "magnitude":
        return 2 * np.abs(z) / amplitudes * np.where(np.abs(np.angle(z)) <= np.pi / 2, 1.0, -1.0)
    drive = amplitudes if applied is None else applied
    return (2 * z / (response * drive)).real


class HGEWindow:
    """One configured HGE measurement, reusable at any bias: electrodes, plan, filter, calibration.

    ``waveform(bias)`` gives the volts of one window; ``read(y, volts)`` turns
    the samples measured for it into dI/dV. ``extract_gradient`` is one
    waveform + one ``device.measure`` + one read; the trainer strings many
    windows and ramps into one ``measure`` and reads each window's slice.
    Arguments as for ``extract_gradient``.
    """

    def __init__(self, device, *, electrodes=None, amplitudes=0.008, T: float = 0.1, freqs=None,
                 filter: str = "butterworth3", engine: str = "c", phase: str = "calibrated",  # noqa: A002
                 calibration: Calibration | None = None, crosstalk: str = "solve", check: bool = True,
                 mode: str = "parallel"):
        v.choice("mode", mode, MODES)
        v.choice("phase", phase, PHASES)
        v.choice("crosstalk", crosstalk, CROSSTALK)
        v.positive("T", T)
        self.device, self.T, self.filter, self.engine = device, float(T), filter, engine
        self.phase, self.crosstalk, self.mode = phase, crosstalk, mode
        self.idx = to_index(electrodes, device.n_electrodes)
        m = self.idx.size
        self.amps = np.broadcast_to(v.float_array("amplitudes", amplitudes), (m,)).astype(float)
        if np.any(self.amps <= 0):
            raise ValueError(f"amplitudes must be > 0 V, got {self.amps.tolist()}")
        self.fs = float(device.fs)
        self.n = int(round(T * self.fs))
        if freqs is None:
            freqs = plans.plan_frequencies(m, fs=self.fs, T=T, filter=filter)
        else:
            freqs = v.float_array("freqs", np.atleast_1d(freqs), ndim=1)
            if freqs.size != m:
                raise ValueError(f"freqs must have one frequency per electrode ({m}), got {freqs.size}")
            if check and mode == "parallel":
                plans.check_plan(freqs, fs=self.fs, T=T, filter=filter)
            elif filter == "boxcar":
                design.check_boxcar_window(freqs, self.fs, T)
        self.freqs = np.asarray(freqs, float)
        self.response = np.ones(m, complex)
        if phase == "calibrated":
            cal = calibration or calibration_for(device, self.freqs, T)
            self.response = cal.at(self.freqs)
        self.full_scale = getattr(device, "full_scale", None) if engine != "float" else None
        self.dac_lsb = getattr(device, "dac_lsb", None)
        self.weights = analysis.lockin_weights(self.fs, T, filter, self.n, quantized=engine != "float")
        self.enbw = analysis.lockin_enbw(self.fs, T, filter)
        self._quantized = engine != "float"

    def waveform(self, bias, sel=None) -> np.ndarray:
        """Volts (n_electrodes, n) of one window at ``bias``, perturbing ``sel`` (default all)."""
        sel = np.arange(self.idx.size) if sel is None else sel
        return perturbation_waveform(bias, self.idx[sel], self.amps[sel], self.freqs[sel], self.n, self.fs)

    def read(self, y, volts, sel=None, stderr: bool = True):
        """Samples ``y`` measured for ``volts`` -> (X + jY, dI/dV, stderr, applied bias).

        ``stderr=False`` skips the residual-spectrum estimate (NaN) where only dI/dV is needed."""
        sel = np.arange(self.idx.size) if sel is None else sel
        f = self.freqs[sel]
        d = demodulate(y, self.fs, f, engine=self.engine, filter=self.filter, T=self.T,
                       full_scale=self.full_scale)
        X, Y = d.X, d.Y
        if self.crosstalk == "solve":
            G_inv = analysis.crosstalk_inverse(tuple(f), self.fs, self.T, self.filter, self.n, self._quantized)
            X, Y = analysis.solve_crosstalk(X, Y, f, self.fs, self.weights, G_inv)
        z = X + 1j * Y
        applied = applied_fundamentals(volts, self.idx[sel], f, self.fs, self.dac_lsb)
        grad = _estimate(z, self.amps[sel], self.response[sel], self.phase, applied)
        if stderr:
            noise = analysis.residual_psd(y, self.fs, f)(f)
            se = np.sqrt(2.0 * noise * self.enbw) / (self.amps[sel] * np.abs(self.response[sel]))
        else:
            se = np.full(f.size, np.nan)
        return z, grad, se, applied_bias(volts[:, 0], self.n, self.dac_lsb, volts)


def extract_gradient(device, bias, *, electrodes=None, amplitudes=0.008, T: float = 0.1, freqs=None,
                     mode: str = "parallel", filter: str = "butterworth3", engine: str = "c",  # noqa: A002
                     rng=None, phase: str = "calibrated", calibration: Calibration | None = None,
                     crosstalk: str = "solve", check: bool = True) -> GradientResult:
    """dI/dV of ``device`` at ``bias`` by homodyne gradient extraction.

    Parameters
    ----------
    device : Device
    bias : (n_electrodes,) array, V
    electrodes : list of int, optional
        Electrodes to perturb, numbered from 1; default all.
    amplitudes : float or array, V
        Perturbation amplitude per electrode (paper: 8 mV).
    T : float, s
        Window per gradient (parallel) or per electrode (sequential).
    freqs : array, optional
        Hz per electrode; default ``plans.plan_frequencies``. A given plan is
        checked against the plan rules unless ``check=False``.
    mode : {"parallel", "sequential"}
    filter : {"butterworth3", "boxcar"}
    engine : {"c", "fixed", "float"}
    phase : {"calibrated", "inphase", "magnitude"}
        Estimator: projection on the calibrated chain response (default),
        ``2X/a``, or the paper's ``2R/a`` with the sign from the phase.
    calibration : Calibration, optional
        Default: ``device.calibration`` if set, else measured once per device.
    crosstalk : {"solve", "none"}
        ``"solve"`` (default): undo the known linear leakage between channels
        (neighbours, 2f terms, onset transients; ``analysis.solve_crosstalk``),
        exact for a linear response at any spacing. ``"none"``: the paper's
        plain read-out, biased at small spacing.
    rng : ignored for the waveform (phases are 0); accepted for API stability.
    """
    bias = _as_bias(device, bias)
    win = HGEWindow(device, electrodes=electrodes, amplitudes=amplitudes, T=T, freqs=freqs, filter=filter,
                    engine=engine, phase=phase, calibration=calibration, crosstalk=crosstalk, check=check,
                    mode=mode)
    m = win.idx.size
    groups = [np.arange(m)] if mode == "parallel" else [np.array([k]) for k in range(m)]
    z = np.empty(m, complex)
    grad, stderr = np.empty(m), np.empty(m)
    ys, dcs = [], []
    for sel in groups:
        volts = win.waveform(bias, sel)
        check_volts(volts, device.limits)
        y = device.measure(volts)
        z[sel], grad[sel], stderr[sel], dc = win.read(y, volts, sel)
        ys.append(y)
        dcs.append(dc)
    return GradientResult(
        gradient=grad, stderr=stderr, bias=np.mean(dcs, axis=0), X=z.real, Y=z.imag, freqs=win.freqs,
        electrodes=to_number(win.idx), amplitudes=win.amps, current=float(np.mean(np.concatenate(ys))),
        lab_time_s=len(ys) * win.n / win.fs, mode=mode, filter=filter, phase=phase)


def finite_difference_gradient(device, bias, *, electrodes=None, step: float = 0.008, T: float = 0.1,
                               filter: str = "butterworth3") -> GradientResult:  # noqa: A002
    """Central differences, two windows of T per electrode, each read like the paper:
    the output low-passed by the same third-order Butterworth (98 % settled at T)
    and read at T, divided by the step response there (``filter="boxcar"``: the window mean)."""
    v.positive("step", step)
    v.positive("T", T)
    bias = _as_bias(device, bias)
    idx = to_index(electrodes, device.n_electrodes)
    fs = float(device.fs)
    n = int(round(T * fs))
    lf = design.lockin_filter(fs, T, n) if filter == "butterworth3" else None

    def level(volts_point):
        volts = np.repeat(volts_point[:, None], n, axis=1)
        check_volts(volts, device.limits)
        y = device.measure(volts)
        if lf is None:
            return float(np.mean(y)), y
        return float(sig.sosfilt(lf.sos, y)[-1] / lf.gain_float), y

    grad = np.empty(idx.size)
    ys = []
    for k, e in enumerate(idx):
        up, down = bias.copy(), bias.copy()
        up[e] += step
        down[e] -= step
        i_up, y1 = level(up)
        i_down, y2 = level(down)
        ys += [y1, y2]
        grad[k] = (i_up - i_down) / (2 * step)
    nan = np.full(idx.size, np.nan)
    return GradientResult(gradient=grad, stderr=nan, bias=applied_bias(bias, n, getattr(device, "dac_lsb", None)),
                          X=nan, Y=nan, freqs=nan, electrodes=to_number(idx),
                          amplitudes=np.full(idx.size, step), current=float(np.mean(np.concatenate(ys))),
                          lab_time_s=2 * idx.size * n / fs, mode="finite-difference", filter=filter,
                          phase="none")
