"""SIGINT, SIGTERM and SIGHUP as one exception, so every way of stopping a run takes one path.

``install()`` (done by the ``hge`` command) makes the first of these signals raise
``Interrupted`` in the main thread, wherever the program is: the device's own
error handling then drives its outputs to 0 V and stops its tasks, and the
trainer's handler saves the checkpoint. ``Interrupted`` is a ``KeyboardInterrupt``
so code that already handles Ctrl-C handles a ``kill`` or a closed SSH session the
same way. Later signals are ignored (with a note on stderr) while that clean-up
runs, and ``deferred()`` holds even the first one back until an atomic save has
finished.
"""
from __future__ import annotations

import os
import signal
from contextlib import contextmanager

SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))


class Interrupted(KeyboardInterrupt):
    """The process was asked to stop by signal ``signum``; exit with ``128 + signum``."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = int(signum)

    @property
    def exit_code(self) -> int:
        return 128 + self.signum

    @property
    def name(self) -> str:
        try:
            return signal.Signals(self.signum).name
        except ValueError:
            return f"signal {self.signum}"


_received: list = []   # the first signal, once it arrived
_pending: list = []    # a signal held back by deferred()
_defer = [0]


def _handler(signum, frame):  # noqa: ARG001 - signal handler signature
    if _received:
        os.write(2, b"hge: already stopping (saving the checkpoint, driving outputs to 0 V); please wait\n")
        return
    _received.append(signum)
    if _defer[0]:
        _pending.append(signum)
        return
    raise Interrupted(signum)


def install() -> dict:
    """Route SIGINT, SIGTERM and SIGHUP to ``Interrupted``; returns the previous handlers."""
    _received.clear()
    _pending.clear()
    return {s: signal.signal(s, _handler) for s in SIGNALS}


def restore(previous: dict) -> None:
    for s, h in previous.items():
        signal.signal(s, h)


def received() -> bool:
    """Whether one of the signals arrived since ``install()``."""
    return bool(_received)


def first() -> int | None:
    """The first signal received since ``install()``, or None."""
    return _received[0] if _received else None


def ignore_rest() -> None:
    """Ignore these signals from now on: a late second one must not change how the process ends."""
    for s in SIGNALS:
        signal.signal(s, signal.SIG_IGN)


@contextmanager
def deferred():
    """Hold a signal that arrives inside the block until the block has finished."""
    _defer[0] += 1
    try:
        yield
    finally:
        _defer[0] -= 1
        if not _defer[0] and _pending:
            raise Interrupted(_pending.pop())
