"""A whole run under mpirun/srun for any workload (`measure verbs --mpi`, `measure smbd --mpi`):
the options every MPI run shares, rank 0's collector (a record per pair stored as it arrives, one
aggregate per I/O size at the end), and `run_ranks`, which starts this rank's part
(rig.launch.mpi.Rank) and returns what it knows. The workload modules say what a point is, how
its record is named and which metric the matrix shows; nothing here looks inside a point."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

from results.matrix import DEFAULT_TOLERANCE
from rig.rdma.handshake import PeerGone, ProtocolError
from scenarios.errors import InputError

JOIN_BOUNDS = ("--join-timeout", 1.0, 86400.0)


@dataclass
class MpiOptions:
    pattern: str = "pairs"
    partners: int = 0                    # sampled: partners per rank
    seed: int = 0                        # sampled: the draw
    tolerance: float = DEFAULT_TOLERANCE  # a pair below this x the median is flagged
    devices: tuple[str, ...] = ()        # --device list, taken round-robin by local rank
    join_s: float = 600.0                # every rank's start-up (slow in the emulated guest)

    def check(self) -> None:
        from rig.launch.schedule import PATTERNS
        from rig.rdma.measure import check_range
        if self.pattern not in PATTERNS:
            raise InputError(f"--pattern {self.pattern!r} is not a pattern", f"use {', '.join(PATTERNS)}")
        if self.pattern == "sampled" and self.partners < 1:
            raise InputError("--pattern sampled needs --partners K (partners per rank)", "add e.g. --partners 4")
        if self.pattern != "sampled" and (self.partners or self.seed):
            flag = "--partners" if self.partners else "--seed"
            raise InputError(f"{flag} applies to --pattern sampled, not {self.pattern}", f"drop {flag}")
        if not 0 < self.tolerance <= 1:
            raise InputError(f"--tolerance {self.tolerance * 100:g}% is out of range", "use 1%..100% (default 93%)")
        check_range(JOIN_BOUNDS[0], self.join_s, *JOIN_BOUNDS[1:], "s")

    def schedule_params(self) -> dict[str, Any]:
        return {"pattern": self.pattern,
                **({"partners": self.partners, "seed": self.seed} if self.pattern == "sampled" else {})}


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


@dataclass(frozen=True)
class RecordSpec:
    """What a workload's pair records are: their name, the metric the matrix and the aggregate
    read from a point's summary, and the run's parameters at one I/O size (with the point's own,
    when it has them)."""

    name: str                                              # "verbs.write.bw", "smbd.read"
    metric: str                                            # a summary key in GB/s
    params_of: Callable[[int, dict[str, Any]], dict[str, Any]]   # (size, the point's params) -> params


class Collector:
    """Rank 0: a record per pair as its result arrives (stored at once), the aggregates at the end."""

    def __init__(self, spec: RecordSpec, sizes: list[int], mpi: MpiOptions, store: Any):
        self.spec, self.sizes, self.mpi, self.store = spec, list(sizes), mpi, store
        self.pairs: list[Any] = []
        self.values: dict[int, list[dict[str, Any]]] = {s: [] for s in self.sizes}
        self.failed: dict[int, list[str]] = {s: [] for s in self.sizes}
        self.job: Any = None

    def _params(self, job: Any, size: int, point_params: dict[str, Any]) -> dict[str, Any]:
        from results.matrix import METRIC_KEY, RUN_KEY
        return {**self.spec.params_of(size, point_params), "connection": f"mpi {self.mpi.pattern}", "device": None,
                RUN_KEY: job.run, **self.mpi.schedule_params(), "ranks": job.size, "rounds": job.schedule.rounds,
                METRIC_KEY: self.spec.metric, "started": job.started}

    def add(self, job: Any, res: Any) -> None:
        from results.record import Record
        from rig.records import store_record
        self.job = job
        if res.point is None:
            self.failed[res.size].append(f"{res.initiator}->{res.target}: {res.error}")
            return
        pt = res.point
        local = pt["ports"].get("local") or {}
        params = {**self._params(job, res.size, pt.get("params") or {}), "round": res.round, "step": res.phase,
                  "initiator_rank": res.initiator, "target_rank": res.target,
                  "initiator_host": job.hosts.get(res.initiator), "target_host": job.hosts.get(res.target),
                  "initiator_device": local.get("device"), "target_device": job.devices.get(res.target),
                  "device": local.get("device")}
        peer = job.provenance_of(res.target)
        prov = {**job.provenance_of(res.initiator), "time": res.finished, "rdma_ports": pt["ports"],
                "integrity": pt["integrity"], "cpu_accounting": pt["cpu_accounting"],
                "peer_host": {k: peer.get(k) for k in ("host", "kernel", "cpu_model", "rdma_devices", "rdmarig")}}
        rec = Record(kind="measured", name=self.spec.name, params=params, samples=pt["samples"], summary=pt["summary"],
                     provenance=prov)
        store_record(rec, self.store)
        self.pairs.append(rec)
        self.values[res.size].append({"initiator": res.initiator, "target": res.target, "round": res.round,
                                      "gbytes_per_s": pt["summary"][self.spec.metric]})

    def finish(self, job: Any, interrupted: str | None = None) -> list[Any]:
        from results.matrix import AGGREGATE_PREFIX, aggregate_summary
        from results.record import Record
        from rig.records import store_record
        out = []
        per_size = job.schedule.pairs_expected()
        for size in self.sizes:
            summary, samples = aggregate_summary(self.values[size], per_size, self.mpi.tolerance, self.failed[size],
                                                 sorted(job.gone), interrupted)
            params = {**self._params(job, size, {}), "tolerance_pct": self.mpi.tolerance * 100,
                      "hosts": {str(r): h for r, h in sorted(job.hosts.items())},
                      "devices": {str(r): d for r, d in sorted(job.devices.items())}}
            prov = {**job.provenance_of(0), "hosts": sorted(set(job.hosts.values()))}
            rec = Record(kind="measured", name=AGGREGATE_PREFIX + self.spec.name, params=params, samples=samples,
                         summary=summary, provenance=prov)
            store_record(rec, self.store)
            out.append(rec)
        return out


@dataclass
class RankJob:
    """One workload's run under MPI, as `run_ranks` needs it."""

    spec: RecordSpec
    sizes: list[int]
    workload_for: Callable[[int], Any]                     # size -> rig.launch.Workload
    run_seconds_max: float                                 # the longest point's run
    answer_s: float                                        # a far end's answer within a conversation
    ib_port: int | None = None
    gid_index: int | None = None
    serve: Callable[[Any, Any, str | None], dict[str, Any]] | None = None   # target side (default TargetSession)


