"""The serving role of SMB Direct: one connection, one serving thread (a process of its own, see
rig.launch.smbd_target), answering SMB2 READ and WRITE requests from a file with one of three
copy variants, each the real mechanism:

- `cpu-copy`: pread() of the file range into a registered bounce buffer on the serving thread
  (the kernel's copy_to_iter out of the page cache), then an RDMA WRITE of that buffer to the
  client's advertised buffer. WRITE: RDMA READ into the bounce buffer, then pwrite().
- `async-workers`: the same bounce buffers, filled by io_uring READ submitted with IOSQE_ASYNC, so
  io-wq worker threads do the copy, at most `async_workers` of them
  (IORING_REGISTER_IOWQ_MAX_WORKERS); the serving thread only submits and reaps. WRITE: io_uring
  WRITE alike.
- `zero-copy` (READ only): the file mapped MAP_PRIVATE + PROT_READ (the same page-cache pages; the
  guest's 6.1 kernel refuses to pin a read-only MAP_SHARED mapping) and registered for local read
  as the source of the RDMA WRITE: no copy on the server, registered once for the whole file or
  per I/O (`register`: then the pinning of every I/O's pages is the serving thread's cost).

A READ is answered by RDMA WRITE(s) of the data to the client's descriptors followed at once by the
SEND of the response (an RC queue pair delivers them in order, so the response never overtakes
its data); the bounce buffer is free again when the WRITE completes. Every message honours the
credits of rig.flows.smbd; a protocol violation ends the connection (Terminate), a bad request gets
an SMB2 ERROR response. Every wait is bounded.
"""

from __future__ import annotations

import mmap
import os
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable

from rig.flows import smbd
from rig.flows.channel import Channel, Event
from rig.rdma.player import Player

COPY_VARIANTS = ("cpu-copy", "async-workers", "zero-copy")
DEFAULT_ASYNC_WORKERS = 4      # io-wq workers of async-workers, unless --async-workers says
REGISTER_MODES = ("once", "per-io")
RECEIVE_RESERVE = 8            # receives posted beyond those granted: a credit violation lands there
SEND_SLOTS = 32                # response messages in flight
CONTROL_EVERY = 64             # loop turns between two looks at the control conversation
# RDMA READs (WRITE requests) outstanding per connection. The protocol allows more (ksmbd: 8, its
# initiator depth), but soft-RoCE in the guest's 6.1 kernel stalled the QP or moved it to the error
# state (a flush with no error before it) in 4 of 5 runs of 1 MiB WRITEs with 8 READs outstanding on
# a QP that also carries the SENDs; with one outstanding, 5 of 5 ran clean. ksmbd also waits for each
# request's RDMA READ to complete before it goes on with that request.
READS_IN_FLIGHT = 1


@dataclass(frozen=True)
class ServeSpec:
    """What one serving connection does (from the client's hello, checked by the session)."""

    op: str                       # "read" | "write"
    copy: str                     # one of COPY_VARIANTS
    register: str                 # one of REGISTER_MODES (the zero-copy file mapping)
    io_size: int                  # the client's I/O size: one bounce buffer each
    buffers: int                  # bounce buffers (I/Os being produced at once)
    async_workers: int = 0        # io-wq bounded workers (async-workers)
    limits: smbd.Limits = field(default_factory=smbd.Limits)
    timeout_s: float = 10.0       # the longest wait for any completion while work is outstanding

    def recv_slots(self) -> int:
        return self.limits.receive_credit_max + RECEIVE_RESERVE

    def msg_bytes(self) -> int:
        return max(self.limits.max_receive_size, self.limits.max_send_size)

    def tx_depth(self) -> int:
        return 2 * self.buffers + SEND_SLOTS + 8


@dataclass
class Io:
    """One request being served."""

    req: smbd.IoRequest
    count: int                    # bytes this I/O moves (READ: what the file holds of the range)
    buffer: int = -1              # bounce buffer index (-1: none, zero-copy)
    mr: Any = None                # a per-I/O registration (zero-copy, per-io)
    pending: int = 0              # RDMA WRITEs/READs not completed


