"""CPU accounting: the one module that counts CPU for every probe (copy probes, verbs runs,
perftest runs, `rdmarig serve`), each part of the work counted once.

Sources, read before and after the timed window, arithmetic afterwards:
- getrusage: user and system seconds of this process (RUSAGE_SELF, including threads that already
  exited, e.g. io_uring workers), of one thread (RUSAGE_THREAD: a `serve` session), or of children
  reaped with wait4 (perftest). Tick-sampled (HZ=250 here), so +-4 ms per reading.
- /proc/stat per CPU: user, system, softirq, irq, steal, idle in clock ticks.
- ksoftirqd/N and kworker run time from /proc/<pid>/schedstat (nanoseconds, exact).
- /proc/interrupts: the machine's inter-processor interrupts (x86: CAL, TLB, RES), counted, not
  timed. Under TCG each one stops the receiving vCPU's translated code, and a TLB shootdown empties
  its whole software TLB, so the same work costs the guest more CPU when they are many.

Softirq served in a task's context (the loopback receive path inside the sender's send(); a veth
packet received inside a busy-polling verbs loop) is, on a kernel without
CONFIG_IRQ_TIME_ACCOUNTING, charged to that task's system time AND to the CPU's softirq time in
/proc/stat (kernel/sched/cputime.c: account_system_time() picks the cpustat index from
in_serving_softirq(), account_system_index_time() adds the same time to p->stime). That is the
kernel's design, not a bug; reporting system + softirq would count it twice, so `side_split` takes
the in-context share out of the side's system time. With CONFIG_IRQ_TIME_ACCOUNTING the task's
time excludes softirq already, so nothing is taken out; where the kernel config is unreadable
nothing is taken out either and the record says so (its totals may then count softirq twice).
Softirq deferred to ksoftirqd is in ksoftirqd's schedstat and in the CPU's softirq time.

Where soft-RoCE (rdma_rxe) work lands, measured in the guest's Debian 6.1 kernel (HZ=250, no
CONFIG_IRQ_TIME_ACCOUNTING), RDMA WRITE/READ loops of 64 KiB and 1 MiB, per-CPU /proc/stat,
/proc/softirqs and schedstat deltas:
- one device (rxe0 -> rxe0): rxe's loopback path runs requester, responder and completer in the
  posting task; everything is in its system time, /proc/stat softirq stays ~0.
- across the veth (rxe0 -> rxe1): every packet is received in NET_RX softirq (~50 000 per CPU
  per run), in one of two ways, run by run: (a) inside the busy-polling process, on whichever CPU
  it is on (1-1.5 s of softirq in its system time, ksoftirqd ~0.05 s): adding /proc/stat softirq
  to the process's time counted that twice, 15-46 % too much; (b) deferred to ksoftirqd on the
  other CPU while the process spins in user space: /proc/stat then showed as softirq only
  60-70 % of ksoftirqd's exact run time, so process + /proc/stat softirq counted 12-25 % too
  little. Process time + ksoftirqd time matched the guest's busy CPU time within 1 % in both
  ways: the split below counts exactly that (CpuWindow: softirq = max(sampled, ksoftirqd),
  the sampled rest taken out of the busy process's system time).
- rxe's tasks run in tasklets in 6.1 (a few dozen TASKLET softirqs per run); from 6.4 on they
  run in the `rxe_wq` workqueue, i.e. in kworker threads, whose time is in neither the process's
  rusage nor softirq: `rxe_kworker_s` counts kworkers named after rxe_wq (0 in 6.1). Other
  kworkers (vmstat, power-efficient events: 0.05-0.2 s per run here, with or without traffic) are
  not counted.
"""

from __future__ import annotations

import functools
import gzip
import math
import os
import platform
import resource
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Collection

TICKS_PER_S = os.sysconf("SC_CLK_TCK")
# a CPU busy with other tenants' work above this many CPU-seconds per second makes a noisy run
FOREIGN_CPU_WARN_PER_S = 0.25
RXE_WORKQUEUE = "rxe_wq"


