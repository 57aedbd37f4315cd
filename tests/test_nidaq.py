"""The NI-DAQmx backend, run through nidaqmx's real Task / channel / timing / trigger / stream
code with the driver replaced below the package's interpreter boundary (an autospec of
``BaseInterpreter``), as nidaqmx's own unit tests do. A fake chain answers the reads."""
import re
import threading
from unittest import mock

import nidaqmx
import nidaqmx.errors
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nidaqmx._base_interpreter import BaseInterpreter
from nidaqmx.constants import AcquisitionType, Edge, FillMode, TaskMode, TerminalConfiguration

from hge_embedded.devices.nidaq import NIDAQDevice, NIDAQError, ZeroingError, list_devices
from hge_embedded.devices.nidaq_config import load_setup, parse_setup
from hge_embedded.devices.simulated import DNPUModel

SETUP = """
[daq]
rate = 10000.0
[ao]
channels = ["cDAQ1Mod1/ao0", "cDAQ1Mod1/ao1", "cDAQ1Mod1/ao2", "cDAQ1Mod1/ao3", "cDAQ1Mod1/ao4", "cDAQ1Mod1/ao5", "cDAQ1Mod1/ao6"]
limits = [[-1.2, 0.7], [-1.2, 0.7], [-1.2, 0.7], [-1.2, 0.7], [-1.2, 0.7], [-1.2, 0.7], [-1.2, 0.7]]
ceiling = 1.5
ramp_time = 0.002
[ai]
channel = "cDAQ1Mod2/ai0"
terminal = "DIFF"
delay = "auto"
loopback_channel = "cDAQ1Mod2/ai1"
[iv]
gain = 10.0
sign = -1
"""
AO, AI = object(), object()  # task handles the fake driver hands out
DELAY = 3                    # the AI module's filter delay, samples


def expand(phys):
    """DAQmx's reading of a physical channel string: "Dev/ao0:2" -> three channels."""
    dev, _, chan = phys.rpartition("/")
    m = re.fullmatch(r"([a-z]+)(\d+):(\d+)", chan)
    if not m:
        return [phys]
    return [f"{dev}/{m[1]}{i}" for i in range(int(m[2]), int(m[3]) + 1)]


class FakeRig:
    """What the driver would return: AI sees the device's current, delayed by DELAY samples."""

    def __init__(self, interp):
        self.interp = interp
        self.model = DNPUModel(0)
        self.written = []
        self.last = None
        interp.create_task.side_effect = [(AO, True), (AI, True)]
        interp.get_timing_attribute_double.return_value = 10000.0
        interp.get_trig_attribute_string.return_value = "/cDAQ1/ao/StartTrigger"
        interp.get_chan_attribute_double.return_value = float(DELAY)
        interp.write_analog_f64.side_effect = self.write
        interp.read_analog_f64.side_effect = self.read
        # Channel bookkeeping as DAQmx does it: a range "ao0:6" becomes seven channels.
        self.channels = {AO: [], AI: []}
        interp.create_ao_voltage_chan.side_effect = lambda task, phys, *a: self.channels[task].extend(expand(phys))
        interp.create_ai_voltage_chan.side_effect = lambda task, phys, *a: self.channels[task].extend(expand(phys))
        interp.get_task_attribute_uint32.side_effect = lambda task, attr: len(self.channels[task])
        interp.get_task_attribute_string.side_effect = lambda task, attr: ",".join(self.channels[task])
        interp.get_write_attribute_uint32.side_effect = lambda task, attr: len(self.channels[task])
        interp.get_read_attribute_uint32.side_effect = lambda task, attr: len(self.channels[task])

    def write(self, task, n, auto_start, timeout, layout, data):
        assert task is AO and layout == FillMode.GROUP_BY_CHANNEL.value
        self.written.append(np.array(data))
        self.last = np.array(data)
        return n

    def read(self, task, n, timeout, fill_mode, buf):
        assert task is AI
        wave = self.last
        current = self.model.current(wave)
        ai = np.concatenate([np.full(DELAY, current[0]), current])[:n] / (-10.0)  # inverting IV, 10 nA/V
        loop = np.concatenate([np.full(DELAY, wave[0, 0]), wave[0]])[:n]
        buf.reshape(2, n)[0] = ai
        buf.reshape(2, n)[1] = loop
        return buf, n  # as LibraryInterpreter.read_analog_f64 does


