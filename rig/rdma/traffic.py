"""Traffic loops: RDMA WRITE / RDMA READ / SEND bandwidth, and post-to-completion latency.

The hot loops only post prebuilt work requests, poll, and write raw `perf_counter_ns` stamps into
preallocated numpy arrays; every statistic is computed afterwards (rig.rdma.analysis). Ping-pong
latency is a flow (rig.flows.pingpong): two ends answering each other.

Progress: a loop calls `LoopParams.on_tick(wrs_completed, elapsed_s)` at most every `tick_s`,
from the clock readings it takes anyway (a completion's stamp, the time-limit check); with no
callback the check is one integer comparison per poll.

Vocabulary as in perftest: `tx_depth` WRs in flight per QP, `cq_mod` = one signaled WR per
cq_mod WRs, `post_list` = WRs chained into one ibv_post_send call, iterations per QP.

Two implementations of each loop, the same steps in the same order: the compiled one
(rig/rdma/_fastloop.c through rig.rdma.native, no return to Python per work request; stamps from
the TSC) where it is built, else the Python one. `LoopParams.loop` picks ("auto": compiled when
available); `RawRun.loop` says which ran and `RawRun.loop_note` why the Python one ran.
"""

from __future__ import annotations

import ctypes
import select
import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable

try:
    import numpy as np
except ImportError:    # the integrity self-test runs without numpy (Debian's /usr/bin/python3)
    np = None  # type: ignore[assignment]

from rig.accounting import CpuWindow
from rig.rdma import compat, native
from rig.rdma.completions import PollTimeout, check_wc, describe_recv
from rig.rdma.native import StampLog
from rig.rdma.player import Player

OPS = ("write", "read", "send")
LOOPS = ("auto", "native", "python")
EMPTY_POLLS_PER_CLOCK_CHECK = 256


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
    on_tick: Callable[[int, float], None] | None = field(default=None, repr=False)
    tick_s: float = 2.0
    cpu_scope: str = "process"      # whose CPU the run's window counts (rig.accounting.CpuWindow)
    loop: str = "auto"              # auto: the compiled loop where it is built; native; python
    events: bool = False            # sleep on the send CQ's completion channel when nothing completed

    def without_tick(self) -> "LoopParams":
        return replace(self, on_tick=None)

    def window(self) -> CpuWindow:
        return CpuWindow(scope=self.cpu_scope, busy=True)

    def next_tick_ns(self, t_ns: int) -> int:
        """The clock reading at which to call on_tick next (never, without one)."""
        return t_ns + int(self.tick_s * 1e9) if self.on_tick is not None else 1 << 63


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
    cpu: dict[str, float] = field(default_factory=dict)     # rig.accounting.CpuWindow.stop()
    cpu_note: dict[str, Any] = field(default_factory=dict)  # what that window counted
    stamps_span: str = "post_to_completion"   # or "round_trip" (ping-pong: latency = half of it)
    loop: str = "python"            # which loop ran: "native" (compiled) or "python"
    loop_note: str = ""             # why the Python loop ran (the compiled one was asked for or built)
    event_waits: int | None = None   # --events: how often the poster waited on the completion channel

    @staticmethod
    def one_in_flight(p: LoopParams, post: Any, comp: Any, n: int, start: int, end: int, window: CpuWindow,
                      stamps_span: str = "post_to_completion", loop: str = "python") -> "RawRun":
        """The record of a latency loop (one WR in flight): n post and completion stamps."""
        return RawRun(op=p.op, msg_bytes=p.msg_bytes, num_qps=1, wrs_per_completion=1, post_ns=post[:n],
                      comp_ns=comp[:n], wrs_completed=n, start_ns=start, end_ns=end, cpu=window.stop(),
                      cpu_note=window.note(), stamps_span=stamps_span, loop=loop)


def native_or_why(p: LoopParams) -> str | None:
    """None when the compiled loop is to run, else why the Python loop runs. NativeUnavailable
    when the compiled loop was asked for (loop="native") and cannot run."""
    if p.loop not in LOOPS:
        raise ValueError(f"loop {p.loop!r} is not one of {LOOPS}")
    if p.loop == "python":
        return "the Python loop was asked for"
    if p.events:
        if p.loop == "native":
            raise native.NativeUnavailable("the compiled loop busy-polls; --events sleeps on completion events")
        return "the compiled loop busy-polls; --events runs the Python loop"
    ok, why = native.available()
    if ok:
        return None
    if p.loop == "native":
        raise native.NativeUnavailable(why)
    return why


