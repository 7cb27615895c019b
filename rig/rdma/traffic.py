"""Traffic loops: RDMA WRITE / RDMA READ / SEND bandwidth and latency, and integrity transfers.

The hot loops only post prebuilt work requests, poll, and write raw `perf_counter_ns` stamps into
preallocated numpy arrays; every statistic is computed afterwards (rig.rdma.stats).

Vocabulary as in perftest: `tx_depth` WRs in flight per QP, `cq_mod` = one signaled WR per
cq_mod WRs, `post_list` = WRs chained into one ibv_post_send call, iterations per QP.
"""

from __future__ import annotations

import ctypes
import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable

try:
    import numpy as np
except ImportError:    # the integrity self-test runs without numpy (Debian's /usr/bin/python3)
    np = None  # type: ignore[assignment]

from rig.rdma import compat
from rig.rdma.resources import Player

OPS = ("write", "read", "send")
EMPTY_POLLS_PER_CLOCK_CHECK = 256


class CompletionError(RuntimeError):
    """A work completion with an error status: the status name and the WR that failed."""

    def __init__(self, status_name: str, status: int, wr: dict[str, Any], vendor_err: int = 0):
        self.status_name, self.status, self.wr, self.vendor_err = status_name, status, wr, vendor_err
        desc = ", ".join(f"{k}={v}" for k, v in wr.items())
        super().__init__(f"work completion error {status_name} (status {status}, vendor_err "
                         f"{vendor_err:#x}) for WR [{desc}]")


class PollTimeout(RuntimeError):
    """No completion within the time limit (peer gone, link down, or a stuck device)."""


@dataclass
class LoopParams:
    op: str = "write"
    msg_bytes: int = 1 << 20
    iterations: int = 1000          # per QP; rounded up to a multiple of cq_mod
    duration_s: float = 0.0         # > 0: run for this long instead of `iterations`
    warmup_iterations: int = 0
    tx_depth: int = 128
    cq_mod: int = 100
    post_list: int = 1
    inline_bytes: int = 0
    timeout_s: float = 10.0         # no completion for this long -> PollTimeout
    poll_batch: int = 16


@dataclass
class RawRun:
    """Raw stamps of one timed loop (nanoseconds, perf_counter_ns clock)."""

    op: str
    msg_bytes: int
    num_qps: int
    wrs_per_completion: int
    post_ns: Any = field(repr=False)     # one stamp per ibv_post_send call (a post list)
    comp_ns: Any = field(repr=False)     # one stamp per signaled completion
    wrs_completed: int = 0
    start_ns: int = 0
    end_ns: int = 0
    cpu: dict[str, float] = field(default_factory=dict)
    stamps_span: str = "post_to_completion"   # or "round_trip" (ping-pong: latency = half of it)


class _Stamps:
    """A growable int64 stamp log; growing is rare (duration mode only)."""

    def __init__(self, n: int):
        self.chunks: list[Any] = []
        self.arr = np.empty(max(16, n), dtype=np.int64)

    def grow(self) -> Any:
        self.chunks.append(self.arr)
        self.arr = np.empty(len(self.arr) * 2, dtype=np.int64)
        return self.arr

    def result(self, n_last: int) -> Any:
        return np.concatenate(self.chunks + [self.arr[:n_last]])


def effective_cq_mod(p: LoopParams) -> int:
    """Signal every cq_mod WRs: a multiple of post_list, at most tx_depth."""
    pl = max(1, p.post_list)
    mod = max(pl, min(p.cq_mod, p.tx_depth))
    mod -= mod % pl
    if mod > p.tx_depth:
        raise ValueError(f"post list {pl} exceeds tx depth {p.tx_depth}")
    return mod


def opcode(V: compat.Verbs, op: str) -> int:
    return {"write": V.e.IBV_WR_RDMA_WRITE, "read": V.e.IBV_WR_RDMA_READ, "send": V.e.IBV_WR_SEND}[op]


def _chain(V: compat.Verbs, player: Player, q: int, remote: dict[str, Any], op: str, msg: int,
           count: int, signal_last: bool, inline: bool, wr_id_base: int) -> list[Any]:
    """`count` SendWRs linked into one post list; returns them all (they must stay referenced)."""
    flags_plain = V.e.IBV_SEND_INLINE if inline else 0
    wrs: list[Any] = []
    nxt = None
    for i in reversed(range(count)):
        flags = flags_plain | (V.e.IBV_SEND_SIGNALED if signal_last and i == count - 1 else 0)
        sge = V.SGE(player.slot_addr(q, 0), msg, player.mr.lkey)
        kw = {"next_wr": nxt} if nxt is not None else {}
        wr = V.SendWR(wr_id=wr_id_base + i, opcode=opcode(V, op), num_sge=1, sg=[sge], send_flags=flags, **kw)
        if op != "send":
            wr.set_wr_rdma(int(remote["rkey"]), remote_slot_addr(remote, q, 0))
        wrs.insert(0, wr)
        nxt = wr
    return wrs


