"""Scenario files: TOML in, frozen dataclasses out, validated up front.

A *scenario* (scenarios/*.toml) names a platform (scenarios/platform.py) and describes what is
asked: the links (`links = "2x200Gbit/s"`), the protocol, the workload (SMB2 READ over SMB Direct
or TCP, I/O sizes, connections, credits, cores given to I/O), the copy paths to compare and a
sweep. Every problem is an InputError naming the file, the field and the fix.

The names other rooms use live here: load_scenario / load_platform, Scenario, Platform, and
the flat-parameter helpers (scenarios/params.py) re-exported for them. Every table is strict:
an unknown key is an error naming the closest valid one, every value is checked against its
physical range (scenarios/limits.py).
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from scenarios import copy_paths as _paths
from scenarios import fields as F
from scenarios import limits as L
from scenarios import platform as _platform
from scenarios.errors import InputError
from scenarios.files import (PACKAGE_DIR, PLATFORM_DIR, builtin_platforms, builtin_scenarios,  # noqa: F401
                             file_kind, read_toml, resolve)
from scenarios.params import flag_params, flat_params, unit_key, unit_label, with_params  # noqa: F401
from scenarios.platform import Cpu, DmaEngine, Measured, Memory, Nic, Pcie, Platform, parse_platform  # noqa: F401
from scenarios.profile import load_platform_file
from scenarios.toml_table import TomlTable, did_you_mean, plain_number
from scenarios.units import parse_rate, parse_size, parse_size_list, parse_time

MAX_SWEEP_POINTS = 1_000_000   # what one vectorised evaluation may hold (memory, time)
MAX_TABLE_ROWS = 100_000       # what a plan table may print: 100k rows take ~10 s and ~0.5 GB


def check_grid_points(n: int, where: str, cap: int = MAX_SWEEP_POINTS) -> None:
    """The one check of a grid's size: scenario sweeps, grids built in code, plan tables."""
    if n > cap:
        what = "rows a plan table holds" if cap == MAX_TABLE_ROWS else "points one evaluation holds"
        fix = ("sweep fewer values, or evaluate the grid from Python (models.sweep.evaluate_grid)"
               if cap == MAX_TABLE_ROWS else "sweep fewer values (the cap keeps memory and time bounded)")
        raise InputError(f"{where}: sweep has {n:,} points, over the {cap:,} {what}", fix)


PROTOCOLS = ("roce-v2", "infiniband", "tcp")
PROTOCOL_CODES = PROTOCOLS + ("none",)    # "none": a memory workload, no network (link.protocol_code 3)
TRANSPORTS = ("smbdirect", "tcp", "memory")
OPERATIONS = ("read", "write")
MEDIA = ("ethernet", "loopback")    # what carries roce-v2 / tcp frames (infiniband is its own)
MEDIUM_CODES = ("ethernet", "loopback", "infiniband", "none")   # link.medium_code
APPLICATIONS = ("smb2", "none")     # smb2: SMB2 requests and headers per I/O; none: raw data (probes, memory)
PLACEMENTS = ("local", "spread", "unpinned")   # where serving threads and their memory sit (NUMA)


@dataclass(frozen=True)
class Link:
    count: int
    rate: float                     # bytes/s per link (signalling rate of the MAC)
    protocol: str                   # roce-v2 | infiniband | tcp
    mtu: float                      # Ethernet MTU (roce-v2, tcp) or IB MTU (infiniband), bytes
    tcp_timestamps: bool = True
    medium: str = "ethernet"        # ethernet | loopback (both ends on this host) | infiniband | none (memory)

    @property
    def label(self) -> str:
        if self.medium in ("loopback", "none"):
            return self.medium
        return f"{self.count}x{self.rate * 8 / 1e9:g}Gbit/s"


def no_network() -> Link:
    """The link of a memory workload: nothing is sent (links, PCIe and the wire do not exist)."""
    return Link(count=1, rate=0.0, protocol="none", mtu=1500.0, medium="none")


