"""Send loops: one per file -> TCP socket path. Each pushes chunks of the source into a connected
socket until its budget (a byte count or a deadline) is spent and returns what it did.

Paths and what moves the bytes:
  rw             read() into a page-aligned user buffer, then send() (anon: send() from the source)
  sendfile       sendfile() from the file's page cache
  splice         splice() file -> pipe -> socket, in <= 1 MiB steps (a pipe cannot grow further here)
  vmsplice       vmsplice() of user memory into a pipe, splice() pipe -> socket (file sources: their
                 shared mapping, so the pages are the page cache; the buffer is never reused for
                 anything else, because vmsplice gives no completion)
  msg-zerocopy   send(MSG_ZEROCOPY) from user memory; completions read from the error queue and the
                 kernel's "copied" flag counted
  uring-send     io_uring IORING_OP_SEND from user memory, one request in flight
  uring-send-zc  io_uring IORING_OP_SEND_ZC, usage reporting on: the notification says if it copied
  uring-splice   io_uring IORING_OP_SPLICE file -> pipe, then pipe -> socket
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import select
import socket
import struct
import time
from dataclasses import dataclass

from rig.copy import uring as ur
from rig.copy.buffers import address_of, aligned_buffer
from rig.copy.sources import Source

PATHS = ("rw", "sendfile", "splice", "vmsplice", "msg-zerocopy", "uring-send", "uring-send-zc",
         "uring-splice")
FILE_ONLY = ("sendfile", "splice", "uring-splice")  # need a file descriptor with page cache behind it

# Python 3.11's socket module lacks these (include/uapi/asm-generic/socket.h, linux/socket.h)
SO_ZEROCOPY = 60
MSG_ZEROCOPY = 0x4000000
SO_EE_ORIGIN_ZEROCOPY = 5
SO_EE_CODE_ZEROCOPY_COPIED = 1
IP_RECVERR = 11
F_SETPIPE_SZ = 1031
PIPE_MAX_BYTES = 1 << 20
NOTIFICATION_WAIT_S = 10.0   # how long a zero-copy sender waits for its last completions
SPLICE_F_MOVE, SPLICE_F_MORE = 1, 4

_libc = ctypes.CDLL(None, use_errno=True)


class PathRefused(Exception):
    """The kernel (or the source) does not support this path; the message says why."""


@dataclass
class Budget:
    """Either an exact byte count or a deadline (time.monotonic seconds)."""
    total_bytes: int | None = None
    deadline: float | None = None
    sent: int = 0

    def next_size(self, chunk: int) -> int:
        if self.total_bytes is not None:
            return min(chunk, self.total_bytes - self.sent)
        return chunk if time.monotonic() < self.deadline else 0


def refusal(path: str, source: Source) -> str | None:
    """Why `path` cannot run from `source`, or None."""
    if path not in PATHS:
        return f"unknown path {path!r}"
    if path in FILE_ONLY and not source.has_file:
        return f"{path} moves page cache pages of a file; anonymous memory has no file"
    return None


def send(path: str, sock: socket.socket, source: Source, chunk: int, budget: Budget) -> dict:
    reason = refusal(path, source)
    if reason:
        raise PathRefused(reason)
    return _LOOPS[path](sock, source, int(chunk), budget)


def _offsets(source: Source, chunk: int, budget: Budget):
    """(offset, length) of each chunk, cycling over the source."""
    offset = 0
    while True:
        n = budget.next_size(chunk)
        if n <= 0:
            return
        n = min(n, source.size_bytes - offset)
        yield offset, n
        budget.sent += n
        offset = (offset + n) % source.size_bytes


def _rw(sock, source, chunk, budget) -> dict:
    calls = 0
    if not source.has_file:
        view = memoryview(source.mapping)
        for off, n in _offsets(source, chunk, budget):
            sock.sendall(view[off:off + n])
            calls += 1
        view.release()
        return {"calls": calls, "read_step": False}
    buf = aligned_buffer(chunk)
    view = memoryview(buf)
    for off, n in _offsets(source, chunk, budget):
        got = os.preadv(source.fd, [view[:n]], off)
        if got != n:
            raise OSError(errno.EIO, f"short read {got} of {n} bytes at {off}")
        sock.sendall(view[:n])
        calls += 2
    view.release()
    return {"calls": calls, "read_step": True}


def _sendfile(sock, source, chunk, budget) -> dict:
    calls, fd = 0, sock.fileno()
    for off, n in _offsets(source, chunk, budget):
        done = 0
        while done < n:
            done += os.sendfile(fd, source.fd, off + done, n - done)
            calls += 1
    return {"calls": calls}


def open_pipe() -> tuple[int, int, int]:
    """A pipe grown to PIPE_MAX_BYTES where the kernel allows: (read end, write end, its size)."""
    r, w = os.pipe()
    try:
        size = fcntl.fcntl(w, F_SETPIPE_SZ, PIPE_MAX_BYTES)
    except OSError:
        size = fcntl.fcntl(w, 1032)  # F_GETPIPE_SZ: keep the default
    return r, w, size


def drain_pipe(r: int, sock_fd: int, n: int) -> int:
    calls = 0
    while n:
        n -= os.splice(r, sock_fd, n, flags=SPLICE_F_MOVE | SPLICE_F_MORE)
        calls += 1
    return calls


def _splice(sock, source, chunk, budget) -> dict:
    r, w, pipe_bytes = open_pipe()
    calls, fd = 0, sock.fileno()
    try:
        for off, n in _offsets(source, chunk, budget):
            done = 0
            while done < n:
                got = os.splice(source.fd, w, min(pipe_bytes, n - done), offset_src=off + done,
                                flags=SPLICE_F_MOVE | SPLICE_F_MORE)
                if got <= 0:
                    raise OSError(errno.EIO, f"splice from the source returned {got}")
                calls += 1 + drain_pipe(r, fd, got)
                done += got
    finally:
        os.close(r), os.close(w)
    return {"calls": calls, "pipe_bytes": pipe_bytes}


class Iovec(ctypes.Structure):
    _fields_ = [("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t)]


def vmsplice(pipe_w: int, iov: Iovec) -> int:
    """vmsplice(2) of one iovec into a pipe: the pipe takes references to the user pages."""
    got = _libc.vmsplice(pipe_w, ctypes.byref(iov), 1, 0)
    if got < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"vmsplice: {os.strerror(err)}")
    return got


def _vmsplice(sock, source, chunk, budget) -> dict:
    r, w, pipe_bytes = open_pipe()
    base, calls, fd = address_of(source.mapping), 0, sock.fileno()
    iov = Iovec()
    try:
        for off, n in _offsets(source, chunk, budget):
            done = 0
            while done < n:
                iov.iov_base, iov.iov_len = base + off + done, min(pipe_bytes, n - done)
                got = vmsplice(w, iov)
                calls += 1 + drain_pipe(r, fd, got)
                done += got
    finally:
        os.close(r), os.close(w)
    return {"calls": calls, "pipe_bytes": pipe_bytes}


class _ZeroCopyCompletions:
    """Reads MSG_ZEROCOPY completions (ranges of send ids) from the socket's error queue."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.done = 0       # send ids completed
        self.copied = 0     # of which the kernel copied after all
        self.notifications = 0

    def drain(self, block_s: float = 0.0) -> None:
        if block_s:
            poller = select.poll()
            poller.register(self.sock.fileno(), select.POLLERR)
            poller.poll(block_s * 1000)
        while True:
            try:
                _, ancdata, _, _ = self.sock.recvmsg(0, 256, socket.MSG_ERRQUEUE | socket.MSG_DONTWAIT)
            except BlockingIOError:
                return
            for level, kind, data in ancdata:
                if level != socket.SOL_IP or kind != IP_RECVERR or len(data) < 16:
                    continue
                ee_errno, origin, _, code, _, lo, hi = struct.unpack_from("=IBBBBII", data)
                if origin != SO_EE_ORIGIN_ZEROCOPY or ee_errno != 0:
                    continue
                count = (hi - lo + 1) & 0xFFFFFFFF
                self.done += count
                self.notifications += 1
                if code & SO_EE_CODE_ZEROCOPY_COPIED:
                    self.copied += count


