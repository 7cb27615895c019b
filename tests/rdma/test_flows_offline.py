"""The parts of the flows seam that need no device: buffer descriptors on the wire, wr_id kinds."""

import pytest

from rig.flows import channel
from rig.flows.descriptor import SIZE_BYTES, BufferDescriptor


def test_descriptor_is_smb2_buffer_descriptor_v1_on_the_wire():
    d = BufferDescriptor(offset=0x7F00_1234_5000, token=0xDEADBEEF, length=1 << 20)
    raw = d.pack()
    assert SIZE_BYTES == 16 and len(raw) == 16
    assert raw == bytes.fromhex("0050341200 7f0000".replace(" ", "")) + bytes.fromhex("efbeadde") + bytes.fromhex("00001000")
    assert BufferDescriptor.unpack(b"xx" + raw, 2) == d
    assert d.as_dict() == {"offset": 0x7F00_1234_5000, "token": 0xDEADBEEF, "length": 1 << 20}


def test_a_part_stays_inside_the_advertised_buffer():
    d = BufferDescriptor(4096, 7, 8192)
    assert d.part(4096, 4096) == BufferDescriptor(8192, 7, 4096)
    with pytest.raises(ValueError, match="outside"):
        d.part(4096, 4097)


@pytest.mark.parametrize("fields,name", [((-1, 1, 1), "offset"), ((0, 1 << 32, 1), "token"),
                                         ((0, 1, 1 << 32), "length"), ((0, True, 1), "token")])
def test_descriptor_fields_are_range_checked(fields, name):
    with pytest.raises(ValueError, match=name):
        BufferDescriptor(*fields)


def test_truncated_descriptor_is_refused():
    with pytest.raises(ValueError, match="needs 16 bytes"):
        BufferDescriptor.unpack(bytes(15))


def test_wr_ids_tell_kinds_apart():
    for kind in (channel.SEND, channel.RECV, channel.WRITE, channel.READ):
        wr_id = kind << channel.KIND_SHIFT | 12345
        assert wr_id >> channel.KIND_SHIFT == kind and wr_id & channel.COOKIE_MASK == 12345
    assert wr_id < 1 << 64
