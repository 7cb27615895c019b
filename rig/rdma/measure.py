"""`measure verbs`, one point: the options (each bounded, errors naming the flag), the workload
that runs once the two ends are connected, and `run_point`, which hands it to a launcher
(rig.launch.local or rig.launch.peer) and gets one PointResult back. Returns data; the CLI prints
and stores it."""

from __future__ import annotations

import hashlib
import math
import os
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Callable

from rig.flows.pingpong import PINGPONG_OPS
from rig.launch import Measured, PointResult
from rig.rdma.handshake import MAX_DEPTH, MAX_MSG_BYTES, MAX_QPS, MAX_RUN_SECONDS, parse_addr
from rig.rdma.player import Player, PlayerConfig
from scenarios.errors import InputError
from scenarios.units import format_size

VALIDATE_SLOTS = 4
OPS = ("write", "read", "send")
LATENCY_MODES = ("auto", "pingpong", "post")
MAX_ITERATIONS = 10**9
MAX_INLINE_BYTES = 64 * 1024
MAX_GID_INDEX = 1023

# option -> (the flag a user types, lowest, highest); sizes are checked per size, --duration only when given
BOUNDS: dict[str, tuple[str, float, float]] = {
    "num_qps": ("--qps", 1, MAX_QPS),
    "tx_depth": ("--tx-depth", 1, MAX_DEPTH),
    "rx_depth": ("--rx-depth", 1, MAX_DEPTH),
    "cq_mod": ("--cq-mod", 1, MAX_DEPTH),
    "post_list": ("--post-list", 1, MAX_DEPTH),
    "iterations": ("--iterations", 1, MAX_ITERATIONS),
    "warmup_iterations": ("--warmup", 0, MAX_ITERATIONS),
    "inline_bytes": ("--inline", 0, MAX_INLINE_BYTES),
    "timeout_s": ("--timeout", 1e-3, MAX_RUN_SECONDS),
    "port": ("--ib-port", 1, 255),
    "gid_index": ("--gid-index", 0, MAX_GID_INDEX),
    "peer_gid_index": ("--peer-gid-index", 0, MAX_GID_INDEX),
}
SIZE_BOUNDS = ("--size", 1, MAX_MSG_BYTES)
DURATION_BOUNDS = ("--duration", 1e-3, MAX_RUN_SECONDS)


class IntegrityError(RuntimeError):
    """Data at the target differs from the source."""


