"""A small io_uring driver on raw syscalls: io_uring_setup, io_uring_enter and the mmap'd rings.

Only what the probes and the SMB Direct server need: one ring, send, send-zc, splice (queue depth 1
per request), file READ/WRITE (several in flight, IOSQE_ASYNC: handed to io-wq workers at once,
their number capped with IORING_REGISTER_IOWQ_MAX_WORKERS), completions read straight from the CQ
ring. PyPI's liburing dies with SIGILL on this CPU (AVX-512 code), so the
kernel ABI (include/uapi/linux/io_uring.h) is spoken directly. x86-64 only: there loads and stores
are not reordered against each other, so plain reads and writes of the ring indices are enough.
"""

from __future__ import annotations

import ctypes
import errno
import mmap
import os
import platform
import struct

SYS_IO_URING_SETUP = 425
SYS_IO_URING_ENTER = 426
SYS_IO_URING_REGISTER = 427
IORING_REGISTER_BUFFERS = 0
IORING_UNREGISTER_BUFFERS = 1
IORING_REGISTER_IOWQ_MAX_WORKERS = 19     # [bounded, unbounded] io-wq workers per ring's task (5.15)
IORING_ENTER_GETEVENTS = 1 << 0
IORING_FEAT_SINGLE_MMAP = 1 << 0
IORING_OFF_SQ_RING = 0
IORING_OFF_CQ_RING = 0x8000000
IORING_OFF_SQES = 0x10000000

IORING_OP_READ = 22
IORING_OP_WRITE = 23
IORING_OP_SEND = 26
IORING_OP_SPLICE = 30
IORING_OP_SEND_ZC = 47

IORING_CQE_F_MORE = 1 << 1
IORING_CQE_F_NOTIF = 1 << 3
IORING_SEND_ZC_REPORT_USAGE = 1 << 3      # in sqe->ioprio for SEND_ZC
IORING_NOTIF_USAGE_ZC_COPIED = 1 << 31    # in the notification's res

IOSQE_ASYNC = 1 << 4                       # sqe->flags: never try inline, punt to an io-wq worker

SQE_BYTES = 64
CQE_BYTES = 16

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


class _SqOffsets(ctypes.Structure):
    _fields_ = [("head", ctypes.c_uint32), ("tail", ctypes.c_uint32), ("ring_mask", ctypes.c_uint32),
                ("ring_entries", ctypes.c_uint32), ("flags", ctypes.c_uint32), ("dropped", ctypes.c_uint32),
                ("array", ctypes.c_uint32), ("resv1", ctypes.c_uint32), ("user_addr", ctypes.c_uint64)]


class _CqOffsets(ctypes.Structure):
    _fields_ = [("head", ctypes.c_uint32), ("tail", ctypes.c_uint32), ("ring_mask", ctypes.c_uint32),
                ("ring_entries", ctypes.c_uint32), ("overflow", ctypes.c_uint32), ("cqes", ctypes.c_uint32),
                ("flags", ctypes.c_uint32), ("resv1", ctypes.c_uint32), ("user_addr", ctypes.c_uint64)]


class _Params(ctypes.Structure):
    _fields_ = [("sq_entries", ctypes.c_uint32), ("cq_entries", ctypes.c_uint32), ("flags", ctypes.c_uint32),
                ("sq_thread_cpu", ctypes.c_uint32), ("sq_thread_idle", ctypes.c_uint32),
                ("features", ctypes.c_uint32), ("wq_fd", ctypes.c_uint32), ("resv", ctypes.c_uint32 * 3),
                ("sq_off", _SqOffsets), ("cq_off", _CqOffsets)]


# opcode, flags, ioprio, fd, off/addr2, addr/splice_off_in, len, op_flags, user_data,
# buf_index, personality, splice_fd_in, addr3, pad
_SQE = struct.Struct("=BBHiQQIIQHHiQQ")
assert _SQE.size == SQE_BYTES
_CQE = struct.Struct("=QiI")


