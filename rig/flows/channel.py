"""A channel: the one RC QP of a Player, carrying small messages (SEND/RECV with credits) and
bulk data (RDMA WRITE / READ to a peer's advertised buffer), completions dispatched by kind.

A channel owns its Player's CQs, so a Player carries one channel (num_qps=1); N connections are
N Players, which share a protection domain with `Player(parent=...)` where one registration must
serve all of them. Or N connections are the N QPs of one Player (what a launcher connects when a
workload asks for num_qps=N): `channels(player, ...)` gives one channel per QP over the Player's
shared CQs, each completion routed to its QP's channel (`SharedCq`). Open the channel once the QP
is connected: it posts every receive at once.

wr_id = kind << 56 | slot (messages) or cookie (bulk), so one poll of the send CQ tells message
sends from bulk transfers without a lookup table.
"""

from __future__ import annotations

import select
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable

from rig.flows.descriptor import BufferDescriptor
from rig.rdma import compat
from rig.rdma.completions import PollTimeout, check_wc
from rig.rdma.player import Player, Region

KIND_SHIFT = 56
COOKIE_MASK = (1 << KIND_SHIFT) - 1
SEND, RECV, WRITE, READ = 1, 2, 3, 4
KIND_NAMES = {SEND: "send", RECV: "recv", WRITE: "write", READ: "read"}
NO_SLOT = COOKIE_MASK           # a send whose buffer the protocol manages itself
SPINS_PER_CLOCK_CHECK = 1024


@dataclass(frozen=True)
class Event:
    """One completion: `slot` is the message slot (send/recv) or the cookie (write/read)."""

    kind: str
    slot: int
    byte_len: int = 0
    imm: int | None = None


class CreditError(RuntimeError):
    """A send without a credit or without a free send slot: the protocol's error, not the device's."""


class SharedCq:
    """One CQ that several QPs of a Player complete on, polled on behalf of each: a completion of
    another QP waits in that QP's queue until its channel asks for it."""

    def __init__(self, cq: Any, batch: int = 16):
        self._poll, self.batch = cq.poll, batch
        self.waiting: dict[int, deque] = {}

    def poller(self, qp_num: int) -> Callable[[int], tuple[int, list]]:
        """A poll function for QP `qp_num`: (count, completions), as CQ.poll returns them."""
        mine = self.waiting.setdefault(qp_num, deque())
        waiting, poll, batch = self.waiting, self._poll, self.batch

        def poll_for(n: int) -> tuple[int, list]:
            if not mine:
                _, wcs = poll(batch)
                for wc in wcs:
                    queue = waiting.get(wc.qp_num)
                    if queue is None:           # a QP no channel asked for yet: kept for it
                        queue = waiting.setdefault(wc.qp_num, deque())
                    queue.append(wc)
                if not mine:
                    return 0, []
            out = [mine.popleft() for _ in range(min(n, len(mine)))]
            return len(out), out
        return poll_for


