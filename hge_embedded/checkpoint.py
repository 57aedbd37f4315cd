"""Run directories that survive: atomic checkpoint files, the run's configuration, a lock.

A checkpoint is one JSON file::

    {"format": "hge-checkpoint-2",
     "config": {...},        # every option that changes the result (compared on --resume)
     "done": [...],          # finished tasks' results, in order
     "device": {...}|null,   # the device's state at the last task boundary
     "current": {...}|null}  # the task in progress: trainer state (with the device's state)

It is small by construction: seeds and stream positions, never noise buffers
(a device offers ``get_state() -> dict`` with a few KB at most).

Writes are atomic: a temporary file in the same directory, flushed and fsync'ed,
then ``os.replace`` onto the name, with signals held back meanwhile; a crash or a
second Ctrl-C leaves either the old file or the new one, never a mix. A run
directory is locked (``.lock``, holding the owner's pid) for as long as a run
writes into it, so two runs can never share one.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from .signals import deferred

FORMAT = "hge-checkpoint-2"
KEYS = ("format", "config", "done", "device", "current")
CHECKPOINT = "checkpoint.json"
LOCK = ".lock"


class CheckpointError(ValueError):
    """A checkpoint that cannot be resumed with the arguments given (nothing was changed)."""


class RunLocked(RuntimeError):
    """Another process is writing into the run directory."""


def write_json_atomic(path, obj, indent=None) -> None:
    """Write ``obj`` as JSON to ``path`` atomically (temporary file, fsync, rename); ``indent`` as json.dumps."""
    path = Path(path)
    text = json.dumps(obj, allow_nan=True, indent=indent)
    with deferred():
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            if hasattr(os, "fchmod"):  # mkstemp makes 0600; a result file is as readable as any other
                umask = os.umask(0)
                os.umask(umask)
                os.fchmod(fd, 0o666 & ~umask)
            with os.fdopen(fd, "w") as fh:
                fh.write(text)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
        try:  # the rename itself durable (POSIX; not possible on Windows)
            dfd = os.open(path.parent, os.O_RDONLY)
        except OSError:
            return
        try:
            os.fsync(dfd)
        except OSError:
            pass
        finally:
            os.close(dfd)


def save(path, snapshot: dict) -> None:
    """Write a run snapshot (``config``, ``done``, ``device``, ``current``) as a checkpoint."""
    missing = [k for k in KEYS[1:] if k not in snapshot]
    if missing:
        raise ValueError(f"snapshot lacks {missing}")
    write_json_atomic(path, {"format": FORMAT, **{k: snapshot[k] for k in KEYS[1:]}})


def _flag(key: str) -> str:
    if key == "config_sha256":
        return "--config (the setup file's content, SHA-256)"
    return "-T" if key == "T" else "--" + key.replace("_", "-")


def differences(saved: dict, wanted: dict, defaults: dict | None = None) -> list:
    """The options (as flags) whose values differ, e.g. ``["--seed 0 (checkpoint) vs 1 (now)"]``.

    ``defaults``: what an option left at its default (stored as null) or not stored at all stands
    for, where that is known, e.g. ``{"device_seed": 0}``: a run started without ``--device-seed``
    resumes with ``--device-seed 0`` given, and the other way round (the same run)."""
    defaults = defaults or {}

    def shown(value):  # an option left at its default is stored as null: say "default", not "None"
        return "default" if value is None else repr(value)

    def meant(key, value):
        return defaults[key] if value is None and defaults.get(key) is not None else value

    out = []
    for key in sorted(set(saved) | set(wanted)):
        if key not in saved and wanted[key] is None:
            continue  # an option added since the checkpoint was written, left at its default
        # An option absent from one side (added since, or stored only when not at its old behaviour,
        # e.g. --start) stands for its entry in defaults where there is one: shown as that value, which
        # is the flag to give (review s5: "--start '<absent>'" did not say --start full resumes it).
        a, b = (d[key] if key in d else defaults.get(key, "<absent>") for d in (saved, wanted))
        if meant(key, a) != meant(key, b):
            out.append(f"{_flag(key)} {shown(a)} (checkpoint) vs {shown(b)} (now)")
    return out


def load(path, config: dict | None = None, defaults: dict | None = None) -> dict:
    """Read and check a checkpoint; with ``config``, refuse one made with other options
    (``defaults``: what options stored as null stand for, see :func:`differences`).

    Raises ``FileNotFoundError`` when there is none and ``CheckpointError`` (naming
    what is wrong or which option differs) when it cannot be resumed. Never writes.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--resume: no checkpoint at {path}")
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"--resume: {path} is not a readable checkpoint ({exc}); it was left as it is") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        fmt = data.get("format") if isinstance(data, dict) else None
        raise CheckpointError(f"--resume: {path} is not a {FORMAT} checkpoint (format {fmt!r}); "
                              "it was left as it is")
    missing = [k for k in KEYS if k not in data]
    if missing or not isinstance(data["config"], dict) or not isinstance(data["done"], list):
        raise CheckpointError(f"--resume: {path} is damaged (missing or malformed {missing or ['config/done']}); "
                              "it was left as it is")
    problem = consistency_problem(data)
    if problem:
        raise CheckpointError(f"--resume: {path} is damaged ({problem}); it was left as it is")
    if config is not None:
        diff = differences(data["config"], json.loads(json.dumps(config)), json.loads(json.dumps(defaults or {})))
        if diff:
            raise CheckpointError(f"--resume: the run in {path.parent} was made with other options: "
                                  f"{'; '.join(diff)}; use the same options, or another --out")
    return data