class UringUnavailable(OSError):
    """The running kernel (or this machine) does not offer io_uring."""


class Uring:
    def __init__(self, entries: int = 8):
        if platform.machine() != "x86_64":
            raise UringUnavailable(errno.ENOSYS, "the raw io_uring driver knows x86-64 syscall numbers only")
        params = _Params()
        fd = _libc.syscall(SYS_IO_URING_SETUP, ctypes.c_uint(entries), ctypes.byref(params))
        if fd < 0:
            err = ctypes.get_errno()
            raise UringUnavailable(err, f"io_uring_setup failed: {os.strerror(err)}")
        self.fd = int(fd)
        self.params = params
        sq, cq = params.sq_off, params.cq_off
        sq_size = sq.array + params.sq_entries * 4
        cq_size = cq.cqes + params.cq_entries * CQE_BYTES
        if params.features & IORING_FEAT_SINGLE_MMAP:
            sq_size = cq_size = max(sq_size, cq_size)
            self.sq_ring = mmap.mmap(self.fd, sq_size, offset=IORING_OFF_SQ_RING)
            self.cq_ring = self.sq_ring
        else:
            self.sq_ring = mmap.mmap(self.fd, sq_size, offset=IORING_OFF_SQ_RING)
            self.cq_ring = mmap.mmap(self.fd, cq_size, offset=IORING_OFF_CQ_RING)
        self.sqes = mmap.mmap(self.fd, params.sq_entries * SQE_BYTES, offset=IORING_OFF_SQES)
        self._sq_head = ctypes.c_uint32.from_buffer(self.sq_ring, sq.head)
        self._sq_tail = ctypes.c_uint32.from_buffer(self.sq_ring, sq.tail)
        self._sq_mask = ctypes.c_uint32.from_buffer(self.sq_ring, sq.ring_mask).value
        self._sq_array = sq.array
        self._cq_head = ctypes.c_uint32.from_buffer(self.cq_ring, cq.head)
        self._cq_tail = ctypes.c_uint32.from_buffer(self.cq_ring, cq.tail)
        self._cq_mask = ctypes.c_uint32.from_buffer(self.cq_ring, cq.ring_mask).value
        self._cqes = cq.cqes
        self.pending = 0  # submitted SQEs not yet handed to the kernel

    def close(self) -> None:
        # ctypes views pin the mmaps; drop them before unmapping
        self._sq_head = self._sq_tail = self._cq_head = self._cq_tail = None
        for m in {id(self.sq_ring): self.sq_ring, id(self.cq_ring): self.cq_ring}.values():
            m.close()
        self.sqes.close()
        os.close(self.fd)

    def __enter__(self) -> "Uring":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def prep(self, opcode: int, fd: int, addr: int = 0, length: int = 0, off: int = 0,
             op_flags: int = 0, user_data: int = 0, ioprio: int = 0, splice_fd_in: int = 0,
             sqe_flags: int = 0) -> None:
        tail = self._sq_tail.value
        if tail - self._sq_head.value >= self.params.sq_entries:
            raise RuntimeError("io_uring submission queue full")
        index = tail & self._sq_mask
        _SQE.pack_into(self.sqes, index * SQE_BYTES, opcode, sqe_flags, ioprio, fd, off & (2**64 - 1),
                       addr & (2**64 - 1), length, op_flags, user_data, 0, 0, splice_fd_in, 0, 0)
        struct.pack_into("=I", self.sq_ring, self._sq_array + index * 4, index)
        self._sq_tail.value = tail + 1
        self.pending += 1

    def register_buffer(self, address: int, length: int) -> None:
        """IORING_REGISTER_BUFFERS of one buffer: the kernel pins its pages (pin_user_pages,
        FOLL_LONGTERM) and keeps them pinned until unregister_buffers()."""
        iov = (ctypes.c_uint64 * 2)(address, length)
        if _libc.syscall(SYS_IO_URING_REGISTER, self.fd, IORING_REGISTER_BUFFERS, ctypes.byref(iov), 1) < 0:
            err = ctypes.get_errno()
            raise OSError(err, f"io_uring buffer registration: {os.strerror(err)}")

    def unregister_buffers(self) -> None:
        if _libc.syscall(SYS_IO_URING_REGISTER, self.fd, IORING_UNREGISTER_BUFFERS, None, 0) < 0:
            err = ctypes.get_errno()
            raise OSError(err, f"io_uring buffer unregistration: {os.strerror(err)}")

    def set_iowq_max_workers(self, bounded: int, unbounded: int = 0) -> tuple[int, int]:
        """IORING_REGISTER_IOWQ_MAX_WORKERS: cap the io-wq workers of this ring's task (bounded:
        regular file reads and writes; unbounded: sockets and the like; 0 leaves one as it is).
        Returns the caps that were in place before."""
        counts = (ctypes.c_uint32 * 2)(bounded, unbounded)
        if _libc.syscall(SYS_IO_URING_REGISTER, self.fd, IORING_REGISTER_IOWQ_MAX_WORKERS, ctypes.byref(counts), 2) < 0:
            err = ctypes.get_errno()
            raise OSError(err, f"io_uring IOWQ_MAX_WORKERS: {os.strerror(err)}")
        return int(counts[0]), int(counts[1])

    def prep_rw(self, write: bool, fd: int, addr: int, length: int, off: int, user_data: int,
                asynchronous: bool = True) -> None:
        """A file READ into (or WRITE from) `length` bytes at `addr`, at file offset `off`; with
        `asynchronous` flagged IOSQE_ASYNC (an io-wq worker does the copy, not the submitter)."""
        self.prep(IORING_OP_WRITE if write else IORING_OP_READ, fd, addr=addr, length=length, off=off,
                  user_data=user_data, sqe_flags=IOSQE_ASYNC if asynchronous else 0)

    def space(self) -> int:
        """Free submission-queue entries."""
        return self.params.sq_entries - (self._sq_tail.value - self._sq_head.value)

    def enter(self, wait_for: int = 0) -> int:
        """Hand the pending SQEs to the kernel and wait for `wait_for` completions."""
        flags = IORING_ENTER_GETEVENTS if wait_for else 0
        while True:
            ret = _libc.syscall(SYS_IO_URING_ENTER, self.fd, self.pending, wait_for, flags, None, 0)
            if ret >= 0:
                self.pending -= ret
                return ret
            err = ctypes.get_errno()
            if err != errno.EINTR:
                raise OSError(err, f"io_uring_enter: {os.strerror(err)}")

    def flush(self) -> None:
        """io_uring_enter(GETEVENTS) waiting for nothing: runs pending completion work and moves
        completions that overflowed the CQ ring (kept by the kernel: IORING_FEAT_NODROP) into it.
        Reading the ring's memory alone never sees those."""
        while _libc.syscall(SYS_IO_URING_ENTER, self.fd, 0, 0, IORING_ENTER_GETEVENTS, None, 0) < 0:
            err = ctypes.get_errno()
            if err not in (errno.EINTR, errno.EAGAIN, errno.EBUSY):
                raise OSError(err, f"io_uring_enter: {os.strerror(err)}")

    def completions(self) -> list[tuple[int, int, int]]:
        """All completions in the CQ ring as (user_data, res, flags), consumed."""
        out = []
        head, tail = self._cq_head.value, self._cq_tail.value
        while head != tail:
            out.append(_CQE.unpack_from(self.cq_ring, self._cqes + (head & self._cq_mask) * CQE_BYTES))
            head += 1
        self._cq_head.value = head
        return out

    def wait(self, count: int = 1) -> list[tuple[int, int, int]]:
        """Submit what is pending, then return completions once at least `count` are there."""
        got: list[tuple[int, int, int]] = []
        while True:
            got += self.completions()
            if len(got) >= count and not self.pending:
                return got
            self.enter(wait_for=max(0, count - len(got)))
