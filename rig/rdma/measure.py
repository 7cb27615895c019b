"""One measurement point end to end: set up (loopback or a `rdmarig serve` peer), run the loop,
check integrity, compute the summary. Returns data; the CLI prints and stores it."""

from __future__ import annotations

import hashlib
import os
import socket
from dataclasses import asdict, dataclass, field
from typing import Any

from rig.rdma import analysis
from rig.rdma.connect import loopback
from rig.rdma.handshake import (DEFAULT_PORT, HANDSHAKE_TIMEOUT_S, LineReader, PeerGone, ProtocolError,
                                parse_addr, send_msg)
from rig.rdma.resources import Player, PlayerConfig, discover
from rig.rdma.traffic import PINGPONG_OPS, LoopParams, Receiver, effective_cq_mod, run_bw, run_latency, run_pingpong
from scenarios.errors import InputError

VALIDATE_SLOTS = 4


@dataclass
class VerbsOptions:
    op: str = "write"
    sizes: list[int] = field(default_factory=lambda: [1 << 20])
    num_qps: int = 1
    tx_depth: int = 128
    rx_depth: int = 512
    cq_mod: int = 100
    post_list: int = 1
    inline_bytes: int = 0
    iterations: int = 1000
    duration_s: float = 0.0
    warmup_iterations: int = 0
    latency: bool = False
    latency_mode: str = "auto"      # pingpong (half round trip) | post (post to completion) | auto
    device: str | None = None
    port: int | None = None
    gid_index: int | None = None
    peer_device: str | None = None
    peer_gid_index: int | None = None
    peer_addr: str | None = None
    validate: bool = False
    timeout_s: float = 10.0
    rdma_cm: bool = False

    def params(self, size: int) -> dict[str, Any]:
        d = asdict(self)
        d.pop("sizes")
        d["io_size_bytes"] = size
        d["mode"] = "latency" if self.latency else "bandwidth"
        if self.latency:
            d["latency_mode"] = self.latency_method()
        d["connection"] = f"peer {self.peer_addr}" if self.peer_addr else \
            ("loopback via rdma_cm" if self.rdma_cm else "loopback")
        if not self.latency:
            d["cq_mod_effective"] = effective_cq_mod(self.loop(size))
        return d

    def loop(self, size: int) -> LoopParams:
        return LoopParams(op=self.op, msg_bytes=size, iterations=self.iterations, duration_s=self.duration_s,
                          warmup_iterations=self.warmup_iterations, tx_depth=self.tx_depth, cq_mod=self.cq_mod,
                          post_list=self.post_list, inline_bytes=self.inline_bytes, timeout_s=self.timeout_s)

    def latency_method(self) -> str:
        """auto: ping-pong where perftest's *_lat tools use it (WRITE, SEND in loopback); READ and
        two-host runs measure post to completion (two-host ping-pong would need `serve` to answer)."""
        if self.latency_mode != "auto":
            return self.latency_mode
        return "pingpong" if self.op in PINGPONG_OPS and not self.peer_addr else "post"

    def check(self) -> None:
        if self.op not in ("write", "read", "send"):
            raise InputError(f"--op {self.op!r} is not an operation", "use write, read or send")
        for name in ("num_qps", "tx_depth", "rx_depth", "cq_mod", "post_list", "iterations"):
            if getattr(self, name) < 1:
                raise InputError(f"--{name.replace('_', '-')} must be at least 1", "pass a positive integer")
        if self.post_list > self.tx_depth:
            raise InputError(f"--post-list {self.post_list} exceeds --tx-depth {self.tx_depth}",
                             "use a post list no longer than the TX depth")
        if self.warmup_iterations < 0 or self.duration_s < 0 or self.timeout_s <= 0:
            raise InputError("--warmup, --duration must be >= 0 and --timeout > 0", "fix the value")
        if self.peer_addr and self.peer_device:
            raise InputError("--peer (another host) and --peer-device (loopback across devices) exclude "
                             "each other", "pick one")
        if self.rdma_cm and self.peer_addr:
            raise InputError("--rdma-cm connects loopback runs only", "drop --rdma-cm with --peer")
        if self.latency_mode not in ("auto", "pingpong", "post"):
            raise InputError(f"--latency-mode {self.latency_mode!r} is not a mode", "use auto, pingpong or post")
        if self.latency_mode == "pingpong" and (self.op not in PINGPONG_OPS or self.peer_addr):
            raise InputError("ping-pong latency runs WRITE or SEND in loopback only",
                             "use --latency-mode post for READ or with --peer")
        if self.op == "read" and self.inline_bytes:
            raise InputError("RDMA READ has no inline data", "drop --inline for --op read")


