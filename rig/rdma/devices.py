"""RDMA devices, ports and GIDs: which port a run uses and what it looks like.

No verbs objects outlive a call here: a Context is opened to query and closed again. The Player
(rig.rdma.player) owns the resources of a run.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from rig.rdma import compat
from scenarios.errors import InputError

# Reading a GID entry costs a sysfs read; under TCG emulation scanning a full table takes ~90 s.
GID_SCAN_ENTRIES = 8
SYSFS_IB = "/sys/class/infiniband"
GUEST_HINT = "no RDMA here? try the soft-RoCE guest: rdmarig guest run -- rdmarig measure verbs ..."


@dataclass(frozen=True)
class PortInfo:
    device: str
    port: int
    state: str
    link_layer: str
    mtu_bytes: int
    mtu_enum: int
    gid_index: int
    gid: str
    gid_type: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def list_devices() -> list[str]:
    V = compat.load()
    try:
        devices = V.get_device_list()
    except V.PyverbsError:          # rdma-core raises when the kernel has no RDMA subsystem at all
        return []
    return [d.name.decode() if isinstance(d.name, bytes) else str(d.name) for d in devices]


def _mtu_bytes(mtu_enum: int) -> int:
    return 128 << int(mtu_enum)     # IBV_MTU_256 = 1 ... IBV_MTU_4096 = 5


def _gid_type(device: str, port: int, index: int) -> str:
    try:
        with open(f"{SYSFS_IB}/{device}/ports/{port}/gid_attrs/types/{index}") as f:
            return f.read().strip()
    except OSError:
        return "unknown"


def _is_ipv4_mapped(gid: str) -> bool:
    return gid.replace(":", "").lower().startswith("00000000000000000000ffff")


def _port_state_name(V: compat.Verbs, state: int) -> str:
    for name in ("IBV_PORT_ACTIVE", "IBV_PORT_DOWN", "IBV_PORT_INIT", "IBV_PORT_ARMED"):
        if getattr(V.e, name, None) == state:
            return name[len("IBV_PORT_"):]
    return str(state)


def port_gids(ctx: Any, device: str, port: int, entries: int = GID_SCAN_ENTRIES) -> list[dict[str, Any]]:
    """The first `entries` GID table entries (only non-zero ones)."""
    V = compat.load()
    out = []
    for index in range(entries):
        try:
            gid = str(ctx.query_gid(port, index).gid)
        except V.PyverbsError:
            break
        if gid.replace(":", "").strip("0") == "":
            continue
        out.append({"index": index, "gid": gid, "type": _gid_type(device, port, index),
                    "ipv4_mapped": _is_ipv4_mapped(gid)})
    return out


def describe_device(device: str, gid_entries: int = GID_SCAN_ENTRIES) -> dict[str, Any]:
    """Ports, states, MTUs and the first GIDs of one device (for selftest and provenance)."""
    V = compat.load()
    ctx = V.Context(name=device)
    try:
        nports = ctx.query_device().phys_port_cnt
        ports = []
        for p in range(1, nports + 1):
            attr = ctx.query_port(p)
            ports.append({"port": p, "state": _port_state_name(V, attr.state),
                          "mtu_bytes": _mtu_bytes(attr.active_mtu),
                          "link_layer": "Ethernet" if attr.link_layer == V.e.IBV_LINK_LAYER_ETHERNET else "InfiniBand",
                          "gids": port_gids(ctx, device, p, gid_entries)})
        return {"device": device, "ports": ports}
    finally:
        ctx.close()


def discover(device: str | None = None, port: int | None = None, gid_index: int | None = None) -> PortInfo:
    """The port to use: the named one, or the first ACTIVE port of the first device that has one.

    GID: the given index, else the first RoCE v2 entry holding an IPv4-mapped address, else the
    first IPv4-mapped one, else the first non-zero one (InfiniBand).
    """
    V = compat.load()
    names = list_devices()
    if not names:
        raise InputError("no RDMA device found (ibv_get_device_list is empty)", GUEST_HINT)
    if device is not None and device not in names:
        raise InputError(f"RDMA device {device!r} not found (present: {', '.join(names)})",
                         "pick one of those with --device")
    for name in [device] if device else names:
        ctx = V.Context(name=name)
        try:
            nports = ctx.query_device().phys_port_cnt
            if port is not None and not 1 <= port <= nports:
                raise InputError(f"{name} has ports 1..{nports}, not {port}", "pass a valid --port")
            for p in [port] if port else range(1, nports + 1):
                attr = ctx.query_port(p)
                if attr.state != V.e.IBV_PORT_ACTIVE:
                    if port is not None or device is not None and nports == 1:
                        raise InputError(f"{name} port {p} is {_port_state_name(V, attr.state)}, not ACTIVE",
                                         "bring the link up (ip link set <netdev> up) or pick another port")
                    continue
                ll = "Ethernet" if attr.link_layer == V.e.IBV_LINK_LAYER_ETHERNET else "InfiniBand"
                gidx, gid, gtype = _pick_gid(V, ctx, name, p, gid_index)
                return PortInfo(device=name, port=p, state="ACTIVE", link_layer=ll,
                                mtu_bytes=_mtu_bytes(attr.active_mtu), mtu_enum=int(attr.active_mtu),
                                gid_index=gidx, gid=gid, gid_type=gtype)
        finally:
            ctx.close()
    raise InputError(f"no ACTIVE port on {device or ', '.join(names)}",
                     "bring a link up (ip link set <netdev> up; rdma link show)")


def _pick_gid(V: compat.Verbs, ctx: Any, device: str, port: int, gid_index: int | None) -> tuple[int, str, str]:
    if gid_index is not None:
        try:
            gid = str(ctx.query_gid(port, gid_index).gid)
        except V.PyverbsError as exc:
            raise InputError(f"{device} port {port} has no GID index {gid_index} ({exc})",
                             "list them with `python -m rig.rdma.selftest` or ibv_devinfo -v") from exc
        if gid.replace(":", "").strip("0") == "":
            raise InputError(f"{device} port {port} GID index {gid_index} is empty", "pick another --gid-index")
        return gid_index, gid, _gid_type(device, port, gid_index)
    gids = port_gids(ctx, device, port)
    if not gids:
        raise InputError(f"{device} port {port} has no GID in its first {GID_SCAN_ENTRIES} entries",
                         "give the netdev an IPv4 address, or pass --gid-index")
    for want in (lambda g: g["ipv4_mapped"] and "v2" in g["type"].lower(), lambda g: g["ipv4_mapped"],
                 lambda g: True):
        for g in gids:
            if want(g):
                return g["index"], g["gid"], g["type"]
    raise AssertionError("unreachable")