@dataclass(frozen=True)
class Workload:
    transport: str                  # smbdirect | tcp | memory (memory-to-memory copies, no network)
    operation: str                  # read (server sends file data) | write (server receives)
    connections: int                # SMB channels (multichannel) or TCP connections
    outstanding_per_connection: int # SMB credits / queue depth a client keeps in flight
    io_cores: int                   # cores given to I/O (serving threads)
    async_workers: int              # cores for io_uring async workers (async-workers path)
    rtt: float                      # seconds, network round trip without serialisation
    page_cache_hit: bool            # file data already in the page cache?
    checksum_offload: bool          # NIC computes TCP checksums
    tso: bool                       # NIC segments TCP (TSO/GSO), the receiver coalesces (GRO)
    gso_size: float                 # bytes per TSO/GSO unit handed to the NIC
    application: str = "smb2"       # smb2: an SMB2 request and headers per I/O; none: raw data
    tcp_window: float = 4194304.0   # bytes one TCP connection keeps in flight (socket buffers)
    placement: str = "local"        # local | spread | unpinned: serving threads and memory vs the NIC's socket
    page_bytes: float = 4096.0      # page / folio size of the I/O's memory (4 KiB, 2 MiB THP)
    client_cores: int = 0           # cores the client gives to I/O; 0: the client is not modelled
    clients: int = 1                # client hosts the server serves at once, each with `connections` (incast)
    dma_channels: int = 256         # DMA channels the workload uses (at most the reachable engines)
    dma_spread: bool = False        # an I/O's descriptors spread over every channel in use (memory batches)
    foreign_load: float = 0.0       # CPU-s per second other tenants take on the host's cores (shared machines)
    busy_poll: bool = False         # serving / client threads spin on their completion queues (never sleep)
    client_checks_data: bool = False  # the client computes a CRC-32 of every byte it reads (rdmarig's own client does)
    client_registers_per_io: bool = False  # the client registers (pins) its buffer for every I/O, not once
    poster_polls: bool = False      # the posting thread polls its CQ while it waits (measure verbs without --events)
    serving_pinned_cores: int = 0   # serving threads pinned round robin to this many cores (--serving-cpus); 0: unpinned


@dataclass(frozen=True)
class Sweep:
    io_sizes: tuple[float, ...]
    fields: tuple[tuple[str, tuple[float, ...]], ...] = ()

    def points(self, n_paths: int) -> int:
        n = len(self.io_sizes) * n_paths
        for _, values in self.fields:
            n *= len(values)
        return n


CopyPath = _paths.CopyPath
Copy = _paths.Copy


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    path: str
    platform: Platform
    link: Link
    workload: Workload
    copy_paths: tuple[CopyPath, ...]
    sweep: Sweep
    target: float | None = None     # bytes/s the user wants to reach (--target)


# ---------------------------------------------------------------------------------------------
# scenarios

_LINKS_RE = re.compile(r"^\s*([0-9]+)\s*[xX×]\s*(.+)$")


def parse_links(text: Any, where: str) -> tuple[int, float]:
    """'2x200Gbit/s' -> (2, 25e9)."""
    m = _LINKS_RE.match(str(text)) if isinstance(text, str) else None
    if not m:
        raise InputError(f"{where}: cannot read {text!r} as links", 'write it like "2x200Gbit/s" (count x rate)')
    count = int(m.group(1))
    rate = parse_rate(m.group(2), where)
    if count < 1 or rate <= 0:
        raise InputError(f"{where}: {text!r} needs at least one link of a positive rate",
                         'write it like "2x200Gbit/s"')
    return count, rate


def mtu_limit(protocol: str, medium: str) -> F.Limit:
    if protocol == "infiniband":
        return L.IB_MTU
    return L.LOOPBACK_MTU if medium == "loopback" else L.ETHERNET_MTU