@pytest.fixture
def rig(tmp_path):
    interp = mock.create_autospec(BaseInterpreter, instance=True)
    fake = FakeRig(interp)
    path = tmp_path / "setup.toml"
    path.write_text(SETUP)
    with mock.patch("nidaqmx.utils._select_interpreter", return_value=interp):
        dev = NIDAQDevice.from_config(path)
        yield dev, interp, fake
        dev.close()


def names(interp):
    return [c[0] for c in interp.method_calls]


def test_task_setup_sequence(rig):
    dev, interp, _ = rig
    ao_chans = [c for c in interp.method_calls if c[0] == "create_ao_voltage_chan"]
    assert [c.args[1] for c in ao_chans] == [f"cDAQ1Mod1/ao{i}" for i in range(7)]
    assert all(c.args[0] is AO and c.args[3:5] == (-1.2, 0.7) for c in ao_chans)
    ai_chans = [c for c in interp.method_calls if c[0] == "create_ai_voltage_chan"]
    assert [c.args[1] for c in ai_chans] == ["cDAQ1Mod2/ai0", "cDAQ1Mod2/ai1"]
    assert all(c.args[3] == TerminalConfiguration.DIFF.value and c.args[4:6] == (-10.0, 10.0) for c in ai_chans)
    assert dev.fs == 10000.0 and dev.delay == DELAY
    trig = [c for c in interp.method_calls if c[0] == "cfg_dig_edge_start_trig"]
    assert trig[-1].args == (AI, "/cDAQ1/ao/StartTrigger", Edge.RISING.value)
    commits = [c.args for c in interp.method_calls if c[0] == "task_control"]
    assert (AO, TaskMode.TASK_COMMIT.value) in commits and (AI, TaskMode.TASK_COMMIT.value) in commits


def test_measure_sequence_and_alignment(rig):
    dev, interp, fake = rig
    rng = np.random.default_rng(0)
    volts = rng.uniform(-0.5, 0.5, (7, 1000))
    interp.reset_mock()
    y = dev.measure(volts)
    calls = names(interp)
    # timing reconfigured for the window (with the AI delay), committed, then write, start AI
    # before AO (AI waits for the AO start trigger), read, wait, stop.
    timing = [c.args for c in interp.method_calls if c[0] == "cfg_samp_clk_timing"]
    nr = int(round(0.002 * 10000))
    n_total = 1000 + 2 * nr + 2
    assert (AO, 10000.0, "", Edge.RISING.value, AcquisitionType.FINITE.value, n_total) in timing
    assert (AI, 10000.0, "", Edge.RISING.value, AcquisitionType.FINITE.value, n_total + DELAY) in timing
    starts = [c.args[0] for c in interp.method_calls if c[0] == "start_task"]
    assert starts == [AI, AO]
    assert calls.index("write_analog_f64") < calls.index("start_task") < calls.index("read_analog_f64")
    assert calls.index("read_analog_f64") < calls.index("wait_until_task_done") < calls.index("stop_task")
    # The written waveform: 0 V, ramp up, the window, ramp down, 0 V.
    w = fake.written[-1]
    assert w.shape == (7, n_total)
    assert np.all(w[:, 0] == 0) and np.all(w[:, -1] == 0)
    assert np.array_equal(w[:, 1 + nr:1 + nr + 1000], volts)
    # The current comes back aligned to the window, delay removed, in nA.
    assert np.allclose(y, DNPUModel(0).current(volts))
    # A second window of the same length reuses the committed timing.
    interp.reset_mock()
    dev.measure(volts)
    assert "cfg_samp_clk_timing" not in names(interp) and "create_task" not in names(interp)


def test_gate_refuses_before_anything_is_written(rig):
    dev, interp, fake = rig
    n_written = len(fake.written)
    bad = np.zeros((7, 100))
    bad[2, 50] = 0.71
    with pytest.raises(ValueError, match="electrode 3 at sample 50 is 0.71 V"):
        dev.measure(bad)
    assert len(fake.written) == n_written and "start_task" not in names(interp)


def test_error_mid_window_drives_to_zero_and_explains(rig):
    dev, interp, fake = rig
    interp.read_analog_f64.side_effect = nidaqmx.errors.DaqReadError(
        "Some or all of the samples requested have not yet been acquired.", -200284, 0)
    with pytest.raises(NIDAQError, match="timed out while measuring a window .* check that the chassis is powered"):
        dev.measure(np.full((7, 100), 0.3))
    assert np.all(fake.written[-1] == 0)  # the last thing written: 0 V on every electrode
    assert ("stop_task", (AO,)) in [(c[0], c.args) for c in interp.method_calls]


