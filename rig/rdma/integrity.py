"""Integrity transfers: fresh random data through RDMA, every byte compared (no numpy needed,
so the self-test also runs under Debian's /usr/bin/python3)."""

from __future__ import annotations

import hashlib
import os
import time
from typing import Any

from rig.rdma import compat
from rig.rdma.completions import PollTimeout, check_wc
from rig.rdma.player import Player
from rig.rdma.traffic import Receiver, describe_wr, opcode, remote_slot_addr


def mismatched_bytes(x: bytes, y: bytes) -> int:
    if x == y:
        return 0
    try:
        import numpy as np
        return int(np.count_nonzero(np.frombuffer(x, np.uint8) != np.frombuffer(y, np.uint8)))
    except ImportError:
        return sum(1 for i, j in zip(x, y) if i != j) + abs(len(x) - len(y))


def verify_transfer(a: Player, b: Player, op: str, timeout_s: float = 30.0) -> dict[str, Any]:
    """Move every slot of every QP once with `op` and compare every byte.

    WRITE: a's slots -> b's slots. READ: a reads b's slots into its own. SEND: a sends into
    receives posted on b. Both players are in this process (loopback).
    """
    V = compat.load()
    msg, slots, nq = a.cfg.msg_bytes, a.cfg.slots, len(a.qps)
    src, dst = (b, a) if op == "read" else (a, b)
    data = os.urandom(src.cfg.mr_bytes)
    src.write_bytes(data)
    dst.write_bytes(bytes(dst.cfg.mr_bytes))
    remote = b.endpoint()
    receiver = Receiver(b, msg, depth=slots, slot_cycle=True) if op == "send" else None
    t0 = time.perf_counter()
    for q in range(nq):
        for s in range(slots):
            sge = V.SGE(a.slot_addr(q, s), msg, a.mr.lkey)
            wr = V.SendWR(wr_id=(q << 32) | s, opcode=opcode(V, op), num_sge=1, sg=[sge],
                          send_flags=V.e.IBV_SEND_SIGNALED)
            if op != "send":
                wr.set_wr_rdma(int(remote["rkey"]), remote_slot_addr(remote, q, s))
            a.qps[q].post_send(wr)
    want, got = nq * slots, 0
    deadline = time.monotonic() + timeout_s
    while got < want or (receiver is not None and receiver.received < want):
        n, wcs = a.send_cq.poll(16)
        for wc in wcs:
            q, s = int(wc.wr_id) >> 32, int(wc.wr_id) & 0xFFFFFFFF
            check_wc(V, wc, lambda w: {**describe_wr(op, a, q, remote, msg, int(w.wr_id)),
                                       "local_addr": hex(a.slot_addr(q, s))})
        got += n
        if receiver is not None:
            n += receiver.service()
        if not n and time.monotonic() > deadline:
            raise PollTimeout(f"{op} integrity transfer: {got} of {want} completions within {timeout_s:g} s")
    seconds = time.perf_counter() - t0
    moved = dst.read_bytes()
    bad = mismatched_bytes(data, moved)
    return {"op": op, "ok": bad == 0, "bytes": len(moved), "mismatched_bytes": bad,
            "sha256_source": hashlib.sha256(data).hexdigest(),
            "sha256_target": hashlib.sha256(moved).hexdigest(), "seconds": seconds}
