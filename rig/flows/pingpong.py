"""Ping-pong latency, as ib_write_lat / ib_send_lat measure it: a flow of two ends answering
each other.

A sends a message to B; as soon as B sees it, B sends one back; one stamp when A posts, one when
A sees the answer; the figure is half of that round trip.

- WRITE: each end advertises a target buffer (a BufferDescriptor) and RDMA-WRITEs its source into
  the other's target; the receiver spins on the last byte of its target, which carries a sequence
  number 1..255 (RDMA writes land in order, so the last byte arriving means the message arrived).
- SEND: each end's channel keeps one receive posted; the receiver waits for the message, reposts
  the receive and answers; a message received grants its receiver one send credit back (the
  answer proves the peer's receive was reposted).
Every WR is signaled; send completions are reaped as they come.

`PingPongEnd` is one end; `PingPong` drives two ends in this process (loopback). Across two
hosts each host would run one end: the initiator `post`s then `wait`s, the responder `wait`s then
`post`s.

The loop runs compiled where rig/rdma/_fastloop.c is built (rr_pp_run: the same steps over the
same QPs, WRs and buffers, the responder in a thread of its own as ib_write_lat's server is a
process of its own; the channels' in-flight counts are handed back after the run, their receive
credit counts are not kept: ping-pong grants no credits), else in Python, both ends in one thread
(the responder's turnaround is the same Python code the initiator runs); `RawRun.loop` says which
(rig.rdma.traffic.run_loop).
"""

from __future__ import annotations

import ctypes
import os
import time
from typing import Any, Callable

import numpy as np

from rig.flows.channel import Channel
from rig.flows.descriptor import BufferDescriptor
from rig.rdma import compat, native
from rig.rdma.completions import PollTimeout
from rig.rdma.player import Player
from rig.rdma.traffic import LoopParams, RawRun, run_loop

PINGPONG_OPS = ("write", "send")


class PingPongEnd:
    """One end: a source buffer it sends from, a target buffer messages land in."""

    def __init__(self, player: Player, p: LoopParams):
        if p.op not in PINGPONG_OPS:
            raise ValueError(f"ping-pong latency is for {PINGPONG_OPS}, not {p.op!r}")
        self.p, msg = p, p.msg_bytes
        self.sends = p.op == "send"
        n = 1 if self.sends else 0
        self.channel = Channel(player, max_msg_bytes=msg, recv_slots=n, send_slots=n, send_credits=n,
                               timeout_s=p.timeout_s)
        if self.sends:
            self.memory = self.channel.ring
            self.source, self.target = self.channel.send_addr(0), self.channel.recv_addr(0)
        else:
            self.memory = player.alloc(2 * msg)
            self.source, self.target = self.memory.addr, self.memory.addr + msg
        ctypes.memmove(self.source, os.urandom(msg), msg)
        # the last byte of the source and of the target carry the sequence number
        self.seq_src = ctypes.c_uint8.from_address(self.source + msg - 1)
        self.seq_dst = ctypes.c_uint8.from_address(self.target + msg - 1)
        self.inline = 0 < msg <= p.inline_bytes
        # SEND reuses its one buffer once the answer came back: no slot to wait for
        self.wr = self.channel.send_wr(0, msg, self.inline, track_slot=False) if self.sends else None

    def advertise(self) -> BufferDescriptor:
        """Where the peer's WRITEs land (WRITE only)."""
        return BufferDescriptor(self.target, self.memory.rkey, self.p.msg_bytes)

    def aim(self, peer_target: BufferDescriptor) -> None:
        """WRITE: our messages go to the peer's advertised target."""
        self.wr = self.channel.bulk_wr("write", self.source, self.memory.lkey, peer_target, inline=self.inline)

    def poster(self) -> Callable[[Any], None]:
        """What posts this end's message (bound once: the loop calls it directly)."""
        return self.channel.send if self.sends else self.channel.post

    def post(self, seq: int) -> None:
        self.seq_src.value = seq
        self.poster()(self.wr)

    def wait(self, seq: int, on_slow: Callable[[], None]) -> None:
        """Until message `seq` arrived (its target byte, or a receive completion); `on_slow` runs
        every so often while waiting (a failed send shows up as its completion error there)."""
        if self.sends:
            self.channel.wait_message(on_slow, repost=True)
            self.channel.send_credits += 1       # grant_send(1), inlined: the answer proves the repost
            return
        byte, spins, t0 = self.seq_dst, 0, 0
        while byte.value != seq:
            spins += 1
            if not spins & 1023:
                on_slow()
                t = time.monotonic_ns()
                t0 = t0 or t              # the clock is read only once the wait is long
                if t - t0 > self.p.timeout_s * 1e9:
                    raise PollTimeout(f"ping-pong: message {seq} not seen for {self.p.timeout_s:g} s")

    def source_bytes(self) -> bytes:
        return ctypes.string_at(self.source, self.p.msg_bytes)

    def target_bytes(self) -> bytes:
        return ctypes.string_at(self.target, self.p.msg_bytes)


