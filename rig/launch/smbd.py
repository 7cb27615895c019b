"""`measure smbd`, one point: the options (each bounded, errors naming the flag), the workload that
runs once the client's QPs are connected to a serving session (rig.launch.smbd_target), and
`run_point`, which hands it to rig.launch.peer (the session on another host, or on this one: a
local server forked for the command, the client on rxe0 and the server on rxe1 when two devices
exist, so the traffic crosses the veth as `measure verbs --peer-device` does).

The workload follows rig.launch.Workload, so any launcher that drives `peer.initiate` (TCP today,
MPI next) runs it; it asks the launcher for one QP per connection and reads the session's `ready`
through `accept_ready` (the file's size and block checksums). Returns data; the CLI prints and
stores it.
"""

from __future__ import annotations

import math
import os
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from rig.flows import smbd
from rig.flows.smbd_serving import COPY_VARIANTS, DEFAULT_ASYNC_WORKERS, READS_IN_FLIGHT, REGISTER_MODES
from rig.launch import PointResult
from rig.launch.smbd_target import DEFAULT_PORT, MAX_BLOCKS, MAX_CONNECTIONS, MAX_IO_BYTES, buffers_for, unpack_crcs
from rig.rdma.handshake import MAX_RUN_SECONDS, ProtocolError, parse_addr
from scenarios.errors import InputError
from scenarios.units import GB, format_size

OPS = ("read", "write")
MIN_IO_BYTES = 4096
DEFAULT_SIZES = [64 << 10 << k for k in range(8)]      # 64 KiB .. 8 MiB
CLIENT_BUDGET_BYTES = 8 << 20                          # registered buffers per client connection (TCG: deep
                                                       # queues only lengthen every I/O's latency)
MIN_IN_FLIGHT = 2
MAX_ASYNC_WORKERS = 256
MAX_IOS = 10**9
MIN_FILE_BYTES, MAX_FILE_BYTES = 4096, 64 << 30
DEFAULT_FILE_BYTES = 64 << 20
MAX_STORED_SAMPLES = 100_000
SLICES = 20


def check_range(flag: str, value: float, lo: float, hi: float, unit: str = "") -> None:
    from rig.rdma.measure import check_range as check
    check(flag, value, lo, hi, unit)


def copies_for(op: str) -> list[str]:
    """The copy variants an operation has: zero-copy is READ only (the file mapping is read-only)."""
    return list(COPY_VARIANTS) if op == "read" else [c for c in COPY_VARIANTS if c != "zero-copy"]


