"""Error model of homodyne gradient extraction, after the paper's Eqs. 4-8, derived here.

Notation: window T (n = T fs samples), perturbation amplitude a (V), one-sided
output noise density S(f) (nA^2/Hz), lock-in weights ``w_k`` (the filter's
impulse response read at the window's end, normalised to unit DC gain at T;
integrate-and-dump: 1/n).

* ENBW (Eq. 4): ``fs sum w_k^2 / 2`` (one-sided). White noise gives X and Y
  each a variance ``S ENBW / 2``.
* Noise power (Eq. 5): ``Var(dI/dV) = 4 Var(X) / (a |H|)^2 = 2 S ENBW / (a |H|)^2``.
  Integrate-and-dump has ENBW = 1 / (2T), the matched-filter minimum:
  ``S / (a^2 T)``, the white-noise bound.
* 2f leak (Eq. 6): the mixer's ``-(A/2) cos(2 w t + psi)`` passes the window's
  filter with gain ``L(2f) = |sum_k w_k e^{-j 2 pi 2f k / fs}|``: an error up
  to ``dI/dV L(2f)`` (rms over psi: divided by sqrt 2).
* Neighbour perturbation (Eq. 7): channel n's component, ``A_n / 2`` after
  mixing, sits at ``|f_n - f_m|`` and leaks with ``L(f_n - f_m)``; in units
  of channel m's derivative: ``(a_n / a_m) dI/dV_n L(df)``. Exactly 0 for
  integrate-and-dump on the 1/T grid; ~(fc/df)^3 for the Butterworth far
  from DC, more near it (onset transient: the component starts at t = 0).
* MSE (Eq. 8): sequential = noise + 2f; parallel = sequential + the sum of
  the squared neighbour terms (each averaged over phase: / 2).

Other terms, each quantified by a function below:
``settling_gain`` (the Butterworth's step response at T, ~1.02, divided out
by ``demodulate``), ``dc_leak`` (the output's DC level mixed with the
reference; ``demodulate`` removes the window mean first), ``amplitude_bias``
(``a^2 I''' / 8`` from the cubic term of the response), and device
harmonics (kept out of the pass bands by ``plans``).
"""
from __future__ import annotations

import functools

import numpy as np

from . import design
from .tonefit import fit_tones

EULER_GAMMA = 0.5772156649015329


def lockin_weights(fs: float, T: float, filter: str, n: int | None = None,  # noqa: A002
                   quantized: bool = False) -> np.ndarray:
    """Weights ``w_k`` of a lock-in read at the window's end (``design.lockin_weights``)."""
    return design.lockin_weights(fs, T, filter, n, quantized)


def demod_matrix(freqs, fs: float, weights: np.ndarray) -> np.ndarray:
    """G (2M x 2M) with ``[X; Y] = G [alpha; beta]`` for an input ``sum_n alpha_n sin + beta_n cos``.

    Every tone contributes to every channel through the window's weights
    (neighbour leakage, the 2f term and the onset transient are all in G).
    Tones and references start at phase 0 at sample 0; the window mean is
    removed first (as ``demodulate`` does), so the basis is mean-free.
    Ideal lock-in: ``G = I / 2``.
    """
    f = np.asarray(freqs, float)
    k = np.arange(weights.size)
    arg = 2 * np.pi * np.outer(f, k) / fs
    s, c = np.sin(arg), np.cos(arg)
    s0, c0 = s - s.mean(axis=1, keepdims=True), c - c.mean(axis=1, keepdims=True)
    ws, wc = s * weights, c * weights          # reference rows (sin -> X, cos -> Y)
    return np.block([[ws @ s0.T, ws @ c0.T], [wc @ s0.T, wc @ c0.T]])


@functools.lru_cache(maxsize=256)
def crosstalk_inverse(freqs: tuple, fs: float, T: float, filter: str, n: int, quantized: bool) -> np.ndarray:  # noqa: A002
    """Inverse of ``demod_matrix`` for a window configuration (cached: every window of a run shares it)."""
    G_inv = np.linalg.inv(demod_matrix(freqs, fs, lockin_weights(fs, T, filter, n, quantized)))
    G_inv.flags.writeable = False
    return G_inv


