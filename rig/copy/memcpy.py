"""User-space memcpy bandwidth by buffer size and number of concurrent copiers.

Each copier is a forked process (threads would fight over the GIL between small copies) that copies
one page-aligned buffer into another with glibc's memmove (via ctypes: one C call per copy). A
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
"""

from __future__ import annotations

import ctypes
import multiprocessing as mp
import os
import time
from dataclasses import dataclass

from rig.copy import child
from rig.copy.buffers import address_of, aligned_buffer, page_offset

MIN_TIMING_S = 0.05


@dataclass(frozen=True)
class MemcpyTiming:
    size_bytes: int
    copies_per_process: int
    processes: int
    wall_s: float                  # first start to last end, over all processes
    per_process_s: tuple[float, ...]
    per_process_cpu_s: tuple[float, ...] = ()   # CPU time each copier got (less than wall on a busy host)

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


def _copy_loop(dst: int, src: int, size: int, count: int) -> float:
    move = ctypes.memmove
    t0 = time.perf_counter()
    for _ in range(count):
        move(dst, src, size)
    return time.perf_counter() - t0


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


def _copier(size: int, count: int, timings: int, barrier, conn, cpu: int | None) -> None:
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
            t0, c0 = time.perf_counter(), time.process_time()
            _copy_loop(d, s, size, count)
            spans.append((t0, time.perf_counter(), time.process_time() - c0))
        conn.send({"spans": spans})
    except BaseException as exc:  # reported to the parent, which raises it there
        child.report(conn, {"error": f"{type(exc).__name__}: {exc}"})
    finally:
        conn.close()


def measure(size_bytes: int, processes: int, timings: int, count: int,
            timeout_s: float = 120.0) -> list[MemcpyTiming]:
    """`timings` timings of `processes` concurrent copiers, each doing `count` copies of `size_bytes`."""
    ctx = mp.get_context("fork")
    barrier = ctx.Barrier(processes, timeout=timeout_s)
    cpus = sorted(os.sched_getaffinity(0))
    pinned = processes <= len(cpus)
    children, conns = [], []
    try:
        for i in range(processes):
            parent_end, child_end = ctx.Pipe(duplex=False)
            p = ctx.Process(target=_copier, daemon=True,
                            args=(size_bytes, count, timings, barrier, child_end,
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
        wall = max(e for _, e, _ in spans) - min(s for s, _, _ in spans)
        out.append(MemcpyTiming(size_bytes, count, processes, wall, tuple(e - s for s, e, _ in spans),
                                tuple(c for _, _, c in spans)))
    return out
