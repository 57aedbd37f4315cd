"""Chain calibration: the complex gain ``H(f)`` between an applied perturbation and the sampled output.

A real chain (IV converter, anti-alias filter, delta-sigma ADC, a delay of a
few samples) delays and attenuates each frequency differently. The
phase-calibrated estimator divides each channel's ``X + jY`` by ``H(f_m)``;
without it, ``2X/a`` is biased by ``|H| cos(arg H)`` and the paper's ``2R/a``
by ``|H|``.

Two ways to measure H, chosen by what the device offers. Both are plain
measurements through the demodulation layer (the least-squares tone fit,
``tonefit``, exact for a linear response at any frequency and any window
length), below the gradient code.

``loopback``  the device has ``loopback(volts)``: a known reference resistor (or
              a spare AI channel wired to an AO output) in place of the device.
              A multi-tone on electrode 1 gives gain and phase at every
              frequency in one window.
``phase``     otherwise: perturb the device itself at the caller's bias. Each
              tone's complex amplitude is ``z(f, e) = (a_e dI/dV_e) H(f)`` with
              ``dI/dV_e`` real and of unknown sign. Every frequency is put on
              every perturbed electrode once (``max(F, E)`` windows, each a
              subset of the frequencies on all E electrodes), so ``Z`` is a
              rank-1 matrix ``h g^T`` with ``h`` complex and ``g`` real: its
              leading singular vectors give ``arg H(f)`` at all frequencies up
              to one common sign, with no per-frequency 180-degree ambiguity.
              The phase is unwrapped across the sorted frequencies (a delay is
              linear in f), fitted by ``phi0 - 2 pi f tau``, and the common sign
              is the one that makes ``phi0`` near 0: the chain is assumed to pass
              DC with positive gain (the device reports current with its true
              sign at DC; an inverting IV converter is the device's business).
              A low anchor frequency is added when the plan's band is narrow,
              so that the line is well pinned at f = 0. The gain stays 1: a
              phase-only calibration cannot tell ``|H|`` from ``|dI/dV|``.

The phase method refuses (``ValueError``, saying what to do) when its phase
uncertainty is too large after ``max_windows`` windows, when adjacent
frequencies are too far apart to unwrap, or when the phases are not those of
a smooth chain (a line through ~0 at DC).

Cost on the rig: ``lab_time_s`` of the returned calibration (loopback:
``windows`` windows of T; phase: ``max(F, E)`` windows of T per round, more
rounds while the phase is too uncertain, at most ``max_windows`` windows).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np

from . import _validate as v
from . import analysis, plans
from .devices import check_limits, check_volts, device_name, has_loopback
from .devices import loopback as checked_loopback
from .devices import measure as checked_measure
from .electrodes import to_index
from .saturation import SATURATION, check_saturation
from .tonefit import fit_tones, tone_basis  # noqa: F401  (tone_basis: re-exported for old imports)

LOOPBACK_NA_PER_V = 10.0     # the simulator's reference resistor (100 MOhm)
PHASE_SD_TARGET = 0.05       # rad: stop adding rounds below this (bias of the estimator ~ sd^2 / 2 = 0.13 %)
PHASE_SD_MAX = 0.1           # rad: refuse above this (~0.5 % rms bias of the calibrated estimator)
INTERCEPT_MAX = np.radians(30.0)   # |phi0| of a chain that passes DC with positive gain
SMOOTH_TOL = np.radians(20.0)      # departure from the line a smooth chain may show (curvature)
METHODS = ("auto", "loopback", "phase")


@dataclass
class Calibration:
    freqs: np.ndarray      # Hz, ascending
    response: np.ndarray   # complex chain gain at freqs
    method: str
    phase_sd: np.ndarray | None = None   # rad, 1-sigma uncertainty of arg H per frequency
    lab_time_s: float = 0.0              # time the measurement took on the rig
    delay_s: float | None = None         # phase method: the fitted delay tau (s)
    windows: int = 0
    notes: list = field(default_factory=list)

    def at(self, freqs) -> np.ndarray:
        """H at ``freqs``: linear interpolation of gain and unwrapped phase; no extrapolation."""
        f = np.atleast_1d(np.asarray(freqs, float))
        # Memo per plan (every extract_gradient asks again): keyed on the asked frequencies and on this
        # calibration's own arrays, so a changed calibration is never answered from the memo.
        key = (f.tobytes(), np.asarray(self.freqs).tobytes(), np.asarray(self.response).tobytes())
        memo = self.__dict__.setdefault("_at_memo", {})
        hit = memo.get(key)
        if hit is not None:
            return hit.copy()
        out = self._at(f)
        if len(memo) < 64:
            memo[key] = out.copy()
        return out

    def _at(self, f) -> np.ndarray:
        lo, hi = self.freqs.min(), self.freqs.max()
        if np.any((f < lo - 1e-9) | (f > hi + 1e-9)):
            raise ValueError(f"freqs: calibration covers {lo:g}..{hi:g} Hz, asked for {f.tolist()}")
        if self.freqs.size == 1:
            return np.full(f.size, self.response[0])
        gain = np.interp(f, self.freqs, np.abs(self.response))
        phase = np.interp(f, self.freqs, np.unwrap(np.angle(self.response)))
        return gain * np.exp(1j * phase)

    def to_dict(self) -> dict:
        d = {"freqs": self.freqs.tolist(), "gain": np.abs(self.response).tolist(),
             "phase_rad": np.angle(self.response).tolist(), "method": self.method,
             "lab_time_s": self.lab_time_s}
        if self.phase_sd is not None:
            d["phase_sd_rad"] = np.asarray(self.phase_sd).tolist()
        if self.delay_s is not None:
            d["delay_s"] = self.delay_s
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Calibration":
        for key in ("freqs", "gain", "phase_rad", "method"):
            if key not in d:
                raise ValueError(f"calibration: missing key {key!r}")
        f = np.asarray(d["freqs"], float)
        h = np.asarray(d["gain"], float) * np.exp(1j * np.asarray(d["phase_rad"], float))
        if f.ndim != 1 or h.shape != f.shape or not np.all(np.isfinite(f)) or not np.all(np.isfinite(h)):
            raise ValueError("calibration: freqs, gain and phase_rad must be finite lists of one length")
        order = np.argsort(f)
        sd = d.get("phase_sd_rad")
        return cls(f[order], h[order], str(d["method"]),
                   None if sd is None else np.asarray(sd, float)[order], float(d.get("lab_time_s", 0.0)),
                   d.get("delay_s"))

    def save(self, path) -> None:
        with open(path, "w") as fh:
            json.dump(self.to_dict(), fh, indent=1)

    @classmethod
    def load(cls, path) -> "Calibration":
        with open(path) as fh:
            return cls.from_dict(json.load(fh))


def stamp_calibration_file(path, chain: dict) -> None:
    """Add ``chain`` (what the calibration was measured on) to a saved calibration file under the key
    ``chain``, atomically. ``Calibration.load`` ignores the key; ``hge ... --calibration`` and
    ``NIDAQDevice`` compare it with the chain they run on."""
    from .checkpoint import write_json_atomic
    with open(path) as fh:
        data = json.load(fh)
    data["chain"] = chain
    write_json_atomic(path, data, indent=1)


def default_bias(limits) -> np.ndarray:
    """0 V where the limits contain it, else the middle of the limits (V per electrode)."""
    lim = np.asarray(limits, float)
    return np.where((lim[:, 0] <= 0) & (lim[:, 1] >= 0), 0.0, lim.mean(axis=1))


def anchor_frequency(freqs, fs: float, T: float) -> float | None:
    """A lower frequency that pins the phase line at DC, or None when the band already reaches low.

    Needed when the band is narrow (lowest above half the highest): there a
    line fitted through the plan alone extrapolates to DC with an error of
    ~sd * f_mean / span. The anchor (~0.6 f_min, on the 1/T grid) keeps its
    2nd-order products off every tone and every tone's products off it.
    """
    f = np.asarray(freqs, float)
    if f.min() <= 0.5 * f.max():
        return None
    step = 1.0 / T
    p2 = plans.products(f, 2) if f.size > 1 else np.array([2 * f[0]])
    for frac in (0.6, 0.55, 0.65, 0.5, 0.7, 0.45):
        a = max(step, np.round(frac * f.min() / step) * step)
        if a >= f.min() or a >= fs / 2:
            continue
        own = np.concatenate([[2 * a], a + f, np.abs(a - f)])
        if np.min(np.abs(p2 - a)) >= step - 1e-9 and np.min(np.abs(own[:, None] - f[None, :])) >= step - 1e-9:
            return float(a)
    return float(max(step, np.round(0.6 * f.min() / step) * step))


def _assignments(F: int, E: int) -> list:
    """Windows of the phase method: for each, ``(slot, frequency index)`` pairs, every pair exactly once.

    F <= E: E windows, frequency i on slot (i + k) mod E. F > E: F windows,
    slot j on frequency (k + j s) mod F with stride s = F // E, which keeps
    the E frequencies of a window distinct and spread over the band.
    """
    if F <= E:
        return [[((i + k) % E, i) for i in range(F)] for k in range(E)]
    s = F // E
    return [[(j, (k + j * s) % F) for j in range(E)] for k in range(F)]


def calibrate(device, freqs, *, T: float = 0.1, amplitude=None, bias=None, electrodes=None,
              windows: int = 4, max_windows: int = 64, method: str = "auto", saturation: str = "raise",
              rng=None) -> Calibration:
    """Measure the chain's complex gain at ``freqs`` (Hz). See the module docstring.

    Parameters
    ----------
    device : Device
    freqs : (F,) array, Hz
    T : float, s
        Window length.
    amplitude : float or (E,) array, V, optional
        Perturbation amplitude (per perturbed electrode for the phase method).
        Default: 0.05 V (loopback, a resistor), 0.008 V (phase: the device).
    bias : (n_electrodes,) array, V, optional
        Where the phase method perturbs the device (and the DC of the loopback
        window). Default: 0 V where the limits allow it, else their middle.
    electrodes : list of int, optional
        Electrodes the phase method perturbs (numbered from 1); default all.
    windows : int
        Loopback: windows averaged.
    max_windows : int
        Phase method: most windows spent before refusing as too noisy.
    method : {"auto", "loopback", "phase"}
        ``auto``: loopback when the device has one.
    saturation : {"raise", "count"}
        What a clipped calibration window does (see ``saturation``).
    rng : ignored (the design is deterministic: no random biases); kept for API stability.

    Returns
    -------
    Calibration
        With ``phase_sd`` (rad per frequency), ``lab_time_s`` and, for the
        phase method, ``delay_s``.

    Raises
    ------
    ValueError
        Bad arguments (before anything is applied), a measurement that does
        not check out, or a phase calibration that cannot be trusted (the
        message says what to do instead).
    """
    v.choice("method", method, METHODS)
    v.choice("saturation", saturation, SATURATION)
    f = np.sort(v.float_array("freqs", np.atleast_1d(freqs), ndim=1))
    v.positive("T", T)
    v.positive("windows", windows, integer=True)
    v.positive("max_windows", max_windows, integer=True)
    fs = float(device.fs)
    if f.size == 0 or np.any((f <= 0) | (f >= fs / 2)):
        raise ValueError(f"freqs must be a non-empty list in (0, fs/2 = {fs / 2:g}) Hz, got {f.tolist()}")
    if np.any(np.diff(f) <= 0):
        raise ValueError(f"freqs must be distinct, got {f.tolist()}")
    lim = check_limits(device.limits, int(device.n_electrodes), name=f"{device_name(device)}.limits")
    n = int(round(T * fs))
    if n < 8:
        raise ValueError(f"T = {T} s gives {n} samples at fs = {fs:g} Hz; a calibration window needs at least 8")
    b = default_bias(lim) if bias is None else v.float_array("bias", bias, ndim=1)
    if b.size != lim.shape[0]:
        raise ValueError(f"bias must have {lim.shape[0]} voltages, got {b.size}")
    loop = has_loopback(device)
    if method == "loopback" and not loop:
        raise ValueError(f"method='loopback': {device_name(device)} has no loopback(volts)")
    from .gradient import check_amplitudes  # (gradient imports this module)
    dac_lsb = getattr(device, "dac_lsb", None)
    if loop and method != "phase":
        a = 0.05 if amplitude is None else float(v.positive("amplitude", amplitude))
        # A tone of a few DAC codes is mostly quantisation: its gains come out far from the chain's.
        check_amplitudes(a, dac_lsb, name="amplitude")
        return _loopback(device, f, n, b, a, int(windows), saturation)
    idx = to_index(electrodes, lim.shape[0])
    amps = np.broadcast_to(v.float_array("amplitude", 0.008 if amplitude is None else amplitude),
                           (idx.size,)).astype(float)
    if np.any(amps <= 0):
        raise ValueError(f"amplitude must be > 0 V, got {amps.tolist()}")
    check_amplitudes(amps, dac_lsb, name="amplitude")
    return _phase(device, f, n, b, idx, amps, int(max_windows), saturation)


def _window_noise(y, fs, freqs, T):
    """Per-component variance of the tone fit's complex amplitude at ``freqs``: ``S(f) / T``."""
    return analysis.residual_psd(y, fs, freqs)(freqs) / T