def test_interrupt_mid_window_drives_to_zero(rig):
    dev, interp, fake = rig
    interp.read_analog_f64.side_effect = KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        dev.measure(np.full((7, 100), -0.4))
    assert np.all(fake.written[-1] == 0)


def test_close_zeroes_and_clears(rig):
    dev, interp, fake = rig
    dev.close()
    assert np.all(fake.written[-1] == 0)
    assert [c.args[0] for c in interp.method_calls if c[0] == "clear_task"] == [AO, AI]
    with pytest.raises(NIDAQError, match="was closed"):
        dev.measure(np.zeros((7, 10)))


def test_loopback_calibration_through_the_backend(rig):
    from hge_embedded import calibrate
    dev, _, _ = rig
    cal = calibrate(dev, [500.0, 1000.0])
    assert cal.method == "loopback" and np.allclose(cal.at([500.0, 1000.0]), 1.0, atol=2e-3)


def test_gradient_through_the_backend(rig):
    from hge_embedded import extract_gradient
    dev, _, _ = rig
    b = np.array([-0.3, 0.1, -0.5, 0.2, 0.0, -0.4, 0.3])
    r = extract_gradient(dev, b)
    g = DNPUModel(0).gradient(r.bias[:, None])[:, 0]
    assert np.max(np.abs(r.gradient - g) / np.maximum(np.abs(g), 0.1 * np.sqrt(np.mean(g**2)))) < 0.05


@settings(max_examples=6, deadline=None)
@given(st.floats(1e-3, 20.0), st.integers(0, 10_000))
def test_training_never_writes_outside_limits(lr, seed):
    """Random training runs against the backend: no sample written is ever outside the limits."""
    from hge_embedded.tasks import gate
    from hge_embedded.train import train_task
    interp = mock.create_autospec(BaseInterpreter, instance=True)
    fake = FakeRig(interp)
    with mock.patch("nidaqmx.utils._select_interpreter", return_value=interp):
        dev = NIDAQDevice(parse_setup(__import__("tomllib").loads(SETUP)))
        try:
            train_task(dev, gate("xor"), seed=seed, lr=lr, max_iter=4)
        finally:
            dev.close()
    lim = dev.limits
    assert len(fake.written) >= 5  # the windows and the zeroing really went through the writer
    for w in fake.written:
        assert np.all(w >= lim[:, :1]) and np.all(w <= lim[:, 1:])


def test_missing_driver_and_wrong_device_are_explained(tmp_path):
    path = tmp_path / "setup.toml"
    path.write_text(SETUP)
    with mock.patch("nidaqmx.utils._select_interpreter",
                    side_effect=nidaqmx.errors.DaqNotFoundError("Could not find an installation of NI-DAQmx.")):
        with pytest.raises(NIDAQError, match="NI-DAQmx driver not found .* install NI-DAQmx"):
            NIDAQDevice.from_config(path)
    interp = mock.create_autospec(BaseInterpreter, instance=True)
    FakeRig(interp)
    interp.create_ao_voltage_chan.side_effect = nidaqmx.errors.DaqError("Device identifier is invalid.", -200220)
    with mock.patch("nidaqmx.utils._select_interpreter", return_value=interp):
        with pytest.raises(NIDAQError, match=r"could not find a device .* check the names cDAQ1Mod1, cDAQ1Mod2"):
            NIDAQDevice.from_config(path)
    assert [c.args[0] for c in interp.method_calls if c[0] == "clear_task"]  # tasks cleared


def test_list_devices_via_system(monkeypatch):
    interp = mock.create_autospec(BaseInterpreter, instance=True)
    interp.get_system_info_attribute_string.return_value = "cDAQ1,cDAQ1Mod1,cDAQ1Mod2"
    interp.get_device_attribute_string.return_value = "NI 9264"
    with mock.patch("nidaqmx.utils._select_interpreter", return_value=interp):
        devs = list_devices()
    assert [d[0] for d in devs] == ["cDAQ1", "cDAQ1Mod1", "cDAQ1Mod2"]


