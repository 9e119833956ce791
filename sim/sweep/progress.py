"""A small progress bar with an estimate of the time left, on stderr.

Shown when stderr is a terminal (redrawn in place, at most ten times a second) or, on a pipe or
a log file, once the run has lasted ``after_s`` seconds (then a plain line at every 10 % or
every 30 s). Short runs on a pipe print nothing. ``enabled=False`` silences it.
"""

from __future__ import annotations

import math
import sys
import time

__all__ = ["Progress", "format_duration"]


def format_duration(s: float) -> str:
    if math.isnan(s) or math.isinf(s):
        return "?"
    s = round(s)
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"


class Progress:
    def __init__(self, total: int, label: str = "sweep", unit: str = "points", stream=None,
                 enabled: bool | None = None, after_s: float = 2.0, width: int = 24):
        self.total = max(0, int(total))
        self.label = label
        self.unit = unit
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        self.after_s = after_s
        self.width = width
        self.done = 0
        self.t0 = time.perf_counter()
        self._last = 0.0
        self._last_pct = -1
        self._drawn = False
        try:
            self.tty = bool(self.stream.isatty())
        except (AttributeError, ValueError):
            self.tty = False

    def _line(self) -> str:
        el = time.perf_counter() - self.t0
        frac = self.done / self.total if self.total else 1.0
        rate = self.done / el if el > 0 else 0.0
        left = (self.total - self.done) / rate if rate > 0 else float("inf")
        fill = round(frac * self.width)
        bar = "#" * fill + "." * (self.width - fill)
        return (f"{self.label} [{bar}] {self.done:,}/{self.total:,} {self.unit} {frac * 100:5.1f}%  "
                f"{rate:,.0f}/s  elapsed {format_duration(el)}  left {format_duration(left)}")

    def update(self, n: int = 1) -> None:
        self.done += n
        if self.enabled is False:
            return
        now = time.perf_counter()
        el = now - self.t0
        if self.tty:
            if now - self._last >= 0.1 or self.done >= self.total:
                self.stream.write("\r" + self._line())
                self.stream.flush()
                self._last = now
                self._drawn = True
            return
        if self.enabled is None and el < self.after_s:
            return
        pct = self.done * 10 // self.total if self.total else 10
        if pct != self._last_pct or now - self._last >= 30:
            self.stream.write(self._line() + "\n")
            self.stream.flush()
            self._last_pct = pct
            self._last = now
            self._drawn = True

    def close(self) -> None:
        if self.enabled is False:
            return
        if self.tty and self._drawn:
            self.stream.write("\r" + self._line() + "\n")
            self.stream.flush()
        elif not self.tty and self._drawn and self.done >= self.total and self._last_pct != 10:
            self.stream.write(self._line() + "\n")
            self.stream.flush()
