"""The NI backend below nidaqmx's interpreter (as tests/test_nidaq.py): a Ctrl-C that lands while
the outputs are being zeroed must not leave them at a working voltage."""
import numpy as np
import pytest
from test_nidaq import AO, SETUP, _rig

from hge_embedded.devices.nidaq import ZeroingError


def _interrupt_zero_writes(interp, fake, times):
    """The 0 V write is interrupted ``times`` times (a second, third... Ctrl-C), then goes through."""
    left = [times]

    def write(task, n, auto_start, timeout, layout, data):
        if not np.any(data) and left[0]:
            left[0] -= 1
            raise KeyboardInterrupt
        return fake.write(task, n, auto_start, timeout, layout, data)
    interp.write_analog_f64.side_effect = write


def test_interrupt_during_zeroing_still_ends_at_0V():
    """Before: the KeyboardInterrupt escaped zero() after the tasks were stopped and before 0 V was
    played (a stopped AO task holds its last sample); no error said the outputs were not at 0 V."""
    dev, interp, fake, patcher = _rig(SETUP)
    try:
        dev.measure(np.full((7, 100), 0.3))
        _interrupt_zero_writes(interp, fake, 1)
        interp.reset_mock()
        with pytest.raises(KeyboardInterrupt):
            dev.zero()
        assert np.all(fake.written[-1] == 0)  # 0 V was played before the interrupt went on
        starts = [c.args[0] for c in interp.method_calls if c[0] == "start_task"]
        assert starts == [AO]
    finally:
        dev.close()
        patcher.stop()


def test_interrupts_that_never_stop_are_a_zeroing_error():
    dev, interp, fake, patcher = _rig(SETUP)
    try:
        dev.measure(np.full((7, 100), 0.3))
        _interrupt_zero_writes(interp, fake, dev.ZERO_ATTEMPTS)
        with pytest.raises(ZeroingError, match="interrupted 3 times while zeroing; the outputs may not be at 0 V"):
            dev.zero()
        assert np.any(fake.written[-1] != 0)  # the rig really is not at 0 V: said so
    finally:
        interp.write_analog_f64.side_effect = fake.write
        dev.close()
        patcher.stop()
    assert np.all(fake.written[-1] == 0)


def _setup_with_calibration(path):
    return SETUP + f'\n[calibration]\nfile = "{path}"\n'


def test_a_calibration_from_another_chain_is_refused(tmp_path):
    """The setup's calibration file was used whatever rate, delay or AI setting it was measured
    with: a delay edited from 3 to 6 samples turns the 1 kHz channel by 108 degrees, and the
    calibrated estimator reads about -0.3 of every derivative there, stderr as usual."""
    import json

    from hge_embedded.calibration import Calibration
    from hge_embedded.devices.nidaq import NIDAQError, stamp_calibration
    cal_file = tmp_path / "cal.json"
    Calibration(np.array([500.0, 1000.0]), np.array([1.0, 1.0 + 0j]), "loopback").save(cal_file)
    dev, interp, fake, patcher = _rig(_setup_with_calibration(cal_file))
    try:
        assert dev.calibration is not None  # an unstamped file is used as before
        stamp_calibration(cal_file, dev)
        assert json.loads(cal_file.read_text())["chain"]["delay_samples"] == 3
        assert Calibration.load(cal_file).freqs.tolist() == [500.0, 1000.0]  # still a calibration
    finally:
        dev.close()
        patcher.stop()
    dev, interp, fake, patcher = _rig(_setup_with_calibration(cal_file))  # the same chain: accepted
    dev.close()
    patcher.stop()
    data = json.loads(cal_file.read_text())
    data["chain"]["delay_samples"] = 6
    cal_file.write_text(json.dumps(data))
    with pytest.raises(NIDAQError, match="measured on another chain .*delay_samples 6 then, 3 now"):
        _rig(_setup_with_calibration(cal_file))
