"""A peer's advertised memory: where an RDMA WRITE or READ goes, as SMB2 describes it.

[MS-SMB2] SMB2_BUFFER_DESCRIPTOR_V1, the RDMA channel information of SMB2 READ and WRITE
requests: Offset (8 bytes, the buffer's address in the peer's registered memory), Token (4 bytes,
the rkey), Length (4 bytes); little-endian, 16 bytes. No pyverbs here.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

_V1 = struct.Struct("<QII")
SIZE_BYTES = _V1.size


@dataclass(frozen=True)
class BufferDescriptor:
    offset: int          # the peer's virtual address of the first byte
    token: int           # the peer's rkey
    length: int

    def __post_init__(self) -> None:
        for name, value, bits in (("offset", self.offset, 64), ("token", self.token, 32), ("length", self.length, 32)):
            if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < (1 << bits):
                raise ValueError(f"buffer descriptor {name} must be an integer in 0..2^{bits}-1, got {value!r}")

    def pack(self) -> bytes:
        return _V1.pack(self.offset, self.token, self.length)

    @staticmethod
    def unpack(data: bytes, at: int = 0) -> "BufferDescriptor":
        if len(data) - at < SIZE_BYTES:
            raise ValueError(f"a buffer descriptor needs {SIZE_BYTES} bytes, {len(data) - at} left")
        return BufferDescriptor(*_V1.unpack_from(data, at))

    def part(self, offset: int, length: int) -> "BufferDescriptor":
        """`length` bytes from `offset` into this buffer."""
        if offset < 0 or length < 0 or offset + length > self.length:
            raise ValueError(f"bytes {offset}..{offset + length} outside the advertised {self.length}")
        return BufferDescriptor(self.offset + offset, self.token, length)

    def as_dict(self) -> dict[str, int]:
        return {"offset": self.offset, "token": self.token, "length": self.length}

    @staticmethod
    def of(region: Any, offset: int = 0, length: int | None = None) -> "BufferDescriptor":
        """What to advertise for `region` (a rig.rdma.player.Region) to the peer."""
        length = region.length - offset if length is None else length
        return BufferDescriptor(region.addr, region.rkey, region.length).part(offset, length)
