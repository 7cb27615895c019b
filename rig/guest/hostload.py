"""The host's CPU while a guest run measures: /proc/stat's CPU line sampled on the host every
second, and for each record the run lands the host's busy and stolen share of CPU time since the
record before it (the first: since the guest started). Under TCG a guest vCPU that the host's
hypervisor stops (steal) or the host's other work delays still counts its time as run, so guest
CPU figures inflate with the host's steal and load; a record that says how much of either it was
measured under can be compared with its parts taken under the same, or not.

The sampler also times qemu's vCPU threads (named "CPU n/TCG" by -name debug-threads=on): what the
host executed of the guest. With the guest's own busy time over the same seconds (rig.guest.guest_stat)
each record gets `guest_cpu_executed` over its own timed window: the share of the guest's busy vCPU
time the host executed. In the 2026-12-01 19:32 session (host steal 2 %) it was 0.98 (0.94-1.00)
for `measure smbd` with both vCPUs busy and 0.94-1.00 for every part: the whole's guest CPU seconds
held no more time the host did not execute than its parts' did. (An earlier estimate of 0.71 for
the whole took the host's /proc/stat sampled every 5 s over windows up to 10 s wider than the runs,
idle time included: wrong.)"""

from __future__ import annotations

import datetime as _dt
import os
import threading
import time
from pathlib import Path

STAT = "/proc/stat"
PERIOD_S = 1.0
TICKS_PER_S = os.sysconf("SC_CLK_TCK")
VCPU_THREAD_PREFIX = "CPU "        # qemu's vCPU thread names with debug-threads=on: "CPU 0/TCG"


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


def read_cpu_busy(path: str = STAT) -> dict[int, float] | None:
    """{cpu index: busy seconds (user, nice, system, irq, softirq; not steal: time a hypervisor ran
    others, which a paravirtual guest counts apart from its tasks' time)} of each CPU line."""
    from rig.accounting import read_proc_stat
    try:
        stat = read_proc_stat(path)
    except (OSError, ValueError):
        return None
    out = {int(name[3:]): sum(f.get(k, 0.0) for k in ("user", "nice", "system", "irq", "softirq"))
           for name, f in stat.items() if name != "cpu"}
    return out or None


def qemu_child(parent: int | None = None) -> int | None:
    """The pid of a qemu-system process whose parent is `parent` (default: this process), or None."""
    parent = os.getpid() if parent is None else parent
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        comm, rest = stat[stat.index("(") + 1:stat.rindex(")")], stat[stat.rindex(")") + 2:].split()
        if comm.startswith("qemu-system") and int(rest[1]) == parent:
            return int(entry.name)
    return None


def vcpu_seconds(pid: int) -> dict[int, float] | None:
    """{vCPU index: user + system seconds the host ran that vCPU's thread} of qemu `pid`; None where
    it has no named vCPU thread (a qemu without debug-threads) or is gone."""
    out = {}
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return None
    for task in tasks:
        try:
            comm = (task / "comm").read_text()
            if not comm.startswith(VCPU_THREAD_PREFIX):
                continue
            stat = (task / "stat").read_text()
            index = int(comm[len(VCPU_THREAD_PREFIX):].split("/")[0])
        except (OSError, ValueError):
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        out[index] = (int(fields[11]) + int(fields[12])) / TICKS_PER_S      # utime, stime
    return out or None


class HostSampler:
    """Samples (unix time, busy, steal, total) every PERIOD_S in a daemon thread until stop(), and
    (unix time, vCPU seconds) of this process's qemu child once it runs."""

    def __init__(self, path: str = STAT, period_s: float = PERIOD_S):
        self.path, self.period_s = path, period_s
        self.samples: list[tuple[float, int, int, int]] = []
        self.vcpu_samples: list[tuple[float, dict[int, float]]] = []
        self._qemu: int | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="host-cpu-sampler", daemon=True)

    def take(self) -> None:
        """One sample (the thread's each period; the runner's when the guest says its command is done,
        before qemu exits, so the vCPU series spans the command's last record)."""
        line = read_cpu_line(self.path)
        if line is not None:
            self.samples.append((time.time(), *line))
        if self._qemu is None:
            self._qemu = qemu_child()
        if self._qemu is not None:
            vcpu = vcpu_seconds(self._qemu)
            if vcpu is not None:
                self.vcpu_samples.append((time.time(), vcpu))

    def _run(self) -> None:
        self.take()
        while not self._stop.wait(self.period_s):
            self.take()

    def start(self) -> HostSampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.take()


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


