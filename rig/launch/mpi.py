"""Many ranks at once under mpirun or srun (mpi4py): ranks paired by a schedule
(rig.launch.schedule), the handshake carried by MPI instead of TCP, every wait bounded, the
results gathered at rank 0 as they come.

    rank 0 (the coordinator, and a rank like the others)       every other rank
    join     <- arrive {phase 0, host}                           arrive 0, then wait for go 0
             -> go {phase 0, run, started, hosts, local ranks, gone}
             <- arrive {phase 1, device, provenance (one rank per host)}  -> go 1
    step k   (one round of the schedule at one I/O size) each rank runs its pair: the initiator
             `peer.initiate` and the target `target.TargetSession`, the code of a single run,
             over an MpiConversation; an incast server runs one session per client, in threads
             <- arrive {phase k+1, results of step k}  -> go {phase k+1}: the barrier before a step
    end      <- arrive {phase S+1, results}  -> end {partial, reason}

The barrier is the coordinator's: it releases the ranks that arrived, and a rank that does not
arrive within the step's time limit (or 10 s after its partner reported their pair lost) is
declared gone, its partners skip it, the run goes on and ends partial. Under OpenMPI's default mpirun a rank that
dies ends the job instead (mpirun sends SIGTERM to every other rank, then SIGKILL ~1 s later):
every pair finished before that is stored already, since rank 0 stores each result as it
arrives. `mpirun --enable-recovery` and srun (without --kill-on-bad-exit) let the others finish.

Messages are the JSON of rig.rdma.handshake (validated field by field, no pickle); the
conversation's carry their phase, so a late message of an earlier step is dropped, never
misread. Control messages (arrive, go, end) use their own tag.
"""

from __future__ import annotations

import importlib
import json
import os
import socket
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable

from rig import debian
from rig.launch import Workload
from rig.launch.schedule import Schedule
from rig.rdma.handshake import MAX_MESSAGE_BYTES, VERSION, PeerGone, ProtocolError, parse
from scenarios.errors import InputError

TAG_CONV, TAG_CTRL = 17, 18
MAX_CTRL_BYTES = 64 << 20
POLL_MAX_S = 0.02                 # the longest sleep between two probes of a bounded wait
SETUP_S = 30.0                    # a step's set-up beyond the workload's own limits (Player, discover)
GRACE_S = 10.0                    # slack on top of the coordinator's limits for a rank's own waits
FLUSH_S = 2.0                     # at the end, for sends still in flight (to a rank that is gone, never)
DEBIAN_MPI4PY = debian.package_dir("mpi4py")
INSTALL_FIX = ("install it: apt-get install python3-mpi4py openmpi-bin (Debian/Ubuntu), "
               "or pip install 'rdmarig[mpi]' (builds mpi4py against the MPI on PATH)")
LAUNCH_FIX = ("start it under an MPI launcher, e.g. `mpirun -n 8 --hostfile hosts rdmarig measure verbs --mpi "
              "--pattern pairs` or `srun -N 4 --ntasks-per-node 2 rdmarig measure verbs --mpi --pattern pairs`")

# what launchers set in every rank's environment: (variable with the world size, launcher)
LAUNCHER_ENV = (("OMPI_COMM_WORLD_SIZE", "Open MPI mpirun"), ("PMIX_RANK", "a PMIx launcher"),
                ("PMI_SIZE", "a PMI launcher (MPICH hydra, Intel MPI, srun --mpi=pmi2)"),
                ("SLURM_PROCID", "Slurm srun"))


def launcher() -> str | None:
    """Which launcher started this process (from its environment), or None."""
    return next((name for var, name in LAUNCHER_ENV if var in os.environ), None)


def require_launcher() -> str:
    """The launcher's name, or InputError saying how to launch (before MPI is touched: a process
    started by hand would initialise a world of one)."""
    found = launcher()
    if found is None:
        raise InputError("--mpi: this process was not started by mpirun or srun (none of "
                         f"{', '.join(v for v, _ in LAUNCHER_ENV)} is set)", LAUNCH_FIX)
    return found


