"""User-space memcpy bandwidth by buffer size and number of concurrent copiers.

Each copier is a forked process (threads would fight over the GIL between small copies) that copies
one page-aligned buffer into another with glibc's memmove (via ctypes: one C call per copy, its
arguments converted once per loop, not per call). A
timing repeats the copy until it covers at least `min_timing_s`, so timer resolution never matters.
Copiers start each timing together at a barrier; the total is bytes copied by all of them over the
wall-clock span from the first start to the last end.

Each copier also reads its CPU time (CLOCK_PROCESS_CPUTIME_ID, exact), so the bandwidth per second
of CPU actually received is known even when other tenants take turns on the core.

Bandwidth is bytes copied per second (the `size` of one copy over its time), the convention of mbw;
the memory traffic is twice that (read + write).

At small sizes the Python call (~0.2-0.4 us) is comparable to the copy itself, so each timing also
measures the cost of a 1-byte copy through the same loop and reports a call-corrected figure next
to the raw one.

Inside a timing the copier also stamps the clock after every batch of copies lasting >= ~15 us
(one copy per batch from ~1 MiB up, as mbw times each iteration). The median batch rate is what a
copy achieves while the copier has the core; the timing's total also counts the time other tenants
took it. On a quiet host the two agree.
"""

from __future__ import annotations

import ctypes
import functools
import multiprocessing as mp
import os
import subprocess
import time
from dataclasses import dataclass

from rig.copy import child
from rig.copy.buffers import address_of, aligned_buffer, page_offset

MIN_TIMING_S = 0.05
MIN_BATCH_S = 15e-6


@dataclass(frozen=True)
class MemcpyTiming:
    size_bytes: int
    copies_per_process: int
    processes: int
    wall_s: float                  # first start to last end, over all processes
    per_process_s: tuple[float, ...]
    per_process_cpu_s: tuple[float, ...] = ()   # CPU time each copier got (less than wall on a busy host)
    copies_per_batch: int = 0
    per_process_batch_s: tuple[tuple[float, ...], ...] = ()  # each copier's batch durations

    @property
    def total_gbytes_per_s(self) -> float:
        return self.size_bytes * self.copies_per_process * self.processes / self.wall_s / 1e9

    @property
    def per_core_gbytes_per_s(self) -> float:
        return self.total_gbytes_per_s / self.processes

    @property
    def per_cpu_second_gbytes_per_s(self) -> float:
        """Bytes one copier copies per second of CPU it actually got (robust to other tenants)."""
        return float(sum(self.size_bytes * self.copies_per_process / c for c in self.per_process_cpu_s)
                     / len(self.per_process_cpu_s) / 1e9)

    @property
    def batch_median_per_core_gbytes_per_s(self) -> float | None:
        """Each copier's median batch rate, averaged over the copiers (mbw's per-iteration figure)."""
        import numpy as np  # here, not at the top: the CLI imports this module for --help
        if not self.per_process_batch_s or not all(self.per_process_batch_s):
            return None
        batch_bytes = self.size_bytes * self.copies_per_batch
        return float(np.mean([batch_bytes / np.median(b) for b in self.per_process_batch_s]) / 1e9)


# glibc's memmove (dlsym resolves the IFUNC to the variant this CPU gets, as the PLT does), called
# with its arguments converted once: ctypes.memmove converts three Python ints and its result on
# every call (~0.36 us here), prebuilt c_void_p/c_size_t arguments and no result cost ~0.24 us.
_memmove = ctypes.CDLL(None).memmove
_memmove.restype = None


def _c_args(dst: int, src: int, size: int) -> tuple:
    return ctypes.c_void_p(dst), ctypes.c_void_p(src), ctypes.c_size_t(size)


def _copy_loop(dst: int, src: int, size: int, count: int) -> float:
    move, (d, s, n) = _memmove, _c_args(dst, src, size)
    t0 = time.perf_counter()
    for _ in range(count):
        move(d, s, n)
    return time.perf_counter() - t0


def _stamped_copy_loop(dst: int, src: int, size: int, batches: int, per_batch: int) -> list[float]:
    """The copy loop with a clock stamp after each batch: [start, end of batch 1, ...]."""
    move, clock, (d, s, n) = _memmove, time.perf_counter, _c_args(dst, src, size)
    stamps = [clock()]
    stamp = stamps.append
    if per_batch == 1:  # large copies: no inner loop to set up per copy
        for _ in range(batches):
            move(d, s, n)
            stamp(clock())
        return stamps
    for _ in range(batches):
        for _ in range(per_batch):
            move(d, s, n)
        stamp(clock())
    return stamps


def copies_per_batch(size_bytes: int, count: int, seconds_per_copy: float) -> int:
    """Copies per clock stamp: a batch of >= MIN_BATCH_S, so stamping (~80 ns) costs <= ~0.5% at any size."""
    import numpy as np  # here, not at the top: the CLI imports this module for --help
    return max(1, min(count, int(np.ceil(MIN_BATCH_S / max(seconds_per_copy, 1e-9)))))


