"""CPU accounting for one measured transfer.

Three sources, read before and after the timed window, arithmetic afterwards:
- getrusage(RUSAGE_SELF) inside each probe process: user and system seconds, including threads
  that already exited (io_uring workers). Tick-sampled (HZ=250 here), so +-4 ms per reading.
- /proc/stat per CPU: user, system, softirq, irq, steal, idle in clock ticks.
- ksoftirqd/N run time from /proc/<pid>/schedstat (nanoseconds, exact).

Softirq served in a task's context (the loopback receive path inside the sender's send()) is,
on a kernel without CONFIG_IRQ_TIME_ACCOUNTING, charged to that task's system time AND to the CPU's
softirq time in /proc/stat (kernel/sched/cputime.c: account_system_time() picks the cpustat index
from in_serving_softirq(), account_system_index_time() adds the same time to p->stime). That is the
kernel's design, not a bug; reporting system + softirq would count it twice, so `side_split` takes
the in-context share out of the process's system time. With CONFIG_IRQ_TIME_ACCOUNTING the task's
time excludes softirq already, so nothing is taken out; where the kernel config is unreadable
nothing is taken out either and the record says so (its totals may then count softirq twice).
Softirq deferred to ksoftirqd is in ksoftirqd's schedstat and in the CPU's softirq time.
"""

from __future__ import annotations

import functools
import gzip
import os
import platform
import resource
from dataclasses import dataclass
from pathlib import Path

TICKS_PER_S = os.sysconf("SC_CLK_TCK")
# a CPU busy with other tenants' work above this many CPU-seconds per second makes a noisy run
FOREIGN_CPU_WARN_PER_S = 0.25


@dataclass(frozen=True)
class Rusage:
    user_s: float
    system_s: float

    @staticmethod
    def now() -> "Rusage":
        ru = resource.getrusage(resource.RUSAGE_SELF)
        return Rusage(ru.ru_utime, ru.ru_stime)

    @staticmethod
    def children() -> "Rusage":
        """Waited-for children (the memcpy copiers once joined)."""
        ru = resource.getrusage(resource.RUSAGE_CHILDREN)
        return Rusage(ru.ru_utime, ru.ru_stime)

    def __sub__(self, other: "Rusage") -> "Rusage":
        return Rusage(self.user_s - other.user_s, self.system_s - other.system_s)


_STAT_FIELDS = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")


def read_proc_stat() -> dict[str, dict[str, float]]:
    """{'cpu': {...}, 'cpu0': {...}, ...} in seconds."""
    out: dict[str, dict[str, float]] = {}
    for line in Path("/proc/stat").read_text().splitlines():
        if not line.startswith("cpu"):
            break
        name, *values = line.split()
        out[name] = {f: int(v) / TICKS_PER_S for f, v in zip(_STAT_FIELDS, values)}
    return out


def ksoftirqd_pids() -> dict[int, int]:
    """{cpu: pid of ksoftirqd/cpu}."""
    pids = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            comm = (entry / "comm").read_text().strip()
        except OSError:
            continue
        if comm.startswith("ksoftirqd/"):
            pids[int(comm.split("/", 1)[1])] = int(entry.name)
    return pids


def read_ksoftirqd_s(pids: dict[int, int]) -> dict[int, float]:
    out = {}
    for cpu, pid in pids.items():
        try:
            out[cpu] = int(Path(f"/proc/{pid}/schedstat").read_text().split()[0]) / 1e9
        except (OSError, ValueError, IndexError):
            out[cpu] = 0.0
    return out


@dataclass(frozen=True)
class HostSnapshot:
    stat: dict[str, dict[str, float]]
    ksoftirqd_s: dict[int, float]

    @staticmethod
    def now(pids: dict[int, int]) -> "HostSnapshot":
        return HostSnapshot(read_proc_stat(), read_ksoftirqd_s(pids))


def host_delta(before: HostSnapshot, after: HostSnapshot) -> dict:
    """Per-CPU deltas of /proc/stat fields and ksoftirqd run time, in seconds."""
    cpus = {}
    for name, fields in after.stat.items():
        cpus[name] = {f: after.stat[name][f] - before.stat[name].get(f, 0.0) for f in fields}
    ksoft = {cpu: after.ksoftirqd_s.get(cpu, 0.0) - before.ksoftirqd_s.get(cpu, 0.0)
             for cpu in after.ksoftirqd_s}
    return {"stat": cpus, "ksoftirqd_s": ksoft}


def _busy(fields: dict[str, float]) -> float:
    return sum(fields[f] for f in ("user", "nice", "system", "irq", "softirq", "steal"))


@functools.cache
def softirq_in_task_time() -> bool | None:
    """True when this kernel charges softirq served in a task's context to the task's system time
    (no CONFIG_IRQ_TIME_ACCOUNTING), False when it does not, None when the config is unreadable.

    With CONFIG_IRQ_TIME_ACCOUNTING=y the kernel can still turn irq time accounting off at boot (an
    unstable TSC); that case reads as False here.
    """
    candidates = (Path("/proc/config.gz"), Path(f"/boot/config-{platform.release()}"))
    for path in candidates:
        try:
            text = gzip.decompress(path.read_bytes()).decode() if path.suffix == ".gz" else path.read_text()
        except (OSError, EOFError, gzip.BadGzipFile, UnicodeDecodeError):
            continue
        return "CONFIG_IRQ_TIME_ACCOUNTING=y" not in text.splitlines()
    return None


def side_split(rusage: Rusage, cpu: int | None, delta: dict,
               softirq_in_system: bool | None = None) -> dict[str, float]:
    """user / system / softirq seconds of one side of a transfer.

    softirq = the /proc/stat softirq (+irq) time of the CPU the side was pinned to: packet work runs
    where the packet is handled, and on loopback that is mostly the sender's CPU, which is reported
    as it is. When `softirq_in_system` (see `softirq_in_task_time`), the part of it that did not run
    in ksoftirqd is taken to have run inside our process, whose system time also holds it, and is
    taken out of that (at most all of it: softirq that interrupted another task or the idle loop on
    the same CPU is not ours, so the clamp bounds the error). Unpinned sides get softirq None.
    """
    if cpu is None or f"cpu{cpu}" not in delta["stat"]:
        return {"user_s": rusage.user_s, "system_s": rusage.system_s, "softirq_s": None,
                "ksoftirqd_s": None}
    stat = delta["stat"][f"cpu{cpu}"]
    softirq = stat["softirq"] + stat["irq"]
    ksoft = delta["ksoftirqd_s"].get(cpu, 0.0)
    in_process = max(0.0, softirq - ksoft) if softirq_in_system else 0.0
    return {"user_s": rusage.user_s, "system_s": max(0.0, rusage.system_s - in_process),
            "softirq_s": softirq, "ksoftirqd_s": ksoft}


def foreign_cpu_per_s(delta: dict, ours: list[Rusage], wall_s: float) -> dict[str, float]:
    """CPU time spent by anything but the probe (other tenants, steal), per second of the run."""
    total = delta["stat"].get("cpu", {})
    if not total or wall_s <= 0:
        return {"foreign_cpu_per_s": float("nan"), "steal_cpu_per_s": float("nan")}
    busy = _busy(total)
    # softirq ticks inside our processes are in their system time; ksoftirqd's are in its schedstat
    own = sum(r.user_s + r.system_s for r in ours) + sum(delta["ksoftirqd_s"].values()) + total["irq"]
    return {"foreign_cpu_per_s": max(0.0, busy - own) / wall_s,
            "steal_cpu_per_s": total["steal"] / wall_s}
