"""Devices the project did not design, for the trust tests: plain Python objects with fs,
n_electrodes, limits and measure (no loopback, no calibration), vectorised so that hundreds of
windows stay fast."""
import numpy as np

FS = 10_000.0


class LinearDevice:
    """``I = w . V`` (nA, w in nA/V), optional white noise of one-sided density ``S`` (nA^2/Hz),
    an output lag of ``lag`` whole samples (the chain the user did not tell us about), and
    optional ``full_scale`` (clips there) / ``dac_lsb`` attributes."""

    def __init__(self, w, *, S=0.0, lag=0, seed=0, limits=None, full_scale=None, dac_lsb=None, offset=0.0,
                 pink=0.0, beta=2.0):
        self.w = np.asarray(w, float)
        self.n_electrodes = self.w.size
        self.fs = FS
        self.limits = np.array([[-1.0, 1.0]] * self.n_electrodes if limits is None else limits, float)
        self.S, self.lag, self.offset = float(S), int(lag), float(offset)
        self.rng = np.random.default_rng(seed)
        if full_scale is not None:
            self.full_scale = float(full_scale)
        if dac_lsb is not None:
            self.dac_lsb = float(dac_lsb)
        self.pink, self.beta = float(pink), float(beta)
        self.samples_written = 0

    def coloured(self, n):
        """Noise of one-sided PSD ``pink (1000 Hz / f)^beta``, synthesised over 16 n samples (content down
        to fs / 16 n) and cut to n: each window sees the drift of a longer record."""
        m = 16 * n
        f = np.fft.rfftfreq(m, 1.0 / self.fs)[1:]
        amp = np.sqrt(self.pink * (1000.0 / f) ** self.beta * self.fs * m / 4)
        spec = np.concatenate([[0], amp * (self.rng.normal(size=f.size) + 1j * self.rng.normal(size=f.size))])
        return np.fft.irfft(spec, m)[:n]

    def current(self, volts):
        return self.offset + self.w @ volts

    def true_gradient(self, V):
        return self.w.copy()

    def measure(self, volts):
        volts = np.asarray(volts, float)
        self.samples_written += volts.shape[1]
        i = self.current(volts)
        if self.lag:  # the device sat at the window's first voltages before it (as after a ramp)
            i = np.concatenate([np.full(self.lag, i[0]), i[:-self.lag]])
        if self.pink:
            i = i + self.coloured(i.size)
        if self.S:
            # One-sided density S at sample rate fs: per-sample variance S fs / 2.
            i = i + self.rng.normal(0.0, np.sqrt(self.S * self.fs / 2), i.size)
        if getattr(self, "full_scale", None):
            i = np.clip(i, -self.full_scale, self.full_scale)
        return i


class FiveElectrodeDevice(LinearDevice):
    """A smooth nonlinear 5-electrode device: ``I = 20 tanh(K V + b) . c`` nA, exact gradient known."""

    K = np.array([[1.2, -0.4, 0.3, 0.8, -0.6], [-0.5, 1.1, 0.7, -0.2, 0.4], [0.3, 0.6, -1.0, 0.5, 0.9]])
    b = np.array([0.1, -0.2, 0.3])
    c = np.array([1.0, -0.8, 0.6])

    def __init__(self, **kw):
        super().__init__(np.zeros(5), **kw)

    def current(self, volts):
        return self.offset + 20.0 * (self.c @ np.tanh(self.K @ volts + self.b[:, None]))

    def true_gradient(self, V):
        u = self.K @ np.asarray(V, float) + self.b
        return 20.0 * ((self.c * (1 - np.tanh(u) ** 2)) @ self.K)


class Returns(LinearDevice):
    """A device whose measure returns something other than the protocol's (n,) float array."""

    def __init__(self, kind, **kw):
        super().__init__([10.0, -5.0, 3.0], **kw)
        self.kind = kind

    def measure(self, volts):
        y = super().measure(volts)
        if self.kind == "short":
            return y[8:]          # a "delay" trimmed off the front
        if self.kind == "long":
            return np.concatenate([y, y[:8]])
        if self.kind == "list":
            return y.tolist()
        if self.kind == "2d":
            return y[None, :]
        if self.kind == "nan":
            y = y.copy()
            y[17] = np.nan
            return y
        if self.kind == "int":
            return np.round(y).astype(np.int64)
        raise AssertionError(self.kind)


def five_electrode():
    """Factory for ``--device tests.devices_for_tests:five_electrode``."""
    return FiveElectrodeDevice()