def run_ranks(job: RankJob, mpi: MpiOptions, open_store: Callable[[], Any], say: Callable[[str], None]) -> MpiRun:
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
    plan = launch.Plan(schedule_args=(mpi.pattern, mpi.partners, mpi.seed), sizes=tuple(job.sizes),
                       devices=mpi.devices, ib_port=job.ib_port, gid_index=job.gid_index, join_s=mpi.join_s,
                       answer_s=job.answer_s, step_s=job.run_seconds_max + 3 * job.answer_s + launch.SETUP_S)
    extra = {"pyverbs_api": V.api, "pyverbs_path": V.path, "launcher": started_by, "boot_id": acct.boot_id(),
             "mpi_library": MPI.Get_library_version().splitlines()[0].strip()}
    collector = Collector(job.spec, job.sizes, mpi, open_store()) if rank == 0 else None
    node = launch.Rank(MPI, plan, job.workload_for, collector.add if collector else None, say,
                       lambda: provenance.collect(extra), serve=job.serve)
    out = MpiRun(run="", rank=rank, ranks=size, host=socket.gethostname())
    try:
        done = node.run()
        if collector is not None:
            out.pairs, out.aggregates = collector.pairs, collector.finish(done)
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
    out.run, out.failures, out.partial_reason, out.pairs_taken = done.run, done.failures, done.partial_reason, \
        done.pairs_taken
    return out
