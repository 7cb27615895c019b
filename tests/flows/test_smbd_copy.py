"""The server's copy variants without a device: pread/pwrite on the serving thread, io_uring
READ/WRITE handed to io-wq workers (IOSQE_ASYNC) under a worker cap, file blocks' checksums."""

from __future__ import annotations

import ctypes
import os
import threading
import time
import zlib

import pytest

from rig.copy.buffers import address_of, aligned_buffer
from rig.flows import smbd
from rig.flows.descriptor import BufferDescriptor
from rig.flows.smbd_serving import AsyncWorkers, CpuCopy, Io
from rig.launch.smbd_target import block_crcs, buffers_for, pack_crcs, read_blocks, unpack_crcs
from rig.rdma.handshake import ProtocolError

BLOCK = 64 * 1024


def _io(offset: int, count: int) -> Io:
    req = smbd.read_request(1, offset, BufferDescriptor(0, 1, BLOCK))
    return Io(req, count)


@pytest.fixture
def data_file(tmp_path):
    data = os.urandom(3 * BLOCK + 1000)
    path = tmp_path / "served.bin"
    path.write_bytes(data)
    fd = os.open(path, os.O_RDWR)
    yield fd, data
    os.close(fd)


def _uring_or_skip(fd: int, depth: int, workers: int) -> AsyncWorkers:
    from rig.copy.uring import UringUnavailable
    try:
        return AsyncWorkers(fd, depth, workers)
    except (UringUnavailable, OSError) as exc:
        pytest.skip(f"io_uring unavailable here: {exc}")


def test_cpu_copy_reads_and_writes_the_range(data_file):
    fd, data = data_file
    buf = aligned_buffer(BLOCK)
    view = memoryview(buf)
    engine = CpuCopy(fd)
    assert engine.read(_io(BLOCK, BLOCK), view) == BLOCK and bytes(buf) == data[BLOCK:2 * BLOCK]
    assert engine.read(_io(3 * BLOCK, BLOCK), view) == 1000          # the tail: a short read
    view[:10] = b"0123456789"
    assert engine.write(_io(0, 10), view) == 10 and os.pread(fd, 10, 0) == b"0123456789"


def test_async_workers_read_and_write_through_io_wq_under_a_cap(data_file):
    fd, data = data_file
    engine = _uring_or_skip(fd, 4, 2)
    try:
        assert engine.ring.set_iowq_max_workers(0, 0) == (2, engine.workers_before[1])   # the cap is in place
        bufs = [aligned_buffer(BLOCK) for _ in range(3)]
        for i, b in enumerate(bufs):
            engine.submit(_io(i * BLOCK, BLOCK), address_of(b), False, tag=10 + i)
        done: dict[int, int] = {}
        deadline = time.monotonic() + 20
        while len(done) < 3 and time.monotonic() < deadline:
            done.update(engine.completed())
            time.sleep(0.001)
        assert done == {10: BLOCK, 11: BLOCK, 12: BLOCK}
        assert all(bytes(b) == data[i * BLOCK:(i + 1) * BLOCK] for i, b in enumerate(bufs))
        ctypes.memset(address_of(bufs[0]), 0x5A, BLOCK)
        engine.submit(_io(BLOCK, BLOCK), address_of(bufs[0]), True, tag=99)
        while not (got := engine.completed()) and time.monotonic() < deadline:
            time.sleep(0.001)
        assert got == [(99, BLOCK)] and os.pread(fd, BLOCK, BLOCK) == b"\x5a" * BLOCK
    finally:
        engine.close()


def test_io_wq_workers_are_threads_of_the_submitting_process(data_file):
    """IOSQE_ASYNC work runs in iou-wrk threads of this process: its rusage (RUSAGE_SELF) holds
    their CPU, the submitting thread's (RUSAGE_THREAD) does not: how the server tells them apart."""
    fd, _ = data_file
    engine = _uring_or_skip(fd, 8, 1)
    seen: set[str] = set()
    stop = threading.Event()

    def look() -> None:
        while not stop.is_set():
            for tid in os.listdir("/proc/self/task"):
                try:
                    seen.add(open(f"/proc/self/task/{tid}/comm").read().strip())
                except OSError:
                    pass
            time.sleep(0.001)
    t = threading.Thread(target=look)
    t.start()
    try:
        buf = aligned_buffer(BLOCK)
        for round_ in range(50):
            engine.submit(_io(0, BLOCK), address_of(buf), False, tag=round_)
            deadline = time.monotonic() + 10
            while not engine.completed() and time.monotonic() < deadline:
                time.sleep(0.0005)
    finally:
        stop.set()
        t.join()
        engine.close()
    assert any(name.startswith("iou-wrk") for name in seen), seen


def test_block_checksums_travel_compactly(data_file):
    fd, data = data_file
    size = len(data)
    assert read_blocks(size, BLOCK) == 4                       # three whole blocks and a 1000-byte tail
    crcs = block_crcs(fd, BLOCK, 4, size)
    assert crcs[3] == zlib.crc32(data[3 * BLOCK:]) and crcs[0] == zlib.crc32(data[:BLOCK])
    assert unpack_crcs(pack_crcs(crcs), 4) == crcs
    with pytest.raises(ProtocolError, match="3 checksums for 4"):
        unpack_crcs(pack_crcs(crcs[:3]), 4)
    with pytest.raises(ProtocolError, match="base64"):
        unpack_crcs("***", 1)
    assert len(pack_crcs([0] * 8192)) < 48 * 1024                # fits a handshake message with room to spare
    assert buffers_for(8 << 20, 255) == 4 and buffers_for(64 << 10, 8) == 8 and buffers_for(4096, 255) == 64