def installed() -> str | None:
    """Where mpi4py would come from (found without importing it: importing initialises MPI)."""
    import importlib.util

    spec = importlib.util.find_spec("mpi4py")
    if spec is not None and spec.origin:
        return os.path.dirname(spec.origin)
    return DEBIAN_MPI4PY if debian.build_matches("mpi4py") else None


def load() -> Any:
    """mpi4py's MPI module (importing it initialises MPI); Debian's python3-mpi4py through
    rig.debian when this CPython is not Debian's."""
    try:
        return importlib.import_module("mpi4py.MPI")
    except ImportError as first:
        if not debian.link_package("mpi4py"):
            raise InputError(f"--mpi needs mpi4py, which does not import in {sys.executable} ({first})",
                             INSTALL_FIX) from None
        try:
            return importlib.import_module("mpi4py.MPI")
        except ImportError as second:
            raise InputError(f"--mpi: Debian's mpi4py at {DEBIAN_MPI4PY} does not import in {sys.executable} "
                             f"({second})", INSTALL_FIX) from None


# ---- messages over MPI -----------------------------------------------------------------------

class Mailbox:
    """JSON messages between ranks: non-blocking sends, receives found by Iprobe, so every wait
    is a Python loop with a deadline (and a signal reaches it)."""

    def __init__(self, MPI: Any, comm: Any):
        self.MPI, self.comm = MPI, comm
        self.rank, self.size = comm.Get_rank(), comm.Get_size()
        self._pending: list[tuple[Any, bytes]] = []
        self._kept = 0                    # pending sends after the last pruning (pruned as it doubles)
        self._lock = threading.Lock()

    def send(self, dest: int, tag: int, msg: dict[str, Any]) -> None:
        data = json.dumps(msg, separators=(",", ":")).encode()
        req = self.comm.Isend([data, self.MPI.BYTE], dest=dest, tag=tag)
        with self._lock:
            self._pending.append((req, data))       # the buffer lives until the send completes
            if len(self._pending) > 2 * self._kept + 16:
                self._pending = [(r, d) for r, d in self._pending if not r.Test()]
                self._kept = len(self._pending)

    def take(self, source: int, tag: int, limit: int) -> tuple[int, bytes] | None:
        """A message from `source` (or MPI.ANY_SOURCE) if one has arrived: (source, bytes)."""
        status = self.MPI.Status()
        if not self.comm.Iprobe(source=source, tag=tag, status=status):
            return None
        n, src = status.Get_count(self.MPI.BYTE), status.Get_source()
        buf = bytearray(n)
        self.comm.Recv([buf, self.MPI.BYTE], source=src, tag=tag)
        if n > limit:
            raise ProtocolError(f"message of {n} bytes from rank {src} exceeds {limit}")
        return src, bytes(buf)

    def wait(self, source: int, tag: int, limit: int, deadline: float) -> tuple[int, bytes] | None:
        """The next message within the deadline (monotonic clock), else None."""
        pause = 0.0
        while True:
            got = self.take(source, tag, limit)
            if got is not None:
                return got
            if time.monotonic() >= deadline:
                return None
            time.sleep(pause)
            pause = min(POLL_MAX_S, pause * 2 or 0.0005)

    def flush(self, seconds: float) -> bool:
        """Wait (bounded) until every send has completed; True if they have."""
        deadline = time.monotonic() + seconds
        while True:
            with self._lock:
                self._pending = [(r, d) for r, d in self._pending if not r.Test()]
                if not self._pending:
                    return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.005)


def _control(data: bytes) -> dict[str, Any]:
    try:
        msg = json.loads(data)
    except ValueError:
        raise ProtocolError("a control message that is not JSON") from None
    if not isinstance(msg, dict) or not isinstance(msg.get("type"), str) or not isinstance(msg.get("phase"), int):
        raise ProtocolError("a control message without type and phase")
    return msg


