"""Where the bytes a sender pushes come from.

- tmpfs: a file on /dev/shm (page cache of shmem, never written back)
- disk:  a file on the disk filesystem, written, fsync'ed and read once, so its pages are clean page
         cache (a file server's hot read)
- anon:  anonymous memory (a user buffer, e.g. an application's cache)

Content is seeded pseudo-random bytes, so a receiver's checksum proves every byte arrived in order.
A file source also has a read-only shared mapping of the file for the paths that send from user
memory (vmsplice, MSG_ZEROCOPY, io_uring send): those pages are the page cache itself.
"""

from __future__ import annotations

import mmap
import os
import tempfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from rig.copy.buffers import aligned_buffer, page_offset
from scenarios.errors import InputError

SOURCES = ("tmpfs", "disk", "anon")
TMPFS_DIR = Path("/dev/shm")
FILE_PREFIX = "rdmarig-src-"  # then the creating pid: files of killed runs are recognised


def pattern_bytes(size_bytes: int, seed: int = 20261130) -> bytes:
    import numpy as np  # here, not at the top: the CLI imports this module for --help
    return np.random.default_rng(seed).bytes(int(size_bytes))


@dataclass
class Source:
    kind: str
    size_bytes: int
    path: Path | None = None
    fd: int | None = None
    mapping: mmap.mmap | None = None
    info: dict = field(default_factory=dict)

    @property
    def has_file(self) -> bool:
        return self.fd is not None

    def stream_crc32(self, total_bytes: int) -> int:
        """crc32 of the first `total_bytes` of the source repeated end to end (what a sender sends)."""
        crc, view = 0, memoryview(self.mapping)
        left = total_bytes
        while left:
            n = min(left, self.size_bytes)
            crc = zlib.crc32(view[:n], crc)
            left -= n
        view.release()
        return crc

    def close(self) -> None:
        if self.mapping is not None:
            self.mapping.close()
            self.mapping = None
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        if self.path is not None:
            try:
                self.path.unlink()
            except FileNotFoundError:
                pass


def remove_stale(directory: Path) -> list[Path]:
    """Delete source files left by runs that were killed (their pid is gone); returns them."""
    removed = []
    for path in directory.glob(FILE_PREFIX + "*"):
        pid = path.name[len(FILE_PREFIX):].split("-", 1)[0]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def disk_dir_or_none() -> Path | None:
    """Where disk source files go: $RDMARIG_DISK_DIR, /var/tmp or the temp directory (writable)."""
    for candidate in (os.environ.get("RDMARIG_DISK_DIR"), "/var/tmp", tempfile.gettempdir()):
        if candidate and Path(candidate).is_dir() and os.access(candidate, os.W_OK):
            return Path(candidate)
    return None


def _disk_dir() -> Path:
    directory = disk_dir_or_none()
    if directory is None:
        raise InputError("no writable directory on a disk filesystem for the disk source",
                         "set RDMARIG_DISK_DIR to a writable directory on a disk")
    return directory


def _fs_type(path: Path) -> str | None:
    """The filesystem type of the mount holding `path` (longest mount-point prefix)."""
    best, fstype = "", None
    try:
        for line in Path("/proc/mounts").read_text().splitlines():
            _, mnt, typ, *_ = line.split()
            if str(path).startswith(mnt) and len(mnt) > len(best):
                best, fstype = mnt, typ
    except OSError:
        pass
    return fstype


def open_source(kind: str, size_bytes: int) -> Source:
    if kind not in SOURCES:
        raise InputError(f"unknown source {kind!r}", f"use one of {', '.join(SOURCES)}")
    size_bytes = int(size_bytes)
    data = pattern_bytes(size_bytes)
    if kind == "anon":
        buf = aligned_buffer(size_bytes)
        buf[:] = data
        return Source(kind, size_bytes, mapping=buf,
                      info={"page_offset_bytes": page_offset(buf), "filesystem": None})
    directory = TMPFS_DIR if kind == "tmpfs" else _disk_dir()
    if kind == "tmpfs" and not directory.is_dir():
        raise InputError(f"{directory} is missing, so there is no tmpfs source",
                         "mount a tmpfs on /dev/shm or choose --source disk|anon")
    fstype = _fs_type(directory)
    if kind == "disk" and fstype in ("tmpfs", "ramfs"):
        raise InputError(f"{directory} is on {fstype}, not a disk",
                         "set RDMARIG_DISK_DIR to a directory on a disk filesystem")
    remove_stale(directory)
    fd_tmp, name = tempfile.mkstemp(prefix=f"{FILE_PREFIX}{os.getpid()}-", dir=directory)
    path = Path(name)
    try:
        with os.fdopen(fd_tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        fd = os.open(path, os.O_RDONLY)
        # read once so every page is in the page cache before any timing
        while os.read(fd, 1 << 20):
            pass
        mapping = mmap.mmap(fd, size_bytes, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ)
        mapping.madvise(mmap.MADV_WILLNEED)
    except BaseException as exc:  # a Ctrl-C while writing (a disk fsync takes a while) too
        path.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise InputError(f"cannot prepare the {kind} source file in {directory}: {exc.strerror}",
                             "free space there or choose another --source") from None
        raise
    return Source(kind, size_bytes, path=path, fd=fd, mapping=mapping,
                  info={"filesystem": fstype, "directory": str(directory), "page_offset_bytes": 0})
