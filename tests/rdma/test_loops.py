"""The two implementations of the hot loops (compiled: rig/rdma/_fastloop.c; Python: the fallback)
on a real device: the same stamps, the same time limits, the same errors; which one ran is
recorded, and a compiled run that cannot find what it needs in the pyverbs objects falls back."""

from __future__ import annotations

import time

import numpy as np
import pytest

from rig.flows.descriptor import BufferDescriptor
from rig.flows.pingpong import PingPong
from rig.launch.local import loopback
from rig.rdma import native
from rig.rdma.completions import PollTimeout
from rig.rdma.player import PlayerConfig
from rig.rdma.traffic import LoopParams, Receiver, run_bw, run_latency

pytestmark = pytest.mark.rdma
CFG = PlayerConfig(msg_bytes=4096, slots=1, num_qps=2, tx_depth=16, rx_depth=64)


def _within(raw, before_ns: int, after_ns: int) -> None:
    """Stamps in perf_counter_ns, ordered, inside the run and inside the call."""
    post, comp = np.asarray(raw.post_ns), np.asarray(raw.comp_ns)
    assert post.dtype == np.int64 and comp.dtype == np.int64
    assert before_ns <= raw.start_ns <= post[0] and comp[-1] <= raw.end_ns <= after_ns
    assert np.all(np.diff(post) >= 0) and np.all(np.diff(comp) >= 0)
    assert post[0] < comp[0]


@pytest.mark.parametrize("op", ["write", "send"])
def test_bandwidth_stamps(rdma_devices, op, loop):
    a, b = loopback(CFG, device=rdma_devices[0])
    try:
        receiver = Receiver(b, CFG.msg_bytes) if op == "send" else None
        t0 = time.perf_counter_ns()
        raw = run_bw(a, b.endpoint(), LoopParams(op=op, msg_bytes=4096, iterations=64, tx_depth=16, cq_mod=8,
                                                 post_list=2, loop=loop), receiver.service if receiver else None)
        t1 = time.perf_counter_ns()
    finally:
        a.close()
        b.close()
    assert raw.loop == loop and raw.wrs_completed == 2 * 64
    assert len(raw.post_ns) == 2 * 64 // 2 and len(raw.comp_ns) == 2 * 64 // 8
    _within(raw, t0, t1)
    if receiver is not None:
        assert receiver.received == 2 * 64          # every SEND consumed a receive, each reposted


def test_a_send_targets_spin_takes_and_reposts_every_receive(rdma_devices, loop):
    """The spin `rdmarig serve` runs between two looks at its conversation (compiled: the
    interpreter is free meanwhile; Python: RDMARIG_LOOP=python) counts each SEND once and reposts
    its receive, so a second run of as many SENDs finds its receives posted."""
    a, b = loopback(CFG, device=rdma_devices[0])
    try:
        receiver = Receiver(b, CFG.msg_bytes)
        p = LoopParams(op="send", msg_bytes=4096, iterations=48, tx_depth=16, cq_mod=8, loop=loop)
        for runs in (1, 2):         # 48 per QP fit the 64 receives posted only when the first 48 were reposted
            run_bw(a, b.endpoint(), p)
            receiver.spin(0.05)
            assert receiver.received == runs * 2 * 48
        receiver.spin(0.01)
        assert receiver.received == 2 * 2 * 48
    finally:
        a.close()
        b.close()


def test_latency_and_pingpong_stamps(rdma_devices, loop):
    cfg = PlayerConfig(msg_bytes=64, slots=1, num_qps=1, tx_depth=16, rx_depth=16)
    a, b = loopback(cfg, device=rdma_devices[0])
    try:
        p = LoopParams(op="write", msg_bytes=64, iterations=100, loop=loop)
        t0 = time.perf_counter_ns()
        raw = run_latency(a, b.endpoint(), p)
        t1 = time.perf_counter_ns()
        _within(raw, t0, t1)
        assert raw.loop == loop and raw.wrs_completed == 100 and np.all(raw.comp_ns > raw.post_ns)
        pp = PingPong(a, b, p)
        t0 = time.perf_counter_ns()
        raw = pp.loop(100, 0)
        t1 = time.perf_counter_ns()
        _within(raw, t0, t1)
        assert raw.loop == loop and raw.stamps_span == "round_trip" and np.all(raw.comp_ns > raw.post_ns)
        assert pp.seq == 100 and pp.integrity()["integrity_ok"]
        pp.loop(200, 0)                              # the sequence number wraps at 255 and goes on
        assert pp.seq == 300 % 255 and pp.integrity()["integrity_ok"]
        pp.drain()
        assert all(end.channel.in_flight == 0 for end in pp.ends)
    finally:
        a.close()
        b.close()