def check_range(flag: str, value: float, lo: float, hi: float, unit: str = "") -> None:
    if not lo <= value <= hi:
        show = (lambda v: format_size(v) if math.isfinite(v) else f"{v:g}") if unit == "B" else \
            (lambda v: f"{v:g}{unit}" if math.isfinite(v) else f"{v:g}")
        raise InputError(f"{flag} {show(value)} is out of range", f"use {show(lo)}..{show(hi)}")


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
    events: bool = False            # perftest -e: the poster sleeps on completion events

    def params(self, size: int) -> dict[str, Any]:
        from rig.rdma.traffic import effective_cq_mod
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

    def loop(self, size: int) -> Any:
        from rig.rdma.traffic import LoopParams
        return LoopParams(op=self.op, msg_bytes=size, iterations=self.iterations, duration_s=self.duration_s,
                          warmup_iterations=self.warmup_iterations, tx_depth=self.tx_depth, cq_mod=self.cq_mod,
                          post_list=self.post_list, inline_bytes=self.inline_bytes, timeout_s=self.timeout_s,
                          events=self.events)

    def latency_method(self) -> str:
        """auto: ping-pong where perftest's *_lat tools use it (WRITE, SEND in loopback); READ and
        two-host runs measure post to completion (two-host ping-pong would need `serve` to answer)."""
        if self.latency_mode != "auto":
            return self.latency_mode
        return "pingpong" if self.op in PINGPONG_OPS and not self.peer_addr else "post"

    def check(self) -> None:
        """Every option within its range, the combinations that exclude each other: one line
        naming the flag as the user types it."""
        if self.op not in OPS:
            raise InputError(f"--op {self.op!r} is not an operation", "use write, read or send")
        if self.latency_mode not in LATENCY_MODES:
            raise InputError(f"--latency-mode {self.latency_mode!r} is not a mode", "use auto, pingpong or post")
        for name, (flag, lo, hi) in BOUNDS.items():
            value = getattr(self, name)
            if value is not None:
                check_range(flag, value, lo, hi, "B" if name == "inline_bytes" else
                             "s" if name.endswith("_s") else "")
        if not self.sizes:
            raise InputError("--size names no size", "give one, a list (2,64,4096) or a range (4KiB..8MiB)")
        for size in self.sizes:
            check_range(SIZE_BOUNDS[0], size, SIZE_BOUNDS[1], SIZE_BOUNDS[2], "B")
        if self.duration_s:
            check_range(DURATION_BOUNDS[0], self.duration_s, DURATION_BOUNDS[1], DURATION_BOUNDS[2], "s")
        if self.post_list > self.tx_depth:
            raise InputError(f"--post-list {self.post_list} exceeds --tx-depth {self.tx_depth}",
                             "use a post list no longer than the TX depth")
        if self.peer_addr and self.peer_device:
            raise InputError("--peer (another host) and --peer-device (loopback across devices) exclude "
                             "each other", "pick one")
        if self.rdma_cm and self.peer_addr:
            raise InputError("--rdma-cm connects loopback runs only", "drop --rdma-cm with --peer")
        if self.validate and self.peer_addr:
            raise InputError("--validate checks loopback runs slot by slot", "drop --validate with --peer "
                             "(two-host runs are checked by SHA-256 anyway)")
        if self.latency_mode == "pingpong" and (self.op not in PINGPONG_OPS or self.peer_addr):
            raise InputError("ping-pong latency runs WRITE or SEND in loopback only",
                             "use --latency-mode post for READ or with --peer")
        if self.events and self.latency:
            raise InputError("--events sleeps between completions of the bandwidth loop",
                             "drop --events for --latency (a latency loop polls its one WR)")
        if self.events and self.op == "send" and self.rx_depth < self.tx_depth:
            raise InputError(f"--events --op send: --rx-depth {self.rx_depth} is below --tx-depth {self.tx_depth} "
                             "(the target's receives are reposted only while the poster is awake)",
                             "use --rx-depth >= --tx-depth")
        if self.events and self.rdma_cm:
            raise InputError("--events and --rdma-cm are not supported together", "drop one of them")
        if self.op == "read" and self.inline_bytes:
            raise InputError("RDMA READ has no inline data", "drop --inline for --op read")
        if self.peer_addr:
            try:
                parse_addr(self.peer_addr)
            except ValueError as exc:
                raise InputError(f"--peer {self.peer_addr!r}: {exc}", "use HOST or HOST:PORT (port 0..65535)") from None


def chain_ticks(*ticks: Callable[[int, float], None] | None) -> Callable[[int, float], None] | None:
    live = [t for t in ticks if t is not None]
    if len(live) <= 1:
        return live[0] if live else None

    def both(n: int, elapsed: float) -> None:
        for t in live:
            t(n, elapsed)
    return both


def _integrity_loopback(opts: VerbsOptions, a: Player, b: Player) -> dict[str, Any]:
    """After the timed loop: the target slot of every QP must equal its source, byte for byte."""
    src, dst = (b, a) if opts.op == "read" else (a, b)
    bad = sum(src.read_bytes(src.slot_offset(q), src.cfg.msg_bytes) != dst.read_bytes(dst.slot_offset(q), dst.cfg.msg_bytes)
              for q in range(len(a.qps)))
    return {"integrity_ok": bad == 0, "integrity_checked_bytes": len(a.qps) * a.cfg.msg_bytes,
            "integrity_method": "byte compare of every QP's target slot after the run"}


