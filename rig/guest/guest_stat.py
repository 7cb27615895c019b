"""The guest's own busy CPU time, sampled for the host: inside the soft-RoCE guest every `rdmarig`
command (and `python -m rig.copy.rdma_parts`) appends each CPU's busy seconds from the guest's
/proc/stat, each second, to a file in the run's
out directory ($RDMARIG_GUEST_OUT/guest-stat-<pid>.log, "unix-time busy-s-of-cpu0 busy-s-of-cpu1 ..."
per line).

Why: under TCG a guest CPU second is not a constant amount of work. The guest counts a vCPU's
time as run whenever it is not idle, also while the host does not execute its thread (the host's
hypervisor stole the host's CPU, or the vCPU thread waits in the emulator). The host measures what
it executed (rig.guest.hostload samples qemu's vCPU threads); this file gives what the guest
believed it ran over the same seconds, and each record's window gets both (provenance
`guest_cpu_executed`). The guest's clock is set from qemu's RTC at boot (to the second), so the two
series may be offset by up to a second: a window's ends move together, not apart. The counters are cumulative, so the samples of any process bracket any
window; a process that starts and ends between two samples adds its own at both ends."""

from __future__ import annotations

import atexit
import os
import threading
import time
from pathlib import Path

PERIOD_S = 1.0
PREFIX = "guest-stat-"
_started = False


def _line() -> str | None:
    from rig.guest.hostload import read_cpu_busy
    busy = read_cpu_busy()
    if busy is None:
        return None
    return f"{time.time():.3f} " + " ".join(f"{busy.get(i, 0.0):.2f}" for i in range(max(busy) + 1)) + "\n"


def start(env: dict[str, str] | None = None) -> Path | None:
    """In the guest (RDMARIG_GUEST=1 with RDMARIG_GUEST_OUT set), start the sampling thread of this
    process once; returns its file, None elsewhere or where the directory cannot be written."""
    global _started
    env = os.environ if env is None else env
    out = env.get("RDMARIG_GUEST_OUT")
    if _started or env.get("RDMARIG_GUEST") != "1" or not out:
        return None
    path = Path(out) / f"{PREFIX}{os.getpid()}.log"
    try:
        f = open(path, "a", buffering=1)
    except OSError:
        return None
    _started = True
    pid = os.getpid()

    def take() -> None:
        line = _line()
        if line is not None and os.getpid() == pid:     # a forked child writes nothing of its own here
            try:
                f.write(line)
            except (OSError, ValueError):
                pass

    def run() -> None:
        while True:
            time.sleep(PERIOD_S)
            take()

    take()
    atexit.register(take)
    threading.Thread(target=run, name="guest-stat-sampler", daemon=True).start()
    return path


def read_samples(out_dir: Path) -> list[tuple[float, dict[int, float]]]:
    """(unix time, {cpu: busy seconds}) of every sampling file in `out_dir`, by time."""
    samples = []
    for path in Path(out_dir).glob(f"{PREFIX}*.log"):
        try:
            text = path.read_text()
        except OSError:
            continue
        for line in text.split("\n")[:-1]:       # a last line without its newline may be cut short
            parts = line.split()
            try:
                samples.append((float(parts[0]), {i: float(v) for i, v in enumerate(parts[1:])}))
            except (IndexError, ValueError):
                continue
    return sorted((s for s in samples if s[1]), key=lambda s: s[0])
