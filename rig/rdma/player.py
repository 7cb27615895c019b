"""One "player": the verbs resources of one end of a run (Context, PD, MRs, CQs, RC QPs).

A Player builds its resources in overridable `create_*` steps (the pattern of rdma-core's
tests/base.py), so a test or a variant (e.g. a different access mask, a wrong rkey) overrides
one step instead of copying the set-up.

Memory: the Player's own MR holds `slots` message-sized slots per QP (what the bandwidth loops
use). A flow registers more with `register` (any address: a message ring, a data buffer, a file
mapped read-only) or `register_buffer` (an mmap it hands over); each becomes a `Region`, closed
with the Player. Players may share a protection domain (`parent=`): N connections, each with its
own QP and CQs (one serving thread each), address one region registered once.
"""

from __future__ import annotations

import ctypes
import resource
import secrets
from dataclasses import dataclass, field
from typing import Any

from rig.rdma import compat
from rig.rdma.devices import PortInfo
from scenarios.errors import InputError
from scenarios.units import format_size

CAP_IPC_LOCK = 14


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


# ---- registered memory beyond the slots ------------------------------------------------------

@dataclass
class Region:
    """Registered memory at `addr`: lkey for local SGEs, rkey for the peer's RDMA to it."""

    addr: int
    length: int
    mr: Any = field(repr=False)
    keep: Any = field(default=None, repr=False)     # what keeps the memory mapped (closed after the MR)

    @property
    def lkey(self) -> int:
        return int(self.mr.lkey)

    @property
    def rkey(self) -> int:
        return int(self.mr.rkey)

    def view(self, offset: int = 0, length: int | None = None) -> Any:
        """A writable ctypes view of the bytes (do not keep it past close())."""
        length = self.length - offset if length is None else length
        if offset < 0 or offset + length > self.length:
            raise ValueError(f"bytes {offset}..{offset + length} outside the {self.length}-byte region")
        return (ctypes.c_char * length).from_address(self.addr + offset)

    def read(self, offset: int = 0, length: int | None = None) -> bytes:
        return bytes(self.view(offset, length))

    def close(self) -> None:
        if self.mr is not None:
            self.mr.close()
            self.mr = None
        if self.keep is not None and hasattr(self.keep, "close"):
            self.keep.close()
        self.keep = None


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
    max_send_sge: int = 1
    max_recv_sge: int = 1

    @property
    def mr_bytes(self) -> int:
        return self.msg_bytes * self.slots * self.num_qps