class PingPong:
    """Two ends in this thread, A (initiator) and B (responder), over connected players."""

    def __init__(self, a: Player, b: Player, p: LoopParams):
        self.p = p
        self.ends = [PingPongEnd(a, p), PingPongEnd(b, p)]
        if not self.ends[0].sends:
            self.ends[0].aim(self.ends[1].advertise())
            self.ends[1].aim(self.ends[0].advertise())
        self.seq = 0

    def _reap_both(self) -> None:
        self.ends[0].channel.reap()
        self.ends[1].channel.reap()

    def loop(self, n_iter: int, duration_ns: int) -> RawRun:
        """n_iter round trips (fewer when duration_ns passes): raw post and answer stamps."""
        return run_loop(self.p, lambda: self._loop_native(n_iter, duration_ns),
                        lambda: self._loop_python(n_iter, duration_ns))

    def _loop_python(self, n_iter: int, duration_ns: int) -> RawRun:
        p = self.p
        post = np.empty(n_iter, dtype=np.int64)
        comp = np.empty(n_iter, dtype=np.int64)
        a, b = self.ends
        reap_a, reap_b, slow = a.channel.reap, b.channel.reap, self._reap_both
        post_a, post_b, wait_a, wait_b = a.poster(), b.poster(), a.wait, b.wait
        src_a, src_b, wr_a, wr_b = a.seq_src, b.seq_src, a.wr, b.wr
        now = time.perf_counter_ns
        on_tick = p.on_tick
        window = p.window().start()
        start = now()
        deadline = start + duration_ns if duration_ns else 0
        next_tick = p.next_tick_ns(start)
        i = 0
        while i < n_iter:
            seq = self.seq = self.seq % 255 + 1         # 1..255: never the zeroed target's 0
            src_a.value = seq
            t0 = now()
            post_a(wr_a)
            wait_b(seq, slow)
            src_b.value = seq
            post_b(wr_b)
            wait_a(seq, slow)
            t1 = now()
            post[i] = t0
            comp[i] = t1
            i += 1
            reap_a()
            reap_b()
            if deadline and t1 >= deadline:
                break
            if t1 >= next_tick:
                on_tick(i, (t1 - start) * 1e-9)
                next_tick = p.next_tick_ns(now())
        return RawRun.one_in_flight(p, post, comp, i, start, now(), window, "round_trip")

    def _loop_native(self, n_iter: int, duration_ns: int) -> RawRun:
        """The same loop in C (rr_pp_run)."""
        L, p, ends = native.lib(), self.p, self.ends
        channels = [e.channel for e in ends]
        qps = [native.qp_pointers(c.qp, c.player.send_cq, c.player.recv_cq)[0] for c in channels]
        wrs = [native.chain_pointer([e.wr]) for e in ends]
        rwrs = native.pointers([native.recv_wr_pointer(c.recv_wrs[0]) for c in channels]) if ends[0].sends else None
        in_flight = (ctypes.c_int64 * 2)(*(c.in_flight for c in channels))
        h = L.rr_pp_new(int(ends[0].sends), native.pointers(qps), native.pointers(wrs), rwrs,
                        native.pointers([ctypes.addressof(e.seq_src) for e in ends]),
                        native.pointers([ctypes.addressof(e.seq_dst) for e in ends]), in_flight,
                        (ctypes.c_int64 * 2)(*(c.depth for c in channels)))
        if not h:
            raise native.NativeUnavailable("rr_pp_new failed")
        window = p.window().start()
        try:
            try:
                st = native.drive(L.rr_pp_run, h, n_post=n_iter, n_comp=n_iter, growable=False,
                                  timeout_s=p.timeout_s, duration_s=duration_ns * 1e-9, on_tick=p.on_tick,
                                  tick_s=p.tick_s, seq=self.seq)
            finally:
                L.rr_pp_in_flight(h, in_flight)
                for c, n in zip(channels, in_flight):
                    c.in_flight = n
        except native.Failure as f:
            self.seq = f.seq
            self._raise(f)
        finally:
            L.rr_pp_free(h)
        self.seq = st.seq
        st.convert()
        return RawRun.one_in_flight(p, st.post, st.comp, st.completed, st.start, st.end, window, "round_trip",
                                    loop="native")

    def _raise(self, f: native.Failure) -> None:
        """What the Python loop raises in the same place: the channel's completion error, or its
        time limit's message."""
        channel = self.ends[f.end].channel
        limit = self.p.timeout_s
        timeouts = {native.WAIT_TARGET: f"ping-pong: message {f.seq} not seen for {limit:g} s",
                    native.RECV_CQ: f"no message for {limit:g} s",
                    native.SEND_CQ: f"no send completion for {limit:g} s ({channel.in_flight} in flight)"}
        native.reraise(f, compat.load(), {native.SEND_CQ: channel.describe, native.RECV_CQ: channel.describe},
                       lambda f: timeouts.get(f.where, f"no completion for {limit:g} s"))

    def drain(self) -> None:
        """Reap every outstanding send completion, so the QPs close with empty queues."""
        for end in self.ends:
            end.channel.drain()

    def integrity(self) -> dict[str, Any]:
        """After a run: each end's target holds what the other end sent last (its source)."""
        a, b = self.ends
        bad = (a.source_bytes() != b.target_bytes()) + (b.source_bytes() != a.target_bytes())
        return {"integrity_ok": bad == 0, "integrity_checked_bytes": 2 * self.p.msg_bytes,
                "integrity_method": "byte compare of both directions' targets after the ping-pong run"}


def run_pingpong(a: Player, b: Player, p: LoopParams) -> tuple[RawRun, dict[str, Any]]:
    """Warm-up, the timed loop, drain: (raw stamps, integrity)."""
    pp = PingPong(a, b, p)
    if p.warmup_iterations > 0:
        pp.loop(p.warmup_iterations, 0)
    raw = pp.loop(max(1, p.iterations), int(p.duration_s * 1e9))
    pp.drain()
    return raw, pp.integrity()
