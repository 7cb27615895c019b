"""Pin cost per page: what a zero-copy send or a memory registration pays to hold user pages.

Two real kernel paths, on a buffer whose pages are already present (populated first, so no fault
is in the figure), backed by 4 KiB pages or by THP:

- uring-register: io_uring IORING_REGISTER_BUFFERS of the whole buffer (pin_user_pages with
  FOLL_LONGTERM, then the kernel's bvec table; huge folios may be coalesced), and its
  IORING_UNREGISTER_BUFFERS (unpin). The pinned bytes are read back from /proc/self/status VmPin.
- vmsplice: vmsplice() of the buffer into a pipe, 1 MiB at a time (a pipe cannot grow further
  here): get_user_pages_fast takes a reference on each page for the pipe. The pipe is drained into
  /dev/null after each call (the references dropped), outside the timed call, and timed apart.

A page is a 4 KiB base page in both kinds, so the figures compare per page and per byte directly.
Times are the child's own CPU time (exact) and wall-clock time; one forked child per configuration,
pinned to a CPU, one warm-up then the repetitions.
"""

from __future__ import annotations

import ctypes
import os
import time

from rig.copy import hugepages, senders, uring
from rig.copy.buffers import PAGE_BYTES
from rig.copy.outcome import per_page_samples

METHODS = ("uring-register", "vmsplice")


def _vm_pin_bytes() -> int | None:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmPin:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _uring_once(ring: uring.Uring, mapping: hugepages.Mapping) -> dict:
    t0, c0 = time.perf_counter(), time.thread_time()
    ring.register_buffer(mapping.address, mapping.size_bytes)
    t1, c1 = time.perf_counter(), time.thread_time()
    pinned = _vm_pin_bytes()
    t2, c2 = time.perf_counter(), time.thread_time()
    ring.unregister_buffers()
    t3, c3 = time.perf_counter(), time.thread_time()
    return {"wall_s": t1 - t0, "cpu_s": c1 - c0, "release_wall_s": t3 - t2, "release_cpu_s": c3 - c2,
            "pinned_bytes": pinned, "calls": 1}


def _vmsplice_once(pipe: tuple[int, int, int], null_fd: int, mapping: hugepages.Mapping) -> dict:
    r, w, pipe_bytes = pipe
    iov = senders.Iovec()
    wall = cpu = release_wall = release_cpu = 0.0
    calls = done = 0
    while done < mapping.size_bytes:
        iov.iov_base, iov.iov_len = mapping.address + done, min(pipe_bytes, mapping.size_bytes - done)
        t0, c0 = time.perf_counter(), time.thread_time()
        got = senders.vmsplice(w, iov)
        t1, c1 = time.perf_counter(), time.thread_time()
        senders.drain_pipe(r, null_fd, got)
        t2, c2 = time.perf_counter(), time.thread_time()
        wall, cpu = wall + t1 - t0, cpu + c1 - c0
        release_wall, release_cpu = release_wall + t2 - t1, release_cpu + c2 - c1
        calls += 1
        done += got
    return {"wall_s": wall, "cpu_s": cpu, "release_wall_s": release_wall, "release_cpu_s": release_cpu,
            "pinned_bytes": None, "calls": calls, "pipe_bytes": pipe_bytes}


def runs(method: str, size_bytes: int, kind: str, repetitions: int) -> dict:
    """In the probe child: pin and release one populated buffer, one warm-up + `repetitions` times."""
    mapping = hugepages.fresh_mapping(size_bytes, kind)
    ctypes.memset(mapping.address, 0x5A, size_bytes)  # populate: faults are not what is measured
    huge = hugepages.anon_huge_bytes(mapping.address)
    if method == "uring-register":
        try:
            ring = uring.Uring(1)
        except uring.UringUnavailable as exc:
            return {"skipped": str(exc)}
        try:
            once = lambda: _uring_once(ring, mapping)  # noqa: E731
            try:
                once()
            except OSError as exc:
                return {"skipped": f"{exc.strerror or exc} (pinning {size_bytes} bytes may exceed "
                                   f"RLIMIT_MEMLOCK without CAP_IPC_LOCK)"}
            out = [once() for _ in range(repetitions)]
        finally:
            ring.close()
    else:
        pipe = senders.open_pipe()
        null_fd = os.open(os.devnull, os.O_WRONLY)
        try:
            _vmsplice_once(pipe, null_fd, mapping)
            out = [_vmsplice_once(pipe, null_fd, mapping) for _ in range(repetitions)]
        finally:
            os.close(pipe[0]), os.close(pipe[1]), os.close(null_fd)
    mapping.close()
    return {"runs": out, "huge_bytes": huge}


def samples(raw_runs: list[dict], size_bytes: int) -> dict[str, list[float]]:
    return {**per_page_samples(raw_runs, size_bytes / PAGE_BYTES, size_bytes, "release"),
            "pinned_bytes": [r["pinned_bytes"] for r in raw_runs]}


def expected_seconds(size_bytes: int, repetitions: int) -> float:
    """A rough cost for the progress estimate: populate + ~0.1 us per page pinned and released."""
    return 0.05 + size_bytes * 0.5e-9 + (repetitions + 1) * size_bytes / PAGE_BYTES * 0.2e-6