def solve_crosstalk(X, Y, freqs, fs: float, weights: np.ndarray, G_inv: np.ndarray | None = None):
    """Undo the linear leakage between channels: returns the corrected ``(X, Y)``.

    Exact for a linear response (whatever the spacing); device harmonics and
    intermodulation are not in the basis and stay a matter for the plan.
    ``G_inv``: the inverse of ``demod_matrix``, when the caller keeps it.
    """
    m = len(freqs)
    if G_inv is None:
        G_inv = np.linalg.inv(demod_matrix(freqs, fs, weights))
    ab = G_inv @ np.concatenate([X, Y])
    return ab[:m] / 2.0, ab[m:] / 2.0


@functools.lru_cache(maxsize=256)
def lockin_noise_cov(freqs: tuple, fs: float, T: float, filter: str, n: int, quantized: bool,  # noqa: A002
                     solve: bool) -> np.ndarray:
    """Covariance (2M x 2M) of ``[X; Y]`` for white input noise of unit one-sided density (1 nA^2/Hz).

    ``X_m = sum_k w_k sin(w_m k) (x_k - mean x)``: the mixing rows less their
    mean, times the per-sample variance ``fs / 2``. With ``solve`` the
    crosstalk solve's inverse is applied (``G^-1 C G^-T / 4``, as
    ``solve_crosstalk`` does): its noise gain, which grows as channels crowd.
    Without it the diagonal is ``ENBW / 2`` (Eq. 4).
    """
    w = lockin_weights(fs, T, filter, n, quantized)
    f = np.asarray(freqs, float)
    arg = 2 * np.pi * np.outer(f, np.arange(w.size)) / fs
    R = np.vstack([w * np.sin(arg), w * np.cos(arg)])
    R -= R.mean(axis=1, keepdims=True)
    C = (fs / 2.0) * (R @ R.T)
    if solve:
        G_inv = crosstalk_inverse(tuple(f), fs, T, filter, n, quantized)
        C = G_inv @ C @ G_inv.T / 4.0
    C.flags.writeable = False
    return C


@functools.lru_cache(maxsize=64)
def lockin_noise_spectra(freqs: tuple, fs: float, T: float, filter: str, n: int, quantized: bool,  # noqa: A002
                         solve: bool, pad_factor: int = 16):
    """Spectral weights of each channel's noise: ``Var(c X_m + s Y_m) = sum_f S(f) K_m(f)``.

    Returns ``(f, KXX, KYY, KXY)``, ``f`` the positive bins of a ``pad_factor n``
    FFT and each ``K`` of shape (M, bins), already times the bin width, so that
    for a one-sided PSD ``S`` (nA^2/Hz) ``K_m = c^2 KXX + s^2 KYY + 2 c s KXY``
    (the mixing rows less their mean, through the crosstalk solve when
    ``solve``; Parseval: for white S it sums to ``lockin_noise_cov``). Unlike
    ``S(f_m) * ENBW`` this counts noise leaking through the window's side
    lobes, which dominates integrate-and-dump under spectra of 1/f^2 and steeper.
    """
    w = lockin_weights(fs, T, filter, n, quantized)
    f = np.asarray(freqs, float)
    m = f.size
    arg = 2 * np.pi * np.outer(f, np.arange(w.size)) / fs
    R = np.vstack([w * np.sin(arg), w * np.cos(arg)])
    R -= R.mean(axis=1, keepdims=True)
    if solve:
        R = crosstalk_inverse(tuple(f), fs, T, filter, n, quantized) @ R / 2.0
    pad = pad_factor * w.size
    U = np.fft.rfft(R, pad, axis=1)[:, 1:]
    df = fs / pad
    fb = np.fft.rfftfreq(pad, 1.0 / fs)[1:].copy()   # owns its data: read-only all the way (the _log memo)
    out = (fb, np.abs(U[:m]) ** 2 * df, np.abs(U[m:]) ** 2 * df, (U[:m] * np.conj(U[m:])).real * df)
    for a in out:
        a.flags.writeable = False
    return out


