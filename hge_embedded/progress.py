"""Progress with an ETA on stderr: a live bar on a terminal, plain lines in a log file.

On a terminal this is a ``tqdm`` bar. When stderr is a file or a pipe (a batch
job, ``2> log``, an IDE console), a bar's carriage returns would pile up into one
unreadable line, so it writes one plain line every ``interval`` seconds and a last
one at the end, using tqdm's own formatting (rate, elapsed, remaining).
"""
from __future__ import annotations

import sys
import time

PLAIN_FORMAT = "{desc}: {percentage:3.0f}% {n_fmt}/{total_fmt} [{elapsed} elapsed, ETA {remaining}, {rate_fmt}]{postfix}"


class Progress:
    """Count ``total`` units of work; ``update()`` as they are done, ``write()`` for messages.

    Parameters
    ----------
    total : int
        Units of work (iterations, stages). The ETA assumes the rest runs at the rate so far.
    desc : str
        What is being done, printed before the count.
    enabled : bool
        False: nothing is written except ``write()`` lines.
    file : text stream, optional
        Default ``sys.stderr``.
    interval : float
        Seconds between plain lines when ``file`` is not a terminal.
    """

    def __init__(self, total: int, desc: str, *, enabled: bool = True, file=None, interval: float = 5.0,
                 unit: str = "it"):
        self.file = file if file is not None else sys.stderr
        self.total, self.desc, self.unit, self.interval = max(int(total), 0), desc, unit, float(interval)
        self.enabled = enabled
        self.n = 0
        self.postfix = ""
        self._t0 = self._last = time.monotonic()
        isatty = getattr(self.file, "isatty", None)
        self._bar = None
        if enabled and isatty is not None and isatty():
            from tqdm import tqdm
            self._bar = tqdm(total=self.total, desc=desc, file=self.file, unit=unit, dynamic_ncols=True,
                             leave=False)

    def update(self, n: int = 1, postfix: str | None = None) -> None:
        self.n = min(self.n + n, self.total) if self.total else self.n + n
        if postfix is not None:
            self.postfix = postfix
        if not self.enabled:
            return
        if self._bar is not None:
            if postfix is not None:
                self._bar.set_postfix_str(postfix, refresh=False)
            self._bar.update(n)
            return
        now = time.monotonic()
        if now - self._last >= self.interval:
            self._last = now
            self._line(now)

    def shrink(self, n: int, postfix: str | None = None) -> None:
        """``n`` units planned will not be run (a task that ended before its ``--max-iter``): the total
        drops by ``n``, so the bar ends at the work actually done instead of jumping to the plan, and the
        ETA counts only what is left. ``postfix`` says why (it is on the next line written, and the last)."""
        n = max(0, min(int(n), self.total - self.n))
        self.total -= n
        if postfix is not None:
            self.postfix = postfix
        if self._bar is not None:
            self._bar.total = self.total
            if postfix is not None:
                self._bar.set_postfix_str(postfix, refresh=False)
            self._bar.refresh()

    def line(self) -> str:
        """The plain progress line as of now."""
        from tqdm import tqdm
        return tqdm.format_meter(self.n, self.total or None, time.monotonic() - self._t0, prefix=self.desc,
                                 unit=self.unit, bar_format=PLAIN_FORMAT,
                                 postfix=self.postfix or None)

    def _line(self, now) -> None:
        self.file.write(self.line() + "\n")
        self.file.flush()
        self._printed = (self.n, self.postfix)

    def write(self, text: str) -> None:
        """A message line that does not break the bar."""
        if self._bar is not None:
            self._bar.write(text, file=self.file)
        else:
            self.file.write(text + "\n")
            self.file.flush()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        elif self.enabled and self.n and getattr(self, "_printed", None) != (self.n, self.postfix):
            self._line(time.monotonic())   # the final count, unless the last line already shows it
        self.enabled = False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
