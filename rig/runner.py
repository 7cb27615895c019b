"""Running measurements: warm-up, repetitions, progress on stderr, provenance, storing records.

Probes hand back raw samples; this module wraps them into records and stores each one as soon as
it is complete, so an interrupted run keeps everything finished before the interrupt.
"""

from __future__ import annotations

import sys
import time
from contextlib import contextmanager
from typing import Any, Callable, Iterator, TypeVar

from results import provenance
from results.record import Record
from results.store import Store

T = TypeVar("T")


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


@contextmanager
def progress(total: int, label: str) -> Iterator[Progress]:
    yield Progress(total, label)


def repeat(fn: Callable[[], T], repetitions: int, warmup: int = 1) -> list[T]:
    """Call fn warmup times (results dropped), then `repetitions` times; return those results."""
    for _ in range(warmup):
        fn()
    return [fn() for _ in range(repetitions)]


def measured_record(name: str, params: dict[str, Any], samples: dict[str, list[float]],
                    summary: dict[str, Any], extra_provenance: dict[str, Any] | None = None,
                    scenario: dict[str, Any] | None = None) -> Record:
    return Record(kind="measured", name=name, params=params, samples=samples, summary=summary,
                  provenance=provenance.collect(extra_provenance), scenario=scenario)


def store_record(record: Record, store: Store | None) -> Record:
    if store is not None:
        store.insert(record)
    return record