def window_psd(samples, fs: float, freqs, *, guard_bins: int = 3):
    """Noise density of one window over the whole band: ``S(f)`` (callable, nA^2/Hz, one-sided).

    Two power laws fitted to the residual's Hann periodogram (tones, DC and
    slope removed; bins near tones left out; Euler's gamma added back to the
    log-periodogram): below the plan (3/T .. 0.9 f_min, where side-lobe
    leakage comes from) and around it (``residual_psd``). ``S.slope`` is the
    low band's log-log slope (NaN if it had fewer than 8 bins; then the plan
    band's law is used everywhere).
    """
    y = np.asarray(samples, float)
    n = y.size
    f = np.atleast_1d(np.asarray(freqs, float))
    P, fb = _residual_periodogram(y, fs, f)
    near = residual_psd(y, fs, f, guard_bins=guard_bins, _periodogram=(P, fb))
    edge = 0.9 * f.min()
    sel, x = _low_band(n, float(fs), tuple(f.tolist()), guard_bins)
    if sel.sum() < 8:
        def S(fq):
            return near(fq)
        S.slope = float("nan")
        return S
    (slope, icpt), cov = line_fit(x, np.log(np.maximum(P[sel], 1e-300)), cov=True)
    icpt += EULER_GAMMA

    def S(fq):
        fq = np.asarray(fq, float)
        shape, fq = fq.shape, (fq if fq.ndim == 1 else fq.reshape(-1))   # the same object: _log's memo
        below = fq <= edge
        out = np.asarray(near(fq))   # each law only where it applies (stderr: S at ~8000 bins per window)
        lf = np.log(np.maximum(fq[below], 1e-12))
        # Extrapolated below 3/T the fitted log-density is uncertain (var_l); exp() of it is biased up
        # by exp(var_l / 2) on average, which would inflate stderr under steep spectra: take it out.
        var_l = cov[0, 0] * lf**2 + 2 * cov[0, 1] * lf + cov[1, 1]
        out[below] = np.exp(icpt + slope * lf - var_l / 2)
        return out.reshape(shape)
    S.slope = float(slope)
    return S


def line_fit(x, y, cov: bool = False):
    """Least-squares line ``y ~ slope x + icpt`` -> ``(slope, icpt)``, and with ``cov`` its 2x2
    covariance as ``np.polyfit(x, y, 1, cov=True)`` gives it (residual variance over n - 2).

    The same fit as ``np.polyfit`` in closed form on centred x (its SVD costs ~0.2 ms per call,
    twice per window's stderr); equal to round-off (tested against it).
    """
    x, y = np.asarray(x, float), np.asarray(y, float)
    n = x.size
    xm, ym = x.mean(), y.mean()
    dx = x - xm
    sxx = dx @ dx
    slope = (dx @ (y - ym)) / sxx
    icpt = ym - slope * xm
    if not cov:
        return slope, icpt
    r = y - (slope * x + icpt)
    fac = (r @ r) / (n - 2)
    c = np.array([[fac / sxx, -fac * xm / sxx], [-fac * xm / sxx, fac * (1.0 / n + xm * xm / sxx)]])
    return (slope, icpt), c


def lockin_enbw(fs: float, T: float, filter: str) -> float:  # noqa: A002
    """One-sided ENBW (Hz) of the lock-in over one window (Eq. 4)."""
    w = lockin_weights(fs, T, filter)
    return float(fs * np.sum(w**2) / 2.0)


def leak_gain(df, fs: float, T: float, filter: str) -> np.ndarray:  # noqa: A002
    """``L(df)``: worst-case gain of the window's lock-in for a component ``df`` Hz from the reference."""
    w = lockin_weights(fs, T, filter)
    k = np.arange(w.size)
    df = np.atleast_1d(np.asarray(df, float))
    return np.abs(np.exp(-2j * np.pi * np.outer(df, k) / fs) @ w)


def settling_gain(fs: float, T: float) -> float:
    """The Butterworth's step response at T (~1.02), which ``demodulate`` divides out."""
    return design.lockin_filter(float(fs), float(T)).gain_float


def white_noise_bound(S: float, a: float, T: float) -> float:
    """Smallest variance of dI/dV from a window T in white noise: ``S / (a^2 T)`` (nA^2/V^2)."""
    return S / (a**2 * T)


def hge_variance(S, a, fs: float, T: float, filter: str, gain=1.0):  # noqa: A002
    """Noise variance of one HGE derivative (Eq. 5), nA^2/V^2."""
    return 2.0 * np.asarray(S) * lockin_enbw(fs, T, filter) / (np.asarray(a) * np.abs(gain)) ** 2


