"""The bottleneck model: payload throughput = min over resources of each one's capacity.

For every point (one I/O size, one copy path, one set of parameters) each resource gets a
capacity in payload bytes/s: what it could carry if nothing else limited. The smallest binds.
Utilisation of a resource = throughput / its capacity; headroom = how much faster the point
would go if the binding resource were removed (next capacity / throughput - 1).

Resources:
  links        count x rate, less framing (Ethernet, IP/UDP/BTH or TCP headers, SMB headers)
  pcie         NIC host interface: line encoding, TLP overhead per read completion, descriptors
  dram         sustained bandwidth / DRAM bytes per payload byte of the path
  cpu-serving  serving threads: per-I/O costs + copies done in the serving thread + TCP stack
  cpu-workers  io_uring async workers doing the copies moved off the serving thread
  cpu-all      every core of the socket (serving + worker time together)
  dma          DMA engines the path's kernel API reaches (zero when it reaches none)
  pipeline     outstanding I/Os x size / per-I/O latency (Little's law)

Inputs are flat parameters (see scenarios.schema.flat_params) as numpy arrays that broadcast,
plus `workload.io_size`, `link.protocol_code` (0 roce-v2, 1 infiniband, 2 tcp),
`workload.operation_code` (0 read: the server sends, 1 write: it receives) and `path_index`.
A WRITE mirrors a READ: the same copies in the other direction (RDMA READ or TCP receive into a
buffer, then into the page cache); only the PCIe transaction type differs (posted writes).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np

from models import pipeline, resources
from models.copy_paths import DemandTable

RESOURCES = ("links", "pcie", "dram", "cpu-serving", "cpu-workers", "cpu-all", "dma", "pipeline")


@dataclass
class Result:
    """Arrays over points; `capacity` has one row per resource in RESOURCES order."""
    io_size: np.ndarray
    path_index: np.ndarray
    throughput: np.ndarray              # payload bytes/s
    capacity: np.ndarray                # [resource, point] payload bytes/s
    binding: np.ndarray                 # index into RESOURCES
    next_binding: np.ndarray            # index of the second-smallest capacity
    headroom: np.ndarray                # next capacity / throughput - 1 (inf when nothing else limits)
    cores_busy: np.ndarray              # cores kept busy at the throughput
    serving_cores_busy: np.ndarray
    worker_cores_busy: np.ndarray
    dma_engines_busy: np.ndarray        # engine-equivalents busy at the throughput
    cpu_seconds_per_byte: np.ndarray    # all CPU time per payload byte
    serving_seconds_per_io: np.ndarray
    worker_seconds_per_io: np.ndarray
    dma_rate_per_engine: np.ndarray     # bytes/s one reachable engine moves (0 when none reachable)
    wire_bytes_per_io: np.ndarray
    dram_bytes_per_byte: np.ndarray
    link_capacity_per_link: np.ndarray  # payload bytes/s one link carries
    pcie_capacity_per_nic: np.ndarray   # payload bytes/s one NIC's host interface carries
    dma_engines_reachable: np.ndarray   # engines the path's kernel API reaches (0 when none)
    latency_seconds: np.ndarray

    @property
    def utilisation(self) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(self.capacity > 0, self.throughput / self.capacity, np.inf)


def evaluate(p: Mapping[str, np.ndarray], table: DemandTable, engine_names: tuple[str, ...]) -> Result:
    g = lambda key: np.asarray(p[key], dtype=float)  # noqa: E731
    idx = np.asarray(p["path_index"], dtype=int)
    S = g("workload.io_size")
    proto = np.asarray(p["link.protocol_code"])
    is_tcp = proto == 2
    shape = np.broadcast_shapes(*[np.shape(v) for v in p.values()])

    # --- links: framing per I/O; a connection runs on one link, so only min(links, connections) carry data
    wire = resources.smb_wire_bytes_per_io(S, proto, g("link.mtu"), g("link.tcp_timestamps"))
    links_used = np.minimum(g("link.count"), g("workload.connections"))
    per_link = g("link.rate") * S / wire
    cap_links = links_used * per_link

    # --- CPU time per I/O on the serving thread and on async workers
    cold = lambda n: resources.copy_seconds(S, g("cpu.copy_rate_cache"), g("cpu.copy_rate_dram"),  # noqa: E731
                                            g("cpu.cache_per_core"), True) * n
    warm = lambda n: resources.copy_seconds(S, g("cpu.copy_rate_cache"), g("cpu.copy_rate_dram"),  # noqa: E731
                                            g("cpu.cache_per_core"), False) * n
    syscalls = table.syscalls_per_io[idx] + table.syscalls_per_chunk[idx] * np.ceil(S / table.chunk[idx])
    mss = resources.tcp_mss(g("link.mtu"), g("link.tcp_timestamps"))
    send_units = np.where(g("workload.tso") > 0, np.ceil(S / g("workload.gso_size")), np.ceil(S / mss))
    tcp_stack = np.where(is_tcp, send_units * g("cpu.tcp_segment_time")
                         + np.where(g("workload.checksum_offload") > 0, 0.0, S / g("cpu.tcp_checksum_rate")), 0.0)
    descriptors = np.ceil(S / table.dma_descriptor[idx]) * table.dma_copies[idx]
    serving = (g("cpu.smb_request_time") + syscalls * g("cpu.syscall_time")
               + np.where(is_tcp, 0.0, table.rdma_wrs_per_io[idx] * g("cpu.rdma_wr_time"))
               + table.handoffs_per_io[idx] * g("cpu.async_handoff_time")
               + table.zc_notifications_per_io[idx] * g("cpu.syscall_time")
               + cold(table.serving_cold_copies[idx]) + warm(table.serving_warm_copies[idx])
               + descriptors * _reached_engine_mean(p, table, idx, engine_names, "descriptor_cpu_time")
               + tcp_stack)
    workers = cold(table.worker_cold_copies[idx]) + warm(table.worker_warm_copies[idx])
    serving_cores = np.minimum(g("workload.io_cores"), g("workload.connections"))
    cap_serving = serving_cores * S / serving
    with np.errstate(divide="ignore"):
        cap_workers = np.where(workers > 0, g("workload.async_workers") * S / np.where(workers > 0, workers, 1), np.inf)
    cap_all = g("cpu.cores") * S / (serving + workers)

    # --- DRAM
    dram_bpb = resources.dram_bytes_per_payload_byte(table.cpu_copies[idx], table.dma_copies[idx],
                                                     g("cpu.nontemporal_copy"), g("workload.page_cache_hit"))
    cap_dram = g("memory.dram_bandwidth") / dram_bpb

    # --- PCIe: NICs needed for the links in use
    nics = np.ceil(links_used / g("nic.ports"))
    pcie_descriptors = np.where(is_tcp, send_units + 1, table.rdma_wrs_per_io[idx])
    pcie_bytes = resources.pcie_bytes_per_io(S, g("pcie.read_completion"), g("pcie.max_payload"),
                                             g("pcie.tlp_overhead"), pcie_descriptors, g("workload.operation_code"))
    pcie_per_nic = resources.pcie_rate(g("pcie.generation"), g("pcie.lanes")) * S / pcie_bytes
    cap_pcie = nics * pcie_per_nic

    # --- DMA engines the path's API reaches
    dma_total, dma_one, dma_count = _dma_rates(p, table, idx, engine_names)
    needs_dma = table.dma_copies[idx] > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        cap_dma = np.where(needs_dma, dma_total / np.where(needs_dma, table.dma_copies[idx], 1), np.inf)

    # --- pipeline (Little's law); one I/O's descriptors go to one channel, so its copy runs at one engine's rate
    dma_seconds = np.where(needs_dma & (dma_one > 0), table.dma_copies[idx] * S / np.where(dma_one > 0, dma_one, 1)
                           + _reached_engine_mean(p, table, idx, engine_names, "completion_latency"), 0.0)
    latency = pipeline.io_latency_seconds(g("workload.rtt"), serving + workers, wire, g("link.rate"), dma_seconds)
    cap_pipe = pipeline.pipeline_capacity(
        pipeline.outstanding_ios(g("workload.connections"), g("workload.outstanding_per_connection")), S, latency)

    caps = np.stack([np.broadcast_to(c, shape).astype(float) for c in
                     (cap_links, cap_pcie, cap_dram, cap_serving, cap_workers, cap_all, cap_dma, cap_pipe)])
    order = np.argsort(caps, axis=0, kind="stable")
    binding, nxt = order[0], order[1]
    X = np.take_along_axis(caps, binding[None], 0)[0]
    nxt_cap = np.take_along_axis(caps, nxt[None], 0)[0]
    with np.errstate(divide="ignore", invalid="ignore"):
        headroom = np.where(X > 0, nxt_cap / X - 1.0, np.inf)
        dma_busy = np.where(needs_dma & (dma_one > 0), X * table.dma_copies[idx] / np.where(dma_one > 0, dma_one, 1), 0.0)
    b = lambda a: np.broadcast_to(a, shape).astype(float)  # noqa: E731
    return Result(
        io_size=b(S), path_index=np.broadcast_to(idx, shape), throughput=X, capacity=caps,
        binding=binding, next_binding=nxt, headroom=headroom,
        cores_busy=b(X * (serving + workers) / S), serving_cores_busy=b(X * serving / S),
        worker_cores_busy=b(X * workers / S), dma_engines_busy=b(dma_busy),
        cpu_seconds_per_byte=b((serving + workers) / S), serving_seconds_per_io=b(serving),
        worker_seconds_per_io=b(workers), dma_rate_per_engine=b(dma_one), wire_bytes_per_io=b(wire),
        dram_bytes_per_byte=b(dram_bpb), link_capacity_per_link=b(per_link), latency_seconds=b(latency),
        pcie_capacity_per_nic=b(pcie_per_nic), dma_engines_reachable=b(dma_count),
    )


def _dma_rates(p, table: DemandTable, idx, engine_names):
    """(bytes/s of all reachable engines together, bytes/s of one reachable engine, reachable engines) per point."""
    total = 0.0
    one = 0.0
    count = 0.0
    for e, name in enumerate(engine_names):
        reach = table.dma_reach[idx, e] if table.dma_reach.shape[1] else False
        rate = resources.dma_engine_rate(table.dma_descriptor[idx], np.asarray(p[f"dma.{name}.rate"], dtype=float),
                                         np.asarray(p[f"dma.{name}.descriptor_time"], dtype=float))
        total = total + np.where(reach, np.asarray(p[f"dma.{name}.count"], dtype=float) * rate, 0.0)
        count = count + np.where(reach, np.asarray(p[f"dma.{name}.count"], dtype=float), 0.0)
        one = np.maximum(one, np.where(reach & (np.asarray(p[f"dma.{name}.count"]) > 0), rate, 0.0))
    return np.asarray(total, dtype=float), np.asarray(one, dtype=float), np.asarray(count, dtype=float)


def _reached_engine_mean(p, table: DemandTable, idx, engine_names, field: str):
    """A per-engine figure averaged over the engines the path reaches (0 when none)."""
    acc, n = 0.0, 0.0
    for e, name in enumerate(engine_names):
        reach = (table.dma_reach[idx, e] if table.dma_reach.shape[1] else False) & (np.asarray(p[f"dma.{name}.count"]) > 0)
        acc = acc + np.where(reach, np.asarray(p[f"dma.{name}.{field}"], dtype=float), 0.0)
        n = n + np.where(reach, 1.0, 0.0)
    return np.where(np.asarray(n) > 0, acc / np.where(np.asarray(n) > 0, n, 1.0), 0.0)