class VerbsWorkload:
    """One message size of `measure verbs`: the bandwidth loop, post-to-completion latency or
    the ping-pong flow, on players a launcher connected (rig.launch.Workload)."""

    def __init__(self, opts: VerbsOptions, size: int, on_tick: Callable[[int, float], None] | None = None):
        self.opts, self.size, self.on_tick = opts, size, on_tick
        self.pingpong = opts.latency and opts.latency_method() == "pingpong"
        self.timeout_s = opts.timeout_s

    def configs(self) -> tuple[PlayerConfig, PlayerConfig]:
        o = self.opts
        cfg = PlayerConfig(msg_bytes=self.size, slots=VALIDATE_SLOTS if o.validate else 1,
                           num_qps=1 if self.pingpong else o.num_qps, tx_depth=o.tx_depth, rx_depth=o.rx_depth,
                           max_inline_bytes=o.inline_bytes)
        return cfg, cfg

    def params(self) -> dict[str, Any]:
        return self.opts.params(self.size)

    @property
    def player_class(self) -> Any:
        """The initiator's Player: one with completion channels when it sleeps on events."""
        from rig.rdma.player import EventPlayer
        return EventPlayer if self.opts.events else Player

    def loop(self, extra_tick: Callable[[int, float], None] | None = None) -> Any:
        return replace(self.opts.loop(self.size), on_tick=chain_ticks(self.on_tick, extra_tick))

    # ---- both ends here ---------------------------------------------------------------------
    def run_local(self, a: Player, b: Player) -> Measured:
        from rig.rdma.integrity import verify_transfer
        from rig.rdma.traffic import Receiver, run_bw, run_latency
        o = self.opts
        integrity: dict[str, Any] = {}
        if o.validate:
            v = verify_transfer(a, b, o.op, timeout_s=max(30.0, o.timeout_s))
            integrity["validate"] = v
            if not v["ok"]:
                raise IntegrityError(f"{o.op} validation: {v['mismatched_bytes']} of {v['bytes']} bytes differ")
        if self.pingpong:
            from rig.flows.pingpong import run_pingpong
            raw, checked = run_pingpong(a, b, self.loop())
        else:
            src = b if o.op == "read" else a
            src.write_bytes(os.urandom(src.cfg.mr_bytes))
            receiver = Receiver(b, self.size) if o.op == "send" else None
            service = receiver.service if receiver else None
            run = run_latency if o.latency else run_bw
            raw = run(a, b.endpoint(), self.loop(), service)
            checked = _integrity_loopback(o, a, b)
        integrity.update(checked)
        if not integrity["integrity_ok"]:
            raise IntegrityError(f"{o.op}: target memory differs from the source after the run")
        return Measured(raw, integrity)

    # ---- the target elsewhere ---------------------------------------------------------------
    def request(self) -> dict[str, Any]:
        o = self.opts
        return {"op": o.op, "msg_bytes": self.size, "num_qps": o.num_qps, "tx_depth": o.tx_depth,
                "rx_depth": o.rx_depth, "slots": 1}

    def run_seconds_max(self) -> float:
        o = self.opts
        return (o.duration_s or 0) + o.timeout_s * 4 + (60.0 if not o.duration_s else 0) + \
            (o.iterations + o.warmup_iterations) * o.num_qps * 1e-3

    def prepare_initiator(self, player: Player) -> bytes:
        data = os.urandom(player.cfg.mr_bytes)
        if self.opts.op != "read":
            player.write_bytes(data)
        return data

    def run_initiator(self, player: Player, remote: dict[str, Any],
                      extra_tick: Callable[[int, float], None] | None = None) -> Any:
        from rig.rdma.traffic import run_bw, run_latency
        return (run_latency if self.opts.latency else run_bw)(player, remote, self.loop(extra_tick))

    def check_far(self, player: Player, prepared: bytes, ready: dict[str, Any], done: dict[str, Any]) -> dict[str, Any]:
        if self.opts.op == "read":
            ok = hashlib.sha256(player.read_bytes()).hexdigest() == ready.get("sha256")
        else:
            ok = hashlib.sha256(prepared).hexdigest() == done.get("sha256")
        if not ok:
            raise IntegrityError(f"{self.opts.op}: SHA-256 of the target memory differs from the source")
        return {"integrity_ok": True, "integrity_method": "SHA-256 of target memory after the run"}

    # ---- figures ----------------------------------------------------------------------------
    def summarize(self, raw: Any, far_cpu: dict[str, Any] | None) -> tuple[dict[str, Any], dict[str, Any]]:
        from rig.rdma import analysis
        if self.opts.latency:
            summary, samples = analysis.latency(raw, far_cpu)
        else:
            summary, samples = analysis.bandwidth(raw, self.opts.post_list, far_cpu)
        summary["integrity_ok"] = True
        return summary, samples

    def cpu_scope(self, where: str) -> str:
        mine = "CPU = its process time + ksoftirqd's, the softirq served inside it moved from system to softirq " \
               "(each counted once)"
        if where == "local":
            return f"loopback: both ends in this process; {mine}"
        if where == "peer on this host":
            return ("this host's process and its peer on this kernel: each one's user + system time whole "
                    "(the softirq served inside it included), ksoftirqd's run time counted on this side; "
                    "peer_* from rdmarig serve (its session thread)")
        return f"this host's process; {mine}; peer_* from rdmarig serve (its session thread)"


