"""Homodyne gradient extraction (parallel and sequential) and the finite-difference baseline.

Data path: plan -> waveform -> device.measure -> demodulate (C core) -> X, Y
-> estimator -> dI/dV. Electrode numbers are 1-based here (as people type
them); ``electrodes.to_index`` converts once.

Every configuration error the arguments already show (plan rules in both
modes, window length, amplitude below the DAC step, limits, voltages) is
raised by ``HGEWindow`` or before the first ``measure``; every ``measure``
result passes ``devices.measure``'s check; every demodulated window passes
the saturation check; no non-finite derivative is returned.
"""
from __future__ import annotations

import copy
import functools
import weakref
from dataclasses import dataclass, field

import numpy as np

from . import _validate as v
from . import analysis, design, plans
from ._blas import one_blas_thread
from . import core
from .calibration import Calibration, calibrate
from .demod import WindowDemodulator, window_demodulator
from .devices import check_limits, check_volts, device_name, has_loopback
from .devices import measure as checked_measure
from .electrodes import to_index, to_number
from .saturation import SATURATION, check_saturation, saturated_counts
from .tonefit import fit_tones, tone_basis

PHASES = ("calibrated", "inphase", "magnitude")
MODES = ("parallel", "sequential")
CROSSTALK = ("solve", "none")
MIN_DAC_STEPS = 4          # amplitude >= 4 DAC steps: the quantised sine's fundamental is then
                           # within ~1/8 of the asked amplitude and never 0 (it is used exactly)
SHARED_DEMOD_BYTES = 1 << 22  # reference tables up to 4 MB are cached across calls (demod.window_demodulator)
STEEP_SLOPE = -3.0         # noise below the plan steeper than 1/f^3: its power law (extrapolated below
                           # 3/T, where one window cannot see it) decides stderr: not trusted

# Calibrations measured on the fly, per device object and plan (lab time spent once).
_CALIBRATIONS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


@dataclass
class GradientResult:
    """dI/dV at one bias point. Arrays follow ``electrodes`` (1-based numbers)."""

    gradient: np.ndarray      # nA/V
    stderr: np.ndarray        # nA/V, estimated from this window's residual spectrum and the solve's noise gain
    bias: np.ndarray          # V, the bias actually applied (DAC-quantised, all electrodes)
    X: np.ndarray             # nA
    Y: np.ndarray             # nA
    freqs: np.ndarray         # Hz
    electrodes: np.ndarray
    amplitudes: np.ndarray    # V
    current: float            # mean output current over the window(s), nA
    lab_time_s: float         # measurement time on the rig: the windows plus any calibration this call ran
    mode: str = "parallel"
    filter: str = "butterworth3"
    phase: str = "calibrated"
    calibration_time_s: float = 0.0   # part of lab_time_s spent calibrating the chain (0 when reused)
    saturated_samples: int = 0        # with saturation="count": samples on a rail (see saturation.py)
    stderr_reliable: bool = True      # False where the noise model behind stderr does not hold
    warnings: list = field(default_factory=list)


def calibration_for(device, freqs, T: float, *, bias=None, electrodes=None, amplitudes=None,
                    saturation: str = "raise") -> tuple[Calibration, float]:
    """The device's calibration covering ``freqs`` and the lab time spent now (s).

    Its own (``device.calibration``), one measured earlier on this device
    object for this plan, or one measured now (``calibration.calibrate``: the
    loopback when the device has one, else the phase method at ``bias`` with
    ``amplitudes`` on ``electrodes``).
    """
    own = getattr(device, "calibration", None)
    if own is not None:
        return own, 0.0
    key = (tuple(np.round(np.sort(freqs), 9)), round(float(T), 12))  # as in HGEWindow.restore_calibration
    try:
        per_device = _CALIBRATIONS.setdefault(device, {})
    except TypeError:  # not weak-referenceable or not hashable: measure every time
        per_device = {}
    if key in per_device:
        return per_device[key], 0.0
    # The loopback drives a reference resistor, not the device: it keeps its own amplitude.
    amp = None if has_loopback(device) else amplitudes
    cal = calibrate(device, freqs, T=T, bias=bias, electrodes=electrodes, amplitude=amp, saturation=saturation)
    per_device[key] = cal
    return cal, cal.lab_time_s


def _as_bias(device, bias) -> np.ndarray:
    b = v.float_array("bias", bias, ndim=1)
    if b.size != device.n_electrodes:
        raise ValueError(f"bias must have {device.n_electrodes} voltages, got {b.size}")
    return b


MAX_WINDOW_SAMPLES = 2**24   # 28 min at 10 kHz; the 7-electrode float64 waveform alone is 0.9 GB


def window_samples(fs: float, T: float, filter: str) -> int:  # noqa: A002
    """Samples of one window: ``round(T fs)``, for the Butterworth cut to whole groups of its pre-sum of 8.

    The Butterworth runs at fs/8 on sums of 8 samples; a trailing partial group
    would carry no weight, so it is not applied at all (T = 0.05 s at 10 kHz:
    496 samples instead of 500; the filter is still the one 98 % settled at T).
    """
    if not (np.isfinite(T) and np.isfinite(fs)) or T * fs > MAX_WINDOW_SAMPLES:
        raise ValueError(f"T = {T} s at fs = {fs:g} Hz: a window longer than {MAX_WINDOW_SAMPLES} samples "
                         f"({MAX_WINDOW_SAMPLES / fs:.4g} s) is refused (its waveform alone would not fit in memory)"
                         if np.isfinite(T) and np.isfinite(fs) else f"T = {T} s and fs = {fs} Hz must be finite")
    n = int(round(T * fs))
    if filter == "butterworth3":
        n -= n % design.DECIMATION
        if n < design.DECIMATION:
            raise ValueError(f"T = {T} s at fs = {fs:g} Hz is shorter than one group of the Butterworth's "
                             f"pre-sum ({design.DECIMATION} samples)")
    elif n < 1:
        raise ValueError(f"T = {T} s at fs = {fs:g} Hz gives no samples")
    return n


def check_amplitudes(amps, dac_lsb, name: str = "amplitudes") -> None:
    """Refuse amplitudes that are not finite and > 0, or below ``MIN_DAC_STEPS`` DAC steps."""
    a = np.asarray(amps, float)
    if not np.all(np.isfinite(a)) or np.any(a <= 0):
        raise ValueError(f"{name} must be finite and > 0 V, got {a.tolist()}")
    if dac_lsb and np.any(a < MIN_DAC_STEPS * dac_lsb):
        raise ValueError(f"{name}: {a.min():g} V is below {MIN_DAC_STEPS} steps of the device's DAC "
                         f"(dac_lsb = {dac_lsb:g} V): the applied sine would be a few codes or none; "
                         f"use at least {MIN_DAC_STEPS * dac_lsb:g} V")


