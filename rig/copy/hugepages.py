"""Transparent huge pages: is THP available, mappings backed by 4 KiB pages or by THP, and what
the kernel actually gave (a THP request is a hint: fragmented memory falls back to 4 KiB pages).

Page kinds the probes name: "4k" (MADV_NOHUGEPAGE: base pages even where THP is "always") and "thp"
(MADV_HUGEPAGE on a range aligned to the huge page size).
"""

from __future__ import annotations

import mmap
from dataclasses import dataclass
from pathlib import Path

from rig.copy.buffers import PAGE_BYTES, address_of

PAGE_KINDS = ("4k", "thp")
THP_DIR = Path("/sys/kernel/mm/transparent_hugepage")
DEFAULT_HUGE_BYTES = 2 << 20


def _selected(path: Path) -> str | None:
    """The [selected] word of a sysfs choice file ('always [madvise] never' -> 'madvise')."""
    try:
        text = path.read_text()
    except OSError:
        return None
    for word in text.split():
        if word.startswith("[") and word.endswith("]"):
            return word[1:-1]
    return text.strip() or None


def huge_page_bytes() -> int:
    try:
        return int((THP_DIR / "hpage_pmd_size").read_text())
    except (OSError, ValueError):
        return DEFAULT_HUGE_BYTES


def settings() -> dict:
    """The THP settings a record cites (None where this kernel has no such file)."""
    return {"enabled": _selected(THP_DIR / "enabled"), "defrag": _selected(THP_DIR / "defrag"),
            "shmem_enabled": _selected(THP_DIR / "shmem_enabled"), "huge_page_bytes": huge_page_bytes()}


def unavailable(kind: str, size_bytes: int) -> str | None:
    """Why a mapping of `size_bytes` cannot be THP-backed here, or None (also None for '4k')."""
    if kind != "thp":
        return None
    mode = _selected(THP_DIR / "enabled")
    if mode is None:
        return "this kernel has no transparent huge pages (no /sys/kernel/mm/transparent_hugepage)"
    if mode == "never":
        return f"transparent huge pages are disabled ({THP_DIR / 'enabled'} is 'never')"
    huge = huge_page_bytes()
    if size_bytes < huge:
        return f"a THP mapping needs at least one whole {huge >> 20} MiB page; this size is {size_bytes} bytes"
    return None


@dataclass
class Mapping:
    """A private anonymous mapping of `size_bytes` at `address` (inside `mm`, which may be larger so
    that a THP range starts on a huge page boundary)."""
    mm: mmap.mmap
    address: int
    size_bytes: int
    kind: str

    def close(self) -> None:
        self.mm.close()


def fresh_mapping(size_bytes: int, kind: str) -> Mapping:
    """A new, untouched anonymous mapping advised for 4 KiB pages or for THP."""
    huge = huge_page_bytes() if kind == "thp" else 0
    mm = mmap.mmap(-1, size_bytes + huge, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    base = address_of(mm)
    offset = (-base) % huge if huge else 0
    advice = mmap.MADV_HUGEPAGE if kind == "thp" else getattr(mmap, "MADV_NOHUGEPAGE", None)
    if advice is not None:
        mm.madvise(advice, offset, size_bytes)
    return Mapping(mm, base + offset, size_bytes, kind)


def anon_huge_bytes(address: int) -> int:
    """AnonHugePages of the mapping (VMA) holding `address`, from /proc/self/smaps."""
    inside = False
    with open("/proc/self/smaps") as smaps:
        for line in smaps:
            head = line.split(maxsplit=1)[0]
            if "-" in head and not head.endswith(":"):
                lo, hi = (int(x, 16) for x in head.split("-"))
                inside = lo <= address < hi
            elif inside and head == "AnonHugePages:":
                return int(line.split()[1]) * 1024
    return 0


def base_pages(size_bytes: int) -> int:
    return -(-int(size_bytes) // PAGE_BYTES)
