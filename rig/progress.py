"""Progress of a long run on stderr: a live line on a terminal, one line per step in a log."""

from __future__ import annotations

import sys
import time


class Progress:
    """A one-line progress report on stderr (a terminal gets a live line, a log gets one per step)."""

    def __init__(self, total: int, label: str, stream=None):
        self.total, self.label, self.done = total, label, 0
        self.stream = stream or sys.stderr
        self.t0 = time.monotonic()
        self.live = self.stream.isatty()

    def step(self, what: str = "") -> None:
        self.done += 1
        elapsed = time.monotonic() - self.t0
        eta = elapsed / self.done * (self.total - self.done) if self.done else 0.0
        text = f"[{self.done}/{self.total}] {self.label} {what} ({elapsed:.0f}s, ~{eta:.0f}s left)"
        if self.live:
            self.stream.write("\r\033[K" + text)
            if self.done >= self.total:
                self.stream.write("\n")
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def note(self, text: str) -> None:
        if self.live:
            self.stream.write("\r\033[K")
        self.stream.write(text + "\n")
        self.stream.flush()
