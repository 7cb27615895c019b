"""Connecting players: in-process loopback (one device or two) here; two hosts in rig.rdma.handshake."""

from __future__ import annotations

from rig.rdma.resources import Player, PlayerConfig, PortInfo, discover


def loopback(cfg: PlayerConfig, device: str | None = None, peer_device: str | None = None,
             port: int | None = None, gid_index: int | None = None,
             peer_gid_index: int | None = None, peer_cfg: PlayerConfig | None = None) -> tuple[Player, Player]:
    """Two connected players in this process: (initiator, target).

    Without `peer_device` both sit on the same port (rxe0 -> rxe0); with it, the target uses
    that device (rxe0 -> rxe1, which crosses the wire / the veth).
    """
    here: PortInfo = discover(device, port, gid_index)
    there = here if peer_device is None and peer_gid_index is None else \
        discover(peer_device or here.device, None, peer_gid_index)
    a = Player(here, cfg)
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