def run_loop(p: LoopParams, compiled: Callable[[], "RawRun"], interpreted: Callable[[], "RawRun"]) -> "RawRun":
    """The compiled loop where it can run (its set-up raises NativeUnavailable before any WR is
    posted when a pointer is not found), else the Python loop, with the reason."""
    why = native_or_why(p)
    if why is None:
        try:
            return compiled()
        except native.NativeUnavailable as exc:
            if p.loop == "native":
                raise
            why = str(exc)
    raw = interpreted()
    raw.loop_note = why
    return raw


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


# ---- bandwidth loop --------------------------------------------------------------------------

def run_bw(player: Player, remote: dict[str, Any], p: LoopParams,
           service: Callable[[], None] | None = None) -> RawRun:
    """Stream `op` WRs on every QP of `player` towards `remote` (an endpoint dict).

    `service` is called on every empty poll: in loopback SEND it reposts the target's receives.
    """
    if p.warmup_iterations > 0:
        _bw_loop(player, remote, replace(p, iterations=p.warmup_iterations, duration_s=0.0, warmup_iterations=0),
                 service)
    return _bw_loop(player, remote, p, service)


def _iterations(p: LoopParams, mod: int, pl: int, nq: int) -> tuple[int, int]:
    """(WRs to post per QP, post stamps expected): iterations rounded up to the CQ moderation;
    a duration run posts until its deadline."""
    if p.duration_s:
        return 1 << 62, 1 << 16
    per_qp = -(-max(1, p.iterations) // mod) * mod
    return per_qp, per_qp // pl * nq + 1


def _bw_loop(player: Player, remote: dict[str, Any], p: LoopParams,
             service: Callable[[], None] | None) -> RawRun:
    V = compat.load()
    pl = max(1, p.post_list)
    mod = effective_cq_mod(p)
    nq = len(player.qps)
    inline = 0 < p.msg_bytes <= p.inline_bytes and p.op != "read"
    plain = [_chain(V, player, q, remote, p.op, p.msg_bytes, pl, False, inline, q << 32) for q in range(nq)]
    signaled = [_chain(V, player, q, remote, p.op, p.msg_bytes, pl, True, inline, q << 32) for q in range(nq)]
    qp_index = {qp.qp_num: q for q, qp in enumerate(player.qps)}

    def desc(wc: Any) -> dict[str, Any]:
        q = qp_index.get(wc.qp_num, 0)
        return describe_wr(p.op, player, q, remote, p.msg_bytes, int(wc.wr_id))

    return run_loop(p, lambda: _bw_native(V, player, p, service, plain, signaled, mod, desc),
                    lambda: _bw_python(V, player, p, service, plain, signaled, mod, desc))


def _bw_python(V: compat.Verbs, player: Player, p: LoopParams, service: Callable[[], None] | None,
               plain: list[list[Any]], signaled: list[list[Any]], mod: int,
               desc: Callable[[Any], dict[str, Any]]) -> RawRun:
    pl = max(1, p.post_list)
    chains_per_signal = mod // pl
    nq = len(player.qps)
    heads_plain = [c[0] for c in plain]
    heads_sig = [c[0] for c in signaled]
    qps = player.qps
    post_fns = [qp.post_send for qp in qps]
    poll = player.send_cq.poll
    qp_index = {qp.qp_num: q for q, qp in enumerate(qps)}

    per_qp, est = _iterations(p, mod, pl, nq)
    duration_ns = int(p.duration_s * 1e9)
    target = [per_qp] * nq       # WRs to post per QP; cut short when the duration is over
    posts = StampLog(est)
    comps = StampLog(est * pl // mod + 1)
    post_arr, comp_arr = posts.arr, comps.arr
    ip = ic = 0
    posted = [0] * nq            # WRs posted per QP
    chains = [0] * nq
    outstanding = [0] * nq
    completed = 0
    depth, batch, timeout_ns = p.tx_depth, p.poll_batch, int(p.timeout_s * 1e9)
    now = time.perf_counter_ns
    # --events: with nothing completed, ask for an event at the next completion, poll once more (a
    # completion before the request raises none), then sleep on the channel; the poster sleeps as a
    # serving thread does, so the soft NIC's chain its posts raise runs where the kernel puts it
    event_fd = _send_event_fd(player) if p.events else -1
    armed = False
    waits = 0

    on_tick = p.on_tick
    window = p.window().start()
    start = now()
    deadline = start + duration_ns if duration_ns else 0
    next_tick = p.next_tick_ns(start)
    last_progress = start
    empty = 0
    while True:
        for q in range(nq):
            post_send = post_fns[q]
            while posted[q] < target[q] and outstanding[q] + pl <= depth:
                c = chains[q] + 1
                wr = heads_sig[q] if c % chains_per_signal == 0 else heads_plain[q]
                if ip == len(post_arr):
                    post_arr = posts.grow(ip)
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
                    comp_arr = comps.grow(ic)
                    ic = 0
                comp_arr[ic] = t
                ic += 1
            completed += n * mod
            last_progress = t
            empty = 0
        elif event_fd >= 0:
            if not armed:
                player.send_cq.req_notify()
                armed = True
                continue
            armed = False
            if service is not None:
                while service():        # loopback SEND: every receive reposted before the poster sleeps
                    pass
            waits += 1
            if select.select([event_fd], [], [], p.timeout_s)[0]:
                player.consume(event_fd)
            t = now()
            if t - last_progress > timeout_ns:
                raise PollTimeout(_bw_timeout(p, completed, sum(outstanding)))
        else:
            empty += 1
            if empty < EMPTY_POLLS_PER_CLOCK_CHECK:
                continue
            empty = 0
            t = now()
            if t - last_progress > timeout_ns:
                raise PollTimeout(_bw_timeout(p, completed, sum(outstanding)))
        if deadline and t >= deadline:
            deadline = 0
            # stop at the next signaled WR of every QP, so every posted WR is accounted for
            target = [-(-posted[q] // mod) * mod for q in range(nq)]
        if t >= next_tick:
            on_tick(completed, (t - start) * 1e-9)
            next_tick = p.next_tick_ns(now())
        if posted == target and not any(outstanding):
            break
    end = now()
    cpu = window.stop()
    # counted as the polling loops are (process + ksoftirqd; the sampled softirq out of system time
    # once): the note says the poster slept
    note = {**window.note(), "busy_polling": False, "poster_sleeps_on_events": True} if p.events else window.note()
    return RawRun(op=p.op, msg_bytes=p.msg_bytes, num_qps=nq, wrs_per_completion=mod,
                  post_ns=posts.result(ip), comp_ns=comps.result(ic), wrs_completed=completed,
                  start_ns=start, end_ns=end, cpu=cpu, cpu_note=note,
                  event_waits=waits if p.events else None)


def _send_event_fd(player: Player) -> int:
    """perftest's --events: the descriptor of the send CQ's completion channel (an EventPlayer's)."""
    fd = player.send_event_fd() if hasattr(player, "send_event_fd") else None
    if fd is not None:
        return fd
    from scenarios.errors import InputError
    raise InputError("--events: this pyverbs keeps its completion channel's descriptor to itself (not found "
                     "among the process's descriptors)", "run without --events")


def _bw_timeout(p: LoopParams, completed: int, in_flight: int) -> str:
    return f"no {p.op} completion for {p.timeout_s:g} s ({completed} WRs completed, {in_flight} in flight)"


def _bw_native(V: compat.Verbs, player: Player, p: LoopParams, service: Callable[[], None] | None,
               plain: list[list[Any]], signaled: list[list[Any]], mod: int,
               desc: Callable[[Any], dict[str, Any]]) -> RawRun:
    """The same loop in C (rig/rdma/_fastloop.c: rr_bw_run) over the same QPs and WR chains."""
    L = native.lib()
    pl, nq = max(1, p.post_list), len(player.qps)
    found = [native.qp_pointers(qp, player.send_cq) for qp in player.qps]
    rx = _native_receiver(service)
    heads = [native.pointers([native.chain_pointer(c) for c in chains]) for chains in (plain, signaled)]
    per_qp, est = _iterations(p, mod, pl, nq)
    h = L.rr_bw_new(nq, pl, mod, p.tx_depth, p.poll_batch, EMPTY_POLLS_PER_CLOCK_CHECK, per_qp,
                    native.pointers([f[0] for f in found]), found[0][1], heads[0], heads[1], *rx.args, rx.depth)
    if not h:
        raise native.NativeUnavailable("rr_bw_new refused the loop's parameters")
    window = p.window().start()
    try:
        st = native.drive(L.rr_bw_run, h, n_post=est, n_comp=est * pl // mod + 1, growable=True,
                          timeout_s=p.timeout_s, duration_s=p.duration_s, on_tick=p.on_tick, tick_s=p.tick_s)
    except native.Failure as f:
        native.reraise(f, V, {native.SEND_CQ: desc, native.RECV_CQ: describe_recv},
                       lambda f: _bw_timeout(p, f.completed, f.in_flight))
    finally:
        L.rr_bw_free(h)
    cpu = window.stop()
    rx.received(st.received)
    st.convert()
    return RawRun(op=p.op, msg_bytes=p.msg_bytes, num_qps=nq, wrs_per_completion=mod, post_ns=st.post,
                  comp_ns=st.comp, wrs_completed=st.completed, start_ns=st.start, end_ns=st.end, cpu=cpu,
                  cpu_note=window.note(), loop="native")


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

    def loop(n_iter: int, duration_ns: int) -> RawRun:
        def desc(wc: Any) -> dict[str, Any]:
            return describe_wr(p.op, player, 0, remote, p.msg_bytes, int(wc.wr_id))
        return run_loop(p, lambda: _latency_native(V, player, p, wr, n_iter, duration_ns, service, desc),
                        lambda: _latency_python(V, player, p, wr, n_iter, duration_ns, service, desc))

    if p.warmup_iterations > 0:
        loop(p.warmup_iterations, 0)
    return loop(max(1, p.iterations), int(p.duration_s * 1e9))


def _latency_timeout(p: LoopParams) -> str:
    return f"no {p.op} completion for {p.timeout_s:g} s"


def _latency_python(V: compat.Verbs, player: Player, p: LoopParams, wr: Any, n_iter: int, duration_ns: int,
                    service: Callable[[], None] | None, desc: Callable[[Any], dict[str, Any]]) -> RawRun:
    post = np.empty(n_iter, dtype=np.int64)
    comp = np.empty(n_iter, dtype=np.int64)
    post_send, poll = player.qps[0].post_send, player.send_cq.poll
    now = time.perf_counter_ns
    timeout_ns = int(p.timeout_s * 1e9)
    on_tick = p.on_tick
    window = p.window().start()
    start = now()
    deadline = start + duration_ns if duration_ns else 0
    next_tick = p.next_tick_ns(start)
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
            if not spins & 1023:
                t = now()
                if t - t0 > timeout_ns:
                    raise PollTimeout(_latency_timeout(p))
                if t >= next_tick:
                    on_tick(i, (t - start) * 1e-9)
                    next_tick = p.next_tick_ns(now())
        t1 = now()
        if wcs[0].status:
            check_wc(V, wcs[0], desc)
        post[i] = t0
        comp[i] = t1
        i += 1
        if service is not None:
            service()            # outside the timed span: reposts the target's receive (SEND)
        if deadline and t1 >= deadline:
            break
        if t1 >= next_tick:
            on_tick(i, (t1 - start) * 1e-9)
            next_tick = p.next_tick_ns(now())
    return RawRun.one_in_flight(p, post, comp, i, start, now(), window)


def _latency_native(V: compat.Verbs, player: Player, p: LoopParams, wr: Any, n_iter: int, duration_ns: int,
                    service: Callable[[], None] | None, desc: Callable[[Any], dict[str, Any]]) -> RawRun:
    """The same loop in C (rr_lat_run)."""
    L = native.lib()
    qp, cq, _ = native.qp_pointers(player.qps[0], player.send_cq)
    rx = _native_receiver(service)
    h = L.rr_lat_new(qp, cq, native.chain_pointer([wr]), rx.nq, *rx.args)
    if not h:
        raise native.NativeUnavailable("rr_lat_new failed")
    window = p.window().start()
    try:
        st = native.drive(L.rr_lat_run, h, n_post=n_iter, n_comp=n_iter, growable=False, timeout_s=p.timeout_s,
                          duration_s=duration_ns * 1e-9, on_tick=p.on_tick, tick_s=p.tick_s)
    except native.Failure as f:
        native.reraise(f, V, {native.SEND_CQ: desc, native.RECV_CQ: describe_recv}, lambda f: _latency_timeout(p))
    finally:
        L.rr_lat_free(h)
    rx.received(st.received)
    st.convert()
    return RawRun.one_in_flight(p, st.post, st.comp, st.completed, st.start, st.end, window, loop="native")


# ---- receives (SEND target) ----------------------------------------------------------------

class Receiver:
    """Keeps `rx_depth` receives posted on every QP of a SEND target; `service()` reposts."""

    def __init__(self, player: Player, msg_bytes: int, depth: int | None = None, slot_cycle: bool = False):
        self.V = compat.load()
        self.player = player
        self.depth = depth or player.cfg.rx_depth
        self.received = 0
        self.qp_index = {qp.qp_num: q for q, qp in enumerate(player.qps)}
        slots = player.cfg.slots if slot_cycle else 1
        # one prebuilt RecvWR per (QP, slot); wr_id encodes both
        self.wrs = [[self.V.RecvWR(wr_id=(q << 32) | s, num_sge=1,
                                   sg=[self.V.SGE(player.slot_addr(q, s), msg_bytes, player.mr.lkey)])
                     for s in range(slots)] for q in range(len(player.qps))]
        self.next_slot = [0] * len(player.qps)
        self._spin: Callable[[float], None] | None = None
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
                check_wc(self.V, wc, describe_recv)
            self.received += 1
            self._post(self.qp_index[wc.qp_num])
        return n

    def spin(self, seconds: float) -> None:
        """Busy-poll for `seconds`, as ib_send_bw's server does. The compiled spin lets go of the
        interpreter meanwhile: the other threads of the process (the other sessions of one
        `rdmarig serve`) run beside it; a Python spin would keep them waiting for it."""
        if self._spin is None:
            self._spin = self._compiled_spin() or self._python_spin
        self._spin(seconds)

    def _python_spin(self, seconds: float) -> None:
        until = time.monotonic() + seconds
        while True:
            for _ in range(64):
                self.service()
            if time.monotonic() >= until:
                return

    def _compiled_spin(self) -> Callable[[float], None] | None:
        try:
            L = native.lib()
            rx = _native_receiver(self.service)
            per_s = native.clock().per_ns * 1e9
        except native.NativeUnavailable:
            return None
        run = native.Run()
        qps, cq, wrs = rx.args

        def spin(seconds: float) -> None:
            run.received = 0
            status = L.rr_rx_spin(rx.nq, qps, cq, wrs, int(seconds * per_s), ctypes.byref(run))
            self.received += run.received
            if status:
                native.reraise(native.Failure(status, run), self.V, {native.RECV_CQ: describe_recv},
                               lambda f: "no receive")
        return spin


@dataclass
class _NativeRx:
    """A Receiver as the compiled loops take it: its QPs, receive CQ and one RecvWR per QP."""

    receiver: "Receiver | None" = None
    args: tuple = (None, None, None)     # (ibv_qp* array, ibv_cq*, ibv_recv_wr* array)
    nq: int = 0
    depth: int = 0                       # receives kept posted per QP

    def received(self, n: int) -> None:
        if self.receiver is not None:
            self.receiver.received += n


def _native_receiver(service: Callable[[], Any] | None) -> _NativeRx:
    """The compiled loops service a SEND target themselves: `service` must be a Receiver's."""
    if service is None:
        return _NativeRx()
    rcv = getattr(service, "__self__", None)
    if not isinstance(rcv, Receiver) or getattr(service, "__func__", None) is not Receiver.service:
        raise native.NativeUnavailable("the loop's service callback is not a Receiver's (only the Python loop calls it)")
    if any(len(w) != 1 for w in rcv.wrs):
        raise native.NativeUnavailable("the receiver cycles through several slots per QP")
    found = [native.qp_pointers(qp, None, rcv.player.recv_cq) for qp in rcv.player.qps]
    wrs = [native.recv_wr_pointer(w[0]) for w in rcv.wrs]
    return _NativeRx(rcv, (native.pointers([f[0] for f in found]), found[0][2], native.pointers(wrs)), len(found),
                     rcv.depth)