def remote_slot_addr(remote: dict[str, Any], q: int, slot: int) -> int:
    return int(remote["addr"]) + (q * int(remote["slots"]) + slot) * int(remote["msg_bytes"])


def describe_wr(op: str, player: Player, q: int, remote: dict[str, Any] | None, msg: int, wr_id: int) -> dict[str, Any]:
    d: dict[str, Any] = {"op": op, "wr_id": wr_id, "qp_num": player.qps[q].qp_num, "bytes": msg,
                         "local_addr": hex(player.slot_addr(q, 0)), "lkey": hex(player.mr.lkey)}
    if remote is not None and op != "send":
        d.update(remote_addr=hex(remote_slot_addr(remote, q, 0)), rkey=hex(int(remote["rkey"])))
    return d


def check_wc(V: compat.Verbs, wc: Any, describe: Callable[[Any], dict[str, Any]]) -> None:
    if wc.status != V.e.IBV_WC_SUCCESS:
        raise CompletionError(V.wc_status_name(wc.status), int(wc.status), describe(wc), int(wc.vendor_err))


# ---- CPU accounting -------------------------------------------------------------------------

_CLK_TCK = os.sysconf("SC_CLK_TCK")


def _softirq_ticks() -> int:
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()       # cpu user nice system idle iowait irq softirq ...
        return int(fields[7])
    except (OSError, IndexError, ValueError):
        return 0


def cpu_snapshot() -> tuple[float, float, int, int]:
    t = os.times()
    return t.user, t.system, _softirq_ticks(), time.perf_counter_ns()


def cpu_delta(before: tuple[float, float, int, int], after: tuple[float, float, int, int]) -> dict[str, float]:
    return {"user_s": after[0] - before[0], "system_s": after[1] - before[1],
            "softirq_s": (after[2] - before[2]) / _CLK_TCK, "wall_s": (after[3] - before[3]) / 1e9}


# ---- bandwidth loop --------------------------------------------------------------------------

def run_bw(player: Player, remote: dict[str, Any], p: LoopParams,
           service: Callable[[], None] | None = None) -> RawRun:
    """Stream `op` WRs on every QP of `player` towards `remote` (an endpoint dict).

    `service` is called on every empty poll: in loopback SEND it reposts the target's receives.
    """
    if p.warmup_iterations > 0:
        warm = LoopParams(**{**p.__dict__, "iterations": p.warmup_iterations, "duration_s": 0.0,
                             "warmup_iterations": 0})
        _bw_loop(player, remote, warm, service)
    return _bw_loop(player, remote, p, service)