class MpiConversation:
    """rig.launch.conversation.Conversation between two ranks, for one phase of the run."""

    def __init__(self, box: Mailbox, peer: int, phase: int):
        self.box, self.peer, self.phase = box, peer, phase

    def send(self, msg: dict[str, Any]) -> None:
        self.box.send(self.peer, TAG_CONV, {"version": VERSION, **msg, "phase": self.phase})

    def _mine(self, data: bytes, expect: str | tuple[str, ...] | None) -> dict[str, Any] | None:
        if parse(data).get("phase") != self.phase:
            return None                       # a late message of an earlier step: dropped
        return parse(data, expect)

    def recv(self, timeout_s: float, expect: str | tuple[str, ...] | None = None) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while True:
            got = self.box.wait(self.peer, TAG_CONV, MAX_MESSAGE_BYTES, deadline)
            if got is None:
                raise PeerGone(f"no message from rank {self.peer} within {timeout_s:g} s")
            msg = self._mine(got[1], expect)
            if msg is not None:
                return msg

    def poll(self) -> dict[str, Any] | None:
        while True:
            got = self.box.take(self.peer, TAG_CONV, MAX_MESSAGE_BYTES)
            if got is None:
                return None
            msg = self._mine(got[1], None)
            if msg is not None:
                return msg


# ---- the run ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Plan:
    """What every rank is told on its command line (all ranks get the same)."""

    schedule_args: tuple[str, int, int]          # pattern, partners (sampled), seed
    sizes: tuple[int, ...]
    devices: tuple[str, ...] = ()                # --device list: a rank takes [local rank % len]
    ib_port: int | None = None
    gid_index: int | None = None
    join_s: float = 600.0                        # the first rendezvous (Python start-up of every rank)
    answer_s: float = 30.0                       # a far end's answer within a conversation
    step_s: float = 120.0                        # the most one step may take, set-up included


@dataclass
class PairResult:
    """One pair of one step, as rank 0 receives it."""

    phase: int
    round: int
    size: int
    initiator: int
    target: int
    point: dict[str, Any] | None                 # PointResult.as_dict() of the initiator
    error: str | None
    finished: str | None = None                  # ISO time the initiator finished


@dataclass
class Job:
    """What a rank knows once the ranks have joined."""

    run: str
    started: str
    rank: int
    size: int
    schedule: Schedule
    hosts: dict[int, str]
    local_ranks: dict[int, int]
    devices: dict[int, str] = field(default_factory=dict)   # known at rank 0 from the arrivals
    provenance: dict[int, dict[str, Any]] = field(default_factory=dict)
    gone: set[int] = field(default_factory=set)
    failures: list[str] = field(default_factory=list)        # this rank's failed pairs, one sentence each
    pairs_taken: int = 0                                     # pairs this rank took part in
    pairs_failed: int = 0                                    # rank 0: pairs of the run that failed
    partial_reason: str | None = None                        # told by rank 0 at the end

    steps: list[tuple[int, int]] = field(default_factory=list)   # (round, size) of each step

    def plan_steps(self, sizes: tuple[int, ...]) -> None:
        self.steps = [(rnd, size) for rnd in range(self.schedule.rounds) for size in sizes]

    def provenance_of(self, rank: int) -> dict[str, Any]:
        """A rank's host's provenance (collected by the first rank on that host)."""
        if rank in self.provenance:
            return self.provenance[rank]
        host = self.hosts.get(rank)
        first = min((r for r, h in self.hosts.items() if h == host and r in self.provenance), default=None)
        return self.provenance[first] if first is not None else {}


def active_devices() -> list[str]:
    """This host's RDMA devices with an ACTIVE port, by name."""
    from rig.rdma.devices import discover, list_devices

    found = []
    for name in sorted(list_devices()):
        try:
            discover(name)
        except InputError:
            continue
        found.append(name)
    return found


def rank_device(listed: tuple[str, ...], local_rank: int, active: Callable[[], list[str]] = active_devices) -> str:
    """--device list, or the host's ACTIVE devices, round-robin by local rank."""
    names = list(listed) or active()
    if not names:
        raise InputError("no RDMA device with an ACTIVE port on this host", "bring a link up, or pass --device")
    return names[local_rank % len(names)]


def local_ranks(hosts: dict[int, str]) -> dict[int, int]:
    """Each rank's index among the ranks on its host, by rank."""
    seen: dict[str, int] = {}
    out = {}
    for rank in sorted(hosts):
        out[rank] = seen.get(hosts[rank], 0)
        seen[hosts[rank]] = out[rank] + 1
    return out


