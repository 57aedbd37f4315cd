"""The NI-DAQmx backend: a ``Device`` on a cDAQ chassis (NI 9264 AO for the electrodes, NI 9202 AI).

One measurement is one synchronised finite window pair:

* AO task, all electrodes; AI task, the IV converter's output (and a loopback
  channel if configured); both finite, same sample clock rate (the rate the
  driver actually grants is read back and used);
* AI starts on the AO task's start trigger: its terminal is *queried* from the
  driver (``ao.triggers.start_trigger.term``), not hard-coded; with
  ``trigger = "ao_follows_ai"`` the roles swap (for chassis that need it);
* tasks are created and committed once and reused; timing is reconfigured (and
  re-committed) only when the window length changes;
* the written waveform is: ramp 0 V -> first sample, the samples asked for,
  ramp last sample -> 0 V, one final 0 V sample. AI reads the same length plus
  the chain delay; the returned current is the slice aligned to the requested
  samples (delay taken out, ramps left out), in nA: ``sign * gain * V_ai``;
* the voltage gate (``check_volts`` with the electrode limits, then the
  absolute ceiling) refuses the whole waveform before anything is written;
* on any exception, Ctrl-C, SIGTERM/SIGHUP (through ``hge``) or process exit the
  outputs are driven to 0 V and the tasks are stopped; ``close()`` does the same
  and clears the tasks. Zeroing first disarms the AO task's start trigger (with
  ``ao_follows_ai`` it waits on the stopped AI task, so 0 V would never play); a
  zeroing that fails raises ``ZeroingError`` ("the outputs may not be at 0 V"),
  also when it happens while another error is being handled (chained to it);
* after the channels are created, the task's channel count is checked against
  the setup (a range such as ``ao0:6`` is 7 channels, not one electrode), and
  the writer keeps nidaqmx's array-shape check on;
* driver errors become ``NIDAQError`` with one readable sentence saying what
  to check (``hge`` prints it without a traceback).

Written against the official ``nidaqmx`` package (1.x), no Windows-only imports.
"""
from __future__ import annotations

import atexit
import weakref
from pathlib import Path

import numpy as np

from . import check_volts
from .nidaq_config import NIDAQSetup, load_setup

# DAQmx error codes with a known cause.
DEVICE_NOT_FOUND = (-200220, -200170, -201003)
TIMEOUTS = (-200284, -200560, -200279)
RESERVED = (-50103,)
LOOPBACK_NA_PER_V = 10.0  # calibrate() divides by this: the loopback is read as volts x 10


class NIDAQError(RuntimeError):
    """A driver problem, as one sentence saying what to check."""


class ZeroingError(NIDAQError):
    """Driving the outputs to 0 V failed: they may still be at a working voltage."""


def _explain(exc, setup: NIDAQSetup | None, doing: str) -> NIDAQError:
    """Turn a nidaqmx exception into a readable ``NIDAQError``."""
    import nidaqmx.errors as nerr
    if isinstance(exc, nerr.DaqNotFoundError) or isinstance(exc, nerr.DaqNotSupportedError):
        return NIDAQError(f"NI-DAQmx driver not found while {doing}: install NI-DAQmx (Windows, or Linux with "
                          f"`python -m nidaqmx installdriver`) and check that this Python sees it ({exc})")
    code = getattr(exc, "error_code", None)
    modules = ", ".join(setup.modules) if setup else "the configured modules"
    if code in DEVICE_NOT_FOUND:
        return NIDAQError(f"NI-DAQmx could not find a device while {doing} (error {code}): check the names "
                          f"{modules} in the setup file against `hge doctor` or NI MAX")
    if code in TIMEOUTS:
        return NIDAQError(f"NI-DAQmx timed out while {doing} (error {code}): check that the chassis is powered, "
                          f"the AI start trigger reaches the AO task, and the sample rate is supported")
    if code in RESERVED:
        return NIDAQError(f"NI-DAQmx: the device is in use by another task or program while {doing} "
                          f"(error {code}): close NI MAX test panels and other sessions")
    return NIDAQError(f"NI-DAQmx error while {doing}: {exc}")