def lag3():
    return LinearDevice([10.0, -7.0, 4.0, 12.0], lag=3)


def trained(case: str, sphere_batch: int, sphere_iter: int, gate_iter: int):
    """A short training run for the fast-path equality tests: ``"sim-sphere"`` (the simulator's sphere,
    mini-batches) or ``"plain-gate"`` (XOR on a plain 5-electrode device: no dac_lsb, no full_scale).
    Returns the losses, final codes and outputs."""
    from hge_embedded import SimulatedDNPU
    from hge_embedded.tasks import gate, map_electrodes, sphere
    from hge_embedded.train import Trainer
    if case == "sim-sphere":
        tr = Trainer(SimulatedDNPU(seed=0), sphere(0), seed=0, max_iter=sphere_iter, batch_size=sphere_batch)
    else:
        task = map_electrodes(gate("xor"), 5, inputs=[1, 2])
        tr = Trainer(FiveElectrodeDevice(S=1e-4, seed=4), task, seed=0, max_iter=gate_iter)
    tr.run()
    return tr.losses, tr.codes.copy(), tr.outputs.copy()


def random_knot_values(rng, n_knots):
    """Arbitrary exact current I (nA) and gradient G (nA/V, 7 electrodes) at ``n_knots`` ramp knots, drawn
    in that order (the values the ramp fill interpolates between)."""
    return rng.uniform(-50, 50, n_knots), rng.uniform(-200, 200, (7, n_knots))


def random_ramps(rng, n_ramps):
    """A record of ``n_ramps`` DAC-quantised straight ramps (7 electrodes, some staying put) with a few
    arbitrary samples between them, and random knots per ramp: (v, [(start, end, knots, first knot)], knots)."""
    lsb = 20 / 2**16
    pieces, ramps, pos, k0 = [], [], 0, 0
    for _ in range(n_ramps):
        n = int(rng.integers(3, 200))
        a, b = rng.uniform(-1, 1, 7), rng.uniform(-1, 1, 7)
        still = rng.uniform(size=7) < 0.3   # electrodes that stay put along this ramp
        b[still] = a[still]
        x = np.round(np.linspace(a, b, n, axis=1) / lsb) * lsb
        pieces += [x, rng.uniform(-1, 1, (7, int(rng.integers(0, 5))))]
        knots = np.linspace(0.0, 1.0, int(rng.integers(1, 30)) + 1)
        ramps.append((pos, pos + n, knots, k0))
        pos += pieces[-2].shape[1] + pieces[-1].shape[1]
        k0 += knots.size
    return np.concatenate(pieces, axis=1), ramps, k0


class ClippedNoFullScale:
    """``I = w . V`` nA plus white noise (``sd`` nA per sample; 0: none), clipped at +-``clip`` nA by a
    chain that does not state it (no ``full_scale``)."""

    def __init__(self, w, clip=np.inf, sd=0.5):
        self.w = np.asarray(w, float)
        self.n_electrodes, self.fs = self.w.size, 10_000.0
        self.limits = np.array([[-1.2, 0.7]] * self.w.size)
        self.clip, self.sd = clip, sd
        self.rng = np.random.default_rng(0)

    def measure(self, volts):
        v = np.asarray(volts, float)
        noise = self.rng.normal(0.0, self.sd, v.shape[1]) if self.sd else 0.0
        return np.clip(self.w @ v + noise, -self.clip, self.clip)


def tones_in_noise(rng, m, T, level, beta, *, fs=1e4, dc=0.0, phases=False):
    """A lock-in window for the noise-fit tests: ``m`` tones of the plan for ``T`` (amplitudes
    uniform in [0.01, 1], random phases when ``phases``), a ``dc``, and noise at ``level``:
    white plus ``-beta`` times a random walk (its share sets the low band's slope).
    Returns (y, f, n): the samples, the plan's frequencies and the window's length (whole
    groups of 8)."""
    from hge_embedded import plans
    f = plans.plan_frequencies(m, fs=fs, T=T)
    n = int(round(T * fs))
    n -= n % 8
    t = np.arange(n) / fs
    amp = rng.uniform(0.01, 1, (m, 1))                        # amplitudes first, then phases: the
    phase = rng.uniform(0, 6, (m, 1)) if phases else 0.0      # order the tests always drew them in
    y = dc + (amp * np.sin(2 * np.pi * f[:, None] * t + phase)).sum(0)
    y += level * (rng.normal(size=n) + (-beta) * np.cumsum(rng.normal(size=n)) / np.sqrt(n))
    return y, f, n