NETWORK_FIELDS = (
    F.other("links"), F.choice("protocol", PROTOCOLS), F.other("medium"), F.other("mtu"),
    F.flag("tcp_timestamps", default=True),
)
WORKLOAD_FIELDS = (
    F.choice("transport", TRANSPORTS),
    F.choice("operation", OPERATIONS, default="read"),
    F.whole("connections", L.CONNECTIONS),
    F.whole("outstanding_per_connection", L.CREDITS),
    F.whole("io_cores", L.CORES),
    F.whole("async_workers", L.CORES, default=4),
    F.other("rtt"),                 # required with a network; a memory workload has none
    F.flag("page_cache_hit", default=True),
    F.flag("checksum_offload", default=True),
    F.flag("tso", default=True),
    F.quantity("gso_size", parse_size, "64KiB", L.GSO_SIZE, default="64KiB"),
    F.other("application"),         # default by transport: smb2, or none for memory workloads
    F.quantity("tcp_window", parse_size, "4MiB", L.TCP_WINDOW, default="4MiB"),
    F.choice("placement", PLACEMENTS, default="local"),
    F.quantity("page_bytes", parse_size, "4KiB", L.PAGE_SIZE, default="4KiB"),
    F.whole("client_cores", L.CLIENT_CORES, default=0),
    F.whole("clients", L.CLIENTS, default=1),
    F.whole("dma_channels", L.DMA_CHANNELS, default=256),
    F.flag("dma_spread", default=False),
    F.quantity("foreign_load", parse_time, "0.5s", L.FOREIGN_LOAD, default="0s"),
    F.flag("busy_poll", default=False),
    F.flag("client_checks_data", default=False),
    F.flag("client_registers_per_io", default=False),
    F.flag("poster_polls", default=False),
    F.whole("serving_pinned_cores", L.PINNED_CORES, default=0),
    F.other("io_sizes"),            # the I/O sizes may sit here instead of under [sweep]
)
# link.count and link.rate come from `links = "2x200Gbit/s"`; as fields they serve sweeps (the
# MTU's range depends on the protocol: sweep_field)
LINK_FIELDS = (F.whole("count", L.LINKS), F.quantity("rate", parse_rate, "200Gbit/s", L.PORT_RATE),
               F.quantity("mtu", parse_size, "1500B", L.ETHERNET_MTU), F.flag("tcp_timestamps"))
TOP_FIELDS = (F.text("name", '"smbdirect-2x200g"'), F.text("description", '"..."', default=""),
              F.other("platform"), F.other("copy_paths"), F.other("target"), F.other("network"),
              F.other("workload"), F.other("sweep"), F.other("copy_path"))


def _link(t: TomlTable, platform: Platform) -> Link:
    values, _ = F.read_section(t, NETWORK_FIELDS)
    protocol = values["protocol"]
    if t.data.get("medium") == "loopback":
        return _loopback(t, protocol, values["tcp_timestamps"], platform)
    count, rate = parse_links(t.raw("links", '"2x200Gbit/s"'), t.where("links"))
    for field, value in zip(LINK_FIELDS, (count, rate)):
        if (problem := field.limit.problem(value)) is not None:
            raise t.error("links", f"{t.data['links']!r}: link {field.key} {field.as_text(value)} is {problem}",
                          'write it like "2x200Gbit/s"')
    if protocol == "infiniband":
        medium = "infiniband"
        if "medium" in t.data:
            raise t.error("medium", "infiniband is its own medium", "remove `medium`, or use roce-v2 / tcp")
    else:
        medium = t.choice("medium", MEDIA, default="ethernet")
    limit = mtu_limit(protocol, medium)
    try:
        mtu = t.quantity("mtu", parse_size, "1500B", default="1500B" if protocol != "infiniband" else "4096B",
                         limit=limit)
    except InputError as exc:
        if limit is L.ETHERNET_MTU and protocol == "tcp" and isinstance(t.data.get("mtu"), str):
            raise InputError(exc.cause, exc.fix + '; TCP over Linux lo (64 KiB MTU) is `medium = "loopback"`') from None
        raise
    return Link(count=count, rate=rate, protocol=protocol, mtu=mtu, tcp_timestamps=values["tcp_timestamps"],
                medium=medium)