def _loopback(device, f, n, bias, a_total, windows, saturation) -> Calibration:
    fs = float(device.fs)
    t = np.arange(n) / fs
    a = a_total / max(1, f.size) ** 0.5
    volts = np.repeat(bias[:, None], n, axis=1)
    volts[0] += a * np.sin(2 * np.pi * np.outer(f, t)).sum(axis=0)
    try:
        check_volts(volts, device.limits)
    except ValueError as e:  # the loopback is wired to electrode 1, whatever electrodes the gradient perturbs
        peak = float(np.max(np.abs(volts[0] - bias[0])))
        raise ValueError(f"the loopback calibration drives electrode 1 (the loopback's AO) with a multi-tone of "
                         f"{f.size} frequencies peaking at {peak:.3g} V around its bias {bias[0]:.3g} V, which leaves "
                         f"its limits {np.asarray(device.limits)[0].tolist()} V: move electrode 1's bias inward, lower "
                         f"the calibration amplitude, or calibrate with method='phase' ({e})") from None
    acc = np.zeros(f.size, complex)
    var = np.zeros(f.size)
    for k in range(windows):
        y = checked_loopback(device, volts)
        check_saturation(y, getattr(device, "full_scale", None), what=f"loopback calibration window {k + 1}",
                         policy=saturation)
        acc += fit_tones(y, fs, f)
        var += _window_noise(y, fs, f, n / fs)
    z = acc / windows
    sd = np.sqrt(var / windows / windows) / np.maximum(np.abs(z), 1e-300)
    return Calibration(f, z / (a * LOOPBACK_NA_PER_V), "loopback", phase_sd=sd, lab_time_s=windows * n / fs,
                       windows=windows)