@dataclass
class Counters:
    ios: int = 0
    bytes: int = 0
    short_reads: int = 0
    errors: int = 0               # SMB2 ERROR responses sent
    grants_only: int = 0          # messages sent only to grant credits or to answer a keepalive
    registrations: int = 0        # per-I/O memory registrations

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


def take_message(channel: Channel, credits: smbd.Credits, reassembly: smbd.Reassembly, max_fragmented_size: int,
                 slot: int, nbytes: int) -> tuple[smbd.DataTransfer, bytes | None]:
    """A received data transfer message, as either end takes it ([MS-SMBD] 3.1.5.8): its credit
    consumed, its receive posted again, the peer's grant and CreditsRequested noted; with the whole
    upper-layer message once its last fragment is in (else None). Terminate / CreditError when the
    peer broke a rule."""
    data = channel.received(slot, nbytes)
    credits.consumed()                                     # CreditError: sent without a credit
    channel.repost(slot)
    credits.reposted()
    msg = smbd.parse_data_transfer(data, max_fragmented_size)
    credits.granted(msg.credits_granted)
    credits.receive_target = min(msg.credits_requested, credits.receive_max)
    return msg, reassembly.add(msg)


def negotiate_message(channel: Channel, credits: smbd.Credits) -> bytes:
    """The negotiate request (or response): the first message on a connection, within the channel's
    time limit; its receive, posted for it alone, is posted again (no credit covered it)."""
    slot, nbytes = channel.wait_message()
    data = channel.received(slot, nbytes)
    credits.negotiate_received()
    channel.repost(slot)
    credits.reposted()
    return data


# ---- copy variants ------------------------------------------------------------------------------

class CpuCopy:
    """pread()/pwrite() on the serving thread, the thread's CPU inside them summed in `cpu_ns` (the
    copy as it costs in the whole: with whatever the kernel runs in the thread's context meanwhile)."""

    def __init__(self, fd: int):
        self.fd = fd
        self.cpu_ns = 0

    def read(self, io: Io, view: memoryview) -> int | None:
        return self._timed(os.preadv, io, view)

    def write(self, io: Io, view: memoryview) -> int | None:
        return self._timed(os.pwritev, io, view)

    def _timed(self, call: Callable[..., int], io: Io, view: memoryview) -> int:
        t0 = time.thread_time_ns()
        n = call(self.fd, [view[:io.count]], io.req.offset)
        self.cpu_ns += time.thread_time_ns() - t0
        return n

    def completed(self) -> list[tuple[int, int]]:
        return []

    def close(self) -> None:
        pass


class AsyncWorkers:
    """io_uring READ/WRITE with IOSQE_ASYNC: io-wq workers copy, the serving thread reaps."""

    def __init__(self, fd: int, depth: int, workers: int):
        from rig.copy.uring import Uring
        self.fd = fd
        self.ring = Uring(entries=1 << max(1, depth - 1).bit_length())
        self.workers_before = self.ring.set_iowq_max_workers(workers, 0)
        self.addresses: dict[int, int] = {}

    def submit(self, io: Io, addr: int, write: bool, tag: int) -> None:
        self.ring.prep_rw(write, self.fd, addr, io.count, io.req.offset, tag)
        self.ring.enter(0)

    def completed(self) -> list[tuple[int, int]]:
        """(tag, result) of every finished READ/WRITE."""
        return [(int(ud), int(res)) for ud, res, _flags in self.ring.completions()]

    def close(self) -> None:
        self.ring.close()


