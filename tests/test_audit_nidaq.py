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
