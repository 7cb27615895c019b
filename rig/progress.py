"""Progress of a long run on stderr: a live line on a terminal, one line per step in a log.

The time-left estimate weighs what is left by its expected cost (`costs`: one figure per step in
any unit, e.g. expected seconds from the step's size and duration) instead of counting steps: a
run whose cheap steps come first (memcpy before socket transfers) would otherwise promise a
fraction of the real time. The expected costs are scaled by how fast the finished steps went
compared with their own expectation, so a busy host lengthens the estimate.

Used as a context manager, a ticker thread shows that a long step is alive: a terminal's line is
refreshed every second, a log gets a line every `log_tick_s`. Everything is written with os.write
on the stream's file descriptor where it has one: the probes fork while the ticker runs, and a
child must not inherit a Python stream lock the ticker held at that instant.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import Sequence

TTY_TICK_S = 1.0
LOG_TICK_S = 10.0


class Progress:
    """A one-line progress report on stderr (a terminal gets a live line, a log gets one per step)."""

    def __init__(self, total: int, label: str, stream=None, costs: Sequence[float] | None = None,
                 names: Sequence[str] | None = None, log_tick_s: float = LOG_TICK_S, clock=time.monotonic):
        if costs is not None and len(costs) != total:
            raise ValueError(f"{len(costs)} step costs for {total} steps")
        self.total, self.label, self.done = total, label, 0
        self.costs = [max(float(c), 0.0) for c in costs] if costs is not None else [1.0] * total
        self.names = list(names) if names is not None else None
        self.stream = stream or sys.stderr
        self.clock = clock
        self.t0 = self.step_t0 = clock()
        self.elapsed_at_step = 0.0
        self.live = self.stream.isatty()
        self.tick_s = TTY_TICK_S if self.live else log_tick_s
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None
        self._last_log = self.t0

    # -- estimate ----------------------------------------------------------------------------
    def seconds_left(self, now: float | None = None) -> float:
        """Expected seconds to the end: the cost still ahead, at the pace the finished steps set."""
        now = self.clock() if now is None else now
        done_cost = sum(self.costs[:self.done])
        ahead = sum(self.costs[self.done:])
        pace = self.elapsed_at_step / done_cost if done_cost > 0 and self.elapsed_at_step > 0 else 1.0
        in_step = now - self.step_t0
        after_current = sum(self.costs[self.done + 1:]) * pace
        # the current step has run `in_step` already; never promise less than what follows it
        return max(ahead * pace - in_step, after_current, 0.0)

    # -- output ------------------------------------------------------------------------------
    def step(self, what: str = "") -> None:
        with self._lock:
            now = self.clock()
            self.done += 1
            self.elapsed_at_step = now - self.t0
            self.step_t0 = self._last_log = now
            text = (f"[{self.done}/{self.total}] {self.label} {what} "
                    f"({self.elapsed_at_step:.0f}s, ~{self.seconds_left(now):.0f}s left)")
            if self.live:
                self._write("\r\033[K" + text + ("\n" if self.done >= self.total else ""))
            else:
                self._write(text + "\n")

    def note(self, text: str) -> None:
        with self._lock:
            self._write(("\r\033[K" if self.live else "") + text + "\n")

    def tick(self) -> None:
        """Show that the current step is still running (called by the ticker)."""
        with self._lock:
            if self.done >= self.total:
                return
            now = self.clock()
            current = self.names[self.done] if self.names else f"step {self.done + 1}"
            text = (f"[{self.done}/{self.total}] {self.label}: {current} running {now - self.step_t0:.0f}s "
                    f"({now - self.t0:.0f}s, ~{self.seconds_left(now):.0f}s left)")
            if self.live:
                self._write("\r\033[K" + text)
            elif now - self._last_log >= self.tick_s:
                self._last_log = now
                self._write(text + "\n")

    def _write(self, text: str) -> None:
        try:
            fd = self.stream.fileno()
        except (AttributeError, OSError, ValueError):
            fd = None
        if fd is None:
            self.stream.write(text)
            self.stream.flush()
            return
        data = text.encode(errors="replace")
        while data:
            data = data[os.write(fd, data):]

    # -- ticker ------------------------------------------------------------------------------
    def __enter__(self) -> "Progress":
        self._ticker = threading.Thread(target=self._tick_loop, name="progress-ticker", daemon=True)
        self._ticker.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join(2)
        if self.live and self.done < self.total:
            with self._lock:
                self._write("\n")  # leave the live line; the next message starts on its own

    def _tick_loop(self) -> None:
        while not self._stop.wait(TTY_TICK_S if self.live else min(self.tick_s, TTY_TICK_S)):
            self.tick()