class FileSource:
    """The file mapped read-only for zero-copy READs: registered once, or per I/O."""

    def __init__(self, player: Player, fd: int, size: int, register: str):
        from rig.copy.buffers import address_of
        self.player, self.register = player, register
        self.mapping = mmap.mmap(fd, size, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ)
        self.base = address_of(self.mapping)
        self.region = player.register_buffer(self.mapping, access=0) if register == "once" else None

    def source(self, io: Io) -> tuple[int, int]:
        """(address, lkey) of the I/O's bytes in the mapping (registering them when per-io)."""
        addr = self.base + io.req.offset
        if self.region is not None:
            return addr, self.region.lkey
        io.mr = self.player.V.MR(self.player.pd, io.count, 0, address=addr)
        return addr, int(io.mr.lkey)

    def release(self, io: Io) -> None:
        if io.mr is not None:
            io.mr.close()
            io.mr = None

    def close(self) -> None:
        if self.region is None:
            self.mapping.close()         # a registered region closes its mapping with the player


# ---- one serving connection ---------------------------------------------------------------------

class Serving:
    """The server's end of one SMB Direct connection on a connected Player (one QP)."""

    def __init__(self, player: Player, spec: ServeSpec, fd: int, file_size: int):
        self.player, self.spec, self.fd, self.file_size = player, spec, fd, file_size
        self.channel = Channel(player, max_msg_bytes=spec.msg_bytes(), recv_slots=spec.recv_slots(),
                               send_slots=SEND_SLOTS, timeout_s=spec.timeout_s)
        self.credits = smbd.Credits(posted=spec.recv_slots(), receive_max=spec.limits.receive_credit_max)
        self.params: smbd.Negotiated | None = None
        self.reassembly = smbd.Reassembly(spec.limits.max_fragmented_size)
        self.counters = Counters()
        self.turns = 0                             # loop turns of run(), busy or not
        self.write = spec.op == "write"
        self.source: FileSource | None = None
        self.engine: CpuCopy | AsyncWorkers | None = None
        self.views: list[memoryview] = []
        self.regions = []
        if spec.copy == "zero-copy":
            self.source = FileSource(player, fd, file_size, spec.register)
        else:
            for _ in range(spec.buffers):
                region = player.alloc(spec.io_size)
                self.regions.append(region)
                self.views.append(memoryview(region.view()).cast("B"))
            self.engine = AsyncWorkers(fd, spec.buffers, spec.async_workers) if spec.copy == "async-workers" \
                else CpuCopy(fd)
        self.free = list(range(spec.buffers - 1, -1, -1))
        self.waiting: deque[Io] = deque()          # accepted, waiting for a buffer
        self.busy: dict[int, Io] = {}              # tag -> I/O with RDMA or file work outstanding
        self.replies: deque[bytes] = deque()        # SMB2 responses waiting for a send credit
        self.next_tag = 1
        self.answer_keepalive = False
        self.reads_out = 0                         # WRITE requests whose RDMA READ is outstanding

    # -- negotiation --------------------------------------------------------------------------
    def negotiate(self) -> smbd.Negotiated:
        """Wait for the negotiate request (the first message, [MS-SMBD] 3.1.5.6) and answer it."""
        ch = self.channel
        req = smbd.NegotiateRequest.unpack(negotiate_message(ch, self.credits))
        try:
            resp, self.params = smbd.accept_request(req, self.spec.limits, self.credits)
        except smbd.Terminate as exc:
            failure = getattr(exc, "response", None)
            if failure is not None:
                self._send_now(failure.pack())
                ch.drain()
            raise
        self._send_now(resp.pack())
        return self.params

    def _send_now(self, data: bytes) -> None:
        """A message sent without a credit: only the negotiate response ([MS-SMBD] 3.1.5.6)."""
        self.channel.post_message(data)

    # -- the loop -----------------------------------------------------------------------------
    def run(self, should_stop: Callable[[], bool], run_limit_s: float, wake_fds: tuple[int, ...] = ()) -> str:
        """Serve until `should_stop()` says so ("stopped"), or the run limit ("run limit"); an idle
        serving thread sleeps until a completion, its io_uring or one of `wake_fds` (its control)
        wakes it. Terminate when the client breaks the protocol; CompletionError when the
        connection fails; PollTimeout when work is outstanding and nothing completes in time."""
        from rig.flows.channel import Waiter
        ch, events = self.channel, []
        ring = (self.engine.ring.fd,) if isinstance(self.engine, AsyncWorkers) else ()
        waiter = self.waiter = Waiter(self.player, ring + tuple(wake_fds))
        deadline = time.monotonic() + run_limit_s
        turn = 0
        last_progress = time.monotonic()
        while True:
            self.turns += 1
            ch.take(events)
            done = self.engine.completed() if self.engine is not None else []
            if events or done:
                for e in events:
                    self._on_event(e)
                events.clear()
                for tag, result in done:
                    self._on_file_done(tag, result)
                self._dispatch()
                self._flush()
                waiter.busy()
                last_progress = time.monotonic()
            else:
                sleeps = waiter.sleeps
                now = time.monotonic()
                due = min(deadline, last_progress + self.spec.timeout_s) if self.busy else deadline
                waiter.idle(lambda: bool(ch.take(events)), due - now)
                if waiter.sleeps != sleeps or not waiter.events:
                    turn = CONTROL_EVERY            # after a sleep the control is looked at at once
                    if self.busy and time.monotonic() - last_progress > self.spec.timeout_s:
                        from rig.rdma.completions import PollTimeout
                        rdma = sum(1 for io in self.busy.values() if io.pending)
                        raise PollTimeout(f"no completion for {self.spec.timeout_s:g} s with {len(self.busy)} "
                                          f"I/Os outstanding ({rdma} waiting for RDMA, {len(self.busy) - rdma} "
                                          "for the file)")
            turn += 1
            if turn >= CONTROL_EVERY:
                turn = 0
                if should_stop():
                    return "stopped"
                if time.monotonic() > deadline:
                    return "run limit"

    def _on_event(self, e: Event) -> None:
        if e.kind == "recv":
            self._on_message(e.slot, e.byte_len)
        elif e.kind in ("write", "read"):
            io = self.busy.get(e.slot)
            if io is None:
                return
            io.pending -= 1
            if io.pending == 0:
                if e.kind == "write":          # a READ's data is at the client
                    self._finish(e.slot, io)
                else:                          # a WRITE's data is here: into the file
                    self.reads_out -= 1
                    self._store(e.slot, io)

    def _on_message(self, slot: int, nbytes: int) -> None:
        msg, whole = take_message(self.channel, self.credits, self.reassembly,
                                  self.params.max_fragmented_receive_size, slot, nbytes)
        if msg.response_requested:
            self.answer_keepalive = True
        if whole is None:
            return
        try:
            req = smbd.parse_request(whole, self.params.max_read_write_size)
            self._accept(req)
        except smbd.Smb2Error as exc:
            self._reply_error(exc.status, whole)

    def _accept(self, req: smbd.IoRequest) -> None:
        if req.is_read:
            if req.offset >= self.file_size:
                raise smbd.Smb2Error(smbd.STATUS_END_OF_FILE, f"offset {req.offset} is at or past the end of "
                                     f"the {self.file_size}-byte file", req.header.message_id)
            count = min(req.length, self.file_size - req.offset)
            if count < req.minimum:
                raise smbd.Smb2Error(smbd.STATUS_END_OF_FILE, f"{count} bytes left, {req.minimum} asked at least",
                                     req.header.message_id)
            if count < req.length:
                self.counters.short_reads += 1
        else:
            if not self.write:
                raise smbd.Smb2Error(smbd.STATUS_ACCESS_DENIED, "this server serves the file read-only "
                                     "(start it with --allow-write)", req.header.message_id)
            count = req.length
        if req.length > self.spec.io_size and self.source is None:
            raise smbd.Smb2Error(smbd.STATUS_INVALID_PARAMETER, f"{req.length} bytes asked, this connection's "
                                 f"buffers hold {self.spec.io_size}", req.header.message_id)
        self.waiting.append(Io(req, count))

    def _dispatch(self) -> None:
        """Start every waiting I/O there is a buffer for."""
        while self.waiting and (self.free or self.source is not None):
            if not self.waiting[0].req.is_read and self.reads_out >= READS_IN_FLIGHT:
                return
            io = self.waiting.popleft()
            tag, self.next_tag = self.next_tag, self.next_tag + 1
            self.busy[tag] = io
            if self.source is not None:                       # zero-copy READ: the file is the source
                addr, lkey = self.source.source(io)
                self.counters.registrations += io.mr is not None
                self._rdma(tag, io, "write", addr, lkey)
                continue
            io.buffer = self.free.pop()
            region = self.regions[io.buffer]
            if io.req.is_read:
                if isinstance(self.engine, AsyncWorkers):
                    self.engine.submit(io, region.addr, False, tag)
                else:
                    self._on_file_done(tag, self.engine.read(io, self.views[io.buffer]))
            else:
                self.reads_out += 1
                self._rdma(tag, io, "read", region.addr, region.lkey)

    def _rdma(self, tag: int, io: Io, op: str, addr: int, lkey: int) -> None:
        """RDMA WRITE the I/O's bytes to (READ: from) the client's descriptors, in order."""
        ch, left, at = self.channel, io.count, 0
        for desc in io.req.descriptors:
            if left <= 0:
                break
            n = min(left, desc.length)
            ch.post(ch.bulk_wr(op, addr + at, lkey, desc.part(0, n), tag))
            io.pending += 1
            left, at = left - n, at + n
        if op == "write":                                     # the response follows its data
            self._queue_reply(io.req.header.response(), io.count)

    def _on_file_done(self, tag: int, result: int) -> None:
        io = self.busy[tag]
        if result < 0:
            raise OSError(-result, f"file {'write' if not io.req.is_read else 'read'} at {io.req.offset}: "
                          f"{os.strerror(-result)}")
        if io.req.is_read:
            io.count = min(io.count, result)                    # the file shrank: still a short read
            region = self.regions[io.buffer]
            self._rdma(tag, io, "write", region.addr, region.lkey)
        else:
            self._queue_reply(io.req.header.response(), result)
            self._finish(tag, io)

    def _store(self, tag: int, io: Io) -> None:
        if isinstance(self.engine, AsyncWorkers):
            self.engine.submit(io, self.regions[io.buffer].addr, True, tag)
        else:
            self._on_file_done(tag, self.engine.write(io, self.views[io.buffer]))

    def _finish(self, tag: int, io: Io) -> None:
        del self.busy[tag]
        if io.buffer >= 0:
            self.free.append(io.buffer)
        elif self.source is not None:
            self.source.release(io)
        self.counters.ios += 1
        self.counters.bytes += io.count

    # -- replies ------------------------------------------------------------------------------
    def _queue_reply(self, header: smbd.Smb2Header, count: int) -> None:
        self.replies.append(smbd.IoResponse(header, count).pack())

    def _reply_error(self, status: int, request: bytes) -> None:
        header = smbd.parse_header(request)          # a request without a header cannot be answered: Terminate
        self.counters.errors += 1
        self.replies.append(smbd.IoResponse(header.response(status)).pack())

    def _flush(self) -> None:
        """Send every reply a credit allows, each granting the receives reposted since; a
        keepalive or a peer short of credits gets a message even without a reply."""
        credits, target = self.credits, self.spec.limits.send_credit_target
        while self.replies and credits.send > 0:
            self._message(smbd.DataTransfer(target, credits.to_grant(), data=self.replies.popleft()))
        if (self.answer_keepalive or credits.low()) and not self.replies and credits.send > 0:
            grant = credits.to_grant()
            if grant or self.answer_keepalive:
                self._message(smbd.DataTransfer(target, grant))
                self.counters.grants_only += 1
            self.answer_keepalive = False

    def _message(self, msg: smbd.DataTransfer) -> None:
        self.channel.post_message(smbd.to_send(msg, self.credits, self.params.max_send_size))

    def close(self) -> None:
        if self.engine is not None:
            self.engine.close()
        if self.source is not None:
            self.source.close()
