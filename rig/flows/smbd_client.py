"""The client role of SMB Direct: N connections (the QPs of one Player, rig.flows.channel.channels)
driven by one thread, each with up to `in_flight` SMB2 READ or WRITE requests outstanding, bounded
by its send credits ([MS-SMBD]: one message per credit) and by its registered buffers.

READ: the client posts a request naming one of its registered buffers (an
SMB2_BUFFER_DESCRIPTOR_V1: address, rkey, length); the server RDMA-WRITEs the file range into it
and answers; the client checks the bytes the response counts against the CRC-32 of that file block
(the server's table, made when the session opened the file), so no byte is counted unchecked, and a
short block (the file's tail) is a short read, reported as such. WRITE: the buffers hold random
blocks; the client remembers which buffer last went to which file block and compares, after the
run, with the CRC-32 the server computes of the file.

Registration `once`: every buffer is registered at set-up; `per-io`: each request registers its
buffer (a fresh rkey) and the response deregisters it, so the client pays the pinning per I/O.

The loop keeps raw stamps (post and response per I/O, perf_counter_ns) and counters; the
statistics are computed afterwards (rig.launch.smbd).
"""

from __future__ import annotations

import os
import time
import zlib
from dataclasses import dataclass, field
from typing import Any, Callable

from rig.flows import smbd
from rig.flows.channel import Channel, channels
from rig.flows.descriptor import BufferDescriptor
from rig.flows.smbd_serving import take_message
from rig.rdma.completions import PollTimeout
from rig.rdma.player import Player

RECEIVE_RESERVE = 4            # receives beyond the requests in flight (keepalives, grants)
SEND_SLOTS_EXTRA = 4
CLOCK_EVERY = 32               # loop turns between two clock readings


class IntegrityError(RuntimeError):
    """Bytes the server delivered differ from the file's (or a block came back with the wrong length)."""


@dataclass(frozen=True)
class ClientPlan:
    op: str                        # "read" | "write"
    io_size: int
    connections: int
    credits: int                   # CreditsRequested of the negotiate request
    in_flight: int                 # requests outstanding per connection, at most (<= credits)
    register: str                  # "once" | "per-io"
    duration_s: float = 0.0        # run this long (then drain) ...
    ios: int = 0                   # ... or this many I/Os in all
    timeout_s: float = 10.0
    limits: smbd.Limits = field(default_factory=smbd.Limits)

    def recv_slots(self) -> int:
        return self.in_flight + RECEIVE_RESERVE

    def send_slots(self) -> int:
        return self.in_flight + SEND_SLOTS_EXTRA

    def msg_bytes(self) -> int:
        return max(self.limits.max_receive_size, self.limits.max_send_size)


@dataclass
class FileView:
    """What the client knows of the served file (from the session's ready)."""

    file_bytes: int
    blocks: int
    block_crc32: list[int] = field(default_factory=list)     # READ: CRC-32 of each block

    def block_bytes(self, block: int, io_size: int) -> int:
        return max(0, min(io_size, self.file_bytes - block * io_size))


@dataclass
class Outstanding:
    block: int
    buffer: int
    t_post: int
    mr: Any = None


@dataclass
class ClientRaw:
    """Raw stamps and counters of one run (nanoseconds, perf_counter_ns)."""

    op: str
    io_size: int
    connections: int
    post_ns: list[int] = field(default_factory=list)
    done_ns: list[int] = field(default_factory=list)
    nbytes: list[int] = field(default_factory=list)      # payload bytes of each completed I/O
    start_ns: int = 0
    end_ns: int = 0
    short_reads: int = 0
    errors: list[str] = field(default_factory=list)       # SMB2 ERROR responses (status name, block)
    credits_integral: list[float] = field(default_factory=list)   # per connection: outstanding x ns
    credits_max: list[int] = field(default_factory=list)
    written: dict[int, int] = field(default_factory=dict)   # WRITE: block -> CRC-32 of what went there last
    negotiated: list[smbd.Negotiated] = field(default_factory=list)
    cpu: dict[str, float] = field(default_factory=dict)
    cpu_note: dict[str, Any] = field(default_factory=dict)
    partial: bool = False
    stopped_by: str = ""
    registrations: int = 0
    sleeps: int = 0                  # times the loop slept until a completion woke it
    turns: int = 0                   # loop turns, busy or not


