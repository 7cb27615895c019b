"""Loopback connection set-up through rdma_cm (librdmacm) instead of hand-made QP attributes.

Both players stay in this process. The target listens on its port's IPv4 address (taken from its
IPv4-mapped GID); the initiator resolves address and route, connects one rdma_cm id per QP, and
both sides move their own ("external") QPs through the states with the attributes rdma_cm hands
out (rdma_init_qp_attr). One thread drives both ends: connect -> CONNECT_REQUEST on the target
-> accept -> CONNECT_RESPONSE on the initiator -> establish -> ESTABLISHED on the target.

pyverbs gives no file descriptor for an event channel, so each wait runs in a helper thread
bounded by a time limit: a stuck exchange becomes an error, not a hang.
"""

from __future__ import annotations

import ipaddress
import random
import threading
from typing import Any

from rig.rdma import compat
from rig.rdma.devices import PortInfo, discover
from rig.rdma.player import Player, PlayerConfig
from scenarios.errors import InputError

EVENT_TIMEOUT_S = 20.0


class CmLink:
    """The rdma_cm ids and event channels of a connection; closed after the players' QPs."""

    def __init__(self) -> None:
        self.ids: list[Any] = []
        self.channels: list[Any] = []

    def close(self) -> None:
        # ids before the channels their events come through, newest id first
        for obj in list(reversed(self.ids)) + self.channels:
            try:
                obj.close()
            except Exception:           # noqa: BLE001 - best effort while tearing down
                pass
        self.ids, self.channels = [], []


class CmPlayer(Player):
    """A Player (own context, PD, QPs) whose QPs were connected through rdma_cm.

    The QPs live in a context of our own on the same device: rdma_cm only hands out the QP
    attributes (rdma_init_qp_attr) and exchanges QP numbers, so the verbs objects keep their
    usual lifetime and librdmacm's context is never touched by us.
    """

    cm_link: CmLink | None = None

    def close(self) -> None:
        super().close()
        if self.cm_link is not None:
            self.cm_link.close()
            self.cm_link = None


def ipv4_of(port: PortInfo) -> str:
    """The IPv4 address inside an IPv4-mapped GID."""
    raw = bytes.fromhex(port.gid.replace(":", ""))
    if raw[:12] != bytes(10) + b"\xff\xff":
        raise InputError(f"{port.device} GID index {port.gid_index} ({port.gid}) holds no IPv4 address; "
                         "rdma_cm needs the netdev's IP", "give the netdev an IPv4 address or drop --rdma-cm")
    return str(ipaddress.IPv4Address(raw[12:]))


def _wait_event(CM: compat.CM, channel: Any, expected: int, what: str) -> Any:
    box: dict[str, Any] = {}

    def get() -> None:
        try:
            box["ev"] = CM.CMEvent(channel)
        except Exception as exc:          # noqa: BLE001 - handed to the caller below
            box["err"] = exc

    t = threading.Thread(target=get, daemon=True)
    t.start()
    t.join(EVENT_TIMEOUT_S)
    if t.is_alive():
        raise TimeoutError(f"rdma_cm: no {what} event within {EVENT_TIMEOUT_S:g} s")
    if "err" in box:
        raise RuntimeError(f"rdma_cm: waiting for {what} failed: {box['err']}")
    ev = box["ev"]
    if ev.event_type != expected:
        name = ev.event_str() if hasattr(ev, "event_str") else str(ev.event_type)
        ev.ack_cm_event()
        raise RuntimeError(f"rdma_cm: expected {what}, got {name}")
    return ev


def _move(qp: Any, cm_id: Any, state: int, access: int | None = None) -> Any:
    attr, _mask = cm_id.init_qp_attr(state)
    if access is not None:
        attr.qp_access_flags = access
    return attr