def _integrity_pingpong(a: Player, b: Player) -> dict[str, Any]:
    """After a ping-pong run: each player's target slot (1) equals the other's source slot (0)."""
    n = a.cfg.msg_bytes
    bad = (a.read_bytes(a.slot_offset(0, 0), n) != b.read_bytes(b.slot_offset(0, 1), n)) + \
        (b.read_bytes(b.slot_offset(0, 0), n) != a.read_bytes(a.slot_offset(0, 1), n))
    return {"integrity_ok": bad == 0, "integrity_checked_bytes": 2 * n,
            "integrity_method": "byte compare of both directions' target slots after the ping-pong run"}


def _integrity_loopback(opts: VerbsOptions, a: Player, b: Player) -> dict[str, Any]:
    """After the timed loop: the target slot of every QP must equal its source, byte for byte."""
    src, dst = (b, a) if opts.op == "read" else (a, b)
    bad = sum(src.read_bytes(src.slot_offset(q), src.cfg.msg_bytes) != dst.read_bytes(dst.slot_offset(q), dst.cfg.msg_bytes)
              for q in range(len(a.qps)))
    return {"integrity_ok": bad == 0, "integrity_checked_bytes": len(a.qps) * a.cfg.msg_bytes,
            "integrity_method": "byte compare of every QP's target slot after the run"}


def run_point(opts: VerbsOptions, size: int) -> dict[str, Any]:
    """Measure one message size; returns {params, summary, samples, integrity, ports}."""
    if opts.peer_addr:
        return _run_peer(opts, size)
    from rig.rdma.integrity import verify_transfer
    pingpong = opts.latency and opts.latency_method() == "pingpong"
    slots = VALIDATE_SLOTS if opts.validate else (2 if pingpong else 1)
    cfg = PlayerConfig(msg_bytes=size, slots=slots, num_qps=opts.num_qps, tx_depth=opts.tx_depth,
                       rx_depth=opts.rx_depth, max_inline_bytes=opts.inline_bytes)
    if opts.rdma_cm:
        from rig.rdma.cm import loopback_rdma_cm
        a, b = loopback_rdma_cm(cfg, opts.device, opts.peer_device, opts.port, opts.gid_index, opts.peer_gid_index)
    else:
        a, b = loopback(cfg, opts.device, opts.peer_device, opts.port, opts.gid_index, opts.peer_gid_index)
    try:
        out: dict[str, Any] = {"ports": {"local": a.port.as_dict(), "remote": b.port.as_dict()}}
        integrity: dict[str, Any] = {}
        if opts.validate:
            v = verify_transfer(a, b, opts.op, timeout_s=max(30.0, opts.timeout_s))
            integrity["validate"] = v
            if not v["ok"]:
                raise IntegrityError(f"{opts.op} validation: {v['mismatched_bytes']} of {v['bytes']} bytes differ")
        src = b if opts.op == "read" else a
        src.write_bytes(os.urandom(src.cfg.mr_bytes))
        if pingpong:
            b.write_bytes(os.urandom(b.cfg.mr_bytes))       # B's source slot answers A
        receiver = Receiver(b, size) if opts.op == "send" and not pingpong else None
        service = receiver.service if receiver else None
        remote = b.endpoint()
        loop = opts.loop(size)
        if pingpong:
            raw = run_pingpong(a, b, loop)
            summary, samples = analysis.latency(raw)
        elif opts.latency:
            raw = run_latency(a, remote, loop, service)
            summary, samples = analysis.latency(raw)
        else:
            raw = run_bw(a, remote, loop, service)
            summary, samples = analysis.bandwidth(raw, opts.post_list)
        integrity.update(_integrity_pingpong(a, b) if pingpong else _integrity_loopback(opts, a, b))
        if not integrity["integrity_ok"]:
            raise IntegrityError(f"{opts.op}: target memory differs from the source after the run")
        summary["integrity_ok"] = True
        summary["cpu_scope"] = "loopback: both ends in this process; softirq is system-wide"
        out.update(params=opts.params(size), summary=summary, samples=samples, integrity=integrity)
        return out
    finally:
        a.close()
        b.close()