def _loopback(t: TomlTable, protocol: str, timestamps: bool, platform: Platform) -> Link:
    """Both ends on this host: no wire, no PCIe, no line rate (Linux lo, or a veth pair between two
    local addresses). RoCE there needs the host's CPU to run RDMA (soft-RoCE)."""
    if protocol == "infiniband":
        raise t.error("medium", "infiniband is its own medium", "remove `medium`, or use roce-v2 / tcp")
    if protocol == "roce-v2" and platform.nic.rdma != "software":
        raise t.error("medium", f"roce-v2 on the loopback medium needs software RDMA, and {platform.name}'s NIC "
                      "runs RDMA in hardware", 'use a platform whose [nic] has rdma = "software" (soft-RoCE), '
                      'or medium = "ethernet"')
    if "links" in t.data:
        raise t.error("links", "the loopback medium has no wire: no links, no line rate, no PCIe",
                      "remove `links` (both ends' CPU carries the data)")
    mtu = t.quantity("mtu", parse_size, "1500B", default="65536B", limit=L.LOOPBACK_MTU)
    return Link(count=1, rate=0.0, protocol=protocol, mtu=mtu, tcp_timestamps=timestamps, medium="loopback")


RTT_FIELD = F.quantity("rtt", parse_time, "10us", L.RTT)


def _workload(t: TomlTable) -> Workload:
    values, _ = F.read_section(t, WORKLOAD_FIELDS)
    memory = values["transport"] == "memory"
    if memory and "rtt" in t.data:
        raise t.error("rtt", "a memory workload has no network round trip", "remove `rtt`")
    values["rtt"] = 0.0 if memory else RTT_FIELD.read(t)
    default = "none" if memory else "smb2"
    values["application"] = t.choice("application", APPLICATIONS, default=default)
    if values["transport"] == "memory" and values["application"] != "none":
        raise t.error("application", "a memory workload carries no SMB2 requests", 'remove it, or set "none"')
    return Workload(**values)


def _custom_paths(data: Any, file: str) -> dict[str, CopyPath]:
    if data is None:
        return {}
    if not isinstance(data, list):
        raise InputError(f"{file}: copy_path must be an array of tables", "write each as a [[copy_path]] table")
    out = {}
    for i, d in enumerate(data):
        path = _paths.from_mapping(d, file, i)
        out[path.name] = path
    return out


# A figure that bounds another across the scenario and its platform (see platform.RELATIONS).
SCENARIO_RELATIONS = (
    ("link.rate", "nic.port_rate", "bits/s", "a link runs at most at its NIC port's rate"),
)


def sweep_field(flat_name: str, s: Scenario) -> F.Field | None:
    """The field (parser, range) a flat parameter name is read and checked with."""
    section, _, rest = flat_name.partition(".")
    if flat_name == "link.mtu":
        return F.quantity("mtu", parse_size, "1500B", mtu_limit(s.link.protocol, s.link.medium))
    if flat_name == "workload.rtt":
        return RTT_FIELD
    if section == "link":
        return F.by_name(LINK_FIELDS).get(rest)
    if section == "workload":
        return F.by_name(WORKLOAD_FIELDS).get(rest)
    return _platform.field_of(flat_name)