class Rank:
    """One rank's part in a run (`run` is the entry point)."""

    def __init__(self, MPI: Any, plan: Plan, workload_for: Callable[[int], Workload],
                 on_result: Callable[[Job, PairResult], None] | None = None,
                 say: Callable[[str], None] = lambda _: None,
                 describe: Callable[[], dict[str, Any]] = dict,
                 serve: Callable[[Any, Any, str | None], dict[str, Any]] | None = None):
        self.MPI, self.plan, self.workload_for = MPI, plan, workload_for
        self.serve = serve                # the target side (conversation, limits, device) -> outcome
        self.on_result, self.say = on_result, say
        self.box = Mailbox(MPI, MPI.COMM_WORLD)
        self.describe = describe          # this host's provenance (asked of one rank per host)
        self.port: Any = None
        self.device: str | None = None
        self.job: Job | None = None
        self.problem = "no RDMA port on this rank"

    @property
    def root(self) -> bool:
        return self.box.rank == 0

    def schedule(self) -> Schedule:
        pattern, partners, seed = self.plan.schedule_args
        return Schedule(pattern, self.box.size, partners, seed)

    # -- phases --------------------------------------------------------------------------------
    def run(self) -> Job:
        """Join, every step, the end. Returns the job (at rank 0 with every rank's provenance);
        raises only for an interrupt or when the coordinator is gone."""
        job = self.job = self._join()
        from rig.rdma.devices import discover

        try:       # a rank without a usable port takes part all the same: its pairs fail, saying why
            self.device = rank_device(self.plan.devices, job.local_ranks[job.rank])
            self.port = discover(self.device, self.plan.ib_port, self.plan.gid_index)
        except InputError as exc:
            self.problem = f"rank {job.rank} has no port: {exc.one_line()}"
        # collected by one rank per host (git and dpkg calls: seconds each in the emulated guest)
        self.provenance = self.describe() if job.local_ranks[job.rank] == 0 else None
        results: list[dict[str, Any]] = []
        job.plan_steps(self.plan.sizes)
        for phase, (rnd, size) in enumerate(job.steps, start=1):
            self._barrier(job, phase, results)
            results = self._step(job, phase, rnd, size)
        self._barrier(job, len(job.steps) + 1, results)
        return job

    def _join(self) -> Job:
        sched = self.schedule()
        host = socket.gethostname()
        mine = {"type": "arrive", "phase": 0, "host": host}
        if not self.root:
            self.box.send(0, TAG_CTRL, mine)
            go = self._wait_go(0, self.plan.join_s + GRACE_S)
            return Job(run=go["run"], started=go["started"], rank=self.box.rank, size=self.box.size, schedule=sched,
                       hosts={int(k): v for k, v in go["hosts"].items()},
                       local_ranks={int(k): v for k, v in go["local_ranks"].items()}, gone=set(go["gone"]))
        arrived = {0: mine}
        deadline = time.monotonic() + self.plan.join_s
        while len(arrived) < self.box.size:
            got = self.box.wait(self.MPI.ANY_SOURCE, TAG_CTRL, MAX_CTRL_BYTES, deadline)
            if got is None:
                break
            msg = _control(got[1])
            if msg["phase"] == 0 and msg["type"] == "arrive":
                arrived[got[0]] = msg
        hosts = {r: str(m.get("host", "?")) for r, m in arrived.items()}
        gone = sorted(set(range(self.box.size)) - set(arrived))
        job = Job(run=uuid.uuid4().hex, started=_now(), rank=0, size=self.box.size, schedule=sched, hosts=hosts,
                  local_ranks=local_ranks(hosts), gone=set(gone))
        if gone:
            self.say(f"ranks {', '.join(map(str, gone))} did not join within {self.plan.join_s:g} s; going on without them")
        go = {"type": "go", "phase": 0, "run": job.run, "started": job.started, "hosts": hosts,
              "local_ranks": job.local_ranks, "gone": gone}
        for r in arrived:
            if r != 0:
                self.box.send(r, TAG_CTRL, go)
        return job

    def _wait_go(self, phase: int, seconds: float) -> dict[str, Any]:
        deadline = time.monotonic() + seconds
        while True:
            got = self.box.wait(0, TAG_CTRL, MAX_CTRL_BYTES, deadline)
            if got is None:
                raise PeerGone(f"no word from rank 0 (the coordinator) within {seconds:g} s")
            msg = _control(got[1])
            if msg["type"] == "end" or (msg["type"] == "go" and msg["phase"] == phase):
                return msg

    def _barrier(self, job: Job, phase: int, results: list[dict[str, Any]]) -> None:
        """Report the last step's results, wait until rank 0 releases the next (or ends)."""
        last = phase == len(job.steps) + 1
        arrive = {"type": "arrive", "phase": phase, "results": results, "device": self.device}
        if phase == 1 and self.provenance is not None:
            arrive["provenance"] = self.provenance
        if not self.root:
            self.box.send(0, TAG_CTRL, arrive)
            msg = self._wait_go(phase, 2 * self.plan.step_s + GRACE_S)
            job.gone |= set(msg.get("gone", []))
            if msg["type"] == "end":
                job.partial_reason = msg.get("partial_reason")
            return
        job.devices.setdefault(0, self.device or "?")
        if phase == 1:
            job.provenance[0] = self.provenance or {}
        reports = {0: results}
        blamed = _blamed(results)
        deadline = time.monotonic() + (self.plan.join_s if phase == 1 else self.plan.step_s)
        waiting = set(range(1, job.size)) - job.gone
        while waiting:
            if waiting <= blamed:         # each missing rank lost its pair already: a short grace, no more
                deadline = min(deadline, time.monotonic() + GRACE_S)
            got = self.box.wait(self.MPI.ANY_SOURCE, TAG_CTRL, MAX_CTRL_BYTES,
                                min(deadline, time.monotonic() + 1.0))
            if got is None:
                if time.monotonic() >= deadline:
                    break
                continue
            src, msg = got[0], _control(got[1])
            if msg["type"] == "arrive" and msg["phase"] == phase and src in waiting:
                waiting.discard(src)
                reports[src] = msg.get("results") or []
                blamed |= _blamed(reports[src])
                if msg.get("device"):
                    job.devices[src] = str(msg["device"])
                if isinstance(msg.get("provenance"), dict):
                    job.provenance[src] = msg["provenance"]
        if waiting:
            job.gone |= waiting
            self.say(f"rank(s) {', '.join(map(str, sorted(waiting)))} gone (no report within the step's limit); "
                     "their pairs are skipped")
        if phase > 1:
            self._gather(job, phase - 1, reports)
        if last:
            job.partial_reason = self._partial_reason(job)
            out = {"type": "end", "phase": phase, "gone": sorted(job.gone), "partial_reason": job.partial_reason}
        else:
            out = {"type": "go", "phase": phase, "gone": sorted(job.gone)}
            rnd, size = job.steps[phase - 1]
            self.say(f"step {phase}/{len(job.steps)}: round {rnd + 1}/{job.schedule.rounds}, {size} B, "
                     f"{len(job.schedule.round_pairs(rnd))} pair(s) at once")
        for r in range(1, job.size):
            if r not in job.gone:
                self.box.send(r, TAG_CTRL, out)

    def _gather(self, job: Job, phase: int, reports: dict[int, list]) -> None:
        """The results of step `phase` from every report: one PairResult per pair of the round."""
        rnd, size = job.steps[phase - 1]
        rows: dict[tuple[int, int], dict[str, Any]] = {}
        for src, items in reports.items():
            for row in items:
                key = (int(row["initiator"]), int(row["target"]))
                if src == key[0] or key not in rows:      # the initiator's word wins
                    rows[key] = row
        for i, t in job.schedule.round_pairs(rnd):
            row = rows.get((i, t))
            if row is None:
                gone = [r for r in (i, t) if r in job.gone]
                why = f"rank {gone[0]} gone" if gone else "neither rank reported the pair"
                result = PairResult(phase, rnd, size, i, t, None, why)
            else:
                result = PairResult(phase, rnd, size, i, t, row.get("point"), row.get("error"), row.get("finished"))
            job.pairs_failed += result.error is not None
            if self.on_result is not None:
                self.on_result(job, result)

    @staticmethod
    def _partial_reason(job: Job) -> str | None:
        parts = [f"rank(s) {', '.join(map(str, sorted(job.gone)))} gone"] if job.gone else []
        if job.pairs_failed:
            parts.append(f"{job.pairs_failed} pair(s) failed")
        return ", ".join(parts) or None

    def _step(self, job: Job, phase: int, rnd: int, size: int) -> list[dict[str, Any]]:
        """This rank's part of one step; rows for rank 0 (one per pair it took part in)."""
        sched = job.schedule
        role = sched.role(job.rank, rnd)
        if role == "idle":
            return []
        peers = sched.clients() if sched.pattern == "incast" and role == "target" else [sched.partner(job.rank, rnd)]
        rows = []
        live = []
        for peer in peers:
            i, t = (job.rank, peer) if role == "initiator" else (peer, job.rank)
            row = {"initiator": i, "target": t, "reporter": job.rank}
            if peer in job.gone:
                row["error"] = f"rank {peer} gone before this step"
                rows.append(row)
            elif self.port is None:
                row["error"] = self.problem
                rows.append(row)
            else:
                live.append((peer, row))
        if role == "initiator":
            for peer, row in live:
                rows.append(self._initiate(job, phase, size, peer, row))
        elif len(live) == 1:
            rows.append(self._serve(job, phase, live[0][0], live[0][1]))
        elif live:
            rows.extend(self._serve_many(job, phase, live))
        job.pairs_taken += len(rows)
        for row in rows:
            if row.get("error"):
                job.failures.append(f"step {phase} pair {row['initiator']}->{row['target']}: {row['error']}")
        return rows

    def _initiate(self, job: Job, phase: int, size: int, peer: int, row: dict[str, Any]) -> dict[str, Any]:
        from rig.launch.peer import PeerError, initiate

        conv = MpiConversation(self.box, peer, phase)
        try:
            point = initiate(self.workload_for(size), conv, self.port,
                             f"rank {peer} ({job.hosts.get(peer, '?')})", self.plan.answer_s)
        except PeerError as exc:
            row["error"] = str(exc)
        except Exception as exc:     # a verbs or integrity failure ends this pair, not the rank
            row["error"] = f"{exc.__class__.__name__}: {exc}"
        else:
            row["point"] = point.as_dict()
        row["finished"] = _now()
        return row

    def _serve(self, job: Job, phase: int, peer: int, row: dict[str, Any]) -> dict[str, Any]:
        from rig.launch.target import Limits, TargetSession

        a = self.plan.answer_s
        limits = Limits(hello_s=a + SETUP_S, start_s=a, silence_s=max(10.0, a), run_s=self.plan.step_s)
        conv = MpiConversation(self.box, peer, phase)
        if self.serve is not None:
            outcome = self.serve(conv, limits, self.device)
        else:
            outcome = TargetSession(conv, limits, self.device, self.plan.ib_port, self.plan.gid_index).run()
        if outcome.get("result") != "ok":
            row["error"] = f"target side: {outcome.get('error')}"
        return row

    def _serve_many(self, job: Job, phase: int, live: list[tuple[int, dict[str, Any]]]) -> list[dict[str, Any]]:
        """An incast server: one session per client, each in its own thread (as `rdmarig serve`; an
        SMB Direct session forks its serving processes from its thread)."""
        threads = [threading.Thread(target=self._serve, args=(job, phase, peer, row), daemon=True)
                   for peer, row in live]
        for t in threads:
            t.start()
        for t in threads:
            t.join(self.plan.step_s + GRACE_S)
        return [row for _, row in live]

    def close(self) -> None:
        self.box.flush(FLUSH_S)


def _blamed(rows: list[dict[str, Any]]) -> set[int]:
    """The partners in the pairs a rank reported lost (the other rank of each failed pair)."""
    return {row["target"] if row["initiator"] == row.get("reporter") else row["initiator"]
            for row in rows if row.get("error")}


def _now() -> str:
    import datetime as _dt
    return _dt.datetime.now(_dt.timezone.utc).isoformat()