@pytest.mark.parametrize("patch, match", [
    (("ao", "bogus", 1), "unknown key ao.bogus"),
    (("zz", None, None), r"unknown section \[zz\]"),
    (("iv", "gain", None), "missing key iv.gain"),
    (("ai", "terminal", "SINGLE"), "ai.terminal must be one of"),
    (("ao", "ceiling", 20.0), r"ao.ceiling must be in \(0, 10\] V"),
    (("ao", "limits", [[0.1, 0.7]] * 7), "they must contain 0 V"),
    (("ai", "delay", "soon"), "ai.delay must be a whole number"),
])
def test_setup_file_errors_name_the_key(patch, match):
    import tomllib
    data = tomllib.loads(SETUP)
    section, key, value = patch
    if key is None:
        data[section] = {}
    elif value is None:
        del data[section][key]
    else:
        data[section][key] = value
    with pytest.raises(ValueError, match=match):
        parse_setup(data)


def test_example_setup_file_parses():
    import pathlib
    s = load_setup(pathlib.Path(__file__).resolve().parents[1] / "examples" / "setup.toml")
    assert s.modules == ["cDAQ1Mod1", "cDAQ1Mod2"] and s.iv_sign == -1


# -- runs that survive: the rig's 0 V promise, channel counts, setup values ----------------------------

def _rig(setup_text):
    interp = mock.create_autospec(BaseInterpreter, instance=True)
    fake = FakeRig(interp)
    import tomllib
    patcher = mock.patch("nidaqmx.utils._select_interpreter", return_value=interp)
    patcher.start()
    try:
        dev = NIDAQDevice(parse_setup(tomllib.loads(setup_text)))
    except BaseException:
        patcher.stop()
        raise
    return dev, interp, fake, patcher


@pytest.mark.parametrize("trigger", ["ai_follows_ao", "ao_follows_ai"])
def test_zero_disarms_the_start_trigger_before_playing_0V(trigger):
    """Issue item 5: with ao_follows_ai the AO task is bound to the stopped AI task's trigger;
    zero() must disarm it before starting AO, or the 0 V samples never play."""
    dev, interp, fake, patcher = _rig(SETUP.replace("[daq]", f'[daq]\ntrigger = "{trigger}"'))
    try:
        dev.measure(np.full((7, 50), 0.3))  # arms the trigger for a window
        arm = [c.args for c in interp.method_calls if c[0] == "cfg_dig_edge_start_trig"][-1]
        assert arm[0] is (AO if trigger == "ao_follows_ai" else AI)
        interp.reset_mock()
        dev.zero()
        calls = [(c[0], c.args[0] if c.args else None) for c in interp.method_calls]
        disarm = calls.index(("disable_start_trig", AO))
        start = calls.index(("start_task", AO))
        assert disarm < calls.index(("write_analog_f64", AO)) < start
        assert ("start_task", AI) not in calls  # AO plays alone
        assert np.all(fake.written[-1] == 0)
        # The next window arms the trigger again.
        interp.reset_mock()
        dev.measure(np.full((7, 50), 0.3))
        assert [c.args[0] for c in interp.method_calls if c[0] == "cfg_dig_edge_start_trig"] == [arm[0]]
    finally:
        dev.close()
        patcher.stop()


def test_failed_zeroing_is_an_error_chained_to_the_first():
    dev, interp, fake, patcher = _rig(SETUP)
    try:
        interp.read_analog_f64.side_effect = nidaqmx.errors.DaqReadError("Samples not yet acquired.", -200284, 0)

        def write(task, n, auto_start, timeout, layout, data):
            if not np.any(data):
                raise nidaqmx.errors.DaqWriteError("Device not responding.", -200170, 0)
            return fake.write(task, n, auto_start, timeout, layout, data)
        interp.write_analog_f64.side_effect = write
        with pytest.raises(ZeroingError, match="outputs may not be at 0 V.*while handling: NI-DAQmx timed out") as info:
            dev.measure(np.full((7, 100), 0.3))
        assert isinstance(info.value.__cause__, NIDAQError) and "timed out" in str(info.value.__cause__)
        # Zeroing on its own reports too, and close() still clears the tasks when it fails.
        with pytest.raises(ZeroingError, match="may not be at 0 V"):
            dev.zero()
        with pytest.raises(ZeroingError):
            dev.close()
        assert [c.args[0] for c in interp.method_calls if c[0] == "clear_task"] == [AO, AI]
    finally:
        patcher.stop()


def test_writer_keeps_its_shape_check(rig):
    dev, _, _ = rig
    assert dev._writer.verify_array_shape is True


