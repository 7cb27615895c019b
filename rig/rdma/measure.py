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

from results.matrix import DEFAULT_TOLERANCE
from rig.flows.pingpong import PINGPONG_OPS
from rig.launch import Measured, PointResult
from rig.rdma.handshake import MAX_DEPTH, MAX_MSG_BYTES, MAX_QPS, MAX_RUN_SECONDS, PeerGone, ProtocolError, parse_addr
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
                          post_list=self.post_list, inline_bytes=self.inline_bytes, timeout_s=self.timeout_s)

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
        far = "peer_* from rdmarig serve (its session thread" + \
            ("; its softirq is this host's, counted on this side)" if where == "peer on this host" else ")")
        return f"this host's process; {mine}; {far}"


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

MPI_JOIN_BOUNDS = ("--join-timeout", 1.0, 86400.0)


@dataclass
class MpiOptions:
    pattern: str = "pairs"
    partners: int = 0                    # sampled: partners per rank
    seed: int = 0                        # sampled: the draw
    tolerance: float = DEFAULT_TOLERANCE  # a pair below this x the median is flagged
    devices: tuple[str, ...] = ()        # --device list, taken round-robin by local rank
    join_s: float = 600.0                # every rank's start-up (slow in the emulated guest)

    def check(self, opts: VerbsOptions) -> None:
        from rig.launch.schedule import PATTERNS
        if self.pattern not in PATTERNS:
            raise InputError(f"--pattern {self.pattern!r} is not a pattern", f"use {', '.join(PATTERNS)}")
        if self.pattern == "sampled" and self.partners < 1:
            raise InputError("--pattern sampled needs --partners K (partners per rank)", "add e.g. --partners 4")
        if self.pattern != "sampled" and (self.partners or self.seed):
            flag = "--partners" if self.partners else "--seed"
            raise InputError(f"{flag} applies to --pattern sampled, not {self.pattern}", f"drop {flag}")
        if not 0 < self.tolerance <= 1:
            raise InputError(f"--tolerance {self.tolerance * 100:g}% is out of range", "use 1%..100% (default 93%)")
        check_range(MPI_JOIN_BOUNDS[0], self.join_s, *MPI_JOIN_BOUNDS[1:], "s")
        for flag, used in (("--peer", opts.peer_addr), ("--peer-device", opts.peer_device), ("--rdma-cm", opts.rdma_cm),
                           ("--validate", opts.validate), ("--latency", opts.latency)):
            if used:
                raise InputError(f"--mpi pairs ranks for bandwidth runs; {flag} does not apply",
                                 f"drop {flag} (ranks find their partners through MPI)")
        if self.pattern == "incast" and opts.op != "write":
            raise InputError(f"--pattern incast runs --op write (clients writing into one server), not {opts.op}",
                             "use --op write")


def parse_tolerance(text: str) -> float:
    """'93%' or a fraction '0.93' -> 0.93."""
    t = text.strip()
    try:
        value = float(t[:-1]) / 100 if t.endswith("%") else float(t)
    except ValueError:
        raise InputError(f"--tolerance {text!r} is not a percentage", "write it as 93% (or the fraction 0.93)") from None
    if not math.isfinite(value) or not 0 < value <= 1:
        raise InputError(f"--tolerance {text!r} is out of range", "use 1%..100% (default 93%)")
    return value


@dataclass
class MpiRun:
    """What rank 0 stored (and every rank knows of the run)."""

    run: str
    rank: int
    ranks: int
    host: str
    pairs: list[Any] = field(default_factory=list)        # results.record.Record, pair records
    aggregates: list[Any] = field(default_factory=list)   # one per I/O size
    failures: list[str] = field(default_factory=list)     # this rank's failed pairs
    pairs_taken: int = 0                                  # the pairs this rank took part in
    partial_reason: str | None = None