def at(series: list[tuple[float, float]], t: float) -> float | None:
    """A cumulative counter's value at time t, linear between the samples around it; None outside."""
    if not series or t < series[0][0] or t > series[-1][0]:
        return None
    for (ta, va), (tb, vb) in zip(series, series[1:]):
        if ta <= t <= tb:
            return va if tb == ta else va + (vb - va) * (t - ta) / (tb - ta)
    return series[-1][1]


def executed(vcpu_samples: list[tuple[float, dict[int, float]]], guest_samples: list[tuple[float, dict[int, float]]],
             t0: float, t1: float) -> dict | None:
    """Between t0 and t1, per second: the vCPU seconds the host executed and the busy seconds the
    guest counted, summed over the vCPUs, and the executed share of the guest's busy time; None where
    the series do not span the window or hold no vCPU in common.

    The share counts per vCPU the busy time the host did not execute (busy - executed, at least 0)
    against the busy time: a vCPU mostly idle in the guest still costs the host time (each interrupt
    that wakes it), which the guest counts as idle, so it cannot vouch for the others' busy time."""
    if t1 <= t0:
        return None
    run, busy, lost, found = 0.0, 0.0, 0.0, 0
    for cpu in sorted({c for _, v in vcpu_samples + guest_samples for c in v}):
        # each vCPU from the samples that hold it: one read while qemu starts or stops its threads
        # (or a sampling line cut short) does not drop it from every window
        own = [[(t, v[cpu]) for t, v in series if cpu in v] for series in (vcpu_samples, guest_samples)]
        ends = [at(series, t) for series in own for t in (t0, t1)]
        if None in ends:
            continue
        e = (ends[1] - ends[0]) / (t1 - t0)
        g = (ends[3] - ends[2]) / (t1 - t0)
        run, busy, lost, found = run + e, busy + g, lost + max(0.0, g - e), found + 1
    if not found:
        return None
    return {"executed_cpu_per_s": round(run, 3), "guest_busy_cpu_per_s": round(busy, 3),
            "executed_fraction": round(1.0 - lost / busy, 3) if busy > 0 else None, "window_s": round(t1 - t0, 2)}


def annotate_spool(spool: Path, samples: list[tuple[float, int, int, int]], start: float,
                   vcpu_samples: list[tuple[float, dict[int, float]]] | None = None,
                   guest_samples: list[tuple[float, dict[int, float]]] | None = None) -> int:
    """Add `host_cpu_under_guest` to the provenance of every spooled record: the host's shares over
    the span from the record before it (by creation time; the first: from `start`, the guest's start) to its own
    creation; and, given the vCPU and guest busy samples, `guest_cpu_executed` over the record's own
    timed window (its summary's `seconds` up to `ended_unix_s`, else up to its creation; else the same
    span): a record is created after its run's checks and provenance (git under TCG: seconds). Rewrites the record
    files in place; returns how many were annotated."""
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
    vcpu_samples = sorted(vcpu_samples or [], key=lambda x: x[0])      # the thread's and the runner's, merged
    done, since = 0, start
    for t, path, rec in sorted(found, key=lambda x: x[0]):
        shares = window(samples, since, t)
        summary = rec.summary or {}
        seconds, ended = summary.get("seconds"), summary.get("ended_unix_s")
        end = ended if isinstance(ended, (int, float)) and start <= ended <= t else t
        timed_from = end - seconds if isinstance(seconds, (int, float)) and 0 < seconds < end - start + 1 else since
        ran = executed(vcpu_samples, guest_samples or [], max(timed_from, start), end)
        since = t
        if shares is None and ran is None:
            continue
        prov = dict(rec.provenance or {})
        if shares is not None:
            prov["host_cpu_under_guest"] = {
                **shares, "what": "the host's /proc/stat over the span since the record before (busy: user, "
                                  "nice, system, irq, softirq; steal: time the host's hypervisor ran others)"}
        if ran is not None:
            prov["guest_cpu_executed"] = {
                **ran, "what": "over the record's timed window: the host's user + system time of qemu's vCPU "
                               "threads, and the guest's busy time (its /proc/stat), each per second; the fraction, "
                               "1 - (per vCPU, busy time the host did not execute) / busy time, converts the "
                               "record's guest CPU seconds into executed ones"}
        rec.provenance = prov
        tmp = path.with_suffix(".tmp")
        tmp.write_text(rec.to_json())
        tmp.replace(path)
        done += 1
    return done