def test_channel_count_is_checked_after_the_channels_are_made():
    """A setup that reached the device without the parser (built in code) with a range: DAQmx
    makes 7 channels from one entry; the device refuses before anything is written."""
    import dataclasses
    import tomllib
    setup = parse_setup(tomllib.loads(SETUP))
    setup = dataclasses.replace(setup, ao_channels=["cDAQ1Mod1/ao0:6"], limits=[[-1.2, 0.7]])
    interp = mock.create_autospec(BaseInterpreter, instance=True)
    fake = FakeRig(interp)
    with mock.patch("nidaqmx.utils._select_interpreter", return_value=interp):
        with pytest.raises(NIDAQError, match="made 7 channels from ao.channels .* names 1"):
            NIDAQDevice(setup)
    assert fake.written == [] and [c.args[0] for c in interp.method_calls if c[0] == "clear_task"] == [AO, AI]


@pytest.mark.parametrize("section, key, value, match", [
    ("ao", "channels", ["cDAQ1Mod1/ao0:6"], "not one physical channel"),
    ("ao", "channels", ["cDAQ1Mod1/ao0", "cDAQ1Mod1/ao1", "cDAQ1Mod1/ao2", "cDAQ1Mod1/ao3", "cDAQ1Mod1/ao4",
                        "cDAQ1Mod1/ao5", "cDAQ1Mod1/AO0"], "appears twice"),
    ("ao", "channels", ["cDAQ1Mod1/ao0,cDAQ1Mod1/ao1"] + [f"cDAQ1Mod1/ao{i}" for i in range(2, 8)],
     "not one physical channel"),
    ("ai", "loopback_channel", "cDAQ1Mod2/ai0", "appears twice"),
    ("ai", "range", 0.0, r"ai.range must be in \(0, 10\] V"),
    ("ai", "range", 20.0, r"ai.range must be in \(0, 10\] V"),
    ("iv", "gain", float("inf"), "iv.gain must be finite and > 0"),
    ("iv", "gain", float("nan"), "iv.gain must be finite and > 0"),
    ("iv", "gain", 0.0, "iv.gain must be finite and > 0"),
    ("ai", "delay", 10**8, r"ai.delay must be a whole number of samples in 0..1000"),
    ("ai", "delay", -1, "ai.delay must be"),
    ("daq", "rate", 1e9, r"daq.rate must be in \(0, 25000\]"),
    ("daq", "rate", float("nan"), "daq.rate must be in"),
    ("ao", "ramp_time", -0.1, "ao.ramp_time must be in"),
    ("ao", "ramp_time", float("inf"), "ao.ramp_time must be in"),
    ("ao", "ceiling", float("nan"), r"ao.ceiling must be in \(0, 10\] V"),
    ("ao", "limits", [[-1.2, float("nan")]] + [[-1.2, 0.7]] * 6, "must be two finite numbers"),
    ("ao", "limits", [["-1", 0.7]] + [[-1.2, 0.7]] * 6, "must be two finite numbers"),
])
def test_setup_values_are_range_checked_at_load(section, key, value, match):
    """Issue item 6: every numeric value and every channel is checked before a device is built."""
    import tomllib
    data = tomllib.loads(SETUP)
    data.setdefault(section, {})[key] = value
    if key == "channels" and len(value) != 7:
        data["ao"]["limits"] = [[-1.2, 0.7]] * len(value)
    with pytest.raises(ValueError, match=match):
        parse_setup(data)


def test_sigterm_mid_window_drives_to_zero(rig):
    """Item 2: through `hge`'s handler, SIGTERM reaches the backend as an exception mid-window;
    the outputs go to 0 V (trigger disarmed) before the process exits."""
    import os
    import signal

    from hge_embedded import signals
    dev, interp, fake = rig
    real_read = interp.read_analog_f64.side_effect

    def read(*args):
        os.kill(os.getpid(), signal.SIGTERM)  # the handler raises at the next bytecode
        return real_read(*args)
    interp.read_analog_f64.side_effect = read
    prev = signals.install()
    try:
        with pytest.raises(signals.Interrupted) as info:
            dev.measure(np.full((7, 100), -0.4))
    finally:
        signals.restore(prev)
    assert info.value.exit_code == 128 + signal.SIGTERM
    assert np.all(fake.written[-1] == 0)
    assert ("disable_start_trig", (AO,)) in [(c[0], c.args) for c in interp.method_calls]
