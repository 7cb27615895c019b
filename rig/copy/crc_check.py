"""What the SMB Direct client's integrity check costs per byte (`copy.crc32`): the CRC-32 of every
READ response's bytes (rig.flows.smbd_client: zlib.crc32 over the registered buffer the server
wrote), timed alone on page-aligned buffers of the I/O sizes, in the thread's CPU time.

Each timing repeats the CRC until it lasts >= 50 ms, in a forked child pinned to one CPU, over a
buffer of random bytes (zlib's crc32 is data-independent, but a zeroed page would be shared)."""

from __future__ import annotations

import ctypes
import os
import time
import zlib

from rig.copy.buffers import address_of, aligned_buffer

MIN_TIMING_S = 0.05


def runs(size_bytes: int, repetitions: int) -> dict:
    """In the probe child: CPU seconds per byte of zlib.crc32, warm-up + `repetitions` timings."""
    buf = aligned_buffer(size_bytes)
    ctypes.memmove(address_of(buf), os.urandom(size_bytes), size_bytes)
    view = memoryview(buf)
    out = []
    for i in range(repetitions + 1):
        calls, c0, t0 = 0, time.thread_time(), time.perf_counter()
        while True:
            zlib.crc32(view)
            calls += 1
            c1 = time.thread_time()
            if c1 - c0 >= MIN_TIMING_S:
                break
        if i:
            out.append({"cpu_s": c1 - c0, "wall_s": time.perf_counter() - t0, "calls": calls})
    view.release()
    buf.close()
    return {"runs": out}


def samples(raw_runs: list[dict], size_bytes: int) -> dict[str, list[float]]:
    return {"cpu_s_per_gb": [r["cpu_s"] / (r["calls"] * size_bytes / 1e9) for r in raw_runs],
            "per_cpu_second_gbytes_per_s": [r["calls"] * size_bytes / 1e9 / r["cpu_s"] for r in raw_runs],
            "cpu_seconds_per_check": [r["cpu_s"] / r["calls"] for r in raw_runs]}