class Channel:
    def __init__(self, player: Player, *, max_msg_bytes: int, recv_slots: int, send_slots: int,
                 send_credits: int = 0, timeout_s: float = 10.0, qp_index: int | None = None,
                 cqs: tuple[SharedCq, SharedCq] | None = None):
        if qp_index is None and len(player.qps) != 1:
            raise ValueError(f"a channel owns its player's CQs: give it a player with one QP, not {len(player.qps)}")
        self.V = V = compat.load()
        self.player, self.qp = player, player.qps[0 if qp_index is None else qp_index]
        self.max_msg_bytes, self.timeout_s = max_msg_bytes, timeout_s
        self.recv_slots, self.send_slots = recv_slots, send_slots
        ring = (recv_slots + send_slots) * max_msg_bytes
        self.ring: Region | None = player.alloc(ring) if ring else None
        self.send_credits = send_credits
        self.free_send = list(range(send_slots - 1, -1, -1))
        self.in_flight = 0            # signaled send-queue WRs not reaped yet
        self.depth = player.cfg.tx_depth
        self._reposted = 0
        self._post_send, self._post_recv = self.qp.post_send, self.qp.post_recv
        if cqs is None:
            self._poll_send, self._poll_recv = player.send_cq.poll, player.recv_cq.poll
        else:
            self._poll_send, self._poll_recv = cqs[0].poller(self.qp.qp_num), cqs[1].poller(self.qp.qp_num)
        self.recv_wrs = [V.RecvWR(wr_id=RECV << KIND_SHIFT | s, num_sge=1,
                                  sg=[V.SGE(self.recv_addr(s), max_msg_bytes, self.ring.lkey)])
                         for s in range(recv_slots)]
        for wr in self.recv_wrs:
            self._post_recv(wr)

    # ---- message buffers ------------------------------------------------------------------------
    def recv_addr(self, slot: int) -> int:
        return self.ring.addr + slot * self.max_msg_bytes

    def send_addr(self, slot: int) -> int:
        return self.ring.addr + (self.recv_slots + slot) * self.max_msg_bytes

    def received(self, slot: int, length: int) -> bytes:
        return self.ring.read(slot * self.max_msg_bytes, length)

    def fill(self, slot: int, data: bytes) -> None:
        if len(data) > self.max_msg_bytes:
            raise ValueError(f"message of {len(data)} bytes exceeds the channel's {self.max_msg_bytes}")
        self.ring.view((self.recv_slots + slot) * self.max_msg_bytes, len(data))[:] = data

    # ---- sending messages -----------------------------------------------------------------------
    def send_wr(self, slot: int, length: int, inline: bool = False, imm: int | None = None,
                track_slot: bool = True) -> Any:
        """A signaled SEND of `length` bytes of send slot `slot` (build once, post many times);
        without `track_slot` its completion frees no slot (see `send`)."""
        V = self.V
        flags = V.e.IBV_SEND_SIGNALED | (V.e.IBV_SEND_INLINE if inline else 0)
        wr = V.SendWR(wr_id=SEND << KIND_SHIFT | (slot if track_slot else NO_SLOT), num_sge=1, send_flags=flags,
                      opcode=V.e.IBV_WR_SEND if imm is None else V.e.IBV_WR_SEND_WITH_IMM,
                      sg=[V.SGE(self.send_addr(slot), length, self.ring.lkey)])
        if imm is not None:
            wr.imm_data = imm
        return wr

    def take_send_slot(self) -> int:
        """A free send slot, reaping send completions (within the time limit) until one is."""
        if not self.free_send:
            self.reap(block=True)
        return self.free_send.pop()

    def send(self, wr: Any) -> None:
        """Post a SEND built by send_wr: spends one credit. Its slot (taken with take_send_slot)
        is free again when the send completes, unless the WR was built without track_slot (the
        protocol knows the buffer is reusable: the peer answered it, as in ping-pong). Hot path:
        nothing beyond the post."""
        if self.send_credits <= 0:
            raise CreditError("no send credit: the peer has granted no receive for this message")
        if self.in_flight >= self.depth:
            self.reap(block=True)
        self.send_credits -= 1
        self._post_send(wr)
        self.in_flight += 1

    def post_message(self, data: bytes) -> None:
        """Send `data` from a free send slot (free again once the send completes), with no credit
        check: for a protocol that counts its credits itself (rig.flows.smbd)."""
        slot = self.take_send_slot()
        self.fill(slot, data)
        self.post(self.send_wr(slot, len(data)))

    def grant_send(self, credits: int) -> None:
        """The peer granted `credits` more receives (its message said so)."""
        self.send_credits += credits

    def repost(self, slot: int) -> None:
        """Hand receive slot `slot` back to the device: one more receive credit for the peer."""
        self._post_recv(self.recv_wrs[slot])
        self._reposted += 1

    def receive_credits(self) -> int:
        """Receives reposted since the last call: what to grant the peer in the next message."""
        n, self._reposted = self._reposted, 0
        return n

    # ---- bulk data ----------------------------------------------------------------------------
    def bulk_wr(self, op: str, local_addr: int, lkey: int, desc: BufferDescriptor, cookie: int = 0,
                signaled: bool = True, inline: bool = False) -> Any:
        """An RDMA WRITE of desc.length bytes from local_addr to the peer's `desc`, or an RDMA
        READ of them into local_addr (build once, post many times)."""
        V = self.V
        kind = {"write": WRITE, "read": READ}[op]
        flags = (V.e.IBV_SEND_SIGNALED if signaled else 0) | (V.e.IBV_SEND_INLINE if inline else 0)
        wr = V.SendWR(wr_id=kind << KIND_SHIFT | (cookie & COOKIE_MASK), num_sge=1, send_flags=flags,
                      opcode=V.e.IBV_WR_RDMA_WRITE if kind == WRITE else V.e.IBV_WR_RDMA_READ,
                      sg=[V.SGE(local_addr, desc.length, lkey)])
        wr.set_wr_rdma(desc.token, desc.offset)
        return wr

    def write(self, local: Region, offset: int, desc: BufferDescriptor, cookie: int = 0) -> None:
        self.post(self.bulk_wr("write", local.addr + offset, local.lkey, desc, cookie))

    def read(self, local: Region, offset: int, desc: BufferDescriptor, cookie: int = 0) -> None:
        self.post(self.bulk_wr("read", local.addr + offset, local.lkey, desc, cookie))

    # ---- posting and completions ---------------------------------------------------------------
    def post(self, wr: Any) -> None:
        """Post a signaled send-queue WR, first reaping when the send queue is full."""
        if self.in_flight >= self.depth:
            self.reap(block=True)
        self._post_send(wr)
        self.in_flight += 1

    def reap(self, block: bool = False, out: list[Event] | None = None) -> int:
        """Send-queue completions (a send given a slot frees it); with `block`, wait for at least
        one within the time limit. Every completion goes to `out` as an Event when given."""
        t0 = 0
        while True:
            n, wcs = self._poll_send(16)
            if n:
                for wc in wcs:
                    if wc.status:
                        check_wc(self.V, wc, self.describe)
                    wr_id = wc.wr_id
                    kind, value = wr_id >> KIND_SHIFT, wr_id & COOKIE_MASK
                    if kind == SEND and value != NO_SLOT:
                        self.free_send.append(value)
                    if out is not None:
                        out.append(Event(KIND_NAMES.get(kind, "send"), value))
                self.in_flight -= n
                return n
            if not block:
                return 0
            t0 = t0 or time.monotonic_ns()
            if time.monotonic_ns() - t0 > self.timeout_s * 1e9:
                raise PollTimeout(f"no send completion for {self.timeout_s:g} s ({self.in_flight} in flight)")

    def poll(self, timeout_s: float | None = None, max_events: int = 16) -> list[Event]:
        """Every completion there is, at least one: received messages (their slot is not reposted
        until `repost`), sends, bulk transfers. PollTimeout when nothing comes within the limit."""
        limit = self.timeout_s if timeout_s is None else timeout_s
        deadline = time.monotonic() + limit
        events: list[Event] = []
        while True:
            self.take(events, max_events)
            if events:
                return events
            if time.monotonic() > deadline:
                raise PollTimeout(f"no completion on the channel for {limit:g} s")

    def take(self, events: list[Event], max_events: int = 16) -> list[Event]:
        """Every completion there is right now (possibly none), appended to `events`: a loop that
        serves several channels, or other work between polls, asks each in turn."""
        self.reap(out=events)
        n, wcs = self._poll_recv(max_events)
        for wc in wcs:
            if wc.status:
                check_wc(self.V, wc, self.describe)
            imm = int(wc.imm_data) if wc.wc_flags & self.V.e.IBV_WC_WITH_IMM else None
            events.append(Event("recv", int(wc.wr_id) & COOKIE_MASK, int(wc.byte_len), imm))
        return events

    def wait_message(self, on_slow: Callable[[], None] | None = None, repost: bool = False) -> tuple[int, int]:
        """Spin until a message arrives: (slot, bytes); with `repost` its receive is posted again
        at once (the message was consumed in place). Every SPINS_PER_CLOCK_CHECK empty polls
        `on_slow` runs (a loopback driver reaps the other end there) and the time limit is checked."""
        poll = self._poll_recv
        spins, t0 = 0, 0
        while True:
            n, wcs = poll(1)
            if n:
                break
            spins += 1
            if not spins & (SPINS_PER_CLOCK_CHECK - 1):
                if on_slow is not None:
                    on_slow()
                t = time.monotonic_ns()
                t0 = t0 or t
                if t - t0 > self.timeout_s * 1e9:
                    raise PollTimeout(f"no message for {self.timeout_s:g} s")
        wc = wcs[0]
        if wc.status:
            check_wc(self.V, wc, self.describe)
        slot = wc.wr_id & COOKIE_MASK
        if repost:
            self._post_recv(self.recv_wrs[slot])
            self._reposted += 1
        return slot, wc.byte_len

    def describe(self, wc: Any) -> dict[str, Any]:
        kind, value = int(wc.wr_id) >> KIND_SHIFT, int(wc.wr_id) & COOKIE_MASK
        name = KIND_NAMES.get(kind, f"kind {kind}")
        d: dict[str, Any] = {"op": name, "wr_id": int(wc.wr_id), "qp_num": wc.qp_num}
        d["slot" if kind in (SEND, RECV) else "cookie"] = value
        return d

    def drain(self) -> None:
        """Reap every outstanding send-queue completion (the QP closes with an empty queue)."""
        while self.in_flight > 0:
            self.reap(block=True)