def test_bandwidth_time_limit(rdma_devices, loop):
    """WRITEs to a QP number nobody has: no completion comes (retries take ~0.5 s per WR before the
    device gives up); the loop stops at its time limit, not later, with the Python loop's message."""
    cfg = PlayerConfig(msg_bytes=4096, slots=1, num_qps=1, tx_depth=8, rx_depth=8)
    from rig.rdma.devices import discover
    from rig.rdma.player import Player
    port = discover(rdma_devices[0])
    a, b = Player(port, cfg), Player(port, cfg)
    try:
        remote = b.endpoint()
        remote["qpns"] = [b.qps[0].qp_num + 4096]
        a.connect(remote)
        t0 = time.monotonic()
        with pytest.raises(PollTimeout, match=r"no write completion for 0.2 s \(0 WRs completed, 8 in flight\)"):
            run_bw(a, remote, LoopParams(op="write", msg_bytes=4096, iterations=64, tx_depth=8, cq_mod=4,
                                         timeout_s=0.2, loop=loop))
        assert time.monotonic() - t0 < 5
    finally:
        a.close()
        b.close()


def test_pingpong_time_limit(rdma_devices, loop):
    """B answers into A's source instead of its target: A never sees the answer and stops at the
    time limit, naming the message."""
    cfg = PlayerConfig(msg_bytes=64, slots=1, num_qps=1, tx_depth=16, rx_depth=16)
    a, b = loopback(cfg, device=rdma_devices[0])
    try:
        pp = PingPong(a, b, LoopParams(op="write", msg_bytes=64, timeout_s=0.5, loop=loop))
        end_a = pp.ends[0]
        pp.ends[1].aim(BufferDescriptor(end_a.source, end_a.memory.rkey, 64))
        t0 = time.monotonic()
        with pytest.raises(PollTimeout, match="ping-pong: message 1 not seen for 0.5 s"):
            pp.loop(10, 0)
        assert time.monotonic() - t0 < 10
        pp.drain()
    finally:
        a.close()
        b.close()


def test_a_callback_the_compiled_loop_cannot_run_falls_back_with_the_reason(rdma_devices):
    if not native.available()[0]:
        pytest.skip(f"the compiled loop is unavailable: {native.available()[1]}")
    a, b = loopback(CFG, device=rdma_devices[0])
    try:
        receiver = Receiver(b, CFG.msg_bytes)
        service = lambda: receiver.service()     # noqa: E731 - not the Receiver's bound method
        p = LoopParams(op="send", msg_bytes=4096, iterations=16, tx_depth=16, cq_mod=8)
        raw = run_bw(a, b.endpoint(), p, service)
        assert raw.loop == "python" and "service callback" in raw.loop_note
        with pytest.raises(native.NativeUnavailable, match="service callback"):
            run_bw(a, b.endpoint(), LoopParams(op="send", msg_bytes=4096, iterations=16, tx_depth=16, cq_mod=8,
                                               loop="native"), service)
    finally:
        a.close()
        b.close()


def test_the_pointer_checks_can_fail(rdma_devices):
    """What the loader finds in pyverbs objects is checked: a QP against a CQ it was not created
    with, a chain whose links lead elsewhere."""
    if not native.available()[0]:
        pytest.skip(f"the compiled loop is unavailable: {native.available()[1]}")
    from rig.rdma import compat
    V = compat.load()
    a, b = loopback(CFG, device=rdma_devices[0])
    try:
        qp, send_cq, recv_cq = native.qp_pointers(a.qps[0], a.send_cq, a.recv_cq)
        assert qp and send_cq and recv_cq and send_cq != recv_cq
        assert native.qp_pointers(a.qps[1], a.send_cq)[1] == send_cq      # one send CQ for all QPs
        with pytest.raises(native.NativeUnavailable, match="not the pyverbs CQ"):
            native.qp_pointers(a.qps[0], b.send_cq)
        sge = V.SGE(a.slot_addr(0), 64, a.mr.lkey)
        w3 = V.SendWR(wr_id=3, opcode=V.e.IBV_WR_SEND, num_sge=1, sg=[sge])
        w2 = V.SendWR(wr_id=2, opcode=V.e.IBV_WR_SEND, num_sge=1, sg=[sge], next_wr=w3)
        w1 = V.SendWR(wr_id=1, opcode=V.e.IBV_WR_SEND, num_sge=1, sg=[sge], next_wr=w2)
        assert native.chain_pointer([w1, w2, w3]) == native.send_wr_pointer(w1)
        with pytest.raises(native.NativeUnavailable, match="next pointers"):
            native.chain_pointer([w1, w3])
    finally:
        a.close()
        b.close()