def _sweep(t: TomlTable | None, partial: Scenario, n_paths: int, file: str) -> Sweep:
    io_sizes = partial.sweep.io_sizes
    flat, flags = flat_params(partial), flag_params(partial)
    items: list[tuple[str, list]] = []
    if t is not None:
        for key, values in t.data.items():
            if key == "io_sizes":
                continue
            if key not in flat:
                raise t.error(key, "not a field this scenario has (a key written below [sweep] belongs to it)",
                              did_you_mean(key, [*flat, "io_sizes"]))
            if not isinstance(values, list) or not values:
                raise t.error(key, f"{values!r} is not a list of values", f"write it like `\"{key}\" = [1, 2, 4]`")
            items.append((key, values))
    n = len(io_sizes) * n_paths
    for _, values in items:
        n *= len(values)
    check_grid_points(n, file)          # before reading a million values
    fields = []
    for key, values in items:
        field = sweep_field(key, partial)
        parsed = tuple(_sweep_value(v, t.where(key), field, key in flags) for v in values)
        for v in parsed:
            broken = _platform.broken_relation({**flat, key: v}, _platform.RELATIONS + SCENARIO_RELATIONS)
            if broken:
                raise t.error(key, f"{broken[0]} {broken[2]}", "sweep values the rest of the scenario allows")
        fields.append((key, parsed))
    return Sweep(io_sizes=io_sizes, fields=tuple(fields))


def _sweep_value(value: Any, where: str, field: F.Field, is_flag: bool = False) -> float:
    if is_flag:
        if isinstance(value, bool) or value in (0, 1):
            return float(value)
        raise InputError(f"{where}: {value!r} is not true/false", "sweep it as [true, false]")
    if isinstance(value, str):
        if field.kind != "quantity":
            raise InputError(f"{where}: {value!r} is not a number", "this field is a count: sweep plain numbers")
        number = field.parser(value, where)
    else:
        number = plain_number(value, where)
    field.check(number, where, value)
    return number


def _io_sizes(t: TomlTable, sweep_t: TomlTable | None) -> tuple[float, ...]:
    io_text = (sweep_t.data.get("io_sizes") if sweep_t else None) or t.sub("workload").data.get("io_sizes")
    if io_text is None:
        raise t.error("sweep.io_sizes", "missing field", 'add `io_sizes = "64KiB..8MiB"` under [sweep]')
    where = t.where("sweep.io_sizes")
    if not isinstance(io_text, (str, list)):
        raise InputError(f"{where}: {io_text!r} is not a list of sizes", 'write it like "64KiB..8MiB" or ["64KiB", "1MiB"]')
    io_sizes = tuple(parse_size_list(io_text, where) if isinstance(io_text, str)
                     else [parse_size(v, where) for v in io_text])
    for size in io_sizes:
        if (problem := L.IO_SIZE.problem(size)) is not None:
            raise InputError(f"{where}: I/O size {size:g} B is {problem}", 'write it like "4KiB..8MiB"')
    return io_sizes


def _copy_paths(t: TomlTable, custom: Mapping[str, CopyPath], transport: str) -> tuple[CopyPath, ...]:
    names = t.raw("copy_paths", '["cpu-copy", "zero-copy"]')
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise t.error("copy_paths", f"{names!r} is not a list of copy path names",
                      'write it like `copy_paths = ["cpu-copy", "zero-copy"]`')
    paths = []
    for n in names:
        row = custom.get(n) or _paths.builtin(n, transport)
        if row is None:
            known = sorted(set(_paths.builtin_names()) | set(custom))
            if n in known:
                raise t.error("copy_paths", f"copy path {n!r} does not exist on transport {transport}",
                              "remove it here or define it for this transport in a [[copy_path]] table")
            raise t.error("copy_paths", f"unknown copy path {n!r}",
                          f"use one of {', '.join(known)} or define it in a [[copy_path]] table")
        if transport not in row.transports:
            raise t.error("copy_paths", f"copy path {n!r} does not exist on transport {transport}",
                          f"it applies to {', '.join(row.transports)}; remove it here")
        paths.append(row)
    if len(set(names)) != len(names):
        raise t.error("copy_paths", "a copy path is listed twice", "list each path once")
    return tuple(paths)


