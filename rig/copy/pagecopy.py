"""Copy cost per page vs per byte: the same bytes copied as 4 KiB pages or as 2 MiB folios, by the
kernel's own copy path.

`pread()` of a whole file from tmpfs into a page-aligned, populated user buffer. The kernel looks up
each of the file's folios in the page cache and copies it to user memory (shmem_file_read_iter:
shmem_get_folio -> filemap_get_entry, an xarray lookup, then copy_folio_to_iter -> copy_to_user).
On a tmpfs mounted `huge=never` every folio is a 4 KiB page: one lookup, one iterator step and one
short copy per page. On a tmpfs mounted `huge=always` the same
bytes sit in 2 MiB folios: one lookup and one long copy per 2 MiB. Same bytes, same buffer, same
call; what differs is the number of pieces, so the two give the cost per page and per byte:

    t = per_byte x bytes + per_page x pieces      (two equations, two unknowns)

The tmpfs mounts live in a private mount namespace of the probe child (unshare(CLONE_NEWNS), `/`
made private first): nobody else sees them and they vanish with the child, even after kill -9.
Only the empty mount-point directory (`rdmarig-pagecopy-<pid>-*` in the temp directory) is left by
a killed run, and the next run removes it. Mounting needs CAP_SYS_ADMIN: without it the probe is
skipped with that reason. The folio size actually used is checked (ShmemHugePages in /proc/meminfo
grows by the file's size on the huge mount, not at all on the other).
"""

from __future__ import annotations

import ctypes
import os
import shutil
import tempfile
import time
from pathlib import Path

from rig.copy import hugepages
from rig.copy.buffers import PAGE_BYTES, aligned_buffer

DIR_PREFIX = "rdmarig-pagecopy-"   # then the creating pid, like the other leftovers
CLONE_NEWNS = 0x00020000
MS_REC, MS_PRIVATE = 0x4000, 1 << 18
WRITE_STEP_BYTES = 1 << 20

_libc = ctypes.CDLL(None, use_errno=True)


def unavailable() -> str | None:
    if os.geteuid() != 0:
        return "mounting a private tmpfs with huge=always needs root (CAP_SYS_ADMIN)"
    return None


def mount_dir() -> Path:
    return Path(tempfile.mkdtemp(prefix=f"{DIR_PREFIX}{os.getpid()}-"))


def remove_stale(directory: Path | None = None) -> list[Path]:
    """Mount-point directories of killed runs (their pid is gone): empty, as the mount died with
    the child's namespace."""
    removed = []
    for path in Path(directory or tempfile.gettempdir()).glob(DIR_PREFIX + "*"):
        pid = path.name[len(DIR_PREFIX):].split("-", 1)[0]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def _check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _shmem_huge_bytes() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("ShmemHugePages:"):
            return int(line.split()[1]) * 1024
    return 0


def runs(directory: str, size_bytes: int, kind: str, repetitions: int) -> dict:
    """In the probe child (own mount namespace): mount, fill, read the file whole, unmount."""
    try:
        _check(_libc.unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)")
        _check(_libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None), "making / private")
        huge = b"always" if kind == "thp" else b"never"
        options = b"size=%d,huge=%s,mode=0700" % (size_bytes + (8 << 20), huge)
        _check(_libc.mount(b"tmpfs", directory.encode(), b"tmpfs", 0, options), "mounting tmpfs")
    except OSError as exc:
        return {"skipped": f"cannot mount a private tmpfs (huge={'always' if kind == 'thp' else 'never'}): "
                           f"{exc.strerror}"}
    path = os.path.join(directory, "data")
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    block = aligned_buffer(WRITE_STEP_BYTES, 0x5A)
    huge0 = _shmem_huge_bytes()
    for offset in range(0, size_bytes, WRITE_STEP_BYTES):
        os.pwrite(fd, memoryview(block)[:min(WRITE_STEP_BYTES, size_bytes - offset)], offset)
    huge_bytes = _shmem_huge_bytes() - huge0
    buf = aligned_buffer(size_bytes)
    view = memoryview(buf)

    def once() -> dict:
        t0, c0 = time.perf_counter(), time.thread_time()
        got = os.preadv(fd, [view], 0)
        t1, c1 = time.perf_counter(), time.thread_time()
        if got != size_bytes:
            raise OSError(f"short read: {got} of {size_bytes} bytes")
        return {"wall_s": t1 - t0, "cpu_s": c1 - c0}

    once()
    out = [once() for _ in range(repetitions)]
    view.release()
    os.close(fd)
    return {"runs": out, "huge_bytes": huge_bytes}


def folio_bytes(kind: str) -> int:
    return hugepages.huge_page_bytes() if kind == "thp" else PAGE_BYTES


def samples(raw_runs: list[dict], size_bytes: int, kind: str) -> dict[str, list[float]]:
    gb = size_bytes / 1e9
    pages = size_bytes / PAGE_BYTES
    folios = size_bytes / folio_bytes(kind)
    return {
        "cpu_s_per_gb": [r["cpu_s"] / gb for r in raw_runs],
        "cpu_seconds_per_page": [r["cpu_s"] / pages for r in raw_runs],
        "cpu_seconds_per_folio": [r["cpu_s"] / folios for r in raw_runs],
        "per_cpu_second_gbytes_per_s": [gb / r["cpu_s"] for r in raw_runs],
        "gbytes_per_s": [gb / r["wall_s"] for r in raw_runs],
    }


def per_page_and_byte(size_bytes: int, cpu_s: dict[str, float]) -> dict[str, float]:
    """Solve t = per_byte x bytes + per_folio x folios for the two kinds' median CPU per read.

    Returns the cost of one piece (a 4 KiB page) and of one byte; the 2 MiB folio's own piece cost
    is counted too (512x fewer pieces), so per_byte is the copy alone."""
    n4k, nthp = size_bytes / folio_bytes("4k"), size_bytes / folio_bytes("thp")
    per_piece = (cpu_s["4k"] - cpu_s["thp"]) / (n4k - nthp)
    per_byte = (cpu_s["thp"] - per_piece * nthp) / size_bytes
    return {"fitted_per_page_cpu_seconds_per_page": per_piece,
            "fitted_per_byte_cpu_s_per_gb": per_byte * 1e9}


def expected_seconds(size_bytes: int, repetitions: int) -> float:
    """A rough cost for the progress estimate: mount, fill at ~1 GB/s, reads at ~5 GB/s."""
    return 0.1 + size_bytes / 1e9 * 2 + (repetitions + 1) * size_bytes / 5e9
