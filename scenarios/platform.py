"""Platform profiles (scenarios/platforms/*.toml): the hardware, every number with its source.

A profile describes one server: CPU, memory, NIC + PCIe, DMA engines. Every number carries a
`<field>_source = "..."` beside it (datasheet, paper, measurement, or "assumption: ..."); a number
without a source, an unknown key or a value outside its physical range (scenarios/limits.py) is
an InputError naming the file and the field. A profile may build on another (`base = "..."`) and
carry a measured section (scenarios/profile.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Mapping

from scenarios import copy_paths as _paths
from scenarios import fields as F
from scenarios import limits as L
from scenarios.errors import InputError
from scenarios.params import platform_params
from scenarios.spread import Spread, of_interval
from scenarios.toml_table import TomlTable
from scenarios.units import parse_freq, parse_rate, parse_size, parse_time, quantity_text


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
    smb_request_time: float         # seconds of CPU to parse and answer one SMB2 request (the server's)
    smb_client_time: float          # seconds of CPU a client spends per SMB2 request (build it, parse the response)
    rdma_wr_time: float             # seconds of CPU to post one work request and reap its completion
    tcp_segment_time: float         # seconds of CPU per TSO/GSO send unit in the TCP stack
    tcp_checksum_rate: float        # bytes/s one core checksums when the NIC does not
    async_handoff_time: float       # seconds of CPU to hand one I/O to a worker and back
    sockets: int                    # sockets of the server (cores, DRAM bandwidth are per socket)
    copy_rate_cross_core: float     # bytes/s one core copies a buffer another core / engine / NIC just wrote
    copy_rate_remote: float         # bytes/s one core copies from the other socket's memory
    copy_page_time: float           # seconds of CPU per page (folio) a kernel copy steps through
    csum_copy_rate: float           # bytes/s one core copies and checksums in one pass (csum_and_copy)
    tcp_checksum_in_copy: bool      # does the kernel's TCP send checksum while it copies (no NIC offload)?
    tcp_receive_time: float         # seconds of CPU per received GRO unit (softirq: GRO, TCP receive, ACK)
    tcp_ack_time: float             # seconds of CPU for the sender to process one ACK (free sent skbs)
    page_fault_time: float          # seconds of CPU per page fault, beyond zeroing the page
    page_zero_rate: float           # bytes/s one core clears fresh anonymous pages
    pin_page_time: float            # seconds of CPU to pin (and unpin) one 4 KiB page
    pin_folio_time: float           # seconds of CPU per folio pinned, beyond its 4 KiB pages
    unmap_page_time: float          # seconds of CPU to unmap one page (zap the PTE, release it)
    tlb_shootdown_time: float       # seconds of CPU per unmap that flushes other CPUs' TLBs (IPI round)
    mr_register_time: float         # seconds of CPU per memory-region registration call (beyond pinning)
    crc32_rate: float               # bytes/s one core computes a CRC-32 (zlib) over: a client that checks what it reads
    softirq_budget: float           # seconds of softirq one bottom-half exit runs in the task before leaving the rest to ksoftirqd
    sources: Mapping[str, str] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class Memory:
    description: str
    dram_bandwidth: float           # bytes/s sustained (measured, all cores)
    dram_peak: float                # bytes/s channels x transfer rate x 8 B (datasheet)
    inter_socket_bandwidth: float   # bytes/s one direction of the links between two sockets (UPI, xGMI)
    sources: Mapping[str, str] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class Pcie:
    generation: int
    lanes: int
    max_payload: float              # bytes per TLP (MPS)
    tlp_overhead: float             # bytes per TLP: framing + sequence + header + LCRC
    read_completion: float          # bytes per completion TLP when the NIC reads host memory
    sources: Mapping[str, str] = field(default_factory=dict, compare=False)


NIC_RDMA = ("hardware", "software")


@dataclass(frozen=True)
class Nic:
    model: str
    ports: int
    port_rate: float                # bytes/s the fastest port supports
    pcie: Pcie
    checksum_offload: bool = True   # can the NIC compute TCP checksums (and verify them on receive)?
    rss_queues: int = 64            # receive queues the NIC hashes flows over (RSS channels)
    rdma: str = "hardware"          # who runs the RDMA transport: the NIC, or the host's CPU (soft-RoCE, rxe)
    # software RDMA (rxe): CPU per unit on the host's cores, at each end (0 with a hardware NIC)
    soft_crc_rate: float = 0.0      # bytes/s one core computes the ICRC (crc32) over the payload, one pass
    soft_packet_time: float = 0.0   # seconds of CPU per packet at one end (skb, headers, netdev, rxe state)
    soft_wr_time: float = 0.0       # seconds of CPU per work request in the kernel (post, doorbell, completion)
    soft_inline_time: float = 0.0   # mean seconds of a sleeping poster's chain it runs before ksoftirqd takes the rest
    soft_copy_absorption: float = 0.0   # seconds of pending chain a kernel copy runs per second of its own
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
class Measured:
    """A figure measured on the host the profile describes; it overrides the datasheet figure of the
    same name (scenarios/profile.py reads it from the profile's [measured] section)."""
    value: float                    # SI
    text: str                       # as written in the profile ("45.78GB/s")
    records: tuple[str, ...]        # ids of the stored records it rests on (`rdmarig results show ID`)
    method: str                     # how it was obtained from them
    interval: str = ""              # what low..high is: "95% fit interval", "range over the repetitions"
    low: float | None = None
    high: float | None = None
    low_text: str = ""
    high_text: str = ""

    def source(self) -> str:
        """The figure's `_source`, as every figure has one: method, interval, record ids."""
        interval = f"; {self.interval} {self.low_text} .. {self.high_text}" if self.low_text else ""
        return f"measurement: {self.method}{interval}; records {' '.join(self.records)}"


@dataclass(frozen=True)
class Platform:
    name: str
    description: str
    cpu: Cpu
    memory: Memory
    nic: Nic
    dma: tuple[DmaEngine, ...]
    path: str = ""
    base: str = ""                  # the profile this one builds on (`base = "epyc-9654-cx7"`), if any
    # figures measured on the host, keyed like sources() ('cpu.copy_rate_cache', 'pcie.max_payload')
    measured: Mapping[str, Measured] = field(default_factory=dict, compare=False)
    # figures that carry a spread (scenarios/spread.py), keyed like sources(): a `<key>_spread` or a
    # measured figure's low..high
    spreads: Mapping[str, Spread] = field(default_factory=dict, compare=False)

    def sources(self) -> dict[str, str]:
        """Every number's source, keyed like the flat parameter names ('cpu.cores')."""
        out: dict[str, str] = {}
        for section, obj in (("cpu", self.cpu), ("memory", self.memory), ("nic", self.nic),
                             ("pcie", self.nic.pcie)):
            out.update({f"{section}.{k}": v for k, v in obj.sources.items()})
        for engine in self.dma:
            out.update({f"dma.{engine.name}.{k}": v for k, v in engine.sources.items()})
        return out


# ---------------------------------------------------------------------------------------------
# the sections as data: one row per key (scenarios/fields.py), the range from scenarios/limits.py

def _n(key: str, parser, example: str, limit, **kw) -> F.Field:
    return F.quantity(key, parser, example, limit, sourced=True, **kw)


CPU_FIELDS = (
    F.text("model", '"Intel Xeon Platinum 8470"'),
    F.whole("cores", L.CORES, sourced=True),
    _n("clock", parse_freq, "2.0GHz", L.CLOCK, attr="clock_hz"),
    _n("copy_rate_cache", parse_rate, "25GB/s", L.CORE_COPY_RATE),
    _n("copy_rate_dram", parse_rate, "6GB/s", L.CORE_COPY_RATE),
    _n("cache_per_core", parse_size, "2MiB", L.CACHE_PER_CORE),
    F.flag("nontemporal_copy", sourced=True),
    _n("syscall_time", parse_time, "0.2us", L.STEP_TIME),
    _n("smb_request_time", parse_time, "5us", L.SMB_REQUEST_TIME),
    _n("smb_client_time", parse_time, "5us", L.SMB_REQUEST_TIME),
    _n("rdma_wr_time", parse_time, "0.5us", L.STEP_TIME),
    _n("tcp_segment_time", parse_time, "1.25us", L.STEP_TIME),
    _n("tcp_checksum_rate", parse_rate, "10GB/s", L.CORE_COPY_RATE),
    _n("async_handoff_time", parse_time, "5us", L.STEP_TIME),
    F.whole("sockets", L.SOCKETS, sourced=True),
    _n("copy_rate_cross_core", parse_rate, "6GB/s", L.CORE_COPY_RATE),
    _n("copy_rate_remote", parse_rate, "4GB/s", L.CORE_COPY_RATE),
    _n("copy_page_time", parse_time, "0.1us", L.ZERO_OK_STEP_TIME),
    _n("csum_copy_rate", parse_rate, "9GB/s", L.CORE_COPY_RATE),
    F.flag("tcp_checksum_in_copy", sourced=True),
    _n("tcp_receive_time", parse_time, "1.25us", L.STEP_TIME),
    _n("tcp_ack_time", parse_time, "0.5us", L.STEP_TIME),
    _n("page_fault_time", parse_time, "1us", L.MM_STEP_TIME),
    _n("page_zero_rate", parse_rate, "10GB/s", L.CORE_COPY_RATE),
    _n("pin_page_time", parse_time, "50ns", L.MM_STEP_TIME),
    _n("pin_folio_time", parse_time, "50ns", L.MM_STEP_TIME),
    _n("unmap_page_time", parse_time, "0.2us", L.MM_STEP_TIME),
    _n("tlb_shootdown_time", parse_time, "5us", L.MM_STEP_TIME),
    _n("mr_register_time", parse_time, "5us", L.STEP_TIME),
    _n("crc32_rate", parse_rate, "2GB/s", L.CORE_COPY_RATE),
    _n("softirq_budget", parse_time, "2ms", L.SOFTIRQ_BUDGET),
)
MEMORY_FIELDS = (
    F.text("description", '"8 x DDR5-4800"'),
    _n("dram_bandwidth", parse_rate, "250GB/s", L.DRAM_RATE),
    _n("dram_peak", parse_rate, "307GB/s", L.DRAM_RATE),
    _n("inter_socket_bandwidth", parse_rate, "128GB/s", L.SOCKET_LINK_RATE),
)
PCIE_FIELDS = (
    F.whole("generation", L.PCIE_GENERATIONS, sourced=True),
    F.whole("lanes", L.PCIE_LANES, sourced=True),
    _n("max_payload", parse_size, "256B", L.MAX_PAYLOAD),
    _n("tlp_overhead", parse_size, "24B", L.TLP_OVERHEAD),
    _n("read_completion", parse_size, "256B", L.READ_COMPLETION),
)
NIC_FIELDS = (
    F.text("model", '"NVIDIA ConnectX-7"'),
    F.whole("ports", L.NIC_PORTS, sourced=True),
    _n("port_rate", parse_rate, "200Gbit/s", L.PORT_RATE),
    F.flag("checksum_offload", sourced=True),
    F.whole("rss_queues", L.RSS_QUEUES, sourced=True),
    F.other("rdma", sourced=True),
    F.other("pcie"),
)
# read only when rdma = "software": the host's CPU runs the RDMA transport (soft-RoCE, rdma_rxe)
SOFT_RDMA_FIELDS = (
    _n("soft_crc_rate", parse_rate, "2GB/s", L.CORE_COPY_RATE),
    _n("soft_packet_time", parse_time, "2us", L.ZERO_OK_STEP_TIME),
    _n("soft_wr_time", parse_time, "5us", L.ZERO_OK_STEP_TIME),
    _n("soft_inline_time", parse_time, "8ms", L.SOFT_INLINE_TIME),
    F.number("soft_copy_absorption", L.SOFT_COPY_ABSORPTION, sourced=True),
)
DMA_FIELDS = (
    F.text("name", '"dsa"'),
    F.whole("count", L.DMA_ENGINES, sourced=True),
    _n("rate", parse_rate, "30GB/s", L.DMA_RATE),
    _n("descriptor_time", parse_time, "0.1us", L.DESCRIPTOR_TIME),
    _n("descriptor_cpu_time", parse_time, "0.2us", L.STEP_TIME),
    _n("completion_latency", parse_time, "2us", L.COMPLETION_LATENCY),
    F.other("apis", sourced=True),
)
TOP_FIELDS = (F.text("name", '"xeon-8470"'), F.text("description", '"..."', default=""),
              F.other("cpu"), F.other("memory"), F.other("nic"), F.other("dma"),
              F.other("base"), F.other("measured"))

# The flat-name prefix ('cpu.', 'pcie.', 'dma.<name>.') of each section: platform.sources() and
# scenarios.params.flat_params name figures this way.
SECTIONS: dict[str, tuple[F.Field, ...]] = {"cpu": CPU_FIELDS, "memory": MEMORY_FIELDS,
                                            "nic": NIC_FIELDS + SOFT_RDMA_FIELDS, "pcie": PCIE_FIELDS,
                                            "dma": DMA_FIELDS}
# Where a section sits in the file
TOML_PATH = {"cpu": "cpu", "memory": "memory", "nic": "nic", "pcie": "nic.pcie", "dma": "dma"}

# Figures that bound another: (figure, the figure it cannot exceed, unit of both, why).
RELATIONS = (
    ("memory.dram_bandwidth", "memory.dram_peak", "bytes/s", "sustained DRAM bandwidth cannot exceed the channels' peak"),
    ("pcie.read_completion", "pcie.max_payload", "bytes", "a completion TLP carries at most Max_Payload_Size (PCIe spec)"),
)


def field_of(flat_name: str, by_key: bool = False) -> F.Field | None:
    """The field of a flat platform name ('cpu.clock_hz', 'pcie.lanes', 'dma.dsa.rate'); `by_key`:
    of a figure named as in the file and in sources() ('cpu.clock')."""
    section, _, rest = flat_name.partition(".")
    fields = SECTIONS.get(section)
    if fields is None:
        return None
    name = rest.rsplit(".", 1)[-1] if section == "dma" else rest
    return ({f.key: f for f in fields} if by_key else F.by_name(fields)).get(name)


def toml_field(key: str) -> F.Field | None:
    """The field of a figure named as in sources() and the measured section ('cpu.clock')."""
    return field_of(key, by_key=True)


def flat_name(key: str) -> str:
    """A figure's sources() name as its flat parameter name: 'cpu.clock' -> 'cpu.clock_hz'."""
    field = toml_field(key)
    return key if field is None else key.rsplit(".", 1)[0] + "." + field.name


def broken_relation(flat: Mapping[str, float], relations: tuple = RELATIONS) -> tuple[str, str, str] | None:
    """('memory.dram_bandwidth', 'memory.dram_peak', '500GB/s exceeds memory.dram_peak 307.2GB/s: why'),
    or None when every relation holds."""
    for small, big, unit, why in relations:
        if small in flat and big in flat and flat[small] > flat[big] * (1 + 1e-9):
            return small, big, (f"{quantity_text(flat[small], unit)} exceeds {big} "
                                f"{quantity_text(flat[big], unit)}: {why}")
    return None


def _section(t: TomlTable, fields: tuple[F.Field, ...], cls, **extra: Any):
    values, sources = F.read_section(t, fields)
    return cls(**values, **extra, sources=sources)


def _dma(t: TomlTable) -> DmaEngine:
    values, sources = F.read_section(t, DMA_FIELDS)
    apis = t.raw("apis", '["dma_request_channel"]')
    if not isinstance(apis, list) or not all(isinstance(a, str) and a for a in apis):
        raise t.error("apis", f"{apis!r} is not a list of API names",
                      'write it like `apis = ["async_memcpy", "dma_request_channel"]`')
    unknown = [a for a in apis if a not in _paths.DMA_APIS]
    if unknown:
        raise t.error("apis", f"unknown API {unknown[0]!r}", f"use names from {', '.join(_paths.DMA_APIS)}")
    sources = {"apis": t.source("apis"), **sources}      # in the order the profiles write them
    return DmaEngine(**values, apis=tuple(apis), sources=sources)


def _nic(t: TomlTable) -> Nic:
    """[nic]: the card; with `rdma = "software"` the host's CPU runs the RDMA transport, and the
    per-byte, per-packet and per-work-request figures of that software are required."""
    rdma = t.choice("rdma", NIC_RDMA)
    soft = rdma == "software"
    present = [f.key for f in SOFT_RDMA_FIELDS if f.key in t.data]
    if present and not soft:
        raise t.error(present[0], "a software-RDMA figure on a NIC whose rdma is hardware",
                      'remove it, or set `rdma = "software"` (soft-RoCE: the host\'s CPU runs RDMA)')
    fields = NIC_FIELDS + (SOFT_RDMA_FIELDS if soft else ())
    values, sources = F.read_section(t, fields)
    sources = {**sources, "rdma": t.source("rdma")}
    pcie = _section(t.sub("pcie"), PCIE_FIELDS, Pcie)
    return Nic(**values, rdma=rdma, pcie=pcie, sources=sources)


def parse_platform(data: Mapping[str, Any], file: str, base: str = "",
                   measured: Mapping[str, Measured] | None = None) -> Platform:
    """A platform from one parsed mapping (a profile with its base and measured section already
    merged in by scenarios/profile.py, which passes `base` and `measured` along)."""
    t = TomlTable(data, file)
    t.reject_unknown(F.known_keys(TOP_FIELDS))
    dma_list = data.get("dma", [])
    if not isinstance(dma_list, list):
        raise t.error("dma", "must be an array of tables", "write each engine as a [[dma]] table")
    if not all(isinstance(d, dict) for d in dma_list):
        raise t.error("dma", "every entry must be a table", "write each engine as a [[dma]] table")
    name = t.text("name", '"xeon-8470"')
    description = t.text("description", '"..."', default="")
    cpu = _section(t.sub("cpu"), CPU_FIELDS, Cpu)
    memory = _section(t.sub("memory"), MEMORY_FIELDS, Memory)
    nic_t = t.sub("nic")
    nic = _nic(nic_t)
    engines = tuple(_dma(TomlTable(d, file, f"dma[{i}]")) for i, d in enumerate(dma_list))
    names = [e.name for e in engines]
    if len(set(names)) != len(names):
        raise t.error("dma", f"engine names repeat: {names}", "give every [[dma]] a distinct name")
    platform = Platform(name=name, description=description, cpu=cpu, memory=memory, nic=nic, dma=engines,
                        path=file, base=base, measured=dict(measured or {}))
    broken = broken_relation(platform_params(platform))
    if broken:
        section, _, key = broken[0].partition(".")
        raise InputError(f"{file}: {TOML_PATH[section]}.{key}: {broken[2]}",
                         "correct the figure that is wrong (each keeps its source)")
    platform = replace(platform, spreads=_spreads(t, nic_t, dma_list, file, measured or {}))
    _check_spread_relations(platform, file)
    return platform


def _spreads(t: TomlTable, nic_t: TomlTable, dma_list: list, file: str,
             measured: Mapping[str, Measured]) -> dict[str, Spread]:
    """Every spread of the profile, keyed like sources(): the `<key>_spread`s of its sections, and
    the low..high of its measured figures (which replace a spread the datasheet figure had)."""
    tables = [("cpu", t.sub("cpu"), CPU_FIELDS), ("memory", t.sub("memory"), MEMORY_FIELDS),
              ("nic", nic_t, NIC_FIELDS + SOFT_RDMA_FIELDS), ("pcie", nic_t.sub("pcie"), PCIE_FIELDS)]
    tables += [(f"dma.{d['name']}", TomlTable(d, file, f"dma[{i}]"), DMA_FIELDS) for i, d in enumerate(dma_list)]
    out = {f"{prefix}.{key}": s for prefix, table, fields in tables for key, s in F.read_spreads(table, fields).items()}
    for key, m in measured.items():
        if m.low is not None and m.high is not None:
            out[key] = of_interval(m.value, m.low, m.high, f"{m.interval} {m.low_text} .. {m.high_text}", m.source())
    return out


def _check_spread_relations(p: Platform, file: str) -> None:
    """A figure bounded by another stays below it across both spreads (the DRAM bandwidth's high
    end below the peak's low end), so no draw breaks the relation."""
    flat = platform_params(p)
    for small, big, unit, why in RELATIONS:
        top = _spread_of(p, small)
        bottom = _spread_of(p, big)
        high = top.high if top is not None else flat[small]
        low = bottom.low if bottom is not None else flat[big]
        if (top is not None or bottom is not None) and high > low * (1 + 1e-9):
            section, _, key = small.partition(".")
            raise InputError(f"{file}: {TOML_PATH[section]}.{key}_spread: reaches {quantity_text(high, unit)}, "
                             f"above {big} {quantity_text(low, unit)}: {why}",
                             "keep the spread below the figure that bounds it")


def _spread_of(p: Platform, flat: str) -> Spread | None:
    """The spread of a flat name ('memory.dram_bandwidth'); spreads are keyed like sources()."""
    section, _, name = flat.rpartition(".")
    field = field_of(flat)
    return p.spreads.get(f"{section}.{field.key if field is not None else name}")