def _msg_zerocopy(sock, source, chunk, budget) -> dict:
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_ZEROCOPY, 1)
    except OSError as exc:
        raise PathRefused(f"SO_ZEROCOPY refused by the kernel: {exc.strerror}") from None
    view = memoryview(source.mapping)
    comp = _ZeroCopyCompletions(sock)
    sends = calls = 0
    for off, n in _offsets(source, chunk, budget):
        done = 0
        while done < n:
            try:
                done += sock.send(view[off + done:off + n], MSG_ZEROCOPY)
                sends += 1
            except OSError as exc:
                if exc.errno != errno.ENOBUFS:  # optmem full: wait for completions, then retry
                    raise
                comp.drain(block_s=0.1)
            calls += 1
        comp.drain()
    end_of_stream(sock)
    deadline = time.monotonic() + NOTIFICATION_WAIT_S
    while comp.done < sends and time.monotonic() < deadline:
        comp.drain(block_s=0.1)
    view.release()
    return {"calls": calls, "zerocopy_sends": sends, "zerocopy_completed": comp.done,
            "zerocopy_copied": comp.copied, "zerocopy_notifications": comp.notifications,
            "kernel_copied": _copied_verdict(comp.copied, comp.done, sends)}


def end_of_stream(sock: socket.socket) -> None:
    """Shut the sending side (FIN) once every byte is handed over. A zero-copy sender does it before
    it waits for its last completions, so the transfer (timed to the receiver's end of stream) ends
    with the data, never with that wait."""
    try:
        sock.shutdown(socket.SHUT_WR)
    except OSError as exc:
        if exc.errno != errno.ENOTCONN:
            raise


