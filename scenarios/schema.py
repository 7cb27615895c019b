"""Scenario and platform files: TOML in, frozen dataclasses out, validated up front.

A *platform* profile (scenarios/platforms/*.toml) describes hardware: CPU, memory, NIC + PCIe,
DMA engines. Every number in it carries a `<field>_source = "..."` beside it (datasheet, paper,
measurement); a number without a source is an error.

A *scenario* (scenarios/*.toml) names a platform and describes what is asked: the links
(`links = "2x200Gbit/s"`), the protocol, the workload (SMB2 READ over SMB Direct or TCP,
I/O sizes, connections, credits, cores given to I/O), the copy paths to compare and a sweep.

Every problem is an InputError naming the file, the field and the fix.
"""

from __future__ import annotations

import dataclasses
import math
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from scenarios import copy_paths as _paths
from scenarios.errors import InputError
from scenarios.units import parse_freq, parse_rate, parse_size, parse_size_list, parse_time

MAX_SWEEP_POINTS = 1_000_000
PROTOCOLS = ("roce-v2", "infiniband", "tcp")
TRANSPORTS = ("smbdirect", "tcp")
OPERATIONS = ("read", "write")


# ---------------------------------------------------------------------------------------------
# dataclasses


@dataclass(frozen=True)
class Cpu:
    model: str
    cores: int
    clock_hz: float
    copy_rate_cache: float          # bytes/s one core copies when source and destination are cached
    copy_rate_dram: float           # bytes/s one core copies from/to DRAM (source not cached)
    cache_per_core: float           # bytes of private cache a copy can stay inside (L2)
    nontemporal_copy: bool          # does the kernel copy use non-temporal stores (no write-allocate)?
    syscall_time: float             # seconds of CPU per system call entry/exit
    smb_request_time: float         # seconds of CPU to parse and answer one SMB2 request
    rdma_wr_time: float             # seconds of CPU to post one work request and reap its completion
    tcp_segment_time: float         # seconds of CPU per TSO/GSO send unit in the TCP stack
    tcp_checksum_rate: float        # bytes/s one core checksums when the NIC does not
    async_handoff_time: float       # seconds of CPU to hand one I/O to a worker and back
    sources: Mapping[str, str] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class Memory:
    description: str
    dram_bandwidth: float           # bytes/s sustained (measured, all cores)
    dram_peak: float                # bytes/s channels x transfer rate x 8 B (datasheet)
    sources: Mapping[str, str] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class Pcie:
    generation: int
    lanes: int
    max_payload: float              # bytes per TLP (MPS)
    tlp_overhead: float             # bytes per TLP: framing + sequence + header + LCRC
    read_completion: float          # bytes per completion TLP when the NIC reads host memory
    sources: Mapping[str, str] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class Nic:
    model: str
    ports: int
    port_rate: float                # bytes/s the fastest port supports
    pcie: Pcie
    sources: Mapping[str, str] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class DmaEngine:
    name: str
    count: int                      # engines (devices) usable by the file server
    rate: float                     # bytes/s per engine for large descriptors
    descriptor_time: float          # seconds of engine time per descriptor, beyond the bytes
    descriptor_cpu_time: float      # seconds of CPU to prepare + submit one descriptor + reap it
    completion_latency: float       # seconds from submission to completion seen by the CPU
    apis: tuple[str, ...]           # kernel APIs that reach this engine
    sources: Mapping[str, str] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class Platform:
    name: str
    description: str
    cpu: Cpu
    memory: Memory
    nic: Nic
    dma: tuple[DmaEngine, ...]
    path: str = ""

    def sources(self) -> dict[str, str]:
        """Every number's source, keyed like the flat parameter names ('cpu.cores')."""
        out: dict[str, str] = {}
        for section, obj in (("cpu", self.cpu), ("memory", self.memory), ("nic", self.nic),
                             ("pcie", self.nic.pcie)):
            out.update({f"{section}.{k}": v for k, v in obj.sources.items()})
        for engine in self.dma:
            out.update({f"dma.{engine.name}.{k}": v for k, v in engine.sources.items()})
        return out