def perturbation_waveform(bias, idx, amplitudes, freqs, n: int, fs: float) -> np.ndarray:
    """Volts (n_electrodes, n): bias plus ``a_m sin(2 pi f_m t)`` on electrodes ``idx``."""
    volts = np.repeat(np.asarray(bias, float)[:, None], n, axis=1)
    volts[idx] += amplitudes[:, None] * _sines(tuple(np.asarray(freqs, float).tolist()), int(n), float(fs))
    return volts


@functools.lru_cache(maxsize=32)
def _sines(freqs: tuple, n: int, fs: float) -> np.ndarray:
    """sin(2 pi f_m t) at t = k / fs, k < n (read-only; the same for every window of a plan)."""
    t = np.arange(n) / fs
    out = np.sin(2 * np.pi * np.outer(np.array(freqs), t))
    out.flags.writeable = False
    return out


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
    if not dac_lsb:
        return None
    q = np.round(volts[idx] / dac_lsb) * dac_lsb
    # Each electrode carries one tone; fitting all tones to every row and keeping the
    # diagonal is the same least-squares answer (the other tones are absent from a row)
    # in one matrix product.
    return np.diagonal(fit_tones(q, fs, freqs)).copy() if len(idx) > 1 else fit_tones(q, fs, freqs)[:, 0]


def fundamental_projectors(fs: float, freqs, n: int):
    """The rows of the tone fit's pseudo-inverse (``tonefit.tone_basis``) that give each tone's sine and
    cosine coefficient, as ``(ps, pc)`` of shape (m, n) each (read-only): what ``applied_windows`` takes."""
    f = tuple(float(x) for x in np.atleast_1d(freqs))
    m = len(f)
    _, pinv = tone_basis(float(fs), f, int(n))
    ps, pc = pinv[:m].copy(), pinv[m:2 * m].copy()
    ps.flags.writeable = pc.flags.writeable = False
    return ps, pc


