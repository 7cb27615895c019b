"""Page-aligned buffers.

On this kind of CPU (`rep movsb` copies) a destination 8-16 bytes past its source modulo 4096 makes
2 KiB-512 KiB copies about 10x slower, and a Python bytearray lands exactly there. Every buffer the
probes copy from or into is therefore an anonymous mmap (page-aligned by construction), and the
probes record the alignment they ran with.
"""

from __future__ import annotations

import ctypes
import mmap

PAGE_BYTES = mmap.PAGESIZE


def aligned_buffer(size_bytes: int, fill: int | None = None) -> mmap.mmap:
    """An anonymous private mapping of `size_bytes` (page-aligned), touched so it is resident."""
    buf = mmap.mmap(-1, max(int(size_bytes), 1), flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    # touch every page so the first timed pass measures copies, not page faults
    ctypes.memset(address_of(buf), 0 if fill is None else fill, len(buf))
    return buf


def address_of(buf) -> int:
    """The virtual address of a buffer (mmap, read-only mmap or bytearray)."""
    import numpy as np  # here, not at the top: the CLI imports this module for --help
    return int(np.frombuffer(buf, dtype=np.uint8).__array_interface__["data"][0])


def page_offset(buf) -> int:
    """Offset of the buffer's first byte modulo the page size: 0 for every buffer the probes use."""
    return address_of(buf) % PAGE_BYTES