def _bw_loop(player: Player, remote: dict[str, Any], p: LoopParams,
             service: Callable[[], None] | None) -> RawRun:
    V = compat.load()
    pl = max(1, p.post_list)
    mod = effective_cq_mod(p)
    chains_per_signal = mod // pl
    nq = len(player.qps)
    inline = 0 < p.msg_bytes <= p.inline_bytes and p.op != "read"
    plain = [_chain(V, player, q, remote, p.op, p.msg_bytes, pl, False, inline, q << 32) for q in range(nq)]
    signaled = [_chain(V, player, q, remote, p.op, p.msg_bytes, pl, True, inline, q << 32) for q in range(nq)]
    heads_plain = [c[0] for c in plain]
    heads_sig = [c[0] for c in signaled]
    qps = player.qps
    post_fns = [qp.post_send for qp in qps]
    poll = player.send_cq.poll
    qp_index = {qp.qp_num: q for q, qp in enumerate(qps)}

    per_qp = -(-max(1, p.iterations) // mod) * mod
    duration_ns = int(p.duration_s * 1e9)
    if duration_ns:
        per_qp = 1 << 62
        est = 1 << 16
    else:
        est = per_qp // pl * nq + 1
    target = [per_qp] * nq       # WRs to post per QP; cut short when the duration is over
    posts = _Stamps(est)
    comps = _Stamps(est * pl // mod + 1)
    post_arr, comp_arr = posts.arr, comps.arr
    ip = ic = 0
    posted = [0] * nq            # WRs posted per QP
    chains = [0] * nq
    outstanding = [0] * nq
    completed = 0
    depth, batch, timeout_ns = p.tx_depth, p.poll_batch, int(p.timeout_s * 1e9)
    now = time.perf_counter_ns

    def desc(wc: Any) -> dict[str, Any]:
        q = qp_index.get(wc.qp_num, 0)
        return describe_wr(p.op, player, q, remote, p.msg_bytes, int(wc.wr_id))

    cpu0 = cpu_snapshot()
    start = now()
    deadline = start + duration_ns if duration_ns else 0
    last_progress = start
    empty = 0
    while True:
        for q in range(nq):
            post_send = post_fns[q]
            while posted[q] < target[q] and outstanding[q] + pl <= depth:
                c = chains[q] + 1
                wr = heads_sig[q] if c % chains_per_signal == 0 else heads_plain[q]
                if ip == len(post_arr):
                    post_arr = posts.grow()
                    ip = 0
                post_arr[ip] = now()
                ip += 1
                post_send(wr)
                chains[q] = c
                posted[q] += pl
                outstanding[q] += pl
        n, wcs = poll(batch)
        if service is not None:
            service()
        if n:
            t = now()
            for wc in wcs:
                if wc.status:
                    check_wc(V, wc, desc)
                outstanding[qp_index[wc.qp_num]] -= mod
                if ic == len(comp_arr):
                    comp_arr = comps.grow()
                    ic = 0
                comp_arr[ic] = t
                ic += 1
            completed += n * mod
            last_progress = t
            empty = 0
        else:
            empty += 1
            if empty < EMPTY_POLLS_PER_CLOCK_CHECK:
                continue
            empty = 0
            t = now()
            if t - last_progress > timeout_ns:
                raise PollTimeout(f"no {p.op} completion for {p.timeout_s:g} s "
                                  f"({completed} WRs completed, {sum(outstanding)} in flight)")
        if deadline and t >= deadline:
            deadline = 0
            # stop at the next signaled WR of every QP, so every posted WR is accounted for
            target = [-(-posted[q] // mod) * mod for q in range(nq)]
        if posted == target and not any(outstanding):
            break
    end = now()
    cpu = cpu_delta(cpu0, cpu_snapshot())
    return RawRun(op=p.op, msg_bytes=p.msg_bytes, num_qps=nq, wrs_per_completion=mod,
                  post_ns=posts.result(ip), comp_ns=comps.result(ic), wrs_completed=completed,
                  start_ns=start, end_ns=end, cpu=cpu)


# ---- latency loop ----------------------------------------------------------------------------

def run_latency(player: Player, remote: dict[str, Any], p: LoopParams,
                service: Callable[[], None] | None = None) -> RawRun:
    """One signaled WR in flight on QP 0: stamp the post, busy-poll its completion.

    The figure is post-to-completion time: for READ that is what ib_read_lat reports; for WRITE
    and SEND it includes the responder's ACK (a round trip), while ib_write_lat/ib_send_lat
    report half of a ping-pong round trip.
    """
    V = compat.load()
    inline = 0 < p.msg_bytes <= p.inline_bytes and p.op != "read"
    wr = _chain(V, player, 0, remote, p.op, p.msg_bytes, 1, True, inline, 0)[0]
    if p.warmup_iterations > 0:
        _latency_loop(V, player, remote, p, wr, p.warmup_iterations, 0, service)
    return _latency_loop(V, player, remote, p, wr, max(1, p.iterations), int(p.duration_s * 1e9), service)


def _latency_loop(V: compat.Verbs, player: Player, remote: dict[str, Any], p: LoopParams, wr: Any,
                  n_iter: int, duration_ns: int, service: Callable[[], None] | None) -> RawRun:
    post = np.empty(n_iter, dtype=np.int64)
    comp = np.empty(n_iter, dtype=np.int64)
    post_send, poll = player.qps[0].post_send, player.send_cq.poll
    now = time.perf_counter_ns
    timeout_ns = int(p.timeout_s * 1e9)
    cpu0 = cpu_snapshot()
    start = now()
    deadline = start + duration_ns if duration_ns else 0
    i = 0
    while i < n_iter:
        t0 = now()
        post_send(wr)
        spins = 0
        while True:
            n, wcs = poll(1)
            if n:
                break
            spins += 1
            if not spins & 1023 and now() - t0 > timeout_ns:
                raise PollTimeout(f"no {p.op} completion for {p.timeout_s:g} s")
        t1 = now()
        if wcs[0].status:
            check_wc(V, wcs[0], lambda wc: describe_wr(p.op, player, 0, remote, p.msg_bytes, int(wc.wr_id)))
        post[i] = t0
        comp[i] = t1
        i += 1
        if service is not None:
            service()            # outside the timed span: reposts the target's receive (SEND)
        if deadline and t1 >= deadline:
            break
    end = now()
    cpu = cpu_delta(cpu0, cpu_snapshot())
    return RawRun(op=p.op, msg_bytes=p.msg_bytes, num_qps=1, wrs_per_completion=1,
                  post_ns=post[:i], comp_ns=comp[:i], wrs_completed=i, start_ns=start, end_ns=end, cpu=cpu)


# ---- receives (SEND target) ----------------------------------------------------------------

class Receiver:
    """Keeps `rx_depth` receives posted on every QP of a SEND target; `service()` reposts."""

    def __init__(self, player: Player, msg_bytes: int, depth: int | None = None, slot_cycle: bool = False):
        self.V = compat.load()
        self.player = player
        self.depth = depth or player.cfg.rx_depth
        self.received = 0
        self.error: CompletionError | None = None
        self.qp_index = {qp.qp_num: q for q, qp in enumerate(player.qps)}
        slots = player.cfg.slots if slot_cycle else 1
        # one prebuilt RecvWR per (QP, slot); wr_id encodes both
        self.wrs = [[self.V.RecvWR(wr_id=(q << 32) | s, num_sge=1,
                                   sg=[self.V.SGE(player.slot_addr(q, s), msg_bytes, player.mr.lkey)])
                     for s in range(slots)] for q in range(len(player.qps))]
        self.next_slot = [0] * len(player.qps)
        for q, qp in enumerate(player.qps):
            for _ in range(self.depth):
                self._post(q)

    def _post(self, q: int) -> None:
        s = self.next_slot[q]
        self.player.qps[q].post_recv(self.wrs[q][s])
        self.next_slot[q] = (s + 1) % len(self.wrs[q])

    def service(self, max_polls: int = 64) -> int:
        n, wcs = self.player.recv_cq.poll(max_polls)
        for wc in wcs:
            if wc.status:
                q = self.qp_index.get(wc.qp_num, 0)
                check_wc(self.V, wc, lambda w: {"op": "recv", "wr_id": int(w.wr_id), "qp_num": w.qp_num})
            self.received += 1
            self._post(self.qp_index[wc.qp_num])
        return n


# ---- ping-pong latency (as ib_write_lat / ib_send_lat) ------------------------------------

PINGPONG_OPS = ("write", "send")


def run_pingpong(a: Player, b: Player, p: LoopParams) -> RawRun:
    """Half round trips between two connected players in this process, as ib_write_lat and
    ib_send_lat measure them: A sends a message to B; as soon as B sees it, B sends one back;
    one stamp when A posts, one when A sees the answer.

    WRITE: the receiver spins on the last byte of its buffer, which carries a sequence number
    (RDMA writes land in order, so the last byte arriving means the message arrived). SEND: the
    receiver polls its receive CQ. Slot 0 of each player is the source, slot 1 the target
    (needs PlayerConfig(slots=2)). Every WR is signaled; send completions are reaped as they come.
    """
    if p.op not in PINGPONG_OPS:
        raise ValueError(f"ping-pong latency is for {PINGPONG_OPS}, not {p.op!r}")
    if a.cfg.slots < 2 or b.cfg.slots < 2:
        raise ValueError("ping-pong needs two slots per player (source and target)")
    link = _PingPongLink(a, b, p)
    if p.warmup_iterations > 0:
        link.loop(p.warmup_iterations, 0)
    raw = link.loop(max(1, p.iterations), int(p.duration_s * 1e9))
    link.drain()
    return raw


class _PingPongLink:
    def __init__(self, a: Player, b: Player, p: LoopParams):
        V = self.V = compat.load()
        self.a, self.b, self.p = a, b, p
        msg = p.msg_bytes
        inline = V.e.IBV_SEND_INLINE if 0 < msg <= p.inline_bytes else 0
        flags = V.e.IBV_SEND_SIGNALED | inline
        self.wrs, self.recv_wrs, self.seq_src, self.seq_dst = [], [], [], []
        for me, other in ((a, b), (b, a)):
            wr = V.SendWR(wr_id=1, opcode=opcode(V, p.op), num_sge=1,
                          sg=[V.SGE(me.slot_addr(0, 0), msg, me.mr.lkey)], send_flags=flags)
            if p.op == "write":
                wr.set_wr_rdma(int(other.mr.rkey), other.slot_addr(0, 1))
            self.wrs.append(wr)
            self.recv_wrs.append(V.RecvWR(wr_id=2, num_sge=1, sg=[V.SGE(me.slot_addr(0, 1), msg, me.mr.lkey)]))
            # the last byte of the source and of the target slot carry the sequence number
            self.seq_src.append(ctypes.c_uint8.from_address(me.slot_addr(0, 0) + msg - 1))
            self.seq_dst.append(ctypes.c_uint8.from_address(me.slot_addr(0, 1) + msg - 1))
            ctypes.memset(me.slot_addr(0, 1), 0, msg)
            if p.op == "send":
                me.qps[0].post_recv(self.recv_wrs[-1])
        self.outstanding = [0, 0]
        self.seq = 0
        self.timeout_ns = int(p.timeout_s * 1e9)

    def _describe(self, side: int) -> Callable[[Any], dict[str, Any]]:
        me, other = (self.a, self.b) if side == 0 else (self.b, self.a)
        remote = {"rkey": other.mr.rkey, "addr": other.slot_addr(0, 1), "slots": 1, "msg_bytes": self.p.msg_bytes}
        return lambda wc: describe_wr(self.p.op, me, 0, remote, self.p.msg_bytes, int(wc.wr_id))

    def _reap(self, side: int, block: bool) -> None:
        """Send completions of one side; blocks (with the time limit) when its queue is full."""
        cq = (self.a, self.b)[side].send_cq
        t0 = 0
        while True:
            n, wcs = cq.poll(16)
            for wc in wcs:
                if wc.status:
                    check_wc(self.V, wc, self._describe(side))
            self.outstanding[side] -= n
            if n or not block:
                return
            t0 = t0 or time.perf_counter_ns()
            if time.perf_counter_ns() - t0 > self.timeout_ns:
                raise PollTimeout(f"no {self.p.op} send completion for {self.p.timeout_s:g} s (ping-pong)")

    def _post(self, side: int) -> None:
        if self.outstanding[side] >= self.p.tx_depth:
            self._reap(side, block=True)
        (self.a, self.b)[side].qps[0].post_send(self.wrs[side])
        self.outstanding[side] += 1

    def _slow_poll(self, t0: int, what: str) -> None:
        """Every so often while waiting: a failed send shows up as its completion error, and the
        time limit is checked."""
        self._reap(0, block=False)
        self._reap(1, block=False)
        if time.perf_counter_ns() - t0 > self.timeout_ns:
            raise PollTimeout(f"ping-pong: {what} for {self.p.timeout_s:g} s")

    def _wait(self, side: int, seq: int, t0: int) -> None:
        """Spin until `side` received message number `seq` (its target byte or its receive CQ)."""
        spins = 0
        if self.p.op == "write":
            byte = self.seq_dst[side]
            while byte.value != seq:
                spins += 1
                if not spins & 1023:
                    self._slow_poll(t0, f"message {seq} not seen")
            return
        me = (self.a, self.b)[side]
        while True:
            n, wcs = me.recv_cq.poll(1)
            if n:
                break
            spins += 1
            if not spins & 1023:
                self._slow_poll(t0, "no receive completion")
        if wcs[0].status:
            check_wc(self.V, wcs[0], lambda w: {"op": "recv", "wr_id": int(w.wr_id), "qp_num": w.qp_num})
        me.qps[0].post_recv(self.recv_wrs[side])

    def loop(self, n_iter: int, duration_ns: int) -> RawRun:
        p = self.p
        post = np.empty(n_iter, dtype=np.int64)
        comp = np.empty(n_iter, dtype=np.int64)
        src_a, src_b = self.seq_src
        now = time.perf_counter_ns
        cpu0 = cpu_snapshot()
        start = now()
        deadline = start + duration_ns if duration_ns else 0
        i = 0
        while i < n_iter:
            seq = self.seq = self.seq % 255 + 1         # 1..255: never the zeroed target's 0
            src_a.value = seq
            t0 = now()
            self._post(0)
            self._wait(1, seq, t0)
            src_b.value = seq
            self._post(1)
            self._wait(0, seq, t0)
            t1 = now()
            post[i] = t0
            comp[i] = t1
            i += 1
            self._reap(0, block=False)
            self._reap(1, block=False)
            if deadline and t1 >= deadline:
                break
        end = now()
        cpu = cpu_delta(cpu0, cpu_snapshot())
        return RawRun(op=p.op, msg_bytes=p.msg_bytes, num_qps=1, wrs_per_completion=1, post_ns=post[:i],
                      comp_ns=comp[:i], wrs_completed=i, start_ns=start, end_ns=end, cpu=cpu,
                      stamps_span="round_trip")

    def drain(self) -> None:
        """Reap every outstanding send completion, so the QPs close with empty queues."""
        for side in (0, 1):
            while self.outstanding[side] > 0:
                self._reap(side, block=True)