@dataclass
class SmbdOptions:
    op: str = "read"
    sizes: list[int] = field(default_factory=lambda: list(DEFAULT_SIZES))
    copies: list[str] | None = None              # None: every variant the operation has
    register: str = "once"
    connections: int = 2
    credits: int = smbd.SEND_CREDIT_TARGET
    in_flight: int | None = None                 # None: as many as credits and the buffer budget allow
    async_workers: int = DEFAULT_ASYNC_WORKERS
    duration_s: float = 5.0
    ios: int = 0                                 # > 0: this many I/Os per point instead of --duration
    timeout_s: float = 10.0
    device: str | None = None
    port: int | None = None
    gid_index: int | None = None
    peer_device: str | None = None               # loopback: the server's device (default: the second one)
    peer_gid_index: int | None = None
    peer_addr: str | None = None
    file: str | None = None                      # loopback: serve this file (READ) instead of a made one
    file_bytes: int = DEFAULT_FILE_BYTES         # loopback: the made file's size
    serving_cpus: tuple[int, ...] = ()           # loopback: connection i's serving process on CPU [i % len]

    def copy_list(self) -> list[str]:
        return list(self.copies) if self.copies is not None else copies_for(self.op)

    def in_flight_for(self, size: int) -> int:
        if self.in_flight is not None:
            return self.in_flight
        return max(1, min(self.credits, max(MIN_IN_FLIGHT, CLIENT_BUDGET_BYTES // size)))

    def blocks_for(self, size: int) -> int:
        """WRITE: every connection writes its own stripe of blocks, one more than its I/Os in flight."""
        return self.connections * (self.in_flight_for(size) + 1)

    def check(self) -> None:
        """Every option within its range, the combinations that exclude each other: one line
        naming the flag as the user types it."""
        if self.op not in OPS:
            raise InputError(f"--op {self.op!r} is not an SMB2 operation here", "use read or write")
        if self.register not in REGISTER_MODES:
            raise InputError(f"--register {self.register!r} is not a mode", "use once or per-io")
        copies = self.copy_list()
        if not copies:
            raise InputError("--copy names no variant", f"give one or more of {', '.join(COPY_VARIANTS)}")
        for copy in copies:
            if copy not in COPY_VARIANTS:
                raise InputError(f"--copy {copy!r} is not a copy variant", f"use {', '.join(COPY_VARIANTS)}")
        if self.op == "write" and "zero-copy" in copies:
            raise InputError("--copy zero-copy serves READ only (the server's file mapping is read-only)",
                             "use cpu-copy or async-workers with --op write")
        if len(set(copies)) != len(copies):
            raise InputError("--copy names a variant twice", "name each once")
        if not self.sizes:
            raise InputError("--io-size names no size", "give one, a list (64KiB,1MiB) or a range (64KiB..8MiB)")
        for size in self.sizes:
            check_range("--io-size", size, MIN_IO_BYTES, MAX_IO_BYTES, "B")
        check_range("--connections", self.connections, 1, MAX_CONNECTIONS)
        check_range("--credits", self.credits, 1, smbd.RECEIVE_CREDIT_MAX)
        if self.in_flight is not None:
            check_range("--in-flight", self.in_flight, 1, smbd.RECEIVE_CREDIT_MAX)
            if self.in_flight > self.credits:
                raise InputError(f"--in-flight {self.in_flight} exceeds --credits {self.credits}",
                                 "every request in flight holds a credit: raise --credits or lower --in-flight")
        check_range("--async-workers", self.async_workers, 1, MAX_ASYNC_WORKERS)
        check_range("--duration", self.duration_s, 1e-3, MAX_RUN_SECONDS, "s")
        check_range("--ios", self.ios, 0, MAX_IOS)
        check_range("--timeout", self.timeout_s, 0.1, MAX_RUN_SECONDS, "s")
        for name, flag, hi in (("port", "--ib-port", 255), ("gid_index", "--gid-index", 1023),
                               ("peer_gid_index", "--peer-gid-index", 1023)):
            if getattr(self, name) is not None:
                check_range(flag, getattr(self, name), 1 if name == "port" else 0, hi)
        if self.op == "write" and self.connections * (max(self.in_flight_for(s) for s in self.sizes) + 1) > MAX_BLOCKS:
            raise InputError(f"--connections {self.connections} x (--in-flight + 1) exceeds the {MAX_BLOCKS} blocks a "
                             "WRITE run checks", "lower --connections or --in-flight")
        if self.peer_addr:
            if self.peer_device or self.peer_gid_index is not None:
                raise InputError("--peer (another host) and --peer-device/--peer-gid-index (the local server's "
                                 "port) exclude each other", "pick one")
            if self.file is not None:
                raise InputError("--file names the file of a local server; with --peer the server serves its "
                                 "own --file", "drop --file, or drop --peer to serve it here")
            if self.serving_cpus:
                raise InputError("--serving-cpus pins a local server's processes; with --peer the server pins "
                                 "its own", "drop --serving-cpus, and start the server with "
                                 "`rdmarig serve smbd --serving-cpus LIST`")
            try:
                parse_addr(self.peer_addr, DEFAULT_PORT)
            except ValueError as exc:
                raise InputError(f"--peer {self.peer_addr!r}: {exc}", "use HOST or HOST:PORT (port 0..65535)") from None
        else:
            check_range("--file-size", self.file_bytes, MIN_FILE_BYTES, MAX_FILE_BYTES, "B")
            if self.file is not None:
                if self.op == "write":
                    raise InputError("--op write would overwrite --file", "drop --file: loopback WRITEs go to a "
                                     "scratch file made for the run")
                from rig.launch.smbd_target import check_file
                check_file(self.file)

    def max_read_write(self) -> int:
        """A local server's MaxReadWriteSize: ksmbd's default, or the largest I/O asked for."""
        return max(smbd.MAX_READ_WRITE_SIZE, max(self.sizes))


class SmbdWorkload:
    """One point of `measure smbd` (an I/O size and a copy variant) on a connected Player with one
    QP per connection (rig.launch.Workload)."""

    def __init__(self, opts: SmbdOptions, size: int, copy: str, on_tick: Callable[[int, float], None] | None = None,
                 connection: str = "loopback", devices: dict[str, Any] | None = None):
        from rig.flows.smbd_client import ClientPlan
        self.opts, self.size, self.copy, self.on_tick = opts, size, copy, on_tick
        self.connection, self.devices = connection, devices or {}
        self.plan = ClientPlan(op=opts.op, io_size=size, connections=opts.connections, credits=opts.credits,
                               in_flight=opts.in_flight_for(size), register=opts.register,
                               duration_s=0.0 if opts.ios else opts.duration_s, ios=opts.ios, timeout_s=opts.timeout_s)
        self.view: Any = None
        self.ready: dict[str, Any] = {}
        self.client: Any = None
        self.same_host = False
        self.far: dict[str, Any] = {}

    # ---- the launcher's questions -----------------------------------------------------------
    @property
    def player_class(self) -> Any:
        """The client sleeps while it waits for responses, as the serving threads do."""
        from rig.rdma.player import EventPlayer
        return EventPlayer

    def configs(self) -> tuple[Any, Any]:
        from rig.rdma.player import PlayerConfig
        p = self.plan
        cfg = PlayerConfig(msg_bytes=4096, slots=1, num_qps=p.connections, tx_depth=p.send_slots() + 8,
                           rx_depth=p.recv_slots())
        return cfg, cfg

    def request(self) -> dict[str, Any]:
        p = self.plan
        return {"kind": "smbd", "op": p.op, "io_size_bytes": p.io_size, "connections": p.connections,
                "copy": self.copy, "register": p.register, "credits": p.credits, "in_flight": p.in_flight,
                "async_workers": self.opts.async_workers if self.copy == "async-workers" else 0,
                "blocks": self.opts.blocks_for(self.size) if p.op == "write" else 1}

    def run_seconds_max(self) -> float:
        p = self.plan
        return min(MAX_RUN_SECONDS, (p.duration_s or 0) + 6 * p.timeout_s + 60.0 +
                   (p.ios * p.io_size / 1e6 if p.ios else 0))      # --ios: at least 1 MB/s

    def accept_ready(self, ready: dict[str, Any]) -> None:
        """The session's answer: the file's size and block checksums (READ) for the loop."""
        from rig.flows.smbd_client import FileView
        size, blocks = ready.get("file_bytes"), ready.get("blocks")
        if not isinstance(size, int) or isinstance(size, bool) or size < 1:
            raise ProtocolError("ready: file_bytes must be a positive integer")
        if not isinstance(blocks, int) or isinstance(blocks, bool) or not 1 <= blocks <= MAX_BLOCKS:
            raise ProtocolError(f"ready: blocks must be 1..{MAX_BLOCKS}")
        if self.plan.op == "write":
            self.view = FileView(size, self.opts.blocks_for(self.size))
        else:
            if blocks != -(-size // self.size) and blocks != MAX_BLOCKS:
                raise ProtocolError(f"ready: {blocks} blocks for a {size}-byte file in {self.size}-byte I/Os")
            self.view = FileView(size, blocks, unpack_crcs(ready.get("block_crc32"), blocks))
        self.ready = ready

    def prepare_initiator(self, player: Any) -> None:
        from rig.flows.smbd_client import Client
        self.client = Client(player, self.plan, self.view)

    def run_initiator(self, player: Any, remote: dict[str, Any],
                      extra_tick: Callable[[int, float], None] | None = None) -> Any:
        from rig.accounting import CpuWindow
        from rig.rdma.measure import chain_ticks
        self.client.negotiate()
        return self.client.run(CpuWindow(scope="process", busy=True), chain_ticks(self.on_tick, extra_tick))

    def raw_so_far(self) -> Any:
        return getattr(self.client, "raw", None) if self.client is not None else None

    def check_far(self, player: Any, prepared: Any, ready: dict[str, Any], done: dict[str, Any]) -> dict[str, Any]:
        from rig import accounting as acct
        from rig.flows.smbd_client import IntegrityError
        self.same_host = done.get("boot_id") == acct.boot_id()
        conns = done.get("connections")
        if not isinstance(conns, list) or len(conns) != self.plan.connections:
            raise ProtocolError(f"done: {self.plan.connections} connection outcomes expected")
        self.far = {"connections": conns}
        bad = [f"connection {i}: {c.get('outcome')}" for i, c in enumerate(conns)
               if isinstance(c, dict) and c.get("outcome") != "stopped"]
        if bad:
            raise ServerFailed("the server ended " + "; ".join(bad))
        raw = self.client.raw
        checked = len(raw.done_ns)
        if self.plan.op == "write":
            crcs = unpack_crcs(done.get("written_crc32"), self.view.blocks)
            wrong = sorted(b for b, crc in raw.written.items() if crcs[b] != crc)
            if wrong:
                raise IntegrityError(f"WRITE: {len(wrong)} of {len(raw.written)} blocks in the file differ from what "
                                     f"was written (first: block {wrong[0]})")
            method = "CRC-32 of every written block of the file (computed by the server after the run) against " \
                     "the client's buffer last written there"
        else:
            method = "CRC-32 of the bytes of every READ response against the file block's (computed by the " \
                     "server when it opened the file)"
        return {"integrity_ok": True, "integrity_checked_ios": checked, "integrity_method": method}

    def params(self) -> dict[str, Any]:
        p, negotiated = self.plan, self._negotiated()
        d: dict[str, Any] = {
            "op": p.op, "io_size_bytes": p.io_size, "copy": self.copy, "register": p.register,
            "connections": p.connections, "credits_requested": p.credits,
            "credits_granted": min((n.credits_granted for n in negotiated), default=None),
            "ios_in_flight_per_connection": p.in_flight,
            "async_workers_max": self.opts.async_workers if self.copy == "async-workers" else 0,
            "file_bytes": self.view.file_bytes if self.view is not None else None,
            "blocks": self.view.blocks if self.view is not None else None,
            "server_buffers_per_connection": self.ready.get("buffers", buffers_for(p.io_size, p.in_flight)),
            "server_rdma_reads_in_flight": READS_IN_FLIGHT if p.op == "write" else 0,
            "connection": self.connection, "devices": self.devices, "timeout_s": p.timeout_s}
        if p.ios:
            d["ios"] = p.ios
        else:
            d["duration_s"] = p.duration_s
        if negotiated:
            d.update(negotiated[0].as_params())
        placed = [c.get("cpus") for c in self.far.get("connections", []) if isinstance(c, dict)]
        if placed and all(isinstance(c, list) for c in placed):
            d["serving_cpus"] = placed          # as the server pinned them (any server: here or --peer)
        return d

    def _negotiated(self) -> list[Any]:
        raw = self.raw_so_far()
        return [n for n in (raw.negotiated if raw is not None else []) if n is not None]

    # ---- figures ----------------------------------------------------------------------------
    def summarize(self, raw: Any, far_cpu: dict[str, Any] | None) -> tuple[dict[str, Any], dict[str, Any]]:
        import numpy as np
        from rig.accounting import IPI_LINES, total_s
        from rig.rdma.analysis import ended_unix_s
        post = np.asarray(raw.post_ns, dtype=np.int64)
        done = np.asarray(raw.done_ns, dtype=np.int64)
        nbytes = np.asarray(raw.nbytes, dtype=np.float64)
        total = float(nbytes.sum())
        first, last = (int(post.min()), int(done.max())) if done.size else (raw.start_ns, raw.end_ns)
        seconds = max(1e-9, (last - first) * 1e-9)
        gb = total / GB
        per_gb = (lambda s: s / gb) if gb else (lambda s: math.nan)
        lat = (done - post) * 1e-9
        q = np.quantile(lat, [0.5, 0.99]) if lat.size else [math.nan, math.nan]
        span = max(1, raw.end_ns - raw.start_ns)
        summary: dict[str, Any] = {
            "gbytes_per_s": total / seconds / GB, "ios": int(done.size), "bytes": total, "seconds": seconds,
            "ended_unix_s": ended_unix_s(last),
            "latency_p50_s": float(q[0]), "latency_p99_s": float(q[1]),
            "latency_mean_s": float(lat.mean()) if lat.size else math.nan,
            "client_cpu_s_per_gb": per_gb(total_s(raw.cpu)),
            "credits_in_flight_mean": sum(raw.credits_integral) / span / max(1, raw.connections),
            "credits_in_flight_max": max(raw.credits_max, default=0),
            "short_reads": raw.short_reads, "error_responses": len(raw.errors),
            "client_registrations": raw.registrations, "client_sleeps": raw.sleeps, "client_turns": raw.turns,
            "integrity_ok": True, "partial": bool(raw.partial),
            "foreign_cpu_per_s": raw.cpu.get("foreign_cpu_per_s"),
        }
        for name in ("ksoftirqd_top_share", "least_busy_cpu_per_s"):   # the machine's, over the client's window
            if isinstance(raw.cpu.get(name), float):
                summary[name] = raw.cpu[name]
        for name in (*IPI_LINES.values(), "context_switches"):
            if name in raw.cpu and done.size:
                summary[f"{name}_per_io"] = raw.cpu[name] / done.size
        for side, counts, prefix in (("client", raw.cpu, ""), ("server", far_cpu or {}, "serving_")):
            for kind in ("voluntary", "involuntary"):          # the processes' own, each end's
                if f"{prefix}{kind}_switches" in counts and done.size:
                    summary[f"{side}_{kind}_switches_per_io"] = counts[f"{prefix}{kind}_switches"] / done.size
        if raw.errors:
            summary["error_first"] = raw.errors[0]
        if raw.stopped_by:
            summary["stopped_by"] = raw.stopped_by
        for part in ("user_s", "system_s", "softirq_s", "rxe_kworker_s"):
            summary[f"client_{part[:-2]}_cpu_s_per_gb"] = per_gb(raw.cpu.get(part) or 0.0)
        if far_cpu:
            summary.update(self._server_cpu(far_cpu, per_gb))
            wall = float(raw.cpu.get("wall_s") or 0.0)
            if self.same_host and wall > 0:
                # one kernel: every CPU-second of the run is counted once, at one end; the sum can be
                # checked against the CPUs' busy time over the window
                counted = total_s(raw.cpu) + summary["server_cpu_s_per_gb"] * gb
                summary["counted_cpu_per_s"] = counted / wall
                summary["busy_cpu_per_s"] = raw.cpu.get("busy_cpu_per_s")
        counters = [c.get("counters", {}) for c in self.far.get("connections", []) if isinstance(c, dict)]
        if counters:
            summary["server_registrations"] = sum(int(c.get("registrations", 0)) for c in counters)
            summary["server_short_reads"] = sum(int(c.get("short_reads", 0)) for c in counters)
            summary["server_sleeps"] = sum(int(c.get("sleeps", 0)) for c in counters)
            summary["server_idle_turns"] = sum(int(c.get("idle_turns", 0)) for c in counters)
            summary["server_turns"] = sum(int(c.get("turns", 0)) for c in counters)
            if self.copy == "cpu-copy":
                # the serving threads' CPU inside their pread/pwrite calls: the copy as it costs in the whole
                summary["server_copy_cpu_s_per_gb"] = per_gb(sum(int(c.get("copy_cpu_ns", 0)) for c in counters) * 1e-9)
            summary["server_woken_by_events"] = all(c.get("woken_by_events") for c in counters)
        lat_kept = lat if lat.size <= MAX_STORED_SAMPLES else \
            lat[np.linspace(0, lat.size - 1, MAX_STORED_SAMPLES).astype(int)]
        slices: list[float] = []
        if done.size and last > first:
            edges = np.linspace(first, last, SLICES + 1)
            counts, _ = np.histogram(done, bins=edges, weights=nbytes)
            slice_s = (last - first) * 1e-9 / SLICES
            slices = (counts / slice_s / GB).tolist()
        return summary, {"latency_s": lat_kept.tolist(), "slice_gbytes_per_s": slices}

    def _server_cpu(self, far: dict[str, Any], per_gb: Callable[[float], float]) -> dict[str, float]:
        """The server's parts; on one kernel (same boot id) the host's softirq and rxe kworkers are
        the client's (counted once, there) and the serving threads keep their whole system time."""
        user = float(far.get("serving_user_s", 0.0))
        system = float(far.get("serving_system_raw_s" if self.same_host else "serving_system_s", 0.0))
        workers = float(far.get("workers_s", 0.0))
        softirq = 0.0 if self.same_host else float(far.get("softirq_s", 0.0) or 0.0)
        kworker = 0.0 if self.same_host else float(far.get("rxe_kworker_s", 0.0) or 0.0)
        return {"server_cpu_s_per_gb": per_gb(user + system + workers + softirq + kworker),
                "server_serving_user_cpu_s_per_gb": per_gb(user),
                "server_serving_system_cpu_s_per_gb": per_gb(system),
                "server_workers_cpu_s_per_gb": per_gb(workers),
                "server_softirq_cpu_s_per_gb": per_gb(softirq),
                "server_rxe_kworker_cpu_s_per_gb": per_gb(kworker),
                "server_foreign_cpu_per_s": far.get("foreign_cpu_per_s")}

    def cpu_scope(self, where: str) -> str:
        server = ("server = its serving processes (each one connection: the serving thread's user and system "
                  "time, and the rest of the process: its io-wq workers)")
        if where == "peer on this host":
            return (f"one kernel for both ends: {server}, their system time whole; client = this process's time, "
                    "its system time whole, + ksoftirqd's run time and rxe kworkers (the softirq that ran outside "
                    "both ends' processes, counted once, here)")
        return (f"{server} + its host's softirq (at least ksoftirqd's run time) and rxe kworkers, the softirq served "
                "inside the serving threads taken out of their system time; client = this process's time + this "
                "host's softirq and rxe kworkers")

    def run_local(self, a: Any, b: Any) -> Any:
        raise NotImplementedError("SMB Direct runs against a serving session: rig.launch.smbd.run_point "
                                  "starts a local one when both ends are here")

    def partial_point(self, cause: BaseException) -> PointResult | None:
        """What the run measured before `cause` cut it short, marked partial (no server CPU)."""
        raw = self.raw_so_far()
        if raw is None or not raw.done_ns:
            return None
        raw.partial = True
        raw.stopped_by = raw.stopped_by or f"{cause.__class__.__name__}: {cause}"
        summary, samples = self.summarize(raw, None)
        summary["cpu_scope"] = "client only: the run was cut short before the server reported its CPU"
        return PointResult(params=self.params(), summary=summary, samples=samples,
                           integrity={"integrity_ok": True, "integrity_checked_ios": len(raw.done_ns),
                                      "integrity_method": "READ responses checked as they came (a partial run)"},
                           ports={}, cpu={"local": raw.cpu, "remote": None}, cpu_accounting={"local": raw.cpu_note})


class ServerFailed(RuntimeError):
    """The server ended a connection (a protocol violation it saw, a failure on its side)."""


# ---- where the server is ----------------------------------------------------------------------

@dataclass
class Target:
    """Where `run_point` finds its server: the address, and what the record says about it."""

    address: str
    connection: str
    devices: dict[str, Any]
    client_device: str | None
    pid: int | None = None            # a local server this command started


def _scratch_file(size: int) -> str:
    fd, path = tempfile.mkstemp(prefix="rdmarig-smbd-", suffix=".bin")
    try:
        chunk = 1 << 20
        for at in range(0, size, chunk):
            os.write(fd, os.urandom(min(chunk, size - at)))
    finally:
        os.close(fd)
    return path


@contextmanager
def target(opts: SmbdOptions) -> Iterator[Target]:
    """The server of a command: `--peer`, or a local one started for it (and its scratch file)."""
    if opts.peer_addr:
        yield Target(opts.peer_addr, f"peer {opts.peer_addr}", {"client": opts.device or "first ACTIVE",
                                                                "server": f"peer {opts.peer_addr}"}, opts.device)
        return
    from rig.launch.smbd_target import ServedFile, Where, start_local, stop_local
    from rig.rdma.devices import list_devices
    names = list_devices()
    if not names:
        raise InputError("no RDMA device found", "try the soft-RoCE guest: rdmarig guest run -- rdmarig measure smbd ...")
    client = opts.device or names[0]
    server = opts.peer_device or (names[1] if len(names) > 1 and opts.device is None else client)
    path = opts.file or _scratch_file(opts.file_bytes)
    pid = None
    try:
        served = ServedFile(path, allow_write=opts.file is None,
                            limits=smbd.Limits(max_read_write_size=opts.max_read_write()))
        pid, (host, port) = start_local(served, Where(server, None, opts.peer_gid_index, opts.serving_cpus))
        yield Target(f"{host}:{port}", "loopback", {"client": client, "server": server}, client, pid)
    finally:
        if pid is not None:
            stop_local(pid)
        if opts.file is None:
            os.unlink(path)


def run_point(opts: SmbdOptions, where: Target, size: int, copy: str,
              on_tick: Callable[[int, float], None] | None = None) -> PointResult:
    """Measure one I/O size with one copy variant against the target's server. A failure (or an
    interrupt) carries what was measured before it as `.partial_point` (or None)."""
    from rig.launch import peer
    workload = SmbdWorkload(opts, size, copy, on_tick, where.connection, where.devices)
    try:
        return peer.run(workload, where.address, where.client_device, opts.port, opts.gid_index,
                        answer_s=max(60.0, 3 * opts.timeout_s), default_port=DEFAULT_PORT,
                        serve="rdmarig serve smbd")
    except BaseException as exc:
        exc.partial_point = workload.partial_point(exc)          # type: ignore[attr-defined]
        raise


def describe(opts: SmbdOptions) -> str:
    sizes = opts.sizes
    span = format_size(sizes[0]) if len(sizes) == 1 else f"{format_size(sizes[0])}..{format_size(sizes[-1])}"
    return (f"smbd {opts.op}: {len(sizes) * len(opts.copy_list())} point(s), {span}, {', '.join(opts.copy_list())}, "
            f"{opts.connections} connection(s), credits {opts.credits}, register {opts.register}"
            + (f", serving processes on CPUs {','.join(map(str, opts.serving_cpus))}" if opts.serving_cpus else ""))


# ---- many clients under mpirun / srun (--mpi) -------------------------------------------------

def check_mpi(opts: SmbdOptions) -> None:
    """What `measure smbd --mpi` cannot do (the MPI options are checked by MpiOptions.check)."""
    for flag, used in (("--peer", opts.peer_addr), ("--peer-device", opts.peer_device),
                       ("--peer-gid-index", opts.peer_gid_index is not None), ("--file", opts.file)):
        if used:
            raise InputError(f"--mpi pairs ranks: {flag} does not apply",
                             f"drop {flag} (target ranks serve a scratch file of --file-size on their own device)")
    if opts.serving_cpus:
        raise InputError("--mpi: --serving-cpus does not apply (ranks share hosts, and each target rank's serving "
                         "processes run where the scheduler puts them)", "drop --serving-cpus")
    if len(opts.copy_list()) != 1:
        raise InputError(f"--mpi runs one copy variant per run, not {len(opts.copy_list())}",
                         f"name one: --copy {opts.copy_list()[0]}")


class MpiServing:
    """A target rank's SMB Direct sessions: READ serves one scratch file of --file-size (made at
    the first session, shared by the clients); WRITE gives each session an empty file of its own,
    so clients writing at once never check each other's blocks."""

    def __init__(self, opts: SmbdOptions):
        import threading
        self.opts = opts
        self.read_path: str | None = None
        self._making = threading.Lock()          # incast sessions start in threads of their own

    def __call__(self, conv: Any, limits: Any, device: str | None) -> dict[str, Any]:
        from rig.launch.smbd_target import ServedFile, SmbdSession, Where
        o = self.opts
        if o.op == "read":
            with self._making:
                if self.read_path is None:
                    self.read_path = _scratch_file(o.file_bytes)
            path = self.read_path
        else:
            path = _scratch_file(0)
        served = ServedFile(path, allow_write=o.op == "write", limits=smbd.Limits(max_read_write_size=o.max_read_write()))
        try:
            return SmbdSession(conv, served, Where(device, o.port, o.gid_index), limits).run()
        finally:
            if o.op == "write":
                os.unlink(path)

    def close(self) -> None:
        if self.read_path is not None:
            os.unlink(self.read_path)
            self.read_path = None


def run_mpi(opts: SmbdOptions, mpi: Any, open_store: Callable[[], Any], say: Callable[[str], None]) -> Any:
    """This rank's part of `measure smbd --mpi` (rig.launch.mpi_run.run_ranks): initiator ranks
    are SMB Direct clients, target ranks serve them (incast: rank 0 serves N-1 clients at once)."""
    from rig.launch.mpi_run import RankJob, RecordSpec, run_ranks
    copy = opts.copy_list()[0]

    def params_of(size: int, point: dict[str, Any]) -> dict[str, Any]:
        return point or {**SmbdWorkload(opts, size, copy).params(), "devices": None}

    serving = MpiServing(opts)
    job = RankJob(spec=RecordSpec(name=f"smbd.{opts.op}", metric="gbytes_per_s", params_of=params_of),
                  sizes=list(opts.sizes),
                  workload_for=lambda size: SmbdWorkload(opts, size, copy, connection="mpi"),
                  run_seconds_max=max(SmbdWorkload(opts, s, copy).run_seconds_max() for s in opts.sizes),
                  answer_s=max(60.0, 3 * opts.timeout_s), ib_port=opts.port, gid_index=opts.gid_index,
                  serve=serving)
    try:
        return run_ranks(job, mpi, open_store, say)
    finally:
        serving.close()
