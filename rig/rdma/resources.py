"""Verbs resources: device discovery and one "player" (Context, PD, MR, CQs, QPs).

A Player builds its resources in overridable `create_*` steps (the pattern of rdma-core's
tests/base.py), so a test or a variant (e.g. a different access mask, a wrong rkey) overrides
one step instead of copying the set-up.
"""

from __future__ import annotations

import ctypes
import resource
import secrets
from dataclasses import asdict, dataclass
from typing import Any

from rig.rdma import compat
from scenarios.errors import InputError
from scenarios.units import format_size

# Reading a GID entry costs a sysfs read; under TCG emulation scanning a full table takes ~90 s.
GID_SCAN_ENTRIES = 8
SYSFS_IB = "/sys/class/infiniband"
GUEST_HINT = "no RDMA here? try the soft-RoCE guest: rdmarig guest run -- rdmarig measure verbs ..."
CAP_IPC_LOCK = 14


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


# ---- memory-lock limit -------------------------------------------------------------------------

def _has_cap_ipc_lock() -> bool:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("CapEff:"):
                    return bool(int(line.split()[1], 16) >> CAP_IPC_LOCK & 1)
    except OSError:
        pass
    return False


def check_memlock(needed_bytes: int) -> None:
    """InputError when RLIMIT_MEMLOCK cannot pin `needed_bytes` (page-rounded, plus slack for
    queues), before any registration fails with a bare ENOMEM."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_MEMLOCK)
    if soft == resource.RLIM_INFINITY or _has_cap_ipc_lock():
        return
    need = needed_bytes + 4 * 1024 * 1024      # QP/CQ rings are pinned too
    if need > soft:
        kib = -(-need // 1024)
        raise InputError(f"RLIMIT_MEMLOCK is {format_size(soft)} but the memory regions need about "
                         f"{format_size(need)}",
                         f"raise it: `ulimit -l {kib}` (or unlimited) in the shell, or memlock in "
                         f"/etc/security/limits.conf; or use smaller --size/--qps/--tx-depth")


# ---- one player ----------------------------------------------------------------------------

@dataclass
class PlayerConfig:
    msg_bytes: int = 1 << 20
    slots: int = 1                 # message-sized slots per QP in the MR (validation uses several)
    num_qps: int = 1
    tx_depth: int = 128
    rx_depth: int = 512
    max_inline_bytes: int = 0
    cq_depth: int = 0              # 0: enough for every WR of every QP

    @property
    def mr_bytes(self) -> int:
        return self.msg_bytes * self.slots * self.num_qps


class Player:
    """Context, PD, one MR (all QPs' slots), a send CQ, a receive CQ and `num_qps` RC QPs."""

    def __init__(self, port: PortInfo, cfg: PlayerConfig):
        self.V = compat.load()
        self.port, self.cfg = port, cfg
        self.ctx = self.pd = self.mr = self.send_cq = self.recv_cq = None
        self.qps: list[Any] = []
        self.psns: list[int] = []
        try:
            self.create_context()
            self.create_pd()
            self.create_mr()
            self.create_cqs()
            self.create_qps()
        except BaseException:
            self.close()
            raise

    # each step can be overridden
    def create_context(self) -> None:
        self.ctx = self.V.Context(name=self.port.device)
        self.dev_attr = self.ctx.query_device()
        self.check_limits()

    def check_limits(self) -> None:
        """Depths and sizes the device cannot take: one clear line instead of a failed verbs call."""
        a, c, dev = self.dev_attr, self.cfg, self.port.device
        for what, want, limit, opt in (("TX depth", c.tx_depth, a.max_qp_wr, "--tx-depth"),
                                       ("RX depth", c.rx_depth, a.max_qp_wr, "--rx-depth"),
                                       ("QPs", c.num_qps, a.max_qp, "--qps"),
                                       ("CQ entries", self.cq_entries(), a.max_cqe, "--tx-depth/--rx-depth/--qps"),
                                       ("memory region", c.mr_bytes, a.max_mr_size, "--size/--qps")):
            if want > limit:
                raise InputError(f"{dev} allows at most {limit} for the {what}, asked for {want}",
                                 f"lower {opt}")

    def create_pd(self) -> None:
        self.pd = self.V.PD(self.ctx)

    def access_flags(self) -> int:
        e = self.V.e
        return e.IBV_ACCESS_LOCAL_WRITE | e.IBV_ACCESS_REMOTE_WRITE | e.IBV_ACCESS_REMOTE_READ

    def create_mr(self) -> None:
        check_memlock(self.cfg.mr_bytes)
        try:
            self.mr = self.V.MR(self.pd, self.cfg.mr_bytes, self.access_flags())
        except self.V.PyverbsRDMAError as exc:
            if getattr(exc, "error_code", None) in (12, 1) or "Cannot allocate" in str(exc):
                soft = resource.getrlimit(resource.RLIMIT_MEMLOCK)[0]
                raise InputError(f"registering {format_size(self.cfg.mr_bytes)} failed ({exc}); "
                                 f"RLIMIT_MEMLOCK is {soft if soft != resource.RLIM_INFINITY else 'unlimited'}",
                                 "raise it with `ulimit -l unlimited` or use a smaller --size") from exc
            raise

    def cq_entries(self) -> int:
        return self.cfg.cq_depth or max(64, self.cfg.num_qps * max(self.cfg.tx_depth, self.cfg.rx_depth))

    def create_cqs(self) -> None:
        self.send_cq = self.V.CQ(self.ctx, self.cq_entries())
        self.recv_cq = self.V.CQ(self.ctx, self.cq_entries())

    def qp_init_attr(self) -> Any:
        cap = self.V.QPCap(max_send_wr=self.cfg.tx_depth, max_recv_wr=self.cfg.rx_depth, max_send_sge=1,
                           max_recv_sge=1, max_inline_data=self.cfg.max_inline_bytes)
        return self.V.QPInitAttr(qp_type=self.V.e.IBV_QPT_RC, scq=self.send_cq, rcq=self.recv_cq,
                                 cap=cap, sq_sig_all=0)

    def create_qps(self) -> None:
        for _ in range(self.cfg.num_qps):
            self.qps.append(self.V.QP(self.pd, self.qp_init_attr()))
            self.psns.append(secrets.randbelow(1 << 24))

    # addresses of the slots
    def slot_addr(self, qp_index: int, slot: int = 0) -> int:
        return self.mr.buf + (qp_index * self.cfg.slots + slot) * self.cfg.msg_bytes

    def slot_offset(self, qp_index: int, slot: int = 0) -> int:
        return (qp_index * self.cfg.slots + slot) * self.cfg.msg_bytes

    def buffer(self):
        """A numpy view of the whole MR (valid until close())."""
        import numpy as np
        raw = (ctypes.c_uint8 * self.cfg.mr_bytes).from_address(self.mr.buf)
        return np.ctypeslib.as_array(raw)

    def read_bytes(self, offset: int = 0, length: int | None = None) -> bytes:
        length = self.cfg.mr_bytes - offset if length is None else length
        return ctypes.string_at(self.mr.buf + offset, length)

    def write_bytes(self, data: bytes, offset: int = 0) -> None:
        if offset + len(data) > self.cfg.mr_bytes:
            raise ValueError("write past the end of the MR")
        ctypes.memmove(self.mr.buf + offset, data, len(data))

    def endpoint(self) -> dict[str, Any]:
        """What the peer needs to connect to us and to address our memory (JSON-safe)."""
        return {"qpns": [qp.qp_num for qp in self.qps], "psns": list(self.psns), "gid": self.port.gid,
                "mtu_bytes": self.port.mtu_bytes, "rkey": self.mr.rkey, "addr": self.mr.buf,
                "mr_bytes": self.cfg.mr_bytes, "slots": self.cfg.slots, "msg_bytes": self.cfg.msg_bytes,
                "max_dest_rd_atomic": self.max_dest_rd_atomic()}

    def max_dest_rd_atomic(self) -> int:
        return max(1, min(16, self.dev_attr.max_qp_rd_atom))

    def connect(self, remote: dict[str, Any], mtu_bytes: int | None = None) -> None:
        """Move every QP RESET -> INIT -> RTR -> RTS towards the remote's QP of the same index."""
        e = self.V.e
        mtu = min(mtu_bytes or self.port.mtu_bytes, self.port.mtu_bytes, int(remote["mtu_bytes"]))
        mtu_enum = max(1, mtu.bit_length() - 8)             # 256 -> 1 ... 4096 -> 5
        if len(remote["qpns"]) != len(self.qps):
            raise InputError(f"peer has {len(remote['qpns'])} QPs, we have {len(self.qps)}",
                             "use the same --qps on both sides")
        for i, qp in enumerate(self.qps):
            attr = self.V.QPAttr(qp_state=e.IBV_QPS_INIT, port_num=self.port.port, path_mtu=mtu_enum)
            attr.qp_access_flags = self.access_flags()
            attr.dest_qp_num = int(remote["qpns"][i])
            attr.rq_psn = int(remote["psns"][i])
            attr.sq_psn = self.psns[i]
            # RDMA READs in flight per QP: as many as both the device and the responder allow
            attr.max_rd_atomic = max(1, min(16, self.dev_attr.max_qp_init_rd_atom,
                                             int(remote.get("max_dest_rd_atomic", 1))))
            attr.max_dest_rd_atomic = self.max_dest_rd_atomic()
            attr.min_rnr_timer, attr.timeout, attr.retry_cnt, attr.rnr_retry = 12, 14, 7, 7
            gr = self.V.GlobalRoute(dgid=self.V.GID(remote["gid"]), sgid_index=self.port.gid_index, hop_limit=64)
            attr.ah_attr = self.V.AHAttr(port_num=self.port.port, is_global=1, gr=gr)
            qp.to_rts(attr)

    def close(self) -> None:
        # children before parents: QPs, CQs, MR, PD, context
        for qp in self.qps:
            qp.close()
        self.qps = []
        for obj in (self.send_cq, self.recv_cq, self.mr, self.pd, self.ctx):
            if obj is not None:
                obj.close()
        self.send_cq = self.recv_cq = self.mr = self.pd = self.ctx = None

    def __enter__(self) -> "Player":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def rdma_env_info() -> dict[str, Any]:
    V = compat.load()
    return {"pyverbs_api": V.api, "pyverbs_path": V.path}