@dataclass(frozen=True)
class Rusage:
    user_s: float
    system_s: float

    @staticmethod
    def now() -> "Rusage":
        ru = resource.getrusage(resource.RUSAGE_SELF)
        return Rusage(ru.ru_utime, ru.ru_stime)

    @staticmethod
    def thread() -> "Rusage":
        """The calling thread only (a serve session among others)."""
        ru = resource.getrusage(resource.RUSAGE_THREAD)
        return Rusage(ru.ru_utime, ru.ru_stime)

    @staticmethod
    def children() -> "Rusage":
        """Waited-for children (the memcpy copiers once joined)."""
        ru = resource.getrusage(resource.RUSAGE_CHILDREN)
        return Rusage(ru.ru_utime, ru.ru_stime)

    def __sub__(self, other: "Rusage") -> "Rusage":
        return Rusage(self.user_s - other.user_s, self.system_s - other.system_s)

    def __add__(self, other: "Rusage") -> "Rusage":
        return Rusage(self.user_s + other.user_s, self.system_s + other.system_s)


_STAT_FIELDS = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")


def read_proc_stat(path: str = "/proc/stat") -> dict[str, dict[str, float]]:
    """{'cpu': {...}, 'cpu0': {...}, ...} in seconds."""
    return _parse_stat(Path(path).read_text())[0]


def _parse_stat(text: str) -> tuple[dict[str, dict[str, float]], int | None]:
    """/proc/stat's CPU lines (in seconds) and its ctxt count (None where the line is not there)."""
    cpus: dict[str, dict[str, float]] = {}
    ctxt = None
    for line in text.splitlines():
        if line.startswith("cpu"):
            name, *values = line.split()
            cpus[name] = {f: int(v) / TICKS_PER_S for f, v in zip(_STAT_FIELDS, values)}
        elif line.startswith("ctxt "):
            try:
                ctxt = int(line.split()[1])
            except (ValueError, IndexError):
                pass
    return cpus, ctxt


