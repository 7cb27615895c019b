"""A writer (and a reader, for tests) for the cpio "newc" format the kernel unpacks as initramfs."""

from __future__ import annotations

import gzip
import stat
from dataclasses import dataclass

_MAGIC = b"070701"
_TRAILER = "TRAILER!!!"


@dataclass(frozen=True)
class Entry:
    name: str          # path inside the archive, no leading "/"
    mode: int          # full st_mode (type bits + permissions)
    data: bytes = b""  # file contents
    rdev: tuple[int, int] = (0, 0)  # (major, minor) of a device node


def directory(name: str) -> Entry:
    return Entry(name, stat.S_IFDIR | 0o755)


def file(name: str, data: bytes, executable: bool = False) -> Entry:
    return Entry(name, stat.S_IFREG | (0o755 if executable else 0o644), data)


def char_device(name: str, major: int, minor: int) -> Entry:
    return Entry(name, stat.S_IFCHR | 0o600, b"", (major, minor))


def _pad4(n: int) -> bytes:
    return b"\0" * (-n % 4)


def _header(ino: int, entry: Entry) -> bytes:
    name = entry.name.encode() + b"\0"
    fields = (ino, entry.mode, 0, 0, 2 if stat.S_ISDIR(entry.mode) else 1, 0, len(entry.data),
              0, 0, entry.rdev[0], entry.rdev[1], len(name), 0)
    head = _MAGIC + b"".join(b"%08X" % f for f in fields)
    return head + name + _pad4(len(head) + len(name))


def pack(entries: list[Entry]) -> bytes:
    """The uncompressed archive: parents must come before children (the kernel creates in order)."""
    out = bytearray()
    for ino, entry in enumerate(entries + [Entry(_TRAILER, 0)], start=1):
        out += _header(ino, entry)
        out += entry.data + _pad4(len(entry.data))
    return bytes(out)


def pack_gzip(entries: list[Entry]) -> bytes:
    return gzip.compress(pack(entries), compresslevel=1, mtime=0)


def unpack(blob: bytes) -> list[Entry]:
    """Parse a newc archive (gzip or plain) back into entries; used to check what was built."""
    if blob[:2] == b"\x1f\x8b":
        blob = gzip.decompress(blob)
    entries, pos = [], 0
    while True:
        if blob[pos:pos + 6] != _MAGIC:
            raise ValueError(f"not a newc cpio header at offset {pos}")
        fields = [int(blob[pos + 6 + 8 * i: pos + 14 + 8 * i], 16) for i in range(13)]
        mode, size, namesize = fields[1], fields[6], fields[11]
        pos += 110
        name = blob[pos:pos + namesize - 1].decode()
        pos += namesize + (-(110 + namesize) % 4)
        data = blob[pos:pos + size]
        pos += size + (-size % 4)
        if name == _TRAILER:
            return entries
        entries.append(Entry(name, mode, data, (fields[9], fields[10])))
