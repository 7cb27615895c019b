"""MR registration cost per page: what an RDMA memory registration (ibv_reg_mr + ibv_dereg_mr)
costs the registering thread, by size, on the device in front of us (`copy.mrreg`).

Two kinds of memory, as `measure smbd --register per-io` registers them:
- anon: a page-aligned anonymous buffer, populated first, registered for local write and remote
  write (the client's buffer of an SMB2 READ);
- file: a file on tmpfs mapped MAP_PRIVATE + PROT_READ, its pages faulted in first (a read of every
  page maps the page-cache page), registered with access 0 (the zero-copy server's source; the
  guest's 6.1 kernel refuses to pin a read-only MAP_SHARED mapping).

Registration pins every 4 KiB page (pin_user_pages) and builds the device's page map (rxe: its
own page table of the MR, rxe_mr_init_user); deregistration unpins. Both are timed in the thread's
CPU time and wall time, in a forked child (single-threaded) that opens the device itself, one
warm-up then the repetitions. In the TCG guest the thread's CPU clock moves in scheduler ticks
(single registrations timed 0 or 4.6 ms), so each timing repeats register + deregister until it
has lasted >= 50 ms of CPU and divides. `mrreg_fit` in rig/calibrate.py turns the sizes into a cost per
registration and per page.
"""

from __future__ import annotations

import mmap
import os
import tempfile
import time

from rig.copy.buffers import PAGE_BYTES, address_of, aligned_buffer

SOURCES = ("anon", "file")
MIN_TIMING_S = 0.05
DEFAULT_SIZES = [64 << 10 << k for k in range(8)]       # the I/O sizes of measure smbd: 64 KiB .. 8 MiB


def _file_mapping(size_bytes: int) -> tuple[mmap.mmap, str]:
    """A tmpfs file of `size_bytes` mapped private and read-only, every page faulted in."""
    directory = "/dev/shm" if os.path.isdir("/dev/shm") else tempfile.gettempdir()
    fd, path = tempfile.mkstemp(prefix=f"rdmarig-mrreg-{os.getpid()}-", dir=directory)
    try:
        os.write(fd, os.urandom(size_bytes))
        mapping = mmap.mmap(fd, size_bytes, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ)
    finally:
        os.close(fd)
    view = memoryview(mapping)
    sum(view[i] for i in range(0, size_bytes, PAGE_BYTES))      # one read per page: the PTEs exist
    view.release()
    return mapping, path


def runs(device: str | None, source: str, size_bytes: int, repetitions: int) -> dict:
    """In the probe child: register and deregister one populated region, warm-up + `repetitions`."""
    from rig.rdma import compat
    from rig.rdma.devices import discover

    V = compat.load()
    port = discover(device)
    ctx = V.Context(name=port.device)
    pd = V.PD(ctx)
    path = None
    if source == "anon":
        buf = aligned_buffer(size_bytes, fill=0x5A)
        access = V.e.IBV_ACCESS_LOCAL_WRITE | V.e.IBV_ACCESS_REMOTE_WRITE
    else:
        buf, path = _file_mapping(size_bytes)
        access = 0
    addr = address_of(buf)
    out = []
    try:
        for i in range(repetitions + 1):
            calls, reg_wall, c0, t0 = 0, 0.0, time.thread_time(), time.perf_counter()
            while True:
                r0 = time.perf_counter()
                mr = V.MR(pd, size_bytes, access, address=addr)
                reg_wall += time.perf_counter() - r0
                mr.close()
                calls += 1
                c1 = time.thread_time()
                if c1 - c0 >= MIN_TIMING_S:
                    break
            if i:
                wall = time.perf_counter() - t0
                out.append({"calls": calls, "cpu_s": c1 - c0, "wall_s": wall, "register_wall_s": reg_wall})
    finally:
        pd.close()
        ctx.close()
        buf.close()
        if path is not None:
            os.unlink(path)
    return {"runs": out, "device": port.device, "access": int(access)}


def samples(raw_runs: list[dict], size_bytes: int) -> dict[str, list[float]]:
    """Per registration (ibv_reg_mr + ibv_dereg_mr): CPU seconds, per page, per GB; wall seconds, and
    the wall share of the registration alone."""
    pages = size_bytes / PAGE_BYTES
    both = [r["cpu_s"] / r["calls"] for r in raw_runs]
    return {"cpu_seconds_per_registration": both,
            "seconds_per_registration": [r["wall_s"] / r["calls"] for r in raw_runs],
            "register_wall_share": [r["register_wall_s"] / r["wall_s"] for r in raw_runs],
            "cpu_seconds_per_page": [b / pages for b in both],
            "cpu_s_per_gb": [b / (size_bytes / 1e9) for b in both]}