def _copied_verdict(copied: int, completed: int, sends: int) -> bool | None:
    """True if the kernel copied any send; False only when every send completed uncopied; None
    (unknown) while completions are missing: never claim zero copy without the kernel's word."""
    if copied:
        return True
    return False if sends and completed >= sends else None


def _uring_send(sock, source, chunk, budget, zero_copy: bool = False) -> dict:
    try:
        ring = ur.Uring(8)
    except ur.UringUnavailable as exc:
        raise PathRefused(str(exc)) from None
    base, fd = address_of(source.mapping), sock.fileno()
    op = ur.IORING_OP_SEND_ZC if zero_copy else ur.IORING_OP_SEND
    prio = ur.IORING_SEND_ZC_REPORT_USAGE if zero_copy else 0
    calls = notifs = copied = promised = 0  # promised: sends whose CQE said a notification follows

    def take(cqe_res: int, cqe_flags: int) -> int | None:
        """Counts a notification; returns a send's result."""
        nonlocal notifs, copied, promised
        if cqe_flags & ur.IORING_CQE_F_NOTIF:
            notifs += 1
            copied += bool(cqe_res & ur.IORING_NOTIF_USAGE_ZC_COPIED)
            return None
        promised += bool(cqe_flags & ur.IORING_CQE_F_MORE)
        return cqe_res

    try:
        for off, n in _offsets(source, chunk, budget):
            done = 0
            while done < n:
                ring.prep(op, fd, base + off + done, n - done, ioprio=prio, user_data=1)
                calls += 1
                result = None
                while result is None:
                    for _, res, flags in ring.wait(1):
                        got = take(res, flags)
                        result = got if got is not None else result
                if result < 0:
                    if -result in (errno.EINVAL, errno.EOPNOTSUPP) and done == 0 and calls == 1:
                        raise PathRefused(f"io_uring {'SEND_ZC' if zero_copy else 'SEND'} refused: "
                                          f"{os.strerror(-result)}")
                    raise OSError(-result, f"io_uring send: {os.strerror(-result)}")
                done += result
        end_of_stream(sock)
        # bounded: ring.wait() would block for good on a notification that never comes
        deadline = time.monotonic() + NOTIFICATION_WAIT_S
        while notifs < promised and time.monotonic() < deadline:
            ring.flush()  # notifications can pile up past the 16-entry CQ ring while we send
            cqes = ring.completions()
            for _, res, flags in cqes:
                take(res, flags)
            if not cqes:
                time.sleep(0.001)
    finally:
        ring.close()
    out = {"calls": calls}
    if zero_copy:
        out.update({"zerocopy_sends": promised, "zerocopy_completed": notifs,
                    "zerocopy_notifications": notifs, "zerocopy_copied": copied,
                    "kernel_copied": _copied_verdict(copied, notifs, promised)})
    return out


def _uring_send_zc(sock, source, chunk, budget) -> dict:
    return _uring_send(sock, source, chunk, budget, zero_copy=True)


def _uring_splice(sock, source, chunk, budget) -> dict:
    try:
        ring = ur.Uring(8)
    except ur.UringUnavailable as exc:
        raise PathRefused(str(exc)) from None
    r, w, pipe_bytes = open_pipe()
    calls, fd, no_offset = 0, sock.fileno(), -1
    try:
        def splice(fd_in: int, off_in: int, fd_out: int, n: int) -> int:
            # SPLICE: fd = out, off = off_out, addr = off_in, splice_fd_in = in
            ring.prep(ur.IORING_OP_SPLICE, fd_out, addr=off_in, length=n, off=no_offset,
                      op_flags=SPLICE_F_MOVE | SPLICE_F_MORE, splice_fd_in=fd_in)
            (_, res, _), = ring.wait(1)
            if res < 0:
                if -res in (errno.EINVAL, errno.EOPNOTSUPP) and calls == 0:
                    raise PathRefused(f"io_uring SPLICE refused: {os.strerror(-res)}")
                raise OSError(-res, f"io_uring splice: {os.strerror(-res)}")
            return res

        for off, n in _offsets(source, chunk, budget):
            done = 0
            while done < n:
                got = splice(source.fd, off + done, w, min(pipe_bytes, n - done))
                calls += 1
                left = got
                while left:
                    left -= splice(r, no_offset, fd, left)
                    calls += 1
                done += got
    finally:
        os.close(r), os.close(w)
        ring.close()
    return {"calls": calls, "pipe_bytes": pipe_bytes}


_LOOPS = {"rw": _rw, "sendfile": _sendfile, "splice": _splice, "vmsplice": _vmsplice,
          "msg-zerocopy": _msg_zerocopy, "uring-send": _uring_send, "uring-send-zc": _uring_send_zc,
          "uring-splice": _uring_splice}
