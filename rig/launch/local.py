"""Both ends in this process: loopback on one device, or across two local devices (the target
on --peer-device: rxe0 -> rxe1 crosses the veth), QPs moved by hand or through rdma_cm."""

from __future__ import annotations

from dataclasses import dataclass

from rig.launch import PointResult, Workload
from rig.rdma import hw_counters
from rig.rdma.devices import PortInfo, discover
from rig.rdma.player import Player, PlayerConfig


@dataclass(frozen=True)
class LocalEnds:
    device: str | None = None
    port: int | None = None
    gid_index: int | None = None
    peer_device: str | None = None
    peer_gid_index: int | None = None
    rdma_cm: bool = False

    def describe(self) -> str:
        return "loopback via rdma_cm" if self.rdma_cm else "loopback"


def loopback(cfg: PlayerConfig, device: str | None = None, peer_device: str | None = None,
             port: int | None = None, gid_index: int | None = None,
             peer_gid_index: int | None = None, peer_cfg: PlayerConfig | None = None,
             player_class: type[Player] = Player) -> tuple[Player, Player]:
    """Two connected players in this process: (initiator, target).

    Without `peer_device` both sit on the same port (rxe0 -> rxe0); with it, the target uses
    that device (rxe0 -> rxe1, which crosses the wire / the veth).
    """
    here: PortInfo = discover(device, port, gid_index)
    there = here if peer_device is None and peer_gid_index is None else \
        discover(peer_device or here.device, None, peer_gid_index)
    a = player_class(here, cfg)
    try:
        b = Player(there, peer_cfg or cfg)
    except BaseException:
        a.close()
        raise
    try:
        a.connect(b.endpoint())
        b.connect(a.endpoint())
    except BaseException:
        a.close()
        b.close()
        raise
    return a, b


def connect(ends: LocalEnds, cfg: PlayerConfig, peer_cfg: PlayerConfig | None = None,
            player_class: type[Player] = Player) -> tuple[Player, Player]:
    if ends.rdma_cm:
        from rig.rdma.cm import loopback_rdma_cm
        if peer_cfg is not None and peer_cfg != cfg:
            raise ValueError("rdma_cm loopback builds both players alike")
        return loopback_rdma_cm(cfg, ends.device, ends.peer_device, ends.port, ends.gid_index, ends.peer_gid_index)
    return loopback(cfg, ends.device, ends.peer_device, ends.port, ends.gid_index, ends.peer_gid_index, peer_cfg,
                    player_class)


def run(workload: Workload, ends: LocalEnds) -> PointResult:
    """Connect both ends here, run the workload on them, release everything."""
    cfg_a, cfg_b = workload.configs()
    a, b = connect(ends, cfg_a, cfg_b, getattr(workload, "player_class", Player))
    try:
        before = hw_counters.snapshot()
        measured = workload.run_local(a, b)
        moved = hw_counters.delta(before, hw_counters.snapshot())
        summary, samples = workload.summarize(measured.raw, None)
        summary["cpu_scope"] = workload.cpu_scope("local")
        if moved:
            summary["rdma_hw_counters"] = moved
        return PointResult(params=workload.params(), summary=summary, samples=samples,
                           integrity=measured.integrity,
                           ports={"local": a.port.as_dict(), "remote": b.port.as_dict()},
                           cpu={"local": measured.raw.cpu, "remote": None},
                           cpu_accounting={"local": measured.raw.cpu_note})
    finally:
        a.close()
        b.close()
