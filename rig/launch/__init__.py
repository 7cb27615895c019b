"""Launch: where a run happens and how its two ends meet. One module per place.

    local.py         both ends in this process: loopback on one device, across two local devices
                     (--peer-device), QPs moved by hand or through rdma_cm (--rdma-cm)
    peer.py          the far end is `rdmarig serve` on another host (or in another process):
                     JSON lines over TCP (the messages of rig.rdma.handshake)
    target.py        the far end's side of a conversation (what `serve` runs per session),
                     whatever carries the messages
    conversation.py  what carries them: `Conversation` (send / recv with a time limit / poll);
                     `TcpConversation` today
    mpi.py           ranks started by an MPI launcher (mpirun, srun; mpi4py): a `Mailbox` of JSON
                     messages over comm.Isend / Iprobe (every wait bounded), the handshake as an
                     MPI conversation, a coordinator (rank 0) running the steps of a schedule
                     after a barrier and storing one record per pair as it arrives
    smbd.py          `measure smbd`: the options, the SMB Direct workload, run_point (through peer.py,
                     against a local forked server or `rdmarig serve smbd` elsewhere)
    smbd_target.py   the SMB Direct far end: a serving process per connection, the server
    schedule.py      which ranks meet in which step: pairs, all-pairs (round robin), sampled,
                     incast; pure functions, 10,000 ranks in well under a second

Contract:
- The initiator end runs in this process: it builds its Player, runs the timed loop and returns
  a `PointResult`, the one shape every launcher returns (loopback, peer, MPI alike).
- What runs once the ends are connected is a `Workload` (rig.rdma.measure.VerbsWorkload for
  `measure verbs`; rig.launch.smbd.SmbdWorkload for `measure smbd`, against the sessions of
  rig.launch.smbd_target): the launcher owns connection, rendezvous, lifetime
  and time limits; the workload owns configs, the loop, integrity and the summary. A launcher
  never looks inside a workload's numbers, a workload never opens a socket.
- A far end that is not in this process follows the conversation
      C: hello {run request, endpoint, run_seconds_max}   S: ready {endpoint, ...} | error
      C: start   C: tick (every TICK_S while the loop runs)   C: stop   S: done {cpu, boot_id, ...}
  and bounds every phase by its own limits (rig.launch.target.Limits), never the initiator's.
- CPU is counted per side by rig.accounting.CpuWindow; `PointResult.cpu` holds each side's
  figures and `cpu_accounting` what the windows counted.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Protocol

# a far end hears from the initiator at least this often while the loop runs
TICK_S = 2.0


@dataclass
class PointResult:
    """One measured point, wherever it ran."""

    params: dict[str, Any]
    summary: dict[str, Any]
    samples: dict[str, list[float]]
    integrity: dict[str, Any]
    ports: dict[str, dict[str, Any]]                 # {"local": ..., "remote": ...}
    cpu: dict[str, dict[str, Any] | None]            # {"local": CpuWindow figures, "remote": ... | None}
    cpu_accounting: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Measured:
    """What a workload's run on connected players gives back to the launcher."""

    raw: Any                                         # rig.rdma.traffic.RawRun (or a flow's own)
    integrity: dict[str, Any]


class Workload(Protocol):
    """What runs once the two ends are connected (see the module docstring)."""

    def configs(self) -> tuple[Any, Any]: ...                     # PlayerConfig of (initiator, target)
    def params(self) -> dict[str, Any]: ...                       # the record's params
    def run_local(self, a: Any, b: Any) -> Measured: ...          # both ends in this thread
    def request(self) -> dict[str, Any]: ...                      # what a far target must set up
    def run_seconds_max(self) -> float: ...                       # the most a run may take
    def prepare_initiator(self, player: Any) -> Any: ...          # before `start` (e.g. source data)
    def run_initiator(self, player: Any, remote: dict[str, Any],
                      extra_tick: Callable[[int, float], None] | None) -> Any: ...   # -> RawRun
    def check_far(self, player: Any, prepared: Any, ready: dict[str, Any],
                  done: dict[str, Any]) -> dict[str, Any]: ...    # integrity from the far end's answers
    def summarize(self, raw: Any, far_cpu: dict[str, Any] | None) -> tuple[dict[str, Any], dict[str, Any]]: ...
    def cpu_scope(self, where: str) -> str: ...                   # one line: what the CPU figures cover
    # optional, honoured by peer.initiate: `player_class` (the initiator's Player type, e.g. an
    # EventPlayer that can sleep) and `accept_ready(ready)` (more of the far end's answer than the
    # endpoint: rig.launch.smbd.SmbdWorkload reads the file's size and block checksums there)