class _Collector:
    """Rank 0: a record per pair as its result arrives (stored at once), the aggregates at the end."""

    METRIC = "bw_average_gbytes_per_s"

    def __init__(self, opts: VerbsOptions, mpi: MpiOptions, store: Any):
        self.opts, self.mpi, self.store = opts, mpi, store
        self.name = f"verbs.{opts.op}.bw"
        self.pairs: list[Any] = []
        self.values: dict[int, list[dict[str, Any]]] = {s: [] for s in opts.sizes}
        self.failed: dict[int, list[str]] = {s: [] for s in opts.sizes}
        self.job: Any = None

    def _params(self, job: Any, size: int) -> dict[str, Any]:
        from results.matrix import METRIC_KEY, RUN_KEY
        return {**self.opts.params(size), "connection": f"mpi {self.mpi.pattern}", "device": None,
                RUN_KEY: job.run, "pattern": self.mpi.pattern, "ranks": job.size, "rounds": job.schedule.rounds,
                **({"partners": self.mpi.partners, "seed": self.mpi.seed} if self.mpi.pattern == "sampled" else {}),
                METRIC_KEY: self.METRIC, "started": job.started}

    def add(self, job: Any, res: Any) -> None:
        from results.record import Record
        from rig.records import store_record
        self.job = job
        if res.point is None:
            self.failed[res.size].append(f"{res.initiator}->{res.target}: {res.error}")
            return
        pt = res.point
        params = {**self._params(job, res.size), "round": res.round, "step": res.phase,
                  "initiator_rank": res.initiator, "target_rank": res.target,
                  "initiator_host": job.hosts.get(res.initiator), "target_host": job.hosts.get(res.target),
                  "initiator_device": pt["ports"]["local"].get("device"),
                  "target_device": job.devices.get(res.target), "device": pt["ports"]["local"].get("device")}
        peer = job.provenance_of(res.target)
        prov = {**job.provenance_of(res.initiator), "time": res.finished, "rdma_ports": pt["ports"],
                "integrity": pt["integrity"], "cpu_accounting": pt["cpu_accounting"],
                "peer_host": {k: peer.get(k) for k in ("host", "kernel", "cpu_model", "rdma_devices", "rdmarig")}}
        rec = Record(kind="measured", name=self.name, params=params, samples=pt["samples"], summary=pt["summary"],
                     provenance=prov)
        store_record(rec, self.store)
        self.pairs.append(rec)
        self.values[res.size].append({"initiator": res.initiator, "target": res.target, "round": res.round,
                                      "gbytes_per_s": pt["summary"][self.METRIC]})

    def finish(self, job: Any, interrupted: str | None = None) -> list[Any]:
        from results.matrix import AGGREGATE_PREFIX, aggregate_summary
        from results.record import Record
        from rig.records import store_record
        out = []
        per_size = job.schedule.pairs_expected()
        for size in self.opts.sizes:
            summary, samples = aggregate_summary(self.values[size], per_size, self.mpi.tolerance, self.failed[size],
                                                 sorted(job.gone), interrupted)
            params = {**self._params(job, size), "tolerance_pct": self.mpi.tolerance * 100,
                      "hosts": {str(r): h for r, h in sorted(job.hosts.items())},
                      "devices": {str(r): d for r, d in sorted(job.devices.items())}}
            prov = {**job.provenance_of(0), "hosts": sorted(set(job.hosts.values()))}
            rec = Record(kind="measured", name=AGGREGATE_PREFIX + self.name, params=params, samples=samples,
                         summary=summary, provenance=prov)
            store_record(rec, self.store)
            out.append(rec)
        return out


def run_mpi(opts: VerbsOptions, mpi: MpiOptions, open_store: Callable[[], Any], say: Callable[[str], None]) -> MpiRun:
    """This rank's part of a run under mpirun/srun; rank 0 opens the store and stores the records
    (each pair's as it arrives, the aggregates at the end). Every rank returns what it knows."""
    import socket

    from results import provenance
    from rig import accounting as acct
    from rig.launch import mpi as launch
    from rig.launch.schedule import Schedule, ScheduleError
    from rig.rdma import compat

    started_by = launch.require_launcher()
    MPI = launch.load()
    V = compat.load()
    world = MPI.COMM_WORLD
    rank, size = world.Get_rank(), world.Get_size()
    try:
        Schedule(mpi.pattern, size, mpi.partners, mpi.seed)
    except ScheduleError as exc:
        raise InputError(f"--pattern {mpi.pattern}: {exc.cause}", exc.fix) from None
    if mpi.pattern == "incast" and MPI.Query_thread() < MPI.THREAD_MULTIPLE:
        raise InputError("--pattern incast: this MPI library does not grant MPI_THREAD_MULTIPLE, and the server "
                         "serves each client in its own thread", "use an MPI built with thread support, or --pattern pairs")
    answer_s = max(5.0, 3 * opts.timeout_s)
    longest = max(VerbsWorkload(opts, s).run_seconds_max() for s in opts.sizes)
    plan = launch.Plan(schedule_args=(mpi.pattern, mpi.partners, mpi.seed), sizes=tuple(opts.sizes),
                       devices=mpi.devices, ib_port=opts.port, gid_index=opts.gid_index, join_s=mpi.join_s,
                       answer_s=answer_s, step_s=longest + 3 * answer_s + launch.SETUP_S)
    extra = {"pyverbs_api": V.api, "pyverbs_path": V.path, "launcher": started_by, "boot_id": acct.boot_id(),
             "mpi_library": MPI.Get_library_version().splitlines()[0].strip()}
    collector = _Collector(opts, mpi, open_store()) if rank == 0 else None
    node = launch.Rank(MPI, plan, lambda s: VerbsWorkload(opts, s), collector.add if collector else None, say,
                       lambda: provenance.collect(extra))
    out = MpiRun(run="", rank=rank, ranks=size, host=socket.gethostname())
    try:
        job = node.run()
        if collector is not None:
            out.pairs, out.aggregates = collector.pairs, collector.finish(job)
    except (PeerGone, ProtocolError) as exc:       # the coordinator is gone (or garbled): this rank stops
        out.run = node.job.run if node.job else "(not joined)"
        out.failures, out.partial_reason = [str(exc)], "rank 0 gone" if isinstance(exc, PeerGone) else str(exc)
        return out
    except KeyboardInterrupt:
        if collector is not None and collector.job is not None:
            collector.finish(collector.job, "stopped by an interrupt (Ctrl-C, or the SIGTERM with which mpirun "
                             "ends a job when a rank dies)")
        raise
    finally:
        node.close()
        if collector is not None and collector.store is not None:
            collector.store.close()
    out.run, out.failures, out.partial_reason, out.pairs_taken = job.run, job.failures, job.partial_reason, job.pairs_taken
    return out