def _kernel_threads(prefixes: tuple[str, ...]) -> dict[int, str]:
    """{pid: comm} of the threads whose name starts with one of `prefixes`."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            comm = (entry / "comm").read_text().strip()
        except OSError:
            continue
        if comm.startswith(prefixes):
            found[int(entry.name)] = comm
    return found


def ksoftirqd_pids() -> dict[int, int]:
    """{cpu: pid of ksoftirqd/cpu}."""
    return {int(comm.split("/", 1)[1]): pid for pid, comm in _kernel_threads(("ksoftirqd/",)).items()}


def _run_s(pid: int) -> float:
    try:
        return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0]) / 1e9
    except (OSError, ValueError, IndexError):
        return 0.0


def read_ksoftirqd_s(pids: dict[int, int]) -> dict[int, float]:
    return {cpu: _run_s(pid) for cpu, pid in pids.items()}


IPI_LINES = {"CAL": "function_call_ipis", "TLB": "tlb_shootdown_ipis", "RES": "reschedule_ipis"}


def read_ipis(path: str = "/proc/interrupts") -> dict[str, int]:
    """Machine-wide counts of x86's IPI lines (arch/x86/kernel/irq.c): function calls (CAL, which
    counts the remote TLB flushes too), TLB shootdowns received (TLB), reschedules (RES), summed
    over the CPUs; {} where the file or the lines are not there (other architectures)."""
    try:
        lines = Path(path).read_text().splitlines()
    except OSError:
        return {}
    cpus = len(lines[0].split()) if lines else 0
    out = {}
    for line in lines[1:]:
        label, _, rest = line.partition(":")
        name = IPI_LINES.get(label.strip())
        if name:
            counts = rest.split()[:cpus]
            out[name] = sum(int(c) for c in counts if c.isdigit())
    return out


def read_context_switches(path: str = "/proc/stat") -> int | None:
    """The machine's context switches since boot (/proc/stat's ctxt line); None where not there."""
    try:
        return _parse_stat(Path(path).read_text())[1]
    except OSError:
        return None


def own_switches(scope: str) -> tuple[int, int] | None:
    """(voluntary, involuntary) context switches so far of this process (every thread: scope
    "process") or of the calling thread ("thread"); None for other scopes. Under TCG each one changes
    the page tables a vCPU runs on, and the emulator then rebuilds its software TLB."""
    who = {"process": resource.RUSAGE_SELF, "thread": resource.RUSAGE_THREAD}.get(scope)
    if who is None:
        return None
    ru = resource.getrusage(who)
    return ru.ru_nvcsw, ru.ru_nivcsw


@dataclass(frozen=True)
class HostSnapshot:
    stat: dict[str, dict[str, float]]
    ksoftirqd_s: dict[int, float]
    context_switches: int | None = None      # the machine's since boot (/proc/stat ctxt)

    @staticmethod
    def now(pids: dict[int, int]) -> "HostSnapshot":
        stat, ctxt = _parse_stat(Path("/proc/stat").read_text())
        return HostSnapshot(stat, read_ksoftirqd_s(pids), ctxt)


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


def _spread(delta: dict, cpus: Collection[int], wall: float) -> dict[str, float]:
    """How the window's work sat on its CPUs: the share of ksoftirqd's run time on the CPU that ran
    most of it (1/n spread evenly over n CPUs, 1 all on one), and the least busy CPU's busy time per
    second. A soft NIC's deferred chain runs on the CPU its poster sent from, so the CPUs the
    posters sat on decide whether it spreads."""
    out = {}
    ksoft = [delta["ksoftirqd_s"].get(c, 0.0) for c in cpus]
    if ksoft and sum(ksoft) > 0:
        out["ksoftirqd_top_share"] = max(ksoft) / sum(ksoft)
    busy = [_busy(delta["stat"][f"cpu{c}"]) for c in cpus if f"cpu{c}" in delta["stat"]]
    if busy and wall > 0:
        out["least_busy_cpu_per_s"] = min(busy) / wall
    return out


def kernel_config_candidates() -> list[Path]:
    """Where this kernel's build configuration may be: /proc/config.gz, /boot, and, inside the
    soft-RoCE guest (whose / is the host's), the kernel the guest was prepared from."""
    release = platform.release()
    paths = [Path("/proc/config.gz"), Path(f"/boot/config-{release}")]
    if os.environ.get("RDMARIG_GUEST") == "1":
        from rig.guest.cache import default_cache_dir
        paths.append(default_cache_dir() / "kernel" / "boot" / f"config-{release}")
    return paths


@functools.cache
def kernel_config_path() -> Path | None:
    """The first readable kernel configuration of `kernel_config_candidates`, or None."""
    for path in kernel_config_candidates():
        if _read_config(path) is not None:
            return path
    return None


def _read_config(path: Path) -> str | None:
    try:
        return gzip.decompress(path.read_bytes()).decode() if path.suffix == ".gz" else path.read_text()
    except (OSError, EOFError, gzip.BadGzipFile, UnicodeDecodeError):
        return None


@functools.cache
def softirq_in_task_time() -> bool | None:
    """True when this kernel charges softirq served in a task's context to the task's system time
    (no CONFIG_IRQ_TIME_ACCOUNTING), False when it does not, None when the config is unreadable.

    With CONFIG_IRQ_TIME_ACCOUNTING=y the kernel can still turn irq time accounting off at boot (an
    unstable TSC); that case reads as False here.
    """
    path = kernel_config_path()
    return None if path is None else softirq_in_task_time_of(_read_config(path) or "")


def softirq_in_task_time_of(config_text: str) -> bool:
    return "CONFIG_IRQ_TIME_ACCOUNTING=y" not in config_text.splitlines()


def side_split(rusage: Rusage, cpu: int | Collection[int] | None, delta: dict,
               softirq_in_system: bool | None = None, busy: bool = True,
               ksoftirqd_exact: bool = False) -> dict[str, float]:
    """user / system / softirq seconds of one side of a transfer.

    softirq = the /proc/stat softirq (+irq) time of the CPU(s) the side ran on: packet work runs
    where the packet is handled, and on loopback that is mostly the sender's CPU, which is reported
    as it is. With `ksoftirqd_exact`, softirq is at least ksoftirqd's run time (schedstat, exact):
    /proc/stat samples ticks, and in the TCG guest it showed as softirq only 60-70 % of what
    ksoftirqd ran (the rest as system), while process + ksoftirqd time matched the busy CPU.
    When `softirq_in_system` (see `softirq_in_task_time`) and the side was `busy` on those
    CPUs for the whole window (a pinned copy probe, a busy-polling verbs loop), the part of it that
    did not run in ksoftirqd is taken to have run inside the side's process, whose system time also
    holds it, and is taken out of that (at most all of it: softirq that interrupted another task or
    the idle loop on the same CPU is not ours, so the clamp bounds the error). A side that sleeps
    (a `serve` session waiting on its socket) was not there when softirq ran: nothing is taken
    out. Sides with no CPU given get softirq None.
    """
    cpus = [cpu] if isinstance(cpu, int) else list(cpu or ())
    if not cpus or any(f"cpu{c}" not in delta["stat"] for c in cpus):
        return {"user_s": rusage.user_s, "system_s": rusage.system_s, "softirq_s": None,
                "ksoftirqd_s": None, "system_raw_s": rusage.system_s, "softirq_in_process_s": 0.0}
    sampled = sum(delta["stat"][f"cpu{c}"]["softirq"] + delta["stat"][f"cpu{c}"]["irq"] for c in cpus)
    ksoft = sum(delta["ksoftirqd_s"].get(c, 0.0) for c in cpus)
    softirq = max(sampled, ksoft) if ksoftirqd_exact else sampled
    in_process = max(0.0, sampled - ksoft) if softirq_in_system and busy else 0.0
    system = max(0.0, rusage.system_s - in_process)
    return {"user_s": rusage.user_s, "system_s": system, "softirq_s": softirq, "ksoftirqd_s": ksoft,
            "system_raw_s": rusage.system_s, "softirq_in_process_s": rusage.system_s - system}


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


# ---- one measured window (verbs runs, perftest runs, serve sessions) ---------------------------

# the figures of a window, each counted once; their sum is the side's CPU time
CPU_PARTS = ("user_s", "system_s", "softirq_s", "rxe_kworker_s")
SCOPES = ("process", "thread", "given")


def _kworkers() -> dict[int, str]:
    return _kernel_threads(("kworker/",))


def rxe_kworker_s(before: dict[int, float], after_names: dict[int, str]) -> float:
    """Run time of the kworkers that ran rxe's workqueue (their name ends in -rxe_wq after the
    window) since `before` ({pid: run seconds}; a worker born during the window counts from 0)."""
    return sum(max(0.0, _run_s(pid) - before.get(pid, 0.0)) for pid, comm in after_names.items()
               if RXE_WORKQUEUE in comm)


class CpuWindow:
    """CPU used by one side of a run between `start()` and `stop()`.

    scope: "process" (this process, every thread: a verbs loop playing both ends, or one end of a
    two-host run), "thread" (the calling thread: one `serve` session among others), "given" (the
    caller passes the rusage to stop(): perftest's children, reaped with wait4).
    busy: the side busy-polls the whole window (verbs loops, perftest, a SEND target); a side that
    sleeps in a socket wait is not, and keeps its system time whole.
    cpus: the CPUs whose softirq is the side's (default: the CPUs this process may run on; softirq
    follows the busy side, so in the guest that is every CPU).
    """

    def __init__(self, scope: str = "process", busy: bool = True, cpus: Collection[int] | None = None,
                 ksoftirqd: dict[int, int] | None = None):
        if scope not in SCOPES:
            raise ValueError(f"scope {scope!r} is not one of {SCOPES}")
        self.scope, self.busy = scope, busy
        self.cpus = sorted(cpus if cpus is not None else os.sched_getaffinity(0))
        self.pids = ksoftirqd if ksoftirqd is not None else ksoftirqd_pids()

    def _rusage(self) -> Rusage:
        return Rusage.now() if self.scope == "process" else Rusage.thread() if self.scope == "thread" \
            else Rusage(0.0, 0.0)

    def start(self) -> "CpuWindow":
        self.kworkers0 = {pid: _run_s(pid) for pid in _kworkers()}
        self.ipis0 = read_ipis()
        self.switches0 = own_switches(self.scope)
        self.host0 = HostSnapshot.now(self.pids)
        self.rusage0 = self._rusage()
        self.t0 = time.perf_counter()
        return self

    def stop(self, rusage: Rusage | None = None) -> dict[str, float]:
        """The side's figures in seconds: user, system (less in-context softirq), softirq and irq
        of its CPUs, rxe kworkers, and the parts behind them (system_raw_s, softirq_in_process_s,
        ksoftirqd_s); `rusage` is required for scope "given"."""
        wall = time.perf_counter() - self.t0
        ru = self._rusage() - self.rusage0 if self.scope != "given" else rusage
        if ru is None:
            raise ValueError("scope 'given' needs the rusage passed to stop()")
        host1 = HostSnapshot.now(self.pids)
        delta = host_delta(self.host0, host1)
        ipis = read_ipis()
        out = side_split(ru, self.cpus, delta, softirq_in_task_time(), self.busy, ksoftirqd_exact=True)
        out["rxe_kworker_s"] = rxe_kworker_s(self.kworkers0, _kworkers())
        out["wall_s"] = wall
        out["busy_cpu_per_s"] = _busy(delta["stat"]["cpu"]) / wall if wall > 0 and "cpu" in delta["stat"] else math.nan
        out.update(foreign_cpu_per_s(delta, [ru], wall))
        out.update({name: n - self.ipis0[name] for name, n in ipis.items() if name in self.ipis0})
        out.update(self._switches(host1.context_switches))
        out.update(_spread(delta, self.cpus, wall))
        return out

    def _switches(self, ctxt: int | None) -> dict[str, int]:
        """The side's own context switches over the window, and the machine's (`context_switches`)."""
        out = {}
        switches, ctxt0 = own_switches(self.scope), self.host0.context_switches
        if switches is not None and self.switches0 is not None:
            out["voluntary_switches"] = switches[0] - self.switches0[0]
            out["involuntary_switches"] = switches[1] - self.switches0[1]
        if ctxt is not None and ctxt0 is not None:
            out["context_switches"] = ctxt - ctxt0
        return out

    def note(self) -> dict:
        """What the window counted, for the record's provenance."""
        overlap = softirq_in_task_time()
        config = kernel_config_path()
        return {"scope": self.scope, "busy_polling": self.busy, "softirq_cpus": self.cpus,
                "softirq_in_task_time": overlap, "kernel_config": str(config) if config else None,
                "in_context_softirq_taken_out_of_system_time": bool(overlap and self.busy),
                "counted": "user + system (less softirq served inside it) + softirq/irq of softirq_cpus "
                           "(at least ksoftirqd's run time) + kworkers running rxe_wq",
                "not_counted": "other kworkers (background work, not the run's)"}


def total_s(cpu: dict[str, float]) -> float:
    """The side's CPU seconds: the sum of CPU_PARTS (parts absent or None count 0)."""
    return sum(cpu.get(k) or 0.0 for k in CPU_PARTS)


def one_kernel_initiator(local: dict[str, float], softirq_in_system: bool | None) -> dict[str, float]:
    """The initiator's figures when its peer ran on this very host and keeps its raw process time
    (`same_host_peer`). Where the kernel charges softirq served inside a task to its system time
    (`softirq_in_task_time`, no CONFIG_IRQ_TIME_ACCOUNTING: Debian's), softirq served inside either
    process is in that process's system time, so the initiator keeps its own raw system time too
    and takes as the host's softirq only what ran outside both, in ksoftirqd (exact). Taking the
    CPUs' sampled softirq here, as a lone process does, counted the softirq served inside the peer
    twice: up to 17 CPU-s/GB of an SMB Direct READ at 64 KiB in the guest, where the two ends' sum
    came to 2.26 CPU-s/s on 2 vCPUs. Where task times hold no softirq (or the config is unknown),
    the sampled softirq is the host's and stays as it is. Hard-irq time is left out here (the
    sampled figure held it: timer ticks, a fraction of a percent on loopback)."""
    if local.get("ksoftirqd_s") is None or softirq_in_system is not True:
        return local
    return {**local, "system_s": local.get("system_raw_s", local.get("system_s", 0.0)),
            "softirq_s": local["ksoftirqd_s"], "softirq_in_process_s": 0.0}


def same_host_peer(peer: dict[str, float]) -> dict[str, float]:
    """A peer's figures when it ran on this very host (same boot_id): this side's softirq already
    holds the host's softirq, so the peer keeps its raw process time and no softirq of its own."""
    return {**peer, "system_s": peer.get("system_raw_s", peer.get("system_s", 0.0)), "softirq_s": 0.0,
            "softirq_in_process_s": 0.0, "rxe_kworker_s": 0.0}


def boot_id() -> str:
    """Tells two processes whether they share a kernel (two-host runs inside one guest do)."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""
