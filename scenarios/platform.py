"""Platform profiles (scenarios/platforms/*.toml): the hardware, every number with its source.

A profile describes one server: CPU, memory, NIC + PCIe, DMA engines. Every number carries a
`<field>_source = "..."` beside it (datasheet, paper, measurement, or "assumption: ..."); a number
without a source is an InputError naming the file and the field.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from scenarios import copy_paths as _paths
from scenarios.toml_table import TomlTable
from scenarios.units import parse_freq, parse_rate, parse_size, parse_time


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


def _cpu(t: TomlTable) -> Cpu:
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


def _memory(t: TomlTable) -> Memory:
    s: dict[str, str] = {}
    return Memory(
        description=t.text("description", '"8 x DDR5-4800"'),
        dram_bandwidth=t.sourced("dram_bandwidth", parse_rate, "250GB/s", s),
        dram_peak=t.sourced("dram_peak", parse_rate, "307GB/s", s),
        sources=s,
    )


def _pcie(t: TomlTable) -> Pcie:
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


def _nic(t: TomlTable) -> Nic:
    s: dict[str, str] = {}
    return Nic(
        model=t.text("model", '"NVIDIA ConnectX-7"'),
        ports=t.sourced_whole("ports", s),
        port_rate=t.sourced("port_rate", parse_rate, "200Gbit/s", s),
        pcie=_pcie(t.sub("pcie")),
        sources=s,
    )


def _dma(t: TomlTable) -> DmaEngine:
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
    t = TomlTable(data, file)
    dma_list = data.get("dma", [])
    if not isinstance(dma_list, list):
        raise t.error("dma", "must be an array of tables", "write each engine as a [[dma]] table")
    if not all(isinstance(d, dict) for d in dma_list):
        raise t.error("dma", "every entry must be a table", "write each engine as a [[dma]] table")
    engines = tuple(_dma(TomlTable(d, file, f"dma[{i}]")) for i, d in enumerate(dma_list))
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