@dataclass(frozen=True)
class Link:
    count: int
    rate: float                     # bytes/s per link (signalling rate of the MAC)
    protocol: str                   # roce-v2 | infiniband | tcp
    mtu: float                      # Ethernet MTU (roce-v2, tcp) or IB MTU (infiniband), bytes
    tcp_timestamps: bool = True

    @property
    def label(self) -> str:
        return f"{self.count}x{self.rate * 8 / 1e9:g}Gbit/s"


@dataclass(frozen=True)
class Workload:
    transport: str                  # smbdirect | tcp
    operation: str                  # read (server sends file data) | write (server receives)
    connections: int                # SMB channels (multichannel) or TCP connections
    outstanding_per_connection: int # SMB credits / queue depth a client keeps in flight
    io_cores: int                   # cores given to I/O (serving threads)
    async_workers: int              # cores for io_uring async workers (async-workers path)
    rtt: float                      # seconds, network round trip without serialisation
    page_cache_hit: bool            # file data already in the page cache?
    checksum_offload: bool          # NIC computes TCP checksums
    tso: bool                       # NIC segments TCP (TSO/GSO)
    gso_size: float                 # bytes per TSO/GSO unit handed to the NIC


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
# reading TOML tables with errors that name file + field


class _Table:
    """A TOML table plus where it came from, for error messages."""

    def __init__(self, data: Mapping[str, Any], file: str, section: str = ""):
        self.data = dict(data)
        self.file = file
        self.section = section

    def where(self, key: str) -> str:
        return f"{self.file}: {self.section + '.' if self.section else ''}{key}"

    def error(self, key: str, cause: str, fix: str) -> InputError:
        return InputError(f"{self.where(key)}: {cause}", fix)

    def sub(self, key: str) -> "_Table":
        value = self.data.get(key)
        if not isinstance(value, dict):
            raise self.error(key, "missing table" if value is None else "must be a table",
                             f"add a [{(self.section + '.' if self.section else '') + key}] table")
        return _Table(value, self.file, f"{self.section}.{key}" if self.section else key)

    def raw(self, key: str, example: str) -> Any:
        if key not in self.data:
            raise self.error(key, "missing field", f"add `{key} = {example}`")
        return self.data[key]

    def text(self, key: str, example: str = '"..."', default: str | None = None) -> str:
        if default is not None and key not in self.data:
            return default
        value = self.raw(key, example)
        if not isinstance(value, str) or not value.strip():
            raise self.error(key, f"{value!r} is not a non-empty string", f"write it like `{key} = {example}`")
        return value

    def choice(self, key: str, options: tuple[str, ...], default: str | None = None) -> str:
        value = self.text(key, f'"{options[0]}"', default)
        if value not in options:
            raise self.error(key, f"unknown value {value!r}", f"use one of {', '.join(options)}")
        return value

    def flag(self, key: str, default: bool | None = None) -> bool:
        if default is not None and key not in self.data:
            return default
        value = self.raw(key, "true")
        if not isinstance(value, bool):
            raise self.error(key, f"{value!r} is not true/false", f"write `{key} = true` or `{key} = false`")
        return value

    def whole(self, key: str, default: int | None = None, minimum: int = 1) -> int:
        if default is not None and key not in self.data:
            return default
        value = self.raw(key, "4")
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise self.error(key, f"{value!r} is not a whole number >= {minimum}",
                             f"write it like `{key} = {max(minimum, 4)}`")
        return value

    def quantity(self, key: str, parser, example: str, default: Any = None, positive: bool = True) -> float:
        """A physical quantity written with its unit ("200Gbit/s", "8MiB", "10us")."""
        value = default if default is not None and key not in self.data else self.raw(key, f'"{example}"')
        if not isinstance(value, str):
            raise self.error(key, f"{value!r} has no unit", f'write it with its unit, like `{key} = "{example}"`')
        try:
            number = parser(value, self.where(key))
        except InputError as exc:
            raise InputError(exc.cause if self.file in exc.cause else f"{self.where(key)}: {exc.cause}",
                             exc.fix) from None
        if not math.isfinite(number) or number < 0 or (positive and number == 0):
            raise self.error(key, f"{value!r} must be {'greater than zero' if positive else 'zero or more'}",
                             f'give a physical value, like `{key} = "{example}"`')
        return number

    def sourced(self, key: str, parser, example: str, sources: dict[str, str], positive: bool = True) -> float:
        number = self.quantity(key, parser, example, positive=positive)
        sources[key] = self._source(key)
        return number

    def sourced_whole(self, key: str, sources: dict[str, str], minimum: int = 1) -> int:
        number = self.whole(key, minimum=minimum)
        sources[key] = self._source(key)
        return number

    def sourced_flag(self, key: str, sources: dict[str, str]) -> bool:
        value = self.flag(key)
        sources[key] = self._source(key)
        return value

    def _source(self, key: str) -> str:
        src = self.data.get(f"{key}_source")
        if not isinstance(src, str) or not src.strip():
            raise self.error(f"{key}_source", f"the number `{key}` has no source",
                             f'add `{key}_source = "datasheet / paper / measurement it comes from"`')
        return src.strip()


