"""The flows seam on a real device: messages with credits, bulk WRITE/READ to an advertised
buffer, a read-only file mapping as an RDMA source, one registration shared by two connections."""

from __future__ import annotations

import mmap
import os
import time

import pytest

from rig.flows.channel import Channel, CreditError
from rig.flows.descriptor import BufferDescriptor
from rig.launch.local import loopback
from rig.rdma.completions import PollTimeout
from rig.rdma.devices import discover
from rig.rdma.player import Player, PlayerConfig

pytestmark = pytest.mark.rdma
CFG = PlayerConfig(msg_bytes=4096, slots=1, num_qps=1, tx_depth=16, rx_depth=16)


def _events(ch, kind, n, timeout_s=20.0):
    got, deadline = [], time.monotonic() + timeout_s
    while len(got) < n:
        got += [e for e in ch.poll(timeout_s=max(0.1, deadline - time.monotonic())) if e.kind == kind]
    return got


def test_messages_flow_only_against_credits(rdma_devices):
    a, b = loopback(CFG, device=rdma_devices[0])
    try:
        ca = Channel(a, max_msg_bytes=256, recv_slots=2, send_slots=2, send_credits=3, timeout_s=20)
        cb = Channel(b, max_msg_bytes=256, recv_slots=3, send_slots=1, send_credits=0, timeout_s=20)
        sent = [os.urandom(100 + i) for i in range(3)]
        for data in sent:
            slot = ca.take_send_slot()
            ca.fill(slot, data)
            ca.send(ca.send_wr(slot, len(data)))
        with pytest.raises(CreditError):
            ca.send(ca.send_wr(0, 1))                       # B granted three receives, no more
        got = _events(cb, "recv", 3)
        assert sorted(cb.received(e.slot, e.byte_len) for e in got) == sorted(sent)
        for e in got:
            cb.repost(e.slot)
        assert cb.receive_credits() == 3 and cb.receive_credits() == 0
        # B answers with an immediate once A grants it a receive
        with pytest.raises(CreditError):
            cb.send(cb.send_wr(0, 8))
        cb.grant_send(1)
        slot = cb.take_send_slot()
        cb.fill(slot, b"answered")
        cb.send(cb.send_wr(slot, 8, imm=7))
        (answer,) = _events(ca, "recv", 1)
        assert answer.imm == 7 and ca.received(answer.slot, answer.byte_len) == b"answered"
        t0 = time.monotonic()
        with pytest.raises(PollTimeout):
            _events(ca, "recv", 1, timeout_s=0.5)                # nothing more comes: bounded wait
        assert time.monotonic() - t0 < 5
        ca.drain()
        cb.drain()
    finally:
        a.close()
        b.close()


def test_bulk_write_and_read_by_descriptor_from_a_read_only_file_mapping(rdma_devices, tmp_path):
    """What SMB Direct's zero-copy READ does: the file mapped read-only, registered for local read
    only, RDMA-written to the client's advertised buffer; then the client's buffer read back.

    MAP_PRIVATE: the guest's 6.1 kernel refuses to pin a read-only MAP_SHARED file mapping (EFAULT,
    for any access flags; a private read-only mapping maps the same page-cache pages)."""
    data = os.urandom(64 * 1024)
    path = tmp_path / "file.bin"
    path.write_bytes(data)
    a, b = loopback(CFG, device=rdma_devices[0])
    try:
        ca = Channel(a, max_msg_bytes=64, recv_slots=0, send_slots=0, timeout_s=20)
        with open(path, "rb") as f:
            mapping = mmap.mmap(f.fileno(), 0, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ)
        source = a.register_buffer(mapping, access=0)
        target = b.alloc(len(data))
        ca.write(source, 0, BufferDescriptor.of(target), cookie=41)
        assert [e.slot for e in _events(ca, "write", 1)] == [41]
        assert target.read() == data
        target.view(0, 4)[:] = b"ABCD"                          # the client changes its buffer ...
        back = a.alloc(8192)
        ca.read(back, 0, BufferDescriptor.of(target, 0, 8192), cookie=42)   # ... and the server reads it
        assert [e.slot for e in _events(ca, "read", 1)] == [42]
        assert back.read() == b"ABCD" + data[4:8192]
    finally:
        a.close()
        b.close()


def test_one_registration_serves_two_connections(rdma_devices):
    """Players sharing a protection domain: memory registered once on the root, sent by two
    connections, each with its own QP and CQs (one serving thread each in a server)."""
    port = discover(rdma_devices[0])
    root = Player(port, CFG)
    kids, peers = [], []
    try:
        shared = root.alloc(8192)
        shared.view()[:] = os.urandom(8192)
        for _ in range(2):
            kid, peer = Player(port, CFG, parent=root), Player(port, CFG)
            kids.append(kid)
            peers.append(peer)
            kid.connect(peer.endpoint())
            peer.connect(kid.endpoint())
        assert kids[0].pd is root.pd and kids[1].pd is root.pd and kids[0].send_cq is not kids[1].send_cq
        for kid, peer in zip(kids, peers):
            target = peer.alloc(8192)
            ch = Channel(kid, max_msg_bytes=64, recv_slots=0, send_slots=0, timeout_s=20)
            ch.write(shared, 0, BufferDescriptor.of(target))
            _events(ch, "write", 1)
            assert target.read() == shared.read()
    finally:
        for p in kids + peers:
            p.close()
        root.close()
    assert root.pd is None and kids[0].pd is None