class IntegrityError(RuntimeError):
    """Data at the target differs from the source."""


def _run_peer(opts: VerbsOptions, size: int) -> dict[str, Any]:
    try:
        host, tcp_port = parse_addr(opts.peer_addr or "", DEFAULT_PORT)
    except ValueError as exc:
        raise InputError(f"--peer {opts.peer_addr!r}: {exc}", "use HOST or HOST:PORT") from None
    port = discover(opts.device, opts.port, opts.gid_index)
    cfg = PlayerConfig(msg_bytes=size, slots=1, num_qps=opts.num_qps, tx_depth=opts.tx_depth,
                       rx_depth=opts.rx_depth, max_inline_bytes=opts.inline_bytes)
    loop = opts.loop(size)
    run_max = (opts.duration_s or 0) + opts.timeout_s * 4 + (60.0 if not opts.duration_s else 0) + \
        (opts.iterations + opts.warmup_iterations) * opts.num_qps * 1e-3
    try:
        sock = socket.create_connection((host, tcp_port), timeout=HANDSHAKE_TIMEOUT_S)
    except OSError as exc:
        raise InputError(f"cannot reach rdmarig serve at {host}:{tcp_port}: {exc.strerror or exc}",
                         f"start `rdmarig serve --bind {host}` there, or check --peer") from None
    with sock, Player(port, cfg) as player:
        reader = LineReader(sock)
        try:
            send_msg(sock, {"type": "hello", "op": opts.op, "msg_bytes": size, "num_qps": opts.num_qps,
                            "tx_depth": opts.tx_depth, "rx_depth": opts.rx_depth, "slots": 1,
                            "run_seconds_max": min(3600.0, run_max), "endpoint": player.endpoint()})
            ready = reader.recv_msg(max(5.0, 3 * opts.timeout_s), "ready")
            from rig.rdma.handshake import validate_endpoint
            remote = validate_endpoint(ready.get("endpoint"), opts.num_qps)
            player.connect(remote)
            data = os.urandom(cfg.mr_bytes)
            if opts.op != "read":
                player.write_bytes(data)
            send_msg(sock, {"type": "start"})
            if opts.latency:
                raw = run_latency(player, remote, loop)
            else:
                raw = run_bw(player, remote, loop)
            send_msg(sock, {"type": "stop"})
            done = reader.recv_msg(max(5.0, 3 * opts.timeout_s), "done")
        except (PeerGone, ProtocolError) as exc:
            raise PeerError(f"peer {host}:{tcp_port}: {exc}") from None
        peer_cpu = done.get("cpu") if isinstance(done.get("cpu"), dict) else None
        if opts.op == "read":
            ok = hashlib.sha256(player.read_bytes()).hexdigest() == ready.get("sha256")
        else:
            ok = hashlib.sha256(data).hexdigest() == done.get("sha256")
        if not ok:
            raise IntegrityError(f"{opts.op}: SHA-256 of the target memory differs from the source")
        if opts.latency:
            summary, samples = analysis.latency(raw, peer_cpu)
        else:
            summary, samples = analysis.bandwidth(raw, opts.post_list, peer_cpu)
        summary["integrity_ok"] = True
        summary["cpu_scope"] = "this host's process (+ system-wide softirq); peer_* from rdmarig serve"
        return {"ports": {"local": port.as_dict(), "remote": {"gid": remote["gid"], "mtu_bytes": remote["mtu_bytes"]}},
                "params": opts.params(size), "summary": summary, "samples": samples,
                "integrity": {"integrity_ok": True, "integrity_method": "SHA-256 of target memory after the run"}}


class PeerError(RuntimeError):
    """The peer vanished, timed out or refused."""