def hge_variance_psd(psd, a, freqs, fs: float, T: float, filter: str, pad: int = 1 << 18):  # noqa: A002
    """Noise variance of each HGE derivative for coloured noise of one-sided PSD ``psd(f)`` (nA^2/Hz).

    Exact for stationary Gaussian noise: ``X = sum_k v_k x_k`` with the mixing
    weights ``v_k = w_k sin(w_m k)`` less their mean (the window mean is removed
    before mixing), so ``Var X = integral P(f) |V(f)|^2 df`` over the two-sided
    PSD ``P = S / 2``. Unlike ``hge_variance`` (``S(f_m)`` times the ENBW) it
    includes noise leaking through the window's side lobes, which matters for
    integrate-and-dump under 1/f noise (+10-20 % at T = 0.1 s).
    """
    w = lockin_weights(fs, T, filter)
    k = np.arange(w.size)
    f = np.fft.rfftfreq(pad, 1.0 / fs)[1:]
    S = np.asarray(psd(f), float)
    out = []
    for fm in np.atleast_1d(freqs):
        v = w * np.sin(2 * np.pi * fm * k / fs)
        # Removing the window mean from x before mixing: sum_k v_k (x_k - mean x)
        # = sum_k (v_k - sum(v) / n) x_k.
        v = v - v.sum() / v.size
        V2 = np.abs(np.fft.rfft(v, pad)[1:]) ** 2
        # Var X = integral over -fs/2..fs/2 of (S/2) |V|^2 df = sum over f > 0 of S |V|^2 df.
        var_x = np.sum(S * V2) * (fs / pad)
        out.append(4 * var_x / np.asarray(a, float) ** 2)
    return np.array(out)


def two_f_error(grad, f, fs: float, T: float, filter: str):  # noqa: A002
    """Worst-case error (nA/V) of the mixer's 2f term (Eq. 6)."""
    return np.abs(grad) * leak_gain(2 * np.asarray(f, float), fs, T, filter)


def neighbour_error(grads, amps, freqs, m: int, fs: float, T: float, filter: str):  # noqa: A002
    """Worst-case error (nA/V) in channel m from every other channel (Eq. 7)."""
    grads, amps, freqs = (np.asarray(x, float) for x in (grads, amps, freqs))
    others = np.arange(freqs.size) != m
    lg = leak_gain(freqs[others] - freqs[m], fs, T, filter)
    return float(np.sum(amps[others] / amps[m] * np.abs(grads[others]) * lg))


def mse_sequential(S, a, grad, f, fs: float, T: float, filter: str):  # noqa: A002
    """Eq. 8, sequential: noise variance plus the phase-averaged 2f term."""
    return hge_variance(S, a, fs, T, filter) + two_f_error(grad, f, fs, T, filter) ** 2 / 2