def loopback_rdma_cm(cfg: PlayerConfig, device: str | None = None, peer_device: str | None = None,
                     port: int | None = None, gid_index: int | None = None,
                     peer_gid_index: int | None = None) -> tuple[Player, Player]:
    """(initiator, target) connected through rdma_cm; see the module docstring."""
    V, CM = compat.load(), compat.load_cm()
    e, ce = V.e, CM.e
    here = discover(device, port, gid_index)
    there = here if peer_device is None and peer_gid_index is None else \
        discover(peer_device or here.device, None, peer_gid_index)
    ip_a, ip_b = ipv4_of(here), ipv4_of(there)
    service = str(random.randint(20000, 60000))
    rd = 16

    link = CmLink()
    a = b = None
    try:
        ch_b = CM.CMEventChannel()
        link.channels.append(ch_b)
        listen = CM.CMID(creator=ch_b)
        link.ids.append(listen)
        listen.bind_addr(CM.AddrInfo(src=ip_b, src_service=service, port_space=ce.RDMA_PS_TCP,
                                     flags=ce.RAI_PASSIVE))
        listen.listen()
        ch_a = CM.CMEventChannel()
        link.channels.append(ch_a)
        ids_a = []
        for _ in range(cfg.num_qps):
            cm_id = CM.CMID(creator=ch_a)
            ids_a.append(cm_id)
            link.ids.append(cm_id)
            cm_id.resolve_addr(CM.AddrInfo(src=ip_a, dst=ip_b, dst_service=service, port_space=ce.RDMA_PS_TCP))
            _wait_event(CM, ch_a, ce.RDMA_CM_EVENT_ADDR_RESOLVED, "ADDR_RESOLVED").ack_cm_event()
            cm_id.resolve_route()
            _wait_event(CM, ch_a, ce.RDMA_CM_EVENT_ROUTE_RESOLVED, "ROUTE_RESOLVED").ack_cm_event()
        a = CmPlayer(here, cfg)
        b = CmPlayer(there, cfg)
        access = a.access_flags()
        for q in range(cfg.num_qps):
            qa, qb = a.qps[q], b.qps[q]
            qa.to_init(_move(qa, ids_a[q], e.IBV_QPS_INIT, access))
            ids_a[q].connect(CM.ConnParam(resources=rd, depth=rd, qp_num=qa.qp_num, retry=7, rnr_retry=7))
            req = _wait_event(CM, ch_b, ce.RDMA_CM_EVENT_CONNECT_REQUEST, "CONNECT_REQUEST")
            conn = CM.CMID(creator=req, listen_id=listen)
            req.ack_cm_event()
            link.ids.append(conn)
            qb.to_init(_move(qb, conn, e.IBV_QPS_INIT, access))
            qb.to_rtr(_move(qb, conn, e.IBV_QPS_RTR))
            qb.to_rts(_move(qb, conn, e.IBV_QPS_RTS))
            conn.accept(CM.ConnParam(resources=rd, depth=rd, qp_num=qb.qp_num, retry=7, rnr_retry=7))
            _wait_event(CM, ch_a, ce.RDMA_CM_EVENT_CONNECT_RESPONSE, "CONNECT_RESPONSE").ack_cm_event()
            qa.to_rtr(_move(qa, ids_a[q], e.IBV_QPS_RTR))
            qa.to_rts(_move(qa, ids_a[q], e.IBV_QPS_RTS))
            ids_a[q].establish()
            _wait_event(CM, ch_b, ce.RDMA_CM_EVENT_ESTABLISHED, "ESTABLISHED").ack_cm_event()
        b.cm_link = link          # closed after both players' QPs (run_point closes a, then b)
        return a, b
    except BaseException as exc:
        for p in (a, b):
            if p is not None:
                p.close()
        link.close()
        if not isinstance(exc, (TimeoutError, RuntimeError, V.PyverbsError)):
            raise
        raise InputError(f"rdma_cm connection {ip_a} -> {ip_b} failed: {exc}",
                         "check the netdevs' addresses and routes, or connect without --rdma-cm") from exc