def applied_windows(volts, idx, starts, n: int, lsb: float, ps, pc) -> np.ndarray:
    """``applied_fundamentals`` of K windows of one record at once (C: ``hge_host_fundamentals``).

    ``volts`` (n_electrodes, N) the record, ``idx`` the m perturbed electrodes' rows (row ``idx[i]``
    carries tone i), ``starts`` the K windows' first samples, ``n`` their length, ``lsb`` the DAC
    step, ``ps``, ``pc`` from ``fundamental_projectors``. Returns (K, m) complex ``alpha + j beta``.

    Each electrode's row carries one tone, so of the tone fit only its own two coefficients are
    needed: the dot products of the DAC's values ``round(v / lsb) lsb`` (ties to even, as numpy's
    round) with its two rows of the fit's pseudo-inverse -- the same least-squares answer as the
    whole fit's diagonal, without the other 2m coefficients, without BLAS and without the record's
    quantised copy. Round-off: each is an n-term dot product, within gamma_n sum_j |q_j p_j| of the
    exact one (gamma_n = n u / (1 - n u), u = 2^-53, for any order of summation: Higham, Accuracy
    and Stability of Numerical Algorithms, eq. 3.5), as the matrix product of
    ``applied_fundamentals`` is, so the two differ by at most 2 gamma_n sum_j |q_j| |p_j| (tested).
    A window's result does not depend on the other windows (each sum runs on its own, in order).
    """
    v = np.ascontiguousarray(volts, dtype=np.float64)
    rows = np.ascontiguousarray(idx, dtype=np.uint32)
    st = np.ascontiguousarray(starts, dtype=np.uint64)
    K, m = st.size, rows.size
    out_s, out_c = np.empty((K, m)), np.empty((K, m))
    if K:
        P = core._ptr
        core.check_status("hge_host_fundamentals", core.lib.hge_host_fundamentals(
            P("double *", v), v.shape[1], P("uint32_t *", rows), m, P("uint64_t *", st), K, int(n), float(lsb),
            P("double *", ps), P("double *", pc), P("double *", out_s), P("double *", out_c)))
    return out_s + 1j * out_c


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
    Arguments as for ``extract_gradient``; ``eager``: a loopback calibration is
    measured at construction (the phase method always waits for a bias). Every
    configuration error is raised here, before anything is applied. A calibration the phase estimator needs
    and nobody supplied is measured by ``calibrate_at(bias)`` (or, for callers
    that do not call it, at the first ``waveform``), and its lab time is kept
    in ``calibration_time_s`` until ``take_calibration_time()``.
    """

    def __init__(self, device, *, electrodes=None, amplitudes=0.008, T: float = 0.1, freqs=None,
                 filter: str = "butterworth3", engine: str = "c", phase: str = "calibrated",  # noqa: A002
                 calibration: Calibration | None = None, crosstalk: str = "solve", check: bool = True,
                 mode: str = "parallel", saturation: str = "raise", eager: bool = False):
        v.choice("mode", mode, MODES)
        v.choice("phase", phase, PHASES)
        v.choice("crosstalk", crosstalk, CROSSTALK)
        v.choice("filter", filter, ("butterworth3", "boxcar"))
        v.choice("engine", engine, ("c", "fixed", "float"))
        v.choice("saturation", saturation, SATURATION)
        v.positive("T", T)
        self.device, self.T, self.filter, self.engine = device, float(T), filter, engine
        self.phase, self.crosstalk, self.mode, self.saturation = phase, crosstalk, mode, saturation
        self.name = device_name(device)
        self.fs = float(v.positive(f"{self.name}.fs", device.fs))
        self.limits = check_limits(device.limits, int(device.n_electrodes), name=f"{self.name}.limits")
        self.idx = to_index(electrodes, device.n_electrodes)
        m = self.idx.size
        self.amps = np.broadcast_to(np.asarray(amplitudes, float), (m,)).astype(float)
        self.dac_lsb = getattr(device, "dac_lsb", None)
        check_amplitudes(self.amps, self.dac_lsb)
        self.n = window_samples(self.fs, self.T, filter)
        self._quantized = engine != "float"
        # Designs the filter: a T too short for the Butterworth at this fs is refused here.
        self.weights = analysis.lockin_weights(self.fs, self.T, filter, self.n, quantized=self._quantized)
        self.enbw = float(self.fs * np.sum(self.weights**2) / 2.0)
        if freqs is None:
            try:
                freqs = plans.plan_frequencies(m, fs=self.fs, T=self.T, filter=filter)
            except ValueError as e:  # name the argument the caller gave, not the planner's own
                raise ValueError(f"T = {self.T} s with filter={filter!r} on {m} electrodes: {e}") from None
        else:
            freqs = v.float_array("freqs", np.atleast_1d(freqs), ndim=1)
            if freqs.size != m:
                raise ValueError(f"freqs must have one frequency per electrode ({m}), got {freqs.size}")
            if np.any((freqs <= 0) | (freqs >= self.fs / 2)):
                raise ValueError(f"freqs must lie in (0, fs/2 = {self.fs / 2:g}) Hz, got {freqs.tolist()}")
            if np.unique(freqs).size != freqs.size:
                raise ValueError(f"freqs must be distinct, got {freqs.tolist()}")
            if check and mode == "parallel":
                plans.check_plan(freqs, fs=self.fs, T=self.T, filter=filter)
            elif check:  # sequential: each window holds one tone, checked on its own
                for f in freqs:
                    plans.check_plan([f], fs=self.fs, T=self.T, filter=filter)
            if filter == "boxcar":
                design.check_boxcar_window(freqs, self.fs, self.T)
        self.freqs = np.asarray(freqs, float)
        self.groups = [np.arange(m)] if mode == "parallel" else [np.array([k]) for k in range(m)]
        self._ginv, self._cov, self._demods, self._tones, self._reads = {}, {}, {}, {}, {}
        self._extremes = {}
        for sel in self.groups:
            key = tuple(self.freqs[sel])
            if crosstalk == "solve":
                try:
                    self._ginv[key] = analysis.crosstalk_inverse(key, self.fs, self.T, filter, self.n,
                                                                 self._quantized)
                except np.linalg.LinAlgError:
                    raise ValueError(f"freqs: the crosstalk solve is singular for {list(key)} Hz "
                                     f"(frequencies too close for T = {self.T} s)") from None
            self._cov[key] = analysis.lockin_noise_spectra(key, self.fs, self.T, filter, self.n,
                                                           self._quantized, crosstalk == "solve")
        self.full_scale = getattr(device, "full_scale", None)
        self._cal_key = (tuple(np.round(np.sort(self.freqs), 9)), round(float(self.T), 12))   # as calibration_for
        self._responses = {}
        self.response = np.ones(m, complex)
        self.calibration = None
        self.calibration_time_s = 0.0
        if phase == "calibrated":
            own = calibration if calibration is not None else getattr(device, "calibration", None)
            if own is not None:
                self._set_calibration(own)
        self.last_saturated = 0
        self.last_slope = 0.0
        self.last_quadrature = None          # calibrated estimator: (K, m) the part across its axis, nA/V
        self.last_quadrature_stderr = None   # its stderr (NaN without stderr)
        if eager and self.needs_calibration and has_loopback(device):
            # Needs no bias: measure it now, when the caller builds its measurement (the trainer:
            # before a checkpoint restores the device's state, so a resumed run's noise is unshifted).
            self.calibrate_at(None)

    def fresh(self) -> "HGEWindow":
        """A copy of this configured window with its own per-call state (the last read's counts, slope
        and quadrature, the calibration time), sharing the per-plan tables (read-only or memos of
        values that depend on the plan alone)."""
        new = copy.copy(self)
        new.last_saturated, new.last_slope = 0, 0.0
        new.last_quadrature = new.last_quadrature_stderr = None
        new.calibration_time_s = 0.0
        return new

    def calibration_state(self) -> dict | None:
        """The calibration in use, exactly (JSON-able), for a checkpoint; None if there is none."""
        c = self.calibration
        if c is None:
            return None
        return {"freqs": c.freqs.tolist(), "re": c.response.real.tolist(), "im": c.response.imag.tolist(),
                "method": c.method}

    def restore_calibration(self, st: dict | None) -> None:
        """Use a calibration from ``calibration_state`` (a resumed run measures it no second time);
        also remembered for this device object and plan, as a measured one would be."""
        if st is None or self.phase != "calibrated":
            return
        cal = Calibration(np.asarray(st["freqs"], float),
                          np.asarray(st["re"], float) + 1j * np.asarray(st["im"], float), str(st["method"]))
        self._set_calibration(cal)
        try:
            _CALIBRATIONS.setdefault(self.device, {})[self._cal_key] = cal
        except TypeError:
            pass

    def _set_calibration(self, cal: Calibration) -> None:
        # Memo (shared by the copies of a configured window, see fresh): the checked response of a
        # calibration, keyed on its identity and its arrays' bytes (one changed in place is checked anew).
        key = (id(cal), np.asarray(cal.freqs).tobytes(), np.asarray(cal.response).tobytes())
        hit = self._responses.get(key)
        if hit is not None and hit[0] is cal:
            self.calibration, self.response = cal, hit[1]
            return
        response = cal.at(self.freqs)
        if not np.all(np.isfinite(response)) or np.any(np.abs(response) == 0):
            raise ValueError(f"calibration: the chain response at {self.freqs.tolist()} Hz is 0 or not finite")
        response.flags.writeable = False
        self.calibration, self.response = cal, response
        if len(self._responses) >= 16:
            self._responses.clear()
        self._responses[key] = (cal, response)

    @property
    def needs_calibration(self) -> bool:
        return self.phase == "calibrated" and self.calibration is None

    def calibrate_at(self, bias) -> float:
        """Measure (or reuse) the calibration this window needs, at ``bias``; returns the lab time spent now."""
        if not self.needs_calibration:
            return 0.0
        cal, spent = None, 0.0
        if getattr(self.device, "calibration", None) is None:   # calibration_for's memo, its key made once
            try:
                cal = _CALIBRATIONS.get(self.device, {}).get(self._cal_key)
            except TypeError:
                cal = None
        if cal is None:
            with one_blas_thread():   # the calibration's fits (see _window_for)
                cal, spent = calibration_for(self.device, self.freqs, self.T, bias=bias,
                                             electrodes=to_number(self.idx), amplitudes=self.amps,
                                             saturation=self.saturation)
        self._set_calibration(cal)
        self.calibration_time_s += spent
        return spent

    def take_calibration_time(self) -> float:
        """Lab time spent calibrating since the last call (for callers that keep their own lab clock)."""
        t, self.calibration_time_s = self.calibration_time_s, 0.0
        return t

    def waveform(self, bias, sel=None) -> np.ndarray:
        """Volts (n_electrodes, n) of one window at ``bias``, perturbing ``sel`` (default all)."""
        if self.needs_calibration:
            probe = perturbation_waveform(bias, self.idx, self.amps, self.freqs, self.n, self.fs)
            check_volts(probe, self.limits)  # the calibration drives these electrodes with these amplitudes
            self.calibrate_at(bias)
        rows, tones = self.tone_rows(sel)
        volts = np.repeat(np.asarray(bias, float)[:, None], self.n, axis=1)
        volts[rows] += tones
        return volts

    def tone_rows(self, sel=None):
        """(electrode rows, tones (m, n) V): what :meth:`waveform` adds to its bias on those rows.

        perturbation_waveform with its tone part computed once per selection (every window of a
        training iteration adds the same tones to its own bias: the same sums, bit for bit).
        The tones are read-only (shared by every window)."""
        sel = np.arange(self.idx.size) if sel is None else np.asarray(sel)
        key = tuple(sel.tolist())
        tones = self._tones.get(key)
        if tones is None:
            t = np.arange(self.n) / self.fs
            tones = self._tones[key] = self.amps[sel][:, None] * np.sin(2 * np.pi * np.outer(self.freqs[sel], t))
            tones.flags.writeable = False
        return self.idx[sel], tones

    def gate(self, bias: np.ndarray, sel, volts: np.ndarray) -> None:
        """``check_volts(volts, self.limits)`` for ``volts``, this plan's window at ``bias`` perturbing
        ``sel`` (``waveform``/``tone_rows``' sums), decided from the window's extremes alone.

        Row r of the window is ``fl(bias_r + tone_r[i])`` (``bias_r`` on rows without a tone).
        Rounding to nearest is monotone, so its largest sample is ``fl(bias_r + max_i tone_r[i])``
        and its smallest ``fl(bias_r + min_i tone_r[i])``, exactly: testing those two per row against
        the limits is the gate's test of every sample (a NaN or infinite bias fails it, as there).
        A refused window goes through ``check_volts`` for its message (the first offending sample)."""
        rows, tmin, tmax = self._tone_extremes(sel)
        lo, hi = bias.copy(), bias.copy()
        lo[rows] += tmin
        hi[rows] += tmax
        lim = self.limits   # checked by check_limits when the window was made
        if volts.shape[1] and bool(np.all((lo >= lim[:, 0]) & (hi <= lim[:, 1]))):
            return
        check_volts(volts, lim)
        raise AssertionError(f"{self.name}: the window's extremes {lo.tolist()}, {hi.tolist()} V fail the "
                             f"limits but no sample does")   # pragma: no cover - monotone rounding

    def _tone_extremes(self, sel):
        """(rows, min, max) of each row of ``tone_rows(sel)``' tones, made once per selection."""
        sel_key = None if sel is None else tuple(np.asarray(sel).tolist())
        hit = self._extremes.get(sel_key)
        if hit is None:
            rows, tones = self.tone_rows(sel)
            hit = self._extremes[sel_key] = (rows, tones.min(axis=1), tones.max(axis=1))
        return hit

    def read(self, y, volts, sel=None, stderr: bool = True, label: str = "window"):
        """Samples ``y`` measured for ``volts`` -> (X + jY, dI/dV, stderr, applied bias).

        ``stderr=False`` skips the residual-spectrum estimate (NaN) where only dI/dV is needed.
        ``label``: the window's name in messages (a str, or a callable giving it).
        Raises on a saturated window (unless ``saturation="count"``: the count is
        in ``last_saturated``) and on a non-finite derivative. One window of
        :meth:`read_windows`.
        """
        y = np.asarray(y, float)
        if y.ndim != 1 or y.size != self.n:
            raise ValueError(f"{label() if callable(label) else label}: expected {self.n} samples, got {y.size}")
        z, grad, se, bias = self.read_windows(y, volts, [slice(0, self.n)], sel, stderr=stderr,
                                              labels=(lambda k: label()) if callable(label) else [label])
        return z[0], grad[0], se[0], bias[0]

    def _demodulator(self, f):
        key = tuple(f)
        wd = self._demods.get(key)
        if wd is None:
            fs_demod = self.full_scale if self._quantized else None
            number = fs_demod is None or (isinstance(fs_demod, (int, float, np.integer, np.floating))
                                          and not isinstance(fs_demod, bool))
            # Shared between windows and calls (extract_gradient builds a new HGEWindow each time)
            # while its reference table (8 M n bytes) is small; a long window's stays with this one.
            if number and 8 * len(key) * self.n <= SHARED_DEMOD_BYTES:
                wd = window_demodulator(self.fs, tuple(float(x) for x in f), self.n, self.engine, self.filter,
                                        self.T, None if fs_demod is None else float(fs_demod))
            else:  # large, or not a number (WindowDemodulator's check names it)
                wd = WindowDemodulator(self.fs, f, self.n, engine=self.engine, filter=self.filter, T=self.T,
                                       full_scale=fs_demod)
            self._demods[key] = wd
        return wd

    def read_windows(self, y, volts, slices, sel=None, stderr: bool = True, labels=None, bias: bool = True):
        """Many windows of one record at once: ``y[s]`` measured for ``volts[:, s]``, for each ``s`` in ``slices``.

        What :meth:`read` gives for each window, bit for bit (tested), with the
        per-plan work done once: the saturation check vectorised over the
        windows, one :class:`demod.WindowDemodulator` (the C core's plan and
        reference cache) for all of them, the DAC quantisation of the record
        once. The trainer reads all data points of an iteration this way.

        Parameters
        ----------
        y : (N,) array
            The measured record, nA.
        volts : (n_electrodes, N) array
            What was applied for it, V.
        slices : sequence of slice
            One per window, each ``n`` samples long.
        sel : array of int, optional
            The perturbed electrodes (positions in ``electrodes``), default all.
        stderr : bool
            Residual-spectrum standard errors (else NaN).
        labels : sequence of str or callable, optional
            Names of the windows in error messages (``labels[k]`` or ``labels(k)``).
        bias : bool
            Also the applied bias of each window (else NaN).

        ``last_saturated`` is then the windows' total, ``last_slope`` (with ``stderr``) the
        steepest of their low-band noise slopes.

        Returns
        -------
        z, grad, stderr : (K, m) arrays
        bias : (K, n_electrodes) array
        """
        if self.needs_calibration:
            raise ValueError("HGEWindow.read: the calibrated estimator has no calibration yet; "
                             "call calibrate_at(bias) before measuring")
        rp = self._read_plan(sel)
        sel, f, key, m, idx = rp["sel"], rp["f"], rp["key"], rp["m"], rp["idx"]
        n = self.n

        def label(k):
            if labels is None:
                return f"window {k + 1}"
            return labels(k) if callable(labels) else labels[k]
        y = np.asarray(y, float)
        volts = np.asarray(volts, float)
        if y.ndim != 1 or volts.ndim != 2 or volts.shape[1] != y.size:
            raise ValueError(f"read_windows: y must be 1-D and volts (n_electrodes, {y.size}) like it, got shapes "
                             f"{y.shape} and {volts.shape}")
        slices = list(slices)
        for k, s in enumerate(slices):
            r = range(y.size)[s] if isinstance(s, slice) else None
            if r is None or r.step != 1 or len(r) != n:
                got = "not a slice" if r is None else f"{len(r)} samples with step {r.step}"
                raise ValueError(f"{label(k)}: expected a slice of {n} consecutive samples, got {got}")
            slices[k] = slice(r.start, r.stop)
        K = len(slices)
        at = None
        if K == 1:   # one window (extract_gradient): a view, no gather (copied before any change below)
            Y = y[None, slices[0]]
        else:
            starts = np.array([s.start for s in slices], dtype=np.intp)
            at = starts[:, None] + np.arange(n)          # (K, n): each window's samples in the record
            Y = y[at]
        counts = saturated_counts(Y, self.full_scale)
        if self.saturation == "raise" and counts.any():
            k = int(np.flatnonzero(counts)[0])
            check_saturation(Y[k], self.full_scale, what=f"{self.name}, {label(k)}", policy="raise")
        self.last_saturated = int(counts.sum())
        fs_demod = self.full_scale if self._quantized else None
        if fs_demod and self.last_saturated:
            # Only reachable with saturation="count"; a window with no count has no sample at or
            # beyond full_scale (saturated_samples counts those first), where clipping changes nothing.
            Y = np.clip(Y, -fs_demod, fs_demod)
        Xs, Ys = self._demodulator(f)(Y)
        se = np.full((K, m), np.nan)
        se_q = np.full((K, m), np.nan)
        b = np.full((K, volts.shape[0]), np.nan)
        if self.crosstalk == "solve":  # solve_crosstalk window by window (the same matrix-vector products)
            g_inv = self._ginv[key]
            XY = np.concatenate([Xs, Ys], axis=1)
            ab = np.empty_like(XY)
            for k in range(K):
                ab[k] = g_inv @ XY[k]
            Xs, Ys = ab[:, :m] / 2.0, ab[:, m:] / 2.0
        z = Xs + 1j * Ys
        applied = None
        Q = None
        if self.dac_lsb:
            # applied_fundamentals of every window (applied_windows: its round-off bound is there).
            starts_ = [s.start for s in slices]
            applied = applied_windows(volts, idx, starts_, n, self.dac_lsb, *rp["proj"])   # (K, m)
            if bias:   # applied_bias: each window's mean DAC value, round(v / lsb) * lsb
                if K == 1:
                    Q = volts[:, slices[0]] / self.dac_lsb
                    Q = Q[:, None, :]                                                  # (rows, 1, n)
                else:
                    Q = volts[np.arange(volts.shape[0])[:, None, None], at[None]]      # (rows, K, n)
                    Q /= self.dac_lsb
                np.round(Q, out=Q)
                Q *= self.dac_lsb
        # The estimator window by window on 1-D rows, as read() does: numpy's complex loops may round
        # a broadcast 2-D operation differently from the 1-D one (seen for one electrode).
        amps, resp = rp["amps"], self.response[sel]
        grad = np.empty((K, m))
        self.last_quadrature = None
        if self.phase == "calibrated":
            # The calibrated estimator keeps the part of X + jY along the calibrated chain response; the
            # part across it (nA/V, same scale) is noise alone while the chain is the calibrated one.
            # extract_gradient tests it against its own stderr (a stale calibration turns the axis).
            # Both parts from one complex quotient per window (_estimate's, on its 1-D row).
            quad = self.last_quadrature = np.empty((K, m))
            for k in range(K):
                w = 2 * z[k] / (resp * (amps if applied is None else applied[k]))
                grad[k], quad[k] = w.real, w.imag
        else:
            for k in range(K):
                grad[k] = _estimate(z[k], amps, resp, self.phase, None if applied is None else applied[k])
        bad = ~np.isfinite(grad).all(axis=1)
        if bad.any():
            k = int(np.argmax(bad))
            raise ValueError(f"{self.name}, {label(k)}: non-finite dI/dV {grad[k].tolist()} at {f.tolist()} Hz")
        slopes = []
        if stderr:
            with one_blas_thread():   # the noise fit's and the weights' products: a second BLAS thread only spins
                self._read_stderr(rp, Y, z, se, se_q, slopes)
        if bias:
            if Q is not None:
                # applied_bias: each window's mean DAC value (Q.mean(axis=2): numpy's _mean is this sum
                # and this division, the same bits, without its Python wrapper)
                b[:] = (np.add.reduce(Q, axis=2) / Q.shape[2]).T
            else:
                b[:] = volts[:, [s.start for s in slices]].T   # applied_bias without a DAC step: the bias
        if slopes:
            self.last_slope = slopes[-1] if K == 1 else float(np.nanmin(slopes))
        self.last_quadrature_stderr = se_q
        return z, grad, se, b

    def _read_stderr(self, rp, Y, z, se, se_q, slopes) -> None:
        """read_windows' stderr of each window (the rows of ``Y``) into ``se``, ``se_q``; slopes appended."""
        sel, key, m = rp["sel"], rp["key"], rp["m"]
        psd_plan = rp.get("psd")
        if psd_plan is None:
            psd_plan = rp["psd"] = analysis.WindowPsdPlan(self.n, self.fs, rp["f"], self._cov[key][0])
        weights = self._stderr_weights(rp) if self.phase != "magnitude" else None
        for k in range(Y.shape[0]):
            fit = psd_plan.fit(Y[k])
            slopes.append(float("nan") if fit[2] is None else float(fit[2][0]))
            S = psd_plan.at_bins(fit)
            if weights is None:
                se[k], se_q[k] = self._stderr(lambda fq, S=S: S, z[k], sel, key, across=True)
            else:
                W, scale = weights
                var = W @ S
                np.maximum(var, 0.0, out=var)
                np.sqrt(var, out=var)
                var *= scale
                se[k], se_q[k] = var[:m], var[m:]

    def _read_plan(self, sel):
        """What :meth:`read_windows` needs per selection of electrodes, made once (read-only arrays)."""
        skey = None if sel is None else tuple(np.asarray(sel).tolist())
        rp = self._reads.get(skey)
        if rp is None:
            with one_blas_thread():   # once per plan (see _window_for)
                return self._make_read_plan(sel, skey)
        return rp

    def _make_read_plan(self, sel, skey):
        sel_a = np.arange(self.idx.size) if sel is None else np.asarray(sel)
        f = self.freqs[sel_a]
        key = tuple(f)
        m = f.size
        rp = {"sel": sel_a, "f": f, "key": key, "m": m, "idx": self.idx[sel_a], "amps": self.amps[sel_a]}
        if self.dac_lsb:
            rp["proj"] = fundamental_projectors(self.fs, f, self.n)
        self._reads[skey] = rp
        return rp

    def _stderr_weights(self, rp):
        """The stderr's spectral weights of each electrode, made once per selection and response.

        ``_stderr`` forms ``var = c^2 (KXX S) + s^2 (KYY S) + 2 c s (KXY S)`` from three
        matrix-vector products; here the weights are combined first, ``W = c^2 KXX + s^2 KYY
        + 2 c s KXY`` (and ``s^2 KXX + c^2 KYY - 2 c s KXY`` for the axis across), one product
        for both. Round-off (S >= 0, KXX, KYY >= 0): each way is within gamma_{N+3} T of the exact
        variance, T = c^2 (KXX S) + s^2 (KYY S) + |2 c s| (|KXY| S), N the number of bins (the
        dot products: gamma_N of the sum of |terms|; the three products and two sums per weight
        or per variance: gamma_3 more), so the two differ by at most 2 gamma_{N+3} T (T equals the
        variance up to the cross term, which is small for a lock-in's in-phase and quadrature
        rows; tests/test_read_fast_paths.py checks the bound). Returns ``(W (2m, N), scale (2m,))``.
        """
        resp = self.response[rp["sel"]]
        wkey = (self.phase, resp.tobytes(), rp["amps"].tobytes())
        hit = rp.get("weights")
        if hit is not None and hit[0] == wkey:
            return hit[1]
        fb, KXX, KYY, KXY = self._cov[rp["key"]]
        m = rp["m"]
        if self.phase == "inphase":
            c, s, scale = np.ones(m), np.zeros(m), 2.0 / rp["amps"]
        else:
            ang = np.angle(resp)
            c, s = np.cos(ang), np.sin(ang)
            scale = 2.0 / (rp["amps"] * np.abs(resp))
        c2, s2, cs2 = c**2, s**2, 2 * c * s
        W = np.vstack([c2[:, None] * KXX + s2[:, None] * KYY + cs2[:, None] * KXY,
                       s2[:, None] * KXX + c2[:, None] * KYY - cs2[:, None] * KXY])
        W.flags.writeable = False
        out = (W, np.concatenate([scale, scale]))
        rp["weights"] = (wkey, out)
        return out

    def _stderr(self, psd, z, sel, key, across: bool = False):
        """sqrt(Var dI/dV): this window's noise spectrum (``analysis.window_psd``) through the lock-in,
        the crosstalk solve and the estimator's axis (``analysis.lockin_noise_spectra``: side lobes
        and the solve's noise gain included). ``across``: also the same for the axis at right
        angles to the estimator's (the calibrated estimator's quadrature check), as a pair."""
        fb, KXX, KYY, KXY = self._cov[key]
        if self.phase == "inphase":
            c, s, scale = np.ones(len(key)), np.zeros(len(key)), 2.0 / self.amps[sel]
        else:
            ang = np.angle(z) if self.phase == "magnitude" else np.angle(self.response[sel])
            c, s = np.cos(ang), np.sin(ang)
            gain = 1.0 if self.phase == "magnitude" else np.abs(self.response[sel])
            scale = 2.0 / (self.amps[sel] * gain)
        S = psd(fb)
        xx, yy, xy = KXX @ S, KYY @ S, KXY @ S
        var = c**2 * xx + s**2 * yy + 2 * c * s * xy
        se = scale * np.sqrt(np.maximum(var, 0.0))
        if not across:
            return se
        var_q = s**2 * xx + c**2 * yy - 2 * c * s * xy    # the axis (-s, c)
        return se, scale * np.sqrt(np.maximum(var_q, 0.0))


STALE_SIGMAS = 5.0       # noise: P(|N(0,1)| > 5) = 5.7e-7 per electrode and call
STALE_ANGLE = 0.1        # rad: a calibration this far off scales a derivative by cos(0.1) = 0.995
STALE_FLOOR = 0.02       # of the largest |dI/dV|: the deterministic leak a plan leaves across the axis


def stale_calibration(grad, quad, quad_se) -> np.ndarray:
    """Electrodes whose lock-in output lies off the calibrated chain's axis by more than noise.

    While the chain is the one calibrated, the calibrated estimator's quadrature ``quad``
    (nA/V, the part of X + jY across the chain response) holds only noise (stderr
    ``quad_se``) and a small deterministic leak (the device's intermodulation and the
    crosstalk solve's residue: measured on both simulator models without noise, 120 calls at
    random biases, at most 0.7 % of the largest |dI/dV|; ``STALE_FLOOR`` allows 2 %). A chain that lags or
    filters more than when it was calibrated turns the response by its extra phase: the
    part across grows as the sine of it. Flagged where ``|quad| > STALE_SIGMAS quad_se +
    tan(STALE_ANGLE) |grad| + STALE_FLOOR max|grad|``.
    """
    grad, quad, quad_se = (np.asarray(a, float) for a in (grad, quad, quad_se))
    se = np.where(np.isfinite(quad_se), quad_se, 0.0)
    ag = np.abs(grad)
    limit = STALE_SIGMAS * se + _TAN_STALE_ANGLE * ag + STALE_FLOOR * ag.max(initial=0.0)
    return np.abs(quad) > limit


_TAN_STALE_ANGLE = np.tan(STALE_ANGLE)


def _mean(y):
    """``np.mean(y)``: for a float64 array its sum and its division (numpy's _mean: the same bits) without
    the wrapper; anything else (integers sum in float64 there) through np.mean."""
    if isinstance(y, np.ndarray) and y.dtype == np.float64 and y.size:
        return np.add.reduce(y, axis=None) / y.size
    return np.mean(y)


# HGEWindow configurations made by extract_gradient, per device object (see _window_for).
_WINDOWS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
_WINDOWS_PER_DEVICE = 32


def _exact_key(x):
    """A hashable key equal for two values exactly when they are the same value of the same type
    (arrays and sequences by dtype, shape and bytes); TypeError for what has no such key."""
    if x is None or isinstance(x, (bool, int, float, complex, str, np.number, np.bool_)):
        return (type(x), x)
    a = np.asarray(x)
    if a.dtype.kind not in "biufc":
        raise TypeError(f"no exact key for {type(x).__name__}")
    return (a.dtype.str, a.shape, a.tobytes())


def _calibration_key(cal):
    if cal is None:
        return None
    return (id(cal), _exact_key(cal.freqs), _exact_key(cal.response))


def _window_for(device, **kw) -> "HGEWindow":
    """An :class:`HGEWindow` for ``extract_gradient``'s arguments, its configuration made once.

    Every call used to build the window anew (argument and plan checks, the filter weights, the
    crosstalk inverse, the read plans: ~0.1 ms, and the per-plan stderr weights and noise-fit
    plan: more). The configuration depends only on the arguments and on what ``HGEWindow``
    reads from the device (its name, fs, n_electrodes, limits, dac_lsb, full_scale and own
    calibration), so it is kept per device object under a key holding all of them by value
    (arrays by their bytes; a calibration by identity and its arrays' bytes): a changed
    argument or attribute, also one changed in place, gives another key and a new window. Each
    call gets a copy with its own per-call state. Anything without an exact key (an unusual
    type) builds the window anew, as does a device that cannot be weakly referenced.
    """
    cal = kw.get("calibration")
    try:
        own = getattr(device, "calibration", None)
        key = (type(device), device_name(device), _exact_key(device.fs), _exact_key(device.n_electrodes),
               _exact_key(device.limits), _exact_key(getattr(device, "dac_lsb", None)),
               _exact_key(getattr(device, "full_scale", None)), _calibration_key(own), _calibration_key(cal),
               tuple((k, _exact_key(val)) for k, val in sorted(kw.items()) if k != "calibration"))
        per_device = _WINDOWS.setdefault(device, {})
    except (TypeError, AttributeError):   # no exact key, or not weakly referenceable: no memo
        with one_blas_thread():
            return HGEWindow(device, **kw)
    hit = per_device.get(key)
    # The key holds calibrations by id: the entry also holds them, so an id is never reused meanwhile.
    if hit is not None and hit[1] is own and hit[2] is cal:
        return hit[0].fresh()
    # The plan's one-time products (filter weights, crosstalk inverse, noise weights) on one BLAS thread:
    # a second one only waits, and then spins for ~0.1 s after the last product, taking the other core
    # from whatever runs next (seen as CPU time above wall time in the first gradients after a new plan).
    with one_blas_thread():
        win = HGEWindow(device, **kw)
    # Shared by every copy: own, read-only arrays (freqs and limits may be the caller's or the
    # device's own arrays, which must stay theirs; a result gets its own copies).
    win.freqs, win.limits = win.freqs.copy(), win.limits.copy()
    for a in (win.amps, win.freqs, win.idx, win.limits):
        a.flags.writeable = False
    if len(per_device) >= _WINDOWS_PER_DEVICE:
        per_device.clear()
    per_device[key] = (win, own, cal)
    return win.fresh()


def extract_gradient(device, bias, *, electrodes=None, amplitudes=0.008, T: float = 0.1, freqs=None,
                     mode: str = "parallel", filter: str = "butterworth3", engine: str = "c",  # noqa: A002
                     rng=None, phase: str = "calibrated", calibration: Calibration | None = None,
                     crosstalk: str = "solve", check: bool = True, saturation: str = "raise") -> GradientResult:
    """dI/dV of ``device`` at ``bias`` by homodyne gradient extraction.

    Parameters
    ----------
    device : Device
    bias : (n_electrodes,) array, V
    electrodes : list of int, optional
        Electrodes to perturb, numbered from 1; default all.
    amplitudes : float or array, V
        Perturbation amplitude per electrode (paper: 8 mV); at least 4 steps
        of the device's DAC when it states ``dac_lsb``.
    T : float, s
        Window per gradient (parallel) or per electrode (sequential). The
        Butterworth's window is cut to whole groups of its pre-sum of 8.
    freqs : array, optional
        Hz per electrode; default ``plans.plan_frequencies``. A given plan is
        checked against the plan rules unless ``check=False`` (sequential:
        each frequency on its own); every frequency must lie in (0, fs/2).
    mode : {"parallel", "sequential"}
    filter : {"butterworth3", "boxcar"}
    engine : {"c", "fixed", "float"}
    phase : {"calibrated", "inphase", "magnitude"}
        Estimator: projection on the calibrated chain response (default),
        ``2X/a``, or the paper's ``2R/a`` with the sign from the phase.
    calibration : Calibration, optional
        Default: ``device.calibration`` if set, else measured once per device
        object and plan by ``calibrate`` (loopback if the device has one, else
        the phase method at this ``bias`` with these amplitudes); its lab time
        is in this result's ``lab_time_s`` and ``calibration_time_s``.
    crosstalk : {"solve", "none"}
        ``"solve"`` (default): undo the known linear leakage between channels
        (neighbours, 2f terms, onset transients; ``analysis.solve_crosstalk``),
        exact for a linear response at any spacing; stderr includes its noise
        gain. ``"none"``: the paper's plain read-out, biased at small spacing.
    saturation : {"raise", "count"}
        A window with samples on a rail raises (default), or is accepted and
        counted in ``saturated_samples``.
    rng : ignored for the waveform (phases are 0); accepted for API stability.

    Returns
    -------
    GradientResult

    Raises
    ------
    ValueError
        Any configuration error, before a sample is applied; a measurement
        that does not check out (wrong length, non-finite, saturated); a
        calibration that cannot be trusted.
    """
    bias = _as_bias(device, bias)
    win = _window_for(device, electrodes=electrodes, amplitudes=amplitudes, T=T, freqs=freqs, filter=filter,
                      engine=engine, phase=phase, calibration=calibration, crosstalk=crosstalk, check=check,
                      mode=mode, saturation=saturation)
    m = win.idx.size
    # Every window is built and gated before anything (calibration included) is applied.
    windows = []
    for sel in win.groups:   # perturbation_waveform, with the plan's tones made once (HGEWindow.tone_rows)
        rows, tones = win.tone_rows(sel)
        # np.repeat(bias[:, None], n, axis=1), then the tones added to their rows: the same values and
        # the same sums, with a broadcast copy (np.repeat goes element by element) and, when every row
        # takes a tone in order (the parallel plan), a plain in-place add instead of a gather/scatter.
        volts = np.empty((bias.size, win.n))
        volts[:] = bias[:, None]
        if rows.size == bias.size and rows.tolist() == list(range(bias.size)):
            volts += tones
        else:
            volts[rows] += tones
        windows.append(volts)
    for sel, volts in zip(win.groups, windows):
        win.gate(bias, sel, volts)   # check_volts' test, from the window's extremes (exact)
    cal_time = win.calibrate_at(bias)
    z = np.empty(m, complex)
    grad, stderr = np.empty(m), np.empty(m)
    ys, dcs, saturated, slopes = [], [], 0, []
    quad, quad_se = np.zeros(m), np.zeros(m)
    for k, (sel, volts) in enumerate(zip(win.groups, windows)):
        y = checked_measure(device, volts)
        def label(k=k, sel=sel):   # made only for a message
            return f"window {k + 1} of {len(windows)} (electrodes {to_number(win.idx[sel]).tolist()})"
        z[sel], grad[sel], stderr[sel], dc = win.read(y, volts, sel, label=label)
        saturated += win.last_saturated
        slopes.append(win.last_slope)
        if win.last_quadrature is not None:
            quad[sel], quad_se[sel] = win.last_quadrature[0], win.last_quadrature_stderr[0]
        ys.append(y)
        dcs.append(dc)
    warnings = []
    reliable = True
    if min([x for x in slopes if x == x] + [0.0]) < STEEP_SLOPE:   # np.nanmin(slopes + [0])
        reliable = False
        warnings.append(f"the output below the plan falls as 1/f^{-np.nanmin(slopes):.1f}, steeper than "
                        f"1/f^{-STEEP_SLOPE:g}: stderr extrapolates that spectrum below 3/T and may be off (on a "
                        f"quiet device this residual is the device's own intermodulation, and stderr is "
                        f"conservative)")
    if saturated:
        reliable = False
        warnings.append(f"{saturated} samples were saturated (saturation='count'): the gradient is too small")
    if win.calibration is not None and win.calibration.method == "phase":
        warnings.extend(win.calibration.notes)
    stale = stale_calibration(grad, quad, quad_se) if phase == "calibrated" else np.zeros(m, bool)
    if stale.any():
        reliable = False
        ang = np.degrees(np.arctan2(quad[stale], grad[stale]))
        warnings.append(f"electrodes {to_number(win.idx).tolist()}: the chain is not the one calibrated (delay, "
                        f"filter, IV converter, wiring): on electrodes {to_number(win.idx[stale]).tolist()} the "
                        f"response lies off the calibrated chain's axis by {np.round(ang, 1).tolist()} deg "
                        f"({np.round(quad[stale], 4).tolist()} nA/V across it, stderr "
                        f"{np.round(quad_se[stale], 4).tolist()}). Every derivative shares the chain, so each may "
                        f"be scaled by the cosine of its own angle or change sign (an inversion, 180 deg, leaves "
                        f"nothing across the axis and cannot be seen here). Calibrate again on this chain")
    lag = 0 if win.calibration is None or not win.calibration.delay_s else int(round(win.calibration.delay_s * win.fs))
    if lag >= 1:
        # The first `lag` samples of a window hold no response yet (the chain has not delivered
        # it); no calibration recovers them. Their weight in the lock-in bounds the error of
        # every channel by 2 sum_{k<lag} |w_k| sum_n |dI/dV_n|.
        bound = 2.0 * float(np.sum(np.abs(win.weights[:lag]))) * float(np.sum(np.abs(grad)))
        warnings.append(f"the chain lags by {win.calibration.delay_s * win.fs:.1f} samples (fitted by the phase "
                        f"calibration): each derivative may be off by up to {bound:.3g} nA/V from the window's "
                        f"onset; a loopback calibration or a longer T shrinks it")
    return GradientResult(
        # One window (parallel): its own bias and mean (the mean of one row is that row; the mean of one
        # record is its mean): the same numbers without the stacking.
        gradient=grad, stderr=stderr, bias=dcs[0].copy() if len(dcs) == 1 else np.mean(dcs, axis=0), X=z.real,
        Y=z.imag, freqs=win.freqs.copy(), electrodes=to_number(win.idx), amplitudes=win.amps.copy(),
        current=float(_mean(ys[0] if len(ys) == 1 else np.concatenate(ys))),
        lab_time_s=len(ys) * win.n / win.fs + cal_time, mode=mode, filter=filter, phase=phase,
        calibration_time_s=cal_time, saturated_samples=saturated, stderr_reliable=reliable, warnings=warnings)


def finite_difference_gradient(device, bias, *, electrodes=None, step: float = 0.008, T: float = 0.1,
                               filter: str = "butterworth3", repeats: int = 1,  # noqa: A002
                               saturation: str = "raise") -> GradientResult:
    """Central differences: two windows of T per electrode (and per repeat), each read like the lock-in.

    Each window's level is the output through the lock-in's own low-pass at
    its own rate (``design.lockin_weights``: the pre-sum of 8, then the
    Butterworth designed for fs/8, read at the window's end and divided by its
    step response there; ``filter="boxcar"``: the window mean). Exact for a
    constant output.

    ``stderr``: with ``repeats >= 2``, the observed spread of the repeats over
    sqrt(repeats) (model-free; it includes drift between windows). With one
    pair, from the windows' own noise (white-noise model: the residual about
    a line, through the filter's weights); drift slower than a window is not
    in it, and the result says so (``stderr_reliable`` False when the
    residual spectrum is not flat).
    """
    v.positive("step", step)
    v.positive("T", T)
    v.positive("repeats", repeats, integer=True)
    v.choice("filter", filter, ("butterworth3", "boxcar"))
    v.choice("saturation", saturation, SATURATION)
    bias = _as_bias(device, bias)
    name = device_name(device)
    lim = check_limits(device.limits, int(device.n_electrodes), name=f"{name}.limits")
    idx = to_index(electrodes, device.n_electrodes)
    fs = float(device.fs)
    dac_lsb = getattr(device, "dac_lsb", None)
    check_amplitudes([step], dac_lsb, name="step")
    n = window_samples(fs, T, filter)
    w = design.lockin_weights(fs, float(T), filter, n)
    full_scale = getattr(device, "full_scale", None)
    plan = []
    for e in idx:
        for sign in (+1, -1):
            point = bias.copy()
            point[e] += sign * step
            volts = np.repeat(point[:, None], n, axis=1)
            check_volts(volts, lim)
            plan.append(volts)
    per_repeat = np.empty((int(repeats), idx.size))
    noise_var = np.zeros(idx.size)
    ys, saturated, slopes = [], 0, []
    for r in range(int(repeats)):
        for k in range(idx.size):
            levels = []
            for j in (0, 1):
                y = checked_measure(device, plan[2 * k + j])
                saturated += check_saturation(y, full_scale, what=f"{name}, finite-difference window "
                                              f"{2 * k + j + 1} (repeat {r + 1})", policy=saturation,
                                              runs=False)  # DC windows: only the stated full scale
                levels.append(float(w @ y))
                t = np.arange(n)
                resid = y - np.polyval(np.polyfit(t, y, 1), t)
                noise_var[k] += np.var(resid) * n / (n - 2) * np.sum(w**2) / (2 * repeats)
                if n >= 64:  # log-log slope of the noise from 3/T up (white: 0)
                    slopes.append(analysis.window_psd(y, fs, [fs / 8]).slope)
                ys.append(y)
            per_repeat[r, k] = (levels[0] - levels[1]) / (2 * step)
    grad = per_repeat.mean(axis=0)
    warnings = []
    reliable = True
    if repeats >= 2:
        stderr = per_repeat.std(axis=0, ddof=1) / np.sqrt(repeats)
    else:
        # Var(level) = sigma^2 sum w^2 per window (white); two windows per derivative.
        stderr = np.sqrt(2 * noise_var) / (2 * step)
        warnings.append("stderr from the noise inside one window pair (white-noise model); drift between "
                        "windows is not in it: pass repeats >= 2 for an observed spread")
        if slopes and np.nanmedian(slopes) < -0.5:
            reliable = False
            warnings.append(f"the output noise is not white (log-log slope {np.nanmedian(slopes):.1f}): "
                            f"stderr is likely low")
    if saturated:
        reliable = False
        warnings.append(f"{saturated} samples were saturated (saturation='count')")
    if not np.all(np.isfinite(grad)):
        raise ValueError(f"{name}: non-finite finite-difference gradient {grad.tolist()}")
    nan = np.full(idx.size, np.nan)
    return GradientResult(gradient=grad, stderr=stderr, bias=applied_bias(bias, n, dac_lsb),
                          X=nan, Y=nan, freqs=nan, electrodes=to_number(idx),
                          amplitudes=np.full(idx.size, step), current=float(np.mean(np.concatenate(ys))),
                          lab_time_s=2 * idx.size * int(repeats) * n / fs, mode="finite-difference",
                          filter=filter, phase="none", saturated_samples=saturated, stderr_reliable=reliable,
                          warnings=warnings)
