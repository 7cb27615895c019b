"""Copy paths (rows of data, scenarios/copy_paths.py) as demand arrays the model can index.

`demand_table(paths, engines)` turns a list of CopyPath rows into one numpy array per demand:
index any of them with a per-point path index to get that point's demand.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from scenarios.copy_paths import CopyPath


@dataclass(frozen=True)
class DemandTable:
    names: tuple[str, ...]
    serving_cold_copies: np.ndarray     # copies per payload byte in the serving thread, cold source
    serving_warm_copies: np.ndarray     # ... from a reused buffer of I/O size
    serving_filled_copies: np.ndarray   # ... from a buffer another core / engine / the NIC just wrote
    serving_mapped_copies: np.ndarray   # ... from the file's pages through a user mapping (cold, no lookups)
    worker_cold_copies: np.ndarray
    worker_warm_copies: np.ndarray
    worker_filled_copies: np.ndarray
    worker_mapped_copies: np.ndarray
    dma_copies: np.ndarray              # copies per payload byte done by DMA engines
    dma_descriptor: np.ndarray          # bytes per descriptor
    dma_reach: np.ndarray               # [path, engine] True when the path's API reaches the engine
    syscalls_per_io: np.ndarray
    syscalls_per_chunk: np.ndarray
    chunk: np.ndarray
    rdma_wrs_per_io: np.ndarray
    handoffs_per_io: np.ndarray
    zc_notifications_per_io: np.ndarray
    workers_take_stack: np.ndarray      # 1 where io-wq workers run the network send work
    workers_take_calls: np.ndarray      # 1 where io-wq workers run the operations' kernel work
    maps_per_io: np.ndarray             # passes over the I/O's pages: map + fault + unmap
    allocs_per_io: np.ndarray           # fresh anonymous pages: fault + zero + unmap
    pins_per_io: np.ndarray             # pin + unpin
    registrations_per_io: np.ndarray    # memory-region registrations
    dma_per_page: np.ndarray            # 1 where a descriptor carries one page of the workload
    rdma_source: np.ndarray             # the memory an RDMA send reads: 0 buffer, 1 page cache, 2 filled

    @property
    def cpu_copies(self) -> np.ndarray:
        return (self.serving_cold_copies + self.serving_warm_copies + self.serving_filled_copies
                + self.serving_mapped_copies + self.worker_cold_copies + self.worker_warm_copies
                + self.worker_filled_copies + self.worker_mapped_copies)

    @property
    def cold_copies(self) -> np.ndarray:
        """Copies whose source lines come from DRAM (the page cache, read or mapped)."""
        return self.serving_cold_copies + self.worker_cold_copies + self.serving_mapped_copies + self.worker_mapped_copies

    @property
    def send_copies(self) -> np.ndarray:
        """Copies from a buffer (reused or filled): on TCP the send copy into socket buffers."""
        return self.serving_warm_copies + self.serving_filled_copies + self.worker_warm_copies + self.worker_filled_copies


def _count(path: CopyPath, who: str, source: str) -> float:
    return float(sum(1 for c in path.copies if c.who == who and c.source == source))


def demand_table(paths: list[CopyPath] | tuple[CopyPath, ...], engine_apis: list[tuple[str, ...]]) -> DemandTable:
    """One array per demand, one entry per path; `engine_apis[e]` lists the APIs reaching engine e."""
    def col(fn) -> np.ndarray:
        return np.array([fn(p) for p in paths], dtype=float)

    reach = np.array([[bool(p.dma_api) and p.dma_api in apis for apis in engine_apis] for p in paths],
                     dtype=bool).reshape(len(paths), len(engine_apis))
    return DemandTable(
        names=tuple(p.name for p in paths),
        serving_cold_copies=col(lambda p: _count(p, "serving", "page-cache")),
        serving_warm_copies=col(lambda p: _count(p, "serving", "buffer")),
        serving_filled_copies=col(lambda p: _count(p, "serving", "filled")),
        serving_mapped_copies=col(lambda p: _count(p, "serving", "mapped")),
        worker_cold_copies=col(lambda p: _count(p, "workers", "page-cache")),
        worker_warm_copies=col(lambda p: _count(p, "workers", "buffer")),
        worker_filled_copies=col(lambda p: _count(p, "workers", "filled")),
        worker_mapped_copies=col(lambda p: _count(p, "workers", "mapped")),
        dma_copies=col(lambda p: float(sum(1 for c in p.copies if c.who == "dma"))),
        dma_descriptor=col(lambda p: p.dma_descriptor),
        dma_reach=reach,
        syscalls_per_io=col(lambda p: p.syscalls_per_io),
        syscalls_per_chunk=col(lambda p: p.syscalls_per_chunk),
        chunk=col(lambda p: p.chunk),
        rdma_wrs_per_io=col(lambda p: p.rdma_wrs_per_io),
        handoffs_per_io=col(lambda p: p.handoffs_per_io),
        zc_notifications_per_io=col(lambda p: p.zc_notifications_per_io),
        workers_take_stack=col(lambda p: float("stack" in p.workers_take)),
        workers_take_calls=col(lambda p: float("calls" in p.workers_take)),
        maps_per_io=col(lambda p: p.maps_per_io),
        allocs_per_io=col(lambda p: p.allocs_per_io),
        pins_per_io=col(lambda p: p.pins_per_io),
        registrations_per_io=col(lambda p: p.registrations_per_io),
        dma_per_page=col(lambda p: float(p.dma_per_page)),
        rdma_source=col(lambda p: float(("buffer", "page-cache", "filled", "mapped").index(p.rdma_source))),
    )
