"""The simulated DNPU: protocol, exact gradient, voltage gate, noise PSD, chain, calibration."""
import numpy as np
import pytest
import scipy.signal as sig

from hge_embedded import Device, SimulatedDNPU, calibrate
from hge_embedded.devices.noise import NoiseModel, NoiseSource


def test_is_a_device_and_measures_aligned_samples():
    d = SimulatedDNPU(noise=False)
    assert isinstance(d, Device)
    assert d.fs == 10_000.0 and d.n_electrodes == 7 and d.limits.shape == (7, 2)
    v = np.zeros((7, 500))
    y = d.measure(v)
    assert y.shape == (500,) and y.dtype == float
    # Constant input: the chain sits at steady state, so every sample equals the static current
    # (to the 24-bit ADC step of 110 nA / 2^23).
    assert np.allclose(y, d.static_current(np.zeros(7)), atol=110 / 2**23)


def test_true_gradient_matches_numerical_derivative():
    d = SimulatedDNPU()
    rng = np.random.default_rng(0)
    for _ in range(20):
        v = rng.uniform(-1.2, 0.6, 7)
        h = 1e-6
        num = np.array([(d.static_current(v + h * e) - d.static_current(v - h * e)) / (2 * h) for e in np.eye(7)])
        # Central difference error ~ h^2 I''' / 6 ~ 1e-12 * 1e3; float cancellation ~ 1e-16 * 50 / 1e-6.
        assert np.allclose(d.true_gradient(v), num, atol=1e-6)


def test_device_is_rich_and_in_range():
    d = SimulatedDNPU()
    v = np.random.default_rng(1).uniform(-1.2, 0.6, (7, 5000))
    i = d.static_current(v)
    # Specification ranges, not tolerances: "output currents of tens of nA at +-1 V" (read as a spread
    # between 1 and 100 nA), and below the IV converter's 110 nA range, so that no random control
    # setting in the box clips the chain.
    assert 1.0 < np.std(i) < 100.0 and np.max(np.abs(i)) < 110.0
    g = d.true_gradient(v)
    # Non-monotonic: every electrode's derivative takes both signs somewhere.
    assert np.all((g > 0).any(axis=1) & (g < 0).any(axis=1))


def test_voltage_gate_refuses_out_of_limit_samples():
    d = SimulatedDNPU(noise=False)
    v = np.zeros((7, 10))
    v[3, 7] = 0.75
    with pytest.raises(ValueError, match=r"electrode 4 at sample 7 is 0.75 V, outside its limits"):
        d.measure(v)
    with pytest.raises(ValueError, match=r"volts must have shape \(7, n_samples\)"):
        d.measure(np.zeros((6, 10)))
    assert d.samples_measured == 0  # nothing was applied


def test_noise_psd_matches_spec():
    """The beta = 1.5 option (the paper's quoted slope) plus white: a 105 s Welch estimate
    against the target in bands up to 1 kHz (realised within 3 % of the target there, see
    devices.noise) and against the realised PSD above (where the sampled process flattens)."""
    model = NoiseModel(white=2e-6, pink_level=1e-5, f_ref=1000.0, beta=1.5)
    src = NoiseSource(model, 10_000.0, np.random.default_rng(3))
    x = src.take(1 << 20)
    f, p = sig.welch(x, 10_000.0, nperseg=4096)
    for lo, hi, ref in [(20, 40, model.psd), (90, 110, model.psd), (400, 500, model.psd),
                        (900, 1100, model.psd), (3000, 4000, src.psd)]:
        band = (f >= lo) & (f <= hi)
        ratio = np.mean(p[band] / ref(f[band]))
        # Welch over 256 segments x >= 8 bins: relative sd <= 1 / sqrt(2048 / 2) ~ 3 %
        # (Hann overlap correlation doubles it at most); 15 % is > 2.5 sd plus the 3 % ripple.
        assert abs(ratio - 1) < 0.15, (lo, hi, ratio)


def test_loopback_calibration_recovers_chain_response():
    d = SimulatedDNPU(noise=False)
    freqs = np.array([100.0, 540.0, 780.0, 1000.0])
    cal = calibrate(d, freqs)
    assert cal.method == "loopback"
    h = d.chain_response(freqs)
    # The loopback passes the 16-bit DAC: each tone ~ 19 mV = 62 LSB; its fundamental is
    # off by at most ~ LSB / amplitude / 2 ~ 1e-3; the chain transient over 3 of 1000 samples less.
    assert np.max(np.abs(cal.at(freqs) / h - 1)) < 3e-3


def test_calibration_roundtrip(tmp_path):
    d = SimulatedDNPU(noise=False)
    cal = calibrate(d, [500.0, 1000.0])
    cal.save(tmp_path / "cal.json")
    back = type(cal).load(tmp_path / "cal.json")
    assert np.allclose(back.at([750.0]), cal.at([750.0]))
    with pytest.raises(ValueError, match="calibration covers 500..1000 Hz"):
        back.at([1200.0])
