"""The NI-DAQmx setup file (TOML): parsed, checked, with errors that name the key.

Example (``examples/setup.toml``)::

    [daq]
    rate = 10000.0                  # S/s, AO and AI (cDAQ 9264 / 9202)
    trigger = "ai_follows_ao"       # or "ao_follows_ai"

    [ao]
    channels = ["cDAQ1Mod1/ao0", "cDAQ1Mod1/ao1", "cDAQ1Mod1/ao2", "cDAQ1Mod1/ao3",
                "cDAQ1Mod1/ao4", "cDAQ1Mod1/ao5", "cDAQ1Mod1/ao6"]   # electrodes 1..7
    limits = [[-1.2, 0.7], ...]      # V per electrode; 0 V must lie inside
    ceiling = 1.5                   # V: no sample ever beyond +-ceiling
    ramp_time = 0.05                # s, from and to 0 V around every window

    [ai]
    channel = "cDAQ1Mod2/ai0"        # the IV converter's output
    range = 10.0                    # V
    terminal = "DIFF"               # RSE, NRSE, DIFF, PSEUDO_DIFF, DEFAULT
    delay = "auto"                  # samples, or "auto": the module's filter delay
    loopback_channel = "cDAQ1Mod2/ai1"   # optional: wired to electrode 1's AO

    [iv]
    gain = 10.0                     # nA per V at the AI
    sign = -1                       # an inverting IV converter

    [calibration]
    file = "calibration.json"       # optional; relative to this file
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

import math
import re

TERMINALS = ("RSE", "NRSE", "DIFF", "PSEUDO_DIFF", "DEFAULT")
# One physical channel, e.g. cDAQ1Mod1/ao0: no ranges (ao0:6) and no lists (ao0,ao1), which
# DAQmx would expand into several channels behind one electrode's limits.
CHANNEL = re.compile(r"^[A-Za-z][A-Za-z0-9_]*/[A-Za-z]+[0-9]+$")
RATE_MAX = 25_000.0     # S/s per channel: the NI 9264's maximum update rate
AI_RANGE_MAX = 10.0     # V: the NI 9202's input range is +-10 V
RAMP_MAX = 10.0         # s: a longer ramp is a typo, not a choice
DELAY_MAX_S = 0.1       # s: chain delays are a few samples (the 9202's filter: tens)
TRIGGERS = ("ai_follows_ao", "ao_follows_ai")

# section -> {key: (type, required, default)}
SCHEMA = {
    "daq": {"rate": ((int, float), False, 10_000.0), "trigger": (str, False, "ai_follows_ao")},
    "ao": {"channels": (list, True, None), "limits": (list, True, None), "ceiling": ((int, float), True, None),
           "ramp_time": ((int, float), False, 0.05)},
    "ai": {"channel": (str, True, None), "range": ((int, float), False, 10.0), "terminal": (str, False, "DIFF"),
           "delay": ((int, str), False, "auto"), "loopback_channel": (str, False, None)},
    "iv": {"gain": ((int, float), True, None), "sign": (int, False, 1)},
    "calibration": {"file": (str, False, None)},
}
REQUIRED_SECTIONS = ("ao", "ai", "iv")


@dataclass
class NIDAQSetup:
    rate: float
    trigger: str
    ao_channels: list
    limits: list
    ceiling: float
    ramp_time: float
    ai_channel: str
    ai_range: float
    ai_terminal: str
    delay: object          # int samples or "auto"
    loopback_channel: str | None
    iv_gain: float         # nA per V
    iv_sign: int
    calibration_file: Path | None
    path: Path | None = None

    @property
    def modules(self) -> list:
        """Device (module) names the channels live on, e.g. cDAQ1Mod1."""
        chans = self.ao_channels + [self.ai_channel] + ([self.loopback_channel] if self.loopback_channel else [])
        return sorted({c.split("/")[0] for c in chans})


def parse_setup(data: dict, path: Path | None = None) -> NIDAQSetup:
    """Check a parsed TOML document against the schema; raise ``ValueError`` naming the key."""
    where = f" in {path}" if path else ""
    for section in data:
        if section not in SCHEMA:
            raise ValueError(f"setup: unknown section [{section}]{where} (known: {', '.join(SCHEMA)})")
    for section in REQUIRED_SECTIONS:
        if section not in data:
            raise ValueError(f"setup: missing section [{section}]{where}")
    values = {}
    for section, keys in SCHEMA.items():
        given = data.get(section, {})
        if not isinstance(given, dict):
            raise ValueError(f"setup: [{section}] must be a table{where}")
        for key in given:
            if key not in keys:
                raise ValueError(f"setup: unknown key {section}.{key}{where} (known: {', '.join(keys)})")
        for key, (typ, required, default) in keys.items():
            if key not in given:
                if required:
                    raise ValueError(f"setup: missing key {section}.{key}{where}")
                values[(section, key)] = default
                continue
            val = given[key]
            if isinstance(val, bool) or not isinstance(val, typ):
                raise ValueError(f"setup: {section}.{key} has the wrong type{where}: {val!r}")
            values[(section, key)] = val
    ch = values[("ao", "channels")]
    lim = values[("ao", "limits")]
    if not ch or not all(isinstance(c, str) for c in ch):
        raise ValueError(f"setup: ao.channels must list one physical channel per electrode, got {ch!r}")
    ai_chans = [("ai.channel", values[("ai", "channel")])] + \
        ([("ai.loopback_channel", values[("ai", "loopback_channel")])] if values[("ai", "loopback_channel")] else [])
    for key, c in [("ao.channels", c) for c in ch] + ai_chans:
        if not CHANNEL.match(c.strip()):
            raise ValueError(f"setup: {key} entry {c!r} is not one physical channel such as cDAQ1Mod1/ao0 "
                             "(ranges like ao0:6 and lists are refused: one entry per electrode)")
    seen = {}
    for key, c in [("ao.channels", c) for c in ch] + ai_chans:
        if c.strip().lower() in seen:
            raise ValueError(f"setup: channel {c!r} appears twice ({seen[c.strip().lower()]} and {key})")
        seen[c.strip().lower()] = key
    if len(lim) != len(ch) or not all(isinstance(p, list) and len(p) == 2 for p in lim):
        raise ValueError(f"setup: ao.limits must hold one [low, high] pair per electrode ({len(ch)}), got {lim!r}")
    for e, pair in enumerate(lim, start=1):
        if not all(isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in pair):
            raise ValueError(f"setup: ao.limits for electrode {e} must be two finite numbers (V), got {pair!r}")
    ceiling = float(values[("ao", "ceiling")])
    if not 0 < ceiling <= 10.0:
        raise ValueError(f"setup: ao.ceiling must be in (0, 10] V, got {ceiling}")
    for e, (lo, hi) in enumerate(lim, start=1):
        if not (-ceiling <= lo <= 0.0 <= hi <= ceiling):
            raise ValueError(f"setup: ao.limits for electrode {e} are [{lo}, {hi}] V; they must contain 0 V "
                             f"(windows start and end there) and stay within the ceiling +-{ceiling} V")
    if values[("ai", "terminal")] not in TERMINALS:
        raise ValueError(f"setup: ai.terminal must be one of {', '.join(TERMINALS)}, got {values[('ai', 'terminal')]!r}")
    if values[("daq", "trigger")] not in TRIGGERS:
        raise ValueError(f"setup: daq.trigger must be one of {', '.join(TRIGGERS)}, got {values[('daq', 'trigger')]!r}")
    rate = values[("daq", "rate")]
    if not 0 < rate <= RATE_MAX:
        raise ValueError(f"setup: daq.rate must be in (0, {RATE_MAX:g}] S/s (the NI 9264's maximum), got {rate!r}")
    delay = values[("ai", "delay")]
    delay_max = int(DELAY_MAX_S * rate)
    if isinstance(delay, str) and delay != "auto" or isinstance(delay, int) and not 0 <= delay <= delay_max:
        raise ValueError(f"setup: ai.delay must be a whole number of samples in 0..{delay_max} "
                         f"({DELAY_MAX_S:g} s at daq.rate) or \"auto\", got {delay!r}")
    ai_range = values[("ai", "range")]
    if not 0 < ai_range <= AI_RANGE_MAX:
        raise ValueError(f"setup: ai.range must be in (0, {AI_RANGE_MAX:g}] V (the NI 9202 reads +-10 V), "
                         f"got {ai_range!r}")
    if values[("iv", "sign")] not in (1, -1):
        raise ValueError(f"setup: iv.sign must be 1 or -1, got {values[('iv', 'sign')]!r}")
    gain = values[("iv", "gain")]
    if not (math.isfinite(gain) and gain > 0):
        raise ValueError(f"setup: iv.gain must be finite and > 0 nA/V, got {gain!r}")
    ramp = values[("ao", "ramp_time")]
    if not 0 <= ramp <= RAMP_MAX:
        raise ValueError(f"setup: ao.ramp_time must be in [0, {RAMP_MAX:g}] s, got {ramp!r}")
    cal = values[("calibration", "file")]
    cal_path = None
    if cal:
        cal_path = Path(cal) if path is None or Path(cal).is_absolute() else path.parent / cal
    return NIDAQSetup(
        rate=float(values[("daq", "rate")]), trigger=values[("daq", "trigger")], ao_channels=list(ch),
        limits=[[float(a), float(b)] for a, b in lim], ceiling=ceiling, ramp_time=float(values[("ao", "ramp_time")]),
        ai_channel=values[("ai", "channel")], ai_range=float(values[("ai", "range")]),
        ai_terminal=values[("ai", "terminal")], delay=delay, loopback_channel=values[("ai", "loopback_channel")],
        iv_gain=float(values[("iv", "gain")]), iv_sign=int(values[("iv", "sign")]), calibration_file=cal_path,
        path=path)


def load_setup(path) -> NIDAQSetup:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"setup: no setup file at {path}")
    with open(path, "rb") as fh:
        try:
            data = tomllib.load(fh)
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"setup: {path} is not valid TOML: {exc}") from None
    return parse_setup(data, path)