def run_point(opts: VerbsOptions, size: int, on_tick: Callable[[int, float], None] | None = None) -> PointResult:
    """Measure one message size, both ends here or against `rdmarig serve` (--peer)."""
    workload = VerbsWorkload(opts, size, on_tick)
    if opts.peer_addr:
        from rig.launch import peer
        return peer.run(workload, opts.peer_addr, opts.device, opts.port, opts.gid_index,
                        answer_s=max(5.0, 3 * opts.timeout_s))
    from rig.launch.local import LocalEnds, run
    return run(workload, LocalEnds(opts.device, opts.port, opts.gid_index, opts.peer_device,
                                   opts.peer_gid_index, opts.rdma_cm))


# ---- many ranks under mpirun / srun (--mpi) ---------------------------------------------------

def check_mpi(opts: VerbsOptions, mpi: Any) -> None:
    """What a verbs run under MPI cannot do (the MPI options are checked by MpiOptions.check)."""
    for flag, used in (("--peer", opts.peer_addr), ("--peer-device", opts.peer_device), ("--rdma-cm", opts.rdma_cm),
                       ("--validate", opts.validate), ("--latency", opts.latency)):
        if used:
            raise InputError(f"--mpi pairs ranks for bandwidth runs; {flag} does not apply",
                             f"drop {flag} (ranks find their partners through MPI)")
    if mpi.pattern == "incast" and opts.op != "write":
        raise InputError(f"--pattern incast runs --op write (clients writing into one server), not {opts.op}",
                         "use --op write")


def run_mpi(opts: VerbsOptions, mpi: Any, open_store: Callable[[], Any], say: Callable[[str], None]) -> Any:
    """This rank's part of `measure verbs --mpi` (rig.launch.mpi_run.run_ranks)."""
    from rig.launch.mpi_run import RankJob, RecordSpec, run_ranks

    spec = RecordSpec(name=f"verbs.{opts.op}.bw", metric="bw_average_gbytes_per_s",
                      params_of=lambda size, _point: opts.params(size))
    job = RankJob(spec=spec, sizes=list(opts.sizes), workload_for=lambda s: VerbsWorkload(opts, s),
                  run_seconds_max=max(VerbsWorkload(opts, s).run_seconds_max() for s in opts.sizes),
                  answer_s=max(5.0, 3 * opts.timeout_s), ib_port=opts.port, gid_index=opts.gid_index)
    return run_ranks(job, mpi, open_store, say)