class NIDAQDevice:
    """A DNPU behind a cDAQ 9264 / 9202 pair. Build it with ``NIDAQDevice.from_config(path)``."""

    def __init__(self, setup: NIDAQSetup):
        import nidaqmx
        import nidaqmx.constants
        import nidaqmx.errors
        import nidaqmx.stream_readers
        import nidaqmx.stream_writers
        self.setup = setup
        self.n_electrodes = len(setup.ao_channels)
        self.limits = np.array(setup.limits, dtype=float)
        self.full_scale = setup.iv_gain * setup.ai_range  # nA at the AI's full scale
        self.dac_lsb = 20.0 / 2**16                       # NI 9264: 16 bit over +-10 V
        self.calibration = None
        if setup.calibration_file and Path(setup.calibration_file).exists():
            from ..calibration import Calibration
            self.calibration = Calibration.load(setup.calibration_file)
        self._n = None
        self._closed = False
        self.ao = self.ai = None
        try:
            self.ao = nidaqmx.Task("hge_ao")
            self.ai = nidaqmx.Task("hge_ai")
            for chan, (lo, hi) in zip(setup.ao_channels, setup.limits):
                self.ao.ao_channels.add_ao_voltage_chan(chan, min_val=lo, max_val=hi)
            term = nidaqmx.constants.TerminalConfiguration[setup.ai_terminal]
            ai_chans = [setup.ai_channel] + ([setup.loopback_channel] if setup.loopback_channel else [])
            self._ai_chans = [
                self.ai.ai_channels.add_ai_voltage_chan(chan, terminal_config=term, min_val=-setup.ai_range,
                                                        max_val=setup.ai_range)
                for chan in ai_chans]
            for task, want, what in ((self.ao, len(setup.ao_channels), "ao.channels"),
                                     (self.ai, len(ai_chans), "ai.channel and ai.loopback_channel")):
                got = task.number_of_channels
                if got != want:
                    raise NIDAQError(f"NI-DAQmx made {got} channels from {what} in the setup, which names {want} "
                                     f"({', '.join(task.channel_names)}); list one physical channel per entry")
            self._configure(1000)
            self.fs = float(self.ao.timing.samp_clk_rate)
            ai_rate = float(self.ai.timing.samp_clk_rate)
            if abs(ai_rate - self.fs) > 1e-6 * self.fs:
                raise NIDAQError(f"NI-DAQmx granted {self.fs} S/s on AO but {ai_rate} S/s on AI; choose a rate "
                                 "both modules support exactly")
            self.delay = self._chain_delay()
            self._n = None  # the first window configures timing with the delay included
            self._check_calibration_chain()
        except nidaqmx.errors.Error as exc:
            self._close_tasks()
            raise _explain(exc, setup, "setting up the tasks") from None
        except BaseException:
            self._close_tasks()
            raise
        self._writer = nidaqmx.stream_writers.AnalogMultiChannelWriter(self.ao.out_stream, auto_start=False)
        # nidaqmx's shape checks stay on: a waveform with the wrong channel count is refused by
        # the driver's wrapper instead of being read as a different layout.
        self._reader = nidaqmx.stream_readers.AnalogMultiChannelReader(self.ai.in_stream)
        _OPEN.add(self)

    @classmethod
    def from_config(cls, path) -> "NIDAQDevice":
        """The device described by a setup file (TOML; see ``nidaq_config``)."""
        return cls(load_setup(path))

    # -- the calibration file belongs to one chain -----------------------------------------
    def chain_identity(self) -> dict:
        """What a saved chain calibration depends on: the rate and the delay taken out (a
        sample of lag is 36 degrees at 1 kHz and 10 kS/s), the AI channel and its settings,
        and the IV converter's sign (the phase method measures through it)."""
        s = self.setup
        return {"rate_S_per_s": float(self.fs), "delay_samples": int(self.delay), "ai_channel": s.ai_channel,
                "ai_terminal": s.ai_terminal, "ai_range_V": float(s.ai_range), "iv_sign": int(s.iv_sign)}

    def _check_calibration_chain(self) -> None:
        """Refuse the setup's calibration file when it was measured on another chain.

        A calibration saved by ``hge calibrate`` carries ``chain`` (``chain_identity``). Used
        on another rate, delay or AI setting its phases are off by whole samples of lag, and
        the calibrated estimator projects on the wrong axis: smaller derivatives, flipped
        signs, nothing else looking wrong. A file without ``chain`` (written by hand or by an
        older version) is used as it is."""
        if self.calibration is None:
            return
        import json
        try:
            saved = json.loads(Path(self.setup.calibration_file).read_text()).get("chain")
        except (OSError, ValueError, AttributeError):
            saved = None
        if not isinstance(saved, dict):
            return
        now = self.chain_identity()
        diff = [f"{k} {saved.get(k)!r} then, {v!r} now" for k, v in now.items() if saved.get(k) != v]
        if diff:
            raise NIDAQError(f"the calibration file {self.setup.calibration_file} was measured on another chain "
                             f"({'; '.join(diff)}): its phases would project every derivative on the wrong axis. "
                             "Run `hge calibrate --device nidaq --config SETUP` again, or remove [calibration] file")

    # -- configuration ----------------------------------------------------------------
    def _configure(self, n_total: int) -> None:
        """Finite timing for ``n_total`` samples (plus the delay on AI), trigger, commit."""
        from nidaqmx.constants import AcquisitionType, Edge, TaskMode
        s = self.setup
        delay = getattr(self, "delay", 0)
        self.ao.timing.cfg_samp_clk_timing(s.rate, sample_mode=AcquisitionType.FINITE, samps_per_chan=n_total)
        self.ai.timing.cfg_samp_clk_timing(s.rate, sample_mode=AcquisitionType.FINITE,
                                           samps_per_chan=n_total + delay)
        leader, follower = (self.ao, self.ai) if s.trigger == "ai_follows_ao" else (self.ai, self.ao)
        follower.triggers.start_trigger.cfg_dig_edge_start_trig(leader.triggers.start_trigger.term,
                                                                trigger_edge=Edge.RISING)
        self.ao.control(TaskMode.TASK_COMMIT)
        self.ai.control(TaskMode.TASK_COMMIT)
        self._n = n_total

    def _chain_delay(self) -> int:
        """Whole samples between AO update and the AI sample that sees it: configured, or the
        AI module's filter delay read from the driver ("auto")."""
        if isinstance(self.setup.delay, int):
            return self.setup.delay
        from nidaqmx.constants import DigitalWidthUnits
        chan = self._ai_chans[0]
        chan.ai_filter_delay_units = DigitalWidthUnits.SAMPLE_CLOCK_PERIODS
        return int(round(float(chan.ai_filter_delay)))

    # -- the Device protocol -------------------------------------------------------------
    def _gate(self, volts) -> np.ndarray:
        v = check_volts(volts, self.limits)
        peak = np.max(np.abs(v)) if v.size else 0.0
        if peak > self.setup.ceiling:
            raise ValueError(f"volts: a sample of {peak:.6g} V exceeds the absolute ceiling "
                             f"{self.setup.ceiling} V; nothing was applied")
        return v

    def waveform(self, volts) -> tuple[np.ndarray, slice]:
        """The full AO waveform for ``volts``: ramps from and to 0 V around it, and its slice."""
        v = self._gate(volts)
        nr = int(round(self.setup.ramp_time * self.fs))
        up = v[:, :1] * (np.arange(1, nr + 1) / (nr + 1))[None, :]
        down = v[:, -1:] * (np.arange(nr, 0, -1) / (nr + 1))[None, :]
        wave = np.concatenate([np.zeros((self.n_electrodes, 1)), up, v, down,
                               np.zeros((self.n_electrodes, 1))], axis=1)
        self._gate(wave)  # ramps lie between 0 V and samples that passed; checked anyway
        return np.ascontiguousarray(wave), slice(1 + nr, 1 + nr + v.shape[1])

    def _run(self, volts):
        """Write, start (follower first), read, wait, stop. Returns the AI samples (channels, n)."""
        import nidaqmx.errors
        if self._closed:
            raise NIDAQError("the NI-DAQmx device was closed; build a new one")
        wave, window = self.waveform(volts)
        n_total = wave.shape[1]
        n_ai = n_total + self.delay
        buf = np.zeros((1 + (1 if self.setup.loopback_channel else 0), n_ai))
        timeout = 2.0 + 1.5 * n_ai / self.fs
        try:
            if self._n != n_total:
                self._configure(n_total)
            self._writer.write_many_sample(wave, timeout=timeout)
            first, second = (self.ai, self.ao) if self.setup.trigger == "ai_follows_ao" else (self.ao, self.ai)
            first.start()
            second.start()
            self._reader.read_many_sample(buf, number_of_samples_per_channel=n_ai, timeout=timeout)
            self.ao.wait_until_done(timeout=timeout)
            self.ao.stop()
            self.ai.stop()
        except nidaqmx.errors.Error as exc:
            err = _explain(exc, self.setup, "measuring a window")
            self._zero_after(err)
            raise err from None
        except BaseException as exc:
            self._zero_after(exc)
            raise
        shifted = slice(window.start + self.delay, window.stop + self.delay)
        return buf[:, shifted]

    def measure(self, volts) -> np.ndarray:
        """Apply ``volts`` (n_electrodes, n) and return the output current (n,) in nA, aligned to them."""
        ai = self._run(volts)
        return self.setup.iv_sign * self.setup.iv_gain * ai[0]

    @property
    def has_loopback(self) -> bool:
        """Whether the setup wires a loopback channel (else ``calibrate`` uses the phase method)."""
        return bool(self.setup.loopback_channel)

    def loopback(self, volts) -> np.ndarray:
        """Electrode 1's voltage as read back on the loopback AI channel, x 10 (the unit
        ``calibrate`` expects): the chain without the device."""
        if not self.setup.loopback_channel:
            raise NIDAQError("no loopback channel: set ai.loopback_channel in the setup file and wire it to "
                             f"{self.setup.ao_channels[0]}")
        return LOOPBACK_NA_PER_V * self._run(volts)[1]

    # -- safety ---------------------------------------------------------------------------
    ZERO_ATTEMPTS = 3

    def zero(self) -> None:
        """Stop both tasks, disarm the start triggers and play 0 V on every electrode.

        A ``KeyboardInterrupt`` that arrives meanwhile (a second Ctrl-C in a script or a
        notebook, where ``hge``'s signal handling is not installed) does not cut the zeroing
        short: stopping the AO task holds its last sample, a working voltage, so the
        zeroing is started again and the interrupt raised once the outputs are at 0 V.

        Raises
        ------
        ZeroingError
            If the 0 V samples could not be played: the outputs may not be at 0 V (also
            when interrupts kept arriving for ``ZERO_ATTEMPTS`` attempts).
        """
        pending = None
        for _ in range(self.ZERO_ATTEMPTS):
            try:
                self._zero_once()
            except KeyboardInterrupt as exc:
                pending = exc
                continue
            if pending is not None:
                raise pending
            return
        raise ZeroingError(f"could not drive the electrodes to 0 V: interrupted {self.ZERO_ATTEMPTS} times while "
                           "zeroing; the outputs may not be at 0 V; check them (NI MAX test panel, a meter) "
                           "before touching the device") from pending

    def _zero_once(self) -> None:
        from nidaqmx.constants import AcquisitionType
        self._n = None  # timing and trigger are configured again before the next window
        for task in (self.ao, self.ai):
            try:
                task.stop()
            except Exception:  # noqa: BLE001 - already failing; get to 0 V regardless
                pass
        try:
            # With ao_follows_ai the AO task waits for the (stopped) AI task's start trigger:
            # disarm it, or the 0 V samples would never play. In both modes AO then starts alone.
            for task in (self.ao, self.ai):
                task.triggers.start_trigger.disable_start_trig()
            self.ao.timing.cfg_samp_clk_timing(self.setup.rate, sample_mode=AcquisitionType.FINITE, samps_per_chan=2)
            self._writer.write_many_sample(np.zeros((self.n_electrodes, 2)), timeout=2.0)
            self.ao.start()
            self.ao.wait_until_done(timeout=2.0)
            self.ao.stop()
        except Exception as exc:  # noqa: BLE001 - every failure here means the same for the user
            raise ZeroingError(f"could not drive the electrodes to 0 V ({' '.join(str(exc).split())}): the outputs "
                               "may not be at 0 V; check them (NI MAX test panel, a meter) before touching the "
                               "device") from exc

    def _zero_after(self, error: BaseException) -> None:
        """Zero while ``error`` is being raised; a zeroing failure is raised in its place, chained to it."""
        try:
            self.zero()
        except ZeroingError as zexc:
            raise ZeroingError(f"{zexc} (while handling: {' '.join(str(error).split()) or type(error).__name__})") \
                from error

    def _close_tasks(self) -> None:
        for task in (self.ao, self.ai):
            if task is not None:
                try:
                    task.close()
                except Exception:  # noqa: BLE001
                    pass

    def close(self) -> None:
        """Drive to 0 V, stop and clear the tasks. Safe to call twice."""
        if self._closed:
            return
        try:
            self.zero()
        finally:
            self._close_tasks()
            self._closed = True
            _OPEN.discard(self)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


_OPEN: "weakref.WeakSet[NIDAQDevice]" = weakref.WeakSet()


@atexit.register
def _close_all() -> None:
    """At process exit every open device goes to 0 V."""
    import sys
    for dev in list(_OPEN):
        try:
            dev.close()
        except NIDAQError as exc:
            sys.stderr.write(f"hge: error at exit: {exc}\n")


def stamp_calibration(path, device) -> None:
    """Add ``device.chain_identity()`` to a saved calibration file as ``chain`` (atomically), so
    that ``NIDAQDevice`` refuses it on another chain (``calibration.stamp_calibration_file``)."""
    from ..calibration import stamp_calibration_file
    stamp_calibration_file(path, device.chain_identity())


def list_devices() -> list:
    """(name, product type) of every device the NI-DAQmx driver sees."""
    import nidaqmx.errors
    import nidaqmx.system
    try:
        return [(d.name, d.product_type) for d in nidaqmx.system.System.local().devices]
    except nidaqmx.errors.Error as exc:
        raise _explain(exc, None, "listing devices") from None