def channels(player: Player, **kw: Any) -> list[Channel]:
    """One channel per QP of `player` (N connections in one Player), over its shared CQs."""
    cqs = (SharedCq(player.send_cq), SharedCq(player.recv_cq))
    return [Channel(player, qp_index=i, cqs=cqs, **kw) for i in range(len(player.qps))]


# The longest a Waiter sleeps when its loop names no deadline of its own. Loops pass the time to
# their next deadline (run limit, silence limit, progress tick) as `limit_s`, so nothing waits on
# this in practice; it bounds a loop that forgot to. A short cap is not harmless: with 0.2 s, at 8
# MiB the serving threads woke 2.5-4.2 times per I/O instead of 1.8-1.9, and zero-copy READs ran
# 0.026-0.028 GB/s instead of 0.039-0.046 (guest, 2026-12-01, 2 rounds each; docs/smbd.md).
MAX_SLEEP_S = 5.0


class Waiter:
    """How a loop with nothing to poll waits: after `spins` empty turns it sleeps until a
    completion (an EventPlayer's events) or one of `fds` (an io_uring, a control socket) wakes it,
    at most until the loop's next deadline (`limit_s` of idle) and `max_s`; a plain Player cannot be
    woken, so the loop naps instead, up to `nap_s`. A serving thread that sleeps costs no CPU while
    the client thinks (as a kernel server, woken by interrupts, never by a timer of its own); one
    that spins would charge its idle time to the server's CPU per GB."""

    def __init__(self, player: Player, fds: tuple[int, ...] = (), spins: int = 16, max_s: float = MAX_SLEEP_S,
                 nap_s: float = 0.001):
        self.player, self.spins, self.max_s, self.nap_s = player, spins, max_s, nap_s
        self.events = player.event_fds() if hasattr(player, "event_fds") else []
        self.fds = self.events + list(fds)
        self.empty, self.sleeps, self.idle_turns = 0, 0, 0

    def busy(self) -> None:
        self.empty = 0

    def idle(self, recheck: Callable[[], bool], limit_s: float | None = None) -> None:
        """One empty turn; past `spins` of them, sleep. `recheck()` polls once more after arming
        (True: something came, do not sleep)."""
        self.empty += 1
        self.idle_turns += 1
        if self.empty < self.spins:
            return
        self.empty = 0
        wait = self.max_s if limit_s is None else max(0.0, min(self.max_s, limit_s))
        if not self.events:
            time.sleep(min(self.nap_s, wait))
            return
        self.player.arm()
        if recheck():
            return
        self.sleeps += 1
        ready, _, _ = select.select(self.fds, [], [], wait)
        for fd in ready:
            if fd in self.events:
                self.player.consume(fd)
