"""'What it takes': cores, DMA engines and links needed to reach a target payload rate.

Resources that can be added (serving cores, worker cores, links + their NICs) are scaled to the
target; fixed ones (the socket's DRAM and cores, the DMA engines the kernel API reaches) either
allow the target or name why it cannot be reached.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from models.sweep import Evaluation
from scenarios.units import to_gbytes_per_s


@dataclass
class Requirements:
    target: float                       # payload bytes/s asked for
    serving_cores: np.ndarray           # serving threads (= connections at least) needed
    worker_cores: np.ndarray
    flow_cores: np.ndarray              # cores the connections' receive work needs (softirq of their queues)
    total_cores: np.ndarray
    dma_engines: np.ndarray             # whole engines (0 when the path needs none, nan when none is reachable)
    links: np.ndarray
    nics: np.ndarray
    outstanding_ios: np.ndarray         # I/Os in flight needed (Little's law at the current latency)
    feasible: np.ndarray                # bool
    blocker: list[str]                  # why not, per point ("" when feasible)


def requirements(ev: Evaluation, target: float) -> Requirements:
    r = ev.result
    s = ev.scenario
    S = r.io_size
    serving = _whole(target * r.serving_seconds_per_io / S)
    workers = _whole(target * r.worker_seconds_per_io / S)
    flows = _whole(target * r.flow_seconds_per_io / S)
    dma_copies = ev.table.dma_copies[r.path_index]
    with np.errstate(divide="ignore", invalid="ignore"):
        dma = np.where(dma_copies > 0, _whole(target * dma_copies / r.dma_rate_per_engine), 0.0)
        links = np.ceil(target / r.link_capacity_per_link - 1e-9)
        # enough NICs for the links' ports and for the PCIe traffic
        nics = np.maximum(np.ceil(links / s.platform.nic.ports), np.ceil(target / r.pcie_capacity_per_nic - 1e-9))
    outstanding = np.ceil(target * r.latency_seconds / S - 1e-9)
    dram_cap = r.capacity[2]
    cpu_total = serving + workers + flows
    blocker = []
    for i in range(r.throughput.size):
        why = ""
        if dma_copies[i] > 0 and r.dma_rate_per_engine.flat[i] <= 0:
            path = ev.table.names[int(r.path_index.flat[i])]
            api = next(p.dma_api for p in s.copy_paths if p.name == path)
            why = f"no DMA engine reachable via {api}"
        elif dma.flat[i] > r.dma_engines_reachable.flat[i]:
            why = f"needs {dma.flat[i]:.0f} DMA engines, {r.dma_engines_reachable.flat[i]:.0f} reachable"
        elif dram_cap.flat[i] < target:
            why = f"DRAM carries at most {to_gbytes_per_s(dram_cap.flat[i]):.1f} GB/s on this path"
        elif cpu_total.flat[i] > s.platform.cpu.cores:
            why = f"needs {cpu_total.flat[i]:.0f} cores, the socket has {s.platform.cpu.cores}"
        blocker.append(why)
    feasible = np.array([b == "" for b in blocker])
    return Requirements(target=target, serving_cores=serving, worker_cores=workers, flow_cores=flows,
                        total_cores=cpu_total,
                        dma_engines=np.where(np.isfinite(dma), dma, np.nan), links=links,
                        nics=nics, outstanding_ios=outstanding,
                        feasible=feasible, blocker=blocker)


def _whole(x: np.ndarray) -> np.ndarray:
    """Whole units needed for a fractional demand (0 stays 0, never -0)."""
    n = np.ceil(np.asarray(x, dtype=float) - 1e-9)
    return np.where(n > 0, n, 0.0)