def _is_int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _is_number(x) -> bool:
    return (isinstance(x, (int, float)) and not isinstance(x, bool)) or x is None  # JSON null: a NaN loss


def consistency_problem(data: dict) -> str | None:
    """What makes a parsed checkpoint inconsistent with itself, or None.

    A checkpoint written by ``hge train`` always has, for the task in progress
    (``current``) and for every finished task (``done``): a whole iteration count
    >= 0 equal to the number of losses and of control vectors recorded
    (``iteration == len(losses)``, docs/design.md section 5), control codes as a
    list of whole numbers, a lab time >= 0. A file that breaks this was edited or
    damaged; resuming it would continue a different run (a negative iteration
    runs extra iterations, a cut loss list loses history) or fail deep inside
    the trainer, so it is refused by name before anything is built. Missing
    keys and a wrong task are the trainer's check (``train.check_snapshot``).
    """
    cur = data.get("current")
    if isinstance(cur, dict) and all(k in cur for k in ("iteration", "losses", "history_controls", "codes",
                                                        "lab_time", "done")):
        # (A state lacking a key is refused by the trainer's own check, which names the keys.)
        it = cur.get("iteration")
        if not _is_int(it) or it < 0:
            return f"current.iteration must be a whole number >= 0, got {it!r}"
        for key in ("losses", "history_controls"):
            val = cur.get(key)
            if not isinstance(val, list) or len(val) != it:
                got = len(val) if isinstance(val, list) else repr(val)
                return f"current.{key} must hold one entry per iteration ({it}), got {got}"
        if not all(_is_number(x) for x in cur["losses"]):
            return "current.losses must be numbers"
        codes = cur.get("codes")
        if codes is not None and (not isinstance(codes, list) or not all(_is_int(c) for c in codes)):
            return f"current.codes must be a list of whole DAC codes, got {codes!r}"
        widths = {len(h) if isinstance(h, list) else -1 for h in cur["history_controls"]}
        if codes is not None and cur["history_controls"] and widths != {len(codes)}:
            return (f"current.codes has {len(codes)} controls but the recorded control vectors have "
                    f"{sorted(widths)}")
        lab = cur.get("lab_time")
        if not isinstance(lab, (int, float)) or isinstance(lab, bool) or not lab >= 0:
            return f"current.lab_time must be a number of seconds >= 0, got {lab!r}"
        if not isinstance(cur.get("done"), bool):
            return f"current.done must be true or false, got {cur.get('done')!r}"
    for k, d in enumerate(data.get("done") or []):
        if not isinstance(d, dict) or "iterations" not in d or "losses" not in d:
            continue  # refused by name by the trainer's check (train.check_snapshot)
        it = d.get("iterations")
        if not _is_int(it) or it < 0:
            return f"done[{k}].iterations must be a whole number >= 0, got {it!r}"
        if not isinstance(d.get("losses"), list) or len(d["losses"]) != it:
            got = len(d["losses"]) if isinstance(d.get("losses"), list) else repr(d.get("losses"))
            return f"done[{k}].losses must hold one entry per iteration ({it}), got {got}"
    return None


class RunLock:
    """An exclusive lock on a run directory, released on ``release()`` or process exit.

    ``fcntl.flock`` (POSIX) or ``msvcrt.locking`` (Windows) on ``DIR/.lock``: the
    operating system drops it when the process dies, so a killed run never leaves a
    stale lock. The file holds the owner's pid for the error message.
    """

    def __init__(self, directory):
        self.path = Path(directory) / LOCK
        self._fh = open(self.path, "a+")
        try:
            self._lock()
        except OSError:
            self._fh.seek(0)
            owner = self._fh.read().strip() or "unknown"
            self._fh.close()
            raise RunLocked(f"--out {self.path.parent} is in use by another run (pid {owner}); "
                            "wait for it to finish or choose another --out") from None
        self._fh.seek(0)
        self._fh.truncate()
        self._fh.write(str(os.getpid()))
        self._fh.flush()

    def _lock(self) -> None:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows
            import msvcrt
            self._fh.seek(0)
            msvcrt.locking(self._fh.fileno(), msvcrt.LK_NBLCK, 1)
            return
        fcntl.flock(self._fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)

    def release(self) -> None:
        if self._fh.closed:
            return
        try:
            import fcntl
            fcntl.flock(self._fh.fileno(), fcntl.LOCK_UN)
        except ImportError:  # pragma: no cover - Windows
            import msvcrt
            self._fh.seek(0)
            msvcrt.locking(self._fh.fileno(), msvcrt.LK_UNLCK, 1)
        self._fh.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()