class Connection:
    """One SMB Direct connection of the client."""

    def __init__(self, index: int, channel: Channel, player: Player, plan: ClientPlan, view: FileView):
        self.index, self.channel, self.player, self.plan, self.view = index, channel, player, plan, view
        self.credits = smbd.Credits(posted=plan.recv_slots(), receive_max=plan.recv_slots())
        self.reassembly = smbd.Reassembly(plan.limits.max_fragmented_size)
        self.params: smbd.Negotiated | None = None
        from rig.copy.buffers import aligned_buffer
        V = player.V
        self.access = V.e.IBV_ACCESS_LOCAL_WRITE | (V.e.IBV_ACCESS_REMOTE_WRITE if plan.op == "read"
                                                    else V.e.IBV_ACCESS_REMOTE_READ)
        self.buffers, self.regions, self.addrs = [], [], []
        from rig.copy.buffers import address_of
        for _ in range(plan.in_flight):
            buf = aligned_buffer(plan.io_size)
            if plan.op == "write":
                buf[:] = os.urandom(plan.io_size)
            self.buffers.append(buf)
            self.addrs.append(address_of(buf))
            self.regions.append(player.register_buffer(buf, self.access) if plan.register == "once" else None)
        self.crc = [zlib.crc32(b) for b in self.buffers] if plan.op == "write" else []
        self.free = list(range(plan.in_flight - 1, -1, -1))
        self.outstanding: dict[int, Outstanding] = {}
        # READ: every connection cycles over all blocks from its own starting point; WRITE: each
        # writes its own stripe, longer than its I/Os in flight, so no two writes of one block
        # are ever outstanding at once
        k, n = view.blocks, plan.connections
        if plan.op == "read":
            self.stripe = [(index * k // n + j) % k for j in range(k)]
        else:
            self.stripe = list(range(index * k // n, (index + 1) * k // n))
        self.next_block = 0
        self.next_mid = 1
        self.integral = 0.0
        self.t_last = 0
        self.max_out = 0

    # -- negotiation ------------------------------------------------------------------------------
    def send_negotiate(self) -> smbd.NegotiateRequest:
        req = smbd.request_for(self.plan.limits, self.plan.credits)
        self._post(req.pack())
        return req

    def take_negotiate_response(self, req: smbd.NegotiateRequest) -> smbd.Negotiated:
        from rig.flows.smbd_serving import negotiate_message
        data = negotiate_message(self.channel, self.credits)
        self.params = smbd.accept_response(smbd.NegotiateResponse.unpack(data), req, self.plan.limits, self.credits)
        if self.plan.io_size > self.params.max_read_write_size:
            raise smbd.Terminate(f"I/O size {self.plan.io_size} exceeds the negotiated max read/write size "
                                 f"{self.params.max_read_write_size}")
        return self.params

    # -- requests -------------------------------------------------------------------------------
    def can_issue(self) -> bool:
        return bool(self.free) and self.credits.send > 0

    def issue(self, now_ns: int, raw: ClientRaw) -> None:
        plan = self.plan
        i = self.free.pop()
        block = self.stripe[self.next_block]
        self.next_block = (self.next_block + 1) % len(self.stripe)
        mr = None
        if self.regions[i] is not None:
            rkey = self.regions[i].rkey
        else:
            mr = self.player.V.MR(self.player.pd, plan.io_size, self.access, address=self.addrs[i])
            rkey = int(mr.rkey)
            raw.registrations += 1
        desc = BufferDescriptor(self.addrs[i], rkey, plan.io_size)
        mid = self.next_mid
        req = smbd.read_request(mid, block * plan.io_size, desc) if plan.op == "read" else \
            smbd.write_request(mid, block * plan.io_size, desc)
        self.next_mid += req.header.credit_charge
        self._account(now_ns)
        self.outstanding[mid] = Outstanding(block, i, time.perf_counter_ns(), mr)
        self.max_out = max(self.max_out, len(self.outstanding))
        self._data(req.pack())

    def _data(self, payload: bytes, flags: int = 0) -> None:
        """A data transfer message: one credit, granting the receives reposted since the last."""
        msg = smbd.DataTransfer(self.plan.limits.send_credit_target, self.credits.to_grant(), flags, 0, payload)
        self._post(smbd.to_send(msg, self.credits, self.params.max_send_size))

    def _post(self, data: bytes) -> None:
        self.channel.post_message(data)

    def _account(self, now_ns: int) -> None:
        if self.t_last:
            self.integral += len(self.outstanding) * (now_ns - self.t_last)
        self.t_last = now_ns

    # -- responses ------------------------------------------------------------------------------
    def on_message(self, slot: int, nbytes: int, raw: ClientRaw) -> None:
        msg, whole = take_message(self.channel, self.credits, self.reassembly,
                                  self.params.max_fragmented_receive_size, slot, nbytes)
        if msg.response_requested and self.credits.send > 0:
            self._data(b"")
        if whole is None:
            return
        resp = smbd.parse_response(whole)
        if resp.header.message_id not in self.outstanding:
            raise smbd.Terminate(f"a response to message {resp.header.message_id}, which is not outstanding")
        t = time.perf_counter_ns()
        self._account(t)
        out = self.outstanding.pop(resp.header.message_id)
        if out.mr is not None:
            out.mr.close()
        self.free.append(out.buffer)
        if resp.status != smbd.STATUS_SUCCESS:
            raw.errors.append(f"{smbd.status_name(resp.status)} at block {out.block}")
            return
        self._check(out, resp.count, raw)
        raw.post_ns.append(out.t_post)
        raw.done_ns.append(t)
        raw.nbytes.append(resp.count)

    def _check(self, out: Outstanding, count: int, raw: ClientRaw) -> None:
        plan, block = self.plan, out.block
        if plan.op == "write":
            if count != plan.io_size:
                raise IntegrityError(f"WRITE of block {block}: the server wrote {count} of {plan.io_size} bytes")
            raw.written[block] = self.crc[out.buffer]
            return
        expected = self.view.block_bytes(block, plan.io_size)
        if count != expected:
            raise IntegrityError(f"READ of block {block}: {count} bytes came back, the file holds {expected} there")
        if count < plan.io_size:
            raw.short_reads += 1
        got = zlib.crc32(memoryview(self.buffers[out.buffer])[:count])
        if got != self.view.block_crc32[block]:
            raise IntegrityError(f"READ of block {block} (offset {block * plan.io_size}): CRC-32 {got:#010x} of the "
                                 f"{count} bytes received, the file's is {self.view.block_crc32[block]:#010x}")


class Client:
    """N connections over the QPs of one connected Player."""

    def __init__(self, player: Player, plan: ClientPlan, view: FileView):
        self.plan, self.view = plan, view
        chans = channels(player, max_msg_bytes=plan.msg_bytes(), recv_slots=plan.recv_slots(),
                         send_slots=plan.send_slots(), timeout_s=plan.timeout_s)
        self.conns = [Connection(i, ch, player, plan, view) for i, ch in enumerate(chans)]
        self.player = player

    def negotiate(self) -> list[smbd.Negotiated]:
        reqs = [c.send_negotiate() for c in self.conns]
        return [c.take_negotiate_response(r) for c, r in zip(self.conns, reqs)]

    def run(self, window: Any, on_tick: Callable[[int, float], None] | None = None,
            tick_s: float = 2.0) -> ClientRaw:
        """The timed loop; on any failure (or Ctrl-C) the raw stamps so far are kept in
        `self.raw` (partial) before the exception goes on."""
        from rig.flows.channel import Waiter
        plan = self.plan
        raw = self.raw = ClientRaw(plan.op, plan.io_size, plan.connections)
        raw.negotiated = [c.params for c in self.conns]
        now = time.perf_counter_ns
        conns = self.conns
        waiter = Waiter(self.player)
        pending = [[] for _ in conns]

        def recheck() -> bool:
            return any([c.channel.take(p) for c, p in zip(conns, pending)])
        window.start()
        raw.start_ns = start = now()
        for c in conns:
            c.t_last = start
        deadline = start + int(plan.duration_s * 1e9) if plan.duration_s else 0
        total = plan.ios
        issued = 0
        issuing = True
        last_progress = start
        next_tick = start + int(tick_s * 1e9)
        turn = turns = 0
        try:
            while True:
                turns += 1
                if issuing:
                    for c in conns:
                        while c.can_issue() and (not total or issued < total):
                            c.issue(now(), raw)
                            issued += 1
                    if total and issued >= total:
                        issuing = False
                got = False
                for c, events in zip(conns, pending):
                    c.channel.take(events)
                    if events:
                        got = True
                        for e in events:
                            if e.kind == "recv":
                                c.on_message(e.slot, e.byte_len, raw)
                        events.clear()
                turn += 1
                if got:
                    waiter.busy()
                else:
                    sleeps = waiter.sleeps
                    t = now()
                    due = min(next_tick, last_progress + int(plan.timeout_s * 1e9),
                              deadline if deadline and issuing else next_tick)
                    waiter.idle(recheck, (due - t) * 1e-9)
                    if waiter.sleeps != sleeps:
                        turn = CLOCK_EVERY
                if got or turn >= CLOCK_EVERY:
                    turn = 0
                    t = now()
                    if got:
                        last_progress = t
                    elif t - last_progress > plan.timeout_s * 1e9:
                        raise PollTimeout(f"no response for {plan.timeout_s:g} s "
                                          f"({sum(len(c.outstanding) for c in conns)} requests outstanding)")
                    if deadline and t >= deadline:
                        issuing = False
                    if not issuing and not any(c.outstanding for c in conns):
                        break
                    if t >= next_tick:
                        if on_tick is not None:
                            on_tick(len(raw.done_ns), (t - start) * 1e-9)
                        next_tick = t + int(tick_s * 1e9)
        except BaseException as exc:
            raw.partial = True
            raw.stopped_by = f"{exc.__class__.__name__}: {exc}"
            raise
        finally:
            raw.end_ns = now()
            raw.sleeps, raw.turns = waiter.sleeps, turns
            for c in conns:
                c._account(raw.end_ns)
            raw.credits_integral = [c.integral for c in conns]
            raw.credits_max = [c.max_out for c in conns]
            raw.cpu = window.stop()
            raw.cpu_note = window.note()
        for c in conns:
            c.channel.drain()
        return raw