def _plain(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputError(f"{where}: cannot read {value!r} as a number", "write a plain number like 4")
    return float(value)


# ---------------------------------------------------------------------------------------------
# platforms


def _cpu(t: _Table) -> Cpu:
    s: dict[str, str] = {}
    return Cpu(
        model=t.text("model", '"Intel Xeon Platinum 8470"'),
        cores=t.sourced_whole("cores", s),
        clock_hz=t.sourced("clock", parse_freq, "2.0GHz", s),
        copy_rate_cache=t.sourced("copy_rate_cache", parse_rate, "25GB/s", s),
        copy_rate_dram=t.sourced("copy_rate_dram", parse_rate, "6GB/s", s),
        cache_per_core=t.sourced("cache_per_core", parse_size, "2MiB", s),
        nontemporal_copy=t.sourced_flag("nontemporal_copy", s),
        syscall_time=t.sourced("syscall_time", parse_time, "0.2us", s),
        smb_request_time=t.sourced("smb_request_time", parse_time, "5us", s),
        rdma_wr_time=t.sourced("rdma_wr_time", parse_time, "0.5us", s),
        tcp_segment_time=t.sourced("tcp_segment_time", parse_time, "1.25us", s),
        tcp_checksum_rate=t.sourced("tcp_checksum_rate", parse_rate, "10GB/s", s),
        async_handoff_time=t.sourced("async_handoff_time", parse_time, "5us", s),
        sources=s,
    )


def _memory(t: _Table) -> Memory:
    s: dict[str, str] = {}
    return Memory(
        description=t.text("description", '"8 x DDR5-4800"'),
        dram_bandwidth=t.sourced("dram_bandwidth", parse_rate, "250GB/s", s),
        dram_peak=t.sourced("dram_peak", parse_rate, "307GB/s", s),
        sources=s,
    )


def _pcie(t: _Table) -> Pcie:
    s: dict[str, str] = {}
    gen = t.sourced_whole("generation", s)
    if gen not in (1, 2, 3, 4, 5):
        raise t.error("generation", f"PCIe generation {gen} is not modelled", "use 1..5")
    return Pcie(
        generation=gen,
        lanes=t.sourced_whole("lanes", s),
        max_payload=t.sourced("max_payload", parse_size, "256B", s),
        tlp_overhead=t.sourced("tlp_overhead", parse_size, "24B", s),
        read_completion=t.sourced("read_completion", parse_size, "256B", s),
        sources=s,
    )


def _nic(t: _Table) -> Nic:
    s: dict[str, str] = {}
    return Nic(
        model=t.text("model", '"NVIDIA ConnectX-7"'),
        ports=t.sourced_whole("ports", s),
        port_rate=t.sourced("port_rate", parse_rate, "200Gbit/s", s),
        pcie=_pcie(t.sub("pcie")),
        sources=s,
    )


def _dma(t: _Table) -> DmaEngine:
    s: dict[str, str] = {}
    name = t.text("name", '"dsa"')
    apis = t.raw("apis", '["dma_request_channel"]')
    if not isinstance(apis, list) or not all(isinstance(a, str) and a for a in apis):
        raise t.error("apis", f"{apis!r} is not a list of API names",
                      'write it like `apis = ["async_memcpy", "dma_request_channel"]`')
    unknown = [a for a in apis if a not in _paths.DMA_APIS]
    if unknown:
        raise t.error("apis", f"unknown API {unknown[0]!r}", f"use names from {', '.join(_paths.DMA_APIS)}")
    s["apis"] = t._source("apis")
    return DmaEngine(
        name=name,
        count=t.sourced_whole("count", s, minimum=0),
        rate=t.sourced("rate", parse_rate, "30GB/s", s),
        descriptor_time=t.sourced("descriptor_time", parse_time, "0.1us", s, positive=False),
        descriptor_cpu_time=t.sourced("descriptor_cpu_time", parse_time, "0.2us", s),
        completion_latency=t.sourced("completion_latency", parse_time, "2us", s),
        apis=tuple(apis),
        sources=s,
    )


def parse_platform(data: Mapping[str, Any], file: str) -> Platform:
    t = _Table(data, file)
    dma_list = data.get("dma", [])
    if not isinstance(dma_list, list):
        raise t.error("dma", "must be an array of tables", "write each engine as a [[dma]] table")
    engines = tuple(_dma(_Table(d, file, f"dma[{i}]")) for i, d in enumerate(dma_list))
    names = [e.name for e in engines]
    if len(set(names)) != len(names):
        raise t.error("dma", f"engine names repeat: {names}", "give every [[dma]] a distinct name")
    return Platform(
        name=t.text("name", '"xeon-8470"'),
        description=t.text("description", '"..."', default=""),
        cpu=_cpu(t.sub("cpu")),
        memory=_memory(t.sub("memory")),
        nic=_nic(t.sub("nic")),
        dma=engines,
        path=file,
    )


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


def _link(t: _Table) -> Link:
    count, rate = parse_links(t.raw("links", '"2x200Gbit/s"'), t.where("links"))
    protocol = t.choice("protocol", PROTOCOLS)
    return Link(count=count, rate=rate, protocol=protocol,
                mtu=t.quantity("mtu", parse_size, "1500B", default="1500B" if protocol != "infiniband" else "4096B"),
                tcp_timestamps=t.flag("tcp_timestamps", default=True))


def _workload(t: _Table) -> Workload:
    return Workload(
        transport=t.choice("transport", TRANSPORTS),
        operation=t.choice("operation", OPERATIONS, default="read"),
        connections=t.whole("connections"),
        outstanding_per_connection=t.whole("outstanding_per_connection"),
        io_cores=t.whole("io_cores"),
        async_workers=t.whole("async_workers", default=4),
        rtt=t.quantity("rtt", parse_time, "10us"),
        page_cache_hit=t.flag("page_cache_hit", default=True),
        checksum_offload=t.flag("checksum_offload", default=True),
        tso=t.flag("tso", default=True),
        gso_size=t.quantity("gso_size", parse_size, "64KiB", default="64KiB"),
    )


def _custom_paths(data: Any, file: str) -> dict[str, CopyPath]:
    if data is None:
        return {}
    if not isinstance(data, list):
        raise InputError(f"{file}: copy_path must be an array of tables", "write each as a [[copy_path]] table")
    out = {}
    for i, d in enumerate(data):
        where = f"{file}: copy_path[{i}]"
        path = _paths.from_mapping(d, where)
        out[path.name] = path
    return out


def _sweep(t: _Table | None, io_sizes: tuple[float, ...], n_paths: int, flat: Mapping[str, float],
           file: str, flags: frozenset[str] = frozenset()) -> Sweep:
    fields: list[tuple[str, tuple[float, ...]]] = []
    if t is not None:
        for key, values in t.data.items():
            if key == "io_sizes":
                continue
            if key not in flat:
                raise t.error(key, "not a field this scenario has",
                              f"sweep one of: {', '.join(sorted(flat))[:300]}")
            if not isinstance(values, list) or not values:
                raise t.error(key, f"{values!r} is not a list of values", f"write it like `\"{key}\" = [1, 2, 4]`")
            parsed = tuple(_sweep_value(v, t.where(key), flat[key], key in flags) for v in values)
            fields.append((key, parsed))
    sweep = Sweep(io_sizes=io_sizes, fields=tuple(fields))
    n = sweep.points(n_paths)
    if n > MAX_SWEEP_POINTS:
        raise InputError(f"{file}: sweep has {n:,} points, over the cap of {MAX_SWEEP_POINTS:,}",
                         "sweep fewer values (the cap keeps memory and time bounded)")
    return sweep


def _sweep_value(value: Any, where: str, current: float, is_flag: bool = False) -> float:
    if is_flag:
        if isinstance(value, bool) or value in (0, 1):
            return float(value)
        raise InputError(f"{where}: {value!r} is not true/false", "sweep it as [true, false]")
    if isinstance(value, str):
        for parser in (parse_rate, parse_size, parse_time, parse_freq):
            try:
                number = parser(value, where)
                break
            except InputError:
                continue
        else:
            raise InputError(f"{where}: cannot read {value!r}", 'write a number or a quantity like "8MiB"')
    else:
        number = _plain(value, where)
    if not math.isfinite(number) or number < 0 or (current > 0 and number <= 0):
        raise InputError(f"{where}: {value!r} must be positive", "sweep physical values only")
    return number


def parse_scenario(data: Mapping[str, Any], file: str, platform: Platform) -> Scenario:
    t = _Table(data, file)
    link = _link(t.sub("network"))
    workload = _workload(t.sub("workload"))
    if link.protocol == "tcp" and workload.transport != "tcp":
        raise t.error("workload.transport", "SMB Direct needs an RDMA protocol (roce-v2 or infiniband)",
                      'set network.protocol = "roce-v2" or workload.transport = "tcp"')
    if link.protocol != "tcp" and workload.transport == "tcp":
        raise t.error("network.protocol", "SMB over TCP runs on protocol tcp", 'set network.protocol = "tcp"')
    if link.rate > platform.nic.port_rate * 1.0000001:
        raise t.error("network.links", f"{link.label} is faster than a {platform.nic.model} port "
                      f"({platform.nic.port_rate * 8 / 1e9:g}Gbit/s)",
                      f"use at most {platform.nic.port_rate * 8 / 1e9:g}Gbit/s per link (more links instead), "
                      "or --platform with a profile whose NIC has faster ports")
    custom = _custom_paths(data.get("copy_path"), file)
    names = t.raw("copy_paths", '["cpu-copy", "zero-copy"]')
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise t.error("copy_paths", f"{names!r} is not a list of copy path names",
                      'write it like `copy_paths = ["cpu-copy", "zero-copy"]`')
    paths = []
    for n in names:
        row = custom.get(n) or _paths.builtin(n, workload.transport)
        if row is None:
            known = sorted(set(_paths.builtin_names()) | set(custom))
            if n in known:
                raise t.error("copy_paths", f"copy path {n!r} does not exist on transport {workload.transport}",
                              "remove it here or define it for this transport in a [[copy_path]] table")
            raise t.error("copy_paths", f"unknown copy path {n!r}",
                          f"use one of {', '.join(known)} or define it in a [[copy_path]] table")
        if workload.transport not in row.transports:
            raise t.error("copy_paths", f"copy path {n!r} does not exist on transport {workload.transport}",
                          f"it applies to {', '.join(row.transports)}; remove it here")
        paths.append(row)
    if len(set(names)) != len(names):
        raise t.error("copy_paths", "a copy path is listed twice", "list each path once")
    sweep_t = t.sub("sweep") if "sweep" in data else None
    io_text = (sweep_t.data.get("io_sizes") if sweep_t else None) or t.sub("workload").data.get("io_sizes")
    if io_text is None:
        raise t.error("sweep.io_sizes", "missing field", 'add `io_sizes = "64KiB..8MiB"` under [sweep]')
    where = t.where("sweep.io_sizes")
    io_sizes = tuple(parse_size_list(io_text, where) if isinstance(io_text, str)
                     else [parse_size(v, where) for v in io_text])
    for s in io_sizes:
        if s <= 0 or s > 1 << 30:
            raise InputError(f"{where}: I/O size {s:g} B is outside 1 B..1 GiB", 'write it like "4KiB..8MiB"')
    partial = Scenario(name=t.text("name", '"smbdirect-2x200g"'), description=t.text("description", '"..."', ""),
                       path=file, platform=platform, link=link, workload=workload, copy_paths=tuple(paths),
                       sweep=Sweep(io_sizes=io_sizes))
    target = None
    if "target" in data:
        target = t.quantity("target", parse_rate, "46GB/s")
    sweep = _sweep(sweep_t, io_sizes, len(paths), flat_params(partial), file, flag_params(partial))
    return dataclasses.replace(partial, sweep=sweep, target=target)


# ---------------------------------------------------------------------------------------------
# flat parameters: the names sweeps, overrides and calibration use


def flat_params(s: Scenario) -> dict[str, float]:
    """Every numeric parameter of a scenario as {'section.field': SI float}."""
    out: dict[str, float] = {}
    p = s.platform
    for section, obj in (("cpu", p.cpu), ("memory", p.memory), ("nic", p.nic), ("pcie", p.nic.pcie),
                         ("link", s.link), ("workload", s.workload)):
        for f in dataclasses.fields(obj):
            value = getattr(obj, f.name)
            if isinstance(value, bool):
                out[f"{section}.{f.name}"] = float(value)
            elif isinstance(value, (int, float)):
                out[f"{section}.{f.name}"] = float(value)
    for e in p.dma:
        for f in dataclasses.fields(e):
            value = getattr(e, f.name)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                out[f"dma.{e.name}.{f.name}"] = float(value)
    return out


_UNIT_OF_FIELD = {
    "copy_rate_cache": "bytes_per_s", "copy_rate_dram": "bytes_per_s", "tcp_checksum_rate": "bytes_per_s",
    "dram_bandwidth": "bytes_per_s", "dram_peak": "bytes_per_s", "port_rate": "bytes_per_s", "rate": "bytes_per_s",
    "cache_per_core": "bytes", "max_payload": "bytes", "tlp_overhead": "bytes", "read_completion": "bytes",
    "mtu": "bytes", "gso_size": "bytes", "io_size": "bytes",
    "syscall_time": "seconds", "smb_request_time": "seconds", "rdma_wr_time": "seconds",
    "tcp_segment_time": "seconds", "async_handoff_time": "seconds", "rtt": "seconds",
    "descriptor_time": "seconds", "descriptor_cpu_time": "seconds", "completion_latency": "seconds",
}


def unit_key(flat_name: str) -> str:
    """A flat parameter name as a record key with its unit: 'cpu.copy_rate_dram' -> 'cpu_copy_rate_dram_bytes_per_s'."""
    unit = _UNIT_OF_FIELD.get(flat_name.rsplit(".", 1)[-1])
    key = flat_name.replace(".", "_").replace("-", "_")
    return f"{key}_{unit}" if unit else key


def unit_label(flat_name: str) -> str:
    """The SI unit of a flat parameter for a column header: 'B/s', 'B', 's', or '' for counts."""
    return {"bytes_per_s": "B/s", "bytes": "B", "seconds": "s"}.get(
        _UNIT_OF_FIELD.get(flat_name.rsplit(".", 1)[-1], ""), "")


def flag_params(s: Scenario) -> frozenset[str]:
    """The flat names that are true/false switches (1.0 / 0.0 in flat_params)."""
    out = set()
    for section, obj in (("cpu", s.platform.cpu), ("link", s.link), ("workload", s.workload)):
        out.update(f"{section}.{f.name}" for f in dataclasses.fields(obj) if isinstance(getattr(obj, f.name), bool))
    return frozenset(out)


def with_params(s: Scenario, overrides: Mapping[str, float]) -> Scenario:
    """A copy of the scenario with some flat parameters replaced (for calibration, what-ifs)."""
    known = flat_params(s)
    for key in overrides:
        if key not in known:
            raise InputError(f"{s.path}: unknown parameter {key!r}",
                             f"use one of {', '.join(sorted(known))[:300]}")
    p = s.platform

    def patch(obj: Any, section: str) -> Any:
        changes = {}
        for f in dataclasses.fields(obj):
            key = f"{section}.{f.name}"
            if key in overrides:
                old = getattr(obj, f.name)
                new = overrides[key]
                changes[f.name] = bool(new) if isinstance(old, bool) else (int(round(new)) if isinstance(old, int) else float(new))
        return dataclasses.replace(obj, **changes) if changes else obj

    nic = dataclasses.replace(patch(p.nic, "nic"), pcie=patch(p.nic.pcie, "pcie"))
    platform = dataclasses.replace(p, cpu=patch(p.cpu, "cpu"), memory=patch(p.memory, "memory"), nic=nic,
                                   dma=tuple(patch(e, f"dma.{e.name}") for e in p.dma))
    return dataclasses.replace(s, platform=platform, link=patch(s.link, "link"), workload=patch(s.workload, "workload"))


# ---------------------------------------------------------------------------------------------
# files and names

PACKAGE_DIR = Path(__file__).resolve().parent
PLATFORM_DIR = PACKAGE_DIR / "platforms"


def _read_toml(path: Path, kind: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise InputError(f"{path}: no such {kind} file", f"check the path, or run `rdmarig scenarios list`") from None
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{path}: not valid TOML ({exc})", "fix the TOML syntax at that line") from None


def file_kind(name_or_path: str | Path) -> str:
    """'platform' or 'scenario': what a built-in name or .toml file holds."""
    text = str(name_or_path)
    if text in builtin_platforms():
        return "platform"
    if text in builtin_scenarios():
        return "scenario"
    path = Path(text)
    if path.is_file():
        data = _read_toml(path, "scenario or platform")
        return "platform" if "cpu" in data and "workload" not in data else "scenario"
    return "scenario"


def builtin_scenarios() -> dict[str, Path]:
    return {p.stem: p for p in sorted(PACKAGE_DIR.glob("*.toml"))}


def builtin_platforms() -> dict[str, Path]:
    return {p.stem: p for p in sorted(PLATFORM_DIR.glob("*.toml"))}


def _resolve(name_or_path: str | Path, builtins: dict[str, Path], kind: str, hint: str) -> Path:
    text = str(name_or_path)
    if text in builtins:
        return builtins[text]
    path = Path(text)
    if path.suffix == ".toml" or path.exists() or "/" in text:
        if not path.is_file():
            raise InputError(f"{text}: no such {kind} file", f"check the path; {hint}")
        return path
    raise InputError(f"unknown {kind} {text!r}", f"use one of {', '.join(builtins) or '(none)'} or a path to a .toml file; {hint}")


def load_platform(name_or_path: str | Path) -> Platform:
    path = _resolve(name_or_path, builtin_platforms(), "platform", "`rdmarig scenarios list` shows the built-in ones")
    return parse_platform(_read_toml(path, "platform"), str(path))


def scenario_file(name_or_path: str | Path) -> Path:
    return _resolve(name_or_path, builtin_scenarios(), "scenario", "`rdmarig scenarios list` shows the built-in ones")


def load_scenario(name_or_path: str | Path, platform: str | Path | None = None) -> Scenario:
    """Load and validate a scenario by built-in name or path; `platform` overrides its platform."""
    path = scenario_file(name_or_path)
    data = _read_toml(path, "scenario")
    if platform is None:
        ref = data.get("platform")
        if not isinstance(ref, str) or not ref:
            raise InputError(f"{path}: platform: missing field",
                             'add `platform = "xeon-8470-cx7"` (a name from scenarios/platforms or a path)')
        platform = ref
        if ref not in builtin_platforms() and not Path(ref).is_absolute():
            beside = path.parent / ref
            if beside.is_file():
                platform = beside
    return parse_scenario(data, str(path), load_platform(platform))