def mse_parallel(spacing, S, a, grad, f, fs: float, T: float, filter: str, ratio: float = 1.0,  # noqa: A002
                 neighbours: int = 2):
    """Eq. 8, parallel: the channel at ``f`` with ``neighbours`` channels at +-k spacing
    whose derivatives are ``ratio`` times its own (the paper's Fig. 3b: ratio 2.05)."""
    spacing = np.atleast_1d(np.asarray(spacing, float))
    seq = float(np.squeeze(mse_sequential(S, a, grad, f, fs, T, filter)))  # one channel: a scalar
    out = np.empty(spacing.size)
    for i, sp in enumerate(spacing):
        offsets = np.array([(k // 2 + 1) * sp * (1 if k % 2 == 0 else -1) for k in range(neighbours)])
        leak = np.sum((ratio * abs(grad) * leak_gain(offsets, fs, T, filter)) ** 2) / 2
        out[i] = seq + leak
    return out


def dc_leak(current, a, f, fs: float, T: float, filter: str):  # noqa: A002
    """Error (nA/V) if the output's DC level is *not* removed before mixing: ``2 I0 L(f) / a``."""
    return 2.0 * np.abs(current) * leak_gain(f, fs, T, filter) / a


def amplitude_bias(third_derivative, a):
    """Bias (nA/V) of the first harmonic from the cubic term: ``a^2 I''' / 8``."""
    return np.asarray(a) ** 2 * np.asarray(third_derivative) / 8.0


def _residual_periodogram(y, fs: float, tones):
    """Hann periodogram (one-sided, nA^2/Hz) of what the tone fit (``tones``, DC, slope) leaves, and its bins."""
    n = y.size
    _, r = fit_tones(y, fs, tones, residual=True)  # tones, DC and slope removed
    w, wsum, fb = _hann_plan(n, float(fs))
    P = 2.0 * np.abs(np.fft.rfft(r * w)) ** 2 / (fs * wsum)
    return P, fb


def _plan_band_of(fb, fs, n, f, tones, guard_bins):
    """residual_psd's fit band: bins in 0.6 f_min .. min(1.4 f_max, 0.49 fs) clear of the tones
    (else the whole band), and the log of their frequencies."""
    lo, hi = 0.6 * f.min(), min(1.4 * f.max(), 0.49 * fs)
    sel = (fb >= lo) & (fb <= hi) & (fb > 0)
    for ft in tones:
        sel &= np.abs(fb - ft) > guard_bins * fs / n
    if sel.sum() < 4:
        sel = (fb > 0) & (fb < 0.49 * fs)
    return sel, np.log(fb[sel])


@functools.lru_cache(maxsize=64)
def _plan_band(n: int, fs: float, f: tuple, tones: tuple, guard_bins: int):
    """``_plan_band_of`` on the rfft bins of ``n`` samples, made once per plan (read-only)."""
    out = _plan_band_of(_hann_plan(n, fs)[2], fs, n, np.array(f), np.array(tones), guard_bins)
    for a in out:
        a.flags.writeable = False
    return out


@functools.lru_cache(maxsize=64)
def _low_band(n: int, fs: float, f: tuple, guard_bins: int):
    """window_psd's low band: bins in 3/T .. 0.9 f_min clear of the tones, and the log of their
    frequencies; made once per plan (read-only)."""
    fb = _hann_plan(n, fs)[2]
    sel = (fb >= 3 * fs / n) & (fb <= 0.9 * min(f))
    for ft in f:
        sel &= np.abs(fb - ft) > guard_bins * fs / n
    x = np.log(fb[sel])
    sel.flags.writeable = x.flags.writeable = False
    return sel, x


_LOGS: dict = {}


def _frozen(a) -> bool:
    """No one can change ``a``'s values: it and every array it views are read-only (a read-only
    view of a writeable array still changes with it)."""
    while a is not None:
        if not isinstance(a, np.ndarray) or a.flags.writeable:
            return False
        a = a.base
    return True


def _log(fq) -> np.ndarray:
    """``np.log(fq)``; for a read-only array seen before (the stderr's ~8000 spectral bins, asked
    for every window), the log computed the first time (the same numbers)."""
    if isinstance(fq, np.ndarray) and fq.dtype == np.float64 and _frozen(fq):
        hit = _LOGS.get(id(fq))
        if hit is not None and hit[0] is fq:
            return hit[1]
        out = np.log(fq)
        out.flags.writeable = False
        if len(_LOGS) >= 32:
            _LOGS.clear()
        _LOGS[id(fq)] = (fq, out)   # holds fq: its id cannot be reused while the entry lives
        return out
    return np.log(np.asarray(fq, float))


@functools.lru_cache(maxsize=64)
def _hann_plan(n: int, fs: float):
    """The Hann window of ``n`` samples, ``sum(w**2)`` and the rfft bins (Hz): made once per length
    (the same arrays and sum as computed per window before; read-only)."""
    w = np.hanning(n)
    fb = np.fft.rfftfreq(n, 1.0 / fs)
    w.flags.writeable = fb.flags.writeable = False
    return w, np.sum(w**2), fb


def residual_psd(samples, fs: float, freqs, *, amplitude_freqs=None, guard_bins: int = 3, _periodogram=None):
    """Noise density near the plan's band, from one window: returns ``S(f)`` (callable, nA^2/Hz).

    The tones (and DC and slope) are fitted and removed by least squares; the
    residual's Hann-windowed periodogram, with bins within ``guard_bins`` of
    any tone left out, is fitted by a power law ``log S = c + s log f`` over
    0.6..1.4 times the plan's span (the log-periodogram's bias, Euler's gamma,
    added back). Works for white (s = 0) and 1/f^beta noise.
    """
    y = np.asarray(samples, float)
    n = y.size
    tones = np.atleast_1d(np.asarray(freqs if amplitude_freqs is None else amplitude_freqs, float))
    # ``_periodogram``: window_psd's, for the same tones (computed once there).
    P, fb = _residual_periodogram(y, fs, tones) if _periodogram is None else _periodogram
    f = np.atleast_1d(np.asarray(freqs, float))
    if fb.size == n // 2 + 1 and fb is _hann_plan(n, float(fs))[2]:   # the usual case: masks made once
        sel, lf = _plan_band(n, float(fs), tuple(f.tolist()), tuple(tones.tolist()), guard_bins)
    else:
        sel, lf = _plan_band_of(fb, fs, n, f, tones, guard_bins)
    lp = np.log(np.maximum(P[sel], 1e-300))
    slope, icpt = line_fit(lf, lp) if sel.sum() >= 8 else (0.0, np.mean(lp))
    icpt += EULER_GAMMA

    def S(fq):
        return np.exp(icpt + slope * _log(fq))
    S.slope = float(slope)  # log-log slope of the fit: 0 white, -1.5 the paper's 1/f^1.5
    return S


def cubic_bias(true_gradient, bias, amplitudes, h: float = 2e-3) -> np.ndarray:
    """Third-order bias (nA/V) of a parallel HGE window on a device with known ``true_gradient``.

    The first harmonic at f_m of ``I(V + sum_n a_n sin(w_n t))`` is
    ``a_m [dI/dV_m + (a_m^2 / 8) d^3I/dV_m^3 + sum_{n != m} (a_n^2 / 4) d^3I/dV_m dV_n^2]``
    (the self term is the paper's ``a^2 I''' / 8``; the cross terms come from
    ``f_m + f_n - f_n`` landing exactly on f_m, which no plan can avoid).
    Second derivatives of the gradient by central differences of step ``h``.
    ``amplitudes``: (n_electrodes,) with 0 for unperturbed electrodes.
    """
    b = np.asarray(bias, float)
    a = np.asarray(amplitudes, float)
    g0 = true_gradient(b)
    out = np.zeros_like(b)
    for n in np.nonzero(a)[0]:
        e = np.zeros_like(b)
        e[n] = h
        d2 = (true_gradient(b + e) - 2 * g0 + true_gradient(b - e)) / h**2
        weight = np.full_like(b, a[n] ** 2 / 4)
        weight[n] = a[n] ** 2 / 8
        out += weight * d2
    return out


class WindowPsdPlan:
    """``window_psd`` for every window of one plan, its per-plan work done once (the HGE read's stderr).

    ``fit(y)`` returns what ``window_psd(y, fs, freqs, guard_bins=...)`` computes -- the two
    power laws (near the plan and below it, with the low fit's covariance) -- as numbers, and
    ``at_bins(fit)`` evaluates that ``S`` at the bins it was made for (``bins``, read-only), the
    same numbers as ``window_psd(...)(bins)`` bit for bit (tested): the same operations on the
    same arrays, with everything that depends only on the plan made once here -- the tone
    basis, the Hann window and its sum, both fit bands with their centred log-frequencies
    (``line_fit``'s mean, deviations and sum of squares), the split of ``bins`` at the low
    band's edge with the logs and squared logs of the bins below it.
    """

    def __init__(self, n: int, fs: float, freqs, bins, guard_bins: int = 3):
        self.n, self.fs = int(n), float(fs)
        f = np.atleast_1d(np.asarray(freqs, float))
        self.tones = tuple(float(x) for x in f)
        self.A, self.pinv = _tone_basis(self.fs, self.tones, self.n)
        self._rfft = _cached_rfft()
        self.hann, wsum, fb = _hann_plan(self.n, self.fs)
        self.denominator = self.fs * wsum
        self.near_sel, lf = _plan_band(self.n, self.fs, tuple(f.tolist()), tuple(f.tolist()), guard_bins)
        self.near = _centred(lf) if int(self.near_sel.sum()) >= 8 else None
        self.edge = 0.9 * f.min()
        sel, x = _low_band(self.n, self.fs, tuple(f.tolist()), guard_bins)
        self.low_sel = sel
        self.low = _centred(x) if int(sel.sum()) >= 8 else None
        self.bins = bins
        self.log_bins = _log(bins)
        below = bins <= self.edge
        self.below = below if below.any() else None
        lb = np.log(np.maximum(bins[below], 1e-12))
        self.lf_below, self.lf2_below = lb, lb**2
        # The usual bins (ascending) have the low band as a prefix: at_bins then takes the near law's
        # exp() of the bins above it only (the ones below are overwritten; ~10 % of the stderr's exp
        # calls) -- element by element the same operations, so the same numbers.
        k = int(below.sum())
        self._split = k if (self.below is not None and bool(below[:k].all())) else None
        self._log_above = self.log_bins[k:] if self._split is not None else None

    def periodogram(self, y) -> np.ndarray:
        """``_residual_periodogram`` (tones, DC and slope fitted and removed; Hann; one-sided)."""
        coef = y @ self.pinv.T
        r = y - coef @ self.A.T
        return 2.0 * np.abs(self._rfft(r * self.hann)) ** 2 / self.denominator

    def fit(self, y):
        """The two laws of ``window_psd(y, ...)``: ``(slope_n, icpt_n, low)``, ``low`` None (the low band
        has under 8 bins) or ``(slope, icpt, c00, c01, c11)``. The slope reported as ``S.slope`` is
        ``low[0]`` (NaN without a low band)."""
        P = self.periodogram(y)
        lp = np.log(np.maximum(P[self.near_sel], 1e-300))
        if self.near is None:
            slope_n, icpt_n = 0.0, np.mean(lp)
        else:
            slope_n, icpt_n = _centred_fit(self.near, lp)
        icpt_n += EULER_GAMMA
        if self.low is None:
            return slope_n, icpt_n, None
        x, xm, dx, sxx = self.low
        ly = np.log(np.maximum(P[self.low_sel], 1e-300))
        slope, icpt = _centred_fit(self.low, ly)
        r = ly - (slope * x + icpt)
        fac = (r @ r) / (x.size - 2)
        cov = (fac / sxx, -fac * xm / sxx, fac * (1.0 / x.size + xm * xm / sxx))
        return slope_n, icpt_n, (slope, icpt + EULER_GAMMA) + cov

    def at_bins(self, fit) -> np.ndarray:
        """``S(bins)`` of a ``fit``: ``window_psd``'s ``S`` evaluated at ``bins``, its exp() in C.

        :meth:`at_bins_exact`'s arguments bit for bit, each exp() within a relative
        ``PSDLAW_EXP_REL`` = 5.9e-15 of the exact exponential (``csrc/host/hge_host_psdlaw.h``
        derives it) where numpy's libm exp is within half an ulp or so: so every element is within
        ``PSDLAW_EXP_REL + 2.3e-16`` of :meth:`at_bins_exact`'s (tested). Why: the stderr takes ~8000
        exp() per window, ~0.5 M instructions through libm's scalar exp, ~0.1 M here.

        How far that moves the stderr (``HGEWindow._read_stderr``): var = fl(W S) for the weights
        W (2m, N). With S~ = S (1 + t_j), |t_j| <= e, e = PSDLAW_EXP_REL + 2.3e-16, the exact products
        differ by at most e |W| S; each rounded product is within gamma_N |W| S of its exact one
        (Higham 3.5, any summation order; S >= 0). So |var~ - var| <= (e + 2 gamma_N) |W| S, and
        where W >= 0 (the lock-in's in-phase and quadrature weights on the default plans) that is
        a relative change of var of at most e + 2 gamma_N, of its square root half that, plus the
        roundings of the root and the scale (2 u each side): the stderr's relative change is at most
        (e + 2 gamma_N) / 2 + 4 u (N = 8000 bins: 9.0e-13; tests/test_psdlaw.py). The gradient does not
        depend on it."""
        return self._at_bins(fit, _psdlaw)

    def at_bins_exact(self, fit) -> np.ndarray:
        """:meth:`at_bins` with numpy's exp (``window_psd``'s ``S(bins)`` bit for bit)."""
        return self._at_bins(fit, None)

    def _at_bins(self, fit, law) -> np.ndarray:
        slope_n, icpt_n, low = fit
        if low is not None and self._split is not None:
            k = self._split
            out = np.empty(self.log_bins.size)
            slope, icpt, c00, c01, c11 = low
            if law is not None:
                law(self._log_above, None, icpt_n, slope_n, 0.0, 0.0, 0.0, out[k:])
                law(self.lf_below, self.lf2_below, icpt, slope, c00, c01, c11, out[:k])
                return out
            np.exp(icpt_n + slope_n * self._log_above, out=out[k:])
            lf = self.lf_below
            var_l = c00 * self.lf2_below + 2 * c01 * lf + c11
            np.exp(icpt + slope * lf - var_l / 2, out=out[:k])
            return out
        if law is not None:
            out = np.empty(self.log_bins.size)
            law(self.log_bins, None, icpt_n, slope_n, 0.0, 0.0, 0.0, out)
        else:
            out = np.exp(icpt_n + slope_n * self.log_bins)
        if low is not None and self.below is not None:
            slope, icpt, c00, c01, c11 = low
            lf = self.lf_below
            if law is not None:
                part = np.empty(lf.size)
                law(lf, self.lf2_below, icpt, slope, c00, c01, c11, part)
                out[self.below] = part
            else:
                var_l = c00 * self.lf2_below + 2 * c01 * lf + c11
                out[self.below] = np.exp(icpt + slope * lf - var_l / 2)
        return out


def _cached_rfft():
    """``scipy.fft.rfft`` where scipy is there, else ``np.fft.rfft``. Both run pocketfft's real
    transform; numpy builds its plan (~45 k instructions for n = 1000) on every call, scipy keeps
    it in a cache. The same numbers, bit for bit: tests/test_read_fast_paths.py checks the plan's
    periodogram against window_psd's (np.fft.rfft) on random windows of several lengths, and
    tests/test_psdlaw.py the two transforms directly."""
    try:
        import scipy.fft
    except ImportError:   # pragma: no cover - scipy is a dependency
        return np.fft.rfft
    return scipy.fft.rfft


PSDLAW_EXP_REL = 5.9e-15   # csrc/host/hge_host_psdlaw.h: hge_psdlaw_exp's relative error bound


def _psdlaw(lf, lf2, icpt, slope, c00, c01, c11, out) -> None:
    """``out[:] = exp(icpt + slope lf - (c00 lf2 + 2 c01 lf + c11) / 2)`` (``lf2`` None: without the
    quadratic) by ``hge_psdlaw`` (float64 arrays of one length, C-contiguous)."""
    from ._hge_core import ffi, lib
    n = lf.size
    if not n:
        return
    if not (lf.dtype == np.float64 and out.dtype == np.float64 and lf.flags.c_contiguous
            and out.flags.c_contiguous and out.size == n and (lf2 is None or (
                lf2.dtype == np.float64 and lf2.flags.c_contiguous and lf2.size == n))):
        raise ValueError("_psdlaw: float64 C-contiguous arrays of one length expected")   # pragma: no cover
    status = lib.hge_psdlaw(ffi.from_buffer("double[]", lf), ffi.NULL if lf2 is None else
                            ffi.from_buffer("double[]", lf2), n, float(icpt), float(slope), float(c00),
                            float(c01), float(c11), ffi.from_buffer("double[]", out, require_writable=True))
    if status != lib.HGE_OK:   # pragma: no cover - non-null, sized by the caller
        raise RuntimeError(f"hge_psdlaw: status {status}")


def _tone_basis(fs, freqs, n):
    from .tonefit import tone_basis
    return tone_basis(fs, freqs, n)


def _centred(x):
    """``line_fit``'s per-x numbers: ``(x, mean, x - mean, sum of squares)`` (read-only)."""
    xm = x.mean()
    dx = x - xm
    dx.flags.writeable = False
    return x, xm, dx, dx @ dx


_add_reduce = np.add.reduce


def _centred_fit(c, y):
    """``line_fit(x, y)`` with x's numbers from ``_centred``: the same operations, the same (slope, icpt)."""
    x, xm, dx, sxx = c
    ym = _add_reduce(y) / y.size   # y.mean(): numpy's _mean is this sum and this division (the same bits)
    slope = (dx @ (y - ym)) / sxx
    return slope, ym - slope * xm