def calibrate_count(size_bytes: int, min_timing_s: float = MIN_TIMING_S) -> tuple[int, dict]:
    """How many copies of `size_bytes` make one timing of at least `min_timing_s` (alone)."""
    src, dst = aligned_buffer(size_bytes, 0x5A), aligned_buffer(size_bytes)
    s, d = address_of(src), address_of(dst)
    alignment = {"src_page_offset_bytes": page_offset(src), "dst_page_offset_bytes": page_offset(dst)}
    count = 1
    while True:
        # CPU time, not wall time: a tenant taking the core during calibration must not shrink
        # the count (and with it the timings) once the core is free again
        c0 = time.process_time()
        _copy_loop(d, s, size_bytes, count)
        elapsed = time.process_time() - c0
        if elapsed >= min_timing_s:
            break
        count = max(count * 2, int(count * min_timing_s * 1.2 / max(elapsed, 1e-7)))
    src.close(), dst.close()
    return count, alignment


def call_overhead_s(count: int = 200_000) -> float:
    """Seconds per iteration of the copy loop when the copy is one byte: the Python + ctypes cost."""
    src, dst = aligned_buffer(4096), aligned_buffer(4096)
    s, d = address_of(src), address_of(dst)
    _copy_loop(d, s, 1, count // 10)
    best = min(_copy_loop(d, s, 1, count) for _ in range(3)) / count
    src.close(), dst.close()
    return best


_GLIBC_KEYS = {"non_temporal_threshold": "non_temporal_threshold_bytes",
               "rep_movsb_threshold": "rep_movsb_threshold_bytes",
               "rep_movsb_stop_threshold": "rep_movsb_stop_threshold_bytes"}


@functools.cache
def glibc_tunables() -> dict:
    """Where this glibc's memmove changes strategy (`ld.so --list-diagnostics`, glibc >= 2.33):
    vector loops below rep_movsb_threshold, `rep movsb` up to rep_movsb_stop_threshold, then a
    vector loop with ordinary stores, and non-temporal stores from non_temporal_threshold up
    (derived from the cache size glibc reads from cpuid). Empty where the loader cannot say."""
    for loader in ("ld.so", "/lib64/ld-linux-x86-64.so.2"):
        try:
            out = subprocess.run([loader, "--list-diagnostics"], capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            continue
        found = {}
        for line in out.stdout.splitlines():
            key, _, value = line.partition("=")
            name = key.rsplit(".", 1)[-1]
            if key.startswith("x86.cpu_features.") and name in _GLIBC_KEYS:
                found[_GLIBC_KEYS[name]] = int(value, 0)
        if found:
            return found
    return {}


def _copier(size: int, count: int, per_batch: int, timings: int, barrier, conn, cpu: int | None) -> None:
    import numpy as np  # here, not at the top: the CLI imports this module for --help
    child.detach_signals()
    try:
        if cpu is not None:
            os.sched_setaffinity(0, {cpu})
        src, dst = aligned_buffer(size, 0x5A), aligned_buffer(size)
        s, d = address_of(src), address_of(dst)
        _copy_loop(d, s, size, max(1, count // 10))  # warm caches and TLB
        spans = []
        for _ in range(timings):
            barrier.wait()
            c0 = time.process_time()
            stamps = _stamped_copy_loop(d, s, size, count // per_batch, per_batch)
            spans.append((stamps[0], stamps[-1], time.process_time() - c0, tuple(np.diff(stamps))))
        conn.send({"spans": spans})
    except BaseException as exc:  # reported to the parent, which raises it there
        child.report(conn, {"error": f"{type(exc).__name__}: {exc}"})
    finally:
        conn.close()


def measure(size_bytes: int, processes: int, timings: int, count: int, per_batch: int | None = None,
            timeout_s: float = 120.0) -> list[MemcpyTiming]:
    """`timings` timings of `processes` concurrent copiers, each doing `count` copies of `size_bytes`
    (rounded up to whole batches of `per_batch` copies; default: one batch per timing)."""
    per_batch = max(1, min(per_batch or count, count))
    count = -(-count // per_batch) * per_batch
    ctx = mp.get_context("fork")
    barrier = ctx.Barrier(processes, timeout=timeout_s)
    cpus = sorted(os.sched_getaffinity(0))
    pinned = processes <= len(cpus)
    children, conns = [], []
    try:
        for i in range(processes):
            parent_end, child_end = ctx.Pipe(duplex=False)
            p = ctx.Process(target=_copier, daemon=True,
                            args=(size_bytes, count, per_batch, timings, barrier, child_end,
                                  cpus[i] if pinned else None))
            child.start(p)
            child_end.close()
            children.append(p)
            conns.append(parent_end)
        results = []
        for conn in conns:
            if not conn.poll(timeout_s):
                raise RuntimeError(f"memcpy copier did not finish within {timeout_s:.0f} s")
            msg = conn.recv()
            if "error" in msg:
                raise RuntimeError(f"memcpy copier failed: {msg['error']}")
            results.append(msg["spans"])
    finally:
        for p in children:
            if p.is_alive():
                p.terminate()
            p.join(2)
    out = []
    for t in range(timings):
        spans = [r[t] for r in results]
        wall = max(e for _, e, _, _ in spans) - min(s for s, _, _, _ in spans)
        out.append(MemcpyTiming(size_bytes, count, processes, wall, tuple(e - s for s, e, _, _ in spans),
                                tuple(c for _, _, c, _ in spans), per_batch, tuple(b for _, _, _, b in spans)))
    return out
