"""The host's CPU while a guest run measures: /proc/stat's CPU line sampled on the host every
second, and for each record the run lands the host's busy and stolen share of CPU time since the
record before it (the first: since the guest started). Under TCG a guest vCPU that the host's
hypervisor stops (steal) or the host's other work delays still counts its time as run, so guest
CPU figures inflate with the host's steal and load; a record that says how much of either it was
measured under can be compared with its parts taken under the same, or not."""

from __future__ import annotations

import datetime as _dt
import threading
import time
from pathlib import Path

STAT = "/proc/stat"
PERIOD_S = 1.0


def read_cpu_line(path: str = STAT) -> tuple[int, int, int] | None:
    """(busy, steal, total) jiffies of all CPUs; None where /proc/stat cannot be read."""
    try:
        with open(path) as f:
            fields = f.readline().split()
    except OSError:
        return None
    if not fields or fields[0] != "cpu":
        return None
    v = [int(x) for x in fields[1:]] + [0] * 8
    user, nice, system, idle, iowait, irq, softirq, steal = v[:8]
    busy = user + nice + system + irq + softirq
    return busy, steal, busy + idle + iowait + steal


class HostSampler:
    """Samples (unix time, busy, steal, total) every PERIOD_S in a daemon thread until stop()."""

    def __init__(self, path: str = STAT, period_s: float = PERIOD_S):
        self.path, self.period_s = path, period_s
        self.samples: list[tuple[float, int, int, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="host-cpu-sampler", daemon=True)

    def _take(self) -> None:
        line = read_cpu_line(self.path)
        if line is not None:
            self.samples.append((time.time(), *line))

    def _run(self) -> None:
        self._take()
        while not self._stop.wait(self.period_s):
            self._take()

    def start(self) -> HostSampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._take()


def window(samples: list[tuple[float, int, int, int]], t0: float, t1: float) -> dict | None:
    """The host's busy and stolen shares of its CPU time between the last sample at or before t0 and
    the first at or after t1; None where the samples do not span the window."""
    before = [s for s in samples if s[0] <= t0]
    after = [s for s in samples if s[0] >= t1]
    if not before or not after:
        return None
    a, b = before[-1], after[0]
    total = b[3] - a[3]
    if total <= 0:
        return None
    return {"busy_fraction": round((b[1] - a[1]) / total, 4), "steal_fraction": round((b[2] - a[2]) / total, 4),
            "window_s": round(b[0] - a[0], 1)}


def _when(text: str | None) -> float | None:
    try:
        return _dt.datetime.fromisoformat(text).timestamp() if text else None
    except ValueError:
        return None


def annotate_spool(spool: Path, samples: list[tuple[float, int, int, int]], start: float) -> int:
    """Add `host_cpu_under_guest` to the provenance of every spooled record: the host's shares over
    the span from the record before it (by creation time; the first: from `start`, the guest's start) to its own
    creation. Rewrites the record files in place; returns how many were annotated."""
    from results.record import RecordError, from_json
    found = []
    for path in Path(spool).glob("*.json"):
        try:
            rec = from_json(path.read_text())
        except (OSError, RecordError):
            continue
        t = _when(rec.created)
        if t is not None:
            found.append((t, path, rec))
    done, since = 0, start
    for t, path, rec in sorted(found, key=lambda x: x[0]):
        shares = window(samples, since, t)
        since = t
        if shares is None:
            continue
        rec.provenance = {**(rec.provenance or {}), "host_cpu_under_guest": {
            **shares, "what": "the host's /proc/stat over the span since the record before (busy: user, "
                              "nice, system, irq, softirq; steal: time the host's hypervisor ran others)"}}
        tmp = path.with_suffix(".tmp")
        tmp.write_text(rec.to_json())
        tmp.replace(path)
        done += 1
    return done