class Player:
    """Context, PD, one MR (all QPs' slots), a send CQ, a receive CQ and `num_qps` RC QPs.

    With `parent`, the context and PD are the parent's (shared, not closed here): close the
    children before the parent."""

    def __init__(self, port: PortInfo, cfg: PlayerConfig, parent: "Player | None" = None):
        self.V = compat.load()
        self.port, self.cfg, self.parent = port, cfg, parent
        self.ctx = self.pd = self.mr = self.send_cq = self.recv_cq = None
        self.qps: list[Any] = []
        self.psns: list[int] = []
        self.regions: list[Region] = []
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
        if self.parent is not None:
            self.ctx, self.dev_attr = self.parent.ctx, self.parent.dev_attr
        else:
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
        self.pd = self.parent.pd if self.parent is not None else self.V.PD(self.ctx)

    def access_flags(self) -> int:
        e = self.V.e
        return e.IBV_ACCESS_LOCAL_WRITE | e.IBV_ACCESS_REMOTE_WRITE | e.IBV_ACCESS_REMOTE_READ

    def create_mr(self) -> None:
        check_memlock(self.cfg.mr_bytes)
        try:
            self.mr = self.V.MR(self.pd, self.cfg.mr_bytes, self.access_flags())
        except self.V.PyverbsRDMAError as exc:
            self._registration_failed(self.cfg.mr_bytes, exc)

    def _registration_failed(self, nbytes: int, exc: Exception) -> None:
        if getattr(exc, "error_code", None) in (12, 1) or "Cannot allocate" in str(exc):
            soft = resource.getrlimit(resource.RLIMIT_MEMLOCK)[0]
            raise InputError(f"registering {format_size(nbytes)} failed ({exc}); "
                             f"RLIMIT_MEMLOCK is {soft if soft != resource.RLIM_INFINITY else 'unlimited'}",
                             "raise it with `ulimit -l unlimited` or use a smaller --size") from exc
        raise exc

    def cq_entries(self) -> int:
        return self.cfg.cq_depth or max(64, self.cfg.num_qps * max(self.cfg.tx_depth, self.cfg.rx_depth))

    def create_cqs(self) -> None:
        self.send_cq = self.V.CQ(self.ctx, self.cq_entries())
        self.recv_cq = self.V.CQ(self.ctx, self.cq_entries())

    def qp_init_attr(self) -> Any:
        cap = self.V.QPCap(max_send_wr=self.cfg.tx_depth, max_recv_wr=self.cfg.rx_depth,
                           max_send_sge=self.cfg.max_send_sge, max_recv_sge=self.cfg.max_recv_sge,
                           max_inline_data=self.cfg.max_inline_bytes)
        return self.V.QPInitAttr(qp_type=self.V.e.IBV_QPT_RC, scq=self.send_cq, rcq=self.recv_cq,
                                 cap=cap, sq_sig_all=0)

    def create_qps(self) -> None:
        for _ in range(self.cfg.num_qps):
            self.qps.append(self.V.QP(self.pd, self.qp_init_attr()))
            self.psns.append(secrets.randbelow(1 << 24))

    # ---- more registered memory (flows) -------------------------------------------------------

    def register(self, addr: int, length: int, access: int, keep: Any = None) -> Region:
        """Register `length` bytes at `addr` (memory this process mapped) with `access`
        (IBV_ACCESS_* flags; 0 = local read only, which a read-only file mapping needs)."""
        check_memlock(length)
        try:
            mr = self.V.MR(self.pd, length, access, address=addr)
        except self.V.PyverbsRDMAError as exc:
            self._registration_failed(length, exc)
        region = Region(addr, length, mr, keep)
        self.regions.append(region)
        return region

    def register_buffer(self, buf: Any, access: int | None = None) -> Region:
        """Register a page-aligned buffer (an mmap: rig.copy.buffers.aligned_buffer, or a file
        mapped with mmap.PROT_READ) for its whole length; the region closes it after the MR.

        A file as an RDMA source: map it MAP_PRIVATE + PROT_READ and register with access 0. The
        guest's 6.1 kernel refuses (EFAULT) to pin a read-only MAP_SHARED mapping whatever the
        access flags; a private read-only mapping maps the same page-cache pages, nothing copied."""
        from rig.copy.buffers import address_of
        return self.register(address_of(buf), len(buf), self.access_flags() if access is None else access, keep=buf)

    def alloc(self, length: int, access: int | None = None) -> Region:
        """A fresh page-aligned, zeroed buffer of `length` bytes, registered (default access: local
        write, remote read and write)."""
        from rig.copy.buffers import aligned_buffer
        return self.register_buffer(aligned_buffer(length), access)

    # ---- addresses of the slots -----------------------------------------------------------------
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
        # children before parents: QPs, CQs, regions, MR, then PD and context unless shared
        for qp in self.qps:
            qp.close()
        self.qps = []
        for region in self.regions:
            region.close()
        self.regions = []
        shared = self.parent is not None
        for obj in (self.send_cq, self.recv_cq, self.mr) + (() if shared else (self.pd, self.ctx)):
            if obj is not None:
                obj.close()
        self.send_cq = self.recv_cq = self.mr = self.pd = self.ctx = None

    def __enter__(self) -> "Player":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()



# ---- a player that can sleep until something completes --------------------------------------

EVENT_FD_TARGET = "anon_inode:[infinibandevent]"


def _event_fds() -> set[int]:
    """This process's open completion-channel descriptors."""
    import os
    found = set()
    for name in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{name}") == EVENT_FD_TARGET:
                found.add(int(name))
        except OSError:
            pass
    return found


class EventPlayer(Player):
    """A Player whose send and receive CQs each raise completion events on a channel of their own,
    so a thread with nothing to poll can sleep: `arm()`, poll once more (what completed before
    arming raises no event), select() on `event_fds()` (with any other descriptor it waits for),
    then `consume(fd)` for each that woke it. pyverbs keeps a channel's descriptor to itself; it
    is found as the channel descriptor that appeared when the channel was made (`event_fds()` is
    empty if it was not: the caller then naps instead)."""

    def create_cqs(self) -> None:
        comp_channel = self.V.CompChannel
        self.events: dict[int, tuple[Any, Any]] = {}
        cqs = []
        for _ in ("send", "recv"):
            before = _event_fds()
            channel = comp_channel(self.ctx)
            new = _event_fds() - before
            cq = self.V.CQ(self.ctx, self.cq_entries(), None, channel, 0)
            cqs.append((cq, channel))
            if len(new) == 1:
                self.events[new.pop()] = (channel, cq)
        (self.send_cq, self.send_channel), (self.recv_cq, self.recv_channel) = cqs
        if len(self.events) != 2:
            self.events = {}

    def event_fds(self) -> list[int]:
        return list(self.events)

    def send_event_fd(self) -> int | None:
        """The send CQ's channel descriptor (None where it was not found)."""
        return next((fd for fd, (_channel, cq) in self.events.items() if cq is self.send_cq), None)

    def arm(self) -> None:
        """Ask for an event at the next completion of either CQ."""
        self.send_cq.req_notify()
        self.recv_cq.req_notify()

    def consume(self, fd: int) -> None:
        """Read (and acknowledge) the event that made `fd` readable."""
        channel, cq = self.events[fd]
        channel.get_cq_event(cq)
        cq.ack_events(1)

    def close(self) -> None:
        channels = [getattr(self, "send_channel", None), getattr(self, "recv_channel", None)]
        super().close()
        for channel in channels:
            if channel is not None:
                channel.close()
