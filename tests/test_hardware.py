"""On the real rig only: `pytest -m hardware --setup setup.toml`. Skipped otherwise.

Loopback (needs ai.loopback_channel wired to electrode 1's AO), one gradient with its
standard error, and a short XOR training, all through NIDAQDevice.
"""
import numpy as np
import pytest

pytestmark = pytest.mark.hardware


@pytest.fixture(scope="module")
def device(request):
    path = request.config.getoption("--setup")
    if not path:
        pytest.skip("hardware tests need --setup FILE")
    from hge_embedded.devices.nidaq import NIDAQDevice
    dev = NIDAQDevice.from_config(path)
    yield dev
    dev.close()


def test_loopback_chain_is_sane(device):
    from hge_embedded import calibrate
    if not device.setup.loopback_channel:
        pytest.skip("no ai.loopback_channel in the setup")
    cal = calibrate(device, [100.0, 500.0, 1000.0])
    # A working chain passes these frequencies with gain near 1 and lags below 90 degrees.
    assert np.all(np.abs(np.abs(cal.response) - 1) < 0.2)
    assert np.all(np.abs(np.angle(cal.response)) < np.pi / 2)


def test_gradient_has_finite_small_stderr(device):
    from hge_embedded import extract_gradient
    r = extract_gradient(device, np.zeros(device.n_electrodes))
    assert np.all(np.isfinite(r.gradient)) and np.all(r.stderr < np.abs(r.gradient).max() + 10.0)


def test_short_xor_training_stays_in_limits(device):
    """Every sample written to the AO task during a short training lies inside its electrode's
    limits and the ceiling (recorded at the writer, the last step before the driver)."""
    from hge_embedded.tasks import gate
    from hge_embedded.train import train_task
    written = []
    original = device._writer.write_many_sample

    def record(data, *args, **kwargs):
        written.append(np.array(data, copy=True))
        return original(data, *args, **kwargs)
    device._writer.write_many_sample = record
    try:
        r, _ = train_task(device, gate("xor"), seed=0, max_iter=5)
    finally:
        device._writer.write_many_sample = original
    assert np.all(np.isfinite(r.losses)) and len(r.losses) >= 1
    assert written, "nothing was written to the AO task"
    lim = device.limits
    for w in written:
        assert w.shape[0] == device.n_electrodes
        assert np.all(w >= lim[:, :1]) and np.all(w <= lim[:, 1:])
        assert np.max(np.abs(w)) <= device.setup.ceiling
    assert np.all(written[-1][:, -1] == 0)  # the last sample written is 0 V