def parse_scenario(data: Mapping[str, Any], file: str, platform: Platform) -> Scenario:
    t = TomlTable(data, file)
    t.reject_unknown(F.known_keys(TOP_FIELDS))
    workload = _workload(t.sub("workload"))
    if workload.transport == "memory":
        if "network" in data:
            raise t.error("network", "a memory workload moves no data over a network",
                          "remove the [network] table (or pick transport smbdirect / tcp)")
        link = no_network()
    else:
        link = _link(t.sub("network"), platform)
    if link.medium == "loopback" and workload.client_cores < 1:
        raise t.error("workload.client_cores", "the loopback medium puts the client on this host, and its "
                      "cores carry half the work", "set `client_cores = 1` (or more) under [workload]")
    if link.protocol == "tcp" and workload.transport != "tcp":
        raise t.error("workload.transport", "SMB Direct needs an RDMA protocol (roce-v2 or infiniband)",
                      'set network.protocol = "roce-v2" or workload.transport = "tcp"')
    if link.protocol not in ("tcp", "none") and workload.transport == "tcp":
        raise t.error("network.protocol", "SMB over TCP runs on protocol tcp", 'set network.protocol = "tcp"')
    custom = _custom_paths(data.get("copy_path"), file)
    paths = _copy_paths(t, custom, workload.transport)
    sweep_t = t.sub("sweep") if "sweep" in data else None
    partial = Scenario(name=t.text("name", '"smbdirect-2x200g"'), description=t.text("description", '"..."', ""),
                       path=file, platform=platform, link=link, workload=workload, copy_paths=paths,
                       sweep=Sweep(io_sizes=_io_sizes(t, sweep_t)))
    broken = _platform.broken_relation(flat_params(partial), SCENARIO_RELATIONS)
    if broken:
        raise t.error("network.links", f"{link.label}: link.rate {broken[2]} ({platform.nic.model})",
                      "use more links of at most the port's rate, or --platform with a profile whose NIC has "
                      "faster ports")
    target = None
    if "target" in data:
        target = t.quantity("target", parse_rate, "46GB/s", limit=L.TARGET_RATE)
    sweep = _sweep(sweep_t, partial, len(paths), file)
    return dataclasses.replace(partial, sweep=sweep, target=target)


# ---------------------------------------------------------------------------------------------
# files and names

def load_platform(name_or_path: str | Path) -> Platform:
    """A platform profile by built-in name or path, its base and measured section merged in."""
    return load_platform_file(resolve(name_or_path, builtin_platforms(), "platform"))


def scenario_file(name_or_path: str | Path) -> Path:
    return resolve(name_or_path, builtin_scenarios(), "scenario")


def load_scenario(name_or_path: str | Path, platform: str | Path | Platform | None = None) -> Scenario:
    """Load and validate a scenario by built-in name or path; `platform` (a name, a file, or a
    Platform already read) overrides its platform."""
    path = scenario_file(name_or_path)
    data = read_toml(path, "scenario")
    if isinstance(platform, Platform):
        return parse_scenario(data, str(path), platform)
    if platform is None:
        ref = data.get("platform")
        if not isinstance(ref, str) or not ref:
            raise InputError(f"{path}: platform: {'missing field' if ref is None else f'{ref!r} is not a profile name'}",
                             'add `platform = "xeon-8470-cx7"` (a name from scenarios/platforms or a path)')
        try:
            plat = load_platform_file(resolve(ref, builtin_platforms(), "platform", relative_to=path.parent))
        except InputError as exc:
            raise exc if str(path) in exc.cause else InputError(f"{path}: platform: {exc.cause}", exc.fix) from None
        return parse_scenario(data, str(path), plat)
    return parse_scenario(data, str(path), load_platform(platform))