def _refuse(device, what: str) -> ValueError:
    return ValueError(f"phase calibration of {device_name(device)}: {what}. Wire a loopback (device.loopback), "
                      f"raise the amplitude, calibrate at a bias where the output responds more strongly, pass "
                      f"phase='inphase' (no calibration: reads g Re H), or load a calibration file "
                      f"(Calibration.load, calibration=...)")


def _phase(device, f_plan, n, bias, idx, amps, max_windows, saturation) -> Calibration:
    fs = float(device.fs)
    T = n / fs
    anchor = anchor_frequency(f_plan, fs, T)
    f = np.sort(np.append(f_plan, anchor)) if anchor is not None else f_plan
    F, E = f.size, idx.size
    plan = _assignments(F, E)
    t = np.arange(n) / fs
    sin = np.sin(2 * np.pi * np.outer(f, t))
    # Build and gate every window of a round before the first sample is applied.
    rounds_volts = []
    for pairs in plan:
        volts = np.repeat(bias[:, None], n, axis=1)
        for slot, i in pairs:
            volts[idx[slot]] += amps[slot] * sin[i]
        check_volts(volts, device.limits)
        rounds_volts.append(volts)
    full_scale = getattr(device, "full_scale", None)
    Z = np.zeros((F, E), complex)
    var = np.zeros((F, E))
    rounds, used = 0, 0
    while True:
        for k, (pairs, volts) in enumerate(zip(plan, rounds_volts)):
            y = checked_measure(device, volts)
            used += 1
            check_saturation(y, full_scale, what=f"phase calibration window {used}", policy=saturation)
            wf = np.array([f[i] for _, i in pairs])
            z = fit_tones(y, fs, wf)
            s2 = _window_noise(y, fs, wf, T)
            for (slot, i), zi, si in zip(pairs, z, s2):
                Z[i, slot] += zi
                var[i, slot] += si
        rounds += 1
        Zm, sig2 = Z / rounds, var / rounds**2   # mean and its per-component variance
        sd_f = np.sqrt(sig2.mean(axis=1))
        # Rank 1: Z = h g^T, h complex, g real. Rows weighted by their noise.
        Zw = Zm / sd_f[:, None]
        _, _, vt = np.linalg.svd(np.vstack([Zw.real, Zw.imag]), full_matrices=False)
        g = vt[0]
        h = Zm @ g
        phase_sd = sd_f / np.maximum(np.abs(h), 1e-300)
        if np.max(phase_sd) <= PHASE_SD_TARGET or used + len(plan) > max_windows:
            break
    lab = used * T
    if np.max(phase_sd) > PHASE_SD_MAX:
        worst = int(np.argmax(phase_sd))
        raise _refuse(device, f"the phase at {f[worst]:g} Hz is uncertain by {np.degrees(phase_sd[worst]):.1f} deg "
                      f"after {used} windows ({lab:g} s on the rig; at most {np.degrees(PHASE_SD_MAX):.1f} deg is "
                      f"accepted: the output barely responds to the perturbation at this bias)")
    theta = np.angle(h)
    steps = np.angle(np.exp(1j * np.diff(theta)))
    step_sd = np.sqrt(phase_sd[1:] ** 2 + phase_sd[:-1] ** 2)
    unsure = np.abs(steps) + 3 * step_sd >= np.pi
    if unsure.any():
        k = int(np.argmax(unsure))
        raise _refuse(device, f"the phase moves by {np.degrees(steps[k]):.0f} deg between {f[k]:g} and {f[k + 1]:g} Hz, "
                      f"too close to 180 deg to unwrap (a lag this long needs frequencies closer together)")
    unwrapped = theta[0] + np.concatenate([[0.0], np.cumsum(steps)])
    w = 1.0 / phase_sd**2
    A = np.column_stack([np.ones(F), f])
    cov = np.linalg.inv(A.T @ (A * w[:, None]))
    phi0, slope = cov @ (A.T @ (w * unwrapped))
    # The common sign of h is free (g absorbs it): pick the branch whose line passes DC near 0.
    target = np.angle(np.exp(1j * phi0))
    if abs(target) > np.pi / 2:
        target = np.angle(np.exp(1j * (target + np.pi)))
    shift = target - phi0          # a multiple of pi
    unwrapped = unwrapped + shift
    phi0 = target
    phi0_sd = float(np.sqrt(cov[0, 0]))
    if abs(phi0) > INTERCEPT_MAX + 3 * phi0_sd:
        raise _refuse(device, f"the phase line meets DC at {np.degrees(phi0):.0f} +- {np.degrees(phi0_sd):.0f} deg, "
                      f"not near 0: the chain does not look like a delay plus smooth filters passing DC")
    resid = unwrapped - (phi0 + slope * f)
    off = np.abs(resid) > np.maximum(SMOOTH_TOL, 4 * phase_sd)
    if off.any():
        k = int(np.argmax(np.abs(resid)))
        raise _refuse(device, f"the phase at {f[k]:g} Hz is {np.degrees(resid[k]):.0f} deg off the line through the "
                      f"others: not a smooth chain")
    cal = Calibration(f, np.exp(1j * unwrapped), "phase", phase_sd=phase_sd, lab_time_s=lab,
                      delay_s=float(-slope / (2 * np.pi)), windows=used)
    if anchor is not None:
        cal.notes.append(f"anchor frequency {anchor:g} Hz added to pin the phase line at DC")
    return cal
